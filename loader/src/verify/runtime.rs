//! The hash cache at run time: which cache files this process may trust,
//! read and write, creating one when it is missing, and the digest of an
//! open file, from the cache or by hashing it.
//!
//! `docs/verification.md` states the rules; `cache` is the table format.
//! Every failure here is soft: a cache that cannot be used (no `/run`, a
//! read-only or full file system, a file or directory with the wrong owner
//! or mode, a bad header) is left out and the file is hashed instead, which
//! is slower and never wrong. Only [`digest_of`] can fail, and only when
//! the file itself cannot be read or changes while it is hashed.
//!
//! All system calls go through `crate::sys`; this module is safe code.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Write as _;

use super::cache::{self, Access, Cache};
use super::digest::{self, Digest, Hasher};
use super::identity::FileIdentity;
use crate::map::SharedWords;
use crate::sys::{self, Errno, Fd, Stat};

/// The directory of the system-wide cache (written by root, read by all).
pub const ROOT_DIR: &[u8] = b"/run/ld-cah";
/// The cache file's name inside its directory.
pub const FILE_NAME: &[u8] = b"hashes";
/// How much of a file is read (and hashed) at a time: large enough for
/// BLAKE3's widest SIMD implementation to run at full speed.
pub const CHUNK: usize = 256 * 1024;

/// One place a cache file may be, and whether this process may write it
/// (it still has to own it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    /// The directory holding [`FILE_NAME`].
    pub dir: Vec<u8>,
    /// Whether this process may create and write the file (and create the
    /// directory) if it is its owner.
    pub write: bool,
}

/// The cache files a process uses, in lookup order:
///
/// - secure mode (`AT_SECURE`): the root cache only, read only;
/// - `dir_override` (`CAH_CACHE_DIR`, never honoured in secure mode): that
///   directory only;
/// - root (`euid` 0): the root cache, read and write;
/// - anyone else: the root cache (read) and `/run/user/<euid>/ld-cah`.
pub fn places(secure: bool, euid: u32, dir_override: Option<&[u8]>) -> Vec<Place> {
    if secure {
        return vec![Place { dir: ROOT_DIR.to_vec(), write: false }];
    }
    if let Some(d) = dir_override.filter(|d| !d.is_empty()) {
        return vec![Place { dir: d.to_vec(), write: true }];
    }
    if euid == 0 {
        return vec![Place { dir: ROOT_DIR.to_vec(), write: true }];
    }
    let mut user = alloc::string::String::new();
    let _ = write!(user, "/run/user/{euid}/ld-cah");
    vec![Place { dir: ROOT_DIR.to_vec(), write: false }, Place { dir: user.into_bytes(), write: true }]
}

const S_IFMT: u32 = 0o170000;
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;

/// The trust rule for a cache file or its directory: owned by root or by
/// `euid`, and not writable by group or others.
pub fn trusted(st: &Stat, euid: u32, dir: bool) -> Result<(), &'static str> {
    let want = if dir { S_IFDIR } else { S_IFREG };
    if st.mode & S_IFMT != want {
        return Err(if dir { "not a directory" } else { "not a regular file" });
    }
    if st.uid != 0 && st.uid != euid {
        return Err("owned by another user");
    }
    if st.mode & 0o022 != 0 {
        return Err("writable by group or others");
    }
    Ok(())
}

/// A cache file in use. Lookups read the few slots they need with
/// `pread`: a warm start maps nothing (mapping the file cost more than
/// all its reads) and writes nothing. The file is mapped shared only for
/// the first insert. Dropping it closes the file and unmaps it: a load
/// (start-up, a `dlopen`) opens the caches it needs and drops them at
/// its end, so the program never sees their descriptors.
pub struct Opened {
    file: Fd,
    /// Bytes to map: the file's size when opened, at most a full table.
    len: usize,
    slot_count: usize,
    /// The shared mapping, once an insert needed it (or the file was
    /// formatted through it); `None` inside if it could not be made.
    map: spin::Once<Option<SharedWords>>,
    pub dir: Vec<u8>,
    /// Whether inserts go here (this process owns the file and may write it).
    pub writable: bool,
    /// Whether this process created it.
    pub created: bool,
}

impl Opened {
    fn lookup(&self, id: &FileIdentity) -> Option<Digest> {
        let n = self.slot_count;
        let home = cache::home_slot(id.dev, id.ino, n);
        let count = cache::PROBE.min(n);
        let mut slots = [[0u64; cache::SLOT_WORDS]; cache::PROBE];
        // The window, in at most two runs (it may wrap to slot 0). A short
        // read (the file shrank) leaves zeros: empty slots, a miss.
        let (a, b) = slots[..count].split_at_mut(count.min(n - home));
        sys::pread_words(&self.file, a.as_flattened_mut(), slot_offset(home)).ok()?;
        sys::pread_words(&self.file, b.as_flattened_mut(), slot_offset(0)).ok()?;
        let indices = (0..count).map(|k| (home + k) & (n - 1));
        cache::lookup_copies(id, indices.zip(slots.iter()))
    }

    /// The cache through the shared writable mapping, made on first use.
    fn mapped(&self) -> Option<Cache<'_>> {
        let words = self.map.call_once(|| SharedWords::map(&self.file, self.len).ok()).as_ref()?;
        Cache::open(words.words(), Access::ReadWrite).ok().filter(|c| c.slot_count() == self.slot_count)
    }
}

/// Where slot `index` starts in the file.
fn slot_offset(index: usize) -> u64 {
    (8 * (cache::HEADER_WORDS + index * cache::SLOT_WORDS)) as u64
}

/// The caches of this process (possibly none).
#[derive(Default)]
pub struct Caches {
    pub list: Vec<Opened>,
}

/// What happened to one place, for `CAH_DEBUG=verify`.
pub type Report<'a> = &'a mut dyn FnMut(&[u8], &str);

impl Caches {
    /// Opens every usable cache of `places`; `report` hears about each
    /// place (used, or why not).
    pub fn open(places: &[Place], euid: u32, report: Report<'_>) -> Caches {
        let mut list = Vec::new();
        for p in places {
            match open_place(p, euid) {
                Ok(o) => {
                    report(
                        &o.dir,
                        match (o.writable, o.created) {
                            (true, true) => "created",
                            (true, false) => "read-write",
                            (false, _) => "read-only",
                        },
                    );
                    list.push(o);
                }
                Err(why) => report(&p.dir, why),
            }
        }
        Caches { list }
    }

    /// The digest cached for `id` in any of the caches.
    pub fn lookup(&self, id: &FileIdentity) -> Option<Digest> {
        self.list.iter().find_map(|o| o.lookup(id))
    }

    /// Records a digest in the first writable cache, and the miss that
    /// preceded it. Failures are ignored: they only cost a later re-hash.
    pub fn insert(&self, id: &FileIdentity, digest: &Digest) {
        if let Some(c) = self.list.iter().find(|o| o.writable).and_then(|o| o.mapped()) {
            c.count_miss();
            let _ = c.insert(id, digest);
        }
    }
}

fn with_nul(b: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(b.len() + 1);
    v.extend_from_slice(b);
    v.push(0);
    v
}

fn describe(e: Errno) -> &'static str {
    match e {
        Errno::ENOENT => "missing",
        e => e.describe(),
    }
}

/// Opens the directory of `p`, creating it if it is missing, writable for
/// us, and its parent is ours.
pub fn open_dir(p: &Place, euid: u32) -> Result<Fd, &'static str> {
    let path = with_nul(&p.dir);
    let flags = sys::O_RDONLY | sys::O_DIRECTORY;
    match sys::openat(None, &path, flags, 0) {
        Ok(fd) => Ok(fd),
        Err(Errno::ENOENT) if p.write => {
            let parent = crate::path::dirname(&p.dir);
            let base = p.dir.rsplit(|&b| b == b'/').next().filter(|b| !b.is_empty()).ok_or("missing")?;
            let pfd = sys::openat(None, &with_nul(parent), flags, 0).map_err(|_| "missing (and no parent directory)")?;
            let pst = sys::fstat(&pfd).map_err(describe)?;
            if pst.uid != euid || trusted(&pst, euid, true).is_err() {
                return Err("missing (and the parent directory is not ours)");
            }
            let mode = if euid == 0 { 0o755 } else { 0o700 };
            match sys::mkdirat(Some(&pfd), &with_nul(base), mode) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(describe(e)),
            }
            let fd = sys::openat(Some(&pfd), &with_nul(base), flags | sys::O_NOFOLLOW, 0).map_err(describe)?;
            // The umask may have taken bits we want (others reading the
            // root cache); never more than asked.
            if let Ok(st) = sys::fstat(&fd) {
                if st.uid == euid && st.mode & 0o7777 != mode {
                    let _ = sys::fchmod(&fd, mode);
                }
            }
            Ok(fd)
        }
        Err(e) => Err(describe(e)),
    }
}

fn open_place(p: &Place, euid: u32) -> Result<Opened, &'static str> {
    let dir = open_dir(p, euid)?;
    let dst = sys::fstat(&dir).map_err(describe)?;
    trusted(&dst, euid, true).map_err(|why| match why {
        "owned by another user" => "directory owned by another user",
        "writable by group or others" => "directory writable by group or others",
        w => w,
    })?;
    let name = with_nul(FILE_NAME);
    // Two rounds: a file another process creates between our failed open
    // and our rename is opened on the second.
    for _ in 0..2 {
        let opened = if p.write {
            match sys::openat(Some(&dir), &name, sys::O_RDWR | sys::O_NOFOLLOW, 0) {
                Ok(fd) => Ok((fd, true)),
                // Not ours to write, or a read-only file system.
                Err(e) if e == Errno::EACCES || e == Errno(1) || e == Errno(30) => {
                    sys::openat(Some(&dir), &name, sys::O_RDONLY | sys::O_NOFOLLOW, 0).map(|fd| (fd, false))
                }
                Err(e) => Err(e),
            }
        } else {
            sys::openat(Some(&dir), &name, sys::O_RDONLY | sys::O_NOFOLLOW, 0).map(|fd| (fd, false))
        };
        match opened {
            Ok((fd, rw)) => return check_file(fd, rw, p, euid),
            Err(Errno::ENOENT) if p.write && dst.uid == euid => match create(&dir, euid) {
                Ok(Some((file, words))) => {
                    let (len, slot_count) = (cache::bytes_for(cache::DEFAULT_SLOTS).unwrap_or(0), cache::DEFAULT_SLOTS);
                    let map = spin::Once::initialized(Some(words));
                    return Ok(Opened { file, len, slot_count, map, dir: p.dir.clone(), writable: true, created: true });
                }
                // Someone else created it first: open theirs.
                Ok(None) => {}
                Err(why) => return Err(why),
            },
            Err(e) => return Err(describe(e)),
        }
    }
    Err("cannot open")
}

/// The opened cache file `fd`, if it passes the trust rules, has no holes
/// (or can be allocated) and its header is one this code reads.
fn check_file(fd: Fd, rw: bool, p: &Place, euid: u32) -> Result<Opened, &'static str> {
    let st = sys::fstat(&fd).map_err(describe)?;
    trusted(&st, euid, false)?;
    let size = usize::try_from(st.size).map_err(|_| "bad size")?;
    let most = cache::bytes_for(cache::MAX_SLOTS).unwrap_or(0) + 4096;
    let len = size.min(most) & !7;
    if len < 8 * cache::HEADER_WORDS {
        return Err("too small to be a cache file");
    }
    // Lookups only `pread`, but an insert maps the file shared, and a page
    // of a shared mapping is backed by the file's block: touching one that
    // is a hole makes the file system allocate it, and on a full
    // file system (tmpfs: reads too) that fault is a SIGBUS, which would
    // kill every start. So a file is used only if every block of it is
    // allocated: our own file is allocated now if it can be, any other
    // must be already. The file may hold holes only if it was made by other
    // means than the loader or `cah` (`truncate`, `cp --sparse`); it is
    // then left out. `fallocate` only when blocks are missing: even when it
    // allocates nothing it updates the file's mtime and ctime, and a warm
    // start writes nothing to the shared file, not even its inode.
    let allocated = st.blocks.saturating_mul(512) >= size as u64;
    let ours = rw && st.uid == euid;
    // (A file system without `fallocate` leaves a sparse file sparse.)
    let writable = ours && (allocated || sys::fallocate(&fd, 0, size as u64).is_ok());
    if !writable && !allocated {
        return Err("sparse (blocks not allocated), not used");
    }
    let mut header = [0u64; cache::HEADER_WORDS];
    if sys::pread_words(&fd, &mut header, 0).map_err(describe)? != 8 * header.len() {
        return Err("too small to be a cache file");
    }
    let slot_count = cache::check_header(&header).map_err(|e| e.as_str())?;
    if cache::bytes_for(slot_count).is_none_or(|need| len < need) {
        return Err(cache::CacheError::TooSmall.as_str());
    }
    Ok(Opened { file: fd, len, slot_count, map: spin::Once::new(), dir: p.dir.clone(), writable, created: false })
}

/// Creates the cache file in `dir`: a temporary file, allocated, formatted,
/// then renamed into place unless another process got there first
/// (`Ok(None)`: open theirs).
fn create(dir: &Fd, euid: u32) -> Result<Option<(Fd, SharedWords)>, &'static str> {
    let mut tmp = alloc::string::String::new();
    let _ = write!(tmp, ".hashes.{}", sys::getpid());
    let tmp = with_nul(tmp.as_bytes());
    let flags = sys::O_RDWR | sys::O_CREAT | sys::O_EXCL | sys::O_NOFOLLOW;
    let mode = if euid == 0 { 0o644 } else { 0o600 };
    let fd = match sys::openat(Some(dir), &tmp, flags, mode) {
        // Left by a process that died with our pid: ours to replace.
        Err(Errno::EEXIST) => {
            let _ = sys::unlinkat(dir, &tmp, 0);
            sys::openat(Some(dir), &tmp, flags, mode)
        }
        r => r,
    }
    .map_err(|e| match e {
        Errno::ENOENT => "cannot create",
        e => e.describe(),
    })?;
    let result = (|| {
        sys::fchmod(&fd, mode).map_err(Errno::describe)?;
        let bytes = cache::bytes_for(cache::DEFAULT_SLOTS).ok_or("bad size")?;
        sys::fallocate(&fd, 0, bytes as u64).map_err(Errno::describe)?;
        let words = SharedWords::map(&fd, bytes).map_err(Errno::describe)?;
        Cache::format(words.words(), cache::DEFAULT_SLOTS).map_err(|e| e.as_str())?;
        let name = with_nul(FILE_NAME);
        match sys::renameat2(dir, &tmp, &name, sys::RENAME_NOREPLACE) {
            Ok(()) => Ok(Some(words)),
            Err(Errno::EEXIST) => Ok(None),
            // A file system without RENAME_NOREPLACE: replace (the other
            // file's few entries are lost, nothing else).
            Err(Errno::EINVAL) => sys::renameat2(dir, &tmp, &name, 0).map(|()| Some(words)).map_err(Errno::describe),
            Err(e) => Err(e.describe()),
        }
    })();
    if !matches!(result, Ok(Some(_))) {
        let _ = sys::unlinkat(dir, &tmp, 0);
    }
    result.map(|c| c.map(|c| (fd, c)))
}

/// The identity of a file, from `fstat`.
pub fn identity(st: &Stat) -> FileIdentity {
    let ns = |t: i128| t.clamp(i64::MIN as i128, i64::MAX as i128) as i64;
    FileIdentity { dev: st.dev, ino: st.ino, size: st.size as u64, mtime_ns: ns(st.mtime_ns), ctime_ns: ns(st.ctime_ns) }
}

/// Where a digest came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A hash cache entry for exactly this identity.
    Cache,
    /// Computed now, from the file.
    Hashed,
    /// Computed now, from a private copy of the file (see [`sealed`]).
    Copied,
}

/// BLAKE3 of the first `size` bytes of `fd` (a [`sealed`] file), read
/// through a private read-only mapping: nothing copied, no buffer to zero
/// (`pread` into a buffer cost a cold start a third of its time over the
/// hashing itself). `blake3::Hasher::update` picks the widest SIMD
/// implementation the CPU has. Where the file cannot be mapped it is read
/// with `pread` in [`CHUNK`]s.
pub fn hash_fd(fd: &Fd, size: u64) -> Result<Digest, &'static str> {
    // A mapping faults on a page past the end of the file: the file is
    // sealed (only root or this user can shorten it), and still this long.
    if (sys::fstat(fd).map_err(Errno::describe)?.size as u64) < size {
        return Err("file shrank while being read");
    }
    let Some(len) = usize::try_from(size).ok().filter(|&n| n > 0) else {
        return Ok(Hasher::new().finalize());
    };
    match crate::map::FileView::map(fd, len) {
        Ok(view) => Ok(hash_bytes(&view)),
        Err(_) => {
            let mut h = Hasher::new();
            feed(fd, 0, size, &mut h, &mut vec![0u8; len.min(CHUNK)])?;
            Ok(h.finalize())
        }
    }
}

/// BLAKE3 of `data`; from [`PARALLEL_MIN`] bytes on two CPUs, when there
/// are two.
fn hash_bytes(data: &[u8]) -> Digest {
    let size = data.len() as u64;
    if size < PARALLEL_MIN {
        return crate::verify::hash(data);
    }
    // Two CPUs hash two parts of BLAKE3's tree, and the root joins them:
    // the root's left subtree (2^k chunks) and its right one, or, where
    // the right one is short, the left's two halves, with the right one
    // after the second. Neither side then has more than twice the other's
    // bytes. The other thread allocates nothing.
    let part = |from: u64, to: u64| {
        let mut h = Hasher::at_offset(from);
        h.update(&data[from as usize..to as usize]);
        h.finalize_subtree()
    };
    let l = digest::left_len(size);
    if size - l >= l / 2 {
        let (right, left) = crate::thread::join(|| part(l, size), || part(0, l));
        digest::merge_root(&left, &right)
    } else {
        let h = l / 2;
        let ((left_right, right), left_left) = crate::thread::join(|| (part(h, l), part(l, size)), || part(0, h));
        digest::merge_root(&digest::merge(&left_left, &left_right), &right)
    }
}

/// Files at least this large are hashed on two CPUs when there are two.
/// Measured on a 2-CPU VM (docs/verification.md): below 16 MiB the second
/// thread's start and wake-up cost what it saves or more; at 64 MiB it
/// takes the time to 0.62x.
pub const PARALLEL_MIN: u64 = 32 << 20;

/// Feeds bytes `from..to` of `fd` to `h`, read with `pread` into `buf`.
fn feed(fd: &Fd, from: u64, to: u64, h: &mut Hasher, buf: &mut [u8]) -> Result<(), &'static str> {
    let mut off = from;
    while off < to {
        let want = (to - off).min(buf.len() as u64) as usize;
        let n = sys::pread(fd, &mut buf[..want], off).map_err(Errno::describe)?;
        if n == 0 {
            return Err("file shrank while being read");
        }
        h.update(&buf[..n]);
        off += n as u64;
    }
    Ok(())
}

/// Whether only root and `euid` can change the file `st` describes: then
/// its descriptor may be hashed and later mapped, and a cache entry may
/// vouch for it. Anyone else who can write it could change the bytes
/// between the hash and the mapping, or through a shared writable mapping,
/// which changes neither size nor times, so no cache key would notice.
pub fn sealed(st: &Stat, euid: u32) -> bool {
    (st.uid == 0 || st.uid == euid) && st.mode & 0o022 == 0
}

/// The digest of a file, and the bytes to map if they must not come from
/// the file again.
pub struct Digested {
    pub digest: Digest,
    pub source: Source,
    /// For a file that is not [`sealed`]: the copy that was hashed, which
    /// the caller maps instead of the file.
    pub copy: Option<Vec<u8>>,
}

/// The digest of the open file `fd`, whose `fstat` is `st`.
///
/// A [`sealed`] file: from the caches if one holds this exact identity,
/// else hashed (and recorded); the file must still have the identity `st`
/// after hashing, so the digest belongs to the very inode and content the
/// caller maps from `fd`. Any other file is read once into memory, that
/// copy is hashed and handed back to be mapped, and no cache is consulted
/// or written: the bytes that run are the bytes that were hashed. With
/// `expect`, a digest hashed now is recorded only if it is that one.
pub fn digest_of(fd: &Fd, st: &Stat, caches: Option<&Caches>, euid: u32, expect: Option<&Digest>) -> Result<Digested, &'static str> {
    if st.mode & S_IFMT != S_IFREG {
        return Err("not a regular file");
    }
    if !sealed(st, euid) {
        let copy = read_all(fd, st.size as u64)?;
        let digest = crate::verify::hash(&copy);
        return Ok(Digested { digest, source: Source::Copied, copy: Some(copy) });
    }
    let id = identity(st);
    if let Some(d) = caches.and_then(|c| c.lookup(&id)) {
        return Ok(Digested { digest: d, source: Source::Cache, copy: None });
    }
    let d = hash_fd(fd, id.size)?;
    let after = sys::fstat(fd).map_err(Errno::describe)?;
    if identity(&after) != id {
        return Err("file changed while being hashed");
    }
    if let Some(c) = caches.filter(|_| expect.is_none_or(|e| *e == d)) {
        c.insert(&id, &d);
    }
    Ok(Digested { digest: d, source: Source::Hashed, copy: None })
}

/// The largest file read whole into memory (a libc is 2 MB, libLLVM 130 MB).
const COPY_MAX: u64 = 1 << 30;

/// Every byte of `fd` (`size` of them, as `fstat` said), read once.
fn read_all(fd: &Fd, size: u64) -> Result<Vec<u8>, &'static str> {
    if size > COPY_MAX {
        return Err("too large to copy (writable by others, so it cannot be mapped from the file)");
    }
    let mut buf = vec![0u8; size as usize];
    let n = sys::pread_full(fd, &mut buf, 0).map_err(Errno::describe)?;
    if n != buf.len() {
        return Err("file shrank while being read");
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn st(mode: u32, uid: u32) -> Stat {
        Stat { mode, uid, ..Stat::default() }
    }

    #[test]
    fn trust_rules() {
        assert!(trusted(&st(0o100644, 0), 1000, false).is_ok());
        assert!(trusted(&st(0o100600, 1000), 1000, false).is_ok());
        assert_eq!(trusted(&st(0o100600, 1001), 1000, false), Err("owned by another user"));
        assert_eq!(trusted(&st(0o100646, 1000), 1000, false), Err("writable by group or others"));
        assert_eq!(trusted(&st(0o100664, 0), 1000, false), Err("writable by group or others"));
        assert_eq!(trusted(&st(0o040755, 0), 0, false), Err("not a regular file"));
        assert!(trusted(&st(0o040755, 0), 0, true).is_ok());
        assert_eq!(trusted(&st(0o041777, 0), 0, true), Err("writable by group or others"));
        assert_eq!(trusted(&st(0o100644, 0), 0, true), Err("not a directory"));
    }

    #[test]
    fn places_by_mode() {
        let secure = places(true, 1000, Some(b"/tmp/x"));
        assert_eq!(secure, vec![Place { dir: b"/run/ld-cah".to_vec(), write: false }]);
        assert_eq!(places(false, 0, None), vec![Place { dir: b"/run/ld-cah".to_vec(), write: true }]);
        assert_eq!(
            places(false, 1000, None),
            vec![Place { dir: b"/run/ld-cah".to_vec(), write: false }, Place { dir: b"/run/user/1000/ld-cah".to_vec(), write: true }]
        );
        assert_eq!(places(false, 1000, Some(b"/c")), vec![Place { dir: b"/c".to_vec(), write: true }]);
        assert_eq!(places(false, 1000, Some(b"")).len(), 2);
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("ld-cah-runtime-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        d
    }

    fn euid() -> u32 {
        sys::geteuid()
    }

    #[test]
    fn creates_then_reuses_then_hits() {
        let d = scratch("create");
        let dir = d.join("cache");
        let place = Place { dir: dir.to_str().unwrap().as_bytes().to_vec(), write: true };
        let mut log = Vec::new();
        let c = Caches::open(core::slice::from_ref(&place), euid(), &mut |_, w| log.push(w.to_string()));
        assert_eq!(log, ["created"]);
        assert!(c.list[0].writable);
        let lib = d.join("lib");
        std::fs::write(&lib, vec![7u8; 300_000]).unwrap();
        let fd = sys::open(&with_nul(lib.to_str().unwrap().as_bytes()), sys::O_RDONLY, 0).unwrap();
        let s = sys::fstat(&fd).unwrap();
        let pair = |r: Digested| (r.digest, r.source, r.copy.is_some());
        // Hashed, but not the digest expected: not recorded.
        let other = crate::verify::hash(b"another file");
        let (d0, src, _) = pair(digest_of(&fd, &s, Some(&c), euid(), Some(&other)).unwrap());
        assert_eq!((d0 == other, src), (false, Source::Hashed));
        let (d1, src, copied) = pair(digest_of(&fd, &s, Some(&c), euid(), None).unwrap());
        assert_eq!((src, copied), (Source::Hashed, false));
        assert_eq!(d1, crate::verify::hash(&vec![7u8; 300_000]));
        assert_eq!(pair(digest_of(&fd, &s, Some(&c), euid(), None).unwrap()), (d1, Source::Cache, false));
        // A second process (here: a second open) sees the same file.
        log.clear();
        let c2 = Caches::open(core::slice::from_ref(&place), euid(), &mut |_, w| log.push(w.to_string()));
        assert_eq!(log, ["read-write"]);
        assert_eq!(pair(digest_of(&fd, &s, Some(&c2), euid(), None).unwrap()), (d1, Source::Cache, false));
        // Group-writable (or another owner's): a private copy, hashed, and
        // the cache neither read nor written.
        let loose = sys::Stat { mode: s.mode | 0o020, ..s };
        let r = digest_of(&fd, &loose, Some(&c2), euid(), None).unwrap();
        assert_eq!((r.digest, r.source), (d1, Source::Copied));
        assert_eq!(r.copy.as_deref(), Some(&vec![7u8; 300_000][..]));
        let other = sys::Stat { uid: euid().wrapping_add(1).max(1), ..s };
        assert_eq!(digest_of(&fd, &other, Some(&c2), euid(), None).unwrap().source, Source::Copied);
        // No temporary file is left.
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["hashes"]);
        let _ = std::fs::remove_dir_all(&d);
    }

    /// Lookups read the window with `pread`, in two runs where it wraps
    /// (always, but for home slot 0, in a table of 8 slots); inserts map
    /// the file on demand; a second process finds every entry.
    #[test]
    fn a_small_table_wraps_its_windows() {
        use core::sync::atomic::{AtomicU64, Ordering};
        let d = scratch("wrap");
        let words: Vec<AtomicU64> = (0..cache::words_for(cache::MIN_SLOTS).unwrap()).map(|_| AtomicU64::new(0)).collect();
        Cache::format(&words, cache::MIN_SLOTS).unwrap();
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.load(Ordering::Relaxed).to_ne_bytes()).collect();
        std::fs::write(d.join("hashes"), bytes).unwrap();
        let place = Place { dir: d.to_str().unwrap().as_bytes().to_vec(), write: true };
        let ids: Vec<FileIdentity> = (1..=6).map(|ino| FileIdentity { dev: 7, ino, size: ino * 10, mtime_ns: 1, ctime_ns: 2 }).collect();
        let digest = |id: &FileIdentity| crate::verify::hash(&id.ino.to_le_bytes());
        let c = Caches::open(core::slice::from_ref(&place), euid(), &mut |_, w| assert_eq!(w, "read-write"));
        assert!(ids.iter().all(|id| c.lookup(id).is_none()));
        for id in &ids {
            c.insert(id, &digest(id));
        }
        let homes: Vec<usize> = ids.iter().map(|id| cache::home_slot(id.dev, id.ino, cache::MIN_SLOTS)).collect();
        assert!(homes.iter().any(|&h| h != 0), "some window wraps");
        let again = Caches::open(core::slice::from_ref(&place), euid(), &mut |_, _| {});
        for id in &ids {
            assert_eq!(again.lookup(id), Some(digest(id)), "{id:?}");
        }
        let stale = FileIdentity { ctime_ns: 3, ..ids[0] };
        assert_eq!(again.lookup(&stale), None);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn untrusted_or_bad_files_are_left_out() {
        let d = scratch("untrusted");
        let place = Place { dir: d.to_str().unwrap().as_bytes().to_vec(), write: true };
        let mut log = Vec::new();
        let c = Caches::open(core::slice::from_ref(&place), euid(), &mut |_, w| log.push(w.to_string()));
        assert_eq!(log, ["created"]);
        drop(c);
        let file = d.join("hashes");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o646)).unwrap();
        log.clear();
        let c = Caches::open(core::slice::from_ref(&place), euid(), &mut |_, w| log.push(w.to_string()));
        assert_eq!(log, ["writable by group or others"]);
        assert!(c.list.is_empty());
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o757)).unwrap();
        log.clear();
        let c = Caches::open(core::slice::from_ref(&place), euid(), &mut |_, w| log.push(w.to_string()));
        assert_eq!(log, ["directory writable by group or others"]);
        assert!(c.list.is_empty());
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(&file, vec![0u8; 4096]).unwrap();
        log.clear();
        let _ = Caches::open(core::slice::from_ref(&place), euid(), &mut |_, w| log.push(w.to_string()));
        assert_eq!(log, ["not a hash cache file"]);
        // A place that is not writable for us is never created.
        let _ = std::fs::remove_file(&file);
        let ro = Place { write: false, ..place.clone() };
        log.clear();
        let _ = Caches::open(core::slice::from_ref(&ro), euid(), &mut |_, w| log.push(w.to_string()));
        assert_eq!(log, ["missing"]);
        assert!(!file.exists());
        let gone = Place { dir: d.join("no/such").to_str().unwrap().as_bytes().to_vec(), write: true };
        log.clear();
        let _ = Caches::open(core::slice::from_ref(&gone), euid(), &mut |_, w| log.push(w.to_string()));
        assert_eq!(log, ["missing (and no parent directory)"]);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn hash_fd_reads_everything() {
        let d = scratch("hash");
        for len in [0usize, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let p = d.join(format!("f{len}"));
            std::fs::write(&p, &data).unwrap();
            let fd = sys::open(&with_nul(p.to_str().unwrap().as_bytes()), sys::O_RDONLY, 0).unwrap();
            assert_eq!(hash_fd(&fd, len as u64).unwrap(), crate::verify::hash(&data), "len {len}");
            assert_eq!(hash_fd(&fd, len as u64 + 1), Err("file shrank while being read"));
        }
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn hashing_on_two_threads_gives_the_digest_of_one() {
        // Both splits: a long right subtree (2m - 1 KiB: m + m - 1 KiB), a
        // short one (m + 5000 bytes: the left's halves), and sizes at the
        // edges (m exactly; one byte more), m being PARALLEL_MIN.
        let d = scratch("parallel");
        let m = PARALLEL_MIN as usize;
        for len in [m, m + 1, m + 5000, 2 * m - 1024, 2 * m + 3 * CHUNK + 17] {
            let data: Vec<u8> = (0..len).map(|i| (i * 131 % 251) as u8).collect();
            let p = d.join(format!("f{len}"));
            std::fs::write(&p, &data).unwrap();
            let fd = sys::open(&with_nul(p.to_str().unwrap().as_bytes()), sys::O_RDONLY, 0).unwrap();
            assert_eq!(hash_fd(&fd, len as u64).unwrap(), crate::verify::hash(&data), "len {len}");
            assert_eq!(hash_fd(&fd, len as u64 + 1), Err("file shrank while being read"), "len {len}");
        }
        let _ = std::fs::remove_dir_all(&d);
    }
}
