//! The dynamic section of a mapped object, decoded once.

use alloc::vec::Vec;
use object::elf::*;

use super::consts::*;

use super::Image;

/// Everything the loader takes from `PT_DYNAMIC`. Addresses are absolute
/// (the load base is already added); 0 means absent.
#[derive(Clone, Debug, Default)]
pub struct DynInfo {
    pub symtab: usize,
    pub syment: usize,
    pub strtab: usize,
    pub strsz: usize,
    pub hash: usize,
    pub gnu_hash: usize,
    pub versym: usize,
    pub verdef: usize,
    pub verdefnum: usize,
    pub verneed: usize,
    pub verneednum: usize,
    pub rela: usize,
    pub relasz: usize,
    pub relaent: usize,
    pub jmprel: usize,
    pub pltrelsz: usize,
    pub pltrel: u64,
    pub relr: usize,
    pub relrsz: usize,
    pub relrent: usize,
    pub init: usize,
    pub fini: usize,
    pub init_array: usize,
    pub init_arraysz: usize,
    pub fini_array: usize,
    pub fini_arraysz: usize,
    pub preinit_array: usize,
    pub preinit_arraysz: usize,
    /// Offsets into the string table.
    pub needed: Vec<usize>,
    pub soname: Option<usize>,
    pub rpath: Option<usize>,
    pub runpath: Option<usize>,
    pub flags: u64,
    pub flags_1: u64,
    /// `DT_BIND_NOW` (the tag; `DF_BIND_NOW` is in `flags`).
    pub bind_now: bool,
    /// `DT_AARCH64_VARIANT_PCS`: some PLT slots reference functions with a
    /// variant procedure-call standard (aarch64 only; see `reloc`).
    pub variant_pcs: bool,
    pub textrel: bool,
    pub symbolic: bool,
    /// Address of the `d_val` of `DT_DEBUG`, where `r_debug` is published.
    pub debug_slot: usize,
    /// `DT_PLTGOT`.
    pub pltgot: usize,
    /// Number of entries in the dynamic array, including `DT_NULL`.
    pub count: usize,
    /// The symbol and hash tables, located once by `parse`.
    pub tables: Option<super::symbols::Tables>,
}

/// `DT_AARCH64_VARIANT_PCS` (the aarch64 ELF ABI; not in `object`).
pub const DT_AARCH64_VARIANT_PCS: u32 = 0x7000_0005;

impl DynInfo {
    /// Decodes the dynamic array at `dynamic` of an object loaded at `base`.
    pub fn parse(img: &Image, base: usize, dynamic: usize) -> Result<DynInfo, &'static str> {
        let mut d = DynInfo { syment: 24, relaent: 24, relrent: 8, ..DynInfo::default() };
        let ptr = |v: u64| base.wrapping_add(v as usize);
        let mut n: usize = 0;
        // No fixed cap on the number of entries (a legal object may have
        // thousands): the walk ends at `DT_NULL` or at the end of the
        // readable range that holds the array, whichever comes first. That
        // range is found once, not checked per read.
        let span = img.span_upto(dynamic, usize::MAX).ok_or("dynamic section lies outside the object")?;
        let mut entries = img.span_bytes(span, 0, span.len()).unwrap_or_default().chunks_exact(16);
        loop {
            let Some(e) = entries.next() else {
                return Err("dynamic section lies outside the object (no DT_NULL)");
            };
            let word = |w: &[u8]| w.try_into().map_or(0, u64::from_ne_bytes);
            let (tag, val) = (word(&e[..8]), word(&e[8..]));
            let at = dynamic + n * 16;
            n += 1;
            // Every tag the loader knows fits in 32 bits.
            let Ok(tag) = u32::try_from(tag) else { continue };
            match tag {
                DT_NULL => break,
                DT_NEEDED => d.needed.push(val as usize),
                DT_PLTRELSZ => d.pltrelsz = val as usize,
                DT_PLTGOT => d.pltgot = ptr(val),
                DT_HASH => d.hash = ptr(val),
                DT_STRTAB => d.strtab = ptr(val),
                DT_SYMTAB => d.symtab = ptr(val),
                DT_RELA => d.rela = ptr(val),
                DT_RELASZ => d.relasz = val as usize,
                DT_RELAENT => d.relaent = val as usize,
                DT_STRSZ => d.strsz = val as usize,
                DT_SYMENT => d.syment = val as usize,
                DT_INIT => d.init = ptr(val),
                DT_FINI => d.fini = ptr(val),
                DT_SONAME => d.soname = Some(val as usize),
                DT_RPATH => d.rpath = Some(val as usize),
                DT_SYMBOLIC => d.symbolic = true,
                DT_PLTREL => d.pltrel = val,
                DT_DEBUG => d.debug_slot = at + 8,
                DT_TEXTREL => d.textrel = true,
                DT_JMPREL => d.jmprel = ptr(val),
                DT_BIND_NOW => d.bind_now = true,
                DT_AARCH64_VARIANT_PCS => d.variant_pcs = true,
                DT_INIT_ARRAY => d.init_array = ptr(val),
                DT_FINI_ARRAY => d.fini_array = ptr(val),
                DT_INIT_ARRAYSZ => d.init_arraysz = val as usize,
                DT_FINI_ARRAYSZ => d.fini_arraysz = val as usize,
                DT_RUNPATH => d.runpath = Some(val as usize),
                DT_FLAGS => d.flags = val,
                DT_PREINIT_ARRAY => d.preinit_array = ptr(val),
                DT_PREINIT_ARRAYSZ => d.preinit_arraysz = val as usize,
                DT_RELRSZ => d.relrsz = val as usize,
                DT_RELR => d.relr = ptr(val),
                DT_RELRENT => d.relrent = val as usize,
                DT_GNU_HASH => d.gnu_hash = ptr(val),
                DT_VERSYM => d.versym = ptr(val),
                DT_VERDEF => d.verdef = ptr(val),
                DT_VERDEFNUM => d.verdefnum = val as usize,
                DT_VERNEED => d.verneed = ptr(val),
                DT_VERNEEDNUM => d.verneednum = val as usize,
                DT_FLAGS_1 => d.flags_1 = val,
                _ => {}
            }
        }
        d.count = n;
        if d.flags & u64::from(DF_TEXTREL) != 0 {
            d.textrel = true;
        }
        if d.flags & u64::from(DF_SYMBOLIC) != 0 {
            d.symbolic = true;
        }
        if d.strtab == 0 && (!d.needed.is_empty() || d.soname.is_some()) {
            return Err("dynamic section has names but no DT_STRTAB");
        }
        if d.syment != 24 || d.relaent != 24 || d.relrent != 8 {
            return Err("unsupported dynamic entry size");
        }
        if d.jmprel != 0 && d.pltrel != u64::from(DT_RELA) {
            return Err("unsupported DT_PLTREL (only RELA)");
        }
        d.tables = Some(super::symbols::Tables::new(img, &d));
        Ok(d)
    }

    /// Checks that every table the loader walks with a count taken from
    /// this section lies in the object's readable memory, so a hostile
    /// size (`DT_INIT_ARRAYSZ` of 2^40, `DT_VERNEEDNUM` of 4 billion) is
    /// refused here, before any loop runs. `main` says whether this is the
    /// program (the only object whose `DT_PREINIT_ARRAY` is used).
    pub fn check_ranges(&self, img: &Image, main: bool) -> Result<(), &'static str> {
        let table = |addr: usize, size: usize| addr == 0 || size == 0 || img.is_readable(addr, size);
        if !table(self.rela, self.relasz) {
            return Err("relocation table lies outside the object (DT_RELASZ out of range)");
        }
        if !table(self.jmprel, self.pltrelsz) {
            return Err("PLT relocation table lies outside the object (DT_PLTRELSZ out of range)");
        }
        if !table(self.relr, self.relrsz) {
            return Err("DT_RELR table lies outside the object (DT_RELRSZ out of range)");
        }
        if !table(self.init_array, self.init_arraysz) {
            return Err("DT_INIT_ARRAY lies outside the object (DT_INIT_ARRAYSZ out of range)");
        }
        if !table(self.fini_array, self.fini_arraysz) {
            return Err("DT_FINI_ARRAY lies outside the object (DT_FINI_ARRAYSZ out of range)");
        }
        if main && !table(self.preinit_array, self.preinit_arraysz) {
            return Err("DT_PREINIT_ARRAY lies outside the object (DT_PREINIT_ARRAYSZ out of range)");
        }
        if self.strtab != 0 && !table(self.strtab, self.strsz) {
            return Err("string table lies outside the object (DT_STRSZ out of range)");
        }
        // Each `Elf64_Verdef` is 20 bytes and each `Elf64_Verneed` 16, in
        // one section: the count cannot be more than the bytes allow.
        if self.verdef != 0 && !table(self.verdef, self.verdefnum.saturating_mul(20)) {
            return Err("version definitions lie outside the object (DT_VERDEFNUM out of range)");
        }
        if self.verneed != 0 && !table(self.verneed, self.verneednum.saturating_mul(16)) {
            return Err("version requirements lie outside the object (DT_VERNEEDNUM out of range)");
        }
        Ok(())
    }

    /// The string at `off` in the dynamic string table.
    pub fn string<'a>(&self, img: &'a Image, off: usize) -> Option<&'a [u8]> {
        if off >= self.strsz {
            return None;
        }
        img.cstr(self.strtab.checked_add(off)?, self.strings_end())
    }

    /// Where the string table ends. `check_ranges` refuses a table that
    /// runs past the address space, but not every caller has asked it
    /// (the fuzz target does not): saturating, a string still ends at its
    /// readable range.
    fn strings_end(&self) -> usize {
        self.strtab.saturating_add(self.strsz)
    }

    /// Whether string `off` of this table (in `img`) and string
    /// `other_off` of `other`'s (in `other_img`) are the same, without
    /// measuring either.
    pub fn same_string(&self, img: &Image, off: usize, other: &DynInfo, other_img: &Image, other_off: usize) -> bool {
        let at = |d: &DynInfo, off: usize| (off < d.strsz).then(|| d.strtab.checked_add(off)).flatten();
        match (at(self, off), at(other, other_off)) {
            (Some(a), Some(b)) => img.same_cstr(a, self.strings_end(), other_img, b, other.strings_end()),
            _ => false,
        }
    }
}
