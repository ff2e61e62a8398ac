//! An interval tree: closed intervals `[lo, hi]` of `u64`, each with a
//! unique key, found by overlap in O(log n + k).
//!
//! Linux keeps one per file (`address_space->i_mmap`), over the page-offset
//! ranges of the regions mapping it (the classic texts' "priority search
//! tree", which Linux replaced with an augmented red-black interval tree).
//! This one is a treap — a binary search tree on `(lo, key)` that is also a
//! heap on a priority derived from the key — where every node knows the
//! largest `hi` below it, so a search skips subtrees that end before the
//! query starts. Nodes live in one vector; freed slots are reused.
//!
//! Invariants (checked by [`IntervalTree::check`]): in-order `(lo, key)`
//! strictly increases; every node's priority is at least its children's;
//! every node's `max` is the largest `hi` of its subtree.

use alloc::vec::Vec;

const NIL: u32 = u32::MAX;

#[derive(Clone, Debug)]
struct Node<K> {
    lo: u64,
    hi: u64,
    key: K,
    max: u64,
    prio: u64,
    left: u32,
    right: u32,
}

/// Closed intervals with unique keys; see the module documentation.
#[derive(Clone, Debug)]
pub struct IntervalTree<K> {
    nodes: Vec<Node<K>>,
    free: Vec<u32>,
    root: u32,
    len: usize,
}

impl<K> Default for IntervalTree<K> {
    fn default() -> Self {
        IntervalTree {
            nodes: Vec::new(),
            free: Vec::new(),
            root: NIL,
            len: 0,
        }
    }
}

/// A fixed mixing of the interval's start and a counter: priorities that
/// are random-looking but the same on every run.
fn priority(lo: u64, salt: u64) -> u64 {
    let mut z = lo ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl<K: Ord + Copy> IntervalTree<K> {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many intervals it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn node(&self, i: u32) -> &Node<K> {
        &self.nodes[i as usize]
    }

    fn node_mut(&mut self, i: u32) -> &mut Node<K> {
        &mut self.nodes[i as usize]
    }

    fn max_of(&self, i: u32) -> u64 {
        if i == NIL {
            0
        } else {
            self.node(i).max
        }
    }

    fn update(&mut self, i: u32) {
        let (l, r, hi) = {
            let n = self.node(i);
            (n.left, n.right, n.hi)
        };
        let m = hi.max(self.max_of(l)).max(self.max_of(r));
        self.node_mut(i).max = m;
    }

    fn less(&self, i: u32, lo: u64, key: &K) -> bool {
        let n = self.node(i);
        (n.lo, n.key) < (lo, *key)
    }

    /// Splits `t` into the nodes ordered before `(lo, key)` and the rest.
    fn split(&mut self, t: u32, lo: u64, key: &K) -> (u32, u32) {
        if t == NIL {
            return (NIL, NIL);
        }
        if self.less(t, lo, key) {
            let r = self.node(t).right;
            let (a, b) = self.split(r, lo, key);
            self.node_mut(t).right = a;
            self.update(t);
            (t, b)
        } else {
            let l = self.node(t).left;
            let (a, b) = self.split(l, lo, key);
            self.node_mut(t).left = b;
            self.update(t);
            (a, t)
        }
    }

    /// Joins two treaps, every node of `a` ordered before every node of `b`.
    fn merge(&mut self, a: u32, b: u32) -> u32 {
        if a == NIL {
            return b;
        }
        if b == NIL {
            return a;
        }
        if self.node(a).prio >= self.node(b).prio {
            let r = self.node(a).right;
            let m = self.merge(r, b);
            self.node_mut(a).right = m;
            self.update(a);
            a
        } else {
            let l = self.node(b).left;
            let m = self.merge(a, l);
            self.node_mut(b).left = m;
            self.update(b);
            b
        }
    }

    /// Adds `[lo, hi]` under `key` (`lo <= hi`; the pair `(lo, key)` must
    /// not be present already).
    pub fn insert(&mut self, lo: u64, hi: u64, key: K) {
        let node = Node {
            lo,
            hi,
            key,
            max: hi,
            prio: priority(lo, self.len as u64 ^ self.nodes.len() as u64),
            left: NIL,
            right: NIL,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        let (a, b) = self.split(self.root, lo, &key);
        let left = self.merge(a, i);
        self.root = self.merge(left, b);
        self.len += 1;
    }

    /// Removes the interval starting at `lo` under `key`; whether it was
    /// there.
    pub fn remove(&mut self, lo: u64, key: &K) -> bool {
        let (a, rest) = self.split(self.root, lo, key);
        // `rest` starts with the wanted node if it is present: peel the
        // leftmost node off.
        let (found, b) = self.take_leftmost(rest);
        let hit = found != NIL && {
            let n = self.node(found);
            n.lo == lo && n.key == *key
        };
        let b = if hit {
            self.free.push(found);
            self.len -= 1;
            b
        } else if found != NIL {
            self.merge(found, b)
        } else {
            b
        };
        self.root = self.merge(a, b);
        hit
    }

    /// Detaches the leftmost node of `t`: `(node, remaining tree)`.
    fn take_leftmost(&mut self, t: u32) -> (u32, u32) {
        if t == NIL {
            return (NIL, NIL);
        }
        let l = self.node(t).left;
        if l == NIL {
            let r = self.node(t).right;
            let n = self.node_mut(t);
            n.right = NIL;
            n.max = n.hi;
            return (t, r);
        }
        let (m, rest) = self.take_leftmost(l);
        self.node_mut(t).left = rest;
        self.update(t);
        (m, t)
    }

    /// Every interval overlapping `[a, b]`, as `(lo, hi, key)`, in order of
    /// `(lo, key)`.
    pub fn overlapping(&self, a: u64, b: u64) -> Vec<(u64, u64, K)> {
        let mut out = Vec::new();
        self.collect(self.root, a, b, &mut out);
        out
    }

    fn collect(&self, t: u32, a: u64, b: u64, out: &mut Vec<(u64, u64, K)>) {
        if t == NIL || self.node(t).max < a {
            return;
        }
        let (l, r, lo, hi, key) = {
            let n = self.node(t);
            (n.left, n.right, n.lo, n.hi, n.key)
        };
        self.collect(l, a, b, out);
        if lo <= b && hi >= a {
            out.push((lo, hi, key));
        }
        if lo <= b {
            self.collect(r, a, b, out);
        }
    }

    /// Checks the invariants; `Err` says which one broke where.
    pub fn check(&self) -> Result<(), alloc::string::String> {
        let mut count = 0;
        let mut last: Option<(u64, K)> = None;
        self.check_node(self.root, u64::MAX, &mut count, &mut last)?;
        if count != self.len {
            return Err(alloc::format!(
                "{count} nodes reachable, {} counted",
                self.len
            ));
        }
        Ok(())
    }

    fn check_node(
        &self,
        t: u32,
        prio_cap: u64,
        count: &mut usize,
        last: &mut Option<(u64, K)>,
    ) -> Result<u64, alloc::string::String> {
        if t == NIL {
            return Ok(0);
        }
        let n = self.node(t);
        if n.prio > prio_cap {
            return Err(alloc::format!("heap order broken at [{}, {}]", n.lo, n.hi));
        }
        let lm = self.check_node(n.left, n.prio, count, last)?;
        if let Some(prev) = *last {
            if prev >= (n.lo, n.key) {
                return Err(alloc::format!(
                    "search order broken at [{}, {}]",
                    n.lo,
                    n.hi
                ));
            }
        }
        *last = Some((n.lo, n.key));
        *count += 1;
        let rm = self.check_node(n.right, n.prio, count, last)?;
        let m = n.hi.max(lm).max(rm);
        if m != n.max {
            return Err(alloc::format!(
                "max {} where {m} at [{}, {}]",
                n.max,
                n.lo,
                n.hi
            ));
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_exactly_the_overlaps() {
        let mut t = IntervalTree::new();
        let ivs = [(0u64, 9u64), (5, 5), (10, 20), (3, 30), (40, 41), (12, 12)];
        for (i, &(lo, hi)) in ivs.iter().enumerate() {
            t.insert(lo, hi, i);
        }
        t.check().unwrap();
        for a in 0..45 {
            for b in a..45 {
                let got: Vec<usize> = t.overlapping(a, b).into_iter().map(|x| x.2).collect();
                let mut want: Vec<(u64, usize)> = ivs
                    .iter()
                    .enumerate()
                    .filter(|(_, &(lo, hi))| lo <= b && hi >= a)
                    .map(|(i, &(lo, _))| (lo, i))
                    .collect();
                want.sort_unstable();
                assert_eq!(
                    got,
                    want.into_iter().map(|x| x.1).collect::<Vec<_>>(),
                    "[{a}, {b}]"
                );
            }
        }
    }

    #[test]
    fn removes_and_reuses() {
        let mut t = IntervalTree::new();
        for i in 0..200u64 {
            t.insert(i * 3, i * 3 + 7, i);
        }
        for i in (0..200u64).step_by(2) {
            assert!(t.remove(i * 3, &i));
            assert!(!t.remove(i * 3, &i));
        }
        t.check().unwrap();
        assert_eq!(t.len(), 100);
        for i in 0..50u64 {
            t.insert(1000 + i, 1000 + i, 1000 + i);
        }
        t.check().unwrap();
        assert_eq!(t.overlapping(0, 5).len(), 1);
        assert!(t.nodes.len() <= 250);
    }
}
