//! The primitives of the installed layout table format
//! (`docs/glibc-table-format.md`): little-endian numbers, length-prefixed
//! strings and lists whose counts may not exceed what the bytes left could
//! hold. The generated decoder (`layouts/decode.rs`) reads a `Layout` with
//! them; `installed` checks the file around it. Safe code.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use super::layout::{Arch, Array, Bits, Field, Fingerprint, Names, ThreadDb, Tunable, TunableSecurity, TunableType, Tunables};

/// Reads the primitives of the table format (little-endian; strings and
/// lists prefixed with a `u32` count that may not exceed what the bytes
/// left could hold). Every read past the end is an error, never a panic.
pub struct Reader<'a> {
    buf: &'a [u8],
    /// The first error of the `next_*` reads (see there).
    failed: Option<&'static str>,
}

pub type R<T> = Result<T, &'static str>;

/// Copies `s` into a leaked allocation: tables live as long as the process.
fn leak_str(s: &str) -> &'static str {
    Box::leak(String::from(s).into_boxed_str())
}

fn leak<T>(v: Vec<T>) -> &'static [T] {
    Box::leak(v.into_boxed_slice())
}

/// Moves `v` into a leaked allocation (the decoded `Types`).
pub fn leaked<T>(v: T) -> &'static T {
    Box::leak(Box::new(v))
}

/// Appends `name` and its NUL to a [`Names`] being built; a name that
/// holds a NUL itself would split in two, and is an error.
fn push_name(names: &mut String, name: &str) -> R<()> {
    if name.contains('\0') {
        return Err("a name holds a NUL");
    }
    names.push_str(name);
    names.push('\0');
    Ok(())
}

/// Where the next name pushed to `names` will start, as a `Tunable` holds it.
fn offset(names: &str) -> R<u16> {
    u16::try_from(names.len()).map_err(|_| "tunable names beyond 64 KiB")
}

fn leak_names(names: String) -> Names {
    Names(Box::leak(names.into_boxed_str()))
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, failed: None }
    }

    /// Bytes not read yet.
    pub fn left(&self) -> usize {
        self.buf.len()
    }

    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        if n > self.buf.len() {
            return Err("truncated");
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    #[inline(never)]
    pub fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }

    #[inline(never)]
    pub fn u32(&mut self) -> R<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    #[inline(never)]
    pub fn u64(&mut self) -> R<u64> {
        let b = self.take(8)?;
        let mut w = [0u8; 8];
        w.copy_from_slice(b);
        Ok(u64::from_le_bytes(w))
    }

    /// A presence flag: 0 or 1.
    #[inline(never)]
    pub fn flag(&mut self) -> R<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err("bad presence flag"),
        }
    }

    /// A count of items of at least `min` bytes each.
    fn count(&mut self, min: usize) -> R<usize> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min.max(1)) > self.buf.len() {
            return Err("count larger than the file");
        }
        Ok(n)
    }

    /// Length-prefixed bytes.
    pub fn bytes(&mut self) -> R<&'a [u8]> {
        let n = self.count(1)?;
        self.take(n)
    }

    /// A length-prefixed UTF-8 string, leaked.
    #[inline(never)]
    pub fn str(&mut self) -> R<&'static str> {
        self.text().map(leak_str)
    }

    /// A length-prefixed UTF-8 string.
    fn text(&mut self) -> R<&'a str> {
        let b = self.bytes()?;
        core::str::from_utf8(b).map_err(|_| "string is not UTF-8")
    }

    /// A counted list of strings, as one leaked [`Names`].
    pub fn names(&mut self) -> R<Names> {
        let n = self.count(4)?;
        let mut names = String::new();
        for _ in 0..n {
            let name = self.text()?;
            push_name(&mut names, name)?;
        }
        Ok(leak_names(names))
    }

    #[inline(never)]
    pub fn opt_i64(&mut self) -> R<Option<i64>> {
        Ok(if self.flag()? { Some(self.u64()? as i64) } else { None })
    }

    /// An offset or a size: a `u32` in the file, at most 65,535 (no
    /// struct the loader writes is near that; a larger value is damage).
    #[inline(never)]
    pub fn offset(&mut self) -> R<u16> {
        u16::try_from(self.u32()?).map_err(|_| "offset or size above 65535")
    }

    #[inline(never)]
    pub fn field(&mut self) -> R<Field> {
        Ok(Field { off: self.offset()?, size: self.offset()? })
    }

    #[inline(never)]
    pub fn bits(&mut self) -> R<Bits> {
        let b = Bits { off: self.offset()?, bit: self.u8()?, width: self.u8()? };
        if b.bit >= 8 || b.width == 0 || b.width > 64 {
            return Err("bad bit-field");
        }
        Ok(b)
    }

    #[inline(never)]
    pub fn array(&mut self) -> R<Array> {
        Ok(Array { off: self.offset()?, stride: self.offset()?, len: self.offset()? })
    }

    #[inline(never)]
    pub fn arch(&mut self) -> R<Arch> {
        match self.u8()? {
            1 => Ok(Arch::X86_64),
            2 => Ok(Arch::Aarch64),
            _ => Err("unknown architecture"),
        }
    }

    pub fn fingerprint(&mut self) -> R<Fingerprint> {
        let version = self.str()?;
        let imports = self.names()?;
        let n = self.count(8)?;
        let mut thread_db = Vec::with_capacity(n);
        let mut names = String::new();
        for _ in 0..n {
            let name = self.text()?;
            push_name(&mut names, name)?;
            let k = self.count(4)?;
            // glibc's `db_desc_t` is three words.
            if k > 3 {
                return Err("a _thread_db descriptor of more than 3 words");
            }
            let mut words = [0u32; 3];
            for w in &mut words[..k] {
                *w = self.u32()?;
            }
            thread_db.push(ThreadDb { len: k as u8, words });
        }
        Ok(Fingerprint { version, imports, thread_db: leak(thread_db), thread_db_names: leak_names(names) })
    }

    pub fn tunables(&mut self) -> R<Tunables> {
        // name, type, three numbers, security, alias.
        let n = self.count(4 + 1 + 24 + 1 + 4)?;
        let mut v = Vec::with_capacity(n);
        let (mut names, mut aliases) = (String::new(), String::new());
        for _ in 0..n {
            let name = self.text()?;
            let name_at = offset(&names)?;
            push_name(&mut names, name)?;
            let ty = match self.u8()? {
                0 => TunableType::Int32,
                1 => TunableType::Uint64,
                2 => TunableType::SizeT,
                3 => TunableType::String,
                _ => return Err("unknown tunable type"),
            };
            let (default, min, max) = (self.u64()?, self.u64()?, self.u64()?);
            let security = match self.u8()? {
                0 => None,
                1 => Some(TunableSecurity::Erase),
                2 => Some(TunableSecurity::Ignore),
                3 => Some(TunableSecurity::None),
                _ => return Err("unknown tunable security level"),
            };
            let alias = self.text()?;
            let alias_at = offset(&aliases)?;
            push_name(&mut aliases, alias)?;
            v.push(Tunable { ty, default, min, max, security, name: name_at, alias: alias_at });
        }
        Ok(Tunables { defs: leak(v), names: leak_names(names), aliases: leak_names(aliases) })
    }

    // The reads of the generated decoder, one call per member: the first
    // error is kept and every later read returns zeros without reading, so
    // a table's function checks once, in `finish`, instead of after each of
    // its hundreds of members (that was 48 KB of code). The error returned
    // is the same first error a `?` after each read would give.

    #[inline(always)]
    fn sticky<T: Copy>(&mut self, zero: T, read: fn(&mut Self) -> R<T>) -> T {
        if self.failed.is_some() {
            return zero;
        }
        read(self).unwrap_or_else(|e| {
            self.failed = Some(e);
            zero
        })
    }

    #[inline(never)]
    pub fn next_offset(&mut self) -> u16 {
        self.sticky(0, Self::offset)
    }

    #[inline(never)]
    pub fn next_flag(&mut self) -> bool {
        self.sticky(false, Self::flag)
    }

    #[inline(never)]
    pub fn next_opt_i64(&mut self) -> Option<i64> {
        self.sticky(None, Self::opt_i64)
    }

    #[inline(never)]
    pub fn next_field(&mut self) -> Field {
        self.sticky(Field { off: 0, size: 0 }, Self::field)
    }

    #[inline(never)]
    pub fn next_bits(&mut self) -> Bits {
        self.sticky(Bits { off: 0, bit: 0, width: 0 }, Self::bits)
    }

    #[inline(never)]
    pub fn next_array(&mut self) -> Array {
        self.sticky(Array { off: 0, stride: 0, len: 0 }, Self::array)
    }

    /// A presence flag, then the field if present.
    #[inline(never)]
    pub fn next_opt_field(&mut self) -> Option<Field> {
        if self.next_flag() {
            Some(self.next_field())
        } else {
            None
        }
    }

    #[inline(never)]
    pub fn next_opt_bits(&mut self) -> Option<Bits> {
        if self.next_flag() {
            Some(self.next_bits())
        } else {
            None
        }
    }

    #[inline(never)]
    pub fn next_opt_array(&mut self) -> Option<Array> {
        if self.next_flag() {
            Some(self.next_array())
        } else {
            None
        }
    }

    /// `value` read with `next_*`, or their first error.
    pub fn finish<T>(&mut self, value: T) -> R<T> {
        match self.failed.take() {
            Some(e) => Err(e),
            None => Ok(value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn str_bytes(out: &mut Vec<u8>, s: &[u8]) {
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s);
    }

    fn list(items: &[&[u8]]) -> Vec<u8> {
        let mut out = (items.len() as u32).to_le_bytes().to_vec();
        for s in items {
            str_bytes(&mut out, s);
        }
        out
    }

    #[test]
    fn offsets_and_sizes_above_16_bits_are_refused() {
        let words = |w: &[u32]| w.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>();
        assert_eq!(Reader::new(&words(&[4512, 8])).field(), Ok(Field { off: 4512, size: 8 }));
        assert_eq!(Reader::new(&words(&[65535, 65535])).field(), Ok(Field { off: 65535, size: 65535 }));
        assert_eq!(Reader::new(&words(&[65536, 8])).field(), Err("offset or size above 65535"));
        assert_eq!(Reader::new(&words(&[8, 1 << 20])).field(), Err("offset or size above 65535"));
        assert_eq!(Reader::new(&words(&[0, 160, 16])).array(), Ok(Array { off: 0, stride: 160, len: 16 }));
        assert_eq!(Reader::new(&words(&[0, 160, 70000])).array(), Err("offset or size above 65535"));
        let mut bits = words(&[65536]);
        bits.extend([0, 1]);
        assert_eq!(Reader::new(&bits).bits(), Err("offset or size above 65535"));
        // A table struct's size, read with the sticky `next_*` reads.
        let sizes = words(&[4336, 1 << 16]);
        let mut r = Reader::new(&sizes);
        assert_eq!((r.next_offset(), r.next_offset()), (4336, 0));
        assert_eq!(r.finish(()), Err("offset or size above 65535"));
    }

    #[test]
    fn names_are_joined_and_a_nul_in_one_is_refused() {
        let b = list(&[b"LD_PRELOAD", b"", b"TMPDIR"]);
        assert_eq!(Reader::new(&b).names().unwrap().0, "LD_PRELOAD\0\0TMPDIR\0");
        assert_eq!(Reader::new(&list(&[])).names().unwrap().0, "");
        assert_eq!(Reader::new(&list(&[b"LD_\0PRELOAD"])).names().unwrap_err(), "a name holds a NUL");
    }

    #[test]
    fn thread_db_descriptors_have_at_most_three_words() {
        let fingerprint = |words: &[u32]| {
            let mut b = Vec::new();
            str_bytes(&mut b, b"2.36");
            b.extend_from_slice(&list(&[b"_rtld_global"]));
            b.extend_from_slice(&1u32.to_le_bytes());
            str_bytes(&mut b, b"sizeof_list_t");
            b.extend_from_slice(&(words.len() as u32).to_le_bytes());
            for w in words {
                b.extend_from_slice(&w.to_le_bytes());
            }
            Reader::new(&b).fingerprint()
        };
        let fp = fingerprint(&[64, 1, 8]).unwrap();
        assert_eq!(fp.descriptors().collect::<Vec<_>>(), [("sizeof_list_t", &[64, 1, 8][..])]);
        assert_eq!(fp.imports.0, "_rtld_global\0");
        assert_eq!(fingerprint(&[16]).unwrap().thread_db, [ThreadDb::new(&[16])]);
        assert_eq!(fingerprint(&[1, 2, 3, 4]).unwrap_err(), "a _thread_db descriptor of more than 3 words");
    }
}
