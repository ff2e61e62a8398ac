//! x86-64 four-level page tables, stored in simulated frames as a kernel
//! stores them (`arch/x86/include/asm/pgtable*.h`).
//!
//! # Design
//!
//! A [`PageTables`] is a PML4 frame. Each level is a frame of 512
//! little-endian 64-bit entries; an entry points at the next level's frame
//! by physical address (bits 12..51) and carries the architectural bits
//! (P, RW, US, A, D, NX) plus Linux's software bits (special, soft-dirty).
//! Only 4 KiB leaves are used.
//!
//! `VmPTE` counts the PUD, PMD and PTE table frames (`mm_pgtables_bytes`;
//! the PML4 itself is not counted, as Linux does not count the PGD).
//! Tables are freed only by [`PageTables::free_range`], which follows
//! `free_pgd_range`: a table goes when the whole span it maps lies between
//! the neighbouring regions (`floor`, `ceiling`), so that `VmPTE` after an
//! `munmap` is what Linux reports.
//!
//! Invariant: every non-empty entry of an upper level points at a frame
//! marked as a page table, owned by this address space.

use crate::phys::{Frame, PhysMem};

/// Entry bits.
pub mod bits {
    /// Present.
    pub const PRESENT: u64 = 1 << 0;
    /// Writable.
    pub const RW: u64 = 1 << 1;
    /// User accessible.
    pub const USER: u64 = 1 << 2;
    /// Accessed: set by the CPU on any access.
    pub const ACCESSED: u64 = 1 << 5;
    /// Dirty: set by the CPU on a write.
    pub const DIRTY: u64 = 1 << 6;
    /// Global; on a non-present entry Linux uses it to mark PROT_NONE.
    pub const GLOBAL: u64 = 1 << 8;
    /// Software bit 1: a special mapping with no `struct page` to count
    /// (`pte_special`, the zero page).
    pub const SPECIAL: u64 = 1 << 9;
    /// Software bit 3: soft-dirty.
    pub const SOFT_DIRTY: u64 = 1 << 11;
    /// No-execute.
    pub const NX: u64 = 1 << 63;
    /// The physical-address field.
    pub const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
    /// Bits of an upper-level (non-leaf) entry: `_PAGE_TABLE`.
    pub const TABLE: u64 = PRESENT | RW | USER | ACCESSED | DIRTY;
}

use bits::*;

/// `vm_get_page_prot`: the leaf protection bits for a region's flags,
/// x86-64's `protection_map`. Private writable memory maps read-only
/// (`PAGE_COPY`) until a write fault breaks the sharing.
///
/// ```
/// use vmspace::pgtable::{page_prot, bits::*};
/// use vmspace::VmFlags;
/// let p = page_prot(VmFlags::READ | VmFlags::WRITE);
/// assert_eq!(p & RW, 0);                                   // copy-on-write
/// assert_ne!(page_prot(VmFlags::READ | VmFlags::WRITE | VmFlags::SHARED) & RW, 0);
/// assert_ne!(page_prot(VmFlags::READ) & NX, 0);
/// ```
pub fn page_prot(flags: crate::VmFlags) -> u64 {
    use crate::VmFlags as F;
    let r = flags.contains(F::READ);
    let w = flags.contains(F::WRITE);
    let x = flags.contains(F::EXEC);
    let s = flags.contains(F::SHARED);
    if !r && !w && !x {
        // PAGE_NONE: not present, PROT_NONE marker.
        return ACCESSED | GLOBAL;
    }
    let mut p = PRESENT | USER | ACCESSED;
    if s && w {
        p |= RW;
    }
    if !x {
        p |= NX;
    }
    p
}

/// One level's geometry.
const SHIFTS: [u32; 4] = [39, 30, 21, 12];

fn index(va: u64, level: usize) -> usize {
    ((va >> SHIFTS[level]) & 511) as usize
}

/// Error: no frame could be had for a page table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfMemory;

/// Where a leaf entry lives: the PTE table frame and the entry's index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    /// The PTE table.
    pub table: Frame,
    /// Entry number 0..512.
    pub index: usize,
}

/// A process's page tables.
#[derive(Clone, Debug)]
pub struct PageTables {
    root: Frame,
    /// PUD + PMD + PTE table frames (`mm_pgtables_bytes` / 4096).
    tables: u64,
}

impl PageTables {
    /// Empty tables: a fresh PML4.
    pub fn new(phys: &mut PhysMem) -> Result<PageTables, OutOfMemory> {
        let root = phys.alloc().ok_or(OutOfMemory)?;
        Ok(PageTables { root, tables: 0 })
    }

    /// The PML4 frame (what CR3 would hold).
    pub fn root(&self) -> Frame {
        self.root
    }

    /// Bytes of page tables below the PML4 (`VmPTE`).
    pub fn table_bytes(&self) -> u64 {
        self.tables * 4096
    }

    /// The leaf slot for `va`, if its tables exist.
    pub fn slot(&self, phys: &PhysMem, va: u64) -> Option<Slot> {
        let mut table = self.root;
        for level in 0..3 {
            let e = phys.read_u64(table, index(va, level) * 8);
            if e & PRESENT == 0 {
                return None;
            }
            table = Frame::containing(e & ADDR_MASK);
        }
        Some(Slot {
            table,
            index: index(va, 3),
        })
    }

    /// The leaf slot for `va`, or where the next one could be: the start of
    /// the next span the missing table would have covered (2 MiB, 1 GiB or
    /// 512 GiB), so that a walk over a huge, sparse range skips it whole.
    pub fn slot_or_next(&self, phys: &PhysMem, va: u64) -> Result<Slot, u64> {
        let mut table = self.root;
        for (level, shift) in SHIFTS.iter().take(3).enumerate() {
            let e = phys.read_u64(table, index(va, level) * 8);
            if e & PRESENT == 0 {
                let span = 1u64 << shift;
                return Err((va & !(span - 1)).saturating_add(span));
            }
            table = Frame::containing(e & ADDR_MASK);
        }
        Ok(Slot {
            table,
            index: index(va, 3),
        })
    }

    /// The leaf slot for `va`, allocating missing tables.
    pub fn slot_alloc(&mut self, phys: &mut PhysMem, va: u64) -> Result<Slot, OutOfMemory> {
        let mut table = self.root;
        for level in 0..3 {
            let off = index(va, level) * 8;
            let e = phys.read_u64(table, off);
            table = if e & PRESENT != 0 {
                Frame::containing(e & ADDR_MASK)
            } else {
                let t = phys.alloc().ok_or(OutOfMemory)?;
                phys.write_u64(table, off, t.phys_addr() | TABLE);
                self.tables += 1;
                t
            };
        }
        Ok(Slot {
            table,
            index: index(va, 3),
        })
    }

    /// The PMD entry's location for `va` (the PMD table and index),
    /// allocating the PUD and PMD tables when `alloc`.
    fn pmd_slot(
        &mut self,
        phys: &mut PhysMem,
        va: u64,
        alloc: bool,
    ) -> Result<Option<Slot>, OutOfMemory> {
        let mut table = self.root;
        for level in 0..2 {
            let off = index(va, level) * 8;
            let e = phys.read_u64(table, off);
            table = if e & PRESENT != 0 {
                Frame::containing(e & ADDR_MASK)
            } else if alloc {
                let t = phys.alloc().ok_or(OutOfMemory)?;
                phys.write_u64(table, off, t.phys_addr() | TABLE);
                self.tables += 1;
                t
            } else {
                return Ok(None);
            };
        }
        Ok(Some(Slot {
            table,
            index: index(va, 2),
        }))
    }

    /// Does a PTE table cover `va`?
    pub fn has_pte_table(&mut self, phys: &mut PhysMem, va: u64) -> bool {
        matches!(self.pmd_slot(phys, va, false), Ok(Some(s)) if read(phys, s) & PRESENT != 0)
    }

    /// Makes sure a PTE table covers `va` (`alloc_new_pmd` + `pte_alloc`).
    pub fn ensure_pte_table(&mut self, phys: &mut PhysMem, va: u64) -> Result<(), OutOfMemory> {
        self.slot_alloc(phys, va).map(|_| ())
    }

    /// `move_normal_pmd`: moves the whole PTE table mapping the 2 MiB at
    /// `old` to `new` (both 2 MiB aligned), if the destination has none.
    /// The destination's upper tables are allocated first, as Linux does.
    pub fn move_pte_table(
        &mut self,
        phys: &mut PhysMem,
        old: u64,
        new: u64,
    ) -> Result<bool, OutOfMemory> {
        let Some(dst) = self.pmd_slot(phys, new, true)? else {
            return Ok(false);
        };
        if read(phys, dst) != 0 {
            return Ok(false);
        }
        let Some(src) = self.pmd_slot(phys, old, false)? else {
            return Ok(false);
        };
        let e = read(phys, src);
        if e & PRESENT == 0 {
            return Ok(false);
        }
        write(phys, src, 0);
        write(phys, dst, e);
        Ok(true)
    }

    /// The leaf entry for `va` (0 when none).
    pub fn get(&self, phys: &PhysMem, va: u64) -> u64 {
        self.slot(phys, va).map_or(0, |s| read(phys, s))
    }

    /// Visits every non-empty leaf entry in `[start, end)` in address order,
    /// letting `f` replace it (return the new value; 0 clears it).
    pub fn update_range(
        &self,
        phys: &mut PhysMem,
        start: u64,
        end: u64,
        mut f: impl FnMut(&mut PhysMem, u64, u64) -> u64,
    ) {
        let mut va = start;
        while va < end {
            // Skip whole missing tables.
            let mut table = self.root;
            let mut skipped = false;
            for (level, shift) in SHIFTS.iter().take(3).enumerate() {
                let e = phys.read_u64(table, index(va, level) * 8);
                if e & PRESENT == 0 {
                    let span = 1u64 << shift;
                    va = (va & !(span - 1)).saturating_add(span);
                    skipped = true;
                    break;
                }
                table = Frame::containing(e & ADDR_MASK);
            }
            if skipped {
                continue;
            }
            // Walk this PTE table.
            let table_end = ((va | ((1 << 21) - 1)).saturating_add(1)).min(end);
            while va < table_end {
                let off = index(va, 3) * 8;
                let e = phys.read_u64(table, off);
                if e != 0 {
                    let n = f(phys, va, e);
                    if n != e {
                        phys.write_u64(table, off, n);
                    }
                }
                va += 4096;
            }
        }
    }

    /// `free_pgd_range`: frees the tables that map only `[addr, end)`,
    /// keeping any table that also maps below `floor` or at or above
    /// `ceiling` (0 meaning the top of the address space). Leaf entries in
    /// the range must already be cleared.
    pub fn free_range(
        &mut self,
        phys: &mut PhysMem,
        addr: u64,
        end: u64,
        floor: u64,
        ceiling: u64,
    ) {
        const PMD: u64 = 1 << 21;
        let mut addr = addr & !(PMD - 1);
        let mut end = end;
        if addr < floor {
            addr = addr.wrapping_add(PMD);
            if addr == 0 {
                return;
            }
        }
        let mut ceiling = ceiling;
        if ceiling != 0 {
            ceiling &= !(PMD - 1);
            if ceiling == 0 {
                return;
            }
        }
        if end.wrapping_sub(1) > ceiling.wrapping_sub(1) {
            end = end.wrapping_sub(PMD);
        }
        if addr > end.wrapping_sub(1) {
            return;
        }
        self.free_level(phys, self.root, 0, addr, end, floor, ceiling);
    }

    /// `free_p?d_range` for the entries of `table` (at `level`: 0 = PML4,
    /// 1 = PUD, 2 = PMD) covering `[addr, end)`: PTE tables go
    /// unconditionally; a PMD or PUD table goes when the span it maps lies
    /// within `[floor, ceiling)`.
    #[allow(clippy::too_many_arguments)]
    fn free_level(
        &mut self,
        phys: &mut PhysMem,
        table: Frame,
        level: usize,
        addr: u64,
        end: u64,
        floor: u64,
        ceiling: u64,
    ) {
        let span = 1u64 << SHIFTS[level];
        let mut a = addr;
        loop {
            // p?d_addr_end
            let boundary = (a & !(span - 1)).wrapping_add(span);
            let next = if boundary.wrapping_sub(1) < end.wrapping_sub(1) {
                boundary
            } else {
                end
            };
            let off = index(a, level) * 8;
            let e = phys.read_u64(table, off);
            if e & PRESENT != 0 {
                let child = Frame::containing(e & ADDR_MASK);
                let free_child = if level == 2 {
                    true
                } else {
                    self.free_level(phys, child, level + 1, a, next, floor, ceiling);
                    let start = a & !(span - 1);
                    let within_ceiling = if ceiling == 0 {
                        true
                    } else {
                        let c = ceiling & !(span - 1);
                        c != 0 && next.wrapping_sub(1) <= c.wrapping_sub(1)
                    };
                    start >= floor && within_ceiling
                };
                if free_child {
                    phys.write_u64(table, off, 0);
                    phys.put(child);
                    self.tables = self.tables.saturating_sub(1);
                }
            }
            a = next;
            if a == end {
                break;
            }
        }
    }

    /// Visits every non-empty leaf entry, read-only, in address order.
    pub fn for_each_entry(&self, phys: &PhysMem, mut f: impl FnMut(u64, u64)) {
        self.walk(phys, self.root, 0, 0, &mut f, &mut |_| {});
    }

    /// Visits every table frame below the PML4 (the frames `VmPTE` counts).
    pub fn for_each_table(&self, phys: &PhysMem, mut f: impl FnMut(Frame)) {
        self.walk(phys, self.root, 0, 0, &mut |_, _| {}, &mut f);
    }

    fn walk(
        &self,
        phys: &PhysMem,
        table: Frame,
        level: usize,
        base: u64,
        leaf: &mut impl FnMut(u64, u64),
        tables: &mut impl FnMut(Frame),
    ) {
        for i in 0..512u64 {
            let e = phys.read_u64(table, i as usize * 8);
            if e == 0 {
                continue;
            }
            let va = base | (i << SHIFTS[level]);
            if level == 3 {
                leaf(va, e);
            } else if e & PRESENT != 0 {
                let child = Frame::containing(e & ADDR_MASK);
                tables(child);
                self.walk(phys, child, level + 1, va, leaf, tables);
            }
        }
    }

    /// Releases every table frame (the leaves must already be cleared).
    pub fn destroy(&mut self, phys: &mut PhysMem) {
        self.free_all(phys, self.root, 0);
        phys.put(self.root);
        self.tables = 0;
    }

    fn free_all(&mut self, phys: &mut PhysMem, table: Frame, level: usize) {
        if level == 3 {
            return;
        }
        for i in 0..512 {
            let e = phys.read_u64(table, i * 8);
            if e & PRESENT != 0 {
                let child = Frame::containing(e & ADDR_MASK);
                self.free_all(phys, child, level + 1);
                phys.write_u64(table, i * 8, 0);
                phys.put(child);
            }
        }
    }
}

/// Reads a leaf entry.
pub fn read(phys: &PhysMem, s: Slot) -> u64 {
    phys.read_u64(s.table, s.index * 8)
}

/// Writes a leaf entry.
pub fn write(phys: &mut PhysMem, s: Slot, e: u64) {
    phys.write_u64(s.table, s.index * 8, e)
}

/// A leaf entry mapping `frame` with protection bits `prot`.
pub fn make_pte(frame: Frame, prot: u64) -> u64 {
    frame.phys_addr() | prot
}

/// The frame a present leaf entry maps.
pub fn pte_frame(e: u64) -> Frame {
    Frame::containing(e & ADDR_MASK)
}

/// Linux's `pte_present`: the entry maps a page, including a PROT_NONE
/// entry the CPU may not use (marked by the global bit with present clear).
pub fn pte_present(e: u64) -> bool {
    e & (PRESENT | GLOBAL) != 0
}

/// True when the CPU can use the entry (the hardware present bit).
pub fn pte_hw_present(e: u64) -> bool {
    e & PRESENT != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_walk_and_count_tables() {
        let mut phys = PhysMem::new(64 << 20);
        let mut pt = PageTables::new(&mut phys).unwrap();
        let f = phys.alloc().unwrap();
        let s = pt.slot_alloc(&mut phys, 0x7fff_f7ff_5000).unwrap();
        write(&mut phys, s, make_pte(f, PRESENT | USER));
        assert_eq!(pt.table_bytes(), 3 * 4096);
        assert_eq!(pte_frame(pt.get(&phys, 0x7fff_f7ff_5000)), f);
        assert_eq!(pt.get(&phys, 0x7fff_f7ff_6000), 0);
        // Another address under the same PMD needs no new table.
        pt.slot_alloc(&mut phys, 0x7fff_f7ff_6000).unwrap();
        assert_eq!(pt.table_bytes(), 3 * 4096);
        // The stack, two MiB away, needs one more PTE table.
        pt.slot_alloc(&mut phys, 0x7fff_ffff_e000).unwrap();
        assert_eq!(pt.table_bytes(), 4 * 4096);
    }

    #[test]
    fn free_range_keeps_tables_shared_with_neighbours() {
        let mut phys = PhysMem::new(64 << 20);
        let mut pt = PageTables::new(&mut phys).unwrap();
        pt.slot_alloc(&mut phys, 0x1000_0000).unwrap();
        pt.slot_alloc(&mut phys, 0x1000_5000).unwrap();
        assert_eq!(pt.table_bytes(), 3 * 4096);
        // A neighbour below in the same PMD span: nothing can go.
        pt.free_range(&mut phys, 0x1000_5000, 0x1000_6000, 0x1000_1000, 0);
        assert_eq!(pt.table_bytes(), 3 * 4096);
        // Nothing around: all three go.
        pt.free_range(&mut phys, 0x1000_0000, 0x1000_6000, 0, 0);
        assert_eq!(pt.table_bytes(), 0);
        let used = phys.used_frames();
        pt.destroy(&mut phys);
        assert_eq!(phys.used_frames(), used - 1);
    }

    #[test]
    fn protection_map() {
        use crate::VmFlags as F;
        assert_eq!(page_prot(F::empty()) & PRESENT, 0);
        assert_eq!(page_prot(F::WRITE) & (PRESENT | RW), PRESENT);
        assert_eq!(page_prot(F::EXEC) & NX, 0);
        assert_eq!(page_prot(F::SHARED) & PRESENT, 0);
        assert_ne!(page_prot(F::SHARED | F::WRITE) & RW, 0);
    }
}
