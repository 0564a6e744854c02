//! The loader's own command line (glibc style): --list, --help, --version,
//! and what it does with an unknown option or no program.

use cah_tests::{on_both_arches, run, GlibcFails, Mode, Outcome};

/// `--list` prints, like ldd, one `\tNAME => PATH (0xADDRESS)` line per
/// library found, and does not run the program. glibc prints the same
/// lines (plus the vDSO), which keeps the expectation honest.
#[test]
fn list_option() {
    on_both_arches("list_option", |c| {
        let r = run("reloc").opts(&["--list", "--library-path", "{dir}"]);
        for mode in [Mode::GlibcDirect, Mode::CahDirect] {
            c.inspect(mode, &r, |out: &Outcome, dir: &str| {
                let mut problems = Vec::new();
                if out.status != Some(0) {
                    problems.push("exit status is not 0".to_string());
                }
                for lib in ["libreloc_b.so", "libreloc_a.so"] {
                    let prefix = format!("\t{lib} => {dir}/{lib} (0x");
                    let found = out.stdout.lines().any(|l| {
                        l.starts_with(&prefix) && l.ends_with(')') && l[prefix.len()..l.len() - 1].chars().all(|ch| ch.is_ascii_hexdigit())
                    });
                    if !found {
                        problems.push(format!("no line `{prefix}<hex>)`"));
                    }
                }
                if out.stdout.contains("ra_value") {
                    problems.push("the program ran".into());
                }
                problems
            });
        }
    });
}

/// `--list` with a library that cannot be found is an error (glibc's
/// `ld.so --list` exits 127 there; only LD_TRACE_LOADED_OBJECTS=1, which
/// ldd uses, prints "not found").
#[test]
fn list_option_missing_library() {
    on_both_arches("list_option_missing_library", |c| {
        let r = run("needgone").opts(&["--list", "--library-path", "{dir}"]);
        c.expect_refused(&r, GlibcFails::Status(127), &["libgone.so"]);
    });
}

#[test]
fn help_option() {
    on_both_arches("help_option", |c| {
        let r = run("hello").opts(&["--help"]);
        c.inspect(Mode::GlibcDirect, &r, |out: &Outcome, _: &str| {
            let mut p = Vec::new();
            if out.status != Some(0) || out.stdout.is_empty() {
                p.push("glibc's --help: expected usage on stdout and exit status 0".to_string());
            }
            p
        });
        c.inspect(Mode::CahDirect, &r, |out: &Outcome, _: &str| {
            let mut p = Vec::new();
            if out.status != Some(0) {
                p.push("exit status is not 0".to_string());
            }
            for opt in ["--library-path", "--preload", "--argv0", "--list", "--inhibit-cache", "--version"] {
                if !out.stdout.contains(opt) {
                    p.push(format!("the usage on stdout does not mention {opt}"));
                }
            }
            if out.stdout.contains("hello from") {
                p.push("the program ran".into());
            }
            p
        });
    });
}

#[test]
fn version_option() {
    on_both_arches("version_option", |c| {
        let r = run("hello").opts(&["--version"]);
        c.inspect(Mode::CahDirect, &r, |out: &Outcome, _: &str| {
            let mut p = Vec::new();
            if out.status != Some(0) {
                p.push("exit status is not 0".to_string());
            }
            if !out.stdout.contains("ld-cah") {
                p.push("stdout does not name ld-cah".into());
            }
            if out.stdout.contains("hello from") {
                p.push("the program ran".into());
            }
            p
        });
    });
}

/// An unknown option is an error (glibc exits with 1; ld-cah with 127, one
/// line naming the option).
#[test]
fn unknown_option() {
    on_both_arches("unknown_option", |c| {
        let r = run("hello").opts(&["--no-such-option"]);
        c.inspect(Mode::GlibcDirect, &r, |out: &Outcome, _: &str| {
            if out.status == Some(0) || out.stdout.contains("hello from") {
                vec!["glibc accepted an unknown option".to_string()]
            } else {
                Vec::new()
            }
        });
        c.inspect(Mode::CahDirect, &r, |out: &Outcome, _: &str| refused(out, "--no-such-option"));
    });
}

/// No program at all: an error, like glibc's "missing program name".
#[test]
fn no_program() {
    on_both_arches("no_program", |c| {
        if !c.cah_enabled() {
            return;
        }
        let mut argv = c.arch.runner();
        argv.push(cah_tests::loader_path(c.arch).display().to_string());
        let out = cah_tests::execute(&argv, &[]);
        let problems = refused(&out, "");
        if !problems.is_empty() {
            c.fail(format!("ld-cah.so without a program:\n  - {}\n{}", problems.join("\n  - "), out.report()));
        }
    });
}

fn refused(out: &Outcome, mention: &str) -> Vec<String> {
    let mut p = Vec::new();
    if out.status != Some(127) {
        p.push("exit status is not 127".to_string());
    }
    if out.stderr.matches('\n').count() != 1 || !out.stderr.ends_with('\n') {
        p.push("stderr is not exactly one line".into());
    }
    if !out.stderr.starts_with("ld-cah.so: error: ") {
        p.push("stderr does not start with `ld-cah.so: error: `".into());
    }
    if !out.stderr.contains(mention) {
        p.push(format!("stderr does not mention `{mention}`"));
    }
    p
}
