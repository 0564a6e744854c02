//! Lazy binding: the first call through a PLT slot binds it.
//!
//! At load time (`reloc`) a lazily bound `JUMP_SLOT` is left pointing back
//! into its PLT entry and the object's `GOT[1]`/`GOT[2]` hold its id and
//! the PLT resolver (`arch`, `plt_resolver`). The first call reaches the
//! resolver, which saves the argument registers and calls [`plt_fixup`]:
//! that finds the object and its relocation, looks the symbol up exactly
//! as the engine would have at load time (the object's scope, symbol
//! versions, `DT_SYMBOLIC`, PLT-class lookup), calls the IFUNC resolver if
//! the definition is one, writes the slot and returns the address the
//! resolver then jumps to. An undefined function is glibc's
//! `symbol lookup error` and exit status 127, at that moment.
//!
//! Concurrency: the lookup runs under the loader lock (`process`), so
//! first calls from several threads are serialised against each other and
//! against `dlopen`/`dlclose`; two threads binding one slot write the same
//! value. The lock is released before an IFUNC resolver runs (it may call
//! lazily bound functions in turn). The thread that is linking (start-up,
//! or a `dlopen` running IFUNC resolvers) reads the namespace it is
//! linking without the lock (`process::with_view`). What can still
//! deadlock: a first call through a PLT slot from a signal handler that
//! interrupted its own thread inside the loader lock (a `dlopen`,
//! `dlsym`, `dl_iterate_phdr` under way), since the lock is not
//! re-entrant; glibc avoids that case by reading scopes without a lock.
//! Programs that need it bind everything at start (`LD_BIND_NOW=1`, `-z
//! now`).
#![allow(unsafe_code)]

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use object::elf::*;

use crate::arch::native::{self, Native};
use crate::arch::ArchInfo;
use crate::diag::Error;
use crate::err;
use crate::link::{DsoId, Namespace};
use crate::reloc::{Engine, Target};

/// `AT_HWCAP`/`AT_HWCAP2`, which aarch64 IFUNC resolvers are passed.
static HWCAP: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

/// Remembers the hardware capabilities for IFUNC resolvers run by a
/// lazy binding.
pub fn set_hwcap(hwcap: (u64, u64)) {
    HWCAP[0].store(hwcap.0, Ordering::Relaxed);
    HWCAP[1].store(hwcap.1, Ordering::Relaxed);
}

/// What a PLT slot binds to.
enum Binding {
    Address(usize),
    /// An IFUNC: its resolver's address, and the addend.
    Ifunc(usize, u64),
}

/// Called by the PLT resolver with `GOT[1]` (the object's id) and `which`:
/// the relocation's index in `DT_JMPREL` (x86_64) or the slot's address
/// (aarch64). Returns the function's address.
pub extern "C" fn plt_fixup(id: usize, which: usize) -> usize {
    match bind(id, which) {
        Ok(v) => v,
        Err(e) => {
            let at_call =
                Error { object: "symbol lookup error".into(), message: alloc::format!("{}: {}", e.object, e.message), kind: e.kind };
            crate::diag::fatal(&at_call)
        }
    }
}

fn bind(id: DsoId, which: usize) -> Result<usize, Error> {
    let not_yet = || err!("ld-cah.so", "lazy binding before start-up finished");
    // The slot was read from the object's own relocation table; the image
    // refuses it unless it lies in the object's writable memory.
    let write = |ns: &Namespace, place: usize, value: usize| {
        if ns.objs.get(id).is_some_and(|d| d.img.write_u64(place, value as u64)) {
            Ok(value)
        } else {
            Err(err!("ld-cah.so", "lazy binding: PLT slot {:#x} is not writable", place))
        }
    };
    // A plain function is written under the same lock as its lookup.
    let found = crate::process::with_view(|v| {
        let ns = v.ns();
        match look_up(ns, id, which)? {
            (place, Binding::Address(value)) => write(ns, place, value).map(|_| Ok(value)),
            (place, Binding::Ifunc(resolver, add)) => Ok(Err((place, resolver, add))),
        }
    });
    let (place, resolver, add) = match found.ok_or_else(not_yet)?? {
        Ok(value) => return Ok(value),
        Err(ifunc) => ifunc,
    };
    // An IFUNC's resolver runs without the lock: it may call lazily bound
    // functions itself.
    // SAFETY: the resolver of an STT_GNU_IFUNC function of a relocated
    // object, checked to lie in that object's code (`look_up`).
    let value = unsafe { native::call_ifunc(resolver, HWCAP[0].load(Ordering::Relaxed), HWCAP[1].load(Ordering::Relaxed)) };
    let value = value.wrapping_add(add as usize);
    crate::process::with_view(|v| write(v.ns(), place, value)).ok_or_else(not_yet)?
}

/// The slot and what it binds to, looked up in `ns`.
fn look_up(ns: &Namespace, id: DsoId, which: usize) -> Result<(usize, Binding), Error> {
    let Some(d) = ns.objs.get(id) else {
        return Err(err!("ld-cah.so", "lazy binding for an object that does not exist (GOT[1] = {:#x})", id));
    };
    let index = if Native::PLT_PASSES_SLOT { index_of_slot(ns, id, which)? } else { which };
    // The scope the object was relocated in: the global scope (as it is
    // now, as glibc's `l_scope[0]` is), then the object's `dlopen`
    // closure (copied only then: this runs once per bound slot).
    let extended: Vec<DsoId>;
    let scope: &[DsoId] = if d.local_scope.is_empty() {
        &ns.scope
    } else {
        extended = ns.scope.iter().copied().chain(d.local_scope.iter().copied().filter(|x| !ns.scope.contains(x))).collect();
        &extended
    };
    let target =
        Target::of::<Native>(native::tlsdesc_static(), native::tlsdesc_dynamic(crate::tls::tlsdesc_dynamic_slow as *const () as usize));
    let no_ifunc = |_: usize| 0;
    let mut engine = Engine::for_lookups(ns, scope, target, &no_ifunc);
    let (place, def, add) = engine.resolve_plt(id, index)?;
    let Some(def) = def else {
        // An undefined weak function: glibc binds it to 0 as well.
        return Ok((place, Binding::Address(add as usize)));
    };
    let address = def.address(ns);
    if def.sym.kind() == STT_GNU_IFUNC && def.sym.st_shndx != SHN_UNDEF {
        crate::init::check_code(&ns.objs[def.obj], address, "STT_GNU_IFUNC resolver")?;
        return Ok((place, Binding::Ifunc(address, add)));
    }
    Ok((place, Binding::Address(address.wrapping_add(add as usize))))
}

/// aarch64: the `DT_JMPREL` index of the relocation whose slot is at
/// `slot`. The linker lays `.got.plt` out in `DT_JMPREL` order after the
/// three reserved words, so the guess is checked, and the table searched
/// if it is wrong.
fn index_of_slot(ns: &Namespace, id: DsoId, slot: usize) -> Result<usize, Error> {
    let d = &ns.objs[id];
    let di = &d.dyn_info;
    let n = di.pltrelsz / 24;
    let slot_of = |i: usize| d.img.u64(di.jmprel + i * 24).map(|off| d.base.wrapping_add(off as usize));
    let guess = slot.wrapping_sub(di.pltgot.wrapping_add(24)) / 8;
    if guess < n && slot_of(guess) == Some(slot) {
        return Ok(guess);
    }
    (0..n).find(|&i| slot_of(i) == Some(slot)).ok_or_else(|| err!(d.display_name(), "lazy binding: no PLT relocation for slot {:#x}", slot))
}
