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
    use cah_tests::{fixture_dir, Arch};
    cah_tests::same_as_glibc_builds(
        &[(Arch::X86_64, "trixie_amd64"), (Arch::X86_64, "sid_amd64"), (Arch::Aarch64, "trixie_arm64")],
        |arch| vec![fixture_dir(arch).join("glibc/dlerrors"), fixture_dir(arch)],
        |reference| reference.2 == Some(0) && reference.0.contains(", version GLIBC_9.99\n"),
    );
}
