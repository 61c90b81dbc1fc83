//! speedscope's JSON file format: one sampled profile per thread, busiest first, Python
//! frames with their file and `def` line.

use super::{thread_label, threads, Meta, Writer};
use crate::report::{Kind, Profile};
use anyhow::Result;
use std::io::Write;

pub struct Speedscope;

impl Writer for Speedscope {
    fn write(&self, profile: &Profile, meta: &Meta, out: &mut dyn Write) -> Result<()> {
        speedscope(profile, meta, out)
    }
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
    let time = profile.measure.is_time();
    let weight = profile.frequency.map(|f| 1.0 / f.max(1) as f64);
    let profiles = threads(profile)
        .into_iter()
        .map(|((pid, tid), idx)| {
            let samples: Vec<Vec<u32>> = idx
                .iter()
                .map(|&i| profile.stacks[profile.samples[i].stack as usize].clone())
                .collect();
            // Time profiles: each sample's own nanoseconds; sample counts: the sampling
            // interval in seconds where the recording had a frequency.
            let weights: Vec<f64> = if time {
                idx.iter()
                    .map(|&i| profile.samples[i].weight as f64)
                    .collect()
            } else {
                vec![weight.unwrap_or(1.0); samples.len()]
            };
            SpeedscopeProfile {
                kind: "sampled",
                name: thread_label(profile, pid, tid),
                unit: match (time, weight) {
                    (true, _) => "nanoseconds",
                    (false, Some(_)) => "seconds",
                    (false, None) => "none",
                },
                start_value: 0.0,
                end_value: weights.iter().sum(),
                weights,
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
