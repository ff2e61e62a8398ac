//! Every shipped scenario (`examples/*.vms`, `tests/scenarios/*.vms`) runs on
//! the real kernel and on the engine, started from the same process state,
//! and must give identical output, statement by statement.

use std::path::{Path, PathBuf};

use vmspace_cli::backend::Param;
use vmspace_cli::diff::{compare, engine_params, host_cannot_follow, render_text};
use vmspace_cli::engine_backend::EngineBackend;
use vmspace_cli::host_backend::{host_params, HostBackend, HostConfig};
use vmspace_cli::run::{run_collect, EngineConfig, StartState};
use vmspace_cli::scenario::{merge_params, parse};

fn scenario_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    for dir in ["examples", "tests/scenarios"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "vms") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

fn check(path: &Path) -> Result<usize, String> {
    let src = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let name = path.display().to_string();
    let script = parse(&name, &src).map_err(|errs| format!("{errs:?}"))?;
    let sets: Vec<Param> = merge_params(&[&script.params()]);
    let host_p = host_params();
    let warnings = host_cannot_follow(&sets, &host_p);
    if !warnings.is_empty() {
        return Err(format!(
            "{name}: uses parameters the host cannot follow: {warnings:?}"
        ));
    }
    let mut host = HostBackend::start(&HostConfig {
        params: sets.clone(),
    })
    .map_err(|e| e.to_string())?;
    let config = EngineConfig {
        params: engine_params(&host_p, &sets),
        start: StartState::Snapshot(host.snapshot().clone()),
    };
    let mut engine = EngineBackend::new(&config)?;
    let (h, hr) = run_collect(&script, &mut host);
    hr.map_err(|e| format!("{name}: host run failed: {e:?}"))?;
    let (e, er) = run_collect(&script, &mut engine);
    er.map_err(|e| format!("{name}: engine run failed: {e:?}"))?;
    // The same comparison `vmspace diff` makes (fork results compare equal
    // whatever pid each kernel chose).
    let diffs = compare(&h, &e);
    if diffs.is_empty() {
        Ok(h.len())
    } else {
        Err(format!("{name} differs:\n{}", render_text(&diffs)))
    }
}

#[test]
fn shipped_scenarios_match_the_kernel() {
    let files = scenario_files();
    assert!(
        files.len() >= 10,
        "expected the shipped scenarios, found {files:?}"
    );
    let mut failures = Vec::new();
    let mut statements = 0;
    for f in &files {
        // The kernel side shares its CPU's LRU batches with whatever else
        // runs there (a busy machine can drain them between two
        // statements): a scenario that differs runs once more and fails
        // only if it differs again.
        match check(f).or_else(|first| {
            eprintln!("{} differed once; running it again:\n{first}", f.display());
            check(f)
        }) {
            Ok(n) => statements += n,
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!(
        "{} scenarios, {statements} statements identical on engine and kernel",
        files.len()
    );
}
