//! Layout tables installed on the machine (`cah glibc add`), for a glibc
//! build that no built-in table fits.
//!
//! The table of a `libc.so.6` is the file `<dir>/<libc build id hex>.table`
//! in the binary format of `docs/glibc-table-format.md`, where `<dir>` is
//! [`DIR`], or in non-secure mode `CAH_GLIBC_DIR` if set (tests). A table is
//! used only if
//!
//! * its directory and the file are owned by root or the effective user
//!   (secure mode: root only), not writable by group or others, and the
//!   file is a regular file (not followed through a symbolic link), at
//!   most [`MAX_SIZE`] bytes;
//! * its header has this loader's magic, format version and spec digest
//!   (the digest of `layout.rs`, so a table written by a `cah` of another
//!   ld-cah version is refused), and its body hashes to the BLAKE3 in the
//!   header;
//! * the body decodes (the decoder in `layouts/decode.rs` is generated from
//!   the same spec as the encoder; every count is bounded by the bytes
//!   left), names this libc's build id, passes `Layout::check`, and its
//!   fingerprint matches the mapped libc exactly as a built-in table must.
//!
//! Otherwise the program is refused with one line naming the file and why.
//! The decoded table is leaked: it lives as long as the process, like the
//! built-in ones.
//!
//! All system calls go through `crate::sys`; this module is safe code.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::fingerprint::{self, Libc};
use super::layout::{Arch, Array, Bits, Field, Fingerprint, Layout, Tunable, TunableSecurity, TunableType};
use super::layouts::decode;
use crate::sys::{self, Errno};

/// The directory of installed tables (`cah glibc add` writes there).
pub const DIR: &[u8] = b"/etc/ld-cah/glibc";
/// The variable naming another directory (ignored in secure mode).
pub const DIR_ENV: &[u8] = b"CAH_GLIBC_DIR";
/// Largest table file read (tables are about 20 KB).
pub const MAX_SIZE: usize = 1 << 20;
/// The first bytes of a table file.
pub const MAGIC: &[u8; 8] = b"CAHGLTAB";
/// Magic, format version, spec digest, body digest.
pub const HEADER_LEN: usize = 8 + 4 + 32 + 32;

/// A table file that exists but was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    /// The file (or its directory).
    pub path: Vec<u8>,
    pub why: &'static str,
}

/// A decoded table file.
#[derive(Debug)]
pub struct Decoded<'a> {
    /// The build id of the `libc.so.6` the table was made from.
    pub libc_build_id: &'a [u8],
    /// The build id of its `ld.so`.
    pub rtld_build_id: &'a [u8],
    pub layout: Layout,
}

/// Reads the primitives of the table format (little-endian; strings and
/// lists prefixed with a `u32` count that may not exceed what the bytes
/// left could hold). Every read past the end is an error, never a panic.
pub struct Reader<'a> {
    buf: &'a [u8],
}

type R<T> = Result<T, &'static str>;

/// Copies `s` into a leaked allocation: tables live as long as the process.
fn leak_str(s: &str) -> &'static str {
    Box::leak(String::from(s).into_boxed_str())
}

fn leak<T>(v: Vec<T>) -> &'static [T] {
    Box::leak(v.into_boxed_slice())
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
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

    pub fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }

    pub fn u32(&mut self) -> R<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self) -> R<u64> {
        let b = self.take(8)?;
        let mut w = [0u8; 8];
        w.copy_from_slice(b);
        Ok(u64::from_le_bytes(w))
    }

    /// A presence flag: 0 or 1.
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
    pub fn str(&mut self) -> R<&'static str> {
        let b = self.bytes()?;
        core::str::from_utf8(b).map(leak_str).map_err(|_| "string is not UTF-8")
    }

    /// A counted list of strings.
    pub fn strs(&mut self) -> R<&'static [&'static str]> {
        let n = self.count(4)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.str()?);
        }
        Ok(leak(v))
    }

    pub fn opt_i64(&mut self) -> R<Option<i64>> {
        Ok(if self.flag()? { Some(self.u64()? as i64) } else { None })
    }

    pub fn field(&mut self) -> R<Field> {
        Ok(Field { off: self.u32()?, size: self.u32()? })
    }

    pub fn bits(&mut self) -> R<Bits> {
        let b = Bits { off: self.u32()?, bit: self.u8()?, width: self.u8()? };
        if b.bit >= 8 || b.width == 0 || b.width > 64 || b.off.checked_add(b.byte_span()).is_none() {
            return Err("bad bit-field");
        }
        Ok(b)
    }

    pub fn array(&mut self) -> R<Array> {
        let a = Array { off: self.u32()?, stride: self.u32()?, len: self.u32()? };
        if a.stride.checked_mul(a.len).and_then(|s| s.checked_add(a.off)).is_none() {
            return Err("array too large");
        }
        Ok(a)
    }

    pub fn arch(&mut self) -> R<Arch> {
        match self.u8()? {
            1 => Ok(Arch::X86_64),
            2 => Ok(Arch::Aarch64),
            _ => Err("unknown architecture"),
        }
    }

    pub fn fingerprint(&mut self) -> R<Fingerprint> {
        let version = self.str()?;
        let imports = self.strs()?;
        let n = self.count(8)?;
        let mut thread_db = Vec::with_capacity(n);
        for _ in 0..n {
            let name = self.str()?;
            let k = self.count(4)?;
            let mut words = Vec::with_capacity(k);
            for _ in 0..k {
                words.push(self.u32()?);
            }
            thread_db.push((name, leak(words)));
        }
        Ok(Fingerprint { version, imports, thread_db: leak(thread_db) })
    }

    pub fn tunables(&mut self) -> R<&'static [Tunable]> {
        // name, type, three numbers, security, alias.
        let n = self.count(4 + 1 + 24 + 1 + 4)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let name = self.str()?;
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
            let alias = self.str()?;
            v.push(Tunable { name, ty, default, min, max, security, alias });
        }
        Ok(leak(v))
    }
}

/// Decodes a table body (everything after the header): the build ids,
/// then the `Layout`, which must take exactly the rest and pass
/// `Layout::check`. Any corruption is an error, never a panic.
pub fn decode_body(body: &[u8]) -> R<Decoded<'_>> {
    let mut r = Reader::new(body);
    let libc_build_id = r.bytes()?;
    let rtld_build_id = r.bytes()?;
    let layout = decode::layout(&mut r)?;
    if r.left() != 0 {
        return Err("trailing bytes");
    }
    layout.check().map_err(|e| e.0)?;
    Ok(Decoded { libc_build_id, rtld_build_id, layout })
}

/// Decodes a whole table file: header checks, then [`decode_body`].
pub fn decode(file: &[u8]) -> R<Decoded<'_>> {
    if file.len() < HEADER_LEN || &file[..8] != MAGIC {
        return Err("not a layout table file");
    }
    if file[8..12] != decode::FORMAT_VERSION.to_le_bytes() {
        return Err("written in another format version");
    }
    if file[12..44] != decode::SPEC_DIGEST {
        return Err("written for another version of ld-cah (layout spec differs)");
    }
    let body = &file[HEADER_LEN..];
    if file[44..76] != crate::verify::digest::hash(body).0 {
        return Err("damaged or edited (checksum mismatch)");
    }
    decode_body(body)
}

/// `dir/<hex>.table` and its NUL-terminated file name.
fn file_name(build_id: &[u8]) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut name = Vec::with_capacity(build_id.len() * 2 + 7);
    for b in build_id {
        name.push(HEX[(b >> 4) as usize]);
        name.push(HEX[(b & 15) as usize]);
    }
    name.extend_from_slice(b".table");
    name
}

/// The installed table for the mapped `libc` with `build_id`:
/// `Err(None)` if there is none, `Err(Some(..))` if there is one and it
/// was refused.
pub fn select(
    build_id: &[u8],
    machine: u16,
    libc: &Libc<'_>,
    secure: bool,
    env: &[&[u8]],
) -> Result<&'static Layout, Option<Refused>> {
    let dir: &[u8] = if secure {
        DIR
    } else {
        env.iter()
            .find_map(|e| e.strip_prefix(DIR_ENV).and_then(|r| r.strip_prefix(b"=")))
            .filter(|d| !d.is_empty())
            .unwrap_or(DIR)
    };
    if build_id.is_empty() {
        return Err(None);
    }
    let name = file_name(build_id);
    let mut path = dir.to_vec();
    path.push(b'/');
    path.extend_from_slice(&name);
    let refuse = |why| Some(Refused { path: path.clone(), why });

    let mut dir_z = dir.to_vec();
    dir_z.push(0);
    let dir_fd = match sys::open(&dir_z, sys::O_RDONLY | sys::O_DIRECTORY, 0) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) | Err(Errno(20)) => return Err(None),
        Err(e) => return Err(refuse(e.describe())),
    };
    let mut name_z = name.clone();
    name_z.push(0);
    let fd = match sys::openat(Some(&dir_fd), &name_z, sys::O_RDONLY | sys::O_NOFOLLOW | sys::O_NONBLOCK, 0) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Err(None),
        Err(Errno(40)) => return Err(refuse("a symbolic link")),
        Err(e) => return Err(refuse(e.describe())),
    };
    // Secure mode trusts root's files only.
    let owner = if secure { 0 } else { sys::geteuid() };
    let dst = sys::fstat(&dir_fd).map_err(|e| refuse(e.describe()))?;
    crate::verify::runtime::trusted(&dst, owner, true).map_err(|why| {
        refuse(match why {
            "owned by another user" => "its directory is owned by another user",
            "writable by group or others" => "its directory is writable by group or others",
            w => w,
        })
    })?;
    let st = sys::fstat(&fd).map_err(|e| refuse(e.describe()))?;
    crate::verify::runtime::trusted(&st, owner, false).map_err(refuse)?;
    let size = usize::try_from(st.size).unwrap_or(usize::MAX);
    if size > MAX_SIZE {
        return Err(refuse("larger than 1 MiB"));
    }
    let mut buf = vec![0u8; size];
    match sys::pread_full(&fd, &mut buf, 0) {
        Ok(n) if n == size => {}
        Ok(_) => return Err(refuse("short read")),
        Err(e) => return Err(refuse(e.describe())),
    }
    let decoded = decode(&buf).map_err(refuse)?;
    if decoded.libc_build_id != build_id {
        return Err(refuse("made for another libc build"));
    }
    let layout: &'static Layout = Box::leak(Box::new(decoded.layout));
    fingerprint::select(&[layout], machine, libc).map_err(|_| refuse("its fingerprint does not match this libc"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_hex() {
        assert_eq!(file_name(&[0x93, 0xac, 0x01]), b"93ac01.table".to_vec());
    }

    #[test]
    fn short_and_foreign_files_are_refused() {
        assert_eq!(decode(b"").unwrap_err(), "not a layout table file");
        let mut f = vec![0u8; HEADER_LEN];
        f[..8].copy_from_slice(MAGIC);
        assert_eq!(decode(&f).unwrap_err(), "written in another format version");
        f[8..12].copy_from_slice(&decode::FORMAT_VERSION.to_le_bytes());
        assert_eq!(decode(&f).unwrap_err(), "written for another version of ld-cah (layout spec differs)");
        f[12..44].copy_from_slice(&decode::SPEC_DIGEST);
        assert_eq!(decode(&f).unwrap_err(), "damaged or edited (checksum mismatch)");
        let h = crate::verify::digest::hash(&[]).0;
        f[44..76].copy_from_slice(&h);
        assert_eq!(decode(&f).unwrap_err(), "truncated");
    }

    #[test]
    fn counts_are_bounded_by_the_bytes_left() {
        // A body claiming a 4 GB build id.
        let body = [0xff, 0xff, 0xff, 0xff, 1, 2, 3];
        assert_eq!(decode_body(&body).unwrap_err(), "count larger than the file");
    }
}
