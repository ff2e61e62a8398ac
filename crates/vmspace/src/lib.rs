//! # vmspace — a Linux-exact process address-space engine
//!
//! The memory-descriptor and memory-region layer of an operating-system
//! kernel, as a library: Linux 6.x on x86-64 is the reference for every
//! result, errno, chosen address and merge.
//!
//! The crate is `#![no_std]` + `alloc` so that kernels and emulators can embed
//! it; it does no I/O and holds no global state.

#![no_std]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod access;
pub mod addr;
pub mod errno;
pub mod flags;
pub mod fork;
pub mod uapi;
pub mod vma;

pub use addr::VirtAddr;
pub use errno::{Errno, SysResult};
pub use flags::VmFlags;
pub mod disk;
pub mod exec;
pub mod fault;
pub mod file;
pub mod file_rmap;
pub mod fs;
pub mod import;
pub mod interval;
pub mod layout;
pub mod lru;
pub mod mm;
pub mod params;
pub mod pgtable;
pub mod phys;
pub mod procfs;
pub mod rmap;
pub mod store;
pub mod system;

pub use mm::AddressSpace;
pub use params::Params;
pub use system::{Pid, System};
