//! A binding plan file (`ld_cah::reloc::plan`, docs/binding-plan.md). The
//! input's whole words get a correct checksum appended, so that the fuzzer
//! explores the checks behind it; an accepted plan is then read everywhere.
#![no_main]
use ld_cah::reloc::plan::{checksum, Key, Plan};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let words: Vec<u64> = data.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
    let mut bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    bytes.extend_from_slice(&checksum(&words).to_le_bytes());
    // The key (header word 2 its length, from word 6) and the object count
    // (word 3) decide "for another closure": take the input's own, so that
    // parsing goes on.
    let r = words.get(2).map_or(0, |&r| (r as usize).min(words.len()));
    let key = Key::from_words(words.get(6..6 + r).unwrap_or_default().to_vec());
    let objects = words.get(3).map_or(0, |&n| (n as usize).min(1 << 16));
    if let Ok(p) = Plan::parse(&bytes, &key, objects) {
        let _ = (p.layout(), p.len(), p.cpuid().count(), p.xcr0());
        for obj in 0..objects.min(64) + 1 {
            // In table order, backwards, and far out.
            let mut o = p.object(obj);
            for place in (0..64u64).map(|i| 8 * i).chain((0..64).rev()).chain([u64::MAX]) {
                let _ = o.get(place);
            }
        }
    }
});
