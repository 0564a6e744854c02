//! What libc's calls into its loader need once start-up has chosen the
//! glibc layout and relocated libc: the layout itself, libc's own entry
//! points the loader calls back (allocator, error signalling), and the
//! object table the lock-free queries (`_dl_find_object`,
//! `_dl_find_dso_for_object`) read.
//!
//! The layout is set as soon as it is chosen (libc's IFUNC resolvers and
//! libpthread's hooks may read it during relocation); the rest once libc's
//! symbols can be looked up.
#![allow(unsafe_code)]

use alloc::vec::Vec;

use super::layout::Layout;
use crate::elf::symbols::Query;
use crate::link::lookup::{self, Class, UniqueTable};
use crate::link::{DsoId, Namespace};

static LAYOUT: spin::Once<&'static Layout> = spin::Once::new();

/// Start-up: the layout of the libc in the closure.
pub fn set_layout(l: &'static Layout) {
    LAYOUT.call_once(|| l);
}

/// The layout of this process's libc (`None`: not a glibc program).
pub fn layout() -> Option<&'static Layout> {
    LAYOUT.get().copied()
}

/// The bytes of each link map made from now on: glibc's `struct link_map`
/// for the libc of this process when its layout is known (it is before
/// start-up makes any link map, and never changes after), else
/// `debug::LINK_MAP_ALLOC`. It only ever goes down from that, so a link
/// map is never smaller than this says. (2 KiB each was 13 page faults
/// more for fifty libraries than the 1,232 bytes bookworm's glibc needs.)
pub fn link_map_bytes() -> usize {
    let max = crate::debug::LINK_MAP_ALLOC;
    layout().map_or(max, |l| (l.link_map.size as usize).min(max))
}

/// One object as the lock-free queries see it.
#[derive(Clone, Copy, Debug)]
pub struct ObjInfo {
    pub start: usize,
    pub end: usize,
    pub link_map: usize,
    pub eh_frame: usize,
}

impl ObjInfo {
    fn of(d: &crate::link::Dso) -> ObjInfo {
        let eh = d.phdrs.iter().find(|p| p.p_type == object::elf::PT_GNU_EH_FRAME).map_or(0, |p| d.base.wrapping_add(p.p_vaddr as usize));
        ObjInfo { start: d.map_start, end: d.map_end, link_map: d.link_map, eh_frame: eh }
    }
}

/// What the run-time entry points need, fixed after start-up.
pub struct Runtime {
    pub layout: &'static Layout,
    pub objects: spin::RwLock<Vec<ObjInfo>>,
    /// libc's `malloc`, `free` and `_dl_signal_error` (0: absent).
    pub malloc: usize,
    pub free: usize,
    pub signal_error: usize,
}

static RUNTIME: spin::Once<Runtime> = spin::Once::new();

pub fn rt() -> Option<&'static Runtime> {
    RUNTIME.get()
}

/// Looks up a symbol in one object (libc), for the loader's own use.
pub fn symbol_in(ns: &Namespace, id: DsoId, name: &[u8]) -> usize {
    let mut unique = UniqueTable::default();
    let q = Query { newest: true, ..Query::new(name) };
    lookup::lookup(ns, &mut unique, &[id], &q, None, None, Class::Normal).map_or(0, |d| d.address(ns))
}

/// Before relocation: take libc's allocator and error-signalling entry
/// points, and fill the object table for the lock-free queries.
pub fn start(l: &'static Layout, ns: &Namespace, libc: DsoId) {
    set_layout(l);
    // Dynamic TLS blocks come from the process's `malloc` (an interposed
    // one if the program brings one), as glibc's loader takes it after
    // relocation: libc frees them with `free` when it reuses a thread stack.
    let global = |name: &[u8]| {
        let mut unique = UniqueTable::default();
        let q = Query { newest: true, ..Query::new(name) };
        lookup::lookup(ns, &mut unique, &ns.scope, &q, None, None, Class::Normal)
    };
    // libc's own, which is the global one unless something before libc
    // in the scope defines it (the same query: no second look-up then).
    let own = |name: &[u8], global: Option<lookup::Def>| match global {
        Some(d) if d.obj == libc => d.address(ns),
        _ => symbol_in(ns, libc, name),
    };
    let (malloc, free) = (global(b"malloc"), global(b"free"));
    crate::tls::use_libc_allocator(malloc.map_or(0, |d| d.address(ns)), free.map_or(0, |d| d.address(ns)));
    let objects = ns.objs.iter().map(ObjInfo::of).collect();
    RUNTIME.call_once(|| Runtime {
        layout: l,
        objects: spin::RwLock::new(objects),
        malloc: own(b"malloc", malloc),
        free: own(b"free", free),
        signal_error: symbol_in(ns, libc, b"_dl_signal_error"),
    });
}

pub fn object_of(addr: usize) -> Option<ObjInfo> {
    rt()?.objects.read().iter().find(|o| addr >= o.start && addr < o.end).copied()
}

/// Records objects loaded by `dlopen` for the run-time queries.
pub fn add_objects(ns: &Namespace, ids: &[DsoId]) {
    let Some(r) = rt() else { return };
    r.objects.write().extend(ids.iter().map(|&id| ObjInfo::of(&ns.objs[id])));
}

/// Forgets an unmapped object in the run-time tables.
pub fn remove_object(lm: usize) {
    if let Some(r) = rt() {
        r.objects.write().retain(|o| o.link_map != lm);
    }
}

/// Releases memory from libc's `malloc`.
pub fn libc_free(p: usize) {
    if let Some(f) = rt().map(|r| r.free).filter(|&f| f != 0) {
        // SAFETY: libc's `free`, on a block from libc's `malloc`.
        let f: extern "C" fn(usize) = unsafe { core::mem::transmute(f) };
        f(p);
    }
}

/// `argv[0]` as glibc's loader knows it (`_dl_argv[0]`, glibc's
/// `rtld_progname`), NUL-terminated, once start-up has set it.
pub fn argv0() -> Option<&'static [u8]> {
    let argv = super::globals::_dl_argv.load(core::sync::atomic::Ordering::Relaxed);
    if argv == 0 {
        return None;
    }
    // SAFETY: `_dl_argv` is the process's argv (set at start-up), whose
    // strings live on the initial stack for the life of the process.
    let arg0 = unsafe { *(argv as *const usize) };
    // SAFETY: as above, a NUL-terminated string (its NUL included here).
    (arg0 != 0).then(|| unsafe { core::slice::from_raw_parts(arg0 as *const u8, crate::cstr::strlen(arg0) + 1) })
}
