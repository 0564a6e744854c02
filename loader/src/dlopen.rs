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

use crate::arch::native::{self, Native};
use crate::arch::{ArchInfo, TlsVariant};
use crate::diag::Error;
use crate::err;
use crate::glibc::layout::Layout;
use crate::link::closure::{self, Config};
use crate::link::ldcache::LdCache;
use crate::link::search::{SearchEnv, Tokens};
use crate::link::{DsoId, Kind, Namespace};
use crate::reloc::{Engine, Target};
use crate::start::STATE;
use crate::tls;

/// The search configuration of start-up, kept for later loads.
pub struct Saved {
    pub library_path: &'static [Vec<u8>],
    pub cache: Option<&'static [u8]>,
    pub platform: &'static [u8],
    pub secure: bool,
    pub page: usize,
    pub loader_names: Vec<Vec<u8>>,
    pub bind_now: bool,
    /// `AT_HWCAP`/`AT_HWCAP2`, for IFUNC resolvers (aarch64 passes them).
    pub hwcap: (u64, u64),
}

static SAVED: spin::Once<Saved> = spin::Once::new();

struct TlsState {
    variant: TlsVariant,
    /// Bytes of static TLS in use (initial modules and later placements).
    used: usize,
    /// End of the static area usable by placements (used + surplus at start).
    limit: usize,
    next_modid: usize,
    layout: Option<&'static Layout>,
}

static TLS: spin::Mutex<Option<TlsState>> = spin::Mutex::new(None);

pub fn remember(s: Saved) {
    SAVED.call_once(|| s);
}

pub fn set_tls(variant: TlsVariant, l: tls::StaticLayout, next_modid: usize, layout: Option<&'static Layout>) {
    *TLS.lock() = Some(TlsState { variant, used: l.used, limit: l.used + tls::STATIC_SURPLUS, next_modid, layout });
}

const RTLD_NOW: i32 = 0x2;
const RTLD_BINDING_MASK: i32 = 0x3;
const RTLD_NOLOAD: i32 = 0x4;
const RTLD_GLOBAL: i32 = 0x100;
const RTLD_NODELETE: i32 = 0x1000;

/// `dlopen`: returns the link map and the initialisers to run. An empty
/// `name` (C's NULL) is the main program.
pub fn open(name: &[u8], mode: i32, caller: usize) -> Result<(usize, Vec<crate::init::Call>), Error> {
    let saved = SAVED.get().ok_or_else(|| err!("ld-cah.so", "dlopen before start-up finished"))?;
    let mut guard = STATE.lock();
    let ns = guard.as_mut().ok_or_else(|| err!("ld-cah.so", "dlopen before start-up finished"))?;
    let name = name.to_vec();
    if name.is_empty() {
        return Ok((ns.objs[ns.main].link_map, Vec::new()));
    }
    if mode & RTLD_NOLOAD != 0 {
        let found = ns.find_by_name(&name).or_else(|| ns.objs.iter().position(|d| !d.removed && d.path == name));
        return match found {
            Some(id) => {
                bump(ns, id, mode);
                Ok((ns.objs[id].link_map, Vec::new()))
            }
            None => Ok((0, Vec::new())),
        };
    }
    let requester = ns.objs.iter().position(|d| caller >= d.map_start && caller < d.map_end).unwrap_or(ns.main);
    let tokens = Tokens { platform: saved.platform, lib: Native::DST_LIB.as_bytes(), secure: saved.secure, trusted: Native::DEFAULT_DIRS };
    let names: Vec<&[u8]> = saved.loader_names.iter().map(Vec::as_slice).collect();
    let cfg = Config {
        env: SearchEnv {
            library_path: saved.library_path,
            cache: saved.cache.and_then(LdCache::parse),
            cache_flags: Native::LDCACHE_FLAGS,
            default_dirs: Native::DEFAULT_DIRS,
            tokens,
        },
        machine: Native::MACHINE,
        page: saved.page,
        loader_names: &names,
    };
    let before = ns.objs.len();
    let result = load_and_link(ns, saved, &cfg, &name, mode, requester, before);
    if result.is_err() {
        // A failed dlopen leaves nothing behind that a later one could find
        // half-done (the mappings stay, unreachable).
        for d in ns.objs.iter_mut().skip(before) {
            d.removed = true;
        }
        ns.scope.retain(|&x| x < before);
    }
    result
}

fn load_and_link(
    ns: &mut Namespace,
    saved: &Saved,
    cfg: &Config<'_>,
    name: &[u8],
    mode: i32,
    requester: DsoId,
    before: usize,
) -> Result<(usize, Vec<crate::init::Call>), Error> {
    let root = closure::load_needed(ns, cfg, requester, name)?;
    let mut local: Vec<DsoId> = alloc::vec![root];
    let mut i = 0;
    while i < local.len() {
        let cur = local[i];
        if cur >= before {
            let needed: Vec<Vec<u8>> = ns.objs[cur].needed_names().flatten().map(<[u8]>::to_vec).collect();
            for n in needed {
                let id = closure::load_dependency(ns, cfg, cur, &n)?;
                if !ns.objs[cur].deps.contains(&id) && id != cur {
                    ns.objs[cur].deps.push(id);
                }
                if !local.contains(&id) {
                    local.push(id);
                }
            }
        }
        i += 1;
    }
    let new: Vec<DsoId> = (before..ns.objs.len()).collect();
    if new.is_empty() {
        bump(ns, root, mode);
        return Ok((ns.objs[root].link_map, Vec::new()));
    }
    closure::check_versions(ns)?;
    place_tls(ns, &new)?;

    // Link maps for the new objects, appended to the chain.
    let chain = ns.link_order();
    crate::debug::link_maps(ns, &chain);
    let layout = TLS.lock().as_ref().and_then(|t| t.layout);
    if let Some(l) = layout {
        crate::glibc::rtld::fill_link_maps(l, ns, &new, true);
        crate::glibc::rtld::count_added(l, new.len());
    }

    // Relocate against the global scope, then the object's own closure, in
    // glibc's order (`dl_open_worker_begin`): the new objects of the
    // root's dependency-sorted list, backwards, each with its IFUNC
    // resolvers run as it is relocated.
    let mut scope = ns.scope.clone();
    scope.extend(local.iter().copied().filter(|x| !ns.scope.contains(x)));
    let sorted = crate::init::sort(&local, ns.objs.len(), &|x| ns.objs[x].deps.clone(), usize::MAX);
    let target = Target::of::<Native>(native::tlsdesc_static(), native::tlsdesc_dynamic());
    let hwcap = saved.hwcap;
    // SAFETY: the engine calls this only with the resolver of an IFUNC of
    // a mapped object, when glibc's loader would call it.
    let resolve = |r: usize| unsafe { native::call_ifunc(r, hwcap.0, hwcap.1) };
    // Resolvers may call back into the loader (libc's time/gettimeofday
    // look up the vDSO), while this thread holds the loader lock.
    crate::glibc::api::set_startup_namespace(Some(ns));
    let relocated = (|| -> Result<(), Error> {
        let mut engine = Engine::new(ns, &scope, target, &resolve);
        // RTLD_NOW: a missing function is an error now (glibc's lazy
        // binding would only fail when it is called).
        engine.bind_now = saved.bind_now || mode & RTLD_BINDING_MASK == RTLD_NOW;
        engine.progname = program_name();
        let unsorted = new.iter().copied().filter(|id| !sorted.contains(id));
        for id in sorted.iter().rev().copied().filter(|&id| id >= before).chain(unsorted) {
            engine.relocate(id)?;
        }
        Ok(())
    })();
    crate::glibc::api::set_startup_namespace(None);
    relocated?;
    copy_tls_images(ns, &new);
    for &id in &new {
        let d = &mut ns.objs[id];
        d.relocated = true;
        crate::map::protect_relro(d)?;
    }
    if mode & RTLD_GLOBAL != 0 {
        for &id in &local {
            if !ns.scope.contains(&id) {
                ns.scope.push(id);
            }
        }
    }
    bump(ns, root, mode);
    if let Some(l) = layout {
        // dlsym(handle) searches the object and its dependencies.
        let lms: Vec<usize> = local.iter().map(|&x| ns.objs[x].link_map).collect();
        crate::glibc::rtld::set_searchlist(l, ns.objs[root].link_map, &lms);
    }
    publish_global_scope(ns);
    for &id in &new {
        if id != root {
            ns.objs[id].open_count = ns.objs[id].open_count.max(1);
        }
    }
    crate::glibc::api::add_objects(ns, &new);
    crate::debug::publish(ns, 0, crate::debug::RT_CONSISTENT);

    // Initialisers of the new objects, dependencies first.
    let order = crate::init::sort(&local, ns.objs.len(), &|x| ns.objs[x].deps.clone(), usize::MAX);
    let mut calls = Vec::new();
    for &id in order.iter().rev() {
        let d = &mut ns.objs[id];
        if d.init_called || d.kind != Kind::Library {
            continue;
        }
        d.init_called = true;
        calls.extend(crate::init::object_init_calls(ns, id));
    }
    Ok((ns.objs[root].link_map, calls))
}

/// `argv[0]` (glibc's `RTLD_PROGNAME`), for the engine's warnings.
fn program_name() -> &'static str {
    crate::glibc::api::argv0().map_or("<program name unknown>", |a| crate::diag::show(a.strip_suffix(b"\0").unwrap_or(a)))
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
fn publish_global_scope(ns: &Namespace) {
    let Some(l) = TLS.lock().as_ref().and_then(|t| t.layout) else { return };
    let lms: Vec<usize> = ns.scope.iter().map(|&x| ns.objs[x].link_map).collect();
    crate::glibc::rtld::set_searchlist(l, ns.objs[ns.main].link_map, &lms);
}

/// Places the TLS blocks of new objects in the static surplus and sets
/// them up in every existing thread.
fn place_tls(ns: &mut Namespace, new: &[DsoId]) -> Result<(), Error> {
    let mut g = TLS.lock();
    let Some(t) = g.as_mut() else { return Ok(()) };
    for &id in new {
        let Some(mut m) = ns.objs[id].tls else { continue };
        let (off, end) = tls::place(t.variant, t.used, m.memsz, m.align, m.firstbyte);
        // Static TLS when the surplus has room (every TLS model works and
        // access is fastest), otherwise dynamic TLS, allocated per thread on
        // first use (initial-exec code in such an object is then refused
        // at relocation, as glibc refuses it).
        if end <= t.limit {
            t.used = end;
            m.offset = Some(off);
        } else {
            m.offset = None;
        }
        m.modid = t.next_modid;
        t.next_modid += 1;
        ns.objs[id].tls = Some(m);
        crate::tls::MODULES.write().push(m);
    }
    Ok(())
}

/// Copies the new modules' TLS images into every thread and points each
/// thread's DTV at them.
fn copy_tls_images(ns: &Namespace, new: &[DsoId]) {
    let g = TLS.lock();
    let Some(t) = g.as_ref() else { return };
    let tps: Vec<usize> = match t.layout {
        Some(l) => crate::glibc::rtld::thread_pointers(l),
        None => alloc::vec![native::thread_pointer_value()],
    };
    for &id in new {
        let Some(m) = ns.objs[id].tls else { continue };
        for &tp in &tps {
            let dtv = native::dtv_of(tp);
            // SAFETY: `dtv[-1]` holds the capacity of this thread's DTV.
            let cap = unsafe { (*(dtv as *const tls::DtvEntry).sub(1)).val };
            if m.modid > cap {
                continue;
            }
            let tb = tls::ThreadBlock { tp, dtv, alloc: 0 };
            // SAFETY: the block was placed inside every thread's static
            // area (same layout for all threads), the image is mapped.
            unsafe { tls::init_module(t.variant, &tb, &m) };
        }
        // glibc before 2.34: the other threads are libpthread's to reach.
        if let (Some(l), Some(_)) = (t.layout, m.offset) {
            crate::glibc::libpthread::init_static_tls(l, ns.objs[id].link_map);
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
    let mut guard = STATE.lock();
    let ns = guard.as_mut().ok_or_else(|| err!("ld-cah.so", "dlclose before start-up finished"))?;
    let id = ns.objs.iter().position(|d| d.link_map == lm && lm != 0).ok_or_else(|| err!("ld-cah.so", "invalid handle"))?;
    let d = &mut ns.objs[id];
    d.open_count = d.open_count.saturating_sub(1);
    if d.open_count > 0 || d.nodelete || d.kind != Kind::Library {
        return Ok(Closed { calls: Vec::new(), unmap: None });
    }
    // Gone for every name lookup (RTLD_NOLOAD included).
    d.removed = true;
    let needed_by_others = ns.objs.iter().enumerate().any(|(i, o)| i != id && !o.removed && o.deps.contains(&id));
    let layout = TLS.lock().as_ref().and_then(|t| t.layout);
    let dtors_pending = layout.is_some_and(|l| {
        // SAFETY: one of our link maps; libc counts thread_local
        // destructors registered for the object in l_tls_dtor_count.
        unsafe { crate::glibc::raw::Raw::new(lm) }.get(l.link_map.l_tls_dtor_count) != 0
    });
    let unmap = (!needed_by_others && !dtors_pending).then_some(id);
    let d = &mut ns.objs[id];
    if !d.init_called {
        ns.scope.retain(|&x| x != id);
        publish_global_scope(ns);
        return Ok(Closed { calls: Vec::new(), unmap });
    }
    d.init_called = false;
    let calls = crate::init::object_fini_calls(ns, id);
    ns.scope.retain(|&x| x != id);
    publish_global_scope(ns);
    Ok(Closed { calls, unmap })
}

/// Unmaps an object `close` released, after its finalisers ran: it leaves
/// the link-map chain, the run-time tables and the address space.
pub fn unmap(id: DsoId) {
    let mut guard = STATE.lock();
    let Some(ns) = guard.as_mut() else { return };
    let Some(d) = ns.objs.get(id) else { return };
    if !d.removed || d.open_count > 0 || d.map_end <= d.map_start || d.kind != Kind::Library {
        return;
    }
    let (start, end, lm, tls) = (d.map_start, d.map_end, d.link_map, d.tls);
    if let Some(m) = tls {
        // New threads must not copy an image that is about to disappear.
        crate::tls::MODULES.write().retain(|x| x.modid != m.modid);
    }
    crate::glibc::api::remove_object(lm);
    let chain = ns.link_order();
    crate::debug::publish(ns, 0, crate::debug::RT_DELETE);
    crate::debug::link_maps(ns, &chain);
    if let Some(l) = TLS.lock().as_ref().and_then(|t| t.layout) {
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
}

/// The directories `dlinfo(RTLD_DI_SERINFO)` reports for the object whose
/// link map is `lm`: its `DT_RPATH` chain (unless it has `DT_RUNPATH`),
/// `LD_LIBRARY_PATH`, its `DT_RUNPATH`, then the default directories
/// (unless `DF_1_NODEFLIB`). Like glibc, a run-path list none of whose
/// directories exists is left out whole (glibc drops such a list after its
/// first search); library-path entries are listed as given.
pub fn search_dirs(lm: usize) -> Vec<Vec<u8>> {
    let Some(saved) = SAVED.get() else { return Vec::new() };
    let guard = STATE.lock();
    let Some(ns) = guard.as_ref() else { return Vec::new() };
    let id = ns.objs.iter().position(|d| d.link_map == lm && lm != 0).unwrap_or(ns.main);
    let tokens = Tokens { platform: saved.platform, lib: Native::DST_LIB.as_bytes(), secure: saved.secure, trusted: Native::DEFAULT_DIRS };
    let exists = |dir: &[u8]| {
        let mut p = dir.to_vec();
        p.push(0);
        crate::sys::open(&p, crate::sys::O_RDONLY | crate::sys::O_DIRECTORY, 0).is_ok()
    };
    let mut out: Vec<Vec<u8>> = Vec::new();
    let requester = &ns.objs[id];
    let runpath = requester.dyn_info.runpath.and_then(|o| requester.string(o)).map(<[u8]>::to_vec);
    if runpath.is_none() {
        for o in ns.chain(id) {
            let d = &ns.objs[o];
            if d.dyn_info.runpath.is_some() {
                continue;
            }
            if let Some(r) = d.dyn_info.rpath.and_then(|off| d.string(off)) {
                let dirs = crate::link::search::split_list(r, d.origin.as_deref(), d.kind == crate::link::Kind::Main, &tokens);
                if dirs.iter().any(|x| exists(x)) {
                    out.extend(dirs);
                }
            }
        }
    }
    out.extend(saved.library_path.iter().cloned());
    if let Some(r) = runpath {
        let dirs = crate::link::search::split_list(&r, requester.origin.as_deref(), requester.kind == crate::link::Kind::Main, &tokens);
        if dirs.iter().any(|x| exists(x)) {
            out.extend(dirs);
        }
    }
    if requester.flags_1() & u64::from(object::elf::DF_1_NODEFLIB) == 0 {
        out.extend(Native::DEFAULT_DIRS.iter().map(|d| d.as_bytes().to_vec()));
    }
    out
}
