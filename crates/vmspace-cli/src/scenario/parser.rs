//! Turns one lexed line into a [`Stmt`]: syntax, call names, arity, flag
//! names and argument types. Whole-script checks (variables, processes) are
//! in `scenario::check`.

use super::ast::{Arg, BinOp, CallStmt, Expr, Op, Pos, Selector, SetStmt, Stmt, StmtKind};
use super::lexer::{LexedLine, Token, TokenKind};
use super::KNOWN_PARAMS;

/// An error on one line: the 1-based column and the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    /// 1-based column of the offending token.
    pub col: usize,
    /// What is wrong.
    pub message: String,
}

/// A line that failed to parse. `bind` names the variable the line would
/// have bound, when that much was read, so that later lines using it do not
/// report it as unknown as well.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseFailure {
    /// The error.
    pub error: LineError,
    /// The variable the statement binds, if known.
    pub bind: Option<String>,
}

/// Whether `name` is a valid variable name: `[a-z_][a-z0-9_]*`.
pub fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

struct Parser<'a> {
    toks: &'a [Token],
    i: usize,
    line: usize,
    depth: usize,
}

/// How deeply parentheses may nest.
const MAX_DEPTH: usize = 200;

/// The most tokens one statement may have (bounds recursion on long chains).
pub const MAX_TOKENS: usize = 4096;

type PResult<T> = Result<T, LineError>;

fn err<T>(col: usize, message: impl Into<String>) -> PResult<T> {
    Err(LineError {
        col,
        message: message.into(),
    })
}

impl<'a> Parser<'a> {
    /// Token `i`, or the final `End` past the end (the list always ends
    /// with `End`; a hand-built empty list reads as a bare `End`).
    fn at(&self, i: usize) -> &'a Token {
        static END: Token = Token {
            kind: TokenKind::End,
            col: 1,
        };
        self.toks.get(i).or(self.toks.last()).unwrap_or(&END)
    }

    fn tok(&self) -> &'a Token {
        self.at(self.i)
    }

    fn peek_at(&self, n: usize) -> &'a TokenKind {
        &self.at(self.i + n).kind
    }

    fn bump(&mut self) -> &'a Token {
        let t = self.tok();
        if t.kind != TokenKind::End {
            self.i += 1;
        }
        t
    }

    fn pos(&self, col: usize) -> Pos {
        Pos {
            line: self.line,
            col,
        }
    }

    fn expect(&mut self, kind: TokenKind, what: &str) -> PResult<&'a Token> {
        let t = self.tok();
        if t.kind == kind {
            Ok(self.bump())
        } else {
            err(
                t.col,
                format!("expected {what}, found {}", t.kind.describe()),
            )
        }
    }

    fn expect_end(&mut self, after: &str) -> PResult<()> {
        let t = self.tok();
        if t.kind == TokenKind::End {
            Ok(())
        } else {
            err(
                t.col,
                format!("unexpected {} after {after}", t.kind.describe()),
            )
        }
    }

    // or := add ('|' add)*
    fn expr(&mut self) -> PResult<Expr> {
        let mut lhs = self.additive()?;
        while self.tok().kind == TokenKind::Pipe {
            self.bump();
            let rhs = self.additive()?;
            lhs = Expr::Binary {
                op: BinOp::Or,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
            };
        }
        Ok(lhs)
    }

    // add := mul (('+' | '-') mul)*
    fn additive(&mut self) -> PResult<Expr> {
        let mut lhs = self.multiplicative()?;
        loop {
            let op = match self.tok().kind {
                TokenKind::Plus => BinOp::Add,
                TokenKind::Minus => BinOp::Sub,
                _ => return Ok(lhs),
            };
            self.bump();
            let rhs = self.multiplicative()?;
            lhs = Expr::Binary {
                op,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
            };
        }
    }

    // mul := unary ('*' unary)*
    fn multiplicative(&mut self) -> PResult<Expr> {
        let mut lhs = self.unary()?;
        while self.tok().kind == TokenKind::Star {
            self.bump();
            let rhs = self.unary()?;
            lhs = Expr::Binary {
                op: BinOp::Mul,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
            };
        }
        Ok(lhs)
    }

    // unary := '-' unary | primary
    fn unary(&mut self) -> PResult<Expr> {
        // Iterative, so that a long run of minus signs cannot overflow the stack.
        let mut negations = 0usize;
        while self.tok().kind == TokenKind::Minus {
            self.bump();
            negations += 1;
        }
        let e = self.primary()?;
        Ok(if negations % 2 == 1 {
            Expr::Neg(Box::new(e))
        } else {
            e
        })
    }

    fn primary(&mut self) -> PResult<Expr> {
        let t = self.tok();
        let pos = self.pos(t.col);
        match &t.kind {
            TokenKind::Number(n) => {
                self.bump();
                Ok(Expr::Const { value: *n, pos })
            }
            TokenKind::Ident(name) => {
                if *self.peek_at(1) == TokenKind::LParen {
                    return err(
                        t.col,
                        format!("a call (`{name}(...)`) cannot be an argument: bind its result to a variable first"),
                    );
                }
                self.bump();
                if name == "NULL" {
                    Ok(Expr::Const { value: 0, pos })
                } else if let Some(value) = vmspace::uapi::lookup(name) {
                    Ok(Expr::Const { value, pos })
                } else if is_var_name(name) {
                    Ok(Expr::Var {
                        name: name.clone(),
                        pos,
                    })
                } else if name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                {
                    err(t.col, format!("unknown flag `{name}`"))
                } else {
                    err(t.col, format!("unknown name `{name}`"))
                }
            }
            TokenKind::LParen => {
                self.bump();
                if self.depth >= MAX_DEPTH {
                    return err(t.col, "parentheses nested too deeply");
                }
                self.depth += 1;
                let e = self.expr()?;
                self.depth -= 1;
                self.expect(TokenKind::RParen, "`)`")?;
                Ok(e)
            }
            TokenKind::Str(_) => err(t.col, "a string is only allowed as `open`'s path"),
            other => err(
                t.col,
                format!("expected a value, found {}", other.describe()),
            ),
        }
    }

    fn set_stmt(&mut self) -> PResult<StmtKind> {
        self.bump(); // `set`
        let key_tok = self.bump();
        let TokenKind::Ident(key) = &key_tok.kind else {
            return err(key_tok.col, "expected a parameter name after `set`");
        };
        if !KNOWN_PARAMS.contains(&key.as_str()) {
            return err(
                key_tok.col,
                format!(
                    "unknown parameter `{key}` (known: {})",
                    KNOWN_PARAMS.join(", ")
                ),
            );
        }
        self.expect(TokenKind::Eq, "`=`")?;
        let value = self.const_expr()?;
        self.expect_end("the value")?;
        Ok(StmtKind::Set(SetStmt {
            key: key.clone(),
            key_pos: self.pos(key_tok.col),
            value,
        }))
    }

    fn const_expr(&mut self) -> PResult<u64> {
        self.expr()?.eval(&|_| None).or_else(|(_, pos)| {
            err(
                pos.col,
                "a parameter value must be a constant (no variables)",
            )
        })
    }

    fn selector(&mut self) -> PResult<Selector> {
        self.bump(); // `[`
        let t = self.bump();
        let pos = self.pos(t.col);
        let sel = match &t.kind {
            TokenKind::Ident(name) if name == "pid" && *self.peek_at(0) != TokenKind::RBracket => {
                let n = self.bump();
                match n.kind {
                    TokenKind::Number(pid) => Selector::Pid { pid, pos },
                    _ => {
                        return err(
                            n.col,
                            format!("expected a pid number, found {}", n.kind.describe()),
                        )
                    }
                }
            }
            TokenKind::Ident(name) if is_var_name(name) => Selector::Var {
                name: name.clone(),
                pos,
            },
            TokenKind::Ident(name) => {
                return err(
                    t.col,
                    format!("invalid process name `{name}`: expected a variable bound by fork()"),
                )
            }
            other => {
                return err(
                    t.col,
                    format!(
                        "expected a process (`[child]` or `[pid N]`), found {}",
                        other.describe()
                    ),
                )
            }
        };
        self.expect(TokenKind::RBracket, "`]`")?;
        Ok(sel)
    }

    fn call(
        &mut self,
        selector: Option<Selector>,
        bind: Option<(String, Pos)>,
    ) -> PResult<CallStmt> {
        let t = self.tok();
        let TokenKind::Ident(name) = &t.kind else {
            return err(
                t.col,
                format!("expected a call, found {}", t.kind.describe()),
            );
        };
        let op_pos = self.pos(t.col);
        let has_paren = *self.peek_at(1) == TokenKind::LParen;
        let op = match (Op::from_name(name), has_paren) {
            (Some(op), true) => op,
            (None, true) => return err(t.col, format!("unknown call `{name}`")),
            (Some(_), false) => {
                let next = self.at(self.i + 1);
                return err(
                    next.col,
                    format!(
                        "expected `(` after `{name}`, found {}",
                        next.kind.describe()
                    ),
                );
            }
            (None, false) => return err(t.col, format!("expected a call, found `{name}`")),
        };
        self.bump();
        self.bump(); // `(`
        let mut args = Vec::new();
        let close_col;
        if self.tok().kind == TokenKind::RParen {
            close_col = self.bump().col;
        } else {
            loop {
                let t = self.tok();
                let arg = match &t.kind {
                    TokenKind::Str(s) => {
                        self.bump();
                        Arg::Str(s.clone(), self.pos(t.col))
                    }
                    _ => Arg::Expr(self.expr()?),
                };
                args.push((arg, t.col));
                let sep = self.bump();
                match sep.kind {
                    TokenKind::Comma => continue,
                    TokenKind::RParen => {
                        close_col = sep.col;
                        break;
                    }
                    _ => {
                        return err(
                            sep.col,
                            format!("expected `,` or `)`, found {}", sep.kind.describe()),
                        )
                    }
                }
            }
        }
        self.expect_end(&format!("`{}(...)`", op.name()))?;
        let (min, max) = op.arity();
        if args.len() < min || args.len() > max {
            let want = match (min, max) {
                (0, 0) => "no arguments".to_string(),
                (1, 1) => "1 argument".to_string(),
                (a, b) if a == b => format!("{a} arguments"),
                (a, b) => format!("{a} or {b} arguments"),
            };
            let col = args.get(max).map_or(close_col, |(_, c)| *c);
            return err(
                col,
                format!("`{}` takes {want}, found {}", op.name(), args.len()),
            );
        }
        for (i, (arg, col)) in args.iter().enumerate() {
            match (op == Op::Open && i == 0, arg) {
                (true, Arg::Expr(_)) => {
                    return err(*col, "`open` takes a path string as its first argument");
                }
                (false, Arg::Str(..)) => {
                    return err(*col, "a string is only allowed as `open`'s path")
                }
                _ => {}
            }
        }
        let args = args.into_iter().map(|(a, _)| a).collect();
        Ok(CallStmt {
            selector,
            bind,
            op,
            op_pos,
            args,
        })
    }

    fn statement(&mut self, bind_out: &mut Option<String>) -> PResult<StmtKind> {
        let first = self.tok();
        if let (TokenKind::Ident(s), TokenKind::Ident(_)) = (&first.kind, self.peek_at(1)) {
            if s == "set" {
                return self.set_stmt();
            }
        }
        let selector = if first.kind == TokenKind::LBracket {
            Some(self.selector()?)
        } else {
            None
        };
        let t = self.tok();
        if let (TokenKind::Ident(s), TokenKind::Ident(_)) = (&t.kind, self.peek_at(1)) {
            if s == "set" && selector.is_some() {
                return err(
                    t.col,
                    "`set` cannot take a process selector: parameters are machine-wide",
                );
            }
        }
        let mut bind = None;
        if let (TokenKind::Ident(name), TokenKind::Eq) = (&t.kind, self.peek_at(1)) {
            if !is_var_name(name) {
                return err(
                    t.col,
                    format!("invalid variable name `{name}` (variables are [a-z_][a-z0-9_]*)"),
                );
            }
            *bind_out = Some(name.clone());
            bind = Some((name.clone(), self.pos(t.col)));
            self.bump();
            self.bump();
        }
        Ok(StmtKind::Call(self.call(selector, bind)?))
    }
}

/// Parses one non-empty lexed line (line number `line`).
pub fn parse_line(lexed: &LexedLine, line: usize) -> Result<Stmt, ParseFailure> {
    if let Some(t) = lexed.tokens.get(MAX_TOKENS) {
        let message = format!("statement too long (more than {MAX_TOKENS} tokens)");
        return Err(ParseFailure {
            error: LineError {
                col: t.col,
                message,
            },
            bind: None,
        });
    }
    let mut p = Parser {
        toks: &lexed.tokens,
        i: 0,
        line,
        depth: 0,
    };
    let mut bind = None;
    match p.statement(&mut bind) {
        Ok(kind) => Ok(Stmt {
            pos: Pos {
                line,
                col: lexed.start_col,
            },
            text: lexed.text.clone(),
            kind,
        }),
        Err(error) => Err(ParseFailure { error, bind }),
    }
}

/// Parses a constant expression on its own (a `--set` value).
pub fn parse_const(lexed: &LexedLine) -> Result<u64, LineError> {
    if let Some(t) = lexed.tokens.get(MAX_TOKENS) {
        return err(
            t.col,
            format!("value too long (more than {MAX_TOKENS} tokens)"),
        );
    }
    let mut p = Parser {
        toks: &lexed.tokens,
        i: 0,
        line: 1,
        depth: 0,
    };
    let v = p.const_expr()?;
    p.expect_end("the value")?;
    Ok(v)
}
