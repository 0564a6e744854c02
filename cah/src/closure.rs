//! The dependency closure of a program, resolved as the loader resolves it.
//!
//! Everything goes through one function, [`resolve`]. It walks `DT_NEEDED`
//! breadth-first from the program (then the extra names, as if the program
//! `dlopen`ed them), and for each name:
//!
//! - a name the loader answers to itself (`ld-linux-*.so.*`, `ld-cah.so`)
//!   is skipped: it is never locked;
//! - a name an object already answers to (an earlier `DT_NEEDED` name or a
//!   `DT_SONAME`) is that object, as in glibc; when patching, the name is
//!   also looked up from the new requester, and if that finds a different
//!   file with a different digest the closure has a diamond conflict, an
//!   error naming both paths;
//! - otherwise the name is resolved by `ld_cah::link::search::resolve`, the
//!   very function the loader runs, so the two cannot drift: if the name
//!   is locked and a store is given, `<store>/<hex>` first; then the path
//!   or the candidates in the loader's search order (`DT_RPATH` chain,
//!   `DT_RUNPATH`, `/etc/ld.so.cache`, default directories, with `$ORIGIN`,
//!   `$LIB` and `$PLATFORM`; `LD_LIBRARY_PATH` is ignored). A candidate must
//!   be a 64-bit little-endian ELF file for the program's machine. With a
//!   lock, the first candidate whose digest matches wins; without one, the
//!   first candidate.
//!
//! All paths are looked up inside `root` (symbolic links are followed
//! inside it too), so a foreign sysroot resolves as it would once booted.
//!
//! The objects are untrusted: only regular files are opened (a FIFO or a
//! device on the search path is skipped, never opened), repeated
//! `DT_NEEDED` names of one object are looked at once, and the walk stops
//! with an error past [`MAX_NAMES`] names or [`MAX_PROBES`] candidate
//! paths, so no crafted closure (cycles, huge `DT_NEEDED` or `DT_RPATH`
//! lists) can keep it going for long.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use ld_cah::arch::aarch64::Aarch64;
use ld_cah::arch::x86_64::X86_64;
use ld_cah::arch::ArchInfo;
use ld_cah::link::ldcache::LdCache;
use ld_cah::link::search::{self, SearchEnv, SearchObject, Tokens};
use ld_cah::verify::{Digest, Lock};
use object::elf;

use crate::elfinfo::{self, ElfInfo};
use crate::{files, hashing};

/// Most distinct names a closure may have: what one lock can hold.
pub const MAX_NAMES: usize = ld_cah::verify::lock::MAX_ENTRIES;

/// Most candidate paths one resolution may look at (a large real closure
/// looks at a few thousand).
pub const MAX_PROBES: usize = 1 << 18;

/// What steers a resolution.
#[derive(Clone, Copy, Debug)]
pub struct Options<'a> {
    /// The file system root to resolve in (`/` for this machine).
    pub root: &'a Path,
    /// Names (or paths) to add as if the program `dlopen`ed them.
    pub also: &'a [Vec<u8>],
    /// With a lock: accept only files with the locked digests (verify).
    /// Without: first candidate wins and diamonds are errors (patch).
    pub lock: Option<&'a Lock>,
    /// The content-addressed store, tried first for locked names.
    pub store: Option<&'a Path>,
}

/// How a found file was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// `<store>/<hex digest>`.
    Store,
    /// The ordinary search.
    Search,
}

/// The result for one name.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// Resolved (and, with a lock, matching).
    Found {
        /// Where the file is on this machine (inside the root).
        path: PathBuf,
        /// Its digest.
        digest: Digest,
        /// Store or search.
        via: Via,
    },
    /// No candidate exists.
    Missing {
        /// Paths looked at.
        tried: Vec<PathBuf>,
    },
    /// Candidates exist but none has the locked digest.
    Mismatch {
        /// Each candidate and its digest.
        candidates: Vec<(PathBuf, Digest)>,
    },
}

/// One name of the closure.
#[derive(Clone, Debug)]
pub struct Dep {
    /// The name as in `DT_NEEDED` (or as given with `--also`).
    pub name: Vec<u8>,
    /// The object that first needed it.
    pub needed_by: PathBuf,
    /// The locked digest, when resolving against a lock.
    pub locked: Option<Digest>,
    /// What was found.
    pub outcome: Outcome,
}

/// A resolved closure.
#[derive(Clone, Debug)]
pub struct Closure {
    /// One entry per distinct name, in load order.
    pub deps: Vec<Dep>,
}

impl Closure {
    /// `(name, path)` of every resolved name, in load order.
    pub fn resolved(&self) -> impl Iterator<Item = (&[u8], &Path, Digest)> {
        self.deps.iter().filter_map(|d| match &d.outcome {
            Outcome::Found { path, digest, .. } => Some((d.name.as_slice(), path.as_path(), *digest)),
            _ => None,
        })
    }
}

/// Search facts of the program's architecture (the loader's own tables).
struct Arch {
    default_dirs: &'static [&'static str],
    ldcache_flags: i32,
    lib: &'static str,
    platform: &'static str,
}

fn arch(machine: u16) -> Result<Arch> {
    fn of<A: ArchInfo>() -> Arch {
        Arch { default_dirs: A::DEFAULT_DIRS, ldcache_flags: A::LDCACHE_FLAGS, lib: A::DST_LIB, platform: A::PLATFORM }
    }
    match machine {
        elf::EM_X86_64 => Ok(of::<X86_64>()),
        elf::EM_AARCH64 => Ok(of::<Aarch64>()),
        m => bail!("unsupported machine {m} (ld-cah supports x86_64 and aarch64)"),
    }
}

/// Whether the loader satisfies `name` itself.
pub fn is_loader_name(name: &[u8]) -> bool {
    let base = name.rsplit(|&b| b == b'/').next().unwrap_or(name);
    (base.starts_with(b"ld-linux-") && base.windows(4).any(|w| w == b".so.")) || base == b"ld-cah.so"
}

/// One loaded object.
struct Obj {
    /// Path inside the root, as opened (for `$ORIGIN`).
    virt: Vec<u8>,
    /// Path on this machine.
    host: PathBuf,
    file_id: (u64, u64),
    digest: Digest,
    info: ElfInfo,
    loaded_by: Option<usize>,
    /// Names it answers to (its `DT_NEEDED` names so far and `DT_SONAME`).
    aliases: Vec<Vec<u8>>,
}

/// A file that passed the candidate checks.
struct Candidate {
    virt: Vec<u8>,
    host: PathBuf,
    file_id: (u64, u64),
    digest: Digest,
}

/// A `SearchObject`'s data, owned: (rpath, runpath, origin, nodeflib).
type OwnedSearchObject = (Option<Vec<u8>>, Option<Vec<u8>>, Vec<u8>, bool);

/// What `Walk::search` found: the accepted candidate and how, and every
/// path looked at (for the error message).
type Searched = (Option<(Candidate, Via)>, Vec<PathBuf>);

struct Walk<'a> {
    opts: Options<'a>,
    machine: u16,
    arch: Arch,
    ldcache: Option<Vec<u8>>,
    objs: Vec<Obj>,
    deps: Vec<Dep>,
    dep_index: HashMap<Vec<u8>, usize>,
    digests: HashMap<(u64, u64), Digest>,
    /// Candidate paths looked at so far (bounded by [`MAX_PROBES`]).
    probes: usize,
}

/// Resolves the closure of `program`: the ONE place `cah` decides which
/// file a name means (see the module documentation for the rules).
///
/// Errors: the program cannot be read or is not a supported ELF file; when
/// patching (no lock), a name that cannot be found, or a diamond conflict.
/// With a lock, missing and mismatching names are reported in the result.
pub fn resolve(program: &Path, opts: &Options<'_>) -> Result<Closure> {
    let (file, meta) = files::open_regular(program)?;
    let data = files::read_all(&file, &meta, program)?;
    let info = elfinfo::read(&data).with_context(|| format!("{}", program.display()))?;
    let arch = arch(info.machine)?;
    let program_host = std::fs::canonicalize(program)?;
    let root = std::fs::canonicalize(opts.root).with_context(|| format!("root {}", opts.root.display()))?;
    // The program's own path inside the root, for its `$ORIGIN`.
    let virt = match program_host.strip_prefix(&root) {
        Ok(rest) => Path::new("/").join(rest).as_os_str().as_bytes().to_vec(),
        Err(_) => program_host.as_os_str().as_bytes().to_vec(),
    };
    let ldcache = files::read_regular(&in_root(&root, b"/etc/ld.so.cache")).ok();
    let mut walk = Walk {
        opts: Options { root: &root, ..*opts },
        machine: info.machine,
        arch,
        ldcache,
        objs: Vec::new(),
        deps: Vec::new(),
        dep_index: HashMap::new(),
        digests: HashMap::new(),
        probes: 0,
    };
    let digest = hashing::hash_bytes(&data);
    walk.objs.push(Obj { virt, host: program_host, file_id: (meta.dev(), meta.ino()), digest, info, loaded_by: None, aliases: Vec::new() });
    walk.run()?;
    Ok(Closure { deps: walk.deps })
}

/// `virt` (a path inside the root) as a path on this machine, following
/// symbolic links inside the root. Falls back to plain joining if a link
/// loop or a missing component stops the walk (the caller's `stat` then
/// fails as it would for the loader).
pub fn in_root(root: &Path, virt: &[u8]) -> PathBuf {
    if root == Path::new("/") {
        return PathBuf::from(OsStr::from_bytes(virt));
    }
    let mut pending: Vec<Vec<u8>> = components(virt);
    pending.reverse();
    let mut done: Vec<Vec<u8>> = Vec::new();
    let mut hops = 0;
    while let Some(c) = pending.pop() {
        match c.as_slice() {
            b"." => continue,
            b".." => {
                done.pop();
                continue;
            }
            _ => {}
        }
        let mut host = root.to_path_buf();
        for d in &done {
            host.push(OsStr::from_bytes(d));
        }
        host.push(OsStr::from_bytes(&c));
        match std::fs::read_link(&host) {
            Ok(target) if hops < 40 => {
                hops += 1;
                let t = target.as_os_str().as_bytes();
                if t.starts_with(b"/") {
                    done.clear();
                }
                let mut more = components(t);
                more.reverse();
                pending.extend(more);
            }
            _ => done.push(c),
        }
    }
    let mut host = root.to_path_buf();
    for d in &done {
        host.push(OsStr::from_bytes(d));
    }
    host
}

fn components(path: &[u8]) -> Vec<Vec<u8>> {
    Path::new(OsStr::from_bytes(path))
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.as_bytes().to_vec()),
            Component::ParentDir => Some(b"..".to_vec()),
            _ => None,
        })
        .collect()
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl Walk<'_> {
    fn run(&mut self) -> Result<()> {
        let mut i = 0;
        // Breadth-first over DT_NEEDED from the program...
        while i < self.objs.len() {
            self.load_all_needed(i)?;
            i += 1;
        }
        // ...then the extra names, each followed by its own dependencies.
        for name in self.opts.also {
            // An extra name already in the closure is just that object
            // (it is not looked up again from the program).
            let name = name.clone();
            self.load_needed(0, &name, false)?;
            while i < self.objs.len() {
                self.load_all_needed(i)?;
                i += 1;
            }
        }
        Ok(())
    }

    /// The `DT_NEEDED` names of object `i`, each distinct name once (a
    /// repeated name means the same object, as in glibc).
    fn load_all_needed(&mut self, i: usize) -> Result<()> {
        let needed = std::mem::take(&mut self.objs[i].info.needed);
        let mut seen: HashSet<&[u8]> = HashSet::new();
        let mut result = Ok(());
        for name in &needed {
            if seen.insert(name.as_slice()) {
                result = self.load_needed(i, name, true);
                if result.is_err() {
                    break;
                }
            }
        }
        self.objs[i].info.needed = needed;
        result
    }

    /// Counts one candidate path against [`MAX_PROBES`].
    fn count_probe(&mut self, name: &[u8]) -> Result<()> {
        self.probes += 1;
        if self.probes > MAX_PROBES {
            bail!("{}: gave up after looking at {MAX_PROBES} candidate paths for the closure", show(name));
        }
        Ok(())
    }

    fn find_by_name(&self, name: &[u8]) -> Option<usize> {
        self.objs.iter().position(|o| o.aliases.iter().any(|a| a == name) || (!o.virt.is_empty() && o.virt == name))
    }

    fn digest_of(&mut self, host: &Path, file_id: (u64, u64)) -> Result<Digest> {
        if let Some(d) = self.digests.get(&file_id) {
            return Ok(*d);
        }
        let d = hashing::hash_file(host)?;
        self.digests.insert(file_id, d);
        Ok(d)
    }

    /// Checks a candidate path: present, a regular file (anything else is
    /// never opened), and ELF for our machine. `None` means "not this one,
    /// go on searching".
    fn probe(&mut self, virt: &[u8]) -> Option<(PathBuf, (u64, u64))> {
        let host = in_root(self.opts.root, virt);
        let (mut file, meta) = files::open_regular(&host).ok()?;
        let mut head = [0u8; 64];
        let n = std::io::Read::read(&mut file, &mut head).ok()?;
        if !elfinfo::is_compatible(&head[..n], self.machine) {
            return None;
        }
        Some((host, (meta.dev(), meta.ino())))
    }

    /// Resolves `name` needed by `requester` in the loader's own order
    /// (`search::resolve`: the store first for a locked name, then the
    /// path or the search), until `accept` takes a candidate (it is told
    /// whether the candidate is the store's file). Returns the accepted
    /// candidate, how it was found, and the paths looked at.
    fn search(
        &mut self,
        requester: usize,
        name: &[u8],
        store: Option<PathBuf>,
        mut accept: impl FnMut(&mut Self, &[u8], PathBuf, (u64, u64), bool) -> Result<Option<Candidate>>,
    ) -> Result<Searched> {
        let tokens = Tokens {
            platform: self.arch.platform.as_bytes(),
            lib: self.arch.lib.as_bytes(),
            secure: false,
            trusted: self.arch.default_dirs,
        };
        let mut tried = Vec::new();
        // The requester chain for DT_RPATH: requester, its loader, ..., program.
        let mut chain_ids = vec![requester];
        while let Some(next) = self.objs[*chain_ids.last().unwrap_or(&0)].loaded_by {
            if chain_ids.contains(&next) {
                break;
            }
            chain_ids.push(next);
        }
        if !chain_ids.contains(&0) {
            chain_ids.push(0);
        }
        let owned: Vec<OwnedSearchObject> = chain_ids
            .iter()
            .map(|&i| {
                let o = &self.objs[i];
                (
                    o.info.rpath.clone(),
                    o.info.runpath.clone(),
                    search::dirname(&o.virt).to_vec(),
                    o.info.flags_1 & u64::from(elf::DF_1_NODEFLIB) != 0,
                )
            })
            .collect();
        let chain: Vec<SearchObject<'_>> = owned
            .iter()
            .map(|(rpath, runpath, origin, nodeflib)| SearchObject {
                rpath: rpath.as_deref(),
                runpath: runpath.as_deref(),
                origin: Some(origin),
                executable: false,
                nodeflib: *nodeflib,
            })
            .collect();
        let ldcache = self.ldcache.take();
        let env = SearchEnv {
            library_path: &[],
            cache: ldcache.as_deref().and_then(LdCache::parse),
            cache_flags: self.arch.ldcache_flags,
            default_dirs: self.arch.default_dirs,
            tokens,
        };
        // The probe returns `Some(Err(..))` to stop on an I/O error, `None`
        // to go on to the next candidate.
        let found = search::resolve(name, store.is_some(), &chain[0], &chain, &env, |c| match c {
            search::Candidate::Store => {
                let path = store.clone()?;
                let meta = std::fs::metadata(&path).ok().filter(|m| m.is_file())?;
                let virt = path.as_os_str().as_bytes().to_vec();
                accept(self, &virt, path, (meta.dev(), meta.ino()), true).map(|c| c.map(|c| (c, Via::Store))).transpose()
            }
            search::Candidate::Path(virt) => {
                if let Err(e) = self.count_probe(name) {
                    return Some(Err(e));
                }
                tried.push(in_root(self.opts.root, virt));
                let (host, id) = self.probe(virt)?;
                accept(self, virt, host, id, false).map(|c| c.map(|c| (c, Via::Search))).transpose()
            }
        });
        self.ldcache = ldcache;
        // A name whose tokens cannot be expanded is found nowhere.
        let found = found.unwrap_or(None).transpose()?;
        Ok((found, tried))
    }

    fn load_needed(&mut self, requester: usize, name: &[u8], diamonds: bool) -> Result<()> {
        if is_loader_name(name) {
            return Ok(());
        }
        if self.deps.len() >= MAX_NAMES && !self.dep_index.contains_key(name) {
            bail!("the closure has more than {MAX_NAMES} names (a lock holds at most {MAX_NAMES})");
        }
        let locked = self.opts.lock.and_then(|l| l.get(name));
        let requester_path = self.objs[requester].host.clone();

        if let Some(id) = self.find_by_name(name) {
            if self.opts.lock.is_none() && diamonds {
                self.check_diamond(requester, name, id)?;
            }
            self.record(name, &requester_path, locked, id, Via::Search);
            return Ok(());
        }

        let store = locked.and_then(|want| self.opts.store.map(|st| st.join(String::from_utf8_lossy(&want.to_hex()).as_ref())));
        let mut rejected: Vec<(PathBuf, Digest)> = Vec::new();
        let (found, tried) = self.search(requester, name, store, |walk, virt, host, id, from_store| {
            let digest = walk.digest_of(&host, id)?;
            if let Some(want) = locked {
                if digest != want {
                    // The store's file is only ever a cache of the right bytes.
                    if !from_store {
                        rejected.push((host, digest));
                    }
                    return Ok(None);
                }
            }
            Ok(Some(Candidate { virt: virt.to_vec(), host, file_id: id, digest }))
        })?;
        match found {
            Some((cand, via)) => {
                let obj = match self.objs.iter().position(|o| o.file_id == cand.file_id) {
                    Some(obj) => {
                        self.objs[obj].aliases.push(name.to_vec());
                        obj
                    }
                    None => self.add_object(requester, name, cand)?,
                };
                self.record(name, &requester_path, locked, obj, via);
                Ok(())
            }
            None => {
                if self.opts.lock.is_none() {
                    bail!(
                        "{}: needed by {}: not found (tried {})",
                        show(name),
                        requester_path.display(),
                        if tried.is_empty() {
                            "nothing".to_string()
                        } else {
                            tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
                        }
                    );
                }
                let outcome = if rejected.is_empty() { Outcome::Missing { tried } } else { Outcome::Mismatch { candidates: rejected } };
                if !self.dep_index.contains_key(name) {
                    self.dep_index.insert(name.to_vec(), self.deps.len());
                    self.deps.push(Dep { name: name.to_vec(), needed_by: requester_path, locked, outcome });
                }
                Ok(())
            }
        }
    }

    fn add_object(&mut self, requester: usize, name: &[u8], cand: Candidate) -> Result<usize> {
        let data = files::read_regular(&cand.host)?;
        let info = elfinfo::read(&data).with_context(|| format!("{}", cand.host.display()))?;
        let mut aliases = vec![name.to_vec()];
        if let Some(so) = &info.soname {
            aliases.push(so.clone());
        }
        self.digests.insert(cand.file_id, cand.digest);
        self.objs.push(Obj {
            virt: cand.virt,
            host: cand.host,
            file_id: cand.file_id,
            digest: cand.digest,
            info,
            loaded_by: Some(requester),
            aliases,
        });
        Ok(self.objs.len() - 1)
    }

    /// Records `name` -> object `obj` (once per name).
    fn record(&mut self, name: &[u8], requester: &Path, locked: Option<Digest>, obj: usize, via: Via) {
        if self.dep_index.contains_key(name) {
            return;
        }
        let o = &self.objs[obj];
        let outcome = match locked {
            Some(want) if want != o.digest => Outcome::Mismatch { candidates: vec![(o.host.clone(), o.digest)] },
            _ => Outcome::Found { path: o.host.clone(), digest: o.digest, via },
        };
        self.dep_index.insert(name.to_vec(), self.deps.len());
        self.deps.push(Dep { name: name.to_vec(), needed_by: requester.to_path_buf(), locked, outcome });
    }

    /// `name` already means object `id`; from `requester`'s point of view
    /// the search may find another file. Different content under one name
    /// is a diamond conflict: the lock can hold only one digest per name.
    fn check_diamond(&mut self, requester: usize, name: &[u8], id: usize) -> Result<()> {
        let (found, _) = self.search(requester, name, None, |walk, virt, host, fid, _| {
            let digest = walk.digest_of(&host, fid)?;
            Ok(Some(Candidate { virt: virt.to_vec(), host, file_id: fid, digest }))
        })?;
        let Some((other, _)) = found else { return Ok(()) };
        let existing = &self.objs[id];
        if other.file_id != existing.file_id && other.digest != existing.digest {
            let first_by = self.dep_index.get(name).map(|&d| self.deps[d].needed_by.display().to_string()).unwrap_or_else(|| "?".into());
            return Err(anyhow!(
                "diamond conflict: {} is {} (blake3:{}) for {} but {} (blake3:{}) for {}",
                show(name),
                existing.host.display(),
                existing.digest.short_hex(16),
                first_by,
                other.host.display(),
                other.digest.short_hex(16),
                self.objs[requester].host.display(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loader_names() {
        assert!(is_loader_name(b"ld-linux-x86-64.so.2"));
        assert!(is_loader_name(b"/lib64/ld-linux-x86-64.so.2"));
        assert!(is_loader_name(b"ld-linux-aarch64.so.1"));
        assert!(is_loader_name(b"ld-cah.so"));
        assert!(!is_loader_name(b"libc.so.6"));
        assert!(!is_loader_name(b"ld-linux-foo"));
    }

    #[test]
    fn in_root_follows_links_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("usr/lib/x")).unwrap();
        std::fs::write(root.join("usr/lib/x/libz.so.1.2"), b"z").unwrap();
        std::os::unix::fs::symlink("usr/lib", root.join("lib")).unwrap();
        std::os::unix::fs::symlink("/usr/lib/x/libz.so.1.2", root.join("usr/lib/x/libz.so.1")).unwrap();
        let p = in_root(root, b"/lib/x/libz.so.1");
        assert_eq!(p, root.join("usr/lib/x/libz.so.1.2"));
        assert_eq!(std::fs::read(&p).unwrap(), b"z");
        assert_eq!(in_root(root, b"/../../lib/x/../x/libz.so.1"), root.join("usr/lib/x/libz.so.1.2"));
        assert_eq!(in_root(Path::new("/"), b"/etc/passwd"), PathBuf::from("/etc/passwd"));
    }
}
