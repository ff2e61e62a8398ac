//! `mmap` (`do_mmap` and `mmap_region` in `mm/mmap.c` and `mm/vma.c`).

use super::unmapped_area::{AreaRequest, Placed};
use super::{AddressSpace, RegionList};
use crate::addr::{page_align, PAGE_SHIFT};
use crate::errno::{Errno, SysResult};
use crate::file::{FileId, InodeKind};
use crate::flags::VmFlags;
use crate::system::Kernel;
use crate::uapi::*;
use crate::vma::{Vma, VmaAttrs, VmaName};
use alloc::vec::Vec;

/// The file argument of `mmap`, resolved from a descriptor by the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmapFile {
    /// The open file description.
    pub file: FileId,
}

/// What a successful `mmap` did, beyond the address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MmapOutcome {
    /// The mapping's address.
    pub addr: u64,
    /// Bytes to populate (`MAP_POPULATE` or `VM_LOCKED`).
    pub populate: u64,
    /// Regions a `MAP_FIXED` mapping replaced.
    pub replaced: Vec<Vma>,
}

impl AddressSpace {
    /// `do_mmap`: checks the arguments in Linux's order, picks the address
    /// and maps it. `file` is `None` for `MAP_ANONYMOUS`.
    #[allow(clippy::too_many_arguments)]
    pub fn mmap(
        &mut self,
        k: &mut Kernel,
        addr: u64,
        len: u64,
        prot: u64,
        flags: u64,
        file: Option<MmapFile>,
        pgoff: u64,
    ) -> SysResult<MmapOutcome> {
        let mut flags = flags;
        let mut addr = addr;
        if len == 0 {
            return Err(Errno::EINVAL);
        }
        if flags & MAP_FIXED_NOREPLACE != 0 {
            flags |= MAP_FIXED;
        }
        if flags & MAP_FIXED == 0 {
            // round_hint_to_min
            addr &= !0xfff;
            let min = k.params.min_addr_for_hints();
            if addr != 0 && addr < min {
                addr = min;
            }
        }
        let len = page_align(len);
        if len == 0 {
            return Err(Errno::ENOMEM);
        }
        if pgoff.checked_add(len >> PAGE_SHIFT).is_none() {
            return Err(Errno::EOVERFLOW);
        }
        if self.map_count() > k.params.max_map_count {
            return Err(Errno::ENOMEM);
        }

        let file_kind = match file {
            Some(f) => Some(
                k.files
                    .inode_of(f.file)
                    .map(|i| i.kind)
                    .ok_or(Errno::EBADF)?,
            ),
            None => None,
        };
        let (addr, placed) = self.get_unmapped_area_at(
            &k.params,
            AreaRequest {
                addr,
                len,
                pgoff: if file.is_some() { pgoff } else { 0 },
                flags,
                vm_flags: VmFlags::empty(),
                has_file: file.is_some(),
            },
        )?;
        if flags & MAP_FIXED_NOREPLACE != 0
            && self.find_vma_intersection(addr, addr + len).is_some()
        {
            return Err(Errno::EEXIST);
        }

        let mut vm_flags = VmFlags::from_prot(prot)
            | calc_vm_flag_bits(flags)
            | self.def_flags
            | VmFlags::MAYREAD
            | VmFlags::MAYWRITE
            | VmFlags::MAYEXEC;
        if flags & MAP_LOCKED != 0 && !self.can_do_mlock() {
            return Err(Errno::EPERM);
        }
        if !self.mlock_future_ok(vm_flags, len) {
            return Err(Errno::EAGAIN);
        }

        let mut pgoff = pgoff;
        match file {
            Some(f) => {
                let of = k.files.file(f.file).ok_or(Errno::EBADF)?.clone();
                // file_mmap_ok: the mapped range must fit below the largest
                // file offset (MAX_LFS_FILESIZE).
                let maxsize = i64::MAX as u64;
                if len > maxsize || pgoff > (maxsize - len) >> PAGE_SHIFT {
                    return Err(Errno::EOVERFLOW);
                }
                let size_ok = file_kind != Some(InodeKind::Imported);
                let mut map_flags = flags;
                match flags & MAP_TYPE {
                    MAP_SHARED | MAP_SHARED_VALIDATE => {
                        if flags & MAP_TYPE == MAP_SHARED {
                            map_flags &= LEGACY_MAP_MASK;
                        }
                        if map_flags & !LEGACY_MAP_MASK != 0 {
                            return Err(Errno::EOPNOTSUPP);
                        }
                        if prot & PROT_WRITE != 0 && !of.writable {
                            return Err(Errno::EACCES);
                        }
                        vm_flags |= VmFlags::SHARED | VmFlags::MAYSHARE;
                        if !of.writable {
                            vm_flags -= VmFlags::MAYWRITE | VmFlags::SHARED;
                        }
                        if !of.readable {
                            return Err(Errno::EACCES);
                        }
                    }
                    MAP_PRIVATE => {
                        if !of.readable {
                            return Err(Errno::EACCES);
                        }
                    }
                    _ => return Err(Errno::EINVAL),
                }
                if !size_ok {
                    return Err(Errno::ENODEV);
                }
                if vm_flags.contains(VmFlags::GROWSDOWN) {
                    return Err(Errno::EINVAL);
                }
            }
            None => match flags & MAP_TYPE {
                MAP_SHARED => {
                    if vm_flags.contains(VmFlags::GROWSDOWN) {
                        return Err(Errno::EINVAL);
                    }
                    pgoff = 0;
                    vm_flags |= VmFlags::SHARED | VmFlags::MAYSHARE;
                }
                MAP_DROPPABLE => {
                    // Droppable memory: private, never locked or dumped.
                    if flags & MAP_LOCKED != 0 || vm_flags.contains(VmFlags::GROWSDOWN) {
                        return Err(Errno::EINVAL);
                    }
                    pgoff = addr >> PAGE_SHIFT;
                    vm_flags |= VmFlags::DROPPABLE
                        | VmFlags::WIPEONFORK
                        | VmFlags::DONTDUMP
                        | VmFlags::NORESERVE;
                }
                MAP_PRIVATE => pgoff = addr >> PAGE_SHIFT,
                _ => return Err(Errno::EINVAL),
            },
        }
        if flags & MAP_NORESERVE != 0 && k.params.overcommit_memory != 2 {
            vm_flags |= VmFlags::NORESERVE;
        }

        let shmem_anon = file.is_none() && vm_flags.contains(VmFlags::SHARED);
        let replaced = self.mmap_region(
            k,
            file.map(|f| f.file),
            addr,
            len,
            vm_flags,
            pgoff,
            shmem_anon,
            placed,
        )?;
        let populate = if vm_flags.contains(VmFlags::LOCKED)
            || flags & (MAP_POPULATE | MAP_NONBLOCK) == MAP_POPULATE
        {
            len
        } else {
            0
        };
        if populate > 0 {
            // vm_mmap_pgoff: mm_populate, errors ignored.
            let _ = self.populate(k, addr, addr + len, true);
        }
        Ok(MmapOutcome {
            addr,
            populate,
            replaced,
        })
    }

    /// `mmap_region`: unmaps what `MAP_FIXED` covers, checks limits and
    /// commit, then maps (merging where Linux would). On failure, splits
    /// done while gathering the old regions stay, as in Linux. `placed` is
    /// what choosing the address learned: a range found free has nothing
    /// to gather, and its neighbours are known.
    #[allow(clippy::too_many_arguments)]
    fn mmap_region(
        &mut self,
        k: &mut Kernel,
        file: Option<FileId>,
        addr: u64,
        len: u64,
        mut vm_flags: VmFlags,
        pgoff: u64,
        shmem_anon: bool,
        placed: Placed,
    ) -> SysResult<Vec<Vma>> {
        let end = addr + len;
        let pglen = len >> PAGE_SHIFT;
        // vms_gather_munmap_vmas: split at the edges, refuse sealed regions.
        let around = self.free_between(addr, end, placed);
        let gathered = match around {
            Some(_) => RegionList::new(),
            None => self.gather_unmap(k, addr, end)?,
        };
        let nr_pages: u64 = gathered.iter().map(|v| v.pages()).sum();
        let nr_accounted: u64 = gathered
            .iter()
            .filter(|v| v.flags().contains(VmFlags::ACCOUNT))
            .map(|v| v.pages())
            .sum();
        if !self.may_expand_vm(vm_flags, pglen - nr_pages) {
            return Err(Errno::ENOMEM);
        }
        let mut charged = 0;
        let mut reused_account = 0;
        if !shmem_anon && accountable(vm_flags) {
            charged = pglen - nr_accounted.min(pglen);
            if charged > 0 {
                k.vm_enough_memory(self, charged, self.caps.sys_admin)?;
            }
            reused_account = nr_accounted;
            vm_flags |= VmFlags::ACCOUNT;
        }
        // The shmem object behind shared anonymous memory is charged for its
        // whole size unless MAP_NORESERVE (shmem_acct_size).
        let mut file = file;
        if shmem_anon {
            if !vm_flags.contains(VmFlags::NORESERVE) {
                if let Err(e) = k.vm_enough_memory(self, pglen, self.caps.sys_admin) {
                    k.vm_unacct_memory(charged);
                    return Err(e);
                }
            }
            file = Some(k.new_shmem_anon(len, !vm_flags.contains(VmFlags::NORESERVE)));
        }

        // Complete the unmap of what MAP_FIXED covered.
        let removed = match self.complete_unmap(k, &gathered, reused_account) {
            None => gathered,
            Some(removed) => removed,
        };

        let attrs = VmaAttrs {
            flags: vm_flags,
            pgoff,
            file,
            anon_vma: None,
            anon_inherited: false,
            name: VmaName::None,
        };
        self.map_new_range_at(addr, end, attrs, false, around)?;
        let mut acct_flags = vm_flags;
        if vm_flags.contains(VmFlags::LOCKED) && vm_flags.intersects(VmFlags::SPECIAL) {
            acct_flags -= VmFlags::LOCKED_MASK;
        }
        self.account_new(acct_flags, pglen);
        Ok(removed.into_vec())
    }
}

/// `calc_vm_flag_bits`.
fn calc_vm_flag_bits(flags: u64) -> VmFlags {
    let mut f = VmFlags::empty();
    if flags & MAP_GROWSDOWN != 0 {
        f |= VmFlags::GROWSDOWN;
    }
    if flags & MAP_LOCKED != 0 {
        f |= VmFlags::LOCKED;
    }
    if flags & MAP_SYNC != 0 {
        f |= VmFlags::SYNC;
    }
    if flags & MAP_STACK != 0 {
        f |= VmFlags::NOHUGEPAGE;
    }
    f
}

/// `accountable_mapping`: private writable memory is charged against the
/// commit limit.
pub(crate) fn accountable(flags: VmFlags) -> bool {
    flags & (VmFlags::NORESERVE | VmFlags::SHARED | VmFlags::WRITE) == VmFlags::WRITE
}
