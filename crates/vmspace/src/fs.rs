//! The file system calls a scenario uses on its own tmpfs directory:
//! `open`, `close`, `ftruncate`, `pwrite` (names, sizes, access modes and
//! descriptors; file contents arrive with the page cache).

use alloc::format;
use alloc::string::String;

use crate::errno::{Errno, SysResult};
use crate::file::{InodeKind, SCENARIO_DEV, SCENARIO_ROOT};
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
                    if let Some(n) = k.files.inode_mut(i) {
                        n.size = 0;
                    }
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
        let file = self.kernel.files.open(inode, readable, writable);
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
        if let Some(n) = self.kernel.files.inode_mut(inode) {
            n.size = length;
        }
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
        let inode = of.inode;
        if count > 0 {
            if let Some(n) = self.kernel.files.inode_mut(inode) {
                n.size = n.size.max(offset + count);
            }
        }
        Ok(count)
    }

    /// `msync(addr, len, flags)`.
    pub fn msync(&mut self, pid: Pid, addr: u64, len: u64, flags: u64) -> SysResult<u64> {
        self.process(pid)
            .ok_or(Errno::ESRCH)?
            .mm
            .msync(addr, len, flags)
    }
}
