//! Fork benchmarks: the engine against the running Linux kernel.
//!
//! Every timed operation runs twice in the same process and the same run:
//! once on a simulated `vmspace` process (`…/engine/…`) and once on this
//! very process through real system calls and memory accesses
//! (`…/kernel/…`). The machine this runs on may be shared and noisy: read
//! medians and engine/kernel ratios, not absolute numbers.
//!
//! Groups (ids pair up by name):
//!
//! - `fork/{engine,kernel}/{0,256M,1G}`: one `fork` of a process with that
//!   much private anonymous memory resident on top of its image (written
//!   once, page by page, before any timing). Only the fork is timed.
//!   Engine: `System::fork` of the process; the child's `System::exit`
//!   follows, untimed. Kernel: `fork()` of this process, which first maps
//!   and writes the same amount of its own memory (`MADV_NOHUGEPAGE`, so
//!   4 KiB pages as in the engine); the child `_exit(0)`s at once, and the
//!   parent times only its own `fork()` call, then `waitpid`s (untimed).
//!   The parent's page-table entries stay write-protected across
//!   iterations on both sides (nothing writes between forks), so every
//!   fork does the same work. `…/0` forks the bare process: the engine's
//!   default image against this benchmark binary, which has more regions
//!   and more anonymous memory of its own (both are printed beforehand).
//! - `cow_fault/{engine,kernel}/256M`: after a fork (untimed) of a process
//!   with 256 MiB resident, the child writes one byte to every page of it:
//!   one copy-on-write fault per page, each allocating a frame and copying
//!   4096 bytes. Throughput is in pages, so criterion prints pages per
//!   second as `elem/s`. Engine: `System::store(child, addr + i * 4096, 1,
//!   2)` per page, timed; the child's exit is untimed. Kernel: the child
//!   times its own loop of volatile one-byte writes and sends the elapsed
//!   nanoseconds (and its `ru_minflt` delta) to the parent through a pipe;
//!   the fork, the child's exit and the `waitpid` are untimed.
//!   `cow_fault/memcpy/256M` is the physical floor of a copying fault:
//!   `copy_from_slice` of each 4 KiB page of the resident 256 MiB region
//!   into a page of a second resident 256 MiB buffer, per page.
//!
//! The engine side runs on a machine with 4 GiB of RAM (room for 1 GiB
//! resident under the default heuristic overcommit). Each engine machine
//! does one untimed fork (and, for `cow_fault`, one untimed touch cycle)
//! first, so its frames come from its free list, already backed by host
//! memory, as the kernel's come from its own. Engine machines are dropped
//! (and the heap trimmed) before the kernel side of the same size runs,
//! so this process's resident set is what the id says.
//!
//! Before the timings, stderr gets, for each size: both parents' regions,
//! `VmRSS` and `VmPTE`, the frames one engine fork allocates, and one
//! untimed split of fork / child exit on each side; and the faults each
//! child takes per page in `cow_fault` (a sanity check: one each).
//!
//! Profiling: with `VMSPACE_FORK_PROFILE=fork` (or `cow`) the binary skips
//! criterion, builds one engine machine with `VMSPACE_FORK_MIB` MiB
//! resident (default 64), warms it as the benchmark does and runs
//! `VMSPACE_FORK_REPS` more cycles (default 1) whose timed part is the
//! function `profile_fork` (or `profile_cow`), e.g.
//! `valgrind --tool=callgrind --toggle-collect='*profile_fork*' <bench binary>`
//! or `perf record --call-graph dwarf` keeping the samples under it.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use vmspace::uapi::{MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE};
use vmspace::{Params, Pid, System};

const PAGE: u64 = 4096;
/// Resident sizes for `fork`: bytes and the id's suffix.
const SIZES: [(u64, &str); 3] = [(0, "0"), (256 << 20, "256M"), (1 << 30, "1G")];
/// Resident bytes the `cow_fault` child writes to.
const COW_REGION: u64 = 256 << 20;
const COW_PAGES: u64 = COW_REGION / PAGE;

// ----- the engine ----------------------------------------------------------

/// A simulated machine with one process holding `len` bytes of private
/// anonymous memory at `addr`, every page written once.
struct Engine {
    sys: System,
    pid: Pid,
    addr: u64,
}

impl Engine {
    fn new(resident: u64) -> Self {
        let mut sys = System::new(Params {
            ram: 4 << 30,
            ..Params::default()
        });
        let pid = sys.spawn_default();
        let mut addr = 0;
        if resident > 0 {
            addr = sys
                .mmap(
                    pid,
                    0,
                    resident,
                    PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS,
                    u64::MAX,
                    0,
                )
                .unwrap_or_else(|e| panic!("engine mmap: {}", e.name()));
            for i in 0..resident / PAGE {
                sys.store(pid, addr + i * PAGE, 1, 1).expect("engine store");
            }
        }
        Engine { sys, pid, addr }
    }

    #[inline]
    fn fork(&mut self) -> Pid {
        self.sys
            .fork(self.pid)
            .unwrap_or_else(|e| panic!("engine fork: {}", e.name()))
    }

    fn exit(&mut self, child: Pid) {
        self.sys
            .exit(child)
            .unwrap_or_else(|e| panic!("engine exit: {}", e.name()));
    }

    /// The child writes one byte to each of `pages` pages of the region.
    #[inline]
    fn child_writes(&mut self, child: Pid, pages: u64) {
        let addr = black_box(self.addr);
        for i in 0..pages {
            self.sys
                .store(child, addr + i * PAGE, 1, 2)
                .expect("engine store");
        }
    }

    fn min_flt(&self, pid: Pid) -> u64 {
        self.sys
            .process(pid)
            .expect("the process exists")
            .mm
            .mem
            .min_flt
    }

    fn used_frames(&self) -> u64 {
        self.sys.kernel.phys.used_frames()
    }

    fn regions(&self) -> usize {
        self.sys
            .process(self.pid)
            .expect("the process exists")
            .mm
            .vmas()
            .count()
    }

    /// A `/proc/PID/status` field of the parent, in kB.
    fn status_kb(&self, key: &str) -> u64 {
        status_field(&self.sys.status(self.pid).expect("engine status"), key)
    }

    /// `iters` forks; only the forks are timed.
    fn forks(&mut self, iters: u64) -> Duration {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let t = Instant::now();
            let child = self.fork();
            total += t.elapsed();
            self.exit(child);
        }
        total
    }

    /// `iters` fork-write-exit cycles; only the child's writes are timed.
    fn cow_cycles(&mut self, iters: u64) -> Duration {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let child = self.fork();
            let t = Instant::now();
            self.child_writes(child, COW_PAGES);
            total += t.elapsed();
            self.exit(child);
        }
        total
    }
}

// ----- the kernel ----------------------------------------------------------

/// `len` bytes of private anonymous memory of this process, in 4 KiB pages,
/// every page written once; unmapped on drop.
struct Region {
    addr: u64,
    len: u64,
}

impl Region {
    fn new(len: u64) -> Self {
        if len == 0 {
            return Region { addr: 0, len };
        }
        // SAFETY: a fresh private anonymous mapping, touched only through
        // raw pointers and unmapped on drop.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(
            p,
            libc::MAP_FAILED,
            "kernel mmap: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: advice on the mapping just made.
        let r = unsafe { libc::madvise(p, len as usize, libc::MADV_NOHUGEPAGE) };
        assert_eq!(r, 0, "madvise: {}", std::io::Error::last_os_error());
        write_pages(p as u64, len / PAGE, 1);
        Region {
            addr: p as u64,
            len,
        }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: the mapping `new` made, with no references into it.
            let r = unsafe { libc::munmap(self.addr as *mut libc::c_void, self.len as usize) };
            assert_eq!(r, 0, "munmap: {}", std::io::Error::last_os_error());
        }
    }
}

/// Writes `byte` to the first byte of each of `pages` pages from `addr`.
#[inline]
fn write_pages(addr: u64, pages: u64, byte: u8) {
    let p = addr as *mut u8;
    for i in 0..pages as usize {
        // SAFETY: callers pass a readable, writable mapping of `pages`
        // pages.
        unsafe { std::ptr::write_volatile(p.add(i * PAGE as usize), byte) };
    }
}

/// `ru_minflt` of this process.
fn kernel_min_flt() -> u64 {
    // SAFETY: getrusage fills the struct it is given.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u.ru_minflt as u64
    }
}

/// Waits for `pid`, which must exit with status 0.
fn wait_child(pid: libc::pid_t) {
    let mut status = 0;
    loop {
        // SAFETY: waits for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::Interrupted,
            "waitpid: {err}"
        );
    }
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child status {status:#x}"
    );
}

/// One `fork()` of this process; the child exits at once. Returns the time
/// the parent spent in `fork()` and the child's pid (not yet waited for).
#[inline]
fn kernel_fork() -> (Duration, libc::pid_t) {
    let t = Instant::now();
    // SAFETY: the child only calls `_exit`, which is async-signal-safe.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: ends the child without running any of the parent's
        // exit handlers.
        unsafe { libc::_exit(0) };
    }
    let dt = t.elapsed();
    assert!(pid > 0, "fork: {}", std::io::Error::last_os_error());
    (dt, pid)
}

/// `iters` forks of this process; only the parent's `fork()` is timed.
fn kernel_forks(iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let (dt, pid) = kernel_fork();
        total += dt;
        wait_child(pid);
    }
    total
}

/// One fork whose child writes one byte to each of `pages` pages from
/// `addr`, timing its own loop. Returns the child's time and its
/// `ru_minflt` delta over the loop.
fn kernel_cow(addr: u64, pages: u64) -> (Duration, u64) {
    let mut fds = [0; 2];
    // SAFETY: pipe fills the two descriptors.
    let r = unsafe { libc::pipe(fds.as_mut_ptr()) };
    assert_eq!(r, 0, "pipe: {}", std::io::Error::last_os_error());
    // SAFETY: the child makes only system calls, clock reads and volatile
    // writes to memory it owns, then `_exit`s.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let f0 = kernel_min_flt();
        let t = Instant::now();
        write_pages(addr, pages, 2);
        let ns = t.elapsed().as_nanos() as u64;
        let f1 = kernel_min_flt();
        let msg = [ns, f1 - f0];
        // SAFETY: writes the 16 bytes of `msg` to the pipe, then ends the
        // child.
        unsafe {
            libc::write(fds[1], msg.as_ptr().cast(), 16);
            libc::_exit(0);
        }
    }
    assert!(pid > 0, "fork: {}", std::io::Error::last_os_error());
    let mut msg = [0u64; 2];
    let mut got = 0usize;
    // SAFETY: closes our copy of the write end, so a child that dies
    // early gives end-of-file instead of a hang.
    unsafe { libc::close(fds[1]) };
    while got < 16 {
        // SAFETY: reads into the rest of `msg`'s 16 bytes.
        let n = unsafe {
            libc::read(
                fds[0],
                msg.as_mut_ptr().cast::<u8>().add(got).cast(),
                16 - got,
            )
        };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        assert!(n > 0, "the child sent {got} of 16 bytes");
        got += n as usize;
    }
    // SAFETY: our read end, no longer used.
    unsafe { libc::close(fds[0]) };
    wait_child(pid);
    (Duration::from_nanos(msg[0]), msg[1])
}

/// Copies every page of `region` into the same page of `dst`.
#[inline(never)]
fn copy_pages(region: &Region, dst: &mut [u8]) {
    // SAFETY: the region is mapped, readable and `len` bytes long; nothing
    // writes to it while this slice lives.
    let src = unsafe { std::slice::from_raw_parts(region.addr as *const u8, region.len as usize) };
    for (d, s) in dst
        .chunks_exact_mut(PAGE as usize)
        .zip(src.chunks_exact(PAGE as usize))
    {
        d.copy_from_slice(black_box(s));
    }
}

/// `iters` fork-write-exit cycles; only the children's writes are timed.
fn kernel_cow_cycles(region: &Region, iters: u64) -> Duration {
    (0..iters)
        .map(|_| kernel_cow(region.addr, COW_PAGES).0)
        .sum()
}

/// A field of `/proc/self/status`, in kB.
fn kernel_status_kb(key: &str) -> u64 {
    status_field(
        &std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status"),
        key,
    )
}

fn kernel_regions() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .expect("read /proc/self/maps")
        .lines()
        .count()
}

/// The number in a `Key:   123 kB` line of a status text.
fn status_field(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in status"))
}

/// Gives freed engine memory back to the host kernel, so this process's
/// resident set is only what the kernel benchmark maps.
fn trim_heap() {
    // SAFETY: malloc_trim only releases free heap memory.
    unsafe { libc::malloc_trim(0) };
}

// ----- reports on stderr ----------------------------------------------------

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Both parents' shapes, and one fork and child exit split on each side.
fn fork_report() {
    eprintln!("fork, one untimed split per size (the second of two forks): fork / child exit");
    for (bytes, name) in SIZES {
        let mut e = Engine::new(bytes);
        let child = e.fork();
        e.exit(child);
        let u0 = e.used_frames();
        let t0 = Instant::now();
        let child = e.fork();
        let t1 = Instant::now();
        let u1 = e.used_frames();
        e.exit(child);
        let t2 = Instant::now();
        eprintln!(
            "  {name}/engine: {} regions, VmRSS {} kB, VmPTE {} kB; fork allocates {} frames; \
             {:.3} ms / {:.3} ms",
            e.regions(),
            e.status_kb("VmRSS"),
            e.status_kb("VmPTE"),
            u1 - u0,
            ms(t1 - t0),
            ms(t2 - t1)
        );
        drop(e);
        trim_heap();

        let region = Region::new(bytes);
        wait_child(kernel_fork().1);
        let (dt, pid) = kernel_fork();
        let t = Instant::now();
        wait_child(pid);
        eprintln!(
            "  {name}/kernel: {} regions, VmRSS {} kB, VmPTE {} kB; \
             {:.3} ms / {:.3} ms (exit + waitpid)",
            kernel_regions(),
            kernel_status_kb("VmRSS"),
            kernel_status_kb("VmPTE"),
            ms(dt),
            ms(t.elapsed())
        );
        drop(region);
    }
}

/// Faults each child takes per page it writes after fork.
fn cow_report() {
    let mut e = Engine::new(COW_REGION);
    let child = e.fork();
    let (f0, u0) = (e.min_flt(child), e.used_frames());
    e.child_writes(child, COW_PAGES);
    let (f1, u1) = (e.min_flt(child), e.used_frames());
    e.exit(child);
    drop(e);
    trim_heap();
    let region = Region::new(COW_REGION);
    let (_, kf) = kernel_cow(region.addr, COW_PAGES);
    drop(region);
    eprintln!(
        "cow_fault faults per page: engine {:.3} ({} frames allocated), kernel {:.3} (child's ru_minflt)",
        (f1 - f0) as f64 / COW_PAGES as f64,
        u1 - u0,
        kf as f64 / COW_PAGES as f64
    );
}

// ----- benchmarks ----------------------------------------------------------

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(1000))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10)
        .without_plots()
        .configure_from_args()
}

fn fork(c: &mut Criterion) {
    let mut g = c.benchmark_group("fork");
    g.sampling_mode(SamplingMode::Flat);
    for (bytes, name) in SIZES {
        let mut e = Engine::new(bytes);
        // One untimed fork: the parent's entries are write-protected and
        // the child's tables come from the free list from now on.
        e.forks(1);
        g.bench_function(BenchmarkId::new("engine", name), |b| {
            b.iter_custom(|n| e.forks(n))
        });
        drop(e);
        trim_heap();

        let region = Region::new(bytes);
        kernel_forks(1);
        g.bench_function(BenchmarkId::new("kernel", name), |b| {
            b.iter_custom(kernel_forks)
        });
        drop(region);
    }
    g.finish();
}

fn cow_fault(c: &mut Criterion) {
    let mut g = c.benchmark_group("cow_fault");
    g.sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Elements(COW_PAGES));
    let name = "256M";

    let mut e = Engine::new(COW_REGION);
    // One untimed cycle: the copies' frames are then backed and on the
    // free list.
    e.cow_cycles(1);
    g.bench_function(BenchmarkId::new("engine", name), |b| {
        b.iter_custom(|n| e.cow_cycles(n))
    });
    drop(e);
    trim_heap();

    let region = Region::new(COW_REGION);
    kernel_cow_cycles(&region, 1);
    g.bench_function(BenchmarkId::new("kernel", name), |b| {
        b.iter_custom(|n| kernel_cow_cycles(&region, n))
    });

    // The physical floor of a copying fault: 4096 bytes from each page of
    // the resident region into a page of a second resident buffer, in turn.
    let mut dst = vec![0u8; COW_REGION as usize];
    dst.fill(1);
    g.bench_function(BenchmarkId::new("memcpy", name), |b| {
        b.iter(|| copy_pages(&region, black_box(&mut dst)))
    });
    drop(dst);
    drop(region);
    g.finish();
}

// ----- profiling -----------------------------------------------------------

/// The fork of a profiling run (a name for `--toggle-collect`).
#[inline(never)]
fn profile_fork(e: &mut Engine) -> Pid {
    e.fork()
}

/// The child's writes of a profiling run (a name for `--toggle-collect`).
#[inline(never)]
fn profile_cow(e: &mut Engine, child: Pid, pages: u64) {
    e.child_writes(child, pages);
}

/// A short engine-only run for callgrind or perf; see the module
/// documentation.
fn profile(kind: &str) {
    let env = |key: &str, default: u64| {
        std::env::var(key)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let mib = env("VMSPACE_FORK_MIB", 64);
    let reps = env("VMSPACE_FORK_REPS", 1).max(1);
    let pages = (mib << 20) / PAGE;
    let mut e = Engine::new(mib << 20);
    let mut times = Vec::new();
    if kind == "cow" {
        // Warm as the benchmark does: one untimed cycle.
        e.cow_cycles(1);
        for _ in 0..reps {
            let child = e.fork();
            let t = Instant::now();
            profile_cow(&mut e, child, pages);
            times.push(t.elapsed());
            e.exit(child);
        }
    } else {
        // Warm as the benchmark does: one untimed fork.
        e.forks(1);
        for _ in 0..reps {
            let t = Instant::now();
            let child = profile_fork(&mut e);
            times.push(t.elapsed());
            e.exit(child);
        }
    }
    times.sort();
    let median = times[times.len() / 2];
    if kind == "cow" {
        eprintln!(
            "profile: {reps} x {pages} copy-on-write faults, median {:.1} ns/page",
            median.as_nanos() as f64 / pages as f64
        );
    } else {
        eprintln!(
            "profile: {reps} x fork of {mib} MiB resident, median {:.3} ms",
            ms(median)
        );
    }
}

fn main() {
    if let Ok(kind) = std::env::var("VMSPACE_FORK_PROFILE") {
        profile(&kind);
        return;
    }
    fork_report();
    cow_report();
    let mut c = config();
    fork(&mut c);
    cow_fault(&mut c);
    c.final_summary();
}
