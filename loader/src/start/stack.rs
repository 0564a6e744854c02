//! The process's initial stack as the kernel laid it out (argc, argv,
//! envp, the auxiliary vector), and the few edits start-up makes to it:
//! dropping the loader's own arguments in direct mode, rewriting auxv
//! entries, and removing or shortening variables in secure mode. All raw
//! pointer work on the stack lives here.
#![allow(unsafe_code)]

use alloc::vec::Vec;

pub const AT_NULL: usize = 0;
pub const AT_PHDR: usize = 3;
pub const AT_PHNUM: usize = 5;
pub const AT_PAGESZ: usize = 6;
pub const AT_BASE: usize = 7;
pub const AT_ENTRY: usize = 9;
pub const AT_EUID: usize = 12;
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

    pub fn set_aux(&self, key: usize, value: usize) {
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
    pub fn remove_env(&self, drop: &dyn Fn(&[u8]) -> bool) {
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
    /// strings live on our stack). Secure mode only ever shortens them; a
    /// longer value is not written, and the variable is emptied instead.
    pub fn shorten_env(&self, name: &[u8], values: &[&[u8]]) {
        let mut e = self.envp;
        let mut k = 0;
        // SAFETY: as in `remove_env`; each write stays inside the old string.
        unsafe {
            while !(*e).is_null() && k < values.len() {
                let entry = cstr(*e);
                if entry.len() > name.len() && entry.starts_with(name) && entry[name.len()] == b'=' {
                    let old = entry.len() - name.len() - 1;
                    // Fail closed: never leave the unfiltered value.
                    let v = Some(values[k]).filter(|v| v.len() <= old).unwrap_or_default();
                    let p = (*e as *mut u8).add(name.len() + 1);
                    core::ptr::copy_nonoverlapping(v.as_ptr(), p, v.len());
                    *p.add(v.len()) = 0;
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
    pub unsafe fn drop_args(&self, k: usize) -> Stack {
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

/// # Safety
/// `p` points at a NUL-terminated string that lives forever.
pub unsafe fn cstr(p: *const u8) -> &'static [u8] {
    // SAFETY: forwarded to the caller.
    unsafe { crate::cstr::bytes(p) }
}
