//! `cargo xtask sysroot`: `target/sysroot/arm64/`, a small Debian bookworm
//! arm64 root made of real Debian packages, for running real arm64 programs
//! (bash, coreutils, perl, python3) and the glibc fixtures under
//! `qemu-aarch64 -L target/sysroot/arm64`, with Debian's own arm64 glibc
//! (the build ld-cah has a layout table for; the cross glibc of
//! `/usr/aarch64-linux-gnu` is another build, which ld-cah refuses).
//!
//! 1. [`PACKAGES`] and their dependency closure (no recommends) are resolved
//!    and fetched with a private apt (see `apt.rs`: state in
//!    `target/sysroot/apt/`, .debs cached in `target/sysroot/debs/`; the
//!    machine's sources and dpkg database are never touched, and no
//!    `dpkg --add-architecture` is needed); `libc6` is pinned to the version
//!    `glibc-layouts` has a table for;
//! 2. every .deb is unpacked with `dpkg-deb -x` (no maintainer scripts run)
//!    into a staging directory;
//! 3. the tree is made merged-/usr as Debian 12 systems are: `bin`, `sbin`
//!    and `lib` move into `usr/` and become symlinks to it (so the
//!    programs' `PT_INTERP` `/lib/ld-linux-aarch64.so.1` and both
//!    `/lib/aarch64-linux-gnu` and `/usr/lib/aarch64-linux-gnu` resolve);
//! 4. the empty mount-point directories (`dev`, `proc`, ...) go, so that
//!    qemu shows the host's; absolute symlinks become relative, so that
//!    they point into the root whether it is seen through
//!    `qemu-aarch64 -L` or from the host;
//! 5. `bin/true` is run under qemu as a smoke test, and the staging tree
//!    replaces `target/sysroot/arm64/`.
//!
//! `target/sysroot/arm64/.cah-sysroot` records what the tree was built
//! from; while it matches, the command does nothing (no network either).
//! `--refresh` fetches fresh package lists and rebuilds if the closure
//! changed; `--offline` fails instead of downloading.
//!
//! The tree has no `etc/ld.so.cache` (no maintainer script ran): under
//! qemu the loaders see the host's, whose x86-64 entries an aarch64 loader
//! skips, and find libraries in the default directories.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::apt::{Apt, Package};
use crate::util;

/// What the sysroot is made of: the packages the tests run and their
/// libraries (the dependency closure is added by apt).
pub const PACKAGES: &[&str] = &[
    "libc6",
    "libgcc-s1",
    "libstdc++6",
    "coreutils",
    "bash",
    "libselinux1",
    "libpcre2-8-0",
    "libacl1",
    "libattr1",
    "libcrypt1",
    "libtinfo6",
    "zlib1g",
    "libssl3",
    "openssl",
    "perl-base",
    "python3.11-minimal",
    "libpython3.11-minimal",
    "libexpat1",
    // getent, iconv (gconv modules, dlopened) and the C.UTF-8 locale.
    "libc-bin",
];

/// The suites the packages come from.
const SUITES: &[(&str, &str)] = &[("debian", "bookworm"), ("debian", "bookworm-updates"), ("debian-security", "bookworm-security")];

/// Bumped whenever the way the tree is assembled changes, so that existing
/// trees are rebuilt.
const RECIPE: u32 = 1;

/// The directory the sysroot is built in.
pub fn sysroot_dir() -> PathBuf {
    util::root().join("target/sysroot/arm64")
}

pub fn run(args: &[String]) -> Result<(), String> {
    let mut refresh = false;
    let mut offline = false;
    for a in args {
        match a.as_str() {
            "--refresh" => refresh = true,
            "--offline" => offline = true,
            _ => return Err(format!("sysroot: unknown argument `{a}` (--refresh, --offline)")),
        }
    }
    if refresh && offline {
        return Err("sysroot: --refresh and --offline exclude each other".into());
    }
    ensure(refresh, offline).map(|_| ())
}

/// Builds the sysroot unless it is up to date; returns its directory.
pub fn ensure(refresh: bool, offline: bool) -> Result<PathBuf, String> {
    let started = Instant::now();
    let base = util::root().join("target/sysroot");
    let tree = sysroot_dir();
    let stamp_path = tree.join(".cah-sysroot");
    let mut request: Vec<String> = PACKAGES.iter().map(|p| p.to_string()).collect();
    request.sort();
    let header = format!("recipe {RECIPE}\nrequest {}\n", request.join(" "));
    let old_stamp = fs::read_to_string(&stamp_path).unwrap_or_default();
    let apt = Apt::new(base.join("apt"), SUITES, &["arm64"]).native_arch("arm64");
    // The packages are whatever bookworm serves today (no pinned version,
    // which would leave the archive): lists older than half a day are
    // fetched again and the tree follows them.
    let refresh = refresh || (!offline && apt.lists_age().is_none_or(|a| a > crate::glibc_layouts::LISTS_MAX_AGE));
    if !refresh && old_stamp.starts_with(&header) && tree.join("lib/ld-linux-aarch64.so.1").exists() {
        eprintln!("xtask: sysroot {} is up to date", tree.display());
        return Ok(tree);
    }

    let debs = base.join("debs");
    if offline && !apt.has_lists() {
        return Err(format!("sysroot: no package lists in {} and --offline was given", base.join("apt").display()));
    }
    if refresh || !apt.has_lists() {
        apt.update()?;
    }
    let closure = match apt.resolve(&request) {
        Ok(c) => c,
        Err(_) if !offline && !refresh => {
            // Stale lists (a security update replaced a version): once more
            // with fresh ones.
            apt.update()?;
            apt.resolve(&request)?
        }
        Err(e) => return Err(e),
    };
    let mut files: Vec<String> = closure.iter().map(Package::deb_file).collect();
    files.sort();
    let stamp = format!("{header}debs {}\n", files.join(" "));
    if old_stamp == stamp && tree.join("lib/ld-linux-aarch64.so.1").exists() {
        eprintln!("xtask: sysroot {} is up to date ({} packages)", tree.display(), files.len());
        return Ok(tree);
    }
    if offline {
        if let Some(f) = files.iter().find(|f| !debs.join(f).exists()) {
            return Err(format!("sysroot: {} is not in {} and --offline was given", f, debs.display()));
        }
    }
    apt.fetch(&debs, &closure)?;

    let staging = base.join("arm64.staging");
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(|e| format!("remove {}: {e}", staging.display()))?;
    }
    fs::create_dir_all(&staging).map_err(|e| format!("create {}: {e}", staging.display()))?;
    for f in &files {
        let mut cmd = Command::new("dpkg-deb");
        cmd.arg("-x").arg(debs.join(f)).arg(&staging);
        util::output(&mut cmd)?;
    }
    merge_usr(&staging)?;
    remove_mount_points(&staging)?;
    relativise_links(&staging, &staging)?;
    check_tree(&staging)?;
    fs::write(staging.join(".cah-sysroot"), &stamp).map_err(|e| format!("write stamp: {e}"))?;
    if tree.exists() {
        fs::remove_dir_all(&tree).map_err(|e| format!("remove {}: {e}", tree.display()))?;
    }
    fs::rename(&staging, &tree).map_err(|e| format!("rename {} to {}: {e}", staging.display(), tree.display()))?;
    eprintln!("xtask: built sysroot {} from {} packages in {:.1}s", tree.display(), files.len(), started.elapsed().as_secs_f64());
    Ok(tree)
}

/// Debian 12's merged /usr: `bin`, `sbin` and `lib` are symlinks to their
/// `usr/` counterparts. Packages still ship files in both places, so
/// everything unpacked under `bin`, `sbin`, `lib` moves into `usr/`.
fn merge_usr(root: &Path) -> Result<(), String> {
    for d in ["bin", "sbin", "lib"] {
        let top = root.join(d);
        let usr = root.join("usr").join(d);
        fs::create_dir_all(&usr).map_err(|e| format!("create {}: {e}", usr.display()))?;
        if fs::symlink_metadata(&top).is_ok_and(|m| m.is_dir()) {
            merge_into(&top, &usr)?;
            fs::remove_dir_all(&top).map_err(|e| format!("remove {}: {e}", top.display()))?;
        }
        if fs::symlink_metadata(&top).is_err() {
            std::os::unix::fs::symlink(format!("usr/{d}"), &top).map_err(|e| format!("symlink {}: {e}", top.display()))?;
        }
    }
    Ok(())
}

/// Moves every entry of `from` into `to`, merging directories. When both
/// have a file of the same name the `/usr` one is kept (they are the same
/// file in every Debian package we use; a difference is reported).
fn merge_into(from: &Path, to: &Path) -> Result<(), String> {
    for entry in fs::read_dir(from).map_err(|e| format!("read {}: {e}", from.display()))? {
        let entry = entry.map_err(|e| e.to_string())?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let src_meta = fs::symlink_metadata(&src).map_err(|e| e.to_string())?;
        match fs::symlink_metadata(&dst) {
            Err(_) => fs::rename(&src, &dst).map_err(|e| format!("move {} to {}: {e}", src.display(), dst.display()))?,
            Ok(m) if m.is_dir() && src_meta.is_dir() => merge_into(&src, &dst)?,
            Ok(_) => {
                let same = match (fs::read(&src), fs::read(&dst)) {
                    (Ok(a), Ok(b)) => a == b,
                    _ => fs::read_link(&src).ok() == fs::read_link(&dst).ok(),
                };
                if !same {
                    eprintln!("xtask: note: sysroot: {} and {} differ; keeping the latter", src.display(), dst.display());
                }
            }
        }
    }
    Ok(())
}

/// Removes the empty directories base-files ships as mount points (`dev`,
/// `proc`, `sys`, `run`, `tmp`): `qemu-aarch64 -L` would show them instead
/// of the host's (an empty `/proc`, an empty `/dev`).
fn remove_mount_points(root: &Path) -> Result<(), String> {
    for d in ["dev", "proc", "sys", "run", "tmp"] {
        let p = root.join(d);
        let empty = fs::read_dir(&p).map(|mut e| e.next().is_none()).unwrap_or(false);
        if empty {
            fs::remove_dir(&p).map_err(|e| format!("remove {}: {e}", p.display()))?;
        } else if p.exists() {
            return Err(format!("sysroot: {} is not empty: it would hide the host's", p.display()));
        }
    }
    Ok(())
}

/// Rewrites every absolute symlink under `dir` as a relative one into
/// `root`.
fn relativise_links(root: &Path, dir: &Path) -> Result<(), String> {
    for entry in fs::read_dir(dir).map_err(|e| format!("read {}: {e}", dir.display()))? {
        let entry = entry.map_err(|e| e.to_string())?;
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).map_err(|e| e.to_string())?;
        if meta.is_dir() {
            relativise_links(root, &path)?;
            continue;
        }
        if !meta.file_type().is_symlink() {
            continue;
        }
        let target = fs::read_link(&path).map_err(|e| format!("readlink {}: {e}", path.display()))?;
        let Ok(inside) = target.strip_prefix("/") else { continue };
        // The link's directory, relative to the root: one `..` per component.
        let depth = path.parent().and_then(|p| p.strip_prefix(root).ok()).map(|p| p.components().count()).unwrap_or(0);
        let mut rel = PathBuf::new();
        for _ in 0..depth {
            rel.push("..");
        }
        rel.push(inside);
        fs::remove_file(&path).map_err(|e| format!("remove {}: {e}", path.display()))?;
        std::os::unix::fs::symlink(&rel, &path).map_err(|e| format!("symlink {}: {e}", path.display()))?;
    }
    Ok(())
}

/// The files everything else relies on, and one program run under qemu.
fn check_tree(root: &Path) -> Result<(), String> {
    for f in [
        "lib/ld-linux-aarch64.so.1",
        "usr/lib/aarch64-linux-gnu/libc.so.6",
        "lib/aarch64-linux-gnu/libc.so.6",
        "usr/lib/aarch64-linux-gnu/libstdc++.so.6",
        "bin/bash",
        "bin/ls",
        "usr/bin/perl",
        "usr/bin/python3.11",
        "usr/bin/openssl",
        "usr/bin/iconv",
        "usr/lib/locale/C.utf8/LC_CTYPE",
    ] {
        if !root.join(f).exists() {
            return Err(format!("sysroot: {f} is missing from {}", root.display()));
        }
    }
    let mut cmd = Command::new("qemu-aarch64");
    cmd.arg("-L").arg(root).arg(root.join("bin/true"));
    match cmd.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("sysroot: {} failed: {s}", util::describe(&cmd))),
        Err(e) => Err(format!("sysroot: {}: {e} (is the Debian package `qemu-user` installed?)", util::describe(&cmd))),
    }
}
