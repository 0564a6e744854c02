//! The glibc layout table generator, shared by `cargo xtask glibc-layouts`
//! (the tables built into ld-cah) and `cah glibc add` (a table installed on
//! the user's machine).
//!
//! From one glibc build (its stripped `libc.so.6` and `ld.so` and their
//! detached debug files) [`generate`] reads the values of a
//! `loader/src/glibc/layout.rs` `Layout` once, as a [`Generated`]; that
//! value is then rendered as Rust source ([`render_rust`], the files under
//! `loader/src/glibc/layouts/`) or as the binary table format
//! ([`encode`], `docs/glibc-table-format.md`). The loader's decoder of the
//! binary format is generated from the same specification
//! ([`render_decoder`]), so encoder and decoder cannot drift apart.
//!
//! What is read, and how it is cross-checked, is described in
//! `docs/glibc-layouts.md`.

mod dwarf;
pub mod spec;
mod thread_db;
mod tunables;

use dwarf::{flat_members, load_sections, lookup, DebugInfo, Found, Ty, Types};
use object::{Object, ObjectSection, ObjectSymbol};
use spec::{Kind, MemberSpec, Spec, TableSpec, Tag};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
pub use tunables::TunableRow;

/// The architecture of a glibc build.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    /// `x86_64`, `aarch64` (also the `qemu-` suffix).
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// The file name of the build's dynamic loader.
    pub fn rtld_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "ld-linux-x86-64.so.2",
            Arch::Aarch64 => "ld-linux-aarch64.so.1",
        }
    }

    /// The Debian multiarch triplet.
    pub fn triplet(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-linux-gnu",
            Arch::Aarch64 => "aarch64-linux-gnu",
        }
    }

    /// The arch of an ELF file, if supported.
    pub fn of(elf: &Elf) -> Result<Arch, String> {
        let file = object::File::parse(&*elf.data).map_err(|e| format!("{}: {e}", elf.path.display()))?;
        match file.architecture() {
            object::Architecture::X86_64 => Ok(Arch::X86_64),
            object::Architecture::Aarch64 => Ok(Arch::Aarch64),
            other => Err(format!("{}: unsupported architecture {other:?}", elf.path.display())),
        }
    }
}

/// An ELF file in memory, with its `NT_GNU_BUILD_ID`.
pub struct Elf {
    pub path: PathBuf,
    pub data: Vec<u8>,
    pub build_id: Vec<u8>,
}

/// Reads an ELF file and its build id (which it must have).
pub fn read_elf(path: PathBuf) -> Result<Elf, String> {
    let data = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let build_id = {
        let file = object::File::parse(&*data).map_err(|e| format!("{}: {e}", path.display()))?;
        file.build_id()
            .map_err(|e| format!("{}: {e}", path.display()))?
            .ok_or_else(|| format!("{}: no NT_GNU_BUILD_ID note", path.display()))?
            .to_vec()
    };
    Ok(Elf { path, data, build_id })
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What one generation run needs besides the files.
pub struct Ctx {
    /// Names the build in messages (`2.36-9+deb12u14 x86_64`).
    pub label: String,
    /// The build's architecture (checked against libc).
    pub arch: Arch,
    /// Root of the build's file tree, for `qemu-<arch> -L` when its ld.so
    /// cannot run natively (`--list-tunables` cross-check).
    pub sysroot: Option<PathBuf>,
    /// Progress notes.
    pub note: fn(&str),
}

/// The four files of a build.
pub struct Files<'a> {
    pub libc: &'a Elf,
    pub rtld: &'a Elf,
    pub libc_dbg: &'a Elf,
    pub rtld_dbg: &'a Elf,
}

/// libc's version banner, `GNU C Library (...) ... release version X.Y.`.
pub fn banner(libc: &Elf) -> Result<String, String> {
    let needle = b"GNU C Library ";
    let start = libc
        .data
        .windows(needle.len())
        .position(|w| w == needle)
        .ok_or_else(|| format!("{}: no `GNU C Library` banner", libc.path.display()))?;
    let end = libc.data[start..].iter().position(|&b| b == 0 || b == b'\n').map(|n| start + n).unwrap_or(libc.data.len());
    Ok(String::from_utf8_lossy(&libc.data[start..end]).into_owned())
}

/// The distributor in a banner (`Debian` in `GNU C Library (Debian GLIBC
/// 2.31-13+deb11u11) ...`): the first word in the parentheses.
pub fn banner_vendor(libc: &Elf) -> Result<String, String> {
    let banner = banner(libc)?;
    banner
        .strip_prefix("GNU C Library (")
        .and_then(|r| r.split([' ', ')']).next())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .ok_or_else(|| format!("{}: no distributor in `{banner}`", libc.path.display()))
}

/// The upstream version in a banner (`2.36`).
pub fn banner_version(libc: &Elf) -> Result<String, String> {
    let banner = banner(libc)?;
    banner
        .rsplit_once("release version ")
        .map(|(_, v)| v.trim_end_matches('.').to_string())
        .ok_or_else(|| format!("{}: no release version in `{banner}`", libc.path.display()))
}

// ---------------------------------------------------------------------------
// The generated value.

/// One member's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberValue {
    Field { off: u32, size: u32 },
    Bits { off: u32, bit: u8, width: u8 },
    Array { off: u32, stride: u32, len: u32 },
}

/// One table struct's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableValue {
    /// The Rust type (`RtldGlobal`).
    pub rust: String,
    pub size: u32,
    /// One per member of the spec, in order; `None` for an absent optional member.
    pub members: Vec<Option<MemberValue>>,
    /// Members the DWARF has and the table does not ask for (`name off+size`).
    pub not_in_table: Vec<String>,
}

/// `layout::Fingerprint`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FingerprintValue {
    pub version: String,
    /// Sorted, unique.
    pub imports: Vec<String>,
    /// Sorted by name.
    pub thread_db: Vec<(String, Vec<u32>)>,
}

/// The values of one `Layout`, generated once and rendered as Rust or binary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generated {
    pub glibc_version: String,
    pub arch: Arch,
    pub libc_build_id: Vec<u8>,
    pub rtld_build_id: Vec<u8>,
    pub fingerprint: FingerprintValue,
    /// One per [`ENUMERATORS`], in order.
    pub enumerators: Vec<Option<i64>>,
    /// Layout field name -> table (`None`: an absent optional table).
    pub tables: BTreeMap<String, Option<TableValue>>,
    pub tunables: Vec<TunableRow>,
    pub unsecure_env: Vec<String>,
}

/// The `Enumerators` fields: each is the enumerator of the same name
/// (upper-cased where glibc spells it so) in ld.so's or libc's DWARF.
pub const ENUMERATORS: &[&str] = &[
    "ALLOCATE_GUARD_USER",
    "THREAD_STATE_JOINABLE",
    "dl_readonly_area_rdonly",
    "dl_readonly_area_writable",
    "dl_readonly_area_not_found",
    "arch_kind_intel",
    "arch_kind_amd",
    "arch_kind_zhaoxin",
    "arch_kind_hygon",
    "arch_kind_other",
    "bit_arch_Fast_Rep_String",
    "bit_arch_Fast_Copy_Backward",
    "bit_arch_Slow_BSF",
    "bit_arch_Fast_Unaligned_Load",
    "bit_arch_Prefer_PMINUB_for_stringop",
    "bit_arch_Fast_Unaligned_Copy",
    "bit_arch_I586",
    "bit_arch_I686",
    "bit_arch_Slow_SSE4_2",
    "bit_arch_AVX_Fast_Unaligned_Load",
    "bit_arch_Prefer_No_VZEROUPPER",
    "bit_arch_Prefer_No_AVX512",
    "bit_arch_Avoid_Short_Distance_REP_MOVSB",
    "bit_arch_Avoid_Non_Temporal_Memset",
    "bit_arch_Avoid_STOSB",
];

/// The `Layout` (and `Types`) fields that are not table structs, with the
/// type [`spec_description`] names for each: the Rust type the field had
/// when format 1 was defined. Their encoding is written by hand ([`encode`]
/// and the loader's `table_reader`), not derived from their Rust type, so
/// their in-memory form may change (`unsecure_env` became one string of
/// NUL-terminated names, for a relocation-free table) without changing the
/// format; changing the encoding is a new [`FORMAT_VERSION`].
const METADATA: &[(&str, &str)] = &[
    ("glibc_version", "&'static str"),
    ("arch", "Arch"),
    ("fingerprint", "Fingerprint"),
    ("enumerators", "Enumerators"),
    ("tunables", "&'static [Tunable]"),
    ("unsecure_env", "&'static [&'static str]"),
];

fn is_metadata(field: &str) -> bool {
    METADATA.iter().any(|(n, _)| *n == field)
}

fn table_spec<'s>(spec: &'s Spec, field: &spec::LayoutField) -> Result<&'s TableSpec, String> {
    spec.tables
        .iter()
        .find(|t| t.rust == field.ty)
        .ok_or_else(|| format!("layout.rs: Layout.{}: `{}` is not a table type", field.rust, field.ty))
}

/// Generates the values of `spec`'s `Layout` for one build.
pub fn generate(spec: &Spec, files: &Files, ctx: &Ctx) -> Result<Generated, String> {
    let Files { libc, rtld, libc_dbg, rtld_dbg } = *files;
    for (elf, dbg) in [(libc, libc_dbg), (rtld, rtld_dbg)] {
        if dbg.build_id != elf.build_id {
            return Err(format!("{}: build id differs from {}", dbg.path.display(), elf.path.display()));
        }
    }
    check_arch(libc, ctx)?;
    let glibc_version = banner_version(libc)?;

    let rtld_sections = load_sections(rtld_dbg)?;
    let libc_sections = load_sections(libc_dbg)?;
    let dbg_files = vec![DebugInfo::new(ctx.arch.rtld_name(), &rtld_sections)?, DebugInfo::new("libc.so.6", &libc_sections)?];
    let mut wanted: BTreeSet<(Tag, String)> = spec.tables.iter().map(|t| (t.tag, t.name.clone())).collect();
    for (_, ty, _) in thread_db::THREAD_DB {
        wanted.insert(ty.key());
    }
    wanted.insert((Tag::Typedef, "tunable_t".into()));
    let types = Types::new(&dbg_files, &wanted)?;
    thread_db::check_thread_db(&types, libc, ctx)?;
    let mut tunables = tunables::read_tunables(&types, &dbg_files, rtld, rtld_dbg, ctx)?;
    tunables::check_list_tunables(&mut tunables, ctx, &rtld.path)?;
    let unsecure_env = tunables::unsecure_env(rtld)?;
    let fingerprint = fingerprint(libc, &glibc_version)?;
    let enumerators = enumerators(&dbg_files)?;

    let mut tables = BTreeMap::new();
    for f in &spec.layout {
        if is_metadata(&f.rust) {
            continue;
        }
        let t = table_spec(spec, f)?;
        tables.insert(f.rust.clone(), table(&types, t, ctx, f.optional)?);
    }
    Ok(Generated {
        glibc_version,
        arch: ctx.arch,
        libc_build_id: libc.build_id.clone(),
        rtld_build_id: rtld.build_id.clone(),
        fingerprint,
        enumerators,
        tables,
        tunables,
        unsecure_env,
    })
}

fn table(types: &Types, t: &TableSpec, ctx: &Ctx, optional: bool) -> Result<Option<TableValue>, String> {
    let ty = match t.arch {
        Some(a) if a != ctx.arch => None,
        _ => types.get(t.tag, &t.name),
    };
    let Some(ty) = ty else {
        if optional {
            return Ok(None);
        }
        return Err(format!("{:?} {} not found in the DWARF of {}", t.tag, t.name, ctx.label));
    };
    let Ty::Record { size, .. } = ty else {
        return Err(format!("{} is not a struct or union", t.name));
    };
    let size = u16::try_from(*size).map(u32::from).map_err(|_| format!("{}: size {size} is over 65535, a table's limit", t.name))?;
    let mut members = Vec::new();
    for m in &t.members {
        let path: Vec<&str> = m.path.split('.').collect();
        members.push(match lookup(ty, &path, 0) {
            None if m.optional => None,
            None => {
                return Err(format!(
                    "{}.{} (`{}`) is missing from {}: make it `Option<...>` in layout.rs and handle its absence",
                    t.name, m.rust, m.path, ctx.label
                ))
            }
            Some(f) => Some(member(&f, m).map_err(|e| format!("{}.{}: {e}", t.name, m.path))?),
        });
    }
    // Members the table does not ask for, so that a new build's additions
    // show up in review.
    let mut flat = Vec::new();
    flat_members(ty, 0, &mut flat);
    let covered: BTreeSet<&str> = t.members.iter().map(|m| m.path.split('.').next().unwrap_or("")).collect();
    let not_in_table = flat.iter().filter(|(n, _, _)| !covered.contains(n.as_str())).map(|(n, o, z)| format!("{n} {o}+{z}")).collect();
    Ok(Some(TableValue { rust: t.rust.clone(), size, members, not_in_table }))
}

fn member(f: &Found, m: &MemberSpec) -> Result<MemberValue, String> {
    // The loader keeps offsets and sizes in 16 bits (glibc's structs are
    // a few KB); the file format has 32.
    let n16 = |v: u64| u16::try_from(v).map(u32::from).map_err(|_| format!("{v} is over 65535, a table's limit"));
    Ok(match (m.kind, f.bits, f.ty) {
        (Kind::Bits, Some((b, w)), _) => {
            MemberValue::Bits { off: n16(b / 8)?, bit: (b % 8) as u8, width: u8::try_from(w).map_err(|_| format!("bit-field width {w}"))? }
        }
        (Kind::Bits, None, _) => return Err("is not a bit-field (use Field)".into()),
        (_, Some(_), _) => return Err("is a bit-field (use Bits)".into()),
        (Kind::Array, None, Ty::Array { stride, len }) => MemberValue::Array { off: n16(f.off)?, stride: n16(*stride)?, len: n16(*len)? },
        (Kind::Array, None, _) => return Err("is not an array (use Field)".into()),
        (Kind::Field, None, ty) => MemberValue::Field { off: n16(f.off)?, size: n16(ty.size())? },
    })
}

fn enumerators(files: &[DebugInfo]) -> Result<Vec<Option<i64>>, String> {
    let mut found = BTreeMap::new();
    for f in files {
        f.enumerators(|n| ENUMERATORS.contains(&n), &mut found)?;
    }
    Ok(ENUMERATORS.iter().map(|n| found.get(*n).copied()).collect())
}

/// The fingerprint of a build, from its stripped `libc.so.6` (what the
/// loader reads at run time; see `glibc/fingerprint.rs`).
fn fingerprint(libc: &Elf, banner_version: &str) -> Result<FingerprintValue, String> {
    let file = object::File::parse(&*libc.data).map_err(|e| e.to_string())?;
    let mut version = None;
    let mut imports = BTreeSet::new();
    for sym in file.dynamic_symbols() {
        let Ok(name) = sym.name() else { continue };
        if sym.is_undefined() {
            if !name.is_empty() {
                imports.insert(name.to_string());
            }
        } else if name == "__nptl_version" {
            let index = sym.section_index().ok_or("__nptl_version has no section")?;
            let section = file.section_by_index(index).map_err(|e| e.to_string())?;
            let bytes = section
                .data_range(sym.address(), sym.size().max(1))
                .map_err(|e| e.to_string())?
                .ok_or("__nptl_version outside its section")?;
            let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
            version = Some(String::from_utf8_lossy(&bytes[..end]).into_owned());
        }
    }
    // Before 2.34 `__nptl_version` is libpthread's: the loader then reads
    // libc's banner, and the fact is the release and the distributor that
    // built it (`2.31 Debian`, from `GNU C Library (Debian GLIBC ...)`):
    // with the imports, the only layout facts libc itself shows then.
    let version = match version {
        Some(v) => v,
        None => format!("{banner_version} {}", banner_vendor(libc)?),
    };
    if version.split(' ').next() != Some(banner_version) {
        return Err(format!("{}: __nptl_version {version:?} but the banner says {banner_version:?}", libc.path.display()));
    }
    let thread_db: Vec<(String, Vec<u32>)> = thread_db::thread_db_descriptors(libc)?.into_iter().collect();
    // glibc's `db_desc_t` is three words; the loader keeps that many.
    if let Some((name, words)) = thread_db.iter().find(|(_, w)| w.len() > 3) {
        return Err(format!("{}: _thread_db_{name} has {} words, more than a db_desc_t", libc.path.display(), words.len()));
    }
    Ok(FingerprintValue { version, imports: imports.into_iter().collect(), thread_db })
}

fn check_arch(libc: &Elf, ctx: &Ctx) -> Result<(), String> {
    let arch = Arch::of(libc)?;
    if arch != ctx.arch {
        return Err(format!("{}: is {}, not {}", libc.path.display(), arch.name(), ctx.arch.name()));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Rendering as Rust.

fn rust_member(v: &MemberValue) -> String {
    match *v {
        MemberValue::Field { off, size } => format!("Field {{ off: {off}, size: {size} }}"),
        MemberValue::Bits { off, bit, width } => format!("Bits {{ off: {off}, bit: {bit}, width: {width} }}"),
        MemberValue::Array { off, stride, len } => format!("Array {{ off: {off}, stride: {stride}, len: {len} }}"),
    }
}

fn rust_table(t: &TableSpec, v: &TableValue, optional: bool) -> String {
    let mut s = format!("{} {{\n        size: {},\n", t.rust, v.size);
    for (m, value) in t.members.iter().zip(&v.members) {
        let value = match value {
            None => "None".to_string(),
            Some(v) if m.optional => format!("Some({})", rust_member(v)),
            Some(v) => rust_member(v),
        };
        let _ = writeln!(s, "        {}: {},", m.rust, value);
    }
    if !v.not_in_table.is_empty() {
        let _ = writeln!(s, "        // not in the table: {}", v.not_in_table.join(", "));
    }
    s.push_str("    }");
    if optional {
        format!("Some({s})")
    } else {
        s
    }
}

/// `Names(concat!(...))`, one name per line at `indent`, each line
/// optionally preceded by a comment (`Names("...")` for fewer than two
/// names, where `concat!` would be useless).
pub(crate) fn rust_names<'a>(names: impl IntoIterator<Item = (Option<String>, &'a str)>, indent: &str) -> String {
    let literal = |n: &str| {
        let escaped = format!("{n:?}");
        format!("{}\\0\"", &escaped[..escaped.len() - 1])
    };
    let names: Vec<(Option<String>, &str)> = names.into_iter().collect();
    match &names[..] {
        [] => return "Names(\"\")".into(),
        [(_, n)] => return format!("Names({})", literal(n)),
        _ => {}
    }
    let mut s = String::from("Names(concat!(\n");
    for (comment, n) in names {
        let comment = comment.map_or(String::new(), |c| format!("/* {c} */ "));
        let _ = writeln!(s, "{indent}    {comment}{},", literal(n));
    }
    let _ = write!(s, "{indent}))");
    s
}

fn rust_fingerprint(fp: &FingerprintValue) -> String {
    let mut s = String::from("Fingerprint {\n");
    let _ = writeln!(s, "        version: {:?},", fp.version);
    let _ = writeln!(s, "        imports: {},", rust_names(fp.imports.iter().map(|n| (None, n.as_str())), "        "));
    s.push_str("        thread_db: &[\n");
    for (name, words) in &fp.thread_db {
        let w: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        let _ = writeln!(s, "            ThreadDb::new(&[{}]), // {name}", w.join(", "));
    }
    s.push_str("        ],\n");
    let _ = writeln!(s, "        thread_db_names: {},", rust_names(fp.thread_db.iter().map(|(n, _)| (None, n.as_str())), "        "));
    s.push_str("    }");
    s
}

fn arch_variant(a: Arch) -> &'static str {
    match a {
        Arch::X86_64 => "X86_64",
        Arch::Aarch64 => "Aarch64",
    }
}

/// The Rust source of a table, without the provenance header (the `//!`
/// lines, which the caller writes): `static TYPES` (the structure
/// layouts: no pointer, so in `.rodata`), `pub static LAYOUT` and the
/// compile-time `check`.
pub fn render_rust(spec: &Spec, g: &Generated) -> Result<String, String> {
    let (mut types, mut layout) = (String::new(), String::new());
    for f in &spec.layout {
        let value = match f.rust.as_str() {
            "glibc_version" => format!("{:?}", g.glibc_version),
            "fingerprint" => rust_fingerprint(&g.fingerprint),
            "enumerators" => {
                let mut s = String::from("Enumerators {\n");
                for (n, v) in ENUMERATORS.iter().zip(&g.enumerators) {
                    let v = v.map_or("None".to_string(), |v| format!("Some({v})"));
                    let _ = writeln!(s, "        {}: {v},", n.to_ascii_lowercase());
                }
                s.push_str("    }");
                s
            }
            "arch" => format!("Arch::{}", arch_variant(g.arch)),
            "tunables" => tunables::render_tunables(&g.tunables)?,
            "unsecure_env" => rust_names(g.unsecure_env.iter().map(|n| (None, n.as_str())), "    "),
            _ => {
                let t = table_spec(spec, f)?;
                match g.tables.get(&f.rust) {
                    Some(Some(v)) => rust_table(t, v, f.optional),
                    Some(None) if f.optional => "None".into(),
                    _ => return Err(format!("Layout.{}: no value", f.rust)),
                }
            }
        };
        if f.in_types {
            if types.is_empty() {
                let _ = writeln!(layout, "    {}: &TYPES,", spec.types_field);
            }
            let _ = writeln!(types, "    {}: {},", f.rust, value);
        } else {
            let _ = writeln!(layout, "    {}: {},", f.rust, value);
        }
    }
    let mut out = String::new();
    out.push_str("use crate::glibc::layout::*;\n\n");
    out.push_str("static TYPES: Types = Types {\n");
    out.push_str(&types);
    out.push_str("};\n\n");
    let _ = writeln!(out, "/// glibc {} {}.", g.glibc_version, g.arch.name());
    out.push_str("pub static LAYOUT: Layout = Layout {\n");
    out.push_str(&layout);
    out.push_str("};\n\n");
    // A table that breaks an invariant of `Layout::check` fails the build.
    out.push_str("const _: () = if let Err(e) = LAYOUT.check() {\n    panic!(\"{}\", e.0)\n};\n");
    Ok(out)
}

// ---------------------------------------------------------------------------
// The binary format (docs/glibc-table-format.md).

/// The first bytes of a table file.
pub const MAGIC: &[u8; 8] = b"CAHGLTAB";
/// The version of the binary format.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes before the body: magic, version, spec digest, body digest.
pub const HEADER_LEN: usize = 8 + 4 + 32 + 32;

/// The spec digest: BLAKE3 of the canonical description of `spec` (every
/// `Layout` field with its type, the enumerators, every table struct with
/// its members' names, kinds and optionality, in order). A table whose
/// digest differs was written for another `layout.rs` and is refused.
pub fn spec_digest(spec: &Spec) -> [u8; 32] {
    *blake3::hash(spec_description(spec).as_bytes()).as_bytes()
}

/// The text [`spec_digest`] hashes.
pub fn spec_description(spec: &Spec) -> String {
    let mut s = format!("ld-cah glibc table format {FORMAT_VERSION}\n");
    for f in &spec.layout {
        let ty = METADATA.iter().find(|(n, _)| *n == f.rust).map_or(f.ty.as_str(), |(_, ty)| ty);
        let _ = writeln!(s, "layout {} {ty}{}", f.rust, if f.optional { " optional" } else { "" });
    }
    for n in ENUMERATORS {
        let _ = writeln!(s, "enumerator {n}");
    }
    for t in &spec.tables {
        let _ = writeln!(s, "table {}", t.rust);
        for m in &t.members {
            let _ = writeln!(s, "  member {} {:?}{}", m.rust, m.kind, if m.optional { " optional" } else { "" });
        }
    }
    s
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn count(&mut self, n: usize) -> Result<(), String> {
        self.u32(u32::try_from(n).map_err(|_| format!("count {n} too large"))?);
        Ok(())
    }
    fn bytes(&mut self, b: &[u8]) -> Result<(), String> {
        self.count(b.len())?;
        self.0.extend_from_slice(b);
        Ok(())
    }
    fn flag(&mut self, v: bool) {
        self.u8(v as u8);
    }
    fn member(&mut self, v: &MemberValue) {
        match *v {
            MemberValue::Field { off, size } => {
                self.u32(off);
                self.u32(size);
            }
            MemberValue::Bits { off, bit, width } => {
                self.u32(off);
                self.u8(bit);
                self.u8(width);
            }
            MemberValue::Array { off, stride, len } => {
                self.u32(off);
                self.u32(stride);
                self.u32(len);
            }
        }
    }
}

/// Tunable type codes of the binary format.
pub const TUNABLE_TYPES: &[&str] = &["Int32", "Uint64", "SizeT", "String"];
/// Security level codes of the binary format (0: the build has none).
pub const TUNABLE_SECURITY: &[&str] = &["", "Erase", "Ignore", "None"];

/// The binary table file of `g`: header (magic, format version, spec
/// digest, BLAKE3 of the body) and body (build ids, then every `Layout`
/// value in spec order).
pub fn encode(spec: &Spec, g: &Generated) -> Result<Vec<u8>, String> {
    let mut w = Writer(Vec::new());
    w.bytes(&g.libc_build_id)?;
    w.bytes(&g.rtld_build_id)?;
    for f in &spec.layout {
        match f.rust.as_str() {
            "glibc_version" => w.bytes(g.glibc_version.as_bytes())?,
            "arch" => w.u8(match g.arch {
                Arch::X86_64 => 1,
                Arch::Aarch64 => 2,
            }),
            "fingerprint" => {
                let fp = &g.fingerprint;
                w.bytes(fp.version.as_bytes())?;
                w.count(fp.imports.len())?;
                for n in &fp.imports {
                    w.bytes(n.as_bytes())?;
                }
                w.count(fp.thread_db.len())?;
                for (n, words) in &fp.thread_db {
                    w.bytes(n.as_bytes())?;
                    w.count(words.len())?;
                    for &x in words {
                        w.u32(x);
                    }
                }
            }
            "enumerators" => {
                for v in &g.enumerators {
                    w.flag(v.is_some());
                    if let Some(v) = v {
                        w.u64(*v as u64);
                    }
                }
            }
            "tunables" => {
                w.count(g.tunables.len())?;
                for t in &g.tunables {
                    w.bytes(t.name.as_bytes())?;
                    let ty = TUNABLE_TYPES.iter().position(|x| *x == t.ty).ok_or("tunable type")?;
                    w.u8(ty as u8);
                    w.u64(t.default);
                    w.u64(t.min);
                    w.u64(t.max);
                    let sec = TUNABLE_SECURITY.iter().position(|x| Some(*x) == t.security).unwrap_or(0);
                    w.u8(sec as u8);
                    w.bytes(t.alias.as_bytes())?;
                }
            }
            "unsecure_env" => {
                w.count(g.unsecure_env.len())?;
                for n in &g.unsecure_env {
                    w.bytes(n.as_bytes())?;
                }
            }
            _ => {
                let t = table_spec(spec, f)?;
                let v = match g.tables.get(&f.rust) {
                    Some(Some(v)) => Some(v),
                    Some(None) if f.optional => None,
                    _ => return Err(format!("Layout.{}: no value", f.rust)),
                };
                if f.optional {
                    w.flag(v.is_some());
                }
                let Some(v) = v else { continue };
                w.u32(v.size);
                for (m, value) in t.members.iter().zip(&v.members) {
                    if m.optional {
                        w.flag(value.is_some());
                    }
                    match value {
                        Some(value) => w.member(value),
                        None if m.optional => {}
                        None => return Err(format!("{}.{}: no value", t.rust, m.rust)),
                    }
                }
            }
        }
    }
    let body = w.0;
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&spec_digest(spec));
    out.extend_from_slice(blake3::hash(&body).as_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// The loader's decoder of the body (`loader/src/glibc/layouts/decode.rs`),
/// generated from the same spec as [`encode`]: one function per table of
/// `Layout`, reading members in spec order with the primitives of
/// `glibc::table_reader::Reader`.
pub fn render_decoder(spec: &Spec) -> Result<String, String> {
    let mut s = String::from(
        "//! Generated by `cargo xtask glibc-layouts` from `layout.rs`: the decoder\n\
         //! of an installed layout table's body (docs/glibc-table-format.md),\n\
         //! written from the same spec as the encoder (`glibc-gen`). Do not edit.\n\n\
         use crate::glibc::table_reader::{leaked, Reader};\n\
         use crate::glibc::layout::*;\n\n",
    );
    let _ = writeln!(s, "/// The binary format version this decoder reads.\npub const FORMAT_VERSION: u32 = {FORMAT_VERSION};\n");
    let digest: Vec<String> = spec_digest(spec).iter().map(|b| format!("0x{b:02x}")).collect();
    let _ = writeln!(
        s,
        "/// BLAKE3 of the description of `layout.rs` this decoder was generated from.\npub const SPEC_DIGEST: [u8; 32] = [\n    {},\n    {},\n];\n",
        digest[..16].join(", "),
        digest[16..].join(", ")
    );
    s.push_str("/// The `Layout` of a table body (after the build ids).\npub fn layout(r: &mut Reader<'_>) -> Result<Layout, &'static str> {\n    Ok(Layout {\n");
    let mut fns = String::new();
    let mut types = String::new();
    for f in &spec.layout {
        let value = match f.rust.as_str() {
            "glibc_version" => "r.str()?".to_string(),
            "arch" => "r.arch()?".to_string(),
            "fingerprint" => "r.fingerprint()?".to_string(),
            "tunables" => "r.tunables()?".to_string(),
            "unsecure_env" => "r.names()?".to_string(),
            "enumerators" => {
                // Like a table: one call per value, checked at the end.
                fns.push_str("\n#[inline(never)]\nfn enumerators(r: &mut Reader<'_>, t: &mut Enumerators) {\n");
                for n in ENUMERATORS {
                    let _ = writeln!(fns, "    t.{} = r.next_opt_i64();", n.to_ascii_lowercase());
                }
                fns.push_str("}\n");
                "enumerators(r, &mut t.enumerators);".to_string()
            }
            _ => {
                let t = table_spec(spec, f)?;
                // One call per member, each stored in place, the error
                // checked once at the end of `types` (`Reader::finish`): a
                // `?` per member, and then a struct built and moved, were
                // most of the loader's code for this rarely taken path.
                let _ = writeln!(
                    fns,
                    "\n#[inline(never)]\nfn {}(r: &mut Reader<'_>, t: &mut {}) {{\n    t.size = r.next_offset();",
                    f.rust, t.rust
                );
                for m in &t.members {
                    let kind = match m.kind {
                        Kind::Field => "field",
                        Kind::Bits => "bits",
                        Kind::Array => "array",
                    };
                    let opt = if m.optional { "opt_" } else { "" };
                    let _ = writeln!(fns, "    t.{} = r.next_{opt}{kind}();", m.rust);
                }
                fns.push_str("}\n");
                if f.optional {
                    format!(
                        "t.{0} = r.next_flag().then(|| {{\n        let mut x = Default::default();\n        {0}(r, &mut x);\n        x\n    }});",
                        f.rust
                    )
                } else {
                    format!("{0}(r, &mut t.{0});", f.rust)
                }
            }
        };
        if f.in_types {
            // The `Types`, read in their place in the format (one
            // statement per table, in spec order), leaked like the lists.
            if types.is_empty() {
                let _ = writeln!(s, "        {}: leaked(types(r)?),", spec.types_field);
            }
            let _ = writeln!(types, "    {value}");
        } else if value.ends_with(';') {
            return Err(format!("layout.rs: Layout.{} is a table outside `Types`: the decoder reads tables into `Types` only", f.rust));
        } else {
            let _ = writeln!(s, "        {}: {},", f.rust, value);
        }
    }
    s.push_str("    })\n}\n");
    s.push_str("\n/// The `Types` of a table body, read where `Layout::types` stands.\n#[inline(never)]\nfn types(r: &mut Reader<'_>) -> Result<Types, &'static str> {\n    let mut t = Types::default();\n");
    s.push_str(&types);
    s.push_str("    r.finish(t)\n}\n");
    s.push_str(&fns);
    Ok(s)
}

/// Finds the detached debug file of `elf` under a debug root
/// (`<root>/.build-id/xx/yyyy.debug`), if there.
pub fn debug_file_in(root: &Path, elf: &Elf) -> Option<PathBuf> {
    let hex = hex(&elf.build_id);
    let p = root.join(".build-id").join(&hex[..2]).join(format!("{}.debug", &hex[2..]));
    p.exists().then_some(p)
}
