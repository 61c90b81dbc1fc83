//! The symbol perf shows for a code object: `py::<qualname>:<filename>`, as CPython writes it.
//!
//! 3.11+ code objects carry `co_qualname`. 3.8–3.10 have only `co_name`, so perfpy works the
//! qualified name out the way the compiler does, from the code object that contains it: when
//! a code object gets its stub, each code object among its constants is named
//! `<name>` (inside a module), `<parent>.<name>` (inside a class body) or
//! `<parent>.<locals>.<name>` (inside a function). Code first seen without a known parent
//! (functions of modules imported before activation) falls back to `co_name`.

use pyo3::ffi;
use std::ffi::CStr;

/// `CO_NEWLOCALS`: set on function-like code, clear on module and class bodies.
const CO_NEWLOCALS: i64 = 0x0002;

/// What perf is told about `code`: its symbol `py::<qualname>:<filename>` (using `qualname`
/// when the caller knows better than the code object itself, 3.8–3.10) and its file and first
/// line, where both are known (the jitdump's line table). `co_filename` is read once.
///
/// # Safety
/// The GIL is held, no exception is set, and `code` is a code object.
pub(crate) unsafe fn describe(
    code: *mut ffi::PyObject,
    qualname: Option<&str>,
) -> (String, Option<(String, i32)>) {
    let qual = match qualname {
        Some(q) => q.to_string(),
        // SAFETY: this function's contract (GIL, no exception, a code object) is its own.
        None => unsafe { own_qualname(code) },
    };
    // SAFETY: GIL held, no exception set, `code` a code object (this function's contract).
    let file = unsafe { str_attr(code, c"co_filename") };
    let symbol = format!("py::{qual}:{}", file.as_deref().unwrap_or(""));
    // SAFETY: as above.
    let line = unsafe { int_attr(code, c"co_firstlineno") };
    let location = file
        .zip(line)
        .map(|(f, l)| (f, i32::try_from(l).unwrap_or(0)));
    (symbol, location)
}

/// `co_qualname` on 3.11+, `co_name` before.
///
/// # Safety
/// As for [`describe`].
unsafe fn own_qualname(code: *mut ffi::PyObject) -> String {
    let attr = if crate::cpython::HAS_CO_QUALNAME {
        c"co_qualname"
    } else {
        c"co_name"
    };
    // SAFETY: GIL held, no exception set, `code` a code object (this function's contract).
    unsafe { str_attr(code, attr) }.unwrap_or_default()
}

/// Calls `found(child, qualname)` for every code object among `code`'s constants.
///
/// # Safety
/// As for [`describe`].
pub(crate) unsafe fn name_nested_code(
    code: *mut ffi::PyObject,
    qualname: Option<&str>,
    found: &mut dyn FnMut(*mut ffi::PyObject, Box<str>),
) {
    // SAFETY: GIL held, no exception set, `code` a code object (this function's contract).
    let name = unsafe { str_attr(code, c"co_name") }.unwrap_or_default();
    let parent = qualname.map(str::to_string).unwrap_or_else(|| name.clone());
    // SAFETY: GIL held, no exception set, `code` a code object (this function's contract).
    let flags = unsafe { int_attr(code, c"co_flags") }.unwrap_or(0);
    let prefix = if flags & CO_NEWLOCALS != 0 {
        format!("{parent}.<locals>.")
    } else if name == "<module>" {
        String::new()
    } else {
        format!("{parent}.")
    };
    // SAFETY: GIL held; `code` is a live object.
    let consts = unsafe { ffi::PyObject_GetAttrString(code, c"co_consts".as_ptr()) };
    if consts.is_null() {
        // SAFETY: GIL held; an AttributeError is set.
        unsafe { ffi::PyErr_Clear() };
        return;
    }
    // SAFETY: `consts` is a new reference to an object.
    if unsafe { ffi::PyTuple_Check(consts) } != 0 {
        // SAFETY: `consts` is a tuple.
        let n = unsafe { ffi::PyTuple_Size(consts) };
        for i in 0..n {
            // SAFETY: `i` is in bounds; the item is borrowed from the tuple, which we hold.
            let item = unsafe { ffi::PyTuple_GetItem(consts, i) };
            // SAFETY: a non-null `item` is a live object.
            if !item.is_null() && unsafe { crate::cpython::is_code(item) } {
                // SAFETY: `item` is a code object.
                let child = unsafe { str_attr(item, c"co_name") }.unwrap_or_default();
                found(item, format!("{prefix}{child}").into_boxed_str());
            }
        }
    }
    // SAFETY: releasing the new reference obtained above.
    unsafe { ffi::Py_DECREF(consts) };
}

/// A `str` attribute as UTF-8; unencodable characters (lone surrogates) are escaped.
///
/// # Safety
/// The GIL is held and `obj` is a live object.
unsafe fn str_attr(obj: *mut ffi::PyObject, name: &CStr) -> Option<String> {
    // SAFETY: GIL held; `obj` live; `name` NUL-terminated.
    let value = unsafe { ffi::PyObject_GetAttrString(obj, name.as_ptr()) };
    if value.is_null() {
        // SAFETY: GIL held; clear the AttributeError.
        unsafe { ffi::PyErr_Clear() };
        return None;
    }
    // SAFETY: `value` is a new reference.
    let s = unsafe { to_utf8(value) };
    // SAFETY: releasing it.
    unsafe { ffi::Py_DECREF(value) };
    s
}

/// # Safety
/// The GIL is held and `value` is a live object.
unsafe fn to_utf8(value: *mut ffi::PyObject) -> Option<String> {
    // SAFETY: GIL held.
    if unsafe { ffi::PyUnicode_Check(value) } == 0 {
        return None;
    }
    let mut len: ffi::Py_ssize_t = 0;
    // SAFETY: `value` is a str; the returned buffer lives as long as `value`.
    let p = unsafe { ffi::PyUnicode_AsUTF8AndSize(value, &mut len) };
    if !p.is_null() {
        // SAFETY: CPython guarantees `len` valid UTF-8 bytes at `p`.
        let bytes = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len as usize) };
        return Some(String::from_utf8_lossy(bytes).into_owned());
    }
    // Lone surrogates: encode with backslash escapes instead.
    // SAFETY: GIL held; clear the UnicodeEncodeError and re-encode.
    unsafe { ffi::PyErr_Clear() };
    // SAFETY: `value` is a str; the arguments are NUL-terminated literals.
    let bytes = unsafe {
        ffi::PyUnicode_AsEncodedString(value, c"utf-8".as_ptr(), c"backslashreplace".as_ptr())
    };
    if bytes.is_null() {
        // SAFETY: GIL held.
        unsafe { ffi::PyErr_Clear() };
        return None;
    }
    // SAFETY: `bytes` is a bytes object we own.
    let out = unsafe {
        let p = ffi::PyBytes_AsString(bytes);
        let n = ffi::PyBytes_Size(bytes);
        String::from_utf8_lossy(std::slice::from_raw_parts(p.cast::<u8>(), n as usize)).into_owned()
    };
    // SAFETY: releasing it.
    unsafe { ffi::Py_DECREF(bytes) };
    Some(out)
}

/// An `int` attribute.
///
/// # Safety
/// The GIL is held and `obj` is a live object.
unsafe fn int_attr(obj: *mut ffi::PyObject, name: &CStr) -> Option<i64> {
    // SAFETY: as in str_attr.
    let value = unsafe { ffi::PyObject_GetAttrString(obj, name.as_ptr()) };
    if value.is_null() {
        // SAFETY: GIL held.
        unsafe { ffi::PyErr_Clear() };
        return None;
    }
    // SAFETY: `value` is a new reference to some object.
    let n = unsafe { ffi::PyLong_AsLongLong(value) };
    // SAFETY: GIL held; releasing the reference and any conversion error.
    unsafe {
        ffi::Py_DECREF(value);
        if !ffi::PyErr_Occurred().is_null() {
            ffi::PyErr_Clear();
            return None;
        }
    }
    Some(n)
}
