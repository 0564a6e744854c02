//! Copy relocations of tables that hold pointers to IFUNC-resolved
//! functions. glibc relocates a program's libraries (running the IFUNC
//! resolvers of their slots as it goes) before the program, whose
//! `R_*_COPY` relocations then copy filled slots; systemd's programs
//! copy-relocate `string_hash_ops`, whose `compare` is libc's `strcmp`.
//! glibc's output is the expected value.

use cah_tests::{on_arches, on_both_arches, run, system, Arch, Expect, GlibcFails, Run};

/// The harness's clean environment, in `{work}`.
fn base(r: Run) -> Run {
    r.clean_env().cwd("{work}")
}

/// The fixture pair `copyifunc` (ET_EXEC, non-PIC) + `libcopyifunc.so`
/// (`tests/fixtures/glibc/`): libc's strcmp, memcpy and strlen, and an
/// IFUNC of the library by symbol and by IRELATIVE, in a const and a
/// writable table.
#[test]
fn copy_relocated_tables_of_ifunc_pointers() {
    on_both_arches("copy_relocated_tables_of_ifunc_pointers", |c| {
        c.same_as_glibc(
            &base(run("glibc/copyifunc")).debian_sysroot(),
            &Expect::status(0).stdout_has("copy of const table (lib_ops): cmp same, copy same, len same, add same"),
        );
    });
}

/// Real programs that crashed on it. systemd is a Debian package of the
/// host (`.ci/run` installs it); the arm64 sysroot has none.
#[test]
fn systemd_programs_copy_string_hash_ops() {
    on_arches("systemd_programs_copy_string_hash_ops", &[Arch::X86_64], |c| {
        c.same_as_glibc(
            &base(system("/usr/bin/systemd-delta")).args(&["--no-pager"]),
            &Expect::status(0).stdout_has("overridden configuration files found."),
        );
        // An empty root: what it would create is the same on every machine.
        let sysusers = base(system("/usr/bin/systemd-sysusers")).args(&[
            "--dry-run",
            "--root={work}",
            "--inline",
            "u cahtest - \"ld-cah test user\"",
            "g cahgrp 4242",
        ]);
        c.same_as_glibc(&sysusers, &Expect::status(0));
    });
}

/// The fixture against trixie's glibc 2.41 (unpacked by `cargo xtask
/// glibc-layouts --check`), which relocates libc before everything else
/// (glibc 2.39 and later); its own loader is the reference.
#[test]
fn copy_relocated_tables_with_glibc_2_41() {
    cah_tests::same_as_glibc_builds(
        &[(Arch::X86_64, "trixie_amd64"), (Arch::Aarch64, "trixie_arm64")],
        |arch| vec![cah_tests::fixture_dir(arch).join("glibc/copyifunc")],
        |reference| reference.2 == Some(0) && reference.0.contains("(lib_ops): cmp same, copy same"),
    );
}

/// A library's data reference to an IFUNC that the program defines is
/// bound before the program is relocated. glibc's x86_64 loader refuses
/// it (exit 127), naming the referencing symbol and the library; its
/// aarch64 loader calls the resolver, and glibc's output is the expected
/// one there.
#[test]
fn library_reference_to_an_ifunc_of_the_program() {
    on_arches("library_reference_to_an_ifunc_of_the_program", &[Arch::X86_64], |c| {
        c.expect_refused(
            &run("glibc/ifuncexe"),
            GlibcFails::Status(127),
            &["IFUNC symbol 'exe_twice' referenced in '", "/libifuncuser.so' is defined in the executable"],
        );
    });
    on_arches("library_reference_to_an_ifunc_of_the_program", &[Arch::Aarch64], |c| {
        c.same_as_glibc(&base(run("glibc/ifuncexe")).debian_sysroot(), &Expect::status(0).stdout_has("user_call(21) = 42\n"));
    });
}
