//! `/etc/ld.so.cache`, glibc's "new" format (`glibc-ld.so.cache1.1`), the
//! only one Debian has written since glibc 2.32.
//!
//! Layout (little-endian): a 48-byte header (magic `glibc-ld.so.cache`,
//! version `1.1`, `nlibs` u32, `len_strings` u32, flags u8, 3 pad bytes,
//! extension offset u32, 3 unused u32), then `nlibs` 24-byte entries
//! (`flags` i32, `key` u32, `value` u32, `osversion` u32, `hwcap` u64) whose
//! key (the soname) and value (the path) are offsets from the start of the
//! file. The file is treated as untrusted: every offset is checked.

use crate::elf::header::{u32_at, u64_at};

const MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
const HEADER: usize = 48;
const ENTRY: usize = 24;

/// A parsed view of the cache file.
#[derive(Clone, Copy, Debug)]
pub struct LdCache<'a> {
    data: &'a [u8],
    entries: usize,
}

impl<'a> LdCache<'a> {
    /// Accepts the file if its header and entry table are in bounds.
    pub fn parse(data: &'a [u8]) -> Option<LdCache<'a>> {
        // An old-format prefix ("ld.so-1.7.0") may precede the new table.
        let data = if data.starts_with(b"ld.so-1.7.0") {
            let n = u32_at(data, 12)? as usize;
            let off = (16usize.checked_add(n.checked_mul(12)?)? + 7) & !7;
            data.get(off..)?
        } else {
            data
        };
        if !data.starts_with(MAGIC) {
            return None;
        }
        let nlibs = u32_at(data, 20)? as usize;
        let end = HEADER.checked_add(nlibs.checked_mul(ENTRY)?)?;
        if end > data.len() {
            return None;
        }
        Some(LdCache { data, entries: nlibs })
    }

    fn string(&self, off: u32) -> Option<&'a [u8]> {
        let rest = self.data.get(off as usize..)?;
        let n = rest.iter().position(|&b| b == 0)?;
        Some(&rest[..n])
    }

    fn key(&self, i: usize) -> Option<&'a [u8]> {
        self.string(u32_at(self.data, HEADER + i * ENTRY + 4)?)
    }

    /// The path recorded for `name`, among entries of this arch (`flags`)
    /// built for no particular hardware capability.
    ///
    /// `ldconfig` sorts the entries by key, in descending [`libcmp`] order,
    /// and glibc binary-searches them; so does this: about 12 string
    /// comparisons for Debian's 1500 entries instead of a scan. Entries with
    /// the same key (one per arch or hwcap) are then tried in file order.
    pub fn lookup(&self, name: &[u8], flags: i32) -> Option<&'a [u8]> {
        let (mut lo, mut hi) = (0, self.entries);
        let mut at = None;
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match libcmp(name, self.key(mid)?) {
                core::cmp::Ordering::Less => lo = mid + 1,
                core::cmp::Ordering::Greater => hi = mid,
                core::cmp::Ordering::Equal => {
                    at = Some(mid);
                    break;
                }
            }
        }
        let mut first = at?;
        while first > 0 && self.key(first - 1) == Some(name) {
            first -= 1;
        }
        for i in first..self.entries {
            if self.key(i)? != name {
                break;
            }
            let e = HEADER + i * ENTRY;
            if u32_at(self.data, e)? as i32 == flags && u64_at(self.data, e + 16)? == 0 {
                return self.string(u32_at(self.data, e + 8)?);
            }
        }
        None
    }
}

/// The order `ldconfig` sorts cache keys in (glibc's `_dl_cache_libcmp`):
/// a run of digits in both names compares by its value (leading zeros do
/// not count), a digit sorts after any other byte, and other bytes compare
/// as the platform's C `char`: signed on x86_64, unsigned on aarch64 (the
/// order differs only for bytes from 0x80 up, which `ldconfig` of the same
/// arch wrote). The end of a name compares as a NUL byte would.
/// Numbers of more than 19 digits saturate where glibc's `int` overflows:
/// a cache with such names may then miss them, never misread one.
pub fn libcmp(a: &[u8], b: &[u8]) -> core::cmp::Ordering {
    use core::cmp::Ordering;
    use core::ffi::c_char;
    let number = |s: &[u8], i: &mut usize| -> u64 {
        let mut v = 0u64;
        while let Some(&c) = s.get(*i).filter(|c| c.is_ascii_digit()) {
            v = v.saturating_mul(10).saturating_add(u64::from(c - b'0'));
            *i += 1;
        }
        v
    };
    let (mut i, mut j) = (0, 0);
    // Bytes past the end read as NUL, as the C strings do.
    while let Some(&x) = a.get(i) {
        let y = b.get(j).copied().unwrap_or(0);
        match (x.is_ascii_digit(), y.is_ascii_digit()) {
            (true, true) => {
                let (va, vb) = (number(a, &mut i), number(b, &mut j));
                if va != vb {
                    return va.cmp(&vb);
                }
            }
            (true, false) => return Ordering::Greater,
            (false, true) => return Ordering::Less,
            (false, false) if x != y => return (x as c_char).cmp(&(y as c_char)),
            (false, false) => (i, j) = (i + 1, j + 1),
        }
    }
    0.cmp(&(b.get(j).copied().unwrap_or(0) as c_char))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a cache file the way `ldconfig` lays it out.
    fn build(entries: &[(i32, &str, &str)]) -> Vec<u8> {
        let mut entries = entries.to_vec();
        // ldconfig's order: descending by key (stable, so arches keep theirs).
        entries.sort_by(|a, b| libcmp(b.1.as_bytes(), a.1.as_bytes()));
        let mut strings = Vec::new();
        let base = HEADER + entries.len() * ENTRY;
        let mut table = Vec::new();
        for (flags, key, value) in &entries {
            let k = base + strings.len();
            strings.extend_from_slice(key.as_bytes());
            strings.push(0);
            let v = base + strings.len();
            strings.extend_from_slice(value.as_bytes());
            strings.push(0);
            table.extend_from_slice(&flags.to_le_bytes());
            table.extend_from_slice(&(k as u32).to_le_bytes());
            table.extend_from_slice(&(v as u32).to_le_bytes());
            table.extend_from_slice(&0u32.to_le_bytes());
            table.extend_from_slice(&0u64.to_le_bytes());
        }
        let mut f = Vec::new();
        f.extend_from_slice(MAGIC);
        f.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        f.extend_from_slice(&(strings.len() as u32).to_le_bytes());
        f.resize(HEADER, 0);
        f.extend(table);
        f.extend(strings);
        f
    }

    #[test]
    fn finds_entries_of_the_right_arch_only() {
        let f = build(&[
            (0x0a03, "libz.so.1", "/usr/lib/aarch64-linux-gnu/libz.so.1"),
            (0x0303, "libz.so.1", "/usr/lib/x86_64-linux-gnu/libz.so.1"),
        ]);
        let c = LdCache::parse(&f).unwrap();
        assert_eq!(c.lookup(b"libz.so.1", 0x0303), Some(&b"/usr/lib/x86_64-linux-gnu/libz.so.1"[..]));
        assert_eq!(c.lookup(b"libz.so.1", 0x0a03), Some(&b"/usr/lib/aarch64-linux-gnu/libz.so.1"[..]));
        assert_eq!(c.lookup(b"libzz.so.1", 0x0303), None);
    }

    #[test]
    fn reads_this_machines_cache() {
        // The real file, written by the real ldconfig: libc must be in it.
        let Ok(data) = std::fs::read("/etc/ld.so.cache") else {
            panic!("/etc/ld.so.cache is missing on this Debian machine");
        };
        let c = LdCache::parse(&data).expect("parses");
        let path = c.lookup(b"libc.so.6", 0x0303).expect("libc.so.6 listed");
        assert!(std::path::Path::new(std::str::from_utf8(path).unwrap()).exists());
        // The binary search finds what a scan of every entry finds, for
        // every key ldconfig wrote (and nothing for names not in it).
        let scan = |name: &[u8], flags: i32| {
            (0..c.entries).find_map(|i| {
                let e = HEADER + i * ENTRY;
                let hit = u32_at(c.data, e)? as i32 == flags && u64_at(c.data, e + 16)? == 0 && c.key(i)? == name;
                if hit {
                    c.string(u32_at(c.data, e + 8)?)
                } else {
                    None
                }
            })
        };
        assert!(c.entries > 10);
        for i in 0..c.entries {
            let key = c.key(i).unwrap();
            for flags in [0x0303, 0x0a03, 0x0003] {
                assert_eq!(c.lookup(key, flags), scan(key, flags), "{}", String::from_utf8_lossy(key));
            }
            let mut other = key.to_vec();
            other.push(b'x');
            assert_eq!(c.lookup(&other, 0x0303), None);
        }
    }

    #[test]
    fn libcmp_orders_numbers_by_value() {
        use core::cmp::Ordering::*;
        assert_eq!(libcmp(b"libc.so.6", b"libc.so.6"), Equal);
        assert_eq!(libcmp(b"libfoo.so.10", b"libfoo.so.9"), Greater);
        assert_eq!(libcmp(b"libfoo.so.9", b"libfoo.so.10"), Less);
        assert_eq!(libcmp(b"liba.so", b"libb.so"), Less);
        assert_eq!(libcmp(b"lib1", b"liba"), Greater);
        assert_eq!(libcmp(b"libx", b"libx.so"), Less);
        assert_eq!(libcmp(b"libz.so.01", b"libz.so.1"), Equal);
        assert_eq!(libcmp(b"", b""), Equal);
        assert_eq!(libcmp(b"a1", b"a"), Greater, "a digit against the end");
        // Bytes from 0x80 up compare as the platform's C `char`.
        let high = libcmp(b"lib\xe9", b"libz");
        assert_eq!(high, if cfg!(target_arch = "x86_64") { Less } else { Greater });
        assert_eq!(libcmp(b"lib", b"lib\xe9"), if cfg!(target_arch = "x86_64") { Greater } else { Less });
    }

    #[test]
    fn hostile_orders_and_strings_end_the_search_quickly() {
        // Entries not in ldconfig's order: the search may miss, never loops.
        let mut f = build(&[(0x0303, "liba.so.1", "/a"), (0x0303, "libb.so.1", "/b"), (0x0303, "libc.so.1", "/c")]);
        let swap = |f: &mut Vec<u8>, i: usize, j: usize| {
            for k in 0..ENTRY {
                f.swap(HEADER + i * ENTRY + k, HEADER + j * ENTRY + k);
            }
        };
        swap(&mut f, 0, 2);
        let c = LdCache::parse(&f).unwrap();
        for name in [&b"liba.so.1"[..], b"libb.so.1", b"libc.so.1", b"libd.so.1"] {
            let _ = c.lookup(name, 0x0303);
        }
        assert_eq!(c.lookup(b"libb.so.1", 0x0303), Some(&b"/b"[..]), "the middle entry is still found");
        // Every key the same: the walk over equal keys stays in the table.
        let same: Vec<(i32, &str, &str)> = (0..200).map(|_| (0x0a03, "libx.so", "/x")).collect();
        let f = build(&same);
        assert_eq!(LdCache::parse(&f).unwrap().lookup(b"libx.so", 0x0303), None, "no entry of this arch");
        // Strings that run to the end of the file without a NUL.
        let mut f = build(&[(0x0303, "liba.so", "/a/liba.so")]);
        let n = f.len();
        f[n - 1] = b'x';
        assert_eq!(LdCache::parse(&f).unwrap().lookup(b"liba.so", 0x0303), None, "an unterminated value");
        let strings = HEADER + ENTRY;
        f[strings + 7] = b'x';
        assert_eq!(LdCache::parse(&f).unwrap().lookup(b"liba.so", 0x0303), None, "an unterminated key");
        // More entries than the file holds.
        let mut f = build(&[(0x0303, "liba.so", "/a")]);
        f[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(LdCache::parse(&f).is_none());
    }

    #[test]
    fn truncated_or_corrupt_files_are_rejected_or_harmless() {
        let f = build(&[(0x0303, "liba.so", "/a/liba.so")]);
        for len in 0..f.len() {
            if let Some(c) = LdCache::parse(&f[..len]) {
                let _ = c.lookup(b"liba.so", 0x0303);
            }
        }
        let mut g = f.clone();
        g[HEADER + 4..HEADER + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(LdCache::parse(&g).unwrap().lookup(b"liba.so", 0x0303), None);
    }
}
