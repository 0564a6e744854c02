//! The last `dlclose` runs the object's finalisers and unmaps it, as under
//! glibc's loader: afterwards its file is gone from /proc/self/maps,
//! RTLD_NOLOAD does not find it, and opening it again runs its constructor
//! on fresh data. Both arches.

use std::path::Path;
use std::process::Command;

use cah_tests::{built_loader, debian_sysroot, Arch};

const LIB: &str = r#"#include <stdio.h>
static int counter;
__attribute__((constructor)) static void up(void) { printf("constructor, counter=%d\n", counter++); }
__attribute__((destructor)) static void down(void) { printf("destructor\n"); fflush(stdout); }
int value(void) { return 42 + counter; }
"#;

const MAIN: &str = r#"#include <stdio.h>
#include <string.h>
#include <dlfcn.h>
static const char *mapped(void) {
    char line[512];
    FILE *f = fopen("/proc/self/maps", "r");
    const char *r = "unmapped";
    while (f && fgets(line, sizeof line, f))
        if (strstr(line, "libunmapme.so")) r = "mapped";
    if (f) fclose(f);
    return r;
}
int main(int argc, char **argv) {
    for (int round = 0; round < 2; round++) {
        void *h = dlopen(argv[1], RTLD_NOW);
        int (*v)(void) = (int (*)(void))dlsym(h, "value");
        printf("round %d: value=%d, %s\n", round, v ? v() : -1, mapped());
        dlclose(h);
        printf("after dlclose: %s, NOLOAD %s\n", mapped(), dlopen(argv[1], RTLD_NOW | RTLD_NOLOAD) ? "found" : "NULL");
    }
    return 0;
}
"#;

fn case(aarch64: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (ls, ms) = (dir.path().join("lib.c"), dir.path().join("main.c"));
    std::fs::write(&ls, LIB).unwrap();
    std::fs::write(&ms, MAIN).unwrap();
    let arch = if aarch64 { Arch::Aarch64 } else { Arch::X86_64 };
    let cc = arch.cc();
    let lib = dir.path().join("libunmapme.so");
    let exe = dir.path().join("main");
    assert!(Command::new(cc).args(["-shared", "-fPIC", "-O1", "-o"]).arg(&lib).arg(&ls).status().unwrap().success());
    assert!(Command::new(cc).args(["-O1", "-o"]).arg(&exe).arg(&ms).status().unwrap().success());
    let loader = built_loader(arch);
    let sysroot = debian_sysroot();
    let run = |first: &Path, prog: Option<&Path>| {
        if aarch64 {
            assert!(sysroot.exists(), "run `cargo xtask sysroot`");
        }
        let mut c = arch.command(&sysroot, first);
        if let Some(p) = prog {
            c.arg(p);
        }
        let o = c.arg(&lib).env_clear().output().unwrap();
        (String::from_utf8_lossy(&o.stdout).into_owned(), o.status.code())
    };
    let reference = run(&exe, None);
    assert_eq!(reference.1, Some(0), "glibc: {reference:?}");
    assert!(reference.0.contains("after dlclose: unmapped, NOLOAD NULL"), "glibc: {reference:?}");
    assert_eq!(run(&loader, Some(&exe)), reference, "aarch64={aarch64}: ld-cah differs from glibc");
}

#[test]
fn dlclose_unmaps_x86_64() {
    case(false);
}

#[test]
fn dlclose_unmaps_aarch64() {
    case(true);
}
