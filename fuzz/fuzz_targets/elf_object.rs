//! Headers, dynamic section, versions, hash tables and symbols of an
//! untrusted object (the loader's own parsers, `ld_cah::elf`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = ld_cah::elf::fuzz::parse_all(data, object_machine());
});

fn object_machine() -> u16 {
    62 // EM_X86_64; the parsers are the same for every machine.
}
