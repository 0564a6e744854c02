//! Everything that differs between x86_64 and aarch64, and nothing else.
//!
//! Each arch file declares the same items in the same order:
//! relocation decoding and TLS facts on a zero-sized type (no `cfg`, so host
//! tests cover both arches), then the machine code the loader needs
//! (syscall instruction, thread pointer, TLSDESC resolvers, the jump to the
//! entry point), compiled only for its own target.

// The machine code of each arch is inherently unsafe; every block there
// says why it is sound.
#[allow(unsafe_code)]
pub mod aarch64;
#[allow(unsafe_code)]
pub mod x86_64;

#[cfg(target_arch = "aarch64")]
pub use aarch64 as native;
#[cfg(target_arch = "x86_64")]
pub use x86_64 as native;

/// What a relocation does, independent of its arch-specific number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelocKind {
    /// Does nothing (`R_*_NONE`).
    None,
    /// `base + addend`.
    Relative,
    /// `S + addend`, a 64-bit absolute address (also GLOB_DAT and JUMP_SLOT,
    /// which differ only in which section they sit in).
    Absolute,
    /// `S` without addend (`R_X86_64_GLOB_DAT`/`JUMP_SLOT` ignore the addend).
    Symbol,
    /// Copy the definition's bytes into the executable.
    Copy,
    /// Call `base + addend` and store what it returns.
    IRelative,
    /// The module id of the defining object's TLS block.
    DtpMod,
    /// The offset of the symbol inside its TLS block.
    DtpOff,
    /// The symbol's offset from the thread pointer (static TLS).
    TpOff,
    /// A TLS descriptor: a resolver function and its argument.
    TlsDesc,
}

/// Where TLS blocks lie relative to the thread pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsVariant {
    /// Variant I (aarch64): the TCB is at the thread pointer, a 16-byte
    /// `tcbhead_t`, and blocks follow it upwards.
    One,
    /// Variant II (x86_64): blocks lie below the thread pointer, which points
    /// at the TCB (whose first word points to itself).
    Two,
}

/// Facts about one architecture that pure code needs.
pub trait ArchInfo {
    /// `e_machine`.
    const MACHINE: u16;
    /// `R_*_RELATIVE`, the relocation the hot loop looks for.
    const R_RELATIVE: u32;
    const TLS_VARIANT: TlsVariant;
    /// The PT_INTERP name of glibc's loader on this arch, which ld-cah answers to.
    const GLIBC_INTERP: &'static str;
    /// Directories searched last, in order (Debian's multiarch layout).
    const DEFAULT_DIRS: &'static [&'static str];
    /// `flags` of an `/etc/ld.so.cache` entry for this arch.
    const LDCACHE_FLAGS: i32;
    /// What `$LIB` expands to (Debian's multiarch library directory).
    const DST_LIB: &'static str;
    /// What `$PLATFORM` expands to when the kernel gives no AT_PLATFORM.
    const PLATFORM: &'static str;
    /// `R_*_JUMP_SLOT`, the relocation lazy binding defers.
    const R_JUMP_SLOT: u32;
    /// `R_*_GLOB_DAT`: with `R_*_JUMP_SLOT`, the type of nearly every
    /// symbolic reference (see `reloc::Target`).
    const R_GLOB_DAT: u32;
    /// The 64-bit absolute reference (`R_X86_64_64`, `R_AARCH64_ABS64`):
    /// C++ vtables are made of them.
    const R_ABS64: u32;
    /// What the PLT resolver passes the lazy-binding fixup besides the
    /// object: the `.got.plt` slot's address (aarch64) rather than the
    /// relocation's index in `DT_JMPREL` (x86_64).
    const PLT_PASSES_SLOT: bool;
    /// Decodes `ELF64_R_TYPE`.
    fn reloc_kind(r_type: u32) -> Option<RelocKind>;
}
