//! Whole-script checks made before anything runs: every variable is bound
//! before use, every process selector names a `fork()` child, and no
//! statement addresses a process already known to have exited.

use std::collections::HashMap;

use super::ast::{Arg, CallStmt, Op, Pos, Selector, Stmt, StmtKind};

/// How a variable was last bound, as far as the checker can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Binding {
    /// By `fork()`: it names a process.
    Fork,
    /// By any other call.
    Value,
    /// By a line that failed to parse: accept any use, to avoid piling
    /// errors on the first one.
    Unknown,
}

/// A process as the script names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum ProcKey {
    Main,
    Var(String),
    Pid(u64),
}

/// The checker's state while walking the script in order.
#[derive(Debug, Default)]
pub(crate) struct Checker {
    vars: HashMap<String, Binding>,
    /// Processes known to have exited, with the line of their `exit()`.
    exited: HashMap<ProcKey, usize>,
}

impl Checker {
    /// Records a line that failed to parse but would have bound `name`.
    pub(crate) fn bind_unknown(&mut self, name: String) {
        self.exited.remove(&ProcKey::Var(name.clone()));
        self.vars.insert(name, Binding::Unknown);
    }

    /// Checks one statement, then records what it binds and ends. Returns the
    /// first problem found, as a position and a message.
    pub(crate) fn statement(&mut self, stmt: &Stmt) -> Result<(), (Pos, String)> {
        let StmtKind::Call(call) = &stmt.kind else {
            return Ok(());
        };
        let checked = self.check(stmt.pos, call);
        if let (Ok(key), Op::Exit) = (&checked, call.op) {
            self.exited.insert(key.clone(), stmt.pos.line);
        }
        // Bind even after an error, so later lines do not report it again.
        if let Some((name, _)) = &call.bind {
            let binding = if call.op == Op::Fork {
                Binding::Fork
            } else {
                Binding::Value
            };
            if binding == Binding::Fork {
                self.exited.remove(&ProcKey::Var(name.clone()));
            }
            self.vars.insert(name.clone(), binding);
        }
        checked.map(|_| ())
    }

    /// Checks a call statement starting at `start`; on success gives the
    /// process it runs in.
    fn check(&self, start: Pos, call: &CallStmt) -> Result<ProcKey, (Pos, String)> {
        let (key, key_pos, shown) = match &call.selector {
            None => (ProcKey::Main, start, "the main process".to_string()),
            Some(Selector::Pid { pid, pos }) => {
                (ProcKey::Pid(*pid), *pos, format!("process `pid {pid}`"))
            }
            Some(Selector::Var { name, pos }) => {
                match self.vars.get(name) {
                    None => {
                        return Err((*pos, format!("unknown process `{name}`: no `{name} = fork()` before this line")))
                    }
                    Some(Binding::Value) => {
                        return Err((*pos, format!("`{name}` is not a process: it was last bound by a call other than fork()")))
                    }
                    Some(Binding::Fork | Binding::Unknown) => {}
                }
                (
                    ProcKey::Var(name.clone()),
                    *pos,
                    format!("process `{name}`"),
                )
            }
        };
        if let Some(line) = self.exited.get(&key) {
            return Err((
                key_pos,
                format!("{shown} has exited (exit() at line {line})"),
            ));
        }
        let mut unknown = None;
        for arg in &call.args {
            if let Arg::Expr(e) = arg {
                e.for_each_var(&mut |name, pos| {
                    if unknown.is_none() && !self.vars.contains_key(name) {
                        unknown = Some((pos, format!("unknown variable `{name}`")));
                    }
                });
            }
        }
        match unknown {
            Some(problem) => Err(problem),
            None => Ok(key),
        }
    }
}
