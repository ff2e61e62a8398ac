//! Simulated physical memory: frames that hold real bytes, and the
//! per-frame metadata Linux keeps in `struct page`.
//!
//! # Design
//!
//! Frames live in chunks of 512 (2 MiB) allocated on demand up to the
//! machine's RAM size, so a machine with a large `ram` costs only what is
//! used. A chunk comes from the allocator zeroed; a frame that has never
//! been handed out is therefore known to be zero, and a recycled frame is
//! cleared when it is allocated again — no process ever sees another's
//! bytes (the "new frame is zeroed" invariant).
//!
//! Frame 0 is the shared zero page (`ZERO_PAGE(0)`): read-only, never freed,
//! never written.
//!
//! Metadata is 16 bytes a frame: reference count, map count with eight flag
//! bits, an owner (the `anon_vma` or inode the page belongs to) and the low
//! 32 bits of the page index (reverse mapping re-checks candidates against the
//! page tables, so the truncation only widens the search).
//!
//! Invariants: a free frame has reference count 0 and is on the free list;
//! an allocated frame has reference count >= 1; `used` counts allocated
//! frames including page-table frames and the zero page.

use alloc::vec;
use alloc::vec::Vec;

use bitflags::bitflags;

/// Bytes in a frame.
pub const FRAME_SIZE: usize = 4096;
const CHUNK_FRAMES: usize = 512;

/// A physical frame number.
///
/// ```
/// use vmspace::phys::{Frame, PhysMem};
/// let mut m = PhysMem::new(1 << 20);
/// let f = m.alloc().unwrap();
/// assert_ne!(f, m.zero_page());
/// assert!(m.data(f).iter().all(|&b| b == 0));
/// assert_eq!(f.phys_addr(), f.number() << 12);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Frame(u32);

impl Frame {
    /// The frame number (PFN).
    pub const fn number(self) -> u64 {
        self.0 as u64
    }
    /// The physical byte address of the frame's first byte.
    pub const fn phys_addr(self) -> u64 {
        (self.0 as u64) << 12
    }
    /// The frame holding a physical address.
    pub const fn containing(phys: u64) -> Frame {
        Frame((phys >> 12) as u32)
    }
}

bitflags! {
    /// `struct page` flags the engine models.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
    pub struct FrameFlags: u16 {
        /// Anonymous memory (`PageAnon`).
        const ANON = 1 << 0;
        /// Backed by swap or shmem rather than a file (`PageSwapBacked`).
        const SWAPBACKED = 1 << 1;
        /// Dirty (`PG_dirty`).
        const DIRTY = 1 << 2;
        /// Referenced (`PG_referenced`).
        const REFERENCED = 1 << 3;
        /// Mlocked (`PG_mlocked`).
        const MLOCKED = 1 << 4;
        /// On the active LRU list (`PG_active`).
        const ACTIVE = 1 << 5;
        /// On an LRU list (`PG_lru`): not while waiting in a CPU batch to
        /// be added, nor while a batch moves it between lists.
        const LRU = 1 << 6;
        /// Anonymous and mapped by one process only (`PageAnonExclusive`).
        const EXCLUSIVE = 1 << 7;
        /// On the unevictable list (`PG_unevictable`).
        const UNEVICTABLE = 1 << 8;
    }
}

/// The metadata of one frame (`struct page`), 16 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct FrameMeta {
    refcount: u32,
    /// Low 20 bits: map count; high 12 bits: [`FrameFlags`].
    map_flags: u32,
    owner: u32,
    index: u32,
}

const MAPCOUNT_MASK: u32 = 0x000f_ffff;
const FLAGS_SHIFT: u32 = 20;

/// Simulated RAM.
#[derive(Clone, Debug)]
pub struct PhysMem {
    chunks: Vec<Vec<[u8; FRAME_SIZE]>>,
    meta: Vec<FrameMeta>,
    free: Vec<u32>,
    /// Frames handed out at least once (below this, frames may be dirty).
    touched: u32,
    limit: u32,
    used: u32,
    scratch: Vec<[u8; FRAME_SIZE]>,
    /// The CPU's LRU batches (see [`crate::lru`]).
    pub(crate) lru: crate::lru::CpuBatches,
}

impl PhysMem {
    /// Memory of `ram_bytes` (rounded down to whole frames, at least two:
    /// the zero page and one more).
    pub fn new(ram_bytes: u64) -> PhysMem {
        let limit = (ram_bytes / FRAME_SIZE as u64).clamp(2, u32::MAX as u64 - 1) as u32;
        let mut m = PhysMem {
            chunks: Vec::new(),
            meta: Vec::new(),
            free: Vec::new(),
            touched: 0,
            limit,
            used: 0,
            scratch: Vec::new(),
            lru: crate::lru::CpuBatches::default(),
        };
        // Frame 0 becomes the zero page; it is never freed.
        let _ = m.alloc();
        m
    }

    /// The shared zero page.
    pub const fn zero_page(&self) -> Frame {
        Frame(0)
    }

    /// Frames in the machine.
    pub fn total_frames(&self) -> u64 {
        self.limit as u64
    }

    /// Frames currently allocated (including page tables and the zero page).
    pub fn used_frames(&self) -> u64 {
        self.used as u64
    }

    /// Allocates a zeroed frame with reference count 1, or `None` when RAM
    /// is exhausted (after the LRU batches have let go of their pages).
    pub fn alloc(&mut self) -> Option<Frame> {
        if self.free.is_empty() && self.touched >= self.limit && !self.lru.is_empty() {
            self.lru_add_drain();
        }
        if let Some(n) = self.free.pop() {
            self.used += 1;
            let f = Frame(n);
            self.meta[n as usize] = FrameMeta {
                refcount: 1,
                ..FrameMeta::default()
            };
            self.data_mut(f).fill(0);
            return Some(f);
        }
        if self.touched >= self.limit {
            return None;
        }
        let n = self.touched;
        if n as usize == self.chunks.len() * CHUNK_FRAMES {
            let frames = CHUNK_FRAMES.min((self.limit - n) as usize);
            self.chunks.push(vec![[0u8; FRAME_SIZE]; frames]);
            // Exact growth: metadata stays at 16 bytes a frame.
            self.meta.reserve_exact(frames);
            self.meta
                .resize(self.meta.len() + frames, FrameMeta::default());
        }
        self.touched += 1;
        self.used += 1;
        self.meta[n as usize].refcount = 1;
        // Never handed out before: still zero from the allocator.
        Some(Frame(n))
    }

    /// PROTO: like `alloc`, but a recycled frame keeps its old bytes (the
    /// caller overwrites all of them).
    pub fn alloc_for_copy(&mut self) -> Option<Frame> {
        // (With no free frame, `alloc` below drains the LRU batches.)
        if let Some(n) = self.free.pop() {
            self.used += 1;
            self.meta[n as usize] = FrameMeta {
                refcount: 1,
                ..FrameMeta::default()
            };
            return Some(Frame(n));
        }
        self.alloc()
    }

    /// PROTO: copies all bytes of `src` into `dst` (distinct real frames).
    pub fn copy_frame(&mut self, dst: Frame, src: Frame) {
        let (d, s) = (dst.0 as usize, src.0 as usize);
        let (dc, di, sc, si) = (
            d / CHUNK_FRAMES,
            d % CHUNK_FRAMES,
            s / CHUNK_FRAMES,
            s % CHUNK_FRAMES,
        );
        if dc == sc {
            let c = &mut self.chunks[dc];
            if di < si {
                let (a, b) = c.split_at_mut(si);
                a[di] = b[0];
            } else {
                let (a, b) = c.split_at_mut(di);
                b[0] = a[si];
            }
        } else if dc < sc {
            let (a, b) = self.chunks.split_at_mut(sc);
            a[dc][di] = b[0][si];
        } else {
            let (a, b) = self.chunks.split_at_mut(dc);
            b[0][di] = a[sc][si];
        }
    }

    /// PROTO: fork's per-page bookkeeping in one metadata access: a
    /// reference and a mapping more, anonymous pages lose EXCLUSIVE.
    /// Returns the flags before.
    #[inline]
    pub fn dup_for_fork(&mut self, f: Frame) -> FrameFlags {
        let m = &mut self.meta[f.0 as usize];
        m.refcount = m.refcount.saturating_add(1);
        let fl = FrameFlags::from_bits_retain((m.map_flags >> FLAGS_SHIFT) as u16);
        let count = ((m.map_flags & MAPCOUNT_MASK) + 1).min(MAPCOUNT_MASK);
        let nfl = if fl.contains(FrameFlags::ANON) {
            fl - FrameFlags::EXCLUSIVE
        } else {
            fl
        };
        m.map_flags = count | ((nfl.bits() as u32) << FLAGS_SHIFT);
        fl
    }

    /// Takes a reference (`get_page`).
    pub fn get(&mut self, f: Frame) {
        if let Some(m) = self.meta.get_mut(f.0 as usize) {
            m.refcount = m.refcount.saturating_add(1);
        }
    }

    /// Drops a reference (`put_page`); the frame is freed at zero. The zero
    /// page is never freed.
    pub fn put(&mut self, f: Frame) {
        if f == self.zero_page() {
            return;
        }
        let Some(m) = self.meta.get_mut(f.0 as usize) else {
            return;
        };
        if m.refcount == 0 {
            return;
        }
        m.refcount -= 1;
        if m.refcount == 0 {
            *m = FrameMeta::default();
            self.free.push(f.0);
            self.used -= 1;
            self.lru_forget(f);
        }
    }

    /// The reference count.
    pub fn refcount(&self, f: Frame) -> u32 {
        self.meta.get(f.0 as usize).map_or(0, |m| m.refcount)
    }

    /// The map count (page-table entries mapping the frame).
    pub fn mapcount(&self, f: Frame) -> u32 {
        self.meta
            .get(f.0 as usize)
            .map_or(0, |m| m.map_flags & MAPCOUNT_MASK)
    }

    /// Changes the map count by `delta`.
    pub fn add_mapcount(&mut self, f: Frame, delta: i32) {
        if let Some(m) = self.meta.get_mut(f.0 as usize) {
            let count = (m.map_flags & MAPCOUNT_MASK) as i64 + delta as i64;
            let count = count.clamp(0, MAPCOUNT_MASK as i64) as u32;
            m.map_flags = (m.map_flags & !MAPCOUNT_MASK) | count;
        }
    }

    /// The frame's flags.
    pub fn flags(&self, f: Frame) -> FrameFlags {
        self.meta
            .get(f.0 as usize)
            .map_or(FrameFlags::empty(), |m| {
                FrameFlags::from_bits_retain((m.map_flags >> FLAGS_SHIFT) as u16)
            })
    }

    /// Replaces the frame's flags.
    pub fn set_flags(&mut self, f: Frame, flags: FrameFlags) {
        if let Some(m) = self.meta.get_mut(f.0 as usize) {
            m.map_flags = (m.map_flags & MAPCOUNT_MASK) | ((flags.bits() as u32) << FLAGS_SHIFT);
        }
    }

    /// Sets the owner (`page->mapping`: an `anon_vma` or inode id) and the
    /// page index.
    pub fn set_owner(&mut self, f: Frame, owner: u32, index: u64) {
        if let Some(m) = self.meta.get_mut(f.0 as usize) {
            m.owner = owner;
            m.index = index as u32;
        }
    }

    /// The owner and the low 32 bits of the index.
    pub fn owner(&self, f: Frame) -> (u32, u32) {
        self.meta
            .get(f.0 as usize)
            .map_or((0, 0), |m| (m.owner, m.index))
    }

    fn slot(&self, f: Frame) -> Option<&[u8; FRAME_SIZE]> {
        let n = f.0 as usize;
        self.chunks.get(n / CHUNK_FRAMES)?.get(n % CHUNK_FRAMES)
    }

    /// The frame's bytes. A frame that does not exist reads as zeros.
    pub fn data(&self, f: Frame) -> &[u8; FRAME_SIZE] {
        const ZEROS: [u8; FRAME_SIZE] = [0; FRAME_SIZE];
        self.slot(f).unwrap_or(&ZEROS)
    }

    /// The frame's bytes, mutably. The zero page and frames that do not
    /// exist are never written: their writes land in a scratch buffer that
    /// is never read.
    pub fn data_mut(&mut self, f: Frame) -> &mut [u8; FRAME_SIZE] {
        let n = f.0 as usize;
        let (c, i) = (n / CHUNK_FRAMES, n % CHUNK_FRAMES);
        if n != 0 && c < self.chunks.len() && i < self.chunks[c].len() {
            &mut self.chunks[c][i]
        } else {
            if self.scratch.is_empty() {
                self.scratch.push([0u8; FRAME_SIZE]);
            }
            &mut self.scratch[0]
        }
    }

    /// Reads a little-endian u64 at a byte offset (page-table entries).
    pub fn read_u64(&self, f: Frame, offset: usize) -> u64 {
        let d = self.data(f);
        let mut b = [0u8; 8];
        b.copy_from_slice(&d[offset & !7..(offset & !7) + 8]);
        u64::from_le_bytes(b)
    }

    /// Writes a little-endian u64 at a byte offset.
    pub fn write_u64(&mut self, f: Frame, offset: usize, v: u64) {
        let d = self.data_mut(f);
        d[offset & !7..(offset & !7) + 8].copy_from_slice(&v.to_le_bytes());
    }

    /// Metadata bytes per frame (for the memory target).
    pub const META_BYTES: usize = core::mem::size_of::<FrameMeta>();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_is_16_bytes() {
        assert_eq!(PhysMem::META_BYTES, 16);
    }

    #[test]
    fn alloc_free_reuse_zeroes() {
        let mut m = PhysMem::new(16 * 4096);
        let a = m.alloc().unwrap();
        m.data_mut(a)[10] = 7;
        m.put(a);
        let b = m.alloc().unwrap();
        assert_eq!(a, b);
        assert_eq!(m.data(b)[10], 0);
        assert_eq!(m.used_frames(), 2);
    }

    #[test]
    fn exhaustion_is_none_not_panic() {
        let mut m = PhysMem::new(4 * 4096);
        let got: Vec<_> = core::iter::from_fn(|| m.alloc()).collect();
        assert_eq!(got.len(), 3); // the zero page takes one
        assert!(m.alloc().is_none());
    }

    #[test]
    fn zero_page_stays_zero() {
        let mut m = PhysMem::new(8 * 4096);
        let z = m.zero_page();
        m.data_mut(z)[0] = 1;
        m.put(z);
        assert_eq!(m.data(z)[0], 0);
        assert_eq!(m.refcount(z), 1);
    }

    #[test]
    fn mapcount_and_flags_share_a_word() {
        let mut m = PhysMem::new(8 * 4096);
        let f = m.alloc().unwrap();
        m.set_flags(f, FrameFlags::ANON | FrameFlags::DIRTY);
        m.add_mapcount(f, 3);
        m.add_mapcount(f, -1);
        assert_eq!(m.mapcount(f), 2);
        assert_eq!(m.flags(f), FrameFlags::ANON | FrameFlags::DIRTY);
    }
}
