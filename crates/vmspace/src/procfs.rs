//! `/proc/PID/maps` and `/proc/PID/status` text, byte for byte as
//! `fs/proc/task_mmu.c` and `fs/proc/array.c` print it.

use alloc::string::String;
use core::fmt::Write;

use crate::file::Dev;
use crate::flags::VmFlags;
use crate::layout::VSYSCALL_START;
use crate::system::{Kernel, Process};
use crate::vma::Vma;

/// Column where the name starts in a maps line (`seq_setwidth` of
/// `25 + sizeof(void *) * 6 - 1`, plus the separating space).
const NAME_COLUMN: usize = 73;

/// One maps line's fields.
pub struct MapsLine<'a> {
    /// Start address.
    pub start: u64,
    /// End address.
    pub end: u64,
    /// `rwxp`/`rwxs` flags.
    pub flags: VmFlags,
    /// File offset in bytes (0 for anonymous memory).
    pub offset: u64,
    /// Device.
    pub dev: Dev,
    /// Inode number.
    pub ino: u64,
    /// Name column, if any.
    pub name: Option<&'a str>,
    /// Append ` (deleted)`.
    pub deleted: bool,
}

/// Appends one maps line (with its newline) to `out`.
///
/// ```
/// use vmspace::procfs::{write_maps_line, MapsLine};
/// use vmspace::file::Dev;
/// use vmspace::VmFlags;
/// let mut s = String::new();
/// write_maps_line(&mut s, &MapsLine { start: 0x1000, end: 0x2000, flags: VmFlags::READ,
///     offset: 0, dev: Dev::default(), ino: 0, name: Some("[heap]"), deleted: false });
/// assert_eq!(s, "00001000-00002000 r--p 00000000 00:00 0                                  [heap]\n");
/// ```
pub fn write_maps_line(out: &mut String, l: &MapsLine<'_>) {
    let line_start = out.len();
    let f = l.flags;
    let _ = write!(
        out,
        "{:08x}-{:08x} {}{}{}{} {:08x} {:02x}:{:02x} {} ",
        l.start,
        l.end,
        if f.contains(VmFlags::READ) { 'r' } else { '-' },
        if f.contains(VmFlags::WRITE) { 'w' } else { '-' },
        if f.contains(VmFlags::EXEC) { 'x' } else { '-' },
        if f.contains(VmFlags::MAYSHARE) {
            's'
        } else {
            'p'
        },
        l.offset,
        l.dev.major,
        l.dev.minor,
        l.ino,
    );
    if let Some(name) = l.name {
        let width = out.len() - line_start;
        for _ in width..NAME_COLUMN {
            out.push(' ');
        }
        out.push_str(name);
        if l.deleted {
            out.push_str(" (deleted)");
        }
    }
    out.push('\n');
}

/// The name column of a region (`get_vma_name`), with its file identity.
fn vma_identity<'a>(
    p: &'a Process,
    k: &'a Kernel,
    v: &Vma,
) -> (Option<&'a str>, bool, Dev, u64, u64) {
    if let Some(f) = v.attrs.file {
        if let Some(inode) = k.files.inode_of(f) {
            return (
                Some(inode.path.as_str()),
                inode.deleted,
                inode.dev,
                inode.ino,
                v.attrs.pgoff << 12,
            );
        }
    }
    if let Some(name) = p.mm.name_text(v.attrs.name) {
        return (Some(name), false, Dev::default(), 0, 0);
    }
    let l = &p.mm.layout;
    if v.start() < l.brk && v.end() > l.start_brk {
        return (Some("[heap]"), false, Dev::default(), 0, 0);
    }
    if v.start() <= l.start_stack && v.end() >= l.start_stack {
        return (Some("[stack]"), false, Dev::default(), 0, 0);
    }
    (None, false, Dev::default(), 0, 0)
}

/// `/proc/PID/maps`.
pub fn maps(p: &Process, k: &Kernel) -> String {
    let mut out = String::new();
    for v in p.mm.vmas() {
        let (name, deleted, dev, ino, offset) = vma_identity(p, k, &v);
        write_maps_line(
            &mut out,
            &MapsLine {
                start: v.start(),
                end: v.end(),
                flags: v.flags(),
                offset,
                dev,
                ino,
                name,
                deleted,
            },
        );
    }
    if p.vsyscall {
        write_maps_line(
            &mut out,
            &MapsLine {
                start: VSYSCALL_START,
                end: VSYSCALL_START + 0x1000,
                flags: VmFlags::EXEC,
                offset: 0,
                dev: Dev::default(),
                ino: 0,
                name: Some("[vsyscall]"),
                deleted: false,
            },
        );
    }
    out
}

/// The `VmPeak`..`VmSwap` block of `/proc/PID/status` (`task_mem`).
pub fn status(p: &Process) -> String {
    let c = &p.mm.counters;
    let m = &p.mm.mem;
    let l = &p.mm.layout;
    let total_vm = c.total_vm;
    let hiwater_vm = c.hiwater_vm.max(total_vm);
    let text_bytes =
        (page_up(l.end_code).saturating_sub(l.start_code & !0xfff)).min(c.exec_vm << 12);
    let lib_bytes = (c.exec_vm << 12) - text_bytes;
    let kb = |pages: u64| pages << 2;
    let rows: [(&str, u64); 15] = [
        ("VmPeak", kb(hiwater_vm)),
        ("VmSize", kb(total_vm)),
        ("VmLck", kb(c.locked_vm)),
        ("VmPin", kb(c.pinned_vm)),
        ("VmHWM", kb(m.hiwater_rss.max(m.rss()))),
        ("VmRSS", kb(m.rss())),
        ("RssAnon", kb(m.rss_anon.sum())),
        ("RssFile", kb(m.rss_file.sum())),
        ("RssShmem", kb(m.rss_shmem.sum())),
        ("VmData", kb(c.data_vm)),
        ("VmStk", kb(c.stack_vm)),
        ("VmExe", text_bytes >> 10),
        ("VmLib", lib_bytes >> 10),
        ("VmPTE", m.table_bytes() >> 10),
        ("VmSwap", kb(m.swap_ents.sum())),
    ];
    let mut out = String::new();
    for (name, val) in rows {
        let _ = writeln!(out, "{name}:\t{val:>8} kB");
    }
    out
}

fn page_up(x: u64) -> u64 {
    x.wrapping_add(0xfff) & !0xfff
}

/// Memory statistics of a range (`struct mem_size_stats`). Proportional
/// sizes are kept in bytes shifted left by 12, as Linux keeps them, so
/// shares of a page add up before the final truncation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemSizeStats {
    /// Resident bytes.
    pub resident: u64,
    /// Proportional set size (bytes << 12).
    pub pss: u128,
    /// Dirty part of pss.
    pub pss_dirty: u128,
    /// Anonymous part of pss.
    pub pss_anon: u128,
    /// File part of pss.
    pub pss_file: u128,
    /// Shmem part of pss.
    pub pss_shmem: u128,
    /// Pss of locked regions.
    pub pss_locked: u128,
    /// Bytes mapped by others too, clean.
    pub shared_clean: u64,
    /// Bytes mapped by others too, dirty.
    pub shared_dirty: u64,
    /// Bytes mapped only here, clean.
    pub private_clean: u64,
    /// Bytes mapped only here, dirty.
    pub private_dirty: u64,
    /// Bytes recently accessed.
    pub referenced: u64,
    /// Anonymous bytes.
    pub anonymous: u64,
    /// Lazily freeable bytes.
    pub lazyfree: u64,
    /// Swapped-out bytes.
    pub swap: u64,
    /// Proportional swap (bytes << 12).
    pub swap_pss: u128,
}

impl MemSizeStats {
    fn add(&mut self, o: &MemSizeStats) {
        self.resident += o.resident;
        self.pss += o.pss;
        self.pss_dirty += o.pss_dirty;
        self.pss_anon += o.pss_anon;
        self.pss_file += o.pss_file;
        self.pss_shmem += o.pss_shmem;
        self.pss_locked += o.pss_locked;
        self.shared_clean += o.shared_clean;
        self.shared_dirty += o.shared_dirty;
        self.private_clean += o.private_clean;
        self.private_dirty += o.private_dirty;
        self.referenced += o.referenced;
        self.anonymous += o.anonymous;
        self.lazyfree += o.lazyfree;
        self.swap += o.swap;
        self.swap_pss += o.swap_pss;
    }
}

/// `smap_gather_stats` for one region: walks its present entries.
pub fn gather_stats(p: &Process, k: &Kernel, v: &Vma) -> MemSizeStats {
    use crate::pgtable::{self, bits};
    use crate::phys::FrameFlags;
    let mut mss = MemSizeStats::default();
    let Some(tables) = p.mm.mem.tables.as_ref() else {
        return mss;
    };
    let phys = &k.phys;
    let zero = phys.zero_page();
    let locked = v.flags().contains(VmFlags::LOCKED);
    let mut va = v.start();
    while va < v.end() {
        let slot = match tables.slot_or_next(phys, va) {
            Ok(s) => s,
            // No table down to here: skip what it would have covered.
            Err(next) => {
                va = next;
                continue;
            }
        };
        let e = pgtable::read(phys, slot);
        va += 4096;
        if !pgtable::pte_present(e) {
            continue;
        }
        let f = pgtable::pte_frame(e);
        if e & bits::SPECIAL != 0 && f == zero {
            continue;
        }
        let fl = phys.flags(f);
        let size = 4096u64;
        let pte_dirty = e & bits::DIRTY != 0;
        let dirty = pte_dirty || fl.contains(FrameFlags::DIRTY);
        let anon = fl.contains(FrameFlags::ANON);
        if anon {
            mss.anonymous += size;
            if !fl.contains(FrameFlags::SWAPBACKED) && !dirty {
                mss.lazyfree += size;
            }
        }
        mss.resident += size;
        if e & bits::ACCESSED != 0 || fl.contains(FrameFlags::REFERENCED) {
            mss.referenced += size;
        }
        let mapcount = phys.mapcount(f).max(1) as u128;
        let (pss, private) = if phys.refcount(f) == 1 || mapcount < 2 {
            ((size as u128) << 12, true)
        } else {
            (((size as u128) << 12) / mapcount, false)
        };
        mss.pss += pss;
        if anon {
            mss.pss_anon += pss;
        } else if fl.contains(FrameFlags::SWAPBACKED) {
            mss.pss_shmem += pss;
        } else {
            mss.pss_file += pss;
        }
        if locked {
            mss.pss_locked += pss;
        }
        if dirty {
            mss.pss_dirty += pss;
            if private {
                mss.private_dirty += size;
            } else {
                mss.shared_dirty += size;
            }
        } else if private {
            mss.private_clean += size;
        } else {
            mss.shared_clean += size;
        }
    }
    mss
}

fn put_kb(out: &mut String, label: &str, bytes: u64) {
    let _ = writeln!(out, "{label}{:>8} kB", bytes >> 10);
}

/// `__show_smap`: the counters block of smaps and smaps_rollup.
fn show_smap(out: &mut String, mss: &MemSizeStats, rollup: bool) {
    let b = |x: u128| (x >> 12) as u64;
    put_kb(out, "Rss:            ", mss.resident);
    put_kb(out, "Pss:            ", b(mss.pss));
    put_kb(out, "Pss_Dirty:      ", b(mss.pss_dirty));
    if rollup {
        put_kb(out, "Pss_Anon:       ", b(mss.pss_anon));
        put_kb(out, "Pss_File:       ", b(mss.pss_file));
        put_kb(out, "Pss_Shmem:      ", b(mss.pss_shmem));
    }
    put_kb(out, "Shared_Clean:   ", mss.shared_clean);
    put_kb(out, "Shared_Dirty:   ", mss.shared_dirty);
    put_kb(out, "Private_Clean:  ", mss.private_clean);
    put_kb(out, "Private_Dirty:  ", mss.private_dirty);
    put_kb(out, "Referenced:     ", mss.referenced);
    put_kb(out, "Anonymous:      ", mss.anonymous);
    put_kb(out, "KSM:            ", 0);
    put_kb(out, "LazyFree:       ", mss.lazyfree);
    put_kb(out, "AnonHugePages:  ", 0);
    put_kb(out, "ShmemPmdMapped: ", 0);
    put_kb(out, "FilePmdMapped:  ", 0);
    put_kb(out, "Shared_Hugetlb: ", 0);
    let _ = writeln!(out, "Private_Hugetlb: {:>7} kB", 0);
    put_kb(out, "Swap:           ", mss.swap);
    put_kb(out, "SwapPss:        ", b(mss.swap_pss));
    put_kb(out, "Locked:         ", b(mss.pss_locked));
}

/// smaps' `THPeligible`: could a transparent huge page back part of this
/// region (anonymous, `MADV_HUGEPAGE` under the `madvise` policy, and large
/// enough to hold an aligned 2 MiB page)?
fn thp_eligible(p: &Process, v: &Vma) -> bool {
    const HPAGE: u64 = 1 << 21;
    let f = v.flags();
    p.mm.vma_is_anonymous(v)
        && f.contains(VmFlags::HUGEPAGE)
        && !f.contains(VmFlags::NOHUGEPAGE)
        && !f.intersects(VmFlags::SPECIAL)
        && thp_suitable(v.start(), v.end(), HPAGE)
}

/// `thp_vma_suitable_order` for the last huge page that could end the
/// region, with the kernel's unsigned arithmetic: a region ending below
/// 2 MiB wraps around and counts as suitable, as it does in Linux.
fn thp_suitable(start: u64, end: u64, hpage: u64) -> bool {
    let haddr = end.wrapping_sub(hpage) & !(hpage - 1);
    !(haddr < start || haddr.wrapping_add(hpage) > end)
}

/// The `VmFlags` line of smaps, mnemonics in bit order.
fn vmflags_line(out: &mut String, flags: VmFlags) {
    out.push_str("VmFlags:");
    let mut names: alloc::vec::Vec<(u64, &str)> = crate::import::VMFLAG_NAMES
        .iter()
        .filter(|(_, f)| flags.contains(*f) && !f.contains(VmFlags::SOFTDIRTY))
        .map(|(n, f)| (f.bits(), *n))
        .collect();
    names.sort_unstable();
    for (_, n) in names {
        out.push(' ');
        out.push_str(n);
    }
    out.push_str(" \n");
}

/// `/proc/PID/smaps`.
pub fn smaps(p: &Process, k: &Kernel) -> String {
    let mut out = String::new();
    for v in p.mm.vmas() {
        let (name, deleted, dev, ino, offset) = vma_identity(p, k, &v);
        write_maps_line(
            &mut out,
            &MapsLine {
                start: v.start(),
                end: v.end(),
                flags: v.flags(),
                offset,
                dev,
                ino,
                name,
                deleted,
            },
        );
        put_kb(&mut out, "Size:           ", v.len());
        put_kb(&mut out, "KernelPageSize: ", 4096);
        put_kb(&mut out, "MMUPageSize:    ", 4096);
        show_smap(&mut out, &gather_stats(p, k, &v), false);
        let _ = writeln!(out, "THPeligible:    {:>8}", u8::from(thp_eligible(p, &v)));
        vmflags_line(&mut out, v.flags());
    }
    if p.vsyscall {
        write_maps_line(
            &mut out,
            &MapsLine {
                start: VSYSCALL_START,
                end: VSYSCALL_START + 0x1000,
                flags: VmFlags::EXEC,
                offset: 0,
                dev: Dev::default(),
                ino: 0,
                name: Some("[vsyscall]"),
                deleted: false,
            },
        );
        put_kb(&mut out, "Size:           ", 4096);
        put_kb(&mut out, "KernelPageSize: ", 4096);
        put_kb(&mut out, "MMUPageSize:    ", 4096);
        show_smap(&mut out, &MemSizeStats::default(), false);
        let _ = writeln!(out, "THPeligible:    {:>8}", 0);
        vmflags_line(&mut out, VmFlags::EXEC);
    }
    out
}

/// `/proc/PID/smaps_rollup`.
pub fn smaps_rollup(p: &Process, k: &Kernel) -> String {
    let mut total = MemSizeStats::default();
    let mut first = None;
    let mut last = 0;
    for v in p.mm.vmas() {
        first.get_or_insert(v.start());
        last = v.end();
        total.add(&gather_stats(p, k, &v));
    }
    let mut out = String::new();
    write_maps_line(
        &mut out,
        &MapsLine {
            start: first.unwrap_or(0),
            end: last,
            flags: VmFlags::empty(),
            offset: 0,
            dev: Dev::default(),
            ino: 0,
            name: Some("[rollup]"),
            deleted: false,
        },
    );
    show_smap(&mut out, &total, true);
    out
}
