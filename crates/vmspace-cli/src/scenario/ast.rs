//! The parsed form of a scenario, with source positions.

use crate::backend::Param;

/// A 1-based line and column in the scenario file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub col: usize,
}

/// A whole scenario file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Script {
    /// The file name, as errors print it.
    pub file: String,
    /// The statements in file order (blank and comment lines dropped).
    pub stmts: Vec<Stmt>,
}

impl Script {
    /// The `set KEY=VALUE` lines, in file order.
    pub fn params(&self) -> Vec<Param> {
        self.stmts
            .iter()
            .filter_map(|s| match &s.kind {
                StmtKind::Set(set) => Some(Param {
                    key: set.key.clone(),
                    value: set.value,
                }),
                StmtKind::Call(_) => None,
            })
            .collect()
    }
}

/// One statement (one line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stmt {
    /// Where the statement's first character is.
    pub pos: Pos,
    /// The statement as written (comment stripped, trailing blanks removed).
    pub text: String,
    /// What it does.
    pub kind: StmtKind,
}

/// The two kinds of statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StmtKind {
    /// `set KEY=VALUE`.
    Set(SetStmt),
    /// `[selector] NAME = CALL` or `CALL`.
    Call(CallStmt),
}

/// `set KEY=VALUE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetStmt {
    /// The parameter name.
    pub key: String,
    /// Where the name is.
    pub key_pos: Pos,
    /// The value (a constant expression).
    pub value: u64,
}

/// A call, memory access or inspection, run in one process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallStmt {
    /// The process selector, if any.
    pub selector: Option<Selector>,
    /// The variable the result is bound to, if any, and where it is.
    pub bind: Option<(String, Pos)>,
    /// The operation.
    pub op: Op,
    /// Where the operation's name is.
    pub op_pos: Pos,
    /// The arguments, checked against the operation's arity and types.
    pub args: Vec<Arg>,
}

/// Which process a statement runs in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// `[name]`: the child a `name = fork()` made.
    Var {
        /// The variable.
        name: String,
        /// Where the variable is.
        pos: Pos,
    },
    /// `[pid N]`.
    Pid {
        /// The pid.
        pid: u64,
        /// Where `pid` is.
        pos: Pos,
    },
}

impl Selector {
    /// The name output uses for the process (`child`, `pid 42`).
    pub fn proc_name(&self) -> String {
        match self {
            Selector::Var { name, .. } => name.clone(),
            Selector::Pid { pid, .. } => format!("pid {pid}"),
        }
    }

    /// Where the selector's name is.
    pub fn pos(&self) -> Pos {
        match self {
            Selector::Var { pos, .. } | Selector::Pid { pos, .. } => *pos,
        }
    }
}

/// One argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arg {
    /// A double-quoted string (only `open`'s path).
    Str(String, Pos),
    /// An integer expression.
    Expr(Expr),
}

/// A binary operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    /// `+`, wrapping.
    Add,
    /// `-`, wrapping.
    Sub,
    /// `*`, wrapping.
    Mul,
    /// `|`.
    Or,
}

impl BinOp {
    /// Applies the operator with 64-bit wrap-around, as C does on `unsigned long`.
    pub fn apply(self, a: u64, b: u64) -> u64 {
        match self {
            BinOp::Add => a.wrapping_add(b),
            BinOp::Sub => a.wrapping_sub(b),
            BinOp::Mul => a.wrapping_mul(b),
            BinOp::Or => a | b,
        }
    }
}

/// An integer expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    /// A literal, `NULL` or a flag name, already resolved.
    Const {
        /// The value.
        value: u64,
        /// Where it is.
        pos: Pos,
    },
    /// A variable.
    Var {
        /// Its name.
        name: String,
        /// Where it is.
        pos: Pos,
    },
    /// Unary minus (two's complement).
    Neg(Box<Expr>),
    /// `lhs op rhs`.
    Binary {
        /// The operator.
        op: BinOp,
        /// Left operand.
        lhs: Box<Expr>,
        /// Right operand.
        rhs: Box<Expr>,
    },
}

impl Expr {
    /// Evaluates with `var` giving each variable's value, wrapping in 64
    /// bits; on failure gives the first variable `var` does not know, and
    /// where it is.
    pub fn eval(&self, var: &dyn Fn(&str) -> Option<u64>) -> Result<u64, (&str, Pos)> {
        Ok(match self {
            Expr::Const { value, .. } => *value,
            Expr::Var { name, pos } => var(name).ok_or((name.as_str(), *pos))?,
            Expr::Neg(e) => e.eval(var)?.wrapping_neg(),
            Expr::Binary { op, lhs, rhs } => op.apply(lhs.eval(var)?, rhs.eval(var)?),
        })
    }

    /// Calls `f` on every variable the expression reads, left to right.
    pub fn for_each_var(&self, f: &mut dyn FnMut(&str, Pos)) {
        match self {
            Expr::Const { .. } => {}
            Expr::Var { name, pos } => f(name, *pos),
            Expr::Neg(e) => e.for_each_var(f),
            Expr::Binary { lhs, rhs, .. } => {
                lhs.for_each_var(f);
                rhs.for_each_var(f);
            }
        }
    }
}

macro_rules! ops {
    ($($variant:ident $name:literal $min:literal $max:literal,)*) => {
        /// An operation the scenario language knows.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Op {
            $(
                #[doc = concat!("`", $name, "()`")]
                $variant,
            )*
        }

        impl Op {
            /// Every operation.
            pub const ALL: &'static [Op] = &[$(Op::$variant,)*];

            /// The name as written in a scenario.
            pub const fn name(self) -> &'static str {
                match self { $(Op::$variant => $name,)* }
            }

            /// The fewest and most arguments it takes.
            pub const fn arity(self) -> (usize, usize) {
                match self { $(Op::$variant => ($min, $max),)* }
            }

            /// The operation with this name.
            pub fn from_name(name: &str) -> Option<Op> {
                match name { $($name => Some(Op::$variant),)* _ => None }
            }
        }
    };
}

ops! {
    Mmap "mmap" 6 6,
    Munmap "munmap" 2 2,
    Mprotect "mprotect" 3 3,
    Mremap "mremap" 4 5,
    Brk "brk" 1 1,
    Madvise "madvise" 3 3,
    Mlock "mlock" 2 2,
    Mlock2 "mlock2" 3 3,
    Munlock "munlock" 2 2,
    Mlockall "mlockall" 1 1,
    Munlockall "munlockall" 0 0,
    Msync "msync" 3 3,
    Mincore "mincore" 2 2,
    Mseal "mseal" 3 3,
    RemapFilePages "remap_file_pages" 5 5,
    Setrlimit "setrlimit" 3 3,
    Open "open" 2 3,
    Close "close" 1 1,
    Ftruncate "ftruncate" 2 2,
    Pwrite "pwrite" 4 4,
    Fork "fork" 0 0,
    Exit "exit" 1 1,
    Load "load" 2 2,
    Store "store" 3 3,
    Exec "exec" 1 1,
    Peek "peek" 2 2,
    Poke "poke" 3 3,
    Maps "maps" 0 0,
    Smaps "smaps" 0 0,
    SmapsRollup "smaps_rollup" 0 0,
    Status "status" 0 0,
    Faults "faults" 0 0,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_names_round_trip() {
        for &op in Op::ALL {
            assert_eq!(Op::from_name(op.name()), Some(op));
            let (min, max) = op.arity();
            assert!(min <= max);
        }
        assert_eq!(Op::ALL.len(), 32);
        assert_eq!(Op::from_name("nope"), None);
        assert_eq!(Op::Mremap.arity(), (4, 5));
        assert_eq!(Op::Open.arity(), (2, 3));
    }

    #[test]
    fn binop_wraps() {
        assert_eq!(BinOp::Sub.apply(0, 1), u64::MAX);
        assert_eq!(BinOp::Add.apply(u64::MAX, 2), 1);
        assert_eq!(BinOp::Mul.apply(1 << 63, 2), 0);
        assert_eq!(BinOp::Or.apply(1, 2), 3);
    }
}
