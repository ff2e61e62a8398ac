//! The seam to files on a disk file system: the storage an embedder plugs in
//! ([`FileStore`]) behind regular files, as a Linux file system sits behind
//! the page cache.
//!
//! Scenario files are tmpfs (shmem) files: their only copy is the page
//! cache. A disk file's pages come from its storage the first time they are
//! needed (`read_page`, as `filemap_fault`/`read_folio` does), start clean,
//! count as file pages (`RssFile`, `Shared_Clean`...), turn dirty when
//! written through a shared mapping or `pwrite`, and go back to the storage
//! (`write_page`) on `msync(MS_SYNC|MS_ASYNC)` and when memory runs out and
//! the kernel reclaims unmapped cache pages. Shared writable mappings of
//! disk files track dirtying as Linux does (`vma_wants_writenotify`): a read
//! fault maps the page read-only, and writeback write-protects it again, so
//! the next store faults and re-dirties it.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// A file in the storage, as the embedder numbers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StoreFile(pub u64);

/// A storage failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// No such file in the storage.
    NoFile(StoreFile),
    /// The storage could not read or write (`EIO`).
    Io,
}

/// The storage behind disk files: whole 4 KiB pages in, whole pages out.
/// `Send`, so that a machine can move between threads; `clone_box` copies
/// the storage when the machine is cloned (an embedder whose storage is
/// shared returns another handle to it).
pub trait FileStore: Send {
    /// Fills `page` (4096 bytes) with page `index` of `file`; bytes past
    /// the end of the file read as zeros.
    fn read_page(&mut self, file: StoreFile, index: u64, page: &mut [u8])
        -> Result<(), StoreError>;
    /// Stores `page` (4096 bytes) as page `index` of `file`, up to `size`
    /// (the file's size: the tail past it is not part of the file).
    fn write_page(
        &mut self,
        file: StoreFile,
        index: u64,
        page: &[u8],
        size: u64,
    ) -> Result<(), StoreError>;
    /// A copy of this storage, for a cloned machine.
    fn clone_box(&self) -> Box<dyn FileStore>;
}

/// The storage a [`Kernel`](crate::system::Kernel) holds, if any.
#[derive(Default)]
pub struct StoreSlot(pub(crate) Option<Box<dyn FileStore>>);

impl Clone for StoreSlot {
    fn clone(&self) -> Self {
        StoreSlot(self.0.as_ref().map(|s| s.clone_box()))
    }
}

impl core::fmt::Debug for StoreSlot {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(if self.0.is_some() {
            "StoreSlot(Some)"
        } else {
            "StoreSlot(None)"
        })
    }
}

/// A storage in memory: files as byte vectors. For tests, examples and
/// embedders that want disk-file behaviour without a disk. Counts the
/// pages it read and wrote.
#[derive(Clone, Debug, Default)]
pub struct MemStore {
    /// The files' bytes.
    pub files: BTreeMap<StoreFile, Vec<u8>>,
    /// Pages read so far.
    pub reads: u64,
    /// Pages written so far.
    pub writes: u64,
}

impl FileStore for MemStore {
    fn read_page(
        &mut self,
        file: StoreFile,
        index: u64,
        page: &mut [u8],
    ) -> Result<(), StoreError> {
        let data = self.files.get(&file).ok_or(StoreError::NoFile(file))?;
        self.reads += 1;
        page.fill(0);
        let start = (index as usize).saturating_mul(4096);
        if start < data.len() {
            let n = (data.len() - start).min(page.len());
            page[..n].copy_from_slice(&data[start..start + n]);
        }
        Ok(())
    }

    fn write_page(
        &mut self,
        file: StoreFile,
        index: u64,
        page: &[u8],
        size: u64,
    ) -> Result<(), StoreError> {
        let data = self.files.get_mut(&file).ok_or(StoreError::NoFile(file))?;
        self.writes += 1;
        let start = (index as usize).saturating_mul(4096);
        let end = (start + page.len()).min(size as usize);
        if end <= start {
            return Ok(());
        }
        if data.len() < end {
            data.resize(end, 0);
        }
        data[start..end].copy_from_slice(&page[..end - start]);
        Ok(())
    }

    fn clone_box(&self) -> Box<dyn FileStore> {
        Box::new(self.clone())
    }
}
