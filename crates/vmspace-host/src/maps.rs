//! Parsing and rendering `/proc/PID/maps` lines (also the header lines of
//! `smaps`) exactly as the kernel prints them.

/// One `/proc/PID/maps` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapsLine {
    pub start: u64,
    pub end: u64,
    /// `rwxp` / `rw-s` ...
    pub perms: [u8; 4],
    pub offset: u64,
    pub major: u32,
    pub minor: u32,
    pub inode: u64,
    /// The path or name (`[heap]`, `/dev/zero (deleted)`, ...), if any.
    pub path: Option<String>,
}

/// The column where the kernel pads the header to before the path:
/// `25 + sizeof(void *) * 6 - 1` (`show_vma_header_prefix`).
const PAD_WIDTH: usize = 25 + 8 * 6 - 1;

impl MapsLine {
    /// Parses one line (without its newline). `None` if it is not a maps
    /// line (e.g. an smaps field line).
    pub fn parse(line: &str) -> Option<MapsLine> {
        let mut rest = line;
        let mut field = || -> Option<&str> {
            let (f, r) = match rest.find(' ') {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, ""),
            };
            rest = r;
            Some(f)
        };
        let range = field()?;
        let perms = field()?;
        let offset = field()?;
        let dev = field()?;
        let inode = field()?;
        let (s, e) = range.split_once('-')?;
        let hex = |t: &str| -> Option<u64> {
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            u64::from_str_radix(t, 16).ok()
        };
        let start = hex(s)?;
        let end = hex(e)?;
        let perms: [u8; 4] = perms.as_bytes().try_into().ok()?;
        let offset = hex(offset)?;
        let (maj, min) = dev.split_once(':')?;
        let major = u32::try_from(hex(maj)?).ok()?;
        let minor = u32::try_from(hex(min)?).ok()?;
        if inode.is_empty() || !inode.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let inode = inode.parse().ok()?;
        let path = rest.trim_start_matches(' ');
        let path = (!path.is_empty()).then(|| path.to_string());
        Some(MapsLine {
            start,
            end,
            perms,
            offset,
            major,
            minor,
            inode,
            path,
        })
    }

    /// Renders the line as the kernel does (without the newline):
    /// `%08lx-%08lx %c%c%c%c %08llx %02x:%02x %lu `, then, when there is a
    /// path, spaces up to column 72, one more space and the path.
    pub fn render(&self) -> String {
        let mut s = format!(
            "{:08x}-{:08x} {} {:08x} {:02x}:{:02x} {} ",
            self.start,
            self.end,
            String::from_utf8_lossy(&self.perms),
            self.offset,
            self.major,
            self.minor,
            self.inode
        );
        if let Some(p) = &self.path {
            while s.len() < PAD_WIDTH {
                s.push(' ');
            }
            s.push(' ');
            s.push_str(p);
        }
        s
    }

    /// Whether `addr` lies in the mapping.
    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }
}

/// Finds the line of `maps` text whose range contains `addr`.
pub fn find(maps: &str, addr: u64) -> Option<MapsLine> {
    maps.lines()
        .filter_map(MapsLine::parse)
        .find(|l| l.contains(addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_real_maps() {
        let text = std::fs::read_to_string("/proc/self/maps").unwrap();
        let mut n = 0;
        for line in text.lines() {
            let parsed = MapsLine::parse(line).expect(line);
            assert_eq!(parsed.render(), line);
            n += 1;
        }
        assert!(n > 3);
    }

    #[test]
    fn round_trips_samples() {
        for line in [
            "00400000-00401000 r--p 00000000 00:01 5                                  /memfd:vmspace-puppet (deleted)",
            "7ffff7ff9000-7ffff7ffd000 r--p 00000000 00:00 0                          [vvar]",
            "7ffff7fb0000-7ffff7fc0000 rw-s 00000000 00:01 1027                       /dev/zero (deleted)",
            "7ffff7fc0000-7ffff7fc1000 rw-p 00000000 00:00 0 ",
            "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]",
            "7ffff7fb0000-7ffff7fc0000 rw-s 100000000 103:1a2 123456789012345         /a b",
        ] {
            let parsed = MapsLine::parse(line).expect(line);
            assert_eq!(parsed.render(), line);
        }
    }

    #[test]
    fn rejects_smaps_fields() {
        assert!(MapsLine::parse("Size:                  4 kB").is_none());
        assert!(MapsLine::parse("VmFlags: rd wr mr mw me ac sd").is_none());
        assert!(MapsLine::parse("").is_none());
    }

    #[test]
    fn paths_with_spaces() {
        let l = MapsLine::parse(
            "7ffff7fb0000-7ffff7fc0000 rw-s 00000000 00:01 1027                       /dev/zero (deleted)",
        )
        .unwrap();
        assert_eq!(l.path.as_deref(), Some("/dev/zero (deleted)"));
        assert_eq!(l.inode, 1027);
        assert_eq!((l.major, l.minor), (0, 1));
    }
}
