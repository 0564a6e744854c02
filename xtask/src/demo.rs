//! `cargo xtask demo`: the main job in one command. Builds ld-cah for both
//! arches and runs a dynamically linked program through each, both ways a
//! loader can be started, printing what the program prints.

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
    Ok(())
}
