//! `engine_calls`: random sequences of system calls and memory accesses on a
//! [`vmspace::System`] with several processes and a few MiB of simulated RAM.
//!
//! The input is decoded with `arbitrary::Unstructured` one operation at a
//! time (at most [`MAX_OPS`]), each operation's arguments chosen with the
//! current state in view: addresses near the starts and ends of the
//! process's regions and of addresses the engine returned, small page
//! multiples, valid flag combinations, and now and then a fully random
//! value. After every operation the engine's own invariant checkers
//! (`System::check`, `System::check_rmap`) must pass, plus a few facts every
//! Linux gives (an `mmap` result is a mapped, page-aligned user address...).
//! At the end every process exits and no frame, page of commit charge or
//! reference may be left over (commit charge excepted where Linux itself
//! leaks it: see `State::uncharged_stack`). Any panic is a bug found.

#![no_main]

use std::cell::RefCell;
use std::sync::Once;

use arbitrary::{Arbitrary, Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use vmspace::access::AccessError;
use vmspace::layout::{TASK_SIZE, VSYSCALL_START};
use vmspace::uapi::*;
use vmspace::{Errno, Params, Pid, System, VmFlags};

/// The most operations one input runs.
const MAX_OPS: usize = 64;
/// The most live processes: enough for every sharing pattern, and it keeps
/// the reverse-map check (every mapped page against every process's
/// regions after every operation) fast.
const MAX_PROCS: usize = 6;
const PAGE: u64 = 4096;
/// The most bytes of mapped memory one access, `mincore` or `pwrite` may
/// cover: keeps each input fast (a read of a huge `MAP_NORESERVE` region
/// would otherwise walk millions of zero-page entries).
const MAX_SPAN: u64 = 8 << 20;

#[derive(Arbitrary, Clone, Copy, Debug)]
enum Kind {
    Mmap,
    MmapFile,
    Munmap,
    Mprotect,
    Mremap,
    Brk,
    Madvise,
    Mlock,
    Mlock2,
    Munlock,
    Mlockall,
    Munlockall,
    Msync,
    Mincore,
    Mseal,
    Setrlimit,
    Open,
    Close,
    Ftruncate,
    Pwrite,
    Fork,
    Exit,
    Load,
    Store,
    Exec,
    Peek,
    Poke,
    Touch,
    Inspect,
    Caps,
    Spawn,
}

/// What the harness remembers between operations.
struct State {
    sys: System,
    /// Addresses the engine handed out (mmap, mremap, brk results).
    returned: Vec<u64>,
    /// Whether a grows-down region without `VM_ACCOUNT` (not private and
    /// writable) has existed: Linux's `acct_stack_growth` charges every
    /// stack growth to the commit total, but only `VM_ACCOUNT` regions give
    /// their charge back when unmapped, so growing such a region leaks
    /// commit charge in Linux too.
    uncharged_stack: bool,
}

impl State {
    /// Fails with `what` and every process's maps (the panic hook prints
    /// the operations that led there).
    fn fail(&self, what: &str) -> ! {
        let mut msg = String::new();
        for pid in self.sys.pids() {
            if let Ok(m) = self.sys.maps(pid) {
                msg.push_str(&format!("--- maps of pid {pid}\n{m}"));
            }
        }
        panic!("{what}\n{msg}");
    }

    /// Whether `spawn_default` may be called: with fewer than [`MAX_PROCS`]
    /// live processes. (An image import that ran out of memory part-way
    /// used to leak what it built; fixed, and
    /// `reproducers/engine_calls/spawn-oom-import-leak` replays it.)
    fn can_spawn(&self) -> bool {
        self.sys.pids().count() < MAX_PROCS
    }

    /// Whether `fork` may be called: with fewer than [`MAX_PROCS`] live
    /// processes. (A fork that runs out of memory part-way used to leak the
    /// half-built child; fixed, and `reproducers/engine_calls/fork-oom-leak`
    /// keeps it so.)
    fn can_fork(&self, _pid: Pid) -> bool {
        self.sys.pids().count() < MAX_PROCS
    }

    fn pids(&self) -> Vec<Pid> {
        self.sys.pids().collect()
    }

    /// Regions of `pid` as `(start, end)`.
    fn regions(&self, pid: Pid) -> Vec<(u64, u64)> {
        self.sys
            .process(pid)
            .map(|p| p.mm.vmas().map(|v| (v.start(), v.end())).collect())
            .unwrap_or_default()
    }

    fn fds(&self, pid: Pid) -> Vec<u64> {
        self.sys
            .process(pid)
            .map(|p| p.fds.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Bytes of `pid`'s regions inside `[addr, addr + len)` (saturating).
    fn mapped_in(&self, pid: Pid, addr: u64, len: u64) -> u64 {
        let end = addr.saturating_add(len);
        self.regions(pid)
            .iter()
            .filter(|&&(s, e)| s < end && e > addr)
            .map(|&(s, e)| e.min(end) - s.max(addr))
            .sum()
    }

    /// An address worth trying in `pid`.
    fn addr(&self, u: &mut Unstructured, pid: Pid) -> Result<u64> {
        let regions = self.regions(pid);
        let delta = |u: &mut Unstructured| -> Result<u64> {
            Ok((u.int_in_range(-4i64..=4)? as u64).wrapping_mul(PAGE))
        };
        let a = match u.int_in_range(0u8..=15)? {
            0 => 0,
            1..=3 if !regions.is_empty() => {
                let (s, _) = *u.choose(&regions)?;
                s.wrapping_add(delta(u)?)
            }
            4..=5 if !regions.is_empty() => {
                let (_, e) = *u.choose(&regions)?;
                e.wrapping_add(delta(u)?)
            }
            6..=7 if !regions.is_empty() => {
                let (s, e) = *u.choose(&regions)?;
                let pages = (e - s) / PAGE;
                s + u.int_in_range(0..=pages.saturating_sub(1))? * PAGE
            }
            8..=9 if !self.returned.is_empty() => {
                let r = *u.choose(&self.returned)?;
                r.wrapping_add(delta(u)?)
            }
            10 => {
                let layout = self
                    .sys
                    .process(pid)
                    .map(|p| p.mm.layout)
                    .unwrap_or_default();
                let known = [
                    TASK_SIZE,
                    TASK_SIZE - PAGE,
                    TASK_SIZE - 16 * PAGE,
                    1 << 47,
                    layout.mmap_base,
                    layout.brk,
                    layout.start_brk,
                    layout.start_stack & !(PAGE - 1),
                    0x10000,
                    0x1000,
                    0x4000_0000,
                    0x8000_0000,
                    0x1_0000_0000,
                    0x20_0000,
                    0x7fff_f000_0000,
                    VSYSCALL_START,
                ];
                (*u.choose(&known)?).wrapping_add(delta(u)?)
            }
            11 => u64::arbitrary(u)?,
            12 => u64::arbitrary(u)? & (TASK_SIZE - 1) & !(PAGE - 1),
            _ => {
                // A page-aligned address in a 2 MiB window of a region
                // (crosses page-table boundaries), or the mmap area.
                let base = regions.first().map_or(0x7fff_f7ff_0000, |r| r.0);
                (base & !0x1f_ffff).wrapping_add(u.int_in_range(0u64..=1024)? * PAGE)
            }
        };
        // Now and then misaligned.
        Ok(if u.ratio(1u8, 16)? {
            a.wrapping_add(u.int_in_range(1u64..=PAGE - 1)?)
        } else {
            a
        })
    }

    /// A length worth trying in `pid` (for calls, not accesses).
    fn len(&self, u: &mut Unstructured, pid: Pid) -> Result<u64> {
        let regions = self.regions(pid);
        Ok(match u.int_in_range(0u8..=11)? {
            0 => 0,
            1..=5 => u.int_in_range(1u64..=16)? * PAGE,
            6 if !regions.is_empty() => {
                let (s, e) = *u.choose(&regions)?;
                e - s
            }
            7 => u.int_in_range(1u64..=PAGE * 3)?,
            8 => u.int_in_range(17u64..=1024)? * PAGE,
            9 => *u.choose(&[
                2u64 << 20,
                (2 << 20) - PAGE,
                1 << 30,
                1 << 40,
                TASK_SIZE,
                u64::MAX,
                u64::MAX - PAGE + 1,
                1 << 63,
            ])?,
            _ => u64::arbitrary(u)?,
        })
    }

    /// A length for a memory access, `mincore` or `pwrite`: mostly small;
    /// a wild one only when it covers little mapped memory.
    fn span(&self, u: &mut Unstructured, pid: Pid, addr: u64) -> Result<u64> {
        let len = match u.int_in_range(0u8..=7)? {
            0 => 0,
            1 => 1,
            2..=4 => u.int_in_range(1u64..=8)? * PAGE,
            5 => u.int_in_range(1u64..=3 * PAGE)?,
            6 => u.int_in_range(1u64..=256)? * PAGE,
            _ => u64::arbitrary(u)?,
        };
        Ok(if self.mapped_in(pid, addr, len) > MAX_SPAN {
            4 * PAGE
        } else {
            len
        })
    }

    fn fd(&self, u: &mut Unstructured, pid: Pid) -> Result<u64> {
        let fds = self.fds(pid);
        Ok(match u.int_in_range(0u8..=7)? {
            0 => u64::MAX,
            1 => u.int_in_range(0u64..=8)?,
            2 => u64::arbitrary(u)?,
            _ if !fds.is_empty() => *u.choose(&fds)?,
            _ => u64::MAX,
        })
    }

    fn prot(u: &mut Unstructured) -> Result<u64> {
        Ok(match u.int_in_range(0u8..=15)? {
            0..=11 => u.int_in_range(0u64..=7)?,
            12 => u.int_in_range(0u64..=7)? | PROT_GROWSDOWN,
            13 => u.int_in_range(0u64..=7)? | PROT_GROWSUP,
            14 => u.int_in_range(0u64..=15)?,
            _ => u64::arbitrary(u)?,
        })
    }

    fn offset(u: &mut Unstructured) -> Result<u64> {
        Ok(match u.int_in_range(0u8..=7)? {
            0..=3 => 0,
            4..=5 => u.int_in_range(1u64..=16)? * PAGE,
            6 => u.int_in_range(1u64..=PAGE * 2)?,
            _ => u64::arbitrary(u)?,
        })
    }

    fn mmap_flags(u: &mut Unstructured, anon: bool) -> Result<u64> {
        if u.ratio(1u8, 32)? {
            return u64::arbitrary(u);
        }
        let mut f = *u.choose(&[
            MAP_PRIVATE,
            MAP_PRIVATE,
            MAP_PRIVATE,
            MAP_SHARED,
            MAP_SHARED,
            MAP_SHARED_VALIDATE,
            MAP_DROPPABLE,
            0,
            MAP_TYPE,
        ])?;
        if anon {
            f |= MAP_ANONYMOUS;
        }
        const EXTRA: &[u64] = &[
            MAP_FIXED,
            MAP_FIXED_NOREPLACE,
            MAP_GROWSDOWN,
            MAP_LOCKED,
            MAP_NORESERVE,
            MAP_POPULATE,
            MAP_NONBLOCK,
            MAP_STACK,
            MAP_32BIT,
            MAP_ABOVE4G,
            MAP_DENYWRITE,
            MAP_EXECUTABLE,
            MAP_SYNC,
            MAP_UNINITIALIZED,
            MAP_HUGETLB,
            MAP_HUGETLB | MAP_HUGE_2MB,
            MAP_HUGETLB | MAP_HUGE_1GB,
        ];
        for _ in 0..u.int_in_range(0u8..=3)? {
            f |= *u.choose(EXTRA)?;
        }
        Ok(f)
    }

    /// Runs one operation and logs it; an error ends the sequence.
    fn step(&mut self, u: &mut Unstructured) -> Result<()> {
        let pids = self.pids();
        if pids.is_empty() {
            // Every process has exited: start a new one on the same machine.
            if !self.can_spawn() {
                return Err(arbitrary::Error::NotEnoughData);
            }
            let p = self.sys.spawn_default();
            log(format!("spawn_default() = {p}"));
            return Ok(());
        }
        let pid = *u.choose(&pids)?;
        let kind = Kind::arbitrary(u)?;
        match kind {
            Kind::Mmap | Kind::MmapFile => {
                let anon = matches!(kind, Kind::Mmap);
                let addr = self.addr(u, pid)?;
                let len = self.len(u, pid)?;
                let prot = Self::prot(u)?;
                let flags = Self::mmap_flags(u, anon)?;
                let fd = if anon && !u.ratio(1u8, 8)? {
                    u64::MAX
                } else {
                    self.fd(u, pid)?
                };
                let off = Self::offset(u)?;
                let r = self.sys.mmap(pid, addr, len, prot, flags, fd, off);
                log(format!(
                    "[{pid}] mmap({addr:#x}, {len:#x}, {prot:#x}, {flags:#x}, {fd}, {off:#x}) = {r:?}"
                ));
                self.no_esrch(&r);
                if let Ok(a) = r {
                    self.returned.push(a);
                    self.check_mmap_result(pid, addr, len, flags, a);
                }
                return Ok(());
            }
            Kind::Munmap => {
                let addr = self.addr(u, pid)?;
                let len = self.len(u, pid)?;
                let r = self.sys.munmap(pid, addr, len);
                log(format!("[{pid}] munmap({addr:#x}, {len:#x}) = {r:?}"));
                self.no_esrch(&r);
                if r.is_ok() {
                    let end = addr.saturating_add(len.wrapping_add(PAGE - 1) & !(PAGE - 1));
                    if self.mapped_in(pid, addr, end - addr) != 0 {
                        self.fail("munmap succeeded but the range is still mapped");
                    }
                }
                return Ok(());
            }
            Kind::Mprotect => {
                let addr = self.addr(u, pid)?;
                let len = self.len(u, pid)?;
                let prot = Self::prot(u)?;
                let r = self.sys.mprotect(pid, addr, len, prot);
                log(format!(
                    "[{pid}] mprotect({addr:#x}, {len:#x}, {prot:#x}) = {r:?}"
                ));
                self.no_esrch(&r);
            }
            Kind::Mremap => {
                let old = self.addr(u, pid)?;
                let old_size = if u.ratio(1u8, 4)? {
                    0
                } else {
                    self.len(u, pid)?
                };
                let new_size = self.len(u, pid)?;
                let flags = if u.ratio(1u8, 16)? {
                    u64::arbitrary(u)?
                } else {
                    u.int_in_range(0u64..=7)?
                };
                let new_addr = self.addr(u, pid)?;
                let r = self
                    .sys
                    .mremap(pid, old, old_size, new_size, flags, new_addr);
                log(format!(
                    "[{pid}] mremap({old:#x}, {old_size:#x}, {new_size:#x}, {flags:#x}, {new_addr:#x}) = {r:?}"
                ));
                self.no_esrch(&r);
                if let Ok(a) = r {
                    self.returned.push(a);
                    if a & (PAGE - 1) != 0 || self.mapped_in(pid, a, 1) == 0 {
                        self.fail("mremap returned an address that is not a mapped page");
                    }
                    if flags & MREMAP_FIXED != 0 && a != new_addr {
                        self.fail("mremap(MREMAP_FIXED) moved elsewhere than asked");
                    }
                }
                return Ok(());
            }
            Kind::Brk => {
                let layout = self
                    .sys
                    .process(pid)
                    .map(|p| p.mm.layout)
                    .unwrap_or_default();
                let addr = match u.int_in_range(0u8..=5)? {
                    0 => 0,
                    1 => layout.brk.wrapping_add(u.int_in_range(0u64..=64)? * PAGE),
                    2 => layout.brk.wrapping_sub(u.int_in_range(0u64..=8)? * PAGE),
                    3 => layout
                        .start_brk
                        .wrapping_add(u.int_in_range(0u64..=3 * PAGE)?),
                    4 => layout.brk.wrapping_add(u.int_in_range(1u64..=PAGE)?),
                    _ => self.addr(u, pid)?,
                };
                let r = self.sys.brk(pid, addr);
                log(format!("[{pid}] brk({addr:#x}) = {r:?}"));
                self.no_esrch(&r);
                if let Ok(a) = r {
                    self.returned.push(a & !(PAGE - 1));
                }
                return Ok(());
            }
            Kind::Madvise => {
                let addr = self.addr(u, pid)?;
                let len = self.len(u, pid)?;
                let advice = if u.ratio(1u8, 16)? {
                    u64::arbitrary(u)?
                } else {
                    *u.choose(&[
                        MADV_NORMAL,
                        MADV_RANDOM,
                        MADV_SEQUENTIAL,
                        MADV_WILLNEED,
                        MADV_DONTNEED,
                        MADV_DONTNEED,
                        MADV_FREE,
                        MADV_FREE,
                        MADV_REMOVE,
                        MADV_DONTFORK,
                        MADV_DOFORK,
                        MADV_MERGEABLE,
                        MADV_UNMERGEABLE,
                        MADV_HUGEPAGE,
                        MADV_NOHUGEPAGE,
                        MADV_DONTDUMP,
                        MADV_DODUMP,
                        MADV_WIPEONFORK,
                        MADV_KEEPONFORK,
                        MADV_COLD,
                        MADV_PAGEOUT,
                        MADV_POPULATE_READ,
                        MADV_POPULATE_WRITE,
                        MADV_DONTNEED_LOCKED,
                        MADV_COLLAPSE,
                        MADV_HWPOISON,
                        MADV_SOFT_OFFLINE,
                        MADV_GUARD_INSTALL,
                        MADV_GUARD_REMOVE,
                        5,
                        26,
                    ])?
                };
                let r = self.sys.madvise(pid, addr, len, advice);
                log(format!(
                    "[{pid}] madvise({addr:#x}, {len:#x}, {advice}) = {r:?}"
                ));
                self.no_esrch(&r);
            }
            Kind::Mlock | Kind::Mlock2 | Kind::Munlock => {
                let addr = self.addr(u, pid)?;
                let len = self.len(u, pid)?;
                let flags = match u.int_in_range(0u8..=5)? {
                    0..=2 => 0,
                    3..=4 => MLOCK_ONFAULT,
                    _ => u64::arbitrary(u)?,
                };
                let s = &mut self.sys;
                let (r, name) = match kind {
                    Kind::Mlock => (s.mlock(pid, addr, len), "mlock"),
                    Kind::Mlock2 => (s.mlock2(pid, addr, len, flags), "mlock2"),
                    _ => (s.munlock(pid, addr, len), "munlock"),
                };
                log(format!(
                    "[{pid}] {name}({addr:#x}, {len:#x}, flags {flags:#x}) = {r:?}"
                ));
                self.no_esrch(&r);
            }
            Kind::Mlockall => {
                let flags = if u.ratio(1u8, 16)? {
                    u64::arbitrary(u)?
                } else {
                    u.int_in_range(0u64..=7)?
                };
                let r = self.sys.mlockall(pid, flags);
                log(format!("[{pid}] mlockall({flags:#x}) = {r:?}"));
                self.no_esrch(&r);
            }
            Kind::Munlockall => {
                let r = self.sys.munlockall(pid);
                log(format!("[{pid}] munlockall() = {r:?}"));
                self.no_esrch(&r);
            }
            Kind::Msync => {
                let addr = self.addr(u, pid)?;
                let len = self.len(u, pid)?;
                let flags = if u.ratio(1u8, 16)? {
                    u64::arbitrary(u)?
                } else {
                    u.int_in_range(0u64..=7)?
                };
                let r = self.sys.msync(pid, addr, len, flags);
                log(format!(
                    "[{pid}] msync({addr:#x}, {len:#x}, {flags:#x}) = {r:?}"
                ));
                self.no_esrch(&r);
            }
            Kind::Mincore => {
                let addr = self.addr(u, pid)?;
                let len = self.span(u, pid, addr)?;
                let r = self.sys.mincore(pid, addr, len);
                log(format!(
                    "[{pid}] mincore({addr:#x}, {len:#x}) = {:?}",
                    r.as_ref().map(|v| v.len())
                ));
                self.no_esrch(&r);
                if let Ok(v) = &r {
                    if v.len() as u64 != len.div_ceil(PAGE) {
                        self.fail("mincore gave a vector of the wrong length");
                    }
                }
            }
            Kind::Mseal => {
                let addr = self.addr(u, pid)?;
                let len = self.len(u, pid)?;
                let flags = if u.ratio(1u8, 8)? {
                    u64::arbitrary(u)?
                } else {
                    0
                };
                let r = self.sys.mseal(pid, addr, len, flags);
                log(format!(
                    "[{pid}] mseal({addr:#x}, {len:#x}, {flags:#x}) = {r:?}"
                ));
                self.no_esrch(&r);
            }
            Kind::Setrlimit => {
                let resource = if u.ratio(1u8, 8)? {
                    u64::arbitrary(u)?
                } else {
                    *u.choose(&[
                        RLIMIT_AS,
                        RLIMIT_DATA,
                        RLIMIT_STACK,
                        RLIMIT_MEMLOCK,
                        RLIMIT_AS,
                        RLIMIT_DATA,
                        RLIMIT_STACK,
                        RLIMIT_MEMLOCK,
                        RLIMIT_CPU,
                        RLIMIT_FSIZE,
                        RLIMIT_NOFILE,
                        RLIMIT_RSS,
                    ])?
                };
                let lim = |u: &mut Unstructured| -> Result<u64> {
                    Ok(match u.int_in_range(0u8..=5)? {
                        0 => RLIM_INFINITY,
                        1 => 0,
                        2..=3 => u.int_in_range(0u64..=64)? * PAGE,
                        4 => u.int_in_range(0u64..=512)? << 20,
                        _ => u64::arbitrary(u)?,
                    })
                };
                let a = lim(u)?;
                let b = if u.ratio(1u8, 2)? { a } else { lim(u)? };
                let (soft, hard) = if u.ratio(7u8, 8)? {
                    (a.min(b), a.max(b))
                } else {
                    (a, b)
                };
                let r = self.sys.setrlimit(pid, resource, soft, hard);
                log(format!(
                    "[{pid}] setrlimit({resource}, {soft:#x}, {hard:#x}) = {r:?}"
                ));
                self.no_esrch(&r);
            }
            Kind::Open if u.ratio(1u8, 4)? => {
                // A disk file: one of the storage's, or one it lacks.
                let file = vmspace::store::StoreFile(u.int_in_range(1u64..=3)?);
                let size = match u.int_in_range(0u8..=3)? {
                    0 => 0,
                    1 => u.int_in_range(0u64..=16)? * PAGE,
                    2 => u.int_in_range(0u64..=16 * PAGE)?,
                    _ => 8 * PAGE,
                };
                let writable = bool::arbitrary(u)?;
                let dev = vmspace::file::Dev { major: 8, minor: 1 };
                let r = self
                    .sys
                    .open_disk_file(pid, "/disk/f", dev, file.0, file, size, writable);
                log(format!(
                    "[{pid}] open_disk_file({file:?}, size {size:#x}, writable {writable}) = {r:?}"
                ));
                self.no_esrch(&r);
            }
            Kind::Open => {
                let path = *u.choose(&[
                    "a",
                    "a",
                    "b",
                    "c",
                    "/a",
                    "",
                    "d/e",
                    "f\u{0}",
                    "a-very-long-name-a-very-long-name-a-very-long-name-a-very-long-name-a-very-long-name-a-very-long-name-a-very-long-name-a-very-long-name-a-very-long-name-a-very-long-name-a-very-long-name-a-very-long-name-a-very-long-name-a-very-long-name-a-very-long-name-xx",
                ])?;
                let flags = if u.ratio(1u8, 16)? {
                    u64::arbitrary(u)?
                } else {
                    let mut f = u.int_in_range(0u64..=3)?;
                    for bit in [O_CREAT, O_EXCL, O_TRUNC, O_APPEND] {
                        if u.ratio(1u8, if bit == O_CREAT { 2 } else { 5 })? {
                            f |= bit;
                        }
                    }
                    f
                };
                let mode = *u.choose(&[0o644, 0o600, 0o666, 0o400, 0o200, 0, 0o7777])?;
                let r = self.sys.open(pid, path, flags, mode);
                log(format!(
                    "[{pid}] open({path:?}, {flags:#o}, {mode:#o}) = {r:?}"
                ));
                self.no_esrch(&r);
            }
            Kind::Close => {
                let fd = self.fd(u, pid)?;
                let r = self.sys.close(pid, fd);
                log(format!("[{pid}] close({fd}) = {r:?}"));
                self.no_esrch(&r);
            }
            Kind::Ftruncate => {
                let fd = self.fd(u, pid)?;
                let len = match u.int_in_range(0u8..=5)? {
                    0 => 0,
                    1..=2 => u.int_in_range(0u64..=16)? * PAGE,
                    3..=4 => u.int_in_range(0u64..=16 * PAGE)?,
                    _ => u64::arbitrary(u)?,
                };
                let r = self.sys.ftruncate(pid, fd, len);
                log(format!("[{pid}] ftruncate({fd}, {len:#x}) = {r:?}"));
                self.no_esrch(&r);
            }
            Kind::Pwrite => {
                let fd = self.fd(u, pid)?;
                let byte = u8::arbitrary(u)?;
                let count = match u.int_in_range(0u8..=5)? {
                    0 => 0,
                    1..=2 => u.int_in_range(1u64..=4 * PAGE)?,
                    3..=4 => u.int_in_range(1u64..=16)? * PAGE,
                    _ => u64::arbitrary(u)?,
                };
                let off = Self::offset(u)?;
                // Writing more than a few MiB only fills RAM slowly.
                let count =
                    if count > MAX_SPAN && off.checked_add(count).is_some_and(|e| (e as i64) > 0) {
                        MAX_SPAN
                    } else {
                        count
                    };
                let r = self.sys.pwrite(pid, fd, byte, count, off);
                log(format!(
                    "[{pid}] pwrite({fd}, {byte:#x}, {count:#x}, {off:#x}) = {r:?}"
                ));
                self.no_esrch(&r);
            }
            Kind::Fork => {
                if !self.can_fork(pid) {
                    log(format!("[{pid}] fork() skipped"));
                    return Ok(());
                }
                let r = self.sys.fork(pid);
                log(format!("[{pid}] fork() = {r:?}"));
                self.no_esrch(&r);
            }
            Kind::Exit => {
                let r = self.sys.exit(pid);
                log(format!("[{pid}] exit() = {r:?}"));
                if r.is_err() {
                    self.fail("exit of a live process failed");
                }
            }
            Kind::Load | Kind::Store | Kind::Exec | Kind::Touch => {
                let addr = self.addr(u, pid)?;
                let len = self.span(u, pid, addr)?;
                let byte = u8::arbitrary(u)?;
                let write = bool::arbitrary(u)?;
                let s = &mut self.sys;
                let (r, name) = match kind {
                    Kind::Load => (s.load(pid, addr, len).map(|_| ()), "load"),
                    Kind::Store => (s.store(pid, addr, len, byte), "store"),
                    Kind::Exec => (s.exec(pid, addr), "exec"),
                    _ => (s.touch(pid, addr, write), "touch"),
                };
                log(format!(
                    "[{pid}] {name}({addr:#x}, {len:#x}, byte {byte:#x}, write {write}) = {r:?}"
                ));
                match r {
                    Err(AccessError::NoProcess) => self.fail("access to a live process found none"),
                    Err(AccessError::Killed(_)) if self.sys.process(pid).is_some() => {
                        self.fail("process killed by the OOM killer is still alive")
                    }
                    _ => {}
                }
            }
            Kind::Peek | Kind::Poke => {
                let addr = self.addr(u, pid)?;
                let len = self.span(u, pid, addr)?;
                let byte = u8::arbitrary(u)?;
                let r = if matches!(kind, Kind::Peek) {
                    self.sys.peek(pid, addr, len).map(|_| ())
                } else {
                    self.sys.poke(pid, addr, len, byte)
                };
                log(format!(
                    "[{pid}] {kind:?}({addr:#x}, {len:#x}, {byte:#x}) = {r:?}"
                ));
                self.no_esrch(&r);
            }
            Kind::Inspect => {
                let s = &self.sys;
                let all = [
                    s.maps(pid),
                    s.smaps(pid),
                    s.smaps_rollup(pid),
                    s.status(pid),
                ];
                log(format!("[{pid}] maps/smaps/smaps_rollup/status"));
                if all.iter().any(|r| r.is_err()) {
                    self.fail("an inspection of a live process failed");
                }
                // The reverse map of every mapped frame.
                let regions = self.regions(pid);
                for (start, end) in regions.into_iter().take(8) {
                    let mut a = start;
                    while a < end && a < start + 16 * PAGE {
                        if let Some(f) = self.sys.frame_at(pid, a) {
                            let _ = self.sys.rmap(f);
                        }
                        a += PAGE;
                    }
                }
            }
            Kind::Spawn => {
                // Another process from the default image (it maps the
                // program's pages already in the page cache).
                if self.can_spawn() {
                    let p = self.sys.spawn_default();
                    log(format!("spawn_default() = {p}"));
                }
            }
            Kind::Caps => {
                let bits = u8::arbitrary(u)?;
                if let Some(p) = self.sys.process_mut(pid) {
                    p.mm.caps.ipc_lock = bits & 1 != 0;
                    p.mm.caps.sys_rawio = bits & 2 != 0;
                    p.mm.caps.sys_admin = bits & 4 != 0;
                    p.mm.caps.sys_resource = bits & 8 != 0;
                }
                log(format!("[{pid}] caps = {bits:#x}"));
            }
        }
        Ok(())
    }

    fn no_esrch<T: std::fmt::Debug>(&self, r: &std::result::Result<T, Errno>) {
        if matches!(r, Err(Errno::ESRCH)) {
            self.fail("a call on a live process gave ESRCH");
        }
    }

    /// What Linux guarantees of a successful `mmap`.
    fn check_mmap_result(&self, pid: Pid, addr: u64, len: u64, flags: u64, a: u64) {
        if a & (PAGE - 1) != 0 {
            self.fail("mmap returned an unaligned address");
        }
        if a >= TASK_SIZE || a.saturating_add(len) > TASK_SIZE {
            self.fail("mmap returned a range outside user space");
        }
        if self.mapped_in(pid, a, 1) == 0 {
            self.fail("mmap returned an address with nothing mapped there");
        }
        if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0 && a != addr {
            self.fail("mmap(MAP_FIXED) mapped elsewhere than asked");
        }
    }

    fn check_invariants(&self) {
        if let Err(e) = self.sys.check() {
            self.fail(&format!("System::check: {e}"));
        }
        if let Err(e) = self.sys.check_rmap() {
            self.fail(&format!("System::check_rmap: {e}"));
        }
    }
}

thread_local! {
    /// The operations of the current input, printed by the panic hook.
    static LOG: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn log(line: String) {
    LOG.with(|l| l.borrow_mut().push(line));
}

/// Prints the operation log when anything panics (an engine assertion or
/// overflow as much as a failed check), before libFuzzer's hook aborts.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            LOG.with(|l| {
                if let Ok(l) = l.try_borrow() {
                    let mut out = String::from("operations:\n");
                    for (i, line) in l.iter().enumerate() {
                        out.push_str(&format!("  #{i}: {line}\n"));
                    }
                    eprint!("{out}");
                }
            });
            previous(info);
        }));
    });
}

fn params(u: &mut Unstructured) -> Result<Params> {
    let mut p = Params::default();
    let set = |p: &mut Params, k: &str, v: u64| {
        p.set(k, v).expect("valid parameter");
    };
    set(
        &mut p,
        "ram",
        *u.choose(&[2u64 << 20, 4 << 20, 4 << 20, 8 << 20])?,
    );
    let mode = u.int_in_range(0u64..=2)?;
    set(&mut p, "overcommit_memory", mode);
    if mode == 2 || u.ratio(1u8, 4)? {
        // With a few MiB of RAM the default reserves leave nothing.
        set(
            &mut p,
            "admin_reserve_kbytes",
            *u.choose(&[0, 64, 1024, 8192])?,
        );
        set(
            &mut p,
            "user_reserve_kbytes",
            *u.choose(&[0, 128, 1024, 131072])?,
        );
        set(&mut p, "overcommit_ratio", *u.choose(&[50, 100, 200, 0])?);
        set(&mut p, "swap", *u.choose(&[0, 1 << 20, 8 << 20])?);
    }
    if u.ratio(1u8, 4)? {
        set(&mut p, "max_map_count", *u.choose(&[8, 16, 24, 40, 65530])?);
    }
    if u.ratio(1u8, 8)? {
        set(
            &mut p,
            "mmap_min_addr",
            *u.choose(&[0, 4096, 65536, 1 << 20])?,
        );
    }
    if u.ratio(1u8, 8)? {
        set(
            &mut p,
            "stack_guard_gap",
            *u.choose(&[0, 4096, 256 << 12, 1 << 30])?,
        );
    }
    if u.ratio(1u8, 8)? {
        set(
            &mut p,
            "fault_around_bytes",
            *u.choose(&[0, 4096, 16384, 64 << 10, 1 << 20])?,
        );
    }
    Ok(p)
}

fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(params) = params(&mut u) else { return };
    install_panic_hook();
    LOG.with(|l| l.borrow_mut().clear());
    log(format!("System::new({params:?})"));
    let mut st = State {
        sys: System::new(params),
        returned: Vec::new(),
        uncharged_stack: false,
    };
    // Disk files (see Kind::Open): two in the storage, a third missing.
    let mut disk = vmspace::store::MemStore::default();
    disk.files
        .insert(vmspace::store::StoreFile(1), vec![0x5a; 8 * PAGE as usize]);
    disk.files.insert(vmspace::store::StoreFile(2), Vec::new());
    st.sys.set_store(disk);
    let pid = st.sys.spawn_default();
    log(format!("spawn_default() = {pid}"));
    st.check_invariants();
    for _ in 0..MAX_OPS {
        if u.is_empty() {
            break;
        }
        if st.step(&mut u).is_err() {
            break;
        }
        st.check_invariants();
        st.uncharged_stack |= st.sys.pids().any(|pid| {
            st.sys.process(pid).is_some_and(|p| {
                p.mm.vmas().any(|v| {
                    let f = v.flags();
                    f.contains(VmFlags::GROWSDOWN) && !f.contains(VmFlags::ACCOUNT)
                })
            })
        });
    }
    // Every process exits: no frame but the zero page and the page cache
    // may stay, and no commit charge.
    for pid in st.pids() {
        if st.sys.exit(pid).is_err() {
            st.fail("exit of a live process failed");
        }
        st.check_invariants();
    }
    // Pages the CPU's LRU batches still hold go when they drain.
    st.sys.kernel.phys.lru_add_drain();
    let cached = st.sys.kernel.cache.frames().count() as u64;
    let used = st.sys.kernel.phys.used_frames();
    if used != 1 + cached {
        st.fail(&format!(
            "frames leaked: {used} in use after every process exited, {cached} cached + the zero page expected"
        ));
    }
    if st.sys.kernel.committed != 0 && !st.uncharged_stack {
        st.fail(&format!(
            "commit charge leaked: {} pages committed after every process exited",
            st.sys.kernel.committed
        ));
    }
}

fuzz_target!(|data: &[u8]| run(data));
