//! The ELF header and program headers, parsed from bytes read off a file
//! (or from memory the kernel mapped).

use object::elf::*;

use super::consts::*;

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

/// Why a file is not a loadable object for this machine. Callers match
/// on the variant (another machine or class means "go on searching"); the
/// text is [`HeaderError::message`] alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    TooShort,
    BadMagic,
    WrongClass,
    WrongData,
    BadVersion,
    WrongMachine,
    WrongType,
    BadPhentsize,
    BadPhnum,
}

impl HeaderError {
    /// ld-cah's wording (`glibc::dlerror` turns it into glibc's).
    pub fn message(self) -> &'static str {
        match self {
            HeaderError::TooShort => "file too short",
            HeaderError::BadMagic => "invalid ELF header (not an ELF file)",
            HeaderError::WrongClass => "wrong ELF class: not a 64-bit object",
            HeaderError::WrongData => "wrong ELF data encoding: not little-endian",
            HeaderError::BadVersion => "unsupported ELF version",
            HeaderError::WrongMachine => "wrong machine type (built for another architecture)",
            HeaderError::WrongType => "only ET_DYN and ET_EXEC can be loaded",
            HeaderError::BadPhentsize => "unexpected program header size",
            HeaderError::BadPhnum => "bad number of program headers",
        }
    }

    /// The file is an object, but for another machine or class: glibc's
    /// `open_verify` passes over it and the search goes on.
    pub fn other_machine(self) -> bool {
        matches!(self, HeaderError::WrongClass | HeaderError::WrongMachine)
    }
}

impl core::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.message())
    }
}

impl Ehdr {
    /// Parses and validates an ELF header for `machine`.
    pub fn parse(b: &[u8], machine: u16) -> Result<Ehdr, HeaderError> {
        if b.len() < 4 || b[..4] != ELFMAG {
            return Err(if b.len() < 4 { HeaderError::TooShort } else { HeaderError::BadMagic });
        }
        if b.len() < EHDR_SIZE {
            return Err(HeaderError::TooShort);
        }
        if b[EI_CLASS] != ELFCLASS64 {
            return Err(HeaderError::WrongClass);
        }
        if b[EI_DATA] != ELFDATA2LSB {
            return Err(HeaderError::WrongData);
        }
        if b[EI_VERSION] != EV_CURRENT {
            return Err(HeaderError::BadVersion);
        }
        let e = Ehdr {
            e_type: u16_at(b, 16).ok_or(HeaderError::TooShort)?,
            e_machine: u16_at(b, 18).ok_or(HeaderError::TooShort)?,
            e_entry: u64_at(b, 24).ok_or(HeaderError::TooShort)?,
            e_phoff: u64_at(b, 32).ok_or(HeaderError::TooShort)?,
            e_phentsize: u16_at(b, 54).ok_or(HeaderError::TooShort)?,
            e_phnum: u16_at(b, 56).ok_or(HeaderError::TooShort)?,
        };
        if e.e_machine != machine {
            return Err(HeaderError::WrongMachine);
        }
        if e.e_type != ET_DYN && e.e_type != ET_EXEC {
            return Err(HeaderError::WrongType);
        }
        if e.e_phentsize as usize != PHDR_SIZE {
            return Err(HeaderError::BadPhentsize);
        }
        if e.e_phnum == 0 || e.e_phnum as usize > MAX_PHNUM {
            return Err(HeaderError::BadPhnum);
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
        // Sized once (collecting into an Option grows the vector step by step).
        let mut out = alloc::vec::Vec::with_capacity(b.len() / PHDR_SIZE);
        for c in b.chunks_exact(PHDR_SIZE) {
            out.push(Phdr::parse(c)?);
        }
        Some(out)
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
        assert!(Ehdr::parse(&h, EM_AARCH64).unwrap_err() == HeaderError::WrongMachine);
    }

    #[test]
    fn rejects_truncated_and_foreign_input() {
        let h = header(EM_X86_64);
        for len in 0..64 {
            assert!(Ehdr::parse(&h[..len], EM_X86_64).is_err());
        }
        let script = Ehdr::parse(b"#!/bin/sh\nexit 0\n.................................................", EM_X86_64);
        assert_eq!(script.unwrap_err().message(), "invalid ELF header (not an ELF file)");
        let mut bad = h;
        bad[EI_CLASS] = ELFCLASS32;
        let class = Ehdr::parse(&bad, EM_X86_64).unwrap_err();
        assert!(class == HeaderError::WrongClass && class.other_machine());
        assert_eq!(alloc::format!("{class}"), "wrong ELF class: not a 64-bit object");
    }
}
