//! Tunables: ld.so's `tunable_list[]` and its secure-mode environment list.

use crate::dwarf::{lookup, DebugInfo, Types};
use crate::spec::Tag;
use crate::{Arch, Ctx, Elf};
use object::{Object, ObjectSection, ObjectSymbol};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

/// One entry of `tunable_list[]` (rendered as `layout::Tunables`: the
/// numbers in `defs`, the name and alias in `names` and `aliases`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunableRow {
    pub name: String,
    /// `TunableType` variant.
    pub ty: &'static str,
    pub default: u64,
    pub min: u64,
    pub max: u64,
    /// `TunableSecurity` variant, if the build has security levels.
    pub security: Option<&'static str>,
    pub alias: String,
}

/// Reads `tunable_list[]` from ld.so: its address and size from the debug
/// file's symbol table, the element layout (`tunable_t`) and the enum values
/// from the DWARF, the bytes from the shipped ld.so (the array is
/// initialised data; no relocation may touch it, so string defaults are
/// NULL).
pub(crate) fn read_tunables(types: &Types, files: &[DebugInfo], rtld: &Elf, rtld_dbg: &Elf, ctx: &Ctx) -> Result<Vec<TunableRow>, String> {
    let what = format!("{} tunable_list", ctx.label);
    let ty = types.get(Tag::Typedef, "tunable_t").ok_or_else(|| format!("{what}: tunable_t not in the DWARF"))?;
    let stride = ty.size();
    let field = |path: &[&str]| -> Option<(u64, u64)> { lookup(ty, path, 0).map(|f| (f.off, f.ty.size())) };
    // Before 2.33 `name` and `env_alias` are `const char *` (a relative
    // relocation per string), later `char[]` inside the entry.
    let is_ptr = |path: &[&str]| lookup(ty, path, 0).is_some_and(|f| matches!(f.ty, crate::dwarf::Ty::Scalar { size: 8 }));
    let (name_ptr, alias_ptr) = (is_ptr(&["name"]), is_ptr(&["env_alias"]));
    let need = |path: &[&str]| field(path).ok_or_else(|| format!("{what}: tunable_t.{} missing", path.join(".")));
    let name_f = need(&["name"])?;
    let code_f = need(&["type", "type_code"])?;
    let min_f = need(&["type", "min"])?;
    let max_f = need(&["type", "max"])?;
    // 2.39 and later keep the default apart (`def`); before, the initial `val` is it.
    let def_f = field(&["def", "numval"]).map_or_else(|| need(&["val", "numval"]), Ok)?;
    let init_f = need(&["initialized"])?;
    let sec_f = field(&["security_level"]);
    let alias_f = need(&["env_alias"])?;
    for (n, (_, size)) in [("type_code", code_f), ("min", min_f), ("max", max_f), ("default", def_f)] {
        let want = if n == "type_code" { 4 } else { 8 };
        if size != want {
            return Err(format!("{what}: {n} is {size} bytes, not {want}"));
        }
    }

    let mut codes = BTreeMap::new();
    let mut levels = BTreeMap::new();
    for f in files {
        f.enumerators(|n| n.starts_with("TUNABLE_TYPE_"), &mut codes)?;
        f.enumerators(|n| n.starts_with("TUNABLE_SECLEVEL_"), &mut levels)?;
    }
    let by_value = |m: &BTreeMap<String, i64>, v: i64| m.iter().find(|(_, x)| **x == v).map(|(n, _)| n.clone());

    let dbg = object::File::parse(&*rtld_dbg.data).map_err(|e| e.to_string())?;
    let sym = dbg
        .symbols()
        .find(|s| s.name() == Ok("tunable_list"))
        .ok_or_else(|| format!("{what}: no `tunable_list` symbol in {}", rtld_dbg.path.display()))?;
    let (addr, size) = (sym.address(), sym.size());
    if size == 0 || size % stride != 0 {
        return Err(format!("{what}: size {size} is not a multiple of sizeof(tunable_t) {stride}"));
    }
    let file = object::File::parse(&*rtld.data).map_err(|e| e.to_string())?;
    let bytes = file
        .sections()
        .find(|s| s.address() <= addr && addr + size <= s.address() + s.size())
        .and_then(|s| s.data_range(addr, size).ok().flatten())
        .ok_or_else(|| format!("{what}: {addr:#x}+{size} is not in a section with data"))?;
    // Relative relocations of string pointers (`name`, `env_alias` before
    // 2.33), by offset in the array: their addends are the strings' addresses.
    let mut strings = BTreeMap::new();
    if let Some(relocs) = file.dynamic_relocations() {
        for (off, r) in relocs {
            if off >= addr && off < addr + size {
                let in_entry = (off - addr) % stride;
                let is_string = (name_ptr && in_entry == name_f.0) || (alias_ptr && in_entry == alias_f.0);
                // object reports dynamic relocations by their ELF type.
                let relative = match r.flags() {
                    object::RelocationFlags::Elf { r_type } => match ctx.arch {
                        Arch::X86_64 => r_type == object::elf::R_X86_64_RELATIVE,
                        Arch::Aarch64 => r_type == object::elf::R_AARCH64_RELATIVE,
                    },
                    _ => false,
                };
                if !is_string || !relative {
                    return Err(format!("{what}: a dynamic relocation at {off:#x} patches the table (a string default?)"));
                }
                strings.insert(off - addr, r.addend() as u64);
            }
        }
    }

    let u64_at = |e: &[u8], (off, _): (u64, u64)| u64::from_le_bytes(e[off as usize..off as usize + 8].try_into().unwrap());
    let u32_at = |e: &[u8], (off, _): (u64, u64)| u32::from_le_bytes(e[off as usize..off as usize + 4].try_into().unwrap());
    let cstr_at = |e: &[u8], (off, size): (u64, u64)| -> Result<String, String> {
        let a = &e[off as usize..(off + size) as usize];
        let n = a.iter().position(|&b| b == 0).ok_or_else(|| format!("{what}: unterminated name"))?;
        String::from_utf8(a[..n].to_vec()).map_err(|e| e.to_string())
    };
    let string_at = |vaddr: u64| -> Result<String, String> {
        let s = file
            .sections()
            .find(|s| s.address() <= vaddr && vaddr < s.address() + s.size())
            .and_then(|s| s.data_range(vaddr, s.address() + s.size() - vaddr).ok().flatten())
            .ok_or_else(|| format!("{what}: string at {vaddr:#x} is not in a section with data"))?;
        let n = s.iter().position(|&b| b == 0).ok_or_else(|| format!("{what}: unterminated string at {vaddr:#x}"))?;
        String::from_utf8(s[..n].to_vec()).map_err(|e| e.to_string())
    };
    let text = |i: usize, e: &[u8], f: (u64, u64), ptr: bool| -> Result<String, String> {
        if !ptr {
            return cstr_at(e, f);
        }
        match strings.get(&(i as u64 * stride + f.0)) {
            Some(&a) => string_at(a),
            None if e[f.0 as usize..(f.0 + f.1) as usize].iter().all(|&b| b == 0) => Ok(String::new()),
            None => Err(format!("{what}: id {i}: a string pointer without a relocation")),
        }
    };
    let mut rows = Vec::new();
    for (i, e) in bytes.chunks_exact(stride as usize).enumerate() {
        let name = text(i, e, name_f, name_ptr)?;
        let code = u32_at(e, code_f) as i64;
        let ty = match by_value(&codes, code).as_deref() {
            Some("TUNABLE_TYPE_INT_32") => "Int32",
            Some("TUNABLE_TYPE_UINT_64") => "Uint64",
            Some("TUNABLE_TYPE_SIZE_T") => "SizeT",
            Some("TUNABLE_TYPE_STRING") => "String",
            other => return Err(format!("{what}: {name}: unknown type code {code} ({other:?})")),
        };
        if e[init_f.0 as usize] != 0 {
            return Err(format!("{what}: {name} is initialised in the file"));
        }
        let security = match sec_f {
            None => None,
            Some(f) => {
                let v = u32_at(e, f) as i64;
                Some(match by_value(&levels, v).as_deref() {
                    Some("TUNABLE_SECLEVEL_SXID_ERASE") => "Erase",
                    Some("TUNABLE_SECLEVEL_SXID_IGNORE") => "Ignore",
                    Some("TUNABLE_SECLEVEL_NONE") => "None",
                    other => return Err(format!("{what}: {name}: unknown security level {v} ({other:?})")),
                })
            }
        };
        let default = u64_at(e, def_f);
        if ty == "String" && default != 0 {
            return Err(format!("{what}: string tunable {name} has a default"));
        }
        if name.is_empty() || rows.iter().any(|r: &TunableRow| r.name == name) {
            return Err(format!("{what}: id {i}: empty or repeated name `{name}`"));
        }
        rows.push(TunableRow {
            name,
            ty,
            default,
            min: u64_at(e, min_f),
            max: u64_at(e, max_f),
            security,
            alias: text(i, e, alias_f, alias_ptr)?,
        });
    }
    (ctx.note)(&format!("{} tunables ({} bytes each){}", rows.len(), stride, if sec_f.is_some() { ", with security levels" } else { "" }));
    Ok(rows)
}

/// A tunable number as Rust source: INT_32 values in decimal, the others
/// in hex (their maxima are all-ones).
fn tunable_num(ty: &str, v: u64) -> String {
    match (ty, v as i64) {
        ("Int32", n) if n < 0 => format!("{n}i64 as u64"),
        ("Int32", n) => format!("{n}"),
        _ => format!("{v:#x}"),
    }
}

/// `Tunables { defs, names, aliases }`, one line per tunable in each, with
/// its id; each `Tunable` holds where its name and alias start.
pub(crate) fn render_tunables(rows: &[TunableRow]) -> Result<String, String> {
    let mut s = String::from("Tunables {\n        defs: &[\n");
    let (mut name_at, mut alias_at) = (0usize, 0usize);
    for (i, r) in rows.iter().enumerate() {
        let offset = |at: usize| u16::try_from(at).map_err(|_| format!("tunable names or aliases beyond 64 KiB ({})", r.name));
        let _ = writeln!(
            s,
            "            /* {i:2} */ Tunable {{ ty: TunableType::{}, default: {}, min: {}, max: {}, security: {}, name: {}, alias: {} }}, // {}",
            r.ty,
            tunable_num(r.ty, r.default),
            tunable_num(r.ty, r.min),
            tunable_num(r.ty, r.max),
            r.security.map_or("None".to_string(), |l| format!("Some(TunableSecurity::{l})")),
            offset(name_at)?,
            offset(alias_at)?,
            r.name,
        );
        name_at += r.name.len() + 1;
        alias_at += r.alias.len() + 1;
    }
    s.push_str("        ],\n");
    let id = |i: usize| Some(format!("{i:2}"));
    let names = crate::rust_names(rows.iter().enumerate().map(|(i, r)| (id(i), r.name.as_str())), "        ");
    let aliases = crate::rust_names(rows.iter().enumerate().map(|(i, r)| (id(i), r.alias.as_str())), "        ");
    let _ = write!(s, "        names: {names},\n        aliases: {aliases},\n    }}");
    Ok(s)
}

/// Cross-checks the table with what the build's own ld.so prints for
/// `--list-tunables` (one line per tunable, in id order: `NAME: VALUE (min:
/// MIN, max: MAX)`, or `NAME:` for strings), run natively or under
/// `qemu-<arch>` with the unpacked tree as its sysroot. Names, order and
/// types must agree; values too, except for `glibc.cpu.*` tunables, which
/// ld.so sets from the CPU it runs on before printing. Skipped (with a
/// note) when the ld.so cannot be run here.
pub(crate) fn check_list_tunables(rows: &mut [TunableRow], ctx: &Ctx, rtld: &Path) -> Result<(), String> {
    let what = ctx.label.clone();
    let native = match ctx.arch {
        Arch::X86_64 => std::env::consts::ARCH == "x86_64",
        Arch::Aarch64 => std::env::consts::ARCH == "aarch64",
    };
    let mut cmd = if native {
        Command::new(rtld)
    } else {
        let mut c = Command::new(format!("qemu-{}", ctx.arch.name()));
        if let Some(root) = &ctx.sysroot {
            c.arg("-L").arg(root);
        }
        c.arg(rtld);
        c
    };
    cmd.arg("--list-tunables").env_clear();
    let out = match cmd.output() {
        Ok(o) if o.status.success() => o,
        // Before 2.33 ld.so has no such option and takes it for a program.
        Ok(o) if String::from_utf8_lossy(&o.stderr).contains("--list-tunables: cannot open shared object file") => {
            (ctx.note)(&format!("{what}: tunables NOT cross-checked: this ld.so has no --list-tunables (before 2.33)"));
            return Ok(());
        }
        Ok(o) => return Err(format!("{what}: `{cmd:?}` failed ({}): {}", o.status, String::from_utf8_lossy(&o.stderr))),
        Err(e) => {
            (ctx.note)(&format!("{what}: tunables NOT cross-checked with --list-tunables: `{cmd:?}`: {e}"));
            return Ok(());
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    let mut problems = Vec::new();
    let mut moved = Vec::new();
    if lines.len() != rows.len() {
        problems.push(format!("ld.so lists {} tunables, the table has {}", lines.len(), rows.len()));
    }
    let num = |s: &str| -> Option<(bool, u64)> {
        match s.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16).ok().map(|v| (true, v)),
            None => s.parse::<i64>().ok().map(|v| (false, v as u64)),
        }
    };
    let mut adopted = Vec::new();
    for (id, (line, r)) in lines.iter().zip(rows.iter_mut()).enumerate() {
        let Some((name, rest)) = line.split_once(':') else {
            problems.push(format!("id {id}: unreadable line `{line}`"));
            continue;
        };
        if name != r.name {
            problems.push(format!("id {id}: ld.so says {name}, the table {}", r.name));
            continue;
        }
        let rest = rest.trim();
        if r.ty == "String" {
            if !rest.is_empty() {
                problems.push(format!("{name}: a string in the table, `{rest}` in ld.so"));
            }
            continue;
        }
        let parsed = rest.split_once(" (min: ").and_then(|(v, b)| {
            let (lo, hi) = b.strip_suffix(')')?.split_once(", max: ")?;
            Some((num(v)?, num(lo)?, num(hi)?))
        });
        let Some(((hex, v), (_, lo), (_, hi))) = parsed else {
            problems.push(format!("{name}: unreadable `{rest}`"));
            continue;
        };
        if hex == (r.ty == "Int32") {
            problems.push(format!("{name}: {} in the table, printed as {}", r.ty, if hex { "hex" } else { "decimal" }));
        }
        // INT_32 values print as `int`.
        let fix = |x: u64| if r.ty == "Int32" { x as i64 as i32 as i64 as u64 } else { x };
        if (fix(r.default), fix(r.min), fix(r.max)) != (v, lo, hi) {
            if name.starts_with("glibc.cpu.") {
                moved.push(name.to_string());
            } else if (fix(r.min), fix(r.max)) == (lo, hi) {
                // ld.so sets another default before any program runs (2.43
                // aarch64: `glibc.malloc.hugetlb` is 1): that is the value
                // libc sees, so the table takes it.
                adopted.push(format!("{name} {:#x} -> {v:#x}", r.default));
                r.default = v;
            } else {
                problems.push(format!("{name}: table {:#x} ({:#x}..{:#x}), ld.so {v:#x} ({lo:#x}..{hi:#x})", r.default, r.min, r.max));
            }
        }
    }
    if !problems.is_empty() {
        return Err(format!("{what}: tunable_list[] disagrees with `ld.so --list-tunables`:\n  {}", problems.join("\n  ")));
    }
    if !adopted.is_empty() {
        (ctx.note)(&format!("defaults ld.so sets at start-up, taken from --list-tunables: {}", adopted.join(", ")));
    }
    (ctx.note)(&format!(
        "{} tunables agree with --list-tunables{}",
        rows.len(),
        if moved.is_empty() { String::new() } else { format!(" (set from the CPU at run time: {})", moved.join(", ")) }
    ));
    Ok(())
}

/// ld.so's list of variables it removes for `AT_SECURE` programs
/// (`UNSECURE_ENVVARS`, one string literal `"GCONV_PATH\0...\0"`): the one
/// run of NUL-terminated names in ld.so that starts with `GCONV_PATH`,
/// ends with an empty string, holds only environment variable names and
/// names `LD_PRELOAD` and `LD_LIBRARY_PATH`.
pub(crate) fn unsecure_env(rtld: &Elf) -> Result<Vec<String>, String> {
    let needle = b"GCONV_PATH\0";
    let data = &rtld.data;
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(p) = data[at..].windows(needle.len()).position(|w| w == needle) {
        let start = at + p;
        at = start + 1;
        if start > 0 && data[start - 1] != 0 {
            continue;
        }
        let mut names = Vec::new();
        let mut i = start;
        let ok = loop {
            let Some(n) = data[i..].iter().position(|&b| b == 0) else { break false };
            if n == 0 {
                break true;
            }
            let s = &data[i..i + n];
            let env_name = s[0].is_ascii_uppercase() && s.iter().all(|&b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
            if !env_name {
                break false;
            }
            names.push(String::from_utf8_lossy(s).into_owned());
            i += n + 1;
        };
        if ok && names.iter().any(|n| n == "LD_PRELOAD") && names.iter().any(|n| n == "LD_LIBRARY_PATH") {
            found.push(names);
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        n => Err(format!("{}: {n} candidates for the secure-mode variable list (UNSECURE_ENVVARS), expected 1", rtld.path.display())),
    }
}
