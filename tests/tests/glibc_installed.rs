//! Installed layout tables (`cah glibc add`, docs/glibc-table-format.md),
//! end to end, with a loader that has no built-in table
//! (`cargo xtask build --no-builtin-layouts x86_64`, built by `cargo xtask
//! test`): this machine's programs are refused with one line naming the
//! command, run after `cah glibc add` exactly as under glibc's loader, and
//! a table that is damaged, edited, made for another libc, or has the
//! wrong owner or mode is refused with one line naming the file and why.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use cah_tests::{built_cah, root, run_clean as run};

const LIBC: &str = "/lib/x86_64-linux-gnu/libc.so.6";

fn loader() -> PathBuf {
    let p = root().join("target/ld-cah-notables/x86_64/ld-cah.so");
    assert!(p.exists(), "{} is missing: run `cargo xtask build --no-builtin-layouts x86_64`", p.display());
    p
}

fn tree(suite: &str) -> PathBuf {
    let t = root().join(format!("target/glibc-dbg/{suite}_amd64"));
    assert!(t.join(".version").exists(), "{} missing: run `cargo xtask glibc-layouts --check`", t.display());
    t
}

/// `cah glibc add LIBC --debug DEBUG --dir DIR`; returns the table's path.
fn add(libc: &Path, debug: &Path, dir: &Path) -> PathBuf {
    let out = Command::new(built_cah()).args(["glibc", "add"]).arg(libc).arg("--debug").arg(debug).arg("--dir").arg(dir).output().unwrap();
    assert!(out.status.success(), "cah glibc add {}: {}", libc.display(), String::from_utf8_lossy(&out.stderr));
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// `prog args` under the table-less loader with `CAH_GLIBC_DIR=dir` (and
/// otherwise the environment of `run_clean`).
fn under_cah(dir: &Path, prog: &str, args: &[&str]) -> (String, String, Option<i32>) {
    let out = Command::new(loader())
        .arg(prog)
        .args(args)
        .env_clear()
        .env("LC_ALL", "C")
        .env("PATH", "/usr/bin:/bin")
        .env("CAH_GLIBC_DIR", dir)
        .output()
        .expect("spawn");
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned(), out.status.code())
}

/// Runs under ld-cah must be refused with one line that says `what`.
fn refused(dir: &Path, what: &[&str]) {
    let (out, err, status) = under_cah(dir, "/bin/echo", &["hello"]);
    assert_eq!((out.as_str(), status), ("", Some(127)), "refused: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with("ld-cah.so: error: ") && err.contains("has no layout table"), "{err}");
    for w in what {
        assert!(err.contains(w), "says `{w}`: {err}");
    }
}

const PROGRAMS: &[(&str, &[&str])] = &[
    ("/bin/echo", &["hello", "world"]),
    ("/bin/ls", &["-d", "/", "/usr"]),
    ("/usr/bin/python3", &["-c", "import ssl, threading, hashlib; t = threading.Thread(target=print, args=(hashlib.sha256(b'x').hexdigest()[:8], ssl.OPENSSL_VERSION_INFO[0])); t.start(); t.join()"]),
];

#[test]
fn refused_then_runs_after_cah_glibc_add() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("glibc");
    let add_line = format!("add one with `cah glibc add {LIBC}`");
    refused(&dir, &[&add_line, "no table for this version"]);

    let table = add(Path::new(LIBC), &tree("bookworm").join("usr/lib/debug"), &dir);
    assert_eq!(table.parent(), Some(dir.as_path()));
    assert_eq!(fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o755);
    assert_eq!(fs::metadata(&table).unwrap().permissions().mode() & 0o777, 0o644);
    for (prog, args) in PROGRAMS {
        let reference = run(Command::new(prog).args(*args));
        assert_eq!(reference.2, Some(0), "{prog} under glibc's loader: {reference:?}");
        assert_eq!(under_cah(&dir, prog, args), reference, "{prog} {args:?}: ld-cah with the installed table");
    }
    // `cah glibc ls` lists it.
    let ls = Command::new(built_cah()).args(["glibc", "ls", "--dir"]).arg(&dir).output().unwrap();
    let text = String::from_utf8(ls.stdout).unwrap();
    let id = table.file_stem().unwrap().to_str().unwrap();
    assert!(ls.status.success() && text.starts_with(&format!("{id}  glibc 2.")), "{text}");
}

#[test]
fn bad_tables_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("glibc");
    let table = add(Path::new(LIBC), &tree("bookworm").join("usr/lib/debug"), &dir);
    let good = fs::read(&table).unwrap();
    let name = table.to_str().unwrap().to_string();
    let put = |bytes: &[u8]| {
        fs::remove_file(&table).ok();
        fs::write(&table, bytes).unwrap();
        fs::set_permissions(&table, fs::Permissions::from_mode(0o644)).unwrap();
    };
    assert_eq!(under_cah(&dir, "/bin/echo", &["ok"]).0, "ok\n");

    // One byte flipped, anywhere after the magic.
    for at in [9, 20, 50, good.len() / 2, good.len() - 1] {
        let mut bad = good.clone();
        bad[at] ^= 0x40;
        put(&bad);
        refused(&dir, &[&format!("the installed table {name} was refused"), "cah glibc add"]);
    }
    // Cut short.
    put(&good[..good.len() - 10]);
    refused(&dir, &["damaged or edited"]);

    // A table for another libc under this libc's name.
    let other_dir = tmp.path().join("other");
    let trixie = tree("trixie");
    let other = add(&trixie.join("usr/lib/x86_64-linux-gnu/libc.so.6"), &trixie.join("usr/lib/debug"), &other_dir);
    put(&fs::read(other).unwrap());
    refused(&dir, &["made for another libc build"]);

    // Owner and mode.
    put(&good);
    fs::set_permissions(&table, fs::Permissions::from_mode(0o666)).unwrap();
    refused(&dir, &["writable by group or others"]);
    fs::set_permissions(&table, fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
    refused(&dir, &["its directory is writable by group or others"]);
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    if run(Command::new("id").arg("-u")).0.trim() == "0" {
        let st = Command::new("chown").arg("65534").arg(&table).status().unwrap();
        assert!(st.success());
        refused(&dir, &["owned by another user"]);
        Command::new("chown").arg("0").arg(&table).status().unwrap();
    } else {
        eprintln!("not root: the owner rule is not tested");
    }
    // A symbolic link is not followed.
    let real = tmp.path().join("real.table");
    fs::rename(&table, &real).unwrap();
    std::os::unix::fs::symlink(&real, &table).unwrap();
    refused(&dir, &["a symbolic link"]);
    fs::remove_file(&table).unwrap();
    fs::rename(&real, &table).unwrap();
    assert_eq!(under_cah(&dir, "/bin/echo", &["ok"]).0, "ok\n", "the good table again");
}

/// Kills the server when the test ends, however it ends.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `cah glibc add` without --debug: the debug files come from a real
/// `debuginfod` serving trixie's libc6-dbg .deb on the loopback (trixie's,
/// because this machine's own /usr/lib/debug may hold bookworm's), and the
/// table is byte for byte the one made from the unpacked tree.
#[test]
fn debug_info_from_debuginfod() {
    let trixie = tree("trixie");
    let version = fs::read_to_string(trixie.join(".version")).unwrap();
    let deb = root().join(format!("target/glibc-dbg/debs/libc6-dbg_{}_amd64.deb", version.trim().replace(':', "%3a")));
    assert!(deb.exists(), "{} missing: run `cargo xtask glibc-layouts --check`", deb.display());
    let libc = trixie.join("usr/lib/x86_64-linux-gnu/libc.so.6");
    let tmp = tempfile::tempdir().unwrap();
    let reference = fs::read(add(&libc, &trixie.join("usr/lib/debug"), &tmp.path().join("ref"))).unwrap();

    // Without debug info anywhere: one clear error.
    let out = Command::new(built_cah())
        .args(["glibc", "add"])
        .arg(&libc)
        .arg("--dir")
        .arg(tmp.path().join("none"))
        .env_remove("DEBUGINFOD_URLS")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no debug file for build id") && err.contains("DEBUGINFOD_URLS"), "{err}");

    let debs = tmp.path().join("debs");
    fs::create_dir(&debs).unwrap();
    fs::copy(&deb, debs.join(deb.file_name().unwrap())).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let server = Command::new("debuginfod")
        .arg("-p")
        .arg(port.to_string())
        .arg("-d")
        .arg(tmp.path().join("db.sqlite"))
        // `-U` would unpack .deb files with bsdtar; dpkg-deb is at hand.
        .args(["-t", "0", "-g", "0", "-Z", ".deb=dpkg-deb --fsys-tarfile"])
        .arg(&debs)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("debuginfod (Debian package `debuginfod`; `cargo xtask deps`)");
    let _server = Server(server);
    let url = format!("http://127.0.0.1:{port}");

    // Wait for the scan of the .deb: the libc's debug file is served.
    let ls = Command::new(built_cah()).args(["glibc", "ls", "--dir"]).arg(tmp.path().join("ref")).output().unwrap();
    let id = String::from_utf8(ls.stdout).unwrap().split_whitespace().next().unwrap().to_string();
    let probe = format!("{url}/buildid/{id}/debuginfo");
    let t0 = std::time::Instant::now();
    while !Command::new("curl").args(["-sf", "-o", "/dev/null", &probe]).status().unwrap().success() {
        assert!(t0.elapsed().as_secs() < 120, "debuginfod did not serve {probe} within 120 s");
        std::thread::sleep(std::time::Duration::from_millis(500));
    }

    let dir = tmp.path().join("glibc");
    let out = Command::new(built_cah())
        .args(["glibc", "add"])
        .arg(&libc)
        .arg("--dir")
        .arg(&dir)
        .env("DEBUGINFOD_URLS", format!("http://127.0.0.1:1 {url}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    assert_eq!(fs::read(table).unwrap(), reference, "the same table as from the unpacked .deb");
}
