//! Keeping the input's dynamic string table.
//!
//! `object`'s ELF builder writes `.dynstr` anew, sorted so that names
//! sharing a suffix share their bytes. The linker's table is in symbol
//! order: the names of neighbouring symbols lie side by side. A loader
//! reads them in that order (each lazy binding reads its symbol's name),
//! and in the sorted table each read lands somewhere else in a table that
//! can be a megabyte: a lazily bound program with 100,000 imports ran 14%
//! slower patched than unpatched (docs/benchmarks.md). So after the builder
//! has written the file, the input's table is put back in the output's and
//! every reference the builder wrote (symbol names, version names,
//! `DT_NEEDED`, `DT_SONAME`, `DT_RPATH`, `DT_RUNPATH`, `DT_AUXILIARY`,
//! `DT_FILTER`) is pointed at the same string in it.
//!
//! Only when everything checks: both files have one dynamic symbol table
//! linked to a string table, the input's table fits in the output's, and
//! every string the output refers to is in the input's table. Otherwise the
//! builder's table stays (it is correct, only slower to read). Both files
//! are untrusted bytes: every read is bounds-checked, every walk is bounded
//! by its section's size, and nothing here panics.

use std::collections::HashMap;

use object::elf;
use object::read::elf::{FileHeader, SectionHeader};
use object::Endianness;

/// A section's file range, type, link and entry size.
#[derive(Clone, Copy)]
struct Sec {
    off: usize,
    size: usize,
    kind: u32,
    link: u32,
}

fn sections(data: &[u8]) -> Option<Vec<Sec>> {
    let header = elf::FileHeader64::<Endianness>::parse(data).ok()?;
    let endian = header.endian().ok()?;
    let table = header.sections(endian, data).ok()?;
    let out = table
        .iter()
        .map(|s| {
            let (off, size) = s.file_range(endian).unwrap_or((0, 0));
            Some(Sec {
                off: usize::try_from(off).ok()?,
                size: usize::try_from(size).ok()?,
                kind: s.sh_type(endian),
                link: s.sh_link(endian),
            })
        })
        .collect::<Option<Vec<_>>>()?;
    // Every range inside the file.
    out.iter().all(|s| s.off.checked_add(s.size).is_some_and(|e| e <= data.len())).then_some(out)
}

fn u16_at(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(data.get(at..at.checked_add(2)?)?.try_into().ok()?))
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(data.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

fn u64_at(data: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(data.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

/// Where a reference into the string table is stored: a file offset and
/// whether the field is 8 bytes (a dynamic entry's value) or 4.
#[derive(Clone, Copy)]
struct Ref {
    at: usize,
    wide: bool,
}

impl Ref {
    fn get(self, data: &[u8]) -> Option<usize> {
        let v = if self.wide { u64_at(data, self.at)? } else { u64::from(u32_at(data, self.at)?) };
        usize::try_from(v).ok()
    }
}

/// The dynamic string table's range and every reference into it the
/// builder writes.
struct Layout {
    strtab: Sec,
    refs: Vec<Ref>,
    /// Where `DT_STRSZ`'s value is, if the file has one.
    strsz: Option<usize>,
}

fn layout(data: &[u8]) -> Option<Layout> {
    let secs = sections(data)?;
    let mut dynsyms = secs.iter().filter(|s| s.kind == elf::SHT_DYNSYM);
    let dynsym = *dynsyms.next()?;
    if dynsyms.next().is_some() {
        return None;
    }
    let strtab = *secs.get(dynsym.link as usize).filter(|s| s.kind == elf::SHT_STRTAB)?;
    let mut refs = Vec::new();
    // Symbol names (`st_name`, the first word of each 24-byte entry).
    refs.extend((0..dynsym.size / 24).map(|i| Ref { at: dynsym.off + 24 * i, wide: false }));
    // Every table the builder writes references into must use this one:
    // a reference left out would point at another string afterwards.
    let users = [elf::SHT_DYNAMIC, elf::SHT_GNU_VERDEF, elf::SHT_GNU_VERNEED];
    if secs.iter().any(|s| users.contains(&s.kind) && s.link != dynsym.link) {
        return None;
    }
    let mut strsz = None;
    for s in secs.iter().filter(|s| s.link == dynsym.link) {
        match s.kind {
            elf::SHT_DYNAMIC => {
                for i in 0..s.size / 16 {
                    let at = s.off + 16 * i;
                    let tag = u64_at(data, at)?;
                    match u32::try_from(tag) {
                        Ok(elf::DT_NULL) => break,
                        Ok(elf::DT_NEEDED | elf::DT_SONAME | elf::DT_RPATH | elf::DT_RUNPATH | elf::DT_AUXILIARY | elf::DT_FILTER) => {
                            refs.push(Ref { at: at + 8, wide: true })
                        }
                        Ok(elf::DT_STRSZ) => strsz = Some(at + 8),
                        _ => {}
                    }
                }
            }
            elf::SHT_GNU_VERDEF => walk(data, s, &mut refs, VERDEF)?,
            elf::SHT_GNU_VERNEED => walk(data, s, &mut refs, VERNEED)?,
            _ => {}
        }
    }
    Some(Layout { strtab, refs, strsz })
}

/// How a version section's entries and their auxiliary entries are laid
/// out: their sizes, the offsets of the count (`u16`), the name in the
/// entry (if any), the auxiliary offset and the next offset, then the
/// auxiliary entry's name and next offsets.
struct Shape {
    size: usize,
    aux_size: usize,
    cnt: usize,
    name: Option<usize>,
    aux: usize,
    next: usize,
    aux_name: usize,
    aux_next: usize,
}

/// `Elf64_Verdef` (`vd_cnt`, `vd_aux`, `vd_next`) and `Elf64_Verdaux`.
const VERDEF: Shape = Shape { size: 20, aux_size: 8, cnt: 2, name: None, aux: 12, next: 16, aux_name: 0, aux_next: 4 };
/// `Elf64_Verneed` (`vn_cnt`, `vn_file`, `vn_aux`, `vn_next`) and
/// `Elf64_Vernaux`.
const VERNEED: Shape = Shape { size: 16, aux_size: 16, cnt: 2, name: Some(4), aux: 8, next: 12, aux_name: 8, aux_next: 12 };

/// Collects the name references of a version section, following its
/// chains inside the section only, at most as many steps as it has bytes.
fn walk(data: &[u8], s: &Sec, refs: &mut Vec<Ref>, shape: Shape) -> Option<()> {
    let end = s.off + s.size;
    let inside = |at: usize, len: usize| at >= s.off && at.checked_add(len).is_some_and(|e| e <= end);
    let mut budget = s.size;
    let mut entry = s.off;
    loop {
        if !inside(entry, shape.size) || budget == 0 {
            return None;
        }
        budget -= 1;
        if let Some(n) = shape.name {
            refs.push(Ref { at: entry + n, wide: false });
        }
        let mut aux = entry.checked_add(u32_at(data, entry + shape.aux)? as usize)?;
        for _ in 0..u16_at(data, entry + shape.cnt)? {
            if !inside(aux, shape.aux_size) || budget == 0 {
                return None;
            }
            budget -= 1;
            refs.push(Ref { at: aux + shape.aux_name, wide: false });
            let next = u32_at(data, aux + shape.aux_next)? as usize;
            if next == 0 {
                break;
            }
            aux = aux.checked_add(next)?;
        }
        let next = u32_at(data, entry + shape.next)? as usize;
        if next == 0 {
            return Some(());
        }
        entry = entry.checked_add(next)?;
    }
}

/// The NUL-terminated string at `off` of `table`, without its NUL.
fn string_at(table: &[u8], off: usize) -> Option<&[u8]> {
    let rest = table.get(off..)?;
    Some(&rest[..rest.iter().position(|&b| b == 0)?])
}

/// Puts `input`'s dynamic string table back into `output` (written by the
/// builder from `input`), with the references pointed at it; returns
/// whether it did. `output` is left as it was when it returns false.
pub fn keep_input_order(input: &[u8], output: &mut [u8]) -> bool {
    let (Some(inp), Some(out)) = (layout(input), layout(output)) else { return false };
    let old = &input[inp.strtab.off..inp.strtab.off + inp.strtab.size];
    if old.len() > out.strtab.size || u32::try_from(old.len()).is_err() || old.last().is_some_and(|&b| b != 0) {
        return false;
    }
    // Where each string is in the input's table: every whole string, and
    // every place the input refers to (a name may share another's tail).
    let mut at: HashMap<&[u8], usize> = HashMap::new();
    let mut start = 0;
    for (i, &b) in old.iter().enumerate() {
        if b == 0 {
            at.entry(&old[start..i]).or_insert(start);
            start = i + 1;
        }
    }
    for r in &inp.refs {
        if let Some(s) = r.get(input).and_then(|o| Some((string_at(old, o)?, o))) {
            at.entry(s.0).or_insert(s.1);
        }
    }
    let new = &output[out.strtab.off..out.strtab.off + out.strtab.size];
    let mut moves = Vec::with_capacity(out.refs.len());
    for r in &out.refs {
        let Some(s) = r.get(output).and_then(|o| string_at(new, o)) else { return false };
        let Some(&o) = at.get(s) else { return false };
        moves.push((*r, o));
    }
    let table = &mut output[out.strtab.off..out.strtab.off + out.strtab.size];
    table[..old.len()].copy_from_slice(old);
    table[old.len()..].fill(0);
    for (r, o) in moves {
        if r.wide {
            output[r.at..r.at + 8].copy_from_slice(&(o as u64).to_le_bytes());
        } else {
            output[r.at..r.at + 4].copy_from_slice(&(o as u32).to_le_bytes());
        }
    }
    if let Some(at) = out.strsz {
        output[at..at + 8].copy_from_slice(&(old.len() as u64).to_le_bytes());
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(dir: &std::path::Path, name: &str, src: &str, args: &[&str]) -> Vec<u8> {
        let c = dir.join(format!("{name}.c"));
        std::fs::write(&c, src).unwrap();
        let out = dir.join(name);
        let ok = std::process::Command::new("gcc").args(args).arg("-o").arg(&out).arg(&c).status().unwrap().success();
        assert!(ok, "gcc {name}");
        std::fs::read(out).unwrap()
    }

    /// The dynamic symbol names, version names and needed libraries of a
    /// file, as `object` reads them.
    fn names(data: &[u8]) -> Vec<String> {
        use object::read::elf::ElfFile64;
        use object::{Object, ObjectSymbol};
        let f = ElfFile64::<Endianness>::parse(data).unwrap();
        let mut v: Vec<String> = f.dynamic_symbols().map(|s| s.name().unwrap().to_string()).collect();
        let info = crate::elfinfo::read(data).unwrap();
        v.extend(info.needed.iter().map(|n| String::from_utf8_lossy(n).into_owned()));
        v
    }

    #[test]
    fn the_linkers_order_comes_back_with_every_name_intact() {
        let dir = tempfile::tempdir().unwrap();
        let mut src = String::new();
        for i in 0..300 {
            src.push_str(&format!("int zz_{i}(int);\n"));
        }
        src.push_str("#include <stdio.h>\nint main(int c, char **v) { int s = 0;\n");
        for i in 0..300 {
            src.push_str(&format!("  if (c > 5) s += zz_{i}(s);\n"));
        }
        src.push_str("  printf(\"%d\\n\", s); return 0; }\n");
        let exe = compile(dir.path(), "prog", &src, &["-O1", "-Wl,--unresolved-symbols=ignore-all"]);
        let mut lock = ld_cah::verify::Lock::new(ld_cah::verify::LockFlags(ld_cah::verify::LockFlags::STRICT));
        let _ = lock.insert(b"libc.so.6", ld_cah::verify::Digest([7; 32]));
        let patch =
            crate::patch::Patch { note: lock.to_note(), interp: Some(b"/usr/lib/ld-cah/a-longer-interpreter-path/ld-cah.so".to_vec()) };
        let (patched, _) = crate::patch::apply(&exe, &patch).unwrap();
        let (inp, out) = (layout(&exe).unwrap(), layout(&patched).unwrap());
        let table = |d: &[u8], l: &Layout| d[l.strtab.off..l.strtab.off + l.strtab.size].to_vec();
        // The patched file carries the linker's table, byte for byte, and
        // names what the input names.
        assert_eq!(table(&patched, &out)[..inp.strtab.size], table(&exe, &inp)[..]);
        assert_eq!(names(&patched), names(&exe));
        // Neighbouring symbols' names are neighbours again.
        let offs: Vec<usize> = out.refs.iter().take(200).filter_map(|r| r.get(&patched)).collect();
        let jumps = offs.windows(2).filter(|w| w[1].abs_diff(w[0]) > 64).count();
        assert!(jumps < 20, "names scattered: {jumps} far jumps among 200 symbols");
    }

    #[test]
    fn garbage_is_left_alone() {
        let mut out = vec![0u8; 64];
        assert!(!keep_input_order(b"\x7fELF not really", &mut out));
        assert_eq!(out, vec![0u8; 64]);
    }
}
