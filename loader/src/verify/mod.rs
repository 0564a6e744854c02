//! Content verification: the closure lock, digests and the hash cache.
//!
//! Four concerns, one module each, all pure safe code over byte slices or
//! atomics so that the loader and the host tool `cah` compile the very same
//! readers and writers:
//!
//! - [`digest`]: content, the BLAKE3-256 of a file;
//! - [`identity`]: which inode a digest belongs to, and whether it changed;
//! - [`lock`]: the closure lock note a patched program carries;
//! - [`cache`]: the per-inode hash cache file shared through `/run`.
//!
//! Two more modules use them at run time (safe code too; their system
//! calls go through `crate::sys`):
//!
//! - [`runtime`]: which cache files to trust, creating and mapping them,
//!   the digest of an open file (cached or hashed);
//! - [`policy`]: what the loader does with the lock: store first, first
//!   matching candidate wins, strict mode, the error line.
#![forbid(unsafe_code)]

pub mod cache;
pub mod digest;
pub mod identity;
pub mod lock;
pub mod runtime;

pub use cache::{Access, Cache, CacheEntry, CacheError, CacheStats, InsertOutcome, SlotState};
pub use digest::{hash, Digest, Hasher, DIGEST_LEN};
pub use identity::FileIdentity;
pub use lock::{find_lock, Lock, LockEntry, LockError, LockFlags, LockView};
