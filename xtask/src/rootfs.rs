//! `cargo xtask rootfs`: a Debian trixie (glibc 2.41) root file system for
//! the tests, made with `debootstrap --variant=minbase`, whose libc6 is
//! then replaced by the exact build ld-cah has a layout table for (the
//! `.deb` that `cargo xtask glibc-layouts` fetched). Without that pin a
//! Debian point release would change libc's build id under the tests.
//!
//! x86_64 only (debootstrap of a foreign arch needs binfmt; the aarch64
//! 2.41 tests use the pinned libc under qemu instead).

use std::path::PathBuf;
use std::process::Command;

use crate::util;

/// The trixie libc6 build the layout tables cover.
const LIBC6_DEB: &str = "libc6_2.41-12+deb13u4_amd64.deb";

pub fn path() -> PathBuf {
    util::root().join("target/rootfs/trixie-amd64")
}

pub fn run(_args: &[String]) -> Result<(), String> {
    let dir = path();
    let deb = util::root().join("target/glibc-dbg/debs").join(LIBC6_DEB);
    if !deb.exists() {
        crate::glibc_layouts::run(&["--only".into(), "2_41_12_deb13u4_x86_64".into(), "--check".into()])?;
    }
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
    // Pin libc6: unpack the exact build over whatever debootstrap installed.
    util::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&dir))?;
    eprintln!("xtask: trixie root file system at {} (libc6 pinned to {LIBC6_DEB})", dir.display());
    Ok(())
}

fn which(prog: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| PathBuf::from(d).join(prog)).find(|p| p.exists())
}
