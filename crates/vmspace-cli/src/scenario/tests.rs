use super::*;
use proptest::prelude::*;

fn ok(src: &str) -> Script {
    match parse("t.vms", src) {
        Ok(s) => s,
        Err(e) => panic!("unexpected errors: {e:?}"),
    }
}

/// All error messages, rendered.
fn errs(src: &str) -> Vec<String> {
    match parse("t.vms", src) {
        Ok(_) => panic!("expected errors for {src:?}"),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

/// The single error, rendered.
fn err1(src: &str) -> String {
    let e = errs(src);
    assert_eq!(e.len(), 1, "{e:?}");
    e[0].clone()
}

fn call(stmt: &Stmt) -> &CallStmt {
    match &stmt.kind {
        StmtKind::Call(c) => c,
        StmtKind::Set(_) => panic!("not a call"),
    }
}

/// Evaluates a constant expression through `brk(EXPR)`.
fn value(expr: &str) -> u64 {
    let s = ok(&format!("brk({expr})\n"));
    match &call(&s.stmts[0]).args[0] {
        Arg::Expr(e) => e.eval(&|_| None).expect("constant"),
        Arg::Str(..) => panic!("string"),
    }
}

#[test]
fn integer_literals() {
    assert_eq!(value("0"), 0);
    assert_eq!(value("4096"), 4096);
    assert_eq!(value("0x1000"), 0x1000);
    assert_eq!(value("0xABCdef"), 0xabcdef);
    assert_eq!(value("0644"), 0o644);
    assert_eq!(value("16K"), 16 << 10);
    assert_eq!(value("2M"), 2 << 20);
    assert_eq!(value("3G"), 3 << 30);
    assert_eq!(value("0x2K"), 2 << 10);
    assert_eq!(value("NULL"), 0);
    assert_eq!(value("18446744073709551615"), u64::MAX);
}

#[test]
fn flag_names() {
    assert_eq!(value("PROT_READ|PROT_WRITE"), 3);
    assert_eq!(value("MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED"), 0x32);
    assert_eq!(value("MREMAP_MAYMOVE|MREMAP_FIXED"), 3);
    assert_eq!(value("MADV_DONTNEED"), 4);
    assert_eq!(value("MS_SYNC"), 4);
    assert_eq!(value("MCL_CURRENT|MCL_FUTURE"), 3);
    assert_eq!(value("MLOCK_ONFAULT"), 1);
    assert_eq!(value("O_RDWR|O_CREAT|O_TRUNC"), 0o1102);
    assert_eq!(value("RLIMIT_MEMLOCK"), 8);
    assert_eq!(value("RLIM_INFINITY"), u64::MAX);
    assert_eq!(value("PROT_GROWSDOWN"), 0x0100_0000);
}

#[test]
fn arithmetic_and_precedence() {
    assert_eq!(value("1 + 2 * 3"), 7);
    assert_eq!(value("(1 + 2) * 3"), 9);
    assert_eq!(value("10 - 2 - 3"), 5);
    assert_eq!(value("2 | 1 + 1"), 2);
    assert_eq!(value("1 + 1 | 2"), 2);
    assert_eq!(value("(2 | 1) + 1"), 4);
    assert_eq!(value("4 | 2 * 3"), 6);
    assert_eq!(value("2*4K"), 8192);
    assert_eq!(value("-1"), u64::MAX);
    assert_eq!(value("-2 * 3"), 6u64.wrapping_neg());
    assert_eq!(value("2 * -3"), 6u64.wrapping_neg());
    assert_eq!(value("- -1"), 1);
    assert_eq!(value("---1"), u64::MAX);
    assert_eq!(value("-(1 + 2)"), 3u64.wrapping_neg());
    assert_eq!(value("0 - 1"), u64::MAX);
    assert_eq!(value("0xffffffffffffffff + 2"), 1);
    assert_eq!(value("0x8000000000000000 * 2"), 0);
    assert_eq!(value("((((7))))"), 7);
}

#[test]
fn variables_evaluate() {
    let s = ok("a = brk(0)\nmunmap(a + 2*4K, 4K)\n");
    let Arg::Expr(e) = &call(&s.stmts[1]).args[0] else {
        panic!("expr")
    };
    assert_eq!(e.eval(&|n| (n == "a").then_some(0x1000)), Ok(0x3000));
    assert_eq!(e.eval(&|_| None), Err(("a", Pos { line: 2, col: 8 })));
}

#[test]
fn statements_keep_their_text_and_positions() {
    let s = ok("# header\n\n   a = mmap(NULL,  8K, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)   # note\n\tmaps()\n");
    assert_eq!(s.stmts.len(), 2);
    assert_eq!(
        s.stmts[0].text,
        "a = mmap(NULL,  8K, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)"
    );
    assert_eq!(s.stmts[0].pos, Pos { line: 3, col: 4 });
    let c = call(&s.stmts[0]);
    assert_eq!(c.op, Op::Mmap);
    assert_eq!(c.op_pos, Pos { line: 3, col: 8 });
    assert_eq!(c.bind, Some(("a".to_string(), Pos { line: 3, col: 4 })));
    assert_eq!(c.args.len(), 6);
    assert_eq!(s.stmts[1].text, "maps()");
    assert_eq!(s.stmts[1].pos, Pos { line: 4, col: 2 });
    assert_eq!(call(&s.stmts[1]).op, Op::Maps);
    // CRLF line ends.
    let s = ok("maps()\r\nstatus()\r\n");
    assert_eq!(s.stmts[0].text, "maps()");
    assert_eq!(s.stmts[1].pos.line, 2);
}

#[test]
fn every_call_with_its_arity() {
    let src = "\
mmap(0, 4K, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)
munmap(0, 4K)
mprotect(0, 4K, PROT_NONE)
mremap(0, 4K, 8K, MREMAP_MAYMOVE)
mremap(0, 4K, 8K, MREMAP_MAYMOVE|MREMAP_FIXED, 1G)
brk(0)
madvise(0, 4K, MADV_WILLNEED)
mlock(0, 4K)
mlock2(0, 4K, MLOCK_ONFAULT)
munlock(0, 4K)
mlockall(MCL_CURRENT)
munlockall()
msync(0, 4K, MS_SYNC)
mincore(0, 4K)
mseal(0, 4K, 0)
remap_file_pages(0, 4K, 0, 1, 0)
setrlimit(RLIMIT_AS, 1G, RLIM_INFINITY)
open(\"f\", O_RDWR|O_CREAT)
open(\"f\", O_RDWR|O_CREAT, 0644)
close(3)
ftruncate(3, 8K)
pwrite(3, 0x41, 4K, 0)
c = fork()
exit(0)
[c] load(0, 1)
[c] store(0, 1, 0x41)
[c] exec(0)
[c] peek(0, 1)
[c] poke(0, 1, 2)
[c] maps()
[c] smaps()
[c] smaps_rollup()
[c] status()
[c] faults()
";
    let s = ok(src);
    let ops: Vec<&str> = s.stmts.iter().map(|st| call(st).op.name()).collect();
    assert_eq!(ops.len(), 34);
    let mut seen: Vec<&str> = ops.clone();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), Op::ALL.len());
    let open = call(&s.stmts[17]);
    assert_eq!(
        open.args[0],
        Arg::Str("f".to_string(), Pos { line: 18, col: 6 })
    );
}

#[test]
fn selectors() {
    let s = ok("child = fork()\n[child] maps()\n[pid 42] maps()\npid = fork()\n[pid] status()\n[ child ] exit(1)\n");
    assert_eq!(
        call(&s.stmts[1]).selector,
        Some(Selector::Var {
            name: "child".into(),
            pos: Pos { line: 2, col: 2 }
        })
    );
    assert_eq!(
        call(&s.stmts[2]).selector,
        Some(Selector::Pid {
            pid: 42,
            pos: Pos { line: 3, col: 2 }
        })
    );
    assert_eq!(
        call(&s.stmts[2]).selector.as_ref().map(Selector::proc_name),
        Some("pid 42".to_string())
    );
    assert_eq!(
        call(&s.stmts[4]).selector,
        Some(Selector::Var {
            name: "pid".into(),
            pos: Pos { line: 5, col: 2 }
        })
    );
    assert_eq!(
        call(&s.stmts[5]).selector.as_ref().map(Selector::pos),
        Some(Pos { line: 6, col: 3 })
    );
    assert_eq!(call(&s.stmts[0]).selector, None);
}

#[test]
fn selector_statement_may_bind() {
    let s = ok("c = fork()\n[c] x = brk(0)\nmunmap(x, 4K)\n[c] g = fork()\n[g] maps()\n");
    assert_eq!(
        call(&s.stmts[1]).bind.as_ref().map(|b| b.0.as_str()),
        Some("x")
    );
}

#[test]
fn set_lines() {
    let s = ok(
        "set mmap_min_addr=4K\nset max_map_count = 100 # few\nset ram=2*1G\nset swap=0\nmaps()\n",
    );
    assert_eq!(
        s.params(),
        vec![
            Param {
                key: "mmap_min_addr".into(),
                value: 4096
            },
            Param {
                key: "max_map_count".into(),
                value: 100
            },
            Param {
                key: "ram".into(),
                value: 2 << 30
            },
            Param {
                key: "swap".into(),
                value: 0
            },
        ]
    );
    assert_eq!(s.stmts[1].text, "set max_map_count = 100");
    for key in KNOWN_PARAMS {
        assert_eq!(ok(&format!("set {key}=1\n")).params()[0].key, *key);
    }
    // `set` as a variable name is still a binding.
    let s = ok("set = brk(0)\nbrk(set)\n");
    assert_eq!(
        call(&s.stmts[0]).bind.as_ref().map(|b| b.0.as_str()),
        Some("set")
    );
}

#[test]
fn syntax_errors() {
    assert_eq!(
        err1("munmap(a 4K)"),
        "t.vms:1:10: expected `,` or `)`, found number 4096"
    );
    assert_eq!(
        err1("munmap(0, 4K"),
        "t.vms:1:13: expected `,` or `)`, found the end of the line"
    );
    assert_eq!(
        err1("munmap(0, )"),
        "t.vms:1:11: expected a value, found `)`"
    );
    assert_eq!(
        err1("munmap(0,, 1)"),
        "t.vms:1:10: expected a value, found `,`"
    );
    assert_eq!(
        err1("maps() x"),
        "t.vms:1:8: unexpected `x` after `maps(...)`"
    );
    assert_eq!(
        err1("maps"),
        "t.vms:1:5: expected `(` after `maps`, found the end of the line"
    );
    assert_eq!(err1("  x"), "t.vms:1:3: expected a call, found `x`");
    assert_eq!(
        err1("a ="),
        "t.vms:1:4: expected a call, found the end of the line"
    );
    assert_eq!(err1("= maps()"), "t.vms:1:1: expected a call, found `=`");
    assert_eq!(err1("42"), "t.vms:1:1: expected a call, found number 42");
    assert_eq!(
        err1("brk((1 + 2)"),
        "t.vms:1:12: expected `,` or `)`, found the end of the line"
    );
    assert_eq!(
        err1("brk((1 + 2 )"),
        "t.vms:1:13: expected `,` or `)`, found the end of the line"
    );
    assert_eq!(
        err1("brk((1 + 2 x))"),
        "t.vms:1:12: expected `)`, found `x`"
    );
    assert_eq!(err1("brk(1 +)"), "t.vms:1:8: expected a value, found `)`");
    assert_eq!(err1("mmap @"), "t.vms:1:6: unexpected character `@`");
    assert_eq!(
        err1("open(\"abc, O_RDONLY)"),
        "t.vms:1:6: unterminated string"
    );
    assert_eq!(err1("munmap(0, 16k)"), "t.vms:1:11: invalid number `16k`");
    assert_eq!(err1("munmap(0, 08)"), "t.vms:1:11: invalid number `08`");
    assert_eq!(
        err1("brk(99999999999999999999)"),
        "t.vms:1:5: number `99999999999999999999` is too large for 64 bits"
    );
    assert_eq!(
        err1("a = mmap(NULL, 4K, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)\nmunmap(brk(0), 4K)"),
        "t.vms:2:8: a call (`brk(...)`) cannot be an argument: bind its result to a variable first"
    );
    assert_eq!(
        err1("Foo = brk(0)"),
        "t.vms:1:1: invalid variable name `Foo` (variables are [a-z_][a-z0-9_]*)"
    );
    assert_eq!(err1("brk(Foo)"), "t.vms:1:5: unknown name `Foo`");
    assert_eq!(err1("brk(FOO_2)"), "t.vms:1:5: unknown flag `FOO_2`");
}

#[test]
fn selector_syntax_errors() {
    assert_eq!(
        err1("[] maps()"),
        "t.vms:1:2: expected a process (`[child]` or `[pid N]`), found `]`"
    );
    assert_eq!(
        err1("[pid x] maps()"),
        "t.vms:1:6: expected a pid number, found `x`"
    );
    assert_eq!(
        err1("[pid 1 maps()"),
        "t.vms:1:8: expected `]`, found `maps`"
    );
    assert_eq!(
        err1("[Child] maps()"),
        "t.vms:1:2: invalid process name `Child`: expected a variable bound by fork()"
    );
    assert_eq!(
        err1("[5] maps()"),
        "t.vms:1:2: expected a process (`[child]` or `[pid N]`), found number 5"
    );
    assert_eq!(
        err1("c = fork()\n[c] set ram=1"),
        "t.vms:2:5: `set` cannot take a process selector: parameters are machine-wide"
    );
}

#[test]
fn unknown_calls_and_flags() {
    assert_eq!(err1("foo(1)"), "t.vms:1:1: unknown call `foo`");
    assert_eq!(err1("  a = mmapp(0)"), "t.vms:1:7: unknown call `mmapp`");
    assert_eq!(
        err1("mprotect(0, 4K, PROT_READX)"),
        "t.vms:1:17: unknown flag `PROT_READX`"
    );
    assert_eq!(
        err1("mmap(0, 4K, PROT_READ, MAP_PRIVATE|MAP_ANONYMUS, -1, 0)"),
        "t.vms:1:36: unknown flag `MAP_ANONYMUS`"
    );
}

#[test]
fn arity_errors() {
    assert_eq!(
        err1("munmap(1)"),
        "t.vms:1:9: `munmap` takes 2 arguments, found 1"
    );
    assert_eq!(
        err1("munmap(1, 2, 3)"),
        "t.vms:1:14: `munmap` takes 2 arguments, found 3"
    );
    assert_eq!(
        err1("maps(1)"),
        "t.vms:1:6: `maps` takes no arguments, found 1"
    );
    assert_eq!(
        err1("fork(0)"),
        "t.vms:1:6: `fork` takes no arguments, found 1"
    );
    assert_eq!(err1("brk()"), "t.vms:1:5: `brk` takes 1 argument, found 0");
    assert_eq!(
        err1("mremap(0, 1, 2)"),
        "t.vms:1:15: `mremap` takes 4 or 5 arguments, found 3"
    );
    assert_eq!(
        err1("mremap(0, 1, 2, 3, 4, 5)"),
        "t.vms:1:23: `mremap` takes 4 or 5 arguments, found 6"
    );
    assert_eq!(
        err1("open(\"f\")"),
        "t.vms:1:9: `open` takes 2 or 3 arguments, found 1"
    );
    assert_eq!(
        err1("mmap(0, 4K, 0, 0, -1)"),
        "t.vms:1:21: `mmap` takes 6 arguments, found 5"
    );
}

#[test]
fn string_arguments() {
    assert_eq!(
        err1("munmap(\"a\", 1)"),
        "t.vms:1:8: a string is only allowed as `open`'s path"
    );
    assert_eq!(
        err1("open(\"a\", \"b\")"),
        "t.vms:1:11: a string is only allowed as `open`'s path"
    );
    assert_eq!(
        err1("open(3, O_RDONLY)"),
        "t.vms:1:6: `open` takes a path string as its first argument"
    );
    assert_eq!(
        err1("brk(1 + \"a\")"),
        "t.vms:1:9: a string is only allowed as `open`'s path"
    );
    let s = ok(r#"fd = open("dir/a \"b\".txt", O_RDWR|O_CREAT, 0600)"#);
    assert_eq!(
        call(&s.stmts[0]).args[0],
        Arg::Str("dir/a \"b\".txt".into(), Pos { line: 1, col: 11 })
    );
}

#[test]
fn unknown_variables() {
    assert_eq!(err1("munmap(a, 4K)"), "t.vms:1:8: unknown variable `a`");
    assert_eq!(err1("a = brk(a)"), "t.vms:1:9: unknown variable `a`");
    assert_eq!(
        err1("x = brk(0)\nmunmap(x + y * 2, 4K)"),
        "t.vms:2:12: unknown variable `y`"
    );
    // Bound later in the file is still unknown here.
    assert_eq!(
        err1("munmap(b, 1)\nb = brk(0)"),
        "t.vms:1:8: unknown variable `b`"
    );
}

#[test]
fn selector_errors() {
    assert_eq!(
        err1("[child] maps()"),
        "t.vms:1:2: unknown process `child`: no `child = fork()` before this line"
    );
    assert_eq!(
        err1("child = brk(0)\n[child] maps()"),
        "t.vms:2:2: `child` is not a process: it was last bound by a call other than fork()"
    );
    assert_eq!(
        err1("child = fork()\nchild = brk(0)\n[child] maps()"),
        "t.vms:3:2: `child` is not a process: it was last bound by a call other than fork()"
    );
    // Bound by fork() on the same line as its first use is too late.
    assert_eq!(
        err1("[c] c = fork()"),
        "t.vms:1:2: unknown process `c`: no `c = fork()` before this line"
    );
}

#[test]
fn statements_after_exit() {
    assert_eq!(
        err1("exit(0)\nmaps()"),
        "t.vms:2:1: the main process has exited (exit() at line 1)"
    );
    assert_eq!(
        err1("exit(0)\n   maps()"),
        "t.vms:2:4: the main process has exited (exit() at line 1)"
    );
    assert_eq!(
        err1("c = fork()\n[c] exit(0)\nmaps()\n[c] maps()"),
        "t.vms:4:2: process `c` has exited (exit() at line 2)"
    );
    assert_eq!(
        err1("[pid 7] exit(0)\n[pid 7] maps()"),
        "t.vms:2:2: process `pid 7` has exited (exit() at line 1)"
    );
    // Another pid, or a new fork bound to the same name, is a live process.
    ok("[pid 7] exit(0)\n[pid 8] maps()\n");
    ok("c = fork()\n[c] exit(0)\nc = fork()\n[c] maps()\n");
    // The main process may still run statements in children... in the children.
    ok("c = fork()\nexit(0)\n[c] maps()\n");
}

#[test]
fn set_errors() {
    assert_eq!(
        err1("set foo=1"),
        format!(
            "t.vms:1:5: unknown parameter `foo` (known: {})",
            KNOWN_PARAMS.join(", ")
        )
    );
    assert_eq!(
        err1("set ram=a"),
        "t.vms:1:9: a parameter value must be a constant (no variables)"
    );
    assert_eq!(err1("set ram 5"), "t.vms:1:9: expected `=`, found number 5");
    assert_eq!(
        err1("set ram=1 2"),
        "t.vms:1:11: unexpected number 2 after the value"
    );
    assert_eq!(
        err1("set ram="),
        "t.vms:1:9: expected a value, found the end of the line"
    );
}

#[test]
fn many_errors_in_file_order_without_cascades() {
    let e = errs("foo()\nmunmap(1)\nmaps()\na = mmap(\nmunmap(a, 4K)\nmunmap(b, 4K)\n");
    assert_eq!(
        e,
        vec![
            "t.vms:1:1: unknown call `foo`",
            "t.vms:2:9: `munmap` takes 2 arguments, found 1",
            "t.vms:4:10: expected a value, found the end of the line",
            "t.vms:6:8: unknown variable `b`",
        ]
    );
    // A statement with an error still binds its variable.
    assert_eq!(
        errs("a = brk(zz)\nmunmap(a, 1)\n"),
        vec!["t.vms:1:9: unknown variable `zz`"]
    );
}

#[test]
fn nesting_and_length_limits() {
    let deep = format!("brk({}1{})", "(".repeat(300), ")".repeat(300));
    assert!(err1(&deep).contains("parentheses nested too deeply"));
    let long = format!("brk({})", vec!["1"; 5000].join("+"));
    assert!(err1(&long).contains("statement too long"));
    let ok_long = format!("brk({})", vec!["1"; 1000].join("+"));
    assert_eq!(value(&ok_long[4..ok_long.len() - 1]), 1000);
    let minus = format!("brk({}1)", "-".repeat(3001));
    assert_eq!(value(&minus[4..minus.len() - 1]), u64::MAX);
}

#[test]
fn params_from_the_command_line() {
    assert_eq!(
        parse_param("ram=4G"),
        Ok(Param {
            key: "ram".into(),
            value: 4 << 30
        })
    );
    assert_eq!(
        parse_param("mmap_min_addr=0x1000"),
        Ok(Param {
            key: "mmap_min_addr".into(),
            value: 4096
        })
    );
    assert_eq!(
        parse_param(" swap = 2*1M "),
        Ok(Param {
            key: "swap".into(),
            value: 2 << 20
        })
    );
    assert_eq!(
        parse_param("ram"),
        Err("`ram`: expected KEY=VALUE".to_string())
    );
    assert_eq!(
        parse_param("ram="),
        Err("`ram=`: missing value".to_string())
    );
    assert_eq!(
        parse_param("ram=x"),
        Err("`ram=x`: a parameter value must be a constant (no variables)".to_string())
    );
    assert_eq!(
        parse_param("ram=1 2"),
        Err("`ram=1 2`: unexpected number 2 after the value".to_string())
    );
    assert_eq!(
        parse_param("ram=4g"),
        Err("`ram=4g`: invalid number `4g`".to_string())
    );
    assert!(parse_param("bogus=1").is_err_and(|e| e.starts_with("unknown parameter `bogus`")));
}

#[test]
fn merging_params() {
    let p = |k: &str, v: u64| Param {
        key: k.into(),
        value: v,
    };
    let file = [p("ram", 1), p("swap", 2), p("ram", 3)];
    let cli = [p("swap", 9), p("max_map_count", 5)];
    assert_eq!(
        merge_params(&[&file, &cli]),
        vec![p("ram", 3), p("swap", 9), p("max_map_count", 5)]
    );
    assert_eq!(merge_params(&[]), vec![]);
}

#[test]
fn empty_script() {
    assert_eq!(ok("").stmts, vec![]);
    assert_eq!(ok("\n# x\n   \n").stmts, vec![]);
}

fn token_soup() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("mmap"),
        Just("munmap"),
        Just("fork"),
        Just("exit"),
        Just("maps"),
        Just("open"),
        Just("set"),
        Just("ram"),
        Just("pid"),
        Just("a"),
        Just("c"),
        Just("NULL"),
        Just("PROT_READ"),
        Just("MAP_NOPE"),
        Just("0x10"),
        Just("077"),
        Just("4K"),
        Just("99999999999999999999"),
        Just("\"p\""),
        Just("\""),
        Just("("),
        Just(")"),
        Just("["),
        Just("]"),
        Just(","),
        Just("="),
        Just("|"),
        Just("+"),
        Just("-"),
        Just("*"),
        Just("#"),
        Just(" "),
        Just("\n"),
    ];
    prop::collection::vec(piece, 0..60).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn parser_never_panics_on_arbitrary_text(src in "\\PC*") {
        let _ = parse("f.vms", &src);
    }

    #[test]
    fn parser_never_panics_on_token_soup(src in token_soup()) {
        match parse("f.vms", &src) {
            Ok(script) => {
                for s in &script.stmts {
                    prop_assert!(!s.text.is_empty());
                }
            }
            Err(errors) => {
                prop_assert!(!errors.is_empty());
                for e in &errors {
                    prop_assert!(e.pos.line >= 1 && e.pos.col >= 1);
                }
            }
        }
    }

    #[test]
    fn param_parser_never_panics(s in "\\PC*") {
        let _ = parse_param(&s);
    }

    #[test]
    fn decimal_literals_round_trip(n in any::<u64>()) {
        prop_assert_eq!(value(&n.to_string()), n);
        prop_assert_eq!(value(&format!("{n:#x}")), n);
        prop_assert_eq!(value(&format!("0{n:o}")), n);
    }
}

#[test]
fn hand_built_lines_never_panic() {
    let empty = lexer::LexedLine {
        tokens: vec![],
        text: String::new(),
        start_col: 1,
    };
    let f = parser::parse_line(&empty, 1).expect_err("nothing to parse");
    assert_eq!(
        f.error.message,
        "expected a call, found the end of the line"
    );
    assert!(parser::parse_const(&empty).is_err());
}
