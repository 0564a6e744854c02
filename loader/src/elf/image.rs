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
///
/// Checks cost a comparison or two, not a scan: the ranges the start path
/// touches are kept apart and tested first, inline (see [`Hot`]); only an
/// address outside them scans the lists.
#[derive(Clone, Debug)]
pub struct Image {
    readable: Vec<(usize, usize)>,
    writable: Vec<(usize, usize)>,
    hot: Hot,
    /// Which image this is, for [`Span`]s (a clone has the same ranges, so
    /// it may share the identity; 0 is never used).
    id: u64,
}

/// Copies of the ranges most reads and writes land in, so that a check is
/// one or two comparisons. In every usual layout the first mapped range
/// holds the ELF header, the symbol, string, hash and relocation tables,
/// and the first writable range the GOT and data that relocations read
/// and write. A range not (or no longer) there is [`NONE`].
#[derive(Clone, Copy, Debug)]
struct Hot {
    /// The first range declared (readable for the image's life).
    first: (usize, usize),
    /// The first range declared writable (readable for the image's life,
    /// even once sealed).
    data: (usize, usize),
    /// The writable range holding `data`'s start, while there is one (a
    /// copy of an element of `writable`, kept in step with it).
    write: (usize, usize),
}

/// The hot range that holds nothing, not even a zero-length span: its
/// start is above its end. (An empty `(0, 0)` held the zero-length span
/// at address 0, and a slice made from it had a null pointer.)
const NONE: (usize, usize) = (usize::MAX, 0);

impl Default for Hot {
    fn default() -> Hot {
        Hot { first: NONE, data: NONE, write: NONE }
    }
}

/// Word writes into an [`Image`] with its hot writable range copied out,
/// so that a loop of writes keeps it in registers: a write through a raw
/// pointer could alias the image's own fields, and the compiler reloads
/// them after every one otherwise (the lazy PLT slots of a large program
/// are a hundred thousand such writes). The image cannot change while a
/// writer borrows it.
pub struct Writer<'a> {
    img: &'a Image,
    write: (usize, usize),
}

impl Writer<'_> {
    /// Whether the word at `addr` lies in a writable range: the hot one
    /// first, the others only when it does not.
    #[inline(always)]
    fn holds_word(&self, addr: usize) -> bool {
        addr.checked_add(8).is_some_and(|end| holds(self.write, addr, end) || Image::scan(&self.img.writable, addr, end))
    }

    /// [`Image::add_to_word`].
    #[inline(always)]
    pub fn add_to_word(&self, addr: usize, delta: u64) -> bool {
        if !self.holds_word(addr) {
            return false;
        }
        // SAFETY: writable (so readable) and owned by this object (see
        // `Image::add_writable`), and the image is borrowed unchanged.
        unsafe { add_to(addr, delta) };
        true
    }

    /// [`Image::write_u64`].
    #[inline(always)]
    pub fn write_word(&self, addr: usize, value: u64) -> bool {
        if !self.holds_word(addr) {
            return false;
        }
        // SAFETY: as in `add_to_word`.
        unsafe { core::ptr::write_unaligned(addr as *mut u64, value) };
        true
    }
}

/// The records of a [`Span`] (see [`Image::records`]). Each is read
/// whole, by value, never borrowed: a hostile table may lie in a writable
/// segment and be written by its own entries, and a borrowed slice of it
/// would then alias those writes.
pub struct Records<'a, const N: usize> {
    start: usize,
    count: usize,
    _img: core::marker::PhantomData<&'a Image>,
}

impl<const N: usize> Records<'_, N> {
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Record `i`, if there is one.
    #[inline(always)]
    pub fn get(&self, i: usize) -> Option<[u64; N]> {
        if i >= self.count {
            return None;
        }
        // SAFETY: records `0..count` lie in the span, checked readable in
        // the image this value borrows (readable ranges are never removed,
        // see `add_readable`); read unaligned, by value.
        Some(unsafe { core::ptr::read_unaligned((self.start + i * 8 * N) as *const [u64; N]) })
    }
}

#[inline(always)]
fn holds((s, e): (usize, usize), addr: usize, end: usize) -> bool {
    addr >= s && end <= e
}

/// Adds `delta` to the (unaligned) word at `at`.
///
/// # Safety
/// `at..at + 8` must lie in a writable range of an image (see
/// `Image::add_writable`), with no reference to those bytes alive.
#[inline(always)]
unsafe fn add_to(at: usize, delta: u64) {
    let p = at as *mut u64;
    // SAFETY: the caller's contract.
    unsafe { core::ptr::write_unaligned(p, core::ptr::read_unaligned(p).wrapping_add(delta)) };
}

impl Default for Image {
    fn default() -> Image {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Image { readable: Vec::new(), writable: Vec::new(), hot: Hot::default(), id: NEXT.fetch_add(1, Ordering::Relaxed) }
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
    /// Its first byte's address.
    pub fn start(&self) -> usize {
        self.start
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Image {
    pub fn new() -> Image {
        Image::default()
    }

    /// This image's identity: a new image (a newly mapped object, or the
    /// empty one an unmapped object is left with) has a new one; a clone
    /// keeps it.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// An empty image with room for `readable` ranges, `writable` of them
    /// writable (so that declaring them allocates once).
    pub fn with_capacity(readable: usize, writable: usize) -> Image {
        Image { readable: Vec::with_capacity(readable), writable: Vec::with_capacity(writable), ..Image::default() }
    }

    /// `len` bytes at `addr` as a [`Span`], if they are readable.
    pub fn span(&self, addr: usize, len: usize) -> Option<Span> {
        self.is_readable(addr, len).then_some(Span { image: self.id, start: addr, len })
    }

    /// At most `max` bytes from `addr`: as many as the readable range
    /// holding `addr` has (for tables whose exact size is not known).
    pub fn span_upto(&self, addr: usize, max: usize) -> Option<Span> {
        let (_, e) = self.range_of(addr)?;
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

    /// The span's whole `N`-word records (relocation tables), for a loop
    /// over them: the span is checked to be this image's once, then each
    /// read is one comparison with the count.
    #[inline(always)]
    pub fn records<const N: usize>(&self, s: Span) -> Records<'_, N> {
        let count = if s.image == self.id { s.len / (8 * N) } else { 0 };
        Records { start: s.start, count, _img: core::marker::PhantomData }
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

    /// The NUL-terminated string at byte `off` of span `s` (a string
    /// table checked readable once), without its NUL.
    #[inline]
    pub fn span_cstr(&self, s: Span, off: usize) -> Option<&[u8]> {
        let rest = self.span_bytes(s, off, s.len.checked_sub(off)?)?;
        Some(&rest[..nul_at(rest)?])
    }

    /// Declares `start..end` mapped and readable.
    ///
    /// # Safety
    /// The range must stay mapped readable for as long as this image is used.
    pub unsafe fn add_readable(&mut self, start: usize, end: usize) {
        if start < end {
            self.readable.push((start, end));
            if self.readable.len() == 1 {
                self.hot.first = (start, end);
            }
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
            // SAFETY: writable memory is readable; the caller's contract
            // covers the image's life.
            unsafe { self.add_readable(start, end) };
            if self.hot.data == NONE {
                self.hot.data = (start, end);
                self.hot.write = (start, end);
            }
        }
    }

    /// Forgets the writable ranges.
    pub fn seal(&mut self) {
        self.writable.clear();
        self.hot.write = NONE;
    }

    /// Removes `start..end` from the writable ranges (it was just made
    /// read-only, e.g. `PT_GNU_RELRO`); it stays readable.
    pub fn make_read_only(&mut self, start: usize, end: usize) {
        // In place: an object has a couple of writable ranges, and this
        // runs for every object a `dlopen` loads.
        let mut i = 0;
        while i < self.writable.len() {
            let (s, e) = self.writable[i];
            if end <= s || start >= e {
                i += 1;
                continue;
            }
            match (s < start, end < e) {
                (true, true) => {
                    self.writable[i] = (s, start);
                    self.writable.insert(i + 1, (end, e));
                    i += 2;
                }
                (true, false) => {
                    self.writable[i] = (s, start);
                    i += 1;
                }
                (false, true) => {
                    self.writable[i] = (end, e);
                    i += 1;
                }
                (false, false) => {
                    self.writable.remove(i);
                }
            }
        }
        // The hot copy follows: the first piece left of the first writable
        // range (RELRO is usually its start; what stays writable after it
        // is the GOT's lazy part and the data).
        let (ds, de) = self.hot.data;
        self.hot.write = self.writable.iter().copied().find(|&(s, e)| s < de && e > ds).unwrap_or(NONE);
    }

    /// Whether `addr..addr + len` lies inside one of `ranges` (the slow
    /// path, after the hot ranges).
    #[cold]
    #[inline(never)]
    fn scan(ranges: &[(usize, usize)], addr: usize, end: usize) -> bool {
        ranges.iter().any(|&r| holds(r, addr, end))
    }

    #[inline(always)]
    pub fn is_readable(&self, addr: usize, len: usize) -> bool {
        let Some(end) = addr.checked_add(len) else { return false };
        holds(self.hot.first, addr, end) || holds(self.hot.data, addr, end) || Image::scan(&self.readable, addr, end)
    }

    #[inline(always)]
    pub fn is_writable(&self, addr: usize, len: usize) -> bool {
        let Some(end) = addr.checked_add(len) else { return false };
        holds(self.hot.write, addr, end) || Image::scan(&self.writable, addr, end)
    }

    /// The readable range holding byte `addr`.
    #[inline]
    fn range_of(&self, addr: usize) -> Option<(usize, usize)> {
        let end = addr.checked_add(1)?;
        if holds(self.hot.first, addr, end) {
            return Some(self.hot.first);
        }
        if holds(self.hot.data, addr, end) {
            return Some(self.hot.data);
        }
        self.readable.iter().copied().find(|&r| holds(r, addr, end))
    }

    /// Reads a `T` at `addr` if it lies inside the object.
    #[inline(always)]
    pub fn read<T: Pod>(&self, addr: usize) -> Option<T> {
        if !self.is_readable(addr, core::mem::size_of::<T>()) {
            return None;
        }
        // SAFETY: the range is mapped readable (see `add_readable`) and `T`
        // is plain data, valid for any bit pattern; alignment is not assumed.
        Some(unsafe { core::ptr::read_unaligned(addr as *const T) })
    }

    #[inline(always)]
    pub fn u16(&self, addr: usize) -> Option<u16> {
        self.read(addr)
    }
    #[inline(always)]
    pub fn u32(&self, addr: usize) -> Option<u32> {
        self.read(addr)
    }
    #[inline(always)]
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
        let all = self.up_to(addr, limit)?;
        Some(&all[..nul_at(all)?])
    }

    /// The bytes from `addr` to the end of its readable range or `limit`,
    /// whichever comes first: where a string at `addr` must end.
    fn up_to(&self, addr: usize, limit: usize) -> Option<&[u8]> {
        let (_, end) = self.range_of(addr)?;
        let end = end.min(limit);
        if addr >= end {
            return None;
        }
        // SAFETY: `addr..end` lies inside one readable range (`range_of`),
        // mapped for the image's life; read-only data, as in `bytes`.
        Some(unsafe { core::slice::from_raw_parts(addr as *const u8, end - addr) })
    }

    /// Whether the string at `addr` (ending before `limit`) and the one at
    /// `other_addr` in `other` (before `other_limit`) are the same string,
    /// both terminated. Compared a word at a time without measuring either
    /// first (the binding plan's name check).
    pub fn same_cstr(&self, addr: usize, limit: usize, other: &Image, other_addr: usize, other_limit: usize) -> bool {
        match (self.up_to(addr, limit), other.up_to(other_addr, other_limit)) {
            (Some(a), Some(b)) => same_terminated(a, b),
            _ => false,
        }
    }

    /// Writes a word at `addr` if it lies in a writable range.
    #[inline(always)]
    pub fn write_u64(&self, addr: usize, value: u64) -> bool {
        if !self.is_writable(addr, 8) {
            return false;
        }
        // SAFETY: writable and owned by this object (see `add_writable`).
        unsafe { core::ptr::write_unaligned(addr as *mut u64, value) };
        true
    }

    /// A writer of words into this image for a loop of many writes.
    #[inline(always)]
    pub fn writer(&self) -> Writer<'_> {
        Writer { img: self, write: self.hot.write }
    }

    /// Adds `delta` to the word at `addr` if it lies in a writable range.
    #[inline(always)]
    pub fn add_to_word(&self, addr: usize, delta: u64) -> bool {
        self.writer().add_to_word(addr, delta)
    }

    /// Adds `delta` to the word at `start + 8 i` for every bit `i` set in
    /// `bits` (a `DT_RELR` bitmap entry), with one bounds check for all of
    /// them when they lie in one writable range (they do, in any object a
    /// linker wrote). Otherwise word by word, in order, stopping at the
    /// first word outside the writable ranges, whose address is returned.
    pub fn add_to_words(&self, start: usize, bits: u64, delta: u64) -> Result<(), usize> {
        if bits == 0 {
            return Ok(());
        }
        let (first, last) = (bits.trailing_zeros() as usize, 63 - bits.leading_zeros() as usize);
        let in_one_range = start.checked_add(first * 8).is_some_and(|lo| self.is_writable(lo, (last - first + 1) * 8));
        let mut rest = bits;
        if in_one_range {
            // The usual case, with no test in the loop: libc's 1,200
            // relocated words cost 8.3k instructions so, 12.1k with a
            // test for each.
            while rest != 0 {
                let at = start.wrapping_add(rest.trailing_zeros() as usize * 8);
                rest &= rest - 1;
                // SAFETY: inside the extent checked writable above.
                unsafe { add_to(at, delta) };
            }
            return Ok(());
        }
        while rest != 0 {
            let at = start.wrapping_add(rest.trailing_zeros() as usize * 8);
            rest &= rest - 1;
            if !self.is_writable(at, 8) {
                return Err(at);
            }
            // SAFETY: checked writable just now.
            unsafe { add_to(at, delta) };
        }
        Ok(())
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

/// The index of the first NUL in `b`, a word at a time: symbol names are
/// tens of bytes, and a byte loop took four instructions a byte.
fn nul_at(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut words = b.chunks_exact(8);
    for (i, w) in words.by_ref().enumerate() {
        let x = word(w);
        // The lowest flagged byte is the first zero (a flag above it may be
        // a false one); `word` reads little-endian, so it is the first in
        // memory.
        let zero = x.wrapping_sub(ONES) & !x & HIGHS;
        if zero != 0 {
            return Some(i * 8 + zero.trailing_zeros() as usize / 8);
        }
    }
    let tail = words.remainder();
    tail.iter().position(|&c| c == 0).map(|p| b.len() - tail.len() + p)
}

/// `a == b`, a word at a time: the core library's comparison calls out to
/// `bcmp`, some 50 instructions for the short names of a look-up. The
/// last, partial word is compared as the whole word that ends the names
/// (overlapping the one before), and names under eight bytes by two
/// overlapping halves or single bytes: no byte loop at all.
#[inline]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let w8 = |c: &[u8], i: usize| c.get(i..i + 8).and_then(|w| w.try_into().ok()).map_or(0, u64::from_ne_bytes);
    let w4 = |c: &[u8], i: usize| c.get(i..i + 4).and_then(|w| w.try_into().ok()).map_or(0, u32::from_ne_bytes);
    if n >= 8 {
        let mut i = 0;
        while i + 8 < n {
            if w8(a, i) != w8(b, i) {
                return false;
            }
            i += 8;
        }
        return w8(a, n - 8) == w8(b, n - 8);
    }
    if n >= 4 {
        return w4(a, 0) == w4(b, 0) && w4(a, n - 4) == w4(b, n - 4);
    }
    n == 0 || (a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1])
}

/// Whether `a` and `b` start with the same NUL-terminated string.
fn same_terminated(a: &[u8], b: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    // Whole words while both have one: equal words with a zero byte mean
    // both strings ended together.
    while let (Some(x), Some(y)) = (a.get(i..i + 8), b.get(i..i + 8)) {
        let (x, y) = (word(x), word(y));
        if x != y {
            break;
        }
        if x.wrapping_sub(ONES) & !x & HIGHS != 0 {
            return true;
        }
        i += 8;
    }
    // The word that differs (the strings may still end before the
    // difference) and any tail shorter than a word, byte by byte.
    while let (Some(&x), Some(&y)) = (a.get(i), b.get(i)) {
        if x != y {
            return false;
        }
        if x == 0 {
            return true;
        }
        i += 1;
    }
    false
}

#[inline(always)]
fn word(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(b);
    u64::from_le_bytes(w)
}

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

    /// Found by the `elf_object` fuzz target seeded with real objects: a
    /// library with `DT_STRTAB` 0 and `DT_STRSZ` 0 had its string table
    /// taken as the zero-length span at address 0, which the empty hot
    /// ranges held, and `span_cstr` made a slice with a null pointer from
    /// it.
    #[test]
    fn nothing_is_held_at_address_zero_not_even_zero_bytes() {
        let mut buf = [0u64; 8];
        let start = buf.as_mut_ptr() as usize;
        let fresh = Image::new();
        assert!(!fresh.is_readable(0, 0) && !fresh.is_writable(0, 0));
        let mut img = Image::new();
        // SAFETY: `buf` outlives `img`.
        unsafe {
            img.add_readable(start, start + 32);
            img.add_writable(start + 32, start + 64);
        }
        for at in [0, 1, usize::MAX] {
            assert!(img.span(at, 0).is_none(), "span at {at:#x}");
            assert!(!img.is_writable(at, 0), "writable at {at:#x}");
        }
        assert!(img.span(start + 8, 0).is_some(), "inside a range, zero bytes are fine");
        img.seal();
        assert!(!img.is_writable(0, 0) && !img.is_writable(start + 32, 8));
        img.make_read_only(start + 32, start + 64);
        assert!(!img.is_writable(0, 0));
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
    fn checks_outside_the_hot_ranges_still_see_every_range() {
        let mut buf = [0u64; 32];
        let start = buf.as_mut_ptr() as usize;
        let mut img = Image::new();
        // SAFETY: `buf` outlives `img`. Four ranges with gaps between them:
        // two read-only, two writable.
        unsafe {
            img.add_readable(start, start + 32);
            img.add_readable(start + 48, start + 64);
            img.add_writable(start + 80, start + 128);
            img.add_writable(start + 160, start + 192);
        }
        assert_eq!(img.u64(start + 48), Some(0), "a range after the first");
        assert_eq!(img.u64(start + 32), None, "the gap between them");
        assert_eq!(img.u64(start + 28), None, "straddles the first range's end");
        assert!(img.write_u64(start + 168, 3), "the second writable range");
        assert!(!img.write_u64(start + 136, 3), "the gap between the writable ones");
        assert!(!img.write_u64(start + 48, 3), "read-only");
        assert_eq!(img.cstr(start + 48, usize::MAX), Some(&b""[..]));
        assert_eq!(img.span_upto(start + 170, 100).map(|s| s.len()), Some(22));
        // RELRO at the start of the first writable range: refused there,
        // still accepted after it and in the other range.
        img.make_read_only(start + 80, start + 96);
        assert!(!img.write_u64(start + 80, 1));
        assert!(img.write_u64(start + 96, 1));
        assert!(img.write_u64(start + 184, 1));
        assert_eq!(img.u64(start + 80), Some(0), "still readable");
        img.make_read_only(start + 96, start + 128);
        assert!(!img.write_u64(start + 120, 1), "the whole first range made read-only");
        assert!(img.write_u64(start + 160, 1));
        img.seal();
        assert!(!img.write_u64(start + 160, 1), "sealed");
        assert_eq!(img.u64(start + 160), Some(1), "still readable once sealed");
        assert_eq!(img.u64(start + 96), Some(1));
    }

    #[test]
    fn bitmap_additions_stay_inside_writable_ranges() {
        let mut buf = [0u64; 16];
        let start = buf.as_mut_ptr() as usize;
        let mut img = Image::new();
        // SAFETY: `buf` outlives `img`; the last 8 words are read-only.
        unsafe {
            img.add_writable(start, start + 64);
            img.add_readable(start + 64, start + 128);
        }
        assert_eq!(img.add_to_words(start, 0b1011, 5), Ok(()));
        assert_eq!(img.add_to_words(start, 0, 5), Ok(()));
        // Words 6 and 7 are writable, word 8 is not: 6 and 7 are done,
        // then the address of word 8 is returned; word 9 is not reached.
        assert_eq!(img.add_to_words(start + 48, 0b1111, 1), Err(start + 64));
        assert_eq!(img.add_to_words(usize::MAX - 8, 0b11, 1), Err(usize::MAX - 8));
        assert_eq!(img.u64(start + 8 * 6), Some(1));
        assert_eq!(img.u64(start + 8 * 7), Some(1));
        assert_eq!(img.u64(start + 64), Some(0));
        assert_eq!(img.u64(start + 72), Some(0));
        for (i, want) in [5, 5, 0, 5, 0, 0].into_iter().enumerate() {
            assert_eq!(img.u64(start + 8 * i), Some(want), "word {i}");
        }
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
    fn same_bytes_is_slice_equality() {
        let text = b"printf@GLIBC_2.2.5 printf@GLIBC_2.2.6 __libc_start_main";
        for a in 0..text.len() {
            for b in 0..text.len() {
                for len in 0..=(text.len() - a.max(b)).min(20) {
                    let (x, y) = (&text[a..a + len], &text[b..b + len]);
                    assert_eq!(same_bytes(x, y), x == y, "{a} {b} {len}");
                }
            }
        }
        assert!(!same_bytes(b"abc", b"abcd"));
    }

    #[test]
    fn nul_at_finds_the_first_nul() {
        let mut b = [b'x'; 40];
        assert_eq!(nul_at(&b), None);
        for first in 0..b.len() {
            for second in first..b.len() {
                b = [b'x'; 40];
                b[first] = 0;
                b[second] = 0;
                // 0x80 and 0x01 bytes next to the NUL are the haszero
                // trick's false-positive cases.
                if let Some(c) = b.get_mut(first + 1) {
                    *c = if second % 2 == 0 { 0x80 } else { 0x01 };
                }
                for start in 0..8.min(first + 1) {
                    assert_eq!(nul_at(&b[start..]), Some(first - start), "{first} {second} {start}");
                }
            }
        }
        assert_eq!(nul_at(b"abc"), None);
        assert_eq!(nul_at(b"ab\0"), Some(2));
    }

    #[test]
    fn same_terminated_compares_c_strings() {
        let cases: &[(&[u8], &[u8], bool)] = &[
            (b"abc\0", b"abc\0", true),
            (b"abc\0x", b"abc\0y", true),
            (b"abc\0", b"abd\0", false),
            (b"abc\0", b"abc", false),
            (b"abc", b"abc", false),
            (b"abcdefgh\0", b"abcdefgh\0", true),
            (b"abcdefgh\0", b"abcdefgi\0", false),
            (b"abcdefghijklmnopq\0zz", b"abcdefghijklmnopq\0yy", true),
            (b"abcdefghijklmnop\0", b"abcdefghijklmnopq\0", false),
            (b"abcdefghijklmnopq\0", b"abcdefghijklmnop\0", false),
            (b"_ZNSt8ios_base4InitC1Ev\0", b"_ZNSt8ios_base4InitC1Ev\0", true),
            (b"\0", b"\0", true),
            (b"\0", b"a\0", false),
            (b"", b"", false),
        ];
        for &(a, b, same) in cases {
            assert_eq!(same_terminated(a, b), same, "{a:?} {b:?}");
            assert_eq!(same_terminated(b, a), same, "{b:?} {a:?}");
        }
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
