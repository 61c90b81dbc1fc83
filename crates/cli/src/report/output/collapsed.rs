//! Folded stacks: one `root;...;leaf count` line per distinct stack, sorted. The count is
//! of samples, or of microseconds in wall-clock and off-CPU profiles.

use super::{Meta, Writer};
use crate::report::Profile;
use anyhow::Result;
use std::collections::BTreeMap;
use std::io::Write;

pub struct Collapsed;

impl Writer for Collapsed {
    fn write(&self, profile: &Profile, _meta: &Meta, out: &mut dyn Write) -> Result<()> {
        for line in folded(profile) {
            writeln!(out, "{line}")?;
        }
        Ok(())
    }
}

/// A frame name as one field of a folded line (no `;`, no line break).
pub(super) fn clean(name: &str) -> String {
    name.replace([';', '\n'], ",")
}

/// `root;...;leaf count` lines, sorted; counts in microseconds when the profile measures
/// time.
pub(super) fn folded(profile: &Profile) -> Vec<String> {
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
    let time = profile.measure.is_time();
    lines
        .into_iter()
        .map(|(k, c)| (k, if time { (c + 500) / 1000 } else { c }))
        .filter(|&(_, c)| c > 0)
        .map(|(k, c)| format!("{k} {c}"))
        .collect()
}
