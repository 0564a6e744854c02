//! The relocation engine.
//!
//! Per object: `DT_RELR` and `R_*_RELATIVE` in tight loops, then symbolic
//! relocations, with recent (object, symbol index) resolutions remembered
//! in a small fixed-size cache. IFUNCs are
//! resolved when glibc's `_dl_relocate_object` resolves them: a reference
//! to an `STT_GNU_IFUNC` symbol calls its resolver right there
//! (`elf_machine_rela`), and `IRELATIVE` relocations run in table order on
//! aarch64 but last in their range on x86_64 (`elf_dynamic_do_Rela` with
//! `ELF_MACHINE_IRELATIVE`). So when the program is relocated (last), its
//! libraries' IFUNC-bound slots are filled and its `R_*_COPY` relocations
//! copy them, as glibc's do.
//! Every write goes through the object's [`Image`](crate::elf::Image), so a
//! relocation outside the object's writable segments is an error, not a
//! write.

pub mod plan;
pub mod reference;

use alloc::vec;
use alloc::vec::Vec;

use object::elf::*;

use crate::arch::{ArchInfo, RelocKind, TlsVariant};
use crate::diag::{Error, ErrorKind};
use crate::elf::image::{Records, Writer};
use crate::elf::symbols::{symbol, Query, Sym};
use crate::err;
use crate::link::lookup::{self, Class, Def, UniqueTable, Walk};
use crate::link::{Dso, DsoId, Namespace};
use crate::tls;

/// Architecture facts the engine needs, taken once from `ArchInfo`.
#[derive(Clone, Copy)]
pub struct Target {
    pub relative: u32,
    pub variant: TlsVariant,
    pub decode: fn(u32) -> Option<RelocKind>,
    /// The static TLSDESC resolver's address.
    pub tlsdesc_static: usize,
    /// The dynamic TLSDESC resolver's address (modules `dlopen` could not
    /// place in static TLS).
    pub tlsdesc_dynamic: usize,
    /// x86_64's `dl-machine.h` rules: `IRELATIVE` relocations run after the
    /// rest of their range (`ELF_MACHINE_IRELATIVE`), and an IFUNC defined
    /// in an object not relocated yet is diagnosed. aarch64 has neither.
    pub x86_64_ifunc_rules: bool,
    /// `R_*_JUMP_SLOT`.
    pub jump_slot: u32,
    /// `R_*_GLOB_DAT` and `R_*_JUMP_SLOT` with what `decode` makes of
    /// them: the types of nearly every symbolic reference, decoded without
    /// the call (a warm start of 100,000 references spent a tenth of its
    /// time in it).
    frequent: [(u32, Option<RelocKind>); 2],
    /// The types a planned reference is written for without the general
    /// loop (see `PlannedRun`): `GLOB_DAT`, `JUMP_SLOT` and the 64-bit
    /// absolute one, each with the mask of its addend (all ones for an
    /// `Absolute` kind, which adds it; 0 for a `Symbol`, which does not).
    planned: [(u32, u64); 3],
    /// The PLT resolver lazy binding puts in `GOT[2]`; 0 binds every PLT
    /// slot at load time.
    pub plt_resolver: usize,
    /// aarch64: functions marked `STO_AARCH64_VARIANT_PCS` are bound at
    /// load time (the resolver saves only the base PCS's registers).
    pub variant_pcs: bool,
}

impl Target {
    /// `decode(r_type)`, the frequent types without a call.
    #[inline(always)]
    fn kind_of(&self, r_type: u32) -> Option<RelocKind> {
        let [(a, ka), (b, kb)] = self.frequent;
        if r_type == a {
            ka
        } else if r_type == b {
            kb
        } else {
            (self.decode)(r_type)
        }
    }

    pub fn of<A: ArchInfo>(tlsdesc_static: usize, tlsdesc_dynamic: usize) -> Target {
        Target {
            relative: A::R_RELATIVE,
            variant: A::TLS_VARIANT,
            decode: A::reloc_kind,
            tlsdesc_static,
            tlsdesc_dynamic,
            x86_64_ifunc_rules: A::MACHINE == EM_X86_64,
            jump_slot: A::R_JUMP_SLOT,
            frequent: [A::R_GLOB_DAT, A::R_JUMP_SLOT].map(|t| (t, A::reloc_kind(t))),
            planned: [A::R_GLOB_DAT, A::R_JUMP_SLOT, A::R_ABS64]
                .map(|t| (t, if A::reloc_kind(t) == Some(RelocKind::Absolute) { u64::MAX } else { 0 })),
            plt_resolver: 0,
            variant_pcs: A::MACHINE == EM_AARCH64,
        }
    }
}

/// One symbolic `Elf64_Rela` entry of an object, decoded.
#[derive(Clone, Copy)]
struct Rela {
    r_type: u32,
    /// `r_type` decoded (`None`: a type this arch does not know).
    kind: Option<RelocKind>,
    symidx: u32,
    /// The address it writes: the object's base plus `r_offset`.
    place: usize,
    addend: u64,
    /// Whether it is in the `DT_JMPREL` table (a PLT slot).
    plt: bool,
    /// Where the entry itself lies, as a link-time address: what the
    /// binding plan knows it by.
    at: u64,
}

/// Calls an IFUNC resolver (with whatever arguments the arch passes) and
/// returns the address it chose.
pub type Resolve<'a> = &'a dyn Fn(usize) -> usize;

/// Counters for `CAH_DEBUG=statistics`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub relative: usize,
    pub symbolic: usize,
    pub lookups: usize,
    /// References bound by the binding plan instead of a lookup.
    pub planned: usize,
    /// PLT slots left to lazy binding.
    pub lazy: usize,
}

/// Lookups after which an engine prepares its scope as a [`Walk`].
const WALK_AFTER: usize = 32;

/// Relocation state across objects.
pub struct Engine<'a> {
    pub ns: &'a Namespace,
    pub target: Target,
    pub unique: UniqueTable,
    pub stats: Stats,
    /// Bind symbols of this scope (the global scope at start-up).
    scope: &'a [DsoId],
    /// The scope prepared for many lookups, once there have been
    /// [`WALK_AFTER`] (a `dlopen` that looks up five names would spend
    /// more preparing it than it saves).
    walk: Option<Walk<'a>>,
    /// `LD_BIND_NOW`/`RTLD_NOW`: every PLT slot is bound now (a missing
    /// function is an error now, not when it is called).
    pub bind_now: bool,
    /// `argv[0]`, which glibc's warnings start with (`RTLD_PROGNAME`).
    pub progname: &'a str,
    resolve_ifunc: Resolve<'a>,
    /// A binding plan to obey (warm start): references it covers need no
    /// lookup.
    pub plan: Option<&'a plan::Plan>,
    /// Where resolutions are recorded for a plan (cold start).
    pub recorder: Option<plan::Recorder>,
    /// The `tls_index` each TLS descriptor of a module in dynamic TLS
    /// points at, by the object whose GOT holds the descriptor: its caller
    /// hands them to that object, which frees them when its slot is
    /// reused (they were leaked, 16 bytes per descriptor per `dlopen`).
    pub tls_indices: Vec<(DsoId, alloc::boxed::Box<[usize]>)>,
    /// Objects this engine has relocated (glibc's `l_relocated`, which the
    /// namespace's `relocated` flags only get once every object is done).
    done: Vec<bool>,
}

/// A resolved symbol reference: `None` for an undefined weak reference.
type Resolved = Option<Def>;

/// The last resolutions made for one object, direct-mapped by (symbol
/// index, class): references to one symbol tend to sit close together (a
/// GOT slot and a PLT slot, a TLS module and offset pair), and a fixed
/// size costs nothing up front however many symbols the object has (a
/// table per symbol was 96 bytes a symbol, allocated and written at every
/// start). A miss only costs a lookup, whose result is the same.
///
/// It also holds the object's part of the binding plan, if any, which is
/// asked first.
///
/// A slot holds the definition's object and symbol index, not the symbol:
/// zeroed words are empty slots, so making the cache for an object is one
/// `memset` of a kilobyte (slots of whole definitions had to be written one
/// by one, 300 instructions for a `dlopen`ed library with four references),
/// and a hit reads the symbol again.
struct Recent<'p> {
    /// Key plus one; 0 is an empty slot.
    keys: [u64; SLOTS],
    /// `object << 32 | symbol index`, or [`UNBOUND`].
    bound: [u64; SLOTS],
    plan: Option<plan::ObjectPlan<'p>>,
}

const SLOTS: usize = 64;
/// A weak reference that bound to nothing.
const UNBOUND: u64 = u64::MAX;

impl Recent<'_> {
    fn key(symidx: u32, plt: bool) -> u64 {
        (u64::from(symidx) << 1) | u64::from(plt)
    }

    fn get(&self, ns: &Namespace, key: u64) -> Option<Resolved> {
        let i = key as usize % SLOTS;
        if self.keys[i] != key + 1 {
            return None;
        }
        let b = self.bound[i];
        if b == UNBOUND {
            return Some(None);
        }
        let (obj, idx) = ((b >> 32) as usize, b as u32);
        let d = ns.objs.get(obj)?;
        Some(Some(Def { obj, sym: symbol(&d.img, &d.dyn_info, idx)?, idx }))
    }

    fn put(&mut self, key: u64, r: Resolved) {
        let i = key as usize % SLOTS;
        // An object index past 32 bits is not cached (never in practice).
        let Some(b) = r.map_or(Some(UNBOUND), |d| u32::try_from(d.obj).ok().map(|o| u64::from(o) << 32 | u64::from(d.idx))) else {
            return;
        };
        self.keys[i] = key + 1;
        self.bound[i] = b;
    }
}

impl<'a> Engine<'a> {
    /// An engine binding symbols of `scope` that calls IFUNC resolvers
    /// through `resolve_ifunc`.
    pub fn new(ns: &'a Namespace, scope: &'a [DsoId], target: Target, resolve_ifunc: Resolve<'a>) -> Engine<'a> {
        Engine {
            ns,
            target,
            unique: UniqueTable::default(),
            stats: Stats::default(),
            scope,
            walk: None,
            bind_now: false,
            progname: "<program name unknown>",
            resolve_ifunc,
            plan: None,
            recorder: None,
            tls_indices: Vec::new(),
            done: vec![false; ns.objs.len()],
        }
    }

    fn is_relocated(&self, id: DsoId) -> bool {
        self.ns.objs[id].relocated || self.done.get(id).copied().unwrap_or(false)
    }

    /// Applies every relocation of object `id`, IFUNCs included, in the
    /// order of glibc's `ELF_DYNAMIC_RELOCATE`: `DT_RELR`, then `DT_RELA`
    /// and `DT_JMPREL` as the ranges `_ELF_DYNAMIC_DO_RELOC` makes of them.
    pub fn relocate(&mut self, id: DsoId) -> Result<(), Error> {
        let d = &self.ns.objs[id];
        // Only an error needs the name (UTF-8 checked): made then.
        let name = || d.display_name();
        if d.dyn_info.textrel {
            return Err(err!(name(), "text relocations (DT_TEXTREL) are not supported"));
        }
        self.apply_relr(id)?;
        let di = &d.dyn_info;
        // Recent resolutions per (symbol, class): a PLT slot and a data
        // reference to the same symbol can bind differently (see Class).
        let mut cache = Recent { keys: [0; SLOTS], bound: [0; SLOTS], plan: self.plan.map(|p| p.object(id)) };
        // glibc binds PLT slots lazily unless asked not to (LD_BIND_NOW,
        // RTLD_NOW, DT_BIND_NOW, DF_BIND_NOW, DF_1_NOW).
        let lazy_plt = !self.bind_now && !di.bind_now && di.flags & u64::from(DF_BIND_NOW) == 0 && di.flags_1 & u64::from(DF_1_NOW) == 0;
        let in_plt = |at: usize| di.jmprel != 0 && at >= di.jmprel && at < di.jmprel.saturating_add(di.pltrelsz);
        let lazy_got = lazy_plt && self.setup_lazy(id);
        for (start, size) in ranges(di.rela, di.relasz, di.jmprel, di.pltrelsz, lazy_plt) {
            if start == 0 || size == 0 {
                continue;
            }
            // x86_64: IRELATIVE entries wait for the rest of the range (found
            // again by a second pass from the first of them: a list of
            // them grew one push at a time, 2,300 instructions for libc).
            let mut first_irelative: Option<usize> = None;
            let n = size / 24;
            // Checked once (DynInfo::check_ranges did too): each entry is
            // then read with one comparison.
            let Some(table) = d.img.span(start, n * 24) else {
                return Err(err!(name(), "relocation table lies outside the object"));
            };
            let entries = d.img.records::<3>(table);
            // The lazy PLT's slots first thing: a program may have a
            // hundred thousand, and each only gets the load base added.
            let lazy_range = lazy_got && start == di.jmprel;
            let any_variant_pcs = self.target.variant_pcs && di.variant_pcs;
            // The lazy range's other entries (IRELATIVE, TLS descriptors,
            // slots bound now), for the general loop below.
            let mut rest: Vec<usize> = Vec::new();
            if lazy_range {
                let eager = any_variant_pcs.then_some(|symidx| self.variant_pcs(id, symidx));
                lazy_slots(&entries, d.img.writer(), d.base, self.target.jump_slot, d.relro.unwrap_or((0, 0)), eager, &mut rest)
                    .map_err(|place| bad_place(name(), place, d.base))?;
            }
            let lazy = if lazy_range { n - rest.len() } else { 0 };
            let first_other = if lazy_range {
                0
            } else {
                relative_run(&entries, d.img.writer(), d.base, self.target.relative).map_err(|place| bad_place(name(), place, d.base))?
            };
            self.stats.relative += first_other;
            let all = if lazy_range { 0..0 } else { first_other..n };
            // Entries before this one were written by `PlannedRun::write`.
            let mut planned_to = 0;
            for i in all.chain(rest) {
                if i < planned_to {
                    continue;
                }
                let Some([off, info, addend]) = entries.get(i) else {
                    return Err(err!(name(), "relocation table lies outside the object"));
                };
                let r_type = info as u32;
                let plan = if lazy_range { None } else { cache.plan.as_mut() };
                if let Some(plan) = plan.filter(|_| self.target.planned.iter().any(|p| p.0 == r_type)) {
                    let run =
                        PlannedRun { entries: &entries, table_at: start.wrapping_sub(d.base) as u64, w: d.img.writer(), base: d.base };
                    let next = run.write(i, self.target.planned, plan, &self.ns.objs).map_err(|place| bad_place(name(), place, d.base))?;
                    self.stats.symbolic += next - i;
                    self.stats.planned += next - i;
                    planned_to = next;
                    if i < next {
                        continue;
                    }
                }
                // The entry's run-time address.
                let entry = start + i * 24;
                let place = d.base.wrapping_add(off as usize);
                if r_type == self.target.relative {
                    self.stats.relative += 1;
                    if !d.img.write_u64(place, (d.base as u64).wrapping_add(addend)) {
                        return Err(bad_place(name(), place, d.base));
                    }
                    continue;
                }
                let kind = self.target.kind_of(r_type);
                if self.target.x86_64_ifunc_rules && kind == Some(RelocKind::IRelative) {
                    first_irelative.get_or_insert(i);
                    continue;
                }
                self.stats.symbolic += 1;
                let at = entry.wrapping_sub(d.base) as u64;
                // A planned plain address the run above did not take (its
                // plan entry out of order, or a slot of the lazy range bound
                // now) is bound by `resolve` from the plan's binding.
                let planned = cache.plan.as_mut().and_then(|p| p.get(at));
                let plt = in_plt(entry);
                let rela = Rela { r_type, kind, symidx: (info >> 32) as u32, place, addend, plt, at };
                match self.apply_one(id, rela, planned, &mut cache) {
                    Err(e) if plt && lazy_plt && e.kind == ErrorKind::UndefinedSymbol => {
                        if !d.img.write_u64(place, missing_function as *const () as u64) {
                            return Err(bad_place(name(), place, d.base));
                        }
                    }
                    r => r?,
                }
            }
            self.stats.lazy += lazy;
            for i in first_irelative.map_or(n, |f| f)..n {
                let Some([off, info, addend]) = entries.get(i) else {
                    return Err(err!(name(), "relocation table lies outside the object"));
                };
                if (self.target.decode)(info as u32) == Some(RelocKind::IRelative) {
                    self.stats.symbolic += 1;
                    self.irelative(id, d.base.wrapping_add(off as usize), addend)?;
                }
            }
        }
        // Its initialisers and finalisers are relocated values: check them
        // now, before anything can call them (start-up and dlopen alike).
        crate::init::check_entry_points(self.ns, id)?;
        if let Some(done) = self.done.get_mut(id) {
            *done = true;
        }
        Ok(())
    }

    /// glibc's `elf_machine_runtime_setup`: `GOT[1]` = the object's id,
    /// `GOT[2]` = the PLT resolver. False (bind every slot now) without a
    /// resolver, a `DT_PLTGOT`, or a writable GOT. (These three words may
    /// lie in RELRO, as GNU ld lays them out: they are written now, before
    /// RELRO is sealed; the slots themselves must not, see `relocate`.)
    fn setup_lazy(&self, id: DsoId) -> bool {
        let d = &self.ns.objs[id];
        let got = d.dyn_info.pltgot;
        if self.target.plt_resolver == 0 || got == 0 || d.dyn_info.jmprel == 0 || !d.img.is_writable(got, 24) {
            return false;
        }
        d.img.write_u64(got + 8, id as u64) && d.img.write_u64(got + 16, self.target.plt_resolver as u64)
    }

    /// Whether PLT symbol `symidx` of object `id` follows a variant
    /// procedure-call standard (aarch64, `DT_AARCH64_VARIANT_PCS`).
    fn variant_pcs(&self, id: DsoId, symidx: u32) -> bool {
        const STO_AARCH64_VARIANT_PCS: u8 = 0x80;
        let d = &self.ns.objs[id];
        self.target.variant_pcs
            && d.dyn_info.variant_pcs
            && symbol(&d.img, &d.dyn_info, symidx).is_none_or(|s| s.st_other & STO_AARCH64_VARIANT_PCS != 0)
    }

    fn apply_relr(&self, id: DsoId) -> Result<(), Error> {
        let d = &self.ns.objs[id];
        let (start, size) = (d.dyn_info.relr, d.dyn_info.relrsz);
        if start == 0 {
            return Ok(());
        }
        let base = d.base as u64;
        let mut next = 0usize;
        for i in 0..size / 8 {
            let Some(entry) = d.img.u64(start + i * 8) else {
                return Err(err!(d.display_name(), "DT_RELR table lies outside the object"));
            };
            if entry & 1 == 0 {
                let place = d.base.wrapping_add(entry as usize);
                let v = d.img.u64(place).unwrap_or(0);
                if !d.img.write_u64(place, v.wrapping_add(base)) {
                    return Err(bad_place(d.display_name(), place, d.base));
                }
                next = place + 8;
            } else {
                if let Err(place) = d.img.add_to_words(next, entry >> 1, base) {
                    return Err(bad_place(d.display_name(), place, d.base));
                }
                next = next.wrapping_add(63 * 8);
            }
        }
        Ok(())
    }

    /// Resolves symbol `symidx` referenced by object `id` from its
    /// relocation at `at`, which the plan may have an entry for.
    fn resolve(
        &mut self,
        id: DsoId,
        symidx: u32,
        class: Class,
        at: u64,
        planned: Option<plan::Planned>,
        cache: &mut Recent,
    ) -> Result<Resolved, Error> {
        let d = &self.ns.objs[id];
        let Some(sym) = symbol(&d.img, &d.dyn_info, symidx) else {
            return Err(err!(d.display_name(), "relocation names symbol {} outside the symbol table", symidx));
        };
        // Local symbols, and non-default visibility, bind to the object itself.
        if symidx == 0 || sym.bind() == STB_LOCAL || sym.visibility() != STV_DEFAULT {
            return Ok(Some(Def { obj: id, sym, idx: symidx }));
        }
        if let Some(r) = planned.and_then(|p| self.planned(&sym, p.binding)) {
            self.stats.planned += 1;
            return Ok(r);
        }
        let key = Recent::key(symidx, class == Class::Plt);
        let cacheable = class != Class::Copy;
        if cacheable {
            if let Some(r) = cache.get(self.ns, key) {
                self.record(id, at, r);
                return Ok(r);
            }
        }
        let Some(name) = d.string(sym.st_name as usize) else {
            return Err(err!(d.display_name(), "symbol name outside the string table"));
        };
        let want = if d.dyn_info.versym != 0 {
            d.img.u16(d.dyn_info.versym + symidx as usize * 2).and_then(|v| d.versions.get(&d.img, v & 0x7fff))
        } else {
            None
        };
        let q = Query::new(name);
        self.stats.lookups += 1;
        let skip = if class == Class::Copy { Some(id) } else { None };
        let mut found = if self.stats.lookups > WALK_AFTER {
            let walk = self.walk.get_or_insert_with(|| Walk::new(self.ns, self.scope));
            walk.lookup(self.ns, &mut self.unique, &q, want.as_ref(), skip, class)
        } else {
            lookup::lookup(self.ns, &mut self.unique, self.scope, &q, want.as_ref(), skip, class)
        };
        if found.is_none() && d.dyn_info.symbolic {
            found = lookup::lookup(self.ns, &mut self.unique, &[id], &q, want.as_ref(), skip, class);
        }
        let r = match found {
            Some(def) => Some(def),
            None if sym.bind() == STB_WEAK => None,
            None => return Err(lookup::undefined(d, name, want.as_ref())),
        };
        if cacheable {
            cache.put(key, r);
        }
        self.record(id, at, r);
        Ok(r)
    }

    /// Notes for the plan (a cold start) what the relocation at `at` of
    /// object `id` bound to, with the definition's value when the plan
    /// can give it as a plain address (see [`plain_address`]).
    fn record(&mut self, id: DsoId, at: u64, r: Resolved) {
        let Some(rec) = self.recorder.as_mut() else { return };
        let value = r
            .filter(|def| {
                let kind = def.sym.kind();
                kind != STT_GNU_IFUNC && kind != STT_TLS && def.sym.st_shndx != SHN_UNDEF && def.sym.st_shndx != SHN_ABS
            })
            .map_or(plan::NOT_PLAIN, |def| def.sym.st_value);
        rec.record(id, at, plan::Planned { binding: r.map(|def| (def.obj, def.idx)), value });
    }

    /// A plan's binding, if it still makes sense here: the object and
    /// symbol exist and the symbol is defined (or the reference is weak).
    /// Anything else falls back to a lookup. (The plan was accepted under
    /// the cache's trust rules and its checksum, for this closure's key,
    /// and a sample of its references was found to name the symbols they
    /// bind to: `Plan::agrees`.)
    fn planned(&self, referenced: &Sym, b: plan::Binding) -> Option<Resolved> {
        let Some((obj, idx)) = b else {
            return (referenced.bind() == STB_WEAK).then_some(None);
        };
        let d = self.ns.objs.get(obj)?;
        if d.removed || idx == 0 {
            return None;
        }
        let sym = symbol(&d.img, &d.dyn_info, idx)?;
        (sym.st_shndx != SHN_UNDEF).then_some(Some(Def { obj, sym, idx }))
    }

    /// `R_*_IRELATIVE`: the object's own resolver at `base + addend`.
    fn irelative(&mut self, id: DsoId, place: usize, addend: u64) -> Result<(), Error> {
        let d = &self.ns.objs[id];
        let resolver = d.base.wrapping_add(addend as usize);
        // Hostile objects: only the object's own code is ever called.
        crate::init::check_code(d, resolver, "R_*_IRELATIVE resolver")?;
        let v = (self.resolve_ifunc)(resolver);
        if d.img.write_u64(place, v as u64) {
            Ok(())
        } else {
            Err(bad_place(d.display_name(), place, d.base))
        }
    }

    /// x86_64's `elf_machine_rela` when object `id` binds to an IFUNC of
    /// `definer`, which is not relocated yet: fatal if the definer is the
    /// program, else a warning; either way glibc then calls the resolver.
    fn unrelocated_ifunc(&self, id: DsoId, symidx: u32, definer: DsoId) -> Result<(), Error> {
        let ns = self.ns;
        let d = &ns.objs[id];
        let sym_name = symbol(&d.img, &d.dyn_info, symidx).and_then(|s| d.string(s.st_name as usize));
        let sym_name = crate::diag::show(sym_name.unwrap_or(b""));
        let l_name = |x: DsoId| crate::diag::show(ns.objs[x].l_name());
        if ns.objs[definer].kind == crate::link::Kind::Main {
            return Err(err!(
                d.display_name(),
                "IFUNC symbol '{}' referenced in '{}' is defined in the executable and creates an unsatisfiable circular dependency",
                sym_name,
                l_name(id)
            ));
        }
        crate::diag::print(
            2,
            format_args!("{}: Relink `{}' with `{}' for IFUNC symbol `{}'\n", self.progname, l_name(id), l_name(definer), sym_name),
        );
        Ok(())
    }

    /// One relocation, `planned` being the plan's entry for it, if any.
    fn apply_one(&mut self, id: DsoId, r: Rela, planned: Option<plan::Planned>, cache: &mut Recent) -> Result<(), Error> {
        let Rela { r_type, kind, symidx, place, addend, plt, at } = r;
        let ns = self.ns;
        let d = &ns.objs[id];
        // Only for messages: not measured (UTF-8 checked) per relocation.
        let name = || d.display_name();
        let Some(kind) = kind else {
            return Err(err!(name(), "unsupported relocation type {}", r_type));
        };
        match kind {
            RelocKind::None => Ok(()),
            RelocKind::Relative => write_word(d, place, (d.base as u64).wrapping_add(addend)),
            RelocKind::IRelative => self.irelative(id, place, addend),
            RelocKind::Absolute | RelocKind::Symbol => {
                // PLT slots (the DT_JMPREL table) never bind to a
                // non-PIC executable's PLT stub, data references may (that
                // stub is the function's canonical address). A planned
                // plain address was written by `relocate`.
                let add = if kind == RelocKind::Absolute { addend } else { 0 };
                let class = if plt { Class::Plt } else { Class::Normal };
                let r = self.resolve(id, symidx, class, at, planned, cache)?;
                match r {
                    None => write_word(d, place, add),
                    Some(def) if def.sym.kind() == STT_GNU_IFUNC && def.sym.st_shndx != SHN_UNDEF => {
                        if self.target.x86_64_ifunc_rules && def.obj != id && !self.is_relocated(def.obj) {
                            self.unrelocated_ifunc(id, symidx, def.obj)?;
                        }
                        crate::init::check_code(&ns.objs[def.obj], def.address(ns), "STT_GNU_IFUNC resolver")?;
                        let v = (self.resolve_ifunc)(def.address(ns));
                        write_word(d, place, (v as u64).wrapping_add(add))
                    }
                    Some(def) => write_word(d, place, (def.address(ns) as u64).wrapping_add(add)),
                }
            }
            RelocKind::Copy => {
                let Some(def) = self.resolve(id, symidx, Class::Copy, at, planned, cache)? else {
                    return Err(err!(name(), "copy relocation against an undefined symbol"));
                };
                // The referencing symbol's size: read again (`resolve`
                // returns the definition only, having checked that symbol).
                let size = symbol(&d.img, &d.dyn_info, symidx).map_or(0, |s| s.st_size);
                let len = size.min(def.sym.st_size) as usize;
                let from = &ns.objs[def.obj].img;
                if !d.img.copy_from(place, from, def.address(ns), len) {
                    return Err(bad_place(name(), place, d.base));
                }
                Ok(())
            }
            // TLS references resolve as PLT references do (glibc's
            // `elf_machine_type_class`): never to an undefined symbol of
            // the program, which a SysV-hashed executable lists for a
            // library's `__thread` variable it uses.
            RelocKind::DtpMod => {
                let r = self.resolve(id, symidx, Class::Plt, at, planned, cache)?;
                let obj = r.map_or(id, |def| def.obj);
                match ns.objs[obj].tls {
                    Some(m) => write_word(d, place, m.modid as u64),
                    None if r.is_none() => write_word(d, place, 0),
                    None => Err(err!(name(), "TLS relocation against an object without TLS")),
                }
            }
            RelocKind::DtpOff => {
                let r = self.resolve(id, symidx, Class::Plt, at, planned, cache)?;
                write_word(d, place, r.map_or(0, |def| def.sym.st_value).wrapping_add(addend))
            }
            RelocKind::TpOff | RelocKind::TlsDesc => {
                let r = self.resolve(id, symidx, Class::Plt, at, planned, cache)?;
                let (obj, value) = r.map_or((id, 0), |def| (def.obj, def.sym.st_value));
                let Some(offset) = ns.objs[obj].tls.and_then(|m| m.offset) else {
                    // A module in dynamic TLS: descriptors can reach it
                    // through __tls_get_addr; initial-exec code cannot.
                    if let (RelocKind::TlsDesc, Some(m)) = (kind, ns.objs[obj].tls.filter(|m| m.modid != 0)) {
                        // A `tls::TlsIndex` (two words, module and offset).
                        const _: () = assert!(core::mem::size_of::<tls::TlsIndex>() == 2 * core::mem::size_of::<usize>());
                        let ti: alloc::boxed::Box<[usize]> = alloc::boxed::Box::new([m.modid, value.wrapping_add(addend) as usize]);
                        let at = ti.as_ptr() as u64;
                        self.tls_indices.push((id, ti));
                        write_word(d, place, self.target.tlsdesc_dynamic as u64)?;
                        return if d.img.write_u64(place + 8, at) { Ok(()) } else { Err(bad_place(name(), place + 8, d.base)) };
                    }
                    return Err(err!(name(), "cannot allocate memory in static TLS block"));
                };
                let tpoff = tls::tp_offset(self.target.variant, offset, value.wrapping_add(addend));
                if kind == RelocKind::TpOff {
                    write_word(d, place, tpoff)
                } else {
                    write_word(d, place, self.target.tlsdesc_static as u64)?;
                    if d.img.write_u64(place + 8, tpoff) {
                        Ok(())
                    } else {
                        Err(bad_place(name(), place + 8, d.base))
                    }
                }
            }
        }
    }
}

/// The order `dl_main` relocates the start-up objects in: `initfini` (the
/// init order, program first) backwards, so dependencies come first and
/// the program last; glibc 2.39 and later take libc first of all (bug
/// 31083: its IFUNC resolvers then run before any other object's).
pub fn startup_order(initfini: &[DsoId], libc_first: Option<DsoId>) -> Vec<DsoId> {
    let mut order: Vec<DsoId> = libc_first.into_iter().collect();
    order.extend(initfini.iter().rev().copied().filter(|&i| Some(i) != libc_first));
    order
}

/// Whether glibc `version` ("2.41") relocates libc before the rest.
pub fn relocates_libc_first(version: &str) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (2, 39)
}

/// The one or two ranges glibc's `_ELF_DYNAMIC_DO_RELOC` relocates, as
/// (address, size): `DT_RELA`, then `DT_JMPREL`; a `DT_RELASZ` that also
/// covers `DT_JMPREL` at its end is cut back, and when the PLT is bound now
/// and directly follows `DT_RELA`, the two are one range.
fn ranges(rela: usize, relasz: usize, jmprel: usize, pltrelsz: usize, lazy: bool) -> [(usize, usize); 2] {
    let mut first = if rela != 0 { (rela, relasz) } else { (0, 0) };
    let mut second = (0, 0);
    if jmprel != 0 {
        if first.0 == 0 {
            first.0 = jmprel;
        }
        if first.0.wrapping_add(first.1) == jmprel.wrapping_add(pltrelsz) {
            first.1 = first.1.saturating_sub(pltrelsz);
        }
        if !lazy && first.0.wrapping_add(first.1) == jmprel {
            first.1 = first.1.saturating_add(pltrelsz);
        } else {
            second = (jmprel, pltrelsz);
        }
    }
    [first, second]
}

/// Where a PLT slot of a missing function points when it had to be bound
/// at load time in a lazily bound object (a slot in RELRO, an object
/// without a usable GOT, an engine without a PLT resolver): calling it is
/// the error lazy binding would report at that moment.
extern "C" fn missing_function() -> ! {
    crate::diag::fatal(&crate::err!("ld-cah.so", "symbol lookup error: a function whose symbol was not found at start-up was called"))
}

/// Writes the relocated word `v` at `place` of `d`: the write of every
/// relocation `apply_one` makes. A function always inlined rather than a
/// closure: called from eight arms, the closure was left out of line once
/// the loader is built with a lower inline threshold (`xtask/src/build.rs`).
#[inline(always)]
fn write_word(d: &Dso, place: usize, v: u64) -> Result<(), Error> {
    if d.img.write_u64(place, v) {
        Ok(())
    } else {
        Err(bad_place(d.display_name(), place, d.base))
    }
}

/// The lazy PLT range's slots: a program may have a hundred thousand
/// `JUMP_SLOT`s, and each only gets the load base added (it points back
/// into the PLT, its link-time value, whose entry calls the resolver on
/// the first call). Not one in RELRO (sealed before any call) nor one
/// `eager`, if any, says must be bound now (a variant-PCS function, see
/// `Target::variant_pcs`): those, and every other kind of entry
/// (IRELATIVE, TLS descriptors), are left in `rest` for the general loop.
/// A loop of its own, so that its values stay in registers (inside
/// `relocate` they were spilled: three more instructions a slot). `Err`
/// is the place of a slot outside the writable segments.
#[inline(never)]
fn lazy_slots(
    entries: &Records<'_, 3>,
    w: Writer<'_>,
    base: usize,
    jump_slot: u32,
    (relro_start, relro_end): (usize, usize),
    eager: Option<impl Fn(u32) -> bool>,
    rest: &mut Vec<usize>,
) -> Result<(), usize> {
    let relro_len = relro_end.saturating_sub(relro_start);
    for i in 0..entries.len() {
        let Some([off, info, _]) = entries.get(i) else { break };
        let place = base.wrapping_add(off as usize);
        if info as u32 == jump_slot
            && place.wrapping_sub(relro_start) >= relro_len
            && !eager.as_ref().is_some_and(|f| f((info >> 32) as u32))
        {
            if !w.add_to_word(place, base as u64) {
                return Err(place);
            }
        } else {
            rest.push(i);
        }
    }
    Ok(())
}

/// Where a planned reference to a plain definition among `objs` points:
/// the definer's base plus the recorded value, without reading the
/// definer's symbol table. Only for a definer still open, and inside its
/// mapping.
#[inline(always)]
fn plain_address(objs: &[Dso], p: plan::Planned) -> Option<usize> {
    if p.value == plan::NOT_PLAIN {
        return None;
    }
    let d = objs.get(p.binding?.0)?;
    let a = d.base.wrapping_add(p.value as usize);
    (!d.removed && a >= d.map_start && a < d.map_end).then_some(a)
}

/// A warm start's usual references, written in a loop of their own: the
/// symbol references (`GLOB_DAT`, `JUMP_SLOT` bound now, the 64-bit
/// absolute ones C++ vtables are made of) that the plan gives as plain
/// addresses, as the cold start bound them. Through the general loop each
/// cost about a hundred instructions, its values spilled around the calls
/// the other kinds need.
struct PlannedRun<'r, 'i> {
    entries: &'r Records<'i, 3>,
    /// The table's link-time address: entry `i` is at `table_at + 24 i`.
    table_at: u64,
    w: Writer<'i>,
    base: usize,
}

impl PlannedRun<'_, '_> {
    /// Writes entries from `i` on while each is such a reference; returns
    /// the index of the first that is not (the general loop's), or the
    /// place of one outside the writable segments. `types` are
    /// `Target::planned`.
    #[inline(never)]
    fn write(&self, mut i: usize, types: [(u32, u64); 3], plan: &mut plan::ObjectPlan<'_>, objs: &[Dso]) -> Result<usize, usize> {
        let [(a, a_mask), (b, b_mask), (c, c_mask)] = types;
        while let Some([off, info, addend]) = self.entries.get(i) {
            let r_type = info as u32;
            let mask = if r_type == a {
                a_mask
            } else if r_type == b {
                b_mask
            } else if r_type == c {
                c_mask
            } else {
                break;
            };
            let at = self.table_at.wrapping_add(i as u64 * 24);
            let Some(value) = plan.peek(at).and_then(|p| plain_address(objs, p)) else { break };
            plan.advance();
            let place = self.base.wrapping_add(off as usize);
            if !self.w.write_word(place, (value as u64).wrapping_add(addend & mask)) {
                return Err(place);
            }
            i += 1;
        }
        Ok(i)
    }
}

/// Writes the leading run of `R_*_RELATIVE` entries (linkers put them
/// first, `DT_RELACOUNT` counts them: most of a library's relocations)
/// in a loop of their own, one type check and one write each, and
/// returns how many there were, or the place of one outside the writable
/// segments. Through the general loop each cost some forty instructions
/// (libcrypto has 23,000 of them). Not inlined, as [`lazy_slots`]: inside
/// `relocate` the two loops' code, and that of the planned references,
/// moved by tens of thousands of instructions a start with unrelated
/// changes.
#[inline(never)]
fn relative_run(entries: &Records<'_, 3>, w: Writer<'_>, base: usize, relative: u32) -> Result<usize, usize> {
    for i in 0..entries.len() {
        let Some([off, info, addend]) = entries.get(i) else { return Ok(i) };
        if info as u32 != relative {
            return Ok(i);
        }
        let place = base.wrapping_add(off as usize);
        if !w.write_word(place, (base as u64).wrapping_add(addend)) {
            return Err(place);
        }
    }
    Ok(entries.len())
}

#[cold]
#[inline(never)]
fn bad_place(name: &str, place: usize, base: usize) -> Error {
    err!(name, "relocation at offset {:#x} lies outside the writable segments", place.wrapping_sub(base))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frequent_types_decode_as_the_arch_decodes_them() {
        use crate::arch::{aarch64::Aarch64, x86_64::X86_64};
        // aarch64's GLOB_DAT and JUMP_SLOT add their addend (Absolute),
        // x86_64's do not (Symbol): the shortcut must keep that.
        for t in [Target::of::<X86_64>(0, 0), Target::of::<Aarch64>(0, 0)] {
            for r_type in (0..1100).chain([u32::MAX]) {
                assert_eq!(t.kind_of(r_type), (t.decode)(r_type), "type {r_type}");
            }
        }
        assert_eq!(Target::of::<Aarch64>(0, 0).kind_of(object::elf::R_AARCH64_GLOB_DAT), Some(RelocKind::Absolute));
        assert_eq!(Target::of::<X86_64>(0, 0).kind_of(object::elf::R_X86_64_GLOB_DAT), Some(RelocKind::Symbol));
    }

    #[test]
    fn planned_types_add_their_addend_as_the_general_loop_does() {
        use crate::arch::{aarch64::Aarch64, x86_64::X86_64};
        // The general loop adds the addend of an `Absolute` kind only, and
        // writes a planned address for `Symbol` and `Absolute` kinds only.
        for t in [Target::of::<X86_64>(0, 0), Target::of::<Aarch64>(0, 0)] {
            for (r_type, mask) in t.planned {
                let kind = (t.decode)(r_type);
                assert!(matches!(kind, Some(RelocKind::Symbol | RelocKind::Absolute)), "type {r_type}: {kind:?}");
                assert_eq!(mask == u64::MAX, kind == Some(RelocKind::Absolute), "type {r_type}");
                assert!(mask == 0 || mask == u64::MAX);
            }
        }
        assert_eq!(Target::of::<X86_64>(0, 0).planned[2], (object::elf::R_X86_64_64, u64::MAX));
        assert_eq!(Target::of::<Aarch64>(0, 0).planned[0], (object::elf::R_AARCH64_GLOB_DAT, u64::MAX));
    }

    #[test]
    fn relocation_ranges_follow_elf_dynamic_do_reloc() {
        // Separate tables; lazy or not, adjacent or not.
        assert_eq!(ranges(0x100, 0x30, 0x200, 0x18, true), [(0x100, 0x30), (0x200, 0x18)]);
        assert_eq!(ranges(0x100, 0x30, 0x200, 0x18, false), [(0x100, 0x30), (0x200, 0x18)]);
        // JMPREL right after RELA: one range when bound now.
        assert_eq!(ranges(0x100, 0x30, 0x130, 0x18, false), [(0x100, 0x48), (0, 0)]);
        assert_eq!(ranges(0x100, 0x30, 0x130, 0x18, true), [(0x100, 0x30), (0x130, 0x18)]);
        // DT_RELASZ covering JMPREL at its end is cut back.
        assert_eq!(ranges(0x100, 0x48, 0x130, 0x18, true), [(0x100, 0x30), (0x130, 0x18)]);
        // No DT_RELA.
        assert_eq!(ranges(0, 0, 0x130, 0x18, false), [(0x130, 0x18), (0, 0)]);
        assert_eq!(ranges(0, 0, 0x130, 0x18, true), [(0x130, 0), (0x130, 0x18)]);
        // No PLT.
        assert_eq!(ranges(0x100, 0x30, 0, 0, false), [(0x100, 0x30), (0, 0)]);
    }

    #[test]
    fn startup_order_is_reverse_init_order_with_libc_first_since_2_39() {
        // Program 0 needs 1 (libfoo) and 2 (libc); 1 needs 2.
        let initfini = [0, 1, 2, 3];
        assert_eq!(startup_order(&initfini, None), vec![3, 2, 1, 0]);
        assert_eq!(startup_order(&initfini, Some(1)), vec![1, 3, 2, 0]);
        assert!(!relocates_libc_first("2.36"));
        assert!(!relocates_libc_first("2.38"));
        assert!(relocates_libc_first("2.39"));
        assert!(relocates_libc_first("2.41"));
        assert!(relocates_libc_first("3.0"));
    }
}
