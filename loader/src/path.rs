//! Paths as bytes, for the few operations every stage needs.

/// The directory part of a path, for `$ORIGIN` (`"."` for a bare name).
pub fn dirname(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'/') {
        Some(0) => b"/",
        Some(i) => &path[..i],
        None => b".",
    }
}
