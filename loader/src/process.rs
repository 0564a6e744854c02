//! The one owner of the loader's process state: the namespace (every
//! loaded object) and the search configuration start-up settled, behind
//! the loader lock.
//!
//! Start-up builds both on its own stack and [`install`]s them before the
//! program's initialisers run; from then on `dlopen`, `dlclose`, `dlinfo`,
//! libc's symbol lookups and the finalisers reach them through [`lock`].
//! Lazy binding does not take the lock: releasing it publishes what lazy
//! binding reads (see `crate::lazy`).
//!
//! While the loader links (start-up, or a `dlopen` holding the lock), the
//! foreign code it runs may call back into it; taking the lock then would
//! deadlock, so [`with_view`] gives the linking thread (and only it) the
//! namespace being linked (`link::linking`).

use alloc::vec::Vec;

use crate::arch::native::Native;
use crate::arch::ArchInfo;
use crate::link::closure::Config;
use crate::link::ldcache::LdCache;
use crate::link::linking;
use crate::link::search::{self, SearchEnv, Tokens};
use crate::link::{Kind, Namespace};

/// How start-up searched for libraries, kept for later loads.
pub struct Search {
    /// `LD_LIBRARY_PATH` (or `--library-path`), split and expanded.
    pub library_path: Vec<Vec<u8>>,
    /// `/etc/ld.so.cache`, mapped for the life of the process.
    pub cache: Option<&'static [u8]>,
    pub platform: &'static [u8],
    /// Secure mode (set-uid programs).
    pub secure: bool,
    pub page: usize,
    /// Names that mean "the dynamic loader" (ld-cah answers to them).
    pub loader_names: Vec<Vec<u8>>,
    /// `LD_BIND_NOW`.
    pub bind_now: bool,
    /// `AT_HWCAP`/`AT_HWCAP2`, for IFUNC resolvers (aarch64 passes them).
    pub hwcap: (u64, u64),
}

impl Search {
    pub fn tokens(&self) -> Tokens<'_> {
        Tokens { platform: self.platform, lib: Native::DST_LIB.as_bytes(), secure: self.secure, trusted: Native::DEFAULT_DIRS }
    }

    /// The closure loader's configuration.
    pub fn config(&self) -> Config<'_> {
        Config {
            env: SearchEnv {
                library_path: &self.library_path,
                cache: self.cache.and_then(LdCache::parse),
                cache_flags: Native::LDCACHE_FLAGS,
                default_dirs: Native::DEFAULT_DIRS,
                tokens: self.tokens(),
            },
            machine: Native::MACHINE,
            page: self.page,
            loader_names: &self.loader_names,
            store: Default::default(),
        }
    }
}

/// Everything the loader knows about the running process.
pub struct Process {
    pub ns: Namespace,
    pub search: Search,
}

impl Process {
    /// The directories `dlinfo(RTLD_DI_SERINFO)` reports for the object
    /// whose link map is `lm`: its `DT_RPATH` chain (unless it has
    /// `DT_RUNPATH`), `LD_LIBRARY_PATH`, its `DT_RUNPATH`, then the default
    /// directories (unless `DF_1_NODEFLIB`). Like glibc, a run-path list
    /// none of whose directories exists is left out whole (glibc drops
    /// such a list after its first search); library-path entries are
    /// listed as given.
    pub fn search_dirs(&self, lm: usize) -> Vec<Vec<u8>> {
        let ns = &self.ns;
        let id = ns.by_link_map(lm).unwrap_or(ns.main);
        let tokens = self.search.tokens();
        let exists = |dir: &[u8]| {
            let mut p = dir.to_vec();
            p.push(0);
            crate::sys::open(&p, crate::sys::O_RDONLY | crate::sys::O_DIRECTORY, 0).is_ok()
        };
        let mut out: Vec<Vec<u8>> = Vec::new();
        let requester = &ns.objs[id];
        let runpath = requester.dyn_info.runpath.and_then(|o| requester.string(o)).map(<[u8]>::to_vec);
        if runpath.is_none() {
            for o in ns.chain(id) {
                let d = &ns.objs[o];
                if d.dyn_info.runpath.is_some() {
                    continue;
                }
                if let Some(r) = d.dyn_info.rpath.and_then(|off| d.string(off)) {
                    let dirs: Vec<Vec<u8>> = search::split_list(r, d.origin.as_deref(), d.kind == Kind::Main, &tokens).collect();
                    if dirs.iter().any(|x| exists(x)) {
                        out.extend(dirs);
                    }
                }
            }
        }
        out.extend(self.search.library_path.iter().cloned());
        if let Some(r) = runpath {
            let dirs: Vec<Vec<u8>> = search::split_list(&r, requester.origin.as_deref(), requester.kind == Kind::Main, &tokens).collect();
            if dirs.iter().any(|x| exists(x)) {
                out.extend(dirs);
            }
        }
        if requester.flags_1() & u64::from(object::elf::DF_1_NODEFLIB) == 0 {
            out.extend(Native::DEFAULT_DIRS.iter().map(|d| d.as_bytes().to_vec()));
        }
        out
    }
}

static PROCESS: spin::Mutex<Option<Process>> = spin::Mutex::new(None);

/// Hands the process state to the loader lock once start-up has linked it.
pub fn install(p: Process) {
    *lock() = Some(p);
}

/// The loader lock; `None` inside it until start-up has installed the state.
pub fn lock() -> Guard {
    Guard { held: PROCESS.lock(), changed: true }
}

/// The loader lock, held. Releasing it publishes what lazy binding reads
/// of the namespace, if that changed (`lazy::publish`): lazy binding
/// takes no lock, so that a signal handler that interrupted its own
/// thread inside this one can still bind a PLT slot.
pub struct Guard {
    held: spin::MutexGuard<'static, Option<Process>>,
    /// Whether the namespace may have changed under this lock: always,
    /// except for a [`with_view`] whose query only read it (a `dlsym`
    /// then skips `lazy::publish`'s comparison of every object).
    changed: bool,
}

impl core::ops::Deref for Guard {
    type Target = Option<Process>;
    fn deref(&self) -> &Option<Process> {
        &self.held
    }
}

impl core::ops::DerefMut for Guard {
    fn deref_mut(&mut self) -> &mut Option<Process> {
        &mut self.held
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(p) = self.held.as_ref().filter(|_| self.changed) {
            crate::lazy::publish(&p.ns);
        }
    }
}

/// How a run-time query sees the namespace.
pub enum View<'a> {
    /// This thread is linking it (inside [`publishing`]): read only.
    Linking(&'a Namespace),
    /// Under the loader lock: readable, and writable through
    /// [`View::ns_mut`], which notes the change for the lock's release.
    Settled(&'a mut Namespace, &'a mut bool),
}

impl View<'_> {
    pub fn ns(&self) -> &Namespace {
        match self {
            View::Linking(ns) => ns,
            View::Settled(ns, _) => ns,
        }
    }

    /// The namespace for writing, when the query may write it.
    pub fn ns_mut(&mut self) -> Option<&mut Namespace> {
        match self {
            View::Linking(_) => None,
            View::Settled(ns, changed) => {
                **changed = true;
                Some(ns)
            }
        }
    }
}

/// Runs `f` on the namespace: the one this thread is linking, if any
/// (`link::linking`), else the installed one under the lock. `None`
/// before start-up has published anything.
pub fn with_view<R>(f: impl FnOnce(View<'_>) -> R) -> Option<R> {
    let mut f = Some(f);
    if let Some(r) = linking::with_linking(|ns| f.take().map(|f| f(View::Linking(ns)))) {
        return r;
    }
    let f = f?;
    let mut guard = lock();
    let mut changed = false;
    let r = guard.held.as_mut().map(|p| f(View::Settled(&mut p.ns, &mut changed)));
    guard.changed = changed;
    r
}
