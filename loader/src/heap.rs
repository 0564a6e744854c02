//! The loader's allocator: memory from `mmap`, carved by bumping a
//! pointer. Small blocks are sized by class (16-byte steps up to 1 KiB,
//! 128-byte steps up to 4 KiB, powers of two above) and a freed one goes
//! on its class's free list for
//! the next block of that class, so a process that opens and closes
//! libraries in a loop reuses the same memory round after round instead of
//! growing (and faulting in fresh pages). Large blocks get their own mapping
//! and are returned to the kernel on free.
#![allow(unsafe_code)]

use core::alloc::{GlobalAlloc, Layout};

use crate::sys;

const CHUNK: usize = 256 * 1024;
const LARGE: usize = 64 * 1024;

/// Blocks of at most this many bytes are sized in 16-byte steps.
const FINE: usize = 1024;
/// Blocks of at most this many bytes (and more than `FINE`) are sized in
/// `MEDIUM_STEP` steps. The per-object records the loader keeps are just
/// over a kilobyte (a `Dso`, glibc's `struct link_map`, the lazy-binding
/// copy of a `Dso`): in a power-of-two class each took 2 KiB, and every
/// page of it was touched, 30 page faults more for fifty libraries.
const MEDIUM: usize = 4096;
const MEDIUM_STEP: usize = 128;
/// 64 fine classes, 24 medium ones, then one per power of two up to `LARGE`.
const CLASSES: usize = FINE / 16 + (MEDIUM - FINE) / MEDIUM_STEP + (LARGE.trailing_zeros() - MEDIUM.trailing_zeros()) as usize;
/// Alignment every class block has (the arena is carved in multiples of it).
const ALIGN: usize = 16;

struct Arena {
    next: usize,
    end: usize,
    /// Head of each class's list of freed blocks (0: empty); a free block's
    /// first word points at the next.
    free: [usize; CLASSES],
}

/// The class of a small block of `size` bytes (`0 < size < LARGE`) and
/// the bytes each block of that class has.
fn class_of(size: usize) -> (usize, usize) {
    const MEDIUM_FIRST: usize = FINE / 16;
    const COARSE_FIRST: usize = MEDIUM_FIRST + (MEDIUM - FINE) / MEDIUM_STEP;
    if size <= FINE {
        let n = size.div_ceil(16);
        (n - 1, n * 16)
    } else if size <= MEDIUM {
        let n = (size - FINE).div_ceil(MEDIUM_STEP);
        (MEDIUM_FIRST + n - 1, FINE + n * MEDIUM_STEP)
    } else {
        let bytes = size.next_power_of_two();
        (COARSE_FIRST + (bytes.trailing_zeros() - MEDIUM.trailing_zeros()) as usize - 1, bytes)
    }
}

/// Whether a block of `layout` is served from (and freed to) the classes.
fn classed(layout: &Layout) -> bool {
    layout.size() < LARGE && layout.align() <= ALIGN
}

pub struct Heap {
    arena: spin::Mutex<Arena>,
}

impl Heap {
    pub const fn new() -> Heap {
        Heap { arena: spin::Mutex::new(Arena { next: 0, end: 0, free: [0; CLASSES] }) }
    }

    /// Everything but a small block the arena has at hand: large and
    /// over-aligned blocks, and a new chunk when the current one is full.
    #[cold]
    #[inline(never)]
    fn alloc_slow(&self, layout: Layout) -> *mut u8 {
        let size = layout.size().max(1);
        let align = layout.align();
        if size >= LARGE || align > 4096 {
            let len = page_round(size + align.saturating_sub(4096));
            return match sys::mmap_anon(len) {
                Ok(p) => ((p + align - 1) & !(align - 1)) as *mut u8,
                Err(_) => core::ptr::null_mut(),
            };
        }
        let (size, align) = if classed(&layout) { (class_of(size).1, ALIGN) } else { (size, align.max(ALIGN)) };
        let mut a = self.arena.lock();
        let mut start = (a.next + align - 1) & !(align - 1);
        if a.next == 0 || start + size > a.end {
            let Ok(p) = sys::mmap_anon(CHUNK) else { return core::ptr::null_mut() };
            a.next = p;
            a.end = p + CHUNK;
            start = (p + align - 1) & !(align - 1);
        }
        // Keep `next` 16-aligned for the fast path (the chunk end is).
        a.next = (start + size + ALIGN - 1) & !(ALIGN - 1);
        start as *mut u8
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
// uses; the bump pointer only moves forward, so a block is handed out
// again only after `dealloc` put it on its class's free list (its owner
// gave it up), and only for a layout of the same class, which it is large
// and aligned enough for; large blocks are unmapped only by `dealloc` of
// the block that owns them.
unsafe impl GlobalAlloc for Heap {
    /// # Safety
    /// As [`GlobalAlloc::alloc`]: `layout` has a non-zero size (a zero
    /// size is served as one byte all the same).
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // The common case kept short: a small block from its free list or
        // the current chunk (`next` is always 16-aligned).
        if classed(&layout) {
            let (class, bytes) = class_of(layout.size().max(1));
            let mut a = self.arena.lock();
            let head = a.free[class];
            if head != 0 {
                // SAFETY: a freed block of this class: its first word is the
                // next free one (written by `dealloc`).
                a.free[class] = unsafe { *(head as *const usize) };
                return head as *mut u8;
            }
            let start = a.next;
            if start + bytes <= a.end {
                a.next = start + bytes;
                return start as *mut u8;
            }
        }
        self.alloc_slow(layout)
    }

    /// # Safety
    /// As [`GlobalAlloc::dealloc`]: `ptr` was returned by `alloc` of this
    /// heap with the same `layout`, and is not used afterwards.
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let size = layout.size().max(1);
        if classed(&layout) {
            let (class, _) = class_of(size);
            let mut a = self.arena.lock();
            // SAFETY: the block is the caller's to give back and at least
            // 16 bytes long, 16-aligned: its first word links it in.
            unsafe { *(ptr as *mut usize) = a.free[class] };
            a.free[class] = ptr as usize;
            return;
        }
        // A large block is a mapping of its own (see alloc) and starts it.
        // An over-aligned one (align > 16) stays where it is, never reused.
        if size >= LARGE && layout.align() <= 4096 {
            // SAFETY: a large block is a mapping of its own (see alloc).
            let _ = unsafe { sys::munmap(ptr as usize & !4095, page_round(size)) };
        }
    }

    /// # Safety
    /// As [`GlobalAlloc::realloc`].
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // A block already as large as its class has room to grow in place.
        if classed(&layout) && new_size > 0 && new_size < LARGE && class_of(layout.size().max(1)).0 == class_of(new_size).0 {
            return ptr;
        }
        // SAFETY: forwarded (the trait's own alloc, copy and dealloc).
        unsafe {
            let new = self.alloc(Layout::from_size_align_unchecked(new_size, layout.align()));
            if !new.is_null() {
                core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_cover_every_small_size_once() {
        assert_eq!(class_of(1), (0, 16));
        assert_eq!(class_of(16), (0, 16));
        assert_eq!(class_of(17), (1, 32));
        assert_eq!(class_of(FINE), (FINE / 16 - 1, FINE));
        assert_eq!(class_of(FINE + 1), (FINE / 16, FINE + 128));
        assert_eq!(class_of(1232), (FINE / 16 + 1, 1280), "a link map takes 1280 bytes, not 2048");
        assert_eq!(class_of(MEDIUM), (FINE / 16 + 23, MEDIUM));
        assert_eq!(class_of(MEDIUM + 1), (FINE / 16 + 24, 2 * MEDIUM));
        assert_eq!(class_of(LARGE - 1), (CLASSES - 1, LARGE));
        let mut last = (0, 0);
        for size in 1..LARGE {
            let (c, bytes) = class_of(size);
            assert!(bytes >= size && bytes % ALIGN == 0 && c < CLASSES);
            assert!(c == last.0 || c == last.0 + 1, "classes are consecutive");
            last = (c, bytes);
        }
    }

    #[test]
    fn a_freed_block_serves_the_next_of_its_class() {
        let heap = Heap::new();
        let small = Layout::from_size_align(40, 8).unwrap();
        // SAFETY: blocks of this test's own heap, used as plain memory.
        unsafe {
            let a = heap.alloc(small);
            let b = heap.alloc(small);
            assert_ne!(a, b);
            a.write_bytes(0xa5, 40);
            heap.dealloc(a, small);
            assert_eq!(heap.alloc(Layout::from_size_align(48, 16).unwrap()), a, "same class: reused");
            assert_ne!(heap.alloc(small), a, "handed out once");
            let grown = heap.realloc(b, small, 47);
            assert_eq!(grown, b, "room in its class");
            let moved = heap.realloc(b, Layout::from_size_align(47, 8).unwrap(), 100);
            assert_ne!(moved, b);
        }
    }
}
