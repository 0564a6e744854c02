//! End-to-end tests of the `cah` tool on real programs of this machine.
//!
//! Each test copies what it changes into a temporary directory. Digests
//! are checked against an independent computation (the `blake3` crate on
//! the files glibc's own `ldd` resolves). Tests that need a tool this
//! machine lacks (patchelf, eu-elflint, gcc, the aarch64 cross toolchain)
//! say so on stderr and return.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn cah() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cah"))
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

/// Runs and requires success; returns stdout.
fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("skipping part of this test: {tool} is not installed");
    }
    found
}

fn copy_exec(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap();
}

/// The programs to try: always `true` and `bash`, and python3 if present.
fn programs() -> Vec<PathBuf> {
    let mut v = vec![PathBuf::from("/usr/bin/true"), PathBuf::from("/bin/bash")];
    if let Ok(p) = std::fs::canonicalize("/usr/bin/python3") {
        v.push(p);
    }
    v
}

/// glibc's view of a program's closure: name -> path, from `ldd`, leaving
/// out the vDSO and the dynamic loader (which ld-cah stands in for).
fn ldd(prog: &Path) -> BTreeMap<String, PathBuf> {
    let out = ok(Command::new("ldd").arg(prog));
    let mut map = BTreeMap::new();
    for line in out.lines() {
        let line = line.trim();
        let Some((name, rest)) = line.split_once(" => ") else {
            continue;
        };
        if name.starts_with("ld-linux") || name.starts_with("linux-vdso") {
            continue;
        }
        let path = rest.split(" (").next().unwrap().trim();
        map.insert(name.to_string(), PathBuf::from(path));
    }
    map
}

fn b3(path: &Path) -> String {
    blake3::hash(&std::fs::read(path).unwrap()).to_hex().to_string()
}

fn show_json(prog: &Path, extra: &[&str]) -> Value {
    let out = ok(cah().arg("show").arg("--json").arg(prog).args(extra));
    serde_json::from_str(&out).unwrap()
}

fn patch(prog: &Path, out: &Path, extra: &[&str]) {
    ok(cah().arg("patch").arg(prog).arg("-o").arg(out).args(extra));
}

#[test]
fn show_lists_the_closure_with_independently_computed_digests() {
    let dir = tempfile::tempdir().unwrap();
    for prog in programs() {
        let name = prog.file_name().unwrap().to_str().unwrap();
        let copy = dir.path().join(name);
        copy_exec(&prog, &copy);
        let patched = dir.path().join(format!("{name}.patched"));
        patch(&copy, &patched, &[]);
        let want = ldd(&prog);
        let shown = show_json(&patched, &[]);
        let entries = shown["entries"].as_array().unwrap();
        let got: BTreeMap<String, (String, String)> = entries
            .iter()
            .map(|e| {
                assert_eq!(e["status"], "ok", "{e}");
                (
                    e["name"].as_str().unwrap().to_string(),
                    (
                        e["digest"].as_str().unwrap().to_string(),
                        e["path"].as_str().unwrap().to_string(),
                    ),
                )
            })
            .collect();
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{name}: closure names"
        );
        for (lib, path) in &want {
            assert_eq!(got[lib].0, b3(path), "{name}: digest of {lib}");
            assert_eq!(
                b3(Path::new(&got[lib].1)),
                b3(path),
                "{name}: {lib} found at another file"
            );
        }
        assert_eq!(shown["interp"], "/usr/lib/ld-cah/ld-cah.so");
        assert_eq!(shown["version"], 1);
        // The text form says the same.
        let text = ok(cah().arg("show").arg(&patched));
        for lib in want.keys() {
            assert!(text.contains(lib.as_str()), "{text}");
        }
    }
}

#[test]
fn patched_programs_run_under_glibc_with_the_interpreter_set_back() {
    let dir = tempfile::tempdir().unwrap();
    for prog in programs() {
        let name = prog.file_name().unwrap().to_str().unwrap();
        let copy = dir.path().join(name);
        copy_exec(&prog, &copy);
        let patched = dir.path().join(format!("{name}.patched"));
        patch(&copy, &patched, &[]);
        // Back to glibc with our own tool...
        let back = dir.path().join(format!("{name}.back"));
        patch(&patched, &back, &["--interp", "/lib64/ld-linux-x86-64.so.2"]);
        let mut runs = vec![back];
        // ...and with patchelf, as the issue asks.
        if have("patchelf") {
            let pe = dir.path().join(format!("{name}.patchelf"));
            copy_exec(&patched, &pe);
            ok(Command::new("patchelf")
                .arg("--set-interpreter")
                .arg("/lib64/ld-linux-x86-64.so.2")
                .arg(&pe));
            runs.push(pe);
        }
        for exe in runs {
            match name {
                "bash" => assert_eq!(ok(Command::new(&exe).args(["-c", "echo hi $((6*7))"])), "hi 42\n"),
                "true" => {
                    ok(&mut Command::new(&exe));
                }
                _ => assert_eq!(ok(Command::new(&exe).args(["-c", "print(6*7)"])), "42\n"),
            }
        }
    }
}

/// eu-elflint's complaints, minus its closing "No errors" and minus the
/// one complaint the design makes inevitable: elflint reports every note
/// whose owner it does not know ("unknown object file note type ... with
/// owner name 'CAH'"), and the lock must be an ELF note.
fn elflint(path: &Path) -> Vec<String> {
    let out = run(Command::new("eu-elflint").arg("--gnu-ld").arg(path));
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    text.lines()
        .filter(|l| !l.is_empty() && *l != "No errors" && !l.contains("with owner name 'CAH'"))
        .map(|l| l.to_string())
        .collect()
}

#[test]
fn readelf_and_elflint_accept_the_patched_file() {
    let dir = tempfile::tempdir().unwrap();
    for prog in programs() {
        let name = prog.file_name().unwrap().to_str().unwrap();
        let copy = dir.path().join(name);
        copy_exec(&prog, &copy);
        let patched = dir.path().join(format!("{name}.patched"));
        patch(&copy, &patched, &[]);
        let notes = ok(Command::new("readelf").arg("-nW").arg(&patched));
        assert!(notes.contains(".note.cah") && notes.contains("CAH"), "{notes}");
        let all = run(Command::new("readelf").arg("-aW").arg(&patched));
        assert!(all.status.success());
        assert_eq!(
            String::from_utf8_lossy(&all.stderr),
            "",
            "readelf -a complains about {name}"
        );
        let interp = ok(Command::new("readelf").arg("-lW").arg(&patched));
        assert!(
            interp.contains("[Requesting program interpreter: /usr/lib/ld-cah/ld-cah.so]"),
            "{interp}"
        );
        if have("eu-elflint") {
            assert_eq!(elflint(&patched), elflint(&copy), "{name}: new eu-elflint complaints");
            let back = dir.path().join(format!("{name}.back"));
            patch(&patched, &back, &["--interp", "/lib64/ld-linux-x86-64.so.2"]);
            assert_eq!(elflint(&back), elflint(&copy), "{name}: new eu-elflint complaints");
        }
    }
}

#[test]
fn patching_is_idempotent_and_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    for prog in programs() {
        let name = prog.file_name().unwrap().to_str().unwrap();
        let copy = dir.path().join(name);
        copy_exec(&prog, &copy);
        let once = dir.path().join(format!("{name}.1"));
        let twice = dir.path().join(format!("{name}.2"));
        let again = dir.path().join(format!("{name}.1b"));
        patch(&copy, &once, &[]);
        patch(&once, &twice, &[]);
        patch(&copy, &again, &[]);
        let a = std::fs::read(&once).unwrap();
        assert!(
            a == std::fs::read(&twice).unwrap(),
            "{name}: patching a patched file changed it"
        );
        assert!(
            a == std::fs::read(&again).unwrap(),
            "{name}: patching is not deterministic"
        );
        // In place (no -o) gives the same bytes too, and keeps the mode.
        let inplace = dir.path().join(format!("{name}.inplace"));
        copy_exec(&prog, &inplace);
        ok(cah().arg("patch").arg(&inplace));
        assert!(a == std::fs::read(&inplace).unwrap());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&inplace).unwrap().permissions().mode() & 0o111, 0o111);
    }
}

/// A sysroot holding bash and its libraries, copied from this machine.
fn bash_sysroot(root: &Path) -> BTreeMap<String, PathBuf> {
    let libdir = root.join("lib/x86_64-linux-gnu");
    std::fs::create_dir_all(&libdir).unwrap();
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    copy_exec(Path::new("/bin/bash"), &root.join("usr/bin/bash"));
    let mut placed = BTreeMap::new();
    for (name, path) in ldd(Path::new("/bin/bash")) {
        let dest = libdir.join(&name);
        std::fs::copy(&path, &dest).unwrap();
        placed.insert(name, dest);
    }
    placed
}

#[test]
fn verify_in_a_sysroot_reports_replaced_and_missing_libraries() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let libs = bash_sysroot(&root);
    let bash = root.join("usr/bin/bash");
    let r = root.to_str().unwrap();
    ok(cah().args(["patch", "--root", r]).arg(&bash));
    let store = dir.path().join("store");
    let s = store.to_str().unwrap();
    // Everything in place: verified, found by search in the sysroot.
    let out = ok(cah().args(["verify", "--root", r, "--store", s]).arg(&bash));
    assert!(out.contains("verified"), "{out}");
    for path in libs.values() {
        assert!(out.contains(path.to_str().unwrap()), "{out}");
    }

    // A different build of libtinfo under the same name: mismatch, exit 1.
    let tinfo = &libs["libtinfo.so.6"];
    let original = std::fs::read(tinfo).unwrap();
    let mut other = original.clone();
    other.extend_from_slice(b"another build");
    std::fs::write(tinfo, &other).unwrap();
    let out = run(cah().args(["verify", "--root", r, "--store", s]).arg(&bash));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("mismatch  libtinfo.so.6"), "{text}");
    assert!(
        text.contains(&blake3::hash(&other).to_hex().to_string()),
        "rejected digest named: {text}"
    );
    assert!(text.contains("ok        libc.so.6"), "{text}");
    let json: Value =
        serde_json::from_slice(&run(cah().args(["verify", "--json", "--root", r, "--store", s]).arg(&bash)).stdout)
            .unwrap();
    assert_eq!(json["ok"], false);

    // The right file in the store satisfies it again (store first).
    std::fs::create_dir_all(&store).unwrap();
    let good = dir.path().join("libtinfo.so.6.good");
    std::fs::write(&good, &original).unwrap();
    ok(cah().args(["store", "--store", s, "add"]).arg(&good));
    let out = ok(cah().args(["verify", "--root", r, "--store", s]).arg(&bash));
    assert!(
        out.contains("ok        libtinfo.so.6") && out.contains("(store)"),
        "{out}"
    );

    // Gone from both: missing.
    std::fs::remove_file(tinfo).unwrap();
    std::fs::remove_dir_all(&store).unwrap();
    let out = run(cah().args(["verify", "--root", r, "--store", s]).arg(&bash));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("missing   libtinfo.so.6"), "{text}");
    // `show` still prints the lock, with where things are now.
    let shown = ok(cah().args(["show", "--root", r, "--store", s]).arg(&bash));
    assert!(
        shown.contains("libtinfo.so.6") && shown.contains("(not found)"),
        "{shown}"
    );

    // An unpatched program is an error, not a pass.
    let out = run(cah().args(["verify"]).arg("/bin/true"));
    assert_eq!(out.status.code(), Some(2));
}

fn gcc(args: &[&str], cwd: &Path) {
    ok(Command::new("gcc").current_dir(cwd).args(args));
}

#[test]
fn diamond_conflict_is_an_error_naming_both_paths() {
    if !have("gcc") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for sub in ["lib/one", "lib/two"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    std::fs::write(d.join("x1.c"), "int x(void) { return 1; }\n").unwrap();
    std::fs::write(d.join("x2.c"), "int x(void) { return 2; }\n").unwrap();
    std::fs::write(d.join("a.c"), "int x(void); int a(void) { return x(); }\n").unwrap();
    std::fs::write(d.join("b.c"), "int x(void); int b(void) { return x() + 10; }\n").unwrap();
    std::fs::write(
        d.join("main.c"),
        "int a(void); int b(void); int main(void) { return a() + b() == 12 ? 0 : 1; }\n",
    )
    .unwrap();
    gcc(
        &[
            "-shared",
            "-fPIC",
            "-o",
            "lib/one/libx.so.1",
            "-Wl,-soname,libx.so.1",
            "x1.c",
        ],
        d,
    );
    gcc(
        &[
            "-shared",
            "-fPIC",
            "-o",
            "lib/two/libx.so.1",
            "-Wl,-soname,libx.so.1",
            "x2.c",
        ],
        d,
    );
    let rpath = |sub: &str| format!("-Wl,--enable-new-dtags,-rpath,$ORIGIN/{sub}");
    gcc(
        &[
            "-shared",
            "-fPIC",
            "-o",
            "lib/liba.so",
            "a.c",
            "-Llib/one",
            "-l:libx.so.1",
            &rpath("one"),
        ],
        d,
    );
    gcc(
        &[
            "-shared",
            "-fPIC",
            "-o",
            "lib/libb.so",
            "b.c",
            "-Llib/two",
            "-l:libx.so.1",
            &rpath("two"),
        ],
        d,
    );
    gcc(&["-o", "prog", "main.c", "-Llib", "-la", "-lb", &rpath("lib")], d);
    // glibc runs it (taking lib/one's libx for both), but the lock cannot
    // say which libx.so.1 is meant: cah refuses.
    ok(&mut Command::new(d.join("prog")));
    let out = run(cah().arg("patch").arg(d.join("prog")).arg("-o").arg(d.join("prog.p")));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("diamond conflict") && err.contains("libx.so.1"), "{err}");
    assert!(
        err.contains("lib/one/libx.so.1") && err.contains("lib/two/libx.so.1"),
        "{err}"
    );
    assert!(!d.join("prog.p").exists());

    // With the same content in both places it is no conflict.
    std::fs::copy(d.join("lib/one/libx.so.1"), d.join("lib/two/libx.so.1")).unwrap();
    patch(&d.join("prog"), &d.join("prog.p"), &[]);
    let shown = show_json(&d.join("prog.p"), &[]);
    let names: Vec<&str> = shown["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["liba.so", "libb.so", "libc.so.6", "libx.so.1"]);

    // A name that cannot be found is an error too.
    std::fs::remove_file(d.join("lib/libb.so")).unwrap();
    let out = run(cah().arg("patch").arg(d.join("prog")).arg("-o").arg(d.join("prog.q")));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("libb.so") && err.contains("not found"), "{err}");
}

#[test]
fn also_strict_and_store_options() {
    let dir = tempfile::tempdir().unwrap();
    let prog = dir.path().join("true");
    copy_exec(Path::new("/usr/bin/true"), &prog);
    let store = dir.path().join("store");
    let s = store.to_str().unwrap();
    let p = dir.path().join("true.p");
    patch(&prog, &p, &["--also", "libm.so.6", "--strict", "--store", s]);
    let shown = show_json(&p, &["--store", s]);
    assert_eq!(shown["strict"], true);
    let names: Vec<&str> = shown["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["libc.so.6", "libm.so.6"]);
    // Locked names are found in the store first.
    assert!(
        shown["entries"].as_array().unwrap().iter().all(|e| e["via"] == "store"),
        "{shown}"
    );
    // Re-patching keeps the extra name and the flag.
    let p2 = dir.path().join("true.p2");
    patch(&p, &p2, &[]);
    assert!(std::fs::read(&p).unwrap() == std::fs::read(&p2).unwrap());
    // --fresh drops them.
    let p3 = dir.path().join("true.p3");
    patch(&p, &p3, &["--fresh"]);
    let shown = show_json(&p3, &[]);
    assert_eq!(shown["strict"], false);
    assert_eq!(shown["entries"].as_array().unwrap().len(), 1);
    // --keep-interp leaves PT_INTERP alone.
    let p4 = dir.path().join("true.p4");
    patch(&prog, &p4, &["--keep-interp"]);
    assert_eq!(show_json(&p4, &[])["interp"], "/lib64/ld-linux-x86-64.so.2");
    ok(&mut Command::new(&p4));
}

#[test]
fn store_add_ls_verify_gc() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let s = store.to_str().unwrap();
    let prog = dir.path().join("bash");
    copy_exec(Path::new("/bin/bash"), &prog);
    ok(cah().arg("patch").arg(&prog).args(["--store", s]));
    let extra = dir.path().join("extra");
    std::fs::write(&extra, b"not a library").unwrap();
    let out = ok(cah().args(["store", "--store", s, "add"]).arg(&extra));
    assert!(out.contains(&b3(&extra)));
    let ls: Value = serde_json::from_str(&ok(cah().args(["store", "--store", s, "ls", "--json"]))).unwrap();
    let digests: Vec<String> = ls
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["digest"].as_str().unwrap().to_string())
        .collect();
    for (_, path) in ldd(Path::new("/bin/bash")) {
        assert!(digests.contains(&b3(&path)), "{path:?} not stored");
    }
    assert!(digests.contains(&b3(&extra)));
    ok(cah().args(["store", "--store", s, "verify"]));

    // A damaged file is reported.
    let victim = store.join(b3(&extra));
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&victim, b"damaged").unwrap();
    let out = run(cah().args(["store", "--store", s, "verify"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("corrupt"));

    // gc keeps what the lock names, removes the rest.
    let out = ok(cah()
        .args(["store", "--store", s, "gc", "--dry-run", "--keep"])
        .arg(&prog));
    assert!(out.contains("would remove") && victim.exists());
    ok(cah().args(["store", "--store", s, "gc", "--keep"]).arg(&prog));
    assert!(!victim.exists());
    ok(cah().args(["store", "--store", s, "verify"]));
    let ls: Value = serde_json::from_str(&ok(cah().args(["store", "--store", s, "ls", "--json"]))).unwrap();
    assert_eq!(ls.as_array().unwrap().len(), ldd(Path::new("/bin/bash")).len());
    // gc refuses programs without a lock rather than delete everything.
    let out = run(cah().args(["store", "--store", s, "gc", "--keep", "/bin/true"]));
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn cache_survives_parallel_writers_and_misses_changed_files() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("hashes");
    let c = cache.to_str().unwrap();
    ok(cah().args(["cache", "--file", c, "init", "--slots", "64"]));
    // Files to hash: copies we can change, plus the libraries bash uses.
    let mut files: Vec<PathBuf> = (0..24)
        .map(|i| {
            let p = dir.path().join(format!("f{i}"));
            std::fs::write(&p, format!("content {i}").repeat(100 + i)).unwrap();
            p
        })
        .collect();
    files.extend(ldd(Path::new("/bin/bash")).into_values());
    // 16 processes at once, each adding every file (in different orders).
    let children: Vec<_> = (0..16)
        .map(|i| {
            let mut list = files.clone();
            list.rotate_left(i % files.len());
            cah()
                .args(["cache", "--file", c, "add"])
                .args(&list)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let out = ok(cah().args(["cache", "--file", c, "verify"]));
    assert!(out.contains("0 busy, 0 corrupt"), "{out}");
    let out = ok(cah().args(["cache", "--file", c, "lookup"]).args(&files));
    for f in &files {
        assert!(out.contains(&format!("{}  {}", b3(f), f.display())), "{out}");
    }
    let stats: Value = serde_json::from_str(&ok(cah().args(["cache", "--file", c, "stats", "--json"]))).unwrap();
    // Lock-free insertion lets two processes that race on the same new
    // inode claim two slots (both hold the right digest); no entry may be
    // missing, and duplicates cannot exceed one per racing writer.
    let entries = stats["entries"].as_u64().unwrap();
    assert!(entries >= files.len() as u64 && entries <= files.len() as u64 + 16, "{stats}");
    assert_eq!(stats["slots"], 64);
    assert!(stats["hits"].as_u64().unwrap() > 0);

    // Same size, mtime put back: ctime still changes, so it is a miss.
    let f = &files[0];
    let mtime = std::fs::metadata(f).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(f).unwrap();
    bytes[0] ^= 1;
    std::fs::write(f, &bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(f)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let out = run(cah().args(["cache", "--file", c, "lookup"]).arg(f));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("not cached"));

    ok(cah().args(["cache", "--file", c, "clear"]));
    let stats: Value = serde_json::from_str(&ok(cah().args(["cache", "--file", c, "stats", "--json"]))).unwrap();
    assert_eq!(stats["entries"], 0);

    // Not a cache file: refused with a message, not misread.
    std::fs::write(dir.path().join("junk"), vec![7u8; 4096]).unwrap();
    let out = run(cah()
        .args(["cache", "--file"])
        .arg(dir.path().join("junk"))
        .arg("verify"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a hash cache file"));
}

#[test]
fn aarch64_program_in_the_cross_sysroot() {
    let root = Path::new("/usr/aarch64-linux-gnu");
    if !have("aarch64-linux-gnu-gcc") || !have("qemu-aarch64") || !root.join("lib/libc.so.6").exists() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("h.c"), "#include <stdio.h>\n#include <math.h>\nint main(int c, char **v) { printf(\"%g\\n\", sqrt(c * 36.0)); return 0; }\n").unwrap();
    ok(Command::new("aarch64-linux-gnu-gcc")
        .current_dir(d)
        .args(["-O2", "-o", "h", "h.c", "-lm"]));
    let r = root.to_str().unwrap();
    patch(&d.join("h"), &d.join("h.p"), &["--root", r]);
    patch(&d.join("h.p"), &d.join("h.pp"), &["--root", r]);
    assert!(std::fs::read(d.join("h.p")).unwrap() == std::fs::read(d.join("h.pp")).unwrap());
    let shown = show_json(&d.join("h.p"), &["--root", r]);
    for e in shown["entries"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap();
        assert_eq!(
            e["digest"].as_str().unwrap(),
            b3(&root.join("lib").join(name)),
            "{name}"
        );
    }
    assert_eq!(shown["entries"].as_array().unwrap().len(), 2);
    ok(cah().args(["verify", "--root", r]).arg(d.join("h.p")));
    patch(
        &d.join("h.p"),
        &d.join("h.back"),
        &["--root", r, "--interp", "/lib/ld-linux-aarch64.so.1"],
    );
    assert_eq!(
        ok(Command::new("qemu-aarch64").args(["-L", r]).arg(d.join("h.back"))),
        "6\n"
    );
    if have("eu-elflint") {
        assert_eq!(elflint(&d.join("h.p")), elflint(&d.join("h")));
    }
}
