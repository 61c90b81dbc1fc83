//! The Firefox Profiler's processed format (fxprof-processed-profile): a process per pid, a
//! thread per tid, Python frames in their own category and marked as JS.

use super::{threads, Meta, Writer};
use crate::report::{Kind, Profile};
use anyhow::Result;
use std::collections::HashMap;
use std::io::Write;

pub struct Firefox;

impl Writer for Firefox {
    fn write(&self, profile: &Profile, meta: &Meta, out: &mut dyn Write) -> Result<()> {
        firefox(profile, meta, out)
    }
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
    let wait = p.add_category("Waiting", fx::CategoryColor::Gray);
    let time = profile.measure.is_time();
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
        if time {
            p.set_thread_samples_weight_type(thread, fx::WeightType::TracingMs);
        }
        // In time units, whole milliseconds per sample (the format's weights are integers),
        // the remainder carried to the thread's next sample so its total is kept.
        let mut carried_ns = 0u64;
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
                        Kind::Wait => (wait, fx::FrameFlags::empty()),
                    };
                    fx::FrameInfo {
                        frame: fx::Frame::Label(names[f as usize]),
                        category_pair: category.into(),
                        flags,
                    }
                });
                p.intern_stack_frames(thread, frames)
            });
            let (cpu, weight) = if time {
                carried_ns += s.weight;
                let ms = carried_ns / 1_000_000;
                carried_ns -= ms * 1_000_000;
                let on_cpu = !profile.is_wait(s.stack);
                (if on_cpu { s.weight } else { 0 }, ms as i32)
            } else {
                (interval.nanos(), 1)
            };
            p.add_sample(
                thread,
                ts(s.time),
                handle,
                fx::CpuDelta::from_nanos(cpu),
                weight,
            );
        }
    }
    serde_json::to_writer(&mut *out, &p)?;
    Ok(())
}
