//! aarch64: relocation numbers, TLS variant I, and the machine code.

use super::{ArchInfo, RelocKind, TlsVariant};

pub struct Aarch64;

impl ArchInfo for Aarch64 {
    const MACHINE: u16 = object::elf::EM_AARCH64;
    const R_RELATIVE: u32 = object::elf::R_AARCH64_RELATIVE;
    const TLS_VARIANT: TlsVariant = TlsVariant::One;
    const GLIBC_INTERP: &'static str = "/lib/ld-linux-aarch64.so.1";
    const DEFAULT_DIRS: &'static [&'static str] = &["/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/lib", "/usr/lib"];
    // FLAG_ELF_LIBC6 | FLAG_AARCH64_LIB64
    const LDCACHE_FLAGS: i32 = 0x0a03;
    const DST_LIB: &'static str = "lib/aarch64-linux-gnu";
    const PLATFORM: &'static str = "aarch64";

    const R_JUMP_SLOT: u32 = object::elf::R_AARCH64_JUMP_SLOT;
    const R_GLOB_DAT: u32 = object::elf::R_AARCH64_GLOB_DAT;
    const R_ABS64: u32 = object::elf::R_AARCH64_ABS64;
    const PLT_PASSES_SLOT: bool = true;

    fn reloc_kind(r_type: u32) -> Option<RelocKind> {
        use object::elf::*;
        Some(match r_type {
            R_AARCH64_NONE => RelocKind::None,
            R_AARCH64_RELATIVE => RelocKind::Relative,
            R_AARCH64_ABS64 | R_AARCH64_GLOB_DAT | R_AARCH64_JUMP_SLOT => RelocKind::Absolute,
            R_AARCH64_COPY => RelocKind::Copy,
            R_AARCH64_IRELATIVE => RelocKind::IRelative,
            R_AARCH64_TLS_DTPMOD => RelocKind::DtpMod,
            R_AARCH64_TLS_DTPREL => RelocKind::DtpOff,
            R_AARCH64_TLS_TPREL => RelocKind::TpOff,
            R_AARCH64_TLSDESC => RelocKind::TlsDesc,
            _ => return None,
        })
    }
}

#[cfg(target_arch = "aarch64")]
pub use machine::*;

#[cfg(target_arch = "aarch64")]
mod machine {
    use core::arch::{asm, global_asm};

    pub type Native = super::Aarch64;

    pub mod nr {
        pub const GETCWD: usize = 17;
        pub const OPENAT: usize = 56;
        pub const CLOSE: usize = 57;
        pub const READ: usize = 63;
        pub const WRITE: usize = 64;
        pub const PREAD64: usize = 67;
        pub const READLINKAT: usize = 78;
        pub const FACCESSAT: usize = 48;
        pub const FSTAT: usize = 80;
        pub const FSTATFS: usize = 44;
        pub const EXIT: usize = 93;
        pub const EXIT_GROUP: usize = 94;
        pub const SET_TID_ADDRESS: usize = 96;
        pub const FUTEX: usize = 98;
        pub const SCHED_GETAFFINITY: usize = 123;
        pub const SET_ROBUST_LIST: usize = 99;
        pub const RT_SIGPROCMASK: usize = 135;
        pub const GETPID: usize = 172;
        pub const CLONE: usize = 220;
        pub const GETTID: usize = 178;
        pub const MUNMAP: usize = 215;
        pub const MMAP: usize = 222;
        pub const MPROTECT: usize = 226;
        pub const RSEQ: usize = 293;
        // Content verification (hash cache, trust checks).
        pub const FCHMOD: usize = 52;
        pub const GETUID: usize = 174;
        pub const GETEUID: usize = 175;
        pub const MKDIRAT: usize = 34;
        pub const UNLINKAT: usize = 35;
        pub const FALLOCATE: usize = 47;
        pub const RENAMEAT2: usize = 276;
        // `openat` flags that differ between the architectures.
        pub const O_DIRECTORY: u32 = 0o40000;
        pub const O_NOFOLLOW: u32 = 0o100000;
    }

    /// # Safety
    /// The caller upholds the contract of syscall `n` for these arguments.
    #[inline(always)]
    pub unsafe fn syscall6(n: usize, a: [usize; 6]) -> isize {
        let ret: isize;
        // SAFETY: `svc 0` clobbers nothing but x0; the caller vouches for
        // what the kernel does with the arguments.
        unsafe {
            asm!("svc 0",
                in("x8") n,
                inlateout("x0") a[0] as isize => ret,
                in("x1") a[1], in("x2") a[2], in("x3") a[3], in("x4") a[4], in("x5") a[5],
                options(nostack));
        }
        ret
    }

    /// `clone(flags, stack_top, 0, 0, ctid)` for a thread that calls
    /// `entry(arg)` on its own stack and then exits (`exit`, this thread
    /// only). Returns what `clone` returned to the caller: the new
    /// thread's id, or a negated error number.
    ///
    /// # Safety
    /// `stack_top` is the 16-byte aligned top of memory only the new
    /// thread uses until it exits; `flags` share the address space
    /// (`CLONE_VM`); `entry` does not unwind; what `arg` points to stays
    /// valid until the thread has exited (`ctid` tells when).
    pub unsafe fn clone_thread(flags: usize, stack_top: usize, ctid: *mut u32, entry: extern "C" fn(usize), arg: usize) -> isize {
        let ret: isize;
        // SAFETY: the parent returns from `svc` with only x0 changed. The
        // child starts on `stack_top` with the parent's registers: it
        // calls `entry(arg)` from x20/x21 with a zeroed frame chain, then
        // exits without returning into the parent's frame, whose stack it
        // never touches.
        unsafe {
            asm!(
                "svc 0",
                "cbnz x0, 2f",
                "mov x29, xzr",
                "mov x30, xzr",
                "mov x0, x20",
                "blr x21",
                "mov x8, {exit}",
                "mov x0, xzr",
                "svc 0",
                "udf #0",
                "2:",
                exit = const nr::EXIT,
                in("x8") nr::CLONE,
                inlateout("x0") flags as isize => ret,
                in("x1") stack_top, in("x2") 0usize, in("x3") 0usize, in("x4") ctid,
                in("x20") arg, in("x21") entry as usize,
                options(nostack));
        }
        ret
    }

    /// Sets `tpidr_el0`.
    ///
    /// # Safety
    /// `tp` must point at a TCB that stays valid for the thread's life.
    pub unsafe fn set_thread_pointer(tp: usize) -> Option<(usize, [usize; 6])> {
        // SAFETY: writing tpidr_el0 only changes where TLS accesses go
        // (no system call needed on aarch64).
        unsafe { asm!("msr tpidr_el0, {}", in(reg) tp, options(nostack, preserves_flags)) };
        None
    }

    #[inline(always)]
    pub fn thread_pointer() -> usize {
        let tp: usize;
        // SAFETY: reading tpidr_el0 has no side effect.
        unsafe { asm!("mrs {}, tpidr_el0", out(reg) tp, options(nostack, nomem, preserves_flags)) };
        tp
    }

    /// Starts the program: `sp` back at `argc`, `x0` = the function the
    /// program registers with `atexit` (ABI of `_start`).
    ///
    /// # Safety
    /// `entry` is the program's entry point and `sp` its initial stack.
    pub unsafe fn jump_to_entry(entry: usize, sp: usize, fini: usize) -> ! {
        // SAFETY: this abandons the loader's stack frame for good.
        unsafe {
            asm!("mov sp, {sp}", "mov x29, #0", "mov x30, #0", "br {entry}",
                sp = in(reg) sp, entry = in(reg) entry, in("x0") fini,
                options(noreturn))
        }
    }

    /// Calls an IFUNC resolver with glibc's aarch64 arguments:
    /// `(hwcap | _IFUNC_ARG_HWCAP, &__ifunc_arg_t)`.
    ///
    /// # Safety
    /// `resolver` is the address of an `STT_GNU_IFUNC` function of a relocated object.
    pub unsafe fn call_ifunc(resolver: usize, hwcap: u64, hwcap2: u64) -> usize {
        #[repr(C)]
        struct IfuncArg {
            size: u64,
            hwcap: u64,
            hwcap2: u64,
        }
        const IFUNC_ARG_HWCAP: u64 = 1 << 62;
        let arg = IfuncArg { size: core::mem::size_of::<IfuncArg>() as u64, hwcap, hwcap2 };
        // SAFETY: forwarded; the resolver follows the C ABI.
        let f: extern "C" fn(u64, *const IfuncArg) -> usize = unsafe { core::mem::transmute(resolver) };
        f(hwcap | IFUNC_ARG_HWCAP, &arg)
    }

    /// Calls a constructor or destructor with (argc, argv, envp).
    ///
    /// # Safety
    /// `f` is an initialiser of a relocated object.
    pub unsafe fn call_init(f: usize, argc: usize, argv: usize, envp: usize) {
        // SAFETY: forwarded; initialisers follow the C ABI.
        let f: extern "C" fn(usize, usize, usize) = unsafe { core::mem::transmute(f) };
        f(argc, argv, envp)
    }

    // TLSDESC resolver for static TLS: x0 points at the descriptor, whose
    // second word is the offset from the thread pointer; only x0 may change.
    global_asm!(
        ".globl ld_cah_tlsdesc_static",
        ".hidden ld_cah_tlsdesc_static",
        ".type ld_cah_tlsdesc_static, %function",
        "ld_cah_tlsdesc_static:",
        "ldr x0, [x0, #8]",
        "ret",
        ".size ld_cah_tlsdesc_static, . - ld_cah_tlsdesc_static",
    );

    // TLSDESC resolver for a module in dynamic TLS (see x86_64.rs): only
    // x0 may change, so x1-x18, the frame registers and every SIMD register
    // are saved around the call into Rust.
    global_asm!(
        ".globl ld_cah_tlsdesc_dynamic",
        ".hidden ld_cah_tlsdesc_dynamic",
        ".type ld_cah_tlsdesc_dynamic, %function",
        "ld_cah_tlsdesc_dynamic:",
        "stp x29, x30, [sp, #-16]!",
        "mov x29, sp",
        "sub sp, sp, #656",
        "stp x1, x2, [sp, #0]",
        "stp x3, x4, [sp, #16]",
        "stp x5, x6, [sp, #32]",
        "stp x7, x8, [sp, #48]",
        "stp x9, x10, [sp, #64]",
        "stp x11, x12, [sp, #80]",
        "stp x13, x14, [sp, #96]",
        "stp x15, x16, [sp, #112]",
        "stp x17, x18, [sp, #128]",
        "stp q0, q1, [sp, #144]",
        "stp q2, q3, [sp, #176]",
        "stp q4, q5, [sp, #208]",
        "stp q6, q7, [sp, #240]",
        "stp q8, q9, [sp, #272]",
        "stp q10, q11, [sp, #304]",
        "stp q12, q13, [sp, #336]",
        "stp q14, q15, [sp, #368]",
        "stp q16, q17, [sp, #400]",
        "stp q18, q19, [sp, #432]",
        "stp q20, q21, [sp, #464]",
        "stp q22, q23, [sp, #496]",
        "stp q24, q25, [sp, #528]",
        "stp q26, q27, [sp, #560]",
        "stp q28, q29, [sp, #592]",
        "stp q30, q31, [sp, #624]",
        "ldr x0, [x0, #8]",
        "adrp x9, {slow}",
        "ldr x9, [x9, :lo12:{slow}]",
        "blr x9",
        "ldp x1, x2, [sp, #0]",
        "ldp x3, x4, [sp, #16]",
        "ldp x5, x6, [sp, #32]",
        "ldp x7, x8, [sp, #48]",
        "ldp x9, x10, [sp, #64]",
        "ldp x11, x12, [sp, #80]",
        "ldp x13, x14, [sp, #96]",
        "ldp x15, x16, [sp, #112]",
        "ldp x17, x18, [sp, #128]",
        "ldp q0, q1, [sp, #144]",
        "ldp q2, q3, [sp, #176]",
        "ldp q4, q5, [sp, #208]",
        "ldp q6, q7, [sp, #240]",
        "ldp q8, q9, [sp, #272]",
        "ldp q10, q11, [sp, #304]",
        "ldp q12, q13, [sp, #336]",
        "ldp q14, q15, [sp, #368]",
        "ldp q16, q17, [sp, #400]",
        "ldp q18, q19, [sp, #432]",
        "ldp q20, q21, [sp, #464]",
        "ldp q22, q23, [sp, #496]",
        "ldp q24, q25, [sp, #528]",
        "ldp q26, q27, [sp, #560]",
        "ldp q28, q29, [sp, #592]",
        "ldp q30, q31, [sp, #624]",
        "add sp, sp, #656",
        "ldp x29, x30, [sp], #16",
        "ret",
        ".size ld_cah_tlsdesc_dynamic, . - ld_cah_tlsdesc_dynamic",
        slow = sym TLSDESC_SLOW,
    );

    extern "C" {
        fn ld_cah_tlsdesc_static();
        fn ld_cah_tlsdesc_dynamic();
    }

    /// What the dynamic TLSDESC resolver calls for a block not allocated
    /// yet; written by [`tlsdesc_dynamic`] before any descriptor can point
    /// at the resolver. (The TLS layer above hands it in: arch does not
    /// reach up for it.)
    static TLSDESC_SLOW: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

    /// The address of the dynamic TLSDESC resolver, which calls `slow`
    /// (`unsafe extern "C" fn(*const TlsIndex) -> usize`) for a block not
    /// allocated yet.
    pub fn tlsdesc_dynamic(slow: usize) -> usize {
        TLSDESC_SLOW.store(slow, core::sync::atomic::Ordering::Release);
        ld_cah_tlsdesc_dynamic as *const () as usize
    }

    /// The function the PLT resolver calls with `GOT[1]` and the slot's
    /// index or address; written by [`plt_resolver`] before any `GOT[2]`
    /// can point at the resolver.
    static PLT_FIXUP: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

    // Lazy binding: the PLT resolver `GOT[2]` holds. The PLT entry put
    // the address of its `.got.plt` slot in x16 and jumped to PLT0, which
    // pushed x16 and x30 (the caller's return address), set x16 to
    // `&GOT[2]` and branched here through x17. `GOT[1]` (the object's id)
    // is then at `[x16 - 8]`. Everything the base procedure-call standard
    // passes arguments in is saved around the fixup: x0-x7, x8 (the
    // indirect result pointer), q0-q7 (whole 128-bit registers). Functions
    // with a variant PCS (SVE or vector-PCS arguments, marked
    // `STO_AARCH64_VARIANT_PCS`) need more than that and are never bound
    // through here: the engine binds them at load time, as glibc does. The
    // frame record (x29, x30) keeps backtraces whole; `bti c` accepts the
    // `br x17` of PLT0 on BTI-guarded pages and is a no-op elsewhere.
    global_asm!(
        ".globl ld_cah_plt_resolve",
        ".hidden ld_cah_plt_resolve",
        ".type ld_cah_plt_resolve, %function",
        "ld_cah_plt_resolve:",
        "hint #34",
        "stp x29, x30, [sp, #-224]!",
        "mov x29, sp",
        "stp x0, x1, [sp, #16]",
        "stp x2, x3, [sp, #32]",
        "stp x4, x5, [sp, #48]",
        "stp x6, x7, [sp, #64]",
        "str x8, [sp, #80]",
        "stp q0, q1, [sp, #96]",
        "stp q2, q3, [sp, #128]",
        "stp q4, q5, [sp, #160]",
        "stp q6, q7, [sp, #192]",
        "ldr x0, [x16, #-8]",
        "ldr x1, [sp, #224]",
        "adrp x9, {fixup}",
        "ldr x9, [x9, :lo12:{fixup}]",
        "blr x9",
        "mov x16, x0",
        "ldp q0, q1, [sp, #96]",
        "ldp q2, q3, [sp, #128]",
        "ldp q4, q5, [sp, #160]",
        "ldp q6, q7, [sp, #192]",
        "ldr x8, [sp, #80]",
        "ldp x0, x1, [sp, #16]",
        "ldp x2, x3, [sp, #32]",
        "ldp x4, x5, [sp, #48]",
        "ldp x6, x7, [sp, #64]",
        "ldp x29, x30, [sp], #224",
        // Drop PLT0's two words (the slot address, the return address
        // x30 already holds) and go to the function itself.
        "ldp x17, x30, [sp], #16",
        "br x16",
        ".size ld_cah_plt_resolve, . - ld_cah_plt_resolve",
        fixup = sym PLT_FIXUP,
    );

    extern "C" {
        fn ld_cah_plt_resolve();
    }

    /// The PLT resolver for `GOT[2]`; it calls `fixup`.
    pub fn plt_resolver(fixup: extern "C" fn(usize, usize) -> usize) -> usize {
        PLT_FIXUP.store(fixup as usize, core::sync::atomic::Ordering::Release);
        ld_cah_plt_resolve as *const () as usize
    }

    /// Points the TCB of the thread whose pointer is `tp` at a new DTV.
    ///
    /// # Safety
    /// `tp` is a live thread's TCB.
    pub unsafe fn set_dtv_of(tp: usize, dtv: usize) {
        // SAFETY: forwarded; `tcbhead_t.dtv` is at `tp`.
        unsafe { *(tp as *mut usize) = dtv };
    }

    /// Fills the TCB at the thread pointer: `tcbhead_t { dtv, private }`.
    /// The stack guard is a global on aarch64 (`__stack_chk_guard`), not a
    /// TCB field.
    ///
    /// # Safety
    /// `tp` points at a writable 16-byte TCB.
    pub unsafe fn init_tcb(tp: usize, dtv: usize, _stack_guard: usize, _pointer_guard: usize) {
        // SAFETY: forwarded to the caller.
        unsafe { *(tp as *mut usize) = dtv };
    }

    /// The calling thread's DTV (`tcbhead_t.dtv`, at the thread pointer).
    #[inline(always)]
    pub fn current_dtv() -> usize {
        // SAFETY: the TCB is set up before any TLS access can happen.
        unsafe { *(thread_pointer() as *const usize) }
    }

    /// The DTV of the thread whose pointer is `tp` (`tcbhead_t.dtv` at `tp`).
    pub fn dtv_of(tp: usize) -> usize {
        // SAFETY: `tp` is a live thread's TCB (callers take it from libc's thread lists).
        unsafe { *(tp as *const usize) }
    }

    /// The calling thread's pointer.
    pub fn thread_pointer_value() -> usize {
        thread_pointer()
    }

    // Error unwinding for glibc's `_dl_catch_exception` (see x86_64.rs):
    // callee-saved x19-x30, sp and d8-d15 go to `buf`.
    global_asm!(
        ".globl ld_cah_try",
        ".hidden ld_cah_try",
        ".type ld_cah_try, %function",
        "ld_cah_try:",
        "stp x19, x20, [x2]",
        "stp x21, x22, [x2, #16]",
        "stp x23, x24, [x2, #32]",
        "stp x25, x26, [x2, #48]",
        "stp x27, x28, [x2, #64]",
        "stp x29, x30, [x2, #80]",
        "mov x3, sp",
        "str x3, [x2, #96]",
        "stp d8, d9, [x2, #104]",
        "stp d10, d11, [x2, #120]",
        "stp d12, d13, [x2, #136]",
        "stp d14, d15, [x2, #152]",
        "stp x29, x30, [sp, #-16]!",
        "mov x29, sp",
        "mov x3, x0",
        "mov x0, x1",
        "blr x3",
        "ldp x29, x30, [sp], #16",
        "mov w0, #0",
        "ret",
        ".size ld_cah_try, . - ld_cah_try",
        ".globl ld_cah_throw",
        ".hidden ld_cah_throw",
        ".type ld_cah_throw, %function",
        "ld_cah_throw:",
        "ldp x19, x20, [x0]",
        "ldp x21, x22, [x0, #16]",
        "ldp x23, x24, [x0, #32]",
        "ldp x25, x26, [x0, #48]",
        "ldp x27, x28, [x0, #64]",
        "ldp x29, x30, [x0, #80]",
        "ldr x3, [x0, #96]",
        "mov sp, x3",
        "ldp d8, d9, [x0, #104]",
        "ldp d10, d11, [x0, #120]",
        "ldp d12, d13, [x0, #136]",
        "ldp d14, d15, [x0, #152]",
        "mov w0, #1",
        "ret",
        ".size ld_cah_throw, . - ld_cah_throw",
    );

    extern "C" {
        /// See the assembly above.
        pub fn ld_cah_try(operate: usize, args: usize, buf: *mut [usize; JMP_WORDS]) -> i32;
        /// See the assembly above.
        pub fn ld_cah_throw(buf: *const [usize; JMP_WORDS]) -> !;
    }

    /// Words `ld_cah_try` saves.
    pub const JMP_WORDS: usize = 24;

    /// x86 XCR0; none here.
    pub fn xgetbv0() -> u64 {
        0
    }

    /// x86 `cpuid`; none here.
    pub fn cpuid(_leaf: u32, _sub: u32) -> Option<[u32; 4]> {
        None
    }

    /// The `blake3` crate detects nothing here: NEON is part of the base
    /// ISA.
    pub const BLAKE3_DETECTS_CPU: bool = false;

    /// One x86 CPUID answer; never produced here.
    pub type CpuidLeaf = (u32, u32, [u32; 4]);

    /// x86 CPUID answers to record; none here.
    pub fn cpuid_log(_f: impl FnMut(CpuidLeaf)) {}

    /// x86 CPUID answers to replay; a plan holds none here.
    pub fn cpuid_replay(
        recorded: impl Iterator<Item = CpuidLeaf> + Clone,
        _xcr0: u64,
        _this_boot: bool,
    ) -> Result<(usize, bool), &'static str> {
        match recorded.count() {
            0 => Ok((0, false)),
            _ => Err("CPUID leaves on aarch64"),
        }
    }

    /// x86 XCR0; none here.
    pub fn xcr0() -> u64 {
        0
    }

    /// `(MIDR_EL1, DCZID_EL0)`. MIDR is readable from user space only when
    /// the kernel emulates it (`HWCAP_CPUID`, bit 11).
    pub fn aarch64_id_regs(hwcap: u64) -> Option<(u64, u64)> {
        let mut midr = 0u64;
        if hwcap & (1 << 11) != 0 {
            // SAFETY: the kernel traps and emulates this read (HWCAP_CPUID).
            unsafe { asm!("mrs {}, midr_el1", out(reg) midr, options(nostack, nomem, preserves_flags)) };
        }
        let dczid: u64;
        // SAFETY: DCZID_EL0 is readable at EL0 by definition.
        unsafe { asm!("mrs {}, dczid_el0", out(reg) dczid, options(nostack, nomem, preserves_flags)) };
        Some((midr, dczid))
    }

    pub fn tlsdesc_static() -> usize {
        ld_cah_tlsdesc_static as *const () as usize
    }
}

/// `st_mode`, `st_uid` and `st_gid` of the generic (aarch64) `struct stat`
/// (as 64-bit words): the fields whose places differ between the arches.
#[cfg(target_arch = "aarch64")]
pub fn stat_ids(w: &[u64; 20]) -> (u32, u32, u32) {
    // st_dev 0, st_ino 8, st_mode 16 (u32), st_nlink 20, st_uid 24,
    // st_gid 28, st_rdev 32, pad 40, st_size 48, st_blksize 56 (i32),
    // st_blocks 64, st_atime 72/80, st_mtime 88/96, st_ctime 104/112.
    (w[2] as u32, w[3] as u32, (w[3] >> 32) as u32)
}
