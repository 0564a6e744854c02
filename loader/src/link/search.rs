//! Where a `DT_NEEDED` name is looked for, in glibc's order:
//!
//! 1. `DT_RPATH` of the requesting object, then of the object that loaded
//!    it, up to the executable, unless the requester has `DT_RUNPATH`
//!    (an object's own `DT_RPATH` counts only if it has no `DT_RUNPATH`);
//! 2. `LD_LIBRARY_PATH` (or `--library-path`), ignored in secure mode;
//! 3. `DT_RUNPATH` of the requester only;
//! 4. `/etc/ld.so.cache`, unless inhibited or the requester has
//!    `DF_1_NODEFLIB`;
//! 5. the default directories, unless `DF_1_NODEFLIB`.
//!
//! Names containing `/` are paths and are not searched. This module is pure:
//! it yields candidate paths and the caller opens them, so the loader and
//! `cah patch` walk the very same order.

use alloc::vec::Vec;

use super::ldcache::LdCache;

/// The search data of one object in the requester chain.
#[derive(Clone, Copy, Debug, Default)]
pub struct SearchObject<'a> {
    pub rpath: Option<&'a [u8]>,
    pub runpath: Option<&'a [u8]>,
    /// Directory the object was loaded from, for `$ORIGIN`.
    pub origin: Option<&'a [u8]>,
    pub nodeflib: bool,
}

/// Values of the dynamic string tokens.
#[derive(Clone, Copy, Debug)]
pub struct Tokens<'a> {
    pub platform: &'a [u8],
    pub lib: &'a [u8],
    /// In secure mode `$ORIGIN` is not expanded (a set-uid program must
    /// not load from a directory its caller chose).
    pub secure: bool,
}

/// Everything beyond the requester chain that steers the search.
#[derive(Clone, Copy, Debug)]
pub struct SearchEnv<'a> {
    /// Already-split `LD_LIBRARY_PATH` / `--library-path` directories.
    pub library_path: &'a [Vec<u8>],
    pub cache: Option<LdCache<'a>>,
    pub cache_flags: i32,
    pub default_dirs: &'a [&'a str],
    pub tokens: Tokens<'a>,
}

/// Replaces `$ORIGIN`, `$LIB`, `$PLATFORM` (also in `${...}` form).
/// Returns `None` when a token cannot be expanded; glibc then drops the
/// whole entry.
pub fn expand(entry: &[u8], origin: Option<&[u8]>, t: &Tokens<'_>) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(entry.len());
    let mut i = 0;
    while i < entry.len() {
        if entry[i] != b'$' {
            out.push(entry[i]);
            i += 1;
            continue;
        }
        let rest = &entry[i + 1..];
        let (name, used) = if let Some(r) = rest.strip_prefix(b"{") {
            let end = r.iter().position(|&b| b == b'}')?;
            (&r[..end], end + 2)
        } else {
            let end = rest.iter().position(|&b| !(b.is_ascii_alphanumeric() || b == b'_')).unwrap_or(rest.len());
            (&rest[..end], end)
        };
        match name {
            b"ORIGIN" if !t.secure => out.extend_from_slice(origin?),
            b"LIB" => out.extend_from_slice(t.lib),
            b"PLATFORM" => out.extend_from_slice(t.platform),
            _ => return None,
        }
        i += 1 + used;
    }
    Some(out)
}

/// Splits a colon- or semicolon-separated list and expands its tokens.
/// An empty element means the current directory, as in glibc.
pub fn split_list(list: &[u8], origin: Option<&[u8]>, t: &Tokens<'_>) -> Vec<Vec<u8>> {
    list.split(|&b| b == b':' || b == b';')
        .filter_map(|e| if e.is_empty() { Some(b".".to_vec()) } else { expand(e, origin, t) })
        .collect()
}

/// Calls `probe` with each candidate path for `name` in search order and
/// returns the first `Some` it gives. `chain[0]` is the requester, the
/// last element the executable.
pub fn search<T>(
    name: &[u8],
    chain: &[SearchObject<'_>],
    env: &SearchEnv<'_>,
    mut probe: impl FnMut(&[u8]) -> Option<T>,
) -> Option<T> {
    let mut path = Vec::new();
    let mut try_dir = |dir: &[u8], probe: &mut dyn FnMut(&[u8]) -> Option<T>| -> Option<T> {
        path.clear();
        path.extend_from_slice(dir);
        if !path.is_empty() && path.last() != Some(&b'/') {
            path.push(b'/');
        }
        path.extend_from_slice(name);
        probe(&path)
    };
    let requester = chain.first().copied().unwrap_or_default();
    if requester.runpath.is_none() {
        for obj in chain {
            if obj.runpath.is_some() {
                continue;
            }
            if let Some(rpath) = obj.rpath {
                for dir in split_list(rpath, obj.origin, &env.tokens) {
                    if let Some(t) = try_dir(&dir, &mut probe) {
                        return Some(t);
                    }
                }
            }
        }
    }
    for dir in env.library_path {
        if let Some(t) = try_dir(dir, &mut probe) {
            return Some(t);
        }
    }
    if let Some(runpath) = requester.runpath {
        for dir in split_list(runpath, requester.origin, &env.tokens) {
            if let Some(t) = try_dir(&dir, &mut probe) {
                return Some(t);
            }
        }
    }
    if requester.nodeflib {
        return None;
    }
    if let Some(cache) = env.cache {
        if let Some(p) = cache.lookup(name, env.cache_flags) {
            if let Some(t) = probe(p) {
                return Some(t);
            }
        }
    }
    for dir in env.default_dirs {
        if let Some(t) = try_dir(dir.as_bytes(), &mut probe) {
            return Some(t);
        }
    }
    None
}

/// The directory part of a path, for `$ORIGIN` (`"."` for a bare name).
pub fn dirname(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'/') {
        Some(0) => b"/",
        Some(i) => &path[..i],
        None => b".",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Tokens<'static> = Tokens { platform: b"x86_64", lib: b"lib/x86_64-linux-gnu", secure: false };

    fn order(name: &str, chain: &[SearchObject<'_>], lp: &[Vec<u8>]) -> Vec<String> {
        let env = SearchEnv { library_path: lp, cache: None, cache_flags: 0x303, default_dirs: &["/lib", "/usr/lib"], tokens: T };
        let mut seen = Vec::new();
        let r: Option<()> = search(name.as_bytes(), chain, &env, |p| {
            seen.push(String::from_utf8(p.to_vec()).unwrap());
            None
        });
        assert!(r.is_none());
        seen
    }

    #[test]
    fn tokens_expand_in_both_spellings() {
        assert_eq!(expand(b"$ORIGIN/../lib", Some(b"/opt/app/bin"), &T).unwrap(), b"/opt/app/bin/../lib");
        assert_eq!(expand(b"${ORIGIN}/x/$LIB/$PLATFORM", Some(b"/o"), &T).unwrap(), b"/o/x/lib/x86_64-linux-gnu/x86_64");
        assert_eq!(expand(b"$ORIGIN/x", None, &T), None);
        assert_eq!(expand(b"$UNKNOWN/x", Some(b"/o"), &T), None);
        let secure = Tokens { secure: true, ..T };
        assert_eq!(expand(b"$ORIGIN/x", Some(b"/o"), &secure), None);
    }

    #[test]
    fn rpath_then_library_path_then_runpath_then_defaults() {
        let exe = SearchObject { rpath: Some(b"/exe-rpath"), ..Default::default() };
        let lib = SearchObject { rpath: Some(b"/lib-rpath:$ORIGIN/r"), origin: Some(b"/here"), ..Default::default() };
        let lp = vec![b"/lp".to_vec()];
        assert_eq!(
            order("libx.so", &[lib, exe], &lp),
            ["/lib-rpath/libx.so", "/here/r/libx.so", "/exe-rpath/libx.so", "/lp/libx.so", "/lib/libx.so", "/usr/lib/libx.so"]
        );
        // With DT_RUNPATH, no DT_RPATH is used at all, and RUNPATH comes after LD_LIBRARY_PATH.
        let lib = SearchObject { rpath: Some(b"/ignored"), runpath: Some(b"/run"), ..Default::default() };
        assert_eq!(order("libx.so", &[lib, exe], &lp), ["/lp/libx.so", "/run/libx.so", "/lib/libx.so", "/usr/lib/libx.so"]);
        let nodef = SearchObject { nodeflib: true, ..Default::default() };
        assert_eq!(order("libx.so", &[nodef], &[]), Vec::<String>::new());
    }

    #[test]
    fn dirname_of_paths() {
        assert_eq!(dirname(b"/usr/lib/libc.so.6"), b"/usr/lib");
        assert_eq!(dirname(b"/libc.so.6"), b"/");
        assert_eq!(dirname(b"prog"), b".");
    }
}
