//! Flag sets of a memory region (`vm_flags`, from `<linux/mm.h>`).
//!
//! The bit positions follow Linux's x86-64 values so that a debugger's view of
//! a region and ours agree; what matters for behaviour is which flags exist and
//! which ones merging compares.

use bitflags::bitflags;

use crate::uapi;

bitflags! {
    /// A region's `vm_flags`.
    ///
    /// ```
    /// use vmspace::VmFlags;
    /// let f = VmFlags::from_prot(vmspace::uapi::PROT_READ | vmspace::uapi::PROT_WRITE);
    /// assert!(f.contains(VmFlags::READ | VmFlags::WRITE));
    /// ```
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct VmFlags: u64 {
        /// `VM_READ`.

        const READ = 0x0000_0001;
        /// `VM_WRITE`.
        const WRITE = 0x0000_0002;
        /// `VM_EXEC`.
        const EXEC = 0x0000_0004;
        /// `VM_SHARED`.
        const SHARED = 0x0000_0008;
        /// `VM_MAYREAD`.
        const MAYREAD = 0x0000_0010;
        /// `VM_MAYWRITE`.
        const MAYWRITE = 0x0000_0020;
        /// `VM_MAYEXEC`.
        const MAYEXEC = 0x0000_0040;
        /// `VM_MAYSHARE`.
        const MAYSHARE = 0x0000_0080;
        /// `VM_GROWSDOWN`.
        const GROWSDOWN = 0x0000_0100;
        /// `VM_UFFD_MISSING`.
        const UFFD_MISSING = 0x0000_0200;
        /// `VM_PFNMAP`.
        const PFNMAP = 0x0000_0400;
        /// `VM_UFFD_WP`.
        const UFFD_WP = 0x0000_1000;
        /// `VM_LOCKED`.
        const LOCKED = 0x0000_2000;
        /// `VM_IO`.
        const IO = 0x0000_4000;
        /// `VM_SEQ_READ`.
        const SEQ_READ = 0x0000_8000;
        /// `VM_RAND_READ`.
        const RAND_READ = 0x0001_0000;
        /// `VM_DONTCOPY`.
        const DONTCOPY = 0x0002_0000;
        /// `VM_DONTEXPAND`.
        const DONTEXPAND = 0x0004_0000;
        /// `VM_LOCKONFAULT`.
        const LOCKONFAULT = 0x0008_0000;
        /// `VM_ACCOUNT`.
        const ACCOUNT = 0x0010_0000;
        /// `VM_NORESERVE`.
        const NORESERVE = 0x0020_0000;
        /// `VM_HUGETLB`.
        const HUGETLB = 0x0040_0000;
        /// `VM_SYNC`.
        const SYNC = 0x0080_0000;
        /// `VM_ARCH_1`.
        const ARCH_1 = 0x0100_0000;
        /// `VM_WIPEONFORK`.
        const WIPEONFORK = 0x0200_0000;
        /// `VM_DONTDUMP`.
        const DONTDUMP = 0x0400_0000;
        /// `VM_SOFTDIRTY`.
        const SOFTDIRTY = 0x0800_0000;
        /// `VM_MIXEDMAP`.
        const MIXEDMAP = 0x1000_0000;
        /// `VM_HUGEPAGE`.
        const HUGEPAGE = 0x2000_0000;
        /// `VM_NOHUGEPAGE`.
        const NOHUGEPAGE = 0x4000_0000;
        /// `VM_MERGEABLE`.
        const MERGEABLE = 0x8000_0000;
        /// `VM_SHADOW_STACK`.
        const SHADOW_STACK = 1 << 37;
        /// `VM_DROPPABLE`.
        const DROPPABLE = 1 << 40;
        /// `VM_SEALED`.
        const SEALED = 1 << 42;
    }
}

impl VmFlags {
    /// Does a region with these flags mlock the pages it maps? Locked, and
    /// not a special mapping (`(vm_flags & (VM_LOCKED | VM_SPECIAL)) ==
    /// VM_LOCKED`, as `folio_add_lru_vma` and `mlock_vma_folio` test).
    pub fn mlocks_pages(self) -> bool {
        self & (VmFlags::LOCKED | VmFlags::SPECIAL) == VmFlags::LOCKED
    }

    /// Flags that keep a region from ever merging or growing (`VM_SPECIAL`).
    pub const SPECIAL: VmFlags = VmFlags::IO
        .union(VmFlags::DONTEXPAND)
        .union(VmFlags::PFNMAP)
        .union(VmFlags::MIXEDMAP);
    /// The flags that decide a region's stack guard gap (`VM_STARTGAP_FLAGS`).
    pub const STARTGAP: VmFlags = VmFlags::GROWSDOWN.union(VmFlags::SHADOW_STACK);
    /// `VM_LOCKED_MASK`.
    pub const LOCKED_MASK: VmFlags = VmFlags::LOCKED.union(VmFlags::LOCKONFAULT);
    /// Flags ignored when deciding whether two regions may merge
    /// (`VM_IGNORE_MERGE`).
    pub const IGNORE_MERGE: VmFlags = VmFlags::SOFTDIRTY;
    /// The access bits.
    pub const ACCESS: VmFlags = VmFlags::READ.union(VmFlags::WRITE).union(VmFlags::EXEC);

    /// `calc_vm_prot_bits`: PROT_READ/WRITE/EXEC to VM_READ/WRITE/EXEC.
    pub fn from_prot(prot: u64) -> VmFlags {
        let mut f = VmFlags::empty();
        if prot & uapi::PROT_READ != 0 {
            f |= VmFlags::READ;
        }
        if prot & uapi::PROT_WRITE != 0 {
            f |= VmFlags::WRITE;
        }
        if prot & uapi::PROT_EXEC != 0 {
            f |= VmFlags::EXEC;
        }
        f
    }

    /// The counter a mapping with these flags is accounted to
    /// (`vm_stat_account`).
    pub fn stat_kind(self) -> StatKind {
        if self & (VmFlags::EXEC | VmFlags::WRITE | VmFlags::GROWSDOWN) == VmFlags::EXEC {
            StatKind::Exec
        } else if self.contains(VmFlags::GROWSDOWN) {
            StatKind::Stack
        } else if self & (VmFlags::WRITE | VmFlags::SHARED | VmFlags::GROWSDOWN) == VmFlags::WRITE {
            StatKind::Data
        } else {
            StatKind::Other
        }
    }
}

/// Which `mm_struct` counter, besides `total_vm`, a region counts towards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatKind {
    /// `exec_vm`: executable and not writable.
    Exec,
    /// `stack_vm`: grows down.
    Stack,
    /// `data_vm`: private writable.
    Data,
    /// None of the above.
    Other,
}
