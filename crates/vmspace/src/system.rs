//! The kernel around the address spaces: processes by pid, the files they
//! map, the system-wide commit charge, and the machine's parameters.
//!
//! A [`System`] owns everything; there is no global state, so many systems
//! can run side by side. System calls enter here with a pid, as they would
//! enter Linux from a task, and are handed to that process's
//! [`AddressSpace`] with the shared [`Kernel`] state.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::addr::PAGE_SHIFT;
use crate::errno::{Errno, SysResult};
use crate::file::{FileId, FileTable, InodeId, InodeKind, SHMEM_DEV};
use crate::mm::AddressSpace;
use crate::mm::MmapFile;
use crate::params::Params;
use crate::uapi;
use crate::vma::Vma;
use crate::VmFlags;

/// A process id.
pub type Pid = u64;

/// State shared by every process: parameters, files, commit charge.
#[derive(Clone, Debug)]
pub struct Kernel {
    /// Machine parameters.
    pub params: Params,
    /// Inodes and open files.
    pub files: FileTable,
    /// `vm_committed_as`, in pages.
    pub committed: u64,
    /// Shared-memory objects whose last mapping may just have gone.
    release_candidates: Vec<InodeId>,
    /// Pages charged per shmem object, returned when it is freed.
    shmem_charge: BTreeMap<InodeId, u64>,
    next_anon_vma: u32,
    /// Each forked `anon_vma`'s parent (`anon_vma->parent`): the chain a
    /// region's pages may be found through.
    anon_vma_parent: BTreeMap<crate::vma::AnonVmaId, crate::vma::AnonVmaId>,
    /// Simulated RAM.
    pub phys: crate::phys::PhysMem,
    /// Pages of shared-memory objects and files.
    pub cache: crate::fault::PageCache,
    /// The storage behind disk files, if the embedder gave one.
    pub(crate) store: crate::store::StoreSlot,
}

impl Kernel {
    /// A kernel with these parameters and no files.
    pub fn new(params: Params) -> Self {
        Kernel {
            phys: crate::phys::PhysMem::new(params.ram),
            cache: crate::fault::PageCache::default(),
            params,
            files: FileTable::new(),
            committed: 0,
            release_candidates: Vec::new(),
            shmem_charge: BTreeMap::new(),
            next_anon_vma: 1,
            anon_vma_parent: BTreeMap::new(),
            store: crate::store::StoreSlot::default(),
        }
    }

    /// A fresh `anon_vma` identity.
    pub fn new_anon_vma(&mut self) -> crate::vma::AnonVmaId {
        let id = crate::vma::AnonVmaId(self.next_anon_vma);
        self.next_anon_vma += 1;
        id
    }

    /// A fresh `anon_vma` for a forked region, chained to its parent's.
    pub fn new_child_anon_vma(&mut self, parent: crate::vma::AnonVmaId) -> crate::vma::AnonVmaId {
        let id = self.new_anon_vma();
        self.anon_vma_parent.insert(id, parent);
        id
    }

    /// `lru_add_drain`: the CPU's LRU batches move (see [`crate::lru`]).
    pub(crate) fn lru_add_drain(&mut self) {
        self.phys.lru_add_drain();
    }

    /// Is `ancestor` on `av`'s chain (itself or a parent of a parent...)?
    pub fn anon_vma_chain_contains(
        &self,
        av: crate::vma::AnonVmaId,
        ancestor: crate::vma::AnonVmaId,
    ) -> bool {
        let mut cur = Some(av);
        while let Some(a) = cur {
            if a == ancestor {
                return true;
            }
            cur = self.anon_vma_parent.get(&a).copied();
        }
        false
    }

    /// `__vm_enough_memory`: charges `pages` to the commit total, or refuses
    /// with `ENOMEM` under the overcommit policy.
    pub fn vm_enough_memory(
        &mut self,
        mm: &AddressSpace,
        pages: u64,
        cap_sys_admin: bool,
    ) -> SysResult<()> {
        let p = &self.params;
        self.committed = self.committed.saturating_add(pages);
        let ram_pages = p.ram >> PAGE_SHIFT;
        let swap_pages = p.swap >> PAGE_SHIFT;
        match p.overcommit_memory {
            1 => return Ok(()),
            0 => {
                if pages > ram_pages + swap_pages {
                    self.vm_unacct_memory(pages);
                    return Err(Errno::ENOMEM);
                }
                return Ok(());
            }
            _ => {}
        }
        let mut allowed =
            (ram_pages as u128 * p.overcommit_ratio as u128 / 100) as i128 + swap_pages as i128;
        if !cap_sys_admin {
            allowed -= (p.admin_reserve >> PAGE_SHIFT) as i128;
        }
        let reserve = (p.user_reserve >> PAGE_SHIFT) as i128;
        allowed -= ((mm.counters.total_vm / 32) as i128).min(reserve);
        if (self.committed as i128) < allowed {
            return Ok(());
        }
        self.vm_unacct_memory(pages);
        Err(Errno::ENOMEM)
    }

    /// `vm_unacct_memory`.
    pub fn vm_unacct_memory(&mut self, pages: u64) {
        self.committed = self.committed.saturating_sub(pages);
    }

    /// The commit limit of overcommit mode 2, in pages (`CommitLimit`).
    pub fn commit_limit(&self) -> u64 {
        let p = &self.params;
        ((p.ram >> PAGE_SHIFT) as u128 * p.overcommit_ratio as u128 / 100) as u64
            + (p.swap >> PAGE_SHIFT)
    }

    /// `shmem_zero_setup`: the shmem object behind a new shared anonymous
    /// mapping of `len` bytes. `charged` says its pages were committed.
    pub(crate) fn new_shmem_anon(&mut self, len: u64, charged: bool) -> FileId {
        let inode = self.files.create_inode(
            InodeKind::ShmemAnon,
            SHMEM_DEV,
            String::from("/dev/zero"),
            true,
        );
        if let Some(i) = self.files.inode_mut(inode) {
            i.size = len;
        }
        if charged {
            self.shmem_charge.insert(inode, len >> PAGE_SHIFT);
        }
        self.files.open(inode, true, true)
    }

    /// Notes regions that just left an address space, so that objects no
    /// longer mapped anywhere can be released.
    /// `exit_mmap`: every page of `mm` unmapped, its page tables freed, its
    /// commit charge returned, its shared-memory objects offered for release
    /// (exit, and an image whose import ran out of memory part-way). The
    /// LRU batches are not drained (Linux 6.18).
    pub(crate) fn teardown(&mut self, mm: &mut AddressSpace) {
        let all: Vec<Vma> = mm.vmas().collect();
        mm.mem.update_hiwater();
        for v in &all {
            mm.zap_range(self, v, v.start(), v.end());
        }
        if let Some(mut t) = mm.mem.tables.take() {
            t.destroy(&mut self.phys);
        }
        let accounted: u64 = all
            .iter()
            .filter(|v| v.flags().contains(crate::VmFlags::ACCOUNT))
            .map(|v| v.pages())
            .sum();
        self.vm_unacct_memory(accounted);
        self.release_regions(mm, &all);
    }

    pub(crate) fn release_regions(&mut self, _mm: &AddressSpace, removed: &[Vma]) {
        for v in removed {
            let Some(inode) = v
                .attrs
                .file
                .and_then(|f| self.files.file(f))
                .map(|f| f.inode)
            else {
                continue;
            };
            let anon_shmem = self
                .files
                .inode(inode)
                .is_some_and(|i| i.kind == InodeKind::ShmemAnon);
            if anon_shmem && !self.release_candidates.contains(&inode) {
                self.release_candidates.push(inode);
            }
        }
    }
}

/// A process: pid, address space and descriptor table.
#[derive(Clone, Debug)]
pub struct Process {
    /// Process id.
    pub pid: Pid,
    /// The address space.
    pub mm: AddressSpace,
    /// Open descriptors.
    pub fds: BTreeMap<u64, FileId>,
    /// Whether the `[vsyscall]` gate page is shown in maps.
    pub vsyscall: bool,
}

/// A whole simulated machine.
///
/// ```
/// use vmspace::{System, Params};
/// use vmspace::uapi::*;
/// let mut sys = System::new(Params::default());
/// let pid = sys.spawn_default();
/// let a = sys.mmap(pid, 0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, u64::MAX, 0).unwrap();
/// assert_eq!(a, 0x7ffff7ff5000);
/// assert!(sys.maps(pid).unwrap().contains("7ffff7ff5000-7ffff7ff7000 rw-p"));
/// ```
#[derive(Clone, Debug)]
pub struct System {
    /// Shared kernel state.
    pub kernel: Kernel,
    procs: BTreeMap<Pid, Process>,
    next_pid: Pid,
    /// Which regions of which processes map each file (see
    /// [`crate::file_rmap`]).
    file_rmap: crate::file_rmap::FileRmap,
}

impl System {
    /// A machine with no processes.
    pub fn new(params: Params) -> Self {
        System {
            kernel: Kernel::new(params),
            procs: BTreeMap::new(),
            file_rmap: crate::file_rmap::FileRmap::default(),
            next_pid: 1,
        }
    }

    /// Adds a process with a prepared address space; returns its pid.
    pub fn add_process(&mut self, pid: Option<Pid>, mm: AddressSpace, vsyscall: bool) -> Pid {
        let pid = pid
            .filter(|p| !self.procs.contains_key(p))
            .unwrap_or(self.next_pid);
        self.next_pid = self.next_pid.max(pid + 1);
        self.procs.insert(
            pid,
            Process {
                pid,
                mm,
                fds: BTreeMap::new(),
                vsyscall,
            },
        );
        self.sync_files_all(pid);
        pid
    }

    /// The file reverse map: which regions map each file.
    pub fn file_rmap(&self) -> &crate::file_rmap::FileRmap {
        &self.file_rmap
    }

    /// After a call that may have changed `pid`'s regions over
    /// `[addr, addr + len)`: the file reverse map follows.
    /// `may_add`: the call could have made a file (or shared) region where
    /// the process had none.
    pub(crate) fn sync_files(&mut self, pid: Pid, addr: u64, len: u64, may_add: bool) {
        let lo = addr & !0xfff;
        let hi = addr.saturating_add(len).saturating_add(0xfff) & !0xfff;
        self.sync_grown(pid);
        if let Some(p) = self.procs.get(&pid) {
            self.file_rmap
                .resync(pid, &p.mm, &self.kernel.files, lo, hi.max(lo), may_add);
        }
    }

    /// After memory accesses: the regions a fault grew (stack growth), if
    /// any, in the file reverse map.
    pub(crate) fn sync_grown(&mut self, pid: Pid) {
        if let Some(p) = self.procs.get_mut(&pid) {
            if let Some((lo, hi)) = p.mm.take_regions_grown() {
                self.file_rmap
                    .resync(pid, &p.mm, &self.kernel.files, lo, hi, true);
            }
        }
    }

    /// [`sync_files`](Self::sync_files) for every region of `pid`.
    pub(crate) fn sync_files_all(&mut self, pid: Pid) {
        if let Some(p) = self.procs.get_mut(&pid) {
            let _ = p.mm.take_regions_grown();
            self.file_rmap.resync_all(pid, &p.mm, &self.kernel.files);
        }
    }

    /// Starts the default process: a freshly executed static executable
    /// (see [`crate::exec`]).
    pub fn spawn_default(&mut self) -> Pid {
        let (mm, vsyscall) = crate::exec::default_image(&mut self.kernel);
        self.add_process(None, mm, vsyscall)
    }

    /// The process with this pid.
    pub fn process(&self, pid: Pid) -> Option<&Process> {
        self.procs.get(&pid)
    }

    /// The process with this pid, mutably.
    pub fn process_mut(&mut self, pid: Pid) -> Option<&mut Process> {
        self.procs.get_mut(&pid)
    }

    /// Pids of live processes.
    pub fn pids(&self) -> impl Iterator<Item = Pid> + '_ {
        self.procs.keys().copied()
    }

    pub(crate) fn parts(&mut self, pid: Pid) -> SysResult<(&mut Process, &mut Kernel)> {
        let proc_ = self.procs.get_mut(&pid).ok_or(Errno::ESRCH)?;
        Ok((proc_, &mut self.kernel))
    }

    /// After a call: free shmem objects no process maps any more.
    pub(crate) fn settle(&mut self) {
        let candidates = core::mem::take(&mut self.kernel.release_candidates);
        for inode in candidates {
            let still_mapped = self.procs.values().any(|p| {
                p.mm.vmas().any(|v| {
                    v.attrs
                        .file
                        .and_then(|f| self.kernel.files.file(f))
                        .is_some_and(|of| of.inode == inode)
                })
            });
            if !still_mapped {
                // The last mapping of a shared anonymous object is gone: the
                // object, its pages and its commit charge go with it.
                if let Some(pages) = self.kernel.shmem_charge.remove(&inode) {
                    self.kernel.vm_unacct_memory(pages);
                }
                let pages = self.kernel.cache.remove_inode(inode);
                // shmem_evict_inode truncates through folio batches; the
                // first release drains the CPU's LRU batches.
                if !pages.is_empty() {
                    self.kernel.lru_add_drain();
                }
                for f in pages {
                    self.kernel.phys.put(f);
                }
            }
        }
    }

    /// `mmap(addr, len, prot, flags, fd, offset)`; returns the address.
    #[allow(clippy::too_many_arguments)]
    pub fn mmap(
        &mut self,
        pid: Pid,
        addr: u64,
        len: u64,
        prot: u64,
        flags: u64,
        fd: u64,
        off: u64,
    ) -> SysResult<u64> {
        if off & 0xfff != 0 {
            return Err(Errno::EINVAL);
        }
        let (p, k) = self.parts(pid)?;
        let file = if flags & uapi::MAP_ANONYMOUS == 0 {
            let fd = fd as i32 as i64;
            let id = u64::try_from(fd)
                .ok()
                .and_then(|fd| p.fds.get(&fd).copied());
            Some(MmapFile {
                file: id.ok_or(Errno::EBADF)?,
            })
        } else {
            if flags & uapi::MAP_HUGETLB != 0 {
                return mmap_hugetlb_anon(flags, len);
            }
            None
        };
        // A file mapping, or shared anonymous memory (a shmem object).
        let file_backed = file.is_some() || flags & uapi::MAP_TYPE != uapi::MAP_PRIVATE;
        let r =
            p.mm.mmap(k, addr, len, prot, flags, file, off >> PAGE_SHIFT);
        match &r {
            Ok(o) => self.sync_files(pid, o.addr, len, file_backed),
            Err(_) if flags & (uapi::MAP_FIXED | uapi::MAP_FIXED_NOREPLACE) != 0 => {
                self.sync_files(pid, addr, len, file_backed)
            }
            Err(_) => {}
        }
        self.settle();
        r.map(|o| o.addr)
    }

    /// `remap_file_pages(start, size, prot, pgoff, flags)` (see
    /// [`AddressSpace::remap_file_pages`]).
    pub fn remap_file_pages(
        &mut self,
        pid: Pid,
        start: u64,
        size: u64,
        prot: u64,
        pgoff: u64,
        flags: u64,
    ) -> SysResult<u64> {
        let (p, k) = self.parts(pid)?;
        let r = p.mm.remap_file_pages(k, start, size, prot, pgoff, flags);
        self.sync_files(pid, start, size, true);
        self.settle();
        r
    }

    /// `munmap(addr, len)`.
    pub fn munmap(&mut self, pid: Pid, addr: u64, len: u64) -> SysResult<u64> {
        let (p, k) = self.parts(pid)?;
        let r = p.mm.munmap(k, addr, len);
        self.sync_files(pid, addr, len, false);
        self.settle();
        r.map(|_| 0)
    }

    /// `mprotect(addr, len, prot)`.
    pub fn mprotect(&mut self, pid: Pid, addr: u64, len: u64, prot: u64) -> SysResult<u64> {
        let (p, k) = self.parts(pid)?;
        let r = p.mm.mprotect(k, addr, len, prot);
        self.sync_files(pid, addr, len, false);
        r
    }

    /// `mremap(old, old_size, new_size, flags, new_addr)`; returns the address.
    pub fn mremap(
        &mut self,
        pid: Pid,
        old: u64,
        old_size: u64,
        new_size: u64,
        flags: u64,
        new_addr: u64,
    ) -> SysResult<u64> {
        let (p, k) = self.parts(pid)?;
        let r = p.mm.mremap(k, old, old_size, new_size, flags, new_addr);
        self.sync_files(pid, old, old_size.max(new_size), true);
        match r {
            Ok(a) => self.sync_files(pid, a, new_size, true),
            Err(_) if flags & uapi::MREMAP_FIXED != 0 => {
                self.sync_files(pid, new_addr, new_size, true)
            }
            Err(_) => {}
        }
        self.settle();
        r
    }

    /// `brk(addr)`: the new break, or the old one on failure.
    pub fn brk(&mut self, pid: Pid, addr: u64) -> SysResult<u64> {
        let (p, k) = self.parts(pid)?;
        let old = p.mm.layout.brk;
        let r = p.mm.brk(k, addr);
        let (lo, hi) = (old.min(r), old.max(r));
        self.sync_files(pid, lo, hi - lo, false);
        self.settle();
        Ok(r)
    }

    /// `madvise(addr, len, advice)`.
    pub fn madvise(&mut self, pid: Pid, addr: u64, len: u64, advice: u64) -> SysResult<u64> {
        let (p, k) = self.parts(pid)?;
        let range = crate::mm::madvise_range(addr, len, advice)?;
        let holes: Vec<(InodeId, u64, u64)> = match range {
            // The file ranges to punch, once the arguments are valid:
            // region by region, up to the first one madvise_remove refuses;
            // a hole in the range (ENOMEM) stops nothing.
            Some((addr, end)) if advice == uapi::MADV_REMOVE => {
                p.mm.vmas_in(addr, end)
                    .take_while(|v| {
                        let f = v.flags();
                        !f.contains(VmFlags::LOCKED)
                            && v.attrs.file.is_some()
                            && f.contains(VmFlags::SHARED | VmFlags::MAYWRITE)
                    })
                    .filter_map(|v| {
                        let inode = v.attrs.file.and_then(|f| k.files.file(f))?.inode;
                        let lo = v.pgoff_at(addr.max(v.start()));
                        let hi = v.pgoff_at(end.min(v.end()) - 1);
                        Some((inode, lo, hi))
                    })
                    .collect()
            }
            _ => Vec::new(),
        };
        let r = p.mm.madvise(k, addr, len, advice);
        self.sync_files(pid, addr, len, false);
        for (inode, lo, hi) in holes {
            self.punch_hole(inode, lo, hi);
        }
        r
    }

    /// `mlock(addr, len)`.
    pub fn mlock(&mut self, pid: Pid, addr: u64, len: u64) -> SysResult<u64> {
        self.mlock2(pid, addr, len, 0)
    }

    /// `mlock2(addr, len, flags)`.
    pub fn mlock2(&mut self, pid: Pid, addr: u64, len: u64, flags: u64) -> SysResult<u64> {
        let (p, k) = self.parts(pid)?;
        let r = p.mm.mlock2(k, addr, len, flags);
        self.sync_files(pid, addr, len, false);
        r
    }

    /// `munlock(addr, len)`.
    pub fn munlock(&mut self, pid: Pid, addr: u64, len: u64) -> SysResult<u64> {
        let (p, k) = self.parts(pid)?;
        let r = p.mm.munlock(k, addr, len);
        self.sync_files(pid, addr, len, false);
        r
    }

    /// `mlockall(flags)`.
    pub fn mlockall(&mut self, pid: Pid, flags: u64) -> SysResult<u64> {
        let (p, k) = self.parts(pid)?;
        let r = p.mm.mlockall(k, flags);
        self.sync_files_all(pid);
        r
    }

    /// `munlockall()`.
    pub fn munlockall(&mut self, pid: Pid) -> SysResult<u64> {
        let (p, k) = self.parts(pid)?;
        let r = p.mm.munlockall(k);
        self.sync_files_all(pid);
        r
    }

    /// `mseal(addr, len, flags)`.
    pub fn mseal(&mut self, pid: Pid, addr: u64, len: u64, flags: u64) -> SysResult<u64> {
        let (p, k) = self.parts(pid)?;
        let r = p.mm.mseal(k, addr, len, flags);
        self.sync_files(pid, addr, len, false);
        r
    }

    /// `setrlimit(resource, soft, hard)`.
    pub fn setrlimit(&mut self, pid: Pid, resource: u64, soft: u64, hard: u64) -> SysResult<u64> {
        let (p, _) = self.parts(pid)?;
        p.mm.setrlimit(resource, soft, hard)
    }

    /// `/proc/PID/maps`.
    pub fn maps(&self, pid: Pid) -> SysResult<String> {
        let p = self.procs.get(&pid).ok_or(Errno::ESRCH)?;
        Ok(crate::procfs::maps(p, &self.kernel))
    }

    /// `/proc/PID/smaps`.
    pub fn smaps(&self, pid: Pid) -> SysResult<String> {
        let p = self.procs.get(&pid).ok_or(Errno::ESRCH)?;
        Ok(crate::procfs::smaps(p, &self.kernel))
    }

    /// `/proc/PID/smaps_rollup`.
    pub fn smaps_rollup(&self, pid: Pid) -> SysResult<String> {
        let p = self.procs.get(&pid).ok_or(Errno::ESRCH)?;
        Ok(crate::procfs::smaps_rollup(p, &self.kernel))
    }

    /// The `VmPeak`..`VmSwap` lines of `/proc/PID/status`.
    pub fn status(&self, pid: Pid) -> SysResult<String> {
        let p = self.procs.get(&pid).ok_or(Errno::ESRCH)?;
        Ok(crate::procfs::status(p))
    }

    /// `exit_mmap` and the end of the process: every region and page table
    /// is torn down, every page reference dropped, the commit charge of its
    /// accounted regions returned.
    pub fn exit(&mut self, pid: Pid) -> SysResult<()> {
        let mut p = self.procs.remove(&pid).ok_or(Errno::ESRCH)?;
        self.file_rmap.forget(pid);
        self.kernel.teardown(&mut p.mm);
        self.settle();
        Ok(())
    }

    /// Checks every process's invariants, then that physical memory
    /// balances: each frame's reference count is exactly its page-table
    /// mappings plus its page-cache reference plus its LRU batch entries
    /// (page tables and the zero page hold one each), its map count exactly
    /// its mappings, and no frame is lost.
    pub fn check(&self) -> Result<(), String> {
        use alloc::collections::BTreeMap;
        use alloc::format;
        let phys = &self.kernel.phys;
        let zero = phys.zero_page();
        let mut refs: BTreeMap<crate::phys::Frame, (u32, u32)> = BTreeMap::new();
        refs.insert(zero, (1, 0));
        self.file_rmap.check(
            self.procs.iter().map(|(&pid, p)| (pid, &p.mm)),
            &self.kernel.files,
        )?;
        for p in self.procs.values() {
            p.mm.check()?;
            p.mm.check_pages(&self.kernel)?;
            if let Some(t) = p.mm.mem.tables.as_ref() {
                refs.entry(t.root()).or_default().0 += 1;
                t.for_each_table(phys, |f| refs.entry(f).or_default().0 += 1);
                t.for_each_entry(phys, |_, e| {
                    if crate::pgtable::pte_present(e) && e & crate::pgtable::bits::SPECIAL == 0 {
                        let r = refs.entry(crate::pgtable::pte_frame(e)).or_default();
                        r.0 += 1;
                        r.1 += 1;
                    }
                });
            }
        }
        for f in self.kernel.cache.frames() {
            refs.entry(f).or_default().0 += 1;
        }
        // Each LRU batch entry holds a reference.
        for f in phys.lru.held() {
            refs.entry(f).or_default().0 += 1;
        }
        for (&f, &(rc, mc)) in &refs {
            if phys.refcount(f) != rc {
                return Err(format!(
                    "frame {} has {} references, {rc} expected",
                    f.number(),
                    phys.refcount(f)
                ));
            }
            if f != zero && phys.mapcount(f) != mc {
                return Err(format!(
                    "frame {} has map count {}, {mc} mappings",
                    f.number(),
                    phys.mapcount(f)
                ));
            }
        }
        if phys.used_frames() != refs.len() as u64 {
            return Err(format!(
                "{} frames in use, {} accounted for",
                phys.used_frames(),
                refs.len()
            ));
        }
        Ok(())
    }
}

/// Anonymous `MAP_HUGETLB`: the huge page size must be one the machine has
/// (2 MiB by default, or 1 GiB); the simulated machine reserves no huge
/// pages, so a valid request fails as Linux's does with `nr_hugepages` 0.
fn mmap_hugetlb_anon(flags: u64, len: u64) -> SysResult<u64> {
    let log = (flags >> uapi::MAP_HUGE_SHIFT) & uapi::MAP_HUGE_MASK;
    if log != 0 && log != 21 && log != 30 {
        return Err(Errno::EINVAL);
    }
    if len == 0 {
        return Err(Errno::EINVAL);
    }
    Err(Errno::ENOMEM)
}
