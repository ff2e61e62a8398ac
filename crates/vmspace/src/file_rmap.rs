//! The file side of the reverse map: for every file (inode), an interval
//! tree over the page-offset ranges of the regions that map it, in every
//! process (Linux's `address_space->i_mmap`). Truncation, hole punching and
//! [`System::rmap`] ask it which regions may map a file page instead of
//! looking at every region of every process.
//!
//! Linux links a region into its file's tree whenever the region is made,
//! split, merged, moved or resized. Here the tree follows the region trees
//! after each call instead: a call names the address range it changed, and
//! [`FileRmap::resync`] replaces that process's entries over the range —
//! widened until it covers every old entry and every current region that
//! touches it, so that splits and merges at its edges are caught.
//! [`FileRmap::check`] compares the whole index with the region trees.
//!
//! Invariant: for every process and every region with a file, there is
//! exactly one entry keyed `(pid, region start)` in the file's tree, over
//! `[pgoff, pgoff + pages - 1]`; there are no other entries.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::file::{FileTable, InodeId};
use crate::interval::IntervalTree;
use crate::mm::AddressSpace;
use crate::system::Pid;
use crate::vma::Vma;

/// One region's entry, as a process's own index keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    end: u64,
    inode: InodeId,
    first: u64,
    last: u64,
}

/// The per-file interval trees, and per process the entries it put there.
#[derive(Clone, Debug, Default)]
pub struct FileRmap {
    trees: BTreeMap<InodeId, IntervalTree<(Pid, u64)>>,
    by_pid: BTreeMap<Pid, BTreeMap<u64, Entry>>,
}

/// The entry a region would have: its file's inode and page-offset range.
fn entry_of(v: &Vma, files: &FileTable) -> Option<Entry> {
    let inode = v.attrs.file.and_then(|f| files.file(f))?.inode;
    Some(Entry {
        end: v.end(),
        inode,
        first: v.attrs.pgoff,
        last: v.attrs.pgoff.wrapping_add(v.pages() - 1),
    })
}

impl FileRmap {
    /// The regions `(pid, start)` whose file is `inode` and whose page
    /// offsets overlap `[first, last]`.
    pub fn mappers(&self, inode: InodeId, first: u64, last: u64) -> Vec<(Pid, u64)> {
        self.trees.get(&inode).map_or_else(Vec::new, |t| {
            t.overlapping(first, last)
                .into_iter()
                .map(|(_, _, k)| k)
                .collect()
        })
    }

    /// Every region mapping `inode`, whatever its offsets.
    pub fn all_mappers(&self, inode: InodeId) -> Vec<(Pid, u64)> {
        self.mappers(inode, 0, u64::MAX)
    }

    fn add(&mut self, pid: Pid, start: u64, e: Entry) {
        self.trees
            .entry(e.inode)
            .or_default()
            .insert(e.first, e.last, (pid, start));
        self.by_pid.entry(pid).or_default().insert(start, e);
    }

    fn remove(&mut self, pid: Pid, start: u64) {
        let Some(e) = self.by_pid.get_mut(&pid).and_then(|m| m.remove(&start)) else {
            return;
        };
        if let Some(t) = self.trees.get_mut(&e.inode) {
            t.remove(e.first, &(pid, start));
            if t.is_empty() {
                self.trees.remove(&e.inode);
            }
        }
    }

    /// The process's entries whose regions overlap `[lo, hi)`.
    fn old_overlapping(&self, pid: Pid, lo: u64, hi: u64) -> Vec<(u64, Entry)> {
        let Some(m) = self.by_pid.get(&pid) else {
            return Vec::new();
        };
        // Entries are disjoint and sorted: the one before `lo` may reach in.
        let before = m.range(..lo).next_back().filter(|(_, e)| e.end > lo);
        before
            .into_iter()
            .chain(m.range(lo..hi))
            .map(|(&s, &e)| (s, e))
            .collect()
    }

    /// Brings `pid`'s entries over `[lo, hi)` (and whatever regions a
    /// split or merge there reached) in line with its regions now.
    /// `may_add` says whether the call could have made a file region where
    /// there was none (a file or shared mapping, a move); without it, a
    /// range where the process had no file region needs nothing, and that
    /// is the common case, anonymous memory.
    pub fn resync(
        &mut self,
        pid: Pid,
        mm: &AddressSpace,
        files: &FileTable,
        lo: u64,
        hi: u64,
        may_add: bool,
    ) {
        if lo >= hi {
            return;
        }
        // Widen to a fixed point: every old entry and every current file
        // region that touches the range (a region ending at `lo` may have
        // merged with one starting there).
        let (mut lo, mut hi) = (lo.saturating_sub(1), hi.saturating_add(1));
        let had = self
            .by_pid
            .get(&pid)
            .is_some_and(|m| m.range(..hi).next_back().is_some_and(|(_, e)| e.end > lo));
        if !had && (!may_add || !mm.vmas_in(lo, hi).any(|v| v.attrs.file.is_some())) {
            return;
        }
        loop {
            let (mut nlo, mut nhi) = (lo, hi);
            for (s, e) in self.old_overlapping(pid, lo, hi) {
                nlo = nlo.min(s);
                nhi = nhi.max(e.end);
            }
            for v in mm.vmas_in(lo, hi) {
                if v.attrs.file.is_some() {
                    nlo = nlo.min(v.start());
                    nhi = nhi.max(v.end());
                }
            }
            if (nlo, nhi) == (lo, hi) {
                break;
            }
            (lo, hi) = (nlo, nhi);
        }
        for (s, _) in self.old_overlapping(pid, lo, hi) {
            self.remove(pid, s);
        }
        let current: Vec<(u64, Entry)> = mm
            .vmas_in(lo, hi)
            .filter_map(|v| entry_of(&v, files).map(|e| (v.start(), e)))
            .collect();
        for (s, e) in current {
            self.add(pid, s, e);
        }
    }

    /// Rebuilds `pid`'s entries from all its regions.
    pub fn resync_all(&mut self, pid: Pid, mm: &AddressSpace, files: &FileTable) {
        self.forget(pid);
        let current: Vec<(u64, Entry)> = mm
            .vmas()
            .filter_map(|v| entry_of(&v, files).map(|e| (v.start(), e)))
            .collect();
        for (s, e) in current {
            self.add(pid, s, e);
        }
    }

    /// Drops every entry of a process that is gone.
    pub fn forget(&mut self, pid: Pid) {
        let starts: Vec<u64> = self
            .by_pid
            .get(&pid)
            .map_or_else(Vec::new, |m| m.keys().copied().collect());
        for s in starts {
            self.remove(pid, s);
        }
        self.by_pid.remove(&pid);
    }

    /// Checks the index against the processes' regions.
    pub fn check<'a>(
        &self,
        procs: impl Iterator<Item = (Pid, &'a AddressSpace)>,
        files: &FileTable,
    ) -> Result<(), String> {
        let mut want: BTreeMap<Pid, BTreeMap<u64, Entry>> = BTreeMap::new();
        for (pid, mm) in procs {
            for v in mm.vmas() {
                if let Some(e) = entry_of(&v, files) {
                    want.entry(pid).or_default().insert(v.start(), e);
                }
            }
        }
        let have: BTreeMap<Pid, BTreeMap<u64, Entry>> = self
            .by_pid
            .iter()
            .filter(|(_, m)| !m.is_empty())
            .map(|(&p, m)| (p, m.clone()))
            .collect();
        if want != have {
            for (pid, m) in &want {
                for (s, e) in m {
                    if have.get(pid).and_then(|h| h.get(s)) != Some(e) {
                        return Err(alloc::format!(
                            "file rmap: region {s:#x} of {pid} ({e:?}) missing or stale"
                        ));
                    }
                }
            }
            return Err(String::from("file rmap: entries for regions that are gone"));
        }
        let mut total = 0;
        for (inode, t) in &self.trees {
            t.check()?;
            for (first, last, (pid, s)) in t.overlapping(0, u64::MAX) {
                let ok = have
                    .get(&pid)
                    .and_then(|m| m.get(&s))
                    .is_some_and(|e| e.inode == *inode && e.first == first && e.last == last);
                if !ok {
                    return Err(alloc::format!("file rmap: stray entry {s:#x} of {pid}"));
                }
                total += 1;
            }
        }
        let entries: usize = have.values().map(|m| m.len()).sum();
        if total != entries {
            return Err(alloc::format!(
                "file rmap: {total} tree entries, {entries} regions"
            ));
        }
        Ok(())
    }
}
