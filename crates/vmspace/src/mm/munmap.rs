//! `munmap` and the unmapping every other call builds on
//! (`do_vmi_munmap`, `vms_gather_munmap_vmas`, `vms_complete_munmap_vmas`).

use alloc::vec::Vec;

use super::AddressSpace;
use crate::addr::page_align;
use crate::errno::{Errno, SysResult};
use crate::flags::VmFlags;
use crate::layout::TASK_SIZE;
use crate::system::Kernel;
use crate::vma::Vma;

impl AddressSpace {
    /// `munmap(addr, len)`. Returns the regions (or pieces) removed.
    pub fn munmap(&mut self, k: &mut Kernel, start: u64, len: u64) -> SysResult<Vec<Vma>> {
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
    ) -> SysResult<Vec<Vma>> {
        let gathered = self.gather_unmap(k, start, end)?;
        Ok(self.remove_gathered(k, &gathered, 0))
    }

    /// `vms_gather_munmap_vmas`: splits at `start` and `end` and lists the
    /// regions inside, refusing sealed ones.
    pub(crate) fn gather_unmap(&mut self, k: &Kernel, start: u64, end: u64) -> SysResult<Vec<Vma>> {
        let mut out = Vec::new();
        let Some(first) = self.find_vma_intersection(start, end) else {
            return Ok(out);
        };
        if start > first.start() {
            if end < first.end() && self.map_count() >= k.params.max_map_count {
                return Err(Errno::ENOMEM);
            }
            if first.flags().contains(VmFlags::SEALED) {
                return Err(Errno::EPERM);
            }
            self.split(first, start)?;
        }
        let mut cursor = start;
        while let Some(v) = self.find_vma_intersection(cursor, end) {
            if v.flags().contains(VmFlags::SEALED) {
                return Err(Errno::EPERM);
            }
            let v = if v.end() > end {
                self.split(v, end)?.0
            } else {
                v
            };
            out.push(v);
            cursor = v.end();
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
    ) -> Vec<Vma> {
        if gathered.is_empty() {
            return Vec::new();
        }
        self.update_hiwater_vm();
        let mut accounted = 0;
        let mut removed = Vec::with_capacity(gathered.len());
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
