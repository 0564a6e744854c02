//! Error output: one line on stderr and exit status 127 for every refusal
//! (docs/security.md), and `CAH_DEBUG` diagnostics.

use alloc::string::String;
use core::fmt::{self, Write};

use crate::sys;

/// The exit status of every refusal, as glibc's loader uses.
pub const EXIT_FAILURE: i32 = 127;

/// What kind of failure an [`Error`] is, for the callers that act on it
/// (listing goes on past a missing library, lazy binding past a missing
/// function, `dlerror` words each as glibc does); the text is for people.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ErrorKind {
    #[default]
    Other,
    /// A library that cannot be found or opened.
    NotFound,
    /// A symbol a relocation needs is defined nowhere.
    UndefinedSymbol,
    /// A needed version names a library that is not loaded.
    VersionFileMissing,
}

/// A start-up or link error: which object, and what went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub object: String,
    pub message: String,
    pub kind: ErrorKind,
}

impl Error {
    pub fn new(object: &str, message: fmt::Arguments<'_>) -> Error {
        let mut m = String::new();
        let _ = m.write_fmt(message);
        Error { object: String::from(object), message: m, kind: ErrorKind::Other }
    }

    /// The same error, of kind `kind`.
    pub fn of_kind(mut self, kind: ErrorKind) -> Error {
        self.kind = kind;
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.object, self.message)
    }
}

/// `Error::new` with `format_args!` syntax.
#[macro_export]
macro_rules! err {
    ($obj:expr, $($fmt:tt)*) => {
        $crate::diag::Error::new($obj, format_args!($($fmt)*))
    };
}

/// Collects formatted text and writes it in one `write(2)`, so lines from
/// concurrent processes do not interleave.
pub struct Line {
    buf: [u8; 1024],
    len: usize,
    /// Where text that overflows the buffer goes before `flush_to`.
    fd: i32,
}

impl Line {
    /// A line for stderr.
    pub fn new() -> Line {
        Line::for_fd(2)
    }

    /// A line for `fd` (long text is written there in pieces).
    pub fn for_fd(fd: i32) -> Line {
        Line { buf: [0; 1024], len: 0, fd }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    pub fn flush_to(&mut self, fd: i32) {
        sys::write_all(fd, &self.buf[..self.len]);
        self.len = 0;
    }
}

impl Default for Line {
    fn default() -> Self {
        Line::new()
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == self.buf.len() {
                // Keep the line: long output goes out in pieces.
                sys::write_all(self.fd, &self.buf);
                self.len = 0;
            }
            self.buf[self.len] = b;
            self.len += 1;
        }
        Ok(())
    }
}

/// Prints `ld-cah.so: error: <error>` and exits with status 127.
pub fn fatal(e: &Error) -> ! {
    let mut line = Line::new();
    // One line: a newline inside the message would break the contract.
    let _ = write!(line, "ld-cah.so: error: ");
    for c in e.object.chars().chain(": ".chars()).chain(e.message.chars()) {
        let _ = line.write_char(if c == '\n' { ' ' } else { c });
    }
    let _ = line.write_char('\n');
    line.flush_to(2);
    sys::exit_group(EXIT_FAILURE)
}

/// Writes formatted text to a file descriptor.
pub fn print(fd: i32, args: fmt::Arguments<'_>) {
    let mut line = Line::for_fd(fd);
    let _ = line.write_fmt(args);
    line.flush_to(fd);
}

/// `CAH_DEBUG` categories, parsed once.
#[derive(Clone, Copy, Debug, Default)]
pub struct Debug {
    pub files: bool,
    pub symbols: bool,
    pub bindings: bool,
    pub statistics: bool,
}

impl Debug {
    pub fn parse(value: &[u8]) -> Debug {
        let mut d = Debug::default();
        for word in value.split(|&b| b == b',' || b == b' ' || b == b':') {
            match word {
                b"files" | b"libs" => d.files = true,
                b"symbols" => d.symbols = true,
                b"bindings" => d.bindings = true,
                b"statistics" => d.statistics = true,
                b"all" => {
                    d = Debug { files: true, symbols: true, bindings: true, statistics: true };
                }
                _ => {}
            }
        }
        d
    }
}

/// Bytes from a file (names, paths) as text for messages.
pub fn show(b: &[u8]) -> &str {
    core::str::from_utf8(b).unwrap_or("<non-UTF-8 name>")
}
