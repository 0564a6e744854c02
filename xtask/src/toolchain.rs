//! Finds (and, as root on Debian, installs) what building the freestanding
//! loader needs, and says exactly what it did.
//!
//! rustup on this kind of machine ships the x86_64 standard library only and
//! no `rust-src`, so `-Zbuild-std` cannot use it. Debian's `rustc-web`,
//! `cargo-web` and `rust-web-src` (one version, built together) can build
//! `core`/`alloc`/`compiler_builtins` for both arches.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util;

/// A rustc + cargo pair whose sysroot carries the library sources.
pub struct Toolchain {
    pub rustc: PathBuf,
    pub cargo: PathBuf,
}

/// Debian packages, and the commands they provide, that the build needs.
const PACKAGES: &[(&str, &str)] = &[
    ("rustc-web", "/usr/bin/rustc"),
    ("cargo-web", "/usr/bin/cargo"),
    ("rust-web-src", "/usr/lib/rustlib/src/rust/library/core/Cargo.toml"),
    ("gcc-aarch64-linux-gnu", "/usr/bin/aarch64-linux-gnu-gcc"),
    ("libc6-dev-arm64-cross", "/usr/aarch64-linux-gnu/lib/libc.so.6"),
    ("qemu-user", "/usr/bin/qemu-aarch64"),
    ("patchelf", "/usr/bin/patchelf"),
    ("lld", "/usr/bin/ld.lld"),
];

fn has_library_source(rustc: &Path) -> bool {
    let Ok(sysroot) = util::output(Command::new(rustc).args(["--print", "sysroot"])) else {
        return false;
    };
    Path::new(sysroot.trim()).join("lib/rustlib/src/rust/library/core/Cargo.toml").exists()
}

/// Installs missing Debian packages (when we are root) and returns the
/// toolchain to build the loader with.
pub fn ensure() -> Result<Toolchain, String> {
    let missing: Vec<&str> = PACKAGES.iter().filter(|(_, path)| !Path::new(path).exists()).map(|(pkg, _)| *pkg).collect();
    if !missing.is_empty() {
        // SAFETY-free libc-less check of our uid: `id -u` is simplest.
        let uid = util::output(Command::new("id").arg("-u")).unwrap_or_default();
        if uid.trim() != "0" {
            return Err(format!("missing Debian packages: {} (run as root: apt-get install {})", missing.join(" "), missing.join(" ")));
        }
        eprintln!("xtask: installing missing Debian packages: {}", missing.join(" "));
        util::run(Command::new("apt-get").args(["update", "-qq"]))?;
        util::run(Command::new("apt-get").env("DEBIAN_FRONTEND", "noninteractive").args(["install", "-y", "-qq"]).args(&missing))?;
    }
    let rustc = PathBuf::from("/usr/bin/rustc");
    if !has_library_source(&rustc) {
        return Err(format!("{} has no library sources for -Zbuild-std (install rust-web-src)", rustc.display()));
    }
    Ok(Toolchain { rustc, cargo: PathBuf::from("/usr/bin/cargo") })
}

/// What `cargo xtask check` needs of rustup's toolchain (the one running
/// xtask): clippy, rustfmt, and the aarch64 `core` and `alloc`, to lint the
/// aarch64 loader (checking needs no `-Zbuild-std`, so rustup's prebuilt
/// libraries do). A minimal rustup profile has none of them: they are added
/// with `rustup`, as the Debian packages are with apt-get.
pub fn ensure_lint_tools() -> Result<(), String> {
    let cargo = util::host_cargo();
    let works = |sub: &str| Command::new(&cargo).args([sub, "--version"]).output().is_ok_and(|o| o.status.success());
    let mut components: Vec<&str> = Vec::new();
    if !works("clippy") {
        components.push("clippy");
    }
    if !works("fmt") {
        components.push("rustfmt");
    }
    let target = util::Arch::Aarch64.rust_target();
    let need_target = !has_target_libraries(target);
    if components.is_empty() && !need_target {
        return Ok(());
    }
    if util::output(Command::new("rustup").arg("--version")).is_err() {
        let mut what: Vec<String> = components.iter().map(|c| c.to_string()).collect();
        if need_target {
            what.push(format!("the {target} standard library"));
        }
        return Err(format!("missing {} and no rustup to add them with", what.join(", ")));
    }
    // rustup acts on the toolchain in RUSTUP_TOOLCHAIN, which its `cargo`
    // proxy set for xtask: the one `cargo xtask check` runs with.
    if !components.is_empty() {
        eprintln!("xtask: adding rustup components: {}", components.join(" "));
        util::run(Command::new("rustup").args(["component", "add"]).args(&components))?;
    }
    if need_target {
        eprintln!("xtask: adding the rustup target {target}");
        util::run(Command::new("rustup").args(["target", "add", target]))?;
    }
    Ok(())
}

/// Whether the rustc beside the running cargo has `core` for `target`.
fn has_target_libraries(target: &str) -> bool {
    let beside = Path::new(&util::host_cargo()).with_file_name("rustc");
    let rustc = if beside.exists() { beside } else { PathBuf::from("rustc") };
    let Ok(dir) = util::output(Command::new(rustc).args(["--print", "target-libdir", "--target", target])) else {
        return false;
    };
    std::fs::read_dir(dir.trim())
        .map(|entries| entries.flatten().any(|e| e.file_name().to_string_lossy().starts_with("libcore-")))
        .unwrap_or(false)
}
