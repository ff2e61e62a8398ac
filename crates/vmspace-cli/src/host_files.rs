//! Read-only host files for scenarios: `open("host:/usr/bin/true",
//! O_RDONLY)` opens a real file of this machine, so that real binaries can
//! be mapped.
//!
//! On the engine they are disk files (`vmspace::store`) whose storage is the
//! host file, read page by page with `pread`; on the kernel side the helper
//! opens the real path. Either way only `O_RDONLY` is allowed (anything
//! else is `EACCES`, before the kernel is asked): a scenario never writes a
//! host file. `/proc` text shows the real path, device and inode on both
//! sides. What cannot agree: the kernel's page cache may hold the file
//! already (fault-around then maps more), and other processes on the
//! machine may map it (its pages' `Pss` and `Shared_*`).

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use vmspace::file::Dev;
use vmspace::store::{FileStore, StoreError, StoreFile};

/// The prefix that names a host file in a scenario's `open`.
pub const PREFIX: &str = "host:";

/// The policy both sides apply before opening host file `real` (the path
/// after [`PREFIX`]): read-only only (no write access, `O_CREAT` or
/// `O_TRUNC`: `EACCES`), absolute paths only (`ENOENT`).
pub fn check_open(real: &str, flags: u64) -> Result<(), i32> {
    const WRITE_ACCESS: u64 = 3;
    const O_CREAT: u64 = 0o100;
    const O_TRUNC: u64 = 0o1000;
    if flags & (WRITE_ACCESS | O_CREAT | O_TRUNC) != 0 {
        return Err(libc::EACCES);
    }
    if !real.starts_with('/') {
        return Err(libc::ENOENT);
    }
    Ok(())
}

/// The host files a scenario opened, by store number (shared by the clones
/// of a machine).
#[derive(Clone, Default)]
pub struct HostFiles(Arc<Mutex<Vec<PathBuf>>>);

/// What `open` needs to know about a host file.
pub struct HostFile {
    /// The storage's number for it.
    pub store: StoreFile,
    /// Its device.
    pub dev: Dev,
    /// Its inode number.
    pub ino: u64,
    /// Its size in bytes.
    pub size: u64,
}

/// `major()`/`minor()` of a Linux `dev_t`.
pub fn split_dev(dev: u64) -> Dev {
    Dev {
        major: (((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff)) as u32,
        minor: ((dev & 0xff) | ((dev >> 12) & !0xff)) as u32,
    }
}

impl HostFiles {
    /// Registers the host file at `path`: its identity, or the errno
    /// `open` gives for it.
    pub fn register(&self, path: &str) -> Result<HostFile, i32> {
        check_open(path, 0)?;
        let meta = std::fs::metadata(path).map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
        if meta.is_dir() {
            return Err(libc::EISDIR);
        }
        File::open(path).map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
        let mut files = self.0.lock().map_err(|_| libc::EIO)?;
        files.push(PathBuf::from(path));
        Ok(HostFile {
            store: StoreFile(files.len() as u64 - 1),
            dev: split_dev(meta.dev()),
            ino: meta.ino(),
            size: meta.len(),
        })
    }
}

impl FileStore for HostFiles {
    fn read_page(
        &mut self,
        file: StoreFile,
        index: u64,
        page: &mut [u8],
    ) -> Result<(), StoreError> {
        let path = {
            let files = self.0.lock().map_err(|_| StoreError::Io)?;
            files
                .get(file.0 as usize)
                .cloned()
                .ok_or(StoreError::NoFile(file))?
        };
        let f = File::open(path).map_err(|_| StoreError::Io)?;
        page.fill(0);
        let mut done = 0;
        while done < page.len() {
            match f.read_at(&mut page[done..], index * 4096 + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return Err(StoreError::Io),
            }
        }
        Ok(())
    }

    fn write_page(&mut self, _: StoreFile, _: u64, _: &[u8], _: u64) -> Result<(), StoreError> {
        // Opened read-only: nothing can dirty a page of them.
        Err(StoreError::Io)
    }

    fn clone_box(&self) -> Box<dyn FileStore> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_numbers_split_as_linux_does() {
        assert_eq!(split_dev(0x801), Dev { major: 8, minor: 1 });
        assert_eq!(
            // makedev(3, 0x10005): the high minor bits sit above bit 20.
            split_dev(0x1000_0305),
            Dev {
                major: 3,
                minor: 0x10005
            }
        );
    }

    #[test]
    fn reads_pages_of_a_real_file() {
        let hf = HostFiles::default();
        let f = hf.register("/proc/self/exe").ok();
        // /proc/self/exe is a link to this test binary: a regular file.
        let f = f.expect("the test binary");
        let mut store = hf.clone();
        let mut page = vec![0u8; 4096];
        store.read_page(f.store, 0, &mut page).unwrap();
        assert_eq!(&page[..4], b"\x7fELF");
        assert!(matches!(hf.register("relative"), Err(libc::ENOENT)));
    }
}
