//! glibc tunables: `GLIBC_TUNABLES=name=value:name=value` and the legacy
//! variables that set some tunables too (`MALLOC_ARENA_MAX`, ...), read
//! once at start-up into a fixed table that `__tunable_get_val` and
//! `__tunable_is_initialized` answer from.
//!
//! What a build has (ids, names, types, defaults, bounds, aliases, security
//! levels, the layout of `tunable_val_t`) comes from its generated layout
//! table ([`Layout::tunables`], read from that build's ld.so). How the text
//! is read follows the build's ld.so; the two rule sets below were observed
//! with `ld.so --list-tunables` of Debian's 2.36 and 2.41 and are checked
//! against glibc's own loader by `tests/tests/tunables.rs`:
//!
//! * **up to 2.38** ([`Dialect::Lenient`]): items without `=` are skipped, a
//!   name running into the end of the string ends it; a value runs to the
//!   next `:`; numbers are read like `strtoul(value, NULL, 0)` (leading
//!   blanks, a sign, `0x` hex, `0` octal; trailing text ignored; overflow
//!   gives `UINT64_MAX`); a value outside `[min, max]` (compared signed for
//!   `INT_32`, unsigned otherwise) leaves the tunable unset; unknown names
//!   are ignored; a later item wins. A legacy variable sets its tunable
//!   unless an earlier valid setting did, and a valid `GLIBC_TUNABLES` item
//!   always wins. In secure mode (`AT_SECURE`) tunables of level `NONE` are
//!   applied, the others ignored; `GLIBC_TUNABLES` is rewritten to keep only
//!   known tunables not of level `SXID_ERASE`, and the legacy variables of
//!   `SXID_ERASE` tunables are removed from the environment.
//! * **2.39 and later** ([`Dialect::Strict`]): the whole string is refused
//!   (with a warning) when it ends inside a name, or a value holds a `=`;
//!   a number must use up its whole value (else a warning and that item is
//!   ignored); `INT_32` values are truncated to 32 bits before the bounds
//!   check; legacy variables apply after every `GLIBC_TUNABLES`, to the
//!   tunables it left unset, the last occurrence winning. An item
//!   `glibc.rtld.enable_secure=1` turns secure mode on and drops every
//!   tunable. In secure mode every tunable is ignored (ld.so's secure-mode
//!   variable list then removes `GLIBC_TUNABLES` and the `MALLOC_*` ones).
#![allow(unsafe_code)]

use alloc::vec::Vec;

use super::layout::{Arch, Layout, TunableSecurity, TunableType, Tunables, MAX_TUNABLES};

const GLIBC_TUNABLES: &[u8] = b"GLIBC_TUNABLES";
const ENABLE_SECURE: &[u8] = b"glibc.rtld.enable_secure";

/// Which ld.so's rules to follow (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// glibc 2.38 and older.
    Lenient,
    /// glibc 2.39 and later.
    Strict,
}

impl Dialect {
    /// The rules of the build `l`.
    pub fn of(l: &Layout) -> Dialect {
        let mut it = l.glibc_version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let version = (it.next().unwrap_or(0), it.next().unwrap_or(0));
        if version >= (2, 39) {
            Dialect::Strict
        } else {
            Dialect::Lenient
        }
    }
}

/// `_dl_strtoul` as ld.so reads tunable numbers: the value and how many
/// bytes it used. 2.38 and older saturate a little before `UINT64_MAX`
/// (when `result >= (UINT64_MAX - digit) / base`); later ones overflow
/// exactly, and stop at the digit that overflows.
pub fn strtoul(s: &[u8], dialect: Dialect) -> (u64, usize) {
    let mut i = 0;
    while i < s.len() && (s[i] == b' ' || s[i] == b'\t') {
        i += 1;
    }
    let mut negative = false;
    if i < s.len() && (s[i] == b'-' || s[i] == b'+') {
        negative = s[i] == b'-';
        i += 1;
    }
    if i >= s.len() || !s[i].is_ascii_digit() {
        return (0, i);
    }
    let (base, max_digit) = if s[i] == b'0' && s.get(i + 1).is_some_and(|&c| c | 0x20 == b'x') {
        i += 2;
        (16u64, b'9')
    } else if s[i] == b'0' {
        (8, b'7')
    } else {
        (10, b'9')
    };
    let mut r: u64 = 0;
    while i < s.len() {
        let c = s[i];
        let d = if (b'0'..=max_digit).contains(&c) {
            c - b'0'
        } else if base == 16 && (b'a'..=b'f').contains(&(c | 0x20)) {
            (c | 0x20) - b'a' + 10
        } else {
            break;
        } as u64;
        let next = match dialect {
            Dialect::Lenient if r >= (u64::MAX - d) / base => None,
            Dialect::Lenient => Some(r * base + d),
            Dialect::Strict => r.checked_mul(base).and_then(|x| x.checked_add(d)),
        };
        match next {
            Some(n) => r = n,
            None => return (u64::MAX, i),
        }
        i += 1;
    }
    (if negative { r.wrapping_neg() } else { r }, i)
}

/// The outcome of reading the environment.
pub struct Parsed {
    /// Set by the user (`initialized` in glibc).
    pub set: [bool; MAX_TUNABLES],
    /// Numeric values of the tunables that are set.
    pub num: [u64; MAX_TUNABLES],
    /// String values of the string tunables that are set.
    pub text: [Option<&'static [u8]>; MAX_TUNABLES],
    /// Secure mode, lenient rules: what each `GLIBC_TUNABLES` entry must
    /// hold now, in environment order.
    pub rewritten: Vec<Vec<u8>>,
    /// Secure mode: legacy variables to remove from the environment.
    pub erase: Vec<&'static str>,
    /// Lines for stderr, as ld.so words them.
    pub warnings: Vec<Vec<u8>>,
    /// `glibc.rtld.enable_secure=1` was given (strict rules).
    pub enable_secure: bool,
}

impl Parsed {
    fn new() -> Parsed {
        Parsed {
            set: [false; MAX_TUNABLES],
            num: [0; MAX_TUNABLES],
            text: [None; MAX_TUNABLES],
            rewritten: Vec::new(),
            erase: Vec::new(),
            warnings: Vec::new(),
            enable_secure: false,
        }
    }

    /// Sets tunable `id` from `value` if the value is acceptable. `false`
    /// when the strict rules reject the text (the caller warns).
    fn apply(&mut self, defs: Tunables, id: usize, value: &'static [u8], dialect: Dialect) -> bool {
        let Some(t) = defs.get(id) else { return true };
        if t.ty == TunableType::String {
            self.text[id] = Some(value);
            self.set[id] = true;
            return true;
        }
        let (mut v, used) = strtoul(value, dialect);
        if dialect == Dialect::Strict {
            if used != value.len() {
                return false;
            }
            if t.ty == TunableType::Int32 {
                v = v as i32 as i64 as u64;
            }
        }
        let in_range = match t.ty {
            TunableType::Int32 => (t.min as i64) <= (v as i64) && (v as i64) <= (t.max as i64),
            _ => t.min <= v && v <= t.max,
        };
        if in_range {
            self.num[id] = v;
            self.set[id] = true;
        }
        true
    }

    fn warn(&mut self, parts: &[&[u8]]) {
        let mut line = b"WARNING: ld.so: ".to_vec();
        for p in parts {
            line.extend_from_slice(p);
        }
        line.push(b'\n');
        self.warnings.push(line);
    }

    fn warn_value(&mut self, defs: Tunables, id: usize, value: &[u8]) {
        self.warn(&[b"invalid GLIBC_TUNABLES value `", value, b"' for option `", defs.name(id).as_bytes(), b"': ignored."]);
    }

    /// One `GLIBC_TUNABLES` value, lenient rules.
    fn lenient(&mut self, defs: Tunables, s: &'static [u8], secure: bool) {
        let mut kept: Vec<u8> = Vec::new();
        let mut i = 0;
        loop {
            let start = i;
            while i < s.len() && s[i] != b'=' && s[i] != b':' {
                i += 1;
            }
            if i == s.len() {
                break;
            }
            if s[i] == b':' {
                i += 1;
                continue;
            }
            let name = &s[start..i];
            i += 1;
            let vstart = i;
            while i < s.len() && s[i] != b':' {
                i += 1;
            }
            let value = &s[vstart..i];
            if let Some(id) = find(defs, name) {
                let apply = if secure {
                    let level = defs.get(id).and_then(|t| t.security);
                    if level != Some(TunableSecurity::Erase) {
                        if !kept.is_empty() {
                            kept.push(b':');
                        }
                        kept.extend_from_slice(name);
                        kept.push(b'=');
                        kept.extend_from_slice(value);
                    }
                    level == Some(TunableSecurity::None)
                } else {
                    true
                };
                if apply {
                    self.apply(defs, id, value, Dialect::Lenient);
                }
            }
            if i == s.len() {
                break;
            }
            i += 1;
        }
        if secure {
            self.rewritten.push(kept);
        }
    }

    /// One `GLIBC_TUNABLES` value, strict rules.
    fn strict(&mut self, defs: Tunables, s: &'static [u8]) {
        let Some(items) = strict_items(s) else {
            self.warn(&[b"invalid GLIBC_TUNABLES `", s, b"': ignored."]);
            return;
        };
        let mut known: Vec<(usize, &'static [u8])> = Vec::new();
        for (name, value) in items {
            if let Some(id) = find(defs, name) {
                if name == ENABLE_SECURE && strtoul(value, Dialect::Strict).0 == 1 {
                    self.enable_secure = true;
                    return;
                }
                known.push((id, value));
            }
        }
        for (id, value) in known {
            if !self.apply(defs, id, value, Dialect::Strict) {
                self.warn_value(defs, id, value);
            }
        }
    }
}

/// The `name=value` items of a `GLIBC_TUNABLES` value under the strict
/// rules; `None` if the string is malformed.
fn strict_items(s: &'static [u8]) -> Option<Vec<(&'static [u8], &'static [u8])>> {
    let mut items = Vec::new();
    if s.is_empty() {
        return Some(items);
    }
    let mut i = 0;
    loop {
        let start = i;
        while i < s.len() && s[i] != b'=' && s[i] != b':' {
            i += 1;
        }
        if i == s.len() {
            return None;
        }
        if s[i] == b':' {
            i += 1;
            continue;
        }
        let name = &s[start..i];
        i += 1;
        let vstart = i;
        while i < s.len() && s[i] != b'=' && s[i] != b':' {
            i += 1;
        }
        if i < s.len() && s[i] == b'=' {
            return None;
        }
        items.push((name, &s[vstart..i]));
        if i == s.len() {
            return Some(items);
        }
        i += 1;
    }
}

fn find(defs: Tunables, name: &[u8]) -> Option<usize> {
    defs.id_of(name).filter(|&id| id < MAX_TUNABLES)
}

/// `NAME=VALUE` entries only (ld.so skips the others).
fn split_entry(e: &'static [u8]) -> Option<(&'static [u8], &'static [u8])> {
    let eq = e.iter().position(|&b| b == b'=')?;
    Some((&e[..eq], &e[eq + 1..]))
}

/// Reads the tunables of the build whose table is `defs` from `env`.
pub fn parse(defs: Tunables, dialect: Dialect, env: &[&'static [u8]], secure: bool) -> Parsed {
    let mut p = Parsed::new();
    if dialect == Dialect::Strict && secure {
        return p;
    }
    // The few tunables with an environment alias (`MALLOC_ARENA_MAX`, 8 of
    // 50-odd), so that each variable is compared with those only; with
    // the value the strict dialect found for each (applied after
    // `GLIBC_TUNABLES`). On the heap: as arrays of `MAX_TUNABLES` they
    // were 2.5 KB of the deepest start-up stack frames.
    let mut aliased: Vec<(usize, &str, Option<&'static [u8]>)> =
        (0..defs.len().min(MAX_TUNABLES)).map(|id| (id, defs.alias(id), None)).filter(|(_, a, _)| !a.is_empty()).collect();
    // The bytes a variable read here can start with (`G`, and the aliases'
    // `M` and `L`): any other entry is passed by without measuring its name.
    let mut first = [0u64; 4];
    for b in core::iter::once(GLIBC_TUNABLES).chain(aliased.iter().map(|(_, a, _)| a.as_bytes())).filter_map(|n| n.first()) {
        first[usize::from(b >> 6)] |= 1 << (b & 63);
    }
    for &e in env {
        if e.first().is_none_or(|&b| first[usize::from(b >> 6)] >> (b & 63) & 1 == 0) {
            continue;
        }
        let Some((name, value)) = split_entry(e) else { continue };
        if name == GLIBC_TUNABLES {
            match dialect {
                Dialect::Lenient => p.lenient(defs, value, secure),
                Dialect::Strict => p.strict(defs, value),
            }
            continue;
        }
        let Some((id, alias, strict_value)) = aliased.iter_mut().find(|(_, alias, _)| alias.as_bytes() == name) else {
            continue;
        };
        let (id, alias) = (*id, *alias);
        match dialect {
            Dialect::Strict => *strict_value = Some(value),
            Dialect::Lenient => {
                if p.set[id] {
                    continue;
                }
                if secure {
                    match defs.get(id).and_then(|t| t.security) {
                        Some(TunableSecurity::None) => {}
                        Some(TunableSecurity::Erase) => {
                            if !p.erase.contains(&alias) {
                                p.erase.push(alias);
                            }
                            continue;
                        }
                        _ => continue,
                    }
                }
                p.apply(defs, id, value, Dialect::Lenient);
            }
        }
    }
    if dialect == Dialect::Strict && !p.enable_secure {
        // In id order, as glibc's loop over its tunables list.
        for &(id, _, v) in &aliased {
            if let Some(v) = v {
                if !p.set[id] && !p.apply(defs, id, v, Dialect::Strict) {
                    p.warn_value(defs, id, v);
                }
            }
        }
    }
    if p.enable_secure {
        p.set = [false; MAX_TUNABLES];
        p.text = [None; MAX_TUNABLES];
    }
    p
}

/// Whether `env` asks for secure mode through `glibc.rtld.enable_secure=1`
/// (glibc 2.40 and later). The loader must know before it knows which
/// glibc the program uses, so this reads the strict rules for every build
/// (a 2.38-or-older glibc would ignore the unknown tunable: ld-cah is
/// stricter there).
pub fn enable_secure_requested(env: &[&'static [u8]]) -> bool {
    env.iter()
        .filter_map(|&e| e.strip_prefix(GLIBC_TUNABLES)?.strip_prefix(b"="))
        .any(|v| strict_items(v).unwrap_or_default().iter().any(|(n, v)| *n == ENABLE_SECURE && strtoul(v, Dialect::Strict).0 == 1))
}

/// What must hold of [`parse`]'s answer for any environment, hostile or
/// not; panics with the rule broken. For the mutation test below and the
/// `glibc_tunables` fuzz target (the variables are the attacker's in a
/// set-uid program: glibc's own parser of them was CVE-2023-4911).
///
/// - Secure mode applies only tunables of level `NONE` (2.38 and older)
///   or none at all (2.39 and later).
/// - Each `GLIBC_TUNABLES` entry gets a rewritten value no longer than its
///   own (the stack is edited in place), made only of known tunables not
///   of level `SXID_ERASE`, in their order in the entry.
/// - A number that was set lies within its tunable's bounds.
/// - Each warning is one line.
pub fn check_invariants(defs: Tunables, dialect: Dialect, env: &[&'static [u8]], secure: bool) {
    let p = parse(defs, dialect, env, secure);
    let level = |id: usize| defs.get(id).and_then(|t| t.security);
    for id in (0..MAX_TUNABLES).filter(|&id| p.set[id]) {
        assert!(
            !secure || (dialect == Dialect::Lenient && level(id) == Some(TunableSecurity::None)),
            "{} applied in secure mode",
            defs.name(id)
        );
        let Some(t) = defs.get(id) else { panic!("tunable {id} set but not defined") };
        let v = p.num[id];
        let in_range = match t.ty {
            TunableType::String => p.text[id].is_some(),
            TunableType::Int32 => (t.min as i64) <= (v as i64) && (v as i64) <= (t.max as i64),
            _ => t.min <= v && v <= t.max,
        };
        assert!(in_range, "{} set to {v} outside its bounds", defs.name(id));
    }
    let entries: Vec<&[u8]> = env.iter().filter_map(|&e| split_entry(e)).filter(|(n, _)| *n == GLIBC_TUNABLES).map(|(_, v)| v).collect();
    if secure && dialect == Dialect::Lenient {
        assert_eq!(p.rewritten.len(), entries.len(), "one rewritten value per GLIBC_TUNABLES entry");
        for (new, old) in p.rewritten.iter().zip(&entries) {
            assert!(new.len() <= old.len(), "rewritten value longer than the original");
            let mut rest: &[u8] = old;
            for item in new.split(|&b| b == b':').filter(|_| !new.is_empty()) {
                let name = item.split(|&b| b == b'=').next().unwrap_or(item);
                let id = find(defs, name).expect("an unknown tunable kept");
                assert_ne!(level(id), Some(TunableSecurity::Erase), "an SXID_ERASE tunable kept");
                let at = rest.windows(item.len()).position(|w| w == item).expect("a kept item not in the original, in order");
                rest = &rest[at + item.len()..];
            }
        }
    } else {
        assert!(p.rewritten.is_empty(), "rewritten outside secure mode or under the strict rules");
    }
    for w in &p.warnings {
        assert!(
            w.starts_with(b"WARNING: ld.so: ") && w.iter().position(|&b| b == b'\n') == Some(w.len() - 1),
            "a warning that is not one line"
        );
    }
}

/// The image of one `tunable_val_t` (at most 16 bytes: `Layout::check`).
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct ValImage([u8; 16]);

impl ValImage {
    fn put(&mut self, off: u16, v: u64) {
        self.0[off as usize..off as usize + 8].copy_from_slice(&v.to_le_bytes());
    }

    fn get(&self, off: u16) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[off as usize..off as usize + 8]);
        u64::from_le_bytes(b)
    }
}

/// The values `__tunable_get_val` reports, fixed after start-up.
struct Table {
    tunables: Tunables,
    /// 2.39 and later: a string tunable's value is written as a pointer to
    /// its `struct tunable_str_t`; before, as the `const char *` itself.
    str_struct: bool,
    /// Where the string pointer sits in a `tunable_val_t`.
    str_off: u16,
    numval_off: u16,
    set: [bool; MAX_TUNABLES],
    vals: [ValImage; MAX_TUNABLES],
}

static TABLE: spin::Once<Table> = spin::Once::new();

/// Fixes the values of build `l` from `p` (once; later calls do nothing).
/// String values are copied with a terminating NUL (glibc up to 2.38 hands
/// callbacks a C string).
pub fn install(l: &'static Layout, p: &Parsed) {
    let tv = &l.tunable_val;
    let (str_struct, str_off) = match tv.strval_str {
        Some(f) => (true, f.off),
        None => (false, tv.strval.off),
    };
    let mut vals = [ValImage([0; 16]); MAX_TUNABLES];
    for (id, t) in l.tunables.defs.iter().take(MAX_TUNABLES).enumerate() {
        if t.ty == TunableType::String {
            if let Some(text) = p.text[id].filter(|_| p.set[id]) {
                let mut copy = text.to_vec();
                copy.push(0);
                vals[id].put(str_off, copy.leak().as_ptr() as u64);
                if let Some(n) = tv.strval_len {
                    vals[id].put(n.off, text.len() as u64);
                }
            }
        } else {
            vals[id].put(tv.numval.off, if p.set[id] { p.num[id] } else { t.default });
        }
    }
    TABLE.call_once(|| Table { tunables: l.tunables, str_struct, str_off, numval_off: tv.numval.off, set: p.set, vals });
}

/// Reads the tunables of `l` from `env`, prints ld.so's warnings, fixes
/// the values and returns what the environment needs in secure mode.
pub fn init(l: &'static Layout, env: &[&'static [u8]], secure: bool) -> Parsed {
    let mut p = parse(l.tunables, Dialect::of(l), env, secure);
    if l.arch == Arch::Aarch64 {
        // ld.so's aarch64 CPU set-up stores the MTE state it settled on
        // into `glibc.mem.tagging` and marks it set, whatever the user
        // asked; ld-cah never enables MTE (`cpu.rs` leaves `mte_state` 0).
        if let Some(id) = find(l.tunables, b"glibc.mem.tagging") {
            p.set[id] = true;
            p.num[id] = 0;
        }
    }
    for w in &p.warnings {
        crate::sys::write_all(2, w);
    }
    install(l, &p);
    p
}

/// The current value of the tunable called `name` (its default when
/// unset), for the loader's own decisions (`glibc.pthread.rseq`). `None`
/// if tunables are not set up or the build has no such tunable.
pub fn value(name: &str) -> Option<u64> {
    let t = TABLE.get()?;
    let id = id_of(name)?;
    Some(t.vals[id].get(t.numval_off))
}

/// The id of the tunable called `name`, if tunables are set up and the
/// build has it.
fn id_of(name: &str) -> Option<usize> {
    find(TABLE.get()?.tunables, name.as_bytes())
}

/// Whether the user set the tunable called `name`.
pub fn is_set_by_name(name: &str) -> bool {
    id_of(name).and_then(|id| u32::try_from(id).ok()).is_some_and(is_set)
}

/// `__tunable_is_initialized(id)`.
pub fn is_set(id: u32) -> bool {
    TABLE.get().is_some_and(|t| t.set.get(id as usize).copied().unwrap_or(false))
}

/// `__tunable_get_val(id, valp, cb)`: writes the value with the tunable's
/// width and, if the user set it, calls `cb` with its `tunable_val_t`.
/// `false` if tunables are not set up yet.
///
/// # Safety
/// `valp` has room for the tunable's type; `cb` is 0 or a function taking
/// a `tunable_val_t *`.
pub unsafe fn get(id: u32, valp: *mut u8, cb: usize) -> bool {
    let Some(t) = TABLE.get() else { return false };
    let id = id as usize;
    let Some(def) = t.tunables.get(id).filter(|_| id < MAX_TUNABLES) else { return true };
    let img = &t.vals[id];
    // SAFETY: the caller's buffer has the tunable's width.
    unsafe {
        match def.ty {
            TunableType::Int32 => (valp as *mut u32).write_unaligned(img.get(t.numval_off) as u32),
            TunableType::Uint64 | TunableType::SizeT => (valp as *mut u64).write_unaligned(img.get(t.numval_off)),
            TunableType::String if t.str_struct => (valp as *mut u64).write_unaligned(img.0.as_ptr() as u64 + u64::from(t.str_off)),
            TunableType::String => (valp as *mut u64).write_unaligned(img.get(t.str_off)),
        }
    }
    if t.set[id] && cb != 0 {
        // SAFETY: libc's callback takes a `tunable_val_t *`; the image
        // lives forever and callbacks only read it.
        let f: extern "C" fn(*mut u8) = unsafe { core::mem::transmute(cb) };
        f(img.0.as_ptr() as *mut u8);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::glibc::layouts;

    fn build(version: &str, arch: Arch) -> &'static Layout {
        layouts::ALL.iter().copied().find(|l| l.glibc_version == version && l.arch == arch).unwrap()
    }

    fn names(l: &Layout) -> Vec<&'static str> {
        l.tunables.names.iter().collect()
    }

    /// Tunable ids read off the build by hand (`ld.so --list-tunables`),
    /// independently of the generator.
    #[test]
    fn bookworm_ids_match_the_abi_notes() {
        let x86: Vec<String> = [
            "rtld.nns",
            "elision.skip_lock_after_retries",
            "malloc.trim_threshold",
            "malloc.perturb",
            "cpu.x86_shared_cache_size",
            "pthread.rseq",
            "mem.tagging",
            "elision.tries",
            "elision.enable",
            "malloc.hugetlb",
            "cpu.x86_rep_movsb_threshold",
            "malloc.mxfast",
            "rtld.dynamic_sort",
            "elision.skip_lock_busy",
            "malloc.top_pad",
            "cpu.x86_rep_stosb_threshold",
            "cpu.x86_non_temporal_threshold",
            "cpu.x86_shstk",
            "pthread.stack_cache_size",
            "gmon.minarcs",
            "cpu.hwcap_mask",
            "malloc.mmap_max",
            "elision.skip_trylock_internal_abort",
            "malloc.tcache_unsorted_limit",
            "cpu.x86_ibt",
            "cpu.hwcaps",
            "elision.skip_lock_internal_abort",
            "malloc.arena_max",
            "malloc.mmap_threshold",
            "cpu.x86_data_cache_size",
            "malloc.tcache_count",
            "malloc.arena_test",
            "pthread.mutex_spin_count",
            "gmon.maxarcs",
            "rtld.optional_static_tls",
            "malloc.tcache_max",
            "malloc.check",
        ]
        .iter()
        .map(|n| format!("glibc.{n}"))
        .collect();
        assert_eq!(names(build("2.36", Arch::X86_64)), x86);
        let arm: Vec<String> = [
            "rtld.nns",
            "elision.skip_lock_after_retries",
            "malloc.trim_threshold",
            "malloc.perturb",
            "pthread.rseq",
            "cpu.name",
            "mem.tagging",
            "elision.tries",
            "elision.enable",
            "malloc.hugetlb",
            "malloc.mxfast",
            "rtld.dynamic_sort",
            "elision.skip_lock_busy",
            "malloc.top_pad",
            "pthread.stack_cache_size",
            "gmon.minarcs",
            "cpu.hwcap_mask",
            "malloc.mmap_max",
            "elision.skip_trylock_internal_abort",
            "malloc.tcache_unsorted_limit",
            "elision.skip_lock_internal_abort",
            "malloc.arena_max",
            "malloc.mmap_threshold",
            "malloc.tcache_count",
            "malloc.arena_test",
            "pthread.mutex_spin_count",
            "gmon.maxarcs",
            "rtld.optional_static_tls",
            "malloc.tcache_max",
            "malloc.check",
        ]
        .iter()
        .map(|n| format!("glibc.{n}"))
        .collect();
        assert_eq!(names(build("2.36", Arch::Aarch64)), arm);
        // Defaults quoted there.
        let l = build("2.36", Arch::X86_64);
        let t = |n: &str| *l.tunables.get(l.tunables.id_of(n.as_bytes()).unwrap()).unwrap();
        assert_eq!((t("glibc.rtld.nns").default, t("glibc.rtld.nns").ty), (4, TunableType::SizeT));
        assert_eq!((t("glibc.pthread.rseq").default, t("glibc.pthread.rseq").ty), (1, TunableType::Int32));
        assert_eq!(t("glibc.pthread.stack_cache_size").default, 41943040);
        assert_eq!((t("glibc.cpu.hwcap_mask").default, t("glibc.cpu.hwcap_mask").ty), (6, TunableType::Uint64));
        assert_eq!(t("glibc.cpu.x86_shstk").ty, TunableType::String);
        assert_eq!(l.tunables.alias(l.tunables.id_of(b"glibc.malloc.check").unwrap()), "MALLOC_CHECK_");
        assert_eq!(l.tunables.name(l.tunables.id_of(b"glibc.malloc.check").unwrap()), "glibc.malloc.check");
        assert_eq!(l.tunables.id_of(b"glibc.malloc.chec"), None);
        assert_eq!(l.tunables.id_of(b"glibc.malloc.checks"), None);
        for (id, _, name, alias) in l.tunables.iter() {
            assert_eq!((l.tunables.id_of(name.as_bytes()), l.tunables.name(id), l.tunables.alias(id)), (Some(id), name, alias));
        }
    }

    #[test]
    fn every_build_has_a_usable_table() {
        for l in layouts::ALL {
            assert!(l.tunables.len() <= MAX_TUNABLES);
            let levels = l.tunables.defs[0].security.is_some();
            // Security levels and the {str, len} string went away together (2.39).
            assert_eq!(levels, l.tunable_val.strval_len.is_none(), "{} {:?}", l.glibc_version, l.arch);
            assert_eq!(Dialect::of(l) == Dialect::Lenient, levels, "{} {:?}", l.glibc_version, l.arch);
            // rseq (2.35) and memory tagging (2.33) are newer than 2.31, whose
            // libc has no `_thread_db_*` descriptors (threads in libpthread).
            let newer = !l.fingerprint.thread_db.is_empty();
            for (name, all) in
                [("glibc.malloc.check", true), ("glibc.malloc.perturb", true), ("glibc.pthread.rseq", false), ("glibc.mem.tagging", false)]
            {
                let has = l.tunables.id_of(name.as_bytes()).is_some();
                assert!(has || !(all || newer), "{} {:?} lacks {name}", l.glibc_version, l.arch);
            }
        }
    }

    #[test]
    fn strtoul_like_ld_so() {
        use Dialect::*;
        for d in [Lenient, Strict] {
            assert_eq!(strtoul(b"42", d), (42, 2));
            assert_eq!(strtoul(b" \t0x1F", d), (31, 6));
            assert_eq!(strtoul(b"0377", d), (255, 4));
            assert_eq!(strtoul(b"08", d), (0, 1));
            assert_eq!(strtoul(b"+2", d), (2, 2));
            assert_eq!(strtoul(b"-1", d), (u64::MAX, 2));
            assert_eq!(strtoul(b"", d), (0, 0));
            assert_eq!(strtoul(b"x", d), (0, 0));
            assert_eq!(strtoul(b"0x", d), (0, 2));
            assert_eq!(strtoul(b"3x", d), (3, 1));
            assert_eq!(strtoul(b"0xffffffffffffffff", d).0, u64::MAX);
        }
        assert_eq!(strtoul(b"18446744073709551614", Lenient).0, u64::MAX);
        assert_eq!(strtoul(b"18446744073709551614", Strict), (u64::MAX - 1, 20));
        assert_eq!(strtoul(b"18446744073709551616", Strict), (u64::MAX, 19));
    }

    fn get(l: &Layout, p: &Parsed, name: &str) -> Option<u64> {
        let id = l.tunables.id_of(name.as_bytes()).unwrap();
        p.set[id].then_some(p.num[id])
    }

    /// Cases observed with `ld.so --list-tunables` of both builds.
    #[test]
    fn parsing_rules_of_2_36_and_2_41() {
        let old = build("2.36", Arch::X86_64);
        let new = build("2.41", Arch::X86_64);
        let run = |l: &'static Layout, v: &'static str| parse(l.tunables, Dialect::of(l), &[v.as_bytes()], false);
        let check = "glibc.malloc.check";
        // (GLIBC_TUNABLES=..., 2.36's glibc.malloc.check, 2.41's, 2.41 warns)
        let cases: &[(&'static str, Option<u64>, Option<u64>, bool)] = &[
            ("GLIBC_TUNABLES=glibc.malloc.check=3:", Some(3), None, true),
            ("GLIBC_TUNABLES=glibc.malloc.check", None, None, true),
            ("GLIBC_TUNABLES=glibc.malloc.check=3x", Some(3), None, true),
            ("GLIBC_TUNABLES=glibc.malloc.check=9", None, None, false),
            ("GLIBC_TUNABLES=glibc.malloc.check=0x2", Some(2), Some(2), false),
            ("GLIBC_TUNABLES=glibc.malloc.check= 2", Some(2), Some(2), false),
            ("GLIBC_TUNABLES=glibc.malloc.check=1:glibc.malloc.check=2", Some(2), Some(2), false),
            ("GLIBC_TUNABLES=:::glibc.malloc.check=1", Some(1), Some(1), false),
            ("GLIBC_TUNABLES=foo:glibc.malloc.check=1", Some(1), Some(1), false),
            ("GLIBC_TUNABLES=glibc.malloc.check=-1", None, None, false),
            ("GLIBC_TUNABLES=glibc.malloc.check=1=2", Some(1), None, true),
            ("GLIBC_TUNABLES=glibc.malloc.check=1:=2", Some(1), Some(1), false),
            ("GLIBC_TUNABLES=glibc.malloc.check=1:foo", Some(1), None, true),
            ("GLIBC_TUNABLES=glibc.malloc.check=1:foo=", Some(1), Some(1), false),
            ("GLIBC_TUNABLES=glibc.malloc.check=1::", Some(1), None, true),
            ("GLIBC_TUNABLES=glibc.malloc.check=08", Some(0), None, true),
            ("GLIBC_TUNABLES=glibc.malloc.check=2:glibc.rtld.enable_secure=1:glibc.malloc.perturb=3", Some(2), None, false),
            ("GLIBC_TUNABLES=glibc.malloc.check=2:glibc.rtld.enable_secure=1:bad", Some(2), None, true),
            ("GLIBC_TUNABLES=glibc.malloc.check=glibc.malloc.perturb=5", Some(0), None, true),
        ];
        for &(env, a, b, warns) in cases {
            assert_eq!(get(old, &run(old, env), check), a, "2.36 {env}");
            let p = run(new, env);
            assert_eq!(get(new, &p, check), b, "2.41 {env}");
            assert_eq!(!p.warnings.is_empty(), warns, "2.41 {env}: {:?}", p.warnings);
        }
        let p = run(new, "GLIBC_TUNABLES=glibc.malloc.check=2:glibc.rtld.enable_secure=1");
        assert!(p.enable_secure && !p.set.iter().any(|&s| s));
        assert!(enable_secure_requested(&[b"GLIBC_TUNABLES=glibc.rtld.enable_secure=01"]));
        assert!(!enable_secure_requested(&[b"GLIBC_TUNABLES=glibc.rtld.enable_secure=2"]));
        assert!(!enable_secure_requested(&[b"GLIBC_TUNABLES=glibc.rtld.enable_secure=1:bad"]));
        // INT_32: 2.41 truncates to 32 bits before the bounds check.
        let tries = "glibc.elision.tries";
        assert_eq!(get(old, &run(old, "GLIBC_TUNABLES=glibc.elision.tries=4294967297"), tries), None);
        assert_eq!(get(new, &run(new, "GLIBC_TUNABLES=glibc.elision.tries=4294967297"), tries), Some(1));
        assert_eq!(get(new, &run(new, "GLIBC_TUNABLES=glibc.elision.tries=2147483648"), tries), None);
        let mmap = "glibc.malloc.mmap_threshold";
        assert_eq!(get(old, &run(old, "GLIBC_TUNABLES=glibc.malloc.mmap_threshold=18446744073709551614"), mmap), Some(u64::MAX));
        assert_eq!(get(new, &run(new, "GLIBC_TUNABLES=glibc.malloc.mmap_threshold=18446744073709551614"), mmap), Some(u64::MAX - 1));
        let p = run(new, "GLIBC_TUNABLES=glibc.malloc.check=3x");
        assert_eq!(p.warnings, [b"WARNING: ld.so: invalid GLIBC_TUNABLES value `3x' for option `glibc.malloc.check': ignored.\n".to_vec()]);
        let p = run(new, "GLIBC_TUNABLES=x");
        assert_eq!(p.warnings, [b"WARNING: ld.so: invalid GLIBC_TUNABLES `x': ignored.\n".to_vec()]);
    }

    #[test]
    fn legacy_variables() {
        for l in [build("2.36", Arch::X86_64), build("2.41", Arch::Aarch64)] {
            let d = Dialect::of(l);
            let p = parse(
                l.tunables,
                d,
                &[
                    b"MALLOC_MMAP_THRESHOLD_=99",
                    b"GLIBC_TUNABLES=glibc.malloc.mmap_threshold=77",
                    b"MALLOC_TOP_PAD_=5",
                    b"MALLOC_PERTURB_=300",
                ],
                false,
            );
            assert_eq!(get(l, &p, "glibc.malloc.mmap_threshold"), Some(77));
            assert_eq!(get(l, &p, "glibc.malloc.top_pad"), Some(5));
            assert_eq!(get(l, &p, "glibc.malloc.perturb"), None);
            // An invalid GLIBC_TUNABLES value leaves the variable's.
            let p = parse(l.tunables, d, &[b"GLIBC_TUNABLES=glibc.malloc.check=7", b"MALLOC_CHECK_=1"], false);
            assert_eq!(get(l, &p, "glibc.malloc.check"), Some(1));
        }
    }

    /// Environments built at random from the builds' own tunable names and
    /// aliases, numbers of every shape and the separators, with bytes
    /// corrupted: every build's rules, secure and not, keep the
    /// invariants of [`check_invariants`].
    #[test]
    fn hostile_environments_keep_the_rules() {
        use crate::elf::fuzz::{mutate, Rng};
        let mut rng = Rng(0x7e57_7a6b_1e5c_a1e5);
        let pick = |rng: &mut Rng, n: usize| (rng.next_u64() % n as u64) as usize;
        const VALUES: [&[u8]; 12] =
            [b"0", b"1", b"-1", b"0x10", b"077", b" 42", b"18446744073709551616", b"4096junk", b"", b"=", b"2147483648", b"-2147483649"];
        for l in layouts::ALL.iter().copied() {
            let defs = l.tunables;
            let dialect = Dialect::of(l);
            for _ in 0..1500 {
                let mut env: Vec<&'static [u8]> = Vec::new();
                for _ in 0..1 + pick(&mut rng, 4) {
                    let mut e: Vec<u8> = match pick(&mut rng, 4) {
                        0..=1 => b"GLIBC_TUNABLES=".to_vec(),
                        2 => {
                            let a = defs.alias(pick(&mut rng, defs.len()));
                            [a.as_bytes(), b"="].concat()
                        }
                        _ => b"OTHER=".to_vec(),
                    };
                    for k in 0..pick(&mut rng, 6) {
                        if k > 0 || pick(&mut rng, 4) == 0 {
                            e.extend_from_slice([&b":"[..], b"::", b"="][pick(&mut rng, 3)]);
                        }
                        let name = match pick(&mut rng, 6) {
                            0 => ENABLE_SECURE,
                            1 => b"glibc.no.such",
                            _ => defs.name(pick(&mut rng, defs.len())).as_bytes(),
                        };
                        e.extend_from_slice(name);
                        if pick(&mut rng, 8) != 0 {
                            e.push(b'=');
                        }
                        e.extend_from_slice(VALUES[pick(&mut rng, VALUES.len())]);
                    }
                    if pick(&mut rng, 3) == 0 {
                        let n = 1 + pick(&mut rng, 3);
                        let len = e.len();
                        mutate(&mut e, &mut rng, n, len);
                        // Environment strings hold no NUL.
                        e.iter_mut().filter(|b| **b == 0).for_each(|b| *b = b'x');
                    }
                    env.push(Vec::leak(e));
                }
                for secure in [false, true] {
                    check_invariants(defs, dialect, &env, secure);
                }
            }
        }
    }

    #[test]
    fn secure_mode() {
        let env: &[&'static [u8]] = &[
            b"GLIBC_TUNABLES=glibc.malloc.check=3:glibc.malloc.perturb=7:glibc.malloc.mmap_threshold=4096:glibc.pthread.rseq=0:glibc.rtld.nns=3:foo=1:glibc.malloc.tcache_count=2",
            b"MALLOC_CHECK_=3",
            b"MALLOC_PERTURB_=42",
            b"LD_HWCAP_MASK=1",
        ];
        // 2.36: level SXID_IGNORE stays in the variable, SXID_ERASE goes,
        // nothing applies (no tunable of level NONE here).
        let l = build("2.36", Arch::X86_64);
        let p = parse(l.tunables, Dialect::of(l), env, true);
        assert_eq!(p.rewritten, [b"glibc.malloc.perturb=7:glibc.malloc.mmap_threshold=4096".to_vec()]);
        assert_eq!(p.erase, ["MALLOC_CHECK_", "LD_HWCAP_MASK"]);
        assert!(!p.set.iter().any(|&s| s));
        // 2.41: nothing at all (unsecvars removes the variables).
        let l = build("2.41", Arch::X86_64);
        let p = parse(l.tunables, Dialect::of(l), env, true);
        assert!(p.rewritten.is_empty() && p.erase.is_empty() && !p.set.iter().any(|&s| s));
        assert!(l.unsecure_env.contains(b"GLIBC_TUNABLES") && l.unsecure_env.contains(b"MALLOC_PERTURB_"));
    }
}
