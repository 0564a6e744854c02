//! Which layout table fits a `libc.so.6`.
//!
//! A table is chosen by what decides the layout, not by build id, so that a
//! distribution's point release (new build id, same structures) runs
//! without a new loader. Each table carries the [`Fingerprint`] of the
//! build it was generated from; a libc matches when every fact agrees:
//!
//! * the architecture;
//! * `__nptl_version`, the version string libc exports for libthread_db
//!   (`"2.36"`);
//! * the exact set of symbols libc imports from its loader (every
//!   undefined symbol of `libc.so.6`): the private interface between the two;
//! * every `_thread_db_*` descriptor: sizes and member offsets of
//!   `struct pthread`, `struct link_map`, `_rtld_global` and the DTV, which
//!   libc compiles in for debuggers. Debian's cross libc (2.36-8) differs
//!   from 2.36-9 here (`link_map` moved `l_tls_modid` by 8 bytes).
//!
//! All of it is read from the mapped, verified libc through its symbol
//! table: about fifty hash look-ups, no allocation. A libc that matches no
//! table is refused; a wrong layout is never used.

use super::layout::{Arch, Fingerprint, Layout};
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
        self.img.bytes(
            self.base.wrapping_add(s.st_value as usize),
            s.st_size as usize,
        )
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
    /// entries are read; a libc without one matches no table.
    fn imports_are(&self, want: &[&str]) -> bool {
        let h = self.dyn_info.gnu_hash;
        let Some(symoffset) = (if h == 0 { None } else { self.img.u32(h + 4) }) else {
            return false;
        };
        let mut seen = 0usize;
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
            if want.binary_search_by(|w| w.as_bytes().cmp(name)).is_err() {
                return false;
            }
            seen += 1;
        }
        seen == want.len()
    }

    /// Whether every descriptor of `fp` is in libc with the same words.
    fn thread_db_differs(&self, fp: &Fingerprint) -> Option<&'static str> {
        let mut name = [0u8; 96];
        let prefix = b"_thread_db_";
        name[..prefix.len()].copy_from_slice(prefix);
        for &(suffix, words) in fp.thread_db {
            let n = prefix.len() + suffix.len();
            if n > name.len() {
                return Some(suffix);
            }
            name[prefix.len()..n].copy_from_slice(suffix.as_bytes());
            let same = self.object(&name[..n]).is_some_and(|b| {
                b.len() == words.len() * 4
                    && b.chunks_exact(4)
                        .zip(words)
                        .all(|(c, &w)| c == w.to_le_bytes())
            });
            if !same {
                return Some(suffix);
            }
        }
        None
    }
}

/// The table among `tables` whose fingerprint `libc` matches.
pub fn select(
    tables: &[&'static Layout],
    machine: u16,
    libc: &Libc<'_>,
) -> Result<&'static Layout, Mismatch> {
    let arch = Arch::from_machine(machine).ok_or(Mismatch::Version)?;
    let version = libc.version().ok_or(Mismatch::Version)?;
    let mut why = Mismatch::Version;
    for &t in tables
        .iter()
        .filter(|t| t.arch == arch && t.fingerprint.version.as_bytes() == version)
    {
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
