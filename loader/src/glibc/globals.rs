//! The data glibc's loader exports under its own names, which libc.so.6
//! binds to (`_rtld_global`, `_rtld_global_ro`, `__libc_enable_secure`,
//! ...): storage only; `rtld.rs` fills it from the layout table.
#![allow(unsafe_code)]

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicIsize, AtomicU32, AtomicUsize};

/// Zeroed storage exported under a glibc name; big enough for every known
/// build (checked against the table before use).
#[repr(C, align(64))]
pub struct Block<const N: usize>(UnsafeCell<[u8; N]>);

// SAFETY: written during single-threaded start-up (and later only by the
// loader under its lock); libc reads it as glibc's loader data.
unsafe impl<const N: usize> Sync for Block<N> {}

impl<const N: usize> Block<N> {
    pub const fn new() -> Self {
        Block(UnsafeCell::new([0; N]))
    }
    pub fn addr(&self) -> usize {
        self.0.get() as usize
    }
    pub const SIZE: usize = N;
}

impl<const N: usize> Default for Block<N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg_attr(feature = "rtld", no_mangle)]
#[allow(non_upper_case_globals)]
pub static _rtld_global: Block<8192> = Block::new();
#[cfg_attr(feature = "rtld", no_mangle)]
#[allow(non_upper_case_globals)]
pub static _rtld_global_ro: Block<4096> = Block::new();

#[cfg_attr(feature = "rtld", no_mangle)]
#[allow(non_upper_case_globals)]
pub static __libc_enable_secure: AtomicI32 = AtomicI32::new(0);
#[cfg_attr(feature = "rtld", no_mangle)]
#[allow(non_upper_case_globals)]
pub static __libc_stack_end: AtomicUsize = AtomicUsize::new(0);
#[cfg_attr(feature = "rtld", no_mangle)]
#[allow(non_upper_case_globals)]
pub static _dl_argv: AtomicUsize = AtomicUsize::new(0);
#[cfg_attr(feature = "rtld", no_mangle)]
#[allow(non_upper_case_globals)]
pub static __rseq_size: AtomicU32 = AtomicU32::new(0);
#[cfg_attr(feature = "rtld", no_mangle)]
#[allow(non_upper_case_globals)]
pub static __rseq_offset: AtomicIsize = AtomicIsize::new(0);
#[cfg_attr(feature = "rtld", no_mangle)]
#[allow(non_upper_case_globals)]
pub static __rseq_flags: AtomicU32 = AtomicU32::new(0);
#[cfg_attr(feature = "rtld", no_mangle)]
#[allow(non_upper_case_globals)]
pub static __nptl_initial_report_events: AtomicBool = AtomicBool::new(false);
