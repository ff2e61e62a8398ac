//! The running Linux kernel behind [`Backend`]: scenario calls run in
//! helper processes ("puppets") of `vmspace-host`, and their `/proc` text
//! is read directly.
//!
//! `/proc` text is normalised so that it compares with the engine's, and
//! only this way:
//! - a mapped scenario file shows as `/vms/<scenario path>` instead of its
//!   real path in the private tmpfs directory, with device `00:2a` and a
//!   small inode number;
//! - a shared anonymous mapping (`/dev/zero (deleted)`, device `00:01`)
//!   keeps its device and gets a small inode number.
//!
//! The small numbers come from one counter starting at 1, in creation
//! order: a scenario file's when the `open` that made it succeeds, a shared
//! anonymous object's when the `mmap` that made it succeeds. Rewritten lines
//! are rendered in the kernel's own format; other lines stay byte-identical.
//! Pids are the real ones.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;

use vmspace_host::maps::MapsLine;
use vmspace_host::{Access, Errno, Host, HostError, Puppet, SigInfo};

use crate::backend::{Backend, BackendError, Call, Outcome, Param, Pid, ProcSnapshot, Signal};

/// x86-64 system call numbers.
mod nr {
    pub const CLOSE: u64 = 3;
    pub const MMAP: u64 = 9;
    pub const MPROTECT: u64 = 10;
    pub const MUNMAP: u64 = 11;
    pub const BRK: u64 = 12;
    pub const MREMAP: u64 = 25;
    pub const MSYNC: u64 = 26;
    pub const MADVISE: u64 = 28;
    pub const FTRUNCATE: u64 = 77;
    pub const MLOCK: u64 = 149;
    pub const MUNLOCK: u64 = 150;
    pub const MLOCKALL: u64 = 151;
    pub const MUNLOCKALL: u64 = 152;
    pub const MLOCK2: u64 = 325;
    pub const MSEAL: u64 = 462;
    pub const REMAP_FILE_PAGES: u64 = 216;
}

const MAP_SHARED: u64 = 0x01;
const MAP_SHARED_VALIDATE: u64 = 0x03;
const MAP_TYPE: u64 = 0x0f;
const MAP_ANONYMOUS: u64 = 0x20;

/// The device scenario files show in normalised `/proc` text.
const VMS_DEV: (u32, u32) = (0, 0x2a);
/// The device of the kernel's internal shmem mount (shared anonymous).
const SHM_DEV: (u32, u32) = (0, 1);
const SHARED_ANON_NAME: &str = "/dev/zero (deleted)";

/// How the host backend is started.
#[derive(Clone, Debug, Default)]
pub struct HostConfig {
    /// The parameters the scenario sets. The host cannot change its
    /// kernel's sysctls: they are only kept, for warnings.
    pub params: Vec<Param>,
}

/// The running kernel as a [`Backend`].
pub struct HostBackend {
    // Declared before `host`: the puppets die before the directory goes.
    procs: BTreeMap<Pid, Puppet>,
    host: Host,
    main: Pid,
    snapshot: ProcSnapshot,
    params: Vec<Param>,
    names: Names,
    /// Each puppet's fault counts when the scenario first saw it (see
    /// `Call::Faults`).
    fault_base: BTreeMap<Pid, (u64, u64)>,
}

impl From<HostError> for BackendError {
    fn from(e: HostError) -> Self {
        BackendError(e.0)
    }
}

impl HostBackend {
    /// Starts the first puppet and captures its state before any statement.
    pub fn start(config: &HostConfig) -> Result<HostBackend, BackendError> {
        let host = Host::new()?;
        let mut puppet = host.spawn()?;
        let dir = host.dir().to_string_lossy().into_owned();
        let names = Names {
            dir_prefix: format!("{dir}/"),
            ids: HashMap::new(),
            next: 1,
        };
        let brk = puppet.brk0()?;
        let maps = puppet.proc_text("maps")?;
        let resident = resident_pages(&puppet, &maps)?;
        let snapshot = ProcSnapshot {
            smaps: Some(puppet.proc_text("smaps")?),
            stat: Some(puppet.proc_text("stat")?),
            brk: Some(brk),
            limits: Some(puppet.proc_text("limits")?),
            resident: Some(resident),
            helper_image: helper_image(&maps),
            maps,
        };
        let main = puppet.pid() as Pid;
        let mut fault_base = BTreeMap::new();
        fault_base.insert(main, fault_counts(&puppet)?);
        let mut procs = BTreeMap::new();
        procs.insert(main, puppet);
        Ok(HostBackend {
            procs,
            host,
            main,
            snapshot,
            params: config.params.clone(),
            names,
            fault_base,
        })
    }

    /// The first process's state right after it started, before any
    /// statement ran.
    pub fn snapshot(&self) -> &ProcSnapshot {
        &self.snapshot
    }

    /// The parameters the scenario set (not applied: see [`HostConfig`]).
    pub fn params(&self) -> &[Param] {
        &self.params
    }

    /// One line per set parameter the host kernel does not follow.
    pub fn warnings(&self) -> Vec<String> {
        let host = host_params();
        self.params
            .iter()
            .filter_map(|p| match host.iter().find(|h| h.key == p.key) {
                Some(h) if h.value == p.value => None,
                Some(h) => Some(format!(
                    "{}={} is not applied on the host, whose kernel has {}",
                    p.key, p.value, h.value
                )),
                None => Some(format!(
                    "{}={} cannot be applied on the host",
                    p.key, p.value
                )),
            })
            .collect()
    }
}

impl Backend for HostBackend {
    fn main_pid(&self) -> Pid {
        self.main
    }

    fn call(&mut self, pid: Pid, call: &Call) -> Result<Outcome, BackendError> {
        let dir = self.host.dir();
        let names = &mut self.names;
        let procs = &mut self.procs;
        let p = procs
            .get_mut(&pid)
            .ok_or_else(|| BackendError(format!("host process {pid} does not exist (any more)")))?;
        let out = match *call {
            Call::Mmap {
                addr,
                len,
                prot,
                flags,
                fd,
                off,
            } => {
                let r = p.syscall(nr::MMAP, [addr, len, prot, flags, fd, off])?;
                let shared = matches!(flags & MAP_TYPE, MAP_SHARED | MAP_SHARED_VALIDATE);
                if raw(r).is_ok() && shared && flags & MAP_ANONYMOUS != 0 {
                    let maps = p.proc_text("maps")?;
                    if let Some(l) = vmspace_host::maps::find(&maps, r as u64) {
                        if l.path.as_deref() == Some(SHARED_ANON_NAME) {
                            names.id(Kind::SharedAnon, l.inode);
                        }
                    }
                }
                addr_outcome(r)
            }
            Call::Munmap { addr, len } => value(p.syscall(nr::MUNMAP, [addr, len, 0, 0, 0, 0])?),
            Call::Mprotect { addr, len, prot } => {
                value(p.syscall(nr::MPROTECT, [addr, len, prot, 0, 0, 0])?)
            }
            Call::Mremap {
                old_addr,
                old_size,
                new_size,
                flags,
                new_addr,
            } => addr_outcome(p.syscall(
                nr::MREMAP,
                [old_addr, old_size, new_size, flags, new_addr, 0],
            )?),
            Call::Brk { addr } => addr_outcome(p.syscall(nr::BRK, [addr, 0, 0, 0, 0, 0])?),
            Call::Madvise { addr, len, advice } => {
                value(p.syscall(nr::MADVISE, [addr, len, advice, 0, 0, 0])?)
            }
            Call::Mlock { addr, len } => value(p.syscall(nr::MLOCK, [addr, len, 0, 0, 0, 0])?),
            Call::Mlock2 { addr, len, flags } => {
                value(p.syscall(nr::MLOCK2, [addr, len, flags, 0, 0, 0])?)
            }
            Call::Munlock { addr, len } => value(p.syscall(nr::MUNLOCK, [addr, len, 0, 0, 0, 0])?),
            Call::Mlockall { flags } => value(p.syscall(nr::MLOCKALL, [flags, 0, 0, 0, 0, 0])?),
            Call::Munlockall => value(p.syscall(nr::MUNLOCKALL, [0; 6])?),
            Call::Msync { addr, len, flags } => {
                value(p.syscall(nr::MSYNC, [addr, len, flags, 0, 0, 0])?)
            }
            Call::Mincore { addr, len } => match p.mincore(addr, len)? {
                Ok(vec) => Outcome::Mincore(
                    vec.iter()
                        .map(|b| if b & 1 != 0 { '1' } else { '0' })
                        .collect(),
                ),
                Err(Errno(e)) => Outcome::Error(e),
            },
            Call::Mseal { addr, len, flags } => {
                value(p.syscall(nr::MSEAL, [addr, len, flags, 0, 0, 0])?)
            }
            Call::RemapFilePages {
                start,
                size,
                prot,
                pgoff,
                flags,
            } => value(p.syscall(nr::REMAP_FILE_PAGES, [start, size, prot, pgoff, flags, 0])?),
            Call::Setrlimit {
                resource,
                soft,
                hard,
            } => value(p.setrlimit(resource, soft, hard)?),
            Call::Open {
                ref path,
                flags,
                mode,
            } => {
                if let Some(real) = path.strip_prefix(crate::host_files::PREFIX) {
                    // A real file of this machine, read-only (see host_files).
                    if let Err(e) = crate::host_files::check_open(real, flags) {
                        return Ok(Outcome::Error(e));
                    }
                    return Ok(value(p.open(std::path::Path::new(real), flags, mode)?));
                }
                let full = dir.join(path.trim_start_matches('/'));
                let r = p.open(&full, flags, mode)?;
                if raw(r).is_ok() {
                    if let Ok(meta) = std::fs::metadata(&full) {
                        names.id(Kind::File, meta.ino());
                    }
                }
                value(r)
            }
            Call::Close { fd } => value(p.syscall(nr::CLOSE, [fd, 0, 0, 0, 0, 0])?),
            Call::Ftruncate { fd, len } => value(p.syscall(nr::FTRUNCATE, [fd, len, 0, 0, 0, 0])?),
            // pwrite64 (18) in the puppet, in chunks, from its own buffer.
            Call::Pwrite {
                fd,
                byte,
                count,
                off,
            } => value(p.pwrite_fill(fd, byte as u8, count, off)?),
            Call::Fork => match p.fork()? {
                Ok(child) => {
                    let cpid = child.pid() as Pid;
                    self.fault_base.insert(cpid, fault_counts(&child)?);
                    procs.insert(cpid, child);
                    Outcome::Value(cpid as i64)
                }
                Err(Errno(e)) => Outcome::Error(e),
            },
            Call::Exit { code } => {
                p.exit(code)?;
                procs.remove(&pid);
                Outcome::Exited
            }
            Call::Load { addr, len } => match p.load(addr, len)? {
                Access::Done(h) => Outcome::Hash(h),
                Access::Fault(s) => Outcome::Signal(signal(s)),
            },
            Call::Store { addr, len, byte } => access(p.store(addr, len, byte as u8)?),
            Call::Exec { addr } => access(p.exec(addr)?),
            Call::Peek { addr, len } => match p.peek(addr, len)? {
                Ok(h) => Outcome::Hash(h),
                Err(Errno(e)) => Outcome::Error(e),
            },
            Call::Poke { addr, len, byte } => match p.poke(addr, len, byte as u8)? {
                Ok(()) => Outcome::Value(0),
                Err(Errno(e)) => Outcome::Error(e),
            },
            Call::Maps => Outcome::Text(names.normalize(&p.proc_text("maps")?)),
            Call::Smaps => Outcome::Text(names.normalize(&p.proc_text("smaps")?)),
            Call::SmapsRollup => Outcome::Text(names.normalize(&p.proc_text("smaps_rollup")?)),
            Call::Status => Outcome::Text(status_vm_lines(&p.proc_text("status")?)),
            Call::Faults => {
                let (min, maj) = fault_counts(p)?;
                let (min0, maj0) = self.fault_base.get(&pid).copied().unwrap_or((0, 0));
                Outcome::Text(crate::backend::faults_text(
                    min.saturating_sub(min0),
                    maj.saturating_sub(maj0),
                ))
            }
        };
        Ok(out)
    }
}

/// A puppet's `minflt` and `majflt` (fields 10 and 12 of
/// `/proc/PID/stat`, counted after the parenthesised command name).
fn fault_counts(p: &Puppet) -> Result<(u64, u64), BackendError> {
    let stat = p.proc_text("stat")?;
    let after = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .ok_or_else(|| BackendError(format!("unreadable /proc/{}/stat", p.pid())))?;
    // After ")": state(3) ppid pgrp session tty_nr tpgid flags minflt(10)
    // cminflt majflt(12).
    let fields: Vec<&str> = after.split_whitespace().collect();
    let num = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    match (num(7), num(9)) {
        (Some(min), Some(maj)) => Ok((min, maj)),
        _ => Err(BackendError(format!("unreadable /proc/{}/stat", p.pid()))),
    }
}

/// The helper's image: its program's regions and the .bss region right
/// after them.
fn helper_image(maps: &str) -> Option<(u64, u64)> {
    let entries: Vec<_> = maps
        .lines()
        .filter_map(vmspace::import::parse_maps_line)
        .collect();
    let first = entries
        .iter()
        .position(|e| e.name.contains("vmspace-puppet"))?;
    let mut end = entries[first].end;
    for e in &entries[first..] {
        if e.start != end && e.start != entries[first].start {
            break;
        }
        if !(e.name.contains("vmspace-puppet") || e.name.is_empty()) {
            break;
        }
        end = e.end;
        if e.name.is_empty() {
            break;
        }
    }
    Some((entries[first].start, end))
}

/// The resident pages of every region, from `/proc/PID/pagemap`, as the
/// snapshot's `resident` text (`start-end kind` runs in hex).
fn resident_pages(puppet: &vmspace_host::Puppet, maps: &str) -> Result<String, BackendError> {
    const PRESENT: u64 = 1 << 63;
    const FILE: u64 = 1 << 61;
    const PFN: u64 = (1 << 55) - 1;
    let zero_pfn = vmspace_host::zero_page_pfn();
    let mut out = String::new();
    for line in maps.lines() {
        let Some(e) = vmspace::import::parse_maps_line(line) else {
            continue;
        };
        if e.start >= 0x8000_0000_0000 {
            continue;
        }
        let special = e.name.starts_with('[')
            && !matches!(e.name.as_str(), "[heap]" | "[stack]")
            && !e.name.starts_with("[anon");
        let entries = puppet.pagemap(e.start, e.end)?;
        let mut run: Option<(u64, u64, &str)> = None;
        for (i, pm) in entries.iter().enumerate() {
            let addr = e.start + i as u64 * 4096;
            let kind = if pm & PRESENT == 0 {
                None
            } else if special {
                Some("special")
            } else if pm & FILE != 0 {
                Some("file")
            } else if zero_pfn.is_some_and(|z| z != 0 && pm & PFN == z) {
                Some("zero")
            } else {
                Some("anon")
            };
            match (run, kind) {
                (Some((s, end, k)), Some(k2)) if end == addr && k == k2 => {
                    run = Some((s, addr + 4096, k))
                }
                (r, k2) => {
                    if let Some((s, end, k)) = r {
                        out.push_str(&format!("{s:x}-{end:x} {k}\n"));
                    }
                    run = k2.map(|k| (addr, addr + 4096, k));
                }
            }
        }
        if let Some((s, end, k)) = run {
            out.push_str(&format!("{s:x}-{end:x} {k}\n"));
        }
    }
    Ok(out)
}

/// The host kernel's own parameter values: `/proc/sys/vm/{mmap_min_addr,
/// max_map_count, overcommit_memory, overcommit_ratio}` (those it can read).
pub fn host_params() -> Vec<Param> {
    let mut params: Vec<Param> = [
        "mmap_min_addr",
        "max_map_count",
        "overcommit_memory",
        "overcommit_ratio",
        "admin_reserve_kbytes",
        "user_reserve_kbytes",
    ]
    .iter()
    .filter_map(|key| {
        let text = std::fs::read_to_string(format!("/proc/sys/vm/{key}")).ok()?;
        let value = text.trim().parse().ok()?;
        Some(Param {
            key: (*key).to_string(),
            value,
        })
    })
    .collect();
    // The machine's memory decides overcommit heuristics: MemTotal is
    // totalram_pages, SwapTotal the swap size.
    if let Ok(meminfo) = std::fs::read_to_string("/proc/meminfo") {
        for (field, key) in [("MemTotal:", "ram"), ("SwapTotal:", "swap")] {
            let kb = meminfo
                .lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
            if let Some(kb) = kb {
                params.push(Param {
                    key: key.to_string(),
                    value: kb * 1024,
                });
            }
        }
    }
    params
}

/// A raw system call result: the value, or the errno (`-4095..=-1`).
fn raw(ret: i64) -> Result<i64, i32> {
    if (-4095..0).contains(&ret) {
        Err(-ret as i32)
    } else {
        Ok(ret)
    }
}

fn value(ret: i64) -> Outcome {
    match raw(ret) {
        Ok(v) => Outcome::Value(v),
        Err(e) => Outcome::Error(e),
    }
}

fn addr_outcome(ret: i64) -> Outcome {
    match raw(ret) {
        Ok(v) => Outcome::Addr(v as u64),
        Err(e) => Outcome::Error(e),
    }
}

fn signal(s: SigInfo) -> Signal {
    Signal {
        signo: s.signo,
        code: s.code,
        addr: s.addr,
    }
}

fn access(a: Access<()>) -> Outcome {
    match a {
        Access::Done(()) => Outcome::Value(0),
        Access::Fault(s) => Outcome::Signal(signal(s)),
    }
}

/// The lines of `/proc/PID/status` from `VmPeak:` through `VmSwap:`.
fn status_vm_lines(status: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in status.split_inclusive('\n') {
        if line.starts_with("VmPeak:") {
            inside = true;
        }
        if inside {
            out.push_str(line);
            if !line.ends_with('\n') {
                out.push('\n');
            }
            if line.starts_with("VmSwap:") {
                break;
            }
        }
    }
    out
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    File,
    SharedAnon,
}

/// The small inode numbers of scenario files and shared anonymous objects.
struct Names {
    /// The private directory, with a trailing '/'.
    dir_prefix: String,
    ids: HashMap<(Kind, u64), u64>,
    next: u64,
}

impl Names {
    /// The small number of a host inode, assigning the next one if new.
    fn id(&mut self, kind: Kind, host_ino: u64) -> u64 {
        let next = &mut self.next;
        *self.ids.entry((kind, host_ino)).or_insert_with(|| {
            let id = *next;
            *next += 1;
            id
        })
    }

    /// Rewrites the maps (or smaps header) lines that name a scenario file
    /// or a shared anonymous object; every other line stays as it is.
    fn normalize(&mut self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for line in text.split_inclusive('\n') {
            let (body, nl) = match line.strip_suffix('\n') {
                Some(b) => (b, "\n"),
                None => (line, ""),
            };
            match self.rewrite(body) {
                Some(new) => {
                    out.push_str(&new);
                    out.push_str(nl);
                }
                None => out.push_str(line),
            }
        }
        out
    }

    fn rewrite(&mut self, line: &str) -> Option<String> {
        let mut l = MapsLine::parse(line)?;
        let path = l.path.as_deref()?;
        if let Some(rest) = path.strip_prefix(self.dir_prefix.as_str()) {
            let new_path = format!("/vms/{rest}");
            l.inode = self.id(Kind::File, l.inode);
            (l.major, l.minor) = VMS_DEV;
            l.path = Some(new_path);
        } else if path == SHARED_ANON_NAME && (l.major, l.minor) == SHM_DEV {
            l.inode = self.id(Kind::SharedAnon, l.inode);
        } else {
            return None;
        }
        Some(l.render())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        Names {
            dir_prefix: "/dev/shm/vmspace-abc123/".into(),
            ids: HashMap::new(),
            next: 1,
        }
    }

    #[test]
    fn rewrites_files_and_shared_anon_only() {
        let mut n = names();
        n.id(Kind::File, 777);
        let text = "\
00400000-00401000 r--p 00000000 00:01 1024                               /memfd:vmspace-puppet (deleted)
7ffff7fe0000-7ffff7fe1000 rw-s 00000000 00:1a 777                        /dev/shm/vmspace-abc123/data
7ffff7fe1000-7ffff7fe2000 rw-s 00000000 00:01 5000                       /dev/zero (deleted)
7ffff7fe2000-7ffff7fe3000 rw-p 00000000 00:00 0 
7ffffffde000-7ffffffff000 rw-p 00000000 00:00 0                          [stack]
";
        let out = n.normalize(text);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], text.lines().next().unwrap());
        assert_eq!(
            lines[1],
            "7ffff7fe0000-7ffff7fe1000 rw-s 00000000 00:2a 1                          /vms/data"
        );
        assert_eq!(
            lines[2],
            "7ffff7fe1000-7ffff7fe2000 rw-s 00000000 00:01 2                          /dev/zero (deleted)"
        );
        assert_eq!(lines[3], "7ffff7fe2000-7ffff7fe3000 rw-p 00000000 00:00 0 ");
        assert_eq!(lines[4], text.lines().nth(4).unwrap());
        assert!(out.ends_with('\n'));
        // Stable numbers across calls.
        assert_eq!(n.normalize(text), out);
    }

    #[test]
    fn smaps_fields_untouched() {
        let mut n = names();
        let text = "7ffff7fe1000-7ffff7fe2000 rw-s 00000000 00:01 5000                       /dev/zero (deleted)\nSize:                  4 kB\nVmFlags: rd wr sh mr mw me ms sd\n";
        let out = n.normalize(text);
        assert!(out.starts_with("7ffff7fe1000-7ffff7fe2000 rw-s 00000000 00:01 1 "));
        assert!(out.ends_with("Size:                  4 kB\nVmFlags: rd wr sh mr mw me ms sd\n"));
    }

    #[test]
    fn status_lines() {
        let status = "Name:\tx\nVmPeak:\t  100 kB\nVmSize:\t  100 kB\nVmSwap:\t       0 kB\nHugetlbPages:\t       0 kB\n";
        assert_eq!(
            status_vm_lines(status),
            "VmPeak:\t  100 kB\nVmSize:\t  100 kB\nVmSwap:\t       0 kB\n"
        );
    }

    #[test]
    fn runs_on_the_kernel() {
        let mut b = HostBackend::start(&HostConfig::default()).unwrap();
        let main = b.main_pid();
        assert!(b.snapshot().maps.contains("[stack]"));
        assert!(b.snapshot().brk.unwrap() > 0x400000);
        let call = |b: &mut HostBackend, c: Call| b.call(main, &c).unwrap();
        let fd = call(
            &mut b,
            Call::Open {
                path: "/data".into(),
                flags: 0o102,
                mode: 0o644,
            },
        );
        assert_eq!(fd, Outcome::Value(3));
        assert_eq!(
            call(&mut b, Call::Ftruncate { fd: 3, len: 8192 }),
            Outcome::Value(0)
        );
        assert_eq!(
            call(
                &mut b,
                Call::Pwrite {
                    fd: 3,
                    byte: 0x41,
                    count: 10,
                    off: 0
                }
            ),
            Outcome::Value(10)
        );
        let Outcome::Addr(shm) = call(
            &mut b,
            Call::Mmap {
                addr: 0,
                len: 4096,
                prot: 3,
                flags: 0x21,
                fd: u64::MAX,
                off: 0,
            },
        ) else {
            panic!("mmap")
        };
        let Outcome::Addr(file) = call(
            &mut b,
            Call::Mmap {
                addr: 0,
                len: 8192,
                prot: 1,
                flags: 1,
                fd: 3,
                off: 0,
            },
        ) else {
            panic!("mmap")
        };
        let Outcome::Text(maps) = call(&mut b, Call::Maps) else {
            panic!("maps")
        };
        let line = |a: u64| {
            maps.lines()
                .find(|l| l.starts_with(&format!("{a:08x}-")))
                .unwrap()
                .to_string()
        };
        assert!(
            line(file).ends_with(" 00:2a 1                          /vms/data"),
            "{maps}"
        );
        assert!(
            line(shm).ends_with(" 00:01 2                          /dev/zero (deleted)"),
            "{maps}"
        );
        let Outcome::Text(smaps) = call(&mut b, Call::Smaps) else {
            panic!("smaps")
        };
        assert!(smaps.contains("/vms/data\n"), "{smaps}");
        assert_eq!(
            call(
                &mut b,
                Call::Mmap {
                    addr: 1,
                    len: 4096,
                    prot: 3,
                    flags: 0x32,
                    fd: 0,
                    off: 0
                }
            ),
            Outcome::Error(22)
        );
        assert_eq!(
            call(
                &mut b,
                Call::Store {
                    addr: file,
                    len: 1,
                    byte: 1
                }
            ),
            Outcome::Signal(Signal {
                signo: 11,
                code: 2,
                addr: file
            })
        );
        assert_eq!(
            call(
                &mut b,
                Call::Mincore {
                    addr: file,
                    len: 8192
                }
            ),
            Outcome::Mincore("10".into())
        );
        let Outcome::Text(status) = call(&mut b, Call::Status) else {
            panic!("status")
        };
        assert!(
            status.starts_with("VmPeak:")
                && status
                    .trim_end()
                    .lines()
                    .last()
                    .unwrap()
                    .starts_with("VmSwap:")
        );
        let Outcome::Value(child) = call(&mut b, Call::Fork) else {
            panic!("fork")
        };
        assert_eq!(
            b.call(child as Pid, &Call::Exit { code: 0 }).unwrap(),
            Outcome::Exited
        );
        assert!(b.call(child as Pid, &Call::Maps).is_err());
        assert_eq!(call(&mut b, Call::Exit { code: 0 }), Outcome::Exited);
    }

    #[test]
    fn params_of_the_host() {
        let p = host_params();
        assert!(p.iter().any(|p| p.key == "mmap_min_addr"), "{p:?}");
    }

    #[test]
    fn raw_results() {
        assert_eq!(value(-22), Outcome::Error(22));
        assert_eq!(value(3), Outcome::Value(3));
        assert_eq!(
            addr_outcome(0x7fff_f7ff_f000),
            Outcome::Addr(0x7fff_f7ff_f000)
        );
        assert_eq!(addr_outcome(-12), Outcome::Error(12));
    }
}
