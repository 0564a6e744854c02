//! The bytes that run are the bytes whose digest matched, also when another
//! user can write the library file.
//!
//! A locked program needs `libw.so`, owned and writable by uid 65534 (the
//! attacker), and is run by root (the victim). The attacker rewrites eight
//! bytes of the library's read-only data (`ORIGINAL` -> `REWRITES`), two
//! ways:
//!
//! - a writer process flipping them with `pwrite` while 300 launches run:
//!   before ld-cah copied such files, a launch could hash the original and
//!   then map the rewritten bytes;
//! - a write through a shared mapping the attacker already dirtied, which
//!   changes neither size nor times, so a cache keyed on them would vouch
//!   for the new bytes.
//!
//! Every launch must print `ORIGINAL` or be refused with the loader's one
//! line (exit 127); none may print `REWRITES`. Needs root (chown, running
//! as another user), which CI has. x86_64 only: the rule and the copy are
//! arch-independent code, and 300 launches under qemu would take minutes.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cah_tests::{built_cah, built_loader, root, Arch};

const LIB_C: &str = "const char *word(void) { return \"ORIGINAL\"; }\n";
const PROG_C: &str = "#include <stdio.h>\nconst char *word(void);\nint main(void) { puts(word()); return 0; }\n";

/// A scratch directory with the locked program and the attacker's library.
struct Setup {
    dir: PathBuf,
    prog: PathBuf,
    lib: PathBuf,
}

impl Setup {
    fn new(name: &str) -> Setup {
        cah_tests::need_root();
        let dir = root().join(format!("target/cah-tests/writable-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("lib")).unwrap();
        std::fs::write(dir.join("w.c"), LIB_C).unwrap();
        std::fs::write(dir.join("p.c"), PROG_C).unwrap();
        let lib = dir.join("lib/libw.so");
        sh(Command::new("gcc").args(["-shared", "-fPIC", "-O1", "-o"]).arg(&lib).arg(dir.join("w.c")));
        let plain = dir.join("p-plain");
        sh(Command::new("gcc")
            .arg("-o")
            .arg(&plain)
            .arg(dir.join("p.c"))
            .arg("-L")
            .arg(dir.join("lib"))
            .arg("-lw")
            .arg(format!("-Wl,-rpath,{}", dir.join("lib").display())));
        let prog = dir.join("p");
        sh(Command::new(built_cah()).arg("patch").arg(&plain).arg("-o").arg(&prog).arg("--interp").arg(built_loader(Arch::X86_64)));
        // Everyone may enter; the library belongs to the attacker.
        for d in [&dir, &dir.join("lib")] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::os::unix::fs::chown(&lib, Some(65534), Some(65534)).unwrap();
        std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::create_dir_all(dir.join("cache")).unwrap();
        // Where the attacker and the test signal each other.
        let sig = dir.join("sig");
        std::fs::create_dir_all(&sig).unwrap();
        std::os::unix::fs::chown(&sig, Some(65534), Some(65534)).unwrap();
        Setup { dir, prog, lib }
    }

    /// One launch as root, with a cache of its own.
    fn launch(&self) -> (String, String, Option<i32>) {
        let out =
            Command::new(&self.prog).env_clear().env("CAH_CACHE_DIR", self.dir.join("cache")).env("CAH_DEBUG", "verify").output().unwrap();
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned(), out.status.code())
    }

    fn sig(&self) -> PathBuf {
        self.dir.join("sig")
    }

    /// Runs a python script as the attacker (uid 65534) in the background.
    fn attacker(&self, script: &str) -> Attacker {
        Attacker(
            Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", script])
                .arg(&self.lib)
                .arg(self.sig())
                .stdout(Stdio::null())
                .spawn()
                .expect("setpriv and python3 run"),
        )
    }
}

/// The attacker's process, killed when the test ends, however it ends.
struct Attacker(std::process::Child);

impl Drop for Attacker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn sh(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn wait_for(path: &Path) {
    let t0 = Instant::now();
    while !path.exists() {
        assert!(t0.elapsed() < Duration::from_secs(20), "the attacker never wrote {}", path.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A launch is fine if it ran the verified bytes or was refused with one line.
fn judge(out: &(String, String, Option<i32>), ran: &mut usize, refused: &mut usize) {
    assert!(!out.0.contains("REWRITES"), "rewritten bytes ran after verification: {out:?}");
    match out.2 {
        Some(0) => {
            assert_eq!(out.0, "ORIGINAL\n", "{out:?}");
            *ran += 1;
        }
        Some(127) => {
            let errors: Vec<&str> = out.1.lines().filter(|l| l.starts_with("ld-cah.so: error: ")).collect();
            assert_eq!(errors.len(), 1, "{out:?}");
            assert!(errors[0].contains("libw.so"), "{out:?}");
            *refused += 1;
        }
        _ => panic!("neither ran nor refused: {out:?}"),
    }
}

#[test]
fn a_library_rewritten_during_launches_never_runs_unverified_bytes() {
    let s = Setup::new("race");
    // Unwritten, the library runs, verified from a private copy.
    let first = s.launch();
    assert_eq!((first.0.as_str(), first.2), ("ORIGINAL\n", Some(0)), "{first:?}");
    assert!(first.1.contains("hashed a private copy: writable by others), ok"), "{first:?}");
    let writer = r#"
import os, sys, time
lib, d = sys.argv[1], sys.argv[2]
data = open(lib, 'rb').read()
at = data.index(b'ORIGINAL')
fd = os.open(lib, os.O_WRONLY)
open(os.path.join(d, 'writer-ready'), 'w').close()
# Pauses let a whole hash see one state and the mapping another (without
# them nearly every launch sees the file change while it is hashed). Run
# by hand against the loader before the copy, this writer got rewritten
# bytes executed in 15 of 300 launches.
while not os.path.exists(os.path.join(d, 'stop')):
    os.pwrite(fd, b'REWRITES', at)
    time.sleep(0.003)
    os.pwrite(fd, b'ORIGINAL', at)
    time.sleep(0.003)
"#;
    let child = s.attacker(writer);
    wait_for(&s.sig().join("writer-ready"));
    let (mut ran, mut refused) = (0, 0);
    for _ in 0..300 {
        judge(&s.launch(), &mut ran, &mut refused);
    }
    std::fs::write(s.sig().join("stop"), "").unwrap();
    drop(child);
    eprintln!("300 launches against a writer: {ran} ran the verified bytes, {refused} refused");
    assert_eq!(ran + refused, 300);
}

#[test]
fn a_write_through_a_dirty_shared_mapping_is_not_vouched_for() {
    let s = Setup::new("mmap");
    let script = r#"
import mmap, os, sys, time
lib, d = sys.argv[1], sys.argv[2]
f = open(lib, 'r+b')
m = mmap.mmap(f.fileno(), 0, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
at = m.find(b'ORIGINAL')
m[at:at + 8] = b'ORIGINAL'   # dirty the page, content unchanged
open(os.path.join(d, 'dirty'), 'w').close()
while not os.path.exists(os.path.join(d, 'go')):
    time.sleep(0.01)
m[at:at + 8] = b'REWRITES'   # no new page fault: size and times stay
open(os.path.join(d, 'rewritten'), 'w').close()
while not os.path.exists(os.path.join(d, 'stop')):
    time.sleep(0.01)
"#;
    let child = s.attacker(script);
    wait_for(&s.sig().join("dirty"));
    let before = std::fs::metadata(&s.lib).unwrap();
    let (mut ran, mut refused) = (0, 0);
    for _ in 0..2 {
        let out = s.launch();
        judge(&out, &mut ran, &mut refused);
        let libw: Vec<&str> = out.1.lines().filter(|l| l.contains("libw.so: ")).collect();
        assert!(
            libw.iter().all(|l| l.contains("(hashed a private copy: writable by others), ok")),
            "a file others can write must not be vouched for by the cache or a plan: {out:?}"
        );
    }
    assert_eq!(ran, 2, "the unchanged library runs");
    std::fs::write(s.sig().join("go"), "").unwrap();
    wait_for(&s.sig().join("rewritten"));
    let after = std::fs::metadata(&s.lib).unwrap();
    use std::os::unix::fs::MetadataExt;
    let out = s.launch();
    std::fs::write(s.sig().join("stop"), "").unwrap();
    drop(child);
    judge(&out, &mut ran, &mut refused);
    assert_eq!(out.2, Some(127), "the rewritten library is refused: {out:?}");
    // The attack's premise, checked: the rewrite left size and mtime alone.
    assert_eq!((before.size(), before.mtime(), before.mtime_nsec()), (after.size(), after.mtime(), after.mtime_nsec()));
}

/// A library only root can write is still hashed once and then vouched for
/// by the binding plan, or without plans found in the cache: the copy is
/// for files others can write, not for every file.
#[test]
fn a_root_owned_library_still_uses_the_cache() {
    let s = Setup::new("sealed");
    std::os::unix::fs::chown(&s.lib, Some(0), Some(0)).unwrap();
    let first = s.launch();
    assert_eq!((first.0.as_str(), first.2), ("ORIGINAL\n", Some(0)), "{first:?}");
    assert!(first.1.contains("libw.so") && first.1.contains("(hashed), ok"), "{first:?}");
    let second = s.launch();
    assert!(second.1.lines().any(|l| l.contains("libw.so") && l.contains("(binding plan), ok")), "{second:?}");
    let out = Command::new(&s.prog)
        .env_clear()
        .env("CAH_CACHE_DIR", s.dir.join("cache"))
        .env("CAH_DEBUG", "verify")
        .env("CAH_PLAN", "0")
        .output()
        .unwrap();
    let third = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && third.lines().any(|l| l.contains("libw.so") && l.contains("(cache), ok")), "{third}");
}
