//! The debugger interface (SVR4 `r_debug`): `_r_debug` lists the loaded
//! objects through their `struct link_map`, and debuggers put a breakpoint
//! on `_dl_debug_state` to hear about changes. gdb finds both by name in
//! the interpreter, and through `DT_DEBUG` of the program.
#![allow(unsafe_code)]

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::link::Namespace;

/// Room for the largest `struct link_map` of any glibc build the
/// loader knows (the glibc layer fills the private part).
pub const LINK_MAP_ALLOC: usize = 2048;

/// The public prefix of `struct link_map` (`<link.h>`), stable across builds.
#[repr(C)]
pub struct LinkMapPublic {
    pub l_addr: usize,
    pub l_name: *const u8,
    pub l_ld: usize,
    pub l_next: *mut LinkMapPublic,
    pub l_prev: *mut LinkMapPublic,
}

/// `struct r_debug_extended` (glibc 2.35+; older debuggers read only the
/// `struct r_debug` prefix).
#[repr(C)]
pub struct RDebug {
    pub r_version: i32,
    pub r_map: usize,
    pub r_brk: usize,
    pub r_state: i32,
    pub r_ldbase: usize,
    pub r_next: usize,
}

pub const RT_CONSISTENT: i32 = 0;
pub const RT_ADD: i32 = 1;
pub const RT_DELETE: i32 = 2;

/// `_r_debug`, mutated only under the loader's lock.
#[repr(transparent)]
pub struct SharedRDebug(UnsafeCell<RDebug>);

// SAFETY: written only by the loader while it holds its lock (or before
// any thread exists); other readers are debuggers in another process.
unsafe impl Sync for SharedRDebug {}

#[cfg_attr(feature = "rtld", no_mangle)]
#[allow(non_upper_case_globals)]
pub static _r_debug: SharedRDebug =
    SharedRDebug(UnsafeCell::new(RDebug { r_version: 0, r_map: 0, r_brk: 0, r_state: 0, r_ldbase: 0, r_next: 0 }));

/// Debuggers set a breakpoint here; it must stay a real, separate function.
#[cfg_attr(feature = "rtld", no_mangle)]
#[inline(never)]
pub extern "C" fn _dl_debug_state() {
    // Keep the function from being merged or removed.
    core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
}

/// The last link map of the chain (0: none yet): where a `dlopen` links
/// its new objects. Written only under the loader lock.
static TAIL: AtomicUsize = AtomicUsize::new(0);

/// Gives every object that has none a `link_map` of `bytes` bytes
/// (`glibc::runtime::link_map_bytes`; at least the public prefix).
fn allocate(ns: &mut Namespace, bytes: usize) {
    let bytes = bytes.max(core::mem::size_of::<LinkMapPublic>());
    for id in 0..ns.objs.len() {
        if ns.objs[id].link_map == 0 {
            let mem = alloc::vec![0usize; bytes.div_ceil(8)].leak();
            ns.give_link_map(id, mem.as_mut_ptr() as usize);
        }
    }
}

/// Fills the public prefix of object `i`'s link map.
fn link(ns: &Namespace, i: crate::link::DsoId, prev: usize, next: usize) {
    let d = &ns.objs[i];
    let lm = d.link_map as *mut LinkMapPublic;
    // SAFETY: `lm` is this object's own zeroed, leaked, word-aligned
    // allocation of at least the public prefix (`allocate`); `name` is
    // NUL-terminated and lives as long as the object.
    unsafe {
        (*lm).l_addr = d.base;
        (*lm).l_name = d.name.as_ptr();
        (*lm).l_ld = d.dynamic;
        (*lm).l_next = next as *mut LinkMapPublic;
        (*lm).l_prev = prev as *mut LinkMapPublic;
    }
}

/// Allocates the `link_map` of every object that has none, of `bytes`
/// bytes (`glibc::runtime::link_map_bytes`; at least the public prefix),
/// and links the objects of `chain` in that order (glibc's `l_next` order:
/// program, vDSO, then the global scope; an unused loader is left out, as
/// glibc does).
pub fn link_maps(ns: &mut Namespace, chain: &[crate::link::DsoId], bytes: usize) {
    allocate(ns, bytes);
    let lm = |k: Option<usize>| k.and_then(|k| chain.get(k)).map_or(0, |&i| ns.objs[i].link_map);
    for (k, &i) in chain.iter().enumerate() {
        link(ns, i, lm(k.checked_sub(1)), lm(Some(k + 1)));
    }
    TAIL.store(lm(chain.len().checked_sub(1)), Ordering::Relaxed);
}

/// Links the objects `new` (just loaded, in load order) after the end of
/// the chain, as glibc's `dlopen` does, leaving the rest as it is.
/// `false` if the chain's end is not a live object's link map (nothing
/// is linked then; the caller relinks the whole chain).
pub fn append(ns: &mut Namespace, new: &[crate::link::DsoId], bytes: usize) -> bool {
    let tail = TAIL.load(Ordering::Relaxed);
    let live = |m: usize| ns.by_link_map(m).is_some_and(|i| !ns.objs[i].removed && !new.contains(&i));
    if tail == 0 || !live(tail) {
        return false;
    }
    allocate(ns, bytes);
    let mut prev = tail;
    for (k, &i) in new.iter().enumerate() {
        let next = new.get(k + 1).map_or(0, |&j| ns.objs[j].link_map);
        link(ns, i, prev, next);
        prev = ns.objs[i].link_map;
    }
    if let Some(&first) = new.first() {
        // SAFETY: `tail` is a live object's link map (checked above).
        unsafe { (*(tail as *mut LinkMapPublic)).l_next = ns.objs[first].link_map as *mut LinkMapPublic };
    }
    TAIL.store(prev, Ordering::Relaxed);
    true
}

/// Takes the link map `lm` out of the chain, as glibc's `dlclose` does:
/// its neighbours are linked to each other and nothing else is rewritten
/// (`dlclose` in a loop used to relink the whole chain each round).
/// `known` says whether an address is the link map of another object of
/// the namespace (closed ones too: a neighbour may be closed and not yet
/// unmapped, and link maps are never freed): a neighbour that is not, or
/// that no longer points back at `lm` (the chain was relinked without it
/// meanwhile), leaves the chain untouched.
pub fn unlink(lm: usize, known: &dyn Fn(usize) -> bool) {
    if lm == 0 {
        return;
    }
    let lm = lm as *mut LinkMapPublic;
    // SAFETY: `lm` is a link map this module made (at least the public
    // prefix, word-aligned); so are its neighbours once `known` vouches
    // for them, and each is read before anything is written.
    unsafe {
        let (prev, next) = ((*lm).l_prev, (*lm).l_next);
        // The program's map heads the chain: a library always has a `prev`.
        if prev.is_null() || !known(prev as usize) || (*prev).l_next != lm {
            return;
        }
        if !next.is_null() && (!known(next as usize) || (*next).l_prev != lm) {
            return;
        }
        (*prev).l_next = next;
        if next.is_null() {
            TAIL.store(prev as usize, Ordering::Relaxed);
        } else {
            (*next).l_prev = prev;
        }
        (*lm).l_next = core::ptr::null_mut();
        (*lm).l_prev = core::ptr::null_mut();
    }
}

/// Zeroes the first `bytes` of a link map that left the chain, for reuse
/// by a later object; `bytes` is no more than it was made with.
pub fn clear_link_map(lm: usize, bytes: usize) {
    if lm != 0 {
        // SAFETY: `lm` is one of the allocations made by `link_maps`, owned
        // by an object that is gone, and the caller passes no more bytes
        // than it was made with (`glibc::runtime::link_map_bytes` never
        // grows).
        unsafe { core::ptr::write_bytes(lm as *mut u8, 0, bytes) };
    }
}

/// Publishes the list in `_r_debug` and the program's `DT_DEBUG`.
/// `loader_base` 0 keeps the one published before.
pub fn publish(ns: &Namespace, loader_base: usize, state: i32) {
    let r = _r_debug.0.get();
    // SAFETY: see `SharedRDebug`.
    unsafe {
        (*r).r_version = 1;
        (*r).r_map = ns.objs.get(ns.main).map_or(0, |d| d.link_map);
        (*r).r_brk = _dl_debug_state as *const () as usize;
        if loader_base != 0 {
            (*r).r_ldbase = loader_base;
        }
        (*r).r_state = state;
    }
    if let Some(main) = ns.objs.get(ns.main) {
        if main.dyn_info.debug_slot != 0 {
            let _ = main.img.write_u64(main.dyn_info.debug_slot, r as u64);
        }
    }
    // ld-cah is linked as a PIE, so it has a `DT_DEBUG` of its own (glibc's
    // ld.so has none). Run as a command (`gdb --args ld-cah.so PROG`), it is
    // gdb's executable, and gdb takes a zero `DT_DEBUG` there for "no
    // libraries yet" instead of looking for `_r_debug`: point it at the list.
    for d in ns.objs.iter().filter(|d| d.kind == crate::link::Kind::Loader && d.dyn_info.debug_slot != 0) {
        let _ = d.img.write_u64(d.dyn_info.debug_slot, r as u64);
    }
    _dl_debug_state();
}
