//! `cargo xtask bench [ROUNDS]`: start-up cost of programs under ld-cah,
//! measured side by side with glibc's loader in the same run and reported
//! as ratios (absolute times drift from run to run; ratios much less).
//!
//! Each case runs the same program three ways, interleaved round by round
//! so that machine noise hits all three alike: glibc's loader (the
//! program's own `PT_INTERP`), ld-cah as `PT_INTERP` (a patched copy),
//! and ld-cah run directly. Every child gets a clean environment (`PATH`,
//! `HOME`, `LANG=C` only: cargo's `LD_LIBRARY_PATH` would make glibc try
//! dozens of directories that ld-cah is never asked about), the first
//! [`WARMUP`] rounds are thrown away, and each ratio is reported as the
//! median of the per-round ratios with their interquartile range.
//!
//! Besides real programs, generated cases show the symbol-heavy paths
//! that real programs hide: 50 libraries of 2000 functions each, bound
//! eagerly (`-z now`) and lazily through the PLT, with every function
//! called or only the first library's (where lazy binding pays), a C++
//! iostream hello, and 1000 `dlopen`/`dlsym`/`dlclose` rounds.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{self, Arch};

/// Rounds run and discarded before measuring (page cache, CPU frequency).
const WARMUP: usize = 5;

struct Case {
    name: String,
    prog: PathBuf,
    args: Vec<String>,
}

fn case(name: &str, prog: impl Into<PathBuf>, args: &[&str]) -> Case {
    Case { name: name.into(), prog: prog.into(), args: args.iter().map(|a| a.to_string()).collect() }
}

/// A command with the clean environment every measured child gets.
fn clean(prog: &Path) -> Command {
    let mut c = Command::new(prog);
    c.env_clear().env("PATH", "/usr/bin:/bin").env("HOME", "/root").env("LANG", "C");
    c
}

fn time_once(cmd: &mut Command) -> Result<Duration, String> {
    let start = Instant::now();
    let st = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status().map_err(|e| e.to_string())?;
    let t = start.elapsed();
    if !st.success() {
        return Err(format!("{} failed: {st}", util::describe(cmd)));
    }
    Ok(t)
}

/// Median and interquartile range of a sample.
fn quartiles(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.25), at(0.5), at(0.75))
}

pub fn run(args: &[String]) -> Result<(), String> {
    let rounds: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(100).max(4);
    crate::build::run(&[Arch::X86_64.name().to_string()])?;
    let loader = crate::build::loader_path(Arch::X86_64);
    let scratch = util::root().join("target/bench");
    std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
    let generated = generate(&scratch)?;
    let mut cases = vec![
        case("true", "/bin/true", &[]),
        case("ls", "/bin/ls", &["-la", "/etc/os-release"]),
        case("bash -c :", "/bin/bash", &["-c", ":"]),
        case("python3 -c pass", "/usr/bin/python3", &["-c", "pass"]),
        case("python3 import ssl,sqlite3", "/usr/bin/python3", &["-c", "import ssl, sqlite3"]),
    ];
    cases.extend(generated);
    println!(
        "start-up, {rounds} rounds after {WARMUP} discarded (x86_64, glibc of this machine); \
         ratio = ld-cah / glibc per round: median [25%..75%]"
    );
    println!("{:<30} {:>10} {:>10} {:>22} {:>22}", "program", "glibc", "cah", "cah interp / glibc", "cah direct / glibc");
    for case in &cases {
        if !case.prog.exists() {
            println!("{:<30} (not installed)", case.name);
            continue;
        }
        let patched: PathBuf = scratch.join(format!("p-{}", case.name.replace(|c: char| !c.is_ascii_alphanumeric(), "_")));
        std::fs::copy(&case.prog, &patched).map_err(|e| e.to_string())?;
        util::output(Command::new("patchelf").arg("--set-interpreter").arg(&loader).arg(&patched))?;
        let (mut g, mut c, mut ri, mut rd) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for round in 0..WARMUP + rounds {
            let tg = time_once(clean(&case.prog).args(&case.args))?.as_secs_f64();
            let ti = time_once(clean(&patched).args(&case.args))?.as_secs_f64();
            let td = time_once(clean(&loader).arg(&case.prog).args(&case.args))?.as_secs_f64();
            if round >= WARMUP {
                g.push(tg);
                c.push(ti);
                ri.push(ti / tg);
                rd.push(td / tg);
            }
        }
        let fmt = |(lo, mid, hi): (f64, f64, f64)| format!("{mid:.2}x [{lo:.2}..{hi:.2}]");
        println!(
            "{:<30} {:>8.0}us {:>8.0}us {:>22} {:>22}",
            case.name,
            quartiles(g).1 * 1e6,
            quartiles(c).1 * 1e6,
            fmt(quartiles(ri)),
            fmt(quartiles(rd))
        );
    }
    verification(rounds, &loader, &scratch)
}

/// Builds the generated cases under `scratch/gen` (once; kept between runs).
fn generate(scratch: &Path) -> Result<Vec<Case>, String> {
    let dir = scratch.join("gen");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).map_err(|e| e.to_string());
    const LIBS: usize = 50;
    const FUNCS: usize = 2000;
    let done = dir.join(".built");
    if !done.exists() {
        // 50 libraries of 2000 functions; the program calls every one once,
        // from one small caller per library (one huge `main` takes gcc
        // minutes to compile).
        let mut prog = String::new();
        for l in 0..LIBS {
            let mut src = String::new();
            let _ = writeln!(prog, "static int c{l}(int s) {{");
            for f in 0..FUNCS {
                let _ = writeln!(src, "int f{l}_{f}(int x) {{ return x + {f}; }}");
                let _ = writeln!(prog, "  int f{l}_{f}(int); s += f{l}_{f}(s & 7);");
            }
            let _ = writeln!(prog, "  return s;\n}}");
            write(&format!("l{l}.c"), &src)?;
            util::run(
                Command::new("gcc")
                    .current_dir(&dir)
                    .args(["-O1", "-shared", "-fPIC", "-o"])
                    .arg(format!("libbench{l}.so"))
                    .arg(format!("l{l}.c")),
            )?;
        }
        // Every function is referenced, but only the first library's are
        // called unless an argument is given: what lazy binding is for.
        let _ = writeln!(prog, "int main(int argc, char **argv) {{\n  int s = c0(0);\n  if (argc > 1) {{");
        for l in 1..LIBS {
            let _ = writeln!(prog, "    s = c{l}(s);");
        }
        prog.push_str("  }");
        prog.push_str("  return s == 42;\n}\n");
        write("many.c", &prog)?;
        let libs: Vec<String> = (0..LIBS).map(|l| format!("-lbench{l}")).collect();
        for (out, bind) in [("many-now", "-Wl,-z,now"), ("many-lazy", "-Wl,-z,lazy")] {
            util::run(
                Command::new("gcc")
                    .current_dir(&dir)
                    .args(["-O0", "-o", out, "many.c", "-L."])
                    .args(&libs)
                    .arg(bind)
                    .arg(format!("-Wl,-rpath,{}", dir.display())),
            )?;
        }
        write("hello.cc", "#include <iostream>\nint main() { std::cout << \"hello\" << std::endl; }\n")?;
        util::run(Command::new("g++").current_dir(&dir).args(["-O1", "-o", "hello-cxx", "hello.cc"]))?;
        write(
            "dl.c",
            "#include <dlfcn.h>\nint main(void) {\n  for (int i = 0; i < 1000; i++) {\n    void *h = dlopen(\"libbench0.so\", RTLD_NOW);\n    if (!h || !dlsym(h, \"f0_1999\")) return 1;\n    dlclose(h);\n  }\n  return 0;\n}\n",
        )?;
        util::run(
            Command::new("gcc").current_dir(&dir).args(["-O1", "-o", "dl-loop", "dl.c"]).arg(format!("-Wl,-rpath,{}", dir.display())),
        )?;
        std::fs::write(&done, "").map_err(|e| e.to_string())?;
    }
    Ok(vec![
        case("C++ iostream hello", dir.join("hello-cxx"), &[]),
        case("50x2000 fns, -z now, all called", dir.join("many-now"), &["all"]),
        case("50x2000 fns, lazy, all called", dir.join("many-lazy"), &["all"]),
        case("50x2000 fns, lazy, 2000 called", dir.join("many-lazy"), &[]),
        case("1000 x dlopen/dlsym/dlclose", dir.join("dl-loop"), &[]),
    ])
}

/// The cost of content verification: one program (bash, whose closure is
/// libtinfo and libc) unverified, locked with a warm hash cache, and
/// locked with no usable cache (every library hashed at every start);
/// the differences are a cache lookup and the cold hashing of the closure.
fn verification(rounds: usize, loader: &Path, scratch: &Path) -> Result<(), String> {
    let cah = util::root().join("target/release/cah");
    let locked = scratch.join("bash-locked");
    let unlocked = scratch.join("bash-unlocked");
    let _ = std::fs::remove_file(&locked);
    util::output(Command::new(&cah).arg("patch").arg("/bin/bash").arg("-o").arg(&locked).arg("--interp").arg(loader))?;
    std::fs::copy("/bin/bash", &unlocked).map_err(|e| e.to_string())?;
    util::output(Command::new("patchelf").arg("--set-interpreter").arg(loader).arg(&unlocked))?;
    let cache_dir = scratch.join("cache");
    let _ = std::fs::remove_dir_all(&cache_dir);
    std::fs::create_dir_all(&cache_dir).map_err(|e| e.to_string())?;
    // A cache directory that cannot exist (its parent is not a directory):
    // the loader falls back to hashing every locked library at every start.
    let no_cache = PathBuf::from("/dev/null/ld-cah");
    let args = ["-c", ":"];
    let with = |prog: &Path, cache: &Path| {
        let mut c = clean(prog);
        c.args(args).env("CAH_CACHE_DIR", cache);
        c
    };
    // Fill the cache once.
    time_once(&mut with(&locked, &cache_dir))?;
    let (mut g, mut u, mut w, mut c) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..WARMUP + rounds {
        let tg = time_once(clean(Path::new("/bin/bash")).args(args))?.as_secs_f64();
        let tu = time_once(&mut with(&unlocked, &cache_dir))?.as_secs_f64();
        let tw = time_once(&mut with(&locked, &cache_dir))?.as_secs_f64();
        let tc = time_once(&mut with(&locked, &no_cache))?.as_secs_f64();
        if round >= WARMUP {
            g.push(tg);
            u.push(tu / tg);
            w.push(tw / tg);
            c.push(tc / tg);
        }
    }
    let g = quartiles(g).1 * 1e6;
    let row = |name: &str, r: Vec<f64>| {
        let (lo, mid, hi) = quartiles(r);
        println!("{name:<44} {:>8.0}us {mid:>6.2}x [{lo:.2}..{hi:.2}]", g * mid);
    };
    println!();
    println!("verification, bash -c : (closure: libtinfo.so.6, libc.so.6), {rounds} rounds");
    println!("{:<44} {:>8.0}us {:>6.2}x", "glibc's loader", g, 1.0);
    row("ld-cah, not locked", u);
    row("ld-cah, locked, warm hash cache", w);
    row("ld-cah, locked, no cache (hash each start)", c);
    Ok(())
}
