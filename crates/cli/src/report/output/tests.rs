//! Every writer on a small hand-built profile: no perf, no recording.

use super::{write, Format, Meta};
use crate::report::{Frame, Kind, Profile, Sample};
use std::sync::Arc;

/// Two threads of pid 7: `main → py::<module> → py::f → py::g → memcpy` three times on
/// thread 7, and `main → py::<module> → [kernel]` once on thread 8.
fn profile() -> Profile {
    let mut p = Profile::default();
    let f = |kind, name: &str, module: Option<&str>, line| Frame {
        kind,
        name: Arc::from(name),
        module: module.map(Arc::from),
        line,
    };
    let main = p.intern_frame(f(Kind::Native, "main", Some("python3.11"), None));
    let module = p.intern_frame(f(Kind::Python, "py::<module>:/app/m.py", None, Some(1)));
    let pf = p.intern_frame(f(Kind::Python, "py::f:/app/m.py", None, Some(3)));
    let g = p.intern_frame(f(Kind::Python, "py::g:/app/m.py", None, Some(7)));
    let memcpy = p.intern_frame(f(Kind::Native, "memcpy", Some("libc.so.6"), None));
    let kernel = p.intern_frame(f(Kind::Kernel, "[kernel]", None, None));
    let hot = p.intern_stack(&[main, module, pf, g, memcpy]);
    let sys = p.intern_stack(&[main, module, kernel]);
    for (i, (tid, stack)) in [(7, hot), (7, hot), (7, hot), (8, sys)]
        .into_iter()
        .enumerate()
    {
        p.samples.push(Sample {
            time: 1_000_000 * i as u64,
            pid: 7,
            tid,
            stack,
            weight: 1,
        });
    }
    p.frequency = Some(1000);
    p.thread_names.insert(7, "python3.11".into());
    p.thread_names.insert(8, "worker".into());
    p.process_names.insert(7, "python3.11".into());
    p
}

fn render(format: Format) -> Vec<u8> {
    let meta = Meta {
        title: "python m.py".into(),
        top: 10,
    };
    let mut out = Vec::new();
    write(&profile(), format, &meta, &mut out).expect("writes");
    out
}

#[test]
fn collapsed_lines_are_exact() {
    let text = String::from_utf8(render(Format::Collapsed)).unwrap();
    assert_eq!(
        text,
        "main;py::<module>:/app/m.py;[kernel] 1\n\
         main;py::<module>:/app/m.py;py::f:/app/m.py;py::g:/app/m.py;memcpy 3\n"
    );
}

#[test]
fn text_tables_rank_self_time() {
    let text = String::from_utf8(render(Format::Text)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "4 samples in 1 process, 1000 Hz: python m.py");
    let py = lines
        .iter()
        .position(|l| l.starts_with("Python functions"))
        .unwrap();
    assert_eq!(
        lines[py],
        "Python functions (100.0% of samples ran Python code)"
    );
    // g is the innermost Python frame of 3 samples, <module> of 1; f is never innermost.
    let row = |i: usize| lines[py + 2 + i].split_whitespace().collect::<Vec<_>>();
    assert_eq!(row(0), ["75.0%", "75.0%", "3", "py::g", "/app/m.py:7"]);
    assert_eq!(
        row(1),
        ["25.0%", "100.0%", "1", "py::<module>", "/app/m.py:1"]
    );
    assert_eq!(row(2), ["0.0%", "75.0%", "0", "py::f", "/app/m.py:3"]);
    let native = lines
        .iter()
        .position(|l| l.starts_with("native code"))
        .unwrap();
    assert_eq!(
        lines[native + 2].split_whitespace().collect::<Vec<_>>(),
        ["75.0%", "75.0%", "3", "memcpy", "libc.so.6"]
    );
}

#[test]
fn speedscope_has_a_profile_per_thread() {
    let v: serde_json::Value = serde_json::from_slice(&render(Format::Speedscope)).unwrap();
    let frames = v["shared"]["frames"].as_array().unwrap();
    let g = frames.iter().position(|f| f["name"] == "py::g").unwrap();
    assert_eq!(frames[g]["file"], "/app/m.py");
    assert_eq!(frames[g]["line"], 7);
    let profiles = v["profiles"].as_array().unwrap();
    assert_eq!(profiles.len(), 2);
    assert_eq!(profiles[0]["name"], "python3.11 (pid 7, tid 7)");
    assert_eq!(profiles[0]["samples"].as_array().unwrap().len(), 3);
    assert_eq!(profiles[0]["unit"], "seconds");
    assert_eq!(profiles[1]["name"], "worker (pid 7, tid 8)");
    assert_eq!(v["name"], "python m.py");
}

#[test]
fn pprof_decodes_leaf_first() {
    use prost::Message;
    use std::io::Read;
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&render(Format::Pprof)[..])
        .read_to_end(&mut raw)
        .unwrap();
    let p = super::pprof::pb::Profile::decode(&raw[..]).unwrap();
    let total: i64 = p.sample.iter().map(|s| s.value[0]).sum();
    assert_eq!(total, 4);
    let name_of_location = |id: u64| {
        let loc = p.location.iter().find(|l| l.id == id).unwrap();
        let func = p
            .function
            .iter()
            .find(|f| f.id == loc.line[0].function_id)
            .unwrap();
        p.string_table[func.name as usize].clone()
    };
    let hot = p.sample.iter().find(|s| s.value[0] == 3).unwrap();
    let names: Vec<String> = hot
        .location_id
        .iter()
        .map(|&id| name_of_location(id))
        .collect();
    assert_eq!(names[0], "memcpy");
    assert!(names[1].starts_with("py::g"), "{names:?}");
    assert_eq!(names.last().unwrap(), "main");
}

#[test]
fn flamegraph_and_firefox_carry_the_python_frames() {
    let svg = String::from_utf8(render(Format::Flamegraph)).unwrap();
    assert!(
        svg.starts_with("<?xml") && svg.contains("py::g:/app/m.py"),
        "{svg:.200}"
    );
    let v: serde_json::Value = serde_json::from_slice(&render(Format::Firefox)).unwrap();
    let threads = v["threads"].as_array().unwrap();
    assert_eq!(threads.len(), 2);
    let strings = v["shared"]["stringArray"]
        .as_array()
        .or_else(|| threads[0]["stringArray"].as_array());
    let text = v.to_string();
    assert!(
        text.contains("py::g:/app/m.py"),
        "{:?}",
        strings.map(|s| s.len())
    );
    let categories: Vec<&str> = v["meta"]["categories"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(categories.contains(&"Python"), "{categories:?}");
}

#[test]
fn default_outputs() {
    assert_eq!(Format::Text.default_output(), None);
    assert_eq!(Format::Flamegraph.default_output(), Some("flamegraph.svg"));
}

/// The profile of [`profile`] as a wall-clock one: thread 7's three samples 1 ms of CPU
/// each, and thread 8 waiting 2.5 ms to sleep.
fn wall_profile() -> Profile {
    let mut p = profile();
    p.measure = crate::report::Measure::Wall;
    let wait = p.intern_frame(Frame::named(Kind::Wait, "[wait: sleep]"));
    let mut slept = p.stacks[p.samples[3].stack as usize].clone();
    slept.push(wait);
    let slept = p.intern_stack(&slept);
    for (i, s) in p.samples.iter_mut().enumerate() {
        s.weight = 1_000_000;
        if i == 3 {
            s.stack = slept;
            s.weight = 2_500_000;
        }
    }
    p
}

fn render_wall(format: Format) -> Vec<u8> {
    let meta = Meta {
        title: "python m.py".into(),
        top: 10,
    };
    let mut out = Vec::new();
    write(&wall_profile(), format, &meta, &mut out).expect("writes");
    out
}

#[test]
fn wall_profiles_carry_time_in_every_format() {
    let text = String::from_utf8(render_wall(Format::Collapsed)).unwrap();
    assert_eq!(
        text,
        "main;py::<module>:/app/m.py;[kernel];[wait: sleep] 2500\n\
         main;py::<module>:/app/m.py;py::f:/app/m.py;py::g:/app/m.py;memcpy 3000\n"
    );
    let v: serde_json::Value = serde_json::from_slice(&render_wall(Format::Speedscope)).unwrap();
    let profiles = v["profiles"].as_array().unwrap();
    assert_eq!(profiles[0]["unit"], "nanoseconds");
    assert_eq!(profiles[0]["endValue"], 3_000_000.0);
    assert_eq!(profiles[1]["weights"][0], 2_500_000.0);

    use prost::Message;
    use std::io::Read;
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&render_wall(Format::Pprof)[..])
        .read_to_end(&mut raw)
        .unwrap();
    let p = super::pprof::pb::Profile::decode(&raw[..]).unwrap();
    let kind = &p.string_table[p.sample_type[1].r#type as usize];
    let unit = &p.string_table[p.sample_type[1].unit as usize];
    assert_eq!((kind.as_str(), unit.as_str()), ("wall", "nanoseconds"));
    let total: i64 = p.sample.iter().map(|s| s.value[1]).sum();
    assert_eq!(total, 5_500_000);

    let text = String::from_utf8(render_wall(Format::Text)).unwrap();
    assert!(
        text.starts_with(
            "5.5 ms of wall time in 2 threads of 1 process (3.0 ms on CPU, 2.5 ms off CPU)"
        ),
        "{text}"
    );
    assert!(text.contains("    2.5 ms  [wait: sleep]"), "{text}");
    let svg = String::from_utf8(render_wall(Format::Flamegraph)).unwrap();
    assert!(svg.contains("µs"), "the flamegraph counts microseconds");
}
