//! `brk` (`mm/mmap.c`, `do_brk_flags` in `mm/vma.c`): the heap grows from
//! `start_brk` by extending one anonymous region that merges only with a
//! region at or above `start_brk`.

use super::mmap::accountable;
use super::AddressSpace;
use crate::addr::{page_align, VirtAddr, PAGE_SHIFT, PAGE_SIZE};
use crate::errno::{Errno, SysResult};
use crate::flags::VmFlags;
use crate::layout::TASK_SIZE;
use crate::system::Kernel;
use crate::vma::{Vma, VmaAttrs};

impl AddressSpace {
    /// `brk(addr)`: returns the new break, or the unchanged old one when the
    /// request is refused (brk reports failure only that way).
    pub fn brk(&mut self, k: &mut Kernel, brk: u64) -> u64 {
        let origbrk = self.layout.brk;
        match self.try_brk(k, brk) {
            Ok(()) => self.layout.brk,
            Err(_) => {
                self.layout.brk = origbrk;
                origbrk
            }
        }
    }

    fn try_brk(&mut self, k: &mut Kernel, brk: u64) -> SysResult<()> {
        let l = self.layout;
        if brk < l.start_brk {
            return Err(Errno::EINVAL);
        }
        // check_data_rlimit
        let rlim = self.rlimits.data.cur;
        if rlim != u64::MAX
            && (brk - l.start_brk).saturating_add(l.end_data.saturating_sub(l.start_data)) > rlim
        {
            return Err(Errno::ENOSPC);
        }
        let newbrk = page_align(brk);
        let oldbrk = page_align(l.brk);
        if newbrk == oldbrk {
            self.layout.brk = brk;
            return Ok(());
        }
        if brk <= l.brk {
            // Always allow shrinking: unmap what lies above the new break,
            // provided it is the heap.
            let Some(v) = self.find_vma_intersection(newbrk, oldbrk) else {
                return Err(Errno::ENOMEM);
            };
            let _ = v;
            self.layout.brk = brk;
            self.unmap_range(k, newbrk, oldbrk)?;
            return Ok(());
        }
        // check_brk_limits: the area must be a valid fixed mapping, and
        // mlock limits respected for mlockall(MCL_FUTURE) processes.
        // Unsigned arithmetic as in Linux: a break within a page of the top
        // of the address space aligns to 0, and the huge length fails below.
        let len = newbrk.wrapping_sub(oldbrk);
        if len > TASK_SIZE || oldbrk > TASK_SIZE - len {
            return Err(Errno::ENOMEM);
        }
        if oldbrk < k.params.mmap_min_addr && !self.caps.sys_rawio {
            return Err(Errno::EPERM);
        }
        if !self.mlock_future_ok(self.def_flags, len) {
            return Err(Errno::EAGAIN);
        }
        // Leave the guard gap below a grows-down neighbour.
        if let Some(next) = self.find_vma_intersection(
            oldbrk,
            newbrk.saturating_add(PAGE_SIZE.saturating_add(k.params.stack_guard_gap)),
        ) {
            if newbrk + PAGE_SIZE > next.start_gap(k.params.stack_guard_gap) {
                return Err(Errno::ENOMEM);
            }
        }
        self.do_brk_flags(k, oldbrk, len)?;
        self.layout.brk = brk;
        if self.def_flags.contains(VmFlags::LOCKED) {
            let _ = self.populate(k, oldbrk, newbrk, true);
        }
        Ok(())
    }

    /// `do_brk_flags`: maps `[addr, addr + len)` as heap.
    fn do_brk_flags(&mut self, k: &mut Kernel, addr: u64, len: u64) -> SysResult<()> {
        let flags = VmFlags::READ
            | VmFlags::WRITE
            | VmFlags::MAYREAD
            | VmFlags::MAYWRITE
            | VmFlags::MAYEXEC
            | VmFlags::ACCOUNT
            | self.def_flags;
        let pages = len >> PAGE_SHIFT;
        if !self.may_expand_vm(flags, pages) {
            return Err(Errno::ENOMEM);
        }
        if self.map_count() > k.params.max_map_count {
            return Err(Errno::ENOMEM);
        }
        debug_assert!(accountable(flags));
        k.vm_enough_memory(self, pages, self.caps.sys_admin)?;
        let attrs = VmaAttrs::anon(flags, addr >> PAGE_SHIFT);
        // Only the region ending at the old break and reaching above
        // start_brk may be extended (vma_prev_limit(start_brk)).
        let prev_is_heap = self
            .vma_before(addr)
            .is_some_and(|p| p.end() == addr && p.end() > self.layout.start_brk);
        let result = if prev_is_heap {
            self.map_new_range(addr, addr + len, attrs, true)
        } else {
            let vma = Vma::new(VirtAddr::new(addr), VirtAddr::new(addr + len), attrs);
            self.insert(vma).map(|_| vma)
        };
        if let Err(e) = result {
            k.vm_unacct_memory(pages);
            return Err(e);
        }
        self.account_new(flags, pages);
        Ok(())
    }
}
