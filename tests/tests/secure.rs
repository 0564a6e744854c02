//! Secure mode (`AT_SECURE`): a set-uid program run by another user must
//! not see the environment variables that steer loading or libc, nor load
//! what its caller chooses, under ld-cah exactly as under glibc's loader.
//! Needs root (to make programs set-uid, to put files in system
//! directories for the length of a test, to run programs as `nobody`, and
//! for a mount namespace), which CI has.
//!
//! Each case runs two set-uid root copies of one program as uid/gid 65534,
//! one with glibc's `PT_INTERP` and one patched to ld-cah: glibc's run is
//! the reference for stdout and status, and what it must print is also
//! written out by hand. Where a case shows that something is refused, a
//! control run as root (no change of user, so not secure) shows it would
//! have been loaded. Only stderr is each loader's own wording.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use cah_tests::{built_loader, chmod, fixture_dir, need_root, Arch};

/// Runs `prog` (set-uid root) as uid/gid 65534 with a hostile environment.
fn env_as_nobody(prog: &Path) -> (String, Option<i32>) {
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(prog)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LD_LIBRARY_PATH", "/tmp/evil")
        .env("LD_PRELOAD", "libevil.so")
        .env("GLIBC_TUNABLES", "glibc.malloc.check=3")
        .env("MALLOC_PERTURB_", "42")
        .env("TMPDIR", "/tmp/evil")
        .env("CAH_STORE", "/tmp/evil")
        .env("KEEP_ME", "1")
        .env("LD_BIND_NOW", "1")
        .output()
        .expect("setpriv (util-linux) runs");
    (String::from_utf8_lossy(&out.stdout).into_owned(), out.status.code())
}

#[test]
fn set_uid_programs_lose_the_unsecure_environment_as_under_glibc() {
    need_root();
    let dir = Scratch::new("env");
    let glibc_env = dir.join("env-glibc");
    let cah_env = dir.join("env-cah");
    std::fs::copy("/usr/bin/env", &glibc_env).unwrap();
    std::fs::copy("/usr/bin/env", &cah_env).unwrap();
    patchelf(&cah_env, &["--set-interpreter", built_loader(Arch::X86_64).to_str().unwrap()]);
    for p in [&glibc_env, &cah_env] {
        chmod(p, 0o4755);
    }
    let reference = env_as_nobody(&glibc_env);
    assert_eq!(reference.1, Some(0), "glibc run: {reference:?}");
    assert!(reference.0.contains("KEEP_ME=1") && !reference.0.contains("LD_LIBRARY_PATH"), "glibc did not run set-uid: {reference:?}");
    let under_cah = env_as_nobody(&cah_env);
    // glibc does not know CAH_STORE; ld-cah removes it too.
    let expected: String = reference.0.lines().filter(|l| !l.starts_with("CAH_STORE=")).map(|l| format!("{l}\n")).collect();
    assert_eq!(under_cah.0, expected, "environment seen by a set-uid program under ld-cah");
    assert_eq!(under_cah.1, Some(0));
}

/// The exploit this guards against: `libpcprofile.so` (Debian's libc6)
/// writes the file `PCPROFILE_OUTPUT` names from its constructor, so
/// preloading it into a set-uid root program would create a root-owned
/// file anywhere. glibc preloads a name without a slash in secure mode
/// only if the file is set-user-ID, which no system library is.
#[test]
fn ld_preload_cannot_make_a_set_uid_program_load_a_system_library() {
    need_root();
    let pcprofile = Path::new("/usr/lib/x86_64-linux-gnu/libpcprofile.so");
    assert!(pcprofile.exists(), "{} is missing (Debian's libc6 has it)", pcprofile.display());
    let dir = Scratch::new("pcprofile");
    let pair = set_uid_pair(Path::new("/usr/bin/env"), &dir, "env", &[]);
    let out_dir = dir.join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let target = out_dir.join("created-by-root");
    let env = [("LD_PRELOAD", "libpcprofile.so"), ("PCPROFILE_OUTPUT", target.to_str().unwrap())];
    // Control: run by root the copies are not secure, and the library does
    // write the file.
    for prog in &pair {
        let control = run(prog, None, &env, &dir);
        assert_eq!(control.status, Some(0), "control run of {}: {control:?}", prog.display());
        assert!(target.exists(), "control: libpcprofile.so did not write {} under {}", target.display(), prog.display());
        std::fs::remove_file(&target).unwrap();
    }
    let [glibc, cah] = same_as_glibc(&pair, &env, &dir);
    assert!(!target.exists(), "a set-uid program created {}", target.display());
    assert_eq!(glibc.stdout, format!("PATH=/usr/bin:/bin\nPCPROFILE_OUTPUT={}\n", target.display()));
    assert_eq!(glibc.status, Some(0));
    assert!(cah.stderr.contains("libpcprofile.so"), "ld-cah says nothing of the ignored preload: {}", cah.stderr);
}

/// In secure mode an `LD_PRELOAD` entry with a slash is ignored, even a
/// set-user-ID file.
#[test]
fn preloads_named_by_path_are_ignored_in_secure_mode() {
    need_root();
    let dir = Scratch::new("slash");
    let lib = dir.join("libinit_d.so");
    install(&fixture("libinit_d.so"), &lib, 0o4755);
    let pair = set_uid_pair(Path::new("/usr/bin/env"), &dir, "env", &[]);
    let list = format!("{}:./libinit_d.so", lib.display());
    let env = [("LD_PRELOAD", list.as_str())];
    for prog in &pair {
        let control = run(prog, None, &env, &dir);
        assert!(control.stdout.starts_with(INIT_D), "control run of {}: {control:?}", prog.display());
    }
    let [glibc, _] = same_as_glibc(&pair, &env, &dir);
    assert_eq!((glibc.stdout.as_str(), glibc.status), ("PATH=/usr/bin:/bin\n", Some(0)));
}

/// A name without a slash is searched as the program's own dependencies
/// are (its `DT_RPATH`/`DT_RUNPATH`, the default directories) but never in
/// `/etc/ld.so.cache`, and only a set-user-ID file is taken.
#[test]
fn set_user_id_preloads_in_trusted_places_are_loaded_as_under_glibc() {
    need_root();
    let dir = Scratch::new("suid-preload");
    let name = format!("libcah-secure-{}.so", std::process::id());
    let system_lib = SystemPath(Path::new("/usr/lib/x86_64-linux-gnu").join(&name));
    install(&fixture("libinit_d.so"), &system_lib.0, 0o4755);
    let pair = set_uid_pair(Path::new("/usr/bin/env"), &dir, "env", &[]);
    let env = [("LD_PRELOAD", name.as_str())];
    let [glibc, _] = same_as_glibc(&pair, &env, &dir);
    assert_eq!((glibc.stdout.as_str(), glibc.status), (format!("{INIT_D}PATH=/usr/bin:/bin\n").as_str(), Some(0)));
    // Not set-user-ID: refused, though root's own runs load it.
    chmod(&system_lib.0, 0o755);
    let control = run(&pair[1], None, &env, &dir);
    assert!(control.stdout.starts_with(INIT_D), "control run: {control:?}");
    let [glibc, _] = same_as_glibc(&pair, &env, &dir);
    assert_eq!((glibc.stdout.as_str(), glibc.status), ("PATH=/usr/bin:/bin\n", Some(0)));

    // The program's DT_RPATH (and DT_RUNPATH) directories count too.
    let rp = dir.join("rp");
    std::fs::create_dir(&rp).unwrap();
    chmod(&rp, 0o755);
    let rp_lib = rp.join("libcahrp.so");
    install(&fixture("libinit_d.so"), &rp_lib, 0o4755);
    let env = [("LD_PRELOAD", "libcahrp.so")];
    for (name, how) in [("env-rpath", "--force-rpath"), ("env-runpath", "")] {
        chmod(&rp_lib, 0o4755);
        let args: Vec<&str> = [how, "--set-rpath", rp.to_str().unwrap()].into_iter().filter(|a| !a.is_empty()).collect();
        let pair = set_uid_pair(Path::new("/usr/bin/env"), &dir, name, &args);
        let [glibc, _] = same_as_glibc(&pair, &env, &dir);
        assert_eq!((glibc.stdout.as_str(), glibc.status), (format!("{INIT_D}PATH=/usr/bin:/bin\n").as_str(), Some(0)), "{name}");
        chmod(&rp_lib, 0o755);
        let [glibc, _] = same_as_glibc(&pair, &env, &dir);
        assert_eq!((glibc.stdout.as_str(), glibc.status), ("PATH=/usr/bin:/bin\n", Some(0)), "{name}");
    }
}

/// `/etc/ld.so.preload` is root's and is honoured in secure mode: a path
/// is loaded as it is, a name only if it finds a set-user-ID file. The
/// file is made in a private mount namespace (an overlay on `/etc`), so
/// nothing else on the machine sees it; the `setpriv` that starts the
/// program sees it too (it prints the same lines under both loaders, with
/// its own argc, and is not secure).
#[test]
fn etc_ld_so_preload_is_honoured_in_secure_mode_as_under_glibc() {
    need_root();
    let ok = Command::new("unshare").args(["--mount", "--propagation", "private", "true"]).status().is_ok_and(|s| s.success());
    assert!(ok, "this test needs mount namespaces (`unshare --mount`, root with CAP_SYS_ADMIN), as CI has");
    let dir = Scratch::new("ld-so-preload");
    let by_path = dir.join("libinit_d.so");
    install(&fixture("libinit_d.so"), &by_path, 0o755);
    let name = format!("libcah-secure-preload-{}.so", std::process::id());
    let by_name = SystemPath(Path::new("/usr/lib/x86_64-linux-gnu").join(&name));
    install(&fixture("libinit_c.so"), &by_name.0, 0o755);
    let file = format!("# the administrator's\n{}  {name}\n", by_path.display());
    let mnt = dir.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let pair = set_uid_pair(Path::new("/usr/bin/env"), &dir, "env", &[]);
    let host_file = std::fs::read("/etc/ld.so.preload").ok();
    let script = r#"set -e
mount -t tmpfs tmpfs "$1"
mkdir "$1/upper" "$1/work"
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$1/upper,workdir=$1/work" /etc
printf '%s' "$2" > /etc/ld.so.preload
shift 2
unset PWD
exec setpriv --reuid=65534 --regid=65534 --clear-groups "$@""#;
    let runs: Vec<Outcome> = pair
        .iter()
        .map(|prog| {
            let mut cmd = Command::new("unshare");
            cmd.args(["--mount", "--propagation", "private", "sh", "-c", script, "sh"]).arg(&mnt).arg(&file).arg(prog);
            outcome(cmd.env_clear().env("PATH", "/usr/bin:/bin").current_dir(&*dir).output().expect("unshare runs"))
        })
        .collect();
    assert_eq!(std::fs::read("/etc/ld.so.preload").ok(), host_file, "the machine's own /etc/ld.so.preload changed");
    let (glibc, cah) = (&runs[0], &runs[1]);
    assert_eq!(glibc.status, Some(0), "glibc: {glibc:?}");
    // The program's own lines are those with argc=1.
    let mine: Vec<&str> = glibc.stdout.lines().filter(|l| l.contains("argc=1 ")).collect();
    assert_eq!(mine, INIT_D.lines().filter(|l| l.contains("argc=1 ")).collect::<Vec<_>>(), "glibc: {glibc:?}");
    assert!(glibc.stdout.ends_with("\nPATH=/usr/bin:/bin\n"), "glibc: {glibc:?}");
    assert!(glibc.stdout.contains("c: constructor 2"), "setpriv (not secure) did not load {name}: {glibc:?}");
    assert_eq!((&cah.stdout, cah.status), (&glibc.stdout, glibc.status), "ld-cah: {cah:?}");
    assert!(cah.stderr.contains(&name), "ld-cah says nothing of the refused {name}: {}", cah.stderr);
}

/// `DT_RPATH`/`DT_RUNPATH` of a set-uid program, against glibc: relative
/// entries are used (glibc has not refused them since 2.26); `$ORIGIN` only
/// leads an entry and, in the program's own entries, must stay inside a
/// trusted directory, the program's directory being what `/proc/self/exe`
/// names (a symbolic link's target, not a hard link's directory); a
/// library's `$ORIGIN` is not checked; `DT_NEEDED` with a token is an error.
#[test]
fn search_paths_of_set_uid_programs_follow_glibc() {
    need_root();
    let dir = Scratch::new("rpath");
    let sub = dir.join("w/sub");
    std::fs::create_dir_all(&sub).unwrap();
    for d in [dir.join("w"), sub.clone()] {
        chmod(&d, 0o755);
    }
    install(&fixture("libsimple.so"), &sub.join("libsimple.so"), 0o755);
    let cwd = dir.join("w");
    const SAYS: &str = "libsimple says 7\n";
    let needsimple = fixture("needsimple");

    // (name, patchelf arguments, expected stdout and status)
    let untrusted = [
        ("rel-rpath", vec!["--force-rpath", "--set-rpath", "sub"], SAYS, 0),
        ("rel-runpath", vec!["--set-rpath", "sub"], SAYS, 0),
        ("empty-entry-rpath", vec!["--force-rpath", "--set-rpath", "/nonexistent::"], "", 127),
        ("origin-rpath", vec!["--force-rpath", "--set-rpath", "$ORIGIN/w/sub"], "", 127),
        ("origin-runpath", vec!["--set-rpath", "$ORIGIN/w/sub"], "", 127),
    ];
    for (name, args, stdout, status) in untrusted {
        let pair = set_uid_pair(&needsimple, &dir, name, &args);
        let [glibc, cah] = same_as_glibc(&pair, &[], &cwd);
        assert_eq!((glibc.stdout.as_str(), glibc.status), (stdout, Some(status)), "{name} under glibc: {glibc:?}");
        if status == 127 {
            one_error_line(&cah, "libsimple.so");
        }
    }
    // The empty entry is the current directory; $ORIGIN is refused only
    // because the program is set-uid.
    let control = run(&dir.join("origin-rpath-cah"), None, &[], &cwd);
    assert_eq!((control.stdout.as_str(), control.status), (SAYS, Some(0)), "control: {control:?}");
    let pair = set_uid_pair(&needsimple, &dir, "empty-entry-rpath", &["--force-rpath", "--set-rpath", "/nonexistent::"]);
    let [glibc, _] = same_as_glibc(&pair, &[], &sub);
    assert_eq!((glibc.stdout.as_str(), glibc.status), (SAYS, Some(0)));

    // A library's $ORIGIN (libo3's DT_RUNPATH $ORIGIN/../o_run2).
    let o_run = fixture("o_run");
    let pair = set_uid_pair(&fixture("origin_runpath"), &dir, "lib-origin", &["--set-rpath", o_run.to_str().unwrap()]);
    let [glibc, _] = same_as_glibc(&pair, &[], &cwd);
    assert_eq!((glibc.stdout.as_str(), glibc.status), ("libo3 needs libo4: libo4\nfound libo3\n", Some(0)));

    // A token in DT_NEEDED.
    for needed in ["$LIB/libsimple.so", "$ORIGIN/w/sub/libsimple.so"] {
        let pair = set_uid_pair(&needsimple, &dir, "dst-needed", &["--replace-needed", "libsimple.so", needed]);
        let [glibc, cah] = same_as_glibc(&pair, &[], &cwd);
        assert_eq!((glibc.stdout.as_str(), glibc.status), ("", Some(127)), "{needed}");
        one_error_line(&cah, "DST not allowed in SUID/SGID programs");
    }
    let control = run(&dir.join("dst-needed-cah"), None, &[], &cwd);
    assert_eq!((control.stdout.as_str(), control.status), (SAYS, Some(0)), "control: {control:?}");

    // In a trusted directory (under /usr/lib) $ORIGIN is allowed, as long
    // as the entry stays there.
    let tree = SystemPath(PathBuf::from(format!("/usr/lib/cah-secure-{}", std::process::id())));
    let (bin, lib) = (tree.0.join("bin"), tree.0.join("lib"));
    for d in [&tree.0, &bin, &lib] {
        std::fs::create_dir_all(d).unwrap();
        chmod(d, 0o755);
    }
    install(&fixture("libsimple.so"), &lib.join("libsimple.so"), 0o755);
    install(&fixture("libsimple.so"), &bin.join("libsimple.so"), 0o755);
    let escape = format!("$ORIGIN/../../../..{}", sub.display());
    let trusted = [
        ("up", vec!["--force-rpath", "--set-rpath", "$ORIGIN/../lib"], SAYS, 0),
        ("brace", vec!["--set-rpath", "${ORIGIN}/../lib"], SAYS, 0),
        ("bare", vec!["--force-rpath", "--set-rpath", "$ORIGIN"], SAYS, 0),
        ("escape", vec!["--force-rpath", "--set-rpath", escape.as_str()], "", 127),
        ("middle", vec!["--force-rpath", "--set-rpath", "/usr/lib/../$ORIGIN/../lib"], "", 127),
    ];
    for (name, args, stdout, status) in trusted {
        let pair = set_uid_pair(&needsimple, &bin, name, &args);
        let [glibc, _] = same_as_glibc(&pair, &[], &cwd);
        assert_eq!((glibc.stdout.as_str(), glibc.status), (stdout, Some(status)), "{name} under glibc: {glibc:?}");
    }
    let control = run(&bin.join("escape-cah"), None, &[], &cwd);
    assert_eq!((control.stdout.as_str(), control.status), (SAYS, Some(0)), "control: {control:?}");

    // Started through links from an untrusted directory.
    let up = [bin.join("up-glibc"), bin.join("up-cah")];
    let symlinks = [dir.join("sym-glibc"), dir.join("sym-cah")];
    for (l, t) in symlinks.iter().zip(&up) {
        std::os::unix::fs::symlink(t, l).unwrap();
    }
    let [glibc, _] = same_as_glibc(&symlinks, &[], &cwd);
    assert_eq!((glibc.stdout.as_str(), glibc.status), (SAYS, Some(0)));
    let hardlinks = [dir.join("hard-glibc"), dir.join("hard-cah")];
    if up.iter().zip(&hardlinks).all(|(t, l)| std::fs::hard_link(t, l).is_ok()) {
        let [glibc, _] = same_as_glibc(&hardlinks, &[], &cwd);
        assert_eq!((glibc.stdout.as_str(), glibc.status), ("", Some(127)));
    } else {
        eprintln!("note: {} and /usr/lib are on different file systems: no hard-link case", dir.display());
    }
}

/// What `libinit_d.so` prints when it is loaded into a program run with
/// no arguments.
const INIT_D: &str = "d: DT_INIT argc=1 argv[1]=- CAH_TEST_VAR=-\n\
                      d: constructor 1 argc=1 argv[1]=- CAH_TEST_VAR=-\n\
                      d: constructor 2\n";

/// A fixture of `cargo xtask fixtures`, x86_64.
fn fixture(name: &str) -> PathBuf {
    let p = fixture_dir(Arch::X86_64).join(name);
    assert!(p.exists(), "{} is missing: run `cargo xtask fixtures`", p.display());
    p
}

/// A directory for one test, readable by `nobody`, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Scratch {
        let dir = cah_tests::root().join(format!("target/cah-tests/secure-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        chmod(&dir, 0o755);
        Scratch(dir)
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A file or directory a test put in a system directory; removed at the
/// end, also when the test fails.
struct SystemPath(PathBuf);

impl Drop for SystemPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0).or_else(|_| std::fs::remove_file(&self.0));
    }
}

fn install(from: &Path, to: &Path, mode: u32) {
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {} to {}: {e}", from.display(), to.display()));
    chmod(to, mode);
}

fn patchelf(p: &Path, args: &[&str]) {
    let ok = Command::new("patchelf").args(args).arg(p).status().expect("patchelf runs").success();
    assert!(ok, "patchelf {args:?} {}", p.display());
}

/// Set-uid root copies of `prog` in `dir`, `NAME-glibc` and `NAME-cah`,
/// both changed by `patchelf ARGS`, the second with ld-cah as `PT_INTERP`.
fn set_uid_pair(prog: &Path, dir: &Path, name: &str, args: &[&str]) -> [PathBuf; 2] {
    let pair = [dir.join(format!("{name}-glibc")), dir.join(format!("{name}-cah"))];
    for p in &pair {
        let _ = std::fs::remove_file(p);
        std::fs::copy(prog, p).unwrap();
        if !args.is_empty() {
            patchelf(p, args);
        }
    }
    patchelf(&pair[1], &["--set-interpreter", built_loader(Arch::X86_64).to_str().unwrap()]);
    for p in &pair {
        chmod(p, 0o4755);
    }
    pair
}

#[derive(Debug)]
struct Outcome {
    stdout: String,
    stderr: String,
    status: Option<i32>,
}

fn outcome(out: std::process::Output) -> Outcome {
    Outcome {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        status: out.status.code(),
    }
}

/// Runs `prog` in `cwd` with only `PATH` and `env` set: as uid/gid `user`
/// without supplementary groups (secure, for a set-uid program), or as
/// root (`None`: not secure).
fn run(prog: &Path, user: Option<u32>, env: &[(&str, &str)], cwd: &Path) -> Outcome {
    let mut cmd = Command::new(prog);
    // Not through setpriv: it would get `env` (a preload) itself.
    if let Some(id) = user {
        cmd.uid(id).gid(id);
    }
    cmd.env_clear().env("PATH", "/usr/bin:/bin").current_dir(cwd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    outcome(cmd.output().unwrap_or_else(|e| panic!("run {}: {e}", prog.display())))
}

/// Runs both copies as `nobody`; ld-cah's stdout and status must be
/// glibc's. Returns both outcomes, glibc's first.
fn same_as_glibc(pair: &[PathBuf; 2], env: &[(&str, &str)], cwd: &Path) -> [Outcome; 2] {
    let glibc = run(&pair[0], Some(65534), env, cwd);
    let cah = run(&pair[1], Some(65534), env, cwd);
    assert_eq!(
        (&cah.stdout, cah.status),
        (&glibc.stdout, glibc.status),
        "{} under ld-cah differs from glibc's loader\nglibc stderr: {}\nld-cah stderr: {}",
        pair[1].display(),
        glibc.stderr,
        cah.stderr
    );
    [glibc, cah]
}

/// A refusal: one line, `ld-cah.so: error: ...`, mentioning `what`.
fn one_error_line(cah: &Outcome, what: &str) {
    let lines: Vec<&str> = cah.stderr.lines().collect();
    assert!(lines.len() == 1 && lines[0].starts_with("ld-cah.so: error: ") && lines[0].contains(what), "ld-cah's stderr: {:?}", cah.stderr);
}
