//! The first instructions of `ld-cah.so`.
//!
//! The kernel (or `qemu-aarch64`) jumps to `_start` with the stack pointer at
//! `argc`. At that moment the loader itself is not relocated: every pointer
//! stored in its data (vtables, string tables, `&'static` references inside
//! statics) still holds a link-time address. This crate therefore does three
//! things, in this order, and nothing else:
//!
//! 1. `_start` (assembly, one file per arch) computes the load base and the
//!    address of `_DYNAMIC` PC-relatively: neither needs a relocation;
//! 2. [`relocate_self`] applies the loader's own `R_*_RELATIVE` and `DT_RELR`
//!    relocations. It may use locals, raw pointer reads and writes and direct
//!    calls only: no global, no string constant, no `&dyn`, no panic path, no
//!    function pointer. `xtask` checks the built loader has no other
//!    relocation type, so "relative only" is all this code needs to know;
//! 3. it calls `ld_cah_main(sp, base)`, defined by the loader, which from then
//!    on may use Rust freely.
//!
//! Anything that goes wrong before step 3 can only trap: there is no way yet
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
