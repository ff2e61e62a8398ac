//! The CPU's LRU batches (`cpu_fbatches` in mm/swap.c, `mlock_fbatch` in
//! mm/mlock.c) and the page flags they move: `PG_lru`, `PG_active`,
//! `PG_referenced`, `PG_unevictable`, `PG_mlocked`.
//!
//! Linux does not put a page on (or move it between) its LRU lists at once:
//! the page joins a per-CPU batch of up to [`BATCH_SIZE`] pages, holding a
//! reference, and the whole batch moves when it is full or when something
//! drains it (`lru_add_drain`: populating, munmap, zapping, `MADV_COLD`,
//! mlock, exit...). Until then the page keeps its old flags. That is
//! visible: `smaps`' `Referenced` depends on whether a page was active when
//! it was touched again, `MADV_COLD` skips pages not yet on a list, a
//! write fault may copy a page only a batch still holds, and a page mlocked
//! a moment ago is not yet unevictable.
//!
//! The engine models one CPU (the runner pins the real process to one).
//! Batches hold real references (`folio_get`), dropped when they move; a
//! page freed meanwhile survives until then, as in Linux. When memory runs
//! out, the allocator drains the batches and tries again.
//!
//! Invariants:
//! - a page waiting in the add batch or the mlock batch as new has no
//!   [`LRU`](FrameFlags::LRU) flag; every other user page that is not being
//!   freed has it (pages imported from a real process start on the lists);
//! - each batch entry holds one reference on its frame.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::phys::{Frame, FrameFlags, PhysMem};

/// `FOLIO_BATCH_SIZE`: a batch moves when it holds this many pages.
pub const BATCH_SIZE: usize = 31;

/// What the mlock batch does with a page when it drains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MlockOp {
    /// `mlock_folio`: a mapped page became mlocked.
    Lock,
    /// `mlock_new_folio`: a new page of a locked region (not on a list).
    LockNew,
    /// `munlock_folio`: a locked region let go of the page.
    Unlock,
}

/// The CPU's batches.
#[derive(Clone, Debug, Default)]
pub struct CpuBatches {
    /// `lru_add`: new pages on their way to a list.
    add: Vec<Frame>,
    /// `lru_activate`: pages to move to the active list.
    activate: Vec<Frame>,
    /// `lru_deactivate`: active pages to move to the inactive list.
    deactivate: Vec<Frame>,
    /// `lru_lazyfree`: anonymous pages to make lazily freeable.
    lazyfree: Vec<Frame>,
    /// `mlock_fbatch`.
    mlock: Vec<(Frame, MlockOp)>,
    /// `folio->mlock_count` of unevictable pages (absent: zero).
    mlock_count: BTreeMap<Frame, u32>,
}

impl CpuBatches {
    /// Is any batch holding pages?
    pub fn is_empty(&self) -> bool {
        self.add.is_empty()
            && self.activate.is_empty()
            && self.deactivate.is_empty()
            && self.lazyfree.is_empty()
            && self.mlock.is_empty()
    }

    /// Every frame a batch entry holds a reference on (once per entry).
    pub fn held(&self) -> impl Iterator<Item = Frame> + '_ {
        self.add
            .iter()
            .chain(&self.activate)
            .chain(&self.deactivate)
            .chain(&self.lazyfree)
            .copied()
            .chain(self.mlock.iter().map(|&(f, _)| f))
    }
}

impl PhysMem {
    fn set(&mut self, f: Frame, on: FrameFlags) {
        let fl = self.flags(f);
        self.set_flags(f, fl | on);
    }

    fn clear(&mut self, f: Frame, off: FrameFlags) {
        let fl = self.flags(f);
        self.set_flags(f, fl - off);
    }

    /// `folio_test_clear_lru`.
    fn test_clear_lru(&mut self, f: Frame) -> bool {
        let on = self.flags(f).contains(FrameFlags::LRU);
        self.clear(f, FrameFlags::LRU);
        on
    }

    /// `folio_add_lru`: a new page joins the add batch.
    pub fn lru_add(&mut self, f: Frame) {
        self.get(f);
        self.lru.add.push(f);
        if self.lru.add.len() >= BATCH_SIZE {
            self.move_add();
        }
    }

    /// A page that is already on the lists (imported from a real process).
    pub fn lru_settled(&mut self, f: Frame) {
        self.set(f, FrameFlags::LRU);
    }

    /// A page that is already mlocked and on the unevictable list
    /// (imported from a real process's locked region).
    pub fn settle_mlocked(&mut self, f: Frame) {
        self.set(
            f,
            FrameFlags::MLOCKED | FrameFlags::UNEVICTABLE | FrameFlags::LRU,
        );
        *self.lru.mlock_count.entry(f).or_insert(0) += 1;
    }

    /// `folio_mark_accessed`: an unreferenced page becomes referenced; a
    /// referenced inactive page is queued for activation (or, still waiting
    /// in the add batch, made active there) and loses the referenced bit;
    /// active and unevictable pages keep what they have.
    pub fn mark_accessed(&mut self, f: Frame) {
        let fl = self.flags(f);
        if !fl.contains(FrameFlags::REFERENCED) {
            self.set(f, FrameFlags::REFERENCED);
        } else if fl.contains(FrameFlags::UNEVICTABLE) || fl.contains(FrameFlags::ACTIVE) {
        } else {
            if fl.contains(FrameFlags::LRU) {
                self.get(f);
                self.lru.activate.push(f);
                if self.lru.activate.len() >= BATCH_SIZE {
                    self.move_batch(Batch::Activate);
                }
            } else if self.lru.add.contains(&f) {
                // __lru_cache_activate_folio: only the add batch is searched.
                self.set(f, FrameFlags::ACTIVE);
            }
            self.clear(f, FrameFlags::REFERENCED);
        }
    }

    /// `folio_deactivate` (`MADV_COLD`): an active page on a list is queued
    /// for the inactive list.
    pub fn deactivate(&mut self, f: Frame) {
        let fl = self.flags(f);
        if fl.contains(FrameFlags::UNEVICTABLE)
            || !fl.contains(FrameFlags::LRU)
            || !fl.contains(FrameFlags::ACTIVE)
        {
            return;
        }
        self.get(f);
        self.lru.deactivate.push(f);
        if self.lru.deactivate.len() >= BATCH_SIZE {
            self.move_batch(Batch::Deactivate);
        }
    }

    /// `folio_mark_lazyfree` (`MADV_FREE`): a swap-backed anonymous page on
    /// a list is queued to become lazily freeable.
    pub fn mark_lazyfree(&mut self, f: Frame) {
        let fl = self.flags(f);
        if !fl.contains(FrameFlags::ANON | FrameFlags::SWAPBACKED | FrameFlags::LRU)
            || fl.contains(FrameFlags::UNEVICTABLE)
        {
            return;
        }
        self.get(f);
        self.lru.lazyfree.push(f);
        if self.lru.lazyfree.len() >= BATCH_SIZE {
            self.move_batch(Batch::Lazyfree);
        }
    }

    /// `mlock_folio`: a mapped page becomes mlocked; it turns unevictable
    /// when the mlock batch drains.
    pub fn mlock_folio(&mut self, f: Frame) {
        self.set(f, FrameFlags::MLOCKED);
        self.push_mlock(f, MlockOp::Lock);
    }

    /// `mlock_new_folio`: a new page of a locked region goes to the mlock
    /// batch instead of the add batch.
    pub fn mlock_new_folio(&mut self, f: Frame) {
        self.set(f, FrameFlags::MLOCKED);
        self.push_mlock(f, MlockOp::LockNew);
    }

    /// `munlock_folio`: a locked region stops mapping (or locking) the page;
    /// whether it stays mlocked is decided when the batch drains.
    pub fn munlock_folio(&mut self, f: Frame) {
        self.push_mlock(f, MlockOp::Unlock);
    }

    /// `folio_test_unevictable`.
    pub fn is_unevictable(&self, f: Frame) -> bool {
        self.flags(f).contains(FrameFlags::UNEVICTABLE)
    }

    /// Is the page off the lists (`!folio_test_lru`)?
    pub fn off_lru(&self, f: Frame) -> bool {
        !self.flags(f).contains(FrameFlags::LRU)
    }

    fn push_mlock(&mut self, f: Frame, op: MlockOp) {
        self.get(f);
        self.lru.mlock.push((f, op));
        if self.lru.mlock.len() >= BATCH_SIZE {
            self.move_mlock();
        }
    }

    /// `lru_add_drain`: every batch moves, the mlock batch last.
    pub fn lru_add_drain(&mut self) {
        self.move_add();
        self.move_batch(Batch::Deactivate);
        self.move_batch(Batch::Lazyfree);
        self.move_batch(Batch::Activate);
        self.move_mlock();
    }

    /// `lru_add`: the pages reach their lists; mlocked ones the
    /// unevictable list.
    fn move_add(&mut self) {
        for f in core::mem::take(&mut self.lru.add) {
            self.clear(f, FrameFlags::UNEVICTABLE);
            if self.flags(f).contains(FrameFlags::MLOCKED) {
                self.clear(f, FrameFlags::ACTIVE);
                self.set(f, FrameFlags::UNEVICTABLE);
                self.lru.mlock_count.remove(&f);
            }
            self.set(f, FrameFlags::LRU);
            self.put(f);
        }
    }

    fn move_batch(&mut self, which: Batch) {
        let frames = core::mem::take(match which {
            Batch::Activate => &mut self.lru.activate,
            Batch::Deactivate => &mut self.lru.deactivate,
            Batch::Lazyfree => &mut self.lru.lazyfree,
        });
        for f in frames {
            // A page another batch took off its list meanwhile is skipped.
            if self.test_clear_lru(f) {
                let fl = self.flags(f);
                match which {
                    Batch::Activate => {
                        if !fl.intersects(FrameFlags::ACTIVE | FrameFlags::UNEVICTABLE) {
                            self.set(f, FrameFlags::ACTIVE);
                        }
                    }
                    Batch::Deactivate => {
                        if fl.contains(FrameFlags::ACTIVE) && !fl.contains(FrameFlags::UNEVICTABLE)
                        {
                            self.clear(f, FrameFlags::ACTIVE | FrameFlags::REFERENCED);
                        }
                    }
                    Batch::Lazyfree => {
                        if fl.contains(FrameFlags::ANON | FrameFlags::SWAPBACKED)
                            && !fl.contains(FrameFlags::UNEVICTABLE)
                        {
                            self.clear(
                                f,
                                FrameFlags::ACTIVE
                                    | FrameFlags::REFERENCED
                                    | FrameFlags::SWAPBACKED,
                            );
                        }
                    }
                }
                self.set(f, FrameFlags::LRU);
            }
            self.put(f);
        }
    }

    /// `mlock_folio_batch`.
    fn move_mlock(&mut self) {
        for (f, op) in core::mem::take(&mut self.lru.mlock) {
            match op {
                MlockOp::Lock => self.mlock_on_lru(f),
                MlockOp::LockNew => {
                    if self.flags(f).contains(FrameFlags::MLOCKED) {
                        self.set(f, FrameFlags::UNEVICTABLE);
                        self.lru.mlock_count.insert(f, 1);
                    }
                    self.set(f, FrameFlags::LRU);
                }
                MlockOp::Unlock => self.munlock_on_lru(f),
            }
            self.put(f);
        }
    }

    /// `__mlock_folio`.
    fn mlock_on_lru(&mut self, f: Frame) {
        if !self.test_clear_lru(f) {
            return;
        }
        let fl = self.flags(f);
        if !fl.contains(FrameFlags::MLOCKED) {
            self.clear(f, FrameFlags::UNEVICTABLE);
        } else if fl.contains(FrameFlags::UNEVICTABLE) {
            *self.lru.mlock_count.entry(f).or_insert(0) += 1;
        } else {
            self.clear(f, FrameFlags::ACTIVE);
            self.set(f, FrameFlags::UNEVICTABLE);
            self.lru.mlock_count.insert(f, 1);
        }
        self.set(f, FrameFlags::LRU);
    }

    /// `__munlock_folio`: the last lock gone (as far as `mlock_count`
    /// knows), the page is mlocked no more and, on a list, evictable again.
    fn munlock_on_lru(&mut self, f: Frame) {
        let isolated = self.test_clear_lru(f);
        if isolated && self.is_unevictable(f) {
            let count = self.lru.mlock_count.entry(f).or_insert(0);
            *count = count.saturating_sub(1);
            if *count > 0 {
                self.set(f, FrameFlags::LRU);
                return;
            }
        }
        self.clear(f, FrameFlags::MLOCKED);
        if isolated && self.is_unevictable(f) {
            self.clear(f, FrameFlags::UNEVICTABLE);
            self.lru.mlock_count.remove(&f);
        }
        if isolated {
            self.set(f, FrameFlags::LRU);
        }
    }

    /// Forgets a freed frame's `mlock_count`.
    pub(crate) fn lru_forget(&mut self, f: Frame) {
        if !self.lru.mlock_count.is_empty() {
            self.lru.mlock_count.remove(&f);
        }
    }
}

#[derive(Clone, Copy)]
enum Batch {
    Activate,
    Deactivate,
    Lazyfree,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(m: &mut PhysMem) -> Frame {
        let f = m.alloc().unwrap();
        m.set_flags(f, FrameFlags::ANON | FrameFlags::SWAPBACKED);
        m.lru_add(f);
        f
    }

    #[test]
    fn second_touch_activates_only_when_the_batch_moves() {
        let mut m = PhysMem::new(64 * 4096);
        let f = page(&mut m);
        m.lru_add_drain();
        m.mark_accessed(f);
        assert!(m.flags(f).contains(FrameFlags::REFERENCED));
        m.mark_accessed(f);
        // Queued: not active yet, no longer referenced.
        assert!(!m
            .flags(f)
            .intersects(FrameFlags::ACTIVE | FrameFlags::REFERENCED));
        m.mark_accessed(f);
        m.mark_accessed(f);
        // Still inactive, so the second touch queued it again.
        assert!(!m.flags(f).contains(FrameFlags::REFERENCED));
        assert_eq!(m.refcount(f), 3);
        m.lru_add_drain();
        assert!(m.flags(f).contains(FrameFlags::ACTIVE));
        assert_eq!(m.refcount(f), 1);
    }

    #[test]
    fn a_page_still_in_the_add_batch_turns_active_at_once() {
        let mut m = PhysMem::new(64 * 4096);
        let f = page(&mut m);
        m.mark_accessed(f);
        m.mark_accessed(f);
        assert!(m.flags(f).contains(FrameFlags::ACTIVE));
        assert!(m.off_lru(f));
        m.lru_add_drain();
        assert!(!m.off_lru(f));
    }

    #[test]
    fn a_full_batch_moves_by_itself() {
        let mut m = PhysMem::new(64 * 4096);
        let pages: Vec<Frame> = (0..BATCH_SIZE).map(|_| page(&mut m)).collect();
        assert!(pages.iter().all(|&f| !m.off_lru(f)));
        assert!(m.lru.is_empty());
    }

    #[test]
    fn mlocked_pages_are_unevictable_after_the_drain() {
        let mut m = PhysMem::new(64 * 4096);
        let f = m.alloc().unwrap();
        m.mlock_new_folio(f);
        assert!(!m.is_unevictable(f));
        m.lru_add_drain();
        assert!(m.is_unevictable(f));
        m.munlock_folio(f);
        m.lru_add_drain();
        assert!(!m.is_unevictable(f));
        assert!(!m.flags(f).contains(FrameFlags::MLOCKED));
    }

    #[test]
    fn a_freed_page_lives_until_its_batch_moves() {
        let mut m = PhysMem::new(64 * 4096);
        let f = page(&mut m);
        let used = m.used_frames();
        m.put(f);
        assert_eq!(m.used_frames(), used);
        m.lru_add_drain();
        assert_eq!(m.used_frames(), used - 1);
    }

    #[test]
    fn running_out_drains_the_batches() {
        let mut m = PhysMem::new(8 * 4096);
        let mut got = Vec::new();
        while let Some(f) = m.alloc() {
            m.lru_add(f);
            m.put(f);
            got.push(f);
            if got.len() > 32 {
                break;
            }
        }
        // Every page was freed by its owner: the batch was the only holder,
        // and allocation kept succeeding by draining it.
        assert!(got.len() > 8);
    }
}
