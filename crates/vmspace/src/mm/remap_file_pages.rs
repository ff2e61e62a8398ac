//! `remap_file_pages`: nonlinear file mappings, as modern Linux emulates
//! them.
//!
//! Linux 2.6 let one shared file region map its pages in any order, keeping
//! the arrangement in the page tables alone (`VM_NONLINEAR`). Since 4.0 the
//! call survives only as an emulation (mm/mmap.c): the chosen part of the
//! region is simply mapped again, `MAP_FIXED`, at the requested file
//! offset, which makes it a separate region — so a "nonlinear" mapping is a
//! run of ordinary regions over the same file, each with its own offset,
//! and `/proc/PID/maps` shows them as such. The new part is populated
//! (`MAP_POPULATE`) and keeps the region's protection and lock. The range
//! may cover several such regions, if they follow each other without a gap
//! over the same file with the same flags.

use super::AddressSpace;
use crate::addr::PAGE_SHIFT;
use crate::errno::{Errno, SysResult};
use crate::flags::VmFlags;
use crate::system::Kernel;
use crate::uapi::{
    MAP_FIXED, MAP_LOCKED, MAP_NONBLOCK, MAP_POPULATE, MAP_SHARED, PROT_EXEC, PROT_READ, PROT_WRITE,
};

use super::mmap::MmapFile;

impl AddressSpace {
    /// `remap_file_pages(start, size, prot, pgoff, flags)`: maps file page
    /// `pgoff` onwards at `[start, start + size)` (both rounded down to
    /// pages) inside one shared file region. `prot` must be 0 (the
    /// region's own protection is kept); of `flags` only `MAP_NONBLOCK`
    /// counts. Anything else — a range that is empty, wraps or leaves the
    /// region, a private or missing region, file offsets that wrap — is
    /// `EINVAL`.
    ///
    /// ```
    /// use vmspace::uapi::*;
    /// use vmspace::{Params, System};
    ///
    /// let mut sys = System::new(Params::default());
    /// let pid = sys.spawn_default();
    /// let fd = sys.open(pid, "f", O_RDWR | O_CREAT, 0o644).unwrap();
    /// sys.ftruncate(pid, fd, 16 << 12).unwrap();
    /// let a = sys
    ///     .mmap(pid, 0, 4 << 12, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
    ///     .unwrap();
    /// // The second page now shows file page 9: three regions.
    /// assert_eq!(sys.remap_file_pages(pid, a + 4096, 4096, 0, 9, 0), Ok(0));
    /// let regions = sys
    ///     .maps(pid)
    ///     .unwrap()
    ///     .lines()
    ///     .filter_map(|l| u64::from_str_radix(l.split('-').next()?, 16).ok())
    ///     .filter(|&start| (a..a + (4 << 12)).contains(&start))
    ///     .count();
    /// assert_eq!(regions, 3);
    /// ```
    pub fn remap_file_pages(
        &mut self,
        k: &mut Kernel,
        start: u64,
        size: u64,
        prot: u64,
        pgoff: u64,
        flags: u64,
    ) -> SysResult<u64> {
        if prot != 0 {
            return Err(Errno::EINVAL);
        }
        let start = start & !0xfff;
        let size = size & !0xfff;
        if start.wrapping_add(size) <= start {
            return Err(Errno::EINVAL);
        }
        if pgoff.checked_add(size >> PAGE_SHIFT).is_none() {
            return Err(Errno::EINVAL);
        }
        let vma = self.vma_containing(start).ok_or(Errno::EINVAL)?;
        let f = vma.flags();
        if !f.contains(VmFlags::SHARED) {
            return Err(Errno::EINVAL);
        }
        let file = vma.attrs.file.ok_or(Errno::EINVAL)?;
        // The range may run on into following regions if they continue
        // this one without a gap, over the same file with the same flags
        // (earlier nonlinear remaps leave such runs behind).
        let end = start + size;
        let mut reached = vma.end();
        while reached < end {
            match self.vma_from(reached) {
                Some(n) if n.start() == reached && n.attrs.file == Some(file) && n.flags() == f => {
                    reached = n.end();
                }
                _ => return Err(Errno::EINVAL),
            }
        }
        let mut prot = 0;
        for (vm, p) in [
            (VmFlags::READ, PROT_READ),
            (VmFlags::WRITE, PROT_WRITE),
            (VmFlags::EXEC, PROT_EXEC),
        ] {
            if f.contains(vm) {
                prot |= p;
            }
        }
        let mut flags = (flags & MAP_NONBLOCK) | MAP_SHARED | MAP_FIXED | MAP_POPULATE;
        if f.contains(VmFlags::LOCKED) {
            flags |= MAP_LOCKED;
        }
        self.mmap(k, start, size, prot, flags, Some(MmapFile { file }), pgoff)
            .map(|_| 0)
    }
}
