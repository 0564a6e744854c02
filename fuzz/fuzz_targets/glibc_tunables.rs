//! `GLIBC_TUNABLES` and the legacy variables (`ld_cah::glibc::tunables`):
//! the environment a set-uid program is started with is the attacker's.
//! The input is one variable per line; every built-in glibc build's rules
//! read it, secure and not, and must keep `check_invariants` (secure mode
//! applies and passes on only what glibc's rules allow, rewritten values
//! fit where the old ones were, numbers within bounds).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let env: Vec<&[u8]> = data.split(|&b| b == b'\n').filter(|e| !e.contains(&0)).collect();
    // SAFETY: `parse` wants the environment's lifetime, the process's; the
    // answer, which borrows from it, is dropped inside `check_invariants`.
    let env: &[&'static [u8]] = unsafe { core::mem::transmute::<&[&[u8]], &[&'static [u8]]>(&env) };
    for l in ld_cah::glibc::layouts::ALL {
        let dialect = ld_cah::glibc::tunables::Dialect::of(l);
        for secure in [false, true] {
            ld_cah::glibc::tunables::check_invariants(l.tunables, dialect, env, secure);
        }
    }
});
