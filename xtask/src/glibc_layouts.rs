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
use glibc_gen::spec::{parse_spec, Spec};
use glibc_gen::{hex, read_elf, Elf};
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
        suite: "bullseye",
        sources: &[("debian", "bullseye"), ("debian", "bullseye-updates"), ("debian-security", "bullseye-security")],
    },
    Release {
        suite: "bookworm",
        sources: &[("debian", "bookworm"), ("debian", "bookworm-updates"), ("debian-security", "bookworm-security")],
    },
    Release { suite: "trixie", sources: &[("debian", "trixie"), ("debian", "trixie-updates"), ("debian-security", "trixie-security")] },
    Release { suite: "sid", sources: &[("debian", "sid")] },
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
        let v: String = v.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        format!("debian_{}_{}", v, self.arch.name())
    }
}

struct Options {
    check: bool,
    offline: bool,
    only: Option<String>,
}

pub fn run(args: &[String]) -> Result<(), String> {
    let mut opts = Options { check: false, offline: false, only: None };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--check" => opts.check = true,
            "--offline" => opts.offline = true,
            "--only" => opts.only = Some(it.next().ok_or("--only needs an argument")?.clone()),
            _ => return Err(format!("glibc-layouts: unknown argument `{a}` (--check, --offline, --only TEXT)")),
        }
    }
    let started = Instant::now();
    let root = util::root();
    let spec_path = root.join("loader/src/glibc/layout.rs");
    let spec_text = fs::read_to_string(&spec_path).map_err(|e| format!("{}: {e}", spec_path.display()))?;
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
            eprintln!("glibc-layouts: {label} {} -> {module} ({:.1} s)", build.version, t0.elapsed().as_secs_f64());
        }
    }

    // mod.rs lists every table in the directory: tables of builds that have
    // left the archive stay, for the machines that still run them.
    let mut modules = Vec::new();
    for entry in fs::read_dir(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))? {
        let name = entry.map_err(|e| e.to_string())?.file_name().to_string_lossy().into_owned();
        if let Some(m) = name.strip_suffix(".rs") {
            if !NOT_TABLES.contains(&m) {
                modules.push(m.to_string());
            }
        }
    }
    modules.sort();
    write_or_check(&out_dir.join("decode.rs"), &glibc_gen::render_decoder(&spec)?, opts.check, &mut stale)?;
    write_or_check(&out_dir.join("mod.rs"), &render_mod(&modules), opts.check, &mut stale)?;

    eprintln!("glibc-layouts: done in {:.1} s", started.elapsed().as_secs_f64());
    if !stale.is_empty() {
        return Err(format!("out of date (run `cargo xtask glibc-layouts` and commit the result): {}", stale.join("; ")));
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

/// The provenance header of a generated file (see [`body`]).
fn header(text: &str) -> &str {
    &text[..text.len() - body(text).len()]
}

/// The fingerprint block of a generated table (see `render_fingerprint`).
fn fingerprint_of(text: &str) -> Option<&str> {
    let start = text.find("    fingerprint: Fingerprint {")?;
    let end = text[start..].find("\n    },\n")?;
    Some(&text[start..start + end])
}

/// Finds or makes the table file for a generated table; returns its module.
///
/// An existing table with the same body covers the build already. Else a
/// table made from the same build (same header) is overwritten, and so is
/// `debian_<version>_<arch>.rs` when it holds the same fingerprint (the
/// generator or `layout.rs` changed); a layout of its own under a version
/// that has a table gets a name with the package version, and a new version
/// the plain name. With `check`, anything but the first case is stale.
fn place(out_dir: &Path, build: &Build, text: &str, check: bool, stale: &mut Vec<String>) -> Result<String, String> {
    let mut tables = Vec::new();
    for entry in fs::read_dir(out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let Some(module) = path.file_stem().and_then(|m| m.to_str()).map(String::from) else {
            continue;
        };
        if NOT_TABLES.contains(&module.as_str()) || path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let old = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if body(&old) == body(text) {
            return Ok(module);
        }
        tables.push((module, old));
    }
    if check {
        stale.push(format!("{} {} ({}) has no table with its layout", build.version, build.deb_arch(), build.suite));
        return Ok(String::new());
    }
    let plain = build.module(false);
    let module = if let Some((m, _)) = tables.iter().find(|(_, old)| header(old) == header(text)) {
        // The very build the table was made from (same package version and
        // build ids), rendered anew: the generator or `layout.rs` changed,
        // perhaps the rendering of the fingerprint too.
        m.clone()
    } else {
        match tables.iter().find(|(m, _)| *m == plain) {
            Some((_, old)) if fingerprint_of(old) != fingerprint_of(text) => build.module(true),
            _ => plain,
        }
    };
    let path = out_dir.join(format!("{module}.rs"));
    fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("glibc-layouts: wrote {}", path.display());
    Ok(module)
}

fn write_or_check(path: &Path, text: &str, check: bool, stale: &mut Vec<String>) -> Result<(), String> {
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
    util::root().join("target/glibc-dbg").join(format!("{suite}_{}", arch.deb()))
}

/// Makes sure the current build of `release` for `arch` is unpacked.
fn ensure(release: &Release, arch: Arch, offline: bool) -> Result<(Build, PathBuf), String> {
    let cache = util::root().join("target/glibc-dbg");
    let tree = tree_dir(release.suite, arch);
    let stamp = tree.join(".version");
    let apt = Apt::new(cache.join("apt").join(release.suite), release.sources, &["amd64", "arm64"]);
    let version = if offline {
        fs::read_to_string(&stamp).map_err(|_| format!("{} is not unpacked and --offline was given", tree.display()))?
    } else {
        if apt.lists_age().is_none_or(|age| age > LISTS_MAX_AGE) {
            apt.update()?;
        }
        apt.candidate(&format!("libc6:{}", arch.deb()))?
    };
    let mut build = Build { suite: release.suite, version: version.trim().to_string(), arch };
    if fs::read_to_string(&stamp).ok().as_deref() == Some(build.version.as_str()) {
        return Ok((build, tree));
    }
    let debs_dir = cache.join("debs");
    let debs_of = |build: &Build| -> Vec<PathBuf> {
        ["libc6", "libc6-dbg"]
            .iter()
            .map(|p| debs_dir.join(format!("{p}_{}_{}.deb", build.version.replace(':', "%3a"), build.deb_arch())))
            .collect()
    };
    let mut debs = debs_of(&build);
    if debs.iter().any(|d| !d.exists()) {
        let packages = |b: &Build| [format!("libc6:{}={}", b.deb_arch(), b.version), format!("libc6-dbg:{}={}", b.deb_arch(), b.version)];
        if let Err(e) = apt.download(&debs_dir, &packages(&build), |e| e) {
            // The archive can list a build its pool does not serve (seen
            // with bullseye-security's arm64 2.31-13+deb11u14): take the
            // newest listed build that downloads, and say so.
            let older: Vec<String> = apt.versions(&format!("libc6:{}", arch.deb()))?.into_iter().filter(|v| *v != build.version).collect();
            let mut got = None;
            for v in older {
                let b = Build { suite: release.suite, version: v, arch };
                if apt.download(&debs_dir, &packages(&b), |e| e).is_ok() {
                    eprintln!(
                        "glibc-layouts: {} {} is listed but cannot be downloaded ({e}); using {}",
                        build.deb_arch(),
                        build.version,
                        b.version
                    );
                    got = Some(b);
                    break;
                }
            }
            build = got.ok_or(e)?;
            debs = debs_of(&build);
            if fs::read_to_string(&stamp).ok().as_deref() == Some(build.version.as_str()) {
                return Ok((build, tree));
            }
        }
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
// The files of one build, and the generator (crate `glibc-gen`).

/// The first of `lib/<triplet>/NAME`, `usr/lib/<triplet>/NAME` (usrmerge).
fn find_lib(tree: &Path, build: &Build, name: &str) -> Result<PathBuf, String> {
    ["lib", "usr/lib"]
        .iter()
        .map(|d| tree.join(d).join(build.triplet()).join(name))
        .find(|p| p.exists())
        .ok_or_else(|| format!("{name} not found in {}", tree.display()))
}

/// The detached debug file of `elf`, by build id (the generator checks the
/// id it carries).
fn debug_file(tree: &Path, elf: &Elf) -> Result<Elf, String> {
    let root = tree.join("usr/lib/debug");
    let path = glibc_gen::debug_file_in(&root, elf)
        .ok_or_else(|| format!("{}: no debug file for build id {}", root.display(), hex(&elf.build_id)))?;
    read_elf(path)
}

fn gen_arch(arch: Arch) -> glibc_gen::Arch {
    match arch {
        Arch::X86_64 => glibc_gen::Arch::X86_64,
        Arch::Aarch64 => glibc_gen::Arch::Aarch64,
    }
}

/// The table file of one build: provenance header, then the generator's
/// Rust rendering.
fn generate(spec: &Spec, build: &Build, tree: &Path) -> Result<String, String> {
    let libc = read_elf(find_lib(tree, build, "libc.so.6")?)?;
    let rtld = read_elf(find_lib(tree, build, build.rtld_name())?)?;
    let libc_dbg = debug_file(tree, &libc)?;
    let rtld_dbg = debug_file(tree, &rtld)?;
    let banner = glibc_gen::banner(&libc)?;
    if !banner.contains(&build.version) {
        return Err(format!("{}: banner `{banner}` does not name {}", libc.path.display(), build.version));
    }
    let ctx = glibc_gen::Ctx {
        label: format!("{} {}", build.version, build.arch.name()),
        arch: gen_arch(build.arch),
        sysroot: Some(tree.to_path_buf()),
        note: |m| eprintln!("glibc-layouts: {m}"),
    };
    let files = glibc_gen::Files { libc: &libc, rtld: &rtld, libc_dbg: &libc_dbg, rtld_dbg: &rtld_dbg };
    let generated = glibc_gen::generate(spec, &files, &ctx)?;
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
    out.push_str(&glibc_gen::render_rust(spec, &generated)?);
    Ok(out)
}

/// The generated modules of `layouts/` that are not tables.
const NOT_TABLES: &[&str] = &["mod", "decode"];

fn render_mod(modules: &[String]) -> String {
    let mut s = String::from(
        "//! Generated by `cargo xtask glibc-layouts`: every glibc layout table.\n\
         //! Do not edit; see docs/glibc-layouts.md.\n\n\
         use super::layout::Layout;\n\n",
    );
    // One member per line reads better than rustfmt's layout of struct
    // literals, and generated files must not change under `cargo fmt`.
    s.push_str("/// The decoder of installed tables (docs/glibc-table-format.md).\n#[rustfmt::skip]\npub mod decode;\n\n");
    // A loader built with `no-builtin-layouts` (tests of installed tables)
    // has none of the tables below.
    // The loader (feature `rtld`) only ever selects tables of the arch it
    // runs on, so it carries only those: the other arch's would be dead
    // bytes in every process (docs/benchmarks.md, "Size").
    for m in modules {
        let _ = writeln!(s, "#[rustfmt::skip]\n#[cfg({})]\nmod {m};", table_cfg(m));
    }
    s.push_str("\n/// Every known glibc build (in the loader: of its own arch).\n#[cfg(not(feature = \"no-builtin-layouts\"))]\npub static ALL: &[&Layout] = &[\n");
    for m in modules {
        let _ = writeln!(s, "    #[cfg({})]\n    &{m}::LAYOUT,", table_cfg(m));
    }
    s.push_str("];\n\n/// No built-in table: only installed ones are used.\n#[cfg(feature = \"no-builtin-layouts\")]\npub static ALL: &[&Layout] = &[];\n");
    s
}

/// When the table `module` (named `<distro>_<version>_<arch>`) is built in.
fn table_cfg(module: &str) -> String {
    let arch = if module.ends_with("_aarch64") { "aarch64" } else { "x86_64" };
    format!("all(not(feature = \"no-builtin-layouts\"), any(not(feature = \"rtld\"), target_arch = \"{arch}\"))")
}
