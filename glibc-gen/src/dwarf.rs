//! DWARF: a small type model, enough for offsets and sizes.

use crate::spec::Tag;
use crate::Elf;
use gimli::{AttributeValue, EndianSlice, LittleEndian, Reader, UnitOffset};
use object::{Object, ObjectSection};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, PartialEq)]
pub enum Ty {
    /// Base types, pointers, enums.
    Scalar { size: u64 },
    /// Structs and unions.
    Record { size: u64, members: Vec<Member> },
    /// `len` elements (outermost dimension) of `stride` bytes.
    Array { stride: u64, len: u64 },
    /// `void`, functions.
    Unsized,
}

impl Ty {
    pub fn size(&self) -> u64 {
        match self {
            Ty::Scalar { size } | Ty::Record { size, .. } => *size,
            Ty::Array { stride, len } => stride * len,
            Ty::Unsized => 0,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    name: Option<String>,
    /// Byte offset in the containing record (of the storage unit for bit-fields).
    off: u64,
    ty: Ty,
    /// Bit-field: (bit offset from the start of the containing record, width).
    bits: Option<(u64, u64)>,
}

pub type R<'a> = EndianSlice<'a, LittleEndian>;

/// Where a type is defined: (unit index, DIE offset in the unit).
pub type Site = (usize, UnitOffset);

pub struct DebugInfo<'a> {
    what: String,
    dwarf: gimli::Dwarf<R<'a>>,
    units: Vec<gimli::Unit<R<'a>>>,
}

/// Section data of one debug file, decompressed (Debian compresses them).
pub fn load_sections(elf: &Elf) -> Result<gimli::DwarfSections<Vec<u8>>, String> {
    let file = object::File::parse(&*elf.data).map_err(|e| e.to_string())?;
    gimli::DwarfSections::load(|id| -> Result<Vec<u8>, String> {
        match file.section_by_name(id.name()) {
            Some(s) => s.uncompressed_data().map(|d| d.into_owned()).map_err(|e| format!("{}: {}: {e}", elf.path.display(), id.name())),
            None => Ok(Vec::new()),
        }
    })
}

impl<'a> DebugInfo<'a> {
    pub fn new(what: &str, sections: &'a gimli::DwarfSections<Vec<u8>>) -> Result<Self, String> {
        let dwarf = sections.borrow(|s| EndianSlice::new(s, LittleEndian));
        let mut units = Vec::new();
        let mut headers = dwarf.units();
        while let Some(h) = headers.next().map_err(|e| format!("{what}: {e}"))? {
            units.push(dwarf.unit(h).map_err(|e| format!("{what}: {e}"))?);
        }
        Ok(DebugInfo { what: what.into(), dwarf, units })
    }

    /// Every complete top-level definition of each wanted (tag, name), in
    /// unit order: (unit index, DIE offset).
    fn index(&self, wanted: &BTreeSet<(Tag, String)>) -> Result<BTreeMap<(Tag, String), Vec<Site>>, String> {
        let mut found: BTreeMap<(Tag, String), Vec<Site>> = BTreeMap::new();
        let err = |e: gimli::Error| format!("{}: {e}", self.what);
        for (ui, unit) in self.units.iter().enumerate() {
            let mut tree = unit.entries_tree(None).map_err(err)?;
            let root = tree.root().map_err(err)?;
            let mut children = root.children();
            while let Some(child) = children.next().map_err(err)? {
                let e = child.entry();
                let tag = match e.tag() {
                    gimli::DW_TAG_structure_type => Tag::Struct,
                    gimli::DW_TAG_union_type => Tag::Union,
                    gimli::DW_TAG_typedef => Tag::Typedef,
                    _ => continue,
                };
                if let Some(AttributeValue::Flag(true)) = e.attr_value(gimli::DW_AT_declaration).map_err(err)? {
                    continue;
                }
                let Some(name) = e.attr_value(gimli::DW_AT_name).map_err(err)? else {
                    continue;
                };
                let name = self.dwarf.attr_string(unit, name).map_err(err)?;
                let name = name.to_string_lossy();
                let key = (tag, name.into_owned());
                if wanted.contains(&key) {
                    found.entry(key).or_default().push((ui, e.offset()));
                }
            }
        }
        Ok(found)
    }

    /// The type defined at `off` (for a typedef: the type it names).
    fn resolve(&self, ui: usize, off: UnitOffset, depth: u32) -> Result<Ty, String> {
        let unit = &self.units[ui];
        let err = |e: gimli::Error| format!("{}: DIE {:#x}: {e}", self.what, off.0);
        if depth > 64 {
            return Err(format!("{}: type nesting too deep at {:#x}", self.what, off.0));
        }
        let e = unit.entry(off).map_err(err)?;
        let byte_size = e.attr_value(gimli::DW_AT_byte_size).map_err(err)?.and_then(|v| v.udata_value());
        let target = match e.attr_value(gimli::DW_AT_type).map_err(err)? {
            Some(AttributeValue::UnitRef(o)) => Some(o),
            Some(other) => return Err(format!("{}: unsupported type reference {other:?}", self.what)),
            None => None,
        };
        Ok(match e.tag() {
            gimli::DW_TAG_base_type | gimli::DW_TAG_enumeration_type => {
                Ty::Scalar { size: byte_size.ok_or_else(|| format!("{}: scalar without size at {:#x}", self.what, off.0))? }
            }
            gimli::DW_TAG_pointer_type | gimli::DW_TAG_reference_type | gimli::DW_TAG_ptr_to_member_type => {
                Ty::Scalar { size: byte_size.unwrap_or(unit.encoding().address_size as u64) }
            }
            gimli::DW_TAG_typedef
            | gimli::DW_TAG_const_type
            | gimli::DW_TAG_volatile_type
            | gimli::DW_TAG_restrict_type
            | gimli::DW_TAG_atomic_type => match target {
                Some(t) => self.resolve(ui, t, depth + 1)?,
                None => Ty::Unsized,
            },
            gimli::DW_TAG_subroutine_type | gimli::DW_TAG_unspecified_type => Ty::Unsized,
            gimli::DW_TAG_structure_type | gimli::DW_TAG_union_type => {
                let size = byte_size.ok_or_else(|| format!("{}: incomplete record at {:#x}", self.what, off.0))?;
                let mut members = Vec::new();
                let mut tree = unit.entries_tree(Some(off)).map_err(err)?;
                let mut children = tree.root().map_err(err)?.children();
                while let Some(child) = children.next().map_err(err)? {
                    let m = child.entry();
                    if m.tag() != gimli::DW_TAG_member {
                        continue;
                    }
                    members.push(self.member(ui, m, depth)?);
                }
                Ty::Record { size, members }
            }
            gimli::DW_TAG_array_type => {
                let elem = match target {
                    Some(t) => self.resolve(ui, t, depth + 1)?.size(),
                    None => return Err(format!("{}: array without element type", self.what)),
                };
                let mut dims = Vec::new();
                let mut tree = unit.entries_tree(Some(off)).map_err(err)?;
                let mut children = tree.root().map_err(err)?.children();
                while let Some(child) = children.next().map_err(err)? {
                    let s = child.entry();
                    if s.tag() != gimli::DW_TAG_subrange_type {
                        continue;
                    }
                    let count = s.attr_value(gimli::DW_AT_count).map_err(err)?.and_then(|v| v.udata_value());
                    let upper = s.attr_value(gimli::DW_AT_upper_bound).map_err(err)?;
                    let lower = s.attr_value(gimli::DW_AT_lower_bound).map_err(err)?.and_then(|v| v.udata_value()).unwrap_or(0);
                    dims.push(match (count, upper) {
                        (Some(c), _) => c,
                        // `T x[]`: no bound (or GCC's upper bound of -1).
                        (None, None) => 0,
                        (None, Some(AttributeValue::Sdata(-1))) => 0,
                        (None, Some(u)) => match u.udata_value() {
                            Some(u) => u + 1 - lower,
                            None => return Err(format!("{}: unsupported array bound {u:?}", self.what)),
                        },
                    });
                }
                let Some((&len, inner)) = dims.split_first() else {
                    return Err(format!("{}: array without subrange at {:#x}", self.what, off.0));
                };
                Ty::Array { stride: elem * inner.iter().product::<u64>(), len }
            }
            other => return Err(format!("{}: unsupported type tag {other} at {:#x}", self.what, off.0)),
        })
    }

    fn member(&self, ui: usize, m: &gimli::DebuggingInformationEntry<R<'a>>, depth: u32) -> Result<Member, String> {
        let unit = &self.units[ui];
        let err = |e: gimli::Error| format!("{}: member at {:#x}: {e}", self.what, m.offset().0);
        let name = match m.attr_value(gimli::DW_AT_name).map_err(err)? {
            Some(v) => Some(self.dwarf.attr_string(unit, v).map_err(err)?.to_string_lossy().into_owned()),
            None => None,
        };
        let ty = match m.attr_value(gimli::DW_AT_type).map_err(err)? {
            Some(AttributeValue::UnitRef(o)) => self.resolve(ui, o, depth + 1)?,
            other => return Err(format!("{}: member {name:?} with type {other:?}", self.what)),
        };
        let loc = match m.attr_value(gimli::DW_AT_data_member_location).map_err(err)? {
            None => None,
            Some(AttributeValue::Exprloc(expr)) => {
                // DWARF 2 style: DW_OP_plus_uconst N.
                let mut r = expr.0;
                match r.read_u8().map_err(err)? {
                    0x23 => Some(r.read_uleb128().map_err(err)?),
                    op => return Err(format!("{}: member {name:?}: location op {op:#x}", self.what)),
                }
            }
            Some(v) => Some(v.udata_value().ok_or_else(|| format!("{}: member {name:?}: location {v:?}", self.what))?),
        };
        let bit_size = m.attr_value(gimli::DW_AT_bit_size).map_err(err)?.and_then(|v| v.udata_value());
        let data_bit_offset = m.attr_value(gimli::DW_AT_data_bit_offset).map_err(err)?.and_then(|v| v.udata_value());
        let old_bit_offset = m.attr_value(gimli::DW_AT_bit_offset).map_err(err)?.and_then(|v| v.udata_value());
        let (off, bits) = match (bit_size, data_bit_offset, old_bit_offset) {
            (None, _, _) => (loc.unwrap_or(0), None),
            (Some(w), Some(b), _) => (b / 8, Some((b, w))),
            (Some(w), None, Some(msb)) => {
                // DWARF 2-4: offset of the field's MSB within a storage unit
                // of DW_AT_byte_size at the member location (little endian).
                let unit_bytes = m.attr_value(gimli::DW_AT_byte_size).map_err(err)?.and_then(|v| v.udata_value()).unwrap_or(ty.size());
                let base = loc.unwrap_or(0);
                (base, Some((base * 8 + unit_bytes * 8 - msb - w, w)))
            }
            (Some(w), None, None) => (loc.unwrap_or(0), Some((loc.unwrap_or(0) * 8, w))),
        };
        Ok(Member { name, off, ty, bits })
    }
}

/// A member found by path: offsets from the start of the table's struct.
pub struct Found<'t> {
    pub off: u64,
    pub ty: &'t Ty,
    pub bits: Option<(u64, u64)>,
}

/// Resolves `a.b.c` in `ty`; anonymous struct/union members are searched
/// transparently (their members count as the parent's).
pub fn lookup<'t>(ty: &'t Ty, path: &[&str], base: u64) -> Option<Found<'t>> {
    let (first, rest) = path.split_first()?;
    let Ty::Record { members, .. } = ty else {
        return None;
    };
    for m in members {
        if m.name.as_deref() == Some(*first) {
            let bits = m.bits.map(|(b, w)| (b + base * 8, w));
            if rest.is_empty() {
                return Some(Found { off: base + m.off, ty: &m.ty, bits });
            }
            return lookup(&m.ty, rest, base + m.off);
        }
    }
    for m in members {
        if m.name.is_none() {
            if let Some(f) = lookup(&m.ty, path, base + m.off) {
                return Some(f);
            }
        }
    }
    None
}

/// Named members of a record, flattening anonymous ones: (name, off, size).
pub fn flat_members(ty: &Ty, base: u64, out: &mut Vec<(String, u64, u64)>) {
    if let Ty::Record { members, .. } = ty {
        for m in members {
            match &m.name {
                Some(n) => out.push((n.clone(), base + m.off, m.ty.size())),
                None => flat_members(&m.ty, base + m.off, out),
            }
        }
    }
}

/// The DWARF of one build: ld.so's debug file, then libc's.
pub struct Types {
    /// (tag, name) -> the agreed definition and the file it came from.
    defs: BTreeMap<(Tag, String), (Ty, String)>,
}

impl Types {
    pub fn new(files: &[DebugInfo], wanted: &BTreeSet<(Tag, String)>) -> Result<Self, String> {
        let mut defs = BTreeMap::new();
        let mut all: BTreeMap<(Tag, String), Vec<(Ty, String)>> = BTreeMap::new();
        for f in files {
            for (key, sites) in f.index(wanted)? {
                for (ui, off) in sites {
                    let ty = f.resolve(ui, off, 0)?;
                    all.entry(key.clone()).or_default().push((ty, format!("{} unit {ui}", f.what)));
                }
            }
        }
        for (key, versions) in all {
            let (first, where_) = &versions[0];
            // Several compile units define the same type; they must agree.
            if let Some((_, other)) = versions.iter().find(|(t, _)| t != first) {
                return Err(format!("{:?} {}: definitions differ between {where_} and {other}", key.0, key.1));
            }
            defs.insert(key, (first.clone(), where_.clone()));
        }
        Ok(Types { defs })
    }

    pub fn get(&self, tag: Tag, name: &str) -> Option<&Ty> {
        self.defs.get(&(tag, name.to_string())).map(|(t, _)| t)
    }
}

// ---------------------------------------------------------------------------
// Generation.
impl DebugInfo<'_> {
    /// The enumerators of every top-level enum of every unit whose name
    /// `wanted` accepts, into `out` (name -> value); units must agree.
    pub fn enumerators(&self, wanted: impl Fn(&str) -> bool, out: &mut BTreeMap<String, i64>) -> Result<(), String> {
        let err = |e: gimli::Error| format!("{}: {e}", self.what);
        for unit in &self.units {
            let mut tree = unit.entries_tree(None).map_err(err)?;
            let root = tree.root().map_err(err)?;
            let mut children = root.children();
            while let Some(child) = children.next().map_err(err)? {
                if child.entry().tag() != gimli::DW_TAG_enumeration_type {
                    continue;
                }
                let mut items = child.children();
                while let Some(item) = items.next().map_err(err)? {
                    let e = item.entry();
                    if e.tag() != gimli::DW_TAG_enumerator {
                        continue;
                    }
                    let Some(name) = e.attr_value(gimli::DW_AT_name).map_err(err)? else {
                        continue;
                    };
                    let name = self.dwarf.attr_string(unit, name).map_err(err)?;
                    let name = name.to_string_lossy().into_owned();
                    if !wanted(&name) {
                        continue;
                    }
                    let value = match e.attr_value(gimli::DW_AT_const_value).map_err(err)? {
                        Some(AttributeValue::Sdata(v)) => v,
                        Some(v) => v
                            .udata_value()
                            .and_then(|u| i64::try_from(u).ok())
                            .ok_or_else(|| format!("{}: enumerator {name}: value {v:?}", self.what))?,
                        None => return Err(format!("{}: enumerator {name} without value", self.what)),
                    };
                    if let Some(old) = out.insert(name.clone(), value) {
                        if old != value {
                            return Err(format!("{}: enumerator {name} is {old} and {value}", self.what));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
