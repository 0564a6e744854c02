//! Symbol lookup over a scope, in glibc's order: the first object in the
//! scope that defines the name (with a matching version) wins, which is
//! what makes interposition by the executable and by preloads work.

use alloc::vec::Vec;

use object::elf::*;

use super::{DsoId, Namespace};
use crate::elf::symbols::{self, Found, Query, Sym};
use crate::elf::version::VersionReq;

/// A definition: which object, which symbol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Def {
    pub obj: DsoId,
    pub sym: Sym,
    /// Index of `sym` in its object's dynamic symbol table.
    pub idx: u32,
}

impl Def {
    /// The run-time address (not for TLS symbols, whose value is an offset).
    pub fn address(&self, ns: &Namespace) -> usize {
        if self.sym.st_shndx == SHN_ABS {
            return self.sym.st_value as usize;
        }
        ns.objs.get(self.obj).map_or(0, |d| d.base).wrapping_add(self.sym.st_value as usize)
    }
}

/// Names already bound as `STB_GNU_UNIQUE`: one definition per process.
#[derive(Debug, Default)]
pub struct UniqueTable {
    entries: Vec<(Vec<u8>, Def)>,
}

impl UniqueTable {
    fn get(&self, name: &[u8]) -> Option<Def> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, d)| *d)
    }
}

/// What kind of reference is looked up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Normal,
    /// A PLT slot: never binds to an executable's undefined PLT address.
    Plt,
    /// `R_*_COPY`: the executable itself is skipped.
    Copy,
}

/// Looks `q` up in `scope`.
pub fn lookup(
    ns: &Namespace,
    unique: &mut UniqueTable,
    scope: &[DsoId],
    q: &Query<'_>,
    want: Option<&VersionReq>,
    skip: Option<DsoId>,
    class: Class,
) -> Option<Def> {
    for &id in scope {
        if Some(id) == skip {
            continue;
        }
        let Some(d) = ns.objs.get(id) else { continue };
        let found = symbols::lookup(&d.img, &d.dyn_info, &d.versions, q, want, class == Class::Plt);
        let (Found::Match(idx, sym) | Found::Fallback(idx, sym)) = found else { continue };
        let def = Def { obj: id, sym, idx };
        if sym.bind() == STB_GNU_UNIQUE {
            if let Some(prev) = unique.get(q.name) {
                return Some(prev);
            }
            unique.entries.push((q.name.to_vec(), def));
        }
        return Some(def);
    }
    None
}
