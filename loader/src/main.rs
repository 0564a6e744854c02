//! `ld-cah.so`: the freestanding binary. Everything lives in the library;
//! this file links in the entry point (`crt`), the allocator and the panic
//! handler.
#![no_std]
#![no_main]

extern crate crt;

use ld_cah::heap::Heap;

#[global_allocator]
static HEAP: Heap = Heap::new();

/// A panic is a bug in ld-cah; still keep the error contract: one line and
/// exit status 127, never a fault.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let mut line = ld_cah::diag::Line::new();
    let _ = core::fmt::Write::write_fmt(&mut line, format_args!("ld-cah.so: error: internal error: {}\n", info.message()));
    line.flush_to(2);
    ld_cah::sys::exit_group(ld_cah::diag::EXIT_FAILURE)
}
