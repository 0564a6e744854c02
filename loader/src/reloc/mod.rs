//! The relocation engine.
//!
//! Per object: `DT_RELR` and `R_*_RELATIVE` in tight loops, then symbolic
//! relocations, each (object, symbol index) resolved once. Relocations
//! whose value comes from running code (IRELATIVE, and symbols bound to an
//! `STT_GNU_IFUNC` definition) are deferred until every object is
//! relocated, so a resolver never runs before the data it reads is ready.
//! Every write goes through the object's [`Image`](crate::elf::Image), so a
//! relocation outside the object's writable segments is an error, not a
//! write.

use alloc::vec;
use alloc::vec::Vec;

use object::elf::*;

use crate::arch::{ArchInfo, RelocKind, TlsVariant};
use crate::diag::Error;
use crate::elf::symbols::{symbol, Query, Sym};
use crate::err;
use crate::link::lookup::{self, Class, Def, UniqueTable};
use crate::link::{DsoId, Namespace};
use crate::tls;

/// A relocation whose value is computed by calling a resolver.
#[derive(Clone, Copy, Debug)]
pub struct Deferred {
    pub obj: DsoId,
    pub place: usize,
    pub resolver: usize,
    pub addend: u64,
}

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
}

impl Target {
    pub fn of<A: ArchInfo>(tlsdesc_static: usize, tlsdesc_dynamic: usize) -> Target {
        Target { relative: A::R_RELATIVE, variant: A::TLS_VARIANT, decode: A::reloc_kind, tlsdesc_static, tlsdesc_dynamic }
    }
}

/// Counters for `CAH_DEBUG=statistics`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub relative: usize,
    pub symbolic: usize,
    pub lookups: usize,
}

/// Relocation state across objects.
pub struct Engine<'a> {
    pub ns: &'a Namespace,
    pub target: Target,
    pub unique: UniqueTable,
    pub deferred: Vec<Deferred>,
    pub stats: Stats,
    /// Bind symbols of this scope (the global scope at start-up).
    pub scope: &'a [DsoId],
    /// `LD_BIND_NOW`: a PLT slot whose symbol is missing is an error now,
    /// not when (if ever) it is called.
    pub bind_now: bool,
}

/// A resolved symbol reference: `None` for an undefined weak reference.
type Resolved = Option<Def>;

impl<'a> Engine<'a> {
    pub fn new(ns: &'a Namespace, scope: &'a [DsoId], target: Target) -> Engine<'a> {
        Engine { ns, target, unique: UniqueTable::default(), deferred: Vec::new(), stats: Stats::default(), scope, bind_now: false }
    }

    /// Applies every relocation of object `id` except the deferred ones.
    pub fn relocate(&mut self, id: DsoId) -> Result<(), Error> {
        let d = &self.ns.objs[id];
        let name = d.display_name();
        if d.dyn_info.textrel {
            return Err(err!(name, "text relocations (DT_TEXTREL) are not supported"));
        }
        self.apply_relr(id)?;
        let di = &d.dyn_info;
        // One resolution per (symbol, class): a PLT slot and a data
        // reference to the same symbol can bind differently (see Class).
        let mut cache: Vec<[Option<Resolved>; 2]> = vec![[None, None]; d.nsyms.min(1 << 22)];
        // glibc binds PLT slots lazily unless asked not to; ld-cah binds
        // everything now, but keeps lazy binding's one visible effect: a
        // missing function that is never called is not an error.
        let lazy_plt = !self.bind_now
            && di.flags & u64::from(DF_BIND_NOW) == 0
            && di.flags_1 & u64::from(DF_1_NOW) == 0;
        for (start, size, plt) in [(di.rela, di.relasz, false), (di.jmprel, di.pltrelsz, true)] {
            if start == 0 || size == 0 {
                continue;
            }
            let n = size / 24;
            for i in 0..n {
                let at = start + i * 24;
                let (Some(off), Some(info), Some(addend)) = (d.img.u64(at), d.img.u64(at + 8), d.img.u64(at + 16)) else {
                    return Err(err!(name, "relocation table lies outside the object"));
                };
                let r_type = info as u32;
                let place = d.base.wrapping_add(off as usize);
                if r_type == self.target.relative {
                    self.stats.relative += 1;
                    if !d.img.write_u64(place, (d.base as u64).wrapping_add(addend)) {
                        return Err(bad_place(name, place, d.base));
                    }
                    continue;
                }
                self.stats.symbolic += 1;
                match self.apply_one(id, r_type, (info >> 32) as u32, place, addend, plt, &mut cache) {
                    Err(e) if plt && lazy_plt && e.message.starts_with("undefined symbol") => {
                        if !d.img.write_u64(place, missing_function as *const () as u64) {
                            return Err(bad_place(name, place, d.base));
                        }
                    }
                    r => r?,
                }
            }
        }
        Ok(())
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
                let mut bits = entry >> 1;
                let mut place = next;
                while bits != 0 {
                    if bits & 1 != 0 {
                        let v = d.img.u64(place).unwrap_or(0);
                        if !d.img.write_u64(place, v.wrapping_add(base)) {
                            return Err(bad_place(d.display_name(), place, d.base));
                        }
                    }
                    bits >>= 1;
                    place += 8;
                }
                next += 63 * 8;
            }
        }
        Ok(())
    }

    /// Resolves symbol `symidx` referenced by object `id`.
    fn resolve(&mut self, id: DsoId, symidx: u32, class: Class, cache: &mut [[Option<Resolved>; 2]]) -> Result<(Sym, Resolved), Error> {
        let d = &self.ns.objs[id];
        let Some(sym) = symbol(&d.img, &d.dyn_info, symidx) else {
            return Err(err!(d.display_name(), "relocation names symbol {} outside the symbol table", symidx));
        };
        // Local symbols, and non-default visibility, bind to the object itself.
        if symidx == 0 || sym.bind() == STB_LOCAL || sym.visibility() != STV_DEFAULT {
            return Ok((sym, Some(Def { obj: id, sym, idx: symidx })));
        }
        let slot = if class == Class::Plt { 1 } else { 0 };
        let cacheable = class != Class::Copy;
        if cacheable {
            if let Some(Some(r)) = cache.get(symidx as usize).map(|c| c[slot]) {
                return Ok((sym, r));
            }
        }
        let Some(name) = d.string(sym.st_name as usize) else {
            return Err(err!(d.display_name(), "symbol name outside the string table"));
        };
        let want = if d.dyn_info.versym != 0 {
            d.img.u16(d.dyn_info.versym + symidx as usize * 2).and_then(|v| d.versions.get(v & 0x7fff))
        } else {
            None
        };
        let q = Query::new(name);
        self.stats.lookups += 1;
        let skip = if class == Class::Copy { Some(id) } else { None };
        let mut found = lookup::lookup(self.ns, &mut self.unique, self.scope, &q, want, skip, class);
        if found.is_none() && d.dyn_info.symbolic {
            found = lookup::lookup(self.ns, &mut self.unique, &[id], &q, want, skip, class);
        }
        let r = match found {
            Some(def) => Some(def),
            None if sym.bind() == STB_WEAK => None,
            None => {
                let ver = want.map(|w| alloc::format!(", version {}", crate::diag::show(&w.name))).unwrap_or_default();
                return Err(err!(d.display_name(), "undefined symbol: {}{}", crate::diag::show(name), ver));
            }
        };
        if cacheable {
            if let Some(c) = cache.get_mut(symidx as usize) {
                c[slot] = Some(r);
            }
        }
        Ok((sym, r))
    }

    fn apply_one(
        &mut self,
        id: DsoId,
        r_type: u32,
        symidx: u32,
        place: usize,
        addend: u64,
        plt: bool,
        cache: &mut [[Option<Resolved>; 2]],
    ) -> Result<(), Error> {
        let ns = self.ns;
        let d = &ns.objs[id];
        let name = d.display_name();
        let Some(kind) = (self.target.decode)(r_type) else {
            return Err(err!(name, "unsupported relocation type {}", r_type));
        };
        let write = |v: u64| if d.img.write_u64(place, v) { Ok(()) } else { Err(bad_place(name, place, d.base)) };
        match kind {
            RelocKind::None => Ok(()),
            RelocKind::Relative => write((d.base as u64).wrapping_add(addend)),
            RelocKind::IRelative => {
                self.deferred.push(Deferred { obj: id, place, resolver: d.base.wrapping_add(addend as usize), addend: 0 });
                Ok(())
            }
            RelocKind::Absolute | RelocKind::Symbol => {
                // PLT slots (the DT_JMPREL table) never bind to a
                // non-PIC executable's PLT stub, data references may (that
                // stub is the function's canonical address).
                let class = if plt { Class::Plt } else { Class::Normal };
                let (_, r) = self.resolve(id, symidx, class, cache)?;
                let add = if kind == RelocKind::Absolute { addend } else { 0 };
                match r {
                    None => write(add),
                    Some(def) if def.sym.kind() == STT_GNU_IFUNC && def.sym.st_shndx != SHN_UNDEF => {
                        self.deferred.push(Deferred { obj: id, place, resolver: def.address(ns), addend: add });
                        Ok(())
                    }
                    Some(def) => write((def.address(ns) as u64).wrapping_add(add)),
                }
            }
            RelocKind::Copy => {
                let (sym, r) = self.resolve(id, symidx, Class::Copy, cache)?;
                let Some(def) = r else {
                    return Err(err!(name, "copy relocation against an undefined symbol"));
                };
                let len = sym.st_size.min(def.sym.st_size) as usize;
                let from = &ns.objs[def.obj].img;
                if !d.img.copy_from(place, from, def.address(ns), len) {
                    return Err(bad_place(name, place, d.base));
                }
                Ok(())
            }
            RelocKind::DtpMod => {
                let (_, r) = self.resolve(id, symidx, Class::Normal, cache)?;
                let obj = r.map_or(id, |def| def.obj);
                match ns.objs[obj].tls {
                    Some(m) => write(m.modid as u64),
                    None if r.is_none() => write(0),
                    None => Err(err!(name, "TLS relocation against an object without TLS")),
                }
            }
            RelocKind::DtpOff => {
                let (_, r) = self.resolve(id, symidx, Class::Normal, cache)?;
                write(r.map_or(0, |def| def.sym.st_value).wrapping_add(addend))
            }
            RelocKind::TpOff | RelocKind::TlsDesc => {
                let (_, r) = self.resolve(id, symidx, Class::Normal, cache)?;
                let (obj, value) = r.map_or((id, 0), |def| (def.obj, def.sym.st_value));
                let Some(offset) = ns.objs[obj].tls.and_then(|m| m.offset) else {
                    // A module in dynamic TLS: descriptors can reach it
                    // through __tls_get_addr; initial-exec code cannot.
                    if let (RelocKind::TlsDesc, Some(m)) = (kind, ns.objs[obj].tls.filter(|m| m.modid != 0)) {
                        let ti = alloc::boxed::Box::leak(alloc::boxed::Box::new(tls::TlsIndex {
                            module: m.modid,
                            offset: value.wrapping_add(addend) as usize,
                        }));
                        write(self.target.tlsdesc_dynamic as u64)?;
                        return if d.img.write_u64(place + 8, ti as *const tls::TlsIndex as u64) {
                            Ok(())
                        } else {
                            Err(bad_place(name, place + 8, d.base))
                        };
                    }
                    return Err(err!(name, "cannot allocate memory in static TLS block"));
                };
                let tpoff = tls::tp_offset(self.target.variant, offset, value.wrapping_add(addend));
                if kind == RelocKind::TpOff {
                    write(tpoff)
                } else {
                    write(self.target.tlsdesc_static as u64)?;
                    if d.img.write_u64(place + 8, tpoff) {
                        Ok(())
                    } else {
                        Err(bad_place(name, place + 8, d.base))
                    }
                }
            }
        }
    }
}

/// Where a PLT slot of a missing function points: calling it is the error
/// glibc's lazy binding would report at that moment.
extern "C" fn missing_function() -> ! {
    crate::diag::fatal(&crate::err!("ld-cah.so", "symbol lookup error: a function whose symbol was not found at start-up was called"))
}

fn bad_place(name: &str, place: usize, base: usize) -> Error {
    err!(name, "relocation at offset {:#x} lies outside the writable segments", place.wrapping_sub(base))
}
