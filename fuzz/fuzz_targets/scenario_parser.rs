//! `scenario_parser`: arbitrary bytes as a `.vms` scenario.
//!
//! The bytes (as UTF-8, invalid sequences replaced) go to
//! `vmspace_cli::scenario::parse`, and the first line to `parse_param` (the
//! `--set` syntax). A scenario that parses is run on the CLI's engine
//! backend exactly as `vmspace run` does, capped at [`MAX_STATEMENTS`]
//! statements and a few MiB of simulated RAM so that each input stays
//! quick. Every record is rendered as text and JSON (the JSON must parse),
//! and the run is repeated on a fresh engine: the engine has no global
//! state, so both runs must give the same records and `diff`'s comparison
//! must find no difference. After every statement the engine's invariant
//! checkers must pass. Nothing may panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vmspace_cli::backend::{Backend, BackendError, Call, Outcome, Param, Pid};
use vmspace_cli::engine_backend::EngineBackend;
use vmspace_cli::run::{run_collect, EngineConfig, Record, RunError, StartState};
use vmspace_cli::scenario::{merge_params, parse, parse_param, StmtKind};
use vmspace_cli::{diff, output};

/// The most call statements run from one input.
const MAX_STATEMENTS: usize = 200;
/// The most simulated RAM a scenario may ask for (`set ram=...`): larger
/// machines only make `store(a, 1G, 1)` slow and memory-hungry.
const MAX_RAM: u64 = 16 << 20;
/// The most mapped bytes one memory access or `mincore` may cover.
const MAX_SPAN: u64 = 8 << 20;

/// The engine backend, with accesses over huge mapped ranges shortened and
/// the invariants (including the reverse map's) checked after every call.
struct Checked {
    engine: EngineBackend,
    calls: usize,
}

impl Checked {
    fn mapped_in(&self, pid: Pid, addr: u64, len: u64) -> u64 {
        let end = addr.saturating_add(len);
        self.engine
            .system()
            .process(pid)
            .map(|p| {
                p.mm.vmas()
                    .filter(|v| v.start() < end && v.end() > addr)
                    .map(|v| v.end().min(end) - v.start().max(addr))
                    .sum()
            })
            .unwrap_or(0)
    }

    fn bounded(&self, pid: Pid, call: &Call) -> Call {
        let mut c = call.clone();
        match &mut c {
            Call::Load { addr, len }
            | Call::Store { addr, len, .. }
            | Call::Peek { addr, len }
            | Call::Poke { addr, len, .. }
            | Call::Mincore { addr, len }
                if self.mapped_in(pid, *addr, *len) > MAX_SPAN =>
            {
                *len = MAX_SPAN;
            }
            Call::Pwrite { count, .. } if *count > MAX_SPAN && (*count as i64) > 0 => {
                *count = MAX_SPAN;
            }
            _ => {}
        }
        c
    }
}

impl Backend for Checked {
    fn main_pid(&self) -> Pid {
        self.engine.main_pid()
    }

    fn call(&mut self, pid: Pid, call: &Call) -> Result<Outcome, BackendError> {
        self.calls += 1;
        let c = self.bounded(pid, call);
        let r = self.engine.call(pid, &c);
        if let Err(e) = &r {
            // The engine backend reports a broken invariant as an error.
            assert!(
                !e.0.starts_with("engine invariant broken"),
                "{e} (call {} on pid {pid}: {c:?})",
                self.calls
            );
        }
        let sys = self.engine.system();
        if let Err(e) = sys.check().and_then(|_| sys.check_rmap()) {
            panic!(
                "invariant broken after call {} ({c:?} on pid {pid}): {e}",
                self.calls
            );
        }
        r
    }
}

fn run_once(
    script: &vmspace_cli::scenario::Script,
    params: &[Param],
) -> Option<(Vec<Record>, Result<(), RunError>)> {
    let config = EngineConfig {
        params: params.to_vec(),
        start: StartState::Exec,
    };
    // An impossible parameter value is refused before anything runs.
    let engine = EngineBackend::new(&config).ok()?;
    let mut backend = Checked { engine, calls: 0 };
    Some(run_collect(script, &mut backend))
}

fn fuzz(data: &[u8]) {
    let source = String::from_utf8_lossy(data);
    if let Some(first) = source.lines().next() {
        let _ = parse_param(first);
    }
    let Ok(mut script) = parse("fuzz.vms", &source) else {
        return;
    };
    // The statement cap: calls past it are dropped (`set` lines all stay,
    // as they apply before the run wherever they are).
    let mut calls = 0;
    script.stmts.retain(|s| match s.kind {
        StmtKind::Set(_) => true,
        StmtKind::Call(_) => {
            calls += 1;
            calls <= MAX_STATEMENTS
        }
    });
    let mut params = merge_params(&[&script.params()]);
    match params.iter_mut().find(|p| p.key == "ram") {
        Some(p) => p.value = p.value.min(MAX_RAM),
        None => params.push(Param {
            key: "ram".into(),
            value: MAX_RAM,
        }),
    }
    let Some((records, result)) = run_once(&script, &params) else {
        return;
    };
    if let Err(e) = &result {
        // A run-time scenario error or a refused call (no such pid) is fine;
        // the message must render and carry the exit status.
        let _ = e.to_string();
        assert!(matches!(e.exit_code(), 1 | 2));
    }
    for r in &records {
        let t = output::text(r);
        assert!(t.ends_with('\n'), "text record without newline: {t:?}");
        let j = output::json(r);
        if let Err(e) = serde_json::from_str::<serde_json::Value>(&j) {
            panic!("record renders as invalid JSON ({e}): {j}");
        }
    }
    // Same script, fresh engine: the same records.
    let (again, result2) = run_once(&script, &params).expect("the engine built once");
    assert_eq!(records, again, "two runs of one scenario differ");
    assert_eq!(result, result2, "two runs of one scenario end differently");
    let d = diff::compare(&records, &again);
    assert!(
        d.is_empty(),
        "diff finds differences between identical runs: {}",
        diff::render_text(&d)
    );
}

fuzz_target!(|data: &[u8]| fuzz(data));
