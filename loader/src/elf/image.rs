//! [`Image`]: the one way the loader reads and writes a mapped object.
//!
//! An image knows which address ranges of the object are mapped readable
//! and which writable. Reads outside the readable ranges return `None`
//! (a corrupt dynamic section cannot make the loader fault); writes outside
//! the writable ranges are refused (a relocation cannot patch code or
//! another object).
#![allow(unsafe_code)]

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

/// Readable ranges are only ever added to an image, never removed, so a
/// range checked once stays readable for the image's life: a [`Span`]
/// remembers such a check, and the identity of the image that made it.
#[derive(Clone, Debug)]
pub struct Image {
    readable: Vec<(usize, usize)>,
    writable: Vec<(usize, usize)>,
    /// Which image this is, for [`Span`]s (a clone has the same ranges, so
    /// it may share the identity; 0 is never used).
    id: u64,
}

impl Default for Image {
    fn default() -> Image {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Image { readable: Vec::new(), writable: Vec::new(), id: NEXT.fetch_add(1, Ordering::Relaxed) }
    }
}

/// `len` bytes at `start`, checked once to lie in one readable range of
/// the image numbered `image`. Reads through [`Image::at`] then cost one
/// comparison instead of a scan of the range list. The default span is
/// empty and belongs to no image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    image: u64,
    start: usize,
    len: usize,
}

impl Span {
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Image {
    pub fn new() -> Image {
        Image::default()
    }

    /// `len` bytes at `addr` as a [`Span`], if they are readable.
    pub fn span(&self, addr: usize, len: usize) -> Option<Span> {
        self.is_readable(addr, len).then_some(Span { image: self.id, start: addr, len })
    }

    /// At most `max` bytes from `addr`: as many as the readable range
    /// holding `addr` has (for tables whose exact size is not known).
    pub fn span_upto(&self, addr: usize, max: usize) -> Option<Span> {
        let &(_, e) = self.readable.iter().find(|&&(s, e)| addr >= s && addr < e)?;
        Some(Span { image: self.id, start: addr, len: (e - addr).min(max) })
    }

    /// Reads a `T` at byte `off` of span `s`.
    #[inline(always)]
    pub fn at<T: Pod>(&self, s: Span, off: usize) -> Option<T> {
        let end = off.checked_add(core::mem::size_of::<T>())?;
        if s.image != self.id || end > s.len {
            return None;
        }
        // SAFETY: `s` was checked readable in this image (same identity)
        // and readable ranges are never removed (see `add_readable`);
        // `off + size_of::<T>() <= len` keeps the read inside it. `T` is
        // plain data; alignment is not assumed.
        Some(unsafe { core::ptr::read_unaligned((s.start + off) as *const T) })
    }

    /// Borrows `len` bytes at byte `off` of span `s`.
    #[inline(always)]
    pub fn span_bytes(&self, s: Span, off: usize, len: usize) -> Option<&[u8]> {
        let end = off.checked_add(len)?;
        if s.image != self.id || end > s.len {
            return None;
        }
        // SAFETY: as in `at`; read-only data, as in `bytes`.
        Some(unsafe { core::slice::from_raw_parts((s.start + off) as *const u8, len) })
    }

    /// Declares `start..end` mapped and readable.
    ///
    /// # Safety
    /// The range must stay mapped readable for as long as this image is used.
    pub unsafe fn add_readable(&mut self, start: usize, end: usize) {
        if start < end {
            self.readable.push((start, end));
        }
    }

    /// Declares `start..end` mapped writable (and readable).
    ///
    /// # Safety
    /// The range must stay mapped writable while relocations are applied,
    /// and must belong to this object only.
    pub unsafe fn add_writable(&mut self, start: usize, end: usize) {
        if start < end {
            self.writable.push((start, end));
            self.readable.push((start, end));
        }
    }

    /// Forgets the writable ranges.
    pub fn seal(&mut self) {
        self.writable.clear();
    }

    /// Removes `start..end` from the writable ranges (it was just made
    /// read-only, e.g. `PT_GNU_RELRO`); it stays readable.
    pub fn make_read_only(&mut self, start: usize, end: usize) {
        let mut out = Vec::with_capacity(self.writable.len() + 1);
        for &(s, e) in &self.writable {
            if end <= s || start >= e {
                out.push((s, e));
                continue;
            }
            if s < start {
                out.push((s, start));
            }
            if end < e {
                out.push((end, e));
            }
        }
        self.writable = out;
    }

    #[inline]
    fn inside(ranges: &[(usize, usize)], addr: usize, len: usize) -> bool {
        let Some(end) = addr.checked_add(len) else { return false };
        ranges.iter().any(|&(s, e)| addr >= s && end <= e)
    }

    #[inline]
    pub fn is_readable(&self, addr: usize, len: usize) -> bool {
        Image::inside(&self.readable, addr, len)
    }

    #[inline]
    pub fn is_writable(&self, addr: usize, len: usize) -> bool {
        Image::inside(&self.writable, addr, len)
    }

    /// Reads a `T` at `addr` if it lies inside the object.
    #[inline]
    pub fn read<T: Pod>(&self, addr: usize) -> Option<T> {
        if !self.is_readable(addr, core::mem::size_of::<T>()) {
            return None;
        }
        // SAFETY: the range is mapped readable (see `add_readable`) and `T`
        // is plain data, valid for any bit pattern; alignment is not assumed.
        Some(unsafe { core::ptr::read_unaligned(addr as *const T) })
    }

    #[inline]
    pub fn u16(&self, addr: usize) -> Option<u16> {
        self.read(addr)
    }
    #[inline]
    pub fn u32(&self, addr: usize) -> Option<u32> {
        self.read(addr)
    }
    #[inline]
    pub fn u64(&self, addr: usize) -> Option<u64> {
        self.read(addr)
    }

    /// Borrows `len` bytes at `addr`.
    pub fn bytes(&self, addr: usize, len: usize) -> Option<&[u8]> {
        if !self.is_readable(addr, len) {
            return None;
        }
        // SAFETY: mapped readable for the life of the image; the loader
        // only borrows read-only data this way (strings, notes, tables),
        // which relocation does not write.
        Some(unsafe { core::slice::from_raw_parts(addr as *const u8, len) })
    }

    /// The address of the first occurrence of `needle` in any readable
    /// range (a linear scan: for error paths, not for start-up).
    pub fn find(&self, needle: &[u8]) -> Option<usize> {
        self.readable.iter().find_map(|&(s, e)| {
            let hay = self.bytes(s, e - s)?;
            hay.windows(needle.len().max(1)).position(|w| w == needle).map(|i| s + i)
        })
    }

    /// The NUL-terminated string at `addr`, without its NUL, searching no
    /// further than `limit` (the end of the string table).
    pub fn cstr(&self, addr: usize, limit: usize) -> Option<&[u8]> {
        let (_, end) = *self.readable.iter().find(|&&(s, e)| addr >= s && addr < e)?;
        let end = end.min(limit);
        if addr >= end {
            return None;
        }
        let all = self.bytes(addr, end - addr)?;
        let n = all.iter().position(|&b| b == 0)?;
        Some(&all[..n])
    }

    /// Writes a word at `addr` if it lies in a writable range.
    #[inline]
    pub fn write_u64(&self, addr: usize, value: u64) -> bool {
        if !self.is_writable(addr, 8) {
            return false;
        }
        // SAFETY: writable and owned by this object (see `add_writable`).
        unsafe { core::ptr::write_unaligned(addr as *mut u64, value) };
        true
    }

    /// Copies `len` bytes from `src` (in `from`) to `dst` (in `self`).
    pub fn copy_from(&self, dst: usize, from: &Image, src: usize, len: usize) -> bool {
        if !self.is_writable(dst, len) || !from.is_readable(src, len) {
            return false;
        }
        // SAFETY: both ranges are checked above; `copy` allows overlap.
        unsafe { core::ptr::copy(src as *const u8, dst as *mut u8, len) };
        true
    }
}

/// Plain data that any bit pattern makes valid.
///
/// # Safety
/// Implementors have no padding-sensitive invariants, no references and no
/// niche: every bit pattern is a valid value.
pub unsafe trait Pod: Copy {}
// SAFETY: integers accept every bit pattern.
unsafe impl Pod for u8 {}
// SAFETY: as above.
unsafe impl Pod for u16 {}
// SAFETY: as above.
unsafe impl Pod for u32 {}
// SAFETY: as above.
unsafe impl Pod for u64 {}
// SAFETY: as above.
unsafe impl Pod for i64 {}
// SAFETY: arrays of Pod are Pod.
unsafe impl<T: Pod, const N: usize> Pod for [T; N] {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_stay_inside_their_ranges() {
        let mut buf = [0u64; 8];
        let start = buf.as_mut_ptr() as usize;
        let mut img = Image::new();
        // SAFETY: `buf` outlives `img` in this test.
        unsafe {
            img.add_readable(start, start + 32);
            img.add_writable(start + 32, start + 64);
        }
        assert_eq!(img.u64(start), Some(0));
        assert_eq!(img.u64(start + 60), None, "straddles the end");
        assert!(!img.write_u64(start, 1), "read-only range");
        assert!(img.write_u64(start + 40, 7));
        assert_eq!(img.u64(start + 40), Some(7));
        assert_eq!(img.u64(usize::MAX - 3), None, "no overflow");
    }

    #[test]
    fn read_only_part_refuses_writes() {
        let mut buf = [0u64; 8];
        let start = buf.as_mut_ptr() as usize;
        let mut img = Image::new();
        // SAFETY: `buf` outlives `img`.
        unsafe { img.add_writable(start, start + 64) };
        img.make_read_only(start + 16, start + 32);
        assert!(img.write_u64(start + 8, 1));
        assert!(!img.write_u64(start + 16, 1));
        assert!(!img.write_u64(start + 24, 1));
        assert!(img.write_u64(start + 32, 1));
        assert_eq!(img.u64(start + 16), Some(0), "still readable");
    }

    #[test]
    fn spans_belong_to_their_image() {
        let data = [7u8; 16];
        let start = data.as_ptr() as usize;
        let mut img = Image::new();
        // SAFETY: `data` outlives `img`.
        unsafe { img.add_readable(start, start + 16) };
        assert!(img.span(start + 8, 16).is_none(), "runs past the range");
        let s = img.span(start, 16).unwrap();
        assert_eq!(img.at::<u64>(s, 8), Some(0x0707_0707_0707_0707));
        assert_eq!(img.at::<u64>(s, 9), None, "straddles the end");
        assert_eq!(img.at::<u8>(s, usize::MAX), None, "no overflow");
        assert_eq!(img.span_upto(start + 4, 100).map(|s| s.len()), Some(12));
        let other = Image::new();
        assert_eq!(other.at::<u8>(s, 0), None, "another image's span");
        assert_eq!(img.at::<u8>(Span::default(), 0), None);
        assert_eq!(img.clone().at::<u8>(s, 0), Some(7), "a clone has the same ranges");
    }

    #[test]
    fn cstr_needs_a_terminator_before_the_limit() {
        let data = *b"abc\0def";
        let start = data.as_ptr() as usize;
        let mut img = Image::new();
        // SAFETY: `data` outlives `img`.
        unsafe { img.add_readable(start, start + data.len()) };
        assert_eq!(img.cstr(start, start + 7), Some(&b"abc"[..]));
        assert_eq!(img.cstr(start + 4, start + 7), None, "no NUL before the end");
        assert_eq!(img.cstr(start, start + 2), None, "limit cuts the string");
    }
}
