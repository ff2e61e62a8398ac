//! A running puppet process and the requests it serves.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::proto::{self, Request, Response, DATA_MAX, REQUEST_SIZE, RESPONSE_SIZE};
use crate::sys::{self, ChanError};
use crate::{fnv1a, Access, Errno, ExecReport, HostError, SigInfo};

/// x86-64 system call numbers the convenience methods use.
const SYS_OPEN: u64 = 2;
const SYS_SETRLIMIT: u64 = 160;

/// One process under the runner's control: the first puppet (a child of the
/// runner) or one forked from another puppet.
///
/// Between requests the puppet is blocked reading its channel, so reading
/// its `/proc` files does not disturb it. Dropping a `Puppet` kills it.
#[derive(Debug)]
pub struct Puppet {
    pid: i32,
    chan: Option<OwnedFd>,
    /// For puppets that are not our children: a pidfd to kill them safely.
    pidfd: Option<OwnedFd>,
    /// The first puppet is our child: we reap it.
    ours: bool,
    /// Whether we reaped it (after which its pid is no longer ours).
    reaped: bool,
    timeout: Duration,
    /// Why the puppet is gone, once it is.
    dead: Option<String>,
    /// It has served (or can serve) requests: a first puppet after its
    /// greeting, a forked one at once.
    ready: bool,
}

impl Puppet {
    pub(crate) fn new(
        pid: i32,
        chan: OwnedFd,
        pidfd: Option<OwnedFd>,
        ours: bool,
        timeout: Duration,
    ) -> Puppet {
        Puppet {
            pid,
            chan: Some(chan),
            pidfd,
            ours,
            reaped: false,
            timeout,
            dead: None,
            ready: !ours,
        }
    }

    /// The process id (in the runner's pid namespace).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// False once the process exited or died.
    pub fn is_alive(&self) -> bool {
        self.dead.is_none()
    }

    /// Sets how long one request may take before the puppet is declared
    /// hung.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// A raw system call in the puppet: the kernel's raw return value
    /// (`-errno` on failure).
    pub fn syscall(&mut self, nr: u64, args: [u64; 6]) -> Result<i64, HostError> {
        self.syscall_with_data(nr, args, 0, &[])
    }

    /// A raw system call whose pointer arguments point into `data`, which is
    /// copied into the puppet's memory first: for each bit `i` set in
    /// `ptr_mask`, argument `i` (0-based) is an offset into `data` and is
    /// passed as the address of that byte of the puppet's copy. `data` is
    /// at most 4096 bytes.
    pub fn syscall_with_data(
        &mut self,
        nr: u64,
        args: [u64; 6],
        ptr_mask: u8,
        data: &[u8],
    ) -> Result<i64, HostError> {
        if data.len() > DATA_MAX {
            return Err(HostError::new(format!(
                "request data of {} bytes exceeds {DATA_MAX}",
                data.len()
            )));
        }
        let mut a = [0u64; 7];
        a[0] = nr;
        a[1..].copy_from_slice(&args);
        let req = Request {
            op: proto::OP_SYSCALL,
            a,
            ptr_mask: u64::from(ptr_mask),
            data_len: data.len() as u64,
        };
        Ok(self.request(&req, data)?.ret)
    }

    /// `open(path, flags, mode)` in the puppet (the path as given, usually
    /// absolute). Paths of 4096 bytes or more fail with `ENAMETOOLONG`, as
    /// the kernel would; a path with a NUL byte is a [`HostError`].
    pub fn open(&mut self, path: &Path, flags: u64, mode: u64) -> Result<i64, HostError> {
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| HostError::new("a path with a NUL byte cannot be opened"))?;
        let bytes = c.as_bytes_with_nul();
        if bytes.len() > DATA_MAX {
            return Ok(-i64::from(libc::ENAMETOOLONG));
        }
        self.syscall_with_data(SYS_OPEN, [0, flags, mode, 0, 0, 0], 1, bytes)
    }

    /// `setrlimit(resource, {soft, hard})` in the puppet.
    pub fn setrlimit(&mut self, resource: u64, soft: u64, hard: u64) -> Result<i64, HostError> {
        let mut data = [0u8; 16];
        data[..8].copy_from_slice(&soft.to_ne_bytes());
        data[8..].copy_from_slice(&hard.to_ne_bytes());
        self.syscall_with_data(SYS_SETRLIMIT, [resource, 0, 0, 0, 0, 0], 1 << 1, &data)
    }

    /// Writes `count` copies of `byte` at `offset` of `fd` with `pwrite64`
    /// (in chunks): the count written, or `-errno` if the first write failed.
    pub fn pwrite_fill(
        &mut self,
        fd: u64,
        byte: u8,
        count: u64,
        offset: u64,
    ) -> Result<i64, HostError> {
        let req = Request {
            op: proto::OP_PWRITE,
            a: [fd, u64::from(byte), count, offset, 0, 0, 0],
            ..Request::default()
        };
        Ok(self.request(&req, &[])?.ret)
    }

    /// The program break: `brk(0)`.
    pub fn brk0(&mut self) -> Result<u64, HostError> {
        Ok(self.syscall(12, [0; 6])? as u64)
    }

    /// Reads `len` bytes at `addr` with the puppet's CPU, one page at a time
    /// in ascending order: the FNV-1a 64 hash of the bytes, or the signal
    /// of the first faulting byte.
    pub fn load(&mut self, addr: u64, len: u64) -> Result<Access<u64>, HostError> {
        let req = Request {
            op: proto::OP_LOAD,
            a: [addr, len, 0, 0, 0, 0, 0],
            ..Request::default()
        };
        let r = self.request(&req, &[])?;
        Ok(match signal_of(&r) {
            Some(s) => Access::Fault(s),
            None => Access::Done(r.hash),
        })
    }

    /// Writes `len` copies of `byte` at `addr` with the puppet's CPU, one
    /// page at a time in ascending order; a fault stops at the faulting
    /// byte (earlier bytes stay written).
    pub fn store(&mut self, addr: u64, len: u64, byte: u8) -> Result<Access<()>, HostError> {
        let req = Request {
            op: proto::OP_STORE,
            a: [addr, len, u64::from(byte), 0, 0, 0, 0],
            ..Request::default()
        };
        let r = self.request(&req, &[])?;
        Ok(match signal_of(&r) {
            Some(s) => Access::Fault(s),
            None => Access::Done(()),
        })
    }

    /// Fetches one instruction at `addr`: done, or the signal of the
    /// instruction-fetch fault on `addr`'s page.
    pub fn exec(&mut self, addr: u64) -> Result<Access<()>, HostError> {
        Ok(self
            .exec_report(addr)?
            .fault
            .map_or(Access::Done(()), Access::Fault))
    }

    /// [`exec`](Self::exec) with the details of how the single step ended.
    pub fn exec_report(&mut self, addr: u64) -> Result<ExecReport, HostError> {
        let req = Request {
            op: proto::OP_EXEC,
            a: [addr, 0, 0, 0, 0, 0, 0],
            ..Request::default()
        };
        let r = self.request(&req, &[])?;
        Ok(ExecReport {
            fault: signal_of(&r),
            stop_signo: r.hash as i32,
            stop_rip: r.aux,
        })
    }

    /// `mincore(addr, len)` in the puppet: the residency vector (one byte
    /// per page) or the errno.
    pub fn mincore(&mut self, addr: u64, len: u64) -> Result<Result<Vec<u8>, Errno>, HostError> {
        let req = Request {
            op: proto::OP_MINCORE,
            a: [addr, len, 0, 0, 0, 0, 0],
            ..Request::default()
        };
        self.send(&req, &[])?;
        let deadline = Instant::now() + self.timeout;
        let _head = self.read_response(deadline)?;
        let mut vec = Vec::new();
        loop {
            let mut frame = [0u8; 16];
            self.read_into(&mut frame, deadline)?;
            let status = i64::from_ne_bytes(frame[..8].try_into().unwrap_or([0; 8]));
            let n = u64::from_ne_bytes(frame[8..].try_into().unwrap_or([0; 8]));
            if status < 0 {
                return Ok(Err(Errno(-status as i32)));
            }
            if n == 0 {
                return Ok(Ok(vec));
            }
            let start = vec.len();
            vec.resize(start + n as usize, 0);
            self.read_into(&mut vec[start..], deadline)?;
        }
    }

    /// Forks the puppet: the child puppet, or the errno of `fork`.
    pub fn fork(&mut self) -> Result<Result<Puppet, Errno>, HostError> {
        let req = Request {
            op: proto::OP_FORK,
            ..Request::default()
        };
        self.send(&req, &[])?;
        let deadline = Instant::now() + self.timeout;
        let mut buf = [0u8; RESPONSE_SIZE];
        let chan = self.chan_fd()?;
        let (n, fd) = match sys::recv_with_fd(chan, &mut buf, deadline) {
            Ok(x) => x,
            Err(e) => return Err(self.chan_failed(e)),
        };
        if n < RESPONSE_SIZE {
            self.read_into(&mut buf[n..], deadline)?;
        }
        let r = Response::decode(&buf);
        if r.ret < 0 {
            return Ok(Err(Errno(-r.ret as i32)));
        }
        let Some(fd) = fd else {
            return Err(HostError::new(format!(
                "the host helper {} forked {} but sent no channel for it",
                self.pid, r.ret
            )));
        };
        let pid = r.ret as i32;
        let pidfd = sys::pidfd_open(pid);
        let mut child = Puppet::new(pid, fd, pidfd, false, self.timeout);
        // The child greets on its channel once it has faulted its image in,
        // so that nothing read from /proc races with that.
        let ready = child.read_ready()?;
        if ready != crate::proto::READY_MAGIC {
            return Err(HostError::new(format!(
                "the forked host helper {pid} sent a bad greeting ({ready:#x})"
            )));
        }
        Ok(Ok(child))
    }

    /// Makes the puppet call `exit_group(code)` and waits until it is gone
    /// (its address space torn down).
    pub fn exit(&mut self, code: u64) -> Result<(), HostError> {
        let req = Request {
            op: proto::OP_EXIT,
            a: [code, 0, 0, 0, 0, 0, 0],
            ..Request::default()
        };
        self.send(&req, &[])?;
        let deadline = Instant::now() + self.timeout;
        let mut byte = [0u8; 1];
        let chan = self.chan_fd()?;
        match sys::read_exact(chan, &mut byte, deadline) {
            Err(ChanError::Eof) => {}
            Ok(()) => {
                return Err(HostError::new(format!(
                    "the host helper {} answered an exit request",
                    self.pid
                )))
            }
            Err(e) => return Err(self.chan_failed(e)),
        }
        self.chan = None;
        if self.ours {
            sys::waitpid(self.pid, true);
            self.reaped = true;
        } else if let Some(pidfd) = &self.pidfd {
            // The files close before the process is fully gone; wait for it
            // (the pidfd turns readable when the process has exited).
            let _ = sys::wait_readable(pidfd.as_raw_fd(), deadline);
        }
        self.dead = Some(format!("process {} exited", self.pid));
        Ok(())
    }

    /// Reads `len` bytes at `addr` through `/proc/PID/mem`: the FNV-1a 64
    /// hash, or the errno of the first failing read (`EIO` for an
    /// inaccessible page).
    pub fn peek(&self, addr: u64, len: u64) -> Result<Result<u64, Errno>, HostError> {
        let mem = self.open_mem(libc::O_RDONLY)?;
        let _pin = sys::CpuPin::to_cpus_of(self.pid);
        let mut h = fnv1a::OFFSET;
        let mut buf = vec![0u8; 64 * 1024];
        let mut done: u64 = 0;
        while done < len {
            let want = (len - done).min(buf.len() as u64) as usize;
            let off = addr.wrapping_add(done) as i64;
            // SAFETY: buf has at least `want` writable bytes.
            let r = unsafe { libc::pread64(mem.as_raw_fd(), buf.as_mut_ptr().cast(), want, off) };
            if r < 0 {
                return Ok(Err(Errno(sys::errno())));
            }
            if r == 0 {
                return Ok(Err(Errno(libc::EIO)));
            }
            h = fnv1a::update(h, &buf[..r as usize]);
            done += r as u64;
        }
        Ok(Ok(h))
    }

    /// Writes `len` copies of `byte` at `addr` through `/proc/PID/mem` (a
    /// forced write, as a debugger's): the errno of the first failing write.
    pub fn poke(&self, addr: u64, len: u64, byte: u8) -> Result<Result<(), Errno>, HostError> {
        let mem = self.open_mem(libc::O_RDWR)?;
        let _pin = sys::CpuPin::to_cpus_of(self.pid);
        let buf = vec![byte; (len.min(64 * 1024)) as usize];
        let mut done: u64 = 0;
        while done < len {
            let want = (len - done).min(buf.len() as u64) as usize;
            let off = addr.wrapping_add(done) as i64;
            // SAFETY: buf has at least `want` readable bytes.
            let r = unsafe { libc::pwrite64(mem.as_raw_fd(), buf.as_ptr().cast(), want, off) };
            if r < 0 {
                return Ok(Err(Errno(sys::errno())));
            }
            if r == 0 {
                return Ok(Err(Errno(libc::EIO)));
            }
            done += r as u64;
        }
        Ok(Ok(()))
    }

    /// The text of `/proc/PID/<name>` (`maps`, `smaps`, `smaps_rollup`,
    /// `status`, `stat`, `limits`, ...).
    pub fn proc_text(&self, name: &str) -> Result<String, HostError> {
        if let Some(why) = &self.dead {
            return Err(HostError::new(format!(
                "cannot read /proc/{}/{name}: {why}",
                self.pid
            )));
        }
        let path = format!("/proc/{}/{name}", self.pid);
        std::fs::read_to_string(&path).map_err(|e| HostError::io(&path, e))
    }

    /// The `/proc/PID/pagemap` entries of the pages in `[start, end)`: bit 63
    /// present, bit 62 swapped, bit 61 file page or shared anonymous, bits
    /// 0..54 the frame number (zero unless the runner is privileged).
    pub fn pagemap(&self, start: u64, end: u64) -> Result<Vec<u64>, HostError> {
        use std::os::unix::fs::FileExt;
        if let Some(why) = &self.dead {
            return Err(HostError::new(format!(
                "cannot read /proc/{}/pagemap: {why}",
                self.pid
            )));
        }
        let path = format!("/proc/{}/pagemap", self.pid);
        let f = std::fs::File::open(&path).map_err(|e| HostError::io(&path, e))?;
        let pages = (end.saturating_sub(start) / 4096) as usize;
        let mut buf = vec![0u8; pages * 8];
        f.read_exact_at(&mut buf, (start / 4096) * 8)
            .map_err(|e| HostError::io(&path, e))?;
        Ok(buf
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect())
    }

    fn open_mem(&self, flags: i32) -> Result<OwnedFd, HostError> {
        if let Some(why) = &self.dead {
            return Err(HostError::new(format!(
                "cannot open /proc/{}/mem: {why}",
                self.pid
            )));
        }
        let path = CString::new(format!("/proc/{}/mem", self.pid))
            .map_err(|_| HostError::new("bad path"))?;
        sys::open(&path, flags).map_err(|e| HostError::io(&format!("/proc/{}/mem", self.pid), e))
    }

    pub(crate) fn read_ready(&mut self) -> Result<i64, HostError> {
        let deadline = Instant::now() + self.timeout;
        let ret = self.read_response(deadline)?.ret;
        self.ready = true;
        Ok(ret)
    }

    fn chan_fd(&self) -> Result<i32, HostError> {
        match (&self.chan, &self.dead) {
            (Some(c), None) => Ok(c.as_raw_fd()),
            (_, Some(why)) => Err(HostError::new(format!("host process {}: {why}", self.pid))),
            (None, None) => Err(HostError::new(format!("host process {} is gone", self.pid))),
        }
    }

    fn request(&mut self, req: &Request, data: &[u8]) -> Result<Response, HostError> {
        self.send(req, data)?;
        let deadline = Instant::now() + self.timeout;
        self.read_response(deadline)
    }

    fn send(&mut self, req: &Request, data: &[u8]) -> Result<(), HostError> {
        let chan = self.chan_fd()?;
        let mut buf = Vec::with_capacity(REQUEST_SIZE + data.len());
        buf.extend_from_slice(&req.encode());
        buf.extend_from_slice(data);
        sys::send_all(chan, &buf).map_err(|e| self.chan_failed(e))
    }

    fn read_response(&mut self, deadline: Instant) -> Result<Response, HostError> {
        let mut buf = [0u8; RESPONSE_SIZE];
        self.read_into(&mut buf, deadline)?;
        Ok(Response::decode(&buf))
    }

    fn read_into(&mut self, buf: &mut [u8], deadline: Instant) -> Result<(), HostError> {
        let chan = self.chan_fd()?;
        sys::read_exact(chan, buf, deadline).map_err(|e| self.chan_failed(e))
    }

    /// The channel failed: find out why, mark the puppet dead (killing it
    /// if it hangs) and describe it.
    fn chan_failed(&mut self, e: ChanError) -> HostError {
        let what = match e {
            ChanError::Eof => {
                let status = if self.ours {
                    let s = sys::waitpid_timeout(self.pid, Duration::from_secs(2));
                    self.reaped |= s.is_some();
                    s.map(sys::describe_status)
                } else {
                    None
                };
                match status {
                    Some(s) => format!("died unexpectedly ({s})"),
                    None => "died unexpectedly".to_string(),
                }
            }
            ChanError::Timeout => {
                self.kill();
                format!("did not answer within {:?} and was killed", self.timeout)
            }
            ChanError::Io(err) => {
                self.kill();
                format!("could not be reached ({err}) and was killed")
            }
        };
        let msg = if self.ready {
            format!(
                "host helper process {} {what}; the scenario probably unmapped or protected \
                 memory the helper itself needs (its code and data at 0x400000)",
                self.pid
            )
        } else {
            format!(
                "host helper process {} {what} before it was ready",
                self.pid
            )
        };
        self.chan = None;
        self.dead = Some(msg.clone());
        HostError::new(msg)
    }

    fn kill(&mut self) {
        if self.ours {
            // Until we reap it, the pid cannot name another process.
            if !self.reaped {
                sys::kill(self.pid, libc::SIGKILL);
            }
        } else if let Some(pidfd) = &self.pidfd {
            sys::pidfd_kill(pidfd, libc::SIGKILL);
        }
    }
}

impl Drop for Puppet {
    fn drop(&mut self) {
        if self.dead.is_none() || (self.ours && !self.reaped) {
            self.kill();
        }
        // Without a pidfd, closing the channel makes the puppet exit by itself.
        self.chan = None;
        if self.ours && !self.reaped {
            sys::waitpid(self.pid, true);
            self.reaped = true;
        }
    }
}

fn signal_of(r: &Response) -> Option<SigInfo> {
    (r.signo != 0).then_some(SigInfo {
        signo: r.signo as i32,
        code: r.code as i32,
        addr: r.addr,
    })
}
