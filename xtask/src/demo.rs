//! `cargo xtask demo`: the main job in one command. Builds ld-cah for both
//! arches and runs a dynamically linked program through each, both ways a
//! loader can be started, printing what the program prints; then locks
//! this machine's bash to the digests of its libraries (`cah patch`) and
//! runs it through ld-cah with verification on.

use std::process::Command;

use crate::util::{self, Arch};

pub fn run(_args: &[String]) -> Result<(), String> {
    crate::build::run(&[])?;
    crate::fixtures::run(&[])?;
    let root = util::root();
    for arch in Arch::ALL {
        let loader = crate::build::loader_path(arch);
        let dir = root.join("target/fixtures").join(arch.name());
        let prog = dir.join("initorder");
        let qemu = |cmd: &mut Command| {
            if arch == Arch::Aarch64 {
                let mut q = Command::new("qemu-aarch64");
                q.args(["-L", "/usr/aarch64-linux-gnu"]).arg(cmd.get_program()).args(cmd.get_args());
                for (k, v) in cmd.get_envs() {
                    if let Some(v) = v {
                        q.env(k, v);
                    }
                }
                q
            } else {
                std::mem::replace(cmd, Command::new("true"))
            }
        };
        println!("== {}: {} --library-path {} {}", arch.name(), loader.display(), dir.display(), prog.display());
        let mut direct = Command::new(&loader);
        direct.arg("--library-path").arg(&dir).arg(&prog);
        util::run(&mut qemu(&mut direct))?;
        let patched = root.join("target/fixtures").join(format!("demo-{}", arch.name()));
        std::fs::copy(&prog, &patched).map_err(|e| e.to_string())?;
        util::run(Command::new("patchelf").arg("--set-interpreter").arg(&loader).arg(&patched))?;
        println!("== {}: {} (PT_INTERP = ld-cah.so)", arch.name(), patched.display());
        let mut interp = Command::new(&patched);
        interp.env("LD_LIBRARY_PATH", &dir);
        util::run(&mut qemu(&mut interp))?;
    }

    // A real program, locked and verified.
    let loader = crate::build::loader_path(Arch::X86_64);
    let cah = root.join("target/release/cah");
    let bash = root.join("target/demo/bash");
    std::fs::create_dir_all(bash.parent().unwrap()).map_err(|e| e.to_string())?;
    println!("== x86_64: cah patch /bin/bash (closure lock, interpreter ld-cah.so)");
    util::run(Command::new(&cah).arg("patch").arg("/bin/bash").arg("-o").arg(&bash).arg("--interp").arg(&loader))?;
    util::run(Command::new(&cah).arg("show").arg(&bash))?;
    println!("== x86_64: {} --list {}", loader.display(), bash.display());
    util::run(Command::new(&loader).arg("--list").arg(&bash))?;
    println!("== x86_64: the locked bash, verified at start-up");
    util::run(Command::new(&bash).args(["-c", "echo \"bash $BASH_VERSION ran with every library verified\""]))?;
    Ok(())
}
