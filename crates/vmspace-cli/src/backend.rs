//! The seam between the scenario runner and a kernel.
//!
//! A scenario statement is evaluated to a [`Call`] (every argument a plain
//! integer or a path) and handed to a [`Backend`]: the vmspace engine or the
//! running Linux kernel. Both answer with an [`Outcome`], which the output
//! module prints in one format, so the two runs compare line by line.

use std::fmt;

/// A process as the scenario names it: its pid in that backend.
pub type Pid = u64;

/// One evaluated statement: a system call, a memory access or an
/// inspection, with Linux x86-64 argument values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    Mmap {
        addr: u64,
        len: u64,
        prot: u64,
        flags: u64,
        fd: u64,
        off: u64,
    },
    Munmap {
        addr: u64,
        len: u64,
    },
    Mprotect {
        addr: u64,
        len: u64,
        prot: u64,
    },
    /// `new_addr` is the fifth argument (0 when the scenario gives four).
    Mremap {
        old_addr: u64,
        old_size: u64,
        new_size: u64,
        flags: u64,
        new_addr: u64,
    },
    Brk {
        addr: u64,
    },
    Madvise {
        addr: u64,
        len: u64,
        advice: u64,
    },
    Mlock {
        addr: u64,
        len: u64,
    },
    Mlock2 {
        addr: u64,
        len: u64,
        flags: u64,
    },
    Munlock {
        addr: u64,
        len: u64,
    },
    Mlockall {
        flags: u64,
    },
    Munlockall,
    Msync {
        addr: u64,
        len: u64,
        flags: u64,
    },
    Mincore {
        addr: u64,
        len: u64,
    },
    Mseal {
        addr: u64,
        len: u64,
        flags: u64,
    },
    RemapFilePages {
        start: u64,
        size: u64,
        prot: u64,
        pgoff: u64,
        flags: u64,
    },
    Setrlimit {
        resource: u64,
        soft: u64,
        hard: u64,
    },
    Open {
        path: String,
        flags: u64,
        mode: u64,
    },
    Close {
        fd: u64,
    },
    Ftruncate {
        fd: u64,
        len: u64,
    },
    Pwrite {
        fd: u64,
        byte: u64,
        count: u64,
        off: u64,
    },
    Fork,
    Exit {
        code: u64,
    },
    Load {
        addr: u64,
        len: u64,
    },
    Store {
        addr: u64,
        len: u64,
        byte: u64,
    },
    Exec {
        addr: u64,
    },
    Peek {
        addr: u64,
        len: u64,
    },
    Poke {
        addr: u64,
        len: u64,
        byte: u64,
    },
    Maps,
    Smaps,
    SmapsRollup,
    Status,
    /// The page faults the process took since it started or was forked
    /// (`minflt`/`majflt` of `/proc/PID/stat`, less what it had when the
    /// scenario first saw it).
    Faults,
}

impl Call {
    /// The operation's name as the scenario spells it (JSON `"op"`).
    pub fn op(&self) -> &'static str {
        match self {
            Call::Mmap { .. } => "mmap",
            Call::Munmap { .. } => "munmap",
            Call::Mprotect { .. } => "mprotect",
            Call::Mremap { .. } => "mremap",
            Call::Brk { .. } => "brk",
            Call::Madvise { .. } => "madvise",
            Call::Mlock { .. } => "mlock",
            Call::Mlock2 { .. } => "mlock2",
            Call::Munlock { .. } => "munlock",
            Call::Mlockall { .. } => "mlockall",
            Call::Munlockall => "munlockall",
            Call::Msync { .. } => "msync",
            Call::Mincore { .. } => "mincore",
            Call::Mseal { .. } => "mseal",
            Call::RemapFilePages { .. } => "remap_file_pages",
            Call::Setrlimit { .. } => "setrlimit",
            Call::Open { .. } => "open",
            Call::Close { .. } => "close",
            Call::Ftruncate { .. } => "ftruncate",
            Call::Pwrite { .. } => "pwrite",
            Call::Fork => "fork",
            Call::Exit { .. } => "exit",
            Call::Load { .. } => "load",
            Call::Store { .. } => "store",
            Call::Exec { .. } => "exec",
            Call::Peek { .. } => "peek",
            Call::Poke { .. } => "poke",
            Call::Maps => "maps",
            Call::Smaps => "smaps",
            Call::SmapsRollup => "smaps_rollup",
            Call::Status => "status",
            Call::Faults => "faults",
        }
    }
}

/// A signal delivered to the process by a faulting access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signal {
    /// `SIGSEGV` = 11, `SIGBUS` = 7, ...
    pub signo: i32,
    /// `si_code`: `SEGV_MAPERR` = 1, `SEGV_ACCERR` = 2, `BUS_ADRERR` = 2, ...
    pub code: i32,
    /// `si_addr`.
    pub addr: u64,
}

/// What a backend answers for one [`Call`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A successful call whose result prints in decimal (0, an fd, a pid, a count).
    Value(i64),
    /// A successful call whose result is an address (mmap, mremap, brk): hex.
    Addr(u64),
    /// A failed system call: `-1 ERRNAME (text)`; the raw errno number.
    Error(i32),
    /// A completed `load`/`peek`: FNV-1a 64 of the bytes read.
    Hash(u64),
    /// A faulting access.
    Signal(Signal),
    /// A successful `mincore`: one digit per page, each 0 or 1 (the low bit
    /// of the vector byte).
    Mincore(String),
    /// An inspection call's text (`maps()`, `smaps()`, ...).
    Text(String),
    /// `exit()`: the process is gone (`= ?`).
    Exited,
    /// The process was killed during the statement (the out-of-memory
    /// killer's `SIGKILL`): `= ? +++ killed by SIGKILL (out of memory) +++`.
    Killed(i32),
}

/// A failure of the backend itself (not of the call), e.g. the host helper
/// process died. The run stops with this message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendError(pub String);

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BackendError {}

/// A kernel that runs scenario calls: the engine or the real one.
pub trait Backend {
    /// The pid of the first process.
    fn main_pid(&self) -> Pid;
    /// Runs one call in process `pid`. For [`Call::Fork`] a successful
    /// outcome is `Outcome::Value(child_pid)`.
    fn call(&mut self, pid: Pid, call: &Call) -> Result<Outcome, BackendError>;
}

/// FNV-1a, 64-bit: the hash `load` and `peek` report.
///
/// ```
/// use vmspace_cli::backend::Fnv1a;
/// let mut h = Fnv1a::new();
/// h.write(b"a");
/// assert_eq!(h.finish(), 0xaf63dc4c8601ec8c);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Fnv1a(u64);

impl Fnv1a {
    /// The offset basis.
    pub const fn new() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
    /// Feeds bytes.
    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    /// Feeds `count` copies of one byte.
    pub fn write_repeated(&mut self, byte: u8, count: u64) {
        for _ in 0..count {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    /// The hash so far.
    pub const fn finish(self) -> u64 {
        self.0
    }
}

impl Default for Fnv1a {
    fn default() -> Self {
        Self::new()
    }
}

/// A real process's state as `/proc` shows it: what `--from-proc DIR` reads
/// from files, and what the host backend captures from its helper process
/// before the first statement, so the engine can start from the same layout.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcSnapshot {
    /// `/proc/PID/maps` text (required).
    pub maps: String,
    /// `/proc/PID/smaps` text, if known: tells which regions hold anonymous
    /// pages (and so have an `anon_vma`).
    pub smaps: Option<String>,
    /// `/proc/PID/stat` text: start_brk, start_stack, code and data bounds.
    pub stat: Option<String>,
    /// The current program break.
    pub brk: Option<u64>,
    /// `/proc/PID/limits` text.
    pub limits: Option<String>,
    /// Which pages are resident, one run a line: `start-end kind` in hex,
    /// kind `anon`, `file`, `zero` or `special` (from `/proc/PID/pagemap`).
    pub resident: Option<String>,
    /// The real-kernel helper's own program image `[start, end)`, when the
    /// snapshot is of the helper: after a `fork` both helper processes fault
    /// their whole image in (reading text, writing data), and a comparison
    /// has to apply the same touches to the engine's processes.
    pub helper_image: Option<(u64, u64)>,
}

/// A machine parameter (`set KEY=VALUE` / `--set KEY=VALUE`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    /// The parameter's name, e.g. `mmap_min_addr`.
    pub key: String,
    /// Its value.
    pub value: u64,
}

/// The text `faults()` prints: minor and major fault counts, named as
/// proc(5) names the `/proc/PID/stat` fields.
pub fn faults_text(minflt: u64, majflt: u64) -> String {
    format!("minflt: {minflt}\nmajflt: {majflt}\n")
}
