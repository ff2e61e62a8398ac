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

impl AddressSpace {
    /// `zap_pte_range` over `[start, end)`: clears every entry, dropping the
    /// pages' map counts and references and the resident-set counters.
    pub(crate) fn zap_range(&mut self, k: &mut Kernel, start: u64, end: u64) {
        let Some(tables) = self.mem.tables.take() else {
            return;
        };
        let zero = k.phys.zero_page();
        let mut freed = (0u64, 0u64, 0u64);
        tables.update_range(&mut k.phys, start, end, |phys, _va, e| {
            if pgtable::pte_present(e) {
                let f = pgtable::pte_frame(e);
                if !(e & bits::SPECIAL != 0 && f == zero) {
                    let fl = phys.flags(f);
                    if fl.contains(FrameFlags::ANON) {
                        freed.0 += 1;
                    } else if fl.contains(FrameFlags::SWAPBACKED) {
                        freed.2 += 1;
                    } else {
                        freed.1 += 1;
                    }
                    if e & bits::DIRTY != 0 && !fl.contains(FrameFlags::ANON) {
                        phys.set_flags(f, fl | FrameFlags::DIRTY);
                    }
                    phys.add_mapcount(f, -1);
                    phys.put(f);
                }
            }
            0
        });
        self.mem.tables = Some(tables);
        self.mem.rss_anon = self.mem.rss_anon.saturating_sub(freed.0);
        self.mem.rss_file = self.mem.rss_file.saturating_sub(freed.1);
        self.mem.rss_shmem = self.mem.rss_shmem.saturating_sub(freed.2);
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
            self.zap_range(k, v.start(), v.end());
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
            let protnone = !pgtable::pte_present(e) && e & bits::GLOBAL != 0;
            if !pgtable::pte_present(e) && !protnone {
                return e;
            }
            // pte_modify: keep the frame and the A/D/special/soft-dirty bits.
            let kept = e
                & (bits::ADDR_MASK
                    | bits::ACCESSED
                    | bits::DIRTY
                    | bits::SPECIAL
                    | bits::SOFT_DIRTY);
            let mut n = kept | prot;
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

    /// The page side of `MADV_FREE` (mark exclusive anonymous pages lazily
    /// freeable: clean, old, no longer swap-backed), `MADV_COLD` and
    /// `MADV_PAGEOUT` (pages this process alone maps lose their accessed
    /// bit; with no swap nothing is written out).
    pub(crate) fn advise_pages(&mut self, k: &mut Kernel, start: u64, end: u64, lazyfree: bool) {
        let Some(tables) = self.mem.tables.take() else {
            return;
        };
        let zero = k.phys.zero_page();
        tables.update_range(&mut k.phys, start, end, |phys, _va, e| {
            if !pgtable::pte_present(e) {
                return e;
            }
            let f = pgtable::pte_frame(e);
            if e & bits::SPECIAL != 0 && f == zero || phys.mapcount(f) != 1 {
                return e;
            }
            let fl = phys.flags(f);
            if lazyfree {
                if !fl.contains(FrameFlags::ANON) {
                    return e;
                }
                phys.set_flags(
                    f,
                    (fl - FrameFlags::DIRTY - FrameFlags::REFERENCED - FrameFlags::SWAPBACKED)
                        | FrameFlags::LAZYFREE,
                );
                return e & !(bits::ACCESSED | bits::DIRTY);
            }
            phys.set_flags(f, fl - FrameFlags::REFERENCED);
            e & !bits::ACCESSED
        });
        self.mem.tables = Some(tables);
    }

    /// `move_page_tables`: moves the entries of `[old, old + len)` to `new`.
    pub(crate) fn move_pages(&mut self, k: &mut Kernel, old: u64, new: u64, len: u64) {
        let Some(mut tables) = self.mem.tables.take() else {
            return;
        };
        let mut moved = alloc::vec::Vec::new();
        tables.update_range(&mut k.phys, old, old + len, |_, va, e| {
            moved.push((va, e));
            0
        });
        for (va, e) in moved {
            if let Ok(s) = tables.slot_alloc(&mut k.phys, va - old + new) {
                pgtable::write(&mut k.phys, s, e);
            }
        }
        self.mem.tables = Some(tables);
    }
}
