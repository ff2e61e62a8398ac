//! `vmspace fuzz`: random scenarios checked against the running kernel.
//!
//! Each scenario comes from [`gen`] (seeded, so a divergence is always
//! reproducible from `--seed` and its index), runs on the kernel and on the
//! engine exactly as `vmspace diff` runs it, with the engine's invariant
//! checker after every statement whatever the build. A scenario whose
//! results differ, or on which the engine fails or panics, is shrunk by
//! [`shrink`] to the fewest statements that still fail the same way and
//! written out as a `.vms` file, ready to become a regression test.
//!
//! The driver is a library function with an event callback, so the command
//! decides how to show progress and the tests can run it quietly.

pub mod gen;
pub mod shrink;

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use crate::backend::Param;
use crate::diff::{self, Difference};
use crate::engine_backend::EngineBackend;
use crate::host_backend::{host_params, HostBackend, HostConfig};
use crate::run::{run_collect, EngineConfig, Record, RunError, StartState};
use crate::scenario;

/// What a `vmspace fuzz` run does.
#[derive(Clone, Debug)]
pub struct FuzzConfig {
    /// The run's seed; scenario `i` is [`gen::generate`]`(seed, i, ops)`.
    pub seed: u64,
    /// Statements per scenario (before the final inspections).
    pub ops: usize,
    /// The first scenario index.
    pub start: u64,
    /// How many scenarios.
    pub count: u64,
    /// Where shrunk failing scenarios are written (`None`: not written).
    pub out_dir: Option<PathBuf>,
    /// The most kernel+engine runs spent shrinking one failure.
    pub shrink_budget: usize,
}

/// How one scenario came out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every statement gave the same result on both sides.
    Same,
    /// Some statements differ (the kernel is right).
    Diverged(Vec<Difference>),
    /// The engine stopped (an invariant broke, a backend error) or panicked
    /// where the kernel went on.
    EngineFailed(String),
    /// The kernel run itself stopped (the scenario is not usable).
    HostFailed(String),
}

impl Verdict {
    /// A failure worth reporting.
    pub fn is_failure(&self) -> bool {
        matches!(self, Verdict::Diverged(_) | Verdict::EngineFailed(_))
    }

    /// What kind of failure, for shrinking: a shrunk scenario must fail in
    /// the same way (the same operation differing first, or the engine
    /// failing), not merely fail.
    fn signature(&self) -> Option<String> {
        match self {
            Verdict::Diverged(d) => {
                let first = d.first()?;
                let r = first.host.as_ref().or(first.engine.as_ref())?;
                Some(format!("differs at {}", r.op))
            }
            Verdict::EngineFailed(_) => Some("engine failed".into()),
            _ => None,
        }
    }
}

/// One scenario's text and how it came out.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The scenario's index in the run.
    pub index: u64,
    /// Statements compared (both sides' records).
    pub statements: usize,
    /// The verdict.
    pub verdict: Verdict,
}

/// Events reported while fuzzing.
#[derive(Clone, Debug)]
pub enum Event {
    /// A scenario ran.
    Ran(Outcome),
    /// A failing scenario is being shrunk.
    Shrinking {
        /// Its index.
        index: u64,
    },
    /// A failure, shrunk: its statements, and the file it went to.
    Found {
        /// The scenario's index.
        index: u64,
        /// The shrunk scenario's lines.
        lines: Vec<String>,
        /// How it fails.
        verdict: Verdict,
        /// Where it was written.
        path: Option<PathBuf>,
    },
}

/// A run's totals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Scenarios run.
    pub scenarios: u64,
    /// Statements compared in them.
    pub statements: u64,
    /// Scenarios whose results differ.
    pub divergences: u64,
    /// Scenarios on which the engine failed or panicked.
    pub engine_failures: u64,
    /// Scenarios the kernel could not run.
    pub host_failures: u64,
    /// Scenarios that differed once but not when run again: the kernel
    /// side's noise (its CPU's LRU batches are shared with the rest of the
    /// machine), not counted as divergences.
    pub unconfirmed: u64,
}

impl Summary {
    /// Whether the run found nothing.
    pub fn clean(&self) -> bool {
        self.divergences == 0 && self.engine_failures == 0 && self.host_failures == 0
    }
}

/// Runs scenario texts on both sides.
pub struct Checker {
    host_params: Vec<Param>,
}

impl Default for Checker {
    fn default() -> Self {
        Self::new()
    }
}

impl Checker {
    /// A checker against the running kernel.
    pub fn new() -> Self {
        Checker {
            host_params: host_params(),
        }
    }

    /// Runs `text` on the kernel and on the engine and compares. `Err` is a
    /// scenario the generator should never have made (it does not parse)
    /// or a kernel side that cannot start at all.
    pub fn check(&self, text: &str) -> Result<(usize, Verdict), String> {
        let script = scenario::parse("fuzz.vms", text).map_err(|errors| {
            let msgs: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            msgs.join("; ")
        })?;
        let sets = script.params();
        let mut host = HostBackend::start(&HostConfig {
            params: sets.clone(),
        })
        .map_err(|e| format!("cannot start the host backend: {e}"))?;
        let (host_records, r) = run_collect(&script, &mut host);
        if let Err(e) = r {
            return Ok((host_records.len(), Verdict::HostFailed(e.to_string())));
        }
        let config = EngineConfig {
            params: diff::engine_params(&self.host_params, &sets),
            start: StartState::Snapshot(host.snapshot().clone()),
        };
        drop(host);
        let engine_run = panic::catch_unwind(AssertUnwindSafe(
            || -> Result<(Vec<Record>, Result<(), RunError>), String> {
                let mut engine = EngineBackend::new(&config)?;
                engine.set_checks(true);
                Ok(run_collect(&script, &mut engine))
            },
        ));
        let n = host_records.len();
        Ok(match engine_run {
            Err(payload) => (n, Verdict::EngineFailed(panic_message(&payload))),
            Ok(Err(e)) => (n, Verdict::EngineFailed(e)),
            Ok(Ok((_, Err(e)))) => (n, Verdict::EngineFailed(e.to_string())),
            Ok(Ok((engine_records, Ok(())))) => {
                let diffs = diff::compare(&host_records, &engine_records);
                if diffs.is_empty() {
                    (n, Verdict::Same)
                } else {
                    (n, Verdict::Diverged(diffs))
                }
            }
        })
    }

    /// Shrinks a failing scenario to the fewest lines failing the same way.
    pub fn shrink(
        &self,
        lines: Vec<String>,
        verdict: &Verdict,
        budget: usize,
    ) -> (Vec<String>, Verdict) {
        let Some(want) = verdict.signature() else {
            return (lines, verdict.clone());
        };
        let mut last = verdict.clone();
        let out = shrink::shrink(lines, budget, |candidate| {
            match self.check(&candidate.join("\n")) {
                Ok((_, v)) if v.signature().as_deref() == Some(want.as_str()) => {
                    last = v;
                    true
                }
                _ => false,
            }
        });
        // `last` is the verdict of the last accepted candidate, which is
        // the returned one (candidates are only accepted, never undone).
        (out, last)
    }
}

fn panic_message(payload: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("panic: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("panic: {s}")
    } else {
        "panic".into()
    }
}

/// The `.vms` text written for a shrunk failure: a header saying how to
/// reproduce it and what differed, then the statements.
pub fn failure_file(cfg: &FuzzConfig, index: u64, lines: &[String], verdict: &Verdict) -> String {
    let mut out = format!(
        "# Found by `vmspace fuzz --seed {} --ops {} --start {index} --count 1`, shrunk to {} statements.\n",
        cfg.seed,
        cfg.ops,
        lines.len()
    );
    let detail = match verdict {
        Verdict::Diverged(d) => diff::render_text(&d[..1]),
        Verdict::EngineFailed(e) | Verdict::HostFailed(e) => e.clone(),
        Verdict::Same => String::new(),
    };
    for l in detail.lines().take(40) {
        out.push_str("# ");
        out.push_str(l);
        out.push('\n');
    }
    for l in lines {
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// Runs `cfg.count` scenarios, reporting each through `on_event`.
pub fn run(cfg: &FuzzConfig, on_event: &mut dyn FnMut(Event)) -> Result<Summary, String> {
    let checker = Checker::new();
    let mut summary = Summary::default();
    if let Some(dir) = &cfg.out_dir {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    for index in cfg.start..cfg.start.saturating_add(cfg.count) {
        let lines = gen::generate(cfg.seed, index, cfg.ops);
        let text = lines.join("\n");
        let (statements, verdict) = checker
            .check(&text)
            .map_err(|e| format!("scenario {index}: {e}\n{text}"))?;
        // A divergence must show again to count (see Summary::unconfirmed).
        let verdict = match verdict {
            Verdict::Diverged(_) if matches!(checker.check(&text), Ok((_, Verdict::Same))) => {
                summary.unconfirmed += 1;
                Verdict::Same
            }
            v => v,
        };
        summary.scenarios += 1;
        summary.statements += statements as u64;
        match &verdict {
            Verdict::Diverged(_) => summary.divergences += 1,
            Verdict::EngineFailed(_) => summary.engine_failures += 1,
            Verdict::HostFailed(_) => summary.host_failures += 1,
            Verdict::Same => {}
        }
        on_event(Event::Ran(Outcome {
            index,
            statements,
            verdict: verdict.clone(),
        }));
        if verdict.is_failure() {
            on_event(Event::Shrinking { index });
            let (small, small_verdict) = checker.shrink(lines, &verdict, cfg.shrink_budget);
            let path = match &cfg.out_dir {
                Some(dir) => Some(write_failure(dir, cfg, index, &small, &small_verdict)?),
                None => None,
            };
            on_event(Event::Found {
                index,
                lines: small,
                verdict: small_verdict,
                path,
            });
        }
    }
    Ok(summary)
}

fn write_failure(
    dir: &Path,
    cfg: &FuzzConfig,
    index: u64,
    lines: &[String],
    verdict: &Verdict,
) -> Result<PathBuf, String> {
    let path = dir.join(format!("fuzz-{}-{index}.vms", cfg.seed));
    std::fs::write(&path, failure_file(cfg, index, lines, verdict))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scenario that must diverge: the engine follows a `set` the kernel
    /// cannot (a tiny map count), so the fourth mapping fails only there.
    fn divergent() -> Vec<String> {
        let mut lines = vec!["set max_map_count=20".to_string()];
        for i in 0..30 {
            lines.push(format!(
                "m{i} = mmap(NULL, 4K, PROT_READ|(PROT_WRITE*{}), MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)",
                i % 2
            ));
            lines.push(format!("load(m{i}, 1)"));
        }
        lines.push("maps()".into());
        lines
    }

    #[test]
    fn a_divergence_is_found_and_shrunk_to_what_causes_it() {
        let checker = Checker::new();
        let (n, verdict) = checker.check(&divergent().join("\n")).expect("runs");
        assert_eq!(n, 61);
        assert!(matches!(verdict, Verdict::Diverged(_)), "{verdict:?}");
        let (small, v) = checker.shrink(divergent(), &verdict, 500);
        // The `set` line and the first mmap that fails on the engine (and
        // enough mappings before it) must stay; the loads and maps() go.
        assert_eq!(small[0], "set max_map_count=20");
        assert!(small.iter().all(|l| !l.starts_with("load")), "{small:?}");
        assert!(small.len() < 30, "{small:?}");
        assert_eq!(v.signature(), verdict.signature());
        let text = failure_file(
            &FuzzConfig {
                seed: 9,
                ops: 40,
                start: 0,
                count: 1,
                out_dir: None,
                shrink_budget: 500,
            },
            4,
            &small,
            &v,
        );
        assert!(text.starts_with("# Found by `vmspace fuzz --seed 9 --ops 40 --start 4 --count 1`"));
        assert!(crate::scenario::parse("f.vms", &text).is_ok());
    }

    #[test]
    fn agreeing_scenarios_are_the_same() {
        let (_, v) = Checker::new()
            .check("a = mmap(NULL, 8K, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)\nstore(a, 5000, 1)\nsmaps()")
            .expect("runs");
        assert_eq!(v, Verdict::Same);
    }
}
