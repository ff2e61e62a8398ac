//! Reverse mapping (`mm/rmap.c`): from a frame to every page-table entry
//! that maps it.
//!
//! An anonymous page records the `anon_vma` it was created under and its
//! page index; every region whose `anon_vma` chain reaches that `anon_vma`
//! (the region itself, or a child forked from it) may map it, at the address
//! its index falls on. A file page records its inode and index; every region
//! mapping that inode may. Each candidate is checked against the process's
//! page table, so the walk returns exactly the entries that map the frame.

use alloc::vec::Vec;

use crate::pgtable;
use crate::phys::{Frame, FrameFlags};
use crate::system::{Pid, System};
use crate::vma::{AnonVmaId, Vma};

impl System {
    /// Every `(pid, address)` whose page-table entry maps `frame`
    /// (`rmap_walk`). The shared zero page has no reverse map: empty.
    ///
    /// ```
    /// use vmspace::{Params, System};
    /// use vmspace::uapi::*;
    /// let mut sys = System::new(Params::default());
    /// let p = sys.spawn_default();
    /// let a = sys.mmap(p, 0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, u64::MAX, 0).unwrap();
    /// sys.store(p, a, 1, 7).unwrap();
    /// let f = sys.frame_at(p, a).unwrap();
    /// let c = sys.fork(p).unwrap();
    /// assert_eq!(sys.rmap(f), vec![(p, a), (c, a)]);
    /// sys.store(c, a, 1, 8).unwrap();            // copy-on-write in the child
    /// assert_eq!(sys.rmap(f), vec![(p, a)]);
    /// ```
    pub fn rmap(&self, frame: Frame) -> Vec<(Pid, u64)> {
        let phys = &self.kernel.phys;
        if frame == phys.zero_page() || phys.mapcount(frame) == 0 {
            return Vec::new();
        }
        let (owner, index_low) = phys.owner(frame);
        let anon = phys.flags(frame).contains(FrameFlags::ANON);
        let mut out = Vec::new();
        if !anon {
            // rmap_walk_file: the regions the file's interval tree has over
            // the page's offset (a frame keeps the low 32 bits of its index,
            // so every offset with those bits is a candidate).
            let inode = crate::file::InodeId(owner);
            let idx = u64::from(index_low);
            let mut regions = self.file_rmap().mappers(inode, idx, idx);
            regions.extend(self.file_rmap().mappers(inode, 1 << 32, u64::MAX));
            regions.sort_unstable();
            regions.dedup();
            for (pid, start) in regions {
                let Some(p) = self.process(pid) else { continue };
                let Some(v) = p.mm.vma_containing(start) else {
                    continue;
                };
                for addr in addresses_of(&v, index_low) {
                    let e = p.mm.pte(phys, addr);
                    if pgtable::pte_present(e) && pgtable::pte_frame(e) == frame {
                        out.push((pid, addr));
                    }
                }
            }
            out.sort_unstable();
            return out;
        }
        for pid in self.pids() {
            let Some(p) = self.process(pid) else { continue };
            for v in p.mm.vmas() {
                let candidate = if anon {
                    v.attrs
                        .anon_vma
                        .is_some_and(|av| self.kernel.anon_vma_chain_contains(av, AnonVmaId(owner)))
                } else {
                    v.attrs
                        .file
                        .and_then(|f| self.kernel.files.file(f))
                        .is_some_and(|of| of.inode.0 == owner)
                };
                if !candidate {
                    continue;
                }
                for addr in addresses_of(&v, index_low) {
                    let e = p.mm.pte(phys, addr);
                    if pgtable::pte_present(e) && pgtable::pte_frame(e) == frame {
                        out.push((pid, addr));
                    }
                }
            }
        }
        out
    }

    /// Checks that the reverse map finds, for every mapped frame, exactly as
    /// many entries as the frame's map count (slow: for tests).
    pub fn check_rmap(&self) -> Result<(), alloc::string::String> {
        let zero = self.kernel.phys.zero_page();
        for pid in self.pids() {
            let Some(p) = self.process(pid) else { continue };
            let Some(t) = p.mm.mem.tables.as_ref() else {
                continue;
            };
            let mut err = None;
            t.for_each_entry(&self.kernel.phys, |va, e| {
                if err.is_some() || !pgtable::pte_present(e) {
                    return;
                }
                let f = pgtable::pte_frame(e);
                if f == zero || e & pgtable::bits::SPECIAL != 0 {
                    return;
                }
                // `[vdso]` pages are kernel pages inserted into a special
                // mapping: neither anonymous nor file-backed, so no reverse
                // map reaches them (as in Linux).
                if p.mm.vma_containing(va).is_some_and(|v| p.mm.is_special_mapping(&v)) {
                    return;
                }
                let found = self.rmap(f);
                if !found.contains(&(pid, va)) || found.len() as u32 != self.kernel.phys.mapcount(f) {
                    err = Some(alloc::format!(
                        "rmap of frame {} (mapped at {va:#x} in {pid}) finds {found:?}, map count {}",
                        f.number(),
                        self.kernel.phys.mapcount(f)
                    ));
                }
            });
            if let Some(e) = err {
                return Err(e);
            }
        }
        Ok(())
    }

    /// The frame mapped at `addr` in `pid`, if any (the zero page included).
    pub fn frame_at(&self, pid: Pid, addr: u64) -> Option<Frame> {
        let p = self.process(pid)?;
        let e = p.mm.pte(&self.kernel.phys, addr & !0xfff);
        pgtable::pte_present(e).then(|| pgtable::pte_frame(e))
    }
}

/// `vma_address`: where a page whose index has these low 32 bits may fall
/// in `v`. The frame keeps only the low 32 bits of its index, so a region
/// of more than 2^32 pages (16 TiB, possible with `MAP_NORESERVE`) has
/// several candidates; the caller checks each against the page table.
fn addresses_of(v: &Vma, index_low: u32) -> Vec<u64> {
    let first = v.attrs.pgoff;
    let end = first.saturating_add(v.pages());
    let mut out = Vec::new();
    let mut hi = Some(first & !0xffff_ffff);
    while let Some(h) = hi {
        let index = h | index_low as u64;
        if index >= end {
            break;
        }
        if index >= first {
            out.push(v.start() + ((index - first) << 12));
        }
        hi = h.checked_add(1 << 32);
    }
    out
}
