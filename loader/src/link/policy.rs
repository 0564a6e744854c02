//! What the loader does with the closure lock (`docs/verification.md`).
//!
//! - The lock is read once, from the program's memory (its `PT_NOTE`
//!   segments), before any dependency is loaded: [`setup`].
//! - A locked name ([`want`]) is looked for first in the store
//!   (`<store>/<hex digest>`), then by the ordinary search; a candidate is
//!   accepted only if its digest, computed from the descriptor it will be
//!   mapped from (or found in a trusted hash cache for its exact identity),
//!   is the locked one ([`Want::accept`], called by `link::closure`'s
//!   `try_path`). Rejected candidates are remembered for the error.
//! - An unlocked name is loaded as usual, unless the lock is `STRICT` or
//!   `CAH_STRICT` is set: then it is refused.
//! - At start-up a candidate only root or this user can write is first
//!   accepted on trust, without a digest ([`Pending`]): the binding plan
//!   recorded for exactly this closure vouches for all of them at once,
//!   else each is looked up or hashed, before anything of the closure runs
//!   ([`confirm`]); when one does not match, the start-up loads its
//!   closure again with each candidate verified as it is found ([`abandon`]).
//! - A locked name that an object already loaded answers to (by
//!   `DT_SONAME`, a preload, an earlier name) is accepted only if that
//!   object was verified with the locked digest ([`reuse`]): a locked
//!   dependency is never replaced by an unverified file.
//!
//! The policy is process-wide (start-up and `dlopen` use the same), set
//! once by `start` through [`setup`]. Without a lock and without strict
//! mode it does nothing at all: no cache is opened, nothing is hashed.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt::Write as _;

use object::elf::PT_NOTE;

use crate::diag::{self, Error};
use crate::err;
use crate::link::{Dso, DsoId, Kind, Namespace};
use crate::sys::{Fd, Stat};
use crate::verify::digest::Digest;
use crate::verify::lock::{find_lock, LockError, LockView};
use crate::verify::runtime::{self, Caches, Source};

/// Where the content-addressed store is unless `CAH_STORE` says otherwise.
pub const DEFAULT_STORE: &[u8] = b"/var/lib/cah/store";

/// How a loaded file was verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum How {
    /// Found in the store, digest checked.
    Store,
    /// Digest taken from a trusted hash cache entry for its exact identity.
    Cache,
    /// Hashed during this start.
    Hashed,
    /// Vouched for by the binding plan of this closure (recorded by a
    /// start-up that verified the same files for the same digests).
    Plan,
    /// Accepted on trust, not confirmed yet (start-up only, see [`Pending`]).
    Pending,
}

impl How {
    /// How a file whose digest came from `source` was verified.
    fn of(in_store: bool, source: Source) -> How {
        match (in_store, source) {
            (true, _) => How::Store,
            (false, Source::Cache) => How::Cache,
            (false, Source::Hashed | Source::Copied) => How::Hashed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            How::Store => "store",
            How::Cache => "cache",
            How::Hashed => "hashed",
            How::Plan => "binding plan",
            How::Pending => "pending",
        }
    }
}

/// A file accepted for a locked name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verified {
    /// `(st_dev, st_ino)`, as `Dso::file_id`.
    pub file: (u64, u64),
    pub digest: Digest,
    pub how: How,
}

/// The process's verification settings and what it verified so far.
pub struct Policy {
    /// The program, as error messages name it.
    prog: String,
    lock: Option<LockView<'static>>,
    /// Why unlocked dependencies are refused, if they are.
    strict: Option<&'static str>,
    /// The store directory (empty: no store).
    store: Vec<u8>,
    places: Vec<runtime::Place>,
    euid: u32,
    /// Open for one load (start-up, a `dlopen`): see [`release_caches`].
    caches: spin::Mutex<Option<Caches>>,
    verified: spin::Mutex<Vec<Verified>>,
    /// `Some` while the start-up's candidates are accepted on trust: the
    /// ones accepted so, in order, until confirmed or abandoned.
    pending: spin::Mutex<Option<Vec<Pending>>>,
    debug: bool,
}

/// A locked candidate accepted at start-up before its digest is known.
/// Only a file that root or this user alone can write qualifies (one the
/// caches could vouch for, `runtime::sealed`): its identity then dates its
/// content, and the descriptor kept here, the very one it was mapped from,
/// is what a confirmation looks up or hashes.
struct Pending {
    name: Vec<u8>,
    path: Vec<u8>,
    fd: Fd,
    st: Stat,
    digest: Digest,
    in_store: bool,
}

static POLICY: spin::Once<Policy> = spin::Once::new();

/// The policy, if `setup` installed one that has anything to do.
pub fn active() -> Option<&'static Policy> {
    POLICY.get()
}

fn getenv(env: &[&'static [u8]], name: &[u8]) -> Option<&'static [u8]> {
    env.iter().find_map(|e| e.strip_prefix(name).and_then(|r| r.strip_prefix(b"=")))
}

/// Closes the hash cache files at the end of a load (start-up, a
/// `dlopen`): the program must not find their descriptors open, and the
/// next load opens them again (a few system calls, next to hashing or
/// mapping a library).
pub fn release_caches() {
    if let Some(p) = active() {
        *p.caches.lock() = None;
    }
}

/// Finds the closure lock in an object's `PT_NOTE` segments (in memory)
/// and keeps a copy of it for the life of the process.
pub fn lock_of(d: &Dso) -> Result<Option<LockView<'static>>, LockError> {
    let mut found: Option<&[u8]> = None;
    for p in d.phdrs.iter().filter(|p| p.p_type == PT_NOTE) {
        let Ok(len) = usize::try_from(p.p_filesz) else { continue };
        let Some(area) = d.img.bytes(d.base.wrapping_add(p.p_vaddr as usize), len) else { continue };
        if let Some(v) = find_lock(area, p.p_align)? {
            let desc = v.as_bytes();
            match found {
                // Two PT_NOTEs over the same bytes are one note.
                Some(f) if f.as_ptr() == desc.as_ptr() => {}
                Some(_) => return Err(LockError::DuplicateNote),
                None => found = Some(desc),
            }
        }
    }
    match found {
        None => Ok(None),
        Some(desc) => {
            let copy: &'static [u8] = Box::leak(desc.to_vec().into_boxed_slice());
            LockView::parse(copy).map(Some)
        }
    }
}

/// Reads the program's lock and the environment, and installs the policy.
/// `env` is the process environment; in secure mode `CAH_STORE`,
/// `CAH_CACHE_DIR` and `CAH_DEBUG` are ignored (`CAH_STRICT` can only make
/// loading stricter and is always honoured). With `provisional` (a
/// start-up that may use a binding plan), candidates are accepted on trust
/// until [`confirm`] or [`abandon`]. Returns whether that mode is on (a
/// locked program).
pub fn setup(ns: &Namespace, env: &[&'static [u8]], secure: bool, euid: u32, provisional: bool) -> Result<bool, Error> {
    let main = &ns.objs[ns.main];
    let prog = String::from(main.display_name());
    let lock = lock_of(main).map_err(|e| err!(&prog, "cannot use its closure lock: {}", e))?;
    let strict_env = getenv(env, b"CAH_STRICT").is_some_and(|v| !v.is_empty() && v != b"0");
    let strict = if lock.is_some_and(|l| l.flags().strict()) {
        Some("the closure lock is strict")
    } else if strict_env {
        Some("CAH_STRICT is set")
    } else {
        None
    };
    if lock.is_none() && strict.is_none() {
        return Ok(false);
    }
    let provisional = provisional && lock.is_some();
    let store = match getenv(env, b"CAH_STORE") {
        Some(s) if !secure => s.strip_suffix(b"/").unwrap_or(s).to_vec(),
        _ => DEFAULT_STORE.to_vec(),
    };
    let cache_dir = if secure { None } else { getenv(env, b"CAH_CACHE_DIR") };
    let debug = !secure
        && getenv(env, b"CAH_DEBUG")
            .is_some_and(|v| v.split(|&b| b == b',' || b == b' ' || b == b':').any(|w| w == b"verify" || w == b"all"));
    POLICY.call_once(|| Policy {
        prog,
        lock,
        strict,
        store,
        places: runtime::places(secure, euid, cache_dir),
        euid,
        caches: spin::Mutex::new(None),
        verified: spin::Mutex::new(Vec::new()),
        pending: spin::Mutex::new(provisional.then(Vec::new)),
        debug,
    });
    Ok(provisional)
}

impl Policy {
    /// The digest of an open file, through the caches (opened on first
    /// use); one hashed is recorded in them unless it differs from `expect`.
    fn digest_of(&self, fd: &Fd, st: &Stat, expect: Option<&Digest>) -> Result<runtime::Digested, &'static str> {
        // Loads are serialized (the loader lock), so this lock is never
        // contended: it only makes the caches' owner explicit.
        let mut caches = self.caches.lock();
        let caches = caches.get_or_insert_with(|| {
            let debug = self.debug;
            Caches::open(&self.places, self.euid, &mut |dir, what| {
                if debug {
                    diag::print(2, format_args!("ld-cah.so: verify: hash cache {}/hashes: {}\n", diag::show(dir), what));
                }
            })
        });
        runtime::digest_of(fd, st, Some(caches), self.euid, expect)
    }

    fn verified_file(&self, file: (u64, u64)) -> Option<Verified> {
        self.verified.lock().iter().find(|v| v.file == file).copied()
    }

    fn record(&self, v: Verified) {
        let mut all = self.verified.lock();
        if !all.iter().any(|w| w.file == v.file) {
            all.push(v);
        }
    }

    /// Says how a locked file was checked (`CAH_DEBUG=verify`): its
    /// digest and where that came from, or why it has none.
    fn say(&self, name: &[u8], path: &[u8], verdict: Result<(&Digest, &str), &str>, want: &Digest) {
        if !self.debug {
            return;
        }
        let mut line = diag::Line::new();
        let _ = write!(line, "ld-cah.so: verify: {}: {}: ", diag::show(name), diag::show(path));
        let _ = match verdict {
            Ok((digest, from)) => writeln!(line, "blake3:{digest} ({from}), {}", if digest == want { "ok" } else { "mismatch" }),
            Err(why) => writeln!(line, "{why}"),
        };
        line.flush_to(2);
    }

    pub fn lock(&self) -> Option<LockView<'static>> {
        self.lock
    }

    pub fn strict(&self) -> bool {
        self.strict.is_some()
    }
}

/// A rejected candidate: its path, and its digest or why it has none.
type Tried = (Vec<u8>, Result<Digest, &'static str>);

/// A candidate whose digest is the locked one.
pub struct Accepted {
    /// The verified bytes, when they must be mapped from memory rather than
    /// from the file (others can write it).
    pub copy: Option<Vec<u8>>,
    /// Taken on trust: once mapped, hand the descriptor to
    /// [`Want::keep_pending`].
    pub pending: bool,
}

/// At most this many candidates are taken on trust (each keeps its
/// descriptor open until confirmed); the rest are verified as found.
const MAX_PENDING: usize = 256;

/// What a locked name must resolve to, and the candidates rejected so far.
pub struct Want {
    policy: &'static Policy,
    pub name: Vec<u8>,
    pub digest: Digest,
    tried: RefCell<Vec<Tried>>,
}

/// Whether `name` is locked: `Ok(Some)` with what it must be, `Ok(None)` if
/// it is not (or nothing is verified), and an error if it is not locked
/// and strict mode refuses it.
pub fn want(name: &[u8]) -> Result<Option<Want>, Error> {
    let Some(p) = active() else { return Ok(None) };
    match p.lock.and_then(|l| l.get(name)) {
        Some(digest) => Ok(Some(Want { policy: p, name: name.to_vec(), digest, tried: RefCell::new(Vec::new()) })),
        None => match p.strict {
            Some(why) => Err(err!(&p.prog, "{}: not locked, and {} (unlocked dependencies are refused)", diag::show(name), why)),
            None => Ok(None),
        },
    }
}

impl Want {
    /// The store's directory (empty: no store).
    pub fn store_dir(&self) -> &[u8] {
        &self.policy.store
    }

    /// `<store>/<hex digest>`, the first place a locked name is looked for.
    pub fn store_path(&self) -> Option<Vec<u8>> {
        if self.policy.store.is_empty() {
            return None;
        }
        let mut p = self.policy.store.clone();
        p.push(b'/');
        p.extend_from_slice(&self.digest.to_hex());
        Some(p)
    }

    /// The check of one candidate, open as `fd` with `fstat` `st`: whether
    /// its digest is the locked one. `Some` if it is, holding the private
    /// copy to map when the file may not be mapped again (see
    /// `runtime::sealed`); a rejected candidate is remembered for the error
    /// message.
    pub fn accept(&self, fd: &Fd, st: &Stat, path: &[u8]) -> Option<Accepted> {
        let p = self.policy;
        if let Some(pending) = p.pending.lock().as_ref() {
            if let Some(v) = p.verified_file((st.dev, st.ino)).filter(|v| v.how == How::Pending) {
                // Already taken on trust (and mapped) for a digest: a file
                // has one, so it is this name's only if it is the same.
                if v.digest == self.digest {
                    return Some(Accepted { copy: None, pending: false });
                }
                self.tried.borrow_mut().push((path.to_vec(), Ok(v.digest)));
                return None;
            }
            if runtime::sealed(st, p.euid) && pending.len() < MAX_PENDING {
                return Some(Accepted { copy: None, pending: true });
            }
        }
        let result = p.digest_of(fd, st, None);
        p.say(&self.name, path, result.as_ref().map(|r| (&r.digest, source_name(r.source))).map_err(|w| *w), &self.digest);
        match result {
            Ok(r) if r.digest == self.digest => {
                p.record(Verified { file: (st.dev, st.ino), digest: r.digest, how: How::of(self.in_store(path), r.source) });
                Some(Accepted { copy: r.copy, pending: false })
            }
            Ok(r) => {
                self.tried.borrow_mut().push((path.to_vec(), Ok(r.digest)));
                None
            }
            Err(why) => {
                self.tried.borrow_mut().push((path.to_vec(), Err(why)));
                None
            }
        }
    }

    fn in_store(&self, path: &[u8]) -> bool {
        self.store_path().is_some_and(|s| s == path)
    }

    /// Keeps a candidate [`accept`](Want::accept) took on trust, now that
    /// it is mapped from `fd`, until the start-up's closure is confirmed.
    pub fn keep_pending(&self, fd: Fd, st: Stat, path: &[u8]) {
        let p = self.policy;
        let mut pending = p.pending.lock();
        let Some(list) = pending.as_mut() else { return };
        p.record(Verified { file: (st.dev, st.ino), digest: self.digest, how: How::Pending });
        let in_store = self.in_store(path);
        list.push(Pending { name: self.name.clone(), path: path.to_vec(), fd, st, digest: self.digest, in_store });
    }

    /// The error when no candidate matched: every candidate rejected here,
    /// then `others` (candidates that could not be opened or used).
    pub fn no_match<'a>(&self, others: impl Iterator<Item = (&'a [u8], &'a str)>) -> Error {
        let tried = self.tried.borrow();
        let mut list = String::new();
        for (path, what) in tried.iter() {
            if !list.is_empty() {
                list.push_str(", ");
            }
            let _ = match what {
                Ok(d) => write!(list, "{} (blake3:{})", diag::show(path), d),
                Err(why) => write!(list, "{} ({})", diag::show(path), why),
            };
        }
        for (path, why) in others {
            if tried.iter().any(|(p, _)| p == path) {
                continue;
            }
            if !list.is_empty() {
                list.push_str(", ");
            }
            let _ = write!(list, "{} ({})", diag::show(path), why);
        }
        no_match_error(&self.policy.prog, &self.name, &self.digest, &list)
    }
}

/// `PROG: NAME (blake3:HEX): no matching file; tried LIST; FETCH`, FETCH
/// saying how to get the file by its digest into the store.
pub fn no_match_error(prog: &str, name: &[u8], digest: &Digest, tried: &str) -> Error {
    const FETCH: &str = "fetch it by digest with `cah fetch PROG --from URL`";
    if tried.is_empty() {
        err!(prog, "{} (blake3:{}): no matching file; none found; {}", diag::show(name), digest, FETCH)
    } else {
        err!(prog, "{} (blake3:{}): no matching file; tried {}; {}", diag::show(name), digest, tried, FETCH)
    }
}

/// A name that an already loaded object `id` answers to: accepted if the
/// name is not locked (and not refused as unlocked), or if the object was
/// verified with the locked digest.
pub fn reuse(ns: &Namespace, id: DsoId, name: &[u8]) -> Result<DsoId, Error> {
    let Some(p) = active() else { return Ok(id) };
    let Some(d) = ns.objs.get(id) else { return Ok(id) };
    if d.kind != Kind::Library {
        return Ok(id);
    }
    let verified = d.file_id.and_then(|f| p.verified_file(f));
    match p.lock.and_then(|l| l.get(name)) {
        Some(want) => match verified {
            Some(v) if v.digest == want => Ok(id),
            _ => Err(err!(
                &p.prog,
                "{} (blake3:{}): already loaded from {}, which is not the locked file",
                diag::show(name),
                want,
                d.display_name()
            )),
        },
        None => match (p.strict, verified) {
            (Some(why), None) => Err(err!(&p.prog, "{}: not locked, and {} (unlocked dependencies are refused)", diag::show(name), why)),
            _ => Ok(id),
        },
    }
}

/// A library that carries a closure lock of its own must agree with the
/// program's on every name both lock (closure-lock.md, *Meaning*); one
/// whose lock note is malformed is refused like a program's.
pub fn check_agrees(ns: &Namespace, id: DsoId) -> Result<(), Error> {
    let Some(p) = active() else { return Ok(()) };
    let Some(plock) = p.lock else { return Ok(()) };
    let Some(d) = ns.objs.get(id).filter(|d| d.kind == Kind::Library) else { return Ok(()) };
    for ph in d.phdrs.iter().filter(|ph| ph.p_type == PT_NOTE) {
        let Ok(len) = usize::try_from(ph.p_filesz) else { continue };
        let Some(area) = d.img.bytes(d.base.wrapping_add(ph.p_vaddr as usize), len) else { continue };
        let lock = find_lock(area, ph.p_align).map_err(|e| err!(&p.prog, "{}: cannot use its closure lock: {}", d.display_name(), e))?;
        for entry in lock.iter().flat_map(|l| l.iter()) {
            if let Some(want) = plock.get(entry.name).filter(|w| *w != entry.digest) {
                return Err(err!(
                    &p.prog,
                    "{}: its closure lock has {} (blake3:{}), the program's has blake3:{}",
                    d.display_name(),
                    diag::show(entry.name),
                    entry.digest,
                    want
                ));
            }
        }
    }
    Ok(())
}

/// Whether start-up candidates are being accepted on trust (see [`Pending`]).
pub fn provisional() -> bool {
    active().is_some_and(|p| p.pending.lock().is_some())
}

/// Ends the taking on trust, confirming every candidate taken so.
///
/// With `by_plan`, the binding plan recorded for exactly this closure
/// vouches for all of them: its key holds each object's identity and the
/// digest it was accepted for, and a plan is written only by a start-up
/// that verified its closure, into a place with the hash cache's trust
/// rules (`docs/binding-plan.md`), so it states what cache entries would.
///
/// Otherwise each is confirmed as [`Want::accept`] would have verified it
/// when found: from the caches, or by hashing the descriptor it was mapped
/// from. `Err` if one does not have its locked digest or cannot be read:
/// the start-up then [`abandon`]s its closure and loads it again,
/// verifying each candidate as it is found (the search may go on past
/// this one).
pub fn confirm(by_plan: bool) -> Result<(), Unconfirmed> {
    let Some(p) = active() else { return Ok(()) };
    let Some(list) = p.pending.lock().take() else { return Ok(()) };
    let mut found = Vec::with_capacity(list.len());
    for c in &list {
        found.push(if by_plan {
            (How::Plan, "binding plan")
        } else {
            // A digest that is not the locked one is not recorded: the
            // search made again finds this file first and hashes it, as it
            // would have without taking it on trust.
            match p.digest_of(&c.fd, &c.st, Some(&c.digest)) {
                Ok(r) if r.digest == c.digest && r.copy.is_none() => (How::of(c.in_store, r.source), source_name(r.source)),
                _ => {
                    release_caches();
                    return Err(Unconfirmed);
                }
            }
        });
    }
    release_caches();
    let mut all = p.verified.lock();
    for (c, (how, from)) in list.iter().zip(found) {
        if let Some(v) = all.iter_mut().find(|v| v.file == (c.st.dev, c.st.ino)) {
            v.how = how;
        }
        p.say(&c.name, &c.path, Ok((&c.digest, from)), &c.digest);
    }
    Ok(())
}

/// A file taken on trust that is not the locked one (or cannot be read).
#[derive(Debug)]
pub struct Unconfirmed;

/// Where a digest came from, as `CAH_DEBUG=verify` says it.
fn source_name(s: Source) -> &'static str {
    match s {
        Source::Cache => "cache",
        Source::Hashed => "hashed",
        Source::Copied => "hashed a private copy: writable by others",
    }
}

/// Ends the taking on trust without confirming: what was taken so is
/// forgotten (its descriptors closed), for the closure to be loaded again.
pub fn abandon() {
    if let Some(p) = active() {
        *p.pending.lock() = None;
        p.verified.lock().retain(|v| v.how != How::Pending);
        if p.debug {
            diag::print(2, format_args!("ld-cah.so: verify: a file taken on trust is not the locked one: loading again\n"));
        }
    }
}

/// How `d` was verified, if it was.
pub fn verified(d: &Dso) -> Option<Verified> {
    active()?.verified_file(d.file_id?)
}

/// What `--list` adds after an object's line: nothing for a program
/// without a lock; else ` blake3:HEX ok (store|cache|hashed)` for a
/// verified library and ` not locked` for another.
pub fn list_note(d: &Dso) -> Option<String> {
    let p = active()?;
    if d.kind != Kind::Library {
        return None;
    }
    let mut s = String::new();
    match verified(d) {
        Some(v) => {
            let _ = write!(s, " blake3:{} ok ({})", v.digest, v.how.as_str());
        }
        None if p.lock.is_some() || p.strict.is_some() => s.push_str(" not locked"),
        None => return None,
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_no_match_error_line() {
        let want = crate::verify::hash(b"wanted");
        let got = crate::verify::hash(b"got");
        let e = no_match_error("./prog", b"libfoo.so.1", &want, &alloc::format!("/usr/lib/libfoo.so.1 (blake3:{got})"));
        assert_eq!(
            alloc::format!("{e}"),
            alloc::format!("./prog: libfoo.so.1 (blake3:{want}): no matching file; tried /usr/lib/libfoo.so.1 (blake3:{got}); fetch it by digest with `cah fetch PROG --from URL`")
        );
        let e = no_match_error("p", b"x.so", &want, "");
        assert_eq!(
            alloc::format!("{e}"),
            alloc::format!("p: x.so (blake3:{want}): no matching file; none found; fetch it by digest with `cah fetch PROG --from URL`")
        );
    }

    #[test]
    fn no_match_lists_rejections_then_other_failures_once() {
        let policy: &'static Policy = Box::leak(Box::new(Policy {
            prog: "prog".into(),
            lock: None,
            strict: None,
            store: b"/store".to_vec(),
            places: Vec::new(),
            euid: 0,
            caches: spin::Mutex::new(None),
            verified: spin::Mutex::new(Vec::new()),
            pending: spin::Mutex::new(None),
            debug: false,
        }));
        let digest = crate::verify::hash(b"a");
        let w = Want { policy, name: b"liba.so".to_vec(), digest, tried: RefCell::new(Vec::new()) };
        assert_eq!(w.store_path().unwrap(), alloc::format!("/store/{digest}").into_bytes());
        let other = crate::verify::hash(b"b");
        w.tried.borrow_mut().push((b"/x/liba.so".to_vec(), Ok(other)));
        w.tried.borrow_mut().push((b"/y/liba.so".to_vec(), Err("file changed while being hashed")));
        let others: [(&[u8], &str); 2] = [(b"/y/liba.so", "dup"), (b"/z/liba.so", "permission denied")];
        let e = w.no_match(others.into_iter());
        assert_eq!(
            e.message,
            alloc::format!(
                "liba.so (blake3:{digest}): no matching file; tried /x/liba.so (blake3:{other}), \
                 /y/liba.so (file changed while being hashed), /z/liba.so (permission denied); \
                 fetch it by digest with `cah fetch PROG --from URL`"
            )
        );
    }
}
