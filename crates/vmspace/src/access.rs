//! Memory accesses by a process's CPU, as the scenario language makes them
//! (`load`, `store`, `exec`), and `mincore`.
//!
//! An access goes one page at a time in ascending order; a fault stops it at
//! the faulting byte, leaving earlier pages as they were written.

use alloc::vec::Vec;

use crate::addr::PAGE_SIZE;
use crate::errno::{Errno, SysResult};
use crate::fault::{is_vsyscall, Access, FaultError, SigInfo, SIGKILL, SI_KERNEL};
use crate::flags::VmFlags;
use crate::layout::TASK_SIZE;
use crate::pgtable;
use crate::system::{Pid, System};

/// How an access ended, when it did not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessError {
    /// The process got a signal (and, as a scenario does, jumped back out).
    Signal(SigInfo),
    /// The machine ran out of memory: the out-of-memory killer killed the
    /// process, which no longer exists.
    Killed(SigInfo),
    /// No such process.
    NoProcess,
}

/// FNV-1a 64-bit, the hash `load` reports.
#[derive(Clone, Copy, Debug)]
pub struct Fnv1a(pub u64);

impl Fnv1a {
    /// The offset basis.
    pub const fn new() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
    /// Feeds bytes.
    pub fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

impl Default for Fnv1a {
    fn default() -> Self {
        Self::new()
    }
}

impl System {
    /// Runs `each(frame bytes range)` over `[addr, addr + len)` page by page
    /// with the access kind, stopping at the first fault.
    fn access(
        &mut self,
        pid: Pid,
        addr: u64,
        len: u64,
        kind: Access,
        each: impl FnMut(&mut crate::phys::PhysMem, crate::phys::Frame, usize, usize),
    ) -> Result<(), AccessError> {
        let r = self.access_pages(pid, addr, len, kind, each);
        // A fault may have grown a grows-down region.
        self.sync_grown(pid);
        r
    }

    fn access_pages(
        &mut self,
        pid: Pid,
        addr: u64,
        len: u64,
        kind: Access,
        mut each: impl FnMut(&mut crate::phys::PhysMem, crate::phys::Frame, usize, usize),
    ) -> Result<(), AccessError> {
        let mut cur = addr;
        let mut left = len;
        while left > 0 {
            let page = cur & !(PAGE_SIZE - 1);
            let n = left.min(PAGE_SIZE - (cur - page)) as usize;
            let (p, k) = self.parts(pid).map_err(|_| AccessError::NoProcess)?;
            match p.mm.translate(k, cur, kind) {
                Ok(frame) => {
                    let off = (cur - page) as usize;
                    each(&mut k.phys, frame, off, n);
                }
                Err(FaultError::Signal(s)) => return Err(AccessError::Signal(s)),
                // Reclaim a mapped disk-file page and try the page again;
                // only with nothing left to reclaim does the OOM killer act.
                Err(FaultError::OutOfMemory) if self.reclaim_mapped() => continue,
                Err(FaultError::OutOfMemory) => {
                    let _ = self.exit(pid);
                    return Err(AccessError::Killed(SigInfo {
                        signo: SIGKILL,
                        code: SI_KERNEL,
                        addr: 0,
                    }));
                }
            }
            left -= n as u64;
            cur = cur.wrapping_add(n as u64);
        }
        Ok(())
    }

    /// `load(addr, len)`: reads the bytes; returns their FNV-1a hash.
    pub fn load(&mut self, pid: Pid, addr: u64, len: u64) -> Result<u64, AccessError> {
        let mut h = Fnv1a::new();
        self.access(pid, addr, len, Access::Read, |phys, f, off, n| {
            h.write(&phys.data(f)[off..off + n]);
        })?;
        Ok(h.0)
    }

    /// `store(addr, len, byte)`: writes `len` copies of `byte`.
    pub fn store(&mut self, pid: Pid, addr: u64, len: u64, byte: u8) -> Result<(), AccessError> {
        self.access(pid, addr, len, Access::Write, |phys, f, off, n| {
            let d = &mut phys.data_mut(f)[off..off + n];
            // A one-byte store (what a program's own `mov` does, and the
            // common scenario store) as a plain byte store: `fill` calls
            // libc's memset, whose AVX-512 variant writes one byte with a
            // masked vector store that stalls for hundreds of nanoseconds
            // when the frame is cold (the first touch after a file page is
            // mapped).
            if let [b] = d {
                *b = byte;
            } else {
                d.fill(byte);
            }
        })
    }

    /// Touches one byte at `addr` for read or write without changing it, as
    /// a program running its own code does (`write` rewrites the byte's own
    /// value). Used to model what a running process does to its own image.
    pub fn touch(&mut self, pid: Pid, addr: u64, write: bool) -> Result<(), AccessError> {
        let kind = if write { Access::Write } else { Access::Read };
        self.access(pid, addr, 1, kind, |_, _, _, _| {})
    }

    /// `exec(addr)`: fetches one instruction byte. Fetches from the
    /// vsyscall page are emulated by the kernel and succeed.
    pub fn exec(&mut self, pid: Pid, addr: u64) -> Result<(), AccessError> {
        if is_vsyscall(addr) {
            return if self.process(pid).is_some() {
                Ok(())
            } else {
                Err(AccessError::NoProcess)
            };
        }
        self.access(pid, addr, 1, Access::Exec, |_, _, _, _| {})
    }

    /// `mincore(addr, len)`: one byte per page, 1 when resident. Stops with
    /// `ENOMEM` at the first unmapped page (the vector so far is not
    /// returned, as the scenario prints only success vectors).
    pub fn mincore(&mut self, pid: Pid, start: u64, len: u64) -> SysResult<Vec<u8>> {
        if start & (PAGE_SIZE - 1) != 0 {
            return Err(Errno::EINVAL);
        }
        let sum = start.wrapping_add(len);
        if sum < start || sum > TASK_SIZE {
            return Err(Errno::ENOMEM);
        }
        let pages = len.div_ceil(PAGE_SIZE);
        let p = self.process(pid).ok_or(Errno::ESRCH)?;
        let k = &self.kernel;
        let mut vec = Vec::with_capacity(pages.min(1 << 20) as usize);
        let mut addr = start;
        for _ in 0..pages {
            let vma = p.mm.vma_containing(addr).ok_or(Errno::ENOMEM)?;
            let resident = if !p.mm.vma_is_anonymous(&vma) && vma.attrs.file.is_none() {
                // Special mappings (vdso, vvar) report everything resident.
                true
            } else {
                let e = p.mm.pte(&k.phys, addr);
                if pgtable::pte_present(e) {
                    true
                } else if let Some(inode) = vma
                    .attrs
                    .file
                    .and_then(|f| k.files.file(f))
                    .map(|f| f.inode)
                {
                    k.cache.get(inode, vma.pgoff_at(addr)).is_some()
                } else {
                    false
                }
            };
            let _ = VmFlags::empty();
            vec.push(u8::from(resident));
            addr += PAGE_SIZE;
        }
        Ok(vec)
    }
}
