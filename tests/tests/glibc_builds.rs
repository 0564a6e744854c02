//! Other glibc builds than the machine's: this machine's programs run
//! against Debian trixie's libc (2.41, whatever point release the archive
//! serves today, unpacked by `cargo xtask glibc-layouts --check`), once under
//! trixie's own ld.so and once under ld-cah; output and status must agree.
//! A build whose layout no table covers is refused with one line.
//!
//! 2.41 differs from 2.36 where it matters to a loader: libc imports the
//! exception machinery (`_dl_catch_exception`, `_dl_signal_error`, ...)
//! from the loader, and the rseq area lives in static TLS.

use std::path::PathBuf;
use std::process::Command;

use cah_tests::{built_loader, root, run_clean as run, Arch};

/// The unpacked x86_64 glibc of a Debian release (`trixie`, `sid`).
fn glibc_dir(suite: &str) -> PathBuf {
    let d = root().join("target/glibc-dbg").join(format!("{suite}_amd64"));
    assert!(d.join("usr/lib/x86_64-linux-gnu/libc.so.6").exists(), "{} missing: run `cargo xtask glibc-layouts --check`", d.display());
    d
}

/// Runs `prog` against `suite`'s libc under that build's own ld.so and
/// under ld-cah; both must print and exit alike. Returns glibc's result.
fn same_under(suite: &str, prog: &str, args: &[&str]) -> (String, String, Option<i32>) {
    let g = glibc_dir(suite);
    let libdir = g.join("usr/lib/x86_64-linux-gnu");
    let reference = run(Command::new(libdir.join("ld-linux-x86-64.so.2")).arg("--library-path").arg(&libdir).arg(prog).args(args));
    let loader = built_loader(Arch::X86_64);
    let cah = run(Command::new(&loader).arg("--library-path").arg(&libdir).arg(prog).args(args));
    assert_eq!(cah, reference, "{prog} {args:?} with {suite}'s glibc: ld-cah differs from glibc's loader");
    reference
}

fn same_under_241(prog: &str, args: &[&str]) {
    let r = same_under("trixie", prog, args);
    assert_eq!(r.2, Some(0), "{prog} fails under glibc 2.41's own loader: {r:?}");
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
    aarch64_case("bookworm_arm64");
}

#[test]
fn aarch64_threads_tls_and_dlopen_with_glibc_2_41() {
    aarch64_case("trixie_arm64");
}

#[test]
fn aarch64_threads_tls_and_dlopen_with_glibc_2_43() {
    aarch64_case("sid_arm64");
}

/// glibc 2.43 (sid): `struct pthread` lost `user_stack` and `joinid`
/// (`stack_mode`, `joinstate` instead) and `_rtld_global` lost
/// `_dl_stack_flags` (`_dl_stack_prot_flags` instead): threads, joins and
/// python's C extensions show whether the loader filled the new members.
#[test]
fn programs_and_threads_with_glibc_2_43() {
    for (prog, args) in [
        ("/bin/bash", &["-c", "echo $((6*7)); printf '%s\\n' a b | sort -r; ls /nonexistent 2>&1; echo status=$?"][..]),
        ("/usr/bin/sha256sum", &["/etc/os-release"][..]),
        (
            "/usr/bin/python3",
            &["-c", "import threading, hashlib, ctypes\nr = []\nts = [threading.Thread(target=lambda i=i: r.append(hashlib.sha1(bytes([i])).hexdigest()[:8])) for i in range(4)]\n[t.start() for t in ts]; [t.join() for t in ts]\nprint(sorted(r), ctypes.CDLL('libm.so.6').cos is not None)"][..],
        ),
    ] {
        let r = same_under("sid", prog, args);
        assert_eq!(r.2, Some(0), "{prog} under glibc 2.43's own loader: {r:?}");
    }
}

/// `_dl_readonly_area` (2.42 and later): a fortified `printf` refuses `%n`
/// in a format string in writable memory and accepts one in read-only
/// memory; the loader answers which is which.
#[test]
fn fortified_percent_n_with_glibc_2_43() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("n.c");
    std::fs::write(
        &src,
        r#"#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
    int n = 0;
    printf("ro%n\n", &n);
    printf("n=%d\n", n);
    fflush(stdout);
    char fmt[16];
    strcpy(fmt, argc > 1 ? argv[1] : "rw%n\n");
    printf(fmt, &n);
    return 3;
}
"#,
    )
    .unwrap();
    let exe = dir.path().join("n");
    let st = Command::new("gcc").args(["-O2", "-D_FORTIFY_SOURCE=2", "-o"]).arg(&exe).arg(&src).status().unwrap();
    assert!(st.success(), "gcc failed");
    let r = same_under("sid", exe.to_str().unwrap(), &[]);
    assert!(r.0.starts_with("ro\nn=2\n"), "{r:?}");
    assert!(r.1.contains("%n in writable segments detected"), "glibc refuses the writable %n: {r:?}");
}

/// Debian's cross libc (`libc6-arm64-cross` 2.36-8cross1, what
/// `aarch64-linux-gnu-gcc` links against) is a 2.36 with a layout of its
/// own (`struct link_map` is 8 bytes shorter before `l_tls_modid`) and no
/// published debug info: it must be refused with the one-line error that
/// names it, never run with bookworm's 2.36 table.
#[test]
fn the_cross_libc_is_refused_not_run_with_another_2_36_table() {
    let cross = std::path::Path::new("/usr/aarch64-linux-gnu");
    let libc = cross.join("lib/libc.so.6");
    assert!(libc.exists(), "{} missing: install libc6-arm64-cross", libc.display());
    let banner = std::fs::read(&libc).unwrap();
    assert!(
        banner.windows(b"release version 2.36.".len()).any(|w| w == b"release version 2.36."),
        "the cross libc is no longer a 2.36: this test needs a new build with a layout of its own"
    );
    let build_id = {
        let out = Command::new("readelf").arg("-n").arg(&libc).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines().find_map(|l| l.trim().strip_prefix("Build ID: ").map(str::to_string)).expect("libc has a build id")
    };
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("t.c");
    std::fs::write(&src, "#include <stdio.h>\nint main(void) { puts(\"ran\"); return 0; }\n").unwrap();
    let exe = dir.path().join("t");
    assert!(Command::new("aarch64-linux-gnu-gcc").arg("-o").arg(&exe).arg(&src).status().unwrap().success());
    let reference = run(Command::new("qemu-aarch64").arg("-L").arg(cross).arg(&exe));
    assert_eq!(reference, ("ran\n".into(), String::new(), Some(0)), "the cross glibc's own loader runs it");
    let cah = run(Command::new("qemu-aarch64").arg("-L").arg(cross).arg(built_loader(Arch::Aarch64)).arg(&exe));
    assert_eq!(cah.0, "", "nothing of the program ran");
    assert_eq!(cah.2, Some(127));
    let line = cah.1.trim_end();
    assert_eq!(cah.1.lines().count(), 1, "one line: {:?}", cah.1);
    assert!(line.starts_with("ld-cah.so: error: ") && line.contains("libc.so.6: glibc 2.36 (build id "), "{line}");
    assert!(line.contains(&build_id), "names the build id {build_id}: {line}");
    assert!(line.contains("has no layout table: "), "says why: {line}");
}
