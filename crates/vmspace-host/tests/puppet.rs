//! End-to-end tests of the runner and the puppet on the running kernel.

use std::time::{Duration, Instant};

use vmspace_host::maps::MapsLine;
use vmspace_host::{fnv1a, Access, Errno, Host, HostOptions, Puppet, SigInfo};

const PAGE: u64 = 4096;

const SYS_MMAP: u64 = 9;
const SYS_MPROTECT: u64 = 10;
const SYS_MUNMAP: u64 = 11;
const SYS_BRK: u64 = 12;
const SYS_MINCORE: u64 = 27;
const SYS_MADVISE: u64 = 28;
const SYS_CLOSE: u64 = 3;
const SYS_FTRUNCATE: u64 = 77;
const SYS_GETRLIMIT: u64 = 97;

const PROT_NONE: u64 = 0;
const PROT_READ: u64 = 1;
const PROT_WRITE: u64 = 2;
const PROT_EXEC: u64 = 4;
const MAP_SHARED: u64 = 0x01;
const MAP_PRIVATE: u64 = 0x02;
const MAP_ANONYMOUS: u64 = 0x20;
const MAP_NORESERVE: u64 = 0x4000;

const SIGILL: i32 = 4;
const SIGTRAP: i32 = 5;
const SIGBUS: i32 = 7;
const SIGSEGV: i32 = 11;
const SEGV_MAPERR: i32 = 1;
const SEGV_ACCERR: i32 = 2;
const BUS_ADRERR: i32 = 2;
const SI_KERNEL: i32 = 0x80;

fn start() -> (Host, Puppet) {
    let host = Host::new().expect("host");
    let p = host.spawn().expect("spawn");
    (host, p)
}

fn mmap(p: &mut Puppet, addr: u64, len: u64, prot: u64, flags: u64, fd: u64, off: u64) -> u64 {
    let r = p
        .syscall(SYS_MMAP, [addr, len, prot, flags, fd, off])
        .unwrap();
    assert!(r > 0, "mmap failed: {r}");
    r as u64
}

fn anon(p: &mut Puppet, len: u64, prot: u64) -> u64 {
    mmap(p, 0, len, prot, MAP_PRIVATE | MAP_ANONYMOUS, u64::MAX, 0)
}

fn maps_line(p: &Puppet, name: &str) -> MapsLine {
    let maps = p.proc_text("maps").unwrap();
    maps.lines()
        .filter_map(MapsLine::parse)
        .find(|l| l.path.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no {name} in\n{maps}"))
}

#[test]
fn fresh_puppet_layout() {
    let (_host, p) = start();
    let maps = p.proc_text("maps").unwrap();
    let lines: Vec<MapsLine> = maps.lines().map(|l| MapsLine::parse(l).unwrap()).collect();
    assert_eq!(lines[0].start, 0x400000, "{maps}");
    assert!(
        lines[0]
            .path
            .as_deref()
            .unwrap()
            .starts_with("/memfd:vmspace-puppet"),
        "{maps}"
    );
    assert!(
        maps.contains("[stack]") && maps.contains("[vdso]"),
        "{maps}"
    );
    assert!(!maps.contains("[heap]"), "{maps}");
    // Randomisation is off: the stack ends at the top of the address space.
    assert_eq!(maps_line(&p, "[stack]").end, 0x7fff_ffff_f000, "{maps}");
    let limits = p.proc_text("limits").unwrap();
    let stack = limits
        .lines()
        .find(|l| l.starts_with("Max stack size"))
        .unwrap();
    assert!(
        stack.split_whitespace().nth(3) == Some("8388608"),
        "{stack}"
    );
    let memlock = limits
        .lines()
        .find(|l| l.starts_with("Max locked memory"))
        .unwrap();
    assert!(
        memlock.split_whitespace().nth(3) == Some("8388608"),
        "{memlock}"
    );
    let as_ = limits
        .lines()
        .find(|l| l.starts_with("Max address space"))
        .unwrap();
    assert!(as_.contains("unlimited"), "{as_}");
}

#[test]
fn unprivileged() {
    let (_host, p) = start();
    let status = p.proc_text("status").unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l[name.len()..].trim().to_string())
            .unwrap()
    };
    assert_eq!(field("CapEff:"), "0000000000000000", "{status}");
    assert_eq!(field("CapPrm:"), "0000000000000000", "{status}");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        assert!(field("Uid:").starts_with("65534"), "{status}");
    }
}

#[test]
fn mmap_munmap_and_maps() {
    let (_host, mut p) = start();
    let a = anon(&mut p, 3 * PAGE, PROT_READ | PROT_WRITE);
    let maps = p.proc_text("maps").unwrap();
    let l = vmspace_host::maps::find(&maps, a).unwrap();
    assert_eq!((l.start, l.end), (a, a + 3 * PAGE));
    assert_eq!(&l.perms, b"rw-p");
    assert_eq!(
        p.syscall(SYS_MUNMAP, [a + PAGE, PAGE, 0, 0, 0, 0]).unwrap(),
        0
    );
    assert_eq!(
        p.syscall(SYS_MUNMAP, [a + 1, PAGE, 0, 0, 0, 0]).unwrap(),
        -22
    );
    let maps = p.proc_text("maps").unwrap();
    assert!(vmspace_host::maps::find(&maps, a + PAGE).is_none());
    assert!(vmspace_host::maps::find(&maps, a + 2 * PAGE).is_some());
}

#[test]
fn load_unmapped_is_maperr() {
    let (_host, mut p) = start();
    let a = anon(&mut p, 2 * PAGE, PROT_READ | PROT_WRITE);
    p.syscall(SYS_MUNMAP, [a + PAGE, PAGE, 0, 0, 0, 0]).unwrap();
    // Starts mid-page: the first page reads fine, the fault is at the next
    // page's first byte.
    let r = p.load(a + 100, PAGE).unwrap();
    assert_eq!(
        r,
        Access::Fault(SigInfo {
            signo: SIGSEGV,
            code: SEGV_MAPERR,
            addr: a + PAGE
        })
    );
    assert_eq!(
        p.load(a, PAGE).unwrap(),
        Access::Done(fnv1a::repeated(0, PAGE))
    );
    assert_eq!(p.load(a, 0).unwrap(), Access::Done(fnv1a::OFFSET));
}

#[test]
fn store_read_only_is_accerr() {
    let (_host, mut p) = start();
    let a = anon(&mut p, PAGE, PROT_READ);
    let r = p.store(a + 5, 10, 1).unwrap();
    assert_eq!(
        r,
        Access::Fault(SigInfo {
            signo: SIGSEGV,
            code: SEGV_ACCERR,
            addr: a + 5
        })
    );
    let n = anon(&mut p, PAGE, PROT_NONE);
    let r = p.load(n, 1).unwrap();
    assert_eq!(
        r,
        Access::Fault(SigInfo {
            signo: SIGSEGV,
            code: SEGV_ACCERR,
            addr: n
        })
    );
}

#[test]
fn partial_store_keeps_earlier_pages() {
    let (_host, mut p) = start();
    let a = anon(&mut p, 3 * PAGE, PROT_READ | PROT_WRITE);
    assert_eq!(
        p.syscall(SYS_MPROTECT, [a + 2 * PAGE, PAGE, PROT_READ, 0, 0, 0])
            .unwrap(),
        0
    );
    let r = p.store(a + 10, 3 * PAGE, 0x41).unwrap();
    assert_eq!(
        r,
        Access::Fault(SigInfo {
            signo: SIGSEGV,
            code: SEGV_ACCERR,
            addr: a + 2 * PAGE
        })
    );
    let mut expect = vec![0u8; 10];
    expect.extend(std::iter::repeat(0x41u8).take(2 * PAGE as usize - 10));
    assert_eq!(
        p.load(a, 2 * PAGE).unwrap(),
        Access::Done(fnv1a::hash(&expect))
    );
    assert_eq!(
        p.load(a + 2 * PAGE, PAGE).unwrap(),
        Access::Done(fnv1a::repeated(0, PAGE))
    );
}

#[test]
fn exec_faults_and_steps() {
    let (_host, mut p) = start();
    // Not executable: an instruction-fetch fault at the address.
    let rw = anon(&mut p, PAGE, PROT_READ | PROT_WRITE);
    let r = p.exec(rw + 8).unwrap();
    assert_eq!(
        r,
        Access::Fault(SigInfo {
            signo: SIGSEGV,
            code: SEGV_ACCERR,
            addr: rw + 8
        })
    );
    // Unmapped.
    p.syscall(SYS_MUNMAP, [rw, PAGE, 0, 0, 0, 0]).unwrap();
    let r = p.exec(rw).unwrap();
    assert_eq!(
        r,
        Access::Fault(SigInfo {
            signo: SIGSEGV,
            code: SEGV_MAPERR,
            addr: rw
        })
    );

    // An executable zero page: `add [rax], al` with rax junk runs (and
    // faults on its operand): the fetch succeeded.
    let x = anon(&mut p, PAGE, PROT_READ | PROT_EXEC);
    assert_eq!(p.exec(x).unwrap(), Access::Done(()));
    let rep = p.exec_report(x).unwrap();
    assert_eq!(rep.fault, None);
    assert_eq!(rep.stop_signo, SIGSEGV);
    assert_eq!(rep.stop_rip, x);

    // A nop sled: exactly one instruction runs, then the single-step trap.
    let n = anon(&mut p, PAGE, PROT_READ | PROT_WRITE);
    assert_eq!(p.store(n, PAGE, 0x90).unwrap(), Access::Done(()));
    p.syscall(SYS_MPROTECT, [n, PAGE, PROT_READ | PROT_EXEC, 0, 0, 0])
        .unwrap();
    let rep = p.exec_report(n + 16).unwrap();
    assert_eq!(rep.fault, None);
    assert_eq!(rep.stop_signo, SIGTRAP);
    assert_eq!(rep.stop_rip, n + 17);

    // The last nop of the page steps onto an unmapped page: the trap comes
    // first, the next fetch never happens.
    let rep = p.exec_report(n + PAGE - 1).unwrap();
    assert_eq!(
        (rep.fault, rep.stop_signo, rep.stop_rip),
        (None, SIGTRAP, n + PAGE)
    );

    // ud2 raises SIGILL: the fetch succeeded.
    let u = anon(&mut p, PAGE, PROT_READ | PROT_WRITE);
    p.store(u, 1, 0x0f).unwrap();
    p.store(u + 1, 1, 0x0b).unwrap();
    p.syscall(SYS_MPROTECT, [u, PAGE, PROT_READ | PROT_EXEC, 0, 0, 0])
        .unwrap();
    let rep = p.exec_report(u).unwrap();
    assert_eq!((rep.fault, rep.stop_signo), (None, SIGILL));

    // A non-canonical address: the jump itself faults, as a real jump would.
    let r = p.exec(0x8000_0000_0000).unwrap();
    assert_eq!(
        r,
        Access::Fault(SigInfo {
            signo: SIGSEGV,
            code: SI_KERNEL,
            addr: 0
        })
    );

    // The puppet is still fine.
    assert_eq!(p.load(n, 1).unwrap(), Access::Done(fnv1a::hash(&[0x90])));
}

#[test]
fn mincore_vectors() {
    let (_host, mut p) = start();
    let a = anon(&mut p, 4 * PAGE, PROT_READ | PROT_WRITE);
    p.store(a, 1, 1).unwrap();
    p.store(a + 2 * PAGE, 1, 1).unwrap();
    assert_eq!(
        p.mincore(a, 4 * PAGE).unwrap().map(low_bits),
        Ok(vec![1, 0, 1, 0])
    );
    assert_eq!(
        p.mincore(a, 2 * PAGE + 1).unwrap().map(low_bits),
        Ok(vec![1, 0, 1])
    );
    assert_eq!(p.mincore(a + 1, PAGE).unwrap(), Err(Errno(libc::EINVAL)));
    assert_eq!(p.mincore(a, 0).unwrap(), Ok(vec![]));
    p.syscall(SYS_MUNMAP, [a + 3 * PAGE, PAGE, 0, 0, 0, 0])
        .unwrap();
    assert_eq!(p.mincore(a, 4 * PAGE).unwrap(), Err(Errno(libc::ENOMEM)));

    // More pages than one frame of the puppet's vector.
    let pages = 40_000u64;
    let big = mmap(
        &mut p,
        0,
        pages * PAGE,
        PROT_READ | PROT_WRITE,
        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
        u64::MAX,
        0,
    );
    p.store(big + 39_999 * PAGE, 1, 7).unwrap();
    p.store(big + 20_000 * PAGE, 1, 7).unwrap();
    let v = low_bits(p.mincore(big, pages * PAGE).unwrap().unwrap());
    assert_eq!(v.len(), pages as usize);
    let ones: Vec<usize> = v
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == 1)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(ones, vec![20_000, 39_999]);
    // The raw system call agrees on errors.
    assert_eq!(
        p.syscall(SYS_MINCORE, [a + 1, PAGE, 0, 0, 0, 0]).unwrap(),
        -22
    );
}

fn low_bits(v: Vec<u8>) -> Vec<u8> {
    v.into_iter().map(|b| b & 1).collect()
}

#[test]
fn fork_isolates_writes() {
    let (_host, mut p) = start();
    let a = anon(&mut p, PAGE, PROT_READ | PROT_WRITE);
    p.store(a, PAGE, 0x11).unwrap();
    let mut child = p.fork().unwrap().unwrap();
    assert_ne!(child.pid(), p.pid());
    assert_eq!(child.store(a, 16, 0x22).unwrap(), Access::Done(()));
    assert_eq!(
        p.load(a, PAGE).unwrap(),
        Access::Done(fnv1a::repeated(0x11, PAGE))
    );
    let mut expect = vec![0x22u8; 16];
    expect.extend(std::iter::repeat(0x11u8).take(PAGE as usize - 16));
    assert_eq!(
        child.load(a, PAGE).unwrap(),
        Access::Done(fnv1a::hash(&expect))
    );
    // The child is a real process with its own maps.
    assert!(child.proc_text("maps").unwrap().contains("[stack]"));
    // Grandchild, then exits in any order.
    let mut grand = child.fork().unwrap().unwrap();
    assert_eq!(
        grand.load(a, 16).unwrap(),
        Access::Done(fnv1a::repeated(0x22, 16))
    );
    child.exit(0).unwrap();
    assert!(!child.is_alive());
    assert!(child.load(a, 1).is_err());
    assert_eq!(
        grand.load(a, 1).unwrap(),
        Access::Done(fnv1a::repeated(0x22, 1))
    );
    grand.exit(3).unwrap();
    assert_eq!(
        p.load(a, 1).unwrap(),
        Access::Done(fnv1a::repeated(0x11, 1))
    );
    p.exit(0).unwrap();
    assert!(!p.is_alive());
    assert!(p.syscall(SYS_BRK, [0; 6]).is_err());
}

#[test]
fn no_ops_leave_maps_identical() {
    let (_host, mut p) = start();
    let before = p.proc_text("maps").unwrap();
    let stack = maps_line(&p, "[stack]");
    let text = 0x401000;
    let brk = p.brk0().unwrap();
    for _ in 0..3 {
        assert_eq!(p.syscall(SYS_BRK, [0; 6]).unwrap(), brk as i64);
        assert_eq!(p.syscall(SYS_MUNMAP, [1, PAGE, 0, 0, 0, 0]).unwrap(), -22);
        assert!(matches!(p.load(0x1000, 1).unwrap(), Access::Fault(_)));
        assert!(matches!(p.store(0x1000, 1, 0).unwrap(), Access::Fault(_)));
        assert!(matches!(p.exec(0x1000).unwrap(), Access::Fault(_)));
        assert!(matches!(p.exec(text).unwrap(), Access::Done(())));
        assert!(p.mincore(0x400000, 3 * PAGE).unwrap().is_ok());
        assert!(p.mincore(stack.end - PAGE, PAGE).unwrap().is_ok());
        assert!(p.load(stack.end - PAGE, PAGE).unwrap() != Access::Done(0));
        assert!(p.peek(0x400000, 64).unwrap().is_ok());
        assert_eq!(p.peek(0x1000, 1).unwrap(), Err(Errno(libc::EIO)));
        assert_eq!(p.pwrite_fill(1, 0, 10, 0).unwrap(), 10); // /dev/null
        assert_eq!(p.setrlimit(libc::RLIMIT_CORE as u64, 0, 0).unwrap(), 0);
        let _ = p.proc_text("smaps").unwrap();
        let _ = p.proc_text("smaps_rollup").unwrap();
    }
    assert_eq!(p.proc_text("maps").unwrap(), before);
}

#[test]
fn survives_unmapping_its_stack() {
    let (_host, mut p) = start();
    let stack = maps_line(&p, "[stack]");
    let r = p
        .syscall(
            SYS_MUNMAP,
            [stack.start, stack.end - stack.start, 0, 0, 0, 0],
        )
        .unwrap();
    assert_eq!(r, 0);
    assert!(!p.proc_text("maps").unwrap().contains("[stack]"));
    let a = anon(&mut p, PAGE, PROT_READ | PROT_WRITE);
    assert_eq!(p.store(a, 8, 9).unwrap(), Access::Done(()));
    assert_eq!(p.load(a, 8).unwrap(), Access::Done(fnv1a::repeated(9, 8)));
    // Faults are still handled (on the signal stack in .bss).
    assert!(matches!(p.load(stack.start, 1).unwrap(), Access::Fault(_)));
    assert!(matches!(p.exec(a).unwrap(), Access::Fault(_)));
}

#[test]
fn death_is_an_error_not_a_hang() {
    let (_host, mut p) = start();
    let t = Instant::now();
    // Unmap the puppet's own text: the system call returns into nothing.
    let r = p.syscall(SYS_MUNMAP, [0x400000, 0x37000, 0, 0, 0, 0]);
    let err = r.expect_err("the puppet cannot survive this");
    assert!(err.0.contains("died"), "{err}");
    assert!(err.0.contains("SIGSEGV"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(!p.is_alive());
    assert!(p.load(0, 1).is_err());
    assert!(p.proc_text("maps").is_err());

    // A forked child's death too.
    let (_host2, mut q) = start();
    let mut c = q.fork().unwrap().unwrap();
    let err = c
        .syscall(SYS_MPROTECT, [0x401000, PAGE, PROT_NONE, 0, 0, 0])
        .unwrap_err();
    assert!(err.0.contains("died"), "{err}");
    assert!(!c.is_alive());
    // Zeroing its .bss (stacks included) between requests is survivable.
    assert_eq!(
        q.syscall(SYS_MADVISE, [0x404000, 0x33000, 4, 0, 0, 0])
            .unwrap(),
        0
    );
    assert!(matches!(q.load(0x400000, 1).unwrap(), Access::Done(_)));
}

#[test]
fn hang_times_out() {
    let host = Host::with_options(HostOptions {
        timeout: Duration::from_millis(300),
        ..HostOptions::default()
    })
    .unwrap();
    let mut p = host.spawn().unwrap();
    // A huge load of a mapped, unpopulated region takes longer than that.
    let len = 1u64 << 34;
    let a = mmap(
        &mut p,
        0,
        len,
        PROT_READ,
        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
        u64::MAX,
        0,
    );
    let t = Instant::now();
    let err = p.load(a, len).expect_err("should time out");
    assert!(err.0.contains("did not answer"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(!p.is_alive());
}

#[test]
fn files_and_sigbus() {
    let (host, mut p) = start();
    let path = host.dir().join("f");
    let fd = p
        .open(&path, (libc::O_RDWR | libc::O_CREAT) as u64, 0o644)
        .unwrap();
    assert_eq!(fd, 3, "the first free fd");
    assert!(path.exists());
    let fd = fd as u64;
    assert_eq!(p.syscall(SYS_FTRUNCATE, [fd, PAGE, 0, 0, 0, 0]).unwrap(), 0);
    assert_eq!(p.pwrite_fill(fd, 0x33, 100_000, 10).unwrap(), 100_000);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 100_010);
    assert_eq!(p.pwrite_fill(fd, 0x33, 0, 0).unwrap(), 0);
    assert_eq!(p.pwrite_fill(99, 0x33, 5, 0).unwrap(), -9); // EBADF
    assert_eq!(p.syscall(SYS_FTRUNCATE, [fd, PAGE, 0, 0, 0, 0]).unwrap(), 0);
    let m = mmap(
        &mut p,
        0,
        3 * PAGE,
        PROT_READ | PROT_WRITE,
        MAP_SHARED,
        fd,
        0,
    );
    let mut expect = vec![0u8; 10];
    expect.extend(std::iter::repeat(0x33u8).take(PAGE as usize - 10));
    assert_eq!(p.load(m, PAGE).unwrap(), Access::Done(fnv1a::hash(&expect)));
    // Beyond the end of the file: SIGBUS.
    let r = p.load(m, 2 * PAGE).unwrap();
    assert_eq!(
        r,
        Access::Fault(SigInfo {
            signo: SIGBUS,
            code: BUS_ADRERR,
            addr: m + PAGE
        })
    );
    let line = vmspace_host::maps::find(&p.proc_text("maps").unwrap(), m).unwrap();
    assert_eq!(line.path.as_deref(), Some(path.to_str().unwrap()));
    assert_eq!(p.syscall(SYS_CLOSE, [fd, 0, 0, 0, 0, 0]).unwrap(), 0);
    assert_eq!(p.syscall(SYS_CLOSE, [fd, 0, 0, 0, 0, 0]).unwrap(), -9);
    let missing = host.dir().join("nope");
    assert_eq!(p.open(&missing, libc::O_RDONLY as u64, 0).unwrap(), -2);
    let long = host.dir().join("x".repeat(5000));
    assert_eq!(p.open(&long, libc::O_RDONLY as u64, 0).unwrap(), -36);
}

#[test]
fn setrlimit_uses_puppet_memory() {
    let (_host, mut p) = start();
    let r = p
        .setrlimit(libc::RLIMIT_DATA as u64, 1 << 20, 2 << 20)
        .unwrap();
    assert_eq!(r, 0);
    let limits = p.proc_text("limits").unwrap();
    let data = limits
        .lines()
        .find(|l| l.starts_with("Max data size"))
        .unwrap();
    assert_eq!(
        data.split_whitespace().collect::<Vec<_>>()[3..5],
        ["1048576", "2097152"]
    );
    // Raising the hard limit again needs privilege the puppet lacks.
    assert_eq!(
        p.setrlimit(libc::RLIMIT_DATA as u64, 1 << 20, 4 << 20)
            .unwrap(),
        -1
    );
    // A pointer argument outside the data is passed as is (here: EFAULT).
    assert_eq!(p.syscall(SYS_GETRLIMIT, [3, 8, 0, 0, 0, 0]).unwrap(), -14);
}

#[test]
fn peek_and_poke() {
    let (_host, mut p) = start();
    let a = anon(&mut p, 2 * PAGE, PROT_READ);
    assert_eq!(p.poke(a + 1, PAGE, 0x5a).unwrap(), Ok(()));
    let mut expect = vec![0u8; 1];
    expect.extend(std::iter::repeat(0x5au8).take(PAGE as usize));
    expect.extend(std::iter::repeat(0u8).take(PAGE as usize - 1));
    assert_eq!(
        p.load(a, 2 * PAGE).unwrap(),
        Access::Done(fnv1a::hash(&expect))
    );
    assert_eq!(p.peek(a, 2 * PAGE).unwrap(), Ok(fnv1a::hash(&expect)));
    let n = anon(&mut p, PAGE, PROT_NONE);
    // PROT_NONE has no VM_MAY* restriction on a private anonymous mapping.
    assert!(p.peek(n, 1).unwrap().is_ok());
    p.syscall(SYS_MUNMAP, [n, PAGE, 0, 0, 0, 0]).unwrap();
    assert_eq!(p.peek(n, 1).unwrap(), Err(Errno(libc::EIO)));
    assert_eq!(p.poke(n, 1, 0).unwrap(), Err(Errno(libc::EIO)));
    // The vsyscall page is above 2^63 as a file offset.
    let _ = p.peek(0xffff_ffff_ff60_0000, 8).unwrap();
}

#[test]
fn many_puppets_in_parallel() {
    let threads: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                let (_host, mut p) = start();
                let a = anon(&mut p, PAGE, PROT_READ | PROT_WRITE);
                p.store(a, PAGE, i).unwrap();
                assert_eq!(
                    p.load(a, PAGE).unwrap(),
                    Access::Done(fnv1a::repeated(i, PAGE))
                );
                // The fd of the channel did not leak into another puppet:
                // fd 3 is free in each.
                let fd = p.open(std::path::Path::new("/dev/null"), 0, 0).unwrap();
                assert_eq!(fd, 3);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn shared_anonymous_shows_dev_zero() {
    let (_host, mut p) = start();
    let a = mmap(
        &mut p,
        0,
        PAGE,
        PROT_READ | PROT_WRITE,
        MAP_SHARED | MAP_ANONYMOUS,
        u64::MAX,
        0,
    );
    let line = vmspace_host::maps::find(&p.proc_text("maps").unwrap(), a).unwrap();
    assert_eq!(line.path.as_deref(), Some("/dev/zero (deleted)"));
    assert_eq!((line.major, line.minor), (0, 1));
    let mut c = p.fork().unwrap().unwrap();
    c.store(a, 1, 0x77).unwrap();
    // Shared: the parent sees the child's write.
    assert_eq!(p.load(a, 1).unwrap(), Access::Done(fnv1a::hash(&[0x77])));
}

#[test]
fn exec_survives_odd_instructions() {
    let (_host, mut p) = start();
    let code = anon(&mut p, PAGE, PROT_READ | PROT_WRITE);
    let data = anon(&mut p, PAGE, PROT_READ | PROT_WRITE);
    p.store(data, PAGE, 0x5a).unwrap();
    let programs: &[(&str, &[u8])] = &[
        ("syscall", &[0x0f, 0x05]),
        ("int 0x80", &[0xcd, 0x80]),
        ("int3", &[0xcc]),
        ("hlt", &[0xf4]),
        ("cli", &[0xfa]),
        ("popfq", &[0x9d]),
        ("iretq", &[0x48, 0xcf]),
        ("ret", &[0xc3]),
        ("jmp .", &[0xeb, 0xfe]),
        ("std", &[0xfd]),
        ("ldmxcsr [rsp]", &[0x0f, 0xae, 0x14, 0x24]),
        ("fldcw [rsp]", &[0xd9, 0x2c, 0x24]),
        ("mov ss, ax", &[0x8e, 0xd0]),
        ("pop fs", &[0x0f, 0xa1]),
        ("div rbx", &[0x48, 0xf7, 0xf3]),
        ("leave", &[0xc9]),
        ("mov rsp, rax; (next)", &[0x48, 0x89, 0xc4, 0x50]),
        ("push rax", &[0x50]),
        ("add [eax], al", &[0x67, 0x00, 0x00]),
    ];
    for (name, bytes) in programs {
        for (i, b) in bytes.iter().enumerate() {
            p.store(code + i as u64, 1, *b).unwrap();
        }
        p.syscall(SYS_MPROTECT, [code, PAGE, PROT_READ | PROT_EXEC, 0, 0, 0])
            .unwrap();
        let rep = p
            .exec_report(code)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(rep.fault, None, "{name}: {rep:?}");
        p.syscall(SYS_MPROTECT, [code, PAGE, PROT_READ | PROT_WRITE, 0, 0, 0])
            .unwrap();
        p.store(code, 16, 0).unwrap();
        // Still healthy: loads hash as before, faults are still caught.
        assert_eq!(
            p.load(data, PAGE).unwrap(),
            Access::Done(fnv1a::repeated(0x5a, PAGE)),
            "{name}"
        );
        assert!(
            matches!(p.load(0x1000, 1).unwrap(), Access::Fault(_)),
            "{name}"
        );
    }
    // The vsyscall page (emulated or execute-only, whichever the kernel does).
    let _ = p.exec_report(0xffff_ffff_ff60_0000).unwrap();
    let _ = p.exec_report(0xffff_ffff_ff60_0800).unwrap();
    let r = p.exec(0xffff_8000_0000_0000).unwrap();
    assert_eq!(
        r,
        Access::Fault(SigInfo {
            signo: SIGSEGV,
            code: SEGV_MAPERR,
            addr: 0xffff_8000_0000_0000
        })
    );
    assert_eq!(
        p.load(data, PAGE).unwrap(),
        Access::Done(fnv1a::repeated(0x5a, PAGE))
    );
}
