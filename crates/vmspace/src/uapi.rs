//! Numeric constants of the Linux x86-64 user ABI (`<asm/mman.h>`,
//! `<linux/mman.h>`, `<asm-generic/resource.h>`, `<fcntl.h>`).
//!
//! System calls receive raw integers; these are the values user space passes.
//! [`NAMES`] lists every constant the scenario language accepts by name.

#![allow(missing_docs)]

pub const PROT_NONE: u64 = 0x0;
pub const PROT_READ: u64 = 0x1;
pub const PROT_WRITE: u64 = 0x2;
pub const PROT_EXEC: u64 = 0x4;
pub const PROT_SEM: u64 = 0x8;
pub const PROT_GROWSDOWN: u64 = 0x0100_0000;
pub const PROT_GROWSUP: u64 = 0x0200_0000;

pub const MAP_SHARED: u64 = 0x01;
pub const MAP_PRIVATE: u64 = 0x02;
pub const MAP_SHARED_VALIDATE: u64 = 0x03;
pub const MAP_DROPPABLE: u64 = 0x08;
pub const MAP_TYPE: u64 = 0x0f;
pub const MAP_FIXED: u64 = 0x10;
pub const MAP_ANONYMOUS: u64 = 0x20;
pub const MAP_32BIT: u64 = 0x40;
pub const MAP_ABOVE4G: u64 = 0x80;
pub const MAP_GROWSDOWN: u64 = 0x0100;
pub const MAP_DENYWRITE: u64 = 0x0800;
pub const MAP_EXECUTABLE: u64 = 0x1000;
pub const MAP_LOCKED: u64 = 0x2000;
pub const MAP_NORESERVE: u64 = 0x4000;
pub const MAP_POPULATE: u64 = 0x8000;
pub const MAP_NONBLOCK: u64 = 0x1_0000;
pub const MAP_STACK: u64 = 0x2_0000;
pub const MAP_HUGETLB: u64 = 0x4_0000;
pub const MAP_SYNC: u64 = 0x8_0000;
pub const MAP_FIXED_NOREPLACE: u64 = 0x10_0000;
pub const MAP_UNINITIALIZED: u64 = 0x400_0000;
pub const MAP_HUGE_SHIFT: u64 = 26;
pub const MAP_HUGE_MASK: u64 = 0x3f;
pub const MAP_HUGE_2MB: u64 = 21 << MAP_HUGE_SHIFT;
pub const MAP_HUGE_1GB: u64 = 30 << MAP_HUGE_SHIFT;
/// `MAP_ANON` is the BSD spelling of [`MAP_ANONYMOUS`].
pub const MAP_ANON: u64 = MAP_ANONYMOUS;
pub const MAP_FILE: u64 = 0;
/// Flags every mmap implementation understands (`LEGACY_MAP_MASK`).
pub const LEGACY_MAP_MASK: u64 = MAP_SHARED
    | MAP_PRIVATE
    | MAP_FIXED
    | MAP_ANONYMOUS
    | MAP_DENYWRITE
    | MAP_EXECUTABLE
    | MAP_UNINITIALIZED
    | MAP_GROWSDOWN
    | MAP_LOCKED
    | MAP_NORESERVE
    | MAP_POPULATE
    | MAP_NONBLOCK
    | MAP_STACK
    | MAP_HUGETLB;

pub const MREMAP_MAYMOVE: u64 = 1;
pub const MREMAP_FIXED: u64 = 2;
pub const MREMAP_DONTUNMAP: u64 = 4;

pub const MADV_NORMAL: u64 = 0;
pub const MADV_RANDOM: u64 = 1;
pub const MADV_SEQUENTIAL: u64 = 2;
pub const MADV_WILLNEED: u64 = 3;
pub const MADV_DONTNEED: u64 = 4;
pub const MADV_FREE: u64 = 8;
pub const MADV_REMOVE: u64 = 9;
pub const MADV_DONTFORK: u64 = 10;
pub const MADV_DOFORK: u64 = 11;
pub const MADV_MERGEABLE: u64 = 12;
pub const MADV_UNMERGEABLE: u64 = 13;
pub const MADV_HUGEPAGE: u64 = 14;
pub const MADV_NOHUGEPAGE: u64 = 15;
pub const MADV_DONTDUMP: u64 = 16;
pub const MADV_DODUMP: u64 = 17;
pub const MADV_WIPEONFORK: u64 = 18;
pub const MADV_KEEPONFORK: u64 = 19;
pub const MADV_COLD: u64 = 20;
pub const MADV_PAGEOUT: u64 = 21;
pub const MADV_POPULATE_READ: u64 = 22;
pub const MADV_POPULATE_WRITE: u64 = 23;
pub const MADV_DONTNEED_LOCKED: u64 = 24;
pub const MADV_COLLAPSE: u64 = 25;
pub const MADV_HWPOISON: u64 = 100;
pub const MADV_SOFT_OFFLINE: u64 = 101;
pub const MADV_GUARD_INSTALL: u64 = 102;
pub const MADV_GUARD_REMOVE: u64 = 103;

pub const MS_ASYNC: u64 = 1;
pub const MS_INVALIDATE: u64 = 2;
pub const MS_SYNC: u64 = 4;

pub const MCL_CURRENT: u64 = 1;
pub const MCL_FUTURE: u64 = 2;
pub const MCL_ONFAULT: u64 = 4;
pub const MLOCK_ONFAULT: u64 = 1;

pub const O_RDONLY: u64 = 0;
pub const O_WRONLY: u64 = 0o1;
pub const O_RDWR: u64 = 0o2;
pub const O_ACCMODE: u64 = 0o3;
pub const O_CREAT: u64 = 0o100;
pub const O_EXCL: u64 = 0o200;
pub const O_TRUNC: u64 = 0o1000;
pub const O_APPEND: u64 = 0o2000;

pub const RLIMIT_CPU: u64 = 0;
pub const RLIMIT_FSIZE: u64 = 1;
pub const RLIMIT_DATA: u64 = 2;
pub const RLIMIT_STACK: u64 = 3;
pub const RLIMIT_CORE: u64 = 4;
pub const RLIMIT_RSS: u64 = 5;
pub const RLIMIT_NPROC: u64 = 6;
pub const RLIMIT_NOFILE: u64 = 7;
pub const RLIMIT_MEMLOCK: u64 = 8;
pub const RLIMIT_AS: u64 = 9;
pub const RLIM_INFINITY: u64 = u64::MAX;

/// Every named constant the scenario language accepts, with its value.
pub const NAMES: &[(&str, u64)] = &[
    ("PROT_NONE", PROT_NONE),
    ("PROT_READ", PROT_READ),
    ("PROT_WRITE", PROT_WRITE),
    ("PROT_EXEC", PROT_EXEC),
    ("PROT_SEM", PROT_SEM),
    ("PROT_GROWSDOWN", PROT_GROWSDOWN),
    ("PROT_GROWSUP", PROT_GROWSUP),
    ("MAP_SHARED", MAP_SHARED),
    ("MAP_PRIVATE", MAP_PRIVATE),
    ("MAP_SHARED_VALIDATE", MAP_SHARED_VALIDATE),
    ("MAP_DROPPABLE", MAP_DROPPABLE),
    ("MAP_TYPE", MAP_TYPE),
    ("MAP_FIXED", MAP_FIXED),
    ("MAP_ANONYMOUS", MAP_ANONYMOUS),
    ("MAP_ANON", MAP_ANON),
    ("MAP_FILE", MAP_FILE),
    ("MAP_32BIT", MAP_32BIT),
    ("MAP_ABOVE4G", MAP_ABOVE4G),
    ("MAP_GROWSDOWN", MAP_GROWSDOWN),
    ("MAP_DENYWRITE", MAP_DENYWRITE),
    ("MAP_EXECUTABLE", MAP_EXECUTABLE),
    ("MAP_LOCKED", MAP_LOCKED),
    ("MAP_NORESERVE", MAP_NORESERVE),
    ("MAP_POPULATE", MAP_POPULATE),
    ("MAP_NONBLOCK", MAP_NONBLOCK),
    ("MAP_STACK", MAP_STACK),
    ("MAP_HUGETLB", MAP_HUGETLB),
    ("MAP_SYNC", MAP_SYNC),
    ("MAP_FIXED_NOREPLACE", MAP_FIXED_NOREPLACE),
    ("MAP_UNINITIALIZED", MAP_UNINITIALIZED),
    ("MAP_HUGE_SHIFT", MAP_HUGE_SHIFT),
    ("MAP_HUGE_MASK", MAP_HUGE_MASK),
    ("MAP_HUGE_2MB", MAP_HUGE_2MB),
    ("MAP_HUGE_1GB", MAP_HUGE_1GB),
    ("MREMAP_MAYMOVE", MREMAP_MAYMOVE),
    ("MREMAP_FIXED", MREMAP_FIXED),
    ("MREMAP_DONTUNMAP", MREMAP_DONTUNMAP),
    ("MADV_NORMAL", MADV_NORMAL),
    ("MADV_RANDOM", MADV_RANDOM),
    ("MADV_SEQUENTIAL", MADV_SEQUENTIAL),
    ("MADV_WILLNEED", MADV_WILLNEED),
    ("MADV_DONTNEED", MADV_DONTNEED),
    ("MADV_FREE", MADV_FREE),
    ("MADV_REMOVE", MADV_REMOVE),
    ("MADV_DONTFORK", MADV_DONTFORK),
    ("MADV_DOFORK", MADV_DOFORK),
    ("MADV_MERGEABLE", MADV_MERGEABLE),
    ("MADV_UNMERGEABLE", MADV_UNMERGEABLE),
    ("MADV_HUGEPAGE", MADV_HUGEPAGE),
    ("MADV_NOHUGEPAGE", MADV_NOHUGEPAGE),
    ("MADV_DONTDUMP", MADV_DONTDUMP),
    ("MADV_DODUMP", MADV_DODUMP),
    ("MADV_WIPEONFORK", MADV_WIPEONFORK),
    ("MADV_KEEPONFORK", MADV_KEEPONFORK),
    ("MADV_COLD", MADV_COLD),
    ("MADV_PAGEOUT", MADV_PAGEOUT),
    ("MADV_POPULATE_READ", MADV_POPULATE_READ),
    ("MADV_POPULATE_WRITE", MADV_POPULATE_WRITE),
    ("MADV_DONTNEED_LOCKED", MADV_DONTNEED_LOCKED),
    ("MADV_COLLAPSE", MADV_COLLAPSE),
    ("MADV_HWPOISON", MADV_HWPOISON),
    ("MADV_SOFT_OFFLINE", MADV_SOFT_OFFLINE),
    ("MADV_GUARD_INSTALL", MADV_GUARD_INSTALL),
    ("MADV_GUARD_REMOVE", MADV_GUARD_REMOVE),
    ("MS_ASYNC", MS_ASYNC),
    ("MS_INVALIDATE", MS_INVALIDATE),
    ("MS_SYNC", MS_SYNC),
    ("MCL_CURRENT", MCL_CURRENT),
    ("MCL_FUTURE", MCL_FUTURE),
    ("MCL_ONFAULT", MCL_ONFAULT),
    ("MLOCK_ONFAULT", MLOCK_ONFAULT),
    ("O_RDONLY", O_RDONLY),
    ("O_WRONLY", O_WRONLY),
    ("O_RDWR", O_RDWR),
    ("O_CREAT", O_CREAT),
    ("O_EXCL", O_EXCL),
    ("O_TRUNC", O_TRUNC),
    ("O_APPEND", O_APPEND),
    ("RLIMIT_CPU", RLIMIT_CPU),
    ("RLIMIT_FSIZE", RLIMIT_FSIZE),
    ("RLIMIT_DATA", RLIMIT_DATA),
    ("RLIMIT_STACK", RLIMIT_STACK),
    ("RLIMIT_CORE", RLIMIT_CORE),
    ("RLIMIT_RSS", RLIMIT_RSS),
    ("RLIMIT_NPROC", RLIMIT_NPROC),
    ("RLIMIT_NOFILE", RLIMIT_NOFILE),
    ("RLIMIT_MEMLOCK", RLIMIT_MEMLOCK),
    ("RLIMIT_AS", RLIMIT_AS),
    ("RLIM_INFINITY", RLIM_INFINITY),
];

/// The value of a named constant.
///
/// ```
/// assert_eq!(vmspace::uapi::lookup("MAP_FIXED"), Some(0x10));
/// assert_eq!(vmspace::uapi::lookup("MAP_NOPE"), None);
/// ```
pub fn lookup(name: &str) -> Option<u64> {
    NAMES.iter().find(|(n, _)| *n == name).map(|&(_, v)| v)
}
