//! File-mapping fault benchmarks: the engine against the running Linux
//! kernel.
//!
//! Every timed operation runs twice in the same process and the same run:
//! once on a simulated `vmspace` process (`…/engine/…`) and once on this
//! very process through real system calls and memory accesses
//! (`…/kernel/…`). The machine this runs on may be shared and noisy: read
//! medians and engine/kernel ratios, not absolute numbers.
//!
//! Both sides map one 256 MiB tmpfs file whose every page is already in the
//! page cache: written in full once, before any timing, and kept for the
//! whole run. Engine: `System::open(pid, "files-bench", O_RDWR | O_CREAT,
//! 0o600)` and one `System::pwrite` of 256 MiB, on a machine with 4 GiB of
//! RAM. Kernel: a `memfd_create` file (internal tmpfs mount, no
//! `MFD_HUGETLB`) written with `pwrite` in 1 MiB chunks. Each iteration maps
//! the whole file afresh (untimed; the kernel mapping also gets
//! `MADV_NOHUGEPAGE`, and so does the engine's), touches one byte of every
//! page (timed) and unmaps it (untimed), so every iteration faults every
//! page in again from the cache.
//!
//! Groups (ids pair up by name; throughput is in pages, so criterion prints
//! pages per second as `elem/s`):
//!
//! - `file_read_fault/{engine,kernel}/{shared,private}`: `PROT_READ`,
//!   `MAP_SHARED` or `MAP_PRIVATE`, a one-byte read per page
//!   (`System::load(addr, 1)` / a volatile read). A read fault maps the
//!   cached pages around it too (fault-around, `fault_around_bytes` 64 KiB
//!   by default): one fault per 16 pages (4097 a pass when the mapping does
//!   not start on a 64 KiB boundary: the windows are aligned, so the first
//!   and last are cut short).
//! - `file_write_fault/{engine,kernel}/shared`: `PROT_READ | PROT_WRITE`,
//!   `MAP_SHARED`, a one-byte write per page (`System::store(addr, 1, 2)` /
//!   a volatile write): one fault per page, each mapping the cached page
//!   writable (`do_shared_fault`, no fault-around for writes).
//!
//! Before the timings, stderr gets the host's shmem huge-page settings
//! (`/sys/kernel/mm/transparent_hugepage/shmem_enabled` and any per-size
//! setting that is not `never`) and, per case and side, one untimed pass:
//! pages touched, faults taken (the engine's `min_flt`, the kernel's
//! `ru_minflt`), the mapping's `Rss` from `smaps` and the `RssShmem` change
//! in `status` (the engine's `System::smaps`/`System::status`, the kernel's
//! `/proc/self/...`), and for the kernel the mapping's `ShmemPmdMapped`
//! (0 unless huge pages crept in). After criterion's own output comes a
//! summary table: the median of each id's measured samples as time per
//! pass, pages per second and faults per second (faults counted around
//! every timed pass), and engine/kernel ratios.
//!
//! Profiling: with `VMSPACE_FILES_PROFILE=read` (or `read-private`,
//! `write`) the binary skips criterion, builds an engine machine with a
//! cached file of `VMSPACE_FILES_PAGES` pages (default 4096), does one
//! untimed pass and then `VMSPACE_FILES_REPS` more (default 1) whose touch
//! loop is the function `profile_touch`, e.g.
//! `valgrind --tool=callgrind --toggle-collect='*profile_touch*' <bench binary>`
//! or `perf record -e cpu-clock` keeping the samples under it.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use vmspace::uapi::{
    MADV_NOHUGEPAGE, MAP_PRIVATE, MAP_SHARED, O_CREAT, O_RDWR, PROT_READ, PROT_WRITE,
};
use vmspace::{Params, Pid, System};

const PAGE: u64 = 4096;
/// Bytes of the file, all mapped and touched per iteration.
const REGION: u64 = 256 << 20;
/// Pages touched per iteration.
const PAGES: u64 = REGION / PAGE;
/// Criterion samples per id (the summary reads the last this many).
const SAMPLES: usize = 10;

// ----- the cases -------------------------------------------------------------

/// One mapping and access pattern.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Case {
    /// `PROT_READ`, `MAP_SHARED`, reads.
    ReadShared,
    /// `PROT_READ`, `MAP_PRIVATE`, reads.
    ReadPrivate,
    /// `PROT_READ | PROT_WRITE`, `MAP_SHARED`, writes.
    WriteShared,
}

impl Case {
    const ALL: [Case; 3] = [Case::ReadShared, Case::ReadPrivate, Case::WriteShared];

    fn group(self) -> &'static str {
        match self {
            Case::ReadShared | Case::ReadPrivate => "file_read_fault",
            Case::WriteShared => "file_write_fault",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Case::ReadShared | Case::WriteShared => "shared",
            Case::ReadPrivate => "private",
        }
    }

    fn write(self) -> bool {
        self == Case::WriteShared
    }

    fn shared(self) -> bool {
        self != Case::ReadPrivate
    }
}

/// What one side does: map the cached file, touch each page of it once,
/// unmap it.
trait Space {
    fn map(&mut self, case: Case) -> u64;
    fn unmap(&mut self, addr: u64);
    /// Touches one byte of each of `pages` pages from `addr` as `case`
    /// says; returns something computed from what was read.
    fn touch(&mut self, case: Case, addr: u64, pages: u64) -> u64;
    /// Minor faults taken so far.
    fn min_flt(&self) -> u64;
    /// `/proc/PID/smaps` and `/proc/PID/status`.
    fn smaps(&self) -> String;
    fn status(&self) -> String;
}

// ----- the engine ------------------------------------------------------------

/// A simulated machine with one process holding a descriptor of a tmpfs
/// file of `len` bytes, every page of it written (and so cached).
struct Engine {
    sys: System,
    pid: Pid,
    fd: u64,
    len: u64,
}

impl Engine {
    fn new(len: u64) -> Self {
        let mut sys = System::new(Params {
            ram: 4 << 30,
            ..Params::default()
        });
        let pid = sys.spawn_default();
        let fd = sys
            .open(pid, "files-bench", O_RDWR | O_CREAT, 0o600)
            .unwrap_or_else(|e| panic!("engine open: {}", e.name()));
        let n = sys
            .pwrite(pid, fd, 1, len, 0)
            .unwrap_or_else(|e| panic!("engine pwrite: {}", e.name()));
        assert_eq!(n, len, "engine pwrite wrote {n} of {len} bytes");
        Engine { sys, pid, fd, len }
    }

    fn used_frames(&self) -> u64 {
        self.sys.kernel.phys.used_frames()
    }
}

impl Space for Engine {
    fn map(&mut self, case: Case) -> u64 {
        let (prot, flags) = if case.write() {
            (PROT_READ | PROT_WRITE, MAP_SHARED)
        } else if case.shared() {
            (PROT_READ, MAP_SHARED)
        } else {
            (PROT_READ, MAP_PRIVATE)
        };
        let a = self
            .sys
            .mmap(self.pid, 0, self.len, prot, flags, self.fd, 0)
            .unwrap_or_else(|e| panic!("engine mmap: {}", e.name()));
        self.sys
            .madvise(self.pid, a, self.len, MADV_NOHUGEPAGE)
            .unwrap_or_else(|e| panic!("engine madvise: {}", e.name()));
        a
    }

    fn unmap(&mut self, addr: u64) {
        self.sys
            .munmap(self.pid, addr, self.len)
            .unwrap_or_else(|e| panic!("engine munmap: {}", e.name()));
    }

    #[inline]
    fn touch(&mut self, case: Case, addr: u64, pages: u64) -> u64 {
        let mut h = 0;
        if case.write() {
            for i in 0..pages {
                self.sys
                    .store(self.pid, addr + i * PAGE, 1, 2)
                    .expect("engine store");
            }
        } else {
            for i in 0..pages {
                h ^= self
                    .sys
                    .load(self.pid, addr + i * PAGE, 1)
                    .expect("engine load");
            }
        }
        h
    }

    fn min_flt(&self) -> u64 {
        self.sys
            .process(self.pid)
            .expect("the process exists")
            .mm
            .mem
            .min_flt
    }

    fn smaps(&self) -> String {
        self.sys.smaps(self.pid).expect("engine smaps")
    }

    fn status(&self) -> String {
        self.sys.status(self.pid).expect("engine status")
    }
}

// ----- the kernel ------------------------------------------------------------

/// This process, with a `memfd_create` file of `len` bytes, every page of
/// it written (and so cached); closed on drop.
struct Kernel {
    fd: i32,
    len: u64,
}

impl Kernel {
    fn new(len: u64) -> Self {
        // SAFETY: a NUL-terminated name; a plain memfd (no MFD_HUGETLB).
        let fd = unsafe { libc::memfd_create(c"vmspace-files".as_ptr(), libc::MFD_CLOEXEC) };
        assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
        let buf = vec![1u8; 1 << 20];
        let mut off = 0u64;
        while off < len {
            let n = (len - off).min(buf.len() as u64) as usize;
            // SAFETY: writes `n` bytes of `buf` to our own descriptor.
            let r = unsafe { libc::pwrite(fd, buf.as_ptr().cast(), n, off as libc::off_t) };
            if r < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            assert!(r > 0, "pwrite: {}", std::io::Error::last_os_error());
            off += r as u64;
        }
        Kernel { fd, len }
    }
}

impl Drop for Kernel {
    fn drop(&mut self) {
        // SAFETY: our own descriptor, no mapping depends on it staying open.
        unsafe { libc::close(self.fd) };
    }
}

impl Space for Kernel {
    fn map(&mut self, case: Case) -> u64 {
        let (prot, flags) = if case.write() {
            (libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED)
        } else if case.shared() {
            (libc::PROT_READ, libc::MAP_SHARED)
        } else {
            (libc::PROT_READ, libc::MAP_PRIVATE)
        };
        // SAFETY: a fresh mapping of our own file, touched only through raw
        // pointers and unmapped by `unmap`.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                self.len as usize,
                prot,
                flags,
                self.fd,
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
        let r = unsafe { libc::madvise(p, self.len as usize, libc::MADV_NOHUGEPAGE) };
        assert_eq!(r, 0, "madvise: {}", std::io::Error::last_os_error());
        p as u64
    }

    fn unmap(&mut self, addr: u64) {
        // SAFETY: only mappings `map` returned, with no Rust references
        // into them.
        let r = unsafe { libc::munmap(addr as *mut libc::c_void, self.len as usize) };
        assert_eq!(r, 0, "kernel munmap: {}", std::io::Error::last_os_error());
    }

    #[inline]
    fn touch(&mut self, case: Case, addr: u64, pages: u64) -> u64 {
        let mut h = 0u64;
        if case.write() {
            let p = addr as *mut u8;
            for i in 0..pages as usize {
                // SAFETY: inside a writable mapping of `pages` pages.
                unsafe { std::ptr::write_volatile(p.add(i * PAGE as usize), 2) };
            }
        } else {
            let p = addr as *const u8;
            for i in 0..pages as usize {
                // SAFETY: inside a readable mapping of `pages` pages.
                h ^= u64::from(unsafe { std::ptr::read_volatile(p.add(i * PAGE as usize)) });
            }
        }
        h
    }

    fn min_flt(&self) -> u64 {
        // SAFETY: getrusage fills the struct it is given.
        unsafe {
            let mut u: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_SELF, &mut u);
            u.ru_minflt as u64
        }
    }

    fn smaps(&self) -> String {
        std::fs::read_to_string("/proc/self/smaps").expect("read /proc/self/smaps")
    }

    fn status(&self) -> String {
        std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status")
    }
}

// ----- timing ----------------------------------------------------------------

/// What one call of `iter_custom` measured.
#[derive(Clone, Copy)]
struct Sample {
    iters: u64,
    time: Duration,
    faults: u64,
}

/// The timed part of one iteration: touching every page once.
#[inline(always)]
fn touch<S: Space>(s: &mut S, case: Case, addr: u64, pages: u64) {
    black_box(s.touch(case, black_box(addr), pages));
}

/// `iters` map-touch-unmap cycles; only the touches are timed (the fault
/// counters are read just outside the timed part).
fn cycles<S: Space>(s: &mut S, case: Case, iters: u64) -> Sample {
    let mut time = Duration::ZERO;
    let mut faults = 0;
    for _ in 0..iters {
        let a = s.map(case);
        let f0 = s.min_flt();
        let t = Instant::now();
        touch(s, case, a, PAGES);
        time += t.elapsed();
        faults += s.min_flt() - f0;
        s.unmap(a);
    }
    Sample {
        iters,
        time,
        faults,
    }
}

// ----- reports on stderr -------------------------------------------------------

/// The `Key:` field of the `smaps` block of the region starting at `addr`,
/// in kB.
fn smaps_field(smaps: &str, addr: u64, key: &str) -> u64 {
    let head = format!("{addr:08x}-");
    let block = smaps
        .split_inclusive('\n')
        .skip_while(|l| !l.starts_with(&head))
        .skip(1)
        .take_while(|l| !is_smaps_header(l));
    field(block, key).unwrap_or_else(|| panic!("no {key} for {addr:#x} in smaps"))
}

/// A region's first line in `smaps` (`start-end perms ...`), not a field.
fn is_smaps_header(line: &str) -> bool {
    line.split_whitespace().next().is_some_and(|w| {
        w.split_once('-').is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.chars().chain(b.chars()).all(|c| c.is_ascii_hexdigit())
        })
    })
}

/// The number in a `Key:   123 kB` line of a status text.
fn status_field(status: &str, key: &str) -> u64 {
    field(status.lines(), key).unwrap_or_else(|| panic!("no {key} in status"))
}

fn field<'a>(mut lines: impl Iterator<Item = &'a str>, key: &str) -> Option<u64> {
    lines.find_map(|l| {
        l.strip_prefix(key)?
            .strip_prefix(':')?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

/// The host's shmem huge-page settings: the global one, and every per-size
/// one that is not `[never]`.
fn thp_report() {
    let dir = "/sys/kernel/mm/transparent_hugepage";
    let read = |p: &str| {
        std::fs::read_to_string(p).map_or_else(|e| format!("({e})"), |s| s.trim().to_string())
    };
    eprintln!(
        "host shmem THP: {dir}/shmem_enabled = {}",
        read(&format!("{dir}/shmem_enabled"))
    );
    let mut sizes: Vec<_> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("hugepages-"))
                .collect()
        })
        .unwrap_or_default();
    sizes.sort_by_key(|n| {
        n.trim_start_matches("hugepages-")
            .trim_end_matches("kB")
            .parse::<u64>()
            .unwrap_or(0)
    });
    for n in sizes {
        let v = read(&format!("{dir}/{n}/shmem_enabled"));
        if !v.contains("[never]") {
            eprintln!("  {n}/shmem_enabled = {v}");
        }
    }
}

/// One untimed pass of `case`: faults, the mapping's resident size and the
/// shmem resident-set change.
fn sanity<S: Space>(s: &mut S, side: &str, case: Case) {
    let shmem0 = status_field(&s.status(), "RssShmem");
    let a = s.map(case);
    let f0 = s.min_flt();
    touch(s, case, a, PAGES);
    let faults = s.min_flt() - f0;
    let smaps = s.smaps();
    let rss = smaps_field(&smaps, a, "Rss");
    let pmd = if side == "kernel" {
        format!(
            ", ShmemPmdMapped {} kB",
            smaps_field(&smaps, a, "ShmemPmdMapped")
        )
    } else {
        String::new()
    };
    let shmem1 = status_field(&s.status(), "RssShmem");
    s.unmap(a);
    eprintln!(
        "  {}/{side}/{}: {PAGES} pages touched, {faults} faults ({:.4} per page, {:.1} pages per fault); \
         after: mapping Rss {rss} kB ({} pages), RssShmem {shmem0} -> {shmem1} kB{pmd}",
        case.group(),
        case.name(),
        faults as f64 / PAGES as f64,
        PAGES as f64 / faults.max(1) as f64,
        rss / 4,
    );
}

fn sanity_report(e: &mut Engine, k: &mut Kernel) {
    eprintln!(
        "one untimed pass per case over the cached 256 MiB file ({PAGES} pages; engine frames in use: {}):",
        e.used_frames()
    );
    for case in Case::ALL {
        sanity(e, "engine", case);
        sanity(k, "kernel", case);
    }
}

/// The median per-iteration time and the faults per iteration of the last
/// [`SAMPLES`] samples (criterion's measurement; earlier calls are its
/// warm-up).
fn median(samples: &[Sample]) -> (Duration, f64) {
    let last = &samples[samples.len().saturating_sub(SAMPLES)..];
    let mut per: Vec<Duration> = last
        .iter()
        .map(|s| s.time / s.iters.max(1) as u32)
        .collect();
    per.sort();
    let faults: u64 = last.iter().map(|s| s.faults).sum();
    let iters: u64 = last.iter().map(|s| s.iters).sum();
    (per[per.len() / 2], faults as f64 / iters.max(1) as f64)
}

/// The table after criterion's output: per id, median time per pass,
/// pages/s and faults/s; per case, engine/kernel.
fn summary(results: &[(Case, &str, Vec<Sample>)]) {
    eprintln!(
        "\nsummary: median of the last {SAMPLES} samples per id, one pass = {PAGES} pages touched"
    );
    eprintln!(
        "  {:<40} {:>9} {:>9} {:>12} {:>12} {:>10}",
        "id", "ms/pass", "faults", "pages/s", "faults/s", "ns/fault"
    );
    let mut rates = Vec::new();
    for (case, side, samples) in results {
        if samples.is_empty() {
            continue;
        }
        let (t, faults) = median(samples);
        let secs = t.as_secs_f64();
        eprintln!(
            "  {:<40} {:>9.2} {:>9.0} {:>12.4e} {:>12.4e} {:>10.1}",
            format!("{}/{side}/{}", case.group(), case.name()),
            secs * 1e3,
            faults,
            PAGES as f64 / secs,
            faults / secs,
            secs * 1e9 / faults.max(1.0),
        );
        rates.push((*case, *side, PAGES as f64 / secs));
    }
    for case in Case::ALL {
        let rate = |side: &str| {
            rates
                .iter()
                .find(|(c, s, _)| *c == case && *s == side)
                .map(|r| r.2)
        };
        if let (Some(e), Some(k)) = (rate("engine"), rate("kernel")) {
            eprintln!(
                "  {}/{}: engine/kernel rate {:.2}x",
                case.group(),
                case.name(),
                e / k
            );
        }
    }
}

// ----- benchmarks --------------------------------------------------------------

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(1000))
        .measurement_time(Duration::from_secs(3))
        .sample_size(SAMPLES)
        .without_plots()
        .configure_from_args()
}

fn bench_case<S: Space>(
    c: &mut Criterion,
    s: &mut S,
    side: &'static str,
    case: Case,
) -> (Case, &'static str, Vec<Sample>) {
    let mut g = c.benchmark_group(case.group());
    g.sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Elements(PAGES));
    // One untimed cycle: every page table and frame involved is warm.
    cycles(s, case, 1);
    let mut samples = Vec::new();
    g.bench_function(BenchmarkId::new(side, case.name()), |b| {
        b.iter_custom(|n| {
            let r = cycles(s, case, n);
            samples.push(r);
            r.time
        })
    });
    g.finish();
    (case, side, samples)
}

// ----- profiling ---------------------------------------------------------------

/// The touch loop of a profiling run (a name for `--toggle-collect`).
#[inline(never)]
fn profile_touch(e: &mut Engine, case: Case, addr: u64, pages: u64) {
    touch(e, case, addr, pages);
}

/// A short engine-only run for callgrind or perf; see the module
/// documentation.
fn profile(kind: &str) {
    let case = match kind {
        "read-private" => Case::ReadPrivate,
        "write" => Case::WriteShared,
        _ => Case::ReadShared,
    };
    let env = |key: &str, default: u64| {
        std::env::var(key)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let pages = env("VMSPACE_FILES_PAGES", 4096).max(1);
    let reps = env("VMSPACE_FILES_REPS", 1).max(1);
    let mut e = Engine::new(pages * PAGE);
    // Warm as the benchmark does: one untimed pass.
    let a = e.map(case);
    touch(&mut e, case, a, pages);
    e.unmap(a);
    let mut times = Vec::new();
    let mut faults = 0;
    for _ in 0..reps {
        let a = e.map(case);
        let f0 = e.min_flt();
        let t = Instant::now();
        profile_touch(&mut e, case, a, pages);
        times.push(t.elapsed());
        faults += e.min_flt() - f0;
        e.unmap(a);
    }
    times.sort();
    let median = times[times.len() / 2];
    eprintln!(
        "profile: {}/{}: {reps} x {pages} pages, {} faults per pass, median {:.1} ns/page",
        case.group(),
        case.name(),
        faults / reps,
        median.as_nanos() as f64 / pages as f64
    );
}

fn main() {
    if let Ok(kind) = std::env::var("VMSPACE_FILES_PROFILE") {
        profile(&kind);
        return;
    }
    thp_report();
    let mut e = Engine::new(REGION);
    let mut k = Kernel::new(REGION);
    sanity_report(&mut e, &mut k);
    let mut c = config();
    let mut results = Vec::new();
    for case in Case::ALL {
        results.push(bench_case(&mut c, &mut e, "engine", case));
        results.push(bench_case(&mut c, &mut k, "kernel", case));
    }
    c.final_summary();
    summary(&results);
}
