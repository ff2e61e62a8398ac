//! Property test: `RegionTree` against a naive model (a sorted `Vec` of
//! `(start, end, value)`), with random sequences of inserts, removes, bound
//! changes, payload writes and queries. Every query result is compared and
//! `check()` runs after every step.

use proptest::prelude::*;
use proptest::sample::Index;
use vmspace::vma::tree::RegionTree;

/// The reference: ranges sorted by start.
#[derive(Default, Debug)]
struct Model {
    v: Vec<(u64, u64, u32)>,
}

impl Model {
    fn overlaps(&self, s: u64, e: u64, skip: Option<u64>) -> bool {
        self.v
            .iter()
            .any(|&(a, b, _)| Some(a) != skip && a < e && s < b)
    }

    fn insert(&mut self, s: u64, e: u64, val: u32) -> Result<(), u32> {
        if s >= e || self.overlaps(s, e, None) {
            return Err(val);
        }
        self.v.push((s, e, val));
        self.v.sort_by_key(|r| r.0);
        Ok(())
    }

    fn remove(&mut self, s: u64) -> Option<(u64, u64, u32)> {
        let i = self.v.iter().position(|r| r.0 == s)?;
        Some(self.v.remove(i))
    }

    fn set_bounds(&mut self, s: u64, ns: u64, ne: u64) -> bool {
        let Some(i) = self.v.iter().position(|r| r.0 == s) else {
            return false;
        };
        if ns >= ne || self.overlaps(ns, ne, Some(s)) {
            return false;
        }
        self.v[i].0 = ns;
        self.v[i].1 = ne;
        self.v.sort_by_key(|r| r.0);
        true
    }

    fn get(&self, s: u64) -> Option<(u64, u64, u32)> {
        self.v.iter().copied().find(|r| r.0 == s)
    }

    fn find(&self, a: u64) -> Option<(u64, u64, u32)> {
        self.v.iter().copied().find(|r| r.1 > a)
    }

    fn containing(&self, a: u64) -> Option<(u64, u64, u32)> {
        self.v.iter().copied().find(|r| r.0 <= a && a < r.1)
    }

    fn prev(&self, a: u64) -> Option<(u64, u64, u32)> {
        self.v.iter().copied().rfind(|r| r.0 < a)
    }

    fn next(&self, a: u64) -> Option<(u64, u64, u32)> {
        self.v.iter().copied().find(|r| r.0 >= a)
    }

    fn range(&self, lo: u64, hi: u64) -> Vec<(u64, u64, u32)> {
        if lo >= hi {
            return Vec::new();
        }
        self.v
            .iter()
            .copied()
            .filter(|r| r.0 < hi && lo < r.1)
            .collect()
    }

    /// Every gap of `[0, u64::MAX)`, clipped to `[low, high)`, that holds
    /// `size` (0 counts as 1), ascending.
    fn fitting_gaps(&self, low: u64, high: u64, size: u64) -> Vec<(u64, u64)> {
        let size = size.max(1);
        let mut gaps = Vec::new();
        let mut at = 0u64;
        for &(s, e, _) in &self.v {
            if s > at {
                gaps.push((at, s));
            }
            at = e;
        }
        if at < u64::MAX {
            gaps.push((at, u64::MAX));
        }
        gaps.into_iter()
            .filter_map(|(s, e)| {
                let (s, e) = (s.max(low), e.min(high));
                (e > s && e - s >= size).then_some((s, e))
            })
            .collect()
    }
}

fn own(r: Option<(u64, u64, &u32)>) -> Option<(u64, u64, u32)> {
    r.map(|(s, e, v)| (s, e, *v))
}

/// Addresses: mostly a small dense window (so ranges collide), some near
/// the top of the space, some anywhere.
fn addr() -> impl Strategy<Value = u64> {
    prop_oneof![
        8 => 0u64..2_000,
        1 => (0u64..2_000).prop_map(|x| u64::MAX - x),
        1 => any::<u64>(),
    ]
}

fn length() -> impl Strategy<Value = u64> {
    prop_oneof![
        6 => 1u64..40,
        2 => 0u64..400,
        1 => any::<u64>(),
    ]
}

fn delta() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => -20i64..20,
        1 => any::<i64>(),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u64, u64),
    /// Remove an existing range (`Some`) or whatever starts at an address.
    Remove(Option<Index>, u64),
    /// Move both bounds of an existing range by small or large deltas.
    Nudge(Index, i64, i64),
    /// Set an existing range (or any address) to arbitrary bounds.
    SetBounds(Option<Index>, u64, u64, u64),
    SetValue(Index),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (addr(), length()).prop_map(|(s, l)| Op::Insert(s, l)),
        2 => (proptest::option::weighted(0.8, any::<Index>()), addr())
            .prop_map(|(i, a)| Op::Remove(i, a)),
        3 => (any::<Index>(), delta(), delta()).prop_map(|(i, a, b)| Op::Nudge(i, a, b)),
        1 => (proptest::option::weighted(0.8, any::<Index>()), addr(), addr(), length())
            .prop_map(|(i, a, s, l)| Op::SetBounds(i, a, s, l)),
        1 => any::<Index>().prop_map(Op::SetValue),
    ]
}

/// Queries run after each step.
#[derive(Debug, Clone)]
struct Query {
    addr: u64,
    lo: u64,
    hi: u64,
    size: u64,
}

fn query() -> impl Strategy<Value = Query> {
    let size = prop_oneof![
        3 => 0u64..10,
        3 => 0u64..300,
        1 => any::<u64>(),
        1 => (0u64..2_000).prop_map(|x| u64::MAX - x),
    ];
    (addr(), addr(), addr(), size, proptest::bool::weighted(0.85)).prop_map(
        |(addr, a, b, size, sorted)| {
            let (lo, hi) = if sorted { (a.min(b), a.max(b)) } else { (a, b) };
            Query { addr, lo, hi, size }
        },
    )
}

fn shift(x: u64, d: i64) -> u64 {
    x.saturating_add_signed(d)
}

fn run(steps: Vec<(Op, Query)>) -> Result<(), TestCaseError> {
    let mut t: RegionTree<u32> = RegionTree::new();
    let mut m = Model::default();
    let mut next_val = 0u32;
    for (step, (op, q)) in steps.into_iter().enumerate() {
        next_val += 1;
        let pick = |i: &Index, m: &Model| m.v.get(i.index(m.v.len().max(1))).map(|r| r.0);
        match op {
            Op::Insert(s, l) => {
                let e = s.saturating_add(l);
                prop_assert_eq!(t.insert(s, e, next_val), m.insert(s, e, next_val));
            }
            Op::Remove(i, a) => {
                let s = i.and_then(|i| pick(&i, &m)).unwrap_or(a);
                prop_assert_eq!(t.remove(s), m.remove(s));
            }
            Op::Nudge(i, ds, de) => {
                if let Some(s) = pick(&i, &m) {
                    let (_, e, _) = m.get(s).unwrap();
                    let (ns, ne) = (shift(s, ds), shift(e, de));
                    prop_assert_eq!(t.set_bounds(s, ns, ne), m.set_bounds(s, ns, ne));
                }
            }
            Op::SetBounds(i, a, ns, l) => {
                let s = i.and_then(|i| pick(&i, &m)).unwrap_or(a);
                let ne = ns.saturating_add(l);
                prop_assert_eq!(t.set_bounds(s, ns, ne), m.set_bounds(s, ns, ne));
            }
            Op::SetValue(i) => {
                if let Some(s) = pick(&i, &m) {
                    *t.get_mut(s).unwrap() = next_val;
                    let k = m.v.iter().position(|r| r.0 == s).unwrap();
                    m.v[k].2 = next_val;
                }
                prop_assert!(t.get_mut(q.addr).is_some() == m.get(q.addr).is_some());
            }
        }
        if let Err(e) = t.check() {
            return Err(TestCaseError::fail(format!("step {step}: check: {e}")));
        }

        // Whole-tree comparisons.
        prop_assert_eq!(t.len(), m.v.len());
        prop_assert_eq!(t.is_empty(), m.v.is_empty());
        let all: Vec<_> = t.iter().map(|(s, e, v)| (s, e, *v)).collect();
        prop_assert_eq!(&all, &m.v);
        prop_assert_eq!(own(t.first()), m.v.first().copied());
        prop_assert_eq!(own(t.last()), m.v.last().copied());

        // Point and range queries.
        let Query {
            addr: a,
            lo,
            hi,
            size,
        } = q;
        for x in [a, lo, hi] {
            prop_assert_eq!(own(t.find(x)), m.find(x));
            prop_assert_eq!(own(t.containing(x)), m.containing(x));
            prop_assert_eq!(own(t.prev(x)), m.prev(x));
            prop_assert_eq!(own(t.next(x)), m.next(x));
            prop_assert_eq!(own(t.get(x)), m.get(x));
        }
        // Also probe around existing bounds.
        if let Some(&(s, e, _)) = m.v.get((a as usize) % m.v.len().max(1)) {
            for x in [s.wrapping_sub(1), s, e.wrapping_sub(1), e] {
                prop_assert_eq!(own(t.find(x)), m.find(x));
                prop_assert_eq!(own(t.prev(x)), m.prev(x));
                prop_assert_eq!(own(t.next(x)), m.next(x));
            }
        }
        prop_assert_eq!(
            own(t.first_intersecting(lo, hi)),
            m.range(lo, hi).first().copied()
        );
        let r: Vec<_> = t.range(lo, hi).map(|(s, e, v)| (s, e, *v)).collect();
        prop_assert_eq!(r, m.range(lo, hi));

        // Free-area searches, with the query's window and with the whole
        // space, and a window hugging an existing range.
        let mut windows = vec![(lo, hi, size), (0, u64::MAX, size), (lo, hi, size % 64)];
        if let Some(&(s, e, _)) = m.v.get((size as usize) % m.v.len().max(1)) {
            windows.push((
                s.saturating_sub(size % 128),
                e.saturating_add(a % 128),
                a % 16,
            ));
        }
        for (low, high, sz) in windows {
            let fits = m.fitting_gaps(low, high, sz);
            prop_assert_eq!(
                t.highest_gap(low, high, sz),
                fits.last().copied(),
                "highest_gap({:#x}, {:#x}, {:#x})",
                low,
                high,
                sz
            );
            prop_assert_eq!(
                t.lowest_gap(low, high, sz),
                fits.first().copied(),
                "lowest_gap({:#x}, {:#x}, {:#x})",
                low,
                high,
                sz
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn tree_matches_model(steps in prop::collection::vec((op(), query()), 1..200)) {
        run(steps)?;
    }
}
