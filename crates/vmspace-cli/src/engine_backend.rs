//! The vmspace engine behind the [`Backend`] seam.
//!
//! Calls go to a [`vmspace::System`] as system calls with a pid; memory
//! accesses and inspections go to the same system, so one process's view of
//! memory is what the engine's page tables say.

use vmspace::access::AccessError;
use vmspace::import::{import, SnapshotText};
use vmspace::{Errno, Params, System};

use crate::backend::{Backend, BackendError, Call, Outcome, Pid, Signal};
use crate::run::{EngineConfig, StartState};

/// The engine, ready to run a scenario.
pub struct EngineBackend {
    sys: System,
    main: Pid,
    /// The real-kernel helper's image, when starting from its snapshot.
    helper_image: Option<(u64, u64)>,
    /// Run the engine's invariant checker after every statement.
    checks: bool,
    /// Also verify every page's reverse mapping (slower; `set_checks`).
    rmap_checks: bool,
    /// Each process's fault counts when the scenario first saw it (the
    /// start, or right after the fork that made it): `faults()` prints
    /// what was added since.
    fault_base: std::collections::BTreeMap<Pid, (u64, u64)>,
    /// The host files the scenario opened (`open("host:/...")`), the
    /// storage behind them.
    host_files: crate::host_files::HostFiles,
}

impl EngineBackend {
    /// Builds the machine from parameters and a starting state.
    pub fn new(config: &EngineConfig) -> Result<EngineBackend, String> {
        let mut params = Params::default();
        // The runner is the debugger that reads and writes memory through
        // /proc/PID/mem: the stacks it grows are held to its own limits.
        let [stack, as_, data, memlock] =
            vmspace_host::own_rlimits().map(|(cur, max)| vmspace::mm::Rlimit { cur, max });
        params.debugger_rlimits = vmspace::mm::Rlimits {
            as_,
            data,
            stack,
            memlock,
        };
        for p in &config.params {
            params
                .set(&p.key, p.value)
                .map_err(|_| format!("invalid machine parameter {}={}", p.key, p.value))?;
        }
        let mut sys = System::new(params);
        let host_files = crate::host_files::HostFiles::default();
        sys.set_store(host_files.clone());
        let main = match &config.start {
            StartState::Exec => sys.spawn_default(),
            StartState::Snapshot(snap) => {
                let text = SnapshotText {
                    maps: &snap.maps,
                    smaps: snap.smaps.as_deref(),
                    stat: snap.stat.as_deref(),
                    brk: snap.brk,
                    limits: snap.limits.as_deref(),
                    resident: snap.resident.as_deref(),
                };
                let (mm, pid, vsyscall) = import(&mut sys.kernel, &text)
                    .map_err(|e| format!("cannot import process state: {e}"))?;
                sys.add_process(pid, mm, vsyscall)
            }
        };
        let helper_image = match &config.start {
            StartState::Snapshot(s) => s.helper_image,
            StartState::Exec => None,
        };
        let mut fault_base = std::collections::BTreeMap::new();
        fault_base.insert(main, fault_counts(&sys, main));
        Ok(EngineBackend {
            sys,
            main,
            helper_image,
            checks: cfg!(debug_assertions),
            rmap_checks: false,
            fault_base,
            host_files,
        })
    }

    /// Whether to run the engine's invariant checker after every statement
    /// (on by default in debug builds, and so in every test; `vmspace fuzz`
    /// turns it on in any build, with the reverse-mapping check too). A
    /// broken invariant is a backend error.
    pub fn set_checks(&mut self, on: bool) {
        self.checks = on;
        self.rmap_checks = on;
    }

    /// The simulated machine.
    pub fn system(&self) -> &System {
        &self.sys
    }
}

/// A process's minor and major fault counts (zero if it is gone).
fn fault_counts(s: &System, pid: Pid) -> (u64, u64) {
    s.process(pid)
        .map_or((0, 0), |p| (p.mm.mem.min_flt, p.mm.mem.maj_flt))
}

fn value(r: Result<u64, Errno>) -> Outcome {
    match r {
        Ok(v) => Outcome::Value(v as i64),
        Err(e) => Outcome::Error(e as i32),
    }
}

fn addr(r: Result<u64, Errno>) -> Outcome {
    match r {
        Ok(v) => Outcome::Addr(v),
        Err(e) => Outcome::Error(e as i32),
    }
}

/// What the real-kernel helper does to its own image right after a fork
/// (reads every text page, rewrites every writable page), applied to an
/// engine process so that the comparison sees the same pages.
fn helper_touches_image(s: &mut System, pid: Pid, start: u64, end: u64) {
    let mut page = start;
    while page < end {
        let writable = s
            .process(pid)
            .and_then(|p| p.mm.vma_containing(page))
            .is_some_and(|v| v.flags().contains(vmspace::VmFlags::WRITE));
        let _ = s.touch(pid, page, writable);
        page += 4096;
    }
}

/// A memory access's outcome: a value, a signal, or the process killed.
fn access(r: Result<Outcome, AccessError>) -> Result<Outcome, BackendError> {
    match r {
        Ok(o) => Ok(o),
        Err(AccessError::Killed(si)) => Ok(Outcome::Killed(si.signo)),
        Err(AccessError::Signal(si)) => Ok(Outcome::Signal(Signal {
            signo: si.signo,
            code: si.code,
            addr: si.addr,
        })),
        Err(AccessError::NoProcess) => Err(BackendError("no such process".into())),
    }
}

impl Backend for EngineBackend {
    fn main_pid(&self) -> Pid {
        self.main
    }

    fn call(&mut self, pid: Pid, call: &Call) -> Result<Outcome, BackendError> {
        let outcome = self.call_inner(pid, call)?;
        if !self.checks {
            return Ok(outcome);
        }
        let checked = self.sys.check().and_then(|()| {
            if self.rmap_checks {
                self.sys.check_rmap()
            } else {
                Ok(())
            }
        });
        if let Err(e) = checked {
            return Err(BackendError(format!(
                "engine invariant broken after {}: {e}",
                call.op()
            )));
        }
        Ok(outcome)
    }
}

impl EngineBackend {
    fn call_inner(&mut self, pid: Pid, call: &Call) -> Result<Outcome, BackendError> {
        let s = &mut self.sys;
        if s.process(pid).is_none() {
            return Err(BackendError(format!("no process with pid {pid}")));
        }
        Ok(match *call {
            Call::Mmap {
                addr: a,
                len,
                prot,
                flags,
                fd,
                off,
            } => addr(s.mmap(pid, a, len, prot, flags, fd, off)),
            Call::Munmap { addr: a, len } => value(s.munmap(pid, a, len)),
            Call::Mprotect { addr: a, len, prot } => value(s.mprotect(pid, a, len, prot)),
            Call::Mremap {
                old_addr,
                old_size,
                new_size,
                flags,
                new_addr,
            } => addr(s.mremap(pid, old_addr, old_size, new_size, flags, new_addr)),
            Call::Brk { addr: a } => addr(s.brk(pid, a)),
            Call::Madvise {
                addr: a,
                len,
                advice,
            } => value(s.madvise(pid, a, len, advice)),
            Call::Mlock { addr: a, len } => value(s.mlock(pid, a, len)),
            Call::Mlock2 {
                addr: a,
                len,
                flags,
            } => value(s.mlock2(pid, a, len, flags)),
            Call::Munlock { addr: a, len } => value(s.munlock(pid, a, len)),
            Call::Mlockall { flags } => value(s.mlockall(pid, flags)),
            Call::Munlockall => value(s.munlockall(pid)),
            Call::Msync {
                addr: a,
                len,
                flags,
            } => value(s.msync(pid, a, len, flags)),
            Call::Mseal {
                addr: a,
                len,
                flags,
            } => value(s.mseal(pid, a, len, flags)),
            Call::RemapFilePages {
                start,
                size,
                prot,
                pgoff,
                flags,
            } => value(s.remap_file_pages(pid, start, size, prot, pgoff, flags)),
            Call::Setrlimit {
                resource,
                soft,
                hard,
            } => value(s.setrlimit(pid, resource, soft, hard)),
            Call::Open {
                ref path,
                flags,
                mode,
            } => match path.strip_prefix(crate::host_files::PREFIX) {
                Some(real) => match crate::host_files::check_open(real, flags)
                    .and_then(|()| self.host_files.register(real))
                {
                    Ok(f) => {
                        value(s.open_disk_file(pid, real, f.dev, f.ino, f.store, f.size, false))
                    }
                    Err(e) => Outcome::Error(e),
                },
                None => value(s.open(pid, path, flags, mode)),
            },
            Call::Close { fd } => value(s.close(pid, fd)),
            Call::Ftruncate { fd, len } => value(s.ftruncate(pid, fd, len)),
            Call::Pwrite {
                fd,
                byte,
                count,
                off,
            } => value(s.pwrite(pid, fd, byte as u8, count, off)),
            Call::Maps => Outcome::Text(s.maps(pid).map_err(|e| BackendError(e.to_string()))?),
            Call::Status => Outcome::Text(s.status(pid).map_err(|e| BackendError(e.to_string()))?),
            Call::Faults => {
                if s.process(pid).is_none() {
                    return Err(BackendError(format!("no process {pid}")));
                }
                let (min, maj) = fault_counts(s, pid);
                let (min0, maj0) = self.fault_base.get(&pid).copied().unwrap_or((0, 0));
                Outcome::Text(crate::backend::faults_text(
                    min.saturating_sub(min0),
                    maj.saturating_sub(maj0),
                ))
            }
            Call::Mincore { addr: a, len } => match s.mincore(pid, a, len) {
                Ok(v) => Outcome::Mincore(
                    v.iter()
                        .map(|b| if b & 1 != 0 { '1' } else { '0' })
                        .collect(),
                ),
                Err(e) => Outcome::Error(e as i32),
            },
            Call::Smaps => Outcome::Text(s.smaps(pid).map_err(|e| BackendError(e.to_string()))?),
            Call::SmapsRollup => Outcome::Text(
                s.smaps_rollup(pid)
                    .map_err(|e| BackendError(e.to_string()))?,
            ),
            Call::Load { addr: a, len } => access(s.load(pid, a, len).map(Outcome::Hash))?,
            Call::Store { addr: a, len, byte } => {
                access(s.store(pid, a, len, byte as u8).map(|_| Outcome::Value(0)))?
            }
            Call::Exec { addr: a } => access(s.exec(pid, a).map(|_| Outcome::Value(0)))?,
            Call::Peek { addr: a, len } => match s.peek(pid, a, len) {
                Ok(h) => Outcome::Hash(h),
                Err(e) => Outcome::Error(e as i32),
            },
            Call::Poke { addr: a, len, byte } => value(s.poke(pid, a, len, byte as u8).map(|_| 0)),
            Call::Exit { .. } => match s.exit(pid) {
                Ok(()) => Outcome::Exited,
                Err(e) => return Err(BackendError(e.to_string())),
            },
            Call::Fork => match s.fork(pid) {
                Ok(child) => {
                    if let Some((start, end)) = self.helper_image {
                        helper_touches_image(s, pid, start, end);
                        helper_touches_image(s, child, start, end);
                    }
                    self.fault_base.insert(child, fault_counts(s, child));
                    Outcome::Value(child as i64)
                }
                Err(e) => Outcome::Error(e as i32),
            },
        })
    }
}
