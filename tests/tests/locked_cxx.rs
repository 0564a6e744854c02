//! A C++ program (threads, exceptions thrown across a shared library,
//! thread_local with destructors) locked with `cah patch` runs under
//! ld-cah with every library of its closure verified, printing exactly
//! what it prints under glibc's loader unlocked.

use std::path::PathBuf;
use std::process::Command;

use cah_tests::{built_cah, built_loader, root, Arch};

#[test]
fn locked_cxx_program_runs_verified_like_under_glibc() {
    let dir = root().join("target/fixtures/x86_64/glibc");
    let prog = dir.join("cxx");
    assert!(prog.exists(), "run `cargo xtask fixtures`");
    let loader = built_loader(Arch::X86_64).canonicalize().unwrap();
    let locked = dir.join(format!("cxx-locked-{}", std::process::id()));
    let st = Command::new(built_cah()).arg("patch").arg(&prog).arg("-o").arg(&locked).arg("--interp").arg(&loader).status().unwrap();
    assert!(st.success(), "cah patch failed");
    let cache = tempfile::tempdir().unwrap();
    let run = |p: &PathBuf| {
        let out = Command::new(p).current_dir(&dir).env_clear().env("CAH_CACHE_DIR", cache.path()).output().unwrap();
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned(), out.status.code())
    };
    let reference = run(&prog);
    assert_eq!(reference.2, Some(0), "glibc: {reference:?}");
    let first = run(&locked);
    let second = run(&locked); // now from the warm hash cache
    let list = Command::new(&loader).arg("--list").arg(&locked).env_clear().env("CAH_CACHE_DIR", cache.path()).output().unwrap();
    let _ = std::fs::remove_file(&locked);
    assert_eq!(first, reference, "first (cold) verified run");
    assert_eq!(second, reference, "second (warm cache) verified run");
    let list = String::from_utf8_lossy(&list.stdout);
    for lib in ["libcxxthrow.so", "libstdc++.so.6", "libgcc_s.so.1", "libc.so.6", "libm.so.6"] {
        let line = list.lines().find(|l| l.contains(lib)).unwrap_or_else(|| panic!("{lib} missing from --list:\n{list}"));
        assert!(line.contains("blake3:") && line.contains(" ok "), "{lib} not verified: {line}");
    }
}
