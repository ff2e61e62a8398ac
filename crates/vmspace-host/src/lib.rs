//! vmspace-host: runs vmspace scenario calls on the running Linux kernel.
//!
//! The calls run inside a *puppet*: a tiny static x86-64 executable (built
//! from `puppet/puppet.rs` with no std, no libc and no heap) that the
//! runner starts from a memfd with address-space randomisation off, the
//! default limits of an unprivileged process and, when the runner is root,
//! no privileges. The puppet lives on a private stack in its `.bss`, so a
//! scenario may do anything to `[stack]`; it never maps or allocates memory,
//! so its address space is exactly what the scenario made of it.
//!
//! The runner talks to each puppet over a Unix stream socket: raw system
//! calls (the raw return value, `-errno` on failure), loads and stores made
//! by the puppet's CPU (reporting the signal the kernel delivered, exactly),
//! one-instruction `exec` by single-stepping, `mincore`, `fork` and `exit`.
//! It reads the puppet's `/proc/PID/*` files directly and peeks and pokes
//! through `/proc/PID/mem`.
//!
//! ```no_run
//! use vmspace_host::{Access, Host};
//! let host = Host::new()?;
//! let mut p = host.spawn()?;
//! let a = p.syscall(9, [0, 4096, 3, 0x22, u64::MAX, 0])? as u64; // mmap
//! assert!(matches!(p.load(a, 4096)?, Access::Done(_)));
//! println!("{}", p.proc_text("maps")?);
//! # Ok::<(), vmspace_host::HostError>(())
//! ```
//!
//! # How the puppet runs a call
//!
//! - **System calls** are made with the request's number and arguments; a
//!   pointer argument can point at request data copied into the puppet's
//!   `.bss` (`open`'s path, `setrlimit`'s `struct rlimit`).
//! - **`load` / `store`** touch the first byte of each page on its own, then
//!   the rest of the page, in ascending order, under a fault guard: the
//!   puppet's `SIGSEGV`/`SIGBUS` handler (on a `.bss` signal stack) records
//!   `si_signo`, `si_code`, `si_addr` and resumes at a recovery stub, like
//!   `longjmp`.
//! - **`exec(addr)`** `iretq`s to `addr` with the trap flag set, every
//!   general register a junk value (non-canonical as a 64-bit address, page
//!   0 as a 32-bit one) and `rsp` on a scratch stack, so at most one
//!   instruction runs (a `syscall` instruction may let the next one run too,
//!   as the kernel returns from it). Whatever signal ends the step —
//!   `SIGTRAP` after the instruction, or anything the instruction raised —
//!   the handler rewrites the interrupted context (`rip` to a landing pad,
//!   `rsp` back, `eflags` = `0x202`, default x87/SSE control words) and the
//!   puppet carries on. The fetch failed exactly when the signal is a
//!   `SIGSEGV`/`SIGBUS` page fault (`trapno` 14) with the instruction-fetch
//!   bit (`X86_PF_INSTR`) in the error code, on `addr`'s page — or the
//!   `iretq` itself faulted (a non-canonical `addr`, reported as a jump there
//!   would be: `SIGSEGV`/`SI_KERNEL`, address 0).
//! - **`mincore`** fills a `.bss` vector chunk by chunk and streams it.
//! - **`fork`** makes a new socket pair, forks (`clone(SIGCHLD)`), and the
//!   child serves the new socket (moved to the channel's fd) while the
//!   parent passes the other end to the runner with `SCM_RIGHTS`. Puppets
//!   ignore `SIGCHLD`, so their children are reaped by the kernel.
//!
//! This crate is the only place in vmspace with `unsafe` code (besides the
//! puppet itself, which is all `unsafe`).

mod host;
pub mod maps;
mod proto;
mod puppet;
mod sys;

use std::fmt;

pub use host::{puppet_image, Host, HostOptions, EIGHT_MIB};
pub use puppet::Puppet;

/// A failure of the runner or of a puppet (not of a call): the helper died,
/// hung, or could not be started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostError(pub String);

impl HostError {
    pub(crate) fn new(msg: impl Into<String>) -> HostError {
        HostError(msg.into())
    }

    pub(crate) fn io(what: &str, e: std::io::Error) -> HostError {
        HostError(format!("{what}: {e}"))
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HostError {}

/// An errno value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i32);

/// A signal as the kernel delivered it to the puppet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SigInfo {
    pub signo: i32,
    pub code: i32,
    pub addr: u64,
}

/// The result of a memory access made by the puppet's CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access<T> {
    /// It completed (for `load`: with this hash).
    Done(T),
    /// It faulted: the signal of the first faulting byte.
    Fault(SigInfo),
}

/// How an `exec` single step ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecReport {
    /// The instruction fetch at the address faulted: the signal.
    pub fault: Option<SigInfo>,
    /// The signal that ended the step: `SIGTRAP` after one instruction, or
    /// whatever the instruction raised (`SIGSEGV`, `SIGILL`, `SIGFPE`, ...).
    pub stop_signo: i32,
    /// The instruction pointer when the step ended.
    pub stop_rip: u64,
}

/// FNV-1a, 64-bit (the hash of `load` and `peek`).
pub mod fnv1a {
    /// The offset basis.
    pub const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    /// The prime.
    pub const PRIME: u64 = 0x0100_0000_01b3;

    /// Continues hash `h` over `bytes`.
    pub fn update(mut h: u64, bytes: &[u8]) -> u64 {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(PRIME);
        }
        h
    }

    /// The hash of `bytes`.
    pub fn hash(bytes: &[u8]) -> u64 {
        update(OFFSET, bytes)
    }

    /// The hash of `count` copies of `byte`.
    pub fn repeated(byte: u8, count: u64) -> u64 {
        let mut h = OFFSET;
        for _ in 0..count {
            h ^= u64::from(byte);
            h = h.wrapping_mul(PRIME);
        }
        h
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn known_value() {
            assert_eq!(super::hash(b"a"), 0xaf63dc4c8601ec8c);
            assert_eq!(super::repeated(b'a', 1), 0xaf63dc4c8601ec8c);
        }
    }
}

/// The frame number of the kernel's shared zero page, learnt by reading a
/// never-written anonymous page of this process and looking it up in
/// `/proc/self/pagemap`; `None` when frame numbers are hidden (unprivileged).
pub fn zero_page_pfn() -> Option<u64> {
    use std::os::unix::fs::FileExt;
    // SAFETY: a fresh private anonymous mapping, read once and unmapped;
    // no other code holds a reference to it.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return None;
        }
        let _ = std::ptr::read_volatile(p.cast::<u8>());
        let f = std::fs::File::open("/proc/self/pagemap").ok();
        let mut buf = [0u8; 8];
        let ok = f.is_some_and(|f| f.read_exact_at(&mut buf, (p as u64 / 4096) * 8).is_ok());
        libc::munmap(p, 4096);
        let e = u64::from_le_bytes(buf);
        let pfn = e & ((1 << 55) - 1);
        (ok && e >> 63 == 1 && pfn != 0).then_some(pfn)
    }
}

/// This process's own soft and hard limits for `RLIMIT_STACK`, `RLIMIT_AS`,
/// `RLIMIT_DATA` and `RLIMIT_MEMLOCK`, in that order (`u64::MAX` is
/// unlimited; an unreadable limit reads as unlimited). The runner is the
/// process that reads and writes puppets' memory through `/proc/PID/mem`,
/// and a stack such an access grows is held to these limits.
pub fn own_rlimits() -> [(u64, u64); 4] {
    let get = |r: u32| sys::getrlimit(r).map_or((u64::MAX, u64::MAX), |l| (l.rlim_cur, l.rlim_max));
    [
        get(libc::RLIMIT_STACK),
        get(libc::RLIMIT_AS),
        get(libc::RLIMIT_DATA),
        get(libc::RLIMIT_MEMLOCK),
    ]
}
