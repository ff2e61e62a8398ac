//! The memory descriptor (`mm_struct`): one process's address space.
//!
//! # Design
//!
//! An [`AddressSpace`] owns a [`RegionTree`] of regions and the counters
//! `/proc/PID/status` reports. Each system call lives in its own file
//! (`mmap.rs`, `munmap.rs`, `mprotect.rs`, ...) and is written in the order
//! Linux checks things, because that order decides which errno a bad call
//! gets and which partial effects a failed call leaves.
//!
//! Every change of the region set goes through the primitives in this file:
//! `split_at` (`__split_vma`), `modify_range` (`vma_modify`: merge with a
//! neighbour or split, then apply new attributes), `map_new_range`
//! (`vma_merge_new_range` or a new region) and `unmap_range`
//! (`do_vmi_align_munmap`).
//!
//! The hot paths look a region up once and work from its tree position
//! (`At`) after that, as Linux works from a `vma_iterator`: neighbours are
//! one step away, a split, a merge or a removal is one change to the tree,
//! a free-area search hands over the region above the gap it found (for
//! the guard-gap check and for mapping the range without another lookup),
//! and an unmap's gathered list carries its first region's position and
//! is handed back as the list of regions removed.
//!
//! Invariants (checked by [`AddressSpace::check`]):
//! - regions are page-aligned, non-empty, non-overlapping and inside
//!   `[0, TASK_SIZE)`;
//! - `total_vm` is the sum of region sizes, and `data_vm`, `exec_vm`,
//!   `stack_vm`, `locked_vm` are the sums over regions of the matching kind;
//! - no two neighbours that `vma::merge::can_merge` would join are left apart
//!   by an operation that Linux would have merged (tested scenario by
//!   scenario, not checkable in general: Linux itself leaves such pairs,
//!   e.g. after `mprotect` back to the same flags).
//!
//! Locking: the engine is single-threaded per address space; the embedder
//! serialises calls (Linux's `mmap_lock` held for write by every call here).

mod brk;
mod madvise;
mod mlock;
pub mod mmap;
mod mprotect;
mod mremap;
mod mseal;
mod msync;
mod munmap;
mod pages;
mod populate;
mod remap_file_pages;
mod rlimit;
mod unmapped_area;

pub(crate) use madvise::madvise_range;
pub use mmap::{MmapFile, MmapOutcome};
pub use munmap::RegionList;
pub use rlimit::{Rlimit, Rlimits};

use alloc::string::String;
use alloc::vec::Vec;

use crate::addr::{VirtAddr, PAGE_SHIFT};
use crate::errno::{Errno, SysResult};
use crate::flags::{StatKind, VmFlags};
use crate::layout::Layout;
use crate::system::Kernel;
use crate::vma::merge::{anon_compatible, can_merge, merged_attrs};
use crate::vma::tree::{At, RegionTree};
use crate::vma::{Vma, VmaAttrs, VmaName};
use unmapped_area::Placed;

/// Page counts kept by `mm_struct` (all in pages).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct VmCounters {
    /// `total_vm`: pages mapped.
    pub total_vm: u64,
    /// `hiwater_vm`: the most `total_vm` has been when last sampled.
    pub hiwater_vm: u64,
    /// `locked_vm`: pages in `VM_LOCKED` regions.
    pub locked_vm: u64,
    /// `pinned_vm`.
    pub pinned_vm: u64,
    /// `data_vm`: private writable, not stack.
    pub data_vm: u64,
    /// `exec_vm`: executable, not writable.
    pub exec_vm: u64,
    /// `stack_vm`: grows-down regions.
    pub stack_vm: u64,
}

/// What the process may do beyond an ordinary user (`capable()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// `CAP_IPC_LOCK`: lock memory beyond RLIMIT_MEMLOCK.
    pub ipc_lock: bool,
    /// `CAP_SYS_RAWIO`: map below `vm.mmap_min_addr`.
    pub sys_rawio: bool,
    /// `CAP_SYS_ADMIN`: exempt from the admin memory reserve.
    pub sys_admin: bool,
    /// `CAP_SYS_RESOURCE`: raise hard resource limits.
    pub sys_resource: bool,
}

/// A process's address space (`mm_struct`).
///
/// Usually reached through a [`System`](crate::System), which owns the
/// shared kernel state every call needs:
///
/// ```
/// use vmspace::{Params, System};
/// use vmspace::uapi::*;
/// let mut sys = System::new(Params::default());
/// let pid = sys.spawn_default();
/// let a = sys.mmap(pid, 0, 3 * 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, u64::MAX, 0).unwrap();
/// sys.mprotect(pid, a + 4096, 4096, PROT_NONE).unwrap();
/// let mm = &sys.process(pid).unwrap().mm;
/// assert_eq!(mm.find_vma(a).unwrap().end(), a + 4096);   // split in three
/// assert_eq!(mm.vma_containing(a + 4096).unwrap().flags().bits() & 7, 0);
/// assert!(mm.check().is_ok());
/// ```
#[derive(Clone, Debug)]
pub struct AddressSpace {
    tree: RegionTree<VmaAttrs>,
    names: Vec<String>,
    /// Layout: mmap base, heap and stack positions.
    pub layout: Layout,
    /// Page counters.
    pub counters: VmCounters,
    /// Flags every new region gets (`def_flags`: `mlockall(MCL_FUTURE)`).
    pub def_flags: VmFlags,
    /// Resource limits.
    pub rlimits: Rlimits,
    /// Capabilities of the owning task.
    pub caps: Capabilities,
    /// Page tables and resident-set counters.
    pub mem: crate::fault::MemState,
    /// The neighbours of the regions an unmap just took out, while their
    /// pages are torn down (see [`Hole`]).
    hole: Option<Hole>,
    /// The addresses of regions that grew without a call naming them (a
    /// grows-down region extended by a fault), for the owner to pick up
    /// ([`take_regions_grown`](Self::take_regions_grown)).
    regions_grown: Option<(u64, u64)>,
}

/// The neighbours of a run of regions just taken out of the tree, known
/// from the removal itself, as Linux keeps `vms->prev` and `vms->next` for
/// `unmap_region`: while the run's pages and page tables are torn down,
/// [`AddressSpace::vma_before`] its first address and
/// [`AddressSpace::vma_from`] its last are answered from here rather than
/// looked up again, and [`AddressSpace::vmas_in`] knows that nothing is
/// left in between (every region meeting the unmapped range was in the
/// run).
#[derive(Clone, Copy, Debug)]
struct Hole {
    first: u64,
    last: u64,
    prev: Option<Vma>,
    next: Option<Vma>,
}

impl AddressSpace {
    /// An empty address space with a layout and limits; regions are added by
    /// the exec or import code.
    pub fn empty(layout: Layout, rlimits: Rlimits) -> Self {
        AddressSpace {
            tree: RegionTree::new(),
            names: Vec::new(),
            layout,
            counters: VmCounters::default(),
            def_flags: VmFlags::empty(),
            rlimits,
            caps: Capabilities::default(),
            mem: crate::fault::MemState::default(),
            hole: None,
            regions_grown: None,
        }
    }

    /// Records that the regions over `[lo, hi)` changed outside a call
    /// that says so (see [`take_regions_grown`](Self::take_regions_grown)).
    pub(crate) fn note_regions_grown(&mut self, lo: u64, hi: u64) {
        self.regions_grown = Some(match self.regions_grown {
            Some((a, b)) => (a.min(lo), b.max(hi)),
            None => (lo, hi),
        });
    }

    /// The address range whose regions changed during memory accesses
    /// (stack growth) since the last call, if any; clears it.
    pub fn take_regions_grown(&mut self) -> Option<(u64, u64)> {
        self.regions_grown.take()
    }

    // ----- looking things up -------------------------------------------

    /// Number of regions (`map_count`).
    pub fn map_count(&self) -> u64 {
        self.tree.len() as u64
    }

    /// All regions in address order.
    pub fn vmas(&self) -> impl Iterator<Item = Vma> + '_ {
        self.tree.iter().map(to_vma)
    }

    /// Regions intersecting `[lo, hi)`, in order.
    pub fn vmas_in(&self, lo: u64, hi: u64) -> impl Iterator<Item = Vma> + '_ {
        // Inside the run of regions an unmap has just taken out (see
        // [`Hole`]) there is nothing: no lookup needed.
        let hi = match self.hole {
            Some(h) if h.first <= lo && hi <= h.last => lo,
            _ => hi,
        };
        self.tree.range(lo, hi).map(to_vma)
    }

    /// `find_vma`: the first region ending above `addr`.
    pub fn find_vma(&self, addr: u64) -> Option<Vma> {
        self.tree.find(addr).map(to_vma)
    }

    /// `vma_lookup`: the region containing `addr`.
    pub fn vma_containing(&self, addr: u64) -> Option<Vma> {
        self.tree.containing(addr).map(to_vma)
    }

    /// `find_vma_intersection`.
    pub fn find_vma_intersection(&self, lo: u64, hi: u64) -> Option<Vma> {
        self.tree.first_intersecting(lo, hi).map(to_vma)
    }

    /// The region just below `addr` (the last starting below it).
    pub fn vma_before(&self, addr: u64) -> Option<Vma> {
        match self.hole {
            Some(h) if h.first == addr => h.prev,
            _ => self.tree.prev(addr).map(to_vma),
        }
    }

    /// The region starting at or above `addr`.
    pub fn vma_from(&self, addr: u64) -> Option<Vma> {
        match self.hole {
            Some(h) if h.last == addr => h.next,
            _ => self.tree.next(addr).map(to_vma),
        }
    }

    /// The text of a region's name, if it has one from the name table.
    pub fn name_text(&self, name: VmaName) -> Option<&str> {
        match name {
            VmaName::None => None,
            VmaName::Named(i) => self.names.get(i as usize).map(String::as_str),
        }
    }

    /// True for a kernel-installed special mapping (`[vdso]`, `[vvar]`, ...):
    /// it cannot be split and keeps its size.
    pub fn is_special_mapping(&self, vma: &Vma) -> bool {
        vma.attrs.file.is_none()
            && self
                .name_text(vma.attrs.name)
                .is_some_and(|n| n.starts_with('[') && !n.starts_with("[anon"))
    }

    /// `vma_is_anonymous`: private or shared memory with no `vm_ops` at all,
    /// i.e. no file and not a special mapping.
    pub fn vma_is_anonymous(&self, vma: &Vma) -> bool {
        vma.attrs.file.is_none() && !self.is_special_mapping(vma)
    }

    /// The name table (special mappings, imported names), for a fork.
    pub(crate) fn names(&self) -> &[String] {
        &self.names
    }

    /// Replaces the name table (a fork's child takes its parent's).
    pub(crate) fn set_names(&mut self, names: Vec<String>) {
        self.names = names;
    }

    /// Interns a region name (`[vdso]`, an imported `[anon:...]`, ...).
    pub fn intern_name(&mut self, text: &str) -> VmaName {
        if let Some(i) = self.names.iter().position(|n| n == text) {
            return VmaName::Named(i as u16);
        }
        self.names.push(String::from(text));
        VmaName::Named((self.names.len() - 1) as u16)
    }

    /// The free-area tree, for benchmarks and embedders that search gaps.
    pub fn tree(&self) -> &RegionTree<VmaAttrs> {
        &self.tree
    }

    // ----- accounting ----------------------------------------------------

    /// `vm_stat_account`: adds (or with negative `pages`, removes) pages of a
    /// region with `flags` to the counters.
    pub(crate) fn stat_account(&mut self, flags: VmFlags, pages: i64) {
        let c = &mut self.counters;
        c.total_vm = c.total_vm.wrapping_add(pages as u64);
        match flags.stat_kind() {
            StatKind::Exec => c.exec_vm = c.exec_vm.wrapping_add(pages as u64),
            StatKind::Stack => c.stack_vm = c.stack_vm.wrapping_add(pages as u64),
            StatKind::Data => c.data_vm = c.data_vm.wrapping_add(pages as u64),
            StatKind::Other => {}
        }
    }

    /// `update_hiwater_vm`.
    pub(crate) fn update_hiwater_vm(&mut self) {
        if self.counters.hiwater_vm < self.counters.total_vm {
            self.counters.hiwater_vm = self.counters.total_vm;
        }
    }

    /// `may_expand_vm`: RLIMIT_AS and RLIMIT_DATA.
    pub(crate) fn may_expand_vm(&self, flags: VmFlags, npages: u64) -> bool {
        self.may_expand_vm_within(&self.rlimits, flags, npages)
    }

    /// [`may_expand_vm`](Self::may_expand_vm) against another task's limits
    /// (the kernel reads `current`'s, which for `/proc/PID/mem` is the
    /// debugger).
    pub(crate) fn may_expand_vm_within(&self, lim: &Rlimits, flags: VmFlags, npages: u64) -> bool {
        let c = &self.counters;
        if c.total_vm.saturating_add(npages) > lim.as_.cur >> PAGE_SHIFT {
            return false;
        }
        if flags.stat_kind() == StatKind::Data
            && c.data_vm.saturating_add(npages) > lim.data.cur >> PAGE_SHIFT
        {
            // Linux's allowance for Valgrind: a zero soft limit defers to the hard one.
            return lim.data.cur == 0
                && c.data_vm.saturating_add(npages) <= lim.data.max >> PAGE_SHIFT;
        }
        true
    }

    /// `mlock_future_ok`: would locking `bytes` more stay within RLIMIT_MEMLOCK?
    pub(crate) fn mlock_future_ok(&self, flags: VmFlags, bytes: u64) -> bool {
        self.mlock_future_ok_within(&self.rlimits, flags, bytes)
    }

    /// [`mlock_future_ok`](Self::mlock_future_ok) against another task's
    /// `RLIMIT_MEMLOCK`.
    pub(crate) fn mlock_future_ok_within(&self, lim: &Rlimits, flags: VmFlags, bytes: u64) -> bool {
        if !flags.contains(VmFlags::LOCKED) || self.caps.ipc_lock {
            return true;
        }
        let locked = (bytes >> PAGE_SHIFT).saturating_add(self.counters.locked_vm);
        locked <= lim.memlock.cur >> PAGE_SHIFT
    }

    /// `can_do_mlock`.
    pub(crate) fn can_do_mlock(&self) -> bool {
        self.rlimits.memlock.cur != 0 || self.caps.ipc_lock
    }

    /// Adds a region's pages to every counter it belongs to.
    pub(crate) fn account_new(&mut self, flags: VmFlags, pages: u64) {
        self.stat_account(flags, pages as i64);
        if flags.contains(VmFlags::LOCKED) {
            self.counters.locked_vm += pages;
        }
    }

    // ----- region primitives ---------------------------------------------

    /// Inserts a region that overlaps nothing. Callers check for overlap;
    /// a refused insert means an engine bug, reported as `EFAULT` rather
    /// than a panic.
    pub(crate) fn insert(&mut self, vma: Vma) -> SysResult<()> {
        self.tree
            .insert(vma.start(), vma.end(), vma.attrs)
            .map_err(|_| Errno::EFAULT)
    }

    /// Replaces the bounds and attributes of the region starting at
    /// `old_start`.
    pub(crate) fn reshape(&mut self, old_start: u64, new: &Vma) -> SysResult<()> {
        if !self.tree.set_bounds(old_start, new.start(), new.end()) {
            return Err(Errno::EFAULT);
        }
        match self.tree.get_mut(new.start()) {
            Some(a) => {
                *a = new.attrs;
                Ok(())
            }
            None => Err(Errno::EFAULT),
        }
    }

    /// Sets the attributes of the region starting at `start`.
    pub(crate) fn set_attrs(&mut self, start: u64, attrs: VmaAttrs) {
        if let Some(a) = self.tree.get_mut(start) {
            *a = attrs;
        }
    }

    /// The region at a tree position.
    #[inline]
    pub(crate) fn vma_at(&self, a: At) -> Vma {
        match self.tree.entry_at(a) {
            Some(e) => to_vma(e),
            None => unreachable!("a tree position holds a region"),
        }
    }

    /// The tree position of the region starting at `start`.
    #[inline]
    fn at_of(&self, start: u64) -> SysResult<At> {
        match self.tree.find_at(start) {
            Some(a) if self.tree.start_at(a) == start => Ok(a),
            _ => Err(Errno::EFAULT),
        }
    }

    /// Sets the attributes of the region at a tree position.
    #[inline]
    fn set_attrs_at(&mut self, a: At, attrs: VmaAttrs) {
        if let Some(v) = self.tree.value_at_mut(a) {
            *v = attrs;
        }
    }

    /// `__split_vma`: cuts `vma`, found at tree position `x`, at `at`
    /// (strictly inside it), giving the positions and regions of the lower
    /// and upper pieces. The upper piece's file offset moves on.
    pub(crate) fn split_at(&mut self, x: At, vma: Vma, at: u64) -> SysResult<(At, Vma, At, Vma)> {
        debug_assert!(vma.start() < at && at < vma.end());
        // Special mappings keep their size for life (`special_mapping_split`).
        if self.is_special_mapping(&vma) {
            return Err(Errno::EINVAL);
        }
        let mut lower = vma;
        lower.end = VirtAddr::new(at);
        let mut upper = vma;
        upper.start = VirtAddr::new(at);
        upper.attrs.pgoff = vma.pgoff_at(at);
        debug_assert_eq!(self.tree.end_at(x), vma.end());
        // The lower piece keeps the region's attributes: only the upper
        // piece's offset moves on.
        let (la, ua) = self
            .tree
            .split_at(x, at, upper.attrs)
            .map_err(|_| Errno::EFAULT)?;
        Ok((la, lower, ua, upper))
    }

    /// `vma_modify`: gives `[start, end)` (inside `vma`) the attributes
    /// `new`, merging with a neighbour where Linux would
    /// (`vma_merge_existing_range`) and splitting `vma` otherwise. Returns
    /// the region that now covers the range. Counters are the caller's job.
    pub(crate) fn modify_range(
        &mut self,
        k: &Kernel,
        vma: Vma,
        start: u64,
        end: u64,
        new: VmaAttrs,
    ) -> SysResult<Vma> {
        let x = self.at_of(vma.start())?;
        self.modify_range_at(k, x, vma, start, end, new)
    }

    /// [`modify_range`](Self::modify_range) of `vma`, found at tree
    /// position `x`: neighbours are read and the tree reshaped from there,
    /// without another lookup, and a merge is one change to the tree.
    pub(crate) fn modify_range_at(
        &mut self,
        k: &Kernel,
        x: At,
        vma: Vma,
        start: u64,
        end: u64,
        new: VmaAttrs,
    ) -> SysResult<Vma> {
        debug_assert_eq!(self.tree.start_at(x), vma.start());
        let piece = VmaAttrs {
            pgoff: vma.pgoff_at(start),
            ..new
        };
        let piece_pages = (end - start) >> PAGE_SHIFT;
        let left_side = start == vma.start();
        let right_side = end == vma.end();

        if !piece.flags.intersects(VmFlags::SPECIAL) && (left_side || right_side) {
            let pa = if left_side {
                self.tree
                    .pred_at(x)
                    .filter(|&a| self.tree.end_at(a) == start)
            } else {
                None
            };
            let na = if right_side {
                self.tree
                    .succ_at(x)
                    .filter(|&a| self.tree.start_at(a) == end)
            } else {
                None
            };
            let prev = pa.map(|a| self.vma_at(a));
            let next = na.map(|a| self.vma_at(a));
            let merge_left = prev.is_some_and(|p| can_merge(&p.attrs, p.pages(), &piece));
            let merge_right = next.is_some_and(|n| {
                can_merge(&piece, piece_pages, &n.attrs)
                    && (!merge_left
                        || prev.is_some_and(|p| {
                            anon_compatible(
                                p.attrs.anon_vma,
                                p.attrs.anon_inherited,
                                n.attrs.anon_vma,
                                n.attrs.anon_inherited,
                            )
                        }))
            });
            match (prev.zip(pa), next.zip(na), merge_left, merge_right) {
                (Some((p, pa)), Some((n, _)), true, true) => {
                    // prev absorbs the middle and next.
                    let attrs = merged_attrs(&merged_attrs(&p.attrs, &piece), &n.attrs);
                    let a = self.tree.absorb_next(pa, 2);
                    self.set_attrs_at(a, attrs);
                    return Ok(Vma::new(p.start, n.end, attrs));
                }
                (Some((p, pa)), _, true, false) => {
                    let attrs = merged_attrs(&p.attrs, &piece);
                    let merged = Vma::new(p.start, VirtAddr::new(end), attrs);
                    let a = if right_side {
                        self.tree.absorb_next(pa, 1)
                    } else {
                        // The rest of the region keeps [end, vma.end), its
                        // offset moved on.
                        let mut rest = vma.attrs;
                        rest.pgoff = vma.pgoff_at(end);
                        self.tree.move_boundary(pa, end);
                        self.set_attrs_at(x, rest);
                        pa
                    };
                    self.set_attrs_at(a, attrs);
                    return Ok(merged);
                }
                (_, Some((n, na)), false, true) => {
                    let mut attrs = merged_attrs(&piece, &n.attrs);
                    attrs.pgoff = piece.pgoff;
                    let merged = Vma::new(VirtAddr::new(start), n.end, attrs);
                    let a = if left_side {
                        // The region (all of it) and next become one.
                        self.tree.absorb_next(x, 1)
                    } else {
                        // The rest of the region keeps [vma.start, start).
                        self.tree.move_boundary(x, start);
                        na
                    };
                    self.set_attrs_at(a, attrs);
                    return Ok(merged);
                }
                _ => {}
            }
        }

        let (mut at, mut middle) = (x, vma);
        if middle.start() < start {
            if self.map_count() >= k.params.max_map_count {
                return Err(Errno::ENOMEM);
            }
            let (_, _, ua, upper) = self.split_at(at, middle, start)?;
            (at, middle) = (ua, upper);
        }
        if middle.end() > end {
            if self.map_count() >= k.params.max_map_count {
                return Err(Errno::ENOMEM);
            }
            let (la, lower, _, _) = self.split_at(at, middle, end)?;
            (at, middle) = (la, lower);
        }
        middle.attrs = piece;
        self.set_attrs_at(at, piece);
        Ok(middle)
    }

    /// `vma_merge_new_range`, or a new region: maps `[start, end)` (which
    /// must be free) with `attrs`, joining a neighbour where Linux would.
    /// With `just_expand` only the lower neighbour is considered (`brk`).
    /// One lookup finds both neighbours; the change is made from there.
    pub(crate) fn map_new_range(
        &mut self,
        start: u64,
        end: u64,
        attrs: VmaAttrs,
        just_expand: bool,
    ) -> SysResult<Vma> {
        self.map_new_range_at(start, end, attrs, just_expand, None)
    }

    /// The tree positions of the regions just below and above `[start,
    /// end)`, if `placed` shows the range free (checked: cheap, and the
    /// positions must still be right).
    #[allow(clippy::type_complexity)]
    pub(crate) fn free_between(
        &self,
        start: u64,
        end: u64,
        placed: Placed,
    ) -> Option<(Option<At>, Option<At>)> {
        let Placed::Free(above) = placed else {
            return None;
        };
        let below = match above {
            Some(a) => {
                if self.tree.start_at_checked(a)? < end {
                    return None;
                }
                self.tree.pred_at(a)
            }
            None => self.tree.last_at(),
        };
        if below.is_some_and(|b| self.tree.end_at(b) > start) {
            return None;
        }
        Some((below, above))
    }

    /// [`map_new_range`](Self::map_new_range), with the positions of the
    /// regions around the range if already known ([`free_between`]).
    ///
    /// [`free_between`]: Self::free_between
    #[allow(clippy::type_complexity)]
    pub(crate) fn map_new_range_at(
        &mut self,
        start: u64,
        end: u64,
        attrs: VmaAttrs,
        just_expand: bool,
        around: Option<(Option<At>, Option<At>)>,
    ) -> SysResult<Vma> {
        let pages = (end - start) >> PAGE_SHIFT;
        // The ranges just below and above the free range.
        let (below, above) = match around {
            Some(a) => a,
            None => self.tree.around_free(start, end).ok_or(Errno::EFAULT)?,
        };
        let pa = below.filter(|&a| self.tree.end_at(a) == start);
        let na = if just_expand {
            None
        } else {
            above.filter(|&a| self.tree.start_at(a) == end)
        };
        let prev = pa.map(|a| self.vma_at(a));
        let next = na.map(|a| self.vma_at(a));
        let special = attrs.flags.intersects(VmFlags::SPECIAL);
        let merge_left = !special && prev.is_some_and(|p| can_merge(&p.attrs, p.pages(), &attrs));
        let merge_right = !special
            && next.is_some_and(|n| {
                can_merge(&attrs, pages, &n.attrs)
                    // Merging both ways also needs prev's and next's
                    // anon_vmas to agree with each other; whether either
                    // was inherited is not asked again here (each side's
                    // check against the new range did that).
                    && (!merge_left
                        || prev.is_some_and(|p| {
                            anon_compatible(p.attrs.anon_vma, false, n.attrs.anon_vma, false)
                        }))
            });
        match (prev.zip(pa), next.zip(na), merge_left, merge_right) {
            (Some((p, pa)), Some((n, _)), true, true) => {
                let merged = Vma::new(
                    p.start,
                    n.end,
                    merged_attrs(&merged_attrs(&p.attrs, &attrs), &n.attrs),
                );
                // prev grows over the new range and next.
                let a = self.tree.absorb_next(pa, 1);
                self.set_attrs_at(a, merged.attrs);
                Ok(merged)
            }
            (Some((p, pa)), _, true, false) => {
                let merged = Vma::new(p.start, VirtAddr::new(end), merged_attrs(&p.attrs, &attrs));
                self.tree.set_bounds_at(pa, p.start(), end);
                self.set_attrs_at(pa, merged.attrs);
                Ok(merged)
            }
            (_, Some((n, na)), false, true) => {
                let mut a = merged_attrs(&attrs, &n.attrs);
                a.pgoff = attrs.pgoff;
                let merged = Vma::new(VirtAddr::new(start), n.end, a);
                self.tree.set_bounds_at(na, start, n.end());
                self.set_attrs_at(na, a);
                Ok(merged)
            }
            _ => {
                let vma = Vma::new(VirtAddr::new(start), VirtAddr::new(end), attrs);
                self.tree
                    .insert_before(above, start, end, attrs)
                    .map_err(|_| Errno::EFAULT)?;
                Ok(vma)
            }
        }
    }

    // ----- checking ------------------------------------------------------

    /// Checks the invariants listed in the module comment.
    pub fn check(&self) -> Result<(), String> {
        use alloc::format;
        self.tree.check()?;
        let mut sums = VmCounters::default();
        for v in self.vmas() {
            if !v.start.is_page_aligned() || !v.end.is_page_aligned() || v.is_empty() {
                return Err(format!("bad region {:#x}-{:#x}", v.start(), v.end()));
            }
            if v.end() > crate::layout::TASK_SIZE {
                return Err(format!(
                    "region {:#x}-{:#x} above TASK_SIZE",
                    v.start(),
                    v.end()
                ));
            }
            sums.total_vm += v.pages();
            match v.flags().stat_kind() {
                StatKind::Exec => sums.exec_vm += v.pages(),
                StatKind::Stack => sums.stack_vm += v.pages(),
                StatKind::Data => sums.data_vm += v.pages(),
                StatKind::Other => {}
            }
            if v.flags().contains(VmFlags::LOCKED) {
                sums.locked_vm += v.pages();
            }
        }
        let c = &self.counters;
        let pairs = [
            ("total_vm", sums.total_vm, c.total_vm),
            ("exec_vm", sums.exec_vm, c.exec_vm),
            ("stack_vm", sums.stack_vm, c.stack_vm),
            ("data_vm", sums.data_vm, c.data_vm),
        ];
        for (name, want, have) in pairs {
            if want != have {
                return Err(format!("{name} is {have} pages, regions say {want}"));
            }
        }
        // mremap(MREMAP_DONTUNMAP) of a locked region leaves locked_vm above
        // the locked regions' size, as in Linux; it is never below.
        if c.locked_vm < sums.locked_vm {
            return Err(format!(
                "locked_vm is {} pages, locked regions hold {}",
                c.locked_vm, sums.locked_vm
            ));
        }
        Ok(())
    }
}

fn to_vma((s, e, a): (u64, u64, &VmaAttrs)) -> Vma {
    Vma::new(VirtAddr::new(s), VirtAddr::new(e), *a)
}
