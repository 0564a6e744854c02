//! Computing digests of files, through the loader's own digest code.

use std::fs::{File, Metadata};
use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};
use ld_cah::verify::digest::{self, Digest, Hasher};

use crate::files;

/// The BLAKE3 digest of a file's whole content (a regular file: anything
/// else is an error, never a blocking or endless read).
pub fn hash_file(path: &Path) -> Result<Digest> {
    let (file, meta) = files::open_regular(path)?;
    hash_open(&file, &meta, path)
}

/// The digest of an opened regular file whose `fstat` is `meta`: exactly
/// `meta.len()` bytes, and an error if the file has more (it is being
/// written).
pub fn hash_open(mut file: &File, meta: &Metadata, path: &Path) -> Result<Digest> {
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut left = meta.len();
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = file.read(&mut buf[..want]).with_context(|| format!("{}", path.display()))?;
        if n == 0 {
            bail!("{}: changed while being hashed", path.display());
        }
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    if file.read(&mut buf[..1]).with_context(|| format!("{}", path.display()))? != 0 {
        bail!("{}: changed while being hashed", path.display());
    }
    Ok(hasher.finalize())
}

/// The digest of bytes already in memory.
pub fn hash_bytes(bytes: &[u8]) -> Digest {
    digest::hash(bytes)
}

/// A digest as text: `blake3:<hex>`.
pub fn tagged(d: &Digest) -> String {
    format!("blake3:{d}")
}
