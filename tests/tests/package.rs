//! The Debian packages of `cargo xtask package` (docs/packaging.md).
//!
//! amd64: installed with `dpkg -i` inside copies of the bookworm and trixie
//! root file systems (`cargo xtask rootfs`; copied with `cp -a` under
//! `target/package-test/`, so the roots other tests chroot into stay
//! pristine), used, removed and purged; after the purge the copy must hold
//! the same files as before the install (dpkg's own records apart).
//! arm64: the package's metadata and contents, without running it.
//! Needs root (chroot, dpkg), which CI has.

use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use cah_tests::root;

/// `target/debian/ld-cah_<version>-1_<arch>.deb`, as `cargo xtask package` writes it.
fn deb(arch: &str) -> PathBuf {
    let p = root().join(format!("target/debian/ld-cah_{}-1_{arch}.deb", env!("CARGO_PKG_VERSION")));
    assert!(p.exists(), "{} missing: run `cargo xtask package`", p.display());
    p
}

fn run(cmd: &mut Command) -> (String, String, Option<i32>) {
    let out = cmd
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LC_ALL", "C")
        .env("HOME", "/root")
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned(), out.status.code())
}

fn ok(cmd: &mut Command) -> String {
    let desc = format!("{cmd:?}");
    let (out, err, status) = run(cmd);
    assert_eq!(status, Some(0), "{desc} failed:\n{out}\n{err}");
    out
}

/// The files every amd64/arm64 package holds.
const FILES: &[&str] = &[
    "usr/lib/ld-cah/ld-cah.so",
    "usr/bin/cah",
    "usr/share/man/man1/cah.1.gz",
    "usr/share/man/man1/cah-patch.1.gz",
    "usr/share/man/man1/cah-store-add.1.gz",
    "usr/share/bash-completion/completions/cah",
    "usr/share/zsh/vendor-completions/_cah",
    "usr/share/fish/vendor_completions.d/cah.fish",
    "usr/share/doc/ld-cah/README.md",
    "usr/share/doc/ld-cah/cah.md",
    "usr/share/doc/ld-cah/packaging.md",
    "usr/share/doc/ld-cah/copyright",
    "usr/lib/tmpfiles.d/ld-cah.conf",
];

/// A copy of a root file system, removed on drop.
struct Copy {
    dir: PathBuf,
}

impl Copy {
    /// `name` tells apart the copies of tests running at once.
    fn new(suite: &str, name: &str) -> Copy {
        let src = root().join(format!("target/rootfs/{suite}-amd64"));
        assert!(src.join("bin/bash").exists(), "{} missing: run `cargo xtask rootfs {suite}`", src.display());
        let dir = root().join(format!("target/package-test/{suite}-amd64-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
        ok(Command::new("cp").arg("-a").arg(&src).arg(&dir));
        Copy { dir }
    }

    fn chroot(&self, argv: &[&str]) -> (String, String, Option<i32>) {
        run(Command::new("/usr/sbin/chroot").arg(&self.dir).args(argv))
    }

    fn chroot_ok(&self, argv: &[&str]) -> String {
        let (out, err, status) = self.chroot(argv);
        assert_eq!(status, Some(0), "chroot {} {argv:?} failed:\n{out}\n{err}", self.dir.display());
        out
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.join(p.trim_start_matches('/'))
    }

    /// Every path in the root, except dpkg's and apt's bookkeeping, logs
    /// and /tmp, which an install and a purge legitimately change.
    fn listing(&self) -> BTreeSet<String> {
        let out = ok(Command::new("find").arg(".").current_dir(&self.dir));
        out.lines()
            .filter(|l| !["./var/lib/dpkg/", "./var/log/", "./tmp/", "./var/cache/"].iter().any(|p| l.starts_with(p)))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Copy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A directory owned by root, mode 0755.
fn assert_root_dir(p: &Path) {
    let m = std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert!(m.is_dir(), "{} is not a directory", p.display());
    assert_eq!((m.uid(), m.gid(), m.permissions().mode() & 0o7777), (0, 0, 0o755), "{}: owner or mode", p.display());
}

fn install_remove_purge(suite: &str) {
    let r = Copy::new(suite, "cycle");
    let before = r.listing();
    std::fs::copy(deb("amd64"), r.path("/tmp/ld-cah.deb")).unwrap();
    r.chroot_ok(&["dpkg", "-i", "/tmp/ld-cah.deb"]);
    std::fs::remove_file(r.path("/tmp/ld-cah.deb")).unwrap();

    for f in FILES {
        assert!(r.path(f).is_file(), "{suite}: /{f} not installed");
    }
    assert_eq!(std::fs::metadata(r.path("usr/bin/cah")).unwrap().permissions().mode() & 0o777, 0o755);
    // The hidden asset generator appears nowhere a user looks.
    let completion = std::fs::read_to_string(r.path("usr/share/bash-completion/completions/cah")).unwrap();
    assert!(completion.contains("patch") && !completion.contains("generate-assets"), "bash completion");
    let help = r.chroot_ok(&["/usr/bin/cah", "--help"]);
    assert!(help.contains("patch") && !help.contains("generate-assets"), "{help}");

    let version = r.chroot_ok(&["/usr/bin/cah", "--version"]);
    assert_eq!(version.trim(), format!("cah {}", env!("CARGO_PKG_VERSION")));
    assert_eq!(r.chroot_ok(&["/usr/lib/ld-cah/ld-cah.so", "/bin/echo", "hi"]), "hi\n");
    if r.path("usr/bin/man").exists() {
        assert_eq!(r.chroot_ok(&["man", "-w", "cah"]).trim(), "/usr/share/man/man1/cah.1.gz");
    } else {
        // minbase has no man-db: the page must at least be a gzipped roff page.
        let page = ok(Command::new("zcat").arg(r.path("usr/share/man/man1/cah.1.gz")));
        assert!(page.contains(".TH cah 1") && page.contains("cah\\-patch(1)"), "{page}");
    }

    // What postinst makes.
    assert_root_dir(&r.path("var/lib/cah"));
    assert_root_dir(&r.path("var/lib/cah/store"));
    assert_root_dir(&r.path("run/ld-cah"));
    let tmpfiles = std::fs::read_to_string(r.path("usr/lib/tmpfiles.d/ld-cah.conf")).unwrap();
    assert!(
        tmpfiles.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["d", "/run/ld-cah", "0755", "root", "root", "-"]),
        "{tmpfiles}"
    );

    // The package's loader is where `cah patch` points PT_INTERP: a patched
    // program runs, verified, and root's run fills the system hash cache.
    r.chroot_ok(&["/usr/bin/cah", "patch", "/bin/echo", "-o", "/tmp/echo-locked"]);
    assert_eq!(r.chroot_ok(&["/tmp/echo-locked", "locked"]), "locked\n");
    r.chroot_ok(&["/usr/bin/cah", "verify", "/tmp/echo-locked"]);
    assert!(r.path("run/ld-cah/hashes").is_file(), "{suite}: no /run/ld-cah/hashes after a verified run as root");
    std::fs::remove_file(r.path("tmp/echo-locked")).unwrap();

    // Remove: the programs go, the store and the cache stay.
    r.chroot_ok(&["dpkg", "-r", "ld-cah"]);
    for f in FILES {
        assert!(!r.path(f).exists(), "{suite}: /{f} left after dpkg -r");
    }
    assert!(r.path("var/lib/cah/store").is_dir() && r.path("run/ld-cah").is_dir(), "{suite}: dpkg -r removed the store or the cache");

    // Purge: the empty store and the cache directory go too.
    r.chroot_ok(&["dpkg", "-P", "ld-cah"]);
    for d in ["var/lib/cah", "run/ld-cah"] {
        assert!(!r.path(d).exists(), "{suite}: /{d} left after dpkg -P");
    }
    let (_, _, status) = r.chroot(&["dpkg", "-s", "ld-cah"]);
    assert_ne!(status, Some(0), "{suite}: ld-cah still known to dpkg after the purge");
    let after = r.listing();
    assert_eq!(
        after.symmetric_difference(&before).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "{suite}: install + purge did not leave the root as it was"
    );
}

#[test]
fn amd64_bookworm() {
    install_remove_purge("bookworm");
}

#[test]
fn amd64_trixie() {
    install_remove_purge("trixie");
}

/// A purge keeps a store that still holds files (a user's data).
#[test]
fn purge_keeps_a_nonempty_store() {
    let r = Copy::new("bookworm", "store");
    std::fs::copy(deb("amd64"), r.path("/tmp/ld-cah.deb")).unwrap();
    r.chroot_ok(&["dpkg", "-i", "/tmp/ld-cah.deb"]);
    r.chroot_ok(&["/usr/bin/cah", "store", "add", "/bin/echo"]);
    r.chroot_ok(&["dpkg", "-P", "ld-cah"]);
    let left: Vec<_> = std::fs::read_dir(r.path("var/lib/cah/store")).unwrap().collect();
    assert_eq!(left.len(), 1, "the store's file must survive the purge");
}

/// Control fields, the file list, and the arch of the ELF files.
fn check_deb(arch: &str, elf: &str) {
    let deb = deb(arch);
    let info = ok(Command::new("dpkg-deb").arg("-I").arg(&deb));
    for field in [
        "Package: ld-cah".to_string(),
        format!("Version: {}-1", env!("CARGO_PKG_VERSION")),
        format!("Architecture: {arch}"),
        "Depends: libc6 (>= 2.36)".into(),
    ] {
        assert!(info.lines().any(|l| l.trim() == field), "{arch}: no `{field}` in\n{info}");
    }
    assert!(info.contains("postinst") && info.contains("postrm"), "{info}");
    let list = ok(Command::new("dpkg-deb").arg("-c").arg(&deb));
    for f in FILES {
        assert!(list.lines().any(|l| l.ends_with(&format!(" ./{f}"))), "{arch}: /{f} not in\n{list}");
    }
    assert!(list.lines().all(|l| l.contains(" root/root ")), "{arch}: files not owned by root\n{list}");
    let dir = tempfile::tempdir().unwrap();
    ok(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(dir.path()));
    for f in ["usr/lib/ld-cah/ld-cah.so", "usr/bin/cah"] {
        let desc = ok(Command::new("file").arg("-b").arg(dir.path().join(f)));
        assert!(desc.contains(elf), "{arch}: /{f} is not {elf}: {desc}");
    }
    let so = ok(Command::new("file").arg("-b").arg(dir.path().join("usr/lib/ld-cah/ld-cah.so")));
    assert!(so.contains("static-pie linked"), "{arch}: the loader is not static: {so}");
}

#[test]
fn amd64_contents() {
    check_deb("amd64", "x86-64");
}

#[test]
fn arm64_contents() {
    check_deb("arm64", "ARM aarch64");
}
