//! Thin, checked wrappers over the system calls the runner needs.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

pub(crate) fn errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// `socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC)`.
pub(crate) fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut sv = [0 as RawFd; 2];
    // SAFETY: sv is a valid array of two ints for the kernel to fill.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            sv.as_mut_ptr(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(sv[0]), OwnedFd::from_raw_fd(sv[1])) })
}

/// `pipe2(O_CLOEXEC)`: (read end, write end).
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut p = [0 as RawFd; 2];
    // SAFETY: p is a valid array of two ints for the kernel to fill.
    let r = unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) })
}

/// `open(path, flags | O_CLOEXEC)`.
pub(crate) fn open(path: &CStr, flags: i32) -> io::Result<OwnedFd> {
    // SAFETY: path is NUL-terminated; the mode argument is unused without O_CREAT.
    let fd = unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just opened and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Waits until `fd` is readable (or has hung up) or the deadline passes.
/// Returns false on timeout.
pub(crate) fn wait_readable(fd: RawFd, deadline: Instant) -> io::Result<bool> {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        let left = deadline - now;
        let ms = left.as_millis().clamp(1, 1000) as i32;
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: pfd is a valid pollfd array of length 1.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if r > 0 {
            return Ok(true);
        }
    }
}

/// What went wrong while talking to a puppet.
#[derive(Debug)]
pub(crate) enum ChanError {
    /// The peer closed the channel (the process is gone).
    Eof,
    Timeout,
    Io(io::Error),
}

/// Reads exactly `buf.len()` bytes before `deadline`.
pub(crate) fn read_exact(fd: RawFd, buf: &mut [u8], deadline: Instant) -> Result<(), ChanError> {
    let mut done = 0;
    while done < buf.len() {
        if !wait_readable(fd, deadline).map_err(ChanError::Io)? {
            return Err(ChanError::Timeout);
        }
        let rest = &mut buf[done..];
        // SAFETY: rest is a valid writable buffer of rest.len() bytes.
        let r = unsafe { libc::read(fd, rest.as_mut_ptr().cast(), rest.len()) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted || e.kind() == io::ErrorKind::WouldBlock {
                continue;
            }
            if e.raw_os_error() == Some(libc::ECONNRESET) {
                return Err(ChanError::Eof);
            }
            return Err(ChanError::Io(e));
        }
        if r == 0 {
            return Err(ChanError::Eof);
        }
        done += r as usize;
    }
    Ok(())
}

/// Reads up to `buf.len()` bytes (at least one) with `recvmsg`, also
/// receiving at most one fd passed with `SCM_RIGHTS`.
pub(crate) fn recv_with_fd(
    fd: RawFd,
    buf: &mut [u8],
    deadline: Instant,
) -> Result<(usize, Option<OwnedFd>), ChanError> {
    loop {
        if !wait_readable(fd, deadline).map_err(ChanError::Io)? {
            return Err(ChanError::Timeout);
        }
        // Room for a few fds, in case; all but the first are closed.
        let mut cbuf = [0u64; 8];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: an all-zero msghdr is a valid (empty) value.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&cbuf);
        // SAFETY: msg points at valid iovec and control buffers that outlive
        // the call.
        let r = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted || e.kind() == io::ErrorKind::WouldBlock {
                continue;
            }
            if e.raw_os_error() == Some(libc::ECONNRESET) {
                return Err(ChanError::Eof);
            }
            return Err(ChanError::Io(e));
        }
        let mut got: Option<OwnedFd> = None;
        // SAFETY: msg was filled by recvmsg; the CMSG_* macros walk the
        // control buffer within msg_controllen.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                    let data = libc::CMSG_DATA(c);
                    let payload = (*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                    let n = payload / std::mem::size_of::<RawFd>();
                    for i in 0..n {
                        let raw = std::ptr::read_unaligned(data.cast::<RawFd>().add(i));
                        let owned = OwnedFd::from_raw_fd(raw);
                        if got.is_none() {
                            got = Some(owned);
                        }
                    }
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        if r == 0 {
            return Err(ChanError::Eof);
        }
        return Ok((r as usize, got));
    }
}

/// Writes all of `buf` (never raising SIGPIPE).
pub(crate) fn send_all(fd: RawFd, buf: &[u8]) -> Result<(), ChanError> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &buf[done..];
        // SAFETY: rest is a valid readable buffer of rest.len() bytes.
        let r = unsafe { libc::send(fd, rest.as_ptr().cast(), rest.len(), libc::MSG_NOSIGNAL) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            if matches!(e.raw_os_error(), Some(libc::EPIPE) | Some(libc::ECONNRESET)) {
                return Err(ChanError::Eof);
            }
            return Err(ChanError::Io(e));
        }
        done += r as usize;
    }
    Ok(())
}

/// `pidfd_open(pid, 0)`; `None` where the kernel lacks it.
pub(crate) fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if r < 0 {
        return None;
    }
    // SAFETY: r is a freshly created fd owned by nobody else.
    Some(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// `pidfd_send_signal(pidfd, sig, NULL, 0)`.
pub(crate) fn pidfd_kill(pidfd: &OwnedFd, sig: i32) {
    // SAFETY: a NULL siginfo is allowed; the fd is a valid pidfd.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        );
    }
}

/// `kill(pid, sig)`, ignoring failure.
pub(crate) fn kill(pid: i32, sig: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// `waitpid(pid, 0)` for a child of this process: its wait status, or
/// `None` if it cannot be waited for (already reaped, not our child).
pub(crate) fn waitpid(pid: i32, block: bool) -> Option<i32> {
    let mut status = 0;
    loop {
        let flags = if block { 0 } else { libc::WNOHANG };
        // SAFETY: status is a valid int for the kernel to fill.
        let r = unsafe { libc::waitpid(pid, &mut status, flags) };
        if r == pid {
            return Some(status);
        }
        if r < 0 && errno() == libc::EINTR {
            continue;
        }
        return None;
    }
}

/// Waits up to `timeout` for child `pid` to end; its wait status.
pub(crate) fn waitpid_timeout(pid: i32, timeout: Duration) -> Option<i32> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = waitpid(pid, false) {
            return Some(s);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A wait status in words.
pub(crate) fn describe_status(status: i32) -> String {
    if libc::WIFEXITED(status) {
        format!("exited with status {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        format!("killed by signal {sig} ({})", signal_name(sig))
    } else {
        format!("wait status {status:#x}")
    }
}

pub(crate) fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        _ => "?",
    }
}

/// `geteuid()`.
pub(crate) fn geteuid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// `getrlimit(resource)`.
pub(crate) fn getrlimit(resource: u32) -> io::Result<libc::rlimit> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: r is a valid rlimit for the kernel to fill.
    if unsafe { libc::getrlimit(resource as _, &mut r) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r)
}

/// Keeps the calling thread on the CPUs a process is allowed (the puppet is
/// pinned to one) until dropped, then restores the thread's own mask.
///
/// Why: pages a forced access through `/proc/PID/mem` faults in wait in the
/// *caller's* per-CPU LRU batch, and calls such as `MADV_COLD` drain only
/// their own CPU's batch before skipping pages that are not yet on an LRU
/// list. Doing the access from the puppet's CPU makes the outcome the one a
/// single-CPU machine (and the engine) gives. Best effort: on any error the
/// thread stays where it is.
pub(crate) struct CpuPin {
    saved: Option<libc::cpu_set_t>,
}

impl CpuPin {
    pub(crate) fn to_cpus_of(pid: i32) -> CpuPin {
        let size = core::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: cpu_set_t is plain data; the calls write at most `size`
        // bytes into the sets passed.
        unsafe {
            let mut theirs: libc::cpu_set_t = core::mem::zeroed();
            let mut ours: libc::cpu_set_t = core::mem::zeroed();
            if libc::sched_getaffinity(pid, size, &mut theirs) != 0
                || libc::sched_getaffinity(0, size, &mut ours) != 0
                || libc::sched_setaffinity(0, size, &theirs) != 0
            {
                return CpuPin { saved: None };
            }
            CpuPin { saved: Some(ours) }
        }
    }
}

impl Drop for CpuPin {
    fn drop(&mut self) {
        if let Some(set) = &self.saved {
            // SAFETY: `set` is a valid cpu_set_t read by sched_getaffinity.
            unsafe {
                libc::sched_setaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), set);
            }
        }
    }
}
