//! glibc before 2.34 (Debian 11's 2.31): threads live in `libpthread.so.0`,
//! not in libc, and the loader's side of the contract differs:
//!
//! * the thread lists (`stack_used`, `__stack_user`, the stack cache) are
//!   libpthread's own variables, not `_rtld_global` members: libpthread's
//!   initialiser (its `DT_INIT`) links the main thread itself;
//! * libc takes the loader locks through two hooks in `_rtld_global`
//!   (`_dl_rtld_lock_recursive`, `_dl_rtld_unlock_recursive`), which the
//!   loader sets to a default (count the recursion in the mutex) and
//!   libpthread replaces with `pthread_mutex_lock`/`unlock` when it starts;
//! * `_dl_make_stack_executable_hook` starts as the loader's
//!   `_dl_make_stack_executable` (exported, libpthread also calls it);
//! * the static TLS size and alignment are `_rtld_global` members;
//! * libc has no `__libc_early_init` (its `_init` does that work).
//!
//! Every difference is a member the layout table has or lacks (`Option`
//! members of `RtldGlobal`), so nothing here asks for a version number:
//! a table without the hooks is a 2.34-or-later one and this does nothing.
#![allow(unsafe_code)]

use core::sync::atomic::Ordering;

use super::layout::Layout;
use super::raw::Raw;
use crate::tls::StaticLayout;

/// Fills the members only libpthread-era builds have (none in later ones).
pub fn fill_globals(l: &'static Layout, g: Raw, tls: &StaticLayout) {
    let rg = &l.rtld_global;
    g.put_opt(rg._dl_rtld_lock_recursive, lock_recursive as *const () as u64);
    g.put_opt(rg._dl_rtld_unlock_recursive, unlock_recursive as *const () as u64);
    g.put_opt(rg._dl_make_stack_executable_hook, _dl_make_stack_executable as *const () as u64);
    g.put_opt(rg._dl_tls_static_size, tls.size as u64);
    g.put_opt(rg._dl_tls_static_align, tls.align as u64);
}

/// The loader's default for `_dl_rtld_lock_recursive` (glibc's behaviour
/// before libpthread is there): only one thread exists, so the lock just
/// counts its recursion in the mutex's `__count`.
unsafe extern "C" fn lock_recursive(mutex: usize) {
    let Some(l) = super::runtime::layout() else { return };
    // SAFETY: `mutex` is one of the loader locks in `_rtld_global`, a
    // `pthread_mutex_t` of the table's layout.
    let m = unsafe { Raw::new(mutex) };
    let c = l.pthread_mutex.__count;
    m.put(c, m.get(c).wrapping_add(1));
}

/// The default for `_dl_rtld_unlock_recursive`, as above.
unsafe extern "C" fn unlock_recursive(mutex: usize) {
    let Some(l) = super::runtime::layout() else { return };
    // SAFETY: as in `lock_recursive`.
    let m = unsafe { Raw::new(mutex) };
    let c = l.pthread_mutex.__count;
    m.put(c, m.get(c).wrapping_sub(1));
}

/// `int _dl_make_stack_executable(void **stack_endp)`: make the main
/// thread's stack executable (a `dlopen`ed object asked for an executable
/// stack). Only for the stack `__libc_stack_end` names (`EPERM` otherwise,
/// so a caller cannot aim it elsewhere); on success `*stack_endp` is
/// cleared and `PF_X` added to `_dl_stack_flags`, as libpthread expects.
///
/// # Safety
/// `stack_endp` points at a readable and writable pointer.
#[cfg_attr(feature = "rtld", no_mangle)]
pub unsafe extern "C" fn _dl_make_stack_executable(stack_endp: *mut usize) -> i32 {
    const EPERM: i32 = 1;
    if stack_endp.is_null() {
        return EPERM;
    }
    // SAFETY: the caller's pointer (see above).
    let end = unsafe { *stack_endp };
    if end == 0 || end != super::globals::__libc_stack_end.load(Ordering::Relaxed) {
        return EPERM;
    }
    let Some(l) = super::runtime::layout() else { return EPERM };
    // SAFETY: the exported blocks are larger than the structs (checked at start-up).
    let (g, ro) = unsafe { (Raw::new(super::globals::_rtld_global.addr()), Raw::new(super::globals::_rtld_global_ro.addr())) };
    let page = (ro.get(l.rtld_global_ro._dl_pagesize) as usize).max(4096);
    let start = end & !(page - 1);
    // SAFETY: the page holding the initial stack pointer; PROT_GROWSDOWN
    // extends the change to the whole stack mapping below it.
    match unsafe {
        crate::sys::mprotect(start, page, crate::sys::PROT_READ | crate::sys::PROT_WRITE | crate::sys::PROT_EXEC | PROT_GROWSDOWN)
    } {
        Ok(()) => {}
        Err(e) => return e.0,
    }
    // SAFETY: as above.
    unsafe { *stack_endp = 0 };
    if let Some(f) = l.rtld_global._dl_stack_flags {
        g.put(f, g.get(f) | u64::from(object::elf::PF_X));
    }
    0
}

/// After `dlopen` placed a module in static TLS: libpthread's
/// `_dl_init_static_tls` hook (installed by its initialiser; NULL before)
/// copies the module's TLS image into the static TLS of every thread, as
/// glibc's loader has it do; the loader itself only reaches the calling
/// thread (the thread lists are libpthread's). Nothing in later builds.
pub fn init_static_tls(l: &Layout, link_map: usize) {
    let Some(f) = l.rtld_global._dl_init_static_tls else { return };
    // SAFETY: the exported block is larger than the struct (checked at start-up).
    let g = unsafe { Raw::new(super::globals::_rtld_global.addr()) };
    let hook = g.get(f) as usize;
    if hook == 0 {
        return;
    }
    // SAFETY: libpthread's `void __pthread_init_static_tls(struct link_map *)`,
    // stored by libpthread itself; `link_map` is the module's filled map.
    unsafe {
        let hook: unsafe extern "C" fn(usize) = core::mem::transmute(hook);
        hook(link_map);
    }
}

/// A copy of an object's `.dynamic` with the address entries glibc
/// relocates in place, for builds whose `link_map` has no `l_ld_readonly`
/// (before 2.35): their libc reads `l_info[DT_SYMTAB]->d_un.d_ptr` and
/// others as run-time addresses, while ld-cah leaves `.dynamic` untouched
/// (`l_ld`, which debuggers read, still points at the original). The
/// entries relocated are glibc's: `DT_HASH`, `DT_PLTGOT`, `DT_STRTAB`,
/// `DT_SYMTAB`, `DT_RELA`, `DT_REL`, `DT_JMPREL`, `DT_VERSYM`,
/// `DT_GNU_HASH`. `None` for later builds (or no entries).
pub fn relocated_dynamic(l: &Layout, img: &crate::elf::Image, dynamic: usize, count: usize, base: usize) -> Option<usize> {
    use object::elf::*;
    if l.link_map.l_ld_readonly.is_some() || count == 0 {
        return None;
    }
    let mut v = alloc::vec![0u64; count * 2];
    for k in 0..count {
        let tag = img.u64(dynamic + k * 16)?;
        let val = img.u64(dynamic + k * 16 + 8)?;
        let relocate =
            matches!(tag as u32, DT_HASH | DT_PLTGOT | DT_STRTAB | DT_SYMTAB | DT_RELA | DT_REL | DT_JMPREL | DT_VERSYM | DT_GNU_HASH)
                && tag <= u64::from(u32::MAX);
        v[2 * k] = tag;
        v[2 * k + 1] = if relocate { val.wrapping_add(base as u64) } else { val };
    }
    Some(v.leak().as_ptr() as usize)
}

/// `PROT_GROWSDOWN`: `mprotect` extends the change down a grows-down mapping.
const PROT_GROWSDOWN: usize = 0x0100_0000;
