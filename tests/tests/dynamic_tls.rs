//! TLS of a dlopened library too large for the static TLS surplus: it
//! lives in dynamic TLS, allocated per thread on first use, reached through
//! `__tls_get_addr` (x86_64 general-dynamic) or TLS descriptors (x86_64
//! `-mtls-dialect=gnu2`, aarch64's default), in the main thread and in a
//! thread created afterwards. Output must equal glibc's. The blocks come
//! from the process's `malloc`: the program's own when it defines one.

use std::path::Path;
use std::process::Command;

use cah_tests::{built_loader, debian_sysroot, Arch};

const LIB: &str = r#"#include <string.h>
__thread char big[100000] = "initial";
__thread int counter = 41;
int bump(void) { return ++counter; }
const char *bigstr(void) { return big; }
void setbig(const char *s) { strcpy(big, s); }
"#;

const MAIN: &str = r#"#include <stdio.h>
#include <dlfcn.h>
#include <pthread.h>
static int (*bump)(void);
static const char *(*bigstr)(void);
static void (*setbig)(const char *);
static void *th(void *a) {
    printf("thread: %s %d\n", bigstr(), bump());
    setbig("thread");
    printf("thread: %s\n", bigstr());
    return 0;
}
int main(int argc, char **argv) {
    void *h = dlopen(argv[1], RTLD_NOW);
    if (!h) { printf("dlopen failed\n"); return 1; }
    bump = (int (*)(void))dlsym(h, "bump");
    bigstr = (const char *(*)(void))dlsym(h, "bigstr");
    setbig = (void (*)(const char *))dlsym(h, "setbig");
    printf("main: %s %d\n", bigstr(), bump());
    setbig("main");
    pthread_t t;
    pthread_create(&t, 0, th, 0);
    pthread_join(t, 0);
    printf("main: %s %d\n", bigstr(), bump());
    return 0;
}
"#;

/// The program defining `malloc` (passing to libc's), counting the blocks
/// big enough to be `big`'s: glibc's loader takes the `malloc` of the
/// global scope for dynamic TLS once relocation is done.
const COUNTING_MALLOC: &str = r#"#include <stddef.h>
extern void *__libc_malloc(size_t);
static int big_blocks;
void *malloc(size_t n) { if (n >= 100000) big_blocks++; return __libc_malloc(n); }
int big_blocks_seen(void) { return big_blocks; }
"#;

fn cc(compiler: &str, args: &[&str], out: &Path, src: &Path) {
    let st = Command::new(compiler).args(args).arg("-o").arg(out).arg(src).status().unwrap();
    assert!(st.success(), "{compiler} failed");
}

fn run(cmd: &mut Command) -> (String, Option<i32>) {
    let out = cmd.env_clear().env("PATH", "/usr/bin:/bin").output().unwrap();
    (String::from_utf8_lossy(&out.stdout).into_owned(), out.status.code())
}

fn case(aarch64: bool, dialect: &[&str]) {
    case_of(aarch64, dialect, MAIN);
}

/// [`MAIN`] with [`COUNTING_MALLOC`], printing how many TLS-sized blocks
/// its `malloc` gave out.
fn counting_case(aarch64: bool) {
    // Before `main`'s own `return 0;`, the last.
    let end = MAIN.rfind("    return 0;").unwrap();
    let main = format!("{}    printf(\"big blocks: %d\\n\", big_blocks_seen());\n{}", &MAIN[..end], &MAIN[end..]);
    case_of(aarch64, &[], &format!("{COUNTING_MALLOC}{main}"));
}

fn case_of(aarch64: bool, dialect: &[&str], main: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (lib_src, main_src) = (dir.path().join("big.c"), dir.path().join("main.c"));
    std::fs::write(&lib_src, LIB).unwrap();
    std::fs::write(&main_src, main).unwrap();
    let arch = if aarch64 { Arch::Aarch64 } else { Arch::X86_64 };
    let compiler = arch.cc();
    let lib = dir.path().join("libbig.so");
    let exe = dir.path().join("main");
    let mut lib_args = vec!["-shared", "-fPIC", "-O1"];
    lib_args.extend_from_slice(dialect);
    cc(compiler, &lib_args, &lib, &lib_src);
    cc(compiler, &["-O1", "-pthread"], &exe, &main_src);
    let loader = built_loader(arch);
    let sysroot = debian_sysroot();
    let wrap = |first: &Path, loader_args: Option<&Path>| {
        if aarch64 {
            assert!(sysroot.join("usr/lib/aarch64-linux-gnu/libc.so.6").exists(), "run `cargo xtask sysroot`");
        }
        let mut c = arch.command(&sysroot, first);
        if let Some(prog) = loader_args {
            c.arg(prog);
        }
        c.arg(&lib);
        c
    };
    let reference = run(&mut wrap(&exe, None));
    assert_eq!(reference.1, Some(0), "glibc: {reference:?}");
    assert!(reference.0.contains("thread: thread") && reference.0.contains("main: main 43"), "{reference:?}");
    // One block for each thread that used `big` (written by hand).
    if main.contains("big_blocks_seen") {
        assert!(reference.0.contains("big blocks: 2"), "{reference:?}");
    }
    let cah = run(&mut wrap(&loader, Some(&exe)));
    assert_eq!(cah, reference, "aarch64={aarch64} {dialect:?}: ld-cah differs from glibc");
}

#[test]
fn x86_64_general_dynamic() {
    case(false, &[]);
}

#[test]
fn x86_64_tls_descriptors() {
    case(false, &["-mtls-dialect=gnu2"]);
}

#[test]
fn aarch64_tls_descriptors() {
    case(true, &[]);
}

#[test]
fn x86_64_blocks_from_the_programs_malloc() {
    counting_case(false);
}

#[test]
fn aarch64_blocks_from_the_programs_malloc() {
    counting_case(true);
}
