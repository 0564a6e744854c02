//! What `cah` does with the bytes of a program or library it is given:
//! the ELF summary (`cah/src/elfinfo.rs`), the lock reader, and the
//! patcher (`cah/src/patch.rs`, the `object` crate's ELF builder, and
//! `cah/src/dynstr.rs`, which puts the input's string table back), whose
//! output is read back. The entry point is `cah/src/fuzz.rs`.
#![no_main]
#![allow(dead_code)]

#[path = "../../cah/src/dynstr.rs"]
mod dynstr;
#[path = "../../cah/src/elfinfo.rs"]
mod elfinfo;
#[path = "../../cah/src/fuzz.rs"]
mod fuzz;
#[path = "../../cah/src/patch.rs"]
mod patch;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzz::elf_file(data);
});
