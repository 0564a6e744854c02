//! Mutation tests of every parser that reads untrusted object bytes: a
//! real library (this machine's libc.so.6) is corrupted at random, over and
//! over, and each parser must return an error or a value, never panic or
//! read outside the object. (Coverage-guided fuzzing with `cargo fuzz`
//! drives the same entry point, [`parse_all`].)
#![allow(unsafe_code)]

use super::header::{Ehdr, Phdr, PHDR_SIZE};
use super::symbols::{self, Query};
use super::version::Versions;
use super::{DynInfo, Image};

/// Runs every parser over `file` as if it were mapped with each `PT_LOAD`
/// at `base + p_vaddr` (a flat copy where address = offset is enough to
/// reach all the code paths). Returns how many symbols it resolved.
pub fn parse_all(file: &[u8], machine: u16) -> usize {
    let Ok(ehdr) = Ehdr::parse(file, machine) else { return 0 };
    let Some(range) = ehdr.phdr_range() else { return 0 };
    let Some(phdrs) = file.get(range).and_then(Phdr::parse_all) else { return 0 };
    let base = file.as_ptr() as usize;
    let mut img = Image::new();
    // SAFETY: the image covers exactly `file`, which outlives it.
    unsafe { img.add_readable(base, base + file.len()) };
    let mut found = 0;
    for p in phdrs.iter().filter(|p| p.p_type == object::elf::PT_DYNAMIC) {
        let Some(dynamic) = base.checked_add(p.p_offset as usize) else { continue };
        let Ok(d) = DynInfo::parse(&img, base, dynamic) else { continue };
        let _ = d.check_ranges(&img, true);
        let Ok(v) = Versions::parse(&img, &d) else { continue };
        let tables_checked = symbols::check_tables(&img, &d).is_ok();
        for off in d.needed.iter().copied().chain(d.soname) {
            let _ = d.string(&img, off);
        }
        // Look-ups only over tables the check let through, as in the
        // loader (`link::Dso::new`): a hash chain's walk is bounded by the
        // counts it verified, and an unchecked `nchain` of 2^32 over a
        // looping chain is four billion steps (the fuzzer's first hang).
        if !tables_checked {
            continue;
        }
        for name in [&b"malloc"[..], b"printf", b"__libc_start_main", b"nonexistent_symbol"] {
            let q = Query::new(name);
            if !matches!(symbols::lookup(&img, &d, &v, &q, None, false), symbols::Found::None) {
                found += 1;
            }
        }
    }
    let _ = PHDR_SIZE;
    found
}

/// A small deterministic generator (xorshift), so failures reproduce.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Corrupts `n` bytes of `buf` in its first `span` bytes.
pub fn mutate(buf: &mut [u8], rng: &mut Rng, n: usize, span: usize) {
    let span = span.min(buf.len()).max(1);
    for _ in 0..n {
        let i = (rng.next_u64() as usize) % span;
        buf[i] = match rng.next_u64() % 4 {
            0 => 0,
            1 => 0xff,
            2 => buf[i] ^ (1 << (rng.next_u64() % 8)),
            _ => rng.next_u64() as u8,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `elf_object` fuzz target (seeded with real objects): a
    /// `DT_STRSZ` that runs past the address space overflowed the table's
    /// end in `string` and `same_string` (a panic where overflow is
    /// checked, a wrapped limit where not) for a caller that had not
    /// asked `check_ranges`.
    #[test]
    fn a_string_table_past_the_address_space_reads_to_the_nul() {
        let buf = *b"\0libc.so.6\0";
        let start = buf.as_ptr() as usize;
        let mut img = Image::new();
        // SAFETY: `buf` outlives `img`.
        unsafe { img.add_readable(start, start + buf.len()) };
        let d = DynInfo { strtab: start, strsz: usize::MAX, ..DynInfo::default() };
        assert_eq!(d.string(&img, 1), Some(&b"libc.so.6"[..]));
        assert_eq!(d.string(&img, buf.len()), None, "outside the readable bytes");
        assert!(d.same_string(&img, 1, &d, &img, 1));
        assert!(!d.same_string(&img, 1, &d, &img, 0));
    }

    #[test]
    fn the_unmodified_library_resolves_its_symbols() {
        let libc = std::fs::read("/lib/x86_64-linux-gnu/libc.so.6").expect("this Debian machine has libc");
        assert!(parse_all(&libc, object::elf::EM_X86_64) >= 3, "malloc, printf and __libc_start_main are defined");
    }

    #[test]
    fn corrupted_libraries_never_panic() {
        let libc = std::fs::read("/lib/x86_64-linux-gnu/libc.so.6").expect("this Debian machine has libc");
        // The dynamic symbol data of libc sits in its first 64 KiB or so;
        // corrupt headers, dynamic section, hash tables, symbols, versions.
        let mut rng = Rng(0x5eed_1234_abcd_9876);
        for round in 0..3000 {
            let mut m = libc.clone();
            let span = if round % 3 == 0 { 4096 } else { 1 << 17 };
            mutate(&mut m, &mut rng, 1 + round % 64, span);
            let _ = parse_all(&m, object::elf::EM_X86_64);
        }
        // Truncations at every page boundary of the first 128 KiB.
        for len in (0..(1 << 17)).step_by(4096) {
            let _ = parse_all(&libc[..len], object::elf::EM_X86_64);
        }
    }
}
