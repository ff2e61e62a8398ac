//! What region calls do to pages and page tables: zapping on unmap and
//! `MADV_DONTNEED` (`zap_pte_range`), freeing page tables (`free_pgtables`),
//! moving entries on `mremap` (`move_page_tables`), changing protection on
//! `mprotect` (`change_protection`).

use super::AddressSpace;
use crate::flags::VmFlags;
use crate::pgtable::{self, bits, page_prot};
use crate::phys::FrameFlags;
use crate::system::Kernel;
use crate::vma::Vma;

const PMD_SIZE: u64 = 1 << 21;

/// What [`AddressSpace::advise_pages`] does to each page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PageAdvice {
    /// `MADV_FREE`.
    Free,
    /// `MADV_COLD`.
    Cold,
    /// `MADV_PAGEOUT`.
    Pageout,
}

impl AddressSpace {
    /// `zap_pte_range` over `[start, end)` of `vma` (which may already be
    /// out of the tree): clears every entry, dropping the pages' map counts
    /// and references and the resident-set counters.
    pub(crate) fn zap_range(&mut self, k: &mut Kernel, vma: &Vma, start: u64, end: u64) {
        self.zap_range_if(k, vma, start, end, |_, _| true);
    }

    /// [`zap_range`](Self::zap_range) for the entries whose frame `keep`
    /// selects (others stay mapped).
    pub(crate) fn zap_range_if(
        &mut self,
        k: &mut Kernel,
        vma: &Vma,
        start: u64,
        end: u64,
        select: impl Fn(&crate::phys::PhysMem, crate::phys::Frame) -> bool,
    ) {
        let Some(tables) = self.mem.tables.take() else {
            return;
        };
        let zero = k.phys.zero_page();
        // Regions without recency (MADV_SEQUENTIAL/RANDOM) are left out of
        // zap's folio_mark_accessed of young file pages.
        let recency = !vma
            .flags()
            .intersects(VmFlags::SEQ_READ | VmFlags::RAND_READ);
        // Removing a page from a locked region munlocks it (munlock_vma_folio).
        let locked = vma.flags().mlocks_pages();
        let phys = &mut k.phys;
        // zap_pte_range counts per page table and adds each table's totals to
        // the resident-set counters at once (add_mm_rss_vec).
        let mut batches: alloc::vec::Vec<[i64; 3]> = alloc::vec::Vec::new();
        let mut table = u64::MAX;
        tables.update_range(phys, start, end, |phys, va, e| {
            if pgtable::pte_present(e) {
                let f = pgtable::pte_frame(e);
                if !select(phys, f) {
                    return e;
                }
                let young_file = e & (bits::ACCESSED | bits::SPECIAL) == bits::ACCESSED
                    && !phys.flags(f).contains(FrameFlags::ANON)
                    && recency;
                if young_file {
                    phys.mark_accessed(f);
                }
                if !(e & bits::SPECIAL != 0 && f == zero) {
                    if va >> 21 != table {
                        table = va >> 21;
                        batches.push([0; 3]);
                    }
                    let fl = phys.flags(f);
                    let slot = if fl.contains(FrameFlags::ANON) {
                        0
                    } else if fl.contains(FrameFlags::SWAPBACKED) {
                        2
                    } else {
                        1
                    };
                    if let Some(b) = batches.last_mut() {
                        b[slot] -= 1;
                    }
                    if e & bits::DIRTY != 0 && !fl.contains(FrameFlags::ANON) {
                        phys.set_flags(f, fl | FrameFlags::DIRTY);
                    }
                    phys.add_mapcount(f, -1);
                    if locked {
                        phys.munlock_folio(f);
                    }
                    phys.put(f);
                }
            }
            0
        });
        self.mem.tables = Some(tables);
        for b in batches {
            if b[0] != 0 {
                self.mem.rss_anon.add(b[0]);
            }
            if b[1] != 0 {
                self.mem.rss_file.add(b[1]);
            }
            if b[2] != 0 {
                self.mem.rss_shmem.add(b[2]);
            }
        }
    }

    /// `unmap_region` for regions just taken out of the tree: samples
    /// `hiwater_rss`, zaps their pages and frees the page tables that only
    /// they used (`free_pgtables`, with the neighbours now left as floor and
    /// ceiling).
    pub(crate) fn unmap_pages(&mut self, k: &mut Kernel, removed: &[Vma]) {
        if removed.is_empty() || self.mem.tables.is_none() {
            return;
        }
        self.mem.update_hiwater();
        for v in removed {
            self.zap_range(k, v, v.start(), v.end());
        }
        let first = removed[0].start();
        let last = removed[removed.len() - 1].end();
        let floor = self.vma_before(first).map_or(0, |p| p.end());
        let ceiling = self.vma_from(last).map_or(0, |n| n.start());
        let Some(mut tables) = self.mem.tables.take() else {
            return;
        };
        // Nearby regions (within a PMD) are freed in one call.
        let mut i = 0;
        while i < removed.len() {
            let start = removed[i].start();
            let mut j = i;
            while j + 1 < removed.len() && removed[j + 1].start() <= removed[j].end() + PMD_SIZE {
                j += 1;
            }
            let next_start = removed.get(j + 1).map_or(ceiling, |n| n.start());
            tables.free_range(&mut k.phys, start, removed[j].end(), floor, next_start);
            i = j + 1;
        }
        self.mem.tables = Some(tables);
    }

    /// `change_protection` for `[start, end)` of a region now carrying
    /// `flags`: present entries get the new protection, keeping their
    /// accessed and dirty bits. Private anonymous pages this process alone
    /// maps, and dirty shared pages, become writable at once when the
    /// region is writable (`can_change_pte_writable`).
    pub(crate) fn change_protection(
        &mut self,
        k: &mut Kernel,
        start: u64,
        end: u64,
        flags: VmFlags,
    ) {
        let Some(tables) = self.mem.tables.take() else {
            return;
        };
        let prot = page_prot(flags);
        let zero = k.phys.zero_page();
        let try_writable = flags.contains(VmFlags::WRITE) && !flags.contains(VmFlags::SHARED);
        tables.update_range(&mut k.phys, start, end, |phys, _va, e| {
            if !pgtable::pte_present(e) {
                return e;
            }
            // pte_modify: keep the frame and the A/D/special/soft-dirty bits.
            let kept = e
                & (bits::ADDR_MASK
                    | bits::ACCESSED
                    | bits::DIRTY
                    | bits::SPECIAL
                    | bits::SOFT_DIRTY);
            // The new protection's own accessed bit (protection_map has
            // it) is masked out: only the entry's history counts.
            let mut n = kept | (prot & !bits::ACCESSED);
            if prot & bits::PRESENT != 0 && try_writable && n & bits::RW == 0 {
                let f = pgtable::pte_frame(e);
                let normal = !(e & bits::SPECIAL != 0 && f == zero);
                if normal
                    && phys
                        .flags(f)
                        .contains(FrameFlags::ANON | FrameFlags::EXCLUSIVE)
                {
                    n |= bits::RW;
                }
            }
            n
        });
        self.mem.tables = Some(tables);
    }

    /// The page side of `MADV_FREE`, `MADV_COLD` and `MADV_PAGEOUT`
    /// (`madvise_free_pte_range`, `madvise_cold_or_pageout_pte_range`).
    ///
    /// - Free: a dirty page is cleaned if this process alone maps it (and
    ///   skipped otherwise); its entry turns old and clean, and the page is
    ///   queued to become lazily freeable (no longer swap-backed).
    /// - Cold: a page on a list that only this process maps loses its
    ///   accessed bit and referenced flag and is queued for deactivation.
    /// - Pageout: the same pages are isolated for reclaim, which cannot
    ///   write anything out without swap: they lose the accessed bit and go
    ///   back to the active list (unevictable ones just go back).
    pub(crate) fn advise_pages(
        &mut self,
        k: &mut Kernel,
        start: u64,
        end: u64,
        advice: PageAdvice,
    ) {
        let Some(tables) = self.mem.tables.take() else {
            return;
        };
        tables.update_range(&mut k.phys, start, end, |phys, _va, e| {
            if !pgtable::pte_present(e) {
                return e;
            }
            let f = pgtable::pte_frame(e);
            // vm_normal_folio: special entries (the zero page) have none.
            if e & bits::SPECIAL != 0 {
                return e;
            }
            let fl = phys.flags(f);
            if advice == PageAdvice::Free {
                if fl.contains(FrameFlags::DIRTY) {
                    if phys.mapcount(f) != 1 {
                        return e;
                    }
                    phys.set_flags(f, fl - FrameFlags::DIRTY);
                }
                phys.mark_lazyfree(f);
                return e & !(bits::ACCESSED | bits::DIRTY);
            }
            if phys.off_lru(f) || phys.mapcount(f) != 1 {
                return e;
            }
            phys.set_flags(f, fl - FrameFlags::REFERENCED);
            if advice == PageAdvice::Cold {
                phys.deactivate(f);
            } else if !phys.is_unevictable(f) {
                // shrink_folio_list: no swap to write to, so activate_locked.
                let fl = phys.flags(f);
                phys.set_flags(f, fl | FrameFlags::ACTIVE);
            }
            e & !bits::ACCESSED
        });
        self.mem.tables = Some(tables);
    }

    /// `move_page_tables`: moves the entries of `[old, old + len)` to `new`,
    /// extent by extent (an extent ends at a 2 MiB boundary of either side).
    /// An extent whose source has a page table gets one at the destination
    /// even when it maps nothing; a whole aligned 2 MiB extent moves its
    /// table instead of copying entries (`move_normal_pmd`).
    pub(crate) fn move_pages(&mut self, k: &mut Kernel, old: u64, new: u64, len: u64) {
        let Some(mut tables) = self.mem.tables.take() else {
            return;
        };
        const PMD: u64 = 1 << 21;
        let mut done = 0;
        while done < len {
            let (o, n) = (old + done, new + done);
            let extent = (PMD - (o & (PMD - 1)))
                .min(PMD - (n & (PMD - 1)))
                .min(len - done);
            if tables.has_pte_table(&mut k.phys, o) {
                let moved_whole =
                    extent == PMD && tables.move_pte_table(&mut k.phys, o, n).unwrap_or(false);
                if !moved_whole && tables.ensure_pte_table(&mut k.phys, n).is_ok() {
                    let mut entries = alloc::vec::Vec::new();
                    tables.update_range(&mut k.phys, o, o + extent, |_, va, e| {
                        entries.push((va, e));
                        0
                    });
                    for (va, e) in entries {
                        if let Ok(s) = tables.slot_alloc(&mut k.phys, va - old + new) {
                            pgtable::write(&mut k.phys, s, e);
                        }
                    }
                }
            }
            done += extent;
        }
        self.mem.tables = Some(tables);
    }
}
