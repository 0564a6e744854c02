//! glibc 2.41 (Debian trixie, 2.41-12+deb13u4, the build whose layout table
//! is committed): this machine's programs run against that libc, once under
//! trixie's own ld.so and once under ld-cah; output and status must agree.
//! The libc comes from the packages `cargo xtask glibc-layouts --check`
//! unpacks (pinned by version, so the test does not drift with Debian).
//!
//! 2.41 differs from 2.36 where it matters to a loader: libc imports the
//! exception machinery (`_dl_catch_exception`, `_dl_signal_error`, ...)
//! from the loader, and the rseq area lives in static TLS.

use std::path::PathBuf;
use std::process::Command;

use cah_tests::{root, built_loader, Arch, run_clean as run};


fn glibc_dir() -> PathBuf {
    let d = root().join("target/glibc-dbg/2.41-12+deb13u4_amd64");
    assert!(d.join("usr/lib/x86_64-linux-gnu/libc.so.6").exists(), "{} missing: run `cargo xtask glibc-layouts --check`", d.display());
    d
}


fn same_under_241(prog: &str, args: &[&str]) {
    let g = glibc_dir();
    let libdir = g.join("usr/lib/x86_64-linux-gnu");
    let reference = run(Command::new(g.join("usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")).arg("--library-path").arg(&libdir).arg(prog).args(args));
    assert_eq!(reference.2, Some(0), "{prog} fails under glibc 2.41's own loader: {reference:?}");
    let loader = built_loader(Arch::X86_64);
    let cah = run(Command::new(&loader).arg("--library-path").arg(&libdir).arg(prog).args(args));
    assert_eq!(cah, reference, "{prog} {args:?} with glibc 2.41: ld-cah differs from glibc's loader");
}

#[test]
fn bash_and_coreutils_with_glibc_2_41() {
    same_under_241("/bin/bash", &["-c", "echo $((6*7)); printf '%s\\n' a b | sort -r; ls /nonexistent 2>&1; echo status=$?"]);
    same_under_241("/usr/bin/sha256sum", &["/etc/os-release"]);
    same_under_241("/bin/date", &["-u", "-d", "@0"]);
}

#[test]
fn dlopen_errors_and_threads_with_glibc_2_41() {
    // dlopen of a missing library and dlsym of a missing symbol unwind
    // through the loader's _dl_catch_exception/_dl_signal_error in 2.41;
    // python's threading and C extensions exercise TLS, rseq and dlopen.
    same_under_241(
        "/usr/bin/python3",
        &[
            "-c",
            "import ctypes, threading, hashlib\n\
             try:\n    ctypes.CDLL('libnonexistent.so.9')\nexcept OSError as e:\n    print('missing library:', 'libnonexistent.so.9' in str(e))\n\
             libm = ctypes.CDLL('libm.so.6')\n\
             try:\n    libm.no_such_symbol\nexcept AttributeError as e:\n    print('missing symbol:', 'no_such_symbol' in str(e))\n\
             r = []\n\
             ts = [threading.Thread(target=lambda i=i: r.append(hashlib.sha1(bytes([i])).hexdigest()[:8])) for i in range(4)]\n\
             [t.start() for t in ts]; [t.join() for t in ts]\n\
             print(sorted(r))",
        ],
    );
}

/// A threaded C program with TLS and dlopen/dlsym (including their error
/// paths), cross-compiled here, run with Debian's real arm64 glibc of
/// `version` under qemu: glibc's own loader versus ld-cah.
fn aarch64_case(version: &str) {
    let g = root().join("target/glibc-dbg").join(version);
    // bookworm's packages put libc under /lib, trixie's (merged /usr) under /usr/lib.
    let libdir = ["usr/lib/aarch64-linux-gnu", "lib/aarch64-linux-gnu"]
        .iter()
        .map(|d| g.join(d))
        .find(|d| d.join("libc.so.6").exists())
        .unwrap_or_else(|| g.join("lib/aarch64-linux-gnu"));
    assert!(libdir.join("libc.so.6").exists(), "{} missing: run `cargo xtask glibc-layouts --check`", libdir.display());
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("t.c");
    std::fs::write(
        &src,
        r#"#include <stdio.h>
#include <string.h>
#include <dlfcn.h>
#include <pthread.h>
static __thread int tl = 5;
static void *th(void *a) { tl += (int)(long)a; printf("thread tl=%d\n", tl); return 0; }
int main(void) {
    pthread_t t; pthread_create(&t, 0, th, (void *)2); pthread_join(t, 0);
    void *h = dlopen("libnonexistent.so.9", RTLD_NOW);
    const char *e = dlerror();
    printf("missing library: %s %s\n", h ? "loaded?!" : "null", e && strstr(e, "libnonexistent") ? "named" : "unnamed");
    void *m = dlopen("libm.so.6", RTLD_NOW);
    double (*c)(double) = (double (*)(double))dlsym(m, "cos");
    printf("cos(0)=%g main tl=%d\n", c ? c(0) : -1.0, tl);
    void *s = dlsym(m, "no_such_symbol");
    e = dlerror();
    printf("missing symbol: %s %s\n", s ? "found?!" : "null", e && strstr(e, "no_such_symbol") ? "named" : "unnamed");
    return 7;
}
"#,
    )
    .unwrap();
    let exe = dir.path().join("t");
    let st = Command::new("aarch64-linux-gnu-gcc").arg("-O1").arg("-o").arg(&exe).arg(&src).arg("-pthread").status().unwrap();
    assert!(st.success(), "aarch64-linux-gnu-gcc failed");
    let qemu = |first: &std::path::Path| {
        let mut c = Command::new("qemu-aarch64");
        c.arg("-L").arg(&g).arg(first).arg("--library-path").arg(&libdir).arg(&exe);
        run(&mut c)
    };
    let reference = qemu(&libdir.join("ld-linux-aarch64.so.1"));
    assert_eq!(reference.2, Some(7), "glibc {version} run: {reference:?}");
    assert!(reference.0.contains("missing symbol: null named"), "{reference:?}");
    let cah = qemu(&built_loader(Arch::Aarch64));
    assert_eq!(cah, reference, "aarch64 glibc {version}: ld-cah differs from glibc's loader");
}

#[test]
fn aarch64_threads_tls_and_dlopen_with_glibc_2_36() {
    aarch64_case("2.36-9+deb12u14_arm64");
}

#[test]
fn aarch64_threads_tls_and_dlopen_with_glibc_2_41() {
    aarch64_case("2.41-12+deb13u4_arm64");
}
