//! Starting from a real process: builds an address space from the text of
//! `/proc/PID/maps` (and, when given, `smaps`, `stat`, `limits` and the
//! program break), as `vmspace run --from-proc` and the real-kernel
//! comparison do.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::addr::{is_page_aligned, VirtAddr};
use crate::file::{Dev, Inode, InodeKind};
use crate::flags::VmFlags;
use crate::layout::{mmap_base, Layout, TASK_SIZE, TASK_UNMAPPED_BASE};
use crate::mm::{AddressSpace, Rlimit, Rlimits};
use crate::system::{Kernel, Pid};
use crate::vma::{Vma, VmaAttrs, VmaName};

/// The texts a snapshot is made of.
#[derive(Clone, Copy, Debug, Default)]
pub struct SnapshotText<'a> {
    /// `/proc/PID/maps` (required).
    pub maps: &'a str,
    /// `/proc/PID/smaps`: exact `VmFlags` and which regions hold anonymous pages.
    pub smaps: Option<&'a str>,
    /// `/proc/PID/stat`: pid, code/data bounds, start_brk, start_stack.
    pub stat: Option<&'a str>,
    /// The program break.
    pub brk: Option<u64>,
    /// `/proc/PID/limits`.
    pub limits: Option<&'a str>,
    /// Resident pages, `start-end kind` runs (hex; kind `anon`, `file`,
    /// `zero` or `special`), from `/proc/PID/pagemap`.
    pub resident: Option<&'a str>,
}

/// Why a snapshot could not be imported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportError {
    /// Which file.
    pub file: &'static str,
    /// 1-based line, 0 if not line-specific.
    pub line: usize,
    /// What was wrong.
    pub message: String,
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        } else {
            write!(f, "{}: {}", self.file, self.message)
        }
    }
}

fn err(file: &'static str, line: usize, message: &str) -> ImportError {
    ImportError {
        file,
        line,
        message: String::from(message),
    }
}

/// One parsed maps line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapsEntry {
    /// Start address.
    pub start: u64,
    /// End address.
    pub end: u64,
    /// r, w, x.
    pub perms: [bool; 3],
    /// `s` (shared) rather than `p`.
    pub shared: bool,
    /// File offset in bytes.
    pub offset: u64,
    /// Device.
    pub dev: Dev,
    /// Inode number.
    pub ino: u64,
    /// The name column, trimmed ("" when none).
    pub name: String,
}

/// Parses `/proc/PID/maps` text.
///
/// ```
/// let e = vmspace::import::parse_maps("00400000-00401000 r-xp 00000000 fe:00 12  /bin/x\n").unwrap();
/// assert_eq!(e[0].name, "/bin/x");
/// assert_eq!(e[0].dev.major, 0xfe);
/// ```
pub fn parse_maps(text: &str) -> Result<Vec<MapsEntry>, ImportError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        out.push(parse_maps_line(line).ok_or_else(|| err("maps", n, "not a /proc/PID/maps line"))?);
    }
    Ok(out)
}

/// Parses one maps line (also the header line of an smaps block).
pub fn parse_maps_line(line: &str) -> Option<MapsEntry> {
    let mut rest = line;
    let mut field = || -> Option<&str> {
        let t = rest.trim_start_matches(' ');
        let end = t.find(' ').unwrap_or(t.len());
        let (f, r) = t.split_at(end);
        rest = r;
        if f.is_empty() {
            None
        } else {
            Some(f)
        }
    };
    let range = field()?;
    let perms = field()?;
    let offset = field()?;
    let dev = field()?;
    let ino = field()?;
    let name = rest.trim_start_matches(' ');
    let (s, e) = range.split_once('-')?;
    let start = u64::from_str_radix(s, 16).ok()?;
    let end = u64::from_str_radix(e, 16).ok()?;
    let pb = perms.as_bytes();
    if pb.len() != 4 {
        return None;
    }
    let (ma, mi) = dev.split_once(':')?;
    Some(MapsEntry {
        start,
        end,
        perms: [pb[0] == b'r', pb[1] == b'w', pb[2] == b'x'],
        shared: pb[3] == b's',
        offset: u64::from_str_radix(offset, 16).ok()?,
        dev: Dev {
            major: u32::from_str_radix(ma, 16).ok()?,
            minor: u32::from_str_radix(mi, 16).ok()?,
        },
        ino: ino.parse().ok()?,
        name: String::from(name.trim_end()),
    })
}

/// The mnemonics of smaps' `VmFlags` line, with their flags.
pub const VMFLAG_NAMES: &[(&str, VmFlags)] = &[
    ("rd", VmFlags::READ),
    ("wr", VmFlags::WRITE),
    ("ex", VmFlags::EXEC),
    ("sh", VmFlags::SHARED),
    ("mr", VmFlags::MAYREAD),
    ("mw", VmFlags::MAYWRITE),
    ("me", VmFlags::MAYEXEC),
    ("ms", VmFlags::MAYSHARE),
    ("gd", VmFlags::GROWSDOWN),
    ("pf", VmFlags::PFNMAP),
    ("lo", VmFlags::LOCKED),
    ("io", VmFlags::IO),
    ("sr", VmFlags::SEQ_READ),
    ("rr", VmFlags::RAND_READ),
    ("dc", VmFlags::DONTCOPY),
    ("de", VmFlags::DONTEXPAND),
    ("lf", VmFlags::LOCKONFAULT),
    ("ac", VmFlags::ACCOUNT),
    ("nr", VmFlags::NORESERVE),
    ("ht", VmFlags::HUGETLB),
    ("sf", VmFlags::SYNC),
    ("ar", VmFlags::ARCH_1),
    ("wf", VmFlags::WIPEONFORK),
    ("dd", VmFlags::DONTDUMP),
    ("sd", VmFlags::SOFTDIRTY),
    ("mm", VmFlags::MIXEDMAP),
    ("hg", VmFlags::HUGEPAGE),
    ("nh", VmFlags::NOHUGEPAGE),
    ("mg", VmFlags::MERGEABLE),
    ("um", VmFlags::UFFD_MISSING),
    ("uw", VmFlags::UFFD_WP),
    ("ss", VmFlags::SHADOW_STACK),
    ("sl", VmFlags::SEALED),
    ("dp", VmFlags::DROPPABLE),
];

/// The smaps `VmFlags` mnemonics of a flag set, in Linux's order.
pub fn vmflags_mnemonics(flags: VmFlags) -> impl Iterator<Item = &'static str> {
    VMFLAG_NAMES
        .iter()
        .filter(move |(_, f)| flags.contains(*f))
        .map(|(n, _)| *n)
}

/// Per-region facts from smaps: flags and whether anonymous pages exist.
struct SmapsInfo {
    start: u64,
    flags: Option<VmFlags>,
    anonymous_kb: u64,
    dirty_kb: u64,
    referenced_kb: u64,
}

fn kb_value(rest: &str) -> u64 {
    rest.trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap_or(0)
}

fn parse_smaps(text: &str) -> Vec<SmapsInfo> {
    let mut out: Vec<SmapsInfo> = Vec::new();
    for line in text.lines() {
        if let Some(e) = parse_maps_line(line) {
            if line
                .as_bytes()
                .first()
                .is_some_and(|b| b.is_ascii_hexdigit())
                && line.contains('-')
            {
                out.push(SmapsInfo {
                    start: e.start,
                    flags: None,
                    anonymous_kb: 0,
                    dirty_kb: 0,
                    referenced_kb: 0,
                });
                continue;
            }
        }
        let Some(cur) = out.last_mut() else { continue };
        if let Some(rest) = line.strip_prefix("VmFlags:") {
            let mut f = VmFlags::empty();
            for m in rest.split_whitespace() {
                if let Some((_, bit)) = VMFLAG_NAMES.iter().find(|(n, _)| *n == m) {
                    f |= *bit;
                }
            }
            cur.flags = Some(f);
        } else if let Some(rest) = line.strip_prefix("Anonymous:") {
            cur.anonymous_kb = kb_value(rest);
        } else if let Some(rest) = line
            .strip_prefix("Private_Dirty:")
            .or_else(|| line.strip_prefix("Shared_Dirty:"))
        {
            cur.dirty_kb += kb_value(rest);
        } else if let Some(rest) = line.strip_prefix("Referenced:") {
            cur.referenced_kb = kb_value(rest);
        }
    }
    out
}

/// Fields of `/proc/PID/stat` after the command name.
fn parse_stat(text: &str) -> Option<(Pid, Vec<u64>)> {
    let pid = text.split_whitespace().next()?.parse().ok()?;
    let after = &text[text.rfind(')')? + 1..];
    // Field 3 (state) is the first after ')'; keep numbers as they come,
    // with the state letter as 0 so indexes stay field - 3.
    let fields = after
        .split_whitespace()
        .map(|f| f.parse::<i64>().map(|v| v as u64).unwrap_or(0))
        .collect();
    Some((pid, fields))
}

fn parse_limit_value(s: &str) -> Option<u64> {
    if s == "unlimited" {
        Some(u64::MAX)
    } else {
        s.parse().ok()
    }
}

fn parse_limits(text: &str) -> Rlimits {
    let mut r = Rlimits::default();
    for line in text.lines() {
        let slot = if line.starts_with("Max address space") {
            &mut r.as_
        } else if line.starts_with("Max data size") {
            &mut r.data
        } else if line.starts_with("Max stack size") {
            &mut r.stack
        } else if line.starts_with("Max locked memory") {
            &mut r.memlock
        } else {
            continue;
        };
        let cols: Vec<&str> = line.split_whitespace().collect();
        // "Max stack size  8388608  unlimited  bytes": soft, hard precede the unit.
        if cols.len() >= 3 {
            let n = cols.len();
            let (soft, hard) = if cols[n - 1] == "bytes" {
                (cols[n - 3], cols[n - 2])
            } else {
                (cols[n - 2], cols[n - 1])
            };
            if let (Some(cur), Some(max)) = (parse_limit_value(soft), parse_limit_value(hard)) {
                *slot = Rlimit { cur, max };
            }
        }
    }
    r
}

/// Guessed flags of a region when smaps is not given.
fn guess_flags(e: &MapsEntry) -> VmFlags {
    let mut f = VmFlags::empty();
    if e.perms[0] {
        f |= VmFlags::READ;
    }
    if e.perms[1] {
        f |= VmFlags::WRITE;
    }
    if e.perms[2] {
        f |= VmFlags::EXEC;
    }
    match e.name.as_str() {
        "[vvar]" | "[vvar_vclock]" => {
            f | VmFlags::MAYREAD
                | VmFlags::IO
                | VmFlags::PFNMAP
                | VmFlags::DONTEXPAND
                | VmFlags::DONTDUMP
        }
        "[vdso]" => {
            f | VmFlags::MAYREAD | VmFlags::MAYWRITE | VmFlags::MAYEXEC | VmFlags::DONTEXPAND
        }
        _ => {
            f |= VmFlags::MAYREAD | VmFlags::MAYWRITE | VmFlags::MAYEXEC;
            if e.shared {
                f |= VmFlags::SHARED | VmFlags::MAYSHARE;
            }
            if e.name == "[stack]" {
                f |= VmFlags::GROWSDOWN | VmFlags::ACCOUNT;
            } else if !e.shared && e.perms[1] {
                f |= VmFlags::ACCOUNT;
            }
            f
        }
    }
}

/// Builds an address space (and its pid, if `stat` gives one) from a
/// snapshot. Files named in maps become imported inodes in `k`'s file table.
pub fn import(
    k: &mut Kernel,
    snap: &SnapshotText<'_>,
) -> Result<(AddressSpace, Option<Pid>, bool), ImportError> {
    let entries = parse_maps(snap.maps)?;
    if entries.is_empty() {
        return Err(err("maps", 0, "no regions"));
    }
    let smaps = snap.smaps.map(parse_smaps).unwrap_or_default();
    let rlimits = snap.limits.map(parse_limits).unwrap_or_default();
    let stat = snap.stat.and_then(parse_stat);
    let pid = stat.as_ref().map(|s| s.0);
    let field = |n: usize| -> Option<u64> {
        stat.as_ref()
            .and_then(|(_, f)| f.get(n - 3).copied())
            .filter(|&v| v != 0)
    };

    let mut layout = Layout {
        mmap_base: mmap_base(rlimits.stack.cur, k.params.stack_guard_gap),
        mmap_legacy_base: TASK_UNMAPPED_BASE,
        legacy: false,
        ..Layout::default()
    };
    let mut mm = AddressSpace::empty(layout, rlimits);
    let mut vsyscall = false;
    let mut heap: Option<(u64, u64)> = None;
    let mut stack: Option<(u64, u64)> = None;

    for (i, e) in entries.iter().enumerate() {
        let n = i + 1;
        if e.start >= TASK_SIZE {
            if e.name == "[vsyscall]" {
                vsyscall = true;
                continue;
            }
            return Err(err("maps", n, "region above the user address range"));
        }
        if e.end <= e.start
            || !is_page_aligned(e.start)
            || !is_page_aligned(e.end)
            || e.end > TASK_SIZE
        {
            return Err(err(
                "maps",
                n,
                "region bounds are not page-aligned user addresses",
            ));
        }
        if mm.find_vma_intersection(e.start, e.end).is_some() {
            return Err(err("maps", n, "region overlaps an earlier one"));
        }
        let info = smaps.iter().find(|s| s.start == e.start);
        let flags = info.and_then(|s| s.flags).unwrap_or_else(|| guess_flags(e));
        let has_anon = match info {
            Some(s) => s.anonymous_kb > 0,
            None => !e.shared && (e.perms[1] || e.name == "[stack]" || e.name == "[heap]"),
        };
        let mut attrs = VmaAttrs::anon(flags, e.start >> 12);
        if has_anon && !flags.contains(VmFlags::SHARED) {
            attrs.anon_vma = Some(k.new_anon_vma());
        }
        match e.name.as_str() {
            "[heap]" => heap = Some((e.start, e.end)),
            "[stack]" => stack = Some((e.start, e.end)),
            "" => {}
            name if name.starts_with('/') => {
                let (path, deleted) = match name.strip_suffix(" (deleted)") {
                    Some(p) => (p, true),
                    None => (name, false),
                };
                let inode = match k.files.find_imported(e.dev, e.ino, path) {
                    Some(i) => i,
                    None => k.files.add_inode(Inode {
                        kind: InodeKind::Imported,
                        dev: e.dev,
                        ino: e.ino,
                        path: String::from(path),
                        deleted,
                        size: u64::MAX,
                        mode: 0o444,
                    }),
                };
                let readable = true;
                let writable = flags.contains(VmFlags::MAYWRITE) && e.shared;
                attrs.file = Some(k.files.open(inode, readable, writable));
                attrs.pgoff = e.offset >> 12;
            }
            name => attrs.name = mm.intern_name(name),
        }
        if attrs.name == VmaName::None && attrs.file.is_none() && e.shared {
            // Shared memory of unknown origin: give it an object of its own.
            let inode = k.files.add_inode(Inode {
                kind: InodeKind::ShmemAnon,
                dev: e.dev,
                ino: e.ino,
                path: String::new(),
                deleted: false,
                size: e.end - e.start,
                mode: 0o600,
            });
            attrs.file = Some(k.files.open(inode, true, true));
            attrs.pgoff = e.offset >> 12;
        }
        let vma = Vma::new(VirtAddr::new(e.start), VirtAddr::new(e.end), attrs);
        mm.insert(vma)
            .map_err(|_| err("maps", n, "region overlaps an earlier one"))?;
        mm.account_new(flags, vma.pages());
    }
    mm.counters.hiwater_vm = mm.counters.total_vm;
    // What the process had charged to the commit total when it made these
    // regions (VM_ACCOUNT) is charged on this machine too.
    let accounted: u64 = mm
        .vmas()
        .filter(|v| v.flags().contains(VmFlags::ACCOUNT))
        .map(|v| v.pages())
        .sum();
    k.committed += accounted;

    layout.start_code = field(26).unwrap_or(0);
    layout.end_code = field(27).unwrap_or(0);
    layout.start_stack = field(28).or(stack.map(|(_, e)| e - 8)).unwrap_or(0);
    layout.start_data = field(45).unwrap_or(0);
    layout.end_data = field(46).unwrap_or(0);
    let low_end = mm
        .vmas()
        .filter(|v| v.start() < 0x7000_0000_0000)
        .map(|v| v.end())
        .max()
        .unwrap_or(0);
    layout.start_brk = field(47).or(heap.map(|h| h.0)).unwrap_or(low_end);
    layout.brk = snap.brk.or(heap.map(|h| h.1)).unwrap_or(layout.start_brk);
    // mmap_base with randomisation off follows from RLIMIT_STACK; a
    // randomised process's lies just above its highest region below the
    // stack's gap.
    if let Some((_, stack_end)) = stack {
        let limit = stack_end.saturating_sub(128 << 20);
        if let Some(top) = mm
            .vmas()
            .filter(|v| v.end() <= limit && v.start() >= layout.start_brk)
            .map(|v| v.end())
            .max()
        {
            if top > layout.mmap_base || stack_end != crate::layout::STACK_TOP {
                layout.mmap_base = top;
            }
        }
    }
    mm.layout = layout;
    if let Some(text) = snap.resident {
        if let Err(e) = import_resident(k, &mut mm, text, &smaps) {
            // Out of memory part-way: give back what the partial image took.
            k.teardown(&mut mm);
            return Err(e);
        }
    }
    Ok((mm, pid, vsyscall))
}

/// Rebuilds the resident pages a snapshot lists: anonymous pages, pages of
/// the mapped files' page caches, zero-page and special entries. Page
/// contents are not known and read as zeros. Of each region's pages, as many
/// as its smaps `Private_Dirty` + `Shared_Dirty` are made dirty and as many
/// as its `Referenced` young.
fn import_resident(
    k: &mut Kernel,
    mm: &mut AddressSpace,
    text: &str,
    smaps: &[SmapsInfo],
) -> Result<(), ImportError> {
    use crate::file::SHMEM_DEV;
    use crate::pgtable::{self, bits, page_prot, PageTables};
    use crate::phys::FrameFlags;
    let oom = |line| {
        err(
            "resident",
            line,
            "the machine's RAM is too small for the process's resident pages",
        )
    };
    let mut counts = (0u64, 0u64, 0u64);
    let mut budget: alloc::collections::BTreeMap<u64, (u64, u64)> = smaps
        .iter()
        .map(|s| (s.start, (s.dirty_kb / 4, s.referenced_kb / 4)))
        .collect();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let Some((range, kind)) = line.trim().split_once(' ') else {
            return Err(err("resident", n, "expected `start-end kind`"));
        };
        let (s, e) = range
            .split_once('-')
            .ok_or_else(|| err("resident", n, "expected `start-end`"))?;
        let (Ok(start), Ok(end)) = (u64::from_str_radix(s, 16), u64::from_str_radix(e, 16)) else {
            return Err(err("resident", n, "bad hex address"));
        };
        let mut page = start & !0xfff;
        while page < end {
            let Some(v) = mm.vma_containing(page) else {
                return Err(err("resident", n, "resident page outside every region"));
            };
            if mm.mem.tables.is_none() {
                mm.mem.tables = Some(PageTables::new(&mut k.phys).map_err(|_| oom(n))?);
            }
            let (dirty, young) = match budget.get_mut(&v.start()) {
                Some((d, y)) => {
                    let r = (*d > 0, *y > 0);
                    *d = d.saturating_sub(1);
                    *y = y.saturating_sub(1);
                    r
                }
                None => (true, true),
            };
            // The entry's slot first: a page allocated for it is never left
            // without one when memory runs out.
            let Some(tables) = mm.mem.tables.as_mut() else {
                return Err(oom(n));
            };
            let slot = tables.slot_alloc(&mut k.phys, page).map_err(|_| oom(n))?;
            let mut pte = page_prot(v.flags());
            if !young {
                pte &= !bits::ACCESSED;
            }
            let frame = match kind.trim() {
                "zero" | "special" => {
                    pte |= bits::SPECIAL;
                    k.phys.zero_page()
                }
                "anon" => {
                    let f = k.phys.alloc().ok_or_else(|| oom(n))?;
                    k.phys.set_flags(
                        f,
                        FrameFlags::ANON | FrameFlags::SWAPBACKED | FrameFlags::EXCLUSIVE,
                    );
                    k.phys.add_mapcount(f, 1);
                    let owner = v.attrs.anon_vma.map_or(0, |a| a.0);
                    k.phys.set_owner(f, owner, v.pgoff_at(page));
                    counts.0 += 1;
                    if dirty {
                        pte |= bits::DIRTY;
                        if v.flags().contains(VmFlags::WRITE) {
                            pte |= bits::RW;
                        }
                    }
                    f
                }
                "file" => {
                    let inode = v.attrs.file.and_then(|f| k.files.file(f)).map(|f| f.inode);
                    let shmem = inode
                        .and_then(|i| k.files.inode(i))
                        .is_some_and(|i| i.dev == SHMEM_DEV || i.kind == InodeKind::ShmemAnon);
                    let f = match inode.and_then(|i| k.cache.get(i, v.pgoff_at(page))) {
                        // Already cached (another process maps it): this
                        // mapping takes its own reference.
                        Some(f) => {
                            k.phys.get(f);
                            f
                        }
                        None => {
                            let f = k.phys.alloc().ok_or_else(|| oom(n))?;
                            let mut fl = if shmem {
                                FrameFlags::SWAPBACKED
                            } else {
                                FrameFlags::empty()
                            };
                            if dirty {
                                fl |= FrameFlags::DIRTY;
                            }
                            k.phys.set_flags(f, fl);
                            if let Some(i) = inode {
                                k.phys.set_owner(f, i.0, v.pgoff_at(page));
                                k.cache.insert(i, v.pgoff_at(page), f);
                                k.phys.get(f);
                            }
                            f
                        }
                    };
                    k.phys.add_mapcount(f, 1);
                    if shmem {
                        counts.2 += 1;
                    } else {
                        counts.1 += 1;
                    }
                    if dirty && v.flags().contains(VmFlags::SHARED) {
                        pte |= bits::DIRTY;
                    }
                    f
                }
                _ => {
                    return Err(err(
                        "resident",
                        n,
                        "kind must be anon, file, zero or special",
                    ))
                }
            };
            if frame != k.phys.zero_page() {
                // A running process's pages sit on the LRU lists (its
                // locked regions' on the unevictable one).
                k.phys.lru_settled(frame);
                if v.flags().mlocks_pages() {
                    k.phys.settle_mlocked(frame);
                }
            }
            pgtable::write(&mut k.phys, slot, pgtable::make_pte(frame, pte));
            page += 0x1000;
        }
    }
    // The counters were built up page by page as the process faulted its
    // pages in.
    mm.mem.rss_anon = crate::fault::PcpuCounter::built_up_to(counts.0);
    mm.mem.rss_file = crate::fault::PcpuCounter::built_up_to(counts.1);
    mm.mem.rss_shmem = crate::fault::PcpuCounter::built_up_to(counts.2);
    mm.mem.update_hiwater();
    Ok(())
}
