//! The closure lock: the `"CAH"` ELF note a patched executable carries.
//!
//! For every object in the program's dependency closure it records the name
//! as it appears in `DT_NEEDED` and the BLAKE3-256 digest of the file that
//! was locked. `docs/closure-lock.md` specifies the bytes; in short, the
//! note descriptor is
//!
//! ```text
//! header   u16 version (1) | u16 header_len (>= 16) | u32 flags
//!          | u32 entry_count | u32 entries_len
//! entries  entry_count times:
//!          u16 name_len | u16 entry_flags | [u8; 32] digest | name bytes
//! ```
//!
//! all little-endian, entries packed with no padding, names strictly
//! ascending (so the encoding of a set of entries is unique and a name can
//! occur only once).
//!
//! The loader reads this from the program's memory before anything else
//! has been verified, so [`LockView::parse`] treats its input as hostile:
//! every length is checked against the bytes present and against fixed
//! bounds, it never panics and it does not allocate. Writing
//! ([`Lock`]) needs `alloc` and is used by `cah patch`.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;

use super::digest::{Digest, DIGEST_LEN};

/// The note's owner, as stored in the note's name field (`namesz` = 4,
/// including the terminating NUL).
pub const NOTE_NAME: &[u8; 4] = b"CAH\0";
/// The note type of the closure lock (`n_type`): the bytes `"LOCK"` read
/// as a little-endian word (a value no generic note type uses, so tools
/// show it as the owner's own type).
pub const NT_CAH_LOCK: u32 = u32::from_le_bytes(*b"LOCK");
/// The section `cah patch` puts the note in.
pub const SECTION_NAME: &str = ".note.cah";
/// The format version this code reads and writes.
pub const VERSION: u16 = 1;
/// Size of the version 1 header; a larger `header_len` is accepted and the
/// extra bytes ignored (room for compatible additions).
pub const HEADER_LEN: usize = 16;
/// Largest `header_len` accepted.
pub const MAX_HEADER_LEN: usize = 256;
/// Fixed part of an entry: `name_len`, `entry_flags`, digest.
pub const ENTRY_FIXED_LEN: usize = 4 + DIGEST_LEN;
/// Most entries a lock may hold (a closure is rarely above a few hundred).
pub const MAX_ENTRIES: usize = 4096;
/// Longest name accepted (`DT_NEEDED` strings are file names or paths).
pub const MAX_NAME_LEN: usize = 1024;
/// Largest descriptor that can be valid, given the bounds above.
pub const MAX_DESC_LEN: usize = MAX_HEADER_LEN + MAX_ENTRIES * (ENTRY_FIXED_LEN + MAX_NAME_LEN);

/// Lock flags. The low 16 bits must be understood by a reader: a bit it does
/// not know makes the lock invalid (a newer writer may have asked for
/// something stricter). The high 16 bits are advisory and may be ignored.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct LockFlags(pub u32);

impl LockFlags {
    /// Refuse any dependency that is not locked, including `dlopen`ed ones
    /// (as `CAH_STRICT=1` does).
    pub const STRICT: u32 = 1 << 0;
    /// Flags a reader must understand.
    pub const MUST_UNDERSTAND: u32 = 0x0000_ffff;
    /// Must-understand flags this version knows.
    pub const KNOWN: u32 = Self::STRICT;

    /// Whether the strict flag is set.
    pub fn strict(self) -> bool {
        self.0 & Self::STRICT != 0
    }
}

/// Per-entry flags: same split as [`LockFlags`]. Version 1 defines none.
pub const ENTRY_FLAGS_MUST_UNDERSTAND: u16 = 0x00ff;

/// Why a lock (or the note holding it) was refused. Small and `Copy`, with
/// a static message, so the loader can report it without allocating.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LockError {
    /// The input ends before a length it declares.
    Truncated,
    /// A version this code does not read.
    UnsupportedVersion,
    /// `header_len` below 16, above 256, or beyond the descriptor.
    BadHeaderLength,
    /// A must-understand flag this code does not know.
    UnknownFlags,
    /// More entries than [`MAX_ENTRIES`].
    TooManyEntries,
    /// `header_len + entries_len` is not the descriptor's length, or the
    /// entries do not fill `entries_len` exactly.
    LengthMismatch,
    /// A must-understand entry flag this code does not know.
    UnknownEntryFlags,
    /// An empty name or one longer than [`MAX_NAME_LEN`].
    BadNameLength,
    /// A name containing a NUL byte.
    NulInName,
    /// Names not in strictly ascending byte order (or repeated).
    NotSorted,
    /// A malformed ELF note header in the note area.
    BadNote,
    /// Two lock notes in one object.
    DuplicateNote,
    /// (Writing) one name given two different digests.
    Conflict,
}

impl LockError {
    /// A one-line description.
    pub const fn as_str(self) -> &'static str {
        match self {
            LockError::Truncated => "closure lock truncated",
            LockError::UnsupportedVersion => "closure lock has an unsupported version",
            LockError::BadHeaderLength => "closure lock header length out of range",
            LockError::UnknownFlags => "closure lock has unknown required flags",
            LockError::TooManyEntries => "closure lock has too many entries",
            LockError::LengthMismatch => "closure lock lengths are inconsistent",
            LockError::UnknownEntryFlags => "closure lock entry has unknown required flags",
            LockError::BadNameLength => "closure lock entry name is empty or too long",
            LockError::NulInName => "closure lock entry name contains NUL",
            LockError::NotSorted => "closure lock entries are not sorted or repeat a name",
            LockError::BadNote => "malformed ELF note",
            LockError::DuplicateNote => "more than one closure lock note",
            LockError::Conflict => "one name locked to two different digests",
        }
    }
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One locked dependency.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct LockEntry<'a> {
    /// The name as in `DT_NEEDED` (no NUL).
    pub name: &'a [u8],
    /// The digest of the file locked under that name.
    pub digest: Digest,
}

/// A validated lock, borrowed from the note descriptor it was parsed from.
#[derive(Clone, Copy, Debug)]
pub struct LockView<'a> {
    desc: &'a [u8],
    flags: LockFlags,
    count: usize,
    entries: &'a [u8],
}

fn u16_at(bytes: &[u8], at: usize) -> Result<u16, LockError> {
    let b = bytes.get(at..at.checked_add(2).ok_or(LockError::Truncated)?).ok_or(LockError::Truncated)?;
    Ok(u16::from_le_bytes([b[0], b[1]]))
}

fn u32_at(bytes: &[u8], at: usize) -> Result<u32, LockError> {
    let b = bytes.get(at..at.checked_add(4).ok_or(LockError::Truncated)?).ok_or(LockError::Truncated)?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Decodes the entry at the start of `bytes`; returns it and its length.
/// Checks everything about one entry except ordering.
fn entry_at(bytes: &[u8]) -> Result<(LockEntry<'_>, usize), LockError> {
    let name_len = usize::from(u16_at(bytes, 0)?);
    let entry_flags = u16_at(bytes, 2)?;
    if entry_flags & ENTRY_FLAGS_MUST_UNDERSTAND != 0 {
        return Err(LockError::UnknownEntryFlags);
    }
    if name_len == 0 || name_len > MAX_NAME_LEN {
        return Err(LockError::BadNameLength);
    }
    let digest_bytes = bytes.get(4..ENTRY_FIXED_LEN).ok_or(LockError::Truncated)?;
    let mut digest = [0u8; DIGEST_LEN];
    digest.copy_from_slice(digest_bytes);
    let len = ENTRY_FIXED_LEN + name_len;
    let name = bytes.get(ENTRY_FIXED_LEN..len).ok_or(LockError::Truncated)?;
    if name.contains(&0) {
        return Err(LockError::NulInName);
    }
    Ok((LockEntry { name, digest: Digest(digest) }, len))
}

impl<'a> LockView<'a> {
    /// Validates a note descriptor (the bytes after the note's name) and
    /// returns a view of it. Never panics, whatever `desc` holds.
    pub fn parse(desc: &'a [u8]) -> Result<LockView<'a>, LockError> {
        if desc.len() > MAX_DESC_LEN {
            return Err(LockError::LengthMismatch);
        }
        if desc.len() < HEADER_LEN {
            return Err(LockError::Truncated);
        }
        if u16_at(desc, 0)? != VERSION {
            return Err(LockError::UnsupportedVersion);
        }
        let header_len = usize::from(u16_at(desc, 2)?);
        if !(HEADER_LEN..=MAX_HEADER_LEN).contains(&header_len) || header_len > desc.len() {
            return Err(LockError::BadHeaderLength);
        }
        let flags = u32_at(desc, 4)?;
        if flags & LockFlags::MUST_UNDERSTAND & !LockFlags::KNOWN != 0 {
            return Err(LockError::UnknownFlags);
        }
        let count = u32_at(desc, 8)? as usize;
        if count > MAX_ENTRIES {
            return Err(LockError::TooManyEntries);
        }
        let entries_len = u32_at(desc, 12)? as usize;
        if header_len.checked_add(entries_len) != Some(desc.len()) {
            return Err(LockError::LengthMismatch);
        }
        let entries = desc.get(header_len..).ok_or(LockError::Truncated)?;

        // One pass over the entries checks each one, their order, and that
        // they fill `entries_len` exactly.
        let mut rest = entries;
        let mut previous: Option<&[u8]> = None;
        for _ in 0..count {
            let (entry, len) = entry_at(rest).map_err(|e| match e {
                // Running out of entry bytes before `count` entries is a
                // disagreement between the two lengths, not truncation of
                // the descriptor itself.
                LockError::Truncated => LockError::LengthMismatch,
                other => other,
            })?;
            if let Some(prev) = previous {
                if prev >= entry.name {
                    return Err(LockError::NotSorted);
                }
            }
            previous = Some(entry.name);
            rest = rest.get(len..).ok_or(LockError::LengthMismatch)?;
        }
        if !rest.is_empty() {
            return Err(LockError::LengthMismatch);
        }
        Ok(LockView { desc, flags: LockFlags(flags), count, entries })
    }

    /// The lock's flags.
    pub fn flags(&self) -> LockFlags {
        self.flags
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The whole descriptor, as parsed (what the closure id is computed
    /// over).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.desc
    }

    /// The entries in name order.
    pub fn iter(&self) -> LockIter<'a> {
        LockIter { rest: self.entries, left: self.count }
    }

    /// The digest locked for `name`, if any.
    pub fn get(&self, name: &[u8]) -> Option<Digest> {
        // `parse` checked every entry: on the way only the names are read
        // (decoding each entry whole made a look-up in a 51-library lock
        // cost 3,000 instructions, once per library at every start).
        let mut rest = self.entries;
        for _ in 0..self.count {
            let len = ENTRY_FIXED_LEN + usize::from(u16_at(rest, 0).ok()?);
            match rest.get(ENTRY_FIXED_LEN..len)?.cmp(name) {
                core::cmp::Ordering::Less => rest = rest.get(len..)?,
                core::cmp::Ordering::Equal => return entry_at(rest).ok().map(|(entry, _)| entry.digest),
                core::cmp::Ordering::Greater => return None,
            }
        }
        None
    }

    /// An owned copy, for editing.
    pub fn to_lock(&self) -> Lock {
        let mut lock = Lock::new(self.flags);
        for entry in self.iter() {
            lock.entries.insert(entry.name.to_vec(), entry.digest);
        }
        lock
    }
}

impl<'a> IntoIterator for &LockView<'a> {
    type Item = LockEntry<'a>;
    type IntoIter = LockIter<'a>;
    fn into_iter(self) -> LockIter<'a> {
        self.iter()
    }
}

/// Iterator over a [`LockView`]'s entries.
#[derive(Clone, Debug)]
pub struct LockIter<'a> {
    rest: &'a [u8],
    left: usize,
}

impl<'a> Iterator for LockIter<'a> {
    type Item = LockEntry<'a>;

    fn next(&mut self) -> Option<LockEntry<'a>> {
        if self.left == 0 {
            return None;
        }
        // The view was validated when parsed; a failure here cannot happen,
        // and would end the iteration rather than panic.
        let (entry, len) = entry_at(self.rest).ok()?;
        self.rest = self.rest.get(len..)?;
        self.left -= 1;
        Some(entry)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left))
    }
}

/// Finds the closure lock among the notes of one note area (the bytes a
/// `PT_NOTE` segment or `SHT_NOTE` section covers, with its alignment: 4 or
/// 8; anything else is treated as 4, as the gABI's readers do).
///
/// Returns `Ok(None)` if the area holds no lock note. Only the lock's own
/// note (name `"CAH"`, type [`NT_CAH_LOCK`]) is ever judged: notes of other
/// owners are skipped, whatever their contents. Where the walk cannot go on
/// (a header or size running past the area, trailing padding, another
/// tool's idea of alignment) the rest of the area is not a lock unless it
/// holds the lock note's own header bytes: then it is
/// [`LockError::BadNote`] (a lock that cannot be read is never taken for
/// no lock); otherwise the walk just ends, as glibc's and readelf's do. A
/// second lock note is [`LockError::DuplicateNote`].
pub fn find_lock(area: &[u8], align: u64) -> Result<Option<LockView<'_>>, LockError> {
    let align = if align == 8 { 8 } else { 4 };
    let mut found = None;
    let mut rest = area;
    while !rest.is_empty() {
        let Some(note) = next_note(rest, align) else {
            if holds_lock_header(rest) {
                return Err(LockError::BadNote);
            }
            break;
        };
        if note.name == NOTE_NAME && note.n_type == NT_CAH_LOCK {
            if found.is_some() {
                return Err(LockError::DuplicateNote);
            }
            found = Some(LockView::parse(note.desc)?);
        }
        // The last note's padding may be cut off by the area's end.
        rest = rest.get(note.next..).unwrap_or(&[]);
    }
    Ok(found)
}

/// One note of an area, as its header describes it.
struct Note<'a> {
    n_type: u32,
    name: &'a [u8],
    desc: &'a [u8],
    /// Where the next note starts.
    next: usize,
}

/// The note at the start of `bytes`, if its header and sizes fit.
fn next_note(bytes: &[u8], align: usize) -> Option<Note<'_>> {
    let namesz = u32_at(bytes, 0).ok()? as usize;
    let descsz = u32_at(bytes, 4).ok()? as usize;
    let n_type = u32_at(bytes, 8).ok()?;
    let name_end = 12usize.checked_add(namesz)?;
    let desc_start = round_up(name_end, align)?;
    let desc_end = desc_start.checked_add(descsz)?;
    Some(Note { n_type, name: bytes.get(12..name_end)?, desc: bytes.get(desc_start..desc_end)?, next: round_up(desc_end, align)? })
}

/// Whether `bytes` contain what starts a lock note: the type word followed
/// by the owner name (`n_type`, then `"CAH\0"`), at a 4-byte boundary.
fn holds_lock_header(bytes: &[u8]) -> bool {
    let mut sig = [0u8; 8];
    sig[..4].copy_from_slice(&NT_CAH_LOCK.to_le_bytes());
    sig[4..].copy_from_slice(NOTE_NAME);
    bytes.windows(8).enumerate().any(|(i, w)| i % 4 == 0 && w == sig)
}

fn round_up(n: usize, align: usize) -> Option<usize> {
    Some(n.checked_add(align - 1)? & !(align - 1))
}

/// An owned lock, for building and editing (`cah patch`).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Lock {
    /// The flags to write.
    pub flags: LockFlags,
    entries: BTreeMap<Vec<u8>, Digest>,
}

impl Lock {
    /// An empty lock with `flags`.
    pub fn new(flags: LockFlags) -> Lock {
        Lock { flags, entries: BTreeMap::new() }
    }

    /// Locks `name` to `digest`. The same pair twice is fine; the same name
    /// with another digest is [`LockError::Conflict`] (and leaves the lock
    /// as it was).
    pub fn insert(&mut self, name: &[u8], digest: Digest) -> Result<(), LockError> {
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err(LockError::BadNameLength);
        }
        if name.contains(&0) {
            return Err(LockError::NulInName);
        }
        match self.entries.get(name) {
            Some(d) if *d == digest => return Ok(()),
            Some(_) => return Err(LockError::Conflict),
            None => {}
        }
        if self.entries.len() >= MAX_ENTRIES {
            return Err(LockError::TooManyEntries);
        }
        self.entries.insert(name.to_vec(), digest);
        Ok(())
    }

    /// The digest locked for `name`.
    pub fn get(&self, name: &[u8]) -> Option<Digest> {
        self.entries.get(name).copied()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries in name order.
    pub fn iter(&self) -> impl Iterator<Item = LockEntry<'_>> {
        self.entries.iter().map(|(name, digest)| LockEntry { name, digest: *digest })
    }

    /// The note descriptor (canonical: one encoding per set of entries).
    pub fn to_desc(&self) -> Vec<u8> {
        let entries_len: usize = self.entries.keys().map(|name| ENTRY_FIXED_LEN + name.len()).sum();
        let mut out = Vec::with_capacity(HEADER_LEN + entries_len);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(HEADER_LEN as u16).to_le_bytes());
        out.extend_from_slice(&self.flags.0.to_le_bytes());
        // Bounded by MAX_ENTRIES and MAX_NAME_LEN at insertion.
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        out.extend_from_slice(&(entries_len as u32).to_le_bytes());
        for (name, digest) in &self.entries {
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(digest.as_bytes());
            out.extend_from_slice(name);
        }
        out
    }

    /// The whole ELF note (header, name, descriptor, padding), 4-byte
    /// aligned, ready to be the contents of an `SHT_NOTE` section.
    pub fn to_note(&self) -> Vec<u8> {
        let desc = self.to_desc();
        let mut out = Vec::with_capacity(16 + desc.len() + 3);
        out.extend_from_slice(&(NOTE_NAME.len() as u32).to_le_bytes());
        out.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        out.extend_from_slice(&NT_CAH_LOCK.to_le_bytes());
        out.extend_from_slice(NOTE_NAME);
        out.extend_from_slice(&desc);
        while out.len() % 4 != 0 {
            out.push(0);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::digest::hash;
    use alloc::vec;

    fn sample() -> Lock {
        let mut lock = Lock::new(LockFlags(LockFlags::STRICT));
        lock.insert(b"libc.so.6", hash(b"libc")).unwrap();
        lock.insert(b"libtinfo.so.6", hash(b"tinfo")).unwrap();
        lock.insert(b"libm.so.6", hash(b"m")).unwrap();
        lock
    }

    #[test]
    fn round_trip() {
        let lock = sample();
        let desc = lock.to_desc();
        let view = LockView::parse(&desc).unwrap();
        assert_eq!(view.len(), 3);
        assert!(view.flags().strict());
        let names: Vec<&[u8]> = view.iter().map(|e| e.name).collect();
        assert_eq!(names, vec![&b"libc.so.6"[..], b"libm.so.6", b"libtinfo.so.6"]);
        assert_eq!(view.get(b"libm.so.6"), Some(hash(b"m")));
        assert_eq!(view.get(b"libz.so.1"), None);
        assert_eq!(view.get(b"liba"), None);
        assert_eq!(view.to_lock(), lock);
        assert_eq!(view.as_bytes(), &desc[..]);
    }

    #[test]
    fn empty_lock_is_valid() {
        let desc = Lock::default().to_desc();
        assert_eq!(desc.len(), HEADER_LEN);
        let view = LockView::parse(&desc).unwrap();
        assert!(view.is_empty());
        assert_eq!(view.iter().count(), 0);
    }

    #[test]
    fn insert_rules() {
        let mut lock = sample();
        assert_eq!(lock.insert(b"libc.so.6", hash(b"libc")), Ok(()));
        assert_eq!(lock.insert(b"libc.so.6", hash(b"other")), Err(LockError::Conflict));
        assert_eq!(lock.get(b"libc.so.6"), Some(hash(b"libc")));
        assert_eq!(lock.insert(b"", hash(b"x")), Err(LockError::BadNameLength));
        assert_eq!(lock.insert(b"a\0b", hash(b"x")), Err(LockError::NulInName));
        assert_eq!(lock.insert(&[b'a'; MAX_NAME_LEN + 1], hash(b"x")), Err(LockError::BadNameLength));
        assert!(lock.insert(&[b'a'; MAX_NAME_LEN], hash(b"x")).is_ok());
    }

    #[test]
    fn note_framing() {
        let lock = sample();
        let note = lock.to_note();
        assert_eq!(note.len() % 4, 0);
        assert_eq!(&note[12..16], NOTE_NAME);
        let found = find_lock(&note, 4).unwrap().unwrap();
        assert_eq!(found.to_lock(), lock);

        // Among other notes, with 8-byte alignment and a GNU note first.
        let mut area = Vec::new();
        area.extend_from_slice(&4u32.to_le_bytes());
        area.extend_from_slice(&3u32.to_le_bytes());
        area.extend_from_slice(&3u32.to_le_bytes());
        area.extend_from_slice(b"GNU\0");
        area.extend_from_slice(&[1, 2, 3, 0, 0, 0, 0, 0]);
        let desc = lock.to_desc();
        area.extend_from_slice(&4u32.to_le_bytes());
        area.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        area.extend_from_slice(&NT_CAH_LOCK.to_le_bytes());
        area.extend_from_slice(NOTE_NAME);
        area.extend_from_slice(&desc);
        assert_eq!(find_lock(&area, 8).unwrap().unwrap().to_lock(), lock);
        assert_eq!(find_lock(&[], 4).unwrap().map(|v| v.len()), None);
        // A lock cut short is an error, never "no lock" ...
        assert_eq!(find_lock(&area[..area.len() - 4], 8).unwrap_err(), LockError::BadNote);
        assert_eq!(find_lock(&area[..40], 8).unwrap_err(), LockError::BadNote);
        // ... but another owner's note that cannot be walked past is not a
        // lock at all (an unlocked program must still run).
        assert!(find_lock(&area[..16], 8).unwrap().is_none());

        // Two lock notes are refused.
        let mut two = note.clone();
        two.extend_from_slice(&note);
        assert_eq!(find_lock(&two, 4).unwrap_err(), LockError::DuplicateNote);

        // Another owner's note of the same type is not ours.
        let mut other = note.clone();
        other[12..15].copy_from_slice(b"CAX");
        assert!(find_lock(&other, 4).unwrap().is_none());
    }

    #[test]
    fn unrelated_notes_are_never_a_bad_lock() {
        let gnu = |descsz: u32, n_type: u32| {
            let mut n = Vec::new();
            n.extend_from_slice(&4u32.to_le_bytes());
            n.extend_from_slice(&descsz.to_le_bytes());
            n.extend_from_slice(&n_type.to_le_bytes());
            n.extend_from_slice(b"GNU\0");
            n.extend_from_slice(&vec![0xab; descsz as usize]);
            n
        };
        // A build id followed by padding zeros, a stray byte, or a note
        // whose size runs past the area; another owner's note of the lock's
        // type; a name that is not NUL-terminated; sizes near u32::MAX.
        let mut areas = Vec::new();
        let mut padded = gnu(20, 3);
        padded.extend_from_slice(&[0; 4]);
        areas.push(padded);
        let mut stray = gnu(20, 3);
        stray.push(7);
        areas.push(stray);
        let mut long = gnu(20, 3);
        long.extend_from_slice(&gnu(64, 1)[..30]);
        areas.push(long);
        areas.push(gnu(8, NT_CAH_LOCK));
        let mut odd = gnu(4, 5);
        odd[12..16].copy_from_slice(b"ABCD");
        areas.push(odd);
        let mut huge = gnu(4, 1);
        huge[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        areas.push(huge.clone());
        huge[0..4].copy_from_slice(&4u32.to_le_bytes());
        huge[4..8].copy_from_slice(&(u32::MAX - 3).to_le_bytes());
        areas.push(huge);
        for area in &areas {
            for align in [4, 8] {
                assert_eq!(find_lock(area, align).map(|l| l.is_some()), Ok(false), "{area:02x?} align {align}");
            }
        }
        // The same, with a real lock before them: found.
        let lock = sample();
        for area in &areas {
            let mut both = lock.to_note();
            both.extend_from_slice(area);
            assert_eq!(find_lock(&both, 4).unwrap().unwrap().to_lock(), lock);
        }
    }

    #[test]
    fn specific_rejections() {
        let good = sample().to_desc();
        let patch = |at: usize, bytes: &[u8]| {
            let mut d = good.clone();
            d[at..at + bytes.len()].copy_from_slice(bytes);
            d
        };
        assert_eq!(LockView::parse(&good[..10]).unwrap_err(), LockError::Truncated);
        assert_eq!(LockView::parse(&patch(0, &2u16.to_le_bytes())).unwrap_err(), LockError::UnsupportedVersion);
        assert_eq!(LockView::parse(&patch(2, &8u16.to_le_bytes())).unwrap_err(), LockError::BadHeaderLength);
        assert_eq!(LockView::parse(&patch(4, &2u32.to_le_bytes())).unwrap_err(), LockError::UnknownFlags);
        // Advisory flags are accepted.
        assert!(LockView::parse(&patch(4, &0x8000_0001u32.to_le_bytes())).is_ok());
        assert_eq!(LockView::parse(&patch(8, &5000u32.to_le_bytes())).unwrap_err(), LockError::TooManyEntries);
        assert_eq!(LockView::parse(&patch(8, &2u32.to_le_bytes())).unwrap_err(), LockError::LengthMismatch);
        assert_eq!(LockView::parse(&patch(8, &4u32.to_le_bytes())).unwrap_err(), LockError::LengthMismatch);
        assert_eq!(LockView::parse(&patch(12, &1u32.to_le_bytes())).unwrap_err(), LockError::LengthMismatch);
        assert_eq!(LockView::parse(&good[..good.len() - 1]).unwrap_err(), LockError::LengthMismatch);
        assert_eq!(LockView::parse(&patch(HEADER_LEN + 2, &1u16.to_le_bytes())).unwrap_err(), LockError::UnknownEntryFlags);
        assert!(LockView::parse(&patch(HEADER_LEN + 2, &0x100u16.to_le_bytes())).is_ok());
        assert_eq!(LockView::parse(&patch(HEADER_LEN, &0u16.to_le_bytes())).unwrap_err(), LockError::BadNameLength);
        assert_eq!(LockView::parse(&patch(HEADER_LEN + ENTRY_FIXED_LEN, b"\0")).unwrap_err(), LockError::NulInName);
        // "libc.so.6" -> "libz.so.6" sorts after "libm.so.6".
        assert_eq!(LockView::parse(&patch(HEADER_LEN + ENTRY_FIXED_LEN + 3, b"z")).unwrap_err(), LockError::NotSorted);
        // A longer header is accepted and its extra bytes ignored.
        let mut longer = good[..HEADER_LEN].to_vec();
        longer[2..4].copy_from_slice(&20u16.to_le_bytes());
        longer.extend_from_slice(&[9, 9, 9, 9]);
        longer.extend_from_slice(&good[HEADER_LEN..]);
        assert_eq!(LockView::parse(&longer).unwrap().to_lock(), sample());
    }

    /// A small deterministic generator (xorshift), so the fuzz loops need
    /// no crates and replay identically.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// Whatever the bytes, parsing returns (never panics); whatever it
    /// accepts iterates to exactly `len()` entries, finds each by name, and
    /// (when written canonically: 16-byte header, no advisory entry flags)
    /// re-encodes to the same bytes.
    fn check_any(bytes: &[u8]) {
        if let Ok(view) = LockView::parse(bytes) {
            assert_eq!(view.iter().count(), view.len());
            for e in view.iter() {
                assert_eq!(view.get(e.name), Some(e.digest));
            }
            let reencoded = view.to_lock().to_desc();
            let header_canonical = usize::from(u16::from_le_bytes([bytes[2], bytes[3]])) == HEADER_LEN;
            if header_canonical && reencoded.len() == bytes.len() {
                let mut at = HEADER_LEN;
                let mut flags_clear = true;
                for e in view.iter() {
                    flags_clear &= bytes[at + 2] == 0 && bytes[at + 3] == 0;
                    at += ENTRY_FIXED_LEN + e.name.len();
                }
                if flags_clear {
                    assert_eq!(reencoded, bytes);
                }
            }
        }
        let _ = find_lock(bytes, 4);
        let _ = find_lock(bytes, 8);
    }

    #[test]
    fn fuzz_random_bytes_never_panic() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            let len = rng.below(200);
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            check_any(&bytes);
        }
    }

    #[test]
    fn fuzz_mutated_locks_never_panic() {
        let mut rng = Rng(42);
        let base_desc = sample().to_desc();
        let base_note = sample().to_note();
        for round in 0..50_000 {
            let mut bytes = if round % 2 == 0 { base_desc.clone() } else { base_note.clone() };
            for _ in 0..1 + rng.below(4) {
                match rng.below(5) {
                    0 => {
                        let i = rng.below(bytes.len());
                        bytes[i] ^= 1 << rng.below(8);
                    }
                    1 => {
                        let i = rng.below(bytes.len());
                        bytes[i] = rng.next() as u8;
                    }
                    2 => {
                        let cut = rng.below(bytes.len() + 1);
                        bytes.truncate(cut);
                    }
                    3 => {
                        let i = rng.below(bytes.len() + 1);
                        bytes.insert(i, rng.next() as u8);
                    }
                    _ => {
                        // Interesting length values at a 4-byte boundary.
                        let i = rng.below(bytes.len() / 4 + 1) * 4;
                        let v: u32 = [0, 1, 0xffff, 0xffff_ffff, 0x8000_0000, 16][rng.below(6)];
                        if i + 4 <= bytes.len() {
                            bytes[i..i + 4].copy_from_slice(&v.to_le_bytes());
                        }
                    }
                }
                if bytes.is_empty() {
                    break;
                }
            }
            check_any(&bytes);
        }
    }

    #[test]
    fn canonical_encoding_round_trips_random_locks() {
        let mut rng = Rng(7);
        for _ in 0..500 {
            let mut lock = Lock::new(LockFlags((rng.next() as u32) & LockFlags::STRICT));
            for _ in 0..rng.below(20) {
                let len = 1 + rng.below(40);
                let name: Vec<u8> = (0..len).map(|_| 1 + (rng.next() % 255) as u8).collect();
                let digest = hash(&name);
                lock.insert(&name, digest).unwrap();
            }
            let desc = lock.to_desc();
            let view = LockView::parse(&desc).unwrap();
            assert_eq!(view.to_lock(), lock);
            assert_eq!(view.to_lock().to_desc(), desc);
            let note = lock.to_note();
            assert_eq!(find_lock(&note, 4).unwrap().unwrap().to_lock(), lock);
        }
    }
}
