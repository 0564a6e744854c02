//! Test harness shared by the integration tests.
//!
//! A test names a fixture program (built by `cargo xtask fixtures` into
//! `target/fixtures/<arch>/`) and the output it must produce, written by
//! hand from what the program prints. [`on_both_arches`] then runs it, on
//! x86_64 and on aarch64 (under `qemu-aarch64`), in every applicable
//! [`Mode`]:
//!
//! * [`Mode::GlibcInterp`]: the program as built, its `PT_INTERP` being
//!   glibc's loader (the reference);
//! * [`Mode::GlibcDirect`]: glibc's loader run as a command,
//!   `ld.so [OPTIONS] PROGRAM ARGS` (the reference for loader options);
//! * [`Mode::CahDirect`]: `ld-cah.so [OPTIONS] PROGRAM ARGS`;
//! * [`Mode::CahInterp`]: a copy of the program whose `PT_INTERP` is
//!   ld-cah.so (`patchelf --set-interpreter`), in a scratch directory that
//!   mirrors the fixture directory with symlinks so `$ORIGIN` still works.
//!
//! A run with loader options only has the two direct modes.
//!
//! Expected text may contain `{prog}` (the program path as that mode passes
//! it, i.e. `argv[0]`) and `{dir}` (the fixture directory).
//!
//! Two environment variables narrow a run, for working on one half at a
//! time; each prints a note saying what it left out:
//! `CAH_TESTS_ARCH=x86_64|aarch64` and `CAH_TESTS_ONLY=glibc|ld-cah`.
//! A third, `CAH_TESTS_BIND_NOW=1`, gives every run (reference included)
//! `LD_BIND_NOW=1`: `cargo xtask test` runs the real-program corpus a
//! second time that way, so eager and lazy binding are both covered.

use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// An architecture the fixtures are built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];

    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// glibc's loader for this arch, as a host path.
    pub fn glibc_ld_so(self) -> &'static str {
        match self {
            Arch::X86_64 => "/lib64/ld-linux-x86-64.so.2",
            Arch::Aarch64 => concat!(env!("CARGO_MANIFEST_DIR"), "/../target/glibc-dbg/bookworm_arm64/lib/ld-linux-aarch64.so.1"),
        }
    }

    /// The command prefix that runs a program of this arch here (with
    /// [`AARCH64_SYSROOT`] on aarch64).
    pub fn runner(self) -> Vec<String> {
        match self {
            Arch::X86_64 => Vec::new(),
            Arch::Aarch64 => vec!["qemu-aarch64".into(), "-L".into(), AARCH64_SYSROOT.into()],
        }
    }

    /// Debian's multiarch triplet (`lib/<triplet>/libc.so.6`).
    pub fn triplet(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-linux-gnu",
            Arch::Aarch64 => "aarch64-linux-gnu",
        }
    }

    /// The file name of glibc's loader.
    pub fn ld_so_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "ld-linux-x86-64.so.2",
            Arch::Aarch64 => "ld-linux-aarch64.so.1",
        }
    }

    /// The C compiler for programs of this arch.
    pub fn cc(self) -> &'static str {
        match self {
            Arch::X86_64 => "gcc",
            Arch::Aarch64 => "aarch64-linux-gnu-gcc",
        }
    }

    /// A command that starts `program` (a loader, or a program) of this
    /// arch here: itself on x86_64, under `qemu-aarch64 -L sysroot` on
    /// aarch64 (qemu then resolves absolute paths under `sysroot` first).
    pub fn command(self, sysroot: &Path, program: &Path) -> Command {
        match self {
            Arch::X86_64 => Command::new(program),
            Arch::Aarch64 => {
                let mut c = Command::new("qemu-aarch64");
                c.arg("-L").arg(sysroot).arg(program);
                c
            }
        }
    }
}

/// A Debian glibc build (libc6 with its debug info) that `cargo xtask
/// glibc-layouts --check` unpacked under `target/glibc-dbg/<name>`, e.g.
/// `trixie_amd64`.
pub struct GlibcBuild {
    pub arch: Arch,
    /// The unpacked tree, the sysroot of its programs.
    pub tree: PathBuf,
    /// The directory of its `libc.so.6` (bookworm's packages put it under
    /// /lib, trixie's, merged /usr, under /usr/lib).
    pub libdir: PathBuf,
}

impl GlibcBuild {
    /// Build `name` of `arch`, or why it cannot be used.
    pub fn find(name: &str, arch: Arch) -> Result<GlibcBuild, String> {
        let tree = root().join("target/glibc-dbg").join(name);
        let libdir = ["usr/lib", "lib"].iter().map(|d| tree.join(d).join(arch.triplet())).find(|d| d.join("libc.so.6").exists());
        match libdir {
            Some(libdir) => Ok(GlibcBuild { arch, tree, libdir }),
            None => Err(format!("{}: no libc.so.6: run `cargo xtask glibc-layouts --check`", tree.display())),
        }
    }

    /// The build's own loader, the reference.
    pub fn ld_so(&self) -> PathBuf {
        self.libdir.join(self.arch.ld_so_name())
    }

    /// A command that starts `loader` (the build's own or ld-cah) against
    /// this build: natively, or under qemu with the tree as its sysroot.
    pub fn command(&self, loader: &Path) -> Command {
        self.arch.command(&self.tree, loader)
    }
}

/// Real Debian arm64 glibc (the current bookworm build, unpacked by `cargo xtask
/// glibc-layouts`, which `cargo xtask test` runs); qemu-aarch64 resolves
/// absolute paths (the programs' `PT_INTERP`, `/lib/...`) under it first.
/// Not the cross glibc of `libc6-dev-arm64-cross`: that is another build,
/// for which there is no debug info and so no layout table.
pub const AARCH64_SYSROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/glibc-dbg/bookworm_arm64");

/// How a fixture is started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    GlibcInterp,
    GlibcDirect,
    CahDirect,
    CahInterp,
}

impl Mode {
    pub fn is_cah(self) -> bool {
        matches!(self, Mode::CahDirect | Mode::CahInterp)
    }

    pub fn describe(self) -> &'static str {
        match self {
            Mode::GlibcInterp => "glibc's ld.so as PT_INTERP (reference)",
            Mode::GlibcDirect => "glibc's ld.so run directly (reference)",
            Mode::CahDirect => "ld-cah.so run directly",
            Mode::CahInterp => "ld-cah.so as PT_INTERP",
        }
    }
}

/// The workspace root: the parent of this crate's directory.
pub fn root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(Path::to_path_buf).unwrap_or(here)
}

/// Where `cargo xtask build` puts ld-cah.so for `arch`.
pub fn loader_path(arch: Arch) -> PathBuf {
    root().join("target/ld-cah").join(arch.name()).join("ld-cah.so")
}

/// `loader_path(arch)`, failing the test with the command to run if the
/// loader has not been built.
pub fn built_loader(arch: Arch) -> PathBuf {
    let p = loader_path(arch);
    assert!(p.exists(), "{} is missing: run `cargo xtask build`", p.display());
    p
}

/// The host tool `target/release/cah`, failing the test with the command
/// to run if it has not been built.
pub fn built_cah() -> PathBuf {
    let p = root().join("target/release/cah");
    assert!(p.exists(), "{} is missing: run `cargo xtask build`", p.display());
    p
}

/// `CAH_TESTS_BIND_NOW=1` (set by `cargo xtask test` for its second pass
/// over the real-program corpus): every run, glibc's reference and
/// ld-cah's alike, gets `LD_BIND_NOW=1`, so both binding modes are
/// covered. `None` when unset (PLT slots are then bound lazily).
pub fn bind_now_env() -> Option<(&'static str, &'static str)> {
    std::env::var_os("CAH_TESTS_BIND_NOW").filter(|v| !v.is_empty()).map(|_| ("LD_BIND_NOW", "1"))
}

/// Runs `cmd` in a minimal environment (`PATH`, `LC_ALL=C` only, and
/// [`bind_now_env`]) and returns its stdout, stderr and exit status.
pub fn run_clean(cmd: &mut std::process::Command) -> (String, String, Option<i32>) {
    cmd.env_clear().env("LC_ALL", "C").env("PATH", "/usr/bin:/bin");
    if let Some((k, v)) = bind_now_env() {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("spawn");
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned(), out.status.code())
}

/// A fixture run against other glibc builds (see [`GlibcBuild`]): under
/// each build's own loader, the reference, and under ld-cah, both as
/// `LOADER --library-path LIBDIR ARGS...` in a clean environment
/// ([`run_clean`]). `args` gives the program and its arguments for an
/// arch; `works` says whether the reference run is the expected one.
/// Fails the test with every build that is missing or differs.
pub fn same_as_glibc_builds(
    builds: &[(Arch, &str)],
    args: impl Fn(Arch) -> Vec<PathBuf>,
    works: impl Fn(&(String, String, Option<i32>)) -> bool,
) {
    let mut failures = Vec::new();
    for &(arch, build) in builds {
        let g = match GlibcBuild::find(build, arch) {
            Ok(g) => g,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        let start = |loader: &Path| {
            let mut c = g.command(loader);
            c.arg("--library-path").arg(&g.libdir).args(args(arch));
            run_clean(&mut c)
        };
        let reference = start(&g.ld_so());
        if !works(&reference) {
            failures.push(format!("{build}: glibc's own loader does not run the fixture: {reference:?}"));
            continue;
        }
        let cah = start(&built_loader(arch));
        if cah != reference {
            failures.push(format!("{build}: ld-cah differs from glibc's loader:\n  glibc  {reference:?}\n  ld-cah {cah:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Fails the test unless it runs as root (CI does).
pub fn need_root() {
    let uid = Command::new("id").arg("-u").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&uid.stdout).trim(), "0", "this test needs root (CI runs as root)");
}

/// Sets the permission bits of `path`, failing the test if it cannot.
pub fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// Where `cargo xtask fixtures` puts the fixtures of `arch`.
pub fn fixture_dir(arch: Arch) -> PathBuf {
    root().join("target/fixtures").join(arch.name())
}

/// What one run of a program did.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub stdout: String,
    pub stderr: String,
    /// Exit status, if it exited.
    pub status: Option<i32>,
    /// Terminating signal, if killed by one (or timed out: SIGKILL).
    pub signal: Option<i32>,
    pub timed_out: bool,
    /// The command line, for messages.
    pub command: String,
}

impl Outcome {
    fn status_text(&self) -> String {
        match (self.status, self.signal, self.timed_out) {
            (_, _, true) => "killed after timing out".into(),
            (Some(s), _, _) => format!("exit status {s}"),
            (None, Some(sig), _) => format!("killed by signal {sig}"),
            (None, None, _) => "no status".into(),
        }
    }

    /// A report of everything the run did, for failure messages.
    pub fn report(&self) -> String {
        format!(
            "    command: {}\n    result:  {}\n    stdout:\n{}    stderr:\n{}",
            self.command,
            self.status_text(),
            indent(&self.stdout),
            indent(&self.stderr)
        )
    }
}

fn indent(s: &str) -> String {
    if s.is_empty() {
        return "      (empty)\n".into();
    }
    let mut out = String::new();
    for line in s.split_inclusive('\n') {
        out.push_str("      | ");
        out.push_str(line);
    }
    if !out.ends_with('\n') {
        out.push_str(" (no newline at end)\n");
    }
    out
}

/// Fills a fresh work directory before a run (see [`Run::setup`]).
pub type Setup = fn(&Path) -> Result<(), String>;

/// One way of starting a fixture: program, arguments, environment and
/// loader options. Built with [`run`] and the methods below.
#[derive(Clone, Debug)]
pub struct Run {
    pub prog: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// glibc-style loader options, for the direct modes only.
    pub opts: Vec<String>,
    /// The program has no PT_INTERP (static): runs only as
    /// [`Mode::GlibcInterp`] (which is then the kernel running it) and
    /// [`Mode::CahDirect`].
    pub no_interp: bool,
    /// Only the direct modes, even without options (there is no program
    /// to patch, e.g. it does not exist).
    pub direct_only: bool,
    /// Only the ld-cah modes, because glibc's loader cannot run this (see
    /// [`Check::expect_cah_only`]): why.
    pub cah_only: Option<String>,
    /// `prog` is an installed program (see [`system`]), not a fixture.
    pub system: bool,
    /// aarch64 runs in the Debian sysroot ([`debian_sysroot`]) rather than
    /// [`AARCH64_SYSROOT`].
    pub debian: bool,
    /// The working directory (`{dir}`, `{work}`); default: the caller's.
    pub cwd: Option<String>,
    /// Fills a fresh work directory (`{work}`) before each run, for
    /// [`Check::same_as_glibc`].
    pub setup: Option<Setup>,
    /// How long a run may take, if not [`TIMEOUT`].
    pub timeout: Option<Duration>,
    /// Environment for the program only, never for qemu-user itself (see
    /// [`Run::guest_env`]).
    pub guest_env: Vec<(String, String)>,
}

/// A run of fixture `prog` (a path relative to the fixture directory).
pub fn run(prog: &str) -> Run {
    Run {
        prog: prog.into(),
        args: Vec::new(),
        env: Vec::new(),
        opts: Vec::new(),
        no_interp: false,
        direct_only: false,
        cah_only: None,
        system: false,
        debian: false,
        cwd: None,
        setup: None,
        timeout: None,
        guest_env: Vec::new(),
    }
}

/// A run of an installed program, by its absolute path on a Debian
/// system: on x86_64 the host's own file, on aarch64 the same path inside
/// the Debian arm64 sysroot (`cargo xtask sysroot`), run there under qemu.
pub fn system(path: &str) -> Run {
    let mut r = run(path);
    r.system = true;
    r.debian = true;
    r
}

/// The Debian bookworm arm64 root built by `cargo xtask sysroot`: real
/// Debian packages, with the glibc build ld-cah has a layout table for.
pub fn debian_sysroot() -> PathBuf {
    root().join("target/sysroot/arm64")
}

impl Run {
    pub fn args(mut self, args: &[&str]) -> Run {
        self.args.extend(args.iter().map(|s| s.to_string()));
        self
    }

    /// Sets an environment variable; `{dir}` in the value is the fixture
    /// directory. Nothing else is in the environment.
    pub fn env(mut self, key: &str, value: &str) -> Run {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The environment a case of a real program starts from, nothing of
    /// the caller's: `PATH=/usr/bin:/bin`, `LC_ALL=C`, `TZ=UTC` and
    /// `HOME={work}`.
    pub fn clean_env(self) -> Run {
        self.env("PATH", "/usr/bin:/bin").env("LC_ALL", "C").env("TZ", "UTC").env("HOME", "{work}")
    }

    /// Like [`Run::env`], but on aarch64 given to the program through
    /// `qemu-aarch64 -E`, so that qemu (a dynamically linked host program)
    /// does not act on it too: for `LD_TRACE_LOADED_OBJECTS`, which would
    /// make the host's loader list qemu's libraries instead of running it.
    pub fn guest_env(mut self, key: &str, value: &str) -> Run {
        self.guest_env.push((key.into(), value.into()));
        self
    }

    /// `LD_LIBRARY_PATH={dir}`: how most tests find their libraries (it
    /// works in every mode, `--library-path` only in the direct ones).
    pub fn lib_path(self) -> Run {
        self.env("LD_LIBRARY_PATH", "{dir}")
    }

    /// Loader options; `{dir}` is the fixture directory. Restricts the run
    /// to the direct modes.
    pub fn opts(mut self, opts: &[&str]) -> Run {
        self.opts.extend(opts.iter().map(|s| s.to_string()));
        self
    }

    pub fn no_interp(mut self) -> Run {
        self.no_interp = true;
        self
    }

    pub fn direct_only(mut self) -> Run {
        self.direct_only = true;
        self
    }

    /// On aarch64, run under the Debian sysroot (real arm64 glibc and
    /// libstdc++): for the glibc fixtures.
    pub fn debian_sysroot(mut self) -> Run {
        self.debian = true;
        self
    }

    /// Runs in directory `dir` (`{dir}` and `{work}` are substituted).
    pub fn cwd(mut self, dir: &str) -> Run {
        self.cwd = Some(dir.into());
        self
    }

    /// Each run gets a fresh work directory `{work}` that `f` fills first.
    pub fn setup(mut self, f: Setup) -> Run {
        self.setup = Some(f);
        self
    }

    /// Kills a run after `seconds` instead of [`TIMEOUT`] (for programs
    /// known to hang under ld-cah today, so that they fail fast).
    pub fn timeout(mut self, seconds: u64) -> Run {
        self.timeout = Some(Duration::from_secs(seconds));
        self
    }

    fn modes(&self) -> Vec<Mode> {
        let all = self.all_modes();
        if self.cah_only.is_some() {
            all.into_iter().filter(|m| m.is_cah()).collect()
        } else {
            all
        }
    }

    fn all_modes(&self) -> Vec<Mode> {
        if !self.opts.is_empty() || self.direct_only {
            vec![Mode::GlibcDirect, Mode::CahDirect]
        } else if self.no_interp {
            // The reference is the kernel running the program. glibc's
            // ld.so, given a static program, execve()s it, which fails
            // under qemu-user (no binfmt_misc here): not a reference.
            vec![Mode::GlibcInterp, Mode::CahDirect]
        } else {
            vec![Mode::GlibcInterp, Mode::GlibcDirect, Mode::CahDirect, Mode::CahInterp]
        }
    }
}

/// What the glibc side of an error case must do.
#[derive(Clone, Copy, Debug)]
pub enum GlibcFails {
    /// Exit with this status (127, or 1 for a missing symbol version).
    Status(i32),
    /// glibc's loader is not a reference here (it crashes, or accepts what
    /// ld-cah must refuse); the reason is written in the test.
    NotCompared(&'static str),
}

/// Test context for one arch; collects failures instead of panicking, so a
/// test reports every arch and mode that went wrong.
pub struct Check {
    pub arch: Arch,
    test: String,
    dir: PathBuf,
    loader: PathBuf,
    loader_ok: bool,
    run_glibc: bool,
    run_cah: bool,
    failures: Vec<String>,
    /// The work directory of the run in progress (`{work}`).
    work: Option<PathBuf>,
}

static SCRATCH_COUNTER: AtomicUsize = AtomicUsize::new(0);
static SCRATCH_SWEEP: std::sync::Once = std::sync::Once::new();

/// Removes scratch directories (`<prog>-<pid>-<n>`, kept when a check
/// failed) left by test processes that are no longer running, once they
/// are ten minutes old (so the last run's are still there to look at).
fn sweep_scratch() {
    SCRATCH_SWEEP.call_once(|| {
        for arch in Arch::ALL {
            let dir = root().join("target/cah-tests").join(arch.name());
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let pid = name.rsplit('-').nth(1).and_then(|p| p.parse::<u32>().ok());
                let old = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > Duration::from_secs(600));
                if let Some(pid) = pid {
                    if old && pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
                        let _ = std::fs::remove_dir_all(e.path());
                    }
                }
            }
        }
    });
}

/// How long one run may take (qemu on a busy two-core machine is slow).
pub const TIMEOUT: Duration = Duration::from_secs(60);

impl Check {
    /// The fixture directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Records a failure.
    pub fn fail(&mut self, msg: String) {
        self.failures.push(format!("[{} {}] {msg}", self.test, self.arch.name()));
    }

    fn subst(&self, s: &str, prog: &str) -> String {
        let s = s.replace("{dir}", &self.dir.display().to_string()).replace("{prog}", prog);
        match &self.work {
            Some(w) => s.replace("{work}", &w.display().to_string()),
            None => s,
        }
    }

    /// The host path of `r`'s program.
    fn program_path(&self, r: &Run) -> PathBuf {
        match (r.system, self.arch) {
            (true, Arch::X86_64) => PathBuf::from(&r.prog),
            (true, Arch::Aarch64) => debian_sysroot().join(r.prog.trim_start_matches('/')),
            (false, _) => self.dir.join(&r.prog),
        }
    }

    /// The command prefix that runs `r` on this arch.
    fn runner(&self, r: &Run) -> Vec<String> {
        match (self.arch, r.debian) {
            (Arch::Aarch64, true) => {
                vec!["qemu-aarch64".into(), "-L".into(), debian_sysroot().display().to_string()]
            }
            _ => self.arch.runner(),
        }
    }

    /// glibc's loader for `r`, as a host path.
    fn glibc_ld_so(&self, r: &Run) -> String {
        match (self.arch, r.debian) {
            (Arch::Aarch64, true) => debian_sysroot().join("lib/ld-linux-aarch64.so.1").display().to_string(),
            _ => self.arch.glibc_ld_so().into(),
        }
    }

    fn wanted(&self, mode: Mode) -> bool {
        if mode.is_cah() {
            self.run_cah
        } else {
            self.run_glibc
        }
    }

    /// Runs `r` in `mode`. Returns `None` (and records why) if the mode
    /// cannot run: ld-cah.so not built, patchelf failing.
    pub fn run_in(&mut self, mode: Mode, r: &Run) -> Option<(Outcome, String, Option<PathBuf>)> {
        if mode.is_cah() && !self.loader_ok {
            return None; // reported once by on_both_arches
        }
        let fixture = self.program_path(r);
        let mut scratch = None;
        let prog = match mode {
            Mode::CahInterp => match self.interp_copy(r) {
                Ok((dir, path)) => {
                    scratch = Some(dir);
                    path
                }
                Err(e) => {
                    self.fail(format!("{}: {}: {e}", r.prog, mode.describe()));
                    return None;
                }
            },
            _ => fixture.clone(),
        };
        let prog_s = prog.display().to_string();
        let mut argv: Vec<String> = self.runner(r);
        let mut env: Vec<(String, String)> = r.env.iter().map(|(k, v)| (k.clone(), self.subst(v, &prog_s))).collect();
        let bind_now = bind_now_env().filter(|(k, _)| !r.env.iter().chain(&r.guest_env).any(|(x, _)| x == k));
        for (k, v) in r.guest_env.iter().map(|(k, v)| (k.as_str(), v.as_str())).chain(bind_now) {
            let v = self.subst(v, &prog_s);
            if argv.is_empty() {
                env.push((k.to_string(), v));
            } else {
                argv.extend(["-E".to_string(), format!("{k}={v}")]);
            }
        }
        match mode {
            Mode::GlibcInterp | Mode::CahInterp => {}
            Mode::GlibcDirect => argv.push(self.glibc_ld_so(r)),
            Mode::CahDirect => argv.push(self.loader.display().to_string()),
        }
        if matches!(mode, Mode::GlibcDirect | Mode::CahDirect) {
            argv.extend(r.opts.iter().map(|o| self.subst(o, &prog_s)));
        }
        argv.push(prog_s.clone());
        argv.extend(r.args.iter().map(|a| if self.work.is_some() { self.subst(a, &prog_s) } else { a.clone() }));
        let cwd = r.cwd.as_ref().map(|d| PathBuf::from(self.subst(d, &prog_s)));
        Some((execute_in(&argv, &env, cwd.as_deref(), r.timeout), prog_s, scratch))
    }

    /// A copy of `r`'s program with ld-cah.so as its PT_INTERP, in a fresh
    /// scratch directory beside symlinks to everything else in the
    /// program's directory (for a fixture; an installed program is copied
    /// alone). Returns (scratch directory, program path).
    fn interp_copy(&self, r: &Run) -> Result<(PathBuf, PathBuf), String> {
        sweep_scratch();
        let n = SCRATCH_COUNTER.fetch_add(1, Ordering::Relaxed);
        let prog = &r.prog;
        let original = self.program_path(r);
        let name = original.file_name().and_then(|s| s.to_str()).ok_or("bad program name")?;
        let scratch = root().join("target/cah-tests").join(self.arch.name()).join(format!("{name}-{}-{n}", std::process::id()));
        if scratch.exists() {
            std::fs::remove_dir_all(&scratch).map_err(|e| format!("remove {}: {e}", scratch.display()))?;
        }
        std::fs::create_dir_all(&scratch).map_err(|e| format!("create {}: {e}", scratch.display()))?;
        let mirrored = original.parent().filter(|_| !r.system).unwrap_or(&self.dir);
        let entries = if r.system {
            Vec::new()
        } else {
            std::fs::read_dir(mirrored).map_err(|e| format!("read {}: {e}", mirrored.display()))?.collect::<Vec<_>>()
        };
        for entry in entries {
            let entry = entry.map_err(|e| e.to_string())?;
            if entry.file_name() == *name {
                continue;
            }
            std::os::unix::fs::symlink(entry.path(), scratch.join(entry.file_name()))
                .map_err(|e| format!("symlink in {}: {e}", scratch.display()))?;
        }
        let copy = scratch.join(name);
        std::fs::copy(&original, &copy).map_err(|e| format!("copy {prog}: {e}"))?;
        let out = Command::new("patchelf")
            .arg("--set-interpreter")
            .arg(&self.loader)
            .arg(&copy)
            .output()
            .map_err(|e| format!("patchelf: {e} (is the Debian package `patchelf` installed?)"))?;
        if !out.status.success() {
            return Err(format!("patchelf --set-interpreter failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok((scratch, copy))
    }

    /// Runs `r` in every applicable mode: stdout must be `stdout` and the
    /// exit status `status`, under glibc's loader and under ld-cah alike.
    pub fn expect(&mut self, r: &Run, stdout: &str, status: i32) {
        for mode in r.modes() {
            if !self.wanted(mode) {
                continue;
            }
            let Some((out, prog, scratch)) = self.run_in(mode, r) else { continue };
            let want = self.subst(stdout, &prog);
            if out.stdout == want && out.status == Some(status) && !out.timed_out {
                remove_scratch(scratch);
                continue;
            }
            let mut msg = format!("{}: {}: wrong result\n", r.prog, mode.describe());
            let _ = write!(msg, "  expected exit status {status} and stdout:\n{}", indent(&want));
            let _ = write!(msg, "  got:\n{}", out.report());
            if let Some(line) = first_difference(&want, &out.stdout) {
                let _ = writeln!(msg, "  first difference: {line}");
            }
            if let Some(s) = &scratch {
                let _ = writeln!(msg, "  (patched copy kept in {})", s.display());
            }
            if let Some(why) = &r.cah_only {
                let _ = writeln!(msg, "  (ld-cah only: glibc's loader cannot run this program: {why})");
            }
            self.fail(msg);
        }
    }

    /// Like [`Check::expect`], for a program glibc's loader cannot run
    /// (`why` says what it does instead), so only the ld-cah modes run.
    /// The expected output is still what the program's source prints.
    pub fn expect_cah_only(&mut self, r: &Run, stdout: &str, status: i32, why: &str) {
        let mut r = r.clone();
        r.cah_only = Some(why.into());
        self.expect(&r, stdout, status);
    }

    /// An input the loader must refuse. ld-cah: exit status 127, nothing on
    /// stdout, exactly one line on stderr, starting `ld-cah.so: error: `
    /// and containing every string of `mentions`. glibc: see [`GlibcFails`].
    pub fn expect_refused(&mut self, r: &Run, glibc: GlibcFails, mentions: &[&str]) {
        for mode in r.modes() {
            if !self.wanted(mode) {
                continue;
            }
            if !mode.is_cah() && matches!(glibc, GlibcFails::NotCompared(_)) {
                continue;
            }
            let Some((out, prog, scratch)) = self.run_in(mode, r) else { continue };
            let mut problems = Vec::new();
            if !out.stdout.is_empty() {
                problems.push("something was printed on stdout".to_string());
            }
            if mode.is_cah() {
                if out.status != Some(127) {
                    problems.push("the exit status is not 127".into());
                }
                let lines = out.stderr.matches('\n').count();
                if lines != 1 || !out.stderr.ends_with('\n') {
                    problems.push(format!("stderr has {lines} lines, not exactly one"));
                }
                if !out.stderr.starts_with("ld-cah.so: error: ") {
                    problems.push("stderr does not start with `ld-cah.so: error: `".into());
                }
                for m in mentions {
                    let m = self.subst(m, &prog);
                    if !out.stderr.contains(&m) {
                        problems.push(format!("stderr does not mention `{m}`"));
                    }
                }
            } else if let GlibcFails::Status(s) = glibc {
                if out.status != Some(s) {
                    problems.push(format!("the exit status is not {s}"));
                }
            }
            if problems.is_empty() {
                remove_scratch(scratch);
                continue;
            }
            let mut msg = format!("{}: {}: not refused as it must be\n", r.prog, mode.describe());
            for p in problems {
                let _ = writeln!(msg, "  - {p}");
            }
            if let GlibcFails::NotCompared(why) = glibc {
                let _ = writeln!(msg, "  (glibc's loader is no reference here: {why})");
            }
            msg.push_str(&out.report());
            if let Some(s) = &scratch {
                let _ = writeln!(msg, "  (patched copy kept in {})", s.display());
            }
            self.fail(msg);
        }
    }

    /// Runs `r` once in `mode` (if that half is enabled) and hands the
    /// outcome to `judge`, which returns the problems it found. For checks
    /// that are not a plain comparison (`--list`, `--help`).
    pub fn inspect(&mut self, mode: Mode, r: &Run, judge: impl FnOnce(&Outcome, &str) -> Vec<String>) {
        if !self.wanted(mode) {
            return;
        }
        let Some((out, _prog, scratch)) = self.run_in(mode, r) else { return };
        let problems = judge(&out, &self.dir.display().to_string());
        if problems.is_empty() {
            remove_scratch(scratch);
            return;
        }
        let mut msg = format!("{}: {}:\n", r.prog, mode.describe());
        for p in problems {
            let _ = writeln!(msg, "  - {p}");
        }
        msg.push_str(&out.report());
        self.fail(msg);
    }

    /// Whether the ld-cah half runs (loader present and not filtered out).
    pub fn cah_enabled(&self) -> bool {
        self.run_cah && self.loader_ok
    }

    pub fn glibc_enabled(&self) -> bool {
        self.run_glibc
    }
}

/// What the reference run (glibc's loader) must do for a comparison with
/// it to mean anything, and how outputs are normalised before comparing.
/// See [`Check::same_as_glibc`].
#[derive(Clone, Debug)]
pub struct Expect {
    status: i32,
    stdout_has: Vec<String>,
    normalise: Option<fn(&str) -> String>,
}

impl Expect {
    /// Every step of the reference run exits with `status`.
    pub fn status(status: i32) -> Expect {
        Expect { status, stdout_has: Vec::new(), normalise: None }
    }

    /// The reference's stdout (all steps together) contains `text`: proof
    /// that the program really did its work under glibc.
    pub fn stdout_has(mut self, text: &str) -> Expect {
        self.stdout_has.push(text.into());
        self
    }

    /// Applied to stdout and stderr of every run, after the paths that
    /// differ by mode are replaced by `{prog}`, `{scratch}`, `{work}`,
    /// `{dir}`: for what legitimately differs between runs (times, PIDs).
    pub fn normalise(mut self, f: fn(&str) -> String) -> Expect {
        self.normalise = Some(f);
        self
    }
}

/// The steps of one comparison run in one mode.
struct Transcript {
    /// (raw outcome, normalised stdout, normalised stderr) per step.
    steps: Vec<(Outcome, String, String)>,
    /// Directories to remove if the run is not kept for inspection.
    dirs: Vec<PathBuf>,
}

static WORK_COUNTER: AtomicUsize = AtomicUsize::new(0);

impl Check {
    /// Runs `r` under glibc's loader (the reference, [`Mode::GlibcInterp`])
    /// and under ld-cah ([`Mode::CahDirect`] and [`Mode::CahInterp`]);
    /// stdout, stderr and exit status must be the same. glibc's output is
    /// the expected value; `expect` says what the reference itself must do.
    pub fn same_as_glibc(&mut self, r: &Run, expect: &Expect) {
        let name = r.prog.clone();
        self.same_as_glibc_steps(&name, std::slice::from_ref(r), expect);
    }

    /// Like [`Check::same_as_glibc`] for a sequence of runs sharing one
    /// fresh work directory `{work}` (set up by the first step's
    /// [`Run::setup`]), each started in the mode under test (`git init`,
    /// `git add`, ... each under ld-cah). The first step that differs is
    /// reported.
    pub fn same_as_glibc_steps(&mut self, name: &str, steps: &[Run], expect: &Expect) {
        if self.arch == Arch::Aarch64 && steps.iter().any(|s| s.debian) && !debian_sysroot().join("lib/ld-linux-aarch64.so.1").exists() {
            self.fail(format!("{name}: the Debian arm64 sysroot is missing at {}: run `cargo xtask sysroot`", debian_sysroot().display()));
            return;
        }
        if !self.run_glibc {
            eprintln!(
                "note: {} {}: {name}: glibc's run is the expected value here, so it runs despite CAH_TESTS_ONLY",
                self.test,
                self.arch.name()
            );
        }
        let Some(reference) = self.transcript(Mode::GlibcInterp, name, steps, expect) else { return };
        let mut problems = Vec::new();
        for (i, (out, _, _)) in reference.steps.iter().enumerate() {
            if out.status != Some(expect.status) || out.timed_out {
                problems.push(format!("step {} of {}: {} (expected exit status {})", i + 1, steps.len(), out.status_text(), expect.status));
            }
        }
        let all_stdout: String = reference.steps.iter().map(|(o, _, _)| o.stdout.as_str()).collect();
        for text in &expect.stdout_has {
            if !all_stdout.contains(text.as_str()) {
                problems.push(format!("stdout does not contain {text:?}"));
            }
        }
        if !problems.is_empty() {
            let mut msg = format!(
                "{name}: the reference run under {} does not do what this test expects, so there is \
                 nothing to compare ld-cah with (a problem of this machine or of the test, not of ld-cah):\n",
                Mode::GlibcInterp.describe()
            );
            for p in problems {
                let _ = writeln!(msg, "  - {p}");
            }
            for (out, _, _) in &reference.steps {
                msg.push_str(&brief_report(out));
            }
            self.fail(msg);
            return;
        }
        if !self.cah_enabled() {
            remove_dirs(&reference.dirs);
            return;
        }
        for mode in [Mode::CahDirect, Mode::CahInterp] {
            let Some(got) = self.transcript(mode, name, steps, expect) else { continue };
            let mut msg = String::new();
            for (i, ((ro, rout, rerr), (o, out, err))) in reference.steps.iter().zip(&got.steps).enumerate() {
                let mut diffs = Vec::new();
                if o.timed_out || (ro.status, ro.signal) != (o.status, o.signal) {
                    diffs.push(format!("exit: glibc {}, ld-cah {}", ro.status_text(), o.status_text()));
                }
                if rout != out {
                    diffs.push(format!("stdout differs (- glibc, + ld-cah):\n{}", line_diff(rout, out)));
                }
                if rerr != err {
                    diffs.push(format!("stderr differs (- glibc, + ld-cah):\n{}", line_diff(rerr, err)));
                }
                if diffs.is_empty() {
                    continue;
                }
                let _ = writeln!(
                    msg,
                    "{name}: {}: differs from glibc's loader (the reference){}",
                    mode.describe(),
                    if steps.len() > 1 { format!(", at step {} of {}", i + 1, steps.len()) } else { String::new() }
                );
                for d in diffs {
                    let _ = writeln!(msg, "  - {d}");
                }
                let _ = writeln!(msg, "  under ld-cah:");
                msg.push_str(&brief_report(o));
                let _ = writeln!(msg, "  reference, {}:", Mode::GlibcInterp.describe());
                msg.push_str(&brief_report(ro));
                break;
            }
            if msg.is_empty() {
                remove_dirs(&got.dirs);
            } else {
                for d in &got.dirs {
                    let _ = writeln!(msg, "  (kept {})", d.display());
                }
                self.fail(msg);
            }
        }
        remove_dirs(&reference.dirs);
    }

    /// Runs `steps` in `mode` in a fresh work directory.
    fn transcript(&mut self, mode: Mode, name: &str, steps: &[Run], expect: &Expect) -> Option<Transcript> {
        sweep_scratch();
        let n = WORK_COUNTER.fetch_add(1, Ordering::Relaxed);
        let label: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect::<String>();
        let label = label.trim_start_matches('_');
        let work = root().join("target/cah-tests").join(self.arch.name()).join(format!("work_{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&work);
        if let Err(e) = std::fs::create_dir_all(&work) {
            self.fail(format!("{name}: create {}: {e}", work.display()));
            return None;
        }
        if let Some(setup) = steps.first().and_then(|s| s.setup) {
            if let Err(e) = setup(&work) {
                self.fail(format!("{name}: setting up {}: {e}", work.display()));
                return None;
            }
        }
        let mut t = Transcript { steps: Vec::new(), dirs: vec![work.clone()] };
        self.work = Some(work.clone());
        for step in steps {
            let Some((out, prog, scratch)) = self.run_in(mode, step) else {
                self.work = None;
                return None;
            };
            let mut subst = vec![(prog, "{prog}".to_string())];
            if let Some(s) = &scratch {
                subst.push((s.display().to_string(), "{scratch}".into()));
                t.dirs.push(s.clone());
            }
            subst.push((work.display().to_string(), "{work}".into()));
            subst.push((self.dir.display().to_string(), "{dir}".into()));
            let clean = |text: &str| {
                let mut text = text.to_string();
                for (from, to) in &subst {
                    text = text.replace(from.as_str(), to);
                }
                match expect.normalise {
                    Some(f) => f(&text),
                    None => text,
                }
            };
            let (stdout, stderr) = (clean(&out.stdout), clean(&out.stderr));
            t.steps.push((out, stdout, stderr));
        }
        self.work = None;
        Some(t)
    }
}

/// The lines that differ between `want` and `got` (a longest common
/// subsequence diff), `-` for `want`'s and `+` for `got`'s, indented; at
/// most 40 lines of it.
fn line_diff(want: &str, got: &str) -> String {
    let a: Vec<&str> = want.lines().collect();
    let b: Vec<&str> = got.lines().collect();
    let mut out = Vec::new();
    if a.len().saturating_mul(b.len()) > 4_000_000 {
        out.push(format!("      {}", first_difference(want, got).unwrap_or_default()));
    } else {
        // lcs[i][j]: length of the LCS of a[i..] and b[j..].
        let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
        for i in (0..a.len()).rev() {
            for j in (0..b.len()).rev() {
                lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            if i < a.len() && j < b.len() && a[i] == b[j] {
                i += 1;
                j += 1;
            } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
                out.push(format!("      - {}", a[i]));
                i += 1;
            } else {
                out.push(format!("      + {}", b[j]));
                j += 1;
            }
        }
        if want.ends_with('\n') != got.ends_with('\n') {
            out.push("      (they differ in the newline at the end)".into());
        }
    }
    let total = out.len();
    let mut text: String = out.into_iter().take(40).map(|l| l + "\n").collect();
    if total > 40 {
        let _ = writeln!(text, "      [... {} more lines of difference]", total - 40);
    }
    text.trim_end_matches('\n').to_string()
}

/// [`Outcome::report`], with long outputs cut to their first lines.
fn brief_report(out: &Outcome) -> String {
    const LINES: usize = 40;
    let cut = |s: &str| -> String {
        let n = s.lines().count();
        if n <= LINES {
            return s.to_string();
        }
        let mut head: String = s.split_inclusive('\n').take(LINES).collect();
        let _ = writeln!(head, "[... {} more lines]", n - LINES);
        head
    };
    let short = Outcome { stdout: cut(&out.stdout), stderr: cut(&out.stderr), ..out.clone() };
    short.report()
}

fn remove_dirs(dirs: &[PathBuf]) {
    for d in dirs {
        let _ = std::fs::remove_dir_all(d);
    }
}

fn remove_scratch(scratch: Option<PathBuf>) {
    if let Some(dir) = scratch {
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn first_difference(want: &str, got: &str) -> Option<String> {
    let mut w = want.lines();
    let mut g = got.lines();
    for n in 1.. {
        match (w.next(), g.next()) {
            (None, None) => return None,
            (a, b) if a == b => continue,
            (a, b) => return Some(format!("line {n}: expected {:?}, got {:?}", a.unwrap_or("<end>"), b.unwrap_or("<end>"))),
        }
    }
    None
}

/// Runs `argv` with exactly `env` as its environment, no stdin, and a
/// timeout; captures everything.
pub fn execute(argv: &[String], env: &[(String, String)]) -> Outcome {
    execute_in(argv, env, None, None)
}

/// [`execute`] in directory `cwd`, killed after `timeout` (default
/// [`TIMEOUT`]).
pub fn execute_in(argv: &[String], env: &[(String, String)], cwd: Option<&Path>, timeout: Option<Duration>) -> Outcome {
    let timeout = timeout.unwrap_or(TIMEOUT);
    let mut command = String::new();
    if let Some(dir) = cwd {
        let _ = write!(command, "cd {} && ", shell_quote(&dir.display().to_string()));
    }
    for (k, v) in env {
        let _ = write!(command, "{k}={} ", shell_quote(v));
    }
    command.push_str(&argv.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" "));
    let mut out = Outcome { command, ..Outcome::default() };
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]).env_clear().envs(env.iter().map(|(k, v)| (k, v)));
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // A program a test has just written may still be open for writing in a
    // child that another test's thread forked meanwhile (until that child
    // execs and the descriptor closes): the kernel refuses to run it with
    // ETXTBSY (26) for that moment. Wait it out, for at most a second.
    let mut busy = 0;
    let mut child = loop {
        match cmd.spawn() {
            Ok(c) => break c,
            Err(e) if e.raw_os_error() == Some(26) && busy < 50 => {
                busy += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                out.stderr = format!("(harness) cannot start {}: {e}", argv[0]);
                return out;
            }
        }
    };
    let mut so = child.stdout.take();
    let mut se = child.stderr.take();
    let t_out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = so.as_mut() {
            let _ = s.read_to_end(&mut buf);
        }
        buf
    });
    let t_err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = se.as_mut() {
            let _ = s.read_to_end(&mut buf);
        }
        buf
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                out.timed_out = true;
                break child.wait().ok();
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(_) => break None,
        }
    };
    if let Some(st) = status {
        use std::os::unix::process::ExitStatusExt;
        out.status = st.code();
        out.signal = st.signal();
    }
    out.stdout = String::from_utf8_lossy(&t_out.join().unwrap_or_default()).into_owned();
    out.stderr = String::from_utf8_lossy(&t_err.join().unwrap_or_default()).into_owned();
    out
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-=:,+".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The newest modification time of the fixture sources (and their build
/// recipe), to catch a fixture tree older than its sources.
fn newest_source() -> Option<std::time::SystemTime> {
    fn walk(dir: &Path, newest: &mut Option<std::time::SystemTime>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, newest);
            } else if p.extension().is_some_and(|x| x == "md") {
                continue; // documentation
            } else if let Ok(t) = e.metadata().and_then(|m| m.modified()) {
                if newest.is_none_or(|n| t > n) {
                    *newest = Some(t);
                }
            }
        }
    }
    let mut newest = None;
    walk(&root().join("tests/fixtures"), &mut newest);
    if let Ok(t) = std::fs::metadata(root().join("xtask/src/fixtures.rs")).and_then(|m| m.modified()) {
        if newest.is_none_or(|n| t > n) {
            newest = Some(t);
        }
    }
    newest
}

fn env_filter(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Runs `body` for each arch (x86_64, then aarch64) and panics at the end
/// with every failure of every arch and mode. Missing fixtures or a missing
/// ld-cah.so are failures, never skips.
pub fn on_both_arches(test: &str, body: impl Fn(&mut Check)) {
    on_arches(test, &Arch::ALL, body)
}

/// [`on_both_arches`] for the arches in `arches` only (cases whose
/// programs exist on one arch only).
pub fn on_arches(test: &str, arches: &[Arch], body: impl Fn(&mut Check)) {
    let only_arch = env_filter("CAH_TESTS_ARCH");
    let only = env_filter("CAH_TESTS_ONLY");
    let (run_glibc, run_cah) = match only.as_deref() {
        None => (true, true),
        Some("glibc") => (true, false),
        Some("ld-cah") | Some("cah") => (false, true),
        Some(other) => panic!("CAH_TESTS_ONLY={other}: expected `glibc` or `ld-cah`"),
    };
    let mut failures = Vec::new();
    let mut ran = 0;
    for &arch in arches {
        if let Some(a) = &only_arch {
            if a != arch.name() {
                eprintln!("note: {test}: {} not run (CAH_TESTS_ARCH={a})", arch.name());
                continue;
            }
        }
        if !run_glibc {
            eprintln!("note: {test} {}: glibc reference not run (CAH_TESTS_ONLY=ld-cah)", arch.name());
        }
        if !run_cah {
            eprintln!("note: {test} {}: ld-cah not run (CAH_TESTS_ONLY=glibc)", arch.name());
        }
        ran += 1;
        let dir = fixture_dir(arch);
        let loader = loader_path(arch);
        let mut c = Check {
            arch,
            test: test.into(),
            dir: dir.clone(),
            loader: loader.clone(),
            loader_ok: loader.is_file(),
            run_glibc,
            run_cah,
            failures: Vec::new(),
            work: None,
        };
        if !dir.is_dir() {
            c.fail(format!("fixtures not found at {}: run `cargo xtask fixtures`", dir.display()));
            failures.append(&mut c.failures);
            continue;
        }
        if let (Some(src), Ok(built)) = (newest_source(), std::fs::metadata(&dir).and_then(|m| m.modified())) {
            if src > built {
                c.fail(format!("fixtures in {} are older than their sources: run `cargo xtask fixtures`", dir.display()));
            }
        }
        if run_cah && !c.loader_ok {
            c.fail(format!("ld-cah.so not found at {}: run `cargo xtask build`", loader.display()));
        }
        body(&mut c);
        failures.append(&mut c.failures);
    }
    if ran == 0 {
        let names: Vec<&str> = arches.iter().map(|a| a.name()).collect();
        panic!("{test}: CAH_TESTS_ARCH={only_arch:?} matches no arch of this test ({})", names.join(", "));
    }
    if !failures.is_empty() {
        panic!("{} failure(s):\n\n{}", failures.len(), failures.join("\n"));
    }
}

/// Just enough ELF reading for tests that check what a fixture contains.
pub mod elf {
    use std::path::Path;

    pub const DT_NEEDED: u64 = 1;
    pub const DT_RELR: u64 = 36;

    /// The (d_tag, d_val) entries of a little-endian ELF64 file's
    /// PT_DYNAMIC, up to DT_NULL.
    pub fn dynamic_tags(path: &Path) -> Result<Vec<(u64, u64)>, String> {
        let data = std::fs::read(path).map_err(|e| format!("read: {e}"))?;
        let u16_at = |o: usize| data.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
        let u32_at = |o: usize| data.get(o..o + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        let u64_at = |o: usize| data.get(o..o + 8).map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]));
        if data.get(..5) != Some(&b"\x7fELF\x02"[..]) {
            return Err("not an ELF64 file".into());
        }
        let bad = || "truncated ELF header".to_string();
        let phoff = u64_at(0x20).ok_or_else(bad)? as usize;
        let phentsize = u16_at(0x36).ok_or_else(bad)?;
        let phnum = u16_at(0x38).ok_or_else(bad)?;
        for i in 0..phnum {
            let ph = phoff + i * phentsize;
            if u32_at(ph) != Some(2) {
                continue; // not PT_DYNAMIC
            }
            let off = u64_at(ph + 8).ok_or_else(bad)? as usize;
            let size = u64_at(ph + 32).ok_or_else(bad)? as usize;
            let mut tags = Vec::new();
            for e in (off..off + size).step_by(16) {
                let (Some(tag), Some(val)) = (u64_at(e), u64_at(e + 8)) else { break };
                if tag == 0 {
                    break;
                }
                tags.push((tag, val));
            }
            return Ok(tags);
        }
        Ok(Vec::new())
    }
}
