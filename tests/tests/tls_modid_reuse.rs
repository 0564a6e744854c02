//! TLS module ids are given back by `dlclose` and reused, with glibc's
//! generations: a program opens and closes two libraries with `__thread`
//! variables 100 times (one small enough for the static TLS surplus, one
//! too large, so in dynamic TLS), and each round both the main thread and a
//! second thread, created before the first round, read and write them. A
//! thread must always find the freshly initialised values of the new
//! module, never what it wrote into the old one under the same id; the
//! second thread meanwhile keeps the TLS of a third library, opened once,
//! and must keep its value. The module ids (`dlinfo` `RTLD_DI_TLS_MODID`)
//! must stay the same every round. Output must equal glibc's.

use std::path::Path;
use std::process::Command;

use cah_tests::{built_loader, debian_sysroot, Arch};

/// A library with a `__thread` int and string; `INIT`, `TEXT` and `SIZE`
/// are filled in per library.
const LIB: &str = r#"#include <string.h>
__thread int v = INIT;
__thread char s[SIZE] = TEXT;
int get(void) { return v; }
void set(int x) { v = x; }
const char *str(void) { return s; }
void setstr(const char *x) { strcpy(s, x); }
"#;

const MAIN: &str = r#"#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#define ROUNDS 100
struct mod {
    void *h;
    int (*get)(void);
    void (*set)(int);
    const char *(*str)(void);
    void (*setstr)(const char *);
    size_t id;
};
static struct mod small, big, keep;
static pthread_barrier_t go, done;
static int bad;
static const char *dir;

static void *sym(void *h, const char *n) {
    void *p = dlsym(h, n);
    if (!p) { printf("dlsym %s: %s\n", n, dlerror()); exit(2); }
    return p;
}
static void open_mod(struct mod *m, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    m->h = dlopen(path, RTLD_NOW);
    if (!m->h) { printf("dlopen %s: %s\n", name, dlerror()); exit(2); }
    m->get = sym(m->h, "get");
    m->set = sym(m->h, "set");
    m->str = sym(m->h, "str");
    m->setstr = sym(m->h, "setstr");
    if (dlinfo(m->h, RTLD_DI_TLS_MODID, &m->id) != 0) { printf("dlinfo: %s\n", dlerror()); exit(2); }
}
/* The module is new this round: this thread must see its initial values. */
static void check(const char *who, int round, struct mod *m, int init, const char *text, int mine) {
    int v = m->get();
    const char *s = m->str();
    if (v != init || strcmp(s, text) != 0) {
        printf("round %d: %s finds %d \"%s\" in a fresh module\n", round, who, v, s);
        bad = 1;
    }
    m->set(mine);
    m->setstr(who);
    if (m->get() != mine || strcmp(m->str(), who) != 0) {
        printf("round %d: %s cannot write its TLS\n", round, who);
        bad = 1;
    }
}
static void *worker(void *a) {
    keep.set(99);
    for (int r = 0; r < ROUNDS; r++) {
        pthread_barrier_wait(&go);
        check("worker", r, &small, 42, "fresh", 1000 + r);
        check("worker", r, &big, 43, "initial", 2000 + r);
        if (keep.get() != 99) { printf("round %d: worker lost its value of keep: %d\n", r, keep.get()); bad = 1; }
        pthread_barrier_wait(&done);
    }
    return a;
}
int main(int argc, char **argv) {
    dir = argv[1];
    open_mod(&keep, "libkeep.so");
    pthread_barrier_init(&go, 0, 2);
    pthread_barrier_init(&done, 0, 2);
    pthread_t t;
    pthread_create(&t, 0, worker, 0);
    size_t first_small = 0, first_big = 0;
    int same = 1;
    for (int r = 0; r < ROUNDS; r++) {
        open_mod(&small, "libsmall.so");
        open_mod(&big, "libbig.so");
        check("main", r, &small, 42, "fresh", r);
        check("main", r, &big, 43, "initial", r);
        pthread_barrier_wait(&go);
        pthread_barrier_wait(&done);
        if (small.get() != r || big.get() != r || strcmp(big.str(), "main") != 0) {
            printf("round %d: the worker's writes reached main's TLS\n", r);
            bad = 1;
        }
        if (r == 0) {
            first_small = small.id;
            first_big = big.id;
        } else if (small.id != first_small || big.id != first_big) {
            same = 0;
        }
        dlclose(small.h);
        dlclose(big.h);
    }
    pthread_join(t, 0);
    printf("keep: main %d, module id %zu\n", keep.get(), keep.id);
    printf("module ids: small %zu, big %zu, the same in all %d rounds: %s\n", first_small, first_big, ROUNDS, same ? "yes" : "no");
    printf("%s\n", bad ? "FAILED" : "every round's values fresh");
    return bad;
}
"#;

fn cc(compiler: &str, args: &[&str], out: &Path, src: &Path) {
    let st = Command::new(compiler).args(args).arg("-o").arg(out).arg(src).status().unwrap();
    assert!(st.success(), "{compiler} failed");
}

fn run(cmd: &mut Command) -> (String, Option<i32>) {
    let out = cmd.env_clear().env("PATH", "/usr/bin:/bin").output().unwrap();
    (String::from_utf8_lossy(&out.stdout).into_owned(), out.status.code())
}

fn case(arch: Arch, dialect: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let compiler = arch.cc();
    for (name, init, size, text) in
        [("keep", "7", "16", "\"kept\""), ("small", "42", "32", "\"fresh\""), ("big", "43", "100000", "\"initial\"")]
    {
        let src = dir.path().join(format!("{name}.c"));
        std::fs::write(&src, LIB.replace("INIT", init).replace("SIZE", size).replace("TEXT", text)).unwrap();
        let mut args = vec!["-shared", "-fPIC", "-O1"];
        args.extend_from_slice(dialect);
        cc(compiler, &args, &dir.path().join(format!("lib{name}.so")), &src);
    }
    let main_src = dir.path().join("main.c");
    std::fs::write(&main_src, MAIN).unwrap();
    let exe = dir.path().join("main");
    cc(compiler, &["-O1", "-pthread"], &exe, &main_src);
    let sysroot = debian_sysroot();
    if arch == Arch::Aarch64 {
        assert!(sysroot.join("usr/lib/aarch64-linux-gnu/libc.so.6").exists(), "run `cargo xtask sysroot`");
    }
    let reference = run(arch.command(&sysroot, &exe).arg(dir.path()));
    assert_eq!(reference.1, Some(0), "glibc: {reference:?}");
    assert!(
        reference.0.contains("the same in all 100 rounds: yes") && reference.0.ends_with("every round's values fresh\n"),
        "glibc: {reference:?}"
    );
    let cah = run(arch.command(&sysroot, &built_loader(arch)).arg(&exe).arg(dir.path()));
    assert_eq!(cah, reference, "{arch:?} {dialect:?}: ld-cah differs from glibc");
}

#[test]
fn x86_64_general_dynamic() {
    case(Arch::X86_64, &[]);
}

#[test]
fn x86_64_tls_descriptors() {
    case(Arch::X86_64, &["-mtls-dialect=gnu2"]);
}

#[test]
fn aarch64_tls_descriptors() {
    case(Arch::Aarch64, &[]);
}
