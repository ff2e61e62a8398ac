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
        ("VmHWM", 0),
        ("VmRSS", 0),
        ("RssAnon", 0),
        ("RssFile", 0),
        ("RssShmem", 0),
        ("VmData", kb(c.data_vm)),
        ("VmStk", kb(c.stack_vm)),
        ("VmExe", text_bytes >> 10),
        ("VmLib", lib_bytes >> 10),
        ("VmPTE", 0),
        ("VmSwap", 0),
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
