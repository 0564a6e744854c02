//! The CPU description libc's IFUNC resolvers read from
//! `_rtld_global_ro` (`glibc-rtld-abi.md` sections 5 and 6).
//!
//! x86_64: identification and raw CPUID leaves are filled in; the "active"
//! (usable) bits are left zero for now, which makes every resolver choose
//! its baseline (SSE2) implementation: always correct, not always the
//! fastest. The string-function thresholds are set, because zero thresholds
//! make libc's `memcpy` crash. aarch64: MIDR, DC ZVA block size, BTI, SVE
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
    for (i, &(lf, sub)) in LEAVES.iter().enumerate().take(cf.features.len as usize) {
        let available = if lf >= 0x8000_0000 { lf <= max_ext } else { lf <= max };
        let Some(base) = cf.features.at(i as u32) else { break };
        let regs = if available { native::cpuid(lf, sub).unwrap_or([0; 4]) } else { [0; 4] };
        for (k, r) in regs.iter().enumerate() {
            c.put(Field { off: base + leaf.cpuid.off + 4 * k as u32, size: 4 }, u64::from(*r));
        }
    }
    // preferred[0]: I586 | I686 (every x86_64 has CX8 and CMOV).
    if let Some(p0) = cf.preferred.at(0) {
        c.put(Field { off: p0, size: 4 }, (1 << 6) | (1 << 7));
    }
    c.put(cf.isa_1, 1);
    // Conservative cache description (section 5.3): correct thresholds,
    // real sizes to come with the full feature computation.
    let data = 32 * 1024u64;
    let shared = 1024 * 1024u64;
    let non_temporal = (shared * 3 / 4).max(0x4040);
    c.put(cf.data_cache_size, data);
    c.put(cf.shared_cache_size, shared);
    c.put(cf.non_temporal_threshold, non_temporal);
    c.put_opt(cf.memset_non_temporal_threshold, non_temporal);
    c.put(cf.rep_movsb_threshold, 2048);
    c.put(cf.rep_stosb_threshold, 2048);
    c.put(cf.rep_movsb_stop_threshold, non_temporal);
    c.put(cf.level1_dcache_size, data);
    c.put(cf.level1_dcache_linesize, 64);
    c.put(cf.level3_cache_size, shared);
    c.put_opt(cf.cachesize_non_temporal_divisor, 4);
}

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
    c.put(cf.bti, u64::from(hwcap2 & HWCAP2_BTI != 0));
    c.put(cf.sve, u64::from(hwcap & HWCAP_SVE != 0));
    c.put(cf.mops, u64::from(hwcap2 & HWCAP2_MOPS != 0));
}
