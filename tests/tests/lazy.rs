//! Lazy binding (`loader/src/lazy.rs`): PLT slots bound at their first
//! call, as glibc's loader binds them, and at start-up with `LD_BIND_NOW`.
//! The fixture `glibc/lazy` calls a few of `liblazy.so`'s 300 functions
//! with integer and double arguments, from eight threads racing on a first
//! call, and in a library opened with `dlopen(RTLD_LAZY)`; `glibc/lazy_gone`
//! then calls a function its library lacks. The expected
//! output is worked out by hand from `tests/fixtures/glibc/lazy.c`.

use cah_tests::{on_both_arches, run, GlibcFails, Mode, Run};

const OUTPUT: &str = "\
lazy_f123(1) = 124
lazy_f399(-399) = 0
lazy_sum(10) = 371
lazy_dmix = 26.625
thread 0: 222 1.00
thread 1: 223 5.00
thread 2: 224 9.00
thread 3: 225 13.00
thread 4: 226 17.00
thread 5: 227 21.00
thread 6: 228 25.00
thread 7: 229 29.00
dl_entry(5) = 170
";

fn lazy() -> Run {
    run("glibc/lazy").clean_env().debian_sysroot()
}

/// The same program linked against a `liblazy.so` that also has
/// `lazy_gone`, which it calls last; the one it runs with has not.
fn lazy_gone() -> Run {
    run("glibc/lazy_gone").clean_env().debian_sysroot()
}

/// The "N PLT slots left to lazy binding" of `CAH_DEBUG=statistics`.
fn lazy_slots(stderr: &str) -> Option<usize> {
    let line = stderr.lines().find(|l| l.starts_with("ld-cah.so: statistics: "))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.windows(2).position(|w| w == ["PLT", "slots"])?;
    words.get(at.checked_sub(1)?)?.parse().ok()
}

#[test]
fn lazy_binding_on_first_call() {
    on_both_arches("lazy_binding_on_first_call", |c| {
        c.expect(&lazy(), OUTPUT, 0);
        // The slots really were left for later (so the run above went
        // through the resolver), and LD_BIND_NOW binds them all at start.
        c.inspect(Mode::CahDirect, &lazy().guest_env("CAH_DEBUG", "statistics"), |out, _| match lazy_slots(&out.stderr) {
            Some(n) if n >= 10 => Vec::new(),
            n => vec![format!("expected at least 10 PLT slots left to lazy binding, statistics say {n:?}")],
        });
        let now = lazy().guest_env("CAH_DEBUG", "statistics").guest_env("LD_BIND_NOW", "1");
        c.inspect(Mode::CahDirect, &now, |out, _| match lazy_slots(&out.stderr) {
            Some(0) => Vec::new(),
            n => vec![format!("LD_BIND_NOW=1: expected no PLT slot left to lazy binding, statistics say {n:?}")],
        });
    });
}

#[test]
fn lazy_program_with_ld_bind_now() {
    on_both_arches("lazy_program_with_ld_bind_now", |c| {
        c.expect(&lazy().guest_env("LD_BIND_NOW", "1"), OUTPUT, 0);
    });
}

/// A function missing at run time is an error at its first call: what the
/// program printed before stays, the exit status is 127, and stderr says
/// what glibc's says (`symbol lookup error`, `undefined symbol: NAME`).
#[test]
fn lazy_missing_function_fails_at_its_call() {
    on_both_arches("lazy_missing_function_fails_at_its_call", |c| {
        let r = lazy_gone();
        c.expect(&r, &format!("{OUTPUT}calling lazy_gone\n"), 127);
        for mode in [Mode::GlibcInterp, Mode::CahDirect, Mode::CahInterp] {
            c.inspect(mode, &r, |out, _| {
                let mut problems = Vec::new();
                if out.stderr.lines().count() != 1 {
                    problems.push("stderr is not exactly one line".to_string());
                }
                for m in ["symbol lookup error: ", "lazy_gone: undefined symbol: lazy_gone\n"] {
                    if !out.stderr.contains(m) {
                        problems.push(format!("stderr does not contain `{}`", m.trim_end()));
                    }
                }
                if mode.is_cah() && !out.stderr.starts_with("ld-cah.so: error: symbol lookup error: ") {
                    problems.push("stderr does not start with `ld-cah.so: error: symbol lookup error: `".into());
                }
                problems
            });
        }
    });
}

/// The same program with LD_BIND_NOW=1 is refused at start-up, before it
/// prints anything.
#[test]
fn lazy_missing_function_with_ld_bind_now_fails_at_start() {
    on_both_arches("lazy_missing_function_with_ld_bind_now_fails_at_start", |c| {
        let r = lazy_gone().guest_env("LD_BIND_NOW", "1");
        c.expect_refused(&r, GlibcFails::Status(127), &["lazy_gone"]);
    });
}
