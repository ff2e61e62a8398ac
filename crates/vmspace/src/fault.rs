//! The CPU's side of memory access and the page-fault handler
//! (`arch/x86/mm/fault.c`, `mm/memory.c`).
//!
//! # Design
//!
//! An access to a page first walks the page tables as the MMU would
//! ([`AddressSpace::translate`]): a present entry that grants the access
//! gets its accessed (and for a write, dirty) bit and the access proceeds.
//! Anything else is a page fault, handled in Linux's order of decisions:
//!
//! 1. a non-canonical address is a general-protection fault (`SIGSEGV`,
//!    `SI_KERNEL`, address 0); an address in the kernel half is `SEGV_MAPERR`
//!    (an instruction fetch from the vsyscall page is emulated instead);
//! 2. no region at or above the address: `SEGV_MAPERR`; a region above that
//!    grows down is extended to the address if the stack limits allow
//!    (`expand_downwards`), else `SEGV_MAPERR`;
//! 3. an access the region forbids: `SEGV_ACCERR` — decided as x86's
//!    `access_error` does, so a fetch from a non-executable page first faults
//!    the page in for read and only then fails on the no-execute bit;
//! 4. otherwise the kind of fault: a read of never-touched anonymous memory
//!    maps the shared zero page; a write allocates a zeroed frame (giving
//!    the region its `anon_vma`); a write to a read-only entry of a writable
//!    private region copies or reuses the page (`do_wp_page`); shared
//!    anonymous memory takes its page from the shmem object.
//!
//! The fault is then retried, as the CPU would retry the instruction.
//!
//! Counters: `rss` by type and `hiwater_rss` (which Linux samples before
//! every unmap, so it is the true peak), and minor/major fault counts.

use alloc::collections::BTreeMap;

use crate::addr::PAGE_SIZE;
use crate::file::InodeId;
use crate::flags::VmFlags;
use crate::layout::{TASK_SIZE, VSYSCALL_START};
use crate::mm::AddressSpace;
use crate::pgtable::{self, bits, page_prot, PageTables};
use crate::phys::{Frame, FrameFlags, PhysMem};
use crate::system::Kernel;
use crate::vma::Vma;

/// `SIGBUS`.
pub const SIGBUS: i32 = 7;
/// `SIGKILL`.
pub const SIGKILL: i32 = 9;
/// `SIGSEGV`.
pub const SIGSEGV: i32 = 11;
/// `si_code`: address not mapped.
pub const SEGV_MAPERR: i32 = 1;
/// `si_code`: access not permitted.
pub const SEGV_ACCERR: i32 = 2;
/// `si_code`: object-specific hardware error (access beyond the end of a file).
pub const BUS_ADRERR: i32 = 2;
/// `si_code`: sent by the kernel (general protection).
pub const SI_KERNEL: i32 = 0x80;

/// The signal an access raised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SigInfo {
    /// Signal number.
    pub signo: i32,
    /// `si_code`.
    pub code: i32,
    /// `si_addr`.
    pub addr: u64,
}

/// What an access does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// A data read.
    Read,
    /// A data write.
    Write,
    /// An instruction fetch.
    Exec,
}

/// Why an access did not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultError {
    /// The process gets a signal.
    Signal(SigInfo),
    /// No frame could be found: the out-of-memory killer's business.
    OutOfMemory,
}

fn segv(code: i32, addr: u64) -> FaultError {
    FaultError::Signal(SigInfo {
        signo: SIGSEGV,
        code,
        addr,
    })
}

/// A per-CPU counter as Linux keeps `mm->rss_stat` (`percpu_counter`): a
/// process's changes gather in its CPU's local delta and are folded into the
/// shared count once the delta reaches the batch size. Exact readers add
/// both; `update_hiwater_rss` reads only the folded count, which is why
/// `VmHWM` can lag the true peak. The process is assumed to stay on one CPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PcpuCounter {
    /// The folded, shared count.
    pub global: i64,
    /// This CPU's unfolded delta.
    pub local: i64,
}

impl PcpuCounter {
    /// `percpu_counter_batch` on a machine with up to 16 CPUs.
    pub const BATCH: i64 = 32;

    /// `percpu_counter_add`.
    pub fn add(&mut self, n: i64) {
        let c = self.local + n;
        if c.abs() >= Self::BATCH {
            self.global += c;
            self.local = 0;
        } else {
            self.local = c;
        }
    }
    /// The exact value (`percpu_counter_sum`).
    pub fn sum(&self) -> u64 {
        (self.global + self.local).max(0) as u64
    }
    /// The folded value (`percpu_counter_read_positive`).
    pub fn read_positive(&self) -> u64 {
        self.global.max(0) as u64
    }
    /// A counter brought to `n` by single increments from zero.
    pub fn built_up_to(n: u64) -> PcpuCounter {
        let n = n as i64;
        PcpuCounter {
            global: n - n % Self::BATCH,
            local: n % Self::BATCH,
        }
    }
}

/// Page-level state of an address space: page tables, resident-set
/// counters, fault counts.
#[derive(Clone, Debug, Default)]
pub struct MemState {
    /// The page tables, created on first use.
    pub tables: Option<PageTables>,
    /// `MM_ANONPAGES`.
    pub rss_anon: PcpuCounter,
    /// `MM_FILEPAGES`.
    pub rss_file: PcpuCounter,
    /// `MM_SHMEMPAGES`.
    pub rss_shmem: PcpuCounter,
    /// `MM_SWAPENTS`.
    pub swap_ents: PcpuCounter,
    /// `hiwater_rss`.
    pub hiwater_rss: u64,
    /// Minor faults.
    pub min_flt: u64,
    /// Major faults.
    pub maj_flt: u64,
}

impl MemState {
    /// Resident pages, exactly.
    pub fn rss(&self) -> u64 {
        self.rss_anon.sum() + self.rss_file.sum() + self.rss_shmem.sum()
    }
    /// `update_hiwater_rss`: samples the folded counts.
    pub fn update_hiwater(&mut self) {
        let approx = self.rss_anon.read_positive()
            + self.rss_file.read_positive()
            + self.rss_shmem.read_positive();
        self.hiwater_rss = self.hiwater_rss.max(approx);
    }
    /// Bytes of page tables (`VmPTE`).
    pub fn table_bytes(&self) -> u64 {
        self.tables.as_ref().map_or(0, |t| t.table_bytes())
    }
}

/// Pages of shared memory objects (the page cache of shmem inodes).
#[derive(Clone, Debug, Default)]
pub struct PageCache {
    pages: BTreeMap<(InodeId, u64), Frame>,
}

impl PageCache {
    /// The cached page of `inode` at `index`.
    pub fn get(&self, inode: InodeId, index: u64) -> Option<Frame> {
        self.pages.get(&(inode, index)).copied()
    }
    /// Caches a page (the cache holds one reference).
    pub fn insert(&mut self, inode: InodeId, index: u64, f: Frame) {
        self.pages.insert((inode, index), f);
    }
    /// Drops every page of an inode, returning them.
    pub fn remove_inode(&mut self, inode: InodeId) -> alloc::vec::Vec<Frame> {
        let keys: alloc::vec::Vec<_> = self
            .pages
            .range((inode, 0)..=(inode, u64::MAX))
            .map(|(k, _)| *k)
            .collect();
        keys.into_iter()
            .filter_map(|k| self.pages.remove(&k))
            .collect()
    }
    /// Removes the pages `[first, last]` of an inode, returning them.
    pub fn remove_range(
        &mut self,
        inode: InodeId,
        first: u64,
        last: u64,
    ) -> alloc::vec::Vec<Frame> {
        let keys: alloc::vec::Vec<_> = self
            .pages
            .range((inode, first)..=(inode, last))
            .map(|(k, _)| *k)
            .collect();
        keys.into_iter()
            .filter_map(|k| self.pages.remove(&k))
            .collect()
    }

    /// The cached pages of `inode` at indices `[first, last]`, in order.
    pub fn range(
        &self,
        inode: InodeId,
        first: u64,
        last: u64,
    ) -> impl Iterator<Item = (u64, Frame)> + '_ {
        self.pages
            .range((inode, first)..=(inode, last))
            .map(|(&(_, i), &f)| (i, f))
    }

    /// Every cached page: `((inode, index), frame)`, in order.
    pub fn entries(&self) -> impl Iterator<Item = ((InodeId, u64), Frame)> + '_ {
        self.pages.iter().map(|(&k, &f)| (k, f))
    }

    /// Every cached frame.
    pub fn frames(&self) -> impl Iterator<Item = Frame> + '_ {
        self.pages.values().copied()
    }

    /// Pages cached for an inode.
    pub fn count(&self, inode: InodeId) -> usize {
        self.pages.range((inode, 0)..=(inode, u64::MAX)).count()
    }
}

/// Is the address canonical for 48-bit virtual addresses?
pub fn is_canonical(addr: u64) -> bool {
    let top = addr >> 47;
    top == 0 || top == 0x1ffff
}

impl AddressSpace {
    fn tables(&mut self, phys: &mut PhysMem) -> Result<&mut PageTables, FaultError> {
        if self.mem.tables.is_none() {
            self.mem.tables = Some(PageTables::new(phys).map_err(|_| FaultError::OutOfMemory)?);
        }
        self.mem.tables.as_mut().ok_or(FaultError::OutOfMemory)
    }

    /// The leaf entry mapping `addr` (0 when none).
    pub fn pte(&self, phys: &PhysMem, addr: u64) -> u64 {
        self.mem.tables.as_ref().map_or(0, |t| t.get(phys, addr))
    }

    /// The MMU: translates `addr` for `access`, faulting pages in as
    /// needed, and returns the frame. Sets the accessed and dirty bits.
    pub fn translate(
        &mut self,
        k: &mut Kernel,
        addr: u64,
        access: Access,
    ) -> Result<Frame, FaultError> {
        if !is_canonical(addr) {
            return Err(segv(SI_KERNEL, 0));
        }
        // A fault is retried; two passes settle any fault (the second is
        // for a fetch that faulted a page in and now meets no-execute).
        for _ in 0..3 {
            // One walk: find the entry, check it, set the accessed and dirty
            // bits in place.
            let slot = self.mem.tables.as_ref().and_then(|t| t.slot(&k.phys, addr));
            let e = slot.map_or(0, |s| pgtable::read(&k.phys, s));
            let present = pgtable::pte_hw_present(e) && e & bits::USER != 0;
            if present {
                let allowed = match access {
                    Access::Read => true,
                    Access::Write => e & bits::RW != 0,
                    Access::Exec => e & bits::NX == 0,
                };
                if allowed {
                    let want = bits::ACCESSED
                        | if access == Access::Write {
                            bits::DIRTY
                        } else {
                            0
                        };
                    if let (true, Some(s)) = (e & want != want, slot) {
                        pgtable::write(&mut k.phys, s, e | want);
                    }
                    return Ok(pgtable::pte_frame(e));
                }
            }
            self.handle_fault(k, addr, access, present)?;
        }
        Err(segv(SEGV_ACCERR, addr))
    }

    /// `get_user_pages` for one page: faults it in if the entry does not
    /// already allow `access`, with the region's permission checks relaxed as
    /// `FOLL_FORCE` relaxes them for accessible regions.
    pub(crate) fn fault_in(
        &mut self,
        k: &mut Kernel,
        addr: u64,
        access: Access,
    ) -> Result<(), FaultError> {
        let e = self.pte(&k.phys, addr);
        let ok = pgtable::pte_hw_present(e) && (access != Access::Write || e & bits::RW != 0);
        if ok {
            return Ok(());
        }
        let Some(vma) = self.vma_containing(addr) else {
            return Err(segv(SEGV_MAPERR, addr));
        };
        // The process's own call faults it in: counted on the process.
        self.counted_fault(k, &vma, addr, access)
    }

    /// `handle_mm_fault` for the process itself, counted as
    /// `mm_account_fault` counts: only a fault that succeeds, as minor
    /// (nothing here waits for I/O).
    fn counted_fault(
        &mut self,
        k: &mut Kernel,
        vma: &Vma,
        addr: u64,
        access: Access,
    ) -> Result<(), FaultError> {
        let r = self.handle_mm_fault(k, vma, addr, access);
        if r.is_ok() {
            self.mem.min_flt += 1;
        }
        r
    }

    /// `do_user_addr_fault`: decides what a fault at `addr` means.
    /// `present` says the entry was present (a protection fault).
    fn handle_fault(
        &mut self,
        k: &mut Kernel,
        addr: u64,
        access: Access,
        present: bool,
    ) -> Result<(), FaultError> {
        if addr >= TASK_SIZE {
            return Err(segv(SEGV_MAPERR, addr));
        }
        let vma = match self.find_vma(addr) {
            None => return Err(segv(SEGV_MAPERR, addr)),
            Some(v) if v.start() <= addr => v,
            Some(v) => {
                if !v.flags().contains(VmFlags::GROWSDOWN) {
                    return Err(segv(SEGV_MAPERR, addr));
                }
                let own = self.rlimits;
                self.expand_stack(k, v, addr, &own)
                    .map_err(|_| segv(SEGV_MAPERR, addr))?
            }
        };
        if access_error(&vma, access, present) {
            return Err(segv(SEGV_ACCERR, addr));
        }
        self.counted_fault(k, &vma, addr, access)
    }

    /// `expand_stack(mm, addr)` as `/proc/PID/mem` uses it: when no region
    /// contains `addr`, the next region above grows down to it if it is a
    /// grows-down one (whatever the distance). The limits that apply are
    /// the accessing process's (Linux checks `current`'s), the debugger's
    /// [`Params::debugger_rlimits`](crate::Params::debugger_rlimits).
    pub(crate) fn expand_stack_to(&mut self, k: &mut Kernel, addr: u64) -> bool {
        let limits = k.params.debugger_rlimits;
        match self.find_vma(addr) {
            Some(v) if v.start() > addr && v.flags().contains(VmFlags::GROWSDOWN) => {
                self.expand_stack(k, v, addr, &limits).is_ok()
            }
            _ => false,
        }
    }

    /// `expand_downwards`: grows a grows-down region down to `addr`, within
    /// the limits of the task doing it.
    fn expand_stack(
        &mut self,
        k: &mut Kernel,
        vma: Vma,
        addr: u64,
        limits: &crate::mm::Rlimits,
    ) -> Result<Vma, ()> {
        let address = addr & !(PAGE_SIZE - 1);
        if address < k.params.min_addr_for_hints() {
            return Err(());
        }
        if let Some(prev) = self.vma_before(vma.start()) {
            if !prev.flags().contains(VmFlags::GROWSDOWN)
                && prev.flags().intersects(VmFlags::ACCESS)
                && address - prev.end() < k.params.stack_guard_gap
            {
                return Err(());
            }
        }
        let vma = self.anon_vma_prepare(k, &vma);
        let size = vma.end() - address;
        let grow = (vma.start() - address) >> 12;
        if grow > vma.attrs.pgoff {
            return Err(());
        }
        // acct_stack_growth
        if !self.may_expand_vm_within(limits, vma.flags(), grow)
            || size > limits.stack.cur
            || !self.mlock_future_ok_within(limits, vma.flags(), grow << 12)
        {
            return Err(());
        }
        k.vm_enough_memory(self, grow, self.caps.sys_admin)
            .map_err(|_| ())?;
        let mut grown = vma;
        grown.start = crate::VirtAddr::new(address);
        grown.attrs.pgoff -= grow;
        self.reshape(vma.start(), &grown).map_err(|_| ())?;
        self.account_new(vma.flags(), grow);
        self.note_regions_grown(grown.start(), grown.end());
        Ok(grown)
    }

    /// `handle_mm_fault` for a permitted access at `addr`.
    pub(crate) fn handle_mm_fault(
        &mut self,
        k: &mut Kernel,
        vma: &Vma,
        addr: u64,
        access: Access,
    ) -> Result<(), FaultError> {
        let page = addr & !(PAGE_SIZE - 1);
        let prot = page_prot(vma.flags());
        let e = self.pte(&k.phys, page);
        let write = access == Access::Write;
        // Present to software, PROT_NONE entries included (a forced access
        // reaches those): a write is a write-protect fault, never a new page.
        if pgtable::pte_present(e) {
            if write && e & bits::RW == 0 {
                return self.do_wp_page(k, vma, page, e);
            }
            // Spurious: the entry already allows it (another path fixed it).
            return Ok(());
        }
        if let Some(file) = vma.attrs.file {
            return self.do_shared_fault(k, vma, addr, file, prot, write);
        }
        if self.is_special_mapping(vma) {
            return self.special_mapping_fault(k, vma, addr, prot);
        }
        if vma.flags().contains(VmFlags::SHARED) {
            return Err(FaultError::Signal(SigInfo {
                signo: SIGBUS,
                code: BUS_ADRERR,
                addr,
            }));
        }
        // do_anonymous_page
        if !write {
            let zero = k.phys.zero_page();
            let slot = self
                .tables(&mut k.phys)?
                .slot_alloc(&mut k.phys, page)
                .map_err(|_| FaultError::OutOfMemory)?;
            pgtable::write(
                &mut k.phys,
                slot,
                pgtable::make_pte(zero, prot | bits::SPECIAL),
            );
            return Ok(());
        }
        let vma = self.anon_vma_prepare(k, vma);
        // The page table first (__handle_mm_fault allocates it before the
        // page), so that running out of memory there leaves no page behind.
        let slot = self
            .tables(&mut k.phys)?
            .slot_alloc(&mut k.phys, page)
            .map_err(|_| FaultError::OutOfMemory)?;
        let frame = self.new_anon_page(k, &vma, page)?;
        // pte_mkwrite(pte_mkdirty()) only for a writable region: a forced
        // write into a read-only one leaves the entry clean and read-only.
        let mut pte = pgtable::make_pte(frame, prot);
        if vma.flags().contains(VmFlags::WRITE) {
            pte |= bits::RW | bits::DIRTY;
        }
        pgtable::write(&mut k.phys, slot, pte);
        Ok(())
    }

    /// A fresh anonymous page for `page` of `vma`, counted and reverse-mapped.
    fn new_anon_page(&mut self, k: &mut Kernel, vma: &Vma, page: u64) -> Result<Frame, FaultError> {
        let frame = self.new_anon_page_with(k, vma, page, true)?;
        self.mem.rss_anon.add(1);
        Ok(frame)
    }

    /// A fresh anonymous page, reverse-mapped but not counted: the caller
    /// updates the resident-set counters the way its Linux path does (a
    /// counter changed and changed back can fold on the way, which shows in
    /// `VmHWM`).
    fn new_anon_page_with(
        &mut self,
        k: &mut Kernel,
        vma: &Vma,
        page: u64,
        zeroed: bool,
    ) -> Result<Frame, FaultError> {
        let frame = k.alloc_user_frame(!zeroed).ok_or(FaultError::OutOfMemory)?;
        let flags = FrameFlags::ANON | FrameFlags::SWAPBACKED | FrameFlags::EXCLUSIVE;
        k.phys.set_flags(frame, flags);
        // folio_add_lru_vma: a locked region's pages go to the mlock batch.
        if vma.flags().mlocks_pages() {
            k.phys.mlock_new_folio(frame);
        } else {
            k.phys.lru_add(frame);
        }
        k.phys.add_mapcount(frame, 1);
        let owner = vma.attrs.anon_vma.map_or(0, |a| a.0);
        k.phys.set_owner(frame, owner, vma.pgoff_at(page));
        Ok(frame)
    }

    /// `do_wp_page`: a write to a present read-only entry of a writable
    /// region. The zero page is copied to a new page; an anonymous page only
    /// this process maps is reused in place; anything else is copied.
    fn do_wp_page(
        &mut self,
        k: &mut Kernel,
        vma: &Vma,
        page: u64,
        e: u64,
    ) -> Result<(), FaultError> {
        let prot = page_prot(vma.flags());
        let old = pgtable::pte_frame(e);
        let Some(slot) = self.mem.tables.as_ref().and_then(|t| t.slot(&k.phys, page)) else {
            return Ok(());
        };
        if vma.flags().contains(VmFlags::SHARED) {
            // Shared mappings map their page writable on a write fault.
            pgtable::write(
                &mut k.phys,
                slot,
                e | bits::RW | bits::DIRTY | bits::ACCESSED,
            );
            return Ok(());
        }
        let zero = e & bits::SPECIAL != 0 && old == k.phys.zero_page();
        let anon = !zero && k.phys.flags(old).contains(FrameFlags::ANON);
        if anon && self.can_reuse_anon(k, old) {
            // Only this process maps it: reuse it, exclusive again.
            let fl = k.phys.flags(old);
            k.phys.set_flags(old, fl | FrameFlags::EXCLUSIVE);
            pgtable::write(
                &mut k.phys,
                slot,
                e | maybe_mkwrite(vma) | bits::DIRTY | bits::ACCESSED,
            );
            return Ok(());
        }
        // wp_page_copy
        let vma = self.anon_vma_prepare(k, vma);
        let frame = self.new_anon_page_with(k, &vma, page, zero)?;
        if !zero {
            k.phys.copy_frame(frame, old);
        }
        let pte = pgtable::make_pte(frame, prot | bits::DIRTY | maybe_mkwrite(&vma));
        pgtable::write(&mut k.phys, slot, pte);
        // An anonymous page replaced by an anonymous copy leaves the
        // counters alone; a file page's count moves to the anonymous one.
        if zero {
            self.mem.rss_anon.add(1);
        } else if !anon {
            self.account_file_page(k, old, -1);
            self.mem.rss_anon.add(1);
        }
        if !zero {
            k.phys.add_mapcount(old, -1);
            if vma.flags().mlocks_pages() {
                k.phys.munlock_folio(old);
            }
            k.phys.put(old);
        }
        Ok(())
    }

    /// `PageAnonExclusive` or `wp_can_reuse_anon_folio`: nobody else can
    /// reach the page. A reference an LRU batch holds counts (such a page is
    /// copied), except that a page not yet on a list makes the CPU drain its
    /// batches first.
    fn can_reuse_anon(&mut self, k: &mut Kernel, old: Frame) -> bool {
        if k.phys.flags(old).contains(FrameFlags::EXCLUSIVE) && k.phys.mapcount(old) == 1 {
            return true;
        }
        // The order matters: a page shared with another process still makes
        // the CPU drain its batches if it is off the lists.
        if k.phys.refcount(old) > 3 {
            return false;
        }
        if k.phys.off_lru(old) {
            k.lru_add_drain();
        }
        k.phys.refcount(old) == 1
    }

    /// A fault on a file or shared-memory region: the page comes from the
    /// object's page cache (created zeroed for shmem holes). Private
    /// mappings map it read-only until written.
    fn do_shared_fault(
        &mut self,
        k: &mut Kernel,
        vma: &Vma,
        addr: u64,
        file: crate::file::FileId,
        prot: u64,
        write: bool,
    ) -> Result<(), FaultError> {
        let page = addr & !(PAGE_SIZE - 1);
        let Some(inode_id) = k.files.file(file).map(|f| f.inode) else {
            return Err(segv(SEGV_MAPERR, addr));
        };
        let size = k.files.inode(inode_id).map_or(0, |i| i.size);
        let index = vma.pgoff_at(page);
        // A shared writable mapping of a disk file tracks dirtying
        // (vma_wants_writenotify): a read maps the page read-only, so the
        // first store faults and marks it dirty. tmpfs needs no such
        // tracking.
        let prot = if !write && k.is_disk(inode_id) {
            prot & !bits::RW
        } else {
            prot
        };
        // do_read_fault maps the cached neighbours first, so they are mapped
        // even when the faulting page itself lies past the end of the file.
        if !write {
            self.fault_around(k, vma, page, inode_id, prot)?;
            if pgtable::pte_present(self.pte(&k.phys, page)) {
                return Ok(());
            }
        }
        let shared = vma.flags().contains(VmFlags::SHARED);
        // do_cow_fault prepares the anon_vma before asking the file for the
        // page, so the region keeps one even when that fails (SIGBUS).
        let vma = if write && !shared {
            self.anon_vma_prepare(k, vma)
        } else {
            *vma
        };
        if index >= size.div_ceil(PAGE_SIZE) {
            return Err(FaultError::Signal(SigInfo {
                signo: SIGBUS,
                code: BUS_ADRERR,
                addr,
            }));
        }
        let cached = match k.cache_page(inode_id, index) {
            Ok(f) => f,
            Err(crate::disk::CacheError::OutOfMemory) => return Err(FaultError::OutOfMemory),
            // The storage could not read it: VM_FAULT_SIGBUS.
            Err(crate::disk::CacheError::Io) => {
                return Err(FaultError::Signal(SigInfo {
                    signo: SIGBUS,
                    code: BUS_ADRERR,
                    addr,
                }))
            }
        };
        if write && !shared {
            // Private write: copy the page (do_cow_fault), its entry's
            // table first.
            let slot = self
                .tables(&mut k.phys)?
                .slot_alloc(&mut k.phys, page)
                .map_err(|_| FaultError::OutOfMemory)?;
            let frame = self.new_anon_page(k, &vma, page)?;
            let src = *k.phys.data(cached);
            k.phys.data_mut(frame).copy_from_slice(&src);
            pgtable::write(
                &mut k.phys,
                slot,
                pgtable::make_pte(frame, prot | bits::DIRTY | maybe_mkwrite(&vma)),
            );
            return Ok(());
        }
        if !write {
            self.fault_around(k, &vma, page, inode_id, prot)?;
            if pgtable::pte_present(self.pte(&k.phys, page)) {
                return Ok(());
            }
        }
        let slot = self
            .tables(&mut k.phys)?
            .slot_alloc(&mut k.phys, page)
            .map_err(|_| FaultError::OutOfMemory)?;
        k.phys.get(cached);
        k.phys.add_mapcount(cached, 1);
        let mut pte = pgtable::make_pte(cached, prot);
        if write {
            pte |= bits::RW | bits::DIRTY;
            let fl = k.phys.flags(cached) | FrameFlags::DIRTY;
            k.phys.set_flags(cached, fl);
        }
        pgtable::write(&mut k.phys, slot, pte);
        self.account_file_page(k, cached, 1);
        if vma.flags().mlocks_pages() {
            // folio_add_file_rmap_ptes -> mlock_vma_folio.
            k.phys.mlock_folio(cached);
        }
        Ok(())
    }

    /// A fault on a kernel-installed mapping. `[vdso]` pages are ordinary
    /// kernel pages (counted as file pages); `[vvar]` and `[vvar_vclock]`
    /// map raw frames (not counted), except pages this kernel has nothing
    /// for, which raise `SIGBUS` (see [`UNAVAILABLE_SPECIAL_PAGES`]).
    fn special_mapping_fault(
        &mut self,
        k: &mut Kernel,
        vma: &Vma,
        addr: u64,
        prot: u64,
    ) -> Result<(), FaultError> {
        let page = addr & !(PAGE_SIZE - 1);
        let index = (page - vma.start()) / PAGE_SIZE;
        let name = self.name_text(vma.attrs.name).unwrap_or("");
        if UNAVAILABLE_SPECIAL_PAGES
            .iter()
            .any(|&(n, i)| n == name && i == index)
        {
            return Err(FaultError::Signal(SigInfo {
                signo: SIGBUS,
                code: BUS_ADRERR,
                addr,
            }));
        }
        let counted = name == "[vdso]";
        // The entry's slot first, so that running out of memory there
        // leaves no page behind.
        let slot = self
            .tables(&mut k.phys)?
            .slot_alloc(&mut k.phys, page)
            .map_err(|_| FaultError::OutOfMemory)?;
        let frame = if counted {
            let f = k.phys.alloc().ok_or(FaultError::OutOfMemory)?;
            k.phys.add_mapcount(f, 1);
            self.mem.rss_file.add(1);
            f
        } else {
            k.phys.zero_page()
        };
        let special = if counted { 0 } else { bits::SPECIAL };
        pgtable::write(&mut k.phys, slot, pgtable::make_pte(frame, prot | special));
        Ok(())
    }

    /// `do_fault_around`: a read fault on a file or shmem region also maps
    /// the already-cached pages around it, within an aligned window of
    /// `fault_around_bytes`, the region and the page table.
    fn fault_around(
        &mut self,
        k: &mut Kernel,
        vma: &Vma,
        page: u64,
        inode: InodeId,
        prot: u64,
    ) -> Result<(), FaultError> {
        let bytes = k.params.fault_around_bytes;
        // fault_around_pages: the largest power of two not above, at least 1.
        if bytes < 2 * PAGE_SIZE {
            return Ok(());
        }
        let nr = 1u64 << (63 - (bytes / PAGE_SIZE).leading_zeros());
        let pte_off = (page >> 12) & 511;
        let vma_off = (page - vma.start()) >> 12;
        let from = (pte_off & !(nr - 1)).max(pte_off - pte_off.min(vma_off));
        let to = (from + nr).min(512).min(pte_off + vma.pages() - vma_off);
        let size = k
            .files
            .inode(inode)
            .map_or(0, |i| i.size)
            .div_ceil(PAGE_SIZE);
        // The window lies in one PTE table and maps consecutive file pages:
        // walk to the table once and visit the cached pages in it in order
        // (filemap_map_pages walks the page cache, not each index).
        let base = page - pte_off * PAGE_SIZE;
        let lo = vma.pgoff_at(base + from * PAGE_SIZE);
        let hi = (lo + (to - from)).min(size);
        if lo >= hi {
            return Ok(());
        }
        let locked = vma.flags().mlocks_pages();
        let phys = &mut k.phys;
        let mut table = self
            .mem
            .tables
            .as_ref()
            .and_then(|t| t.slot(phys, base))
            .map(|s| s.table);
        for (index, f) in k.cache.range(inode, lo, hi - 1) {
            let p = from + (index - lo);
            let t = match table {
                Some(t) => t,
                None => {
                    let s = self
                        .tables(phys)?
                        .slot_alloc(phys, base + p * PAGE_SIZE)
                        .map_err(|_| FaultError::OutOfMemory)?;
                    table = Some(s.table);
                    s.table
                }
            };
            let slot = pgtable::Slot {
                table: t,
                index: p as usize,
            };
            if pgtable::pte_present(pgtable::read(phys, slot)) {
                continue;
            }
            phys.get(f);
            phys.add_mapcount(f, 1);
            pgtable::write(phys, slot, pgtable::make_pte(f, prot));
            if phys.flags(f).contains(FrameFlags::SWAPBACKED) {
                self.mem.rss_shmem.add(1);
            } else {
                self.mem.rss_file.add(1);
            }
            if locked {
                phys.mlock_folio(f);
            }
        }
        Ok(())
    }

    /// Adds (or removes) a mapped non-anonymous page to the right counter.
    fn account_file_page(&mut self, k: &Kernel, f: Frame, delta: i64) {
        if k.phys.flags(f).contains(FrameFlags::SWAPBACKED) {
            self.mem.rss_shmem.add(delta);
        } else {
            self.mem.rss_file.add(delta);
        }
    }
}

/// `maybe_mkwrite`: the writable bit, if the region is writable.
fn maybe_mkwrite(vma: &Vma) -> u64 {
    if vma.flags().contains(VmFlags::WRITE) {
        bits::RW
    } else {
        0
    }
}

/// x86's `access_error`: does the region forbid this access?
fn access_error(vma: &Vma, access: Access, present: bool) -> bool {
    let f = vma.flags();
    match access {
        Access::Write => !f.contains(VmFlags::WRITE),
        // A fetch is checked against the region only through the page's
        // no-execute bit: not-present fetches fault the page in for read.
        Access::Read | Access::Exec => present || !f.intersects(VmFlags::ACCESS),
    }
}

/// Pages of the vDSO data mappings that the reference kernel (6.18 on x86-64,
/// as a KVM guest, no time namespace) has nothing behind: touching them is
/// `SIGBUS`. (`[vvar]` page 1 and 3, `[vvar_vclock]` page 1: the time
/// namespace page and the Hyper-V clock page.)
pub const UNAVAILABLE_SPECIAL_PAGES: &[(&str, u64)] =
    &[("[vvar]", 1), ("[vvar]", 3), ("[vvar_vclock]", 1)];

/// Is `addr` in the vsyscall page, where an instruction fetch is emulated?
pub fn is_vsyscall(addr: u64) -> bool {
    (VSYSCALL_START..VSYSCALL_START + PAGE_SIZE).contains(&addr)
}

impl AddressSpace {
    /// Page-level invariants: every present entry lies inside a region,
    /// is a user entry granting no more than the region's protection, and
    /// maps a live frame; the page-table count matches the tables reachable.
    pub fn check_pages(&self, k: &Kernel) -> Result<(), alloc::string::String> {
        use alloc::format;
        let Some(tables) = self.mem.tables.as_ref() else {
            return Ok(());
        };
        let mut err = None;
        tables.for_each_entry(&k.phys, |va, e| {
            if err.is_some() || !pgtable::pte_present(e) {
                return;
            }
            let Some(v) = self.vma_containing(va) else {
                err = Some(format!("entry {e:#x} at {va:#x} outside every region"));
                return;
            };
            let f = v.flags();
            if pgtable::pte_hw_present(e) {
                if e & bits::USER == 0 {
                    err = Some(format!("entry at {va:#x} is not a user entry"));
                } else if e & bits::RW != 0 && !f.contains(VmFlags::WRITE) {
                    err = Some(format!(
                        "entry at {va:#x} writable in a region without PROT_WRITE"
                    ));
                } else if e & bits::NX == 0 && !f.contains(VmFlags::EXEC) {
                    err = Some(format!(
                        "entry at {va:#x} executable in a region without PROT_EXEC"
                    ));
                } else if !f.intersects(VmFlags::ACCESS) {
                    err = Some(format!("entry at {va:#x} usable in a PROT_NONE region"));
                }
            }
            let frame = pgtable::pte_frame(e);
            if k.phys.refcount(frame) == 0 {
                err = Some(format!(
                    "entry at {va:#x} maps free frame {}",
                    frame.number()
                ));
            }
        });
        if let Some(e) = err {
            return Err(e);
        }
        let mut n = 0;
        tables.for_each_table(&k.phys, |_| n += 1);
        if n * 4096 != tables.table_bytes() {
            return Err(format!(
                "VmPTE says {} tables, {n} are reachable",
                tables.table_bytes() / 4096
            ));
        }
        Ok(())
    }
}
