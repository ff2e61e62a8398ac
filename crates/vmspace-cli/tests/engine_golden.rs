//! Engine-only scenarios (`tests/engine/*.vms`): behaviour that depends on
//! machine parameters the host kernel cannot be switched to for a test
//! (`max_map_count`, overcommit policy, RAM size, `mmap_min_addr`, the
//! stack guard gap). Each has its expected output beside it (`.out`),
//! checked by hand against Linux's rules; `VMSPACE_BLESS=1 cargo test`
//! rewrites them after a deliberate change.

use std::path::Path;

use vmspace_cli::engine_backend::EngineBackend;
use vmspace_cli::output;
use vmspace_cli::run::{run_collect, EngineConfig, StartState};
use vmspace_cli::scenario::{merge_params, parse};

fn render(path: &Path) -> String {
    let src = std::fs::read_to_string(path).expect("readable scenario");
    let name = path.display().to_string();
    let script = parse(&name, &src).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    let config = EngineConfig {
        params: merge_params(&[&script.params()]),
        start: StartState::Exec,
    };
    let mut engine = EngineBackend::new(&config).unwrap_or_else(|e| panic!("{name}: {e}"));
    let (records, result) = run_collect(&script, &mut engine);
    result.unwrap_or_else(|e| panic!("{name}: {e:?}"));
    records
        .iter()
        .map(|r| {
            let t = output::text(r);
            if t.ends_with('\n') {
                t
            } else {
                t + "\n"
            }
        })
        .collect()
}

#[test]
fn engine_scenarios_give_expected_output() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/engine");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/engine exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "vms"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let bless = std::env::var_os("VMSPACE_BLESS").is_some();
    let mut failures = Vec::new();
    for f in &files {
        let got = render(f);
        let expected_path = f.with_extension("out");
        if bless {
            std::fs::write(&expected_path, &got).expect("writable");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if got != expected {
            failures.push(format!(
                "{}:\n--- expected\n{expected}+++ got\n{got}",
                f.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
