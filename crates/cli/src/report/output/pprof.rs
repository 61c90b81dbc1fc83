//! gzipped pprof (`perftools.profiles.Profile`, written with prost): one sample per
//! distinct stack, leaf first, with Python functions' file and `def` line.

use super::{Meta, Writer};
use crate::report::{Kind, Measure, Profile};
use anyhow::Result;
use std::collections::HashMap;
use std::io::Write;

pub struct Pprof;

impl Writer for Pprof {
    fn write(&self, profile: &Profile, _meta: &Meta, out: &mut dyn Write) -> Result<()> {
        pprof(profile, out)
    }
}

/// `perftools.profiles` messages (profile.proto), the fields perfpy writes.
pub(super) mod pb {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Profile {
        #[prost(message, repeated, tag = "1")]
        pub sample_type: Vec<ValueType>,
        #[prost(message, repeated, tag = "2")]
        pub sample: Vec<Sample>,
        #[prost(message, repeated, tag = "4")]
        pub location: Vec<Location>,
        #[prost(message, repeated, tag = "5")]
        pub function: Vec<Function>,
        #[prost(string, repeated, tag = "6")]
        pub string_table: Vec<String>,
        #[prost(int64, tag = "9")]
        pub time_nanos: i64,
        #[prost(int64, tag = "10")]
        pub duration_nanos: i64,
        #[prost(message, optional, tag = "11")]
        pub period_type: Option<ValueType>,
        #[prost(int64, tag = "12")]
        pub period: i64,
        #[prost(int64, repeated, tag = "13")]
        pub comment: Vec<i64>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueType {
        #[prost(int64, tag = "1")]
        pub r#type: i64,
        #[prost(int64, tag = "2")]
        pub unit: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        #[prost(uint64, repeated, tag = "1")]
        pub location_id: Vec<u64>,
        #[prost(int64, repeated, tag = "2")]
        pub value: Vec<i64>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Location {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(message, repeated, tag = "4")]
        pub line: Vec<Line>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Line {
        #[prost(uint64, tag = "1")]
        pub function_id: u64,
        #[prost(int64, tag = "2")]
        pub line: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Function {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(int64, tag = "2")]
        pub name: i64,
        #[prost(int64, tag = "3")]
        pub system_name: i64,
        #[prost(int64, tag = "4")]
        pub filename: i64,
        #[prost(int64, tag = "5")]
        pub start_line: i64,
    }
}

fn pprof(profile: &Profile, out: &mut dyn Write) -> Result<()> {
    use prost::Message;
    let mut strings: Vec<String> = vec![String::new()];
    let mut index: HashMap<String, i64> = HashMap::new();
    let mut s = |v: &str| -> i64 {
        if v.is_empty() {
            return 0;
        }
        if let Some(&i) = index.get(v) {
            return i;
        }
        strings.push(v.to_string());
        let i = strings.len() as i64 - 1;
        index.insert(v.to_string(), i);
        i
    };
    let period_ns = 1_000_000_000 / profile.frequency.unwrap_or(1000).max(1) as i64;
    // Sample counts and the CPU time they stand for; or, in time profiles, counts and the
    // time measured (CPU samples' and waits' nanoseconds).
    let time = match profile.measure {
        Measure::Samples => "cpu",
        Measure::Wall => "wall",
        Measure::OffCpu => "off_cpu",
    };
    let sample_type = vec![
        pb::ValueType {
            r#type: s("samples"),
            unit: s("count"),
        },
        pb::ValueType {
            r#type: s(time),
            unit: s("nanoseconds"),
        },
    ];
    let period_type = Some(pb::ValueType {
        r#type: s(time),
        unit: s("nanoseconds"),
    });
    let mut function = Vec::with_capacity(profile.frames.len());
    let mut location = Vec::with_capacity(profile.frames.len());
    for (i, f) in profile.frames.iter().enumerate() {
        let id = i as u64 + 1;
        let (name, file) = match f.kind {
            Kind::Python => f.python_parts(),
            _ => (&*f.name, f.module.as_deref().unwrap_or("")),
        };
        let line = f.line.map_or(0, i64::from);
        function.push(pb::Function {
            id,
            name: s(name),
            system_name: s(&f.name),
            filename: s(file),
            start_line: line,
        });
        location.push(pb::Location {
            id,
            line: vec![pb::Line {
                function_id: id,
                line,
            }],
        });
    }
    let mut by_stack: HashMap<u32, (i64, i64)> = HashMap::new();
    for smp in &profile.samples {
        let v = by_stack.entry(smp.stack).or_default();
        v.0 += 1;
        v.1 += if profile.measure.is_time() {
            smp.weight as i64
        } else {
            period_ns
        };
    }
    let mut stacks: Vec<_> = by_stack.into_iter().collect();
    stacks.sort_unstable_by_key(|&(stack, _)| stack);
    let sample = stacks
        .into_iter()
        .map(|(stack, (count, value))| pb::Sample {
            // Leaf first.
            location_id: profile.stacks[stack as usize]
                .iter()
                .rev()
                .map(|&f| f as u64 + 1)
                .collect(),
            value: vec![count, value],
        })
        .collect();
    let (t0, t1) = profile
        .samples
        .iter()
        .fold((u64::MAX, 0), |(a, b), s| (a.min(s.time), b.max(s.time)));
    let comment = vec![s(&format!("perfpy {}", env!("CARGO_PKG_VERSION")))];
    let msg = pb::Profile {
        sample_type,
        sample,
        location,
        function,
        string_table: strings,
        time_nanos: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0),
        duration_nanos: t1.saturating_sub(t0.min(t1)) as i64,
        period_type,
        period: period_ns,
        comment,
    };
    let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    gz.write_all(&msg.encode_to_vec())?;
    gz.finish()?;
    Ok(())
}
