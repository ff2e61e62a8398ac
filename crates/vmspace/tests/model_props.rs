//! Property test: the engine against a deliberately naive reference model.
//!
//! Random sequences of `mmap`, `munmap`, `mprotect`, `mremap`, `madvise`,
//! `mlock`/`mlock2`/`munlock`, `mlockall`/`munlockall`, `mseal`, `brk` and
//! `setrlimit(RLIMIT_MEMLOCK)` run against both [`System`] and [`Model`],
//! and after every call the test checks that
//! - both return the same value (address or errno),
//! - every page has the same attributes (`vm_flags`; for private memory its
//!   `pgoff` and `anon_vma` identity, for shared memory the object and
//!   offset it maps), the engine's view being read from `mm.vmas()` page by
//!   page,
//! - `locked_vm`, `total_vm`, the program break, `def_flags` and
//!   `RLIMIT_MEMLOCK` agree, and
//! - `sys.check()` passes.
//!
//! The model is written from the documented behaviour (mmap(2), munmap(2),
//! mprotect(2), mremap(2), mlock(2), madvise(2), mseal(2), brk(2)) as
//! observed on the reference kernel, one page at a time: a `BTreeMap` from
//! page number to attributes and linear scans, no region tree. It never
//! calls engine code; it only reads the engine's starting state once.
//!
//! Regions are not stored. Where Linux's behaviour depends on region
//! boundaries (`mremap`, `MREMAP_DONTUNMAP`, which `anon_vma` a fault
//! reuses), a region is a run of pages Linux would have merged, found by a
//! left-to-right scan: same flags, consecutive offsets, and `anon_vma`s that
//! agree (a page without one joins the region on its left first, as Linux's
//! merges prefer the left neighbour). Faulting in private writable memory
//! (`MAP_POPULATE`, `MAP_LOCKED`, `mlock`, `mlockall`) gives its region an
//! `anon_vma`, which later decides merges, so the model tracks that much of
//! page faults. Linux leaves two mergeable neighbours apart in two ways in
//! the calls generated here, and the model records those boundaries in
//! [`Model::forced`]: `MREMAP_DONTUNMAP` clears the lock bits of the old
//! region without trying to merge it, and an unmap (`munmap`, `MAP_FIXED`,
//! an `mremap` shrink or `MREMAP_FIXED` target, a `brk` shrink) refused
//! because of a sealed region keeps the split it already made at its start.
//!
//! Generated arguments stay where the model is clearly right: addresses in
//! a 64-page window just below `[vvar]` (where top-down placement starts),
//! near the ends of existing test mappings, plus a few fixed values that
//! fail argument checks or hit nothing; lengths of 1..8 pages mostly, plus
//! zero, unaligned, wrapping and too-large ones. No generated call touches
//! the regions the process started with (their flags are only changed by
//! `mlockall`/`munlockall`), and the heap is only touched by `brk`.
//!
//! On failure the message holds the calls made so far in the `.vms`
//! scenario syntax, so that they can be replayed on the running kernel
//! with `vmspace diff` to decide who is right. `MODEL_CASES=n` runs more
//! cases; `MODEL_DUMP=DIR` writes every sequence to `DIR/caseN.vms` (with
//! `maps()` and `status()` at the end, for `vmspace diff`) and the model's
//! final flags to `DIR/caseN.flags` (smaps `VmFlags` mnemonics). Note that
//! the model, like the engine's defaults, has `mmap_min_addr` = 65536: on
//! a machine with a lower `vm.mmap_min_addr`, sequences that hint or fix
//! below 65536 place differently there.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use proptest::prelude::*;
use proptest::sample::Index;
use vmspace::file::FileId;
use vmspace::uapi::*;
use vmspace::vma::AnonVmaId;
use vmspace::{Errno, Params, Pid, System, VmFlags};

const PAGE: u64 = 4096;
const TASK_SIZE: u64 = 0x7fff_ffff_f000;
/// `mmap_base` of the default process (8 MiB stack limit, 1 MiB guard gap).
const MMAP_BASE: u64 = 0x7fff_f7ff_f000;
/// `mmap_min_addr` (and the LSM minimum): the lowest hint and search address,
/// and below it `MAP_FIXED` is `EPERM`.
const MIN_ADDR: u64 = 0x10000;
/// `stack_guard_gap`, in pages.
const GUARD_PAGES: u64 = 256;
/// A 2 MiB huge page, in pages.
const PMD_PAGES: u64 = 512;
/// The test window: `WIN_PAGES` pages ending where `[vvar]` starts.
const WIN_PAGES: u64 = 64;
const WIN_TOP: u64 = 0x7fff_f7ff_7000;
const WIN_BASE: u64 = WIN_TOP - WIN_PAGES * PAGE;
/// The default `RLIMIT_MEMLOCK` (soft and hard).
const MEMLOCK_DEFAULT: u64 = 8 << 20;
/// Where the `[stack]` region starts, and a hint just below its guard gap.
const STACK_START: u64 = 0x7fff_fffd_e000;
const NEAR_GUARD: u64 = STACK_START - GUARD_PAGES * PAGE - 2 * PAGE;
/// Simulated RAM (overcommit heuristic: one request may not exceed it).
const RAM_PAGES: u64 = (4 << 30) / PAGE;

type R = Result<u64, Errno>;

// ---------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------

/// What a page maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backing {
    /// Private anonymous memory: its `vm_pgoff` and `anon_vma` (set once the
    /// region has been write-faulted).
    Private { pgoff: u64, anon: Option<u32> },
    /// The heap (made by `brk` only; `pgoff` is the page number, `anon_vma`
    /// not modelled).
    Heap,
    /// Shared anonymous memory: page `off` of shared object `obj`.
    Shared { obj: u32, off: u64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Page {
    /// A page of a region the process started with (program, heap, `[vvar]`,
    /// `[vdso]`, `[stack]`...): only its flags are modelled. `vma` is the
    /// first page of its region.
    Ext { flags: VmFlags, vma: u64 },
    /// A page mapped by the test.
    Anon { flags: VmFlags, backing: Backing },
}

impl Page {
    fn flags(&self) -> VmFlags {
        match *self {
            Page::Ext { flags, .. } | Page::Anon { flags, .. } => flags,
        }
    }
    fn backing(&self) -> Option<Backing> {
        match *self {
            Page::Anon { backing, .. } => Some(backing),
            Page::Ext { .. } => None,
        }
    }
    fn is_shared(&self) -> bool {
        matches!(self.backing(), Some(Backing::Shared { .. }))
    }
    fn is_private(&self) -> bool {
        matches!(self.backing(), Some(Backing::Private { .. }))
    }
    fn anon(&self) -> Option<u32> {
        match self.backing() {
            Some(Backing::Private { anon, .. }) => anon,
            _ => None,
        }
    }
}

fn page_align(x: u64) -> u64 {
    x.wrapping_add(PAGE - 1) & !(PAGE - 1)
}

fn prot_flags(prot: u64) -> VmFlags {
    let mut f = VmFlags::empty();
    if prot & PROT_READ != 0 {
        f |= VmFlags::READ;
    }
    if prot & PROT_WRITE != 0 {
        f |= VmFlags::WRITE;
    }
    if prot & PROT_EXEC != 0 {
        f |= VmFlags::EXEC;
    }
    f
}

/// Flags that keep `mlock` away from a region (`VM_SPECIAL`, hugetlb,
/// droppable).
fn no_mlock(f: VmFlags) -> bool {
    f.intersects(
        VmFlags::IO
            | VmFlags::DONTEXPAND
            | VmFlags::PFNMAP
            | VmFlags::MIXEDMAP
            | VmFlags::HUGETLB
            | VmFlags::DROPPABLE,
    )
}

const LOCK_BITS: VmFlags = VmFlags::LOCKED.union(VmFlags::LOCKONFAULT);

/// May a region with `anon_vma` `a` take in a page with `b`?
fn anon_agree(a: Option<u32>, b: Option<u32>) -> bool {
    a.is_none() || b.is_none() || a == b
}

/// A region: pages `[s, e)` and its `anon_vma`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Region {
    s: u64,
    e: u64,
    anon: Option<u32>,
}

#[derive(Clone, Debug)]
struct Model {
    /// Page number -> page.
    pages: BTreeMap<u64, Page>,
    /// Page numbers `b` where pages `b - 1` and `b` are in different regions
    /// although they could merge (left apart by `MREMAP_DONTUNMAP`).
    forced: BTreeSet<u64>,
    /// Size in pages of each shared object (its shmem file), by id.
    obj_pages: Vec<u64>,
    next_anon: u32,
    /// `mm->locked_vm`, in pages.
    locked_vm: u64,
    /// `mm->def_flags` (`mlockall(MCL_FUTURE)`).
    def_flags: VmFlags,
    memlock_cur: u64,
    memlock_max: u64,
    start_brk: u64,
    brk: u64,
}

impl Model {
    /// The model of the engine's freshly spawned process: its regions as
    /// opaque pages.
    fn from_engine(sys: &System, pid: Pid) -> Model {
        let mm = &sys.process(pid).unwrap().mm;
        let mut pages = BTreeMap::new();
        for v in mm.vmas() {
            for p in v.start() / PAGE..v.end() / PAGE {
                let flags = v.flags() - VmFlags::SOFTDIRTY;
                pages.insert(
                    p,
                    Page::Ext {
                        flags,
                        vma: v.start() / PAGE,
                    },
                );
            }
        }
        assert_eq!(mm.layout.mmap_base, MMAP_BASE);
        assert_eq!(mm.rlimits.memlock.cur, MEMLOCK_DEFAULT);
        assert!(pages.contains_key(&(WIN_TOP / PAGE)));
        assert!(!pages.contains_key(&(WIN_TOP / PAGE - 1)));
        assert!(pages.contains_key(&(STACK_START / PAGE)));
        Model {
            pages,
            forced: BTreeSet::new(),
            obj_pages: Vec::new(),
            next_anon: 0,
            locked_vm: mm.counters.locked_vm,
            def_flags: VmFlags::empty(),
            memlock_cur: mm.rlimits.memlock.cur,
            memlock_max: mm.rlimits.memlock.max,
            start_brk: mm.layout.start_brk,
            brk: mm.layout.brk,
        }
    }

    // ----- pages and regions -------------------------------------------

    fn mapped(&self, p: u64) -> bool {
        self.pages.contains_key(&p)
    }

    fn any_mapped(&self, s: u64, e: u64) -> bool {
        s < e && self.pages.range(s..e).next().is_some()
    }

    fn keys(&self, s: u64, e: u64) -> Vec<u64> {
        if s >= e {
            return Vec::new();
        }
        self.pages.range(s..e).map(|(&k, _)| k).collect()
    }

    /// Could pages `a` and `a + 1` be in one region, `anon_vma`s aside:
    /// same flags and offsets that continue, and not split by a
    /// `MREMAP_DONTUNMAP`?
    fn link(&self, a: u64) -> bool {
        let (Some(x), Some(y)) = (self.pages.get(&a), self.pages.get(&(a + 1))) else {
            return false;
        };
        if self.forced.contains(&(a + 1)) {
            return false;
        }
        match (*x, *y) {
            (Page::Ext { vma: v1, .. }, Page::Ext { vma: v2, .. }) => v1 == v2,
            (
                Page::Anon {
                    flags: f1,
                    backing: b1,
                },
                Page::Anon {
                    flags: f2,
                    backing: b2,
                },
            ) => {
                f1 == f2
                    && match (b1, b2) {
                        (
                            Backing::Private { pgoff: p1, .. },
                            Backing::Private { pgoff: p2, .. },
                        ) => p1.checked_add(1) == Some(p2),
                        (Backing::Heap, Backing::Heap) => true,
                        (
                            Backing::Shared { obj: o1, off: x1 },
                            Backing::Shared { obj: o2, off: x2 },
                        ) => o1 == o2 && x1.checked_add(1) == Some(x2),
                        _ => false,
                    }
            }
            _ => false,
        }
    }

    /// Every region, left to right.
    fn regions(&self) -> Vec<Region> {
        let mut out = Vec::new();
        let mut cur: Option<Region> = None;
        for (&p, pg) in &self.pages {
            let a = pg.anon();
            if let Some(r) = cur.as_mut() {
                if r.e == p && self.link(p - 1) && anon_agree(r.anon, a) {
                    r.e = p + 1;
                    r.anon = r.anon.or(a);
                    continue;
                }
                out.push(*r);
            }
            cur = Some(Region {
                s: p,
                e: p + 1,
                anon: a,
            });
        }
        out.extend(cur);
        out
    }

    /// The region holding page `p` (which must be mapped).
    fn region(&self, p: u64) -> Region {
        assert!(self.mapped(p), "page {p:#x} is not mapped");
        // The same scan as `regions`, from the start of the run of linked
        // pages that holds `p`.
        let mut s = p;
        while s > 0 && self.link(s - 1) {
            s -= 1;
        }
        let mut r = Region {
            s,
            e: s + 1,
            anon: self.pages[&s].anon(),
        };
        loop {
            let next = r.e;
            let a = self.pages.get(&next).and_then(|pg| pg.anon());
            if self.link(next - 1) && anon_agree(r.anon, a) {
                r.e += 1;
                r.anon = r.anon.or(a);
            } else if p < r.e {
                return r;
            } else {
                r = Region {
                    s: next,
                    e: next + 1,
                    anon: a,
                };
            }
        }
    }

    /// Maps page `p` anew (a new mapping merges with its neighbours).
    fn put(&mut self, p: u64, page: Page) {
        self.pages.insert(p, page);
        self.forced.remove(&p);
        self.forced.remove(&(p + 1));
    }

    /// A fresh private page at `p`.
    fn fresh(flags: VmFlags, p: u64) -> Page {
        Page::Anon {
            flags,
            backing: Backing::Private {
                pgoff: p,
                anon: None,
            },
        }
    }

    /// Gives page `p` new flags (a change tries to merge with neighbours).
    fn set_flags(&mut self, p: u64, new: VmFlags) {
        let Some(pg) = self.pages.get_mut(&p) else {
            return;
        };
        if pg.flags() == new {
            return;
        }
        match pg {
            Page::Ext { flags, .. } | Page::Anon { flags, .. } => *flags = new,
        }
        self.forced.remove(&p);
        self.forced.remove(&(p + 1));
    }

    /// Sets the `anon_vma` of the private pages `[s, e)`.
    fn set_anon(&mut self, s: u64, e: u64, to: Option<u32>) {
        for p in s..e {
            if let Some(Page::Anon {
                backing: Backing::Private { anon, .. },
                ..
            }) = self.pages.get_mut(&p)
            {
                *anon = to;
            }
        }
    }

    /// Records each region's `anon_vma` in all its pages (a merge gives
    /// the merged region the `anon_vma` of either part), so that they keep
    /// it when the region is split.
    fn normalize(&mut self) {
        for r in self.regions() {
            if r.anon.is_some() {
                self.set_anon(r.s, r.e, r.anon);
            }
        }
    }

    /// Removes pages `[s, e)`, with their `locked_vm`.
    fn unmap_pages(&mut self, s: u64, e: u64) {
        self.normalize();
        for p in self.keys(s, e) {
            let pg = self.pages.remove(&p).unwrap();
            if pg.flags().contains(VmFlags::LOCKED) {
                self.locked_vm -= 1;
            }
            self.forced.remove(&p);
            self.forced.remove(&(p + 1));
        }
    }

    /// The sealing check of unmapping `[s, e)` (`vms_gather_munmap_vmas`):
    /// `EPERM` if any page is sealed. The region holding `s` has then
    /// already been split at `s` (unless it is the sealed one), and the
    /// split stays.
    fn gather(&mut self, s: u64, e: u64) -> Result<(), Errno> {
        if !self.any_sealed(s, e) {
            return Ok(());
        }
        if let Some(pg) = self.pages.get(&s) {
            if !pg.flags().contains(VmFlags::SEALED) && self.region(s).s < s {
                self.forced.insert(s);
            }
        }
        Err(Errno::EPERM)
    }

    fn any_sealed(&self, s: u64, e: u64) -> bool {
        s < e
            && self
                .pages
                .range(s..e)
                .any(|(_, pg)| pg.flags().contains(VmFlags::SEALED))
    }

    fn locked_in(&self, s: u64, e: u64) -> u64 {
        if s >= e {
            return 0;
        }
        self.pages
            .range(s..e)
            .filter(|(_, pg)| pg.flags().contains(VmFlags::LOCKED))
            .count() as u64
    }

    fn growsdown_at(&self, p: u64) -> bool {
        self.pages
            .get(&p)
            .is_some_and(|pg| pg.flags().contains(VmFlags::GROWSDOWN))
    }

    /// `mlock_future_ok`: may `pages` more pages with `flags` be locked?
    fn mlock_future_ok(&self, flags: VmFlags, pages: u64) -> bool {
        !flags.contains(VmFlags::LOCKED)
            || self.locked_vm.saturating_add(pages) <= self.memlock_cur / PAGE
    }

    // ----- page faults -------------------------------------------------

    /// Could regions `a` (below) and `b` (right above it) share an
    /// `anon_vma`: both private, flags equal but for access bits, offsets
    /// that continue (`anon_vma_compatible`)?
    fn anon_vma_compatible(&self, a: &Region, b: &Region) -> bool {
        let (pa, pb) = (self.pages[&a.s], self.pages[&b.s]);
        let (Some(Backing::Private { pgoff: oa, .. }), Some(Backing::Private { pgoff: ob, .. })) =
            (pa.backing(), pb.backing())
        else {
            return false;
        };
        a.e == b.s
            && ((pa.flags() ^ pb.flags()) - VmFlags::ACCESS).is_empty()
            && oa.checked_add(b.s - a.s) == Some(ob)
    }

    /// A write fault in region `r` (private, without an `anon_vma`): it gets
    /// the `anon_vma` of the region above, else the one below, when those
    /// could share it, else a new one (`anon_vma_prepare`).
    fn anon_vma_prepare(&mut self, r: Region) {
        let regions = self.regions();
        let next = regions.iter().find(|n| n.s == r.e);
        let prev = regions.iter().find(|p| p.e == r.s);
        let reuse = next
            .filter(|n| n.anon.is_some() && self.anon_vma_compatible(&r, n))
            .or_else(|| prev.filter(|p| p.anon.is_some() && self.anon_vma_compatible(p, &r)))
            .and_then(|x| x.anon);
        let anon = reuse.unwrap_or_else(|| {
            self.next_anon += 1;
            self.next_anon
        });
        self.set_anon(r.s, r.e, Some(anon));
    }

    /// `__mm_populate` over pages `[s, e)`: each region in turn is faulted
    /// in (private writable memory for write, which gives it an
    /// `anon_vma`); lock-on-fault and `VM_IO`/`VM_PFNMAP` regions are
    /// skipped; a region that allows no access, or shared memory past the
    /// end of its object, fails (`EFAULT`), ending the walk unless errors
    /// are ignored.
    fn populate(&mut self, s: u64, e: u64, ignore_errors: bool) -> Result<(), Errno> {
        if s >= e {
            return Ok(());
        }
        let todo: Vec<Region> = self
            .regions()
            .into_iter()
            .filter(|r| r.s < e && s < r.e)
            .collect();
        for r in todo {
            // An earlier fault may have given this region an anon_vma.
            let r = self.region(r.s);
            let pg = self.pages[&r.s];
            let f = pg.flags();
            if f.intersects(VmFlags::IO | VmFlags::PFNMAP) || f.contains(VmFlags::LOCKONFAULT) {
                continue;
            }
            if pg.is_private() && f.contains(VmFlags::WRITE) && r.anon.is_none() {
                self.anon_vma_prepare(r);
            }
            let past_eof = (r.s.max(s)..r.e.min(e)).any(|p| match self.pages[&p].backing() {
                Some(Backing::Shared { obj, off }) => off >= self.obj_pages[obj as usize],
                _ => false,
            });
            if (!f.intersects(VmFlags::ACCESS) || past_eof) && !ignore_errors {
                return Err(Errno::EFAULT);
            }
        }
        Ok(())
    }

    // ----- placement ---------------------------------------------------

    /// Top-down first fit: the highest `len_pages` free pages below
    /// `mmap_base` and at or above `mmap_min_addr`, keeping the guard gap
    /// below a grows-down region.
    fn topdown(&self, len_pages: u64) -> Option<u64> {
        let low = MIN_ADDR / PAGE;
        let mut end = MMAP_BASE / PAGE;
        loop {
            if end < low || end - low < len_pages {
                return None;
            }
            let below = self.pages.range(..end).next_back().map(|(&q, _)| q + 1);
            let gap_start = below.unwrap_or(low).max(low);
            if end - gap_start >= len_pages {
                // A grows-down region right above wants its guard gap.
                if self.growsdown_at(end) && !self.mapped(end - 1) {
                    end = end.saturating_sub(GUARD_PAGES);
                    continue;
                }
                return Some(end - len_pages);
            }
            match below {
                Some(b) => end = b - 1,
                None => return None,
            }
        }
    }

    /// The hint test: nothing at `[a, a + len)` and the next region (with
    /// its guard gap if it grows down) is not reached.
    fn hint_fits(&self, a: u64, len: u64) -> bool {
        match self.pages.range(a / PAGE..).next() {
            None => true,
            Some((&q, pg)) => {
                let mut gap = q * PAGE;
                if pg.flags().contains(VmFlags::GROWSDOWN) {
                    gap = gap.saturating_sub(GUARD_PAGES * PAGE);
                }
                a + len <= gap
            }
        }
    }

    /// `arch_get_unmapped_area_topdown` without `MAP_FIXED`.
    fn arch_area(&self, hint: u64, len: u64) -> R {
        if hint != 0 {
            let a = hint & !(PAGE - 1);
            if TASK_SIZE - len >= a && self.hint_fits(a, len) {
                return Ok(a);
            }
        }
        // (The bottom-up fallback never finds room the top-down search did
        // not, for the lengths generated here.)
        self.topdown(len / PAGE)
            .map(|p| p * PAGE)
            .ok_or(Errno::ENOMEM)
    }

    /// `get_unmapped_area`. `shared` says `MAP_SHARED` is in the flags,
    /// `has_file` that a shmem file backs the mapping (mremap of shared
    /// memory); either keeps the 2 MiB alignment of anonymous memory off.
    fn get_unmapped_area(
        &self,
        hint: u64,
        len: u64,
        fixed: bool,
        shared: bool,
        has_file: bool,
    ) -> R {
        if len > TASK_SIZE {
            return Err(Errno::ENOMEM);
        }
        let a = if fixed {
            hint
        } else if !has_file && !shared && hint == 0 && len % (PMD_PAGES * PAGE) == 0 {
            // Search for len + 2 MiB at g; keep the highest 2 MiB-aligned
            // start that fits.
            match self.topdown(len / PAGE + PMD_PAGES) {
                Some(g) if g % PMD_PAGES == 0 => (g + PMD_PAGES) * PAGE,
                Some(g) => g.div_ceil(PMD_PAGES) * PMD_PAGES * PAGE,
                None => self.arch_area(0, len)?,
            }
        } else {
            self.arch_area(hint, len)?
        };
        if a > TASK_SIZE - len {
            return Err(Errno::ENOMEM);
        }
        if a % PAGE != 0 {
            return Err(Errno::EINVAL);
        }
        if a < MIN_ADDR {
            return Err(Errno::EPERM);
        }
        Ok(a)
    }

    // ----- system calls ------------------------------------------------

    fn mmap(&mut self, addr: u64, len: u64, prot: u64, flags: u64, off: u64) -> R {
        if off % PAGE != 0 {
            return Err(Errno::EINVAL);
        }
        if flags & MAP_ANONYMOUS == 0 {
            return Err(Errno::EBADF); // fd is always -1
        }
        if len == 0 {
            return Err(Errno::EINVAL);
        }
        let mut flags = flags;
        if flags & MAP_FIXED_NOREPLACE != 0 {
            flags |= MAP_FIXED;
        }
        let mut addr = addr;
        if flags & MAP_FIXED == 0 {
            addr &= !(PAGE - 1);
            if addr != 0 && addr < MIN_ADDR {
                addr = MIN_ADDR;
            }
        }
        let len = page_align(len);
        if len == 0 {
            return Err(Errno::ENOMEM);
        }
        if (off / PAGE).checked_add(len / PAGE).is_none() {
            return Err(Errno::EOVERFLOW);
        }
        let a = self.get_unmapped_area(
            addr,
            len,
            flags & MAP_FIXED != 0,
            flags & MAP_SHARED != 0,
            false,
        )?;
        let (s, e) = (a / PAGE, (a + len) / PAGE);
        if flags & MAP_FIXED_NOREPLACE != 0 && self.any_mapped(s, e) {
            return Err(Errno::EEXIST);
        }
        let mut vm = prot_flags(prot)
            | VmFlags::MAYREAD
            | VmFlags::MAYWRITE
            | VmFlags::MAYEXEC
            | self.def_flags;
        if flags & MAP_LOCKED != 0 {
            vm |= VmFlags::LOCKED;
        }
        if flags & MAP_SYNC != 0 {
            vm |= VmFlags::SYNC;
        }
        if flags & MAP_STACK != 0 {
            vm |= VmFlags::NOHUGEPAGE;
        }
        if flags & MAP_LOCKED != 0 && self.memlock_cur == 0 {
            return Err(Errno::EPERM);
        }
        if !self.mlock_future_ok(vm, len / PAGE) {
            return Err(Errno::EAGAIN);
        }
        let shared = match flags & MAP_TYPE {
            MAP_SHARED => true,
            MAP_PRIVATE => false,
            _ => return Err(Errno::EINVAL),
        };
        if flags & MAP_NORESERVE != 0 {
            vm |= VmFlags::NORESERVE;
        }
        if shared {
            vm |= VmFlags::SHARED | VmFlags::MAYSHARE;
        } else if vm.contains(VmFlags::WRITE) && !vm.contains(VmFlags::NORESERVE) {
            vm |= VmFlags::ACCOUNT;
        }
        // MAP_FIXED over sealed memory.
        self.gather(s, e)?;
        self.unmap_pages(s, e);
        let obj = self.obj_pages.len() as u32;
        if shared {
            self.obj_pages.push(e - s);
        }
        for (i, p) in (s..e).enumerate() {
            let page = if shared {
                Page::Anon {
                    flags: vm,
                    backing: Backing::Shared { obj, off: i as u64 },
                }
            } else {
                Model::fresh(vm, p)
            };
            self.put(p, page);
        }
        if vm.contains(VmFlags::LOCKED) {
            self.locked_vm += e - s;
        }
        if vm.contains(VmFlags::LOCKED) || flags & MAP_POPULATE != 0 && flags & MAP_NONBLOCK == 0 {
            let _ = self.populate(s, e, true);
        }
        Ok(a)
    }

    /// `do_vmi_munmap`, as `munmap` and everything that unmaps use it.
    fn do_munmap(&mut self, start: u64, len: u64) -> R {
        if start % PAGE != 0 || start > TASK_SIZE || len > TASK_SIZE - start {
            return Err(Errno::EINVAL);
        }
        let len = page_align(len);
        if len == 0 {
            return Err(Errno::EINVAL);
        }
        let (s, e) = (start / PAGE, (start + len) / PAGE);
        self.gather(s, e)?;
        self.unmap_pages(s, e);
        Ok(0)
    }

    fn mprotect(&mut self, start: u64, len: u64, prot: u64) -> R {
        let grows = prot & (PROT_GROWSDOWN | PROT_GROWSUP);
        let prot = prot & !(PROT_GROWSDOWN | PROT_GROWSUP);
        if grows == PROT_GROWSDOWN | PROT_GROWSUP {
            return Err(Errno::EINVAL);
        }
        if start % PAGE != 0 {
            return Err(Errno::EINVAL);
        }
        if len == 0 {
            return Ok(0);
        }
        let len = page_align(len);
        let end = start.wrapping_add(len);
        if end <= start {
            return Err(Errno::ENOMEM);
        }
        if prot & !(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_SEM) != 0 {
            return Err(Errno::EINVAL);
        }
        let (s, e) = (start / PAGE, end / PAGE);
        let Some((&first, _)) = self.pages.range(s..e).next() else {
            return Err(Errno::ENOMEM);
        };
        if grows & PROT_GROWSDOWN != 0 {
            // None of the regions generated here grows down.
            assert!(!self.growsdown_at(first));
            return Err(Errno::EINVAL);
        }
        if first > s {
            return Err(Errno::ENOMEM);
        }
        if grows & PROT_GROWSUP != 0 {
            return Err(Errno::EINVAL); // x86 has no VM_GROWSUP
        }
        // Region by region, as each region's part is changed (and merged)
        // before the next is looked at.
        let mut p = s;
        while p < e {
            let Some(pg) = self.pages.get(&p).copied() else {
                return Err(Errno::ENOMEM); // a hole: what came before stays changed
            };
            let r = self.region(p);
            let pe = r.e.min(e);
            let old = pg.flags();
            let mut new = (old - VmFlags::ACCESS) | prot_flags(prot);
            let may = VmFlags::from_bits_retain(new.bits() >> 4);
            if !((new - may) & VmFlags::ACCESS).is_empty() {
                return Err(Errno::EACCES);
            }
            if old.contains(VmFlags::SEALED) {
                return Err(Errno::EPERM);
            }
            if new != old {
                // Making private memory writable charges it (VM_ACCOUNT);
                // making never-faulted anonymous memory read-only uncharges it.
                if new.contains(VmFlags::WRITE) {
                    let uncharged = VmFlags::ACCOUNT
                        | VmFlags::WRITE
                        | VmFlags::HUGETLB
                        | VmFlags::SHARED
                        | VmFlags::NORESERVE;
                    if !old.intersects(uncharged) {
                        new |= VmFlags::ACCOUNT;
                    }
                } else if old.contains(VmFlags::ACCOUNT) && pg.is_private() && r.anon.is_none() {
                    new -= VmFlags::ACCOUNT;
                }
                for q in p..pe {
                    self.set_flags(q, new);
                }
                // Locked private memory made writable is faulted in at once
                // (to break copy-on-write), which gives it an anon_vma.
                let lw = VmFlags::WRITE | VmFlags::SHARED | VmFlags::LOCKED;
                if old & lw == VmFlags::LOCKED && new.contains(VmFlags::WRITE) {
                    let _ = self.populate(p, pe, true);
                }
            }
            p = pe;
        }
        Ok(0)
    }

    fn madvise(&mut self, start: u64, len_in: u64, advice: u64) -> R {
        let known = [
            MADV_NORMAL,
            MADV_RANDOM,
            MADV_SEQUENTIAL,
            MADV_WILLNEED,
            MADV_DONTNEED,
            MADV_FREE,
            MADV_DONTFORK,
            MADV_DOFORK,
            MADV_MERGEABLE,
            MADV_UNMERGEABLE,
            MADV_HUGEPAGE,
            MADV_NOHUGEPAGE,
            MADV_DONTDUMP,
            MADV_DODUMP,
            MADV_WIPEONFORK,
            MADV_KEEPONFORK,
            MADV_COLD,
            MADV_PAGEOUT,
        ];
        if !known.contains(&advice) {
            return Err(Errno::EINVAL);
        }
        if start % PAGE != 0 {
            return Err(Errno::EINVAL);
        }
        let len = page_align(len_in);
        if len_in != 0 && len == 0 {
            return Err(Errno::EINVAL);
        }
        let end = start.wrapping_add(len);
        if end < start {
            return Err(Errno::EINVAL);
        }
        if end == start {
            return Ok(0);
        }
        // Every mapped page is advised; holes are reported (ENOMEM) at the end.
        let mut hole = false;
        for p in start / PAGE..end / PAGE {
            let Some(pg) = self.pages.get(&p).copied() else {
                hole = true;
                continue;
            };
            let f = pg.flags();
            let private = pg.is_private();
            let discard = matches!(
                advice,
                MADV_DONTNEED | MADV_FREE | MADV_DONTFORK | MADV_WIPEONFORK
            );
            if f.contains(VmFlags::SEALED) && discard && private && !f.contains(VmFlags::WRITE) {
                return Err(Errno::EPERM);
            }
            let mut new = f;
            match advice {
                MADV_WILLNEED => {}
                MADV_COLD | MADV_PAGEOUT | MADV_DONTNEED | MADV_FREE => {
                    if f.contains(VmFlags::LOCKED) || (advice == MADV_FREE && !private) {
                        return Err(Errno::EINVAL);
                    }
                }
                MADV_NORMAL => new -= VmFlags::RAND_READ | VmFlags::SEQ_READ,
                MADV_SEQUENTIAL => new = (new - VmFlags::RAND_READ) | VmFlags::SEQ_READ,
                MADV_RANDOM => new = (new - VmFlags::SEQ_READ) | VmFlags::RAND_READ,
                MADV_DONTFORK => new |= VmFlags::DONTCOPY,
                MADV_DOFORK => new -= VmFlags::DONTCOPY,
                MADV_WIPEONFORK => {
                    if !private {
                        return Err(Errno::EINVAL);
                    }
                    new |= VmFlags::WIPEONFORK;
                }
                MADV_KEEPONFORK => new -= VmFlags::WIPEONFORK,
                MADV_DONTDUMP => new |= VmFlags::DONTDUMP,
                MADV_DODUMP => new -= VmFlags::DONTDUMP,
                MADV_MERGEABLE => {
                    if private {
                        new |= VmFlags::MERGEABLE;
                    }
                }
                MADV_UNMERGEABLE => new -= VmFlags::MERGEABLE,
                MADV_HUGEPAGE => new = (new - VmFlags::NOHUGEPAGE) | VmFlags::HUGEPAGE,
                MADV_NOHUGEPAGE => new = (new - VmFlags::HUGEPAGE) | VmFlags::NOHUGEPAGE,
                _ => unreachable!(),
            }
            self.set_flags(p, new);
        }
        if hole {
            Err(Errno::ENOMEM)
        } else {
            Ok(0)
        }
    }

    /// `apply_vma_lock_flags`: the range must be mapped; what lies before a
    /// hole is changed, then `ENOMEM`.
    fn apply_lock(&mut self, start: u64, len: u64, bits: VmFlags) -> R {
        let end = start.wrapping_add(len);
        if end < start {
            return Err(Errno::EINVAL);
        }
        if end == start {
            return Ok(0);
        }
        for p in start / PAGE..end / PAGE {
            let Some(pg) = self.pages.get(&p).copied() else {
                return Err(Errno::ENOMEM);
            };
            self.lock_page(p, pg.flags(), bits);
        }
        Ok(0)
    }

    /// `mlock_fixup` for one page.
    fn lock_page(&mut self, p: u64, old: VmFlags, bits: VmFlags) {
        if no_mlock(old) {
            return;
        }
        let new = (old - LOCK_BITS) | bits;
        if new == old {
            return;
        }
        if !new.contains(VmFlags::LOCKED) {
            self.locked_vm -= 1;
        } else if !old.contains(VmFlags::LOCKED) {
            self.locked_vm += 1;
        }
        self.set_flags(p, new);
    }

    fn mlock2(&mut self, start: u64, len: u64, flags: u64) -> R {
        if flags & !MLOCK_ONFAULT != 0 {
            return Err(Errno::EINVAL);
        }
        if self.memlock_cur == 0 {
            return Err(Errno::EPERM);
        }
        let len = page_align(len.wrapping_add(start % PAGE));
        let start = start & !(PAGE - 1);
        let limit = self.memlock_cur / PAGE;
        let mut locked = len / PAGE + self.locked_vm;
        if locked > limit {
            // Pages already locked in the range do not count twice.
            let end = start.saturating_add(len);
            locked -= self.locked_in(start / PAGE, end / PAGE);
        }
        if locked > limit {
            return Err(Errno::ENOMEM);
        }
        let mut bits = VmFlags::LOCKED;
        if flags & MLOCK_ONFAULT != 0 {
            bits |= VmFlags::LOCKONFAULT;
        }
        self.apply_lock(start, len, bits)?;
        // Fault the range in; memory that allows no access fails (EFAULT,
        // reported as ENOMEM) and the lock bits stay.
        if self
            .populate(start / PAGE, (start + len) / PAGE, false)
            .is_err()
        {
            return Err(Errno::ENOMEM);
        }
        Ok(0)
    }

    fn munlock(&mut self, start: u64, len: u64) -> R {
        let len = page_align(len.wrapping_add(start % PAGE));
        let start = start & !(PAGE - 1);
        self.apply_lock(start, len, VmFlags::empty())
    }

    fn mlockall(&mut self, flags: u64) -> R {
        if flags == 0
            || flags & !(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) != 0
            || flags == MCL_ONFAULT
        {
            return Err(Errno::EINVAL);
        }
        if self.memlock_cur == 0 {
            return Err(Errno::EPERM);
        }
        if flags & MCL_CURRENT != 0 && self.pages.len() as u64 > self.memlock_cur / PAGE {
            return Err(Errno::ENOMEM);
        }
        self.apply_mlockall(flags);
        if flags & MCL_CURRENT != 0 {
            let _ = self.populate(0, TASK_SIZE / PAGE, true);
        }
        Ok(0)
    }

    fn apply_mlockall(&mut self, flags: u64) {
        self.def_flags -= LOCK_BITS;
        if flags & MCL_FUTURE != 0 {
            self.def_flags |= VmFlags::LOCKED;
            if flags & MCL_ONFAULT != 0 {
                self.def_flags |= VmFlags::LOCKONFAULT;
            }
            if flags & MCL_CURRENT == 0 {
                return;
            }
        }
        let mut bits = VmFlags::empty();
        if flags & MCL_CURRENT != 0 {
            bits |= VmFlags::LOCKED;
            if flags & MCL_ONFAULT != 0 {
                bits |= VmFlags::LOCKONFAULT;
            }
        }
        for p in self.keys(0, u64::MAX) {
            let old = self.pages[&p].flags();
            self.lock_page(p, old, bits);
        }
    }

    fn mseal(&mut self, start: u64, len_in: u64, flags: u64) -> R {
        if flags != 0 {
            return Err(Errno::EINVAL);
        }
        if start % PAGE != 0 {
            return Err(Errno::EINVAL);
        }
        let len = page_align(len_in);
        if len_in != 0 && len == 0 {
            return Err(Errno::EINVAL);
        }
        let end = start.wrapping_add(len);
        if end < start {
            return Err(Errno::EINVAL);
        }
        if end == start {
            return Ok(0);
        }
        // All or nothing: a hole anywhere seals nothing.
        if (start / PAGE..end / PAGE).any(|p| !self.mapped(p)) {
            return Err(Errno::ENOMEM);
        }
        for p in start / PAGE..end / PAGE {
            let f = self.pages[&p].flags();
            self.set_flags(p, f | VmFlags::SEALED);
        }
        Ok(0)
    }

    fn brk(&mut self, addr: u64) -> u64 {
        let old = self.brk;
        if addr < self.start_brk {
            return old;
        }
        let newbrk = page_align(addr);
        let oldbrk = page_align(self.brk);
        if newbrk == oldbrk {
            self.brk = addr;
            return addr;
        }
        if addr <= self.brk {
            // Shrinking: unmap what lies above the new break, if anything.
            if !self.any_mapped(newbrk / PAGE, oldbrk / PAGE) {
                return old;
            }
            if self.do_munmap(newbrk, oldbrk - newbrk).is_err() {
                return old;
            }
            self.brk = addr;
            return addr;
        }
        // Growing: a valid fixed range, one free page (or the guard gap of a
        // grows-down region) above the new break, and memory to commit.
        let len = newbrk.wrapping_sub(oldbrk);
        if newbrk < oldbrk || len > TASK_SIZE || oldbrk > TASK_SIZE - len || oldbrk < MIN_ADDR {
            return old;
        }
        if !self.mlock_future_ok(self.def_flags, len / PAGE) {
            return old;
        }
        if let Some((&q, _)) = self.pages.range(oldbrk / PAGE..).next() {
            let mut gap = q * PAGE;
            if self.growsdown_at(q) {
                gap = gap.saturating_sub(GUARD_PAGES * PAGE);
            }
            if q * PAGE < newbrk + PAGE + GUARD_PAGES * PAGE && newbrk + PAGE > gap {
                return old;
            }
        }
        if len / PAGE > RAM_PAGES {
            return old; // overcommit heuristic: more than RAM + swap
        }
        let flags = VmFlags::READ
            | VmFlags::WRITE
            | VmFlags::MAYREAD
            | VmFlags::MAYWRITE
            | VmFlags::MAYEXEC
            | VmFlags::ACCOUNT
            | self.def_flags;
        for p in oldbrk / PAGE..newbrk / PAGE {
            self.put(
                p,
                Page::Anon {
                    flags,
                    backing: Backing::Heap,
                },
            );
        }
        if flags.contains(VmFlags::LOCKED) {
            self.locked_vm += len / PAGE;
        }
        self.brk = addr;
        addr
    }

    fn setrlimit_memlock(&mut self, soft: u64, hard: u64) -> R {
        if soft > hard {
            return Err(Errno::EINVAL);
        }
        if hard > self.memlock_max {
            return Err(Errno::EPERM);
        }
        self.memlock_cur = soft;
        self.memlock_max = hard;
        Ok(0)
    }

    // ----- mremap --------------------------------------------------------

    fn mremap(&mut self, addr: u64, old_len: u64, new_len: u64, flags: u64, new_addr: u64) -> R {
        let old_len = page_align(old_len);
        let new_len = page_align(new_len);
        if flags & !(MREMAP_FIXED | MREMAP_MAYMOVE | MREMAP_DONTUNMAP) != 0 {
            return Err(Errno::EINVAL);
        }
        if addr % PAGE != 0 {
            return Err(Errno::EINVAL);
        }
        if new_len == 0 || new_len > TASK_SIZE {
            return Err(Errno::EINVAL);
        }
        let implies_new = flags & (MREMAP_FIXED | MREMAP_DONTUNMAP) != 0;
        if implies_new {
            if new_addr > TASK_SIZE - new_len || new_addr % PAGE != 0 || flags & MREMAP_MAYMOVE == 0
            {
                return Err(Errno::EINVAL);
            }
            if flags & MREMAP_DONTUNMAP != 0 && old_len != new_len {
                return Err(Errno::EINVAL);
            }
            // The target may not overlap the source.
            if addr.wrapping_add(old_len) > new_addr && new_addr + new_len > addr {
                return Err(Errno::EINVAL);
            }
        }
        if flags & MREMAP_FIXED != 0 && old_len == new_len {
            return self.remap_move(addr, old_len, flags, new_addr);
        }
        if !self.mapped(addr / PAGE) {
            return Err(Errno::EFAULT);
        }
        self.check_prep(addr, old_len, new_len, flags)?;
        let r = if implies_new {
            self.mremap_to(addr, old_len, new_len, flags, new_addr)
        } else {
            self.mremap_at(addr, old_len, new_len, flags)
        };
        // A locked region that grew is faulted in.
        if let Ok(to) = r {
            if new_len > old_len && self.pages[&(to / PAGE)].flags().contains(VmFlags::LOCKED) {
                let _ = self.populate((to + old_len) / PAGE, (to + new_len) / PAGE, true);
            }
        }
        r
    }

    /// The checks against the region at `addr` (`check_prep_vma`).
    fn check_prep(&self, addr: u64, old_len: u64, new_len: u64, flags: u64) -> Result<(), Errno> {
        let pg = self.pages[&(addr / PAGE)];
        let f = pg.flags();
        if f.contains(VmFlags::SEALED) {
            return Err(Errno::EPERM);
        }
        let implies_new = flags & (MREMAP_FIXED | MREMAP_DONTUNMAP) != 0;
        if new_len <= old_len && !implies_new {
            return Ok(());
        }
        if old_len == 0 && !f.intersects(VmFlags::SHARED | VmFlags::MAYSHARE) {
            return Err(Errno::EINVAL);
        }
        // A shrink may cross region ends: only what stays must fit.
        let old_len = old_len.min(new_len);
        if old_len > self.region(addr / PAGE).e * PAGE - addr {
            return Err(Errno::EFAULT);
        }
        if new_len == old_len {
            return Ok(());
        }
        if !self.mlock_future_ok(f, (new_len - old_len) / PAGE) {
            return Err(Errno::EAGAIN);
        }
        Ok(())
    }

    /// Resize without a new address: shrink in place, grow in place when
    /// `[addr, addr + old_len)` reaches the region's end and the pages above
    /// are free, else move (`MREMAP_MAYMOVE`).
    fn mremap_at(&mut self, addr: u64, old_len: u64, new_len: u64, flags: u64) -> R {
        if old_len == new_len {
            return Ok(addr);
        }
        if new_len < old_len {
            self.do_munmap(addr + new_len, old_len - new_len)?;
            return Ok(addr);
        }
        let r = self.region(addr / PAGE);
        let delta = new_len - old_len;
        if r.e * PAGE - addr == old_len && self.expandable(r, delta) {
            let Page::Anon { flags: f, backing } = self.pages[&(r.e - 1)] else {
                unreachable!("generated calls never touch the starting regions")
            };
            for i in 0..delta / PAGE {
                let backing = match backing {
                    Backing::Private { pgoff, .. } => Backing::Private {
                        pgoff: pgoff + 1 + i,
                        anon: r.anon,
                    },
                    Backing::Shared { obj, off } => Backing::Shared {
                        obj,
                        off: off + 1 + i,
                    },
                    Backing::Heap => unreachable!("the heap is not a target"),
                };
                self.put(r.e + i, Page::Anon { flags: f, backing });
            }
            if f.contains(VmFlags::LOCKED) {
                self.locked_vm += delta / PAGE;
            }
            return Ok(addr);
        }
        if flags & MREMAP_MAYMOVE == 0 {
            return Err(Errno::ENOMEM);
        }
        let shared = self.pages[&(addr / PAGE)].is_shared();
        let target = self.get_unmapped_area(0, new_len, false, shared, shared)?;
        self.move_pages(addr, old_len, new_len, flags, target)
    }

    fn expandable(&self, r: Region, delta: u64) -> bool {
        let Some(end) = (r.e * PAGE).checked_add(delta) else {
            return false;
        };
        if self.any_mapped(r.e, end / PAGE) {
            return false;
        }
        let len = end - r.s * PAGE;
        len <= TASK_SIZE && r.s * PAGE <= TASK_SIZE - len && r.s * PAGE >= MIN_ADDR
    }

    /// `mremap_to`: `MREMAP_FIXED` (unmap the target first) or
    /// `MREMAP_DONTUNMAP` (the new address is a hint).
    fn mremap_to(&mut self, addr: u64, old_len: u64, new_len: u64, flags: u64, new_addr: u64) -> R {
        let mut old_len = old_len;
        if flags & MREMAP_FIXED != 0 {
            self.do_munmap(new_addr, new_len)?;
            if !self.mapped(addr / PAGE) {
                return Err(Errno::EFAULT);
            }
        }
        if new_len < old_len {
            self.do_munmap(addr + new_len, old_len - new_len)?;
            old_len = new_len;
        }
        let shared = self.pages[&(addr / PAGE)].is_shared();
        let target =
            self.get_unmapped_area(new_addr, new_len, flags & MREMAP_FIXED != 0, shared, shared)?;
        self.move_pages(addr, old_len, new_len, flags, target)
    }

    /// `move_vma`: copy the region's part at `addr` to `target` (growing it
    /// to `new_len`), then unmap the old part, or with `MREMAP_DONTUNMAP`
    /// keep it and clear the lock bits of the whole old region.
    fn move_pages(&mut self, addr: u64, old_len: u64, new_len: u64, flags: u64, target: u64) -> R {
        let Page::Anon { flags: f, backing } = self.pages[&(addr / PAGE)] else {
            unreachable!("generated calls never touch the starting regions")
        };
        let src = self.region(addr / PAGE);
        let (t, n) = (target / PAGE, new_len / PAGE);
        for i in 0..n {
            let backing = match backing {
                // Never-faulted private memory takes the offset of its new
                // place; faulted memory keeps its offset and anon_vma.
                Backing::Private { pgoff, .. } => match src.anon {
                    None => Backing::Private {
                        pgoff: t + i,
                        anon: None,
                    },
                    Some(a) => Backing::Private {
                        pgoff: pgoff + i,
                        anon: Some(a),
                    },
                },
                Backing::Shared { obj, off } => Backing::Shared { obj, off: off + i },
                Backing::Heap => unreachable!("the heap is not a target"),
            };
            self.put(t + i, Page::Anon { flags: f, backing });
        }
        if f.contains(VmFlags::LOCKED) {
            self.locked_vm += n;
        }
        if flags & MREMAP_DONTUNMAP != 0 {
            // The old region (which the copy may have merged into) keeps its
            // pages' mappings but loses VM_LOCKED/VM_LOCKONFAULT, without a
            // merge attempt; locked_vm is left as it was. If all of it moved
            // (and the copy did not merge into it), it drops its anon_vma.
            let r = self.region(addr / PAGE);
            for p in r.s..r.e {
                if let Some(Page::Anon { flags, .. }) = self.pages.get_mut(&p) {
                    *flags -= LOCK_BITS;
                }
            }
            if r.s * PAGE == addr && r.e * PAGE == addr + old_len {
                self.set_anon(r.s, r.e, None);
            }
            if r.s > 0 && self.link(r.s - 1) {
                self.forced.insert(r.s);
            }
            if self.link(r.e - 1) {
                self.forced.insert(r.e);
            }
        } else if old_len > 0 {
            self.unmap_pages(addr / PAGE, (addr + old_len) / PAGE);
        }
        Ok(target)
    }

    /// A same-size `MREMAP_FIXED` move: every region in the range moves, the
    /// gaps between them kept; a hole at the start is `EFAULT`.
    fn remap_move(&mut self, start: u64, len: u64, flags: u64, new_addr: u64) -> R {
        let end = start.wrapping_add(len);
        let mut res = Err(Errno::EFAULT);
        let mut seen = false;
        let mut last_end = 0;
        let mut target = new_addr;
        let mut cursor = start / PAGE;
        while cursor < end / PAGE {
            let Some((&q, _)) = self.pages.range(cursor..end / PAGE).next() else {
                break;
            };
            let r = self.region(q);
            if !seen && start / PAGE < r.s {
                return Err(Errno::EFAULT);
            }
            let a = r.s.max(start / PAGE) * PAGE;
            let l = (end / PAGE).min(r.e) * PAGE - a;
            let offset = if seen { (r.s - last_end) * PAGE } else { 0 };
            last_end = r.e;
            self.check_prep(a, l, l, flags)?;
            let got = self.mremap_to(a, l, l, flags, target + offset)?;
            if !seen {
                res = Ok(got);
            }
            seen = true;
            target = got + l;
            cursor = r.e;
        }
        res
    }
}

// ---------------------------------------------------------------------------
// Calls
// ---------------------------------------------------------------------------

/// A fully resolved call.
#[derive(Clone, Debug)]
enum Call {
    Mmap(u64, u64, u64, u64, u64),
    Munmap(u64, u64),
    Mprotect(u64, u64, u64),
    Mremap(u64, u64, u64, u64, u64),
    Madvise(u64, u64, u64),
    Mlock2(u64, u64, u64),
    Munlock(u64, u64),
    Mlockall(u64),
    Munlockall,
    Mseal(u64, u64, u64),
    Brk(u64),
    Memlock(u64, u64),
}

impl Call {
    fn model(&self, m: &mut Model) -> R {
        m.normalize();
        let r = self.model_call(m);
        m.normalize();
        r
    }

    fn model_call(&self, m: &mut Model) -> R {
        match *self {
            Call::Mmap(a, l, p, f, o) => m.mmap(a, l, p, f, o),
            Call::Munmap(a, l) => m.do_munmap(a, l),
            Call::Mprotect(a, l, p) => m.mprotect(a, l, p),
            Call::Mremap(a, ol, nl, f, na) => m.mremap(a, ol, nl, f, na),
            Call::Madvise(a, l, adv) => m.madvise(a, l, adv),
            Call::Mlock2(a, l, f) => m.mlock2(a, l, f),
            Call::Munlock(a, l) => m.munlock(a, l),
            Call::Mlockall(f) => m.mlockall(f),
            Call::Munlockall => {
                m.apply_mlockall(0);
                Ok(0)
            }
            Call::Mseal(a, l, f) => m.mseal(a, l, f),
            Call::Brk(a) => Ok(m.brk(a)),
            Call::Memlock(s, h) => m.setrlimit_memlock(s, h),
        }
    }

    fn engine(&self, sys: &mut System, pid: Pid) -> R {
        match *self {
            Call::Mmap(a, l, p, f, o) => sys.mmap(pid, a, l, p, f, u64::MAX, o),
            Call::Munmap(a, l) => sys.munmap(pid, a, l),
            Call::Mprotect(a, l, p) => sys.mprotect(pid, a, l, p),
            Call::Mremap(a, ol, nl, f, na) => sys.mremap(pid, a, ol, nl, f, na),
            Call::Madvise(a, l, adv) => sys.madvise(pid, a, l, adv),
            Call::Mlock2(a, l, 0) => sys.mlock(pid, a, l),
            Call::Mlock2(a, l, f) => sys.mlock2(pid, a, l, f),
            Call::Munlock(a, l) => sys.munlock(pid, a, l),
            Call::Mlockall(f) => sys.mlockall(pid, f),
            Call::Munlockall => sys.munlockall(pid),
            Call::Mseal(a, l, f) => sys.mseal(pid, a, l, f),
            Call::Brk(a) => sys.brk(pid, a),
            Call::Memlock(s, h) => sys.setrlimit(pid, RLIMIT_MEMLOCK, s, h),
        }
    }

    /// The call in `.vms` scenario syntax.
    fn render(&self) -> String {
        match *self {
            Call::Mmap(a, l, p, f, o) => {
                format!("mmap({a:#x}, {l:#x}, {p:#x}, {f:#x}, -1, {o:#x})")
            }
            Call::Munmap(a, l) => format!("munmap({a:#x}, {l:#x})"),
            Call::Mprotect(a, l, p) => format!("mprotect({a:#x}, {l:#x}, {p:#x})"),
            Call::Mremap(a, ol, nl, f, na) => {
                format!("mremap({a:#x}, {ol:#x}, {nl:#x}, {f:#x}, {na:#x})")
            }
            Call::Madvise(a, l, adv) => format!("madvise({a:#x}, {l:#x}, {adv})"),
            Call::Mlock2(a, l, 0) => format!("mlock({a:#x}, {l:#x})"),
            Call::Mlock2(a, l, f) => format!("mlock2({a:#x}, {l:#x}, {f})"),
            Call::Munlock(a, l) => format!("munlock({a:#x}, {l:#x})"),
            Call::Mlockall(f) => format!("mlockall({f})"),
            Call::Munlockall => "munlockall()".to_string(),
            Call::Mseal(a, l, f) => format!("mseal({a:#x}, {l:#x}, {f})"),
            Call::Brk(a) => format!("brk({a:#x})"),
            Call::Memlock(s, h) => format!("setrlimit(RLIMIT_MEMLOCK, {s:#x}, {h:#x})"),
        }
    }
}

fn show(r: &R) -> String {
    match r {
        Ok(v) => format!("{v:#x}"),
        Err(e) => format!("-1 {}", e.name()),
    }
}

// ---------------------------------------------------------------------------
// Generated operations (resolved against the model when run)
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Addr {
    /// Page `n` of the window.
    Win(u64),
    /// Near (±pages) the first or last page of an existing test region.
    Near(Index, i64),
    /// A fixed value.
    Raw(u64),
}

#[derive(Clone, Debug)]
enum Len {
    Pages(u64),
    /// Not a whole number of pages.
    Bytes(u64),
    /// A fixed value (zero, wrapping, too large): never clamped.
    Raw(u64),
    /// `mremap`'s new length: the same as the old one (a pure move).
    Same,
}

#[derive(Clone, Debug)]
enum Op {
    Mmap(Addr, Len, u64, u64, u64),
    Munmap(Addr, Len),
    Mprotect(Addr, Len, u64),
    Mremap(Addr, Len, Len, u64, Addr),
    Madvise(Addr, Len, u64),
    Mlock2(Addr, Len, u64),
    Munlock(Addr, Len),
    Mlockall(u64),
    Munlockall,
    Mseal(Addr, Len, u64),
    Brk(u64, u64),
    BrkRaw(u64),
    Memlock(u64, u64),
}

impl Model {
    /// First and last pages of the test's regions (not the heap): good
    /// places to aim at.
    fn edges(&self) -> Vec<u64> {
        let mut v = Vec::new();
        for r in self.regions() {
            if matches!(
                self.pages[&r.s],
                Page::Ext { .. }
                    | Page::Anon {
                        backing: Backing::Heap,
                        ..
                    }
            ) {
                continue;
            }
            v.push(r.s);
            if r.e - 1 != r.s {
                v.push(r.e - 1);
            }
        }
        v
    }

    fn addr(&self, a: &Addr) -> u64 {
        match *a {
            Addr::Win(n) => WIN_BASE + n * PAGE,
            Addr::Near(ref i, d) => {
                let edges = self.edges();
                if edges.is_empty() {
                    WIN_BASE + (i.index(WIN_PAGES as usize) as u64) * PAGE
                } else {
                    (edges[i.index(edges.len())] as i64 + d) as u64 * PAGE
                }
            }
            Addr::Raw(v) => v,
        }
    }

    /// The page-number range of `[a, a + len)` when it neither wraps nor is
    /// empty.
    fn span(a: u64, len: u64) -> Option<(u64, u64)> {
        let end = a.checked_add(page_align(len))?;
        (len != 0 && page_align(len) != 0 && end > a).then(|| (a / PAGE, end.div_ceil(PAGE)))
    }

    fn touches_ext(&self, a: u64, len: u64) -> bool {
        match Model::span(a, len) {
            Some((s, e)) => self
                .pages
                .range(s..e)
                .any(|(_, pg)| matches!(pg, Page::Ext { .. })),
            None => false,
        }
    }

    /// The length, cut short so that `[a, a + len)` stays clear of the
    /// starting regions; `None` when nothing would be left.
    fn len(&self, a: u64, l: &Len) -> Option<u64> {
        let len = match *l {
            Len::Pages(n) => n * PAGE,
            Len::Bytes(b) => b,
            Len::Raw(v) => return Some(v),
            Len::Same => unreachable!("only a new length of mremap"),
        };
        let Some((s, e)) = Model::span(a, len) else {
            return Some(len);
        };
        match self
            .pages
            .range(s..e)
            .find(|(_, pg)| matches!(pg, Page::Ext { .. }))
        {
            None => Some(len),
            Some((&x, _)) => {
                let cut = (x * PAGE).saturating_sub(a);
                (cut > 0).then_some(cut)
            }
        }
    }

    fn resolve(&self, op: &Op) -> Option<Call> {
        Some(match op {
            Op::Mmap(a, l, prot, flags, off) => {
                let addr = self.addr(a);
                let len = if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0 {
                    self.len(addr, l)?
                } else {
                    match *l {
                        Len::Pages(n) => n * PAGE,
                        Len::Bytes(b) => b,
                        Len::Raw(v) => v,
                        Len::Same => unreachable!("only a new length of mremap"),
                    }
                };
                Call::Mmap(addr, len, *prot, *flags, *off)
            }
            Op::Munmap(a, l) => {
                let addr = self.addr(a);
                Call::Munmap(addr, self.len(addr, l)?)
            }
            Op::Mprotect(a, l, prot) => {
                let addr = self.addr(a);
                Call::Mprotect(addr, self.len(addr, l)?, *prot)
            }
            Op::Mremap(a, ol, nl, flags, na) => {
                let addr = self.addr(a);
                let old_len = self.len(addr, ol)?;
                let new_len = match *nl {
                    Len::Pages(n) => n * PAGE,
                    Len::Bytes(b) => b,
                    Len::Raw(v) => v,
                    Len::Same => old_len,
                };
                let new_addr = self.addr(na);
                let huge = old_len > TASK_SIZE;
                if (!huge && self.touches_ext(addr, old_len))
                    || (flags & MREMAP_FIXED != 0 && self.touches_ext(new_addr, new_len))
                {
                    return None;
                }
                Call::Mremap(addr, old_len, new_len, *flags, new_addr)
            }
            Op::Madvise(a, l, adv) => {
                let addr = self.addr(a);
                Call::Madvise(addr, self.len(addr, l)?, *adv)
            }
            Op::Mlock2(a, l, f) => {
                let addr = self.addr(a);
                Call::Mlock2(addr, self.len(addr, l)?, *f)
            }
            Op::Munlock(a, l) => {
                let addr = self.addr(a);
                Call::Munlock(addr, self.len(addr, l)?)
            }
            Op::Mlockall(f) => Call::Mlockall(*f),
            Op::Munlockall => Call::Munlockall,
            Op::Mseal(a, l, f) => {
                let addr = self.addr(a);
                Call::Mseal(addr, self.len(addr, l)?, *f)
            }
            Op::Brk(pages, extra) => Call::Brk(self.start_brk + pages * PAGE + extra),
            Op::BrkRaw(v) => Call::Brk(*v),
            Op::Memlock(s, h) => Call::Memlock(*s, *h),
        })
    }
}

// ----- strategies ------------------------------------------------------------

/// Addresses that fail argument checks or hit nothing, for calls on ranges.
const RANGE_RAW: &[u64] = &[
    0x1000,
    0x8000,
    WIN_BASE + 0x800,
    WIN_BASE + 1,
    TASK_SIZE,
    TASK_SIZE + PAGE,
    !(PAGE - 1),
    0xffff_8000_0000_0000,
];

/// Hints and fixed addresses for `mmap`.
const MMAP_RAW: &[u64] = &[
    0,
    0x1000,
    MIN_ADDR,
    WIN_BASE + 0x800,
    NEAR_GUARD,
    NEAR_GUARD - 6 * PAGE,
    TASK_SIZE,
    TASK_SIZE - PAGE,
    !(PAGE - 1),
];

/// Lengths that are zero or wrap once page-aligned.
const LEN_RAW: &[u64] = &[0, u64::MAX, u64::MAX - 0xfff, u64::MAX - 0x1000];
/// Lengths the mapping calls reject as too large.
const LEN_BIG: &[u64] = &[TASK_SIZE + PAGE, 1 << 48];

/// A window page, most often in its upper part where mappings go first.
fn win() -> impl Strategy<Value = Addr> {
    prop_oneof![3 => 40..WIN_PAGES, 1 => 0..WIN_PAGES].prop_map(Addr::Win)
}

fn near() -> impl Strategy<Value = Addr> {
    (any::<Index>(), -2i64..=2).prop_map(|(i, d)| Addr::Near(i, d))
}

/// For calls that want a mapped start: mostly exactly at a region's end
/// page.
fn addr_mapped() -> impl Strategy<Value = Addr> {
    prop_oneof![
        6 => any::<Index>().prop_map(|i| Addr::Near(i, 0)),
        4 => near(),
        3 => win(),
        1 => prop::sample::select(RANGE_RAW).prop_map(Addr::Raw),
    ]
}

fn addr_range() -> impl Strategy<Value = Addr> {
    prop_oneof![
        4 => win(),
        8 => near(),
        1 => prop::sample::select(RANGE_RAW).prop_map(Addr::Raw),
    ]
}

/// An `mmap` address and placement flags: a hint (mostly none), or a fixed
/// address.
fn mmap_place() -> impl Strategy<Value = (Addr, u64)> {
    let hint = prop_oneof![
        6 => Just(Addr::Raw(0)),
        2 => win(),
        2 => near(),
        2 => prop::sample::select(MMAP_RAW).prop_map(Addr::Raw),
    ];
    let fixed = prop_oneof![
        4 => win(),
        5 => near(),
        1 => prop::sample::select(MMAP_RAW).prop_map(Addr::Raw),
    ];
    let fixed_flags = prop_oneof![
        3 => Just(MAP_FIXED),
        2 => Just(MAP_FIXED_NOREPLACE),
        1 => Just(MAP_FIXED | MAP_FIXED_NOREPLACE),
    ];
    prop_oneof![
        6 => hint.prop_map(|a| (a, 0)),
        5 => (fixed, fixed_flags),
    ]
}

fn len_small() -> impl Strategy<Value = Len> {
    prop_oneof![
        12 => (1u64..=8).prop_map(Len::Pages),
        1 => (1u64..8 * PAGE).prop_filter("unaligned", |b| b % PAGE != 0).prop_map(Len::Bytes),
        1 => prop::sample::select(LEN_RAW).prop_map(Len::Raw),
    ]
}

fn len_big() -> impl Strategy<Value = Len> {
    prop_oneof![
        14 => len_small(),
        1 => prop::sample::select(LEN_BIG).prop_map(Len::Raw),
        1 => prop::sample::select(&[PMD_PAGES, 2 * PMD_PAGES][..]).prop_map(Len::Pages),
    ]
}

fn mmap_flags() -> impl Strategy<Value = u64> {
    let kind = prop_oneof![
        8 => Just(MAP_PRIVATE | MAP_ANONYMOUS),
        4 => Just(MAP_SHARED | MAP_ANONYMOUS),
        1 => Just(MAP_SHARED_VALIDATE | MAP_ANONYMOUS),
        1 => Just(MAP_ANONYMOUS),
        1 => Just(MAP_PRIVATE),
    ];
    let extra = prop_oneof![
        8 => Just(0),
        1 => Just(MAP_NORESERVE),
        1 => Just(MAP_LOCKED),
        1 => Just(MAP_POPULATE),
        1 => Just(MAP_STACK),
        1 => Just(MAP_SYNC),
        1 => Just(MAP_NONBLOCK | MAP_DENYWRITE | MAP_EXECUTABLE),
        1 => Just(MAP_ABOVE4G),
        1 => Just(MAP_LOCKED | MAP_NORESERVE),
    ];
    (kind, extra).prop_map(|(k, e)| k | e)
}

fn mmap_prot() -> impl Strategy<Value = u64> {
    prop_oneof![
        10 => 0u64..8,
        1 => (0u64..8).prop_map(|p| p | PROT_SEM),
        1 => prop::sample::select(&[0x10, PROT_GROWSDOWN | PROT_READ][..]),
    ]
}

fn mprotect_prot() -> impl Strategy<Value = u64> {
    prop_oneof![
        12 => 0u64..8,
        1 => (0u64..8).prop_map(|p| p | PROT_SEM),
        1 => prop::sample::select(
            &[
                0x10,
                PROT_GROWSDOWN | PROT_READ,
                PROT_GROWSUP | PROT_READ,
                PROT_GROWSDOWN | PROT_GROWSUP,
            ][..]
        ),
    ]
}

fn advice() -> impl Strategy<Value = u64> {
    prop::sample::select(
        &[
            MADV_NORMAL,
            MADV_RANDOM,
            MADV_SEQUENTIAL,
            MADV_WILLNEED,
            MADV_DONTNEED,
            MADV_FREE,
            MADV_DONTFORK,
            MADV_DOFORK,
            MADV_MERGEABLE,
            MADV_UNMERGEABLE,
            MADV_HUGEPAGE,
            MADV_NOHUGEPAGE,
            MADV_DONTDUMP,
            MADV_DODUMP,
            MADV_WIPEONFORK,
            MADV_KEEPONFORK,
            MADV_COLD,
            MADV_PAGEOUT,
            5,
            7,
            50,
            1000,
        ][..],
    )
}

fn mremap_flags() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => Just(0),
        6 => Just(MREMAP_MAYMOVE),
        4 => Just(MREMAP_MAYMOVE | MREMAP_FIXED),
        3 => Just(MREMAP_MAYMOVE | MREMAP_DONTUNMAP),
        2 => Just(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP),
        1 => prop::sample::select(&[MREMAP_FIXED, MREMAP_DONTUNMAP, 8][..]),
    ]
}

fn mremap_new_len() -> impl Strategy<Value = Len> {
    prop_oneof![
        12 => (1u64..=12).prop_map(Len::Pages),
        6 => Just(Len::Same),
        1 => (1u64..8 * PAGE).prop_filter("unaligned", |b| b % PAGE != 0).prop_map(Len::Bytes),
        1 => prop::sample::select(&[0, TASK_SIZE + PAGE, u64::MAX][..]).prop_map(Len::Raw),
        1 => Just(Len::Pages(PMD_PAGES)),
    ]
}

fn mremap_old_len() -> impl Strategy<Value = Len> {
    prop_oneof![
        6 => (1u64..=2).prop_map(Len::Pages),
        6 => (1u64..=8).prop_map(Len::Pages),
        1 => Just(Len::Raw(0)),
        1 => (1u64..8 * PAGE).prop_filter("unaligned", |b| b % PAGE != 0).prop_map(Len::Bytes),
        // Too long to unmap: a shrink fails with EINVAL.
        1 => prop::sample::select(&[TASK_SIZE + PAGE, 1 << 47, !(PAGE - 1)][..]).prop_map(Len::Raw),
    ]
}

fn new_addr() -> impl Strategy<Value = Addr> {
    prop_oneof![
        4 => win(),
        5 => near(),
        1 => prop::sample::select(&[0, 0x1000, WIN_BASE + 0x800, TASK_SIZE][..]).prop_map(Addr::Raw),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let pages = |n| n * PAGE;
    let memlock = prop::sample::select(vec![
        0,
        pages(4),
        pages(16),
        pages(64),
        pages(2048),
        u64::MAX,
    ]);
    prop_oneof![
        7 => (mmap_place(), len_big(), mmap_prot(), mmap_flags(), prop_oneof![18 => Just(0), 1 => Just(PAGE), 1 => Just(0x123)])
            .prop_map(|((a, place), l, p, f, o)| Op::Mmap(a, l, p, f | place, o)),
        2 => (addr_range(), len_big()).prop_map(|(a, l)| Op::Munmap(a, l)),
        3 => (addr_mapped(), len_small(), mprotect_prot()).prop_map(|(a, l, p)| Op::Mprotect(a, l, p)),
        5 => (addr_mapped(), mremap_old_len(), mremap_new_len(), mremap_flags(), new_addr())
            .prop_map(|(a, ol, nl, f, na)| Op::Mremap(a, ol, nl, f, na)),
        3 => (addr_range(), len_small(), advice()).prop_map(|(a, l, adv)| Op::Madvise(a, l, adv)),
        2 => (addr_range(), len_small(), prop::sample::select(&[0, 0, 0, MLOCK_ONFAULT, 2][..]))
            .prop_map(|(a, l, f)| Op::Mlock2(a, l, f)),
        1 => (addr_range(), len_small()).prop_map(|(a, l)| Op::Munlock(a, l)),
        1 => (addr_range(), len_small(), prop::sample::select(&[0, 0, 0, 0, 1][..]))
            .prop_map(|(a, l, f)| Op::Mseal(a, l, f)),
        1 => prop_oneof![
            3 => prop::sample::select(
                &[
                    MCL_CURRENT,
                    MCL_FUTURE,
                    MCL_CURRENT | MCL_FUTURE,
                    MCL_CURRENT | MCL_ONFAULT,
                    MCL_FUTURE | MCL_ONFAULT,
                    0,
                    MCL_ONFAULT,
                    8,
                ][..]
            )
            .prop_map(Op::Mlockall),
            2 => Just(Op::Munlockall),
        ],
        1 => prop_oneof![
            4 => (0u64..24, prop::sample::select(&[0, 0, 0x123][..])).prop_map(|(p, x)| Op::Brk(p, x)),
            1 => prop::sample::select(&[0, u64::MAX, 0x7fff_0000_0000][..]).prop_map(Op::BrkRaw),
        ],
        1 => (memlock.clone(), prop_oneof![Just(None), memlock.prop_map(Some)])
            .prop_map(|(s, h): (u64, Option<u64>)| Op::Memlock(s, h.unwrap_or(s))),
    ]
}

// ---------------------------------------------------------------------------
// Comparing
// ---------------------------------------------------------------------------

/// A one-to-one correspondence between engine and model identities, bound
/// on first sight.
struct Bijection<E, M> {
    fwd: HashMap<E, M>,
    back: HashMap<M, E>,
}

impl<
        E: std::hash::Hash + Eq + Copy + std::fmt::Debug,
        M: std::hash::Hash + Eq + Copy + std::fmt::Debug,
    > Bijection<E, M>
{
    fn new() -> Self {
        Bijection {
            fwd: HashMap::new(),
            back: HashMap::new(),
        }
    }
    fn check(&mut self, e: E, m: M) -> Result<(), String> {
        let me = *self.fwd.entry(e).or_insert(m);
        let em = *self.back.entry(m).or_insert(e);
        if me != m || em != e {
            return Err(format!(
                "engine {e:?} is model {me:?}, model {m:?} is engine {em:?}"
            ));
        }
        Ok(())
    }
}

/// Engine shared files and `anon_vma`s <-> model objects and `anon_vma`s.
struct Idents {
    files: Bijection<FileId, u32>,
    anons: Bijection<AnonVmaId, u32>,
}

fn compare(sys: &System, pid: Pid, m: &Model, ids: &mut Idents) -> Result<(), String> {
    let mm = &sys.process(pid).unwrap().mm;
    let regions = m.regions();
    let mut region = regions.iter().peekable();
    let mut want = m.pages.iter();
    for v in mm.vmas() {
        for p in v.start() / PAGE..v.end() / PAGE {
            let Some((&mp, mpage)) = want.next() else {
                return Err(format!("page {:#x} is mapped in the engine only", p * PAGE));
            };
            if mp != p {
                let (lo, which) = if mp < p { (mp, "model") } else { (p, "engine") };
                return Err(format!(
                    "page {:#x} is mapped in the {which} only",
                    lo * PAGE
                ));
            }
            while region.peek().is_some_and(|r| r.e <= p) {
                region.next();
            }
            let got = v.flags() - VmFlags::SOFTDIRTY;
            if got != mpage.flags() {
                return Err(format!(
                    "page {:#x}: engine flags {:?}, model {:?} (engine region {:#x}-{:#x})",
                    p * PAGE,
                    got,
                    mpage.flags(),
                    v.start(),
                    v.end()
                ));
            }
            let pgoff = v.pgoff_at(p * PAGE);
            let at = |what: String| {
                format!(
                    "page {:#x} (engine region {:#x}-{:#x}): {what}",
                    p * PAGE,
                    v.start(),
                    v.end()
                )
            };
            match mpage.backing() {
                None => {}
                Some(Backing::Heap) if v.attrs.file.is_some() || pgoff != p => {
                    return Err(at(format!(
                        "heap in the model, engine file {:?} pgoff {pgoff:#x}",
                        v.attrs.file
                    )));
                }
                Some(Backing::Heap) => {}
                Some(Backing::Private {
                    pgoff: want_pgoff, ..
                }) => {
                    if v.attrs.file.is_some() || pgoff != want_pgoff {
                        return Err(at(format!(
                            "private, pgoff {want_pgoff:#x} in the model; engine file {:?} pgoff {pgoff:#x}",
                            v.attrs.file
                        )));
                    }
                    let anon = region.peek().and_then(|r| r.anon);
                    match (v.attrs.anon_vma, anon) {
                        (None, None) => {}
                        (Some(e), Some(a)) => ids
                            .anons
                            .check(e, a)
                            .map_err(|x| at(format!("anon_vma: {x}")))?,
                        (e, a) => return Err(at(format!("anon_vma: engine {e:?}, model {a:?}"))),
                    }
                }
                Some(Backing::Shared { obj, off }) => {
                    let Some(f) = v.attrs.file else {
                        return Err(at("shared in the model, no file in the engine".to_string()));
                    };
                    ids.files
                        .check(f, obj)
                        .map_err(|x| at(format!("shared object: {x}")))?;
                    if pgoff != off {
                        return Err(at(format!(
                            "model object {obj} page {off}, engine pgoff {pgoff}"
                        )));
                    }
                }
            }
        }
    }
    if let Some((&mp, _)) = want.next() {
        return Err(format!("page {:#x} is mapped in the model only", mp * PAGE));
    }
    let c = &mm.counters;
    if c.locked_vm != m.locked_vm {
        return Err(format!(
            "locked_vm: engine {}, model {}",
            c.locked_vm, m.locked_vm
        ));
    }
    if c.total_vm != m.pages.len() as u64 {
        return Err(format!(
            "total_vm: engine {}, model {}",
            c.total_vm,
            m.pages.len()
        ));
    }
    if mm.layout.brk != m.brk {
        return Err(format!(
            "brk: engine {:#x}, model {:#x}",
            mm.layout.brk, m.brk
        ));
    }
    if mm.def_flags != m.def_flags {
        return Err(format!(
            "def_flags: engine {:?}, model {:?}",
            mm.def_flags, m.def_flags
        ));
    }
    let ml = mm.rlimits.memlock;
    if (ml.cur, ml.max) != (m.memlock_cur, m.memlock_max) {
        return Err(format!(
            "RLIMIT_MEMLOCK: engine {ml:?}, model {:#x}/{:#x}",
            m.memlock_cur, m.memlock_max
        ));
    }
    Ok(())
}

/// smaps `VmFlags` mnemonics (for `MODEL_DUMP`).
fn mnemonics(f: VmFlags) -> String {
    const NAMES: &[(&str, VmFlags)] = &[
        ("rd", VmFlags::READ),
        ("wr", VmFlags::WRITE),
        ("ex", VmFlags::EXEC),
        ("sh", VmFlags::SHARED),
        ("mr", VmFlags::MAYREAD),
        ("mw", VmFlags::MAYWRITE),
        ("me", VmFlags::MAYEXEC),
        ("ms", VmFlags::MAYSHARE),
        ("gd", VmFlags::GROWSDOWN),
        ("pf", VmFlags::PFNMAP),
        ("lo", VmFlags::LOCKED),
        ("io", VmFlags::IO),
        ("sr", VmFlags::SEQ_READ),
        ("rr", VmFlags::RAND_READ),
        ("dc", VmFlags::DONTCOPY),
        ("de", VmFlags::DONTEXPAND),
        ("lf", VmFlags::LOCKONFAULT),
        ("ac", VmFlags::ACCOUNT),
        ("nr", VmFlags::NORESERVE),
        ("sf", VmFlags::SYNC),
        ("wf", VmFlags::WIPEONFORK),
        ("dd", VmFlags::DONTDUMP),
        ("mm", VmFlags::MIXEDMAP),
        ("hg", VmFlags::HUGEPAGE),
        ("nh", VmFlags::NOHUGEPAGE),
        ("mg", VmFlags::MERGEABLE),
        ("sl", VmFlags::SEALED),
    ];
    let mut v: Vec<&str> = NAMES
        .iter()
        .filter(|(_, b)| f.contains(*b))
        .map(|(n, _)| *n)
        .collect();
    v.sort_unstable();
    v.join(" ")
}

fn run(ops: &[Op]) -> Result<(), String> {
    let mut sys = System::new(Params::default());
    let pid = sys.spawn_default();
    let mut m = Model::from_engine(&sys, pid);
    let mut ids = Idents {
        files: Bijection::new(),
        anons: Bijection::new(),
    };
    let mut log = String::new();
    compare(&sys, pid, &m, &mut ids)?;
    for op in ops {
        let Some(call) = m.resolve(op) else {
            continue;
        };
        let want = call.model(&mut m);
        let got = call.engine(&mut sys, pid);
        let _ = writeln!(
            log,
            "{}  # engine {}, model {}",
            call.render(),
            show(&got),
            show(&want)
        );
        let fail = |what: String| {
            let maps = sys.maps(pid).unwrap_or_default();
            format!("{what}\ncalls (vms syntax):\n{log}engine maps:\n{maps}")
        };
        if got != want {
            return Err(fail(format!(
                "results differ: engine {}, model {}",
                show(&got),
                show(&want)
            )));
        }
        if let Err(e) = sys.check() {
            return Err(fail(format!("engine check failed: {e}")));
        }
        if let Err(e) = compare(&sys, pid, &m, &mut ids) {
            return Err(fail(e));
        }
    }
    // MODEL_DUMP=DIR writes every sequence as a scenario, for replaying on
    // the running kernel with `vmspace diff`.
    if let Some(dir) = std::env::var_os("MODEL_DUMP") {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::path::Path::new(&dir).join(format!("case{n:05}.vms"));
        let _ = std::fs::write(&path, format!("{log}maps()\nstatus()\n"));
        // The model's flags, run by run, as smaps `VmFlags` mnemonics.
        let mut flags = String::new();
        let mut run: Option<(u64, u64, VmFlags)> = None;
        for (&p, pg) in &m.pages {
            match run.as_mut() {
                Some((_, e, f)) if *e == p && *f == pg.flags() => *e = p + 1,
                _ => {
                    if let Some((s, e, f)) = run.take() {
                        let _ = writeln!(flags, "{:x}-{:x} {}", s * PAGE, e * PAGE, mnemonics(f));
                    }
                    run = Some((p, p + 1, pg.flags()));
                }
            }
        }
        if let Some((s, e, f)) = run {
            let _ = writeln!(flags, "{:x}-{:x} {}", s * PAGE, e * PAGE, mnemonics(f));
        }
        let _ = std::fs::write(path.with_extension("flags"), flags);
    }
    Ok(())
}

/// 256 cases (`MODEL_CASES=n` for more), no regression files.
fn config() -> ProptestConfig {
    let cases = std::env::var("MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok());
    ProptestConfig {
        cases: cases.unwrap_or(256),
        max_shrink_iters: 4096,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn engine_matches_model(ops in prop::collection::vec(op(), 1..60)) {
        if let Err(e) = run(&ops) {
            prop_assert!(false, "{}", e);
        }
    }
}

/// A few hand-written sequences that the random ones reach only rarely.
#[test]
fn model_smoke() {
    let seqs: Vec<Vec<Op>> = vec![
        // 2 MiB-aligned placement, then a move of it.
        vec![
            Op::Mmap(
                Addr::Raw(0),
                Len::Pages(PMD_PAGES),
                3,
                MAP_PRIVATE | MAP_ANONYMOUS,
                0,
            ),
            Op::Mmap(
                Addr::Raw(0),
                Len::Pages(3),
                3,
                MAP_PRIVATE | MAP_ANONYMOUS,
                0,
            ),
            Op::Mmap(
                Addr::Raw(0),
                Len::Pages(PMD_PAGES),
                3,
                MAP_PRIVATE | MAP_ANONYMOUS,
                0,
            ),
            Op::Mremap(
                Addr::Win(61),
                Len::Pages(1),
                Len::Pages(PMD_PAGES),
                MREMAP_MAYMOVE,
                Addr::Raw(0),
            ),
        ],
        // mlock and DONTUNMAP, partial and whole.
        vec![
            Op::Mmap(
                Addr::Win(40),
                Len::Pages(4),
                1,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                0,
            ),
            Op::Mmap(
                Addr::Win(44),
                Len::Pages(4),
                1,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                0,
            ),
            Op::Mlock2(Addr::Win(40), Len::Pages(4), 0),
            Op::Mremap(
                Addr::Win(40),
                Len::Pages(4),
                Len::Pages(4),
                MREMAP_MAYMOVE | MREMAP_DONTUNMAP,
                Addr::Raw(0),
            ),
            Op::Mremap(
                Addr::Win(40),
                Len::Pages(8),
                Len::Pages(10),
                MREMAP_MAYMOVE,
                Addr::Raw(0),
            ),
        ],
        // Shared memory duplicated with old_len 0, grown, sealed.
        vec![
            Op::Mmap(
                Addr::Raw(0),
                Len::Pages(4),
                3,
                MAP_SHARED | MAP_ANONYMOUS,
                0,
            ),
            Op::Mremap(
                Addr::Win(60),
                Len::Raw(0),
                Len::Pages(6),
                MREMAP_MAYMOVE,
                Addr::Raw(0),
            ),
            Op::Mseal(Addr::Win(60), Len::Pages(4), 0),
            Op::Munmap(Addr::Win(60), Len::Pages(1)),
            Op::Mprotect(Addr::Win(62), Len::Pages(1), 1),
        ],
        // A multi-region fixed move with a gap.
        vec![
            Op::Mmap(
                Addr::Win(10),
                Len::Pages(2),
                3,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                0,
            ),
            Op::Mmap(
                Addr::Win(13),
                Len::Pages(2),
                1,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                0,
            ),
            Op::Mremap(
                Addr::Win(10),
                Len::Pages(6),
                Len::Pages(6),
                MREMAP_MAYMOVE | MREMAP_FIXED,
                Addr::Win(30),
            ),
            Op::Brk(3, 0x123),
            Op::Brk(1, 0),
        ],
    ];
    for ops in seqs {
        if let Err(e) = run(&ops) {
            panic!("{e}");
        }
    }
}
