//! `/etc/ld.so.cache` (`ld_cah::link::ldcache`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(c) = ld_cah::link::ldcache::LdCache::parse(data) {
        let _ = c.lookup(b"libc.so.6", 0x0303);
    }
});
