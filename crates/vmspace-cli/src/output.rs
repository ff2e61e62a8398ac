//! Printing records: `strace`-style text lines, or JSON lines.
//!
//! ```
//! use vmspace_cli::backend::Outcome;
//! use vmspace_cli::output;
//! use vmspace_cli::run::Record;
//! let r = Record {
//!     line: 4,
//!     proc_name: "main".into(),
//!     op: "munmap",
//!     outcome: Outcome::Error(22),
//!     text: "munmap(a + 3, 4K)".into(),
//! };
//! assert_eq!(output::text(&r), "munmap(a + 3, 4K) = -1 EINVAL (Invalid argument)\n");
//! assert_eq!(output::json(&r), r#"{"line":4,"proc":"main","op":"munmap","ret":-1,"errno":"EINVAL"}"#);
//! ```

#![warn(missing_docs)]

use serde::Serialize;

use crate::backend::{Outcome, Signal};
use crate::run::Record;

/// The name of a signal number (x86-64), if it is one a memory access can raise.
pub fn signal_name(signo: i32) -> Option<&'static str> {
    Some(match signo {
        4 => "SIGILL",
        5 => "SIGTRAP",
        7 => "SIGBUS",
        9 => "SIGKILL",
        8 => "SIGFPE",
        11 => "SIGSEGV",
        _ => return None,
    })
}

/// The name of a `si_code` for a signal, as `strace` prints it.
pub fn signal_code_name(signo: i32, code: i32) -> Option<&'static str> {
    Some(match (signo, code) {
        (_, 0x80) => "SI_KERNEL",
        (11, 1) => "SEGV_MAPERR",
        (11, 2) => "SEGV_ACCERR",
        (11, 3) => "SEGV_BNDERR",
        (11, 4) => "SEGV_PKUERR",
        (7, 1) => "BUS_ADRALN",
        (7, 2) => "BUS_ADRERR",
        (7, 3) => "BUS_OBJERR",
        (7, 4) => "BUS_MCEERR_AR",
        (7, 5) => "BUS_MCEERR_AO",
        _ => return None,
    })
}

fn signo_text(signo: i32) -> String {
    signal_name(signo).map_or_else(|| signo.to_string(), str::to_string)
}

fn code_text(signo: i32, code: i32) -> String {
    signal_code_name(signo, code).map_or_else(|| code.to_string(), str::to_string)
}

/// An errno's symbolic name (`EINVAL`), or its number if vmspace does not
/// know it (as `strace` prints unknown errors).
pub fn errno_name(errno: i32) -> String {
    vmspace::Errno::from_raw(errno).map_or_else(|| errno.to_string(), |e| e.name().to_string())
}

/// An errno's `strerror` text (`Invalid argument`), or glibc's
/// `Unknown error N`.
pub fn errno_text(errno: i32) -> String {
    vmspace::Errno::from_raw(errno).map_or_else(
        || format!("Unknown error {errno}"),
        |e| e.text().to_string(),
    )
}

/// An address as `strace` prints it: C's `%#lx` (so 0 is `0`).
pub fn hex(v: u64) -> String {
    if v == 0 {
        "0".to_string()
    } else {
        format!("{v:#x}")
    }
}

/// The signal part of a faulting access's result:
/// `? --- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_MAPERR, si_addr=0x...} ---`.
pub fn signal_text(s: &Signal) -> String {
    let name = signo_text(s.signo);
    let addr = if s.addr == 0 {
        "NULL".to_string()
    } else {
        hex(s.addr)
    };
    format!(
        "? --- {name} {{si_signo={name}, si_code={}, si_addr={addr}}} ---",
        code_text(s.signo, s.code)
    )
}

/// The result as it follows ` = ` on the statement's line.
pub fn result_text(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Value(v) => v.to_string(),
        Outcome::Addr(a) => hex(*a),
        Outcome::Error(e) => format!("-1 {} ({})", errno_name(*e), errno_text(*e)),
        Outcome::Hash(h) => format!("{h:#018x}"),
        Outcome::Signal(s) => signal_text(s),
        Outcome::Mincore(v) => format!("0 [{v}]"),
        Outcome::Text(_) => "0".to_string(),
        Outcome::Exited => "?".to_string(),
        Outcome::Killed(signo) => format!(
            "? +++ killed by {} (out of memory) +++",
            signal_name(*signo).map_or_else(|| signo.to_string(), str::to_string)
        ),
    }
}

/// A record in text form: `<statement> = <result>\n`, followed by an
/// inspection's text (always ending in a newline).
pub fn text(record: &Record) -> String {
    let mut out = format!("{} = {}\n", record.text, result_text(&record.outcome));
    if let Outcome::Text(t) = &record.outcome {
        out.push_str(t);
        if !t.is_empty() && !t.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// A faulting access's signal in JSON: `{"signo":"SIGSEGV","code":"SEGV_MAPERR","addr":N}`
/// (an unknown signal or code as its number).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JsonSignal {
    /// The signal's name, or its number.
    pub signo: serde_json::Value,
    /// The `si_code`'s name, or its number.
    pub code: serde_json::Value,
    /// `si_addr`.
    pub addr: u64,
}

fn name_or_number(name: Option<&'static str>, n: i32) -> serde_json::Value {
    name.map_or_else(|| serde_json::Value::from(n), serde_json::Value::from)
}

/// A record in JSON form, fields in the spec's order.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JsonRecord<'a> {
    /// 1-based line.
    pub line: usize,
    /// `main`, the selector's variable, or `pid N`.
    pub proc: &'a str,
    /// The operation.
    pub op: &'a str,
    /// The return value (`-1` for a failure or a fault).
    pub ret: serde_json::Number,
    /// A failed call's errno name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errno: Option<String>,
    /// A `load`/`peek` hash, `0x%016x`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// A faulting access's signal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<JsonSignal>,
    /// The signal that killed the process during the statement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub killed: Option<serde_json::Value>,
    /// `mincore`'s residency digits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vec: Option<&'a str>,
    /// An inspection's text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<&'a str>,
}

impl<'a> JsonRecord<'a> {
    /// The JSON form of `record`.
    pub fn new(record: &'a Record) -> Self {
        let mut j = JsonRecord {
            line: record.line,
            proc: &record.proc_name,
            op: record.op,
            ret: serde_json::Number::from(0),
            errno: None,
            hash: None,
            signal: None,
            killed: None,
            vec: None,
            text: None,
        };
        match &record.outcome {
            Outcome::Value(v) => j.ret = (*v).into(),
            Outcome::Addr(a) => j.ret = (*a).into(),
            Outcome::Error(e) => {
                j.ret = (-1).into();
                j.errno = Some(errno_name(*e));
            }
            Outcome::Hash(h) => j.hash = Some(format!("{h:#018x}")),
            Outcome::Signal(s) => {
                j.ret = (-1).into();
                j.signal = Some(JsonSignal {
                    signo: name_or_number(signal_name(s.signo), s.signo),
                    code: name_or_number(signal_code_name(s.signo, s.code), s.code),
                    addr: s.addr,
                });
            }
            Outcome::Mincore(v) => j.vec = Some(v),
            Outcome::Text(t) => j.text = Some(t),
            Outcome::Exited => {}
            Outcome::Killed(signo) => {
                j.ret = (-1).into();
                j.killed = Some(name_or_number(signal_name(*signo), *signo));
            }
        }
        j
    }
}

/// A record as one JSON line (without the newline).
pub fn json(record: &Record) -> String {
    // Serialising plain strings and numbers cannot fail.
    serde_json::to_string(&JsonRecord::new(record)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(text: &str, op: &'static str, outcome: Outcome) -> Record {
        Record {
            line: 3,
            proc_name: "main".into(),
            op,
            outcome,
            text: text.into(),
        }
    }

    fn both(text: &str, op: &'static str, outcome: Outcome) -> (String, String) {
        let r = rec(text, op, outcome);
        (super::text(&r), json(&r))
    }

    #[test]
    fn addresses() {
        let (t, j) = both(
            "a = mmap(NULL, 8K, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)",
            "mmap",
            Outcome::Addr(0x7fff_f7ff_6000),
        );
        assert_eq!(t, "a = mmap(NULL, 8K, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7ffff7ff6000\n");
        assert_eq!(
            j,
            r#"{"line":3,"proc":"main","op":"mmap","ret":140737354096640}"#
        );
        let (t, j) = both("brk(0)", "brk", Outcome::Addr(0));
        assert_eq!(t, "brk(0) = 0\n");
        assert_eq!(j, r#"{"line":3,"proc":"main","op":"brk","ret":0}"#);
        let (t, j) = both("brk(0)", "brk", Outcome::Addr(u64::MAX));
        assert_eq!(t, "brk(0) = 0xffffffffffffffff\n");
        assert_eq!(
            j,
            r#"{"line":3,"proc":"main","op":"brk","ret":18446744073709551615}"#
        );
    }

    #[test]
    fn values() {
        let (t, j) = both(
            "fd = open(\"f\", O_RDWR|O_CREAT)",
            "open",
            Outcome::Value(3),
        );
        assert_eq!(t, "fd = open(\"f\", O_RDWR|O_CREAT) = 3\n");
        assert_eq!(j, r#"{"line":3,"proc":"main","op":"open","ret":3}"#);
        let (t, j) = both("munmap(a, 4K)", "munmap", Outcome::Value(0));
        assert_eq!(t, "munmap(a, 4K) = 0\n");
        assert_eq!(j, r#"{"line":3,"proc":"main","op":"munmap","ret":0}"#);
        let (t, _) = both("x()", "x", Outcome::Value(-5));
        assert_eq!(t, "x() = -5\n");
    }

    #[test]
    fn errors() {
        let (t, j) = both("munmap(a + 3, 4K)", "munmap", Outcome::Error(22));
        assert_eq!(t, "munmap(a + 3, 4K) = -1 EINVAL (Invalid argument)\n");
        assert_eq!(
            j,
            r#"{"line":3,"proc":"main","op":"munmap","ret":-1,"errno":"EINVAL"}"#
        );
        let (t, j) = both("mmap(x)", "mmap", Outcome::Error(12));
        assert_eq!(t, "mmap(x) = -1 ENOMEM (Cannot allocate memory)\n");
        assert_eq!(
            j,
            r#"{"line":3,"proc":"main","op":"mmap","ret":-1,"errno":"ENOMEM"}"#
        );
        let (t, j) = both("m()", "m", Outcome::Error(4095));
        assert_eq!(t, "m() = -1 4095 (Unknown error 4095)\n");
        assert_eq!(
            j,
            r#"{"line":3,"proc":"main","op":"m","ret":-1,"errno":"4095"}"#
        );
    }

    #[test]
    fn hashes() {
        let (t, j) = both("load(a, 4K)", "load", Outcome::Hash(0xaf63_bd4c_8601_b7df));
        assert_eq!(t, "load(a, 4K) = 0xaf63bd4c8601b7df\n");
        assert_eq!(
            j,
            r#"{"line":3,"proc":"main","op":"load","ret":0,"hash":"0xaf63bd4c8601b7df"}"#
        );
        let (t, j) = both("peek(a, 1)", "peek", Outcome::Hash(0x12));
        assert_eq!(t, "peek(a, 1) = 0x0000000000000012\n");
        assert_eq!(
            j,
            r#"{"line":3,"proc":"main","op":"peek","ret":0,"hash":"0x0000000000000012"}"#
        );
    }

    #[test]
    fn signals() {
        let (t, j) = both(
            "store(a + 64K, 1, 0x41)",
            "store",
            Outcome::Signal(Signal {
                signo: 11,
                code: 1,
                addr: 0x7fff_f800_6000,
            }),
        );
        assert_eq!(
        t,
        "store(a + 64K, 1, 0x41) = ? --- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_MAPERR, si_addr=0x7ffff8006000} ---\n"
    );
        assert_eq!(
            j,
            r#"{"line":3,"proc":"main","op":"store","ret":-1,"signal":{"signo":"SIGSEGV","code":"SEGV_MAPERR","addr":140737354162176}}"#
        );
        let (t, j) = both(
            "load(f, 1)",
            "load",
            Outcome::Signal(Signal {
                signo: 7,
                code: 2,
                addr: 0x1000,
            }),
        );
        assert_eq!(
            t,
            "load(f, 1) = ? --- SIGBUS {si_signo=SIGBUS, si_code=BUS_ADRERR, si_addr=0x1000} ---\n"
        );
        assert_eq!(
            j,
            r#"{"line":3,"proc":"main","op":"load","ret":-1,"signal":{"signo":"SIGBUS","code":"BUS_ADRERR","addr":4096}}"#
        );
        let (t, j) = both(
            "exec(0)",
            "exec",
            Outcome::Signal(Signal {
                signo: 40,
                code: 9,
                addr: 0,
            }),
        );
        assert_eq!(
            t,
            "exec(0) = ? --- 40 {si_signo=40, si_code=9, si_addr=NULL} ---\n"
        );
        assert_eq!(
            j,
            r#"{"line":3,"proc":"main","op":"exec","ret":-1,"signal":{"signo":40,"code":9,"addr":0}}"#
        );
    }

    #[test]
    fn signal_and_code_names() {
        let names: Vec<_> = [4, 5, 7, 8, 11, 1]
            .iter()
            .map(|&s| signal_name(s))
            .collect();
        assert_eq!(
            names,
            vec![
                Some("SIGILL"),
                Some("SIGTRAP"),
                Some("SIGBUS"),
                Some("SIGFPE"),
                Some("SIGSEGV"),
                None
            ]
        );
        let segv: Vec<_> = (1..=5).map(|c| signal_code_name(11, c)).collect();
        assert_eq!(
            segv,
            vec![
                Some("SEGV_MAPERR"),
                Some("SEGV_ACCERR"),
                Some("SEGV_BNDERR"),
                Some("SEGV_PKUERR"),
                None
            ]
        );
        let bus: Vec<_> = (1..=6).map(|c| signal_code_name(7, c)).collect();
        assert_eq!(
            bus,
            vec![
                Some("BUS_ADRALN"),
                Some("BUS_ADRERR"),
                Some("BUS_OBJERR"),
                Some("BUS_MCEERR_AR"),
                Some("BUS_MCEERR_AO"),
                None
            ]
        );
        for s in [4, 5, 7, 8, 11] {
            assert_eq!(signal_code_name(s, 0x80), Some("SI_KERNEL"));
        }
        assert_eq!(signal_code_name(4, 1), None);
        let s = Signal {
            signo: 11,
            code: 0x80,
            addr: 0,
        };
        assert_eq!(
            signal_text(&s),
            "? --- SIGSEGV {si_signo=SIGSEGV, si_code=SI_KERNEL, si_addr=NULL} ---"
        );
    }

    #[test]
    fn mincore() {
        let (t, j) = both("mincore(a, 8K)", "mincore", Outcome::Mincore("10".into()));
        assert_eq!(t, "mincore(a, 8K) = 0 [10]\n");
        assert_eq!(
            j,
            r#"{"line":3,"proc":"main","op":"mincore","ret":0,"vec":"10"}"#
        );
        let (t, _) = both(
            "mincore(a, 16K)",
            "mincore",
            Outcome::Mincore("0110".into()),
        );
        assert_eq!(t, "mincore(a, 16K) = 0 [0110]\n");
    }

    #[test]
    fn inspection_text() {
        let maps = "00400000-00401000 r-xp 00000000 00:00 0 \n7ffffffde000-7ffffffff000 rw-p 00000000 00:00 0                          [stack]\n";
        let (t, j) = both("maps()", "maps", Outcome::Text(maps.into()));
        assert_eq!(t, format!("maps() = 0\n{maps}"));
        assert_eq!(
            j,
            format!(
                r#"{{"line":3,"proc":"main","op":"maps","ret":0,"text":{}}}"#,
                serde_json::to_string(maps).expect("string")
            )
        );
        // A text without its final newline still ends the record's lines.
        let (t, _) = both("status()", "status", Outcome::Text("VmPeak:\t1 kB".into()));
        assert_eq!(t, "status() = 0\nVmPeak:\t1 kB\n");
        let (t, j) = both("maps()", "maps", Outcome::Text(String::new()));
        assert_eq!(t, "maps() = 0\n");
        assert_eq!(
            j,
            r#"{"line":3,"proc":"main","op":"maps","ret":0,"text":""}"#
        );
    }

    #[test]
    fn exit() {
        let (t, j) = both("exit(0)", "exit", Outcome::Exited);
        assert_eq!(t, "exit(0) = ?\n");
        assert_eq!(j, r#"{"line":3,"proc":"main","op":"exit","ret":0}"#);
    }

    #[test]
    fn proc_names_in_json() {
        let mut r = rec("[child] maps()", "munmap", Outcome::Value(0));
        r.proc_name = "child".into();
        assert_eq!(
            json(&r),
            r#"{"line":3,"proc":"child","op":"munmap","ret":0}"#
        );
        r.proc_name = "pid 42".into();
        r.line = 17;
        assert_eq!(
            json(&r),
            r#"{"line":17,"proc":"pid 42","op":"munmap","ret":0}"#
        );
        // The text form shows the statement as written, selector included.
        assert_eq!(super::text(&r), "[child] maps() = 0\n");
    }

    #[test]
    fn json_strings_are_escaped() {
        let r = rec("open(\"a\\\"b\", 0)", "open", Outcome::Value(3));
        let v: serde_json::Value = serde_json::from_str(&json(&r)).expect("valid JSON");
        assert_eq!(v["ret"], 3);
    }
}
