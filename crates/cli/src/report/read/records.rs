//! The records of a recording, read one at a time into a [`Reader`]: from a file, or from
//! perf's pipe while it records, with the reader locked only while a record is taken in.

use super::Reader;
use linux_perf_data::{PerfFile, PerfFileRecord, PerfRecordIter};
use std::io::Read;

/// The records of a recording, read one at a time.
pub struct Records<R: Read> {
    pub(super) perf_file: PerfFile,
    pub(super) iter: PerfRecordIter<R>,
    /// For files: how far reading has got, of how many bytes (progress, messages).
    pub(super) measured: Option<(std::rc::Rc<std::cell::Cell<u64>>, u64)>,
    pub(super) bar: Option<indicatif::ProgressBar>,
    pub(super) n: u64,
    /// The stream ended, at its end or at a damaged record.
    pub(super) done: bool,
}

impl<R: Read> Records<R> {
    /// Reads the next record into `reader`; false at the end (or at a damaged record, which
    /// `reader` then says in its problems).
    pub fn next(&mut self, reader: &mut Reader) -> bool {
        self.next_with(|got| reader.got(got))
    }

    /// As [`Records::next`], with `reader` locked only while the record is taken in (never
    /// while waiting for perf to write it).
    pub fn next_locked(&mut self, reader: &std::sync::Mutex<Reader>) -> bool {
        self.next_with(|got| reader.lock().unwrap_or_else(|e| e.into_inner()).got(got))
    }

    fn next_with(&mut self, take: impl FnOnce(Got<'_>)) -> bool {
        if self.done {
            return false;
        }
        match self.iter.next_record(&mut self.perf_file) {
            Ok(Some(record)) => {
                self.n += 1;
                if let (Some(b), Some((pos, _))) = (&self.bar, &self.measured) {
                    if self.n.is_multiple_of(4096) {
                        b.set_position(pos.get());
                    }
                }
                take(Got::Record(record));
                true
            }
            Ok(None) => {
                self.end();
                false
            }
            Err(e) => {
                // A damaged record in the middle: what came before it stands.
                take(Got::Problem(match &self.measured {
                    Some((pos, total)) => format!(
                        "stopped reading at a damaged record near byte {} of {total} ({e}); \
                         the report covers the records before it",
                        pos.get()
                    ),
                    None => format!(
                        "stopped reading perf's output at a damaged record ({e}); the report \
                         covers the records before it"
                    ),
                }));
                self.end();
                false
            }
        }
    }

    fn end(&mut self) {
        self.done = true;
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

/// What [`Records::next_with`] read: a record, or where the stream broke.
pub(super) enum Got<'a> {
    Record(PerfFileRecord<'a>),
    Problem(String),
}
