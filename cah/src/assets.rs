//! `cah generate-assets DIR` (hidden): the manual pages and shell
//! completions of this very CLI definition, for the Debian package
//! (`cargo xtask package`, docs/packaging.md). Writes
//!
//! - `DIR/man/cah.1` and one page per subcommand (`cah-store-add.1`, ...),
//!   uncompressed (the packager gzips them);
//! - `DIR/completions/cah.bash`, `DIR/completions/_cah` (zsh) and
//!   `DIR/completions/cah.fish`.
//!
//! Hidden subcommands (this one) appear in neither.

use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;

use crate::Cli;

pub fn run(dir: &Path) -> Result<bool> {
    let full = Cli::command();
    let man = dir.join("man");
    std::fs::create_dir_all(&man).with_context(|| format!("create {}", man.display()))?;
    clap_mangen::generate_to(full.clone(), &man).with_context(|| format!("write man pages into {}", man.display()))?;

    // clap_complete lists hidden subcommands too: complete a copy without them.
    let mut cmd = visible(full);
    let comp = dir.join("completions");
    std::fs::create_dir_all(&comp).with_context(|| format!("create {}", comp.display()))?;
    for (shell, name) in [(Shell::Bash, "cah.bash"), (Shell::Zsh, "_cah"), (Shell::Fish, "cah.fish")] {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut cmd, "cah", &mut out);
        let path = comp.join(name);
        std::fs::write(&path, out).with_context(|| format!("write {}", path.display()))?;
    }
    Ok(true)
}

/// `cmd` with its hidden subcommands left out (clap cannot remove one, so
/// the top level is made again; `cah` has no top-level options of its own).
fn visible(cmd: clap::Command) -> clap::Command {
    let subs: Vec<clap::Command> = cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned().collect();
    let mut top = clap::Command::new("cah")
        .version(env!("CARGO_PKG_VERSION"))
        .subcommand_required(cmd.is_subcommand_required_set())
        .arg_required_else_help(cmd.is_arg_required_else_help_set())
        .subcommands(subs);
    if let Some(a) = cmd.get_about() {
        top = top.about(a.clone());
    }
    top
}
