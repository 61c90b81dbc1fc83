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

/// Asks the process to switch on (`Some(backend)`) or off (`None`) and waits up to
/// `timeout`: `Some(active)` once carried out (`Err` if it failed there), `None` on timeout.
pub fn request(
    pid: u32,
    block: u64,
    backend: Option<&str>,
    timeout: Duration,
) -> Result<Option<bool>, Refusal> {
    let done = read_u32(pid, block + DONE)?;
    let code: u32 = match backend {
        Some("perf") => 1,
        Some(_) => 2,
        None => 3,
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
                s => Ok(Some(s == 1)),
            };
        }
    }
    Ok(None)
}
