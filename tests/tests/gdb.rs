//! The debugger interface: gdb, run on a program whose interpreter is
//! ld-cah, must list the same shared libraries it lists under glibc's
//! loader (`_r_debug`, `DT_DEBUG` and `_dl_debug_state`).

use std::path::PathBuf;
use std::process::Command;

use cah_tests::{built_loader, Arch};

/// The "Shared Object Library" column of `info sharedlibrary`, stopped at `exit`.
fn shared_libraries(prog: &std::path::Path) -> Vec<String> {
    let out = Command::new("gdb")
        .args(["-nx", "-batch", "-ex", "set debuginfod enabled off", "-ex", "break exit", "-ex", "run", "-ex", "info sharedlibrary"])
        .arg(prog)
        .output()
        .expect("gdb is installed (Debian package gdb)");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut libs: Vec<String> = text
        .lines()
        .skip_while(|l| !l.starts_with("From"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().last().map(str::to_string))
        .filter(|l| l.starts_with('/'))
        .collect();
    libs.sort();
    libs
}

#[test]
fn gdb_lists_the_same_libraries() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("true");
    std::fs::copy("/bin/true", &copy).unwrap();
    let under_glibc = shared_libraries(&copy);
    assert!(under_glibc.iter().any(|l| l.ends_with("/libc.so.6")), "glibc run: {under_glibc:?}");
    assert!(Command::new("patchelf").arg("--set-interpreter").arg(built_loader(Arch::X86_64)).arg(&copy).status().unwrap().success());
    let under_cah = shared_libraries(&copy);
    // Same libraries, except that the interpreter is ld-cah.
    let strip = |v: &[String]| -> Vec<String> { v.iter().filter(|l| !l.contains("ld-linux") && !l.contains("ld-cah")).cloned().collect() };
    assert_eq!(strip(&under_cah), strip(&under_glibc), "libraries seen by gdb");
    let cah = built_loader(Arch::X86_64).canonicalize().unwrap();
    assert!(under_cah.iter().any(|l| PathBuf::from(l).canonicalize().ok() == Some(cah.clone())), "{under_cah:?}");
}

/// `gdb --args LOADER PROG`: the loader run as a command is gdb's
/// executable. ld-cah, linked as a PIE, has a `DT_DEBUG` of its own, which
/// gdb reads instead of looking for `_r_debug` (glibc's ld.so has none);
/// ld-cah fills it, so gdb sees the program's libraries as with glibc's.
#[test]
fn gdb_sees_the_libraries_with_the_loader_run_as_a_command() {
    let libs = |loader: &std::path::Path| -> Vec<String> {
        let out = Command::new("gdb")
            .args(["-nx", "-batch", "-ex", "set debuginfod enabled off", "-ex", "set breakpoint pending on"])
            .args(["-ex", "break exit", "-ex", "run", "-ex", "info sharedlibrary", "--args"])
            .arg(loader)
            .arg("/bin/true")
            .output()
            .expect("gdb is installed (Debian package gdb)");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut v: Vec<String> = text
            .lines()
            .skip_while(|l| !l.starts_with("From"))
            .skip(1)
            .filter_map(|l| l.split_whitespace().last().map(str::to_string))
            .filter(|l| l.starts_with('/') && !l.contains("ld-linux") && !l.contains("ld-cah"))
            .collect();
        v.sort();
        v
    };
    let under_glibc = libs(std::path::Path::new("/lib64/ld-linux-x86-64.so.2"));
    assert!(under_glibc.iter().any(|l| l.ends_with("/libc.so.6")), "glibc run: {under_glibc:?}");
    assert_eq!(libs(&built_loader(Arch::X86_64)), under_glibc, "libraries gdb sees with the loader run as a command");
}
