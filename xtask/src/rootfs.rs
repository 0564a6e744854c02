//! `cargo xtask rootfs [SUITE...]`: Debian root file systems for the tests,
//! one per release ld-cah is tested against (bullseye 2.31, bookworm 2.36,
//! trixie 2.41, sid 2.43), made with `debootstrap --variant=minbase` from
//! what the archive serves on the day, into `target/rootfs/<suite>-amd64/`.
//! No package is pinned: ld-cah chooses a glibc layout by what libc shows
//! (see docs/glibc-layouts.md), so a point release must keep working, and
//! the tests notice if it does not.
//!
//! A root is made again when it is older than a week (a newer libc6 may be
//! in the archive). x86_64 only: debootstrap of a foreign arch needs binfmt;
//! the aarch64 tests run each release's arm64 libc under qemu instead.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::util;

/// The releases a root is made for.
pub const SUITES: &[&str] = &["bullseye", "bookworm", "trixie", "sid"];

/// Roots older than this are made again.
const MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

pub fn path(suite: &str) -> PathBuf {
    util::root().join("target/rootfs").join(format!("{suite}-amd64"))
}

pub fn run(args: &[String]) -> Result<(), String> {
    let suites: Vec<&str> = if args.is_empty() { SUITES.to_vec() } else { args.iter().map(String::as_str).collect() };
    for suite in suites {
        if !SUITES.contains(&suite) {
            return Err(format!("rootfs: unknown suite `{suite}` ({})", SUITES.join(", ")));
        }
        ensure(suite)?;
    }
    Ok(())
}

fn ensure(suite: &str) -> Result<(), String> {
    let dir = path(suite);
    let stamp = dir.join(".cah-rootfs");
    let fresh = std::fs::metadata(&stamp).and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().unwrap_or_default() < MAX_AGE);
    if fresh && dir.join("bin/bash").exists() {
        eprintln!("xtask: {suite} root file system at {} is up to date", dir.display());
        return Ok(());
    }
    if which("debootstrap").is_none() {
        return Err("debootstrap is missing (Debian package debootstrap)".into());
    }
    let staging = dir.with_extension("staging");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(staging.parent().unwrap()).map_err(|e| e.to_string())?;
    util::run(Command::new("debootstrap").args(["--variant=minbase", suite]).arg(&staging).arg("http://deb.debian.org/debian"))?;
    std::fs::write(staging.join(".cah-rootfs"), "").map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&staging, &dir).map_err(|e| e.to_string())?;
    eprintln!("xtask: {suite} root file system at {}", dir.display());
    Ok(())
}

fn which(prog: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| PathBuf::from(d).join(prog)).find(|p| p.exists())
}
