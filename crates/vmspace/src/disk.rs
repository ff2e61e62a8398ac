//! Disk files: regular files whose pages live in a [`FileStore`] behind the
//! page cache (see [`crate::store`] for the model).
//!
//! - A page is read from the storage the first time it is needed and starts
//!   clean; it counts as a file page, not shmem.
//! - Shared writable mappings track dirtying (`vma_wants_writenotify`): a
//!   read fault maps the page read-only, a write fault maps it writable and
//!   dirty.
//! - `msync(MS_SYNC)` writes the dirty pages of its range back and
//!   write-protects and cleans every entry mapping them (`folio_mkclean`),
//!   so the next store faults again and re-dirties the page.
//! - When memory runs out, unmapped cache pages of disk files are reclaimed
//!   (dirty ones written back first) before anything is killed.

use alloc::string::String;
use alloc::vec::Vec;

use crate::errno::{Errno, SysResult};
use crate::file::{Dev, Inode, InodeId, InodeKind};
use crate::pgtable::{self, bits};
use crate::phys::{Frame, FrameFlags};
use crate::store::{FileStore, StoreFile};
use crate::system::{Kernel, Pid, System};
use crate::VmFlags;

impl System {
    /// Plugs in the storage behind disk files (replacing any earlier one).
    pub fn set_store(&mut self, store: impl FileStore + 'static) {
        self.kernel.store.0 = Some(alloc::boxed::Box::new(store));
    }

    /// Opens `file` of the storage as a disk file of `size` bytes, shown as
    /// `path` on device `dev` with inode number `ino`; returns the
    /// descriptor. `writable` opens it read-write, else read-only. Without
    /// a storage it is `ENODEV`.
    ///
    /// ```
    /// use vmspace::store::{MemStore, StoreFile};
    /// use vmspace::uapi::*;
    /// use vmspace::{Params, System};
    ///
    /// let mut disk = MemStore::default();
    /// disk.files.insert(StoreFile(1), b"hello".to_vec());
    /// let mut sys = System::new(Params::default());
    /// sys.set_store(disk);
    /// let pid = sys.spawn_default();
    /// let dev = vmspace::file::Dev { major: 8, minor: 1 };
    /// let fd = sys.open_disk_file(pid, "/data/hello", dev, 12, StoreFile(1), 5, true).unwrap();
    /// let a = sys.mmap(pid, 0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0).unwrap();
    /// sys.store(pid, a, 1, b'j').unwrap();
    /// sys.msync(pid, a, 4096, MS_SYNC).unwrap();
    /// # let _ = a;
    /// ```
    #[allow(clippy::too_many_arguments)]
    pub fn open_disk_file(
        &mut self,
        pid: Pid,
        path: &str,
        dev: Dev,
        ino: u64,
        file: StoreFile,
        size: u64,
        writable: bool,
    ) -> SysResult<u64> {
        if self.kernel.store.0.is_none() {
            return Err(Errno::ENODEV);
        }
        let k = &mut self.kernel;
        let inode = k.files.add_inode(Inode {
            kind: InodeKind::Disk(file),
            dev,
            ino,
            path: String::from(path),
            deleted: false,
            size,
            mode: if writable { 0o644 } else { 0o444 },
        });
        let f = k.files.open(inode, true, writable);
        let p = self.process_mut(pid).ok_or(Errno::ESRCH)?;
        let mut fd = 3;
        while p.fds.contains_key(&fd) {
            fd += 1;
        }
        p.fds.insert(fd, f);
        Ok(fd)
    }

    /// Writes back the dirty cached pages `[first, last]` of a disk file:
    /// every entry mapping one is cleaned and write-protected, the page
    /// goes to the storage and is clean again. `EIO` if the storage fails.
    pub(crate) fn writeback(&mut self, inode: InodeId, first: u64, last: u64) -> SysResult<()> {
        let Some((file, size)) = self.kernel.disk_file(inode) else {
            return Ok(());
        };
        let pages: Vec<(u64, Frame)> = self.kernel.cache.range(inode, first, last).collect();
        for (index, frame) in pages {
            let mut dirty = self.kernel.phys.flags(frame).contains(FrameFlags::DIRTY);
            // folio_mkclean: every mapping's entry loses its dirty bit (into
            // the page's) and its write permission.
            for (pid, addr) in self.rmap(frame) {
                let Ok((p, k)) = self.parts(pid) else {
                    continue;
                };
                let Some(slot) = p.mm.mem.tables.as_ref().and_then(|t| t.slot(&k.phys, addr))
                else {
                    continue;
                };
                let e = pgtable::read(&k.phys, slot);
                dirty |= e & bits::DIRTY != 0;
                pgtable::write(&mut k.phys, slot, e & !(bits::DIRTY | bits::RW));
            }
            if dirty {
                let page = *self.kernel.phys.data(frame);
                let store = self.kernel.store.0.as_mut().ok_or(Errno::EIO)?;
                store
                    .write_page(file, index, &page, size)
                    .map_err(|_| Errno::EIO)?;
                let fl = self.kernel.phys.flags(frame);
                self.kernel.phys.set_flags(frame, fl - FrameFlags::DIRTY);
            }
        }
        Ok(())
    }

    /// Reclaim of a mapped disk-file page (`try_to_unmap` then the unmapped
    /// case): a page only its cache and its mappings hold, not mlocked, is
    /// unmapped everywhere (its entries' dirty bits passed to it) and then
    /// written back if dirty and freed. Whether one was found.
    pub(crate) fn reclaim_mapped(&mut self) -> bool {
        let k = &self.kernel;
        let victim = k.cache.entries().find(|&((inode, _), f)| {
            let mc = k.phys.mapcount(f);
            mc > 0
                && k.phys.refcount(f) == mc + 1
                && !k
                    .phys
                    .flags(f)
                    .intersects(FrameFlags::MLOCKED | FrameFlags::UNEVICTABLE)
                && k.is_disk(inode)
        });
        let Some((_, frame)) = victim else {
            return false;
        };
        for (pid, addr) in self.rmap(frame) {
            let Ok((p, k)) = self.parts(pid) else {
                continue;
            };
            let Some(v) = p.mm.vma_containing(addr) else {
                continue;
            };
            p.mm.zap_range(k, &v, addr, addr + 4096);
        }
        self.kernel.phys.mapcount(frame) == 0 && self.kernel.reclaim_one()
    }

    /// `msync`'s writeback: the disk-file pages of `[addr, addr + len)`
    /// of `pid`'s shared mappings.
    pub(crate) fn msync_writeback(&mut self, pid: Pid, addr: u64, len: u64) -> SysResult<()> {
        let Some(p) = self.process(pid) else {
            return Err(Errno::ESRCH);
        };
        let end = addr.saturating_add(len);
        let ranges: Vec<(InodeId, u64, u64)> =
            p.mm.vmas_in(addr, end)
                .filter(|v| v.flags().contains(VmFlags::SHARED))
                .filter_map(|v| {
                    let inode = v.attrs.file.and_then(|f| self.kernel.files.file(f))?.inode;
                    let lo = v.pgoff_at(addr.max(v.start()));
                    let hi = v.pgoff_at(end.min(v.end()) - 1);
                    Some((inode, lo, hi))
                })
                .collect();
        for (inode, lo, hi) in ranges {
            self.writeback(inode, lo, hi)?;
        }
        Ok(())
    }
}

/// Why a page-cache page could not be had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CacheError {
    /// No frame, even after reclaim.
    OutOfMemory,
    /// The storage failed to read the page.
    Io,
}

impl Kernel {
    /// A disk file's storage file and size, if `inode` is one.
    fn disk_file(&self, inode: InodeId) -> Option<(StoreFile, u64)> {
        match self.files.inode(inode) {
            Some(Inode {
                kind: InodeKind::Disk(file),
                size,
                ..
            }) => Some((*file, *size)),
            _ => None,
        }
    }

    /// Whether `inode` is a disk file.
    pub(crate) fn is_disk(&self, inode: InodeId) -> bool {
        self.disk_file(inode).is_some()
    }

    /// A frame for a user page, reclaiming unmapped disk-file cache pages
    /// when memory has run out.
    pub(crate) fn alloc_user_frame(&mut self, for_copy: bool) -> Option<Frame> {
        loop {
            let f = if for_copy {
                self.phys.alloc_for_copy()
            } else {
                self.phys.alloc()
            };
            if f.is_some() || !self.reclaim_one() {
                return f;
            }
        }
    }

    /// Frees one cache page of a disk file that nothing maps or holds (a
    /// dirty one is written back first); whether one was found.
    fn reclaim_one(&mut self) -> bool {
        let victim = self.cache.entries().find(|&((inode, _), f)| {
            self.phys.mapcount(f) == 0 && self.phys.refcount(f) == 1 && self.is_disk(inode)
        });
        let Some(((inode, index), frame)) = victim else {
            return false;
        };
        if self.phys.flags(frame).contains(FrameFlags::DIRTY) {
            let Some((file, size)) = self.disk_file(inode) else {
                return false;
            };
            let page = *self.phys.data(frame);
            let Some(store) = self.store.0.as_mut() else {
                return false;
            };
            if store.write_page(file, index, &page, size).is_err() {
                return false;
            }
        }
        for f in self.cache.remove_range(inode, index, index) {
            self.phys.put(f);
        }
        true
    }

    /// The page-cache page `index` of `inode`, created if missing: a shmem
    /// page starts zeroed, a disk file's is read from the storage.
    pub(crate) fn cache_page(&mut self, inode: InodeId, index: u64) -> Result<Frame, CacheError> {
        if let Some(f) = self.cache.get(inode, index) {
            return Ok(f);
        }
        let disk = self.disk_file(inode).map(|(file, _)| file);
        let f = self
            .alloc_user_frame(false)
            .ok_or(CacheError::OutOfMemory)?;
        if let Some(file) = disk {
            let (store, phys) = (&mut self.store, &mut self.phys);
            let ok = store
                .0
                .as_mut()
                .is_some_and(|s| s.read_page(file, index, phys.data_mut(f)).is_ok());
            if !ok {
                self.phys.put(f);
                return Err(CacheError::Io);
            }
        } else {
            self.phys.set_flags(f, FrameFlags::SWAPBACKED);
        }
        self.phys.set_owner(f, inode.0, index);
        self.cache.insert(inode, index, f);
        self.phys.lru_add(f);
        Ok(f)
    }
}
