//! The cold path's work: a code object's stub, made once per code object and process (or
//! announced again after a fork or a backend switch), announced through the active backend
//! before it first runs, and cached in the code object's [`Entry`]. Outside the home, where
//! every interpreter brings its own code objects of the same functions, code announced alike
//! shares one stub. Called from the hook's cold path and from `compile_code`.

use crate::backend::Announcement;
use crate::entry::{self, Entry, Place};
use crate::error::Error;
use crate::state::{self, SharedStub, StubKey, GENERATION};
use crate::{cpython, interpreters, names};
use pyo3::ffi;
use std::sync::atomic::Ordering;

/// The stub address for `code`, after making sure this process's map or dump names it.
///
/// # Safety
/// The GIL is held and `code` is a code object; `place` is where its entry lives in the
/// current interpreter.
pub(crate) unsafe fn compile(
    code: *mut ffi::PyObject,
    place: Place,
) -> Result<Option<usize>, Error> {
    let mut inner = state::lock();
    if !state::is_active() {
        return Ok(None);
    }
    let index = match place {
        Place::Home | Place::Shared => place.index(),
        Place::Elsewhere(_, index) if index >= 0 => index,
        // SAFETY: the GIL of `interp`, the current interpreter, is held.
        Place::Elsewhere(interp, _) => match unsafe { interpreters::request_index(interp) } {
            Some(index) => index,
            None => return Ok(None),
        },
    };
    let kind = inner.kind;
    let generation = GENERATION.load(Ordering::Relaxed);
    let existing = match place {
        Place::Shared => inner.shared.get(&(code as usize)).map(|&p| p as *mut Entry),
        // SAFETY: the GIL is held and `code` is a code object (this function's contract).
        _ => unsafe { entry::get(code, index) },
    };
    // Code of other interpreters takes the stub of any code announced alike before it.
    let by_name = matches!(place, Place::Elsewhere(..));
    // SAFETY: entries live as long as their code object, which the running frame holds.
    if let Some(e) = existing.map(|p| unsafe { &mut *p }) {
        if e.stub != 0 && e.backend == Some(kind) {
            if e.generation != generation {
                // A stub made before fork() (or before a backend switch back): announce it
                // in this process's own file.
                // SAFETY: the GIL is held, `code` is a code object, and no exception is set
                // (the cold path saved it; `compile_code` runs without one).
                let stub = unsafe { describe(code, e.stub, e.qualname.as_deref()) };
                announce(&mut inner, &stub)?;
                if by_name {
                    let key = (kind, stub.name, stub.location);
                    if let Some(shared) = inner.by_name.get_mut(&key) {
                        shared.generation = generation;
                    }
                }
                e.generation = generation;
            }
            return Ok(Some(e.stub));
        }
    }
    // SAFETY: an entry lives as long as its code object, which the running frame holds.
    let hint = existing.and_then(|p| unsafe { (*p).qualname.clone() });
    // SAFETY: as for the re-announcement above: GIL held, a code object, no exception set.
    let stub = unsafe { describe(code, 0, hint.as_deref()) };
    // The announcement is in the file before the function first runs.
    let addr = if by_name {
        stub_by_name(&mut inner, stub, generation)?
    } else {
        new_stub(&mut inner, stub)?
    };
    match existing {
        Some(p) => {
            // SAFETY: the entry is alive (its code object is running).
            let e = unsafe { &mut *p };
            e.stub = addr;
            e.generation = generation;
            e.backend = Some(kind);
        }
        None => {
            let entry = Entry {
                stub: addr,
                generation,
                backend: Some(kind),
                qualname: None,
            };
            if let Place::Shared = place {
                // Static code objects live as long as the process, and so does their entry.
                let p = Box::into_raw(Box::new(entry));
                inner.shared.insert(code as usize, p as usize);
            } else {
                // SAFETY: no entry is stored for `code` (checked above, under the GIL).
                unsafe { entry::store(code, index, entry) };
            }
        }
    }
    if !cpython::HAS_CO_QUALNAME && index >= 0 {
        let mut name_child = |child: *mut ffi::PyObject, qualname: Box<str>| {
            // SAFETY: `child` is a code object found in co_consts, kept alive by `code`.
            if unsafe { entry::get(child, index) }.is_none() {
                let entry = Entry {
                    stub: 0,
                    generation: 0,
                    backend: None,
                    qualname: Some(qualname),
                };
                // SAFETY: as above; no entry is stored for `child`.
                unsafe { entry::store(child, index, entry) };
            }
        };
        // SAFETY: GIL held, `code` is a code object, no exception set (as above).
        unsafe { names::name_nested_code(code, hint.as_deref(), &mut name_child) };
    }
    Ok(Some(addr))
}

/// What perf is told about the stub at `addr` running `code`.
///
/// # Safety
/// The GIL is held, no exception is set, and `code` is a code object.
unsafe fn describe(code: *mut ffi::PyObject, addr: usize, qualname: Option<&str>) -> Announcement {
    // SAFETY: this function's contract is describe's: GIL held, no exception set, a code object.
    let (name, location) = unsafe { names::describe(code, qualname) };
    Announcement {
        addr,
        name: name.into_boxed_str(),
        location: location.map(|(f, l)| (f.into_boxed_str(), l)),
    }
}

/// A new stub from the active backend's pool, announced as `stub` says.
fn new_stub(inner: &mut state::Inner, mut stub: Announcement) -> Result<usize, Error> {
    stub.addr = inner.backend().pool()?.alloc()?.addr;
    announce(inner, &stub)?;
    inner.compiled += 1;
    Ok(stub.addr)
}

/// The stub announced as `stub` says: the one made for code announced alike, if any
/// (announced again if this process's file hasn't had it since a fork or a backend switch),
/// else a new one, kept for the next.
fn stub_by_name(
    inner: &mut state::Inner,
    mut stub: Announcement,
    generation: u32,
) -> Result<usize, Error> {
    let key: StubKey = (inner.kind, stub.name.clone(), stub.location.clone());
    if let Some(shared) = inner.by_name.get(&key) {
        let (addr, announced) = (shared.addr, shared.generation);
        if announced != generation {
            stub.addr = addr;
            announce(inner, &stub)?;
            if let Some(shared) = inner.by_name.get_mut(&key) {
                shared.generation = generation;
            }
        }
        return Ok(addr);
    }
    let addr = new_stub(inner, stub)?;
    inner.by_name.insert(key, SharedStub { addr, generation });
    Ok(addr)
}

/// Tells perf, through the active backend, about a stub.
fn announce(inner: &mut state::Inner, stub: &Announcement) -> Result<(), Error> {
    inner.backend().announce(stub)?;
    inner.announced += 1;
    Ok(())
}
