//! `fork` (`dup_mmap`, `copy_page_range`, `anon_vma_fork`) and forced
//! access through `/proc/PID/mem` (`access_remote_vm` with `FOLL_FORCE`).
//!
//! The child gets a copy of every region but `VM_DONTCOPY` ones, without
//! lock bits; `VM_WIPEONFORK` regions come back empty. Page-table entries
//! are copied only where a fault could not recreate them: regions with an
//! `anon_vma` (anonymous pages) or raw frame maps. Private anonymous pages
//! become shared by both processes and are write-protected in both where
//! they were writable, so the first write on either side copies
//! (copy-on-write). Shared mappings keep sharing their pages.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::access::Fnv1a;
use crate::addr::PAGE_SIZE;
use crate::errno::{Errno, SysResult};
use crate::fault::{Access, FaultError};
use crate::flags::VmFlags;
use crate::mm::AddressSpace;
use crate::pgtable::{self, bits, PageTables};
use crate::phys::FrameFlags;
use crate::system::{Kernel, Pid, System};
use crate::vma::Vma;

impl System {
    /// `fork()`: a new process with a copy-on-write copy of `pid`'s address
    /// space and its descriptors. Returns the child's pid.
    pub fn fork(&mut self, pid: Pid) -> SysResult<Pid> {
        let parent = ForkSource::of(self.process(pid).ok_or(Errno::ESRCH)?);
        // The parent's tables are borrowed out while the child is built and
        // always put back, success or not.
        let ptables = self.procs_tables(pid);
        let built = dup_mmap(&mut self.kernel, &parent, ptables.as_ref());
        if let Some(t) = ptables {
            self.put_tables(pid, t);
        }
        let child = match built {
            Ok(c) => c,
            Err(e) => {
                self.settle();
                return Err(e);
            }
        };
        let child_pid = self.add_process(None, child, parent.vsyscall);
        if let Some(p) = self.process_mut(child_pid) {
            p.fds = parent.fds;
        }
        Ok(child_pid)
    }

    fn procs_tables(&mut self, pid: Pid) -> Option<PageTables> {
        self.process_mut(pid).and_then(|p| p.mm.mem.tables.take())
    }

    fn put_tables(&mut self, pid: Pid, t: PageTables) {
        if let Some(p) = self.process_mut(pid) {
            p.mm.mem.tables = Some(t);
        }
    }

    /// `peek(addr, len)`: reads another process's memory as a debugger does
    /// through `/proc/PID/mem`: readable where the region may be read
    /// (`VM_MAYREAD`) even if its protection forbids it. Returns the FNV-1a
    /// hash, or `EIO` when any byte cannot be read.
    pub fn peek(&mut self, pid: Pid, addr: u64, len: u64) -> SysResult<u64> {
        let mut h = Fnv1a::new();
        self.remote_access(pid, addr, len, false, |phys, f, off, n| {
            h.write(&phys.data(f)[off..off + n]);
        })?;
        Ok(h.0)
    }

    /// `poke(addr, len, byte)`: writes through `/proc/PID/mem`: a forced
    /// write into a private mapping breaks copy-on-write into a private copy
    /// (never reaching a shared page or a file); a shared read-only mapping
    /// refuses. `EIO` when any byte cannot be written (earlier pages keep
    /// what was written).
    pub fn poke(&mut self, pid: Pid, addr: u64, len: u64, byte: u8) -> SysResult<()> {
        self.remote_access(pid, addr, len, true, |phys, f, off, n| {
            phys.data_mut(f)[off..off + n].fill(byte);
            let fl = phys.flags(f);
            phys.set_flags(f, fl | FrameFlags::DIRTY);
        })
    }

    fn remote_access(
        &mut self,
        pid: Pid,
        addr: u64,
        len: u64,
        write: bool,
        each: impl FnMut(&mut crate::phys::PhysMem, crate::phys::Frame, usize, usize),
    ) -> SysResult<()> {
        let r = self.remote_access_pages(pid, addr, len, write, each);
        // The access may have grown a grows-down region.
        self.sync_grown(pid);
        r
    }

    fn remote_access_pages(
        &mut self,
        pid: Pid,
        addr: u64,
        len: u64,
        write: bool,
        mut each: impl FnMut(&mut crate::phys::PhysMem, crate::phys::Frame, usize, usize),
    ) -> SysResult<()> {
        // /proc/PID/mem is read and written with pread/pwrite at the
        // address as file offset: a negative offset is EINVAL.
        if (addr as i64) < 0 {
            return Err(Errno::EINVAL);
        }
        // mem_rw moves at most a page's worth of bytes per access_remote_vm
        // call, from wherever the previous call stopped, so an unaligned
        // access looks up (and marks accessed) a page once per call that
        // touches it.
        let mut chunk_start = addr;
        let mut left = len;
        while left > 0 {
            let chunk = left.min(PAGE_SIZE);
            let mut cur = chunk_start;
            let mut in_chunk = chunk;
            while in_chunk > 0 {
                let page = cur & !(PAGE_SIZE - 1);
                let n = in_chunk.min(PAGE_SIZE - (cur - page)) as usize;
                let (p, k) = self.parts(pid)?;
                let frame = match p.mm.gup_force(k, cur, write) {
                    Ok(f) => f,
                    // __access_remote_vm: where no region lies, a stack
                    // below may grow down to the address; then it retries.
                    Err(_)
                        if p.mm.vma_containing(cur).is_none() && p.mm.expand_stack_to(k, cur) =>
                    {
                        p.mm.gup_force(k, cur, write).map_err(|_| Errno::EIO)?
                    }
                    Err(_) => return Err(Errno::EIO),
                };
                // get_user_pages_remote adds FOLL_TOUCH.
                p.mm.mark_accessed(k, cur);
                each(&mut k.phys, frame, (cur - page) as usize, n);
                in_chunk -= n as u64;
                cur = cur.wrapping_add(n as u64);
            }
            left -= chunk;
            chunk_start = chunk_start.wrapping_add(chunk);
        }
        Ok(())
    }
}

/// `dup_mmap`: the child's address space from the parent's regions and
/// page tables.
fn dup_mmap(
    k: &mut Kernel,
    parent: &ForkSource,
    ptables: Option<&PageTables>,
) -> SysResult<AddressSpace> {
    let mut child = AddressSpace::empty(parent.layout, parent.rlimits);
    child.set_names(parent.names.clone());
    child.caps = parent.caps;
    // mm_init: only VM_NOHUGEPAGE of def_flags is inherited.
    child.def_flags = parent.def_flags & VmFlags::NOHUGEPAGE;
    match dup_mmap_into(k, parent, ptables, &mut child) {
        Ok(()) => Ok(child),
        Err(e) => {
            // A fork that fails half-way (out of memory) tears the partial
            // child down as exit would (mmput): every reference it took and
            // every charge goes back.
            let all: Vec<Vma> = child.vmas().collect();
            for v in &all {
                child.zap_range(k, v, v.start(), v.end());
            }
            if let Some(mut t) = child.mem.tables.take() {
                t.destroy(&mut k.phys);
            }
            let accounted: u64 = all
                .iter()
                .filter(|v| v.flags().contains(VmFlags::ACCOUNT))
                .map(|v| v.pages())
                .sum();
            k.vm_unacct_memory(accounted);
            k.release_regions(&child, &all);
            Err(e)
        }
    }
}

/// The body of [`dup_mmap`], filling `child`; on error `child` holds what
/// was copied so far (every inserted accounted region charged).
fn dup_mmap_into(
    k: &mut Kernel,
    parent: &ForkSource,
    ptables: Option<&PageTables>,
    child: &mut AddressSpace,
) -> SysResult<()> {
    for v in &parent.regions {
        if v.flags().contains(VmFlags::DONTCOPY) {
            continue;
        }
        if v.flags().contains(VmFlags::ACCOUNT) {
            k.vm_enough_memory(child, v.pages(), false)?;
        }
        let mut c = *v;
        c.attrs.flags -= VmFlags::LOCKED_MASK;
        if v.flags().contains(VmFlags::WIPEONFORK) {
            c.attrs.anon_vma = None;
            c.attrs.anon_inherited = false;
        } else if let Some(parent_av) = v.attrs.anon_vma {
            // anon_vma_fork: the child gets its own anon_vma chained to the
            // parent's, so it merges only with that very anon_vma.
            c.attrs.anon_vma = Some(k.new_child_anon_vma(parent_av));
            c.attrs.anon_inherited = true;
        }
        if let Err(e) = child.insert(c) {
            if c.flags().contains(VmFlags::ACCOUNT) {
                k.vm_unacct_memory(c.pages());
            }
            return Err(e);
        }
        child.account_new(c.flags(), c.pages());
    }
    child.counters.hiwater_vm = child.counters.total_vm;
    let Some(ptables) = ptables else {
        return Ok(());
    };
    // copy_page_range for the regions that need it. copy_pte_range counts
    // what it copies and adds the totals to the child's resident-set
    // counters once per call: per page table within each region, in order
    // (the per-CPU counters fold on the running sum, so the grouping shows
    // in VmHWM).
    let mut rss: Vec<[i64; 3]> = Vec::new();
    let mut rss_key = u64::MAX;
    let mut rss_cur = [0i64; 3];
    for v in &parent.regions {
        let f = v.flags();
        let needs_copy = !f.intersects(VmFlags::DONTCOPY | VmFlags::WIPEONFORK)
            && (v.attrs.anon_vma.is_some() || f.intersects(VmFlags::PFNMAP | VmFlags::MIXEDMAP));
        if !needs_copy {
            continue;
        }
        let cow = f & (VmFlags::SHARED | VmFlags::MAYWRITE) == VmFlags::MAYWRITE;
        // copy_pte_range allocates the child's table for every extent where
        // the parent has one, whether or not anything in it is present.
        let mut va = v.start();
        while va < v.end() {
            match ptables.slot_or_next(&k.phys, va) {
                Ok(_) => {
                    if child.mem.tables.is_none() {
                        child.mem.tables =
                            Some(PageTables::new(&mut k.phys).map_err(|_| Errno::ENOMEM)?);
                    }
                    if let Some(t) = child.mem.tables.as_mut() {
                        t.ensure_pte_table(&mut k.phys, va)
                            .map_err(|_| Errno::ENOMEM)?;
                    }
                    va = ((va >> 21) + 1) << 21;
                }
                // Nothing mapped in the span a missing table covers.
                Err(next) => va = next,
            }
        }
        let Some(ctables) = child.mem.tables.as_ref() else {
            continue;
        };
        let mut ctable: Option<(u64, crate::phys::Frame)> = None;
        let mut missing_table = false;
        ptables.update_range(&mut k.phys, v.start(), v.end(), |phys, va, e| {
            if !pgtable::pte_present(e) {
                return e;
            }
            let frame = pgtable::pte_frame(e);
            let mut parent_e = e;
            // The child's copy is old (pte_mkold), and clean when shared.
            let mut child_e = e & !bits::ACCESSED;
            let key = va >> 21;
            if e & bits::SPECIAL == 0 {
                let fl = phys.dup_for_fork(frame);
                let slot = if fl.contains(FrameFlags::ANON) {
                    0
                } else if fl.contains(FrameFlags::SWAPBACKED) {
                    2
                } else {
                    1
                };
                if rss_key != key {
                    if rss_key != u64::MAX {
                        rss.push(rss_cur);
                    }
                    rss_key = key;
                    rss_cur = [0; 3];
                }
                rss_cur[slot] += 1;
                if f.contains(VmFlags::SHARED) {
                    child_e &= !bits::DIRTY;
                }
            }
            if cow && e & bits::RW != 0 {
                parent_e &= !bits::RW;
                child_e &= !bits::RW;
            }
            // The child's table was made above: write its entry in place.
            let table = match ctable {
                Some((at, t)) if at == key => t,
                _ => match ctables.slot(phys, va) {
                    Some(slot) => {
                        ctable = Some((key, slot.table));
                        slot.table
                    }
                    None => {
                        missing_table = true;
                        return e;
                    }
                },
            };
            phys.write_u64(table, ((va >> 12) & 511) as usize * 8, child_e);
            parent_e
        });
        if missing_table {
            return Err(Errno::ENOMEM);
        }
        // The region's last table.
        if rss_key != u64::MAX {
            rss.push(rss_cur);
            rss_key = u64::MAX;
            rss_cur = [0; 3];
        }
    }
    for counts in &rss {
        if counts[0] != 0 {
            child.mem.rss_anon.add(counts[0]);
        }
        if counts[1] != 0 {
            child.mem.rss_file.add(counts[1]);
        }
        if counts[2] != 0 {
            child.mem.rss_shmem.add(counts[2]);
        }
    }
    child.mem.update_hiwater();
    Ok(())
}

impl AddressSpace {
    /// `get_user_pages` with `FOLL_FORCE` for one page: the checks of
    /// `check_vma_flags`, then the page faulted in and followed. A forced
    /// write follows only an exclusive anonymous page (`can_follow_write_pte`),
    /// so a write into a private mapping lands in a private copy.
    pub(crate) fn gup_force(
        &mut self,
        k: &mut crate::system::Kernel,
        addr: u64,
        write: bool,
    ) -> Result<crate::phys::Frame, FaultError> {
        let fail = FaultError::Signal(crate::fault::SigInfo {
            signo: crate::fault::SIGSEGV,
            code: crate::fault::SEGV_MAPERR,
            addr,
        });
        if !crate::fault::is_canonical(addr) || addr >= crate::layout::TASK_SIZE {
            return Err(fail);
        }
        let vma = self.vma_containing(addr).ok_or(fail)?;
        let f = vma.flags();
        if f.intersects(VmFlags::IO | VmFlags::PFNMAP) {
            return Err(fail);
        }
        if write {
            let cow = f & (VmFlags::SHARED | VmFlags::MAYWRITE) == VmFlags::MAYWRITE;
            if !f.contains(VmFlags::WRITE) && !cow {
                return Err(fail);
            }
        } else if !f.contains(VmFlags::READ) && !f.contains(VmFlags::MAYREAD) {
            return Err(fail);
        }
        for _ in 0..3 {
            let e = self.pte(&k.phys, addr);
            if pgtable::pte_present(e) {
                let frame = pgtable::pte_frame(e);
                if !write {
                    return Ok(frame);
                }
                let exclusive_anon = k
                    .phys
                    .flags(frame)
                    .contains(FrameFlags::ANON | FrameFlags::EXCLUSIVE)
                    && !(e & bits::SPECIAL != 0 && frame == k.phys.zero_page());
                if e & bits::RW != 0
                    || (exclusive_anon && !f.intersects(VmFlags::SHARED | VmFlags::MAYSHARE))
                {
                    return Ok(frame);
                }
            }
            let access = if write { Access::Write } else { Access::Read };
            // Counted on the task that faults: the debugger, not this one.
            self.handle_mm_fault(k, &vma, addr, access)?;
        }
        Err(fail)
    }
}

/// The parts of a parent that fork copies by value: settings and regions,
/// not pages.
struct ForkSource {
    layout: crate::layout::Layout,
    rlimits: crate::mm::Rlimits,
    caps: crate::mm::Capabilities,
    def_flags: VmFlags,
    regions: Vec<Vma>,
    names: Vec<alloc::string::String>,
    fds: BTreeMap<u64, crate::file::FileId>,
    vsyscall: bool,
}

impl ForkSource {
    fn of(p: &crate::system::Process) -> ForkSource {
        ForkSource {
            layout: p.mm.layout,
            rlimits: p.mm.rlimits,
            caps: p.mm.caps,
            def_flags: p.mm.def_flags,
            regions: p.mm.vmas().collect(),
            names: p.mm.names().to_vec(),
            fds: p.fds.clone(),
            vsyscall: p.vsyscall,
        }
    }
}
