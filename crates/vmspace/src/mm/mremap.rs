//! `mremap` (`mm/mremap.c`): shrink in place, grow in place when the space
//! above is free, otherwise move (`MREMAP_MAYMOVE`), to a chosen place
//! (`MREMAP_FIXED`), optionally leaving the old range mapped but empty
//! (`MREMAP_DONTUNMAP`). A same-size `MREMAP_FIXED` move may span several
//! regions; the gaps between them are kept.

use super::unmapped_area::AreaRequest;
use super::AddressSpace;
use crate::addr::{page_align, PAGE_SHIFT};
use crate::errno::{Errno, SysResult};
use crate::file::InodeKind;
use crate::flags::VmFlags;
use crate::layout::TASK_SIZE;
use crate::system::Kernel;
use crate::uapi::{MAP_FIXED, MAP_SHARED, MREMAP_DONTUNMAP, MREMAP_FIXED, MREMAP_MAYMOVE};
use crate::vma::{Vma, VmaAttrs};

/// One mremap request (`struct vma_remap_struct`).
#[derive(Clone, Copy, Debug)]
struct Remap {
    addr: u64,
    old_len: u64,
    new_len: u64,
    flags: u64,
    new_addr: u64,
}

impl Remap {
    fn implies_new_addr(&self) -> bool {
        self.flags & (MREMAP_FIXED | MREMAP_DONTUNMAP) != 0
    }
}

impl AddressSpace {
    /// `mremap(addr, old_len, new_len, flags, new_addr)`; returns the
    /// (possibly new) address.
    pub fn mremap(
        &mut self,
        k: &mut Kernel,
        addr: u64,
        old_len: u64,
        new_len: u64,
        flags: u64,
        new_addr: u64,
    ) -> SysResult<u64> {
        let r = Remap {
            addr,
            old_len: page_align(old_len),
            new_len: page_align(new_len),
            flags,
            new_addr,
        };
        self.check_mremap_params(k, &r)?;
        if r.flags & MREMAP_FIXED != 0 && r.old_len == r.new_len {
            return self.remap_move(k, r);
        }
        let vma = self.vma_containing(r.addr).ok_or(Errno::EFAULT)?;
        let mut r = r;
        self.check_prep_vma(k, &vma, &mut r)?;
        if r.implies_new_addr() {
            self.mremap_to(k, r)
        } else {
            self.mremap_at(k, vma, r)
        }
    }

    /// `check_mremap_params`: checks that need no region.
    fn check_mremap_params(&self, k: &Kernel, r: &Remap) -> SysResult<()> {
        if r.flags & !(MREMAP_FIXED | MREMAP_MAYMOVE | MREMAP_DONTUNMAP) != 0 {
            return Err(Errno::EINVAL);
        }
        if r.addr & 0xfff != 0 {
            return Err(Errno::EINVAL);
        }
        if r.new_len == 0 || r.new_len > TASK_SIZE {
            return Err(Errno::EINVAL);
        }
        if !r.implies_new_addr() {
            return Ok(());
        }
        if r.new_addr > TASK_SIZE - r.new_len {
            return Err(Errno::EINVAL);
        }
        if r.new_addr & 0xfff != 0 {
            return Err(Errno::EINVAL);
        }
        if r.flags & MREMAP_MAYMOVE == 0 {
            return Err(Errno::EINVAL);
        }
        if r.flags & MREMAP_DONTUNMAP != 0 && r.old_len != r.new_len {
            return Err(Errno::EINVAL);
        }
        let old_end = r.addr.wrapping_add(r.old_len);
        if old_end > r.new_addr && r.new_addr + r.new_len > r.addr {
            return Err(Errno::EINVAL);
        }
        if self.map_count() + 2 >= k.params.max_map_count.saturating_sub(3) {
            return Err(Errno::ENOMEM);
        }
        Ok(())
    }

    /// `check_prep_vma`: checks against the region at `addr`.
    fn check_prep_vma(&self, _k: &Kernel, vma: &Vma, r: &mut Remap) -> SysResult<()> {
        let f = vma.flags();
        if f.contains(VmFlags::SEALED) {
            return Err(Errno::EPERM);
        }
        if !r.implies_new_addr() {
            r.new_addr = r.addr;
        }
        let expand = r.new_len > r.old_len;
        if !expand && !r.implies_new_addr() {
            return Ok(());
        }
        // A shrink may cross region boundaries: only what stays is checked.
        let old_len = r.old_len.min(r.new_len);
        if r.old_len == 0 && !f.intersects(VmFlags::SHARED | VmFlags::MAYSHARE) {
            return Err(Errno::EINVAL);
        }
        if r.flags & MREMAP_DONTUNMAP != 0 && f.intersects(VmFlags::DONTEXPAND | VmFlags::PFNMAP) {
            return Err(Errno::EINVAL);
        }
        if old_len > vma.end() - r.addr {
            return Err(Errno::EFAULT);
        }
        if r.new_len == old_len {
            return Ok(());
        }
        let pgoff = vma.pgoff_at(r.addr);
        if pgoff.checked_add(r.new_len >> PAGE_SHIFT).is_none() {
            return Err(Errno::EINVAL);
        }
        if f.intersects(VmFlags::DONTEXPAND | VmFlags::PFNMAP) {
            return Err(Errno::EFAULT);
        }
        let delta = r.new_len - old_len;
        if !self.mlock_future_ok(f, delta) {
            return Err(Errno::EAGAIN);
        }
        if !self.may_expand_vm(f, delta >> PAGE_SHIFT) {
            return Err(Errno::ENOMEM);
        }
        Ok(())
    }

    /// `mremap_at`: no new address was asked for.
    fn mremap_at(&mut self, k: &mut Kernel, vma: Vma, r: Remap) -> SysResult<u64> {
        if r.old_len == r.new_len {
            return Ok(r.addr);
        }
        if r.new_len < r.old_len {
            // shrink_vma: do_vmi_munmap with its range checks (a huge
            // old_len is EINVAL, not an overflow).
            self.munmap(k, r.addr + r.new_len, r.old_len - r.new_len)?;
            return Ok(r.addr);
        }
        // Grow: in place when [addr, old_len) reaches the region's end and
        // the space above is free.
        let delta = r.new_len - r.old_len;
        if vma.end() - r.addr == r.old_len && self.vma_expandable(k, &vma, delta) {
            let pages = delta >> PAGE_SHIFT;
            let mut charged = 0;
            if vma.flags().contains(VmFlags::ACCOUNT) {
                k.vm_enough_memory(self, pages, self.caps.sys_admin)?;
                charged = pages;
            }
            let mut attrs = vma.attrs;
            attrs.pgoff = vma.pgoff_at(vma.end());
            // vma_merge_extend merges the added range as a new one carrying
            // the region's anon_vma, with no source region to have
            // inherited it: a next region without one may join even when
            // this region's anon_vma came from a parent.
            attrs.anon_inherited = false;
            if let Err(e) = self.map_new_range(vma.end(), vma.end() + delta, attrs, false) {
                k.vm_unacct_memory(charged);
                return Err(e);
            }
            self.account_new(vma.flags(), pages);
            if vma.flags().contains(VmFlags::LOCKED) {
                let _ = self.populate(k, vma.end(), vma.end() + delta, true);
            }
            return Ok(r.addr);
        }
        if r.flags & MREMAP_MAYMOVE == 0 {
            return Err(Errno::ENOMEM);
        }
        let new_addr = self.remap_target(k, &vma, &r, 0, 0)?;
        self.move_vma(k, vma, r, new_addr)
    }

    /// `vma_expandable`: nothing in the way and still a valid user range.
    fn vma_expandable(&self, k: &Kernel, vma: &Vma, delta: u64) -> bool {
        let Some(end) = vma.end().checked_add(delta) else {
            return false;
        };
        if self.find_vma_intersection(vma.end(), end).is_some() {
            return false;
        }
        let len = end - vma.start();
        len <= TASK_SIZE
            && vma.start() <= TASK_SIZE - len
            && (vma.start() >= k.params.mmap_min_addr || self.caps.sys_rawio)
    }

    /// `mremap_to`: move to `new_addr` (`MREMAP_FIXED`) or near it
    /// (`MREMAP_DONTUNMAP` alone treats it as a hint).
    fn mremap_to(&mut self, k: &mut Kernel, mut r: Remap) -> SysResult<u64> {
        if r.flags & MREMAP_FIXED != 0 {
            // The destination goes first, even if the move then fails.
            self.munmap(k, r.new_addr, r.new_len)?;
        }
        let mut vma = self.vma_containing(r.addr).ok_or(Errno::EFAULT)?;
        if r.new_len < r.old_len {
            // shrink_vma: do_vmi_munmap with its range checks (a huge
            // old_len is EINVAL, not an overflow).
            self.munmap(k, r.addr + r.new_len, r.old_len - r.new_len)?;
            r.old_len = r.new_len;
            vma = self.vma_containing(r.addr).ok_or(Errno::EFAULT)?;
        }
        if r.flags & MREMAP_DONTUNMAP != 0
            && !self.may_expand_vm(vma.flags(), r.old_len >> PAGE_SHIFT)
        {
            return Err(Errno::ENOMEM);
        }
        let map_flags = if r.flags & MREMAP_FIXED != 0 {
            MAP_FIXED
        } else {
            0
        };
        let new_addr = self.remap_target(k, &vma, &r, r.new_addr, map_flags)?;
        self.move_vma(k, vma, r, new_addr)
    }

    /// `vrm_set_new_addr`: where the moved range goes.
    fn remap_target(
        &self,
        k: &Kernel,
        vma: &Vma,
        r: &Remap,
        hint: u64,
        map_flags: u64,
    ) -> SysResult<u64> {
        let mut flags = map_flags;
        if vma.flags().contains(VmFlags::MAYSHARE) {
            flags |= MAP_SHARED;
        }
        self.get_unmapped_area(
            &k.params,
            AreaRequest {
                addr: hint,
                len: r.new_len,
                pgoff: if vma.attrs.file.is_some() {
                    vma.pgoff_at(r.addr)
                } else {
                    0
                },
                flags,
                vm_flags: VmFlags::empty(),
                has_file: vma.attrs.file.is_some(),
            },
        )
    }

    /// `move_vma`: copies the region to `new_addr` (merging there if Linux
    /// would), then unmaps the old range, or with `MREMAP_DONTUNMAP` keeps
    /// it mapped but clears its lock and accounting bits.
    fn move_vma(&mut self, k: &mut Kernel, vma: Vma, r: Remap, new_addr: u64) -> SysResult<u64> {
        if self.map_count() >= k.params.max_map_count.saturating_sub(3) {
            return Err(Errno::ENOMEM);
        }
        // prep_move_vma: a special mapping moves whole or not at all.
        if self.is_special_mapping(&vma)
            && (vma.start() != r.addr || vma.end() != r.addr + r.old_len)
        {
            return Err(Errno::EINVAL);
        }
        let f = vma.flags();
        let mut charged = 0;
        if f.contains(VmFlags::ACCOUNT) {
            let pages = if r.flags & MREMAP_DONTUNMAP != 0 {
                r.new_len >> PAGE_SHIFT
            } else {
                r.new_len.abs_diff(r.old_len) >> PAGE_SHIFT
            };
            k.vm_enough_memory(self, pages, self.caps.sys_admin)?;
            charged = pages;
        }
        // copy_vma: unfaulted private anonymous memory takes the offset of
        // its new place, so that it can merge there.
        let mut attrs: VmaAttrs = vma.attrs;
        attrs.pgoff = vma.pgoff_at(r.addr);
        if self.vma_is_anonymous(&vma) && vma.attrs.anon_vma.is_none() {
            attrs.pgoff = new_addr >> PAGE_SHIFT;
        }
        if let Err(e) = self.map_new_range(new_addr, new_addr + r.new_len, attrs, false) {
            k.vm_unacct_memory(charged);
            return Err(e);
        }
        self.move_pages(k, r.addr, new_addr, r.old_len.min(r.new_len));
        let hiwater = self.counters.hiwater_vm;
        self.account_new(f, r.new_len >> PAGE_SHIFT);

        if r.flags & MREMAP_DONTUNMAP != 0 {
            // dontunmap_complete: the whole old region loses its lock bits
            // (locked_vm is left as it was), and its anon_vma when all of it
            // moved.
            if let Some(old) = self.vma_containing(r.addr) {
                let mut a = old.attrs;
                a.flags -= VmFlags::LOCKED_MASK;
                if old.start() == r.addr && old.end() == r.addr + r.old_len {
                    a.anon_vma = None;
                    a.anon_inherited = false;
                }
                self.set_attrs(old.start(), a);
            }
        } else if r.old_len > 0 {
            let end = r.addr + r.old_len;
            match self.gather_unmap(k, r.addr, end) {
                Ok(g) => {
                    let reused = if f.contains(VmFlags::ACCOUNT) {
                        g.iter()
                            .filter(|v| v.flags().contains(VmFlags::ACCOUNT))
                            .map(|v| v.pages())
                            .sum()
                    } else {
                        0
                    };
                    self.remove_gathered(k, &g, reused);
                }
                Err(_) => {
                    if f.contains(VmFlags::ACCOUNT) {
                        k.committed += r.old_len >> PAGE_SHIFT;
                    }
                }
            }
        }
        self.counters.hiwater_vm = hiwater;
        if f.contains(VmFlags::LOCKED) && r.new_len > r.old_len && r.flags & MREMAP_DONTUNMAP == 0 {
            let _ = self.populate(k, new_addr + r.old_len, new_addr + r.new_len, true);
        }
        Ok(new_addr)
    }

    /// `remap_move`: a same-size `MREMAP_FIXED` move of every region in
    /// `[addr, addr + len)`, keeping the gaps between them.
    fn remap_move(&mut self, k: &mut Kernel, r: Remap) -> SysResult<u64> {
        let start = r.addr;
        let end = r.addr.wrapping_add(r.old_len);
        let mut res = Err(Errno::EFAULT);
        let mut seen = false;
        let mut last_end = 0;
        let mut target = r.new_addr;
        let mut cursor = start;
        while let Some(vma) = self.find_vma_intersection(cursor, end) {
            if !seen && start < vma.start() {
                return Err(Errno::EFAULT);
            }
            let a = vma.start().max(start);
            let len = end.min(vma.end()) - a;
            let offset = if seen { vma.start() - last_end } else { 0 };
            last_end = vma.end();
            let multi_allowed = match vma.attrs.file.and_then(|f| k.files.inode_of(f)) {
                Some(i) => matches!(i.kind, InodeKind::Tmpfs | InodeKind::ShmemAnon),
                None => true,
            };
            if !multi_allowed && (seen || vma.end() < end) {
                return Err(Errno::EFAULT);
            }
            let mut sub = Remap {
                addr: a,
                old_len: len,
                new_len: len,
                flags: r.flags,
                new_addr: target + offset,
            };
            self.check_prep_vma(k, &vma, &mut sub)?;
            let got = self.mremap_to(k, sub)?;
            if !seen {
                res = Ok(got);
            }
            seen = true;
            target = got + len;
            cursor = a + len;
            if cursor >= end {
                break;
            }
        }
        res
    }
}
