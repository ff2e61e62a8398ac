//! `vmspace diff`: runs a scenario on the real kernel and on the engine and
//! reports the statements whose results differ.

#![warn(missing_docs)]

use std::fmt;

use serde::Serialize;

use crate::backend::{Backend, Outcome, Param};
use crate::output::{self, JsonRecord};
use crate::run::{run_collect, Record, RunError};
use crate::scenario::{merge_params, Script};

/// One statement whose result differs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    /// 1-based line in the scenario.
    pub line: usize,
    /// The statement as written.
    pub statement: String,
    /// The host's record (`None` if the host produced none for it).
    pub host: Option<Record>,
    /// The engine's record (`None` if the engine produced none for it).
    pub engine: Option<Record>,
}

/// Which side of a diff a run error came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The running Linux kernel.
    Host,
    /// The vmspace engine.
    Engine,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Host => "host",
            Side::Engine => "engine",
        })
    }
}

/// A run that stopped during a diff.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiffError {
    /// Which run stopped.
    pub side: Side,
    /// Why.
    pub error: RunError,
}

impl fmt::Display for DiffError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} run: {}", self.side, self.error)
    }
}

impl std::error::Error for DiffError {}

/// Whether two records count as the same result. They must render the same
/// text, except that a successful `fork()` may return different pids: pids
/// are the kernel's choice and never comparable between the two.
pub fn records_match(host: &Record, engine: &Record) -> bool {
    if host.line != engine.line {
        return false;
    }
    if host.op == "fork" {
        if let (Outcome::Value(a), Outcome::Value(b)) = (&host.outcome, &engine.outcome) {
            return (*a >= 0) == (*b >= 0);
        }
    }
    output::text(host) == output::text(engine)
}

/// Compares two runs record by record.
pub fn compare(host: &[Record], engine: &[Record]) -> Vec<Difference> {
    let n = host.len().max(engine.len());
    (0..n)
        .filter_map(|i| {
            let (h, e) = (host.get(i), engine.get(i));
            if let (Some(h), Some(e)) = (h, e) {
                if records_match(h, e) {
                    return None;
                }
            }
            let first = h.or(e)?;
            Some(Difference {
                line: first.line,
                statement: first.text.clone(),
                host: h.cloned(),
                engine: e.cloned(),
            })
        })
        .collect()
}

/// Runs `script` on the host, then on the engine (built from the host's
/// starting snapshot by the caller), and compares. The first run error
/// stops the diff.
pub fn run_diff(
    script: &Script,
    host: &mut dyn Backend,
    engine: &mut dyn Backend,
) -> Result<Vec<Difference>, DiffError> {
    let (host_records, r) = run_collect(script, host);
    r.map_err(|error| DiffError {
        side: Side::Host,
        error,
    })?;
    let (engine_records, r) = run_collect(script, engine);
    r.map_err(|error| DiffError {
        side: Side::Engine,
        error,
    })?;
    Ok(compare(&host_records, &engine_records))
}

/// The parameters the engine gets in a diff: the host's own, overridden by
/// the scenario's and the command line's `set`s.
pub fn engine_params(host: &[Param], sets: &[Param]) -> Vec<Param> {
    merge_params(&[host, sets])
}

/// Parameters the host kernel may have but an unprivileged run cannot change.
const HOST_SYSCTLS: &[&str] = &[
    "mmap_min_addr",
    "max_map_count",
    "overcommit_memory",
    "overcommit_ratio",
    "admin_reserve_kbytes",
    "user_reserve_kbytes",
    "ram",
    "swap",
];

/// Warnings for `set`s the host kernel cannot follow: a sysctl set to
/// another value than the host has, or a parameter the host cannot have at
/// all (simulated memory sizes, built-in constants).
pub fn host_cannot_follow(sets: &[Param], host: &[Param]) -> Vec<String> {
    sets.iter()
        .filter_map(|p| {
            let host_value = host.iter().rev().find(|h| h.key == p.key).map(|h| h.value);
            let why = if HOST_SYSCTLS.contains(&p.key.as_str()) {
                match host_value {
                    Some(v) if v == p.value => return None,
                    Some(v) => format!("the host kernel has {} = {v}", p.key),
                    None => format!("the host kernel's {} is unknown", p.key),
                }
            } else {
                "the host kernel has no such setting for an unprivileged run".to_string()
            };
            Some(format!(
                "warning: `set {}={}`: {why} and cannot follow it; the comparison may differ for that reason",
                p.key, p.value
            ))
        })
        .collect()
}

/// The lines a record shows in a diff: an inspection's text lines, or the
/// one result.
fn result_lines(r: Option<&Record>) -> Vec<String> {
    match r {
        None => vec!["(no result: the run ended before this statement)".to_string()],
        Some(r) => match &r.outcome {
            Outcome::Text(t) => {
                let mut lines: Vec<String> = t.lines().map(str::to_string).collect();
                if lines.is_empty() {
                    lines.push(String::new());
                }
                lines
            }
            other => vec![output::result_text(other)],
        },
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Edit {
    Same(usize, usize),
    Del(usize),
    Ins(usize),
}

/// A line diff (longest common subsequence on the part between the common
/// prefix and suffix; falls back to replace-all when that part is huge).
fn line_edits(a: &[String], b: &[String]) -> Vec<Edit> {
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (am, bm) = (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix]);
    let mut edits: Vec<Edit> = (0..prefix).map(|i| Edit::Same(i, i)).collect();
    let (n, m) = (am.len(), bm.len());
    if n.saturating_mul(m) > 4_000_000 {
        edits.extend((0..n).map(|i| Edit::Del(prefix + i)));
        edits.extend((0..m).map(|j| Edit::Ins(prefix + j)));
    } else {
        // lcs[i][j]: LCS length of am[i..] and bm[j..].
        let mut lcs = vec![0u32; (n + 1) * (m + 1)];
        let at = |i: usize, j: usize| i * (m + 1) + j;
        for i in (0..n).rev() {
            for j in (0..m).rev() {
                lcs[at(i, j)] = if am[i] == bm[j] {
                    lcs[at(i + 1, j + 1)] + 1
                } else {
                    lcs[at(i + 1, j)].max(lcs[at(i, j + 1)])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < n || j < m {
            if i < n && j < m && am[i] == bm[j] {
                edits.push(Edit::Same(prefix + i, prefix + j));
                i += 1;
                j += 1;
            } else if i < n && (j == m || lcs[at(i + 1, j)] >= lcs[at(i, j + 1)]) {
                edits.push(Edit::Del(prefix + i));
                i += 1;
            } else {
                edits.push(Edit::Ins(prefix + j));
                j += 1;
            }
        }
    }
    let (sa, sb) = (a.len() - suffix, b.len() - suffix);
    edits.extend((0..suffix).map(|k| Edit::Same(sa + k, sb + k)));
    edits
}

/// Lines of context shown around a change in a multi-line result.
const CONTEXT: usize = 2;
const HOST: &str = "- host:   ";
const ENGINE: &str = "+ engine: ";
const SAME: &str = "          ";

/// One difference as a unified-style text block.
pub fn render_difference(d: &Difference) -> String {
    let mut out = format!("@@ line {} @@ {}\n", d.line, d.statement);
    let (a, b) = (
        result_lines(d.host.as_ref()),
        result_lines(d.engine.as_ref()),
    );
    let edits = line_edits(&a, &b);
    let near_change = |k: usize| {
        let lo = k.saturating_sub(CONTEXT);
        let hi = (k + CONTEXT + 1).min(edits.len());
        edits[lo..hi].iter().any(|e| !matches!(e, Edit::Same(..)))
    };
    let mut skipped = false;
    for (k, e) in edits.iter().enumerate() {
        match *e {
            Edit::Same(i, _) if near_change(k) => {
                out.push_str(&format!("{SAME}{}\n", a[i]));
                skipped = false;
            }
            Edit::Same(..) => {
                if !skipped {
                    out.push_str(&format!("{SAME}...\n"));
                }
                skipped = true;
            }
            Edit::Del(i) => {
                out.push_str(&format!("{HOST}{}\n", a[i]));
                skipped = false;
            }
            Edit::Ins(j) => {
                out.push_str(&format!("{ENGINE}{}\n", b[j]));
                skipped = false;
            }
        }
    }
    out
}

/// Every difference, as text (empty when the runs agree).
pub fn render_text(diffs: &[Difference]) -> String {
    diffs.iter().map(render_difference).collect()
}

#[derive(Serialize)]
struct JsonDifference<'a> {
    line: usize,
    statement: &'a str,
    host: Option<JsonRecord<'a>>,
    engine: Option<JsonRecord<'a>>,
}

/// One difference as a JSON line (without the newline):
/// `{"line":N,"statement":"...","host":{...},"engine":{...}}`.
pub fn render_json(d: &Difference) -> String {
    let j = JsonDifference {
        line: d.line,
        statement: &d.statement,
        host: d.host.as_ref().map(JsonRecord::new),
        engine: d.engine.as_ref().map(JsonRecord::new),
    };
    serde_json::to_string(&j).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Call, Signal};
    use crate::run::fake::FakeBackend;
    use crate::scenario::parse;

    fn rec(line: usize, text: &str, op: &'static str, outcome: Outcome) -> Record {
        Record {
            line,
            proc_name: "main".into(),
            op,
            outcome,
            text: text.into(),
        }
    }

    fn p(k: &str, v: u64) -> Param {
        Param {
            key: k.into(),
            value: v,
        }
    }

    #[test]
    fn identical_runs_have_no_differences() {
        let a = vec![
            rec(1, "brk(0)", "brk", Outcome::Addr(0x1000)),
            rec(2, "maps()", "maps", Outcome::Text("x\n".into())),
        ];
        assert_eq!(compare(&a, &a.clone()), vec![]);
        assert_eq!(render_text(&[]), "");
    }

    #[test]
    fn fork_pids_are_not_compared() {
        let h = vec![rec(1, "c = fork()", "fork", Outcome::Value(4242))];
        let e = vec![rec(1, "c = fork()", "fork", Outcome::Value(2))];
        assert_eq!(compare(&h, &e), vec![]);
        let e = vec![rec(1, "c = fork()", "fork", Outcome::Error(11))];
        assert_eq!(compare(&h, &e).len(), 1);
        // Other calls' values are compared.
        let h = vec![rec(1, "open(\"f\", 0)", "open", Outcome::Value(3))];
        let e = vec![rec(1, "open(\"f\", 0)", "open", Outcome::Value(4))];
        assert_eq!(compare(&h, &e).len(), 1);
    }

    #[test]
    fn single_line_difference() {
        let h = vec![rec(
            3,
            "a = mmap(NULL, 8K)",
            "mmap",
            Outcome::Addr(0x7fff_f7ff_6000),
        )];
        let e = vec![rec(3, "a = mmap(NULL, 8K)", "mmap", Outcome::Error(12))];
        let d = compare(&h, &e);
        assert_eq!(d.len(), 1);
        assert_eq!(
            render_text(&d),
            "@@ line 3 @@ a = mmap(NULL, 8K)\n\
         - host:   0x7ffff7ff6000\n\
         + engine: -1 ENOMEM (Cannot allocate memory)\n"
        );
        assert_eq!(
            render_json(&d[0]),
            r#"{"line":3,"statement":"a = mmap(NULL, 8K)","host":{"line":3,"proc":"main","op":"mmap","ret":140737354096640},"engine":{"line":3,"proc":"main","op":"mmap","ret":-1,"errno":"ENOMEM"}}"#
        );
    }

    #[test]
    fn multi_line_difference_shows_changed_lines_with_context() {
        let lines: Vec<String> = (0..12).map(|i| format!("region {i}")).collect();
        let host = lines.join("\n") + "\n";
        let mut changed = lines.clone();
        changed[6] = "region 6 changed".into();
        changed.insert(9, "region new".into());
        let engine = changed.join("\n") + "\n";
        let h = vec![rec(8, "maps()", "maps", Outcome::Text(host))];
        let e = vec![rec(8, "maps()", "maps", Outcome::Text(engine))];
        let d = compare(&h, &e);
        assert_eq!(
            render_text(&d),
            "@@ line 8 @@ maps()\n\
         \x20         ...\n\
         \x20         region 4\n\
         \x20         region 5\n\
         - host:   region 6\n\
         + engine: region 6 changed\n\
         \x20         region 7\n\
         \x20         region 8\n\
         + engine: region new\n\
         \x20         region 9\n\
         \x20         region 10\n\
         \x20         ...\n"
        );
    }

    #[test]
    fn text_against_a_single_result() {
        let h = vec![rec(2, "maps()", "maps", Outcome::Text("a\nb\n".into()))];
        let e = vec![rec(2, "maps()", "maps", Outcome::Error(3))];
        assert_eq!(
            render_text(&compare(&h, &e)),
            "@@ line 2 @@ maps()\n- host:   a\n- host:   b\n+ engine: -1 ESRCH (No such process)\n"
        );
    }

    #[test]
    fn missing_records() {
        let h = vec![
            rec(1, "brk(0)", "brk", Outcome::Addr(1)),
            rec(2, "exit(0)", "exit", Outcome::Exited),
        ];
        let e = vec![rec(1, "brk(0)", "brk", Outcome::Addr(1))];
        let d = compare(&h, &e);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].engine, None);
        assert_eq!(
        render_text(&d),
        "@@ line 2 @@ exit(0)\n- host:   ?\n+ engine: (no result: the run ended before this statement)\n"
    );
        assert!(render_json(&d[0]).ends_with(r#""engine":null}"#));
    }

    #[test]
    fn line_diff_edges() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(line_edits(&v(&[]), &v(&[])), vec![]);
        assert_eq!(line_edits(&v(&["a"]), &v(&[])), vec![Edit::Del(0)]);
        assert_eq!(line_edits(&v(&[]), &v(&["a"])), vec![Edit::Ins(0)]);
        assert_eq!(
            line_edits(&v(&["a", "b", "c"]), &v(&["a", "x", "c"])),
            vec![
                Edit::Same(0, 0),
                Edit::Del(1),
                Edit::Ins(1),
                Edit::Same(2, 2)
            ]
        );
        assert_eq!(
            line_edits(&v(&["a", "b"]), &v(&["b", "a"]))
                .iter()
                .filter(|e| matches!(e, Edit::Same(..)))
                .count(),
            1
        );
    }

    #[test]
    fn warnings_for_sets_the_host_cannot_follow() {
        let host = [
            p("mmap_min_addr", 65536),
            p("max_map_count", 65530),
            p("overcommit_memory", 0),
            p("overcommit_ratio", 50),
        ];
        assert_eq!(
            host_cannot_follow(
                &[p("mmap_min_addr", 65536), p("overcommit_ratio", 50)],
                &host
            ),
            Vec::<String>::new()
        );
        let w = host_cannot_follow(
            &[
                p("mmap_min_addr", 4096),
                p("ram", 1 << 30),
                p("fault_around_bytes", 4096),
            ],
            &host,
        );
        assert_eq!(
        w,
        vec![
            "warning: `set mmap_min_addr=4096`: the host kernel has mmap_min_addr = 65536 and cannot follow it; \
             the comparison may differ for that reason",
            "warning: `set ram=1073741824`: the host kernel's ram is unknown and cannot \
             follow it; the comparison may differ for that reason",
            "warning: `set fault_around_bytes=4096`: the host kernel has no such setting for an unprivileged run \
             and cannot follow it; the comparison may differ for that reason",
        ]
    );
        for key in ["swap", "lsm_mmap_min_addr", "stack_guard_gap"] {
            assert_eq!(host_cannot_follow(&[p(key, 1)], &host).len(), 1, "{key}");
        }
        let w = host_cannot_follow(&[p("max_map_count", 10)], &[]);
        assert!(
            w[0].contains("the host kernel's max_map_count is unknown"),
            "{w:?}"
        );
    }

    #[test]
    fn engine_params_override_the_hosts() {
        let host = [p("mmap_min_addr", 65536), p("max_map_count", 65530)];
        assert_eq!(
            engine_params(&host, &[p("max_map_count", 10), p("ram", 5)]),
            vec![
                p("mmap_min_addr", 65536),
                p("max_map_count", 10),
                p("ram", 5)
            ]
        );
    }

    #[test]
    fn run_diff_drives_both_backends() {
        let script = parse("t.vms", "a = mmap(NULL, 4K, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)\nc = fork()\nload(a, 1)\n")
        .expect("parses");
        let mut host = FakeBackend::new();
        let mut engine = FakeBackend::new();
        engine.main = 1;
        assert_eq!(run_diff(&script, &mut host, &mut engine), Ok(vec![]));
        assert_eq!(host.calls.len(), 3);
        assert_eq!(engine.calls.len(), 3);

        let mut host = FakeBackend::new();
        let mut engine = FakeBackend::with(|_, call| {
            Ok(match call {
                Call::Load { .. } => Outcome::Signal(Signal {
                    signo: 11,
                    code: 2,
                    addr: 7,
                }),
                Call::Mmap { .. } => Outcome::Addr(0x7fff_f7fe_0000),
                _ => Outcome::Value(9),
            })
        });
        let d = run_diff(&script, &mut host, &mut engine).expect("runs");
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].line, 3);
    }

    #[test]
    fn run_diff_reports_which_side_failed() {
        let script = parse("t.vms", "brk(0)\n").expect("parses");
        let mut host = FakeBackend::with(|_, _| Err(crate::backend::BackendError("gone".into())));
        let mut engine = FakeBackend::new();
        let e = run_diff(&script, &mut host, &mut engine).expect_err("host fails");
        assert_eq!(e.side, Side::Host);
        assert_eq!(
            e.to_string(),
            "host run: t.vms:1: backend failure while running `brk(0)`: gone"
        );
        assert!(engine.calls.is_empty());
        let mut host = FakeBackend::new();
        let mut engine = FakeBackend::with(|_, _| Err(crate::backend::BackendError("gone".into())));
        assert_eq!(
            run_diff(&script, &mut host, &mut engine).map_err(|e| e.side),
            Err(Side::Engine)
        );
    }
}
