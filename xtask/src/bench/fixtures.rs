//! The generated programs of the benchmark, built under
//! `target/bench/gen` once and kept between runs (each is rebuilt only
//! when missing).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util;

pub struct Generated {
    pub hello: PathBuf,
    pub hello_static: PathBuf,
    pub hello_cxx: PathBuf,
    pub many_now: PathBuf,
    pub many_lazy: PathBuf,
    pub wide_now: PathBuf,
    pub dl_loop: PathBuf,
    pub dlsym_wide: PathBuf,
}

fn write(dir: &Path, name: &str, text: &str) -> Result<(), String> {
    std::fs::write(dir.join(name), text).map_err(|e| format!("{}: {e}", dir.join(name).display()))
}

fn compile(dir: &Path, out: &str, cmd: &mut Command) -> Result<PathBuf, String> {
    let path = dir.join(out);
    if !path.exists() {
        util::run(cmd.current_dir(dir))?;
    }
    Ok(path)
}

pub fn build(scratch: &Path) -> Result<Generated, String> {
    let dir = scratch.join("gen");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    write(&dir, "hello.c", "#include <stdio.h>\nint main(void) { puts(\"hello\"); return 0; }\n")?;
    let hello = compile(&dir, "hello", Command::new("gcc").args(["-O1", "-o", "hello", "hello.c"]))?;
    // The same program with no loader at all: what exec costs by itself.
    let hello_static = compile(&dir, "hello-static", Command::new("gcc").args(["-O1", "-static-pie", "-o", "hello-static", "hello.c"]))?;
    write(&dir, "hello.cc", "#include <iostream>\nint main() { std::cout << \"hello\" << std::endl; }\n")?;
    let hello_cxx = compile(&dir, "hello-cxx", Command::new("g++").args(["-O1", "-o", "hello-cxx", "hello.cc"]))?;
    let tall = many(&dir, "", 50, 2000)?;
    let wide = many(&dir.join("wide"), "w", 200, 500)?;
    write(
        &dir,
        "dl.c",
        "#include <dlfcn.h>\nint main(void) {\n  for (int i = 0; i < 1000; i++) {\n    void *h = dlopen(\"libbench0.so\", RTLD_NOW);\n    if (!h || !dlsym(h, \"f0_1999\")) return 1;\n    dlclose(h);\n  }\n  return 0;\n}\n",
    )?;
    let dl_loop =
        compile(&dir, "dl-loop", Command::new("gcc").args(["-O1", "-o", "dl-loop", "dl.c"]).arg(format!("-Wl,-rpath,{}", dir.display())))?;
    // dlsym(RTLD_DEFAULT) of the last library's last function, in a
    // program that needs all 200 wide libraries (and calls none): the
    // global scope's length is what each call pays for.
    let wide_dir = dir.join("wide");
    write(
        &wide_dir,
        "dlsym.c",
        "#include <dlfcn.h>\nint main(void) {\n  for (int i = 0; i < 10000; i++)\n    if (!dlsym(RTLD_DEFAULT, \"f199_499\")) return 1;\n  return 0;\n}\n",
    )?;
    let link: Vec<String> = (0..200).map(|l| format!("-lbenchw{l}")).collect();
    let dlsym_wide = compile(
        &wide_dir,
        "dlsym-wide",
        Command::new("gcc")
            .args(["-O1", "-o", "dlsym-wide", "dlsym.c", "-L.", "-Wl,--no-as-needed"])
            .args(&link)
            .arg(format!("-Wl,-rpath,{}", wide_dir.display())),
    )?;
    Ok(Generated { hello, hello_static, hello_cxx, many_now: tall.0, many_lazy: tall.1, wide_now: wide.0, dl_loop, dlsym_wide })
}

/// `libs` libraries of `funcs` functions each, and a program referencing
/// every function, linked `-z now` and `-z lazy`. It calls every one once
/// when given an argument, otherwise only the first library's (what lazy
/// binding is for). One small caller per library: one huge `main` takes
/// gcc minutes to compile.
fn many(dir: &Path, tag: &str, libs: usize, funcs: usize) -> Result<(PathBuf, PathBuf), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let mut prog = String::new();
    for l in 0..libs {
        let mut src = String::new();
        let _ = writeln!(prog, "static int c{l}(int s) {{");
        for f in 0..funcs {
            let _ = writeln!(src, "int f{l}_{f}(int x) {{ return x + {f}; }}");
            let _ = writeln!(prog, "  int f{l}_{f}(int); s += f{l}_{f}(s & 7);");
        }
        let _ = writeln!(prog, "  return s;\n}}");
        let lib = format!("libbench{tag}{l}.so");
        if !dir.join(&lib).exists() {
            write(dir, &format!("l{l}.c"), &src)?;
            compile(dir, &lib, Command::new("gcc").args(["-O1", "-shared", "-fPIC", "-o"]).arg(&lib).arg(format!("l{l}.c")))?;
        }
    }
    let _ = writeln!(prog, "int main(int argc, char **argv) {{\n  int s = c0(0);\n  if (argc > 1) {{");
    for l in 1..libs {
        let _ = writeln!(prog, "    s = c{l}(s);");
    }
    prog.push_str("  }\n  return s == 42;\n}\n");
    write(dir, "many.c", &prog)?;
    let link: Vec<String> = (0..libs).map(|l| format!("-lbench{tag}{l}")).collect();
    let mut out = Vec::new();
    for (name, bind) in [("many-now", "-Wl,-z,now"), ("many-lazy", "-Wl,-z,lazy")] {
        out.push(compile(
            dir,
            name,
            Command::new("gcc")
                .args(["-O0", "-o", name, "many.c", "-L."])
                .args(&link)
                .arg(bind)
                .arg(format!("-Wl,-rpath,{}", dir.display())),
        )?);
    }
    Ok((out[0].clone(), out[1].clone()))
}
