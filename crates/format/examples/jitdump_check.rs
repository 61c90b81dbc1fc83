//! Reads a jitdump with linux-perf-data (an independent reader) and checks what perf needs:
//! the header, every `JIT_CODE_UNWINDING_INFO` followed (after optional debug info) by a
//! `JIT_CODE_LOAD`, and the unwind data's CIE/FDE covering exactly the loaded code.
//! Prints one line per load (`<addr> <size> <name>`) and a summary; exits 1 on a violation.
//!
//!     cargo run -p perfpy-format --example jitdump_check -- /tmp/jit-1234.dump

use gimli::{BaseAddresses, CieOrFde, EhFrame, LittleEndian, UnwindSection};
use linux_perf_data::jitdump::{JitDumpReader, JitDumpRecord};

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: jitdump_check <jit-PID.dump>");
        std::process::exit(2);
    };
    if let Err(e) = check(&path) {
        eprintln!("{path}: {e}");
        std::process::exit(1);
    }
}

fn check(path: &str) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut reader = JitDumpReader::new(file).map_err(|e| e.to_string())?;
    let h = reader.header().clone();
    if h.version != 1 || h.total_size != 40 || h.flags != 0 {
        return Err(format!("bad header {h:?}"));
    }
    println!("header pid={} elf_mach={}", h.pid, h.elf_machine_arch);
    let mut pending: Option<(Vec<u8>, Vec<u8>)> = None;
    let (mut loads, mut closes) = (0, 0);
    while let Some(raw) = reader.next_record().map_err(|e| e.to_string())? {
        match raw.parse().map_err(|e| e.to_string())? {
            JitDumpRecord::CodeUnwindingInfo(u) => {
                if pending.is_some() {
                    return Err("two unwinding records without a load between them".into());
                }
                // perf (genelf) reads .eh_frame first and the header last; linux-perf-data
                // splits header-first, so rejoin and split at the end.
                let mut blob = u.eh_frame_hdr.as_slice().to_vec();
                blob.extend_from_slice(&u.eh_frame.as_slice());
                let hdr = blob.split_off(blob.len() - u.eh_frame_hdr.len());
                pending = Some((blob, hdr));
            }
            JitDumpRecord::CodeDebugInfo(_) => {}
            JitDumpRecord::CodeLoad(l) => {
                let Some((eh_frame, hdr)) = pending.take() else {
                    return Err(format!(
                        "load {} has no unwinding record before it",
                        l.code_index
                    ));
                };
                let size = l.code_bytes.len() as u64;
                check_cfi(&eh_frame, &hdr, size)
                    .map_err(|e| format!("load {}: {e}", l.code_index))?;
                let name = String::from_utf8_lossy(&l.function_name.as_slice()).into_owned();
                println!("{:x} {:x} {name}", l.code_addr, size);
                loads += 1;
            }
            JitDumpRecord::CodeClose => closes += 1,
            other => return Err(format!("unexpected record {other:?}")),
        }
    }
    println!("loads={loads} close={closes}");
    Ok(())
}

/// The FDE (found through perf's layout: code, then .eh_frame at round8(size)) starts at the
/// code and covers `size` bytes.
fn check_cfi(eh_frame: &[u8], hdr: &[u8], size: u64) -> Result<(), String> {
    if hdr.len() != 20 || hdr[..4] != [1, 0x1b, 0x03, 0x3b] {
        return Err(format!("bad .eh_frame_hdr {hdr:02x?}"));
    }
    let eh = EhFrame::new(eh_frame, LittleEndian);
    let bases = BaseAddresses::default().set_eh_frame(size.next_multiple_of(8));
    let mut entries = eh.entries(&bases);
    let mut fdes = 0;
    while let Some(entry) = entries.next().map_err(|e| e.to_string())? {
        if let CieOrFde::Fde(partial) = entry {
            let fde = partial
                .parse(|_, b, o| eh.cie_from_offset(b, o))
                .map_err(|e| e.to_string())?;
            if fde.initial_address() != 0 || fde.len() != size {
                return Err(format!(
                    "FDE covers {:#x}+{} for code of {size} bytes",
                    fde.initial_address(),
                    fde.len()
                ));
            }
            fdes += 1;
        }
    }
    if fdes != 1 {
        return Err(format!("{fdes} FDEs"));
    }
    Ok(())
}
