//! The stage driver: from the kernel's stack to the program's entry point.
//!
//! 1. read argc/argv/envp/auxv and the environment;
//! 2. find out how we were started: as `PT_INTERP` (the kernel mapped the
//!    program) or directly (`ld-cah.so [OPTIONS] PROGRAM [ARGS...]`: map the
//!    program, drop our own arguments and rewrite the auxiliary vector);
//! 3. load the closure breadth-first and check versions (`--list`,
//!    `LD_TRACE_LOADED_OBJECTS`, `--verify` stop here);
//! 4. lay out static TLS and install the main thread's TCB;
//! 5. relocate every object in glibc's order, dependencies first, the
//!    program last, IFUNC resolvers run as glibc runs them; then copy TLS
//!    images and protect RELRO;
//! 6. tell debuggers, run initialisers, jump to the entry point with the
//!    finaliser function in the ABI's register.
#![allow(unsafe_code)]

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

use object::elf::*;

use crate::arch::native::{self, Native};
use crate::arch::ArchInfo;
use crate::diag::{self, Error};
use crate::err;
use crate::link::closure::{self, Config};
use crate::link::ldcache::LdCache;
use crate::link::search::{self, SearchEnv, Tokens};
use crate::link::{Dso, DsoId, Kind, Namespace};
use crate::map;
use crate::reloc::{Engine, Target};
use crate::sys;
use crate::tls;

pub const AT_NULL: usize = 0;
pub const AT_PHDR: usize = 3;
pub const AT_PHNUM: usize = 5;
pub const AT_PAGESZ: usize = 6;
pub const AT_BASE: usize = 7;
pub const AT_ENTRY: usize = 9;
pub const AT_PLATFORM: usize = 15;
pub const AT_HWCAP: usize = 16;
pub const AT_SECURE: usize = 23;
pub const AT_RANDOM: usize = 25;
pub const AT_HWCAP2: usize = 26;
pub const AT_EXECFN: usize = 31;
pub const AT_CLKTCK: usize = 17;
pub const AT_MINSIGSTKSZ: usize = 51;
pub const AT_RSEQ_FEATURE_SIZE: usize = 27;
pub const AT_SYSINFO_EHDR: usize = 33;

/// `sizeof(struct pthread)` of glibc 2.36, the room left at (x86_64) or
/// below (aarch64) the thread pointer until the glibc layer knows the
/// exact build.
const TCB_SIZE_X86_64: usize = 2368;
const PRE_TCB_SIZE_AARCH64: usize = 1856;

/// The process's initial stack, as the kernel laid it out.
#[derive(Clone, Copy, Debug)]
pub struct Stack {
    pub sp: *mut usize,
    pub argc: usize,
    pub argv: *mut *const u8,
    pub envp: *mut *const u8,
    pub auxv: *mut usize,
}

impl Stack {
    /// # Safety
    /// `sp` is a process entry stack.
    pub unsafe fn parse(sp: *mut usize) -> Stack {
        // SAFETY: the kernel's layout: argc, argv[argc], NULL, envp..., NULL, auxv.
        unsafe {
            let argc = *sp;
            let argv = sp.add(1) as *mut *const u8;
            let envp = argv.add(argc + 1);
            let mut e = envp;
            while !(*e).is_null() {
                e = e.add(1);
            }
            Stack { sp, argc, argv, envp, auxv: e.add(1) as *mut usize }
        }
    }

    pub fn arg(&self, i: usize) -> Option<&'static [u8]> {
        if i >= self.argc {
            return None;
        }
        // SAFETY: i < argc; argv strings are NUL-terminated and live forever.
        unsafe { Some(cstr(*self.argv.add(i))) }
    }

    pub fn env(&self) -> Vec<&'static [u8]> {
        let mut out = Vec::new();
        let mut e = self.envp;
        // SAFETY: envp is NULL-terminated (see parse).
        unsafe {
            while !(*e).is_null() {
                out.push(cstr(*e));
                e = e.add(1);
            }
        }
        out
    }

    pub fn aux(&self, key: usize) -> Option<usize> {
        let mut a = self.auxv;
        // SAFETY: auxv is a list of pairs ending in AT_NULL.
        unsafe {
            while *a != AT_NULL {
                if *a == key {
                    return Some(*a.add(1));
                }
                a = a.add(2);
            }
        }
        None
    }

    fn set_aux(&self, key: usize, value: usize) {
        let mut a = self.auxv;
        // SAFETY: as in `aux`; the stack is ours to write.
        unsafe {
            while *a != AT_NULL {
                if *a == key {
                    *a.add(1) = value;
                }
                a = a.add(2);
            }
        }
    }

    /// Secure mode (set-uid programs): removes every variable whose name
    /// `drop` selects from the environment the program (and its children)
    /// will see. Like glibc's `unsetenv`, later entries move down and the
    /// array ends earlier.
    fn remove_env(&self, drop: &dyn Fn(&[u8]) -> bool) {
        let mut e = self.envp;
        // SAFETY: envp is a NULL-terminated array of strings on our stack.
        unsafe {
            while !(*e).is_null() {
                let entry = cstr(*e);
                let name = entry.split(|&b| b == b'=').next().unwrap_or(entry);
                if drop(name) {
                    let mut d = e;
                    loop {
                        *d = *d.add(1);
                        if (*d).is_null() {
                            break;
                        }
                        d = d.add(1);
                    }
                } else {
                    e = e.add(1);
                }
            }
        }
    }

    /// Gives the `k`-th `NAME=` entry the value `values[k]`, in place (the
    /// strings live on our stack); a value longer than the old one is
    /// never written (secure mode only ever shortens them).
    fn shorten_env(&self, name: &[u8], values: &[&[u8]]) {
        let mut e = self.envp;
        let mut k = 0;
        // SAFETY: as in `remove_env`; each write stays inside the old string.
        unsafe {
            while !(*e).is_null() && k < values.len() {
                let entry = cstr(*e);
                if entry.len() > name.len() && entry.starts_with(name) && entry[name.len()] == b'=' {
                    let old = entry.len() - name.len() - 1;
                    let v = values[k];
                    if v.len() <= old {
                        let p = (*e as *mut u8).add(name.len() + 1);
                        core::ptr::copy_nonoverlapping(v.as_ptr(), p, v.len());
                        *p.add(v.len()) = 0;
                    }
                    k += 1;
                }
                e = e.add(1);
            }
        }
    }

    /// Drops the first `k` arguments (ours, in direct mode), keeping the
    /// stack 16-byte aligned as the entry ABI requires. Returns the new stack.
    ///
    /// # Safety
    /// Nothing may hold pointers into the argv/envp/auxv arrays afterwards.
    unsafe fn drop_args(&self, k: usize) -> Stack {
        let argc = self.argc - k;
        // Words from argv[k] to the end of auxv (AT_NULL pair included).
        let mut a = self.auxv;
        // SAFETY: walking auxv as in `aux`.
        let end = unsafe {
            while *a != AT_NULL {
                a = a.add(2);
            }
            a.add(2)
        };
        // SAFETY: all inside the initial stack; we only move words down.
        unsafe {
            let from = self.sp.add(1 + k);
            let words = end.offset_from(from) as usize;
            let new_sp = if k.is_multiple_of(2) { self.sp.add(k) } else { self.sp.add(k - 1) };
            core::ptr::copy(from, new_sp.add(1), words);
            *new_sp = argc;
            Stack::parse(new_sp)
        }
    }
}

/// The length of the C string at `p`.
///
/// # Safety
/// `p` points at a NUL-terminated string.
pub unsafe fn strlen(p: usize) -> usize {
    let mut n = 0;
    // SAFETY: forwarded to the caller.
    unsafe {
        while *((p + n) as *const u8) != 0 {
            n += 1;
        }
    }
    n
}

/// ld-cah's own variables, removed for set-uid programs.
const LD_CAH_ENV: &[&str] = &["CAH_DEBUG", "CAH_STORE", "CAH_CACHE_DIR"];

/// Variables removed for set-uid programs that use no glibc ld-cah has a
/// table for: glibc 2.36's list (`unsecvars.h`). With a known glibc, the
/// build's own list (`Layout::unsecure_env`) applies instead.
const UNSECURE_ENV: &[&str] = &[
    "GCONV_PATH",
    "GETCONF_DIR",
    "HOSTALIASES",
    "LD_AUDIT",
    "LD_DEBUG",
    "LD_DEBUG_OUTPUT",
    "LD_DYNAMIC_WEAK",
    "LD_HWCAP_MASK",
    "LD_LIBRARY_PATH",
    "LD_ORIGIN_PATH",
    "LD_PRELOAD",
    "LD_PROFILE",
    "LD_SHOW_AUXV",
    "LD_USE_LOAD_BIAS",
    "LOCALDOMAIN",
    "LOCPATH",
    "MALLOC_TRACE",
    "NIS_PATH",
    "NLSPATH",
    "RESOLV_HOST_CONF",
    "RES_OPTIONS",
    "TMPDIR",
    "TZDIR",
];

/// # Safety
/// `p` points at a NUL-terminated string that lives forever.
unsafe fn cstr(p: *const u8) -> &'static [u8] {
    let mut n = 0;
    // SAFETY: forwarded to the caller.
    unsafe {
        while *p.add(n) != 0 {
            n += 1;
        }
        core::slice::from_raw_parts(p, n)
    }
}

/// The loaded program, kept for the finaliser and (later) `dlopen`.
pub static STATE: spin::Mutex<Option<Namespace>> = spin::Mutex::new(None);

/// Runs every finaliser; the program's `atexit` calls this.
pub extern "C" fn fini() {
    let calls = match STATE.lock().as_mut() {
        Some(ns) => crate::init::fini_calls(ns),
        None => return,
    };
    // SAFETY: the calls are finalisers of relocated, initialised objects.
    unsafe { crate::init::run(&calls, 0, 0, 0) };
}

/// Options of the direct invocation.
#[derive(Default)]
struct Options {
    list: bool,
    verify: bool,
    library_path: Option<&'static [u8]>,
    preload: Option<&'static [u8]>,
    argv0: Option<*const u8>,
    inhibit_cache: bool,
}

const USAGE: &str = "\
Usage: ld-cah.so [OPTION]... EXECUTABLE-FILE [ARGS-FOR-PROGRAM...]
Load and run EXECUTABLE-FILE, checking the digest of every locked library.

  --list                 list the dependencies and where they were found, and exit
  --verify               check that the program is dynamic and its locked libraries
                         verify, and exit (0; 1: not dynamic; 2: no PT_INTERP)
  --library-path PATH    use PATH instead of LD_LIBRARY_PATH
  --preload LIST         load the objects in LIST (space or colon separated) first
  --argv0 NAME           set argv[0] of the program to NAME
  --inhibit-cache        do not use /etc/ld.so.cache
  --help                 show this help and exit
  --version              show the version and exit

Environment: LD_LIBRARY_PATH, LD_PRELOAD, LD_TRACE_LOADED_OBJECTS (list as ldd does),
CAH_DEBUG=files,symbols,statistics,verify,
CAH_STRICT=1 (refuse unlocked libraries), CAH_STORE, CAH_CACHE_DIR.
";

/// The one line for a libc that no layout table fits: libc, its version,
/// its build id and what differs.
fn unknown_glibc(
    ns: &Namespace,
    libc: DsoId,
    facts: &crate::glibc::fingerprint::Libc<'_>,
    why: crate::glibc::fingerprint::Mismatch,
    installed: Option<crate::glibc::installed::Refused>,
) -> Error {
    use crate::glibc::fingerprint::Mismatch;
    let mut id = String::new();
    for b in crate::glibc::rtld::build_id(ns, libc).unwrap_or_default() {
        let _ = write!(id, "{b:02x}");
    }
    let version = facts.version().or_else(|| facts.banner_version()).map_or("unknown", |v| core::str::from_utf8(v).unwrap_or("unknown"));
    let detail = match why {
        Mismatch::Version => String::from("no table for this version"),
        Mismatch::Imports => String::from("it imports other loader symbols than the known builds"),
        Mismatch::ThreadDb(d) => alloc::format!("its _thread_db_{d} differs from the known builds"),
    };
    let name = ns.objs[libc].display_name();
    let add = match installed {
        None => alloc::format!("add one with `cah glibc add {name}`"),
        Some(r) => alloc::format!(
            "the installed table {} was refused ({}); make it again with `cah glibc add {name}`",
            core::str::from_utf8(&r.path).unwrap_or("?"),
            r.why
        ),
    };
    err!(name, "glibc {} (build id {}) has no layout table: {}; {}", version, if id.is_empty() { "missing" } else { &id }, detail, add)
}

/// `--version`: the glibc builds this loader can stand in for.
fn print_glibc_builds() {
    let arch = crate::glibc::layout::Arch::from_machine(Native::MACHINE);
    let mut line = String::from("glibc layouts:");
    for l in crate::glibc::layouts::ALL.iter().filter(|l| Some(l.arch) == arch) {
        let _ = write!(line, " {}", l.glibc_version);
    }
    line.push('\n');
    diag::print(1, format_args!("{line}"));
}

fn fail(e: Error) -> ! {
    diag::fatal(&e)
}

/// Entry from `crt` once ld-cah is relocated.
///
/// # Safety
/// `sp` is the process entry stack and `base` our own load address.
#[cfg_attr(feature = "rtld", no_mangle)]
pub unsafe extern "C" fn ld_cah_main(sp: *mut usize, base: usize) -> ! {
    // SAFETY: crt passes the kernel's stack.
    let stack = unsafe { Stack::parse(sp) };
    match unsafe { run(stack, base) } {
        Ok(never) => match never {},
        Err(e) => fail(e),
    }
}

enum Never {}

/// # Safety
/// As `ld_cah_main`.
unsafe fn run(mut stack: Stack, base: usize) -> Result<Never, Error> {
    let page = stack.aux(AT_PAGESZ).filter(|p| p.is_power_of_two() && *p >= 4096).unwrap_or(4096);
    // glibc 2.40's `glibc.rtld.enable_secure=1` asks for secure mode too.
    let secure = stack.aux(AT_SECURE).unwrap_or(0) != 0 || crate::glibc::tunables::enable_secure_requested(&stack.env());
    let machine = Native::MACHINE;

    // Ourselves, from the headers the kernel (or crt) left mapped at `base`.
    // SAFETY: `base` is our own ELF header.
    let self_ehdr = unsafe { map::ehdr_in_memory(base, machine) }.map_err(|e| err!("ld-cah.so", "{}", e))?;
    let self_entry = base + self_ehdr.e_entry as usize;
    // SAFETY: our own program headers, mapped with our first segment.
    let self_map = unsafe { map::from_memory(base, base + self_ehdr.e_phoff as usize, self_ehdr.e_phnum as usize) }
        .map_err(|e| err!("ld-cah.so", "{}", e))?;
    let direct = stack.aux(AT_ENTRY) == Some(self_entry);

    if secure {
        // The rest goes once the glibc build (and so its list) is known.
        stack.remove_env(&|n| LD_CAH_ENV.iter().any(|u| u.as_bytes() == n));
    }
    let env = stack.env();
    let getenv =
        |name: &[u8]| -> Option<&'static [u8]> { env.iter().find_map(|e| e.strip_prefix(name).and_then(|r| r.strip_prefix(b"="))) };
    let debug = if secure { diag::Debug::default() } else { getenv(b"CAH_DEBUG").map(diag::Debug::parse).unwrap_or_default() };

    let mut opts = Options::default();
    // The path we were started by (direct mode): the loader's `l_name` in
    // glibc's trace output.
    let invoked_as = if direct { stack.arg(0) } else { None };
    let trace_env = getenv(b"LD_TRACE_LOADED_OBJECTS");
    let mut interp_name: Vec<u8>;
    let main_map;
    let main_path: Vec<u8>;
    if direct {
        let mut i = 1;
        while let Some(a) = stack.arg(i) {
            if !a.starts_with(b"--") {
                break;
            }
            i += 1;
            let mut value = |what: &str| -> Result<&'static [u8], Error> {
                let v = stack.arg(i).ok_or_else(|| err!("ld-cah.so", "option {} needs an argument", what))?;
                i += 1;
                Ok(v)
            };
            match a {
                b"--" => break,
                b"--help" => {
                    diag::print(1, format_args!("{USAGE}"));
                    sys::exit_group(0);
                }
                b"--version" => {
                    diag::print(1, format_args!("ld-cah.so {} ({})\n", env!("CARGO_PKG_VERSION"), Native::PLATFORM));
                    print_glibc_builds();
                    sys::exit_group(0);
                }
                b"--list" => opts.list = true,
                b"--verify" => opts.verify = true,
                b"--inhibit-cache" => opts.inhibit_cache = true,
                b"--library-path" => opts.library_path = Some(value("--library-path")?),
                b"--preload" => opts.preload = Some(value("--preload")?),
                b"--argv0" => opts.argv0 = Some(value("--argv0")?.as_ptr()),
                other => return Err(err!("ld-cah.so", "unknown option {} (try --help)", diag::show(other))),
            }
        }
        if i < stack.argc && stack.arg(i) == Some(b"--") {
            i += 1;
        }
        let prog = stack.arg(i).ok_or_else(|| err!("ld-cah.so", "missing program name (try --help)"))?;
        let mut cpath = prog.to_vec();
        cpath.push(0);
        // O_NONBLOCK: a FIFO must not block us in open(); `map_file`
        // refuses anything but a regular file.
        let fd = sys::open(&cpath, sys::O_RDONLY | sys::O_NONBLOCK, 0).map_err(|e| err!(diag::show(prog), "cannot open: {}", e.describe()));
        let m = fd.and_then(|fd| map::map_file(&fd, machine, page).map_err(|e| err!(diag::show(prog), "{}", e)));
        // `--verify` (ldd's test): glibc's ld.so exits 1, silently, for a
        // file it cannot load.
        let m = match m {
            Err(_) if opts.verify => sys::exit_group(1),
            m => m?,
        };
        main_path = prog.to_vec();
        // SAFETY: `prog` points into argv strings, which stay put.
        let prog_ptr = unsafe { *stack.argv.add(i) };
        // SAFETY: nothing holds pointers into the vectors we move.
        stack = unsafe { stack.drop_args(i) };
        stack.set_aux(AT_PHDR, m.phdr_addr);
        stack.set_aux(AT_PHNUM, m.phdrs.len());
        stack.set_aux(AT_ENTRY, m.entry);
        stack.set_aux(AT_EXECFN, prog_ptr as usize);
        stack.set_aux(AT_BASE, base);
        if let Some(a0) = opts.argv0 {
            // SAFETY: argv[0] exists (argc >= 1 after dropping our args).
            unsafe { *stack.argv = a0 };
        }
        interp_name = Native::GLIBC_INTERP.as_bytes().to_vec();
        if let Some(p) = m.phdrs.iter().find(|p| p.p_type == PT_INTERP) {
            if let Some(s) = m.img.cstr(m.base + p.p_vaddr as usize, m.base + (p.p_vaddr + p.p_filesz) as usize) {
                interp_name = s.to_vec();
            }
        }
        // Static and static-pie programs: no PT_INTERP, nothing to link.
        let has_interp = m.phdrs.iter().any(|p| p.p_type == PT_INTERP);
        if !has_interp {
            if opts.verify {
                // glibc's `--verify`: 2 for a dynamic object without
                // PT_INTERP (static-pie), 1 for no PT_DYNAMIC at all.
                sys::exit_group(if m.phdrs.iter().any(|p| p.p_type == PT_DYNAMIC) { 2 } else { 1 });
            }
            if opts.list || trace_env.is_some() {
                diag::print(1, format_args!("\tstatically linked\n"));
                sys::exit_group(0);
            }
            // SAFETY: a static program starts like any other, on its stack.
            unsafe { native::jump_to_entry(m.entry, stack.sp as usize, 0) };
        }
        main_map = m;
    } else {
        let phdr = stack.aux(AT_PHDR).ok_or_else(|| err!("ld-cah.so", "no AT_PHDR from the kernel"))?;
        let phnum = stack.aux(AT_PHNUM).unwrap_or(0);
        // SAFETY: the kernel mapped the program and gives its headers.
        let raw = unsafe { core::slice::from_raw_parts(phdr as *const u8, phnum.min(256) * 56) };
        let phdrs = crate::elf::Phdr::parse_all(raw).unwrap_or_default();
        let main_base = match phdrs.iter().find(|p| p.p_type == PT_PHDR) {
            Some(p) => phdr.wrapping_sub(p.p_vaddr as usize),
            None => match phdrs.iter().find(|p| p.p_type == PT_LOAD) {
                Some(p) => phdr.wrapping_sub(p.p_vaddr as usize + 64),
                None => 0,
            },
        };
        // SAFETY: the kernel mapped the program as its headers say.
        let mut m = unsafe { map::from_memory(main_base, phdr, phnum) }.map_err(|e| err!("program", "{}", e))?;
        m.entry = stack.aux(AT_ENTRY).unwrap_or(0);
        interp_name = Native::GLIBC_INTERP.as_bytes().to_vec();
        if let Some(p) = m.phdrs.iter().find(|p| p.p_type == PT_INTERP) {
            if let Some(s) = m.img.cstr(m.base + p.p_vaddr as usize, m.base + (p.p_vaddr + p.p_filesz) as usize) {
                interp_name = s.to_vec();
            }
        }
        main_path = stack
            .aux(AT_EXECFN)
            // SAFETY: AT_EXECFN points at the path string on the stack.
            .map(|p| unsafe { cstr(p as *const u8) }.to_vec())
            .or_else(|| stack.arg(0).map(<[u8]>::to_vec))
            .unwrap_or_default();
        main_map = m;
    }

    // The namespace: program, vDSO, then ld-cah itself (it answers to the
    // loader's names when libc asks for it).
    let mut ns = Namespace::default();
    let main_lname = if direct { main_path.clone() } else { Vec::new() };
    let mut main =
        Dso::new(Kind::Main, main_lname, main_path.clone(), main_map, page).map_err(|e| err!(diag::show(&main_path), "{}", e))?;
    if secure && !direct {
        main.origin = closure::executable_origin();
    }
    let prog_name = String::from(main.display_name());
    ns.objs.push(main);
    ns.main = 0;
    if let Some(vdso) = stack.aux(AT_SYSINFO_EHDR).filter(|&v| v != 0) {
        // SAFETY: the kernel maps the vDSO image at AT_SYSINFO_EHDR.
        if let Ok(e) = unsafe { map::ehdr_in_memory(vdso, machine) } {
            // SAFETY: the vDSO's program headers are inside its image.
            if let Ok(m) = unsafe { map::from_memory(vdso, vdso + e.e_phoff as usize, e.e_phnum as usize) } {
                let vbase = m.phdrs.iter().find(|p| p.p_type == PT_LOAD).map_or(vdso, |p| vdso.wrapping_sub(p.p_vaddr as usize));
                // SAFETY: same mapping, with the base corrected for the vDSO's link address.
                if let Ok(m) = unsafe { map::from_memory(vbase, vdso + e.e_phoff as usize, e.e_phnum as usize) } {
                    if let Ok(mut d) = Dso::new(Kind::Vdso, Vec::new(), Vec::new(), m, page) {
                        let so = d.soname().map(<[u8]>::to_vec).unwrap_or_else(|| b"linux-vdso.so.1".to_vec());
                        d.name = so;
                        d.name.push(0);
                        d.relocated = true;
                        ns.objs.push(d);
                        ns.vdso = Some(ns.objs.len() - 1);
                    }
                }
            }
        }
    }
    let mut me =
        Dso::new(Kind::Loader, interp_name.clone(), interp_name.clone(), self_map, page).map_err(|e| err!("ld-cah.so", "{}", e))?;
    me.relocated = true;
    ns.objs.push(me);
    ns.loader = ns.objs.len() - 1;

    // Search configuration.
    let platform = stack
        .aux(AT_PLATFORM)
        // SAFETY: AT_PLATFORM points at a string on the stack.
        .map(|p| unsafe { cstr(p as *const u8) })
        .unwrap_or(Native::PLATFORM.as_bytes());
    let tokens = Tokens { platform, lib: Native::DST_LIB.as_bytes(), secure, trusted: Native::DEFAULT_DIRS };
    let lib_path_src = if secure { None } else { opts.library_path.or_else(|| getenv(b"LD_LIBRARY_PATH")) };
    // `$ORIGIN` in LD_LIBRARY_PATH means the program's directory.
    let main_origin = search::dirname(&main_path).to_vec();
    let library_path: Vec<Vec<u8>> = lib_path_src.map(|l| search::split_list(l, Some(&main_origin), true, &tokens)).unwrap_or_default();
    let cache_map = if opts.inhibit_cache { None } else { map_ld_cache() };
    let env_cfg = SearchEnv {
        library_path: &library_path,
        cache: cache_map.and_then(LdCache::parse),
        cache_flags: Native::LDCACHE_FLAGS,
        default_dirs: Native::DEFAULT_DIRS,
        tokens,
    };
    let glibc_base = Native::GLIBC_INTERP.rsplit('/').next().unwrap_or(Native::GLIBC_INTERP).as_bytes();
    let loader_names: [&[u8]; 4] = [glibc_base, Native::GLIBC_INTERP.as_bytes(), b"ld-cah.so", &interp_name];
    let bind_now = getenv(b"LD_BIND_NOW").is_some_and(|v| !v.is_empty());
    let cfg = Config { env: env_cfg, machine, page, loader_names: &loader_names };

    let preloads = closure::preload_list(getenv(b"LD_PRELOAD"), opts.preload, secure);

    // The closure lock and the verification policy (also used by dlopen).
    crate::verify::policy::setup(&ns, &env, secure)?;
    // LD_TRACE_LOADED_OBJECTS lists the libraries not found (glibc's
    // faked link maps); `--verify` does not look for them, as glibc's.
    let trace = trace_env.is_some() && !opts.list && !opts.verify;
    let mut missing = Vec::new();
    closure::load_all_tracing(&mut ns, &cfg, &preloads, (trace || opts.verify).then_some(&mut missing))?;
    crate::dlopen::remember(crate::dlopen::Saved {
        library_path: library_path.clone().leak(),
        cache: cache_map,
        platform,
        secure,
        page,
        loader_names: loader_names.iter().map(|n| n.to_vec()).collect(),
        bind_now,
        hwcap: (stack.aux(AT_HWCAP).unwrap_or(0) as u64, stack.aux(AT_HWCAP2).unwrap_or(0) as u64),
    });
    if let Err(e) = closure::check_versions(&ns) {
        // Listing, glibc reports a missing version and goes on (and says
        // nothing of the versions of a library it did not find).
        if trace || opts.list {
            if missing.is_empty() || !e.message.starts_with("version information needs") {
                diag::print(2, format_args!("ld-cah.so: warning: {e}\n"));
            }
        } else if !opts.verify {
            return Err(e);
        }
    }
    if debug.files {
        for &id in ns.scope.iter().skip(1) {
            let d = &ns.objs[id];
            diag::print(
                2,
                format_args!(
                    "ld-cah.so: files: {} => {} ({:#x})\n",
                    diag::show(d.aliases.first().map_or(b"", |a| a)),
                    d.display_name(),
                    d.base
                ),
            );
        }
    }

    if opts.list || trace {
        let listing = crate::trace::Listing {
            missing: &missing,
            program: trace_env.is_some_and(crate::trace::lists_program),
            loader_path: invoked_as,
            notes: opts.list,
        };
        crate::trace::print(&ns, &listing);
        sys::exit_group(0);
    }
    if opts.verify {
        sys::exit_group(0);
    }

    // Static TLS: module ids in load order, the program first.
    let mut next_modid = 1;
    let mut order: Vec<DsoId> = alloc::vec![ns.main];
    order.extend(ns.scope.iter().copied().filter(|&i| i != ns.main));
    for &id in &order {
        if let Some(m) = ns.objs[id].tls.as_mut() {
            m.modid = next_modid;
            next_modid += 1;
        }
    }
    // glibc programs: the layout of the libc in the closure decides the
    // size of `struct pthread` and everything libc reads from us.
    let glibc = match crate::glibc::rtld::find_libc(&ns) {
        None => None,
        Some(libc) => {
            let d = &ns.objs[libc];
            let facts = crate::glibc::fingerprint::Libc { img: &d.img, dyn_info: &d.dyn_info, versions: &d.versions, base: d.base };
            match crate::glibc::fingerprint::select(crate::glibc::layouts::ALL, Native::MACHINE, &facts) {
                Ok(l) => Some((libc, l)),
                Err(why) => match crate::glibc::installed::select(
                    &crate::glibc::rtld::build_id(&ns, libc).unwrap_or_default(),
                    Native::MACHINE,
                    &facts,
                    secure,
                    &stack.env(),
                ) {
                    Ok(l) => Some((libc, l)),
                    Err(refused) => return Err(unknown_glibc(&ns, libc, &facts, why, refused)),
                },
            }
        }
    };
    // Tunables (they decide the rseq registration below), and in secure
    // mode the environment the build's own ld.so would leave.
    match glibc {
        Some((_, l)) => {
            let t = crate::glibc::tunables::init(l, &stack.env(), secure);
            if secure {
                let values: Vec<&[u8]> = t.rewritten.iter().map(|v| &v[..]).collect();
                stack.shorten_env(b"GLIBC_TUNABLES", &values);
                stack.remove_env(&|n| t.erase.iter().chain(l.unsecure_env).any(|u| u.as_bytes() == n));
            }
        }
        None if secure => {
            stack.shorten_env(b"GLIBC_TUNABLES", &[b"" as &[u8]; 16]);
            stack.remove_env(&|n| UNSECURE_ENV.iter().any(|u| u.as_bytes() == n));
        }
        None => {}
    }
    let variant = Native::TLS_VARIANT;
    let pthread_size = glibc.map(|(_, l)| l.pthread.size as usize);
    let (tcb_size, pre_tcb) = match variant {
        crate::arch::TlsVariant::Two => (pthread_size.unwrap_or(TCB_SIZE_X86_64), 0),
        crate::arch::TlsVariant::One => (0, pthread_size.unwrap_or(PRE_TCB_SIZE_AARCH64)),
    };
    let layout = {
        let mut mods: Vec<&mut tls::Module> = Vec::new();
        // Collect in module-id order.
        let mut by_id: Vec<(usize, DsoId)> =
            ns.objs.iter().enumerate().filter_map(|(i, d)| d.tls.map(|m| (m.modid, i))).filter(|(m, _)| *m != 0).collect();
        by_id.sort();
        let ids: Vec<DsoId> = by_id.into_iter().map(|(_, i)| i).collect();
        // Split borrows: take each module out, lay out, put back.
        let mut taken: Vec<tls::Module> = ids.iter().filter_map(|&i| ns.objs[i].tls).collect();
        for m in taken.iter_mut() {
            mods.push(m);
        }
        let l = tls::layout(variant, &mut mods, tcb_size);
        for (k, &i) in ids.iter().enumerate() {
            ns.objs[i].tls = Some(taken[k]);
        }
        l
    };
    // glibc 2.41 keeps the rseq area in static TLS, not in struct pthread.
    let mut layout = layout;
    let rseq_tls = match glibc {
        Some((_, l)) if l.pthread.rseq_area.is_none() => Some(tls::reserve(variant, &mut layout, 32, 32, tcb_size)),
        _ => None,
    };
    let tb = tls::allocate(variant, &layout, tcb_size, pre_tcb, next_modid)
        .map_err(|e| err!(&prog_name, "cannot allocate TLS: {}", e.describe()))?;
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
        native::init_tcb(tb.tp, tb.dtv, guard, pguard);
        sys::set_thread_pointer(tb.tp).map_err(|e| err!(&prog_name, "cannot set the thread pointer: {}", e.describe()))?;
    }
    crate::glibc::set_stack_guard(guard, pguard);

    // Link maps (and, for glibc programs, everything libc reads from its
    // loader) must exist before relocation: libc's IFUNC resolvers read them.
    let chain = ns.link_order();
    crate::debug::link_maps(&mut ns, &chain);
    if let Some((_, l)) = glibc {
        let process = crate::glibc::rtld::Process {
            sp: stack.sp as usize,
            argv: stack.argv as usize,
            auxv: stack.auxv as usize,
            secure,
            page,
            platform: stack.aux(AT_PLATFORM).unwrap_or(0),
            hwcap: stack.aux(AT_HWCAP).unwrap_or(0) as u64,
            hwcap2: stack.aux(AT_HWCAP2).unwrap_or(0) as u64,
            clktck: stack.aux(AT_CLKTCK).unwrap_or(100),
            minsigstksz: stack.aux(AT_MINSIGSTKSZ).filter(|&v| v != 0).unwrap_or(4096),
            sysinfo_ehdr: stack.aux(AT_SYSINFO_EHDR).unwrap_or(0),
            rseq_feature_size: stack.aux(AT_RSEQ_FEATURE_SIZE).unwrap_or(0),
        };
        crate::glibc::rtld::fill_link_maps(l, &ns, &chain, false);
        crate::glibc::rtld::fill_globals(l, &ns, &chain, &process, &layout, &tb, next_modid, rseq_tls)
            .map_err(|e| err!(&prog_name, "{}", e))?;
    }

    // libc's run-time entry points are usable from here on: its IFUNC
    // resolvers, which run during relocation as under glibc, read the CPU
    // description (`_dl_x86_get_cpu_features`) and look up vDSO symbols
    // through GLRO(dl_lookup_symbol_x) (time, gettimeofday).
    crate::dlopen::set_tls(variant, layout, next_modid, glibc.map(|(_, l)| l));
    let early_init = match glibc {
        Some((libc, l)) => crate::glibc::api::finish(l, &ns, libc, layout, variant),
        None => 0,
    };
    let hwcap = stack.aux(AT_HWCAP).unwrap_or(0) as u64;
    let hwcap2 = stack.aux(AT_HWCAP2).unwrap_or(0) as u64;

    // Relocate in glibc's order (`dl_main`): deepest dependency first, the
    // program last, so its copy relocations copy relocated data (IFUNC
    // slots included); glibc 2.39 and later relocate libc before anything.
    let target = Target::of::<Native>(native::tlsdesc_static(), native::tlsdesc_dynamic());
    let libc_first = glibc.filter(|(_, l)| crate::reloc::relocates_libc_first(l.glibc_version)).map(|(libc, _)| libc);
    let initfini = crate::init::initfini_order(&ns);
    let order_reloc = crate::reloc::startup_order(&initfini, libc_first);
    let scope = ns.scope.clone();
    let progname = stack.arg(0).map_or("<program name unknown>", diag::show);
    // SAFETY: the engine calls this only with the resolver of an IFUNC of
    // a mapped object, when glibc's loader would call it.
    let resolve = |r: usize| unsafe { native::call_ifunc(r, hwcap, hwcap2) };
    crate::glibc::api::set_startup_namespace(Some(&ns));
    let relocated = (|| -> Result<(), Error> {
        let mut engine = Engine::new(&ns, &scope, target, &resolve);
        engine.bind_now = bind_now;
        engine.progname = progname;
        for &id in &order_reloc {
            if matches!(ns.objs[id].kind, Kind::Loader | Kind::Vdso) {
                continue;
            }
            engine.relocate(id)?;
        }
        if debug.statistics {
            diag::print(
                2,
                format_args!(
                    "ld-cah.so: statistics: {} relative, {} symbolic relocations, {} lookups\n",
                    engine.stats.relative, engine.stats.symbolic, engine.stats.lookups
                ),
            );
        }
        Ok(())
    })();
    crate::glibc::api::set_startup_namespace(None);
    relocated?;
    // The TLS images have their final values now (`_dl_allocate_tls_init`).
    tls::VARIANT_TWO.store(variant == crate::arch::TlsVariant::Two, core::sync::atomic::Ordering::Relaxed);
    for &id in &order {
        if let Some(m) = ns.objs[id].tls {
            // SAFETY: the layout placed `m` inside the block; its image is mapped.
            unsafe { tls::init_module(variant, &tb, &m) };
            tls::MODULES.write().push(m);
        }
    }
    for d in ns.objs.iter_mut() {
        d.relocated = true;
        d.open_count = 1;
        d.nodelete = true;
    }

    // Debugger interface, before RELRO seals the program's DT_DEBUG.
    crate::debug::publish(&ns, base, crate::debug::RT_CONSISTENT);

    for d in ns.objs.iter_mut() {
        if d.kind == Kind::Loader || d.kind == Kind::Vdso {
            continue;
        }
        crate::map::protect_relro(d)?;
    }

    // Initialisers, then the program.
    let calls = crate::init::init_calls(&mut ns, &initfini);
    let entry = ns.objs[ns.main].entry;
    *STATE.lock() = Some(ns);
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
