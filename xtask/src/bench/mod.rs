//! `cargo xtask bench [ROUNDS] [--quick] [--no-callgrind]`: start-up cost
//! of programs under ld-cah, measured side by side with glibc's loader in
//! the same run and reported as ratios (absolute times drift from run to
//! run; ratios much less).
//!
//! Each case runs the same program up to five ways, interleaved round by
//! round (in a rotating order) so that machine noise hits all alike:
//! glibc's loader (the program's own `PT_INTERP`); ld-cah as `PT_INTERP`
//! of an unlocked copy; ld-cah run directly; and a copy locked by `cah
//! patch`, started with a warm hash cache and binding plan and with no
//! usable cache at all (every library hashed, no plan). Every child gets a
//! clean environment (`PATH`, `HOME`, `LANG=C`, and `CAH_CACHE_DIR` for
//! ld-cah): nothing of the caller's `LD_LIBRARY_PATH`, `LD_PRELOAD` or
//! `CAH_*` reaches it. The first warm-up rounds are thrown away, and each
//! ratio is the median of the per-round ratios with their interquartile
//! range. Then callgrind counts the instructions spent inside each loader
//! (deterministic, one run each), and the results are checked against the
//! targets of issue 10.
//!
//! A full run writes `target/bench/results.{json,md}`, the plot
//! `docs/bench/startup.svg` and the generated part of `docs/benchmarks.md`;
//! `--quick` (a smoke run) writes only under `target/bench`.

mod callgrind;
mod fixtures;
mod report;
mod stats;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::util::{self, Arch};
pub use stats::Quartiles;

/// glibc's loader, as callgrind names its object.
const GLIBC_LOADER: &str = "/lib64/ld-linux-x86-64.so.2";
/// A cache directory that cannot exist (its parent is not a directory): no
/// hash cache and no binding plan, so every locked library is hashed.
const NO_CACHE: &str = "/dev/null/ld-cah";

/// The ways a case is run. `Glibc` is the baseline of every ratio.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Way {
    Glibc,
    /// ld-cah as `PT_INTERP` of an unlocked copy (warm plan).
    Unlocked,
    /// ld-cah run as `ld-cah.so PROGRAM` (warm plan).
    Direct,
    /// The locked copy, warm hash cache and binding plan.
    Warm,
    /// The locked copy, no usable cache: every library hashed, no plan.
    Cold,
    /// The static-pie program: exec with no loader at all.
    Static,
}

impl Way {
    pub fn label(self) -> &'static str {
        match self {
            Way::Glibc => "glibc",
            Way::Unlocked => "ld-cah, unlocked",
            Way::Direct => "ld-cah run directly",
            Way::Warm => "ld-cah, locked, warm",
            Way::Cold => "ld-cah, locked, cold",
            Way::Static => "static-pie, no loader",
        }
    }
    pub fn key(self) -> &'static str {
        match self {
            Way::Glibc => "glibc",
            Way::Unlocked => "unlocked",
            Way::Direct => "direct",
            Way::Warm => "locked_warm",
            Way::Cold => "locked_cold",
            Way::Static => "static",
        }
    }
}

pub struct Case {
    pub name: String,
    /// The program glibc runs: the baseline.
    prog: PathBuf,
    args: Vec<String>,
    /// Set for the static-pie floor: the program measured against `prog`.
    floor: Option<PathBuf>,
    /// Whether to lock it (and measure warm and cold).
    lock: bool,
    /// Counted under callgrind in a `--quick` run too.
    quick: bool,
}

fn case(name: &str, prog: impl Into<PathBuf>, args: &[&str]) -> Case {
    Case { name: name.into(), prog: prog.into(), args: args.iter().map(|a| a.to_string()).collect(), floor: None, lock: true, quick: false }
}

/// One measured way of one case.
pub struct Measured {
    pub way: Way,
    /// Median wall time, microseconds.
    pub micros: f64,
    /// Per-round ratio to glibc's time in the same round.
    pub ratio: Quartiles,
}

/// Loader instructions of one case.
#[derive(Default)]
pub struct Counted {
    pub glibc: Option<u64>,
    pub unlocked: Option<u64>,
    pub warm: Option<u64>,
    pub cold: Option<u64>,
}

pub struct CaseResult {
    pub name: String,
    pub glibc_micros: f64,
    pub ways: Vec<Measured>,
    pub counts: Counted,
    /// Whether a warm locked start used its binding plan (checked with
    /// `CAH_DEBUG=bindings`); `None` if not locked.
    pub plan_used: Option<bool>,
    /// Ways that could not run, with why.
    pub failed: Vec<(Way, String)>,
}

impl CaseResult {
    pub fn ratio(&self, way: Way) -> Option<Quartiles> {
        self.ways.iter().find(|m| m.way == way).map(|m| m.ratio)
    }
}

struct Options {
    rounds: usize,
    warmup: usize,
    quick: bool,
    callgrind: bool,
}

fn options(args: &[String]) -> Result<Options, String> {
    let mut o = Options { rounds: 30, warmup: 5, quick: false, callgrind: true };
    let mut rounds = None;
    for a in args {
        match a.as_str() {
            "--quick" => o.quick = true,
            "--no-callgrind" => o.callgrind = false,
            n => rounds = Some(n.parse::<usize>().map_err(|_| format!("bench: unknown argument `{n}`"))?),
        }
    }
    if o.quick {
        o.rounds = 3;
        o.warmup = 1;
    }
    o.rounds = rounds.unwrap_or(o.rounds).max(3);
    Ok(o)
}

/// Everything a run needs to build commands.
struct Bench {
    loader: PathBuf,
    cah: PathBuf,
    scratch: PathBuf,
    /// The warm cache directory (hash cache and plans), fresh each run.
    cache: PathBuf,
}

/// A command with the clean environment every measured child gets.
fn clean(prog: &Path) -> Command {
    let mut c = Command::new(prog);
    c.env_clear().env("PATH", "/usr/bin:/bin").env("HOME", "/root").env("LANG", "C");
    c.stdout(Stdio::null()).stderr(Stdio::null());
    c
}

fn time_once(cmd: &mut Command) -> Result<f64, String> {
    let start = Instant::now();
    let st = cmd.status().map_err(|e| e.to_string())?;
    let t = start.elapsed().as_secs_f64();
    if !st.success() {
        return Err(format!("{} failed: {st}", util::describe(cmd)));
    }
    Ok(t)
}

/// A case's programs: glibc's, and ld-cah's copies.
struct Prepared {
    unlocked: PathBuf,
    locked: Option<PathBuf>,
}

impl Bench {
    fn prepare(&self, case: &Case) -> Result<Prepared, String> {
        let stem = case.name.replace(|c: char| !c.is_ascii_alphanumeric(), "_");
        let unlocked = self.scratch.join(format!("u-{stem}"));
        std::fs::copy(&case.prog, &unlocked).map_err(|e| e.to_string())?;
        util::output(Command::new("patchelf").arg("--set-interpreter").arg(&self.loader).arg(&unlocked))?;
        let mut locked = None;
        if case.lock {
            let l = self.scratch.join(format!("l-{stem}"));
            let _ = std::fs::remove_file(&l);
            let mut cmd = Command::new(&self.cah);
            cmd.arg("patch").arg(&case.prog).arg("-o").arg(&l).arg("--interp").arg(&self.loader);
            match util::output(&mut cmd) {
                Ok(_) => locked = Some(l),
                Err(e) => eprintln!("bench: {}: not locked: {e}", case.name),
            }
        }
        Ok(Prepared { unlocked, locked })
    }

    fn ways(&self, case: &Case, p: &Prepared) -> Vec<Way> {
        if case.floor.is_some() {
            return vec![Way::Static];
        }
        let mut w = vec![Way::Unlocked, Way::Direct];
        if p.locked.is_some() {
            w.extend([Way::Warm, Way::Cold]);
        }
        w
    }

    /// The command that runs `case` the given way, for wall time.
    fn command(&self, case: &Case, p: &Prepared, way: Way) -> Command {
        let cache = |c: &mut Command, dir: &Path| {
            c.env("CAH_CACHE_DIR", dir);
        };
        let mut c = match way {
            Way::Glibc => clean(&case.prog),
            Way::Static => clean(case.floor.as_ref().expect("a floor case")),
            Way::Unlocked => clean(&p.unlocked),
            Way::Direct => {
                let mut c = clean(&self.loader);
                c.arg(&case.prog);
                c
            }
            Way::Warm | Way::Cold => clean(p.locked.as_ref().expect("a locked case")),
        };
        match way {
            Way::Unlocked | Way::Direct | Way::Warm => cache(&mut c, &self.cache),
            Way::Cold => cache(&mut c, Path::new(NO_CACHE)),
            Way::Glibc | Way::Static => {}
        }
        c.args(&case.args);
        c
    }

    /// Whether a warm locked start uses its plan (after one filling run).
    fn plan_used(&self, case: &Case, p: &Prepared) -> Result<bool, String> {
        let mut c = self.command(case, p, Way::Warm);
        c.env("CAH_DEBUG", "bindings").stderr(Stdio::piped());
        let out = c.output().map_err(|e| e.to_string())?;
        Ok(String::from_utf8_lossy(&out.stderr).contains("using the plan"))
    }

    fn measure(&self, case: &Case, o: &Options) -> Result<CaseResult, String> {
        let p = self.prepare(case)?;
        let mut failed = Vec::new();
        // One run of each way first: it fills the warm cache, and a way
        // that cannot run at all is reported instead of measured.
        let mut ways = Vec::new();
        for way in self.ways(case, &p) {
            match time_once(&mut self.command(case, &p, way)) {
                Ok(_) => ways.push(way),
                Err(e) => failed.push((way, e)),
            }
        }
        let plan_used = if ways.contains(&Way::Warm) { Some(self.plan_used(case, &p)?) } else { None };
        let mut all = vec![Way::Glibc];
        all.extend(&ways);
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); all.len()];
        for round in 0..o.warmup + o.rounds {
            let mut t = vec![0.0; all.len()];
            for k in 0..all.len() {
                // Rotate who goes first, so no way always follows another.
                let i = (k + round) % all.len();
                t[i] = time_once(&mut self.command(case, &p, all[i]))?;
            }
            if round >= o.warmup {
                for (i, v) in t.into_iter().enumerate() {
                    times[i].push(v);
                }
            }
        }
        let median = |v: &[f64]| Quartiles::of(v).map_or(0.0, |q| q.mid * 1e6);
        let glibc = &times[0];
        let measured = all[1..]
            .iter()
            .zip(&times[1..])
            .map(|(&way, t)| {
                let r: Vec<f64> = t.iter().zip(glibc).map(|(a, g)| a / g).collect();
                Measured { way, micros: median(t), ratio: Quartiles::of(&r).expect("rounds >= 3") }
            })
            .collect();
        let mut r = CaseResult {
            name: case.name.clone(),
            glibc_micros: median(glibc),
            ways: measured,
            counts: Counted::default(),
            plan_used,
            failed,
        };
        if o.callgrind && case.floor.is_none() && (!o.quick || case.quick) {
            r.counts = self.count(case, &p, &r)?;
        }
        Ok(r)
    }

    /// Loader instructions: glibc's and ld-cah's, both run as `LOADER
    /// PROGRAM ARGS` (as the earlier tables of docs/benchmarks.md were),
    /// unlocked and locked. Under valgrind the closure includes valgrind's
    /// preload, so the warm plan is another one, filled by a first run.
    fn count(&self, case: &Case, p: &Prepared, r: &CaseResult) -> Result<Counted, String> {
        eprintln!("bench: callgrind: {}", case.name);
        let out = self.scratch.join("callgrind.out");
        let run = |loader: &Path, prog: &Path, cache: Option<&Path>, object: &str| -> Result<Option<u64>, String> {
            let mut c = clean(loader);
            c.arg(prog).args(&case.args);
            if let Some(dir) = cache {
                c.env("CAH_CACHE_DIR", dir);
            }
            callgrind::loader_instructions(&c, object, &out)
        };
        let cg_cache = cache_dir(&self.scratch, "cache-callgrind")?;
        let ours = "ld-cah.so";
        let mut n = Counted { glibc: run(Path::new(GLIBC_LOADER), &case.prog, None, "ld-linux-x86-64.so.2")?, ..Counted::default() };
        let ok = |w: Way| !r.failed.iter().any(|(f, _)| *f == w);
        if ok(Way::Direct) {
            run(&self.loader, &case.prog, Some(&cg_cache), ours)?;
            n.unlocked = run(&self.loader, &case.prog, Some(&cg_cache), ours)?;
        }
        if let Some(locked) = p.locked.as_deref() {
            if ok(Way::Warm) {
                run(&self.loader, locked, Some(&cg_cache), ours)?;
                n.warm = run(&self.loader, locked, Some(&cg_cache), ours)?;
            }
            if ok(Way::Cold) {
                n.cold = run(&self.loader, locked, Some(Path::new(NO_CACHE)), ours)?;
            }
        }
        Ok(n)
    }
}

/// A fresh, empty cache directory for ld-cah (`CAH_CACHE_DIR`): in a
/// `tmpfs` (`/dev/shm`) as the default places under `/run` are, where a
/// binding plan is known to be this boot's and answers every CPUID;
/// under `scratch` where there is no private directory there.
fn cache_dir(scratch: &Path, name: &str) -> Result<PathBuf, String> {
    let dir = private_shm_dir().unwrap_or_else(|| scratch.to_path_buf()).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

/// `/dev/shm/ld-cah-bench-UID`, made if missing, if it is this user's own
/// directory (not a symbolic link) that no one else may write: another
/// user of the machine may have taken the name first, and the bench must
/// neither empty nor use a directory of theirs.
fn private_shm_dir() -> Option<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    // `/proc/self` belongs to the process's effective user.
    let uid = std::fs::metadata("/proc/self").ok()?.uid();
    let dir = Path::new("/dev/shm").join(format!("ld-cah-bench-{uid}"));
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    let m = std::fs::symlink_metadata(&dir).ok()?;
    (m.is_dir() && m.uid() == uid && m.mode() & 0o022 == 0).then_some(dir)
}

pub fn run(args: &[String]) -> Result<(), String> {
    let o = options(args)?;
    crate::build::run(&[Arch::X86_64.name().to_string()])?;
    let root = util::root();
    let scratch = root.join("target/bench");
    std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
    let cache = cache_dir(&scratch, "cache")?;
    let bench = Bench { loader: crate::build::loader_path(Arch::X86_64), cah: root.join("target/release/cah"), scratch, cache };
    let g = fixtures::build(&bench.scratch)?;
    let mut hello = case("C hello (puts)", &g.hello, &[]);
    hello.quick = true;
    let mut floor = case("C hello, -static-pie (no loader: the floor)", &g.hello, &[]);
    floor.floor = Some(g.hello_static.clone());
    floor.lock = false;
    let mut t = case("true", "/bin/true", &[]);
    t.quick = true;
    let cases = vec![
        floor,
        hello,
        t,
        case("ls -la FILE", "/bin/ls", &["-la", "/etc/os-release"]),
        case("bash -c :", "/bin/bash", &["-c", ":"]),
        case("python3 -c pass", "/usr/bin/python3", &["-c", "pass"]),
        case("python3 import ssl, sqlite3", "/usr/bin/python3", &["-c", "import ssl, sqlite3"]),
        case("C++ iostream hello", &g.hello_cxx, &[]),
        case("50x2000 fns, -z now, all called", &g.many_now, &["all"]),
        case("50x2000 fns, lazy, all called", &g.many_lazy, &["all"]),
        case("50x2000 fns, lazy, 2000 called", &g.many_lazy, &[]),
        case("200x500 fns, -z now, all called", &g.wide_now, &["all"]),
        case("1000 x dlopen/dlsym/dlclose", &g.dl_loop, &[]),
        case("10000 x dlsym(RTLD_DEFAULT), 200 libraries", &g.dlsym_wide, &[]),
    ];
    let machine = report::Machine::probe(o.rounds, o.warmup);
    println!("{}", machine.describe());
    let mut results = Vec::new();
    for case in &cases {
        if !case.prog.exists() {
            println!("{:<44} (not installed)", case.name);
            continue;
        }
        let r = bench.measure(case, &o)?;
        println!("{}", report::line(&r));
        results.push(r);
    }
    let targets = report::targets(&results);
    println!();
    for t in &targets {
        println!("{}", t.line());
    }
    report::write_all(&root, &bench.scratch, &machine, &results, &targets, !o.quick)
}
