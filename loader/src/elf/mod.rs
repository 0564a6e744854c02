//! Views of ELF data: headers from a file buffer, and the dynamic section,
//! symbols, hash tables and versions of an object in memory.
//!
//! Everything here is safe code over two kinds of memory: byte slices
//! (headers read from a file) and [`Image`], the bounds-checked view of a
//! mapped object. Every read is checked; malformed input gives an error,
//! never a fault.

pub mod dynamic;
pub mod fuzz;
pub mod header;
pub mod image;
pub mod symbols;
pub mod version;

pub use dynamic::DynInfo;
pub use header::{Ehdr, Phdr};
pub use image::Image;
pub use symbols::Sym;

/// Constants `object` does not name (or names differently).
pub mod consts {
    pub const EI_CLASS: usize = 4;
    pub const EI_DATA: usize = 5;
    pub const EI_VERSION: usize = 6;
    pub const STN_UNDEF: u32 = 0;
    pub const DT_RELRSZ: u32 = 35;
    pub const DT_RELR: u32 = 36;
    pub const DT_RELRENT: u32 = 37;
}
