//! Disk files behind the `FileStore` seam: pages read from the storage on
//! demand, clean until written, written back by `msync(MS_SYNC)` and by
//! reclaim, never by a private write; counted as file pages.

use vmspace::file::Dev;
use vmspace::store::{FileStore, MemStore, StoreError, StoreFile};
use vmspace::uapi::*;
use vmspace::{Params, Pid, System};

const F: StoreFile = StoreFile(7);
const DEV: Dev = Dev { major: 8, minor: 1 };

/// A MemStore the test can look into after the machine took it: every
/// clone shares the same files.
#[derive(Clone, Default)]
struct Shared(std::sync::Arc<std::sync::Mutex<MemStore>>);

impl FileStore for Shared {
    fn read_page(
        &mut self,
        file: StoreFile,
        index: u64,
        page: &mut [u8],
    ) -> Result<(), StoreError> {
        self.0.lock().unwrap().read_page(file, index, page)
    }
    fn write_page(
        &mut self,
        file: StoreFile,
        index: u64,
        page: &[u8],
        size: u64,
    ) -> Result<(), StoreError> {
        self.0.lock().unwrap().write_page(file, index, page, size)
    }
    fn clone_box(&self) -> Box<dyn FileStore> {
        Box::new(self.clone())
    }
}

fn machine(ram: u64, data: Vec<u8>) -> (System, Pid, Shared) {
    let disk = Shared::default();
    disk.0.lock().unwrap().files.insert(F, data);
    let mut sys = System::new(Params {
        ram,
        ..Params::default()
    });
    sys.set_store(disk.clone());
    let pid = sys.spawn_default();
    (sys, pid, disk)
}

fn bytes(disk: &Shared) -> Vec<u8> {
    disk.0.lock().unwrap().files[&F].clone()
}

/// Maps and touches 3 MiB of new anonymous memory, which on the small
/// machines below only fits once reclaim made room; returns its address.
fn squeeze(sys: &mut System, pid: Pid) -> u64 {
    let len = 3u64 << 20;
    let anon = sys
        .mmap(
            pid,
            0,
            len,
            PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS,
            u64::MAX,
            0,
        )
        .unwrap();
    for off in (0..len).step_by(4096) {
        sys.store(pid, anon + off, 1, 5)
            .expect("reclaim makes room");
    }
    anon
}

/// A `status` line's value in kB.
fn kb(sys: &System, pid: Pid, key: &str) -> u64 {
    let line = sys
        .status(pid)
        .unwrap()
        .lines()
        .find(|l| l.starts_with(key))
        .unwrap()
        .to_string();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn shared_writes_reach_the_disk_on_msync_only() {
    let (mut sys, pid, disk) = machine(64 << 20, vec![b'a'; 3 * 4096]);
    let fd = sys
        .open_disk_file(pid, "/data/f", DEV, 12, F, 3 * 4096, true)
        .unwrap();
    let a = sys
        .mmap(pid, 0, 3 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        .unwrap();
    let (file0, shmem0) = (kb(&sys, pid, "RssFile"), kb(&sys, pid, "RssShmem"));
    // Read in from the storage: the bytes are the disk's.
    let mut h = vmspace::access::Fnv1a::new();
    h.write(&[b'a'; 4096]);
    assert_eq!(sys.load(pid, a, 4096), Ok(h.0));
    assert_eq!(disk.0.lock().unwrap().reads, 1);
    // A file page: RssFile grows, shmem does not.
    assert_eq!(kb(&sys, pid, "RssFile"), file0 + 4);
    assert_eq!(kb(&sys, pid, "RssShmem"), shmem0);
    sys.store(pid, a + 10, 1, b'z').unwrap();
    assert_eq!(bytes(&disk)[10], b'a', "not written back yet");
    // The first store after a read faulted (write-notify), then no more.
    let faults = sys.process(pid).unwrap().mm.mem.min_flt;
    sys.store(pid, a + 11, 1, b'y').unwrap();
    assert_eq!(sys.process(pid).unwrap().mm.mem.min_flt, faults);
    sys.msync(pid, a, 3 * 4096, MS_ASYNC).unwrap();
    assert_eq!(bytes(&disk)[10], b'a', "MS_ASYNC writes nothing");
    sys.msync(pid, a, 3 * 4096, MS_SYNC).unwrap();
    assert_eq!(&bytes(&disk)[10..12], b"zy");
    assert_eq!(disk.0.lock().unwrap().writes, 1);
    // Writeback write-protected the entry: the next store faults again.
    sys.store(pid, a + 12, 1, b'x').unwrap();
    assert_eq!(sys.process(pid).unwrap().mm.mem.min_flt, faults + 1);
    // munmap keeps the data in the page cache; msync of a new mapping
    // finds it dirty and writes it.
    sys.munmap(pid, a, 3 * 4096).unwrap();
    let b = sys
        .mmap(pid, 0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        .unwrap();
    sys.msync(pid, b, 4096, MS_SYNC).unwrap();
    assert_eq!(bytes(&disk)[12], b'x');
    sys.check().unwrap();
    sys.check_rmap().unwrap();
}

#[test]
fn private_writes_and_reads_only_never_reach_the_disk() {
    let (mut sys, pid, disk) = machine(64 << 20, vec![b'q'; 4096]);
    let fd = sys
        .open_disk_file(pid, "/data/g", DEV, 13, F, 4096, false)
        .unwrap();
    let a = sys
        .mmap(pid, 0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0)
        .unwrap();
    sys.store(pid, a, 4096, b'w').unwrap();
    sys.msync(pid, a, 4096, MS_SYNC).unwrap();
    assert_eq!(bytes(&disk), vec![b'q'; 4096]);
    // A shared writable mapping of a read-only file is refused.
    assert_eq!(
        sys.mmap(pid, 0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0),
        Err(vmspace::Errno::EACCES)
    );
    assert_eq!(disk.0.lock().unwrap().writes, 0);
    sys.check().unwrap();
}

#[test]
fn reclaim_writes_back_and_frees_unmapped_pages() {
    // A small machine: a 3 MiB file cannot stay cached beside 2 MiB of
    // anonymous memory.
    let size = 3 << 20;
    let (mut sys, pid, disk) = machine(6 << 20, vec![1u8; size]);
    let fd = sys
        .open_disk_file(pid, "/data/big", DEV, 14, F, size as u64, true)
        .unwrap();
    let a = sys
        .mmap(
            pid,
            0,
            size as u64,
            PROT_READ | PROT_WRITE,
            MAP_SHARED,
            fd,
            0,
        )
        .unwrap();
    for off in (0..size as u64).step_by(4096) {
        sys.store(pid, a + off, 1, 9).unwrap();
    }
    sys.munmap(pid, a, size as u64).unwrap();
    squeeze(&mut sys, pid);
    // The evicted pages went to the disk with their new byte.
    let written = disk.0.lock().unwrap().writes;
    assert!(written > 0, "dirty pages were written back");
    let data = bytes(&disk);
    let on_disk = (0..size).step_by(4096).filter(|&o| data[o] == 9).count() as u64;
    assert_eq!(on_disk, written);
    sys.check().unwrap();
}

#[test]
fn without_a_store_disk_files_cannot_be_opened() {
    let mut sys = System::new(Params::default());
    let pid = sys.spawn_default();
    assert_eq!(
        sys.open_disk_file(pid, "/x", DEV, 1, F, 0, false),
        Err(vmspace::Errno::ENODEV)
    );
}

#[test]
fn reclaim_unmaps_mapped_file_pages_before_killing() {
    // A mapped 3 MiB file and 3 MiB of new anonymous memory on a 6 MiB
    // machine: the file's pages are unmapped (dirty ones written back) to
    // make room, and read back from the disk when touched again.
    let size = 3u64 << 20;
    let (mut sys, pid, disk) = machine(6 << 20, vec![1u8; size as usize]);
    let fd = sys
        .open_disk_file(pid, "/data/m", DEV, 15, F, size, true)
        .unwrap();
    let a = sys
        .mmap(pid, 0, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        .unwrap();
    for off in (0..size).step_by(4096) {
        sys.store(pid, a + off, 1, 9).unwrap();
    }
    let anon = squeeze(&mut sys, pid);
    assert!(disk.0.lock().unwrap().writes > 0);
    sys.check().unwrap();
    sys.check_rmap().unwrap();
    // Every byte written through the mapping is still there, from the
    // page cache or from the disk.
    sys.munmap(pid, anon, 3 << 20).unwrap();
    let mut h = vmspace::access::Fnv1a::new();
    h.write(&[9u8]);
    for off in (0..size).step_by(64 << 10) {
        assert_eq!(sys.load(pid, a + off, 1), Ok(h.0), "byte at {off:#x}");
    }
    sys.check().unwrap();
}
