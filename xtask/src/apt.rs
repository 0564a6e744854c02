//! A private apt: Debian packages fetched with the machine's own `apt-get`,
//! but with our own sources list, package lists, cache and an empty dpkg
//! status, all under one directory in `target/`. The machine's sources,
//! package lists and dpkg database are never read or written, so this works
//! the same on a developer's machine and on a fresh CI one, and packages of
//! an architecture the machine does not have (arm64) need no
//! `dpkg --add-architecture`.
//!
//! Used by `glibc-layouts` (exact `libc6`/`libc6-dbg` versions) and
//! `sysroot` (a package set and its dependency closure).

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util;

/// The Debian archive's signing keys (package `debian-archive-keyring`).
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// One private apt configuration and state directory.
pub struct Apt {
    dir: PathBuf,
    /// `(archive, suite)`: `("debian", "bookworm")` is
    /// `http://deb.debian.org/debian bookworm main`.
    suites: Vec<(String, String)>,
    /// `APT::Architecture`: the architecture dependencies resolve to. None:
    /// the machine's (dpkg's) native architecture.
    native: Option<String>,
    /// `APT::Architectures`: every architecture whose lists are fetched.
    arches: Vec<String>,
}

/// One package of a resolved closure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub arch: String,
}

impl Package {
    /// The file name apt gives the package's .deb (an epoch's `:` is
    /// written `%3a`).
    pub fn deb_file(&self) -> String {
        format!("{}_{}_{}.deb", self.name, self.version.replace(':', "%3a"), self.arch)
    }
}

impl Apt {
    /// State under `dir`; lists for `suites` and `arches`.
    pub fn new(dir: PathBuf, suites: &[(&str, &str)], arches: &[&str]) -> Apt {
        Apt {
            dir,
            suites: suites.iter().map(|(a, s)| (a.to_string(), s.to_string())).collect(),
            native: None,
            arches: arches.iter().map(|a| a.to_string()).collect(),
        }
    }

    /// Resolve dependencies as on a machine whose architecture is `arch`.
    pub fn native_arch(mut self, arch: &str) -> Apt {
        self.native = Some(arch.into());
        self
    }

    /// Creates the state directories, writes the sources list (every time,
    /// so a changed suite list takes effect) and an empty dpkg status.
    fn prepare(&self) -> Result<(), String> {
        for d in ["lists/partial", "cache/archives/partial", "sources.list.d"] {
            let p = self.dir.join(d);
            fs::create_dir_all(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        }
        if !Path::new(KEYRING).exists() {
            return Err(format!("{KEYRING} not found: install the Debian package `debian-archive-keyring`"));
        }
        let mut sources = String::new();
        for (archive, suite) in &self.suites {
            let _ = writeln!(sources, "deb [signed-by={KEYRING}] http://deb.debian.org/{archive} {suite} main");
        }
        let list = self.dir.join("sources.list");
        if fs::read_to_string(&list).ok().as_deref() != Some(sources.as_str()) {
            fs::write(&list, sources).map_err(|e| format!("{}: {e}", list.display()))?;
        }
        let status = self.dir.join("status");
        if !status.exists() {
            fs::write(&status, "").map_err(|e| format!("{}: {e}", status.display()))?;
        }
        Ok(())
    }

    /// `apt-get CMD` with the private configuration, run in `cwd`.
    fn apt_get(&self, cmd: &str, cwd: &Path) -> Command {
        self.tool("apt-get", cmd, cwd)
    }

    /// `PROG CMD` (an apt tool) with the private configuration, run in `cwd`.
    fn tool(&self, prog: &str, cmd: &str, cwd: &Path) -> Command {
        let mut c = Command::new(prog);
        c.current_dir(cwd);
        for (k, v) in [
            ("Dir::Etc::SourceList", self.dir.join("sources.list")),
            ("Dir::Etc::SourceParts", self.dir.join("sources.list.d")),
            ("Dir::State::Lists", self.dir.join("lists")),
            ("Dir::State::status", self.dir.join("status")),
            ("Dir::Cache", self.dir.join("cache")),
        ] {
            c.arg("-o").arg(format!("{k}={}", v.display()));
        }
        if let Some(native) = &self.native {
            c.arg("-o").arg(format!("APT::Architecture={native}"));
        }
        for a in &self.arches {
            c.arg("-o").arg(format!("APT::Architectures::={a}"));
        }
        c.args([
            "-o",
            "Acquire::Languages=none",
            "-o",
            "Debug::NoLocking=1",
            // A mirror's sid Release file can be past its Valid-Until date;
            // the signature still holds.
            "-o",
            "Acquire::Check-Valid-Until=false",
            // Root would hand the download to the `_apt` user, who may not
            // write into target/.
            "-o",
            "APT::Sandbox::User=root",
            "-q",
            cmd,
        ]);
        c
    }

    /// Whether package lists were fetched before.
    pub fn has_lists(&self) -> bool {
        fs::read_dir(self.dir.join("lists"))
            .map(|d| d.filter_map(Result::ok).any(|e| e.file_name().to_string_lossy().contains("_Packages")))
            .unwrap_or(false)
    }

    /// How long ago the package lists were fetched (None: never).
    pub fn lists_age(&self) -> Option<std::time::Duration> {
        let newest = fs::read_dir(self.dir.join("lists"))
            .ok()?
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().contains("_Packages"))
            .filter_map(|e| e.metadata().ok()?.modified().ok())
            .max()?;
        Some(newest.elapsed().unwrap_or_default())
    }

    /// The version of `package` (`NAME:ARCH`) apt would install: the newest
    /// the sources serve.
    pub fn candidate(&self, package: &str) -> Result<String, String> {
        self.prepare()?;
        let text = util::output(self.tool("apt-cache", "policy", &self.dir).arg(package))?;
        text.lines()
            .find_map(|l| l.trim().strip_prefix("Candidate: "))
            .filter(|v| *v != "(none)")
            .map(str::to_string)
            .ok_or_else(|| format!("apt-cache: no candidate for {package}:\n{text}"))
    }

    /// Every version of `package` (`NAME:ARCH`) the sources list, newest
    /// first (apt's "Version table").
    pub fn versions(&self, package: &str) -> Result<Vec<String>, String> {
        self.prepare()?;
        let text = util::output(self.tool("apt-cache", "policy", &self.dir).arg(package))?;
        let table = text.split_once("Version table:").map_or("", |(_, t)| t);
        // Version lines are `     VERSION PRIORITY` (or `*** VERSION PRIORITY`),
        // source lines start with the priority and a URL.
        Ok(table
            .lines()
            .map(|l| l.trim().trim_start_matches("*** "))
            .filter(|l| l.split_whitespace().count() == 2 && !l.starts_with(|c: char| c.is_ascii_digit() && l.contains("http")))
            .filter_map(|l| l.split_whitespace().next())
            .filter(|v| v.starts_with(|c: char| c.is_ascii_digit()) && v.contains('-'))
            .map(str::to_string)
            .collect())
    }

    /// `apt-get update`.
    pub fn update(&self) -> Result<(), String> {
        self.prepare()?;
        util::run(&mut self.apt_get("update", &self.dir))
    }

    /// `apt-get download PACKAGES` into `into`: with the lists already
    /// fetched if there are any, otherwise (or if that fails) after an
    /// update. A failure of that last download goes through `missing`,
    /// which can say what it means.
    pub fn download(&self, into: &Path, packages: &[String], missing: impl FnOnce(String) -> String) -> Result<(), String> {
        self.prepare()?;
        fs::create_dir_all(into).map_err(|e| format!("{}: {e}", into.display()))?;
        if self.has_lists() && util::run(self.apt_get("download", into).args(packages)).is_ok() {
            return Ok(());
        }
        self.update()?;
        util::run(self.apt_get("download", into).args(packages)).map_err(missing)
    }

    /// `packages` (`NAME` or `NAME=VERSION`) and their dependency closure,
    /// without recommends, as apt resolves it for an empty system.
    pub fn resolve(&self, packages: &[String]) -> Result<Vec<Package>, String> {
        self.prepare()?;
        let mut cmd = self.apt_get("install", &self.dir);
        cmd.args(["--simulate", "--no-install-recommends"]).args(packages);
        let text = util::output(&mut cmd)?;
        // `Inst NAME (VERSION SUITES [ARCH])`, maybe followed by `[]`.
        let mut out = Vec::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("Inst ") else { continue };
            let (name, rest) = rest.split_once(" (").ok_or_else(|| format!("apt-get: unexpected line `{line}`"))?;
            let inner = rest.split_once(')').map_or(rest, |(i, _)| i);
            let version = inner.split_whitespace().next().unwrap_or_default();
            let arch = inner
                .split_once('[')
                .and_then(|(_, a)| a.split_once(']'))
                .map(|(a, _)| a)
                .ok_or_else(|| format!("apt-get: no architecture in `{line}`"))?;
            let name = name.split(':').next().unwrap_or(name);
            out.push(Package { name: name.into(), version: version.into(), arch: arch.into() });
        }
        if out.is_empty() {
            return Err(format!("apt-get resolved nothing for {}", packages.join(" ")));
        }
        Ok(out)
    }

    /// Downloads `packages` (a resolved closure) into `into`, skipping the
    /// .debs already there.
    pub fn fetch(&self, into: &Path, packages: &[Package]) -> Result<(), String> {
        fs::create_dir_all(into).map_err(|e| format!("{}: {e}", into.display()))?;
        let wanted: Vec<String> =
            packages.iter().filter(|p| !into.join(p.deb_file()).exists()).map(|p| format!("{}:{}={}", p.name, p.arch, p.version)).collect();
        if wanted.is_empty() {
            return Ok(());
        }
        util::run(self.apt_get("download", into).args(&wanted))?;
        for p in packages {
            if !into.join(p.deb_file()).exists() {
                return Err(format!("apt-get download did not produce {}", into.join(p.deb_file()).display()));
            }
        }
        Ok(())
    }
}
