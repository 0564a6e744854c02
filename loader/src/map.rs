//! Mapping an object: `PT_LOAD` segments with the file's alignment,
//! `.bss` zeroed across the page boundary, the gaps left inaccessible.
//!
//! Also builds the [`Image`] of objects the kernel mapped (the program when
//! we are its `PT_INTERP`, ld-cah itself, the vDSO).
#![allow(unsafe_code)]

use alloc::vec;
use alloc::vec::Vec;

use object::elf::*;

use crate::elf::header::{Ehdr, HeaderError, Phdr, EHDR_SIZE, PHDR_SIZE};
use crate::elf::Image;
use core::sync::atomic::AtomicU64;

use crate::sys::{self, Fd};

/// What mapping produced.
#[derive(Debug)]
pub struct Mapped {
    /// `l_addr`: the difference between run-time and link-time addresses.
    pub base: usize,
    pub map_start: usize,
    pub map_end: usize,
    pub img: Image,
    pub phdrs: Vec<Phdr>,
    /// Run-time address of the program headers, if they are mapped.
    pub phdr_addr: usize,
    pub entry: usize,
    pub e_type: u16,
}

fn page_down(x: usize, page: usize) -> usize {
    x & !(page - 1)
}

fn page_up(x: usize, page: usize) -> Option<usize> {
    Some(x.checked_add(page - 1)? & !(page - 1))
}

fn prot_of(flags: u32) -> usize {
    let mut p = sys::PROT_NONE;
    if flags & PF_R != 0 {
        p |= sys::PROT_READ;
    }
    if flags & PF_W != 0 {
        p |= sys::PROT_WRITE;
    }
    if flags & PF_X != 0 {
        p |= sys::PROT_EXEC;
    }
    p
}

/// Where an object's bytes come from.
#[derive(Clone, Copy)]
pub enum Source<'a> {
    /// An open file: segments are mapped from it (shared with the page
    /// cache). With its size when the caller has already `fstat`ed it and
    /// found a regular file (one system call fewer per object).
    File(&'a Fd, Option<u64>),
    /// A private copy of a file, already verified: segments are copied from
    /// it into anonymous memory, so what runs is exactly what was hashed
    /// even if the file changes (see `verify::runtime::sealed`).
    Copy(&'a [u8]),
}

impl Source<'_> {
    fn size(&self) -> Result<u64, MapError> {
        match self {
            Source::File(_, Some(size)) => Ok(*size),
            Source::File(fd, None) => {
                let st = sys::fstat(fd)?;
                if st.mode & 0o170000 != 0o100000 {
                    return Err(MapError::NotRegular);
                }
                Ok(st.size as u64)
            }
            Source::Copy(b) => Ok(b.len() as u64),
        }
    }

    /// Reads up to `buf.len()` bytes at `off`; fewer only at the end.
    fn read_at(&self, buf: &mut [u8], off: u64) -> Result<usize, MapError> {
        match self {
            Source::File(fd, _) => Ok(sys::pread_full(fd, buf, off)?),
            Source::Copy(b) => {
                let start = usize::try_from(off).unwrap_or(usize::MAX).min(b.len());
                let n = buf.len().min(b.len() - start);
                buf[..n].copy_from_slice(&b[start..start + n]);
                Ok(n)
            }
        }
    }

    /// Maps `len` bytes of the object from offset `off` at `at`, `prot`.
    ///
    /// # Safety
    /// `at..at + len` is part of a reservation of the caller's that holds
    /// nothing else.
    unsafe fn map_segment(&self, at: usize, len: usize, prot: usize, off: u64) -> Result<(), MapError> {
        match self {
            // SAFETY: the caller's reservation (see above).
            Source::File(fd, _) => {
                unsafe { sys::mmap(at, len, prot, sys::MAP_PRIVATE | sys::MAP_FIXED, fd.raw(), off) }.map(|_| ()).map_err(MapError::Io)
            }
            Source::Copy(b) => {
                // SAFETY: as above; anonymous memory, written then protected.
                unsafe {
                    sys::mmap(at, len, sys::PROT_READ | sys::PROT_WRITE, sys::MAP_PRIVATE | sys::MAP_FIXED | sys::MAP_ANONYMOUS, -1, 0)
                        .map_err(MapError::Io)?;
                    let start = usize::try_from(off).unwrap_or(usize::MAX).min(b.len());
                    let n = len.min(b.len() - start);
                    // Past the end of the copy the page stays zero, as a
                    // file mapping reads past end of file.
                    core::ptr::copy_nonoverlapping(b[start..].as_ptr(), at as *mut u8, n);
                    sys::mprotect(at, len, prot).map_err(MapError::Io)
                }
            }
        }
    }
}

/// Why an object cannot be mapped. Callers match on the variant; the text
/// (ld-cah's wording, which `glibc::dlerror` turns into glibc's) is made in
/// one place, [`MapError::message`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// The ELF header is wrong (or for another machine).
    Header(HeaderError),
    /// A system call failed.
    Io(sys::Errno),
    /// Not a regular file.
    NotRegular,
    /// The program headers lie past the end of the file.
    PhdrsTruncated,
    NoLoadableSegments,
    /// Any other inconsistency of the program headers or the mappings,
    /// for which glibc has no wording of its own.
    Bad(&'static str),
}

impl MapError {
    pub fn message(self) -> &'static str {
        match self {
            MapError::Header(h) => h.message(),
            MapError::Io(e) => e.describe(),
            MapError::NotRegular => "not a regular file",
            MapError::PhdrsTruncated => "file too short for its program headers",
            MapError::NoLoadableSegments => "no loadable segments",
            MapError::Bad(why) => why,
        }
    }

    /// Another machine or ELF class: the search goes on.
    pub fn other_machine(self) -> bool {
        matches!(self, MapError::Header(h) if h.other_machine())
    }
}

impl From<HeaderError> for MapError {
    fn from(h: HeaderError) -> Self {
        MapError::Header(h)
    }
}

impl From<sys::Errno> for MapError {
    fn from(e: sys::Errno) -> Self {
        MapError::Io(e)
    }
}

impl core::fmt::Display for MapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.message())
    }
}

/// Reads and checks the ELF and program headers of an open file.
pub fn read_headers(fd: &Fd, machine: u16) -> Result<(Ehdr, Vec<Phdr>, u64), MapError> {
    read_headers_from(Source::File(fd, None), machine)
}

fn read_headers_from(src: Source<'_>, machine: u16) -> Result<(Ehdr, Vec<Phdr>, u64), MapError> {
    let size = src.size()?;
    let mut buf = [0u8; 1024];
    let n = src.read_at(&mut buf, 0)?;
    let ehdr = Ehdr::parse(&buf[..n], machine)?;
    let range = ehdr.phdr_range().ok_or(MapError::Bad("program headers out of range"))?;
    let phdrs = if range.end <= n {
        Phdr::parse_all(&buf[range.clone()])
    } else {
        let mut big = vec![0u8; range.len()];
        let got = src.read_at(&mut big, range.start as u64)?;
        if got != big.len() {
            return Err(MapError::PhdrsTruncated);
        }
        Phdr::parse_all(&big)
    }
    .ok_or(MapError::Bad("bad program headers"))?;
    Ok((ehdr, phdrs, size))
}

/// Maps an object from `fd`. `page` is the system page size.
pub fn map_file(fd: &Fd, machine: u16, page: usize) -> Result<Mapped, MapError> {
    map_from(Source::File(fd, None), machine, page)
}

/// [`map_file`] for a regular file of `size` bytes the caller has just
/// `fstat`ed.
pub fn map_regular_file(fd: &Fd, size: u64, machine: u16, page: usize) -> Result<Mapped, MapError> {
    map_from(Source::File(fd, Some(size)), machine, page)
}

/// Maps an object from a private copy of its bytes (see [`Source::Copy`]).
pub fn map_copy(bytes: &[u8], machine: u16, page: usize) -> Result<Mapped, MapError> {
    map_from(Source::Copy(bytes), machine, page)
}

fn map_from(src: Source<'_>, machine: u16, page: usize) -> Result<Mapped, MapError> {
    let (ehdr, phdrs, file_size) = read_headers_from(src, machine)?;
    let loads: Vec<&Phdr> = phdrs.iter().filter(|p| p.p_type == PT_LOAD).collect();
    let first = *loads.first().ok_or(MapError::NoLoadableSegments)?;
    let mut align = page;
    let mut prev_end = 0u64;
    for p in &loads {
        if p.p_filesz > p.p_memsz {
            return Err(MapError::Bad("segment file size exceeds its memory size"));
        }
        if p.p_vaddr < prev_end {
            return Err(MapError::Bad("loadable segments overlap or are out of order"));
        }
        if (p.p_vaddr % page as u64) != (p.p_offset % page as u64) {
            return Err(MapError::Bad("segment offset and address disagree modulo the page size"));
        }
        let end = p.p_offset.checked_add(p.p_filesz).ok_or(MapError::Bad("segment out of range"))?;
        if end > file_size {
            return Err(MapError::Bad("file too short (truncated?)"));
        }
        prev_end = p.p_vaddr.checked_add(p.p_memsz).ok_or(MapError::Bad("segment out of range"))?;
        if p.p_align > align as u64 && p.p_align.is_power_of_two() && p.p_align <= 1 << 30 {
            align = p.p_align as usize;
        }
    }
    let lo = page_down(first.p_vaddr as usize, page);
    let hi = page_up(prev_end as usize, page).ok_or(MapError::Bad("segment out of range"))?;
    let span = hi - lo;
    if span == 0 || span > 1 << 40 {
        return Err(MapError::Bad("bad segment sizes"));
    }

    // Reserve the whole span first so that no other mapping lands between
    // segments; over-reserve to honour alignments above the page size.
    let mut first_mapped = false;
    let base = if ehdr.e_type == ET_EXEC {
        const MAP_FIXED_NOREPLACE: usize = 0x100000;
        // SAFETY: NOREPLACE never clobbers an existing mapping.
        let got = unsafe { sys::mmap(lo, span, sys::PROT_NONE, sys::MAP_PRIVATE | sys::MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) }
            .map_err(|_| MapError::Bad("cannot map a fixed-address executable here (address in use)"))?;
        if got != lo {
            return Err(MapError::Bad("cannot map a fixed-address executable here (address in use)"));
        }
        0
    } else if let (Source::File(fd, _), true, true) = (src, align == page, first.p_filesz > 0) {
        // As glibc: the first segment mapped from the file over the whole
        // span is the reservation (one system call fewer per object); the
        // other segments replace the rest of it below, and the gaps
        // between segments are made inaccessible after them.
        let off = page_down(first.p_offset as usize, page) as u64;
        // SAFETY: a fresh mapping the kernel places.
        let start = unsafe { sys::mmap(0, span, prot_of(first.p_flags), sys::MAP_PRIVATE, fd.raw(), off) }
            .map_err(|_| MapError::Bad("cannot reserve address space"))?;
        first_mapped = true;
        start - lo
    } else {
        let extra = align - page;
        // SAFETY: a fresh reservation the kernel places.
        let start = unsafe { sys::mmap(0, span + extra, sys::PROT_NONE, sys::MAP_PRIVATE | sys::MAP_ANONYMOUS, -1, 0) }
            .map_err(|_| MapError::Bad("cannot reserve address space"))?;
        let aligned = (start + align - 1) & !(align - 1);
        // SAFETY: trimming the unused ends of our own fresh reservation.
        unsafe {
            if aligned > start {
                let _ = sys::munmap(start, aligned - start);
            }
            let tail = start + span + extra - (aligned + span);
            if tail > 0 {
                let _ = sys::munmap(aligned + span, tail);
            }
        }
        aligned - lo
    };

    let mut img = Image::with_capacity(loads.len(), loads.iter().filter(|p| p.p_flags & PF_W != 0).count());
    let mut prev_page_end = 0;
    for (i, p) in loads.iter().enumerate() {
        let vaddr = base + p.p_vaddr as usize;
        let prot = prot_of(p.p_flags);
        let seg_start = page_down(vaddr, page);
        let file_end = vaddr + p.p_filesz as usize;
        let mem_end = vaddr + p.p_memsz as usize;
        if first_mapped && i > 0 && seg_start > prev_page_end {
            // A gap between segments still maps the file: no access.
            // SAFETY: inside the span mapped above, between two segments.
            unsafe { sys::mprotect(prev_page_end, seg_start - prev_page_end, sys::PROT_NONE) }.map_err(MapError::Io)?;
        }
        prev_page_end = page_up(mem_end, page).ok_or(MapError::Bad("segment out of range"))?;
        if p.p_filesz > 0 && !(first_mapped && i == 0) {
            let len = page_up(file_end, page).ok_or(MapError::Bad("segment out of range"))? - seg_start;
            let off = page_down(p.p_offset as usize, page) as u64;
            if first_mapped && p.p_vaddr.wrapping_sub(p.p_offset) == first.p_vaddr.wrapping_sub(first.p_offset) {
                // The reservation already maps these very file pages (the
                // segment lies as far from its file offset as the first
                // one): only the protection may differ. Code then costs an
                // `mprotect` and read-only data nothing, where glibc's
                // loader maps each segment again.
                if prot != prot_of(first.p_flags) {
                    // SAFETY: inside the span mapped above, this segment's pages.
                    unsafe { sys::mprotect(seg_start, len, prot) }.map_err(MapError::Io)?;
                }
            } else {
                // SAFETY: inside the span reserved above, which holds nothing else.
                unsafe { src.map_segment(seg_start, len, prot, off) }?;
            }
        }
        if p.p_memsz > p.p_filesz {
            // Zero the rest of the last file page; it holds whatever
            // followed the segment in the file.
            let zero_end = page_up(file_end, page).ok_or(MapError::Bad("segment out of range"))?.min(mem_end);
            if p.p_filesz > 0 && zero_end > file_end {
                if prot & sys::PROT_WRITE == 0 {
                    // SAFETY: our own fresh mapping, made writable briefly.
                    unsafe { sys::mprotect(page_down(file_end, page), page, prot | sys::PROT_WRITE) }.map_err(MapError::Io)?;
                }
                // SAFETY: this page was just mapped writable, privately.
                unsafe { core::ptr::write_bytes(file_end as *mut u8, 0, zero_end - file_end) };
                if prot & sys::PROT_WRITE == 0 {
                    // SAFETY: restoring the segment's own protection.
                    unsafe { sys::mprotect(page_down(file_end, page), page, prot) }.map_err(MapError::Io)?;
                }
            }
            let anon_start = if p.p_filesz > 0 { page_up(file_end, page).ok_or(MapError::Bad("segment out of range"))? } else { seg_start };
            let anon_end = page_up(mem_end, page).ok_or(MapError::Bad("segment out of range"))?;
            if anon_end > anon_start {
                // SAFETY: inside our reservation.
                unsafe {
                    sys::mmap(anon_start, anon_end - anon_start, prot, sys::MAP_PRIVATE | sys::MAP_FIXED | sys::MAP_ANONYMOUS, -1, 0)
                }
                .map_err(MapError::Io)?;
            }
        }
        let (s, e) = (vaddr, mem_end);
        // SAFETY: just mapped with these permissions; the mapping lives until
        // the object is unloaded, and the image is dropped with the object.
        unsafe {
            if p.p_flags & PF_W != 0 {
                img.add_writable(s, e);
            } else if p.p_flags & PF_R != 0 {
                img.add_readable(s, e);
            }
        }
    }

    let phdr_addr = locate_phdrs(&ehdr, &phdrs, base, &img);
    Ok(Mapped {
        base,
        map_start: base + lo,
        map_end: base + hi,
        img,
        phdrs,
        phdr_addr,
        entry: base.wrapping_add(ehdr.e_entry as usize),
        e_type: ehdr.e_type,
    })
}

/// Where the program headers are in memory: `PT_PHDR`, or inside the
/// segment that maps file offset `e_phoff`; else a heap copy (which
/// `dl_iterate_phdr` users can read just as well).
fn locate_phdrs(ehdr: &Ehdr, phdrs: &[Phdr], base: usize, img: &Image) -> usize {
    if let Some(p) = phdrs.iter().find(|p| p.p_type == PT_PHDR) {
        let a = base.wrapping_add(p.p_vaddr as usize);
        if img.is_readable(a, phdrs.len() * PHDR_SIZE) {
            return a;
        }
    }
    for p in phdrs.iter().filter(|p| p.p_type == PT_LOAD) {
        if ehdr.e_phoff >= p.p_offset && ehdr.e_phoff + (phdrs.len() * PHDR_SIZE) as u64 <= p.p_offset + p.p_filesz {
            let a = base + (p.p_vaddr + ehdr.e_phoff - p.p_offset) as usize;
            if img.is_readable(a, phdrs.len() * PHDR_SIZE) {
                return a;
            }
        }
    }
    let mut copy = Vec::with_capacity(phdrs.len() * PHDR_SIZE);
    for p in phdrs {
        for w in [u64::from(p.p_type) | (u64::from(p.p_flags) << 32), p.p_offset, p.p_vaddr, p.p_paddr, p.p_filesz, p.p_memsz, p.p_align] {
            copy.extend_from_slice(&w.to_le_bytes());
        }
    }
    // Kept for the life of the process, like glibc's l_phdr copy.
    copy.leak().as_ptr() as usize
}

/// Describes an object someone else mapped (the kernel, or crt for
/// ourselves), from its program headers in memory.
///
/// # Safety
/// `phdr_addr` points at `phnum` program headers of an object whose
/// `PT_LOAD` segments are mapped at `base` as the headers say.
pub unsafe fn from_memory(base: usize, phdr_addr: usize, phnum: usize) -> Result<Mapped, &'static str> {
    if phnum == 0 || phnum > crate::elf::header::MAX_PHNUM {
        return Err("bad number of program headers");
    }
    // SAFETY: the caller vouches for the table.
    let raw = unsafe { core::slice::from_raw_parts(phdr_addr as *const u8, phnum * PHDR_SIZE) };
    let phdrs = Phdr::parse_all(raw).ok_or("bad program headers")?;
    let mut img = Image::new();
    let (mut lo, mut hi) = (usize::MAX, 0usize);
    for p in phdrs.iter().filter(|p| p.p_type == PT_LOAD) {
        let s = base.wrapping_add(p.p_vaddr as usize);
        let e = s.wrapping_add(p.p_memsz as usize);
        lo = lo.min(s);
        hi = hi.max(e);
        // SAFETY: mapped by whoever loaded the object (caller's contract).
        unsafe {
            if p.p_flags & PF_W != 0 {
                img.add_writable(s, e);
            } else {
                img.add_readable(s, e);
            }
        }
    }
    if lo == usize::MAX {
        return Err("no loadable segments");
    }
    Ok(Mapped { base, map_start: lo, map_end: hi, img, phdrs, phdr_addr, entry: 0, e_type: ET_DYN })
}

/// Reads an ELF header that is mapped in memory (the vDSO, ourselves).
///
/// # Safety
/// `addr` points at a mapped ELF header.
pub unsafe fn ehdr_in_memory(addr: usize, machine: u16) -> Result<Ehdr, HeaderError> {
    // SAFETY: the caller vouches for 64 mapped bytes.
    let raw = unsafe { core::slice::from_raw_parts(addr as *const u8, EHDR_SIZE) };
    Ehdr::parse(raw, machine)
}

/// Makes an object's `PT_GNU_RELRO` page range `[s, e)` read-only, in the
/// page tables and in its image (so the bounds-checked writer refuses it
/// too).
pub fn protect_relro((s, e): (usize, usize), img: &mut Image) -> Result<(), sys::Errno> {
    // SAFETY: called once the object is fully relocated; RELRO data is
    // never written again.
    unsafe { sys::mprotect(s, e - s, sys::PROT_READ) }?;
    img.make_read_only(s, e);
    Ok(())
}

/// The first bytes of a file mapped read-only and private, unmapped when
/// dropped. Its pages come straight from the page cache: nothing is
/// copied or zeroed, where `pread` into a buffer would do both.
///
/// The file must not shrink while mapped (reading a page past its new end
/// would fault): callers map only files that only root or the caller can
/// write (the hash cache's trust rules, `verify::runtime::sealed`), and
/// check the length against a fresh `fstat` first.
pub struct FileView {
    addr: usize,
    len: usize,
}

impl FileView {
    /// Maps the first `len` bytes of `fd`; `len` is not zero.
    pub fn map(fd: &Fd, len: usize) -> Result<FileView, sys::Errno> {
        if len == 0 {
            return Err(sys::Errno::EINVAL);
        }
        // SAFETY: without MAP_FIXED the kernel picks a fresh range.
        let addr = unsafe { sys::mmap(0, len, sys::PROT_READ, sys::MAP_PRIVATE, fd.raw(), 0) }?;
        Ok(FileView { addr, len })
    }

    /// The whole words of the view, in native byte order (both arches are
    /// little-endian, the order of every word-based format ld-cah writes).
    #[cfg(target_endian = "little")]
    pub fn words(&self) -> &[u64] {
        // SAFETY: `addr` is page-aligned (so aligned for u64) and its
        // `len` bytes are readable until `drop`, which the borrow of
        // `self` outlasts; any bits are a valid u64.
        unsafe { core::slice::from_raw_parts(self.addr as *const u64, self.len / 8) }
    }
}

impl core::ops::Deref for FileView {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `addr..addr + len` is mapped readable until `drop`, which
        // the borrow of `self` outlasts.
        unsafe { core::slice::from_raw_parts(self.addr as *const u8, self.len) }
    }
}

impl Drop for FileView {
    fn drop(&mut self) {
        // SAFETY: our own mapping; every slice lent borrows `self`.
        let _ = unsafe { sys::munmap(self.addr, self.len) };
    }
}

/// The first `len` bytes (a multiple of 8) of a file mapped shared,
/// readable and writable, as 64-bit words that only atomic operations
/// touch: the hash cache file, which other processes change at any time.
/// Unmapped on drop.
///
/// The file must not shrink while mapped (cache files are replaced by
/// rename, never truncated; only their owner, root or the user, could do
/// it): an access past its end would raise `SIGBUS`.
pub struct SharedWords {
    addr: usize,
    len: usize,
}

impl SharedWords {
    pub fn map(fd: &Fd, len: usize) -> Result<SharedWords, sys::Errno> {
        if len == 0 || !len.is_multiple_of(8) {
            return Err(sys::Errno::EINVAL);
        }
        let prot = sys::PROT_READ | sys::PROT_WRITE;
        // SAFETY: without MAP_FIXED the kernel picks a fresh range.
        let addr = unsafe { sys::mmap(0, len, prot, sys::MAP_SHARED, fd.raw(), 0) }?;
        Ok(SharedWords { addr, len })
    }

    pub fn words(&self) -> &[AtomicU64] {
        // SAFETY: `addr` is page-aligned (so aligned for u64) and its `len`
        // bytes are mapped until `drop`, which the borrow of `self`
        // outlasts; `AtomicU64` has the size and alignment of `u64`, and
        // every access through it is atomic, so writers in other processes
        // are not a data race.
        unsafe { core::slice::from_raw_parts(self.addr as *const AtomicU64, self.len / 8) }
    }
}

impl Drop for SharedWords {
    fn drop(&mut self) {
        // SAFETY: our own mapping; every slice lent borrows `self`.
        let _ = unsafe { sys::munmap(self.addr, self.len) };
    }
}
