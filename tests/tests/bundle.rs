//! `cah bundle`: a bundle runs after a move and in a chroot whose root
//! holds nothing but the bundle, with `/proc/self/exe` the bundle's
//! `bin/NAME` and argv[0] as the caller gave it; a swapped library in the
//! bundle is refused. A C++ program (libstdc++, a `dlopen`ed library named
//! with `--also`) and the system's python3 with its standard library and C
//! extensions (`--data`). Runs as root (chroot, mounting /proc).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use cah_tests::{built_cah, built_loader, need_root, Arch};

const HELLO: &str = r#"
#include <dlfcn.h>
#include <unistd.h>
#include <iostream>
#include <stdexcept>
#include <string>
int main(int argc, char **argv) {
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    std::string e = n < 0 ? std::string("no-proc") : std::string(exe, n);
    void *z = dlopen("libz.so.1", RTLD_NOW);
    if (!z) { std::cout << "dlopen: " << dlerror() << "\n"; return 3; }
    auto ver = reinterpret_cast<const char *(*)()>(dlsym(z, "zlibVersion"));
    try { throw std::runtime_error("thrown"); } catch (const std::exception &x) {
        std::cout << "argv0=" << argv[0] << " exe=" << e << " args=" << argc - 1 << " zlib=" << ver() << " " << x.what() << "\n";
    }
    return 0;
}
"#;

/// `cah bundle ARGS -o out`, asserting success.
fn bundle(args: &[&std::ffi::OsStr], out: &Path) {
    let o = Command::new(built_cah())
        .arg("bundle")
        .args(args)
        .arg("--loader")
        .arg(built_loader(Arch::X86_64))
        .arg("-o")
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "cah bundle: {}", String::from_utf8_lossy(&o.stderr));
}

/// stdout, stderr and exit status of `cmd` in an empty environment.
fn run(cmd: &mut Command) -> (String, String, Option<i32>) {
    let o = cmd.env_clear().output().unwrap();
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned(), o.status.code())
}

/// `/proc` mounted at `root/proc` while `f` runs.
fn with_proc<T>(root: &Path, f: impl FnOnce() -> T) -> T {
    let proc_dir = root.join("proc");
    std::fs::create_dir_all(&proc_dir).unwrap();
    let st = Command::new("mount").args(["-t", "proc", "proc"]).arg(&proc_dir).status().unwrap();
    assert!(st.success(), "mount -t proc");
    let r = f();
    let _ = Command::new("umount").arg("-l").arg(&proc_dir).status();
    r
}

/// The zlib version the host's libz reports, through python3's zlib
/// module (glibc's loader, not ld-cah).
fn host_zlib() -> String {
    let o = Command::new("/usr/bin/python3").args(["-c", "import zlib; print(zlib.ZLIB_RUNTIME_VERSION)"]).output().unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn cxx_bundle_runs_moved_and_in_an_empty_chroot() {
    need_root();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("hello.cc");
    std::fs::write(&src, HELLO).unwrap();
    let prog = t.path().join("hello");
    let st = Command::new("g++").arg("-O1").arg("-o").arg(&prog).arg(&src).status().unwrap();
    assert!(st.success(), "g++");
    let b = t.path().join("b");
    bundle(&[prog.as_os_str(), "--also".as_ref(), "libz.so.1".as_ref()], &b);
    let zlib = host_zlib();
    assert!(!zlib.is_empty());

    // In place, with argv[0] chosen by the caller.
    let exe = b.join("bin/hello");
    let out = run(Command::new(&exe).arg0("my-name").arg("x"));
    assert_eq!(out, (format!("argv0=my-name exe={} args=1 zlib={zlib} thrown\n", exe.display()), String::new(), Some(0)));

    // Moved.
    let moved = t.path().join("elsewhere");
    std::fs::rename(&b, &moved).unwrap();
    let exe = moved.join("bin/hello");
    let out = run(Command::new(&exe).arg("a").arg("b"));
    assert_eq!(out, (format!("argv0={} exe={} args=2 zlib={zlib} thrown\n", exe.display(), exe.display()), String::new(), Some(0)));

    // In a chroot holding only the bundle: without /proc, then with it.
    let root = t.path().join("root");
    std::fs::create_dir_all(root.join("opt")).unwrap();
    std::fs::rename(&moved, root.join("opt/b")).unwrap();
    let out = run(Command::new("/usr/sbin/chroot").arg(&root).arg("/opt/b/bin/hello"));
    assert_eq!(out, (format!("argv0=/opt/b/bin/hello exe=no-proc args=0 zlib={zlib} thrown\n"), String::new(), Some(0)));
    let out = with_proc(&root, || run(Command::new("/usr/sbin/chroot").arg(&root).arg("/opt/b/bin/hello")));
    assert_eq!(out, (format!("argv0=/opt/b/bin/hello exe=/opt/b/bin/hello args=0 zlib={zlib} thrown\n"), String::new(), Some(0)));

    // A swapped library in the bundle is refused, naming it: a needed one
    // at start-up, a dlopened one by dlopen. (Outside a chroot the
    // system's own copy with the locked digest would be taken instead.)
    let swap = |name: &str| {
        let lib = root.join("opt/b/lib").join(name);
        let mut bytes = std::fs::read(&lib).unwrap();
        std::fs::remove_file(&lib).unwrap();
        bytes.extend_from_slice(b"swapped");
        std::fs::write(&lib, bytes).unwrap();
    };
    swap("libz.so.1");
    let (stdout, _, code) = run(Command::new("/usr/sbin/chroot").arg(&root).arg("/opt/b/bin/hello"));
    assert_eq!(code, Some(3), "ran with a swapped libz: {stdout}");
    assert!(stdout.starts_with("dlopen: ") && stdout.contains("libz.so.1"), "{stdout}");
    swap("libstdc++.so.6");
    let (stdout, stderr, code) = run(Command::new("/usr/sbin/chroot").arg(&root).arg("/opt/b/bin/hello"));
    assert_eq!((stdout.as_str(), code), ("", Some(127)));
    assert!(stderr.starts_with("ld-cah.so: error: ") && stderr.contains("libstdc++.so.6") && stderr.lines().count() == 1, "{stderr}");
}

#[test]
fn python3_bundle_imports_ssl_sqlite3_json_in_an_empty_chroot() {
    need_root();
    let t = tempfile::tempdir().unwrap();
    let b = t.path().join("py");
    bundle(&["/usr/bin/python3".as_ref(), "--data".as_ref(), python_lib().as_os_str()], &b);
    let script = "import ssl, sqlite3, json, os, sys\n\
        exe = os.readlink('/proc/self/exe') if os.path.exists('/proc/self') else 'no-proc'\n\
        print(sys.argv[0], sys.executable, sys.prefix, exe, json.dumps([sqlite3.connect(':memory:').execute('select 6*7').fetchone()[0], ssl.OPENSSL_VERSION.split()[0]]))";

    // Moved first.
    let moved = t.path().join("moved");
    std::fs::rename(&b, &moved).unwrap();
    let exe = moved.join("bin/python3");
    let out = run(Command::new(&exe).arg("-c").arg(script));
    let m = moved.display();
    assert_eq!(out, (format!("-c {m}/bin/python3 {m} {m}/bin/python3 [42, \"OpenSSL\"]\n"), String::new(), Some(0)));

    let root = t.path().join("root");
    std::fs::create_dir_all(root.join("opt")).unwrap();
    std::fs::rename(&moved, root.join("opt/py")).unwrap();
    let out = run(Command::new("/usr/sbin/chroot").arg(&root).arg("/opt/py/bin/python3").arg("-c").arg(script));
    assert_eq!(out, ("-c /opt/py/bin/python3 /opt/py no-proc [42, \"OpenSSL\"]\n".to_string(), String::new(), Some(0)));
    let out = with_proc(&root, || run(Command::new("/usr/sbin/chroot").arg(&root).arg("/opt/py/bin/python3").arg("-c").arg(script)));
    assert_eq!(out, ("-c /opt/py/bin/python3 /opt/py /opt/py/bin/python3 [42, \"OpenSSL\"]\n".to_string(), String::new(), Some(0)));
    // Nothing of the root's own: the chroot holds only the bundle (and /proc).
    let top: Vec<_> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(top.iter().all(|n| n == "opt" || n == "proc"), "{top:?}");
}

/// The system python3's standard library directory (`/usr/lib/python3.N`).
fn python_lib() -> PathBuf {
    let o = Command::new("/usr/bin/python3").args(["-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])"]).output().unwrap();
    PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())
}
