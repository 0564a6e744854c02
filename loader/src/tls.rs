//! Thread-local storage: module ids, the static TLS layout, the main
//! thread's TLS block, TCB and DTV, and `__tls_get_addr`.
//!
//! The DTV uses glibc's format (libc reads and frees it): an array of
//! 16-byte entries `{ pointer, to_free }`; the TCB's `dtv` field points at
//! entry 1 so that `dtv[-1]` holds the capacity and `dtv[0]` the
//! generation.
#![allow(unsafe_code)]

use alloc::vec::Vec;

use crate::arch::TlsVariant;
use crate::elf::Phdr;

/// One object's `PT_TLS`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Module {
    pub modid: usize,
    /// Run-time address of the initialisation image.
    pub image: usize,
    pub filesz: usize,
    pub memsz: usize,
    pub align: usize,
    /// `p_vaddr` modulo the alignment: where in its first aligned unit the
    /// block must start.
    pub firstbyte: usize,
    /// Offset from the thread pointer, once placed in static TLS
    /// (subtracted on variant II, added on variant I).
    pub offset: Option<usize>,
}

impl Module {
    pub fn from_phdr(p: &Phdr, base: usize) -> Result<Option<Module>, &'static str> {
        if p.p_memsz == 0 {
            return Ok(None);
        }
        let align = p.p_align.max(1) as usize;
        if !align.is_power_of_two() || p.p_filesz > p.p_memsz || p.p_memsz > 1 << 30 {
            return Err("bad PT_TLS segment");
        }
        Ok(Some(Module {
            modid: 0,
            image: base.wrapping_add(p.p_vaddr as usize),
            filesz: p.p_filesz as usize,
            memsz: p.p_memsz as usize,
            align,
            firstbyte: (p.p_vaddr as usize) & (align - 1),
            offset: None,
        }))
    }
}

/// Static TLS surplus for objects `dlopen`ed later with initial-exec TLS
/// (glibc's default with its default tunables).
pub const STATIC_SURPLUS: usize = 1664;
/// Spare DTV entries beyond the initial modules (glibc: `DTV_SURPLUS`).
pub const DTV_SURPLUS: usize = 14;

/// The static TLS layout of the initial modules.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StaticLayout {
    /// Bytes used by the modules themselves.
    pub used: usize,
    /// `GLRO(dl_tls_static_size)`.
    pub size: usize,
    /// `GLRO(dl_tls_static_align)`.
    pub align: usize,
}

fn round_up(x: usize, a: usize) -> usize {
    (x + a - 1) & !(a - 1)
}

/// Places each module, in order, and returns the layout. `tcb_size` is
/// what variant II counts into the static size (glibc's `TLS_TCB_SIZE`).
pub fn layout(variant: TlsVariant, modules: &mut [&mut Module], tcb_size: usize) -> StaticLayout {
    let (mut used, mut max_align) = match variant {
        TlsVariant::Two => (0, 64),
        // Blocks start after the 16-byte TCB.
        TlsVariant::One => (16, 32),
    };
    for m in modules.iter_mut() {
        let (off, end) = place(variant, used, m.memsz, m.align, m.firstbyte);
        m.offset = Some(off);
        used = end;
        max_align = max_align.max(m.align);
    }
    let mut l = StaticLayout { used, size: 0, align: max_align };
    l.size = static_size(variant, &l, tcb_size);
    l
}

/// Where a block of `memsz` bytes, aligned to `align` with its first byte
/// at `firstbyte` inside an aligned unit, goes after `used` bytes of static
/// TLS: its offset from the thread pointer and the new `used` (glibc's
/// `_dl_determine_tlsoffset` rules for each variant).
pub fn place(variant: TlsVariant, used: usize, memsz: usize, align: usize, firstbyte: usize) -> (usize, usize) {
    match variant {
        TlsVariant::Two => {
            let first = firstbyte.wrapping_neg() & (align - 1);
            let off = round_up(used + memsz - first, align) + first;
            (off, off)
        }
        TlsVariant::One => {
            let mut off = round_up(used, align);
            if off - used < firstbyte {
                off += align;
            }
            (off - firstbyte, off + memsz - firstbyte)
        }
    }
}

/// `GLRO(dl_tls_static_size)` for a layout: the blocks plus the surplus,
/// plus (variant II) the TCB.
fn static_size(variant: TlsVariant, l: &StaticLayout, tcb_size: usize) -> usize {
    match variant {
        TlsVariant::Two => round_up(l.used + STATIC_SURPLUS, l.align) + tcb_size,
        TlsVariant::One => round_up(l.used + STATIC_SURPLUS, 32),
    }
}

/// Reserves `size` bytes aligned to `align` after the modules (glibc 2.41
/// keeps the rseq area there) and returns its offset from the thread
/// pointer (subtracted on variant II, added on variant I).
pub fn reserve(variant: TlsVariant, l: &mut StaticLayout, size: usize, align: usize, tcb_size: usize) -> usize {
    l.align = l.align.max(align);
    let (off, end) = place(variant, l.used, size, align, 0);
    l.used = end;
    l.size = static_size(variant, l, tcb_size);
    off
}

/// The address of a module's block for the thread whose pointer is `tp`.
pub fn block_address(variant: TlsVariant, tp: usize, offset: usize) -> usize {
    match variant {
        TlsVariant::Two => tp - offset,
        TlsVariant::One => tp + offset,
    }
}

/// The value a `TPOFF` relocation stores for `value` in a module at `offset`.
pub fn tp_offset(variant: TlsVariant, offset: usize, value: u64) -> u64 {
    match variant {
        TlsVariant::Two => value.wrapping_sub(offset as u64),
        TlsVariant::One => value.wrapping_add(offset as u64),
    }
}

/// A DTV entry (glibc's `dtv_t` pointer form).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DtvEntry {
    pub val: usize,
    pub to_free: usize,
}

/// `TLS_DTV_UNALLOCATED`.
pub const UNALLOCATED: usize = usize::MAX;

/// The main thread's TLS memory.
#[derive(Debug, Clone, Copy)]
pub struct ThreadBlock {
    pub tp: usize,
    /// The TCB's `dtv` value (`&entries[1]`).
    pub dtv: usize,
    /// Start of the allocation (x86_64: lowest address of the TLS blocks;
    /// aarch64: the pre-TCB `struct pthread`).
    pub alloc: usize,
}

/// Allocates the main thread's static TLS, TCB and DTV. `tcb_size` is the
/// size of what lies at the thread pointer (x86_64: `struct pthread`),
/// `pre_tcb` what lies below it (aarch64: `struct pthread`).
pub fn allocate(
    variant: TlsVariant,
    layout: &StaticLayout,
    tcb_size: usize,
    pre_tcb: usize,
    max_modid: usize,
) -> Result<ThreadBlock, crate::sys::Errno> {
    let align = layout.align.max(16);
    let (size, tp_of) = match variant {
        TlsVariant::Two => (layout.size + align + 64, 0),
        TlsVariant::One => (pre_tcb + layout.size + 2 * align, 1),
    };
    let mem = crate::sys::mmap_anon(round_up(size, 4096))?;
    let tp = if tp_of == 0 {
        // The TCB sits at the top of the block, aligned; TLS blocks below.
        round_up(mem + layout.size - tcb_size, align)
    } else {
        round_up(mem + pre_tcb, align)
    };
    let n = max_modid + DTV_SURPLUS;
    let mut dtv: Vec<DtvEntry> = Vec::with_capacity(n + 2);
    dtv.push(DtvEntry { val: n, to_free: 0 });
    dtv.push(DtvEntry { val: 1, to_free: 0 });
    for _ in 0..n {
        dtv.push(DtvEntry { val: UNALLOCATED, to_free: 0 });
    }
    let dtv_ptr = dtv.leak().as_mut_ptr() as usize + core::mem::size_of::<DtvEntry>();
    Ok(ThreadBlock { tp, dtv: dtv_ptr, alloc: mem })
}

/// Points the DTV entry of `m` at its block and copies the init image.
///
/// # Safety
/// `tb` was allocated by [`allocate`] for a layout that placed `m`, and the
/// module's image is mapped readable.
pub unsafe fn init_module(variant: TlsVariant, tb: &ThreadBlock, m: &Module) {
    let Some(offset) = m.offset else { return };
    let block = block_address(variant, tb.tp, offset);
    // SAFETY: the block lies inside the allocation (layout places it
    // there); the image is the module's mapped `.tdata`.
    unsafe {
        core::ptr::copy_nonoverlapping(m.image as *const u8, block as *mut u8, m.filesz);
        core::ptr::write_bytes((block + m.filesz) as *mut u8, 0, m.memsz - m.filesz);
        let entry = (tb.dtv as *mut DtvEntry).add(m.modid);
        (*entry).val = block;
        (*entry).to_free = 0;
    }
}

/// `tls_index` as compilers pass it to `__tls_get_addr`.
#[repr(C)]
pub struct TlsIndex {
    pub module: usize,
    pub offset: usize,
}

/// The address of `(module, offset)` for the calling thread.
///
/// # Safety
/// The thread pointer is set up and `ti` names a module of its DTV.
pub unsafe fn get_addr(dtv: usize, ti: &TlsIndex) -> usize {
    // SAFETY: the DTV has an entry for every module id handed out.
    let e = unsafe { &*(dtv as *const DtvEntry).add(ti.module) };
    e.val.wrapping_add(ti.offset)
}

/// The process's TLS modules and what is left of its static TLS: the one
/// owner of TLS bookkeeping. Start-up fills it once the static layout is
/// known; `dlopen` places new modules; `dlclose` forgets them. Readers are
/// `__tls_get_addr`'s slow path and libc's thread creation
/// (`_dl_allocate_tls_init`), which may run on any thread.
pub struct Registry {
    modules: Vec<Module>,
    /// Bytes of static TLS in use (initial modules and later placements).
    used: usize,
    /// End of the static area usable by placements (used + surplus at start).
    limit: usize,
    next_modid: usize,
    /// The highest module id handed out, for the size of new DTVs.
    max_modid: usize,
    /// `GLRO(dl_tls_static_size)` and `_align`, for libc's queries.
    static_layout: StaticLayout,
}

static REGISTRY: spin::RwLock<Option<Registry>> = spin::RwLock::new(None);

/// This process's TLS variant.
pub fn variant() -> TlsVariant {
    use crate::arch::ArchInfo as _;
    crate::arch::native::Native::TLS_VARIANT
}

/// Start-up: the initial modules as laid out, and the next free module id.
pub fn register_initial(layout: &StaticLayout, modules: Vec<Module>, next_modid: usize) {
    let max_modid = modules.iter().map(|m| m.modid).max().unwrap_or(0);
    *REGISTRY.write() =
        Some(Registry { modules, used: layout.used, limit: layout.used + STATIC_SURPLUS, next_modid, max_modid, static_layout: *layout });
}

/// `dlopen`: gives `m` a module id and a place, in the static surplus when
/// it has room (every TLS model works and access is fastest), otherwise in
/// dynamic TLS, allocated per thread on first use (initial-exec code in
/// such an object is then refused at relocation, as glibc refuses it).
pub fn register_loaded(m: &mut Module) {
    let mut g = REGISTRY.write();
    let Some(r) = g.as_mut() else { return };
    let (off, end) = place(variant(), r.used, m.memsz, m.align, m.firstbyte);
    if end <= r.limit {
        r.used = end;
        m.offset = Some(off);
    } else {
        m.offset = None;
    }
    m.modid = r.next_modid;
    r.next_modid += 1;
    r.max_modid = r.max_modid.max(m.modid);
    r.modules.push(*m);
}

/// `dlclose`: new threads must not copy an image that is about to disappear.
pub fn forget(modid: usize) {
    if let Some(r) = REGISTRY.write().as_mut() {
        r.modules.retain(|m| m.modid != modid);
    }
}

/// The highest module id handed out so far.
pub fn max_modid() -> usize {
    REGISTRY.read().as_ref().map_or(0, |r| r.max_modid)
}

/// The static TLS layout start-up chose.
pub fn static_layout() -> StaticLayout {
    REGISTRY.read().as_ref().map_or_else(StaticLayout::default, |r| r.static_layout)
}

/// Calls `f` on every registered module.
pub fn for_each_module(mut f: impl FnMut(&Module)) {
    if let Some(r) = REGISTRY.read().as_ref() {
        r.modules.iter().for_each(&mut f);
    }
}

fn module(modid: usize) -> Option<Module> {
    REGISTRY.read().as_ref()?.modules.iter().copied().find(|m| m.modid == modid)
}

/// `__tls_get_addr` for the calling thread: the fast path reads the DTV;
/// the slow path grows the DTV of a thread created before a `dlopen`
/// added modules, and allocates a dynamic module's block on first use.
///
/// # Safety
/// The thread pointer and DTV are set up, and `ti` names a module.
pub unsafe fn get_addr_current(ti: &TlsIndex) -> usize {
    let tp = crate::arch::native::thread_pointer_value();
    let mut dtv = crate::arch::native::dtv_of(tp);
    // SAFETY: dtv[-1] is the capacity (see the module comment).
    unsafe {
        let cap = (*(dtv as *const DtvEntry).sub(1)).val;
        if ti.module <= cap {
            let v = (*(dtv as *const DtvEntry).add(ti.module)).val;
            if v != UNALLOCATED {
                return v.wrapping_add(ti.offset);
            }
        } else {
            dtv = grow_dtv(tp, dtv, cap, ti.module);
        }
    }
    let Some(m) = module(ti.module) else {
        crate::diag::fatal(&crate::err!("ld-cah.so", "TLS access to unknown module {}", ti.module));
    };
    let block = match m.offset {
        // Placed in static TLS after this thread was set up: its block is
        // there, but was never initialised for this thread.
        Some(off) => block_address(variant(), tp, off),
        None => {
            let mem = alloc::vec![0u8; m.memsz + m.align].leak();
            let start = mem.as_mut_ptr() as usize;
            let first = (start + m.align - 1) & !(m.align - 1);
            // Honour the image's offset inside its first aligned unit.
            first + m.firstbyte
        }
    };
    // SAFETY: `block` has room for `memsz` bytes (allocated above, or the
    // module's static slot); the image is the module's mapped .tdata.
    unsafe {
        core::ptr::copy_nonoverlapping(m.image as *const u8, block as *mut u8, m.filesz);
        core::ptr::write_bytes((block + m.filesz) as *mut u8, 0, m.memsz - m.filesz);
        let e = (dtv as *mut DtvEntry).add(m.modid);
        (*e).val = block;
        (*e).to_free = 0;
    }
    block.wrapping_add(ti.offset)
}

/// Replaces a thread's DTV by one with room for `need` modules.
///
/// # Safety
/// `dtv` is the live DTV of the thread whose pointer is `tp`, with `cap` entries.
unsafe fn grow_dtv(tp: usize, dtv: usize, cap: usize, need: usize) -> usize {
    let n = need + DTV_SURPLUS;
    let mut v: alloc::vec::Vec<DtvEntry> = alloc::vec::Vec::with_capacity(n + 2);
    v.push(DtvEntry { val: n, to_free: 0 });
    // SAFETY: copying dtv[0..=cap] of the old array.
    unsafe {
        for i in 0..=cap {
            v.push(*(dtv as *const DtvEntry).add(i));
        }
    }
    while v.len() < n + 2 {
        v.push(DtvEntry { val: UNALLOCATED, to_free: 0 });
    }
    let new = v.leak().as_mut_ptr() as usize + core::mem::size_of::<DtvEntry>();
    // SAFETY: the thread's own TCB (caller); the old DTV is left allocated,
    // since libc may still hold it (glibc frees only DTVs it reallocated).
    unsafe { crate::arch::native::set_dtv_of(tp, new) };
    new
}

/// Called by the dynamic TLSDESC resolver (assembly in `arch`): the
/// variable's address minus the thread pointer.
///
/// # Safety
/// `ti` is the argument of a dynamic TLS descriptor: a leaked `TlsIndex`.
pub unsafe extern "C" fn tlsdesc_dynamic_slow(ti: *const TlsIndex) -> usize {
    // SAFETY: the descriptor's argument is a leaked `TlsIndex` (reloc).
    let addr = unsafe { get_addr_current(&*ti) };
    addr.wrapping_sub(crate::arch::native::thread_pointer_value())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(memsz: usize, align: usize, vaddr: usize) -> Module {
        Module { modid: 1, image: 0, filesz: 0, memsz, align, firstbyte: vaddr & (align - 1), offset: None }
    }

    #[test]
    fn executable_block_lands_where_the_static_linker_assumed() {
        // x86_64: the executable's block ends at the thread pointer.
        let mut m = module(20, 16, 0x3000);
        let l = layout(TlsVariant::Two, &mut [&mut m], 2368);
        assert_eq!(m.offset, Some(32), "roundup(20, 16)");
        assert_eq!(l.size, round_up(32 + STATIC_SURPLUS, 64) + 2368);
        // aarch64: after the 16-byte TCB, aligned to the block's alignment.
        let mut m = module(20, 64, 0x3000);
        layout(TlsVariant::One, &mut [&mut m], 0);
        assert_eq!(m.offset, Some(64));
        let mut m = module(20, 8, 0x3000);
        layout(TlsVariant::One, &mut [&mut m], 0);
        assert_eq!(m.offset, Some(16));
    }

    #[test]
    fn glibc_observed_libc_offset() {
        // Observed under glibc's loader on x86_64: libc alone gets
        // l_tls_offset 144 (its PT_TLS is 0x90 bytes, aligned to 16) and a
        // static TLS size of 4224.
        let mut m = module(0x90, 16, 0x1d7000);
        let l = layout(TlsVariant::Two, &mut [&mut m], 2368);
        assert_eq!(m.offset, Some(144));
        assert_eq!(l.size, 4224);
        assert_eq!(l.align, 64);
    }

    #[test]
    fn later_blocks_do_not_overlap_earlier_ones() {
        let mut a = module(100, 8, 0);
        let mut b = module(7, 32, 0x20);
        let mut c = module(1, 1, 0);
        layout(TlsVariant::Two, &mut [&mut a, &mut b, &mut c], 0);
        let (oa, ob, oc) = (a.offset.unwrap(), b.offset.unwrap(), c.offset.unwrap());
        // Variant II: block i occupies [tp - off, tp - off + memsz).
        assert!(ob >= oa + 7 && oc > ob);
        assert_eq!(ob % 32, 0);
    }
}
