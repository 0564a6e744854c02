//! Content: BLAKE3-256 digests of whole files.
//!
//! A thin layer over the `blake3` crate so that the rest of the loader and
//! the host tool name one type, [`Digest`], and one way to compute it. The
//! crate picks its implementation at run time (SSE2/SSE4.1/AVX2/AVX-512 on
//! x86_64 through `cpufeatures`, which needs no libc; NEON on little-endian
//! aarch64, where it is part of the base ISA), so the freestanding loader
//! gets the same speed as the host tool.

use core::fmt;

/// Length in bytes of a BLAKE3-256 digest.
pub const DIGEST_LEN: usize = 32;

/// A BLAKE3-256 digest: the identity of a file's content.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Digest(pub [u8; DIGEST_LEN]);

impl Digest {
    /// The digest as bytes.
    pub const fn as_bytes(&self) -> &[u8; DIGEST_LEN] {
        &self.0
    }

    /// Lower-case hexadecimal, without allocating (the store's file names
    /// and every diagnostic use this spelling).
    pub fn to_hex(&self) -> [u8; 2 * DIGEST_LEN] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 2 * DIGEST_LEN];
        for (pair, byte) in out.chunks_exact_mut(2).zip(self.0.iter()) {
            pair[0] = HEX[usize::from(byte >> 4)];
            pair[1] = HEX[usize::from(byte & 0xf)];
        }
        out
    }

    /// Parses exactly 64 hexadecimal digits (either case).
    pub fn from_hex(text: &[u8]) -> Option<Digest> {
        if text.len() != 2 * DIGEST_LEN {
            return None;
        }
        let mut out = [0u8; DIGEST_LEN];
        for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
            *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        }
        Some(Digest(out))
    }

    /// The first `n` hex digits (at most 64), for short diagnostics.
    pub fn short_hex(&self, n: usize) -> ShortHex {
        ShortHex { digest: *self, len: n.min(2 * DIGEST_LEN) }
    }
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Displays as 64 lower-case hex digits.
impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.to_hex();
        // The buffer is ASCII by construction.
        f.write_str(core::str::from_utf8(&hex).map_err(|_| fmt::Error)?)
    }
}

/// Debug output names the algorithm, as diagnostics do: `blake3:ab12...`.
impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "blake3:{self}")
    }
}

/// A prefix of a digest's hex spelling (see [`Digest::short_hex`]).
#[derive(Clone, Copy)]
pub struct ShortHex {
    digest: Digest,
    len: usize,
}

impl fmt::Display for ShortHex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.digest.to_hex();
        let text = hex.get(..self.len).unwrap_or(&hex);
        f.write_str(core::str::from_utf8(text).map_err(|_| fmt::Error)?)
    }
}

/// The digest of `bytes`.
pub fn hash(bytes: &[u8]) -> Digest {
    if SHORT_INPUTS_HERE && bytes.len() <= CHUNK_LEN {
        return one_chunk(IV, 0, bytes);
    }
    Digest(*blake3::hash(bytes).as_bytes())
}

/// A keyed BLAKE3 of `bytes`: used for the hash cache's slot checksums and
/// placement, where the key separates those uses from content digests.
pub fn keyed_hash(key: &[u8; 32], bytes: &[u8]) -> Digest {
    if SHORT_INPUTS_HERE && bytes.len() <= CHUNK_LEN {
        return one_chunk(words_of(key), KEYED_HASH, bytes);
    }
    Digest(*blake3::keyed_hash(key, bytes).as_bytes())
}

// Short inputs, at most one 1 KiB chunk (the hash cache's slot checks,
// all a start with a warm cache hashes), are hashed here with BLAKE3's portable
// compression function, written from the specification. The crate would
// first find the CPU's widest vector unit with three CPUIDs, each a trap
// to the hypervisor in a virtual machine (4-5 us, docs/benchmarks.md);
// for a few blocks the vector code gains less than that. Tested against
// the crate for every length up to a chunk, plain and keyed. On aarch64
// the crate detects nothing (NEON is part of the base ISA): it keeps short
// inputs too, and the loader is 2 KB smaller.

/// Whether short inputs are hashed by [`one_chunk`] rather than the crate
/// (an arch fact: whether the crate detects the CPU at run time).
const SHORT_INPUTS_HERE: bool = crate::arch::native::BLAKE3_DETECTS_CPU;

/// Bytes in a chunk, BLAKE3's leaf; an input of at most this many bytes
/// is one chunk, which is also the root.
const CHUNK_LEN: usize = 1024;
const IV: [u32; 8] = [0x6a09_e667, 0xbb67_ae85, 0x3c6e_f372, 0xa54f_f53a, 0x510e_527f, 0x9b05_688c, 0x1f83_d9ab, 0x5be0_cd19];
const CHUNK_START: u32 = 1;
const CHUNK_END: u32 = 2;
const ROOT: u32 = 8;
const KEYED_HASH: u32 = 16;
/// Where each message word goes from one round to the next.
const PERMUTATION: [usize; 16] = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8];
/// The message words each of the seven rounds reads, in order: the
/// permutation applied once per round before it.
const SCHEDULE: [[usize; 16]; 7] = {
    let mut s = [[0; 16]; 7];
    let mut i = 0;
    while i < 16 {
        s[0][i] = i;
        i += 1;
    }
    let mut r = 1;
    while r < 7 {
        let mut i = 0;
        while i < 16 {
            s[r][i] = s[r - 1][PERMUTATION[i]];
            i += 1;
        }
        r += 1;
    }
    s
};

/// Little-endian words of `bytes` (at most `4 N`), zero-padded: one copy
/// into a zeroed buffer, then whole words.
fn words_of<const N: usize>(bytes: &[u8]) -> [u32; N] {
    let mut buf = [[0u8; 4]; N];
    let n = bytes.len().min(4 * N);
    buf.as_flattened_mut()[..n].copy_from_slice(&bytes[..n]);
    buf.map(u32::from_le_bytes)
}

/// The root digest of `bytes` (at most one chunk), from key words `cv`.
fn one_chunk(mut cv: [u32; 8], mode: u32, bytes: &[u8]) -> Digest {
    let blocks = bytes.len().div_ceil(64).max(1);
    for i in 0..blocks {
        let block = bytes.get(64 * i..bytes.len().min(64 * i + 64)).unwrap_or(&[]);
        let mut flags = mode;
        if i == 0 {
            flags |= CHUNK_START;
        }
        if i == blocks - 1 {
            flags |= CHUNK_END | ROOT;
        }
        cv = compress(&cv, words_of(block), block.len() as u32, flags);
    }
    let mut out = [0u8; DIGEST_LEN];
    for (o, w) in out.chunks_exact_mut(4).zip(cv) {
        o.copy_from_slice(&w.to_le_bytes());
    }
    Digest(out)
}

/// The first half of the compression function's output (the chaining
/// value, or the digest for the root), for chunk counter 0.
fn compress(cv: &[u32; 8], m: [u32; 16], block_len: u32, flags: u32) -> [u32; 8] {
    let mut v = [cv[0], cv[1], cv[2], cv[3], cv[4], cv[5], cv[6], cv[7], IV[0], IV[1], IV[2], IV[3], 0, 0, block_len, flags];
    for s in &SCHEDULE {
        g(&mut v, [0, 4, 8, 12], m[s[0]], m[s[1]]);
        g(&mut v, [1, 5, 9, 13], m[s[2]], m[s[3]]);
        g(&mut v, [2, 6, 10, 14], m[s[4]], m[s[5]]);
        g(&mut v, [3, 7, 11, 15], m[s[6]], m[s[7]]);
        g(&mut v, [0, 5, 10, 15], m[s[8]], m[s[9]]);
        g(&mut v, [1, 6, 11, 12], m[s[10]], m[s[11]]);
        g(&mut v, [2, 7, 8, 13], m[s[12]], m[s[13]]);
        g(&mut v, [3, 4, 9, 14], m[s[14]], m[s[15]]);
    }
    core::array::from_fn(|i| v[i] ^ v[i + 8])
}

/// The quarter-round, on state words `a`, `b`, `c`, `d` with message
/// words `x` and `y`.
#[inline(always)]
fn g(v: &mut [u32; 16], [a, b, c, d]: [usize; 4], x: u32, y: u32) {
    v[a] = v[a].wrapping_add(v[b]).wrapping_add(x);
    v[d] = (v[d] ^ v[a]).rotate_right(16);
    v[c] = v[c].wrapping_add(v[d]);
    v[b] = (v[b] ^ v[c]).rotate_right(12);
    v[a] = v[a].wrapping_add(v[b]).wrapping_add(y);
    v[d] = (v[d] ^ v[a]).rotate_right(8);
    v[c] = v[c].wrapping_add(v[d]);
    v[b] = (v[b] ^ v[c]).rotate_right(7);
}

/// Incremental hashing, for content that arrives in pieces (a file read in
/// chunks). Feeding the same bytes in any split gives [`hash`]'s result.
#[derive(Clone)]
pub struct Hasher(blake3::Hasher);

impl Hasher {
    /// A hasher over no bytes yet.
    pub fn new() -> Hasher {
        Hasher(blake3::Hasher::new())
    }

    /// Appends `bytes` to the hashed content.
    pub fn update(&mut self, bytes: &[u8]) -> &mut Hasher {
        self.0.update(bytes);
        self
    }

    /// The digest of everything fed so far (the hasher can go on).
    pub fn finalize(&self) -> Digest {
        Digest(*self.0.finalize().as_bytes())
    }
}

/// The chaining value of a subtree of BLAKE3's tree: what a parent node
/// combines, so that parts of one input can be hashed apart (and at once).
pub type Subtree = [u8; DIGEST_LEN];

impl Hasher {
    /// A hasher for the part of a larger input that starts at byte
    /// `offset`, a multiple of the part's subtree size (see [`left_len`]).
    pub fn at_offset(offset: u64) -> Hasher {
        use blake3::hazmat::HasherExt as _;
        let mut h = blake3::Hasher::new();
        h.set_input_offset(offset);
        Hasher(h)
    }

    /// The chaining value of the part fed so far, which must not be empty.
    pub fn finalize_subtree(&self) -> Subtree {
        use blake3::hazmat::HasherExt as _;
        self.0.finalize_non_root()
    }
}

/// The parent of two sibling subtrees, itself a subtree.
pub fn merge(left: &Subtree, right: &Subtree) -> Subtree {
    blake3::hazmat::merge_subtrees_non_root(left, right, blake3::hazmat::Mode::Hash)
}

/// The digest of an input whose root's children are `left` and `right`.
pub fn merge_root(left: &Subtree, right: &Subtree) -> Digest {
    Digest(*blake3::hazmat::merge_subtrees_root(left, right, blake3::hazmat::Mode::Hash).as_bytes())
}

/// How many of `len` bytes (more than one 1 KiB chunk) the root's left
/// subtree holds: the largest power-of-two number of chunks short of `len`.
pub fn left_len(len: u64) -> u64 {
    blake3::hazmat::left_subtree_len(len)
}

impl Default for Hasher {
    fn default() -> Hasher {
        Hasher::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::vec::Vec;

    #[test]
    fn known_answer_empty() {
        // The published BLAKE3 digest of the empty input.
        let want = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";
        assert_eq!(format!("{}", hash(b"")), want);
        assert_eq!(format!("{:?}", hash(b"")), format!("blake3:{want}"));
    }

    #[test]
    fn hex_round_trip() {
        let d = hash(b"ld-cah");
        let hex = d.to_hex();
        assert_eq!(Digest::from_hex(&hex), Some(d));
        assert_eq!(Digest::from_hex(&hex.to_ascii_uppercase()), Some(d));
        assert_eq!(Digest::from_hex(&hex[..63]), None);
        let mut bad = hex;
        bad[5] = b'g';
        assert_eq!(Digest::from_hex(&bad), None);
        assert_eq!(format!("{}", d.short_hex(8)), core::str::from_utf8(&hex[..8]).unwrap());
        assert_eq!(format!("{}", d.short_hex(100)).len(), 64);
    }

    #[test]
    fn incremental_matches_one_shot() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let want = hash(&data);
        for split in [0usize, 1, 63, 64, 1023, 1024, 1025, 65_536, 199_999] {
            let mut h = Hasher::new();
            h.update(&data[..split]).update(&data[split..]);
            assert_eq!(h.finalize(), want, "split at {split}");
        }
        let mut h = Hasher::default();
        for chunk in data.chunks(4096 + 7) {
            h.update(chunk);
        }
        assert_eq!(h.finalize(), want);
    }

    /// The one-chunk code gives the crate's digest at every length it
    /// takes (block boundaries, the empty input, a whole chunk) and one
    /// past it, which goes to the crate, plain and keyed.
    #[test]
    fn short_inputs_hash_as_the_crate_does() {
        let data: Vec<u8> = (0..CHUNK_LEN as u32 + 1).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
        let key: [u8; 32] = core::array::from_fn(|i| (i * 7 + 3) as u8);
        for len in 0..=CHUNK_LEN + 1 {
            let b = &data[..len];
            assert_eq!(hash(b).0, *blake3::hash(b).as_bytes(), "length {len}");
            assert_eq!(keyed_hash(&key, b).0, *blake3::keyed_hash(&key, b).as_bytes(), "keyed, length {len}");
        }
    }

    #[test]
    fn keyed_differs_from_plain() {
        assert_ne!(keyed_hash(&[0; 32], b"x"), hash(b"x"));
        assert_ne!(keyed_hash(&[0; 32], b"x"), keyed_hash(&[1; 32], b"x"));
    }
}
