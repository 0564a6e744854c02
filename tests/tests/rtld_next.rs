//! `dlsym(RTLD_NEXT, ...)` from an `LD_PRELOAD`ed library: the classic
//! interposer (wrap `puts`, then call the real one) must behave as under
//! glibc's loader, which needs every link map's `l_loader` chain.

use std::process::Command;

use cah_tests::{built_loader, Arch};

#[test]
fn preloaded_wrapper_reaches_the_next_definition() {
    let loader = built_loader(Arch::X86_64);
    let dir = tempfile::tempdir().unwrap();
    let wrap = dir.path().join("wrap.c");
    std::fs::write(
        &wrap,
        r#"#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
int puts(const char *s) {
    int (*real)(const char *) = (int (*)(const char *))dlsym(RTLD_NEXT, "puts");
    if (!real) return -1;
    fputs("[wrapped] ", stdout);
    return real(s);
}
"#,
    )
    .unwrap();
    let main = dir.path().join("main.c");
    std::fs::write(&main, "#include <stdio.h>\nint main(void) { return puts(\"hello\") < 0 ? 3 : 0; }\n").unwrap();
    let lib = dir.path().join("libwrap.so");
    let exe = dir.path().join("main");
    assert!(Command::new("gcc").args(["-shared", "-fPIC", "-O1", "-o"]).arg(&lib).arg(&wrap).status().unwrap().success());
    assert!(Command::new("gcc").args(["-O1", "-fno-builtin", "-o"]).arg(&exe).arg(&main).status().unwrap().success());
    let run = |c: &mut Command| {
        let o = c.env_clear().env("LD_PRELOAD", &lib).output().unwrap();
        (String::from_utf8_lossy(&o.stdout).into_owned(), o.status.code())
    };
    let reference = run(&mut Command::new(&exe));
    assert_eq!(reference, ("[wrapped] hello\n".to_string(), Some(0)), "glibc");
    assert_eq!(run(Command::new(&loader).arg(&exe)), reference, "ld-cah");
}
