//! The namespace a thread is linking right now (start-up, or a `dlopen`
//! holding the loader lock), for the foreign code that linking runs.
//!
//! libc's `time` and `gettimeofday` IFUNC resolvers look up vDSO symbols,
//! and libpthread's `__pthread_init_static_tls` (glibc before 2.34) calls
//! `mempcpy` through a PLT slot lazy binding has not bound yet. Such
//! callbacks cannot take the loader lock (the linking thread holds it, or
//! start-up has not installed the process state yet), so the linking
//! thread runs that code inside [`publishing`], and [`with_linking`] gives
//! the namespace being linked to that thread, and only to it.
#![allow(unsafe_code)]

use core::sync::atomic::{AtomicUsize, Ordering};

use super::Namespace;
use crate::arch::native;

/// The namespace being linked, and the thread linking it. Both are 0
/// outside [`publishing`].
static LINKING: AtomicUsize = AtomicUsize::new(0);
static LINKER_TP: AtomicUsize = AtomicUsize::new(0);

/// Runs `f` (which runs IFUNC resolvers) with `ns` visible to this
/// thread's callbacks through [`with_linking`]. `ns` is only read
/// meanwhile: the shared borrow lasts until `f` returns.
pub fn publishing<R>(ns: &Namespace, f: impl FnOnce() -> R) -> R {
    /// Puts back what was published before (nested calls restore the
    /// outer namespace, not nothing).
    struct Restore(usize, usize);
    impl Drop for Restore {
        fn drop(&mut self) {
            LINKING.store(self.0, Ordering::Release);
            LINKER_TP.store(self.1, Ordering::Release);
        }
    }
    let _restore = Restore(LINKING.load(Ordering::Acquire), LINKER_TP.load(Ordering::Acquire));
    LINKER_TP.store(native::thread_pointer_value(), Ordering::Release);
    LINKING.store(ns as *const Namespace as usize, Ordering::Release);
    f()
}

/// Runs `f` on the namespace this thread is linking (inside
/// [`publishing`]), if it is linking one.
pub fn with_linking<R>(f: impl FnOnce(&Namespace) -> R) -> Option<R> {
    let linking = LINKING.load(Ordering::Acquire);
    if linking != 0 && LINKER_TP.load(Ordering::Acquire) == native::thread_pointer_value() {
        // SAFETY: this very thread published `linking` in `publishing`,
        // whose shared borrow of it lasts until the publishing call
        // returns, which cannot happen while this thread is in here.
        return Some(f(unsafe { &*(linking as *const Namespace) }));
    }
    None
}
