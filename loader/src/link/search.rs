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
//! In secure mode `$ORIGIN` follows glibc's restrictions (see
//! [`Tokens::secure`]); a preload searched by name skips the cache and
//! accepts only set-user-ID files (the caller's probe checks that).
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
    /// The object is the program (its `$ORIGIN` is checked in secure mode).
    pub executable: bool,
    pub nodeflib: bool,
}

/// Values of the dynamic string tokens.
#[derive(Clone, Copy, Debug)]
pub struct Tokens<'a> {
    pub platform: &'a [u8],
    pub lib: &'a [u8],
    /// Secure mode (set-uid programs): `$ORIGIN` is expanded only at the
    /// start of an entry, and in the executable's own entries only when
    /// the result stays inside a trusted directory (glibc's
    /// `_dl_dst_substitute`), so a caller-chosen link cannot steer loading.
    pub secure: bool,
    /// The trusted directories of secure mode (glibc's system search
    /// directories, which are our default ones).
    pub trusted: &'a [&'a str],
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

/// The dynamic string tokens glibc knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dst {
    Origin,
    Platform,
    Lib,
}

/// The token that `rest` (what follows a `$`) starts with, and how many
/// bytes it takes (braces included), under the ELF gABI rules glibc's
/// `is_dst` applies: `NAME` not followed by an identifier character, or
/// `{NAME}`.
fn dst_at(rest: &[u8]) -> Option<(Dst, usize)> {
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let curly = rest.first() == Some(&b'{');
    let body = if curly { &rest[1..] } else { rest };
    [(Dst::Origin, &b"ORIGIN"[..]), (Dst::Platform, b"PLATFORM"), (Dst::Lib, b"LIB")].into_iter().find_map(|(d, name)| {
        let after = body.strip_prefix(name)?;
        match (curly, after.first()) {
            (true, Some(b'}')) => Some((d, name.len() + 2)),
            (false, next) if !next.is_some_and(|&b| ident(b)) => Some((d, name.len())),
            _ => None,
        }
    })
}

/// How many known dynamic string tokens `s` holds (glibc's
/// `_dl_dst_count`); in secure mode a `DT_NEEDED` name with any is refused.
pub fn dst_count(s: &[u8]) -> usize {
    (0..s.len()).filter(|&i| s[i] == b'$' && dst_at(&s[i + 1..]).is_some()).count()
}

/// Whether `path`, with `.`, `..` and repeated slashes resolved as text,
/// lies in one of `dirs` (glibc's `is_trusted_path_normalize`).
fn is_trusted(path: &[u8], dirs: &[&str]) -> bool {
    if path.first() != Some(&b'/') {
        return false;
    }
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut norm = Vec::with_capacity(path.len() + 1);
    for c in &parts {
        norm.push(b'/');
        norm.extend_from_slice(c);
    }
    norm.push(b'/');
    dirs.iter().any(|d| {
        let d = d.as_bytes().strip_suffix(b"/").unwrap_or(d.as_bytes());
        norm.starts_with(d) && norm.get(d.len()) == Some(&b'/')
    })
}

/// Replaces `$ORIGIN`, `$LIB`, `$PLATFORM` (also in `${...}` form) in one
/// entry of `executable` or of a library whose directory is `origin`.
/// Returns `None` when the entry must be dropped, as glibc does: a token
/// it cannot expand (`$ORIGIN` of an unknown directory), or the secure
/// mode rules on `$ORIGIN` (see [`Tokens::secure`]). A `$` that starts no
/// known token is kept as it is.
pub fn expand(entry: &[u8], origin: Option<&[u8]>, executable: bool, t: &Tokens<'_>) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(entry.len());
    let mut saw_origin = false;
    let mut i = 0;
    while i < entry.len() {
        // Up to the next `$` in one copy (most entries have none).
        let plain = entry[i..].iter().position(|&b| b == b'$').unwrap_or(entry.len() - i);
        out.extend_from_slice(&entry[i..i + plain]);
        i += plain;
        if i == entry.len() {
            break;
        }
        let rest = &entry[i + 1..];
        let Some((dst, used)) = dst_at(rest) else {
            out.push(b'$');
            i += 1;
            continue;
        };
        match dst {
            Dst::Origin => {
                if t.secure && !(i == 0 && matches!(rest.get(used), None | Some(b'/'))) {
                    return None;
                }
                saw_origin = true;
                out.extend_from_slice(origin?);
            }
            Dst::Lib => out.extend_from_slice(t.lib),
            Dst::Platform => out.extend_from_slice(t.platform),
        }
        i += 1 + used;
    }
    // The caller can hard-link a set-uid program into a directory of its
    // choosing; only trusted directories may serve its `$ORIGIN`.
    if t.secure && executable && saw_origin && !is_trusted(&out, t.trusted) {
        return None;
    }
    Some(out)
}

/// Splits a colon- or semicolon-separated list and expands its tokens.
/// An empty element means the current directory, as in glibc.
pub fn split_list<'a>(list: &'a [u8], origin: Option<&'a [u8]>, executable: bool, t: &'a Tokens<'a>) -> impl Iterator<Item = Vec<u8>> + 'a {
    list.split(|&b| b == b':' || b == b';')
        .filter_map(move |e| if e.is_empty() { Some(b".".to_vec()) } else { expand(e, origin, executable, t) })
}

/// Calls `probe` with each candidate path for `name` in search order and
/// returns the first `Some` it gives. `chain[0]` is the requester, the
/// last element the executable.
pub fn search<T>(name: &[u8], chain: &[SearchObject<'_>], env: &SearchEnv<'_>, mut probe: impl FnMut(&[u8]) -> Option<T>) -> Option<T> {
    // Room for a directory of typical length, so that no candidate grows it.
    let mut path = Vec::with_capacity(name.len() + 128);
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
                for dir in split_list(rpath, obj.origin, obj.executable, &env.tokens) {
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
        for dir in split_list(runpath, requester.origin, requester.executable, &env.tokens) {
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

pub use crate::path::dirname;

/// A place a needed library may be found, as [`resolve`] offers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Candidate<'p> {
    /// The content-addressed store's file for the locked digest.
    Store,
    /// A path: the name itself (it has a slash) or a search candidate.
    Path(&'p [u8]),
}

/// A name with a slash whose dynamic string tokens cannot be expanded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unexpandable;

/// The one resolution order of a `DT_NEEDED` name, shared by the loader
/// and `cah` so that the two can never disagree on which file a locked
/// name gets (drift here would be a security bug):
///
/// 1. a locked name tries the store first;
/// 2. a name with a slash is that path (tokens expanded for `requester`);
/// 3. otherwise the search order of [`search`].
///
/// `probe` opens a candidate and decides: `Some` ends the resolution (the
/// file is accepted, or an error stops it), `None` passes over it (missing,
/// wrong class or machine, or, for a locked name, another digest: the
/// first file with the locked digest wins).
pub fn resolve<T>(
    name: &[u8],
    locked: bool,
    requester: &SearchObject<'_>,
    chain: &[SearchObject<'_>],
    env: &SearchEnv<'_>,
    mut probe: impl FnMut(Candidate<'_>) -> Option<T>,
) -> Result<Option<T>, Unexpandable> {
    if locked {
        if let Some(t) = probe(Candidate::Store) {
            return Ok(Some(t));
        }
    }
    if name.contains(&b'/') {
        let path = expand(name, requester.origin, requester.executable, &env.tokens).ok_or(Unexpandable)?;
        return Ok(probe(Candidate::Path(&path)));
    }
    Ok(search(name, chain, env, |p| probe(Candidate::Path(p))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_with<'a>(dirs: &'a [&'a str]) -> SearchEnv<'a> {
        SearchEnv {
            library_path: &[],
            cache: None,
            cache_flags: 0,
            default_dirs: dirs,
            tokens: Tokens { platform: b"x86_64", lib: b"lib", secure: false, trusted: dirs },
        }
    }

    #[test]
    fn resolve_tries_the_store_first_only_for_locked_names() {
        let dirs = ["/a", "/b"];
        let env = env_with(&dirs);
        let me = SearchObject::default();
        let name = |c: Candidate<'_>| match c {
            Candidate::Store => alloc::string::String::from("store"),
            Candidate::Path(p) => alloc::string::String::from_utf8_lossy(p).into_owned(),
        };
        let mut seen = Vec::new();
        let r = resolve(b"libx.so", true, &me, &[me], &env, |c| {
            seen.push(name(c));
            None::<()>
        });
        assert_eq!(r, Ok(None));
        assert_eq!(seen, ["store", "/a/libx.so", "/b/libx.so"]);
        seen.clear();
        let _ = resolve(b"libx.so", false, &me, &[me], &env, |c| {
            seen.push(name(c));
            None::<()>
        });
        assert_eq!(seen, ["/a/libx.so", "/b/libx.so"], "an unlocked name never comes from the store");
    }

    #[test]
    fn resolve_takes_the_first_candidate_the_probe_accepts() {
        let dirs = ["/a", "/b", "/c"];
        let env = env_with(&dirs);
        let me = SearchObject::default();
        // A file with another digest in /a is passed over; /b's wins and /c is never looked at.
        let mut looked = 0;
        let r = resolve(b"libx.so", true, &me, &[me], &env, |c| {
            looked += 1;
            match c {
                Candidate::Path(p) if p.starts_with(b"/b/") => Some(p.to_vec()),
                _ => None,
            }
        });
        assert_eq!(r, Ok(Some(b"/b/libx.so".to_vec())));
        assert_eq!(looked, 3, "store, /a, /b");
        // The store's file wins over every path.
        let r = resolve(b"libx.so", true, &me, &[me], &env, |c| (c == Candidate::Store).then_some("store"));
        assert_eq!(r, Ok(Some("store")));
    }

    #[test]
    fn resolve_takes_a_name_with_a_slash_as_a_path() {
        let dirs = ["/a"];
        let env = env_with(&dirs);
        let me = SearchObject { origin: Some(b"/opt/app"), ..SearchObject::default() };
        let r = resolve(b"$ORIGIN/lib/libx.so", false, &me, &[me], &env, |c| match c {
            Candidate::Path(p) => Some(p.to_vec()),
            Candidate::Store => None,
        });
        assert_eq!(r, Ok(Some(b"/opt/app/lib/libx.so".to_vec())));
        let none = SearchObject::default();
        assert_eq!(resolve(b"$ORIGIN/libx.so", false, &none, &[none], &env, |_| Some(())), Err(Unexpandable));
    }

    const TRUSTED: &[&str] = &["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib", "/usr/lib"];
    const T: Tokens<'static> = Tokens { platform: b"x86_64", lib: b"lib/x86_64-linux-gnu", secure: false, trusted: TRUSTED };

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
        assert_eq!(expand(b"$ORIGIN/../lib", Some(b"/opt/app/bin"), false, &T).unwrap(), b"/opt/app/bin/../lib");
        assert_eq!(expand(b"${ORIGIN}/x/$LIB/$PLATFORM", Some(b"/o"), false, &T).unwrap(), b"/o/x/lib/x86_64-linux-gnu/x86_64");
        assert_eq!(expand(b"$ORIGIN/x", None, false, &T), None);
        // As glibc's is_dst: not a token unless the name ends there.
        assert_eq!(expand(b"$UNKNOWN/x", Some(b"/o"), false, &T).unwrap(), b"$UNKNOWN/x");
        assert_eq!(expand(b"$ORIGINx/${ORIGINX}/$/x$", Some(b"/o"), false, &T).unwrap(), b"$ORIGINx/${ORIGINX}/$/x$");
        assert_eq!(expand(b"$LIB_x:$PLATFORM-y", None, false, &T).unwrap(), b"$LIB_x:x86_64-y");
        assert_eq!(dst_count(b"$ORIGIN/${LIB}/$PLATFORMS/$FOO"), 2);
        assert_eq!(dst_count(b"libfoo.so"), 0);
    }

    #[test]
    fn secure_mode_restricts_origin() {
        let s = Tokens { secure: true, ..T };
        // A library's $ORIGIN: only as the first element of the entry.
        assert_eq!(expand(b"$ORIGIN/x", Some(b"/o"), false, &s).unwrap(), b"/o/x");
        assert_eq!(expand(b"${ORIGIN}", Some(b"/o"), false, &s).unwrap(), b"/o");
        assert_eq!(expand(b"/a/$ORIGIN/x", Some(b"/o"), false, &s), None);
        assert_eq!(expand(b"$ORIGIN/$ORIGIN", Some(b"/o"), false, &s), None);
        assert_eq!(expand(b"$LIB/x/$PLATFORM", None, false, &s).unwrap(), b"lib/x86_64-linux-gnu/x/x86_64");
        // The executable's: only if the result is inside a trusted directory.
        let bin = Some(&b"/usr/lib/app/bin"[..]);
        assert_eq!(expand(b"$ORIGIN/../lib", bin, true, &s).unwrap(), b"/usr/lib/app/bin/../lib");
        assert_eq!(expand(b"$ORIGIN/../../../../tmp", bin, true, &s), None);
        assert_eq!(expand(b"$ORIGIN/../lib", Some(b"/home/u/bin"), true, &s), None);
        assert_eq!(expand(b"$ORIGIN", Some(b"/usr/lib64"), true, &s), None);
        assert_eq!(expand(b"$ORIGIN/.//x", Some(b"/lib"), true, &s).unwrap(), b"/lib/.//x");
        // Relative entries and entries without $ORIGIN are left alone.
        assert_eq!(expand(b"sub", Some(b"/home/u"), true, &s).unwrap(), b"sub");
        assert!(is_trusted(b"/usr/lib", TRUSTED) && is_trusted(b"/usr/lib/x86_64-linux-gnu/sub/..", TRUSTED));
        assert!(!is_trusted(b"/usr/lib/../bin", TRUSTED) && !is_trusted(b"/usr/libexec", TRUSTED));
        assert!(!is_trusted(b"usr/lib", TRUSTED) && !is_trusted(b"", TRUSTED));
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

    /// Entries built at random from tokens, separators and path pieces, in
    /// objects from trusted and untrusted directories: in secure mode an
    /// entry keeps `$ORIGIN` only at its start and before a `/` or its
    /// end, and the program's own entries expand it only to a path whose
    /// normal form (computed here apart from `is_trusted`) lies in a
    /// trusted directory; outside secure mode only an unknown origin
    /// drops an entry.
    #[test]
    fn origin_in_secure_mode_never_leads_outside_the_trusted_directories() {
        use crate::elf::fuzz::Rng;
        const PIECES: [&[u8]; 18] = [
            b"$ORIGIN",
            b"${ORIGIN}",
            b"$ORIGINX",
            b"${ORIGIN",
            b"$LIB",
            b"${PLATFORM}",
            b"$",
            b"/",
            b"//",
            b".",
            b"..",
            b"lib",
            b"usr",
            b"x86_64-linux-gnu",
            b"tmp",
            b"evil",
            b"{",
            b"_",
        ];
        const ORIGINS: [Option<&[u8]>; 6] =
            [None, Some(b"/usr/bin"), Some(b"/tmp/evil"), Some(b"/usr/lib/x86_64-linux-gnu"), Some(b"/"), Some(b"/lib/../tmp")];
        let trusted = ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib", "/usr/lib"];
        let normal = |p: &[u8]| {
            let mut parts: Vec<&[u8]> = Vec::new();
            for c in p.split(|&b| b == b'/').filter(|c| !c.is_empty() && *c != b".") {
                if c == b".." {
                    parts.pop();
                } else {
                    parts.push(c);
                }
            }
            parts.iter().flat_map(|c| [&b"/"[..], c]).flatten().copied().collect::<Vec<u8>>()
        };
        let in_trusted = |p: &[u8]| {
            let n = normal(p);
            p.starts_with(b"/") && trusted.iter().any(|d| n.starts_with(d.as_bytes()) && matches!(n.get(d.len()), None | Some(b'/')))
        };
        // Where `$ORIGIN` tokens start in `e`, and whether each ends the
        // entry or comes before a `/`.
        let origins_in = |e: &[u8]| -> Vec<(usize, bool)> {
            (0..e.len())
                .filter(|&i| e[i] == b'$')
                .filter_map(|i| match dst_at(&e[i + 1..]) {
                    Some((Dst::Origin, used)) => Some((i, matches!(e.get(i + 1 + used), None | Some(b'/')))),
                    _ => None,
                })
                .collect()
        };
        let mut rng = Rng(0x0419_1a5e_cafe_f00d);
        let mut expanded = 0;
        for _ in 0..20_000 {
            let mut e = Vec::new();
            for _ in 0..1 + rng.next_u64() % 6 {
                e.extend_from_slice(PIECES[(rng.next_u64() % PIECES.len() as u64) as usize]);
            }
            let origin = ORIGINS[(rng.next_u64() % ORIGINS.len() as u64) as usize];
            let executable = rng.next_u64() & 1 == 0;
            let found = origins_in(&e);
            for secure in [false, true] {
                let t = Tokens { platform: b"x86_64", lib: b"lib/x86_64-linux-gnu", secure, trusted: &trusted };
                let out = expand(&e, origin, executable, &t);
                let shown = alloc::string::String::from_utf8_lossy(&e).into_owned();
                if !secure {
                    assert_eq!(out.is_none(), !found.is_empty() && origin.is_none(), "{shown}");
                    continue;
                }
                let Some(out) = out else { continue };
                expanded += usize::from(!found.is_empty());
                assert!(found.iter().all(|&(at, ends)| at == 0 && ends), "{shown} kept $ORIGIN in secure mode");
                if executable && !found.is_empty() {
                    assert!(in_trusted(&out), "{shown} from {origin:?} expanded outside the trusted directories");
                }
            }
        }
        // The secure branch was reached with `$ORIGIN` expanded.
        assert!(expanded > 100, "{expanded}");
    }
}
