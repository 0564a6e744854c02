//! Loader instruction counts under `valgrind --tool=callgrind`: the
//! instructions executed inside the loader's own object (its self cost,
//! summed over its functions), the program and every library excluded.
//! Callgrind is deterministic, so one run per loader.
//!
//! The output file is read directly rather than through
//! `callgrind_annotate`, whose per-function lines name the object only
//! when it is not obvious from the previous line.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use crate::util;

/// Runs `cmd` under callgrind and returns the instructions spent in the
/// object whose path ends with `object` (`None` if it never ran, which
/// would mean the wrong loader was used).
pub fn loader_instructions(cmd: &Command, object: &str, out: &Path) -> Result<Option<u64>, String> {
    let mut vg = Command::new("valgrind");
    vg.args(["--tool=callgrind", "--quiet"]).arg(format!("--callgrind-out-file={}", out.display()));
    vg.arg(cmd.get_program()).args(cmd.get_args());
    vg.env_clear();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            vg.env(k, v);
        }
    }
    util::output(&mut vg)?;
    let text = std::fs::read_to_string(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let by_object = self_cost_by_object(&text)?;
    Ok(by_object.iter().filter(|(name, _)| name.ends_with(object)).map(|(_, n)| *n).reduce(|a, b| a + b))
}

/// The self cost (first event, `Ir`) of each object in a callgrind output
/// file. The cost line after each `calls=` line is the call's inclusive
/// cost, charged to the caller only for display; it is skipped here so
/// that every instruction is counted once, in the object that ran it.
pub fn self_cost_by_object(text: &str) -> Result<HashMap<String, u64>, String> {
    let mut names: HashMap<String, String> = HashMap::new();
    let mut costs: HashMap<String, u64> = HashMap::new();
    let mut positions = 1;
    let mut current = String::new();
    let mut skip_next_cost = false;
    let mut summary = None;
    // `ob=(3) /path` names object 3; a later `ob=(3)` or `cob=(3)` refers to it.
    let object = |spec: &str, names: &mut HashMap<String, String>| -> String {
        let spec = spec.trim();
        match spec.strip_prefix('(').and_then(|s| s.split_once(')')) {
            Some((id, rest)) => {
                let rest = rest.trim();
                if !rest.is_empty() {
                    names.insert(id.to_string(), rest.to_string());
                }
                names.get(id).cloned().unwrap_or_default()
            }
            None => spec.to_string(),
        }
    };
    for line in text.lines() {
        if let Some(p) = line.strip_prefix("positions:") {
            positions = p.split_whitespace().count().max(1);
        } else if let Some(s) = line.strip_prefix("summary:") {
            summary = s.split_whitespace().next().and_then(|n| n.parse::<u64>().ok());
        } else if let Some(o) = line.strip_prefix("ob=") {
            current = object(o, &mut names);
        } else if let Some(o) = line.strip_prefix("cob=") {
            object(o, &mut names);
        } else if line.starts_with("calls=") {
            skip_next_cost = true;
        } else if line.starts_with(|c: char| c.is_ascii_digit() || c == '+' || c == '-' || c == '*') {
            if skip_next_cost {
                skip_next_cost = false;
                continue;
            }
            let ir = match line.split_whitespace().nth(positions) {
                Some(n) => n.parse::<u64>().map_err(|_| format!("callgrind: bad cost line `{line}`"))?,
                None => 0,
            };
            *costs.entry(current.clone()).or_default() += ir;
        }
    }
    // Every instruction is in exactly one object: the sum is the total.
    let total: u64 = costs.values().sum();
    if let Some(s) = summary.filter(|&s| s != total) {
        return Err(format!("callgrind: objects sum to {total} instructions, the summary says {s}"));
    }
    Ok(costs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inclusive_call_costs_are_not_counted_twice() {
        let text = "\
version: 1
positions: line
events: Ir
summary: 160

ob=(1) /lib/ld.so
fl=(1) ???
fn=(1) _dl_start
0 100
cob=(2) /lib/libc.so.6
cfi=(2) ???
cfn=(2) memcpy
calls=1 0
0 50

ob=(2)
fl=(2)
fn=(2)
0 40
+2 10
ob=(1)
fn=(1)
0 10
";
        let c = self_cost_by_object(text).unwrap();
        assert_eq!(c["/lib/ld.so"], 110);
        assert_eq!(c["/lib/libc.so.6"], 50);
    }

    #[test]
    fn a_file_that_does_not_add_up_is_refused() {
        let text = "positions: line\nevents: Ir\nsummary: 5\nob=(1) /x\nfn=(1) f\n0 4\n";
        assert!(self_cost_by_object(text).is_err());
    }
}
