//! Page-fault benchmarks: the engine against the running Linux kernel.
//!
//! Every timed operation runs twice in the same process and the same run:
//! once on a simulated `vmspace` process (`…/engine`) and once on this very
//! process through real memory accesses (`…/kernel`). The machine this runs
//! on may be shared and noisy: read medians and engine/kernel ratios, not
//! absolute numbers.
//!
//! Groups (ids pair up by name; throughput is in pages, so criterion prints
//! pages per second as `elem/s`):
//!
//! - `write_fault/{engine,kernel}`: first-touch write faults on 256 MiB of
//!   private anonymous memory, one per page. Each iteration maps the region
//!   (untimed), writes one byte to every page (timed: one fault per page,
//!   each allocating and zeroing a frame) and unmaps it (untimed).
//!   Engine: `System::mmap`, `System::store(addr, 1, 1)` per page,
//!   `System::munmap`, on one simulated machine reused across iterations, so
//!   its frames are recycled from its free list as the kernel recycles its
//!   own. Kernel: `mmap`, a volatile one-byte write per page, `munmap` in
//!   this process. `write_fault/engine-new-system` is the engine on a fresh
//!   machine every iteration: its RAM is not yet backed by host memory, so
//!   each engine fault also pays a host-kernel fault on the frame's bytes.
//! - `read_fault/{engine,kernel}`: the same with reads (`System::load(addr,
//!   1)` / a volatile one-byte read): every fault maps the shared zero page.
//! - `memset/page-hot`: the physical limit, `fill(1)` of one 4096-byte
//!   buffer (cache-resident), per page. `memset/page-256m`: `fill(1)` of
//!   every 4 KiB page of a resident 256 MiB buffer in turn, per page — the
//!   limit at the working-set size the fault benchmarks touch.
//!
//! Before the timings, stderr gets: the frame metadata size
//! (`PhysMem::META_BYTES`), the engine's heap bytes per resident frame beyond
//! its 4096 data bytes (counted by this binary's global allocator while a
//! fresh machine touches 256 MiB), the faults each side took per page, and a
//! split of one map-touch-unmap cycle into its three parts.
//!
//! Profiling: with `VMSPACE_FAULTS_PROFILE=write` (or `read`) the binary
//! skips criterion, warms one engine machine with a cycle over
//! `VMSPACE_FAULTS_PAGES` pages (default 4096) and then runs one more cycle
//! whose touch loop is the function `profile_touch`, e.g.
//! `valgrind --tool=callgrind --toggle-collect='*profile_touch*' <bench binary>`.

use std::alloc::{GlobalAlloc, Layout, System as HeapSystem};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput};
use vmspace::phys::PhysMem;
use vmspace::uapi::{MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE};
use vmspace::{Params, Pid, System};

const PAGE: u64 = 4096;
/// Bytes touched per iteration.
const REGION: u64 = 256 << 20;
/// Pages (and faults) per iteration.
const PAGES: u64 = REGION / PAGE;

// ----- counting allocator ------------------------------------------------

/// Live heap bytes while [`COUNTING`] is on.
static LIVE: AtomicIsize = AtomicIsize::new(0);
/// Of [`LIVE`], bytes in blocks of whole pages of bytes (size a multiple
/// of 4096, alignment 1): the frame chunks, `Vec<[u8; 4096]>`.
static FRAME_DATA: AtomicIsize = AtomicIsize::new(0);
/// Counting costs an atomic per allocation: off while timing.
static COUNTING: AtomicBool = AtomicBool::new(false);

fn count(size: usize, align: usize, sign: isize) {
    if COUNTING.load(Ordering::Relaxed) {
        LIVE.fetch_add(sign * size as isize, Ordering::Relaxed);
        if align == 1 && size % PAGE as usize == 0 {
            FRAME_DATA.fetch_add(sign * size as isize, Ordering::Relaxed);
        }
    }
}

struct CountingAlloc;

// SAFETY: forwards every call unchanged to the system allocator; the
// counters are only bookkeeping.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = HeapSystem.alloc(layout);
        if !p.is_null() {
            count(layout.size(), layout.align(), 1);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = HeapSystem.alloc_zeroed(layout);
        if !p.is_null() {
            count(layout.size(), layout.align(), 1);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HeapSystem.dealloc(ptr, layout);
        count(layout.size(), layout.align(), -1);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = HeapSystem.realloc(ptr, layout, new_size);
        if !p.is_null() {
            count(layout.size(), layout.align(), -1);
            count(new_size, layout.align(), 1);
        }
        p
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

// ----- the two address spaces ---------------------------------------------

/// What one side does: map a private anonymous region, touch each page of
/// it once, unmap it.
trait Space {
    fn map(&mut self, len: u64) -> u64;
    fn unmap(&mut self, addr: u64, len: u64);
    /// Writes one byte to each of `pages` pages from `addr`.
    fn write_pages(&mut self, addr: u64, pages: u64);
    /// Reads one byte from each of `pages` pages from `addr`; returns
    /// something computed from what was read.
    fn read_pages(&mut self, addr: u64, pages: u64) -> u64;
}

/// A simulated machine with one process.
struct Engine {
    sys: System,
    pid: Pid,
}

impl Engine {
    /// A fresh machine with 2 GiB of RAM (room for 256 MiB of anonymous
    /// memory under the default heuristic overcommit).
    fn new() -> Self {
        let mut sys = System::new(Params {
            ram: 2 << 30,
            ..Params::default()
        });
        let pid = sys.spawn_default();
        Engine { sys, pid }
    }

    fn min_flt(&self) -> u64 {
        self.sys
            .process(self.pid)
            .expect("the process exists")
            .mm
            .mem
            .min_flt
    }

    fn used_frames(&self) -> u64 {
        self.sys.kernel.phys.used_frames()
    }
}

impl Space for Engine {
    fn map(&mut self, len: u64) -> u64 {
        self.sys
            .mmap(
                self.pid,
                0,
                len,
                PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS,
                u64::MAX,
                0,
            )
            .unwrap_or_else(|e| panic!("engine mmap: {}", e.name()))
    }

    fn unmap(&mut self, addr: u64, len: u64) {
        self.sys
            .munmap(self.pid, addr, len)
            .unwrap_or_else(|e| panic!("engine munmap: {}", e.name()));
    }

    #[inline]
    fn write_pages(&mut self, addr: u64, pages: u64) {
        for i in 0..pages {
            self.sys
                .store(self.pid, addr + i * PAGE, 1, 1)
                .expect("engine store");
        }
    }

    #[inline]
    fn read_pages(&mut self, addr: u64, pages: u64) -> u64 {
        let mut h = 0;
        for i in 0..pages {
            h ^= self
                .sys
                .load(self.pid, addr + i * PAGE, 1)
                .expect("engine load");
        }
        h
    }
}

/// This process, through real memory accesses.
struct Kernel;

impl Space for Kernel {
    fn map(&mut self, len: u64) -> u64 {
        // SAFETY: a fresh private anonymous mapping, touched only through
        // the raw pointers below and unmapped by `unmap`.
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
        p as u64
    }

    fn unmap(&mut self, addr: u64, len: u64) {
        // SAFETY: only regions `map` returned, with no Rust references
        // into them.
        let r = unsafe { libc::munmap(addr as *mut libc::c_void, len as usize) };
        assert_eq!(r, 0, "kernel munmap: {}", std::io::Error::last_os_error());
    }

    #[inline]
    fn write_pages(&mut self, addr: u64, pages: u64) {
        let p = addr as *mut u8;
        for i in 0..pages as usize {
            // SAFETY: inside a readable, writable mapping of `pages` pages.
            unsafe { std::ptr::write_volatile(p.add(i * PAGE as usize), 1) };
        }
    }

    #[inline]
    fn read_pages(&mut self, addr: u64, pages: u64) -> u64 {
        let p = addr as *const u8;
        let mut h = 0u64;
        for i in 0..pages as usize {
            // SAFETY: inside a readable mapping of `pages` pages.
            h ^= u64::from(unsafe { std::ptr::read_volatile(p.add(i * PAGE as usize)) });
        }
        h
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Write,
    Read,
}

/// The timed part of one iteration: touching every page once.
#[inline(always)]
fn touch<S: Space>(s: &mut S, kind: Kind, addr: u64, pages: u64) {
    match kind {
        Kind::Write => s.write_pages(black_box(addr), pages),
        Kind::Read => {
            black_box(s.read_pages(black_box(addr), pages));
        }
    }
}

/// `iters` map-touch-unmap cycles; only the touches are timed.
fn cycles<S: Space>(s: &mut S, kind: Kind, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let a = s.map(REGION);
        let t = Instant::now();
        touch(s, kind, a, PAGES);
        total += t.elapsed();
        s.unmap(a, REGION);
    }
    total
}

// ----- reports on stderr ----------------------------------------------------

/// Heap bytes per resident frame beyond its data: a fresh machine touches
/// 256 MiB. Reported three ways:
///
/// - the brief's measure: all live heap bytes of the machine (counted from
///   before `System::new`), less 4096 per allocated frame (data, page
///   tables, the zero page and the initial image's pages), divided by those
///   frames — this includes the unused tail of the last frame chunk;
/// - per frame added: heap bytes the 256 MiB added outside the frame data
///   (outside the whole-page byte blocks the frames live in), divided by
///   the frames added — the metadata and its container overhead;
/// - the same, compact: measured on a clone of the machine (every `Vec` at
///   its length, no growth slack).
fn memory_report() {
    eprintln!(
        "frame metadata: PhysMem::META_BYTES = {} B/frame",
        PhysMem::META_BYTES
    );
    let clone_bytes = |sys: &System| {
        let before = LIVE.load(Ordering::SeqCst);
        let copy = sys.clone();
        let bytes = LIVE.load(Ordering::SeqCst) - before;
        drop(copy);
        bytes
    };
    COUNTING.store(true, Ordering::SeqCst);
    LIVE.store(0, Ordering::SeqCst);
    FRAME_DATA.store(0, Ordering::SeqCst);
    let mut e = Engine::new();
    let (live0, data0, frames0) = (
        LIVE.load(Ordering::SeqCst),
        FRAME_DATA.load(Ordering::SeqCst),
        e.used_frames(),
    );
    let compact0 = clone_bytes(&e.sys);
    let a = e.map(REGION);
    e.write_pages(a, PAGES);
    let (live1, data1, frames1) = (
        LIVE.load(Ordering::SeqCst),
        FRAME_DATA.load(Ordering::SeqCst),
        e.used_frames(),
    );
    let compact1 = clone_bytes(&e.sys);
    COUNTING.store(false, Ordering::SeqCst);

    let added = frames1 - frames0;
    let page = PAGE as isize;
    eprintln!(
        "engine heap per resident frame, a fresh machine touching 256 MiB: \
         {frames1} frames allocated ({frames0} before: zero page, image, tables; \
         {added} added: {PAGES} data + {} page tables); \
         frame data provisioned: {} frames",
        added - PAGES,
        data1 / page
    );
    let beyond = live1 - frames1 as isize * page;
    eprintln!(
        "  whole machine: {live1} B live - 4096 B x {frames1} frames = {beyond} B: \
         {:.2} B/frame beyond the data (includes {} provisioned, unused frames)",
        beyond as f64 / frames1 as f64,
        data1 / page - frames1 as isize
    );
    let meta_built = (live1 - live0) - (data1 - data0);
    eprintln!(
        "  per frame added, as built: {meta_built} B outside frame data / {added} frames = {:.2} B/frame",
        meta_built as f64 / added as f64
    );
    let meta_compact = (compact1 - compact0) - (data1 - data0);
    eprintln!(
        "  per frame added, compact (clone): {meta_compact} B outside frame data / {added} frames = {:.2} B/frame",
        meta_compact as f64 / added as f64
    );
    // The free list grows when the region goes.
    COUNTING.store(true, Ordering::SeqCst);
    LIVE.store(0, Ordering::SeqCst);
    e.unmap(a, REGION);
    let freed = LIVE.load(Ordering::SeqCst);
    COUNTING.store(false, Ordering::SeqCst);
    eprintln!(
        "  after munmap: live heap changed by {freed} B ({:.2} B per freed frame: the free list)",
        freed as f64 / added as f64
    );
}

/// Faults taken per page touched, on each side (a sanity check: one each).
fn fault_count_report() {
    let mut e = Engine::new();
    for (name, kind) in [("write", Kind::Write), ("read", Kind::Read)] {
        let a = e.map(REGION);
        let (f0, u0) = (e.min_flt(), e.used_frames());
        touch(&mut e, kind, a, PAGES);
        let (f1, u1) = (e.min_flt(), e.used_frames());
        e.unmap(a, REGION);
        let a = Kernel.map(REGION);
        let k0 = kernel_min_flt();
        touch(&mut Kernel, kind, a, PAGES);
        let k1 = kernel_min_flt();
        Kernel.unmap(a, REGION);
        eprintln!(
            "{name} faults per page: engine {:.3} ({} frames allocated), kernel {:.3} (ru_minflt)",
            (f1 - f0) as f64 / PAGES as f64,
            u1 - u0,
            (k1 - k0) as f64 / PAGES as f64
        );
    }
}

/// One map-touch-unmap cycle, split: nanoseconds per page of each part,
/// the median of a few cycles.
fn split_cycle<S: Space>(s: &mut S, kind: Kind) -> [f64; 3] {
    const RUNS: usize = 5;
    let runs: Vec<[f64; 3]> = (0..RUNS)
        .map(|_| {
            let t0 = Instant::now();
            let a = s.map(REGION);
            let t1 = Instant::now();
            touch(s, kind, a, PAGES);
            let t2 = Instant::now();
            s.unmap(a, REGION);
            let t3 = Instant::now();
            [(t0, t1), (t1, t2), (t2, t3)].map(|(x, y)| (y - x).as_nanos() as f64 / PAGES as f64)
        })
        .collect();
    [0, 1, 2].map(|part| {
        let mut v: Vec<f64> = runs.iter().map(|r| r[part]).collect();
        v.sort_by(f64::total_cmp);
        v[RUNS / 2]
    })
}

fn split_report() {
    let mut e = Engine::new();
    // Warm the machine: its RAM is then backed and on the free list.
    let a = e.map(REGION);
    e.write_pages(a, PAGES);
    e.unmap(a, REGION);
    eprintln!("one cycle over 256 MiB, ns per page (median of 5): mmap / touch / munmap");
    for (name, kind) in [("write", Kind::Write), ("read", Kind::Read)] {
        let en = split_cycle(&mut e, kind);
        let ke = split_cycle(&mut Kernel, kind);
        for (side, v) in [("engine", en), ("kernel", ke)] {
            eprintln!(
                "  {name}/{side}: {:.2} / {:.1} / {:.1}  (touch+munmap {:.1} ns/page)",
                v[0],
                v[1],
                v[2],
                v[1] + v[2]
            );
        }
    }
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

fn fault_group(c: &mut Criterion, name: &str, kind: Kind) {
    let mut g = c.benchmark_group(name);
    g.sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Elements(PAGES));

    let mut e = Engine::new();
    // One untimed cycle: the machine's RAM is then backed by host memory.
    cycles(&mut e, Kind::Write, 1);
    g.bench_function("engine", |b| b.iter_custom(|n| cycles(&mut e, kind, n)));
    drop(e);

    if kind == Kind::Write {
        g.bench_function("engine-new-system", |b| {
            b.iter_custom(|n| {
                let mut total = Duration::ZERO;
                for _ in 0..n {
                    let mut e = Engine::new();
                    let a = e.map(REGION);
                    let t = Instant::now();
                    touch(&mut e, kind, a, PAGES);
                    total += t.elapsed();
                    drop(e);
                }
                total
            })
        });
    }

    g.bench_function("kernel", |b| {
        b.iter_custom(|n| cycles(&mut Kernel, kind, n))
    });
    g.finish();
}

fn write_fault(c: &mut Criterion) {
    fault_group(c, "write_fault", Kind::Write);
}

fn read_fault(c: &mut Criterion) {
    fault_group(c, "read_fault", Kind::Read);
}

fn memset(c: &mut Criterion) {
    let mut g = c.benchmark_group("memset");

    let mut page = vec![0u8; PAGE as usize];
    g.throughput(Throughput::Elements(1));
    g.bench_function("page-hot", |b| {
        b.iter(|| {
            let p = black_box(&mut page[..]);
            p.fill(1);
            black_box(p);
        })
    });

    let mut big = vec![0u8; REGION as usize];
    big.fill(2); // resident before timing
    g.throughput(Throughput::Elements(PAGES))
        .sampling_mode(SamplingMode::Flat);
    g.bench_function("page-256m", |b| {
        b.iter(|| {
            for p in black_box(&mut big[..]).chunks_exact_mut(PAGE as usize) {
                black_box(p).fill(1);
            }
            black_box(&big);
        })
    });
    g.finish();
}

// ----- profiling -----------------------------------------------------------

/// The touch loop of a profiling run (a name for `--toggle-collect`).
#[inline(never)]
fn profile_touch(e: &mut Engine, kind: Kind, addr: u64, pages: u64) {
    touch(e, kind, addr, pages);
}

/// A short engine-only run for callgrind; see the module documentation.
fn profile(kind: &str) {
    let kind = match kind {
        "read" => Kind::Read,
        _ => Kind::Write,
    };
    let pages: u64 = std::env::var("VMSPACE_FAULTS_PAGES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4096);
    let mut e = Engine::new();
    let a = e.map(pages * PAGE);
    e.write_pages(a, pages);
    e.unmap(a, pages * PAGE);
    let a = e.map(pages * PAGE);
    let t = Instant::now();
    profile_touch(&mut e, kind, a, pages);
    let dt = t.elapsed();
    e.unmap(a, pages * PAGE);
    eprintln!(
        "profile: {pages} {} faults, {:.1} ns/page",
        if kind == Kind::Write { "write" } else { "read" },
        dt.as_nanos() as f64 / pages as f64
    );
}

fn main() {
    if let Ok(kind) = std::env::var("VMSPACE_FAULTS_PROFILE") {
        profile(&kind);
        return;
    }
    memory_report();
    fault_count_report();
    split_report();
    let mut c = config();
    write_fault(&mut c);
    read_fault(&mut c);
    memset(&mut c);
    c.final_summary();
}
