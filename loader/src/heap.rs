//! The loader's allocator: memory from `mmap`, handed out by bumping a
//! pointer. Start-up allocates a few hundred kilobytes and frees little, so
//! small blocks are not reused; large blocks get their own mapping and are
//! returned to the kernel on free.
#![allow(unsafe_code)]

use core::alloc::{GlobalAlloc, Layout};

use crate::sys;

const CHUNK: usize = 256 * 1024;
const LARGE: usize = 64 * 1024;

struct Arena {
    next: usize,
    end: usize,
}

pub struct Heap {
    arena: spin::Mutex<Arena>,
}

impl Heap {
    pub const fn new() -> Heap {
        Heap { arena: spin::Mutex::new(Arena { next: 0, end: 0 }) }
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

// SAFETY: blocks come from private anonymous mappings that nothing else
// uses; each is handed out once (the bump pointer only moves forward) and
// is aligned as asked; large blocks are unmapped only by `dealloc` of the
// block that owns them.
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
        let mut a = self.arena.lock();
        let mut start = (a.next + align - 1) & !(align - 1);
        if a.next == 0 || start + size > a.end {
            let Ok(p) = sys::mmap_anon(CHUNK) else { return core::ptr::null_mut() };
            a.next = p;
            a.end = p + CHUNK;
            start = (p + align - 1) & !(align - 1);
        }
        a.next = start + size;
        start as *mut u8
    }

    /// # Safety
    /// As [`GlobalAlloc::dealloc`]: `ptr` was returned by `alloc` of this
    /// heap with the same `layout`, and is not used afterwards.
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let size = layout.size().max(1);
        // A large block is a mapping of its own (see alloc) and starts it.
        // An over-aligned one (align > 4096) may start past its mapping's
        // start and is kept, as small blocks stay in the arena (see the
        // module comment).
        if size >= LARGE && layout.align() <= 4096 {
            // SAFETY: a large block is a mapping of its own (see alloc).
            let _ = unsafe { sys::munmap(ptr as usize & !4095, page_round(size)) };
        }
    }
}
