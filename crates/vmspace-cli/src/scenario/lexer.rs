//! Splits one scenario line into tokens.
//!
//! The lexer works a line at a time: statements never span lines. It also
//! finds where a `#` comment starts (outside strings), so the statement text
//! can be kept as written.

/// What a token is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// A name: a call, a variable, a flag, `NULL`, `set`, `pid`.
    Ident(String),
    /// An integer literal, already converted (suffix applied).
    Number(u64),
    /// A double-quoted string, escapes resolved.
    Str(String),
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `[`
    LBracket,
    /// `]`
    RBracket,
    /// `,`
    Comma,
    /// `=`
    Eq,
    /// `|`
    Pipe,
    /// `+`
    Plus,
    /// `-`
    Minus,
    /// `*`
    Star,
    /// The end of the statement (end of line or start of a comment).
    End,
}

impl TokenKind {
    /// How the token reads in an error message.
    pub fn describe(&self) -> String {
        match self {
            TokenKind::Ident(s) => format!("`{s}`"),
            TokenKind::Number(n) => format!("number {n}"),
            TokenKind::Str(_) => "a string".to_string(),
            TokenKind::LParen => "`(`".to_string(),
            TokenKind::RParen => "`)`".to_string(),
            TokenKind::LBracket => "`[`".to_string(),
            TokenKind::RBracket => "`]`".to_string(),
            TokenKind::Comma => "`,`".to_string(),
            TokenKind::Eq => "`=`".to_string(),
            TokenKind::Pipe => "`|`".to_string(),
            TokenKind::Plus => "`+`".to_string(),
            TokenKind::Minus => "`-`".to_string(),
            TokenKind::Star => "`*`".to_string(),
            TokenKind::End => "the end of the line".to_string(),
        }
    }
}

/// A token and the 1-based column (in characters) where it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// What it is.
    pub kind: TokenKind,
    /// 1-based column of its first character.
    pub col: usize,
}

/// One lexed line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LexedLine {
    /// The tokens, always ending with [`TokenKind::End`].
    pub tokens: Vec<Token>,
    /// The statement as written: from its first non-blank character to the
    /// comment or the end of the line, trailing blanks removed. Empty for a
    /// blank or comment-only line.
    pub text: String,
    /// 1-based column of the statement's first character.
    pub start_col: usize,
}

impl LexedLine {
    /// Whether the line holds no statement (blank or only a comment).
    pub fn is_empty(&self) -> bool {
        self.tokens.len() <= 1
    }
}

/// A lexical error: the 1-based column and the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LexError {
    /// 1-based column of the offending character.
    pub col: usize,
    /// What is wrong.
    pub message: String,
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Converts an integer literal as the scenario language writes it: decimal,
/// `0x` hex, octal with a leading `0`, each with an optional `K`, `M` or `G`
/// suffix (powers of 1024).
///
/// ```
/// use vmspace_cli::scenario::lexer::parse_number;
/// assert_eq!(parse_number("16K"), Ok(16384));
/// assert_eq!(parse_number("0x1000"), Ok(4096));
/// assert_eq!(parse_number("0644"), Ok(0o644));
/// assert!(parse_number("08").is_err());
/// ```
pub fn parse_number(s: &str) -> Result<u64, String> {
    let invalid = || format!("invalid number `{s}`");
    let (body, shift) = match s.as_bytes().last() {
        Some(b'K') => (&s[..s.len() - 1], 10),
        Some(b'M') => (&s[..s.len() - 1], 20),
        Some(b'G') => (&s[..s.len() - 1], 30),
        _ => (s, 0),
    };
    let (digits, radix) =
        if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
            (hex, 16)
        } else if body.len() > 1 && body.starts_with('0') {
            (&body[1..], 8)
        } else {
            (body, 10)
        };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(invalid());
    }
    let too_large = || format!("number `{s}` is too large for 64 bits");
    let value = u64::from_str_radix(digits, radix).map_err(|_| too_large())?;
    if shift == 0 {
        return Ok(value);
    }
    value.checked_mul(1u64 << shift).ok_or_else(too_large)
}

/// Lexes one line (without its line terminator).
pub fn lex_line(line: &str) -> Result<LexedLine, LexError> {
    let chars: Vec<char> = line.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let mut end = chars.len(); // where the statement ends (comment or eol)
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        if c == ' ' || c == '\t' || c == '\r' {
            i += 1;
            continue;
        }
        if c == '#' {
            end = i;
            break;
        }
        let single = match c {
            '(' => Some(TokenKind::LParen),
            ')' => Some(TokenKind::RParen),
            '[' => Some(TokenKind::LBracket),
            ']' => Some(TokenKind::RBracket),
            ',' => Some(TokenKind::Comma),
            '=' => Some(TokenKind::Eq),
            '|' => Some(TokenKind::Pipe),
            '+' => Some(TokenKind::Plus),
            '-' => Some(TokenKind::Minus),
            '*' => Some(TokenKind::Star),
            _ => None,
        };
        if let Some(kind) = single {
            tokens.push(Token { kind, col });
            i += 1;
            continue;
        }
        if is_ident_start(c) {
            let start = i;
            while i < chars.len() && is_ident_char(chars[i]) {
                i += 1;
            }
            let name: String = chars[start..i].iter().collect();
            tokens.push(Token {
                kind: TokenKind::Ident(name),
                col,
            });
            continue;
        }
        if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && is_ident_char(chars[i]) {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            let value = parse_number(&text).map_err(|message| LexError { col, message })?;
            tokens.push(Token {
                kind: TokenKind::Number(value),
                col,
            });
            continue;
        }
        if c == '"' {
            i += 1;
            let mut s = String::new();
            loop {
                match chars.get(i) {
                    None => {
                        return Err(LexError {
                            col,
                            message: "unterminated string".to_string(),
                        });
                    }
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some('\\') => {
                        match chars.get(i + 1) {
                            Some(&e @ ('"' | '\\')) => s.push(e),
                            _ => {
                                return Err(LexError {
                                    col: i + 1,
                                    message:
                                        "unknown escape in string (only \\\" and \\\\ are allowed)"
                                            .to_string(),
                                });
                            }
                        }
                        i += 2;
                    }
                    Some(&other) => {
                        s.push(other);
                        i += 1;
                    }
                }
            }
            tokens.push(Token {
                kind: TokenKind::Str(s),
                col,
            });
            continue;
        }
        return Err(LexError {
            col,
            message: format!("unexpected character `{}`", c.escape_debug()),
        });
    }
    let first = chars[..end]
        .iter()
        .position(|c| !matches!(c, ' ' | '\t' | '\r'));
    let (text, start_col) = match first {
        Some(f) => {
            let mut last = end;
            while last > f && matches!(chars[last - 1], ' ' | '\t' | '\r') {
                last -= 1;
            }
            (chars[f..last].iter().collect::<String>(), f + 1)
        }
        None => (String::new(), 1),
    };
    let end_col = start_col + text.chars().count();
    tokens.push(Token {
        kind: TokenKind::End,
        col: end_col,
    });
    Ok(LexedLine {
        tokens,
        text,
        start_col,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(line: &str) -> Vec<TokenKind> {
        lex_line(line)
            .expect("lexes")
            .tokens
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    #[test]
    fn numbers_in_every_form() {
        assert_eq!(parse_number("0"), Ok(0));
        assert_eq!(parse_number("42"), Ok(42));
        assert_eq!(parse_number("0x1000"), Ok(0x1000));
        assert_eq!(parse_number("0XfF"), Ok(0xff));
        assert_eq!(parse_number("0644"), Ok(0o644));
        assert_eq!(parse_number("00"), Ok(0));
        assert_eq!(parse_number("16K"), Ok(16 * 1024));
        assert_eq!(parse_number("2M"), Ok(2 << 20));
        assert_eq!(parse_number("1G"), Ok(1 << 30));
        assert_eq!(parse_number("0x10K"), Ok(16 * 1024));
        assert_eq!(parse_number("010K"), Ok(8 * 1024));
        assert_eq!(parse_number("0K"), Ok(0));
        assert_eq!(parse_number("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(parse_number("0xffffffffffffffff"), Ok(u64::MAX));
    }

    #[test]
    fn bad_numbers() {
        assert_eq!(parse_number("08"), Err("invalid number `08`".to_string()));
        assert_eq!(parse_number("0x"), Err("invalid number `0x`".to_string()));
        assert_eq!(parse_number("0xK"), Err("invalid number `0xK`".to_string()));
        assert_eq!(parse_number("16k"), Err("invalid number `16k`".to_string()));
        assert_eq!(
            parse_number("16KB"),
            Err("invalid number `16KB`".to_string())
        );
        assert_eq!(
            parse_number("1_000"),
            Err("invalid number `1_000`".to_string())
        );
        assert_eq!(
            parse_number("0xfg"),
            Err("invalid number `0xfg`".to_string())
        );
        assert_eq!(
            parse_number("18446744073709551616"),
            Err("number `18446744073709551616` is too large for 64 bits".to_string())
        );
        assert_eq!(
            parse_number("17179869184G"),
            Err("number `17179869184G` is too large for 64 bits".to_string())
        );
    }

    #[test]
    fn tokens_and_columns() {
        let l = lex_line("  a = mmap(NULL, 4K) # note").expect("lexes");
        assert_eq!(l.text, "a = mmap(NULL, 4K)");
        assert_eq!(l.start_col, 3);
        let cols: Vec<usize> = l.tokens.iter().map(|t| t.col).collect();
        assert_eq!(cols, vec![3, 5, 7, 11, 12, 16, 18, 20, 21]);
        assert_eq!(
            kinds("x|-+*[]"),
            vec![
                TokenKind::Ident("x".into()),
                TokenKind::Pipe,
                TokenKind::Minus,
                TokenKind::Plus,
                TokenKind::Star,
                TokenKind::LBracket,
                TokenKind::RBracket,
                TokenKind::End
            ]
        );
    }

    #[test]
    fn strings_and_comments() {
        let l = lex_line(r#"open("a#b \"q\" \\", O_RDWR)   # c"#).expect("lexes");
        assert_eq!(l.tokens[2].kind, TokenKind::Str(r#"a#b "q" \"#.to_string()));
        assert_eq!(l.text, r#"open("a#b \"q\" \\", O_RDWR)"#);
        let e = lex_line(r#"open("abc, 1)"#).expect_err("unterminated");
        assert_eq!(
            e,
            LexError {
                col: 6,
                message: "unterminated string".into()
            }
        );
        let e = lex_line(r#"open("a\n")"#).expect_err("bad escape");
        assert_eq!(e.col, 8);
    }

    #[test]
    fn blank_and_comment_lines() {
        assert!(lex_line("").expect("lexes").is_empty());
        assert!(lex_line("   \t ").expect("lexes").is_empty());
        assert!(lex_line("  # only a comment").expect("lexes").is_empty());
    }

    #[test]
    fn whitespace_inside_is_kept() {
        let l = lex_line("\tmunmap(a,   4K)\t \r").expect("lexes");
        assert_eq!(l.text, "munmap(a,   4K)");
        assert_eq!(l.start_col, 2);
    }

    #[test]
    fn bad_characters() {
        assert_eq!(
            lex_line("mmap(a @ b)").expect_err("bad"),
            LexError {
                col: 8,
                message: "unexpected character `@`".into()
            }
        );
        assert_eq!(lex_line("é").expect_err("bad").col, 1);
        assert_eq!(lex_line("munmap(a, 4kb)").expect_err("bad").col, 11);
    }
}
