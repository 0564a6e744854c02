//! The link stages start-up and `dlopen` share, for objects already
//! mapped and in the namespace: link maps, relocation with IFUNC
//! resolvers, and sealing (RELRO). Each caller decides the order and the
//! scope; the stages themselves are the same code for both.
#![allow(unsafe_code)]

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::arch::native::{self, Native};
use crate::diag::Error;
use crate::err;
use crate::link::{DsoId, Kind, Namespace};
use crate::reloc::plan::{Plan, Recorder};
use crate::reloc::{Engine, Stats, Target};

/// Gives every object a `struct link_map` (appended to the chain), and
/// for a glibc program fills `new`'s as glibc's loader would. Runs before
/// relocation: libc's IFUNC resolvers read link maps.
pub fn link_maps(ns: &mut Namespace, new: &[DsoId], at_startup: bool) {
    let bytes = crate::glibc::runtime::link_map_bytes();
    // A dlopen links its objects at the end, as glibc does; start-up (or a
    // chain whose end is unknown) links every object in `link_order`.
    if at_startup || !crate::debug::append(ns, new, bytes) {
        let chain = ns.link_order();
        crate::debug::link_maps(ns, &chain, bytes);
    }
    if let Some(l) = crate::glibc::runtime::layout() {
        crate::glibc::rtld::fill_link_maps(l, ns, new, !at_startup);
        if !at_startup {
            crate::glibc::rtld::count_added(l, new.len());
        }
    }
}

/// How one round of relocation binds.
pub struct Binding<'a> {
    /// The scope symbols are looked up in.
    pub scope: &'a [DsoId],
    /// Every PLT slot is bound now (`LD_BIND_NOW`, `RTLD_NOW`), not at its
    /// first call, so a missing function is an error now.
    pub bind_now: bool,
    /// `argv[0]`, which glibc's warnings start with.
    pub progname: &'a str,
    /// `AT_HWCAP`/`AT_HWCAP2`, passed to IFUNC resolvers.
    pub hwcap: (u64, u64),
    /// A binding plan to obey (start-up only).
    pub plan: Option<&'a Plan>,
    /// Record the resolutions for a new plan (start-up only).
    pub record: bool,
}

/// What a round of relocation did.
pub struct Relocated {
    pub stats: Stats,
    /// The resolutions, when asked to record them.
    pub recorded: Option<Recorder>,
    /// Memory the relocated objects' GOTs point at (see [`Relocated::keep`]).
    tls_indices: Vec<(DsoId, Box<[usize]>)>,
}

impl Relocated {
    /// Gives each object the memory its GOT points at (dynamic TLS
    /// descriptors' `tls_index`es), freed with the object's slot.
    pub fn keep(&mut self, ns: &mut Namespace) {
        for (id, b) in self.tls_indices.drain(..) {
            if let Some(d) = ns.objs.get_mut(id) {
                d.link_map_mem.push(b);
            }
        }
    }
}

/// Relocates `order`, in that order (the loader and the vDSO are skipped:
/// they are relocated already). IFUNC resolvers run as each object is
/// relocated, as under glibc; they may call back into the loader, which
/// then reads `ns` (see `link::linking`).
pub fn relocate(ns: &Namespace, order: &[DsoId], b: &Binding<'_>) -> Result<Relocated, Error> {
    let mut target =
        Target::of::<Native>(native::tlsdesc_static(), native::tlsdesc_dynamic(crate::tls::tlsdesc_dynamic_slow as *const () as usize));
    // Lazy binding (see `crate::lazy`): PLT slots go through the resolver.
    target.plt_resolver = native::plt_resolver(crate::lazy::plt_fixup);
    crate::lazy::set_hwcap(b.hwcap);
    let (hwcap, hwcap2) = b.hwcap;
    // SAFETY: the engine calls this only with the resolver of an IFUNC of
    // a mapped object, when glibc's loader would call it.
    let resolve = |r: usize| unsafe { native::call_ifunc(r, hwcap, hwcap2) };
    crate::link::linking::publishing(ns, || {
        let mut engine = Engine::new(ns, b.scope, target, &resolve);
        engine.bind_now = b.bind_now;
        engine.progname = b.progname;
        engine.plan = b.plan;
        engine.recorder = b.record.then(|| Recorder::new(ns.objs.len()));
        for &id in order {
            if !matches!(ns.objs[id].kind, Kind::Loader | Kind::Vdso) {
                engine.relocate(id)?;
            }
        }
        Ok(Relocated { stats: engine.stats, recorded: engine.recorder.take(), tls_indices: core::mem::take(&mut engine.tls_indices) })
    })
}

/// Marks `ids` relocated and makes their RELRO read-only.
pub fn seal(ns: &mut Namespace, ids: &[DsoId]) -> Result<(), Error> {
    for &id in ids {
        let d = &mut ns.objs[id];
        d.relocated = true;
        if matches!(d.kind, Kind::Loader | Kind::Vdso) {
            continue;
        }
        if let Some(range) = d.relro {
            crate::map::protect_relro(range, &mut d.img)
                .map_err(|e| err!(d.display_name(), "cannot apply RELRO protection: {}", e.describe()))?;
        }
    }
    Ok(())
}
