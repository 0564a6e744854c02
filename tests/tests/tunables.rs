//! glibc tunables (`GLIBC_TUNABLES`, `MALLOC_*`): for each glibc build ld-cah
//! has a table for (Debian 2.36 and 2.41, amd64 natively and arm64 under
//! qemu), small C programs run once under the build's own ld.so and once
//! under ld-cah, against that build's libc (the packages `cargo xtask
//! glibc-layouts --check` unpacks); output and status must agree.
//!
//! * `tun` calls `__tunable_get_val` for every tunable (except the
//!   `glibc.cpu.x86_*` numbers, which glibc's ld.so derives from the CPU)
//!   and prints what it writes (all bytes, so the width shows), what the
//!   callback gets and, on 2.41, `__tunable_is_initialized`: the parsing
//!   rules, bounds and aliases of each build.
//! * `effects` shows what libc does with them: malloc perturbation, the
//!   mmap threshold, `malloc.check` (with `libc_malloc_debug.so`), rseq
//!   registration, the thread stack cache.
//! * set-uid runs (x86_64, needs root as `secure.rs`): the environment a
//!   secure program sees and the tunables it gets, per build.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use cah_tests::{built_loader, root, Arch, GlibcBuild};

type Out = (String, String, Option<i32>);

struct Build {
    /// Directory under target/glibc-dbg.
    dir: &'static str,
    arch: Arch,
    /// 2.39 and later: string tunables read as `struct { str, len } *`,
    /// and `__tunable_is_initialized` exists.
    new_abi: bool,
}

const BUILDS: &[Build] = &[
    Build { dir: "bookworm_amd64", arch: Arch::X86_64, new_abi: false },
    Build { dir: "trixie_amd64", arch: Arch::X86_64, new_abi: true },
    Build { dir: "bookworm_arm64", arch: Arch::Aarch64, new_abi: false },
    Build { dir: "trixie_arm64", arch: Arch::Aarch64, new_abi: true },
];

impl Build {
    /// The unpacked build; the test fails with what to run if it is missing.
    fn glibc(&self) -> GlibcBuild {
        GlibcBuild::find(self.dir, self.arch).unwrap_or_else(|e| panic!("{e}"))
    }

    fn libdir(&self) -> PathBuf {
        self.glibc().libdir
    }

    fn ld_so(&self) -> PathBuf {
        self.glibc().ld_so()
    }

    fn cah(&self) -> PathBuf {
        built_loader(self.arch)
    }

    /// `loader [--library-path LIBDIR] args...`, natively or under qemu.
    fn command(&self, loader: &Path, args: &[&str], library_path: bool) -> Command {
        let g = self.glibc();
        let mut c = g.command(loader);
        if library_path {
            c.arg("--library-path").arg(&g.libdir);
        }
        c.args(args);
        c
    }

    fn compile(&self, dir: &Path, name: &str, src: &str) -> PathBuf {
        let c = dir.join(format!("{name}.c"));
        std::fs::write(&c, src).unwrap();
        let exe = dir.join(format!("{name}-{}", self.arch.name()));
        if !exe.exists() {
            let cc = self.arch.cc();
            let st = Command::new(cc).arg("-O1").arg("-o").arg(&exe).arg(&c).arg("-pthread").status().unwrap();
            assert!(st.success(), "{cc} {name}.c failed");
        }
        exe
    }

    /// The build's tunables, in id order, as its ld.so lists them:
    /// (name, kind letter for `tun`).
    fn tunables(&self) -> Vec<(String, char)> {
        let (out, err, st) = run(&mut self.command(&self.ld_so(), &["--list-tunables"], false), &[]);
        assert_eq!(st, Some(0), "{} --list-tunables: {err}", self.dir);
        out.lines()
            .map(|l| {
                let (name, rest) = l.split_once(':').unwrap();
                let rest = rest.trim();
                let kind = if rest.is_empty() {
                    if self.new_abi {
                        'S'
                    } else {
                        's'
                    }
                } else if rest.starts_with("0x") {
                    'u'
                } else {
                    'i'
                };
                (name.to_string(), kind)
            })
            .collect()
    }

    /// Runs `args` under glibc's ld.so and under ld-cah with `env`; both
    /// must agree. Returns glibc's result.
    fn same(&self, what: &str, args: &[&str], env: &[(&str, &str)]) -> Out {
        let reference = run(&mut self.command(&self.ld_so(), args, true), env);
        assert_eq!(reference.2, Some(0), "{} {what} {env:?}: fails under glibc: {reference:?}", self.dir);
        let cah = run(&mut self.command(&self.cah(), args, true), env);
        assert_eq!(cah, reference, "{} {what} with {env:?}: ld-cah differs from glibc's loader", self.dir);
        reference
    }
}

fn run(cmd: &mut Command, env: &[(&str, &str)]) -> Out {
    cmd.env_clear().env("LC_ALL", "C").env("PATH", "/usr/bin:/bin");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("spawn");
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned(), out.status.code())
}

fn work_dir(name: &str) -> PathBuf {
    let d = root().join(format!("target/cah-tests/tunables-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// argv[1]: `I` to call `__tunable_is_initialized` too, else `-`; then
/// `ID:KIND` with KIND `i` (int32), `u` (uint64/size_t), `s` (string as a
/// `char *`), `S` (string as a pointer to `{ const char *, size_t }`).
const TUN_C: &str = r#"#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
static int called;
static unsigned char seen[16];
static void cb(void *v) { called = 1; memcpy(seen, v, 16); }
struct str { const char *s; size_t n; };
static void show(const char *what, const void *p, char kind) {
    if (kind == 's') { const char *s = p; printf(" %s=%s", what, s ? s : "(null)"); return; }
    const struct str *t = p;
    if (!t) printf(" %s=NULL", what);
    else if (t->s) printf(" %s=%.*s(%zu)", what, (int)t->n, t->s, t->n);
    else printf(" %s=(null)(%zu)", what, t->n);
}
int main(int argc, char **argv) {
    void (*get)(unsigned, void *, void (*)(void *)) = dlvsym(RTLD_DEFAULT, "__tunable_get_val", "GLIBC_PRIVATE");
    _Bool (*isinit)(unsigned) = argv[1][0] == 'I' ? dlvsym(RTLD_DEFAULT, "__tunable_is_initialized", "GLIBC_PRIVATE") : 0;
    if (!get || (argv[1][0] == 'I' && !isinit)) { printf("missing entry points\n"); return 1; }
    for (int i = 2; i < argc; i++) {
        unsigned id = strtoul(argv[i], 0, 10);
        char kind = strchr(argv[i], ':')[1];
        unsigned char buf[16];
        memset(buf, 0xa5, sizeof buf);
        memset(seen, 0x5a, sizeof seen);
        called = 0;
        get(id, buf, cb);
        printf("%u:", id);
        if (kind == 'i' || kind == 'u') {
            printf(" val=");
            for (int b = 15; b >= 0; b--) printf("%02x", buf[b]);
            if (called) { int64_t n; memcpy(&n, seen, 8); printf(" cb=%lld", (long long)n); }
        } else {
            void *p; memcpy(&p, buf, 8);
            for (int b = 8; b < 16; b++) if (buf[b] != 0xa5) { printf(" wrote-past-pointer"); break; }
            show("val", p, kind);
            if (called) { if (kind == 's') { char *q; memcpy(&q, seen, 8); show("cb", q, 's'); } else show("cb", seen, 'S'); }
        }
        if (!called) printf(" no-cb");
        if (isinit) printf(" init=%d", isinit(id));
        printf("\n");
    }
    return 0;
}
"#;

/// Things libc does differently with tunables set.
const EFFECTS_C: &str = r#"#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/rseq.h>
#include <unistd.h>
static void *thread_stack;
static const char *rseq_state(void) {
    int cpu = *(volatile int *)((char *)__builtin_thread_pointer() + __rseq_offset + 4);
    return cpu >= 0 ? "registered" : cpu == -2 ? "not registered" : "uninitialised";
}
static void *thread(void *a) {
    pthread_attr_t at; size_t size;
    pthread_getattr_np(pthread_self(), &at);
    pthread_attr_getstack(&at, &thread_stack, &size);
    pthread_attr_destroy(&at);
    printf("thread rseq %s\n", rseq_state());
    return a;
}
int main(void) {
    printf("__rseq_size %s, main rseq %s, sched_getcpu %s\n", __rseq_size ? "> 0" : "0", rseq_state(), sched_getcpu() >= 0 ? "works" : "fails");
    volatile unsigned char *p = malloc(200);
    printf("fresh malloc byte %#x\n", p[100]);
    void *q = malloc(10);
    printf("malloc_usable_size(malloc(10)) %zu\n", malloc_usable_size(q));
    /* An mmapped chunk spans whole pages and has a two-word header (this
       rather than mallinfo2, which libc_malloc_debug.so finds with
       dlsym(RTLD_NEXT)). */
    long page = sysconf(_SC_PAGESIZE);
    void *volatile big = malloc(512 * 1024);
    printf("malloc(512K) mmapped: %s\n", (malloc_usable_size(big) + 16) % page == 0 ? "yes" : "no");
    free(big);
    free(q);
    free((void *)p);
    pthread_t t;
    pthread_create(&t, 0, thread, 0);
    pthread_join(t, 0);
    int mapped = msync((void *)((uintptr_t)thread_stack & ~(uintptr_t)(page - 1)), page, MS_ASYNC) == 0;
    printf("joined thread's stack %s\n", mapped ? "kept in the stack cache" : "unmapped");
    return 0;
}
"#;

/// `GLIBC_TUNABLES` and alias settings whose parsing differs between the
/// rule sets, or that are out of range, or malformed.
const PARSE_CASES: &[&[(&str, &str)]] = &[
    &[],
    &[("GLIBC_TUNABLES", "glibc.malloc.check=3:glibc.malloc.perturb=0x5a:glibc.malloc.mmap_threshold=0400000")],
    &[("GLIBC_TUNABLES", "glibc.malloc.check=3:")],
    &[("GLIBC_TUNABLES", "glibc.malloc.check=9:glibc.malloc.arena_max=0:glibc.elision.tries=-5:glibc.malloc.perturb=256")],
    &[("GLIBC_TUNABLES", "glibc.elision.tries=4294967301:glibc.gmon.minarcs=2147483648:glibc.elision.skip_lock_busy=-4294967295")],
    &[("GLIBC_TUNABLES", "glibc.malloc.check=3x:glibc.pthread.mutex_spin_count= 7:glibc.malloc.top_pad=08")],
    &[("GLIBC_TUNABLES", "glibc.malloc.check=1=2:glibc.malloc.perturb=1")],
    &[("GLIBC_TUNABLES", "foo:bar=1::glibc.malloc.mmap_max=+12:glibc.malloc.mxfast")],
    &[("GLIBC_TUNABLES", "=5:glibc.malloc.mmap_max=1:glibc.pthread.mutex_spin_count=")],
    &[("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=18446744073709551614:glibc.malloc.trim_threshold=99999999999999999999")],
    &[("GLIBC_TUNABLES", "glibc.malloc.tcache_count=1:glibc.malloc.tcache_count=2:glibc.malloc.tcache_max=0X40")],
    &[(
        "GLIBC_TUNABLES",
        "glibc.cpu.hwcaps=-AVX512F_Usable,-Prefer_No_VZEROUPPER:glibc.cpu.x86_ibt=on:glibc.cpu.name=generic:glibc.cpu.x86_shstk=",
    )],
    &[
        ("MALLOC_PERTURB_", "7"),
        ("MALLOC_MMAP_THRESHOLD_", "99"),
        ("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=77:glibc.malloc.arena_test=0"),
        ("MALLOC_TOP_PAD_", "x"),
        ("MALLOC_ARENA_MAX", "0"),
        ("MALLOC_ARENA_TEST", "3"),
        ("MALLOC_CHECK_", "2"),
        ("MALLOC_TRIM_THRESHOLD_", "0x1000"),
    ],
    &[("GLIBC_TUNABLES", "glibc.pthread.rseq=0:glibc.pthread.stack_cache_size=0x10000:glibc.rtld.optional_static_tls=0x400")],
    &[("GLIBC_TUNABLES", "")],
    &[("GLIBC_TUNABLES", ":")],
];

fn tun_args(b: &Build, tunables: &[(String, char)]) -> Vec<String> {
    let mut args = vec![if b.new_abi { "I".to_string() } else { "-".to_string() }];
    for (id, (name, kind)) in tunables.iter().enumerate() {
        // glibc's ld.so sets these from the CPU at start-up (ld-cah
        // describes the CPU in `cpu_features` instead).
        if name.starts_with("glibc.cpu.x86_") && *kind != 's' && *kind != 'S' {
            continue;
        }
        args.push(format!("{id}:{kind}"));
    }
    args
}

fn get_val_case(b: &Build) {
    let dir = work_dir(&format!("get-{}", b.dir));
    let exe = b.compile(&dir, "tun", TUN_C);
    let tunables = b.tunables();
    let args = tun_args(b, &tunables);
    let mut argv: Vec<&str> = vec![exe.to_str().unwrap()];
    argv.extend(args.iter().map(String::as_str));
    let mut outputs = Vec::new();
    for env in PARSE_CASES {
        outputs.push(b.same("tun", &argv, env));
    }
    let _ = std::fs::remove_dir_all(&dir);
    // The cases are not all no-ops: the second sets malloc.check to 3.
    let check = tunables.iter().position(|(n, _)| n == "glibc.malloc.check").unwrap();
    let line = |o: &Out| o.0.lines().find(|l| l.starts_with(&format!("{check}:"))).unwrap().to_string();
    assert!(line(&outputs[0]).contains("no-cb"), "{}", line(&outputs[0]));
    assert!(line(&outputs[1]).contains("cb=3"), "{}", line(&outputs[1]));
    // 2.41 warns about malformed strings; ld-cah words it the same.
    if b.new_abi {
        assert!(outputs[2].1.contains("WARNING: ld.so: invalid GLIBC_TUNABLES `glibc.malloc.check=3:': ignored."), "{:?}", outputs[2].1);
    }
}

#[test]
fn get_val_matches_glibc_2_36_x86_64() {
    get_val_case(&BUILDS[0]);
}

#[test]
fn get_val_matches_glibc_2_41_x86_64() {
    get_val_case(&BUILDS[1]);
}

#[test]
fn get_val_matches_glibc_2_36_aarch64() {
    get_val_case(&BUILDS[2]);
}

#[test]
fn get_val_matches_glibc_2_41_aarch64() {
    get_val_case(&BUILDS[3]);
}

fn effects_case(b: &Build) {
    let dir = work_dir(&format!("effects-{}", b.dir));
    let exe = b.compile(&dir, "effects", EFFECTS_C);
    let argv = [exe.to_str().unwrap()];
    let debug = "libc_malloc_debug.so.0";
    let settings: &[(&str, &[(&str, &str)])] = &[
        ("baseline", &[]),
        ("perturb", &[("GLIBC_TUNABLES", "glibc.malloc.perturb=0x5a")]),
        ("perturb alias", &[("MALLOC_PERTURB_", "0x5a")]),
        ("perturb out of range", &[("GLIBC_TUNABLES", "glibc.malloc.perturb=256")]),
        ("mmap threshold", &[("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=0x100000")]),
        ("mmap threshold alias", &[("MALLOC_MMAP_THRESHOLD_", "1048576")]),
        ("rseq off", &[("GLIBC_TUNABLES", "glibc.pthread.rseq=0")]),
        ("stack cache off", &[("GLIBC_TUNABLES", "glibc.pthread.stack_cache_size=0")]),
        ("malloc check", &[("LD_PRELOAD", debug), ("GLIBC_TUNABLES", "glibc.malloc.check=3")]),
        ("malloc check out of range", &[("LD_PRELOAD", debug), ("GLIBC_TUNABLES", "glibc.malloc.check=4")]),
    ];
    let mut out = std::collections::BTreeMap::new();
    for (name, env) in settings {
        out.insert(*name, b.same(name, &argv, env).0);
    }
    let _ = std::fs::remove_dir_all(&dir);
    // Each setting does show under glibc (so the comparison means something).
    let base = &out["baseline"];
    let differs = |name: &str, text: &str| {
        assert!(out[name].contains(text) && !base.contains(text), "{} {name}: expected `{text}`:\n{}\nbaseline:\n{base}", b.dir, out[name]);
    };
    differs("perturb", "fresh malloc byte 0xa5");
    differs("perturb alias", "fresh malloc byte 0xa5");
    // 512K is above the default threshold (128K), below the one set.
    differs("mmap threshold", "malloc(512K) mmapped: no");
    differs("mmap threshold alias", "malloc(512K) mmapped: no");
    differs("stack cache off", "stack unmapped");
    assert_eq!(out["perturb out of range"], *base);
    assert_ne!(out["malloc check"], *base, "{}: malloc.check=3 had no effect", b.dir);
    assert_eq!(out["malloc check out of range"], *base);
    if b.arch == Arch::X86_64 {
        // qemu-user has no rseq; natively the kernel registers it.
        assert!(base.contains("main rseq registered") && base.contains("thread rseq registered"), "{base}");
        differs("rseq off", "__rseq_size 0, main rseq not registered");
        differs("rseq off", "thread rseq not registered");
    }
}

#[test]
fn effects_match_glibc_2_36_x86_64() {
    effects_case(&BUILDS[0]);
}

#[test]
fn effects_match_glibc_2_41_x86_64() {
    effects_case(&BUILDS[1]);
}

#[test]
fn effects_match_glibc_2_36_aarch64() {
    effects_case(&BUILDS[2]);
}

#[test]
fn effects_match_glibc_2_41_aarch64() {
    effects_case(&BUILDS[3]);
}

/// Copies `exe` twice into `dir`: one with the build's ld.so, one with
/// ld-cah as `PT_INTERP`, both finding the build's libc by `DT_RUNPATH`
/// (a world-readable copy: the set-uid runs are as `nobody`).
fn patched(b: &Build, dir: &Path, exe: &Path, name: &str) -> (PathBuf, PathBuf) {
    let libs = dir.join("libs");
    if !libs.exists() {
        std::fs::create_dir_all(&libs).unwrap();
        for f in ["libc.so.6", b.ld_so().file_name().unwrap().to_str().unwrap()] {
            std::fs::copy(b.libdir().join(f), libs.join(f)).unwrap();
            std::fs::set_permissions(libs.join(f), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::set_permissions(&libs, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut out = Vec::new();
    for (suffix, interp) in [("glibc", libs.join(b.ld_so().file_name().unwrap())), ("cah", b.cah())] {
        let p = dir.join(format!("{name}-{suffix}"));
        std::fs::copy(exe, &p).unwrap();
        let st = Command::new("patchelf").arg("--set-interpreter").arg(&interp).arg("--set-rpath").arg(&libs).arg(&p).status().unwrap();
        assert!(st.success(), "patchelf failed");
        out.push(p);
    }
    (out.remove(0), out.remove(0))
}

/// Runs `prog` set-uid root as uid/gid 65534 (so `AT_SECURE` is set).
fn as_nobody(prog: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    std::fs::set_permissions(prog, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(prog).args(args);
    run(&mut c, env)
}

const HOSTILE: &[(&str, &str)] = &[
    (
        "GLIBC_TUNABLES",
        "glibc.malloc.check=3:glibc.malloc.perturb=7:glibc.malloc.mmap_threshold=4096:glibc.pthread.rseq=0:foo=1:glibc.rtld.nns=3:glibc.malloc.tcache_count=2",
    ),
    ("MALLOC_CHECK_", "3"),
    ("MALLOC_PERTURB_", "42"),
    ("MALLOC_ARENA_MAX", "2"),
    ("MALLOC_MMAP_THRESHOLD_", "5"),
    ("LD_HWCAP_MASK", "1"),
    ("LD_BIND_NOW", "1"),
    ("LD_LIBRARY_PATH", "/tmp/evil"),
    ("TMPDIR", "/tmp/evil"),
    ("KEEP_ME", "1"),
];

fn secure_case(b: &Build) {
    cah_tests::need_root();
    let dir = work_dir(&format!("secure-{}", b.dir));
    let tun = b.compile(&dir, "tun", TUN_C);
    let (env_glibc, env_cah) = patched(b, &dir, Path::new("/usr/bin/env"), "env");
    let (tun_glibc, tun_cah) = patched(b, &dir, &tun, "tun");
    let tunables = b.tunables();
    let args = tun_args(b, &tunables);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    let reference = as_nobody(&env_glibc, &[], HOSTILE);
    assert_eq!(reference.2, Some(0), "{}: glibc run: {reference:?}", b.dir);
    assert!(reference.0.contains("KEEP_ME=1") && !reference.0.contains("LD_LIBRARY_PATH"), "glibc did not run set-uid: {reference:?}");
    assert_eq!(as_nobody(&env_cah, &[], HOSTILE), reference, "{}: environment of a set-uid program", b.dir);
    let reference = as_nobody(&tun_glibc, &args, HOSTILE);
    assert_eq!(reference.2, Some(0), "{}: glibc run: {reference:?}", b.dir);
    assert!(!reference.0.contains("cb="), "{}: a tunable applied in secure mode: {}", b.dir, reference.0);
    assert_eq!(as_nobody(&tun_cah, &args, HOSTILE), reference, "{}: tunables of a set-uid program", b.dir);

    bind_now_case(b, &dir);

    if b.new_abi {
        // glibc.rtld.enable_secure=1 (2.40): secure mode without set-uid.
        let env: Vec<(&str, &str)> = HOSTILE
            .iter()
            .map(|&(k, v)| if k == "GLIBC_TUNABLES" { (k, "glibc.malloc.check=1:glibc.rtld.enable_secure=1") } else { (k, v) })
            .collect();
        for (g, c, a) in [(&env_glibc, &env_cah, &[][..]), (&tun_glibc, &tun_cah, &args[..])] {
            std::fs::set_permissions(g, std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::set_permissions(c, std::fs::Permissions::from_mode(0o755)).unwrap();
            let reference = run(Command::new(g).args(a), &env);
            assert_eq!(reference.2, Some(0), "{}: glibc run: {reference:?}", b.dir);
            assert!(!reference.0.contains("GLIBC_TUNABLES") && !reference.0.contains("cb="), "{reference:?}");
            assert_eq!(run(Command::new(c).args(a), &env), reference, "{}: glibc.rtld.enable_secure=1", b.dir);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `LD_BIND_NOW=1` for a set-uid program whose library lacks a function it
/// calls last: bound at start the program is refused before it prints
/// anything; bound lazily it prints, then fails at the call. glibc 2.36
/// honours LD_BIND_NOW in secure mode; 2.41 has it on its unsecure list
/// and ignores it.
fn bind_now_case(b: &Build, dir: &Path) {
    let cc = b.arch.cc();
    let link = dir.join("link");
    std::fs::create_dir_all(&link).unwrap();
    let lib = |out: &Path, src: &str| {
        let c = dir.join("gone.c");
        std::fs::write(&c, src).unwrap();
        let st = Command::new(cc).args(["-shared", "-fPIC", "-o"]).arg(out).arg(&c).status().unwrap();
        assert!(st.success(), "{cc} -shared gone.c failed");
        std::fs::set_permissions(out, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    lib(&link.join("libgone.so"), "void gone(void) {}\nint here(void) { return 1; }\n");
    let c = dir.join("bind.c");
    std::fs::write(&c, "#include <stdio.h>\nvoid gone(void);\nint here(void);\nint main(void) { printf(\"here %d\\n\", here()); fflush(stdout); gone(); return 0; }\n").unwrap();
    let exe = dir.join("bind");
    let st = Command::new(cc).arg("-o").arg(&exe).arg(&c).arg("-L").arg(&link).args(["-lgone", "-Wl,-z,lazy"]).status().unwrap();
    assert!(st.success(), "{cc} bind.c failed");
    let (bind_glibc, bind_cah) = patched(b, dir, &exe, "bind");
    // The library the programs find (their DT_RUNPATH) has no `gone`.
    lib(&dir.join("libs/libgone.so"), "int here(void) { return 1; }\n");
    let expected = if b.new_abi { "here 1\n" } else { "" };
    let reference = as_nobody(&bind_glibc, &[], HOSTILE);
    assert_eq!((reference.0.as_str(), reference.2), (expected, Some(127)), "{}: glibc run: {reference:?}", b.dir);
    let cah = as_nobody(&bind_cah, &[], HOSTILE);
    assert_eq!((cah.0.as_str(), cah.2), (expected, Some(127)), "{}: LD_BIND_NOW in secure mode: {cah:?}", b.dir);
}

#[test]
fn secure_mode_matches_glibc_2_36() {
    secure_case(&BUILDS[0]);
}

#[test]
fn secure_mode_matches_glibc_2_41() {
    secure_case(&BUILDS[1]);
}
