//! The `vmspace` command as a user runs it: exit statuses, error format,
//! JSON output, `--from-proc`.

use std::process::Command;

fn vmspace(args: &[&str], script: &str) -> (i32, String, String) {
    let dir = std::env::temp_dir().join(format!(
        "vmspace-cmd-{}-{}",
        std::process::id(),
        args.join("_").len()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join(format!("s{}.vms", script.len()));
    std::fs::write(&file, script).expect("write scenario");
    let out = Command::new(env!("CARGO_BIN_EXE_vmspace"))
        .args(args)
        .arg(&file)
        .output()
        .expect("vmspace runs");
    let stderr = String::from_utf8_lossy(&out.stderr).replace(&*file.to_string_lossy(), "FILE");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

#[test]
fn malformed_scenarios_exit_2_with_position_before_running() {
    let (code, stdout, stderr) = vmspace(
        &["run"],
        "a = mmap(NULL, 4K, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)\nmunmap(b, 4K)\n",
    );
    assert_eq!(code, 2);
    assert_eq!(stdout, "", "nothing runs when an error is found statically");
    assert!(stderr.starts_with("FILE:2:8: "), "{stderr}");

    let (code, _, stderr) = vmspace(&["run"], "mmap(NULL, 4K, PROT_RAED, MAP_PRIVATE, -1, 0)\n");
    assert_eq!(code, 2);
    assert!(
        stderr.starts_with("FILE:1:16: unknown flag `PROT_RAED`"),
        "{stderr}"
    );

    let (code, _, stderr) = vmspace(&["run"], "frobnicate(1)\n");
    assert_eq!(code, 2);
    assert!(stderr.starts_with("FILE:1:1: "), "{stderr}");
}

#[test]
fn results_and_errors_print_as_strace_does() {
    let (code, stdout, _) = vmspace(
        &["run"],
        "a = mmap(NULL, 8K, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)\nmunmap(a + 3, 4K)\nmprotect(a, 4K, PROT_READ) # comment\n",
    );
    assert_eq!(code, 0);
    assert_eq!(
        stdout,
        "a = mmap(NULL, 8K, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7ffff7ff5000\n\
         munmap(a + 3, 4K) = -1 EINVAL (Invalid argument)\n\
         mprotect(a, 4K, PROT_READ) = 0\n"
    );
}

#[test]
fn json_lines() {
    let (code, stdout, _) = vmspace(
        &["run", "--json"],
        "a = mmap(NULL, 8K, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)\nmunmap(a + 3, 4K)\n",
    );
    assert_eq!(code, 0);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lines[0]["op"], "mmap");
    assert_eq!(lines[0]["ret"], 0x7ffff7ff5000u64);
    assert_eq!(lines[1]["errno"], "EINVAL");
    assert_eq!(lines[1]["line"], 2);
    assert_eq!(lines[1]["proc"], "main");
}

#[test]
fn from_proc_starts_from_a_real_process() {
    let dir = std::env::temp_dir().join(format!("vmspace-fromproc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for f in ["maps", "smaps", "stat", "limits"] {
        let text = std::fs::read_to_string(format!("/proc/self/{f}")).expect("own /proc");
        std::fs::write(dir.join(f), text).expect("copy");
    }
    let (code, stdout, stderr) = vmspace(
        &["run", "--from-proc", dir.to_str().expect("utf8")],
        "b = brk(0)\nmaps()\n",
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("[stack]"), "{stdout}");
    assert!(
        stdout.contains("vmspace") || stdout.contains("command-"),
        "{stdout}"
    );

    let (code, _, stderr) = vmspace(&["run", "--from-proc", "/nonexistent-dir"], "maps()\n");
    assert_ne!(code, 0);
    assert!(stderr.contains("maps"), "{stderr}");
}

#[test]
fn diff_is_silent_when_engine_and_kernel_agree() {
    let (code, stdout, stderr) = vmspace(
        &["diff"],
        "a = mmap(NULL, 12K, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)\nmprotect(a + 4K, 4K, PROT_READ)\nmaps()\n",
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(stdout, "");
}

#[test]
fn fuzz_runs_seeded_scenarios_against_the_kernel_and_summarises() {
    let out_dir = std::env::temp_dir().join(format!("vmspace-fuzz-cmd-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_vmspace"))
        .args([
            "fuzz", "--seed", "7", "--count", "25", "--ops", "30", "--out",
        ])
        .arg(&out_dir)
        .output()
        .expect("vmspace runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(
        summary.starts_with("fuzz: seed 7: 25 scenarios, ")
            && summary.contains(" 0 divergences, 0 engine failures, 0 kernel-side failures"),
        "{summary}"
    );
    let compared: u64 = summary
        .split(", ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(compared >= 25 * 30, "statements compared: {summary}");
    let _ = std::fs::remove_dir_all(&out_dir);
}

#[test]
fn fuzz_print_shows_the_same_scenario_for_the_same_seed() {
    let print = |start: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_vmspace"))
            .args([
                "fuzz", "--print", "--seed", "3", "--count", "1", "--start", start,
            ])
            .output()
            .expect("vmspace runs");
        assert_eq!(out.status.code(), Some(0));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let a = print("5");
    assert_eq!(a, print("5"));
    assert_ne!(a, print("6"));
    assert!(
        a.starts_with("# scenario 5\nguard = mmap(NULL, 1M, PROT_NONE"),
        "{a}"
    );
}
