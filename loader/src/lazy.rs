//! Lazy binding: the first call through a PLT slot binds it.
//!
//! At load time (`reloc`) a lazily bound `JUMP_SLOT` is left pointing back
//! into its PLT entry and the object's `GOT[1]`/`GOT[2]` hold its id and
//! the PLT resolver (`arch`, `plt_resolver`). The first call reaches the
//! resolver, which saves the argument registers and calls [`plt_fixup`]:
//! that finds the object and its relocation, looks the symbol up by the
//! rules the engine binds by at load time (the object's scope, symbol
//! versions, `DT_SYMBOLIC`, PLT-class lookup), calls the IFUNC resolver if
//! the definition is one, writes the slot (unless `LD_BIND_NOT`) and
//! returns the address the resolver then jumps to. An undefined function
//! is glibc's `symbol lookup error` and exit status 127, at that moment.
//!
//! Concurrency: the fixup takes no lock, so that a first call from a
//! signal handler that interrupted its own thread inside the loader lock
//! (a `dlopen` under way) cannot deadlock. It reads a [`Snapshot`]: what
//! it needs of every object it can reach (copied once per object) and the
//! global scope, which the loader lock's holder publishes whenever it
//! releases the lock with something changed (`process`), as glibc
//! replaces an `r_scope_elem` array rather than changing it. Readers announce
//! themselves in a counter; a publisher waits for it to drop to zero
//! before it frees the snapshot it replaced, and `dlclose` unmaps an
//! object only under a later lock, after the object left the scope in a
//! publication that was waited for. Two threads binding one slot write
//! the same value. The thread that is linking (start-up, or a `dlopen`
//! running IFUNC resolvers) reads the namespace it is linking instead
//! (`link::linking`): its new objects are not published yet.
//! A successful fixup allocates nothing (the allocator has a lock of its
//! own; only a failed one's message is allocated). (A signal handler that
//! calls `dlopen` or `dlclose` while its thread is inside a fixup would
//! wait for that fixup forever; neither is async-signal-safe under glibc
//! either.)
#![allow(unsafe_code)]

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

use object::elf::*;

use crate::arch::native::{self, Native};
use crate::arch::{ArchInfo, RelocKind};
use crate::diag::Error;
use crate::elf::symbols::{self, Found, Query, Sym};
use crate::elf::version::VersionReq;
use crate::err;
use crate::link::lookup::Bloom;
use crate::link::{Dso, DsoId, Kind, Namespace};

/// `AT_HWCAP`/`AT_HWCAP2`, which aarch64 IFUNC resolvers are passed.
static HWCAP: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

/// `LD_BIND_NOT`: slots are resolved but never written, so every call
/// goes through the fixup.
static BIND_NOT: AtomicBool = AtomicBool::new(false);

/// Remembers the hardware capabilities for IFUNC resolvers run by a
/// lazy binding.
pub fn set_hwcap(hwcap: (u64, u64)) {
    HWCAP[0].store(hwcap.0, Ordering::Relaxed);
    HWCAP[1].store(hwcap.1, Ordering::Relaxed);
}

/// `LD_BIND_NOT` (glibc: any non-empty value).
pub fn set_bind_not(on: bool) {
    BIND_NOT.store(on, Ordering::Relaxed);
}

/// What lazy binding reads of the namespace: per object (by id) a copy of
/// what lookups read, `None` for a slot no object occupies (unmapped, or
/// not relocated yet), and the global scope.
struct Snapshot {
    objs: Vec<Option<Arc<Record>>>,
    global: Vec<DsoId>,
    /// The published objects of the global scope, in its order.
    walk: Vec<Arc<Record>>,
}

/// Per object, when [`publish`] last ran: its image's identity and
/// whether it was relocated and mapped, which with the global scope is all
/// that decides the snapshot (an object's local scope is set when it is
/// loaded, with a new image, and its `GOT[2]` when it is relocated). Only
/// the loader lock's holder touches it.
static SEEN: spin::Mutex<Vec<(u64, bool)>> = spin::Mutex::new(Vec::new());

/// One object as a snapshot holds it.
struct Record {
    dso: Dso,
    filter: Bloom,
}

/// The published snapshot (null before start-up installs the namespace).
static SNAPSHOT: AtomicPtr<Snapshot> = AtomicPtr::new(core::ptr::null_mut());
/// Fixups reading [`SNAPSHOT`] at this moment.
static READERS: AtomicUsize = AtomicUsize::new(0);

/// The objects a lookup reads: the namespace being linked, or a snapshot.
trait Objects {
    fn obj(&self, id: DsoId) -> Option<&Dso>;
    fn global(&self) -> &[DsoId];

    /// The first definition of `q` in the global scope.
    fn in_global(&self, q: &Query<'_>, want: Option<&VersionReq>) -> Option<(&Dso, Sym)> {
        self.global().iter().find_map(|&i| self.obj(i).and_then(|x| in_one(x, q, want)))
    }
}

/// `q` in object `x`, as a PLT reference looks it up.
#[inline(always)]
fn in_one<'x>(x: &'x Dso, q: &Query<'_>, want: Option<&VersionReq>) -> Option<(&'x Dso, Sym)> {
    found_in(x, symbols::lookup(&x.img, &x.dyn_info, &x.versions, q, want, true))
}

#[inline(always)]
fn found_in(x: &Dso, f: Found) -> Option<(&Dso, Sym)> {
    match f {
        Found::Match(_, s) | Found::Fallback(_, s) => Some((x, s)),
        Found::None => None,
    }
}

impl Objects for Namespace {
    fn obj(&self, id: DsoId) -> Option<&Dso> {
        self.objs.get(id)
    }
    fn global(&self) -> &[DsoId] {
        &self.scope
    }
}

impl Objects for Snapshot {
    fn obj(&self, id: DsoId) -> Option<&Dso> {
        self.objs.get(id)?.as_deref().map(|r| &r.dso)
    }
    fn global(&self) -> &[DsoId] {
        &self.global
    }

    /// The scope walk every lazy binding makes: most objects are turned
    /// away by their copied Bloom filter.
    fn in_global(&self, q: &Query<'_>, want: Option<&VersionReq>) -> Option<(&Dso, Sym)> {
        // Past the copied filter, the search proper (`in_one` would test
        // the object's own filter again).
        self.walk
            .iter()
            // SAFETY: each record's object stays mapped while a snapshot
            // that reaches it can be read (see `publish`).
            .filter(|r| unsafe { r.filter.may_define(q.gnu) })
            .find_map(|r| found_in(&r.dso, symbols::search(&r.dso.img, &r.dso.dyn_info, &r.dso.versions, q, want, true)))
    }
}

/// Whether object `d` is one lazy binding can reach: relocated (so sealed:
/// its image's writable ranges are final) and still mapped.
fn published(d: &Dso) -> bool {
    d.relocated && (d.map_end > d.map_start || !matches!(d.kind, Kind::Library))
}

/// Whether `d`'s PLT is bound lazily: its `GOT[2]` holds the resolver.
fn binds_lazily(d: &Dso, resolver: u64) -> bool {
    let got = d.dyn_info.pltgot;
    got != 0 && d.img.u64(got + 16) == Some(resolver)
}

/// Which objects lazy binding can reach: every object of the global
/// scope, and each object whose PLT is bound lazily with its local scope.
/// A library `dlopen`ed with `RTLD_NOW | RTLD_LOCAL` is in none of these,
/// and gets no copy (a process that opens and closes one in a loop would
/// otherwise copy it at every `dlopen`).
fn reachable(ns: &Namespace) -> Vec<bool> {
    let mut r = alloc::vec![false; ns.objs.len()];
    for &i in &ns.scope {
        if let Some(x) = r.get_mut(i) {
            *x = true;
        }
    }
    let resolver = native::plt_resolver(plt_fixup) as u64;
    for (i, d) in ns.objs.iter().enumerate() {
        if binds_lazily(d, resolver) {
            r[i] = true;
            for &j in &d.local_scope {
                if let Some(x) = r.get_mut(j) {
                    *x = true;
                }
            }
        }
    }
    r
}

/// [`reachable`] for object `i` alone.
fn reachable_one(ns: &Namespace, i: DsoId) -> bool {
    let resolver = native::plt_resolver(plt_fixup) as u64;
    ns.scope.contains(&i)
        || ns.objs.get(i).is_some_and(|d| binds_lazily(d, resolver))
        || ns.objs.iter().any(|d| d.local_scope.contains(&i) && binds_lazily(d, resolver))
}

/// Publishes `ns` for lazy binding if anything lazy binding reads of it
/// changed. Called by the loader lock's holder as it releases the lock
/// (and at start-up's install), so publications are serialised. An object
/// already published keeps its copy (matched by image identity); the
/// global scope is copied anew.
pub fn publish(ns: &Namespace) {
    let old_ptr = SNAPSHOT.load(Ordering::SeqCst);
    // SAFETY: only `publish` replaces the snapshot, and publications are
    // serialised by the loader lock; the old one is freed only below.
    let old = unsafe { old_ptr.as_ref() };
    let state = |d: &Dso| (d.img.id(), published(d));
    let same_global = old.is_some_and(|o| o.global == ns.scope && o.objs.len() == ns.objs.len());
    {
        let mut seen = SEEN.lock();
        if same_global && seen.len() == ns.objs.len() {
            // Only an object whose state moved can change the snapshot (its
            // local scope, `GOT[2]` and image change only with its state),
            // and only if it has a record or should have one now: a
            // library opened `RTLD_NOW | RTLD_LOCAL`, or its unmapping,
            // changes nothing here.
            let mut unseen = true;
            for (i, (d, s)) in ns.objs.iter().zip(seen.iter_mut()).enumerate() {
                let now = state(d);
                if now != *s {
                    *s = now;
                    let recorded = old.is_some_and(|o| o.objs.get(i).is_some_and(Option::is_some));
                    let matters = recorded || (now.1 && reachable_one(ns, i));
                    unseen &= !matters;
                }
            }
            if unseen {
                return;
            }
        } else {
            seen.clear();
            seen.extend(ns.objs.iter().map(state));
        }
    }
    let reachable = reachable(ns);
    let wanted = |i: usize, d: &Dso| reachable[i] && published(d);
    let old_record = |i: usize| old.and_then(|o| o.objs.get(i)).and_then(Option::as_ref);
    // A record is kept while its object's image is the same one.
    let kept = |i: usize, d: &Dso| old_record(i).filter(|r| r.dso.img.id() == d.img.id());
    let objs: Vec<Option<Arc<Record>>> = ns
        .objs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            if !wanted(i, d) {
                None
            } else {
                kept(i, d).cloned().or_else(|| Some(Arc::new(Record { dso: d.copy_for_lookups(), filter: Bloom::of(&d.dyn_info) })))
            }
        })
        .collect();
    let walk = ns.scope.iter().filter_map(|&i| objs.get(i).cloned().flatten()).collect();
    let new = Box::into_raw(Box::new(Snapshot { objs, global: ns.scope.clone(), walk }));
    SNAPSHOT.store(new, Ordering::SeqCst);
    // A reader that counted itself after this point sees the new snapshot;
    // one that counted itself before may still read the old one.
    while READERS.load(Ordering::SeqCst) != 0 {
        core::hint::spin_loop();
    }
    if !old_ptr.is_null() {
        // SAFETY: made by Box::into_raw above (an earlier call), replaced,
        // and no reader holds it any more.
        drop(unsafe { Box::from_raw(old_ptr) });
    }
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
    let bind_not = BIND_NOT.load(Ordering::Relaxed);
    // A plain function is written while the objects are still read.
    let (place, resolver, add) =
        match reading(|o| bind_in(o, id, which, bind_not), |o| bind_in(o, id, which, bind_not)).ok_or_else(not_yet)?? {
            Ok(value) => return Ok(value),
            Err(ifunc) => ifunc,
        };
    // An IFUNC's resolver runs outside the reading: it may call lazily
    // bound functions itself, or dlopen.
    // SAFETY: the resolver of an STT_GNU_IFUNC function of a relocated
    // object, checked to lie in that object's code (`look_up`).
    let value = unsafe { native::call_ifunc(resolver, HWCAP[0].load(Ordering::Relaxed), HWCAP[1].load(Ordering::Relaxed)) };
    let value = value.wrapping_add(add as usize);
    if bind_not {
        return Ok(value);
    }
    reading(|o| write(o, id, place, value), |o| write(o, id, place, value)).ok_or_else(not_yet)?
}

/// Looks slot `which` of object `id` up in `o`; a plain function is
/// written (unless `bind_not`) and its address returned, an IFUNC is
/// returned as (slot, resolver, addend) for the caller to resolve.
type Bound = Result<usize, (usize, usize, u64)>;

fn bind_in<O: Objects + ?Sized>(o: &O, id: DsoId, which: usize, bind_not: bool) -> Result<Bound, Error> {
    match look_up(o, id, which)? {
        (_, Binding::Address(value)) if bind_not => Ok(Ok(value)),
        (place, Binding::Address(value)) => write(o, id, place, value).map(Ok),
        (place, Binding::Ifunc(resolver, add)) => Ok(Err((place, resolver, add))),
    }
}

/// Runs `linking` on the namespace this thread is linking, if any, else,
/// counted as a reader, `published` on the published snapshot (two
/// closures, so that each lookup is compiled for its kind of objects).
fn reading<R>(linking: impl FnOnce(&Namespace) -> R, published: impl FnOnce(&Snapshot) -> R) -> Option<R> {
    if let Some(r) = crate::link::linking::with_linking(linking) {
        return Some(r);
    }
    READERS.fetch_add(1, Ordering::SeqCst);
    // SAFETY: a publisher frees a snapshot only after it was replaced and
    // the reader count was seen at zero; this reader counted itself first.
    let r = unsafe { SNAPSHOT.load(Ordering::SeqCst).as_ref() }.map(published);
    READERS.fetch_sub(1, Ordering::SeqCst);
    r
}

/// Writes `value` into slot `place` of object `id`. The slot was read from
/// the object's own relocation table; the image refuses it unless it lies
/// in the object's writable memory.
fn write<O: Objects + ?Sized>(o: &O, id: DsoId, place: usize, value: usize) -> Result<usize, Error> {
    if o.obj(id).is_some_and(|d| d.img.write_u64(place, value as u64)) {
        Ok(value)
    } else {
        Err(err!("ld-cah.so", "lazy binding: PLT slot {:#x} is not writable", place))
    }
}

/// The slot and what it binds to, looked up in `o`: the engine's rules
/// for a PLT reference (`reloc::Engine::resolve`), over the object's
/// scope (the global scope, as it is now, as glibc's `l_scope[0]` is,
/// then the object's `dlopen` closure).
fn look_up<O: Objects + ?Sized>(o: &O, id: DsoId, which: usize) -> Result<(usize, Binding), Error> {
    let Some(d) = o.obj(id) else {
        return Err(err!("ld-cah.so", "lazy binding for an object that does not exist (GOT[1] = {:#x})", id));
    };
    let di = &d.dyn_info;
    let index = if Native::PLT_PASSES_SLOT { index_of_slot(d, which)? } else { which };
    let at = index.checked_mul(24).filter(|&off| off < di.pltrelsz).map(|off| di.jmprel + off);
    let Some([off, info, addend]) = at.and_then(|at| d.img.read::<[u64; 3]>(at)) else {
        return Err(err!(d.display_name(), "lazy binding: PLT relocation {} does not exist", index));
    };
    if info as u32 != Native::R_JUMP_SLOT {
        return Err(err!(d.display_name(), "lazy binding: PLT relocation {} is not a JUMP_SLOT", index));
    }
    let place = d.base.wrapping_add(off as usize);
    // aarch64's JUMP_SLOT is S + A, x86_64's is S.
    let add = if Native::reloc_kind(info as u32) == Some(RelocKind::Absolute) { addend } else { 0 };
    let symidx = (info >> 32) as u32;
    let Some(sym) = symbols::symbol(&d.img, di, symidx) else {
        return Err(err!(d.display_name(), "relocation names symbol {} outside the symbol table", symidx));
    };
    // Local symbols, and non-default visibility, bind to the object itself.
    let def =
        if symidx == 0 || sym.bind() == STB_LOCAL || sym.visibility() != STV_DEFAULT { Some((d, sym)) } else { find(o, d, symidx, &sym)? };
    let Some((definer, def)) = def else {
        // An undefined weak function: glibc binds it to 0 as well.
        return Ok((place, Binding::Address(add as usize)));
    };
    let address = if def.st_shndx == SHN_ABS { def.st_value as usize } else { definer.base.wrapping_add(def.st_value as usize) };
    if def.kind() == STT_GNU_IFUNC && def.st_shndx != SHN_UNDEF {
        crate::init::check_code(definer, address, "STT_GNU_IFUNC resolver")?;
        return Ok((place, Binding::Ifunc(address, add)));
    }
    Ok((place, Binding::Address(address.wrapping_add(add as usize))))
}

/// The definition of symbol `symidx` (`sym`) of object `d`: the first in
/// its scope, then `d` itself under `DT_SYMBOLIC`; `None` for an
/// undefined weak reference.
fn find<'o, O: Objects + ?Sized>(o: &'o O, d: &'o Dso, symidx: u32, sym: &Sym) -> Result<Option<(&'o Dso, Sym)>, Error> {
    let di = &d.dyn_info;
    let Some(name) = di.string(&d.img, sym.st_name as usize) else {
        return Err(err!(d.display_name(), "symbol name outside the string table"));
    };
    let want =
        if di.versym != 0 { d.img.u16(di.versym + symidx as usize * 2).and_then(|v| d.versions.get(&d.img, v & 0x7fff)) } else { None };
    let q = Query::new(name);
    let global = o.global();
    // The first definition in scope order wins (an STB_GNU_UNIQUE one too:
    // the load-time engine bound every other reference to that first one).
    let found = o
        .in_global(&q, want.as_ref())
        .or_else(|| d.local_scope.iter().filter(|x| !global.contains(x)).find_map(|&i| o.obj(i).and_then(|x| in_one(x, &q, want.as_ref()))))
        .or_else(|| if di.symbolic { in_one(d, &q, want.as_ref()) } else { None });
    match found {
        Some(f) => Ok(Some(f)),
        None if sym.bind() == STB_WEAK => Ok(None),
        None => Err(crate::link::lookup::undefined(d, name, want.as_ref())),
    }
}

/// aarch64: the `DT_JMPREL` index of the relocation whose slot is at
/// `slot`. The linker lays `.got.plt` out in `DT_JMPREL` order after the
/// three reserved words, so the guess is checked, and the table searched
/// if it is wrong.
fn index_of_slot(d: &Dso, slot: usize) -> Result<usize, Error> {
    let di = &d.dyn_info;
    let n = di.pltrelsz / 24;
    let slot_of = |i: usize| d.img.u64(di.jmprel + i * 24).map(|off| d.base.wrapping_add(off as usize));
    let guess = slot.wrapping_sub(di.pltgot.wrapping_add(24)) / 8;
    if guess < n && slot_of(guess) == Some(slot) {
        return Ok(guess);
    }
    (0..n).find(|&i| slot_of(i) == Some(slot)).ok_or_else(|| err!(d.display_name(), "lazy binding: no PLT relocation for slot {:#x}", slot))
}
