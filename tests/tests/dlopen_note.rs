//! `.note.dlopen` (the freedesktop ELF dlopen metadata): `cah patch` locks
//! the libraries a program declares it may `dlopen` (those it finds),
//! `cah show` lists them, and ld-cah refuses a swapped one at `dlopen`
//! while glibc's loader, which does not check, takes it.

use std::process::Command;

use cah_tests::{built_cah, built_loader, Arch};

const PROG: &str = r#"
#include <dlfcn.h>
#include <stdio.h>
__asm__(".pushsection .note.dlopen,\"a\",@note\n"
        ".balign 4\n"
        ".long 4\n"
        ".long 2f - 1f\n"
        ".long 0x407c0c0a\n"
        ".asciz \"FDO\"\n"
        "1: .asciz \"[{\\\"feature\\\":\\\"noted\\\",\\\"description\\\":\\\"a test\\\",\\\"priority\\\":\\\"recommended\\\",\\\"soname\\\":[\\\"libnoted.so.1\\\",\\\"libabsent.so.9\\\"]}]\"\n"
        "2: .balign 4\n"
        ".popsection\n");
int main(void) {
    void *h = dlopen("libnoted.so.1", RTLD_NOW);
    if (!h) { printf("dlopen: %s\n", dlerror()); return 3; }
    int (*f)(void) = (int (*)(void))dlsym(h, "noted");
    printf("noted=%d\n", f());
    return 0;
}
"#;

fn run(cmd: &mut Command) -> (String, String, Option<i32>) {
    let o = cmd.output().unwrap();
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned(), o.status.code())
}

#[test]
fn declared_dlopen_library_is_locked_shown_and_refused_when_swapped() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    std::fs::create_dir(d.join("lib")).unwrap();
    std::fs::write(d.join("p.c"), PROG).unwrap();
    let build_lib = |value: i32| {
        std::fs::write(d.join("n.c"), format!("int noted(void) {{ return {value}; }}\n")).unwrap();
        let _ = std::fs::remove_file(d.join("lib/libnoted.so.1"));
        let st = Command::new("gcc")
            .current_dir(d)
            .args(["-shared", "-fPIC", "-Wl,-soname,libnoted.so.1", "-o", "lib/libnoted.so.1", "n.c"])
            .status()
            .unwrap();
        assert!(st.success());
    };
    build_lib(7);
    let st = Command::new("gcc").current_dir(d).args(["-o", "p", "p.c", "-ldl", "-Wl,-rpath,$ORIGIN/lib"]).status().unwrap();
    assert!(st.success());
    // The note is where the specification puts it.
    let notes = run(Command::new("readelf").arg("-n").arg(d.join("p"))).0;
    assert!(notes.contains("FDO") && notes.contains("0x407c0c0a") || notes.contains("FDO_DLOPEN_METADATA"), "{notes}");

    let prog = d.join("p.locked");
    let (out, err, code) =
        run(Command::new(built_cah()).arg("patch").arg(d.join("p")).arg("-o").arg(&prog).arg("--interp").arg(built_loader(Arch::X86_64)));
    assert_eq!(code, Some(0), "cah patch: {out}{err}");
    assert!(out.contains("locked 2 libraries"), "libc.so.6 and libnoted.so.1: {out}");
    let (out, _, code) = run(Command::new(built_cah()).arg("show").arg(&prog));
    assert_eq!(code, Some(0));
    assert!(out.lines().any(|l| l.trim_start().starts_with("libnoted.so.1  blake3:")), "{out}");
    assert!(out.contains("dlopen note: libnoted.so.1 (locked), libabsent.so.9 (not locked); feature noted, recommended"), "{out}");
    let (out, _, _) = run(Command::new(built_cah()).arg("show").arg("--json").arg(&prog));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["dlopen_note"][0]["sonames"], serde_json::json!(["libnoted.so.1", "libabsent.so.9"]));
    assert_eq!(v["dlopen_note"][0]["locked"], serde_json::json!([true, false]));

    let cache = tempfile::tempdir().unwrap();
    let start = |p: &std::path::Path| run(Command::new(p).env_clear().env("CAH_CACHE_DIR", cache.path()));
    assert_eq!(start(&prog), ("noted=7\n".to_string(), String::new(), Some(0)));
    build_lib(8);
    // glibc's loader takes the swapped library; ld-cah refuses it.
    assert_eq!(start(&d.join("p")), ("noted=8\n".to_string(), String::new(), Some(0)));
    let (out, err, code) = start(&prog);
    assert_eq!((err.as_str(), code), ("", Some(3)));
    assert!(out.starts_with("dlopen: libnoted.so.1 (blake3:") && out.contains("no matching file"), "{out}");
}
