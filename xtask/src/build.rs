//! `cargo xtask build`: ld-cah.so for both arches and the host tool.

use std::path::PathBuf;
use std::process::Command;

use crate::toolchain;
use crate::util::{self, Arch};

pub fn run(args: &[String]) -> Result<(), String> {
    // `--no-builtin-layouts`: a loader without built-in glibc tables, which
    // uses only installed ones (`cah glibc add`), for their tests.
    let notables = args.iter().any(|a| a == "--no-builtin-layouts");
    let args: Vec<&String> = args.iter().filter(|a| *a != "--no-builtin-layouts").collect();
    let arches = match args.first() {
        Some(a) => vec![Arch::parse(a)?],
        None => Arch::ALL.to_vec(),
    };
    let tc = toolchain::ensure()?;
    for arch in arches {
        let so = build_loader(&tc, arch, notables)?;
        check_shape(&so, arch)?;
        let loaded = check_size(&so, arch)?;
        eprintln!("xtask: built {} ({loaded} bytes loaded)", so.display());
    }
    util::run(Command::new(util::host_cargo()).current_dir(util::root()).args(["build", "--release", "--quiet", "-p", "cah"]))?;
    eprintln!("xtask: built {}", util::root().join("target/release/cah").display());
    Ok(())
}

/// Where `cargo xtask build` puts the loader of `arch`.
pub fn loader_path(arch: Arch) -> PathBuf {
    util::root().join("target/ld-cah").join(arch.name()).join("ld-cah.so")
}

fn build_loader(tc: &toolchain::Toolchain, arch: Arch, notables: bool) -> Result<PathBuf, String> {
    let root = util::root();
    let script = root.join("linker-script.ld");
    let exports = root.join(format!("loader/exports-{}.map", arch.name()));
    let mut link_args = vec![
        "-nostartfiles".to_string(),
        "-nostdlib".into(),
        "-static-pie".into(),
        "-Wl,-z,now".into(),
        "-Wl,-z,relro".into(),
        "-Wl,-z,noexecstack".into(),
        "-Wl,--hash-style=both".into(),
        "-Wl,--build-id=sha1".into(),
        "-Wl,--no-undefined".into(),
        "-Wl,-soname,ld-cah.so".into(),
        "-Wl,-e,_start".into(),
        format!("-Wl,--version-script={}", exports.display()),
        format!("-Wl,-T,{}", script.display()),
    ];
    let target_dir = root.join(if notables { "target/loader-build-notables" } else { "target/loader-build" });
    std::fs::create_dir_all(&target_dir).map_err(|e| e.to_string())?;
    link_args.extend(relr_link_args(arch, &target_dir)?);
    let mut rustflags = vec![
        "-Crelocation-model=pie".to_string(),
        format!("-Clinker={}", arch.cc()),
        "-Cforce-frame-pointers=yes".into(),
        // No `.eh_frame` for Rust code (about 26 KB a process): the loader
        // aborts on panic and never unwinds, and nothing may unwind through
        // it (its `extern "C"` entries are nounwind, the lazy-binding
        // trampoline has no CFI). Debuggers use the frame pointers and the
        // DWARF of the unstripped file.
        "-Cforce-unwind-tables=no".into(),
        // Keep and export the `#[no_mangle]` items (`__tls_get_addr`,
        // `_r_debug`, ...): the version script then decides what is visible.
        "-Zexport-executable-symbols".into(),
        // The panic handler prints the message only: no file names and
        // line numbers in the image.
        "-Zlocation-detail=none".into(),
        // LLVM inlines less than its -O2 default (225): 11 KB smaller
        // and the same warm start (callgrind: 213.9k -> 215.1k loader
        // instructions for a locked hello; at 100 it was 227.5k).
        "-Cllvm-args=-inline-threshold=160".into(),
    ];
    for a in &link_args {
        rustflags.push(format!("-Clink-arg={a}"));
    }
    let features = if notables { "rtld,no-builtin-layouts" } else { "rtld" };
    let mut cmd = Command::new(&tc.cargo);
    cmd.current_dir(&root)
        .env("RUSTC", &tc.rustc)
        .env("RUSTC_BOOTSTRAP", "1")
        .env_remove("RUSTFLAGS")
        // One codegen unit per crate: with 16, every `#[inline]` or generic
        // helper had a copy in each unit using it (24 KB), and the start is
        // no slower (slightly faster).
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1")
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags.join("\x1f"))
        .args(["build", "--release", "--quiet", "-p", "ld-cah", "--bin", "ld-cah", "--features", features])
        .args(["-Zbuild-std=core,alloc,compiler_builtins", "-Zbuild-std-features=compiler-builtins-mem"])
        .args(["--target", arch.rust_target()])
        .arg("--target-dir")
        .arg(&target_dir);
    util::run(&mut cmd)?;
    let built = target_dir.join(arch.rust_target()).join("release/ld-cah");
    let out = if notables { root.join("target/ld-cah-notables").join(arch.name()).join("ld-cah.so") } else { loader_path(arch) };
    std::fs::create_dir_all(out.parent().unwrap()).map_err(|e| e.to_string())?;
    std::fs::copy(&built, &out).map_err(|e| format!("copy {}: {e}", built.display()))?;
    Ok(out)
}

/// Link arguments that pack the loader's relative relocations into
/// DT_RELR (`crt` applies both kinds). GNU ld 2.40 does that on x86_64
/// only; on aarch64 it ignores the option, and the loader carried 29 KB of
/// `R_AARCH64_RELATIVE` entries, so aarch64 links with lld (a required
/// package, `toolchain.rs`). The cross gcc's `-fuse-ld=lld` looks for a
/// cross-prefixed lld Debian does not ship: `-B` with a directory whose `ld`
/// is ld.lld picks it instead (as the fixtures do).
fn relr_link_args(arch: Arch, target_dir: &std::path::Path) -> Result<Vec<String>, String> {
    match arch {
        Arch::X86_64 => Ok(vec!["-Wl,-z,pack-relative-relocs".into()]),
        Arch::Aarch64 => {
            let dir = target_dir.join("lld-bin");
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let link = dir.join("ld");
            if std::fs::symlink_metadata(&link).is_err() {
                std::os::unix::fs::symlink("/usr/bin/ld.lld", &link).map_err(|e| format!("{}: {e}", link.display()))?;
            }
            Ok(vec![format!("-B{}/", dir.display()), "-Wl,--pack-dyn-relocs=relr".into()])
        }
    }
}

/// The loader must be loadable by the kernel before it has relocated
/// itself: no interpreter, no needed libraries, no TLS of its own, and only
/// relative relocations (all `crt` knows how to apply).
fn check_shape(so: &std::path::Path, arch: Arch) -> Result<(), String> {
    let readelf = util::output(Command::new("readelf").arg("-lrdW").arg(so))?;
    let name = so.display();
    if readelf.contains("INTERP") {
        return Err(format!("{name}: has PT_INTERP"));
    }
    if readelf.contains("(NEEDED)") {
        return Err(format!("{name}: has DT_NEEDED"));
    }
    if readelf.lines().any(|l| l.trim_start().starts_with("TLS ")) {
        return Err(format!("{name}: has PT_TLS"));
    }
    let relative = match arch {
        Arch::X86_64 => "R_X86_64_RELATIVE",
        Arch::Aarch64 => "R_AARCH64_RELATIVE",
    };
    for line in readelf.lines() {
        let l = line.trim();
        let Some(ty) = l.split_whitespace().nth(2) else { continue };
        if (ty.starts_with("R_X86_64_") || ty.starts_with("R_AARCH64_")) && ty != relative {
            return Err(format!("{name}: relocation {ty} (only {relative} and RELR are allowed): {l}"));
        }
    }
    Ok(())
}

/// Most bytes the loader of each arch may map (sum of its PT_LOAD
/// p_memsz), so that it grows only on purpose. The aim is 256 KiB, near
/// glibc's ld.so (about 205 KB); these limits are what was reached
/// (x86_64 464,586, aarch64 352,997 bytes) plus a small margin: lower them
/// as the loader shrinks, see docs/benchmarks.md, "Size". x86_64 grew by
/// 4 KiB for glibc's per-release CPU tuning rules (`glibc/cpu.rs`), and by
/// 4 KiB for the prepared scope walk that brought lookups under glibc's
/// cost, with the plan's merge sort and store check (485,122 bytes), and by
/// 8 KiB for glibc's cache description (CPUID leaf 2/4/0xB and AMD decoding,
/// thresholds per release: `sysconf` and memcpy's non-temporal switch as
/// under glibc; 494,978 bytes), and by 4 KiB for segments mapped through
/// the reservation (a system call fewer per segment) and lazy binding's
/// cheaper publication (495,698 bytes), and by 4 KiB for a warm start
/// without 19 of its 23 CPUIDs: the plan's record and replay of CPUID
/// answers and the one-chunk BLAKE3 for short inputs (502,754 bytes), and
/// by 4 KiB for the link-map chain kept as glibc keeps it (linked at the
/// end, unlinked in place: 1,200 instructions fewer a `dlopen` round) and
/// small plans read rather than mapped (503,842 bytes).
/// aarch64 grew by 4 KiB for the scope walk,
/// the plan's merge sort and store check, and the link maps' and TLS
/// descriptors' owned memory (368,841 bytes), and by 1 KiB for hash-cache
/// lookups read with `pread` (a warm start maps nothing: 0.91x -> 0.875x of
/// glibc's wall time on a warm hello; 373,613 bytes). Lowered again when
/// the glibc tables became relocation-free (their names one string per
/// list): x86_64 to 492 KiB (500,650 bytes), aarch64 to 364 KiB (369,965).
/// Both raised by 4 KiB for the binding plan vouching for a locked
/// closure's digests (files taken on trust, confirmed after the walk, the
/// closure loaded again when one does not match): a warm locked start
/// opens no hash cache, 8 system calls and ~5,700 loader instructions
/// fewer (507,466 and 375,965 bytes). x86_64 by 4 KiB more for a plan
/// recorded this boot (read from a tmpfs) answering CPUID without
/// executing any (two CPUIDs, 4-5 us each in a VM, fewer; 508,298 bytes).
/// Both lowered when the glibc tables came to hold offsets and sizes in 16
/// bits: x86_64 to 496 KiB (502,474 bytes), aarch64 to 366 KiB (371,157);
/// and again when the decoder of installed tables came to store each value
/// in place: x86_64 to 488 KiB (496,714), aarch64 to 362 KiB (367,365).
fn loaded_size_limit(arch: Arch) -> u64 {
    match arch {
        Arch::X86_64 => 488 * 1024,
        Arch::Aarch64 => 362 * 1024,
    }
}

/// The loaded size of `so`, or an error above `loaded_size_limit(arch)`.
fn check_size(so: &std::path::Path, arch: Arch) -> Result<u64, String> {
    let limit = loaded_size_limit(arch);
    let readelf = util::output(Command::new("readelf").arg("-lW").arg(so))?;
    let mut total = 0;
    for l in readelf.lines().filter(|l| l.trim_start().starts_with("LOAD ")) {
        // LOAD Offset VirtAddr PhysAddr FileSiz MemSiz Flg Align
        let memsz = l.split_whitespace().nth(5).ok_or_else(|| format!("readelf: odd line {l}"))?;
        total += u64::from_str_radix(memsz.trim_start_matches("0x"), 16).map_err(|e| format!("readelf: {memsz}: {e}"))?;
    }
    if total > limit {
        return Err(format!("{}: {total} bytes loaded, above the limit of {limit} (docs/benchmarks.md, \"Size\")", so.display()));
    }
    Ok(total)
}
