//! glibc 2.41: the programs of a Debian trixie root file system
//! (`cargo xtask rootfs`: debootstrap minbase, libc6 pinned to the build
//! ld-cah has a table for), run inside it with `chroot` against its own
//! libraries, under trixie's ld.so and under ld-cah. Output and exit
//! status must agree. Needs root (chroot), which CI has.

use std::path::PathBuf;
use std::process::Command;

fn rootfs() -> PathBuf {
    let r = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/rootfs/trixie-amd64");
    assert!(r.join("bin/bash").exists(), "{} missing: run `cargo xtask rootfs`", r.display());
    r
}

/// Runs `argv` inside the root file system, directly or through ld-cah.
fn run(cah: bool, argv: &[&str]) -> (String, String, Option<i32>) {
    let r = rootfs();
    let mut c = Command::new("/usr/sbin/chroot");
    c.arg(&r);
    if cah {
        c.arg("/ld-cah-test.so");
    }
    let out = c.args(argv).env_clear().env("PATH", "/usr/bin:/bin").env("LC_ALL", "C").env("HOME", "/root").output().expect("chroot runs (root needed)");
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned(), out.status.code())
}

fn same(argv: &[&str]) {
    let reference = run(false, argv);
    assert_eq!(reference.2, Some(0), "{argv:?} fails in the rootfs even under glibc: {reference:?}");
    assert_eq!(run(true, argv), reference, "{argv:?}: ld-cah differs from trixie's ld.so");
}

#[test]
fn trixie_programs_run_against_their_own_glibc_2_41() {
    let r = rootfs();
    let loader = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/ld-cah/x86_64/ld-cah.so");
    assert!(loader.exists(), "run `cargo xtask build`");
    std::fs::copy(&loader, r.join("ld-cah-test.so")).unwrap();
    // A directory with fixed contents and times for ls.
    let d = r.join("tmp/cahtest");
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("a.txt"), "alpha\n").unwrap();
    std::fs::write(d.join("b.txt"), "beta\ngamma\n").unwrap();
    assert!(Command::new("touch").args(["-d", "2001-02-03 04:05:06 UTC"]).arg(d.join("a.txt")).arg(d.join("b.txt")).arg(&d).status().unwrap().success());

    same(&["/bin/bash", "-c", "x=$((6*7)); for i in 1 2; do echo \"$i $x\"; done; echo $(printf '%s\\n' b a | sort)"]);
    same(&["/bin/ls", "-la", "--time-style=+%F", "/tmp/cahtest"]);
    same(&["/usr/bin/sha256sum", "/tmp/cahtest/a.txt", "/tmp/cahtest/b.txt"]);
    same(&["/bin/date", "-u", "-d", "@0"]);
    same(&["/usr/bin/perl", "-MPOSIX", "-e", "printf(\"%d %s\\n\", floor(2.5), join(',', sort qw(b c a)))"]);
    same(&["/usr/bin/getent", "passwd", "root"]);
    same(&["/bin/sh", "-c", "ls /nonexistent 2>&1; echo status=$?"]);
    let _ = std::fs::remove_dir_all(&d);
    let _ = std::fs::remove_file(r.join("ld-cah-test.so"));
}
