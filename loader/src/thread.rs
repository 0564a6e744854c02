//! A second thread for the loader's own work before the program runs
//! (hashing a large library on two CPUs). [`join`] runs one closure on a
//! new thread and another on the caller's, and returns when both are
//! done. Where no thread can be started (a seccomp filter, no memory, one
//! CPU) both run here, one after the other: the results are the same.
//!
//! The new thread has no TLS and no libc; it may only run loader code
//! that needs neither (the heap is shared and locked). It shares signal
//! handlers and files as any thread does, and is gone when `join` returns.
#![allow(unsafe_code)]

use core::sync::atomic::{AtomicU32, Ordering};

use crate::sys;

/// The thread's stack, a guard page below it included. Hashing needs a
/// few KiB; the rest is margin.
const STACK: usize = 128 * 1024;
const GUARD: usize = 4096;

struct Job<F, R> {
    f: Option<F>,
    out: Option<R>,
}

extern "C" fn run<F: FnOnce() -> R, R>(arg: usize) {
    // SAFETY: `arg` is the `Job` that `join` keeps alive, and does not
    // touch, until this thread has exited.
    let job = unsafe { &mut *(arg as *mut Job<F, R>) };
    if let Some(f) = job.f.take() {
        job.out = Some(f());
    }
}

/// `(a(), b())`, with `a` on a thread of its own when one can be had.
pub fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    RA: Send,
    B: FnOnce() -> RB,
{
    let mut job = Job { f: Some(a), out: None };
    let done = AtomicU32::new(0);
    let stack = start(&mut job, &done);
    let rb = b();
    if let Some(stack) = stack {
        while done.load(Ordering::Acquire) != 0 {
            sys::futex_wait(&done, 1);
        }
        // SAFETY: the thread has exited (the kernel cleared `done`), so
        // nothing uses its stack any more.
        let _ = unsafe { sys::munmap(stack, STACK) };
    }
    let ra = match (job.out.take(), job.f.take()) {
        (Some(ra), _) => ra,
        // Not started: run `a` here.
        (None, Some(f)) => f(),
        // `run` always leaves a result (a panic aborts the process).
        (None, None) => crate::diag::fatal(&crate::err!("ld-cah.so", "internal error: a helper thread left no result")),
    };
    (ra, rb)
}

/// Starts `run::<A, RA>(job)` on a new stack; its base, if started.
fn start<A: FnOnce() -> RA, RA>(job: &mut Job<A, RA>, done: &AtomicU32) -> Option<usize> {
    if sys::cpus_allowed() < 2 {
        return None;
    }
    let stack = sys::mmap_anon(STACK).ok()?;
    // SAFETY: the lowest page of the fresh mapping, used by nothing yet:
    // an overflow faults instead of writing below the stack.
    let _ = unsafe { sys::mprotect(stack, GUARD, sys::PROT_NONE) };
    let arg = job as *mut Job<A, RA> as usize;
    // SAFETY: the stack is this thread's alone, its top 16-byte aligned
    // (a page boundary); `run` cannot unwind (panics abort); `join` keeps
    // `job` and `done` alive and untouched until `done` reads 0.
    match unsafe { sys::spawn_thread(stack + STACK, done, run::<A, RA>, arg) } {
        Ok(_) => Some(stack),
        Err(_) => {
            done.store(0, Ordering::Relaxed);
            // SAFETY: no thread was started on it.
            let _ = unsafe { sys::munmap(stack, STACK) };
            None
        }
    }
}
