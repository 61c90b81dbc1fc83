//! Writing a [`Profile`]: a text table, folded stacks, a flamegraph SVG, speedscope JSON, the
//! Firefox Profiler's processed format, and gzipped pprof.

use super::{Kind, Profile};
use anyhow::{Context, Result};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The hottest functions, self and total (Python first, then native code).
    Text,
    /// Folded stacks, one `root;...;leaf count` line per stack (flamegraph.pl, inferno,
    /// speedscope, Pyroscope's `folded` ingestion).
    Collapsed,
    /// A flamegraph SVG (inferno).
    Flamegraph,
    /// speedscope's JSON file format (https://www.speedscope.app).
    Speedscope,
    /// The Firefox Profiler's processed format (https://profiler.firefox.com, `samply load`).
    Firefox,
    /// gzipped pprof protobuf (`go tool pprof`, Pyroscope, Parca).
    Pprof,
}

impl Format {
    /// The file name `perfpy report` writes to when `-o` isn't given (text and collapsed go
    /// to standard output).
    pub fn default_output(self) -> Option<&'static str> {
        match self {
            Format::Text | Format::Collapsed => None,
            Format::Flamegraph => Some("flamegraph.svg"),
            Format::Speedscope => Some("profile.speedscope.json"),
            Format::Firefox => Some("profile.firefox.json"),
            Format::Pprof => Some("profile.pb.gz"),
        }
    }
}

pub struct Meta {
    /// What was profiled (the recording's command line), for titles.
    pub title: String,
    pub top: usize,
}

pub fn write(profile: &Profile, format: Format, meta: &Meta, out: &mut dyn Write) -> Result<()> {
    match format {
        Format::Text => text(profile, meta, out),
        Format::Collapsed => {
            for line in folded(profile) {
                writeln!(out, "{line}")?;
            }
            Ok(())
        }
        Format::Flamegraph => flamegraph(profile, meta, out),
        Format::Speedscope => speedscope(profile, meta, out),
        Format::Firefox => firefox(profile, meta, out),
        Format::Pprof => pprof(profile, out),
    }
}

fn clean(name: &str) -> String {
    name.replace([';', '\n'], ",")
}

/// `root;...;leaf count` lines, sorted.
pub fn folded(profile: &Profile) -> Vec<String> {
    let mut lines: BTreeMap<String, u64> = BTreeMap::new();
    for (stack, count) in profile.stack_counts() {
        let key = profile.stacks[stack as usize]
            .iter()
            .map(|&f| clean(&profile.frames[f as usize].name))
            .collect::<Vec<_>>()
            .join(";");
        if key.is_empty() {
            continue;
        }
        *lines.entry(key).or_default() += count;
    }
    lines.into_iter().map(|(k, c)| format!("{k} {c}")).collect()
}

/// One row of the text table.
pub struct Row {
    pub frame: u32,
    pub self_samples: u64,
    pub total_samples: u64,
}

/// Python functions by samples: self is the innermost Python frame of a sample (the time in
/// that function and the native code it calls directly), total any frame.
pub fn python_table(profile: &Profile) -> Vec<Row> {
    let mut self_c: HashMap<u32, u64> = HashMap::new();
    let mut total_c: HashMap<u32, u64> = HashMap::new();
    for (stack, count) in profile.stack_counts() {
        let frames = &profile.stacks[stack as usize];
        let py = |f: &&u32| profile.frames[**f as usize].kind == Kind::Python;
        if let Some(&inner) = frames.iter().rev().find(py) {
            *self_c.entry(inner).or_default() += count;
        }
        let distinct: HashSet<u32> = frames.iter().filter(py).copied().collect();
        for f in distinct {
            *total_c.entry(f).or_default() += count;
        }
    }
    rows(self_c, total_c)
}

/// Native functions by samples as the leaf frame (self) and anywhere (total).
pub fn native_table(profile: &Profile) -> Vec<Row> {
    let mut self_c: HashMap<u32, u64> = HashMap::new();
    let mut total_c: HashMap<u32, u64> = HashMap::new();
    for (stack, count) in profile.stack_counts() {
        let frames = &profile.stacks[stack as usize];
        let native = |f: &&u32| profile.frames[**f as usize].kind != Kind::Python;
        if let Some(&leaf) = frames.last().filter(native) {
            *self_c.entry(leaf).or_default() += count;
        }
        let distinct: HashSet<u32> = frames.iter().filter(native).copied().collect();
        for f in distinct {
            *total_c.entry(f).or_default() += count;
        }
    }
    rows(self_c, total_c)
}

fn rows(self_c: HashMap<u32, u64>, total_c: HashMap<u32, u64>) -> Vec<Row> {
    let mut rows: Vec<Row> = total_c
        .into_iter()
        .map(|(frame, total_samples)| Row {
            frame,
            self_samples: self_c.get(&frame).copied().unwrap_or(0),
            total_samples,
        })
        .collect();
    rows.sort_by(|a, b| {
        b.self_samples
            .cmp(&a.self_samples)
            .then(b.total_samples.cmp(&a.total_samples))
            .then(a.frame.cmp(&b.frame))
    });
    rows
}

fn pct(n: u64, of: u64) -> f64 {
    if of == 0 {
        0.0
    } else {
        100.0 * n as f64 / of as f64
    }
}

fn text(profile: &Profile, meta: &Meta, out: &mut dyn Write) -> Result<()> {
    let total = profile.samples.len() as u64;
    let pids: HashSet<i32> = profile.samples.iter().map(|s| s.pid).collect();
    writeln!(
        out,
        "{total} samples in {} process{}{}{}{}",
        pids.len(),
        if pids.len() == 1 { "" } else { "es" },
        profile
            .perf_version
            .as_deref()
            .map(|v| format!(", perf {v}"))
            .unwrap_or_default(),
        profile
            .frequency
            .map(|f| format!(", {f} Hz"))
            .unwrap_or_default(),
        if meta.title.is_empty() {
            String::new()
        } else {
            format!(": {}", meta.title)
        }
    )?;
    let py = python_table(profile);
    let py_samples: u64 = py.iter().map(|r| r.self_samples).sum();
    let title = format!(
        "Python functions ({:.1}% of samples ran Python code)",
        pct(py_samples, total)
    );
    table(out, profile, &title, py.iter(), meta.top, |f| {
        let (func, file) = f.python_parts();
        let place = match f.line {
            Some(line) => format!("{file}:{line}"),
            None => file.to_string(),
        };
        (func.to_string(), place)
    })?;
    if py.is_empty() {
        writeln!(out, "  (none: no sample has a Python frame)")?;
    }
    let native = native_table(profile);
    let title = "native code (self: the sampled instruction was there)";
    let hot = native.iter().filter(|r| r.self_samples > 0);
    table(out, profile, title, hot, meta.top, |f| {
        (
            f.name.to_string(),
            f.module.as_deref().unwrap_or("").to_string(),
        )
    })
}

/// One table of the text report: self%, total%, self samples, the function and where it is.
fn table<'r>(
    out: &mut dyn Write,
    profile: &Profile,
    title: &str,
    rows: impl Iterator<Item = &'r Row>,
    top: usize,
    describe: impl Fn(&super::Frame) -> (String, String),
) -> Result<()> {
    let total = profile.samples.len() as u64;
    writeln!(out, "\n{title}")?;
    writeln!(
        out,
        "  {:>6}  {:>6}  {:>8}  function",
        "self", "total", "samples"
    )?;
    for r in rows.take(top) {
        let (name, place) = describe(&profile.frames[r.frame as usize]);
        writeln!(
            out,
            "  {:>5.1}%  {:>5.1}%  {:>8}  {name}  {place}",
            pct(r.self_samples, total),
            pct(r.total_samples, total),
            r.self_samples,
        )?;
    }
    Ok(())
}

fn flamegraph(profile: &Profile, meta: &Meta, out: &mut dyn Write) -> Result<()> {
    let lines = folded(profile);
    let mut opts = inferno::flamegraph::Options::default();
    opts.title = if meta.title.is_empty() {
        "perfpy".into()
    } else {
        format!("perfpy: {}", meta.title)
    };
    opts.count_name = "samples".into();
    // Python frames blue, native code warm, the kernel orange: the Python stack stands out.
    let mut palette = inferno::flamegraph::color::PaletteMap::default();
    for f in &profile.frames {
        palette.insert(clean(&f.name), frame_color(f));
    }
    opts.palette_map = Some(&mut palette);
    if lines.is_empty() {
        anyhow::bail!("the recording has no samples to draw");
    }
    inferno::flamegraph::from_lines(&mut opts, lines.iter().map(String::as_str), out)
        .context("writing the flamegraph")?;
    Ok(())
}

/// A colour by kind of frame, varied a little by name so neighbours are told apart.
fn frame_color(frame: &super::Frame) -> inferno::flamegraph::color::Color {
    let h = frame.name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    let v = |range: u8, shift: u32| ((h >> shift) % range as u64) as u8;
    let (r, g, b) = match frame.kind {
        Kind::Python => (70 + v(40, 0), 130 + v(50, 8), 220 + v(35, 16)),
        Kind::Native => (215 + v(40, 0), 90 + v(90, 8), 40 + v(40, 16)),
        Kind::Kernel => (235, 150 + v(30, 8), 20),
    };
    inferno::flamegraph::color::Color { r, g, b }
}

#[derive(serde::Serialize)]
struct SpeedscopeFile<'a> {
    #[serde(rename = "$schema")]
    schema: &'static str,
    shared: SpeedscopeShared<'a>,
    profiles: Vec<SpeedscopeProfile>,
    name: &'a str,
    #[serde(rename = "activeProfileIndex")]
    active_profile_index: usize,
    exporter: String,
}

#[derive(serde::Serialize)]
struct SpeedscopeShared<'a> {
    frames: Vec<SpeedscopeFrame<'a>>,
}

#[derive(serde::Serialize)]
struct SpeedscopeFrame<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u32>,
}

#[derive(serde::Serialize)]
struct SpeedscopeProfile {
    #[serde(rename = "type")]
    kind: &'static str,
    name: String,
    unit: &'static str,
    #[serde(rename = "startValue")]
    start_value: f64,
    #[serde(rename = "endValue")]
    end_value: f64,
    samples: Vec<Vec<u32>>,
    weights: Vec<f64>,
}

/// The threads of a profile, busiest first: `(pid, tid)` and their samples in time order.
fn threads(profile: &Profile) -> Vec<((i32, i32), Vec<usize>)> {
    let mut by: HashMap<(i32, i32), Vec<usize>> = HashMap::new();
    for (i, s) in profile.samples.iter().enumerate() {
        by.entry((s.pid, s.tid)).or_default().push(i);
    }
    let mut v: Vec<_> = by.into_iter().collect();
    for (_, idx) in &mut v {
        idx.sort_by_key(|&i| profile.samples[i].time);
    }
    v.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
    v
}

fn thread_label(profile: &Profile, pid: i32, tid: i32) -> String {
    let name = profile
        .thread_names
        .get(&tid)
        .or_else(|| profile.process_names.get(&pid))
        .map(String::as_str)
        .unwrap_or("?");
    format!("{name} (pid {pid}, tid {tid})")
}

fn speedscope(profile: &Profile, meta: &Meta, out: &mut dyn Write) -> Result<()> {
    let frames = profile
        .frames
        .iter()
        .map(|f| match f.kind {
            Kind::Python => {
                let (func, file) = f.python_parts();
                SpeedscopeFrame {
                    name: func,
                    file: (!file.is_empty()).then_some(file),
                    line: f.line,
                }
            }
            _ => SpeedscopeFrame {
                name: &f.name,
                file: f.module.as_deref(),
                line: None,
            },
        })
        .collect();
    let weight = profile.frequency.map(|f| 1.0 / f.max(1) as f64);
    let profiles = threads(profile)
        .into_iter()
        .map(|((pid, tid), idx)| {
            let samples: Vec<Vec<u32>> = idx
                .iter()
                .map(|&i| profile.stacks[profile.samples[i].stack as usize].clone())
                .collect();
            let w = weight.unwrap_or(1.0);
            SpeedscopeProfile {
                kind: "sampled",
                name: thread_label(profile, pid, tid),
                unit: if weight.is_some() { "seconds" } else { "none" },
                start_value: 0.0,
                end_value: w * samples.len() as f64,
                weights: vec![w; samples.len()],
                samples,
            }
        })
        .collect();
    let file = SpeedscopeFile {
        schema: "https://www.speedscope.app/file-format-schema.json",
        shared: SpeedscopeShared { frames },
        profiles,
        name: if meta.title.is_empty() {
            "perfpy"
        } else {
            &meta.title
        },
        active_profile_index: 0,
        exporter: format!("perfpy {}", env!("CARGO_PKG_VERSION")),
    };
    serde_json::to_writer(&mut *out, &file)?;
    writeln!(out)?;
    Ok(())
}

fn firefox(profile: &Profile, meta: &Meta, out: &mut dyn Write) -> Result<()> {
    use fxprof_processed_profile as fx;
    let interval = fx::SamplingInterval::from_hz(profile.frequency.unwrap_or(1000) as f32);
    let mut p = fx::Profile::new(
        &format!("perfpy: {}", meta.title),
        fx::ReferenceTimestamp::from_system_time(std::time::SystemTime::now()),
        interval,
    );
    let python = p.add_category("Python", fx::CategoryColor::Blue);
    let native = p.add_category("Native", fx::CategoryColor::Orange);
    let kernel = p.add_category("Kernel", fx::CategoryColor::Red);
    let t0 = profile.samples.iter().map(|s| s.time).min().unwrap_or(0);
    let ts = |t: u64| fx::Timestamp::from_nanos_since_reference(t.saturating_sub(t0));
    let names: Vec<fx::StringHandle> = profile
        .frames
        .iter()
        .map(|f| p.intern_string(&f.name))
        .collect();
    let mut procs: HashMap<i32, fx::ProcessHandle> = HashMap::new();
    for ((pid, tid), idx) in threads(profile) {
        let start = ts(profile.samples[idx[0]].time);
        let process = *procs.entry(pid).or_insert_with(|| {
            let name = profile
                .process_names
                .get(&pid)
                .cloned()
                .unwrap_or_else(|| format!("pid {pid}"));
            p.add_process(&name, pid as u32, start)
        });
        let thread = p.add_thread(process, tid as u32, start, pid == tid);
        if let Some(n) = profile.thread_names.get(&tid) {
            p.set_thread_name(thread, n);
        }
        let mut stack_handles: HashMap<u32, Option<fx::StackHandle>> = HashMap::new();
        for i in idx {
            let s = profile.samples[i];
            let handle = *stack_handles.entry(s.stack).or_insert_with(|| {
                let frames = profile.stacks[s.stack as usize].iter().map(|&f| {
                    let frame = &profile.frames[f as usize];
                    let (category, flags) = match frame.kind {
                        Kind::Python => (python, fx::FrameFlags::IS_JS),
                        Kind::Native => (native, fx::FrameFlags::empty()),
                        Kind::Kernel => (kernel, fx::FrameFlags::empty()),
                    };
                    fx::FrameInfo {
                        frame: fx::Frame::Label(names[f as usize]),
                        category_pair: category.into(),
                        flags,
                    }
                });
                p.intern_stack_frames(thread, frames)
            });
            p.add_sample(
                thread,
                ts(s.time),
                handle,
                fx::CpuDelta::from_nanos(interval.nanos()),
                1,
            );
        }
    }
    serde_json::to_writer(&mut *out, &p)?;
    Ok(())
}

/// `perftools.profiles` messages (profile.proto), the fields perfpy writes.
mod pb {
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
    let sample_type = vec![
        pb::ValueType {
            r#type: s("samples"),
            unit: s("count"),
        },
        pb::ValueType {
            r#type: s("cpu"),
            unit: s("nanoseconds"),
        },
    ];
    let period_type = Some(pb::ValueType {
        r#type: s("cpu"),
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
    let sample = profile
        .stack_counts()
        .into_iter()
        .map(|(stack, count)| pb::Sample {
            // Leaf first.
            location_id: profile.stacks[stack as usize]
                .iter()
                .rev()
                .map(|&f| f as u64 + 1)
                .collect(),
            value: vec![count as i64, count as i64 * period_ns],
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
