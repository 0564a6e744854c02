//! The hash cache file on this machine: where it is, creating it, and
//! mapping it for `ld_cah::verify::cache` (the code the loader runs).
//!
//! This module holds the tool's only `unsafe` code: viewing a shared file
//! mapping as `&[AtomicU64]`, and `fallocate`.

use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;

use anyhow::{bail, Context, Result};
use ld_cah::verify::cache::{self, Access, Cache};
use memmap2::{Mmap, MmapMut, MmapOptions};

/// The system-wide cache, written by root only.
pub const ROOT_CACHE: &str = "/run/ld-cah/hashes";

/// The current user's id (the owner of `/proc/self`).
pub fn uid() -> u32 {
    std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(u32::MAX)
}

/// The cache file this user writes: the root cache for root, else
/// `/run/user/<uid>/ld-cah/hashes`.
pub fn default_path() -> PathBuf {
    match uid() {
        0 => PathBuf::from(ROOT_CACHE),
        uid => PathBuf::from(format!("/run/user/{uid}/ld-cah/hashes")),
    }
}

/// A mapped cache file.
pub enum Mapped {
    /// Mapped `PROT_READ`.
    ReadOnly(Mmap),
    /// Mapped `PROT_READ | PROT_WRITE`, `MAP_SHARED`.
    ReadWrite(MmapMut),
    /// Read into memory: a file with holes, which is never mapped (see
    /// [`Mapped::open`]).
    Copy(Vec<AtomicU64>),
}

/// Allocates every block of `file`'s first `len` bytes (extending it if
/// needed), so that no store through a shared mapping can find a hole on a
/// full file system, which would be a `SIGBUS`.
fn allocate(file: &std::fs::File, len: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let len = libc::off_t::try_from(len).map_err(|_| std::io::Error::from_raw_os_error(libc::EFBIG))?;
    loop {
        // SAFETY: `fallocate` on a descriptor we own; it reads no memory of ours.
        let r = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) };
        if r == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

impl Mapped {
    /// Maps `path`, writable if `write`. A page of a shared mapping that is
    /// a hole in the file gets its block when first touched (on tmpfs even
    /// by a read), and on a full file system that fault is a `SIGBUS`: so a
    /// file to write is allocated first (an error if it cannot be), and a
    /// file to read that has holes is read into memory instead of mapped.
    pub fn open(path: &Path, write: bool) -> Result<Mapped> {
        let file = std::fs::OpenOptions::new().read(true).write(write).open(path).with_context(|| format!("{}", path.display()))?;
        let meta = file.metadata()?;
        let len = meta.len();
        if len == 0 || len % 8 != 0 {
            bail!("{}: not a hash cache file (size {len})", path.display());
        }
        let holes = meta.blocks().saturating_mul(512) < len;
        if write {
            if let Err(e) = allocate(&file, len) {
                // No fallocate here (EOPNOTSUPP): fine if no block is missing.
                if holes || e.raw_os_error() != Some(libc::EOPNOTSUPP) {
                    bail!("{}: cannot allocate its blocks: {e}", path.display());
                }
            }
        } else if holes {
            let bytes = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
            let words = bytes.chunks_exact(8).map(|w| AtomicU64::new(u64::from_ne_bytes(w.try_into().unwrap_or([0; 8])))).collect();
            return Ok(Mapped::Copy(words));
        }
        // SAFETY: a shared mapping of a file other processes may change at
        // any time. We never create `&[u8]`/`&mut [u8]` views that assume
        // the bytes are stable: the only view used is `words()`, whose
        // accesses are all atomic. A file truncated under us would fault;
        // cache files are only ever replaced by rename, never truncated.
        let mapped = unsafe {
            if write {
                Mapped::ReadWrite(MmapOptions::new().map_mut(&file)?)
            } else {
                Mapped::ReadOnly(MmapOptions::new().map(&file)?)
            }
        };
        Ok(mapped)
    }

    /// The mapping as words.
    pub fn words(&self) -> &[AtomicU64] {
        let (ptr, len) = match self {
            Mapped::ReadOnly(m) => (m.as_ptr(), m.len()),
            Mapped::ReadWrite(m) => (m.as_ptr(), m.len()),
            Mapped::Copy(w) => return w,
        };
        // SAFETY: the mapping is page-aligned (so 8-byte aligned), `len / 8`
        // words lie inside it, and it lives as long as `self`. `AtomicU64`
        // has the size and alignment of `u64`, and all access through it is
        // atomic, so concurrent writers in other processes are no data race.
        // For a read-only mapping `Cache` is opened with `Access::ReadOnly`
        // and then performs only `Relaxed`/`Acquire` loads, which Rust
        // permits on read-only memory.
        unsafe { std::slice::from_raw_parts(ptr.cast::<AtomicU64>(), len / 8) }
    }

    /// The cache in the mapping.
    pub fn cache(&self) -> Result<Cache<'_>, cache::CacheError> {
        let access = match self {
            Mapped::ReadOnly(_) | Mapped::Copy(_) => Access::ReadOnly,
            Mapped::ReadWrite(_) => Access::ReadWrite,
        };
        Cache::open(self.words(), access)
    }
}

/// Creates (or replaces) the cache file at `path` with `slots` slots:
/// formatted under a temporary name in the same directory, then renamed
/// into place, so no process ever maps a half-made file. The directory is
/// created if missing (mode 0755 for the root cache, 0700 otherwise).
pub fn create(path: &Path, slots: usize) -> Result<()> {
    let Some(bytes) = cache::bytes_for(slots) else {
        bail!("slot count must be a power of two from {} to {}", cache::MIN_SLOTS, cache::MAX_SLOTS);
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let private = uid() != 0;
    if !dir.exists() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mode = if private { 0o700 } else { 0o755 };
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))?;
    }
    let tmp = dir.join(format!(".hashes.{}", std::process::id()));
    let mode = if private { 0o600 } else { 0o644 };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("{}", tmp.display()))?;
    let result = (|| -> Result<()> {
        // Allocated, not just sized: see `Mapped::open`.
        allocate(&file, bytes as u64).with_context(|| format!("{}: cannot allocate {bytes} bytes", tmp.display()))?;
        let mapped = Mapped::open(&tmp, true)?;
        Cache::format(mapped.words(), slots).map_err(|e| anyhow::anyhow!("{e}"))?;
        if let Mapped::ReadWrite(m) = &mapped {
            m.flush()?;
        }
        std::fs::rename(&tmp, path).with_context(|| format!("{}", path.display()))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
