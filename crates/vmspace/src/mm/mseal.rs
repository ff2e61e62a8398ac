//! `mseal` (`mm/mseal.c`): sealed regions refuse `munmap`, `mprotect`,
//! `mremap`, `MAP_FIXED` over them and destructive `madvise`.

use super::AddressSpace;
use crate::addr::page_align;
use crate::errno::{Errno, SysResult};
use crate::flags::VmFlags;
use crate::system::Kernel;

impl AddressSpace {
    /// `mseal(start, len, flags)`: the whole range must be mapped; then every
    /// region in it gets `VM_SEALED`.
    pub fn mseal(&mut self, k: &mut Kernel, start: u64, len: u64, flags: u64) -> SysResult<u64> {
        if flags != 0 {
            return Err(Errno::EINVAL);
        }
        if start & 0xfff != 0 {
            return Err(Errno::EINVAL);
        }
        let plen = page_align(len);
        if len != 0 && plen == 0 {
            return Err(Errno::EINVAL);
        }
        let end = start.wrapping_add(plen);
        if end < start {
            return Err(Errno::EINVAL);
        }
        if end == start {
            return Ok(0);
        }
        // First pass: no holes, so that nothing is sealed on failure.
        let mut cursor = start;
        for v in self.vmas_in(start, end) {
            if v.start() > cursor {
                return Err(Errno::ENOMEM);
            }
            cursor = v.end();
        }
        if cursor < end {
            return Err(Errno::ENOMEM);
        }
        let mut cursor = start;
        while cursor < end {
            let Some(v) = self.vma_containing(cursor) else {
                return Err(Errno::ENOMEM);
            };
            let seg_end = v.end().min(end);
            let next = if v.flags().contains(VmFlags::SEALED) {
                v.end()
            } else {
                let mut attrs = v.attrs;
                attrs.flags |= VmFlags::SEALED;
                self.modify_range(k, v, cursor, seg_end, attrs)?.end()
            };
            cursor = next.max(seg_end);
        }
        Ok(0)
    }
}
