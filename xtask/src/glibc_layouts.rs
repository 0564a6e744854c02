//! `cargo xtask glibc-layouts`: generates `loader/src/glibc/layouts/` from
//! the DWARF of Debian's `libc6-dbg` packages.
//!
//! For every build in [`BUILDS`]:
//!
//! 1. fetch `libc6` and `libc6-dbg` of exactly that version and arch with
//!    `apt-get download`, using a private apt configuration and state under
//!    `target/glibc-dbg/apt/` (the machine's own sources and dpkg database are
//!    never touched), and unpack them with `dpkg-deb -x`; everything stays
//!    cached under `target/glibc-dbg/`;
//! 2. read the build ids of `libc.so.6` and `ld.so`, and their debug files
//!    `usr/lib/debug/.build-id/xx/yyyy.debug` (checking the ids match);
//! 3. read which structs and members to extract from the table types in
//!    `loader/src/glibc/layout.rs` (its header says how), find each struct in
//!    the DWARF of ld.so (else libc), check that every compile unit of both
//!    files that defines it agrees, and resolve each member path;
//! 4. cross-check against libc's `_thread_db_*` descriptors, which come from
//!    the stripped binary rather than from the DWARF;
//! 5. write one `<distro>_<version>_<arch>.rs` per build and `mod.rs` listing
//!    every table file in the directory.
//!
//! `--check` compares instead of writing (exit status 1 on a difference);
//! `--offline` fails instead of downloading; `--only TEXT` restricts the run
//! to builds whose file name contains TEXT.

use crate::apt::Apt;
use crate::util::{self, Arch};
use gimli::{AttributeValue, EndianSlice, LittleEndian, Reader, UnitOffset};
use object::{Object, ObjectSection, ObjectSymbol};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// A Debian release whose glibc gets a table: whatever `libc6` build the
/// archive serves for it on the day (point releases and security updates
/// included), never a pinned version, which would leave the archive.
pub(crate) struct Release {
    pub suite: &'static str,
    /// `(archive, suite)` pairs apt reads; the newest `libc6` among them wins.
    sources: &'static [(&'static str, &'static str)],
}

/// The releases ld-cah has tables for (see docs/glibc-layouts.md).
pub(crate) const RELEASES: &[Release] = &[
    Release {
        suite: "bookworm",
        sources: &[
            ("debian", "bookworm"),
            ("debian", "bookworm-updates"),
            ("debian-security", "bookworm-security"),
        ],
    },
    Release {
        suite: "trixie",
        sources: &[
            ("debian", "trixie"),
            ("debian", "trixie-updates"),
            ("debian-security", "trixie-security"),
        ],
    },
    Release {
        suite: "sid",
        sources: &[("debian", "sid")],
    },
];

/// One glibc build: the current `libc6` of a release for one arch.
struct Build {
    suite: &'static str,
    /// The package version the archive serves (`2.36-9+deb12u14`).
    version: String,
    arch: Arch,
}

impl Build {
    fn deb_arch(&self) -> &'static str {
        self.arch.deb()
    }

    fn triplet(&self) -> &'static str {
        match self.arch {
            Arch::X86_64 => "x86_64-linux-gnu",
            Arch::Aarch64 => "aarch64-linux-gnu",
        }
    }

    fn rtld_name(&self) -> &'static str {
        match self.arch {
            Arch::X86_64 => "ld-linux-x86-64.so.2",
            Arch::Aarch64 => "ld-linux-aarch64.so.1",
        }
    }

    /// Upstream version: the package version up to the Debian revision.
    fn upstream(&self) -> &str {
        let v = self.version.split_once(':').map_or(&*self.version, |(_, v)| v);
        v.split('-').next().unwrap_or(v)
    }

    /// Rust module name of the table, e.g. `debian_2_36_x86_64`; a second
    /// layout of the same version gets the package version as well.
    fn module(&self, with_package: bool) -> String {
        let v = if with_package { &*self.version } else { self.upstream() };
        let v: String = v
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        format!("debian_{}_{}", v, self.arch.name())
    }
}

struct Options {
    check: bool,
    offline: bool,
    only: Option<String>,
}

pub fn run(args: &[String]) -> Result<(), String> {
    let mut opts = Options {
        check: false,
        offline: false,
        only: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--check" => opts.check = true,
            "--offline" => opts.offline = true,
            "--only" => opts.only = Some(it.next().ok_or("--only needs an argument")?.clone()),
            _ => {
                return Err(format!(
                    "glibc-layouts: unknown argument `{a}` (--check, --offline, --only TEXT)"
                ))
            }
        }
    }
    let started = Instant::now();
    let root = util::root();
    let spec_path = root.join("loader/src/glibc/layout.rs");
    let spec_text =
        fs::read_to_string(&spec_path).map_err(|e| format!("{}: {e}", spec_path.display()))?;
    let spec = parse_spec(&spec_text)?;
    let out_dir = root.join("loader/src/glibc/layouts");
    fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;

    let mut stale = Vec::new();
    for release in RELEASES {
        for arch in [Arch::X86_64, Arch::Aarch64] {
            let label = format!("{}_{}", release.suite, arch.deb());
            if opts.only.as_deref().is_some_and(|o| !label.contains(o)) {
                continue;
            }
            let t0 = Instant::now();
            let (build, tree) = ensure(release, arch, opts.offline)?;
            let text = generate(&spec, &build, &tree)?;
            let module = place(&out_dir, &build, &text, opts.check, &mut stale)?;
            eprintln!(
                "glibc-layouts: {label} {} -> {module} ({:.1} s)",
                build.version,
                t0.elapsed().as_secs_f64()
            );
        }
    }

    // mod.rs lists every table in the directory: tables of builds that have
    // left the archive stay, for the machines that still run them.
    let mut modules = Vec::new();
    for entry in fs::read_dir(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))? {
        let name = entry
            .map_err(|e| e.to_string())?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if let Some(m) = name.strip_suffix(".rs") {
            if m != "mod" {
                modules.push(m.to_string());
            }
        }
    }
    modules.sort();
    write_or_check(
        &out_dir.join("mod.rs"),
        &render_mod(&modules),
        opts.check,
        &mut stale,
    )?;

    eprintln!(
        "glibc-layouts: done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if !stale.is_empty() {
        return Err(format!(
            "out of date (run `cargo xtask glibc-layouts` and commit the result): {}",
            stale.join("; ")
        ));
    }
    Ok(())
}

/// A generated file without its provenance header (the `//!` lines naming
/// the package version and build ids): what `--check` compares, so that a
/// point release with an unchanged layout keeps its table.
fn body(text: &str) -> &str {
    let mut rest = text;
    while let Some(line_end) = rest.find('\n') {
        if !rest.starts_with("//!") {
            break;
        }
        rest = &rest[line_end + 1..];
    }
    rest
}

/// The fingerprint block of a generated table (see `render_fingerprint`).
fn fingerprint_of(text: &str) -> Option<&str> {
    let start = text.find("    fingerprint: Fingerprint {")?;
    let end = text[start..].find("\n    },\n")?;
    Some(&text[start..start + end])
}

/// Finds or makes the table file for a generated table; returns its module.
///
/// An existing table with the same body covers the build already. Else the
/// build's version gets `debian_<version>_<arch>.rs`, overwritten when it
/// holds the same fingerprint (the generator or `layout.rs` changed); a
/// layout of its own under a version that has a table gets a name with
/// the package version. With `check`, anything but the first case is stale.
fn place(
    out_dir: &Path,
    build: &Build,
    text: &str,
    check: bool,
    stale: &mut Vec<String>,
) -> Result<String, String> {
    let mut tables = Vec::new();
    for entry in fs::read_dir(out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let Some(module) = path.file_stem().and_then(|m| m.to_str()).map(String::from) else {
            continue;
        };
        if module == "mod" || path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let old = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if body(&old) == body(text) {
            return Ok(module);
        }
        tables.push((module, old));
    }
    if check {
        stale.push(format!(
            "{} {} ({}) has no table with its layout",
            build.version,
            build.deb_arch(),
            build.suite
        ));
        return Ok(String::new());
    }
    let plain = build.module(false);
    let module = match tables.iter().find(|(m, _)| *m == plain) {
        Some((_, old)) if fingerprint_of(old) != fingerprint_of(text) => build.module(true),
        _ => plain,
    };
    let path = out_dir.join(format!("{module}.rs"));
    fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("glibc-layouts: wrote {}", path.display());
    Ok(module)
}

fn write_or_check(
    path: &Path,
    text: &str,
    check: bool,
    stale: &mut Vec<String>,
) -> Result<(), String> {
    let old = fs::read_to_string(path).ok();
    if old.as_deref() == Some(text) {
        return Ok(());
    }
    if check {
        stale.push(path.display().to_string());
        return Ok(());
    }
    fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("glibc-layouts: wrote {}", path.display());
    Ok(())
}

// ---------------------------------------------------------------------------
// Fetching the packages.

/// Package lists older than this are fetched again, so that "the archive's
/// current build" is today's.
pub(crate) const LISTS_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(12 * 3600);

/// The directory holding `libc6` and `libc6-dbg` of `release`'s current
/// build for `arch`, unpacked: `target/glibc-dbg/<suite>_<debarch>/`
/// (tests find the trees there). Its `.version` names the package version;
/// a newer build in the archive replaces the tree.
pub(crate) fn tree_dir(suite: &str, arch: Arch) -> PathBuf {
    util::root()
        .join("target/glibc-dbg")
        .join(format!("{suite}_{}", arch.deb()))
}

/// Makes sure the current build of `release` for `arch` is unpacked.
fn ensure(release: &Release, arch: Arch, offline: bool) -> Result<(Build, PathBuf), String> {
    let cache = util::root().join("target/glibc-dbg");
    let tree = tree_dir(release.suite, arch);
    let stamp = tree.join(".version");
    let apt = Apt::new(
        cache.join("apt").join(release.suite),
        release.sources,
        &["amd64", "arm64"],
    );
    let version = if offline {
        fs::read_to_string(&stamp).map_err(|_| {
            format!(
                "{} is not unpacked and --offline was given",
                tree.display()
            )
        })?
    } else {
        if apt.lists_age().is_none_or(|age| age > LISTS_MAX_AGE) {
            apt.update()?;
        }
        apt.candidate(&format!("libc6:{}", arch.deb()))?
    };
    let build = Build {
        suite: release.suite,
        version: version.trim().to_string(),
        arch,
    };
    if fs::read_to_string(&stamp).ok().as_deref() == Some(build.version.as_str()) {
        return Ok((build, tree));
    }
    let debs_dir = cache.join("debs");
    let debs: Vec<PathBuf> = ["libc6", "libc6-dbg"]
        .iter()
        .map(|p| {
            debs_dir.join(format!(
                "{p}_{}_{}.deb",
                build.version.replace(':', "%3a"),
                build.deb_arch()
            ))
        })
        .collect();
    if debs.iter().any(|d| !d.exists()) {
        let packages = [
            format!("libc6:{}={}", build.deb_arch(), build.version),
            format!("libc6-dbg:{}={}", build.deb_arch(), build.version),
        ];
        apt.download(&debs_dir, &packages, |e| e)?;
    }
    if tree.exists() {
        fs::remove_dir_all(&tree).map_err(|e| format!("{}: {e}", tree.display()))?;
    }
    fs::create_dir_all(&tree).map_err(|e| format!("{}: {e}", tree.display()))?;
    for deb in &debs {
        util::run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&tree))?;
    }
    fs::write(&stamp, &build.version).map_err(|e| format!("{}: {e}", stamp.display()))?;
    Ok((build, tree))
}

// ---------------------------------------------------------------------------
// The files of one build.

struct Elf {
    path: PathBuf,
    data: Vec<u8>,
    build_id: Vec<u8>,
}

fn read_elf(path: PathBuf) -> Result<Elf, String> {
    let data = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let build_id = {
        let file = object::File::parse(&*data).map_err(|e| format!("{}: {e}", path.display()))?;
        file.build_id()
            .map_err(|e| format!("{}: {e}", path.display()))?
            .ok_or_else(|| format!("{}: no NT_GNU_BUILD_ID note", path.display()))?
            .to_vec()
    };
    Ok(Elf {
        path,
        data,
        build_id,
    })
}

/// The first of `lib/<triplet>/NAME`, `usr/lib/<triplet>/NAME` (usrmerge).
fn find_lib(tree: &Path, build: &Build, name: &str) -> Result<PathBuf, String> {
    ["lib", "usr/lib"]
        .iter()
        .map(|d| tree.join(d).join(build.triplet()).join(name))
        .find(|p| p.exists())
        .ok_or_else(|| format!("{name} not found in {}", tree.display()))
}

/// The detached debug file of `elf`, by build id, with the id checked.
fn debug_file(tree: &Path, elf: &Elf) -> Result<Elf, String> {
    let hex = hex(&elf.build_id);
    let path = tree.join(format!(
        "usr/lib/debug/.build-id/{}/{}.debug",
        &hex[..2],
        &hex[2..]
    ));
    let dbg = read_elf(path)?;
    if dbg.build_id != elf.build_id {
        return Err(format!(
            "{}: build id differs from {}",
            dbg.path.display(),
            elf.path.display()
        ));
    }
    Ok(dbg)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------
// The specification: table types in layout.rs.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Field,
    Bits,
    Array,
}

struct MemberSpec {
    rust: String,
    path: String,
    kind: Kind,
    optional: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, PartialOrd, Ord)]
enum Tag {
    Struct,
    Union,
    Typedef,
}

struct TableSpec {
    rust: String,
    tag: Tag,
    name: String,
    arch: Option<Arch>,
    members: Vec<MemberSpec>,
}

struct LayoutField {
    rust: String,
    ty: String,
    optional: bool,
}

struct Spec {
    tables: Vec<TableSpec>,
    layout: Vec<LayoutField>,
}

/// The text between the backticks of a doc line ``... DWARF: `TEXT` REST``,
/// and REST.
fn dwarf_note(doc: &[String]) -> Option<(String, String)> {
    doc.iter().find_map(|l| {
        let rest = l.split_once("DWARF: `")?.1;
        let (inner, after) = rest.split_once('`')?;
        Some((inner.to_string(), after.to_string()))
    })
}

fn parse_spec(text: &str) -> Result<Spec, String> {
    let mut spec = Spec {
        tables: Vec::new(),
        layout: Vec::new(),
    };
    let mut doc: Vec<String> = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((_, line)) = lines.next() {
        let t = line.trim();
        if t == "#[cfg(test)]" {
            break;
        }
        if let Some(d) = t.strip_prefix("///") {
            doc.push(d.trim().to_string());
            continue;
        }
        if t.starts_with("#[") {
            continue;
        }
        let Some(name) = t
            .strip_prefix("pub struct ")
            .and_then(|r| r.strip_suffix(" {"))
        else {
            doc.clear();
            continue;
        };
        let table_note = dwarf_note(&doc);
        doc.clear();
        let is_layout = name == "Layout";
        if table_note.is_none() && !is_layout {
            continue;
        }
        let mut members = Vec::new();
        let mut fdoc: Vec<String> = Vec::new();
        for (n, line) in lines.by_ref() {
            let t = line.trim();
            if t == "}" {
                break;
            }
            if let Some(d) = t.strip_prefix("///") {
                fdoc.push(d.trim().to_string());
                continue;
            }
            if t.is_empty() {
                continue;
            }
            let (fname, ty) = t
                .strip_prefix("pub ")
                .and_then(|r| r.strip_suffix(','))
                .and_then(|r| r.split_once(": "))
                .ok_or_else(|| {
                    format!("layout.rs:{}: expected `pub NAME: TYPE,` in {name}", n + 1)
                })?;
            let (inner, optional) =
                match ty.strip_prefix("Option<").and_then(|r| r.strip_suffix('>')) {
                    Some(i) => (i, true),
                    None => (ty, false),
                };
            if is_layout {
                spec.layout.push(LayoutField {
                    rust: fname.into(),
                    ty: inner.into(),
                    optional,
                });
            } else if fname == "size" && ty == "u32" {
                // sizeof, always present
            } else {
                let kind = match inner {
                    "Field" => Kind::Field,
                    "Bits" => Kind::Bits,
                    "Array" => Kind::Array,
                    _ => {
                        return Err(format!(
                            "layout.rs:{}: {name}.{fname}: unknown member type `{ty}`",
                            n + 1
                        ))
                    }
                };
                let path = dwarf_note(&fdoc)
                    .map(|(p, _)| p)
                    .unwrap_or_else(|| fname.to_string());
                members.push(MemberSpec {
                    rust: fname.into(),
                    path,
                    kind,
                    optional,
                });
            }
            fdoc.clear();
        }
        if let Some((what, rest)) = table_note {
            let (tag, tname) = match what.split_once(' ') {
                Some(("struct", n)) => (Tag::Struct, n),
                Some(("union", n)) => (Tag::Union, n),
                Some(("typedef", n)) => (Tag::Typedef, n),
                _ => return Err(format!("layout.rs: {name}: bad DWARF note `{what}`")),
            };
            let arch = if rest.contains("x86_64 only") {
                Some(Arch::X86_64)
            } else if rest.contains("aarch64 only") {
                Some(Arch::Aarch64)
            } else {
                None
            };
            spec.tables.push(TableSpec {
                rust: name.into(),
                tag,
                name: tname.into(),
                arch,
                members,
            });
        }
    }
    if spec.layout.is_empty() || spec.tables.is_empty() {
        return Err("layout.rs: no `Layout` or no table structs found".into());
    }
    Ok(spec)
}

// ---------------------------------------------------------------------------
// DWARF: a small type model, enough for offsets and sizes.

#[derive(Clone, Debug, PartialEq)]
enum Ty {
    /// Base types, pointers, enums.
    Scalar { size: u64 },
    /// Structs and unions.
    Record { size: u64, members: Vec<Member> },
    /// `len` elements (outermost dimension) of `stride` bytes.
    Array { stride: u64, len: u64 },
    /// `void`, functions.
    Unsized,
}

impl Ty {
    fn size(&self) -> u64 {
        match self {
            Ty::Scalar { size } | Ty::Record { size, .. } => *size,
            Ty::Array { stride, len } => stride * len,
            Ty::Unsized => 0,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
struct Member {
    name: Option<String>,
    /// Byte offset in the containing record (of the storage unit for bit-fields).
    off: u64,
    ty: Ty,
    /// Bit-field: (bit offset from the start of the containing record, width).
    bits: Option<(u64, u64)>,
}

type R<'a> = EndianSlice<'a, LittleEndian>;

/// Where a type is defined: (unit index, DIE offset in the unit).
type Site = (usize, UnitOffset);

struct DebugInfo<'a> {
    what: String,
    dwarf: gimli::Dwarf<R<'a>>,
    units: Vec<gimli::Unit<R<'a>>>,
}

/// Section data of one debug file, decompressed (Debian compresses them).
fn load_sections(elf: &Elf) -> Result<gimli::DwarfSections<Vec<u8>>, String> {
    let file = object::File::parse(&*elf.data).map_err(|e| e.to_string())?;
    gimli::DwarfSections::load(|id| -> Result<Vec<u8>, String> {
        match file.section_by_name(id.name()) {
            Some(s) => s
                .uncompressed_data()
                .map(|d| d.into_owned())
                .map_err(|e| format!("{}: {}: {e}", elf.path.display(), id.name())),
            None => Ok(Vec::new()),
        }
    })
}

impl<'a> DebugInfo<'a> {
    fn new(what: &str, sections: &'a gimli::DwarfSections<Vec<u8>>) -> Result<Self, String> {
        let dwarf = sections.borrow(|s| EndianSlice::new(s, LittleEndian));
        let mut units = Vec::new();
        let mut headers = dwarf.units();
        while let Some(h) = headers.next().map_err(|e| format!("{what}: {e}"))? {
            units.push(dwarf.unit(h).map_err(|e| format!("{what}: {e}"))?);
        }
        Ok(DebugInfo {
            what: what.into(),
            dwarf,
            units,
        })
    }

    /// Every complete top-level definition of each wanted (tag, name), in
    /// unit order: (unit index, DIE offset).
    fn index(
        &self,
        wanted: &BTreeSet<(Tag, String)>,
    ) -> Result<BTreeMap<(Tag, String), Vec<Site>>, String> {
        let mut found: BTreeMap<(Tag, String), Vec<Site>> = BTreeMap::new();
        let err = |e: gimli::Error| format!("{}: {e}", self.what);
        for (ui, unit) in self.units.iter().enumerate() {
            let mut tree = unit.entries_tree(None).map_err(err)?;
            let root = tree.root().map_err(err)?;
            let mut children = root.children();
            while let Some(child) = children.next().map_err(err)? {
                let e = child.entry();
                let tag = match e.tag() {
                    gimli::DW_TAG_structure_type => Tag::Struct,
                    gimli::DW_TAG_union_type => Tag::Union,
                    gimli::DW_TAG_typedef => Tag::Typedef,
                    _ => continue,
                };
                if let Some(AttributeValue::Flag(true)) =
                    e.attr_value(gimli::DW_AT_declaration).map_err(err)?
                {
                    continue;
                }
                let Some(name) = e.attr_value(gimli::DW_AT_name).map_err(err)? else {
                    continue;
                };
                let name = self.dwarf.attr_string(unit, name).map_err(err)?;
                let name = name.to_string_lossy();
                let key = (tag, name.into_owned());
                if wanted.contains(&key) {
                    found.entry(key).or_default().push((ui, e.offset()));
                }
            }
        }
        Ok(found)
    }

    /// The type defined at `off` (for a typedef: the type it names).
    fn resolve(&self, ui: usize, off: UnitOffset, depth: u32) -> Result<Ty, String> {
        let unit = &self.units[ui];
        let err = |e: gimli::Error| format!("{}: DIE {:#x}: {e}", self.what, off.0);
        if depth > 64 {
            return Err(format!(
                "{}: type nesting too deep at {:#x}",
                self.what, off.0
            ));
        }
        let e = unit.entry(off).map_err(err)?;
        let byte_size = e
            .attr_value(gimli::DW_AT_byte_size)
            .map_err(err)?
            .and_then(|v| v.udata_value());
        let target = match e.attr_value(gimli::DW_AT_type).map_err(err)? {
            Some(AttributeValue::UnitRef(o)) => Some(o),
            Some(other) => {
                return Err(format!(
                    "{}: unsupported type reference {other:?}",
                    self.what
                ))
            }
            None => None,
        };
        Ok(match e.tag() {
            gimli::DW_TAG_base_type | gimli::DW_TAG_enumeration_type => Ty::Scalar {
                size: byte_size
                    .ok_or_else(|| format!("{}: scalar without size at {:#x}", self.what, off.0))?,
            },
            gimli::DW_TAG_pointer_type
            | gimli::DW_TAG_reference_type
            | gimli::DW_TAG_ptr_to_member_type => Ty::Scalar {
                size: byte_size.unwrap_or(unit.encoding().address_size as u64),
            },
            gimli::DW_TAG_typedef
            | gimli::DW_TAG_const_type
            | gimli::DW_TAG_volatile_type
            | gimli::DW_TAG_restrict_type
            | gimli::DW_TAG_atomic_type => match target {
                Some(t) => self.resolve(ui, t, depth + 1)?,
                None => Ty::Unsized,
            },
            gimli::DW_TAG_subroutine_type | gimli::DW_TAG_unspecified_type => Ty::Unsized,
            gimli::DW_TAG_structure_type | gimli::DW_TAG_union_type => {
                let size = byte_size
                    .ok_or_else(|| format!("{}: incomplete record at {:#x}", self.what, off.0))?;
                let mut members = Vec::new();
                let mut tree = unit.entries_tree(Some(off)).map_err(err)?;
                let mut children = tree.root().map_err(err)?.children();
                while let Some(child) = children.next().map_err(err)? {
                    let m = child.entry();
                    if m.tag() != gimli::DW_TAG_member {
                        continue;
                    }
                    members.push(self.member(ui, m, depth)?);
                }
                Ty::Record { size, members }
            }
            gimli::DW_TAG_array_type => {
                let elem = match target {
                    Some(t) => self.resolve(ui, t, depth + 1)?.size(),
                    None => return Err(format!("{}: array without element type", self.what)),
                };
                let mut dims = Vec::new();
                let mut tree = unit.entries_tree(Some(off)).map_err(err)?;
                let mut children = tree.root().map_err(err)?.children();
                while let Some(child) = children.next().map_err(err)? {
                    let s = child.entry();
                    if s.tag() != gimli::DW_TAG_subrange_type {
                        continue;
                    }
                    let count = s
                        .attr_value(gimli::DW_AT_count)
                        .map_err(err)?
                        .and_then(|v| v.udata_value());
                    let upper = s.attr_value(gimli::DW_AT_upper_bound).map_err(err)?;
                    let lower = s
                        .attr_value(gimli::DW_AT_lower_bound)
                        .map_err(err)?
                        .and_then(|v| v.udata_value())
                        .unwrap_or(0);
                    dims.push(match (count, upper) {
                        (Some(c), _) => c,
                        // `T x[]`: no bound (or GCC's upper bound of -1).
                        (None, None) => 0,
                        (None, Some(AttributeValue::Sdata(-1))) => 0,
                        (None, Some(u)) => match u.udata_value() {
                            Some(u) => u + 1 - lower,
                            None => {
                                return Err(format!("{}: unsupported array bound {u:?}", self.what))
                            }
                        },
                    });
                }
                let Some((&len, inner)) = dims.split_first() else {
                    return Err(format!(
                        "{}: array without subrange at {:#x}",
                        self.what, off.0
                    ));
                };
                Ty::Array {
                    stride: elem * inner.iter().product::<u64>(),
                    len,
                }
            }
            other => {
                return Err(format!(
                    "{}: unsupported type tag {other} at {:#x}",
                    self.what, off.0
                ))
            }
        })
    }

    fn member(
        &self,
        ui: usize,
        m: &gimli::DebuggingInformationEntry<R<'a>>,
        depth: u32,
    ) -> Result<Member, String> {
        let unit = &self.units[ui];
        let err = |e: gimli::Error| format!("{}: member at {:#x}: {e}", self.what, m.offset().0);
        let name = match m.attr_value(gimli::DW_AT_name).map_err(err)? {
            Some(v) => Some(
                self.dwarf
                    .attr_string(unit, v)
                    .map_err(err)?
                    .to_string_lossy()
                    .into_owned(),
            ),
            None => None,
        };
        let ty = match m.attr_value(gimli::DW_AT_type).map_err(err)? {
            Some(AttributeValue::UnitRef(o)) => self.resolve(ui, o, depth + 1)?,
            other => {
                return Err(format!(
                    "{}: member {name:?} with type {other:?}",
                    self.what
                ))
            }
        };
        let loc = match m
            .attr_value(gimli::DW_AT_data_member_location)
            .map_err(err)?
        {
            None => None,
            Some(AttributeValue::Exprloc(expr)) => {
                // DWARF 2 style: DW_OP_plus_uconst N.
                let mut r = expr.0;
                match r.read_u8().map_err(err)? {
                    0x23 => Some(r.read_uleb128().map_err(err)?),
                    op => {
                        return Err(format!(
                            "{}: member {name:?}: location op {op:#x}",
                            self.what
                        ))
                    }
                }
            }
            Some(v) => Some(
                v.udata_value()
                    .ok_or_else(|| format!("{}: member {name:?}: location {v:?}", self.what))?,
            ),
        };
        let bit_size = m
            .attr_value(gimli::DW_AT_bit_size)
            .map_err(err)?
            .and_then(|v| v.udata_value());
        let data_bit_offset = m
            .attr_value(gimli::DW_AT_data_bit_offset)
            .map_err(err)?
            .and_then(|v| v.udata_value());
        let old_bit_offset = m
            .attr_value(gimli::DW_AT_bit_offset)
            .map_err(err)?
            .and_then(|v| v.udata_value());
        let (off, bits) = match (bit_size, data_bit_offset, old_bit_offset) {
            (None, _, _) => (loc.unwrap_or(0), None),
            (Some(w), Some(b), _) => (b / 8, Some((b, w))),
            (Some(w), None, Some(msb)) => {
                // DWARF 2-4: offset of the field's MSB within a storage unit
                // of DW_AT_byte_size at the member location (little endian).
                let unit_bytes = m
                    .attr_value(gimli::DW_AT_byte_size)
                    .map_err(err)?
                    .and_then(|v| v.udata_value())
                    .unwrap_or(ty.size());
                let base = loc.unwrap_or(0);
                (base, Some((base * 8 + unit_bytes * 8 - msb - w, w)))
            }
            (Some(w), None, None) => (loc.unwrap_or(0), Some((loc.unwrap_or(0) * 8, w))),
        };
        Ok(Member {
            name,
            off,
            ty,
            bits,
        })
    }
}

/// A member found by path: offsets from the start of the table's struct.
struct Found<'t> {
    off: u64,
    ty: &'t Ty,
    bits: Option<(u64, u64)>,
}

/// Resolves `a.b.c` in `ty`; anonymous struct/union members are searched
/// transparently (their members count as the parent's).
fn lookup<'t>(ty: &'t Ty, path: &[&str], base: u64) -> Option<Found<'t>> {
    let (first, rest) = path.split_first()?;
    let Ty::Record { members, .. } = ty else {
        return None;
    };
    for m in members {
        if m.name.as_deref() == Some(*first) {
            let bits = m.bits.map(|(b, w)| (b + base * 8, w));
            if rest.is_empty() {
                return Some(Found {
                    off: base + m.off,
                    ty: &m.ty,
                    bits,
                });
            }
            return lookup(&m.ty, rest, base + m.off);
        }
    }
    for m in members {
        if m.name.is_none() {
            if let Some(f) = lookup(&m.ty, path, base + m.off) {
                return Some(f);
            }
        }
    }
    None
}

/// Named members of a record, flattening anonymous ones: (name, off, size).
fn flat_members(ty: &Ty, base: u64, out: &mut Vec<(String, u64, u64)>) {
    if let Ty::Record { members, .. } = ty {
        for m in members {
            match &m.name {
                Some(n) => out.push((n.clone(), base + m.off, m.ty.size())),
                None => flat_members(&m.ty, base + m.off, out),
            }
        }
    }
}

/// The DWARF of one build: ld.so's debug file, then libc's.
struct Types {
    /// (tag, name) -> the agreed definition and the file it came from.
    defs: BTreeMap<(Tag, String), (Ty, String)>,
}

impl Types {
    fn new(files: &[DebugInfo], wanted: &BTreeSet<(Tag, String)>) -> Result<Self, String> {
        let mut defs = BTreeMap::new();
        let mut all: BTreeMap<(Tag, String), Vec<(Ty, String)>> = BTreeMap::new();
        for f in files {
            for (key, sites) in f.index(wanted)? {
                for (ui, off) in sites {
                    let ty = f.resolve(ui, off, 0)?;
                    all.entry(key.clone())
                        .or_default()
                        .push((ty, format!("{} unit {ui}", f.what)));
                }
            }
        }
        for (key, versions) in all {
            let (first, where_) = &versions[0];
            // Several compile units define the same type; they must agree.
            if let Some((_, other)) = versions.iter().find(|(t, _)| t != first) {
                return Err(format!(
                    "{:?} {}: definitions differ between {where_} and {other}",
                    key.0, key.1
                ));
            }
            defs.insert(key, (first.clone(), where_.clone()));
        }
        Ok(Types { defs })
    }

    fn get(&self, tag: Tag, name: &str) -> Option<&Ty> {
        self.defs.get(&(tag, name.to_string())).map(|(t, _)| t)
    }
}

// ---------------------------------------------------------------------------
// Generation.

fn generate(spec: &Spec, build: &Build, tree: &Path) -> Result<String, String> {
    let libc = read_elf(find_lib(tree, build, "libc.so.6")?)?;
    let rtld = read_elf(find_lib(tree, build, build.rtld_name())?)?;
    let libc_dbg = debug_file(tree, &libc)?;
    let rtld_dbg = debug_file(tree, &rtld)?;
    check_arch(&libc, build)?;

    let banner = banner(&libc)?;
    let glibc_version = banner
        .rsplit_once("release version ")
        .map(|(_, v)| v.trim_end_matches('.').to_string())
        .ok_or_else(|| format!("{}: no release version in `{banner}`", libc.path.display()))?;
    if !banner.contains(&build.version) {
        return Err(format!(
            "{}: banner `{banner}` does not name {}",
            libc.path.display(),
            build.version
        ));
    }

    let rtld_sections = load_sections(&rtld_dbg)?;
    let libc_sections = load_sections(&libc_dbg)?;
    let files = vec![
        DebugInfo::new(build.rtld_name(), &rtld_sections)?,
        DebugInfo::new("libc.so.6", &libc_sections)?,
    ];
    let mut wanted: BTreeSet<(Tag, String)> = spec
        .tables
        .iter()
        .map(|t| (t.tag, t.name.clone()))
        .collect();
    for (_, ty, _) in THREAD_DB {
        wanted.insert(ty.key());
    }
    wanted.insert((Tag::Typedef, "tunable_t".into()));
    let types = Types::new(&files, &wanted)?;
    check_thread_db(&types, &libc, build)?;
    let tunables = read_tunables(&types, &files, &rtld, &rtld_dbg, build)?;
    let mut tunables = tunables;
    check_list_tunables(&mut tunables, build, tree, &rtld.path)?;
    let unsecure = unsecure_env(&rtld)?;
    let fingerprint = render_fingerprint(&libc, &glibc_version)?;

    let mut out = String::new();
    let _ = writeln!(
        out,
        "//! Generated by `cargo xtask glibc-layouts` from the DWARF of Debian's\n\
         //! `libc6-dbg` {} ({}, {}). Do not edit.\n\
         //!\n\
         //! libc.so.6 build id {}, {} build id {}.\n\
         //! Every build whose libc.so.6 shows the `fingerprint` below uses this\n\
         //! table; `--check` compares everything after this header.\n",
        build.version,
        build.deb_arch(),
        build.suite,
        hex(&libc.build_id),
        build.rtld_name(),
        hex(&rtld.build_id),
    );
    out.push_str("use crate::glibc::layout::*;\n\n");
    out.push_str("const TABLE: Layout = Layout {\n");
    for f in &spec.layout {
        let value = match f.rust.as_str() {
            "glibc_version" => format!("{glibc_version:?}"),
            "fingerprint" => fingerprint.clone(),
            "enumerators" => render_enumerators(&files)?,
            "arch" => format!(
                "Arch::{}",
                match build.arch {
                    Arch::X86_64 => "X86_64",
                    Arch::Aarch64 => "Aarch64",
                }
            ),
            "tunables" => render_tunables(&tunables),
            "unsecure_env" => {
                let mut v = String::from("&[\n");
                for n in &unsecure {
                    let _ = writeln!(v, "        {n:?},");
                }
                v.push_str("    ]");
                v
            }
            _ => {
                let table = spec.tables.iter().find(|t| t.rust == f.ty).ok_or_else(|| {
                    format!(
                        "layout.rs: Layout.{}: `{}` is not a table type",
                        f.rust, f.ty
                    )
                })?;
                render_table(&types, table, build, f.optional)?
            }
        };
        let _ = writeln!(out, "    {}: {},", f.rust, value);
    }
    out.push_str("};\n\n");
    let _ = writeln!(out, "/// glibc {glibc_version} {}.", build.arch.name());
    out.push_str("pub static LAYOUT: Layout = TABLE;\n\n");
    // A table that breaks an invariant of `Layout::check` fails the build.
    out.push_str("const _: () = if let Err(e) = TABLE.check() {\n    panic!(\"{}\", e.0)\n};\n");
    Ok(out)
}

fn render_table(
    types: &Types,
    t: &TableSpec,
    build: &Build,
    optional: bool,
) -> Result<String, String> {
    let ty = match t.arch {
        Some(a) if a != build.arch => None,
        _ => types.get(t.tag, &t.name),
    };
    let Some(ty) = ty else {
        if optional {
            return Ok("None".into());
        }
        return Err(format!(
            "{:?} {} not found in the DWARF of {} {}",
            t.tag,
            t.name,
            build.version,
            build.arch.name()
        ));
    };
    let Ty::Record { size, .. } = ty else {
        return Err(format!("{} is not a struct or union", t.name));
    };
    let mut s = format!("{} {{\n        size: {size},\n", t.rust);
    for m in &t.members {
        let path: Vec<&str> = m.path.split('.').collect();
        let value = match lookup(ty, &path, 0) {
            None if m.optional => "None".to_string(),
            None => {
                return Err(format!(
                    "{}.{} (`{}`) is missing from {} {}: make it `Option<...>` in layout.rs and handle its absence",
                    t.name,
                    m.rust,
                    m.path,
                    build.version,
                    build.arch.name()
                ))
            }
            Some(f) => {
                let v = render_member(&f, m).map_err(|e| format!("{}.{}: {e}", t.name, m.path))?;
                if m.optional {
                    format!("Some({v})")
                } else {
                    v
                }
            }
        };
        let _ = writeln!(s, "        {}: {},", m.rust, value);
    }
    // Members the table does not ask for, so that a new build's additions
    // show up in review.
    let mut flat = Vec::new();
    flat_members(ty, 0, &mut flat);
    let covered: BTreeSet<&str> = t
        .members
        .iter()
        .map(|m| m.path.split('.').next().unwrap_or(""))
        .collect();
    let rest: Vec<String> = flat
        .iter()
        .filter(|(n, _, _)| !covered.contains(n.as_str()))
        .map(|(n, o, z)| format!("{n} {o}+{z}"))
        .collect();
    if !rest.is_empty() {
        let _ = writeln!(s, "        // not in the table: {}", rest.join(", "));
    }
    s.push_str("    }");
    Ok(if optional { format!("Some({s})") } else { s })
}

fn render_member(f: &Found, m: &MemberSpec) -> Result<String, String> {
    let n32 = |v: u64| u32::try_from(v).map_err(|_| format!("{v} does not fit in u32"));
    Ok(match (m.kind, f.bits, f.ty) {
        (Kind::Bits, Some((b, w)), _) => {
            format!(
                "Bits {{ off: {}, bit: {}, width: {} }}",
                n32(b / 8)?,
                b % 8,
                w
            )
        }
        (Kind::Bits, None, _) => return Err("is not a bit-field (use Field)".into()),
        (_, Some(_), _) => return Err("is a bit-field (use Bits)".into()),
        (Kind::Array, None, Ty::Array { stride, len }) => {
            format!(
                "Array {{ off: {}, stride: {}, len: {} }}",
                n32(f.off)?,
                n32(*stride)?,
                n32(*len)?
            )
        }
        (Kind::Array, None, _) => return Err("is not an array (use Field)".into()),
        (Kind::Field, None, ty) => format!(
            "Field {{ off: {}, size: {} }}",
            n32(f.off)?,
            n32(ty.size())?
        ),
    })
}

/// The `Enumerators` literal: each field is the enumerator of the same name
/// (upper-cased where glibc spells it so) in ld.so's or libc's DWARF.
fn render_enumerators(files: &[DebugInfo]) -> Result<String, String> {
    const NAMES: &[&str] = &[
        "ALLOCATE_GUARD_USER",
        "THREAD_STATE_JOINABLE",
        "dl_readonly_area_rdonly",
        "dl_readonly_area_writable",
        "dl_readonly_area_not_found",
    ];
    let mut found = BTreeMap::new();
    for f in files {
        for n in NAMES {
            f.enumerators(n, &mut found)?;
        }
    }
    let mut s = String::from("Enumerators {\n");
    for n in NAMES {
        // `enumerators` matches by prefix: take the exact name only.
        let v = found.get(*n).map_or("None".to_string(), |v| format!("Some({v})"));
        let _ = writeln!(s, "        {}: {v},", n.to_ascii_lowercase());
    }
    s.push_str("    }");
    Ok(s)
}

/// The `Fingerprint` literal of a build, from its stripped `libc.so.6`
/// (what the loader reads at run time; see `glibc/fingerprint.rs`).
fn render_fingerprint(libc: &Elf, banner_version: &str) -> Result<String, String> {
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
    let version = version.ok_or_else(|| format!("{}: no __nptl_version", libc.path.display()))?;
    if version != banner_version {
        return Err(format!(
            "{}: __nptl_version {version:?} but the banner says {banner_version:?}",
            libc.path.display()
        ));
    }
    let mut s = String::from("Fingerprint {\n");
    let _ = writeln!(s, "        version: {version:?},");
    s.push_str("        imports: &[\n");
    for n in &imports {
        let _ = writeln!(s, "            {n:?},");
    }
    s.push_str("        ],\n        thread_db: &[\n");
    for (name, words) in thread_db_descriptors(libc)? {
        let w: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        let _ = writeln!(s, "            ({name:?}, &[{}]),", w.join(", "));
    }
    s.push_str("        ],\n    }");
    Ok(s)
}

fn render_mod(modules: &[String]) -> String {
    let mut s = String::from(
        "//! Generated by `cargo xtask glibc-layouts`: every glibc layout table.\n\
         //! Do not edit; see docs/glibc-layouts.md.\n\n\
         use super::layout::Layout;\n\n",
    );
    // One member per line reads better than rustfmt's layout of struct
    // literals, and generated files must not change under `cargo fmt`.
    for m in modules {
        let _ = writeln!(s, "#[rustfmt::skip]\nmod {m};");
    }
    s.push_str("\n/// Every known glibc build.\npub static ALL: &[&Layout] = &[\n");
    for m in modules {
        let _ = writeln!(s, "    &{m}::LAYOUT,");
    }
    s.push_str("];\n");
    s
}

fn check_arch(libc: &Elf, build: &Build) -> Result<(), String> {
    let file = object::File::parse(&*libc.data).map_err(|e| e.to_string())?;
    let want = match build.arch {
        Arch::X86_64 => object::Architecture::X86_64,
        Arch::Aarch64 => object::Architecture::Aarch64,
    };
    if file.architecture() != want {
        return Err(format!(
            "{}: is {:?}, not {want:?}",
            libc.path.display(),
            file.architecture()
        ));
    }
    Ok(())
}

/// libc's version banner, `GNU C Library (...) ... release version X.Y.`.
fn banner(libc: &Elf) -> Result<String, String> {
    let needle = b"GNU C Library ";
    let start = libc
        .data
        .windows(needle.len())
        .position(|w| w == needle)
        .ok_or_else(|| format!("{}: no `GNU C Library` banner", libc.path.display()))?;
    let end = libc.data[start..]
        .iter()
        .position(|&b| b == 0 || b == b'\n')
        .map(|n| start + n)
        .unwrap_or(libc.data.len());
    Ok(String::from_utf8_lossy(&libc.data[start..end]).into_owned())
}

// ---------------------------------------------------------------------------
// Tunables: ld.so's `tunable_list[]` and its secure-mode environment list.

/// One entry of `tunable_list[]`, as `layout::Tunable` spells it.
struct TunableRow {
    name: String,
    /// `TunableType` variant.
    ty: &'static str,
    default: u64,
    min: u64,
    max: u64,
    /// `TunableSecurity` variant, if the build has security levels.
    security: Option<&'static str>,
    alias: String,
}

impl DebugInfo<'_> {
    /// The enumerators named `PREFIX...` of every top-level enum of every
    /// unit, into `out` (name -> value); units must agree.
    fn enumerators(&self, prefix: &str, out: &mut BTreeMap<String, i64>) -> Result<(), String> {
        let err = |e: gimli::Error| format!("{}: {e}", self.what);
        for unit in &self.units {
            let mut tree = unit.entries_tree(None).map_err(err)?;
            let root = tree.root().map_err(err)?;
            let mut children = root.children();
            while let Some(child) = children.next().map_err(err)? {
                if child.entry().tag() != gimli::DW_TAG_enumeration_type {
                    continue;
                }
                let mut items = child.children();
                while let Some(item) = items.next().map_err(err)? {
                    let e = item.entry();
                    if e.tag() != gimli::DW_TAG_enumerator {
                        continue;
                    }
                    let Some(name) = e.attr_value(gimli::DW_AT_name).map_err(err)? else {
                        continue;
                    };
                    let name = self.dwarf.attr_string(unit, name).map_err(err)?;
                    let name = name.to_string_lossy().into_owned();
                    if !name.starts_with(prefix) {
                        continue;
                    }
                    let value = match e.attr_value(gimli::DW_AT_const_value).map_err(err)? {
                        Some(AttributeValue::Sdata(v)) => v,
                        Some(v) => v
                            .udata_value()
                            .and_then(|u| i64::try_from(u).ok())
                            .ok_or_else(|| format!("{}: enumerator {name}: value {v:?}", self.what))?,
                        None => return Err(format!("{}: enumerator {name} without value", self.what)),
                    };
                    if let Some(old) = out.insert(name.clone(), value) {
                        if old != value {
                            return Err(format!("{}: enumerator {name} is {old} and {value}", self.what));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Reads `tunable_list[]` from ld.so: its address and size from the debug
/// file's symbol table, the element layout (`tunable_t`) and the enum values
/// from the DWARF, the bytes from the shipped ld.so (the array is
/// initialised data; no relocation may touch it, so string defaults are
/// NULL).
fn read_tunables(
    types: &Types,
    files: &[DebugInfo],
    rtld: &Elf,
    rtld_dbg: &Elf,
    build: &Build,
) -> Result<Vec<TunableRow>, String> {
    let what = format!("{} {} tunable_list", build.version, build.arch.name());
    let ty = types
        .get(Tag::Typedef, "tunable_t")
        .ok_or_else(|| format!("{what}: tunable_t not in the DWARF"))?;
    let stride = ty.size();
    let field = |path: &[&str]| -> Option<(u64, u64)> { lookup(ty, path, 0).map(|f| (f.off, f.ty.size())) };
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
        f.enumerators("TUNABLE_TYPE_", &mut codes)?;
        f.enumerators("TUNABLE_SECLEVEL_", &mut levels)?;
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
    if let Some(relocs) = file.dynamic_relocations() {
        for (off, _) in relocs {
            if off >= addr && off < addr + size {
                return Err(format!(
                    "{what}: a dynamic relocation at {off:#x} patches the table (a string default?)"
                ));
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
    let mut rows = Vec::new();
    for (i, e) in bytes.chunks_exact(stride as usize).enumerate() {
        let name = cstr_at(e, name_f)?;
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
            alias: cstr_at(e, alias_f)?,
        });
    }
    eprintln!(
        "glibc-layouts: {} tunables ({} bytes each){}",
        rows.len(),
        stride,
        if sec_f.is_some() { ", with security levels" } else { "" }
    );
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

fn render_tunables(rows: &[TunableRow]) -> String {
    let mut s = String::from("&[\n");
    for (i, r) in rows.iter().enumerate() {
        let _ = writeln!(
            s,
            "        /* {i:2} */ Tunable {{ name: {:?}, ty: TunableType::{}, default: {}, min: {}, max: {}, security: {}, alias: {:?} }},",
            r.name,
            r.ty,
            tunable_num(r.ty, r.default),
            tunable_num(r.ty, r.min),
            tunable_num(r.ty, r.max),
            r.security.map_or("None".to_string(), |l| format!("Some(TunableSecurity::{l})")),
            r.alias
        );
    }
    s.push_str("    ]");
    s
}

/// Cross-checks the table with what the build's own ld.so prints for
/// `--list-tunables` (one line per tunable, in id order: `NAME: VALUE (min:
/// MIN, max: MAX)`, or `NAME:` for strings), run natively or under
/// `qemu-<arch>` with the unpacked tree as its sysroot. Names, order and
/// types must agree; values too, except for `glibc.cpu.*` tunables, which
/// ld.so sets from the CPU it runs on before printing. Skipped (with a
/// note) when the ld.so cannot be run here.
fn check_list_tunables(rows: &mut [TunableRow], build: &Build, tree: &Path, rtld: &Path) -> Result<(), String> {
    let what = format!("{} {}", build.version, build.arch.name());
    let native = match build.arch {
        Arch::X86_64 => std::env::consts::ARCH == "x86_64",
        Arch::Aarch64 => std::env::consts::ARCH == "aarch64",
    };
    let mut cmd = if native {
        Command::new(rtld)
    } else {
        let mut c = Command::new(format!("qemu-{}", build.arch.name()));
        c.arg("-L").arg(tree).arg(rtld);
        c
    };
    cmd.arg("--list-tunables").env_clear();
    let out = match cmd.output() {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            return Err(format!(
                "{what}: `{cmd:?}` failed ({}): {}",
                o.status,
                String::from_utf8_lossy(&o.stderr)
            ))
        }
        Err(e) => {
            eprintln!("glibc-layouts: {what}: tunables NOT cross-checked with --list-tunables: `{cmd:?}`: {e}");
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
                problems.push(format!(
                    "{name}: table {:#x} ({:#x}..{:#x}), ld.so {v:#x} ({lo:#x}..{hi:#x})",
                    r.default, r.min, r.max
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(format!(
            "{what}: tunable_list[] disagrees with `ld.so --list-tunables`:\n  {}",
            problems.join("\n  ")
        ));
    }
    if !adopted.is_empty() {
        eprintln!("glibc-layouts: defaults ld.so sets at start-up, taken from --list-tunables: {}", adopted.join(", "));
    }
    eprintln!(
        "glibc-layouts: {} tunables agree with --list-tunables{}",
        rows.len(),
        if moved.is_empty() { String::new() } else { format!(" (set from the CPU at run time: {})", moved.join(", ")) }
    );
    Ok(())
}

/// ld.so's list of variables it removes for `AT_SECURE` programs
/// (`UNSECURE_ENVVARS`, one string literal `"GCONV_PATH\0...\0"`): the one
/// run of NUL-terminated names in ld.so that starts with `GCONV_PATH`,
/// ends with an empty string, holds only environment variable names and
/// names `LD_PRELOAD` and `LD_LIBRARY_PATH`.
fn unsecure_env(rtld: &Elf) -> Result<Vec<String>, String> {
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
        n => Err(format!(
            "{}: {n} candidates for the secure-mode variable list (UNSECURE_ENVVARS), expected 1",
            rtld.path.display()
        )),
    }
}

// ---------------------------------------------------------------------------
// Cross-check with libc's `_thread_db_*` descriptors.

/// Which type a descriptor describes.
#[derive(Clone, Copy)]
enum DbType {
    Struct(&'static str),
    Typedef(&'static str),
}

impl DbType {
    fn key(self) -> (Tag, String) {
        match self {
            DbType::Struct(n) => (Tag::Struct, n.to_string()),
            DbType::Typedef(n) => (Tag::Typedef, n.to_string()),
        }
    }
}

/// `_thread_db_<suffix>`, the type, and the member path (`""`: sizeof).
/// `pthread_dtvp` is arch-dependent and handled apart.
const THREAD_DB: &[(&str, DbType, &str)] = &[
    ("sizeof_pthread", DbType::Struct("pthread"), ""),
    ("pthread_list", DbType::Struct("pthread"), "list"),
    ("pthread_tid", DbType::Struct("pthread"), "tid"),
    (
        "pthread_cancelhandling",
        DbType::Struct("pthread"),
        "cancelhandling",
    ),
    ("pthread_specific", DbType::Struct("pthread"), "specific"),
    (
        "pthread_report_events",
        DbType::Struct("pthread"),
        "report_events",
    ),
    (
        "pthread_start_routine",
        DbType::Struct("pthread"),
        "start_routine",
    ),
    (
        "pthread_schedpolicy",
        DbType::Struct("pthread"),
        "schedpolicy",
    ),
    ("pthread_eventbuf", DbType::Struct("pthread"), "eventbuf"),
    ("pthread_nextevent", DbType::Struct("pthread"), "nextevent"),
    (
        "rtld_global__dl_stack_used",
        DbType::Struct("rtld_global"),
        "_dl_stack_used",
    ),
    (
        "rtld_global__dl_stack_user",
        DbType::Struct("rtld_global"),
        "_dl_stack_user",
    ),
    (
        "rtld_global__dl_tls_dtv_slotinfo_list",
        DbType::Struct("rtld_global"),
        "_dl_tls_dtv_slotinfo_list",
    ),
    (
        "link_map_l_tls_modid",
        DbType::Struct("link_map"),
        "l_tls_modid",
    ),
    (
        "link_map_l_tls_offset",
        DbType::Struct("link_map"),
        "l_tls_offset",
    ),
    (
        "sizeof_dtv_slotinfo_list",
        DbType::Struct("dtv_slotinfo_list"),
        "",
    ),
    (
        "dtv_slotinfo_list_len",
        DbType::Struct("dtv_slotinfo_list"),
        "len",
    ),
    (
        "dtv_slotinfo_list_next",
        DbType::Struct("dtv_slotinfo_list"),
        "next",
    ),
    (
        "dtv_slotinfo_list_slotinfo",
        DbType::Struct("dtv_slotinfo_list"),
        "slotinfo",
    ),
    ("sizeof_dtv_slotinfo", DbType::Struct("dtv_slotinfo"), ""),
    ("dtv_slotinfo_gen", DbType::Struct("dtv_slotinfo"), "gen"),
    ("dtv_slotinfo_map", DbType::Struct("dtv_slotinfo"), "map"),
    ("sizeof_list_t", DbType::Typedef("list_t"), ""),
    ("list_t_next", DbType::Typedef("list_t"), "next"),
    ("list_t_prev", DbType::Typedef("list_t"), "prev"),
    ("dtv_t_counter", DbType::Typedef("dtv_t"), "counter"),
    ("dtv_t_pointer_val", DbType::Typedef("dtv_t"), "pointer.val"),
];

/// The descriptors of libc's `.dynsym`: name suffix -> 32-bit words.
fn thread_db_descriptors(libc: &Elf) -> Result<BTreeMap<String, Vec<u32>>, String> {
    let file = object::File::parse(&*libc.data).map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    for sym in file.dynamic_symbols() {
        let Ok(name) = sym.name() else { continue };
        let Some(suffix) = name.strip_prefix("_thread_db_") else {
            continue;
        };
        let Some(index) = sym.section_index() else {
            continue;
        };
        let section = file.section_by_index(index).map_err(|e| e.to_string())?;
        let Some(bytes) = section
            .data_range(sym.address(), sym.size())
            .map_err(|e| e.to_string())?
        else {
            continue;
        };
        let words = bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.insert(suffix.to_string(), words);
    }
    Ok(out)
}

/// Every descriptor we can interpret must agree with the DWARF: the
/// descriptors are compiled from the same headers into the stripped libc.
fn check_thread_db(types: &Types, libc: &Elf, build: &Build) -> Result<(), String> {
    let desc = thread_db_descriptors(libc)?;
    let mut checked = 0;
    let mut mismatches = Vec::new();
    let mut expect = |name: &str, want: u64, got: Option<&Vec<u32>>, word: usize| match got
        .and_then(|w| w.get(word))
    {
        Some(&v) if v as u64 == want => checked += 1,
        Some(&v) => mismatches.push(format!("_thread_db_{name} = {v}, DWARF says {want}")),
        None => mismatches.push(format!("_thread_db_{name} missing")),
    };
    for (name, db, path) in THREAD_DB {
        let (tag, tname) = db.key();
        let ty = types
            .get(tag, &tname)
            .ok_or_else(|| format!("{tname} not in the DWARF"))?;
        if path.is_empty() {
            expect(name, ty.size(), desc.get(*name), 0);
        } else {
            let parts: Vec<&str> = path.split('.').collect();
            let f =
                lookup(ty, &parts, 0).ok_or_else(|| format!("{tname}.{path} not in the DWARF"))?;
            expect(name, f.off, desc.get(*name), 2);
        }
    }
    // The DTV pointer: x86_64 `header.dtv` in struct pthread; aarch64
    // (TLS_DTV_AT_TP) `tcbhead_t.dtv` just after the struct.
    let pthread = types
        .get(Tag::Struct, "pthread")
        .ok_or("struct pthread not in the DWARF")?;
    let dtvp = match build.arch {
        Arch::X86_64 => lookup(pthread, &["header", "dtv"], 0).map(|f| f.off),
        Arch::Aarch64 => Some(pthread.size()),
    };
    if let Some(off) = dtvp {
        expect("pthread_dtvp", off, desc.get("pthread_dtvp"), 2);
    }
    if !mismatches.is_empty() {
        return Err(format!(
            "{} {}: DWARF and libc's _thread_db descriptors disagree:\n  {}",
            build.version,
            build.arch.name(),
            mismatches.join("\n  ")
        ));
    }
    eprintln!("glibc-layouts: {checked} _thread_db descriptors agree with the DWARF");
    Ok(())
}
