//! Symbol lookup over a scope, in glibc's order: the first object in the
//! scope that defines the name (with a matching version) wins, which is
//! what makes interposition by the executable and by preloads work.

use alloc::vec::Vec;
use core::marker::PhantomData;

use object::elf::*;

use super::{DsoId, Namespace};
use crate::elf::symbols::{self, Filter, Found, Query, Sym};
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

/// An object's Bloom filter taken out for a scope walk: the test is one
/// load, with nothing of the object itself read.
#[derive(Clone, Copy, Debug)]
pub enum Bloom {
    /// The address of the filter's words (checked to lie in one readable
    /// range of the object by [`Bloom::of`]), size - 1, shift.
    Words(usize, u32, u32),
    /// [`symbols::lookup`] finds nothing in this object.
    Nothing,
    /// No GNU hash table to test: search every time.
    Search,
}

impl Bloom {
    pub fn of(d: &crate::elf::DynInfo) -> Bloom {
        match Filter::of(d) {
            Filter::Bloom(span, mask, shift) if (mask as usize + 1).checked_mul(8).is_some_and(|n| n <= span.len()) => {
                Bloom::Words(span.start(), mask, shift)
            }
            Filter::Bloom(..) | Filter::Nothing => Bloom::Nothing,
            Filter::Search => Bloom::Search,
        }
    }

    /// Whether the object may define a name of GNU hash `h`.
    ///
    /// # Safety
    /// The object this filter was taken from is still mapped.
    #[inline(always)]
    #[allow(unsafe_code)]
    pub unsafe fn may_define(&self, h: u32) -> bool {
        match *self {
            Bloom::Words(words, mask, shift) => {
                // SAFETY: `(h / 64) & mask <= mask`, and the filter's
                // `mask + 1` words were checked to lie in a readable range
                // of the object (`Bloom::of`), which the caller says is
                // still mapped.
                let word = unsafe { core::ptr::read_unaligned((words + ((h / 64) & mask) as usize * 8) as *const u64) };
                let m = (1u64 << (h % 64)) | (1u64 << (h.wrapping_shr(shift) % 64));
                word & m == m
            }
            Bloom::Nothing => false,
            Bloom::Search => true,
        }
    }
}

/// A scope prepared for many lookups (a round of relocation): each
/// object's id next to its Bloom filter in one array, so that turning an
/// object away reads the array and one filter word, not the object (the
/// namespace's objects lie a kilobyte apart). It borrows the namespace,
/// so no object of it is unmapped while it lives.
pub struct Walk<'ns> {
    entries: Vec<(DsoId, Bloom)>,
    _ns: PhantomData<&'ns Namespace>,
}

impl<'ns> Walk<'ns> {
    pub fn new(ns: &'ns Namespace, scope: &[DsoId]) -> Walk<'ns> {
        let mut entries = Vec::with_capacity(scope.len());
        for &id in scope {
            if let Some(d) = ns.objs.get(id) {
                entries.push((id, Bloom::of(&d.dyn_info)));
            }
        }
        Walk { entries, _ns: PhantomData }
    }

    /// [`lookup`] over this walk's scope.
    pub fn lookup(
        &self,
        ns: &'ns Namespace,
        unique: &mut UniqueTable,
        q: &Query<'_>,
        want: Option<&VersionReq>,
        skip: Option<DsoId>,
        class: Class,
    ) -> Option<Def> {
        for &(id, filter) in &self.entries {
            // SAFETY: the walk borrows the namespace (above).
            #[allow(unsafe_code)]
            let may = unsafe { filter.may_define(q.gnu) };
            if !may || Some(id) == skip {
                continue;
            }
            let d = &ns.objs[id];
            if let Some(def) = first(unique, q, id, symbols::search(&d.img, &d.dyn_info, &d.versions, q, want, class == Class::Plt)) {
                return Some(def);
            }
        }
        None
    }
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
        if let Some(def) = first(unique, q, id, symbols::lookup(&d.img, &d.dyn_info, &d.versions, q, want, class == Class::Plt)) {
            return Some(def);
        }
    }
    None
}

/// The definition `found` in object `id` is the first of the scope: an
/// `STB_GNU_UNIQUE` one binds to the process's one definition of the name.
#[inline(always)]
fn first(unique: &mut UniqueTable, q: &Query<'_>, id: DsoId, found: Found) -> Option<Def> {
    let (Found::Match(idx, sym) | Found::Fallback(idx, sym)) = found else { return None };
    let def = Def { obj: id, sym, idx };
    if sym.bind() == STB_GNU_UNIQUE {
        if let Some(prev) = unique.get(q.name) {
            return Some(prev);
        }
        unique.entries.push((q.name.to_vec(), def));
    }
    Some(def)
}

/// glibc's message for a reference nothing defines (`undefined symbol:
/// NAME[, version V]`), for the load-time engine and lazy binding alike.
/// Out of line, so that the formatting stays out of their frames.
#[cold]
#[inline(never)]
pub fn undefined(d: &super::Dso, name: &[u8], want: Option<&VersionReq<'_>>) -> crate::diag::Error {
    let ver = want.map(|w| alloc::format!(", version {}", crate::diag::show(w.name))).unwrap_or_default();
    crate::err!(d.display_name(), "undefined symbol: {}{}", crate::diag::show(name), ver).of_kind(crate::diag::ErrorKind::UndefinedSymbol)
}
