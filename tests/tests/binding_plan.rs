//! The binding plan: a cold start records what every symbol reference
//! bound to, the next start obeys it and performs no symbol lookup, and a
//! plan that does not fit (damaged, untrusted, or recorded for other files)
//! is ignored, never obeyed. Each run's output is compared with glibc's
//! loader on the same program; `CAH_DEBUG=bindings,statistics` says what
//! the loader did. Both arches, both start modes (direct and `PT_INTERP`).

use std::path::{Path, PathBuf};
use std::process::Command;

use cah_tests::{built_loader, debian_sysroot, root, Arch};

struct Setup {
    arch: Arch,
    /// A private copy of the fixture directory (program and its library).
    dir: tempfile::TempDir,
    cache: tempfile::TempDir,
    loader: PathBuf,
}

#[derive(Debug, PartialEq)]
struct Out {
    stdout: String,
    stderr: String,
    code: Option<i32>,
}

impl Setup {
    fn new(arch: Arch) -> Setup {
        let fixtures = root().join("target/fixtures").join(arch.name()).join("glibc");
        assert!(fixtures.join("cxx").exists(), "run `cargo xtask fixtures`");
        let dir = tempfile::tempdir().unwrap();
        for f in ["cxx", "libcxxthrow.so"] {
            std::fs::copy(fixtures.join(f), dir.path().join(f)).unwrap();
        }
        let loader = built_loader(arch).canonicalize().unwrap();
        std::fs::copy(dir.path().join("cxx"), dir.path().join("cxx-interp")).unwrap();
        let st = Command::new("patchelf").arg("--set-interpreter").arg(&loader).arg(dir.path().join("cxx-interp")).status().unwrap();
        assert!(st.success());
        // On disk, where the CPUID leaves of a plan are compared with the
        // CPU's (`Setup::in_memory` for a cache in a `tmpfs`).
        let cache = tempfile::tempdir_in(root().join("target")).unwrap();
        assert_ne!(fs_type(cache.path()), "tmpfs", "target/ must not be on a tmpfs for these tests");
        Setup { arch, dir, cache, loader }
    }

    /// The same, with its cache in a `tmpfs` (`/dev/shm`), as `/run` is:
    /// a plan read from there was recorded on this machine since it
    /// booted.
    fn in_memory(arch: Arch) -> Setup {
        let mut s = Setup::new(arch);
        s.cache = tempfile::tempdir_in("/dev/shm").unwrap();
        assert_eq!(fs_type(s.cache.path()), "tmpfs", "/dev/shm must be a tmpfs");
        s
    }

    fn command(&self, program: &Path) -> Command {
        match self.arch {
            Arch::X86_64 => Command::new(program),
            Arch::Aarch64 => {
                let mut c = Command::new("qemu-aarch64");
                c.arg("-L").arg(debian_sysroot()).arg(program);
                c
            }
        }
    }

    fn run(&self, c: Command) -> Out {
        self.run_env(c, &[])
    }

    fn run_env(&self, mut c: Command, extra: &[(&str, &str)]) -> Out {
        c.current_dir(self.dir.path())
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("LD_LIBRARY_PATH", self.dir.path())
            .env("CAH_CACHE_DIR", self.cache.path())
            .env("CAH_DEBUG", "bindings,statistics")
            .envs(extra.iter().copied());
        // Another test's thread may fork while it still holds a program
        // it is copying open for writing: exec then fails with ETXTBSY
        // until that child has exec'd in turn.
        let mut tries = 0;
        let out = loop {
            match c.output() {
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 50 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                r => break r.unwrap(),
            }
        };
        Out {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            code: out.status.code(),
        }
    }

    /// The program under glibc's own loader: the reference.
    fn glibc(&self) -> Out {
        let out = self.run(self.command(&self.dir.path().join("cxx")));
        assert_eq!(out.code, Some(0), "glibc: {out:?}");
        out
    }

    fn cah(&self, direct: bool) -> Out {
        if direct {
            let mut c = self.command(&self.loader);
            c.arg(self.dir.path().join("cxx"));
            self.run(c)
        } else {
            self.run(self.command(&self.dir.path().join("cxx-interp")))
        }
    }

    fn plans(&self) -> Vec<(PathBuf, std::time::SystemTime, Vec<u8>)> {
        let Ok(rd) = std::fs::read_dir(self.cache.path().join("plans")) else { return Vec::new() };
        let mut v: Vec<_> = rd
            .map(|e| {
                let p = e.unwrap().path();
                let m = std::fs::metadata(&p).unwrap().modified().unwrap();
                let bytes = std::fs::read(&p).unwrap();
                (p, m, bytes)
            })
            .collect();
        v.sort();
        v
    }
}

/// The number before `what` in the statistics line.
fn stat(out: &Out, what: &str) -> usize {
    let line = out.stderr.lines().find(|l| l.contains("statistics:")).unwrap_or_else(|| panic!("no statistics line: {}", out.stderr));
    let before = line.split(what).next().unwrap();
    before.rsplit(|c: char| !c.is_ascii_digit()).find(|w| !w.is_empty()).unwrap().parse().unwrap()
}

fn cold_then_warm(arch: Arch, direct: bool) {
    let s = Setup::new(arch);
    let reference = s.glibc().stdout;
    let cold = s.cah(direct);
    assert_eq!(cold.code, Some(0), "{arch:?} direct={direct} cold: {cold:?}");
    assert_eq!(cold.stdout, reference, "cold start prints what glibc's loader does");
    assert!(cold.stderr.contains("recording one") && cold.stderr.contains("written"), "{}", cold.stderr);
    assert!(stat(&cold, " lookups") > 1000, "a cold start looks symbols up: {}", cold.stderr);
    let written = s.plans();
    assert_eq!(written.len(), 1, "one plan for one closure");

    let warm = s.cah(direct);
    assert_eq!(warm.code, Some(0), "{warm:?}");
    assert_eq!(warm.stdout, reference, "warm start prints what glibc's loader does");
    assert!(warm.stderr.contains("using the plan"), "{}", warm.stderr);
    assert!(warm.stderr.contains("libc's layout table"), "the plan names libc's layout table: {}", warm.stderr);
    assert_eq!(stat(&warm, " lookups"), 0, "a warm start does no symbol lookup: {}", warm.stderr);
    // The plan has an entry per relocation the cold start resolved, by a
    // lookup or by repeating a recent one; the warm start uses each.
    // The entry count *m*, word 4 (docs/binding-plan.md).
    let entries = u64::from_le_bytes(written[0].2[32..40].try_into().unwrap()) as usize;
    assert!(entries >= stat(&cold, " lookups"), "{entries} entries for {}", cold.stderr);
    assert_eq!(stat(&warm, " bound by plan"), entries, "{}", warm.stderr);
    assert_eq!(s.plans(), written, "a warm start writes nothing");
}

#[test]
fn warm_start_does_no_lookup_x86_64() {
    cold_then_warm(Arch::X86_64, true);
    cold_then_warm(Arch::X86_64, false);
}

#[test]
fn warm_start_does_no_lookup_aarch64() {
    cold_then_warm(Arch::Aarch64, true);
    cold_then_warm(Arch::Aarch64, false);
}

/// Where no plan can be stored (here `CAH_CACHE_DIR` names a file), a
/// start records none: it would be work thrown away at every start.
#[test]
fn nothing_is_recorded_where_no_plan_can_be_stored() {
    for arch in [Arch::X86_64, Arch::Aarch64] {
        let s = Setup::new(arch);
        let reference = s.glibc().stdout;
        let file = s.dir.path().join("not-a-directory");
        std::fs::write(&file, b"").unwrap();
        let out = s.run_env(s.command(&s.dir.path().join("cxx-interp")), &[("CAH_CACHE_DIR", file.to_str().unwrap())]);
        assert_eq!(out.code, Some(0), "{arch:?}: {out:?}");
        assert_eq!(out.stdout, reference, "{arch:?}");
        assert!(out.stderr.contains("none recorded: the cache cannot store one"), "{arch:?}: {}", out.stderr);
        assert!(!out.stderr.contains("recording one") && !out.stderr.contains("written"), "{arch:?}: {}", out.stderr);
        assert!(stat(&out, " lookups") > 1000, "{arch:?}: {}", out.stderr);
        assert_eq!(std::fs::read(&file).unwrap(), b"", "{arch:?}: the file is left alone");
    }
}

#[test]
fn a_plan_that_does_not_fit_is_ignored() {
    let s = Setup::new(Arch::X86_64);
    let reference = s.glibc().stdout;
    assert_eq!(s.cah(true).stdout, reference);
    let (path, _, bytes) = s.plans().pop().expect("a plan was written");

    // Damaged: one flipped bit in the middle.
    let mut bad = bytes.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x10;
    std::fs::write(&path, &bad).unwrap();
    let out = s.cah(true);
    assert_eq!(out.stdout, reference);
    assert!(out.stderr.contains("bad checksum"), "{}", out.stderr);
    assert!(stat(&out, " lookups") > 0 && stat(&out, " bound by plan") == 0, "{}", out.stderr);
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "the damaged plan was recorded anew");

    // Untrusted: writable by others (only the owner's own plans are obeyed).
    cah_tests::chmod(&path, 0o666);
    let out = s.cah(true);
    assert_eq!(out.stdout, reference);
    assert!(out.stderr.contains("writable by group or others"), "{}", out.stderr);
    assert_eq!(stat(&out, " bound by plan"), 0);

    // Other files: the library replaced by a copy (another inode, the
    // same bytes) is another closure, with a plan of its own.
    std::fs::remove_file(&path).unwrap();
    assert_eq!(s.cah(true).stdout, reference);
    let lib = s.dir.path().join("libcxxthrow.so");
    let copy = s.dir.path().join("libcxxthrow.so.new");
    std::fs::copy(&lib, &copy).unwrap();
    std::fs::rename(&copy, &lib).unwrap();
    let out = s.cah(true);
    assert_eq!(out.stdout, reference);
    assert!(out.stderr.contains("recording one") && stat(&out, " bound by plan") == 0, "{}", out.stderr);
    assert_eq!(s.plans().len(), 2);

    // CAH_PLAN=0: neither used nor recorded.
    let before = s.plans();
    let mut c = s.command(&s.loader);
    c.arg(s.dir.path().join("cxx"));
    let out = s.run_env(c, &[("CAH_PLAN", "0")]);
    assert_eq!(s.plans(), before);
    assert_eq!(out.stdout, reference);
    assert!(stat(&out, " lookups") > 0 && stat(&out, " bound by plan") == 0, "{}", out.stderr);
}

/// A user who may only execute a program gets no plan for it (a plan would
/// tell which symbols it binds to), and one who may read it does. Run as
/// `nobody` through `setpriv`; x86_64 only (qemu-user must read a program
/// to run it, so an execute-only program cannot run under it at all).
#[test]
fn an_execute_only_program_gets_no_plan() {
    cah_tests::need_root();
    let s = Setup::new(Arch::X86_64);
    let reference = s.glibc().stdout;
    for p in [s.dir.path(), s.cache.path()] {
        std::os::unix::fs::chown(p, Some(65534), Some(65534)).unwrap();
        cah_tests::chmod(p, 0o755);
    }
    cah_tests::chmod(&s.dir.path().join("libcxxthrow.so"), 0o755);
    let prog = s.dir.path().join("cxx-interp");
    let as_nobody = || {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(&prog);
        s.run(c)
    };
    cah_tests::chmod(&prog, 0o711);
    for _ in 0..2 {
        let out = as_nobody();
        assert_eq!(out.stdout, reference, "{out:?}");
        assert!(out.stderr.contains("no plan: a file of the closure has no identity"), "{}", out.stderr);
    }
    assert!(s.plans().is_empty(), "no plan written for an execute-only program");

    cah_tests::chmod(&prog, 0o755);
    assert!(as_nobody().stderr.contains("recording one"));
    let warm = as_nobody();
    assert_eq!(warm.stdout, reference);
    assert!(warm.stderr.contains("using the plan"), "{}", warm.stderr);
}

/// The checksum of docs/binding-plan.md, written from the document.
fn plan_checksum(words: &[u64]) -> u64 {
    let step = |h: u64, w: u64| (h ^ w).wrapping_mul(0xff51_afd7_ed55_8ccd).rotate_left(29);
    let mut lane = [0x9e37_79b9_7f4a_7c15u64 ^ words.len() as u64, 1, 2, 3];
    for (i, &w) in words.iter().enumerate() {
        lane[i % 4] = step(lane[i % 4], w);
    }
    let mut h = step(step(step(lane[0], lane[1]), lane[2]), lane[3]);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Records a plan for `s`'s program (checking the run against glibc's
/// loader), lets `edit` change its words, seals the result with a good
/// checksum and puts it in place of the plan. Returns glibc's output.
fn record_then_tamper(s: &Setup, edit: impl FnOnce(&mut Vec<u64>)) -> String {
    let reference = s.glibc().stdout;
    assert_eq!(s.cah(true).stdout, reference);
    let (path, _, bytes) = s.plans().pop().expect("a plan was written");
    let mut w: Vec<u64> = bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
    edit(&mut w);
    let body = w.len() - 1;
    w[body] = plan_checksum(&w[..body]);
    std::fs::write(&path, w.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    reference
}

/// A plan that passes every check of the file (trusted, this closure's
/// key, a good checksum) but binds the program's references to each
/// other's definitions is not obeyed: the sampled name check finds
/// references naming symbols of another name before anything is bound,
/// every reference is looked up instead, and the program runs as under
/// glibc's loader.
#[test]
fn a_plan_binding_another_name_is_not_obeyed() {
    let s = Setup::new(Arch::X86_64);
    let reference = record_then_tamper(&s, |w| {
        let (n, header) = (w[3] as usize, offsets_at(w));
        let (from, to) = (w[header] as usize, w[header + 1] as usize);
        let entries = header + n + 1;
        // The program's (object 0's) entries bound to a definition: each is
        // (relocation place, binding, value); bindings and values move on
        // together, so every entry stays consistent in itself.
        let bound: Vec<usize> = (from..to).map(|i| entries + 3 * i + 1).filter(|&at| w[at] != u64::MAX).collect();
        assert!(bound.len() >= 3, "the program has bound references: {bound:?}");
        let first = (w[bound[0]], w[bound[0] + 1]);
        for k in 0..bound.len() - 1 {
            (w[bound[k]], w[bound[k] + 1]) = (w[bound[k + 1]], w[bound[k + 1] + 1]);
        }
        (w[*bound.last().unwrap()], w[*bound.last().unwrap() + 1]) = first;
    });

    let out = s.cah(true);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, reference);
    assert!(out.stderr.contains("its references name other symbols"), "the plan is refused: {}", out.stderr);
    assert!(!out.stderr.contains("using the plan"), "{}", out.stderr);
    assert!(stat(&out, " lookups") > 0, "its references are looked up: {}", out.stderr);
}

/// A plan whose bindings are right but whose recorded addresses are not
/// (each definition's value moved on by 16 bytes, checksum made good) is
/// not obeyed either: a warm start writes those values without reading
/// the definitions, so the sample checks them against the symbols first.
#[test]
fn a_plan_with_other_addresses_is_not_obeyed() {
    let s = Setup::new(Arch::X86_64);
    let reference = record_then_tamper(&s, |w| {
        let (n, m, header) = (w[3] as usize, w[4] as usize, offsets_at(w));
        let entries = header + n + 1;
        let mut moved = 0;
        for i in 0..m {
            let value = &mut w[entries + 3 * i + 2];
            if *value != u64::MAX {
                *value += 16;
                moved += 1;
            }
        }
        assert!(moved >= 3, "the plan records plain addresses");
    });

    let out = s.cah(true);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, reference);
    assert!(out.stderr.contains("its addresses are not its symbols' values"), "the plan is refused: {}", out.stderr);
    assert!(stat(&out, " lookups") > 0 && stat(&out, " bound by plan") == 0, "{}", out.stderr);
}

/// The type of the file system `path` is on, as `stat -f` names it.
fn fs_type(path: &Path) -> String {
    let out = Command::new("stat").args(["-f", "-c", "%T"]).arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Where a plan's object offsets start: after the 6 header words and the
/// key, whose length in words is the third (docs/binding-plan.md).
fn offsets_at(w: &[u64]) -> usize {
    6 + w[2] as usize
}

/// Where a plan's CPUID section starts (its count, then XCR0, then the
/// answers): after the object offsets (*n*+1 of them) and the *m*
/// three-word entries (docs/binding-plan.md).
fn cpuid_section(w: &[u64]) -> usize {
    let (n, m) = (w[3] as usize, w[4] as usize);
    offsets_at(w) + n + 1 + 3 * m
}

/// `s` with its program replaced by one that prints libc's cache
/// description (`sysconf`'s cache names, which libc answers from the CPU
/// description its loader filled in from CPUID), both ways of starting it.
fn cache_sizes_program(s: &Setup) {
    let src = s.dir.path().join("caches.c");
    std::fs::write(
        &src,
        "#include <stdio.h>\n#include <unistd.h>\nint main(void) {\n    for (int n = _SC_LEVEL1_ICACHE_SIZE; n <= _SC_LEVEL4_CACHE_LINESIZE; n++)\n        printf(\"%d %ld\\n\", n, sysconf(n));\n    return 0;\n}\n",
    )
    .unwrap();
    let (exe, interp) = (s.dir.path().join("cxx"), s.dir.path().join("cxx-interp"));
    assert!(Command::new("gcc").arg("-O1").arg("-o").arg(&exe).arg(&src).status().unwrap().success());
    std::fs::copy(&exe, &interp).unwrap();
    assert!(Command::new("patchelf").arg("--set-interpreter").arg(&s.loader).arg(&interp).status().unwrap().success());
}

/// The CPUID leaves libc's CPU description is made of are recorded in the
/// plan, and a warm start answers from it all but the feature leaves (1
/// and 7, executed and compared) and the XSAVE leaf: in a virtual machine
/// each CPUID traps, and these were a sixth of a warm hello's time. libc
/// must then describe the CPU exactly as under glibc's loader. x86_64
/// only (aarch64 has no CPUID).
#[test]
fn a_warm_start_answers_cpuid_from_the_plan() {
    let s = Setup::new(Arch::X86_64);
    cache_sizes_program(&s);
    let reference = s.glibc().stdout;
    assert!(reference.lines().count() > 10, "{reference}");
    for line in warm_cpu_descriptions(&s, &reference) {
        let n: usize = line.split_whitespace().find_map(|w| w.parse().ok()).unwrap_or_else(|| panic!("{line}"));
        assert!(n > 0 && line.ends_with("CPUID leaves from the plan"), "{line}");
    }
}

/// A plan read from a `tmpfs` (as `/run`, where plans live unless
/// `CAH_CACHE_DIR` says otherwise) was recorded on this machine since it
/// booted, so no CPUID is executed to check its leaves: the feature leaves
/// are answered from it too. libc must describe the CPU exactly as under
/// glibc's loader all the same.
#[test]
fn a_plan_recorded_this_boot_answers_every_cpuid() {
    let s = Setup::in_memory(Arch::X86_64);
    cache_sizes_program(&s);
    let reference = s.glibc().stdout;
    for line in warm_cpu_descriptions(&s, &reference) {
        assert!(line.ends_with("CPUID leaves from the plan, recorded this boot: none executed"), "{line}");
    }
}

/// Starts `s`'s program cold then warm, as `PT_INTERP` and directly, each
/// printing `reference`; the warm starts' `CPU description:` lines.
fn warm_cpu_descriptions(s: &Setup, reference: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for direct in [false, true] {
        let cold = s.cah(direct);
        assert_eq!(cold.stdout, reference, "cold, direct={direct}: {cold:?}");
        let warm = s.cah(direct);
        assert_eq!(warm.stdout, reference, "warm, direct={direct}: {warm:?}");
        let line = warm.stderr.lines().find(|l| l.contains("CPU description:")).unwrap_or_else(|| panic!("{}", warm.stderr));
        lines.push(line.to_string());
    }
    lines
}

/// A plan whose recorded feature leaf is not this CPU's (leaf 1's ECX with
/// one bit flipped, checksum made good: a plan from another machine's
/// shared cache directory, or a CPU the kernel now reports differently)
/// gets no CPUID answered: every leaf is executed, and libc describes the
/// CPU as under glibc's loader. The bindings are still the plan's.
#[test]
fn cpuid_leaves_recorded_on_another_cpu_are_not_used() {
    let s = Setup::new(Arch::X86_64);
    cache_sizes_program(&s);
    let reference = record_then_tamper(&s, |w| {
        let at = cpuid_section(w);
        let k = w[at] as usize;
        let leaf1 = (0..k).map(|i| at + 2 + 3 * i).find(|&e| w[e] == 1 << 32).expect("leaf 1 is recorded");
        // ECX is the low half of the leaf's third word (docs/binding-plan.md).
        w[leaf1 + 2] ^= 1;
    });
    let out = s.cah(true);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, reference);
    assert!(out.stderr.contains("CPUID executed, the plan's leaves not used: recorded on another CPU"), "{}", out.stderr);
    assert!(out.stderr.contains("using the plan") && stat(&out, " lookups") == 0, "{}", out.stderr);
}

/// A plan recorded under another XCR0 (the register state the kernel
/// enables, which decides the XSAVE leaf's sizes and so the lazy-binding
/// trampoline's save area) has its XSAVE leaf executed, the rest replayed;
/// libc describes the CPU as under glibc's loader.
#[test]
fn the_xsave_leaf_is_executed_when_xcr0_is_not_as_recorded() {
    let s = Setup::new(Arch::X86_64);
    cache_sizes_program(&s);
    let reference = record_then_tamper(&s, |w| {
        let at = cpuid_section(w);
        assert!(w[at] > 0 && w[at + 1] != 0, "CPUID answers and XCR0 are recorded");
        // An AVX-512 state bit flipped (docs/binding-plan.md: XCR0 follows the count).
        w[at + 1] ^= 1 << 5;
    });
    let out = s.cah(true);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, reference);
    assert!(out.stderr.contains("CPUID leaves from the plan, the XSAVE leaf executed: XCR0 is not as recorded"), "{}", out.stderr);
}

/// A warm start does not check the versions its objects need
/// (`DT_VERNEED`) again: its plan was recorded by a start that did, for
/// the same files. A library replaced by one that lacks a needed version
/// is other files, so the start checks and refuses it, as glibc does
/// (which exits with 1, ld-cah with 127). `ver_missing` needs `VER_3`,
/// which the stub `libver.so` defines and the real one does not.
#[test]
fn a_plan_does_not_vouch_for_a_replaced_library() {
    for arch in [Arch::X86_64, Arch::Aarch64] {
        let fixtures = root().join("target/fixtures").join(arch.name());
        let s = Setup {
            arch,
            dir: tempfile::tempdir().unwrap(),
            cache: tempfile::tempdir_in(root().join("target")).unwrap(),
            loader: built_loader(arch).canonicalize().unwrap(),
        };
        let (program, lib) = (s.dir.path().join("ver_missing"), s.dir.path().join("libver.so"));
        std::fs::copy(fixtures.join("ver_missing"), &program).unwrap();
        std::fs::copy(fixtures.join("stub_v3/libver.so"), &lib).unwrap();
        let cah = || {
            let mut c = s.command(&s.loader);
            c.arg(&program);
            s.run(c)
        };
        let reference = s.run(s.command(&program));
        assert_eq!(reference.code, Some(0), "{arch:?} glibc: {reference:?}");
        let cold = cah();
        assert_eq!((cold.code, &cold.stdout), (Some(0), &reference.stdout), "{arch:?} cold: {cold:?}");
        assert!(cold.stderr.contains("recording one"), "{arch:?}: {}", cold.stderr);
        let warm = cah();
        assert_eq!((warm.code, &warm.stdout), (Some(0), &reference.stdout), "{arch:?} warm: {warm:?}");
        assert!(warm.stderr.contains("using the plan"), "{arch:?}: {}", warm.stderr);

        let new = s.dir.path().join("libver.so.new");
        std::fs::copy(fixtures.join("libver.so"), &new).unwrap();
        std::fs::rename(&new, &lib).unwrap();
        let reference = s.run(s.command(&program));
        assert_eq!(reference.code, Some(1), "{arch:?} glibc refuses the missing version: {reference:?}");
        assert!(reference.stderr.contains("version `VER_3' not found"), "{arch:?}: {reference:?}");
        let out = cah();
        assert_eq!(out.code, Some(127), "{arch:?}: {out:?}");
        assert!(out.stdout.is_empty() && !out.stderr.contains("using the plan"), "{arch:?}: {out:?}");
        let errors: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("ld-cah.so: error: ")).collect();
        assert!(errors.len() == 1 && errors[0].contains("version `VER_3' not found"), "{arch:?}: {}", out.stderr);
    }
}
