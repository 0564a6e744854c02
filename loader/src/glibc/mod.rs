//! The glibc rtld ABI (what libc.so.6 expects from its loader).
//!
//! For now: the exported symbols every program may bind to
//! (`__tls_get_addr`, aarch64's `__stack_chk_guard`). The layout tables and
//! the `_rtld_global` family come with the glibc layer.
#![allow(unsafe_code)]

pub mod api;
pub mod catch;
pub mod cpu;
pub mod dlerror;
pub mod fingerprint;
pub mod globals;
pub mod installed;
pub mod layout;
pub mod layouts;
pub mod libpthread;
pub mod raw;
pub mod rtld;
pub mod runtime;
pub mod table_reader;
pub mod tunables;

use core::sync::atomic::{AtomicUsize, Ordering};

/// aarch64 keeps the stack-protector canary in a global of the loader
/// (`__stack_chk_guard@GLIBC_2.17`), read by every protected function.
#[cfg_attr(feature = "rtld", no_mangle)]
#[allow(non_upper_case_globals)]
pub static __stack_chk_guard: AtomicUsize = AtomicUsize::new(0);

/// aarch64's pointer-mangling guard (`__pointer_chk_guard@GLIBC_PRIVATE`).
#[cfg_attr(feature = "rtld", no_mangle)]
#[allow(non_upper_case_globals)]
pub static __pointer_chk_guard: AtomicUsize = AtomicUsize::new(0);

/// Records the guards derived from `AT_RANDOM` (the x86_64 copies live in
/// the TCB; see `arch`).
pub fn set_stack_guard(guard: usize, pointer_guard: usize) {
    __stack_chk_guard.store(guard, Ordering::Relaxed);
    __pointer_chk_guard.store(pointer_guard, Ordering::Relaxed);
}

/// `__tls_get_addr`: the address of a TLS variable of the calling thread
/// (general- and local-dynamic TLS). Every initial module lives in static
/// TLS, so the DTV entry is always set.
///
/// # Safety
/// `ti` is a `tls_index` the static linker emitted, relocated by the loader.
#[cfg(feature = "rtld")]
#[no_mangle]
pub unsafe extern "C" fn __tls_get_addr(ti: *const crate::tls::TlsIndex) -> usize {
    // SAFETY: forwarded to the caller; the DTV is the calling thread's.
    unsafe { crate::tls::get_addr_current(&*ti) }
}
