//! `_rtld_global`, `_rtld_global_ro`, the link maps and the main thread's
//! `struct pthread`, filled as glibc's own loader leaves them for libc.so.6
//! (docs/glibc-layouts.md). Every offset comes from the
//! generated [`Layout`] of the libc found in the closure.
#![allow(unsafe_code)]

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use object::elf::*;

use super::globals::*;
use super::layout::{Arch, Layout};
use super::raw::Raw;
use crate::link::{DsoId, Kind, Namespace};
use crate::tls::{StaticLayout, ThreadBlock};

/// Storage for things libc only compares against NULL (`_dl_init_all_dirs`).
static ALL_DIRS: Block<64> = Block::new();

/// What the process gives the glibc layer.
pub struct Process {
    pub sp: usize,
    pub argv: usize,
    pub auxv: usize,
    pub secure: bool,
    pub page: usize,
    pub platform: usize,
    pub hwcap: u64,
    pub hwcap2: u64,
    pub clktck: usize,
    pub minsigstksz: usize,
    pub sysinfo_ehdr: usize,
    /// `AT_RSEQ_FEATURE_SIZE` (0 when the kernel does not give it).
    pub rseq_feature_size: usize,
}

/// Identifies the glibc of the closure by libc.so.6's build id.
pub fn find_libc(ns: &Namespace) -> Option<DsoId> {
    ns.scope.iter().copied().find(|&i| ns.objs[i].soname() == Some(b"libc.so.6"))
}

/// The `NT_GNU_BUILD_ID` of a mapped object.
pub fn build_id(ns: &Namespace, id: DsoId) -> Option<Vec<u8>> {
    let d = ns.objs.get(id)?;
    for p in d.phdrs.iter().filter(|p| p.p_type == PT_NOTE) {
        let mut at = d.base.wrapping_add(p.p_vaddr as usize);
        let end = at.checked_add(p.p_memsz as usize)?;
        while at + 12 <= end {
            let namesz = d.img.u32(at)? as usize;
            let descsz = d.img.u32(at + 4)? as usize;
            let ty = d.img.u32(at + 8)?;
            let name_at = at + 12;
            let desc_at = name_at + ((namesz + 3) & !3);
            if ty == NT_GNU_BUILD_ID && d.img.bytes(name_at, namesz)? == b"GNU\0" {
                return d.img.bytes(desc_at, descsz).map(<[u8]>::to_vec);
            }
            at = desc_at + ((descsz + 3) & !3);
        }
    }
    None
}

/// The main thread's `struct pthread`.
pub fn thread_self(l: &Layout, tp: usize) -> usize {
    match l.arch {
        Arch::X86_64 => tp,
        Arch::Aarch64 => tp - l.pthread.size as usize,
    }
}

/// Index of `DT_*` tag `tag` in glibc's `l_info[]`, or `None` for tags glibc
/// does not keep.
pub fn l_info_index(tag: u64, len: u32, dt_num: u32) -> Option<u32> {
    // DT_NUM (see `dt_num`), the processor-specific slots (0 or 4 on
    // x86_64, 6 on aarch64), then version, extra, value and address ranges
    // of 16, 3, 12 and 11 slots.
    let procnum = len.checked_sub(dt_num + 42)?;
    let base_ver = dt_num + procnum;
    let idx = match tag {
        t if t < u64::from(dt_num) => t as u32,
        0x6fff_fff0..=0x6fff_ffff => base_ver + (0x6fff_ffff - tag) as u32,
        0x7fff_fffd..=0x7fff_ffff => base_ver + 16 + (0x7fff_ffff - tag) as u32,
        0x6fff_fd00..=0x6fff_fdff => base_ver + 19 + (0x6fff_fdff - tag) as u32,
        0x6fff_fe00..=0x6fff_feff => base_ver + 31 + (0x6fff_feff - tag) as u32,
        _ => return None,
    };
    (idx < len).then_some(idx)
}

/// glibc's `DT_NUM` for a table: 38 since 2.36 added `DT_RELRSZ`,
/// `DT_RELR` and `DT_RELRENT` (and with them `link_map.l_dt_relr_ref`),
/// 35 before.
pub fn dt_num(l: &Layout) -> u32 {
    if l.link_map.l_dt_relr_ref.is_some() {
        38
    } else {
        35
    }
}

fn alloc_zeroed(n: usize) -> usize {
    alloc::vec![0u8; n].leak().as_mut_ptr() as usize
}

/// What one object's link map points at (its `libname_list` entry, that
/// entry's name, `l_origin`, its own one-entry searchlist), carved in that
/// order from one zeroed allocation, which the object's `link_map_mem`
/// then owns: four allocations were a tenth of a `dlopen` round's
/// allocator work. The libname entry comes first, so the block never
/// starts with a searchlist `set_searchlist` would free.
struct Carve {
    block: Box<[usize]>,
    /// Words handed out.
    used: usize,
}

impl Carve {
    /// Room for pieces of these sizes in bytes (each a whole number of words).
    fn new(pieces: &[usize]) -> Carve {
        let words = pieces.iter().map(|&b| Carve::words(b)).sum();
        Carve { block: alloc::vec![0usize; words].into_boxed_slice(), used: 0 }
    }

    fn words(bytes: usize) -> usize {
        bytes.div_ceil(8).max(1)
    }

    /// The next `bytes` zeroed bytes, word-aligned (one of the sizes given
    /// to `new`, in order).
    fn take(&mut self, bytes: usize) -> usize {
        let at = self.used;
        self.used += Carve::words(bytes);
        self.block[at..self.used].as_mut_ptr() as usize
    }

    /// A copy of `s` with a NUL (a piece of `s.len() + 1` bytes).
    fn cstr(&mut self, s: &[u8]) -> usize {
        let p = self.take(s.len() + 1);
        // SAFETY: `p` has room for `s.len() + 1` zeroed bytes (the NUL stays).
        unsafe { core::ptr::copy_nonoverlapping(s.as_ptr(), p as *mut u8, s.len()) };
        p
    }
}

/// Fills the link map of every object (the public prefix is already set by
/// `debug::link_maps`).
pub fn fill_link_maps(l: &Layout, ns: &mut Namespace, chain: &[DsoId], dlopened: bool) {
    let lm = &l.link_map;
    // The global scope as an `r_scope_elem` list of link maps.
    let main_lm = ns.objs[ns.main].link_map;
    for (serial, &id) in chain.iter().enumerate() {
        let mut keep = core::mem::take(&mut ns.objs[id].link_map_mem);
        // The carved block, the program's scope list, dlopen's searchlist.
        keep.reserve(3);
        {
            let ns = &*ns;
            let d = &ns.objs[id];
            let origin = (!d.path.is_empty()).then(|| crate::link::search::dirname(&d.path));
            let own_searchlist = d.kind != Kind::Main;
            let mut carve = Carve::new(&[
                l.libname_list.size as usize,
                d.aliases.first().map_or(0, |a| a.len() + 1),
                origin.map_or(0, |o| o.len() + 1),
                if own_searchlist { 8 } else { 0 },
            ]);
            // SAFETY: `link_map` is a zeroed allocation of `runtime::link_map_bytes()` of
            // this object (debug::link_maps), larger than any table's size.
            let m = unsafe { Raw::new(d.link_map) };
            m.put(lm.l_real, d.link_map as u64);
            m.put(lm.l_ns, 0);
            let libname = carve.take(l.libname_list.size as usize);
            // SAFETY: just carved, zeroed, with the struct's size.
            let ln = unsafe { Raw::new(libname) };
            let first_name = d.aliases.first().map(|a| carve.cstr(a));
            ln.put(l.libname_list.name, first_name.unwrap_or(d.name.as_ptr() as usize) as u64);
            ln.put(l.libname_list.dont_free, 1);
            m.put(lm.l_libname, libname as u64);
            // l_info[]: pointers into the object's own (untouched) .dynamic
            // (before 2.35, into a relocated copy: see `libpthread::relocated_dynamic`).
            if d.dynamic != 0 {
                let copy = super::libpthread::relocated_dynamic(l, &d.img, d.dynamic, d.dyn_info.count, d.base);
                let entries = d.dyn_info.count.saturating_sub(1);
                // One bounds check for the whole section (parsed, so readable).
                let dynamic = d.img.bytes(d.dynamic, entries * 16).unwrap_or_default();
                let dtn = dt_num(l);
                // A copy the compiler keeps in registers: the writes below
                // go through raw pointers it cannot tell from the table.
                let l_info = lm.l_info;
                let entries_at = copy.unwrap_or(d.dynamic);
                for (k, e) in dynamic.chunks_exact(16).enumerate() {
                    let tag = u64::from_ne_bytes(e[..8].try_into().unwrap_or_default());
                    if let Some(off) = l_info_index(tag, u32::from(l_info.len), dtn).and_then(|i| l_info.at(i)) {
                        let f = super::layout::Field { off, size: 8 };
                        if m.get(f) == 0 {
                            m.put(f, (entries_at + k * 16) as u64);
                        }
                    }
                }
            }
            m.put(lm.l_phdr, d.phdr_addr as u64);
            m.put(lm.l_phnum, d.phdrs.len() as u64);
            m.put(lm.l_entry, d.entry as u64);
            m.put(lm.l_map_start, d.map_start as u64);
            m.put(lm.l_map_end, d.map_end as u64);
            m.put_opt(lm.l_text_end, d.map_end as u64);
            let ty = match d.kind {
                Kind::Main => 0,
                _ if dlopened => 2,
                _ => 1,
            };
            m.put_bits(lm.l_type, ty);
            m.put_bits(lm.l_relocated, 1);
            m.put_bits(lm.l_global, u64::from(ns.scope.contains(&id)));
            m.put_bits_opt(lm.l_main_map, u64::from(d.kind == Kind::Main));
            m.put_bits(lm.l_contiguous, 1);
            // The d_ptr values in .dynamic are unrelocated: libc must add l_addr.
            m.put_bits_opt(lm.l_ld_readonly, 1);
            m.put_bits(lm.l_soname_added, 1);
            m.put(lm.l_flags, d.dyn_info.flags);
            m.put(lm.l_flags_1, d.dyn_info.flags_1);
            m.put(lm.l_serial, serial as u64);
            // `l_loader`: the object whose DT_NEEDED (or dlopen call) brought
            // this one in; dlsym(RTLD_NEXT) climbs it to the scope to search.
            if let Some(by) = d.loaded_by.and_then(|b| ns.objs.get(b)) {
                m.put(lm.l_loader, by.link_map as u64);
            }
            m.put(lm.l_direct_opencount, u64::from(d.kind == Kind::Main));
            if let Some(o) = origin {
                m.put(lm.l_origin, carve.cstr(o) as u64);
            }
            if let Some((s, e)) = d.relro {
                m.put(lm.l_relro_addr, s as u64);
                m.put(lm.l_relro_size, (e - s) as u64);
            }
            if let Some(t) = d.tls {
                m.put(lm.l_tls_initimage, t.image as u64);
                m.put(lm.l_tls_initimage_size, t.filesz as u64);
                m.put(lm.l_tls_blocksize, t.memsz as u64);
                m.put(lm.l_tls_align, t.align as u64);
                m.put(lm.l_tls_firstbyte_offset, t.firstbyte as u64);
                m.put(lm.l_tls_offset, t.offset.unwrap_or(0) as u64);
                m.put(lm.l_tls_modid, t.modid as u64);
                m.put_bits_opt(lm.l_tls_in_slotinfo, 1);
            }
            if let Some(f) = d.file_id {
                // `struct r_file_id { dev_t dev; ino64_t ino; }`.
                let id = m.sub(lm.l_file_id);
                id.put(super::layout::Field { off: 0, size: 8 }, f.0);
                id.put(super::layout::Field { off: 8, size: 8 }, f.1);
            }
            // Hash table pointers, for dladdr.
            let di = &d.dyn_info;
            if di.gnu_hash != 0 {
                if let (Some(nb), Some(symoff), Some(bloom), Some(shift)) =
                    (d.img.u32(di.gnu_hash), d.img.u32(di.gnu_hash + 4), d.img.u32(di.gnu_hash + 8), d.img.u32(di.gnu_hash + 12))
                {
                    let bitmask = di.gnu_hash + 16;
                    let buckets = bitmask + bloom as usize * 8;
                    let chain = buckets + nb as usize * 4;
                    m.put(lm.l_nbuckets, u64::from(nb));
                    m.put(lm.l_gnu_bitmask_idxbits, u64::from(bloom.wrapping_sub(1)));
                    m.put(lm.l_gnu_shift, u64::from(shift));
                    m.put(lm.l_gnu_bitmask, bitmask as u64);
                    m.put(lm.l_gnu_buckets, buckets as u64);
                    m.put(lm.l_gnu_chain_zero, (chain as u64).wrapping_sub(u64::from(symoff) * 4));
                }
            } else if di.hash != 0 {
                if let Some(nb) = d.img.u32(di.hash) {
                    m.put(lm.l_nbuckets, u64::from(nb));
                    m.put(lm.l_buckets, (di.hash + 8) as u64);
                    m.put(lm.l_chain, (di.hash + 8 + nb as usize * 4) as u64);
                }
            }
            m.put(lm.l_versyms, di.versym as u64);
            // Scopes: l_searchlist (the global scope for the program, the
            // object alone otherwise), l_scope = { &program's searchlist, NULL }.
            let searchlist = m.sub(lm.l_searchlist);
            if d.kind == Kind::Main {
                let scope_list: Box<[usize]> = ns.scope.iter().map(|&i| ns.objs[i].link_map).collect();
                searchlist.put(l.r_scope_elem.r_list, scope_list.as_ptr() as u64);
                keep.push(scope_list);
                searchlist.put(l.r_scope_elem.r_nlist, ns.scope.len() as u64);
            } else {
                let own = carve.take(8);
                // SAFETY: one word, just carved.
                unsafe { *(own as *mut usize) = d.link_map };
                searchlist.put(l.r_scope_elem.r_list, own as u64);
                searchlist.put(l.r_scope_elem.r_nlist, 1);
            }
            // SAFETY: the main map's searchlist member, inside its allocation.
            let main_search = unsafe { Raw::new(main_lm) }.at(lm.l_searchlist);
            if let Some(a) = lm.l_scope_mem.at(0) {
                m.put(super::layout::Field { off: a, size: 8 }, main_search as u64);
                m.put(lm.l_scope, (d.link_map + a as usize) as u64);
            }
            m.put(lm.l_scope_max, u64::from(lm.l_scope_mem.len));
            if let Some(a) = lm.l_local_scope.at(0) {
                m.put(super::layout::Field { off: a, size: 8 }, m.at(lm.l_searchlist) as u64);
            }
            keep.push(carve.block);
        }
        ns.objs[id].link_map_mem = keep;
    }
}

/// Fills `_rtld_global` and `_rtld_global_ro` and the main thread's
/// `struct pthread`. Runs before relocation: IFUNC resolvers read it.
#[allow(clippy::too_many_arguments, reason = "each argument is one fact start-up learnt; a struct would only rename them")]
pub fn fill_globals(
    l: &'static Layout,
    ns: &Namespace,
    chain: &[DsoId],
    p: &Process,
    tls: &StaticLayout,
    tb: &ThreadBlock,
    max_modid: usize,
    rseq_tls: Option<usize>,
) -> Result<(), &'static str> {
    if l.rtld_global.size as usize > Block::<8192>::SIZE
        || l.rtld_global_ro.size as usize > Block::<4096>::SIZE
        || l.link_map.size as usize > super::runtime::link_map_bytes()
    {
        return Err("glibc structures larger than ld-cah reserves");
    }
    // SAFETY: both blocks are at least as large as the table's structs (checked).
    let (g, ro) = unsafe { (Raw::new(_rtld_global.addr()), Raw::new(_rtld_global_ro.addr())) };
    let rg = &l.rtld_global;
    let rr = &l.rtld_global_ro;
    let main_lm = ns.objs[ns.main].link_map;

    // Namespace 0.
    let ns0 = g.sub(super::layout::Field { off: rg._dl_ns.off, size: l.link_namespaces.size });
    ns0.put(l.link_namespaces._ns_loaded, main_lm as u64);
    ns0.put(l.link_namespaces._ns_nloaded, chain.len() as u64);
    // SAFETY: main link map, allocated by debug::link_maps.
    let main_search = unsafe { Raw::new(main_lm) }.at(l.link_map.l_searchlist);
    ns0.put(l.link_namespaces._ns_main_searchlist, main_search as u64);
    if let Some(libc) = find_libc(ns) {
        ns0.put_opt(l.link_namespaces.libc_map, ns.objs[libc].link_map as u64);
    }
    g.put(rg._dl_nns, 1);
    // The loader locks are recursive pthread mutexes (libc locks them).
    for lock in [Some(rg._dl_load_lock), Some(rg._dl_load_write_lock), rg._dl_load_tls_lock].into_iter().flatten() {
        g.sub(lock).put(l.pthread_mutex.__kind, 1);
    }
    g.put(rg._dl_load_adds, chain.len() as u64);
    let stack_flags = ns.objs[ns.main].stack_flags();
    g.put_opt(rg._dl_stack_flags, u64::from(stack_flags));
    // 2.43 keeps the `mmap` protection of thread stacks instead of the
    // segment flags: read/write, and exec if PT_GNU_STACK asks for it.
    let exec = if stack_flags & object::elf::PF_X != 0 { crate::sys::PROT_EXEC } else { 0 };
    g.put_opt(rg._dl_stack_prot_flags, (crate::sys::PROT_READ | crate::sys::PROT_WRITE | exec) as u64);
    let dirs = ALL_DIRS.addr() as u64;
    g.put(rg._dl_all_dirs, dirs);

    // TLS bookkeeping: slot info list with every initial module.
    let nmods = max_modid.saturating_sub(1);
    let len = nmods + 1 + 62;
    let si = &l.dtv_slotinfo;
    let list = alloc_zeroed(l.dtv_slotinfo_list.slotinfo.off as usize + len * si.size as usize);
    // SAFETY: allocated with room for `len` entries.
    let list_raw = unsafe { Raw::new(list) };
    list_raw.put(l.dtv_slotinfo_list.len, len as u64);
    for d in &ns.objs {
        if let Some(t) = d.tls {
            if t.modid == 0 {
                continue;
            }
            let e = list + l.dtv_slotinfo_list.slotinfo.off as usize + t.modid * si.size as usize;
            // SAFETY: modid <= nmods < len.
            let er = unsafe { Raw::new(e) };
            er.put(si.gen, 1);
            er.put(si.map, d.link_map as u64);
        }
    }
    g.put(rg._dl_tls_dtv_slotinfo_list, list as u64);
    g.put(rg._dl_tls_max_dtv_idx, nmods as u64);
    g.put(rg._dl_tls_static_nelem, nmods as u64);
    g.put(rg._dl_tls_static_used, tls.used as u64);
    g.put(rg._dl_tls_static_optional, 512);
    g.put(rg._dl_initial_dtv, tb.dtv as u64);
    g.put(rg._dl_tls_generation, 1);

    // Thread lists: empty circular heads, the main thread on `stack_user`.
    let lt = &l.list_t;
    for head in [rg._dl_stack_used, rg._dl_stack_user, rg._dl_stack_cache].into_iter().flatten() {
        let h = g.sub(head);
        h.put(lt.next, h.addr() as u64);
        h.put(lt.prev, h.addr() as u64);
    }
    // SAFETY: the TLS allocation holds the whole struct pthread there.
    let pd = unsafe { Raw::new(thread_self(l, tb.tp)) };
    let pt = &l.pthread;
    // Before 2.34 the lists are libpthread's, which links the main thread itself.
    if let Some(user) = rg._dl_stack_user.map(|f| g.sub(f)) {
        let node = pd.sub(pt.list);
        node.put(lt.next, user.addr() as u64);
        node.put(lt.prev, user.addr() as u64);
        user.put(lt.next, node.addr() as u64);
        user.put(lt.prev, node.addr() as u64);
    }
    super::libpthread::fill_globals(l, g, tls);
    // SAFETY: `tid` is a field of the main thread's struct pthread, which lives forever.
    let tid = unsafe { crate::sys::set_tid_address(pd.at(pt.tid)) };
    pd.put(pt.tid, tid as u64);
    let robust = pd.sub(pt.robust_head);
    pd.put(pt.robust_prev, robust.addr() as u64);
    robust.put(l.robust_list_head.list, robust.addr() as u64);
    // futex_offset = offsetof(__lock) - offsetof(__list.__next): 0 - 32 on
    // both arches (the list node follows `__kind`/`__spins`).
    robust.put(l.robust_list_head.futex_offset, (-32i64) as u64);
    // SAFETY: the robust list head lives in the main thread's struct pthread.
    let _ = unsafe { crate::sys::set_robust_list(robust.addr(), l.robust_list_head.size as usize) };
    if let Some(first) = pt.specific_1stblock.at(0) {
        if let Some(s0) = pt.specific.at(0) {
            pd.put(super::layout::Field { off: s0, size: 8 }, (pd.addr() + first as usize) as u64);
        }
    }
    pd.put_opt(pt.user_stack, 1);
    let e = &l.enumerators;
    if let (Some(f), Some(v)) = (pt.stack_mode, e.allocate_guard_user) {
        pd.put(f, v as u64);
    }
    if let (Some(f), Some(v)) = (pt.joinstate, e.thread_state_joinable) {
        pd.put(f, v as u64);
    }
    pd.put(pt.report_events, u64::from(__nptl_initial_report_events.load(Ordering::Relaxed)));
    pd.put(pt.stackblock_size, p.sp as u64);
    // x86_64: header.self (the TCB fields at the thread pointer are set by arch).
    // rseq: register the area in struct pthread when the build has one.
    __rseq_size.store(0, Ordering::Relaxed);
    let sig: u32 = if l.arch == Arch::X86_64 { 0x5305_3053 } else { 0xd428_bc00 };
    // `glibc.pthread.rseq=0`: no registration (cpu_id -2, __rseq_size 0,
    // __rseq_offset still set), so libc's threads do not register either.
    let rseq = |area: usize, len: usize| -> Result<(), crate::sys::Errno> {
        if super::tunables::value("glibc.pthread.rseq") == Some(0) {
            return Err(crate::sys::Errno(0));
        }
        // SAFETY: the caller's area lives as long as the main thread.
        unsafe { crate::sys::rseq(area, len, sig) }
    };
    if let Some(off) = rseq_tls {
        // 2.41: a 32-byte `struct rseq` in static TLS; cpu_id at +4.
        let area = crate::tls::block_address(
            if l.arch == Arch::X86_64 { crate::arch::TlsVariant::Two } else { crate::arch::TlsVariant::One },
            tb.tp,
            off,
        );
        __rseq_offset.store(area as isize - tb.tp as isize, Ordering::Relaxed);
        // SAFETY: the reserved area lies inside the main thread's TLS block.
        let a = unsafe { Raw::new(area) };
        let cpu_id = super::layout::Field { off: 4, size: 4 };
        a.put(cpu_id, (-1i32) as u32 as u64);
        match rseq(area, 32) {
            // 2.41 reports the kernel's rseq feature size (AT_RSEQ_FEATURE_SIZE),
            // at least the original 20 bytes.
            Ok(()) => __rseq_size.store(p.rseq_feature_size.max(20) as u32, Ordering::Relaxed),
            Err(_) => a.put(cpu_id, (-2i32) as u32 as u64),
        }
    }
    if let (Some(area), Some(cpu_id)) = (pt.rseq_area, pt.rseq_area_cpu_id) {
        __rseq_offset.store(pd.at(area) as isize - tb.tp as isize, Ordering::Relaxed);
        pd.put(cpu_id, (-1i32) as u32 as u64);
        match rseq(pd.at(area), (area.size as usize).max(32)) {
            // Debian's 2.36 reports 20 (the original ABI size) with a 32-byte area.
            Ok(()) => __rseq_size.store(20, Ordering::Relaxed),
            Err(_) => pd.put(cpu_id, (-2i32) as u32 as u64),
        }
    }

    // _rtld_global_ro.
    ro.put(rr._dl_debug_fd, 2);
    ro.put(rr._dl_pagesize, p.page as u64);
    ro.put_opt(rr._dl_minsigstacksize, p.minsigstksz as u64);
    ro.put(rr._dl_clktck, p.clktck as u64);
    if p.platform != 0 {
        // SAFETY: AT_PLATFORM points at a NUL-terminated string on the stack.
        let n = unsafe { crate::cstr::strlen(p.platform) };
        ro.put(rr._dl_platform, p.platform as u64);
        ro.put(rr._dl_platformlen, n as u64);
    }
    let (hwcap, fpu) = match l.arch {
        // glibc reports HWCAP_X86_64 on x86_64, not the kernel's bits.
        Arch::X86_64 => (2, 0x37f),
        Arch::Aarch64 => (p.hwcap, 0),
    };
    ro.put(rr._dl_hwcap, hwcap);
    ro.put(rr._dl_hwcap2, p.hwcap2);
    ro.put(rr._dl_fpu_control, fpu);
    ro.put(rr._dl_auxv, p.auxv as u64);
    let init_search = ro.sub(rr._dl_initial_searchlist);
    // SAFETY: main link map's searchlist.
    let ms = unsafe { Raw::new(main_search) };
    init_search.put(l.r_scope_elem.r_list, ms.get(l.r_scope_elem.r_list));
    init_search.put(l.r_scope_elem.r_nlist, ms.get(l.r_scope_elem.r_nlist));
    ro.put_opt(rr._dl_tls_static_size, tls.size as u64);
    ro.put_opt(rr._dl_tls_static_align, tls.align as u64);
    ro.put(rr._dl_tls_static_surplus, crate::tls::STATIC_SURPLUS as u64);
    ro.put(rr._dl_init_all_dirs, dirs);
    ro.put(rr._dl_sysinfo_dso, p.sysinfo_ehdr as u64);
    // The vDSO's link map: libc's time/gettimeofday IFUNCs look their
    // vDSO implementations up in it (through `_dl_lookup_symbol_x`).
    if let Some(v) = ns.vdso {
        ro.put(rr._dl_sysinfo_map, ns.objs[v].link_map as u64);
    }
    if let Some(v) = ns.vdso {
        let vd = &ns.objs[v];
        let vsym = |name: &[u8]| -> u64 {
            let q = crate::elf::symbols::Query::new(name);
            match crate::elf::symbols::lookup(&vd.img, &vd.dyn_info, &vd.versions, &q, None, false) {
                crate::elf::symbols::Found::Match(_, s) | crate::elf::symbols::Found::Fallback(_, s) => {
                    vd.base.wrapping_add(s.st_value as usize) as u64
                }
                crate::elf::symbols::Found::None => 0,
            }
        };
        let (cg, gtod, getres) = match l.arch {
            Arch::X86_64 => (&b"__vdso_clock_gettime"[..], &b"__vdso_gettimeofday"[..], &b"__vdso_clock_getres"[..]),
            Arch::Aarch64 => (&b"__kernel_clock_gettime"[..], &b"__kernel_gettimeofday"[..], &b"__kernel_clock_getres"[..]),
        };
        ro.put(rr._dl_vdso_clock_gettime64, vsym(cg));
        ro.put(rr._dl_vdso_gettimeofday, vsym(gtod));
        ro.put(rr._dl_vdso_clock_getres_time64, vsym(getres));
        ro.put_opt(rr._dl_vdso_time, vsym(b"__vdso_time"));
        ro.put_opt(rr._dl_vdso_getcpu, vsym(b"__vdso_getcpu"));
    }
    super::cpu::fill(l, ro, p.hwcap, p.hwcap2);

    __libc_enable_secure.store(i32::from(p.secure), Ordering::Relaxed);
    __libc_stack_end.store(p.sp, Ordering::Relaxed);
    _dl_argv.store(p.argv, Ordering::Relaxed);
    Ok(())
}

/// Accounts for objects added by `dlopen` in namespace 0's counters.
pub fn count_added(l: &Layout, added: usize) {
    // SAFETY: the exported block is larger than the struct (checked at start-up).
    let g = unsafe { Raw::new(_rtld_global.addr()) };
    let ns0 = g.sub(super::layout::Field { off: l.rtld_global._dl_ns.off, size: l.link_namespaces.size });
    let n = ns0.get(l.link_namespaces._ns_nloaded);
    ns0.put(l.link_namespaces._ns_nloaded, n + added as u64);
    let a = g.get(l.rtld_global._dl_load_adds);
    g.put(l.rtld_global._dl_load_adds, a + added as u64);
    let gen = g.get(l.rtld_global._dl_tls_generation);
    g.put(l.rtld_global._dl_tls_generation, gen);
}

/// Publishes a TLS module id that changed hands at `gen` (taken by the
/// object whose link map is `lm`, or given back with `lm` 0): its slot
/// info, as debuggers' `libthread_db` reads it, and the process's
/// generation and highest id. An id past the list start-up made keeps
/// its slot info unpublished (the list has room for 62 more ids, and ids
/// are reused).
pub fn publish_tls_slot(l: &Layout, modid: usize, gen: usize, lm: usize, max_modid: usize) {
    // SAFETY: the exported block is larger than the struct (checked at start-up).
    let g = unsafe { Raw::new(_rtld_global.addr()) };
    let rg = &l.rtld_global;
    g.put(rg._dl_tls_generation, gen as u64);
    g.put(rg._dl_tls_max_dtv_idx, max_modid as u64);
    let list = g.get(rg._dl_tls_dtv_slotinfo_list) as usize;
    if list == 0 {
        return;
    }
    // SAFETY: the list start-up allocated, with `len` entries.
    let lr = unsafe { Raw::new(list) };
    if modid >= lr.get(l.dtv_slotinfo_list.len) as usize {
        return;
    }
    let si = &l.dtv_slotinfo;
    // SAFETY: `modid < len`, inside the allocation.
    let e = unsafe { Raw::new(list + l.dtv_slotinfo_list.slotinfo.off as usize + modid * si.size as usize) };
    e.put(si.gen, gen as u64);
    e.put(si.map, lm as u64);
}

/// Every thread's pointer, from the thread lists libc keeps in `_rtld_global`.
pub fn thread_pointers(l: &Layout) -> Vec<usize> {
    // SAFETY: as above.
    let g = unsafe { Raw::new(_rtld_global.addr()) };
    let mut out = Vec::new();
    if l.rtld_global._dl_stack_user.is_none() {
        // Before 2.34 the lists are libpthread's: the calling thread only
        // (see `libpthread` for the others).
        out.push(crate::arch::native::thread_pointer_value());
        return out;
    }
    for head in [l.rtld_global._dl_stack_user, l.rtld_global._dl_stack_used].into_iter().flatten() {
        let h = g.at(head);
        // SAFETY: libc keeps these circular lists of `struct pthread.list` nodes.
        let mut node = unsafe { Raw::new(h) }.get(l.list_t.next) as usize;
        let mut guard = 0;
        while node != h && node != 0 && guard < 1 << 16 {
            let pd = node - l.pthread.list.off as usize;
            out.push(match l.arch {
                Arch::X86_64 => pd,
                Arch::Aarch64 => pd + l.pthread.size as usize,
            });
            // SAFETY: as above.
            node = unsafe { Raw::new(node) }.get(l.list_t.next) as usize;
            guard += 1;
        }
    }
    out
}

/// Points a link map's `l_searchlist` at a copy of `list` (link maps),
/// owned by `keep`, the object's `link_map_mem`.
pub fn set_searchlist(l: &Layout, lm: usize, list: &[usize], keep: &mut Vec<Box<[usize]>>) {
    // SAFETY: `lm` is one of our link maps (`runtime::link_map_bytes()`, at
    // least `l.link_map.size`, checked by `fill_globals`).
    let s = unsafe { Raw::new(lm) }.sub(l.link_map.l_searchlist);
    let old = s.get(l.r_scope_elem.r_list) as usize;
    let arr: Box<[usize]> = list.into();
    s.put(l.r_scope_elem.r_list, arr.as_ptr() as u64);
    s.put(l.r_scope_elem.r_nlist, arr.len() as u64);
    // The list replaced is freed (a program that opens and closes
    // RTLD_GLOBAL libraries in a loop changed the global scope's list, and
    // leaked the old one, twice a round). Nothing reads it any more: the
    // one reader of searchlists is `lookup_symbol_x`, under the loader
    // lock the caller holds.
    keep.retain(|k| k.as_ptr() as usize != old || k.is_empty());
    keep.push(arr);
}

/// Accounts for an object `dlclose` unmapped.
pub fn count_removed(l: &Layout, removed: usize) {
    // SAFETY: the exported block is larger than the struct (checked at start-up).
    let g = unsafe { Raw::new(_rtld_global.addr()) };
    let ns0 = g.sub(super::layout::Field { off: l.rtld_global._dl_ns.off, size: l.link_namespaces.size });
    let n = ns0.get(l.link_namespaces._ns_nloaded);
    ns0.put(l.link_namespaces._ns_nloaded, n.saturating_sub(removed as u64));
}
