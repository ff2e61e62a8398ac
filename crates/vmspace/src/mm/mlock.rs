//! `mlock`, `mlock2`, `munlock`, `mlockall`, `munlockall` (`mm/mlock.c`):
//! region flags and `locked_vm` accounting. Populating the locked pages is
//! the page-fault layer's job.

use super::AddressSpace;
use crate::addr::{page_align, PAGE_SHIFT};
use crate::errno::{Errno, SysResult};
use crate::flags::VmFlags;
use crate::system::Kernel;
use crate::uapi::{MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT, MLOCK_ONFAULT};
use crate::vma::Vma;

impl AddressSpace {
    /// `mlock2(start, len, flags)`; `mlock` is `mlock2` with no flags.
    pub fn mlock2(&mut self, k: &mut Kernel, start: u64, len: u64, flags: u64) -> SysResult<u64> {
        if flags & !MLOCK_ONFAULT != 0 {
            return Err(Errno::EINVAL);
        }
        let mut vm_flags = VmFlags::LOCKED;
        if flags & MLOCK_ONFAULT != 0 {
            vm_flags |= VmFlags::LOCKONFAULT;
        }
        if !self.can_do_mlock() {
            return Err(Errno::EPERM);
        }
        let len = page_align(len.wrapping_add(start & 0xfff));
        let start = start & !0xfff;
        let lock_limit = self.rlimits.memlock.cur >> PAGE_SHIFT;
        let mut locked = (len >> PAGE_SHIFT) + self.counters.locked_vm;
        if locked > lock_limit && !self.caps.ipc_lock {
            // Already-locked pages in the range do not count twice.
            locked -= self.count_mlocked_pages(start, len);
        }
        if locked > lock_limit && !self.caps.ipc_lock {
            return Err(Errno::ENOMEM);
        }
        self.apply_vma_lock_flags(k, start, len, vm_flags)?;
        // __mm_populate: faulting in memory that cannot be (no access at
        // all) fails with EFAULT, which mlock reports as ENOMEM; the lock
        // bits stay set.
        if self
            .populate(k, start, start.saturating_add(len), false)
            .is_err()
        {
            return Err(Errno::ENOMEM);
        }
        Ok(0)
    }

    /// `munlock(start, len)`.
    pub fn munlock(&mut self, k: &mut Kernel, start: u64, len: u64) -> SysResult<u64> {
        let len = page_align(len.wrapping_add(start & 0xfff));
        let start = start & !0xfff;
        self.apply_vma_lock_flags(k, start, len, VmFlags::empty())?;
        Ok(0)
    }

    /// `mlockall(flags)`.
    pub fn mlockall(&mut self, k: &mut Kernel, flags: u64) -> SysResult<u64> {
        if flags == 0
            || flags & !(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) != 0
            || flags == MCL_ONFAULT
        {
            return Err(Errno::EINVAL);
        }
        if !self.can_do_mlock() {
            return Err(Errno::EPERM);
        }
        let lock_limit = self.rlimits.memlock.cur >> PAGE_SHIFT;
        if flags & MCL_CURRENT != 0 && self.counters.total_vm > lock_limit && !self.caps.ipc_lock {
            return Err(Errno::ENOMEM);
        }
        self.apply_mlockall_flags(k, flags);
        // mm_populate(0, TASK_SIZE), errors ignored: private writable
        // regions are write-faulted and so get an anon_vma.
        if flags & MCL_CURRENT != 0 {
            let _ = self.populate(k, 0, crate::layout::TASK_SIZE, true);
        }
        Ok(0)
    }

    /// `munlockall()`.
    pub fn munlockall(&mut self, k: &mut Kernel) -> SysResult<u64> {
        self.apply_mlockall_flags(k, 0);
        Ok(0)
    }

    /// Pages of `[start, start + len)` in regions already `VM_LOCKED`
    /// (`count_mm_mlocked_page_nr`).
    fn count_mlocked_pages(&self, start: u64, len: u64) -> u64 {
        let end = start.saturating_add(len);
        self.vmas_in(start, end)
            .filter(|v| v.flags().contains(VmFlags::LOCKED))
            .map(|v| (v.end().min(end) - v.start().max(start)) >> PAGE_SHIFT)
            .sum()
    }

    /// `apply_vma_lock_flags`: sets the lock bits over a range that must be
    /// fully mapped (`ENOMEM` at the first hole, after changing what lies
    /// before it).
    fn apply_vma_lock_flags(
        &mut self,
        k: &mut Kernel,
        start: u64,
        len: u64,
        flags: VmFlags,
    ) -> SysResult<()> {
        let end = start.wrapping_add(len);
        if end < start {
            return Err(Errno::EINVAL);
        }
        if end == start {
            return Ok(());
        }
        let Some(mut vma) = self.vma_containing(start) else {
            return Err(Errno::ENOMEM);
        };
        let mut nstart = start;
        loop {
            if vma.start() > nstart {
                return Err(Errno::ENOMEM);
            }
            let newflags = (vma.flags() - VmFlags::LOCKED_MASK) | flags;
            let tmp = vma.end().min(end);
            let done = self.mlock_fixup(k, vma, nstart, tmp, newflags)?;
            nstart = done.end().min(end).max(tmp);
            if nstart >= end {
                return Ok(());
            }
            match self.find_vma(nstart) {
                Some(v) if v.start() < end => vma = v,
                _ => return Err(Errno::ENOMEM),
            }
        }
    }

    /// `mlock_fixup`: one region's part gets new lock bits.
    fn mlock_fixup(
        &mut self,
        k: &mut Kernel,
        vma: Vma,
        start: u64,
        end: u64,
        newflags: VmFlags,
    ) -> SysResult<Vma> {
        let oldflags = vma.flags();
        if newflags == oldflags
            || oldflags.intersects(VmFlags::SPECIAL)
            || oldflags.contains(VmFlags::HUGETLB)
            || oldflags.contains(VmFlags::DROPPABLE)
        {
            return Ok(vma);
        }
        let mut attrs = vma.attrs;
        attrs.flags = newflags;
        let result = self.modify_range(k, vma, start, end, attrs)?;
        let locked = newflags.contains(VmFlags::LOCKED);
        if locked != oldflags.contains(VmFlags::LOCKED) {
            // mlock_vma_pages_range drains the batches before and after its
            // walk: the pages present now are unevictable at once.
            k.lru_add_drain();
            self.mark_mlocked(k, start, end, locked);
            k.lru_add_drain();
        }
        let pages = (end - start) >> PAGE_SHIFT;
        if !newflags.contains(VmFlags::LOCKED) {
            self.counters.locked_vm -= pages;
        } else if !oldflags.contains(VmFlags::LOCKED) {
            self.counters.locked_vm += pages;
        }
        Ok(result)
    }

    /// `mlock_vma_pages_range`: the pages already present in `[start, end)`
    /// become mlocked (unevictable), or stop being so on munlock.
    fn mark_mlocked(&mut self, k: &mut Kernel, start: u64, end: u64, locked: bool) {
        let Some(tables) = self.mem.tables.take() else {
            return;
        };
        let zero = k.phys.zero_page();
        let mut frames = alloc::vec::Vec::new();
        tables.update_range(&mut k.phys, start, end, |_phys, _va, e| {
            let f = crate::pgtable::pte_frame(e);
            let special = e & crate::pgtable::bits::SPECIAL != 0;
            if crate::pgtable::pte_present(e) && !special && f != zero {
                frames.push(f);
            }
            e
        });
        self.mem.tables = Some(tables);
        for f in frames {
            if locked {
                k.phys.mlock_folio(f);
            } else {
                k.phys.munlock_folio(f);
            }
        }
    }

    /// `apply_mlockall_flags`: sets `def_flags` for future mappings and,
    /// with `MCL_CURRENT`, locks every region (errors ignored, as Linux).
    fn apply_mlockall_flags(&mut self, k: &mut Kernel, flags: u64) {
        self.def_flags -= VmFlags::LOCKED_MASK;
        if flags & MCL_FUTURE != 0 {
            self.def_flags |= VmFlags::LOCKED;
            if flags & MCL_ONFAULT != 0 {
                self.def_flags |= VmFlags::LOCKONFAULT;
            }
            if flags & MCL_CURRENT == 0 {
                return;
            }
        }
        let mut to_add = VmFlags::empty();
        if flags & MCL_CURRENT != 0 {
            to_add |= VmFlags::LOCKED;
            if flags & MCL_ONFAULT != 0 {
                to_add |= VmFlags::LOCKONFAULT;
            }
        }
        let mut cursor = 0;
        while let Some(v) = self.find_vma(cursor) {
            let newflags = (v.flags() - VmFlags::LOCKED_MASK) | to_add;
            let done = self
                .mlock_fixup(k, v, v.start(), v.end(), newflags)
                .unwrap_or(v);
            cursor = done.end().max(v.end());
        }
    }
}
