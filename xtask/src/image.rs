//! `cargo xtask image bookworm|trixie`: a patched base image,
//! `target/images/<suite>-ld-cah.tar`, importable with `podman import` or
//! `docker import` (docs/packaging.md):
//!
//! 1. the minbase root of `cargo xtask rootfs <suite>` (made if missing)
//!    is copied to `target/images/<suite>-ld-cah/` (the test roots stay
//!    as they are);
//! 2. the amd64 package (`cargo xtask package amd64`) is installed there
//!    with `dpkg -i` in a chroot;
//! 3. `/etc/ld-cah/patch-root` is created, so the package's dpkg trigger
//!    keeps the image patched after later `apt-get install`s;
//! 4. `cah patch --root` (the freshly built host tool) patches every
//!    program and fills the root's store;
//! 5. the root is written as a tar archive, numeric owners, with extended
//!    attributes.

use std::path::Path;
use std::process::Command;

use crate::util::{self, Arch};
use crate::{build, package, rootfs};

/// The suites an image is made of.
const SUITES: &[&str] = &["bookworm", "trixie"];

pub fn run(args: &[String]) -> Result<(), String> {
    let suites: Vec<&str> = if args.is_empty() { SUITES.to_vec() } else { args.iter().map(String::as_str).collect() };
    if let Some(bad) = suites.iter().find(|s| !SUITES.contains(s)) {
        return Err(format!("image: unknown suite `{bad}` ({})", SUITES.join(", ")));
    }
    build::run(&[])?;
    package::run(&["x86_64".to_string()])?;
    for suite in suites {
        image(suite)?;
    }
    Ok(())
}

fn image(suite: &str) -> Result<(), String> {
    rootfs::run(&[suite.to_string()])?;
    let images = util::root().join("target/images");
    let dir = images.join(format!("{suite}-ld-cah"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&images).map_err(|e| e.to_string())?;
    // cp -a keeps owners, modes, hard links and symbolic links.
    util::run(Command::new("cp").arg("-a").arg(rootfs::path(suite)).arg(&dir))?;
    let _ = std::fs::remove_file(dir.join(".cah-rootfs"));

    let deb = package::deb_path(Arch::X86_64);
    let name = deb.file_name().ok_or("no package name")?;
    std::fs::copy(&deb, dir.join("tmp").join(name)).map_err(|e| format!("{}: {e}", deb.display()))?;
    chroot(&dir, &["dpkg", "-i", &format!("/tmp/{}", name.to_string_lossy())])?;
    let _ = std::fs::remove_file(dir.join("tmp").join(name));
    std::fs::create_dir_all(dir.join("etc/ld-cah")).map_err(|e| e.to_string())?;
    std::fs::write(
        dir.join("etc/ld-cah/patch-root"),
        "# Present: the ld-cah package's dpkg trigger runs `cah patch --root /`\n# after every package operation that adds programs or libraries.\n",
    )
    .map_err(|e| e.to_string())?;
    let cah = util::root().join("target/release/cah");
    util::run(Command::new(&cah).arg("patch").arg("--root").arg(&dir))?;
    // The patched image must still run its own programs.
    chroot(&dir, &["/usr/bin/bash", "-c", "dpkg -l ld-cah >/dev/null && apt-get --version | head -n 1"])?;

    let tar = images.join(format!("{suite}-ld-cah.tar"));
    util::run(
        Command::new("tar").args(["--numeric-owner", "--xattrs", "--xattrs-include=*", "-C"]).arg(&dir).arg("-cf").arg(&tar).arg("."),
    )?;
    eprintln!("xtask: {} (import with `podman import {}`)", tar.display(), tar.display());
    Ok(())
}

fn chroot(root: &Path, argv: &[&str]) -> Result<(), String> {
    util::run(
        Command::new("chroot")
            .arg(root)
            .args(argv)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LC_ALL", "C")
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}
