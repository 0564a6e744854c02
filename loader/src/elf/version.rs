//! Symbol versions: `DT_VERDEF`, `DT_VERNEED` and `DT_VERSYM`.

use alloc::vec::Vec;

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

/// A [`VersionReq`] as stored: its names are ranges of [`Versions::names`].
#[derive(Clone, Copy, Debug)]
struct Entry {
    name: (u32, u32),
    hash: u32,
    hidden: bool,
    file: Option<(u32, u32)>,
    weak: bool,
}

/// An object's version table, indexed by `versym` value.
#[derive(Clone, Debug, Default)]
pub struct Versions {
    entries: Vec<Option<Entry>>,
    /// Every name, one after the other: one allocation for the object
    /// instead of one per name (libc has 40-odd; they were a tenth of a
    /// warm start's instructions).
    names: Vec<u8>,
    /// Indices defined by `DT_VERDEF` (not the base entry).
    pub defined: Vec<u16>,
    /// Indices from `DT_VERNEED`.
    pub needed: Vec<u16>,
}

const VER_FLG_BASE: u16 = 1;
const VER_FLG_WEAK: u16 = 2;
/// Bounds on a corrupt table.
const MAX_ENTRIES: usize = 1 << 14;
/// Bound on the copies of all version names of one object (libc's are
/// about 600 bytes).
const MAX_NAME_BYTES: usize = 1 << 20;

impl Versions {
    /// Index 0 and 1 (local and global) and the base definition carry no
    /// name that matching cares about, so they are `None`.
    pub fn get(&self, ndx: u16) -> Option<VersionReq<'_>> {
        let e = (*self.entries.get(ndx as usize)?)?;
        Some(VersionReq { name: self.name(e.name), hash: e.hash, hidden: e.hidden, file: e.file.map(|f| self.name(f)), weak: e.weak })
    }

    /// A copy of what symbol lookups read: the entries and their names,
    /// without the `defined` and `needed` lists.
    pub fn for_lookups(&self) -> Versions {
        Versions { entries: self.entries.clone(), names: self.names.clone(), defined: Vec::new(), needed: Vec::new() }
    }

    /// Whether index `ndx` names a version (`get` is `Some`), and if so
    /// whether it is `w` (same hash, then same name): a symbol search asks
    /// this of every candidate, without building a [`VersionReq`].
    #[inline]
    pub fn named_as(&self, ndx: u16, w: &VersionReq<'_>) -> Option<bool> {
        let e = self.entries.get(ndx as usize)?.as_ref()?;
        Some(e.hash == w.hash && self.name(e.name) == w.name)
    }

    fn name(&self, (at, len): (u32, u32)) -> &[u8] {
        self.names.get(at as usize..(at as usize).saturating_add(len as usize)).unwrap_or_default()
    }

    /// Appends `name`, returning its range.
    fn intern(&mut self, name: &[u8]) -> Result<(u32, u32), &'static str> {
        let at = u32::try_from(self.names.len()).map_err(|_| "version names too long")?;
        let len = u32::try_from(name.len()).map_err(|_| "version names too long")?;
        // Names may overlap in the string table; their copies must not
        // grow without bound for a hostile table.
        if self.names.len().saturating_add(name.len()) > MAX_NAME_BYTES {
            return Err("version names too long");
        }
        self.names.extend_from_slice(name);
        Ok((at, len))
    }

    fn set(&mut self, ndx: u16, e: Entry) -> Result<(), &'static str> {
        let i = ndx as usize;
        if i >= MAX_ENTRIES {
            return Err("version index out of range");
        }
        if self.entries.len() <= i {
            self.entries.resize(i + 1, None);
        }
        self.entries[i] = Some(e);
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
        v.defined.reserve(defs);
        // About a dozen bytes per name (`GLIBC_2.2.5`).
        v.names.reserve(16 * (defs + if d.verneed != 0 { 8 } else { 0 }));
        // Spans over each table (to the end of the readable range holding
        // it) and the string table (checked readable with the dynamic
        // section): each read is one comparison, not a scan of the image's
        // ranges. Records are read as 32-bit words; two 16-bit fields
        // share one, the first in its low half (both arches are
        // little-endian).
        let strings = img.span(d.strtab, d.strsz).ok_or(BAD)?;
        let string = |off: u32| img.span_cstr(strings, off as usize).ok_or(BAD);
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
                let file_name = v.intern(string(file)?)?;
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
                    let e = Entry {
                        name: v.intern(string(name)?)?,
                        hash,
                        hidden: other & 0x8000 != 0,
                        file: Some(file_name),
                        weak: flags & VER_FLG_WEAK != 0,
                    };
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
                    let e = Entry { name: v.intern(string(name)?)?, hash, hidden: false, file: None, weak: false };
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

    /// Whether this object defines version `name` (for `DT_VERNEED` checks).
    pub fn defines(&self, name: &[u8]) -> bool {
        self.defined.iter().any(|&i| self.get(i).is_some_and(|v| v.name == name))
    }
}
