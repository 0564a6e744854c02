//! A binding plan file (`ld_cah::reloc::plan`, docs/binding-plan.md). The
//! input's whole words get a correct checksum appended, so that the fuzzer
//! explores the checks behind it; an accepted plan is then read everywhere.
#![no_main]
use ld_cah::link::lookup::Class;
use ld_cah::reloc::plan::{checksum, entry_key, Plan};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let words: Vec<u64> = data.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
    let mut bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    bytes.extend_from_slice(&checksum(&words).to_le_bytes());
    // The key in the header decides "for another closure": take the
    // input's own, so that parsing goes on.
    let key = ld_cah::verify::digest::Digest(bytes.get(16..48).and_then(|k| k.try_into().ok()).unwrap_or([0; 32]));
    let objects = words.get(6).map_or(0, |&n| (n as usize).min(1 << 16));
    if let Ok(p) = Plan::parse(&bytes, &key, objects) {
        let _ = (p.layout(), p.len());
        for obj in 0..objects.min(64) + 1 {
            for indexed in [false, true] {
                let o = p.object(obj, indexed);
                for sym in 0..64u32 {
                    for class in [Class::Normal, Class::Plt, Class::Copy] {
                        let _ = o.get(entry_key(sym, class));
                    }
                }
            }
        }
    }
});
