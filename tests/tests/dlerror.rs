//! `dlerror()` texts, byte for byte as glibc's loader gives them: a
//! missing file (by path and by name), an empty, cut, text, wrong-class
//! and other-arch file, a directory, a library whose dependency is
//! missing; `dlsym` of a missing symbol, `dlvsym` of a missing version
//! (`undefined symbol: cos, version GLIBC_9.99`), through a handle,
//! `RTLD_DEFAULT` and `RTLD_NEXT`. The fixture `glibc/dlerrors`
//! (`tests/fixtures/glibc/dlerrors.c`) prints each text; glibc's loader
//! on the same program is the expected output.

use cah_tests::{on_both_arches, run, Expect};

#[test]
fn dlerror_texts_match_glibc() {
    on_both_arches("dlerror_texts_match_glibc", |c| {
        let r = run("glibc/dlerrors").debian_sysroot().args(&["{dir}"]).env("PATH", "/usr/bin:/bin").env("LC_ALL", "C").cwd("{work}");
        c.same_as_glibc(
            &r,
            &Expect::status(0).stdout_has("dlopen empty file: ").stdout_has(": undefined symbol: cos, version GLIBC_9.99\n"),
        );
    });
}

/// The same program against other glibc builds (unpacked by `cargo xtask
/// glibc-layouts --check`), whose own loader is the reference: 2.41 and
/// later take the error machinery (`_dl_signal_error`,
/// `_dl_catch_exception`) from the loader, so ld-cah's pairs reach
/// `dlerror` through its own code there.
#[test]
fn dlerror_texts_match_other_glibc_builds() {
    use cah_tests::{built_loader, fixture_dir, root, run_clean, Arch};
    use std::process::Command;
    let mut failures = Vec::new();
    for (arch, build) in [(Arch::X86_64, "trixie_amd64"), (Arch::X86_64, "sid_amd64"), (Arch::Aarch64, "trixie_arm64")] {
        let g = root().join("target/glibc-dbg").join(build);
        let triple = if arch == Arch::X86_64 { "x86_64-linux-gnu" } else { "aarch64-linux-gnu" };
        let ld_so = if arch == Arch::X86_64 { "ld-linux-x86-64.so.2" } else { "ld-linux-aarch64.so.1" };
        let libdir = ["usr/lib", "lib"].iter().map(|d| g.join(d).join(triple)).find(|d| d.join("libc.so.6").exists());
        let Some(libdir) = libdir else {
            failures.push(format!("{}: no libc.so.6: run `cargo xtask glibc-layouts --check`", g.display()));
            continue;
        };
        let dir = fixture_dir(arch);
        let list = |loader: &std::path::Path| {
            let mut c = if arch == Arch::X86_64 {
                Command::new(loader)
            } else {
                let mut c = Command::new("qemu-aarch64");
                c.arg("-L").arg(&g).arg(loader);
                c
            };
            c.arg("--library-path").arg(&libdir).arg(dir.join("glibc/dlerrors")).arg(&dir);
            run_clean(&mut c)
        };
        let reference = list(&libdir.join(ld_so));
        if reference.2 != Some(0) || !reference.0.contains(", version GLIBC_9.99\n") {
            failures.push(format!("{build}: glibc's own loader does not run the fixture: {reference:?}"));
            continue;
        }
        let cah = list(&built_loader(arch));
        if cah != reference {
            failures.push(format!("{build}: ld-cah differs from glibc's loader:\n  glibc  {reference:?}\n  ld-cah {cah:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
