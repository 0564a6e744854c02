//! What `dlerror()` says, as glibc's loader words it.
//!
//! libc builds the text from the `(objname, errstring)` pair the loader
//! signals: `objname: errstring`, plus `: strerror(errcode)` when there is
//! an error code (`dlfcn/dlerror.c`). ld-cah's own errors name things its
//! way (an [`Error`] is the object and what went wrong, for its one-line
//! start-up refusals); this module gives a `dlopen` failure the pair
//! glibc's `_dl_map_object` / `open_verify` (`elf/dl-load.c`) and
//! `match_symbol` (`elf/dl-version.c`) would signal, the error code
//! already spelled out in `errstring`:
//!
//! * not found: `NAME: cannot open shared object file: No such file or
//!   directory` (the name as asked for; a candidate of the wrong machine
//!   counts as not found), or `NAME: wrong ELF class: ELFCLASS32` when a
//!   candidate was of the other class;
//! * a file that cannot be loaded: `PATH: file too short`, `PATH: invalid
//!   ELF header`, `PATH: cannot read file data: Is a directory`, ...;
//! * a missing version: `DEFINER: version `V' not found (required by
//!   USER)`;
//! * an undefined symbol under `RTLD_NOW`: `OBJECT: undefined symbol: S`;
//! * ld-cah's own refusals (verification): its message alone.

use alloc::string::{String, ToString};

use crate::diag::{Error, ErrorKind};

/// glibc's `strerror` text for the errno ld-cah's [`crate::sys::Errno::describe`]
/// wrote as `what`; a candidate refused for any other reason (another
/// machine, ...) is `ENOENT`, as `open_verify` leaves it.
fn strerror(what: &str) -> &'static str {
    match what {
        "operation not permitted" => "Operation not permitted",
        "input/output error" => "Input/output error",
        "bad file descriptor" => "Bad file descriptor",
        "out of memory" => "Cannot allocate memory",
        "permission denied" => "Permission denied",
        "file cannot be mapped" => "No such device",
        "not a directory" => "Not a directory",
        "is a directory" => "Is a directory",
        "invalid argument" => "Invalid argument",
        "too many open files" => "Too many open files",
        "text file busy" => "Text file busy",
        "file too large" => "File too large",
        "read-only file system" => "Read-only file system",
        "file name too long" => "File name too long",
        "too many levels of symbolic links" => "Too many levels of symbolic links",
        _ => "No such file or directory",
    }
}

/// `open_verify`'s wording for what ld-cah's header and segment checks
/// (`elf::header`, `map`) found wrong with a file; `None` when glibc has
/// no such check (ld-cah's own wording is kept).
fn verify_text(why: &str, path: &str) -> Option<String> {
    Some(
        match why {
            "file too short" => "file too short",
            "invalid ELF header (not an ELF file)" => "invalid ELF header",
            "wrong ELF data encoding: not little-endian" => "ELF file data encoding not little-endian",
            "unsupported ELF version" => "ELF file version ident does not match current one",
            "only ET_DYN and ET_EXEC can be loaded" => "only ET_DYN and ET_EXEC can be loaded",
            "unexpected program header size" => "ELF file's phentsize not the expected size",
            // The program headers cannot all be read: a short read, no errno.
            "file too short for its program headers" => "cannot read file data",
            "no loadable segments" => "object file has no loadable segments",
            // glibc opens it and fails to read it (`EISDIR`).
            "not a regular file" if is_directory(path) => "cannot read file data: Is a directory",
            _ => return None,
        }
        .to_string(),
    )
}

fn is_directory(path: &str) -> bool {
    let mut p = alloc::vec::Vec::from(path.as_bytes());
    p.push(0);
    crate::sys::open(&p, crate::sys::O_RDONLY | crate::sys::O_DIRECTORY, 0).is_ok()
}

const NOT_FOUND: &str = ": cannot open shared object file: ";

/// The `(objname, errstring)` glibc would signal for a failed `dlopen`.
pub fn for_dlopen(e: &Error) -> (String, String) {
    let m = e.message.as_str();
    // `NAME: cannot open shared object file: WHY` or `... WHY (PATH)`.
    if let Some(i) = m.find(NOT_FOUND).filter(|_| e.kind == ErrorKind::NotFound) {
        let (name, detail) = (&m[..i], &m[i + NOT_FOUND.len()..]);
        let why = match detail.rfind(" (") {
            Some(j) if detail.ends_with(')') => &detail[..j],
            _ => detail,
        };
        let text = if why == crate::elf::header::HeaderError::WrongClass.message() {
            String::from("wrong ELF class: ELFCLASS32")
        } else {
            alloc::format!("cannot open shared object file: {}", strerror(why))
        };
        return (name.to_string(), text);
    }
    // `version `V' not found (required by USER from DEFINER)`.
    if let (Some(rest), Some(from)) = (m.strip_prefix("version `"), m.rfind(" from ")) {
        if m.ends_with(')') && rest.contains("' not found (required by ") {
            return (m[from + " from ".len()..m.len() - 1].to_string(), alloc::format!("{})", &m[..from]));
        }
    }
    if let Some(text) = verify_text(m, &e.object) {
        return (e.object.clone(), text);
    }
    // A symbol a relocation needs (`RTLD_NOW`): the object that needs it,
    // as `_dl_lookup_symbol_x` names it.
    if e.kind == ErrorKind::UndefinedSymbol {
        return (e.object.clone(), e.message.clone());
    }
    // ld-cah's own refusals (a locked library that does not verify, ...)
    // have no glibc wording: the message alone, which names what it is about.
    (String::new(), e.message.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(object: &str, message: &str) -> String {
        let kind = if message.contains(NOT_FOUND) {
            ErrorKind::NotFound
        } else if message.starts_with("undefined symbol: ") {
            ErrorKind::UndefinedSymbol
        } else {
            ErrorKind::Other
        };
        let (o, s) = for_dlopen(&Error { object: object.into(), message: message.into(), kind });
        if o.is_empty() {
            s
        } else {
            alloc::format!("{o}: {s}")
        }
    }

    #[test]
    fn dl_load_wording() {
        assert_eq!(
            text("./prog", "libx.so: cannot open shared object file: no such file or directory"),
            "libx.so: cannot open shared object file: No such file or directory"
        );
        assert_eq!(
            text("./prog", "/d/libx.so: cannot open shared object file: wrong machine type (built for another architecture) (/d/libx.so)"),
            "/d/libx.so: cannot open shared object file: No such file or directory"
        );
        assert_eq!(
            text("./prog", "libx.so: cannot open shared object file: wrong ELF class: not a 64-bit object (/d/libx.so)"),
            "libx.so: wrong ELF class: ELFCLASS32"
        );
        assert_eq!(
            text("./prog", "libx.so: cannot open shared object file: permission denied (/d/libx.so)"),
            "libx.so: cannot open shared object file: Permission denied"
        );
        assert_eq!(text("/d/libx.so", "file too short"), "/d/libx.so: file too short");
        assert_eq!(text("/d/libx.so", "invalid ELF header (not an ELF file)"), "/d/libx.so: invalid ELF header");
        assert_eq!(text("/d/libx.so", "file too short for its program headers"), "/d/libx.so: cannot read file data");
        assert_eq!(text("/", "not a regular file"), "/: cannot read file data: Is a directory");
        assert_eq!(
            text("./prog", "version `V_3' not found (required by ./prog from /d/libver.so)"),
            "/d/libver.so: version `V_3' not found (required by ./prog)"
        );
        assert_eq!(text("/d/libp.so", "undefined symbol: f, version V"), "/d/libp.so: undefined symbol: f, version V");
        assert_eq!(text("ld-cah.so", "invalid handle"), "invalid handle");
        assert_eq!(
            text("./prog", "libx.so (blake3:ab): no matching file; tried /d/libx.so (blake3:cd)"),
            "libx.so (blake3:ab): no matching file; tried /d/libx.so (blake3:cd)"
        );
    }
}
