//! Reading and writing files that someone else may control.
//!
//! Operators run `cah` as root on programs and libraries they did not
//! write, so every path is treated as hostile:
//!
//! - A file is read only if it is a regular file: it is `stat`ed first (so
//!   a device is never opened), opened with `O_NONBLOCK` (so a FIFO swapped
//!   in after the `stat` cannot block the open), and `fstat`ed again. At
//!   most the size `fstat` reported is read; a file that grows meanwhile is
//!   an error, not an endless read.
//! - New files are written under a random name in the destination's
//!   directory, created with `O_CREAT | O_EXCL` (never through a planted
//!   symbolic link) and mode 0600, `fsync`ed, and renamed into place.
//! - Patching in place rewrites the original inode, so its owner, group,
//!   mode, hard links and extended attributes stay (see
//!   [`replace_in_place`] and `docs/cah.md`). A set-user-ID or set-group-ID
//!   bit is never left on a file whose owner or group could not be kept.
//!
//! The extended attribute calls are the module's `unsafe` code.

use std::ffi::{CStr, CString};
use std::fs::{File, Metadata, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

/// What a file that is not a regular file is, for messages.
pub fn kind(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

/// Opens `path` (following symbolic links) for reading if it is a regular
/// file, without ever blocking in `open`. Returns the file and its `fstat`.
pub fn open_regular(path: &Path) -> Result<(File, Metadata)> {
    let before = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
    if !before.is_file() {
        bail!("{}: is {}, not a regular file", path.display(), kind(&before));
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
        .with_context(|| format!("{}", path.display()))?;
    let meta = file.metadata().with_context(|| format!("{}", path.display()))?;
    if !meta.is_file() {
        bail!("{}: is {}, not a regular file", path.display(), kind(&meta));
    }
    if (meta.dev(), meta.ino()) != (before.dev(), before.ino()) {
        bail!("{}: replaced while being opened", path.display());
    }
    Ok((file, meta))
}

/// Reads the whole of an opened regular file: exactly the size `meta`
/// reported, and an error if there is more (the file is being written).
pub fn read_all(mut file: &File, meta: &Metadata, path: &Path) -> Result<Vec<u8>> {
    let len = usize::try_from(meta.len()).map_err(|_| anyhow!("{}: too large", path.display()))?;
    let mut data = Vec::new();
    data.try_reserve_exact(len).map_err(|_| anyhow!("{}: too large to read ({len} bytes)", path.display()))?;
    file.take(meta.len()).read_to_end(&mut data).with_context(|| format!("{}", path.display()))?;
    let mut more = [0u8; 1];
    if data.len() != len || file.read(&mut more).with_context(|| format!("{}", path.display()))? != 0 {
        bail!("{}: changed while being read", path.display());
    }
    Ok(data)
}

/// [`open_regular`] and [`read_all`].
pub fn read_regular(path: &Path) -> Result<Vec<u8>> {
    let (file, meta) = open_regular(path)?;
    read_all(&file, &meta, path)
}

/// Sixteen random hexadecimal digits, for temporary names.
fn random_hex() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut bytes = [0u8; 8];
    let from_kernel = File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).is_ok();
    let mut x = u64::from_le_bytes(bytes);
    if !from_kernel {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        x = t ^ (u64::from(std::process::id()) << 32) ^ COUNTER.fetch_add(1, Ordering::Relaxed).rotate_left(17);
    }
    format!("{x:016x}")
}

/// The directory `path` is in (`.` for a bare name).
pub fn dir_of(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Creates a new empty file, mode 0600, under a random name in `dir` that
/// starts with `.<stem>.cah-`, with `O_EXCL` (so never through an existing
/// file or symbolic link).
pub fn create_temp(dir: &Path, stem: &[u8]) -> Result<(File, PathBuf)> {
    // Leave room in NAME_MAX (255) for the prefix and the random part.
    let mut stem = String::from_utf8_lossy(&stem[..stem.len().min(200)]).into_owned();
    stem.retain(|c| c != '/');
    for _ in 0..16 {
        let path = dir.join(format!(".{stem}.cah-{}", random_hex()));
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
        {
            Ok(f) => return Ok((f, path)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating a temporary file in {}", dir.display())),
        }
    }
    bail!("{}: could not create a temporary file", dir.display())
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// `mode` without the set-user-ID bit (and the set-group-ID bit) when the
/// file `now` no longer has `orig`'s owner (group): such a bit would hand
/// the new owner's rights to whoever runs the file.
pub fn safe_mode(mode: u32, orig: &Metadata, now: &Metadata) -> u32 {
    let mut mode = mode & 0o7777;
    if now.uid() != orig.uid() {
        mode &= !(libc::S_ISUID | libc::S_ISGID);
    }
    if now.gid() != orig.gid() {
        mode &= !libc::S_ISGID;
    }
    mode
}

/// Writes `data` to a new file that then replaces `dest` (a rename: a
/// symbolic link at `dest` is replaced, not followed). Its mode is `mode`,
/// less the set-ID bits if its owner or group differs from `like`'s.
pub fn write_new(dest: &Path, data: &[u8], mode: u32, like: Option<&Metadata>) -> Result<()> {
    let name = dest.file_name().ok_or_else(|| anyhow!("{}: not a file name", dest.display()))?;
    let dir = dir_of(dest);
    let (mut tmp, tmp_path) = create_temp(dir, name.as_bytes())?;
    let result = (|| -> Result<()> {
        tmp.write_all(data)?;
        let now = tmp.metadata()?;
        let mode = match like {
            Some(orig) => safe_mode(mode, orig, &now),
            None => mode & 0o7777,
        };
        tmp.set_permissions(std::fs::Permissions::from_mode(mode))?;
        tmp.sync_all()?;
        std::fs::rename(&tmp_path, dest).with_context(|| format!("{}", dest.display()))?;
        Ok(())
    })()
    .with_context(|| format!("writing {}", dest.display()));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp_path);
    } else {
        sync_dir(dir);
    }
    result
}

/// How an in-place patch was written.
#[derive(Clone, Debug, Default)]
pub struct InPlace {
    /// The original inode could not be written (`ETXTBSY`: the program is
    /// running), so a new file was renamed over it.
    pub renamed: bool,
    /// Things that could not be kept, one message each.
    pub warnings: Vec<String>,
}

/// Writes `data` over the regular file at `path`, which was read through
/// `original` (whose `fstat` was `before`), keeping what `patchelf` keeps
/// and more:
///
/// 1. `data` goes to a new file in the same directory (`O_EXCL`, mode 0600,
///    random name) and is `fsync`ed;
/// 2. the original inode is opened for writing (`O_NOFOLLOW`, and it must
///    still be the inode that was read, unchanged) and rewritten from
///    offset 0, truncated to the new length and `fsync`ed, so its owner,
///    group, hard links and extended attributes stay; the mode and any
///    extended attribute the kernel dropped on write (`security.capability`,
///    and the set-ID bits for a writer without `CAP_FSETID`) are put back
///    where the caller may; the temporary file is removed. If the rewrite
///    fails half-way, the error names the temporary file, which holds the
///    complete result.
/// 3. Only if the inode cannot be opened for writing because it is being
///    executed (`ETXTBSY`) and it has no other hard link, the temporary
///    file gets the original's owner, group, extended attributes and mode
///    and is renamed over it. If the owner (group) cannot be given (not
///    root), the set-user-ID and set-group-ID bits (the set-group-ID bit)
///    are cleared.
pub fn replace_in_place(path: &Path, original: &File, before: &Metadata, data: &[u8]) -> Result<InPlace> {
    let name = path.file_name().ok_or_else(|| anyhow!("{}: not a file name", path.display()))?;
    let dir = dir_of(path);
    let xattrs = list_xattrs(original).with_context(|| format!("{}: reading extended attributes", path.display()))?;
    let (mut tmp, tmp_path) = create_temp(dir, name.as_bytes())?;
    let written = tmp.write_all(data).and_then(|()| tmp.sync_all()).with_context(|| format!("writing {}", tmp_path.display()));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp_path);
        return Err(e);
    }
    let target =
        OpenOptions::new().write(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC).open(path);
    let result = match target {
        Ok(target) => rewrite_inode(path, &target, original, before, data, &xattrs, &tmp_path),
        Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && before.nlink() <= 1 => {
            rename_over(path, original, before, &tmp, &tmp_path, &xattrs)
        }
        Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => Err(anyhow!(
            "{}: the program is running and has {} hard links, so it can be neither rewritten nor replaced; \
             stop it, or patch with -o",
            path.display(),
            before.nlink()
        )),
        Err(e) => Err(e).with_context(|| format!("{}: opening for writing", path.display())),
    };
    match &result {
        // The original was left as it was, or the rename consumed the
        // temporary file, or it was copied completely.
        Ok(_) => {
            let _ = std::fs::remove_file(&tmp_path);
            sync_dir(dir);
        }
        Err(e) if e.downcast_ref::<HalfWritten>().is_some() => {}
        Err(_) => {
            let _ = std::fs::remove_file(&tmp_path);
        }
    }
    result
}

/// The original was modified but not completely: the temporary file is
/// kept (the message says where).
#[derive(Debug)]
struct HalfWritten(String);

impl std::fmt::Display for HalfWritten {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HalfWritten {}

/// The parts of a file's state that show it changed.
fn identity(m: &Metadata) -> (u64, u64, u64, i64, i64, i64, i64) {
    (m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec())
}

fn rewrite_inode(
    path: &Path,
    target: &File,
    original: &File,
    before: &Metadata,
    data: &[u8],
    xattrs: &[(CString, Vec<u8>)],
    tmp_path: &Path,
) -> Result<InPlace> {
    let now = target.metadata()?;
    let still = original.metadata()?;
    if !now.is_file() || identity(&now) != identity(before) || identity(&still) != identity(before) {
        bail!("{}: changed while being patched; nothing written", path.display());
    }
    let mut report = InPlace::default();
    let copy = (|| -> std::io::Result<()> {
        target.write_all_at(data, 0)?;
        target.set_len(data.len() as u64)?;
        target.sync_all()
    })();
    if let Err(e) = copy {
        return Err(anyhow::Error::new(HalfWritten(format!(
            "{}: rewriting failed half-way ({e}); the complete patched file is {}",
            path.display(),
            tmp_path.display()
        ))));
    }
    // Put back what the kernel takes away on write.
    for (name, value) in xattrs {
        if get_xattr(target, name).ok().as_ref() != Some(value) {
            if let Err(e) = set_xattr(target, name, value) {
                report.warnings.push(format!("{}: extended attribute {} lost: {e}", path.display(), name.to_string_lossy()));
            }
        }
    }
    let mode = before.mode() & 0o7777;
    let after = target.metadata()?;
    if after.mode() & 0o7777 != mode {
        // The owner and group are the original's (same inode), so the
        // original mode is safe to restore; only a caller who may not
        // (not the owner, no CAP_FOWNER) keeps what the kernel left.
        if let Err(e) = target.set_permissions(std::fs::Permissions::from_mode(mode)) {
            report.warnings.push(format!(
                "{}: mode {:04o} could not be restored ({e}); it is {:04o}",
                path.display(),
                mode,
                after.mode() & 0o7777
            ));
        }
    }
    target.sync_all()?;
    Ok(report)
}

fn rename_over(
    path: &Path,
    original: &File,
    before: &Metadata,
    tmp: &File,
    tmp_path: &Path,
    xattrs: &[(CString, Vec<u8>)],
) -> Result<InPlace> {
    let mut report = InPlace { renamed: true, warnings: Vec::new() };
    let now = tmp.metadata()?;
    if (now.uid(), now.gid()) != (before.uid(), before.gid())
        && std::os::unix::fs::fchown(tmp, Some(before.uid()), Some(before.gid())).is_err()
    {
        // Not root: keep at least the group if it is one of ours.
        let _ = std::os::unix::fs::fchown(tmp, None, Some(before.gid()));
    }
    let now = tmp.metadata()?;
    for (name, value) in xattrs {
        if let Err(e) = set_xattr(tmp, name, value) {
            report.warnings.push(format!("{}: extended attribute {} lost: {e}", path.display(), name.to_string_lossy()));
        }
    }
    let mode = safe_mode(before.mode(), before, &now);
    if mode != before.mode() & 0o7777 {
        report.warnings.push(format!(
            "{}: owner {}:{} could not be kept (it is now {}:{}); set-ID bits cleared, mode {:04o}",
            path.display(),
            before.uid(),
            before.gid(),
            now.uid(),
            now.gid(),
            mode
        ));
    }
    tmp.set_permissions(std::fs::Permissions::from_mode(mode))?;
    tmp.sync_all()?;
    // The name must still be the file that was read.
    let current = std::fs::symlink_metadata(path)?;
    let still = original.metadata()?;
    if (current.dev(), current.ino()) != (before.dev(), before.ino()) || identity(&still) != identity(before) {
        bail!("{}: changed while being patched; nothing written", path.display());
    }
    std::fs::rename(tmp_path, path).with_context(|| format!("{}", path.display()))?;
    Ok(report)
}

/// Replaces the inode whose names are `names` (read through `original`,
/// `fstat` `before`) by a new file holding `data`, atomically per name:
/// the new file gets the original's owner, group, extended attributes and
/// mode (see [`replace_in_place`], step 3), is hard-linked under a
/// temporary name next to every other name, and each temporary name is
/// renamed over its name. Afterwards all the names are one new inode.
/// Returns warnings (what could not be kept).
pub fn replace_links(names: &[PathBuf], original: &File, before: &Metadata, data: &[u8]) -> Result<Vec<String>> {
    let first = names.first().ok_or_else(|| anyhow!("no file name"))?;
    let stem = first.file_name().ok_or_else(|| anyhow!("{}: not a file name", first.display()))?;
    let xattrs = list_xattrs(original).with_context(|| format!("{}: reading extended attributes", first.display()))?;
    let (mut tmp, tmp_path) = create_temp(dir_of(first), stem.as_bytes())?;
    let mut temps: Vec<PathBuf> = Vec::new();
    let result = (|| -> Result<Vec<String>> {
        tmp.write_all(data).and_then(|()| tmp.sync_all()).with_context(|| format!("writing {}", tmp_path.display()))?;
        for name in &names[1..] {
            // Still a name of the same inode?
            let m = std::fs::symlink_metadata(name).with_context(|| format!("{}", name.display()))?;
            if (m.dev(), m.ino()) != (before.dev(), before.ino()) {
                bail!("{}: changed while being patched; nothing written", name.display());
            }
            let leaf = name.file_name().map_or(&b"x"[..], |n| n.as_bytes());
            let t = dir_of(name).join(format!(".{}.cah-{}", String::from_utf8_lossy(&leaf[..leaf.len().min(200)]), random_hex()));
            std::fs::hard_link(&tmp_path, &t).with_context(|| format!("linking {}", t.display()))?;
            temps.push(t);
        }
        // Sets owner, attributes and mode on the shared inode, checks the
        // first name and renames over it.
        let report = rename_over(first, original, before, &tmp, &tmp_path, &xattrs)?;
        for (t, name) in temps.iter().zip(&names[1..]) {
            std::fs::rename(t, name).with_context(|| format!("{}", name.display()))?;
            sync_dir(dir_of(name));
        }
        sync_dir(dir_of(first));
        Ok(report.warnings)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp_path);
        for t in &temps {
            let _ = std::fs::remove_file(t);
        }
    }
    result
}

fn os_err(ret: isize) -> std::io::Result<usize> {
    usize::try_from(ret).map_err(|_| std::io::Error::last_os_error())
}

/// The names and values of every extended attribute of `file` (none where
/// the file system has none).
pub fn list_xattrs(file: &File) -> std::io::Result<Vec<(CString, Vec<u8>)>> {
    let fd = file.as_raw_fd();
    let mut names = Vec::new();
    // The list may grow between the size query and the read: retry a few
    // times, then give up.
    for _ in 0..8 {
        // SAFETY: a null buffer of size 0 asks for the size only.
        let need = match os_err(unsafe { libc::flistxattr(fd, std::ptr::null_mut(), 0) }) {
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        names = vec![0u8; need];
        // SAFETY: `names` is a writable buffer of `names.len()` bytes.
        match os_err(unsafe { libc::flistxattr(fd, names.as_mut_ptr().cast(), names.len()) }) {
            Ok(n) => {
                names.truncate(n);
                break;
            }
            Err(e) if e.raw_os_error() == Some(libc::ERANGE) => continue,
            Err(e) => return Err(e),
        }
    }
    let mut out = Vec::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let Ok(name) = CString::new(name) else { continue };
        match get_xattr(file, &name) {
            Ok(value) => out.push((name, value)),
            // Removed meanwhile.
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// The value of the extended attribute `name` of `file`.
pub fn get_xattr(file: &File, name: &CStr) -> std::io::Result<Vec<u8>> {
    let fd = file.as_raw_fd();
    for _ in 0..8 {
        // SAFETY: `name` is NUL-terminated; a null buffer of size 0 asks
        // for the size only.
        let need = os_err(unsafe { libc::fgetxattr(fd, name.as_ptr(), std::ptr::null_mut(), 0) })?;
        let mut value = vec![0u8; need];
        // SAFETY: `value` is a writable buffer of `value.len()` bytes.
        match os_err(unsafe { libc::fgetxattr(fd, name.as_ptr(), value.as_mut_ptr().cast(), value.len()) }) {
            Ok(n) => {
                value.truncate(n);
                return Ok(value);
            }
            Err(e) if e.raw_os_error() == Some(libc::ERANGE) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::from_raw_os_error(libc::ERANGE))
}

/// Sets the extended attribute `name` of `file` to `value`.
pub fn set_xattr(file: &File, name: &CStr, value: &[u8]) -> std::io::Result<()> {
    // SAFETY: `name` is NUL-terminated and `value` readable for its length.
    let r = unsafe { libc::fsetxattr(file.as_raw_fd(), name.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_regular(&fifo).unwrap_err().to_string();
        assert!(e.contains("is a FIFO"), "{e}");
        let e = read_regular(dir.path()).unwrap_err().to_string();
        assert!(e.contains("is a directory"), "{e}");
        let e = read_regular(Path::new("/dev/zero")).unwrap_err().to_string();
        assert!(e.contains("character device"), "{e}");
        // A file whose size says 0 but that has content (procfs) is not
        // read endlessly.
        assert!(read_regular(Path::new("/proc/self/status")).is_err());
    }

    #[test]
    fn temporary_files_are_new_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let (_, a) = create_temp(dir.path(), b"x").unwrap();
        let (_, b) = create_temp(dir.path(), b"x").unwrap();
        assert_ne!(a, b);
        assert_eq!(std::fs::metadata(&a).unwrap().permissions().mode() & 0o777, 0o600);
        let long = vec![b'n'; 300];
        create_temp(dir.path(), &long).unwrap();
    }

    #[test]
    fn write_new_replaces_a_planted_link_instead_of_following_it() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let out = dir.path().join("out");
        std::os::unix::fs::symlink(&victim, &out).unwrap();
        write_new(&out, b"new", 0o755, None).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert!(std::fs::symlink_metadata(&out).unwrap().is_file());
        assert_eq!(std::fs::read(&out).unwrap(), b"new");
    }
}
