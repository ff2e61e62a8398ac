//! Files that regions can map: open file descriptions (`struct file`) and
//! the inodes behind them.
//!
//! Regions point at an open file description ([`FileId`]), not at an inode:
//! Linux merges two file regions only when they map through the very same
//! `struct file`, so two `open`s of one path never merge.
//!
//! This module holds identity and metadata (path, device, inode number,
//! size, access mode); file contents and the page cache arrive with the
//! file-mapping work.

use alloc::string::String;
use alloc::vec::Vec;

/// An open file description (`struct file`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileId(pub u32);

/// An inode in the file table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InodeId(pub u32);

/// What kind of object an inode is; decides mapping rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InodeKind {
    /// A tmpfs file in the scenario's own directory.
    Tmpfs,
    /// The shmem object behind a shared anonymous mapping (`/dev/zero (deleted)`).
    ShmemAnon,
    /// A file imported from a real process's maps: shown as it was, and
    /// mapped read-only (its contents are not known).
    Imported,
    /// A regular file on a disk file system, its pages in the embedder's
    /// storage (see [`crate::store`]).
    Disk(crate::store::StoreFile),
}

/// Device numbers as `/proc/PID/maps` prints them (`major:minor`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Dev {
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
}

/// The device of the internal shmem mount (shared anonymous memory).
pub const SHMEM_DEV: Dev = Dev { major: 0, minor: 1 };
/// The device of the scenario's tmpfs directory.
pub const SCENARIO_DEV: Dev = Dev {
    major: 0,
    minor: 0x2a,
};
/// Where scenario files appear to live (`/vms/<name>`).
pub const SCENARIO_ROOT: &str = "/vms/";

/// An inode: identity, name and size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inode {
    /// Kind of object.
    pub kind: InodeKind,
    /// Device.
    pub dev: Dev,
    /// Inode number.
    pub ino: u64,
    /// Path as `/proc/PID/maps` prints it.
    pub path: String,
    /// Unlinked: maps appends ` (deleted)`.
    pub deleted: bool,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits.
    pub mode: u64,
}

/// An open file description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenFile {
    /// The inode.
    pub inode: InodeId,
    /// Opened for reading (`FMODE_READ`).
    pub readable: bool,
    /// Opened for writing (`FMODE_WRITE`).
    pub writable: bool,
}

/// Every inode and open file description of a system.
#[derive(Clone, Debug, Default)]
pub struct FileTable {
    inodes: Vec<Inode>,
    open: Vec<OpenFile>,
    next_ino: u64,
}

impl FileTable {
    /// An empty table.
    pub fn new() -> Self {
        FileTable {
            inodes: Vec::new(),
            open: Vec::new(),
            next_ino: 1,
        }
    }

    /// Creates an inode numbered from the system's counter (tmpfs and shmem
    /// objects share one counter, like the kernel's `get_next_ino`).
    pub fn create_inode(
        &mut self,
        kind: InodeKind,
        dev: Dev,
        path: String,
        deleted: bool,
    ) -> InodeId {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.add_inode(Inode {
            kind,
            dev,
            ino,
            path,
            deleted,
            size: 0,
            mode: 0o600,
        })
    }

    /// Adds an inode with a given identity (imports).
    pub fn add_inode(&mut self, inode: Inode) -> InodeId {
        let id = InodeId(self.inodes.len() as u32);
        self.inodes.push(inode);
        id
    }

    /// Opens an inode, giving a new open file description.
    pub fn open(&mut self, inode: InodeId, readable: bool, writable: bool) -> FileId {
        let id = FileId(self.open.len() as u32);
        self.open.push(OpenFile {
            inode,
            readable,
            writable,
        });
        id
    }

    /// The open file description.
    pub fn file(&self, id: FileId) -> Option<&OpenFile> {
        self.open.get(id.0 as usize)
    }

    /// The inode.
    pub fn inode(&self, id: InodeId) -> Option<&Inode> {
        self.inodes.get(id.0 as usize)
    }

    /// The inode, mutably.
    pub fn inode_mut(&mut self, id: InodeId) -> Option<&mut Inode> {
        self.inodes.get_mut(id.0 as usize)
    }

    /// The inode behind an open file.
    pub fn inode_of(&self, id: FileId) -> Option<&Inode> {
        self.file(id).and_then(|f| self.inode(f.inode))
    }

    /// Finds a scenario (tmpfs) file by its path.
    pub fn find_tmpfs(&self, path: &str) -> Option<InodeId> {
        self.inodes
            .iter()
            .position(|i| i.kind == InodeKind::Tmpfs && !i.deleted && i.path == path)
            .map(|i| InodeId(i as u32))
    }

    /// Finds an imported inode by identity.
    pub fn find_imported(&self, dev: Dev, ino: u64, path: &str) -> Option<InodeId> {
        self.inodes
            .iter()
            .position(|i| {
                i.kind == InodeKind::Imported && i.dev == dev && i.ino == ino && i.path == path
            })
            .map(|i| InodeId(i as u32))
    }
}
