//! Property test: no input panics the library.
//!
//! Random sequences of every [`System`] call with arbitrary arguments: any
//! `u64`, flag words with unknown bits, addresses near existing regions and
//! at the edges of the address space, lengths that wrap, unknown pids and
//! resources. The machine's parameters and the process's capabilities are
//! random too. After every call `sys.check()` must pass, and `maps` and
//! `status` must render. A panic anywhere fails the test.

use proptest::prelude::*;
use proptest::sample::Index;
use vmspace::mm::Capabilities;
use vmspace::uapi::*;
use vmspace::{Params, Pid, System};

const PAGE: u64 = 4096;
const TASK_SIZE: u64 = 0x7fff_ffff_f000;

/// An argument: fully random, or one of the values most likely to reach
/// deep into the code.
#[derive(Clone, Debug)]
enum Arg {
    Any(u64),
    Small(u64),
    Pages(u64),
    /// Near the start or end of an existing region (± a few pages and bytes).
    Region(Index, bool, i64),
    Fixed(u64),
}

fn edge_values() -> Vec<u64> {
    vec![
        0,
        1,
        PAGE - 1,
        PAGE,
        PAGE + 1,
        0x10000,
        0x200000,
        1 << 32,
        TASK_SIZE - PAGE,
        TASK_SIZE,
        TASK_SIZE + 1,
        TASK_SIZE + PAGE,
        1 << 47,
        1 << 63,
        u64::MAX - 4096,
        u64::MAX - 4095,
        u64::MAX - PAGE - 1,
        u64::MAX - 1,
        u64::MAX,
        0x7fff_f7ff_f000,
        0x7fff_fffd_e000,
        0xffff_ffff_ff60_0000,
    ]
}

fn arg() -> impl Strategy<Value = Arg> {
    prop_oneof![
        3 => any::<u64>().prop_map(Arg::Any),
        2 => (0u64..64).prop_map(Arg::Small),
        3 => (0u64..1100).prop_map(Arg::Pages),
        5 => (any::<Index>(), any::<bool>(), -3i64..=3).prop_map(|(i, e, d)| Arg::Region(i, e, d)),
        2 => prop::sample::select(edge_values()).prop_map(Arg::Fixed),
    ]
}

/// A flag word: known bits, sometimes with unknown ones or fully random.
fn flags(known: &'static [u64]) -> impl Strategy<Value = u64> {
    prop_oneof![
        6 => prop::sample::subsequence(known, 0..=known.len()).prop_map(|v| v.iter().fold(0, |a, b| a | b)),
        2 => (prop::sample::subsequence(known, 0..=known.len()), any::<u64>())
            .prop_map(|(v, r)| v.iter().fold(0, |a, b| a | b) | (r & r.rotate_left(17))),
        1 => any::<u64>(),
        1 => 0u64..64,
    ]
}

const PROT: &[u64] = &[
    PROT_READ,
    PROT_WRITE,
    PROT_EXEC,
    PROT_SEM,
    PROT_GROWSDOWN,
    PROT_GROWSUP,
];
const MAP: &[u64] = &[
    MAP_SHARED,
    MAP_PRIVATE,
    MAP_DROPPABLE,
    MAP_FIXED,
    MAP_ANONYMOUS,
    MAP_32BIT,
    MAP_ABOVE4G,
    MAP_GROWSDOWN,
    MAP_DENYWRITE,
    MAP_EXECUTABLE,
    MAP_LOCKED,
    MAP_NORESERVE,
    MAP_POPULATE,
    MAP_NONBLOCK,
    MAP_STACK,
    MAP_HUGETLB,
    MAP_SYNC,
    MAP_FIXED_NOREPLACE,
    MAP_UNINITIALIZED,
    MAP_HUGE_2MB,
    MAP_HUGE_1GB,
];
const MREMAP: &[u64] = &[MREMAP_MAYMOVE, MREMAP_FIXED, MREMAP_DONTUNMAP];
const MCL: &[u64] = &[MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT];
const MS: &[u64] = &[MS_ASYNC, MS_INVALIDATE, MS_SYNC];

fn advice() -> impl Strategy<Value = u64> {
    prop_oneof![
        8 => prop::sample::select(
            &[
                MADV_NORMAL,
                MADV_RANDOM,
                MADV_SEQUENTIAL,
                MADV_WILLNEED,
                MADV_DONTNEED,
                MADV_FREE,
                MADV_REMOVE,
                MADV_DONTFORK,
                MADV_DOFORK,
                MADV_MERGEABLE,
                MADV_UNMERGEABLE,
                MADV_HUGEPAGE,
                MADV_NOHUGEPAGE,
                MADV_DONTDUMP,
                MADV_DODUMP,
                MADV_WIPEONFORK,
                MADV_KEEPONFORK,
                MADV_COLD,
                MADV_PAGEOUT,
                MADV_POPULATE_READ,
                MADV_POPULATE_WRITE,
                MADV_DONTNEED_LOCKED,
                MADV_COLLAPSE,
                MADV_HWPOISON,
                MADV_SOFT_OFFLINE,
                MADV_GUARD_INSTALL,
                MADV_GUARD_REMOVE,
            ][..]
        ),
        1 => any::<u64>(),
        1 => 0u64..200,
    ]
}

#[derive(Clone, Debug)]
enum Op {
    Mmap(Arg, Arg, u64, u64, Arg, Arg),
    Munmap(Arg, Arg),
    Mprotect(Arg, Arg, u64),
    Mremap(Arg, Arg, Arg, u64, Arg),
    Brk(Arg),
    Madvise(Arg, Arg, u64),
    Mlock(Arg, Arg),
    Mlock2(Arg, Arg, u64),
    Munlock(Arg, Arg),
    Mlockall(u64),
    Munlockall,
    Mseal(Arg, Arg, u64),
    Msync(Arg, Arg, u64),
    Setrlimit(u64, Arg, Arg),
    /// The same call on a pid that does not exist.
    NoSuchPid(Arg, Arg),
}

fn op() -> impl Strategy<Value = Op> {
    let fd = prop_oneof![3 => Just(Arg::Any(u64::MAX)), 1 => arg()];
    prop_oneof![
        6 => (arg(), arg(), flags(PROT), flags(MAP), fd, arg()).prop_map(|(a, l, p, f, fd, o)| Op::Mmap(a, l, p, f, fd, o)),
        3 => (arg(), arg()).prop_map(|(a, l)| Op::Munmap(a, l)),
        3 => (arg(), arg(), flags(PROT)).prop_map(|(a, l, p)| Op::Mprotect(a, l, p)),
        4 => (arg(), arg(), arg(), flags(MREMAP), arg()).prop_map(|(a, o, n, f, na)| Op::Mremap(a, o, n, f, na)),
        1 => arg().prop_map(Op::Brk),
        3 => (arg(), arg(), advice()).prop_map(|(a, l, v)| Op::Madvise(a, l, v)),
        1 => (arg(), arg()).prop_map(|(a, l)| Op::Mlock(a, l)),
        1 => (arg(), arg(), flags(&[MLOCK_ONFAULT])).prop_map(|(a, l, f)| Op::Mlock2(a, l, f)),
        1 => (arg(), arg()).prop_map(|(a, l)| Op::Munlock(a, l)),
        1 => flags(MCL).prop_map(Op::Mlockall),
        1 => Just(Op::Munlockall),
        2 => (arg(), arg(), prop_oneof![4 => Just(0u64), 1 => any::<u64>()]).prop_map(|(a, l, f)| Op::Mseal(a, l, f)),
        1 => (arg(), arg(), flags(MS)).prop_map(|(a, l, f)| Op::Msync(a, l, f)),
        1 => (prop_oneof![3 => 0u64..16, 1 => any::<u64>()], arg(), arg()).prop_map(|(r, s, h)| Op::Setrlimit(r, s, h)),
        1 => (arg(), arg()).prop_map(|(a, l)| Op::NoSuchPid(a, l)),
    ]
}

fn resolve(sys: &System, pid: Pid, a: &Arg) -> u64 {
    match *a {
        Arg::Any(v) | Arg::Small(v) | Arg::Fixed(v) => v,
        Arg::Pages(n) => n * PAGE,
        Arg::Region(ref i, end, d) => {
            let edges: Vec<u64> = sys
                .process(pid)
                .map(|p| p.mm.vmas().flat_map(|v| [v.start(), v.end()]).collect())
                .unwrap_or_default();
            if edges.is_empty() {
                return 0;
            }
            let base = edges[i.index(edges.len())];
            // `end` picks a byte offset instead of a page offset.
            let delta = if end { d } else { d * PAGE as i64 };
            base.wrapping_add(delta as u64)
        }
    }
}

/// Machine parameters: defaults, or extremes that reach rare paths (tiny
/// map count limit, strict overcommit with little memory, odd minimums).
fn params() -> impl Strategy<Value = Vec<(&'static str, u64)>> {
    let one = prop_oneof![
        (
            Just("max_map_count"),
            prop::sample::select(vec![0u64, 1, 5, 12, 30, 65530])
        ),
        (Just("overcommit_memory"), 0u64..3),
        (
            Just("overcommit_ratio"),
            prop::sample::select(vec![0u64, 1, 50, 100, 1000])
        ),
        (
            Just("ram"),
            prop::sample::select(vec![1u64 << 20, 16 << 20, 4 << 30, u64::MAX])
        ),
        (
            Just("swap"),
            prop::sample::select(vec![0u64, 1 << 20, u64::MAX])
        ),
        (
            Just("mmap_min_addr"),
            prop::sample::select(vec![0u64, 4096, 65536, 1 << 20, u64::MAX])
        ),
        (
            Just("lsm_mmap_min_addr"),
            prop::sample::select(vec![0u64, 65536, u64::MAX])
        ),
        (
            Just("stack_guard_gap"),
            prop::sample::select(vec![0u64, 4096, 1 << 20, u64::MAX])
        ),
        (
            Just("admin_reserve_kbytes"),
            prop::sample::select(vec![0u64, 8192, u64::MAX])
        ),
        (
            Just("user_reserve_kbytes"),
            prop::sample::select(vec![0u64, 131072, u64::MAX])
        ),
    ];
    prop_oneof![
        2 => Just(Vec::new()),
        1 => prop::collection::vec(one, 1..4),
    ]
}

fn caps() -> impl Strategy<Value = Capabilities> {
    prop_oneof![
        3 => Just(Capabilities::default()),
        1 => (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(a, b, c, d)| Capabilities {
            ipc_lock: a,
            sys_rawio: b,
            sys_admin: c,
            sys_resource: d,
        }),
    ]
}

fn run(params: &[(&str, u64)], caps: Capabilities, ops: &[Op]) -> Result<(), String> {
    let mut p = Params::default();
    for &(k, v) in params {
        let _ = p.set(k, v);
    }
    let mut sys = System::new(p);
    let pid = sys.spawn_default();
    sys.process_mut(pid).unwrap().mm.caps = caps;
    sys.check()?;
    for (i, op) in ops.iter().enumerate() {
        let r = |a: &Arg| resolve(&sys, pid, a);
        let call = match op {
            Op::Mmap(a, l, p, f, fd, o) => {
                let (a, l, fd, o) = (r(a), r(l), r(fd), r(o));
                format!(
                    "mmap({a:#x}, {l:#x}, {p:#x}, {f:#x}, {fd:#x}, {o:#x}) = {:?}",
                    sys.mmap(pid, a, l, *p, *f, fd, o)
                )
            }
            Op::Munmap(a, l) => {
                let (a, l) = (r(a), r(l));
                format!("munmap({a:#x}, {l:#x}) = {:?}", sys.munmap(pid, a, l))
            }
            Op::Mprotect(a, l, p) => {
                let (a, l) = (r(a), r(l));
                format!(
                    "mprotect({a:#x}, {l:#x}, {p:#x}) = {:?}",
                    sys.mprotect(pid, a, l, *p)
                )
            }
            Op::Mremap(a, o, n, f, na) => {
                let (a, o, n, na) = (r(a), r(o), r(n), r(na));
                format!(
                    "mremap({a:#x}, {o:#x}, {n:#x}, {f:#x}, {na:#x}) = {:?}",
                    sys.mremap(pid, a, o, n, *f, na)
                )
            }
            Op::Brk(a) => {
                let a = r(a);
                format!("brk({a:#x}) = {:?}", sys.brk(pid, a))
            }
            Op::Madvise(a, l, v) => {
                let (a, l) = (r(a), r(l));
                format!(
                    "madvise({a:#x}, {l:#x}, {v}) = {:?}",
                    sys.madvise(pid, a, l, *v)
                )
            }
            Op::Mlock(a, l) => {
                let (a, l) = (r(a), r(l));
                format!("mlock({a:#x}, {l:#x}) = {:?}", sys.mlock(pid, a, l))
            }
            Op::Mlock2(a, l, f) => {
                let (a, l) = (r(a), r(l));
                format!(
                    "mlock2({a:#x}, {l:#x}, {f:#x}) = {:?}",
                    sys.mlock2(pid, a, l, *f)
                )
            }
            Op::Munlock(a, l) => {
                let (a, l) = (r(a), r(l));
                format!("munlock({a:#x}, {l:#x}) = {:?}", sys.munlock(pid, a, l))
            }
            Op::Mlockall(f) => format!("mlockall({f:#x}) = {:?}", sys.mlockall(pid, *f)),
            Op::Munlockall => format!("munlockall() = {:?}", sys.munlockall(pid)),
            Op::Mseal(a, l, f) => {
                let (a, l) = (r(a), r(l));
                format!(
                    "mseal({a:#x}, {l:#x}, {f:#x}) = {:?}",
                    sys.mseal(pid, a, l, *f)
                )
            }
            Op::Msync(a, l, f) => {
                let (a, l) = (r(a), r(l));
                let res = sys.process(pid).unwrap().mm.msync(a, l, *f);
                format!("msync({a:#x}, {l:#x}, {f:#x}) = {res:?}")
            }
            Op::Setrlimit(res, s, h) => {
                let (s, h) = (r(s), r(h));
                format!(
                    "setrlimit({res}, {s:#x}, {h:#x}) = {:?}",
                    sys.setrlimit(pid, *res, s, h)
                )
            }
            Op::NoSuchPid(a, l) => {
                let (a, l) = (r(a), r(l));
                let other = pid + 1000;
                let res = [
                    sys.mmap(other, a, l, 3, MAP_PRIVATE | MAP_ANONYMOUS, u64::MAX, 0),
                    sys.munmap(other, a, l),
                    sys.mprotect(other, a, l, 1),
                    sys.mremap(other, a, l, l, MREMAP_MAYMOVE, 0),
                    sys.brk(other, a),
                    sys.madvise(other, a, l, MADV_DONTNEED),
                    sys.mlock(other, a, l),
                    sys.munlock(other, a, l),
                    sys.mlockall(other, MCL_CURRENT),
                    sys.munlockall(other),
                    sys.mseal(other, a, l, 0),
                    sys.setrlimit(other, RLIMIT_MEMLOCK, 0, 0),
                ];
                if res.iter().any(|r| r != &Err(vmspace::Errno::ESRCH))
                    || sys.maps(other).is_ok()
                    || sys.status(other).is_ok()
                {
                    return Err(format!("call {i}: a missing pid gave {res:?}"));
                }
                "calls on a missing pid".to_string()
            }
        };
        sys.check()
            .map_err(|e| format!("after call {i}, {call}: check failed: {e}"))?;
        let maps = sys.maps(pid).map_err(|e| format!("maps: {e:?}"))?;
        let status = sys.status(pid).map_err(|e| format!("status: {e:?}"))?;
        if maps.is_empty() || status.is_empty() {
            return Err(format!("after call {i}, {call}: empty maps or status"));
        }
    }
    Ok(())
}

/// 384 cases (`INVARIANT_CASES=n` for more), no regression files.
fn config() -> ProptestConfig {
    let cases = std::env::var("INVARIANT_CASES")
        .ok()
        .and_then(|v| v.parse().ok());
    ProptestConfig {
        cases: cases.unwrap_or(384),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn no_input_breaks_the_engine(params in params(), caps in caps(), ops in prop::collection::vec(op(), 1..48)) {
        if let Err(e) = run(&params, caps, &ops) {
            prop_assert!(false, "{}", e);
        }
    }
}
