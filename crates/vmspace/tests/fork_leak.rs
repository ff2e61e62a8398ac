//! Random fork / touch / unmap / exit sequences over several processes end
//! with every frame back in the allocator (but the page cache of the
//! program's file), every invariant holds after every step, and the reverse
//! map finds exactly the entries that map each frame.

use proptest::prelude::*;
use vmspace::uapi::*;
use vmspace::{Params, System};

#[derive(Clone, Debug)]
enum Op {
    Map {
        shared: bool,
        pages: u64,
    },
    Store {
        region: usize,
        page: u64,
        pages: u64,
    },
    Load {
        region: usize,
        page: u64,
    },
    Fork,
    Exit,
    Unmap {
        region: usize,
        page: u64,
    },
    Protect {
        region: usize,
        page: u64,
        write: bool,
    },
    Remap {
        region: usize,
        grow: u64,
    },
    Dontneed {
        region: usize,
        page: u64,
    },
    Switch(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (any::<bool>(), 1u64..8).prop_map(|(shared, pages)| Op::Map { shared, pages }),
        6 => (0usize..8, 0u64..8, 1u64..4).prop_map(|(region, page, pages)| Op::Store { region, page, pages }),
        2 => (0usize..8, 0u64..8).prop_map(|(region, page)| Op::Load { region, page }),
        2 => Just(Op::Fork),
        1 => Just(Op::Exit),
        1 => (0usize..8, 0u64..8).prop_map(|(region, page)| Op::Unmap { region, page }),
        1 => (0usize..8, 0u64..8, any::<bool>()).prop_map(|(region, page, write)| Op::Protect { region, page, write }),
        1 => (0usize..8, 1u64..4).prop_map(|(region, grow)| Op::Remap { region, grow }),
        1 => (0usize..8, 0u64..8).prop_map(|(region, page)| Op::Dontneed { region, page }),
        2 => (0usize..8).prop_map(Op::Switch),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
    #[test]
    fn every_frame_returns(ops in proptest::collection::vec(op(), 1..60)) {
        let mut sys = System::new(Params { ram: 256 << 20, ..Params::default() });
        let main = sys.spawn_default();
        let mut procs = vec![main];
        let mut cur = main;
        let mut regions: Vec<(u64, u64)> = Vec::new();
        for op in ops {
            if !procs.contains(&cur) {
                match procs.first() {
                    Some(&p) => cur = p,
                    None => break,
                }
            }
            let pick = |i: usize| if regions.is_empty() { None } else { Some(regions[i % regions.len()]) };
            match op {
                Op::Map { shared, pages } => {
                    let flags = if shared { MAP_SHARED } else { MAP_PRIVATE } | MAP_ANONYMOUS;
                    if let Ok(a) = sys.mmap(cur, 0, pages * 4096, PROT_READ | PROT_WRITE, flags, u64::MAX, 0) {
                        regions.push((a, pages));
                    }
                }
                Op::Store { region, page, pages } => if let Some((a, n)) = pick(region) {
                    let _ = sys.store(cur, a + (page % n) * 4096, pages * 4096, page as u8);
                },
                Op::Load { region, page } => if let Some((a, n)) = pick(region) {
                    let _ = sys.load(cur, a + (page % n) * 4096, 4096);
                },
                Op::Fork => if let Ok(c) = sys.fork(cur) { procs.push(c); },
                Op::Exit => {
                    sys.exit(cur).expect("live process exits");
                    procs.retain(|&p| p != cur);
                }
                Op::Unmap { region, page } => if let Some((a, n)) = pick(region) {
                    let _ = sys.munmap(cur, a + (page % n) * 4096, 4096);
                },
                Op::Protect { region, page, write } => if let Some((a, n)) = pick(region) {
                    let prot = if write { PROT_READ | PROT_WRITE } else { PROT_READ };
                    let _ = sys.mprotect(cur, a + (page % n) * 4096, 4096, prot);
                },
                Op::Remap { region, grow } => if let Some((a, n)) = pick(region) {
                    if let Ok(b) = sys.mremap(cur, a, n * 4096, (n + grow) * 4096, MREMAP_MAYMOVE, 0) {
                        if let Some(r) = regions.iter_mut().find(|r| r.0 == a) {
                            *r = (b, n + grow);
                        }
                    }
                },
                Op::Dontneed { region, page } => if let Some((a, n)) = pick(region) {
                    let _ = sys.madvise(cur, a + (page % n) * 4096, 4096, MADV_DONTNEED);
                },
                Op::Switch(i) => cur = procs[i % procs.len()],
            }
            if let Err(e) = sys.check().and_then(|_| sys.check_rmap()) {
                return Err(TestCaseError::fail(e));
            }
        }
        for p in procs {
            let _ = sys.exit(p);
        }
        sys.check().map_err(TestCaseError::fail)?;
        // Pages the CPU's LRU batches still hold go when they drain.
        sys.kernel.phys.lru_add_drain();
        // What stays: the zero page and the page cache of the program image.
        let cached = sys.kernel.cache.frames().count() as u64;
        prop_assert_eq!(sys.kernel.phys.used_frames(), 1 + cached);
        prop_assert_eq!(sys.kernel.committed, 0);
    }
}

/// Starting processes on a machine too small for them: the image whose
/// import runs out of memory part-way gives back everything it took (found
/// by the engine_calls fuzzer, `fuzz/reproducers/engine_calls/spawn-oom-import-leak`).
#[test]
fn spawn_out_of_memory_leaks_nothing() {
    let mut p = Params::default();
    p.set("ram", 1 << 20).unwrap();
    let mut sys = System::new(p);
    let pids: Vec<_> = (0..8).map(|_| sys.spawn_default()).collect();
    sys.check().unwrap();
    for pid in pids {
        sys.exit(pid).unwrap();
    }
    sys.check().unwrap();
    sys.kernel.phys.lru_add_drain();
    let cached = sys.kernel.cache.frames().count() as u64;
    assert_eq!(sys.kernel.phys.used_frames(), 1 + cached);
    assert_eq!(sys.kernel.committed, 0);
}
