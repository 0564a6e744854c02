//! Symbols and the two hash tables that find them: GNU hash (with its
//! Bloom filter) first, SysV `DT_HASH` as fallback.

use object::elf::*;

use super::consts::*;

use super::version::{VersionReq, Versions};
use super::{DynInfo, Image};

/// `Elf64_Sym`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sym {
    pub st_name: u32,
    pub st_info: u8,
    pub st_other: u8,
    pub st_shndx: u16,
    pub st_value: u64,
    pub st_size: u64,
}

impl Sym {
    pub fn bind(&self) -> u8 {
        self.st_info >> 4
    }
    pub fn kind(&self) -> u8 {
        self.st_info & 0xf
    }
    pub fn visibility(&self) -> u8 {
        self.st_other & 3
    }
    pub fn is_undefined(&self) -> bool {
        self.st_shndx == SHN_UNDEF
    }
}

/// The GNU hash of a name (DJB hash, as the GNU toolchain defines it).
pub fn gnu_hash(name: &[u8]) -> u32 {
    name.iter().fold(5381u32, |h, &c| h.wrapping_mul(33).wrapping_add(u32::from(c)))
}

/// The SysV ELF hash of a name.
pub fn sysv_hash(name: &[u8]) -> u32 {
    let mut h: u32 = 0;
    for &c in name {
        h = (h << 4).wrapping_add(u32::from(c));
        let g = h & 0xf000_0000;
        if g != 0 {
            h ^= g >> 24;
        }
        h &= !g;
    }
    h
}

/// Reads symbol `idx` of an object's dynamic symbol table.
pub fn symbol(img: &Image, d: &DynInfo, idx: u32) -> Option<Sym> {
    let at = d.symtab.checked_add((idx as usize).checked_mul(24)?)?;
    let b = img.bytes(at, 24)?;
    Some(Sym {
        st_name: u32::from_le_bytes(b[0..4].try_into().ok()?),
        st_info: b[4],
        st_other: b[5],
        st_shndx: u16::from_le_bytes(b[6..8].try_into().ok()?),
        st_value: u64::from_le_bytes(b[8..16].try_into().ok()?),
        st_size: u64::from_le_bytes(b[16..24].try_into().ok()?),
    })
}

/// A name to look up, with both hashes computed once.
#[derive(Clone, Copy, Debug)]
pub struct Query<'a> {
    pub name: &'a [u8],
    pub gnu: u32,
    pub sysv: u32,
    /// `dlsym` semantics for unversioned names: prefer the default
    /// (newest) version over the base one (glibc's `DL_LOOKUP_RETURN_NEWEST`).
    pub newest: bool,
}

impl<'a> Query<'a> {
    pub fn new(name: &'a [u8]) -> Query<'a> {
        Query { name, gnu: gnu_hash(name), sysv: sysv_hash(name), newest: false }
    }
}

/// What a search in one object found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// A definition that matches.
    Match(u32, Sym),
    /// Nothing that matches exactly, but a single default versioned
    /// definition that an unversioned reference may use if nothing better
    /// turns up in this object.
    Fallback(u32, Sym),
    None,
}

/// Which symbol types a lookup accepts.
fn acceptable_type(kind: u8) -> bool {
    matches!(kind, STT_NOTYPE | STT_OBJECT | STT_FUNC | STT_COMMON | STT_TLS | STT_GNU_IFUNC)
}

/// Decides whether symbol `idx` of an object defines what `q` asks for,
/// following glibc's rules for versions:
/// - a versioned reference matches the definition of that version, or an
///   unversioned (global) one unless either side is hidden;
/// - an unversioned reference takes the base or oldest version, or else a
///   single non-hidden default version (the `Fallback`).
fn check(
    img: &Image,
    d: &DynInfo,
    defs: &Versions,
    idx: u32,
    q: &Query<'_>,
    want: Option<&VersionReq>,
    plt: bool,
    fallback: &mut (u32, Option<(u32, Sym)>),
) -> Option<Sym> {
    let sym = symbol(img, d, idx)?;
    if sym.st_value == 0 && sym.st_shndx != SHN_ABS && sym.kind() != STT_TLS {
        return None;
    }
    // A PLT reference must not bind to an undefined symbol's PLT address
    // (canonical function addresses of non-PIC executables are for data only).
    if plt && sym.is_undefined() {
        return None;
    }
    if !acceptable_type(sym.kind()) || sym.bind() == STB_LOCAL {
        return None;
    }
    if d.string(img, sym.st_name as usize)? != q.name {
        return None;
    }
    let versym = if d.versym != 0 { img.u16(d.versym + idx as usize * 2) } else { None };
    match (want, versym) {
        (Some(_), None) => Some(sym),
        (Some(w), Some(vs)) => {
            let ndx = vs & 0x7fff;
            let hidden_def = vs & 0x8000 != 0;
            let named = defs.get(ndx);
            let same = named.is_some_and(|v| v.hash == w.hash && v.name == w.name);
            if same || !(w.hidden || named.is_some() || hidden_def) {
                Some(sym)
            } else {
                None
            }
        }
        (None, None) => Some(sym),
        (None, Some(vs)) => {
            if vs & 0x7fff >= if q.newest { 2 } else { 3 } {
                // Remember the first non-hidden versioned definition;
                // usable only if it is the only one.
                if vs & 0x8000 == 0 {
                    fallback.0 += 1;
                    if fallback.0 == 1 {
                        fallback.1 = Some((idx, sym));
                    }
                }
                None
            } else {
                Some(sym)
            }
        }
    }
}

/// Finds `q` among the definitions of one object.
pub fn lookup(
    img: &Image,
    d: &DynInfo,
    defs: &Versions,
    q: &Query<'_>,
    want: Option<&VersionReq>,
    plt: bool,
) -> Found {
    let mut fallback = (0u32, None);
    let found = if d.gnu_hash != 0 {
        lookup_gnu(img, d, defs, q, want, plt, &mut fallback)
    } else if d.hash != 0 {
        lookup_sysv(img, d, defs, q, want, plt, &mut fallback)
    } else {
        None
    };
    match (found, fallback) {
        (Some((i, s)), _) => Found::Match(i, s),
        (None, (1, Some((i, s)))) => Found::Fallback(i, s),
        _ => Found::None,
    }
}

fn lookup_gnu(
    img: &Image,
    d: &DynInfo,
    defs: &Versions,
    q: &Query<'_>,
    want: Option<&VersionReq>,
    plt: bool,
    fallback: &mut (u32, Option<(u32, Sym)>),
) -> Option<(u32, Sym)> {
    let h = d.gnu_hash;
    let nbuckets = img.u32(h)?;
    let symoffset = img.u32(h + 4)?;
    let bloom_size = img.u32(h + 8)?;
    let bloom_shift = img.u32(h + 12)?;
    if nbuckets == 0 || bloom_size == 0 || !bloom_size.is_power_of_two() {
        return None;
    }
    let bloom = h + 16;
    // The Bloom filter: two bits per name, one word per 64 hashes.
    let word = img.u64(bloom + ((q.gnu / 64) & (bloom_size - 1)) as usize * 8)?;
    let mask = (1u64 << (q.gnu % 64)) | (1u64 << ((q.gnu >> (bloom_shift & 63)) % 64));
    if word & mask != mask {
        return None;
    }
    let buckets = bloom + bloom_size as usize * 8;
    let chains = buckets + nbuckets as usize * 4;
    let mut idx = img.u32(buckets + (q.gnu % nbuckets) as usize * 4)?;
    if idx == 0 || idx < symoffset {
        return None;
    }
    loop {
        let ch = img.u32(chains + (idx - symoffset) as usize * 4)?;
        if (ch | 1) == (q.gnu | 1) {
            if let Some(s) = check(img, d, defs, idx, q, want, plt, fallback) {
                return Some((idx, s));
            }
        }
        if ch & 1 != 0 {
            return None;
        }
        idx = idx.checked_add(1)?;
    }
}

fn lookup_sysv(
    img: &Image,
    d: &DynInfo,
    defs: &Versions,
    q: &Query<'_>,
    want: Option<&VersionReq>,
    plt: bool,
    fallback: &mut (u32, Option<(u32, Sym)>),
) -> Option<(u32, Sym)> {
    let h = d.hash;
    let nbucket = img.u32(h)?;
    let nchain = img.u32(h + 4)?;
    if nbucket == 0 {
        return None;
    }
    let buckets = h + 8;
    let chains = buckets + nbucket as usize * 4;
    let mut idx = img.u32(buckets + (q.sysv % nbucket) as usize * 4)?;
    // A chain visits each symbol at most once; more means a loop.
    let mut steps = 0u32;
    while idx != STN_UNDEF && idx < nchain && steps <= nchain {
        if let Some(s) = check(img, d, defs, idx, q, want, plt, fallback) {
            return Some((idx, s));
        }
        idx = img.u32(chains + idx as usize * 4)?;
        steps += 1;
    }
    None
}

/// The number of dynamic symbols, from whichever hash table exists.
pub fn symbol_count(img: &Image, d: &DynInfo) -> usize {
    if d.hash != 0 {
        return img.u32(d.hash + 4).unwrap_or(0) as usize;
    }
    if d.gnu_hash == 0 {
        return 0;
    }
    let h = d.gnu_hash;
    let (Some(nbuckets), Some(symoffset), Some(bloom_size)) = (img.u32(h), img.u32(h + 4), img.u32(h + 8)) else {
        return 0;
    };
    let buckets = h + 16 + bloom_size as usize * 8;
    let chains = buckets + nbuckets as usize * 4;
    let mut max = 0u32;
    for b in 0..nbuckets as usize {
        max = max.max(img.u32(buckets + b * 4).unwrap_or(0));
    }
    if max < symoffset {
        return symoffset as usize;
    }
    // Walk the last chain to its end bit.
    let mut idx = max;
    while let Some(ch) = img.u32(chains + (idx - symoffset) as usize * 4) {
        if ch & 1 != 0 {
            break;
        }
        idx += 1;
    }
    idx as usize + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_the_published_values() {
        // Values from the GNU hash write-up and the System V ABI example.
        assert_eq!(gnu_hash(b""), 0x0000_1505);
        assert_eq!(gnu_hash(b"printf"), 0x156b_2bb8);
        assert_eq!(gnu_hash(b"exit"), 0x7c96_7e3f);
        assert_eq!(sysv_hash(b""), 0);
        assert_eq!(sysv_hash(b"printf"), 0x0779_05a6);
        assert_eq!(sysv_hash(b"exit"), 0x0006_cf04);
    }
}
