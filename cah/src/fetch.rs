//! `cah fetch PROG --from URL`: brings every locked library that neither
//! the store nor the search has (with the locked digest) into the store,
//! by digest, from a remote store: any static HTTP(S) server whose files
//! are laid out as `cah store`'s, `URL/<64 lower-case hex digits>`.
//!
//! What comes over the network is untrusted: it is read up to a size
//! bound, hashed, and enters the store (through a temporary file and a
//! rename) only if its digest is the locked one. A mismatch is refused and
//! nothing is written.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use ld_cah::verify::Digest;
use serde_json::json;

use crate::closure::Outcome;
use crate::hashing::tagged;
use crate::{files, store, Place};

/// Largest file accepted from a remote (a shared library is far smaller;
/// a server must not make us fill memory or the disk).
const MAX_SIZE: u64 = 1 << 30;

#[derive(Args)]
pub struct FetchArgs {
    /// A patched program.
    prog: PathBuf,
    /// Remote stores to try, in order (default: `CAH_REMOTE`, URLs
    /// separated by white space).
    #[arg(long = "from", value_name = "URL")]
    from: Vec<String>,
    /// Print JSON (docs/json.md).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    place: Place,
}

/// The remotes: `--from`, or else `CAH_REMOTE`.
fn remotes(a: &FetchArgs) -> Result<Vec<String>> {
    let list: Vec<String> = if a.from.is_empty() {
        std::env::var("CAH_REMOTE").unwrap_or_default().split_whitespace().map(str::to_string).collect()
    } else {
        a.from.clone()
    };
    if list.is_empty() {
        bail!("no remote store: give --from URL or set CAH_REMOTE");
    }
    for r in &list {
        if !(r.starts_with("http://") || r.starts_with("https://")) {
            bail!("{r}: a remote store is an http:// or https:// URL");
        }
    }
    Ok(list)
}

/// `URL/<hex>`, or why not.
fn download(agent: &ureq::Agent, remote: &str, digest: &Digest) -> Result<Vec<u8>> {
    let url = format!("{}/{}", remote.trim_end_matches('/'), String::from_utf8_lossy(&digest.to_hex()));
    let resp = agent.get(&url).call().map_err(|e| anyhow!("{url}: {e}"))?;
    let mut body = Vec::new();
    resp.into_reader().take(MAX_SIZE + 1).read_to_end(&mut body).with_context(|| url.clone())?;
    if body.len() as u64 > MAX_SIZE {
        bail!("{url}: larger than {MAX_SIZE} bytes");
    }
    Ok(body)
}

pub fn run(a: FetchArgs) -> Result<bool> {
    let remotes = remotes(&a)?;
    let data = files::read_regular(&a.prog)?;
    let lock = crate::read_lock(&a.prog, &data)?;
    let closure = crate::resolve_locked(&a.prog, &lock, &a.place)?;
    let agent =
        ureq::AgentBuilder::new().timeout_connect(std::time::Duration::from_secs(10)).timeout(std::time::Duration::from_secs(300)).build();
    let (mut fetched, mut present, mut failed) = (0, 0, 0);
    let mut entries = Vec::new();
    let mut lines = Vec::new();
    for d in &closure.deps {
        let Some(want) = d.locked else { continue };
        let name = String::from_utf8_lossy(&d.name);
        if let Outcome::Found { .. } = d.outcome {
            present += 1;
            entries.push(json!({"name": name, "digest": tagged(&want), "status": "present"}));
            continue;
        }
        let mut errors = Vec::new();
        let mut done = false;
        for r in &remotes {
            match download(&agent, r, &want) {
                Ok(body) => {
                    let got = ld_cah::verify::hash(&body);
                    if got != want {
                        errors.push(format!("{r}: refused: content is {}, not {}", tagged(&got), tagged(&want)));
                        continue;
                    }
                    put(&a.place.store, &want, &body)?;
                    lines.push(format!("fetched   {name}  {}  {} bytes from {r}", tagged(&want), body.len()));
                    entries.push(json!({"name": name, "digest": tagged(&want), "status": "fetched", "remote": r, "size": body.len()}));
                    done = true;
                    break;
                }
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        if done {
            fetched += 1;
        } else {
            failed += 1;
            lines.push(format!("failed    {name}  {}: {}", tagged(&want), errors.join("; ")));
            entries.push(json!({"name": name, "digest": tagged(&want), "status": "failed", "errors": errors}));
        }
    }
    if a.json {
        crate::json::print("fetch", json!({"program": a.prog.display().to_string(), "ok": failed == 0, "entries": entries}))?;
    } else {
        for l in &lines {
            println!("{l}");
        }
        println!("{}: {fetched} fetched, {present} already here, {failed} failed", a.prog.display());
    }
    Ok(failed == 0)
}

/// Writes verified content into the store under its digest.
fn put(store: &Path, digest: &Digest, body: &[u8]) -> Result<()> {
    std::fs::create_dir_all(store).with_context(|| format!("creating store {}", store.display()))?;
    let dest = store::path_of(store, digest);
    if !dest.exists() {
        files::write_new(&dest, body, 0o444, None)?;
    }
    Ok(())
}
