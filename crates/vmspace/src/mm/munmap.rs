//! `munmap` and the unmapping every other call builds on
//! (`do_vmi_munmap`, `vms_gather_munmap_vmas`, `vms_complete_munmap_vmas`).

use alloc::vec::Vec;
use core::fmt;
use core::ops::Deref;

use super::AddressSpace;
use crate::addr::{page_align, VirtAddr};
use crate::errno::{Errno, SysResult};
use crate::flags::VmFlags;
use crate::layout::TASK_SIZE;
use crate::system::Kernel;
use crate::vma::{Vma, VmaAttrs, VmaName};

/// How many regions a [`RegionList`] holds without a heap allocation.
const INLINE: usize = 2;

/// Filler for the unused inline slots of a [`RegionList`].
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
/// order. It reads as a slice of [`Vma`]; up to two regions (the common
/// case: one) are held inline, without a heap allocation.
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
    len: usize,
    inline: [Vma; INLINE],
    /// All of them, once there are more than fit inline.
    heap: Vec<Vma>,
}

impl RegionList {
    /// An empty list.
    pub const fn new() -> Self {
        RegionList {
            len: 0,
            inline: [NO_VMA; INLINE],
            heap: Vec::new(),
        }
    }

    /// Appends a region.
    pub fn push(&mut self, v: Vma) {
        if self.len < INLINE {
            self.inline[self.len] = v;
        } else {
            if self.len == INLINE {
                self.heap.reserve(2 * INLINE);
                self.heap.extend_from_slice(&self.inline);
            }
            self.heap.push(v);
        }
        self.len += 1;
    }

    /// The regions as a `Vec`.
    pub fn into_vec(self) -> Vec<Vma> {
        if self.len > INLINE {
            self.heap
        } else {
            self.inline[..self.len].to_vec()
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
        if self.len > INLINE {
            &self.heap
        } else {
            &self.inline[..self.len]
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
        Ok(self.remove_gathered(k, &gathered, 0))
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
    /// mapping replacing them instead of being returned.
    pub(crate) fn remove_gathered(
        &mut self,
        k: &mut Kernel,
        gathered: &[Vma],
        reused_account: u64,
    ) -> RegionList {
        let mut removed = RegionList::new();
        if gathered.is_empty() {
            return removed;
        }
        self.update_hiwater_vm();
        let mut accounted = 0;
        for v in gathered {
            if let Some(v) = self.remove(v.start()) {
                self.stat_account(v.flags(), -(v.pages() as i64));
                if v.flags().contains(VmFlags::LOCKED) {
                    self.counters.locked_vm -= v.pages();
                }
                if v.flags().contains(VmFlags::ACCOUNT) {
                    accounted += v.pages();
                }
                removed.push(v);
            }
        }
        k.vm_unacct_memory(accounted.saturating_sub(reused_account));
        self.unmap_pages(k, &removed);
        k.release_regions(self, &removed);
        removed
    }
}
