//! The functions libc.so.6 calls in its loader: exported symbols
//! (`_dl_allocate_tls`, `__tunable_get_val`, ...) and the function pointers
//! in `_rtld_global_ro` (`_dl_lookup_symbol_x`, `_dl_find_object`, ...).
#![allow(unsafe_code)]
#![allow(non_snake_case)]

use alloc::vec::Vec;

use super::layout::{Arch, Field, Layout};
use super::raw::Raw;
use super::runtime::{argv0, object_of, rt, symbol_in};
use crate::elf::symbols::{Query, Sym};
use crate::elf::version::VersionReq;
use crate::link::lookup::{self, Class, UniqueTable};
use crate::link::{DsoId, Namespace};
use crate::tls::{self, DtvEntry};

/// The entry points libc reaches through `_rtld_global_ro` that belong to
/// stages above this layer (`dlopen`, `dlclose`): they hand them in, so
/// that this layer never calls up into them.
pub struct Hooks {
    /// `GLRO(dl_open)`: `void *(const char *file, int mode, const void
    /// *caller, Lmid_t nsid, int argc, char **argv, char **env)`.
    pub dl_open: extern "C" fn(*const u8, i32, usize, isize, i32, usize, usize) -> usize,
    /// `GLRO(dl_close)`: `void (void *map)`.
    pub dl_close: extern "C" fn(usize),
}

/// Writes our function pointers into `_rtld_global_ro`.
pub fn install(l: &Layout, hooks: &Hooks) {
    // SAFETY: the exported block is larger than the table's struct
    // (checked when `rtld::fill_globals` filled it).
    let ro = unsafe { Raw::new(super::globals::_rtld_global_ro.addr()) };
    let r = &l.rtld_global_ro;
    ro.put(r._dl_debug_printf, noop as *const () as u64);
    ro.put(r._dl_mcount, _dl_mcount as *const () as u64);
    ro.put(r._dl_lookup_symbol_x, lookup_symbol_x as *const () as u64);
    ro.put(r._dl_open, hooks.dl_open as *const () as u64);
    ro.put(r._dl_close, hooks.dl_close as *const () as u64);
    ro.put(r._dl_tls_get_addr_soft, tls_get_addr_soft as *const () as u64);
    ro.put_opt(r._dl_libc_freeres, noop as *const () as u64);
    ro.put_opt(r._dl_find_object, find_object as *const () as u64);
    let e = &l.enumerators;
    if e.dl_readonly_area_rdonly.is_some() && e.dl_readonly_area_writable.is_some() && e.dl_readonly_area_not_found.is_some() {
        ro.put_opt(r._dl_readonly_area, readonly_area as *const () as u64);
    }
}

/// Before relocation: libc's error machinery for `GLRO(dl_catch_error)`
/// and the run-time tables (`runtime`). Returns libc's
/// `__libc_early_init` (0: none).
pub fn finish(l: &'static Layout, ns: &Namespace, libc: DsoId) -> usize {
    super::runtime::start(l, ns, libc);
    // SAFETY: as in `install`.
    let ro = unsafe { Raw::new(super::globals::_rtld_global_ro.addr()) };
    // libc before 2.37 has its own catch machinery, which GLRO(dl_catch_error)
    // must use; later ones rely on the loader's (catch.rs).
    let catch = symbol_in(ns, libc, b"_dl_catch_error");
    let catch = if catch != 0 { catch } else { super::catch::dl_catch_error as *const () as usize };
    ro.put_opt(l.rtld_global_ro._dl_catch_error, catch as u64);
    // libc's `free`, which `runtime::start` just looked up.
    ro.put_opt(l.rtld_global_ro._dl_error_free, super::runtime::rt().map_or(0, |r| r.free) as u64);
    symbol_in(ns, libc, b"__libc_early_init")
}

extern "C" fn noop() {}

/// glibc's `DSO_FILENAME`: an object's `l_name`, or for the program (whose
/// `l_name` is empty) `argv[0]`, as a NUL-terminated string.
fn dso_filename(l_name: *const u8) -> *const u8 {
    // SAFETY: a NUL-terminated `l_name` of one of our link maps, or NULL.
    if !l_name.is_null() && unsafe { *l_name } != 0 {
        return l_name;
    }
    argv0().map_or(c"<main program>".as_ptr().cast(), <[u8]>::as_ptr)
}

/// `_dl_lookup_symbol_x`.
unsafe extern "C" fn lookup_symbol_x(
    name: *const u8,
    undef_map: usize,
    ref_: *mut *const u8,
    scope: *const usize,
    version: usize,
    _type_class: i32,
    flags: i32,
    skip_map: usize,
) -> usize {
    // SAFETY: libc passes a NUL-terminated name, a valid ref pointer and a
    // NULL-terminated scope array of r_scope_elem pointers.
    let found = unsafe { lookup_impl(name, undef_map, scope, version, flags, skip_map) };
    match found {
        Some((lm, sym_addr)) => {
            // SAFETY: `ref_` is libc's out parameter.
            unsafe { *ref_ = sym_addr as *const u8 };
            lm
        }
        None => {
            // SAFETY: as above; a weak reference that finds nothing is not an error.
            let weak = unsafe {
                let r = *ref_;
                !r.is_null() && (*r.add(4) >> 4) == object::elf::STB_WEAK
            };
            // SAFETY: as above.
            unsafe { *ref_ = core::ptr::null() };
            if !weak {
                // glibc's `_dl_lookup_symbol_x`: the referring object
                // (`DSO_FILENAME`), `undefined symbol: NAME[, version V]`.
                let obj = rt().and_then(|r| {
                    // SAFETY: undef_map is a link map libc got from us.
                    (undef_map != 0).then(|| unsafe { Raw::new(undef_map) }.get(r.layout.link_map.l_name) as *const u8)
                });
                // SAFETY: `name` is NUL-terminated (libc).
                let n = unsafe { core::slice::from_raw_parts(name, crate::cstr::strlen(name as usize)) };
                let mut msg = b"undefined symbol: ".to_vec();
                msg.extend_from_slice(n);
                if let Some(v) = version_name(version) {
                    msg.extend_from_slice(b", version ");
                    msg.extend_from_slice(v);
                }
                super::catch::signal(dso_filename(obj.unwrap_or(core::ptr::null())), super::catch::leak_cstr(msg));
            }
            0
        }
    }
}

/// The name of the `struct r_found_version` at `version` (0: none).
fn version_name(version: usize) -> Option<&'static [u8]> {
    let l = rt()?.layout;
    if version == 0 {
        return None;
    }
    // SAFETY: an r_found_version from libc.
    let vname = unsafe { Raw::new(version) }.get(l.r_found_version.name) as usize;
    // SAFETY: its name is NUL-terminated and lives as long as its object.
    (vname != 0).then(|| unsafe { core::slice::from_raw_parts(vname as *const u8, crate::cstr::strlen(vname)) })
}

/// # Safety
/// As `lookup_symbol_x`.
unsafe fn lookup_impl(
    name: *const u8,
    undef_map: usize,
    scope: *const usize,
    version: usize,
    flags: i32,
    skip_map: usize,
) -> Option<(usize, usize)> {
    let l = super::runtime::layout()?;
    // SAFETY: NUL-terminated (caller).
    let name = unsafe { crate::cstr::bytes(name) };
    crate::process::with_view(|mut view| {
        // SAFETY: as this function's.
        unsafe { lookup_in(&mut view, l, name, undef_map, scope, version, flags, skip_map) }
    })?
}

/// # Safety
/// As `lookup_symbol_x`.
#[allow(clippy::too_many_arguments, reason = "`_dl_lookup_symbol_x`'s own arguments, with the view they are read in")]
unsafe fn lookup_in(
    view: &mut crate::process::View<'_>,
    l: &Layout,
    name: &[u8],
    undef_map: usize,
    scope: *const usize,
    version: usize,
    flags: i32,
    skip_map: usize,
) -> Option<(usize, usize)> {
    let ns = view.ns();
    let slots = ns.slots_by_link_map();
    let by_lm = |lm: usize| slots.get(lm);
    let mut ids: Vec<DsoId> = Vec::with_capacity(ns.objs.len());
    let mut s = scope;
    let mut first = true;
    // SAFETY: NULL-terminated array of r_scope_elem (caller).
    unsafe {
        while !s.is_null() && *s != 0 {
            let elem = Raw::new(*s);
            let list = elem.get(l.r_scope_elem.r_list) as *const usize;
            let n = elem.get(l.r_scope_elem.r_nlist) as usize;
            let mut start = 0;
            if first && skip_map != 0 {
                start = (0..n).position(|i| *list.add(i) == skip_map).map_or(n, |p| p + 1);
            }
            for i in start..n {
                if let Some(id) = by_lm(*list.add(i)) {
                    ids.push(id);
                }
            }
            first = false;
            s = s.add(1);
        }
    }
    let want = if version != 0 {
        // SAFETY: an r_found_version from libc.
        let v = unsafe { Raw::new(version) };
        let vname = v.get(l.r_found_version.name) as usize;
        if vname == 0 {
            None
        } else {
            // SAFETY: NUL-terminated version name.
            let n = unsafe { core::slice::from_raw_parts(vname as *const u8, crate::cstr::strlen(vname)) };
            Some(VersionReq {
                name: n,
                hash: v.get(l.r_found_version.hash) as u32,
                hidden: v.get(l.r_found_version.hidden) != 0,
                file: None,
                weak: false,
            })
        }
    } else {
        None
    };
    let q = Query { newest: flags & 2 != 0, ..Query::new(name) };
    let mut unique = UniqueTable::default();
    let skip = if skip_map != 0 { by_lm(skip_map) } else { None };
    let def = lookup::lookup(ns, &mut unique, &ids, &q, want.as_ref(), skip, Class::Normal)?;
    let d = &ns.objs[def.obj];
    let found = (d.link_map, d.dyn_info.symtab + def.idx as usize * core::mem::size_of::<[u8; 24]>());
    // DL_LOOKUP_ADD_DEPENDENCY: the referrer now depends on the definer; a
    // start-up object (never unloaded) keeps a dlopened definer for good.
    // A definer kept already is not written to: a query that changed
    // nothing has nothing to publish for lazy binding.
    let referrer = by_lm(undef_map);
    let pin = flags & 1 != 0 && !d.nodelete && referrer.is_some_and(|u| ns.objs[u].nodelete && u != def.obj);
    if pin {
        if let Some(ns) = view.ns_mut() {
            ns.objs[def.obj].nodelete = true;
        }
    }
    Some(found)
}

/// `_dl_find_object`: lock-free (the table is frozen after start-up).
unsafe extern "C" fn find_object(pc: usize, result: usize) -> i32 {
    let (Some(r), Some(o)) = (rt(), object_of(pc)) else { return -1 };
    let Some(f) = &r.layout.dl_find_object else { return -1 };
    // SAFETY: `result` is a `struct dl_find_object` of the caller.
    let out = unsafe { Raw::new(result) };
    out.put(f.dlfo_flags, 0);
    out.put(f.dlfo_map_start, o.start as u64);
    out.put(f.dlfo_map_end, o.end as u64);
    out.put(f.dlfo_link_map, o.link_map as u64);
    out.put(f.dlfo_eh_frame, o.eh_frame as u64);
    0
}

/// `_dl_readonly_area` (2.42 and later): whether `[ptr, ptr + size)` lies
/// in read-only memory of one object, so that libc's fortified `printf`
/// can refuse a `%n` format string in writable memory. glibc's rules: a
/// writable segment counts as read-only only inside the object's RELRO
/// pages; a segment without read permission is "writable"; read-only
/// segments must cover the whole range.
unsafe extern "C" fn readonly_area(ptr: usize, size: usize) -> i32 {
    let Some(r) = rt() else { return -1 };
    let e = &r.layout.enumerators;
    let (Some(rdonly), Some(writable), Some(not_found)) =
        (e.dl_readonly_area_rdonly, e.dl_readonly_area_writable, e.dl_readonly_area_not_found)
    else {
        return -1;
    };
    let Some(o) = object_of(ptr) else { return not_found as i32 };
    let lm = &r.layout.link_map;
    // SAFETY: a link map ld-cah allocated and filled (`ObjInfo::link_map`).
    let map = unsafe { Raw::new(o.link_map) };
    let (base, phdr, phnum) = (map.get(lm.l_addr) as usize, map.get(lm.l_phdr) as usize, map.get(lm.l_phnum) as usize);
    let (relro, relro_size) = (map.get(lm.l_relro_addr) as usize, map.get(lm.l_relro_size) as usize);
    // SAFETY: `_rtld_global_ro` is at least as large as the table's struct
    // (checked when it was filled).
    let page = unsafe { Raw::new(super::globals::_rtld_global_ro.addr()) }.get(r.layout.rtld_global_ro._dl_pagesize) as usize;
    if !page.is_power_of_two() {
        return not_found as i32;
    }
    let down = |x: usize| x & !(page - 1);
    let (start, end) = (ptr, ptr.saturating_add(size));
    let mut left = size;
    for i in 0..phnum {
        // SAFETY: `l_phdr` points at the object's `phnum` program headers,
        // mapped for the object's lifetime.
        let ph = unsafe { Raw::new(phdr + i * 56) };
        let field = |off, size| super::layout::Field { off, size };
        if ph.get(field(0, 4)) as u32 != object::elf::PT_LOAD {
            continue;
        }
        let flags = ph.get(field(4, 4)) as u32;
        let (vaddr, filesz) = (ph.get(field(16, 8)) as usize, ph.get(field(32, 8)) as usize);
        let from = base.wrapping_add(down(vaddr));
        let to = base.wrapping_add(down(vaddr.wrapping_add(filesz).wrapping_add(page - 1)));
        if !(from < end && to > start) {
            continue;
        }
        if flags & object::elf::PF_W != 0 {
            let inside = relro != 0 && {
                let (rs, re) = (down(base.wrapping_add(relro)), down(base.wrapping_add(relro).wrapping_add(relro_size)));
                rs <= start && end <= re
            };
            return (if inside { rdonly } else { writable }) as i32;
        }
        if flags & object::elf::PF_R == 0 {
            return writable as i32;
        }
        left = left.saturating_sub(to.min(end) - from.max(start));
        if left == 0 {
            break;
        }
    }
    (if left == 0 { rdonly } else { not_found }) as i32
}

#[cfg_attr(feature = "rtld", no_mangle)]
pub extern "C" fn _dl_find_dso_for_object(addr: usize) -> usize {
    object_of(addr).map_or(0, |o| o.link_map)
}

/// `_dl_tls_get_addr_soft`: this thread's block of `lm`, if allocated.
extern "C" fn tls_get_addr_soft(lm: usize) -> usize {
    let Some(r) = rt() else { return 0 };
    if lm == 0 {
        return 0;
    }
    // SAFETY: a link map from us.
    let modid = unsafe { Raw::new(lm) }.get(r.layout.link_map.l_tls_modid) as usize;
    if modid == 0 {
        return 0;
    }
    // SAFETY: the calling thread's DTV; `modid` is the live object's.
    unsafe { tls::block_current(modid, false) }
}

fn tcb_dtv_field(l: &Layout) -> Field {
    l.tcbhead.dtv
}

/// `_dl_allocate_tls(mem)`: a DTV for a new thread whose TCB is `mem`.
///
/// # Safety
/// `mem` is 0 or a thread control block libc allocated for a new
/// thread, as glibc's loader requires.
#[cfg_attr(feature = "rtld", no_mangle)]
pub unsafe extern "C" fn _dl_allocate_tls(mem: usize) -> usize {
    let Some(r) = rt() else { return 0 };
    if mem == 0 {
        return 0;
    }
    let n = tls::max_modid() + tls::DTV_SURPLUS;
    let mut dtv: Vec<DtvEntry> = Vec::with_capacity(n + 2);
    dtv.push(DtvEntry { val: n, to_free: 0 });
    dtv.push(DtvEntry { val: 1, to_free: 0 });
    for _ in 0..n {
        dtv.push(DtvEntry { val: tls::UNALLOCATED, to_free: 0 });
    }
    let p = dtv.leak().as_mut_ptr() as usize + core::mem::size_of::<DtvEntry>();
    // SAFETY: `mem` is the new thread's TCB (caller).
    unsafe { Raw::new(mem) }.put(tcb_dtv_field(r.layout), p as u64);
    // SAFETY: as above.
    unsafe { _dl_allocate_tls_init(mem, true) }
}

/// `_dl_allocate_tls_init(tcb, init_tls)`: point the DTV at the static
/// blocks and copy every TLS image.
///
/// # Safety
/// `tcb` is a thread control block set up by `_dl_allocate_tls`
/// whose thread does not run yet.
#[cfg_attr(feature = "rtld", no_mangle)]
pub unsafe extern "C" fn _dl_allocate_tls_init(tcb: usize, _init_tls: bool) -> usize {
    let Some(r) = rt() else { return 0 };
    if tcb == 0 {
        return 0;
    }
    // SAFETY: `tcb` is a thread's TCB with a DTV (caller).
    let dtv = unsafe { Raw::new(tcb) }.get(tcb_dtv_field(r.layout)) as usize;
    // SAFETY: dtv[-1] is the capacity of this DTV; entries 1..=cap exist
    // (a DTV of a cached stack was zeroed by libc, which freed its blocks).
    let cap = unsafe { (*(dtv as *const DtvEntry).sub(1)).val };
    for id in 1..=cap {
        // SAFETY: as above.
        unsafe { *(dtv as *mut DtvEntry).add(id) = DtvEntry { val: tls::UNALLOCATED, to_free: 0 } };
    }
    // The modules and the generation at one instant: a module added later
    // makes this DTV stale, and the thread catches up at its first access.
    let gen = tls::snapshot(|m| {
        // SAFETY: the layout placed `m` in every thread's static block;
        // entries up to `cap` exist.
        if m.offset.is_some() {
            unsafe {
                let block = tls::init_static_block(tls::variant(), tcb, m);
                if m.modid <= cap {
                    *(dtv as *mut DtvEntry).add(m.modid) = DtvEntry { val: block, to_free: 0 };
                }
            }
        }
    });
    // SAFETY: dtv[0] is the generation counter.
    unsafe { (*(dtv as *mut DtvEntry)).val = gen };
    tcb
}

/// `_dl_deallocate_tls`: the thread's dynamic TLS blocks go back to libc;
/// static blocks are part of its stack; the DTV comes from the loader's
/// heap and stays there (libc may keep the TCB, whose `dtv` points at it).
///
/// # Safety
/// `tcb` is the thread control block of a thread that no longer runs.
#[cfg_attr(feature = "rtld", no_mangle)]
pub unsafe extern "C" fn _dl_deallocate_tls(tcb: usize, _dealloc_tcb: bool) {
    let Some(r) = rt() else { return };
    if tcb == 0 {
        return;
    }
    // SAFETY: `tcb` is a thread's TCB with a DTV (caller).
    let dtv = unsafe { Raw::new(tcb) }.get(tcb_dtv_field(r.layout)) as usize;
    if dtv != 0 {
        // SAFETY: that thread's DTV; the thread is gone (caller).
        unsafe { tls::release_dynamic_blocks(dtv) };
    }
}

/// `__tunable_is_initialized(id)` (2.41): whether the user set tunable `id`.
#[cfg_attr(feature = "rtld", no_mangle)]
pub extern "C" fn __tunable_is_initialized(id: u32) -> bool {
    super::tunables::is_set(id)
}

/// `__tunable_get_val(id, valp, cb)`: the value read from `GLIBC_TUNABLES`
/// (or the default) with the tunable's width, and `cb(&val)` if the user
/// set it (`tunables.rs`). Before start-up has read the tunables (never,
/// in practice) every tunable reads as a 32-bit 0: aarch64's libc reads
/// `glibc.mem.tagging` by value.
///
/// # Safety
/// `valp` is NULL or points to storage as wide as the tunable;
/// `cb` is 0 or a callback with glibc's `tunable_callback_t` signature.
#[cfg_attr(feature = "rtld", no_mangle)]
pub unsafe extern "C" fn __tunable_get_val(id: u32, valp: *mut u32, cb: usize) {
    if valp.is_null() {
        return;
    }
    // SAFETY: libc passes a buffer of the tunable's type and its callback.
    if !unsafe { super::tunables::get(id, valp as *mut u8, cb) } {
        // SAFETY: every tunable is at least 32 bits wide.
        unsafe { valp.write_unaligned(0) };
    }
}

/// `_dl_fatal_printf`: libc calls it only with `"%s: %s: %s%s%s%s%s\n"`;
/// on both ABIs those variadic pointer arguments arrive like fixed ones.
///
/// # Safety
/// `fmt` and the arguments are libc's: NUL-terminated strings for
/// each `%s`. It does not return.
#[cfg_attr(feature = "rtld", no_mangle)]
pub unsafe extern "C" fn _dl_fatal_printf(fmt: *const u8, a: usize, b: usize, c: usize, d: usize, e: usize, f: usize, g: usize) -> ! {
    let args = [a, b, c, d, e, f, g];
    let mut line = crate::diag::Line::new();
    let mut next = 0;
    // SAFETY: a NUL-terminated format string and string arguments (libc).
    unsafe {
        let fmt = core::slice::from_raw_parts(fmt, crate::cstr::strlen(fmt as usize));
        let mut i = 0;
        while i < fmt.len() {
            if fmt[i] == b'%' && fmt.get(i + 1) == Some(&b's') && next < args.len() {
                let s = args[next] as *const u8;
                next += 1;
                if !s.is_null() {
                    let t = core::slice::from_raw_parts(s, crate::cstr::strlen(s as usize));
                    let _ = core::fmt::Write::write_str(&mut line, crate::diag::show(t));
                }
                i += 2;
            } else {
                let _ = core::fmt::Write::write_char(&mut line, fmt[i] as char);
                i += 1;
            }
        }
    }
    line.flush_to(2);
    crate::sys::exit_group(crate::diag::EXIT_FAILURE)
}

#[cfg_attr(feature = "rtld", no_mangle)]
pub extern "C" fn _dl_audit_preinit(_main_map: usize) {}

#[cfg_attr(feature = "rtld", no_mangle)]
pub extern "C" fn _dl_audit_symbind_alt(_l: usize, _ref: usize, _value: usize, _result: usize) {}

#[cfg_attr(feature = "rtld", no_mangle)]
pub extern "C" fn _dl_mcount(_frompc: usize, _selfpc: usize) {}

/// `_dl_rtld_di_serinfo(loader, si, counting)` (`dlinfo` `RTLD_DI_SERINFO`
/// and `RTLD_DI_SERINFOSIZE`): the directories searched for `loader`'s
/// dependencies, in order. `Dl_serinfo` is `{ size_t dls_size; unsigned
/// dls_cnt; Dl_serpath dls_serpath[]; }` with 16-byte `{ char *dls_name;
/// unsigned dls_flags; }` entries and the strings after them. When
/// counting, only the size and count are filled in.
///
/// # Safety
/// `si` is NULL or a `Dl_serinfo` buffer of the size a counting
/// call reported; `loader` is 0 or a link map of this loader.
#[cfg_attr(feature = "rtld", no_mangle)]
pub unsafe extern "C" fn _dl_rtld_di_serinfo(loader: usize, si: *mut usize, counting: bool) {
    if si.is_null() {
        return;
    }
    let dirs = crate::process::lock().as_ref().map(|p| p.search_dirs(loader)).unwrap_or_default();
    let header = 2 * core::mem::size_of::<usize>();
    let strings: usize = dirs.iter().map(|d| d.len() + 1).sum();
    let size = header + dirs.len() * 16 + strings;
    // SAFETY: the caller's Dl_serinfo; when not counting, glibc's contract
    // is that it was allocated with the size we reported when counting.
    unsafe {
        if counting {
            *si = size;
            *(si.add(1) as *mut u32) = dirs.len() as u32;
            return;
        }
        let base = si as usize;
        let mut text = base + header + dirs.len() * 16;
        for (i, d) in dirs.iter().enumerate() {
            let entry = base + header + i * 16;
            core::ptr::copy_nonoverlapping(d.as_ptr(), text as *mut u8, d.len());
            *((text + d.len()) as *mut u8) = 0;
            *(entry as *mut usize) = text;
            *((entry + 8) as *mut u32) = 0;
            text += d.len() + 1;
        }
        *(si.add(1) as *mut u32) = dirs.len() as u32;
    }
}

/// `__nptl_change_stack_perm`: make a thread stack executable.
///
/// # Safety
/// `pd` is a thread descriptor of libc whose stack fields are set.
#[cfg_attr(feature = "rtld", no_mangle)]
pub unsafe extern "C" fn __nptl_change_stack_perm(pd: usize) -> i32 {
    let Some(r) = rt() else { return 38 };
    // SAFETY: a struct pthread from libc.
    let p = unsafe { Raw::new(pd) };
    let t = &r.layout.pthread;
    let block = p.get(t.stackblock) as usize;
    let size = p.get(t.stackblock_size) as usize;
    let guard = p.get(t.guardsize) as usize;
    // SAFETY: the thread's own stack mapping, described by libc.
    match unsafe {
        crate::sys::mprotect(
            block + guard,
            size.saturating_sub(guard),
            crate::sys::PROT_READ | crate::sys::PROT_WRITE | crate::sys::PROT_EXEC,
        )
    } {
        Ok(()) => 0,
        Err(e) => e.0,
    }
}

/// # Safety
/// `size` and `align` are NULL or writable `size_t`s.
#[cfg_attr(feature = "rtld", no_mangle)]
pub unsafe extern "C" fn _dl_get_tls_static_info(size: *mut usize, align: *mut usize) {
    let l = tls::static_layout();
    let (s, a) = (l.size, l.align);
    // SAFETY: out parameters of the caller.
    unsafe {
        if !size.is_null() {
            *size = s;
        }
        if !align.is_null() {
            *align = a;
        }
    }
}

#[cfg_attr(feature = "rtld", no_mangle)]
pub extern "C" fn _dl_x86_get_cpu_features() -> usize {
    match rt().map(|r| (r.layout.arch, r.layout.rtld_global_ro._dl_x86_cpu_features)) {
        Some((Arch::X86_64, Some(f))) => super::globals::_rtld_global_ro.addr() + f.off as usize,
        _ => 0,
    }
}

/// Symbols the dynamic symbol table of `ld-cah.so` must keep (checked by a
/// test against the version scripts).
pub const EXPORTS: &[&str] = &[
    "_dl_find_dso_for_object",
    "_dl_allocate_tls",
    "_dl_allocate_tls_init",
    "_dl_deallocate_tls",
    "__tunable_get_val",
    "_dl_exception_create",
    "_dl_fatal_printf",
    "_dl_audit_preinit",
    "_dl_audit_symbind_alt",
    "_dl_mcount",
    "_dl_rtld_di_serinfo",
    "__nptl_change_stack_perm",
    "_dl_get_tls_static_info",
    "_dl_make_stack_executable",
];

#[allow(dead_code)]
fn _sym_size_check(_: Sym) {}
