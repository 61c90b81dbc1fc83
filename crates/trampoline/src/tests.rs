use super::*;

/// The stub's C signature: `evaluator` last, the first three passed through.
type StubFn = unsafe extern "C" fn(usize, usize, isize, usize) -> usize;

extern "C" fn sum_evaluator(a0: usize, a1: usize, a2: isize) -> usize {
    a0.wrapping_mul(1000)
        .wrapping_add(a1.wrapping_mul(10))
        .wrapping_add(a2 as usize)
}

fn call(stub: &Stub, a0: usize, a1: usize, a2: isize, eval: usize) -> usize {
    // SAFETY: `stub.addr` is a read+execute copy of the host template, whose ABI is StubFn.
    let f: StubFn = unsafe { std::mem::transmute::<usize, StubFn>(stub.addr) };
    // SAFETY: the template forwards its first three arguments to `eval`, which is a valid
    // extern "C" function with a compatible signature.
    unsafe { f(a0, a1, a2, eval) }
}

/// Permissions of the mapping that holds `addr`, from /proc/self/maps ("r-xp", ...).
fn perms_of(addr: usize) -> String {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let range = f.next().unwrap();
        let perms = f.next().unwrap();
        let (lo, hi) = range.split_once('-').unwrap();
        let (lo, hi) = (
            usize::from_str_radix(lo, 16).unwrap(),
            usize::from_str_radix(hi, 16).unwrap(),
        );
        if (lo..hi).contains(&addr) {
            return perms.to_string();
        }
    }
    panic!("{addr:#x} is not mapped")
}

#[test]
fn stubs_are_distinct_and_fill_arenas_in_order() {
    let mut pool = StubPool::for_host().unwrap();
    let per_arena = pool.slots_per_arena();
    assert_eq!(per_arena, ARENA_SIZE / pool.template().stride);
    let stubs: Vec<Stub> = (0..per_arena + 3).map(|_| pool.alloc().unwrap()).collect();
    assert_eq!(pool.arena_count(), 2);
    assert_eq!(pool.mapped_bytes(), 2 * ARENA_SIZE);
    assert_eq!(pool.stubs_handed_out(), (per_arena + 3) as u64);
    for (i, s) in stubs.iter().enumerate() {
        assert_eq!(s.index, i as u64);
        assert_eq!(s.size, pool.template().code.len());
        assert!(pool.contains(s.addr));
    }
    for w in stubs[..per_arena].windows(2) {
        assert_eq!(w[1].addr - w[0].addr, pool.template().stride);
    }
    let mut addrs: Vec<usize> = stubs.iter().map(|s| s.addr).collect();
    addrs.sort_unstable();
    addrs.dedup();
    assert_eq!(addrs.len(), stubs.len());
}

#[test]
fn each_slot_holds_the_template_and_its_own_index() {
    let mut pool = StubPool::for_host().unwrap();
    let t = pool.template();
    for _ in 0..5 {
        let s = pool.alloc().unwrap();
        // SAFETY: the stub's slot is `stride` readable bytes inside a live arena.
        let slot = unsafe { std::slice::from_raw_parts(s.addr as *const u8, t.stride) };
        assert_eq!(&slot[..t.code.len()], t.code);
        let idx = &slot[t.code.len()..t.code.len() + 8];
        assert_eq!(idx, s.index.to_le_bytes());
    }
}

#[test]
fn wider_strides_keep_template_and_index() {
    let t = arch::host().unwrap();
    let mut pool = StubPool::with_stride(t, 90);
    assert_eq!(pool.stride(), 96);
    assert_eq!(pool.slots_per_arena(), ARENA_SIZE / 96);
    let a = pool.alloc().unwrap();
    let b = pool.alloc().unwrap();
    assert_eq!(b.addr - a.addr, 96);
    // SAFETY: the slot's first unique_len bytes are inside a live arena.
    let bytes = unsafe { std::slice::from_raw_parts(b.addr as *const u8, pool.unique_len()) };
    assert_eq!(&bytes[..t.code.len()], t.code);
    assert_eq!(&bytes[t.code.len()..], 1u64.to_le_bytes());
}

#[test]
fn arenas_are_read_execute_never_writable() {
    let mut pool = StubPool::for_host().unwrap();
    let s = pool.alloc().unwrap();
    assert_eq!(perms_of(s.addr), "r-xp");
}

#[cfg(target_arch = "x86_64")]
#[test]
fn stub_forwards_arguments_and_result_by_both_methods() {
    let t = arch::host().unwrap();
    let image: Vec<u8> = t.code.to_vec();
    for method in [Method::Mprotect, Method::Memfd] {
        let mem = ExecMemory::with_method(&image, method).unwrap();
        assert_eq!(mem.method(), method);
        assert!(perms_of(mem.addr()).starts_with("r-x"), "{method:?}");
        let stub = Stub {
            addr: mem.addr(),
            size: t.code.len(),
            index: 0,
        };
        let r = call(&stub, 7, 8, 9, sum_evaluator as *const () as usize);
        assert_eq!(r, 7089, "{method:?}");
        let r = call(&stub, 1, 2, -3, sum_evaluator as *const () as usize);
        assert_eq!(r, 1017, "{method:?}");
    }
}

#[cfg(target_arch = "x86_64")]
mod frame_record {
    use super::*;

    /// Only ever called from `call_pair`'s asm, which reads rax and rdx.
    /// Returns, as seen on entry from the stub: rax = the return address on top of the stack,
    /// rdx = rbp - rsp. With a frame record, rbp points just above that return address (8).
    #[unsafe(naked)]
    extern "C" fn probe_evaluator() {
        core::arch::naked_asm!("mov rax, [rsp]", "mov rdx, rbp", "sub rdx, rsp", "ret",)
    }

    /// Like [`probe_evaluator`] but returns the saved caller frame (rax = [rbp], rdx = the
    /// return address above it, [rbp+8]), which a frame-pointer unwinder reads next.
    #[unsafe(naked)]
    extern "C" fn caller_evaluator() {
        core::arch::naked_asm!("mov rax, [rbp]", "mov rdx, [rbp+8]", "ret")
    }

    /// Calls `stub` with `rbp` set to a marker so the saved frame can be recognised,
    /// returning the evaluator's pair and the address right after our own `call`.
    fn call_pair(stub: usize, eval: usize) -> ([usize; 2], usize) {
        let (lo, hi, after_call): (usize, usize, usize);
        // SAFETY: calls the read+execute stub with the evaluator in rcx as its ABI demands;
        // rbp is saved and restored around the call, every clobbered register is declared,
        // and the stack is 16-byte aligned at the call (we push an even number of words).
        unsafe {
            core::arch::asm!(
                "push rbp",
                "sub rsp, 8",
                "mov rbp, 0x5eed",
                "lea r8, [rip + 2f]",
                "call r9",
                "2:",
                "add rsp, 8",
                "pop rbp",
                in("r9") stub,
                in("rcx") eval,
                out("rax") lo,
                out("rdx") hi,
                out("r8") after_call,
                clobber_abi("C"),
            );
        }
        ([lo, hi], after_call)
    }

    #[test]
    fn evaluator_sees_a_frame_record_inside_the_stub() {
        let mut pool = StubPool::for_host().unwrap();
        let s = pool.alloc().unwrap();
        let ([ret, rbp_minus_rsp], _) = call_pair(s.addr, probe_evaluator as *const () as usize);
        assert_eq!(ret, s.addr + arch::x86_64::RETURN_OFFSET);
        assert_eq!(
            rbp_minus_rsp, 8,
            "rbp must point at the saved rbp just above the return address"
        );
    }

    #[test]
    fn frame_record_links_to_the_stubs_caller() {
        let mut pool = StubPool::for_host().unwrap();
        let s = pool.alloc().unwrap();
        let ([saved_rbp, caller_ret], after_call) =
            call_pair(s.addr, caller_evaluator as *const () as usize);
        assert_eq!(saved_rbp, 0x5eed, "the stub saved its caller's rbp");
        assert_eq!(
            caller_ret, after_call,
            "[rbp+8] is the return address into the caller"
        );
    }
}
