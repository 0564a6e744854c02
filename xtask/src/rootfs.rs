//! `cargo xtask rootfs`: a Debian trixie (glibc 2.41) root file system for
//! the tests, made with `debootstrap --variant=minbase` from what the
//! archive serves on the day. Its libc6 is not pinned: ld-cah chooses a
//! layout by what libc shows (see docs/glibc-layouts.md), so a point
//! release must keep working, and the tests would notice if it did not.
//!
//! x86_64 only (debootstrap of a foreign arch needs binfmt; the aarch64
//! 2.41 tests use the pinned libc under qemu instead).

use std::path::PathBuf;
use std::process::Command;

use crate::util;

pub fn path() -> PathBuf {
    util::root().join("target/rootfs/trixie-amd64")
}

pub fn run(_args: &[String]) -> Result<(), String> {
    let dir = path();
    if !dir.join("bin/bash").exists() {
        if which("debootstrap").is_none() {
            return Err("debootstrap is missing (Debian package debootstrap)".into());
        }
        let staging = dir.with_extension("staging");
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(staging.parent().unwrap()).map_err(|e| e.to_string())?;
        util::run(
            Command::new("debootstrap")
                .args(["--variant=minbase", "trixie"])
                .arg(&staging)
                .arg("http://deb.debian.org/debian"),
        )?;
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&staging, &dir).map_err(|e| e.to_string())?;
    }
    eprintln!("xtask: trixie root file system at {}", dir.display());
    Ok(())
}

fn which(prog: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| PathBuf::from(d).join(prog)).find(|p| p.exists())
}
