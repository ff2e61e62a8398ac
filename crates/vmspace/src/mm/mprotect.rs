//! `mprotect` (`do_mprotect_pkey` and `mprotect_fixup` in `mm/mprotect.c`).

use super::AddressSpace;
use crate::addr::{page_align, PAGE_SHIFT};
use crate::errno::{Errno, SysResult};
use crate::flags::VmFlags;
use crate::system::Kernel;
use crate::uapi::{PROT_EXEC, PROT_GROWSDOWN, PROT_GROWSUP, PROT_READ, PROT_SEM, PROT_WRITE};
use crate::vma::tree::At;
use crate::vma::Vma;

impl AddressSpace {
    /// `mprotect(start, len, prot)`. Regions are changed one by one; a
    /// failure part-way leaves the earlier ones changed, as Linux does.
    pub fn mprotect(&mut self, k: &mut Kernel, start: u64, len: u64, prot: u64) -> SysResult<u64> {
        let grows = prot & (PROT_GROWSDOWN | PROT_GROWSUP);
        let prot = prot & !(PROT_GROWSDOWN | PROT_GROWSUP);
        if grows == PROT_GROWSDOWN | PROT_GROWSUP {
            return Err(Errno::EINVAL);
        }
        if start & 0xfff != 0 {
            return Err(Errno::EINVAL);
        }
        if len == 0 {
            return Ok(0);
        }
        let len = page_align(len);
        let mut start = start;
        let mut end = start.wrapping_add(len);
        if end <= start {
            return Err(Errno::ENOMEM);
        }
        if prot & !(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_SEM) != 0 {
            return Err(Errno::EINVAL);
        }
        // find_vma_intersection(start, end), keeping the tree position so
        // that mprotect_fixup changes the region without looking it up.
        let Some(mut at) = self
            .tree
            .find_at(start)
            .filter(|&a| self.tree.start_at(a) < end)
        else {
            return Err(Errno::ENOMEM);
        };
        let mut vma = self.vma_at(at);
        if grows & PROT_GROWSDOWN != 0 {
            start = vma.start();
            if !vma.flags().contains(VmFlags::GROWSDOWN) {
                return Err(Errno::EINVAL);
            }
        } else {
            if vma.start() > start {
                return Err(Errno::ENOMEM);
            }
            if grows & PROT_GROWSUP != 0 {
                // x86 has no VM_GROWSUP regions.
                end = vma.end();
                let _ = end;
                return Err(Errno::EINVAL);
            }
        }

        let mut nstart = start;
        let mut tmp = vma.start();
        loop {
            if vma.start() != tmp {
                return Err(Errno::ENOMEM);
            }
            let newflags = VmFlags::from_prot(prot) | (vma.flags() - VmFlags::ACCESS);
            // The VM_MAY* bits, shifted onto VM_READ/WRITE/EXEC, bound the request.
            let may = VmFlags::from_bits_retain(newflags.bits() >> 4);
            if !((newflags - may) & VmFlags::ACCESS).is_empty() {
                return Err(Errno::EACCES);
            }
            tmp = vma.end().min(end);
            let done = self.mprotect_fixup(k, at, vma, nstart, tmp, newflags)?;
            tmp = done.end().min(end).max(tmp);
            nstart = tmp;
            if nstart >= end {
                return Ok(0);
            }
            match self.tree.find_at(nstart) {
                Some(a) if self.tree.start_at(a) < end => {
                    at = a;
                    vma = self.vma_at(a);
                }
                _ => return Err(Errno::ENOMEM),
            }
        }
    }

    /// `mprotect_fixup`: one region's part `[start, end)` gets `newflags`.
    /// `at` is `vma`'s position in the tree.
    fn mprotect_fixup(
        &mut self,
        k: &mut Kernel,
        at: At,
        vma: Vma,
        start: u64,
        end: u64,
        newflags: VmFlags,
    ) -> SysResult<Vma> {
        if vma.flags().contains(VmFlags::SEALED) {
            return Err(Errno::EPERM);
        }
        let oldflags = vma.flags();
        let mut newflags = newflags;
        if newflags == oldflags {
            return Ok(vma);
        }
        let nrpages = (end - start) >> PAGE_SHIFT;
        let mut charged = 0;
        if newflags.contains(VmFlags::WRITE) {
            if !self.may_expand_vm(newflags, nrpages) && self.may_expand_vm(oldflags, nrpages) {
                return Err(Errno::ENOMEM);
            }
            if !oldflags.intersects(
                VmFlags::ACCOUNT
                    | VmFlags::WRITE
                    | VmFlags::HUGETLB
                    | VmFlags::SHARED
                    | VmFlags::NORESERVE,
            ) {
                charged = nrpages;
                k.vm_enough_memory(self, charged, self.caps.sys_admin)?;
                newflags |= VmFlags::ACCOUNT;
            }
        } else if oldflags.contains(VmFlags::ACCOUNT)
            && self.vma_is_anonymous(&vma)
            && vma.attrs.anon_vma.is_none()
        {
            newflags -= VmFlags::ACCOUNT;
        }
        let mut attrs = vma.attrs;
        attrs.flags = newflags;
        let result = match self.modify_range_at(k, at, vma, start, end, attrs) {
            Ok(v) => v,
            Err(e) => {
                k.vm_unacct_memory(charged);
                return Err(e);
            }
        };
        self.change_protection(k, start, end, newflags);
        if oldflags.contains(VmFlags::ACCOUNT) && !newflags.contains(VmFlags::ACCOUNT) {
            k.vm_unacct_memory(nrpages);
        }
        self.stat_account(oldflags, -(nrpages as i64));
        self.stat_account(newflags, nrpages as i64);
        // A private locked region becoming writable is faulted in at once
        // (populate_vma_page_range), so that COW happens now.
        if oldflags & (VmFlags::WRITE | VmFlags::SHARED | VmFlags::LOCKED) == VmFlags::LOCKED
            && newflags.contains(VmFlags::WRITE)
        {
            let _ = self.populate(k, start, end, true);
            return Ok(self.vma_containing(start).unwrap_or(result));
        }
        Ok(result)
    }
}
