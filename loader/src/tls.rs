//! Thread-local storage: module ids, the static TLS layout, the main
//! thread's TLS block, TCB and DTV, and `__tls_get_addr`.
//!
//! The DTV uses glibc's format (libc reads and frees it): an array of
//! 16-byte entries `{ pointer, to_free }`; the TCB's `dtv` field points at
//! entry 1 so that `dtv[-1]` holds the capacity and `dtv[0]` the
//! generation.
//!
//! Module ids are reused after `dlclose`, with glibc's generations: every
//! `dlopen` or `dlclose` that adds or removes a module bumps the process's
//! generation and stamps the module's slot with it, and a thread whose DTV
//! is older (its `dtv[0]`) drops the entries of every slot stamped since
//! (freeing its dynamic blocks) before its next access, so a reused id
//! never reaches the old module's memory.
#![allow(unsafe_code)]

use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};

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
    dtv.push(DtvEntry { val: generation(), to_free: 0 });
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
    if m.offset.is_none() {
        return;
    }
    // SAFETY: forwarded.
    let block = unsafe { init_static_block(variant, tb.tp, m) };
    // SAFETY: the DTV has an entry for every module placed (caller).
    unsafe {
        let entry = (tb.dtv as *mut DtvEntry).add(m.modid);
        (*entry).val = block;
        (*entry).to_free = 0;
    }
}

/// Copies the init image of `m`, placed in static TLS, into the static
/// block of the thread whose pointer is `tp`, and returns the block. Every
/// thread's block is initialised when the module is placed (start-up,
/// `dlopen`, thread creation), never at first access: by then the thread
/// may have written it.
///
/// # Safety
/// `tp` is a live thread's pointer whose static TLS area has room for the
/// layout that placed `m`; the module's image is mapped readable.
pub unsafe fn init_static_block(variant: TlsVariant, tp: usize, m: &Module) -> usize {
    let Some(offset) = m.offset else { return 0 };
    let block = block_address(variant, tp, offset);
    // SAFETY: the block lies inside the thread's static area (caller); the
    // image is the module's mapped `.tdata`.
    unsafe {
        core::ptr::copy_nonoverlapping(m.image as *const u8, block as *mut u8, m.filesz);
        core::ptr::write_bytes((block + m.filesz) as *mut u8, 0, m.memsz - m.filesz);
    }
    block
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
    /// Per module id (index 0 unused): whether a module holds it, and the
    /// generation at which it last changed hands (glibc's slotinfo `gen`).
    slots: Vec<Slot>,
    /// Static TLS placements made by `dlopen`, in order, so that closing
    /// the latest ones gives their room back.
    placements: Vec<Placement>,
    /// Bytes of static TLS in use (initial modules and later placements).
    used: usize,
    /// End of the static area usable by placements (used + surplus at start).
    limit: usize,
    /// The highest module id in use, for the size of new DTVs
    /// (glibc's `dl_tls_max_dtv_idx`).
    max_modid: usize,
    /// `GLRO(dl_tls_static_size)` and `_align`, for libc's queries.
    static_layout: StaticLayout,
}

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    live: bool,
    gen: usize,
}

#[derive(Clone, Copy, Debug)]
struct Placement {
    modid: usize,
    /// `used` before this block was placed.
    before: usize,
    live: bool,
}

static REGISTRY: spin::RwLock<Option<Registry>> = spin::RwLock::new(None);

/// glibc's `dl_tls_generation`: bumped (under the registry's write lock)
/// whenever a module id is taken or given back. Start-up's modules and
/// DTVs are generation 1.
static GENERATION: AtomicUsize = AtomicUsize::new(1);

/// libc's `malloc` and `free` once libc is relocated (0 before, and in a
/// process without glibc): dynamic TLS blocks come from libc's heap, as
/// under glibc's loader, because libc frees `to_free` of a cached thread
/// stack's DTV entries itself.
static LIBC_MALLOC: AtomicUsize = AtomicUsize::new(0);
static LIBC_FREE: AtomicUsize = AtomicUsize::new(0);

/// The glibc layer hands in libc's allocator (see [`LIBC_MALLOC`]).
pub fn use_libc_allocator(malloc: usize, free: usize) {
    if malloc != 0 && free != 0 {
        LIBC_FREE.store(free, Ordering::Release);
        LIBC_MALLOC.store(malloc, Ordering::Release);
    }
}

/// This process's TLS variant.
pub fn variant() -> TlsVariant {
    use crate::arch::ArchInfo as _;
    crate::arch::native::Native::TLS_VARIANT
}

/// The current generation (`dl_tls_generation`).
pub fn generation() -> usize {
    GENERATION.load(Ordering::Acquire)
}

/// Start-up: the initial modules as laid out, and the next free module id.
/// Their ids are never given back.
pub fn register_initial(layout: &StaticLayout, modules: Vec<Module>, next_modid: usize) {
    let max_modid = modules.iter().map(|m| m.modid).max().unwrap_or(0);
    let mut slots = alloc::vec![Slot { live: true, gen: 1 }; next_modid.max(1)];
    slots[0] = Slot::default();
    *REGISTRY.write() = Some(Registry {
        modules,
        slots,
        placements: Vec::new(),
        used: layout.used,
        limit: layout.used + STATIC_SURPLUS,
        max_modid,
        static_layout: *layout,
    });
}

impl Registry {
    /// Marks `modid` changed in a new generation.
    fn stamp(&mut self, modid: usize, live: bool) {
        let gen = GENERATION.load(Ordering::Relaxed) + 1;
        if let Some(s) = self.slots.get_mut(modid) {
            *s = Slot { live, gen };
        }
        GENERATION.store(gen, Ordering::Release);
        self.max_modid = self.slots.iter().rposition(|s| s.live).unwrap_or(0);
    }
}

/// `dlopen`: gives `m` the lowest free module id (glibc reuses the gaps
/// `dlclose` leaves) and a place, in the static surplus when it has room
/// (every TLS model works and access is fastest), otherwise in dynamic
/// TLS, allocated per thread on first use (initial-exec code in such an
/// object is then refused at relocation, as glibc refuses it).
pub fn register_loaded(m: &mut Module) {
    let mut g = REGISTRY.write();
    let Some(r) = g.as_mut() else { return };
    let (off, end) = place(variant(), r.used, m.memsz, m.align, m.firstbyte);
    m.modid = (1..r.slots.len()).find(|&i| !r.slots[i].live).unwrap_or(r.slots.len());
    if end <= r.limit {
        r.placements.push(Placement { modid: m.modid, before: r.used, live: true });
        r.used = end;
        m.offset = Some(off);
    } else {
        m.offset = None;
    }
    if m.modid == r.slots.len() {
        r.slots.push(Slot::default());
    }
    r.stamp(m.modid, true);
    r.modules.push(*m);
}

/// `dlclose`: the module's id is free for the next `dlopen` (threads drop
/// their entries for it at their next TLS access), new threads must not
/// copy an image that is about to disappear, and static TLS at the end of
/// the used area is given back.
pub fn forget(modid: usize) {
    let mut g = REGISTRY.write();
    let Some(r) = g.as_mut() else { return };
    if !r.slots.get(modid).is_some_and(|s| s.live) || !r.modules.iter().any(|m| m.modid == modid) {
        return;
    }
    r.modules.retain(|m| m.modid != modid);
    if let Some(p) = r.placements.iter_mut().rev().find(|p| p.live && p.modid == modid) {
        p.live = false;
    }
    while let Some(p) = r.placements.last().filter(|p| !p.live).copied() {
        r.used = p.before;
        r.placements.pop();
    }
    r.stamp(modid, false);
}

/// The highest module id in use.
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

/// The generation and every registered module, read at one instant (for
/// a new thread's DTV).
pub fn snapshot(mut f: impl FnMut(&Module)) -> usize {
    let g = REGISTRY.read();
    if let Some(r) = g.as_ref() {
        r.modules.iter().for_each(&mut f);
    }
    GENERATION.load(Ordering::Acquire)
}

fn module(modid: usize) -> Option<Module> {
    REGISTRY.read().as_ref()?.modules.iter().copied().find(|m| m.modid == modid)
}

/// `__tls_get_addr` for the calling thread: the fast path reads the DTV;
/// the slow path brings a DTV older than the current generation up to
/// date (and grows it for a thread created before a `dlopen` added
/// modules), and allocates a dynamic module's block on first use.
///
/// # Safety
/// The thread pointer and DTV are set up, and `ti` names a module.
pub unsafe fn get_addr_current(ti: &TlsIndex) -> usize {
    // SAFETY: forwarded.
    let block = unsafe { block_current(ti.module, true) };
    block.wrapping_add(ti.offset)
}

/// This thread's block of module `modid`: allocated and initialised on
/// first use when `allocate`, else 0 if it has none yet.
///
/// # Safety
/// The thread pointer and DTV are set up, and `modid` names a module.
pub unsafe fn block_current(modid: usize, allocate: bool) -> usize {
    let tp = crate::arch::native::thread_pointer_value();
    let mut dtv = crate::arch::native::dtv_of(tp);
    // SAFETY: dtv[-1] is the capacity, dtv[0] the generation (see the
    // module comment); entries up to the capacity exist.
    unsafe {
        if (*(dtv as *const DtvEntry)).val == generation() {
            let cap = (*(dtv as *const DtvEntry).sub(1)).val;
            if modid <= cap {
                let v = (*(dtv as *const DtvEntry).add(modid)).val;
                if v != UNALLOCATED {
                    return v;
                }
            }
        }
        dtv = refresh(tp, dtv, modid);
        if modid == 0 || modid > (*(dtv as *const DtvEntry).sub(1)).val {
            crate::diag::fatal(&crate::err!("ld-cah.so", "TLS access to unknown module {}", modid));
        }
        let v = (*(dtv as *const DtvEntry).add(modid)).val;
        if v != UNALLOCATED || !allocate {
            return if v == UNALLOCATED { 0 } else { v };
        }
    }
    let Some(m) = module(modid) else {
        crate::diag::fatal(&crate::err!("ld-cah.so", "TLS access to unknown module {}", modid));
    };
    let (block, to_free) = match m.offset {
        // Initialised when the module was placed (see `init_static_block`).
        Some(off) => (block_address(variant(), tp, off), 0),
        None => {
            let (block, to_free) = dynamic_block(&m);
            // SAFETY: `block` has room for `memsz` bytes; the image is the
            // module's mapped .tdata.
            unsafe {
                core::ptr::copy_nonoverlapping(m.image as *const u8, block as *mut u8, m.filesz);
                core::ptr::write_bytes((block + m.filesz) as *mut u8, 0, m.memsz - m.filesz);
            }
            (block, to_free)
        }
    };
    // SAFETY: `refresh` sized the DTV for `modid`.
    unsafe { *(dtv as *mut DtvEntry).add(m.modid) = DtvEntry { val: block, to_free } };
    block
}

/// Memory for a module's dynamic block in this thread, aligned so that its
/// first byte sits at `firstbyte` in an aligned unit: libc's `malloc` when
/// there is one (its address is the entry's `to_free`), else the loader's
/// heap, never freed (`to_free` 0).
fn dynamic_block(m: &Module) -> (usize, usize) {
    let size = m.memsz + m.align;
    let malloc = LIBC_MALLOC.load(Ordering::Acquire);
    let start = if malloc != 0 {
        // SAFETY: libc's `malloc`, relocated and initialised (libc is).
        let f: extern "C" fn(usize) -> usize = unsafe { core::mem::transmute(malloc) };
        f(size)
    } else {
        alloc::vec![0u8; size].leak().as_mut_ptr() as usize
    };
    if start == 0 {
        crate::diag::fatal(&crate::err!("ld-cah.so", "cannot allocate memory for thread-local data"));
    }
    // The lowest address >= start that is firstbyte modulo align: at most
    // align - 1 bytes in, so memsz bytes fit.
    let block = ((start.wrapping_sub(m.firstbyte) + m.align - 1) & !(m.align - 1)) + m.firstbyte;
    let block = if block < start { block + m.align } else { block };
    (block, if malloc != 0 { start } else { 0 })
}

/// Frees what a DTV entry owns (a dynamic block from libc's `malloc`).
fn free_entry(e: &mut DtvEntry) {
    let free = LIBC_FREE.load(Ordering::Acquire);
    if e.to_free != 0 && free != 0 {
        // SAFETY: `to_free` came from libc's `malloc` (dynamic_block).
        let f: extern "C" fn(usize) = unsafe { core::mem::transmute(free) };
        f(e.to_free);
    }
    *e = DtvEntry { val: UNALLOCATED, to_free: 0 };
}

/// Brings the DTV of the calling thread (pointer `tp`) up to the current
/// generation: the entries of every module id that changed hands since
/// its generation are dropped (their dynamic blocks freed), and it is
/// grown to hold `need` and every id in use. Returns the (maybe new) DTV.
///
/// # Safety
/// `dtv` is the live DTV of the calling thread, whose pointer is `tp`.
unsafe fn refresh(tp: usize, mut dtv: usize, need: usize) -> usize {
    let g = REGISTRY.read();
    let Some(r) = g.as_ref() else { return dtv };
    // SAFETY: as in `block_current`.
    unsafe {
        let seen = (*(dtv as *const DtvEntry)).val;
        let cap = (*(dtv as *const DtvEntry).sub(1)).val;
        for id in 1..=cap.min(r.slots.len().saturating_sub(1)) {
            if r.slots[id].gen > seen {
                free_entry(&mut *(dtv as *mut DtvEntry).add(id));
            }
        }
        let want = need.max(r.max_modid);
        if want > cap {
            dtv = grow_dtv(tp, dtv, cap, want);
        }
        (*(dtv as *mut DtvEntry)).val = GENERATION.load(Ordering::Acquire);
    }
    dtv
}

/// A thread is going away for good (`_dl_deallocate_tls`): frees its
/// dynamic blocks and leaves its DTV entries unallocated.
///
/// # Safety
/// `dtv` is the DTV of a thread that no longer runs.
pub unsafe fn release_dynamic_blocks(dtv: usize) {
    // SAFETY: dtv[-1] is the capacity; entries 1..=cap exist.
    unsafe {
        let cap = (*(dtv as *const DtvEntry).sub(1)).val;
        for id in 1..=cap {
            free_entry(&mut *(dtv as *mut DtvEntry).add(id));
        }
    }
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
