//! Loading and unloading at run time (`dlopen`/`dlclose` through libc's
//! `GLRO(dl_open)`/`GLRO(dl_close)`).
//!
//! The same stages as start-up, for the objects a `dlopen` brings in: the
//! closure breadth-first from the opened object (search as if its caller
//! needed it), versions, TLS, link maps, relocation against the global
//! scope followed by the new object's own closure, RELRO, then
//! initialisers (returned to the caller, which runs them after the loader
//! lock is released, so constructors may `dlopen` in turn).
//!
//! TLS of a `dlopen`ed object goes to the static surplus when it fits,
//! else to dynamic TLS. The last `dlclose` of an object runs its
//! finalisers and then unmaps it, unless something still needs it (another
//! object depends on it, or a `thread_local` destructor of it is pending);
//! the dependencies it brought in stay loaded.
#![allow(unsafe_code)]

use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::arch::native;
use crate::diag::Error;
use crate::err;
use crate::glibc::api::Hooks;
use crate::link::closure::{self, Config};
use crate::link::{DsoId, Kind, Namespace};
use crate::pipeline;
use crate::process::{self, Search};
use crate::tls;

/// The entry points libc reaches `dlopen` and `dlclose` through.
pub const HOOKS: Hooks = Hooks { dl_open, dl_close };

/// `GLRO(dl_open)`: opens, then runs the new initialisers after the loader
/// lock is released, so that constructors may `dlopen` in turn.
extern "C" fn dl_open(file: *const u8, mode: i32, caller: usize, _nsid: isize, argc: i32, argv: usize, env: usize) -> usize {
    // SAFETY: dlopen's argument is NULL or a NUL-terminated string.
    let name = unsafe { crate::cstr::bytes_or_empty(file) };
    match open(name, mode, caller) {
        Ok((lm, calls)) => {
            // SAFETY: initialisers of freshly relocated objects, run
            // without the loader lock so they may dlopen in turn.
            unsafe { crate::init::run(&calls, argc as usize, argv, env) };
            lm
        }
        Err(e) => crate::glibc::catch::signal_error(e),
    }
}

/// `GLRO(dl_close)`: finalisers run without the lock, then the unmapping.
extern "C" fn dl_close(map: usize) {
    match close(map) {
        Ok(closed) => {
            // SAFETY: finalisers of initialised objects, run without the lock.
            unsafe { crate::init::run(&closed.calls, 0, 0, 0) };
            if let Some(id) = closed.unmap {
                unmap(id);
            }
        }
        Err(e) => crate::glibc::catch::signal_error(e),
    }
}

const RTLD_NOW: i32 = 0x2;
const RTLD_BINDING_MASK: i32 = 0x3;
const RTLD_NOLOAD: i32 = 0x4;
const RTLD_GLOBAL: i32 = 0x100;
const RTLD_NODELETE: i32 = 0x1000;

/// `dlopen`: returns the link map and the initialisers to run. An empty
/// `name` (C's NULL) is the main program.
pub fn open(name: &[u8], mode: i32, caller: usize) -> Result<(usize, Vec<crate::init::Call>), Error> {
    let mut guard = process::lock();
    let p = guard.as_mut().ok_or_else(|| err!("ld-cah.so", "dlopen before start-up finished"))?;
    let (ns, search) = (&mut p.ns, &p.search);
    if name.is_empty() {
        return Ok((ns.objs[ns.main].link_map, Vec::new()));
    }
    if mode & RTLD_NOLOAD != 0 {
        let found = ns.find_by_name(name).or_else(|| ns.objs.iter().position(|d| !d.removed && d.path == name));
        return match found {
            Some(id) => {
                bump(ns, id, mode);
                Ok((ns.objs[id].link_map, Vec::new()))
            }
            None => Ok((0, Vec::new())),
        };
    }
    let requester = ns.objs.iter().position(|d| caller >= d.map_start && caller < d.map_end).unwrap_or(ns.main);
    let cfg = search.config();
    ns.clear_fresh();
    let result = load_and_link(ns, search, &cfg, name, mode, requester);
    if result.is_err() {
        // A failed dlopen leaves nothing behind that a later one could find
        // half-done (the mappings stay, unreachable).
        let fresh = ns.fresh().to_vec();
        // Out of the link-map chain first (last first, while the others
        // are still live neighbours), as glibc's failed dlopen does.
        for &id in fresh.iter().rev() {
            crate::debug::unlink(ns.objs[id].link_map, &|m| ns.other_link_map(id, m));
        }
        for &id in &fresh {
            ns.objs[id].removed = true;
            if let Some(m) = ns.objs[id].tls.filter(|m| m.modid != 0) {
                tls::forget(m.modid);
            }
        }
        ns.scope.retain(|x| !fresh.contains(x));
    }
    result
}

fn load_and_link(
    ns: &mut Namespace,
    search: &Search,
    cfg: &Config<'_>,
    name: &[u8],
    mode: i32,
    requester: DsoId,
) -> Result<(usize, Vec<crate::init::Call>), Error> {
    let loaded = closure::load_needed(ns, cfg, requester, name).and_then(|root| {
        let mut local: Vec<DsoId> = alloc::vec![root];
        // Only the objects this dlopen brought in have dependencies to load.
        closure::walk(ns, cfg, &mut local, &|ns, id| ns.fresh().contains(&id), None).map(|()| (root, local))
    });
    crate::link::policy::release_caches();
    let (root, local) = loaded?;
    let new: Vec<DsoId> = ns.fresh().to_vec();
    if new.is_empty() {
        bump(ns, root, mode);
        return Ok((ns.objs[root].link_map, Vec::new()));
    }
    closure::check_versions_of(ns, new.iter().copied())?;
    place_tls(ns, &new);

    pipeline::link_maps(ns, &new, false);

    // Relocate against the global scope, then the object's own closure, in
    // glibc's order (`dl_open_worker_begin`): the new objects of the
    // root's dependency-sorted list, backwards.
    let mut scope = Vec::with_capacity(ns.scope.len() + local.len());
    scope.extend_from_slice(&ns.scope);
    scope.extend(local.iter().copied().filter(|x| !ns.scope.contains(x)));
    // Dependencies first when read backwards: the order of relocation and
    // of initialisers alike (nothing below changes `deps`).
    let sorted = crate::init::sort(&local, ns.objs.len(), &|x| &ns.objs[x].deps, usize::MAX);
    let unsorted = new.iter().copied().filter(|id| !sorted.contains(id));
    let order: Vec<DsoId> = sorted.iter().rev().copied().filter(|id| new.contains(id)).chain(unsorted).collect();
    for &id in &new {
        ns.objs[id].local_scope = local.clone();
    }
    let binding = pipeline::Binding {
        scope: &scope,
        // RTLD_NOW: a missing function is an error now (glibc's lazy
        // binding would only fail when it is called).
        bind_now: search.bind_now || mode & RTLD_BINDING_MASK == RTLD_NOW,
        progname: program_name(),
        hwcap: search.hwcap,
        plan: None,
        record: false,
    };
    pipeline::relocate(ns, &order, &binding)?.keep(ns);
    copy_tls_images(ns, &new);
    if let Some(l) = crate::glibc::runtime::layout() {
        for m in new.iter().filter_map(|&id| ns.objs[id].tls.map(|m| (m, ns.objs[id].link_map))) {
            crate::glibc::rtld::publish_tls_slot(l, m.0.modid, tls::generation(), m.1, tls::max_modid());
        }
    }
    pipeline::seal(ns, &new)?;
    let mut scope_changed = false;
    if mode & RTLD_GLOBAL != 0 {
        for &id in &local {
            if !ns.scope.contains(&id) {
                ns.scope.push(id);
                scope_changed = true;
            }
        }
    }
    if scope_changed {
        publish_global_scope(ns);
    }
    bump(ns, root, mode);
    if let Some(l) = crate::glibc::runtime::layout() {
        // dlsym(handle) searches the object and its dependencies.
        let lms: Vec<usize> = local.iter().map(|&x| ns.objs[x].link_map).collect();
        let lm = ns.objs[root].link_map;
        crate::glibc::rtld::set_searchlist(l, lm, &lms, &mut ns.objs[root].link_map_mem);
    }
    for &id in &new {
        if id != root {
            ns.objs[id].open_count = ns.objs[id].open_count.max(1);
        }
    }
    crate::glibc::runtime::add_objects(ns, &new);
    crate::debug::publish(ns, 0, crate::debug::RT_CONSISTENT);

    // Initialisers of the new objects, dependencies first.
    let mut calls = Vec::with_capacity(2 * new.len());
    for &id in sorted.iter().rev() {
        let d = &mut ns.objs[id];
        if d.init_called || d.kind != Kind::Library {
            continue;
        }
        d.init_called = true;
        crate::init::push_init_calls(ns, id, &mut calls);
    }
    Ok((ns.objs[root].link_map, calls))
}

/// `argv[0]` (glibc's `RTLD_PROGNAME`), for the engine's warnings.
fn program_name() -> &'static str {
    // Checked as UTF-8 once: argv[0] lives, unchanged, as long as the process.
    static NAME: AtomicUsize = AtomicUsize::new(0);
    static LEN: AtomicUsize = AtomicUsize::new(0);
    let p = NAME.load(Ordering::Acquire);
    if p != 0 {
        // SAFETY: stored below from a `&'static str`, with its length.
        return unsafe { core::str::from_utf8_unchecked(core::slice::from_raw_parts(p as *const u8, LEN.load(Ordering::Relaxed))) };
    }
    let name = crate::glibc::runtime::argv0().map_or("<program name unknown>", |a| crate::diag::show(a.strip_suffix(b"\0").unwrap_or(a)));
    LEN.store(name.len(), Ordering::Relaxed);
    NAME.store(name.as_ptr() as usize, Ordering::Release);
    name
}

fn bump(ns: &mut Namespace, id: DsoId, mode: i32) {
    let d = &mut ns.objs[id];
    d.open_count += 1;
    if mode & RTLD_NODELETE != 0 {
        d.nodelete = true;
    }
    if mode & RTLD_GLOBAL != 0 && !ns.scope.contains(&id) {
        ns.scope.push(id);
        publish_global_scope(ns);
    }
}

/// The global scope as libc sees it: the program's `l_searchlist`, which
/// `dlsym(RTLD_DEFAULT)` searches.
fn publish_global_scope(ns: &mut Namespace) {
    let Some(l) = crate::glibc::runtime::layout() else { return };
    let lms: Vec<usize> = ns.scope.iter().map(|&x| ns.objs[x].link_map).collect();
    let main = &mut ns.objs[ns.main];
    crate::glibc::rtld::set_searchlist(l, main.link_map, &lms, &mut main.link_map_mem);
}

/// Gives the new objects' TLS blocks their module ids and places (see
/// `tls::register_loaded`).
fn place_tls(ns: &mut Namespace, new: &[DsoId]) {
    for &id in new {
        if let Some(m) = ns.objs[id].tls.as_mut() {
            tls::register_loaded(m);
        }
    }
}

/// Copies the images of the new modules placed in static TLS into every
/// thread's static block. DTVs are left alone: each thread brings its own
/// up to date at its next TLS access (the registry's generation moved).
fn copy_tls_images(ns: &Namespace, new: &[DsoId]) {
    if new.iter().all(|&id| ns.objs[id].tls.is_none_or(|m| m.offset.is_none())) {
        return;
    }
    let layout = crate::glibc::runtime::layout();
    let tps: Vec<usize> = match layout {
        Some(l) => crate::glibc::rtld::thread_pointers(l),
        None => alloc::vec![native::thread_pointer_value()],
    };
    for &id in new {
        let Some(m) = ns.objs[id].tls.filter(|m| m.offset.is_some()) else { continue };
        for &tp in &tps {
            // SAFETY: the block was placed inside every thread's static
            // area (same layout for all threads), the image is mapped.
            unsafe { tls::init_static_block(tls::variant(), tp, &m) };
        }
        // glibc before 2.34: the other threads are libpthread's to reach.
        // Its hook calls through its own PLT, which may bind lazily now,
        // under the lock this thread holds: the fixup must see `ns`.
        if let Some(l) = layout {
            crate::link::linking::publishing(ns, || crate::glibc::libpthread::init_static_tls(l, ns.objs[id].link_map));
        }
    }
}

/// `dlclose`: drops a reference; at zero, returns the finalisers to run.
/// What the last `dlclose` of an object leaves to do once its finalisers
/// have run.
pub struct Closed {
    pub calls: Vec<crate::init::Call>,
    /// The object to unmap afterwards, if nothing else needs it.
    pub unmap: Option<DsoId>,
}

pub fn close(lm: usize) -> Result<Closed, Error> {
    let mut guard = process::lock();
    let ns = &mut guard.as_mut().ok_or_else(|| err!("ld-cah.so", "dlclose before start-up finished"))?.ns;
    let id = ns.by_link_map(lm).ok_or_else(|| err!("ld-cah.so", "invalid handle"))?;
    let d = &mut ns.objs[id];
    d.open_count = d.open_count.saturating_sub(1);
    if d.open_count > 0 || d.nodelete || d.kind != Kind::Library {
        return Ok(Closed { calls: Vec::new(), unmap: None });
    }
    // Gone for every name lookup (RTLD_NOLOAD included).
    d.removed = true;
    let needed_by_others = ns.objs.iter().enumerate().any(|(i, o)| i != id && !o.removed && o.deps.contains(&id));
    let layout = crate::glibc::runtime::layout();
    let dtors_pending = layout.is_some_and(|l| {
        // SAFETY: one of our link maps; libc counts thread_local
        // destructors registered for the object in l_tls_dtor_count.
        unsafe { crate::glibc::raw::Raw::new(lm) }.get(l.link_map.l_tls_dtor_count) != 0
    });
    let unmap = (!needed_by_others && !dtors_pending).then_some(id);
    if ns.scope.contains(&id) {
        ns.scope.retain(|&x| x != id);
        publish_global_scope(ns);
    }
    let d = &mut ns.objs[id];
    if !d.init_called {
        return Ok(Closed { calls: Vec::new(), unmap });
    }
    d.init_called = false;
    let mut calls = Vec::with_capacity(2);
    crate::init::push_fini_calls(ns, id, &mut calls);
    Ok(Closed { calls, unmap })
}

/// Unmaps an object `close` released, after its finalisers ran: it leaves
/// the link-map chain, the run-time tables and the address space.
pub fn unmap(id: DsoId) {
    let mut guard = process::lock();
    let Some(ns) = guard.as_mut().map(|p| &mut p.ns) else { return };
    let Some(d) = ns.objs.get(id) else { return };
    if !d.removed || d.open_count > 0 || d.map_end <= d.map_start || d.kind != Kind::Library {
        return;
    }
    let (start, end, lm, tls) = (d.map_start, d.map_end, d.link_map, d.tls);
    if let Some(m) = tls {
        // New threads must not copy an image that is about to disappear;
        // the id is free for the next dlopen.
        tls::forget(m.modid);
        if let Some(l) = crate::glibc::runtime::layout() {
            crate::glibc::rtld::publish_tls_slot(l, m.modid, tls::generation(), 0, tls::max_modid());
        }
    }
    crate::glibc::runtime::remove_object(lm);
    crate::debug::publish(ns, 0, crate::debug::RT_DELETE);
    crate::debug::unlink(lm, &|m| ns.other_link_map(id, m));
    if let Some(l) = crate::glibc::runtime::layout() {
        crate::glibc::rtld::count_removed(l, 1);
    }
    let d = &mut ns.objs[id];
    // Nothing may read the object through its image any more.
    d.img = crate::elf::Image::new();
    d.map_end = d.map_start;
    // SAFETY: the object is closed for good: no name, scope, handle or
    // dependency reaches it, its finalisers ran, and no thread_local
    // destructor of it is pending.
    let _ = unsafe { crate::sys::munmap(start, end - start) };
    crate::debug::publish(ns, 0, crate::debug::RT_CONSISTENT);
    // The link map left the chain above; a later object reuses it, and
    // the slot, clean.
    crate::debug::clear_link_map(lm, crate::glibc::runtime::link_map_bytes());
    ns.release(id);
}
