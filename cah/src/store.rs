//! The content-addressed store: a directory of files named by the lower-case
//! hex BLAKE3 digest of their content (`<store>/<64 hex digits>`), which the
//! loader tries first for a locked name (one `openat`, no search).
//!
//! Files are written under a temporary name in the store (random, created
//! with `O_EXCL`, mode 0600) and renamed into place, mode 0444, so a reader
//! never sees a partial file under a digest name. Nothing else is kept: a file's names live in the locks that use it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ld_cah::verify::Digest;

use crate::hashing::hash_file;

/// Where the store is when nothing else is said.
pub const DEFAULT_STORE: &str = "/var/lib/cah/store";

/// The path of `digest` in `store`.
pub fn path_of(store: &Path, digest: &Digest) -> PathBuf {
    store.join(String::from_utf8_lossy(&digest.to_hex()).as_ref())
}

/// Copies `file` into the store (if not there already). Returns its digest
/// and whether it was added.
pub fn add(store: &Path, file: &Path) -> Result<(Digest, bool)> {
    let digest = hash_file(file)?;
    add_known(store, file, digest).map(|added| (digest, added))
}

/// Copies `file`, whose digest is `digest`, into the store.
pub fn add_known(store: &Path, file: &Path, digest: Digest) -> Result<bool> {
    let dest = path_of(store, &digest);
    if dest.exists() {
        return Ok(false);
    }
    std::fs::create_dir_all(store).with_context(|| format!("creating store {}", store.display()))?;
    let data = crate::files::read_regular(file)?;
    // The file may have changed since it was hashed: store what we read
    // only if it is still the content of that digest.
    if ld_cah::verify::hash(&data) != digest {
        anyhow::bail!("{} changed while being stored", file.display());
    }
    crate::files::write_new(&dest, &data, 0o444, None)?;
    Ok(true)
}

/// One file of the store.
#[derive(Clone, Debug)]
pub struct Item {
    /// The digest its name claims.
    pub digest: Digest,
    /// Its path.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
}

/// Every digest-named file of the store, by digest. Other names
/// (temporary files) are left out. A missing store is empty.
pub fn list(store: &Path) -> Result<Vec<Item>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(store) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("{}", store.display())),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(digest) = Digest::from_hex(name.as_encoded_bytes()) else {
            continue;
        };
        if digest.to_hex() != name.as_encoded_bytes() {
            continue; // upper-case spelling: not a name the loader opens
        }
        let meta = entry.metadata()?;
        if !meta.is_file() {
            continue;
        }
        out.push(Item { digest, path: entry.path(), size: meta.len() });
    }
    out.sort_by_key(|i| i.digest);
    Ok(out)
}
