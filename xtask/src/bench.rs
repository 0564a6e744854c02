//! `cargo xtask bench`: start-up cost of programs under ld-cah, measured
//! side by side with glibc's loader in the same run and reported as
//! ratios (absolute times drift from run to run; ratios much less).
//!
//! Each case runs the same program three ways, interleaved round by round
//! so that machine noise hits all three alike: glibc's loader (the
//! program's own `PT_INTERP`), ld-cah as `PT_INTERP` (a patched copy),
//! and ld-cah run directly. The median of the rounds is reported.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{self, Arch};

struct Case {
    name: &'static str,
    prog: &'static str,
    args: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case { name: "true", prog: "/bin/true", args: &[] },
    Case { name: "ls", prog: "/bin/ls", args: &["-la", "/etc/os-release"] },
    Case { name: "bash -c :", prog: "/bin/bash", args: &["-c", ":"] },
    Case { name: "python3 -c pass", prog: "/usr/bin/python3", args: &["-S", "-c", "pass"] },
    Case { name: "python3 import ssl,sqlite3", prog: "/usr/bin/python3", args: &["-c", "import ssl, sqlite3"] },
];

fn time_once(cmd: &mut Command) -> Result<Duration, String> {
    let start = Instant::now();
    let st = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status().map_err(|e| e.to_string())?;
    let t = start.elapsed();
    if !st.success() {
        return Err(format!("{} failed: {st}", util::describe(cmd)));
    }
    Ok(t)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

pub fn run(args: &[String]) -> Result<(), String> {
    let rounds: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(100);
    crate::build::run(&[Arch::X86_64.name().to_string()])?;
    let loader = crate::build::loader_path(Arch::X86_64);
    let scratch = util::root().join("target/bench");
    std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
    println!("start-up, median of {rounds} rounds (x86_64, glibc 2.36 of this machine)");
    println!("{:<28} {:>12} {:>12} {:>8} {:>12} {:>8}", "program", "glibc", "cah interp", "ratio", "cah direct", "ratio");
    for case in CASES {
        if !Path::new(case.prog).exists() {
            println!("{:<28} (not installed)", case.name);
            continue;
        }
        let patched: PathBuf = scratch.join(case.name.replace(|c: char| !c.is_ascii_alphanumeric(), "_"));
        std::fs::copy(case.prog, &patched).map_err(|e| e.to_string())?;
        util::output(Command::new("patchelf").arg("--set-interpreter").arg(&loader).arg(&patched))?;
        let (mut g, mut i, mut d) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            g.push(time_once(Command::new(case.prog).args(case.args))?);
            i.push(time_once(Command::new(&patched).args(case.args))?);
            d.push(time_once(Command::new(&loader).arg(case.prog).args(case.args))?);
        }
        let (g, i, d) = (median(g), median(i), median(d));
        let ratio = |x: Duration| x.as_secs_f64() / g.as_secs_f64();
        println!(
            "{:<28} {:>10.0}us {:>10.0}us {:>7.2}x {:>10.0}us {:>7.2}x",
            case.name,
            g.as_secs_f64() * 1e6,
            i.as_secs_f64() * 1e6,
            ratio(i),
            d.as_secs_f64() * 1e6,
            ratio(d)
        );
    }
    verification(rounds, &loader, &scratch)
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
    // Fill the cache once.
    time_once(Command::new(&locked).args(args).env("CAH_CACHE_DIR", &cache_dir))?;
    let (mut g, mut u, mut w, mut c) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        g.push(time_once(Command::new("/bin/bash").args(args))?);
        u.push(time_once(Command::new(&unlocked).args(args).env("CAH_CACHE_DIR", &cache_dir))?);
        w.push(time_once(Command::new(&locked).args(args).env("CAH_CACHE_DIR", &cache_dir))?);
        c.push(time_once(Command::new(&locked).args(args).env("CAH_CACHE_DIR", &no_cache))?);
    }
    let (g, u, w, c) = (median(g), median(u), median(w), median(c));
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!();
    println!("verification, bash -c : (closure: libtinfo.so.6, libc.so.6), median of {rounds} rounds");
    println!("{:<40} {:>10.0}us {:>7.2}x", "glibc's loader", us(g), 1.0);
    println!("{:<40} {:>10.0}us {:>7.2}x", "ld-cah, not locked", us(u), us(u) / us(g));
    println!("{:<40} {:>10.0}us {:>7.2}x", "ld-cah, locked, warm hash cache", us(w), us(w) / us(g));
    println!("{:<40} {:>10.0}us {:>7.2}x", "ld-cah, locked, no cache (hash each start)", us(c), us(c) / us(g));
    println!("{:<40} {:>10.0}us", "=> cache lookups (warm - not locked)", us(w) - us(u));
    println!("{:<40} {:>10.0}us", "=> cold hashing of the closure", us(c) - us(w));
    Ok(())
}
