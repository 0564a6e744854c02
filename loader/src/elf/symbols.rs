//! Symbols and the two hash tables that find them: GNU hash (with its
//! Bloom filter) first, SysV `DT_HASH` as fallback.

use object::elf::*;

use super::consts::*;

use super::image::{same_bytes, Span};
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

/// An object's symbol tables, located and checked against its image once
/// (when its dynamic section is parsed) so that a lookup reads them
/// through [`Span`]s: one comparison per read instead of a scan of the
/// image's ranges, and no header re-read per probe.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tables {
    /// `DT_SYMTAB`, up to the end of its readable range.
    symtab: Span,
    /// `DT_STRTAB`, `DT_STRSZ` bytes (or up to the end of its range).
    strtab: Span,
    /// `DT_VERSYM`, if any.
    versym: Option<Span>,
    gnu: Option<GnuTable>,
}

/// A `DT_GNU_HASH` table's header, decoded and checked once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct GnuTable {
    nbuckets: u32,
    symoffset: u32,
    /// Bloom size - 1 (the size is a power of two).
    bloom_mask: u32,
    bloom_shift: u32,
    bloom: Span,
    buckets: Span,
    /// From the first chain word to the end of its readable range.
    chains: Span,
}

impl Tables {
    /// Locates the tables of `d` in `img`. Never fails: a table that is
    /// missing or lies outside the object gets an empty span (its reads
    /// fail, as `Image` reads would), and a GNU hash table whose header is
    /// unusable is left out (lookups in it find nothing, as before).
    pub fn new(img: &Image, d: &DynInfo) -> Tables {
        let upto = |addr: usize, max: usize| if addr == 0 { Span::default() } else { img.span_upto(addr, max).unwrap_or_default() };
        Tables {
            symtab: upto(d.symtab, usize::MAX),
            strtab: upto(d.strtab, d.strsz),
            versym: (d.versym != 0).then(|| upto(d.versym, usize::MAX)),
            gnu: if d.gnu_hash != 0 { GnuTable::new(img, d.gnu_hash) } else { None },
        }
    }

    /// Symbol `idx`.
    #[inline]
    pub fn symbol(&self, img: &Image, idx: u32) -> Option<Sym> {
        let b: [u8; 24] = img.at(self.symtab, (idx as usize).checked_mul(24)?)?;
        Some(Sym {
            st_name: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            st_info: b[4],
            st_other: b[5],
            st_shndx: u16::from_le_bytes([b[6], b[7]]),
            st_value: u64::from_le_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]),
            st_size: u64::from_le_bytes([b[16], b[17], b[18], b[19], b[20], b[21], b[22], b[23]]),
        })
    }

    /// Whether the string at `off` of the string table is `name` (with its
    /// NUL inside the table), without measuring the string first.
    #[inline]
    fn name_is(&self, img: &Image, off: u32, name: &[u8]) -> bool {
        match img.span_bytes(self.strtab, off as usize, name.len() + 1) {
            Some(b) => b[name.len()] == 0 && same_bytes(&b[..name.len()], name),
            None => false,
        }
    }

    /// The version index of symbol `idx`, if the object has `DT_VERSYM`
    /// (`Some(None)` when the entry cannot be read, as `Image::u16` did).
    #[inline]
    fn versym(&self, img: &Image, idx: u32) -> Option<Option<u16>> {
        self.versym.map(|v| img.at(v, idx as usize * 2))
    }
}

/// An object's Bloom filter, taken out of its tables for a scope walk
/// that tests many names against the same objects (lazy binding's
/// snapshot).
#[derive(Clone, Copy, Debug)]
pub enum Filter {
    /// The `DT_GNU_HASH` Bloom filter's words, its size - 1 and shift.
    Bloom(Span, u32, u32),
    /// Located tables without a usable GNU hash table: [`lookup`] finds
    /// nothing in this object.
    Nothing,
    /// No located tables, or a SysV hash table only: search every time.
    Search,
}

impl Filter {
    pub fn of(d: &DynInfo) -> Filter {
        match &d.tables {
            Some(Tables { gnu: Some(g), .. }) => Filter::Bloom(g.bloom, g.bloom_mask, g.bloom_shift),
            Some(Tables { gnu: None, .. }) if d.gnu_hash != 0 => Filter::Nothing,
            _ => Filter::Search,
        }
    }
}

impl GnuTable {
    fn new(img: &Image, h: usize) -> Option<GnuTable> {
        let head = img.span(h, 16)?;
        let (nbuckets, symoffset): (u32, u32) = (img.at(head, 0)?, img.at(head, 4)?);
        let (bloom_size, bloom_shift): (u32, u32) = (img.at(head, 8)?, img.at(head, 12)?);
        if nbuckets == 0 || bloom_size == 0 || !bloom_size.is_power_of_two() {
            return None;
        }
        let bloom_bytes = (bloom_size as usize).checked_mul(8)?;
        let bloom = img.span(h + 16, bloom_bytes)?;
        let buckets_at = (h + 16).checked_add(bloom_bytes)?;
        let bucket_bytes = (nbuckets as usize).checked_mul(4)?;
        let buckets = img.span(buckets_at, bucket_bytes)?;
        // Chains may be empty (no hashed symbols): reads then fail.
        let chains = img.span_upto(buckets_at.checked_add(bucket_bytes)?, usize::MAX).unwrap_or_default();
        Some(GnuTable { nbuckets, symoffset, bloom_mask: bloom_size - 1, bloom_shift: bloom_shift & 63, bloom, buckets, chains })
    }
}

/// The tables of `d`: those located when it was parsed, or located now
/// (into `tmp`), borrowed rather than copied.
#[inline]
fn tables<'t>(img: &Image, d: &'t DynInfo, tmp: &'t mut Option<Tables>) -> &'t Tables {
    match &d.tables {
        Some(t) => t,
        None => tmp.insert(Tables::new(img, d)),
    }
}

/// Reads symbol `idx` of an object's dynamic symbol table.
pub fn symbol(img: &Image, d: &DynInfo, idx: u32) -> Option<Sym> {
    tables(img, d, &mut None).symbol(img, idx)
}

/// A name to look up, with its GNU hash computed once (the SysV hash is
/// computed only for the rare object without a GNU hash table).
#[derive(Clone, Copy, Debug)]
pub struct Query<'a> {
    pub name: &'a [u8],
    pub gnu: u32,
    /// `dlsym` semantics for unversioned names: prefer the default
    /// (newest) version over the base one (glibc's `DL_LOOKUP_RETURN_NEWEST`).
    pub newest: bool,
}

impl<'a> Query<'a> {
    pub fn new(name: &'a [u8]) -> Query<'a> {
        Query { name, gnu: gnu_hash(name), newest: false }
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

/// One search of one object's definitions: what is asked, and the
/// fallback seen so far (see [`Search::check`]).
struct Search<'s, 'q> {
    img: &'s Image,
    t: &'s Tables,
    defs: &'s Versions,
    q: &'s Query<'q>,
    want: Option<&'s VersionReq<'s>>,
    plt: bool,
    /// How many non-hidden versioned definitions an unversioned reference
    /// passed over, and the first of them.
    fallback: (u32, Option<(u32, Sym)>),
}

impl Search<'_, '_> {
    /// Decides whether symbol `idx` of the object defines what `q` asks
    /// for, following glibc's rules for versions:
    /// - a versioned reference matches the definition of that version, or
    ///   an unversioned (global) one unless either side is hidden;
    /// - an unversioned reference takes the base or oldest version, or else
    ///   a single non-hidden default version (the `Fallback`).
    #[inline]
    fn check(&mut self, idx: u32) -> Option<Sym> {
        let (img, t, q) = (self.img, self.t, self.q);
        let sym = t.symbol(img, idx)?;
        if sym.st_value == 0 && sym.st_shndx != SHN_ABS && sym.kind() != STT_TLS {
            return None;
        }
        // A PLT reference must not bind to an undefined symbol's PLT address
        // (canonical function addresses of non-PIC executables are for data only).
        if self.plt && sym.is_undefined() {
            return None;
        }
        if !acceptable_type(sym.kind()) || sym.bind() == STB_LOCAL {
            return None;
        }
        if !t.name_is(img, sym.st_name, q.name) {
            return None;
        }
        let versym = t.versym(img, idx).flatten();
        match (self.want, versym) {
            (Some(_), None) => Some(sym),
            (Some(w), Some(vs)) => {
                let ndx = vs & 0x7fff;
                let hidden_def = vs & 0x8000 != 0;
                let named = self.defs.named_as(self.img, ndx, w);
                if named == Some(true) || !(w.hidden || named.is_some() || hidden_def) {
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
                        self.fallback.0 += 1;
                        if self.fallback.0 == 1 {
                            self.fallback.1 = Some((idx, sym));
                        }
                    }
                    None
                } else {
                    Some(sym)
                }
            }
        }
    }

    #[inline]
    fn gnu(&mut self, g: &GnuTable) -> Option<(u32, Sym)> {
        let (img, q) = (self.img, self.q);
        // The Bloom filter was consulted by `lookup` already.
        let mut idx: u32 = img.at(g.buckets, (q.gnu % g.nbuckets) as usize * 4)?;
        if idx == 0 || idx < g.symoffset {
            return None;
        }
        loop {
            let ch: u32 = img.at(g.chains, (idx - g.symoffset) as usize * 4)?;
            if (ch | 1) == (q.gnu | 1) {
                if let Some(s) = self.check(idx) {
                    return Some((idx, s));
                }
            }
            if ch & 1 != 0 {
                return None;
            }
            idx = idx.checked_add(1)?;
        }
    }

    fn sysv(&mut self, d: &DynInfo) -> Option<(u32, Sym)> {
        let img = self.img;
        let h = d.hash;
        let nbucket = img.u32(h)?;
        let nchain = img.u32(h + 4)?;
        if nbucket == 0 {
            return None;
        }
        let buckets = h + 8;
        let chains = buckets + nbucket as usize * 4;
        let mut idx = img.u32(buckets + (sysv_hash(self.q.name) % nbucket) as usize * 4)?;
        // A chain visits each symbol at most once; more means a loop.
        let mut steps = 0u32;
        while idx != STN_UNDEF && idx < nchain && steps <= nchain {
            if let Some(s) = self.check(idx) {
                return Some((idx, s));
            }
            idx = img.u32(chains + idx as usize * 4)?;
            steps += 1;
        }
        None
    }
}

impl GnuTable {
    /// Whether the Bloom filter lets a name of GNU hash `h` through: two
    /// bits per name, one word per 64 hashes. Most objects of a scope do
    /// not define most names, and this answers for them from one word.
    #[inline(always)]
    fn may_define(&self, img: &Image, h: u32) -> bool {
        let Some(word) = img.at::<u64>(self.bloom, ((h / 64) & self.bloom_mask) as usize * 8) else { return false };
        let mask = (1u64 << (h % 64)) | (1u64 << (h.wrapping_shr(self.bloom_shift) % 64));
        word & mask == mask
    }
}

/// Finds `q` among the definitions of one object.
///
/// Inlined into the scope walk is only the Bloom filter test, which turns
/// away almost every object that does not define the name in a dozen
/// instructions; the search proper is out of line.
#[inline(always)]
pub fn lookup(img: &Image, d: &DynInfo, defs: &Versions, q: &Query<'_>, want: Option<&VersionReq>, plt: bool) -> Found {
    match &d.tables {
        Some(Tables { gnu: Some(g), .. }) if !g.may_define(img, q.gnu) => return Found::None,
        // Tables located but no usable GNU hash table: nothing found.
        Some(Tables { gnu: None, .. }) if d.gnu_hash != 0 => return Found::None,
        _ => {}
    }
    search(img, d, defs, q, want, plt)
}

/// [`lookup`] past the Bloom filter (a scope walk that keeps the filters
/// apart tests them itself).
#[inline(never)]
pub fn search(img: &Image, d: &DynInfo, defs: &Versions, q: &Query<'_>, want: Option<&VersionReq>, plt: bool) -> Found {
    let mut tmp = None;
    let t = tables(img, d, &mut tmp);
    let mut search = Search { img, t, defs, q, want, plt, fallback: (0, None) };
    let found = if d.gnu_hash != 0 {
        // (`lookup` tested the Bloom filter of located tables; tables
        // located only now are tested here.)
        t.gnu.as_ref().filter(|g| d.tables.is_some() || g.may_define(img, q.gnu)).and_then(|g| search.gnu(g))
    } else if d.hash != 0 {
        search.sysv(d)
    } else {
        None
    };
    match (found, search.fallback) {
        (Some((i, s)), _) => Found::Match(i, s),
        (None, (1, Some((i, s)))) => Found::Fallback(i, s),
        _ => Found::None,
    }
}

/// How many symbols the hash tables cover: `nchain` of `DT_HASH`, or the
/// end of `DT_GNU_HASH`'s last chain. This walks every bucket, so it is
/// never on the start path; the reference relocator and tools use it.
pub fn symbol_count(img: &Image, d: &DynInfo) -> Result<usize, &'static str> {
    let mut count = None;
    if d.hash != 0 {
        const BAD: &str = "DT_HASH table lies outside the object";
        let h = d.hash;
        let (nbucket, nchain) = (img.u32(h).ok_or(BAD)? as usize, img.u32(h + 4).ok_or(BAD)? as usize);
        let words = nbucket.checked_add(nchain).and_then(|w| w.checked_add(2)).ok_or(BAD)?;
        if !img.is_readable(h, words.checked_mul(4).ok_or(BAD)?) {
            return Err(BAD);
        }
        count = Some(nchain);
    }
    if d.gnu_hash != 0 {
        let n = gnu_symbol_count(img, d.gnu_hash)?;
        count = Some(count.unwrap_or(n));
    }
    let n = count.unwrap_or(0);
    if n > 0 && (d.symtab == 0 || !img.is_readable(d.symtab, n.checked_mul(24).ok_or("symbol table out of range")?)) {
        return Err("symbol table lies outside the object (hash table counts more symbols)");
    }
    Ok(n)
}

/// The number of symbols a GNU hash table at `h` covers (the end of its
/// last chain), checking it on the way.
fn gnu_symbol_count(img: &Image, h: usize) -> Result<usize, &'static str> {
    const BAD: &str = "DT_GNU_HASH table lies outside the object";
    let nbuckets = img.u32(h).ok_or(BAD)? as usize;
    let symoffset = img.u32(h + 4).ok_or(BAD)?;
    let bloom_size = img.u32(h + 8).ok_or(BAD)? as usize;
    let buckets = bloom_size.checked_mul(8).and_then(|b| (h + 16).checked_add(b)).ok_or(BAD)?;
    let bucket_bytes = nbuckets.checked_mul(4).ok_or(BAD)?;
    if !img.is_readable(h + 16, bloom_size * 8) || !img.is_readable(buckets, bucket_bytes) {
        return Err(BAD);
    }
    let chains = buckets + bucket_bytes;
    let max = (0..nbuckets).filter_map(|b| img.u32(buckets + b * 4)).max().unwrap_or(0);
    if max < symoffset {
        return Ok(symoffset as usize);
    }
    // Walk the last chain to its end bit; running off the readable range
    // first means the table is corrupt.
    let mut idx = max as usize;
    loop {
        let at = (idx - symoffset as usize).checked_mul(4).and_then(|o| chains.checked_add(o)).ok_or(BAD)?;
        let ch = img.u32(at).ok_or("DT_GNU_HASH chain has no end")?;
        if ch & 1 != 0 {
            return Ok(idx + 1);
        }
        idx += 1;
    }
}

/// Checks both hash tables against the object's readable memory when it
/// is loaded, at a cost that does not grow with its symbol count: every
/// count a table holds (`nbucket`, `nchain`, `nbuckets`, the Bloom size) is
/// bounded by the bytes that hold it, so a table that claims 4 billion
/// buckets is refused at once, with a message naming it.
///
/// The chains are not walked here (that would read every bucket of libc at
/// every start): a lookup reads them through a [`Span`] that ends with the
/// object's readable range, so a chain without an end bit, or running past
/// the symbol table, ends the lookup there (nothing found) instead of
/// reading outside the object.
pub fn check_tables(img: &Image, d: &DynInfo) -> Result<(), &'static str> {
    if d.hash != 0 {
        const BAD: &str = "DT_HASH table lies outside the object";
        let h = d.hash;
        let (nbucket, nchain) = (img.u32(h).ok_or(BAD)? as usize, img.u32(h.wrapping_add(4)).ok_or(BAD)? as usize);
        let words = nbucket.checked_add(nchain).and_then(|w| w.checked_add(2)).ok_or(BAD)?;
        if !img.is_readable(h, words.checked_mul(4).ok_or(BAD)?) {
            return Err(BAD);
        }
        // `Search::sysv` reads symbols below `nchain` only.
        if nchain > 0 && (d.symtab == 0 || !img.is_readable(d.symtab, nchain.checked_mul(24).ok_or(BAD)?)) {
            return Err("symbol table lies outside the object (DT_HASH counts more symbols)");
        }
    }
    if d.gnu_hash != 0 {
        const BAD: &str = "DT_GNU_HASH table lies outside the object";
        let h = d.gnu_hash;
        let nbuckets = img.u32(h).ok_or(BAD)? as usize;
        let bloom_size = img.u32(h.wrapping_add(8)).ok_or(BAD)? as usize;
        let bloom_bytes = bloom_size.checked_mul(8).ok_or(BAD)?;
        let buckets = h.checked_add(16).and_then(|b| b.checked_add(bloom_bytes)).ok_or(BAD)?;
        if !img.is_readable(h, 16 + bloom_bytes) || !img.is_readable(buckets, nbuckets.checked_mul(4).ok_or(BAD)?) {
            return Err(BAD);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A GNU hash table (`nbuckets`, Bloom size 1) over symbols 1..=3 in
    /// one bucket, then a symbol table of four entries, in one buffer.
    fn gnu_table(nbuckets: u32, bloom: u32, end_bit: bool) -> Vec<u8> {
        let mut b = Vec::new();
        for w in [nbuckets, 1, bloom, 6] {
            b.extend_from_slice(&w.to_le_bytes());
        }
        b.extend_from_slice(&[0xff; 8]);
        b.extend_from_slice(&1u32.to_le_bytes());
        for (i, h) in [10u32, 20, 30].iter().enumerate() {
            let last = i == 2 && end_bit;
            b.extend_from_slice(&(if last { h | 1 } else { h & !1 }).to_le_bytes());
        }
        b.resize(b.len() + 4 * 24, 0);
        b
    }

    #[allow(unsafe_code)]
    fn image_of(buf: &[u8], gnu: bool) -> (Image, DynInfo) {
        let base = buf.as_ptr() as usize;
        let mut img = Image::new();
        // SAFETY: the image covers exactly `buf`, which outlives it.
        unsafe { img.add_readable(base, base + buf.len()) };
        let symtab = base + buf.len() - 4 * 24;
        let mut d = DynInfo { gnu_hash: if gnu { base } else { 0 }, hash: if gnu { 0 } else { base }, symtab, ..DynInfo::default() };
        d.tables = Some(Tables::new(&img, &d));
        (img, d)
    }

    fn check(buf: &[u8], gnu: bool) -> Result<(), &'static str> {
        let (img, d) = image_of(buf, gnu);
        check_tables(&img, &d)
    }

    #[test]
    fn hash_table_counts_are_bounded_by_the_bytes_that_hold_them() {
        assert_eq!(check(&gnu_table(1, 1, true), true), Ok(()));
        // 4 billion buckets, a huge Bloom filter: refused, not walked.
        let started = std::time::Instant::now();
        assert_eq!(check(&gnu_table(u32::MAX, 1, true), true), Err("DT_GNU_HASH table lies outside the object"));
        assert!(check(&gnu_table(1, u32::MAX, true), true).is_err());
        assert!(started.elapsed().as_millis() < 100, "refused at once");
        // SysV: nbucket = 1, nchain = 4 fits; nchain of 4 billion does not.
        let mut sysv = Vec::new();
        for w in [1u32, 4, 1, 0, 0, 0, 0] {
            sysv.extend_from_slice(&w.to_le_bytes());
        }
        sysv.resize(sysv.len() + 4 * 24, 0);
        assert_eq!(check(&sysv, false), Ok(()));
        sysv[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(check(&sysv, false).is_err());
        // More symbols than the symbol table holds.
        sysv[4..8].copy_from_slice(&50u32.to_le_bytes());
        assert!(check(&sysv, false).is_err());
    }

    #[test]
    fn a_chain_without_an_end_stops_at_the_end_of_the_object() {
        // Every chain word has the hash of the name (end bit clear), and
        // the symbols have no name: the lookup compares each, runs off the
        // end of the readable range and finds nothing, without faulting.
        let q = Query::new(b"f");
        let mut b = gnu_table(1, 1, false);
        for i in 0..3 {
            let at = 16 + 8 + 4 + i * 4;
            b[at..at + 4].copy_from_slice(&(q.gnu & !1).to_le_bytes());
        }
        let (img, d) = image_of(&b, true);
        assert_eq!(check_tables(&img, &d), Ok(()));
        assert_eq!(lookup(&img, &d, &Versions::default(), &q, None, false), Found::None);
    }

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
