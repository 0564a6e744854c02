//! The stage driver: from the kernel's stack to the program's entry point,
//! as a sequence of named stages.
//!
//! 1. [`invocation`]: how we were started (as `PT_INTERP`, or directly as
//!    `ld-cah.so [OPTIONS] PROGRAM`) and the program, mapped;
//! 2. [`namespace`]: the program, the vDSO and ld-cah itself;
//! 3. [`search_setup`]: library path, `ld.so.cache`, `$PLATFORM`;
//! 4. [`load_closure`]: the closure breadth-first, verified against the
//!    closure lock, versions checked (`--list`, `LD_TRACE_LOADED_OBJECTS`
//!    and `--verify` stop here);
//! 5. [`libc`]: the layout of the program's glibc, the environment its
//!    loader would leave;
//! 6. [`thread_setup`]: static TLS and the main thread's TCB;
//! 7. [`glibc_globals`]: link maps and everything libc reads from its
//!    loader, before relocation (IFUNC resolvers read it);
//! 8. [`relocate`]: every object in glibc's order, then TLS images and
//!    RELRO;
//! 9. hand the state to [`crate::process`], tell debuggers, run
//!    initialisers and jump to the entry point with the finaliser in the
//!    ABI's register.
#![allow(unsafe_code)]

mod invocation;
mod libc;
mod stack;

use alloc::vec::Vec;

use object::elf::*;

use self::invocation::Program;
use self::stack::*;
use crate::arch::native::{self, Native};
use crate::arch::{ArchInfo, TlsVariant};
use crate::diag::{self, Error};
use crate::err;
use crate::glibc::layout::Layout;
use crate::link::search::{self, Tokens};
use crate::link::{closure, policy};
use crate::link::{Dso, DsoId, Kind, Namespace};
use crate::map::{self, Mapped};
use crate::pipeline;
use crate::process::{self, Process, Search};
use crate::reloc::plan;
use crate::sys;
use crate::tls;

/// `sizeof(struct pthread)` of glibc 2.36, the room left at (x86_64) or
/// below (aarch64) the thread pointer until the glibc layer knows the
/// exact build.
const TCB_SIZE_X86_64: usize = 2368;
const PRE_TCB_SIZE_AARCH64: usize = 1856;

/// ld-cah's own variables, removed for set-uid programs.
const LD_CAH_ENV: &[&str] = &["CAH_DEBUG", "CAH_STORE", "CAH_CACHE_DIR", "CAH_PLAN"];

/// Runs every finaliser; the program's `atexit` calls this.
pub extern "C" fn fini() {
    let calls = match process::lock().as_mut() {
        Some(p) => crate::init::fini_calls(&mut p.ns),
        None => return,
    };
    // SAFETY: the calls are finalisers of relocated, initialised objects.
    unsafe { crate::init::run(&calls, 0, 0, 0) };
}

/// Entry from `crt` once ld-cah is relocated.
///
/// # Safety
/// `sp` is the process entry stack and `base` our own load address.
#[cfg_attr(feature = "rtld", no_mangle)]
pub unsafe extern "C" fn ld_cah_main(sp: *mut usize, base: usize) -> ! {
    // SAFETY: crt passes the kernel's stack.
    let stack = unsafe { Stack::parse(sp) };
    // SAFETY: as this function's; nothing else has touched the stack.
    match unsafe { run(stack, base) } {
        Ok(never) => match never {},
        Err(e) => diag::fatal(&e),
    }
}

enum Never {}

/// The environment as start-up reads it (after secure mode's first cut).
struct Env {
    vars: Vec<&'static [u8]>,
}

impl Env {
    fn get(&self, name: &[u8]) -> Option<&'static [u8]> {
        self.vars.iter().find_map(|e| e.strip_prefix(name).and_then(|r| r.strip_prefix(b"=")))
    }

    /// glibc's test for `LD_BIND_NOW` and `LD_BIND_NOT`: set and not empty.
    fn flag(&self, name: &[u8]) -> bool {
        self.get(name).is_some_and(|v| !v.is_empty())
    }
}

/// Facts about the process every stage may read.
struct Facts {
    page: usize,
    secure: bool,
    /// The effective user id the process started with (`AT_EUID`).
    euid: u32,
    debug: diag::Debug,
    hwcap: (u64, u64),
}

/// # Safety
/// As `ld_cah_main`.
unsafe fn run(mut stack: Stack, base: usize) -> Result<Never, Error> {
    let page = stack.aux(AT_PAGESZ).filter(|p| p.is_power_of_two() && *p >= 4096).unwrap_or(4096);
    // glibc 2.40's `glibc.rtld.enable_secure=1` asks for secure mode too.
    let vars = stack.env();
    let secure = stack.aux(AT_SECURE).unwrap_or(0) != 0 || crate::glibc::tunables::enable_secure_requested(&vars);
    // SAFETY: `base` is ld-cah's own load address (caller).
    let (self_map, self_entry) = unsafe { own_image(base) }?;
    if secure {
        // The rest goes once the glibc build (and so its list) is known.
        stack.remove_env(&|n| LD_CAH_ENV.iter().any(|u| u.as_bytes() == n));
    }
    // (Each `stack.env()` measures every variable again.)
    let mut env = Env { vars: if secure { stack.env() } else { vars } };
    let facts = Facts {
        page,
        secure,
        // From the kernel's auxiliary vector, as glibc takes it: no system call.
        euid: stack.aux(AT_EUID).and_then(|e| u32::try_from(e).ok()).unwrap_or_else(sys::geteuid),
        debug: if secure { diag::Debug::default() } else { env.get(b"CAH_DEBUG").map(diag::Debug::parse).unwrap_or_default() },
        hwcap: (stack.aux(AT_HWCAP).unwrap_or(0) as u64, stack.aux(AT_HWCAP2).unwrap_or(0) as u64),
    };
    let tracing = env.get(b"LD_TRACE_LOADED_OBJECTS");
    let direct = stack.aux(AT_ENTRY) == Some(self_entry);
    // SAFETY: nothing holds pointers into the stack's vectors yet.
    let (program, main_map) = unsafe { invocation::read(&mut stack, base, page, direct, tracing.is_some()) }?;

    let mut ns = namespace(&stack, &program, main_map, self_map, &facts)?;
    let mut search = search_setup(&stack, &program, &env, &facts);
    // The plan first: on a warm start it names libc's layout table too.
    let plan = load_and_plan(&mut ns, &search, &program, &env, &facts, tracing)?;
    let glibc = libc::select(&ns, secure, &env.vars, plan.plan.as_ref().and_then(plan::Plan::layout))?;
    if let Some((_, l)) = glibc {
        crate::glibc::runtime::set_layout(l);
    }
    libc::settle_environment(&stack, &env.vars, glibc.map(|(_, l)| l), secure);
    if secure {
        env = Env { vars: stack.env() };
    }
    // Read after secure mode trimmed the environment: glibc 2.41 ignores
    // LD_BIND_NOW and LD_BIND_NOT in secure mode (they are on that
    // build's unsecure list), 2.36 honours them.
    search.bind_now = env.flag(b"LD_BIND_NOW");
    crate::lazy::set_bind_not(env.flag(b"LD_BIND_NOT"));
    let threads = thread_setup(&mut ns, glibc.map(|(_, l)| l), &stack)?;
    let early_init = match glibc {
        Some((libc, l)) => glibc_globals(&mut ns, libc, l, &stack, &threads, &facts)?,
        None => {
            pipeline::link_maps(&mut ns, &[], true);
            0
        }
    };
    // The list is made, relocation comes: what glibc's loader publishes at
    // this point (`RT_ADD`) is what a program that reads `_r_debug` itself
    // gets in its copy of it (`R_*_COPY` snapshots it, under glibc too).
    crate::debug::publish(&ns, base, crate::debug::RT_ADD);
    relocate(&mut ns, glibc, &stack, &search, &facts, &threads, &plan)?;
    // Obeyed: its mapping and memory go before the program runs (`run`
    // never returns, so nothing else would drop it).
    drop(plan);

    // Debugger interface, before RELRO seals the program's DT_DEBUG.
    crate::debug::publish(&ns, base, crate::debug::RT_CONSISTENT);
    let all: Vec<DsoId> = (0..ns.objs.len()).collect();
    pipeline::seal(&mut ns, &all)?;

    // Initialisers, then the program.
    let initfini = crate::init::initfini_order(&ns);
    let calls = crate::init::init_calls(&mut ns, &initfini);
    let entry = ns.objs[ns.main].entry;
    process::install(Process { ns, search });
    if early_init != 0 {
        // SAFETY: libc's `__libc_early_init(_Bool initial)`, after all
        // relocation and before any constructor, as glibc's loader calls it.
        let f: extern "C" fn(bool) = unsafe { core::mem::transmute(early_init) };
        f(true);
    }
    // SAFETY: all objects are relocated; these are their initialisers.
    unsafe { crate::init::run(&calls, stack.argc, stack.argv as usize, stack.envp as usize) };
    // SAFETY: the program is ready; its stack is the kernel's, adjusted.
    unsafe { native::jump_to_entry(entry, stack.sp as usize, fini as *const () as usize) }
}

/// ld-cah's own image, from the headers the kernel (or crt) left mapped
/// at `base`, and its entry point.
///
/// # Safety
/// `base` is ld-cah's own load address.
unsafe fn own_image(base: usize) -> Result<(Mapped, usize), Error> {
    // SAFETY: `base` is our own ELF header (caller).
    let ehdr = unsafe { map::ehdr_in_memory(base, Native::MACHINE) }.map_err(|e| err!("ld-cah.so", "{}", e))?;
    // SAFETY: our own program headers, mapped with our first segment.
    let m =
        unsafe { map::from_memory(base, base + ehdr.e_phoff as usize, ehdr.e_phnum as usize) }.map_err(|e| err!("ld-cah.so", "{}", e))?;
    Ok((m, base + ehdr.e_entry as usize))
}

/// Stage 2: the namespace holds the program, the vDSO, then ld-cah itself
/// (it answers to the loader's names when libc asks for it).
#[inline(never)]
fn namespace(stack: &Stack, program: &Program, main_map: Mapped, self_map: Mapped, facts: &Facts) -> Result<Namespace, Error> {
    let mut ns = Namespace::default();
    // Room for a large closure at once, as a mapping of its own (over the
    // heap's large-block size) whose untouched pages cost nothing: a `Dso`
    // is over a kilobyte, and growing the table copied every object
    // through fresh heap at each doubling (7 page faults of a hello's 100
    // when it grew from one; 16 for fifty libraries from eight).
    ns.objs.reserve(64);
    // `l_name` is empty however the program was started, as glibc's loader
    // leaves it: `dl_iterate_phdr` users tell the program by it.
    let mut main = Dso::new(Kind::Main, Vec::new(), program.path.clone(), main_map, facts.page)
        .map_err(|e| err!(diag::show(&program.path), "{}", e))?;
    if facts.secure && !program.direct {
        main.origin = closure::executable_origin();
    }
    ns.objs.push(main);
    ns.main = 0;
    if let Some(vdso) = stack.aux(AT_SYSINFO_EHDR).filter(|&v| v != 0) {
        if let Some(d) = vdso_object(vdso, facts.page) {
            ns.objs.push(d);
            ns.vdso = Some(ns.objs.len() - 1);
        }
    }
    let mut me = Dso::new(Kind::Loader, program.interp.clone(), program.interp.clone(), self_map, facts.page)
        .map_err(|e| err!("ld-cah.so", "{}", e))?;
    me.relocated = true;
    ns.objs.push(me);
    ns.loader = ns.objs.len() - 1;
    Ok(ns)
}

/// The kernel's vDSO at `AT_SYSINFO_EHDR`, if its headers make sense.
fn vdso_object(vdso: usize, page: usize) -> Option<Dso> {
    // SAFETY: the kernel maps the vDSO image at AT_SYSINFO_EHDR.
    let e = unsafe { map::ehdr_in_memory(vdso, Native::MACHINE) }.ok()?;
    // SAFETY: the vDSO's program headers are inside its image.
    let m = unsafe { map::from_memory(vdso, vdso + e.e_phoff as usize, e.e_phnum as usize) }.ok()?;
    let vbase = m.phdrs.iter().find(|p| p.p_type == PT_LOAD).map_or(vdso, |p| vdso.wrapping_sub(p.p_vaddr as usize));
    // SAFETY: same mapping, with the base corrected for the vDSO's link address.
    let m = unsafe { map::from_memory(vbase, vdso + e.e_phoff as usize, e.e_phnum as usize) }.ok()?;
    let mut d = Dso::new(Kind::Vdso, Vec::new(), Vec::new(), m, page).ok()?;
    d.name = d.soname().map(<[u8]>::to_vec).unwrap_or_else(|| b"linux-vdso.so.1".to_vec());
    d.name.push(0);
    d.relocated = true;
    Some(d)
}

/// Stage 3: where libraries are searched, kept for `dlopen`.
#[inline(never)]
fn search_setup(stack: &Stack, program: &Program, env: &Env, facts: &Facts) -> Search {
    let platform = stack
        .aux(AT_PLATFORM)
        // SAFETY: AT_PLATFORM points at a string on the stack.
        .map(|p| unsafe { cstr(p as *const u8) })
        .unwrap_or(Native::PLATFORM.as_bytes());
    let tokens = Tokens { platform, lib: Native::DST_LIB.as_bytes(), secure: facts.secure, trusted: Native::DEFAULT_DIRS };
    let source = if facts.secure { None } else { program.opts.library_path.or_else(|| env.get(b"LD_LIBRARY_PATH")) };
    // `$ORIGIN` in LD_LIBRARY_PATH means the program's directory.
    let origin = search::dirname(&program.path).to_vec();
    let library_path = source.map(|l| search::split_list(l, Some(&origin), true, &tokens).collect()).unwrap_or_default();
    let glibc_base = Native::GLIBC_INTERP.rsplit('/').next().unwrap_or(Native::GLIBC_INTERP).as_bytes();
    let loader_names: [&[u8]; 4] = [glibc_base, Native::GLIBC_INTERP.as_bytes(), b"ld-cah.so", &program.interp];
    Search {
        library_path,
        cache: if program.opts.inhibit_cache { None } else { map_ld_cache() },
        platform,
        secure: facts.secure,
        page: facts.page,
        loader_names: loader_names.iter().map(|n| n.to_vec()).collect(),
        // Set once the environment is settled (`run`).
        bind_now: false,
        hwcap: facts.hwcap,
    }
}

/// Stages 4 and 5: the closure, verified, and its binding plan. A locked
/// program's closure is first taken on trust (`policy::Pending`): the
/// binding plan recorded for exactly these files vouches for all of them,
/// else each is confirmed from the caches or by hashing. If one does not
/// match, the closure is loaded again with each candidate verified as it
/// is found, since the search must then go on past it. Nothing of the
/// closure has run before it is confirmed.
#[inline(never)]
fn load_and_plan(
    ns: &mut Namespace,
    search: &Search,
    program: &Program,
    env: &Env,
    facts: &Facts,
    tracing: Option<&'static [u8]>,
) -> Result<BindingPlan, Error> {
    let opts = &program.opts;
    // Listing and `--verify` report how each file was verified.
    let trust = tracing.is_none() && !opts.list && !opts.verify && BindingPlan::wanted(env, facts);
    // The closure lock and the verification policy (also used by dlopen).
    if policy::setup(ns, &env.vars, facts.secure, facts.euid, trust)? {
        let mark = ns.mark();
        if let Some(plan) =
            load_closure(ns, search, program, env, facts, tracing).ok().and_then(|()| BindingPlan::prepare(ns, program, env, facts).ok())
        {
            return versions_checked(ns, plan);
        }
        policy::abandon();
        discard(ns.rewind(mark));
    }
    load_closure(ns, search, program, env, facts, tracing)?;
    let plan = BindingPlan::prepare(ns, program, env, facts)
        .map_err(|policy::Unconfirmed| err!("ld-cah.so", "the closure could not be verified"))?;
    versions_checked(ns, plan)
}

/// Checks the versions each object needs (`DT_VERNEED`, glibc's
/// `_dl_check_map_versions`) unless a plan is used: one is recorded only
/// by a start whose closure passed this check, and is used only for the
/// same files (its key), whose bytes give the same answer.
#[inline(never)]
fn versions_checked(ns: &Namespace, plan: BindingPlan) -> Result<BindingPlan, Error> {
    if plan.plan.is_none() {
        closure::check_versions(ns)?;
    }
    Ok(plan)
}

/// Unmaps the libraries of a closure taken on trust and not confirmed:
/// none of their code ran, and the namespace no longer holds them.
fn discard(gone: Vec<Dso>) {
    for d in gone.iter().filter(|d| d.kind == Kind::Library && d.map_end > d.map_start) {
        // SAFETY: the range is this library's own mapping (or its private
        // copy); nothing was relocated, initialised or published from it,
        // and the namespace, the only owner of its address, let it go.
        let _ = unsafe { sys::munmap(d.map_start, d.map_end - d.map_start) };
    }
}

/// Stage 4: the closure, its versions checked. Listing and `--verify`
/// end the process here.
#[inline(never)]
fn load_closure(
    ns: &mut Namespace,
    search: &Search,
    program: &Program,
    env: &Env,
    facts: &Facts,
    tracing: Option<&'static [u8]>,
) -> Result<(), Error> {
    let opts = &program.opts;
    let cfg = search.config();
    let preloads = closure::preload_list(env.get(b"LD_PRELOAD"), opts.preload, facts.secure);
    // LD_TRACE_LOADED_OBJECTS lists the libraries not found (glibc's
    // faked link maps); `--verify` does not look for them, as glibc's.
    let trace = tracing.is_some() && !opts.list && !opts.verify;
    let mut missing = Vec::new();
    closure::load_all_tracing(ns, &cfg, &preloads, (trace || opts.verify).then_some(&mut missing))?;
    // Listing, glibc reports a missing version and goes on (and says
    // nothing of the versions of a library it did not find). A start
    // checks them once it knows whether a plan vouches for them
    // (`load_and_plan`); `--verify` does not.
    if trace || opts.list {
        if let Err(e) = closure::check_versions(ns) {
            if missing.is_empty() || e.kind != diag::ErrorKind::VersionFileMissing {
                diag::print(2, format_args!("ld-cah.so: warning: {e}\n"));
            }
        }
    }
    if facts.debug.files {
        for &id in ns.scope.iter().skip(1) {
            let d = &ns.objs[id];
            let asked = diag::show(d.aliases.first().map_or(b"", |a| a));
            diag::print(2, format_args!("ld-cah.so: files: {} => {} ({:#x})\n", asked, d.display_name(), d.base));
        }
    }
    if opts.list || trace {
        let listing = crate::trace::Listing {
            missing: &missing,
            program: tracing.is_some_and(crate::trace::lists_program),
            loader_path: program.invoked_as,
            notes: opts.list,
        };
        crate::trace::print(ns, &listing);
        sys::exit_group(0);
    }
    if opts.verify {
        sys::exit_group(0);
    }
    Ok(())
}

/// What stage 6 set up for the main thread.
struct Threads {
    layout: tls::StaticLayout,
    block: tls::ThreadBlock,
    next_modid: usize,
    /// glibc 2.41 keeps the rseq area in static TLS: its offset.
    rseq_tls: Option<usize>,
}

/// Stage 6: module ids in load order (the program first), the static TLS
/// layout, the main thread's block, TCB and stack guards.
#[inline(never)]
fn thread_setup(ns: &mut Namespace, glibc: Option<&'static Layout>, stack: &Stack) -> Result<Threads, Error> {
    let mut order: Vec<DsoId> = alloc::vec![ns.main];
    order.extend(ns.scope.iter().copied().filter(|&i| i != ns.main));
    let mut next_modid = 1;
    for &id in &order {
        if let Some(m) = ns.objs[id].tls.as_mut() {
            m.modid = next_modid;
            next_modid += 1;
        }
    }
    // The layout of the libc in the closure decides the size of
    // `struct pthread`.
    let variant = tls::variant();
    let pthread_size = glibc.map(|l| l.pthread.size as usize);
    let (tcb_size, pre_tcb) = match variant {
        TlsVariant::Two => (pthread_size.unwrap_or(TCB_SIZE_X86_64), 0),
        TlsVariant::One => (0, pthread_size.unwrap_or(PRE_TCB_SIZE_AARCH64)),
    };
    // Lay out in module-id order (the order above), then put them back.
    let ids: Vec<DsoId> = order.iter().copied().filter(|&i| ns.objs[i].tls.is_some()).collect();
    let mut modules: Vec<tls::Module> = ids.iter().filter_map(|&i| ns.objs[i].tls).collect();
    let mut refs: Vec<&mut tls::Module> = modules.iter_mut().collect();
    let mut layout = tls::layout(variant, &mut refs, tcb_size);
    for (m, &i) in modules.iter().zip(&ids) {
        ns.objs[i].tls = Some(*m);
    }
    let rseq_tls = match glibc {
        Some(l) if l.pthread.rseq_area.is_none() => Some(tls::reserve(variant, &mut layout, 32, 32, tcb_size)),
        _ => None,
    };
    tls::register_initial(&layout, modules, next_modid);
    let prog_name = ns.objs[ns.main].display_name();
    let block = tls::allocate(variant, &layout, tcb_size, pre_tcb, next_modid)
        .map_err(|e| err!(prog_name, "cannot allocate TLS: {}", e.describe()))?;
    let random = stack.aux(AT_RANDOM).unwrap_or(0);
    let (guard, pguard) = if random != 0 {
        // SAFETY: AT_RANDOM points at 16 random bytes on the stack.
        let r = unsafe { core::ptr::read_unaligned(random as *const [usize; 2]) };
        // The low byte of the canary is zero so string overflows stop at it.
        (r[0] & !0xff, r[1])
    } else {
        (0xff0a_0000_0000_0000, 0)
    };
    // SAFETY: the TCB was just allocated for this thread and lives forever.
    unsafe {
        native::init_tcb(block.tp, block.dtv, guard, pguard);
        sys::set_thread_pointer(block.tp).map_err(|e| err!(prog_name, "cannot set the thread pointer: {}", e.describe()))?;
    }
    crate::glibc::set_stack_guard(guard, pguard);
    Ok(Threads { layout, block, next_modid, rseq_tls })
}

/// Stage 7: link maps and everything libc reads from its loader, which
/// must exist before relocation: libc's IFUNC resolvers read the CPU
/// description and look up vDSO symbols through
/// `GLRO(dl_lookup_symbol_x)`. Returns libc's `__libc_early_init`.
fn glibc_globals(
    ns: &mut Namespace,
    libc: DsoId,
    l: &'static Layout,
    stack: &Stack,
    threads: &Threads,
    facts: &Facts,
) -> Result<usize, Error> {
    let chain = ns.link_order();
    pipeline::link_maps(ns, &chain, true);
    let process = crate::glibc::rtld::Process {
        sp: stack.sp as usize,
        argv: stack.argv as usize,
        auxv: stack.auxv as usize,
        secure: facts.secure,
        page: facts.page,
        platform: stack.aux(AT_PLATFORM).unwrap_or(0),
        hwcap: facts.hwcap.0,
        hwcap2: facts.hwcap.1,
        clktck: stack.aux(AT_CLKTCK).unwrap_or(100),
        minsigstksz: stack.aux(AT_MINSIGSTKSZ).filter(|&v| v != 0).unwrap_or(4096),
        sysinfo_ehdr: stack.aux(AT_SYSINFO_EHDR).unwrap_or(0),
        rseq_feature_size: stack.aux(AT_RSEQ_FEATURE_SIZE).unwrap_or(0),
    };
    crate::glibc::rtld::fill_globals(l, ns, &chain, &process, &threads.layout, &threads.block, threads.next_modid, threads.rseq_tls)
        .map_err(|e| err!(ns.objs[ns.main].display_name(), "{}", e))?;
    crate::glibc::api::install(l, &crate::dlopen::HOOKS);
    Ok(crate::glibc::api::finish(l, ns, libc))
}

/// Stage 8: relocation in glibc's order (`dl_main`): deepest dependency
/// first, the program last, so that its copy relocations copy relocated
/// data (IFUNC slots included); glibc 2.39 and later relocate libc before
/// anything. Then the main thread's TLS images, which have their final
/// values now.
fn relocate(
    ns: &mut Namespace,
    glibc: Option<(DsoId, &'static Layout)>,
    stack: &Stack,
    search: &Search,
    facts: &Facts,
    threads: &Threads,
    plan: &BindingPlan,
) -> Result<(), Error> {
    let libc_first = glibc.filter(|(_, l)| crate::reloc::relocates_libc_first(l.glibc_version)).map(|(libc, _)| libc);
    let initfini = crate::init::initfini_order(ns);
    let order = crate::reloc::startup_order(&initfini, libc_first);
    let scope = ns.scope.clone();
    let binding = pipeline::Binding {
        scope: &scope,
        bind_now: search.bind_now,
        progname: stack.arg(0).map_or("<program name unknown>", diag::show),
        hwcap: facts.hwcap,
        plan: plan.plan.as_ref(),
        record: plan.store.is_some(),
    };
    let mut done = pipeline::relocate(ns, &order, &binding)?;
    done.keep(ns);
    let stats = done.stats;
    if facts.debug.statistics {
        diag::print(
            2,
            format_args!(
                "ld-cah.so: statistics: {} relative, {} symbolic relocations, {} lookups, {} bound by plan, {} PLT slots left to lazy binding\n",
                stats.relative, stats.symbolic, stats.lookups, stats.planned, stats.lazy
            ),
        );
    }
    plan.finish(done.recorded, glibc.and_then(|(_, l)| libc::builtin_index(l)), &stats, facts);
    let variant = tls::variant();
    for d in ns.objs.iter_mut() {
        if let Some(m) = d.tls.filter(|m| m.modid != 0) {
            // SAFETY: the layout placed `m` inside the block; its image is mapped.
            unsafe { tls::init_module(variant, &threads.block, &m) };
        }
        d.open_count = 1;
        d.nodelete = true;
    }
    Ok(())
}

/// The binding plan of this start-up (`reloc::plan`): obeyed when one is
/// recorded for exactly this closure, else recorded for the next start.
struct BindingPlan {
    key: Option<plan::Key>,
    plan: Option<plan::Plan>,
    /// Where a plan recorded by this start goes; `None`: nothing recorded.
    store: Option<plan::Store>,
    places: Vec<crate::verify::runtime::Place>,
    euid: u32,
}

impl BindingPlan {
    /// Whether a plan may be used (`CAH_PLAN=0` turns plans off).
    fn wanted(env: &Env, facts: &Facts) -> bool {
        facts.secure || env.get(b"CAH_PLAN") != Some(b"0")
    }

    /// Finds the plan for this closure, or opens the place to record one.
    /// A closure taken on trust is confirmed here: by the plan, or else
    /// file by file (`Err` if one does not match).
    #[inline(never)]
    fn prepare(ns: &mut Namespace, program: &Program, env: &Env, facts: &Facts) -> Result<BindingPlan, policy::Unconfirmed> {
        let euid = facts.euid;
        let cache_dir = if facts.secure { None } else { env.get(b"CAH_CACHE_DIR") };
        let places = crate::verify::runtime::places(facts.secure, euid, cache_dir);
        let mut none = BindingPlan { key: None, plan: None, store: None, places, euid };
        let say = |what: core::fmt::Arguments<'_>| {
            if facts.debug.bindings {
                diag::print(2, format_args!("ld-cah.so: bindings: {what}\n"));
            }
        };
        if !Self::wanted(env, facts) {
            say(format_args!("no plan: CAH_PLAN=0"));
            return Ok(none);
        }
        // The program's identity: the file the kernel ran, or the one we mapped.
        let mut path = if program.direct { program.path.clone() } else { b"/proc/self/exe".to_vec() };
        path.push(0);
        let main = ns.main;
        ns.objs[main].identity = plan::identity_of(&path);
        let build_id = crate::glibc::rtld::build_id(ns, ns.loader).unwrap_or_default();
        let Some(key) = plan::key(ns, &build_id) else {
            policy::confirm(false)?;
            say(format_args!("no plan: a file of the closure has no identity (unreadable program?)"));
            return Ok(none);
        };
        let name = key.name();
        match plan::load(&none.places, euid, &key, ns.objs.len()).and_then(|p| p.agrees(ns).map(|()| p)) {
            Ok(p) => {
                let _ = policy::confirm(true);
                let layout = if p.layout().is_some() { ", libc's layout table" } else { "" };
                say(format_args!("using the plan {} ({} references{layout})", name, p.len()));
                // Before libc's CPU description is filled in (stage 7).
                match native::cpuid_replay(p.cpuid(), p.xcr0(), p.this_boot()) {
                    Ok((0, _)) => {}
                    Ok((n, xsave)) => say(format_args!(
                        "CPU description: {n} CPUID leaves from the plan{}",
                        match (xsave, p.this_boot()) {
                            (false, _) => ", the XSAVE leaf executed: XCR0 is not as recorded",
                            (true, true) => ", recorded this boot: none executed",
                            (true, false) => "",
                        }
                    )),
                    Err(why) => say(format_args!("CPU description: CPUID executed, the plan's leaves not used: {why}")),
                }
                none.plan = Some(p);
            }
            Err(why) => {
                policy::confirm(false)?;
                match plan::Store::open(&none.places, euid) {
                    Ok(store) => {
                        say(format_args!("no plan {}: {why}; recording one", name));
                        none.store = Some(store);
                    }
                    Err(cannot) => say(format_args!("no plan {}: {why}; none recorded: the cache cannot store one ({cannot})", name)),
                }
            }
        }
        none.key = Some(key);
        Ok(none)
    }

    /// After relocation: a cold start stores what it resolved.
    fn finish(&self, recorded: Option<plan::Recorder>, layout: Option<usize>, stats: &crate::reloc::Stats, facts: &Facts) {
        let (Some(key), Some(store), Some(rec)) = (&self.key, &self.store, recorded) else { return };
        let mut cpuid = Vec::new();
        native::cpuid_log(|leaf| cpuid.push(leaf));
        let bytes = rec.encode(key, layout, &cpuid, native::xcr0());
        let r = store.put(self.euid, key, &bytes);
        if facts.debug.bindings {
            match r {
                Ok(()) => diag::print(2, format_args!("ld-cah.so: bindings: plan {} written ({} lookups)\n", key.name(), stats.lookups)),
                Err(why) => diag::print(2, format_args!("ld-cah.so: bindings: plan {} not written: {why}\n", key.name())),
            }
        }
    }
}

/// Maps `/etc/ld.so.cache` read-only for the life of the process.
fn map_ld_cache() -> Option<&'static [u8]> {
    let fd = sys::open(b"/etc/ld.so.cache\0", sys::O_RDONLY, 0).ok()?;
    let st = sys::fstat(&fd).ok()?;
    let len = usize::try_from(st.size).ok().filter(|&l| l > 0 && l < 1 << 30)?;
    // SAFETY: a fresh read-only private mapping the kernel places.
    let addr = unsafe { sys::mmap(0, len, sys::PROT_READ, sys::MAP_PRIVATE, fd.raw(), 0) }.ok()?;
    // SAFETY: mapped read-only above and never unmapped. A file that
    // shrinks under us could fault; ldconfig replaces it by rename instead.
    Some(unsafe { core::slice::from_raw_parts(addr as *const u8, len) })
}
