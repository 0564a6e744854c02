//! How ld-cah was started, and the program it is to run: as `PT_INTERP`
//! (the kernel mapped the program and describes it in the auxiliary
//! vector) or directly (`ld-cah.so [OPTIONS] PROGRAM [ARGS...]`: map the
//! program, drop our own arguments and rewrite the auxiliary vector so the
//! program sees the stack the kernel would have given it).
#![allow(unsafe_code)]

use alloc::vec::Vec;

use object::elf::*;

use super::stack::*;
use crate::arch::native::{self, Native};
use crate::arch::ArchInfo;
use crate::diag::{self, Error};
use crate::err;
use crate::map::{self, Mapped};
use crate::sys;

/// Options of the direct invocation.
#[derive(Default)]
pub struct Options {
    pub list: bool,
    pub verify: bool,
    pub library_path: Option<&'static [u8]>,
    pub preload: Option<&'static [u8]>,
    pub argv0: Option<*const u8>,
    pub inhibit_cache: bool,
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
CAH_DEBUG=files,symbols,bindings,statistics,verify, CAH_PLAN=0 (no binding plan),
CAH_STRICT=1 (refuse unlocked libraries), CAH_STORE, CAH_CACHE_DIR.
";

/// The program to run.
pub struct Program {
    /// Its path: the argument (direct mode) or `AT_EXECFN`.
    pub path: Vec<u8>,
    /// Its `PT_INTERP` (glibc's loader path if it has none): the names
    /// ld-cah answers to.
    pub interp: Vec<u8>,
    /// Started as `ld-cah.so PROGRAM` rather than as `PT_INTERP`.
    pub direct: bool,
    /// The path ld-cah was started by (direct mode): the loader's `l_name`
    /// in glibc's trace output.
    pub invoked_as: Option<&'static [u8]>,
    pub opts: Options,
}

/// Reads how we were started and maps the program if the kernel did not;
/// returns it with its mapping.
/// Exits for `--help`, `--version`, and (listing, verifying or running
/// it) a static program, which needs no loader.
///
/// # Safety
/// `stack` is the process entry stack and nothing holds pointers into its
/// argument, environment or auxiliary vectors; `base` is ld-cah's own
/// load address.
pub unsafe fn read(stack: &mut Stack, base: usize, page: usize, direct: bool, tracing: bool) -> Result<(Program, Mapped), Error> {
    if !direct {
        // SAFETY: forwarded to the caller.
        return unsafe { kernel_mapped(stack) };
    }
    let mut opts = Options::default();
    let invoked_as = stack.arg(0);
    if let Some((prog, lib)) = bundle_program(stack) {
        // Bundle mode: run `.NAME.real` with argv and AT_EXECFN as they
        // are, libraries from the bundle's `lib`.
        opts.library_path = Some(lib);
        // SAFETY: forwarded to the caller; `prog` is leaked.
        return unsafe { run_mapped(stack, base, page, prog, 0, opts, invoked_as, tracing) };
    }
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
                super::libc::print_glibc_builds();
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
    // SAFETY: forwarded to the caller; `prog` is argv[i].
    unsafe { run_mapped(stack, base, page, prog, i, opts, invoked_as, tracing) }
}

/// Maps `prog` and makes the stack the one the kernel would have given it:
/// argv from index `i` on (`i` 0 in bundle mode, which keeps argv and
/// `AT_EXECFN`).
///
/// # Safety
/// As [`read`]; `prog` is argv[i] or lives for the whole process.
#[allow(clippy::too_many_arguments)]
unsafe fn run_mapped(
    stack: &mut Stack,
    base: usize,
    page: usize,
    prog: &'static [u8],
    i: usize,
    opts: Options,
    invoked_as: Option<&'static [u8]>,
    tracing: bool,
) -> Result<(Program, Mapped), Error> {
    let mut cpath = prog.to_vec();
    cpath.push(0);
    // O_NONBLOCK: a FIFO must not block us in open(); `map_file`
    // refuses anything but a regular file.
    let fd = sys::open(&cpath, sys::O_RDONLY | sys::O_NONBLOCK, 0).map_err(|e| err!(diag::show(prog), "cannot open: {}", e.describe()));
    let m = fd.and_then(|fd| map::map_file(&fd, Native::MACHINE, page).map_err(|e| err!(diag::show(prog), "{}", e)));
    // `--verify` (ldd's test): glibc's ld.so exits 1, silently, for a
    // file it cannot load.
    let m = match m {
        Err(_) if opts.verify => sys::exit_group(1),
        m => m?,
    };
    if i > 0 {
        // SAFETY: `prog` points into argv strings, which stay put.
        let prog_ptr = unsafe { *stack.argv.add(i) };
        // SAFETY: nothing holds pointers into the vectors we move (caller).
        *stack = unsafe { stack.drop_args(i) };
        stack.set_aux(AT_EXECFN, prog_ptr as usize);
    }
    stack.set_aux(AT_PHDR, m.phdr_addr);
    stack.set_aux(AT_PHNUM, m.phdrs.len());
    stack.set_aux(AT_ENTRY, m.entry);
    stack.set_aux(AT_BASE, base);
    if let Some(a0) = opts.argv0 {
        // SAFETY: argv[0] exists (argc >= 1 after dropping our args).
        unsafe { *stack.argv = a0 };
    }
    // Static and static-pie programs: no PT_INTERP, nothing to link.
    if !m.phdrs.iter().any(|p| p.p_type == PT_INTERP) {
        if opts.verify {
            // glibc's `--verify`: 2 for a dynamic object without
            // PT_INTERP (static-pie), 1 for no PT_DYNAMIC at all.
            sys::exit_group(if m.phdrs.iter().any(|p| p.p_type == PT_DYNAMIC) { 2 } else { 1 });
        }
        if opts.list || tracing {
            diag::print(1, format_args!("\tstatically linked\n"));
            sys::exit_group(0);
        }
        // SAFETY: a static program starts like any other, on its stack.
        unsafe { native::jump_to_entry(m.entry, stack.sp as usize, 0) };
    }
    let interp = interp_of(&m);
    Ok((Program { path: prog.to_vec(), interp, direct: true, invoked_as, opts }, m))
}

/// Bundle mode (docs/bundles.md): ld-cah started under another name
/// `DIR/bin/NAME` (its own path from `/proc/self/exe`, or `AT_EXECFN`
/// where `/proc` is not mounted) runs the program beside it,
/// `DIR/bin/.NAME.real`, if there is one, with `DIR/lib` as its library
/// path. Returns the program's path and the library path, both with the
/// process's lifetime. Started as `ld-cah.so` (or as any `ld-*`), never.
/// Out of line: its 4 KiB path buffer would otherwise sit in `start::run`'s
/// frame, under every stage of every start-up.
#[inline(never)]
fn bundle_program(stack: &Stack) -> Option<(&'static [u8], &'static [u8])> {
    let mut buf = [0u8; 4096];
    let exe: &[u8] = match sys::readlink(b"/proc/self/exe\0", &mut buf) {
        Ok(p) if p.len() < 4096 && p.starts_with(b"/") => p,
        // SAFETY: AT_EXECFN points at the path string on the stack.
        _ => unsafe { cstr(stack.aux(AT_EXECFN)? as *const u8) },
    };
    let (dir, name) = match exe.iter().rposition(|&c| c == b'/') {
        Some(k) => (&exe[..k], &exe[k + 1..]),
        None => (&b"."[..], exe),
    };
    if name.is_empty() || name.starts_with(b"ld-") || name.starts_with(b".") {
        return None;
    }
    let mut real = Vec::with_capacity(dir.len() + name.len() + 9);
    real.extend_from_slice(if dir.is_empty() { b"" } else { dir });
    real.extend_from_slice(b"/.");
    real.extend_from_slice(name);
    real.extend_from_slice(b".real\0");
    sys::access(&real, sys::R_OK).ok()?;
    real.pop();
    // `DIR/bin` -> `DIR/lib`; a program not in a `bin` directory takes
    // `lib` beside it.
    let prefix = match dir.strip_suffix(b"/bin") {
        Some(p) => p,
        None if dir == b"bin" => b".",
        None => dir,
    };
    let mut lib = Vec::with_capacity(prefix.len() + 4);
    lib.extend_from_slice(if prefix.is_empty() { b"" } else { prefix });
    lib.extend_from_slice(b"/lib");
    Some((real.leak(), lib.leak()))
}

/// The program the kernel mapped, as the auxiliary vector describes it.
///
/// # Safety
/// As [`read`].
unsafe fn kernel_mapped(stack: &Stack) -> Result<(Program, Mapped), Error> {
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
    let path = stack
        .aux(AT_EXECFN)
        // SAFETY: AT_EXECFN points at the path string on the stack.
        .map(|p| unsafe { cstr(p as *const u8) }.to_vec())
        .or_else(|| stack.arg(0).map(<[u8]>::to_vec))
        .unwrap_or_default();
    let interp = interp_of(&m);
    Ok((Program { path, interp, direct: false, invoked_as: None, opts: Options::default() }, m))
}

/// The program's `PT_INTERP`, or glibc's loader path.
fn interp_of(m: &Mapped) -> Vec<u8> {
    m.phdrs
        .iter()
        .find(|p| p.p_type == PT_INTERP)
        .and_then(|p| m.img.cstr(m.base + p.p_vaddr as usize, m.base + (p.p_vaddr + p.p_filesz) as usize))
        .map_or_else(|| Native::GLIBC_INTERP.as_bytes().to_vec(), <[u8]>::to_vec)
}
