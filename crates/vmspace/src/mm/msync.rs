//! `msync` (`mm/msync.c`): its checks and walk are all about regions;
//! writing dirty pages back belongs to the file layer.

use super::AddressSpace;
use crate::errno::{Errno, SysResult};
use crate::flags::VmFlags;
use crate::uapi::{MS_ASYNC, MS_INVALIDATE, MS_SYNC};

impl AddressSpace {
    /// `msync(start, len, flags)`: holes in the range give `ENOMEM` (at
    /// once for a plain `MS_ASYNC`, else after the walk); `MS_INVALIDATE`
    /// over locked memory is `EBUSY`.
    pub fn msync(&self, start: u64, len: u64, flags: u64) -> SysResult<u64> {
        if flags & !(MS_ASYNC | MS_INVALIDATE | MS_SYNC) != 0 {
            return Err(Errno::EINVAL);
        }
        if start & 0xfff != 0 {
            return Err(Errno::EINVAL);
        }
        if flags & MS_ASYNC != 0 && flags & MS_SYNC != 0 {
            return Err(Errno::EINVAL);
        }
        let len = len.wrapping_add(0xfff) & !0xfff;
        let end = start.wrapping_add(len);
        if end < start {
            return Err(Errno::ENOMEM);
        }
        if end == start {
            return Ok(0);
        }
        let mut unmapped_error = Ok(0);
        let mut start = start;
        let mut vma = self.find_vma(start);
        loop {
            let Some(v) = vma else {
                return Err(Errno::ENOMEM);
            };
            if start < v.start() {
                if flags == MS_ASYNC {
                    return Err(Errno::ENOMEM);
                }
                start = v.start();
                if start >= end {
                    return Err(Errno::ENOMEM);
                }
                unmapped_error = Err(Errno::ENOMEM);
            }
            if flags & MS_INVALIDATE != 0 && v.flags().contains(VmFlags::LOCKED) {
                return Err(Errno::EBUSY);
            }
            start = v.end();
            if start >= end {
                return unmapped_error;
            }
            vma = self.find_vma(start);
        }
    }
}
