//! `cah`: patch programs with a closure lock, show and verify them, manage
//! the content-addressed store and the per-inode hash cache.
//!
//! Every format is read and written by `ld_cah::verify` (the loader's own
//! code); the dependency closure is resolved in `closure.rs` with the
//! loader's search order. `docs/cah.md` is the user's guide.

mod assets;
mod batch;
mod bundle;
mod cachefile;
mod closure;
mod dlopen_note;
mod dynstr;
mod elfinfo;
mod fetch;
mod files;
#[cfg(test)]
mod fuzz;
mod glibc;
mod hashing;
mod json;
mod patch;
mod standin;
mod store;

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use ld_cah::verify::cache::SlotState;
use ld_cah::verify::lock::LockView;
use ld_cah::verify::{Digest, FileIdentity, Lock};
use serde_json::json;

use closure::{Closure, Options, Outcome, Via};
use hashing::tagged;

#[derive(Parser)]
#[command(name = "cah", version, about = "Content-addressed dynamic linking: lock, verify and store program closures")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Lock a program's closure: write the CAH note and set PT_INTERP.
    Patch(PatchArgs),
    /// Print a program's closure lock and where each file is found now.
    Show(ShowArgs),
    /// Check a program's closure on this machine as the loader would.
    Verify(VerifyArgs),
    /// Manage the content-addressed store.
    Store(StoreArgs),
    /// Make a directory that runs PROG wherever it is copied.
    Bundle(bundle::BundleArgs),
    /// Fetch locked libraries missing here, by digest, from a remote store.
    Fetch(fetch::FetchArgs),
    /// Inspect or manage the per-inode hash cache.
    Cache(CacheArgs),
    /// Generate and install layout tables for glibc builds (`glibc add LIBC`).
    Glibc(glibc::GlibcArgs),
    /// Write man pages and shell completions into DIR (for packaging).
    #[command(hide = true)]
    GenerateAssets { dir: PathBuf },
}

#[derive(Args)]
struct PatchArgs {
    /// The programs (or shared libraries) to patch. With --root and none
    /// given: every ELF program in the root.
    prog: Vec<PathBuf>,
    /// Write the result here instead of replacing PROG (one PROG only).
    #[arg(short, long, value_name = "OUT")]
    output: Option<PathBuf>,
    /// Resolve the closure inside this sysroot (default /). Without PROG,
    /// patch the whole root, with the store in DIR/var/lib/cah/store.
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// The interpreter to set (default: /usr/lib/ld-cah/ld-cah.so for a
    /// program patched the first time; a patched program keeps its own).
    #[arg(long, value_name = "PATH", conflicts_with = "keep_interp")]
    interp: Option<String>,
    /// Leave PT_INTERP as it is.
    #[arg(long)]
    keep_interp: bool,
    /// Also copy every file of the closure into this store.
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
    /// Lock these too (names as the program passes them to dlopen), with
    /// their dependencies.
    #[arg(long, value_name = "LIB", num_args = 1..)]
    also: Vec<String>,
    /// Set the STRICT flag: the loader refuses any unlocked dependency.
    #[arg(long)]
    strict: bool,
    /// Ignore an existing lock (by default its extra names and flags are kept).
    #[arg(long)]
    fresh: bool,
    /// Threads for a whole root (default: one per core).
    #[arg(short, long, value_name = "N")]
    jobs: Option<usize>,
    /// Print JSON (one document at the end; warnings stay on stderr).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ShowArgs {
    /// A patched program.
    prog: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    place: Place,
}

#[derive(Args)]
struct VerifyArgs {
    /// A patched program.
    prog: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    place: Place,
}

/// Where files are looked for.
#[derive(Args)]
struct Place {
    /// Resolve inside this sysroot.
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
    /// The store to try first for locked names.
    #[arg(long, value_name = "DIR", env = "CAH_STORE", default_value = store::DEFAULT_STORE)]
    store: PathBuf,
}

#[derive(Args)]
struct StoreArgs {
    /// The store directory (default /var/lib/cah/store; with `gc --root
    /// DIR`, DIR/var/lib/cah/store).
    #[arg(long, value_name = "DIR", env = "CAH_STORE", global = true)]
    store: Option<PathBuf>,
    #[command(subcommand)]
    command: StoreCommand,
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Copy files into the store under their digest.
    Add {
        /// Files to add.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List the store.
    Ls {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Re-hash every file and report any whose content does not match its name.
    Verify,
    /// Remove every file no given program's lock refers to.
    Gc {
        /// Programs whose locked files are kept (files without a lock,
        /// such as scripts, are passed over).
        #[arg(long, value_name = "PROG", num_args = 1.., required_unless_present = "root")]
        keep: Vec<PathBuf>,
        /// Keep what every patched file in this root locks; the store is
        /// the root's own unless --store is given.
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        /// Only say what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Args)]
struct CacheArgs {
    /// The cache file (default: /run/ld-cah/hashes for root,
    /// /run/user/<uid>/ld-cah/hashes otherwise).
    #[arg(long, value_name = "PATH", global = true)]
    file: Option<PathBuf>,
    #[command(subcommand)]
    command: CacheCommand,
}

#[derive(Subcommand)]
enum CacheCommand {
    /// Entries, misses, inserts and size.
    Stats {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check the header and every slot's checksum.
    Verify,
    /// Empty every slot.
    Clear,
    /// Create the cache file.
    Init {
        /// Number of slots (a power of two).
        #[arg(long, default_value_t = ld_cah::verify::cache::DEFAULT_SLOTS)]
        slots: usize,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Hash files and record them (creating the cache file if needed).
    Add {
        /// Files to add.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the cached digest of files (exit status 1 if any is not cached).
    Lookup {
        /// Files to look up.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    // Die quietly on a closed pipe (`cah show prog | head`), as Unix tools do.
    // SAFETY: setting a signal disposition to its default is always sound,
    // and no other thread exists yet.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let json_command = cli.command.json_name();
    let result = match cli.command {
        Command::Patch(a) => cmd_patch(a),
        Command::Show(a) => cmd_show(a),
        Command::Verify(a) => cmd_verify(a),
        Command::Store(a) => cmd_store(a),
        Command::Bundle(a) => bundle::run(a),
        Command::Fetch(a) => fetch::run(a),
        Command::Cache(a) => cmd_cache(a),
        Command::Glibc(a) => glibc::run(a),
        Command::GenerateAssets { dir } => assets::run(&dir),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            match json_command {
                Some(c) => println!("{}", serde_json::to_string_pretty(&json::error(c, &e)).unwrap_or_default()),
                None => eprintln!("cah: error: {e:#}"),
            }
            ExitCode::from(2)
        }
    }
}

impl Command {
    /// The command's name in JSON documents, if `--json` was asked for.
    fn json_name(&self) -> Option<&'static str> {
        match self {
            Command::Show(a) if a.json => Some("show"),
            Command::Verify(a) if a.json => Some("verify"),
            Command::Store(StoreArgs { command: StoreCommand::Ls { json: true }, .. }) => Some("store ls"),
            Command::Fetch(a) if a.json => Some("fetch"),
            Command::Patch(a) if a.json => Some("patch"),
            _ => None,
        }
    }
}

fn show_name(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

/// Reads the lock `prog` carries (an error if it has none).
fn read_lock(prog: &Path, data: &[u8]) -> Result<Lock> {
    let info = elfinfo::read(data).with_context(|| format!("{}", prog.display()))?;
    let view: Option<LockView<'_>> = elfinfo::read_lock(data, &info).with_context(|| format!("{}", prog.display()))?;
    view.map(|v| v.to_lock()).ok_or_else(|| anyhow!("{}: no closure lock (not patched by cah)", prog.display()))
}

fn cmd_patch(a: PatchArgs) -> Result<bool> {
    let whole_root = a.prog.is_empty();
    let root = match (&a.root, whole_root) {
        (Some(r), _) => r.clone(),
        (None, false) => PathBuf::from("/"),
        (None, true) => bail!("nothing to patch: give programs, or --root DIR to patch every program in a root"),
    };
    if a.output.is_some() && a.prog.len() != 1 {
        bail!("--output takes exactly one program");
    }
    let store = match (&a.store, whole_root) {
        (Some(s), _) => Some(s.clone()),
        // A whole root's locked files go into the root's own store.
        (None, true) => Some(closure::in_root(&root, store::DEFAULT_STORE.as_bytes())),
        (None, false) => None,
    };
    let cfg = batch::Config {
        root,
        interp: a.interp.clone(),
        keep_interp: a.keep_interp,
        store,
        also: a.also.iter().map(|s| s.as_bytes().to_vec()).collect(),
        strict: a.strict,
        fresh: a.fresh,
    };
    if whole_root {
        return batch::patch_root(&cfg, a.jobs, a.json);
    }
    let mut all = true;
    let mut interps: Vec<Vec<u8>> = Vec::new();
    let mut entries = Vec::new();
    for prog in &a.prog {
        match patch_one(prog, a.output.as_deref(), &cfg) {
            Ok((dest, done)) => {
                if let Some(i) = &done.final_interp {
                    if !interps.contains(i) {
                        interps.push(i.clone());
                    }
                }
                let changed = done.changed || a.output.is_some();
                if a.json {
                    entries.push(json!({
                        "path": dest.display().to_string(),
                        "status": if changed { "patched" } else { "unchanged" },
                        "locked": done.locked,
                        "interpreter": if done.no_interp { None } else { done.final_interp.as_deref().map(String::from_utf8_lossy) },
                    }));
                } else {
                    println!(
                        "{}: locked {} {}{}{}",
                        dest.display(),
                        done.locked,
                        if done.locked == 1 { "library" } else { "libraries" },
                        match (&done.no_interp, &done.interp) {
                            (true, _) => " (no PT_INTERP: interpreter not set)".to_string(),
                            (false, None) => String::new(),
                            (false, Some(i)) => format!(", interpreter {i}"),
                        },
                        if changed { "" } else { " (unchanged)" }
                    );
                }
            }
            // One bad file does not stop the others.
            Err(e) if a.prog.len() > 1 => {
                eprintln!("cah: error: {e:#}");
                if a.json {
                    entries.push(json!({"path": prog.display().to_string(), "status": "failed", "error": format!("{e:#}")}));
                }
                all = false;
            }
            Err(e) => return Err(e),
        }
    }
    for i in &interps {
        if let Some(w) = cfg.check_interp(i) {
            eprintln!("cah: warning: {w}");
        }
    }
    if a.json {
        json::print("patch", json!({ "entries": entries }))?;
    }
    Ok(all)
}

/// Patches one file (into `output` if given); returns where it went and
/// what was done.
fn patch_one(prog: &Path, output: Option<&Path>, cfg: &batch::Config) -> Result<(PathBuf, batch::Done)> {
    let (file, meta) = files::open_regular(prog)?;
    let data = files::read_all(&file, &meta, prog)?;
    let (out, done) = batch::patched_bytes(prog, &data, cfg)?;
    for w in &done.warnings {
        eprintln!("cah: warning: {w}");
    }
    let dest = match output {
        Some(dest) => {
            // A new file: PROG's mode, but no set-ID bit unless it keeps
            // PROG's owner (and group).
            files::write_new(dest, &out, meta.mode(), Some(&meta))?;
            dest.to_path_buf()
        }
        None => {
            // In place means the file itself, not a symbolic link to it;
            // its inode is rewritten (owner, group, mode, hard links and
            // extended attributes stay).
            let dest = std::fs::canonicalize(prog).with_context(|| format!("{}", prog.display()))?;
            if done.changed {
                let written = files::replace_in_place(&dest, &file, &meta, &out)?;
                for w in &written.warnings {
                    eprintln!("cah: warning: {w}");
                }
                if written.renamed {
                    eprintln!("cah: warning: {}: running, so replaced by a new file rather than rewritten", dest.display());
                }
            }
            dest
        }
    };
    Ok((dest, done))
}

/// The lock's names, resolved here as the loader would.
fn resolve_locked(prog: &Path, lock: &Lock, place: &Place) -> Result<Closure> {
    let also: Vec<Vec<u8>> = lock.iter().map(|e| e.name.to_vec()).collect();
    closure::resolve(prog, &Options { root: &place.root, also: &also, lock: Some(lock), store: Some(&place.store) })
}

/// JSON for one dependency.
fn dep_json(d: &closure::Dep) -> serde_json::Value {
    let mut v = json!({
        "name": show_name(&d.name),
        "digest": d.locked.map(|x| tagged(&x)),
        "needed_by": d.needed_by.display().to_string(),
    });
    match &d.outcome {
        Outcome::Found { path, digest, via } => {
            v["status"] = json!(if d.locked.is_some() { "ok" } else { "unlocked" });
            v["path"] = json!(path.display().to_string());
            v["found_digest"] = json!(tagged(digest));
            v["via"] = json!(match via {
                Via::Store => "store",
                Via::Search => "search",
            });
        }
        Outcome::Missing { tried } => {
            v["status"] = json!("missing");
            v["tried"] = json!(tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>());
        }
        Outcome::Mismatch { candidates } => {
            v["status"] = json!("mismatch");
            v["candidates"] =
                json!(candidates.iter().map(|(p, d)| json!({"path": p.display().to_string(), "digest": tagged(d)})).collect::<Vec<_>>());
        }
    }
    v
}

fn cmd_show(a: ShowArgs) -> Result<bool> {
    let data = files::read_regular(&a.prog)?;
    let lock = read_lock(&a.prog, &data)?;
    let info = elfinfo::read(&data)?;
    let closure = resolve_locked(&a.prog, &lock, &a.place)?;
    let interp = info.interp.as_deref().map(show_name);
    let (dlopen_lines, dlopen_json) = dlopen_note::show(&a.prog, &data, &info, &lock);
    if a.json {
        let entries: Vec<serde_json::Value> = lock
            .iter()
            .map(|e| match closure.deps.iter().find(|d| d.name == e.name) {
                Some(d) => dep_json(d),
                None => json!({"name": show_name(e.name), "digest": tagged(&e.digest), "status": "unresolved"}),
            })
            .collect();
        let v = json!({
            "program": a.prog.display().to_string(),
            "lock_version": ld_cah::verify::lock::VERSION,
            "flags": lock.flags.0,
            "strict": lock.flags.strict(),
            "interp": interp,
            "entries": entries,
            "glibc": standin::check(&closure, &a.place.root).map(|g| g.json()),
            "dlopen_note": dlopen_json,
        });
        json::print("show", v)?;
        return Ok(true);
    }
    println!(
        "{}: closure lock v{}, {} entries{}{}",
        a.prog.display(),
        ld_cah::verify::lock::VERSION,
        lock.len(),
        if lock.flags.strict() { ", strict" } else { "" },
        interp.map(|i| format!(", interpreter {i}")).unwrap_or_default()
    );
    let width = lock.iter().map(|e| e.name.len()).max().unwrap_or(0);
    for e in lock.iter() {
        let place = match closure.deps.iter().find(|d| d.name == e.name).map(|d| &d.outcome) {
            Some(Outcome::Found { path, via: Via::Store, .. }) => format!("{} (store)", path.display()),
            Some(Outcome::Found { path, .. }) => path.display().to_string(),
            Some(Outcome::Missing { .. }) | None => "(not found)".to_string(),
            Some(Outcome::Mismatch { candidates }) => format!(
                "(no matching file: {})",
                candidates.iter().map(|(p, d)| format!("{} has blake3:{}", p.display(), d.short_hex(12))).collect::<Vec<_>>().join(", ")
            ),
        };
        println!("  {:width$}  {}  {}", show_name(e.name), tagged(&e.digest), place, width = width);
    }
    if let Some(g) = standin::check(&closure, &a.place.root) {
        println!("  {}", g.describe());
    }
    for l in dlopen_lines {
        println!("  {l}");
    }
    Ok(true)
}

fn cmd_verify(a: VerifyArgs) -> Result<bool> {
    let data = files::read_regular(&a.prog)?;
    let lock = read_lock(&a.prog, &data)?;
    let closure = resolve_locked(&a.prog, &lock, &a.place)?;
    let strict = lock.flags.strict();
    let (mut ok, mut bad, mut unlocked) = (0, 0, 0);
    let mut lines = Vec::new();
    for d in &closure.deps {
        let name = show_name(&d.name);
        match (&d.outcome, d.locked) {
            (Outcome::Found { path, via, .. }, Some(_)) => {
                ok += 1;
                let via = if *via == Via::Store { " (store)" } else { "" };
                lines.push(format!("ok        {name}  {}{via}", path.display()));
            }
            (Outcome::Found { path, digest, .. }, None) => {
                unlocked += 1;
                lines.push(format!("unlocked  {name}  {} ({}; not in the lock)", path.display(), tagged(digest)));
            }
            (Outcome::Missing { tried }, want) => {
                bad += 1;
                lines.push(format!(
                    "missing   {name}  {}: no file (tried {})",
                    want.map(|w| tagged(&w)).unwrap_or_default(),
                    tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
                ));
            }
            (Outcome::Mismatch { candidates }, want) => {
                bad += 1;
                lines.push(format!(
                    "mismatch  {name}  wanted {}; rejected {}",
                    want.map(|w| tagged(&w)).unwrap_or_default(),
                    candidates.iter().map(|(p, d)| format!("{} ({})", p.display(), tagged(d))).collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }
    // A glibc the loader has no table for: the program cannot start.
    let glibc = standin::check(&closure, &a.place.root);
    if let Some(g @ standin::Glibc::Unknown { .. }) = &glibc {
        bad += 1;
        lines.push(format!("no-table  libc.so.6  {}", g.describe()));
    }
    let passed = bad == 0 && (!strict || unlocked == 0);
    if a.json {
        let v = json!({
            "program": a.prog.display().to_string(),
            "ok": passed,
            "strict": strict,
            "entries": closure.deps.iter().map(dep_json).collect::<Vec<_>>(),
            "glibc": glibc.as_ref().map(|g| g.json()),
        });
        json::print("verify", v)?;
    } else {
        for l in &lines {
            println!("{l}");
        }
        println!(
            "{}: {} ({ok} ok, {bad} failed, {unlocked} unlocked{})",
            a.prog.display(),
            if passed { "verified" } else { "FAILED" },
            if strict { ", strict" } else { "" }
        );
    }
    Ok(passed)
}

fn cmd_store(a: StoreArgs) -> Result<bool> {
    let gc_root = match &a.command {
        StoreCommand::Gc { root: Some(r), .. } => Some(r.clone()),
        _ => None,
    };
    let store = &match (&a.store, &gc_root) {
        (Some(s), _) => s.clone(),
        (None, Some(r)) => closure::in_root(r, store::DEFAULT_STORE.as_bytes()),
        (None, None) => PathBuf::from(store::DEFAULT_STORE),
    };
    match a.command {
        StoreCommand::Add { files } => {
            for f in files {
                let (digest, added) = store::add(store, &f)?;
                println!("{}  {}{}", digest, f.display(), if added { "" } else { " (already stored)" });
            }
            Ok(true)
        }
        StoreCommand::Ls { json } => {
            let items = store::list(store)?;
            if json {
                let v: Vec<_> = items
                    .iter()
                    .map(|i| json!({"digest": tagged(&i.digest), "size": i.size, "path": i.path.display().to_string()}))
                    .collect();
                json::print("store ls", json!({"store": store.display().to_string(), "entries": v}))?;
            } else {
                for i in &items {
                    println!("{}  {:>10}", i.digest, i.size);
                }
            }
            Ok(true)
        }
        StoreCommand::Verify => {
            let items = store::list(store)?;
            let mut bad = 0;
            for i in &items {
                let actual = hashing::hash_file(&i.path)?;
                if actual != i.digest {
                    bad += 1;
                    println!("corrupt  {}  (content has {})", i.path.display(), tagged(&actual));
                }
            }
            println!("{}: {} files, {} corrupt", store.display(), items.len(), bad);
            Ok(bad == 0)
        }
        StoreCommand::Gc { keep, root, dry_run } => {
            let mut keep = keep;
            if let Some(root) = &root {
                keep.extend(batch::find_files(root, false)?.into_iter().map(|j| j.names.into_iter().next().unwrap_or_default()));
            }
            let mut wanted: HashSet<Digest> = HashSet::new();
            let mut locks = 0usize;
            for prog in &keep {
                // A file that cannot be read stops the collection (its
                // lock might name files); one that is no patched ELF file
                // locks nothing.
                let data = files::read_regular(prog)?;
                if !data.starts_with(b"\x7fELF") {
                    if root.is_none() {
                        println!("no lock   {} (not an ELF file)", prog.display());
                    }
                    continue;
                }
                if root.is_some() {
                    // In a root, most ELF files are libraries without a lock.
                    let lock = elfinfo::read(&data).ok().and_then(|info| elfinfo::read_lock(&data, &info).ok().flatten());
                    if let Some(lock) = lock {
                        locks += 1;
                        wanted.extend(lock.to_lock().iter().map(|e| e.digest));
                    }
                    continue;
                }
                // A program named with --keep must be patched: a typo must
                // not empty the store.
                locks += 1;
                wanted.extend(read_lock(prog, &data)?.iter().map(|e| e.digest));
            }
            if locks == 0 {
                bail!("no patched program found: refusing to remove every file of {}", store.display());
            }
            println!("{locks} locks name {} files", wanted.len());
            let mut removed = 0u64;
            let mut freed = 0u64;
            for i in store::list(store)? {
                if wanted.contains(&i.digest) {
                    continue;
                }
                if !dry_run {
                    std::fs::remove_file(&i.path).with_context(|| format!("{}", i.path.display()))?;
                }
                removed += 1;
                freed += i.size;
                println!("{}  {}", if dry_run { "would remove" } else { "removed" }, i.digest);
            }
            println!("{}: {removed} files, {freed} bytes {}", store.display(), if dry_run { "to free" } else { "freed" });
            Ok(true)
        }
    }
}

/// The identity of a file as the loader records it.
fn identity(meta: &std::fs::Metadata) -> FileIdentity {
    FileIdentity::from_stat(meta.dev(), meta.ino(), meta.size(), meta.mtime(), meta.mtime_nsec(), meta.ctime(), meta.ctime_nsec())
}

fn cmd_cache(a: CacheArgs) -> Result<bool> {
    let path = a.file.unwrap_or_else(cachefile::default_path);
    // The cache file is mapped: it must be a regular file (opening a FIFO
    // would block, mapping a device is no cache).
    if let Ok(meta) = std::fs::metadata(&path) {
        if !meta.is_file() && !matches!(a.command, CacheCommand::Init { force: false, .. }) {
            bail!("{}: is {}, not a hash cache file", path.display(), files::kind(&meta));
        }
    }
    let cache_err = |e: ld_cah::verify::CacheError| anyhow!("{}: {e}", path.display());
    match a.command {
        CacheCommand::Init { slots, force } => {
            if path.exists() && !force {
                bail!("{} exists (use --force to replace it)", path.display());
            }
            cachefile::create(&path, slots)?;
            println!("{}: {} slots", path.display(), slots);
            Ok(true)
        }
        CacheCommand::Stats { json } => {
            let mapped = cachefile::Mapped::open(&path, false)?;
            let cache = mapped.cache().map_err(cache_err)?;
            let s = cache.stats();
            let mut counts = [0u64; 4];
            for i in 0..cache.slot_count() {
                counts[match cache.slot(i) {
                    SlotState::Valid(_) => 0,
                    SlotState::Empty => 1,
                    SlotState::Busy => 2,
                    SlotState::Corrupt => 3,
                }] += 1;
            }
            let size = std::fs::metadata(&path)?.len();
            if json {
                let v = json!({
                    "file": path.display().to_string(), "size": size, "slots": s.slot_count,
                    "entries": counts[0], "empty": counts[1], "busy": counts[2], "corrupt": counts[3],
                    "misses": s.misses, "inserts": s.inserts,
                    "evictions": s.evictions, "insert_failures": s.insert_failures,
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("file:       {}", path.display());
                println!("size:       {size} bytes, {} slots", s.slot_count);
                println!("entries:    {} ({} empty, {} busy, {} corrupt)", counts[0], counts[1], counts[2], counts[3]);
                println!("misses:     {}", s.misses);
                println!("inserts:    {} ({} evictions, {} given up)", s.inserts, s.evictions, s.insert_failures);
            }
            Ok(true)
        }
        CacheCommand::Verify => {
            let mapped = cachefile::Mapped::open(&path, false)?;
            let cache = mapped.cache().map_err(cache_err)?;
            let (mut valid, mut busy, mut corrupt) = (0, 0, 0);
            for i in 0..cache.slot_count() {
                match cache.slot(i) {
                    SlotState::Valid(_) => valid += 1,
                    SlotState::Busy => {
                        busy += 1;
                        println!("busy     slot {i}");
                    }
                    SlotState::Corrupt => {
                        corrupt += 1;
                        println!("corrupt  slot {i}");
                    }
                    SlotState::Empty => {}
                }
            }
            println!("{}: header ok, {valid} entries, {busy} busy, {corrupt} corrupt slots", path.display());
            Ok(busy == 0 && corrupt == 0)
        }
        CacheCommand::Clear => {
            let mapped = cachefile::Mapped::open(&path, true)?;
            mapped.cache().map_err(cache_err)?.clear().map_err(cache_err)?;
            println!("{}: cleared", path.display());
            Ok(true)
        }
        CacheCommand::Add { files } => {
            if !path.exists() {
                match cachefile::create(&path, ld_cah::verify::cache::DEFAULT_SLOTS) {
                    Ok(()) => {}
                    // Another process made it first.
                    Err(_) if path.exists() => {}
                    Err(e) => return Err(e),
                }
            }
            let mapped = cachefile::Mapped::open(&path, true)?;
            let cache = mapped.cache().map_err(cache_err)?;
            for f in files {
                let (file, meta) = crate::files::open_regular(&f)?;
                let before = identity(&meta);
                if let Some(d) = cache.lookup(&before) {
                    println!("{d}  {} (cached)", f.display());
                    continue;
                }
                let digest = hashing::hash_open(&file, &meta, &f)?;
                // Record it only if the file did not change while hashed.
                if identity(&file.metadata()?) != before {
                    println!("{digest}  {} (changed while hashing; not cached)", f.display());
                    continue;
                }
                let outcome = cache.insert(&before, &digest);
                println!(
                    "{digest}  {}{}",
                    f.display(),
                    match outcome {
                        Ok(_) => String::new(),
                        Err(e) => format!(" (not cached: {e})"),
                    }
                );
            }
            Ok(true)
        }
        CacheCommand::Lookup { files } => {
            let mapped = cachefile::Mapped::open(&path, false)?;
            let cache = mapped.cache().map_err(cache_err)?;
            let mut all = true;
            for f in files {
                let meta = std::fs::metadata(&f).with_context(|| format!("{}", f.display()))?;
                match cache.lookup(&identity(&meta)) {
                    Some(d) => println!("{d}  {}", f.display()),
                    None => {
                        all = false;
                        println!("{:64}  {} (not cached)", "-", f.display());
                    }
                }
            }
            Ok(all)
        }
    }
}
