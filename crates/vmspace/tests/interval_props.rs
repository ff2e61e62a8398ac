//! Property test: the interval tree against a plain list of intervals.
//!
//! Random inserts and removals (of present and absent intervals) and
//! overlap queries; after every step the tree's invariants hold and every
//! query returns exactly the intervals the list says overlap, in
//! `(lo, key)` order.

use proptest::prelude::*;
use vmspace::interval::IntervalTree;

#[derive(Clone, Debug)]
enum Op {
    Insert { lo: u64, len: u64 },
    Remove { pick: usize },
    RemoveAbsent { lo: u64 },
    Query { a: u64, len: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u64..200, 0u64..40).prop_map(|(lo, len)| Op::Insert { lo, len }),
        2 => any::<usize>().prop_map(|pick| Op::Remove { pick }),
        1 => (0u64..200).prop_map(|lo| Op::RemoveAbsent { lo }),
        3 => (0u64..240, 0u64..60).prop_map(|(a, len)| Op::Query { a, len }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn matches_a_plain_list(ops in proptest::collection::vec(op(), 1..200)) {
        let mut tree = IntervalTree::new();
        let mut list: Vec<(u64, u64, u32)> = Vec::new();
        let mut next_key = 0u32;
        for op in ops {
            match op {
                Op::Insert { lo, len } => {
                    tree.insert(lo, lo + len, next_key);
                    list.push((lo, lo + len, next_key));
                    next_key += 1;
                }
                Op::Remove { pick } => {
                    if !list.is_empty() {
                        let (lo, _, key) = list.remove(pick % list.len());
                        prop_assert!(tree.remove(lo, &key));
                    }
                }
                Op::RemoveAbsent { lo } => {
                    prop_assert!(!tree.remove(lo, &u32::MAX));
                }
                Op::Query { a, len } => {
                    let b = a + len;
                    let got = tree.overlapping(a, b);
                    let mut want: Vec<(u64, u64, u32)> = list
                        .iter()
                        .copied()
                        .filter(|&(lo, hi, _)| lo <= b && hi >= a)
                        .collect();
                    want.sort_unstable_by_key(|&(lo, _, k)| (lo, k));
                    prop_assert_eq!(got, want);
                }
            }
            prop_assert_eq!(tree.len(), list.len());
            tree.check().map_err(TestCaseError::fail)?;
        }
    }
}
