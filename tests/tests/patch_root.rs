//! `cah patch --root` over real Debian root file systems (`cargo xtask
//! rootfs`: debootstrap minbase of bookworm and trixie), run in chroots.
//! Each test copies the shared root twice into a temporary directory (one
//! stays unpatched as the reference, one is patched); the shared roots are
//! never written. Needs root (chroot), which CI has.
//!
//! What a user of a patched image would notice:
//! - every program of /usr/bin and /usr/sbin answers `--version` as it
//!   does in the unpatched root (same output and status);
//! - bash, dpkg, apt-get and perl behave the same;
//! - patching the patched root again changes no byte of it;
//! - after a locked library is replaced by a different file, the programs
//!   still run (the locked bytes come from the root's store);
//! - a package installed from the archive with the patched apt-get is
//!   locked by the package's dpkg trigger and runs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use cah_tests::{built_cah, built_loader, need_root, Arch};

type Out = (String, String, Option<i32>);

fn shared_root(suite: &str) -> PathBuf {
    let r = cah_tests::root().join(format!("target/rootfs/{suite}-amd64"));
    assert!(r.join("usr/bin/bash").exists(), "{} missing: run `cargo xtask rootfs {suite}`", r.display());
    r
}

/// `cp -a` (keeps owners, modes, hard links and symbolic links).
fn copy_root(from: &Path, to: &Path) {
    let st = Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap();
    assert!(st.success(), "cp -a {} {}", from.display(), to.display());
}

/// Runs `argv` in a chroot of `root`, in a PID namespace of its own (so no
/// program can signal anything outside), with no input and `secs` seconds
/// at most.
fn run_in(root: &Path, secs: u32, argv: &[&str]) -> Out {
    let out = Command::new("timeout")
        .args(["-s", "KILL", &secs.to_string()])
        .args(["unshare", "--pid", "--fork", "--kill-child", "/usr/sbin/chroot"])
        .arg(root)
        .args(argv)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LC_ALL", "C")
        .env("HOME", "/root")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("timeout, unshare and chroot run (root needed)");
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned(), out.status.code())
}

/// BLAKE3 of every regular file and the target of every symbolic link,
/// with owner and mode, by path: a second patch must leave this as it was.
fn tree_digest(root: &Path) -> Vec<(PathBuf, String)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            let what = if m.is_dir() {
                if rel != Path::new("proc") && rel != Path::new("sys") && rel != Path::new("dev") {
                    pending.push(p.clone());
                }
                String::from("dir")
            } else if m.file_type().is_symlink() {
                format!("-> {}", std::fs::read_link(&p).unwrap().display())
            } else if m.is_file() {
                ld_cah::verify::hash(&std::fs::read(&p).unwrap()).to_string()
            } else {
                String::from("special")
            };
            out.push((rel, format!("{what} {}:{} {:o} ino {}", m.uid(), m.gid(), m.mode(), m.ino())));
        }
    }
    out.sort();
    out
}

/// Programs that would act on the machine rather than print a version.
const NOT_RUN: [&str; 7] = ["killall5", "halt", "reboot", "poweroff", "shutdown", "init", "telinit"];

fn cah_patch_root(root: &Path) -> String {
    let out = Command::new(built_cah()).arg("patch").arg("--root").arg(root).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "cah patch --root failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout.lines().last().unwrap_or_default().to_string()
}

fn patched_root_behaves(suite: &str) {
    need_root();
    let tmp = tempfile::tempdir().unwrap();
    let plain = tmp.path().join("plain");
    let patched = tmp.path().join("patched");
    copy_root(&shared_root(suite), &plain);
    copy_root(&shared_root(suite), &patched);
    // What the package installs.
    std::fs::create_dir_all(patched.join("usr/lib/ld-cah")).unwrap();
    std::fs::copy(built_loader(Arch::X86_64), patched.join("usr/lib/ld-cah/ld-cah.so")).unwrap();

    let summary = cah_patch_root(&patched);
    assert!(summary.contains(" 0 failed"), "{summary}");
    let n: usize = summary.split(": ").nth(1).and_then(|s| s.split(' ').next()).and_then(|s| s.parse().ok()).unwrap_or(0);
    assert!(n > 100, "only {n} programs patched: {summary}");
    let bash = std::fs::read(patched.join("usr/bin/bash")).unwrap();
    assert!(bash.windows(25).any(|w| w == b"/usr/lib/ld-cah/ld-cah.so"), "bash does not name ld-cah as its interpreter");

    // Every program of /usr/bin and /usr/sbin, --version, both roots.
    let mut progs = Vec::new();
    for dir in ["usr/bin", "usr/sbin"] {
        for e in std::fs::read_dir(plain.join(dir)).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            if !NOT_RUN.contains(&name.as_str()) {
                progs.push(format!("/{dir}/{name}"));
            }
        }
    }
    progs.sort();
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let (compared, unstable) = (AtomicUsize::new(0), AtomicUsize::new(0));
    std::thread::scope(|s| {
        for _ in 0..6 {
            s.spawn(|| {
                while let Some(p) = progs.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let want = run_in(&plain, 3, &[p, "--version"]);
                    let got = run_in(&patched, 3, &[p, "--version"]);
                    if got == want {
                        compared.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    // A program whose own output varies (or that hangs until
                    // killed) is compared only if it varies unpatched too.
                    if run_in(&plain, 3, &[p, "--version"]) != want {
                        unstable.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    failures.lock().unwrap().push(format!("{p} --version:\n  unpatched {want:?}\n  patched   {got:?}"));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    eprintln!(
        "{suite}: {} programs, {} same output, {} vary by themselves",
        progs.len(),
        compared.load(Ordering::Relaxed),
        unstable.load(Ordering::Relaxed)
    );
    assert!(failures.is_empty(), "{suite}: {} programs differ:\n{}", failures.len(), failures.join("\n"));
    assert!(compared.load(Ordering::Relaxed) * 10 >= progs.len() * 9, "{suite}: too few programs compared");

    let same = |argv: &[&str]| {
        let want = run_in(&plain, 30, argv);
        assert_eq!(want.2, Some(0), "{argv:?} fails unpatched: {want:?}");
        assert_eq!(run_in(&patched, 30, argv), want, "{argv:?}");
    };
    same(&["/usr/bin/bash", "-c", "x=$(printf '%s\\n' b a c | sort | tr a-z A-Z); echo $x $((6*7)) ${BASH_VERSINFO[0]}"]);
    same(&["/usr/bin/dpkg", "-l"]);
    same(&["/usr/bin/apt-get", "--version"]);
    same(&["/usr/bin/apt-cache", "policy", "bash"]);
    same(&["/usr/bin/perl", "-MPOSIX", "-e", "print join(',', map { $_ * 2 } 1..5), ' ', floor(7.5), qq(\\n)"]);

    // A second run changes nothing at all.
    let before = tree_digest(&patched);
    let summary = cah_patch_root(&patched);
    assert!(summary.contains(": 0 patched"), "{summary}");
    assert!(before == tree_digest(&patched), "a second cah patch --root changed the root");

    // Replace a locked library (bash's libtinfo) by another file: bash
    // still starts, from the store's copy of the locked bytes.
    let tinfo = std::fs::canonicalize(patched.join("usr/lib/x86_64-linux-gnu/libtinfo.so.6")).unwrap();
    let other = std::fs::canonicalize(patched.join("usr/lib/x86_64-linux-gnu/libz.so.1")).unwrap();
    assert!(tinfo.starts_with(std::fs::canonicalize(&patched).unwrap()));
    std::fs::remove_file(&tinfo).unwrap();
    std::fs::copy(&other, &tinfo).unwrap();
    same(&["/usr/bin/bash", "-c", "echo $((6*7)) ${BASH_VERSINFO[0]}"]);
    same(&["/usr/bin/bash", "--version"]);
}

#[test]
fn bookworm_patched_root_behaves() {
    patched_root_behaves("bookworm");
}

#[test]
fn trixie_patched_root_behaves() {
    patched_root_behaves("trixie");
}

/// The package's dpkg trigger keeps a patched root patched: with the
/// package installed, the root patched and `/etc/ld-cah/patch-root`
/// present (what `cargo xtask image` does), a package installed from the
/// archive by the patched apt-get brings a program the trigger locks; it
/// then runs under ld-cah and verifies. Needs the Debian archive, as the
/// roots themselves do.
#[test]
fn archive_package_runs_after_the_trigger() {
    need_root();
    let deb = cah_tests::root().join(format!("target/debian/ld-cah_{}-1_amd64.deb", env!("CARGO_PKG_VERSION")));
    assert!(deb.exists(), "{} missing: run `cargo xtask package`", deb.display());
    let tmp = tempfile::tempdir().unwrap();
    let r = tmp.path().join("root");
    copy_root(&shared_root("bookworm"), &r);
    std::fs::copy(&deb, r.join("tmp/ld-cah.deb")).unwrap();
    let (out, err, code) = run_in(&r, 60, &["dpkg", "-i", "/tmp/ld-cah.deb"]);
    assert_eq!(code, Some(0), "dpkg -i:\n{out}\n{err}");
    std::fs::create_dir_all(r.join("etc/ld-cah")).unwrap();
    std::fs::write(r.join("etc/ld-cah/patch-root"), "").unwrap();
    let summary = cah_patch_root(&r);
    assert!(summary.contains(" 0 failed"), "{summary}");
    let apt = std::fs::read(r.join("usr/bin/apt-get")).unwrap();
    assert!(apt.windows(25).any(|w| w == b"/usr/lib/ld-cah/ld-cah.so"), "apt-get is not patched");

    // Name resolution inside the chroot, as apt needs it.
    std::fs::copy("/etc/resolv.conf", r.join("etc/resolv.conf")).unwrap();
    let (out, err, code) = run_in(&r, 300, &["apt-get", "update"]);
    assert_eq!(code, Some(0), "apt-get update in the patched root:\n{out}\n{err}");
    let (out, err, code) = run_in(&r, 300, &["apt-get", "install", "-y", "--no-install-recommends", "hello"]);
    assert_eq!(code, Some(0), "apt-get install hello in the patched root:\n{out}\n{err}");
    assert!(out.contains("Processing triggers for ld-cah"), "the trigger did not run:\n{out}\n{err}");
    assert!(out.contains(": 1 patched,"), "the trigger did not patch the new program:\n{out}\n{err}");
    let hello = std::fs::read(r.join("usr/bin/hello")).unwrap();
    assert!(hello.windows(25).any(|w| w == b"/usr/lib/ld-cah/ld-cah.so"), "/usr/bin/hello does not name ld-cah");
    let (out, err, code) = run_in(&r, 10, &["/usr/bin/hello"]);
    assert_eq!((out.as_str(), code), ("Hello, world!\n", Some(0)), "{err}");
    let (out, err, code) = run_in(&r, 10, &["/usr/bin/cah", "verify", "/usr/bin/hello"]);
    assert_eq!(code, Some(0), "cah verify in the root:\n{out}\n{err}");
    assert!(out.contains("/usr/bin/hello: verified"), "{out}");
}
