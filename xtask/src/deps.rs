//! `cargo xtask deps`: the Debian packages the build, the demo and the tests
//! need, installed with apt-get when missing (as root; otherwise the missing
//! ones are named). `demo`, `check` and `test` call it first, so the
//! README's commands work on a fresh Debian 12 machine.

use std::process::Command;

use crate::util;

/// Everything the build and the tests run. The loader is built with
/// Debian's rustc-web (it ships the library sources `-Zbuild-std` needs);
/// aarch64 programs are cross-compiled and run under qemu-user.
pub const PACKAGES: &[&str] = &[
    "rustc-web",
    "cargo-web",
    "rust-web-src",
    "gcc",
    "g++",
    "gcc-aarch64-linux-gnu",
    "g++-aarch64-linux-gnu",
    "libc6-dev-arm64-cross",
    "qemu-user",
    "patchelf",
    "binutils",
    "elfutils",
    "file",
    "lld",
    "python3",
    "python3.11",
    "libpython3.11-testsuite",
    "perl",
    "gdb",
    "git",
    "openssl",
    "util-linux",
    "attr",
    "debian-archive-keyring",
    "debootstrap",
    // Its programs copy-relocate tables of IFUNC pointers (copy_ifunc.rs).
    "systemd",
    // A debug info server for `cah glibc add` without --debug (glibc_installed.rs).
    "debuginfod",
];

pub fn run(_args: &[String]) -> Result<(), String> {
    ensure()
}

/// Installs the missing packages (root) or names them (anyone else).
pub fn ensure() -> Result<(), String> {
    let missing: Vec<&str> = PACKAGES.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let uid = util::output(Command::new("id").arg("-u"))?;
    if uid.trim() != "0" {
        return Err(format!("missing Debian packages (install them as root): {}", missing.join(" ")));
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    util::run(Command::new("apt-get").args(["update", "-qq"]))?;
    util::run(Command::new("apt-get").args(["install", "-y", "-qq"]).args(&missing).env("DEBIAN_FRONTEND", "noninteractive"))
}

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}
