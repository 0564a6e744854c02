//! What a run prints and writes: the terminal lines, the targets of issue
//! 10 with pass or fail, `target/bench/results.{json,md}`, the SVG plot
//! and the generated part of `docs/benchmarks.md`.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use super::{CaseResult, Quartiles, Way};

/// Where and when a run happened.
pub struct Machine {
    pub date: String,
    pub cpus: usize,
    pub cpu: String,
    pub glibc: String,
    pub kernel: String,
    pub load: String,
    pub commit: String,
    pub rounds: usize,
    pub warmup: usize,
}

fn first_line(cmd: &mut Command) -> String {
    cmd.output().ok().and_then(|o| String::from_utf8_lossy(&o.stdout).lines().next().map(str::to_string)).unwrap_or_default()
}

impl Machine {
    pub fn probe(rounds: usize, warmup: usize) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, m)| m.trim().to_string()))
            .unwrap_or_else(|| "unknown".into());
        let load = std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default();
        Machine {
            date: first_line(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"])),
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu,
            glibc: first_line(Command::new("ldd").arg("--version")),
            kernel: first_line(Command::new("uname").arg("-r")),
            load,
            commit: first_line(Command::new("git").current_dir(crate::util::root()).args(["rev-parse", "--short", "HEAD"])),
            rounds,
            warmup,
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "start-up, x86_64, {}; {} CPUs ({}), {}, Linux {}, load {} at start; ld-cah {}; \
             {} rounds after {} discarded; clean environment (PATH, HOME, LANG=C, CAH_CACHE_DIR for ld-cah only); \
             ratio = ld-cah / glibc per round: median [25%..75%]",
            self.date, self.cpus, self.cpu, self.glibc, self.kernel, self.load, self.commit, self.rounds, self.warmup
        )
    }
}

fn ratio(q: Quartiles) -> String {
    format!("{:.2}x [{:.2}..{:.2}]", q.mid, q.lo, q.hi)
}

fn count(n: Option<u64>, glibc: Option<u64>) -> String {
    match (n, glibc) {
        (Some(n), Some(g)) if g > 0 => format!("{} ({:.2}x)", thousands(n), n as f64 / g as f64),
        (Some(n), _) => thousands(n),
        (None, _) => "-".into(),
    }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One terminal line per case.
pub fn line(r: &CaseResult) -> String {
    let mut s = format!("{:<44} glibc {:>7.0}us", r.name, r.glibc_micros);
    for m in &r.ways {
        let _ = write!(s, " | {} {}", m.way.key(), ratio(m.ratio));
    }
    for (w, e) in &r.failed {
        let _ = write!(s, " | {} FAILED: {e}", w.key());
    }
    if r.plan_used == Some(false) {
        s.push_str(" | warm start did NOT use its plan");
    }
    let c = &r.counts;
    if c.glibc.is_some() {
        let _ = write!(
            s,
            "\n{:<44} loader instructions: glibc {}, unlocked {}, warm {}, cold {}",
            "",
            count(c.glibc, None),
            count(c.unlocked, c.glibc),
            count(c.warm, c.glibc),
            count(c.cold, c.glibc)
        );
    }
    s
}

#[derive(Clone, Copy)]
pub enum Metric {
    Wall,
    Instructions,
}

pub struct Target {
    pub case: &'static str,
    pub way: Way,
    pub metric: Metric,
    pub limit: f64,
    /// The median ratio (wall) or the ratio of counts (instructions).
    pub measured: Option<f64>,
}

impl Target {
    pub fn what(&self) -> String {
        let m = match self.metric {
            Metric::Wall => "wall time",
            Metric::Instructions => "loader instructions",
        };
        format!("{}, {}, {m}", self.case, self.way.label())
    }
    pub fn verdict(&self) -> &'static str {
        match self.measured {
            Some(v) if v <= self.limit => "pass",
            Some(_) => "FAIL",
            None => "not measured",
        }
    }
    pub fn line(&self) -> String {
        let m = self.measured.map_or("-".into(), |v| format!("{v:.2}x"));
        format!("target: {:<70} <= {:.2}x  measured {m:>6}  {}", self.what(), self.limit, self.verdict())
    }
}

/// The targets of issue 10, each for the way it is meant for: a locked
/// program with a warm cache, except the one for a start with no cache.
pub fn targets(results: &[CaseResult]) -> Vec<Target> {
    let spec: [(&'static str, Way, Metric, f64); 8] = [
        ("C hello (puts)", Way::Warm, Metric::Wall, 0.85),
        ("C hello (puts)", Way::Warm, Metric::Instructions, 0.5),
        ("C hello (puts)", Way::Cold, Metric::Wall, 1.3),
        ("C++ iostream hello", Way::Warm, Metric::Wall, 0.90),
        ("50x2000 fns, -z now, all called", Way::Warm, Metric::Wall, 0.30),
        ("50x2000 fns, lazy, all called", Way::Warm, Metric::Wall, 1.0),
        ("50x2000 fns, lazy, 2000 called", Way::Warm, Metric::Wall, 1.0),
        ("1000 x dlopen/dlsym/dlclose", Way::Warm, Metric::Wall, 1.0),
    ];
    spec.into_iter()
        .map(|(case, way, metric, limit)| {
            let r = results.iter().find(|r| r.name == case);
            let measured = r.and_then(|r| match metric {
                Metric::Wall => r.ratio(way).map(|q| q.mid),
                Metric::Instructions => {
                    let n = match way {
                        Way::Warm => r.counts.warm,
                        Way::Cold => r.counts.cold,
                        _ => r.counts.unlocked,
                    };
                    n.zip(r.counts.glibc).map(|(n, g)| n as f64 / g as f64)
                }
            });
            Target { case, way, metric, limit, measured }
        })
        .collect()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn json_opt(n: Option<u64>) -> String {
    n.map_or("null".into(), |n| n.to_string())
}

pub fn json(m: &Machine, results: &[CaseResult], targets: &[Target]) -> String {
    let mut s = String::from("{\n");
    let _ = writeln!(s, "  \"date\": {},", json_str(&m.date));
    let _ = writeln!(
        s,
        "  \"machine\": {{\"cpus\": {}, \"cpu\": {}, \"glibc\": {}, \"kernel\": {}, \"load_at_start\": {}}},",
        m.cpus,
        json_str(&m.cpu),
        json_str(&m.glibc),
        json_str(&m.kernel),
        json_str(&m.load)
    );
    let _ = writeln!(s, "  \"commit\": {},", json_str(&m.commit));
    let _ = writeln!(s, "  \"rounds\": {}, \"warmup\": {},", m.rounds, m.warmup);
    s.push_str("  \"cases\": [\n");
    for (i, r) in results.iter().enumerate() {
        let _ = write!(s, "    {{\"name\": {}, \"glibc_us\": {:.1}, \"ways\": {{", json_str(&r.name), r.glibc_micros);
        for (j, w) in r.ways.iter().enumerate() {
            let _ = write!(
                s,
                "{}{}: {{\"us\": {:.1}, \"ratio\": {:.4}, \"q1\": {:.4}, \"q3\": {:.4}}}",
                if j > 0 { ", " } else { "" },
                json_str(w.way.key()),
                w.micros,
                w.ratio.mid,
                w.ratio.lo,
                w.ratio.hi
            );
        }
        let c = &r.counts;
        let _ = write!(
            s,
            "}}, \"loader_instructions\": {{\"glibc\": {}, \"unlocked\": {}, \"locked_warm\": {}, \"locked_cold\": {}}}",
            json_opt(c.glibc),
            json_opt(c.unlocked),
            json_opt(c.warm),
            json_opt(c.cold)
        );
        let plan = r.plan_used.map_or("null".into(), |p| p.to_string());
        let failed: Vec<String> = r.failed.iter().map(|(w, e)| format!("{}: {}", w.key(), json_str(e))).collect();
        let _ = write!(s, ", \"warm_plan_used\": {plan}, \"failed\": {{{}}}}}", failed.join(", "));
        s.push_str(if i + 1 < results.len() { ",\n" } else { "\n" });
    }
    s.push_str("  ],\n  \"targets\": [\n");
    for (i, t) in targets.iter().enumerate() {
        let _ = write!(
            s,
            "    {{\"what\": {}, \"limit\": {}, \"measured\": {}, \"verdict\": {}}}",
            json_str(&t.what()),
            t.limit,
            t.measured.map_or("null".into(), |v| format!("{v:.4}")),
            json_str(t.verdict())
        );
        s.push_str(if i + 1 < targets.len() { ",\n" } else { "\n" });
    }
    s.push_str("  ]\n}\n");
    s
}

/// The generated Markdown: the tables and the plot, for the top of
/// docs/benchmarks.md.
pub fn markdown(m: &Machine, results: &[CaseResult], targets: &[Target]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## Current results ({}, generated by `cargo xtask bench`)\n", m.date);
    let _ = writeln!(
        s,
        "x86_64 only (under qemu wall times mean nothing). Machine: {} CPUs, {}, shared with other \
         people's builds (load average {} at the start); {}; Linux {}; ld-cah at commit {}. \
         {} rounds after {} warm-up rounds discarded.\n",
        m.cpus, m.cpu, m.load, m.glibc, m.kernel, m.commit, m.rounds, m.warmup
    );
    s.push_str(
        "Every child runs with a clean environment: `PATH=/usr/bin:/bin`, `HOME`, `LANG=C`, and for \
         ld-cah `CAH_CACHE_DIR`, a private directory in a tmpfs (`/dev/shm`) as ld-cah's default \
         places under `/run` are (nothing of the caller's `LD_LIBRARY_PATH`, `LD_PRELOAD` or `CAH_*`); \
         nothing is pinned to a CPU. The ways of one case run in the same rounds, in rotating order, \
         and each cell is the median of the per-round ratios ld-cah / glibc with the 25%..75% range; \
         the glibc column is its median time. *Unlocked*: a copy with ld-cah as `PT_INTERP`; \
         *directly*: `ld-cah.so PROGRAM`; both with a warm binding plan. *Locked*: the copy `cah patch` \
         writes, *warm* with its hash cache and binding plan filled by an earlier run, *cold* with \
         `CAH_CACHE_DIR=/dev/null/ld-cah` (no cache, no plan: every library hashed and every symbol \
         looked up). The static-pie row is the same hello linked `-static-pie`: exec with no loader at \
         all, as a ratio to the dynamic hello under glibc, so the part of every start that is the \
         kernel's is visible.\n\n",
    );
    s.push_str("![start-up ratios against glibc's loader](bench/startup.svg)\n\n");
    s.push_str("| program | glibc | ld-cah, unlocked | locked, warm | locked, cold | run directly |\n|---|---|---|---|---|---|\n");
    for r in results {
        let cell = |w: Way| {
            if let Some(q) = r.ratio(w) {
                ratio(q)
            } else if r.failed.iter().any(|(f, _)| *f == w) {
                "failed".into()
            } else {
                "-".into()
            }
        };
        if let Some(q) = r.ratio(Way::Static) {
            let us = r.ways[0].micros;
            let _ = writeln!(s, "| {} | {us:.0} us (static) | {} of the dynamic hello | | | |", r.name, ratio(q));
            continue;
        }
        let _ = writeln!(
            s,
            "| {} | {:.0} us | {} | {} | {} | {} |",
            r.name,
            r.glibc_micros,
            cell(Way::Unlocked),
            cell(Way::Warm),
            cell(Way::Cold),
            cell(Way::Direct)
        );
    }
    let not_planned: Vec<&str> = results.iter().filter(|r| r.plan_used == Some(false)).map(|r| r.name.as_str()).collect();
    if !not_planned.is_empty() {
        let _ = writeln!(s, "\nA warm locked start did **not** use its binding plan for: {}.", not_planned.join(", "));
    }
    s.push_str(
        "\nLoader instructions under `valgrind --tool=callgrind`: the self cost of the loader's own \
         object only (glibc's `ld-linux-x86-64.so.2`, ld-cah's `ld-cah.so`), the program and its \
         libraries excluded; both loaders run as `LOADER PROGRAM ARGS`, one run each \
         (deterministic). Under valgrind the closure includes valgrind's preload library, so the \
         warm runs use a plan recorded by an earlier run under valgrind; *unlocked* is warm too.\n\n",
    );
    s.push_str("| program | glibc | ld-cah, unlocked | locked, warm | locked, cold |\n|---|---|---|---|---|\n");
    for r in results.iter().filter(|r| r.counts.glibc.is_some()) {
        let c = &r.counts;
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            r.name,
            count(c.glibc, None),
            count(c.unlocked, c.glibc),
            count(c.warm, c.glibc),
            count(c.cold, c.glibc)
        );
    }
    s.push_str(
        "\nTargets (issue 10), as ratios to glibc's loader in the same run; each is for a locked program \
         with a warm cache (the intended deployment) except the cold one:\n\n| target | limit | measured | |\n|---|---|---|---|\n",
    );
    for t in targets {
        let m = t.measured.map_or("-".into(), |v| format!("{v:.2}x"));
        let _ = writeln!(s, "| {} | <= {:.2}x | {m} | {} |", t.what(), t.limit, t.verdict());
    }
    s
}

/// The largest ratio the plot shows: the data's largest upper quartile
/// rounded up to a half, at least 1.5 (so 1.0 is never at the edge) and
/// at most 4 (beyond, a value is drawn at the edge and labelled).
pub fn axis_max(largest: f64) -> f64 {
    ((largest * 2.0).ceil() / 2.0).clamp(1.5, 4.0)
}

/// The x coordinate of a ratio, clamped to the plot.
pub fn x_of(v: f64, max: f64, x0: f64, x1: f64) -> f64 {
    x0 + (v.clamp(0.0, max) / max) * (x1 - x0)
}

fn color(w: Way) -> &'static str {
    match w {
        Way::Unlocked => "#1f77b4",
        Way::Warm => "#2ca02c",
        Way::Cold => "#d62728",
        Way::Static => "#7f7f7f",
        Way::Direct | Way::Glibc => "#9467bd",
    }
}

/// The plot: one row per case and way (ld-cah run directly is left out:
/// it tracks the unlocked row), the median as a dot, the interquartile
/// range as a whisker, glibc's loader as the dashed line at 1.0, and each
/// wall-time target as an orange tick on its row.
pub fn svg(m: &Machine, results: &[CaseResult], targets: &[Target]) -> String {
    const PLOTTED: [Way; 4] = [Way::Static, Way::Unlocked, Way::Warm, Way::Cold];
    let (x0, x1, row, gap, top) = (330.0, 830.0, 14.0, 8.0, 58.0);
    let largest = results.iter().flat_map(|r| r.ways.iter()).filter(|w| PLOTTED.contains(&w.way)).map(|w| w.ratio.hi).fold(1.0, f64::max);
    let max = axis_max(largest);
    let rows: usize = results.iter().map(|r| r.ways.iter().filter(|w| PLOTTED.contains(&w.way)).count()).sum();
    let height = top + rows as f64 * row + results.len() as f64 * gap + 40.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"860\" height=\"{height:.0}\" viewBox=\"0 0 860 {height:.0}\" font-family=\"sans-serif\" font-size=\"11\">"
    );
    s.push_str("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
    let _ = writeln!(
        s,
        "<text x=\"10\" y=\"16\" font-size=\"13\" font-weight=\"bold\">Start-up time, ld-cah / glibc's loader (median, 25%..75%), {} rounds</text>",
        m.rounds
    );
    let _ =
        writeln!(s, "<text x=\"10\" y=\"31\" fill=\"#555\">{}, {} CPUs, {}; {}</text>", esc(&m.date), m.cpus, esc(&m.cpu), esc(&m.glibc));
    let mut lx = 10.0;
    for w in PLOTTED {
        let _ = writeln!(s, "<circle cx=\"{:.0}\" cy=\"44\" r=\"4\" fill=\"{}\"/>", lx + 4.0, color(w));
        let _ = writeln!(s, "<text x=\"{:.0}\" y=\"48\">{}</text>", lx + 12.0, esc(w.label()));
        lx += 12.0 + 7.0 * w.label().len() as f64 + 14.0;
    }
    let _ = writeln!(s, "<line x1=\"{lx:.0}\" y1=\"39\" x2=\"{lx:.0}\" y2=\"49\" stroke=\"#ff7f0e\" stroke-width=\"3\"/>");
    let _ = writeln!(s, "<text x=\"{:.0}\" y=\"48\">target</text>", lx + 6.0);
    let bottom = height - 32.0;
    let step = if max <= 2.0 { 0.25 } else { 0.5 };
    let mut v = 0.0;
    while v <= max + 1e-9 {
        let x = x_of(v, max, x0, x1);
        let (stroke, dash) = if (v - 1.0).abs() < 1e-9 { ("#000", " stroke-dasharray=\"4 3\"") } else { ("#ddd", "") };
        let _ = writeln!(s, "<line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{bottom:.0}\" stroke=\"{stroke}\"{dash}/>");
        let _ = writeln!(s, "<text x=\"{x:.1}\" y=\"{:.0}\" text-anchor=\"middle\">{v:.2}x</text>", bottom + 14.0);
        v += step;
    }
    let mut y = top;
    for r in results {
        let ways: Vec<_> = PLOTTED.iter().filter_map(|w| r.ways.iter().find(|m| m.way == *w)).collect();
        if ways.is_empty() {
            continue;
        }
        y += gap / 2.0;
        let mid = y + ways.len() as f64 * row / 2.0 + 4.0;
        let _ = writeln!(s, "<text x=\"{:.0}\" y=\"{mid:.1}\" text-anchor=\"end\">{}</text>", x0 - 8.0, esc(&r.name));
        for w in ways {
            let cy = y + row / 2.0;
            let c = color(w.way);
            let (a, b, d) = (x_of(w.ratio.lo, max, x0, x1), x_of(w.ratio.hi, max, x0, x1), x_of(w.ratio.mid, max, x0, x1));
            let _ = writeln!(s, "<line x1=\"{a:.1}\" y1=\"{cy:.1}\" x2=\"{b:.1}\" y2=\"{cy:.1}\" stroke=\"{c}\" stroke-width=\"2\"/>");
            let _ = writeln!(s, "<circle cx=\"{d:.1}\" cy=\"{cy:.1}\" r=\"3.5\" fill=\"{c}\"/>");
            if w.ratio.mid > max {
                let _ = writeln!(
                    s,
                    "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"{c}\">{:.2}x &#8594;</text>",
                    d - 6.0,
                    cy + 4.0,
                    w.ratio.mid
                );
            }
            for t in targets.iter().filter(|t| t.case == r.name && t.way == w.way && matches!(t.metric, Metric::Wall)) {
                let tx = x_of(t.limit, max, x0, x1);
                let _ = writeln!(
                    s,
                    "<line x1=\"{tx:.1}\" y1=\"{:.1}\" x2=\"{tx:.1}\" y2=\"{:.1}\" stroke=\"#ff7f0e\" stroke-width=\"3\"/>",
                    cy - 5.0,
                    cy + 5.0
                );
            }
            y += row;
        }
        y += gap / 2.0;
    }
    s.push_str("</svg>\n");
    s
}

const BEGIN: &str = "<!-- begin: generated by cargo xtask bench; edit xtask/src/bench/report.rs instead -->";
const END: &str = "<!-- end: generated by cargo xtask bench -->";

/// Writes the results under `scratch` and, for a full run, the plot and
/// the generated part of docs/benchmarks.md (between its markers).
pub fn write_all(root: &Path, scratch: &Path, m: &Machine, results: &[CaseResult], targets: &[Target], docs: bool) -> Result<(), String> {
    let put = |p: &Path, text: &str| std::fs::write(p, text).map_err(|e| format!("{}: {e}", p.display()));
    let md = markdown(m, results, targets);
    let plot = svg(m, results, targets);
    put(&scratch.join("results.json"), &json(m, results, targets))?;
    put(&scratch.join("results.md"), &md)?;
    put(&scratch.join("startup.svg"), &plot)?;
    eprintln!("bench: wrote {}/results.{{json,md}} and startup.svg", scratch.display());
    if !docs {
        return Ok(());
    }
    let dir = root.join("docs/bench");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    put(&dir.join("startup.svg"), &plot)?;
    let doc = root.join("docs/benchmarks.md");
    let text = std::fs::read_to_string(&doc).map_err(|e| format!("{}: {e}", doc.display()))?;
    let (Some(a), Some(b)) = (text.find(BEGIN), text.find(END)) else {
        return Err(format!("{}: no generated-section markers", doc.display()));
    };
    let new = format!("{}{BEGIN}\n{md}{}", &text[..a], &text[b..]);
    put(&doc, &new)?;
    eprintln!("bench: updated docs/benchmarks.md and docs/bench/startup.svg");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_axis_keeps_one_inside_and_stops_at_four() {
        assert_eq!(axis_max(0.9), 1.5);
        assert_eq!(axis_max(1.62), 2.0);
        assert_eq!(axis_max(2.01), 2.5);
        assert_eq!(axis_max(9.0), 4.0);
    }

    #[test]
    fn ratios_map_linearly_and_clamp_to_the_plot() {
        assert_eq!(x_of(0.0, 2.0, 100.0, 300.0), 100.0);
        assert_eq!(x_of(1.0, 2.0, 100.0, 300.0), 200.0);
        assert_eq!(x_of(7.3, 2.0, 100.0, 300.0), 300.0);
    }

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(130378), "130,378");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
    }
}
