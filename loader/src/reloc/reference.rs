//! A slow, obviously correct reference relocator, to test the engine
//! against.
//!
//! The engine ([`super::Engine`]) is built for speed: relocation numbers
//! decoded into kinds once, GNU hash tables with their Bloom filters, a
//! cache of recent resolutions, a tight loop for `RELATIVE`. This module
//! computes the same thing the plain way, from the ELF and psABI
//! definitions and glibc's rules for symbol resolution, and writes
//! nothing: for one object it returns every write relocation should make,
//! as (address, expected value), computed from the unrelocated objects.
//! A test maps a real closure, asks this module what every object's
//! relocations should write, lets the engine relocate it, and compares
//! (see `cah-tests`' `reference_reloc` test).
//!
//! What "plain" means here:
//! - relocation numbers are this module's own table per machine, with the
//!   psABI formula of each (x86_64: `GLOB_DAT` and `JUMP_SLOT` are `S`,
//!   `64` is `S + A`; aarch64: `ABS64`, `GLOB_DAT`, `JUMP_SLOT` are all
//!   `S + A`), not the arch module's decoding;
//! - a symbol is looked up by walking the scope in order and, in each
//!   object, every symbol of its dynamic symbol table in index order,
//!   comparing names byte by byte: no hash table, no Bloom filter, no
//!   cache (each object's table is decoded into a plain list once, so the
//!   test runs in seconds rather than hours);
//! - a definition matches as glibc's `check_match` decides (no value, not
//!   a code or data type, the wrong name, the wrong version), a reference
//!   is classed by its relocation type as glibc's `elf_machine_type_class`
//!   classes it (`JUMP_SLOT` and the TLS relocations may not bind to an
//!   undefined symbol, `COPY` skips the executable), and `do_lookup_x`'s
//!   rules apply to what is found (hidden and internal definitions are
//!   passed over, `STB_GNU_UNIQUE` names are bound once per process);
//! - a reference that is local, or not of default visibility, binds to its
//!   own object (the gABI's rule for protected symbols, which ld-cah
//!   follows);
//! - `DT_SYMBOLIC` searches the object itself before the scope, as
//!   glibc's scope for such an object starts with it.
//!
//! What it shares with the engine: the mapped objects, their parsed
//! dynamic sections and version tables ([`crate::elf::version`]), how
//! many symbols each hash table covers (`symbols::symbol_count`: the ones
//! glibc can find, which a lookup scans), the TLS
//! module ids and offsets start-up assigned, and the IFUNC resolver
//! callback (a test passes a deterministic stub to both, so no code of
//! the objects runs).

use alloc::string::String;
use alloc::vec::Vec;

use object::elf::*;

use super::Resolve;
use crate::elf::symbols::Sym;
use crate::elf::version::VersionReq;
use crate::link::{Dso, DsoId, Kind, Namespace};

/// What one relocation write should leave in memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// A 64-bit word.
    Word(u64),
    /// `len` bytes copied from `from` (`R_*_COPY`): the definition's bytes
    /// once its own object is relocated, so they are read when comparing.
    Copy { from: usize, len: usize },
    /// A pointer to a `tls_index { module, offset }` (the second word of a
    /// TLS descriptor for a module outside static TLS).
    TlsIndex { module: u64, offset: u64 },
}

/// One write a relocation makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    pub at: usize,
    pub value: Value,
    /// Which relocation, for messages: table, index, type and symbol.
    pub what: String,
}

/// What kind of reference a relocation makes (glibc's
/// `elf_machine_type_class`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Normal,
    /// May not bind to an undefined symbol (a PLT slot, a TLS variable).
    Plt,
    /// `R_*_COPY`: never binds to the executable.
    Copy,
}

/// What a relocation type computes, by the psABI.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Formula {
    None,
    /// `B + A`.
    Relative,
    /// `S + A`.
    SymbolPlusAddend,
    /// `S`.
    Symbol,
    Copy,
    /// The word returned by the resolver at `B + A`.
    IRelative,
    DtpMod,
    /// `S + A`, an offset in the module's block.
    DtpOff,
    /// The offset of `S + A` from the thread pointer.
    TpOff,
    TlsDesc,
}

/// The relocation types of x86_64 and aarch64 that a dynamic loader
/// handles, by number, with their formula and class.
fn decode(machine: u16, r_type: u32) -> Option<(Formula, Class)> {
    use Class::*;
    use Formula::*;
    Some(match (machine, r_type) {
        (EM_X86_64, R_X86_64_NONE) | (EM_AARCH64, R_AARCH64_NONE) => (None, Normal),
        (EM_X86_64, R_X86_64_RELATIVE) | (EM_AARCH64, R_AARCH64_RELATIVE) => (Relative, Normal),
        (EM_X86_64, R_X86_64_64) | (EM_AARCH64, R_AARCH64_ABS64) | (EM_AARCH64, R_AARCH64_GLOB_DAT) => (SymbolPlusAddend, Normal),
        (EM_AARCH64, R_AARCH64_JUMP_SLOT) => (SymbolPlusAddend, Plt),
        (EM_X86_64, R_X86_64_GLOB_DAT) => (Symbol, Normal),
        (EM_X86_64, R_X86_64_JUMP_SLOT) => (Symbol, Plt),
        (EM_X86_64, R_X86_64_COPY) | (EM_AARCH64, R_AARCH64_COPY) => (Formula::Copy, Class::Copy),
        (EM_X86_64, R_X86_64_IRELATIVE) | (EM_AARCH64, R_AARCH64_IRELATIVE) => (IRelative, Normal),
        (EM_X86_64, R_X86_64_DTPMOD64) | (EM_AARCH64, R_AARCH64_TLS_DTPMOD) => (DtpMod, Plt),
        (EM_X86_64, R_X86_64_DTPOFF64) | (EM_AARCH64, R_AARCH64_TLS_DTPREL) => (DtpOff, Plt),
        (EM_X86_64, R_X86_64_TPOFF64) | (EM_AARCH64, R_AARCH64_TLS_TPREL) => (TpOff, Plt),
        (EM_X86_64, R_X86_64_TLSDESC) | (EM_AARCH64, R_AARCH64_TLSDESC) => (TlsDesc, Plt),
        _ => return Option::None,
    })
}

/// One entry of a dynamic symbol table, decoded.
#[derive(Clone, Default)]
struct Entry {
    name: Vec<u8>,
    sym: Sym,
    /// Its `DT_VERSYM` entry, if the object has that table.
    versym: Option<u16>,
}

/// Symbol `i` of object `id`'s dynamic symbol table, read field by field.
fn entry(ns: &Namespace, id: DsoId, i: usize) -> Option<Entry> {
    let d = &ns.objs[id];
    let di = &d.dyn_info;
    let b = d.img.bytes(di.symtab.checked_add(i.checked_mul(24)?)?, 24)?;
    let le32 = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    let le64 = |o: usize| u64::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3], b[o + 4], b[o + 5], b[o + 6], b[o + 7]]);
    let sym = Sym {
        st_name: le32(0),
        st_info: b[4],
        st_other: b[5],
        st_shndx: u16::from_le_bytes([b[6], b[7]]),
        st_value: le64(8),
        st_size: le64(16),
    };
    let name = d.img.cstr(di.strtab.checked_add(sym.st_name as usize)?, di.strtab.saturating_add(di.strsz))?.to_vec();
    let versym = if di.versym != 0 { Some(d.img.u16(di.versym + i * 2)?) } else { None };
    Some(Entry { name, sym, versym })
}

/// A definition found for a reference: object and symbol index.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Found {
    obj: DsoId,
    idx: usize,
}

/// How many relocations of each kind the reference computed: a test
/// checks that the closure it ran on exercised each.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    pub relr: usize,
    pub relative: usize,
    /// `S` or `S + A` bound to a definition (not an IFUNC).
    pub symbolic: usize,
    /// ... bound to an undefined weak symbol.
    pub weak_undefined: usize,
    /// ... bound to an `STT_GNU_IFUNC`.
    pub ifunc: usize,
    pub irelative: usize,
    pub copy: usize,
    /// `DTPMOD`, `DTPOFF`, `TPOFF`, `TLSDESC`.
    pub tls: usize,
    /// PLT slots of missing functions (lazy binding's error stub).
    pub missing: usize,
    /// Lookups that met an `STB_GNU_UNIQUE` definition.
    pub unique: usize,
    /// Lookups that bound to another object than the first in the scope
    /// that has the name: versions, classes or visibility decided.
    pub passed_over: usize,
}

/// The reference relocator for one namespace and scope.
pub struct Reference<'a> {
    ns: &'a Namespace,
    scope: &'a [DsoId],
    machine: u16,
    /// The addresses the engine writes as TLS descriptor entry points.
    tlsdesc_static: u64,
    tlsdesc_dynamic: u64,
    /// `LD_BIND_NOW`.
    pub bind_now: bool,
    resolve_ifunc: Resolve<'a>,
    /// Each object's dynamic symbols, decoded on first use.
    tables: Vec<Option<Vec<Entry>>>,
    /// `STB_GNU_UNIQUE` names bound so far, and to what, in the order the
    /// lookups happened (so objects must be asked for in relocation order).
    unique: Vec<(Vec<u8>, Found)>,
    pub counts: Counts,
}

impl<'a> Reference<'a> {
    pub fn new(ns: &'a Namespace, scope: &'a [DsoId], machine: u16, tlsdesc: (usize, usize), resolve_ifunc: Resolve<'a>) -> Reference<'a> {
        Reference {
            ns,
            scope,
            machine,
            tlsdesc_static: tlsdesc.0 as u64,
            tlsdesc_dynamic: tlsdesc.1 as u64,
            bind_now: false,
            resolve_ifunc,
            tables: (0..ns.objs.len()).map(|_| None).collect(),
            unique: Vec::new(),
            counts: Counts::default(),
        }
    }

    /// Decodes object `id`'s dynamic symbol table: the symbols its hash
    /// table covers, every one in order (the ones a lookup may find).
    fn table(&mut self, id: DsoId) -> &[Entry] {
        if self.tables[id].is_none() {
            let d = &self.ns.objs[id];
            self.tables[id] = Some((0..covered(d)).map(|i| entry(self.ns, id, i).unwrap_or_default()).collect());
        }
        self.tables[id].as_deref().unwrap_or(&[])
    }

    /// Symbol `idx` of object `id`, which a relocation names: it may lie
    /// past the symbols a hash table covers (an undefined symbol of an
    /// executable whose GNU hash table is empty).
    fn referenced(&mut self, id: DsoId, idx: usize) -> Option<Entry> {
        match self.table(id).get(idx) {
            Some(e) => Some(e.clone()),
            None => entry(self.ns, id, idx),
        }
    }

    /// glibc's `check_match` for symbol `idx` of object `obj`: whether it
    /// defines `name` (in version `want`) for a reference of `class`.
    /// `versioned` counts, for an unversioned reference, the non-hidden
    /// versioned definitions passed over, and remembers the first.
    fn matches(
        &mut self,
        obj: DsoId,
        idx: usize,
        name: &[u8],
        want: Option<&VersionReq>,
        class: Class,
        versioned: &mut (u32, Option<usize>),
    ) -> bool {
        let versions = &self.ns.objs[obj].versions;
        let e = &self.table(obj)[idx];
        let s = e.sym;
        if s.st_value == 0 && s.st_shndx != SHN_ABS && s.kind() != STT_TLS {
            return false;
        }
        if class == Class::Plt && s.st_shndx == SHN_UNDEF {
            return false;
        }
        if !matches!(s.kind(), STT_NOTYPE | STT_OBJECT | STT_FUNC | STT_COMMON | STT_TLS | STT_GNU_IFUNC) {
            return false;
        }
        // Local symbols are no definition for anyone else (a GNU hash
        // table does not even hold them).
        if s.bind() == STB_LOCAL {
            return false;
        }
        if e.name.len() != name.len() || (0..name.len()).any(|i| e.name[i] != name[i]) {
            return false;
        }
        let Some(vs) = e.versym else { return true };
        match want {
            Some(w) => {
                // The version asked for, or a definition of no named
                // version, unless either side is hidden.
                let named = versions.get(&self.ns.objs[obj].img, vs & 0x7fff);
                let same = named.is_some_and(|v| v.hash == w.hash && v.name == w.name);
                same || !(w.hidden || named.is_some() || vs & 0x8000 != 0)
            }
            None => {
                // An unversioned reference takes the global or base
                // version; a single non-hidden other version will do if
                // nothing else matches.
                if vs & 0x7fff >= 3 {
                    if vs & 0x8000 == 0 {
                        versioned.0 += 1;
                        if versioned.0 == 1 {
                            versioned.1 = Some(idx);
                        }
                    }
                    return false;
                }
                true
            }
        }
    }

    /// glibc's `do_lookup_x` over `scope`: the first object, in order,
    /// that defines `name`.
    fn search(&mut self, scope: &[DsoId], name: &[u8], want: Option<&VersionReq>, class: Class, referrer: Found) -> Option<Found> {
        // Whether an earlier object defines the name but did not match.
        let mut passed = false;
        for &obj in scope {
            let d = &self.ns.objs[obj];
            if d.removed || (class == Class::Copy && d.kind == Kind::Main) {
                continue;
            }
            let mut versioned = (0, None);
            let mut found = None;
            for idx in 0..covered(d) {
                if self.matches(obj, idx, name, want, class, &mut versioned) {
                    found = Some(idx);
                    break;
                }
            }
            if found.is_none() && versioned.0 == 1 {
                found = versioned.1;
            }
            let Some(idx) = found else {
                passed |= self.table(obj).iter().any(|e| e.name == name && e.sym.st_shndx != SHN_UNDEF);
                continue;
            };
            let s = self.table(obj)[idx].sym;
            if matches!(s.visibility(), STV_HIDDEN | STV_INTERNAL) {
                passed = true;
                continue;
            }
            self.counts.passed_over += usize::from(passed);
            let here = Found { obj, idx };
            if s.bind() == STB_GNU_UNIQUE {
                self.counts.unique += 1;
                // One definition per process: the first one bound.
                if let Some((_, first)) = self.unique.iter().find(|(n, _)| n == name) {
                    return Some(if class == Class::Copy { here } else { *first });
                }
                // A copy relocation makes the executable's copy the one.
                let entered = if class == Class::Copy { referrer } else { here };
                self.unique.push((name.to_vec(), entered));
            }
            return Some(here);
        }
        None
    }

    /// The definition symbol `symidx` of object `id` binds to; `None` for
    /// an undefined weak reference; `Err` for an undefined one.
    fn bind(&mut self, id: DsoId, symidx: usize, class: Class) -> Result<Option<Found>, String> {
        let ns = self.ns;
        let d = &ns.objs[id];
        let Some(r) = self.referenced(id, symidx) else {
            return Err(alloc::format!("symbol index {symidx} outside the symbol table"));
        };
        let (rsym, rversym, name) = (r.sym, r.versym, r.name);
        if symidx == 0 || rsym.bind() == STB_LOCAL || rsym.visibility() != STV_DEFAULT {
            return Ok(Some(Found { obj: id, idx: symidx }));
        }
        let want = rversym.and_then(|v| d.versions.get(&d.img, v & 0x7fff));
        let mut found = None;
        if d.dyn_info.symbolic {
            found = self.search(&[id], &name, want.as_ref(), class, Found { obj: id, idx: symidx });
        }
        if found.is_none() {
            found = self.search(self.scope, &name, want.as_ref(), class, Found { obj: id, idx: symidx });
        }
        match found {
            Some(f) => Ok(Some(f)),
            None if rsym.bind() == STB_WEAK => Ok(None),
            None => Err(alloc::format!("undefined symbol: {}", String::from_utf8_lossy(&name))),
        }
    }

    /// The symbol of a definition.
    fn sym(&mut self, f: Found) -> Sym {
        self.referenced(f.obj, f.idx).map_or(Sym::default(), |e| e.sym)
    }

    /// The run-time address of a definition (`B + S`, or `S` for
    /// `SHN_ABS`).
    fn address(&mut self, f: Found) -> u64 {
        let s = self.sym(f);
        if s.st_shndx == SHN_ABS {
            s.st_value
        } else {
            (self.ns.objs[f.obj].base as u64).wrapping_add(s.st_value)
        }
    }

    /// Every write object `id`'s relocations should make: `DT_RELR`, then
    /// `DT_RELA` and `DT_JMPREL` entry by entry. Writes to the same place
    /// come in the order the relocations are listed.
    pub fn expected(&mut self, id: DsoId) -> Result<Vec<Write>, String> {
        let ns = self.ns;
        let d = &ns.objs[id];
        let di = &d.dyn_info;
        let base = d.base as u64;
        let mut out = Vec::new();
        // DT_RELR: an even entry is the offset of a word to relocate; an
        // odd one a bitmap of the 63 words after the last place.
        let mut next = 0u64;
        for i in 0..di.relrsz / 8 {
            let e = d.img.u64(di.relr + i * 8).ok_or("DT_RELR outside the object")?;
            let mut places = Vec::new();
            if e & 1 == 0 {
                places.push(e);
                next = e + 8;
            } else {
                for bit in 1..64 {
                    if e >> bit & 1 == 1 {
                        places.push(next + (bit - 1) * 8);
                    }
                }
                next += 63 * 8;
            }
            for off in places {
                let at = d.base + off as usize;
                let v = d.img.u64(at).ok_or("DT_RELR place outside the object")?;
                out.push(Write { at, value: Value::Word(v.wrapping_add(base)), what: alloc::format!("DT_RELR entry {i}") });
                self.counts.relr += 1;
            }
        }
        // A missing function is an error only when called, unless the
        // object or the process binds now.
        let lazy = !self.bind_now && di.flags & u64::from(DF_BIND_NOW) == 0 && di.flags_1 & u64::from(DF_1_NOW) == 0;
        let mut tables = Vec::new();
        // DT_RELASZ may include DT_JMPREL at its end (glibc then relocates
        // those entries once, as PLT entries).
        let mut relasz = di.relasz;
        if di.rela != 0 && di.jmprel != 0 && di.rela + relasz == di.jmprel + di.pltrelsz {
            relasz -= di.pltrelsz;
        }
        if di.rela != 0 {
            tables.push(("DT_RELA", di.rela, relasz, false));
        }
        if di.jmprel != 0 {
            tables.push(("DT_JMPREL", di.jmprel, di.pltrelsz, true));
        }
        for (table, start, size, plt) in tables {
            for i in 0..size / 24 {
                let at = start + i * 24;
                let (Some(offset), Some(info), Some(addend)) = (d.img.u64(at), d.img.u64(at + 8), d.img.u64(at + 16)) else {
                    return Err(alloc::format!("{table} entry {i} outside the object"));
                };
                let (r_type, symidx) = (info as u32, (info >> 32) as usize);
                let place = d.base.wrapping_add(offset as usize);
                let sym_name = self.referenced(id, symidx).map(|e| String::from_utf8_lossy(&e.name).into_owned()).unwrap_or_default();
                let what = alloc::format!("{table} entry {i} (type {r_type}, symbol {symidx} `{sym_name}')");
                let Some((formula, class)) = decode(self.machine, r_type) else {
                    return Err(alloc::format!("{what}: unsupported relocation type"));
                };
                let word = |v: u64| Write { at: place, value: Value::Word(v), what: what.clone() };
                match formula {
                    Formula::None => {}
                    Formula::Relative => {
                        self.counts.relative += 1;
                        out.push(word(base.wrapping_add(addend)));
                    }
                    Formula::IRelative => {
                        self.counts.irelative += 1;
                        let v = (self.resolve_ifunc)(d.base.wrapping_add(addend as usize));
                        out.push(word(v as u64));
                    }
                    Formula::Symbol | Formula::SymbolPlusAddend => {
                        let a = if formula == Formula::SymbolPlusAddend { addend } else { 0 };
                        let f = match self.bind(id, symidx, class) {
                            Ok(f) => f,
                            Err(e) if plt && lazy && e.starts_with("undefined symbol") => {
                                self.counts.missing += 1;
                                out.push(word(super::missing_function as *const () as u64));
                                continue;
                            }
                            Err(e) => return Err(alloc::format!("{what}: {e}")),
                        };
                        let s = match f {
                            None => {
                                self.counts.weak_undefined += 1;
                                0
                            }
                            Some(f) => {
                                let def = self.sym(f);
                                let addr = self.address(f);
                                if def.kind() == STT_GNU_IFUNC && def.st_shndx != SHN_UNDEF {
                                    self.counts.ifunc += 1;
                                    (self.resolve_ifunc)(addr as usize) as u64
                                } else {
                                    self.counts.symbolic += 1;
                                    addr
                                }
                            }
                        };
                        out.push(word(s.wrapping_add(a)));
                    }
                    Formula::Copy => {
                        let f = self.bind(id, symidx, class).map_err(|e| alloc::format!("{what}: {e}"))?;
                        let f = f.ok_or_else(|| alloc::format!("{what}: copy relocation against an undefined symbol"))?;
                        let from = self.address(f) as usize;
                        let size = self.sym(f).st_size;
                        let len = self.referenced(id, symidx).map_or(0, |e| e.sym.st_size).min(size) as usize;
                        self.counts.copy += 1;
                        out.push(Write { at: place, value: Value::Copy { from, len }, what: what.clone() });
                    }
                    Formula::DtpMod | Formula::DtpOff | Formula::TpOff | Formula::TlsDesc => {
                        let f = self.bind(id, symidx, class).map_err(|e| alloc::format!("{what}: {e}"))?;
                        let Some(f) = f else {
                            return Err(alloc::format!("{what}: TLS reference to an undefined weak symbol (not modelled)"));
                        };
                        self.counts.tls += 1;
                        let s = self.sym(f).st_value;
                        let module = ns.objs[f.obj].tls.ok_or_else(|| alloc::format!("{what}: the definer has no PT_TLS"))?;
                        // Variant I (aarch64) blocks lie above the thread
                        // pointer, variant II (x86_64) below it.
                        let tpoff = |off: usize| match self.machine {
                            EM_AARCH64 => s.wrapping_add(addend).wrapping_add(off as u64),
                            _ => s.wrapping_add(addend).wrapping_sub(off as u64),
                        };
                        match (formula, module.offset) {
                            (Formula::DtpMod, _) => out.push(word(module.modid as u64)),
                            (Formula::DtpOff, _) => out.push(word(s.wrapping_add(addend))),
                            (Formula::TpOff, Some(off)) => out.push(word(tpoff(off))),
                            (Formula::TpOff, None) => return Err(alloc::format!("{what}: initial-exec TLS outside static TLS")),
                            (_, Some(off)) => {
                                out.push(word(self.tlsdesc_static));
                                out.push(Write { at: place + 8, value: Value::Word(tpoff(off)), what: what.clone() });
                            }
                            (_, None) => {
                                out.push(word(self.tlsdesc_dynamic));
                                let index = Value::TlsIndex { module: module.modid as u64, offset: s.wrapping_add(addend) };
                                out.push(Write { at: place + 8, value: index, what: what.clone() });
                            }
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

/// One difference between what the engine wrote and what the reference
/// expects.
#[derive(Debug)]
pub struct Mismatch {
    pub obj: String,
    pub at: usize,
    pub what: String,
    pub expected: String,
    pub found: String,
}

/// The bytes of object `id`'s writable segments, before relocation, for
/// [`compare`].
pub fn snapshot(ns: &Namespace, id: DsoId) -> Vec<(usize, Vec<u8>)> {
    let d = &ns.objs[id];
    d.phdrs
        .iter()
        .filter(|p| p.p_type == PT_LOAD && p.p_flags & PF_W != 0)
        .filter_map(|p| {
            let at = d.base.wrapping_add(p.p_vaddr as usize);
            Some((at, d.img.bytes(at, p.p_memsz as usize)?.to_vec()))
        })
        .collect()
}

/// Compares object `id`'s memory, relocated by the engine, with the
/// reference's `writes` (the last write to a place wins) and with the
/// `before` snapshot: every expected value must be there, and every other
/// byte of the writable segments must be as it was. `read_index` reads
/// the two words of a `tls_index` the engine allocated (memory no object's
/// image covers; the caller knows whether it may be read).
pub fn compare(
    ns: &Namespace,
    id: DsoId,
    writes: &[Write],
    before: &[(usize, Vec<u8>)],
    read_index: &dyn Fn(usize) -> Option<(u64, u64)>,
) -> Vec<Mismatch> {
    let d = &ns.objs[id];
    let mut out = Vec::new();
    let mut covered: Vec<(usize, usize)> = Vec::new();
    let last = |at: usize| writes.iter().rposition(|w| w.at == at);
    for (i, w) in writes.iter().enumerate() {
        if last(w.at) != Some(i) {
            continue;
        }
        let miss = |expected: String, found: String| Mismatch {
            obj: String::from(d.display_name()),
            at: w.at.wrapping_sub(d.base),
            what: w.what.clone(),
            expected,
            found,
        };
        match w.value {
            Value::Word(v) => {
                covered.push((w.at, 8));
                match d.img.u64(w.at) {
                    Some(got) if got == v => {}
                    Some(got) => out.push(miss(alloc::format!("{v:#x}"), alloc::format!("{got:#x}"))),
                    None => out.push(miss(alloc::format!("{v:#x}"), String::from("an unreadable place"))),
                }
            }
            Value::Copy { from, len } => {
                covered.push((w.at, len));
                let def = ns.objs.iter().find(|o| o.img.is_readable(from, len));
                let want = def.and_then(|o| o.img.bytes(from, len));
                let got = d.img.bytes(w.at, len);
                if want.is_none() || want != got {
                    out.push(miss(alloc::format!("a copy of {len} bytes at {from:#x}"), String::from("other bytes")));
                }
            }
            Value::TlsIndex { module, offset } => {
                covered.push((w.at, 8));
                let ptr = d.img.u64(w.at).unwrap_or(0) as usize;
                let got = read_index(ptr);
                if got != Some((module, offset)) {
                    out.push(miss(alloc::format!("&{{{module}, {offset:#x}}}"), alloc::format!("{got:x?} at {ptr:#x}")));
                }
            }
        }
    }
    // Nothing else changed.
    for (start, bytes) in before {
        let now = d.img.bytes(*start, bytes.len()).unwrap_or(&[]);
        for (i, (&b, &n)) in bytes.iter().zip(now).enumerate() {
            let at = start + i;
            if b != n && !covered.iter().any(|&(s, l)| at >= s && at < s + l) {
                out.push(Mismatch {
                    obj: String::from(d.display_name()),
                    at: at.wrapping_sub(d.base),
                    what: String::from("no relocation writes here"),
                    expected: alloc::format!("{b:#04x} (unchanged)"),
                    found: alloc::format!("{n:#04x}"),
                });
                break;
            }
        }
    }
    out
}

/// The symbols of `d` a lookup may find (the ones its hash table covers).
fn covered(d: &Dso) -> usize {
    crate::elf::symbols::symbol_count(&d.img, &d.dyn_info).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relocation_types_have_the_psabi_formula_and_glibc_class() {
        let f = |m, t| decode(m, t).map(|(f, c)| (f as u8, c as u8));
        let (fc, pc, n) = (Formula::Copy as u8, Class::Plt as u8, Class::Normal as u8);
        // x86_64: GLOB_DAT and JUMP_SLOT are S, 64 is S + A.
        assert_eq!(f(EM_X86_64, 6), Some((Formula::Symbol as u8, n)));
        assert_eq!(f(EM_X86_64, 7), Some((Formula::Symbol as u8, pc)));
        assert_eq!(f(EM_X86_64, 1), Some((Formula::SymbolPlusAddend as u8, n)));
        assert_eq!(f(EM_X86_64, 5), Some((fc, Class::Copy as u8)));
        // aarch64: ABS64, GLOB_DAT and JUMP_SLOT are all S + A.
        assert_eq!(f(EM_AARCH64, 257), Some((Formula::SymbolPlusAddend as u8, n)));
        assert_eq!(f(EM_AARCH64, 1025), Some((Formula::SymbolPlusAddend as u8, n)));
        assert_eq!(f(EM_AARCH64, 1026), Some((Formula::SymbolPlusAddend as u8, pc)));
        // TLS references never bind to an undefined symbol (x86_64
        // DTPMOD64 16 .. TPOFF64 18, TLSDESC 36; aarch64 1028 .. 1031).
        for (m, t) in [(EM_X86_64, 16), (EM_X86_64, 17), (EM_X86_64, 18), (EM_X86_64, 36), (EM_AARCH64, 1028), (EM_AARCH64, 1031)] {
            assert_eq!(decode(m, t).map(|(_, c)| c as u8), Some(pc), "{m} {t}");
        }
        // Types a dynamic loader never sees are refused, and numbers are
        // not shared across machines (1025 is no x86_64 type).
        assert!(decode(EM_X86_64, 2).is_none() && decode(EM_X86_64, 1025).is_none() && decode(EM_AARCH64, 6).is_none());
    }
}
