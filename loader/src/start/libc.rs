//! The glibc the program uses: which layout table fits the libc in its
//! closure (built in, or installed by `cah glibc add`), and what that
//! build's own loader would do to the environment (tunables, secure mode).
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

use super::stack::Stack;
use crate::arch::native::Native;
use crate::arch::ArchInfo;
use crate::diag::{self, Error};
use crate::err;
use crate::glibc::fingerprint::{self, Mismatch};
use crate::glibc::layout::{Layout, Names};
use crate::link::{DsoId, Namespace};

/// Variables removed for set-uid programs that use no glibc ld-cah has a
/// table for: glibc 2.36's list (`unsecvars.h`). With a known glibc, the
/// build's own list (`Layout::unsecure_env`) applies instead.
const UNSECURE_ENV: Names = Names(concat!(
    "GCONV_PATH\0",
    "GETCONF_DIR\0",
    "HOSTALIASES\0",
    "LD_AUDIT\0",
    "LD_DEBUG\0",
    "LD_DEBUG_OUTPUT\0",
    "LD_DYNAMIC_WEAK\0",
    "LD_HWCAP_MASK\0",
    "LD_LIBRARY_PATH\0",
    "LD_ORIGIN_PATH\0",
    "LD_PRELOAD\0",
    "LD_PROFILE\0",
    "LD_SHOW_AUXV\0",
    "LD_USE_LOAD_BIAS\0",
    "LOCALDOMAIN\0",
    "LOCPATH\0",
    "MALLOC_TRACE\0",
    "NIS_PATH\0",
    "NLSPATH\0",
    "RESOLV_HOST_CONF\0",
    "RES_OPTIONS\0",
    "TMPDIR\0",
    "TZDIR\0",
));

/// The libc in the closure and its layout; `None` for a program that
/// uses no glibc. A libc no table fits is refused. `planned`: the
/// built-in table the binding plan of this very closure names
/// (`reloc::plan::Plan::layout`), taken without fingerprinting libc again.
#[inline(never)]
pub fn select(
    ns: &Namespace,
    secure: bool,
    env: &[&'static [u8]],
    planned: Option<usize>,
) -> Result<Option<(DsoId, &'static Layout)>, Error> {
    let Some(libc) = crate::glibc::rtld::find_libc(ns) else { return Ok(None) };
    let arch = crate::glibc::layout::Arch::from_machine(Native::MACHINE);
    if let Some(&l) = planned.and_then(|i| crate::glibc::layouts::ALL.get(i)).filter(|l| Some(l.arch) == arch) {
        return Ok(Some((libc, l)));
    }
    let d = &ns.objs[libc];
    let facts = fingerprint::Libc { img: &d.img, dyn_info: &d.dyn_info, versions: &d.versions, base: d.base };
    let why = match fingerprint::select(crate::glibc::layouts::ALL, Native::MACHINE, &facts) {
        Ok(l) => return Ok(Some((libc, l))),
        Err(why) => why,
    };
    let build_id = crate::glibc::rtld::build_id(ns, libc).unwrap_or_default();
    match crate::glibc::installed::select(&build_id, Native::MACHINE, &facts, secure, env) {
        Ok(l) => Ok(Some((libc, l))),
        Err(refused) => Err(unknown_glibc(ns, libc, &facts, why, refused)),
    }
}

/// Reads the tunables from `vars` (the environment as `stack` holds it
/// now: they decide the rseq registration), and in secure mode leaves the
/// environment the build's own ld.so would leave.
#[inline(never)]
pub fn settle_environment(stack: &Stack, vars: &[&'static [u8]], glibc: Option<&'static Layout>, secure: bool) {
    match glibc {
        Some(l) => {
            let t = crate::glibc::tunables::init(l, vars, secure);
            if secure {
                let values: Vec<&[u8]> = t.rewritten.iter().map(|v| &v[..]).collect();
                stack.shorten_env(b"GLIBC_TUNABLES", &values);
                stack.remove_env(&|n| t.erase.iter().any(|u| u.as_bytes() == n) || l.unsecure_env.contains(n));
            }
        }
        None if secure => {
            stack.shorten_env(b"GLIBC_TUNABLES", &[b"" as &[u8]; 16]);
            stack.remove_env(&|n| UNSECURE_ENV.contains(n));
        }
        None => {}
    }
}

/// The index among the built-in tables of `l`, for the binding plan;
/// `None` for a table installed with `cah glibc add` (the plan's key does
/// not cover its file).
pub fn builtin_index(l: &'static Layout) -> Option<usize> {
    crate::glibc::layouts::ALL.iter().position(|&t| core::ptr::eq(t, l))
}

/// The one line for a libc that no layout table fits: libc, its version,
/// its build id and what differs.
fn unknown_glibc(
    ns: &Namespace,
    libc: DsoId,
    facts: &fingerprint::Libc<'_>,
    why: Mismatch,
    installed: Option<crate::glibc::installed::Refused>,
) -> Error {
    let mut id = String::new();
    for b in crate::glibc::rtld::build_id(ns, libc).unwrap_or_default() {
        let _ = write!(id, "{b:02x}");
    }
    let version = facts.version().or_else(|| facts.banner_version()).map_or("unknown", |v| core::str::from_utf8(v).unwrap_or("unknown"));
    let detail = match why {
        Mismatch::Version => String::from("no table for this version"),
        Mismatch::Imports => String::from("it imports other loader symbols than the known builds"),
        Mismatch::ThreadDb(d) => alloc::format!("its _thread_db_{d} differs from the known builds"),
    };
    let name = ns.objs[libc].display_name();
    let add = match installed {
        None => alloc::format!("add one with `cah glibc add {name}`"),
        Some(r) => alloc::format!(
            "the installed table {} was refused ({}); make it again with `cah glibc add {name}`",
            core::str::from_utf8(&r.path).unwrap_or("?"),
            r.why
        ),
    };
    err!(name, "glibc {} (build id {}) has no layout table: {}; {}", version, if id.is_empty() { "missing" } else { &id }, detail, add)
}

/// `--version`: the glibc builds this loader can stand in for.
pub fn print_glibc_builds() {
    let arch = crate::glibc::layout::Arch::from_machine(Native::MACHINE);
    let mut line = String::from("glibc layouts:");
    for l in crate::glibc::layouts::ALL.iter().filter(|l| Some(l.arch) == arch) {
        let _ = write!(line, " {}", l.glibc_version);
    }
    line.push('\n');
    diag::print(1, format_args!("{line}"));
}
