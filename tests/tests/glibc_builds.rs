//! Other glibc builds than the machine's: this machine's programs run
//! against Debian trixie's libc (2.41, whatever point release the archive
//! serves today, unpacked by `cargo xtask glibc-layouts --check`), once under
//! trixie's own ld.so and once under ld-cah; output and status must agree.
//! A build whose layout no table covers is refused with one line.
//!
//! 2.41 differs from 2.36 where it matters to a loader: libc imports the
//! exception machinery (`_dl_catch_exception`, `_dl_signal_error`, ...)
//! from the loader, and the rseq area lives in static TLS.

use std::process::Command;

use cah_tests::{built_loader, run_clean as run, Arch, GlibcBuild};

/// The unpacked glibc `name` (`trixie_amd64`); the test fails with what
/// to run if it is missing.
fn glibc_build(name: &str, arch: Arch) -> GlibcBuild {
    GlibcBuild::find(name, arch).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `prog` against `suite`'s x86_64 libc under that build's own ld.so
/// and under ld-cah; both must print and exit alike. Returns glibc's result.
fn same_under(suite: &str, prog: &str, args: &[&str]) -> (String, String, Option<i32>) {
    let g = glibc_build(&format!("{suite}_amd64"), Arch::X86_64);
    let libdir = &g.libdir;
    let reference = run(Command::new(g.ld_so()).arg("--library-path").arg(libdir).arg(prog).args(args));
    let loader = built_loader(Arch::X86_64);
    let cah = run(Command::new(&loader).arg("--library-path").arg(libdir).arg(prog).args(args));
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
    aarch64_case_linked(version, false)
}

/// As [`aarch64_case`]; with `own_libs` the program is linked against the
/// build's own `libc.so.6`, `libpthread.so.0` and `libdl.so.2` instead of
/// the cross compiler's libc (a glibc before 2.34 lacks the `GLIBC_2.34`
/// versions a program linked against 2.36 needs).
fn aarch64_case_linked(version: &str, own_libs: bool) {
    let g = glibc_build(version, Arch::Aarch64);
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
    let mut gcc = Command::new("aarch64-linux-gnu-gcc");
    gcc.arg("-O1").arg("-o").arg(&exe).arg(&src).arg("-pthread");
    if own_libs {
        gcc.arg("-nodefaultlibs");
        for lib in ["libc.so.6", "libpthread.so.0", "libdl.so.2", "ld-linux-aarch64.so.1"] {
            gcc.arg(g.libdir.join(lib));
        }
        gcc.arg("-lgcc");
    }
    let st = gcc.status().unwrap();
    assert!(st.success(), "aarch64-linux-gnu-gcc failed");
    let qemu = |first: &std::path::Path| {
        let mut c = g.command(first);
        c.arg("--library-path").arg(&g.libdir).arg(&exe);
        run(&mut c)
    };
    let reference = qemu(&g.ld_so());
    assert_eq!(reference.2, Some(7), "glibc {version} run: {reference:?}");
    assert!(reference.0.contains("missing symbol: null named"), "{reference:?}");
    let cah = qemu(&built_loader(Arch::Aarch64));
    assert_eq!(cah, reference, "aarch64 glibc {version}: ld-cah differs from glibc's loader");
}

/// glibc 2.31 (bullseye): threads in libpthread.so.0, dlopen and dlerror
/// in libdl.so.2.
#[test]
fn aarch64_threads_tls_and_dlopen_with_glibc_2_31() {
    aarch64_case_linked("bullseye_arm64", true);
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

/// glibc 2.31 (bullseye), both arches, built against the build's own
/// `libc.so.6`, `libpthread.so.0` and `libdl.so.2`: a module with
/// general-dynamic and initial-exec TLS is dlopened while another thread
/// waits, which then reads the module's initial values (libpthread's
/// `_dl_init_static_tls` hook reaches it); dlerror of a missing library
/// and symbol comes through libdl and libc's `_dl_catch_error`.
#[test]
fn dlopen_tls_module_with_threads_with_glibc_2_31() {
    for (arch, cc, build) in [(Arch::X86_64, "gcc", "bullseye_amd64"), (Arch::Aarch64, "aarch64-linux-gnu-gcc", "bullseye_arm64")] {
        let g = glibc_build(build, arch);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("m.c"),
            "__thread int gd = 42;\n\
             __attribute__((tls_model(\"initial-exec\"))) __thread int ie = 7;\n\
             int get_gd(void) { return gd; }\nint get_ie(void) { return ie; }\nvoid bump(void) { gd++; ie++; }\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("t.c"),
            r#"#include <stdio.h>
#include <dlfcn.h>
#include <pthread.h>
#include <semaphore.h>
static sem_t go;
static int (*g1)(void), (*g2)(void);
/* The initial-exec variable first: a general-dynamic access would set up the block lazily. */
static void *th(void *a) { sem_wait(&go); int ie = g2(); int gd = g1(); printf("other thread: gd=%d ie=%d\n", gd, ie); return 0; }
int main(int argc, char **argv) {
    sem_init(&go, 0, 0);
    pthread_t t; pthread_create(&t, 0, th, 0);
    void *none = dlopen("libnonexistent.so.9", RTLD_NOW);
    printf("missing: %p %s\n", none, dlerror());
    void *h = dlopen(argv[1], RTLD_NOW);
    if (!h) { printf("dlopen: %s\n", dlerror()); return 1; }
    g1 = (int (*)(void))dlsym(h, "get_gd"); g2 = (int (*)(void))dlsym(h, "get_ie");
    void (*b)(void) = (void (*)(void))dlsym(h, "bump");
    b();
    printf("main thread: gd=%d ie=%d\n", g1(), g2());
    void *nosym = dlsym(h, "no_such_symbol");
    printf("missing symbol: %p %s\n", nosym, dlerror());
    sem_post(&go); pthread_join(t, 0);
    printf("dlclose=%d\n", dlclose(h));
    return 3;
}
"#,
        )
        .unwrap();
        let (m, exe) = (dir.path().join("m.so"), dir.path().join("t"));
        let st = Command::new(cc)
            .args(["-shared", "-fPIC", "-O1", "-nodefaultlibs", "-o"])
            .arg(&m)
            .arg(dir.path().join("m.c"))
            .status()
            .unwrap();
        assert!(st.success(), "{cc} m.so");
        let mut link = Command::new(cc);
        link.args(["-O1", "-nodefaultlibs", "-o"]).arg(&exe).arg(dir.path().join("t.c"));
        for lib in ["libc.so.6", "libpthread.so.0", "libdl.so.2", arch.ld_so_name()] {
            link.arg(g.libdir.join(lib));
        }
        assert!(link.arg("-lgcc").status().unwrap().success(), "{cc} t");
        let go = |loader: &std::path::Path| run(g.command(loader).arg("--library-path").arg(&g.libdir).arg(&exe).arg(&m));
        let reference = go(&g.ld_so());
        assert_eq!(reference.2, Some(3), "{build} under its own loader: {reference:?}");
        assert!(reference.0.contains("other thread: gd=42 ie=7\n"), "{reference:?}");
        assert!(reference.0.contains("libnonexistent.so.9: cannot open shared object file"), "{reference:?}");
        assert!(reference.0.contains("undefined symbol: no_such_symbol"), "{reference:?}");
        let cah = go(&built_loader(arch));
        assert_eq!(cah, reference, "{build}: ld-cah differs from glibc's loader");
    }
}
