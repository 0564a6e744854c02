//! Computing digests of files, through the loader's own digest code.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use ld_cah::verify::digest::{self, Digest, Hasher};

/// The BLAKE3 digest of a file's whole content.
pub fn hash_file(path: &Path) -> Result<Digest> {
    let mut file = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).with_context(|| format!("{}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
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
