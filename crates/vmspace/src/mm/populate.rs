//! What faulting pages in does to regions (`__mm_populate`,
//! `anon_vma_prepare`).
//!
//! A write fault on private memory allocates an anonymous page, and with it
//! the region's `anon_vma` — borrowed from a neighbour that could have been
//! merged with it when that neighbour's `anon_vma` is its own
//! (`find_mergeable_anon_vma`). Which regions have an `anon_vma` decides
//! later merges, so populating (`mlock`, `MAP_POPULATE`, `MAP_LOCKED`,
//! `mlockall`, `MADV_POPULATE_WRITE`) must record it even before pages are
//! modelled.

use super::AddressSpace;
use crate::addr::PAGE_SIZE;
use crate::errno::{Errno, SysResult};
use crate::fault::{Access, FaultError};
use crate::flags::VmFlags;
use crate::system::Kernel;
use crate::vma::{Vma, VmaAttrs};

impl AddressSpace {
    /// `anon_vma_prepare`: gives `vma` an `anon_vma` if it has none.
    pub(crate) fn anon_vma_prepare(&mut self, k: &mut Kernel, vma: &Vma) -> Vma {
        if vma.attrs.anon_vma.is_some() {
            return *vma;
        }
        let reuse = self.find_mergeable_anon_vma(vma);
        let mut attrs = vma.attrs;
        attrs.anon_vma = Some(reuse.unwrap_or_else(|| k.new_anon_vma()));
        attrs.anon_inherited = false;
        self.set_attrs(vma.start(), attrs);
        Vma::new(vma.start, vma.end, attrs)
    }

    /// `find_mergeable_anon_vma`: the next, then the previous neighbour's
    /// `anon_vma`, if that neighbour could merge with `vma` but for access
    /// flags and its `anon_vma` is not shared with a parent.
    fn find_mergeable_anon_vma(&self, vma: &Vma) -> Option<crate::vma::AnonVmaId> {
        let next = self.vma_from(vma.end()).filter(|n| n.start() == vma.end());
        if let Some(n) = next {
            if anon_vma_compatible(vma, &n) && !n.attrs.anon_inherited {
                if let Some(a) = n.attrs.anon_vma {
                    return Some(a);
                }
            }
        }
        let prev = self
            .vma_before(vma.start())
            .filter(|p| p.end() == vma.start());
        if let Some(p) = prev {
            if anon_vma_compatible(&p, vma) && !p.attrs.anon_inherited {
                return p.attrs.anon_vma;
            }
        }
        None
    }

    /// `__mm_populate` over `[start, end)`: faults every page in, for write
    /// in private writable regions (so they get their own pages and an
    /// `anon_vma`) and for read elsewhere (the zero page for private
    /// anonymous memory). Special and lock-on-fault regions are skipped.
    /// A page that cannot be faulted in (no access at all, past the end of
    /// a file) stops the walk with `EFAULT` unless `ignore_errors`; running
    /// out of memory is `ENOMEM`.
    pub(crate) fn populate(
        &mut self,
        k: &mut Kernel,
        start: u64,
        end: u64,
        ignore_errors: bool,
    ) -> SysResult<()> {
        let mut walked = false;
        let r = self.populate_pages(k, start, end, ignore_errors, None, &mut walked);
        // populate_vma_page_range ends with lru_add_drain once it has
        // walked a region (a lock-on-fault region returns before).
        if walked {
            k.lru_add_drain();
        }
        r
    }

    /// The walk of [`populate`](Self::populate), without its final drain,
    /// the access forced to read or write by `MADV_POPULATE_READ`/`WRITE`
    /// (`faultin_page_range`: lock-on-fault regions are faulted in too, a
    /// special region is `EFAULT`). `walked` records whether a region was
    /// walked at all.
    pub(super) fn populate_pages(
        &mut self,
        k: &mut Kernel,
        start: u64,
        end: u64,
        ignore_errors: bool,
        forced: Option<Access>,
        walked: &mut bool,
    ) -> SysResult<()> {
        let mut cursor = start;
        while cursor < end {
            let Some(v) = self.find_vma_intersection(cursor, end) else {
                return Ok(());
            };
            cursor = v.end();
            let f = v.flags();
            // get_user_pages refuses special regions (MADV_POPULATE_* reports
            // EFAULT); __mm_populate skips them, and lock-on-fault regions,
            // which MADV_POPULATE_* does fault in.
            if f.intersects(VmFlags::IO | VmFlags::PFNMAP) {
                if forced.is_some() && !ignore_errors {
                    return Err(Errno::EFAULT);
                }
                continue;
            }
            if forced.is_none() && f.contains(VmFlags::LOCKONFAULT) {
                continue;
            }
            *walked = true;
            if !f.intersects(VmFlags::ACCESS) {
                if ignore_errors {
                    continue;
                }
                return Err(Errno::EFAULT);
            }
            let access = forced.unwrap_or(
                if f & (VmFlags::WRITE | VmFlags::SHARED) == VmFlags::WRITE {
                    Access::Write
                } else {
                    Access::Read
                },
            );
            let mut page = v.start().max(start) & !(PAGE_SIZE - 1);
            let hi = v.end().min(end);
            while page < hi {
                match self.fault_in(k, page, access) {
                    Ok(()) => {
                        self.mark_accessed(k, page);
                        if access == Access::Write {
                            self.mark_dirty_for_write(k, page);
                        }
                    }
                    Err(FaultError::OutOfMemory) => return Err(Errno::ENOMEM),
                    Err(FaultError::Signal(_)) => {
                        if ignore_errors {
                            break;
                        }
                        return Err(Errno::EFAULT);
                    }
                }
                page += PAGE_SIZE;
            }
        }
        Ok(())
    }
}

/// `anon_vma_compatible`: `a` directly below `b`, same file, offsets that
/// continue, and flags equal but for access bits.
fn anon_vma_compatible(a: &Vma, b: &Vma) -> bool {
    let ignore = VmFlags::ACCESS | VmFlags::SOFTDIRTY;
    let (fa, fb): (&VmaAttrs, &VmaAttrs) = (&a.attrs, &b.attrs);
    a.end() == b.start()
        && fa.file == fb.file
        && ((fa.flags ^ fb.flags) - ignore).is_empty()
        && fb.pgoff == fa.pgoff.wrapping_add(a.pages())
}

impl AddressSpace {
    /// `follow_page_pte` with `FOLL_TOUCH | FOLL_WRITE`: a page reached for
    /// writing through a clean entry is dirtied (a shared page mapped
    /// writable by a read fault is not written yet, but will be).
    fn mark_dirty_for_write(&mut self, k: &mut Kernel, addr: u64) {
        use crate::pgtable::{self, bits};
        let e = self.pte(&k.phys, addr);
        if !pgtable::pte_present(e) || e & (bits::SPECIAL | bits::DIRTY) != 0 {
            return;
        }
        let f = pgtable::pte_frame(e);
        let fl = k.phys.flags(f);
        k.phys.set_flags(f, fl | crate::phys::FrameFlags::DIRTY);
    }

    /// `folio_mark_accessed` on the page mapped at `addr`, as
    /// `get_user_pages` with `FOLL_TOUCH` does: an unreferenced page becomes
    /// referenced; a referenced inactive page is queued for activation
    /// (and loses the referenced bit); unevictable pages only ever gain the
    /// bit (see [`crate::lru`]).
    pub(crate) fn mark_accessed(&mut self, k: &mut Kernel, addr: u64) {
        let e = self.pte(&k.phys, addr);
        if !crate::pgtable::pte_present(e) || e & crate::pgtable::bits::SPECIAL != 0 {
            return;
        }
        k.phys.mark_accessed(crate::pgtable::pte_frame(e));
    }
}
