//! The ELF header and program headers, parsed from bytes read off a file
//! (or from memory the kernel mapped).

use object::elf::*;

use super::consts::*;

/// The refusal of an object of the other ELF class (a 32-bit library).
pub const WRONG_CLASS: &str = "wrong ELF class: not a 64-bit object";
/// The refusal of an object built for another architecture.
pub const WRONG_MACHINE: &str = "wrong machine type (built for another architecture)";

/// The parts of `Elf64_Ehdr` the loader uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ehdr {
    pub e_type: u16,
    pub e_machine: u16,
    pub e_entry: u64,
    pub e_phoff: u64,
    pub e_phentsize: u16,
    pub e_phnum: u16,
}

/// `Elf64_Phdr`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Phdr {
    pub p_type: u32,
    pub p_flags: u32,
    pub p_offset: u64,
    pub p_vaddr: u64,
    pub p_paddr: u64,
    pub p_filesz: u64,
    pub p_memsz: u64,
    pub p_align: u64,
}

pub const EHDR_SIZE: usize = 64;
pub const PHDR_SIZE: usize = 56;
/// More program headers than any real object has; bounds what we read.
pub const MAX_PHNUM: usize = 256;

pub(crate) fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}
pub(crate) fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}
pub(crate) fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

/// Why a file is not a loadable object for this machine.
pub type HeaderError = &'static str;

impl Ehdr {
    /// Parses and validates an ELF header for `machine`.
    pub fn parse(b: &[u8], machine: u16) -> Result<Ehdr, HeaderError> {
        if b.len() < 4 || b[..4] != ELFMAG {
            return Err(if b.len() < 4 { "file too short" } else { "invalid ELF header (not an ELF file)" });
        }
        if b.len() < EHDR_SIZE {
            return Err("file too short");
        }
        if b[EI_CLASS] != ELFCLASS64 {
            return Err(WRONG_CLASS);
        }
        if b[EI_DATA] != ELFDATA2LSB {
            return Err("wrong ELF data encoding: not little-endian");
        }
        if b[EI_VERSION] != EV_CURRENT {
            return Err("unsupported ELF version");
        }
        let e = Ehdr {
            e_type: u16_at(b, 16).ok_or("file too short")?,
            e_machine: u16_at(b, 18).ok_or("file too short")?,
            e_entry: u64_at(b, 24).ok_or("file too short")?,
            e_phoff: u64_at(b, 32).ok_or("file too short")?,
            e_phentsize: u16_at(b, 54).ok_or("file too short")?,
            e_phnum: u16_at(b, 56).ok_or("file too short")?,
        };
        if e.e_machine != machine {
            return Err(WRONG_MACHINE);
        }
        if e.e_type != ET_DYN && e.e_type != ET_EXEC {
            return Err("only ET_DYN and ET_EXEC can be loaded");
        }
        if e.e_phentsize as usize != PHDR_SIZE {
            return Err("unexpected program header size");
        }
        if e.e_phnum == 0 || e.e_phnum as usize > MAX_PHNUM {
            return Err("bad number of program headers");
        }
        Ok(e)
    }

    /// Byte range of the program header table in the file.
    pub fn phdr_range(&self) -> Option<core::ops::Range<usize>> {
        let start = usize::try_from(self.e_phoff).ok()?;
        let len = self.e_phnum as usize * PHDR_SIZE;
        Some(start..start.checked_add(len)?)
    }
}

impl Phdr {
    pub fn parse(b: &[u8]) -> Option<Phdr> {
        Some(Phdr {
            p_type: u32_at(b, 0)?,
            p_flags: u32_at(b, 4)?,
            p_offset: u64_at(b, 8)?,
            p_vaddr: u64_at(b, 16)?,
            p_paddr: u64_at(b, 24)?,
            p_filesz: u64_at(b, 32)?,
            p_memsz: u64_at(b, 40)?,
            p_align: u64_at(b, 48)?,
        })
    }

    /// Parses a whole table.
    pub fn parse_all(b: &[u8]) -> Option<alloc::vec::Vec<Phdr>> {
        b.chunks_exact(PHDR_SIZE).map(Phdr::parse).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(machine: u16) -> [u8; 64] {
        let mut h = [0u8; 64];
        h[..4].copy_from_slice(&ELFMAG);
        h[EI_CLASS] = ELFCLASS64;
        h[EI_DATA] = ELFDATA2LSB;
        h[EI_VERSION] = EV_CURRENT;
        h[16..18].copy_from_slice(&ET_DYN.to_le_bytes());
        h[18..20].copy_from_slice(&machine.to_le_bytes());
        h[32..40].copy_from_slice(&64u64.to_le_bytes());
        h[54..56].copy_from_slice(&56u16.to_le_bytes());
        h[56..58].copy_from_slice(&3u16.to_le_bytes());
        h
    }

    #[test]
    fn accepts_a_valid_header_and_rejects_the_wrong_machine() {
        let h = header(EM_X86_64);
        let e = Ehdr::parse(&h, EM_X86_64).unwrap();
        assert_eq!(e.e_phnum, 3);
        assert_eq!(e.phdr_range(), Some(64..64 + 3 * 56));
        assert!(Ehdr::parse(&h, EM_AARCH64).unwrap_err().contains("wrong machine"));
    }

    #[test]
    fn rejects_truncated_and_foreign_input() {
        let h = header(EM_X86_64);
        for len in 0..64 {
            assert!(Ehdr::parse(&h[..len], EM_X86_64).is_err());
        }
        assert!(Ehdr::parse(b"#!/bin/sh\nexit 0\n.................................................", EM_X86_64)
            .unwrap_err()
            .contains("not an ELF"));
        let mut bad = h;
        bad[EI_CLASS] = ELFCLASS32;
        assert!(Ehdr::parse(&bad, EM_X86_64).is_err());
    }
}
