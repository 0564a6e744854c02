//! The per-inode hash cache: a table of fixed-size slots, shared between
//! processes through a `MAP_SHARED` mapping of a file under `/run`, that
//! remembers the BLAKE3 digest of a file for as long as the file's identity
//! ([`FileIdentity`]) shows it cannot have changed.
//!
//! `docs/hash-cache.md` specifies the bytes. This module is the only code
//! that reads or writes them; it works on a `&[AtomicU64]` so that the very
//! same code runs on the loader's mapping, on `cah cache`'s `memmap2`
//! mapping, and on a `Vec` in host tests.
//!
//! # Concurrency
//!
//! Any number of processes insert and look up at once, with no global lock
//! and no waiting:
//!
//! - each slot has a sequence word. A writer claims a slot by moving it from
//!   an even value `s` to `s + 1` with a compare-and-swap, writes the slot,
//!   and publishes it by storing `s + 2`. A writer that finds a slot odd
//!   (being written) passes it by; it never waits.
//! - a reader reads the sequence word, the slot, and the sequence word
//!   again; if the two differ or are odd it treats the slot as busy (a miss).
//! - every slot carries a checksum (a keyed BLAKE3 of its index, its
//!   sequence value and its contents). A slot whose checksum does not match
//!   is a miss and may be overwritten. This is what makes a slot torn by a
//!   writer that died half-way, a file scribbled on by something that does
//!   not follow the protocol, or a stray bit flip a miss rather than a false
//!   hit.
//!
//! A writer that dies between claiming and publishing leaves its slot odd
//! ("busy") until `cah cache clear`; the other slots of the probe window
//! take its place, so the cost is one slot.
//!
//! # Memory model
//!
//! Everything is an atomic access (no data race in the Rust sense). Only
//! `Relaxed` and `Acquire` loads are made on a cache opened read-only, which
//! is what Rust allows on memory mapped without write permission (the root
//! cache, for ordinary users).
//!
//! # Placement
//!
//! An identity's home slot is derived from `(dev, ino)`; it may live in any
//! of the [`PROBE`] slots from there on (wrapping). An insert reuses the slot
//! already holding the same inode, else the first empty or corrupt slot,
//! else evicts the entry with the oldest insertion generation.
//! [`reference::Model`] states the same rules in the plainest terms and the
//! tests hold the two to each other.

use core::sync::atomic::{fence, AtomicU64, Ordering};

use super::digest::{keyed_hash, Digest, DIGEST_LEN};
use super::identity::FileIdentity;

/// `"CAHCACHE"` read as a little-endian word; also tells a reader of the
/// other byte order that the file is not for it.
pub const MAGIC: u64 = u64::from_le_bytes(*b"CAHCACHE");
/// Format version.
pub const VERSION: u64 = 1;
/// Words (8 bytes) in the header.
pub const HEADER_WORDS: usize = 16;
/// Words in one slot.
pub const SLOT_WORDS: usize = 12;
/// Slots an identity may occupy, starting at its home slot.
pub const PROBE: usize = 8;
/// Fewest slots a cache file may have.
pub const MIN_SLOTS: usize = 8;
/// Most slots a cache file may have (a 96 MiB file).
pub const MAX_SLOTS: usize = 1 << 20;
/// Slots in a cache file created with no size given (384 KiB).
pub const DEFAULT_SLOTS: usize = 4096;

/// The word that records the layout constants above, so a reader built
/// with other constants refuses the file instead of misreading it.
pub const LAYOUT: u64 = (HEADER_WORDS as u64) | ((SLOT_WORDS as u64) << 16) | ((PROBE as u64) << 32);

/// Key of the keyed BLAKE3 used for placement and checksums (domain
/// separation from content digests; it is not a secret).
pub const CHECK_KEY: &[u8; 32] = b"ld-cah hash cache v1 slot check.";

/// Domain word of the home-slot hash.
pub const DOMAIN_HOME: u64 = 1;
/// Domain word of a slot checksum.
pub const DOMAIN_SLOT: u64 = 2;
/// Domain word of the header checksum.
pub const DOMAIN_HEADER: u64 = 3;

// Header word indices.
const H_MAGIC: usize = 0;
const H_VERSION: usize = 1;
const H_SLOTS: usize = 2;
const H_LAYOUT: usize = 3;
const H_CHECK: usize = 4;
const H_GENERATION: usize = 5;
// Word 6 counted hits until a warm start was made to write nothing to the
// shared file; it is reserved now (older files may hold a number there).
const H_HITS_RETIRED: usize = 6;
const H_MISSES: usize = 7;
const H_INSERTS: usize = 8;
const H_EVICTIONS: usize = 9;
const H_FAILURES: usize = 10;

// Slot word indices.
const S_SEQ: usize = 0;
const S_DEV: usize = 1;
const S_INO: usize = 2;
const S_SIZE: usize = 3;
const S_MTIME: usize = 4;
const S_CTIME: usize = 5;
const S_DIGEST: usize = 6;
const S_GENERATION: usize = 10;
const S_CHECK: usize = 11;
/// Words after the sequence word.
const BODY_WORDS: usize = SLOT_WORDS - 1;

/// How many times a reader re-reads a slot that changed under it, and a
/// writer retries an insert whose chosen slot was taken first.
const RETRIES: usize = 3;

/// Why a cache region cannot be used, or an insert did not happen.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CacheError {
    /// The region is smaller than its header says it must be.
    TooSmall,
    /// Not a cache file (or one of the other byte order).
    BadMagic,
    /// A version this code does not read.
    BadVersion,
    /// Slot count not a power of two in `MIN_SLOTS..=MAX_SLOTS`.
    BadSlotCount,
    /// Layout constants differ from this code's.
    BadLayout,
    /// The header's checksum does not match.
    BadHeaderChecksum,
    /// Insert or clear on a cache opened read-only.
    ReadOnly,
    /// Every slot the identity may occupy is being written.
    Busy,
    /// Other writers took the chosen slot on every try.
    Contended,
}

impl CacheError {
    /// A one-line description.
    pub const fn as_str(self) -> &'static str {
        match self {
            CacheError::TooSmall => "hash cache file is too small",
            CacheError::BadMagic => "not a hash cache file",
            CacheError::BadVersion => "hash cache file has an unsupported version",
            CacheError::BadSlotCount => "hash cache slot count out of range",
            CacheError::BadLayout => "hash cache layout differs from this build",
            CacheError::BadHeaderChecksum => "hash cache header checksum mismatch",
            CacheError::ReadOnly => "hash cache is read-only",
            CacheError::Busy => "hash cache slots busy",
            CacheError::Contended => "hash cache slots contended",
        }
    }
}

impl core::fmt::Display for CacheError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether this process may write the mapping.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Access {
    /// Only loads are made (the mapping may be `PROT_READ`).
    ReadOnly,
    /// Inserts and statistics counters are written.
    ReadWrite,
}

/// What an insert did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum InsertOutcome {
    /// The same identity and digest were already there; nothing written.
    AlreadyPresent,
    /// Written over the same inode's earlier (stale) entry.
    Replaced,
    /// Written into an empty or corrupt slot.
    Inserted,
    /// Written over another file's entry (the oldest in the window).
    Evicted,
}

/// A valid entry.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CacheEntry {
    /// The file's identity when it was hashed.
    pub identity: FileIdentity,
    /// Its digest.
    pub digest: Digest,
    /// When it was inserted, counted in inserts since the file was made.
    pub generation: u64,
}

/// What a slot holds, as seen at one instant.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SlotState {
    /// Never written, or cleared.
    Empty,
    /// Being written (or left odd by a writer that died).
    Busy,
    /// A checksummed entry.
    Valid(CacheEntry),
    /// Contents that fail their checksum.
    Corrupt,
}

/// The header's counters. They are advisory: updated with relaxed atomic
/// additions by writable users only.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct CacheStats {
    /// Slots in the table.
    pub slot_count: u64,
    /// Inserts ever written (also the newest entry's generation).
    pub generation: u64,
    /// Lookups that found nothing (hits are not counted: they write nothing).
    pub misses: u64,
    /// Inserts written.
    pub inserts: u64,
    /// Inserts that displaced another file's entry.
    pub evictions: u64,
    /// Inserts given up (all candidate slots busy or contended).
    pub insert_failures: u64,
}

/// Words a cache of `slot_count` slots occupies, if `slot_count` is valid.
pub fn words_for(slot_count: usize) -> Option<usize> {
    if !valid_slot_count(slot_count as u64) {
        return None;
    }
    HEADER_WORDS.checked_add(slot_count.checked_mul(SLOT_WORDS)?)
}

/// Bytes a cache of `slot_count` slots occupies (the file size to create).
pub fn bytes_for(slot_count: usize) -> Option<usize> {
    words_for(slot_count)?.checked_mul(8)
}

fn valid_slot_count(n: u64) -> bool {
    n.is_power_of_two() && (MIN_SLOTS as u64..=MAX_SLOTS as u64).contains(&n)
}

/// The keyed hash of a domain word followed by `words`, all little-endian,
/// truncated to its first 8 bytes (little-endian). At most 15 words.
pub fn word_hash(domain: u64, words: &[u64]) -> u64 {
    let mut buf = [0u8; 8 * 16];
    let mut len = 0;
    for w in core::iter::once(&domain).chain(words.iter()).take(16) {
        if let Some(dst) = buf.get_mut(len..len + 8) {
            dst.copy_from_slice(&w.to_le_bytes());
            len += 8;
        }
    }
    let d = keyed_hash(CHECK_KEY, buf.get(..len).unwrap_or(&buf));
    let b = d.as_bytes();
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// The home slot of an inode in a table of `slot_count` (a power of two).
pub fn home_slot(dev: u64, ino: u64, slot_count: usize) -> usize {
    (word_hash(DOMAIN_HOME, &[dev, ino]) as usize) & (slot_count.wrapping_sub(1))
}

/// The checksum of slot `index` published with sequence value `seq`, over
/// the words after the sequence word up to (not including) the checksum.
pub fn slot_checksum(index: usize, seq: u64, body: &[u64; BODY_WORDS - 1]) -> u64 {
    let mut words = [0u64; BODY_WORDS + 1];
    words[0] = index as u64;
    words[1] = seq;
    words[2..].copy_from_slice(body);
    word_hash(DOMAIN_SLOT, &words)
}

fn header_checksum(magic: u64, version: u64, slots: u64, layout: u64) -> u64 {
    word_hash(DOMAIN_HEADER, &[magic, version, slots, layout])
}

fn digest_words(d: &Digest) -> [u64; 4] {
    let mut out = [0u64; 4];
    for (w, chunk) in out.iter_mut().zip(d.as_bytes().chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        *w = u64::from_le_bytes(b);
    }
    out
}

fn digest_from_words(w: &[u64]) -> Digest {
    let mut out = [0u8; DIGEST_LEN];
    for (chunk, word) in out.chunks_exact_mut(8).zip(w.iter()) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    Digest(out)
}

/// The slot body (words 1..=10) for an entry.
fn encode_body(id: &FileIdentity, digest: &Digest, generation: u64) -> [u64; BODY_WORDS - 1] {
    let d = digest_words(digest);
    [id.dev, id.ino, id.size, id.mtime_ns as u64, id.ctime_ns as u64, d[0], d[1], d[2], d[3], generation]
}

/// The header words of a region, as a fixed-size array (so that every
/// header access below is checked at compile time).
fn header_of(words: &[AtomicU64]) -> Result<&[AtomicU64; HEADER_WORDS], CacheError> {
    words.get(..HEADER_WORDS).and_then(|h| h.try_into().ok()).ok_or(CacheError::TooSmall)
}

/// The slot count of a cache whose header words are `h`, if this code
/// reads it (the checks of [`Cache::open`], on a copy of the header).
pub fn check_header(h: &[u64; HEADER_WORDS]) -> Result<usize, CacheError> {
    if h[H_MAGIC] != MAGIC {
        return Err(CacheError::BadMagic);
    }
    if h[H_VERSION] != VERSION {
        return Err(CacheError::BadVersion);
    }
    if h[H_CHECK] != header_checksum(h[H_MAGIC], h[H_VERSION], h[H_SLOTS], h[H_LAYOUT]) {
        return Err(CacheError::BadHeaderChecksum);
    }
    if h[H_LAYOUT] != LAYOUT {
        return Err(CacheError::BadLayout);
    }
    if !valid_slot_count(h[H_SLOTS]) {
        return Err(CacheError::BadSlotCount);
    }
    Ok(h[H_SLOTS] as usize)
}

/// The slots `id` may occupy in a table of `slot_count` (a power of two),
/// in probe order: its home slot and the ones after it, wrapping.
pub fn window(id: &FileIdentity, slot_count: usize) -> impl Iterator<Item = usize> {
    let mask = slot_count.wrapping_sub(1);
    let home = home_slot(id.dev, id.ino, slot_count);
    (0..PROBE.min(slot_count)).map(move |k| (home + k) & mask)
}

/// The digest for exactly `id` among copies of slots made without the
/// reader's protocol, as a `pread` of the file makes them: `slots` yields
/// each slot's index and words. A copy torn by a concurrent writer shows
/// the writer's odd sequence value or fails its checksum (which covers the
/// sequence value too), so it is passed by: this returns only a digest
/// that [`Cache::lookup`] could have returned at some instant.
pub fn lookup_copies<'s>(id: &FileIdentity, slots: impl Iterator<Item = (usize, &'s [u64; SLOT_WORDS])>) -> Option<Digest> {
    slots.filter(|(_, w)| w[S_SEQ] & 1 == 0).find_map(|(index, w)| {
        let mut body = [0u64; BODY_WORDS];
        body.copy_from_slice(&w[1..]);
        Image { seq: w[S_SEQ], body }.hit(index, id)
    })
}

/// A consistent copy of one slot: its sequence value and the other words.
#[derive(Clone, Copy)]
struct Image {
    seq: u64,
    body: [u64; BODY_WORDS],
}

impl Image {
    fn key_matches(&self, id: &FileIdentity) -> bool {
        let b = &self.body;
        b[S_DEV - 1] == id.dev
            && b[S_INO - 1] == id.ino
            && b[S_SIZE - 1] == id.size
            && b[S_MTIME - 1] == id.mtime_ns as u64
            && b[S_CTIME - 1] == id.ctime_ns as u64
    }

    /// The digest, if this is a valid entry for exactly `id`.
    fn hit(&self, index: usize, id: &FileIdentity) -> Option<Digest> {
        // Cheap key test first; the checksum only for a candidate.
        if !self.key_matches(id) {
            return None;
        }
        match self.classify(index) {
            SlotState::Valid(entry) if entry.identity == *id => Some(entry.digest),
            _ => None,
        }
    }

    fn classify(&self, index: usize) -> SlotState {
        if self.body.iter().all(|&w| w == 0) {
            return SlotState::Empty;
        }
        let mut covered = [0u64; BODY_WORDS - 1];
        covered.copy_from_slice(&self.body[..BODY_WORDS - 1]);
        if slot_checksum(index, self.seq, &covered) != self.body[S_CHECK - 1] {
            return SlotState::Corrupt;
        }
        let b = &self.body;
        SlotState::Valid(CacheEntry {
            identity: FileIdentity {
                dev: b[S_DEV - 1],
                ino: b[S_INO - 1],
                size: b[S_SIZE - 1],
                mtime_ns: b[S_MTIME - 1] as i64,
                ctime_ns: b[S_CTIME - 1] as i64,
            },
            digest: digest_from_words(&b[S_DIGEST - 1..S_DIGEST - 1 + 4]),
            generation: b[S_GENERATION - 1],
        })
    }
}

enum Read {
    Busy,
    Image(Image),
}

/// A hash cache over a region of words (see the module documentation).
#[derive(Clone, Copy, Debug)]
pub struct Cache<'a> {
    header: &'a [AtomicU64; HEADER_WORDS],
    slots: &'a [AtomicU64],
    slot_count: usize,
    access: Access,
}

impl<'a> Cache<'a> {
    /// Writes a fresh, empty cache of `slot_count` slots into `words`
    /// (which must be at least [`words_for`] long) and returns it.
    ///
    /// Only for a region no other process uses yet: create the file under a
    /// temporary name, format it, then rename it into place.
    pub fn format(words: &'a [AtomicU64], slot_count: usize) -> Result<Cache<'a>, CacheError> {
        let need = words_for(slot_count).ok_or(CacheError::BadSlotCount)?;
        let region = words.get(..need).ok_or(CacheError::TooSmall)?;
        for w in region {
            w.store(0, Ordering::Relaxed);
        }
        let region = header_of(words)?;
        let slots = slot_count as u64;
        region[H_VERSION].store(VERSION, Ordering::Relaxed);
        region[H_SLOTS].store(slots, Ordering::Relaxed);
        region[H_LAYOUT].store(LAYOUT, Ordering::Relaxed);
        region[H_CHECK].store(header_checksum(MAGIC, VERSION, slots, LAYOUT), Ordering::Relaxed);
        // The magic last: a reader that sees it sees the rest.
        region[H_MAGIC].store(MAGIC, Ordering::Release);
        Cache::open(words, Access::ReadWrite)
    }

    /// Validates the header of `words` and returns the cache in it.
    pub fn open(words: &'a [AtomicU64], access: Access) -> Result<Cache<'a>, CacheError> {
        let header = header_of(words)?;
        let mut copy = [0u64; HEADER_WORDS];
        // The magic first, with acquire: a reader that sees it sees the
        // rest of a freshly formatted header.
        copy[H_MAGIC] = header[H_MAGIC].load(Ordering::Acquire);
        for (dst, src) in copy.iter_mut().zip(header.iter()).skip(1) {
            *dst = src.load(Ordering::Relaxed);
        }
        let slot_count = check_header(&copy)?;
        let need = words_for(slot_count).ok_or(CacheError::BadSlotCount)?;
        let slot_words = words.get(HEADER_WORDS..need).ok_or(CacheError::TooSmall)?;
        Ok(Cache { header, slots: slot_words, slot_count, access })
    }

    /// Number of slots.
    pub fn slot_count(&self) -> usize {
        self.slot_count
    }

    /// Whether inserts are allowed.
    pub fn access(&self) -> Access {
        self.access
    }

    fn slot_words(&self, index: usize) -> Option<&'a [AtomicU64; SLOT_WORDS]> {
        let start = index.checked_mul(SLOT_WORDS)?;
        self.slots.get(start..start.checked_add(SLOT_WORDS)?)?.try_into().ok()
    }

    fn counter(&self, word: usize) -> u64 {
        self.header.get(word).map_or(0, |w| w.load(Ordering::Relaxed))
    }

    fn count(&self, word: usize) {
        if self.access == Access::ReadWrite {
            if let Some(w) = self.header.get(word) {
                w.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn read(&self, index: usize) -> Read {
        let Some(slot) = self.slot_words(index) else {
            return Read::Busy;
        };
        for _ in 0..RETRIES {
            let s1 = slot[S_SEQ].load(Ordering::Acquire);
            if s1 & 1 == 1 {
                return Read::Busy;
            }
            let mut body = [0u64; BODY_WORDS];
            for (dst, src) in body.iter_mut().zip(slot[1..].iter()) {
                *dst = src.load(Ordering::Relaxed);
            }
            // Orders the body loads before the second sequence load: if any
            // of them saw a newer writer's store, that writer's odd
            // sequence value is visible below (its release fence pairs
            // with this acquire fence).
            fence(Ordering::Acquire);
            let s2 = slot[S_SEQ].load(Ordering::Relaxed);
            if s1 == s2 {
                return Read::Image(Image { seq: s1, body });
            }
        }
        Read::Busy
    }

    /// What slot `index` holds now (for `cah cache verify` and tests).
    pub fn slot(&self, index: usize) -> SlotState {
        match self.read(index) {
            Read::Busy => SlotState::Busy,
            Read::Image(image) => image.classify(index),
        }
    }

    /// The digest cached for exactly this identity, if a valid entry holds
    /// it. Never returns a digest that was not inserted for `id`.
    pub fn lookup(&self, id: &FileIdentity) -> Option<Digest> {
        let found = window(id, self.slot_count).find_map(|index| match self.read(index) {
            Read::Image(image) => image.hit(index, id),
            Read::Busy => None,
        });
        // No counter for a hit: a hit is a warm start, and a warm start
        // writes nothing to the shared file (no dirty page, no cache line
        // bounced between processes).
        if found.is_none() {
            self.count_miss();
        }
        found
    }

    /// Counts a lookup that found nothing (in a writable cache only).
    pub fn count_miss(&self) {
        self.count(H_MISSES);
    }

    /// Records that the file with identity `id` has digest `digest`.
    ///
    /// Lock-free; gives up (with [`CacheError::Busy`] or
    /// [`CacheError::Contended`]) rather than wait. A failed insert only
    /// costs a later re-hash.
    pub fn insert(&self, id: &FileIdentity, digest: &Digest) -> Result<InsertOutcome, CacheError> {
        if self.access != Access::ReadWrite {
            return Err(CacheError::ReadOnly);
        }
        for _ in 0..RETRIES {
            // Choose a slot from one look at the window.
            let mut same_inode: Option<(usize, u64, CacheEntry)> = None;
            let mut free: Option<(usize, u64)> = None;
            let mut oldest: Option<(usize, u64, u64)> = None;
            for index in window(id, self.slot_count) {
                let Read::Image(image) = self.read(index) else { continue };
                match image.classify(index) {
                    SlotState::Valid(entry) if entry.identity.same_inode(id) => {
                        if same_inode.is_none() {
                            same_inode = Some((index, image.seq, entry));
                        }
                    }
                    SlotState::Valid(entry) => {
                        if oldest.is_none_or(|(_, _, g)| entry.generation < g) {
                            oldest = Some((index, image.seq, entry.generation));
                        }
                    }
                    SlotState::Empty | SlotState::Corrupt => {
                        if free.is_none() {
                            free = Some((index, image.seq));
                        }
                    }
                    SlotState::Busy => {}
                }
            }
            let (index, seq, outcome) = if let Some((index, seq, entry)) = same_inode {
                if entry.identity == *id && entry.digest == *digest {
                    return Ok(InsertOutcome::AlreadyPresent);
                }
                (index, seq, InsertOutcome::Replaced)
            } else if let Some((index, seq)) = free {
                (index, seq, InsertOutcome::Inserted)
            } else if let Some((index, seq, _)) = oldest {
                (index, seq, InsertOutcome::Evicted)
            } else {
                self.count(H_FAILURES);
                return Err(CacheError::Busy);
            };
            if self.write(index, seq, id, digest) {
                self.count(H_INSERTS);
                if outcome == InsertOutcome::Evicted {
                    self.count(H_EVICTIONS);
                }
                return Ok(outcome);
            }
            // Someone wrote the slot since we looked: look again.
        }
        self.count(H_FAILURES);
        Err(CacheError::Contended)
    }

    /// Claims slot `index` if its sequence is still `seq`, writes the entry
    /// and publishes it. False if the claim lost a race.
    fn write(&self, index: usize, seq: u64, id: &FileIdentity, digest: &Digest) -> bool {
        let Some(slot) = self.slot_words(index) else {
            return false;
        };
        let claimed = seq.wrapping_add(1);
        if slot[S_SEQ].compare_exchange(seq, claimed, Ordering::Acquire, Ordering::Relaxed).is_err() {
            return false;
        }
        // Orders the odd sequence value before the body stores (pairs with
        // the reader's acquire fence).
        fence(Ordering::Release);
        let generation = self.header[H_GENERATION].fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        let published = claimed.wrapping_add(1);
        let body = encode_body(id, digest, generation);
        for (dst, src) in slot[1..S_CHECK].iter().zip(body.iter()) {
            dst.store(*src, Ordering::Relaxed);
        }
        slot[S_CHECK].store(slot_checksum(index, published, &body), Ordering::Relaxed);
        slot[S_SEQ].store(published, Ordering::Release);
        true
    }

    /// Empties every slot and resets the counters (not the generation).
    ///
    /// Meant for a quiet moment (`cah cache clear`): a slot left busy by a
    /// writer that died is reset too, and a writer racing with the clear
    /// can at worst leave a slot that reads as corrupt (a miss).
    pub fn clear(&self) -> Result<(), CacheError> {
        if self.access != Access::ReadWrite {
            return Err(CacheError::ReadOnly);
        }
        for index in 0..self.slot_count {
            let Some(slot) = self.slot_words(index) else { continue };
            let seq = slot[S_SEQ].load(Ordering::Acquire);
            // Make it odd (claimed) while zeroing, then even again.
            let odd = seq | 1;
            slot[S_SEQ].store(odd, Ordering::Relaxed);
            fence(Ordering::Release);
            for w in &slot[1..] {
                w.store(0, Ordering::Relaxed);
            }
            slot[S_SEQ].store(odd.wrapping_add(1), Ordering::Release);
        }
        for word in [H_HITS_RETIRED, H_MISSES, H_INSERTS, H_EVICTIONS, H_FAILURES] {
            if let Some(w) = self.header.get(word) {
                w.store(0, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// The header's counters.
    pub fn stats(&self) -> CacheStats {
        let get = |w: usize| self.counter(w);
        CacheStats {
            slot_count: self.slot_count as u64,
            generation: get(H_GENERATION),
            misses: get(H_MISSES),
            inserts: get(H_INSERTS),
            evictions: get(H_EVICTIONS),
            insert_failures: get(H_FAILURES),
        }
    }

    /// Test hook: leaves slot `index` as a writer that died after claiming
    /// it would (odd sequence).
    #[cfg(test)]
    fn abandon_claim(&self, index: usize) {
        if let Some(slot) = self.slot_words(index) {
            let seq = slot[S_SEQ].load(Ordering::Relaxed);
            slot[S_SEQ].store(seq | 1, Ordering::Relaxed);
        }
    }

    /// Test hook: flips bits in word `word` (1..12) of slot `index`, as a
    /// stray write would.
    #[cfg(test)]
    fn scribble(&self, index: usize, word: usize, mask: u64) {
        if let Some(slot) = self.slot_words(index) {
            if let Some(w) = slot.get(word) {
                w.fetch_xor(mask, Ordering::Relaxed);
            }
        }
    }
}

pub mod reference {
    //! The placement rules of the hash cache stated as plainly as possible,
    //! single-threaded, with no encoding, checksums or atomics: the model
    //! the real table is tested against.

    use alloc::vec;
    use alloc::vec::Vec;

    use super::{CacheEntry, CacheStats, InsertOutcome, PROBE};
    use crate::verify::digest::{keyed_hash, Digest};
    use crate::verify::identity::FileIdentity;

    /// What the model knows about a slot.
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    pub enum Slot {
        /// Free.
        Empty,
        /// Free, but not zero (a failed checksum).
        Corrupt,
        /// Being written; neither read nor written.
        Busy,
        /// An entry.
        Valid(CacheEntry),
    }

    /// The model cache.
    #[derive(Clone, Debug)]
    pub struct Model {
        /// The slots.
        pub slots: Vec<Slot>,
        /// The counters.
        pub stats: CacheStats,
    }

    /// The home slot, computed from the specification's words directly.
    pub fn home(dev: u64, ino: u64, slot_count: usize) -> usize {
        let mut bytes = Vec::new();
        for w in [super::DOMAIN_HOME, dev, ino] {
            bytes.extend_from_slice(&w.to_le_bytes());
        }
        let d = keyed_hash(super::CHECK_KEY, &bytes);
        let mut first = [0u8; 8];
        first.copy_from_slice(&d.as_bytes()[..8]);
        (u64::from_le_bytes(first) % slot_count as u64) as usize
    }

    impl Model {
        /// An empty model of `slot_count` slots.
        pub fn new(slot_count: usize) -> Model {
            Model { slots: vec![Slot::Empty; slot_count], stats: CacheStats { slot_count: slot_count as u64, ..CacheStats::default() } }
        }

        fn window(&self, id: &FileIdentity) -> Vec<usize> {
            let n = self.slots.len();
            let home = home(id.dev, id.ino, n);
            (0..PROBE.min(n)).map(|k| (home + k) % n).collect()
        }

        /// Lookup.
        pub fn lookup(&mut self, id: &FileIdentity) -> Option<Digest> {
            for i in self.window(id) {
                if let Slot::Valid(e) = self.slots[i] {
                    if e.identity == *id {
                        return Some(e.digest);
                    }
                }
            }
            self.stats.misses += 1;
            None
        }

        /// Insert. `None` when every slot of the window is busy.
        pub fn insert(&mut self, id: &FileIdentity, digest: &Digest) -> Option<InsertOutcome> {
            let window = self.window(id);
            // 1. The same inode's slot, the first one in window order.
            let same = window
                .iter()
                .copied()
                .find(|&i| matches!(self.slots[i], Slot::Valid(e) if e.identity.dev == id.dev && e.identity.ino == id.ino));
            // 2. The first free slot. 3. The oldest entry.
            let free = window.iter().copied().find(|&i| matches!(self.slots[i], Slot::Empty | Slot::Corrupt));
            let mut oldest: Option<(u64, usize)> = None;
            for &i in &window {
                if let Slot::Valid(e) = self.slots[i] {
                    if oldest.is_none_or(|(g, _)| e.generation < g) {
                        oldest = Some((e.generation, i));
                    }
                }
            }
            let (target, outcome) = if let Some(i) = same {
                if let Slot::Valid(e) = self.slots[i] {
                    if e.identity == *id && e.digest == *digest {
                        return Some(InsertOutcome::AlreadyPresent);
                    }
                }
                (i, InsertOutcome::Replaced)
            } else if let Some(i) = free {
                (i, InsertOutcome::Inserted)
            } else if let Some((_, i)) = oldest {
                (i, InsertOutcome::Evicted)
            } else {
                self.stats.insert_failures += 1;
                return None;
            };
            self.stats.generation += 1;
            self.stats.inserts += 1;
            if outcome == InsertOutcome::Evicted {
                self.stats.evictions += 1;
            }
            self.slots[target] = Slot::Valid(CacheEntry { identity: *id, digest: *digest, generation: self.stats.generation });
            Some(outcome)
        }

        /// Clear.
        pub fn clear(&mut self) {
            for s in &mut self.slots {
                *s = Slot::Empty;
            }
            self.stats = CacheStats { slot_count: self.stats.slot_count, generation: self.stats.generation, ..CacheStats::default() };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::reference::{Model, Slot};
    use super::*;
    use crate::verify::digest::hash;
    use alloc::vec::Vec;
    use std::sync::Arc;

    fn region(slots: usize) -> Vec<AtomicU64> {
        (0..words_for(slots).unwrap()).map(|_| AtomicU64::new(0)).collect()
    }

    fn id(dev: u64, ino: u64, version: u64) -> FileIdentity {
        FileIdentity {
            dev,
            ino,
            size: 1000 + version,
            mtime_ns: 1_700_000_000_000_000_000 + version as i64,
            ctime_ns: 1_700_000_000_000_000_000 + 2 * version as i64,
        }
    }

    /// The digest the tests associate with an identity: a hit must return
    /// exactly this.
    fn digest_of(id: &FileIdentity) -> Digest {
        let mut bytes = Vec::new();
        for w in [id.dev, id.ino, id.size, id.mtime_ns as u64, id.ctime_ns as u64] {
            bytes.extend_from_slice(&w.to_le_bytes());
        }
        hash(&bytes)
    }

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            // splitmix64 step: good enough, and dependency-free.
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn format_open_and_sizes() {
        assert_eq!(words_for(7), None);
        assert_eq!(words_for(12), None);
        assert_eq!(words_for(MAX_SLOTS * 2), None);
        assert_eq!(bytes_for(DEFAULT_SLOTS), Some(8 * (16 + 4096 * 12)));
        let r = region(64);
        assert_eq!(Cache::open(&r, Access::ReadOnly).unwrap_err(), CacheError::BadMagic);
        let c = Cache::format(&r, 64).unwrap();
        assert_eq!(c.slot_count(), 64);
        assert!((0..64).all(|i| c.slot(i) == SlotState::Empty));
        let ro = Cache::open(&r, Access::ReadOnly).unwrap();
        assert_eq!(ro.insert(&id(1, 1, 0), &hash(b"x")), Err(CacheError::ReadOnly));
        assert_eq!(ro.clear(), Err(CacheError::ReadOnly));
        // A region cut short of its slots is refused.
        assert_eq!(Cache::open(&r[..r.len() - 1], Access::ReadOnly).unwrap_err(), CacheError::TooSmall);
        assert_eq!(Cache::open(&r[..3], Access::ReadOnly).unwrap_err(), CacheError::TooSmall);
        // Any header change is caught.
        for word in 1..=4 {
            let r2: Vec<AtomicU64> = r.iter().map(|w| AtomicU64::new(w.load(Ordering::Relaxed))).collect();
            r2[word].fetch_xor(1 << 3, Ordering::Relaxed);
            assert!(Cache::open(&r2, Access::ReadOnly).is_err(), "header word {word}");
        }
        // A larger region (a file rounded up to pages) is fine.
        let big = region(64);
        let more: Vec<AtomicU64> = (0..big.len() + 100).map(|_| AtomicU64::new(0)).collect();
        assert!(Cache::format(&more, 64).is_ok());
    }

    #[test]
    fn insert_lookup_and_staleness() {
        let r = region(64);
        let c = Cache::format(&r, 64).unwrap();
        let a = id(5, 77, 0);
        assert_eq!(c.lookup(&a), None);
        assert_eq!(c.insert(&a, &digest_of(&a)), Ok(InsertOutcome::Inserted));
        assert_eq!(c.lookup(&a), Some(digest_of(&a)));
        assert_eq!(c.insert(&a, &digest_of(&a)), Ok(InsertOutcome::AlreadyPresent));
        // The file changed: same inode, new times. The old entry must not
        // answer for the new identity, and the insert replaces it.
        let a2 = id(5, 77, 1);
        assert_eq!(c.lookup(&a2), None);
        for changed in [
            FileIdentity { size: a.size + 1, ..a },
            FileIdentity { mtime_ns: a.mtime_ns + 1, ..a },
            FileIdentity { ctime_ns: a.ctime_ns + 1, ..a },
            FileIdentity { dev: a.dev + 1, ..a },
            FileIdentity { ino: a.ino + 1, ..a },
        ] {
            assert_eq!(c.lookup(&changed), None);
        }
        assert_eq!(c.insert(&a2, &digest_of(&a2)), Ok(InsertOutcome::Replaced));
        assert_eq!(c.lookup(&a2), Some(digest_of(&a2)));
        assert_eq!(c.lookup(&a), None);
        let s = c.stats();
        // Misses: a, a2, five changed identities, a again; hits count nothing.
        assert_eq!((s.misses, s.inserts, s.evictions, s.generation), (8, 2, 0, 2));
        let words: Vec<u64> = r.iter().map(|w| w.load(Ordering::Relaxed)).collect();
        assert_eq!(c.lookup(&a2), Some(digest_of(&a2)));
        assert!(r.iter().map(|w| w.load(Ordering::Relaxed)).eq(words), "a hit writes nothing");
        c.clear().unwrap();
        assert_eq!(c.lookup(&a2), None);
        assert_eq!(c.stats().misses, 1);
        // A read-only view hits but counts nothing.
        c.insert(&a, &digest_of(&a)).unwrap();
        let ro = Cache::open(&r, Access::ReadOnly).unwrap();
        let before = ro.stats();
        assert_eq!(ro.lookup(&a), Some(digest_of(&a)));
        assert_eq!(ro.stats(), before);
    }

    #[test]
    fn corruption_is_a_miss_and_gets_reused() {
        let r = region(8);
        let c = Cache::format(&r, 8).unwrap();
        let a = id(1, 2, 3);
        c.insert(&a, &digest_of(&a)).unwrap();
        let slot = (0..8).find(|&i| matches!(c.slot(i), SlotState::Valid(_))).unwrap();
        for word in 1..SLOT_WORDS {
            for bit in [0, 17, 63] {
                c.scribble(slot, word, 1 << bit);
                assert_eq!(c.slot(slot), SlotState::Corrupt, "word {word} bit {bit}");
                assert_eq!(c.lookup(&a), None);
                c.scribble(slot, word, 1 << bit);
                assert_eq!(c.lookup(&a), Some(digest_of(&a)));
            }
        }
        // A sequence value changed under a slot invalidates it too.
        c.scribble(slot, 0, 2);
        assert_eq!(c.slot(slot), SlotState::Corrupt);
        assert_eq!(c.insert(&a, &digest_of(&a)), Ok(InsertOutcome::Inserted));
        assert_eq!(c.lookup(&a), Some(digest_of(&a)));
        // A writer that died after claiming: busy, skipped, never read.
        let slot = (0..8).find(|&i| matches!(c.slot(i), SlotState::Valid(_))).unwrap();
        c.abandon_claim(slot);
        assert_eq!(c.slot(slot), SlotState::Busy);
        assert_eq!(c.lookup(&a), None);
        assert_eq!(c.insert(&a, &digest_of(&a)), Ok(InsertOutcome::Inserted));
        assert_eq!(c.lookup(&a), Some(digest_of(&a)));
        c.clear().unwrap();
        assert!((0..8).all(|i| c.slot(i) == SlotState::Empty));
    }

    #[test]
    fn full_window_evicts_oldest() {
        let r = region(8);
        let c = Cache::format(&r, 8).unwrap();
        let ids: Vec<FileIdentity> = (0..20).map(|i| id(9, 100 + i, 0)).collect();
        for x in &ids {
            c.insert(x, &digest_of(x)).unwrap();
        }
        // 8 slots, window 8: the table holds the last 8 inserted.
        for (i, x) in ids.iter().enumerate() {
            assert_eq!(c.lookup(x).is_some(), i >= 12, "{i}");
        }
        assert_eq!(c.stats().evictions, 12);
    }

    /// Compares the real table with the model after every operation of
    /// random sequences that force collisions, staleness, eviction,
    /// corruption and abandoned claims.
    #[test]
    fn matches_reference_model() {
        let mut rng = Rng(1);
        for &slots in &[8usize, 16, 64] {
            for _round in 0..40 {
                let r = region(slots);
                let c = Cache::format(&r, slots).unwrap();
                let mut m = Model::new(slots);
                let inodes = 1 + rng.below(3 * slots as u64);
                for _ in 0..400 {
                    let x = id(rng.below(2), rng.below(inodes), rng.below(3));
                    match rng.below(100) {
                        0..=44 => {
                            // Usually the right digest, sometimes another.
                            let d = if rng.below(10) == 0 { hash(&rng.next().to_le_bytes()) } else { digest_of(&x) };
                            assert_eq!(c.insert(&x, &d).ok(), m.insert(&x, &d));
                        }
                        45..=89 => {
                            // A copy of the window (as `pread` makes one)
                            // answers as the protocol's reader does.
                            let copied = lookup_copies(&x, copy_window(&r, &x, slots).iter().map(|(i, w)| (*i, w)));
                            let found = c.lookup(&x);
                            assert_eq!(copied, found);
                            assert_eq!(found, m.lookup(&x));
                        }
                        90..=94 => {
                            let i = rng.below(slots as u64) as usize;
                            let word = 1 + rng.below(SLOT_WORDS as u64 - 1) as usize;
                            c.scribble(i, word, 1 << rng.below(64));
                            // A busy slot stays busy (its sequence word is
                            // untouched); anything else no longer checks out.
                            if m.slots[i] != Slot::Busy {
                                m.slots[i] = Slot::Corrupt;
                            }
                        }
                        95..=98 => {
                            let i = rng.below(slots as u64) as usize;
                            c.abandon_claim(i);
                            m.slots[i] = Slot::Busy;
                        }
                        _ => {
                            c.clear().unwrap();
                            m.clear();
                        }
                    }
                    for i in 0..slots {
                        let want = match m.slots[i] {
                            Slot::Empty => SlotState::Empty,
                            Slot::Corrupt => SlotState::Corrupt,
                            Slot::Busy => SlotState::Busy,
                            Slot::Valid(e) => SlotState::Valid(e),
                        };
                        let got = c.slot(i);
                        // A corrupt slot whose scribble cancelled out an
                        // earlier one is valid again, or empty: both fine
                        // only if the model agrees on the slot's content,
                        // so compare loosely there.
                        if m.slots[i] == Slot::Corrupt {
                            assert!(matches!(got, SlotState::Corrupt | SlotState::Empty | SlotState::Valid(_)));
                            if let SlotState::Valid(e) = got {
                                m.slots[i] = Slot::Valid(e);
                            } else {
                                m.slots[i] = if got == SlotState::Empty { Slot::Empty } else { Slot::Corrupt };
                            }
                        } else {
                            assert_eq!(got, want, "slot {i} of {slots}");
                        }
                    }
                    assert_eq!(c.stats(), m.stats);
                }
            }
        }
    }

    /// The words of `x`'s probe window, copied with plain loads.
    fn copy_window(r: &[AtomicU64], x: &FileIdentity, slots: usize) -> Vec<(usize, [u64; SLOT_WORDS])> {
        let word = |i: usize| r[HEADER_WORDS + i].load(Ordering::Relaxed);
        window(x, slots).map(|i| (i, core::array::from_fn(|w| word(i * SLOT_WORDS + w)))).collect()
    }

    /// A copy torn between an entry and the one written over it (any mix
    /// of their words, as a `pread` racing the writer may see) is a miss
    /// for both identities unless it is wholly one of them.
    #[test]
    fn a_torn_copy_is_never_a_hit() {
        let slots = 8;
        let r = region(slots);
        let c = Cache::format(&r, slots).unwrap();
        let (old, new) = (id(3, 9, 0), id(3, 9, 1));
        c.insert(&old, &digest_of(&old)).unwrap();
        let before = copy_window(&r, &old, slots);
        assert_eq!(c.insert(&new, &digest_of(&new)), Ok(InsertOutcome::Replaced));
        let after = copy_window(&r, &old, slots);
        let k = (0..before.len()).find(|&k| before[k] != after[k]).unwrap();
        let (a, b) = (before[k].1, after[k].1);
        let mut hits = 0;
        for mask in 0u32..1 << SLOT_WORDS {
            let mut torn = after.clone();
            torn[k].1 = core::array::from_fn(|w| if mask >> w & 1 == 1 { b[w] } else { a[w] });
            let whole = torn[k].1 == a || torn[k].1 == b;
            for x in [old, new] {
                if let Some(d) = lookup_copies(&x, torn.iter().map(|(i, w)| (*i, w))) {
                    assert!(whole, "a torn copy (mask {mask:#x}) hit for {x:?}");
                    assert_eq!(d, digest_of(&x));
                    hits += 1;
                }
            }
        }
        assert!(hits > 0, "the whole copies hit");
    }

    #[test]
    fn home_slot_matches_reference() {
        let mut rng = Rng(3);
        for _ in 0..1000 {
            let (dev, ino) = (rng.next(), rng.next());
            for n in [8usize, 64, 4096, MAX_SLOTS] {
                assert_eq!(home_slot(dev, ino, n), super::reference::home(dev, ino, n));
            }
        }
    }

    /// Threads insert and look up at once (as processes sharing the
    /// mapping do) over a small table; a hit must always return the digest
    /// inserted for exactly that identity, and at the end no slot may be
    /// busy or corrupt.
    #[test]
    fn concurrent_hammer_no_false_hits() {
        for &(slots, threads, inodes) in &[(8usize, 4usize, 12u64), (64, 4, 100), (1024, 3, 300)] {
            let r: Arc<Vec<AtomicU64>> = Arc::new(region(slots));
            Cache::format(&r, slots).unwrap();
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let r = Arc::clone(&r);
                    std::thread::spawn(move || {
                        let c = Cache::open(&r, Access::ReadWrite).unwrap();
                        let mut rng = Rng(100 + t as u64);
                        let (mut hits, mut fails) = (0u64, 0u64);
                        for _ in 0..20_000 {
                            let x = id(rng.below(2), rng.below(inodes), rng.below(2));
                            if rng.below(2) == 0 {
                                if c.insert(&x, &digest_of(&x)).is_err() {
                                    fails += 1;
                                }
                            } else if let Some(d) = c.lookup(&x) {
                                assert_eq!(d, digest_of(&x), "false hit for {x:?}");
                                hits += 1;
                            }
                        }
                        (hits, fails)
                    })
                })
                .collect();
            let mut hits = 0;
            for h in handles {
                hits += h.join().unwrap().0;
            }
            assert!(hits > 0);
            let c = Cache::open(&r, Access::ReadOnly).unwrap();
            for i in 0..slots {
                match c.slot(i) {
                    SlotState::Valid(e) => assert_eq!(e.digest, digest_of(&e.identity)),
                    SlotState::Empty => {}
                    other => panic!("slot {i}: {other:?}"),
                }
            }
        }
    }

    /// As above, with one more thread scribbling random bits over slot
    /// bodies and sequence words: still no false hit, ever.
    #[test]
    fn concurrent_hammer_with_scribbler() {
        let slots = 16;
        let r: Arc<Vec<AtomicU64>> = Arc::new(region(slots));
        Cache::format(&r, slots).unwrap();
        let stop = Arc::new(core::sync::atomic::AtomicBool::new(false));
        let scribbler = {
            let (r, stop) = (Arc::clone(&r), Arc::clone(&stop));
            std::thread::spawn(move || {
                let c = Cache::open(&r, Access::ReadWrite).unwrap();
                let mut rng = Rng(999);
                while !stop.load(Ordering::Relaxed) {
                    let word = rng.below(SLOT_WORDS as u64) as usize;
                    // Sequence words get high bits only (so they stay even
                    // and slots do not all end up busy).
                    let mask = if word == 0 { 2 << rng.below(60) } else { 1 << rng.below(64) };
                    c.scribble(rng.below(slots as u64) as usize, word, mask);
                    std::thread::yield_now();
                }
            })
        };
        let workers: Vec<_> = (0..3)
            .map(|t| {
                let r = Arc::clone(&r);
                std::thread::spawn(move || {
                    let c = Cache::open(&r, Access::ReadWrite).unwrap();
                    let mut rng = Rng(7 + t);
                    for _ in 0..20_000 {
                        let x = id(0, rng.below(24), rng.below(2));
                        if rng.below(2) == 0 {
                            let _ = c.insert(&x, &digest_of(&x));
                        } else if let Some(d) = c.lookup(&x) {
                            assert_eq!(d, digest_of(&x), "false hit for {x:?}");
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        scribbler.join().unwrap();
    }
}
