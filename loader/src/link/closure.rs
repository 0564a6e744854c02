//! Loading the dependency closure breadth-first, as glibc's
//! `_dl_map_object_deps` does, and checking the versions it needs.

use alloc::vec::Vec;

use super::search::{self, SearchEnv, SearchObject};
use super::{Dso, DsoId, Kind, Namespace};
use crate::diag::Error;
use crate::err;
use crate::map;
use crate::sys;

/// What the closure walk needs to know about this process.
pub struct Config<'a> {
    pub env: SearchEnv<'a>,
    pub machine: u16,
    pub page: usize,
    /// Names that mean "the dynamic loader" (ld-cah answers to them).
    pub loader_names: &'a [&'a [u8]],
}

/// Why one candidate file was passed over.
struct Rejected {
    path: Vec<u8>,
    why: &'static str,
}

/// Opens, checks and maps the file at `path` (NUL added here). Returns
/// `Ok(None)` for a file that is not for this machine, or (for a locked
/// name, `want`) whose digest is not the locked one, so the search goes on.
fn try_path(
    ns: &mut Namespace,
    cfg: &Config<'_>,
    path: &[u8],
    rejected: &mut Vec<Rejected>,
    want: Option<&crate::verify::policy::Want>,
) -> Result<Option<DsoId>, ()> {
    let mut cpath = path.to_vec();
    cpath.push(0);
    let fd = match sys::open(&cpath, sys::O_RDONLY, 0) {
        Ok(fd) => fd,
        Err(sys::Errno::ENOENT) | Err(sys::Errno(20)) => return Ok(None),
        Err(e) => {
            rejected.push(Rejected { path: path.to_vec(), why: e.describe() });
            return Ok(None);
        }
    };
    let st = sys::fstat(&fd).map_err(|_| ())?;
    // A locked name: the digest of this very descriptor (hashed, or cached
    // for its exact identity) must be the locked one; it is then mapped
    // from the same descriptor.
    if want.is_some_and(|w| !w.accept(&fd, &st, path)) {
        return Ok(None);
    }
    if let Some(id) = ns.find_by_file((st.dev, st.ino)) {
        return Ok(Some(id));
    }
    match map::map_file(&fd, cfg.machine, cfg.page) {
        Ok(m) => {
            let mut d = Dso::new(Kind::Library, path.to_vec(), path.to_vec(), m, cfg.page).map_err(|why| {
                rejected.push(Rejected { path: path.to_vec(), why });
            })?;
            d.file_id = Some((st.dev, st.ino));
            ns.objs.push(d);
            Ok(Some(ns.objs.len() - 1))
        }
        Err(why) if why.starts_with("wrong machine") || why.starts_with("wrong ELF class") => {
            rejected.push(Rejected { path: path.to_vec(), why });
            Ok(None)
        }
        Err(why) => {
            rejected.push(Rejected { path: path.to_vec(), why });
            Err(())
        }
    }
}

fn search_object(d: &Dso) -> SearchObject<'_> {
    SearchObject {
        rpath: d.dyn_info.rpath.and_then(|o| d.string(o)),
        runpath: d.dyn_info.runpath.and_then(|o| d.string(o)),
        origin: if d.path.is_empty() { None } else { Some(search::dirname(&d.path)) },
        nodeflib: d.flags_1() & u64::from(object::elf::DF_1_NODEFLIB) != 0,
    }
}

/// Finds or loads the object `name` needed by `requester`.
pub fn load_needed(ns: &mut Namespace, cfg: &Config<'_>, requester: DsoId, name: &[u8]) -> Result<DsoId, Error> {
    let req_name = ns.objs.get(requester).map(|d| alloc::string::String::from(d.display_name())).unwrap_or_default();
    let not_found = |detail: &str| err!(&req_name, "{}: {}", crate::diag::show(name), detail);
    if let Some(id) = ns.find_by_name(name) {
        return crate::verify::policy::reuse(ns, id, name);
    }
    let base = name.rsplit(|&b| b == b'/').next().unwrap_or(name);
    if cfg.loader_names.iter().any(|n| *n == name || *n == base) {
        let l = ns.loader;
        ns.objs[l].aliases.push(name.to_vec());
        return Ok(l);
    }
    // A locked name (design.md section 4): the store first, then the
    // search, accepting only a file with the locked digest.
    let want = crate::verify::policy::want(name)?;
    let mut rejected = Vec::new();
    let stored = match want.as_ref().and_then(|w| w.store_path()) {
        Some(p) => try_path(ns, cfg, &p, &mut rejected, want.as_ref()),
        None => Ok(None),
    };
    let found = if !matches!(stored, Ok(None)) {
        stored
    } else if name.contains(&b'/') {
        let origin = ns.objs.get(requester).map(|d| search::dirname(&d.path).to_vec());
        let path = search::expand(name, origin.as_deref(), &cfg.env.tokens)
            .ok_or_else(|| not_found("cannot expand the dynamic string tokens in this name"))?;
        try_path(ns, cfg, &path, &mut rejected, want.as_ref())
    } else {
        let chain_ids = ns.chain(requester);
        // Snapshot the chain's search data: the probe below adds objects.
        let owned: Vec<(Option<Vec<u8>>, Option<Vec<u8>>, Option<Vec<u8>>, bool)> = chain_ids
            .iter()
            .filter_map(|&i| ns.objs.get(i))
            .map(|d| {
                let s = search_object(d);
                (s.rpath.map(<[u8]>::to_vec), s.runpath.map(<[u8]>::to_vec), s.origin.map(<[u8]>::to_vec), s.nodeflib)
            })
            .collect();
        let chain: Vec<SearchObject<'_>> = owned
            .iter()
            .map(|(r, ru, o, n)| SearchObject { rpath: r.as_deref(), runpath: ru.as_deref(), origin: o.as_deref(), nodeflib: *n })
            .collect();
        let mut failed = false;
        let r = search::search(name, &chain, &cfg.env, |path| match try_path(ns, cfg, path, &mut rejected, want.as_ref()) {
            Ok(Some(id)) => Some(Ok(id)),
            Ok(None) => None,
            Err(()) => {
                failed = true;
                Some(Err(()))
            }
        });
        match r {
            Some(Ok(id)) => Ok(Some(id)),
            Some(Err(())) => Err(()),
            None => {
                let _ = failed;
                Ok(None)
            }
        }
    };
    match found {
        Ok(Some(id)) => {
            crate::verify::policy::check_agrees(ns, id)?;
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
            Err(want.as_ref().map_or_else(|| not_found("?"), |w| w.no_match(rejected.iter().map(|r| (&r.path[..], r.why)))))
        }
        Ok(None) => match rejected.last() {
            Some(r) => Err(not_found(&alloc::format!(
                "cannot open shared object file: {} ({})",
                r.why,
                crate::diag::show(&r.path)
            ))),
            None => Err(not_found("cannot open shared object file: no such file or directory")),
        },
        Err(()) => {
            let r = rejected.last();
            Err(err!(
                r.map(|r| crate::diag::show(&r.path)).unwrap_or("?"),
                "{}",
                r.map(|r| r.why).unwrap_or("cannot load")
            ))
        }
    }
}

/// Loads preloads and every `DT_NEEDED`, breadth-first from the program,
/// and builds the global scope.
pub fn load_all(ns: &mut Namespace, cfg: &Config<'_>, preloads: &[Vec<u8>]) -> Result<(), Error> {
    let main = ns.main;
    let mut order: Vec<DsoId> = alloc::vec![main];
    for p in preloads {
        // As glibc: a preload that cannot be loaded is reported and skipped.
        let id = match load_needed(ns, cfg, main, p) {
            Ok(id) => id,
            Err(e) => {
                crate::diag::print(
                    2,
                    format_args!("ld-cah.so: warning: preload {} cannot be loaded ({}): ignored\n", crate::diag::show(p), e.message),
                );
                continue;
            }
        };
        if !order.contains(&id) {
            order.push(id);
        }
    }
    let mut i = 0;
    while i < order.len() {
        let cur = order[i];
        let names: Vec<Vec<u8>> = ns.objs[cur]
            .needed_names()
            .map(|n| n.map(<[u8]>::to_vec).ok_or(()))
            .collect::<Result<_, ()>>()
            .map_err(|()| err!(ns.objs[cur].display_name(), "DT_NEEDED name outside the string table"))?;
        for name in names {
            let id = load_needed(ns, cfg, cur, &name)?;
            if !ns.objs[cur].deps.contains(&id) && id != cur {
                ns.objs[cur].deps.push(id);
            }
            if !order.contains(&id) {
                order.push(id);
            }
        }
        i += 1;
    }
    ns.scope = order;
    Ok(())
}

/// Checks that every version an object needs is defined by the object it
/// names (`DT_VERNEED`), as glibc does before relocating.
pub fn check_versions(ns: &Namespace) -> Result<(), Error> {
    for d in &ns.objs {
        for &ndx in &d.versions.needed {
            let Some(v) = d.versions.get(ndx) else { continue };
            let Some(file) = &v.file else { continue };
            let Some(def) = ns.find_by_name(file) else {
                // The file is not in the closure under that name.
                if v.weak {
                    continue;
                }
                return Err(err!(d.display_name(), "version information needs {} which is not loaded", crate::diag::show(file)));
            };
            let defs = &ns.objs[def];
            // An object without version definitions accepts everything.
            if defs.versions.defined.is_empty() {
                continue;
            }
            if !defs.versions.defines(&v.name) && !v.weak {
                return Err(err!(
                    d.display_name(),
                    "version `{}' not found (required by {} from {})",
                    crate::diag::show(&v.name),
                    d.display_name(),
                    defs.display_name()
                ));
            }
        }
    }
    Ok(())
}
