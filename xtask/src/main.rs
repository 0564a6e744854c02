//! `cargo xtask`: every build, test and benchmark step of ld-cah behind one
//! entry point, so that a fresh machine, CI and a developer run the same code.

mod apt;
mod bench;
mod build;
mod check;
mod demo;
mod deps;
mod fixtures;
mod glibc_layouts;
mod image;
mod package;
mod rootfs;
mod sysroot;
mod toolchain;
mod util;

use std::process::ExitCode;

const HELP: &str = "\
usage: cargo xtask <command>

  bench [ROUNDS] [--quick] [--no-callgrind]
                   start-up time and loader instructions under ld-cah vs glibc's loader,
                   as ratios, with the targets; rewrites docs/benchmarks.md's generated part
  demo             build ld-cah and run a program through it on both arches
  deps             install the Debian packages the build and the tests need (as root)
  check            the fast gate: fmt check, clippy (host and both loader targets,
                   warnings denied), host unit tests; .ci/run runs it first
  build            build target/ld-cah/{x86_64,aarch64}/ld-cah.so and target/release/cah
                   (--no-builtin-layouts ARCH: target/ld-cah-notables/ARCH/ld-cah.so, no built-in glibc tables)
  fixtures         compile the test fixtures for both arches into target/fixtures/<arch>/
  test             build, compile fixtures, run every test (host units, both arches)
  package [ARCH]   Debian packages target/debian/ld-cah_<version>_{amd64,arm64}.deb
  image [SUITE]    patched base image target/images/<suite>-ld-cah.tar (bookworm, trixie)
  glibc-layouts    regenerate loader/src/glibc/layouts/ from glibc debug info
  rootfs [SUITE]   debootstrap bullseye/bookworm/trixie/sid root file systems for the tests
  sysroot          unpack real Debian bookworm arm64 packages into target/sysroot/arm64/
  help             this text
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("build") => build::run(&args[1..]),
        Some("check") => check::run(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        Some("demo") => deps::ensure().and_then(|()| demo::run(&args[1..])),
        Some("deps") => deps::run(&args[1..]),
        Some("fixtures") => fixtures::run(&args[1..]),
        Some("test") => test(&args[1..]),
        Some("package") => package::run(&args[1..]),
        Some("image") => image::run(&args[1..]),
        Some("glibc-layouts") => glibc_layouts::run(&args[1..]),
        Some("rootfs") => rootfs::run(&args[1..]),
        Some("sysroot") => sysroot::run(&args[1..]),
        Some("help") | Some("--help") | None => {
            print!("{HELP}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command `{other}`\n{HELP}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The README's test command: everything, both arches.
fn test(args: &[String]) -> Result<(), String> {
    deps::ensure()?;
    build::run(&[])?;
    // The loader without built-in tables, for tests/tests/glibc_installed.rs.
    build::run(&["--no-builtin-layouts".into(), "x86_64".into()])?;
    fixtures::run(&[])?;
    // The .debs, for tests/tests/package.rs.
    package::run(&[])?;
    // Checks the committed layout tables against Debian's packages and
    // leaves the real arm64 glibc unpacked for the aarch64 tests.
    glibc_layouts::run(&["--check".into()])?;
    sysroot::run(&[])?;
    rootfs::run(&[])?;
    let root = util::root();
    let mut cmd = std::process::Command::new(util::host_cargo());
    cmd.current_dir(&root).args(["test", "--workspace", "--release", "--no-fail-fast"]);
    cmd.args(args);
    let lazy = util::run(&mut cmd);
    // The real-program corpus again with every PLT slot bound at start
    // (LD_BIND_NOW=1 under both loaders): the first pass bound lazily.
    let mut cmd = std::process::Command::new(util::host_cargo());
    cmd.current_dir(&root).args(["test", "--release", "--no-fail-fast", "-p", "cah-tests"]);
    cmd.args(["--test", "real_programs", "--test", "glibc_programs", "--test", "rootfs"]);
    cmd.args(args).env("CAH_TESTS_BIND_NOW", "1");
    eprintln!("xtask: the real-program corpus again, with LD_BIND_NOW=1");
    let eager = util::run(&mut cmd);
    lazy.and(eager)
}
