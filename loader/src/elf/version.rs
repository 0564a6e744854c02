//! Symbol versions: `DT_VERDEF`, `DT_VERNEED` and `DT_VERSYM`.

use alloc::vec::Vec;

use super::{DynInfo, Image};

/// One version name an object defines or needs, by its `versym` index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionReq {
    pub name: Vec<u8>,
    pub hash: u32,
    pub hidden: bool,
    /// For needed versions: the file (`DT_NEEDED` name) that must define it.
    pub file: Option<Vec<u8>>,
    /// `VER_FLG_WEAK`: missing is not an error.
    pub weak: bool,
}

/// An object's version table, indexed by `versym` value.
#[derive(Clone, Debug, Default)]
pub struct Versions {
    entries: Vec<Option<VersionReq>>,
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
    /// name that matching cares about, so they are `None`.
    pub fn get(&self, ndx: u16) -> Option<&VersionReq> {
        self.entries.get(ndx as usize)?.as_ref()
    }

    fn set(&mut self, ndx: u16, v: VersionReq) -> Result<(), &'static str> {
        let i = ndx as usize;
        if i >= MAX_ENTRIES {
            return Err("version index out of range");
        }
        if self.entries.len() <= i {
            self.entries.resize(i + 1, None);
        }
        self.entries[i] = Some(v);
        Ok(())
    }

    pub fn parse(img: &Image, d: &DynInfo) -> Result<Versions, &'static str> {
        const BAD: &str = "corrupt version information";
        let mut v = Versions::default();
        // Indices run from 2 up to about one per definition and
        // requirement: room for them at once, instead of growing the
        // tables one entry at a time (libc defines 40-odd versions).
        let defs = if d.verdef != 0 { d.verdefnum.min(MAX_ENTRIES) } else { 0 };
        v.entries.reserve(defs + 2 + if d.verneed != 0 { 8 } else { 0 });
        v.defined.reserve(defs);
        if d.verneed != 0 {
            let mut at = d.verneed;
            // Every `Vernaux` names a distinct version index, and indices
            // are below MAX_ENTRIES: more entries than that, counted over
            // all files, can only be entries walked twice (chains that
            // overlap), which would make the walk quadratic.
            let mut walked = 0usize;
            for _ in 0..d.verneednum.min(MAX_ENTRIES) {
                let cnt = img.u16(at + 2).ok_or(BAD)?;
                let file = d.string(img, img.u32(at + 4).ok_or(BAD)? as usize).ok_or(BAD)?;
                let aux = img.u32(at + 8).ok_or(BAD)? as usize;
                let next = img.u32(at + 12).ok_or(BAD)? as usize;
                let mut a = at.checked_add(aux).ok_or(BAD)?;
                for _ in 0..cnt {
                    walked += 1;
                    if walked > MAX_ENTRIES {
                        return Err("too many version requirements (DT_VERNEED entries overlap)");
                    }
                    let hash = img.u32(a).ok_or(BAD)?;
                    let flags = img.u16(a + 4).ok_or(BAD)?;
                    let other = img.u16(a + 6).ok_or(BAD)?;
                    let name = d.string(img, img.u32(a + 8).ok_or(BAD)? as usize).ok_or(BAD)?;
                    let ndx = other & 0x7fff;
                    v.set(
                        ndx,
                        VersionReq {
                            name: name.to_vec(),
                            hash,
                            hidden: other & 0x8000 != 0,
                            file: Some(file.to_vec()),
                            weak: flags & VER_FLG_WEAK != 0,
                        },
                    )?;
                    v.needed.push(ndx);
                    let anext = img.u32(a + 12).ok_or(BAD)? as usize;
                    if anext == 0 {
                        break;
                    }
                    a = a.checked_add(anext).ok_or(BAD)?;
                }
                if next == 0 {
                    break;
                }
                at = at.checked_add(next).ok_or(BAD)?;
            }
        }
        if d.verdef != 0 {
            let mut at = d.verdef;
            for _ in 0..d.verdefnum.min(MAX_ENTRIES) {
                let flags = img.u16(at + 2).ok_or(BAD)?;
                let ndx = img.u16(at + 4).ok_or(BAD)? & 0x7fff;
                let hash = img.u32(at + 8).ok_or(BAD)?;
                let aux = img.u32(at + 12).ok_or(BAD)? as usize;
                let next = img.u32(at + 16).ok_or(BAD)? as usize;
                if flags & VER_FLG_BASE == 0 {
                    let a = at.checked_add(aux).ok_or(BAD)?;
                    let name = d.string(img, img.u32(a).ok_or(BAD)? as usize).ok_or(BAD)?;
                    v.set(ndx, VersionReq { name: name.to_vec(), hash, hidden: false, file: None, weak: false })?;
                    v.defined.push(ndx);
                }
                if next == 0 {
                    break;
                }
                at = at.checked_add(next).ok_or(BAD)?;
            }
        }
        Ok(v)
    }

    /// Whether this object defines version `name` (for `DT_VERNEED` checks).
    pub fn defines(&self, name: &[u8]) -> bool {
        self.defined.iter().any(|&i| self.get(i).is_some_and(|v| v.name == name))
    }
}
