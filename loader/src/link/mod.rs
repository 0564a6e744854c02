//! The closure: which objects make up the program, in which order, and
//! where their symbols come from.
//!
//! Objects live in one `Vec<Dso>` in load order (glibc's `_ns_loaded`
//! chain); an object is referred to by its index there. The global scope
//! is the breadth-first order glibc builds: the executable, the preloads,
//! then dependencies in discovery order.

pub mod closure;
pub mod ldcache;
pub mod linking;
pub mod lookup;
pub mod policy;
pub mod search;

use alloc::vec::Vec;

use object::elf::*;

use crate::elf::version::Versions;
use crate::elf::{DynInfo, Image, Phdr};
use crate::map::Mapped;
use crate::tls;

/// What kind of object a `Dso` is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The program.
    Main,
    /// A shared library.
    Library,
    /// ld-cah itself, standing in for glibc's `ld-linux-*.so`.
    Loader,
    /// The kernel's vDSO.
    Vdso,
}

/// One loaded object.
#[derive(Debug)]
pub struct Dso {
    pub kind: Kind,
    /// `l_name`: the path it was loaded from (NUL-terminated; empty for
    /// the program when the kernel loaded it, as in glibc).
    pub name: Vec<u8>,
    /// The path used for `--list` and messages.
    pub path: Vec<u8>,
    /// What `$ORIGIN` means in this object's entries: the directory of
    /// `path`, or for a set-uid program the directory of `/proc/self/exe`
    /// (not a path its caller chose); `None` if unknown.
    pub origin: Option<Vec<u8>>,
    /// Every name this object answers to (`DT_NEEDED` names that found it,
    /// its `DT_SONAME`).
    pub aliases: Vec<Vec<u8>>,
    pub base: usize,
    pub map_start: usize,
    pub map_end: usize,
    pub img: Image,
    pub phdrs: Vec<Phdr>,
    /// The first executable `PT_LOAD` segment as (run-time start, size),
    /// or (0, 0): where `init::in_code` looks first (an object's IFUNC
    /// resolvers and initialisers lie in it; libc's 40 resolvers each
    /// scanned its dozen program headers).
    pub code: (usize, usize),
    pub phdr_addr: usize,
    pub entry: usize,
    /// Run-time address of `PT_DYNAMIC` (0 if none).
    pub dynamic: usize,
    pub dyn_info: DynInfo,
    pub versions: Versions,
    pub tls: Option<tls::Module>,
    /// `PT_GNU_RELRO`, as a run-time page range.
    pub relro: Option<(usize, usize)>,
    /// `(st_dev, st_ino)` of the file, to notice one file under two names.
    pub file_id: Option<(u64, u64)>,
    /// The file's full identity when it was opened (the binding plan's key).
    pub identity: Option<crate::verify::identity::FileIdentity>,
    /// Direct dependencies, `DT_NEEDED` order, without repeats.
    pub deps: Vec<usize>,
    /// The object whose `DT_NEEDED` brought this one in (for `DT_RPATH`).
    pub loaded_by: Option<usize>,
    pub relocated: bool,
    pub init_called: bool,
    /// The `struct link_map` published in `r_debug` (and handed to libc).
    pub link_map: usize,
    /// `dlopen` references (the program and start-up objects keep 1 forever).
    pub open_count: usize,
    /// `RTLD_NODELETE`, or loaded at start-up: never finalised by `dlclose`.
    pub nodelete: bool,
    /// Closed for good by `dlclose`: still mapped, but no name finds it.
    pub removed: bool,
    /// For an object `dlopen` brought in: the opened object's closure,
    /// which its symbols are looked up in after the global scope (lazy
    /// binding looks there too). Empty for start-up objects.
    pub local_scope: Vec<DsoId>,
    /// Memory whose addresses this object hands out: its `struct
    /// link_map`'s (`l_libname`, `l_origin`, `l_searchlist`) and its GOT's
    /// (the `tls_index` of a TLS descriptor for dynamic TLS). Freed with
    /// the object when its slot is reused, once nothing reaches either.
    pub link_map_mem: Vec<alloc::boxed::Box<[usize]>>,
}

impl Dso {
    /// Builds an object from a mapping and decodes its dynamic section.
    pub fn new(kind: Kind, mut name: Vec<u8>, path: Vec<u8>, m: Mapped, page: usize) -> Result<Dso, &'static str> {
        if name.last() != Some(&0) {
            name.push(0);
        }
        let mut dynamic = 0;
        let mut tls = None;
        let mut relro = None;
        let mut code = None;
        for p in &m.phdrs {
            match p.p_type {
                PT_LOAD if p.p_flags & PF_X != 0 && code.is_none() => {
                    code = Some((m.base.wrapping_add(p.p_vaddr as usize), p.p_memsz as usize));
                }
                PT_DYNAMIC => dynamic = m.base.wrapping_add(p.p_vaddr as usize),
                PT_TLS => tls = tls::Module::from_phdr(p, m.base)?,
                PT_GNU_RELRO => {
                    let s = m.base.wrapping_add(p.p_vaddr as usize) & !(page - 1);
                    let e = m.base.wrapping_add((p.p_vaddr + p.p_memsz) as usize) & !(page - 1);
                    if e > s {
                        relro = Some((s, e));
                    }
                }
                _ => {}
            }
        }
        // Both are used without further checks (the TLS image is copied
        // into every thread's block, RELRO is mprotected): they must lie in
        // this object's own memory.
        if tls.is_some_and(|t: tls::Module| t.filesz > 0 && !m.img.is_readable(t.image, t.filesz)) {
            return Err("PT_TLS initialisation image lies outside the object");
        }
        if relro.is_some_and(|(s, e)| s < m.map_start & !(page - 1) || e > m.map_end) {
            return Err("PT_GNU_RELRO lies outside the object");
        }
        let dyn_info = if dynamic != 0 { DynInfo::parse(&m.img, m.base, dynamic)? } else { DynInfo::default() };
        // Hostile sizes are refused here, before anything loops over them.
        dyn_info.check_ranges(&m.img, kind == Kind::Main)?;
        let versions = Versions::parse(&m.img, &dyn_info)?;
        crate::elf::symbols::check_tables(&m.img, &dyn_info)?;
        let origin = (!path.is_empty()).then(|| search::dirname(&path).to_vec());
        let mut d = Dso {
            kind,
            name,
            path,
            origin,
            aliases: Vec::new(),
            base: m.base,
            map_start: m.map_start,
            map_end: m.map_end,
            img: m.img,
            phdrs: m.phdrs,
            code: code.unwrap_or((0, 0)),
            phdr_addr: m.phdr_addr,
            entry: m.entry,
            dynamic,
            dyn_info,
            versions,
            tls,
            relro,
            file_id: None,
            identity: None,
            deps: Vec::new(),
            loaded_by: None,
            relocated: false,
            init_called: false,
            link_map: 0,
            open_count: 0,
            nodelete: false,
            removed: false,
            local_scope: Vec::new(),
            link_map_mem: Vec::new(),
        };
        if let Some(so) = d.soname() {
            let so = so.to_vec();
            d.aliases.push(so);
        }
        Ok(d)
    }

    /// A copy of what symbol lookups and lazy binding read (names, image,
    /// program headers (an IFUNC resolver must lie in code), dynamic
    /// tables, version names, local scope), for the scope snapshot lazy
    /// binding reads without the loader lock (`crate::lazy`). The rest
    /// (the version lists `check_versions` walks, ...) is left empty.
    pub fn copy_for_lookups(&self) -> Dso {
        Dso {
            kind: self.kind,
            name: self.name.clone(),
            path: self.path.clone(),
            origin: None,
            aliases: Vec::new(),
            base: self.base,
            map_start: self.map_start,
            map_end: self.map_end,
            img: self.img.clone(),
            phdrs: self.phdrs.clone(),
            code: self.code,
            phdr_addr: self.phdr_addr,
            entry: self.entry,
            dynamic: self.dynamic,
            dyn_info: self.dyn_info.clone(),
            versions: self.versions.for_lookups(),
            tls: self.tls,
            relro: self.relro,
            file_id: self.file_id,
            identity: None,
            deps: Vec::new(),
            loaded_by: None,
            relocated: self.relocated,
            init_called: self.init_called,
            link_map: self.link_map,
            open_count: self.open_count,
            nodelete: self.nodelete,
            removed: self.removed,
            local_scope: self.local_scope.clone(),
            link_map_mem: Vec::new(),
        }
    }

    pub fn string(&self, off: usize) -> Option<&[u8]> {
        self.dyn_info.string(&self.img, off)
    }

    pub fn soname(&self) -> Option<&[u8]> {
        self.string(self.dyn_info.soname?)
    }

    /// `l_name` without its NUL.
    pub fn l_name(&self) -> &[u8] {
        self.name.strip_suffix(&[0]).unwrap_or(&self.name)
    }

    /// The name to show in messages.
    pub fn display_name(&self) -> &str {
        let p = if self.path.is_empty() { self.l_name() } else { &self.path };
        core::str::from_utf8(p).unwrap_or("<non-UTF-8 name>")
    }

    pub fn answers_to(&self, name: &[u8]) -> bool {
        self.aliases.iter().any(|a| a == name) || (!self.path.is_empty() && self.path == name)
    }

    pub fn needed_names(&self) -> impl Iterator<Item = Option<&[u8]>> + '_ {
        self.dyn_info.needed.iter().map(move |&off| self.string(off))
    }

    pub fn flags_1(&self) -> u64 {
        self.dyn_info.flags_1
    }

    /// `PT_GNU_STACK` flags (glibc's default without one: RWX).
    pub fn stack_flags(&self) -> u32 {
        self.phdrs.iter().find(|p| p.p_type == PT_GNU_STACK).map_or(PF_R | PF_W | PF_X, |p| p.p_flags)
    }
}

/// Index of an object in the load list.
pub type DsoId = usize;

/// All loaded objects and the global scope (glibc's namespace 0).
#[derive(Debug, Default)]
pub struct Namespace {
    pub objs: Vec<Dso>,
    /// The global scope: executable, preloads, then dependencies breadth-first.
    pub scope: Vec<DsoId>,
    pub main: DsoId,
    pub loader: DsoId,
    pub vdso: Option<DsoId>,
    /// Slots of objects `dlclose` unmapped for good, reused by [`insert`]
    /// so that a process that opens and closes libraries in a loop keeps a
    /// namespace of constant size (and constant cost to search).
    ///
    /// [`insert`]: Namespace::insert
    free: Vec<DsoId>,
    /// Objects inserted since the last [`clear_fresh`](Namespace::clear_fresh).
    fresh: Vec<DsoId>,
    /// Every inserted object still in its slot, in load order (a reused
    /// slot's index says nothing of when its object was loaded).
    loaded: Vec<DsoId>,
    /// Which slot each link map belongs to (see [`LinkMaps`]), made at the
    /// first query: a start that asks none (most) does not pay for it.
    link_maps: core::cell::OnceCell<LinkMaps>,
}

/// The slot of each link map, for the queries that name an object by its
/// link map (libc's scope lists in `dlsym`, handles in `dlclose`). A
/// slot's link map is allocated once and kept by every object that reuses
/// the slot, so entries are only ever added. Without it, mapping a scope
/// of n objects back to slots took n² probes (a `dlsym(RTLD_DEFAULT)`
/// among 200 libraries: 128,000 instructions); with a sorted list an entry
/// took 126, with this table about 40 (the check against the slot included).
///
/// Open addressing with linear probing, at most half full; key 0 marks a
/// free entry (no link map is at address 0).
#[derive(Debug, Default)]
struct LinkMaps {
    table: Vec<(usize, DsoId)>,
    len: usize,
}

impl LinkMaps {
    /// Where `lm` is, or the free entry that ends its probe sequence.
    /// `table` is not empty, its length a power of two.
    fn probe(&self, lm: usize) -> usize {
        let mask = self.table.len() - 1;
        // Fibonacci hashing: link maps are word-aligned and close together,
        // the multiplication spreads their middle bits over the high ones.
        let mut at = (lm.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) & mask;
        while self.table[at].0 != lm && self.table[at].0 != 0 {
            at = (at + 1) & mask;
        }
        at
    }

    fn add(&mut self, lm: usize, id: DsoId) {
        if lm == 0 {
            return;
        }
        if 2 * (self.len + 1) > self.table.len() {
            let old = core::mem::take(&mut self.table);
            self.table = alloc::vec![(0, 0); (2 * old.len()).max(16)];
            self.len = 0;
            for (m, i) in old.into_iter().filter(|&(m, _)| m != 0) {
                self.add(m, i);
            }
        }
        let at = self.probe(lm);
        self.len += usize::from(self.table[at].0 == 0);
        self.table[at] = (lm, id);
    }

    fn get(&self, lm: usize) -> Option<DsoId> {
        if self.table.is_empty() || lm == 0 {
            return None;
        }
        let (m, id) = self.table[self.probe(lm)];
        (m == lm).then_some(id)
    }

    /// Forgets the slots from `len` on (taken out of the namespace).
    fn truncate(&mut self, len: usize) {
        let old = core::mem::take(&mut self.table);
        self.len = 0;
        for (m, i) in old.into_iter().filter(|&(m, i)| m != 0 && i < len) {
            self.add(m, i);
        }
    }
}

/// The namespace's link maps, looked up by address (see [`LinkMaps`]).
pub struct SlotsByLinkMap<'a> {
    table: &'a LinkMaps,
    objs: &'a [Dso],
}

impl SlotsByLinkMap<'_> {
    pub fn get(&self, lm: usize) -> Option<DsoId> {
        let id = self.table.get(lm)?;
        // Every write of a new link map goes through `give_link_map`;
        // checked anyway, so a stale entry can only miss, never misname.
        (lm != 0 && self.objs.get(id)?.link_map == lm).then_some(id)
    }
}

/// A namespace's contents at one time (see [`Namespace::rewind`]): each
/// object's count of aliases and of dependencies.
pub struct Mark {
    lists: Vec<(usize, usize)>,
}

impl Namespace {
    pub fn get(&self, id: DsoId) -> Option<&Dso> {
        self.objs.get(id)
    }

    /// Adds an object, in the slot of an unmapped one if there is one. The
    /// new object inherits that slot's `link_map` storage (zeroed when the
    /// old object was unmapped).
    pub fn insert(&mut self, mut d: Dso) -> DsoId {
        let id = match self.free.pop() {
            Some(id) => {
                d.link_map = self.objs[id].link_map;
                self.objs[id] = d;
                id
            }
            None => {
                self.objs.push(d);
                self.objs.len() - 1
            }
        };
        self.fresh.push(id);
        self.loaded.push(id);
        id
    }

    /// Marks the slot of an object that is unmapped for good as reusable:
    /// nothing refers to it any more (no scope, handle or dependency).
    pub fn release(&mut self, id: DsoId) {
        for d in self.objs.iter_mut() {
            if d.loaded_by == Some(id) {
                d.loaded_by = None;
            }
        }
        self.loaded.retain(|&x| x != id);
        self.free.push(id);
    }

    /// The libraries in the order they were loaded.
    pub fn load_order(&self) -> &[DsoId] {
        &self.loaded
    }

    /// Forgets which objects were inserted so far: [`fresh`] then lists
    /// those inserted after this call. (The list keeps its memory: a
    /// `dlopen` loop does not allocate it anew each round.)
    ///
    /// [`fresh`]: Namespace::fresh
    pub fn clear_fresh(&mut self) {
        self.fresh.clear();
    }

    /// The objects inserted since the last [`clear_fresh`](Namespace::clear_fresh).
    pub fn fresh(&self) -> &[DsoId] {
        &self.fresh
    }

    /// What the namespace holds now, for [`rewind`](Namespace::rewind).
    pub fn mark(&self) -> Mark {
        Mark { lists: self.objs.iter().map(|d| (d.aliases.len(), d.deps.len())).collect() }
    }

    /// Back to `mark`, made when the namespace held only the objects
    /// start-up put there itself: the libraries a walk loaded since are
    /// taken out and returned (still mapped), the names and dependencies
    /// it added to the others forgotten, the scope emptied. Only while no
    /// code of those libraries has run and nothing else points at them.
    pub fn rewind(&mut self, mark: Mark) -> Vec<Dso> {
        let gone = self.objs.split_off(mark.lists.len());
        if let Some(t) = self.link_maps.get_mut() {
            t.truncate(self.objs.len());
        }
        for (d, (aliases, deps)) in self.objs.iter_mut().zip(mark.lists) {
            d.aliases.truncate(aliases);
            d.deps.truncate(deps);
        }
        self.scope.clear();
        self.free.clear();
        self.fresh.clear();
        self.loaded.clear();
        gone
    }

    /// Whether `lm` is the link map of an object other than `id` (closed
    /// ones included: their link maps stay allocated).
    pub fn other_link_map(&self, id: DsoId, lm: usize) -> bool {
        self.by_link_map(lm).is_some_and(|i| i != id)
    }

    /// Gives slot `id`, which has none, the link map `lm` (a fresh
    /// allocation that it keeps for good, see [`LinkMaps`]).
    pub fn give_link_map(&mut self, id: DsoId, lm: usize) {
        self.objs[id].link_map = lm;
        if let Some(t) = self.link_maps.get_mut() {
            t.add(lm, id);
        }
    }

    /// The slot whose link map is `lm` (closed objects included: their
    /// link maps stay allocated), if any.
    pub fn by_link_map(&self, lm: usize) -> Option<DsoId> {
        self.slots_by_link_map().get(lm)
    }

    /// [`by_link_map`](Namespace::by_link_map) for many link maps: the
    /// table is made or found once.
    pub fn slots_by_link_map(&self) -> SlotsByLinkMap<'_> {
        let table = self.link_maps.get_or_init(|| {
            let mut t = LinkMaps::default();
            for (id, d) in self.objs.iter().enumerate() {
                t.add(d.link_map, id);
            }
            t
        });
        SlotsByLinkMap { table, objs: &self.objs }
    }

    /// The object that answers to `name`, if one is loaded.
    pub fn find_by_name(&self, name: &[u8]) -> Option<DsoId> {
        self.objs.iter().position(|d| d.kind != Kind::Vdso && !d.removed && d.answers_to(name))
    }

    /// The object with this `(st_dev, st_ino)`, if one is loaded.
    pub fn find_by_file(&self, id: (u64, u64)) -> Option<DsoId> {
        self.objs.iter().position(|d| !d.removed && d.file_id == Some(id))
    }

    /// glibc's `l_next` order: the program, the vDSO, the global scope,
    /// then the libraries `dlopen` loaded locally. An unused loader and
    /// objects closed for good are left out.
    pub fn link_order(&self) -> Vec<DsoId> {
        let mut seen = alloc::vec![false; self.objs.len()];
        let mut order = Vec::with_capacity(self.objs.len());
        let mut add = |i: DsoId, order: &mut Vec<DsoId>| {
            if !core::mem::replace(&mut seen[i], true) {
                order.push(i);
            }
        };
        add(self.main, &mut order);
        if let Some(v) = self.vdso {
            add(v, &mut order);
        }
        for &i in self.scope.iter().filter(|&&i| !self.objs[i].removed) {
            add(i, &mut order);
        }
        for &i in self.loaded.iter().filter(|&&i| self.objs[i].kind == Kind::Library && !self.objs[i].removed) {
            add(i, &mut order);
        }
        order
    }

    /// The requester chain for `DT_RPATH`: `id`, whoever loaded it, up to
    /// the program.
    pub fn chain(&self, mut id: DsoId) -> Vec<DsoId> {
        let mut out = Vec::with_capacity(4);
        while out.len() <= self.objs.len() {
            out.push(id);
            match self.objs.get(id).and_then(|d| d.loaded_by) {
                Some(next) => id = next,
                None => break,
            }
        }
        if !out.contains(&self.main) {
            out.push(self.main);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::LinkMaps;

    #[test]
    fn link_maps_answer_by_address_whatever_the_order_they_came_in() {
        let mut m = LinkMaps::default();
        assert_eq!(m.get(0x1000), None);
        // Allocation order is not address order; 40 entries make the table
        // grow twice, and word-aligned neighbours collide in it.
        let lms: alloc::vec::Vec<usize> = (0..40).map(|i| 0x7f00_0000_1000 + (i * 37 % 40) * 0x4a8).collect();
        for (id, &lm) in lms.iter().enumerate() {
            m.add(lm, id);
        }
        for (id, &lm) in lms.iter().enumerate() {
            assert_eq!(m.get(lm), Some(id));
            // Inside a link map, or a word past it: nothing.
            assert_eq!(m.get(lm + 8), None);
        }
        assert_eq!(m.get(0), None);
        assert_eq!(m.len, 40);
        // A rewound namespace drops its last slots, and their link maps.
        m.truncate(30);
        for (id, &lm) in lms.iter().enumerate() {
            assert_eq!(m.get(lm), (id < 30).then_some(id));
        }
        // Given again (to a slot of the same index): one entry, the new slot.
        m.add(lms[3], 77);
        assert_eq!(m.get(lms[3]), Some(77));
        assert_eq!(m.len, 30);
    }
}
