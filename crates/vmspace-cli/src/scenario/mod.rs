//! The scenario language (`.vms`): lexer, parser, syntax tree and the checks
//! made before anything runs. See `/work/shared/spec/scenario.md`.
//!
//! ```
//! use vmspace_cli::scenario::parse;
//! let script = parse("t.vms", "a = mmap(NULL, 4K, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)\n").unwrap();
//! assert_eq!(script.stmts.len(), 1);
//! let errors = parse("t.vms", "munmap(b, 4K)\n").unwrap_err();
//! assert_eq!(errors[0].to_string(), "t.vms:1:8: unknown variable `b`");
//! ```

#![warn(missing_docs)]

pub mod ast;
mod check;
pub mod lexer;
pub mod parser;

use std::fmt;

pub use ast::{Arg, BinOp, CallStmt, Expr, Op, Pos, Script, Selector, SetStmt, Stmt, StmtKind};

use crate::backend::Param;

/// The machine parameters `set` and `--set` accept.
pub const KNOWN_PARAMS: &[&str] = vmspace::params::PARAM_NAMES;

/// An error in a scenario, printed as `file:line:column: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioError {
    /// The scenario's file name.
    pub file: String,
    /// Where the offending token is.
    pub pos: Pos,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.pos.line, self.pos.col, self.message
        )
    }
}

impl std::error::Error for ScenarioError {}

/// Parses and checks a whole scenario. On failure gives every error found
/// (at most one per line), in file order.
pub fn parse(file: &str, source: &str) -> Result<Script, Vec<ScenarioError>> {
    let mut stmts = Vec::new();
    let mut errors = Vec::new();
    let mut checker = check::Checker::default();
    let error = |pos: Pos, message: String| ScenarioError {
        file: file.to_string(),
        pos,
        message,
    };
    for (index, text) in source.lines().enumerate() {
        let line = index + 1;
        let lexed = match lexer::lex_line(text) {
            Ok(l) => l,
            Err(e) => {
                errors.push(error(Pos { line, col: e.col }, e.message));
                continue;
            }
        };
        if lexed.is_empty() {
            continue;
        }
        match parser::parse_line(&lexed, line) {
            Ok(stmt) => {
                if let Err((pos, message)) = checker.statement(&stmt) {
                    errors.push(error(pos, message));
                }
                stmts.push(stmt);
            }
            Err(failure) => {
                if let Some(name) = failure.bind {
                    checker.bind_unknown(name);
                }
                errors.push(error(
                    Pos {
                        line,
                        col: failure.error.col,
                    },
                    failure.error.message,
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(Script {
            file: file.to_string(),
            stmts,
        })
    } else {
        Err(errors)
    }
}

/// Parses a command-line `KEY=VALUE` parameter (`--set`), with the same value
/// syntax as `set` lines (`16K`, `0x1000`, arithmetic).
///
/// ```
/// use vmspace_cli::scenario::parse_param;
/// let p = parse_param("mmap_min_addr=4K").unwrap();
/// assert_eq!((p.key.as_str(), p.value), ("mmap_min_addr", 4096));
/// assert!(parse_param("nope=1").is_err());
/// ```
pub fn parse_param(s: &str) -> Result<Param, String> {
    let Some((key, value)) = s.split_once('=') else {
        return Err(format!("`{s}`: expected KEY=VALUE"));
    };
    let key = key.trim();
    if !KNOWN_PARAMS.contains(&key) {
        return Err(format!(
            "unknown parameter `{key}` (known: {})",
            KNOWN_PARAMS.join(", ")
        ));
    }
    let lexed = lexer::lex_line(value).map_err(|e| format!("`{s}`: {}", e.message))?;
    if lexed.is_empty() {
        return Err(format!("`{s}`: missing value"));
    }
    let value = parser::parse_const(&lexed).map_err(|e| format!("`{s}`: {}", e.message))?;
    Ok(Param {
        key: key.to_string(),
        value,
    })
}

/// Merges parameter lists: later entries win over earlier ones with the same
/// key (so pass the file's `set` lines first, then the command line's).
/// Keys keep the order of their first appearance.
pub fn merge_params(lists: &[&[Param]]) -> Vec<Param> {
    let mut out: Vec<Param> = Vec::new();
    for p in lists.iter().flat_map(|l| l.iter()) {
        match out.iter_mut().find(|q| q.key == p.key) {
            Some(q) => q.value = p.value,
            None => out.push(p.clone()),
        }
    }
    out
}

#[cfg(test)]
mod tests;
