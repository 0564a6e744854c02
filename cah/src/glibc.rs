//! `cah glibc`: layout tables for glibc builds ld-cah has no built-in
//! table for, generated on the user's machine from the build's debug info
//! (the generator of `cargo xtask glibc-layouts`, crate `glibc-gen`) and
//! installed where the loader looks for them (`/etc/ld-cah/glibc/<libc
//! build id>.table`; `docs/glibc-table-format.md`).

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use glibc_gen::{hex, read_elf, Arch, Elf};

/// Where the loader looks for installed tables (`installed::DIR`).
pub const DEFAULT_DIR: &str = "/etc/ld-cah/glibc";

/// The table types the loader this `cah` was built with decodes: the
/// generator's specification.
const SPEC: &str = include_str!("../../loader/src/glibc/layout.rs");

#[derive(Args)]
pub struct GlibcArgs {
    #[command(subcommand)]
    command: GlibcCommand,
}

#[derive(Subcommand)]
enum GlibcCommand {
    /// Generate the layout table of a libc.so.6 from its debug info and
    /// install it where ld-cah finds it.
    Add {
        /// The libc.so.6 (its ld.so is taken from the same directory).
        libc: PathBuf,
        /// Where the debug files are: a debug file, a directory holding
        /// `.build-id/xx/yyyy.debug` (an unpacked libc6-dbg's usr/lib/debug)
        /// or a libc6-dbg .deb. Repeatable. Without one: /usr/lib/debug,
        /// then the debuginfod servers of DEBUGINFOD_URLS.
        #[arg(long = "debug", value_name = "PATH")]
        debug: Vec<PathBuf>,
        /// The build's ld.so, if not next to libc.
        #[arg(long, value_name = "PATH")]
        rtld: Option<PathBuf>,
        /// The table directory.
        #[arg(long, value_name = "DIR", env = "CAH_GLIBC_DIR", default_value = DEFAULT_DIR)]
        dir: PathBuf,
    },
    /// List the installed tables.
    Ls {
        /// The table directory.
        #[arg(long, value_name = "DIR", env = "CAH_GLIBC_DIR", default_value = DEFAULT_DIR)]
        dir: PathBuf,
    },
}

pub fn run(a: GlibcArgs) -> Result<bool> {
    match a.command {
        GlibcCommand::Add { libc, debug, rtld, dir } => {
            let path = add(&libc, rtld.as_deref(), &debug, &dir)?;
            println!("{}", path.display());
            Ok(true)
        }
        GlibcCommand::Ls { dir } => ls(&dir),
    }
}

/// Where the debug files may be, in order.
enum Source {
    /// A directory holding `.build-id/`.
    Root(PathBuf),
    /// A debug file.
    File(PathBuf),
}

/// Generates the table of `libc` and writes it into `dir`; returns its path.
pub fn add(libc_path: &Path, rtld_path: Option<&Path>, debug: &[PathBuf], dir: &Path) -> Result<PathBuf> {
    let libc = read_elf(libc_path.to_path_buf()).map_err(|e| anyhow!(e))?;
    let arch = Arch::of(&libc).map_err(|e| anyhow!(e))?;
    let rtld_path = match rtld_path {
        Some(p) => p.to_path_buf(),
        None => libc_path.parent().unwrap_or(Path::new(".")).join(arch.rtld_name()),
    };
    let rtld = read_elf(rtld_path.clone()).map_err(|e| anyhow!("{e} (the libc's ld.so; give --rtld PATH)"))?;

    // .deb files are unpacked into temporary directories kept until the end.
    let mut temps = Vec::new();
    let mut sources = Vec::new();
    for p in debug {
        if p.is_dir() {
            sources.push(Source::Root(p.clone()));
            sources.push(Source::Root(p.join("usr/lib/debug")));
        } else if p.extension().is_some_and(|e| e == "deb") {
            let t = tempfile::tempdir().context("temporary directory")?;
            let st = Command::new("dpkg-deb")
                .arg("-x")
                .arg(p)
                .arg(t.path())
                .status()
                .with_context(|| format!("running dpkg-deb -x {}", p.display()))?;
            if !st.success() {
                bail!("{}: dpkg-deb -x failed ({st})", p.display());
            }
            sources.push(Source::Root(t.path().join("usr/lib/debug")));
            temps.push(t);
        } else if p.is_file() {
            sources.push(Source::File(p.clone()));
        } else {
            bail!("{}: no such debug file, directory or .deb", p.display());
        }
    }
    sources.push(Source::Root(PathBuf::from("/usr/lib/debug")));

    let libc_dbg = debug_file(&libc, &sources, &mut temps)?;
    let rtld_dbg = debug_file(&rtld, &sources, &mut temps)?;
    let ctx = glibc_gen::Ctx {
        label: format!("{} ({})", libc_path.display(), arch.name()),
        arch,
        sysroot: sysroot(libc_path, arch),
        note: |m| {
            if m.contains("NOT") {
                eprintln!("cah: note: {m}");
            }
        },
    };
    let spec = glibc_gen::spec::parse_spec(SPEC).map_err(|e| anyhow!(e))?;
    let files = glibc_gen::Files { libc: &libc, rtld: &rtld, libc_dbg: &libc_dbg, rtld_dbg: &rtld_dbg };
    let generated = glibc_gen::generate(&spec, &files, &ctx).map_err(|e| anyhow!(e))?;
    let bytes = glibc_gen::encode(&spec, &generated).map_err(|e| anyhow!(e))?;
    // What the loader will do with it: decode and check.
    ld_cah::glibc::installed::decode(&bytes).map_err(|e| anyhow!("the generated table does not decode: {e}"))?;
    if ld_cah::glibc::fingerprint::select_file(ld_cah::glibc::layouts::ALL, &libc.data).is_ok() {
        eprintln!("cah: note: ld-cah has a built-in table for {}; installing this one anyway", libc_path.display());
    }

    fs::DirBuilder::new().recursive(true).mode(0o755).create(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = format!("{}.table", hex(&libc.build_id));
    let path = dir.join(&name);
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o644).open(&tmp)?;
        // The mode is exact whatever the umask.
        f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, &path)
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    eprintln!("cah: glibc {} {} (libc build id {}): table installed", generated.glibc_version, arch.name(), hex(&libc.build_id));
    drop(temps);
    Ok(path)
}

/// The root of the tree `libc` is in (`ROOT/lib/<triplet>/libc.so.6` or
/// `ROOT/usr/lib/<triplet>/libc.so.6`), for running a foreign ld.so under
/// qemu; `None` for a native build.
fn sysroot(libc: &Path, arch: Arch) -> Option<PathBuf> {
    let native = std::env::consts::ARCH == arch.name();
    if native {
        return None;
    }
    let dir = libc.parent()?;
    if dir.file_name()? != arch.triplet() {
        return None;
    }
    let lib = dir.parent()?;
    let root = lib.parent()?;
    Some(if root.ends_with("usr") { root.parent()?.to_path_buf() } else { root.to_path_buf() })
}

/// The debug file of `elf`: from `sources`, else from debuginfod.
fn debug_file(elf: &Elf, sources: &[Source], temps: &mut Vec<tempfile::TempDir>) -> Result<Elf> {
    for s in sources {
        let path = match s {
            Source::Root(r) => match glibc_gen::debug_file_in(r, elf) {
                Some(p) => p,
                None => continue,
            },
            Source::File(f) => f.clone(),
        };
        let dbg = read_elf(path).map_err(|e| anyhow!(e))?;
        if dbg.build_id == elf.build_id {
            return Ok(dbg);
        }
    }
    let id = hex(&elf.build_id);
    let urls = std::env::var("DEBUGINFOD_URLS").unwrap_or_default();
    let mut tried = Vec::new();
    for url in urls.split_whitespace() {
        let t = tempfile::tempdir().context("temporary directory")?;
        let out = t.path().join(format!("{id}.debug"));
        let full = format!("{}/buildid/{id}/debuginfo", url.trim_end_matches('/'));
        match fetch(&full, &out) {
            Ok(()) => {
                let dbg = read_elf(out).map_err(|e| anyhow!(e))?;
                temps.push(t);
                if dbg.build_id != elf.build_id {
                    bail!("{full}: the debug file has another build id");
                }
                return Ok(dbg);
            }
            Err(e) => tried.push(format!("{full}: {e:#}")),
        }
    }
    bail!(
        "{}: no debug file for build id {id}: give --debug PATH (a debug file, a directory with .build-id/, or the libc6-dbg .deb of this build) or set DEBUGINFOD_URLS{}",
        elf.path.display(),
        if tried.is_empty() { String::new() } else { format!(" ({})", tried.join("; ")) }
    )
}

/// Downloads `url` to `out` with curl (HTTP and HTTPS; fails on HTTP errors).
fn fetch(url: &str, out: &Path) -> Result<()> {
    let o = Command::new("curl")
        .args(["--fail", "--silent", "--show-error", "--location", "--max-time", "600", "--output"])
        .arg(out)
        .arg(url)
        .output()
        .context("running curl")?;
    if !o.status.success() {
        bail!("{}", String::from_utf8_lossy(&o.stderr).trim());
    }
    Ok(())
}

/// `cah glibc ls`: one line per table file: build id, glibc version and
/// arch, or why the loader would refuse it.
fn ls(dir: &Path) -> Result<bool> {
    let mut names: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|e| e == "table")).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    names.sort();
    let mut ok = true;
    for p in names {
        let stem = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let bytes = fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
        match ld_cah::glibc::installed::decode(&bytes) {
            Ok(d) if hex(d.libc_build_id) == stem => {
                println!("{stem}  glibc {} {:?}", d.layout.glibc_version, d.layout.arch)
            }
            Ok(_) => {
                ok = false;
                println!("{stem}  refused: made for another libc build");
            }
            Err(why) => {
                ok = false;
                println!("{stem}  refused: {why}");
            }
        }
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
    }

    /// The unpacked libc6 + libc6-dbg trees of `cargo xtask glibc-layouts`.
    fn trees() -> Vec<(PathBuf, Arch)> {
        let mut out = Vec::new();
        for suite in ["bookworm", "trixie", "sid"] {
            for (deb, arch) in [("amd64", Arch::X86_64), ("arm64", Arch::Aarch64)] {
                let t = root().join(format!("target/glibc-dbg/{suite}_{deb}"));
                if t.join(".version").exists() {
                    out.push((t, arch));
                }
            }
        }
        out
    }

    fn find_libc(tree: &Path, arch: Arch) -> PathBuf {
        ["lib", "usr/lib"].iter().map(|d| tree.join(d).join(arch.triplet()).join("libc.so.6")).find(|p| p.exists()).unwrap()
    }

    /// `cah glibc add` on every Debian build the built-in tables were made
    /// from: the installed table decodes (with the loader's generated
    /// decoder) to exactly the built-in table the loader would choose.
    #[test]
    fn installed_tables_equal_the_built_in_ones() {
        let trees = trees();
        assert!(!trees.is_empty(), "no target/glibc-dbg/<suite>_<arch> trees: run `cargo xtask glibc-layouts --check` first");
        for (tree, arch) in trees {
            let libc = find_libc(&tree, arch);
            let dir = tempfile::tempdir().unwrap();
            let path = add(&libc, None, &[tree.join("usr/lib/debug")], dir.path()).unwrap();
            let bytes = fs::read(&path).unwrap();
            let installed = ld_cah::glibc::installed::decode(&bytes).unwrap();
            let data = fs::read(&libc).unwrap();
            let builtin = ld_cah::glibc::fingerprint::select_file(ld_cah::glibc::layouts::ALL, &data)
                .unwrap_or_else(|e| panic!("{}: no built-in table: {e:?}", libc.display()));
            assert_eq!(format!("{:#?}", installed.layout), format!("{builtin:#?}"), "{}", tree.display());
            let meta = fs::metadata(&path).unwrap();
            assert_eq!(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777, 0o644);
            assert_eq!(path.file_name().unwrap().to_string_lossy(), format!("{}.table", hex(installed.libc_build_id)));
        }
    }

    /// A libc6-dbg .deb as --debug, as a user downloads it.
    #[test]
    fn debug_from_a_deb() {
        let debs = root().join("target/glibc-dbg/debs");
        let tree = root().join("target/glibc-dbg/bookworm_amd64");
        let version = fs::read_to_string(tree.join(".version")).expect("bookworm_amd64 tree");
        let deb = debs.join(format!("libc6-dbg_{}_amd64.deb", version.trim().replace(':', "%3a")));
        let dir = tempfile::tempdir().unwrap();
        let path = add(&find_libc(&tree, Arch::X86_64), None, &[deb], dir.path()).unwrap();
        assert!(ld_cah::glibc::installed::decode(&fs::read(path).unwrap()).is_ok());
    }

    /// Mutation test of the loader's table decoder: a real table's body is
    /// corrupted at random, over and over (bits flipped, bytes and 32-bit
    /// counts overwritten, cut short, bytes inserted or removed), and
    /// `decode_body` and `decode` (with the checksum fixed up, so the body
    /// is parsed) must return an error or a table that passes `check`,
    /// never panic or allocate without bound.
    #[test]
    fn decoder_survives_random_corruption() {
        let tree = root().join("target/glibc-dbg/bookworm_amd64");
        let dir = tempfile::tempdir().unwrap();
        let path = add(&find_libc(&tree, Arch::X86_64), None, &[tree.join("usr/lib/debug")], dir.path()).unwrap();
        let file = fs::read(path).unwrap();
        let header = glibc_gen::HEADER_LEN;
        let body = &file[header..];
        assert!(ld_cah::glibc::installed::decode_body(body).is_ok());
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rand = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n.max(1) as u64) as usize
        };
        let (mut ok, mut err) = (0, 0);
        for round in 0..3000 {
            let mut b = body.to_vec();
            for _ in 0..1 + rand(4) {
                let at = rand(b.len());
                match rand(6) {
                    0 => b[at] ^= 1 << rand(8),
                    1 => b[at] = rand(256) as u8,
                    2 if at + 4 <= b.len() => {
                        let v = [0u32, 1, 0x7fff_ffff, 0xffff_ffff, rand(1 << 16) as u32][rand(5)];
                        b[at..at + 4].copy_from_slice(&v.to_le_bytes());
                    }
                    3 => b.truncate(at),
                    4 => b.insert(at, rand(256) as u8),
                    _ if !b.is_empty() => {
                        b.remove(at.min(b.len() - 1));
                    }
                    _ => {}
                }
            }
            match ld_cah::glibc::installed::decode_body(&b) {
                Ok(d) => {
                    assert_eq!(d.layout.check(), Ok(()), "round {round}");
                    ok += 1;
                }
                Err(_) => err += 1,
            }
            // The whole file, checksum fixed up.
            let mut f = file[..header].to_vec();
            f[44..76].copy_from_slice(ld_cah::verify::digest::hash(&b).0.as_slice());
            f.extend_from_slice(&b);
            assert_eq!(ld_cah::glibc::installed::decode(&f).is_ok(), ld_cah::glibc::installed::decode_body(&b).is_ok());
        }
        eprintln!("decoder mutation test: {ok} decoded, {err} refused");
        assert!(err > 2000, "most corruptions are refused: {ok} decoded, {err} refused");
    }
}
