//! `cargo xtask check`: the fast gate in front of `cargo xtask test`, and
//! the first step of `.ci/run`. Formatting, clippy with warnings denied (on
//! the host, and on the loader for both its targets), the fuzz targets
//! compiled, and the host unit tests; no fixtures, no downloads of Debian's
//! glibc, no end-to-end tests.

use std::process::Command;

use crate::util::{self, Arch};
use crate::{deps, toolchain};

/// The loaders `cargo xtask test` builds, by target and features.
const LOADERS: [(Arch, &str); 3] =
    [(Arch::X86_64, "ld-cah/rtld"), (Arch::Aarch64, "ld-cah/rtld"), (Arch::X86_64, "ld-cah/rtld,ld-cah/no-builtin-layouts")];

pub fn run(args: &[String]) -> Result<(), String> {
    if let Some(a) = args.first() {
        return Err(format!("`check` takes no arguments (got `{a}`)"));
    }
    // The aarch64 lint builds blake3's NEON code with the cross compiler.
    deps::ensure()?;
    toolchain::ensure_lint_tools()?;
    let root = util::root();
    let cargo = || {
        let mut cmd = Command::new(util::host_cargo());
        cmd.current_dir(&root);
        cmd
    };
    util::run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    util::run(cargo().args(["clippy", "--workspace", "--all-targets", "--quiet", "--", "-D", "warnings"]))?;
    // The loader as `cargo xtask build` builds it: freestanding, with the
    // entry point (`crt`) and the binary, for each target, and without
    // built-in glibc tables (what the tests of installed tables run). Its
    // codegen and link flags change no lint, so rustup's clippy checks it
    // without Debian's toolchain or -Zbuild-std.
    for (arch, features) in LOADERS {
        let mut cmd = cargo();
        cmd.args(["clippy", "--quiet", "-p", "ld-cah", "-p", "crt", "--lib", "--bins", "--features", features]);
        cmd.args(["--target", arch.rust_target(), "--", "-D", "warnings"]);
        util::run(&mut cmd)?;
    }
    // The fuzz targets (their own workspace, built by `cargo +nightly fuzz`)
    // call the parsers' public entry points: compiled here so that a
    // change of those fails the gate instead of leaving a target that no
    // longer builds.
    util::run(cargo().args(["check", "--quiet", "--manifest-path", "fuzz/Cargo.toml", "--bins"]))?;
    // The unit tests of every host crate. cah's `glibc::tests` need the
    // Debian glibc builds `cargo xtask test` downloads first; it runs them.
    let mut cmd = cargo();
    cmd.args(["test", "--quiet", "-p", "ld-cah", "-p", "cah", "-p", "glibc-gen", "-p", "xtask", "--lib", "--bins"]);
    cmd.args(["--", "--skip", "glibc::tests::"]);
    util::run(&mut cmd)?;
    eprintln!("xtask: check passed");
    Ok(())
}
