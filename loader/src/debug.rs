//! The debugger interface (SVR4 `r_debug`): `_r_debug` lists the loaded
//! objects through their `struct link_map`, and debuggers put a breakpoint
//! on `_dl_debug_state` to hear about changes. gdb finds both by name in
//! the interpreter, and through `DT_DEBUG` of the program.
#![allow(unsafe_code)]

use core::cell::UnsafeCell;

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

/// Allocates the `link_map` of every object that has none, of `bytes`
/// bytes (`glibc::runtime::link_map_bytes`; at least the public prefix),
/// and links the objects of `chain` in that order (glibc's `l_next` order:
/// program, vDSO, then the global scope; an unused loader is left out, as
/// glibc does).
pub fn link_maps(ns: &mut Namespace, chain: &[crate::link::DsoId], bytes: usize) {
    let bytes = bytes.max(core::mem::size_of::<LinkMapPublic>());
    for d in ns.objs.iter_mut() {
        if d.link_map == 0 {
            let mem = alloc::vec![0usize; bytes.div_ceil(8)].leak();
            d.link_map = mem.as_mut_ptr() as usize;
        }
    }
    let n = chain.len();
    for (k, &i) in chain.iter().enumerate() {
        let d = &ns.objs[i];
        let lm = d.link_map as *mut LinkMapPublic;
        let next = if k + 1 < n { ns.objs[chain[k + 1]].link_map } else { 0 };
        let prev = if k > 0 { ns.objs[chain[k - 1]].link_map } else { 0 };
        // SAFETY: `lm` is this object's own zeroed, leaked, word-aligned
        // allocation of at least the public prefix (see above);
        // `name` is NUL-terminated and lives as long as the object.
        unsafe {
            (*lm).l_addr = d.base;
            (*lm).l_name = d.name.as_ptr();
            (*lm).l_ld = d.dynamic;
            (*lm).l_next = next as *mut LinkMapPublic;
            (*lm).l_prev = prev as *mut LinkMapPublic;
        }
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
pub fn publish(ns: &Namespace, loader_base: usize, state: i32) {
    let r = _r_debug.0.get();
    // SAFETY: see `SharedRDebug`.
    unsafe {
        (*r).r_version = 1;
        (*r).r_map = ns.objs.get(ns.main).map_or(0, |d| d.link_map);
        (*r).r_brk = _dl_debug_state as *const () as usize;
        (*r).r_ldbase = loader_base;
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
