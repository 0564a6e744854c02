//! ld-cah: a freestanding dynamic loader with content-addressed libraries.
//!
//! The library target holds every stage of loading; the binary target
//! (`src/main.rs`, feature `rtld`) is only the glue that makes it
//! `ld-cah.so`. Pure modules (ELF views, search order, file formats) are
//! compiled into the host tool `cah` and tested on the host too.
//!
//! Stages, in the order data flows (docs/architecture.md): [`sys`] (the
//! kernel) → [`elf`] (views) → [`map`] (segments) → [`tls`] → [`verify`]
//! (digests, lock, hash cache) → [`link`] (closure, search, lookup) →
//! [`reloc`] → [`glibc`] → [`process`] (the one owner of the loader's state)
//! → [`init`] → [`pipeline`] (linking, shared by start-up and `dlopen`) →
//! [`dlopen`] → [`start`] (the driver). [`arch`] holds what differs by
//! architecture.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod arch;
pub mod cstr;
pub mod debug;
pub mod diag;
pub mod dlopen;
pub mod elf;
pub mod glibc;
pub mod heap;
pub mod init;
pub mod lazy;
pub mod link;
pub mod map;
pub mod path;
pub mod pipeline;
pub mod process;
pub mod reloc;
pub mod start;
pub mod sys;
pub mod thread;
pub mod tls;
pub mod trace;
pub mod verify;

/// `crt`'s `memcpy` and `memset` (that crate builds only into the
/// freestanding loader), compiled here unexported to test them on the host.
#[cfg(all(test, target_arch = "x86_64"))]
#[allow(unsafe_code)]
#[path = "../../crt/src/mem.rs"]
mod crt_mem;
