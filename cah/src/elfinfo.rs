//! What `cah` needs to know about an ELF file: class and machine, the
//! interpreter, the dynamic section's search data, and its note areas.
//!
//! Read through the program headers (as a loader sees the file), with the
//! `object` crate's ELF views; dynamic strings are found by translating
//! `DT_STRTAB` through the `PT_LOAD` segments.
//!
//! The bytes are untrusted: every offset is checked against the file with
//! checked arithmetic, a string must end with a NUL inside `DT_STRSZ`, and
//! every loop is over a table whose size the file's length bounds. Errors
//! are messages, never panics (`fuzz::elf_file` and the `cah_elf` fuzz
//! target drive this module).

use std::collections::HashSet;

use anyhow::{anyhow, bail, Context, Result};
use object::elf;
use object::read::elf::{Dyn, FileHeader, ProgramHeader};
use object::Endianness;

use ld_cah::verify::lock::{find_lock, LockView};

/// The parts of an ELF file the closure walk and the patcher use.
#[derive(Clone, Debug, Default)]
pub struct ElfInfo {
    /// `e_machine`.
    pub machine: u16,
    /// `PT_INTERP` without its NUL, if any.
    pub interp: Option<Vec<u8>>,
    /// `DT_NEEDED` names in order.
    pub needed: Vec<Vec<u8>>,
    /// `DT_RPATH`.
    pub rpath: Option<Vec<u8>>,
    /// `DT_RUNPATH`.
    pub runpath: Option<Vec<u8>>,
    /// `DT_SONAME`.
    pub soname: Option<Vec<u8>>,
    /// `DT_FLAGS_1`.
    pub flags_1: u64,
    /// File ranges of `PT_NOTE` segments: (offset, size, align).
    pub note_areas: Vec<(u64, u64, u64)>,
}

/// Longest `DT_NEEDED` or `DT_SONAME` name accepted (`PATH_MAX`: a longer
/// name cannot be opened).
pub const MAX_NAME: usize = 4096;

/// Most distinct `DT_NEEDED` entries accepted in one object (a closure,
/// like a lock, holds at most this many names).
pub const MAX_NEEDED: usize = ld_cah::verify::lock::MAX_ENTRIES;

/// Machines the loader supports.
pub const MACHINES: [u16; 2] = [elf::EM_X86_64, elf::EM_AARCH64];

/// Whether `head` (the first bytes of a file) starts a 64-bit
/// little-endian ELF file for `machine`: the test glibc applies before it
/// accepts a search candidate.
pub fn is_compatible(head: &[u8], machine: u16) -> bool {
    head.len() >= 20
        && head[..4] == elf::ELFMAG
        && head[4] == elf::ELFCLASS64
        && head[5] == elf::ELFDATA2LSB
        && u16::from_le_bytes([head[18], head[19]]) == machine
}

/// Reads the file header, program headers and dynamic section of `data`.
pub fn read(data: &[u8]) -> Result<ElfInfo> {
    let header = elf::FileHeader64::<Endianness>::parse(data).map_err(|e| anyhow!("not a 64-bit ELF file: {e}"))?;
    let endian = header.endian().map_err(|e| anyhow!("{e}"))?;
    if endian != Endianness::Little {
        bail!("big-endian ELF files are not supported");
    }
    let phdrs = header.program_headers(endian, data).map_err(|e| anyhow!("bad program headers: {e}"))?;
    // (The loader refuses such an object too; `e_phnum` = PN_XNUM, with the
    // real count in section 0, ends up here.)
    for (i, p) in phdrs.iter().enumerate() {
        if file_range(data, p.p_offset(endian), p.p_filesz(endian)).is_none() {
            bail!("program header {i} lies outside the file");
        }
    }
    if !phdrs.iter().any(|p| p.p_type(endian) == elf::PT_LOAD) {
        bail!("no PT_LOAD segment: not a loadable object");
    }
    let mut info = ElfInfo { machine: header.e_machine(endian), ..ElfInfo::default() };

    let vaddr_to_offset = |addr: u64| -> Option<u64> {
        phdrs.iter().find_map(|p| {
            let start = p.p_vaddr(endian);
            let filesz = p.p_filesz(endian);
            if p.p_type(endian) == elf::PT_LOAD && addr >= start && addr - start < filesz {
                (addr - start).checked_add(p.p_offset(endian))
            } else {
                None
            }
        })
    };

    let mut dynamic: Option<&[elf::Dyn64<Endianness>]> = None;
    for p in phdrs {
        match p.p_type(endian) {
            elf::PT_INTERP => {
                let bytes = p.data(endian, data).map_err(|_| anyhow!("PT_INTERP outside the file"))?;
                let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
                info.interp = Some(bytes[..end].to_vec());
            }
            elf::PT_DYNAMIC => {
                dynamic = p.dynamic(endian, data).map_err(|_| anyhow!("PT_DYNAMIC outside the file"))?;
            }
            elf::PT_NOTE => {
                info.note_areas.push((p.p_offset(endian), p.p_filesz(endian), p.p_align(endian)));
            }
            _ => {}
        }
    }
    let Some(dynamic) = dynamic else { return Ok(info) };

    let mut strtab = None;
    let mut strsz = None;
    for d in dynamic {
        match d.tag32(endian) {
            Some(elf::DT_NULL) => break,
            Some(elf::DT_STRTAB) => strtab = Some(d.d_val(endian)),
            Some(elf::DT_STRSZ) => strsz = Some(d.d_val(endian)),
            _ => {}
        }
    }
    let strings: &[u8] = match (strtab, strsz) {
        (Some(addr), Some(size)) => {
            let off = vaddr_to_offset(addr).context("DT_STRTAB is not in a PT_LOAD segment")?;
            file_range(data, off, size).context("DT_STRTAB runs past the end of the file")?
        }
        _ => &[],
    };
    // A string must end with a NUL within `limit` bytes (so each lookup
    // scans a bounded number of bytes).
    let string = |off: u64, limit: usize| -> Result<Vec<u8>> {
        let rest = usize::try_from(off).ok().and_then(|off| strings.get(off..)).context("dynamic string offset out of range")?;
        let end = rest.iter().take(limit.saturating_add(1)).position(|&b| b == 0).with_context(|| {
            if rest.len() > limit {
                format!("dynamic string longer than {limit} bytes")
            } else {
                "unterminated dynamic string".to_string()
            }
        })?;
        Ok(rest[..end].to_vec())
    };
    // Offsets first: a name is read once however often it is listed, and
    // for DT_RPATH, DT_RUNPATH and DT_SONAME the last entry counts, as in
    // glibc.
    let mut needed: Vec<u64> = Vec::new();
    let mut seen: HashSet<u64> = HashSet::new();
    let (mut rpath, mut runpath, mut soname) = (None, None, None);
    for d in dynamic {
        let val = d.d_val(endian);
        match d.tag32(endian) {
            Some(elf::DT_NULL) => break,
            Some(elf::DT_NEEDED) if seen.insert(val) => {
                if needed.len() >= MAX_NEEDED {
                    bail!("more than {MAX_NEEDED} DT_NEEDED entries");
                }
                needed.push(val);
            }
            Some(elf::DT_RPATH) => rpath = Some(val),
            Some(elf::DT_RUNPATH) => runpath = Some(val),
            Some(elf::DT_SONAME) => soname = Some(val),
            Some(elf::DT_FLAGS_1) => info.flags_1 = val,
            _ => {}
        }
    }
    for off in needed {
        info.needed.push(string(off, MAX_NAME)?);
    }
    info.soname = soname.map(|off| string(off, MAX_NAME)).transpose()?;
    info.rpath = rpath.map(|off| string(off, strings.len())).transpose()?;
    info.runpath = runpath.map(|off| string(off, strings.len())).transpose()?;
    Ok(info)
}

/// `data[off..off + size]`, if it lies inside `data`.
fn file_range(data: &[u8], off: u64, size: u64) -> Option<&[u8]> {
    let start = usize::try_from(off).ok()?;
    let end = start.checked_add(usize::try_from(size).ok()?)?;
    data.get(start..end)
}

/// The closure lock of `data`, if it carries one (searching its `PT_NOTE`
/// segments, as the loader does).
pub fn read_lock<'a>(data: &'a [u8], info: &ElfInfo) -> Result<Option<LockView<'a>>> {
    let mut found = None;
    for &(off, size, align) in &info.note_areas {
        let area = file_range(data, off, size).context("PT_NOTE runs past the end of the file")?;
        if let Some(view) = find_lock(area, align).map_err(|e| anyhow!("{e}"))? {
            if found.is_some() {
                bail!("more than one closure lock note");
            }
            found = Some(view);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_real_program() {
        let Ok(data) = std::fs::read("/bin/sh") else { return };
        let info = read(&data).unwrap();
        assert!(MACHINES.contains(&info.machine));
        assert!(info.needed.iter().any(|n| n.starts_with(b"libc.so")));
        assert!(info.interp.is_some());
        assert!(is_compatible(&data, info.machine));
        assert!(!is_compatible(&data, 3));
        assert!(read_lock(&data, &info).unwrap().is_none());
    }
}
