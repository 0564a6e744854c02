//! The CPU description libc's IFUNC resolvers read from
//! `_rtld_global_ro`.
//!
//! x86_64: identification, raw CPUID leaves, and the "active" (usable)
//! bits by glibc's rules: features that need no operating-system support
//! are active when present; AVX-class features only when XCR0 says the OS
//! saves YMM state, AVX-512 ones only with opmask/ZMM state, AMX with tile
//! state; RTM/HLE not when the CPU says RTM always aborts or the model is
//! on Intel's TSX errata list; the features 2.38 and 2.39 added as those
//! releases activate them. The `preferred` tuning bits follow the vendor
//! and model rules of the build's release, each bit's value taken from the
//! build's DWARF (2.41 renumbered them). Cache sizes are conservative
//! constants (they tune, not select, the string functions; zero thresholds
//! would make libc's `memcpy` crash).
//!
//! aarch64: MIDR, DC ZVA block size, BTI, SVE and MOPS from the kernel's
//! hwcaps and the ID registers.

use super::layout::{Arch, Field, Layout};
use super::raw::Raw;
use crate::arch::native;

/// CPUID leaves in glibc's `features[]` order (2.36; 2.41 appends more).
const LEAVES: [(u32, u32); 10] =
    [(1, 0), (7, 0), (0x8000_0001, 0), (0xd, 1), (0x8000_0007, 0), (0x8000_0008, 0), (7, 1), (0x19, 0), (0x14, 0), (0x24, 0)];

pub fn fill(l: &Layout, ro: Raw, hwcap: u64, hwcap2: u64) {
    match l.arch {
        Arch::X86_64 => fill_x86(l, ro, hwcap2),
        Arch::Aarch64 => fill_aarch64(l, ro, hwcap, hwcap2),
    }
}

/// The CPU vendors glibc tells apart.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Vendor {
    Intel,
    Amd,
    Hygon,
    Zhaoxin,
    Other,
}

/// glibc's Intel family-6 tuning classes (`intel_get_fam6_microarch` and
/// the model switch before it).
#[derive(Clone, Copy, PartialEq, Eq)]
enum IntelTuning {
    /// Bonnell: BSF is slow.
    Bonnell,
    /// Silvermont, Airmont, Goldmont (Plus), Knights Landing.
    Silvermont,
    Tremont,
    /// Nehalem, Westmere: the "modern" string bits whether or not AVX.
    Nehalem,
    /// Skylake server and Cannon Lake: also avoid non-temporal memset.
    SkylakeServer,
    /// Everything else: the "modern" string bits if the CPU has AVX.
    Default,
}

fn intel_tuning(model: u32, minor: u32) -> IntelTuning {
    match model {
        0x1c | 0x26 => IntelTuning::Bonnell,
        // Saltwell, a die shrink of Bonnell, joined in 2.38.
        0x27 | 0x35 | 0x36 if minor >= 38 => IntelTuning::Bonnell,
        0x37 | 0x4a | 0x4d | 0x5d | 0x4c | 0x5a | 0x75 | 0x5c | 0x5f | 0x7a | 0x57 => IntelTuning::Silvermont,
        0x86 | 0x96 | 0x9c => IntelTuning::Tremont,
        0x1a | 0x1e | 0x1f | 0x2e | 0x25 | 0x2c | 0x2f => IntelTuning::Nehalem,
        0x55 | 0x66 => IntelTuning::SkylakeServer,
        _ => IntelTuning::Default,
    }
}

/// The `y` of a `"2.y"` glibc release.
fn glibc_minor(version: &str) -> u32 {
    let minor = version.strip_prefix("2.").unwrap_or("");
    minor.bytes().take_while(u8::is_ascii_digit).fold(0, |n, d| n * 10 + u32::from(d - b'0'))
}

fn fill_x86(l: &Layout, ro: Raw, hwcap2: u64) {
    let (Some(off), Some(cf), Some(leaf)) = (l.rtld_global_ro._dl_x86_cpu_features, l.x86_cpu_features, l.cpuid_feature_internal) else {
        return;
    };
    let c = ro.sub(off);
    let e = &l.enumerators;
    let minor = glibc_minor(l.glibc_version);
    let Some(v0) = native::cpuid(0, 0) else { return };
    let max = v0[0];
    let max_ext = native::cpuid(0x8000_0000, 0).map_or(0, |r| r[0]);
    // Vendor strings (ebx, edx, ecx): "GenuineIntel", "AuthenticAMD",
    // "HygonGenuine", "CentaurHauls" and "  Shanghai  ".
    let vendor = match (v0[1], v0[3], v0[2]) {
        (0x756e_6547, 0x4965_6e69, 0x6c65_746e) => Vendor::Intel,
        (0x6874_7541, 0x6974_6e65, 0x444d_4163) => Vendor::Amd,
        (0x6f67_7948, 0x6e65_476e, 0x656e_6975) => Vendor::Hygon,
        (0x746e_6543, 0x4872_7561, 0x736c_7561) | (0x6853_2020, 0x6867_6e61, 0x2020_6961) => Vendor::Zhaoxin,
        _ => Vendor::Other,
    };
    // Builds without a Hygon kind count Hygon as AMD; those without a
    // Zhaoxin kind (2.31) count Zhaoxin as other.
    let vendor = match vendor {
        Vendor::Hygon if e.arch_kind_hygon.is_none() => Vendor::Amd,
        Vendor::Zhaoxin if e.arch_kind_zhaoxin.is_none() => Vendor::Other,
        v => v,
    };
    let kind = match vendor {
        Vendor::Intel => e.arch_kind_intel,
        Vendor::Amd => e.arch_kind_amd,
        Vendor::Hygon => e.arch_kind_hygon,
        Vendor::Zhaoxin => e.arch_kind_zhaoxin,
        Vendor::Other => e.arch_kind_other,
    };
    c.put(cf.basic_kind, kind.unwrap_or(0) as u64);
    c.put(cf.basic_max_cpuid, u64::from(max));
    // Family and model as glibc stores them: the extended model counts for
    // family 0xf, Intel family 6 and every Zhaoxin; other vendors keep
    // zeros, and Zhaoxin a zero stepping (glibc reads it into a shadowing
    // local).
    let (mut family, mut model, mut stepping) = (0, 0, 0);
    if let Some(v1) = native::cpuid(1, 0).filter(|_| vendor != Vendor::Other) {
        let eax = v1[0];
        family = (eax >> 8) & 0xf;
        model = (eax >> 4) & 0xf;
        stepping = eax & 0xf;
        let extended_model = (eax >> 12) & 0xf0;
        if family == 0xf {
            family += (eax >> 20) & 0xff;
            model += extended_model;
        } else if (vendor == Vendor::Intel && family == 6) || vendor == Vendor::Zhaoxin {
            model += extended_model;
        }
    }
    c.put(cf.basic_family, u64::from(family));
    c.put(cf.basic_model, u64::from(model));
    c.put(cf.basic_stepping, if vendor == Vendor::Zhaoxin { 0 } else { u64::from(stepping) });
    // 2.31's `cpu_features` has another feature layout (`cpuid[]` and
    // `feature[]`, no `features[]`): it is left zero, so libc's IFUNCs take
    // their baseline x86-64 implementations.
    let Some(features) = cf.features else {
        c.put(cf.data_cache_size, 32 * 1024);
        c.put(cf.shared_cache_size, 1024 * 1024);
        c.put(cf.non_temporal_threshold, (1024 * 1024 * 3 / 4) as u64);
        return;
    };
    let leaves = LEAVES.len().min(features.len as usize);
    let mut raw_of = [[0u32; 4]; LEAVES.len()];
    for (i, &(lf, sub)) in LEAVES.iter().enumerate().take(leaves) {
        let available = if lf >= 0x8000_0000 { lf <= max_ext } else { lf <= max };
        if available {
            raw_of[i] = native::cpuid(lf, sub).unwrap_or([0; 4]);
        }
    }
    // Usable bits, register by register, for the leaves glibc knows.
    let xcr0 = if raw_of[0][2] & (1 << 27) != 0 { native::xgetbv0() } else { 0 };
    let ymm = xcr0 & 0x6 == 0x6;
    let zmm = ymm && xcr0 & 0xe0 == 0xe0;
    let amx = xcr0 & (3 << 17) == 3 << 17;
    let rtm_always_aborts = raw_of[1][3] & (1 << 11) != 0;
    let mut active_of = [[0u32; 4]; LEAVES.len()];
    for i in 0..leaves {
        for k in 0..4 {
            let (raw, m) = (raw_of[i][k], &ACTIVE[i][k]);
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
            active_of[i][k] = a;
        }
    }
    // Later releases activate more of leaves 7.1 and 0x24 (glibc reads
    // 0x24 only for AVX10).
    let osxsave = raw_of[0][2] & (1 << 27) != 0;
    let avx = raw_of[0][2] & (1 << 28) != 0;
    let r71 = raw_of[6];
    if minor >= 38 {
        // 7.1 EAX: RAO_INT 3, CMPCCXADD 7, AMX_FP16 21, AVX_IFMA 23; EDX:
        // AVX_VNNI_INT8 4, AVX_NE_CONVERT 5, AMX_COMPLEX 8, PREFETCHI 14,
        // APX_F 21 (with its XCR0 state, bit 19).
        active_of[6][0] |= r71[0] & bits(&[3, 7]);
        active_of[6][3] |= r71[3] & bits(&[14]);
        if ymm && avx {
            active_of[6][0] |= r71[0] & bits(&[23]);
            active_of[6][3] |= r71[3] & bits(&[4, 5]);
        }
        if amx {
            active_of[6][0] |= r71[0] & bits(&[21]);
            active_of[6][3] |= r71[3] & bits(&[8]);
        }
        if xcr0 & (1 << 19) != 0 {
            active_of[6][3] |= r71[3] & bits(&[21]);
        }
        // FSGSBASE (7.0 EBX bit 0) when the kernel allows it (AT_HWCAP2).
        if hwcap2 & 2 != 0 {
            active_of[1][1] |= raw_of[1][1] & 1;
        }
    }
    if leaves > 9 {
        // 7.1 EDX bit 19: AVX10; 0x24 EBX 16, 17, 18: its vector sizes.
        let avx10 = minor >= 39 && osxsave && r71[3] & (1 << 19) != 0;
        if avx10 {
            active_of[6][3] |= 1 << 19;
        }
        if avx10 && max >= 0x24 {
            let sizes = (1 << 16) | if ymm && avx { 1 << 17 } else { 0 } | if zmm { 1 << 18 } else { 0 };
            active_of[9][1] = raw_of[9][1] & sizes;
        } else {
            raw_of[9] = [0; 4];
        }
    }
    let raw_of = raw_of;
    let cpu_has = |i: usize, k: usize, bit: u32| raw_of[i][k] & (1 << bit) != 0;
    let usable = |active: &[[u32; 4]; LEAVES.len()], i: usize, k: usize, bit: u32| active[i][k] & (1 << bit) != 0;

    // `preferred[0]`, the tuning bits, by glibc's vendor rules. Each bit's
    // value comes from the build's DWARF (the order changed in 2.41); a
    // bit the build does not have is 0 and its rule a no-op.
    let b = |v: Option<i64>| v.map_or(0u32, |v| v as u32);
    let mut pref = 0u32;
    if minor >= 41 {
        // Non-temporal memset only where benchmarks showed it pays.
        pref |= b(e.bit_arch_avoid_non_temporal_memset);
    }
    // Leaf 7.0 EBX bit 5: AVX2.
    if usable(&active_of, 1, 1, 5) {
        pref |= b(e.bit_arch_avx_fast_unaligned_load);
    }
    let modern = b(e.bit_arch_fast_rep_string)
        | b(e.bit_arch_fast_unaligned_load)
        | b(e.bit_arch_fast_unaligned_copy)
        | b(e.bit_arch_prefer_pminub_for_stringop);
    match vendor {
        Vendor::Intel => {
            pref &= !b(e.bit_arch_avoid_non_temporal_memset);
            // 2.42 tunes Intel families other than 6 as "default".
            let tuning = if family == 6 {
                Some(intel_tuning(model, minor))
            } else if minor >= 42 {
                Some(IntelTuning::Default)
            } else {
                None
            };
            match tuning {
                Some(IntelTuning::Bonnell) => pref |= b(e.bit_arch_slow_bsf),
                Some(IntelTuning::Silvermont) => {
                    pref |= b(e.bit_arch_fast_unaligned_load)
                        | b(e.bit_arch_fast_unaligned_copy)
                        | b(e.bit_arch_prefer_pminub_for_stringop)
                        | b(e.bit_arch_slow_sse4_2)
                }
                Some(IntelTuning::Tremont) => pref |= modern | b(e.bit_arch_slow_sse4_2),
                Some(IntelTuning::Nehalem) => pref |= modern,
                Some(IntelTuning::SkylakeServer) => {
                    pref |= b(e.bit_arch_avoid_non_temporal_memset);
                    if avx {
                        pref |= modern;
                    }
                }
                Some(IntelTuning::Default) if avx => pref |= modern,
                _ => {}
            }
            // TSX off on the models Intel's errata list (microcode that
            // has not disabled it may still report it).
            if family == 6 {
                let (no_tsx, no_rtm) = match model {
                    0x55 => (stepping <= 5, false),
                    0x8e | 0x9e => (stepping <= 0xc, false),
                    0x4e | 0x5e => (true, false),
                    0x3f => (false, stepping < 4),
                    0x3c | 0x45 | 0x46 => (false, true),
                    _ => (false, false),
                };
                // Leaf 7.0 EBX: HLE 4, RTM 11; EDX: RTM_ALWAYS_ABORT 11.
                if no_tsx {
                    active_of[1][1] &= !((1 << 4) | (1 << 11));
                    active_of[1][3] |= 1 << 11;
                } else if no_rtm {
                    active_of[1][1] &= !(1 << 11);
                }
            }
            // Leaf 7.0 EBX bit 27: AVX512ER (Xeon Phi); leaf 7.1 EAX bit 4:
            // AVX-VNNI (no frequency drop with 512-bit vectors).
            if cpu_has(1, 1, 27) {
                pref |= b(e.bit_arch_prefer_no_vzeroupper);
            } else {
                if !cpu_has(6, 0, 4) {
                    pref |= b(e.bit_arch_prefer_no_avx512);
                }
                if usable(&active_of, 1, 1, 11) {
                    pref |= b(e.bit_arch_prefer_no_vzeroupper);
                }
            }
            // Leaf 7.0 EDX bit 4: FSRM.
            if cpu_has(1, 3, 4) {
                pref |= b(e.bit_arch_avoid_short_distance_rep_movsb);
            }
        }
        Vendor::Amd | Vendor::Hygon => {
            pref &= !b(e.bit_arch_avoid_non_temporal_memset);
            // Excavator: unaligned loads fast, 256-bit ones not.
            if vendor == Vendor::Amd && family == 0x15 && (0x60..=0x7f).contains(&model) {
                pref |= b(e.bit_arch_fast_unaligned_load) | b(e.bit_arch_fast_copy_backward);
                pref &= !b(e.bit_arch_avx_fast_unaligned_load);
            }
        }
        Vendor::Zhaoxin => {
            // Older Zhaoxin cores: AVX and AVX2 (leaf 1 ECX 28, leaf 7.0
            // EBX 5) are not used; newer ones avoid 256-bit paths.
            let (no_avx, slow_sse42, sse2_paths) = match (family, model) {
                (6, 0xf | 0x19) | (7, 0x1b) => (true, true, false),
                (7, 0x3b) => (true, false, false),
                (7, 0x5b | 0x6b) if minor >= 40 => (false, false, true),
                _ => (false, false, false),
            };
            if no_avx || sse2_paths {
                pref &= !b(e.bit_arch_avx_fast_unaligned_load);
            }
            if no_avx {
                active_of[0][2] &= !(1 << 28);
                active_of[1][1] &= !(1 << 5);
            }
            if slow_sse42 {
                pref |= b(e.bit_arch_slow_sse4_2);
            }
            if sse2_paths {
                pref |= b(e.bit_arch_prefer_no_vzeroupper) | b(e.bit_arch_fast_unaligned_load);
            }
        }
        Vendor::Other => {}
    }
    // Leaf 1 EDX: CX8 8, CMOV 15; leaf 7.0 EBX bit 9: ERMS.
    if cpu_has(0, 3, 8) {
        pref |= b(e.bit_arch_i586);
    }
    if cpu_has(0, 3, 15) {
        pref |= b(e.bit_arch_i686);
    }
    if !usable(&active_of, 1, 1, 9) {
        pref |= b(e.bit_arch_avoid_stosb);
    }

    for i in 0..leaves {
        let Some(base) = features.at(i as u32) else { break };
        for k in 0..4 {
            c.put(Field { off: base + leaf.cpuid.off + 4 * k as u32, size: 4 }, u64::from(raw_of[i][k]));
            c.put(Field { off: base + leaf.active.off + 4 * k as u32, size: 4 }, u64::from(active_of[i][k]));
        }
    }
    if let Some(p0) = cf.preferred.and_then(|p| p.at(0)) {
        c.put(Field { off: p0, size: 4 }, u64::from(pref));
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
    // glibc: 2048 per 16 bytes of vector, 2112 with FSRM. Leaf 7.0 EBX
    // bit 16: AVX512F.
    let prefers = |bit: Option<i64>| bit.is_some_and(|v| pref & v as u32 != 0);
    let vec = if usable(&active_of, 1, 1, 16) && !prefers(e.bit_arch_prefer_no_avx512) {
        64
    } else if prefers(e.bit_arch_avx_fast_unaligned_load) {
        32
    } else {
        16
    };
    let movsb = if usable(&active_of, 1, 3, 4) { 2112 } else { 2048 * (vec / 16) };
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
