//! A flamegraph SVG (inferno), Python frames blue, native code warm, the kernel orange,
//! waits grey.

use super::collapsed::{clean, folded};
use super::{Meta, Writer};
use crate::report::{Frame, Kind, Profile};
use anyhow::{Context, Result};
use std::io::Write;

pub struct Flamegraph;

impl Writer for Flamegraph {
    fn write(&self, profile: &Profile, meta: &Meta, out: &mut dyn Write) -> Result<()> {
        flamegraph(profile, meta, out)
    }
}

fn flamegraph(profile: &Profile, meta: &Meta, out: &mut dyn Write) -> Result<()> {
    let lines = folded(profile);
    let mut opts = inferno::flamegraph::Options::default();
    opts.title = if meta.title.is_empty() {
        "perfpy".into()
    } else {
        format!("perfpy: {}", meta.title)
    };
    opts.count_name = if profile.measure.is_time() {
        "µs".into()
    } else {
        "samples".into()
    };
    // Python frames blue, native code warm, the kernel orange, waits grey: the Python stack
    // stands out.
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
fn frame_color(frame: &Frame) -> inferno::flamegraph::color::Color {
    let h = frame.name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    let v = |range: u8, shift: u32| ((h >> shift) % range as u64) as u8;
    let (r, g, b) = match frame.kind {
        Kind::Python => (70 + v(40, 0), 130 + v(50, 8), 220 + v(35, 16)),
        Kind::Native => (215 + v(40, 0), 90 + v(90, 8), 40 + v(40, 16)),
        Kind::Kernel => (235, 150 + v(30, 8), 20),
        Kind::Wait => (150 + v(20, 0), 150 + v(20, 0), 160 + v(20, 0)),
    };
    inferno::flamegraph::color::Color { r, g, b }
}
