//! Region-set benchmarks: the engine against the running Linux kernel.
//!
//! Every timed operation runs twice in the same process and the same run:
//! once on a simulated `vmspace` process (`…/engine/…`) and once on this
//! very process through real system calls (`…/kernel/…`), on region sets
//! of the same shape. The machine this runs on may be shared and noisy:
//! read medians and engine/kernel ratios, not absolute numbers.
//!
//! Groups (ids pair up by name):
//!
//! - `find_vma/{engine,kernel}/N`: one region lookup at a random page of
//!   an arena of N one-page regions with alternating protections.
//!   Engine: `AddressSpace::find_vma`. Kernel: there is no `find_vma`
//!   system call; `madvise(page, 4096, MADV_NORMAL)` on a page whose flags
//!   already match does one VMA lookup and changes nothing.
//!   `find_vma/engine-madvise/N` is the engine's `System::madvise` doing the
//!   same call, and `find_vma/kernel-getppid` is the cost of entering the
//!   kernel at all (the floor under every kernel number).
//!   Each lookup's address depends on the previous result, so these are
//!   latencies, not throughput; `find_vma/engine-throughput/N` drops that
//!   dependency, letting lookups overlap. The kernel arena is at most what
//!   `vm.max_map_count` allows (the sysctl is never changed).
//! - `mmap_munmap/{engine,kernel}/10000`: `mmap` of one anonymous
//!   read-write page (no hint) and its `munmap`, among 10,000 regions.
//! - `mprotect_split_merge/{engine,kernel}/10000`: `mprotect` of the middle
//!   page of a 16-page read-write region to read-only (a split into three)
//!   and back (a merge into one), among 10,000 regions; one iteration is
//!   both calls.
//! - `free_area/{engine,kernel}/10000`: `mmap` (then `munmap`) of a size
//!   that fits only in a hole at the bottom of 10,000 regions separated by
//!   random holes of 1 to 8 pages: the top-down free-area search has to
//!   find the one hole, below the whole fragmented arena, that fits.
//!
//! Before the timings, the engine's memory per region is printed to stderr:
//! live heap bytes (counted by this binary's global allocator) added by N
//! regions, divided by N, as built and after a compacting clone.

use std::alloc::{GlobalAlloc, Layout, System as HeapSystem};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use vmspace::uapi::{
    MADV_NORMAL, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_NONE, PROT_READ, PROT_WRITE,
};
use vmspace::{Params, Pid, System};

const PAGE: u64 = 4096;

// ----- counting allocator ------------------------------------------------

/// Live heap bytes while [`COUNTING`] is on.
static LIVE: AtomicIsize = AtomicIsize::new(0);
/// Counting costs an atomic per allocation: off while timing.
static COUNTING: AtomicBool = AtomicBool::new(false);

struct CountingAlloc;

// SAFETY: forwards every call unchanged to the system allocator; the
// counters are only bookkeeping.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = HeapSystem.alloc(layout);
        if !p.is_null() && COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = HeapSystem.alloc_zeroed(layout);
        if !p.is_null() && COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HeapSystem.dealloc(ptr, layout);
        if COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = HeapSystem.realloc(ptr, layout, new_size);
        if !p.is_null() && COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

// ----- random numbers ----------------------------------------------------

/// xorshift64*: cheap enough to run inside the timed loop.
#[derive(Clone, Copy)]
struct Rng(u64);

impl Rng {
    #[inline(always)]
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `[0, n)` without a division.
    #[inline(always)]
    fn below(&mut self, n: u64) -> u64 {
        ((self.next() as u128 * n as u128) >> 64) as u64
    }
}

// ----- the two address spaces ---------------------------------------------

/// The calls the benchmarks make, on the engine or on the kernel. Errors
/// are the errno's name.
trait Space {
    fn mmap(&mut self, addr: u64, len: u64, prot: u64, flags: u64) -> Result<u64, String>;
    fn munmap(&mut self, addr: u64, len: u64) -> Result<u64, String>;
    fn mprotect(&mut self, addr: u64, len: u64, prot: u64) -> Result<u64, String>;
    fn madvise(&mut self, addr: u64, len: u64, advice: u64) -> Result<u64, String>;
    /// Number of regions (`map_count`).
    fn regions(&self) -> usize;
    /// `(start, end)` of every region, in order.
    fn region_list(&self) -> Vec<(u64, u64)>;
}

/// A simulated process.
struct Engine {
    sys: System,
    pid: Pid,
}

impl Engine {
    fn new(max_map_count: u64) -> Self {
        let mut sys = System::new(Params {
            max_map_count,
            ..Params::default()
        });
        let pid = sys.spawn_default();
        Engine { sys, pid }
    }

    fn mm(&self) -> &vmspace::AddressSpace {
        &self.sys.process(self.pid).expect("the process exists").mm
    }
}

fn errno(e: vmspace::Errno) -> String {
    e.name().to_string()
}

impl Space for Engine {
    #[inline]
    fn mmap(&mut self, addr: u64, len: u64, prot: u64, flags: u64) -> Result<u64, String> {
        self.sys
            .mmap(self.pid, addr, len, prot, flags, u64::MAX, 0)
            .map_err(errno)
    }
    #[inline]
    fn munmap(&mut self, addr: u64, len: u64) -> Result<u64, String> {
        self.sys.munmap(self.pid, addr, len).map_err(errno)
    }
    #[inline]
    fn mprotect(&mut self, addr: u64, len: u64, prot: u64) -> Result<u64, String> {
        self.sys.mprotect(self.pid, addr, len, prot).map_err(errno)
    }
    #[inline]
    fn madvise(&mut self, addr: u64, len: u64, advice: u64) -> Result<u64, String> {
        self.sys.madvise(self.pid, addr, len, advice).map_err(errno)
    }
    fn regions(&self) -> usize {
        self.mm().map_count() as usize
    }
    fn region_list(&self) -> Vec<(u64, u64)> {
        self.mm().vmas().map(|v| (v.start(), v.end())).collect()
    }
}

/// This process, through real system calls.
struct Kernel;

fn last_os_error() -> String {
    std::io::Error::last_os_error().to_string()
}

fn kernel_ret(r: libc::c_int) -> Result<u64, String> {
    if r == 0 {
        Ok(0)
    } else {
        Err(last_os_error())
    }
}

/// `/proc/self/maps` as `(start, end, rest-of-line)`, without `[vsyscall]`.
fn proc_maps() -> Vec<(u64, u64, String)> {
    let text = std::fs::read_to_string("/proc/self/maps").expect("read /proc/self/maps");
    text.lines()
        .filter_map(|l| {
            let (range, rest) = l.split_once(' ')?;
            let (s, e) = range.split_once('-')?;
            let s = u64::from_str_radix(s, 16).ok()?;
            let e = u64::from_str_radix(e, 16).ok()?;
            (s < 1 << 47).then(|| (s, e, rest.to_string()))
        })
        .collect()
}

impl Space for Kernel {
    #[inline]
    fn mmap(&mut self, addr: u64, len: u64, prot: u64, flags: u64) -> Result<u64, String> {
        // SAFETY: anonymous mappings only; MAP_FIXED is used only inside
        // ranges this benchmark reserved itself.
        let p = unsafe {
            libc::mmap(
                addr as *mut libc::c_void,
                len as usize,
                prot as libc::c_int,
                flags as libc::c_int,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            Err(last_os_error())
        } else {
            Ok(p as u64)
        }
    }
    #[inline]
    fn munmap(&mut self, addr: u64, len: u64) -> Result<u64, String> {
        // SAFETY: only ranges this benchmark mapped, never touched by Rust.
        kernel_ret(unsafe { libc::munmap(addr as *mut libc::c_void, len as usize) })
    }
    #[inline]
    fn mprotect(&mut self, addr: u64, len: u64, prot: u64) -> Result<u64, String> {
        // SAFETY: as for munmap.
        kernel_ret(unsafe {
            libc::mprotect(addr as *mut libc::c_void, len as usize, prot as libc::c_int)
        })
    }
    #[inline]
    fn madvise(&mut self, addr: u64, len: u64, advice: u64) -> Result<u64, String> {
        // SAFETY: MADV_NORMAL on our own mappings changes nothing.
        kernel_ret(unsafe {
            libc::madvise(
                addr as *mut libc::c_void,
                len as usize,
                advice as libc::c_int,
            )
        })
    }
    fn regions(&self) -> usize {
        proc_maps().len()
    }
    fn region_list(&self) -> Vec<(u64, u64)> {
        proc_maps().into_iter().map(|(s, e, _)| (s, e)).collect()
    }
}

// ----- arenas ------------------------------------------------------------

/// A reserved range of one space, `[base, base + pages * PAGE)`.
#[derive(Clone, Copy, Debug)]
struct Arena {
    base: u64,
    pages: u64,
}

impl Arena {
    fn page(&self, i: u64) -> u64 {
        self.base + i * PAGE
    }
    fn len(&self) -> u64 {
        self.pages * PAGE
    }
}

/// Unmaps a kernel arena when dropped, so that the next benchmark starts
/// from a small map count.
struct KernelArena(Arena);

impl Drop for KernelArena {
    fn drop(&mut self) {
        // Best effort: the range may hold holes, which munmap ignores.
        let _ = Kernel.munmap(self.0.base, self.0.len());
    }
}

/// `n` one-page regions: a `PROT_NONE` reservation of `n` pages (placed
/// top-down, as any mmap), with every odd page replaced by a one-page
/// `PROT_READ` mapping so that no two neighbours merge.
fn alternating<S: Space>(s: &mut S, n: u64) -> Arena {
    let base = s
        .mmap(0, n * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS)
        .expect("reserve the arena");
    let a = Arena { base, pages: n };
    for i in (1..n).step_by(2) {
        s.mmap(
            a.page(i),
            PAGE,
            PROT_READ,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
        )
        .unwrap_or_else(|e| panic!("map page {i} of {n}: {e}"));
    }
    a
}

/// The shape of the fragmented arena, from the bottom up: a one-page floor
/// region, a hole of `bottom_hole` pages, then `n` one-page regions each
/// above a hole of 1 to 8 pages (the same sequence on both sides).
fn fragmented_plan(n: u64, bottom_hole: u64) -> (u64, Vec<(u64, u64)>) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // (page offset, pages) of each hole.
    let mut holes = vec![(1, bottom_hole)];
    let mut at = 1 + bottom_hole + 1; // past the floor, the hole and region 0
    for _ in 1..n {
        let h = 1 + rng.below(8);
        holes.push((at, h));
        at += h + 1;
    }
    (at, holes)
}

/// Builds [`fragmented_plan`] inside a fresh reservation.
fn fragmented<S: Space>(s: &mut S, n: u64, bottom_hole: u64, spare_below: u64) -> Arena {
    let (pages, holes) = fragmented_plan(n, bottom_hole);
    let pages = pages + spare_below;
    let base = s
        .mmap(0, pages * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS)
        .expect("reserve the arena");
    let a = Arena { base, pages };
    carve(s, a, spare_below, &holes);
    a
}

fn carve<S: Space>(s: &mut S, a: Arena, spare_below: u64, holes: &[(u64, u64)]) {
    if spare_below > 0 {
        s.munmap(a.base, spare_below * PAGE).expect("trim");
    }
    for &(off, len) in holes {
        s.munmap(a.page(spare_below + off), len * PAGE)
            .unwrap_or_else(|e| panic!("punch hole at {off}: {e}"));
    }
}

/// Largest free gap, in pages, between the kernel's mappings above `addr`
/// and below the stack, leaving out the one just below the stack (most of
/// it lies above `mmap_base`, where the top-down search never looks).
fn largest_kernel_hole_above(addr: u64) -> u64 {
    let maps = proc_maps();
    let stack = maps
        .iter()
        .find(|m| m.2.ends_with("[stack]"))
        .map_or(1 << 47, |m| m.0);
    let below_stack: Vec<_> = maps.iter().filter(|m| m.1 <= stack).collect();
    let mut best = 0;
    for w in below_stack.windows(2) {
        let (lo, hi) = (w[0].1, w[1].0);
        let is_last = w[1].1 == below_stack.last().map_or(0, |m| m.1);
        if lo >= addr && hi > lo && !is_last {
            best = best.max((hi - lo) / PAGE);
        }
    }
    best
}

// ----- memory per region --------------------------------------------------

/// Live heap bytes added to the engine by `n` one-page regions, as built
/// (including `Vec` growth slack) and after `clone` (exact capacities).
fn engine_bytes_per_region(n: u64) -> (f64, f64) {
    let mut e = Engine::new(2 * n + 1000);
    let before_regions = e.regions();
    COUNTING.store(true, Ordering::SeqCst);
    LIVE.store(0, Ordering::SeqCst);
    let a = alternating(&mut e, n);
    let built = LIVE.load(Ordering::SeqCst);
    let added = (e.regions() - before_regions) as f64;
    assert_eq!(added as u64, n, "region count");
    // A clone of the whole address space: every Vec at exactly its length.
    let base = LIVE.load(Ordering::SeqCst);
    let copy = e.mm().clone();
    let cloned = LIVE.load(Ordering::SeqCst) - base;
    drop(copy);
    let empty = Engine::new(1000);
    LIVE.store(0, Ordering::SeqCst);
    let empty_copy = empty.mm().clone();
    let cloned_empty = LIVE.load(Ordering::SeqCst);
    drop(empty_copy);
    COUNTING.store(false, Ordering::SeqCst);
    black_box(a);
    (built as f64 / added, (cloned - cloned_empty) as f64 / added)
}

fn memory_report() {
    eprintln!("engine memory per region (live heap bytes added / regions added):");
    for n in [10_000u64, 1_000_000] {
        let (built, compact) = engine_bytes_per_region(n);
        eprintln!(
            "  regions/{n}: {built:.1} B/region as built, {compact:.1} B/region compact (clone)"
        );
    }
    eprintln!(
        "  size_of::<VmaAttrs>() = {} B, size_of::<Vma>() = {} B",
        std::mem::size_of::<vmspace::vma::VmaAttrs>(),
        std::mem::size_of::<vmspace::vma::Vma>()
    );
}

// ----- benchmarks ----------------------------------------------------------

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_secs(2))
        .sample_size(40)
        .without_plots()
        .configure_from_args()
}

/// The map count the kernel lets this process reach, less a margin for
/// mappings made while benchmarking.
fn kernel_region_budget() -> u64 {
    let max: u64 = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(65_530);
    max.saturating_sub(Kernel.regions() as u64 + 200)
}

/// Times `iters` lookups at random pages of `a`. `f` looks one address up
/// and returns a value that is 0 in practice but comes from the result, so
/// that the next address depends on it: a chain of latencies, not a
/// throughput. The loop state stays in registers.
fn lookups(a: Arena, iters: u64, mut f: impl FnMut(u64) -> u64) -> Duration {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let (base, pages) = (a.base, a.pages);
    let t = Instant::now();
    for _ in 0..iters {
        let addr = base + rng.below(pages) * PAGE;
        rng.0 ^= f(black_box(addr));
    }
    t.elapsed()
}

fn find_vma(c: &mut Criterion) {
    let budget = kernel_region_budget();
    let mut sizes = vec![100u64, 10_000, 65_000, 1_000_000];
    let kernel_sizes: Vec<u64> = sizes.iter().copied().filter(|&n| n <= budget).collect();
    if !kernel_sizes.contains(&1_000_000) {
        eprintln!(
            "find_vma: vm.max_map_count leaves room for {budget} kernel regions; \
             the kernel is measured at {kernel_sizes:?} only (the sysctl is left alone)"
        );
        if !kernel_sizes.contains(&65_000) && budget > 10_000 {
            sizes.push(budget);
        }
    }
    let mut g = c.benchmark_group("find_vma");
    for &n in &sizes {
        // Engine.
        let mut e = Engine::new((2 * n).max(65_530));
        let a = alternating(&mut e, n);
        {
            let mm = e.mm();
            g.bench_function(BenchmarkId::new("engine", n), |b| {
                b.iter_custom(|iters| {
                    lookups(a, iters, |addr| {
                        mm.find_vma(addr).map_or(1, |v| v.end() & 1)
                    })
                })
            });
            g.bench_function(BenchmarkId::new("engine-throughput", n), |b| {
                b.iter_custom(|iters| {
                    lookups(a, iters, |addr| {
                        black_box(mm.find_vma(addr));
                        0
                    })
                })
            });
        }
        g.bench_function(BenchmarkId::new("engine-madvise", n), |b| {
            b.iter_custom(|iters| {
                lookups(a, iters, |addr| e.madvise(addr, PAGE, MADV_NORMAL).unwrap())
            })
        });
        drop(e);

        // Kernel.
        if kernel_sizes.contains(&n) || (n == budget && n > 10_000) {
            let before = Kernel.regions();
            let ka = KernelArena(alternating(&mut Kernel, n));
            let a = ka.0;
            let added = Kernel.regions() - before;
            if added != n as usize {
                eprintln!("find_vma/kernel/{n}: the arena added {added} regions, not {n}");
            }
            g.bench_function(BenchmarkId::new("kernel", n), |b| {
                b.iter_custom(|iters| {
                    lookups(a, iters, |addr| {
                        Kernel.madvise(addr, PAGE, MADV_NORMAL).unwrap()
                    })
                })
            });
            drop(ka);
        }
    }
    g.bench_function("kernel-getppid", |b| {
        // SAFETY: no arguments, no effects.
        b.iter(|| unsafe { libc::syscall(libc::SYS_getppid) })
    });
    g.finish();
}

/// Where a new page went, for the notes printed once per space.
fn placement(regions: &[(u64, u64)], a: Arena, addr: u64) -> String {
    let end = addr + PAGE;
    let below = regions.iter().any(|r| r.1 == addr);
    let above = regions.iter().any(|r| r.0 == end);
    let inside = addr >= a.base && addr < a.base + a.len();
    format!(
        "{addr:#x} ({}, {}neighbour below, {}neighbour above)",
        if inside {
            "inside the arena"
        } else if end == a.base {
            "just below the arena"
        } else {
            "away from the arena"
        },
        if below { "" } else { "no " },
        if above { "" } else { "no " }
    )
}

fn mmap_munmap_one<S: Space>(s: &mut S) -> u64 {
    let p = s
        .mmap(0, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        .unwrap();
    s.munmap(black_box(p), PAGE).unwrap();
    p
}

fn mmap_munmap(c: &mut Criterion) {
    const N: u64 = 10_000;
    let mut g = c.benchmark_group("mmap_munmap");

    let mut e = Engine::new(65_530);
    let a = alternating(&mut e, N);
    let p = e
        .mmap(0, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        .unwrap();
    eprintln!(
        "mmap_munmap/engine: {} regions; the page lands at {}",
        e.regions() - 1,
        placement(&e.region_list(), a, p)
    );
    e.munmap(p, PAGE).unwrap();
    g.bench_function(BenchmarkId::new("engine", N), |b| {
        b.iter(|| mmap_munmap_one(&mut e))
    });
    drop(e);

    let ka = KernelArena(alternating(&mut Kernel, N));
    let p = Kernel
        .mmap(0, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        .unwrap();
    eprintln!(
        "mmap_munmap/kernel: {} regions; the page lands at {}",
        Kernel.regions() - 1,
        placement(&Kernel.region_list(), ka.0, p)
    );
    Kernel.munmap(p, PAGE).unwrap();
    g.bench_function(BenchmarkId::new("kernel", N), |b| {
        b.iter(|| mmap_munmap_one(&mut Kernel))
    });
    drop(ka);
    g.finish();
}

/// A 16-page read-write region over pages `[m, m + 16)` of an alternating
/// arena (its neighbours are read-only or inaccessible: no merge).
fn split_merge_target<S: Space>(s: &mut S, a: Arena) -> u64 {
    let m = (a.pages / 2) & !1;
    let t = a.page(m);
    s.mmap(
        t,
        16 * PAGE,
        PROT_READ | PROT_WRITE,
        MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
    )
    .expect("map the target");
    t
}

fn split_merge_once<S: Space>(s: &mut S, mid: u64) {
    s.mprotect(black_box(mid), PAGE, PROT_READ).unwrap();
    s.mprotect(black_box(mid), PAGE, PROT_READ | PROT_WRITE)
        .unwrap();
}

fn check_split_merge<S: Space>(s: &mut S, name: &str, t: u64) {
    let mid = t + 8 * PAGE;
    let before = s.regions();
    s.mprotect(mid, PAGE, PROT_READ).unwrap();
    let split = s.regions();
    s.mprotect(mid, PAGE, PROT_READ | PROT_WRITE).unwrap();
    let merged = s.regions();
    eprintln!("mprotect_split_merge/{name}: {before} regions, {split} after the split, {merged} after the merge");
}

fn mprotect_split_merge(c: &mut Criterion) {
    const N: u64 = 10_000;
    let mut g = c.benchmark_group("mprotect_split_merge");

    // 16 pages of the arena become one region: N + 15 pages give N regions.
    let mut e = Engine::new(65_530);
    let a = alternating(&mut e, N + 15);
    let t = split_merge_target(&mut e, a);
    check_split_merge(&mut e, "engine", t);
    g.bench_function(BenchmarkId::new("engine", N), |b| {
        b.iter(|| split_merge_once(&mut e, t + 8 * PAGE))
    });
    drop(e);

    let ka = KernelArena(alternating(&mut Kernel, N + 15));
    let t = split_merge_target(&mut Kernel, ka.0);
    check_split_merge(&mut Kernel, "kernel", t);
    g.bench_function(BenchmarkId::new("kernel", N), |b| {
        b.iter(|| split_merge_once(&mut Kernel, t + 8 * PAGE))
    });
    drop(ka);
    g.finish();
}

fn free_area_once<S: Space>(s: &mut S, len: u64) -> u64 {
    let p = s
        .mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        .unwrap();
    s.munmap(black_box(p), len).unwrap();
    p
}

fn free_area(c: &mut Criterion) {
    const N: u64 = 10_000;
    /// Room below the arena for the bottom hole, whatever size it gets.
    const SPARE: u64 = 4096;
    let mut g = c.benchmark_group("free_area");

    // Kernel first: the bottom hole must beat every hole above the arena,
    // which only the kernel's own layout decides.
    let (pages, _) = fragmented_plan(N, 0);
    let base = Kernel
        .mmap(
            0,
            (pages + SPARE + 1) * PAGE,
            PROT_NONE,
            MAP_PRIVATE | MAP_ANONYMOUS,
        )
        .expect("reserve");
    let above = largest_kernel_hole_above(base);
    let mut hole = (above + 1).max(17);
    if hole % 512 == 0 {
        hole += 1; // not a 2 MiB multiple: no THP-aligned search
    }
    assert!(hole <= SPARE, "a hole of {above} pages above the arena");
    // The reservation holds the spare room below, the floor, the hole and
    // the fragmented part.
    let (plan_pages, holes) = fragmented_plan(N, hole);
    let spare = pages + SPARE + 1 - plan_pages;
    let ka = KernelArena(Arena {
        base,
        pages: pages + SPARE + 1,
    });
    carve(&mut Kernel, ka.0, spare, &holes);
    let floor_end = ka.0.page(spare + 1);
    let len = hole * PAGE;
    let p = free_area_once(&mut Kernel, len);
    eprintln!(
        "free_area/kernel: {} regions, request {hole} pages (largest hole above: {above}); \
         placed at {p:#x}, the bottom hole is {floor_end:#x}{}",
        Kernel.regions(),
        if p == floor_end {
            ""
        } else {
            "  ** NOT the bottom hole **"
        }
    );
    g.bench_function(BenchmarkId::new("kernel", N), |b| {
        b.iter(|| free_area_once(&mut Kernel, len))
    });
    drop(ka);

    let mut e = Engine::new(65_530);
    let a = fragmented(&mut e, N, hole, 1);
    let floor_end = a.page(1 + 1);
    let p = free_area_once(&mut e, len);
    eprintln!(
        "free_area/engine: {} regions, request {hole} pages; placed at {p:#x}, the bottom hole is {floor_end:#x}{}",
        e.regions(),
        if p == floor_end { "" } else { "  ** NOT the bottom hole **" }
    );
    g.bench_function(BenchmarkId::new("engine", N), |b| {
        b.iter(|| free_area_once(&mut e, len))
    });
    g.finish();
}

fn main() {
    memory_report();
    let mut c = config();
    find_vma(&mut c);
    mmap_munmap(&mut c);
    mprotect_split_merge(&mut c);
    free_area(&mut c);
    c.final_summary();
}
