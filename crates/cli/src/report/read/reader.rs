//! [`Reader`]: a [`Reading`] of the architecture the recording was made on, chosen at its
//! start from perf's header. Everything after that is monomorphic: one match per record.

use super::arch::{Aarch64, X86_64};
use super::records::Got;
use super::Reading;
use crate::report::{Profile, Sample};
use linux_perf_data::PerfFileRecord;

/// What the records read so far make: the processes, and the profile.
pub enum Reader {
    X86_64(Reading<X86_64>),
    Aarch64(Reading<Aarch64>),
}

/// `$body` with `$r` bound to the reading, whichever its architecture.
macro_rules! each {
    ($self:expr, $r:ident => $body:expr) => {
        match $self {
            Reader::X86_64($r) => $body,
            Reader::Aarch64($r) => $body,
        }
    };
}

impl Reader {
    /// Takes in one record.
    pub fn take(&mut self, record: PerfFileRecord<'_>) {
        each!(self, r => r.take(record))
    }

    pub(super) fn got(&mut self, got: Got<'_>) {
        each!(self, r => r.got(got))
    }

    /// The profile so far (see [`Reading::profile`]).
    pub fn profile(&self) -> &Profile {
        each!(self, r => r.profile())
    }

    /// The profile so far, to intern stacks in.
    pub fn profile_mut(&mut self) -> &mut Profile {
        each!(self, r => r.profile_mut())
    }

    /// See [`Reading::follow_names`].
    pub fn follow_names(&mut self) {
        each!(self, r => r.follow_names())
    }

    /// See [`Reading::take_samples`].
    pub fn take_samples(&mut self, horizon: u64) -> Vec<Sample> {
        each!(self, r => r.take_samples(horizon))
    }

    /// See [`Reading::newest`].
    pub fn newest(&self) -> u64 {
        each!(self, r => r.newest())
    }

    /// The profile of the whole recording.
    pub fn finish(self) -> Profile {
        each!(self, r => r.finish())
    }
}
