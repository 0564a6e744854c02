//! Lazy binding (`loader/src/lazy.rs`): PLT slots bound at their first
//! call, as glibc's loader binds them, and at start-up with `LD_BIND_NOW`.
//! The fixture `glibc/lazy` calls a few of `liblazy.so`'s 300 functions
//! with integer and double arguments, from eight threads racing on a first
//! call, and in a library opened with `dlopen(RTLD_LAZY)`; `glibc/lazy_gone`
//! then calls a function its library lacks; `glibc/sigplt` makes first
//! calls from signal handlers that interrupted the loader; `glibc/bindnot`
//! counts resolutions under `LD_BIND_NOT`. The expected outputs are worked
//! out by hand from the sources in `tests/fixtures/glibc/`.

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

/// A signal handler's first call through a PLT slot while its thread is
/// inside the loader: in a constructor of a library being dlopen'ed, and
/// on each of 40 CPU-time timer ticks during a dlopen/dlclose loop (each
/// tick binds another slot). A loader whose lazy binding takes the lock
/// the interrupted dlopen holds hangs until the timeout. lazy_f120(1) is
/// 121; tick k adds lazy_f(200 + k)(k) = 200 + 2k, 9560 for k < 40.
#[test]
fn lazy_binding_from_a_signal_handler_inside_the_loader() {
    on_both_arches("lazy_binding_from_a_signal_handler_inside_the_loader", |c| {
        let r = run("glibc/sigplt").clean_env().debian_sysroot().timeout(120);
        c.expect(&r, "handler in constructor: lazy_f120(1) = 121\ntimer ticks during dlopen/dlclose: 40, sum 9560\n", 0);
    });
}

/// `LD_BIND_NOT` (any non-empty value): the slot is resolved at every call
/// and never written, so the IFUNC's resolver runs at each of the three
/// calls; unset or empty, once.
#[test]
fn ld_bind_not_resolves_at_every_call() {
    on_both_arches("ld_bind_not_resolves_at_every_call", |c| {
        let r = || run("glibc/bindnot").clean_env().debian_sysroot();
        let out = |n: u32| format!("bn_twice: 2 4 6\nresolver ran {n} time(s)\n");
        c.expect(&r(), &out(1), 0);
        c.expect(&r().guest_env("LD_BIND_NOT", "1"), &out(3), 0);
        c.expect(&r().guest_env("LD_BIND_NOT", ""), &out(1), 0);
    });
}
