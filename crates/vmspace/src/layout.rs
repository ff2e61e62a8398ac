//! Where things go in a 64-bit x86 process: the user address range, the
//! top of the mmap area, the heap and the stack (`arch/x86/mm/mmap.c`,
//! `fs/binfmt_elf.c`), with address-space randomisation off.

use crate::addr::{page_align, PAGE_SIZE};

/// Highest user address + 1 with 4-level paging (47-bit user space), less
/// the guard page at the top: `TASK_SIZE_MAX` / `DEFAULT_MAP_WINDOW`.
pub const TASK_SIZE: u64 = (1 << 47) - PAGE_SIZE;
/// The top of the initial stack (`STACK_TOP` with randomisation off).
pub const STACK_TOP: u64 = TASK_SIZE;
/// Where the bottom-up fallback search starts: `PAGE_ALIGN(TASK_SIZE / 3)`.
pub const TASK_UNMAPPED_BASE: u64 = page_align(TASK_SIZE / 3);
/// The `[vsyscall]` page: outside the region tree (a "gate" area), shown
/// last in maps.
pub const VSYSCALL_START: u64 = 0xffff_ffff_ff60_0000;
/// Lowest address of the first 4 GiB boundary (`MAP_32BIT` searches
/// `[1 GiB, 2 GiB)`).
pub const MAP_32BIT_START: u64 = 0x4000_0000;
/// End of the `MAP_32BIT` window.
pub const MAP_32BIT_END: u64 = 0x8000_0000;

/// `mmap_base()` of `arch/x86/mm/mmap.c`: the top of the mmap area, leaving
/// room for a stack of `rlim_stack` bytes plus the guard gap, at least
/// 128 MiB and at most five sixths of the address space.
///
/// ```
/// use vmspace::layout::{mmap_base, TASK_SIZE};
/// assert_eq!(mmap_base(8 << 20, 256 << 12), 0x7ffff7fff000);
/// assert_eq!(mmap_base(u64::MAX, 256 << 12), 0x155555556000);
/// ```
pub fn mmap_base(rlim_stack: u64, stack_guard_gap: u64) -> u64 {
    let mut gap = rlim_stack;
    let pad = stack_guard_gap;
    if gap.wrapping_add(pad) > gap {
        gap += pad;
    }
    let gap_min = 128 << 20;
    let gap_max = (TASK_SIZE / 6) * 5;
    let gap = gap.clamp(gap_min, gap_max);
    page_align(TASK_SIZE - gap)
}

/// The layout fields of `mm_struct`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Layout {
    /// Top of the top-down mmap area.
    pub mmap_base: u64,
    /// Bottom of the bottom-up area (legacy layout and fallback).
    pub mmap_legacy_base: u64,
    /// True for the legacy bottom-up layout (`ADDR_COMPAT_LAYOUT` or
    /// `vm.legacy_va_layout`); false for top-down.
    pub legacy: bool,
    /// Program text bounds.
    pub start_code: u64,
    /// End of text.
    pub end_code: u64,
    /// Data bounds.
    pub start_data: u64,
    /// End of data.
    pub end_data: u64,
    /// Start of the heap.
    pub start_brk: u64,
    /// Current program break.
    pub brk: u64,
    /// Where the initial stack pointer was (inside `[stack]`).
    pub start_stack: u64,
}
