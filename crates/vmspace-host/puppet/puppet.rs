//! vmspace-puppet: a tiny static x86-64 Linux executable that runs scenario
//! calls inside its own address space on behalf of the vmspace host runner.
//!
//! It is built by `build.rs` with `$RUSTC` directly (no cargo, no std, no
//! libc) into a static non-PIE ELF at 0x400000 and embedded in the runner.
//!
//! The puppet never allocates or maps memory: everything it needs lives in
//! its `.bss` (a private stack, a signal stack, a scratch stack for `exec`,
//! buffers). It leaves the kernel-provided `[stack]` alone after the first
//! instruction, so a scenario may grow, protect or unmap it.
//!
//! # Protocol (must match `src/proto.rs` of the runner)
//!
//! One `SOCK_STREAM` Unix socket on fd [`CHAN`]. The runner writes a
//! [`Request`] (80 bytes) followed by `data_len` bytes of data; the puppet
//! answers with a [`Response`] (56 bytes) followed by a payload, except:
//! - `OP_EXIT`: no answer, the puppet exits (the runner sees EOF);
//! - `OP_MINCORE`: the payload is a sequence of frames `[status: i64][n: u64]`
//!   then `n` vector bytes, ending with a frame whose status is negative (the
//!   -errno of a failing chunk) or whose `n` is 0 (done);
//! - `OP_FORK`: in the parent the response carries the child's end of a new
//!   socket pair as `SCM_RIGHTS`; the child greets with `READY_MAGIC` and serves the new
//!   socket (moved to fd [`CHAN`]).
//!
//! At start the puppet sends one `Response` with `ret = READY_MAGIC`.
//! On EOF or error on its socket the puppet exits.

#![no_std]
#![no_main]

use core::arch::{asm, global_asm};
use core::ptr::{addr_of, addr_of_mut, read_volatile, write_volatile};

/// The fd of the command/response socket.
const CHAN: u64 = 1000;

const READY_MAGIC: i64 = 0x5650_5550_5045_5431;

const OP_SYSCALL: u64 = 1;
const OP_LOAD: u64 = 2;
const OP_STORE: u64 = 3;
const OP_EXEC: u64 = 4;
const OP_MINCORE: u64 = 5;
const OP_FORK: u64 = 6;
const OP_EXIT: u64 = 7;
const OP_PWRITE: u64 = 8;

const DATA_MAX: usize = 4096;

const PAGE: u64 = 4096;

// System call numbers (x86-64).
const SYS_READ: u64 = 0;
const SYS_WRITE: u64 = 1;
const SYS_CLOSE: u64 = 3;
const SYS_RT_SIGACTION: u64 = 13;
const SYS_PWRITE64: u64 = 18;
const SYS_MINCORE: u64 = 27;
const SYS_DUP2: u64 = 33;
const SYS_GETPID: u64 = 39;
const SYS_SENDMSG: u64 = 46;
const SYS_SOCKETPAIR: u64 = 53;
const SYS_CLONE: u64 = 56;
const SYS_KILL: u64 = 62;
const SYS_SIGALTSTACK: u64 = 131;
const SYS_PRCTL: u64 = 157;
const SYS_EXIT_GROUP: u64 = 231;

const PR_SET_NAME: u64 = 15;

const SIGILL: u64 = 4;
const SIGTRAP: u64 = 5;
const SIGBUS: u64 = 7;
const SIGFPE: u64 = 8;
const SIGSEGV: u64 = 11;
const SIGCHLD: u64 = 17;

const SA_SIGINFO: u64 = 0x4;
const SA_ONSTACK: u64 = 0x0800_0000;
const SA_RESTORER: u64 = 0x0400_0000;

const EINTR: i64 = 4;
const ENOSYS: i64 = 38;

const AF_UNIX: u64 = 1;
const SOCK_STREAM: u64 = 1;
const SOCK_CLOEXEC: u64 = 0o2000000;
const SOL_SOCKET: i32 = 1;
const SCM_RIGHTS: i32 = 1;
const MSG_NOSIGNAL: u64 = 0x4000;

// ucontext_t: uc_mcontext.gregs starts at byte 40; indices of gregs.
const UC_GREGS: usize = 40;
const REG_RSP: usize = 15;
const REG_RIP: usize = 16;
const REG_EFL: usize = 17;
const REG_ERR: usize = 19;
const REG_TRAPNO: usize = 20;
const UC_FPREGS: usize = UC_GREGS + 23 * 8;

/// Page-fault error code bit: the access was an instruction fetch.
const X86_PF_INSTR: u64 = 1 << 4;
/// #PF
const TRAP_PF: u64 = 14;

/// Register value for `exec`: non-canonical as a 64-bit address, in page 0
/// as a 32-bit one (never mappable by the unprivileged puppet), an invalid
/// system call number (4095), a nonzero divisor, an invalid selector.
#[allow(dead_code)]
const JUNK: u64 = 0x8000_0000_0000_0fff;

/// Frames of the mincore answer cover this many pages each.
const VEC_LEN: usize = 16384;
const FILL_LEN: usize = 16384;

#[repr(C)]
#[derive(Clone, Copy)]
struct Request {
    op: u64,
    /// OP_SYSCALL: a[0] = number, a[1..7] = arguments. Other ops: arguments.
    a: [u64; 7],
    /// OP_SYSCALL: bit i set means argument i (0-based) is an offset into
    /// the request data and is passed as a pointer to the puppet's copy.
    ptr_mask: u64,
    /// Bytes of data following the request (at most DATA_MAX).
    data_len: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Response {
    ret: i64,
    /// Nonzero when an access faulted: the delivered signal.
    signo: i64,
    code: i64,
    addr: u64,
    /// OP_LOAD: the FNV-1a hash; OP_EXEC: the signal that stopped the step.
    hash: u64,
    /// OP_EXEC: the instruction pointer at that stop.
    aux: u64,
    payload_len: u64,
}

#[repr(C, align(4096))]
struct Stack64K([u8; 65536]);
#[repr(C, align(4096))]
struct Stack16K([u8; 16384]);
#[repr(C, align(4096))]
struct Buf<const N: usize>([u8; N]);

static mut MAIN_STACK: Stack64K = Stack64K([0; 65536]);
static mut ALT_STACK: Stack64K = Stack64K([0; 65536]);
static mut SCRATCH_STACK: Stack16K = Stack16K([0; 16384]);
static mut DATA: Buf<DATA_MAX> = Buf([0; DATA_MAX]);
static mut VEC: Buf<VEC_LEN> = Buf([0; VEC_LEN]);
static mut FILL: Buf<FILL_LEN> = Buf([0; FILL_LEN]);

static mut REQ: Request = Request {
    op: 0,
    a: [0; 7],
    ptr_mask: 0,
    data_len: 0,
};
static mut RESP: Response = Response {
    ret: 0,
    signo: 0,
    code: 0,
    addr: 0,
    hash: 0,
    aux: 0,
    payload_len: 0,
};

// Fault recovery state, shared with the signal handler and the asm stubs.
static mut TRY_ARMED: u64 = 0;
static mut TRY_RSP: u64 = 0;
static mut EXEC_ARMED: u64 = 0;
static mut EXEC_RSP: u64 = 0;
static mut EXEC_TARGET: u64 = 0;
static mut EXEC_STOP_SIGNO: u64 = 0;
static mut EXEC_STOP_RIP: u64 = 0;
static mut FAULT_SIGNO: u64 = 0;
static mut FAULT_CODE: u64 = 0;
static mut FAULT_ADDR: u64 = 0;

static mut SV: [i32; 2] = [0; 2];
static mut SIGACT: [u64; 4] = [0; 4];
static mut ALTSTACK_DESC: [u64; 3] = [0; 3];
static mut MSGHDR: [u64; 7] = [0; 7];
static mut IOV: [u64; 2] = [0; 2];
static mut CMSG: [u64; 3] = [0; 3];
static mut FRAME: [u64; 2] = [0; 2];

global_asm!(
    ".globl _start",
    "_start:",
    "lea rsp, [rip + {stack} + 65536]",
    "xor ebp, ebp",
    "call {main}",
    "ud2",
    "",
    // Signal restorer.
    ".globl vmspace_restorer",
    "vmspace_restorer:",
    "mov eax, 15",
    "syscall",
    "ud2",
    "",
    // u64 vmspace_try(void (*f)(void *), void *arg): 0 if f returned, 1 if
    // it faulted (the handler sent it to vmspace_try_recover).
    ".globl vmspace_try",
    "vmspace_try:",
    "push rbx",
    "push rbp",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "sub rsp, 8",
    "mov [rip + {try_rsp}], rsp",
    "mov qword ptr [rip + {try_armed}], 1",
    "mov rax, rdi",
    "mov rdi, rsi",
    "call rax",
    "mov qword ptr [rip + {try_armed}], 0",
    "xor eax, eax",
    "2:",
    "add rsp, 8",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbp",
    "pop rbx",
    "ret",
    ".globl vmspace_try_recover",
    "vmspace_try_recover:",
    "mov rsp, [rip + {try_rsp}]",
    "mov eax, 1",
    "jmp 2b",
    "",
    // void vmspace_exec(u64 target): iretq to target with TF set, all
    // general registers junk and RSP on the scratch stack. The signal
    // handler sends the CPU back to vmspace_exec_land.
    ".globl vmspace_exec",
    "vmspace_exec:",
    "push rbx",
    "push rbp",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "sub rsp, 8",
    "mov [rip + {exec_rsp}], rsp",
    "mov qword ptr [rip + {exec_armed}], 1",
    "xor eax, eax",
    "mov ax, ss",
    "push rax",
    "lea rax, [rip + {scratch} + 8192]",
    "push rax",
    "push 0x302",
    "xor eax, eax",
    "mov ax, cs",
    "push rax",
    "push rdi",
    // JUNK (a literal: `const` asm operands need Rust 1.82).
    "movabs rax, 0x8000000000000fff",
    "mov rbx, rax",
    "mov rcx, rax",
    "mov rdx, rax",
    "mov rsi, rax",
    "mov rdi, rax",
    "mov rbp, rax",
    "mov r8, rax",
    "mov r9, rax",
    "mov r10, rax",
    "mov r11, rax",
    "mov r12, rax",
    "mov r13, rax",
    "mov r14, rax",
    "mov r15, rax",
    ".globl vmspace_exec_iret",
    "vmspace_exec_iret:",
    "iretq",
    ".globl vmspace_exec_land",
    "vmspace_exec_land:",
    "mov rsp, [rip + {exec_rsp}]",
    "add rsp, 8",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbp",
    "pop rbx",
    "ret",
    stack = sym MAIN_STACK,
    main = sym puppet_main,
    try_rsp = sym TRY_RSP,
    try_armed = sym TRY_ARMED,
    exec_rsp = sym EXEC_RSP,
    exec_armed = sym EXEC_ARMED,
    scratch = sym SCRATCH_STACK,
);

extern "C" {
    fn vmspace_restorer();
    fn vmspace_try(f: extern "C" fn(*mut Access), arg: *mut Access) -> u64;
    fn vmspace_try_recover();
    fn vmspace_exec(target: u64);
    fn vmspace_exec_iret();
    fn vmspace_exec_land();
}

#[inline(always)]
unsafe fn sys6(nr: u64, a: u64, b: u64, c: u64, d: u64, e: u64, f: u64) -> i64 {
    let ret: i64;
    asm!(
        "syscall",
        inlateout("rax") nr as i64 => ret,
        in("rdi") a,
        in("rsi") b,
        in("rdx") c,
        in("r10") d,
        in("r8") e,
        in("r9") f,
        lateout("rcx") _,
        lateout("r11") _,
        options(nostack),
    );
    ret
}

#[inline(always)]
unsafe fn sys3(nr: u64, a: u64, b: u64, c: u64) -> i64 {
    sys6(nr, a, b, c, 0, 0, 0)
}

fn exit(code: u64) -> ! {
    loop {
        // SAFETY: exit_group never returns.
        unsafe {
            sys3(SYS_EXIT_GROUP, code, 0, 0);
        }
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    exit(120)
}

// The compiler may call these; there is no libc.
#[no_mangle]
unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    asm!("rep movsb", inout("rdi") dst => _, inout("rsi") src => _, inout("rcx") n => _,
        options(nostack, preserves_flags));
    dst
}

#[no_mangle]
unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize).wrapping_sub(src as usize) >= n {
        memcpy(dst, src, n)
    } else {
        asm!("std", "rep movsb", "cld",
            inout("rdi") dst.add(n).wrapping_sub(1) => _,
            inout("rsi") src.add(n).wrapping_sub(1) => _,
            inout("rcx") n => _, options(nostack));
        dst
    }
}

#[no_mangle]
unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    asm!("rep stosb", inout("rdi") dst => _, inout("rcx") n => _, in("al") c as u8,
        options(nostack, preserves_flags));
    dst
}

#[no_mangle]
unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i < n {
        let x = read_volatile(a.add(i));
        let y = read_volatile(b.add(i));
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}

#[no_mangle]
unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    memcmp(a, b, n)
}

/// Reads exactly `len` bytes into `buf`; exits on EOF or error.
unsafe fn read_exact(buf: *mut u8, len: usize) {
    let mut done = 0;
    while done < len {
        let r = sys3(SYS_READ, CHAN, buf.add(done) as u64, (len - done) as u64);
        if r == -EINTR {
            continue;
        }
        if r <= 0 {
            exit(0);
        }
        done += r as usize;
    }
}

/// Writes exactly `len` bytes from `buf`; exits on error.
unsafe fn write_all(buf: *const u8, len: usize) {
    let mut done = 0;
    while done < len {
        let r = sys3(SYS_WRITE, CHAN, buf.add(done) as u64, (len - done) as u64);
        if r == -EINTR {
            continue;
        }
        if r <= 0 {
            exit(0);
        }
        done += r as usize;
    }
}

unsafe fn respond(ret: i64) {
    let r = addr_of_mut!(RESP);
    (*r).ret = ret;
    write_all(r as *const u8, core::mem::size_of::<Response>());
}

unsafe fn clear_resp() {
    *addr_of_mut!(RESP) = Response {
        ret: 0,
        signo: 0,
        code: 0,
        addr: 0,
        hash: 0,
        aux: 0,
        payload_len: 0,
    };
}

unsafe extern "C" fn on_signal(sig: i32, info: *mut u8, uc: *mut u8) {
    let signo = read_volatile(info as *const i32) as u64;
    let code = read_volatile(info.add(8) as *const i32) as i64 as u64;
    let addr = read_volatile(info.add(16) as *const u64);
    let gregs = uc.add(UC_GREGS) as *mut u64;
    if read_volatile(addr_of!(EXEC_ARMED)) != 0 {
        write_volatile(addr_of_mut!(EXEC_ARMED), 0);
        let trapno = read_volatile(gregs.add(REG_TRAPNO));
        let err = read_volatile(gregs.add(REG_ERR));
        let rip = read_volatile(gregs.add(REG_RIP));
        let target = read_volatile(addr_of!(EXEC_TARGET));
        let memfault = signo == SIGSEGV || signo == SIGBUS;
        let fetch_fault = memfault
            && ((trapno == TRAP_PF && err & X86_PF_INSTR != 0 && addr & !(PAGE - 1) == target & !(PAGE - 1))
                // iretq itself refused the target (non-canonical address).
                || rip == vmspace_exec_iret as *const () as usize as u64);
        if fetch_fault {
            write_volatile(addr_of_mut!(FAULT_SIGNO), signo);
            write_volatile(addr_of_mut!(FAULT_CODE), code);
            write_volatile(addr_of_mut!(FAULT_ADDR), addr);
        } else {
            write_volatile(addr_of_mut!(FAULT_SIGNO), 0);
        }
        write_volatile(addr_of_mut!(EXEC_STOP_SIGNO), signo);
        write_volatile(addr_of_mut!(EXEC_STOP_RIP), rip);
        write_volatile(
            gregs.add(REG_RIP),
            vmspace_exec_land as *const () as usize as u64,
        );
        write_volatile(gregs.add(REG_RSP), read_volatile(addr_of!(EXEC_RSP)));
        write_volatile(gregs.add(REG_EFL), 0x202);
        // The instruction may have changed the x87/SSE control words, which
        // the rest of the puppet relies on: restore the defaults.
        let fp = read_volatile(uc.add(UC_FPREGS) as *const u64) as *mut u8;
        if !fp.is_null() {
            write_volatile(fp as *mut u16, 0x37f);
            write_volatile(fp.add(24) as *mut u32, 0x1f80);
        }
        return;
    }
    if read_volatile(addr_of!(TRY_ARMED)) != 0 {
        write_volatile(addr_of_mut!(TRY_ARMED), 0);
        write_volatile(addr_of_mut!(FAULT_SIGNO), signo);
        write_volatile(addr_of_mut!(FAULT_CODE), code);
        write_volatile(addr_of_mut!(FAULT_ADDR), addr);
        write_volatile(
            gregs.add(REG_RIP),
            vmspace_try_recover as *const () as usize as u64,
        );
        write_volatile(gregs.add(REG_EFL), 0x202);
        return;
    }
    // Not ours: die of it (the signal stays blocked until sigreturn).
    set_action(sig as u64, 0, 0);
    let pid = sys3(SYS_GETPID, 0, 0, 0);
    sys3(SYS_KILL, pid as u64, sig as u64, 0);
}

unsafe fn set_action(sig: u64, handler: u64, flags: u64) {
    let act = addr_of_mut!(SIGACT) as *mut u64;
    write_volatile(act, handler);
    write_volatile(act.add(1), flags | SA_RESTORER);
    write_volatile(act.add(2), vmspace_restorer as *const () as usize as u64);
    write_volatile(act.add(3), 0);
    sys6(SYS_RT_SIGACTION, sig, act as u64, 0, 8, 0, 0);
}

extern "C" {
    static __image_start: u8;
    static __data_start: u8;
    static __image_end: u8;
}

/// Makes every page of the image resident before the first request: read
/// the read-only pages, write (with its own value) every writable one. What
/// the puppet touches later while serving requests is then already resident,
/// so its own resident set never changes under a scenario.
unsafe fn prefault_image() {
    let start = addr_of!(__image_start) as usize;
    let end = addr_of!(__image_end) as usize;
    let data = addr_of!(__data_start) as usize & !0xfff;
    let mut page = start & !0xfff;
    while page < end {
        let p = page as *mut u8;
        let v = read_volatile(p);
        if page >= data {
            write_volatile(p, v);
        }
        page += 4096;
    }
}

unsafe fn setup() {
    prefault_image();
    let ss = addr_of_mut!(ALTSTACK_DESC) as *mut u64;
    write_volatile(ss, addr_of_mut!(ALT_STACK) as u64);
    write_volatile(ss.add(1), 0);
    write_volatile(ss.add(2), core::mem::size_of::<Stack64K>() as u64);
    if sys3(SYS_SIGALTSTACK, ss as u64, 0, 0) != 0 {
        exit(121);
    }
    let h = on_signal as *const () as usize as u64;
    for sig in [SIGSEGV, SIGBUS, SIGTRAP, SIGILL, SIGFPE] {
        set_action(sig, h, SA_SIGINFO | SA_ONSTACK);
    }
    // Children (forked puppets) are reaped by the kernel.
    set_action(SIGCHLD, 1, 0);
    // Be "vmspace-puppet" in ps (exec from a memfd names the process after
    // the fd number).
    sys3(SYS_PRCTL, PR_SET_NAME, NAME.as_ptr() as u64, 0);
}

static NAME: [u8; 15] = *b"vmspace-puppet\0";

/// The state of one load or store, for the fault-guarded access functions.
#[repr(C)]
struct Access {
    addr: u64,
    len: u64,
    byte: u8,
    hash: u64,
}

#[inline(always)]
fn fnv(h: u64, b: u8) -> u64 {
    (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
}

/// Reads the range one page at a time in ascending order. The first byte of
/// each page is read on its own so that a fault reports that exact byte.
extern "C" fn do_load(a: *mut Access) {
    // SAFETY: runs under vmspace_try; a fault is recovered by the handler.
    unsafe {
        let mut p = (*a).addr;
        let mut left = (*a).len;
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        while left > 0 {
            let chunk = core::cmp::min(left, PAGE - (p & (PAGE - 1)));
            h = fnv(h, read_volatile(p as *const u8));
            let mut q = p.wrapping_add(1);
            let end = p.wrapping_add(chunk);
            while q != end {
                h = fnv(h, *(q as *const u8));
                q = q.wrapping_add(1);
            }
            p = end;
            left -= chunk;
        }
        write_volatile(addr_of_mut!((*a).hash), h);
    }
}

/// Writes the range one page at a time in ascending order.
extern "C" fn do_store(a: *mut Access) {
    // SAFETY: runs under vmspace_try; a fault is recovered by the handler.
    unsafe {
        let mut p = (*a).addr;
        let mut left = (*a).len;
        let byte = (*a).byte;
        while left > 0 {
            let chunk = core::cmp::min(left, PAGE - (p & (PAGE - 1)));
            write_volatile(p as *mut u8, byte);
            // Not even an empty `rep stosb` at the next page: the CPU may
            // walk its translation and set the accessed bit there.
            if chunk > 1 {
                memset(
                    p.wrapping_add(1) as *mut u8,
                    i32::from(byte),
                    (chunk - 1) as usize,
                );
            }
            p = p.wrapping_add(chunk);
            left -= chunk;
        }
    }
}

unsafe fn guarded(f: extern "C" fn(*mut Access), a: *mut Access) {
    write_volatile(addr_of_mut!(FAULT_SIGNO), 0);
    if vmspace_try(f, a) != 0 {
        let r = addr_of_mut!(RESP);
        (*r).signo = read_volatile(addr_of!(FAULT_SIGNO)) as i64;
        (*r).code = read_volatile(addr_of!(FAULT_CODE)) as i64;
        (*r).addr = read_volatile(addr_of!(FAULT_ADDR));
    }
}

unsafe fn op_syscall(req: &Request) {
    let mut args = [0u64; 6];
    let data = addr_of_mut!(DATA) as u64;
    for (i, arg) in args.iter_mut().enumerate() {
        let v = req.a[i + 1];
        *arg = if req.ptr_mask & (1 << i) != 0 {
            data + v
        } else {
            v
        };
    }
    let r = sys6(
        req.a[0], args[0], args[1], args[2], args[3], args[4], args[5],
    );
    respond(r);
}

unsafe fn op_mincore(addr: u64, len: u64) {
    respond(0);
    let vec = addr_of_mut!(VEC) as *mut u8;
    let frame = addr_of_mut!(FRAME) as *mut u64;
    let mut pages = (len >> 12) + u64::from(len & (PAGE - 1) != 0);
    let mut p = addr;
    let mut first = true;
    while pages > 0 || first {
        let n = core::cmp::min(pages, VEC_LEN as u64);
        let bytes = if n == pages {
            len - (p - addr)
        } else {
            n * PAGE
        };
        let r = sys3(SYS_MINCORE, p, bytes, vec as u64);
        if r < 0 {
            write_volatile(frame, r as u64);
            write_volatile(frame.add(1), 0);
            write_all(frame as *const u8, 16);
            return;
        }
        if n > 0 {
            write_volatile(frame, 0);
            write_volatile(frame.add(1), n);
            write_all(frame as *const u8, 16);
            write_all(vec, n as usize);
        }
        pages -= n;
        p = p.wrapping_add(n * PAGE);
        first = false;
    }
    write_volatile(frame, 0);
    write_volatile(frame.add(1), 0);
    write_all(frame as *const u8, 16);
}

unsafe fn op_pwrite(fd: u64, byte: u8, count: u64, off: u64) {
    let fill = addr_of_mut!(FILL) as *mut u8;
    memset(
        fill,
        i32::from(byte),
        core::cmp::min(count, FILL_LEN as u64) as usize,
    );
    let mut done: u64 = 0;
    loop {
        let n = core::cmp::min(count - done, FILL_LEN as u64);
        let r = sys6(
            SYS_PWRITE64,
            fd,
            fill as u64,
            n,
            off.wrapping_add(done),
            0,
            0,
        );
        if r == -EINTR {
            continue;
        }
        if r < 0 {
            respond(if done == 0 { r } else { done as i64 });
            return;
        }
        done += r as u64;
        if r as u64 != n || done == count {
            respond(done as i64);
            return;
        }
    }
}

/// Forks. Returns true in the child, which greets the runner on its new
/// channel once its image is faulted in, then serves requests there.
unsafe fn op_fork() -> bool {
    let sv = addr_of_mut!(SV) as *mut i32;
    let r = sys6(
        SYS_SOCKETPAIR,
        AF_UNIX,
        SOCK_STREAM | SOCK_CLOEXEC,
        0,
        sv as u64,
        0,
        0,
    );
    if r < 0 {
        respond(r);
        return false;
    }
    let (ours, theirs) = (read_volatile(sv) as u64, read_volatile(sv.add(1)) as u64);
    // fork() as the C library does it: clone(SIGCHLD) on the same stack.
    let pid = sys6(SYS_CLONE, SIGCHLD, 0, 0, 0, 0, 0);
    // Both sides now share the image copy-on-write. Whatever each touches
    // while serving later requests would change what is shared; touching
    // the whole image at once, on both sides, makes that fixed: every
    // writable page private to each, every text page mapped in each.
    prefault_image();
    if pid == 0 {
        if sys3(SYS_DUP2, theirs, CHAN, 0) < 0 {
            exit(122);
        }
        sys3(SYS_CLOSE, ours, 0, 0);
        sys3(SYS_CLOSE, theirs, 0, 0);
        // Image faulted in (above): tell the runner this process is ready.
        clear_resp();
        respond(READY_MAGIC);
        return true;
    }
    sys3(SYS_CLOSE, theirs, 0, 0);
    if pid < 0 {
        sys3(SYS_CLOSE, ours, 0, 0);
        respond(pid);
        return false;
    }
    let resp = addr_of_mut!(RESP);
    (*resp).ret = pid;
    let iov = addr_of_mut!(IOV) as *mut u64;
    write_volatile(iov, resp as u64);
    write_volatile(iov.add(1), core::mem::size_of::<Response>() as u64);
    let cmsg = addr_of_mut!(CMSG) as *mut u64;
    write_volatile(cmsg, 20); // cmsg_len = CMSG_LEN(sizeof(int))
    write_volatile(cmsg.add(1) as *mut i32, SOL_SOCKET);
    write_volatile((cmsg.add(1) as *mut i32).add(1), SCM_RIGHTS);
    write_volatile(cmsg.add(2), ours);
    let msg = addr_of_mut!(MSGHDR) as *mut u64;
    write_volatile(msg, 0); // msg_name
    write_volatile(msg.add(1), 0); // msg_namelen
    write_volatile(msg.add(2), iov as u64);
    write_volatile(msg.add(3), 1);
    write_volatile(msg.add(4), cmsg as u64);
    write_volatile(msg.add(5), 24); // CMSG_SPACE(sizeof(int))
    write_volatile(msg.add(6), 0);
    let mut sent;
    loop {
        sent = sys3(SYS_SENDMSG, CHAN, msg as u64, MSG_NOSIGNAL);
        if sent != -EINTR {
            break;
        }
    }
    sys3(SYS_CLOSE, ours, 0, 0);
    if sent <= 0 {
        exit(0);
    }
    let size = core::mem::size_of::<Response>();
    if (sent as usize) < size {
        write_all((resp as *const u8).add(sent as usize), size - sent as usize);
    }
    false
}

unsafe extern "C" fn puppet_main() -> ! {
    setup();
    clear_resp();
    respond(READY_MAGIC);
    loop {
        let reqp = addr_of_mut!(REQ);
        read_exact(reqp as *mut u8, core::mem::size_of::<Request>());
        let req = *reqp;
        clear_resp();
        if req.data_len > DATA_MAX as u64 {
            // Cannot resynchronise: the stream is corrupt.
            exit(123);
        }
        if req.data_len > 0 {
            read_exact(addr_of_mut!(DATA) as *mut u8, req.data_len as usize);
        }
        match req.op {
            OP_SYSCALL => op_syscall(&req),
            OP_LOAD => {
                let mut a = Access {
                    addr: req.a[0],
                    len: req.a[1],
                    byte: 0,
                    hash: 0,
                };
                guarded(do_load, &mut a);
                (*addr_of_mut!(RESP)).hash = read_volatile(addr_of!(a.hash));
                respond(0);
            }
            OP_STORE => {
                let mut a = Access {
                    addr: req.a[0],
                    len: req.a[1],
                    byte: req.a[2] as u8,
                    hash: 0,
                };
                guarded(do_store, &mut a);
                respond(0);
            }
            OP_EXEC => {
                write_volatile(addr_of_mut!(FAULT_SIGNO), 0);
                write_volatile(addr_of_mut!(EXEC_TARGET), req.a[0]);
                vmspace_exec(req.a[0]);
                let r = addr_of_mut!(RESP);
                (*r).signo = read_volatile(addr_of!(FAULT_SIGNO)) as i64;
                (*r).code = read_volatile(addr_of!(FAULT_CODE)) as i64;
                (*r).addr = read_volatile(addr_of!(FAULT_ADDR));
                (*r).hash = read_volatile(addr_of!(EXEC_STOP_SIGNO));
                (*r).aux = read_volatile(addr_of!(EXEC_STOP_RIP));
                if (*r).signo == 0 {
                    (*r).code = 0;
                    (*r).addr = 0;
                }
                respond(0);
            }
            OP_MINCORE => op_mincore(req.a[0], req.a[1]),
            OP_FORK => {
                op_fork();
            }
            OP_EXIT => exit(req.a[0]),
            OP_PWRITE => op_pwrite(req.a[0], req.a[1] as u8, req.a[2], req.a[3]),
            _ => respond(-ENOSYS),
        }
    }
}
