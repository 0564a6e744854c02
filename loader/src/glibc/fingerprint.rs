//! Which layout table fits a `libc.so.6`.
//!
//! A table is chosen by what decides the layout, not by build id, so that a
//! distribution's point release (new build id, same structures) runs
//! without a new loader. Each table carries the [`Fingerprint`] of the
//! build it was generated from; a libc matches when every fact agrees:
//!
//! * the architecture;
//! * `__nptl_version`, the version string libc exports for libthread_db
//!   (`"2.36"`); a libc without one (before 2.34 it is libpthread's) is
//!   identified by its banner instead, release and distributor
//!   (`"2.31 Debian"` from `GNU C Library (Debian GLIBC 2.31-13+deb11u11)
//!   stable release version 2.31.`), one scan of its mapped bytes: only
//!   such a libc pays for it, and a 2.31 built by someone else (Ubuntu's,
//!   with other patches) is refused;
//! * the exact set of symbols libc imports from its loader (every
//!   undefined symbol of `libc.so.6`): the private interface between the two;
//! * every `_thread_db_*` descriptor: sizes and member offsets of
//!   `struct pthread`, `struct link_map`, `_rtld_global` and the DTV, which
//!   libc compiles in for debuggers. Debian's cross libc (2.36-8) differs
//!   from 2.36-9 here (`link_map` moved `l_tls_modid` by 8 bytes). Before
//!   2.34 libc has none (they are local symbols of libpthread), so a 2.31
//!   table has an empty list and rests on the other facts.
//!
//! All of it is read from the mapped, verified libc through its symbol
//! table: about fifty hash look-ups, no allocation. A libc that matches no
//! table is refused; a wrong layout is never used.

use super::layout::{Arch, Fingerprint, Layout, Names, MAX_IMPORTS};
use crate::elf::symbols::{self, Found, Query, Sym};
use crate::elf::{DynInfo, Image};

/// The parts of a mapped `libc.so.6` the facts are read from.
pub struct Libc<'a> {
    pub img: &'a Image,
    pub dyn_info: &'a DynInfo,
    pub versions: &'a crate::elf::version::Versions,
    /// Load bias: run-time address minus link-time address.
    pub base: usize,
}

/// Why no table fits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// No table of this architecture and version.
    Version,
    /// A table of the version exists, but libc imports other loader symbols.
    Imports,
    /// A table of the version exists, but this `_thread_db_*` descriptor
    /// (name without the prefix) differs from every such table.
    ThreadDb(&'static str),
}

/// The longest version string read (`"2.36"`, `"2.41.9000"`).
const VERSION_MAX: usize = 32;

impl Libc<'_> {
    fn defined(&self, name: &[u8]) -> Option<Sym> {
        let q = Query::new(name);
        match symbols::lookup(self.img, self.dyn_info, self.versions, &q, None, false) {
            Found::Match(_, s) | Found::Fallback(_, s) if !s.is_undefined() => Some(s),
            _ => None,
        }
    }

    /// The bytes of a defined data symbol.
    fn object(&self, name: &[u8]) -> Option<&[u8]> {
        let s = self.defined(name)?;
        self.img.bytes(self.base.wrapping_add(s.st_value as usize), s.st_size as usize)
    }

    /// `__nptl_version`, without its NUL.
    pub fn version(&self) -> Option<&[u8]> {
        let s = self.defined(b"__nptl_version")?;
        let at = self.base.wrapping_add(s.st_value as usize);
        self.img.cstr(at, at.saturating_add(VERSION_MAX))
    }

    /// The version in libc's banner (`"... release version 2.31."`), for
    /// messages about builds without `__nptl_version` (before 2.34 it
    /// lived in libpthread). Scans libc's mapped bytes: error paths only.
    pub fn banner_version(&self) -> Option<&[u8]> {
        let key = b"release version ";
        let at = self.img.find(key)? + key.len();
        // The banner goes on for several lines: read a few bytes, not a string.
        let s = (1..=VERSION_MAX).rev().find_map(|n| self.img.bytes(at, n))?;
        let end = s.iter().position(|&b| !(b.is_ascii_digit() || b == b'.')).unwrap_or(s.len());
        Some(s[..end].strip_suffix(b".").unwrap_or(&s[..end]))
    }

    /// Whether the undefined symbols are exactly `want` (sorted, unique).
    ///
    /// With a GNU hash table every undefined symbol sits below
    /// `symoffset` (only defined symbols are hashed), so only those few
    /// entries are read; a libc without one matches no table. They are
    /// sorted as they are read (a few dozen at most) and then compared
    /// with `want` in one walk along its names.
    fn imports_are(&self, want: Names) -> bool {
        let h = self.dyn_info.gnu_hash;
        let Some(symoffset) = (if h == 0 { None } else { self.img.u32(h + 4) }) else {
            return false;
        };
        let mut names: [&[u8]; MAX_IMPORTS] = [&[]; MAX_IMPORTS];
        let mut n = 0;
        for idx in 1..symoffset {
            let Some(s) = symbols::symbol(self.img, self.dyn_info, idx) else {
                return false;
            };
            if !s.is_undefined() {
                continue;
            }
            let Some(name) = self.dyn_info.string(self.img, s.st_name as usize) else {
                return false;
            };
            // More than any table holds (`Layout::check`).
            if n == MAX_IMPORTS {
                return false;
            }
            let mut i = n;
            while i > 0 && names[i - 1] > name {
                names[i] = names[i - 1];
                i -= 1;
            }
            names[i] = name;
            n += 1;
        }
        want.iter().map(str::as_bytes).eq(names[..n].iter().copied())
    }

    /// Whether every descriptor of `fp` is in libc with the same words.
    fn thread_db_differs(&self, fp: &Fingerprint) -> Option<&'static str> {
        let mut name = [0u8; 96];
        let prefix = b"_thread_db_";
        name[..prefix.len()].copy_from_slice(prefix);
        for (suffix, words) in fp.descriptors() {
            let n = prefix.len() + suffix.len();
            if n > name.len() {
                return Some(suffix);
            }
            name[prefix.len()..n].copy_from_slice(suffix.as_bytes());
            let same = self
                .object(&name[..n])
                .is_some_and(|b| b.len() == words.len() * 4 && b.chunks_exact(4).zip(words).all(|(c, &w)| c == w.to_le_bytes()));
            if !same {
                return Some(suffix);
            }
        }
        None
    }
}

impl Libc<'_> {
    /// Before 2.34: the banner's release and distributor (`2.31`,
    /// `Debian` from `GNU C Library (Debian GLIBC 2.31-13+deb11u11) stable
    /// release version 2.31.`). One scan of libc's mapped bytes.
    pub fn banner_key(&self) -> Option<(&[u8], &[u8])> {
        let key = b"GNU C Library (";
        let at = self.img.find(key)? + key.len();
        let s = (1..=BANNER_MAX).rev().find_map(|n| self.img.bytes(at, n))?;
        let vendor_end = s.iter().position(|&b| b == b' ' || b == b')')?;
        let line = &s[..s.iter().position(|&b| b == b'\n' || b == 0).unwrap_or(s.len())];
        let rv = b"release version ";
        let v = line.windows(rv.len()).position(|w| w == rv)? + rv.len();
        let v = &line[v..];
        let end = v.iter().position(|&b| !(b.is_ascii_digit() || b == b'.')).unwrap_or(v.len());
        let version = v[..end].strip_suffix(b".").unwrap_or(&v[..end]);
        (vendor_end > 0 && !version.is_empty()).then_some((version, &s[..vendor_end]))
    }
}

/// The longest banner line read.
const BANNER_MAX: usize = 200;

/// Whether a table's version fact fits: `__nptl_version` equal, or (a libc
/// without one, before 2.34) `"<release> <distributor>"` from the banner.
fn version_fits(fact: &str, nptl: Option<&[u8]>, banner: Option<(&[u8], &[u8])>) -> bool {
    match (nptl, banner) {
        (Some(v), _) => fact.as_bytes() == v,
        (None, Some((v, vendor))) => fact.split_once(' ').is_some_and(|(fv, fvendor)| fv.as_bytes() == v && fvendor.as_bytes() == vendor),
        (None, None) => false,
    }
}

/// The table among `tables` whose fingerprint `libc` matches.
pub fn select(tables: &[&'static Layout], machine: u16, libc: &Libc<'_>) -> Result<&'static Layout, Mismatch> {
    let arch = Arch::from_machine(machine).ok_or(Mismatch::Version)?;
    let nptl = libc.version();
    // Only a libc without `__nptl_version` (before 2.34) pays for the scan.
    let banner = if nptl.is_none() { libc.banner_key() } else { None };
    if nptl.is_none() && banner.is_none() {
        return Err(Mismatch::Version);
    }
    let mut why = Mismatch::Version;
    for &t in tables.iter().filter(|t| t.arch == arch && version_fits(t.fingerprint.version, nptl, banner)) {
        if !libc.imports_are(t.fingerprint.imports) {
            why = Mismatch::Imports;
            continue;
        }
        match libc.thread_db_differs(&t.fingerprint) {
            None => return Ok(t),
            Some(d) => why = Mismatch::ThreadDb(d),
        }
    }
    Err(why)
}

/// Why a `libc.so.6` given as file bytes has no table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileVerdict {
    /// Not an ELF shared object of a supported architecture, or without a
    /// dynamic section.
    NotLibc(&'static str),
    /// A libc no table fits: its version (if it says) and why.
    Unknown { version: Option<alloc::vec::Vec<u8>>, why: Mismatch },
}

/// The table for a `libc.so.6` given as its file's bytes, for tools that
/// check a closure before it runs (`cah`): the file is laid out in memory
/// as the loader maps it (each `PT_LOAD` at its address), then the same
/// [`select`] runs on it.
pub fn select_file(tables: &[&'static Layout], file: &[u8]) -> Result<&'static Layout, FileVerdict> {
    use crate::elf::header::{Ehdr, Phdr};
    use object::elf::{PT_DYNAMIC, PT_LOAD};
    let machine = match file.get(18..20) {
        Some(m) => u16::from_le_bytes([m[0], m[1]]),
        None => return Err(FileVerdict::NotLibc("file too short")),
    };
    let ehdr = Ehdr::parse(file, machine).map_err(|_| FileVerdict::NotLibc("not an ELF object"))?;
    let phdrs = ehdr.phdr_range().and_then(|r| file.get(r)).and_then(Phdr::parse_all).ok_or(FileVerdict::NotLibc("bad program headers"))?;
    let mut span = 0usize;
    for p in phdrs.iter().filter(|p| p.p_type == PT_LOAD) {
        let end = usize::try_from(p.p_vaddr.saturating_add(p.p_memsz)).unwrap_or(usize::MAX);
        span = span.max(end);
    }
    // A libc is a few MB; refuse absurd layouts instead of allocating them.
    if span == 0 || span > 1 << 30 {
        return Err(FileVerdict::NotLibc("bad segment sizes"));
    }
    let mut mem = alloc::vec![0u8; span];
    for p in phdrs.iter().filter(|p| p.p_type == PT_LOAD) {
        let (off, addr, len) = (p.p_offset as usize, p.p_vaddr as usize, p.p_filesz as usize);
        let src = off.checked_add(len).and_then(|end| file.get(off..end));
        let dst = addr.checked_add(len).and_then(|end| mem.get_mut(addr..end));
        match (src, dst) {
            (Some(s), Some(d)) => d.copy_from_slice(s),
            _ => return Err(FileVerdict::NotLibc("segment outside the file")),
        }
    }
    let dynamic = phdrs.iter().find(|p| p.p_type == PT_DYNAMIC).ok_or(FileVerdict::NotLibc("no dynamic section"))?;
    let base = mem.as_ptr() as usize;
    let mut img = Image::new();
    // SAFETY: the image covers exactly `mem`, which outlives it (both are
    // dropped at the end of this function, the image first).
    unsafe { img.add_readable(base, base + mem.len()) };
    let dyn_info = DynInfo::parse(&img, base, base.wrapping_add(dynamic.p_vaddr as usize)).map_err(FileVerdict::NotLibc)?;
    let versions = crate::elf::version::Versions::parse(&img, &dyn_info).map_err(FileVerdict::NotLibc)?;
    let libc = Libc { img: &img, dyn_info: &dyn_info, versions: &versions, base };
    select(tables, machine, &libc)
        .map_err(|why| FileVerdict::Unknown { version: libc.version().or_else(|| libc.banner_version()).map(<[u8]>::to_vec), why })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::glibc::layouts::ALL;

    /// This machine's libc (Debian 12, the test and CI machine) has a table;
    /// Debian's cross libc for arm64 (2.36-8, another layout) does not.
    #[test]
    fn host_libc_has_a_table_and_the_cross_libc_does_not() {
        let host = std::fs::read("/lib/x86_64-linux-gnu/libc.so.6").expect("Debian 12 x86_64 host");
        let l = select_file(ALL, &host).expect("the host's libc has a table");
        assert_eq!((l.glibc_version, l.arch), ("2.36", Arch::X86_64));
        let cross = std::fs::read("/usr/aarch64-linux-gnu/lib/libc.so.6").expect("install libc6-arm64-cross");
        match select_file(ALL, &cross) {
            Err(FileVerdict::Unknown { version, .. }) => assert_eq!(version.as_deref(), Some(&b"2.36"[..])),
            other => panic!("the cross libc must be refused: {other:?}"),
        }
        assert!(matches!(select_file(ALL, b"not an elf file at all"), Err(FileVerdict::NotLibc("not an ELF object"))));
    }
}
