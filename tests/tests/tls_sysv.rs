//! A library's `__thread` variable used by a program linked with only a
//! SysV hash table: the program lists the variable as an undefined symbol,
//! and the library's own TLS relocations must not bind to that entry (glibc
//! resolves TLS relocations as PLT references). Under glibc's loader the
//! program exits with 10 (5 read twice); ld-cah must agree, on both arches.

use std::path::Path;
use std::process::Command;

use cah_tests::{built_loader, debian_sysroot, Arch};

fn build(arch: Arch, dir: &Path) {
    std::fs::write(dir.join("libtv.c"), "__thread int tv = 5;\nint get(void) { return tv; }\n").unwrap();
    std::fs::write(dir.join("tv.c"), "extern __thread int tv;\nint get(void);\nint main(void) { return tv + get(); }\n").unwrap();
    let cc = |args: &[&str]| {
        let st = Command::new(arch.cc()).current_dir(dir).args(args).status().unwrap();
        assert!(st.success(), "{} {args:?}", arch.cc());
    };
    cc(&["-shared", "-fPIC", "-Wl,--hash-style=sysv", "-o", "libtv.so", "libtv.c"]);
    let rpath = format!("-Wl,-rpath,{}", dir.display());
    cc(&["-Wl,--hash-style=sysv", "-o", "tvsysv", "tv.c", "-L.", "-ltv", &rpath]);
}

fn check(arch: Arch) {
    let dir = tempfile::tempdir().unwrap();
    build(arch, dir.path());
    let prog = dir.path().join("tvsysv");
    let glibc = arch.command(&debian_sysroot(), &prog).output().unwrap();
    assert_eq!(glibc.status.code(), Some(10), "glibc's loader: {glibc:?}");
    let mut c = arch.command(&debian_sysroot(), &built_loader(arch));
    let cah = c.arg(&prog).env("CAH_PLAN", "0").output().unwrap();
    assert_eq!(cah.status.code(), Some(10), "ld-cah: {}", String::from_utf8_lossy(&cah.stderr));
    assert!(cah.stderr.is_empty(), "{}", String::from_utf8_lossy(&cah.stderr));
}

#[test]
fn tls_of_a_library_used_by_a_sysv_hashed_program_x86_64() {
    check(Arch::X86_64);
}

#[test]
fn tls_of_a_library_used_by_a_sysv_hashed_program_aarch64() {
    check(Arch::Aarch64);
}
