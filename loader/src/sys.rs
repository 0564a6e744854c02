//! System calls: the only module that talks to the kernel.
//!
//! Typed, safe wrappers named after the syscall. Each returns
//! `Result<_, Errno>`; the raw instruction lives in `arch::native`.
#![allow(unsafe_code)]

use crate::arch::native::{nr, syscall6};

/// A negated kernel error number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    pub const ENOENT: Errno = Errno(2);
    pub const EINTR: Errno = Errno(4);
    pub const ENOMEM: Errno = Errno(12);
    pub const EACCES: Errno = Errno(13);
    pub const ENOSYS: Errno = Errno(38);

    /// A short description, for error messages.
    pub fn describe(self) -> &'static str {
        match self.0 {
            1 => "operation not permitted",
            2 => "no such file or directory",
            5 => "input/output error",
            9 => "bad file descriptor",
            12 => "out of memory",
            13 => "permission denied",
            19 => "file cannot be mapped",
            20 => "not a directory",
            21 => "is a directory",
            22 => "invalid argument",
            24 => "too many open files",
            26 => "text file busy",
            27 => "file too large",
            28 => "no space left on device",
            30 => "read-only file system",
            36 => "file name too long",
            40 => "too many levels of symbolic links",
            _ => "system call failed",
        }
    }
}

fn check(ret: isize) -> Result<usize, Errno> {
    if (-4095..0).contains(&ret) {
        Err(Errno(-ret as i32))
    } else {
        Ok(ret as usize)
    }
}

#[inline(always)]
fn sys(n: usize, a: [usize; 6]) -> Result<usize, Errno> {
    // SAFETY: every caller below passes arguments that are valid for its
    // syscall (pointers from live references, lengths that match them);
    // the syscalls used here do not touch memory the caller did not hand over.
    check(unsafe { syscall6(n, a) })
}

pub const AT_FDCWD: i32 = -100;
pub const O_RDONLY: u32 = 0;
pub const O_RDWR: u32 = 2;
pub const O_CREAT: u32 = 0o100;
pub const O_CLOEXEC: u32 = 0o2000000;
/// Opening a FIFO for reading blocks until a writer comes; with this flag
/// `open` returns at once (the same value on x86_64 and aarch64).
pub const O_NONBLOCK: u32 = 0o4000;
/// These two differ between x86_64 and aarch64.
pub const O_DIRECTORY: u32 = nr::O_DIRECTORY;
/// The same on x86_64 and aarch64 (`asm-generic`).
pub const O_PATH: u32 = 0o10_000_000;
pub const O_NOFOLLOW: u32 = nr::O_NOFOLLOW;

pub const PROT_NONE: usize = 0;
pub const PROT_READ: usize = 1;
pub const PROT_WRITE: usize = 2;
pub const PROT_EXEC: usize = 4;
pub const MAP_SHARED: usize = 0x01;
pub const MAP_PRIVATE: usize = 0x02;
pub const MAP_FIXED: usize = 0x10;
pub const MAP_ANONYMOUS: usize = 0x20;

/// An owned file descriptor, closed on drop.
#[derive(Debug)]
pub struct Fd(i32);

impl Fd {
    pub fn raw(&self) -> i32 {
        self.0
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        let _ = sys(nr::CLOSE, [self.0 as usize, 0, 0, 0, 0, 0]);
    }
}

/// `openat(AT_FDCWD, path, flags | O_CLOEXEC)`. `path` must end in NUL.
pub fn open(path: &[u8], flags: u32, mode: u32) -> Result<Fd, Errno> {
    if path.last() != Some(&0) {
        return Err(Errno(22));
    }
    let fd = sys(nr::OPENAT, [AT_FDCWD as isize as usize, path.as_ptr() as usize, (flags | O_CLOEXEC) as usize, mode as usize, 0, 0])?;
    Ok(Fd(fd as i32))
}

/// `pread64` into `buf`; returns how many bytes were read.
pub fn pread(fd: &Fd, buf: &mut [u8], offset: u64) -> Result<usize, Errno> {
    loop {
        match sys(nr::PREAD64, [fd.0 as usize, buf.as_mut_ptr() as usize, buf.len(), offset as usize, 0, 0]) {
            Err(Errno::EINTR) => continue,
            r => return r,
        }
    }
}

/// Reads as much of `buf` as the file has from `offset`.
pub fn pread_full(fd: &Fd, buf: &mut [u8], offset: u64) -> Result<usize, Errno> {
    let mut done = 0;
    while done < buf.len() {
        let n = pread(fd, &mut buf[done..], offset + done as u64)?;
        if n == 0 {
            break;
        }
        done += n;
    }
    Ok(done)
}

/// [`pread_full`] into 64-bit words, in the file's (native) byte order;
/// the count is of bytes.
pub fn pread_words(fd: &Fd, words: &mut [u64], offset: u64) -> Result<usize, Errno> {
    // SAFETY: the bytes of `words`, which any bit pattern leaves valid
    // u64s, borrowed mutably for this call only.
    let bytes = unsafe { core::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), words.len() * 8) };
    pread_full(fd, bytes, offset)
}

pub fn write(fd: i32, buf: &[u8]) -> Result<usize, Errno> {
    sys(nr::WRITE, [fd as usize, buf.as_ptr() as usize, buf.len(), 0, 0, 0])
}

/// Writes all of `buf`, retrying short writes; errors are dropped (there is
/// nowhere to report a failure to write an error message).
pub fn write_all(fd: i32, mut buf: &[u8]) {
    while !buf.is_empty() {
        match write(fd, buf) {
            Ok(0) => return,
            Ok(n) => buf = buf.get(n..).unwrap_or(&[]),
            Err(Errno::EINTR) => {}
            Err(_) => return,
        }
    }
}

pub fn exit_group(code: i32) -> ! {
    let _ = sys(nr::EXIT_GROUP, [code as usize, 0, 0, 0, 0, 0]);
    // exit_group does not return; if it somehow did, trap rather than
    // run on.
    #[allow(clippy::empty_loop)]
    loop {}
}

/// The fields of `struct stat` the loader uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stat {
    pub dev: u64,
    pub ino: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: i64,
    /// `st_blocks`: 512-byte units allocated.
    pub blocks: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
}

pub fn fstat(fd: &Fd) -> Result<Stat, Errno> {
    // Large enough for either arch's struct stat (144 and 128 bytes).
    let mut buf = [0u64; 20];
    sys(nr::FSTAT, [fd.0 as usize, buf.as_mut_ptr() as usize, 0, 0, 0, 0])?;
    Ok(decode_stat(&buf))
}

/// `f_type` of the file system `fd` lies on (the first word of either
/// arch's `struct statfs`, 120 bytes).
pub fn fstatfs_type(fd: &Fd) -> Result<u64, Errno> {
    let mut buf = [0u64; 16];
    sys(nr::FSTATFS, [fd.0 as usize, buf.as_mut_ptr() as usize, 0, 0, 0, 0])?;
    Ok(buf[0])
}

/// `f_type` of a `tmpfs` and of a `ramfs`: file systems in memory, which
/// hold only what was written since the machine booted.
pub const TMPFS_MAGIC: u64 = 0x0102_1994;
pub const RAMFS_MAGIC: u64 = 0x8584_58f6;

fn decode_stat(buf: &[u64; 20]) -> Stat {
    // The words both arches' layouts share: st_dev 0, st_ino 8, st_size
    // 48, st_blocks 64, st_mtime 88/96, st_ctime 104/112.
    let (mode, uid, gid) = crate::arch::native::stat_ids(buf);
    let ns = |s: u64, n: u64| s as i64 as i128 * 1_000_000_000 + n as i64 as i128;
    Stat {
        dev: buf[0],
        ino: buf[1],
        mode,
        uid,
        gid,
        size: buf[6] as i64,
        blocks: buf[8],
        mtime_ns: ns(buf[11], buf[12]),
        ctime_ns: ns(buf[13], buf[14]),
    }
}

/// `mmap`; returns the address.
///
/// # Safety
/// With `MAP_FIXED`, `addr..addr+len` must not hold anything still in use.
pub unsafe fn mmap(addr: usize, len: usize, prot: usize, flags: usize, fd: i32, off: u64) -> Result<usize, Errno> {
    sys(nr::MMAP, [addr, len, prot, flags, fd as isize as usize, off as usize])
}

/// An anonymous private read-write mapping.
pub fn mmap_anon(len: usize) -> Result<usize, Errno> {
    // SAFETY: without MAP_FIXED the kernel picks a fresh range.
    unsafe { mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) }
}

/// # Safety
/// Nothing may rely on the old protection of `addr..addr+len`.
pub unsafe fn mprotect(addr: usize, len: usize, prot: usize) -> Result<(), Errno> {
    sys(nr::MPROTECT, [addr, len, prot, 0, 0, 0]).map(|_| ())
}

/// # Safety
/// Nothing may use `addr..addr+len` afterwards.
pub unsafe fn munmap(addr: usize, len: usize) -> Result<(), Errno> {
    sys(nr::MUNMAP, [addr, len, 0, 0, 0, 0]).map(|_| ())
}

/// `getcwd` into `buf`; returns the path without its NUL.
pub fn getcwd(buf: &mut [u8]) -> Result<&[u8], Errno> {
    let n = sys(nr::GETCWD, [buf.as_mut_ptr() as usize, buf.len(), 0, 0, 0, 0])?;
    let n = n.saturating_sub(1).min(buf.len());
    Ok(&buf[..n])
}

pub const R_OK: u32 = 4;

/// `faccessat(AT_FDCWD, path, mode)`: checked with the real user and group
/// ids, as `access` is. `path` ends in NUL.
pub fn access(path: &[u8], mode: u32) -> Result<(), Errno> {
    if path.last() != Some(&0) {
        return Err(Errno(22));
    }
    sys(nr::FACCESSAT, [AT_FDCWD as isize as usize, path.as_ptr() as usize, mode as usize, 0, 0, 0]).map(|_| ())
}

/// `readlinkat(AT_FDCWD, path)`; `path` ends in NUL.
pub fn readlink<'a>(path: &[u8], buf: &'a mut [u8]) -> Result<&'a [u8], Errno> {
    if path.last() != Some(&0) {
        return Err(Errno(22));
    }
    let n = sys(nr::READLINKAT, [AT_FDCWD as isize as usize, path.as_ptr() as usize, buf.as_mut_ptr() as usize, buf.len(), 0, 0])?;
    Ok(&buf[..n.min(buf.len())])
}

/// Starts a thread in this process that runs `entry(arg)` on the stack
/// that ends at `stack_top` and exits; the kernel sets `done` to 0 and
/// wakes its futex waiters once the thread has exited (and no longer uses
/// its stack). Signal handlers, files and memory are shared, as between
/// any threads.
///
/// # Safety
/// As `arch::native::clone_thread`; `done` stays valid until it reads 0.
pub unsafe fn spawn_thread(
    stack_top: usize,
    done: &core::sync::atomic::AtomicU32,
    entry: extern "C" fn(usize),
    arg: usize,
) -> Result<i32, Errno> {
    const CLONE_VM: usize = 0x100;
    const CLONE_FS: usize = 0x200;
    const CLONE_FILES: usize = 0x400;
    const CLONE_SIGHAND: usize = 0x800;
    const CLONE_THREAD: usize = 0x10000;
    const CLONE_SYSVSEM: usize = 0x40000;
    const CLONE_CHILD_CLEARTID: usize = 0x200000;
    let flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM | CLONE_CHILD_CLEARTID;
    done.store(1, core::sync::atomic::Ordering::Release);
    // The thread starts with every signal blocked (it inherits the mask):
    // a handler of the program must never run on it, with no TLS of its
    // own (it shares the caller's thread pointer) and a small stack.
    const SIG_SETMASK: usize = 2;
    let all = u64::MAX;
    let mut old = 0u64;
    sys(nr::RT_SIGPROCMASK, [SIG_SETMASK, &all as *const u64 as usize, &mut old as *mut u64 as usize, 8, 0, 0])?;
    // SAFETY: the caller's contract.
    let tid = check(unsafe { crate::arch::native::clone_thread(flags, stack_top, done.as_ptr(), entry, arg) });
    let _ = sys(nr::RT_SIGPROCMASK, [SIG_SETMASK, &old as *const u64 as usize, 0, 8, 0, 0]);
    Ok(tid? as i32)
}

/// `futex(FUTEX_WAIT)` while `word` holds `expected` (shared, not
/// private: the kernel's wake at a thread's exit is a shared one).
pub fn futex_wait(word: &core::sync::atomic::AtomicU32, expected: u32) {
    const FUTEX_WAIT: usize = 0;
    let _ = sys(nr::FUTEX, [word.as_ptr() as usize, FUTEX_WAIT, expected as usize, 0, 0, 0]);
}

/// How many CPUs this thread may run on (1 if the kernel will not say).
pub fn cpus_allowed() -> u32 {
    let mut mask = [0u64; 16];
    match sys(nr::SCHED_GETAFFINITY, [0, core::mem::size_of_val(&mask), mask.as_mut_ptr() as usize, 0, 0, 0]) {
        Ok(_) => mask.iter().map(|w| w.count_ones()).sum::<u32>().max(1),
        Err(_) => 1,
    }
}

pub fn gettid() -> i32 {
    sys(nr::GETTID, [0; 6]).unwrap_or(0) as i32
}

pub fn getpid() -> i32 {
    sys(nr::GETPID, [0; 6]).unwrap_or(0) as i32
}

/// `set_tid_address`; returns the caller's tid.
///
/// # Safety
/// `addr` stays valid for the thread's life (the kernel writes 0 there at exit).
pub unsafe fn set_tid_address(addr: usize) -> i32 {
    sys(nr::SET_TID_ADDRESS, [addr, 0, 0, 0, 0, 0]).unwrap_or(0) as i32
}

/// # Safety
/// `head` stays valid for the thread's life.
pub unsafe fn set_robust_list(head: usize, len: usize) -> Result<(), Errno> {
    sys(nr::SET_ROBUST_LIST, [head, len, 0, 0, 0, 0]).map(|_| ())
}

/// # Safety
/// `area` is a `struct rseq` that stays valid for the thread's life.
pub unsafe fn rseq(area: usize, len: usize, sig: u32) -> Result<(), Errno> {
    sys(nr::RSEQ, [area, len, 0, sig as usize, 0, 0]).map(|_| ())
}

/// Sets the thread pointer (see `arch`).
///
/// # Safety
/// `tp` points at a TCB that outlives the thread.
pub unsafe fn set_thread_pointer(tp: usize) -> Result<(), Errno> {
    // SAFETY: forwarded to the caller.
    match unsafe { crate::arch::native::set_thread_pointer(tp) } {
        Some((n, args)) => sys(n, args).map(|_| ()),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------------
// Content verification: the hash cache under /run and its trust checks
// (`verify::runtime`).

pub const O_WRONLY: u32 = 1;
pub const O_EXCL: u32 = 0o200;
pub const AT_REMOVEDIR: u32 = 0x200;
/// `renameat2` flag: fail with `EEXIST` instead of replacing the target.
pub const RENAME_NOREPLACE: u32 = 1;

impl Errno {
    pub const EEXIST: Errno = Errno(17);
    pub const EINVAL: Errno = Errno(22);
}

pub fn getuid() -> u32 {
    sys(nr::GETUID, [0; 6]).unwrap_or(u32::MAX as usize) as u32
}

pub fn geteuid() -> u32 {
    sys(nr::GETEUID, [0; 6]).unwrap_or(u32::MAX as usize) as u32
}

/// `openat(dir, path, flags | O_CLOEXEC, mode)`; `dir` `None` is
/// `AT_FDCWD`. `path` must end in NUL.
pub fn openat(dir: Option<&Fd>, path: &[u8], flags: u32, mode: u32) -> Result<Fd, Errno> {
    if path.last() != Some(&0) {
        return Err(Errno::EINVAL);
    }
    let dirfd = dir.map_or(AT_FDCWD, Fd::raw);
    let fd = sys(nr::OPENAT, [dirfd as isize as usize, path.as_ptr() as usize, (flags | O_CLOEXEC) as usize, mode as usize, 0, 0])?;
    Ok(Fd(fd as i32))
}

/// `mkdirat(dir, path, mode)`; `path` ends in NUL.
pub fn mkdirat(dir: Option<&Fd>, path: &[u8], mode: u32) -> Result<(), Errno> {
    if path.last() != Some(&0) {
        return Err(Errno::EINVAL);
    }
    let dirfd = dir.map_or(AT_FDCWD, Fd::raw);
    sys(nr::MKDIRAT, [dirfd as isize as usize, path.as_ptr() as usize, mode as usize, 0, 0, 0]).map(|_| ())
}

/// `unlinkat(dir, path, flags)`; `path` ends in NUL.
pub fn unlinkat(dir: &Fd, path: &[u8], flags: u32) -> Result<(), Errno> {
    if path.last() != Some(&0) {
        return Err(Errno::EINVAL);
    }
    sys(nr::UNLINKAT, [dir.0 as usize, path.as_ptr() as usize, flags as usize, 0, 0, 0]).map(|_| ())
}

/// `renameat2(dir, from, dir, to, flags)` inside one directory; both
/// names end in NUL.
pub fn renameat2(dir: &Fd, from: &[u8], to: &[u8], flags: u32) -> Result<(), Errno> {
    if from.last() != Some(&0) || to.last() != Some(&0) {
        return Err(Errno::EINVAL);
    }
    sys(nr::RENAMEAT2, [dir.0 as usize, from.as_ptr() as usize, dir.0 as usize, to.as_ptr() as usize, flags as usize, 0]).map(|_| ())
}

pub fn fchmod(fd: &Fd, mode: u32) -> Result<(), Errno> {
    sys(nr::FCHMOD, [fd.0 as usize, mode as usize, 0, 0, 0, 0]).map(|_| ())
}

/// `fallocate(fd, 0, offset, len)`: allocates the blocks (and extends the
/// file), so that later writes through a shared mapping cannot fail for
/// want of space (a `SIGBUS`).
pub fn fallocate(fd: &Fd, offset: u64, len: u64) -> Result<(), Errno> {
    loop {
        match sys(nr::FALLOCATE, [fd.0 as usize, 0, offset as usize, len as usize, 0, 0]) {
            Err(Errno::EINTR) => continue,
            r => return r.map(|_| ()),
        }
    }
}
