//! The session: a private scenario directory on tmpfs, the puppet image in a
//! memfd, and spawning the first puppet.

use std::ffi::{CStr, CString};
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::proto::{CHAN_FD, READY_MAGIC};
use crate::puppet::Puppet;
use crate::sys;
use crate::HostError;

/// The puppet executable, built by `build.rs`.
static PUPPET_IMAGE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/vmspace-puppet"));

/// The puppet's ELF image (a static x86-64 executable loaded at 0x400000).
pub fn puppet_image() -> &'static [u8] {
    PUPPET_IMAGE
}

/// 8 MiB: the default `RLIMIT_STACK` soft limit and `RLIMIT_MEMLOCK`.
pub const EIGHT_MIB: u64 = 8 << 20;

/// How puppets are started.
#[derive(Clone, Debug)]
pub struct HostOptions {
    /// Run the puppets as an unprivileged user. Defaults to true when the
    /// runner's effective uid is 0: the puppet then runs as
    /// [`unprivileged_uid`](Self::unprivileged_uid) /
    /// [`unprivileged_gid`](Self::unprivileged_gid) with no supplementary
    /// groups, so that it holds no capabilities (`CAP_IPC_LOCK`,
    /// `CAP_SYS_RESOURCE`, ...), like the scenario's unprivileged process. If
    /// that uid cannot be taken (a user namespace without it), the puppet
    /// stays uid 0 but gets `SECBIT_NOROOT` so that exec grants it no
    /// capabilities.
    pub drop_privileges: bool,
    /// Default 65534 (`nobody`).
    pub unprivileged_uid: u32,
    /// Default 65534 (`nogroup`).
    pub unprivileged_gid: u32,
    /// `RLIMIT_STACK` soft limit, default 8 MiB. The hard limit becomes
    /// `RLIM_INFINITY` when the runner may raise it (as root), else it
    /// stays the runner's (and the soft limit is capped by it).
    pub stack_limit: u64,
    /// `RLIMIT_MEMLOCK` soft and hard limit, default 8 MiB (capped by the
    /// runner's hard limit when it may not raise it).
    pub memlock_limit: u64,
    /// How long one request may take before the puppet is declared hung
    /// (and killed). Default 60 s.
    pub timeout: Duration,
    /// Where the private scenario directory is created (default
    /// `/dev/shm`, a tmpfs).
    pub dir_parent: PathBuf,
}

impl Default for HostOptions {
    fn default() -> Self {
        HostOptions {
            drop_privileges: sys::geteuid() == 0,
            unprivileged_uid: 65534,
            unprivileged_gid: 65534,
            stack_limit: EIGHT_MIB,
            memlock_limit: EIGHT_MIB,
            timeout: Duration::from_secs(60),
            dir_parent: PathBuf::from("/dev/shm"),
        }
    }
}

/// A host session: the private scenario directory and the puppet image.
/// Dropping it removes the directory (drop the puppets first).
#[derive(Debug)]
pub struct Host {
    dir: PathBuf,
    exe: OwnedFd,
    opts: HostOptions,
}

impl Host {
    /// A session with default options.
    pub fn new() -> Result<Host, HostError> {
        Host::with_options(HostOptions::default())
    }

    /// A session with the given options: creates the directory
    /// (`DIR_PARENT/vmspace-XXXXXX`, mode 0777) and the puppet memfd.
    pub fn with_options(opts: HostOptions) -> Result<Host, HostError> {
        if PUPPET_IMAGE.is_empty() {
            return Err(HostError::new(
                "the host backend needs Linux on x86-64 (no puppet was built for this target)",
            ));
        }
        let exe = make_memfd()?;
        let dir = make_dir(&opts.dir_parent)?;
        Ok(Host { dir, exe, opts })
    }

    /// The private scenario directory (canonical path): scenario file paths
    /// are relative to it.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The options in force.
    pub fn options(&self) -> &HostOptions {
        &self.opts
    }

    /// Starts a puppet: a fresh process running the puppet image with
    /// address-space randomisation off, an empty environment, argv
    /// `["vmspace-puppet"]`, stdin/stdout/stderr on `/dev/null`, the limits
    /// of [`HostOptions`], and (as root) no privileges. Returns once the
    /// puppet is ready for requests.
    pub fn spawn(&self) -> Result<Puppet, HostError> {
        let plan = ChildPlan::new(&self.opts)?;
        let (ours, theirs) = sys::socketpair().map_err(|e| HostError::io("socketpair", e))?;
        let (err_r, err_w) = sys::pipe().map_err(|e| HostError::io("pipe", e))?;
        let devnull =
            sys::open(c"/dev/null", libc::O_RDWR).map_err(|e| HostError::io("/dev/null", e))?;
        let argv0: &CStr = c"vmspace-puppet";
        let argv: [*const libc::c_char; 2] = [argv0.as_ptr(), std::ptr::null()];
        let envp: [*const libc::c_char; 1] = [std::ptr::null()];
        let fds = ChildFds {
            exe: self.exe.as_raw_fd(),
            chan: theirs.as_raw_fd(),
            devnull: devnull.as_raw_fd(),
            err: err_w.as_raw_fd(),
        };

        // SAFETY: fork has no memory-safety preconditions; the child only
        // makes raw system calls (async-signal-safe) on data prepared
        // before the fork and then execs or exits.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(HostError::io("fork", std::io::Error::last_os_error()));
        }
        if pid == 0 {
            // SAFETY: we are the child of a fork; child_main only makes raw
            // system calls with pointers into memory that stays valid.
            unsafe { child_main(&plan, &fds, &argv, &envp) }
        }
        drop(theirs);
        drop(err_w);
        drop(devnull);

        // Exec succeeded when the CLOEXEC error pipe closes without data.
        let mut report = [0u8; 8];
        let deadline = Instant::now() + self.opts.timeout;
        let mut got = 0;
        let read_res = loop {
            match sys::read_exact(err_r.as_raw_fd(), &mut report[got..got + 1], deadline) {
                Ok(()) => {
                    got += 1;
                    if got == report.len() {
                        break Ok(());
                    }
                }
                Err(e) => break Err(e),
            }
        };
        match read_res {
            Err(sys::ChanError::Eof) if got == 0 => {}
            Ok(()) => {
                let stage = i32::from_ne_bytes(report[0..4].try_into().unwrap_or([0; 4]));
                let err = i32::from_ne_bytes(report[4..8].try_into().unwrap_or([0; 4]));
                sys::waitpid(pid, true);
                return Err(HostError::new(format!(
                    "starting the host helper failed at {}: {}",
                    stage_name(stage),
                    std::io::Error::from_raw_os_error(err)
                )));
            }
            Err(e) => {
                sys::kill(pid, libc::SIGKILL);
                sys::waitpid(pid, true);
                return Err(HostError::new(format!(
                    "starting the host helper failed: {e:?}"
                )));
            }
        }
        let mut puppet = Puppet::new(pid, ours, None, true, self.opts.timeout);
        let ready = puppet.read_ready()?;
        if ready != READY_MAGIC {
            return Err(HostError::new(format!(
                "the host helper sent a bad greeting ({ready:#x})"
            )));
        }
        Ok(puppet)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn make_memfd() -> Result<OwnedFd, HostError> {
    const MFD_EXEC: libc::c_uint = 0x0010;
    let name = c"vmspace-puppet";
    let mut fd = -1;
    for flags in [libc::MFD_CLOEXEC | MFD_EXEC, libc::MFD_CLOEXEC] {
        // SAFETY: name is NUL-terminated.
        fd = unsafe { libc::memfd_create(name.as_ptr(), flags) };
        if fd >= 0 {
            break;
        }
    }
    if fd < 0 {
        return Err(HostError::io(
            "memfd_create",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: fd was just created and is owned by nobody else.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut file = std::fs::File::from(owned);
    file.write_all(PUPPET_IMAGE)
        .map_err(|e| HostError::io("writing the puppet image", e))?;
    Ok(OwnedFd::from(file))
}

fn make_dir(parent: &Path) -> Result<PathBuf, HostError> {
    let mut template = parent.as_os_str().as_bytes().to_vec();
    template.extend_from_slice(b"/vmspace-XXXXXX\0");
    // SAFETY: template is a writable NUL-terminated buffer ending in XXXXXX.
    let p = unsafe { libc::mkdtemp(template.as_mut_ptr().cast()) };
    if p.is_null() {
        return Err(HostError::io(
            &format!("creating a scenario directory in {}", parent.display()),
            std::io::Error::last_os_error(),
        ));
    }
    template.pop();
    let dir = PathBuf::from(std::ffi::OsStr::from_bytes(&template));
    let cdir = CString::new(template).map_err(|_| HostError::new("bad directory name"))?;
    // SAFETY: cdir is NUL-terminated. Mode 0777 so a puppet running as
    // nobody can create files in it.
    if unsafe { libc::chmod(cdir.as_ptr(), 0o777) } != 0 {
        let e = std::io::Error::last_os_error();
        let _ = std::fs::remove_dir(&dir);
        return Err(HostError::io("chmod of the scenario directory", e));
    }
    Ok(std::fs::canonicalize(&dir).unwrap_or(dir))
}

/// One resource limit to set in the child: the preferred value, then a
/// fallback that never needs privilege.
#[derive(Clone, Copy)]
struct LimitPlan {
    resource: u32,
    want: libc::rlimit,
    fallback: libc::rlimit,
}

/// Everything the child needs, computed before the fork.
struct ChildPlan {
    limits: [LimitPlan; 5],
    drop_privileges: bool,
    uid: u32,
    gid: u32,
    /// Which of the allowed CPUs the puppet takes (counted modulo their
    /// number): puppets started one after another spread over the CPUs.
    cpu_slot: usize,
}

/// The next puppet's CPU slot (see [`ChildPlan::cpu_slot`]).
static NEXT_CPU: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

struct ChildFds {
    exe: RawFd,
    chan: RawFd,
    devnull: RawFd,
    err: RawFd,
}

const STAGE_PERSONALITY: i32 = 1;
const STAGE_RLIMIT: i32 = 2;
const STAGE_FDS: i32 = 3;
const STAGE_PRIVS: i32 = 4;
const STAGE_EXEC: i32 = 5;

fn stage_name(stage: i32) -> &'static str {
    match stage {
        STAGE_PERSONALITY => "personality(ADDR_NO_RANDOMIZE)",
        STAGE_RLIMIT => "setting resource limits",
        STAGE_FDS => "setting up file descriptors",
        STAGE_PRIVS => "dropping privileges",
        STAGE_EXEC => "execveat of the puppet",
        _ => "an unknown stage",
    }
}

impl ChildPlan {
    fn new(opts: &HostOptions) -> Result<ChildPlan, HostError> {
        let root = sys::geteuid() == 0;
        let inf = libc::RLIM_INFINITY;
        let get = |res: u32| sys::getrlimit(res).map_err(|e| HostError::io("getrlimit", e));
        let rl = |cur, max| libc::rlimit {
            rlim_cur: cur,
            rlim_max: max,
        };

        let stack = get(libc::RLIMIT_STACK)?;
        let stack_hard = if root { inf } else { stack.rlim_max };
        let stack_plan = LimitPlan {
            resource: libc::RLIMIT_STACK,
            want: rl(opts.stack_limit.min(stack_hard), stack_hard),
            fallback: rl(opts.stack_limit.min(stack.rlim_max), stack.rlim_max),
        };

        let memlock = get(libc::RLIMIT_MEMLOCK)?;
        let ml_hard = if root || memlock.rlim_max >= opts.memlock_limit {
            opts.memlock_limit
        } else {
            memlock.rlim_max
        };
        let memlock_plan = LimitPlan {
            resource: libc::RLIMIT_MEMLOCK,
            want: rl(opts.memlock_limit.min(ml_hard), ml_hard),
            fallback: rl(opts.memlock_limit.min(memlock.rlim_max), memlock.rlim_max),
        };

        let unlimited = |res: u32| -> Result<LimitPlan, HostError> {
            let cur = get(res)?;
            Ok(LimitPlan {
                resource: res,
                want: rl(inf, inf),
                fallback: rl(cur.rlim_max, cur.rlim_max),
            })
        };

        // The channel lives at fd CHAN_FD, so RLIMIT_NOFILE must exceed it.
        let nofile = get(libc::RLIMIT_NOFILE)?;
        let need = CHAN_FD as u64 + 1;
        let nofile_plan = if nofile.rlim_cur >= need {
            LimitPlan {
                resource: libc::RLIMIT_NOFILE,
                want: nofile,
                fallback: nofile,
            }
        } else {
            let cur = 1024u64.min(nofile.rlim_max).max(need);
            LimitPlan {
                resource: libc::RLIMIT_NOFILE,
                want: rl(cur, nofile.rlim_max.max(cur)),
                fallback: rl(cur, nofile.rlim_max.max(cur)),
            }
        };

        Ok(ChildPlan {
            limits: [
                stack_plan,
                memlock_plan,
                unlimited(libc::RLIMIT_AS)?,
                unlimited(libc::RLIMIT_DATA)?,
                nofile_plan,
            ],
            drop_privileges: opts.drop_privileges,
            uid: opts.unprivileged_uid,
            gid: opts.unprivileged_gid,
            cpu_slot: NEXT_CPU.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        })
    }
}

/// Reports a failed stage on the error pipe and exits.
///
/// # Safety
/// Only for the forked child.
unsafe fn child_fail(fds: &ChildFds, stage: i32) -> ! {
    let err = sys::errno();
    let mut msg = [0u8; 8];
    msg[0..4].copy_from_slice(&stage.to_ne_bytes());
    msg[4..8].copy_from_slice(&err.to_ne_bytes());
    // SAFETY: msg is a valid buffer; _exit never returns.
    unsafe {
        libc::write(fds.err, msg.as_ptr().cast(), msg.len());
        libc::_exit(127)
    }
}

/// The forked child: set up the process and exec the puppet.
///
/// # Safety
/// Only for the child of `fork()`: it makes raw system calls only.
unsafe fn child_main(
    plan: &ChildPlan,
    fds: &ChildFds,
    argv: &[*const libc::c_char; 2],
    envp: &[*const libc::c_char; 1],
) -> ! {
    // SAFETY: (the whole body) raw system calls with valid pointers into
    // the plan and argument arrays, which the fork copied.
    unsafe {
        // A clean signal mask (the puppet's fault handlers must work) and
        // default dispositions (ignored signals would survive the exec).
        let empty: u64 = 0;
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &empty,
            0usize,
            8usize,
        );
        let dfl = [0u64; 4]; // kernel sigaction: SIG_DFL, no flags, empty mask
        for sig in 1..=64 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::syscall(libc::SYS_rt_sigaction, sig, dfl.as_ptr(), 0usize, 8usize);
            }
        }

        const PER_LINUX: libc::c_ulong = 0;
        const ADDR_NO_RANDOMIZE: libc::c_ulong = 0x0040000;
        if libc::syscall(libc::SYS_personality, PER_LINUX | ADDR_NO_RANDOMIZE) < 0 {
            child_fail(fds, STAGE_PERSONALITY);
        }
        // One CPU only: the kernel keeps resident-set counters and LRU
        // batches per CPU, and VmHWM and Referenced show their state; a
        // puppet that never migrates makes that deterministic. Puppets
        // started one after another take different CPUs, so that scenarios
        // run in parallel do not drain each other's batches. Best effort.
        let mut set: libc::cpu_set_t = core::mem::zeroed();
        if libc::sched_getaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            let allowed = (0..libc::CPU_SETSIZE as usize).filter(|&c| libc::CPU_ISSET(c, &set));
            let n = allowed.clone().count().max(1);
            if let Some(cpu) = allowed.clone().nth(plan.cpu_slot % n) {
                let mut one: libc::cpu_set_t = core::mem::zeroed();
                libc::CPU_SET(cpu, &mut one);
                libc::sched_setaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &one);
            }
        }

        for l in &plan.limits {
            let set = |r: &libc::rlimit| {
                libc::syscall(
                    libc::SYS_prlimit64,
                    0,
                    l.resource,
                    r as *const libc::rlimit,
                    std::ptr::null_mut::<libc::rlimit>(),
                )
            };
            if set(&l.want) != 0 && set(&l.fallback) != 0 {
                child_fail(fds, STAGE_RLIMIT);
            }
        }

        // Nothing the runner opened leaks into the puppet except what we
        // place: 0-2 on /dev/null and the channel at CHAN_FD.
        const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC);
        for target in 0..3 {
            if libc::syscall(libc::SYS_dup2, fds.devnull, target) < 0 {
                child_fail(fds, STAGE_FDS);
            }
        }
        if fds.chan == CHAN_FD {
            if libc::syscall(libc::SYS_fcntl, CHAN_FD, libc::F_SETFD, 0) < 0 {
                child_fail(fds, STAGE_FDS);
            }
        } else if libc::syscall(libc::SYS_dup2, fds.chan, CHAN_FD) < 0 {
            child_fail(fds, STAGE_FDS);
        }

        if plan.drop_privileges {
            let dropped = libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>())
                == 0
                && libc::syscall(libc::SYS_setresgid, plan.gid, plan.gid, plan.gid) == 0
                && libc::syscall(libc::SYS_setresuid, plan.uid, plan.uid, plan.uid) == 0;
            if !dropped {
                // Stay uid 0 but make exec grant no capabilities.
                const SECBIT_NOROOT: libc::c_ulong = 1 << 0;
                const SECBIT_NOROOT_LOCKED: libc::c_ulong = 1 << 1;
                libc::syscall(
                    libc::SYS_prctl,
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_CLEAR_ALL,
                    0,
                    0,
                    0,
                );
                if libc::syscall(
                    libc::SYS_prctl,
                    libc::PR_SET_SECUREBITS,
                    SECBIT_NOROOT | SECBIT_NOROOT_LOCKED,
                    0,
                    0,
                    0,
                ) != 0
                {
                    child_fail(fds, STAGE_PRIVS);
                }
            }
        }

        libc::syscall(
            libc::SYS_execveat,
            fds.exe,
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        );
        child_fail(fds, STAGE_EXEC)
    }
}
