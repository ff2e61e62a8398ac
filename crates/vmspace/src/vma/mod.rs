//! Memory regions (`vm_area_struct`) and the tree that holds them.
//!
//! A [`Vma`] is a contiguous, page-aligned range of a process's address space
//! with one set of attributes. The tree ([`tree::RegionTree`]) stores the
//! attributes ([`VmaAttrs`]) keyed by range; [`merge`] decides when two
//! neighbours may become one, following `mm/vma.c`.

pub mod merge;
pub mod tree;

use crate::addr::{VirtAddr, PAGE_SHIFT};
use crate::file::FileId;
use crate::flags::VmFlags;

/// Identity of an `anon_vma`: the reverse-map root shared by regions whose
/// anonymous pages may be found from one another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AnonVmaId(pub u32);

/// What `/proc/PID/maps` prints in the name column for a region that has no
/// file, besides the `[heap]`/`[stack]` that follow from the layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum VmaName {
    /// No name (plain anonymous memory, or the file's path).
    #[default]
    None,
    /// A name from the address space's name table: a special mapping such as
    /// `[vdso]`, or an imported region's bracketed name.
    Named(u16),
}

/// The attributes of a region: everything but its bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VmaAttrs {
    /// `vm_flags`.
    pub flags: VmFlags,
    /// `vm_pgoff`: offset into the file in pages, or for private anonymous
    /// memory the page number of the address it was first mapped at.
    pub pgoff: u64,
    /// The mapped file (`vm_file`), if any. Shared anonymous memory is backed
    /// by a shmem file, as in Linux.
    pub file: Option<FileId>,
    /// The region's `anon_vma`, once it has anonymous pages.
    pub anon_vma: Option<AnonVmaId>,
    /// Whether `anon_vma` was inherited from a parent at fork
    /// (`vma_had_uncowed_parents`): such a region merges only with regions
    /// sharing the very same `anon_vma`.
    pub anon_inherited: bool,
    /// Name column override.
    pub name: VmaName,
}

impl VmaAttrs {
    /// Attributes of a fresh anonymous private region.
    pub fn anon(flags: VmFlags, pgoff: u64) -> Self {
        VmaAttrs {
            flags,
            pgoff,
            file: None,
            anon_vma: None,
            anon_inherited: false,
            name: VmaName::None,
        }
    }
}

/// A memory region as seen through the tree: bounds plus attributes.
///
/// ```
/// use vmspace::vma::{Vma, VmaAttrs};
/// use vmspace::{VirtAddr, VmFlags};
/// let v = Vma::new(VirtAddr::new(0x1000), VirtAddr::new(0x3000), VmaAttrs::anon(VmFlags::READ, 1));
/// assert_eq!(v.pages(), 2);
/// assert_eq!(v.pgoff_at(0x2000), 2);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vma {
    /// First byte.
    pub start: VirtAddr,
    /// One past the last byte.
    pub end: VirtAddr,
    /// Everything else.
    pub attrs: VmaAttrs,
}

impl Vma {
    /// A region from its parts.
    pub fn new(start: VirtAddr, end: VirtAddr, attrs: VmaAttrs) -> Self {
        Vma { start, end, attrs }
    }
    /// Start as a raw address.
    pub fn start(&self) -> u64 {
        self.start.as_u64()
    }
    /// End as a raw address.
    pub fn end(&self) -> u64 {
        self.end.as_u64()
    }
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.end() - self.start()
    }
    /// Always false: a region has at least one page.
    pub fn is_empty(&self) -> bool {
        self.end() <= self.start()
    }
    /// Length in pages.
    pub fn pages(&self) -> u64 {
        self.len() >> PAGE_SHIFT
    }
    /// The flags.
    pub fn flags(&self) -> VmFlags {
        self.attrs.flags
    }
    /// True when `addr` lies inside.
    pub fn contains(&self, addr: u64) -> bool {
        self.start() <= addr && addr < self.end()
    }
    /// The file page offset that `addr` (inside the region) maps.
    pub fn pgoff_at(&self, addr: u64) -> u64 {
        self.attrs.pgoff + ((addr - self.start()) >> PAGE_SHIFT)
    }
    /// True for anonymous memory (no file).
    pub fn is_anonymous(&self) -> bool {
        self.attrs.file.is_none()
    }
    /// `vm_start_gap`: the lowest address a new mapping below this region may
    /// end at, leaving the stack guard gap below a grows-down region.
    pub fn start_gap(&self, stack_guard_gap: u64) -> u64 {
        let f = self.flags();
        let mut gap_start = self.start();
        if f.contains(VmFlags::GROWSDOWN) {
            gap_start = gap_start.saturating_sub(stack_guard_gap);
        }
        if f.contains(VmFlags::SHADOW_STACK) {
            gap_start = gap_start.saturating_sub(crate::addr::PAGE_SIZE);
        }
        gap_start
    }
}
