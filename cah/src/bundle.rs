//! `cah bundle PROG -o DIR`: a directory that runs PROG wherever it is
//! copied (docs/bundles.md).
//!
//! Layout: `DIR/bin/NAME` is ld-cah itself (a hard link to
//! `DIR/lib/ld-cah.so`, or a copy), `DIR/bin/.NAME.real` the program with
//! its closure locked, `DIR/lib/<name>` every locked library under the name
//! it is needed by. Started as `DIR/bin/NAME`, ld-cah sees that it is not
//! called `ld-*`, finds `.NAME.real` beside itself and runs it with
//! `DIR/lib` as its library path (the loader's bundle mode), so the kernel's
//! `/proc/self/exe` is `DIR/bin/NAME` and argv is the caller's.
//!
//! `--data PATH` copies a directory of PROG's prefix (the parent of the
//! directory PROG is in) to the same place under DIR and locks every ELF
//! object in it with its own closure; their libraries join PROG's lock.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use ld_cah::verify::{Digest, Lock, LockFlags};

use crate::closure::{self, Options};
use crate::{elfinfo, files, hashing, patch};

#[derive(Args)]
pub struct BundleArgs {
    /// The program to bundle.
    prog: PathBuf,
    /// The bundle directory to create (must not exist, or be empty).
    #[arg(short, long, value_name = "DIR")]
    output: PathBuf,
    /// Libraries the program dlopens (names as it passes them), locked and
    /// copied with their dependencies.
    #[arg(long, value_name = "LIB", num_args = 1..)]
    also: Vec<String>,
    /// A directory under the program's prefix to copy to the same place in
    /// the bundle; every ELF object in it is locked.
    #[arg(long, value_name = "PATH")]
    data: Vec<PathBuf>,
    /// The ld-cah.so to put in the bundle.
    #[arg(long, value_name = "PATH", default_value = "/usr/lib/ld-cah/ld-cah.so")]
    loader: PathBuf,
}

/// What is being put together.
struct Bundle {
    dir: PathBuf,
    /// Library name -> digest, of every file in `DIR/lib`.
    libs: BTreeMap<Vec<u8>, Digest>,
}

impl Bundle {
    /// Copies every resolved library of `c` into `DIR/lib` under its name.
    fn add_libs(&mut self, c: &closure::Closure) -> Result<()> {
        for (name, path, digest) in c.resolved() {
            if name.contains(&b'/') || name.starts_with(b".") {
                bail!("{}: a library named by a path cannot be bundled (give its name)", String::from_utf8_lossy(name));
            }
            match self.libs.get(name) {
                Some(d) if *d == digest => continue,
                Some(_) => {
                    bail!("{}: two different files under one name ({} and an earlier one)", String::from_utf8_lossy(name), path.display())
                }
                None => {}
            }
            let data = files::read_regular(path)?;
            if hashing::hash_bytes(&data) != digest {
                bail!("{} changed while bundling", path.display());
            }
            files::write_new(&self.dir.join("lib").join(std::ffi::OsStr::from_bytes(name)), &data, 0o755, None)?;
            self.libs.insert(name.to_vec(), digest);
        }
        Ok(())
    }
}

/// The lock of a resolved closure.
fn lock_of(c: &closure::Closure) -> Result<Lock> {
    let mut lock = Lock::new(LockFlags(0));
    for (name, _, digest) in c.resolved() {
        lock.insert(name, digest).map_err(|e| anyhow!("{}: {e}", String::from_utf8_lossy(name)))?;
    }
    Ok(lock)
}

/// `data` with `lock` written in (and `interp` set, if given).
fn patched(path: &Path, data: &[u8], lock: &Lock, interp: Option<&[u8]>) -> Result<Vec<u8>> {
    let p = patch::Patch { note: lock.to_note(), interp: interp.map(<[u8]>::to_vec) };
    Ok(patch::apply(data, &p).with_context(|| format!("{}", path.display()))?.0)
}

pub fn run(a: BundleArgs) -> Result<bool> {
    let root = Path::new("/");
    let prog = std::fs::canonicalize(&a.prog).with_context(|| format!("{}", a.prog.display()))?;
    // The name it was called by (`python3`, not the `python3.11` a link
    // points to), the content and prefix of the file itself.
    let name = a.prog.file_name().ok_or_else(|| anyhow!("{}: no file name", a.prog.display()))?.to_owned();
    if name.as_bytes().starts_with(b"ld-") || name.as_bytes().starts_with(b".") {
        bail!("{}: a bundled program's name must not start with `ld-` or `.`", prog.display());
    }
    let prefix = prog.parent().and_then(Path::parent).unwrap_or(Path::new("/")).to_path_buf();
    if let Ok(mut d) = std::fs::read_dir(&a.output) {
        if d.next().is_some() {
            bail!("{}: exists and is not empty", a.output.display());
        }
    }
    for sub in ["bin", "lib"] {
        std::fs::create_dir_all(a.output.join(sub)).with_context(|| format!("{}", a.output.display()))?;
    }
    let mut b = Bundle { dir: a.output.clone(), libs: BTreeMap::new() };

    // The data directories first: their libraries join the program's lock.
    let mut extra: Vec<Vec<u8>> = a.also.iter().map(|s| s.as_bytes().to_vec()).collect();
    let mut objects = 0usize;
    for data in &a.data {
        let data = std::fs::canonicalize(data).with_context(|| format!("{}", data.display()))?;
        let rel =
            data.strip_prefix(&prefix).map_err(|_| anyhow!("{}: not under the program's prefix {}", data.display(), prefix.display()))?;
        copy_tree(&mut b, &data, &a.output.join(rel), &mut extra, &mut objects)?;
    }

    let c = closure::resolve(&prog, &Options { root, also: &extra, lock: None, store: None })?;
    b.add_libs(&c)?;
    let lock = lock_of(&c)?;
    let (file, meta) = files::open_regular(&prog)?;
    let bytes = files::read_all(&file, &meta, &prog)?;
    let out = patched(&prog, &bytes, &lock, Some(crate::batch::DEFAULT_INTERP.as_bytes()))?;
    let mut real = b".".to_vec();
    real.extend_from_slice(name.as_bytes());
    real.extend_from_slice(b".real");
    files::write_new(&a.output.join("bin").join(std::ffi::OsStr::from_bytes(&real)), &out, meta.mode() & 0o755, None)?;

    // ld-cah, started as the program.
    let loader = files::read_regular(&a.loader)?;
    let loader_dest = a.output.join("lib/ld-cah.so");
    files::write_new(&loader_dest, &loader, 0o755, None)?;
    let start = a.output.join("bin").join(&name);
    if std::fs::hard_link(&loader_dest, &start).is_err() {
        files::write_new(&start, &loader, 0o755, None)?;
    }
    println!(
        "{}: {} with {} {}{}",
        a.output.display(),
        Path::new(&name).display(),
        b.libs.len(),
        if b.libs.len() == 1 { "library" } else { "libraries" },
        if objects > 0 { format!(", {objects} locked objects in data") } else { String::new() }
    );
    Ok(true)
}

/// Copies the tree `from` to `to`: directories, regular files (ELF programs
/// and shared objects
/// for the program's machines locked, their libraries into `DIR/lib` and
/// their names into `extra`), symbolic links as they are.
fn copy_tree(b: &mut Bundle, from: &Path, to: &Path, extra: &mut Vec<Vec<u8>>, objects: &mut usize) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("{}", to.display()))?;
    let mut entries: Vec<_> = std::fs::read_dir(from).with_context(|| format!("{}", from.display()))?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let src = e.path();
        let dst = to.join(e.file_name());
        let meta = std::fs::symlink_metadata(&src)?;
        if meta.is_dir() {
            copy_tree(b, &src, &dst, extra, objects)?;
        } else if meta.file_type().is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst).with_context(|| format!("{}", dst.display()))?;
        } else if meta.is_file() {
            let data = files::read_regular(&src)?;
            // Executables and shared objects; relocatable objects (`.o`)
            // are never loaded, so copied as they are.
            let loadable = data.len() > 18 && matches!(u16::from_le_bytes([data[16], data[17]]), 2 | 3);
            let out = if loadable && elfinfo::MACHINES.iter().any(|&m| elfinfo::is_compatible(&data, m)) {
                let c = closure::resolve(&src, &Options { root: Path::new("/"), also: &[], lock: None, store: None })?;
                b.add_libs(&c)?;
                for (name, _, _) in c.resolved() {
                    if !extra.iter().any(|n| n == name) {
                        extra.push(name.to_vec());
                    }
                }
                *objects += 1;
                patched(&src, &data, &lock_of(&c)?, None)?
            } else {
                data
            };
            files::write_new(&dst, &out, meta.mode() & 0o755, None)?;
        }
    }
    Ok(())
}
