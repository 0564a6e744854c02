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

use cah_tests::{debian_sysroot, fixture_dir, root, Arch};
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

/// One closure to relocate.
struct Case {
    name: String,
    /// The root file system the libraries and the loader come from.
    root: PathBuf,
    program: PathBuf,
    /// Searched before the root's library directories.
    library_path: Vec<Vec<u8>>,
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

/// The program `path` of root `root`, which must exist.
fn in_root(root: &Path, path: &str) -> PathBuf {
    let p = root.join(path.trim_start_matches('/'));
    assert!(p.exists(), "{} is missing: run `cargo xtask test` once to download the test roots", p.display());
    p
}

/// Maps the program and its closure as start-up does (breadth-first
/// from the program and its preloads; glibc's loader standing in for
/// ld-cah), with module ids and static TLS offsets assigned; `Err` if the
/// closure cannot be loaded (a fixture that tests exactly that).
fn load(case: &Case) -> Result<Namespace, String> {
    let program = &case.program;
    let mut ns = Namespace::default();
    let p = program.as_os_str().as_encoded_bytes().to_vec();
    ns.objs.push(Dso::new(Kind::Main, Vec::new(), p, mapped(program, case.machine), PAGE).unwrap());
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
    let names = [case.interp.as_bytes().to_vec(), interp_base.as_bytes().to_vec()];
    let cfg = Config {
        env: SearchEnv {
            library_path: &case.library_path,
            cache: None,
            cache_flags: 0,
            default_dirs: &dirs,
            tokens: Tokens { platform: b"", lib: lib.as_bytes(), secure: false, trusted: &dirs },
        },
        machine: case.machine,
        page: PAGE,
        loader_names: &names,
        store: Default::default(),
    };
    let preloads: Vec<Preload<'_>> = case.preloads.iter().map(|n| Preload { name: n.as_bytes().to_vec(), source: "test" }).collect();
    closure::load_all(&mut ns, &cfg, &preloads).map_err(|e| e.message.clone())?;
    closure::check_versions(&ns).map_err(|e| e.message.clone())?;

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
    Ok(ns)
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

/// A loaded closure, unmapped when dropped: one case's fixed-address
/// program must not find the address taken by another's.
struct Loaded(Namespace);

impl Drop for Loaded {
    fn drop(&mut self) {
        for d in &self.0.objs {
            let start = d.map_start & !(PAGE - 1);
            // SAFETY: the mapping belongs to this namespace alone, and
            // nothing reads it after the namespace is dropped.
            let _ = unsafe { sys::munmap(start, d.map_end - start) };
        }
    }
}

/// How a case ended when the two sides agree.
enum Agreed {
    /// Every write compared equal.
    Relocated(Counts),
    /// Both refused the same object (or the closure did not load).
    Refused(String),
}

/// Relocates `case`'s closure with the engine and compares with the
/// reference; returns what was compared, or every mismatch.
fn differential(case: &Case, tamper: Option<Tamper<'_>>) -> Result<Agreed, Vec<String>> {
    let loaded = match load(case) {
        Ok(ns) => Loaded(ns),
        Err(e) => return Ok(Agreed::Refused(format!("closure not loaded: {e}"))),
    };
    let ns = &loaded.0;
    let order = order(ns);
    let scope = ns.scope.clone();
    let resolve = stub_resolver;

    // The reference first, on the unrelocated objects; it stops at the
    // first object it finds an error in.
    let mut r = Reference::new(ns, &scope, case.machine, TLSDESC, &resolve);
    let mut expected = Vec::new();
    let mut ref_err = None;
    for &id in &order {
        match r.expected(id) {
            Ok(writes) => expected.push((id, writes, reference::snapshot(ns, id))),
            Err(e) => {
                ref_err = Some((id, e));
                break;
            }
        }
    }

    let mut engine = Engine::new(ns, &scope, case.target, &resolve);
    let mut engine_err = None;
    for &id in &order {
        if let Err(e) = engine.relocate(id) {
            engine_err = Some((id, e.message.clone()));
            break;
        }
    }
    let name = |id: DsoId| ns.objs[id].display_name().to_string();
    match (&ref_err, &engine_err) {
        (None, None) => {}
        (Some((a, re)), Some((b, ee))) if a == b => {
            return Ok(Agreed::Refused(format!("{}: reference: {re}; engine: {ee}", name(*a))));
        }
        _ => {
            let show =
                |e: &Option<(DsoId, String)>| e.as_ref().map_or("relocated everything".to_string(), |(i, m)| format!("{}: {m}", name(*i)));
            return Err(vec![format!("{}: the reference: {}; the engine: {}", case.name, show(&ref_err), show(&engine_err))]);
        }
    }
    if let Some(f) = tamper {
        f(ns, &expected);
    }

    let no_dynamic_tls = |_: usize| None;
    let mut bad = Vec::new();
    let mut writes = 0;
    for (id, w, before) in &expected {
        writes += w.len();
        for m in reference::compare(ns, *id, w, before, &no_dynamic_tls) {
            bad.push(format!("{}: {} +{:#x} ({}): expected {}, found {}", case.name, m.obj, m.at, m.what, m.expected, m.found));
        }
    }
    if bad.is_empty() {
        Ok(Agreed::Relocated(Counts { objects: expected.len(), writes, kinds: r.counts }))
    } else {
        Err(bad)
    }
}

/// A case for `arch` with the libraries and loader of `root`.
fn case(arch: Arch, name: String, root: PathBuf, program: PathBuf) -> Case {
    let (machine, target, variant, interp, multiarch) = match arch {
        Arch::X86_64 => {
            (X86_64::MACHINE, Target::of::<X86_64>(TLSDESC.0, TLSDESC.1), X86_64::TLS_VARIANT, X86_64::GLIBC_INTERP, "x86_64-linux-gnu")
        }
        Arch::Aarch64 => (
            Aarch64::MACHINE,
            Target::of::<Aarch64>(TLSDESC.0, TLSDESC.1),
            Aarch64::TLS_VARIANT,
            Aarch64::GLIBC_INTERP,
            "aarch64-linux-gnu",
        ),
    };
    Case { name, root, program, library_path: Vec::new(), preloads: &[], machine, target, variant, interp, multiarch }
}

/// `apt` (C++: libapt-pkg, libstdc++, libgcc_s, libc and more, copy
/// relocations in the program) from every Debian root `cargo xtask test`
/// made (several toolchains), and `openssl` from the arm64 sysroot, which
/// has no C++ program: `libstdc++.so.6` comes in as a preload (with libm
/// and libgcc_s), as `LD_PRELOAD` would bring it.
fn debian_cases() -> Vec<(Arch, Case)> {
    let roots = root().join("target/rootfs");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&roots)
        .unwrap_or_else(|e| panic!("{}: {e}: run `cargo xtask test` once to download the test roots", roots.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("usr/bin/apt").exists())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no root file system with apt under {}", roots.display());
    let mut out: Vec<(Arch, Case)> = dirs
        .into_iter()
        .map(|r| {
            let name = r.file_name().unwrap().to_string_lossy().into_owned();
            let program = in_root(&r, "/usr/bin/apt");
            (Arch::X86_64, case(Arch::X86_64, name, r, program))
        })
        .collect();
    let sysroot = debian_sysroot();
    let program = in_root(&sysroot, "/usr/bin/openssl");
    let mut arm = case(Arch::Aarch64, "bookworm-arm64".into(), sysroot, program);
    arm.preloads = &["libstdc++.so.6"];
    out.push((Arch::Aarch64, arm));
    out
}

/// Every fixture program of `arch`, its libraries found in the fixture
/// directory, the rest in the system (x86_64) or the sysroot (aarch64)
/// they were built against.
fn fixture_cases(arch: Arch) -> Vec<Case> {
    let dir = fixture_dir(arch);
    let mut programs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}: run `cargo xtask fixtures`", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            p.is_file() && !name.starts_with("lib") && !name.contains(".so") && !name.starts_with("bad_") && dynamic(p, arch)
        })
        .collect();
    programs.sort();
    assert!(programs.len() > 20, "{}: only {} fixture programs: run `cargo xtask fixtures`", dir.display(), programs.len());
    let root = match arch {
        Arch::X86_64 => PathBuf::from("/"),
        Arch::Aarch64 => debian_sysroot(),
    };
    programs
        .into_iter()
        .map(|p| {
            let name = format!("{}/{}", arch.name(), p.file_name().unwrap().to_string_lossy());
            let mut c = case(arch, name, root.clone(), p);
            c.library_path = vec![dir.as_os_str().as_encoded_bytes().to_vec()];
            c
        })
        .collect()
}

/// Whether `path` is an ELF program for `arch` with a `PT_INTERP`
/// (static programs have no relocations for a loader to make).
fn dynamic(path: &Path, arch: Arch) -> bool {
    let machine = if arch == Arch::X86_64 { X86_64::MACHINE } else { Aarch64::MACHINE };
    let mut c = path.as_os_str().as_encoded_bytes().to_vec();
    c.push(0);
    let Ok(fd) = sys::open(&c, sys::O_RDONLY, 0) else { return false };
    map::read_headers(&fd, machine).is_ok_and(|(_, phdrs, _)| phdrs.iter().any(|p| p.p_type == 3))
}

/// Runs one case; the counts of what it relocated, or `None` if both
/// sides refused it.
fn check(case: &Case) -> Option<reference::Counts> {
    let started = std::time::Instant::now();
    match differential(case, None) {
        Ok(Agreed::Relocated(c)) => {
            eprintln!(
                "{}: {} objects, {} relocation writes agree ({:.1} s): {:?}",
                case.name,
                c.objects,
                c.writes,
                started.elapsed().as_secs_f64(),
                c.kinds
            );
            Some(c.kinds)
        }
        Ok(Agreed::Refused(why)) => {
            eprintln!("{}: not relocated: {why}", case.name);
            None
        }
        Err(bad) => panic!("{} mismatches, the first:\n{}", bad.len(), bad.iter().take(20).cloned().collect::<Vec<_>>().join("\n")),
    }
}

fn add(total: &mut reference::Counts, c: &reference::Counts) {
    total.relr += c.relr;
    total.relative += c.relative;
    total.symbolic += c.symbolic;
    total.weak_undefined += c.weak_undefined;
    total.ifunc += c.ifunc;
    total.irelative += c.irelative;
    total.copy += c.copy;
    total.tls += c.tls;
    total.missing += c.missing;
    total.unique += c.unique;
    total.passed_over += c.passed_over;
}

#[test]
fn engine_matches_the_reference_on_debian_closures() {
    let mut totals = [reference::Counts::default(), reference::Counts::default()];
    for (arch, case) in debian_cases() {
        let c = check(&case).unwrap_or_else(|| panic!("{}: a Debian program's closure must relocate", case.name));
        add(&mut totals[arch as usize], &c);
    }
    // What the closures must have exercised, so that agreeing means
    // something: every kind real programs have, on both arches.
    for (arch, t) in Arch::ALL.iter().zip(&totals) {
        let kinds = [
            ("RELATIVE", t.relative),
            ("symbolic", t.symbolic),
            ("weak undefined", t.weak_undefined),
            ("IFUNC", t.ifunc),
            ("IRELATIVE", t.irelative),
            ("TLS", t.tls),
            ("STB_GNU_UNIQUE", t.unique),
        ];
        for (kind, n) in kinds {
            assert!(n > 0, "{}: no {kind} relocation compared", arch.name());
        }
    }
    let x = &totals[Arch::X86_64 as usize];
    assert!(x.copy > 0 && x.relr > 0 && x.passed_over > 0, "x86_64: no COPY, DT_RELR or version-decided lookup compared: {x:?}");
}

#[test]
fn engine_matches_the_reference_on_every_fixture() {
    for arch in Arch::ALL {
        let mut total = reference::Counts::default();
        let (mut relocated, mut refused) = (0, Vec::new());
        for case in fixture_cases(arch) {
            match check(&case) {
                Some(c) => {
                    add(&mut total, &c);
                    relocated += 1;
                }
                None => refused.push(case.name.clone()),
            }
        }
        eprintln!("{}: {relocated} fixtures relocated alike, {} not relocated (by either): {refused:?}", arch.name(), refused.len());
        // The fixtures built to test lazy binding, copy relocations and
        // TLS must have been compared, not refused.
        assert!(total.missing > 0 && total.copy > 0 && total.tls > 0, "{}: {total:?}", arch.name());
    }
}

/// The comparison can fail: one relocated word changed after the engine
/// ran (a symbolic one, the program's) and one byte no relocation writes
/// are both reported, and nothing else is.
#[test]
fn a_wrong_word_or_a_stray_write_is_caught() {
    let (_, case) = debian_cases().pop().expect("the arm64 case");
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
