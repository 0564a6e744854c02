//! The binding plan: what every symbol reference of a start-up resolved to,
//! recorded after a cold start and obeyed on the next, so that a warm start
//! performs no symbol lookup at all (prebinding without fixed addresses:
//! ASLR is kept, since the plan names an object, a symbol and its offset
//! in that object, never an address). Entries are per relocation, in
//! table order, so a warm start reads the plan as it reads the relocation
//! table, and writes most references without touching a symbol table.
//!
//! A plan is keyed by the identity of everything that decides binding: the
//! loader's own build, the program and every object of the namespace, in
//! order (each file's `(st_dev, st_ino, st_size, st_mtime, st_ctime)`, the
//! same identity the hash cache trusts: any change to a file, or a
//! different set or order of objects, gives another key). The plan holds
//! its whole key, compared word for word; the file's name is only a hash
//! of it that finds the file. Plans live
//! beside the hash cache, under its trust rules, with a checksum; a plan
//! that fails any check is ignored, never obeyed, and an entry that names
//! something out of range falls back to a lookup. The format is in
//! `docs/binding-plan.md`.
//!
//! This module is safe code: parsing and encoding over byte slices, file
//! access through `crate::sys`.

use alloc::vec::Vec;
use core::fmt::Write as _;

use crate::elf::symbols::symbol;
use crate::link::{policy, DsoId, Kind, Namespace};
use crate::map::FileView;
use crate::sys::{self, Errno, Fd};
use crate::verify::identity::FileIdentity;
use crate::verify::runtime::{self, Place};

/// `"CAHPLAN1"` as a little-endian word.
const MAGIC: u64 = u64::from_le_bytes(*b"CAHPLAN1");
const VERSION: u64 = 6;
/// Header words before the key: magic, version, the key's length in
/// words, object count, entry count, libc's layout table.
const HEADER_WORDS: usize = 6;
/// Where the header names libc's layout table.
const LAYOUT_WORD: usize = 5;
const CHECKSUM_WORDS: usize = 1;
/// Bounds that keep a hostile header from asking for absurd work.
const MAX_OBJECTS: usize = 1 << 16;
const MAX_ENTRIES: usize = 1 << 24;
/// Key words (a bound on a plan file's size): the build id's length and
/// at most 256 bytes of it, then at most ten words per object.
const MAX_KEY_WORDS: usize = 1 + 32 + 10 * MAX_OBJECTS;
/// The value of a weak reference that bound to nothing.
const UNDEFINED: u64 = u64::MAX;
/// More built-in layout tables than any build has: a bound for the header.
const MAX_LAYOUTS: usize = 1 << 16;
/// The subdirectory of a hash-cache place that holds plans.
const DIR_NAME: &[u8] = b"plans";

/// Words per entry: the relocation's place in its object, the binding,
/// the definition's value.
const ENTRY_WORDS: usize = 3;
/// Words per recorded CPUID leaf: `leaf << 32 | sub-leaf`, `ebx << 32 |
/// eax`, `edx << 32 | ecx`.
const CPUID_WORDS: usize = 3;
/// Most CPUID leaves a plan holds.
const MAX_CPUID: usize = 64;
/// The value word of an entry whose definition is not a plain address in
/// its object (an IFUNC, a TLS or absolute symbol, a weak reference bound
/// to nothing): the engine reads the symbol for those.
pub const NOT_PLAIN: u64 = u64::MAX;

/// What a reference bound to: `Some((object, symbol index))`, or `None`
/// for a weak reference that found no definition.
pub type Binding = Option<(DsoId, u32)>;

/// One relocation's entry: its binding, and the definition's `st_value`
/// when the definition is a plain address (`base + value`), which the
/// engine then writes without reading the definer's symbol table (on a
/// program with 100,000 references that read was a cache miss each and
/// the largest part of a warm start).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Planned {
    pub binding: Binding,
    /// The definition's `st_value`, or [`NOT_PLAIN`].
    pub value: u64,
}

fn encode_binding(b: Binding) -> u64 {
    b.map_or(UNDEFINED, |(obj, idx)| ((obj as u64) << 32) | u64::from(idx))
}

fn decode_binding(v: u64) -> Binding {
    (v != UNDEFINED).then_some(((v >> 32) as DsoId, v as u32))
}

/// A plan read from a file and checked: per object, its entries sorted by
/// the place of their relocation.
pub struct Plan {
    words: Words,
    objects: usize,
    /// Where the object offsets start: after the header and the key.
    offsets_at: usize,
    /// Read from a file system in memory (`tmpfs`): recorded on this
    /// machine since it booted.
    this_boot: bool,
}

/// A plan's words: the file mapped as it lies (a start reads them in
/// place), or decoded from bytes.
enum Words {
    Mapped(FileView),
    Decoded(Vec<u64>),
}

impl core::ops::Deref for Words {
    type Target = [u64];
    fn deref(&self) -> &[u64] {
        match self {
            Words::Mapped(m) => m.words(),
            Words::Decoded(v) => v,
        }
    }
}

impl Plan {
    /// Notes where the plan was read: a `tmpfs` or `ramfs` (as `/run`)
    /// holds only what this machine wrote since it booted, and a plans
    /// directory on one cannot be shared with another machine.
    fn read_from(mut self, dir: &Fd) -> Plan {
        self.this_boot = sys::fstatfs_type(dir).is_ok_and(|t| t == sys::TMPFS_MAGIC || t == sys::RAMFS_MAGIC);
        self
    }

    /// Checks `bytes` as the plan for `key` and a namespace of `objects`
    /// objects. Every failure names what was wrong.
    pub fn parse(bytes: &[u8], key: &Key, objects: usize) -> Result<Plan, &'static str> {
        if !bytes.len().is_multiple_of(8) {
            return Err("truncated");
        }
        let words = bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect();
        Plan::check(Words::Decoded(words), key, objects)
    }

    fn check(words: Words, key: &Key, objects: usize) -> Result<Plan, &'static str> {
        if words.len() < HEADER_WORDS + 1 + CHECKSUM_WORDS {
            return Err("truncated");
        }
        if words[0] != MAGIC || words[1] != VERSION {
            return Err("not a plan of this version");
        }
        let (r, n, m) = (words[2] as usize, words[3] as usize, words[4] as usize);
        if r != key.words.len() || n != objects || n > MAX_OBJECTS || m > MAX_ENTRIES {
            return Err("for another closure");
        }
        // Bounded above: none of these sums can overflow.
        let offsets_at = HEADER_WORDS + r;
        if words.get(HEADER_WORDS..offsets_at) != Some(&key.words[..]) {
            return Err("for another closure");
        }
        let cpuid_at = offsets_at + n + 1 + ENTRY_WORDS * m;
        let k = words.get(cpuid_at).map_or(usize::MAX, |&k| k as usize);
        if k > MAX_CPUID || words.len() != cpuid_at + 2 + CPUID_WORDS * k + CHECKSUM_WORDS {
            return Err("truncated");
        }
        let body = words.len() - CHECKSUM_WORDS;
        if words[body] != checksum(&words[..body]) {
            return Err("bad checksum");
        }
        let offsets = &words[offsets_at..offsets_at + n + 1];
        if offsets[0] != 0 || offsets[n] as usize != m || offsets.windows(2).any(|w| w[0] > w[1]) {
            return Err("bad object offsets");
        }
        let plan = Plan { words, objects: n, offsets_at, this_boot: false };
        for obj in 0..n {
            let mut places = plan.words_of(obj).iter().step_by(ENTRY_WORDS);
            let mut last = places.next().copied();
            for &p in places {
                if last >= Some(p) {
                    return Err("entries out of order");
                }
                last = Some(p);
            }
        }
        Ok(plan)
    }

    /// Object `obj`'s entries as (relocation place, binding, value).
    fn entries(&self, obj: DsoId) -> impl ExactSizeIterator<Item = (u64, u64, u64)> + Clone + '_ {
        self.words_of(obj).chunks_exact(ENTRY_WORDS).map(|e| (e[0], e[1], e[2]))
    }

    fn words_of(&self, obj: DsoId) -> &[u64] {
        let (from, to) = self.range(obj);
        let base = self.offsets_at + self.objects + 1;
        &self.words[base + ENTRY_WORDS * from..base + ENTRY_WORDS * to]
    }

    fn range(&self, obj: DsoId) -> (usize, usize) {
        if obj >= self.objects {
            return (0, 0);
        }
        (self.words[self.offsets_at + obj] as usize, self.words[self.offsets_at + obj + 1] as usize)
    }

    /// The index of libc's layout table among the built-in ones
    /// (`glibc::layouts::ALL`) that the recording start chose, if it chose
    /// a built-in one: a fact of libc's bytes (which the key's identities
    /// vouch for) and of this loader build (which the key names), so a
    /// warm start need not fingerprint libc again.
    pub fn layout(&self) -> Option<usize> {
        usize::try_from(self.words[LAYOUT_WORD]).ok().filter(|&i| self.words[LAYOUT_WORD] != UNDEFINED && i < MAX_LAYOUTS)
    }

    /// The CPUID answers the recording start got (x86_64; none on
    /// aarch64), for `cpuid_replay` of the arch module, which decides
    /// whether this CPU is the one they describe.
    pub fn cpuid(&self) -> impl Iterator<Item = (u32, u32, [u32; 4])> + Clone + '_ {
        let at = self.cpuid_at();
        let k = self.words[at] as usize;
        self.words[at + 2..at + 2 + CPUID_WORDS * k].chunks_exact(CPUID_WORDS).map(|e| {
            let half = |w: u64| (w as u32, (w >> 32) as u32);
            let ((sub, leaf), (eax, ebx), (ecx, edx)) = (half(e[0]), half(e[1]), half(e[2]));
            (leaf, sub, [eax, ebx, ecx, edx])
        })
    }

    /// Whether the plan was recorded on this machine since it booted (it
    /// was read from a `tmpfs`, as `/run` is): its CPUID answers are then
    /// this CPU's, with nothing executed to compare (`cpuid_replay`).
    pub fn this_boot(&self) -> bool {
        self.this_boot
    }

    /// XCR0 (the register state the kernel enabled) when the CPUID answers
    /// were recorded, or 0: the XSAVE leaf's sizes follow it.
    pub fn xcr0(&self) -> u64 {
        self.words[self.cpuid_at() + 1]
    }

    fn cpuid_at(&self) -> usize {
        self.offsets_at + self.objects + 1 + ENTRY_WORDS * self.len()
    }

    /// What the relocation at `place` (its link-time address) of object
    /// `obj` bound to, if the plan says.
    pub fn get(&self, obj: DsoId, place: u64) -> Option<Planned> {
        self.object(obj).get(place)
    }

    /// Object `obj`'s entries, for its relocations' look-ups.
    pub fn object(&self, obj: DsoId) -> ObjectPlan<'_> {
        ObjectPlan { entries: self.words_of(obj).as_chunks::<ENTRY_WORDS>().0, next: 0 }
    }

    /// Whether the plan agrees with the objects, on a sample of up to
    /// [`SAMPLES`] bound references per object spread over its entries:
    /// each reference names the symbol it binds to, and a recorded value
    /// is that symbol's. Every file check passed, so what this catches is
    /// a plan that is right for another closure: one whose key this
    /// closure came to share (under qemu-user, `/proc/self/exe` once
    /// described qemu for every program). Such a plan is wrong almost
    /// everywhere, so a sample finds it before anything is bound, and each
    /// binding then needs no string comparison or symbol read of its own.
    pub fn agrees(&self, ns: &Namespace) -> Result<(), &'static str> {
        for obj in 0..self.objects {
            let entries = self.entries(obj);
            let step = entries.len().div_ceil(SAMPLES).max(1);
            let r = &ns.objs[obj];
            for (place, b, value) in entries.step_by(step) {
                let Some((def, idx)) = decode_binding(b) else { continue };
                // The relocation's `r_info` names the referencing symbol.
                let info = r.img.u64(r.base.wrapping_add(place as usize).wrapping_add(8));
                let rs = info.and_then(|i| symbol(&r.img, &r.dyn_info, (i >> 32) as u32));
                let d = ns.objs.get(def);
                let ds = d.and_then(|d| symbol(&d.img, &d.dyn_info, idx));
                let (Some(rs), Some(d), Some(ds)) = (rs, d, ds) else {
                    return Err("its references name other symbols");
                };
                if !r.dyn_info.same_string(&r.img, rs.st_name as usize, &d.dyn_info, &d.img, ds.st_name as usize) {
                    return Err("its references name other symbols");
                }
                if value != NOT_PLAIN && value != ds.st_value {
                    return Err("its addresses are not its symbols' values");
                }
            }
        }
        Ok(())
    }

    /// The number of references the plan holds.
    pub fn len(&self) -> usize {
        self.range(self.objects.saturating_sub(1)).1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How many bound references per object [`Plan::agrees`] compares.
const SAMPLES: usize = 8;

/// One object's part of a [`Plan`] (see [`Plan::object`]).
pub struct ObjectPlan<'p> {
    /// (relocation place, binding, value) entries, sorted by place.
    entries: &'p [[u64; ENTRY_WORDS]],
    /// Where the next look-up is expected: the engine visits an object's
    /// relocations in table order, so each look-up is one comparison.
    next: usize,
}

impl ObjectPlan<'_> {
    /// What the relocation at `place` bound to, if the plan says.
    #[inline]
    pub fn get(&mut self, place: u64) -> Option<Planned> {
        let at = match self.entries.get(self.next) {
            Some(e) if e[0] == place => self.next,
            // Between the entry before the cursor and the one at it: none
            // (a relocation bound to its own object, which needs no entry).
            after if after.is_none_or(|e| place < e[0]) && (self.next == 0 || self.entries[self.next - 1][0] < place) => {
                return None;
            }
            _ => self.search(place)?,
        };
        self.next = at + 1;
        let [_, binding, value] = self.entries[at];
        Some(Planned { binding: decode_binding(binding), value })
    }

    /// The entry for `place` if it is the one at the cursor, which is not
    /// moved (see [`ObjectPlan::advance`]): the planned run's question,
    /// which leaves every other case to [`ObjectPlan::get`].
    #[inline(always)]
    pub fn peek(&self, place: u64) -> Option<Planned> {
        let &[_, binding, value] = self.entries.get(self.next).filter(|e| e[0] == place)?;
        Some(Planned { binding: decode_binding(binding), value })
    }

    /// Moves the cursor past the entry [`ObjectPlan::peek`] returned.
    #[inline(always)]
    pub fn advance(&mut self) {
        self.next += 1;
    }

    /// The position of `place`'s entry, by binary search.
    #[cold]
    fn search(&self, place: u64) -> Option<usize> {
        self.entries.binary_search_by_key(&place, |e| e[0]).ok()
    }
}

/// The references resolved during a cold start, to become a plan.
pub struct Recorder {
    per_object: Vec<Vec<Entry>>,
}

impl Recorder {
    pub fn new(objects: usize) -> Recorder {
        Recorder { per_object: (0..objects).map(|_| Vec::new()).collect() }
    }

    /// Records what the relocation at `place` (its link-time address) of
    /// object `obj` bound to.
    pub fn record(&mut self, obj: DsoId, place: u64, p: Planned) {
        if let Some(v) = self.per_object.get_mut(obj) {
            v.push((place, (encode_binding(p.binding), p.value)));
        }
    }

    /// The plan file for `key`; `layout` is the index of libc's built-in
    /// layout table, if one was chosen (see [`Plan::layout`]), `cpuid` the
    /// CPUID answers of this start (at most [`MAX_CPUID`] are kept) and
    /// `xcr0` the XCR0 they were given under.
    pub fn encode(mut self, key: &Key, layout: Option<usize>, cpuid: &[(u32, u32, [u32; 4])], xcr0: u64) -> Vec<u8> {
        let n = self.per_object.len();
        for v in self.per_object.iter_mut() {
            sort_by_place(v);
            v.dedup_by_key(|e| e.0);
        }
        let m: usize = self.per_object.iter().map(Vec::len).sum();
        let mut words: Vec<u64> = Vec::with_capacity(HEADER_WORDS + key.words.len() + n + 1 + ENTRY_WORDS * m + CHECKSUM_WORDS);
        words.extend([MAGIC, VERSION, key.words.len() as u64]);
        words.extend([n as u64, m as u64, layout.map_or(UNDEFINED, |i| i as u64)]);
        words.extend_from_slice(&key.words);
        let mut at = 0u64;
        words.push(0);
        for v in &self.per_object {
            at += v.len() as u64;
            words.push(at);
        }
        for v in &self.per_object {
            for &(place, (b, value)) in v {
                words.extend([place, b, value]);
            }
        }
        let cpuid = if cpuid.len() > MAX_CPUID { &[][..] } else { cpuid };
        words.extend([cpuid.len() as u64, xcr0]);
        let pair = |lo: u32, hi: u32| u64::from(hi) << 32 | u64::from(lo);
        for &(leaf, sub, [eax, ebx, ecx, edx]) in cpuid {
            words.extend([pair(sub, leaf), pair(eax, ebx), pair(ecx, edx)]);
        }
        words.push(checksum(&words));
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }
}

/// A recorded reference: its place, then what it bound to.
type Entry = (u64, (u64, u64));

/// Sorts `v` by place, keeping the recorded order of equal places, by
/// merging its ascending runs pairwise until one is left. Records come in
/// relocation-table order, which is mostly ascending by place: the 100,000
/// PLT slots of a large program are one run, sorted here in one pass (a
/// heap sort spent 740 instructions per reference, a quarter of such a
/// cold start). The loader's one sort, kept small on purpose: the core
/// library's sorts bring kilobytes of code into a loader whose size is
/// budgeted.
#[inline(never)]
fn sort_by_place(v: &mut Vec<Entry>) {
    let mut bounds: Vec<usize> = alloc::vec![0];
    bounds.extend((1..v.len()).filter(|&i| v[i].0 < v[i - 1].0));
    bounds.push(v.len());
    let mut other = alloc::vec![(0, (0, 0)); if bounds.len() > 2 { v.len() } else { 0 }];
    let (mut src, mut dst) = (&mut v[..], &mut other[..]);
    let mut moved = false;
    while bounds.len() > 2 {
        let mut merged = alloc::vec![0];
        for k in (0..bounds.len() - 1).step_by(2) {
            let (a, m) = (bounds[k], bounds[k + 1]);
            let b = bounds.get(k + 2).copied().unwrap_or(m);
            merge(src, (a, m, b), dst);
            merged.push(b);
        }
        core::mem::swap(&mut src, &mut dst);
        moved = !moved;
        bounds = merged;
    }
    if moved {
        *v = other;
    }
}

/// Writes to `dst[a..b]` the merge of `src[a..m]` and `src[m..b]`, each
/// sorted by place; of equal places, the first run's first.
fn merge(src: &[Entry], (a, m, b): (usize, usize, usize), dst: &mut [Entry]) {
    let (mut i, mut j) = (a, m);
    for out in &mut dst[a..b] {
        let take_second = j < b && (i >= m || src[j].0 < src[i].0);
        *out = if take_second { src[j] } else { src[i] };
        j += usize::from(take_second);
        i += usize::from(!take_second);
    }
}

/// The last word: a check against a torn or damaged file, not against an
/// attacker (a plan is trusted for where it lies, see `load`). Four lanes,
/// word `i` going to lane `i % 4`, each a multiply-rotate step per word
/// that is a bijection of the lane's value, so any change to a single word
/// changes the result; then the lanes are mixed. (BLAKE3 here cost a warm
/// start of hello 11,000 instructions, a twentieth of all its loader's
/// work; one lane was a chain of dependent multiplications, 0.4 ms for a
/// plan of 100,000 references.)
pub fn checksum(words: &[u64]) -> u64 {
    const M: u64 = 0xff51_afd7_ed55_8ccd;
    let mut lanes = [0x9e37_79b9_7f4a_7c15u64 ^ words.len() as u64, 1, 2, 3];
    let mut quads = words.chunks_exact(4);
    for q in &mut quads {
        for (h, &w) in lanes.iter_mut().zip(q) {
            *h = (*h ^ w).wrapping_mul(M).rotate_left(29);
        }
    }
    for (h, &w) in lanes.iter_mut().zip(quads.remainder()) {
        *h = (*h ^ w).wrapping_mul(M).rotate_left(29);
    }
    let mut h = lanes[0];
    for &l in &lanes[1..] {
        h = (h ^ l).wrapping_mul(M).rotate_left(29);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// What a plan is valid for (see [`key`]), word by word. A plan holds
/// its key whole and is compared with it: no hash of the key, whose
/// collisions would have to be ruled out, stands in for it.
pub struct Key {
    words: Vec<u64>,
}

impl Key {
    /// A key given word for word: a start makes its own with [`key`]; the
    /// fuzz target takes one from its input so that parsing goes on past
    /// "for another closure".
    pub fn from_words(words: Vec<u64>) -> Key {
        Key { words }
    }

    /// The name the plan's file has: [`checksum`] of the key in hex. Only
    /// a way to find the file: keys that share a name (by chance, or made
    /// to) replace each other's plans, and neither is obeyed for the other.
    pub fn name(&self) -> KeyName {
        KeyName(checksum(&self.words))
    }
}

/// [`Key::name`], shown as sixteen hex digits.
#[derive(Clone, Copy)]
pub struct KeyName(u64);

impl core::fmt::Display for KeyName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// The key of a start-up's bindings: the loader's build id, then each
/// object's kind and file identity in namespace order, and for a library
/// accepted for a locked name the digest it was accepted for. `None` when
/// an object's identity is unknown (nothing can then vouch for a plan).
/// Built of whole words (docs/binding-plan.md), so it is compared as it
/// is: a warm start hashes nothing (BLAKE3 of it was 5,700 instructions
/// for hello, and past a kilobyte, fifteen libraries or so, the `blake3`
/// crate's CPU detection executed CPUID on every start).
pub fn key(ns: &Namespace, loader_build_id: &[u8]) -> Option<Key> {
    let id = loader_build_id.get(..loader_build_id.len().min(256)).unwrap_or_default();
    let mut w: Vec<u64> = Vec::with_capacity(1 + id.len().div_ceil(8) + 10 * ns.objs.len());
    w.push(id.len() as u64);
    w.extend(id.chunks(8).map(|c| {
        let mut b = [0u8; 8];
        b[..c.len()].copy_from_slice(c);
        u64::from_le_bytes(b)
    }));
    for d in &ns.objs {
        let kind: u64 = match d.kind {
            Kind::Main => 1,
            Kind::Library => 2,
            Kind::Loader => 3,
            Kind::Vdso => 4,
        };
        // What the plan vouches for when a start-up takes its closure on
        // trust (`link::policy::confirm`): this file had this digest.
        let digest = policy::verified(d).filter(|_| d.kind == Kind::Library).map(|v| v.digest);
        w.push(kind | u64::from(digest.is_some()) << 8);
        if matches!(d.kind, Kind::Main | Kind::Library) {
            let id = d.identity?;
            w.extend([id.dev, id.ino, id.size, id.mtime_ns as u64, id.ctime_ns as u64]);
        }
        if let Some(digest) = digest {
            w.extend(digest.0.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))));
        }
    }
    Some(Key { words: w })
}

/// The identity of the program at `path` (NUL-terminated), if this user
/// may read it: a plan would tell something of an execute-only program's
/// contents, and `open` refuses exactly those. (Not `newfstatat`, one
/// system call for three: under qemu-user it describes qemu for
/// `/proc/self/exe`, and every program would share one plan.)
pub fn identity_of(path: &[u8]) -> Option<FileIdentity> {
    // Opened, not just `stat`ed: a user who may only execute the program
    // gets no identity, so no plan (which would tell what it binds to).
    let fd = sys::openat(None, path, sys::O_RDONLY | sys::O_CLOEXEC, 0).ok()?;
    Some(runtime::identity(&sys::fstat(&fd).ok()?))
}

/// [`Key::name`] as sixteen hex digits and a NUL.
fn file_name(key: &Key) -> [u8; 17] {
    let name = key.name().0;
    let mut v = [0u8; 17];
    for (i, c) in v[..16].iter_mut().enumerate() {
        *c = b"0123456789abcdef"[(name >> (60 - 4 * i)) as usize & 15];
    }
    v
}

/// Reads the plan for `key` from the first place that has a trusted one.
pub fn load(places: &[Place], euid: u32, key: &Key, objects: usize) -> Result<Plan, &'static str> {
    let mut why = "none recorded yet";
    for p in places {
        match load_from(p, euid, key, objects) {
            Ok(plan) => return Ok(plan),
            Err(w) => why = w,
        }
    }
    Err(why)
}

fn open_plans_dir(p: &Place, euid: u32, create: bool) -> Result<Fd, &'static str> {
    let mut dir = p.dir.clone();
    dir.push(b'/');
    dir.extend_from_slice(DIR_NAME);
    let place = Place { dir, write: create };
    let fd = runtime::open_dir(&place, euid)?;
    runtime::trusted(&sys::fstat(&fd).map_err(Errno::describe)?, euid, true)?;
    Ok(fd)
}

/// Plans up to this size are read into memory, larger ones mapped.
const READ_UP_TO: usize = 16 * 1024;

fn load_from(p: &Place, euid: u32, key: &Key, objects: usize) -> Result<Plan, &'static str> {
    let dir = open_plans_dir(p, euid, false).map_err(|_| "none recorded yet")?;
    let fd = match sys::openat(Some(&dir), &file_name(key), sys::O_RDONLY | sys::O_NOFOLLOW | sys::O_CLOEXEC, 0) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Err("none recorded yet"),
        Err(e) => return Err(e.describe()),
    };
    let st = sys::fstat(&fd).map_err(Errno::describe)?;
    runtime::trusted(&st, euid, false)?;
    let size = usize::try_from(st.size).ok().filter(|&s| {
        s <= 8 * (HEADER_WORDS + MAX_KEY_WORDS + MAX_OBJECTS + 1 + ENTRY_WORDS * MAX_ENTRIES + 2 + CPUID_WORDS * MAX_CPUID + CHECKSUM_WORDS)
    });
    let size = size.ok_or("too large")?;
    if size < 8 * (HEADER_WORDS + 1 + CHECKSUM_WORDS) || !size.is_multiple_of(8) {
        return Err("truncated");
    }
    if size <= READ_UP_TO {
        // A small plan (a C program's is a few kilobytes) is read: one
        // system call, where a mapping costs two and a page fault.
        // Into words at once: the file is little-endian, as both arches.
        let mut words = alloc::vec![0u64; size / 8];
        if sys::pread_words(&fd, &mut words, 0).map_err(Errno::describe)? != size {
            return Err("truncated");
        }
        return Plan::check(Words::Decoded(words), key, objects).map(|p| p.read_from(&dir));
    }
    // Read in place: `trusted` above means only root or this user can
    // write the file, and plans are replaced by rename, never shortened.
    Plan::check(Words::Mapped(FileView::map(&fd, size).map_err(Errno::describe)?), key, objects).map(|p| p.read_from(&dir))
}

/// The plans directory of the first writable place, opened (and made if
/// missing) before anything is recorded: where no plan can be stored
/// (a read-only or absent cache), recording one would be work thrown away
/// at every start.
pub struct Store(Fd);

impl Store {
    pub fn open(places: &[Place], euid: u32) -> Result<Store, &'static str> {
        let p = places.iter().find(|p| p.write).ok_or("no writable cache place")?;
        open_plans_dir(p, euid, true).map(Store)
    }

    /// Writes the plan `bytes` for `key` (a temporary file renamed over
    /// the old plan, so a reader sees one plan or the other).
    pub fn put(&self, euid: u32, key: &Key, bytes: &[u8]) -> Result<(), &'static str> {
        store_in(&self.0, euid, key, bytes)
    }
}

fn store_in(dir: &Fd, euid: u32, key: &Key, bytes: &[u8]) -> Result<(), &'static str> {
    let mut tmp = alloc::string::String::new();
    let _ = write!(tmp, ".plan.{}\0", sys::getpid());
    let flags = sys::O_RDWR | sys::O_CREAT | sys::O_EXCL | sys::O_NOFOLLOW | sys::O_CLOEXEC;
    let mode = if euid == 0 { 0o644 } else { 0o600 };
    let fd = match sys::openat(Some(dir), tmp.as_bytes(), flags, mode) {
        // Left by a process that died with our pid: ours to replace.
        Err(Errno::EEXIST) => {
            let _ = sys::unlinkat(dir, tmp.as_bytes(), 0);
            sys::openat(Some(dir), tmp.as_bytes(), flags, mode)
        }
        r => r,
    }
    .map_err(Errno::describe)?;
    let result = (|| {
        sys::fchmod(&fd, mode).map_err(Errno::describe)?;
        let mut done = 0;
        while done < bytes.len() {
            match sys::write(fd.raw(), &bytes[done..]) {
                Ok(0) => return Err("short write"),
                Ok(n) => done += n,
                Err(e) => return Err(e.describe()),
            }
        }
        sys::renameat2(dir, tmp.as_bytes(), &file_name(key), 0).map_err(Errno::describe)
    })();
    if result.is_err() {
        let _ = sys::unlinkat(dir, tmp.as_bytes(), 0);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_by_place_sorts_like_the_core_library() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut random = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 50, (x >> 60, x & 0xff))
        };
        for len in [0usize, 1, 2, 3, 7, 64, 1000] {
            let shuffled: Vec<Entry> = (0..len).map(|_| random()).collect();
            // Also the shapes relocation tables have: one run, a few runs,
            // and the worst case, every element a run of its own.
            let mut runs = shuffled.clone();
            runs.chunks_mut(len / 3 + 1).for_each(|c| c.sort_by_key(|e| e.0));
            let mut backwards = shuffled.clone();
            backwards.sort_by_key(|e| u64::MAX - e.0);
            for mut v in [shuffled, runs, backwards] {
                // Stable: of equal places, the one recorded first stays first.
                let mut want = v.clone();
                want.sort_by_key(|e| e.0);
                sort_by_place(&mut v);
                assert_eq!(v, want, "{len} elements");
                sort_by_place(&mut v);
                assert_eq!(v, want, "{len} elements, sorted already");
            }
        }
    }

    fn bound(obj: DsoId, idx: u32, value: u64) -> Planned {
        Planned { binding: Some((obj, idx)), value }
    }

    const WEAK: Planned = Planned { binding: None, value: NOT_PLAIN };

    /// Two CPUID answers, their words written out by hand below.
    const CPUID: [(u32, u32, [u32; 4]); 2] =
        [(1, 0, [0x806f8, 0x800, 0x7ffa_fbff, 0xbfeb_fbff]), (4, 3, [0x1c163, 0x3c0_003f, 0xdfff, 0x4])];

    /// A key of `words` (a real one is made by [`key`] from a namespace).
    fn key_of(words: &[u64]) -> Key {
        Key::from_words(words.to_vec())
    }

    fn sample() -> (Key, Vec<u8>) {
        let key = key_of(&[20, 0x1111, 0x2222, 0x3333, 1, 7, 8, 9, 10, 11]);
        let mut r = Recorder::new(3);
        // Recorded out of order (IRELATIVE-style deferrals): sorted on encoding.
        r.record(0, 0x4d8, bound(2, 11, 0x1140));
        r.record(0, 0x4c0, WEAK);
        r.record(2, 0x18, bound(0, 5, NOT_PLAIN));
        let bytes = r.encode(&key, Some(3), &CPUID, 0xe7);
        (key, bytes)
    }

    #[test]
    fn a_recorded_plan_reads_back() {
        let (key, bytes) = sample();
        let p = Plan::parse(&bytes, &key, 3).expect("valid");
        assert_eq!(p.get(0, 0x4d8), Some(bound(2, 11, 0x1140)));
        assert_eq!(p.get(0, 0x4c0), Some(WEAK));
        assert_eq!(p.get(0, 0x4c8), None, "another relocation has no entry");
        assert_eq!(p.get(1, 0x4d8), None);
        assert_eq!(p.get(2, 0x18), Some(bound(0, 5, NOT_PLAIN)));
        assert_eq!(p.get(9, 0), None);
        assert_eq!(p.len(), 3);
        assert_eq!(p.layout(), Some(3), "the layout table recorded");
        assert_eq!(p.cpuid().collect::<Vec<_>>(), CPUID, "the CPUID answers recorded");
        assert_eq!(p.xcr0(), 0xe7);
        // docs/binding-plan.md: the count, XCR0, then per leaf `leaf << 32 |
        // sub`, `ebx << 32 | eax`, `edx << 32 | ecx`, then the checksum.
        let words: Vec<u64> = bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
        // docs/binding-plan.md: magic, version, key length, objects,
        // entries, layout, the key; then the offsets.
        assert_eq!(words[..6], [u64::from_le_bytes(*b"CAHPLAN1"), 6, 10, 3, 3, 3]);
        assert_eq!(words[6..16], key.words[..]);
        assert_eq!(words[16..20], [0, 2, 2, 3]);
        assert_eq!(
            words[words.len() - 9..words.len() - 1],
            [
                2,
                0xe7,
                1 << 32,
                0x800 << 32 | 0x806f8,
                0xbfeb_fbff << 32 | 0x7ffa_fbff,
                4 << 32 | 3,
                0x3c0_003f << 32 | 0x1c163,
                4 << 32 | 0xdfff
            ]
        );
    }

    #[test]
    fn a_plan_is_named_by_the_checksum_of_its_key() {
        let key = key_of(&[1, 2, 3]);
        let name = file_name(&key);
        assert_eq!(&name[..16], alloc::format!("{:016x}", checksum(&[1, 2, 3])).as_bytes());
        assert_eq!(name[16], 0);
        assert_eq!(alloc::format!("{}", key.name()).as_bytes(), &name[..16]);
    }

    #[test]
    fn look_ups_in_any_order_answer_as_in_table_order() {
        // Entries every 24 bytes with gaps (relocations of other kinds);
        // the engine asks in table order, but an IRELATIVE or a retry may
        // ask out of it.
        let key = key_of(&[0, 1, 2, 3]);
        let mut r = Recorder::new(2);
        let places: Vec<u64> = (0..300u64).filter(|i| i % 3 != 0).map(|i| 0x1000 + 24 * i).collect();
        for (i, &place) in places.iter().enumerate() {
            r.record(1, place, bound(0, i as u32, 0x100 * i as u64));
        }
        let p = Plan::parse(&r.encode(&key, None, &[], 0), &key, 2).expect("valid");
        assert_eq!(p.layout(), None, "no layout table was recorded");
        assert_eq!(p.cpuid().count(), 0, "no CPUID answers were recorded");
        let want = |place: u64| places.iter().position(|&x| x == place).map(|i| bound(0, i as u32, 0x100 * i as u64));
        let all: Vec<u64> = (0..310u64).map(|i| 0x1000 + 24 * i).chain([0, 0x1008, u64::MAX]).collect();
        let mut o = p.object(1);
        for &place in &all {
            assert_eq!(o.get(place), want(place), "in order, place {place:#x}");
        }
        let mut o = p.object(1);
        for &place in all.iter().rev().chain(all.iter().step_by(7)) {
            assert_eq!(o.get(place), want(place), "out of order, place {place:#x}");
            assert_eq!(o.get(place), want(place), "asked twice, place {place:#x}");
        }
        assert_eq!(p.object(0).get(0x1018), None, "object 0 has no entries");
    }

    /// `bytes` (whole words of it) with a correct checksum appended, so
    /// that mutations reach the checks behind it (as the fuzz target does).
    pub fn sealed(bytes: &[u8]) -> Vec<u8> {
        let words: Vec<u64> = bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
        let mut out: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        out.extend_from_slice(&checksum(&words).to_le_bytes());
        out
    }

    /// What the fuzz target does with an accepted plan: every look-up of
    /// every object stays in bounds.
    pub fn exercise(p: &Plan, objects: usize) {
        let _ = (p.layout(), p.len(), p.cpuid().count(), p.xcr0());
        for obj in 0..objects + 1 {
            let mut o = p.object(obj);
            for place in (0..40u64).map(|i| 8 * i).chain((0..40).rev()).chain([u64::MAX]) {
                let _ = o.get(place);
            }
        }
    }

    #[test]
    fn mutated_plans_are_refused_or_read_in_bounds() {
        let (key, bytes) = sample();
        let body = &bytes[..bytes.len() - 8];
        let mut accepted = 0;
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for round in 0..4000 {
            let mut m = body.to_vec();
            // A few words overwritten with small or random values, or the
            // plan cut short or lengthened.
            for _ in 0..1 + round % 3 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let at = (seed as usize % (m.len() / 8)) * 8;
                let v = if seed & 1 == 0 { (seed >> 40) % 8 } else { seed >> 3 };
                m[at..at + 8].copy_from_slice(&v.to_le_bytes());
            }
            match round % 5 {
                0 => m.truncate(m.len() - 8 * (1 + (seed as usize % 3))),
                1 => m.extend_from_slice(&seed.to_le_bytes()),
                _ => {}
            }
            for objects in [1, 3, 4] {
                if let Ok(p) = Plan::parse(&sealed(&m), &key, objects) {
                    accepted += 1;
                    exercise(&p, objects);
                }
            }
        }
        assert!(accepted > 0, "some mutations keep a valid plan (e.g. other bindings)");
    }

    #[test]
    fn any_damage_or_other_closure_is_refused() {
        let (key, bytes) = sample();
        let words = &key.words;
        let mut other = words.clone();
        other[4] ^= 1;
        assert_eq!(Plan::parse(&bytes, &key_of(&other), 3).err(), Some("for another closure"), "a key differing in one word");
        assert_eq!(Plan::parse(&bytes, &key_of(&words[..words.len() - 1]), 3).err(), Some("for another closure"), "a shorter key");
        assert_eq!(Plan::parse(&bytes, &key, 4).err(), Some("for another closure"));
        assert_eq!(Plan::parse(&bytes[..bytes.len() - 8], &key, 3).err(), Some("truncated"));
        for i in (64..bytes.len()).step_by(7) {
            let mut bad = bytes.clone();
            bad[i] ^= 0x20;
            assert!(Plan::parse(&bad, &key, 3).is_err(), "a flipped bit at byte {i} was accepted");
        }
    }

    #[test]
    fn hostile_bytes_never_panic() {
        let key = key_of(&[0, 1, 2]);
        let mut state = 0x1234_5678_9abc_def0u64;
        for len in [0usize, 8, 64, 100, 104, 200, 4096] {
            for _ in 0..200 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        state as u8
                    })
                    .collect();
                let _ = Plan::parse(&bytes, &key, 3);
            }
        }
    }
}
