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

use serde_json::{json, Value};

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
    let found = Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().is_ok_and(|o| o.status.success());
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
                    (e["digest"].as_str().unwrap().to_string(), e["path"].as_str().unwrap().to_string()),
                )
            })
            .collect();
        assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "{name}: closure names");
        for (lib, path) in &want {
            assert_eq!(got[lib].0, format!("blake3:{}", b3(path)), "{name}: digest of {lib}");
            assert_eq!(b3(Path::new(&got[lib].1)), b3(path), "{name}: {lib} found at another file");
        }
        assert_eq!(shown["interp"], "/usr/lib/ld-cah/ld-cah.so");
        assert_eq!((&shown["version"], &shown["command"], &shown["lock_version"]), (&json!(1), &json!("show"), &json!(1)));
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
            ok(Command::new("patchelf").arg("--set-interpreter").arg("/lib64/ld-linux-x86-64.so.2").arg(&pe));
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
/// `cah patch --json`: the documented frame (docs/json.md), one entry per
/// file with what happened to it, and errors as JSON too.
#[test]
fn patch_json_reports_each_file() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("true");
    let b = dir.path().join("bash");
    copy_exec(Path::new("/bin/true"), &a);
    copy_exec(Path::new("/bin/bash"), &b);
    let missing = dir.path().join("missing");
    let out = run(cah().args(["patch", "--json", "--interp", "/lib/ld-test.so"]).arg(&a).arg(&missing).arg(&b));
    assert_eq!(out.status.code(), Some(1), "one of three files failed");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((&doc["version"], &doc["command"]), (&json!(1), &json!("patch")));
    let e = doc["entries"].as_array().unwrap();
    assert_eq!(e.len(), 3, "{doc}");
    // /bin/true needs libc only; bash needs libtinfo and libc.
    assert_eq!((&e[0]["status"], &e[0]["locked"], &e[0]["interpreter"]), (&json!("patched"), &json!(1), &json!("/lib/ld-test.so")));
    assert_eq!((&e[1]["status"], &e[1]["path"]), (&json!("failed"), &json!(missing.display().to_string())));
    assert!(e[1]["error"].as_str().unwrap().contains("missing"), "{doc}");
    assert_eq!((&e[2]["status"], &e[2]["locked"]), (&json!("patched"), &json!(2)));
    // Patched again: nothing changes, and it says so.
    let doc: Value = serde_json::from_str(&ok(cah().args(["patch", "--json"]).arg(&a))).unwrap();
    assert_eq!((&doc["entries"][0]["status"], &doc["entries"][0]["interpreter"]), (&json!("unchanged"), &json!("/lib/ld-test.so")));
    // A lone failure is the error document.
    let out = run(cah().args(["patch", "--json"]).arg(&missing));
    assert_ne!(out.status.code(), Some(0));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["command"], "patch");
    assert!(doc["error"].as_str().unwrap().contains("missing"), "{doc}");
}

fn elflint(path: &Path) -> Vec<String> {
    let out = run(Command::new("eu-elflint").arg("--gnu-ld").arg(path));
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    text.lines().filter(|l| !l.is_empty() && *l != "No errors" && !l.contains("with owner name 'CAH'")).map(|l| l.to_string()).collect()
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
        assert_eq!(String::from_utf8_lossy(&all.stderr), "", "readelf -a complains about {name}");
        let interp = ok(Command::new("readelf").arg("-lW").arg(&patched));
        assert!(interp.contains("[Requesting program interpreter: /usr/lib/ld-cah/ld-cah.so]"), "{interp}");
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
        assert!(a == std::fs::read(&twice).unwrap(), "{name}: patching a patched file changed it");
        assert!(a == std::fs::read(&again).unwrap(), "{name}: patching is not deterministic");
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
    assert!(text.contains(&blake3::hash(&other).to_hex().to_string()), "rejected digest named: {text}");
    assert!(text.contains("ok        libc.so.6"), "{text}");
    let json: Value = serde_json::from_slice(&run(cah().args(["verify", "--json", "--root", r, "--store", s]).arg(&bash)).stdout).unwrap();
    assert_eq!((&json["version"], &json["command"], &json["ok"]), (&json!(1), &json!("verify"), &json!(false)));
    let tinfo_entry = json["entries"].as_array().unwrap().iter().find(|e| e["name"] == "libtinfo.so.6").unwrap();
    assert_eq!(tinfo_entry["status"], "mismatch");
    assert_eq!(tinfo_entry["candidates"][0]["digest"], format!("blake3:{}", blake3::hash(&other).to_hex()));
    // Errors are JSON too, on stdout, with exit status 2.
    let out = run(cah().args(["verify", "--json"]).arg("/bin/true"));
    assert_eq!(out.status.code(), Some(2));
    let err: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((&err["version"], &err["command"]), (&json!(1), &json!("verify")));
    assert!(err["error"].as_str().unwrap().contains("no closure lock"), "{err}");

    // The right file in the store satisfies it again (store first).
    std::fs::create_dir_all(&store).unwrap();
    let good = dir.path().join("libtinfo.so.6.good");
    std::fs::write(&good, &original).unwrap();
    ok(cah().args(["store", "--store", s, "add"]).arg(&good));
    let out = ok(cah().args(["verify", "--root", r, "--store", s]).arg(&bash));
    assert!(out.contains("ok        libtinfo.so.6") && out.contains("(store)"), "{out}");

    // Gone from both: missing.
    std::fs::remove_file(tinfo).unwrap();
    std::fs::remove_dir_all(&store).unwrap();
    let out = run(cah().args(["verify", "--root", r, "--store", s]).arg(&bash));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("missing   libtinfo.so.6"), "{text}");
    // `show` still prints the lock, with where things are now.
    let shown = ok(cah().args(["show", "--root", r, "--store", s]).arg(&bash));
    assert!(shown.contains("libtinfo.so.6") && shown.contains("(not found)"), "{shown}");

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
    std::fs::write(d.join("main.c"), "int a(void); int b(void); int main(void) { return a() + b() == 12 ? 0 : 1; }\n").unwrap();
    gcc(&["-shared", "-fPIC", "-o", "lib/one/libx.so.1", "-Wl,-soname,libx.so.1", "x1.c"], d);
    gcc(&["-shared", "-fPIC", "-o", "lib/two/libx.so.1", "-Wl,-soname,libx.so.1", "x2.c"], d);
    let rpath = |sub: &str| format!("-Wl,--enable-new-dtags,-rpath,$ORIGIN/{sub}");
    gcc(&["-shared", "-fPIC", "-o", "lib/liba.so", "a.c", "-Llib/one", "-l:libx.so.1", &rpath("one")], d);
    gcc(&["-shared", "-fPIC", "-o", "lib/libb.so", "b.c", "-Llib/two", "-l:libx.so.1", &rpath("two")], d);
    gcc(&["-o", "prog", "main.c", "-Llib", "-la", "-lb", &rpath("lib")], d);
    // glibc runs it (taking lib/one's libx for both), but the lock cannot
    // say which libx.so.1 is meant: cah refuses.
    ok(&mut Command::new(d.join("prog")));
    let out = run(cah().arg("patch").arg(d.join("prog")).arg("-o").arg(d.join("prog.p")));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("diamond conflict") && err.contains("libx.so.1"), "{err}");
    assert!(err.contains("lib/one/libx.so.1") && err.contains("lib/two/libx.so.1"), "{err}");
    assert!(!d.join("prog.p").exists());

    // With the same content in both places it is no conflict.
    std::fs::copy(d.join("lib/one/libx.so.1"), d.join("lib/two/libx.so.1")).unwrap();
    patch(&d.join("prog"), &d.join("prog.p"), &[]);
    let shown = show_json(&d.join("prog.p"), &[]);
    let names: Vec<&str> = shown["entries"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
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
    let names: Vec<&str> = shown["entries"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["libc.so.6", "libm.so.6"]);
    // Locked names are found in the store first.
    assert!(shown["entries"].as_array().unwrap().iter().all(|e| e["via"] == "store"), "{shown}");
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
    assert_eq!((&ls["version"], &ls["command"], &ls["store"]), (&json!(1), &json!("store ls"), &json!(s)));
    let digests: Vec<String> = ls["entries"].as_array().unwrap().iter().map(|i| i["digest"].as_str().unwrap().to_string()).collect();
    for (_, path) in ldd(Path::new("/bin/bash")) {
        assert!(digests.contains(&format!("blake3:{}", b3(&path))), "{path:?} not stored");
    }
    assert!(digests.contains(&format!("blake3:{}", b3(&extra))));
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
    let out = ok(cah().args(["store", "--store", s, "gc", "--dry-run", "--keep"]).arg(&prog));
    assert!(out.contains("would remove") && victim.exists());
    ok(cah().args(["store", "--store", s, "gc", "--keep"]).arg(&prog));
    assert!(!victim.exists());
    ok(cah().args(["store", "--store", s, "verify"]));
    let ls: Value = serde_json::from_str(&ok(cah().args(["store", "--store", s, "ls", "--json"]))).unwrap();
    assert_eq!(ls["entries"].as_array().unwrap().len(), ldd(Path::new("/bin/bash")).len());
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
            cah().args(["cache", "--file", c, "add"]).args(&list).stdout(std::process::Stdio::null()).spawn().unwrap()
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
    // Hits are not counted: a warm start writes nothing to the cache.
    assert!(stats.get("hits").is_none(), "{stats}");

    // Same size, mtime put back: ctime still changes, so it is a miss.
    let f = &files[0];
    let mtime = std::fs::metadata(f).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(f).unwrap();
    bytes[0] ^= 1;
    std::fs::write(f, &bytes).unwrap();
    std::fs::File::options().write(true).open(f).unwrap().set_modified(mtime).unwrap();
    let out = run(cah().args(["cache", "--file", c, "lookup"]).arg(f));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("not cached"));

    ok(cah().args(["cache", "--file", c, "clear"]));
    let stats: Value = serde_json::from_str(&ok(cah().args(["cache", "--file", c, "stats", "--json"]))).unwrap();
    assert_eq!(stats["entries"], 0);

    // Not a cache file: refused with a message, not misread.
    std::fs::write(dir.path().join("junk"), vec![7u8; 4096]).unwrap();
    let out = run(cah().args(["cache", "--file"]).arg(dir.path().join("junk")).arg("verify"));
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
    std::fs::write(
        d.join("h.c"),
        "#include <stdio.h>\n#include <math.h>\nint main(int c, char **v) { printf(\"%g\\n\", sqrt(c * 36.0)); return 0; }\n",
    )
    .unwrap();
    ok(Command::new("aarch64-linux-gnu-gcc").current_dir(d).args(["-O2", "-o", "h", "h.c", "-lm"]));
    let r = root.to_str().unwrap();
    patch(&d.join("h"), &d.join("h.p"), &["--root", r]);
    patch(&d.join("h.p"), &d.join("h.pp"), &["--root", r]);
    assert!(std::fs::read(d.join("h.p")).unwrap() == std::fs::read(d.join("h.pp")).unwrap());
    let shown = show_json(&d.join("h.p"), &["--root", r]);
    for e in shown["entries"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap();
        assert_eq!(e["digest"].as_str().unwrap(), format!("blake3:{}", b3(&root.join("lib").join(name))), "{name}");
    }
    assert_eq!(shown["entries"].as_array().unwrap().len(), 2);
    // Every locked file matches, but the cross libc (2.36-8cross1) has a
    // layout of its own that ld-cah has no table for: verify says the
    // program cannot start.
    let v = cah().args(["verify", "--root", r]).arg(d.join("h.p")).output().unwrap();
    let text = String::from_utf8_lossy(&v.stdout).into_owned();
    assert_eq!(v.status.code(), Some(1), "{text}");
    assert!(text.lines().filter(|l| l.starts_with("ok        ")).count() == 2, "{text}");
    assert!(text.contains("no-table  libc.so.6  glibc 2.36 ("), "{text}");
    patch(&d.join("h.p"), &d.join("h.back"), &["--root", r, "--interp", "/lib/ld-linux-aarch64.so.1"]);
    assert_eq!(ok(Command::new("qemu-aarch64").args(["-L", r]).arg(d.join("h.back"))), "6\n");
    if have("eu-elflint") {
        assert_eq!(elflint(&d.join("h.p")), elflint(&d.join("h")));
    }
}

// ---------------------------------------------------------------------
// Hostile inputs and in-place patching. `cah` is run as root on files
// other people wrote: it must never panic or hang, and patching in place
// must not hand anyone new rights.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::{Duration, Instant};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipping part of this test: it needs root");
    }
    root
}

/// Runs `cmd`, killing it (and failing the test) if it takes longer than
/// `limit`.
fn run_limited(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("{cmd:?} hung (killed after {limit:?}); stderr: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `cah args...` on a hostile input: it must finish within the time
/// limit and not panic; if it fails, with exit status 2 and one error line.
/// Returns whether it succeeded.
fn hostile(what: &str, args: &[&std::ffi::OsStr]) -> bool {
    let out = run_limited(cah().args(args), Duration::from_secs(60));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{what}: cah panicked: {err}");
    assert!(out.status.code().is_some(), "{what}: killed by a signal ({}): {err}", out.status);
    if out.status.success() {
        return true;
    }
    assert_eq!(out.status.code(), Some(2), "{what}: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines.len() == 1 && lines[0].starts_with("cah: error: "), "{what}: not one error line: {err}");
    false
}

fn u16_at(d: &[u8], off: usize) -> u16 {
    u16::from_le_bytes(d[off..off + 2].try_into().unwrap())
}
fn u32_at(d: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(d[off..off + 4].try_into().unwrap())
}
fn u64_at(d: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(d[off..off + 8].try_into().unwrap())
}
fn put_u16(d: &mut [u8], off: usize, v: u16) {
    d[off..off + 2].copy_from_slice(&v.to_le_bytes());
}
fn put_u64(d: &mut [u8], off: usize, v: u64) {
    d[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// (offset of the program header, p_type, p_offset) of each program header.
fn phdrs(d: &[u8]) -> Vec<(usize, u32, u64)> {
    let phoff = u64_at(d, 0x20) as usize;
    (0..u16_at(d, 0x38) as usize)
        .map(|i| {
            let at = phoff + i * 56;
            (at, u32_at(d, at), u64_at(d, at + 8))
        })
        .collect()
}

/// (file offset of the entry, d_tag, d_val) of each dynamic entry up to
/// DT_NULL.
fn dyns(d: &[u8]) -> Vec<(usize, u64, u64)> {
    let (_, _, off) = phdrs(d).into_iter().find(|p| p.1 == 2).expect("PT_DYNAMIC");
    let mut v = Vec::new();
    let mut at = off as usize;
    while u64_at(d, at) != 0 {
        v.push((at, u64_at(d, at), u64_at(d, at + 8)));
        at += 16;
    }
    v
}

/// Section headers' (offset of the header, sh_type) for a section named
/// `name`.
fn section(d: &[u8], name: &str) -> Option<usize> {
    let shoff = u64_at(d, 0x28) as usize;
    let shnum = u16_at(d, 0x3c) as usize;
    let shstrndx = u16_at(d, 0x3e) as usize;
    let strtab = u64_at(d, shoff + shstrndx * 64 + 0x18) as usize;
    (0..shnum).map(|i| shoff + i * 64).find(|&at| {
        let n = strtab + u32_at(d, at) as usize;
        d[n..].split(|&b| b == 0).next() == Some(name.as_bytes())
    })
}

/// How `cah` must answer a corrupted file: refuse it (`Fail`), refuse it
/// as a program to patch but maybe accept it as a library (only the
/// patcher reads section headers and hash tables: `FailToPatch`), or just
/// not crash (`Any`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expect {
    Fail,
    FailToPatch,
    Any,
}

/// Corruptions of a real ELF file: each a name, the bytes and what `cah`
/// must do with them.
fn malformed(orig: &[u8]) -> Vec<(String, Vec<u8>, Expect)> {
    use Expect::*;
    let mut v: Vec<(String, Vec<u8>, Expect)> = Vec::new();
    let mut add = |name: &str, expect: Expect, f: &dyn Fn(&mut Vec<u8>)| {
        let mut d = orig.to_vec();
        f(&mut d);
        v.push((name.to_string(), d, expect));
    };
    add("empty", Fail, &|d| d.clear());
    add("truncated to 100 bytes", Fail, &|d| d.truncate(100));
    add("truncated in the program headers", Fail, &|d| d.truncate(0x40 + 56 * 2));
    add("truncated to half", Fail, &|d| {
        let n = d.len() / 2;
        d.truncate(n)
    });
    add("65535 program headers", Fail, &|d| put_u16(d, 0x38, 0xffff));
    add("65534 section headers", Any, &|d| put_u16(d, 0x3c, 0xfffe));
    add("section headers past the end", Any, &|d| put_u64(d, 0x28, u64::MAX - 0x1000));
    add("program headers at offset 2^64-256", Fail, &|d| put_u64(d, 0x20, u64::MAX - 255));
    for (at, ty, _) in phdrs(orig) {
        match ty {
            2 => {
                add("PT_DYNAMIC outside the file", Fail, &|d| {
                    let past = d.len() as u64 + 0x1000;
                    put_u64(d, at + 8, past)
                });
                add("PT_DYNAMIC offset wrapping", Fail, &|d| put_u64(d, at + 8, u64::MAX - 15));
                add("PT_DYNAMIC size 2^63", Fail, &|d| put_u64(d, at + 32, 1 << 63));
            }
            3 => add("PT_INTERP size 2^64-16", Fail, &|d| put_u64(d, at + 32, u64::MAX - 15)),
            4 => add("PT_NOTE offset wrapping", Fail, &|d| put_u64(d, at + 8, u64::MAX - 15)),
            1 => add("PT_LOAD alignment 2^63", FailToPatch, &|d| put_u64(d, at + 48, 1 << 63)),
            _ => {}
        }
    }
    let dynamic = dyns(orig);
    for &(at, tag, val) in &dynamic {
        match tag {
            5 => add("DT_STRTAB outside every segment", Fail, &|d| put_u64(d, at + 8, u64::MAX - 15)),
            10 => {
                add("DT_STRSZ 2^64-1", Fail, &|d| put_u64(d, at + 8, u64::MAX));
                // The table then ends inside the first string: no NUL.
                add("string table without NUL", Fail, &|d| put_u64(d, at + 8, 1));
            }
            1 => add("DT_NEEDED offset 2^64-16", Fail, &|d| put_u64(d, at + 8, u64::MAX - 15)),
            14 => add("DT_SONAME offset out of range", Fail, &|d| put_u64(d, at + 8, val + (1 << 40))),
            _ => {}
        }
    }
    // Every DT_NEEDED entry names the same string, and the whole table is
    // DT_NEEDED (repeated names, a cycle if it is its own SONAME).
    if let Some(&(_, _, name)) = dynamic.iter().find(|e| e.1 == 1 || e.1 == 14) {
        add("every dynamic entry DT_NEEDED", Any, &|d| {
            for &(at, tag, _) in &dynamic {
                if !matches!(tag, 5 | 10) {
                    put_u64(d, at, 1);
                    put_u64(d, at + 8, name);
                }
            }
        });
    }
    // Hash tables: huge counts, and chains that never end.
    for name in [".gnu.hash", ".hash"] {
        if let Some(sh) = section(orig, name) {
            let off = u64_at(orig, sh + 0x18) as usize;
            let size = u64_at(orig, sh + 0x20) as usize;
            add(&format!("{name} with 2^32-1 buckets"), Any, &|d| {
                d[off..off + 4].copy_from_slice(&u32::MAX.to_le_bytes());
                d[off + 8..off + 12].copy_from_slice(&u32::MAX.to_le_bytes());
            });
            add(&format!("{name} all ones"), Any, &|d| d[off..off + size].fill(0xff));
            if name == ".gnu.hash" {
                // Zero bloom words once made the builder index an empty
                // vector (a panic); a shift of 32 or more overflows.
                add(".gnu.hash with no bloom words", FailToPatch, &|d| d[off + 8..off + 12].fill(0));
                add(".gnu.hash bloom shift 40", FailToPatch, &|d| d[off + 12] = 40);
                add(".gnu.hash 3 bloom words", FailToPatch, &|d| d[off + 8..off + 12].copy_from_slice(&3u32.to_le_bytes()));
            } else {
                add(".hash with no buckets", FailToPatch, &|d| d[off..off + 4].fill(0));
            }
        }
    }
    v
}

#[test]
fn malformed_programs_give_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let orig = std::fs::read("/usr/bin/true").unwrap();
    // A patched program too, so the lock and the re-patch path see them.
    let patched = dir.path().join("true.p");
    patch(Path::new("/usr/bin/true"), &patched, &[]);
    let patched = std::fs::read(&patched).unwrap();
    let mut cases = malformed(&orig);
    cases.extend(malformed(&patched).into_iter().map(|(n, d, f)| (format!("patched, {n}"), d, f)));
    assert!(cases.len() > 20);
    for (i, (what, bytes, expect)) in cases.iter().enumerate() {
        let prog = dir.path().join(format!("prog{i}"));
        std::fs::write(&prog, bytes).unwrap();
        let out = dir.path().join(format!("prog{i}.out"));
        let ok = hostile(what, &["patch".as_ref(), prog.as_os_str(), "-o".as_ref(), out.as_os_str()]);
        assert!(!(ok && *expect != Expect::Any), "{what}: patched");
        hostile(what, &["show".as_ref(), prog.as_os_str()]);
        hostile(what, &["verify".as_ref(), prog.as_os_str()]);
        // In place too: the file is left alone when it fails.
        let ok = hostile(what, &["patch".as_ref(), prog.as_os_str()]);
        if !ok {
            assert!(std::fs::read(&prog).unwrap() == *bytes, "{what}: changed");
        }
    }
    // Nothing but the programs and outputs is left behind.
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        assert!(!name.contains(".cah-"), "temporary file {name} left behind");
    }
}

#[test]
fn malformed_libraries_give_one_error_line() {
    let libc_path = Path::new("/lib/x86_64-linux-gnu/libc.so.6");
    let orig = std::fs::read(libc_path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let libdir = root.join("lib/x86_64-linux-gnu");
    std::fs::create_dir_all(&libdir).unwrap();
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    let prog = root.join("usr/bin/true");
    copy_exec(Path::new("/usr/bin/true"), &prog);
    let lib = libdir.join("libc.so.6");
    let r = root.as_os_str();
    let out = dir.path().join("out");
    let attempt = |what: &str| hostile(what, &["patch".as_ref(), "--root".as_ref(), r, prog.as_os_str(), "-o".as_ref(), out.as_os_str()]);
    let cases = malformed(&orig);
    for (what, bytes, expect) in &cases {
        std::fs::write(&lib, bytes).unwrap();
        let ok = attempt(what);
        // A file too short to be ELF is skipped as glibc skips it, and then
        // nothing else is found: an error either way.
        assert!(!(ok && *expect == Expect::Fail), "{what}: locked");
    }

    // Not regular files where a library, the program or ld.so.cache is
    // looked for: skipped (never opened, so never blocking) or refused.
    let mkfifo = |p: &Path| {
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo {p:?}");
    };
    std::fs::remove_file(&lib).unwrap();
    mkfifo(&lib);
    assert!(!attempt("a FIFO as libc.so.6"));
    std::fs::remove_file(&lib).unwrap();
    std::fs::create_dir(&lib).unwrap();
    assert!(!attempt("a directory as libc.so.6"));
    std::fs::remove_dir(&lib).unwrap();
    std::fs::copy(libc_path, &lib).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    mkfifo(&root.join("etc/ld.so.cache"));
    assert!(attempt("a FIFO as ld.so.cache"), "a FIFO as ld.so.cache is no cache, not an error");
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    for what in [fifo.as_os_str(), dir.path().as_os_str(), "/dev/zero".as_ref()] {
        for cmd in ["patch", "show", "verify"] {
            assert!(!hostile(&format!("{cmd} {what:?}"), &[cmd.as_ref(), what]));
        }
        assert!(!hostile(
            &format!("store add {what:?}"),
            &["store".as_ref(), "--store".as_ref(), dir.path().join("s").as_os_str(), "add".as_ref(), what]
        ));
        assert!(!hostile(
            &format!("cache add {what:?}"),
            &["cache".as_ref(), "--file".as_ref(), dir.path().join("c").as_os_str(), "add".as_ref(), what]
        ));
        assert!(!hostile(&format!("cache --file {what:?}"), &["cache".as_ref(), "--file".as_ref(), what, "stats".as_ref()]));
    }

    // A dependency cycle (liba needs libb needs liba) is fine.
    if have("gcc") {
        let d = dir.path();
        std::fs::write(d.join("a.c"), "int b(void); int a(void) { return 1; }\n").unwrap();
        std::fs::write(d.join("b.c"), "int a(void); int b(void) { return a(); }\n").unwrap();
        std::fs::write(d.join("m.c"), "int b(void); int main(void) { return b() - 1; }\n").unwrap();
        let so = |name: &str, src: &str, extra: &[&str]| {
            let mut args = vec!["-shared", "-fPIC", "-o", name, src, "-L.", "-Wl,-rpath,$ORIGIN"];
            args.extend_from_slice(extra);
            gcc(&args, d);
        };
        so("libb.so", "b.c", &[]);
        so("liba.so", "a.c", &["-lb"]);
        so("libb.so", "b.c", &["-la"]);
        gcc(&["-o", "m", "m.c", "-L.", "-lb", "-Wl,-rpath,$ORIGIN"], d);
        ok(&mut Command::new(d.join("m")));
        assert!(hostile("a cycle", &["patch".as_ref(), d.join("m").as_os_str(), "-o".as_ref(), d.join("m.p").as_os_str()]));
        let shown = show_json(&d.join("m.p"), &[]);
        let names: Vec<&str> = shown["entries"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["liba.so", "libb.so", "libc.so.6"]);
    }
}

/// Starts `prog 60`. A file this process just wrote can be briefly "busy"
/// for `execve` (another test thread's child holds the write descriptor
/// between its fork and exec), so that is retried.
fn start_sleeper(prog: &Path) -> std::process::Child {
    for _ in 0..100 {
        match Command::new(prog).arg("60").spawn() {
            Ok(child) => return child,
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("running {prog:?}: {e}"),
        }
    }
    panic!("{prog:?} stays busy");
}

fn stat(p: &Path) -> std::fs::Metadata {
    std::fs::metadata(p).unwrap()
}

fn cstr(s: &str) -> std::ffi::CString {
    std::ffi::CString::new(s).unwrap()
}

fn path_c(p: &Path) -> std::ffi::CString {
    std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap()
}

/// Sets an extended attribute; false if the file system has none.
fn set_xattr(p: &Path, name: &str, value: &[u8]) -> bool {
    let (p, n) = (path_c(p), cstr(name));
    // SAFETY: NUL-terminated strings and a readable value buffer.
    let r = unsafe { libc::setxattr(p.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTSUP), "setxattr {name}: {e}");
        eprintln!("skipping part of this test: no extended attributes here");
    }
    r == 0
}

fn get_xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let (p, n) = (path_c(p), cstr(name));
    let mut buf = vec![0u8; 256];
    // SAFETY: NUL-terminated strings and a writable buffer of its length.
    let r = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    usize::try_from(r).ok().map(|n| buf[..n].to_vec())
}

/// `security.capability` granting CAP_NET_RAW (what `setcap cap_net_raw+ep`
/// writes).
fn net_raw_caps() -> Vec<u8> {
    let mut v = Vec::new();
    for w in [0x0200_0001u32, 1 << 13, 0, 0, 0] {
        v.extend_from_slice(&w.to_le_bytes());
    }
    v
}

fn no_temporaries(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        assert!(!name.contains(".cah-"), "temporary file {name} left behind");
    }
}

#[test]
fn in_place_patch_keeps_owner_mode_hard_links_and_xattrs() {
    if !is_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let prog = dir.path().join("prog");
    let link = dir.path().join("link");
    copy_exec(Path::new("/usr/bin/true"), &prog);
    std::os::unix::fs::chown(&prog, Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::fs::hard_link(&prog, &link).unwrap();
    let xattrs = set_xattr(&prog, "user.test", b"kept");
    let caps = xattrs && set_xattr(&prog, "security.capability", &net_raw_caps());
    let before = stat(&prog);

    ok(cah().arg("patch").arg(&prog));

    let after = stat(&prog);
    assert_eq!((after.uid(), after.gid()), (65534, 65534), "owner changed");
    assert_eq!(after.mode() & 0o7777, 0o4755, "mode changed");
    assert_eq!((after.dev(), after.ino()), (before.dev(), before.ino()), "not the same inode");
    assert_eq!(after.nlink(), 2, "hard link broken");
    assert!(std::fs::read(&prog).unwrap() == std::fs::read(&link).unwrap());
    assert_eq!(show_json(&link, &[])["entries"].as_array().unwrap().len(), 1, "the other name shows the lock");
    if xattrs {
        assert_eq!(get_xattr(&prog, "user.test").as_deref(), Some(&b"kept"[..]));
    }
    if caps {
        // The kernel drops file capabilities on write; cah puts them back.
        assert_eq!(get_xattr(&prog, "security.capability"), Some(net_raw_caps()));
    }
    no_temporaries(dir.path());
    // The same bytes as a patch to a new file.
    let copy = dir.path().join("copy");
    copy_exec(Path::new("/usr/bin/true"), &copy);
    patch(&copy, &dir.path().join("copy.p"), &[]);
    assert!(std::fs::read(&prog).unwrap() == std::fs::read(dir.path().join("copy.p")).unwrap());
}

#[test]
fn in_place_patch_of_a_running_program_replaces_it_safely() {
    if !is_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let prog = dir.path().join("sleeper");
    copy_exec(Path::new("/usr/bin/sleep"), &prog);
    std::os::unix::fs::chown(&prog, Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let xattrs = set_xattr(&prog, "user.test", b"kept");
    let original = std::fs::read(&prog).unwrap();

    // Running and hard-linked: neither rewritable nor replaceable.
    let link = dir.path().join("link");
    std::fs::hard_link(&prog, &link).unwrap();
    // (Running once `spawn` returns: it waits for the exec.)
    let mut child = start_sleeper(&prog);
    let out = run_limited(cah().arg("patch").arg(&prog), Duration::from_secs(60));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("running") && err.contains("hard links"), "{err}");
    assert!(std::fs::read(&prog).unwrap() == original);
    no_temporaries(dir.path());

    // Running, one name: a new file with the same owner, mode and xattrs.
    std::fs::remove_file(&link).unwrap();
    let out = run_limited(cah().arg("patch").arg(&prog), Duration::from_secs(60));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("replaced by a new file"), "{err}");
    let m = stat(&prog);
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (65534, 65534, 0o4755));
    if xattrs {
        assert_eq!(get_xattr(&prog, "user.test").as_deref(), Some(&b"kept"[..]));
    }
    assert_eq!(show_json(&prog, &[])["entries"].as_array().unwrap().len(), 1);
    no_temporaries(dir.path());
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn no_set_id_bit_survives_an_owner_change() {
    if !is_root() {
        return;
    }
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    let prog = d.join("prog");
    copy_exec(Path::new("/usr/bin/true"), &prog);
    std::os::unix::fs::chown(&prog, Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o6755)).unwrap();

    // Root writing a copy (-o) of nobody's set-ID program: the copy is
    // root's, so it must not be set-ID (it would be set-uid root).
    let out = d.join("out");
    patch(&prog, &out, &[]);
    let m = stat(&out);
    assert_eq!(m.uid(), 0);
    assert_eq!(m.mode() & 0o7777, 0o755, "set-ID bits kept on a file whose owner changed");
    // A symbolic link planted at OUT is replaced, not followed.
    let victim = d.join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let planted = d.join("planted");
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    patch(&prog, &planted, &[]);
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert!(std::fs::symlink_metadata(&planted).unwrap().is_file());

    // A copy of cah that nobody can run wherever the build tree is.
    let cah_copy = d.join("cah");
    std::fs::copy(env!("CARGO_BIN_EXE_cah"), &cah_copy).unwrap();
    std::fs::set_permissions(&cah_copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let as_nobody = || {
        let mut c = Command::new(&cah_copy);
        c.uid(65534).gid(65534);
        c
    };

    // Not root: nobody replaces a running, group-writable set-ID program
    // owned by root (group nogroup) in a directory nobody may write. The
    // owner cannot be kept, so both set-ID bits go.
    let sub = d.join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::os::unix::fs::chown(&sub, Some(65534), Some(65534)).unwrap();
    let victim = sub.join("sleeper");
    copy_exec(Path::new("/usr/bin/sleep"), &victim);
    std::os::unix::fs::chown(&victim, Some(0), Some(65534)).unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o6775)).unwrap();
    let mut child = start_sleeper(&victim);
    let out = run_limited(as_nobody().arg("patch").arg(&victim).arg("--keep-interp"), Duration::from_secs(60));
    let err = String::from_utf8_lossy(&out.stderr);
    let _ = child.kill();
    let _ = child.wait();
    assert!(out.status.success(), "{err}");
    let m = stat(&victim);
    assert_eq!((m.uid(), m.gid()), (65534, 65534), "{err}");
    assert_eq!(m.mode() & 0o7777, 0o775, "set-ID bit kept after the owner changed: {:o}; {err}", m.mode());
    assert!(err.contains("set-ID bits cleared"), "{err}");

    // Not root, own file: rewriting it in place keeps the owner, so the
    // set-user-ID bit the kernel drops on a write by non-root comes back.
    let mine = sub.join("mine");
    copy_exec(Path::new("/usr/bin/true"), &mine);
    std::os::unix::fs::chown(&mine, Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(&mine, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let out = run_limited(as_nobody().arg("patch").arg(&mine), Duration::from_secs(60));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let m = stat(&mine);
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (65534, 65534, 0o4755), "{err}");
    no_temporaries(&sub);
}
