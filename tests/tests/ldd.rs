//! `LD_TRACE_LOADED_OBJECTS` and `ldd`: the libraries listed instead of
//! the program run, in glibc's format (`dl_main`'s trace mode), which
//! `ldd` prints and its users parse:
//!
//! ```text
//! \tlinux-vdso.so.1 (0x00007ffc8e5f1000)
//! \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f5e1c200000)
//! \t/lib64/ld-linux-x86-64.so.2 (0x00007f5e1c43a000)
//! ```
//!
//! glibc's loader on the same program is the expected output; addresses
//! are masked, and so is the loader's own path where the two loaders
//! differ only in it (each lists itself by the path it was started by).

use cah_tests::{built_loader, fixture_dir, on_both_arches, run, system, Arch, Expect, Run};
use std::path::Path;
use std::process::Command;

/// `(0x` and 16 hex digits `)` → `(0x…)`.
fn mask_addresses(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("(0x") {
        let hex = &rest[i + 3..];
        let n = hex.chars().take_while(|c| c.is_ascii_hexdigit()).count();
        out.push_str(&rest[..i]);
        if n == 16 && hex[n..].starts_with(')') {
            out.push_str("(0x…)");
            rest = &hex[n + 1..];
        } else {
            out.push_str("(0x");
            rest = hex;
        }
    }
    out.push_str(rest);
    out
}

/// Whether `path` names a dynamic loader: glibc's (as the programs'
/// `PT_INTERP` names it, inside the sysroot on aarch64) or ld-cah.
fn is_loader(path: &str) -> bool {
    path == "/lib64/ld-linux-x86-64.so.2" || path == "/lib/ld-linux-aarch64.so.1" || path.ends_with("/ld-cah.so")
}

/// The loader's line under each mode: `\t/lib64/ld-linux-x86-64.so.2`
/// (glibc's, as `PT_INTERP`), `\tPT_INTERP => /path/ld-cah.so` (ld-cah
/// started directly: glibc's rule when the path it was started by is not
/// the program's `PT_INTERP`) and `\t/path/ld-cah.so` (ld-cah as
/// `PT_INTERP`) all become `\t{ld.so}`. `loader_line_rule` checks the rule
/// itself against glibc's.
fn normalise(text: &str) -> String {
    let text = mask_addresses(text);
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        let body = line.strip_prefix('\t').unwrap_or(line);
        let (names, tail) = match body.rfind(" (0x…)") {
            Some(i) => body.split_at(i),
            None => (body, ""),
        };
        let parts: Vec<&str> = names.split(" => ").collect();
        if line.starts_with('\t') && !tail.is_empty() && parts.iter().all(|p| is_loader(p)) {
            out.push_str("\t{ld.so}");
            out.push_str(tail);
        } else {
            out.push_str(line);
        }
    }
    out
}

fn traced(r: Run, value: &str) -> Run {
    r.env("LC_ALL", "C").guest_env("LD_TRACE_LOADED_OBJECTS", value)
}

fn fixture(name: &str) -> Run {
    traced(run(name), "1").guest_env("LD_LIBRARY_PATH", "{dir}")
}

fn listed() -> Expect {
    Expect::status(0).normalise(normalise)
}

#[test]
fn trace_loaded_objects_like_glibc() {
    on_both_arches("trace_loaded_objects_like_glibc", |c| {
        c.same_as_glibc(&fixture("reloc"), &listed().stdout_has("\tlibreloc_b.so => "));
        // A library that is not found is listed as such; the rest goes on.
        c.same_as_glibc(&fixture("needgone"), &listed().stdout_has("\tlibgone.so => not found\n"));
        // No DT_NEEDED at all.
        c.same_as_glibc(&fixture("hello"), &listed().stdout_has("\tstatically linked\n"));
        // Preloads come first; libc brings the loader in.
        c.same_as_glibc(&fixture("interpose").guest_env("LD_PRELOAD", "libpre.so"), &listed().stdout_has("libpre.so"));
        c.same_as_glibc(&fixture("tls_gd"), &listed().stdout_has("\tlibc.so.6 => "));
        // A value above 1 lists the program too; any value, even empty, traces.
        c.same_as_glibc(&traced(run("reloc"), "2").guest_env("LD_LIBRARY_PATH", "{dir}"), &listed().stdout_has("\t (0x"));
        c.same_as_glibc(&traced(run("reloc"), "").guest_env("LD_LIBRARY_PATH", "{dir}"), &listed());
        c.same_as_glibc(&traced(system("/bin/ls"), "1"), &listed().stdout_has("\tlibc.so.6 => "));
    });
}

/// The loader's own line, by glibc's rule: `PT_INTERP => the path the
/// loader was started by` when the two differ. glibc started by another
/// path to itself than the program's `PT_INTERP` is the reference for
/// ld-cah started by its own path; each path is then written `{loader}`.
#[test]
fn loader_line_rule() {
    let cah = built_loader(Arch::X86_64);
    let glibc = Path::new("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2");
    let dir = fixture_dir(Arch::X86_64);
    for value in ["1", "2"] {
        let list = |loader: &Path| {
            let out = Command::new(loader)
                .arg(dir.join("tls_gd"))
                .env_clear()
                .env("LD_TRACE_LOADED_OBJECTS", value)
                .env("LD_LIBRARY_PATH", &dir)
                .output()
                .expect("run the loader");
            assert_eq!(out.status.code(), Some(0), "{}: {}", loader.display(), String::from_utf8_lossy(&out.stderr));
            mask_addresses(&String::from_utf8_lossy(&out.stdout)).replace(&loader.display().to_string(), "{loader}")
        };
        let want = list(glibc);
        assert!(want.contains("\t/lib64/ld-linux-x86-64.so.2 => {loader} (0x…)\n"), "glibc's reference:\n{want}");
        assert_eq!(list(&cah), want, "LD_TRACE_LOADED_OBJECTS={value}");
    }
}

/// Debian's `ldd` (a shell script) with ld-cah as its loader, as when
/// ld-cah stands in for the system's: `RTLDLIST` names ld-cah, which then
/// answers `--version`, `--verify` (glibc's exit statuses: 0 dynamic, 1 not
/// a dynamic program, 2 dynamic without `PT_INTERP`) and traces. The same
/// script with glibc's loader is the reference.
#[test]
fn ldd_with_ld_cah_as_its_loader() {
    let cah = built_loader(Arch::X86_64);
    let cah_s = cah.display().to_string();
    let dir = fixture_dir(Arch::X86_64);
    let tmp = tempfile::tempdir().expect("temporary directory");
    let script = std::fs::read_to_string("/usr/bin/ldd").expect("/usr/bin/ldd (Debian package libc-bin)");
    let rtldlist = script.lines().find(|l| l.starts_with("RTLDLIST=")).expect("RTLDLIST in /usr/bin/ldd");
    let ldd_cah = tmp.path().join("ldd");
    std::fs::write(&ldd_cah, script.replace(rtldlist, &format!("RTLDLIST=\"{cah_s}\""))).unwrap();
    // A program whose PT_INTERP is ld-cah.
    let ls_cah = tmp.path().join("ls");
    std::fs::copy("/bin/ls", &ls_cah).unwrap();
    let st = Command::new("patchelf").arg("--set-interpreter").arg(&cah).arg(&ls_cah).status().expect("patchelf");
    assert!(st.success());

    let ldd = |script: &Path, files: &[&str]| {
        let out = Command::new("/bin/sh")
            .arg(script)
            .args(files)
            .current_dir(&dir)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("LC_ALL", "C")
            .env("LD_LIBRARY_PATH", &dir)
            .output()
            .expect("run ldd");
        let text = |b: &[u8]| mask_addresses(&String::from_utf8_lossy(b)).replace(&tmp.path().display().to_string(), "{tmp}");
        (text(&out.stdout), text(&out.stderr), out.status.code())
    };
    let system = Path::new("/usr/bin/ldd");
    let mut failures = Vec::new();
    let cases: &[&[&str]] = &[
        &["/bin/ls"],
        &["./reloc"],
        &["needgone"],
        &["./tls_gd"],
        &["./hello"],
        &["./static"],
        &["./static_pie"],
        &["./libsimple.so"],
        &["./bad_text/libsimple.so"],
        &["./no-such-file"],
        &["./reloc", "./static", "./needgone", "/bin/ls"],
    ];
    for files in cases {
        let want = ldd(system, files);
        let (out, err, status) = ldd(&ldd_cah, files);
        // The one line that names the loader by the path it was started by.
        let out = out.replace(&format!("\t/lib64/ld-linux-x86-64.so.2 => {cah_s} (0x…)"), "\t/lib64/ld-linux-x86-64.so.2 (0x…)");
        if (&out, &err, status) != (&want.0, &want.1, want.2) {
            failures.push(format!(
                "ldd {files:?}:\n  glibc: {:?}\n         stderr {:?}\n         status {:?}\n  ld-cah: {out:?}\n         stderr {err:?}\n         status {status:?}",
                want.0, want.1, want.2
            ));
        }
    }
    // The program whose PT_INTERP is ld-cah, under both: the same
    // libraries as /bin/ls; the loader's line by glibc's rule (written by
    // hand): glibc's ld.so lists `PT_INTERP => itself`, ld-cah, started by
    // the path in PT_INTERP, its path alone.
    let (plain, _, _) = ldd(system, &["/bin/ls"]);
    let patched_line = format!("\t{cah_s} (0x…)");
    let expect_cah = plain.replace("\t/lib64/ld-linux-x86-64.so.2 (0x…)", &patched_line);
    let expect_glibc = plain.replace("\t/lib64/ld-linux-x86-64.so.2 (0x…)", &format!("\t{cah_s} => /lib64/ld-linux-x86-64.so.2 (0x…)"));
    let ls_s = ls_cah.display().to_string();
    for (script, want) in [(system, &expect_glibc), (ldd_cah.as_path(), &expect_cah)] {
        let got = ldd(script, &[&ls_s]);
        if (&got.0, got.2) != (want, Some(0)) || !got.0.contains("libc.so.6 => ") {
            failures.push(format!("{} of a program with ld-cah as PT_INTERP:\n  want {want:?}\n  got  {got:?}", script.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
