//! The specification: the table types of `loader/src/glibc/layout.rs`
//! (its header states the rules this parser follows).

use crate::Arch;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Field,
    Bits,
    Array,
}

pub struct MemberSpec {
    pub rust: String,
    pub path: String,
    pub kind: Kind,
    pub optional: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, PartialOrd, Ord)]
pub enum Tag {
    Struct,
    Union,
    Typedef,
}

pub struct TableSpec {
    pub rust: String,
    pub tag: Tag,
    pub name: String,
    pub arch: Option<Arch>,
    pub members: Vec<MemberSpec>,
}

pub struct LayoutField {
    pub rust: String,
    pub ty: String,
    pub optional: bool,
    /// A field of `Types` (reached through `Layout::types`), not of
    /// `Layout` itself.
    pub in_types: bool,
}

pub struct Spec {
    pub tables: Vec<TableSpec>,
    /// The fields of `Layout`, with those of `Types` in the place of the
    /// field that refers to it: the order of the installed table format.
    pub layout: Vec<LayoutField>,
    /// The `Layout` field that refers to the `Types` (`types`).
    pub types_field: String,
}

/// The type of the `Layout` field that holds the structure layouts.
const TYPES_REF: &str = "&'static Types";

/// The text between the backticks of a doc line ``... DWARF: `TEXT` REST``,
/// and REST.
fn dwarf_note(doc: &[String]) -> Option<(String, String)> {
    doc.iter().find_map(|l| {
        let rest = l.split_once("DWARF: `")?.1;
        let (inner, after) = rest.split_once('`')?;
        Some((inner.to_string(), after.to_string()))
    })
}

pub fn parse_spec(text: &str) -> Result<Spec, String> {
    let mut spec = Spec { tables: Vec::new(), layout: Vec::new(), types_field: String::new() };
    let mut types: Vec<LayoutField> = Vec::new();
    let mut doc: Vec<String> = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((_, line)) = lines.next() {
        let t = line.trim();
        if t == "#[cfg(test)]" {
            break;
        }
        if let Some(d) = t.strip_prefix("///") {
            doc.push(d.trim().to_string());
            continue;
        }
        if t.starts_with("#[") {
            continue;
        }
        let Some(name) = t.strip_prefix("pub struct ").and_then(|r| r.strip_suffix(" {")) else {
            doc.clear();
            continue;
        };
        let table_note = dwarf_note(&doc);
        doc.clear();
        let is_layout = name == "Layout" || name == "Types";
        if table_note.is_none() && !is_layout {
            continue;
        }
        let mut members = Vec::new();
        let mut fdoc: Vec<String> = Vec::new();
        for (n, line) in lines.by_ref() {
            let t = line.trim();
            if t == "}" {
                break;
            }
            if let Some(d) = t.strip_prefix("///") {
                fdoc.push(d.trim().to_string());
                continue;
            }
            if t.is_empty() {
                continue;
            }
            let (fname, ty) = t
                .strip_prefix("pub ")
                .and_then(|r| r.strip_suffix(','))
                .and_then(|r| r.split_once(": "))
                .ok_or_else(|| format!("layout.rs:{}: expected `pub NAME: TYPE,` in {name}", n + 1))?;
            let (inner, optional) = match ty.strip_prefix("Option<").and_then(|r| r.strip_suffix('>')) {
                Some(i) => (i, true),
                None => (ty, false),
            };
            if is_layout {
                let field = LayoutField { rust: fname.into(), ty: inner.into(), optional, in_types: name == "Types" };
                if field.in_types {
                    types.push(field);
                } else {
                    spec.layout.push(field);
                }
            } else if fname == "size" && ty == "u16" {
                // sizeof, always present
            } else {
                let kind = match inner {
                    "Field" => Kind::Field,
                    "Bits" => Kind::Bits,
                    "Array" => Kind::Array,
                    _ => return Err(format!("layout.rs:{}: {name}.{fname}: unknown member type `{ty}`", n + 1)),
                };
                let path = dwarf_note(&fdoc).map(|(p, _)| p).unwrap_or_else(|| fname.to_string());
                members.push(MemberSpec { rust: fname.into(), path, kind, optional });
            }
            fdoc.clear();
        }
        if let Some((what, rest)) = table_note {
            let (tag, tname) = match what.split_once(' ') {
                Some(("struct", n)) => (Tag::Struct, n),
                Some(("union", n)) => (Tag::Union, n),
                Some(("typedef", n)) => (Tag::Typedef, n),
                _ => return Err(format!("layout.rs: {name}: bad DWARF note `{what}`")),
            };
            let arch = if rest.contains("x86_64 only") {
                Some(Arch::X86_64)
            } else if rest.contains("aarch64 only") {
                Some(Arch::Aarch64)
            } else {
                None
            };
            spec.tables.push(TableSpec { rust: name.into(), tag, name: tname.into(), arch, members });
        }
    }
    if spec.layout.is_empty() || types.is_empty() || spec.tables.is_empty() {
        return Err("layout.rs: no `Layout`, no `Types` or no table structs found".into());
    }
    let at = spec
        .layout
        .iter()
        .position(|f| f.ty == TYPES_REF && !f.optional)
        .ok_or_else(|| format!("layout.rs: no `Layout` field of type `{TYPES_REF}`"))?;
    spec.types_field = spec.layout.remove(at).rust;
    spec.layout.splice(at..at, types);
    Ok(spec)
}
