//! `munmap` and the unmapping every other call builds on
//! (`do_vmi_munmap`, `vms_gather_munmap_vmas`, `vms_complete_munmap_vmas`).

use alloc::vec::Vec;
use core::fmt;
use core::ops::Deref;

use super::{AddressSpace, Hole};
use crate::addr::{page_align, VirtAddr};
use crate::errno::{Errno, SysResult};
use crate::flags::VmFlags;
use crate::layout::TASK_SIZE;
use crate::system::Kernel;
use crate::vma::tree::At;
use crate::vma::{Vma, VmaAttrs, VmaName};

/// Filler for the inline slot of an empty [`RegionList`].
const NO_VMA: Vma = Vma {
    start: VirtAddr::new(0),
    end: VirtAddr::new(0),
    attrs: VmaAttrs {
        flags: VmFlags::empty(),
        pgoff: 0,
        file: None,
        anon_vma: None,
        anon_inherited: false,
        name: VmaName::None,
    },
};

/// Regions (or pieces) gathered for, or taken out by, an unmap, in address
/// order. It reads as a slice of [`Vma`]; one region (the common case) is
/// held inline, without a heap allocation, and the list is small enough to
/// be returned by value cheaply.
///
/// ```
/// use vmspace::mm::RegionList;
/// use vmspace::vma::{Vma, VmaAttrs};
/// use vmspace::{VirtAddr, VmFlags};
/// let v = |s: u64| Vma::new(VirtAddr::new(s), VirtAddr::new(s + 4096), VmaAttrs::anon(VmFlags::READ, s >> 12));
/// let mut l = RegionList::new();
/// l.push(v(0x1000));
/// assert_eq!(l.len(), 1);
/// l.push(v(0x2000));
/// l.push(v(0x3000));
/// assert_eq!(l.iter().map(|r| r.start()).collect::<Vec<_>>(), [0x1000, 0x2000, 0x3000]);
/// assert_eq!(l.into_vec().len(), 3);
/// ```
#[derive(Clone)]
pub struct RegionList {
    /// The region, while there is just one.
    one: Vma,
    /// All of them, once there are more.
    many: Vec<Vma>,
    len: u32,
    /// Where the first one was in the tree when it was gathered (checked
    /// before use: a later split may have moved it).
    first_at: Option<At>,
}

impl RegionList {
    /// An empty list.
    pub const fn new() -> Self {
        RegionList {
            one: NO_VMA,
            many: Vec::new(),
            len: 0,
            first_at: None,
        }
    }

    /// Appends a region.
    pub fn push(&mut self, v: Vma) {
        match self.len {
            0 => self.one = v,
            1 => {
                self.many.reserve(4);
                self.many.push(self.one);
                self.many.push(v);
            }
            _ => self.many.push(v),
        }
        self.len += 1;
    }

    /// The regions as a `Vec`.
    pub fn into_vec(self) -> Vec<Vma> {
        match self.len {
            0 => Vec::new(),
            1 => alloc::vec![self.one],
            _ => self.many,
        }
    }
}

impl Default for RegionList {
    fn default() -> Self {
        Self::new()
    }
}

impl Deref for RegionList {
    type Target = [Vma];

    fn deref(&self) -> &[Vma] {
        match self.len {
            0 => &[],
            1 => core::slice::from_ref(&self.one),
            _ => &self.many,
        }
    }
}

impl fmt::Debug for RegionList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl PartialEq for RegionList {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for RegionList {}

impl From<RegionList> for Vec<Vma> {
    fn from(r: RegionList) -> Vec<Vma> {
        r.into_vec()
    }
}

impl<'a> IntoIterator for &'a RegionList {
    type Item = &'a Vma;
    type IntoIter = core::slice::Iter<'a, Vma>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl AddressSpace {
    /// `munmap(addr, len)`. Returns the regions (or pieces) removed.
    pub fn munmap(&mut self, k: &mut Kernel, start: u64, len: u64) -> SysResult<RegionList> {
        if start & 0xfff != 0 || start > TASK_SIZE || len > TASK_SIZE - start {
            return Err(Errno::EINVAL);
        }
        let end = start + page_align(len);
        if end == start {
            return Err(Errno::EINVAL);
        }
        self.unmap_range(k, start, end)
    }

    /// `do_vmi_align_munmap`: unmaps `[start, end)` (page-aligned), splitting
    /// regions at the edges. A sealed region refuses (`EPERM`); splits made
    /// before the refusal stay, as in Linux.
    pub(crate) fn unmap_range(
        &mut self,
        k: &mut Kernel,
        start: u64,
        end: u64,
    ) -> SysResult<RegionList> {
        let gathered = self.gather_unmap(k, start, end)?;
        // The regions removed are the ones gathered (the list is handed on
        // as it is, not copied).
        Ok(match self.complete_unmap(k, &gathered, 0) {
            None => gathered,
            Some(removed) => removed,
        })
    }

    /// `vms_gather_munmap_vmas`: splits at `start` and `end` and lists the
    /// regions inside, refusing sealed ones. One lookup, then a walk from
    /// region to region.
    pub(crate) fn gather_unmap(
        &mut self,
        k: &Kernel,
        start: u64,
        end: u64,
    ) -> SysResult<RegionList> {
        let mut out = RegionList::new();
        // find_vma_intersection(start, end)
        let Some(mut at) = self.tree.find_at(start) else {
            return Ok(out);
        };
        let first = self.vma_at(at);
        if first.start() >= end {
            return Ok(out);
        }
        if start > first.start() {
            if end < first.end() && self.map_count() >= k.params.max_map_count {
                return Err(Errno::ENOMEM);
            }
            if first.flags().contains(VmFlags::SEALED) {
                return Err(Errno::EPERM);
            }
            at = self.split_at(at, first, start)?.2;
        }
        loop {
            let v = self.vma_at(at);
            if v.start() >= end {
                break;
            }
            if v.flags().contains(VmFlags::SEALED) {
                return Err(Errno::EPERM);
            }
            let v = if v.end() > end {
                let (la, lower, _, _) = self.split_at(at, v, end)?;
                at = la;
                lower
            } else {
                v
            };
            if out.is_empty() {
                out.first_at = Some(at);
            }
            out.push(v);
            match self.tree.succ_at(at) {
                Some(n) => at = n,
                None => break,
            }
        }
        Ok(out)
    }

    /// `vms_complete_munmap_vmas`: removes gathered regions and their
    /// accounting. `reused_account` pages of `VM_ACCOUNT` charge pass to a
    /// mapping replacing them instead of being returned. Returns the
    /// regions removed.
    pub(crate) fn remove_gathered(
        &mut self,
        k: &mut Kernel,
        gathered: &RegionList,
        reused_account: u64,
    ) -> RegionList {
        match self.complete_unmap(k, gathered, reused_account) {
            None => gathered.clone(),
            Some(removed) => removed,
        }
    }

    /// [`remove_gathered`](Self::remove_gathered), returning `None` when
    /// the regions removed are exactly the ones gathered (always, unless a
    /// gathered region went missing from the tree), so that the caller can
    /// keep its list.
    pub(crate) fn complete_unmap(
        &mut self,
        k: &mut Kernel,
        gathered: &RegionList,
        reused_account: u64,
    ) -> Option<RegionList> {
        if gathered.is_empty() {
            return None;
        }
        self.update_hiwater_vm();
        let mut accounted = 0;
        // The gathered regions are consecutive in the tree: each one is
        // where the removal of the one before left its successor.
        let mut place = gathered.first_at;
        // Set once a gathered region is found missing: those removed.
        let mut partial: Option<RegionList> = None;
        for (i, v) in gathered.iter().enumerate() {
            let at = match place.filter(|&a| self.tree.start_at_checked(a) == Some(v.start())) {
                Some(a) => a,
                None => match self.tree.find_at(v.start()) {
                    Some(a) if self.tree.start_at(a) == v.start() => a,
                    _ => {
                        if partial.is_none() {
                            let mut r = RegionList::new();
                            for w in &gathered[..i] {
                                r.push(*w);
                            }
                            partial = Some(r);
                        }
                        continue;
                    }
                },
            };
            if let Some(r) = partial.as_mut() {
                r.push(*v);
            }
            // Nothing changed the tree since the gathering: the region
            // there is `v` itself.
            debug_assert_eq!(Some(*v), self.tree.entry_at(at).map(super::to_vma));
            place = self.tree.delete_at(at);
            self.stat_account(v.flags(), -(v.pages() as i64));
            if v.flags().contains(VmFlags::LOCKED) {
                self.counters.locked_vm -= v.pages();
            }
            if v.flags().contains(VmFlags::ACCOUNT) {
                accounted += v.pages();
            }
        }
        k.vm_unacct_memory(accounted.saturating_sub(reused_account));
        if let Some(removed) = partial {
            // Only the regions found were removed.
            self.unmap_pages(k, &removed);
            k.release_regions(self, &removed);
            return Some(removed);
        }
        // The run's neighbours, from where its removal ended.
        let prev = match place {
            Some(n) => self.tree.pred_at(n),
            None => self.tree.last_at(),
        };
        self.hole = Some(Hole {
            first: gathered[0].start(),
            last: gathered[gathered.len() - 1].end(),
            prev: prev.map(|a| self.vma_at(a)),
            next: place.map(|a| self.vma_at(a)),
        });
        self.unmap_pages(k, gathered);
        self.hole = None;
        k.release_regions(self, gathered);
        None
    }
}
