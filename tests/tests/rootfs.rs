//! The programs of real Debian root file systems (`cargo xtask rootfs`:
//! debootstrap minbase of bullseye, bookworm, trixie and sid as the archive serves
//! them today), run inside each with `chroot` against the root's own
//! libraries, under the root's own ld.so and under ld-cah. Output and exit
//! status must agree. Needs root (chroot), which CI has.

use std::path::PathBuf;
use std::process::Command;

type Out = (String, String, Option<i32>);

fn rootfs(suite: &str) -> PathBuf {
    let r = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../target/rootfs/{suite}-amd64"));
    assert!(r.join("bin/bash").exists(), "{} missing: run `cargo xtask rootfs {suite}`", r.display());
    r
}

/// A root with ld-cah copied in and a directory with fixed contents and
/// times for ls; both are removed on drop. The tests of this file run in
/// parallel and share the roots: one `Root` at a time (a test once found
/// its `/tmp/cahtest/probe` removed by another test's drop).
struct Root {
    dir: PathBuf,
    _one_at_a_time: std::sync::MutexGuard<'static, ()>,
}

static ROOTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Root {
    fn new(suite: &str) -> Root {
        // A failed test poisons the lock; the roots are set up anew anyway.
        let guard = ROOTS.lock().unwrap_or_else(|e| e.into_inner());
        let dir = rootfs(suite);
        let loader = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/ld-cah/x86_64/ld-cah.so");
        assert!(loader.exists(), "run `cargo xtask build`");
        std::fs::copy(&loader, dir.join("ld-cah-test.so")).unwrap();
        let d = dir.join("tmp/cahtest");
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("a.txt"), "alpha\n").unwrap();
        std::fs::write(d.join("b.txt"), "beta\ngamma\n").unwrap();
        let touched = Command::new("touch")
            .args(["-d", "2001-02-03 04:05:06 UTC"])
            .arg(d.join("a.txt"))
            .arg(d.join("b.txt"))
            .arg(&d)
            .status()
            .unwrap();
        assert!(touched.success());
        Root { dir, _one_at_a_time: guard }
    }

    /// Runs `argv` inside the root, directly or through ld-cah.
    fn run(&self, cah: bool, argv: &[&str]) -> Out {
        let mut c = Command::new("/usr/sbin/chroot");
        c.arg(&self.dir);
        if cah {
            c.arg("/ld-cah-test.so");
        }
        let out = c
            .args(argv)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("LC_ALL", "C")
            .env("HOME", "/root")
            .envs(cah_tests::bind_now_env())
            .output()
            .expect("chroot runs (root needed)");
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned(), out.status.code())
    }

    fn same(&self, argv: &[&str]) {
        let reference = self.run(false, argv);
        assert_eq!(reference.2, Some(0), "{argv:?} fails in the root even under glibc: {reference:?}");
        assert_eq!(self.run(true, argv), reference, "{argv:?}: ld-cah differs from the root's ld.so");
    }

    /// The root's libc banner version (`2.41`).
    fn glibc_version(&self) -> String {
        let out = self.run(false, &["/usr/bin/getconf", "GNU_LIBC_VERSION"]);
        out.0.trim().strip_prefix("glibc ").unwrap_or_default().to_string()
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.dir.join("tmp/cahtest"));
        let _ = std::fs::remove_file(self.dir.join("ld-cah-test.so"));
    }
}

/// The corpus every supported release runs.
fn corpus(suite: &str, version: &str) {
    let r = Root::new(suite);
    assert_eq!(r.glibc_version(), version, "{suite} moved to another glibc: update this test and the tables");
    r.same(&["/bin/bash", "-c", "x=$((6*7)); for i in 1 2; do echo \"$i $x\"; done; echo $(printf '%s\\n' b a | sort)"]);
    r.same(&["/bin/ls", "-la", "--time-style=+%F", "/tmp/cahtest"]);
    r.same(&["/usr/bin/sha256sum", "/tmp/cahtest/a.txt", "/tmp/cahtest/b.txt"]);
    r.same(&["/bin/date", "-u", "-d", "@0"]);
    r.same(&["/usr/bin/perl", "-MPOSIX", "-e", "printf(\"%d %s\\n\", floor(2.5), join(',', sort qw(b c a)))"]);
    r.same(&["/usr/bin/getent", "passwd", "root"]);
    r.same(&["/bin/sh", "-c", "ls /nonexistent 2>&1; echo status=$?"]);
    r.same(&["/usr/bin/env", "-i", "FOO=1", "/bin/sh", "-c", "echo $FOO; ulimit -n >/dev/null; echo ok"]);
}

#[test]
fn bookworm_programs_run_against_their_own_glibc_2_36() {
    corpus("bookworm", "2.36");
}

#[test]
fn trixie_programs_run_against_their_own_glibc_2_41() {
    corpus("trixie", "2.41");
}

#[test]
fn sid_programs_run_against_their_own_glibc_2_43() {
    corpus("sid", "2.43");
}

/// A program that prints the usable-feature words libc publishes and, for
/// each symbol named on its command line (`lib:name`), where the IFUNC
/// resolver of that library put it, as an offset into the library.
const IFUNC_PROBE: &str = r#"#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <sys/platform/x86.h>
int main(int argc, char **argv) {
    for (unsigned i = 0; i < 10; i++) {
        const struct cpuid_feature *f = __x86_get_cpuid_feature_leaf(i);
        printf("leaf %u active %08x %08x %08x %08x\n", i, f->active_array[0], f->active_array[1], f->active_array[2], f->active_array[3]);
    }
    for (int i = 1; i < argc; i++) {
        char lib[64];
        const char *name = strchr(argv[i], ':');
        snprintf(lib, sizeof lib, "%.*s", (int)(name - argv[i]), argv[i]);
        void *h = dlopen(lib, RTLD_NOW);
        void *p = h ? dlsym(h, name + 1) : NULL;
        Dl_info d;
        if (p && dladdr(p, &d))
            printf("%s at %s+%#lx\n", argv[i], lib, (unsigned long)((char *)p - (char *)d.dli_fbase));
        else
            printf("%s missing\n", argv[i]);
    }
    return 0;
}
"#;

/// Every IFUNC a library of `root` exports at its default version, as
/// `lib:name` (from its dynamic symbol table, read by binutils).
fn ifuncs(root: &std::path::Path, lib: &str) -> Vec<String> {
    let path = root.join("usr/lib/x86_64-linux-gnu").join(lib);
    let out = Command::new("readelf").args(["--dyn-syms", "-W"]).arg(&path).output().unwrap();
    assert!(out.status.success(), "readelf {}: {out:?}", path.display());
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.split_whitespace().nth(3) == Some("IFUNC"))
        .filter_map(|l| l.split_whitespace().nth(7))
        // Compatibility versions (`name@VERSION`) are not for dlsym.
        .filter(|n| n.contains("@@") || !n.contains('@'))
        .map(|n| format!("{lib}:{}", n.split('@').next().unwrap_or(n)))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// libc's and libm's IFUNC resolvers choose by the CPU description the
/// loader fills in: the usable bits and the `preferred` tuning bits, whose
/// rules and bit order differ between releases. Every IFUNC of each root's
/// libc and libm must resolve to the implementation the root's own ld.so
/// gives on this machine. (bullseye's 2.31 is left out: ld-cah fills no
/// CPU description for it, so its IFUNCs take the baseline versions.)
#[test]
fn ifunc_choices_match_each_roots_glibc() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("probe.c");
    std::fs::write(&src, IFUNC_PROBE).unwrap();
    let exe = dir.path().join("probe");
    let built = Command::new("gcc").arg("-O1").arg("-o").arg(&exe).arg(&src).status().unwrap();
    assert!(built.success());
    for suite in ["bookworm", "trixie", "sid"] {
        let r = Root::new(suite);
        std::fs::copy(&exe, r.dir.join("tmp/cahtest/probe")).unwrap();
        let mut names = ifuncs(&r.dir, "libc.so.6");
        names.extend(ifuncs(&r.dir, "libm.so.6"));
        assert!(names.len() > 50, "{suite}: only {} IFUNCs found", names.len());
        let mut argv = vec!["/tmp/cahtest/probe"];
        argv.extend(names.iter().map(String::as_str));
        let reference = r.run(false, &argv);
        assert!(!reference.0.contains(" missing"), "{suite}: {}", reference.0);
        assert_eq!(reference.2, Some(0), "{suite}: {reference:?}");
        let ours = r.run(true, &argv);
        let differ: Vec<_> = reference.0.lines().zip(ours.0.lines()).filter(|(a, b)| a != b).collect();
        assert!(differ.is_empty() && ours.2 == Some(0), "{suite}: glibc then ld-cah: {differ:#?} ({:?})", ours.2);
    }
}

/// glibc 2.31: threads in libpthread.so.0, dlopen in libdl.so.2, no
/// `__libc_early_init`. Besides the corpus: a threaded sort (coreutils'
/// sort links libpthread and sorts with threads), dlopen through libdl
/// (perl's XS modules) and libc's own dlopen (NSS in getent).
#[test]
fn bullseye_programs_run_against_their_own_glibc_2_31() {
    corpus("bullseye", "2.31");
    let r = Root::new("bullseye");
    // Big enough for sort to use its threads (libpthread under ld-cah).
    let lines: String = (0..200_000u32).map(|i| format!("{}\n", i.wrapping_mul(2_654_435_761) % 1_000_003)).collect();
    std::fs::write(r.dir.join("tmp/cahtest/big.txt"), lines).unwrap();
    r.same(&["/usr/bin/sort", "--parallel=4", "-S", "64M", "-n", "/tmp/cahtest/big.txt"]);
    // C++ (libstdc++, unwinding through dl_iterate_phdr and the lock hooks).
    r.same(&["/usr/bin/apt-config", "dump"]);
    r.same(&["/usr/bin/dpkg-query", "-W"]);
    r.same(&[
        "/usr/bin/perl",
        "-MList::Util=sum",
        "-MSocket",
        "-MFcntl",
        "-e",
        "print sum(1..10), qq( ), inet_ntoa(inet_aton(q(127.1))), qq(\\n)",
    ]);
    // dlopen failing through libdl: dlerror's text is glibc's.
    r.same(&[
        "/usr/bin/perl",
        "-e",
        "require DynaLoader; my $h = DynaLoader::dl_load_file(q(/nonexistent/x.so)); print defined $h ? q(loaded) : DynaLoader::dl_error(), qq(\\n)",
    ]);
}

/// A root holding bullseye's `/bin/true` and a copy of its libc whose
/// banner names another distributor (`Xebian GLIBC 2.31-...`): a 2.31 that
/// is not Debian's, as Ubuntu's 2.31 is, must find no table, since before
/// 2.34 libc shows no layout facts but its banner and imports.
fn foreign_2_31_root(dir: &std::path::Path) -> PathBuf {
    let src = rootfs("bullseye");
    let root = dir.join("foreign-2.31");
    let libdir = root.join("lib/x86_64-linux-gnu");
    std::fs::create_dir_all(&libdir).unwrap();
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy(src.join("bin/true"), root.join("bin/true")).unwrap();
    let mut libc = std::fs::read(src.join("lib/x86_64-linux-gnu/libc.so.6")).unwrap();
    let key = b"GNU C Library (Debian GLIBC ";
    let at = libc.windows(key.len()).position(|w| w == key).expect("bullseye's libc names Debian in its banner");
    libc[at + b"GNU C Library (".len()] = b'X';
    std::fs::write(libdir.join("libc.so.6"), libc).unwrap();
    root
}

/// `cah` says it before the program fails: `patch` warns, `verify` fails
/// and `show` names the glibc, for a 2.31 that is not Debian's; bullseye's
/// 2.31 and trixie's 2.41 pass.
#[test]
fn cah_reports_a_glibc_without_a_table_before_it_runs() {
    let cah = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/cah");
    let dir = tempfile::tempdir().unwrap();
    let foreign = foreign_2_31_root(dir.path());
    for (suite, root, version, table) in
        [("foreign", foreign, "2.31", false), ("bullseye", rootfs("bullseye"), "2.31", true), ("trixie", rootfs("trixie"), "2.41", true)]
    {
        let out = dir.path().join(format!("true-{suite}"));
        let patched = Command::new(&cah)
            .arg("patch")
            .arg("--root")
            .arg(&root)
            .arg(root.join("bin/true"))
            .arg("-o")
            .arg(&out)
            .args(["--interp", "/usr/lib/ld-cah/ld-cah.so"])
            .output()
            .unwrap();
        assert!(patched.status.success(), "{patched:?}");
        let warned = String::from_utf8_lossy(&patched.stderr).contains("ld-cah cannot start this program");
        assert_eq!(warned, !table, "{suite}: {patched:?}");
        let verify = Command::new(&cah).arg("verify").arg("--root").arg(&root).arg(&out).output().unwrap();
        let text = String::from_utf8_lossy(&verify.stdout).into_owned();
        assert_eq!(verify.status.success(), table, "{suite}: {text}");
        assert_eq!(text.lines().any(|l| l.starts_with("no-table  libc.so.6  glibc 2.31 (")), !table, "{suite}: {text}");
        let show = Command::new(&cah).arg("show").arg("--root").arg(&root).arg(&out).output().unwrap();
        let text = String::from_utf8_lossy(&show.stdout).into_owned();
        let want = format!("glibc {version} (");
        assert!(text.contains(&want) && text.contains(if table { "layout table built in" } else { "no layout table" }), "{suite}: {text}");
    }
}

/// Under ld-cah itself, the same foreign 2.31 is refused with one line.
#[test]
fn a_2_31_of_another_distributor_is_refused_with_one_line() {
    let dir = tempfile::tempdir_in(rootfs("bullseye").join("tmp")).unwrap();
    let root = foreign_2_31_root(dir.path());
    let loader = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/ld-cah/x86_64/ld-cah.so");
    std::fs::copy(&loader, root.join("ld-cah-test.so")).unwrap();
    // The copy may still be open for writing in a child another test's
    // thread forked meanwhile: chroot's exec of it then fails with ETXTBSY
    // (exit 126) until that child execs in turn. Wait it out.
    let mut tries = 0;
    let out = loop {
        let out = Command::new("/usr/sbin/chroot")
            .arg(&root)
            .arg("/ld-cah-test.so")
            .arg("/bin/true")
            .env_clear()
            .output()
            .expect("chroot runs (root needed)");
        if out.status.code() == Some(126) && String::from_utf8_lossy(&out.stderr).contains("Text file busy") && tries < 50 {
            tries += 1;
            std::thread::sleep(std::time::Duration::from_millis(20));
            continue;
        }
        break out;
    };
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(127), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("ld-cah.so: error: /lib/x86_64-linux-gnu/libc.so.6: glibc 2.31 (build id "), "{err}");
    assert!(err.contains("has no layout table"), "{err}");
}
