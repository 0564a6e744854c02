//! What `cah cache stats/verify/lookup` do with a hash cache file's words
//! (`cah/src/fuzz.rs`, over `ld_cah::verify::cache`).
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
    fuzz::hash_cache(data);
});
