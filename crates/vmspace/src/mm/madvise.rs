//! `madvise` (`mm/madvise.c`): the walk over a range that may have holes,
//! the advice that changes region flags, and the argument and region
//! checks of the advice that acts on pages (the pages themselves belong to
//! the page-fault layer).

use super::pages::PageAdvice;
use super::AddressSpace;
use crate::addr::page_align;
use crate::errno::{Errno, SysResult};
use crate::flags::VmFlags;
use crate::system::Kernel;
use crate::uapi::*;
use crate::vma::Vma;

/// `madvise_behavior_valid` for a kernel with KSM and THP but without
/// `CONFIG_MEMORY_FAILURE` (so `MADV_HWPOISON` and `MADV_SOFT_OFFLINE` are
/// unknown advice), as the reference kernel is built.
fn behavior_valid(advice: u64) -> bool {
    matches!(
        advice,
        MADV_NORMAL
            | MADV_RANDOM
            | MADV_SEQUENTIAL
            | MADV_WILLNEED
            | MADV_DONTNEED
            | MADV_FREE
            | MADV_REMOVE
            | MADV_DONTFORK
            | MADV_DOFORK
            | MADV_MERGEABLE
            | MADV_UNMERGEABLE
            | MADV_HUGEPAGE
            | MADV_NOHUGEPAGE
            | MADV_DONTDUMP
            | MADV_DODUMP
            | MADV_WIPEONFORK
            | MADV_KEEPONFORK
            | MADV_COLD
            | MADV_PAGEOUT
            | MADV_POPULATE_READ
            | MADV_POPULATE_WRITE
            | MADV_DONTNEED_LOCKED
            | MADV_COLLAPSE
            | MADV_GUARD_INSTALL
            | MADV_GUARD_REMOVE
    )
}

/// Advice that throws data away (`is_discard`): refused on sealed
/// read-only private anonymous memory.
fn is_discard(advice: u64) -> bool {
    matches!(
        advice,
        MADV_FREE
            | MADV_DONTNEED
            | MADV_DONTNEED_LOCKED
            | MADV_REMOVE
            | MADV_DONTFORK
            | MADV_WIPEONFORK
            | MADV_GUARD_INSTALL
    )
}

/// The argument checks `madvise` makes before it looks at any region: the
/// page range `[start, end)` to advise, `None` for an empty one.
pub(crate) fn madvise_range(start: u64, len_in: u64, advice: u64) -> SysResult<Option<(u64, u64)>> {
    if !behavior_valid(advice) || start & 0xfff != 0 {
        return Err(Errno::EINVAL);
    }
    let len = page_align(len_in);
    if len_in != 0 && len == 0 {
        return Err(Errno::EINVAL);
    }
    let end = start.wrapping_add(len);
    if end < start {
        return Err(Errno::EINVAL);
    }
    Ok((end > start).then_some((start, end)))
}

impl AddressSpace {
    /// `madvise(start, len, advice)`.
    pub fn madvise(
        &mut self,
        k: &mut Kernel,
        start: u64,
        len_in: u64,
        advice: u64,
    ) -> SysResult<u64> {
        let Some((start, end)) = madvise_range(start, len_in, advice)? else {
            return Ok(0);
        };
        if advice == MADV_POPULATE_READ || advice == MADV_POPULATE_WRITE {
            return self.madvise_populate(k, start, end, advice).map(|()| 0);
        }
        // madvise_walk_vmas: visit each mapped part; a hole is reported as
        // ENOMEM only after the rest of the range has been advised.
        let mut unmapped_error = Ok(0);
        let mut start = start;
        let mut vma = self.find_vma(start);
        loop {
            let Some(v) = vma else {
                return Err(Errno::ENOMEM);
            };
            if start < v.start() {
                unmapped_error = Err(Errno::ENOMEM);
                start = v.start();
                if start >= end {
                    break;
                }
            }
            let tmp = v.end().min(end);
            let done = self.madvise_vma(k, v, start, tmp, advice)?;
            start = tmp.max(done.end().min(end));
            if start >= end {
                break;
            }
            vma = self.find_vma(start);
        }
        unmapped_error
    }

    /// `madvise_vma_behavior` for one region's part `[start, end)`.
    fn madvise_vma(
        &mut self,
        k: &mut Kernel,
        vma: Vma,
        start: u64,
        end: u64,
        advice: u64,
    ) -> SysResult<Vma> {
        let f = vma.flags();
        if f.contains(VmFlags::SEALED)
            && is_discard(advice)
            && self.vma_is_anonymous(&vma)
            && !f.contains(VmFlags::WRITE)
        {
            return Err(Errno::EPERM);
        }
        let mut new = f;
        match advice {
            MADV_REMOVE => {
                if f.contains(VmFlags::LOCKED) || vma.attrs.file.is_none() {
                    return Err(Errno::EINVAL);
                }
                if !f.contains(VmFlags::SHARED | VmFlags::MAYWRITE) {
                    return Err(Errno::EACCES);
                }
                return Ok(vma);
            }
            // Anonymous and shmem read-ahead (swap-in) ends by draining the
            // LRU batches; without swap it reads nothing in.
            MADV_WILLNEED => {
                k.lru_add_drain();
                return Ok(vma);
            }
            MADV_COLD | MADV_PAGEOUT => {
                if f.intersects(VmFlags::LOCKED | VmFlags::PFNMAP | VmFlags::HUGETLB) {
                    return Err(Errno::EINVAL);
                }
                // madvise_cold and madvise_pageout drain the LRU batches first.
                k.lru_add_drain();
                let how = if advice == MADV_COLD {
                    PageAdvice::Cold
                } else {
                    PageAdvice::Pageout
                };
                self.advise_pages(k, start, end, how);
                return Ok(vma);
            }
            MADV_DONTNEED | MADV_DONTNEED_LOCKED | MADV_FREE => {
                let mut forbidden = VmFlags::PFNMAP;
                if advice != MADV_DONTNEED_LOCKED {
                    forbidden |= VmFlags::LOCKED;
                }
                if f.intersects(forbidden) {
                    return Err(Errno::EINVAL);
                }
                if advice == MADV_FREE {
                    if !self.vma_is_anonymous(&vma) {
                        return Err(Errno::EINVAL);
                    }
                    // madvise_free_single_vma drains the LRU batches first.
                    k.lru_add_drain();
                    self.mem.update_hiwater();
                    self.advise_pages(k, start, end, PageAdvice::Free);
                } else {
                    self.mem.update_hiwater();
                    self.zap_range(k, &vma, start, end);
                }
                return Ok(vma);
            }
            MADV_COLLAPSE => return Err(Errno::EINVAL),
            MADV_GUARD_INSTALL | MADV_GUARD_REMOVE => {
                let mut disallowed = VmFlags::SPECIAL | VmFlags::HUGETLB;
                if advice == MADV_GUARD_INSTALL {
                    disallowed |= VmFlags::LOCKED;
                }
                if f.intersects(disallowed) {
                    return Err(Errno::EINVAL);
                }
                return Ok(vma);
            }
            MADV_NORMAL => new -= VmFlags::RAND_READ | VmFlags::SEQ_READ,
            MADV_SEQUENTIAL => new = (new - VmFlags::RAND_READ) | VmFlags::SEQ_READ,
            MADV_RANDOM => new = (new - VmFlags::SEQ_READ) | VmFlags::RAND_READ,
            MADV_DONTFORK => new |= VmFlags::DONTCOPY,
            MADV_DOFORK => {
                if f.contains(VmFlags::IO) {
                    return Err(Errno::EINVAL);
                }
                new -= VmFlags::DONTCOPY;
            }
            MADV_WIPEONFORK => {
                if vma.attrs.file.is_some() || f.contains(VmFlags::SHARED) {
                    return Err(Errno::EINVAL);
                }
                new |= VmFlags::WIPEONFORK;
            }
            MADV_KEEPONFORK => {
                if f.contains(VmFlags::DROPPABLE) {
                    return Err(Errno::EINVAL);
                }
                new -= VmFlags::WIPEONFORK;
            }
            MADV_DONTDUMP => new |= VmFlags::DONTDUMP,
            MADV_DODUMP => {
                if f.intersects(VmFlags::SPECIAL) || f.contains(VmFlags::DROPPABLE) {
                    return Err(Errno::EINVAL);
                }
                new -= VmFlags::DONTDUMP;
            }
            MADV_MERGEABLE => {
                let ignore = VmFlags::MERGEABLE
                    | VmFlags::SHARED
                    | VmFlags::MAYSHARE
                    | VmFlags::PFNMAP
                    | VmFlags::IO
                    | VmFlags::DONTEXPAND
                    | VmFlags::HUGETLB
                    | VmFlags::MIXEDMAP
                    | VmFlags::DROPPABLE;
                if !f.intersects(ignore) {
                    new |= VmFlags::MERGEABLE;
                }
            }
            MADV_UNMERGEABLE => new -= VmFlags::MERGEABLE,
            MADV_HUGEPAGE => new = (new - VmFlags::NOHUGEPAGE) | VmFlags::HUGEPAGE,
            MADV_NOHUGEPAGE => new = (new - VmFlags::HUGEPAGE) | VmFlags::NOHUGEPAGE,
            _ => return Err(Errno::EINVAL),
        }
        if new == f {
            return Ok(vma);
        }
        let mut attrs = vma.attrs;
        attrs.flags = new;
        self.modify_range(k, vma, start, end, attrs)
    }

    /// `madvise_populate`: faults the range in region by region, as
    /// get_user_pages walks it, so the pages before a problem stay faulted
    /// in: a hole is `ENOMEM`, a region that is special or lacks the access
    /// (no `FOLL_FORCE` here) `EINVAL`, a page that cannot be faulted in
    /// (past the end of a file) `EFAULT`.
    fn madvise_populate(
        &mut self,
        k: &mut Kernel,
        start: u64,
        end: u64,
        advice: u64,
    ) -> SysResult<()> {
        let (need, access) = if advice == MADV_POPULATE_WRITE {
            (VmFlags::WRITE, crate::fault::Access::Write)
        } else {
            (VmFlags::READ, crate::fault::Access::Read)
        };
        let mut cursor = start;
        let mut result = Ok(());
        while cursor < end {
            let Some(v) = self.vma_containing(cursor) else {
                result = Err(Errno::ENOMEM);
                break;
            };
            let f = v.flags();
            if f.intersects(VmFlags::IO | VmFlags::PFNMAP) || !f.contains(need) {
                result = Err(Errno::EINVAL);
                break;
            }
            let piece_end = v.end().min(end);
            result = self.populate_pages(k, cursor, piece_end, false, Some(access), &mut false);
            if result.is_err() {
                break;
            }
            cursor = piece_end;
        }
        // faultin_page_range drains the LRU batches after its walk, however
        // far it got.
        k.lru_add_drain();
        result
    }
}
