//! Content addressing end to end: programs patched with `cah patch` (a
//! closure lock and ld-cah.so as `PT_INTERP`) run only with the locked
//! files, on x86_64 and on aarch64 (under `qemu-aarch64`), and the
//! per-inode hash cache never makes a wrong file pass and never stops a
//! program from starting.
//!
//! The test program is built here (C sources below), because `cah patch`
//! needs room for two more program headers in the first segment, which the
//! tiny fixtures of `target/fixtures` do not have. It is an ordinary glibc
//! program: `prog` needs `libwho.so` (`DT_RUNPATH` `$ORIGIN/lib`), which
//! needs `libinner.so` (`$ORIGIN`), and both need `libc.so.6`. A second
//! build of `libwho.so` (same name, same size, other content) plays the
//! impostor. On aarch64 the program is patched inside a small sysroot
//! holding the Debian arm64 libc the tests run with (`cah patch --root`), so
//! the lock has the digest of the libc `qemu-aarch64 -L` gives the loader.
//!
//! Every run points the loader at a cache directory of its own with
//! `CAH_CACHE_DIR`, so nothing here touches `/run`. `CAH_DEBUG=verify`
//! makes the loader say, per file, whether its digest came from the cache
//! or was hashed.
//!
//! `CAH_TESTS_ARCH=x86_64|aarch64` narrows a run to one arch.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use cah_tests::{built_cah, chmod, execute, loader_path, root, Arch, Outcome, AARCH64_SYSROOT};

const PROG_C: &str = r#"
#include <stdio.h>
const char *who(void);
const char *who_inner(void);
int main(int argc, char **argv)
{
	printf("who: %s, %s\n", who(), who_inner());
	for (int i = 1; i < argc; i++)
		printf("arg: %s\n", argv[i]);
	return 0;
}
"#;

const WHO_C: &str = r#"
const char *inner(void);
const char *who(void) { return WHO; }
const char *who_inner(void) { return inner(); }
"#;

/// `dl [NAME [fds]]`: dlopens NAME (default `libwho.so`) and calls its
/// `who`; with `fds`, lists its open descriptors before and after.
const DL_C: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <dirent.h>
#include <dlfcn.h>
static void fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	printf("fds:");
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && atoi(e->d_name) != dirfd(d))
			printf(" %s", e->d_name);
	printf("\n");
	closedir(d);
}
int main(int argc, char **argv)
{
	if (argc > 2)
		fds();
	void *h = dlopen(argc > 1 ? argv[1] : "libwho.so", RTLD_NOW);
	if (!h) {
		printf("dlopen failed: %s\n", dlerror());
		return 1;
	}
	const char *(*who)(void) = (const char *(*)(void))dlsym(h, "who");
	printf("who: %s\n", who());
	if (argc > 2)
		fds();
	return 0;
}
"#;

const INNER_C: &str = r#"
const char *inner(void) { return "inner-1"; }
"#;

/// What the program prints when it runs with the locked files.
const GOOD: &str = "who: build-a, inner-1\n";

fn arches() -> Vec<Arch> {
    let only = std::env::var("CAH_TESTS_ARCH").ok().filter(|v| !v.is_empty());
    Arch::ALL.into_iter().filter(|a| only.as_deref().is_none_or(|o| o == a.name())).collect()
}

fn sh(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);
static SWEEP: std::sync::Once = std::sync::Once::new();

/// Removes scratch directories (`<name>-<pid>[-<n>]`, kept when a test
/// failed) of test processes no longer running, once ten minutes old.
fn sweep() {
    SWEEP.call_once(|| {
        let Ok(entries) = std::fs::read_dir(root().join("target/cah-tests/verify")) else { return };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = name.split('-').filter_map(|p| p.parse::<u32>().ok()).find(|&p| p > 1) else { continue };
            let old = e.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
            if pid != std::process::id() && old.is_some_and(|a| a.as_secs() > 600) && !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    });
}

/// One patched copy of the test program, in a scratch directory of its own
/// (kept if the test fails, removed by [`App::done`]).
struct App {
    arch: Arch,
    /// The scratch directory.
    dir: PathBuf,
    /// The program's directory: `prog`, `lib/libwho.so`, `lib/libinner.so`.
    app: PathBuf,
    /// The cache directory every run uses (`CAH_CACHE_DIR`).
    cache: PathBuf,
}

impl App {
    /// Builds and patches the program for `arch`; `patch_args` go to
    /// `cah patch` (e.g. `--strict`; `STORE` stands for `<scratch>/store`).
    fn new(test: &str, arch: Arch, patch_args: &[&str]) -> App {
        sweep();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = root().join("target/cah-tests/verify").join(format!("{test}-{}-{}-{n}", arch.name(), std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let sysroot = dir.join("root");
        let app = match arch {
            Arch::X86_64 => dir.join("app"),
            Arch::Aarch64 => sysroot.join("app"),
        };
        let lib = app.join("lib");
        std::fs::create_dir_all(&lib).unwrap();
        let src = dir.join("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::create_dir_all(dir.join("alt")).unwrap();
        write(&src.join("prog.c"), PROG_C);
        write(&src.join("who.c"), WHO_C);
        write(&src.join("inner.c"), INNER_C);
        let cc = arch.cc();
        let build = |args: &[&str]| {
            sh(Command::new(cc).args(args).current_dir(&dir)).unwrap_or_else(|e| panic!("building the test program: {e}"));
        };
        let l = lib.to_str().unwrap();
        build(&["-shared", "-fPIC", "-o", &format!("{l}/libinner.so"), "src/inner.c", "-Wl,-soname,libinner.so"]);
        for (out, who) in [(format!("{l}/libwho.so"), "build-a"), (dir.join("alt/libwho.so").display().to_string(), "build-b")] {
            build(&[
                "-shared",
                "-fPIC",
                "-o",
                &out,
                "src/who.c",
                &format!("-DWHO=\"{who}\""),
                "-Wl,-soname,libwho.so",
                &format!("-L{l}"),
                "-linner",
                "-Wl,-rpath,$ORIGIN",
            ]);
        }
        build(&["-shared", "-fPIC", "-o", "alt/libextra.so", "src/inner.c", "-Wl,-soname,libextra.so"]);
        let prog = app.join("prog");
        build(&[
            "-o",
            prog.to_str().unwrap(),
            "src/prog.c",
            &format!("-L{l}"),
            "-lwho",
            "-Wl,-rpath,$ORIGIN/lib",
            &format!("-Wl,-rpath-link,{l}"),
        ]);
        std::fs::copy(&prog, app.join("prog.orig")).unwrap();
        let mut patch = Command::new(built_cah());
        patch.arg("patch").arg(&prog).arg("--interp").arg(loader_path(arch));
        patch.args(patch_args.iter().map(|a| if *a == "STORE" { dir.join("store").display().to_string() } else { a.to_string() }));
        if arch == Arch::Aarch64 {
            // The libc the program runs with, inside the root it is patched in.
            let libdir = sysroot.join("lib/aarch64-linux-gnu");
            std::fs::create_dir_all(&libdir).unwrap();
            std::fs::copy(Path::new(AARCH64_SYSROOT).join("lib/aarch64-linux-gnu/libc.so.6"), libdir.join("libc.so.6")).unwrap();
            patch.arg("--root").arg(&sysroot);
        }
        sh(&mut patch).unwrap_or_else(|e| panic!("cah patch: {e}"));
        let cache = dir.join("cache");
        std::fs::create_dir_all(&cache).unwrap();
        chmod(&cache, 0o755);
        App { arch, dir, app, cache }
    }

    /// Runs the compiler for this arch in the scratch directory.
    fn cc(&self, args: &[&str]) {
        sh(Command::new(self.arch.cc()).args(args).current_dir(&self.dir)).unwrap_or_else(|e| panic!("building a test program: {e}"));
    }

    /// `cah patch FILE ARGS` (inside the sysroot on aarch64).
    fn patch(&self, file: &Path, args: &[&str]) -> Result<String, String> {
        let mut patch = Command::new(built_cah());
        patch.arg("patch").arg(file).args(args);
        if self.arch == Arch::Aarch64 {
            patch.arg("--root").arg(self.dir.join("root"));
        }
        sh(&mut patch)
    }

    /// Builds `dl` beside `prog` and patches it, locking `libwho.so` as a
    /// name it dlopens (`--also`).
    fn build_dl(&self) -> PathBuf {
        write(&self.dir.join("src/dl.c"), DL_C);
        let dl = self.app.join("dl");
        self.cc(&["-o", dl.to_str().unwrap(), "src/dl.c", "-Wl,-rpath,$ORIGIN/lib"]);
        let interp = loader_path(self.arch).display().to_string();
        self.patch(&dl, &["--interp", &interp, "--also", "libwho.so"]).unwrap_or_else(|e| panic!("cah patch: {e}"));
        dl
    }

    fn prog(&self) -> PathBuf {
        self.app.join("prog")
    }

    fn lib(&self, name: &str) -> PathBuf {
        self.app.join("lib").join(name)
    }

    fn impostor(&self) -> PathBuf {
        self.dir.join("alt/libwho.so")
    }

    /// The environment of every run: the test's cache directory.
    fn env(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env = vec![("CAH_CACHE_DIR".to_string(), self.cache.display().to_string())];
        for (k, v) in extra {
            env.retain(|(key, _)| key != k);
            env.push((k.to_string(), v.to_string()));
        }
        env
    }

    /// Runs the patched program (ld-cah.so as its `PT_INTERP`).
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Outcome {
        self.run_path(&self.prog(), args, env)
    }

    fn run_path(&self, prog: &Path, args: &[&str], env: &[(&str, &str)]) -> Outcome {
        let mut argv = self.arch.runner();
        let mut env = self.env(env);
        if self.arch == Arch::Aarch64 {
            // For the guest only: the host's ld.so would apply them to qemu.
            for var in ["LD_PRELOAD", "LD_LIBRARY_PATH"] {
                if let Some(i) = env.iter().position(|(k, _)| k == var) {
                    let (k, v) = env.remove(i);
                    argv.push("-E".into());
                    argv.push(format!("{k}={v}"));
                }
            }
        }
        argv.push(prog.display().to_string());
        argv.extend(args.iter().map(|s| s.to_string()));
        execute(&argv, &env)
    }

    /// Runs `ld-cah.so OPTS PROG`.
    fn loader(&self, opts: &[&str], prog: &Path, env: &[(&str, &str)]) -> Outcome {
        let mut argv = self.arch.runner();
        argv.push(loader_path(self.arch).display().to_string());
        argv.extend(opts.iter().map(|s| s.to_string()));
        argv.push(prog.display().to_string());
        execute(&argv, &self.env(env))
    }

    /// Runs `argv` (prefixed with the arch's runner) inside a private mount
    /// namespace after `setup` (a shell script; `$D` is a fresh tmpfs of
    /// `size`, mounted at `<scratch>/mnt`).
    fn in_tmpfs(&self, size: &str, setup: &str, argv: &[String], env: &[(&str, &str)]) -> Outcome {
        let mnt = self.dir.join("mnt");
        std::fs::create_dir_all(&mnt).unwrap();
        let script = format!("set -e; D=\"$0\"; mount -t tmpfs -o size={size},mode=0755 tmpfs \"$D\"; {setup}; exec \"$@\"");
        let mut full = vec!["unshare".to_string(), "-rm".into(), "sh".into(), "-c".into(), script, mnt.display().to_string()];
        full.extend(self.arch.runner());
        full.extend(argv.iter().cloned());
        let mut env = self.env(env);
        env.push(("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into()));
        execute(&full, &env)
    }

    /// The digest of a file, as `cah` computes it.
    fn digest(&self, file: &Path) -> String {
        let out = sh(Command::new(built_cah()).args(["cache", "add", "--file"]).arg(self.dir.join("digests/hashes")).arg(file))
            .unwrap_or_else(|e| panic!("cah cache add: {e}"));
        out.get(..64).unwrap_or_else(|| panic!("cah cache add printed {out:?}")).to_string()
    }

    fn cah(&self, args: &[&str]) -> Result<String, String> {
        sh(Command::new(built_cah()).args(args))
    }

    fn cache_file(&self) -> PathBuf {
        self.cache.join("hashes")
    }

    /// `cah cache stats --json` as (key, value) numbers.
    fn stat(&self, key: &str) -> u64 {
        let out = self.cah(&["cache", "stats", "--json", "--file", self.cache_file().to_str().unwrap()]).unwrap();
        let at = out.find(&format!("\"{key}\": ")).unwrap_or_else(|| panic!("no {key} in {out}"));
        out[at + key.len() + 4..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap()
    }

    /// The error line for `libwho.so` not matching, the candidates being
    /// `tried` (path, digest).
    fn no_match_line(&self, prog: &Path, want: &str, tried: &[(PathBuf, String)]) -> String {
        let list: Vec<String> = tried.iter().map(|(p, d)| format!("{} (blake3:{d})", p.display())).collect();
        format!("ld-cah.so: error: {}: libwho.so (blake3:{want}): no matching file; tried {}; fetch it by digest with `cah fetch PROG --from URL`\n", prog.display(), list.join(", "))
    }

    fn done(self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Collects failures of one test over both arches.
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    fn check(&mut self, ok: bool, arch: Arch, what: &str, out: &Outcome) {
        if !ok {
            self.0.push(format!("[{}] {what}\n{}", arch.name(), out.report()));
        }
    }

    fn note(&mut self, arch: Arch, what: String) {
        self.0.push(format!("[{}] {what}", arch.name()));
    }

    fn finish(self, test: &str) {
        if !self.0.is_empty() {
            panic!("{test}: {} failure(s):\n\n{}", self.0.len(), self.0.join("\n\n"));
        }
    }
}

fn ran_ok(out: &Outcome, stdout: &str) -> bool {
    out.status == Some(0) && out.stdout == stdout
}

fn refused_with(out: &Outcome, line: &str) -> bool {
    out.status == Some(127) && out.stdout.is_empty() && out.stderr == line
}

/// `CAH_DEBUG=verify` lines for `name`: its verdict and where the digest
/// came from.
fn verdicts<'a>(out: &'a Outcome, name: &str) -> Vec<&'a str> {
    let prefix = format!("ld-cah.so: verify: {name}: ");
    out.stderr.lines().filter(|l| l.starts_with(&prefix)).collect()
}

/// Turns binding plans off, for the tests of the hash cache itself: a
/// plan recorded by an earlier start vouches for its closure without the
/// cache (`plan_vouches_only_for_the_files_it_was_recorded_for`).
const NO_PLAN: (&str, &str) = ("CAH_PLAN", "0");

fn all_from(out: &Outcome, source: &str) -> bool {
    ["libwho.so", "libinner.so", "libc.so.6"].iter().all(|n| {
        let v = verdicts(out, n);
        v.len() == 1 && v[0].ends_with(&format!("({source}), ok"))
    })
}

#[test]
fn locked_program_runs_then_hits_the_cache() {
    let mut f = Failures::default();
    for arch in arches() {
        let app = App::new("runs", arch, &[]);
        let debug = [("CAH_DEBUG", "verify")];
        let first = app.run(&["x"], &debug);
        f.check(ran_ok(&first, &format!("{GOOD}arg: x\n")), arch, "the patched program must run", &first);
        f.check(all_from(&first, "hashed"), arch, "a cold start hashes every locked file", &first);
        f.check(
            first.stderr.contains(&format!("hash cache {}/hashes: created", app.cache.display())),
            arch,
            "the cache file is created",
            &first,
        );
        let second = app.run(&[], &debug);
        f.check(ran_ok(&second, GOOD), arch, "second run", &second);
        f.check(all_from(&second, "binding plan"), arch, "a warm start: the binding plan vouches for every locked file", &second);
        let second = app.run(&[], &[debug[0], NO_PLAN]);
        f.check(ran_ok(&second, GOOD), arch, "a run without plans", &second);
        f.check(all_from(&second, "cache"), arch, "a warm start without plans takes every digest from the cache", &second);
        // Without CAH_DEBUG nothing is said, and a warm start writes
        // nothing to the shared cache file: same bytes, same mtime.
        let snapshot = || {
            let file = app.cache_file();
            (std::fs::read(&file).ok(), std::fs::metadata(&file).and_then(|m| m.modified()).ok())
        };
        let before = snapshot();
        let quiet = app.run(&[], &[]);
        f.check(ran_ok(&quiet, GOOD) && quiet.stderr.is_empty(), arch, "a verified run is silent", &quiet);
        f.check(before.0.is_some() && snapshot() == before, arch, "a warm start leaves the cache file untouched", &quiet);

        let verify = app.loader(&["--verify"], &app.prog(), &[]);
        f.check(verify.status == Some(0) && verify.stdout.is_empty() && verify.stderr.is_empty(), arch, "--verify", &verify);
        let list = app.loader(&["--list"], &app.prog(), &[]);
        for (name, path) in [("libwho.so", app.lib("libwho.so")), ("libinner.so", app.lib("libinner.so"))] {
            let want = format!("\t{name} => {} (0x", path.display());
            let digest = app.digest(&path);
            let ok = list.stdout.lines().any(|l| l.starts_with(&want) && l.ends_with(&format!(") blake3:{digest} ok (cache)")));
            f.check(ok && list.status == Some(0), arch, &format!("--list shows {name}'s digest and verdict"), &list);
        }
        let libc_line = list.stdout.lines().find(|l| l.starts_with("\tlibc.so.6 => "));
        f.check(libc_line.is_some_and(|l| l.ends_with(" ok (cache)")), arch, "--list shows libc's verdict", &list);
        match app.cah(&["cache", "verify", "--file", app.cache_file().to_str().unwrap()]) {
            Ok(out) if out.contains(", 0 busy, 0 corrupt slots") => {}
            other => f.note(arch, format!("cah cache verify: {other:?}")),
        }
        if f.0.is_empty() {
            app.done();
        }
    }
    f.finish("locked_program_runs_then_hits_the_cache");
}

#[test]
fn real_programs_run_verified() {
    if !arches().contains(&Arch::X86_64) {
        return;
    }
    let mut f = Failures::default();
    let dir = root().join(format!("target/cah-tests/verify/real-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cache = dir.join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    chmod(&cache, 0o755);
    for (prog, args, want) in
        [("/bin/bash", vec!["-c", "echo $((6 * 7))"], "42\n"), ("/usr/bin/python3", vec!["-c", "print(sum(range(10)))"], "45\n")]
    {
        if !Path::new(prog).exists() {
            f.note(Arch::X86_64, format!("{prog} is not installed"));
            continue;
        }
        let out = dir.join(Path::new(prog).file_name().unwrap());
        let patched =
            sh(Command::new(built_cah()).arg("patch").arg(prog).arg("-o").arg(&out).arg("--interp").arg(loader_path(Arch::X86_64)));
        if let Err(e) = patched {
            f.note(Arch::X86_64, format!("cah patch {prog}: {e}"));
            continue;
        }
        let mut argv = vec![out.display().to_string()];
        argv.extend(args.iter().map(|s| s.to_string()));
        // A cache of its own, so the cold start hashes every file.
        let own = cache.join(Path::new(prog).file_name().unwrap());
        std::fs::create_dir_all(&own).unwrap();
        chmod(&own, 0o755);
        let env = vec![("CAH_CACHE_DIR".to_string(), own.display().to_string())];
        for (round, source) in [("cold", "(hashed), ok"), ("warm", "(binding plan), ok"), ("warm, no plan", "(cache), ok")] {
            let mut e = env.clone();
            e.push(("CAH_DEBUG".into(), "verify".into()));
            if round == "warm, no plan" {
                e.push((NO_PLAN.0.into(), NO_PLAN.1.into()));
            }
            let r = execute(&argv, &e);
            let lines: Vec<&str> = r.stderr.lines().filter(|l| l.contains(": blake3:")).collect();
            let ok = r.status == Some(0)
                && r.stdout == want
                && lines.iter().any(|l| l.starts_with("ld-cah.so: verify: libc.so.6: "))
                && lines.iter().all(|l| l.ends_with(source));
            f.check(ok, Arch::X86_64, &format!("{prog} patched, {round} start: every locked file {source}"), &r);
        }
    }
    if f.0.is_empty() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    f.finish("real_programs_run_verified");
}

#[test]
fn a_different_build_of_the_same_name_is_refused() {
    let mut f = Failures::default();
    for arch in arches() {
        let app = App::new("other-build", arch, &["--store", "STORE"]);
        let lib = app.lib("libwho.so");
        let want = app.digest(&lib);
        let got = app.digest(&app.impostor());
        assert_eq!(
            std::fs::metadata(&lib).unwrap().len(),
            std::fs::metadata(app.impostor()).unwrap().len(),
            "the two builds should have the same size"
        );
        // The right build, kept aside; the impostor takes its place.
        let right = app.dir.join("right");
        std::fs::create_dir_all(&right).unwrap();
        std::fs::copy(&lib, right.join("libwho.so")).unwrap();
        std::fs::copy(app.impostor(), &lib).unwrap();

        let line = app.no_match_line(&app.prog(), &want, &[(lib.clone(), got.clone())]);
        let out = app.run(&[], &[]);
        f.check(refused_with(&out, &line), arch, &format!("refused with exactly:\n  {line}"), &out);
        let out = app.loader(&["--verify"], &app.prog(), &[]);
        f.check(refused_with(&out, &line), arch, "--verify refuses with the same line", &out);
        let out = app.loader(&["--list"], &app.prog(), &[]);
        f.check(refused_with(&out, &line), arch, "--list refuses with the same line", &out);
        // Direct mode names the program as given.
        let out = app.loader(&[], &app.prog(), &[]);
        f.check(refused_with(&out, &line), arch, "ld-cah.so PROG refuses too", &out);

        // A candidate that matches later in the search order is taken: the
        // impostor in LD_LIBRARY_PATH (searched first) is passed over for
        // the right build in DT_RUNPATH.
        std::fs::copy(right.join("libwho.so"), &lib).unwrap();
        let lp = app.dir.join("alt").display().to_string();
        let out = app.run(&[], &[("LD_LIBRARY_PATH", &lp), ("CAH_DEBUG", "verify")]);
        let passed = verdicts(&out, "libwho.so");
        f.check(
            ran_ok(&out, GOOD)
                && passed.len() == 2
                && passed[0].contains(&format!("{lp}/libwho.so: blake3:{got}"))
                && passed[0].ends_with("mismatch")
                && passed[1].ends_with(", ok"),
            arch,
            "the first matching candidate wins",
            &out,
        );
        // Both candidates wrong: both named, in search order.
        std::fs::copy(app.impostor(), &lib).unwrap();
        let line2 =
            app.no_match_line(&app.prog(), &want, &[(PathBuf::from(format!("{lp}/libwho.so")), got.clone()), (lib.clone(), got.clone())]);
        let out = app.run(&[], &[("LD_LIBRARY_PATH", &lp)]);
        f.check(refused_with(&out, &line2), arch, &format!("every candidate is named:\n  {line2}"), &out);

        // The store (`cah patch --store`) is tried first, by digest.
        let store = app.dir.join("store");
        let store_s = store.display().to_string();
        let out = app.run(&[], &[("CAH_STORE", &store_s)]);
        f.check(ran_ok(&out, GOOD), arch, "the locked files are found in the store", &out);
        let list = app.loader(&["--list"], &app.prog(), &[("CAH_STORE", &store_s)]);
        let in_store = format!("\tlibwho.so => {store_s}/{want} (0x");
        f.check(
            list.stdout.lines().any(|l| l.starts_with(&in_store) && l.ends_with(&format!("blake3:{want} ok (store)"))),
            arch,
            "--list says libwho.so came from the store",
            &list,
        );
        // A store file whose content is not its name is rejected, and named.
        let stored = store.join(&want);
        chmod(&stored, 0o644);
        std::fs::copy(app.impostor(), &stored).unwrap();
        let line3 = app.no_match_line(&app.prog(), &want, &[(stored.clone(), got.clone()), (lib.clone(), got.clone())]);
        let out = app.run(&[], &[("CAH_STORE", &store_s)]);
        f.check(refused_with(&out, &line3), arch, &format!("a bad store file is rejected:\n  {line3}"), &out);
        if f.0.is_empty() {
            app.done();
        }
    }
    f.finish("a_different_build_of_the_same_name_is_refused");
}

/// Replaces `from` with `to` (same length) in `path`, in place (same
/// inode, same size), and puts the modification time back.
fn edit_in_place(path: &Path, from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let meta = std::fs::metadata(path).unwrap();
    let mut data = std::fs::read(path).unwrap();
    let at = data.windows(from.len()).position(|w| w == from).expect("string not in the file");
    data[at..at + to.len()].copy_from_slice(to);
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        file.seek(SeekFrom::Start(at as u64)).unwrap();
        file.write_all(to).unwrap();
    }
    let mtime = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::new(meta.mtime() as u64, meta.mtime_nsec() as u32);
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(mtime).unwrap();
    let after = std::fs::metadata(path).unwrap();
    assert_eq!((after.ino(), after.len(), after.mtime(), after.mtime_nsec()), (meta.ino(), meta.len(), meta.mtime(), meta.mtime_nsec()));
}

#[test]
fn a_library_modified_in_place_is_refused_and_its_stale_entry_not_trusted() {
    let mut f = Failures::default();
    for arch in arches() {
        let app = App::new("in-place", arch, &[]);
        let lib = app.lib("libwho.so");
        let want = app.digest(&lib);
        // Warm the cache: the entry for libwho.so's identity is there.
        let out = app.run(&[], &[]);
        f.check(ran_ok(&out, GOOD), arch, "cold start", &out);
        let out = app.run(&[], &[("CAH_DEBUG", "verify")]);
        f.check(all_from(&out, "binding plan"), arch, "a warm start: its binding plan vouches for every file", &out);

        // Same inode, same size, same mtime, other content.
        edit_in_place(&lib, b"build-a", b"build-x");
        let got = app.digest(&lib);
        let line = app.no_match_line(&app.prog(), &want, &[(lib.clone(), got.clone())]);
        let out = app.run(&[], &[("CAH_DEBUG", "verify")]);
        let v = verdicts(&out, "libwho.so");
        f.check(
            out.status == Some(127)
                && v.len() == 1
                && v[0].ends_with(&format!("blake3:{got} (hashed), mismatch"))
                && out.stderr.ends_with(&line),
            arch,
            "the stale cache entry is not trusted: the file is hashed again, and refused",
            &out,
        );
        // (The new identity's digest is cached now: a refusal is cheap too.)
        let out = app.run(&[], &[]);
        f.check(refused_with(&out, &line), arch, &format!("refused with exactly:\n  {line}"), &out);
        // The old content back (same size, mtime put back once more): the
        // identity changed again (ctime), so it is hashed, and it matches.
        edit_in_place(&lib, b"build-x", b"build-a");
        let out = app.run(&[], &[("CAH_DEBUG", "verify")]);
        let v = verdicts(&out, "libwho.so");
        f.check(ran_ok(&out, GOOD) && v.len() == 1 && v[0].ends_with("(hashed), ok"), arch, "restored content runs after a re-hash", &out);
        match app.cah(&["cache", "verify", "--file", app.cache_file().to_str().unwrap()]) {
            Ok(out) if out.contains(", 0 busy, 0 corrupt slots") => {}
            other => f.note(arch, format!("cah cache verify: {other:?}")),
        }
        if f.0.is_empty() {
            app.done();
        }
    }
    f.finish("a_library_modified_in_place_is_refused_and_its_stale_entry_not_trusted");
}

/// A start-up takes the files of a locked closure on trust, then lets the
/// binding plan recorded for exactly those files (their identities and the
/// digests they were accepted for) vouch for them; without such a plan it
/// confirms each from the cache or by hashing, and loads the closure again
/// when one is not the locked file.
#[test]
fn plan_vouches_only_for_the_files_it_was_recorded_for() {
    let mut f = Failures::default();
    for arch in arches() {
        let app = App::new("vouch", arch, &[]);
        let debug = ("CAH_DEBUG", "verify");
        let out = app.run(&[], &[debug]);
        f.check(ran_ok(&out, GOOD) && all_from(&out, "hashed"), arch, "cold start: every file hashed", &out);
        // The plan alone vouches: no cache file is opened, or made.
        std::fs::remove_file(app.cache_file()).unwrap();
        let out = app.run(&[], &[debug]);
        f.check(ran_ok(&out, GOOD) && all_from(&out, "binding plan"), arch, "warm start, the cache file gone: the plan vouches", &out);
        f.check(!app.cache_file().exists(), arch, "and no cache file was made", &out);

        // Another build at the same path (same size, written in place): the
        // plan no longer matches the closure, the file is hashed and
        // refused, exactly as without plans.
        let lib = app.lib("libwho.so");
        let want = app.digest(&lib);
        let got = app.digest(&app.impostor());
        let right = app.dir.join("right-libwho.so");
        std::fs::copy(&lib, &right).unwrap();
        std::fs::copy(app.impostor(), &lib).unwrap();
        let line = app.no_match_line(&app.prog(), &want, &[(lib.clone(), got.clone())]);
        let out = app.run(&[], &[debug]);
        let v = verdicts(&out, "libwho.so");
        f.check(
            out.status == Some(127)
                && out.stderr.ends_with(&line)
                && v.len() == 1
                && v[0].ends_with(&format!("blake3:{got} (hashed), mismatch"))
                && out.stderr.contains("ld-cah.so: verify: a file taken on trust is not the locked one: loading again\n"),
            arch,
            "a changed library: hashed once, refused by the search made again",
            &out,
        );
        let out = app.run(&[], &[]);
        f.check(refused_with(&out, &line), arch, &format!("refused with exactly:\n  {line}"), &out);
        // A library loaded unlocked (a preload, libm.so.6) that the search
        // also finds under a locked name (a hard link named libwho.so) is
        // taken on trust like a file mapped then, and found wrong: the
        // search goes on to the right build.
        std::fs::copy(&right, &lib).unwrap();
        let (extra, alias) = (app.dir.join("extra"), app.dir.join("alias"));
        std::fs::create_dir_all(&extra).unwrap();
        std::fs::create_dir_all(&alias).unwrap();
        let sysroot = if arch == Arch::Aarch64 { AARCH64_SYSROOT } else { "" };
        std::fs::copy(format!("{sysroot}/lib/{}/libm.so.6", arch.triplet()), extra.join("libm.so.6")).unwrap();
        std::fs::hard_link(extra.join("libm.so.6"), alias.join("libwho.so")).unwrap();
        let (libm, alias) = (extra.join("libm.so.6").display().to_string(), alias.display().to_string());
        for plans in ["1", "0"] {
            let out = app.run(&[], &[("LD_PRELOAD", &libm), ("LD_LIBRARY_PATH", &alias), ("CAH_PLAN", plans)]);
            f.check(ran_ok(&out, GOOD), arch, &format!("a preload found again under a locked name, CAH_PLAN={plans}"), &out);
        }
        std::fs::copy(app.impostor(), &lib).unwrap();
        // The right build back (a new identity): confirmed by hashing,
        // then vouched for by the plan that start records.
        std::fs::copy(&right, &lib).unwrap();
        let out = app.run(&[], &[debug]);
        let v = verdicts(&out, "libwho.so");
        f.check(ran_ok(&out, GOOD) && v.len() == 1 && v[0].ends_with("(hashed), ok"), arch, "the right build: hashed", &out);
        let out = app.run(&[], &[debug]);
        f.check(ran_ok(&out, GOOD) && all_from(&out, "binding plan"), arch, "then vouched for by its new plan", &out);
        if f.0.is_empty() {
            app.done();
        }
    }
    f.finish("plan_vouches_only_for_the_files_it_was_recorded_for");
}

#[test]
fn an_untrusted_cache_file_is_ignored() {
    let mut f = Failures::default();
    for arch in arches() {
        let app = App::new("untrusted", arch, &[]);
        let debug = [("CAH_DEBUG", "verify"), NO_PLAN];
        let out = app.run(&[], &debug);
        f.check(ran_ok(&out, GOOD), arch, "cold start", &out);
        let file = app.cache_file();
        let inserts = app.stat("inserts");
        let misses = app.stat("misses");

        // Writable by others: not read, not written.
        chmod(&file, 0o646);
        for _ in 0..2 {
            let out = app.run(&[], &debug);
            let ok = ran_ok(&out, GOOD)
                && out.stderr.contains(&format!("hash cache {}: writable by group or others", file.display()))
                && all_from(&out, "hashed");
            f.check(ok, arch, "a cache file writable by others is ignored; every file is hashed", &out);
        }
        chmod(&file, 0o644);
        f.check(
            app.stat("inserts") == inserts && app.stat("misses") == misses,
            arch,
            "the ignored file was not touched",
            &Outcome::default(),
        );
        // Its directory writable by others: same.
        chmod(&app.cache, 0o757);
        let out = app.run(&[], &debug);
        f.check(
            ran_ok(&out, GOOD) && out.stderr.contains("directory writable by group or others") && all_from(&out, "hashed"),
            arch,
            "a cache directory writable by others is ignored",
            &out,
        );
        chmod(&app.cache, 0o755);
        // Trusted again: the entries are still there.
        let out = app.run(&[], &debug);
        f.check(ran_ok(&out, GOOD) && all_from(&out, "cache"), arch, "the trusted file is used again", &out);

        if is_root() {
            // Owned by another user: ignored.
            std::os::unix::fs::chown(&file, Some(65534), Some(65534)).unwrap();
            let out = app.run(&[], &debug);
            f.check(
                ran_ok(&out, GOOD) && out.stderr.contains("owned by another user") && all_from(&out, "hashed"),
                arch,
                "a cache file owned by another user is ignored",
                &out,
            );
            std::os::unix::fs::chown(&file, Some(0), Some(0)).unwrap();
            // Another user reads root's cache (read only) and cannot write it.
            if arch == Arch::X86_64 {
                let mut argv: Vec<String> = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"].map(String::from).to_vec();
                argv.push(app.prog().display().to_string());
                let mut env = app.env(&debug);
                env.push(("PATH".into(), "/usr/bin:/bin".into()));
                let before = app.stat("inserts");
                let out = execute(&argv, &env);
                f.check(
                    ran_ok(&out, GOOD) && out.stderr.contains("hashes: read-only") && all_from(&out, "cache"),
                    arch,
                    "another user reads root's cache file, read-only",
                    &out,
                );
                // Its own files are hashed and not recorded.
                f.check(app.stat("inserts") == before, arch, "and does not write it", &out);
            }
        }
        if f.0.is_empty() {
            app.done();
        }
    }
    f.finish("an_untrusted_cache_file_is_ignored");
}

fn userns_available() -> bool {
    Command::new("unshare").args(["-rm", "true"]).status().is_ok_and(|s| s.success())
}

#[test]
fn a_missing_read_only_full_or_bad_cache_never_stops_a_program() {
    let mut f = Failures::default();
    for arch in arches() {
        let app = App::new("unusable", arch, &[]);
        let debug = ("CAH_DEBUG", "verify");
        // No directory (and no parent to create it in).
        let gone = app.dir.join("no/such/dir").display().to_string();
        let out = app.run(&[], &[("CAH_CACHE_DIR", &gone), debug, NO_PLAN]);
        f.check(ran_ok(&out, GOOD) && all_from(&out, "hashed"), arch, "no cache directory", &out);
        // Not a cache file; a file too short; a directory in its place.
        for (what, content) in [("garbage", vec![0x55u8; 8192]), ("short", vec![0u8; 24])] {
            let d = app.dir.join(what);
            std::fs::create_dir_all(&d).unwrap();
            chmod(&d, 0o755);
            std::fs::write(d.join("hashes"), &content).unwrap();
            let out = app.run(&[], &[("CAH_CACHE_DIR", d.to_str().unwrap()), debug, NO_PLAN]);
            f.check(ran_ok(&out, GOOD) && all_from(&out, "hashed"), arch, &format!("a {what} cache file"), &out);
            f.check(std::fs::read(d.join("hashes")).unwrap() == content, arch, "and it is left alone", &out);
        }
        let d = app.dir.join("isdir");
        std::fs::create_dir_all(d.join("hashes")).unwrap();
        chmod(&d, 0o755);
        let out = app.run(&[], &[("CAH_CACHE_DIR", d.to_str().unwrap()), debug, NO_PLAN]);
        f.check(ran_ok(&out, GOOD) && all_from(&out, "hashed"), arch, "a directory named hashes", &out);

        // The read-only and full file system cases need a private mount
        // namespace; CI has one. Failing here says so instead of quietly
        // passing without them.
        assert!(userns_available(), "unshare -rm is not available: the read-only and full file system cases cannot run");
        let prog = vec![app.prog().display().to_string()];
        let env_c = app.dir.join("mnt/c").display().to_string();
        // A read-only file system, no cache file: cannot create one.
        let out = app.in_tmpfs("1m", "mkdir \"$D/c\"; mount -o remount,ro \"$D\"", &prog, &[("CAH_CACHE_DIR", &env_c), debug, NO_PLAN]);
        f.check(
            ran_ok(&out, GOOD) && out.stderr.contains("read-only file system") && all_from(&out, "hashed"),
            arch,
            "read-only file system, no cache file",
            &out,
        );
        // ... with a cache file made before: read, read only.
        let setup = format!(
            "mkdir \"$D/c\"; CAH_CACHE_DIR=\"$D/c\" {} {} >/dev/null 2>&1; mount -o remount,ro \"$D\"",
            app.arch.runner().join(" "),
            app.prog().display()
        );
        let out = app.in_tmpfs("1m", &setup, &prog, &[("CAH_CACHE_DIR", &env_c), debug, NO_PLAN]);
        f.check(
            ran_ok(&out, GOOD) && out.stderr.contains("hashes: read-only") && all_from(&out, "cache"),
            arch,
            "read-only file system with a cache file: used read-only",
            &out,
        );
        // A full file system: the file cannot be made.
        let out = app.in_tmpfs(
            "256k",
            "mkdir \"$D/c\"; dd if=/dev/zero of=\"$D/fill\" bs=4k 2>/dev/null || true",
            &prog,
            &[("CAH_CACHE_DIR", &env_c), debug],
        );
        f.check(
            ran_ok(&out, GOOD) && out.stderr.contains("no space left on device") && all_from(&out, "hashed"),
            arch,
            "full file system",
            &out,
        );
        // The cache directory cannot be created (read-only parent).
        let out = app.in_tmpfs("1m", "mount -o remount,ro \"$D\"", &prog, &[("CAH_CACHE_DIR", &env_c), debug, NO_PLAN]);
        f.check(ran_ok(&out, GOOD) && all_from(&out, "hashed"), arch, "cannot create the cache directory", &out);
        if f.0.is_empty() {
            app.done();
        }
    }
    f.finish("a_missing_read_only_full_or_bad_cache_never_stops_a_program");
}

/// A cache file with holes (made by `cp --sparse=always`, `truncate`, or a
/// `cah` older than this check) on a full tmpfs: touching a hole through a
/// shared mapping makes tmpfs allocate a page, even to read it, and on a
/// full file system that is a SIGBUS, which used to kill every locked start.
/// The file must be left out (the program runs, hashing), whether it could
/// be written (ours: `fallocate` fails, full) or only read (a read-only
/// mount). The `cah` tool must not die on it either.
#[test]
fn a_sparse_cache_on_a_full_file_system_never_kills_a_program() {
    let mut f = Failures::default();
    for arch in arches() {
        let app = App::new("sparse", arch, &[]);
        let debug = ("CAH_DEBUG", "verify");
        assert!(userns_available(), "unshare -rm is not available: the full file system cases cannot run");
        let prog = vec![app.prog().display().to_string()];
        let env_c = app.dir.join("mnt/c").display().to_string();
        let cah = built_cah().display().to_string();
        // A valid cache whose slot pages are holes, then a full file system.
        let sparse = format!(
            "mkdir \"$D/c\"; {cah} cache init --file \"$D/c/full\" >/dev/null; \
             cp --sparse=always \"$D/c/full\" \"$D/c/hashes\"; rm \"$D/c/full\"; \
             dd if=/dev/zero of=\"$D/fill\" bs=4k 2>/dev/null || true; \
             test $(stat -c %b \"$D/c/hashes\") -lt 700"
        );
        for (what, extra) in [("writable", ""), ("read-only mount", "; mount -o remount,ro \"$D\"")] {
            let out = app.in_tmpfs("1m", &format!("{sparse}{extra}"), &prog, &[("CAH_CACHE_DIR", &env_c), debug]);
            f.check(
                ran_ok(&out, GOOD) && out.signal.is_none() && out.stderr.contains("sparse") && all_from(&out, "hashed"),
                arch,
                &format!("sparse cache file on a full file system, {what}: left out, the program runs"),
                &out,
            );
        }
        // The host tool, on the host (not under qemu), in a fresh tmpfs.
        let host_tmpfs = |size: &str, setup: &str, argv: Vec<String>| {
            let script = format!("set -e; D=\"$0\"; mount -t tmpfs -o size={size},mode=0755 tmpfs \"$D\"; {setup}; exec \"$@\"");
            let mut full = vec!["unshare".to_string(), "-rm".into(), "sh".into(), "-c".into(), script];
            full.push(app.dir.join("mnt").display().to_string());
            full.extend(argv);
            execute(&full, &[("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into())])
        };
        // `cah cache stats` reads it without mapping the holes.
        let out = host_tmpfs("1m", &sparse, vec![cah.clone(), "cache".into(), "stats".into(), "--file".into(), format!("{env_c}/hashes")]);
        f.check(out.status == Some(0) && out.stdout.contains("4096 slots"), arch, "cah cache stats on the sparse file", &out);
        // `cah cache init` on a full file system: an error, not a SIGBUS.
        let full = "mkdir \"$D/c\"; dd if=/dev/zero of=\"$D/fill\" bs=4k 2>/dev/null || true";
        let out = host_tmpfs("256k", full, vec![cah.clone(), "cache".into(), "init".into(), "--file".into(), format!("{env_c}/new")]);
        f.check(
            out.status == Some(2) && out.stderr.contains("No space left on device"),
            arch,
            "cah cache init on a full file system: an error",
            &out,
        );
        if f.0.is_empty() {
            app.done();
        }
    }
    f.finish("a_sparse_cache_on_a_full_file_system_never_kills_a_program");
}

/// Starts `n` runs of the program at once and returns their outcomes.
fn launch_together(app: &App, n: usize) -> Vec<Outcome> {
    let barrier = std::sync::Barrier::new(n);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    app.run(&[], &[])
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn parallel_launches_against_an_empty_cache() {
    let mut f = Failures::default();
    for arch in arches() {
        // 64 processes on x86_64; qemu starts cost more, so fewer there.
        let n = if arch == Arch::X86_64 { 64 } else { 24 };
        let app = App::new("parallel", arch, &[]);
        for start in ["no cache file", "an empty cache file"] {
            let _ = std::fs::remove_file(app.cache_file());
            // No plan either: each launch confirms its files by hashing.
            let _ = std::fs::remove_dir_all(app.cache.join("plans"));
            if start == "an empty cache file" {
                if let Err(e) = app.cah(&["cache", "init", "--file", app.cache_file().to_str().unwrap()]) {
                    f.note(arch, format!("cah cache init: {e}"));
                    continue;
                }
            }
            let outs = launch_together(&app, n);
            let bad: Vec<&Outcome> = outs.iter().filter(|o| !ran_ok(o, GOOD) || !o.stderr.is_empty()).collect();
            if let Some(o) = bad.first() {
                f.check(false, arch, &format!("{n} launches against {start}: {} failed; the first", bad.len()), o);
            }
            match app.cah(&["cache", "verify", "--file", app.cache_file().to_str().unwrap()]) {
                Ok(out) if out.contains(", 0 busy, 0 corrupt slots") => {}
                other => f.note(arch, format!("{start}: cah cache verify: {other:?}")),
            }
            let entries = app.stat("entries");
            if entries < 3 {
                f.note(arch, format!("{start}: only {entries} entries after {n} launches"));
            }
            // The cache file and the binding plans (docs/binding-plan.md),
            // and no temporary file of either.
            let names = |dir: &std::path::Path| -> Vec<String> {
                std::fs::read_dir(dir).map_or(Vec::new(), |rd| rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
            };
            let mut left: Vec<String> = names(&app.cache).into_iter().filter(|n| n != "hashes" && n != "plans").collect();
            left.extend(names(&app.cache.join("plans")).into_iter().filter(|n| n.starts_with('.')).map(|n| format!("plans/{n}")));
            if !left.is_empty() {
                f.note(arch, format!("{start}: files left in the cache directory: {left:?}"));
            }
            // And the cache serves the next start, as does the plan one of
            // them recorded (whole: written aside and renamed).
            let out = app.run(&[], &[("CAH_DEBUG", "verify"), NO_PLAN]);
            f.check(ran_ok(&out, GOOD) && all_from(&out, "cache"), arch, &format!("{start}: a start after the storm"), &out);
            let out = app.run(&[], &[("CAH_DEBUG", "verify")]);
            f.check(ran_ok(&out, GOOD) && all_from(&out, "binding plan"), arch, &format!("{start}: its binding plan"), &out);
        }
        if f.0.is_empty() {
            app.done();
        }
    }
    f.finish("parallel_launches_against_an_empty_cache");
}

#[test]
fn strict_mode_refuses_unlocked_dependencies() {
    let mut f = Failures::default();
    for arch in arches() {
        let app = App::new("strict", arch, &[]);
        let unpatched = app.app.join("prog.orig");
        // Not locked at all, CAH_STRICT=1: the first dependency is refused.
        let line = format!(
            "ld-cah.so: error: {}: libwho.so: not locked, and CAH_STRICT is set (unlocked dependencies are refused)\n",
            unpatched.display()
        );
        let out = app.loader(&[], &unpatched, &[("CAH_STRICT", "1")]);
        f.check(refused_with(&out, &line), arch, &format!("refused with exactly:\n  {line}"), &out);
        let out = app.loader(&["--verify"], &unpatched, &[("CAH_STRICT", "1")]);
        f.check(refused_with(&out, &line), arch, "--verify too", &out);
        let out = app.loader(&[], &unpatched, &[("CAH_STRICT", "0")]);
        f.check(ran_ok(&out, GOOD), arch, "CAH_STRICT=0 is not strict", &out);
        // Locked: strict changes nothing.
        let out = app.run(&[], &[("CAH_STRICT", "1")]);
        f.check(ran_ok(&out, GOOD), arch, "a fully locked program runs in strict mode", &out);
        // An unlocked preload is refused in strict mode (and skipped, as a
        // preload that cannot be loaded is), accepted otherwise.
        let pre = app.dir.join("alt/libextra.so");
        let pre_s = pre.display().to_string();
        let out = app.run(&[], &[("LD_PRELOAD", &pre_s)]);
        f.check(ran_ok(&out, GOOD) && out.stderr.is_empty(), arch, "an unlocked preload, not strict", &out);
        let out = app.run(&[], &[("LD_PRELOAD", &pre_s), ("CAH_STRICT", "1")]);
        f.check(
            ran_ok(&out, GOOD) && out.stderr.contains("not locked, and CAH_STRICT is set") && out.stderr.contains("ignored"),
            arch,
            "an unlocked preload in strict mode is refused",
            &out,
        );
        // A preload with a locked name's DT_SONAME cannot stand in for it.
        let imp = app.impostor().display().to_string();
        let want = app.digest(&app.lib("libwho.so"));
        let line = format!(
            "ld-cah.so: error: {}: libwho.so (blake3:{want}): already loaded from {imp}, which is not the locked file\n",
            app.prog().display()
        );
        let out = app.run(&[], &[("LD_PRELOAD", &imp)]);
        f.check(refused_with(&out, &line), arch, &format!("a preloaded impostor is refused:\n  {line}"), &out);

        // The lock's own STRICT flag (`cah patch --strict`).
        let strict = App::new("strict-flag", arch, &["--strict"]);
        let out = strict.run(&[], &[]);
        f.check(ran_ok(&out, GOOD), arch, "a strict lock, all locked", &out);
        let out = strict.run(&[], &[("LD_PRELOAD", &pre_s), ("CAH_STRICT", "0")]);
        f.check(
            ran_ok(&out, GOOD) && out.stderr.contains("not locked, and the closure lock is strict"),
            arch,
            "a strict lock refuses an unlocked preload, whatever CAH_STRICT says",
            &out,
        );
        if f.0.is_empty() {
            app.done();
            strict.done();
        }
    }
    f.finish("strict_mode_refuses_unlocked_dependencies");
}

#[test]
fn a_malformed_lock_is_refused() {
    let mut f = Failures::default();
    for arch in arches() {
        let app = App::new("malformed", arch, &[]);
        let prog = app.prog();
        let mut data = std::fs::read(&prog).unwrap();
        // The note: namesz 4, descsz, "LOCK", "CAH\0", then version 1.
        let at = data.windows(8).position(|w| w == b"LOCKCAH\0").expect("no lock note") + 8;
        assert_eq!(&data[at..at + 2], &[1, 0]);
        data[at] = 9;
        let bad = app.app.join("prog.bad");
        std::fs::write(&bad, &data).unwrap();
        chmod(&bad, 0o755);
        let line = format!("ld-cah.so: error: {}: cannot use its closure lock: closure lock has an unsupported version\n", bad.display());
        let out = app.run_path(&bad, &[], &[]);
        f.check(refused_with(&out, &line), arch, &format!("refused with exactly:\n  {line}"), &out);
        if f.0.is_empty() {
            app.done();
        }
    }
    f.finish("a_malformed_lock_is_refused");
}

#[test]
fn secure_mode_ignores_the_environment_but_honours_strict() {
    // Needs a set-uid program (AT_SECURE) run by another user: root only.
    if !arches().contains(&Arch::X86_64) {
        return;
    }
    assert!(is_root(), "this test needs root (to make a set-uid program); CI runs as root");
    let mut f = Failures::default();
    let dir = root().join(format!("target/cah-tests/verify/secure-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    chmod(&dir, 0o755);
    let options = Command::new("findmnt").args(["-no", "OPTIONS", "--target"]).arg(&dir).output();
    assert!(
        !options.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).split(',').any(|w| w.trim() == "nosuid")),
        "{} is mounted nosuid: a set-uid program cannot be tested there",
        dir.display()
    );
    let locked = dir.join("bash");
    if let Err(e) =
        sh(Command::new(built_cah()).args(["patch", "/bin/bash", "-o"]).arg(&locked).arg("--interp").arg(loader_path(Arch::X86_64)))
    {
        panic!("cah patch: {e}");
    }
    // The same program with ld-cah.so as its interpreter but no lock.
    let unlocked = dir.join("bash-unlocked");
    std::fs::copy("/bin/bash", &unlocked).unwrap();
    sh(Command::new("patchelf").arg("--set-interpreter").arg(loader_path(Arch::X86_64)).arg(&unlocked)).unwrap();
    for p in [&locked, &unlocked] {
        chmod(p, 0o4755);
    }
    let cache = dir.join("cache");
    let as_nobody = |prog: &Path, env: &[(&str, &str)]| {
        let mut argv: Vec<String> = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"].map(String::from).to_vec();
        argv.push(prog.display().to_string());
        argv.extend(["-c", "echo ok"].map(String::from));
        let mut e: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        e.push(("PATH".into(), "/usr/bin:/bin".into()));
        execute(&argv, &e)
    };
    let cache_s = cache.display().to_string();
    let store = dir.join("store").display().to_string();
    let out = as_nobody(&locked, &[("CAH_DEBUG", "verify"), ("CAH_CACHE_DIR", &cache_s), ("CAH_STORE", &store)]);
    f.check(
        ran_ok(&out, "ok\n") && out.stderr.is_empty() && !cache.exists(),
        Arch::X86_64,
        "set-uid: CAH_DEBUG and CAH_CACHE_DIR are ignored, the program runs verified",
        &out,
    );
    let line = format!(
        "ld-cah.so: error: {}: libtinfo.so.6: not locked, and CAH_STRICT is set (unlocked dependencies are refused)\n",
        unlocked.display()
    );
    let out = as_nobody(&unlocked, &[("CAH_STRICT", "1")]);
    f.check(refused_with(&out, &line), Arch::X86_64, &format!("set-uid: CAH_STRICT is honoured:\n  {line}"), &out);
    let out = as_nobody(&unlocked, &[]);
    f.check(ran_ok(&out, "ok\n"), Arch::X86_64, "set-uid, no lock, not strict: runs", &out);
    if f.0.is_empty() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    f.finish("secure_mode_ignores_the_environment_but_honours_strict");
}

#[test]
fn dlopen_of_a_locked_name_is_verified() {
    let mut f = Failures::default();
    for arch in arches() {
        let app = App::new("dlopen", arch, &[]);
        let dl = app.build_dl();
        let lib = app.lib("libwho.so");
        let want = app.digest(&lib);
        let out = app.run_path(&dl, &[], &[("CAH_DEBUG", "verify")]);
        let v = verdicts(&out, "libwho.so");
        f.check(
            ran_ok(&out, "who: build-a\n") && v.len() == 1 && v[0].ends_with(", ok"),
            arch,
            "a locked name is verified when dlopened",
            &out,
        );
        // The impostor in its place: dlopen fails with the error line's text.
        let right = app.dir.join("right.so");
        std::fs::copy(&lib, &right).unwrap();
        std::fs::copy(app.impostor(), &lib).unwrap();
        let got = app.digest(&lib);
        let want_err = format!("dlopen failed: libwho.so (blake3:{want}): no matching file; tried {} (blake3:{got}); fetch it by digest with `cah fetch PROG --from URL`\n", lib.display());
        let out = app.run_path(&dl, &[], &[]);
        f.check(out.status == Some(1) && out.stdout == want_err, arch, &format!("dlopen refuses:\n  {want_err}"), &out);
        std::fs::copy(&right, &lib).unwrap();
        // An unlocked name: loaded, unless strict.
        let plug = app.lib("libplug.so");
        std::fs::copy(app.impostor(), &plug).unwrap();
        let out = app.run_path(&dl, &["libplug.so"], &[]);
        f.check(ran_ok(&out, "who: build-b\n"), arch, "an unlocked dlopen, not strict", &out);
        let out = app.run_path(&dl, &["libplug.so"], &[("CAH_STRICT", "1")]);
        f.check(
            out.status == Some(1)
                && out.stdout == "dlopen failed: libplug.so: not locked, and CAH_STRICT is set (unlocked dependencies are refused)\n",
            arch,
            "strict mode refuses an unlocked dlopen",
            &out,
        );
        let out = app.run_path(&dl, &[], &[("CAH_STRICT", "1")]);
        f.check(ran_ok(&out, "who: build-a\n"), arch, "strict mode allows a locked dlopen", &out);
        if f.0.is_empty() {
            app.done();
        }
    }
    f.finish("dlopen_of_a_locked_name_is_verified");
}

/// The loader reads the hash cache through a descriptor it closes at the
/// end of start-up and of each `dlopen`: the program finds open exactly
/// the descriptors it finds under glibc's loader, cold and warm.
#[test]
fn the_program_finds_no_descriptor_of_the_loader() {
    let mut f = Failures::default();
    for arch in arches() {
        let app = App::new("fds", arch, &[]);
        let dl = app.build_dl();
        let plain = app.app.join("dl-glibc");
        app.cc(&["-o", plain.to_str().unwrap(), "src/dl.c", "-Wl,-rpath,$ORIGIN/lib"]);
        let reference = app.run_path(&plain, &["libwho.so", "fds"], &[]);
        f.check(
            ran_ok(&reference, &reference.stdout)
                && reference.stdout.matches("fds:").count() == 2
                && reference.stdout.contains("who: build-a\n"),
            arch,
            "glibc's loader runs the descriptor lister",
            &reference,
        );
        // Last, starts whose first candidate for libc.so.6 (another library
        // under that name, first in LD_LIBRARY_PATH) is taken on trust and
        // the closure loaded again: once when confirming finds it wrong
        // (libinner.so, which accepts any version), once when the walk
        // itself fails on it (libm.so.6, whose versions are not libc's).
        let sysroot = if arch == Arch::Aarch64 { AARCH64_SYSROOT } else { "" };
        let mut fakes = Vec::new();
        for (dir, lib) in
            [("fake-inner", app.lib("libinner.so")), ("fake-m", PathBuf::from(format!("{sysroot}/lib/{}/libm.so.6", arch.triplet())))]
        {
            let fake = app.dir.join(dir);
            std::fs::create_dir_all(&fake).unwrap();
            std::fs::copy(&lib, fake.join("libc.so.6")).unwrap_or_else(|e| panic!("{}: {e}", lib.display()));
            fakes.push(fake.display().to_string());
        }
        let runs = [("cold", None), ("warm", None), ("confirmed wrong", Some(fakes[0].as_str())), ("walk failed", Some(fakes[1].as_str()))];
        for (run, fake) in runs {
            let extra = fake.map(|f| ("LD_LIBRARY_PATH", f));
            let mut env = vec![("CAH_DEBUG", "verify")];
            env.extend(extra);
            let out = app.run_path(&dl, &["libwho.so", "fds"], &env);
            f.check(
                ran_ok(&out, &reference.stdout)
                    && verdicts(&out, "libwho.so").len() == 1
                    && out.stderr.contains("loading again") == extra.is_some(),
                arch,
                &format!("{run}: the same descriptors as under glibc:\n{}", reference.stdout),
                &out,
            );
        }
        if f.0.is_empty() {
            app.done();
        }
    }
    f.finish("the_program_finds_no_descriptor_of_the_loader");
}

#[test]
fn a_library_lock_must_agree_with_the_programs() {
    let mut f = Failures::default();
    for arch in arches() {
        let app = App::new("lib-lock", arch, &[]);
        let l = app.app.join("lib");
        let l = l.to_str().unwrap();
        // libwho.so locked against another libinner.so (inner-2)...
        write(&app.dir.join("src/inner2.c"), &INNER_C.replace("inner-1", "inner-2"));
        let inner = format!("{l}/libinner.so");
        std::fs::copy(&inner, app.dir.join("inner1.so")).unwrap();
        app.cc(&["-shared", "-fPIC", "-o", &inner, "src/inner2.c", "-Wl,-soname,libinner.so"]);
        let who = app.lib("libwho.so");
        app.patch(&who, &["--keep-interp"]).unwrap_or_else(|e| panic!("cah patch libwho.so: {e}"));
        let inner2 = app.digest(Path::new(&inner));
        // ... then the program against inner-1.
        std::fs::copy(app.dir.join("inner1.so"), &inner).unwrap();
        let interp = loader_path(arch).display().to_string();
        app.patch(&app.prog(), &["--interp", &interp]).unwrap_or_else(|e| panic!("cah patch prog: {e}"));
        let inner1 = app.digest(Path::new(&inner));
        let line = format!(
            "ld-cah.so: error: {}: {}: its closure lock has libinner.so (blake3:{inner2}), the program's has blake3:{inner1}\n",
            app.prog().display(),
            who.display()
        );
        let out = app.run(&[], &[]);
        f.check(refused_with(&out, &line), arch, &format!("refused with exactly:\n  {line}"), &out);
        if f.0.is_empty() {
            app.done();
        }
    }
    f.finish("a_library_lock_must_agree_with_the_programs");
}
