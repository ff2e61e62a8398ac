//! Property test: the bytes of tmpfs files, through the page cache, against
//! a reference model of file contents.
//!
//! Random sequences of `open`/`close`/`pwrite`/`ftruncate`, file `mmap`
//! (`MAP_SHARED` or `MAP_PRIVATE`, `PROT_READ` or `PROT_READ|PROT_WRITE`, at
//! page offsets inside or past the end of the file), `store`/`load`,
//! `poke`/`peek` (forced access through `/proc/PID/mem`), `munmap`, `msync`,
//! `fork` and `exit` run over a few processes and two files, against both
//! [`System`] and [`Model`]. After every step the test checks that
//! - every access ends as the model says: a `load`/`peek` hash is the FNV-1a
//!   hash of the bytes the model predicts, a `store` into a read-only
//!   mapping is `SIGSEGV`/`SEGV_ACCERR`, an access to a page wholly past the
//!   end of the file is `SIGBUS`/`BUS_ADRERR` (`EIO` for `peek`/`poke`),
//!   and system calls return what the model says;
//! - each file's size and bytes (its page-cache pages, read without side
//!   effects) are the model's, and no page past the end stays cached;
//! - in "observing" cases (half of them) additionally, each file read back
//!   through a fresh `MAP_SHARED` `PROT_READ` mapping in an observer
//!   process gives the model's bytes page by page and `SIGBUS` on the page
//!   after the last, and every page of every mapping of every process
//!   `peek`s as the model says (these accesses fault pages in, which is why
//!   only half of the cases make them: the others keep holes and
//!   not-present entries around for the random operations to meet);
//! - `sys.check()` and `sys.check_rmap()` pass.
//!
//! The model, written from Linux's semantics (mm/memory.c, mm/shmem.c,
//! mm/truncate.c, mm/gup.c), not from the engine:
//! - A file is its bytes up to the end of its last page: a `MAP_SHARED`
//!   store into the tail of the last page, past `i_size`, lands in the page
//!   cache and stays there; growing the file (`ftruncate` up, or a `pwrite`
//!   further on) exposes it, since tmpfs zeroes nothing on extension.
//! - `pwrite` writes the page cache and grows the file to its end; a
//!   `pwrite` of zero bytes changes nothing (`generic_write_checks`
//!   returns 0 before anything is written).
//! - `ftruncate` to a size not above the current one (equal included:
//!   `shmem_setattr` tests `newsize <= oldsize`) zeroes the tail of the
//!   partial last page (`shmem_truncate_range`) and drops every page past
//!   it, unmapping them everywhere, private copies included
//!   (`unmap_mapping_range(.., even_cows = 1)` from `round_up(newsize)`);
//!   private copies of the partial last page stay.
//! - A shared mapping shows the page cache; a store through it (or a poke
//!   into a writable one) writes the file. A page of a mapping wholly past
//!   the end of the file faults with `SIGBUS`, for reads and writes,
//!   shared and private (`shmem_get_folio` refuses `index >= i_size`).
//! - A private mapping shows the page cache until the page is written: a
//!   store into a writable private mapping, or a poke into any private
//!   mapping (`FOLL_FORCE` breaks copy-on-write even in a read-only one),
//!   copies the whole page (tail past EOF included) and from then on that
//!   process sees its copy, never later file writes, and the file never
//!   sees the copy. A poke into a shared read-only mapping is refused
//!   (`EIO`): it is not a copy-on-write mapping.
//! - `fork` copies the mapping table and the private copies (each process
//!   has its own afterwards); `exit` and `munmap` drop them.
//!
//! On failure the message lists the steps run, with the pids and addresses
//! the engine chose. `FILE_PROPS_CASES=n` runs more (or fewer) cases.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use proptest::prelude::*;
use vmspace::access::AccessError;
use vmspace::fault::{SigInfo, BUS_ADRERR, SEGV_ACCERR, SIGBUS, SIGSEGV};
use vmspace::mm::Rlimits;
use vmspace::uapi::*;
use vmspace::{AddressSpace, Errno, Params, Pid, System};

const PAGE: u64 = 4096;
const PG: usize = 4096;
const FILES: [&str; 2] = ["f0", "f1"];
/// Pages checked past the end of a file for stale cache entries (files
/// here never reach 12 pages, so this covers every page ever cached).
const SCAN_PAGES: u64 = 16;
/// Mappings a process may hold before `mmap` steps are skipped.
const MAX_MAPS: usize = 8;

fn round_up(x: u64) -> u64 {
    x.div_ceil(PAGE) * PAGE
}

/// FNV-1a 64, written out here so that the model uses no engine code.
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

fn fnv(bytes: &[u8]) -> u64 {
    let mut h = Fnv::new();
    h.feed(bytes);
    h.0
}

// ---------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------

/// A file: its size and its bytes up to the end of its last page.
#[derive(Clone, Debug, Default)]
struct MFile {
    /// `data.len() == round_up(size)`; bytes past `size` in the last page
    /// are whatever was stored there through a shared mapping.
    data: Vec<u8>,
    size: u64,
}

impl MFile {
    /// Pages a fault may reach: `ceil(size / PAGE)`.
    fn pages(&self) -> u64 {
        self.size.div_ceil(PAGE)
    }

    fn page(&self, k: u64) -> &[u8] {
        &self.data[k as usize * PG..(k as usize + 1) * PG]
    }

    fn pwrite(&mut self, off: u64, count: u64, byte: u8) {
        if count == 0 {
            return;
        }
        let end = off + count;
        if end > self.size {
            self.size = end;
            self.data.resize(round_up(end) as usize, 0);
        }
        self.data[off as usize..end as usize].fill(byte);
    }

    /// Sets the size; returns whether pages past the new end go (the size
    /// did not grow).
    fn truncate(&mut self, len: u64) -> bool {
        if len > self.size {
            self.size = len;
            self.data.resize(round_up(len) as usize, 0);
            return false;
        }
        self.data.truncate(len as usize);
        self.data.resize(round_up(len) as usize, 0);
        self.size = len;
        true
    }
}

/// A mapping of a file.
#[derive(Clone, Debug)]
struct MMap {
    addr: u64,
    len: u64,
    file: usize,
    /// File offset of `addr`, in bytes (page aligned).
    off: u64,
    shared: bool,
    write: bool,
}

impl MMap {
    fn end(&self) -> u64 {
        self.addr + self.len
    }
    /// The file page `vpage` maps.
    fn index(&self, vpage: u64) -> u64 {
        (self.off + vpage - self.addr) / PAGE
    }
}

#[derive(Clone, Debug)]
struct MProc {
    pid: Pid,
    /// Descriptor -> (file, opened for writing).
    fds: BTreeMap<u64, (usize, bool)>,
    maps: Vec<MMap>,
    /// Private copies, by virtual page address.
    copies: BTreeMap<u64, Vec<u8>>,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Load,
    Store(u8),
    Peek,
    Poke(u8),
}

/// How an access ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// A read completed: the hash of the bytes.
    Hash(u64),
    /// A write completed.
    Done,
    /// A CPU access raised a signal.
    Signal(SigInfo),
    /// A forced access failed.
    Eio,
}

#[derive(Clone, Debug, Default)]
struct Model {
    files: [MFile; 2],
    procs: Vec<MProc>,
}

impl Model {
    /// What `vpage` of mapping `m` shows in process `pi`.
    fn view(&self, pi: usize, m: &MMap, vpage: u64) -> Vec<u8> {
        if !m.shared {
            if let Some(c) = self.procs[pi].copies.get(&vpage) {
                return c.clone();
            }
        }
        self.files[m.file].page(m.index(vpage)).to_vec()
    }

    /// An access of `[addr, addr + len)`, inside mapping `mi` of process
    /// `pi`, page by page; a fault stops it, earlier pages stay written.
    fn access(&mut self, pi: usize, mi: usize, addr: u64, len: u64, kind: Kind) -> Outcome {
        let m = self.procs[pi].maps[mi].clone();
        assert!(addr >= m.addr && addr + len <= m.end() && len > 0);
        let mut h = Fnv::new();
        let mut cur = addr;
        let end = addr + len;
        while cur < end {
            let vpage = cur & !(PAGE - 1);
            let lo = (cur - vpage) as usize;
            let hi = (end - vpage).min(PAGE) as usize;
            let idx = m.index(vpage);
            let past = idx >= self.files[m.file].pages();
            let sig = |signo, code| {
                Outcome::Signal(SigInfo {
                    signo,
                    code,
                    addr: cur,
                })
            };
            match kind {
                Kind::Load if past => return sig(SIGBUS, BUS_ADRERR),
                Kind::Store(_) if !m.write => return sig(SIGSEGV, SEGV_ACCERR),
                Kind::Store(_) if past => return sig(SIGBUS, BUS_ADRERR),
                Kind::Peek if past => return Outcome::Eio,
                Kind::Poke(_) if past || (m.shared && !m.write) => return Outcome::Eio,
                _ => {}
            }
            match kind {
                Kind::Load | Kind::Peek => h.feed(&self.view(pi, &m, vpage)[lo..hi]),
                Kind::Store(b) | Kind::Poke(b) => {
                    if m.shared {
                        let base = idx as usize * PG;
                        self.files[m.file].data[base + lo..base + hi].fill(b);
                    } else {
                        let page = self.files[m.file].page(idx).to_vec();
                        let copy = self.procs[pi].copies.entry(vpage).or_insert(page);
                        copy[lo..hi].fill(b);
                    }
                }
            }
            cur = vpage + hi as u64;
        }
        match kind {
            Kind::Load | Kind::Peek => Outcome::Hash(h.0),
            Kind::Store(_) | Kind::Poke(_) => Outcome::Done,
        }
    }

    /// `ftruncate` (or `O_TRUNC`) of file `f` to `len`.
    fn truncate(&mut self, f: usize, len: u64) {
        if !self.files[f].truncate(len) {
            return;
        }
        // Every mapping of a page from round_up(len) on goes, private
        // copies included.
        let first = self.files[f].pages();
        for p in &mut self.procs {
            let MProc { maps, copies, .. } = p;
            copies.retain(|&vpage, _| {
                maps.iter()
                    .find(|m| m.addr <= vpage && vpage < m.end())
                    .map_or(true, |m| m.file != f || m.index(vpage) < first)
            });
        }
    }

    /// `munmap` of `[a, b)` in process `pi` (page aligned).
    fn unmap(&mut self, pi: usize, a: u64, b: u64) {
        let p = &mut self.procs[pi];
        let mut out = Vec::new();
        for m in p.maps.drain(..) {
            if m.end() <= a || m.addr >= b {
                out.push(m);
                continue;
            }
            if m.addr < a {
                out.push(MMap {
                    len: a - m.addr,
                    ..m.clone()
                });
            }
            if m.end() > b {
                out.push(MMap {
                    addr: b,
                    len: m.end() - b,
                    off: m.off + (b - m.addr),
                    ..m.clone()
                });
            }
        }
        p.maps = out;
        p.copies.retain(|&v, _| v < a || v >= b);
    }
}

// ---------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------

/// An `ftruncate` length.
#[derive(Clone, Debug)]
enum Len {
    Abs(u64),
    /// The file's current size.
    Same,
    /// The current size plus this.
    Delta(i64),
}

/// Where in a mapping an access goes: page, offset in it, length (clamped
/// to the mapping; `u64::MAX` is "to its end").
#[derive(Clone, Debug)]
struct Span {
    page: u64,
    off: u64,
    len: u64,
}

#[derive(Clone, Debug)]
enum Op {
    Open {
        file: usize,
        rdonly: bool,
        trunc: bool,
    },
    Close(Sel),
    Pwrite {
        fd: Sel,
        byte: u8,
        count: u64,
        off: u64,
    },
    Ftruncate {
        fd: Sel,
        len: Len,
    },
    Mmap {
        fd: Sel,
        shared: bool,
        write: bool,
        pages: u64,
        off_pages: u64,
    },
    Store(Sel, Span, u8),
    Load(Sel, Span),
    Poke(Sel, Span, u8),
    Peek(Sel, Span),
    Munmap {
        m: Sel,
        page: u64,
        pages: u64,
    },
    Msync(Sel, u64),
    Fork,
    Exit,
}

fn span() -> impl Strategy<Value = Span> {
    let off = prop_oneof![Just(0u64), 0u64..PAGE, (PAGE - 64)..PAGE];
    let len = prop_oneof![
        2 => Just(1u64),
        3 => 1u64..=64,
        2 => 1u64..=2 * PAGE,
        2 => Just(PAGE),
        1 => Just(u64::MAX),
    ];
    (0u64..4, off, len).prop_map(|(page, off, len)| Span { page, off, len })
}

/// Picks one of the process's descriptors, mappings, or one of the live
/// processes: taken modulo their number.
type Sel = usize;

fn sel() -> impl Strategy<Value = Sel> {
    0usize..64
}

fn byte() -> impl Strategy<Value = u8> {
    1u8..=255
}

fn op() -> impl Strategy<Value = Op> {
    let pwrite_off = prop_oneof![
        0u64..6 * PAGE,
        (0u64..6).prop_map(|k| k * PAGE),
        (1u64..6, 1u64..64).prop_map(|(k, d)| k * PAGE - d),
    ];
    let count = prop_oneof![
        1 => Just(0u64),
        4 => 1u64..=64,
        4 => 1u64..=2 * PAGE,
        1 => Just(PAGE),
    ];
    let len = prop_oneof![
        2 => (0u64..6 * PAGE).prop_map(Len::Abs),
        2 => (0u64..6).prop_map(|k| Len::Abs(k * PAGE)),
        1 => Just(Len::Same),
        2 => (-200i64..200).prop_map(Len::Delta),
    ];
    // Mostly inside the file, sometimes (partly) past its end.
    let off_pages = prop_oneof![3 => 0u64..=1, 2 => 0u64..=3, 1 => 0u64..=6];
    prop_oneof![
        1 => (0usize..2, any::<bool>(), prop::bool::weighted(0.2))
            .prop_map(|(file, rdonly, trunc)| Op::Open { file, rdonly, trunc }),
        1 => sel().prop_map(Op::Close),
        4 => (sel(), byte(), count, pwrite_off)
            .prop_map(|(fd, byte, count, off)| Op::Pwrite { fd, byte, count, off }),
        3 => (sel(), len).prop_map(|(fd, len)| Op::Ftruncate { fd, len }),
        5 => (sel(), any::<bool>(), prop::bool::weighted(0.7), 1u64..=4, off_pages).prop_map(
            |(fd, shared, write, pages, off_pages)| Op::Mmap { fd, shared, write, pages, off_pages }
        ),
        6 => (sel(), span(), byte()).prop_map(|(m, s, b)| Op::Store(m, s, b)),
        5 => (sel(), span()).prop_map(|(m, s)| Op::Load(m, s)),
        2 => (sel(), span(), byte()).prop_map(|(m, s, b)| Op::Poke(m, s, b)),
        2 => (sel(), span()).prop_map(|(m, s)| Op::Peek(m, s)),
        2 => (sel(), 0u64..4, 1u64..=2)
            .prop_map(|(m, page, pages)| Op::Munmap { m, page, pages }),
        1 => (sel(), prop::sample::select(vec![
            MS_ASYNC, MS_SYNC, MS_INVALIDATE, MS_SYNC | MS_INVALIDATE,
        ])).prop_map(|(m, f)| Op::Msync(m, f)),
        2 => Just(Op::Fork),
        1 => Just(Op::Exit),
    ]
}

/// A test case: starting sizes of the two files, whether to observe after
/// every step, and the steps (which process, what).
#[derive(Clone, Debug)]
struct Case {
    init: [u64; 2],
    observe: bool,
    steps: Vec<(Sel, Op)>,
}

fn case(max_steps: usize) -> impl Strategy<Value = Case> {
    (
        [0u64..3 * PAGE, 0u64..3 * PAGE],
        any::<bool>(),
        prop::collection::vec((sel(), op()), 1..=max_steps),
    )
        .prop_map(|(init, observe, steps)| Case {
            init,
            observe,
            steps,
        })
}

// ---------------------------------------------------------------------------
// Running a case
// ---------------------------------------------------------------------------

struct Run {
    sys: System,
    model: Model,
    /// A process outside the model that reads the files back.
    observer: Pid,
    observer_fds: [u64; 2],
    log: String,
}

fn access_outcome(r: Result<u64, AccessError>, read: bool) -> Result<Outcome, String> {
    match r {
        Ok(h) if read => Ok(Outcome::Hash(h)),
        Ok(_) => Ok(Outcome::Done),
        Err(AccessError::Signal(s)) => Ok(Outcome::Signal(s)),
        Err(e) => Err(format!("access ended with {e:?}")),
    }
}

fn forced_outcome(r: Result<u64, Errno>, read: bool) -> Result<Outcome, String> {
    match r {
        Ok(h) if read => Ok(Outcome::Hash(h)),
        Ok(_) => Ok(Outcome::Done),
        Err(Errno::EIO) => Ok(Outcome::Eio),
        Err(e) => Err(format!("forced access failed with {e:?}")),
    }
}

impl Run {
    fn new(c: &Case) -> Result<Run, String> {
        let mut sys = System::new(Params {
            ram: 256 << 20,
            ..Params::default()
        });
        let main = sys.spawn_default();
        // The observer is a bare process: an empty address space with the
        // first one's layout. (Not a second `spawn_default`, which
        // unbalances the reference counts: see
        // `two_default_processes_balance` below.)
        let layout = sys.process(main).map(|p| p.mm.layout).unwrap_or_default();
        let observer =
            sys.add_process(None, AddressSpace::empty(layout, Rlimits::default()), false);
        let mut model = Model::default();
        let mut fds = BTreeMap::new();
        let mut log = String::new();
        for (f, name) in FILES.iter().enumerate() {
            let fd = sys
                .open(main, name, O_RDWR | O_CREAT, 0o644)
                .map_err(|e| format!("open {name}: {e:?}"))?;
            fds.insert(fd, (f, true));
            if c.init[f] > 0 {
                let byte = 0xa0 + f as u8;
                sys.pwrite(main, fd, byte, c.init[f], 0)
                    .map_err(|e| format!("pwrite {name}: {e:?}"))?;
                model.files[f].pwrite(0, c.init[f], byte);
            }
            let _ = writeln!(
                log,
                "pid {main}: open({name}, O_RDWR|O_CREAT) = {fd}; pwrite(fd {fd}, {:#x}, {}, 0)",
                0xa0 + f as u8,
                c.init[f]
            );
        }
        let mut observer_fds = [0; 2];
        for (f, name) in FILES.iter().enumerate() {
            observer_fds[f] = sys
                .open(observer, name, O_RDONLY, 0)
                .map_err(|e| format!("observer open {name}: {e:?}"))?;
        }
        model.procs.push(MProc {
            pid: main,
            fds,
            maps: Vec::new(),
            copies: BTreeMap::new(),
        });
        Ok(Run {
            sys,
            model,
            observer,
            observer_fds,
            log,
        })
    }

    fn fail(&self, what: String) -> String {
        format!("{what}\nsteps:\n{}", self.log)
    }

    /// Resolves a span in mapping `m` to `(addr, len)`.
    fn place(m: &MMap, s: &Span) -> (u64, u64) {
        let pages = m.len / PAGE;
        let start = (s.page % pages) * PAGE + s.off;
        let left = m.len - start;
        (m.addr + start, s.len.clamp(1, left))
    }

    fn step(&mut self, who: Sel, op: &Op) -> Result<(), String> {
        let pi = who % self.model.procs.len();
        let pid = self.model.procs[pi].pid;
        let fd_at = |model: &Model, i: Sel| -> Option<(u64, usize, bool)> {
            let fds = &model.procs[pi].fds;
            if fds.is_empty() {
                return None;
            }
            let (&fd, &(f, w)) = fds.iter().nth(i % fds.len())?;
            Some((fd, f, w))
        };
        let map_at = |model: &Model, i: Sel| -> Option<usize> {
            let n = model.procs[pi].maps.len();
            (n > 0).then(|| i % n)
        };
        let sys = &mut self.sys;
        let model = &mut self.model;
        let log = &mut self.log;
        macro_rules! expect_eq {
            ($what:expr, $got:expr, $want:expr) => {{
                let (got, want) = ($got, $want);
                let _ = writeln!(log, "pid {pid}: {} = {:?}", $what, got);
                if got != want {
                    return Err(format!(
                        "{}: engine gave {:?}, model says {:?}",
                        $what, got, want
                    ));
                }
            }};
        }
        match op {
            Op::Open {
                file,
                rdonly,
                trunc,
            } => {
                let mut flags = if *rdonly { O_RDONLY } else { O_RDWR };
                // O_TRUNC only with write access: O_RDONLY|O_TRUNC is
                // unspecified by POSIX.
                let trunc = *trunc && !*rdonly;
                if trunc {
                    flags |= O_TRUNC;
                }
                let r = sys.open(pid, FILES[*file], flags, 0o644);
                let what = format!(
                    "open({}, {}{})",
                    FILES[*file],
                    if *rdonly { "O_RDONLY" } else { "O_RDWR" },
                    if trunc { "|O_TRUNC" } else { "" }
                );
                let fds = &model.procs[pi].fds;
                let want = (3..).find(|fd| !fds.contains_key(fd)).unwrap();
                expect_eq!(what, r, Ok(want));
                model.procs[pi].fds.insert(want, (*file, !*rdonly));
                if trunc {
                    model.truncate(*file, 0);
                }
            }
            Op::Close(i) => {
                let Some((fd, _, _)) = fd_at(model, *i) else {
                    return Ok(());
                };
                expect_eq!(format!("close({fd})"), sys.close(pid, fd), Ok(0));
                model.procs[pi].fds.remove(&fd);
            }
            Op::Pwrite {
                fd,
                byte,
                count,
                off,
            } => {
                let Some((fd, f, w)) = fd_at(model, *fd) else {
                    return Ok(());
                };
                let what = format!("pwrite(fd {fd} = {}, {byte:#x}, {count}, {off})", FILES[f]);
                let want = if w { Ok(*count) } else { Err(Errno::EBADF) };
                expect_eq!(what, sys.pwrite(pid, fd, *byte, *count, *off), want);
                if w {
                    model.files[f].pwrite(*off, *count, *byte);
                }
            }
            Op::Ftruncate { fd, len } => {
                let Some((fd, f, w)) = fd_at(model, *fd) else {
                    return Ok(());
                };
                let size = model.files[f].size;
                let len = match *len {
                    Len::Abs(l) => l,
                    Len::Same => size,
                    Len::Delta(d) => size.saturating_add_signed(d),
                };
                let what = format!("ftruncate(fd {fd} = {}, {len}) [size {size}]", FILES[f]);
                let want = if w { Ok(0) } else { Err(Errno::EINVAL) };
                expect_eq!(what, sys.ftruncate(pid, fd, len), want);
                if w {
                    model.truncate(f, len);
                }
            }
            Op::Mmap {
                fd,
                shared,
                write,
                pages,
                off_pages,
            } => {
                let Some((fd, f, w)) = fd_at(model, *fd) else {
                    return Ok(());
                };
                if model.procs[pi].maps.len() >= MAX_MAPS {
                    return Ok(());
                }
                let prot = if *write {
                    PROT_READ | PROT_WRITE
                } else {
                    PROT_READ
                };
                let flags = if *shared { MAP_SHARED } else { MAP_PRIVATE };
                let len = pages * PAGE;
                let off = off_pages * PAGE;
                let r = sys.mmap(pid, 0, len, prot, flags, fd, off);
                let what = format!(
                    "mmap({len:#x}, {}, {}, fd {fd} = {}, {off:#x})",
                    if *write { "rw" } else { "r" },
                    if *shared { "MAP_SHARED" } else { "MAP_PRIVATE" },
                    FILES[f]
                );
                let _ = writeln!(log, "pid {pid}: {what} = {r:x?}");
                if *shared && *write && !w {
                    if r != Err(Errno::EACCES) {
                        return Err(format!("{what}: engine gave {r:x?}, model says EACCES"));
                    }
                    return Ok(());
                }
                let addr = r.map_err(|e| format!("{what}: engine gave {e:?}"))?;
                let m = MMap {
                    addr,
                    len,
                    file: f,
                    off,
                    shared: *shared,
                    write: *write,
                };
                let p = &mut model.procs[pi];
                if p.maps.iter().any(|o| o.addr < m.end() && m.addr < o.end()) {
                    return Err(format!("{what}: {addr:#x} overlaps a live mapping"));
                }
                p.maps.push(m);
            }
            Op::Store(i, s, _) | Op::Load(i, s) | Op::Poke(i, s, _) | Op::Peek(i, s) => {
                let Some(mi) = map_at(model, *i) else {
                    return Ok(());
                };
                let m = model.procs[pi].maps[mi].clone();
                let (addr, len) = Self::place(&m, s);
                let (kind, name) = match *op {
                    Op::Store(_, _, b) => {
                        (Kind::Store(b), format!("store({addr:#x}, {len}, {b:#x})"))
                    }
                    Op::Load(..) => (Kind::Load, format!("load({addr:#x}, {len})")),
                    Op::Poke(_, _, b) => (Kind::Poke(b), format!("poke({addr:#x}, {len}, {b:#x})")),
                    _ => (Kind::Peek, format!("peek({addr:#x}, {len})")),
                };
                let got = match kind {
                    Kind::Load => access_outcome(sys.load(pid, addr, len), true),
                    Kind::Store(b) => {
                        access_outcome(sys.store(pid, addr, len, b).map(|_| 0), false)
                    }
                    Kind::Peek => forced_outcome(sys.peek(pid, addr, len), true),
                    Kind::Poke(b) => forced_outcome(sys.poke(pid, addr, len, b).map(|_| 0), false),
                }
                .map_err(|e| format!("{name}: {e}"))?;
                let want = model.access(pi, mi, addr, len, kind);
                let what = format!(
                    "{name} [{} {} {} at {:#x}]",
                    FILES[m.file],
                    if m.shared { "shared" } else { "private" },
                    if m.write { "rw" } else { "r" },
                    m.off
                );
                expect_eq!(what, got, want);
            }
            Op::Munmap { m, page, pages } => {
                let Some(mi) = map_at(model, *m) else {
                    return Ok(());
                };
                let m = model.procs[pi].maps[mi].clone();
                let n = m.len / PAGE;
                let first = page % n;
                let a = m.addr + first * PAGE;
                let b = m.addr + (first + pages).min(n) * PAGE;
                expect_eq!(
                    format!("munmap({a:#x}, {:#x})", b - a),
                    sys.munmap(pid, a, b - a),
                    Ok(0)
                );
                model.unmap(pi, a, b);
            }
            Op::Msync(m, flags) => {
                let Some(mi) = map_at(model, *m) else {
                    return Ok(());
                };
                let m = &model.procs[pi].maps[mi];
                expect_eq!(
                    format!("msync({:#x}, {:#x}, {flags:#x})", m.addr, m.len),
                    sys.msync(pid, m.addr, m.len, *flags),
                    Ok(0)
                );
            }
            Op::Fork => {
                let child = sys.fork(pid).map_err(|e| format!("fork: {e:?}"))?;
                let _ = writeln!(log, "pid {pid}: fork() = {child}");
                let mut c = model.procs[pi].clone();
                c.pid = child;
                model.procs.push(c);
            }
            Op::Exit => {
                if model.procs.len() == 1 {
                    return Ok(());
                }
                expect_eq!("exit()", sys.exit(pid), Ok(()));
                model.procs.remove(pi);
            }
        }
        Ok(())
    }

    /// The files' sizes and bytes as the page cache holds them, read
    /// without touching anything.
    fn check_cache(&self) -> Result<(), String> {
        let k = &self.sys.kernel;
        for (f, name) in FILES.iter().enumerate() {
            let mf = &self.model.files[f];
            let ino = k
                .files
                .find_tmpfs(&format!("/vms/{name}"))
                .ok_or_else(|| format!("{name} is gone"))?;
            let size = k.files.inode(ino).map(|i| i.size);
            if size != Some(mf.size) {
                return Err(format!("{name}: size {size:?}, model says {}", mf.size));
            }
            for idx in 0..mf.pages() + SCAN_PAGES {
                let cached = k.cache.get(ino, idx).map(|fr| k.phys.data(fr));
                if idx >= mf.pages() {
                    if cached.is_some() {
                        return Err(format!("{name}: page {idx} past the end is still cached"));
                    }
                    continue;
                }
                let want = mf.page(idx);
                let got: &[u8] = cached.map_or(&[0u8; PG][..], |d| &d[..]);
                if got != want {
                    let at = (0..PG).find(|&i| got[i] != want[i]).unwrap();
                    return Err(format!(
                        "{name}: byte {:#x} is {:#x} in the page cache, model says {:#x} (size {})",
                        idx * PAGE + at as u64,
                        got[at],
                        want[at],
                        mf.size
                    ));
                }
            }
        }
        Ok(())
    }

    /// Reads each file back through a fresh shared read-only mapping.
    fn readback(&mut self) -> Result<(), String> {
        let obs = self.observer;
        for (f, name) in FILES.iter().enumerate() {
            let mf = &self.model.files[f];
            let n = mf.pages();
            let len = (n + 1) * PAGE;
            let a = self
                .sys
                .mmap(obs, 0, len, PROT_READ, MAP_SHARED, self.observer_fds[f], 0)
                .map_err(|e| format!("readback mmap of {name}: {e:?}"))?;
            for k in 0..n {
                let got = self.sys.load(obs, a + k * PAGE, PAGE);
                let want = Ok(fnv(mf.page(k)));
                if got != want {
                    return Err(format!(
                        "readback of {name} page {k}: engine gave {got:x?}, model says {want:x?}"
                    ));
                }
            }
            let past = a + n * PAGE;
            let got = self.sys.load(obs, past, 1);
            let want = Err(AccessError::Signal(SigInfo {
                signo: SIGBUS,
                code: BUS_ADRERR,
                addr: past,
            }));
            if got != want {
                return Err(format!(
                    "readback of {name} page {n} (past the end): engine gave {got:x?}, model says {want:x?}"
                ));
            }
            self.sys
                .munmap(obs, a, len)
                .map_err(|e| format!("readback munmap: {e:?}"))?;
        }
        Ok(())
    }

    /// Peeks every page of every mapping of every process.
    fn sweep(&mut self) -> Result<(), String> {
        for pi in 0..self.model.procs.len() {
            let pid = self.model.procs[pi].pid;
            for mi in 0..self.model.procs[pi].maps.len() {
                let m = self.model.procs[pi].maps[mi].clone();
                for vpage in (m.addr..m.end()).step_by(PG) {
                    let got = forced_outcome(self.sys.peek(pid, vpage, PAGE), true)?;
                    let want = self.model.access(pi, mi, vpage, PAGE, Kind::Peek);
                    if got != want {
                        return Err(format!(
                            "pid {pid}: peek({vpage:#x}, 4096) [{} {} page {}]: engine gave {got:x?}, model says {want:x?}",
                            FILES[m.file],
                            if m.shared { "shared" } else { "private" },
                            m.index(vpage)
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    fn check(&mut self, observe: bool) -> Result<(), String> {
        self.check_cache()?;
        if observe {
            self.readback()?;
            self.sweep()?;
        }
        self.sys.check()?;
        self.sys.check_rmap()
    }
}

fn run(c: &Case) -> Result<(), String> {
    let mut r = Run::new(c)?;
    r.check(c.observe).map_err(|e| r.fail(e))?;
    for (who, op) in &c.steps {
        let res = r.step(*who, op).and_then(|_| r.check(c.observe));
        res.map_err(|e| r.fail(e))?;
    }
    // Always observe at the end.
    r.check(true).map_err(|e| r.fail(e))?;
    Ok(())
}

/// 128 cases of up to 40 steps (`FILE_PROPS_CASES=n` for more), no
/// regression files.
fn config() -> ProptestConfig {
    let cases = std::env::var("FILE_PROPS_CASES")
        .ok()
        .and_then(|v| v.parse().ok());
    ProptestConfig {
        cases: cases.unwrap_or(128),
        max_shrink_iters: 4096,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    // Found, and since fixed, by this test (each kept as a regression test
    // below): a zero-byte `pwrite` past the end grew the file; `ftruncate`
    // to the current size left the partial page's tail past EOF.
    #[test]
    fn file_contents_match_model(c in case(40)) {
        if let Err(e) = run(&c) {
            prop_assert!(false, "{}", e);
        }
    }
}

// ---------------------------------------------------------------------------
// Hand-written sequences
// ---------------------------------------------------------------------------

fn at(page: u64, off: u64, len: u64) -> Span {
    Span { page, off, len }
}

/// Mapping `pages` pages of the file behind descriptor choice `fd` (0 is
/// `f0`, 1 is `f1` for the first process) at page offset `off_pages`.
fn map(fd: Sel, shared: bool, write: bool, pages: u64, off_pages: u64) -> Op {
    Op::Mmap {
        fd,
        shared,
        write,
        pages,
        off_pages,
    }
}

fn check_case(init: [u64; 2], steps: Vec<(Sel, Op)>) {
    let c = Case {
        init,
        observe: true,
        steps,
    };
    if let Err(e) = run(&c) {
        panic!("{e}");
    }
}

/// The semantics the model encodes, one short sequence each, run through
/// the same checks as the random cases (observing after every step).
#[test]
fn file_smoke() {
    let pwrite = |fd, byte, count, off| Op::Pwrite {
        fd,
        byte,
        count,
        off,
    };
    let truncate = |fd, len| Op::Ftruncate { fd, len };
    // A private mapping shows later pwrites on pages it has not written,
    // and its own copy on the page it has; a shared store reaches the
    // untouched private page too.
    check_case(
        [2 * PAGE, 0],
        vec![
            (0, map(0, false, true, 2, 0)),
            (0, Op::Load(0, at(0, 0, PAGE))),
            (0, Op::Store(0, at(1, 100, 10), 0x11)),
            (0, pwrite(0, 0x22, 2 * PAGE, 0)),
            (0, Op::Load(0, at(0, 0, 2 * PAGE))),
            (0, map(0, true, true, 2, 0)),
            (0, Op::Store(1, at(0, 0, 2 * PAGE), 0x33)),
            (0, Op::Load(0, at(0, 0, 2 * PAGE))),
        ],
    );
    // Shrinking zaps private copies past the new end (but not that of the
    // partial last page); growing again shows the file's zeros there.
    check_case(
        [3 * PAGE, 0],
        vec![
            (0, map(0, false, true, 3, 0)),
            (0, Op::Store(0, at(0, 0, u64::MAX), 0x44)),
            (0, truncate(0, Len::Abs(PAGE + 100))),
            (0, Op::Load(0, at(2, 0, 1))),
            (0, truncate(0, Len::Abs(3 * PAGE))),
            (0, Op::Load(0, at(0, 0, u64::MAX))),
        ],
    );
    // A child inherits the private copies made before the fork; after it
    // each side has its own.
    check_case(
        [PAGE, 0],
        vec![
            (0, map(0, false, true, 1, 0)),
            (0, Op::Store(0, at(0, 0, 64), 0x55)),
            (0, Op::Fork),
            (1, Op::Load(0, at(0, 0, PAGE))),
            (1, Op::Store(0, at(0, 32, 64), 0x66)),
            (0, Op::Load(0, at(0, 0, PAGE))),
            (0, pwrite(0, 0x77, PAGE, 0)),
            (1, Op::Load(0, at(0, 0, PAGE))),
            (1, Op::Exit),
            (0, Op::Store(0, at(0, 0, 1), 0x88)),
        ],
    );
    // A forced write copies even a read-only private page and never
    // reaches the file; a shared read-only mapping refuses it.
    check_case(
        [PAGE, 0],
        vec![
            (0, map(0, false, false, 1, 0)),
            (0, Op::Poke(0, at(0, 8, 8), 0x99)),
            (0, pwrite(0, 0xaa, PAGE, 0)),
            (0, Op::Peek(0, at(0, 0, PAGE))),
            (0, map(0, true, false, 1, 0)),
            (0, Op::Poke(1, at(0, 0, 1), 0xbb)),
            (0, Op::Store(0, at(0, 0, 1), 0xcc)),
        ],
    );
    // Bytes stored past the end in the last page stay in the page cache and
    // show once the file grows over them; a page wholly past the end is
    // SIGBUS for loads and stores, a store to a read-only one SIGSEGV.
    check_case(
        [100, 0],
        vec![
            (0, map(0, true, true, 2, 0)),
            (0, Op::Store(0, at(0, 100, 50), 0xdd)),
            (0, Op::Store(0, at(1, 0, 1), 0xee)),
            (0, truncate(0, Len::Abs(2 * PAGE))),
            (0, Op::Load(0, at(0, 0, 2 * PAGE))),
            (0, map(0, true, false, 1, 5)),
            (0, Op::Load(1, at(0, 0, 1))),
            (0, Op::Store(1, at(0, 0, 1), 1)),
            (0, map(0, true, true, 1, 5)),
            (0, Op::Store(2, at(0, 0, 1), 1)),
        ],
    );
}

/// `pwrite(fd, buf, 0, off)` writes nothing and leaves the size alone
/// (`generic_write_checks` returns 0 for an empty write before anything
/// happens). The engine grows the file to `off`.
#[test]
fn pwrite_of_nothing_keeps_size() {
    check_case(
        [0, 0],
        vec![(
            0,
            Op::Pwrite {
                fd: 0,
                byte: 1,
                count: 0,
                off: 1,
            },
        )],
    );
}

/// `ftruncate` to the current size still truncates the page cache on
/// tmpfs (`shmem_setattr`: `newsize <= oldsize` runs
/// `shmem_truncate_range(inode, newsize, -1)`), which zeroes the tail of
/// the partial last page: bytes stored there through a shared mapping go.
/// The engine returns early unless the file shrinks.
#[test]
fn ftruncate_to_same_size_zeroes_tail() {
    check_case(
        [133, 0],
        vec![
            (0, map(0, true, true, 1, 0)),
            (0, Op::Store(0, at(0, 0, 134), 1)),
            (
                0,
                Op::Ftruncate {
                    fd: 0,
                    len: Len::Same,
                },
            ),
        ],
    );
}

/// Two default processes in one system: the second import maps the
/// program's already-cached file pages without taking a page reference
/// for its entries (`import.rs`, the `"file"` resident kind), so the
/// reference counts no longer balance.
#[test]
fn two_default_processes_balance() {
    let mut sys = System::new(Params {
        ram: 256 << 20,
        ..Params::default()
    });
    sys.spawn_default();
    sys.spawn_default();
    assert_eq!(sys.check(), Ok(()));
}
