//! The CLI's side of perfpy's dormant attach (CPython 3.8–3.13 started with
//! `PERFPY_ATTACH=1`): find the extension's exported `PERFPY_CONTROL` block in the process,
//! write a request into it, and wait for the process to have carried it out. The layout is
//! the extension's `dormant::Control`.

use super::process::{self, read_u32, Refusal};
use object::{Object, ObjectSymbol};
use std::path::Path;
use std::time::{Duration, Instant};

const MAGIC: &[u8; 16] = b"perfpy-control-1";
const ARMED: u64 = 16;
const REQUEST: u64 = 20;
const DONE: u64 = 24;
const STATE: u64 = 28;

/// What the process's perfpy says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Armed: the block is at this address.
    Armed(u64),
    /// perfpy is loaded but was not started with `PERFPY_ATTACH=1`.
    NotArmed,
    /// No perfpy extension is loaded.
    NoPerfpy,
}

/// Looks for perfpy's control block in process `pid`.
pub fn find(pid: u32) -> Result<Found, Refusal> {
    for (path, base) in process::mapped_files(pid)? {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if !name.starts_with("_native.") || !path.to_string_lossy().contains("perfpy") {
            continue;
        }
        let Some(address) = control_address(&process::on_disk(pid, &path), base) else {
            continue;
        };
        let mut block = [0u8; 32];
        process::read(pid, address, &mut block)?;
        if &block[..16] != MAGIC {
            continue;
        }
        let armed = u32::from_le_bytes(
            block[ARMED as usize..ARMED as usize + 4]
                .try_into()
                .unwrap(),
        );
        return Ok(if armed == 1 {
            Found::Armed(address)
        } else {
            Found::NotArmed
        });
    }
    Ok(Found::NoPerfpy)
}

fn control_address(binary: &Path, base: u64) -> Option<u64> {
    let data = std::fs::read(binary).ok()?;
    let file = object::File::parse(&*data).ok()?;
    let symbol = file
        .dynamic_symbols()
        .find(|s| s.name() == Ok("PERFPY_CONTROL"))?;
    process::in_memory(&file, base, symbol.address())
}

/// The process's trampoline after it carried out a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Off,
    On,
    /// On before a switch-on asked for it (names from the start): left as it was.
    AlreadyOn,
}

/// What to ask of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request<'a> {
    /// Switch on, with this backend.
    On(&'a str),
    /// Switch off; with `release`, also close and remove the perf map or jitdump (collected
    /// already).
    Off { release: bool },
}

/// Asks the process to carry out `what` and waits up to `timeout`: `Some(state)` once
/// carried out (`Err` if it failed there), `None` on timeout.
pub fn request(
    pid: u32,
    block: u64,
    what: Request,
    timeout: Duration,
) -> Result<Option<State>, Refusal> {
    let done = read_u32(pid, block + DONE)?;
    let code: u32 = match what {
        Request::On("perf") => 1,
        Request::On(_) => 2,
        Request::Off { release: true } => 3,
        Request::Off { release: false } => 4,
    };
    process::write(pid, block + REQUEST, &code.to_le_bytes())?;
    let started = Instant::now();
    while started.elapsed() < timeout {
        std::thread::sleep(Duration::from_millis(20));
        if read_u32(pid, block + DONE)? != done {
            return match read_u32(pid, block + STATE)? {
                2 => Err(Refusal::Other(format!(
                    "the switch failed inside process {pid} (its stderr says why)"
                ))),
                1 => Ok(Some(State::On)),
                3 => Ok(Some(State::AlreadyOn)),
                _ => Ok(Some(State::Off)),
            };
        }
    }
    Ok(None)
}
