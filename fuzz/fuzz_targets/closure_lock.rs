//! The closure-lock note a patched program carries (`ld_cah::verify::lock`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(view) = ld_cah::verify::lock::LockView::parse(data) {
        for entry in view.iter() {
            let _ = (entry.name, entry.digest);
        }
    }
});
