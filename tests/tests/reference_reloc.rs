//! The relocation engine against the reference relocator
//! (`ld_cah::reloc::reference`), on real closures of real Debian programs
//! for both arches: every object mapped (never run), the reference asked
//! what each relocation should write, the engine run as start-up runs it
//! (same order, same scope, IFUNC resolvers replaced by a stub on both
//! sides), then every relocated word compared, and every other byte of
//! the writable segments checked unchanged.
//!
//! The aarch64 objects are mapped and relocated on the x86_64 host as
//! plain data: the engine is generic over the arch, and nothing here
//! executes their code.

use std::path::{Path, PathBuf};

use cah_tests::{debian_sysroot, root};
use ld_cah::arch::aarch64::Aarch64;
use ld_cah::arch::x86_64::X86_64;
use ld_cah::arch::{ArchInfo, TlsVariant};
use ld_cah::link::closure::{self, Config, Preload};
use ld_cah::link::search::{SearchEnv, Tokens};
use ld_cah::link::{Dso, DsoId, Kind, Namespace};
use ld_cah::reloc::reference::{self, Reference, Value, Write};
use ld_cah::reloc::{Engine, Target};
use ld_cah::{map, sys, tls};

const PAGE: usize = 4096;
/// What the engine and the reference write as TLS descriptor resolvers
/// (only compared, never called).
const TLSDESC: (usize, usize) = (0x7d5c_0001, 0x7d5c_0002);

/// The IFUNC resolver "call" of both sides: deterministic, and no code of
/// the objects runs.
fn stub_resolver(resolver: usize) -> usize {
    resolver ^ 0x5a5a_5a5a
}

/// What differs between the two closures.
struct Case {
    name: &'static str,
    /// The root file system the libraries come from.
    root: PathBuf,
    program: &'static str,
    preloads: &'static [&'static str],
    machine: u16,
    target: Target,
    variant: TlsVariant,
    interp: &'static str,
    multiarch: &'static str,
}

fn mapped(path: &Path, machine: u16) -> map::Mapped {
    let mut c = path.as_os_str().as_encoded_bytes().to_vec();
    c.push(0);
    let fd = sys::open(&c, sys::O_RDONLY, 0).unwrap_or_else(|e| panic!("{}: {}", path.display(), e.describe()));
    map::map_file(&fd, machine, PAGE).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Maps the program and its closure as start-up does (breadth-first
/// from the program and its preloads; glibc's loader standing in for
/// ld-cah), with module ids and static TLS offsets assigned.
fn load(case: &Case) -> Namespace {
    let program = case.root.join(case.program.trim_start_matches('/'));
    assert!(program.exists(), "{} is missing: run `cargo xtask test` once to download the test roots", program.display());
    let mut ns = Namespace::default();
    let p = program.as_os_str().as_encoded_bytes().to_vec();
    ns.objs.push(Dso::new(Kind::Main, Vec::new(), p, mapped(&program, case.machine), PAGE).unwrap());
    ns.main = 0;
    // The multiarch directory, not `PT_INTERP`'s path: /lib64 may be a
    // link that leads out of the root.
    let interp_base = case.interp.rsplit('/').next().unwrap();
    let interp = case.root.join("lib").join(case.multiarch).join(interp_base);
    let mut ld =
        Dso::new(Kind::Loader, case.interp.as_bytes().to_vec(), case.interp.as_bytes().to_vec(), mapped(&interp, case.machine), PAGE)
            .unwrap();
    ld.relocated = true;
    ns.objs.push(ld);
    ns.loader = 1;

    let dirs: Vec<String> = ["lib", "usr/lib"].iter().map(|d| format!("{}/{}/{}", case.root.display(), d, case.multiarch)).collect();
    let dirs: Vec<&str> = dirs.iter().map(String::as_str).collect();
    let lib = format!("lib/{}", case.multiarch);
    let names: [&[u8]; 2] = [case.interp.as_bytes(), interp_base.as_bytes()];
    let cfg = Config {
        env: SearchEnv {
            library_path: &[],
            cache: None,
            cache_flags: 0,
            default_dirs: &dirs,
            tokens: Tokens { platform: b"", lib: lib.as_bytes(), secure: false, trusted: &dirs },
        },
        machine: case.machine,
        page: PAGE,
        loader_names: &names,
    };
    let preloads: Vec<Preload<'_>> = case.preloads.iter().map(|n| Preload { name: n.as_bytes().to_vec(), source: "test" }).collect();
    closure::load_all(&mut ns, &cfg, &preloads).unwrap_or_else(|e| panic!("{}: {}", case.name, e.message));
    closure::check_versions(&ns).unwrap_or_else(|e| panic!("{}: {}", case.name, e.message));

    // Module ids in start-up's order (the program first), then static TLS.
    let mut order = vec![ns.main];
    order.extend(ns.scope.iter().copied().filter(|&i| i != ns.main));
    let ids: Vec<DsoId> = order.into_iter().filter(|&i| ns.objs[i].tls.is_some()).collect();
    let mut modules: Vec<tls::Module> = ids.iter().map(|&i| ns.objs[i].tls.unwrap()).collect();
    for (n, m) in modules.iter_mut().enumerate() {
        m.modid = n + 1;
    }
    let mut refs: Vec<&mut tls::Module> = modules.iter_mut().collect();
    let tcb = if case.variant == TlsVariant::Two { 2368 } else { 0 };
    tls::layout(case.variant, &mut refs, tcb);
    for (m, &i) in modules.iter().zip(&ids) {
        ns.objs[i].tls = Some(*m);
    }
    ns
}

/// glibc's start-up relocation order for `ns` (libc first since 2.39,
/// which the x86_64 roots may have: the order only changes which object
/// binds an `STB_GNU_UNIQUE` name first, and both sides follow it).
fn order(ns: &Namespace) -> Vec<DsoId> {
    let initfini = ld_cah::init::initfini_order(ns);
    let libc = ns.objs.iter().position(|d| d.answers_to(b"libc.so.6"));
    ld_cah::reloc::startup_order(&initfini, libc).into_iter().filter(|&i| !matches!(ns.objs[i].kind, Kind::Loader | Kind::Vdso)).collect()
}

struct Counts {
    objects: usize,
    writes: usize,
    kinds: reference::Counts,
}

/// What a test may do to the relocated memory before it is compared:
/// given the namespace and, per object, the reference's writes and the
/// snapshot of its writable segments.
type Tamper<'t> = &'t dyn Fn(&Namespace, &[(DsoId, Vec<Write>, Snapshot)]);
type Snapshot = Vec<(usize, Vec<u8>)>;

/// Relocates `case`'s closure with the engine and compares with the
/// reference; returns what was compared, or every mismatch.
fn differential(case: &Case, tamper: Option<Tamper<'_>>) -> Result<Counts, Vec<String>> {
    let ns = load(case);
    let order = order(&ns);
    let scope = ns.scope.clone();
    let resolve = stub_resolver;

    // The reference first, on the unrelocated objects.
    let mut r = Reference::new(&ns, &scope, case.machine, TLSDESC, &resolve);
    let mut expected = Vec::new();
    for &id in &order {
        let writes = r.expected(id).unwrap_or_else(|e| panic!("{}: reference: {}: {e}", case.name, ns.objs[id].display_name()));
        expected.push((id, writes, reference::snapshot(&ns, id)));
    }

    let r_counts = r.counts;
    let mut engine = Engine::new(&ns, &scope, case.target, &resolve);
    for &id in &order {
        engine.relocate(id).unwrap_or_else(|e| panic!("{}: engine: {}", case.name, e.message));
    }
    if let Some(f) = tamper {
        f(&ns, &expected);
    }

    let no_dynamic_tls = |_: usize| None;
    let mut bad = Vec::new();
    let mut writes = 0;
    for (id, w, before) in &expected {
        writes += w.len();
        for m in reference::compare(&ns, *id, w, before, &no_dynamic_tls) {
            bad.push(format!("{}: {} +{:#x} ({}): expected {}, found {}", case.name, m.obj, m.at, m.what, m.expected, m.found));
        }
    }
    if bad.is_empty() {
        Ok(Counts { objects: expected.len(), writes, kinds: r_counts })
    } else {
        Err(bad)
    }
}

fn x86_64_cases() -> Vec<Case> {
    // Every debootstrap root `cargo xtask test` made: several toolchains.
    let roots = root().join("target/rootfs");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&roots)
        .unwrap_or_else(|e| panic!("{}: {e}: run `cargo xtask test` once to download the test roots", roots.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("usr/bin/apt").exists())
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no root file system with apt under {}", roots.display());
    names
        .into_iter()
        .map(|root| Case {
            name: Box::leak(root.file_name().unwrap().to_string_lossy().into_owned().into_boxed_str()),
            root,
            // C++: libapt-pkg, libstdc++, libgcc_s, libc and more, with
            // copy relocations in the program.
            program: "/usr/bin/apt",
            preloads: &[],
            machine: X86_64::MACHINE,
            target: Target::of::<X86_64>(TLSDESC.0, TLSDESC.1),
            variant: X86_64::TLS_VARIANT,
            interp: X86_64::GLIBC_INTERP,
            multiarch: "x86_64-linux-gnu",
        })
        .collect()
}

fn aarch64_case() -> Case {
    Case {
        name: "bookworm-arm64",
        root: debian_sysroot(),
        // The sysroot has no C++ program: libstdc++ comes in as a preload
        // (with libm and libgcc_s), as LD_PRELOAD would bring it.
        program: "/usr/bin/openssl",
        preloads: &["libstdc++.so.6"],
        machine: Aarch64::MACHINE,
        target: Target::of::<Aarch64>(TLSDESC.0, TLSDESC.1),
        variant: Aarch64::TLS_VARIANT,
        interp: Aarch64::GLIBC_INTERP,
        multiarch: "aarch64-linux-gnu",
    }
}

fn check(case: &Case) -> reference::Counts {
    let started = std::time::Instant::now();
    match differential(case, None) {
        Ok(c) => {
            eprintln!(
                "{}: {} objects, {} relocation writes agree ({:.1} s): {:?}",
                case.name,
                c.objects,
                c.writes,
                started.elapsed().as_secs_f64(),
                c.kinds
            );
            c.kinds
        }
        Err(bad) => panic!("{} mismatches, the first:\n{}", bad.len(), bad.iter().take(20).cloned().collect::<Vec<_>>().join("\n")),
    }
}

#[test]
fn engine_matches_the_reference_on_x86_64_closures() {
    for case in x86_64_cases() {
        check(&case);
    }
}

#[test]
fn engine_matches_the_reference_on_an_aarch64_closure() {
    check(&aarch64_case());
}

/// The comparison can fail: one relocated word changed after the engine
/// ran (a symbolic one, the program's) and one byte no relocation writes
/// are both reported, and nothing else is.
#[test]
fn a_wrong_word_or_a_stray_write_is_caught() {
    let case = aarch64_case();
    let tamper = |ns: &Namespace, expected: &[(DsoId, Vec<Write>, Snapshot)]| {
        let (id, writes, before) = &expected.iter().find(|(id, _, _)| *id == ns.main).expect("the program is relocated");
        let d = &ns.objs[*id];
        let w = writes.iter().rev().find(|w| w.what.contains("DT_JMPREL") && matches!(w.value, Value::Word(_))).expect("a PLT slot");
        assert!(d.img.write_u64(w.at, d.img.u64(w.at).unwrap() ^ 0x10));
        // The last word of the last writable segment that no relocation
        // writes.
        let (start, bytes) = before.last().unwrap();
        let stray = (*start..start + bytes.len() - 8)
            .rev()
            .step_by(8)
            .find(|&a| !writes.iter().any(|w| w.at <= a + 8 && a < w.at + 8))
            .expect("an unrelocated word");
        assert!(d.img.write_u64(stray, d.img.u64(stray).unwrap() ^ 1));
    };
    let bad = match differential(&case, Some(&tamper)) {
        Ok(_) => panic!("two changed words went unnoticed"),
        Err(bad) => bad,
    };
    assert_eq!(bad.len(), 2, "{bad:#?}");
    assert!(bad[0].contains("DT_JMPREL entry"), "{}", bad[0]);
    assert!(bad[1].contains("no relocation writes here"), "{}", bad[1]);
}
