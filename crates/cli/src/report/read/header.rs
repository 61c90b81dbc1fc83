//! What a recording says of itself, apart from its records: perf's version, the command it
//! ran, and, of the event reported, the sampling frequency and how much user stack each
//! sample copies.

use crate::report::Profile;
use linux_perf_data::linux_perf_event_reader::SamplingPolicy;
use linux_perf_data::PerfFile;

/// Fills `profile`'s description of the recording from `perf_file`'s header, for the
/// samples of its `event`th event.
pub fn describe(perf_file: &PerfFile, event: usize, profile: &mut Profile) {
    let attr = perf_file.event_attributes().get(event).map(|d| &d.attr);
    profile.perf_version = perf_file.perf_version().ok().flatten().map(str::to_string);
    let args = perf_file.cmdline().ok().flatten();
    profile.system_wide = args.as_ref().is_some_and(|a| {
        a.iter()
            .take_while(|w| **w != "--")
            .any(|w| *w == "-a" || *w == "--all-cpus")
    });
    profile.command = args.as_deref().map(|a| {
        if profile.system_wide {
            // `-- sleep 5` is how long, not what.
            "the whole machine (perf record -a)".to_string()
        } else {
            recorded_command(a)
        }
    });
    profile.frequency = attr.and_then(|a| match a.sampling_policy {
        // A frequency of 0 is no frequency (a damaged attr; found by fuzzing: the Firefox
        // writer's interval can't be made from it).
        SamplingPolicy::Frequency(f) if f > 0 => Some(f),
        _ => None,
    });
    profile.stats.stack.copy = attr.map(|a| a.sample_stack_user).filter(|&size| size > 0);
}

/// What a recording ran, from perf's command line: the words after `--`, else from the
/// first word that names a Python interpreter (`perf record -g python3 app.py`), else the
/// whole command line (perf's options can't be told from their values without perf's table).
fn recorded_command(args: &[&str]) -> String {
    let start = args
        .iter()
        .position(|a| *a == "--")
        .map(|i| i + 1)
        .or_else(|| {
            args.iter()
                .skip(1)
                .position(|a| {
                    let name = a.rsplit('/').next().unwrap_or(a);
                    name.starts_with("python") && !a.starts_with('-')
                })
                .map(|i| i + 1)
        })
        .unwrap_or(0);
    args[start..].join(" ")
}

#[cfg(test)]
mod tests {
    use super::recorded_command;

    #[test]
    fn the_recorded_command_is_found_in_perfs_command_line() {
        let perf = |s: &str| recorded_command(&s.split(' ').collect::<Vec<_>>());
        assert_eq!(
            perf("perf record -g -- python3 app.py -v"),
            "python3 app.py -v"
        );
        assert_eq!(
            perf("/usr/bin/perf record -F 999 --call-graph dwarf /usr/bin/python3.11 app.py"),
            "/usr/bin/python3.11 app.py"
        );
        assert_eq!(perf("perf record -a sleep 1"), "perf record -a sleep 1");
    }
}
