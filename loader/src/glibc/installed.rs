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
use alloc::vec;
use alloc::vec::Vec;

use super::fingerprint::{self, Libc};
use super::layout::Layout;
use super::layouts::decode;
use super::table_reader::{Reader, R};
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
pub fn select(build_id: &[u8], machine: u16, libc: &Libc<'_>, secure: bool, env: &[&[u8]]) -> Result<&'static Layout, Option<Refused>> {
    let dir: &[u8] = if secure {
        DIR
    } else {
        env.iter().find_map(|e| e.strip_prefix(DIR_ENV).and_then(|r| r.strip_prefix(b"="))).filter(|d| !d.is_empty()).unwrap_or(DIR)
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
