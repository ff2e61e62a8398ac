//! Machine parameters: the sysctls and build-time constants of the kernel
//! being modelled (`set KEY=VALUE` in a scenario).

use crate::errno::{Errno, SysResult};

/// Tunables of the simulated machine. Defaults are Linux's own on x86-64.
///
/// ```
/// use vmspace::Params;
/// let mut p = Params::default();
/// p.set("mmap_min_addr", 4096).unwrap();
/// assert_eq!(p.min_addr_for_hints(), 65536); // the LSM minimum still applies
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    /// `vm.mmap_min_addr`: mapping below it needs `CAP_SYS_RAWIO` (EPERM).
    pub mmap_min_addr: u64,
    /// `CONFIG_LSM_MMAP_MIN_ADDR`: with the DAC value it bounds hints and
    /// free-area search from below.
    pub lsm_mmap_min_addr: u64,
    /// `vm.max_map_count`.
    pub max_map_count: u64,
    /// `vm.overcommit_memory`: 0 heuristic, 1 always, 2 never.
    pub overcommit_memory: u64,
    /// `vm.overcommit_ratio` (percent of RAM for mode 2).
    pub overcommit_ratio: u64,
    /// Bytes of simulated physical memory (`totalram_pages`).
    pub ram: u64,
    /// Bytes of swap.
    pub swap: u64,
    /// `stack_guard_gap` in bytes (kernel parameter, 256 pages).
    pub stack_guard_gap: u64,
    /// `fault_around_bytes`.
    pub fault_around_bytes: u64,
    /// `vm.admin_reserve_kbytes`, in bytes.
    pub admin_reserve: u64,
    /// `vm.user_reserve_kbytes`, in bytes.
    pub user_reserve: u64,
    /// The resource limits of the process that reads and writes other
    /// processes' memory through `/proc/PID/mem` (the debugger: the
    /// `vmspace` runner itself). A stack such an access grows is held to
    /// these limits, not the target's, because Linux checks `current`'s.
    pub debugger_rlimits: crate::mm::Rlimits,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            mmap_min_addr: 65536,
            lsm_mmap_min_addr: 65536,
            max_map_count: 65530,
            overcommit_memory: 0,
            overcommit_ratio: 50,
            ram: 4 << 30,
            swap: 0,
            stack_guard_gap: 256 << 12,
            fault_around_bytes: 64 << 10,
            admin_reserve: 8 << 20,
            user_reserve: 128 << 20,
            debugger_rlimits: crate::mm::Rlimits::default(),
        }
    }
}

/// The parameter names [`Params::set`] accepts.
pub const PARAM_NAMES: &[&str] = &[
    "mmap_min_addr",
    "lsm_mmap_min_addr",
    "max_map_count",
    "overcommit_memory",
    "overcommit_ratio",
    "ram",
    "swap",
    "stack_guard_gap",
    "fault_around_bytes",
    "admin_reserve_kbytes",
    "user_reserve_kbytes",
];

impl Params {
    /// Sets a parameter by name. Unknown names and impossible values are
    /// `EINVAL`, as a sysctl write would be.
    pub fn set(&mut self, key: &str, value: u64) -> SysResult<()> {
        match key {
            "mmap_min_addr" => self.mmap_min_addr = value,
            "lsm_mmap_min_addr" => self.lsm_mmap_min_addr = value,
            "max_map_count" => self.max_map_count = value,
            "overcommit_memory" if value <= 2 => self.overcommit_memory = value,
            "overcommit_ratio" => self.overcommit_ratio = value,
            "ram" if value >= 1 << 20 => self.ram = value & !0xfff,
            "swap" => self.swap = value & !0xfff,
            "stack_guard_gap" => self.stack_guard_gap = value & !0xfff,
            "fault_around_bytes" if value <= 1 << 20 => self.fault_around_bytes = value,
            "admin_reserve_kbytes" => self.admin_reserve = value.saturating_mul(1024),
            "user_reserve_kbytes" => self.user_reserve = value.saturating_mul(1024),
            _ => return Err(Errno::EINVAL),
        }
        Ok(())
    }

    /// The minimum address for hints and free-area search (`mmap_min_addr`
    /// in the kernel: the larger of the sysctl and the LSM minimum).
    pub fn min_addr_for_hints(&self) -> u64 {
        crate::addr::page_align(self.mmap_min_addr.max(self.lsm_mmap_min_addr))
    }
}
