//! `cargo xtask package [ARCH]`: Debian packages of ld-cah,
//! `target/debian/ld-cah_<version>_{amd64,arm64}.deb` (docs/packaging.md).
//!
//! Each is `dpkg-deb --build --root-owner-group` of a staged tree,
//! `target/debian/stage-<deb arch>/`:
//!
//! - `/usr/lib/ld-cah/ld-cah.so`: the loader of that arch (static, no libc);
//! - `/usr/bin/cah`: the host tool built for that arch (arm64: cross-built
//!   with `aarch64-linux-gnu-gcc` as linker; left out, with a warning, if
//!   rustup has no aarch64 std);
//! - man pages (`cah.1` and one per subcommand) and bash, zsh and fish
//!   completions, made by `cah generate-assets` from the CLI definition;
//! - `docs/*.md`, `README.md` and `copyright` in `/usr/share/doc/ld-cah/`;
//! - `/usr/lib/tmpfiles.d/ld-cah.conf`, which makes the hash cache
//!   directory `/run/ld-cah` (a tmpfs) at every boot;
//! - `DEBIAN/{control,postinst,postrm}`: postinst makes the store
//!   (`/var/lib/cah/store`) and `/run/ld-cah`; purge removes them if empty;
//! - `DEBIAN/triggers`: file triggers on the directories programs and
//!   libraries live in; when one fires and `/etc/ld-cah/patch-root` exists
//!   (a patched image), postinst runs `cah patch --root /`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::build;
use crate::util::{self, Arch};

/// The Debian revision appended to the workspace version.
const DEBIAN_REVISION: &str = "1";

/// The package version: `<workspace version>-<revision>`.
pub fn version() -> String {
    format!("{}-{DEBIAN_REVISION}", env!("CARGO_PKG_VERSION"))
}

/// Where the package of `arch` is written.
pub fn deb_path(arch: Arch) -> PathBuf {
    util::root().join("target/debian").join(format!("ld-cah_{}_{}.deb", version(), arch.deb()))
}

pub fn run(args: &[String]) -> Result<(), String> {
    let arches = match args.first() {
        Some(a) => vec![Arch::parse(a)?],
        None => Arch::ALL.to_vec(),
    };
    // Both loaders and the host cah (which also makes the man pages).
    build::run(&[])?;
    let out = util::root().join("target/debian");
    let assets = out.join("assets");
    let _ = std::fs::remove_dir_all(&assets);
    util::run(Command::new(util::root().join("target/release/cah")).arg("generate-assets").arg(&assets))?;
    for arch in arches {
        let cah = build_cah(arch)?;
        if cah.is_none() {
            eprintln!(
                "xtask: warning: no Rust std for {} (rustup target add {}): the {} package has no /usr/bin/cah",
                arch.name(),
                arch.rust_target(),
                arch.deb()
            );
        }
        let deb = package(arch, cah.as_deref(), &assets)?;
        eprintln!("xtask: built {}", deb.display());
    }
    Ok(())
}

/// The `cah` binary for `arch`, or `None` if that target's std is missing.
fn build_cah(arch: Arch) -> Result<Option<PathBuf>, String> {
    let root = util::root();
    if arch == Arch::X86_64 {
        return Ok(Some(root.join("target/release/cah")));
    }
    let installed = util::output(Command::new("rustup").args(["target", "list", "--installed"])).unwrap_or_default();
    if !installed.lines().any(|l| l.trim() == arch.rust_target()) {
        // Try once; without network this fails and the package has no cah.
        let _ = util::run(Command::new("rustup").args(["target", "add", arch.rust_target()]));
        let installed = util::output(Command::new("rustup").args(["target", "list", "--installed"])).unwrap_or_default();
        if !installed.lines().any(|l| l.trim() == arch.rust_target()) {
            return Ok(None);
        }
    }
    let linker_var = format!("CARGO_TARGET_{}_LINKER", arch.rust_target().to_uppercase().replace('-', "_"));
    util::run(Command::new(util::host_cargo()).current_dir(&root).env(linker_var, arch.cc()).args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "cah",
        "--target",
        arch.rust_target(),
    ]))?;
    Ok(Some(root.join("target").join(arch.rust_target()).join("release/cah")))
}

fn package(arch: Arch, cah: Option<&Path>, assets: &Path) -> Result<PathBuf, String> {
    let root = util::root();
    let stage = root.join("target/debian").join(format!("stage-{}", arch.deb()));
    let _ = std::fs::remove_dir_all(&stage);
    let strip = match arch {
        Arch::X86_64 => "strip",
        Arch::Aarch64 => "aarch64-linux-gnu-strip",
    };

    // Programs: debug info off (the release profile keeps line tables).
    let so = stage.join("usr/lib/ld-cah/ld-cah.so");
    install(&build::loader_path(arch), &so, 0o755)?;
    util::run(Command::new(strip).arg("--strip-debug").arg(&so))?;
    if let Some(cah) = cah {
        let bin = stage.join("usr/bin/cah");
        install(cah, &bin, 0o755)?;
        util::run(Command::new(strip).arg("--strip-debug").arg(&bin))?;

        let man1 = stage.join("usr/share/man/man1");
        let mut pages: Vec<PathBuf> = read_dir(&assets.join("man"))?;
        pages.sort();
        let mut gzip = Command::new("gzip");
        gzip.args(["-9n", "-f"]);
        for page in pages {
            let dest = man1.join(page.file_name().unwrap());
            install(&page, &dest, 0o644)?;
            gzip.arg(&dest);
        }
        util::run(&mut gzip)?;
        let comp = assets.join("completions");
        install(&comp.join("cah.bash"), &stage.join("usr/share/bash-completion/completions/cah"), 0o644)?;
        install(&comp.join("_cah"), &stage.join("usr/share/zsh/vendor-completions/_cah"), 0o644)?;
        install(&comp.join("cah.fish"), &stage.join("usr/share/fish/vendor_completions.d/cah.fish"), 0o644)?;
    }

    // Documentation.
    let doc = stage.join("usr/share/doc/ld-cah");
    install(&root.join("README.md"), &doc.join("README.md"), 0o644)?;
    let mut docs: Vec<PathBuf> = read_dir(&root.join("docs"))?.into_iter().filter(|p| p.extension().is_some_and(|e| e == "md")).collect();
    docs.sort();
    for d in docs {
        install(&d, &doc.join(d.file_name().unwrap()), 0o644)?;
    }
    write(&doc.join("copyright"), COPYRIGHT, 0o644)?;

    write(&stage.join("usr/lib/tmpfiles.d/ld-cah.conf"), TMPFILES, 0o644)?;

    // Control files.
    let installed_kb = du_kb(&stage)?;
    let mut depends = Vec::new();
    if cah.is_some() {
        depends.push("libc6 (>= 2.36)");
    }
    let mut control = format!(
        "Package: ld-cah\n\
         Version: {}\n\
         Architecture: {}\n\
         Maintainer: ld-cah developers <ld-cah@invalid>\n\
         Installed-Size: {installed_kb}\n",
        version(),
        arch.deb()
    );
    if !depends.is_empty() {
        control.push_str(&format!("Depends: {}\n", depends.join(", ")));
    }
    control.push_str(
        "Section: admin\n\
         Priority: optional\n\
         Description: content-addressed dynamic loader, and its host tool\n \
         ld-cah is a freestanding dynamic loader (no libc) that loads a library\n \
         only if its content matches the BLAKE3 digest the program was locked to.\n \
         .\n \
         This package holds the loader (/usr/lib/ld-cah/ld-cah.so, the default\n \
         interpreter `cah patch` sets) and the cah tool that locks programs,\n \
         verifies them and manages the store and the hash cache.\n",
    );
    let debian = stage.join("DEBIAN");
    write(&debian.join("control"), &control, 0o644)?;
    write(&debian.join("postinst"), POSTINST, 0o755)?;
    write(&debian.join("postrm"), POSTRM, 0o755)?;
    if cah.is_some() {
        write(&debian.join("triggers"), TRIGGERS, 0o644)?;
    }

    let deb = deb_path(arch);
    let _ = std::fs::remove_file(&deb);
    util::run(Command::new("dpkg-deb").args(["--build", "--root-owner-group", "-Zxz"]).arg(&stage).arg(&deb))?;
    Ok(deb)
}

const COPYRIGHT: &str = r#"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: ld-cah
Source: the ld-cah workspace (README.md)

Files: *
Copyright: the ld-cah developers
License: MIT or Apache-2.0

License: MIT or Apache-2.0
 ld-cah is licensed under either of the MIT license or the Apache License,
 Version 2.0, at your option.
 .
 On Debian systems the full text of the Apache License, Version 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
 .
 The MIT license:
 .
 Permission is hereby granted, free of charge, to any person obtaining a
 copy of this software and associated documentation files (the "Software"),
 to deal in the Software without restriction, including without limitation
 the rights to use, copy, modify, merge, publish, distribute, sublicense,
 and/or sell copies of the Software, and to permit persons to whom the
 Software is furnished to do so, subject to the following conditions:
 .
 The above copyright notice and this permission notice shall be included in
 all copies or substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
 IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
 FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
 AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
 LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING
 FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER
 DEALINGS IN THE SOFTWARE.
"#;

/// `/run` is a tmpfs: the hash cache directory is made again at every boot.
const TMPFILES: &str = "\
# ld-cah: the system-wide hash cache (docs/hash-cache.md), written by root,
# read by everyone.
d /run/ld-cah 0755 root root -
";

/// Where programs and libraries are installed: any package that puts a
/// file there fires the trigger (noawait: the other package is configured
/// without waiting for ld-cah's postinst).
const TRIGGERS: &str = "\
interest-noawait /usr/bin
interest-noawait /usr/sbin
interest-noawait /usr/lib
interest-noawait /usr/libexec
interest-noawait /usr/games
interest-noawait /usr/local/bin
interest-noawait /bin
interest-noawait /sbin
interest-noawait /lib
interest-noawait /lib64
";

const POSTINST: &str = r#"#!/bin/sh
# ld-cah: the store (cah patch --store, the loader's first place for a
# locked name) and the system-wide hash cache directory; in a patched image
# (/etc/ld-cah/patch-root exists), re-lock every program when a package
# installed or replaced programs or libraries (DEBIAN/triggers).
set -e
if [ "$1" = triggered ]; then
    if [ -e /etc/ld-cah/patch-root ] && [ -x /usr/bin/cah ]; then
        mkdir -p /var/log/ld-cah
        # A program that cannot be locked keeps running unpatched: say so,
        # but never fail the package operation.
        if ! /usr/bin/cah patch --root / >/var/log/ld-cah/patch.log 2>&1; then
            echo "ld-cah: some programs could not be locked; see /var/log/ld-cah/patch.log" >&2
        fi
        tail -n 1 /var/log/ld-cah/patch.log
    fi
    exit 0
fi
if [ "$1" = configure ]; then
    install -d -m 0755 -o root -g root /var/lib/cah /var/lib/cah/store
    if [ -d /run/systemd/system ] && command -v systemd-tmpfiles >/dev/null 2>&1; then
        systemd-tmpfiles --create ld-cah.conf || true
    fi
    # Without systemd (a chroot, a container), or if tmpfiles failed.
    install -d -m 0755 -o root -g root /run/ld-cah
fi
exit 0
"#;

const POSTRM: &str = r#"#!/bin/sh
# ld-cah: on purge, remove the store and the cache directory if empty (the
# cache file and the binding plans are only caches and go too).
set -e
if [ "$1" = purge ]; then
    rm -f /run/ld-cah/hashes
    rm -rf /run/ld-cah/plans
    rmdir /run/ld-cah 2>/dev/null || true
    rmdir /var/lib/cah/store 2>/dev/null || true
    rmdir /var/lib/cah 2>/dev/null || true
fi
exit 0
"#;

/// Copies `src` to `dest` (making its directories, mode 0755) with `mode`.
fn install(src: &Path, dest: &Path, mode: u32) -> Result<(), String> {
    mkdirs(dest.parent().unwrap())?;
    std::fs::copy(src, dest).map_err(|e| format!("copy {} to {}: {e}", src.display(), dest.display()))?;
    chmod(dest, mode)
}

fn write(dest: &Path, text: &str, mode: u32) -> Result<(), String> {
    mkdirs(dest.parent().unwrap())?;
    std::fs::write(dest, text).map_err(|e| format!("write {}: {e}", dest.display()))?;
    chmod(dest, mode)
}

/// `mkdir -p`, every directory it makes mode 0755 (whatever the umask).
fn mkdirs(dir: &Path) -> Result<(), String> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        mkdirs(parent)?;
    }
    std::fs::create_dir(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    chmod(dir, 0o755)
}

fn chmod(path: &Path, mode: u32) -> Result<(), String> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| format!("chmod {}: {e}", path.display()))
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let rd = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    rd.map(|e| e.map(|e| e.path()).map_err(|e| e.to_string())).collect()
}

/// Installed-Size: the staged tree without DEBIAN/, in KiB.
fn du_kb(stage: &Path) -> Result<u64, String> {
    let out = util::output(Command::new("du").args(["-sk", "--exclude=DEBIAN"]).arg(stage))?;
    out.split_whitespace().next().and_then(|n| n.parse().ok()).ok_or_else(|| format!("du {}: {out}", stage.display()))
}
