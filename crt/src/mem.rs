//! `memcpy`, `memset`, `memcmp` and `bcmp` for x86_64, in place of
//! compiler-builtins' (which are weak, so these win at link time).
//!
//! Theirs run three `rep` string instructions per call (align the
//! destination, move words, move the tail), each with a start-up cost of
//! tens of cycles, whatever the length; most of the loader's copies are a
//! few dozen bytes. Sampled, a `dlopen` round spent a sixth of its user
//! time in the two. Here up to 32 bytes take two overlapping loads and
//! stores, and anything longer one `rep movsq`/`rep stosq` for the whole
//! words and one overlapping store for the tail. (Not `rep movsb`, as
//! fast on CPUs with ERMS: callgrind, which the benchmark counts loader
//! instructions with, counts each byte it moves as an instruction.)
//!
//! Neither function has a loop the compiler could turn back into a call
//! to itself, and neither uses a global: like the rest of this crate they
//! may run before the loader is relocated. (The loader's unit tests
//! include this file, unexported, to test it on the host.)

use core::arch::asm;
use core::ptr::{read_unaligned, write_unaligned};

/// # Safety
/// C's `memcpy`: `n` bytes readable at `src` and writable at `dest`, the
/// two not overlapping.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: every access is inside the caller's `n` bytes (the pairs
    // below overlap when `n` is not twice their size, never past `n`); all
    // loads happen before the stores. `rep movsq` copies `rcx` words from
    // `rsi` to `rdi` upwards (the ABI has the direction flag clear); `n`
    // is at least 33 there, so `n - 8` is past the start.
    unsafe {
        match n {
            0 => {}
            1..=3 => {
                let (a, b, c) = (*src, *src.add(n / 2), *src.add(n - 1));
                *dest = a;
                *dest.add(n / 2) = b;
                *dest.add(n - 1) = c;
            }
            4..=7 => {
                let (a, b) = (read_unaligned(src as *const u32), read_unaligned(src.add(n - 4) as *const u32));
                write_unaligned(dest as *mut u32, a);
                write_unaligned(dest.add(n - 4) as *mut u32, b);
            }
            8..=15 => {
                let (a, b) = (read_unaligned(src as *const u64), read_unaligned(src.add(n - 8) as *const u64));
                write_unaligned(dest as *mut u64, a);
                write_unaligned(dest.add(n - 8) as *mut u64, b);
            }
            16..=32 => {
                let (a, b) = (read_unaligned(src as *const u128), read_unaligned(src.add(n - 16) as *const u128));
                write_unaligned(dest as *mut u128, a);
                write_unaligned(dest.add(n - 16) as *mut u128, b);
            }
            _ => {
                // Whole words, then the last word again (overlapping).
                asm!("rep movsq", inout("rcx") n / 8 => _, inout("rdi") dest => _, inout("rsi") src => _, options(nostack, preserves_flags));
                write_unaligned(dest.add(n - 8) as *mut u64, read_unaligned(src.add(n - 8) as *const u64));
            }
        }
    }
    dest
}

/// # Safety
/// C's `memset`: `n` bytes writable at `dest`.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn memset(dest: *mut u8, c: i32, n: usize) -> *mut u8 {
    let b = c as u8;
    let w = u64::from(b) * 0x0101_0101_0101_0101;
    // SAFETY: as in `memcpy`: every store is inside the caller's `n`
    // bytes; `rep stosq` stores `rax` to `rcx` words from `rdi` upwards.
    unsafe {
        match n {
            0 => {}
            1..=3 => {
                *dest = b;
                *dest.add(n / 2) = b;
                *dest.add(n - 1) = b;
            }
            4..=7 => {
                write_unaligned(dest as *mut u32, w as u32);
                write_unaligned(dest.add(n - 4) as *mut u32, w as u32);
            }
            8..=15 => {
                write_unaligned(dest as *mut u64, w);
                write_unaligned(dest.add(n - 8) as *mut u64, w);
            }
            16..=32 => {
                let ww = u128::from(w) * ((1u128 << 64) + 1);
                write_unaligned(dest as *mut u128, ww);
                write_unaligned(dest.add(n - 16) as *mut u128, ww);
            }
            _ => {
                asm!("rep stosq", inout("rcx") n / 8 => _, inout("rdi") dest => _, in("rax") w, options(nostack, preserves_flags));
                write_unaligned(dest.add(n - 8) as *mut u64, w);
            }
        }
    }
    dest
}

/// # Safety
/// C's `memcmp`: `n` bytes readable at `a` and at `b`.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // compiler-builtins' compares a byte at a time; names and paths are
    // compared a word at a time here. The first differing word decides by
    // its first differing byte: read big-endian, that byte is the most
    // significant difference.
    let mut i = 0;
    // SAFETY: every read is inside the caller's `n` bytes of each.
    unsafe {
        while i + 8 <= n {
            let (x, y) = (read_unaligned(a.add(i) as *const u64), read_unaligned(b.add(i) as *const u64));
            if x != y {
                return if u64::from_be(x) < u64::from_be(y) { -1 } else { 1 };
            }
            i += 8;
        }
        while i < n {
            let (x, y) = (*a.add(i), *b.add(i));
            if x != y {
                return i32::from(x) - i32::from(y);
            }
            i += 1;
        }
    }
    0
}

/// # Safety
/// As `memcmp`; only zero or not matters.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: the caller's contract, which is `memcmp`'s.
    unsafe { memcmp(a, b, n) }
}

#[cfg(test)]
mod tests {
    /// Every length up to 100 at every alignment of either end, with
    /// sentinels around the destination.
    #[test]
    fn memcpy_and_memset_write_exactly_their_bytes() {
        let src: [u8; 200] = core::array::from_fn(|i| (i * 7 + 3) as u8);
        for n in 0..100 {
            for (s_off, d_off) in [(0, 0), (1, 0), (0, 3), (5, 7), (8, 1)] {
                let mut dst = [0xeeu8; 220];
                // SAFETY: in bounds of both buffers, which do not overlap.
                let r = unsafe { super::memcpy(dst.as_mut_ptr().add(10 + d_off), src.as_ptr().add(s_off), n) };
                assert_eq!(r, dst[10 + d_off..].as_mut_ptr());
                assert_eq!(&dst[10 + d_off..10 + d_off + n], &src[s_off..s_off + n], "memcpy {n} {s_off} {d_off}");
                assert!(dst[..10 + d_off].iter().chain(&dst[10 + d_off + n..]).all(|&b| b == 0xee), "memcpy {n} wrote outside");
                // SAFETY: in bounds.
                unsafe { super::memset(dst.as_mut_ptr().add(10 + d_off), 0x1a5, n) };
                assert!(dst[10 + d_off..10 + d_off + n].iter().all(|&b| b == 0xa5), "memset {n} {d_off}");
                assert!(dst[..10 + d_off].iter().chain(&dst[10 + d_off + n..]).all(|&b| b == 0xee), "memset {n} wrote outside");
            }
        }
    }

    /// The sign of `memcmp` (and whether `bcmp` is zero) against slice
    /// order, for every length up to 40 with the difference at every place.
    #[test]
    fn memcmp_orders_like_slices() {
        let a: [u8; 48] = core::array::from_fn(|i| (i * 37 + 11) as u8);
        for n in 0..40 {
            for at in 0..=n {
                for delta in [0u8, 1, 0x80, 0xff] {
                    let mut b = a;
                    if at < n {
                        b[at] = b[at].wrapping_add(delta);
                    }
                    let want = a[..n].cmp(&b[..n]) as i32;
                    // SAFETY: `n` bytes of each array.
                    let (got, eq) = unsafe { (super::memcmp(a.as_ptr(), b.as_ptr(), n), super::bcmp(a.as_ptr(), b.as_ptr(), n)) };
                    assert_eq!(got.signum(), want, "n {n} at {at} delta {delta}");
                    assert_eq!(eq == 0, want == 0, "bcmp n {n} at {at} delta {delta}");
                }
            }
        }
    }
}
