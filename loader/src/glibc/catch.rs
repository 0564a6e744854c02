//! glibc's dynamic-linker exceptions for libc 2.37 and later, which
//! import `_dl_catch_exception`, `_dl_signal_exception`, `_dl_signal_error`
//! and friends from the loader instead of keeping their own copies.
//! The innermost catch frame of each
//! thread hangs off its `struct pthread.rtld_catch`, as in glibc.
//!
//! Unwinding is `arch::ld_cah_try`/`ld_cah_throw` (assembly): a signal
//! jumps from deep inside libc or the loader straight back to the catch.
//! Code that can be unwound this way holds no value that needs dropping
//! when it signals (the signalling functions below take only raw data).
#![allow(unsafe_code)]

use alloc::vec::Vec;

use super::layout::{Arch, Field};
use super::raw::Raw;
use super::runtime::rt;
use crate::arch::native::{self, JMP_WORDS};

/// One catch frame, on the stack of `_dl_catch_exception`.
#[repr(C)]
struct Frame {
    buf: [usize; JMP_WORDS],
    objname: usize,
    errstring: usize,
    message_buffer: usize,
    errcode: i32,
    prev: usize,
}

/// Where the current thread's innermost frame is recorded.
fn slot() -> Option<usize> {
    let l = super::runtime::layout()?;
    let f = l.pthread.rtld_catch?;
    let tp = native::thread_pointer_value();
    let pd = match l.arch {
        Arch::X86_64 => tp,
        Arch::Aarch64 => tp - l.pthread.size as usize,
    };
    Some(pd + f.off as usize)
}

fn get_frame() -> usize {
    // SAFETY: the slot is a pointer-sized field of this thread's struct pthread.
    slot().map_or(0, |s| unsafe { *(s as *const usize) })
}

fn set_frame(f: usize) {
    if let Some(s) = slot() {
        // SAFETY: as in `get_frame`.
        unsafe { *(s as *mut usize) = f };
    }
}

fn exception_fields() -> Option<(Field, Field, Field)> {
    let l = super::runtime::layout()?;
    Some((l.dl_exception.objname, l.dl_exception.errstring, l.dl_exception.message_buffer))
}

/// `int _dl_catch_exception(struct dl_exception *, void (*)(void *), void *)`.
///
/// # Safety
/// `e` is 0 or a `struct dl_exception` of the caller; `operate` is
/// a function taking `args`, called once.
#[cfg_attr(feature = "rtld", no_mangle)]
pub unsafe extern "C" fn _dl_catch_exception(e: usize, operate: usize, args: usize) -> i32 {
    if e == 0 {
        // "Run with catching disabled": a signal inside is fatal.
        let saved = get_frame();
        set_frame(0);
        // SAFETY: libc's callback with its argument.
        let f: extern "C" fn(usize) = unsafe { core::mem::transmute(operate) };
        f(args);
        set_frame(saved);
        return 0;
    }
    let mut frame = Frame { buf: [0; JMP_WORDS], objname: 0, errstring: 0, message_buffer: 0, errcode: 0, prev: get_frame() };
    set_frame(&mut frame as *mut Frame as usize);
    // SAFETY: `ld_cah_try` calls operate(args); a throw to this frame
    // returns here with 1, all registers restored.
    let thrown = unsafe { native::ld_cah_try(operate, args, &mut frame.buf) };
    // Read through a volatile pointer: the frame was written by the
    // thrower behind the compiler's back.
    // SAFETY: `frame` is live on this stack.
    let fr = unsafe { core::ptr::read_volatile(&frame) };
    set_frame(fr.prev);
    let Some((o, s, m)) = exception_fields() else { return 0 };
    // SAFETY: `e` is the caller's struct dl_exception.
    let ex = unsafe { Raw::new(e) };
    if thrown == 0 {
        ex.put(o, 0);
        ex.put(s, 0);
        ex.put(m, 0);
        0
    } else {
        ex.put(o, fr.objname as u64);
        ex.put(s, fr.errstring as u64);
        ex.put(m, fr.message_buffer as u64);
        fr.errcode
    }
}

/// `void _dl_signal_exception(int, struct dl_exception *, const char *occasion)`.
///
/// # Safety
/// `e` is a `struct dl_exception` filled by `_dl_exception_create`;
/// `occasion` is 0 or a NUL-terminated string. It does not return.
#[cfg_attr(feature = "rtld", no_mangle)]
pub unsafe extern "C" fn _dl_signal_exception(errcode: i32, e: usize, occasion: usize) -> ! {
    let Some((o, s, m)) = exception_fields() else { crate::sys::exit_group(127) };
    // SAFETY: the caller's struct dl_exception.
    let ex = unsafe { Raw::new(e) };
    let (objname, errstring, buffer) = (ex.get(o) as usize, ex.get(s) as usize, ex.get(m) as usize);
    let f = get_frame();
    if f == 0 {
        // SAFETY: strings from a dl_exception (NUL-terminated or NULL).
        unsafe { fatal(occasion, objname, errstring) }
    }
    // SAFETY: `f` is a live Frame of an enclosing `_dl_catch_exception`.
    unsafe {
        let fr = f as *mut Frame;
        (*fr).objname = objname;
        (*fr).errstring = errstring;
        (*fr).message_buffer = buffer;
        (*fr).errcode = errcode;
        native::ld_cah_throw(&(*fr).buf)
    }
}

/// `void _dl_signal_error(int, const char *objname, const char *occasion, const char *errstring)`.
///
/// # Safety
/// `objname`, `occasion` and `errstring` are 0 or NUL-terminated
/// strings. It does not return.
#[cfg_attr(feature = "rtld", no_mangle)]
pub unsafe extern "C" fn _dl_signal_error(errcode: i32, objname: usize, occasion: usize, errstring: usize) -> ! {
    let mut e = [0usize; 4];
    let msg = if errstring == 0 { c"DYNAMIC LINKER BUG!!!".as_ptr() as usize } else { errstring };
    // SAFETY: `e` is large enough for a struct dl_exception (3 words).
    unsafe {
        _dl_exception_create(e.as_mut_ptr() as usize, objname as *const u8, msg as *const u8);
        _dl_signal_exception(errcode, e.as_mut_ptr() as usize, occasion)
    }
}

/// `int _dl_catch_error(const char **objname, const char **errstring, bool *mallocedp, operate, args)`.
///
/// # Safety
/// the three out-pointers are writable; `operate` is a function
/// taking `args`, called once.
pub unsafe extern "C" fn dl_catch_error(
    objname: *mut usize,
    errstring: *mut usize,
    mallocedp: *mut bool,
    operate: usize,
    args: usize,
) -> i32 {
    let mut e = [0usize; 4];
    // SAFETY: forwarded.
    let code = unsafe { _dl_catch_exception(e.as_mut_ptr() as usize, operate, args) };
    let Some((o, s, m)) = exception_fields() else { return code };
    // SAFETY: our own local exception and the caller's out parameters.
    unsafe {
        let ex = Raw::new(e.as_mut_ptr() as usize);
        *objname = ex.get(o) as usize;
        *errstring = ex.get(s) as usize;
        *mallocedp = ex.get(m) != 0 && ex.get(m) == ex.get(s);
    }
    code
}

/// `void _dl_exception_free(struct dl_exception *)`.
///
/// # Safety
/// `e` is a `struct dl_exception` filled by `_dl_exception_create`
/// and not freed before.
#[cfg_attr(feature = "rtld", no_mangle)]
pub unsafe extern "C" fn _dl_exception_free(e: usize) {
    let Some((o, s, m)) = exception_fields() else { return };
    // SAFETY: the caller's struct dl_exception.
    let ex = unsafe { Raw::new(e) };
    let buf = ex.get(m) as usize;
    if buf != 0 {
        super::runtime::libc_free(buf);
    }
    ex.put(o, 0);
    ex.put(s, 0);
    ex.put(m, 0);
}

/// `void _dl_exception_create_format(struct dl_exception *, const char *objname, const char *fmt, ...)`:
/// `%s`, `%d`/`%u`/`%x` (with `l`/`z`), `%%`. The variadic arguments are
/// integers or pointers, which both ABIs pass like fixed ones.
///
/// # Safety
/// `e` is a `struct dl_exception` of the caller; `objname` is
/// NULL or a NUL-terminated string; `fmt` is a glibc format whose `%s`
/// arguments are NUL-terminated strings.
#[cfg_attr(feature = "rtld", no_mangle)]
pub unsafe extern "C" fn _dl_exception_create_format(e: usize, objname: *const u8, fmt: *const u8, a: usize, b: usize, c: usize) {
    let args = [a, b, c];
    let mut out: alloc::vec::Vec<u8> = alloc::vec::Vec::new();
    let mut next = 0;
    // SAFETY: a NUL-terminated format and matching arguments (caller).
    unsafe {
        let f = core::slice::from_raw_parts(fmt, crate::cstr::strlen(fmt as usize));
        let mut i = 0;
        while i < f.len() {
            if f[i] != b'%' {
                out.push(f[i]);
                i += 1;
                continue;
            }
            i += 1;
            while matches!(f.get(i), Some(b'l') | Some(b'z')) {
                i += 1;
            }
            let v = args.get(next).copied().unwrap_or(0);
            match f.get(i) {
                Some(b's') => {
                    next += 1;
                    if v != 0 {
                        out.extend_from_slice(core::slice::from_raw_parts(v as *const u8, crate::cstr::strlen(v)));
                    }
                }
                Some(b'd') | Some(b'u') => {
                    next += 1;
                    out.extend_from_slice(alloc::format!("{v}").as_bytes());
                }
                Some(b'x') => {
                    next += 1;
                    out.extend_from_slice(alloc::format!("{v:x}").as_bytes());
                }
                Some(b'%') => out.push(b'%'),
                _ => {}
            }
            i += 1;
        }
        out.push(0);
        _dl_exception_create(e, objname, out.as_ptr());
    }
}

/// Prints `<program>: <occasion>: <object>: <message>` and exits 127.
///
/// # Safety
/// The arguments are NUL-terminated strings or 0.
unsafe fn fatal(occasion: usize, objname: usize, errstring: usize) -> ! {
    let show = |p: usize| -> &'static str {
        if p == 0 {
            return "";
        }
        // SAFETY: NUL-terminated (caller).
        crate::diag::show(unsafe { core::slice::from_raw_parts(p as *const u8, crate::cstr::strlen(p)) })
    };
    let occ = if occasion == 0 { "error while loading shared libraries" } else { show(occasion) };
    crate::diag::fatal(&crate::err!(show(objname), "{}: {}", occ, show(errstring)))
}

/// Raises a dynamic-linking error through libc's `_dl_signal_error`, which
/// unwinds (`longjmp`) to the catch frame libc's `dlerror` machinery set.
/// Callers hold nothing that needs dropping.
pub fn signal(objname: *const u8, msg: &'static [u8]) -> ! {
    let f = rt().map_or(0, |r| r.signal_error);
    let f = if f != 0 { f } else { _dl_signal_error as *const () as usize };
    if f != 0 {
        // SAFETY: libc's `_dl_signal_error(int, const char *, const char *, const char *)`
        // never returns; `msg` is NUL-terminated and static.
        unsafe {
            let f: extern "C" fn(i32, *const u8, *const u8, *const u8) -> ! = core::mem::transmute(f);
            f(0, objname, core::ptr::null(), msg.as_ptr())
        }
    }
    crate::diag::fatal(&crate::err!("ld-cah.so", "{}", crate::diag::show(msg.strip_suffix(b"\0").unwrap_or(msg))))
}

/// Signals a loader error as glibc's loader words it (`dlerror.rs`). The
/// strings are leaked: they must outlive the `longjmp`, and errors are rare.
pub fn signal_error(e: crate::diag::Error) -> ! {
    let (objname, errstring) = super::dlerror::for_dlopen(&e);
    drop(e);
    let objname = leak_cstr(objname.into_bytes());
    signal(objname.as_ptr(), leak_cstr(errstring.into_bytes()))
}

pub fn leak_cstr(mut s: Vec<u8>) -> &'static [u8] {
    s.push(0);
    s.leak()
}

/// `_dl_exception_create(e, objname, errstring)`: one buffer from libc's
/// `malloc` (so `dl_error_free`, libc's `free`, can release it).
///
/// # Safety
/// `e` is a `struct dl_exception` of the caller; `objname` is NULL or
/// a NUL-terminated string, `errstring` a NUL-terminated string.
#[cfg_attr(feature = "rtld", no_mangle)]
pub unsafe extern "C" fn _dl_exception_create(e: usize, objname: *const u8, errstring: *const u8) {
    let Some(r) = rt() else { return };
    // SAFETY: NUL-terminated strings from libc (objname may be NULL).
    let (ol, el) =
        unsafe { (if objname.is_null() { 0 } else { crate::cstr::strlen(objname as usize) }, crate::cstr::strlen(errstring as usize)) };
    let f = &r.layout.dl_exception;
    // SAFETY: `e` is a struct dl_exception of the caller.
    let ex = unsafe { Raw::new(e) };
    let buf = if r.malloc != 0 {
        // SAFETY: libc's malloc.
        let m: extern "C" fn(usize) -> usize = unsafe { core::mem::transmute(r.malloc) };
        m(ol + el + 2)
    } else {
        0
    };
    if buf == 0 {
        ex.put(f.objname, c"".as_ptr() as u64);
        ex.put(f.errstring, c"out of memory".as_ptr() as u64);
        ex.put(f.message_buffer, 0);
        return;
    }
    // SAFETY: `buf` has room for both strings and their NULs.
    unsafe {
        core::ptr::copy_nonoverlapping(errstring, buf as *mut u8, el + 1);
        if ol > 0 {
            core::ptr::copy_nonoverlapping(objname, (buf + el + 1) as *mut u8, ol + 1);
        } else {
            *((buf + el + 1) as *mut u8) = 0;
        }
    }
    ex.put(f.errstring, buf as u64);
    ex.put(f.objname, (buf + el + 1) as u64);
    ex.put(f.message_buffer, buf as u64);
}
