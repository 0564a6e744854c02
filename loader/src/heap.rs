//! The loader's allocator: memory from `mmap`, handed out by bumping a
//! pointer. Start-up allocates a few hundred kilobytes and frees little, so
//! small blocks are not reused; large blocks get their own mapping and are
//! returned to the kernel on free.
//!
//! It takes no lock: lazy binding may allocate (an error message) in a
//! signal handler that interrupted an allocation of its own thread, so
//! the bump is a compare-and-swap on the current chunk's cursor, and a
//! new chunk replaces a full one with another.
#![allow(unsafe_code)]

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::sys;

const CHUNK: usize = 256 * 1024;
const LARGE: usize = 64 * 1024;

/// A chunk starts with its header: the cursor (the next free byte) and
/// the chunk's end.
#[repr(C)]
struct Chunk {
    next: AtomicUsize,
    end: usize,
}

pub struct Heap {
    /// The current chunk's address (0 before the first allocation).
    chunk: AtomicUsize,
}

impl Heap {
    pub const fn new() -> Heap {
        Heap { chunk: AtomicUsize::new(0) }
    }
}

impl Default for Heap {
    fn default() -> Self {
        Heap::new()
    }
}

fn page_round(n: usize) -> usize {
    (n + 4095) & !4095
}

/// Takes `size` bytes aligned to `align` from chunk `c`, if they fit.
fn bump(c: &Chunk, size: usize, align: usize) -> Option<usize> {
    let mut cur = c.next.load(Ordering::Relaxed);
    loop {
        let start = cur.checked_add(align - 1)? & !(align - 1);
        let end = start.checked_add(size).filter(|&e| e <= c.end)?;
        match c.next.compare_exchange_weak(cur, end, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return Some(start),
            Err(now) => cur = now,
        }
    }
}

// SAFETY: blocks come from private anonymous mappings that nothing else
// uses; each is handed out once (a chunk's cursor only moves forward, by
// compare-and-swap) and is aligned as asked; large blocks are unmapped
// only by `dealloc` of the block that owns them.
unsafe impl GlobalAlloc for Heap {
    /// # Safety
    /// As [`GlobalAlloc::alloc`]: `layout` has a non-zero size (a zero
    /// size is served as one byte all the same).
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let size = layout.size().max(1);
        let align = layout.align();
        if size >= LARGE || align > 4096 {
            let len = page_round(size + align.saturating_sub(4096));
            return match sys::mmap_anon(len) {
                Ok(p) => ((p + align - 1) & !(align - 1)) as *mut u8,
                Err(_) => core::ptr::null_mut(),
            };
        }
        loop {
            let current = self.chunk.load(Ordering::Acquire);
            if current != 0 {
                // SAFETY: a chunk's header, written before the chunk was
                // published (Release below); chunks are never unmapped.
                let c = unsafe { &*(current as *const Chunk) };
                if let Some(p) = bump(c, size, align) {
                    return p as *mut u8;
                }
            }
            let Ok(p) = sys::mmap_anon(CHUNK) else { return core::ptr::null_mut() };
            let header = core::mem::size_of::<Chunk>();
            // SAFETY: a fresh private mapping of CHUNK bytes, ours alone.
            unsafe { (p as *mut Chunk).write(Chunk { next: AtomicUsize::new(p + header), end: p + CHUNK }) };
            if self.chunk.compare_exchange(current, p, Ordering::AcqRel, Ordering::Acquire).is_err() {
                // Another allocation (another thread, or the code this
                // signal handler interrupted) put in a chunk first.
                // SAFETY: never published, so nothing else uses it.
                let _ = unsafe { sys::munmap(p, CHUNK) };
            }
        }
    }

    /// # Safety
    /// As [`GlobalAlloc::dealloc`]: `ptr` was returned by `alloc` of this
    /// heap with the same `layout`, and is not used afterwards.
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let size = layout.size().max(1);
        // A large block is a mapping of its own (see alloc) and starts it.
        // An over-aligned one (align > 4096) may start past its mapping's
        // start and is kept, as small blocks stay in their chunk (see the
        // module comment).
        if size >= LARGE && layout.align() <= 4096 {
            // SAFETY: a large block is a mapping of its own (see alloc).
            let _ = unsafe { sys::munmap(ptr as usize & !4095, page_round(size)) };
        }
    }
}
