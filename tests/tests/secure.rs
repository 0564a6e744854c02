//! Secure mode (`AT_SECURE`): a set-uid program run by another user must
//! not see the environment variables that steer loading or libc, under
//! ld-cah exactly as under glibc's loader. Needs root (to make the program
//! set-uid and to run it as `nobody`), which CI has.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use cah_tests::{built_loader, Arch};


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
    let uid = Command::new("id").arg("-u").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&uid.stdout).trim(), "0", "this test needs root (CI runs as root)");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../target/cah-tests/secure-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let glibc_env = dir.join("env-glibc");
    let cah_env = dir.join("env-cah");
    std::fs::copy("/usr/bin/env", &glibc_env).unwrap();
    std::fs::copy("/usr/bin/env", &cah_env).unwrap();
    assert!(Command::new("patchelf").arg("--set-interpreter").arg(built_loader(Arch::X86_64)).arg(&cah_env).status().unwrap().success());
    for p in [&glibc_env, &cah_env] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o4755)).unwrap();
    }
    let reference = env_as_nobody(&glibc_env);
    assert_eq!(reference.1, Some(0), "glibc run: {reference:?}");
    assert!(reference.0.contains("KEEP_ME=1") && !reference.0.contains("LD_LIBRARY_PATH"), "glibc did not run set-uid: {reference:?}");
    let under_cah = env_as_nobody(&cah_env);
    let _ = std::fs::remove_dir_all(&dir);
    // glibc does not know CAH_STORE; ld-cah removes it too.
    let expected: String = reference.0.lines().filter(|l| !l.starts_with("CAH_STORE=")).map(|l| format!("{l}\n")).collect();
    assert_eq!(under_cah.0, expected, "environment seen by a set-uid program under ld-cah");
    assert_eq!(under_cah.1, Some(0));
}
