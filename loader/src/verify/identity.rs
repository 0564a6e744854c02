//! Identity: which file (inode) a digest was computed for, and whether it
//! can still have the same content.
//!
//! The hash cache is keyed by `(st_dev, st_ino)` and an entry stays valid
//! only while `(st_size, st_mtime, st_ctime)` (nanoseconds) still match.
//! `ctime` cannot be set from user space, so any write to the file, any
//! `utimensat` that puts the mtime back, any rename over it or replacement
//! of the inode changes at least one of the five fields.

/// The `stat` fields that identify a file and date its content.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Hash)]
pub struct FileIdentity {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
    /// `st_size`.
    pub size: u64,
    /// `st_mtime` in nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// `st_ctime` in nanoseconds since the epoch.
    pub ctime_ns: i64,
}

impl FileIdentity {
    /// Builds an identity from the fields of a `struct stat` (seconds and
    /// nanoseconds separately, as the kernel reports them). Times beyond the
    /// range of `i64` nanoseconds (year 2262) saturate, which still compares
    /// consistently.
    pub fn from_stat(dev: u64, ino: u64, size: u64, mtime_sec: i64, mtime_nsec: i64, ctime_sec: i64, ctime_nsec: i64) -> FileIdentity {
        FileIdentity { dev, ino, size, mtime_ns: nanos(mtime_sec, mtime_nsec), ctime_ns: nanos(ctime_sec, ctime_nsec) }
    }

    /// Whether `other` is the same inode (it may have changed since).
    pub fn same_inode(&self, other: &FileIdentity) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }
}

fn nanos(sec: i64, nsec: i64) -> i64 {
    sec.saturating_mul(1_000_000_000).saturating_add(nsec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_stat_combines_seconds_and_nanoseconds() {
        let id = FileIdentity::from_stat(1, 2, 3, 4, 5, 6, 7);
        assert_eq!(id.mtime_ns, 4_000_000_005);
        assert_eq!(id.ctime_ns, 6_000_000_007);
        let far = FileIdentity::from_stat(1, 2, 3, i64::MAX, 5, i64::MIN, 0);
        assert_eq!(far.mtime_ns, i64::MAX);
        assert_eq!(far.ctime_ns, i64::MIN);
        assert!(id.same_inode(&far));
        assert!(!id.same_inode(&FileIdentity { ino: 9, ..id }));
    }
}
