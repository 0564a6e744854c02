//! `LD_TRACE_LOADED_OBJECTS` and `--list`: the closure in the format of
//! glibc's `dl_main` trace mode, which `ldd` prints and its users parse:
//!
//! ```text
//! \tlinux-vdso.so.1 (0x00007ffc8e5f1000)
//! \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f5e1c200000)
//! \tlibgone.so => not found
//! \t/lib64/ld-linux-x86-64.so.2 (0x00007f5e1c43a000)
//! ```
//!
//! One line per object of the link-map chain after the program (the
//! program too when the variable's value is greater than 1): `l_libname`
//! (the name it was asked for) `=> l_name` (where it was found), or the
//! name alone when the two are the same, and `l_map_start` in 16 hex
//! digits; a library that was not found is `=> not found`. A program
//! without `DT_NEEDED` is `statically linked`.

use alloc::format;
use alloc::string::String;
use core::fmt::Write as _;

use crate::diag;
use crate::link::{Dso, Kind, Namespace};

/// What to list besides the objects.
pub struct Listing<'a> {
    /// Libraries that were not found: (position in the global scope they
    /// would have taken, name), glibc's faked link maps.
    pub missing: &'a [(usize, alloc::vec::Vec<u8>)],
    /// `LD_TRACE_LOADED_OBJECTS` greater than 1: the program's own line
    /// first (glibc's `mode_trace_program`).
    pub program: bool,
    /// The path ld-cah was started by, in direct mode: the loader's
    /// `l_name` there (its `l_libname` stays the program's `PT_INTERP`).
    pub loader_path: Option<&'a [u8]>,
    /// `--list` of a locked program: each library's digest and verdict.
    pub notes: bool,
}

/// `LD_TRACE_LOADED_OBJECTS` is set (whatever its value, as in glibc's
/// `process_envvars`) and its value asks for the program's line too: what
/// glibc's `_dl_strtoul` reads from it is greater than 1.
pub fn lists_program(value: &[u8]) -> bool {
    strtoul(value) > 1
}

/// glibc's `_dl_strtoul`: leading blanks, an optional sign, then a
/// hexadecimal (`0x`), octal (`0`) or decimal number, up to the first
/// character that is not a digit; saturates at `u64::MAX`.
fn strtoul(s: &[u8]) -> u64 {
    let mut i = 0;
    while i < s.len() && (s[i] == b' ' || s[i] == b'\t') {
        i += 1;
    }
    let mut negative = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        negative = s[i] == b'-';
        i += 1;
    }
    let mut base = 10;
    if s.get(i) == Some(&b'0') {
        if matches!(s.get(i + 1), Some(b'x' | b'X')) {
            base = 16;
            i += 2;
        } else {
            base = 8;
            i += 1;
        }
    }
    let mut n: u64 = 0;
    while let Some(d) = s.get(i).and_then(|&c| (c as char).to_digit(base)) {
        n = n.saturating_mul(u64::from(base)).saturating_add(u64::from(d));
        i += 1;
    }
    if negative {
        n.wrapping_neg()
    } else {
        n
    }
}

/// The name an object was first asked for (glibc's `l_libname->name`):
/// the first name that is not just its `DT_SONAME`, which `Dso::new`
/// records before any request. The loader's is the program's `PT_INTERP`,
/// which is its `l_name` in ld-cah.
fn libname(d: &Dso) -> &[u8] {
    if d.kind == Kind::Loader {
        return d.l_name();
    }
    let so = d.soname();
    d.aliases.iter().find(|a| Some(&a[..]) != so).or(d.aliases.first()).map_or(d.l_name(), |a| a)
}

/// Prints the listing on stdout.
pub fn print(ns: &Namespace, l: &Listing<'_>) {
    let mut out = diag::Line::for_fd(1);
    let main = &ns.objs[ns.main];
    if main.dyn_info.needed.is_empty() {
        let _ = writeln!(out, "\tstatically linked");
        out.flush_to(1);
        return;
    }
    if l.program {
        // The program's `l_name` and `l_libname` are both empty.
        let _ = writeln!(out, "{}", line(b"", b"", main.map_start));
    }
    if let Some(v) = ns.vdso {
        let d = &ns.objs[v];
        let _ = writeln!(out, "{}", line(d.l_name(), d.l_name(), d.map_start));
    }
    let scope = &ns.scope;
    for (pos, id) in scope.iter().copied().enumerate().chain(core::iter::once((scope.len(), usize::MAX))) {
        for (_, name) in l.missing.iter().filter(|(p, _)| *p == pos) {
            let _ = writeln!(out, "\t{} => not found", diag::show(name));
        }
        let Some(d) = ns.objs.get(id).filter(|_| id != ns.main) else { continue };
        let name = match (d.kind, l.loader_path) {
            (Kind::Loader, Some(p)) => p,
            _ => d.l_name(),
        };
        let note = if l.notes { crate::link::policy::list_note(d) } else { None };
        let _ = writeln!(out, "{}{}", line(libname(d), name, d.map_start), note.unwrap_or_default());
    }
    out.flush_to(1);
}

/// One object's line (without its newline), by the rule of glibc's trace
/// loop.
fn line(libname: &[u8], name: &[u8], start: usize) -> String {
    if libname == name {
        format!("\t{} ({:#018x})", diag::show(libname), start)
    } else {
        format!("\t{} => {} ({:#018x})", dso_filename(libname), dso_filename(name), start)
    }
}

/// glibc's `DSO_FILENAME`: an empty name is the program's.
fn dso_filename(name: &[u8]) -> &str {
    if name.is_empty() {
        "<main program>"
    } else {
        diag::show(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strtoul_reads_like_glibc() {
        assert_eq!(strtoul(b"1"), 1);
        assert_eq!(strtoul(b"2"), 2);
        assert_eq!(strtoul(b""), 0);
        assert_eq!(strtoul(b"yes"), 0);
        assert_eq!(strtoul(b" 10abc"), 10);
        assert_eq!(strtoul(b"0x10"), 16);
        assert_eq!(strtoul(b"010"), 8);
        assert_eq!(strtoul(b"+3"), 3);
        assert!(!lists_program(b"1"));
        assert!(lists_program(b"2"));
        assert!(!lists_program(b""));
        // A negative number is a huge unsigned one, as in C.
        assert!(lists_program(b"-1"));
    }
}
