//! The CPU description libc's IFUNC resolvers read from
//! `_rtld_global_ro`.
//!
//! x86_64: identification, raw CPUID leaves, and the "active" (usable)
//! bits by glibc's rules: features that need no operating-system support
//! are active when present; AVX-class features only when XCR0 says the OS
//! saves YMM state, AVX-512 ones only with opmask/ZMM state, AMX with tile
//! state; RTM/HLE not when the CPU says RTM always aborts. The `preferred`
//! tuning bits follow glibc's vendor rules for current CPUs. Cache sizes
//! are conservative constants (they tune, not select, the string
//! functions; zero thresholds would make libc's `memcpy` crash). aarch64: MIDR, DC ZVA block size, BTI, SVE
//! and MOPS from the kernel's hwcaps and the ID registers.

use super::layout::{Arch, Field, Layout};
use super::raw::Raw;
use crate::arch::native;

/// CPUID leaves in glibc's `features[]` order (2.36; 2.41 appends more).
const LEAVES: [(u32, u32); 10] =
    [(1, 0), (7, 0), (0x8000_0001, 0), (0xd, 1), (0x8000_0007, 0), (0x8000_0008, 0), (7, 1), (0x19, 0), (0x14, 0), (0x24, 0)];

pub fn fill(l: &Layout, ro: Raw, hwcap: u64, hwcap2: u64) {
    match l.arch {
        Arch::X86_64 => fill_x86(l, ro),
        Arch::Aarch64 => fill_aarch64(l, ro, hwcap, hwcap2),
    }
}

fn fill_x86(l: &Layout, ro: Raw) {
    let (Some(off), Some(cf), Some(leaf)) = (l.rtld_global_ro._dl_x86_cpu_features, l.x86_cpu_features, l.cpuid_feature_internal) else {
        return;
    };
    let c = ro.sub(off);
    let Some(v0) = native::cpuid(0, 0) else { return };
    let max = v0[0];
    let max_ext = native::cpuid(0x8000_0000, 0).map_or(0, |r| r[0]);
    // Vendor: "GenuineIntel" / "AuthenticAMD" / "CentaurHauls"+"  Shanghai  ".
    let kind = match (v0[1], v0[3], v0[2]) {
        (0x756e_6547, 0x4965_6e69, 0x6c65_746e) => 1,
        (0x6874_7541, 0x6974_6e65, 0x444d_4163) => 2,
        (0x746e_6543, 0x4872_7561, 0x736c_7561) | (0x6853_2020, 0x6867_6e61, 0x2020_6961) => 3,
        _ => 4,
    };
    c.put(cf.basic_kind, kind);
    c.put(cf.basic_max_cpuid, u64::from(max));
    if let Some(v1) = native::cpuid(1, 0) {
        let eax = v1[0];
        let mut family = (eax >> 8) & 0xf;
        let mut model = (eax >> 4) & 0xf;
        if family == 0xf {
            family += (eax >> 20) & 0xff;
        }
        if family >= 6 {
            model += ((eax >> 16) & 0xf) << 4;
        }
        c.put(cf.basic_family, u64::from(family));
        c.put(cf.basic_model, u64::from(model));
        c.put(cf.basic_stepping, u64::from(eax & 0xf));
    }
    // 2.31's `cpu_features` has another feature layout (`cpuid[]` and
    // `feature[]`, no `features[]`): it is left zero, so libc's IFUNCs take
    // their baseline x86-64 implementations.
    let Some(features) = cf.features else {
        c.put(cf.data_cache_size, 32 * 1024);
        c.put(cf.shared_cache_size, 1024 * 1024);
        c.put(cf.non_temporal_threshold, (1024 * 1024 * 3 / 4) as u64);
        return;
    };
    for (i, &(lf, sub)) in LEAVES.iter().enumerate().take(features.len as usize) {
        let available = if lf >= 0x8000_0000 { lf <= max_ext } else { lf <= max };
        let Some(base) = features.at(i as u32) else { break };
        let regs = if available { native::cpuid(lf, sub).unwrap_or([0; 4]) } else { [0; 4] };
        for (k, r) in regs.iter().enumerate() {
            c.put(Field { off: base + leaf.cpuid.off + 4 * k as u32, size: 4 }, u64::from(*r));
        }
    }
    // Usable bits, register by register, for the leaves glibc knows.
    let xcr0 = if native::cpuid(1, 0).is_some_and(|r| r[2] & (1 << 27) != 0) { native::xgetbv0() } else { 0 };
    let ymm = xcr0 & 0x6 == 0x6;
    let zmm = ymm && xcr0 & 0xe0 == 0xe0;
    let amx = xcr0 & (3 << 17) == 3 << 17;
    let rtm_always_aborts = native::cpuid(7, 0).is_some_and(|r| r[3] & (1 << 11) != 0) && max >= 7;
    let mut active_of = [[0u32; 4]; LEAVES.len()];
    for (i, &(lf, _)) in LEAVES.iter().enumerate().take(features.len as usize) {
        let Some(base) = features.at(i as u32) else { break };
        for k in 0..4 {
            let raw = c.get(Field { off: base + leaf.cpuid.off + 4 * k as u32, size: 4 }) as u32;
            let m = &ACTIVE[i][k];
            let mut a = raw & m.always;
            if ymm {
                a |= raw & m.ymm;
            }
            if zmm {
                a |= raw & m.zmm;
            }
            if amx {
                a |= raw & m.amx;
            }
            if !rtm_always_aborts {
                a |= raw & m.tsx;
            }
            let _ = lf;
            active_of[i][k] = a;
            c.put(Field { off: base + leaf.active.off + 4 * k as u32, size: 4 }, u64::from(a));
        }
    }
    // preferred[0], glibc's bit order: Fast_Rep_String 0, Fast_Copy_Backward 1,
    // Slow_BSF 2, Fast_Unaligned_Load 3, Prefer_PMINUB_for_stringop 4,
    // Fast_Unaligned_Copy 5, I586 6, I686 7, Slow_SSE4_2 8,
    // AVX_Fast_Unaligned_Load 9, Prefer_No_VZEROUPPER 10, Prefer_ERMS 11,
    // Prefer_No_AVX512 12, MathVec_Prefer_No_AVX512 13, Prefer_FSRM 14,
    // Avoid_Short_Distance_REP_MOVSB 15.
    let has = |i: usize, k: usize, bit: u32| active_of[i][k] & (1 << bit) != 0;
    let mut pref = 0u64;
    if has(0, 3, 8) {
        pref |= 1 << 6; // CX8 -> I586
    }
    if has(0, 3, 15) {
        pref |= 1 << 7; // CMOV -> I686
    }
    if has(1, 1, 5) {
        pref |= 1 << 9; // AVX2 usable -> AVX_Fast_Unaligned_Load
    }
    let family = c.get(cf.basic_family);
    if kind == 1 && family == 6 && has(0, 2, 28) {
        // Intel family 6 with AVX (glibc's default for Nehalem and later).
        pref |= (1 << 0) | (1 << 3) | (1 << 5) | (1 << 4);
    }
    if kind == 1 && has(1, 1, 16) {
        // Intel: AVX512ER means Xeon Phi (avoid VZEROUPPER); otherwise
        // prefer not to use 512-bit vectors (frequency drops).
        if has(1, 1, 27) {
            pref |= 1 << 10;
        } else {
            pref |= (1 << 12) | (1 << 13);
        }
    }
    if let Some(p0) = cf.preferred.and_then(|p| p.at(0)) {
        c.put(Field { off: p0, size: 4 }, pref);
    }
    c.put_opt(cf.isa_1, 1);
    // Conservative cache description (section 5.3): correct thresholds,
    // real sizes to come with the full feature computation.
    let data = 32 * 1024u64;
    let shared = 1024 * 1024u64;
    let non_temporal = (shared * 3 / 4).max(0x4040);
    c.put(cf.data_cache_size, data);
    c.put(cf.shared_cache_size, shared);
    c.put(cf.non_temporal_threshold, non_temporal);
    c.put_opt(cf.memset_non_temporal_threshold, non_temporal);
    // glibc: 2048 per 16 bytes of vector, 2112 with FSRM.
    let vec = if zmm && active_of[1][1] & (1 << 16) != 0 && pref & (1 << 12) == 0 {
        64
    } else if pref & (1 << 9) != 0 {
        32
    } else {
        16
    };
    let movsb = if active_of[1][3] & (1 << 4) != 0 { 2112 } else { 2048 * (vec / 16) };
    c.put_opt(cf.rep_movsb_threshold, movsb);
    c.put_opt(cf.rep_stosb_threshold, 2048);
    c.put_opt(cf.rep_movsb_stop_threshold, non_temporal);
    c.put_opt(cf.level1_dcache_size, data);
    c.put_opt(cf.level1_dcache_linesize, 64);
    c.put_opt(cf.level3_cache_size, shared);
    c.put_opt(cf.cachesize_non_temporal_divisor, 4);
}

/// Which bits of one CPUID register become active, and on what condition.
#[derive(Clone, Copy)]
struct Mask {
    /// Active whenever present (no OS state needed).
    always: u32,
    /// Needs XMM+YMM state in XCR0 (AVX class).
    ymm: u32,
    /// Needs opmask+ZMM state (AVX-512 class).
    zmm: u32,
    /// Needs AMX tile state.
    amx: u32,
    /// TSX (RTM/HLE): not when the CPU says RTM always aborts.
    tsx: u32,
}

const fn bits(list: &[u32]) -> u32 {
    let mut m = 0;
    let mut i = 0;
    while i < list.len() {
        m |= 1 << list[i];
        i += 1;
    }
    m
}

const NONE: Mask = Mask { always: 0, ymm: 0, zmm: 0, amx: 0, tsx: 0 };

/// Per leaf (glibc's index order) and register (eax, ebx, ecx, edx).
const ACTIVE: [[Mask; 4]; 10] = [
    // 1: ECX: SSE3, PCLMULQDQ, MONITOR, SSSE3, CX16, SSE4.1, SSE4.2, MOVBE,
    //    POPCNT, AES, XSAVE, OSXSAVE, RDRAND | FMA, AVX, F16C.
    //    EDX: TSC, CX8, CMOV, CLFSH, MMX, FXSR, SSE, SSE2, HTT.
    [
        NONE,
        NONE,
        Mask { always: bits(&[0, 1, 3, 9, 13, 19, 20, 22, 23, 25, 26, 27, 30]), ymm: bits(&[12, 28, 29]), zmm: 0, amx: 0, tsx: 0 },
        Mask { always: bits(&[4, 8, 15, 19, 23, 24, 25, 26, 28]), ymm: 0, zmm: 0, amx: 0, tsx: 0 },
    ],
    // 7.0: EBX: BMI1, BMI2, ERMS, RDSEED, ADX, CLFLUSHOPT, CLWB, SHA | AVX2 |
    //    AVX512F/DQ/IFMA/PF/ER/CD/BW/VL | HLE, RTM.
    //    ECX: PREFETCHWT1, OSPKE, WAITPKG, GFNI, RDPID, KL, CLDEMOTE, MOVDIRI,
    //    MOVDIR64B | VAES, VPCLMULQDQ | AVX512_VBMI/VBMI2/VNNI/BITALG/VPOPCNTDQ.
    //    EDX: FSRM, MD_CLEAR, RTM_ALWAYS_ABORT, SERIALIZE, TSXLDTRK |
    //    AVX512_4VNNIW/4FMAPS/VP2INTERSECT/FP16 | AMX_BF16/TILE/INT8.
    [
        NONE,
        Mask {
            always: bits(&[3, 8, 9, 18, 19, 23, 24, 29]),
            ymm: bits(&[5]),
            zmm: bits(&[16, 17, 21, 26, 27, 28, 30, 31]),
            amx: 0,
            tsx: bits(&[4, 11]),
        },
        Mask { always: bits(&[0, 4, 5, 8, 22, 23, 25, 27, 28]), ymm: bits(&[9, 10]), zmm: bits(&[1, 6, 11, 12, 14]), amx: 0, tsx: 0 },
        Mask { always: bits(&[4, 10, 11, 14, 16]), ymm: 0, zmm: bits(&[2, 3, 8, 23]), amx: bits(&[22, 24, 25]), tsx: 0 },
    ],
    // 0x80000001: ECX: LAHF64_SAHF64, LZCNT, SSE4A, PREFETCHW, TBM | XOP, FMA4.
    //    EDX: RDTSCP.
    [
        NONE,
        NONE,
        Mask { always: bits(&[0, 5, 6, 8, 21]), ymm: bits(&[11, 16]), zmm: 0, amx: 0, tsx: 0 },
        Mask { always: bits(&[27]), ymm: 0, zmm: 0, amx: 0, tsx: 0 },
    ],
    // 0xD.1: EAX: XSAVEOPT, XSAVEC, XGETBV_ECX_1 | XFD with AMX.
    [Mask { always: bits(&[0, 1, 2]), ymm: 0, zmm: 0, amx: bits(&[4]), tsx: 0 }, NONE, NONE, NONE],
    // 0x80000007: nothing glibc activates.
    [NONE, NONE, NONE, NONE],
    // 0x80000008: EBX: WBNOINVD.
    [NONE, Mask { always: bits(&[9]), ymm: 0, zmm: 0, amx: 0, tsx: 0 }, NONE, NONE],
    // 7.1: EAX: FZLRM, FSRS, FSRCS, HRESET, LAM | AVX_VNNI | AVX512_BF16.
    [Mask { always: bits(&[10, 11, 12, 22, 26]), ymm: bits(&[4]), zmm: bits(&[5]), amx: 0, tsx: 0 }, NONE, NONE, NONE],
    // 0x19: EBX: AESKLE, WIDE_KL.
    [NONE, Mask { always: bits(&[0, 2]), ymm: 0, zmm: 0, amx: 0, tsx: 0 }, NONE, NONE],
    // 0x14.0: EBX: PTWRITE.
    [NONE, Mask { always: bits(&[4]), ymm: 0, zmm: 0, amx: 0, tsx: 0 }, NONE, NONE],
    // (2.41's tenth leaf: nothing activated yet.)
    [NONE, NONE, NONE, NONE],
];

fn fill_aarch64(l: &Layout, ro: Raw, hwcap: u64, hwcap2: u64) {
    let (Some(off), Some(cf)) = (l.rtld_global_ro._dl_aarch64_cpu_features, l.aarch64_cpu_features) else { return };
    let c = ro.sub(off);
    const HWCAP_SVE: u64 = 1 << 22;
    const HWCAP2_BTI: u64 = 1 << 17;
    const HWCAP2_MOPS: u64 = 1 << 43;
    if let Some((midr, dczid)) = native::aarch64_id_regs(hwcap) {
        c.put(cf.midr_el1, midr);
        // DC ZVA is usable unless DZP (bit 4) prohibits it.
        let zva = if dczid & 0x10 == 0 { 4u64 << (dczid & 0xf) } else { 0 };
        c.put(cf.zva_size, zva);
    }
    c.put_opt(cf.bti, u64::from(hwcap2 & HWCAP2_BTI != 0));
    c.put_opt(cf.sve, u64::from(hwcap & HWCAP_SVE != 0));
    c.put_opt(cf.mops, u64::from(hwcap2 & HWCAP2_MOPS != 0));
}
