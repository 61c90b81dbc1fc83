//! The events a recording holds (`perf record -e cpu-clock -e sched:sched_switch …`): their
//! names, and which one a report is of. Samples of different events count different things
//! (a CPU-time tick, a context switch), so they are never added together: a report is of one
//! event, the first the file holds unless `--event NAME` picks another; except the
//! recordings `perfpy record --mode wall|off-cpu` makes (CPU-clock samples, context-switch
//! samples and perf's switch records), which are read as one timeline in time units.

use crate::report::Measure;
use linux_perf_data::linux_perf_event_reader::{
    AttrFlags, HardwareEventId, PerfEventType, SoftwareCounterType,
};
use linux_perf_data::AttributeDescription;

/// One event of the recording, and how many of its samples the file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// perf's name for it (`cpu-clock:ppp`, `sched:sched_switch`, `cs/period=1/`).
    pub name: String,
    pub samples: u64,
    /// Whether the report is of this event's samples.
    pub reported: bool,
}

/// The name perf gave an event (the file's event descriptions), else one made from its type.
pub fn name(desc: &AttributeDescription) -> String {
    match &desc.name {
        Some(n) if !n.is_empty() => n.clone(),
        _ => kind(&desc.attr.type_).unwrap_or_else(|| "unnamed event".to_string()),
    }
}

/// perf's generic name for an event's type and config (`context-switches` for `cs/period=1/`).
fn kind(t: &PerfEventType) -> Option<String> {
    let s = match t {
        PerfEventType::Software(sw) => match sw {
            SoftwareCounterType::CpuClock => "cpu-clock",
            SoftwareCounterType::TaskClock => "task-clock",
            SoftwareCounterType::PageFaults => "page-faults",
            SoftwareCounterType::ContextSwitches => "context-switches",
            SoftwareCounterType::CpuMigrations => "cpu-migrations",
            SoftwareCounterType::PageFaultsMin => "minor-faults",
            SoftwareCounterType::PageFaultsMaj => "major-faults",
            SoftwareCounterType::Dummy => "dummy",
            _ => return None,
        },
        PerfEventType::Hardware(hw, _) => match hw {
            HardwareEventId::CpuCycles => "cycles",
            HardwareEventId::Instructions => "instructions",
            HardwareEventId::CacheMisses => "cache-misses",
            HardwareEventId::BranchMisses => "branch-misses",
            _ => return None,
        },
        PerfEventType::Tracepoint(id) => {
            return Some(tracepoint_name(*id).unwrap_or_else(|| format!("tracepoint {id}")))
        }
        _ => return None,
    };
    Some(s.to_string())
}

/// A tracepoint's `system:name` from this machine's tracefs (for a recording whose event
/// descriptions perf never wrote: it was killed): the ids are this boot's, as the recording's
/// are when it is read where it was made.
fn tracepoint_name(id: u64) -> Option<String> {
    let want = id.to_string();
    [
        "/sys/kernel/tracing/events",
        "/sys/kernel/debug/tracing/events",
    ]
    .iter()
    .filter_map(|root| std::fs::read_dir(root).ok())
    .flat_map(|systems| systems.flatten())
    .filter_map(|system| Some((system.file_name(), std::fs::read_dir(system.path()).ok()?)))
    .find_map(|(system, events)| {
        events.flatten().find_map(|event| {
            let got = std::fs::read_to_string(event.path().join("id")).ok()?;
            (got.trim() == want).then(|| {
                format!(
                    "{}:{}",
                    system.to_string_lossy(),
                    event.file_name().to_string_lossy()
                )
            })
        })
    })
}

/// perf's side-band event (`dummy`), which carries mmap and comm records but never samples:
/// not an event the user recorded.
pub fn is_side_band(desc: &AttributeDescription) -> bool {
    matches!(
        desc.attr.type_,
        PerfEventType::Software(SoftwareCounterType::Dummy)
    )
}

/// The names `wanted` may be given by for an event: perf's whole name, the name without its
/// modifiers (`cpu-clock` for `cpu-clock:ppp`) or terms (`cs` for `cs/period=1/`), and the
/// generic name of its type (`context-switches` for `cs`).
fn aliases(desc: &AttributeDescription) -> Vec<String> {
    let full = name(desc);
    let mut out = vec![full.clone()];
    let bare = full.split('/').next().unwrap_or(&full).to_string();
    out.push(bare.clone());
    if let Some((base, mods)) = bare.rsplit_once(':') {
        if !mods.is_empty() && mods.chars().all(|c| "ukhIGHpPSDWe".contains(c)) {
            out.push(base.to_string());
        }
    }
    out.extend(kind(&desc.attr.type_));
    out
}

/// How a recording is read: what its samples measure, and which events give them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selection {
    pub measure: Measure,
    /// The event whose samples are the profile's (CPU time in wall mode).
    pub samples: Option<usize>,
    /// The context-switch event whose samples give the waits' stacks (wall, off-cpu).
    pub switches: Option<usize>,
}

impl Selection {
    /// Whether the report is of event `i`'s samples.
    pub fn reports(&self, i: usize) -> bool {
        self.samples == Some(i) || self.switches == Some(i)
    }
}

/// How to read a recording of `descs`: the event `wanted` names; else, for a wall-clock or
/// off-CPU recording (a context-switch event with perf's switch records, with or without a
/// CPU-clock event), its timeline; else the first event. `Err` says what the file holds.
pub fn selection(
    descs: &[AttributeDescription],
    wanted: Option<&str>,
) -> Result<Selection, String> {
    let one = |i| Selection {
        measure: Measure::Samples,
        samples: Some(i),
        switches: None,
    };
    if wanted.is_some() {
        return select(descs, wanted).map(one);
    }
    let find = |want: fn(&SoftwareCounterType) -> bool| {
        descs
            .iter()
            .position(|d| matches!(&d.attr.type_, PerfEventType::Software(t) if want(t)))
    };
    let switch_records = descs
        .iter()
        .any(|d| d.attr.flags.contains(AttrFlags::CONTEXT_SWITCH));
    let switches = find(|t| matches!(t, SoftwareCounterType::ContextSwitches));
    match (switches, switch_records) {
        (Some(cs), true) => {
            let cpu = find(|t| {
                matches!(
                    t,
                    SoftwareCounterType::CpuClock | SoftwareCounterType::TaskClock
                )
            });
            Ok(Selection {
                measure: if cpu.is_some() {
                    Measure::Wall
                } else {
                    Measure::OffCpu
                },
                samples: cpu,
                switches: Some(cs),
            })
        }
        _ => select(descs, None).map(one),
    }
}

/// Which of the recording's events the report is of: the one `wanted` names, else the first
/// that isn't perf's side-band event. `Err` says what the file holds.
pub fn select(descs: &[AttributeDescription], wanted: Option<&str>) -> Result<usize, String> {
    let recorded: Vec<usize> = (0..descs.len())
        .filter(|&i| !is_side_band(&descs[i]))
        .collect();
    let Some(wanted) = wanted else {
        return Ok(recorded.first().copied().unwrap_or(0));
    };
    if let Some(&i) = recorded
        .iter()
        .find(|&&i| aliases(&descs[i]).iter().any(|a| a == wanted))
    {
        return Ok(i);
    }
    let names: Vec<String> = recorded.iter().map(|&i| name(&descs[i])).collect();
    Err(if names.is_empty() {
        format!("the recording has no event named {wanted:?} (it holds no sampled event)")
    } else {
        format!(
            "the recording has no event named {wanted:?}; it holds {}: pass one of those to \
             --event",
            names.join(", ")
        )
    })
}

/// The recording's events (perf's side-band event left out unless reported) with their
/// sample counts, and which the report is of.
pub fn summary(
    descs: &[AttributeDescription],
    counts: &[u64],
    selection: &Selection,
) -> Vec<Event> {
    descs
        .iter()
        .enumerate()
        .filter(|&(i, d)| selection.reports(i) || !is_side_band(d))
        .map(|(i, d)| Event {
            name: name(d),
            samples: counts.get(i).copied().unwrap_or(0),
            reported: selection.reports(i),
        })
        .collect()
}
