//! Choosing an address for a new mapping (`get_unmapped_area`).
//!
//! x86-64's rules (`arch/x86/kernel/sys_x86_64.c`, `mm/mmap.c`,
//! `mm/huge_memory.c`):
//! - `MAP_FIXED` takes the address as given (checked only against the user
//!   range, alignment and `mmap_min_addr`).
//! - A hint is used, page-aligned, if `[hint, hint + len)` fits below the
//!   next region's start gap (the stack guard gap for a grows-down region).
//! - Otherwise the highest free gap below `mmap_base` that fits (top-down),
//!   and failing that the lowest above `TASK_UNMAPPED_BASE` (bottom-up).
//! - Private anonymous mappings whose length is a multiple of 2 MiB, and
//!   that have no hint, are placed on a 2 MiB boundary (for transparent huge
//!   pages): the search asks for 2 MiB more and keeps an aligned part.

use super::AddressSpace;
use crate::addr::{is_page_aligned, page_align, PAGE_SIZE, PMD_SIZE};
use crate::errno::{Errno, SysResult};
use crate::flags::VmFlags;
use crate::layout::{MAP_32BIT_END, MAP_32BIT_START, TASK_SIZE, TASK_UNMAPPED_BASE};
use crate::params::Params;
use crate::uapi::{MAP_32BIT, MAP_ABOVE4G, MAP_FIXED, MAP_SHARED};
use crate::vma::tree::At;

/// What is being mapped, as far as placement cares.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AreaRequest {
    pub addr: u64,
    pub len: u64,
    pub pgoff: u64,
    pub flags: u64,
    pub vm_flags: VmFlags,
    pub has_file: bool,
}

/// What choosing an address learned about the range chosen.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Placed {
    /// Nothing (`MAP_FIXED`: the range may be mapped).
    Unknown,
    /// A search or an accepted hint found the range free, right below the
    /// region at this tree position (`None`: above every region). Valid
    /// until the tree next changes.
    Free(Option<At>),
}

/// A free-area search (`struct vm_unmapped_area_info`).
struct SearchInfo {
    topdown: bool,
    length: u64,
    low_limit: u64,
    high_limit: u64,
    align_mask: u64,
    align_offset: u64,
    start_gap: u64,
}

impl AddressSpace {
    /// `__get_unmapped_area`: the address the mapping will get, or the
    /// error that refuses it.
    pub(crate) fn get_unmapped_area(&self, p: &Params, req: AreaRequest) -> SysResult<u64> {
        self.get_unmapped_area_at(p, req).map(|(a, _)| a)
    }

    /// [`get_unmapped_area`](Self::get_unmapped_area), with what the
    /// placement learned about the range (so that mapping it needs no
    /// second lookup).
    pub(crate) fn get_unmapped_area_at(
        &self,
        p: &Params,
        req: AreaRequest,
    ) -> SysResult<(u64, Placed)> {
        if req.len > TASK_SIZE {
            return Err(Errno::ENOMEM);
        }
        let (addr, placed) = if !req.has_file
            && req.flags & MAP_SHARED == 0
            && req.addr == 0
            && req.len % PMD_SIZE == 0
        {
            match self.thp_aligned_area(p, req)? {
                Some(a) => a,
                None => self.arch_area(p, req)?,
            }
        } else {
            let mut r = req;
            if !r.has_file && r.flags & MAP_SHARED != 0 {
                r.pgoff = 0;
            }
            self.arch_area(p, r)?
        };
        // IS_ERR_VALUE: a fixed "address" in the last 4095 values of the
        // address space reads as an error number, as it does in Linux.
        if addr > u64::MAX - 4095 {
            let errno = (addr as i64).unsigned_abs() as i32;
            return Err(Errno::from_raw(errno).unwrap_or(Errno::EINVAL));
        }
        if addr > TASK_SIZE - req.len {
            return Err(Errno::ENOMEM);
        }
        if !is_page_aligned(addr) {
            return Err(Errno::EINVAL);
        }
        // security_mmap_addr -> cap_mmap_addr.
        if addr < p.mmap_min_addr && !self.caps.sys_rawio {
            return Err(Errno::EPERM);
        }
        Ok((addr, placed))
    }

    /// `__thp_get_unmapped_area` for anonymous memory: search for `len` plus
    /// 2 MiB and keep a 2 MiB-aligned part (inside the padded range, so
    /// what was learned about it holds). `None` falls back to a plain
    /// search.
    fn thp_aligned_area(&self, p: &Params, req: AreaRequest) -> SysResult<Option<(u64, Placed)>> {
        let off = req.pgoff.wrapping_shl(12);
        let off_end = off.wrapping_add(req.len);
        let off_align = off.wrapping_add(PMD_SIZE - 1) & !(PMD_SIZE - 1);
        if off_end <= off_align || off_end - off_align < PMD_SIZE {
            return Ok(None);
        }
        let len_pad = req.len.wrapping_add(PMD_SIZE);
        if len_pad < req.len || off.wrapping_add(len_pad) < off {
            return Ok(None);
        }
        let padded = AreaRequest {
            len: len_pad,
            ..req
        };
        let Ok((ret, placed)) = self.arch_area(p, padded) else {
            return Ok(None);
        };
        if ret == req.addr {
            return Ok(Some((ret, placed)));
        }
        let off_sub = off.wrapping_sub(ret) & (PMD_SIZE - 1);
        if !self.layout.legacy && off_sub == 0 {
            return Ok(Some((ret + PMD_SIZE, placed)));
        }
        Ok(Some((ret + off_sub, placed)))
    }

    /// `arch_get_unmapped_area_topdown` / `arch_get_unmapped_area`.
    fn arch_area(&self, p: &Params, req: AreaRequest) -> SysResult<(u64, Placed)> {
        if self.layout.legacy {
            self.area_bottomup(p, req)
        } else {
            self.area_topdown(p, req)
        }
    }

    fn area_topdown(&self, p: &Params, req: AreaRequest) -> SysResult<(u64, Placed)> {
        let len = req.len;
        if len > TASK_SIZE {
            return Err(Errno::ENOMEM);
        }
        if req.flags & MAP_FIXED != 0 {
            return Ok((req.addr, Placed::Unknown));
        }
        if req.flags & MAP_32BIT != 0 {
            return self.area_bottomup(p, AreaRequest { addr: 0, ..req });
        }
        if req.addr != 0 {
            let addr = req.addr & !(PAGE_SIZE - 1);
            // mmap_address_hint_valid: inside the user range.
            if TASK_SIZE - len >= addr {
                if let Some(placed) = self.hint_fits(p, addr, len) {
                    return Ok((addr, placed));
                }
            }
        }
        let info = SearchInfo {
            topdown: true,
            length: len,
            low_limit: if req.flags & MAP_ABOVE4G != 0 {
                1 << 32
            } else {
                PAGE_SIZE
            },
            high_limit: self.layout.mmap_base,
            align_mask: 0,
            align_offset: req.pgoff << 12,
            start_gap: start_gap_for(req.vm_flags),
        };
        match self.unmapped_area(p, &info) {
            Ok(a) => Ok(a),
            Err(_) => self.area_bottomup(
                p,
                AreaRequest {
                    addr: 0,
                    flags: req.flags,
                    ..req
                },
            ),
        }
    }

    fn area_bottomup(&self, p: &Params, req: AreaRequest) -> SysResult<(u64, Placed)> {
        let len = req.len;
        if req.flags & MAP_FIXED != 0 {
            return Ok((req.addr, Placed::Unknown));
        }
        let (begin, end) = if req.flags & MAP_32BIT != 0 {
            (MAP_32BIT_START, MAP_32BIT_END)
        } else {
            (self.layout.mmap_legacy_base, TASK_SIZE)
        };
        if len > end {
            return Err(Errno::ENOMEM);
        }
        if req.addr != 0 {
            let addr = page_align(req.addr);
            if end - len >= addr {
                if let Some(placed) = self.hint_fits(p, addr, len) {
                    return Ok((addr, placed));
                }
            }
        }
        let info = SearchInfo {
            topdown: false,
            length: len,
            low_limit: begin,
            high_limit: end,
            align_mask: 0,
            align_offset: req.pgoff << 12,
            start_gap: start_gap_for(req.vm_flags),
        };
        self.unmapped_area(p, &info)
    }

    /// The hint test: nothing at `addr` and the next region's start gap is
    /// not reached. Passing, the range is free below that region.
    fn hint_fits(&self, p: &Params, addr: u64, len: u64) -> Option<Placed> {
        match self.tree.find_at(addr) {
            None => Some(Placed::Free(None)),
            Some(a) => (addr + len <= self.vma_at(a).start_gap(p.stack_guard_gap))
                .then_some(Placed::Free(Some(a))),
        }
    }

    /// `vm_unmapped_area`: `unmapped_area_topdown` or `unmapped_area`.
    fn unmapped_area(&self, p: &Params, info: &SearchInfo) -> SysResult<(u64, Placed)> {
        let length = info
            .length
            .checked_add(info.align_mask)
            .and_then(|l| l.checked_add(info.start_gap))
            .ok_or(Errno::ENOMEM)?;
        let mut low = info.low_limit.max(p.min_addr_for_hints());
        let mut high = info.high_limit;
        loop {
            if low >= high {
                return Err(Errno::ENOMEM);
            }
            if info.topdown {
                let (_, gap_end, above) = self
                    .tree
                    .highest_gap_at(low, high, length)
                    .ok_or(Errno::ENOMEM)?;
                let mut gap = gap_end - info.length;
                gap -= gap.wrapping_sub(info.align_offset) & info.align_mask;
                // A grows-down region right above wants its guard gap. (The
                // search hands back the region above the gap: the first one
                // ending above `gap_end`, i.e. `find_vma(gap_end)`.)
                if let Some(next) = above.map(|a| self.vma_at(a)) {
                    if next.flags().intersects(VmFlags::STARTGAP) {
                        let sg = next.start_gap(p.stack_guard_gap);
                        if sg < gap_end {
                            high = sg;
                            continue;
                        }
                    }
                }
                return Ok((gap, Placed::Free(above)));
            } else {
                let (gap_start, _, above) = self
                    .tree
                    .lowest_gap_at(low, high, length)
                    .ok_or(Errno::ENOMEM)?;
                let mut gap = gap_start + info.start_gap;
                gap += info.align_offset.wrapping_sub(gap) & info.align_mask;
                // `find_vma(gap_start)`, as above.
                if let Some(next) = above.map(|a| self.vma_at(a)) {
                    if next.flags().intersects(VmFlags::STARTGAP)
                        && next.start_gap(p.stack_guard_gap) < gap + length - 1
                    {
                        low = next.end();
                        continue;
                    }
                }
                return Ok((gap, Placed::Free(above)));
            }
        }
    }
}

/// `stack_guard_placement`: shadow stacks keep a page below them.
fn start_gap_for(vm_flags: VmFlags) -> u64 {
    if vm_flags.contains(VmFlags::SHADOW_STACK) {
        PAGE_SIZE
    } else {
        0
    }
}

#[allow(dead_code)]
const _: () = assert!(TASK_UNMAPPED_BASE == 0x2aaa_aaaa_b000);
