//! Typed addresses and page arithmetic.
//!
//! A [`VirtAddr`] is a byte address in a process's virtual address space.
//! Page numbers and byte counts never share a type with it, so a byte offset
//! cannot be passed where a page number is wanted (the mistake the `x86_64`
//! crate's `structures::paging` types exist to prevent).

use core::fmt;

/// Bytes in a base page on x86-64.
pub const PAGE_SIZE: u64 = 4096;
/// log2 of [`PAGE_SIZE`].
pub const PAGE_SHIFT: u32 = 12;
/// Bytes mapped by one PMD entry (a 2 MiB huge page).
pub const PMD_SIZE: u64 = 1 << 21;

/// A virtual (user or kernel) byte address.
///
/// ```
/// use vmspace::addr::VirtAddr;
/// let a = VirtAddr::new(0x1234);
/// assert_eq!(a.page_align_down().as_u64(), 0x1000);
/// assert_eq!(a.page_offset(), 0x234);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct VirtAddr(u64);

impl VirtAddr {
    /// Wraps a raw address.
    pub const fn new(raw: u64) -> Self {
        VirtAddr(raw)
    }
    /// The raw address.
    pub const fn as_u64(self) -> u64 {
        self.0
    }
    /// Offset of the address inside its page.
    pub const fn page_offset(self) -> u64 {
        self.0 & (PAGE_SIZE - 1)
    }
    /// True when the address is the first byte of a page.
    pub const fn is_page_aligned(self) -> bool {
        self.page_offset() == 0
    }
    /// The start of the page holding this address.
    pub const fn page_align_down(self) -> Self {
        VirtAddr(self.0 & !(PAGE_SIZE - 1))
    }
    /// The page number (address >> 12).
    pub const fn page_number(self) -> u64 {
        self.0 >> PAGE_SHIFT
    }
}

impl fmt::Debug for VirtAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VirtAddr({:#x})", self.0)
    }
}

impl fmt::LowerHex for VirtAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

/// Rounds a byte count up to whole pages, as Linux's `PAGE_ALIGN` does:
/// the result wraps to 0 when `len` is within a page of `u64::MAX`.
pub const fn page_align(len: u64) -> u64 {
    len.wrapping_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1)
}

/// Number of pages in a page-aligned byte length.
pub const fn pages(len: u64) -> u64 {
    len >> PAGE_SHIFT
}

/// True when `x` is a multiple of [`PAGE_SIZE`].
pub const fn is_page_aligned(x: u64) -> bool {
    x & (PAGE_SIZE - 1) == 0
}
