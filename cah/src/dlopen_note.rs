//! The ELF dlopen metadata note (`.note.dlopen`, the freedesktop/systemd
//! specification "dlopen() Metadata for ELF Files"): owner `"FDO"`, type
//! `0x407c0c0a`, a descriptor holding a NUL-terminated (zero-padded) JSON
//! array of objects, each with a `"soname"` list of alternative names the
//! program may `dlopen` (and `"feature"`, `"description"`, `"priority"`,
//! which are only shown). An object may carry several such notes.
//!
//! `cah patch` locks every listed name it can resolve (as `--also` would);
//! `cah show` lists them. The note is untrusted: the walk is bounded by
//! the `PT_NOTE` areas, and a note that is not valid JSON of that shape is
//! reported, never fatal (it is metadata; the program runs without it).

use anyhow::{bail, Result};

use crate::elfinfo::ElfInfo;

/// The note's owner.
pub const OWNER: &[u8] = b"FDO";
/// The note's type.
pub const TYPE: u32 = 0x407c_0c0a;
/// Most names taken from an object's notes (what a lock can hold).
const MAX_NAMES: usize = ld_cah::verify::lock::MAX_ENTRIES;

/// One dependency a note declares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Declared {
    /// Alternative names, in the program's order of preference.
    pub sonames: Vec<String>,
    /// `"feature"`, if given.
    pub feature: Option<String>,
    /// `"priority"` (`required`, `recommended`, `suggested`), if given.
    pub priority: Option<String>,
}

/// Every dependency declared by `.note.dlopen` notes in `data`'s
/// `PT_NOTE` segments.
pub fn read(data: &[u8], info: &ElfInfo) -> Result<Vec<Declared>> {
    let mut out = Vec::new();
    for &(off, size, align) in &info.note_areas {
        let Some(area) = usize::try_from(off).ok().zip(usize::try_from(size).ok()).and_then(|(o, s)| data.get(o..o.checked_add(s)?)) else {
            bail!("PT_NOTE runs past the end of the file");
        };
        let align = if align == 8 { 8 } else { 4 };
        let mut at = 0usize;
        while at + 12 <= area.len() {
            let word = |i: usize| u32::from_le_bytes([area[at + i], area[at + i + 1], area[at + i + 2], area[at + i + 3]]) as usize;
            let (namesz, descsz, kind) = (word(0), word(4), word(8) as u32);
            let name_at = at + 12;
            // The descriptor starts at the next aligned offset after the
            // name (with 8-aligned notes, `"GNU\0"` needs no padding).
            let desc_at = name_at.checked_add(namesz).map(|e| e.next_multiple_of(align)).filter(|&e| e <= area.len());
            let Some(desc_at) = desc_at else { bail!("malformed note: name runs past its segment") };
            let Some(desc_end) = desc_at.checked_add(descsz).filter(|&e| e <= area.len()) else {
                bail!("malformed note: descriptor runs past its segment")
            };
            let name = &area[name_at..(name_at + namesz).min(desc_at)];
            if kind == TYPE && name.strip_suffix(b"\0").unwrap_or(name) == OWNER {
                parse(&area[desc_at..desc_end], &mut out)?;
                if out.iter().map(|d| d.sonames.len()).sum::<usize>() > MAX_NAMES {
                    bail!(".note.dlopen: more than {MAX_NAMES} names");
                }
            }
            at = desc_end.next_multiple_of(align);
        }
    }
    Ok(out)
}

/// The JSON array of one note's descriptor.
fn parse(desc: &[u8], out: &mut Vec<Declared>) -> Result<()> {
    let end = desc.iter().position(|&b| b == 0).unwrap_or(desc.len());
    let v: serde_json::Value = match serde_json::from_slice(&desc[..end]) {
        Ok(v) => v,
        Err(e) => bail!(".note.dlopen: not JSON: {e}"),
    };
    let Some(items) = v.as_array() else { bail!(".note.dlopen: not a JSON array") };
    for item in items {
        let Some(names) = item.get("soname").and_then(|s| s.as_array()) else { bail!(".note.dlopen: an entry without a \"soname\" list") };
        let mut sonames = Vec::new();
        for n in names {
            match n.as_str() {
                Some(s) if !s.is_empty() && s.len() <= crate::elfinfo::MAX_NAME && !s.contains('\0') => sonames.push(s.to_string()),
                _ => bail!(".note.dlopen: a soname that is not a usable name"),
            }
        }
        let text = |k: &str| item.get(k).and_then(|s| s.as_str()).map(str::to_string);
        out.push(Declared { sonames, feature: text("feature"), priority: text("priority") });
    }
    Ok(())
}

/// The declared names of `data`, or none with a warning on stderr if the
/// notes are malformed.
pub fn names_or_warn(prog: &std::path::Path, data: &[u8], info: &ElfInfo) -> Vec<Declared> {
    read(data, info).unwrap_or_else(|e| {
        eprintln!("cah: warning: {}: {e:#} (ignored)", prog.display());
        Vec::new()
    })
}

/// Adds to `also` every name `prog`'s notes declare that resolves in
/// `root` (with its dependencies); names not found are left out, as the
/// program treats them as optional.
pub fn lock_declared(prog: &std::path::Path, data: &[u8], info: &ElfInfo, root: &std::path::Path, also: &mut Vec<Vec<u8>>) {
    for d in names_or_warn(prog, data, info) {
        for name in d.sonames {
            let name = name.into_bytes();
            if also.contains(&name) {
                continue;
            }
            let one = [name];
            let opts = crate::closure::Options { root, also: &one, lock: None, store: None };
            if crate::closure::resolve(prog, &opts).is_ok() {
                let [name] = one;
                also.push(name);
            }
        }
    }
}

/// `cah show`'s view of the notes: each declared name and whether the
/// lock holds it.
pub fn show(prog: &std::path::Path, data: &[u8], info: &ElfInfo, lock: &ld_cah::verify::Lock) -> (Vec<String>, serde_json::Value) {
    let declared = names_or_warn(prog, data, info);
    let mut lines = Vec::new();
    let mut json = Vec::new();
    for d in &declared {
        let names: Vec<String> =
            d.sonames.iter().map(|n| format!("{n} ({})", if lock.get(n.as_bytes()).is_some() { "locked" } else { "not locked" })).collect();
        lines.push(format!(
            "dlopen note: {}{}{}",
            names.join(", "),
            d.feature.as_ref().map(|f| format!("; feature {f}")).unwrap_or_default(),
            d.priority.as_ref().map(|p| format!(", {p}")).unwrap_or_default()
        ));
        json.push(serde_json::json!({
            "sonames": d.sonames,
            "locked": d.sonames.iter().map(|n| lock.get(n.as_bytes()).is_some()).collect::<Vec<_>>(),
            "feature": d.feature,
            "priority": d.priority,
        }));
    }
    (lines, serde_json::Value::Array(json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_specification_shape_and_refuses_others() {
        let mut out = Vec::new();
        parse(br#"[{"feature":"x","description":"d","priority":"suggested","soname":["libx.so.2","libx.so.1"]}]"#, &mut out).unwrap();
        parse(b"[{\"soname\":[\"liby.so\"]}]\0\0\0", &mut out).unwrap();
        assert_eq!(out[0].sonames, ["libx.so.2", "libx.so.1"]);
        assert_eq!(out[0].priority.as_deref(), Some("suggested"));
        assert_eq!(out[1].sonames, ["liby.so"]);
        for bad in [&b"{}"[..], b"[{}]", b"[{\"soname\":[1]}]", b"[{\"soname\":[\"\"]}]", b"not json", b""] {
            assert!(parse(bad, &mut Vec::new()).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
