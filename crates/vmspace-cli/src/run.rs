//! The evaluator: runs a checked [`Script`] on a [`Backend`], statement by
//! statement, and hands each result to a sink as a [`Record`].

#![warn(missing_docs)]

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use crate::backend::{Backend, BackendError, Call, Outcome, Param, Pid, ProcSnapshot};
use crate::scenario::{Arg, Op, Pos, ScenarioError, Script, Selector, StmtKind};

/// How the engine backend is built: machine parameters and starting state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// Machine parameters (`set` lines and `--set` flags, merged; later
    /// entries win).
    pub params: Vec<Param>,
    /// The first process's starting state.
    pub start: StartState,
}

/// Where the first process starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartState {
    /// As Linux leaves a freshly executed static x86-64 executable with
    /// address-space randomisation off.
    Exec,
    /// From a real process's state (`--from-proc DIR`, or the host backend's
    /// helper process in `vmspace diff`).
    Snapshot(ProcSnapshot),
}

/// The result of one statement, ready to print.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// 1-based line in the scenario file.
    pub line: usize,
    /// The process: `main`, the selector's variable, or `pid N`.
    pub proc_name: String,
    /// The operation's name (`mmap`, `load`, `maps`, ...).
    pub op: &'static str,
    /// What the backend answered.
    pub outcome: Outcome,
    /// The statement as written.
    pub text: String,
}

/// Why a run stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunError {
    /// A scenario error found only at run time (a statement for a process
    /// that has exited, or whose `fork()` failed). Exit status 2.
    Scenario(ScenarioError),
    /// The backend itself failed. Exit status 1.
    Backend {
        /// The scenario's file name.
        file: String,
        /// The statement's line.
        line: usize,
        /// The statement as written.
        text: String,
        /// The backend's message.
        error: BackendError,
    },
}

impl RunError {
    /// The process exit status this error calls for.
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::Scenario(_) => 2,
            RunError::Backend { .. } => 1,
        }
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Scenario(e) => e.fmt(f),
            RunError::Backend {
                file,
                line,
                text,
                error,
            } => {
                write!(
                    f,
                    "{file}:{line}: backend failure while running `{text}`: {error}"
                )
            }
        }
    }
}

impl std::error::Error for RunError {}

/// The value a statement binds to its variable: the call's `ret`. A
/// successful call binds its result (an address, an fd, a pid, 0); a failed
/// call and a faulting access bind -1; a completed memory access, `mincore`,
/// an inspection and `exit` bind 0.
pub fn bound_value(outcome: &Outcome) -> u64 {
    match outcome {
        Outcome::Value(v) => *v as u64,
        Outcome::Addr(a) => *a,
        Outcome::Error(_) | Outcome::Signal(_) => u64::MAX,
        Outcome::Hash(_) | Outcome::Mincore(_) | Outcome::Text(_) | Outcome::Exited => 0,
        Outcome::Killed(_) => u64::MAX,
    }
}

/// Builds the backend call for `op` from evaluated arguments in C order
/// (`path` is `open`'s first argument; its slot in `a` is unused).
pub fn build_call(op: Op, path: Option<String>, a: &[u64]) -> Call {
    let g = |i: usize| a.get(i).copied().unwrap_or(0);
    match op {
        Op::Mmap => Call::Mmap {
            addr: g(0),
            len: g(1),
            prot: g(2),
            flags: g(3),
            fd: g(4),
            off: g(5),
        },
        Op::Munmap => Call::Munmap {
            addr: g(0),
            len: g(1),
        },
        Op::Mprotect => Call::Mprotect {
            addr: g(0),
            len: g(1),
            prot: g(2),
        },
        Op::Mremap => Call::Mremap {
            old_addr: g(0),
            old_size: g(1),
            new_size: g(2),
            flags: g(3),
            new_addr: g(4),
        },
        Op::Brk => Call::Brk { addr: g(0) },
        Op::Madvise => Call::Madvise {
            addr: g(0),
            len: g(1),
            advice: g(2),
        },
        Op::Mlock => Call::Mlock {
            addr: g(0),
            len: g(1),
        },
        Op::Mlock2 => Call::Mlock2 {
            addr: g(0),
            len: g(1),
            flags: g(2),
        },
        Op::Munlock => Call::Munlock {
            addr: g(0),
            len: g(1),
        },
        Op::Mlockall => Call::Mlockall { flags: g(0) },
        Op::Munlockall => Call::Munlockall,
        Op::Msync => Call::Msync {
            addr: g(0),
            len: g(1),
            flags: g(2),
        },
        Op::Mincore => Call::Mincore {
            addr: g(0),
            len: g(1),
        },
        Op::Mseal => Call::Mseal {
            addr: g(0),
            len: g(1),
            flags: g(2),
        },
        Op::RemapFilePages => Call::RemapFilePages {
            start: g(0),
            size: g(1),
            prot: g(2),
            pgoff: g(3),
            flags: g(4),
        },
        Op::Setrlimit => Call::Setrlimit {
            resource: g(0),
            soft: g(1),
            hard: g(2),
        },
        Op::Open => Call::Open {
            path: path.unwrap_or_default(),
            flags: g(1),
            mode: g(2),
        },
        Op::Close => Call::Close { fd: g(0) },
        Op::Ftruncate => Call::Ftruncate {
            fd: g(0),
            len: g(1),
        },
        Op::Pwrite => Call::Pwrite {
            fd: g(0),
            byte: g(1),
            count: g(2),
            off: g(3),
        },
        Op::Fork => Call::Fork,
        Op::Exit => Call::Exit { code: g(0) },
        Op::Load => Call::Load {
            addr: g(0),
            len: g(1),
        },
        Op::Store => Call::Store {
            addr: g(0),
            len: g(1),
            byte: g(2),
        },
        Op::Exec => Call::Exec { addr: g(0) },
        Op::Peek => Call::Peek {
            addr: g(0),
            len: g(1),
        },
        Op::Poke => Call::Poke {
            addr: g(0),
            len: g(1),
            byte: g(2),
        },
        Op::Maps => Call::Maps,
        Op::Smaps => Call::Smaps,
        Op::SmapsRollup => Call::SmapsRollup,
        Op::Status => Call::Status,
        Op::Faults => Call::Faults,
    }
}

/// Runs `script` on `backend`, giving `sink` one [`Record`] per call
/// statement as soon as it completes (`set` lines produce none).
///
/// Stops at the first [`RunError`]; the records given so far stand.
pub fn run(
    script: &Script,
    backend: &mut dyn Backend,
    sink: &mut dyn FnMut(Record),
) -> Result<(), RunError> {
    let scenario_error = |pos: Pos, message: String| {
        RunError::Scenario(ScenarioError {
            file: script.file.clone(),
            pos,
            message,
        })
    };
    let main_pid = backend.main_pid();
    let mut vars: HashMap<&str, u64> = HashMap::new();
    // Variables bound by fork(): the child's pid, or None if the fork failed.
    let mut forks: HashMap<&str, Option<Pid>> = HashMap::new();
    // Processes that have exited, with the line of their exit().
    let mut exited: HashMap<Pid, usize> = HashMap::new();

    for stmt in &script.stmts {
        let StmtKind::Call(call) = &stmt.kind else {
            continue;
        };
        let (pid, proc_name, pos) = match &call.selector {
            None => (main_pid, "main".to_string(), stmt.pos),
            Some(Selector::Pid { pid, pos }) => (*pid, format!("pid {pid}"), *pos),
            Some(Selector::Var { name, pos }) => match forks.get(name.as_str()) {
                Some(Some(pid)) => (*pid, name.clone(), *pos),
                Some(None) => {
                    return Err(scenario_error(
                        *pos,
                        format!("process `{name}` does not exist: its fork() failed"),
                    ))
                }
                None => {
                    return Err(scenario_error(
                        *pos,
                        format!("`{name}` is not bound by fork()"),
                    ))
                }
            },
        };
        if let Some(line) = exited.get(&pid) {
            let who = if proc_name.starts_with("pid ") {
                format!("process `{proc_name}`")
            } else {
                format!("process `{proc_name}` (pid {pid})")
            };
            return Err(scenario_error(
                pos,
                format!("{who} has exited (exit() at line {line})"),
            ));
        }
        let mut values = Vec::with_capacity(call.args.len());
        let mut path = None;
        for arg in &call.args {
            match arg {
                Arg::Str(s, _) => {
                    path = Some(s.clone());
                    values.push(0);
                }
                Arg::Expr(e) => {
                    let v = e
                        .eval(&|name| vars.get(name).copied())
                        .map_err(|(name, pos)| {
                            scenario_error(pos, format!("unknown variable `{name}`"))
                        })?;
                    values.push(v);
                }
            }
        }
        let c = build_call(call.op, path, &values);
        let outcome = backend.call(pid, &c).map_err(|error| RunError::Backend {
            file: script.file.clone(),
            line: stmt.pos.line,
            text: stmt.text.clone(),
            error,
        })?;
        if matches!(outcome, Outcome::Exited | Outcome::Killed(_)) {
            exited.insert(pid, stmt.pos.line);
        }
        if let Some((name, _)) = &call.bind {
            vars.insert(name, bound_value(&outcome));
            if call.op == Op::Fork {
                let child = match outcome {
                    Outcome::Value(p) if p >= 0 => Some(p as Pid),
                    _ => None,
                };
                if let Some(child) = child {
                    exited.remove(&child);
                }
                forks.insert(name, child);
            } else {
                forks.remove(name.as_str());
            }
        }
        sink(Record {
            line: stmt.pos.line,
            proc_name,
            op: c.op(),
            outcome,
            text: stmt.text.clone(),
        });
    }
    Ok(())
}

/// Runs `script` and collects every record.
pub fn run_collect(
    script: &Script,
    backend: &mut dyn Backend,
) -> (Vec<Record>, Result<(), RunError>) {
    let mut records = Vec::new();
    let result = run(script, backend, &mut |r| records.push(r));
    (records, result)
}

fn read_optional(path: &Path) -> Result<Option<String>, String> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Parses the program break as `DIR/brk` holds it: hex, with or without `0x`.
///
/// ```
/// use vmspace_cli::run::parse_brk;
/// assert_eq!(parse_brk("0x555555559000\n"), Ok(0x555555559000));
/// assert_eq!(parse_brk("555555559000"), Ok(0x555555559000));
/// assert!(parse_brk("zz").is_err());
/// ```
pub fn parse_brk(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("expected a hex address, found `{t}`"));
    }
    u64::from_str_radix(digits, 16).map_err(|_| format!("address `{t}` is too large"))
}

/// Reads a `--from-proc DIR` directory: `maps` (required), `smaps`, `stat`,
/// `brk` and `limits` (optional).
pub fn read_proc_dir(dir: &Path) -> Result<ProcSnapshot, String> {
    let maps_path = dir.join("maps");
    let maps = match std::fs::read_to_string(&maps_path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "{} is missing: --from-proc needs a copy of /proc/PID/maps there",
                maps_path.display()
            ))
        }
        Err(e) => return Err(format!("cannot read {}: {e}", maps_path.display())),
    };
    let brk_path = dir.join("brk");
    let brk = match read_optional(&brk_path)? {
        Some(text) => Some(parse_brk(&text).map_err(|e| format!("{}: {e}", brk_path.display()))?),
        None => None,
    };
    Ok(ProcSnapshot {
        maps,
        smaps: read_optional(&dir.join("smaps"))?,
        stat: read_optional(&dir.join("stat"))?,
        brk,
        limits: read_optional(&dir.join("limits"))?,
        resident: read_optional(&dir.join("resident"))?,
        helper_image: None,
    })
}

#[cfg(test)]
/// A scripted [`Backend`] for unit tests.
pub(crate) mod fake {
    use crate::backend::{Backend, BackendError, Call, Outcome, Pid};

    type Responder = Box<dyn FnMut(Pid, &Call) -> Result<Outcome, BackendError>>;

    /// Records every call; answers with `respond`, or by default: `mmap` gives
    /// successive addresses, `fork` successive pids, `exit` [`Outcome::Exited`],
    /// `load`/`peek` a hash of the arguments, inspections a short text, anything
    /// else 0.
    pub(crate) struct FakeBackend {
        pub main: Pid,
        pub calls: Vec<(Pid, Call)>,
        pub respond: Option<Responder>,
        next_pid: Pid,
        next_addr: u64,
    }

    impl FakeBackend {
        pub fn new() -> Self {
            FakeBackend {
                main: 100,
                calls: Vec::new(),
                respond: None,
                next_pid: 101,
                next_addr: 0x7fff_f7ff_0000,
            }
        }

        pub fn with(
            respond: impl FnMut(Pid, &Call) -> Result<Outcome, BackendError> + 'static,
        ) -> Self {
            FakeBackend {
                respond: Some(Box::new(respond)),
                ..FakeBackend::new()
            }
        }
    }

    impl Backend for FakeBackend {
        fn main_pid(&self) -> Pid {
            self.main
        }

        fn call(&mut self, pid: Pid, call: &Call) -> Result<Outcome, BackendError> {
            self.calls.push((pid, call.clone()));
            if let Some(r) = self.respond.as_mut() {
                return r(pid, call);
            }
            Ok(match call {
                Call::Mmap { .. } => {
                    self.next_addr -= 0x1_0000;
                    Outcome::Addr(self.next_addr)
                }
                Call::Fork => {
                    self.next_pid += 1;
                    Outcome::Value((self.next_pid - 1) as i64)
                }
                Call::Exit { .. } => Outcome::Exited,
                Call::Load { addr, len } | Call::Peek { addr, len } => Outcome::Hash(addr ^ len),
                Call::Maps | Call::Smaps | Call::SmapsRollup | Call::Status | Call::Faults => {
                    Outcome::Text(format!("text of {pid}\n"))
                }
                _ => Outcome::Value(0),
            })
        }
    }
}
#[cfg(test)]
mod tests {
    use super::fake::FakeBackend;
    use super::*;
    use crate::backend::Signal;
    use crate::scenario::parse;

    fn script(src: &str) -> Script {
        match parse("t.vms", src) {
            Ok(s) => s,
            Err(e) => panic!("{e:?}"),
        }
    }

    fn run_fake(src: &str, backend: &mut FakeBackend) -> (Vec<Record>, Result<(), RunError>) {
        run_collect(&script(src), backend)
    }

    #[test]
    fn builds_calls_with_evaluated_arguments() {
        let mut b = FakeBackend::new();
        let (records, r) = run_fake(
            "a = mmap(NULL, 8K, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)\n\
         munmap(a + 4K, 4K)\n\
         mremap(a, 4K, 8K, MREMAP_MAYMOVE)\n\
         mremap(a, 4K, 8K, MREMAP_MAYMOVE|MREMAP_FIXED, a + 1M)\n\
         fd = open(\"f\", O_RDWR|O_CREAT)\n\
         open(\"g\", O_RDWR|O_CREAT, 0600)\n\
         pwrite(fd, 0x41, 3, 1K)\n",
            &mut b,
        );
        assert_eq!(r, Ok(()));
        let a = 0x7fff_f7fe_0000;
        let calls: Vec<Call> = b.calls.iter().map(|(_, c)| c.clone()).collect();
        assert_eq!(
            calls,
            vec![
                Call::Mmap {
                    addr: 0,
                    len: 8192,
                    prot: 3,
                    flags: 0x22,
                    fd: u64::MAX,
                    off: 0
                },
                Call::Munmap {
                    addr: a + 4096,
                    len: 4096
                },
                Call::Mremap {
                    old_addr: a,
                    old_size: 4096,
                    new_size: 8192,
                    flags: 1,
                    new_addr: 0
                },
                Call::Mremap {
                    old_addr: a,
                    old_size: 4096,
                    new_size: 8192,
                    flags: 3,
                    new_addr: a + (1 << 20)
                },
                Call::Open {
                    path: "f".into(),
                    flags: 0o102,
                    mode: 0
                },
                Call::Open {
                    path: "g".into(),
                    flags: 0o102,
                    mode: 0o600
                },
                Call::Pwrite {
                    fd: 0,
                    byte: 0x41,
                    count: 3,
                    off: 1024
                },
            ]
        );
        assert!(b.calls.iter().all(|(pid, _)| *pid == 100));
        assert_eq!(records.len(), 7);
        assert_eq!(records[0].op, "mmap");
        assert_eq!(records[0].outcome, Outcome::Addr(a));
        assert_eq!(records[0].line, 1);
        assert_eq!(records[0].proc_name, "main");
        assert_eq!(records[1].text, "munmap(a + 4K, 4K)");
    }

    #[test]
    fn every_op_builds_its_call() {
        for &op in Op::ALL {
            let (_, max) = op.arity();
            let args: Vec<u64> = (1..=max as u64).collect();
            let path = (op == Op::Open).then(|| "p".to_string());
            let call = build_call(op, path, &args);
            assert_eq!(call.op(), op.name());
        }
        assert_eq!(
            build_call(Op::Mmap, None, &[1, 2, 3, 4, 5, 6]),
            Call::Mmap {
                addr: 1,
                len: 2,
                prot: 3,
                flags: 4,
                fd: 5,
                off: 6
            }
        );
        assert_eq!(
            build_call(Op::Setrlimit, None, &[9, 1, 2]),
            Call::Setrlimit {
                resource: 9,
                soft: 1,
                hard: 2
            }
        );
        // Missing arguments never panic.
        assert_eq!(
            build_call(Op::Store, None, &[]),
            Call::Store {
                addr: 0,
                len: 0,
                byte: 0
            }
        );
    }

    #[test]
    fn binding_rules() {
        assert_eq!(bound_value(&Outcome::Value(5)), 5);
        assert_eq!(bound_value(&Outcome::Value(-1)), u64::MAX);
        assert_eq!(bound_value(&Outcome::Addr(0x1000)), 0x1000);
        assert_eq!(bound_value(&Outcome::Error(12)), u64::MAX);
        assert_eq!(bound_value(&Outcome::Hash(77)), 0);
        assert_eq!(
            bound_value(&Outcome::Signal(Signal {
                signo: 11,
                code: 1,
                addr: 5
            })),
            u64::MAX
        );
        assert_eq!(bound_value(&Outcome::Mincore("10".into())), 0);
        assert_eq!(bound_value(&Outcome::Text("x".into())), 0);
        assert_eq!(bound_value(&Outcome::Exited), 0);
    }

    #[test]
    fn bound_values_flow_into_later_calls() {
        let mut b = FakeBackend::with(|_, call| {
            Ok(match call {
                Call::Mmap { .. } => Outcome::Error(12),
                Call::Load { .. } => Outcome::Hash(0xdead),
                Call::Store { .. } => Outcome::Signal(Signal {
                    signo: 11,
                    code: 2,
                    addr: 0x1000,
                }),
                Call::Brk { .. } => Outcome::Addr(0x5555_0000),
                Call::Mincore { .. } => Outcome::Mincore("01".into()),
                Call::Maps => Outcome::Text("m\n".into()),
                _ => Outcome::Value(7),
            })
        });
        let (_, r) = run_fake(
            "a = mmap(NULL, 4K, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)\n\
         h = load(0, 1)\n\
         s = store(0, 1, 2)\n\
         k = brk(0)\n\
         v = mincore(0, 1)\n\
         m = maps()\n\
         n = close(3)\n\
         brk(a)\nbrk(h)\nbrk(s)\nbrk(k)\nbrk(v)\nbrk(m)\nbrk(n)\nbrk(a + 1)\n",
            &mut b,
        );
        assert_eq!(r, Ok(()));
        let brks: Vec<u64> = b
            .calls
            .iter()
            .skip(7)
            .map(|(_, c)| match c {
                Call::Brk { addr } => *addr,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(brks, vec![u64::MAX, 0, u64::MAX, 0x5555_0000, 0, 0, 7, 0]);
    }

    #[test]
    fn selectors_pick_processes() {
        let mut b = FakeBackend::new();
        let (records, r) = run_fake(
            "child = fork()\n\
         [child] maps()\n\
         [pid 555] status()\n\
         [child] grand = fork()\n\
         [grand] brk(child)\n\
         maps()\n",
            &mut b,
        );
        assert_eq!(r, Ok(()));
        let pids: Vec<Pid> = b.calls.iter().map(|(p, _)| *p).collect();
        assert_eq!(pids, vec![100, 101, 555, 101, 102, 100]);
        assert_eq!(b.calls[4].1, Call::Brk { addr: 101 });
        let names: Vec<&str> = records.iter().map(|r| r.proc_name.as_str()).collect();
        assert_eq!(
            names,
            vec!["main", "child", "pid 555", "child", "grand", "main"]
        );
        assert_eq!(records[0].outcome, Outcome::Value(101));
    }

    #[test]
    fn set_lines_produce_no_records() {
        let mut b = FakeBackend::new();
        let (records, r) = run_fake("set ram=1G\nmaps()\nset swap=0\n", &mut b);
        assert_eq!(r, Ok(()));
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].line, 2);
    }

    #[test]
    fn statement_for_an_exited_process_stops_the_run() {
        // Statically unknowable: [pid 101] is the child.
        let mut b = FakeBackend::new();
        let (records, r) = run_fake(
            "c = fork()\n[c] exit(0)\n  [pid 101] maps()\nmaps()\n",
            &mut b,
        );
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].outcome, Outcome::Exited);
        let e = r.expect_err("exited");
        assert_eq!(
            e.to_string(),
            "t.vms:3:4: process `pid 101` has exited (exit() at line 2)"
        );
        assert_eq!(e.exit_code(), 2);

        let mut b = FakeBackend::new();
        let (_, r) = run_fake("[pid 100] exit(0)\n maps()\n", &mut b);
        assert_eq!(
            r.map_err(|e| e.to_string()),
            Err("t.vms:2:2: process `main` (pid 100) has exited (exit() at line 1)".to_string())
        );

        let mut b = FakeBackend::new();
        let (_, r) = run_fake("c = fork()\n[pid 101] exit(0)\n[c] maps()\n", &mut b);
        assert_eq!(
            r.map_err(|e| e.to_string()),
            Err("t.vms:3:2: process `c` (pid 101) has exited (exit() at line 2)".to_string())
        );
    }

    #[test]
    fn failed_fork_leaves_no_process() {
        let mut b = FakeBackend::with(|_, call| {
            Ok(match call {
                Call::Fork => Outcome::Error(11),
                _ => Outcome::Value(0),
            })
        });
        let (records, r) = run_fake("c = fork()\nbrk(c)\n[c] maps()\n", &mut b);
        assert_eq!(records.len(), 2);
        assert_eq!(b.calls[1].1, Call::Brk { addr: u64::MAX });
        let e = r.expect_err("no child");
        assert_eq!(
            e.to_string(),
            "t.vms:3:2: process `c` does not exist: its fork() failed"
        );
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn backend_failure_stops_the_run() {
        let mut n = 0;
        let mut b = FakeBackend::with(move |_, _| {
            n += 1;
            if n == 2 {
                Err(BackendError("helper died".into()))
            } else {
                Ok(Outcome::Value(0))
            }
        });
        let (records, r) = run_fake("close(1)\nclose(2)   # boom\nclose(3)\n", &mut b);
        assert_eq!(records.len(), 1);
        assert_eq!(b.calls.len(), 2);
        let e = r.expect_err("backend");
        assert_eq!(e.exit_code(), 1);
        assert_eq!(
            e.to_string(),
            "t.vms:2: backend failure while running `close(2)`: helper died"
        );
    }

    #[test]
    fn records_stream_to_the_sink_in_order() {
        let mut b = FakeBackend::new();
        let mut lines = Vec::new();
        let r = run(&script("maps()\n\nstatus()\n"), &mut b, &mut |rec| {
            lines.push(rec.line)
        });
        assert_eq!(r, Ok(()));
        assert_eq!(lines, vec![1, 3]);
    }

    #[test]
    fn proc_dir_reading() {
        let dir = std::env::temp_dir().join(format!("vmspace-cli-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let e = read_proc_dir(&dir).expect_err("no maps");
        assert!(e.contains("maps is missing"), "{e}");
        std::fs::write(
            dir.join("maps"),
            "00400000-00401000 r-xp 00000000 00:00 0\n",
        )
        .expect("write");
        let s = read_proc_dir(&dir).expect("maps only");
        assert_eq!(s.maps, "00400000-00401000 r-xp 00000000 00:00 0\n");
        assert_eq!((s.smaps, s.stat, s.brk, s.limits), (None, None, None, None));
        std::fs::write(dir.join("brk"), "0x4c3000\n").expect("write");
        std::fs::write(dir.join("stat"), "1 (x) R").expect("write");
        std::fs::write(dir.join("limits"), "Limit\n").expect("write");
        std::fs::write(dir.join("smaps"), "s\n").expect("write");
        let s = read_proc_dir(&dir).expect("all");
        assert_eq!(s.brk, Some(0x4c3000));
        assert_eq!(s.stat.as_deref(), Some("1 (x) R"));
        assert_eq!(s.limits.as_deref(), Some("Limit\n"));
        assert_eq!(s.smaps.as_deref(), Some("s\n"));
        std::fs::write(dir.join("brk"), "nope").expect("write");
        assert!(read_proc_dir(&dir)
            .expect_err("bad brk")
            .contains("expected a hex address"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn brk_file_forms() {
        assert_eq!(parse_brk("4c3000"), Ok(0x4c3000));
        assert_eq!(parse_brk("  0X4C3000 \n"), Ok(0x4c3000));
        assert!(parse_brk("").is_err());
        assert!(parse_brk("0x").is_err());
        assert!(parse_brk("10000000000000000").is_err());
    }
}
