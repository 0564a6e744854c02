//! `/etc/ld.so.cache` (`ld_cah::link::ldcache`): parsing, and the binary
//! search over entries in any order, for fixed names (digit runs, the
//! common case) and for names taken from the input's own string table.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(c) = ld_cah::link::ldcache::LdCache::parse(data) {
        for name in [&b"libc.so.6"[..], b"libz.so.1", b"libstdc++.so.6.0.33", b""] {
            let _ = c.lookup(name, 0x0303);
        }
        for name in data.rsplit(|&b| b == 0).take(8) {
            let _ = c.lookup(name, 0x0303);
            let _ = c.lookup(name, 0x0a03);
        }
    }
});
