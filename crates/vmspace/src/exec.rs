//! The default starting state: a process as Linux leaves a freshly executed
//! static x86-64 executable with address-space randomisation off.
//!
//! The image is described as the `/proc/PID/maps` and `smaps` flags a
//! real one shows (the program is `vmspace`'s own static helper, which the
//! real-kernel runner executes), and built by the snapshot importer, so that
//! the default and an imported process go through the same code.

use crate::import::{import, SnapshotText};
use crate::mm::AddressSpace;
use crate::system::Kernel;

/// `/proc/PID/maps` of the default process: the real-kernel runner's own
/// static helper program, as Linux 6.18 lays it out.
pub const DEFAULT_MAPS: &str = "\
00400000-00401000 r--p 00000000 00:01 1024                               /memfd:vmspace-puppet (deleted)
00401000-00403000 r-xp 00001000 00:01 1024                               /memfd:vmspace-puppet (deleted)
00403000-00404000 rw-p 00003000 00:01 1024                               /memfd:vmspace-puppet (deleted)
00404000-00437000 rw-p 00000000 00:00 0 
7ffff7ff7000-7ffff7ffb000 r--p 00000000 00:00 0                          [vvar]
7ffff7ffb000-7ffff7ffd000 r--p 00000000 00:00 0                          [vvar_vclock]
7ffff7ffd000-7ffff7fff000 r-xp 00000000 00:00 0                          [vdso]
7ffffffde000-7ffffffff000 rw-p 00000000 00:00 0                          [stack]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
";

/// The `VmFlags` (and whether anonymous pages exist) of each region of
/// [`DEFAULT_MAPS`], as smaps shows them.
pub const DEFAULT_SMAPS: &str = "\
00400000-00401000 r--p 00000000 00:01 1024 /memfd:vmspace-puppet (deleted)
VmFlags: rd mr mw me
00401000-00403000 r-xp 00001000 00:01 1024 /memfd:vmspace-puppet (deleted)
VmFlags: rd ex mr mw me
00403000-00404000 rw-p 00003000 00:01 1024 /memfd:vmspace-puppet (deleted)
Anonymous: 4 kB
VmFlags: rd wr mr mw me ac
00404000-00437000 rw-p 00000000 00:00 0
Anonymous: 204 kB
VmFlags: rd wr mr mw me ac
7ffff7ff7000-7ffff7ffb000 r--p 00000000 00:00 0 [vvar]
VmFlags: rd mr pf io de dd
7ffff7ffb000-7ffff7ffd000 r--p 00000000 00:00 0 [vvar_vclock]
VmFlags: rd mr pf io de dd
7ffff7ffd000-7ffff7fff000 r-xp 00000000 00:00 0 [vdso]
VmFlags: rd ex mr mw me de
7ffffffde000-7ffffffff000 rw-p 00000000 00:00 0 [stack]
Anonymous: 4 kB
VmFlags: rd wr mr mw me gd ac
";

/// `/proc/PID/stat` of the default process: code 0x401000-0x40257e, data
/// 0x403000-0x403008, `start_brk` 0x437000, stack pointer 0x7fffffffe620.
pub const DEFAULT_STAT: &str = "1 (vmspace-puppet) S 0 1 1 0 -1 256 0 0 0 0 0 0 0 0 20 0 1 0 1 393216 0 18446744073709551615 4198400 4203774 140737488350752 0 0 0 0 65536 1240 0 0 0 17 0 0 0 0 0 0 4206592 4206600 4419584 140737488351199 140737488351214 140737488351214 140737488351214 0\n";

/// The pages the default process has resident when it starts: the helper
/// faults its whole image in before serving requests (its text pages are
/// page-cache pages of its shmem-backed image), plus one page of stack.
pub const DEFAULT_RESIDENT: &str = "\
400000-403000 file
403000-437000 anon
7fffffffe000-7ffffffff000 anon
";

/// Builds the default address space. Returns it with whether `[vsyscall]`
/// is shown.
pub fn default_image(k: &mut Kernel) -> (AddressSpace, bool) {
    let snap = SnapshotText {
        maps: DEFAULT_MAPS,
        smaps: Some(DEFAULT_SMAPS),
        stat: Some(DEFAULT_STAT),
        brk: None,
        limits: None,
        resident: Some(DEFAULT_RESIDENT),
    };
    match import(k, &snap) {
        Ok((mm, _, vsyscall)) => (mm, vsyscall),
        // The built-in text always parses; an empty space is the safe answer
        // if it ever did not.
        Err(_) => (
            AddressSpace::empty(
                crate::layout::Layout::default(),
                crate::mm::Rlimits::default(),
            ),
            false,
        ),
    }
}
