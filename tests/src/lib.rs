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
            Arch::Aarch64 => concat!(env!("CARGO_MANIFEST_DIR"), "/../target/glibc-dbg/2.36-9+deb12u14_arm64/lib/ld-linux-aarch64.so.1"),
        }
    }

    /// The command prefix that runs a program of this arch here.
    fn runner(self) -> Vec<String> {
        match self {
            Arch::X86_64 => Vec::new(),
            Arch::Aarch64 => vec!["qemu-aarch64".into(), "-L".into(), AARCH64_SYSROOT.into()],
        }
    }
}

/// Real Debian arm64 glibc (2.36-9+deb12u14, unpacked by `cargo xtask
/// glibc-layouts`, which `cargo xtask test` runs); qemu-aarch64 resolves
/// absolute paths (the programs' `PT_INTERP`, `/lib/...`) under it first.
/// Not the cross glibc of `libc6-dev-arm64-cross`: that is another build,
/// for which there is no debug info and so no layout table.
pub const AARCH64_SYSROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/glibc-dbg/2.36-9+deb12u14_arm64");

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
    }
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
const TIMEOUT: Duration = Duration::from_secs(60);

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
        s.replace("{dir}", &self.dir.display().to_string()).replace("{prog}", prog)
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
        let fixture = self.dir.join(&r.prog);
        let mut scratch = None;
        let prog = match mode {
            Mode::CahInterp => match self.interp_copy(&r.prog) {
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
        let mut argv: Vec<String> = self.arch.runner();
        match mode {
            Mode::GlibcInterp | Mode::CahInterp => {}
            Mode::GlibcDirect => argv.push(self.arch.glibc_ld_so().into()),
            Mode::CahDirect => argv.push(self.loader.display().to_string()),
        }
        if matches!(mode, Mode::GlibcDirect | Mode::CahDirect) {
            argv.extend(r.opts.iter().map(|o| self.subst(o, &prog_s)));
        }
        argv.push(prog_s.clone());
        argv.extend(r.args.iter().cloned());
        let env: Vec<(String, String)> =
            r.env.iter().map(|(k, v)| (k.clone(), self.subst(v, &prog_s))).collect();
        Some((execute(&argv, &env), prog_s, scratch))
    }

    /// A copy of fixture `prog` with ld-cah.so as its PT_INTERP, in a fresh
    /// scratch directory beside symlinks to everything else in the fixture
    /// directory. Returns (scratch directory, program path).
    fn interp_copy(&self, prog: &str) -> Result<(PathBuf, PathBuf), String> {
        sweep_scratch();
        let n = SCRATCH_COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = Path::new(prog).file_name().and_then(|s| s.to_str()).ok_or("bad program name")?;
        let scratch = root()
            .join("target/cah-tests")
            .join(self.arch.name())
            .join(format!("{name}-{}-{n}", std::process::id()));
        if scratch.exists() {
            std::fs::remove_dir_all(&scratch).map_err(|e| format!("remove {}: {e}", scratch.display()))?;
        }
        std::fs::create_dir_all(&scratch).map_err(|e| format!("create {}: {e}", scratch.display()))?;
        let entries =
            std::fs::read_dir(&self.dir).map_err(|e| format!("read {}: {e}", self.dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| e.to_string())?;
            if entry.file_name() == *name {
                continue;
            }
            std::os::unix::fs::symlink(entry.path(), scratch.join(entry.file_name()))
                .map_err(|e| format!("symlink in {}: {e}", scratch.display()))?;
        }
        let copy = scratch.join(name);
        std::fs::copy(self.dir.join(prog), &copy).map_err(|e| format!("copy {prog}: {e}"))?;
        let out = Command::new("patchelf")
            .arg("--set-interpreter")
            .arg(&self.loader)
            .arg(&copy)
            .output()
            .map_err(|e| format!("patchelf: {e} (is the Debian package `patchelf` installed?)"))?;
        if !out.status.success() {
            return Err(format!(
                "patchelf --set-interpreter failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
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
            (a, b) => {
                return Some(format!(
                    "line {n}: expected {:?}, got {:?}",
                    a.unwrap_or("<end>"),
                    b.unwrap_or("<end>")
                ))
            }
        }
    }
    None
}

/// Runs `argv` with exactly `env` as its environment, no stdin, and a
/// timeout; captures everything.
pub fn execute(argv: &[String], env: &[(String, String)]) -> Outcome {
    let mut command = String::new();
    for (k, v) in env {
        let _ = write!(command, "{k}={} ", shell_quote(v));
    }
    command.push_str(&argv.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" "));
    let mut out = Outcome { command, ..Outcome::default() };
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]).env_clear().envs(env.iter().map(|(k, v)| (k, v)));
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            out.stderr = format!("(harness) cannot start {}: {e}", argv[0]);
            return out;
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
            Ok(None) if start.elapsed() > TIMEOUT => {
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
    for arch in Arch::ALL {
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
        };
        if !dir.is_dir() {
            c.fail(format!("fixtures not found at {}: run `cargo xtask fixtures`", dir.display()));
            failures.append(&mut c.failures);
            continue;
        }
        if let (Some(src), Ok(built)) = (newest_source(), std::fs::metadata(&dir).and_then(|m| m.modified()))
        {
            if src > built {
                c.fail(format!(
                    "fixtures in {} are older than their sources: run `cargo xtask fixtures`",
                    dir.display()
                ));
            }
        }
        if run_cah && !c.loader_ok {
            c.fail(format!("ld-cah.so not found at {}: run `cargo xtask build`", loader.display()));
        }
        body(&mut c);
        failures.append(&mut c.failures);
    }
    if ran == 0 {
        panic!("{test}: CAH_TESTS_ARCH={only_arch:?} matches no arch (x86_64, aarch64)");
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
        let u64_at = |o: usize| {
            data.get(o..o + 8).map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
        };
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
