//! A progress bar while a large recording is read (on a terminal, over 32 MB).

use std::cell::Cell;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::rc::Rc;

/// Counts the bytes read, for the progress bar.
pub struct Counting<R> {
    inner: R,
    pos: Rc<Cell<u64>>,
}

impl<R> Counting<R> {
    /// `inner`, and a handle on how far into it reading has got.
    pub fn new(inner: R) -> (Counting<R>, Rc<Cell<u64>>) {
        let pos = Rc::new(Cell::new(0));
        (
            Counting {
                inner,
                pos: pos.clone(),
            },
            pos,
        )
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos.set(self.pos.get() + n as u64);
        Ok(n)
    }
}

impl<R: Seek> Seek for Counting<R> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let p = self.inner.seek(to)?;
        self.pos.set(p);
        Ok(p)
    }
}

/// A bar for reading `path` (`total` bytes), if one is wanted and the file is large.
pub fn bar(wanted: bool, path: &Path, total: u64) -> Option<indicatif::ProgressBar> {
    if !wanted || total <= 32 << 20 {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "reading {msg} [{bar:30}] {bytes}/{total_bytes} ({eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(path.display().to_string());
    Some(bar)
}
