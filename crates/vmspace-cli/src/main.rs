//! The `vmspace` command: runs `.vms` scenarios on the vmspace engine or on
//! the running Linux kernel, and compares the two.
//!
//! Exit status: 0 success; 1 a run or backend failure, or `diff` found
//! differences; 2 scenario errors (`file:line:column: message`) and usage
//! errors.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use vmspace_cli::backend::{Backend, Param};
use vmspace_cli::diff;
use vmspace_cli::output;
use vmspace_cli::run::{self, EngineConfig, Record, StartState};
use vmspace_cli::scenario::{self, merge_params, Script, Selector, StmtKind};

/// Run and compare Linux memory scenarios.
#[derive(Parser, Debug)]
#[command(name = "vmspace", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a scenario on the engine (or, with --host, on the running kernel).
    Run(RunArgs),
    /// Run a scenario on the running kernel and on the engine; show where they differ.
    Diff(DiffArgs),
    /// Run random scenarios on the kernel and on the engine; shrink and save every divergence.
    Fuzz(FuzzArgs),
}

#[derive(Args, Debug)]
struct FuzzArgs {
    /// The run's seed: the same seed always generates the same scenarios.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Statements per scenario (the final inspections come on top).
    #[arg(long, default_value_t = 40)]
    ops: usize,
    /// How many scenarios to run.
    #[arg(long, default_value_t = 100)]
    count: u64,
    /// The first scenario's index (to replay one: `--start I --count 1`).
    #[arg(long, default_value_t = 0)]
    start: u64,
    /// Where shrunk failing scenarios are written, one `.vms` file each.
    #[arg(long, value_name = "DIR", default_value = "fuzz-found")]
    out: PathBuf,
    /// The most kernel+engine runs spent shrinking one failure.
    #[arg(long, default_value_t = 400)]
    shrink_budget: usize,
    /// Print the generated scenarios instead of running them.
    #[arg(long)]
    print: bool,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Run on the running Linux kernel instead of the engine.
    #[arg(long)]
    host: bool,
    /// Print JSON lines instead of text.
    #[arg(long)]
    json: bool,
    /// Start from a real process's state: DIR/maps (required), DIR/stat,
    /// DIR/brk, DIR/limits, DIR/smaps.
    #[arg(long, value_name = "DIR", conflicts_with = "host")]
    from_proc: Option<PathBuf>,
    /// Set a machine parameter (wins over the scenario's `set` lines).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = scenario::parse_param)]
    sets: Vec<Param>,
    /// The scenario file.
    file: PathBuf,
}

#[derive(Args, Debug)]
struct DiffArgs {
    /// Print each difference as a JSON line.
    #[arg(long)]
    json: bool,
    /// Set a machine parameter (wins over the scenario's `set` lines).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = scenario::parse_param)]
    sets: Vec<Param>,
    /// The scenario file.
    file: PathBuf,
}

/// The two backends, boxed behind [`Backend`].
mod backends {
    use vmspace_cli::backend::{Backend, Param, ProcSnapshot};
    use vmspace_cli::engine_backend::EngineBackend;
    use vmspace_cli::host_backend::{HostBackend, HostConfig};
    use vmspace_cli::run::EngineConfig;

    /// The engine, built from `cfg`.
    pub fn engine(cfg: &EngineConfig) -> Result<Box<dyn Backend>, String> {
        Ok(Box::new(EngineBackend::new(cfg)?))
    }

    /// The running kernel, and its first process's state before any statement.
    pub fn host(params: Vec<Param>) -> Result<(Box<dyn Backend>, ProcSnapshot), String> {
        let host = HostBackend::start(&HostConfig { params }).map_err(|e| e.to_string())?;
        let snapshot = host.snapshot().clone();
        Ok((Box::new(host), snapshot))
    }

    /// The host kernel's own parameter values (its sysctls).
    pub fn host_params() -> Vec<Param> {
        vmspace_cli::host_backend::host_params()
    }
}

/// Prints records as they come; remembers the first write error.
struct Printer {
    out: io::BufWriter<io::StdoutLock<'static>>,
    json: bool,
    error: Option<io::Error>,
}

impl Printer {
    fn new(json: bool) -> Self {
        Printer {
            out: io::BufWriter::new(io::stdout().lock()),
            json,
            error: None,
        }
    }

    fn write(&mut self, s: &str) {
        if self.error.is_none() {
            if let Err(e) = self
                .out
                .write_all(s.as_bytes())
                .and_then(|()| self.out.flush())
            {
                self.error = Some(e);
            }
        }
    }

    fn record(&mut self, r: &Record) {
        if self.json {
            self.write(&format!("{}\n", output::json(r)));
        } else {
            self.write(&output::text(r));
        }
    }

    /// Exit status for what was printed: 1 after a write error other than a
    /// closed pipe (`vmspace run x | head` is fine).
    fn finish(mut self) -> u8 {
        if self.error.is_none() {
            if let Err(e) = self.out.flush() {
                self.error = Some(e);
            }
        }
        match self.error {
            Some(e) if e.kind() != io::ErrorKind::BrokenPipe => {
                eprintln!("vmspace: cannot write output: {e}");
                1
            }
            _ => 0,
        }
    }
}

/// Reads and checks a scenario; on failure prints why and gives exit status 2.
fn load_script(path: &Path) -> Result<Script, u8> {
    let source = std::fs::read_to_string(path).map_err(|e| {
        eprintln!("vmspace: cannot read {}: {e}", path.display());
        2
    })?;
    scenario::parse(&path.display().to_string(), &source).map_err(|errors| {
        for e in errors {
            eprintln!("{e}");
        }
        2
    })
}

fn cmd_run(args: RunArgs) -> Result<u8, u8> {
    let script = load_script(&args.file)?;
    let params = merge_params(&[&script.params(), &args.sets]);
    let mut backend: Box<dyn Backend> = if args.host {
        for warning in diff::host_cannot_follow(&params, &backends::host_params()) {
            eprintln!("vmspace: {warning}");
        }
        backends::host(params)
            .map_err(|e| {
                eprintln!("vmspace: cannot start the host backend: {e}");
                1u8
            })?
            .0
    } else {
        let start = match &args.from_proc {
            Some(dir) => StartState::Snapshot(run::read_proc_dir(dir).map_err(|e| {
                eprintln!("vmspace: --from-proc: {e}");
                2u8
            })?),
            None => StartState::Exec,
        };
        backends::engine(&EngineConfig { params, start }).map_err(|e| {
            eprintln!("vmspace: cannot start the engine: {e}");
            1u8
        })?
    };
    let mut printer = Printer::new(args.json);
    let result = run::run(&script, backend.as_mut(), &mut |r| printer.record(&r));
    let status = printer.finish();
    match result {
        Ok(()) => Ok(status),
        Err(e) => {
            match &e {
                run::RunError::Scenario(s) => eprintln!("{s}"),
                run::RunError::Backend { .. } => eprintln!("vmspace: {e}"),
            }
            Err(e.exit_code() as u8)
        }
    }
}

fn cmd_diff(args: DiffArgs) -> Result<u8, u8> {
    let script = load_script(&args.file)?;
    let sets = merge_params(&[&script.params(), &args.sets]);
    let host_params = backends::host_params();
    for warning in diff::host_cannot_follow(&sets, &host_params) {
        eprintln!("vmspace: {warning}");
    }
    let uses_pids = script.stmts.iter().any(|s| {
        matches!(&s.kind, StmtKind::Call(c) if matches!(c.selector, Some(Selector::Pid { .. })))
    });
    if uses_pids {
        eprintln!(
            "vmspace: warning: `[pid N]` selectors name the same number on both sides, \
             but the host and the engine choose pids independently"
        );
    }
    let (mut host, snapshot) = backends::host(sets.clone()).map_err(|e| {
        eprintln!("vmspace: cannot start the host backend: {e}");
        1u8
    })?;
    let config = EngineConfig {
        params: diff::engine_params(&host_params, &sets),
        start: StartState::Snapshot(snapshot),
    };
    let mut engine = backends::engine(&config).map_err(|e| {
        eprintln!("vmspace: cannot start the engine: {e}");
        1u8
    })?;
    let diffs = diff::run_diff(&script, host.as_mut(), engine.as_mut()).map_err(|e| {
        match &e.error {
            run::RunError::Scenario(s) => eprintln!("{s} ({} run)", e.side),
            run::RunError::Backend { .. } => eprintln!("vmspace: {e}"),
        }
        e.error.exit_code() as u8
    })?;
    let mut printer = Printer::new(args.json);
    if args.json {
        for d in &diffs {
            printer.write(&format!("{}\n", diff::render_json(d)));
        }
    } else if !diffs.is_empty() {
        printer.write(&format!(
            "--- host\n+++ engine\n{}",
            diff::render_text(&diffs)
        ));
    }
    let status = printer.finish();
    Ok(if diffs.is_empty() { status } else { 1 })
}

fn cmd_fuzz(args: FuzzArgs) -> Result<u8, u8> {
    use vmspace_cli::fuzz::{self, Event, FuzzConfig, Verdict};
    let cfg = FuzzConfig {
        seed: args.seed,
        ops: args.ops,
        start: args.start,
        count: args.count,
        out_dir: Some(args.out.clone()),
        shrink_budget: args.shrink_budget,
    };
    if args.print {
        let mut printer = Printer::new(false);
        for i in cfg.start..cfg.start.saturating_add(cfg.count) {
            let lines = fuzz::gen::generate(cfg.seed, i, cfg.ops);
            printer.write(&format!("# scenario {i}\n{}\n", lines.join("\n")));
        }
        return Ok(printer.finish());
    }
    // The engine runs under catch_unwind: a panic is a finding, reported
    // with its scenario, not a message in the middle of the progress bar.
    std::panic::set_hook(Box::new(|_| {}));
    let started = std::time::Instant::now();
    let bar = indicatif::ProgressBar::new(cfg.count);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} scenarios, {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let mut failures = 0u64;
    let result = fuzz::run(&cfg, &mut |event| match event {
        Event::Ran(o) => {
            bar.inc(1);
            if let Verdict::HostFailed(why) = &o.verdict {
                bar.suspend(|| eprintln!("scenario {}: the kernel run stopped: {why}", o.index));
            }
        }
        Event::Shrinking { index } => bar.set_message(format!("shrinking scenario {index}")),
        Event::Found {
            index,
            lines,
            verdict,
            path,
        } => {
            failures += 1;
            bar.set_message(format!("{failures} found"));
            let what = match &verdict {
                Verdict::Diverged(d) => format!("differs first at line {}", d[0].line),
                Verdict::EngineFailed(e) => format!("engine failed: {e}"),
                _ => String::new(),
            };
            let place = path
                .map(|p| format!(" -> {}", p.display()))
                .unwrap_or_default();
            bar.suspend(|| {
                eprintln!(
                    "scenario {index}: {what} ({} statements after shrinking){place}",
                    lines.len()
                )
            });
        }
    });
    bar.finish_and_clear();
    let _ = std::panic::take_hook();
    let summary = result.map_err(|e| {
        eprintln!("vmspace: fuzz: {e}");
        1u8
    })?;
    let unconfirmed = if summary.unconfirmed > 0 {
        format!(
            " ({} more differed once but not again: kernel-side noise)",
            summary.unconfirmed
        )
    } else {
        String::new()
    };
    println!(
        "fuzz: seed {}: {} scenarios, {} statements compared, {} divergences, {} engine failures, {} kernel-side failures in {:.1}s{unconfirmed}",
        cfg.seed,
        summary.scenarios,
        summary.statements,
        summary.divergences,
        summary.engine_failures,
        summary.host_failures,
        started.elapsed().as_secs_f64()
    );
    Ok(if summary.clean() { 0 } else { 1 })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => cmd_run(args),
        Command::Diff(args) => cmd_diff(args),
        Command::Fuzz(args) => cmd_fuzz(args),
    };
    ExitCode::from(result.unwrap_or_else(|status| status))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_options() {
        let cli = Cli::try_parse_from([
            "vmspace",
            "run",
            "--json",
            "--set",
            "ram=1G",
            "--set",
            "swap=0",
            "--from-proc",
            "d",
            "s.vms",
        ])
        .expect("parses");
        let Command::Run(a) = cli.command else {
            panic!("run")
        };
        assert!(a.json && !a.host);
        assert_eq!(a.from_proc, Some(PathBuf::from("d")));
        assert_eq!(
            a.sets,
            vec![
                Param {
                    key: "ram".into(),
                    value: 1 << 30
                },
                Param {
                    key: "swap".into(),
                    value: 0
                }
            ]
        );
        assert_eq!(a.file, PathBuf::from("s.vms"));
    }

    #[test]
    fn usage_errors() {
        let e = Cli::try_parse_from(["vmspace", "run", "--host", "--from-proc", "d", "s.vms"])
            .expect_err("conflict");
        assert_eq!(e.exit_code(), 2);
        let e = Cli::try_parse_from(["vmspace", "run", "--set", "nope=1", "s.vms"])
            .expect_err("bad key");
        assert_eq!(e.exit_code(), 2);
        let e = Cli::try_parse_from(["vmspace", "diff"]).expect_err("no file");
        assert_eq!(e.exit_code(), 2);
        let e = Cli::try_parse_from(["vmspace", "diff", "--host", "s.vms"]).expect_err("no --host");
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn diff_options() {
        let cli = Cli::try_parse_from([
            "vmspace",
            "diff",
            "--json",
            "--set",
            "max_map_count=10",
            "x",
        ])
        .expect("parses");
        let Command::Diff(a) = cli.command else {
            panic!("diff")
        };
        assert!(a.json);
        assert_eq!(
            a.sets,
            vec![Param {
                key: "max_map_count".into(),
                value: 10
            }]
        );
    }
}
