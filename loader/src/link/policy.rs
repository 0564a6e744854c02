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
}

impl How {
    pub fn as_str(self) -> &'static str {
        match self {
            How::Store => "store",
            How::Cache => "cache",
            How::Hashed => "hashed",
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
    debug: bool,
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
/// loading stricter and is always honoured).
pub fn setup(ns: &Namespace, env: &[&'static [u8]], secure: bool, euid: u32) -> Result<(), Error> {
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
        return Ok(());
    }
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
        debug,
    });
    Ok(())
}

impl Policy {
    /// The digest of an open file, through the caches (opened on first use).
    fn digest_of(&self, fd: &Fd, st: &Stat) -> Result<runtime::Digested, &'static str> {
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
        runtime::digest_of(fd, st, Some(caches), self.euid)
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
}

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
        let result = p.digest_of(fd, st);
        if p.debug {
            let mut line = diag::Line::new();
            let _ = write!(line, "ld-cah.so: verify: {}: {}: ", diag::show(&self.name), diag::show(path));
            let _ = match &result {
                Ok(r) => writeln!(
                    line,
                    "blake3:{} ({}), {}",
                    r.digest,
                    match r.source {
                        Source::Cache => "cache",
                        Source::Hashed => "hashed",
                        Source::Copied => "hashed a private copy: writable by others",
                    },
                    if r.digest == self.digest { "ok" } else { "mismatch" }
                ),
                Err(why) => writeln!(line, "{why}"),
            };
            line.flush_to(2);
        }
        match result {
            Ok(r) if r.digest == self.digest => {
                let in_store = self.store_path().is_some_and(|s| s == path);
                let how = match (in_store, r.source) {
                    (true, _) => How::Store,
                    (false, Source::Cache) => How::Cache,
                    (false, Source::Hashed | Source::Copied) => How::Hashed,
                };
                p.record(Verified { file: (st.dev, st.ino), digest: r.digest, how });
                Some(Accepted { copy: r.copy })
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
