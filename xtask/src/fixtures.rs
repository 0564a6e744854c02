//! `cargo xtask fixtures`: compiles the end-to-end test fixtures
//! (`tests/fixtures/`) for both arches into `target/fixtures/<arch>/`.
//!
//! Every fixture is a real dynamically linked ELF object built with the
//! system toolchain (`gcc` / `aarch64-linux-gnu-gcc`) and `-nostdlib`: no
//! libc code at all, only the small runtime in `tests/fixtures/shim/`. Their
//! `PT_INTERP` is the ordinary glibc one, so the very same files run under
//! glibc's loader, which is the reference the tests compare ld-cah against.
//!
//! Two flavours of program (see `tests/fixtures/shim/start.c` for why):
//! *bare* programs have no libc and no ld.so in their closure and never call
//! the loader's fini function; *libc* programs also need `libc.so.6` (they
//! never call into it), which lets glibc's loader run its `_dl_fini` and
//! provide `__tls_get_addr`, so they call the fini function at exit.
//!
//! The whole tree is rebuilt every time (a few seconds) into a staging
//! directory that then replaces `target/fixtures/<arch>/`, so a failed or
//! interrupted build never leaves a half-updated tree behind.
//!
//! `cargo xtask fixtures [x86_64|aarch64]` builds one arch only, but the
//! wrong-arch inputs (`bad_arch/`) need the other arch's tree: they are
//! skipped, with a note, if it does not exist.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{self, Arch};

pub fn run(args: &[String]) -> Result<(), String> {
    let arches = match args.first() {
        Some(a) => vec![Arch::parse(a)?],
        None => Arch::ALL.to_vec(),
    };
    let root = util::root();
    let started = std::time::Instant::now();
    let results: Vec<Result<usize, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = arches
            .iter()
            .map(|&arch| {
                let root = &root;
                s.spawn(move || build_arch(root, arch))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("fixture build thread panicked".into()))).collect()
    });
    let mut count = 0;
    for r in results {
        count += r?;
    }
    // Inputs made of the other arch's files, once both trees exist.
    for &arch in &arches {
        bad_arch_inputs(&root, arch)?;
    }
    eprintln!(
        "xtask: built {count} fixture files for {} in {:.1}s under {}",
        arches.iter().map(|a| a.name()).collect::<Vec<_>>().join(" and "),
        started.elapsed().as_secs_f64(),
        root.join("target/fixtures").display()
    );
    Ok(())
}

/// The directory the tests read fixtures of `arch` from.
fn fixture_dir(root: &Path, arch: Arch) -> PathBuf {
    root.join("target/fixtures").join(arch.name())
}

/// The system's glibc loader, as a link input: programs and libraries that
/// need `__tls_get_addr` link against it, as libc.so.6 does.
fn system_ld_so(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "/lib64/ld-linux-x86-64.so.2",
        Arch::Aarch64 => "/usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1",
    }
}

/// `-mtls-dialect` values for TLS through `__tls_get_addr` and through
/// TLS descriptors.
fn tls_dialects(arch: Arch) -> (&'static str, &'static str) {
    match arch {
        Arch::X86_64 => ("-mtls-dialect=gnu", "-mtls-dialect=gnu2"),
        Arch::Aarch64 => ("-mtls-dialect=trad", "-mtls-dialect=desc"),
    }
}

/// Link flags that make the linker pack relative relocations into DT_RELR.
/// GNU ld 2.40 (Debian 12) does that for x86_64 only; on aarch64 it ignores
/// the option, so aarch64 uses lld when there is one. Without it the
/// aarch64 `relr` fixtures have plain RELATIVE relocations, and the test
/// that checks for DT_RELR says so.
fn relr_flags(arch: Arch) -> Vec<String> {
    match arch {
        Arch::X86_64 => vec!["-Wl,-z,pack-relative-relocs".into()],
        Arch::Aarch64 if in_path("ld.lld") => {
            // The cross gcc's -fuse-ld=lld looks for a cross-prefixed lld
            // that Debian does not ship; -B with a directory whose `ld` is
            // ld.lld picks it instead.
            let dir = crate::util::root().join("target/fixtures/.lld-bin");
            let _ = std::fs::create_dir_all(&dir);
            let link = dir.join("ld");
            if !link.exists() {
                let _ = std::os::unix::fs::symlink("/usr/bin/ld.lld", &link);
            }
            vec![format!("-B{}/", dir.display()), "-Wl,--pack-dyn-relocs=relr".into()]
        }
        Arch::Aarch64 => {
            eprintln!("xtask: note: no ld.lld (Debian package `lld`): the aarch64 relr fixtures get no DT_RELR");
            Vec::new()
        }
    }
}

fn in_path(program: &str) -> bool {
    std::env::var_os("PATH").map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file())).unwrap_or(false)
}

/// Compiler flags for every fixture object: freestanding, nothing that
/// could pull in a libc symbol (stack protector, builtins turned into
/// library calls, loops turned into memset calls).
const CFLAGS: &[&str] = &[
    "-O2",
    "-g0",
    "-std=gnu11",
    "-Wall",
    "-Wextra",
    "-Wno-unused-parameter",
    "-Werror",
    "-ffreestanding",
    "-fno-builtin",
    "-fno-stack-protector",
    "-fno-tree-loop-distribute-patterns",
    "-fno-asynchronous-unwind-tables",
    "-fno-unwind-tables",
    "-fno-exceptions",
    "-nostdlib",
    "-Wl,-z,noexecstack",
    "-Wl,--build-id=sha1",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavour {
    /// No libc, no ld.so in the closure; the fini function is not called.
    Bare,
    /// Also needs libc.so.6 (never called); the fini function is called.
    Libc,
    /// No libc, but the fini function is called: glibc's loader cannot run
    /// these (see shim/start.c), only ld-cah can.
    BareFini,
}

/// How a program is linked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Link {
    Pie,
    /// `-fno-pic -no-pie`: an ET_EXEC program.
    NoPie,
    /// `-static -nostdlib`, no PT_INTERP.
    Static,
    /// `-static-pie -nostdlib`.
    StaticPie,
}

/// One arch's build: sources in `src`, staged outputs in `out`.
struct Builder {
    arch: Arch,
    src: PathBuf,
    out: PathBuf,
    /// Intermediate objects (the shim), outside the fixture tree.
    obj: PathBuf,
    /// Files produced, for the summary.
    count: usize,
}

fn build_arch(root: &Path, arch: Arch) -> Result<usize, String> {
    let final_dir = fixture_dir(root, arch);
    let staging = root.join("target/fixtures").join(format!("{}.staging", arch.name()));
    let obj = root.join("target/fixtures/.obj").join(arch.name());
    for dir in [&staging, &obj] {
        if dir.exists() {
            fs::remove_dir_all(dir).map_err(|e| format!("remove {}: {e}", dir.display()))?;
        }
        fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    let mut b = Builder { arch, src: root.join("tests/fixtures"), out: staging.clone(), obj, count: 0 };
    b.shim()?;
    b.all()?;
    if final_dir.exists() {
        fs::remove_dir_all(&final_dir).map_err(|e| format!("remove {}: {e}", final_dir.display()))?;
    }
    fs::rename(&staging, &final_dir).map_err(|e| format!("rename {} to {}: {e}", staging.display(), final_dir.display()))?;
    Ok(b.count)
}

impl Builder {
    fn cc(&self) -> Command {
        let mut cmd = Command::new(self.arch.cc());
        cmd.args(CFLAGS);
        cmd.arg("-I").arg(self.src.join("shim"));
        cmd
    }

    /// The shim compiled once per use: PIC for libraries and PIE programs,
    /// non-PIC for ET_EXEC programs; the entry point with and without the
    /// call to the loader's fini function.
    fn shim(&mut self) -> Result<(), String> {
        let jobs: &[(&str, &str, &[&str])] = &[
            ("shim.c", "shim-pic.o", &["-fPIC"]),
            ("shim.c", "shim-nopic.o", &["-fno-pic"]),
            ("start.c", "start-pie.o", &["-fPIE"]),
            ("start.c", "start-pie-fini.o", &["-fPIE", "-DSHIM_RTLD_FINI"]),
            ("start.c", "start-nopic.o", &["-fno-pic"]),
        ];
        for (src, obj, flags) in jobs {
            let mut cmd = self.cc();
            cmd.args(*flags).arg("-c").arg(self.src.join("shim").join(src)).arg("-o").arg(self.obj.join(obj));
            quiet(&mut cmd)?;
        }
        Ok(())
    }

    fn out_path(&self, name: &str) -> PathBuf {
        self.out.join(name)
    }

    fn ensure_parent(&self, path: &Path) -> Result<(), String> {
        let parent = path.parent().ok_or("output path without a parent")?;
        fs::create_dir_all(parent).map_err(|e| format!("create {}: {e}", parent.display()))
    }

    /// Builds the shared library `name` (a path relative to the fixture
    /// dir, e.g. `libx.so` or `stub/libx.so`) from `srcs` (relative to
    /// tests/fixtures/). Its soname is its file name; `-l` finds libraries
    /// of the fixture directory. `extra` goes last: defines, `-L`/`-l`,
    /// linker options.
    fn lib(&mut self, name: &str, srcs: &[&str], extra: &[String]) -> Result<(), String> {
        let out = self.out_path(name);
        self.ensure_parent(&out)?;
        let soname = Path::new(name).file_name().and_then(|n| n.to_str()).ok_or("bad library name")?;
        let mut cmd = self.cc();
        cmd.args(["-fPIC", "-shared"]).arg(format!("-Wl,-soname,{soname}"));
        cmd.arg(format!("-Wl,-rpath-link,{}", self.out.display()));
        cmd.arg("-o").arg(&out);
        for s in srcs {
            cmd.arg(self.src.join(s));
        }
        cmd.arg(self.obj.join("shim-pic.o"));
        cmd.args(extra);
        // After `extra`: its own -L directories (stubs) take precedence.
        cmd.arg(format!("-L{}", self.out.display()));
        quiet(&mut cmd)?;
        self.count += 1;
        Ok(())
    }

    /// Builds the program `name`; see [`Builder::lib`] for `srcs`/`extra`.
    fn prog(&mut self, name: &str, link: Link, flavour: Flavour, srcs: &[&str], extra: &[String]) -> Result<(), String> {
        let out = self.out_path(name);
        self.ensure_parent(&out)?;
        let mut cmd = self.cc();
        let (shim, start) = match (link, flavour) {
            (Link::Pie, Flavour::Bare) => {
                cmd.args(["-fPIE", "-pie"]);
                ("shim-pic.o", "start-pie.o")
            }
            (Link::Pie, Flavour::Libc) | (Link::Pie, Flavour::BareFini) => {
                cmd.args(["-fPIE", "-pie", "-DSHIM_RTLD_FINI"]);
                ("shim-pic.o", "start-pie-fini.o")
            }
            (Link::NoPie, Flavour::Bare) => {
                cmd.args(["-fno-pic", "-no-pie"]);
                ("shim-nopic.o", "start-nopic.o")
            }
            (Link::Static, Flavour::Bare) => {
                cmd.args(["-fno-pic", "-no-pie", "-static"]);
                ("shim-nopic.o", "start-nopic.o")
            }
            (Link::StaticPie, Flavour::Bare) => {
                cmd.args(["-fPIE", "-static-pie"]);
                ("shim-pic.o", "start-pie.o")
            }
            _ => return Err(format!("{name}: no such program flavour")),
        };
        cmd.arg(format!("-Wl,-rpath-link,{}", self.out.display()));
        cmd.arg("-o").arg(&out);
        for s in srcs {
            cmd.arg(self.src.join(s));
        }
        cmd.arg(self.obj.join(shim)).arg(self.obj.join(start));
        cmd.args(extra);
        // After `extra`: its own -L directories (stubs) take precedence.
        cmd.arg(format!("-L{}", self.out.display()));
        if flavour == Flavour::Libc {
            // Last, so libc.so.6 (and ld.so through it) come after the
            // fixture's own libraries in DT_NEEDED order.
            cmd.args(["-Wl,--no-as-needed", "-lc"]);
        }
        quiet(&mut cmd)?;
        self.count += 1;
        Ok(())
    }

    fn dir(&self, sub: &str) -> String {
        self.out.join(sub).display().to_string()
    }

    fn all(&mut self) -> Result<(), String> {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
        use Flavour::{Bare, BareFini, Libc};
        use Link::{NoPie, Pie, Static, StaticPie};

        // Basics.
        self.prog("hello", Pie, Bare, &["basic/hello.c"], &[])?;
        self.prog("args", Pie, Bare, &["basic/args.c"], &[])?;
        self.prog("static", Static, Bare, &["basic/static.c"], &[])?;
        self.prog("static_pie", StaticPie, Bare, &["basic/static.c"], &[])?;

        // Plain dependencies, missing ones, and stubs to link against.
        self.lib("libsimple.so", &["deps/libsimple.c"], &[])?;
        self.lib("stub/libsimple.so", &["deps/libsimple.c"], &s(&["-DSTUB_EXTRA"]))?;
        self.lib("stub/libgone.so", &["deps/libgone.c"], &[])?;
        self.prog("needsimple", Pie, Bare, &["deps/needsimple.c"], &s(&["-lsimple"]))?;
        let stub = format!("-L{}", self.dir("stub"));
        self.prog("needgone", Pie, Bare, &["deps/needgone.c"], &[stub.clone(), "-lgone".into()])?;
        self.prog("missing_sym", Pie, Bare, &["deps/missing_sym.c"], &[stub.clone(), "-lsimple".into(), "-Wl,-z,now".into()])?;
        self.prog("missing_lazy", Pie, Bare, &["deps/missing_lazy.c"], &[stub, "-lsimple".into(), "-Wl,-z,lazy".into()])?;

        // Relocations.
        self.lib("libreloc_a.so", &["reloc/libreloc_a.c"], &[])?;
        self.lib("libreloc_b.so", &["reloc/libreloc_b.c"], &s(&["-lreloc_a"]))?;
        let reloc_libs = s(&["-lreloc_b", "-lreloc_a"]);
        self.prog("reloc", Pie, Bare, &["reloc/reloc.c"], &[reloc_libs.clone(), s(&["-Wl,-z,lazy"])].concat())?;
        self.prog("reloc_now", Pie, Bare, &["reloc/reloc.c"], &[reloc_libs, s(&["-Wl,-z,now"])].concat())?;
        let relr = relr_flags(self.arch);
        self.lib("librelr.so", &["reloc/librelr.c"], &relr)?;
        self.prog("relr", Pie, Bare, &["reloc/relr.c"], &[s(&["-lrelr"]), relr].concat())?;
        self.lib("libcopy.so", &["reloc/libcopy.c"], &[])?;
        self.prog("copyreloc", NoPie, Bare, &["reloc/copyreloc.c"], &s(&["-lcopy"]))?;
        self.prog("copyreloc_pie", Pie, Bare, &["reloc/copyreloc.c"], &s(&["-lcopy"]))?;
        self.lib("libifunc.so", &["reloc/libifunc.c"], &[])?;
        self.prog("ifunc", Pie, Bare, &["reloc/ifunc.c"], &s(&["-lifunc"]))?;
        self.lib("libmany_gnu.so", &["reloc/libmany.c"], &s(&["-DP=gnu_f", "-Wl,--hash-style=gnu"]))?;
        self.lib("libmany_sysv.so", &["reloc/libmany.c"], &s(&["-DP=sysv_f", "-Wl,--hash-style=sysv"]))?;
        self.prog("hashstyle", Pie, Bare, &["reloc/hashstyle.c"], &s(&["-lmany_gnu", "-lmany_sysv"]))?;

        // TLS.
        let (gd, desc) = tls_dialects(self.arch);
        self.lib("libtls_ie.so", &["tls/libtls_ie.c"], &s(&["-ftls-model=initial-exec"]))?;
        self.lib("libtls_gd.so", &["tls/libtls_dyn.c"], &s(&[gd, "-ltls_ie", "-Wl,--no-as-needed", system_ld_so(self.arch)]))?;
        self.lib("libtls_desc.so", &["tls/libtls_dyn.c"], &s(&[desc, "-ltls_ie"]))?;
        self.prog("tls_gd", Pie, Libc, &["tls/tls.c"], &s(&["-ltls_gd", "-ltls_ie"]))?;
        self.prog("tls_desc", Pie, Bare, &["tls/tls.c"], &s(&["-ltls_desc", "-ltls_ie"]))?;
        // ld.so (through libtls_gd) without libc: ld-cah only.
        self.prog("tls_gd_bare", Pie, Bare, &["tls/tls.c"], &s(&["-ltls_gd", "-ltls_ie"]))?;

        // Symbol versions.
        let symbols = self.src.join("symbols");
        let map = |f: &str| format!("-Wl,--version-script={}", symbols.join(f).display());
        self.lib("libver.so", &["symbols/libver.c"], &[map("libver.map")])?;
        self.lib("stub_v3/libver.so", &["symbols/libver.c"], &[map("libver3.map"), "-DWITH_VER3".into()])?;
        self.lib("stub_unversioned/libver.so", &["symbols/libver.c"], &s(&["-DUNVERSIONED"]))?;
        self.prog("ver_new", Pie, Bare, &["symbols/ver.c"], &s(&["-lver"]))?;
        self.prog("ver_old", Pie, Bare, &["symbols/ver.c"], &s(&["-DOLD", "-lver"]))?;
        let unversioned = format!("-L{}", self.dir("stub_unversioned"));
        self.prog("ver_unversioned", Pie, Bare, &["symbols/ver.c"], &[unversioned, "-lver".into()])?;
        let v3 = format!("-L{}", self.dir("stub_v3"));
        self.prog("ver_missing", Pie, Bare, &["symbols/ver_missing.c"], &[v3, "-lver".into()])?;

        // Interposition, weak, protected, unique.
        self.lib("libint_a.so", &["symbols/libint_a.c"], &[])?;
        self.lib("libint_b.so", &["symbols/libint_b.c"], &[])?;
        self.lib("libpre.so", &["symbols/libpre.c"], &[])?;
        self.lib("libpre2.so", &["symbols/libpre2.c"], &[])?;
        self.prog("interpose", Pie, Bare, &["symbols/interpose.c"], &s(&["-lint_a", "-lint_b"]))?;
        self.lib("libweak.so", &["symbols/libweak.c"], &[])?;
        self.prog("weak", Pie, Bare, &["symbols/weak.c"], &s(&["-lweak"]))?;
        self.lib("libprot.so", &["symbols/libprot.c"], &[])?;
        self.prog("prot", Pie, Bare, &["symbols/prot.c"], &s(&["-lprot"]))?;
        self.lib("libuniq1.so", &["symbols/libuniq.c"], &s(&["-DWHICH=1"]))?;
        self.lib("libuniq2.so", &["symbols/libuniq.c"], &s(&["-DWHICH=2"]))?;
        self.prog("uniq", Pie, Bare, &["symbols/uniq.c"], &s(&["-luniq1", "-luniq2"]))?;

        // Initialisation and finalisation order.
        for (name, deps) in [("d", &[][..]), ("c", &["d"][..]), ("a", &["d"][..]), ("b", &["c", "d"][..])] {
            let mut extra = vec![format!("-DNAME={name}"), format!("-Wl,-init=init_{name}"), format!("-Wl,-fini=fini_{name}")];
            for (i, d) in deps.iter().enumerate() {
                extra.push(format!("-DDEP{}={d}", i + 1));
                extra.push(format!("-linit_{d}"));
            }
            self.lib(&format!("libinit_{name}.so"), &["init/libinit.c"], &extra)?;
        }
        let init_exe = s(&["-linit_a", "-linit_b", "-Wl,-init=exe_dt_init", "-Wl,-fini=exe_dt_fini"]);
        self.prog("initorder", Pie, Bare, &["init/initorder.c"], &init_exe)?;
        self.prog("initfini", Pie, Libc, &["init/initorder.c"], &init_exe)?;
        self.prog("initfini_bare", Pie, BareFini, &["init/initorder.c"], &init_exe)?;
        // A cycle: libcyca needs libcycb needs libcyca. libcycb is linked
        // against a first libcyca without the DT_NEEDED, out of the tree.
        let cyc = |name: &str, dep: &str| {
            vec![format!("-DNAME={name}"), format!("-DDEP1={dep}"), format!("-Wl,-init=init_{name}"), format!("-Wl,-fini=fini_{name}")]
        };
        let first = self.obj.join("cycle");
        fs::create_dir_all(&first).map_err(|e| e.to_string())?;
        {
            let mut cmd = self.cc();
            cmd.args(["-fPIC", "-shared", "-Wl,-soname,libcyca.so", "-o"])
                .arg(first.join("libcyca.so"))
                .arg(self.src.join("init/libinit.c"))
                .arg(self.obj.join("shim-pic.o"))
                .args(cyc("cyca", "cycb"));
            quiet(&mut cmd)?;
        }
        let mut cycb = cyc("cycb", "cyca");
        cycb.extend([format!("-L{}", first.display()), "-lcyca".into()]);
        self.lib("libcycb.so", &["init/libinit.c"], &cycb)?;
        let mut cyca = cyc("cyca", "cycb");
        cyca.push("-lcycb".into());
        self.lib("libcyca.so", &["init/libinit.c"], &cyca)?;
        self.prog("cycle", Pie, Bare, &["init/cycle.c"], &s(&["-lcyca"]))?;

        // Search paths: $ORIGIN in DT_RPATH / DT_RUNPATH, and precedence.
        let rpath = |p: &str| format!("-Wl,--disable-new-dtags,-rpath,{p}");
        let runpath = |p: &str| format!("-Wl,--enable-new-dtags,-rpath,{p}");
        self.lib("o_rpath/libo2.so", &["search/libo.c"], &s(&["-DNAME=o2"]))?;
        let l_rpath = format!("-L{}", self.dir("o_rpath"));
        self.lib("o_rpath/libo1.so", &["search/libo.c"], &[s(&["-DNAME=o1", "-DDEP=o2"]), vec![l_rpath.clone(), "-lo2".into()]].concat())?;
        self.lib("o_run2/libo4.so", &["search/libo.c"], &s(&["-DNAME=o4"]))?;
        let l_run2 = format!("-L{}", self.dir("o_run2"));
        self.lib(
            "o_run/libo3.so",
            &["search/libo.c"],
            &[s(&["-DNAME=o3", "-DDEP=o4"]), vec![l_run2, "-lo4".into(), runpath("$ORIGIN/../o_run2")]].concat(),
        )?;
        let rl_run2 = format!("-Wl,-rpath-link,{}", self.dir("o_run2"));
        self.prog(
            "origin_rpath",
            Pie,
            Bare,
            &["search/origin.c"],
            &[
                "-DFIRST=o1".into(),
                l_rpath.clone(),
                format!("-Wl,-rpath-link,{}", self.dir("o_rpath")),
                "-lo1".into(),
                rpath("$ORIGIN/o_rpath"),
            ],
        )?;
        self.prog(
            "origin_runpath_indirect",
            Pie,
            Bare,
            &["search/origin.c"],
            &[
                "-DFIRST=o1".into(),
                l_rpath.clone(),
                format!("-Wl,-rpath-link,{}", self.dir("o_rpath")),
                "-lo1".into(),
                runpath("$ORIGIN/o_rpath"),
            ],
        )?;
        self.prog(
            "origin_runpath",
            Pie,
            Bare,
            &["search/origin.c"],
            &["-DFIRST=o3".into(), format!("-L{}", self.dir("o_run")), rl_run2, "-lo3".into(), runpath("$ORIGIN/o_run")],
        )?;
        self.lib("o_a/libwho.so", &["search/libwho.c"], &s(&["-DWHO=\"o_a\""]))?;
        self.lib("o_b/libwho.so", &["search/libwho.c"], &s(&["-DWHO=\"o_b\""]))?;
        let l_a = format!("-L{}", self.dir("o_a"));
        self.prog("who_rpath", Pie, Bare, &["search/who.c"], &[l_a.clone(), "-lwho".into(), rpath("$ORIGIN/o_a")])?;
        self.prog("who_runpath", Pie, Bare, &["search/who.c"], &[l_a.clone(), "-lwho".into(), runpath("$ORIGIN/o_a")])?;
        self.prog("who_brace", Pie, Bare, &["search/who.c"], &[l_a.clone(), "-lwho".into(), rpath("${ORIGIN}/o_b")])?;
        self.prog("who_plain", Pie, Bare, &["search/who.c"], &[l_a, "-lwho".into()])?;

        self.glibc_programs()?;
        self.bad_inputs()
    }

    /// Ordinary C and C++ programs and libraries against glibc
    /// (`tests/fixtures/glibc/`), built with the arch's gcc/g++ into
    /// `glibc/`, finding their libraries through `RUNPATH=$ORIGIN`. aarch64
    /// links against the cross glibc and libstdc++; they run against
    /// Debian's real arm64 ones in `target/sysroot/arm64` (same ABI).
    fn glibc_programs(&mut self) -> Result<(), String> {
        let src = self.src.join("glibc");
        let out = self.out.join("glibc");
        fs::create_dir_all(&out).map_err(|e| format!("create {}: {e}", out.display()))?;
        let cc = self.arch.cc();
        let cxx = cc.strip_suffix("gcc").map(|p| format!("{p}g++")).ok_or("no g++ beside gcc")?;
        // (compiler, output, sources, extra flags); libraries first.
        let lib = |name: &str| -> Vec<String> { vec!["-fPIC".into(), "-shared".into(), format!("-Wl,-soname,{name}")] };
        let prog = || -> Vec<String> { vec!["-Wl,--enable-new-dtags".into(), "-Wl,-rpath,$ORIGIN".into(), format!("-L{}", out.display())] };
        let plugin = |name: &str, defs: &[&str]| -> Vec<String> {
            let mut v = lib(&format!("lib{name}.so"));
            v.push(format!("-DNAME={name}"));
            v.extend(defs.iter().map(|d| d.to_string()));
            v
        };
        let ver_map = format!("-Wl,--version-script={}", src.join("plugin_ver.map").display());
        let jobs: Vec<(&str, &str, Vec<&str>, Vec<String>)> = vec![
            (cc, "libtlsthreads.so", vec!["libtlsthreads.c"], lib("libtlsthreads.so")),
            (cc, "threads", vec!["threads.c"], [prog(), vec!["-ltlsthreads".into()]].concat()),
            (&cxx, "libcxxthrow.so", vec!["libcxxthrow.cc"], lib("libcxxthrow.so")),
            (&cxx, "cxx", vec!["cxx.cc"], [prog(), vec!["-lcxxthrow".into()]].concat()),
            (cc, "libplug_a.so", vec!["plugin.c"], plugin("plug_a", &["-DPLUG_A"])),
            (cc, "libplugdep.so", vec!["plugin.c"], plugin("plugdep", &["-DPLUGDEP"])),
            (
                cc,
                "libplug_b.so",
                vec!["plugin.c"],
                [
                    plugin("plug_b", &["-DPLUG_B"]),
                    vec![format!("-L{}", out.display()), "-lplugdep".into(), "-Wl,--enable-new-dtags".into(), "-Wl,-rpath,$ORIGIN".into()],
                ]
                .concat(),
            ),
            (cc, "libplug_c.so", vec!["plugin.c"], plugin("plug_c", &[])),
            (cc, "libplug_ver.so", vec!["plugin.c"], [plugin("plug_ver", &["-DPLUG_VER"]), vec![ver_map]].concat()),
            (cc, "libplug_tls.so", vec!["plugin.c"], plugin("plug_tls", &["-DPLUG_TLS"])),
            (cc, "libplug_lazy.so", vec!["plugin.c"], plugin("plug_lazy", &["-DPLUG_LAZY", "-Wl,-z,lazy"])),
            (cc, "libnext.so", vec!["libnext.c"], lib("libnext.so")),
            (cc, "dlopen", vec!["dlopen.c"], [prog(), vec!["-rdynamic".into(), "-lnext".into()]].concat()),
            (cc, "libcopyifunc.so", vec!["libcopyifunc.c"], lib("libcopyifunc.so")),
            // ET_EXEC and non-PIC: copy relocations of the library's tables.
            (cc, "copyifunc", vec!["copyifunc.c"], [prog(), vec!["-fno-pic".into(), "-no-pie".into(), "-lcopyifunc".into()]].concat()),
            // A library's data reference to an IFUNC its program defines.
            (cc, "libifuncuser.so", vec!["libifuncuser.c"], lib("libifuncuser.so")),
            (cc, "ifuncexe", vec!["ifuncexe.c"], [prog(), vec!["-rdynamic".into(), "-lifuncuser".into()]].concat()),
            // Needs stub/libgone.so, which nothing provides at run time.
            (
                cc,
                "libneedsgone.so",
                vec!["libneedsgone.c"],
                [lib("libneedsgone.so"), vec![format!("-L{}", self.out.join("stub").display()), "-lgone".into()]].concat(),
            ),
            (cc, "dlerrors", vec!["dlerrors.c"], prog()),
            // Lazy binding: the program is linked against a stub that also
            // has lazy_gone, and runs with the library that has not.
            (cc, "stub/liblazy.so", vec!["liblazy.c"], [lib("liblazy.so"), vec!["-DSTUB_EXTRA".into(), "-Wl,-z,lazy".into()]].concat()),
            (cc, "liblazy.so", vec!["liblazy.c"], [lib("liblazy.so"), vec!["-Wl,-z,lazy".into()]].concat()),
            (cc, "liblazydl.so", vec!["liblazydl.c"], [lib("liblazydl.so"), vec!["-Wl,-z,lazy".into()]].concat()),
            (cc, "lazy", vec!["lazy.c"], [prog(), vec!["-llazy".into(), "-Wl,-z,lazy".into()]].concat()),
            (
                cc,
                "lazy_gone",
                vec!["lazy.c"],
                [
                    vec![format!("-L{}", out.join("stub").display())],
                    prog(),
                    vec!["-DCALL_GONE".into(), "-llazy".into(), "-Wl,-z,lazy".into()],
                ]
                .concat(),
            ),
            // First lazy bindings from signal handlers inside the loader.
            (cc, "libsigctor.so", vec!["libsigctor.c"], lib("libsigctor.so")),
            (cc, "sigplt", vec!["sigplt.c"], [prog(), vec!["-llazy".into(), "-Wl,-z,lazy".into()]].concat()),
            // LD_BIND_NOT: an IFUNC's resolver counts the resolutions.
            (cc, "libbindnot.so", vec!["libbindnot.c"], [lib("libbindnot.so"), vec!["-Wl,-z,lazy".into()]].concat()),
            (cc, "bindnot", vec!["bindnot.c"], [prog(), vec!["-lbindnot".into(), "-Wl,-z,lazy".into()]].concat()),
        ];
        fs::create_dir_all(out.join("stub")).map_err(|e| format!("create {}/stub: {e}", out.display()))?;
        for (compiler, name, srcs, extra) in jobs {
            let mut cmd = Command::new(compiler);
            cmd.args(["-O2", "-g0", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter", "-pthread"]);
            cmd.args(["-Wl,-z,noexecstack", "-Wl,--build-id=sha1"]);
            cmd.arg("-o").arg(out.join(name));
            for s in srcs {
                cmd.arg(src.join(s));
            }
            cmd.args(&extra);
            quiet(&mut cmd)?;
            self.count += 1;
        }
        Ok(())
    }

    /// Damaged copies of libsimple.so, each alone in its own directory, for
    /// `needsimple --library-path DIR`.
    fn bad_inputs(&mut self) -> Result<(), String> {
        let good = fs::read(self.out_path("libsimple.so")).map_err(|e| format!("read libsimple.so: {e}"))?;
        // Where the second PT_LOAD starts in the file: truncating there
        // leaves headers intact and segments past the end of the file.
        let second_load = second_load_offset(&good).ok_or("libsimple.so: fewer than two PT_LOADs")?;
        let mut wrong_class = good.clone();
        wrong_class[4] = 1; // EI_CLASS = ELFCLASS32
        let files: Vec<(&str, Vec<u8>)> = vec![
            ("bad_empty", Vec::new()),
            ("bad_short", good[..40].to_vec()),
            ("bad_phdrs", good[..100].to_vec()),
            ("bad_segments", good[..second_load].to_vec()),
            ("bad_class", wrong_class),
            // Longer than an ELF header, so it is refused as not ELF rather
            // than as too short.
            ("bad_text", b"/* GNU ld script: a text file where an ELF library is expected */\nINPUT(libsimple.so.1)\n".to_vec()),
        ];
        for (dir, bytes) in files {
            let path = self.out.join(dir).join("libsimple.so");
            self.ensure_parent(&path)?;
            fs::write(&path, bytes).map_err(|e| format!("write {}: {e}", path.display()))?;
            self.count += 1;
        }
        Ok(())
    }
}

/// `bad_arch/libsimple.so`: the other arch's libsimple.so.
fn bad_arch_inputs(root: &Path, arch: Arch) -> Result<(), String> {
    let other = match arch {
        Arch::X86_64 => Arch::Aarch64,
        Arch::Aarch64 => Arch::X86_64,
    };
    let from = fixture_dir(root, other).join("libsimple.so");
    if !from.exists() {
        eprintln!("xtask: note: {} missing, so {}/bad_arch/ is not built (run `cargo xtask fixtures`)", from.display(), arch.name());
        return Ok(());
    }
    let to = fixture_dir(root, arch).join("bad_arch/libsimple.so");
    fs::create_dir_all(to.parent().unwrap_or(root)).map_err(|e| e.to_string())?;
    fs::copy(&from, &to).map_err(|e| format!("copy {} to {}: {e}", from.display(), to.display()))?;
    Ok(())
}

/// The file offset of the second PT_LOAD of a little-endian ELF64 file.
fn second_load_offset(elf: &[u8]) -> Option<usize> {
    let u16_at = |o: usize| Some(u16::from_le_bytes(elf.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(elf.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(elf.get(o..o + 8)?.try_into().ok()?));
    let phoff = u64_at(0x20)? as usize;
    let phentsize = u16_at(0x36)? as usize;
    let phnum = u16_at(0x38)? as usize;
    let mut loads = (0..phnum).filter_map(|i| {
        let ph = phoff + i * phentsize;
        (u32_at(ph)? == 1).then(|| u64_at(ph + 8)).flatten()
    });
    loads.next()?;
    loads.next().map(|o| o as usize)
}

/// Runs a command without echoing it; on failure, the command line and its
/// output are the error. Warnings (output of a successful command) are
/// passed through.
fn quiet(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{}: {e}", util::describe(cmd)))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("{} failed: {}\n{stderr}", util::describe(cmd), out.status));
    }
    if !stderr.trim().is_empty() {
        eprintln!("+ {}\n{stderr}", util::describe(cmd));
    }
    Ok(())
}
