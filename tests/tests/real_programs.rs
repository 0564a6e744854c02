//! Real distro programs (x86_64, the host's own glibc 2.36), each run under
//! glibc's loader and under ld-cah, directly and as `PT_INTERP`: stdout,
//! stderr and exit status must be identical. glibc's output is the
//! expected value. The broader corpus (both arches) lives in
//! `glibc_programs.rs`; these cases guard the glibc stand-in and `dlopen`.

use std::process::Command;

use cah_tests::{built_loader, run_clean as run, Arch};

/// Runs `prog args` three ways and asserts they agree.
fn same_as_glibc(prog: &str, args: &[&str]) {
    let reference = run(Command::new(prog).args(args));
    assert_eq!(reference.2, Some(0), "{prog} fails even under glibc: {reference:?}");
    let direct = run(Command::new(built_loader(Arch::X86_64)).arg(prog).args(args));
    assert_eq!(direct, reference, "{prog} {args:?}: ld-cah.so run directly differs from glibc");
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join(std::path::Path::new(prog).file_name().unwrap());
    std::fs::copy(prog, &copy).unwrap();
    let st = Command::new("patchelf").arg("--set-interpreter").arg(built_loader(Arch::X86_64)).arg(&copy).status().unwrap();
    assert!(st.success(), "patchelf failed");
    let interp = run(Command::new(&copy).args(args));
    assert_eq!(interp, reference, "{prog} {args:?}: ld-cah.so as PT_INTERP differs from glibc");
}

#[test]
fn bash_script() {
    same_as_glibc("/bin/bash", &["-c", "x=$((6*7)); for i in 1 2 3; do echo \"$i $x\"; done; (echo sub); echo $(echo nested)"]);
}

#[test]
fn coreutils() {
    same_as_glibc("/usr/bin/sha256sum", &["/etc/os-release"]);
    same_as_glibc("/bin/date", &["-u", "-d", "@86400", "+%Y-%m-%d %H:%M"]);
    same_as_glibc("/usr/bin/stat", &["-c", "%s %F", "/etc/os-release"]);
    same_as_glibc("/bin/ls", &["-la", "--time-style=+", "/etc/os-release"]);
}

#[test]
fn threads_and_exceptions_in_python_via_dlopen() {
    // ctypes, _hashlib (OpenSSL), _decimal, _sqlite3, _ssl are C extension
    // modules: every import is a dlopen, and threading runs pthreads.
    same_as_glibc(
        "/usr/bin/python3",
        &[
            "-c",
            "import ctypes, hashlib, decimal, sqlite3, ssl, threading\n\
             r = []\n\
             t = threading.Thread(target=lambda: r.append(hashlib.sha256(b'ld-cah').hexdigest()))\n\
             t.start(); t.join()\n\
             print(r[0], decimal.Decimal(1) / 7, ctypes.sizeof(ctypes.c_long))\n\
             print(sqlite3.connect(':memory:').execute('select 6*7').fetchone()[0])",
        ],
    );
}

#[test]
fn perl_with_an_xs_module() {
    same_as_glibc(
        "/usr/bin/perl",
        &["-MPOSIX", "-e", "my %h = (a => 1, b => 2); printf(\"%s %d %.1f\\n\", join(',', sort keys %h), floor(3.7), 2.25);"],
    );
}

/// libc's IFUNC resolvers read the CPU description the loader fills in: the
/// usable-feature bits (public through `__x86_get_cpuid_feature_leaf`) and
/// the string functions they pick (seen as offsets into libc) must be the
/// ones glibc's own loader gives on this machine.
#[test]
fn cpu_features_and_ifunc_choices_match_glibc() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("cpu.c");
    std::fs::write(
        &src,
        r#"#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <dlfcn.h>
#include <sys/platform/x86.h>
int main(void) {
    for (unsigned i = 0; i < 9; i++) {
        const struct cpuid_feature *f = __x86_get_cpuid_feature_leaf(i);
        printf("leaf %u active %08x %08x %08x %08x\n", i, f->active_array[0], f->active_array[1], f->active_array[2], f->active_array[3]);
    }
    void *fns[] = { (void *)memcpy, (void *)memmove, (void *)memset, (void *)strlen, (void *)strchr, (void *)memcmp, (void *)strcmp, (void *)strcpy };
    const char *names[] = { "memcpy", "memmove", "memset", "strlen", "strchr", "memcmp", "strcmp", "strcpy" };
    for (int i = 0; i < 8; i++) {
        Dl_info d;
        dladdr(fns[i], &d);
        printf("%s at libc+%#lx\n", names[i], (unsigned long)((char *)fns[i] - (char *)d.dli_fbase));
    }
    return 0;
}
"#,
    )
    .unwrap();
    let exe = dir.path().join("cpu");
    assert!(Command::new("gcc").arg("-O1").arg("-o").arg(&exe).arg(&src).status().unwrap().success());
    same_as_glibc(exe.to_str().unwrap(), &[]);
}

/// `sysconf`'s cache names (what `getconf -a` lists) answer from the cache
/// description the loader leaves in `cpu_features`: every level's size,
/// associativity and line size must be what glibc's loader computes from
/// this machine's CPUID. x86_64 only: on aarch64 libc asks the kernel, not
/// the loader.
#[cfg(target_arch = "x86_64")]
#[test]
fn cache_sizes_from_sysconf_match_glibc() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("caches.c");
    std::fs::write(
        &src,
        r#"#include <stdio.h>
#include <unistd.h>
int main(void) {
    for (int n = _SC_LEVEL1_ICACHE_SIZE; n <= _SC_LEVEL4_CACHE_LINESIZE; n++)
        printf("%d %ld\n", n, sysconf(n));
    return 0;
}
"#,
    )
    .unwrap();
    let exe = dir.path().join("caches");
    assert!(Command::new("gcc").arg("-O1").arg("-o").arg(&exe).arg(&src).status().unwrap().success());
    same_as_glibc(exe.to_str().unwrap(), &[]);
}

/// libc's `time` and `gettimeofday` are IFUNCs that pick the vDSO's
/// implementations through the loader (`_dl_sysinfo_map` and
/// `_dl_lookup_symbol_x` while libc is being relocated): where they end up
/// must be where glibc's loader puts them.
#[test]
fn vdso_functions_are_bound_as_under_glibc() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("vdso.c");
    std::fs::write(
        &src,
        r#"#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/time.h>
#include <dlfcn.h>
static const char *where(void *f) {
    Dl_info d;
    if (!dladdr(f, &d) || !d.dli_fname) return "?";
    const char *s = strrchr(d.dli_fname, '/');
    return s ? s + 1 : d.dli_fname;
}
int main(void) {
    printf("time -> %s\n", where((void *)time));
    printf("gettimeofday -> %s\n", where((void *)gettimeofday));
    printf("clock_gettime -> %s\n", where((void *)clock_gettime));
    struct timeval tv;
    gettimeofday(&tv, 0);
    time_t t = time(0);
    printf("consistent: %s\n", (t >= tv.tv_sec - 1 && t <= tv.tv_sec + 1 && t > 1700000000) ? "yes" : "no");
    return 0;
}
"#,
    )
    .unwrap();
    let exe = dir.path().join("vdso");
    assert!(Command::new("gcc").arg("-O1").arg("-o").arg(&exe).arg(&src).status().unwrap().success());
    same_as_glibc(exe.to_str().unwrap(), &[]);
}

/// `dlinfo(RTLD_DI_SERINFO)`: the search path list the loader reports for
/// the program, with no run path, a run path that exists in part, one that
/// does not exist at all, and a DT_RUNPATH.
#[test]
fn dlinfo_search_paths_match_glibc() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("serinfo.c");
    std::fs::write(
        &src,
        r#"#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <dlfcn.h>
#include <link.h>
int main(void) {
    void *h = dlopen(NULL, RTLD_NOW);
    Dl_serinfo size;
    if (dlinfo(h, RTLD_DI_SERINFOSIZE, &size)) { printf("error %s\n", dlerror()); return 1; }
    Dl_serinfo *si = malloc(size.dls_size);
    si->dls_size = size.dls_size;
    si->dls_cnt = size.dls_cnt;
    if (dlinfo(h, RTLD_DI_SERINFO, si)) { printf("error %s\n", dlerror()); return 1; }
    printf("%u entries, %zu bytes\n", si->dls_cnt, si->dls_size);
    for (unsigned i = 0; i < si->dls_cnt; i++) printf("%s %#x\n", si->dls_serpath[i].dls_name, si->dls_serpath[i].dls_flags);
    return 0;
}
"#,
    )
    .unwrap();
    for (name, flags) in [
        ("none", vec![]),
        ("rpath-partly-there", vec!["-Wl,--disable-new-dtags,-rpath,/usr/share:/nonexistent"]),
        ("rpath-not-there", vec!["-Wl,--disable-new-dtags,-rpath,/nonexistent:$ORIGIN/nowhere"]),
        ("runpath", vec!["-Wl,--enable-new-dtags,-rpath,/usr/share"]),
    ] {
        let exe = dir.path().join(name);
        assert!(Command::new("gcc").arg("-o").arg(&exe).arg(&src).args(&flags).status().unwrap().success());
        same_as_glibc(exe.to_str().unwrap(), &[]);
    }
}
