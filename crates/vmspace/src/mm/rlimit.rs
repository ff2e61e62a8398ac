//! Resource limits that bound an address space, and `setrlimit`.

use super::AddressSpace;
use crate::errno::{Errno, SysResult};
use crate::uapi;

/// One limit: soft (`rlim_cur`) and hard (`rlim_max`), in bytes;
/// `u64::MAX` is `RLIM_INFINITY`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rlimit {
    /// Soft limit: what is enforced.
    pub cur: u64,
    /// Hard limit: the ceiling for the soft one.
    pub max: u64,
}

impl Rlimit {
    /// No limit.
    pub const INFINITY: Rlimit = Rlimit {
        cur: u64::MAX,
        max: u64::MAX,
    };
    /// The same soft and hard limit.
    pub const fn both(v: u64) -> Rlimit {
        Rlimit { cur: v, max: v }
    }
}

/// The limits the engine enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rlimits {
    /// `RLIMIT_AS`.
    pub as_: Rlimit,
    /// `RLIMIT_DATA`.
    pub data: Rlimit,
    /// `RLIMIT_STACK`.
    pub stack: Rlimit,
    /// `RLIMIT_MEMLOCK`.
    pub memlock: Rlimit,
}

impl Default for Rlimits {
    /// An unprivileged process's defaults: stack 8 MiB (hard unlimited),
    /// memlock 8 MiB, address space and data unlimited.
    fn default() -> Self {
        Rlimits {
            as_: Rlimit::INFINITY,
            data: Rlimit::INFINITY,
            stack: Rlimit {
                cur: 8 << 20,
                max: u64::MAX,
            },
            memlock: Rlimit::both(8 << 20),
        }
    }
}

impl Rlimits {
    /// The limit for a `RLIMIT_*` resource number the engine models.
    pub fn get(&self, resource: u64) -> Option<Rlimit> {
        match resource {
            uapi::RLIMIT_AS => Some(self.as_),
            uapi::RLIMIT_DATA => Some(self.data),
            uapi::RLIMIT_STACK => Some(self.stack),
            uapi::RLIMIT_MEMLOCK => Some(self.memlock),
            _ => None,
        }
    }

    fn slot(&mut self, resource: u64) -> Option<&mut Rlimit> {
        match resource {
            uapi::RLIMIT_AS => Some(&mut self.as_),
            uapi::RLIMIT_DATA => Some(&mut self.data),
            uapi::RLIMIT_STACK => Some(&mut self.stack),
            uapi::RLIMIT_MEMLOCK => Some(&mut self.memlock),
            _ => None,
        }
    }
}

impl AddressSpace {
    /// `setrlimit(resource, {soft, hard})` (`do_prlimit`): the soft limit
    /// may not exceed the hard one, and only `CAP_SYS_RESOURCE` raises a
    /// hard limit. Resources the engine does not model are accepted and
    /// ignored when valid, as they do not affect memory.
    pub fn setrlimit(&mut self, resource: u64, soft: u64, hard: u64) -> SysResult<u64> {
        const RLIM_NLIMITS: u64 = 16;
        if resource >= RLIM_NLIMITS {
            return Err(Errno::EINVAL);
        }
        if soft > hard {
            return Err(Errno::EINVAL);
        }
        let privileged = self.caps.sys_resource;
        let Some(slot) = self.rlimits.slot(resource) else {
            return Ok(0);
        };
        if hard > slot.max && !privileged {
            return Err(Errno::EPERM);
        }
        *slot = Rlimit {
            cur: soft,
            max: hard,
        };
        Ok(0)
    }
}
