//! C strings handed to the loader by the kernel (argv, envp, auxv) and by
//! libc (names, formats, error texts): the one place their length is found.
#![allow(unsafe_code)]

/// The length of the C string at `p`.
///
/// # Safety
/// `p` points at a NUL-terminated string.
pub unsafe fn strlen(p: usize) -> usize {
    let mut n = 0;
    // SAFETY: every byte up to the NUL belongs to the string (caller).
    unsafe {
        while *((p + n) as *const u8) != 0 {
            n += 1;
        }
    }
    n
}

/// The bytes of the C string at `p`, without its NUL.
///
/// # Safety
/// `p` points at a NUL-terminated string that outlives `'a` unchanged.
pub unsafe fn bytes<'a>(p: *const u8) -> &'a [u8] {
    // SAFETY: forwarded to the caller; `strlen` bytes precede the NUL.
    unsafe { core::slice::from_raw_parts(p, strlen(p as usize)) }
}

/// Like [`bytes`], for a pointer that may be NULL (an empty string then).
///
/// # Safety
/// As [`bytes`] when `p` is not NULL.
pub unsafe fn bytes_or_empty<'a>(p: *const u8) -> &'a [u8] {
    if p.is_null() {
        &[]
    } else {
        // SAFETY: forwarded to the caller.
        unsafe { bytes(p) }
    }
}
