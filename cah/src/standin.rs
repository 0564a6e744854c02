//! Whether ld-cah can stand in for a closure's glibc: the loader's own
//! choice of a layout table (`ld_cah::glibc::fingerprint::select_file`),
//! made before the program runs, so that `patch`, `show` and `verify` say
//! so instead of a program that cannot start passing as "verified".

use std::path::{Path, PathBuf};

use ld_cah::glibc::fingerprint::{select_file, FileVerdict, Mismatch};

use crate::closure::{Closure, Outcome};
use crate::files;

/// What the closure's `libc.so.6` means for the loader.
pub enum Glibc {
    /// The loader has a table for it: built in, or installed (its file).
    Known { path: PathBuf, version: &'static str, installed: Option<PathBuf> },
    /// It has none: the program would be refused at start-up.
    Unknown { path: PathBuf, version: String, why: String },
}

impl Glibc {
    /// One line for people.
    pub fn describe(&self) -> String {
        match self {
            Glibc::Known { path, version, installed: None } => {
                format!("glibc {version} ({}): layout table built in", path.display())
            }
            Glibc::Known { path, version, installed: Some(t) } => {
                format!("glibc {version} ({}): layout table installed ({})", path.display(), t.display())
            }
            Glibc::Unknown { path, version, why } => {
                format!("glibc {version} ({}): no layout table ({why}): ld-cah cannot start this program", path.display())
            }
        }
    }

    pub fn json(&self) -> serde_json::Value {
        match self {
            Glibc::Known { path, version, installed } => serde_json::json!({
                "path": path.display().to_string(),
                "version": version,
                "table": true,
                "installed": installed.as_ref().map(|t| t.display().to_string()),
            }),
            Glibc::Unknown { path, version, why } => {
                serde_json::json!({"path": path.display().to_string(), "version": version, "table": false, "why": why})
            }
        }
    }
}

/// The verdict on the closure's `libc.so.6`; `None` if it has none (or it
/// was not found, which the closure reports on its own). Like the loader,
/// a built-in table first, then one installed with `cah glibc add` in
/// `ROOT/etc/ld-cah/glibc` (or `$CAH_GLIBC_DIR`), named by libc's build id.
pub fn check(closure: &Closure, root: &Path) -> Option<Glibc> {
    let path = closure.deps.iter().find_map(|d| match &d.outcome {
        Outcome::Found { path, .. } if d.name == b"libc.so.6" => Some(path.clone()),
        _ => None,
    })?;
    let bytes = match files::read_regular(&path) {
        Ok(b) => b,
        Err(e) => return Some(Glibc::Unknown { path, version: "unknown".into(), why: format!("unreadable: {e:#}") }),
    };
    let verdict = match select_file(ld_cah::glibc::layouts::ALL, &bytes) {
        Ok(l) => return Some(Glibc::Known { path, version: l.glibc_version, installed: None }),
        Err(v) => v,
    };
    if let Some((table, l)) = installed(&bytes, root) {
        return Some(Glibc::Known { path, version: l.glibc_version, installed: Some(table) });
    }
    Some(match verdict {
        FileVerdict::NotLibc(why) => Glibc::Unknown { path, version: "unknown".into(), why: why.into() },
        FileVerdict::Unknown { version, why } => Glibc::Unknown {
            path,
            version: version.map_or_else(|| "unknown".into(), |v| String::from_utf8_lossy(&v).into_owned()),
            why: match why {
                Mismatch::Version => "no table for this version".into(),
                Mismatch::Imports => "it imports other loader symbols than the known builds".into(),
                Mismatch::ThreadDb(d) => format!("its _thread_db_{d} differs from the known builds"),
            },
        },
    })
}

/// The installed table that fits `libc` (file bytes), if there is one.
fn installed(libc: &[u8], root: &Path) -> Option<(PathBuf, &'static ld_cah::glibc::layout::Layout)> {
    use object::Object;
    let id = object::File::parse(libc).ok()?.build_id().ok()??;
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let dir = match std::env::var_os("CAH_GLIBC_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => root.join("etc/ld-cah/glibc"),
    };
    let table = dir.join(format!("{hex}.table"));
    let bytes = files::read_regular(&table).ok()?;
    let decoded = ld_cah::glibc::installed::decode(&bytes).ok()?;
    if decoded.libc_build_id != id {
        return None;
    }
    let layout: &'static ld_cah::glibc::layout::Layout = Box::leak(Box::new(decoded.layout));
    let l = select_file(&[layout], libc).ok()?;
    Some((table, l))
}
