//! Symbol versions: `DT_VERDEF`, `DT_VERNEED` and `DT_VERSYM`.

use alloc::vec::Vec;

use super::image::{same_bytes, Span};
use super::{DynInfo, Image};

/// One version name an object defines or needs, by its `versym` index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VersionReq<'a> {
    pub name: &'a [u8],
    pub hash: u32,
    pub hidden: bool,
    /// For needed versions: the file (`DT_NEEDED` name) that must define it.
    pub file: Option<&'a [u8]>,
    /// `VER_FLG_WEAK`: missing is not an error.
    pub weak: bool,
}

/// A [`VersionReq`] as stored: its names are offsets into the object's
/// string table and lengths, read when asked for (copying them cost a
/// tenth of a warm start's version work, and every copy of the table for
/// the lazy resolver copied them again). The lengths are measured once,
/// by `parse`: a reader that looked for the NUL again paid for it on
/// every symbol a look-up compared.
#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    name: Str,
    /// The file's name, for needed versions.
    file: Str,
    hash: u32,
    flags: u8,
}

/// A string of the string table, without its NUL.
#[derive(Clone, Copy, Debug, Default)]
struct Str {
    off: u32,
    len: u32,
}

impl Str {
    /// The bytes, from the span over the string table `parse` checked
    /// them in.
    #[inline]
    fn read(self, img: &Image, strings: Span) -> Option<&[u8]> {
        img.span_bytes(strings, self.off as usize, self.len as usize)
    }
}

/// [`Entry::flags`]: the index names a version (not local, global or the
/// base definition).
const PRESENT: u8 = 1;
const HIDDEN: u8 = 2;
const WEAK: u8 = 4;
const NEEDED: u8 = 8;

/// An object's version table, indexed by `versym` value. Names are read
/// from the image it was parsed from, which every reader passes in.
#[derive(Clone, Debug, Default)]
pub struct Versions {
    entries: Vec<Entry>,
    /// The string table the names are in.
    strings: Span,
    /// Indices defined by `DT_VERDEF` (not the base entry).
    pub defined: Vec<u16>,
    /// Indices from `DT_VERNEED`.
    pub needed: Vec<u16>,
}

const VER_FLG_BASE: u16 = 1;
const VER_FLG_WEAK: u16 = 2;
/// Bounds on a corrupt table.
const MAX_ENTRIES: usize = 1 << 14;

impl Versions {
    /// Index 0 and 1 (local and global) and the base definition carry no
    /// name that matching cares about, so they are `None`. `img` is the
    /// image the table was parsed from.
    pub fn get<'i>(&self, img: &'i Image, ndx: u16) -> Option<VersionReq<'i>> {
        let e = self.entries.get(ndx as usize).filter(|e| e.flags & PRESENT != 0)?;
        let name = e.name.read(img, self.strings)?;
        let file = if e.flags & NEEDED != 0 { Some(e.file.read(img, self.strings)?) } else { None };
        Some(VersionReq { name, hash: e.hash, hidden: e.flags & HIDDEN != 0, file, weak: e.flags & WEAK != 0 })
    }

    /// A copy of what symbol lookups read: the entries, without the
    /// `defined` and `needed` lists.
    pub fn for_lookups(&self) -> Versions {
        Versions { entries: self.entries.clone(), strings: self.strings, defined: Vec::new(), needed: Vec::new() }
    }

    /// Whether index `ndx` names a version (`get` is `Some`), and if so
    /// whether it is `w` (same hash, then same name): a symbol search asks
    /// this of every candidate, without building a [`VersionReq`].
    #[inline]
    pub fn named_as(&self, img: &Image, ndx: u16, w: &VersionReq<'_>) -> Option<bool> {
        let e = self.entries.get(ndx as usize).filter(|e| e.flags & PRESENT != 0)?;
        Some(
            e.hash == w.hash
                && e.name.len as usize == w.name.len()
                && e.name.read(img, self.strings).is_some_and(|n| same_bytes(n, w.name)),
        )
    }

    #[inline]
    fn set(&mut self, ndx: u16, e: Entry) -> Result<(), &'static str> {
        let i = ndx as usize;
        if let Some(slot) = self.entries.get_mut(i) {
            *slot = e;
            return Ok(());
        }
        if i >= MAX_ENTRIES {
            return Err("version index out of range");
        }
        self.entries.resize(i + 1, Entry::default());
        self.entries[i] = e;
        Ok(())
    }

    pub fn parse(img: &Image, d: &DynInfo) -> Result<Versions, &'static str> {
        const BAD: &str = "corrupt version information";
        let mut v = Versions::default();
        if d.verdef == 0 && d.verneed == 0 {
            // Nothing versioned (many plugins): nothing to allocate.
            return Ok(v);
        }
        // Indices run from 2 up to about one per definition and
        // requirement: room for them at once, instead of growing the
        // tables one entry at a time (libc defines 40-odd versions).
        let defs = if d.verdef != 0 { d.verdefnum.min(MAX_ENTRIES) } else { 0 };
        v.entries.reserve(defs + 2 + if d.verneed != 0 { 8 } else { 0 });
        // Unset entries name nothing (`get` is `None`), so the definitions'
        // indices can be made at once and each is then a store.
        v.entries.resize((defs + 2).min(MAX_ENTRIES), Entry::default());
        v.defined.reserve(defs);
        // Spans over each table (to the end of the readable range holding
        // it) and the string table (checked readable with the dynamic
        // section): each read is one comparison, not a scan of the image's
        // ranges. Records are read as 32-bit words; two 16-bit fields
        // share one, the first in its low half (both arches are
        // little-endian).
        let strings = img.span(d.strtab, d.strsz).ok_or(BAD)?;
        v.strings = strings;
        // Each name is checked readable and terminated now, so that
        // readers find it; its offset and length are kept.
        let string = |off: u32| {
            let s = img.span_cstr(strings, off as usize).ok_or(BAD)?;
            Ok(Str { off, len: u32::try_from(s.len()).map_err(|_| BAD)? })
        };
        if d.verneed != 0 {
            let table = img.span_upto(d.verneed, usize::MAX).ok_or(BAD)?;
            let mut at = 0usize;
            // Every `Vernaux` names a distinct version index, and indices
            // are below MAX_ENTRIES: more entries than that, counted over
            // all files, can only be entries walked twice (chains that
            // overlap), which would make the walk quadratic.
            let mut walked = 0usize;
            for _ in 0..d.verneednum.min(MAX_ENTRIES) {
                // Elf64_Verneed: vn_version and vn_cnt (16 bits each),
                // vn_file, vn_aux, vn_next.
                let [version_cnt, file, aux, next]: [u32; 4] = img.at(table, at).ok_or(BAD)?;
                let file_name = string(file)?;
                let mut a = at.checked_add(aux as usize).ok_or(BAD)?;
                for _ in 0..version_cnt >> 16 {
                    walked += 1;
                    if walked > MAX_ENTRIES {
                        return Err("too many version requirements (DT_VERNEED entries overlap)");
                    }
                    // Elf64_Vernaux: vna_hash, vna_flags and vna_other (16
                    // bits each), vna_name, vna_next.
                    let [hash, flags_other, name, anext]: [u32; 4] = img.at(table, a).ok_or(BAD)?;
                    let (flags, other) = (flags_other as u16, (flags_other >> 16) as u16);
                    let ndx = other & 0x7fff;
                    let hidden = if other & 0x8000 != 0 { HIDDEN } else { 0 };
                    let weak = if flags & VER_FLG_WEAK != 0 { WEAK } else { 0 };
                    let e = Entry { name: string(name)?, file: file_name, hash, flags: PRESENT | NEEDED | hidden | weak };
                    v.set(ndx, e)?;
                    v.needed.push(ndx);
                    if anext == 0 {
                        break;
                    }
                    a = a.checked_add(anext as usize).ok_or(BAD)?;
                }
                if next == 0 {
                    break;
                }
                at = at.checked_add(next as usize).ok_or(BAD)?;
            }
        }
        if d.verdef != 0 {
            let table = img.span_upto(d.verdef, usize::MAX).ok_or(BAD)?;
            let mut at = 0usize;
            for _ in 0..d.verdefnum.min(MAX_ENTRIES) {
                // Elf64_Verdef: vd_version and vd_flags, vd_ndx and vd_cnt
                // (16 bits each), vd_hash, vd_aux, vd_next.
                let [version_flags, ndx_cnt, hash, aux, next]: [u32; 5] = img.at(table, at).ok_or(BAD)?;
                let ndx = ndx_cnt as u16 & 0x7fff;
                if (version_flags >> 16) as u16 & VER_FLG_BASE == 0 {
                    // The first Elf64_Verdaux (vda_name, vda_next) names it.
                    let name: u32 = img.at(table, at.checked_add(aux as usize).ok_or(BAD)?).ok_or(BAD)?;
                    let e = Entry { name: string(name)?, file: Str::default(), hash, flags: PRESENT };
                    v.set(ndx, e)?;
                    v.defined.push(ndx);
                }
                if next == 0 {
                    break;
                }
                at = at.checked_add(next as usize).ok_or(BAD)?;
            }
        }
        Ok(v)
    }

    /// Whether this object (whose image is `img`) defines version `v`:
    /// the same hash and name, as glibc's `match_symbol` compares them
    /// (for `DT_VERNEED` checks).
    pub fn defines(&self, img: &Image, v: &VersionReq<'_>) -> bool {
        self.defined.iter().any(|&i| self.named_as(img, i, v) == Some(true))
    }
}
