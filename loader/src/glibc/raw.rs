//! Writing glibc structures whose layout comes from a generated table.
//!
//! [`Raw`] is an address plus the promise that a whole structure of the
//! table's size lives there; every access goes through a generated
//! [`Field`]/[`Bits`], never a hand-typed offset.
#![allow(unsafe_code)]

use super::layout::{Bits, Field};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Raw(usize);

impl Raw {
    /// # Safety
    /// `addr` points at writable memory large enough for every field that
    /// will be accessed through this value, for as long as it is used.
    pub unsafe fn new(addr: usize) -> Raw {
        Raw(addr)
    }

    pub fn addr(self) -> usize {
        self.0
    }

    /// The address of a member.
    pub fn at(self, f: Field) -> usize {
        self.0 + f.off as usize
    }

    /// A nested structure at member `f`.
    // A substructure (C's `&s->member`), not subtraction: `Raw` is no number.
    #[allow(clippy::should_implement_trait)]
    pub fn sub(self, f: Field) -> Raw {
        Raw(self.at(f))
    }

    /// Stores `v` with the member's width (1, 2, 4 or 8 bytes).
    pub fn put(self, f: Field, v: u64) {
        let p = self.at(f);
        // SAFETY: inside the structure (see `new`); widths match the member.
        unsafe {
            match f.size {
                1 => core::ptr::write_unaligned(p as *mut u8, v as u8),
                2 => core::ptr::write_unaligned(p as *mut u16, v as u16),
                4 => core::ptr::write_unaligned(p as *mut u32, v as u32),
                8 => core::ptr::write_unaligned(p as *mut u64, v),
                _ => {}
            }
        }
    }

    pub fn put_opt(self, f: Option<Field>, v: u64) {
        if let Some(f) = f {
            self.put(f, v);
        }
    }

    pub fn get(self, f: Field) -> u64 {
        let p = self.at(f);
        // SAFETY: as in `put`.
        unsafe {
            match f.size {
                1 => u64::from(core::ptr::read_unaligned(p as *const u8)),
                2 => u64::from(core::ptr::read_unaligned(p as *const u16)),
                4 => u64::from(core::ptr::read_unaligned(p as *const u32)),
                8 => core::ptr::read_unaligned(p as *const u64),
                _ => 0,
            }
        }
    }

    /// Sets a bit-field.
    pub fn put_bits(self, b: Bits, v: u64) {
        let span = b.byte_span() as usize;
        let p = self.0 + b.off as usize;
        if span == 1 {
            // The usual flag: one byte, read, masked, written back.
            let mask = (((1u16 << b.width) - 1) << b.bit) as u8;
            // SAFETY: the byte holding the field is inside the structure.
            unsafe {
                let old = *(p as *const u8);
                *(p as *mut u8) = (old & !mask) | (((v as u16) << b.bit) as u8 & mask);
            }
            return;
        }
        let mut buf = [0u8; 9];
        // SAFETY: the bytes holding the field are inside the structure.
        unsafe { core::ptr::copy_nonoverlapping(p as *const u8, buf.as_mut_ptr(), span) };
        let mut word = u128::from_le_bytes({
            let mut w = [0u8; 16];
            w[..9].copy_from_slice(&buf);
            w
        });
        let mask: u128 = ((1u128 << b.width) - 1) << b.bit;
        word = (word & !mask) | ((u128::from(v) << b.bit) & mask);
        let bytes = word.to_le_bytes();
        // SAFETY: as above.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), p as *mut u8, span) };
    }

    pub fn put_bits_opt(self, b: Option<Bits>, v: u64) {
        if let Some(b) = b {
            self.put_bits(b, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_bits_changes_exactly_the_field() {
        // Every placement of fields up to 12 bits wide, over bytes that
        // start all ones and all zeros: the field reads back, and no other
        // bit moved (checked bit by bit, as the C compiler lays them out).
        for fill in [0u8, 0xff] {
            for bit in 0..8u8 {
                for width in 1..=12u8 {
                    let b = Bits { off: 1, bit, width };
                    let v = 0x5a5u64 & ((1 << width) - 1);
                    let mut mem = [fill; 4];
                    // SAFETY: `mem` holds every byte of the field.
                    unsafe { Raw::new(mem.as_mut_ptr() as usize) }.put_bits(b, v);
                    for i in 0..32u32 {
                        let got = (mem[i as usize / 8] >> (i % 8)) & 1;
                        let want = match i.checked_sub(8 + u32::from(bit)) {
                            Some(k) if k < u32::from(width) => ((v >> k) & 1) as u8,
                            _ => fill & 1,
                        };
                        assert_eq!(got, want, "bit {i} of field {b:?} over {fill:#x}");
                    }
                }
            }
        }
    }
}
