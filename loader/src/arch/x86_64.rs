//! x86_64: relocation numbers, TLS variant II, and the machine code.

use super::{ArchInfo, RelocKind, TlsVariant};

pub struct X86_64;

impl ArchInfo for X86_64 {
    const MACHINE: u16 = object::elf::EM_X86_64;
    const R_RELATIVE: u32 = object::elf::R_X86_64_RELATIVE;
    const TLS_VARIANT: TlsVariant = TlsVariant::Two;
    const GLIBC_INTERP: &'static str = "/lib64/ld-linux-x86-64.so.2";
    const DEFAULT_DIRS: &'static [&'static str] = &["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib", "/usr/lib"];
    // FLAG_ELF_LIBC6 | FLAG_X8664_LIB64
    const LDCACHE_FLAGS: i32 = 0x0303;
    const DST_LIB: &'static str = "lib/x86_64-linux-gnu";
    const PLATFORM: &'static str = "x86_64";

    const R_JUMP_SLOT: u32 = object::elf::R_X86_64_JUMP_SLOT;
    const R_GLOB_DAT: u32 = object::elf::R_X86_64_GLOB_DAT;
    const R_ABS64: u32 = object::elf::R_X86_64_64;
    const PLT_PASSES_SLOT: bool = false;

    fn reloc_kind(r_type: u32) -> Option<RelocKind> {
        use object::elf::*;
        Some(match r_type {
            R_X86_64_NONE => RelocKind::None,
            R_X86_64_RELATIVE => RelocKind::Relative,
            R_X86_64_64 => RelocKind::Absolute,
            R_X86_64_GLOB_DAT | R_X86_64_JUMP_SLOT => RelocKind::Symbol,
            R_X86_64_COPY => RelocKind::Copy,
            R_X86_64_IRELATIVE => RelocKind::IRelative,
            R_X86_64_DTPMOD64 => RelocKind::DtpMod,
            R_X86_64_DTPOFF64 => RelocKind::DtpOff,
            R_X86_64_TPOFF64 => RelocKind::TpOff,
            R_X86_64_TLSDESC => RelocKind::TlsDesc,
            _ => return None,
        })
    }
}

#[cfg(target_arch = "x86_64")]
pub use machine::*;

#[cfg(target_arch = "x86_64")]
mod machine {
    use core::arch::{asm, global_asm};

    pub type Native = super::X86_64;

    pub mod nr {
        pub const READ: usize = 0;
        pub const WRITE: usize = 1;
        pub const CLOSE: usize = 3;
        pub const FSTAT: usize = 5;
        pub const FSTATFS: usize = 138;
        pub const MMAP: usize = 9;
        pub const MPROTECT: usize = 10;
        pub const MUNMAP: usize = 11;
        pub const RT_SIGPROCMASK: usize = 14;
        pub const PREAD64: usize = 17;
        pub const GETPID: usize = 39;
        pub const CLONE: usize = 56;
        pub const EXIT: usize = 60;
        pub const GETCWD: usize = 79;
        pub const ARCH_PRCTL: usize = 158;
        pub const GETTID: usize = 186;
        pub const FUTEX: usize = 202;
        pub const SCHED_GETAFFINITY: usize = 204;
        pub const SET_TID_ADDRESS: usize = 218;
        pub const EXIT_GROUP: usize = 231;
        pub const OPENAT: usize = 257;
        pub const READLINKAT: usize = 267;
        pub const FACCESSAT: usize = 269;
        pub const SET_ROBUST_LIST: usize = 273;
        pub const RSEQ: usize = 334;
        // Content verification (hash cache, trust checks).
        pub const FCHMOD: usize = 91;
        pub const GETUID: usize = 102;
        pub const GETEUID: usize = 107;
        pub const MKDIRAT: usize = 258;
        pub const UNLINKAT: usize = 263;
        pub const FALLOCATE: usize = 285;
        pub const RENAMEAT2: usize = 316;
        // `openat` flags that differ between the architectures.
        pub const O_DIRECTORY: u32 = 0o200000;
        pub const O_NOFOLLOW: u32 = 0o400000;
    }

    /// # Safety
    /// The caller upholds the contract of syscall `n` for these arguments.
    #[inline(always)]
    pub unsafe fn syscall6(n: usize, a: [usize; 6]) -> isize {
        let ret: isize;
        // SAFETY: the syscall instruction clobbers rcx and r11 only; the
        // caller vouches for what the kernel does with the arguments.
        unsafe {
            asm!("syscall",
                inlateout("rax") n as isize => ret,
                in("rdi") a[0], in("rsi") a[1], in("rdx") a[2],
                in("r10") a[3], in("r8") a[4], in("r9") a[5],
                lateout("rcx") _, lateout("r11") _,
                options(nostack));
        }
        ret
    }

    /// `clone(flags, stack_top, 0, ctid, 0)` for a thread that calls
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
        // SAFETY: the parent returns from `syscall` with rcx and r11
        // clobbered, as declared. The child starts on `stack_top` with
        // the parent's registers: it calls `entry(arg)` (r12, r13 are
        // preserved across `syscall`) with the stack aligned as the ABI
        // wants after the `call`, then exits without returning into the
        // parent's frame, whose stack it never touches.
        unsafe {
            asm!(
                "syscall",
                "test rax, rax",
                "jnz 2f",
                "xor ebp, ebp",
                "mov rdi, r12",
                "call r13",
                "mov eax, {exit}",
                "xor edi, edi",
                "syscall",
                "ud2",
                "2:",
                exit = const nr::EXIT,
                inlateout("rax") nr::CLONE as isize => ret,
                in("rdi") flags, in("rsi") stack_top, in("rdx") 0usize,
                in("r10") ctid, in("r8") 0usize,
                in("r12") arg, in("r13") entry as usize,
                lateout("rcx") _, lateout("r11") _,
                options(nostack));
        }
        ret
    }

    /// How to set the thread pointer: x86_64 needs a system call
    /// (`arch_prctl(ARCH_SET_FS, tp)`), which `sys` makes.
    ///
    /// # Safety
    /// `tp` must point at a TCB that stays valid for the thread's life.
    pub unsafe fn set_thread_pointer(tp: usize) -> Option<(usize, [usize; 6])> {
        const ARCH_SET_FS: usize = 0x1002;
        Some((nr::ARCH_PRCTL, [ARCH_SET_FS, tp, 0, 0, 0, 0]))
    }

    /// The thread pointer: the TCB's first word holds its own address.
    #[inline(always)]
    pub fn thread_pointer() -> usize {
        let tp: usize;
        // SAFETY: %fs:0 is readable once TLS is set up, which happens
        // before any code calls this.
        unsafe { asm!("mov {}, fs:0", out(reg) tp, options(nostack, readonly, preserves_flags)) };
        tp
    }

    /// Starts the program: stack pointer back at `argc`, `%rdx` = the
    /// function the program registers with `atexit` (ABI of `_start`).
    ///
    /// # Safety
    /// `entry` is the program's entry point and `sp` its initial stack.
    pub unsafe fn jump_to_entry(entry: usize, sp: usize, fini: usize) -> ! {
        // SAFETY: this abandons the loader's stack frame for good.
        unsafe {
            asm!("mov rsp, {sp}", "xor ebp, ebp", "jmp {entry}",
                sp = in(reg) sp, entry = in(reg) entry, in("rdx") fini,
                options(noreturn))
        }
    }

    /// Calls an IFUNC resolver. x86_64 resolvers take no arguments.
    ///
    /// # Safety
    /// `resolver` is the address of an `STT_GNU_IFUNC` function of a relocated object.
    pub unsafe fn call_ifunc(resolver: usize, _hwcap: u64, _hwcap2: u64) -> usize {
        // SAFETY: forwarded; the resolver follows the C ABI.
        let f: extern "C" fn() -> usize = unsafe { core::mem::transmute(resolver) };
        f()
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

    // TLSDESC resolver for a symbol in static TLS: the descriptor's second
    // word already is the offset from the thread pointer. The calling
    // convention (argument in %rax, result in %rax, everything else
    // preserved) is why this is assembly.
    global_asm!(
        ".globl ld_cah_tlsdesc_static",
        ".hidden ld_cah_tlsdesc_static",
        ".type ld_cah_tlsdesc_static, @function",
        "ld_cah_tlsdesc_static:",
        "mov rax, [rax + 8]",
        "ret",
        ".size ld_cah_tlsdesc_static, . - ld_cah_tlsdesc_static",
    );

    // TLSDESC resolver for a module in dynamic TLS: the descriptor's second
    // word points at a `tls_index`; the block may not exist yet in this
    // thread, so this calls into Rust, after saving every register the C
    // ABI lets a callee clobber (general registers, and the x87/SSE state
    // with fxsave: the Rust code uses SSE registers; it never touches the
    // upper halves of AVX registers, which legacy SSE leaves intact).
    global_asm!(
        ".globl ld_cah_tlsdesc_dynamic",
        ".hidden ld_cah_tlsdesc_dynamic",
        ".type ld_cah_tlsdesc_dynamic, @function",
        "ld_cah_tlsdesc_dynamic:",
        "push rbx",
        "push rdi",
        "push rsi",
        "push rdx",
        "push rcx",
        "push r8",
        "push r9",
        "push r10",
        "push r11",
        "mov rdi, [rax + 8]",
        "mov rbx, rsp",
        "and rsp, -64",
        "sub rsp, 512",
        "fxsave64 [rsp]",
        "call qword ptr [rip + {slow}]",
        "fxrstor64 [rsp]",
        "mov rsp, rbx",
        "pop r11",
        "pop r10",
        "pop r9",
        "pop r8",
        "pop rcx",
        "pop rdx",
        "pop rsi",
        "pop rdi",
        "pop rbx",
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

    // Lazy binding: the PLT resolver `GOT[2]` holds. The linker's PLT
    // entry pushed the relocation's index in `DT_JMPREL` and jumped to
    // PLT0, which pushed `GOT[1]` (the object's id) and jumped here; the
    // caller's arguments are still in their registers and must reach the
    // function untouched. So every register the SysV ABI passes arguments
    // in is saved: rdi rsi rdx rcx r8 r9, rax (the vector-register count
    // of a variadic call), r10 (the static chain of nested functions),
    // and the vector state. The `xsave` variant saves x87, SSE, AVX (the
    // upper halves of ymm0-15, which carry `__m256` arguments) and AVX-512
    // (k0-7, zmm upper halves, zmm16-31) with `xsave` into a buffer sized
    // by CPUID leaf 0xD; the `fxsave` variant, for CPUs without XSAVE,
    // saves x87 and xmm0-15. The Rust code in between is compiled for
    // baseline x86_64 (legacy SSE encodings, which leave the upper halves
    // of ymm registers alone), but an IFUNC resolver the fixup calls may
    // use anything. The stack is realigned to 64 bytes for the save area,
    // which also aligns it for the call. The bound address comes back in
    // rax and is jumped to through r11 (scratch, never an argument), with
    // the two pushed words dropped: the function returns straight to the
    // caller of the PLT entry.
    global_asm!(
        // What both variants share: the argument registers saved below a
        // frame anchored in rbx, and, after the vector state is back, the
        // way out to the bound function.
        ".macro ld_cah_plt_save_args",
        "push rbx",
        "mov rbx, rsp",
        "push rax",
        "push rcx",
        "push rdx",
        "push rsi",
        "push rdi",
        "push r8",
        "push r9",
        "push r10",
        "and rsp, -64",
        ".endm",
        ".macro ld_cah_plt_fixup",
        "mov rdi, [rbx + 8]",
        "mov rsi, [rbx + 16]",
        "call qword ptr [rip + {fixup}]",
        "mov r11, rax",
        ".endm",
        ".macro ld_cah_plt_restore_args_and_go",
        "lea rsp, [rbx - 64]",
        "pop r10",
        "pop r9",
        "pop r8",
        "pop rdi",
        "pop rsi",
        "pop rdx",
        "pop rcx",
        "pop rax",
        "pop rbx",
        "add rsp, 16",
        "jmp r11",
        ".endm",
        ".globl ld_cah_plt_resolve_xsave",
        ".hidden ld_cah_plt_resolve_xsave",
        ".type ld_cah_plt_resolve_xsave, @function",
        "ld_cah_plt_resolve_xsave:",
        "ld_cah_plt_save_args",
        "sub rsp, qword ptr [rip + {size}]",
        // The XSAVE header must be zero where xsave does not write it
        // (xrstor faults on reserved bits).
        "xor eax, eax",
        "mov [rsp + 512], rax",
        "mov [rsp + 520], rax",
        "mov [rsp + 528], rax",
        "mov [rsp + 536], rax",
        "mov [rsp + 544], rax",
        "mov [rsp + 552], rax",
        "mov [rsp + 560], rax",
        "mov [rsp + 568], rax",
        "mov eax, 0xff",
        "xor edx, edx",
        "xsave64 [rsp]",
        "ld_cah_plt_fixup",
        "mov eax, 0xff",
        "xor edx, edx",
        "xrstor64 [rsp]",
        "ld_cah_plt_restore_args_and_go",
        ".size ld_cah_plt_resolve_xsave, . - ld_cah_plt_resolve_xsave",
        ".globl ld_cah_plt_resolve_xsavec",
        ".hidden ld_cah_plt_resolve_xsavec",
        ".type ld_cah_plt_resolve_xsavec, @function",
        "ld_cah_plt_resolve_xsavec:",
        "ld_cah_plt_save_args",
        "sub rsp, qword ptr [rip + {size}]",
        // As above; xsavec writes XSTATE_BV and XCOMP_BV, and xrstor
        // faults unless the rest of the header is zero. The mask leaves
        // out the x87 state (no argument travels in it, and the stack of
        // x87 registers is empty at a call) and MPX's BNDCSR (a
        // configuration, not an argument): restoring them cost more than
        // the rest of the save.
        "xor eax, eax",
        "mov [rsp + 512], rax",
        "mov [rsp + 520], rax",
        "mov [rsp + 528], rax",
        "mov [rsp + 536], rax",
        "mov [rsp + 544], rax",
        "mov [rsp + 552], rax",
        "mov [rsp + 560], rax",
        "mov [rsp + 568], rax",
        "mov eax, 0xee",
        "xor edx, edx",
        "xsavec64 [rsp]",
        "ld_cah_plt_fixup",
        "mov eax, 0xee",
        "xor edx, edx",
        "xrstor64 [rsp]",
        "ld_cah_plt_restore_args_and_go",
        ".size ld_cah_plt_resolve_xsavec, . - ld_cah_plt_resolve_xsavec",
        ".globl ld_cah_plt_resolve_fxsave",
        ".hidden ld_cah_plt_resolve_fxsave",
        ".type ld_cah_plt_resolve_fxsave, @function",
        "ld_cah_plt_resolve_fxsave:",
        "ld_cah_plt_save_args",
        "sub rsp, 512",
        "fxsave64 [rsp]",
        "ld_cah_plt_fixup",
        "fxrstor64 [rsp]",
        "ld_cah_plt_restore_args_and_go",
        ".size ld_cah_plt_resolve_fxsave, . - ld_cah_plt_resolve_fxsave",
        ".purgem ld_cah_plt_save_args",
        ".purgem ld_cah_plt_fixup",
        ".purgem ld_cah_plt_restore_args_and_go",
        size = sym XSAVE_SIZE,
        fixup = sym PLT_FIXUP,
    );

    extern "C" {
        fn ld_cah_plt_resolve_xsave();
        fn ld_cah_plt_resolve_xsavec();
        fn ld_cah_plt_resolve_fxsave();
    }

    /// Bytes the `xsave` resolver reserves: CPUID leaf 0xD's size for the
    /// state XCR0 enables, rounded up to 64; written once, before any
    /// object's `GOT[2]` points at that resolver.
    static XSAVE_SIZE: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

    /// The PLT resolver for `GOT[2]`: the `xsavec` one when the CPU has
    /// XSAVEC (the compacted form skips state in its initial
    /// configuration, such as unused AVX-512 registers: a few kilobytes
    /// less to write and read back at every lazy binding), else the
    /// `xsave` one when the CPU and the kernel support XSAVE, else the
    /// `fxsave` one; it calls `fixup`.
    pub fn plt_resolver(fixup: extern "C" fn(usize, usize) -> usize) -> usize {
        use core::sync::atomic::{AtomicUsize, Ordering};
        PLT_FIXUP.store(fixup as usize, Ordering::Release);
        static CHOSEN: AtomicUsize = AtomicUsize::new(0);
        let chosen = CHOSEN.load(Ordering::Relaxed);
        if chosen != 0 {
            return chosen;
        }
        let xsave = cpuid(1, 0).is_some_and(|r| r[2] & (1 << 26) != 0 && r[2] & (1 << 27) != 0);
        let size = if xsave { cpuid(0xd, 0).map_or(0, |r| r[1] as usize) } else { 0 };
        // CPUID leaf 0xD, sub-leaf 1, EAX bit 1: XSAVEC. Its compacted
        // area is never larger than the standard one sized above.
        let xsavec = xsave && cpuid(0xd, 1).is_some_and(|r| r[0] & (1 << 1) != 0);
        let f = if size >= 576 {
            // Stored before any GOT points at the resolver that reads it.
            XSAVE_SIZE.store((size + 63) & !63, Ordering::Relaxed);
            if xsavec {
                ld_cah_plt_resolve_xsavec as *const () as usize
            } else {
                ld_cah_plt_resolve_xsave as *const () as usize
            }
        } else {
            ld_cah_plt_resolve_fxsave as *const () as usize
        };
        CHOSEN.store(f, Ordering::Relaxed);
        f
    }

    /// Points the TCB of the thread whose pointer is `tp` at a new DTV.
    ///
    /// # Safety
    /// `tp` is a live thread's TCB.
    pub unsafe fn set_dtv_of(tp: usize, dtv: usize) {
        // SAFETY: forwarded; `tcbhead_t.dtv` is at `tp + 8`.
        unsafe { *((tp + 8) as *mut usize) = dtv };
    }

    /// Fills the ABI part of the TCB at the thread pointer: the self
    /// pointer that `%fs:0` reads, the DTV, and the stack-protector and
    /// pointer-mangling guards at `%fs:0x28` and `%fs:0x30` (fixed by GCC).
    ///
    /// # Safety
    /// `tp` points at a writable TCB of at least 64 bytes.
    pub unsafe fn init_tcb(tp: usize, dtv: usize, stack_guard: usize, pointer_guard: usize) {
        let w = tp as *mut usize;
        // SAFETY: forwarded to the caller.
        unsafe {
            *w = tp;
            *w.add(1) = dtv;
            *w.add(2) = tp;
            *w.add(5) = stack_guard;
            *w.add(6) = pointer_guard;
        }
    }

    /// The calling thread's DTV (`tcbhead_t.dtv`, at `%fs:8`).
    #[inline(always)]
    pub fn current_dtv() -> usize {
        let dtv: usize;
        // SAFETY: the TCB is set up before any TLS access can happen.
        unsafe { asm!("mov {}, fs:8", out(reg) dtv, options(nostack, readonly, preserves_flags)) };
        dtv
    }

    /// The DTV of the thread whose pointer is `tp` (`tcbhead_t.dtv` at `tp + 8`).
    pub fn dtv_of(tp: usize) -> usize {
        // SAFETY: `tp` is a live thread's TCB (callers take it from libc's thread lists).
        unsafe { *((tp + 8) as *const usize) }
    }

    /// The calling thread's pointer.
    pub fn thread_pointer_value() -> usize {
        thread_pointer()
    }

    /// `xgetbv(0)`: which register state the OS saves (XCR0).
    pub fn xgetbv0() -> u64 {
        let (lo, hi): (u32, u32);
        // SAFETY: only called when CPUID says OSXSAVE, so XGETBV is enabled.
        unsafe { asm!("xgetbv", in("ecx") 0u32, out("eax") lo, out("edx") hi, options(nostack, nomem, preserves_flags)) };
        (u64::from(hi) << 32) | u64::from(lo)
    }

    /// `cpuid` with a sub-leaf: `[eax, ebx, ecx, edx]`. The leaves the
    /// loader reads are executed once per process and remembered: in a
    /// virtual machine every CPUID traps to the hypervisor (4-5 us each on
    /// the VMs of docs/benchmarks.md), and the CPU description libc reads
    /// and the PLT resolver's choice ask for the same leaves (1 and 0xd)
    /// again. A leaf the binding plan recorded is answered from it once
    /// [`cpuid_replay`] has accepted the plan's leaves; every answer is
    /// logged for the next plan ([`cpuid_log`]).
    #[inline(never)]
    pub fn cpuid(leaf: u32, sub: u32) -> Option<[u32; 4]> {
        use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};
        let kept = CPUID_KEPT.iter().position(|&k| k == (leaf, sub));
        if let Some(slot) = kept.map(|i| &CPUID_SEEN[i]).filter(|s| s.done.load(Acquire)) {
            return Some(slot.regs.each_ref().map(|r| r.load(Relaxed)));
        }
        let regs = {
            let mut r = CPUID_RECORD.lock();
            let regs = r.replayed(leaf, sub).unwrap_or_else(|| cpuid_now(leaf, sub));
            r.log(leaf, sub, regs);
            regs
        };
        if let Some(slot) = kept.map(|i| &CPUID_SEEN[i]) {
            // Two threads racing here store the same identification (only
            // the APIC id in leaf 1 differs between cores, and nothing
            // reads it).
            for (r, v) in slot.regs.iter().zip(regs) {
                r.store(v, Relaxed);
            }
            slot.done.store(true, Release);
        }
        Some(regs)
    }

    /// The `blake3` crate picks its SIMD code with CPUID on its first hash
    /// (`verify::digest` keeps short inputs away from it for that).
    pub const BLAKE3_DETECTS_CPU: bool = true;

    /// One CPUID answer: leaf, sub-leaf, `[eax, ebx, ecx, edx]`.
    pub type CpuidLeaf = (u32, u32, [u32; 4]);

    /// Most leaves a start records or replays (glibc's CPU set-up asks
    /// 20-25 on the machines measured).
    const CPUID_RECORDED_MAX: usize = 32;

    /// The leaves this process asked for (recording), or those a plan
    /// answers (replaying): a start that obeys a plan records none.
    struct CpuidRecord {
        leaves: [CpuidLeaf; CPUID_RECORDED_MAX],
        len: usize,
        replaying: bool,
        /// More distinct leaves than `leaves` holds: nothing is recorded.
        overflow: bool,
    }

    impl CpuidRecord {
        fn replayed(&self, leaf: u32, sub: u32) -> Option<[u32; 4]> {
            self.leaves[..self.len].iter().find(|e| self.replaying && (e.0, e.1) == (leaf, sub)).map(|e| e.2)
        }

        fn log(&mut self, leaf: u32, sub: u32, regs: [u32; 4]) {
            if self.replaying || self.leaves[..self.len].iter().any(|e| (e.0, e.1) == (leaf, sub)) {
                return;
            }
            // The core's own APIC id is recorded as 0, so that a plan is
            // the same whichever core recorded it (nothing replays it:
            // leaf 1 is always executed, the x2APIC id of leaves 0xb and
            // 0x1f is not read).
            let mut regs = regs;
            match leaf {
                1 => regs[1] &= 0x00ff_ffff,
                0xb | 0x1f => regs[3] = 0,
                _ => {}
            }
            match self.leaves.get_mut(self.len) {
                Some(e) => {
                    *e = (leaf, sub, regs);
                    self.len += 1;
                }
                None => self.overflow = true,
            }
        }
    }

    static CPUID_RECORD: spin::Mutex<CpuidRecord> =
        spin::Mutex::new(CpuidRecord { leaves: [(0, 0, [0; 4]); CPUID_RECORDED_MAX], len: 0, replaying: false, overflow: false });

    /// Whether a leaf is executed, not replayed: the feature leaves (1 and
    /// 7), which [`cpuid_replay`] compares with the recording instead
    /// (unless it was made this boot), and the XSAVE leaf (0xd) unless XCR0
    /// is as recorded: its sizes follow what the kernel enabled there, and
    /// size the PLT resolver's save area, which a stale one would overrun.
    fn cpuid_executed(leaf: u32, sub: u32, xcr0_as_recorded: bool, this_boot: bool) -> bool {
        (!this_boot && matches!((leaf, sub), (1, 0) | (7, 0))) || (leaf == 0xd && !xcr0_as_recorded)
    }

    /// XCR0, or 0 where the OS has not enabled XSAVE (leaf 1, ECX bit 27):
    /// what the XSAVE leaf's sizes depend on.
    pub fn xcr0() -> u64 {
        if cpuid(1, 0).is_some_and(|r| r[2] & (1 << 27) != 0) {
            xgetbv0()
        } else {
            0
        }
    }

    /// Every CPUID answer this process got so far (one per leaf and
    /// sub-leaf), for the binding plan to record; nothing when there were
    /// more than it keeps.
    pub fn cpuid_log(mut f: impl FnMut(CpuidLeaf)) {
        let r = CPUID_RECORD.lock();
        if !r.overflow && !r.replaying {
            r.leaves[..r.len].iter().for_each(|&e| f(e));
        }
    }

    /// Answers CPUID from `recorded` (a binding plan's leaves) from now on,
    /// if the recording was made on this CPU: leaves 1 and 7 are executed
    /// and must be what was recorded (leaf 1's EBX but for the APIC id,
    /// which differs between cores), so that libc never hears of a feature
    /// this CPU lacks. The other leaves describe caches, topology and
    /// brand, which a CPU with these features and this signature has as
    /// recorded; the XSAVE leaf too if XCR0 is now `xcr0` (XGETBV does not
    /// trap). With `this_boot` (the plan was recorded on this machine since
    /// it booted) the feature leaves are replayed too, and no CPUID is
    /// executed: a CPU's identification does not change while it runs.
    /// Returns how many leaves will be replayed, and whether the XSAVE
    /// leaf is among them.
    pub fn cpuid_replay(
        recorded: impl Iterator<Item = CpuidLeaf> + Clone,
        xcr0: u64,
        this_boot: bool,
    ) -> Result<(usize, bool), &'static str> {
        let mut leaf1 = [0; 4];
        for (leaf, mask) in [(1, [!0, 0x00ff_ffff, !0, !0]), (7, [!0; 4])] {
            let Some((_, _, was)) = recorded.clone().find(|e| (e.0, e.1) == (leaf, 0)) else {
                return Err("the plan has no feature leaves");
            };
            let now = if this_boot { was } else { cpuid(leaf, 0).unwrap_or([0; 4]) };
            if (0..4).any(|k| (was[k] ^ now[k]) & mask[k] != 0) {
                return Err("recorded on another CPU");
            }
            if leaf == 1 {
                leaf1 = now;
            }
        }
        // XCR0 as `xcr0()` reads it, from this CPU's leaf 1 (OSXSAVE).
        let xsave = xcr0 == if leaf1[2] & (1 << 27) != 0 { xgetbv0() } else { 0 };
        let replayed = recorded.filter(|e| !cpuid_executed(e.0, e.1, xsave, this_boot));
        let n = replayed.clone().count();
        if n > CPUID_RECORDED_MAX {
            return Err("too many leaves");
        }
        let mut r = CPUID_RECORD.lock();
        for (slot, e) in r.leaves.iter_mut().zip(replayed) {
            *slot = e;
        }
        (r.len, r.replaying) = (n, true);
        Ok((n, xsave))
    }

    fn cpuid_now(leaf: u32, sub: u32) -> [u32; 4] {
        // SAFETY: every x86_64 CPU has CPUID; it only reads identification registers.
        #[allow(unused_unsafe)]
        let r = unsafe { core::arch::x86_64::__cpuid_count(leaf, sub) };
        [r.eax, r.ebx, r.ecx, r.edx]
    }

    /// The (leaf, sub-leaf) pairs [`cpuid`] remembers.
    const CPUID_KEPT: [(u32, u32); 13] = [
        (0, 0),
        (1, 0),
        (7, 0),
        (7, 1),
        (0xd, 0),
        (0xd, 1),
        (0x14, 0),
        (0x19, 0),
        (0x24, 0),
        (0x8000_0000, 0),
        (0x8000_0001, 0),
        (0x8000_0007, 0),
        (0x8000_0008, 0),
    ];

    struct CpuidSlot {
        done: core::sync::atomic::AtomicBool,
        regs: [core::sync::atomic::AtomicU32; 4],
    }

    #[allow(clippy::declare_interior_mutable_const)]
    const EMPTY_SLOT: CpuidSlot =
        CpuidSlot { done: core::sync::atomic::AtomicBool::new(false), regs: [const { core::sync::atomic::AtomicU32::new(0) }; 4] };

    static CPUID_SEEN: [CpuidSlot; CPUID_KEPT.len()] = [EMPTY_SLOT; CPUID_KEPT.len()];

    /// aarch64 ID registers; none here.
    pub fn aarch64_id_regs(_hwcap: u64) -> Option<(u64, u64)> {
        None
    }

    // Error unwinding for glibc's `_dl_catch_exception` (2.37+, where libc
    // leaves the catch/signal machinery to the loader). `ld_cah_try` saves
    // the callee-saved registers and its own return address in `buf`, calls
    // `operate(args)` and returns 0; `ld_cah_throw(buf)` makes that same
    // `ld_cah_try` call return 1. Being assembly, the function that
    // "returns twice" is opaque to the compiler.
    global_asm!(
        ".globl ld_cah_try",
        ".hidden ld_cah_try",
        ".type ld_cah_try, @function",
        "ld_cah_try:",
        "mov [rdx], rbx",
        "mov [rdx + 8], rbp",
        "mov [rdx + 16], r12",
        "mov [rdx + 24], r13",
        "mov [rdx + 32], r14",
        "mov [rdx + 40], r15",
        "lea rax, [rsp + 8]",
        "mov [rdx + 48], rax",
        "mov rax, [rsp]",
        "mov [rdx + 56], rax",
        "mov rax, rdi",
        "mov rdi, rsi",
        // The stack is as our caller left it minus the return address;
        // realign for the call.
        "sub rsp, 8",
        "call rax",
        "add rsp, 8",
        "xor eax, eax",
        "ret",
        ".size ld_cah_try, . - ld_cah_try",
        ".globl ld_cah_throw",
        ".hidden ld_cah_throw",
        ".type ld_cah_throw, @function",
        "ld_cah_throw:",
        "mov rbx, [rdi]",
        "mov rbp, [rdi + 8]",
        "mov r12, [rdi + 16]",
        "mov r13, [rdi + 24]",
        "mov r14, [rdi + 32]",
        "mov r15, [rdi + 40]",
        "mov rsp, [rdi + 48]",
        "mov eax, 1",
        "jmp qword ptr [rdi + 56]",
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

    /// The address of the static TLSDESC resolver.
    pub fn tlsdesc_static() -> usize {
        ld_cah_tlsdesc_static as *const () as usize
    }
}

/// `st_mode`, `st_uid` and `st_gid` of x86_64's `struct stat` (as 64-bit
/// words): the fields whose places differ between the arches.
#[cfg(target_arch = "x86_64")]
pub fn stat_ids(w: &[u64; 20]) -> (u32, u32, u32) {
    // st_dev 0, st_ino 8, st_nlink 16, st_mode 24 (u32), st_uid 28,
    // st_gid 32, st_rdev 40, st_size 48, st_blksize 56, st_blocks 64,
    // st_atime 72/80, st_mtime 88/96, st_ctime 104/112.
    (w[3] as u32, (w[3] >> 32) as u32, w[4] as u32)
}
