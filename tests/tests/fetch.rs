//! `cah fetch`: a locked program whose library is gone runs after the
//! library is fetched by digest from a remote store served by a real HTTP
//! server on the loopback (`python3 -m http.server`); a tampered file on
//! the server is refused and never enters the store; the loader's error
//! for the missing library names its digest and `cah fetch`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use cah_tests::{built_cah, built_loader, Arch};

/// `python3 -m http.server` serving `dir` on a free loopback port; killed
/// on drop.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let mut child = Command::new("/usr/bin/python3")
            .args(["-u", "-m", "http.server", "--bind", "127.0.0.1", "0", "--directory"])
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // "Serving HTTP on 127.0.0.1 port 40123 (http://127.0.0.1:40123/) ..."
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port =
            line.split(" port ").nth(1).and_then(|r| r.split_whitespace().next()).unwrap_or_else(|| panic!("http.server said {line:?}"));
        Server { url: format!("http://127.0.0.1:{port}"), child }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(cmd: &mut Command) -> (String, String, Option<i32>) {
    let o = cmd.output().unwrap();
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned(), o.status.code())
}

#[test]
fn missing_library_runs_after_fetch_and_tampered_file_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    std::fs::create_dir(d.join("lib")).unwrap();
    std::fs::write(d.join("f.c"), "int fetchme(void) { return 42; }\n").unwrap();
    std::fs::write(
        d.join("p.c"),
        "#include <stdio.h>\nint fetchme(void);\nint main(void) { printf(\"fetchme=%d\\n\", fetchme()); return 0; }\n",
    )
    .unwrap();
    let lib = d.join("lib/libfetchme.so.1");
    let cc = |args: &[&str]| assert!(Command::new("gcc").current_dir(d).args(args).status().unwrap().success(), "gcc {args:?}");
    cc(&["-shared", "-fPIC", "-Wl,-soname,libfetchme.so.1", "-o", "lib/libfetchme.so.1", "f.c"]);
    cc(&["-o", "p", "p.c", "lib/libfetchme.so.1", "-Wl,-rpath,$ORIGIN/lib"]);
    let remote = d.join("remote");
    let prog = d.join("p.locked");
    let (_, err, code) = run(Command::new(built_cah())
        .arg("patch")
        .arg(d.join("p"))
        .arg("-o")
        .arg(&prog)
        .arg("--interp")
        .arg(built_loader(Arch::X86_64))
        .arg("--store")
        .arg(&remote));
    assert_eq!(code, Some(0), "cah patch: {err}");
    // The library's digest: the remote file with its content.
    let bytes = std::fs::read(&lib).unwrap();
    let hex = std::fs::read_dir(&remote)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| std::fs::read(p).unwrap() == bytes)
        .expect("library in the remote store")
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    std::fs::remove_file(&lib).unwrap();

    let local = d.join("local");
    let start = |store: &Path| run(Command::new(&prog).env_clear().env("CAH_STORE", store).env("CAH_CACHE_DIR", d));
    let (out, err, code) = start(&local);
    assert_eq!((out.as_str(), code), ("", Some(127)));
    assert!(
        err.contains(&format!("libfetchme.so.1 (blake3:{hex}): no matching file")) && err.contains("cah fetch"),
        "loader's error: {err}"
    );

    let server = Server::start(&remote);
    let (out, err, code) = run(Command::new(built_cah()).arg("fetch").arg(&prog).arg("--from").arg(&server.url).arg("--store").arg(&local));
    assert_eq!(code, Some(0), "cah fetch: {out}{err}");
    assert!(out.contains(&format!("fetched   libfetchme.so.1  blake3:{hex}")), "{out}");
    assert_eq!(std::fs::read(local.join(&hex)).unwrap(), bytes);
    assert_eq!(start(&local), ("fetchme=42\n".to_string(), String::new(), Some(0)));

    // Tampered on the server: refused, never stored; remote from CAH_REMOTE.
    let served = remote.join(&hex);
    let mut evil = bytes.clone();
    evil[bytes.len() - 1] ^= 1;
    std::fs::remove_file(&served).unwrap();
    std::fs::write(&served, &evil).unwrap();
    let other = d.join("other");
    let (out, err, code) = run(Command::new(built_cah()).arg("fetch").arg(&prog).arg("--store").arg(&other).env("CAH_REMOTE", &server.url));
    assert_eq!(code, Some(1), "cah fetch of a tampered file: {out}{err}");
    assert!(out.contains(&format!("failed    libfetchme.so.1  blake3:{hex}")) && out.contains("refused"), "{out}");
    assert!(!other.join(&hex).exists(), "tampered file stored");
    let (out, _, code) = start(&other);
    assert_eq!((out.as_str(), code), ("", Some(127)));
    // A server without the file: a clear failure too.
    std::fs::remove_file(&served).unwrap();
    let (out, _, code) = run(Command::new(built_cah()).arg("fetch").arg(&prog).arg("--from").arg(&server.url).arg("--store").arg(&other));
    assert_eq!(code, Some(1));
    assert!(out.contains("failed    libfetchme.so.1") && out.contains("404"), "{out}");
}
