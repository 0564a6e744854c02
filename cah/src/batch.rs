//! `cah patch` over several files and over a whole root file system.
//!
//! One file is patched by [`patch_file`]: its closure is resolved inside
//! the root (`closure::resolve`), the lock is written, the interpreter set
//! (see [`Config::interp_for`]), and every locked file copied into the
//! store. A result with the same bytes as the input is not written at
//! all, so patching a patched root again changes nothing.
//!
//! [`patch_root`] finds every ELF program of a root ([`classify`]) and
//! patches them on all cores. A program is written atomically: the new
//! content goes to a temporary file that gets the original's owner, mode
//! and extended attributes, then replaces every hard link of the inode by
//! a rename each ([`files::replace_links`]), so each name shows either the
//! old or the new program, and all names stay one inode.

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{anyhow, bail, Context, Result};
use ld_cah::verify::{Lock, LockFlags};
use object::elf;

use crate::closure::{self, Options};
use crate::{elfinfo, files, patch, standin, store};

/// Where `cah patch` points `PT_INTERP` unless told otherwise.
pub const DEFAULT_INTERP: &str = "/usr/lib/ld-cah/ld-cah.so";

/// What every file of one `cah patch` run gets.
#[derive(Clone, Debug)]
pub struct Config {
    /// The root the closures are resolved in.
    pub root: PathBuf,
    /// `--interp`.
    pub interp: Option<String>,
    /// `--keep-interp`.
    pub keep_interp: bool,
    /// Where locked files are copied.
    pub store: Option<PathBuf>,
    /// `--also` names.
    pub also: Vec<Vec<u8>>,
    /// `--strict`.
    pub strict: bool,
    /// `--fresh`.
    pub fresh: bool,
}

impl Config {
    /// The interpreter to write into a file that `already_patched` or not:
    /// `--interp` if given; otherwise a patched file keeps its own (the
    /// operator may have chosen it) and a new one gets [`DEFAULT_INTERP`].
    pub fn interp_for(&self, already_patched: bool) -> Option<String> {
        if self.keep_interp {
            return None;
        }
        match &self.interp {
            Some(i) => Some(i.clone()),
            None if already_patched => None,
            None => Some(DEFAULT_INTERP.to_string()),
        }
    }

    /// A warning if `interp` is not a file inside the root.
    pub fn check_interp(&self, interp: &[u8]) -> Option<String> {
        let host = closure::in_root(&self.root, interp);
        if std::fs::metadata(&host).is_ok_and(|m| m.is_file()) {
            return None;
        }
        let inside = if self.root == Path::new("/") { String::new() } else { format!(" inside {}", self.root.display()) };
        Some(format!(
            "interpreter {} does not exist{inside}: the patched programs cannot start until it is installed",
            String::from_utf8_lossy(interp)
        ))
    }
}

/// What patching one file did.
#[derive(Clone, Debug)]
pub struct Done {
    /// Locked names.
    pub locked: usize,
    /// The interpreter written, if one was.
    pub interp: Option<String>,
    /// The file had no `PT_INTERP`.
    pub no_interp: bool,
    /// Whether the bytes changed.
    pub changed: bool,
    /// Things to tell the operator.
    pub warnings: Vec<String>,
    /// The interpreter the file has afterwards (to check it exists).
    pub final_interp: Option<Vec<u8>>,
}

/// The new bytes of `path` (read as `data`) and what was done.
pub fn patched_bytes(path: &Path, data: &[u8], cfg: &Config) -> Result<(Vec<u8>, Done)> {
    let info = elfinfo::read(data).with_context(|| format!("{}", path.display()))?;
    if !elfinfo::MACHINES.contains(&info.machine) {
        bail!("{}: machine {} is not supported (x86_64 and aarch64 are)", path.display(), info.machine);
    }
    let existing = elfinfo::read_lock(data, &info)
        .with_context(|| format!("{}: existing lock (use --fresh to replace it)", path.display()))?
        .map(|v| v.to_lock());
    let already_patched = existing.is_some();
    let old = if cfg.fresh { None } else { existing };
    let mut also = cfg.also.clone();
    if let Some(old) = &old {
        for e in old.iter() {
            if !also.iter().any(|n| n == e.name) {
                also.push(e.name.to_vec());
            }
        }
    }
    crate::dlopen_note::lock_declared(path, data, &info, &cfg.root, &mut also);
    let closure = closure::resolve(path, &Options { root: &cfg.root, also: &also, lock: None, store: None })?;
    let mut flags = old.as_ref().map_or(0, |l| l.flags.0);
    if cfg.strict {
        flags |= LockFlags::STRICT;
    }
    let mut lock = Lock::new(LockFlags(flags));
    for (name, _, digest) in closure.resolved() {
        lock.insert(name, digest).map_err(|e| anyhow!("{}: {e}", String::from_utf8_lossy(name)))?;
    }
    let mut warnings = Vec::new();
    if let Some(g @ standin::Glibc::Unknown { .. }) = standin::check(&closure, &cfg.root) {
        warnings.push(format!("{}: {}", path.display(), g.describe()));
    }
    let interp = cfg.interp_for(already_patched);
    let (out, report) = patch::apply(data, &patch::Patch { note: lock.to_note(), interp: interp.as_ref().map(|i| i.as_bytes().to_vec()) })
        .with_context(|| format!("{}", path.display()))?;
    if let Some(store) = &cfg.store {
        for (_, p, digest) in closure.resolved() {
            store::add_known(store, p, digest)?;
        }
    }
    let final_interp = if report.no_interp { None } else { interp.as_ref().map(|i| i.as_bytes().to_vec()).or(info.interp) };
    let changed = out != data;
    Ok((
        out,
        Done {
            locked: lock.len(),
            interp: if report.no_interp { None } else { interp },
            no_interp: report.no_interp,
            changed,
            warnings,
            final_interp,
        },
    ))
}

/// Why a file of the root is not patched (`None`: it is a program to patch).
pub fn classify(path: &Path, data: &[u8]) -> Option<&'static str> {
    if data.starts_with(b"#!") {
        return Some("script");
    }
    let Ok(info) = elfinfo::read(data) else {
        return Some(if data.starts_with(&elf::ELFMAG) { "not a 64-bit little-endian ELF file" } else { "not an ELF file" });
    };
    if !elfinfo::MACHINES.contains(&info.machine) {
        return Some("unsupported machine");
    }
    let name = path.file_name().map_or(&[][..], |n| n.as_bytes());
    if closure::is_loader_name(name) || info.soname.as_deref().is_some_and(closure::is_loader_name) {
        return Some("the dynamic loader itself");
    }
    // elfinfo::read accepted the header, so e_type is there.
    let e_type = u16::from_le_bytes([data[16], data[17]]);
    let pie = info.flags_1 & u64::from(elf::DF_1_PIE) != 0;
    match (e_type, info.interp.is_some()) {
        (elf::ET_EXEC, false) => Some("static program"),
        (elf::ET_EXEC, true) => None,
        (elf::ET_DYN, false) if pie => Some("static program"),
        (elf::ET_DYN, false) => Some("shared library"),
        // A PIE program; a library with a PT_INTERP (libc.so.6, which runs
        // to print its version) has a DT_SONAME and no DF_1_PIE.
        (elf::ET_DYN, true) if pie || info.soname.is_none() => None,
        (elf::ET_DYN, true) => Some("shared library"),
        _ => Some("not an executable"),
    }
}

/// Directories of a root never walked: kernel file systems, scratch space,
/// mount points and users' files (not the system's programs), and the
/// store (its files are libraries by digest).
const SKIP_DIRS: [&str; 10] = ["proc", "sys", "dev", "run", "tmp", "var/tmp", "mnt", "media", "home", "var/lib/cah/store"];

/// One inode to look at.
pub struct Job {
    /// Every name of the inode under the root.
    pub names: Vec<PathBuf>,
}

/// Every regular file under `root` (not following symbolic links, and
/// not into [`SKIP_DIRS`]), only executable ones if `executables`, grouped
/// by inode. A separate `/usr` is walked; another mount under a walked
/// directory is too, so a root is patched with nothing foreign mounted.
pub fn find_files(root: &Path, executables: bool) -> Result<Vec<Job>> {
    let mut by_inode: HashMap<(u64, u64), usize> = HashMap::new();
    let mut jobs: Vec<Job> = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).with_context(|| format!("{}", dir.display()))?;
        let mut names: Vec<_> = entries.collect::<std::io::Result<Vec<_>>>().with_context(|| format!("{}", dir.display()))?;
        names.sort_by_key(|e| e.file_name());
        for e in names {
            let path = e.path();
            let meta = std::fs::symlink_metadata(&path).with_context(|| format!("{}", path.display()))?;
            if meta.is_dir() {
                let rel = path.strip_prefix(root).unwrap_or(&path);
                if !SKIP_DIRS.iter().any(|s| rel == Path::new(s)) {
                    pending.push(path);
                }
            } else if meta.is_file() && (!executables || meta.mode() & 0o111 != 0) {
                // Our own temporary files (an interrupted run) are not programs.
                if e.file_name().as_bytes().starts_with(b".") && e.file_name().as_bytes().windows(5).any(|w| w == b".cah-") {
                    continue;
                }
                match by_inode.get(&(meta.dev(), meta.ino())) {
                    Some(&i) => jobs[i].names.push(path),
                    None => {
                        by_inode.insert((meta.dev(), meta.ino()), jobs.len());
                        jobs.push(Job { names: vec![path] });
                    }
                }
            }
        }
    }
    Ok(jobs)
}

/// What happened to one inode of the root.
enum Fate {
    Patched(Done),
    Unchanged(Done),
    Skipped(&'static str),
    Failed(String),
}

fn patch_job(job: &Job, cfg: &Config) -> Fate {
    let path = &job.names[0];
    let (file, meta) = match files::open_regular(path) {
        Ok(x) => x,
        Err(e) => return Fate::Failed(format!("{e:#}")),
    };
    let data = match files::read_all(&file, &meta, path) {
        Ok(d) => d,
        Err(e) => return Fate::Failed(format!("{e:#}")),
    };
    if let Some(why) = classify(path, &data) {
        return Fate::Skipped(why);
    }
    let (out, done) = match patched_bytes(path, &data, cfg) {
        Ok(x) => x,
        Err(e) => return Fate::Failed(format!("{e:#}")),
    };
    if !done.changed {
        return Fate::Unchanged(done);
    }
    match files::replace_links(&job.names, &file, &meta, &out) {
        Ok(mut w) => {
            let mut done = done;
            done.warnings.append(&mut w);
            Fate::Patched(done)
        }
        Err(e) => Fate::Failed(format!("{e:#}")),
    }
}

/// Patches every ELF program of `cfg.root`. Prints a summary; returns
/// whether every program could be patched.
pub fn patch_root(cfg: &Config, jobs: Option<usize>, json: bool) -> Result<bool> {
    let root = &cfg.root;
    let list = find_files(root, true)?;
    let threads = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).clamp(1, 64);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Fate)>> = Mutex::new(Vec::new());
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = list.get(i) else { break };
                let fate = patch_job(job, cfg);
                let mut r = results.lock().unwrap_or_else(|e| e.into_inner());
                r.push((i, fate));
                if tty {
                    eprint!("\rcah: patching {root}: {}/{} files", r.len(), list.len(), root = root.display());
                }
            });
        }
    });
    if tty {
        eprintln!();
    }
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|(i, _)| *i);
    let rel = |p: &Path| Path::new("/").join(p.strip_prefix(root).unwrap_or(p)).display().to_string();
    let (mut patched, mut unchanged, mut failed) = (0usize, 0usize, 0usize);
    let mut skipped: Vec<(&'static str, usize)> = Vec::new();
    let mut interps: Vec<Vec<u8>> = Vec::new();
    // With --json, one entry per file that was looked at as a program.
    let mut entries = Vec::new();
    for (i, fate) in &results {
        let names = &list[*i].names;
        let links = if names.len() > 1 { format!(" ({} links)", names.len()) } else { String::new() };
        match fate {
            Fate::Patched(d) | Fate::Unchanged(d) => {
                for w in &d.warnings {
                    eprintln!("cah: warning: {w}");
                }
                if let Some(interp) = &d.final_interp {
                    if !interps.contains(interp) {
                        interps.push(interp.clone());
                    }
                }
                let status = if matches!(fate, Fate::Patched(_)) {
                    patched += 1;
                    if !json {
                        println!("patched    {}{links}: {} locked", rel(&names[0]), d.locked);
                    }
                    "patched"
                } else {
                    unchanged += 1;
                    "unchanged"
                };
                if json {
                    entries.push(serde_json::json!({"path": rel(&names[0]), "links": names.len(), "status": status, "locked": d.locked}));
                }
            }
            Fate::Skipped(why) => {
                match skipped.iter_mut().find(|(w, _)| w == why) {
                    Some((_, n)) => *n += 1,
                    None => skipped.push((why, 1)),
                }
                // Scripts and libraries are expected; say which programs were left alone.
                if matches!(*why, "static program" | "the dynamic loader itself" | "unsupported machine") {
                    if json {
                        entries.push(serde_json::json!({"path": rel(&names[0]), "status": "skipped", "reason": why}));
                    } else {
                        println!("skipped    {}: {why}", rel(&names[0]));
                    }
                }
            }
            Fate::Failed(e) => {
                failed += 1;
                if json {
                    entries.push(serde_json::json!({"path": rel(&names[0]), "status": "failed", "error": e.to_string()}));
                } else {
                    println!("failed     {}: {e}", rel(&names[0]));
                }
            }
        }
    }
    for interp in &interps {
        if let Some(w) = cfg.check_interp(interp) {
            eprintln!("cah: warning: {w}");
        }
    }
    skipped.sort();
    if json {
        let skipped: serde_json::Map<String, serde_json::Value> = skipped.iter().map(|(w, n)| (w.to_string(), (*n).into())).collect();
        crate::json::print(
            "patch",
            serde_json::json!({
                "root": root.display().to_string(),
                "patched": patched,
                "unchanged": unchanged,
                "failed": failed,
                "skipped": skipped,
                "entries": entries,
            }),
        )?;
        return Ok(failed == 0);
    }
    let skipped_text = skipped.iter().map(|(w, n)| format!("{n} {w}")).collect::<Vec<_>>().join(", ");
    println!(
        "{}: {patched} patched, {unchanged} already up to date, {failed} failed; skipped: {}",
        root.display(),
        if skipped_text.is_empty() { "none" } else { &skipped_text }
    );
    Ok(failed == 0)
}
