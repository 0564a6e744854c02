//! The first instructions of `ld-cah.so`.
//!
//! The kernel (or `qemu-aarch64`) jumps to `_start` with the stack pointer at
//! `argc`. At that moment the loader itself is not relocated: every pointer
//! stored in its data (vtables, string tables, `&'static` references inside
//! statics) still holds a link-time address. This crate therefore does four
//! things, in this order, and nothing else:
//!
//! 1. `_start` (assembly, one file per arch) computes the load base and the
//!    address of `_DYNAMIC` PC-relatively: neither needs a relocation;
//! 2. [`populate_self`] asks the kernel for private copies of our writable
//!    pages at once, under the same rules as step 3;
//! 3. [`relocate_self`] applies the loader's own `R_*_RELATIVE` and `DT_RELR`
//!    relocations. It may use locals, raw pointer reads and writes and direct
//!    calls only: no global, no string constant, no `&dyn`, no panic path, no
//!    function pointer. `xtask` checks the built loader has no other
//!    relocation type, so "relative only" is all this code needs to know;
//! 4. it calls `ld_cah_main(sp, base)`, defined by the loader, which from then
//!    on may use Rust freely.
//!
//! Anything that goes wrong before step 4 can only trap: there is no way yet
//! to print a message.
#![no_std]

#[cfg(target_arch = "x86_64")]
mod mem;

#[cfg(target_arch = "x86_64")]
core::arch::global_asm!(
    ".globl _start",
    ".type _start, @function",
    "_start:",
    // The ABI says the outermost frame has a zero frame pointer.
    "xor ebp, ebp",
    "mov rdi, rsp",
    "lea rsi, [rip + __ehdr_start]",
    "lea rdx, [rip + _DYNAMIC]",
    // The kernel leaves rsp 16-byte aligned; `call` then pushes 8 bytes,
    // which is exactly what a callee expects. Align anyway: a loader run
    // by another loader (or a debugger) may not be that polite.
    "and rsp, -16",
    "call {entry}",
    "ud2",
    ".size _start, . - _start",
    entry = sym crt_entry,
);

#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(
    ".globl _start",
    ".type _start, %function",
    "_start:",
    "mov x29, #0",
    "mov x30, #0",
    "mov x0, sp",
    "adrp x1, __ehdr_start",
    "add x1, x1, :lo12:__ehdr_start",
    "adrp x2, _DYNAMIC",
    "add x2, x2, :lo12:_DYNAMIC",
    "bl {entry}",
    "brk #1",
    ".size _start, . - _start",
    entry = sym crt_entry,
);

extern "C" {
    /// The loader proper. `sp` points at `argc`; `base` is the load address
    /// of ld-cah.so itself.
    fn ld_cah_main(sp: *mut usize, base: usize) -> !;
}

/// Called by `_start` only.
///
/// # Safety
/// `sp` is the initial process stack, `base` the address of our own ELF
/// header, `dynamic` the address of our own `_DYNAMIC`.
#[no_mangle]
unsafe extern "C" fn crt_entry(sp: *mut usize, base: usize, dynamic: *const usize) -> ! {
    // SAFETY: `base` is our own ELF header, `sp` the kernel's stack (`_start`).
    unsafe { populate_self(base, page_size(sp)) };
    // SAFETY: `_start` passes our own base and dynamic section.
    unsafe { relocate_self(base, dynamic) };
    // Keep the compiler from moving any read of relocated data above this
    // point; `ld_cah_main` is an opaque call anyway, this documents it.
    core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
    // SAFETY: the loader is relocated; `ld_cah_main` takes the same
    // arguments the kernel gave us.
    unsafe { ld_cah_main(sp, base) }
}

#[cfg(target_arch = "x86_64")]
const R_RELATIVE: u32 = 8; // R_X86_64_RELATIVE
#[cfg(target_arch = "aarch64")]
const R_RELATIVE: u32 = 1027; // R_AARCH64_RELATIVE

const DT_NULL: usize = 0;
const DT_RELA: usize = 7;
const DT_RELASZ: usize = 8;
const DT_RELAENT: usize = 9;
const DT_RELRSZ: usize = 35;
const DT_RELR: usize = 36;
const DT_RELRENT: usize = 37;

/// Applies the loader's own relative relocations.
///
/// Only locals and raw pointers: see the crate documentation for why.
///
/// # Safety
/// `base` and `dynamic` describe the running, not yet relocated, loader,
/// and this runs exactly once.
#[inline(never)]
pub unsafe fn relocate_self(base: usize, dynamic: *const usize) {
    let (mut rela, mut relasz, mut relaent) = (0usize, 0usize, 24usize);
    let (mut relr, mut relrsz, mut relrent) = (0usize, 0usize, 8usize);
    let mut d = dynamic;
    loop {
        // SAFETY: `_DYNAMIC` is an array of (tag, value) pairs ending in
        // DT_NULL; we never read past that terminator.
        let (tag, val) = unsafe { (*d, *d.add(1)) };
        match tag {
            DT_NULL => break,
            DT_RELA => rela = val,
            DT_RELASZ => relasz = val,
            DT_RELAENT => relaent = val,
            DT_RELR => relr = val,
            DT_RELRSZ => relrsz = val,
            DT_RELRENT => relrent = val,
            _ => {}
        }
        // SAFETY: still inside the dynamic array (see above).
        d = unsafe { d.add(2) };
    }
    if relaent == 0 || relrent != 8 {
        trap();
    }
    let mut off = 0;
    while off + 24 <= relasz {
        let r = (base + rela + off) as *const usize;
        // SAFETY: an Elf64_Rela inside our own .rela.dyn.
        let (r_offset, r_info, r_addend) = unsafe { (*r, *r.add(1), *r.add(2)) };
        if r_info as u32 != R_RELATIVE {
            trap();
        }
        // SAFETY: the linker put this relocation at a word of our image.
        unsafe { *((base + r_offset) as *mut usize) = base.wrapping_add(r_addend) };
        off += relaent;
    }
    // DT_RELR: an address word sets the next place; a bitmap word (low bit
    // set) marks which of the following 63 words need the base added.
    let mut where_: usize = 0;
    let mut off = 0;
    while off + 8 <= relrsz {
        // SAFETY: a word of our own .relr.dyn.
        let entry = unsafe { *((base + relr + off) as *const usize) };
        if entry & 1 == 0 {
            where_ = base + entry;
            // SAFETY: the linker put a relocated word there.
            unsafe { *(where_ as *mut usize) = (*(where_ as *const usize)).wrapping_add(base) };
            where_ += 8;
        } else {
            // Visit the set bits only (about 1,800 of 6,700 for the
            // loader): a bit-by-bit walk cost three times as much.
            let mut bits = entry >> 1;
            while bits != 0 {
                let p = where_ + bits.trailing_zeros() as usize * 8;
                // SAFETY: as above, a word the bitmap names.
                unsafe { *(p as *mut usize) = (*(p as *const usize)).wrapping_add(base) };
                bits &= bits - 1;
            }
            where_ += 63 * 8;
        }
        off += 8;
    }
}

/// Breaks copy-on-write for our whole writable segment in one system call
/// before [`relocate_self`] writes into it. Its RELR words are spread over
/// nearly every page of `.data.rel.ro`, and left to page faults each page
/// cost one (10 on x86_64); `MADV_POPULATE_WRITE` (Linux 5.14) copies them
/// all in one `madvise`, which took a warm locked start from 0.89x to
/// 0.86x of glibc's loader's wall time (docs/benchmarks.md). An older
/// kernel answers `EINVAL` and the pages fault in as before. (Doing the
/// same for the code, `MADV_POPULATE_READ`, measured no faster: the
/// kernel already maps read-only file pages 64 KiB at a time.)
///
/// # Safety
/// `base` is the address of our own, mapped ELF header; `page` the
/// kernel's page size.
#[inline(never)]
unsafe fn populate_self(base: usize, page: usize) {
    const PT_LOAD: u32 = 1;
    const PF_W: u32 = 2;
    const MADV_POPULATE_WRITE: usize = 23;
    // SAFETY: e_phoff and e_phnum of our own 64-bit ELF header.
    let (phoff, phnum) = unsafe { (*((base + 32) as *const u64) as usize, *((base + 56) as *const u16) as usize) };
    for i in 0..phnum {
        let ph = base + phoff + i * 56;
        // SAFETY: p_type, p_flags, p_vaddr and p_memsz of one of our program
        // headers, which the first segment maps.
        let (ty, flags, vaddr, memsz) = unsafe {
            (*(ph as *const u32), *((ph + 4) as *const u32), *((ph + 16) as *const u64) as usize, *((ph + 40) as *const u64) as usize)
        };
        if ty == PT_LOAD && flags & PF_W != 0 {
            // The kernel rounds the length up, not the start down.
            let start = (base + vaddr) & !(page - 1);
            // SAFETY: populating neither moves our mapping nor changes its
            // contents: each page is copied as a write would copy it.
            unsafe { madvise(start, base + vaddr + memsz - start, MADV_POPULATE_WRITE) };
        }
    }
}

/// `AT_PAGESZ` from the auxiliary vector above the environment, or 4096.
///
/// # Safety
/// `sp` is the process entry stack: `argc`, `argv[]`, NULL, `envp[]`, NULL,
/// then the auxiliary vector's (type, value) pairs up to `AT_NULL`.
unsafe fn page_size(sp: *const usize) -> usize {
    const AT_NULL: usize = 0;
    const AT_PAGESZ: usize = 6;
    // SAFETY: (all reads below) words of the entry stack, in the layout
    // the kernel builds, read no further than the terminators.
    let argc = unsafe { *sp };
    let mut p = unsafe { sp.add(argc + 2) };
    while unsafe { *p } != 0 {
        p = unsafe { p.add(1) };
    }
    p = unsafe { p.add(1) };
    loop {
        let (ty, val) = unsafe { (*p, *p.add(1)) };
        match ty {
            AT_NULL => return 4096,
            AT_PAGESZ if val.is_power_of_two() && val >= 4096 => return val,
            _ => p = unsafe { p.add(2) },
        }
    }
}

// The loader's one system call outside `loader/src/sys.rs`, and arch code
// outside `loader/src/arch/`, like `_start` above: this crate runs before
// the loader is relocated and cannot depend on it (the loader links it).

/// `madvise(addr, len, advice)`; a refusal is ignored (nothing depends on
/// the advice being taken).
///
/// # Safety
/// `addr..addr + len` is ours and the advice changes no contents.
#[cfg(target_arch = "x86_64")]
unsafe fn madvise(addr: usize, len: usize, advice: usize) {
    // SAFETY: the caller vouches for the range; `syscall` clobbers only rax, rcx and r11, declared.
    unsafe {
        core::arch::asm!("syscall", inlateout("rax") 28usize => _, in("rdi") addr, in("rsi") len, in("rdx") advice,
            lateout("rcx") _, lateout("r11") _, options(nostack))
    };
}

/// As the x86_64 one.
///
/// # Safety
/// As the x86_64 one.
#[cfg(target_arch = "aarch64")]
unsafe fn madvise(addr: usize, len: usize, advice: usize) {
    // SAFETY: the caller vouches for the range; `svc` clobbers only x0, declared.
    unsafe { core::arch::asm!("svc #0", in("x8") 233usize, inlateout("x0") addr => _, in("x1") len, in("x2") advice, options(nostack)) };
}

#[inline(always)]
fn trap() -> ! {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: ud2 only raises SIGILL.
    unsafe {
        core::arch::asm!("ud2", options(noreturn))
    };
    #[cfg(target_arch = "aarch64")]
    // SAFETY: brk only raises SIGTRAP.
    unsafe {
        core::arch::asm!("brk #1", options(noreturn))
    };
}
