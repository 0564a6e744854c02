//! Entry points that run `cah`'s parsers of untrusted bytes, for the
//! `cargo fuzz` targets in `fuzz/` (`cah_elf`, `cah_hash_cache`) and for the
//! deterministic mutation tests below, which run in the ordinary test suite.
//!
//! Every entry point must return for any input: no panic, no unbounded
//! loop, no allocation driven by a number read from the input rather than
//! by the input's size.
//!
//! The fuzz targets compile this file, `elfinfo.rs` and `patch.rs` directly
//! (`#[path]` modules), so it refers to them only as `crate::elfinfo` and
//! `crate::patch`.

use std::sync::atomic::AtomicU64;

use ld_cah::verify::cache::{Access, Cache, SlotState};
use ld_cah::verify::{Digest, FileIdentity, Lock, LockFlags};

use crate::elfinfo;
use crate::patch;

/// What the patcher is asked to do to a fuzzed file: a two-entry lock and
/// an interpreter longer than most `.interp` sections (so it moves).
fn sample_patch() -> patch::Patch {
    let mut lock = Lock::new(LockFlags(LockFlags::STRICT));
    let _ = lock.insert(b"libc.so.6", Digest([7; 32]));
    let _ = lock.insert(b"libm.so.6", Digest([9; 32]));
    patch::Patch { note: lock.to_note(), interp: Some(b"/usr/lib/ld-cah/a-longer-interpreter-path/ld-cah.so".to_vec()) }
}

/// Everything `cah` does with the bytes of a program or library: the ELF
/// summary (`elfinfo::read`, as for every object of a closure), the lock
/// (`cah show`/`verify`/`store gc`), and the rewrite (`cah patch`), whose
/// output is read back. Returns whether the patch succeeded.
pub fn elf_file(data: &[u8]) -> bool {
    let _ = elfinfo::is_compatible(data, object::elf::EM_X86_64);
    let Ok(info) = elfinfo::read(data) else { return false };
    if let Ok(Some(view)) = elfinfo::read_lock(data, &info) {
        for e in view.iter() {
            let _ = (e.name, e.digest);
        }
    }
    let Ok((out, _)) = patch::apply(data, &sample_patch()) else {
        return false;
    };
    if let Ok(info) = elfinfo::read(&out) {
        let _ = elfinfo::read_lock(&out, &info);
    }
    true
}

/// Everything `cah cache` does with a cache file's words: open, stats,
/// verify (every slot), lookup. Read-only, as `stats`/`verify`/`lookup` map
/// it; `add` and `clear` are exercised through the same `Cache` by the
/// loader's own tests.
pub fn hash_cache(data: &[u8]) {
    let words: Vec<AtomicU64> = data
        .chunks_exact(8)
        .map(|c| {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            AtomicU64::new(u64::from_le_bytes(w))
        })
        .collect();
    let Ok(cache) = Cache::open(&words, Access::ReadOnly) else {
        return;
    };
    let _ = cache.stats();
    for i in 0..cache.slot_count() {
        if let SlotState::Valid(entry) = cache.slot(i) {
            let _ = cache.lookup(&entry.identity);
        }
    }
    let _ = cache.lookup(&FileIdentity::from_stat(1, 2, 3, 4, 5, 6, 7));
}

#[cfg(test)]
mod tests {
    use super::*;
    use ld_cah::elf::fuzz::{mutate, Rng};

    fn read(path: &str) -> Option<Vec<u8>> {
        std::fs::read(path).ok()
    }

    /// A real program and a real library, and the program patched (so the
    /// lock reader and the re-patch path see mutated locks too).
    fn seeds() -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = ["/usr/bin/true", "/lib/x86_64-linux-gnu/libz.so.1", "/lib/x86_64-linux-gnu/libc.so.6"]
            .iter()
            .filter_map(|p| read(p))
            .collect();
        if let Some(t) = read("/usr/bin/true") {
            if let Ok((p, _)) = patch::apply(&t, &sample_patch()) {
                v.push(p);
            }
        }
        v
    }

    #[test]
    fn the_seeds_patch() {
        let seeds = seeds();
        assert!(seeds.len() >= 2, "this Debian machine has /usr/bin/true and libc");
        for s in &seeds {
            assert!(elf_file(s));
        }
    }

    #[test]
    fn mutated_elf_files_never_panic() {
        let mut rng = Rng(0x00ca_11ed_f00d_5eed);
        let (mut tried, mut patched) = (0, 0);
        for seed in seeds() {
            let rounds = if seed.len() > 1 << 20 { 200 } else { 2000 };
            for round in 0..rounds {
                let mut m = seed.clone();
                // Headers and the first pages (program headers, dynamic
                // section, notes, string tables), then anywhere.
                let span = match round % 3 {
                    0 => 256,
                    1 => 1 << 14,
                    _ => seed.len(),
                };
                mutate(&mut m, &mut rng, 1 + round % 16, span);
                tried += 1;
                patched += usize::from(elf_file(&m));
            }
            for len in [0, 1, 20, 63, 64, 100, 200, 1000, 4096, seed.len() / 2, seed.len() - 1] {
                elf_file(&seed[..len.min(seed.len())]);
            }
        }
        eprintln!("{patched} of {tried} mutants patched");
        // Enough mutants get through the checks to exercise the patcher.
        assert!(patched * 10 > tried, "only {patched} of {tried} mutants patched");
    }

    #[test]
    fn mutated_cache_files_never_panic() {
        let words: Vec<AtomicU64> = (0..ld_cah::verify::cache::words_for(8).unwrap()).map(|_| AtomicU64::new(0)).collect();
        let cache = Cache::format(&words, 8).unwrap();
        let _ = cache.insert(&FileIdentity::from_stat(1, 2, 3, 4, 5, 6, 7), &Digest([1; 32]));
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.load(std::sync::atomic::Ordering::Relaxed).to_le_bytes()).collect();
        hash_cache(&bytes);
        let mut rng = Rng(0x0bad_cafe_1234_5678);
        for round in 0..2000 {
            let mut m = bytes.clone();
            let span = m.len();
            mutate(&mut m, &mut rng, 1 + round % 8, span);
            hash_cache(&m);
            hash_cache(&m[..(rng.next_u64() as usize) % m.len()]);
        }
    }
}
