//! Loading the dependency closure breadth-first, as glibc's
//! `_dl_map_object_deps` does, and checking the versions it needs.

use alloc::vec::Vec;

use super::policy;
use super::search::{self, SearchEnv, SearchObject};
use super::{Dso, DsoId, Kind, Namespace};
use crate::diag::{Error, ErrorKind};
use crate::err;
use crate::map;
use crate::sys;

/// What the closure walk needs to know about this process.
pub struct Config<'a> {
    pub env: SearchEnv<'a>,
    pub machine: u16,
    pub page: usize,
    /// Names that mean "the dynamic loader" (ld-cah answers to them).
    pub loader_names: &'a [Vec<u8>],
    /// Whether the store's directory exists, for this round of loading.
    pub store: StoreDir,
}

/// Whether the content-addressed store's directory exists, asked at most
/// once per round of loading (start-up, or one `dlopen`): without a store
/// (the usual case) each locked library cost a failed `open` of its store
/// path first, fifty of them for fifty libraries. The first locked name of
/// a round is probed as before (a `dlopen` of one library pays nothing
/// more); the second asks for the directory, and its answer holds for the
/// rest of the round. Asked again next round, so a store made while a
/// program runs serves its next `dlopen`.
#[derive(Default)]
pub struct StoreDir(core::cell::Cell<StoreState>);

#[derive(Clone, Copy, Default)]
enum StoreState {
    #[default]
    Unasked,
    ProbedOnce,
    Known(bool),
}

impl StoreDir {
    /// Whether to probe the store `dir` for a locked name.
    fn worth_probing(&self, dir: &[u8]) -> bool {
        let known = match self.0.get() {
            StoreState::Unasked => {
                self.0.set(StoreState::ProbedOnce);
                return !dir.is_empty();
            }
            StoreState::Known(known) => return known,
            // `O_PATH`: the permissions a look-up inside it needs, no more.
            StoreState::ProbedOnce => {
                let mut path = dir.to_vec();
                path.push(0);
                !dir.is_empty() && sys::open(&path, sys::O_PATH | sys::O_DIRECTORY | sys::O_CLOEXEC, 0).is_ok()
            }
        };
        self.0.set(StoreState::Known(known));
        known
    }
}

/// Why one candidate file was passed over.
struct Rejected {
    path: Vec<u8>,
    why: &'static str,
}

/// Opens, checks and maps the file at `path` (NUL added here). Returns
/// `Ok(None)` for a file that is not for this machine, or (for a locked
/// name, `want`) whose digest is not the locked one, or (`suid_only`)
/// that is not set-user-ID, so the search goes on.
fn try_path(
    ns: &mut Namespace,
    cfg: &Config<'_>,
    path: &[u8],
    rejected: &mut Vec<Rejected>,
    want: Option<&policy::Want>,
    suid_only: bool,
) -> Result<Option<DsoId>, ()> {
    let mut cpath = Vec::with_capacity(path.len() + 1);
    cpath.extend_from_slice(path);
    cpath.push(0);
    // O_NONBLOCK: opening a FIFO must not block (it is refused below).
    let fd = match sys::open(&cpath, sys::O_RDONLY | sys::O_NONBLOCK, 0) {
        Ok(fd) => fd,
        Err(sys::Errno::ENOENT) | Err(sys::Errno(20)) => return Ok(None),
        Err(e) => {
            rejected.push(Rejected { path: path.to_vec(), why: e.describe() });
            return Ok(None);
        }
    };
    let st = sys::fstat(&fd).map_err(|_| ())?;
    // A FIFO, directory or device is refused before anything reads it
    // (hashing /dev/zero would never end).
    if st.mode & 0o170000 != 0o100000 {
        rejected.push(Rejected { path: path.to_vec(), why: "not a regular file" });
        return Err(());
    }
    // glibc's open_path: in secure mode a preload found by name must be
    // set-user-ID, so a caller cannot preload an ordinary system library.
    if suid_only && st.mode & S_ISUID == 0 {
        rejected.push(Rejected { path: path.to_vec(), why: "not set-user-ID, required of a preload in secure mode" });
        return Ok(None);
    }
    // A locked name: the digest of this very descriptor (hashed, or cached
    // for its exact identity) must be the locked one; it is then mapped
    // from the same descriptor.
    let accepted = match want {
        Some(w) => match w.accept(&fd, &st, path) {
            Some(a) => Some(a),
            None => return Ok(None),
        },
        None => None,
    };
    if let Some(id) = ns.find_by_file((st.dev, st.ino)) {
        // Loaded already (say as an unlocked preload): taken on trust for
        // this name, it must be confirmed like a file mapped now.
        if let (Some(w), Some(policy::Accepted { pending: true, .. })) = (want, &accepted) {
            w.keep_pending(fd, st, path);
        }
        return Ok(Some(id));
    }
    // A file others can write was verified as a private copy: map that.
    let mapped = match accepted.as_ref().and_then(|a| a.copy.as_deref()) {
        Some(bytes) => map::map_copy(bytes, cfg.machine, cfg.page),
        None => map::map_regular_file(&fd, st.size as u64, cfg.machine, cfg.page),
    };
    // Taken on trust: the descriptor it was mapped from stays open until
    // the start-up confirms it (see `policy::Pending`).
    if let (Some(w), Some(policy::Accepted { pending: true, .. }), Ok(_)) = (want, &accepted, &mapped) {
        w.keep_pending(fd, st, path);
    }
    match mapped {
        Ok(m) => {
            // `l_name` is the path with a NUL: made with room for it.
            let mut name = Vec::with_capacity(path.len() + 1);
            name.extend_from_slice(path);
            name.push(0);
            let mut d = Dso::new(Kind::Library, name, path.to_vec(), m, cfg.page).map_err(|why| {
                rejected.push(Rejected { path: path.to_vec(), why });
            })?;
            d.file_id = Some((st.dev, st.ino));
            d.identity = Some(crate::verify::runtime::identity(&st));
            Ok(Some(ns.insert(d)))
        }
        // Another machine or class: passed over, the search goes on.
        Err(why) if why.other_machine() => {
            rejected.push(Rejected { path: path.to_vec(), why: why.message() });
            Ok(None)
        }
        Err(why) => {
            rejected.push(Rejected { path: path.to_vec(), why: why.message() });
            Err(())
        }
    }
}

/// `st_mode` bit of a set-user-ID file.
const S_ISUID: u32 = 0o4000;

fn search_object(d: &Dso) -> SearchObject<'_> {
    SearchObject {
        rpath: d.dyn_info.rpath.and_then(|o| d.string(o)),
        runpath: d.dyn_info.runpath.and_then(|o| d.string(o)),
        origin: d.origin.as_deref(),
        executable: d.kind == Kind::Main,
        nodeflib: d.flags_1() & u64::from(object::elf::DF_1_NODEFLIB) != 0,
    }
}

/// Finds or loads the object `name` needed by `requester` (a `DT_NEEDED`
/// name once its tokens are dealt with, see [`load_dependency`], or a
/// `dlopen` argument).
pub fn load_needed(ns: &mut Namespace, cfg: &Config<'_>, requester: DsoId, name: &[u8]) -> Result<DsoId, Error> {
    load_object(ns, cfg, requester, name, false)
}

/// A `DT_NEEDED` entry of `requester`, as glibc's `_dl_map_object_deps`
/// takes it: a name with dynamic string tokens is refused in secure mode
/// and otherwise expanded before it is looked up.
pub fn load_dependency(ns: &mut Namespace, cfg: &Config<'_>, requester: DsoId, name: &[u8]) -> Result<DsoId, Error> {
    if search::dst_count(name) == 0 {
        return load_needed(ns, cfg, requester, name);
    }
    let req = ns.objs.get(requester);
    let req_name = req.map_or("?", |d| d.display_name());
    if cfg.env.tokens.secure {
        return Err(err!(req_name, "{}: DST not allowed in SUID/SGID programs", crate::diag::show(name)));
    }
    let expanded = req
        .and_then(|d| search::expand(name, d.origin.as_deref(), d.kind == Kind::Main, &cfg.env.tokens))
        .filter(|e| !e.is_empty())
        .ok_or_else(|| err!(req_name, "{}: empty dynamic string token substitution", crate::diag::show(name)))?;
    let id = load_needed(ns, cfg, requester, &expanded)?;
    // `DT_VERNEED` names the file as written, tokens and all.
    if let Some(d) = ns.objs.get_mut(id).filter(|d| !d.aliases.iter().any(|a| a == name)) {
        d.aliases.push(name.to_vec());
    }
    Ok(id)
}

/// Finds or loads `name` for `requester`; `suid_only` (a preload named
/// without a slash, in secure mode) searches without the cache and takes
/// only set-user-ID files, as glibc does for `__RTLD_SECURE` loads.
fn load_object(ns: &mut Namespace, cfg: &Config<'_>, requester: DsoId, name: &[u8], suid_only: bool) -> Result<DsoId, Error> {
    // Only an error needs the requester's name, which may have moved on by
    // then (the probe inserts objects): read from `ns` when it happens.
    let not_found = |ns: &Namespace, detail: &str| {
        let req_name = ns.objs.get(requester).map_or("", |d| d.display_name());
        err!(req_name, "{}: {}", crate::diag::show(name), detail)
    };
    if let Some(id) = ns.find_by_name(name) {
        return policy::reuse(ns, id, name);
    }
    let base = name.rsplit(|&b| b == b'/').next().unwrap_or(name);
    if cfg.loader_names.iter().any(|n| n == name || n == base) {
        let l = ns.loader;
        ns.objs[l].aliases.push(name.to_vec());
        return Ok(l);
    }
    // A locked name: the store first, then the
    // search, accepting only a file with the locked digest.
    let want = policy::want(name)?;
    let mut rejected = Vec::new();
    let chain_ids = ns.chain(requester);
    // Snapshot the chain's search data, its strings in one buffer: the
    // probe below adds objects.
    type Span = Option<(usize, usize)>;
    let mut text: Vec<u8> = Vec::with_capacity(256);
    let mut keep = |s: Option<&[u8]>| -> Span {
        s.map(|s| {
            text.extend_from_slice(s);
            (text.len() - s.len(), text.len())
        })
    };
    let owned: Vec<(Span, Span, Span, bool, bool)> = chain_ids
        .iter()
        .filter_map(|&i| ns.objs.get(i))
        .map(|d| {
            let s = search_object(d);
            (keep(s.rpath), keep(s.runpath), keep(s.origin), s.executable, s.nodeflib)
        })
        .collect();
    let at = |sp: Span| sp.map(|(a, b)| &text[a..b]);
    let chain: Vec<SearchObject<'_>> = owned
        .iter()
        .map(|&(r, ru, o, e, n)| SearchObject { rpath: at(r), runpath: at(ru), origin: at(o), executable: e, nodeflib: n })
        .collect();
    let me = chain.first().copied().unwrap_or_default();
    // glibc skips /etc/ld.so.cache for these: its entries need not be
    // in trusted directories.
    let env = if suid_only { SearchEnv { cache: None, ..cfg.env } } else { cfg.env };
    let store = want.as_ref().filter(|w| cfg.store.worth_probing(w.store_dir())).and_then(|w| w.store_path());
    let has_slash = name.contains(&b'/');
    let resolved = search::resolve(name, store.is_some(), &me, &chain, &env, |c| {
        let (path, suid) = match c {
            search::Candidate::Store => (store.as_deref()?, suid_only),
            // A path named by the object itself is taken as it is.
            search::Candidate::Path(p) => (p, suid_only && !has_slash),
        };
        match try_path(ns, cfg, path, &mut rejected, want.as_ref(), suid) {
            Ok(Some(id)) => Some(Ok(id)),
            Ok(None) => None,
            Err(()) => Some(Err(())),
        }
    });
    let found = match resolved {
        Err(search::Unexpandable) => return Err(not_found(ns, "cannot expand the dynamic string tokens in this name")),
        Ok(Some(Ok(id))) => Ok(Some(id)),
        Ok(Some(Err(()))) => Err(()),
        Ok(None) => Ok(None),
    };
    match found {
        Ok(Some(id)) => {
            policy::check_agrees(ns, id)?;
            if let Some(d) = ns.objs.get_mut(id) {
                if !d.aliases.iter().any(|a| a == name) {
                    d.aliases.push(name.to_vec());
                }
                if d.loaded_by.is_none() && d.kind == Kind::Library {
                    d.loaded_by = Some(requester);
                }
            }
            Ok(id)
        }
        Ok(None) if want.is_some() => {
            Err(want.as_ref().map_or_else(|| not_found(ns, "?"), |w| w.no_match(rejected.iter().map(|r| (&r.path[..], r.why)))))
        }
        Ok(None) => match rejected.last() {
            Some(r) => Err(not_found(ns, &alloc::format!("cannot open shared object file: {} ({})", r.why, crate::diag::show(&r.path)))
                .of_kind(ErrorKind::NotFound)),
            None => Err(not_found(ns, "cannot open shared object file: no such file or directory").of_kind(ErrorKind::NotFound)),
        },
        Err(()) => {
            let r = rejected.last();
            Err(err!(r.map(|r| crate::diag::show(&r.path)).unwrap_or("?"), "{}", r.map(|r| r.why).unwrap_or("cannot load")))
        }
    }
}

/// One object to load before the program's dependencies.
pub struct Preload<'a> {
    pub name: Vec<u8>,
    /// Where the name came from (`LD_PRELOAD`, `--preload`,
    /// `/etc/ld.so.preload`), for the warning when it cannot be loaded.
    pub source: &'a str,
}

/// glibc's `SECURE_NAME_LIMIT` (`NAME_MAX`) and `SECURE_PATH_LIMIT`
/// (`PATH_MAX`): longer preload names are ignored.
const NAME_MAX: usize = 255;
const PATH_MAX: usize = 4096;

/// The preloads, in glibc's order: `LD_PRELOAD`, `--preload`, then the
/// file `/etc/ld.so.preload`. In secure mode a name from the first two
/// that holds a `/` (or is `NAME_MAX` long) is ignored (glibc's
/// `dso_name_valid_for_suid`); the file is root's and is taken as it is.
pub fn preload_list(env: Option<&[u8]>, arg: Option<&[u8]>, secure: bool) -> Vec<Preload<'static>> {
    let mut out = Vec::new();
    for (list, source) in [(env, "LD_PRELOAD"), (arg, "--preload")] {
        out.extend(preload_names(list.unwrap_or(b""), secure).into_iter().map(|n| Preload { name: n.to_vec(), source }));
    }
    // glibc tests the file with access(), that is as the real user.
    const FILE: &[u8] = b"/etc/ld.so.preload\0";
    if sys::access(FILE, sys::R_OK).is_ok() {
        if let Ok(text) = read_small_file(FILE) {
            out.extend(preload_file_names(&text).into_iter().map(|n| Preload { name: n.to_vec(), source: "/etc/ld.so.preload" }));
        }
    }
    out
}

/// The names of an `LD_PRELOAD` or `--preload` list (space or colon
/// separated) that glibc's `handle_preload_list` would load.
fn preload_names(list: &[u8], secure: bool) -> Vec<&[u8]> {
    list.split(|&b| b == b' ' || b == b':')
        .filter(|p| !p.is_empty() && p.len() < PATH_MAX && !(secure && (p.len() >= NAME_MAX || p.contains(&b'/'))))
        .collect()
}

/// The whole of a small file (`path` ends in NUL).
fn read_small_file(path: &[u8]) -> Result<Vec<u8>, sys::Errno> {
    let fd = sys::open(path, sys::O_RDONLY, 0)?;
    let size = usize::try_from(sys::fstat(&fd)?.size).unwrap_or(0).min(1 << 20);
    let mut buf = alloc::vec![0u8; size];
    let n = sys::pread_full(&fd, &mut buf, 0)?;
    buf.truncate(n);
    Ok(buf)
}

/// The names in `/etc/ld.so.preload`: separated by white space or `:`,
/// `#` starting a comment that runs to the end of the line.
pub fn preload_file_names(text: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    for line in text.split(|&b| b == b'\n') {
        let line = line.split(|&b| b == b'#').next().unwrap_or(line);
        out.extend(line.split(|&b| matches!(b, b' ' | b'\t' | b':')).filter(|n| !n.is_empty()));
    }
    out
}

/// The directory of the running program as the kernel knows it
/// (`/proc/self/exe`, links resolved): `$ORIGIN` of a set-uid program,
/// where the path it was started by is its caller's choice.
pub fn executable_origin() -> Option<Vec<u8>> {
    let mut buf = alloc::vec![0u8; PATH_MAX];
    let target = sys::readlink(b"/proc/self/exe\0", &mut buf).ok().filter(|t| t.first() == Some(&b'/') && t.len() < PATH_MAX)?;
    Some(search::dirname(target).to_vec())
}

/// Loads preloads and every `DT_NEEDED`, breadth-first from the program,
/// and builds the global scope.
pub fn load_all(ns: &mut Namespace, cfg: &Config<'_>, preloads: &[Preload<'_>]) -> Result<(), Error> {
    load_all_tracing(ns, cfg, preloads, None)
}

/// [`load_all`] for `LD_TRACE_LOADED_OBJECTS` (and `--verify`, which does
/// not look at dependencies in glibc): with `missing`, a `DT_NEEDED`
/// library that cannot be found is recorded there, once per name, with
/// the position in the global scope it would have taken, and the walk goes
/// on, as glibc's trace mode puts a faked link map in its place.
pub fn load_all_tracing(
    ns: &mut Namespace,
    cfg: &Config<'_>,
    preloads: &[Preload<'_>],
    missing: Option<&mut Vec<(usize, Vec<u8>)>>,
) -> Result<(), Error> {
    let loaded = load_scope(ns, cfg, preloads, missing);
    policy::release_caches();
    loaded
}

fn load_scope(
    ns: &mut Namespace,
    cfg: &Config<'_>,
    preloads: &[Preload<'_>],
    missing: Option<&mut Vec<(usize, Vec<u8>)>>,
) -> Result<(), Error> {
    let main = ns.main;
    let mut order: Vec<DsoId> = alloc::vec![main];
    for p in preloads {
        let suid_only = cfg.env.tokens.secure && !p.name.contains(&b'/');
        // As glibc: a preload that cannot be loaded is reported and skipped.
        let id = match load_object(ns, cfg, main, &p.name, suid_only) {
            Ok(id) => id,
            Err(e) => {
                crate::diag::print(
                    2,
                    format_args!(
                        "ld-cah.so: warning: preload {} from {} cannot be loaded ({}): ignored\n",
                        crate::diag::show(&p.name),
                        p.source,
                        e.message
                    ),
                );
                continue;
            }
        };
        if !order.contains(&id) {
            order.push(id);
        }
    }
    walk(ns, cfg, &mut order, &|_, _| true, missing)?;
    ns.scope = order;
    Ok(())
}

/// The one dependency walk, breadth-first, of start-up and `dlopen`:
/// loads the `DT_NEEDED` libraries of every object of `order` that
/// `expand` selects, appending each newly reached object to `order`, and
/// records direct dependencies in each object's `deps`. With `missing`
/// (listing), a library that cannot be found is recorded there, once per
/// name, with the position it would have taken, and the walk goes on.
pub fn walk(
    ns: &mut Namespace,
    cfg: &Config<'_>,
    order: &mut Vec<DsoId>,
    expand: &dyn Fn(&Namespace, DsoId) -> bool,
    mut missing: Option<&mut Vec<(usize, Vec<u8>)>>,
) -> Result<(), Error> {
    let mut i = 0;
    while i < order.len() {
        let cur = order[i];
        i += 1;
        if !expand(ns, cur) {
            continue;
        }
        let names: Vec<Vec<u8>> = ns.objs[cur]
            .needed_names()
            .map(|n| n.map(<[u8]>::to_vec).ok_or(()))
            .collect::<Result<_, ()>>()
            .map_err(|()| err!(ns.objs[cur].display_name(), "DT_NEEDED name outside the string table"))?;
        for name in names {
            let id = match (load_dependency(ns, cfg, cur, &name), missing.as_deref_mut()) {
                (Ok(id), _) => id,
                (Err(e), Some(m)) if e.kind == ErrorKind::NotFound => {
                    if !m.iter().any(|(_, n)| *n == name) {
                        m.push((order.len(), name));
                    }
                    continue;
                }
                (Err(e), _) => return Err(e),
            };
            if !ns.objs[cur].deps.contains(&id) && id != cur {
                ns.objs[cur].deps.push(id);
            }
            if !order.contains(&id) {
                order.push(id);
            }
        }
    }
    Ok(())
}

/// Checks that every version an object needs is defined by the object it
/// names (`DT_VERNEED`), as glibc does before relocating.
pub fn check_versions(ns: &Namespace) -> Result<(), Error> {
    check_versions_of(ns, 0..ns.objs.len())
}

/// [`check_versions`] for the objects `ids` only: a `dlopen` checks the
/// objects it brought in (glibc's `_dl_check_map_versions` per new map),
/// the others passed when they were loaded.
pub fn check_versions_of(ns: &Namespace, ids: impl IntoIterator<Item = DsoId>) -> Result<(), Error> {
    for d in ids.into_iter().filter_map(|i| ns.objs.get(i)) {
        // The versions needed from one file follow each other and share
        // its name in the string table: one search per file, not per
        // version (python3 needs 30 of libc's).
        let mut last: Option<(&[u8], Option<DsoId>)> = None;
        for &ndx in &d.versions.needed {
            let Some(v) = d.versions.get(&d.img, ndx) else { continue };
            let Some(file) = v.file else { continue };
            let found = match last {
                Some((f, found)) if core::ptr::eq(f, file) => found,
                _ => ns.find_by_name(file),
            };
            last = Some((file, found));
            let Some(def) = found else {
                // The file is not in the closure under that name.
                if v.weak {
                    continue;
                }
                return Err(err!(d.display_name(), "version information needs {} which is not loaded", crate::diag::show(file))
                    .of_kind(ErrorKind::VersionFileMissing));
            };
            let defs = &ns.objs[def];
            // An object without version definitions accepts everything.
            if defs.versions.defined.is_empty() {
                continue;
            }
            if !defs.versions.defines(&defs.img, &v) && !v.weak {
                return Err(err!(
                    d.display_name(),
                    "version `{}' not found (required by {} from {})",
                    crate::diag::show(v.name),
                    d.display_name(),
                    defs.display_name()
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_mode_preload_names_have_no_slash() {
        let long = [b'x'; NAME_MAX];
        let mut list = b"liba.so /abs/libb.so:./libc.so  libd.so:".to_vec();
        assert_eq!(preload_names(&list, false), [&b"liba.so"[..], b"/abs/libb.so", b"./libc.so", b"libd.so"]);
        list.push(b' ');
        list.extend_from_slice(&long);
        assert_eq!(preload_names(&list, true), [&b"liba.so"[..], b"libd.so"]);
        assert_eq!(preload_names(&long[1..], true).len(), 1);
    }

    #[test]
    fn preload_file_syntax() {
        let text = b"# a comment\n/usr/lib/liba.so libb.so:libc.so\tlibd.so # trailing: libx.so\n\n  libe.so";
        assert_eq!(preload_file_names(text), [&b"/usr/lib/liba.so"[..], b"libb.so", b"libc.so", b"libd.so", b"libe.so"]);
    }
}
