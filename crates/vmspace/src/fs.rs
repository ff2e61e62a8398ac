//! The file system calls a scenario uses on its own tmpfs directory:
//! `open`, `close`, `ftruncate`, `pwrite` (names, sizes, access modes and
//! descriptors; file contents arrive with the page cache).

use alloc::format;
use alloc::string::String;

use crate::errno::{Errno, SysResult};
use crate::file::{InodeId, InodeKind, SCENARIO_DEV, SCENARIO_ROOT};
use crate::phys::FrameFlags;
use crate::system::{Pid, System};
use crate::uapi::{O_ACCMODE, O_CREAT, O_EXCL, O_RDONLY, O_RDWR, O_TRUNC, O_WRONLY};

/// The umask scenario processes run with.
pub const UMASK: u64 = 0o022;

impl System {
    /// `open(path, flags, mode)` in the scenario directory; returns the
    /// lowest free descriptor from 3 (0-2 are the standard streams).
    pub fn open(&mut self, pid: Pid, path: &str, flags: u64, mode: u64) -> SysResult<u64> {
        let name = path.trim_start_matches('/');
        if name.is_empty() || name.contains('/') {
            return Err(Errno::ENOENT);
        }
        if name.len() > 255 {
            return Err(Errno::ENAMETOOLONG);
        }
        let full: String = format!("{SCENARIO_ROOT}{name}");
        let acc = flags & O_ACCMODE;
        let readable = acc == O_RDONLY || acc == O_RDWR;
        let writable = acc == O_WRONLY || acc == O_RDWR;
        let k = &mut self.kernel;
        let inode = match k.files.find_tmpfs(&full) {
            Some(i) => {
                if flags & O_CREAT != 0 && flags & O_EXCL != 0 {
                    return Err(Errno::EEXIST);
                }
                let m = k.files.inode(i).map(|n| n.mode).unwrap_or(0);
                if (readable && m & 0o400 == 0) || (writable && m & 0o200 == 0) {
                    return Err(Errno::EACCES);
                }
                if flags & O_TRUNC != 0 && writable {
                    self.truncate_inode(i, 0);
                }
                i
            }
            None => {
                if flags & O_CREAT == 0 {
                    return Err(Errno::ENOENT);
                }
                let i = k
                    .files
                    .create_inode(InodeKind::Tmpfs, SCENARIO_DEV, full, false);
                if let Some(n) = k.files.inode_mut(i) {
                    n.mode = mode & 0o7777 & !UMASK;
                }
                i
            }
        };
        let k = &mut self.kernel;
        let file = k.files.open(inode, readable, writable);
        let p = self.process_mut(pid).ok_or(Errno::ESRCH)?;
        let mut fd = 3;
        while p.fds.contains_key(&fd) {
            fd += 1;
        }
        p.fds.insert(fd, file);
        Ok(fd)
    }

    /// `close(fd)`.
    pub fn close(&mut self, pid: Pid, fd: u64) -> SysResult<u64> {
        let p = self.process_mut(pid).ok_or(Errno::ESRCH)?;
        p.fds
            .remove(&(fd as i32 as i64 as u64))
            .map(|_| 0)
            .ok_or(Errno::EBADF)
    }

    /// `ftruncate(fd, length)`.
    pub fn ftruncate(&mut self, pid: Pid, fd: u64, length: u64) -> SysResult<u64> {
        if (length as i64) < 0 {
            return Err(Errno::EINVAL);
        }
        let p = self.process(pid).ok_or(Errno::ESRCH)?;
        let file = *p.fds.get(&fd).ok_or(Errno::EBADF)?;
        let of = self.kernel.files.file(file).ok_or(Errno::EBADF)?;
        if !of.writable {
            return Err(Errno::EINVAL);
        }
        let inode = of.inode;
        self.truncate_inode(inode, length);
        Ok(0)
    }

    /// `pwrite(fd, buf, count, offset)` with `count` copies of one byte.
    pub fn pwrite(
        &mut self,
        pid: Pid,
        fd: u64,
        _byte: u8,
        count: u64,
        offset: u64,
    ) -> SysResult<u64> {
        let p = self.process(pid).ok_or(Errno::ESRCH)?;
        let file = *p.fds.get(&fd).ok_or(Errno::EBADF)?;
        let of = self.kernel.files.file(file).ok_or(Errno::EBADF)?;
        if !of.writable {
            return Err(Errno::EBADF);
        }
        if (offset as i64) < 0
            || offset
                .checked_add(count)
                .map_or(true, |e| e as i64 <= 0 && count > 0)
        {
            return Err(Errno::EINVAL);
        }
        // An empty write changes nothing (generic_write_checks returns 0).
        if count == 0 {
            return Ok(0);
        }
        let inode = of.inode;
        self.write_inode(inode, offset, count, _byte)?;
        Ok(count)
    }

    /// Writes `count` copies of `byte` at `offset` through the page cache
    /// (`shmem_write_begin`): pages are created as needed and marked dirty;
    /// the file grows to cover the write.
    fn write_inode(&mut self, inode: InodeId, offset: u64, count: u64, byte: u8) -> SysResult<()> {
        let k = &mut self.kernel;
        let disk = k.is_disk(inode);
        let mut pos = offset;
        let end = offset + count;
        while pos < end {
            let index = pos >> 12;
            // shmem_get_folio(SGP_WRITE) marks the page accessed; a new
            // page starts referenced. A disk file's page is read in first
            // (the write may cover only part of it).
            let frame = match (k.cache.get(inode, index), disk) {
                (Some(f), false) => {
                    k.phys.mark_accessed(f);
                    f
                }
                (Some(f), true) => f,
                (None, _) => {
                    let f = k.cache_page(inode, index).map_err(|e| match e {
                        crate::disk::CacheError::OutOfMemory => Errno::ENOSPC,
                        crate::disk::CacheError::Io => Errno::EIO,
                    })?;
                    if !disk {
                        let fl = k.phys.flags(f);
                        k.phys.set_flags(f, fl | FrameFlags::REFERENCED);
                    }
                    f
                }
            };
            let off = (pos & 0xfff) as usize;
            let n = ((end - pos) as usize).min(4096 - off);
            k.phys.data_mut(frame)[off..off + n].fill(byte);
            let fl = k.phys.flags(frame);
            k.phys.set_flags(frame, fl | FrameFlags::DIRTY);
            pos += n as u64;
        }
        if let Some(n) = k.files.inode_mut(inode) {
            n.size = n.size.max(end);
        }
        Ok(())
    }

    /// Sets a file's size (`truncate_setsize` + `truncate_pagecache`): when
    /// it shrinks, every mapping of the pages past the new end goes, private
    /// copies included, the cached pages wholly past it are dropped and the
    /// tail of the last one is zeroed.
    pub(crate) fn truncate_inode(&mut self, inode: InodeId, size: u64) {
        let old = self.kernel.files.inode(inode).map_or(0, |i| i.size);
        if let Some(n) = self.kernel.files.inode_mut(inode) {
            n.size = size;
        }
        // shmem_setattr truncates whenever the size does not grow: even at
        // the same size, the partial last page's tail is zeroed.
        if size > old {
            return;
        }
        let first = size.div_ceil(4096);
        self.unmap_mapping_range(inode, first, u64::MAX, true);
        self.drop_cached(inode, first, u64::MAX);
        if size % 4096 != 0 {
            if let Some(f) = self.kernel.cache.get(inode, size >> 12) {
                // The partial last page: its tail is zeroed and it is dirtied.
                let phys = &mut self.kernel.phys;
                phys.data_mut(f)[(size % 4096) as usize..].fill(0);
                let fl = phys.flags(f);
                phys.set_flags(f, fl | FrameFlags::DIRTY);
            }
        }
    }

    /// `shmem_fallocate(PUNCH_HOLE)` over whole pages `[first, last]`: the
    /// pages leave every mapping of the file (private copies stay) and the
    /// page cache.
    pub(crate) fn punch_hole(&mut self, inode: InodeId, first: u64, last: u64) {
        self.unmap_mapping_range(inode, first, last, false);
        self.drop_cached(inode, first, last);
    }

    /// `unmap_mapping_range`: removes, in every process, the entries that
    /// map file pages `[first, last]` of `inode`; with `even_cows` also the
    /// private copies made of them. The regions come from the file's
    /// interval tree, in its order (`vma_interval_tree_foreach`), each
    /// zapped as `zap_page_range_single` does (sampling `hiwater_rss`).
    pub(crate) fn unmap_mapping_range(
        &mut self,
        inode: InodeId,
        first: u64,
        last: u64,
        even_cows: bool,
    ) {
        for (pid, start) in self.file_rmap().mappers(inode, first, last) {
            let Ok((p, k)) = self.parts(pid) else {
                continue;
            };
            let Some(v) = p.mm.vma_containing(start) else {
                continue;
            };
            let lo = first.max(v.attrs.pgoff);
            let hi = last.min(v.attrs.pgoff + v.pages() - 1);
            if lo > hi {
                continue;
            }
            let a = v.start() + ((lo - v.attrs.pgoff) << 12);
            let b = v.start() + ((hi - v.attrs.pgoff + 1) << 12);
            p.mm.mem.update_hiwater();
            if v.flags().contains(crate::VmFlags::SHARED) || even_cows {
                p.mm.zap_range(k, &v, a, b);
            } else {
                p.mm.zap_range_if(k, &v, a, b, |phys, f| {
                    !phys.flags(f).contains(FrameFlags::ANON)
                });
            }
        }
    }

    /// Drops cached pages `[first, last]` of `inode` (no mapping may remain).
    fn drop_cached(&mut self, inode: InodeId, first: u64, last: u64) {
        let k = &mut self.kernel;
        let dropped = k.cache.remove_range(inode, first, last);
        // shmem_undo_range releases what it found in folio batches, and the
        // first release drains the CPU's LRU batches.
        if !dropped.is_empty() {
            k.lru_add_drain();
        }
        for f in dropped {
            k.phys.put(f);
        }
    }

    /// `msync(addr, len, flags)`.
    pub fn msync(&mut self, pid: Pid, addr: u64, len: u64, flags: u64) -> SysResult<u64> {
        let r = self
            .process(pid)
            .ok_or(Errno::ESRCH)?
            .mm
            .msync(addr, len, flags)?;
        // MS_SYNC writes disk files' dirty pages back (vfs_fsync_range);
        // MS_ASYNC does nothing on Linux since 2.6.19.
        if flags & crate::uapi::MS_SYNC != 0 {
            self.msync_writeback(pid, addr & !0xfff, crate::addr::page_align(len))?;
        }
        Ok(r)
    }
}
