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
//! build's DWARF (2.41 renumbered them). The cache description is
//! `dl_init_cacheinfo`'s: levels from CPUID leaf 2 descriptors and leaf 4
//! (Intel), leaf 4 (Zhaoxin), 0x8000001D or 0x80000005/6 (AMD, Hygon);
//! the threads sharing the top level from leaves 4 and 0xB; the
//! non-temporal and `rep movsb`/`stosb` thresholds by the release's rules
//! (Debian's 2.36 carries the 2.38 threshold rules), with the
//! `glibc.cpu.x86_*` tunables applied. Not done: 2.40's per-model
//! non-temporal divisor (ld-cah keeps 4), and writing the final values
//! back into the tunables.
//!
//! aarch64: MIDR, DC ZVA block size, BTI, SVE and MOPS from the kernel's
//! hwcaps and the ID registers.

use super::layout::{Arch, Field, Layout};
use super::raw::Raw;
use super::tunables;
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
        let elem = c.sub(Field { off: base, size: leaf.size });
        let (cpuid, active) = (elem.sub(leaf.cpuid), elem.sub(leaf.active));
        for k in 0..4 {
            let word = Field { off: 4 * k as u16, size: 4 };
            cpuid.put(word, u64::from(raw_of[i][k]));
            active.put(word, u64::from(active_of[i][k]));
        }
    }
    if let Some(p0) = cf.preferred.and_then(|p| p.at(0)) {
        c.put(Field { off: p0, size: 4 }, u64::from(pref));
    }
    c.put_opt(cf.isa_1, 1);
    let prefers = |bit: Option<i64>| bit.is_some_and(|v| pref & v as u32 != 0);
    let cpu = CacheCpu {
        vendor,
        family,
        model,
        max,
        max_ext,
        leaf1: raw_of[0],
        // Leaf 7.0 EBX 9: ERMS, 16: AVX512F; EDX 4: FSRM.
        erms: usable(&active_of, 1, 1, 9),
        avx512: usable(&active_of, 1, 1, 16) && !prefers(e.bit_arch_prefer_no_avx512),
        avx_fast: prefers(e.bit_arch_avx_fast_unaligned_load),
        fsrm: usable(&active_of, 1, 3, 4),
        avoid_stosb: prefers(e.bit_arch_avoid_stosb),
        avoid_nt_memset: prefers(e.bit_arch_avoid_non_temporal_memset),
    };
    fill_cache(l, c, &cpu, minor);
}

/// What the cache description needs from the feature computation.
struct CacheCpu {
    vendor: Vendor,
    family: u32,
    model: u32,
    max: u32,
    max_ext: u32,
    leaf1: [u32; 4],
    erms: bool,
    avx512: bool,
    avx_fast: bool,
    fsrm: bool,
    avoid_stosb: bool,
    avoid_nt_memset: bool,
}

/// sysconf's cache names, counted from `_SC_LEVEL1_ICACHE_SIZE`: size,
/// associativity and line size for L1i, L1d, L2, L3, L4. glibc's decoders
/// take these numbers, so the arithmetic below on them is its arithmetic.
const L1I: usize = 0;
const L1D: usize = 3;
const L2: usize = 6;
const L3: usize = 9;
const L4: usize = 12;

/// Up to this many leaf 4 (deterministic cache parameters) subleaves.
const LEAF4_MAX: usize = 8;

/// The non-null subleaves of CPUID leaf 4 (Intel, Zhaoxin), read once.
struct Leaf4 {
    regs: [[u32; 4]; LEAF4_MAX],
    len: usize,
}

impl Leaf4 {
    fn read(max: u32) -> Leaf4 {
        let mut l = Leaf4 { regs: [[0; 4]; LEAF4_MAX], len: 0 };
        while max >= 4 && l.len < LEAF4_MAX {
            let r = native::cpuid(4, l.len as u32).unwrap_or([0; 4]);
            if r[0] & 0x1f == 0 {
                break;
            }
            l.regs[l.len] = r;
            l.len += 1;
        }
        l
    }

    fn all(&self) -> &[[u32; 4]] {
        &self.regs[..self.len]
    }
}

/// One value from a leaf 4 description: `which` 0 size, 1 ways, 2 line.
/// Sizes are 32-bit products as in glibc.
fn leaf4_value(which: usize, ebx: u32, ecx: u32) -> i64 {
    let (ways, parts, line) = ((ebx >> 22) + 1, ((ebx >> 12) & 0x3ff) + 1, (ebx & 0xfff) + 1);
    i64::from(match which {
        0 => ways.wrapping_mul(parts).wrapping_mul(line).wrapping_mul(ecx.wrapping_add(1)),
        1 => ways,
        _ => line,
    })
}

/// The leaf 4 entry describing sysconf name `name`, if any (L4 only when
/// `with_l4`: Zhaoxin's decoder stops at L3).
fn leaf4_lookup(name: usize, leaf4: &[[u32; 4]], with_l4: bool) -> Option<i64> {
    let group = name / 3 * 3;
    leaf4.iter().find_map(|r| {
        let (ty, level) = (r[0] & 0x1f, (r[0] >> 5) & 7);
        // Types: 1 data, 2 instruction, 3 unified.
        let hit = match level {
            1 => (ty == 1 && group == L1D) || (ty == 2 && group == L1I),
            2 => group == L2,
            3 => group == L3,
            4 => with_l4 && group == L4,
            _ => false,
        };
        hit.then(|| leaf4_value(name - group, r[1], r[2]))
    })
}

/// Intel's CPUID leaf 2 descriptor bytes: (byte, sysconf group, ways, line
/// size, size in KiB), sorted by byte.
#[rustfmt::skip]
const LEAF2: [(u8, u8, u8, u8, u16); 68] = [
    (0x06, 0, 4, 32, 8), (0x08, 0, 4, 32, 16), (0x09, 0, 4, 32, 32), (0x0a, 3, 2, 32, 8),
    (0x0c, 3, 4, 32, 16), (0x0d, 3, 4, 64, 16), (0x0e, 3, 6, 64, 24), (0x21, 6, 8, 64, 256),
    (0x22, 9, 4, 64, 512), (0x23, 9, 8, 64, 1024), (0x25, 9, 8, 64, 2048), (0x29, 9, 8, 64, 4096),
    (0x2c, 3, 8, 64, 32), (0x30, 0, 8, 64, 32), (0x39, 6, 4, 64, 128), (0x3a, 6, 6, 64, 192),
    (0x3b, 6, 2, 64, 128), (0x3c, 6, 4, 64, 256), (0x3d, 6, 6, 64, 384), (0x3e, 6, 4, 64, 512),
    (0x3f, 6, 2, 64, 256), (0x41, 6, 4, 32, 128), (0x42, 6, 4, 32, 256), (0x43, 6, 4, 32, 512),
    (0x44, 6, 4, 32, 1024), (0x45, 6, 4, 32, 2048), (0x46, 9, 4, 64, 4096), (0x47, 9, 8, 64, 8192),
    (0x48, 6, 12, 64, 3072), (0x49, 6, 16, 64, 4096), (0x4a, 9, 12, 64, 6144), (0x4b, 9, 16, 64, 8192),
    (0x4c, 9, 12, 64, 12288), (0x4d, 9, 16, 64, 16384), (0x4e, 6, 24, 64, 6144), (0x60, 3, 8, 64, 16),
    (0x66, 3, 4, 64, 8), (0x67, 3, 4, 64, 16), (0x68, 3, 4, 64, 32), (0x78, 6, 8, 64, 1024),
    (0x79, 6, 8, 64, 128), (0x7a, 6, 8, 64, 256), (0x7b, 6, 8, 64, 512), (0x7c, 6, 8, 64, 1024),
    (0x7d, 6, 8, 64, 2048), (0x7f, 6, 2, 64, 512), (0x80, 6, 8, 64, 512), (0x82, 6, 8, 32, 256),
    (0x83, 6, 8, 32, 512), (0x84, 6, 8, 32, 1024), (0x85, 6, 8, 32, 2048), (0x86, 6, 4, 64, 512),
    (0x87, 6, 8, 64, 1024), (0xd0, 9, 4, 64, 512), (0xd1, 9, 4, 64, 1024), (0xd2, 9, 4, 64, 2048),
    (0xd6, 9, 8, 64, 1024), (0xd7, 9, 8, 64, 2048), (0xd8, 9, 8, 64, 4096), (0xdc, 9, 12, 64, 2048),
    (0xdd, 9, 12, 64, 4096), (0xde, 9, 12, 64, 8192), (0xe2, 9, 16, 64, 2048), (0xe3, 9, 16, 64, 4096),
    (0xe4, 9, 16, 64, 8192), (0xea, 9, 24, 64, 12288), (0xeb, 9, 24, 64, 18432), (0xec, 9, 24, 64, 24576),
];

/// One register of leaf 2 for sysconf name `name`: 0 when it says
/// nothing about it, -1 when it defers to leaf 4 and leaf 4 has nothing.
/// `no_l2_l3` records descriptor 0x40 ("no L2, or no L3 if L2 present").
fn leaf2_word(name: usize, mut value: u32, leaf4: &[[u32; 4]], p4_model6: bool, no_l2_l3: &mut bool) -> i64 {
    // Bit 31 set: the register holds no descriptors.
    if value & 0x8000_0000 != 0 {
        return 0;
    }
    let (mut name, mut group) = (name, name / 3 * 3);
    while value != 0 {
        let byte = (value & 0xff) as u8;
        if byte == 0x40 {
            *no_l2_l3 = true;
            if group == L3 {
                break;
            }
        } else if byte == 0xff {
            // Everything is in leaf 4.
            return leaf4_lookup(name, leaf4, true).unwrap_or(-1);
        } else {
            // Pentium 4 model 6 says L3 with the byte others use for L2.
            if byte == 0x49 && group == L3 && p4_model6 {
                name -= L3 - L2;
                group = L2;
            }
            if let Ok(i) = LEAF2.binary_search_by_key(&byte, |d| d.0) {
                let (_, g, ways, line, kib) = LEAF2[i];
                if usize::from(g) == group {
                    return match name - group {
                        0 => i64::from(kib) * 1024,
                        1 => i64::from(ways),
                        _ => i64::from(line),
                    };
                }
            }
        }
        value >>= 8;
    }
    0
}

/// glibc's `handle_intel` for sysconf name `name` (`leaf2` is `None`
/// below leaf 2).
fn intel_level(name: usize, leaf2: Option<[u32; 4]>, leaf4: &[[u32; 4]], p4_model6: bool) -> i64 {
    let Some(mut regs) = leaf2 else { return -1 };
    let mut no_l2_l3 = false;
    // The low byte of EAX must be 1 (one round); anything else means the
    // descriptors are not to be trusted and leaf 4 says it all.
    if regs[0] & 0xff != 1 {
        return leaf2_word(name, 0xff, leaf4, p4_model6, &mut no_l2_l3);
    }
    regs[0] &= !0xff;
    for r in regs {
        let v = leaf2_word(name, r, leaf4, p4_model6, &mut no_l2_l3);
        if v != 0 {
            return v;
        }
    }
    if (L2..L4).contains(&name) && no_l2_l3 {
        -1
    } else {
        0
    }
}

/// Ways of an AMD legacy (0x80000006) L2/L3 associativity code; 15 means
/// "fully associative" and is size / line.
fn amd_ways(code: u32, size: u32, line: u32) -> i64 {
    i64::from(match code {
        0 | 1 | 2 | 4 => code,
        6 => 8,
        8 => 16,
        10 => 32,
        11 => 48,
        12 => 64,
        13 => 96,
        14 => 128,
        15 => size.checked_div(line).unwrap_or(0),
        _ => 0,
    })
}

/// AMD's legacy description (leaves 0x80000005 and 0x80000006) for
/// sysconf name `name` below L4 (2.41 then scales the L3 size).
fn amd_legacy(name: usize, l1: [u32; 4], l2: [u32; 4]) -> i64 {
    let which = name % 3;
    if name < L2 {
        // L1d in ECX, L1i in EDX of 0x80000005.
        let r = if name < L1D { l1[3] } else { l1[2] };
        return i64::from(match which {
            0 => (r >> 14) & 0x3fc00,
            1 if (r >> 16) & 0xff == 0xff => (r >> 14) & 0x3fc00,
            1 => (r >> 16) & 0xff,
            _ => r & 0xff,
        });
    }
    // L2 in ECX, L3 in EDX of 0x80000006; a zero associativity code means
    // no such cache.
    let (r, size) = if name < L3 { (l2[2], (l2[2] >> 6) & 0x3ff_fc00) } else { (l2[3], (l2[3] & 0x3ffc_0000) << 1) };
    if which == 1 {
        return amd_ways((r >> 12) & 0xf, size, r & 0xff);
    }
    if r & 0xf000 == 0 {
        return 0;
    }
    i64::from(if which == 0 { size } else { r & 0xff })
}

/// One value from an AMD/Hygon leaf 0x8000001D description.
fn amd_1d_value(which: usize, ebx: u32, ecx: u32) -> i64 {
    let (ways, line) = (((ebx >> 22) & 0x3ff) + 1, (ebx & 0xfff) + 1);
    i64::from(match which {
        0 => ways.wrapping_mul(line).wrapping_mul(ecx.wrapping_add(1)),
        1 => ways,
        _ => line,
    })
}

/// `mask` of the bits up to and including the highest set bit of `x`.
fn up_to_top_bit(x: i64) -> i64 {
    if x <= 0 {
        0
    } else {
        (2i64 << (63 - x.leading_zeros())) - 1
    }
}

/// glibc's `get_common_cache_info` (Intel, Zhaoxin): `(shared,
/// shared_per_thread)` after dividing the highest level among the threads
/// that share it and adding L2 when the caches are not inclusive.
fn common_cache(cpu: &CacheCpu, leaf4: &[[u32; 4]], shared: i64, core: i64) -> (i64, i64) {
    let level3 = shared > 0;
    let (mut shared, mut per_thread) = if level3 { (shared, shared) } else { (core, core) };
    let (mut t2, mut t3) = (0i64, if level3 { 0 } else { -1 });
    let mut inclusive = true;
    let intel = cpu.vendor == Vendor::Intel;
    // Leaf 1 EDX bit 28: HTT (more than one logical processor).
    if cpu.leaf1[3] & (1 << 28) != 0 {
        let mut threads = 0i64;
        let mut unknown = cpu.max < 4;
        if !unknown {
            let (mut need2, mut need3) = (true, t3 == 0);
            let mut rows = leaf4.iter();
            while need2 || need3 {
                let Some(r) = rows.next() else {
                    // Some Pentium D stop early: then assume every thread
                    // shares the cache.
                    unknown = intel;
                    break;
                };
                match (r[0] >> 5) & 7 {
                    2 if need2 => {
                        t2 = i64::from((r[0] >> 14) & 0x3ff);
                        need2 = false;
                    }
                    3 if need3 => {
                        t3 = i64::from((r[0] >> 14) & 0x3ff);
                        inclusive = r[3] & 2 != 0;
                        need3 = false;
                    }
                    _ => {}
                }
            }
        }
        if !unknown {
            // From leaf 0xB on, leaf 4 counts addressable IDs, not threads:
            // mask them with the SMT and core widths (not on Zhaoxin family 6).
            let zhaoxin6 = cpu.vendor == Vendor::Zhaoxin && cpu.family == 6;
            if cpu.max >= 11 && !zhaoxin6 {
                let mut smt = t2 > 0 && level3;
                let mut cores = t3 > 0 || (t2 > 0 && !level3);
                let mut sub = 0;
                while (smt || cores) && sub < 8 {
                    let r = native::cpuid(11, sub).unwrap_or([0; 4]);
                    sub += 1;
                    let shipped = i64::from(r[1] & 0xff);
                    let ty = r[2] & 0xff00;
                    if shipped == 0 || ty == 0 {
                        break;
                    }
                    if ty == 0x100 && smt {
                        t2 = (shipped - 1) & up_to_top_bit(t2);
                        smt = false;
                    } else if ty == 0x200 && cores {
                        let t = if level3 { &mut t3 } else { &mut t2 };
                        *t = (shipped - 1) & up_to_top_bit(*t);
                        cores = false;
                    }
                }
            }
            if t2 > 0 {
                t2 += 1;
            }
            if t3 > 0 {
                t3 += 1;
            }
            if !level3 {
                if t2 != 0 {
                    threads = t2;
                    // Silvermont: L2 shared by two cores.
                    let silvermont = matches!(cpu.model, 0x37 | 0x4a | 0x4d | 0x5a | 0x5d);
                    if intel && threads > 2 && cpu.family == 6 && silvermont {
                        threads = 2;
                    }
                }
            } else if t3 != 0 {
                threads = t3;
            }
        } else {
            threads = i64::from((cpu.leaf1[1] >> 16) & 0xff);
        }
        if per_thread > 0 && threads > 0 {
            per_thread /= threads;
        }
    }
    if !inclusive {
        per_thread += if t2 > 0 { core / t2 } else { core };
        shared += core;
    }
    (shared, per_thread)
}

/// The cache description `dl_init_cacheinfo` leaves in `cpu_features`:
/// the sysconf levels, the sizes and thresholds libc's string functions
/// use. `minor` picks the release's rules: up to 2.40 as Debian's 2.36
/// (its stable branch has the 2.38 threshold rules), 2.41 on as 2.41.
fn fill_cache(l: &Layout, c: Raw, cpu: &CacheCpu, minor: u32) {
    let Some(cf) = l.x86_cpu_features else { return };
    let new = minor >= 41;
    let mut lv = [-1i64; 15];
    let mut shared_per_thread;
    let (data, core, mut shared);
    let levels = [L1D, L2, L3, L1I, L1I + 2, L1D + 1, L1D + 2, L2 + 1, L2 + 2, L3 + 1, L3 + 2];
    match cpu.vendor {
        Vendor::Intel | Vendor::Zhaoxin => {
            let leaf4 = Leaf4::read(cpu.max);
            if cpu.vendor == Vendor::Intel {
                let leaf2 = (cpu.max >= 2).then(|| native::cpuid(2, 0).unwrap_or([0; 4]));
                let p4_model6 = cpu.family == 15 && cpu.model == 6;
                for n in levels.into_iter().chain([L4]) {
                    lv[n] = intel_level(n, leaf2, leaf4.all(), p4_model6);
                }
            } else {
                for n in levels {
                    lv[n] = leaf4_lookup(n, leaf4.all(), false).unwrap_or(0);
                }
            }
            (data, core) = (lv[L1D], lv[L2]);
            (shared, shared_per_thread) = common_cache(cpu, leaf4.all(), lv[L3], core);
        }
        Vendor::Amd | Vendor::Hygon => {
            let hygon = cpu.vendor == Vendor::Hygon;
            // 2.41 reads leaf 0x8000001D (subleaf 0 L1d, 1 L1i, 2 L2,
            // 3 L3); AMD falls back to the legacy leaves when a
            // hypervisor leaves it zero, Hygon does not.
            let mut d1 = [[0u32; 4]; 4];
            let has_1d = new && (hygon || cpu.max_ext >= 0x8000_001d);
            if has_1d || (cpu.family >= 0x17 && !hygon) {
                for (i, r) in d1.iter_mut().enumerate() {
                    *r = native::cpuid(0x8000_001d, i as u32).unwrap_or([0; 4]);
                }
            }
            let ext = |leaf: u32| if cpu.max_ext >= leaf { native::cpuid(leaf, 0).unwrap_or([0; 4]) } else { [0; 4] };
            let (e5, e6) = if hygon { ([0; 4], [0; 4]) } else { (ext(0x8000_0005), ext(0x8000_0006)) };
            let e8 = ext(0x8000_0008);
            // Logical processors sharing L3, as the L3 size in 2.41's
            // legacy path and 2.36's shared size scale it.
            let l3_threads = |old: bool| {
                let mut t = 0;
                if cpu.max_ext >= 0x8000_0008 {
                    t = if old { 1 << ((e8[2] >> 12) & 0xf) } else { (e8[2] & 0xff) + 1 };
                }
                if (t == 0 || (old && cpu.family >= 0x17)) && cpu.leaf1[3] & (1 << 28) != 0 {
                    t = (cpu.leaf1[1] >> 16) & 0xff;
                }
                i64::from(t)
            };
            let per_ccx = i64::from(((d1[3][0] >> 14) & 0xfff) + 1);
            for n in levels {
                let sub = [1, 0, 2, 3][n / 3];
                let r = d1[sub];
                lv[n] = if has_1d && (hygon || r[2] != 0) {
                    amd_1d_value(n % 3, r[1], r[2])
                } else if n < L2 && cpu.max_ext < 0x8000_0005 || n >= L2 && cpu.max_ext < 0x8000_0006 {
                    0
                } else if new && n == L3 {
                    let total = amd_legacy(n, e5, e6);
                    let t = l3_threads(false);
                    let each = if total == 0 || t <= 0 { 0 } else { total / t };
                    if total != 0 && cpu.family >= 0x17 {
                        each * per_ccx
                    } else {
                        each
                    }
                } else {
                    amd_legacy(n, e5, e6)
                };
            }
            // 2.36 leaves AMD's L4 unset, 2.41 says "none".
            if new && !hygon {
                lv[L4] = 0;
            }
            (data, core, shared) = (lv[L1D], lv[L2], lv[L3]);
            if new {
                if shared <= 0 && !hygon {
                    shared = core;
                } else if cpu.family < 0x17 && !hygon {
                    shared += core;
                }
                shared_per_thread = shared;
            } else if shared <= 0 {
                (shared, shared_per_thread) = (core, core);
            } else {
                shared_per_thread = shared;
                let t = l3_threads(true);
                if t > 0 {
                    shared_per_thread /= t;
                }
                if cpu.family >= 0x17 {
                    shared_per_thread *= per_ccx;
                } else {
                    shared += core;
                    shared_per_thread += core;
                }
            }
        }
        Vendor::Other => (data, core, shared, shared_per_thread) = (-1, -1, -1, -1),
    }
    let put = |f: Option<Field>, v: i64| c.put_opt(f, v as u64);
    put(cf.level1_icache_size, lv[L1I]);
    put(cf.level1_icache_linesize, lv[L1I + 2]);
    put(cf.level1_dcache_size, lv[L1D]);
    put(cf.level1_dcache_assoc, lv[L1D + 1]);
    put(cf.level1_dcache_linesize, lv[L1D + 2]);
    put(cf.level2_cache_size, lv[L2]);
    put(cf.level2_cache_assoc, lv[L2 + 1]);
    put(cf.level2_cache_linesize, lv[L2 + 2]);
    put(cf.level3_cache_size, lv[L3]);
    put(cf.level3_cache_assoc, lv[L3 + 1]);
    put(cf.level3_cache_linesize, lv[L3 + 2]);
    put(cf.level4_cache_size, lv[L4]);

    // Non-temporal stores from a fraction of the whole cache, at least 3/4
    // of one thread's share (only that share without ERMS, except on
    // Zhaoxin from 2.41), within what memmove's shifts allow. The divisor
    // is 4 unless the build's tuning says otherwise (2.40 on; ld-cah
    // keeps 4).
    const NT_MIN: u64 = 0x4040;
    const NT_MAX: u64 = u64::MAX >> 4;
    let divisor = 4;
    let low = (shared_per_thread * 3 / 4) as u64;
    let mut nt = ((shared as u64) / divisor).max(low);
    let zhaoxin_new = new && cpu.vendor == Vendor::Zhaoxin;
    if !(cpu.erms || zhaoxin_new) {
        nt = low;
    }
    if nt < NT_MIN {
        // 2.41 takes a tiny value as undetected caches.
        nt = if new { 64 << 20 } else { NT_MIN };
    }
    nt = nt.min(NT_MAX);
    // `rep movsb` from 4 KiB per 16 bytes of vector (2 KiB for SSE2), 2112
    // with FSRM; 2.41 keeps AMD on vector loops up to the non-temporal size.
    let (mut movsb, movsb_min) = if cpu.avx512 {
        (16384, 512)
    } else if cpu.avx_fast {
        (8192, 256)
    } else {
        (2048, 128)
    };
    if cpu.fsrm {
        movsb = 2112;
    }
    let amd = cpu.vendor == Vendor::Amd;
    if new && amd {
        movsb = nt;
    }
    // GLIBC_TUNABLES overrides, with glibc's bounds.
    let tun = |name: &str| tunables::value(name);
    let (mut data, mut shared) = (data as u64, shared as u64);
    if let Some(v) = tun("glibc.cpu.x86_data_cache_size").filter(|&v| v != 0) {
        data = v;
    }
    if let Some(v) = tun("glibc.cpu.x86_shared_cache_size").filter(|&v| v != 0) {
        shared = v;
    }
    let nt_ok = |v: &u64| *v > NT_MIN && *v <= NT_MAX;
    let mut memset_nt = if cpu.avoid_nt_memset { u64::MAX } else { nt };
    if let Some(v) = tun("glibc.cpu.x86_non_temporal_threshold").filter(nt_ok) {
        nt = v;
    }
    if let Some(v) = tun("glibc.cpu.x86_memset_non_temporal_threshold").filter(nt_ok) {
        memset_nt = v;
    }
    if let Some(v) = tun("glibc.cpu.x86_rep_movsb_threshold").filter(|&v| v > movsb_min) {
        movsb = v;
    }
    let stosb_name = "glibc.cpu.x86_rep_stosb_threshold";
    let mut stosb = tun(stosb_name).unwrap_or(2048);
    if new {
        // Zen 3 on: vector loops beat `rep stosb`.
        if amd && !tunables::is_set_by_name(stosb_name) {
            stosb = u64::MAX;
        }
        // Without fast `rep stosb`, memset goes to it only for
        // non-temporal sizes.
        if cpu.avoid_stosb {
            stosb = memset_nt;
        }
    }
    c.put(cf.data_cache_size, data);
    c.put(cf.shared_cache_size, shared);
    c.put(cf.non_temporal_threshold, nt);
    c.put_opt(cf.memset_non_temporal_threshold, memset_nt);
    c.put_opt(cf.rep_movsb_threshold, movsb);
    c.put_opt(cf.rep_stosb_threshold, stosb);
    // 2.36 stops AMD's `rep movsb` at the L2 size.
    c.put_opt(cf.rep_movsb_stop_threshold, if amd && !new { core as u64 } else { nt });
    c.put_opt(cf.cachesize_non_temporal_divisor, divisor);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaf2_table_is_sorted() {
        assert!(LEAF2.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn leaf2_descriptors() {
        let mut none = false;
        // 0x2c: L1d 32 KiB, 8 ways, 64-byte lines; 0x7d: L2 2 MiB.
        assert_eq!(leaf2_word(L1D, 0x7d2c, &[], false, &mut none), 32 * 1024);
        assert_eq!(leaf2_word(L1D + 1, 0x7d2c, &[], false, &mut none), 8);
        assert_eq!(leaf2_word(L2, 0x7d2c, &[], false, &mut none), 2 << 20);
        assert_eq!(leaf2_word(L3, 0x7d2c, &[], false, &mut none), 0);
        assert!(!none);
        // 0x49 is L3 4 MiB on Pentium 4 model 6, L2 elsewhere.
        assert_eq!(leaf2_word(L3, 0x49, &[], true, &mut none), 4 << 20);
        assert_eq!(leaf2_word(L3, 0x49, &[], false, &mut none), 0);
        // Bit 31: no descriptors; 0x40: no L2/L3.
        assert_eq!(leaf2_word(L1D, 0x8000_002c, &[], false, &mut none), 0);
        assert_eq!(intel_level(L3, Some([0x40_0001, 0, 0, 0]), &[], false), -1);
        assert_eq!(intel_level(L3, None, &[], false), -1);
    }

    #[test]
    fn leaf4_sizes() {
        // L1d: level 1, data; 12 ways, 1 partition, 64-byte lines, 64 sets.
        let l1d = [(1 << 5) | 1, (11 << 22) | 63, 63, 0];
        // L3: level 3, unified; 16 ways, 64-byte lines, 491520 sets;
        // EDX bit 1 clear: not inclusive.
        let l3 = [(3 << 5) | 3, (15 << 22) | 63, 491_519, 0];
        let leaf4 = [l1d, l3];
        assert_eq!(leaf4_lookup(L1D, &leaf4, true), Some(49152));
        assert_eq!(leaf4_lookup(L1D + 1, &leaf4, true), Some(12));
        assert_eq!(leaf4_lookup(L1D + 2, &leaf4, true), Some(64));
        assert_eq!(leaf4_lookup(L3, &leaf4, true), Some(503_316_480));
        assert_eq!(leaf4_lookup(L2, &leaf4, true), None);
        // Descriptor 0xff sends to leaf 4; a level it lacks is -1.
        assert_eq!(intel_level(L1D, Some([0xff01, 0, 0, 0]), &leaf4, false), 49152);
        assert_eq!(intel_level(L4, Some([0xff01, 0, 0, 0]), &leaf4, false), -1);
        // A first byte other than 1: leaf 4 only.
        assert_eq!(intel_level(L3, Some([0x2c02, 0, 0, 0]), &leaf4, false), 503_316_480);
    }

    #[test]
    fn amd_legacy_leaves() {
        // 0x80000005 ECX: L1d 32 KiB, 8 ways, 1 line per tag, 64-byte
        // lines; EDX: L1i 64 KiB, fully associative (0xff).
        let e5 = [0, 0, (32 << 24) | (8 << 16) | (1 << 8) | 64, (64 << 24) | (0xff << 16) | (1 << 8) | 64];
        // 0x80000006 ECX: L2 512 KiB, code 6 (8 ways), 64-byte lines;
        // EDX: L3 16 MiB (32 units of 512 KiB), code 0xa (32 ways).
        let e6 = [0, 0, (512 << 16) | (6 << 12) | 64, (32 << 18) | (0xa << 12) | 64];
        assert_eq!(amd_legacy(L1D, e5, e6), 32 * 1024);
        assert_eq!(amd_legacy(L1D + 1, e5, e6), 8);
        assert_eq!(amd_legacy(L1I, e5, e6), 64 * 1024);
        assert_eq!(amd_legacy(L1I + 1, e5, e6), 64 * 1024);
        assert_eq!(amd_legacy(L2, e5, e6), 512 * 1024);
        assert_eq!(amd_legacy(L2 + 1, e5, e6), 8);
        assert_eq!(amd_legacy(L3, e5, e6), 16 << 20);
        assert_eq!(amd_legacy(L3 + 1, e5, e6), 32);
        assert_eq!(amd_legacy(L3 + 2, e5, e6), 64);
        // No L3: code 0.
        assert_eq!(amd_legacy(L3, e5, [0; 4]), 0);
        // 0x8000001D: 8 ways, 64-byte lines, 64 sets.
        assert_eq!(amd_1d_value(0, (7 << 22) | 63, 63), 32 * 1024);
    }

    #[test]
    fn count_masks() {
        assert_eq!(up_to_top_bit(1), 1);
        assert_eq!(up_to_top_bit(5), 7);
        assert_eq!(up_to_top_bit(0x3f), 0x3f);
        assert_eq!(up_to_top_bit(0), 0);
    }
}
