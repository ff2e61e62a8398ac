//! The region tree: an ordered map of disjoint half-open `u64` ranges to
//! values, with O(log n) lookups and O(log n) free-gap searches.
//!
//! This plays the part of Linux's maple tree (`mm->mm_mt`) and of gVisor's
//! `vmaSet`: it holds the memory regions of an address space, answers
//! `find_vma`, `find_vma_prev` and `find_vma_intersection`, and finds free
//! areas for `get_unmapped_area` top-down or bottom-up.
//!
//! # Design
//!
//! An AVL tree ordered by address, stored in an arena indexed by `u32`
//! (`NIL` = `u32::MAX` is "no node"), with parent links so that in-order
//! stepping and upward fix-ups need no stack.
//!
//! The arena is split in two parallel `Vec`s sharing one index:
//!
//! - `hot[i]`: `end` and the two child links, 16 bytes, 16-aligned (four per
//!   cache line, never straddling one). Every descent (`find`, `get`,
//!   `prev`, `next`, `containing`, ...) reads only these: ranges are
//!   disjoint, so ordering by `end` is ordering by `start`, and "the range
//!   starting at `s`" is "the first range with `end > s`", checked
//!   afterwards. 10,000 ranges are 160 KiB of hot nodes.
//! - `cold[i]`: `start`, `gap`, `max_gap`, the parent link, the AVL height
//!   and the payload `V`: 29 bytes plus `V`, used by updates, gap searches
//!   and to return a result.
//!
//! Per-range overhead is 16 + 32 = 48 bytes with `V = ()` (at most 48 for
//! any `V` of alignment <= 8): that is the whole cost, there is no per-node
//! box and no free list. The arena grows by a third when full rather than
//! doubling, so spare capacity adds at most a third to that (the engine's
//! ranges, with their 40-byte payload, cost 88 bytes, at most ~117 with
//! slack). Removal takes the dead slot out of both `Vec`s
//! with `swap_remove` and re-links the node that moved into it, so the
//! arena stays dense, with no tombstones and no `Option<V>` per slot
//! (which would cost up to `size_of::<V>()` for payloads without a niche;
//! `unsafe` is forbidden in this crate).
//!
//! Why not a B-tree (as the maple tree is)? It would need fewer cache lines
//! per lookup, but keeping `V` in fixed-size leaf arrays without `unsafe`
//! needs `Option<V>` slots or a side table, and the gap augmentation across
//! leaf boundaries is much more intricate. The split AVL layout, with a
//! branch-free descent, meets the lookup budget at 10,000 ranges when
//! lookups overlap (about 35 ns); a chain of lookups that each wait for
//! the previous one is bound by one cache access per level and costs
//! about 55 ns (`benches/regions.rs`, `find_vma/engine*`). Fewer, wider
//! levels are what would take that lower.
//!
//! # Invariants
//!
//! The address space is `[0, u64::MAX)`. Ranges are half-open and non-empty:
//! `start < end`.
//!
//! - Ordering: the in-order sequence of nodes has strictly increasing starts,
//!   and ranges are disjoint: each node's `start` is `>=` its in-order
//!   predecessor's `end`. (So ends increase too, and "the first range with
//!   `end > addr`" is well defined.)
//! - Balance: `height` is 1 for a leaf, `1 + max(children)` otherwise, and the
//!   heights of the two children differ by at most 1.
//! - Links: `cold[c].parent == p` for every child `c` of `p`; the root's
//!   parent is `NIL`; `root == NIL` iff the arena is empty; every arena slot
//!   is reachable from the root exactly once; `hot.len() == cold.len()`.
//! - Gaps. The free space is split into gaps, one *below* each range plus one
//!   *above* the last range:
//!   - the gap below node `n` is `[pred(n).end, n.start)`, where `pred(n)` is
//!     the previous range in address order; for the first range it is
//!     `[0, first.start)`. Its length is stored in `n.gap` (it may be 0);
//!   - the gap above the last range is `[last.end, u64::MAX)`. It is not
//!     stored; it is computed from the last node. In an empty tree it is the
//!     whole space `[0, u64::MAX)`.
//! - Augmentation: `n.max_gap == max(n.gap, left.max_gap, right.max_gap)`
//!   (absent children count as 0): the longest gap *below* any node of the
//!   subtree. Because `n.gap` depends on `n`'s predecessor, every change to a
//!   range's bounds (insert, remove, resize) also changes the gap of its
//!   successor; both nodes' root paths are re-augmented.
//!
//! Subtree bounds (min start / max end) are not stored: a gap search learns
//! them on the way down. The gaps of a subtree all lie inside `[lo, hi)`,
//! where `lo` is the end of the nearest ancestor whose right subtree holds
//! it (the predecessor of its leftmost node; 0 if none) and `hi` is the
//! start of the gap below the nearest ancestor whose left subtree holds it
//! (`u64::MAX` if none).
//!
//! # Gap search
//!
//! `highest_gap(low, high, size)` and `lowest_gap` clip every gap to
//! `[low, high)` and return the highest (lowest) clipped gap of length
//! `>= size`. The descent prunes a subtree when its `max_gap < size` (clipping
//! only shrinks gaps) or when its bounds clipped to `[low, high)` are shorter
//! than `size`. A subtree whose bounds lie wholly inside `[low, high)` is not
//! clipped at all, so `max_gap >= size` proves it holds an answer and a single
//! greedy descent finds it. Only subtrees whose bounds straddle `low` or
//! `high` are explored on both sides, and there are at most two of those per
//! level, so a search costs O(log n).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// "No node".
const NIL: u32 = u32::MAX;
/// Child slot of the left (lower) subtree.
const L: usize = 0;
/// Child slot of the right (higher) subtree.
const R: usize = 1;

/// The part of a node that descents read.
#[derive(Clone, Copy)]
#[repr(C, align(16))]
struct Hot {
    /// One past the last address of the range.
    end: u64,
    /// Child links: left in the low 32 bits, right in the high 32 bits,
    /// `NIL` if absent. One word, so that a descent loads both at once and
    /// picks one with a shift rather than a second dependent load.
    links: u64,
}

/// `links` of a node without children.
const NO_LINKS: u64 = u64::MAX;

impl Hot {
    /// The child on side `dir`.
    #[inline]
    fn child(&self, dir: usize) -> u32 {
        (self.links >> (32 * dir)) as u32
    }

    /// `[left, right]`.
    #[inline]
    fn children(&self) -> [u32; 2] {
        [self.links as u32, (self.links >> 32) as u32]
    }

    /// Sets the child on side `dir`.
    #[inline]
    fn set_child(&mut self, dir: usize, c: u32) {
        let sh = 32 * dir;
        self.links = (self.links & !(0xffff_ffff_u64 << sh)) | ((c as u64) << sh);
    }
}

/// The rest of a node.
#[derive(Clone)]
struct Cold<V> {
    /// First address of the range.
    start: u64,
    /// Length of the gap below this range: `start - pred.end` (or `start`).
    gap: u64,
    /// Largest `gap` in this subtree.
    max_gap: u64,
    /// Parent, `NIL` for the root.
    parent: u32,
    /// AVL height: 1 for a leaf.
    height: u8,
    /// The payload.
    value: V,
}

/// An ordered map of disjoint half-open ranges `[start, end)` of the address
/// space `[0, u64::MAX)` to values, with O(log n) lookups, updates and
/// free-gap searches.
///
/// ```
/// use vmspace::vma::tree::RegionTree;
///
/// let mut t = RegionTree::new();
/// t.insert(0x1000, 0x3000, "text").unwrap();
/// t.insert(0x8000, 0x9000, "heap").unwrap();
/// // Overlaps are refused and the value handed back.
/// assert_eq!(t.insert(0x2000, 0x4000, "bad"), Err("bad"));
///
/// assert_eq!(t.find(0x3000), Some((0x8000, 0x9000, &"heap")));
/// assert_eq!(t.containing(0x2fff), Some((0x1000, 0x3000, &"text")));
/// assert_eq!(t.containing(0x3000), None);
///
/// // Free areas: the highest gap of at least 0x2000 bytes below 0x8800
/// // is [0x3000, 0x8000); the lowest above 0x800 is [0x800, 0x1000)
/// // for 0x800 bytes.
/// assert_eq!(t.highest_gap(0, 0x8800, 0x2000), Some((0x3000, 0x8000)));
/// assert_eq!(t.lowest_gap(0x800, u64::MAX, 0x800), Some((0x800, 0x1000)));
///
/// // Split [0x1000, 0x3000) at 0x2000.
/// assert!(t.set_bounds(0x1000, 0x1000, 0x2000));
/// t.insert(0x2000, 0x3000, "text2").unwrap();
/// assert_eq!(t.len(), 3);
/// assert!(t.check().is_ok());
/// ```
#[derive(Clone)]
pub struct RegionTree<V> {
    hot: Vec<Hot>,
    cold: Vec<Cold<V>>,
    root: u32,
}

impl<V> Default for RegionTree<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V: fmt::Debug> fmt::Debug for RegionTree<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(s, e, v)| (s..e, v)))
            .finish()
    }
}

/// Clips the gap `[gs, ge)` to `[low, high)`; returns it if it holds `size`
/// bytes (`size >= 1`).
#[inline]
fn clip_fit(gs: u64, ge: u64, low: u64, high: u64, size: u64) -> Option<(u64, u64)> {
    let s = gs.max(low);
    let e = ge.min(high);
    if e > s && e - s >= size {
        Some((s, e))
    } else {
        None
    }
}

impl<V> RegionTree<V> {
    /// An empty tree.
    pub const fn new() -> Self {
        RegionTree {
            hot: Vec::new(),
            cold: Vec::new(),
            root: NIL,
        }
    }

    /// Number of ranges.
    pub fn len(&self) -> usize {
        self.cold.len()
    }

    /// Whether there are no ranges.
    pub fn is_empty(&self) -> bool {
        self.cold.is_empty()
    }

    // ----- node accessors -------------------------------------------------

    #[inline]
    fn h(&self, i: u32) -> &Hot {
        &self.hot[i as usize]
    }

    #[inline]
    fn hm(&mut self, i: u32) -> &mut Hot {
        &mut self.hot[i as usize]
    }

    #[inline]
    fn c(&self, i: u32) -> &Cold<V> {
        &self.cold[i as usize]
    }

    #[inline]
    fn cm(&mut self, i: u32) -> &mut Cold<V> {
        &mut self.cold[i as usize]
    }

    #[inline]
    fn start(&self, i: u32) -> u64 {
        self.c(i).start
    }

    #[inline]
    fn end(&self, i: u32) -> u64 {
        self.h(i).end
    }

    /// `height` and `max_gap` of `i`, `(0, 0)` for `NIL` (one test: `NIL`
    /// is never a valid index).
    #[inline]
    fn aug(&self, i: u32) -> (u8, u64) {
        match self.cold.get(i as usize) {
            Some(c) => (c.height, c.max_gap),
            None => (0, 0),
        }
    }

    #[inline]
    fn height(&self, i: u32) -> u8 {
        self.aug(i).0
    }

    #[inline]
    fn max_gap(&self, i: u32) -> u64 {
        self.aug(i).1
    }

    #[inline]
    fn entry(&self, i: u32) -> Option<(u64, u64, &V)> {
        if i == NIL {
            None
        } else {
            let c = self.c(i);
            Some((c.start, self.end(i), &c.value))
        }
    }

    /// Leftmost node of the subtree at `i` (`NIL` if `i` is).
    fn leftmost(&self, mut i: u32) -> u32 {
        if i == NIL {
            return NIL;
        }
        while self.h(i).child(L) != NIL {
            i = self.h(i).child(L);
        }
        i
    }

    /// Rightmost node of the subtree at `i` (`NIL` if `i` is).
    fn rightmost(&self, mut i: u32) -> u32 {
        if i == NIL {
            return NIL;
        }
        while self.h(i).child(R) != NIL {
            i = self.h(i).child(R);
        }
        i
    }

    /// In-order neighbour of node `i` on side `dir` (`R`: successor,
    /// `L`: predecessor).
    fn step(&self, i: u32, dir: usize) -> u32 {
        let d = self.h(i).child(dir);
        if d != NIL {
            return if dir == R {
                self.leftmost(d)
            } else {
                self.rightmost(d)
            };
        }
        let mut c = i;
        let mut p = self.c(i).parent;
        while p != NIL && self.h(p).child(dir) == c {
            c = p;
            p = self.c(p).parent;
        }
        p
    }

    /// In-order successor of node `i`.
    #[inline]
    fn succ(&self, i: u32) -> u32 {
        self.step(i, R)
    }

    /// In-order predecessor of node `i`.
    #[inline]
    fn pred(&self, i: u32) -> u32 {
        self.step(i, L)
    }

    // ----- index lookups --------------------------------------------------

    /// The first node with `end > addr`: the only descent. It reads the hot
    /// array alone and is branch-free apart from the loop test.
    #[inline]
    fn find_idx(&self, addr: u64) -> u32 {
        let hot = self.hot.as_slice();
        let mut cur = self.root;
        let mut best = NIL;
        while let Some(n) = hot.get(cur as usize) {
            let right = addr >= n.end;
            best = if right { best } else { cur };
            let links = n.links;
            cur = if right {
                (links >> 32) as u32
            } else {
                links as u32
            };
        }
        best
    }

    /// The node whose range starts exactly at `start`: since ranges are
    /// disjoint, it can only be the first range with `end > start`.
    fn idx_of(&self, start: u64) -> u32 {
        let i = self.find_idx(start);
        if i != NIL && self.start(i) == start {
            i
        } else {
            NIL
        }
    }

    /// The last node with `start < addr`.
    fn prev_idx(&self, addr: u64) -> u32 {
        let f = self.find_idx(addr);
        if f == NIL {
            self.rightmost(self.root)
        } else if self.start(f) < addr {
            f
        } else {
            // Everything before `f` ends at or below `addr`.
            self.pred(f)
        }
    }

    /// The first node with `start >= addr`.
    fn next_idx(&self, addr: u64) -> u32 {
        let f = self.find_idx(addr);
        if f == NIL || self.start(f) >= addr {
            f
        } else {
            // `f` contains `addr`; the next range starts above it.
            self.succ(f)
        }
    }

    // ----- queries --------------------------------------------------------

    /// The range that starts exactly at `start`.
    pub fn get(&self, start: u64) -> Option<(u64, u64, &V)> {
        self.entry(self.idx_of(start))
    }

    /// The payload of the range that starts exactly at `start`.
    pub fn get_mut(&mut self, start: u64) -> Option<&mut V> {
        let i = self.idx_of(start);
        if i == NIL {
            None
        } else {
            Some(&mut self.cm(i).value)
        }
    }

    /// Linux's `find_vma`: the first range with `end > addr`. It contains
    /// `addr` or lies wholly above it.
    #[inline]
    pub fn find(&self, addr: u64) -> Option<(u64, u64, &V)> {
        self.entry(self.find_idx(addr))
    }

    /// The range containing `addr`, if any.
    pub fn containing(&self, addr: u64) -> Option<(u64, u64, &V)> {
        match self.find(addr) {
            Some(e) if e.0 <= addr => Some(e),
            _ => None,
        }
    }

    /// The last range with `start < addr`: the range containing `addr` if
    /// there is one, otherwise the range below `addr` (Linux's
    /// `find_vma_prev` `prev` for an `addr` not inside a range).
    pub fn prev(&self, addr: u64) -> Option<(u64, u64, &V)> {
        self.entry(self.prev_idx(addr))
    }

    /// The first range with `start >= addr`.
    pub fn next(&self, addr: u64) -> Option<(u64, u64, &V)> {
        self.entry(self.next_idx(addr))
    }

    /// Linux's `find_vma_intersection`: the first range intersecting
    /// `[lo, hi)`. `None` if `lo >= hi`.
    pub fn first_intersecting(&self, lo: u64, hi: u64) -> Option<(u64, u64, &V)> {
        if lo >= hi {
            return None;
        }
        match self.find(lo) {
            Some(e) if e.0 < hi => Some(e),
            _ => None,
        }
    }

    /// All ranges, in ascending address order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64, &V)> + '_ {
        Iter {
            tree: self,
            cur: self.leftmost(self.root),
            hi: u64::MAX,
        }
    }

    /// The ranges intersecting `[lo, hi)`, in ascending address order.
    pub fn range(&self, lo: u64, hi: u64) -> impl Iterator<Item = (u64, u64, &V)> + '_ {
        Iter {
            tree: self,
            cur: if lo < hi { self.find_idx(lo) } else { NIL },
            hi,
        }
    }

    /// The lowest range.
    pub fn first(&self) -> Option<(u64, u64, &V)> {
        self.entry(self.leftmost(self.root))
    }

    /// The highest range.
    pub fn last(&self) -> Option<(u64, u64, &V)> {
        self.entry(self.rightmost(self.root))
    }

    // ----- augmentation and balancing -------------------------------------

    /// Recomputes `height` and `max_gap` of `i` from its children.
    #[inline]
    fn update(&mut self, i: u32) {
        let [l, r] = self.h(i).children();
        let (hl, ml) = self.aug(l);
        let (hr, mr) = self.aug(r);
        let c = self.cm(i);
        c.height = 1 + hl.max(hr);
        c.max_gap = ml.max(mr).max(c.gap);
    }

    /// Re-augments `i` and its ancestors (no rebalancing), after a change
    /// to `i`'s own `gap`. Stops at the first node whose `height` and
    /// `max_gap` come out unchanged: an ancestor depends only on those of
    /// its children, so everything above is already right.
    fn update_to_root(&mut self, mut i: u32) {
        while i != NIL {
            let (h, m) = (self.c(i).height, self.c(i).max_gap);
            self.update(i);
            let c = self.c(i);
            if c.height == h && c.max_gap == m {
                return;
            }
            i = c.parent;
        }
    }

    /// Makes `new` take `old`'s place under `parent` (or as root).
    #[inline]
    fn replace_child(&mut self, parent: u32, old: u32, new: u32) {
        if parent == NIL {
            self.root = new;
        } else {
            let p = self.hm(parent);
            let side = (p.child(R) == old) as usize;
            debug_assert_eq!(p.child(side), old);
            p.set_child(side, new);
        }
        if new != NIL {
            self.cm(new).parent = parent;
        }
    }

    /// Rotates `x` down towards side `dir` (`dir == L`: left rotation, the
    /// right child rises). Returns the new subtree root.
    fn rotate(&mut self, x: u32, dir: usize) -> u32 {
        let other = 1 - dir;
        let y = self.h(x).child(other);
        debug_assert_ne!(y, NIL);
        let inner = self.h(y).child(dir);
        let xp = self.c(x).parent;
        self.hm(x).set_child(other, inner);
        if inner != NIL {
            self.cm(inner).parent = x;
        }
        self.replace_child(xp, x, y);
        self.hm(y).set_child(dir, x);
        self.cm(x).parent = y;
        self.update(x);
        self.update(y);
        y
    }

    /// Restores the AVL property at `i` (whose subtrees are balanced) and
    /// re-augments it. Returns the root of the subtree now in `i`'s place.
    fn rebalance(&mut self, i: u32) -> u32 {
        self.update(i);
        let [l, r] = self.h(i).children();
        let (hl, hr) = (self.height(l), self.height(r));
        if hl > hr + 1 {
            let [ll, lr] = self.h(l).children();
            if self.height(ll) < self.height(lr) {
                self.rotate(l, L);
            }
            self.rotate(i, R)
        } else if hr > hl + 1 {
            let [rl, rr] = self.h(r).children();
            if self.height(rr) < self.height(rl) {
                self.rotate(r, R);
            }
            self.rotate(i, L)
        } else {
            i
        }
    }

    /// Rebalances and re-augments from `i` up towards the root, after a
    /// change to `i`'s children. Stops at the first node that needs no
    /// rotation and whose `height` and `max_gap` come out unchanged (an
    /// ancestor depends only on those of its children), so a caller that
    /// changed a node's own `gap` must re-augment it with
    /// [`set_gap`](Self::set_gap) itself.
    fn rebalance_to_root(&mut self, mut i: u32) {
        while i != NIL {
            let (h, m) = (self.c(i).height, self.c(i).max_gap);
            let top = self.rebalance(i);
            let c = self.c(top);
            if top == i && c.height == h && c.max_gap == m {
                return;
            }
            i = c.parent;
        }
    }

    /// Sets the stored gap of node `i` and re-augments its root path.
    fn set_gap(&mut self, i: u32, gap: u64) {
        self.cm(i).gap = gap;
        self.update_to_root(i);
    }

    // ----- updates --------------------------------------------------------

    /// Inserts `[start, end)` mapped to `value`.
    ///
    /// Hands `value` back as `Err` if `start >= end`, if the range overlaps
    /// an existing one, or if the tree already holds `u32::MAX - 1` ranges.
    pub fn insert(&mut self, start: u64, end: u64, value: V) -> Result<(), V> {
        if start >= end {
            return Err(value);
        }
        let succ = self.find_idx(start);
        if succ != NIL && self.start(succ) < end {
            return Err(value);
        }
        let idx = match u32::try_from(self.cold.len()) {
            Ok(i) if i != NIL => i,
            _ => return Err(value),
        };
        // The predecessor is the range before `succ` (or the last range).
        let pred = if succ != NIL {
            self.pred(succ)
        } else {
            self.rightmost(self.root)
        };
        let pred_end = if pred == NIL { 0 } else { self.end(pred) };
        // The successor's gap now ends at the new range. `succ` becomes
        // the new leaf's parent or is an ancestor of it (the leaf goes
        // into its left subtree); the rebalancing walk from the leaf may
        // stop below it, so it is re-augmented after that walk.
        if succ != NIL {
            let g = self.start(succ) - end;
            self.cm(succ).gap = g;
        }
        let gap = start - pred_end;
        // Attach as a leaf: as the left child of `succ` if that slot is
        // free, else as the right child of `pred` (then the rightmost node of
        // `succ`'s left subtree); in-order neighbours always offer one.
        let (parent, side) = if succ != NIL && self.h(succ).child(L) == NIL {
            (succ, L)
        } else if pred != NIL {
            debug_assert_eq!(self.h(pred).child(R), NIL);
            (pred, R)
        } else {
            debug_assert_eq!(self.root, NIL);
            (NIL, L)
        };
        self.reserve_one();
        self.hot.push(Hot {
            end,
            links: NO_LINKS,
        });
        self.cold.push(Cold {
            start,
            gap,
            max_gap: gap,
            parent,
            height: 1,
            value,
        });
        if parent == NIL {
            self.root = idx;
        } else {
            self.hm(parent).set_child(side, idx);
            self.rebalance_to_root(parent);
        }
        if succ != NIL {
            self.update_to_root(succ);
        }
        Ok(())
    }

    /// Makes room for one more node, growing the arena by a third when it
    /// is full rather than doubling it as `Vec::push` would: memory per
    /// range stays within 4/3 of the node size (88 bytes with the engine's
    /// payload, so at most about 117), where doubling allows up to 2x.
    fn reserve_one(&mut self) {
        let len = self.cold.len();
        if len == self.cold.capacity() || len == self.hot.capacity() {
            let extra = (len / 3).max(16);
            self.cold.reserve_exact(extra);
            self.hot.reserve_exact(extra);
        }
    }

    /// Splits the range that starts at `start` at `at`, strictly inside it:
    /// the range becomes `[start, at)`, keeping its payload, and
    /// `[at, end)` is inserted with `upper`. Returns the lower range's
    /// payload; hands `upper` back, changing nothing, if no range starts at
    /// `start`, if `at` is not inside it, or if the tree is full.
    ///
    /// The result is exactly that of `set_bounds(start, start, at)` then
    /// `insert(at, end, upper)`, without the passing gap `[at, end)` in
    /// between, which would re-augment the successor's root path twice.
    pub fn split(&mut self, start: u64, at: u64, upper: V) -> Result<&mut V, V> {
        let x = self.idx_of(start);
        if x == NIL {
            return Err(upper);
        }
        let end = self.end(x);
        if at <= start || at >= end {
            return Err(upper);
        }
        // Shrink `x` but leave its successor's gap as it is: it is right
        // again once `[at, end)` is back. `insert` finds `[at, end)` free
        // between `x` and that successor, and re-augments what changes.
        self.hm(x).end = at;
        match self.insert(at, end, upper) {
            Ok(()) => Ok(&mut self.cm(x).value),
            Err(v) => {
                self.hm(x).end = end;
                Err(v)
            }
        }
    }

    /// Removes the range that starts exactly at `start` and returns it.
    pub fn remove(&mut self, start: u64) -> Option<(u64, u64, V)> {
        let z = self.idx_of(start);
        if z == NIL {
            return None;
        }
        let p = self.pred(z);
        let pred_end = if p == NIL { 0 } else { self.end(p) };
        let s = self.succ(z);
        let succ_start = if s == NIL { None } else { Some(self.start(s)) };

        // The node to unlink: `z` itself, or (two children) its successor
        // `s`, after swapping their contents so that `z`'s slot carries the
        // successor's range and `s`'s slot carries the doomed one.
        let [zl, zr] = self.h(z).children();
        let dead = if zl != NIL && zr != NIL {
            debug_assert_eq!(s, self.leftmost(zr));
            self.swap_contents(z, s);
            s
        } else {
            z
        };
        let [dl, dr] = self.h(dead).children();
        debug_assert!(dl == NIL || dr == NIL);
        let child = if dl != NIL { dl } else { dr };
        let parent = self.c(dead).parent;
        self.replace_child(parent, dead, child);
        self.rebalance_to_root(parent);
        let (end, cold) = self.free_slot(dead);

        // The successor's gap now starts at the predecessor's end. (With
        // two children, `z` now carries the successor's range: this also
        // re-augments it, should the walk above have stopped below it.)
        if let Some(ss) = succ_start {
            let si = self.idx_of(ss);
            debug_assert_ne!(si, NIL);
            if si != NIL {
                self.set_gap(si, ss - pred_end);
            }
        }
        Some((cold.start, end, cold.value))
    }

    /// Exchanges the ranges and payloads (not the links) of two nodes.
    fn swap_contents(&mut self, a: u32, b: u32) {
        debug_assert_ne!(a, b);
        let (a, b) = (a as usize, b as usize);
        let e = self.hot[a].end;
        self.hot[a].end = self.hot[b].end;
        self.hot[b].end = e;
        let (lo, hi) = if a < b { (a, b) } else { (b, a) };
        let (x, y) = self.cold.split_at_mut(hi);
        let (ca, cb) = (&mut x[lo], &mut y[0]);
        core::mem::swap(&mut ca.start, &mut cb.start);
        core::mem::swap(&mut ca.gap, &mut cb.gap);
        core::mem::swap(&mut ca.value, &mut cb.value);
    }

    /// Takes the (already unlinked) node `dead` out of the arena, moving
    /// the last node into its slot and re-linking it.
    fn free_slot(&mut self, dead: u32) -> (u64, Cold<V>) {
        let last = (self.cold.len() - 1) as u32;
        let hot = self.hot.swap_remove(dead as usize);
        let cold = self.cold.swap_remove(dead as usize);
        if dead != last {
            // The node formerly at `last` now lives at `dead`.
            let [l, r] = self.h(dead).children();
            let p = self.c(dead).parent;
            if p == NIL {
                debug_assert_eq!(self.root, last);
                self.root = dead;
            } else {
                let ph = self.hm(p);
                let side = (ph.child(R) == last) as usize;
                debug_assert_eq!(ph.child(side), last);
                ph.set_child(side, dead);
            }
            if l != NIL {
                self.cm(l).parent = dead;
            }
            if r != NIL {
                self.cm(r).parent = dead;
            }
        }
        if self.cold.is_empty() {
            self.root = NIL;
        }
        (hot.end, cold)
    }

    /// Moves the range that starts at `start` to `[new_start, new_end)`,
    /// keeping its payload: splitting, merging, expanding and shrinking a
    /// region are all bound changes.
    ///
    /// Returns `false` and changes nothing if no range starts at `start`,
    /// if `new_start >= new_end`, or if the new bounds overlap another
    /// range. New bounds that leave the range between its neighbours are
    /// applied in place; otherwise the range is re-linked at its new
    /// position (still O(log n)).
    pub fn set_bounds(&mut self, start: u64, new_start: u64, new_end: u64) -> bool {
        if new_start >= new_end {
            return false;
        }
        let x = self.idx_of(start);
        if x == NIL {
            return false;
        }
        let p = self.pred(x);
        let s = self.succ(x);
        let pred_end = if p == NIL { 0 } else { self.end(p) };
        let fits_in_place = pred_end <= new_start && (s == NIL || new_end <= self.start(s));
        if fits_in_place {
            self.cm(x).start = new_start;
            self.hm(x).end = new_end;
            self.set_gap(x, new_start - pred_end);
            if s != NIL {
                let g = self.start(s) - new_end;
                self.set_gap(s, g);
            }
            return true;
        }
        // Moving past a neighbour: check against every range but `x`.
        let mut c = self.find_idx(new_start);
        if c == x {
            c = s;
        }
        if c != NIL && self.start(c) < new_end {
            return false;
        }
        match self.remove(start) {
            Some((_, _, v)) => {
                let r = self.insert(new_start, new_end, v);
                debug_assert!(r.is_ok());
                r.is_ok()
            }
            None => false,
        }
    }

    // ----- gap search -----------------------------------------------------

    /// The gap above the last range: `[last.end, u64::MAX)`, or the whole
    /// space if the tree is empty.
    fn top_gap(&self) -> (u64, u64) {
        let r = self.rightmost(self.root);
        let s = if r == NIL { 0 } else { self.end(r) };
        (s, u64::MAX)
    }

    /// Top-down free-area search: of the free gaps (the parts of
    /// `[0, u64::MAX)` not covered by a range — including the gap below the
    /// first range and the gap above the last), each clipped to
    /// `[low, high)`, the highest one at least `size` bytes long, as its
    /// clipped `(start, end)`. A `size` of 0 is treated as 1.
    pub fn highest_gap(&self, low: u64, high: u64, size: u64) -> Option<(u64, u64)> {
        let size = size.max(1);
        if low >= high || high - low < size {
            return None;
        }
        let (ts, te) = self.top_gap();
        if let Some(g) = clip_fit(ts, te, low, high, size) {
            return Some(g);
        }
        let w = Window { low, high, size };
        self.search(self.root, 0, u64::MAX, &w, R)
    }

    /// Bottom-up free-area search: like [`highest_gap`](Self::highest_gap)
    /// but returns the lowest fitting clipped gap.
    pub fn lowest_gap(&self, low: u64, high: u64, size: u64) -> Option<(u64, u64)> {
        let size = size.max(1);
        if low >= high || high - low < size {
            return None;
        }
        let w = Window { low, high, size };
        if let Some(g) = self.search(self.root, 0, u64::MAX, &w, L) {
            return Some(g);
        }
        let (ts, te) = self.top_gap();
        clip_fit(ts, te, low, high, size)
    }

    /// Whether the subtree at `i`, whose gaps all lie in `[lo, hi)`, may
    /// hold a fitting clipped gap: it exists, its longest gap is long
    /// enough, and its bounds clipped to the window still are.
    #[inline]
    fn viable(&self, i: u32, lo: u64, hi: u64, w: &Window) -> bool {
        i != NIL && self.c(i).max_gap >= w.size && clip_fit(lo, hi, w.low, w.high, w.size).is_some()
    }

    /// The highest (`first == R`) or lowest (`first == L`) fitting clipped
    /// gap below a node of the subtree at `i`, whose gaps all lie in
    /// `[lo, hi)`. Recursion depth is at most the tree height.
    ///
    /// In order: the subtree on side `first`, the node's own gap, then the
    /// other subtree. The last step is a loop rather than a call, and
    /// subtrees that cannot hold an answer are skipped before calling, so
    /// that a descent along one spine costs no calls at all.
    fn search(&self, i: u32, lo: u64, hi: u64, w: &Window, first: usize) -> Option<(u64, u64)> {
        if !self.viable(i, lo, hi, w) {
            return None;
        }
        let (mut i, mut lo, mut hi) = (i, lo, hi);
        loop {
            // Invariant: `viable(i, lo, hi, w)`.
            if w.low <= lo && hi <= w.high {
                // Nothing in here is clipped: descend greedily.
                return self.greedy(i, w.size, first);
            }
            let c = self.c(i);
            let [l, r] = self.h(i).children();
            let gap_start = c.start - c.gap;
            let end = self.end(i);
            // (child, lo, hi) of the subtree searched first and last.
            let (a, b) = if first == R {
                ((r, end, hi), (l, lo, gap_start))
            } else {
                ((l, lo, gap_start), (r, end, hi))
            };
            if self.viable(a.0, a.1, a.2, w) {
                if let Some(g) = self.search(a.0, a.1, a.2, w, first) {
                    return Some(g);
                }
            }
            if let Some(g) = clip_fit(gap_start, c.start, w.low, w.high, w.size) {
                return Some(g);
            }
            if !self.viable(b.0, b.1, b.2, w) {
                return None;
            }
            (i, lo, hi) = b;
        }
    }

    /// The highest (`first == R`) or lowest (`first == L`) gap of at least
    /// `size` below a node of the subtree at `top`, which must have
    /// `max_gap >= size`.
    fn greedy(&self, top: u32, size: u64, first: usize) -> Option<(u64, u64)> {
        let second = 1 - first;
        let mut i = top;
        while i != NIL {
            let child = self.h(i).children();
            let c = self.c(i);
            if self.max_gap(child[first]) >= size {
                i = child[first];
            } else if c.gap >= size {
                return Some((c.start - c.gap, c.start));
            } else {
                i = child[second];
            }
        }
        debug_assert!(self.max_gap(top) < size, "max_gap promised a missing gap");
        None
    }

    // ----- checker --------------------------------------------------------

    /// Debug checker: verifies links, ordering, disjointness, AVL balance
    /// and every augmented field (recomputed from scratch). Returns a
    /// description of the first violation found.
    pub fn check(&self) -> Result<(), String> {
        use alloc::format;
        use alloc::vec;
        let len = self.cold.len();
        if self.hot.len() != len {
            return Err(format!("{} hot vs {len} cold nodes", self.hot.len()));
        }
        if len >= NIL as usize {
            return Err(format!("{len} nodes exceeds the index space"));
        }
        if (self.root == NIL) != (len == 0) {
            return Err(format!("root {} with {len} nodes", self.root));
        }
        if len == 0 {
            return Ok(());
        }
        if self.root as usize >= len {
            return Err(format!("root {} out of bounds", self.root));
        }
        if self.c(self.root).parent != NIL {
            return Err("root has a parent".into());
        }
        // Structure: breadth-first from the root, each node seen once.
        let mut seen = vec![false; len];
        let mut order: Vec<u32> = Vec::with_capacity(len);
        order.push(self.root);
        seen[self.root as usize] = true;
        let mut k = 0;
        while k < order.len() {
            let i = order[k];
            k += 1;
            for c in self.h(i).children() {
                if c == NIL {
                    continue;
                }
                if c as usize >= len {
                    return Err(format!("node {i}: child {c} out of bounds"));
                }
                if seen[c as usize] {
                    return Err(format!("node {c} reached twice"));
                }
                seen[c as usize] = true;
                if self.c(c).parent != i {
                    return Err(format!("node {c}: parent {} != {i}", self.c(c).parent));
                }
                order.push(c);
            }
        }
        if order.len() != len {
            return Err(format!("{} of {len} nodes reachable", order.len()));
        }
        // Ordering and gaps, in order.
        let mut prev_end = 0u64;
        let mut prev_start = None;
        let mut count = 0usize;
        let mut i = self.leftmost(self.root);
        while i != NIL {
            let (s, e, gap) = (self.start(i), self.end(i), self.c(i).gap);
            if s >= e {
                return Err(format!("empty range [{s:#x}, {e:#x})"));
            }
            if let Some(ps) = prev_start {
                if s <= ps {
                    return Err(format!("start {s:#x} not above {ps:#x}"));
                }
            }
            if s < prev_end {
                return Err(format!(
                    "range [{s:#x}, {e:#x}) overlaps the one ending at {prev_end:#x}"
                ));
            }
            if gap != s - prev_end {
                return Err(format!(
                    "range [{s:#x}, {e:#x}): gap {gap:#x}, expected {:#x}",
                    s - prev_end
                ));
            }
            prev_end = e;
            prev_start = Some(s);
            count += 1;
            i = self.succ(i);
        }
        if count != len {
            return Err(format!("in-order walk saw {count} of {len} nodes"));
        }
        // Heights, balance and max_gap, children before parents.
        let mut hs = vec![0u8; len];
        let mut mg = vec![0u64; len];
        for &i in order.iter().rev() {
            let c = self.c(i);
            let [l, r] = self.h(i).children();
            let (hl, ml) = if l == NIL {
                (0, 0)
            } else {
                (hs[l as usize], mg[l as usize])
            };
            let (hr, mr) = if r == NIL {
                (0, 0)
            } else {
                (hs[r as usize], mg[r as usize])
            };
            if hl.abs_diff(hr) > 1 {
                return Err(format!("node {i}: unbalanced ({hl} vs {hr})"));
            }
            let eh = 1 + hl.max(hr);
            let em = c.gap.max(ml).max(mr);
            if c.height != eh {
                return Err(format!("node {i}: height {}, expected {eh}", c.height));
            }
            if c.max_gap != em {
                return Err(format!(
                    "node {i}: max_gap {:#x}, expected {em:#x}",
                    c.max_gap
                ));
            }
            hs[i as usize] = eh;
            mg[i as usize] = em;
        }
        Ok(())
    }
}

/// The clipping window and size of a gap search.
struct Window {
    low: u64,
    high: u64,
    size: u64,
}

/// Ascending in-order walk, stopping at the first range with `start >= hi`.
struct Iter<'a, V> {
    tree: &'a RegionTree<V>,
    cur: u32,
    hi: u64,
}

impl<'a, V> Iterator for Iter<'a, V> {
    type Item = (u64, u64, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        if self.cur == NIL {
            return None;
        }
        let tree = self.tree;
        let i = self.cur;
        let c = tree.c(i);
        if c.start >= self.hi {
            self.cur = NIL;
            return None;
        }
        self.cur = tree.succ(i);
        Some((c.start, tree.end(i), &c.value))
    }
}

impl<V> core::iter::FusedIterator for Iter<'_, V> {}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    const MAX: u64 = u64::MAX;

    fn tree(ranges: &[(u64, u64)]) -> RegionTree<u32> {
        let mut t = RegionTree::new();
        for (k, &(s, e)) in ranges.iter().enumerate() {
            assert!(t.insert(s, e, k as u32).is_ok(), "insert [{s}, {e})");
            t.check().unwrap();
        }
        t
    }

    #[test]
    fn node_overhead_is_48_bytes() {
        // Per-range overhead: hot + cold parts.
        assert_eq!(core::mem::size_of::<Hot>(), 16);
        assert_eq!(core::mem::align_of::<Hot>(), 16);
        assert_eq!(core::mem::size_of::<Cold<()>>(), 32);
        assert_eq!(core::mem::size_of::<Cold<u64>>(), 40);
    }

    #[test]
    fn empty_tree() {
        let t: RegionTree<u32> = RegionTree::default();
        assert!(t.is_empty());
        assert_eq!(t.len(), 0);
        assert_eq!(t.find(0), None);
        assert_eq!(t.containing(5), None);
        assert_eq!(t.prev(MAX), None);
        assert_eq!(t.next(0), None);
        assert_eq!(t.first(), None);
        assert_eq!(t.last(), None);
        assert_eq!(t.iter().count(), 0);
        assert_eq!(t.range(0, MAX).count(), 0);
        assert!(t.check().is_ok());
        // The whole [low, high) is free.
        assert_eq!(
            t.highest_gap(0x1000, 0x5000, 0x1000),
            Some((0x1000, 0x5000))
        );
        assert_eq!(t.lowest_gap(0x1000, 0x5000, 0x4000), Some((0x1000, 0x5000)));
        assert_eq!(t.highest_gap(0, MAX, 1), Some((0, MAX)));
        assert_eq!(t.highest_gap(0x1000, 0x5000, 0x4001), None);
        assert_eq!(t.lowest_gap(5, 5, 0), None);
        assert_eq!(t.lowest_gap(6, 5, 0), None);
        // size 0 acts as 1.
        assert_eq!(t.lowest_gap(5, 6, 0), Some((5, 6)));
    }

    #[test]
    fn insert_refusals() {
        let mut t = tree(&[(10, 20), (30, 40)]);
        assert_eq!(t.insert(5, 5, 9), Err(9));
        assert_eq!(t.insert(6, 5, 9), Err(9));
        assert_eq!(t.insert(15, 25, 9), Err(9));
        assert_eq!(t.insert(5, 11, 9), Err(9));
        assert_eq!(t.insert(19, 31, 9), Err(9));
        assert_eq!(t.insert(0, 100, 9), Err(9));
        assert_eq!(t.insert(12, 13, 9), Err(9));
        // Touching is fine.
        assert_eq!(t.insert(20, 30, 9), Ok(()));
        assert_eq!(t.insert(0, 10, 9), Ok(()));
        assert_eq!(t.insert(40, MAX, 9), Ok(()));
        t.check().unwrap();
        assert_eq!(t.len(), 5);
        assert_eq!(t.highest_gap(0, MAX, 1), None);
    }

    #[test]
    fn lookups() {
        let t = tree(&[(10, 20), (30, 40), (40, 50)]);
        assert_eq!(t.find(0), Some((10, 20, &0)));
        assert_eq!(t.find(19), Some((10, 20, &0)));
        assert_eq!(t.find(20), Some((30, 40, &1)));
        assert_eq!(t.find(40), Some((40, 50, &2)));
        assert_eq!(t.find(50), None);
        assert_eq!(t.containing(9), None);
        assert_eq!(t.containing(10), Some((10, 20, &0)));
        assert_eq!(t.containing(25), None);
        assert_eq!(t.containing(49), Some((40, 50, &2)));
        assert_eq!(t.prev(10), None);
        assert_eq!(t.prev(11), Some((10, 20, &0)));
        assert_eq!(t.prev(25), Some((10, 20, &0)));
        assert_eq!(t.prev(40), Some((30, 40, &1)));
        assert_eq!(t.prev(MAX), Some((40, 50, &2)));
        assert_eq!(t.next(0), Some((10, 20, &0)));
        assert_eq!(t.next(10), Some((10, 20, &0)));
        assert_eq!(t.next(11), Some((30, 40, &1)));
        assert_eq!(t.next(41), None);
        assert_eq!(t.get(30), Some((30, 40, &1)));
        assert_eq!(t.get(31), None);
        assert_eq!(t.first_intersecting(20, 30), None);
        assert_eq!(t.first_intersecting(20, 31), Some((30, 40, &1)));
        assert_eq!(t.first_intersecting(15, 16), Some((10, 20, &0)));
        assert_eq!(t.first_intersecting(15, 15), None);
        assert_eq!(t.first(), Some((10, 20, &0)));
        assert_eq!(t.last(), Some((40, 50, &2)));
        let all: Vec<_> = t.iter().map(|(s, e, _)| (s, e)).collect();
        assert_eq!(all, vec![(10, 20), (30, 40), (40, 50)]);
        let r: Vec<_> = t.range(19, 41).map(|(s, _, _)| s).collect();
        assert_eq!(r, vec![10, 30, 40]);
        let r: Vec<_> = t.range(20, 30).map(|(s, _, _)| s).collect();
        assert!(r.is_empty());
        assert_eq!(t.range(30, 30).count(), 0);
    }

    #[test]
    fn get_mut_and_debug() {
        let mut t = tree(&[(10, 20)]);
        *t.get_mut(10).unwrap() = 7;
        assert_eq!(t.get_mut(11), None);
        assert_eq!(t.get(10), Some((10, 20, &7)));
        assert_eq!(alloc::format!("{t:?}"), "{10..20: 7}");
    }

    #[test]
    fn gaps_basic() {
        // Gaps: [0,10) [20,30) [40,100) [110,MAX).
        let t = tree(&[(10, 20), (30, 40), (100, 110)]);
        // Gap above the last range.
        assert_eq!(t.highest_gap(0, MAX, 1), Some((110, MAX)));
        assert_eq!(t.highest_gap(0, 200, 1), Some((110, 200)));
        assert_eq!(t.lowest_gap(0, MAX, 1), Some((0, 10)));
        assert_eq!(t.lowest_gap(0, MAX, 11), Some((40, 100)));
        assert_eq!(t.lowest_gap(0, MAX, 61), Some((110, MAX)));
        // Clipped by high: [110, 115) is only 5 long.
        assert_eq!(t.highest_gap(0, 115, 10), Some((40, 100)));
        assert_eq!(t.highest_gap(0, 115, 5), Some((110, 115)));
        // Clipped by low.
        assert_eq!(t.lowest_gap(5, MAX, 5), Some((5, 10)));
        assert_eq!(t.lowest_gap(6, MAX, 5), Some((20, 30)));
        assert_eq!(t.lowest_gap(95, MAX, 5), Some((95, 100)));
        assert_eq!(t.lowest_gap(96, MAX, 5), Some((110, MAX)));
        // Clipped on both sides inside one gap.
        assert_eq!(t.highest_gap(50, 60, 10), Some((50, 60)));
        assert_eq!(t.highest_gap(50, 60, 11), None);
        // Window entirely inside a range.
        assert_eq!(t.highest_gap(31, 39, 1), None);
        assert_eq!(t.lowest_gap(31, 39, 1), None);
        // Window spanning two gaps, top one too small after clipping.
        assert_eq!(t.highest_gap(15, 35, 5), Some((20, 30)));
        assert_eq!(t.highest_gap(15, 35, 11), None);
        assert_eq!(t.highest_gap(0, 25, 5), Some((20, 25)));
        assert_eq!(t.highest_gap(0, 25, 6), Some((0, 10)));
        assert_eq!(t.highest_gap(1, 25, 10), None);
    }

    #[test]
    fn gaps_at_the_edges() {
        let t = tree(&[(0, 10), (20, MAX)]);
        assert_eq!(t.highest_gap(0, MAX, 1), Some((10, 20)));
        assert_eq!(t.lowest_gap(0, MAX, 10), Some((10, 20)));
        assert_eq!(t.lowest_gap(0, MAX, 11), None);
        let t = tree(&[(5, MAX)]);
        assert_eq!(t.highest_gap(0, MAX, 1), Some((0, 5)));
        assert_eq!(t.highest_gap(0, MAX, 6), None);
    }

    #[test]
    fn set_bounds_in_place() {
        let mut t = tree(&[(10, 20), (30, 40), (50, 60)]);
        // Shrink, expand up to the neighbour, move within the hole.
        assert!(t.set_bounds(30, 32, 38));
        t.check().unwrap();
        assert_eq!(t.get(32), Some((32, 38, &1)));
        assert_eq!(t.get(30), None);
        assert!(t.set_bounds(32, 20, 50));
        t.check().unwrap();
        assert_eq!(t.highest_gap(0, 60, 1), Some((0, 10)));
        assert!(t.set_bounds(20, 25, 26));
        t.check().unwrap();
        assert_eq!(t.lowest_gap(0, MAX, 20), Some((26, 50)));
        // Split: shrink then insert the tail.
        assert!(t.set_bounds(50, 50, 55));
        assert!(t.insert(55, 60, 9).is_ok());
        t.check().unwrap();
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn split_is_set_bounds_then_insert() {
        // Scrambled ranges with gaps; split each at every inner point in
        // turn and compare with the two-step version, structure included.
        let mut ranges = Vec::new();
        for k in 0..120u64 {
            let s = (k * 7919) % 120 * 20;
            ranges.push((s, s + 4 + (k % 7)));
        }
        for &(s, e) in ranges.iter().step_by(7) {
            for at in s + 1..e {
                let mut a = tree(&ranges);
                let mut b = tree(&ranges);
                let lower = *b.get(s).unwrap().2;
                assert_eq!(a.split(s, at, 999).map(|v| *v), Ok(lower));
                assert!(b.set_bounds(s, s, at));
                assert!(b.insert(at, e, 999).is_ok());
                a.check().unwrap();
                assert_eq!(a.root, b.root);
                assert_eq!(a.hot.len(), b.hot.len());
                for i in 0..a.hot.len() {
                    assert_eq!(
                        (a.hot[i].end, a.hot[i].links),
                        (b.hot[i].end, b.hot[i].links)
                    );
                    let (x, y) = (&a.cold[i], &b.cold[i]);
                    assert_eq!(
                        (x.start, x.gap, x.max_gap, x.parent, x.height, x.value),
                        (y.start, y.gap, y.max_gap, y.parent, y.height, y.value)
                    );
                }
            }
        }
        let mut t = tree(&[(10, 20), (30, 40)]);
        *t.split(10, 15, 7).unwrap() = 5;
        assert_eq!(t.get(10), Some((10, 15, &5)));
        assert_eq!(t.get(15), Some((15, 20, &7)));
        assert_eq!(t.split(11, 12, 9), Err(9)); // no range starts there
        assert_eq!(t.split(30, 30, 9), Err(9)); // not inside
        assert_eq!(t.split(30, 40, 9), Err(9));
        assert_eq!(t.split(30, 45, 9), Err(9));
        t.check().unwrap();
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn set_bounds_refusals() {
        let mut t = tree(&[(10, 20), (30, 40), (50, 60)]);
        assert!(!t.set_bounds(11, 11, 12)); // no such start
        assert!(!t.set_bounds(30, 35, 35)); // empty
        assert!(!t.set_bounds(30, 36, 35)); // inverted
        assert!(!t.set_bounds(30, 19, 40)); // overlaps below
        assert!(!t.set_bounds(30, 30, 51)); // overlaps above
        assert!(!t.set_bounds(30, 0, MAX)); // overlaps both
        assert!(!t.set_bounds(30, 55, 70)); // overlaps a non-neighbour
        assert!(!t.set_bounds(10, 45, 51));
        t.check().unwrap();
        let all: Vec<_> = t.iter().map(|(s, e, v)| (s, e, *v)).collect();
        assert_eq!(all, vec![(10, 20, 0), (30, 40, 1), (50, 60, 2)]);
    }

    #[test]
    fn set_bounds_relocates() {
        let mut t = tree(&[(10, 20), (30, 40), (50, 60)]);
        assert!(t.set_bounds(10, 70, 80));
        t.check().unwrap();
        assert!(t.set_bounds(50, 0, 5));
        t.check().unwrap();
        assert!(t.set_bounds(30, 40, 60)); // expands in place
        t.check().unwrap();
        let all: Vec<_> = t.iter().map(|(s, e, v)| (s, e, *v)).collect();
        assert_eq!(all, vec![(0, 5, 2), (40, 60, 1), (70, 80, 0)]);
    }

    #[test]
    fn remove_everything() {
        let mut ranges = Vec::new();
        for k in 0..200u64 {
            // A scrambled order to exercise all rotation cases.
            let s = (k * 7919) % 200 * 10;
            ranges.push((s, s + 5 + (k % 5)));
        }
        let mut t = tree(&ranges);
        assert_eq!(t.len(), 200);
        assert_eq!(t.remove(3), None);
        // 37 is coprime with 200: this visits every range once.
        for k in 0..ranges.len() {
            let i = (k * 37) % ranges.len();
            let (s, e) = ranges[i];
            assert_eq!(t.remove(s), Some((s, e, i as u32)));
            t.check().unwrap();
            assert_eq!(t.get(s), None);
            assert_eq!(t.remove(s), None);
        }
        assert!(t.is_empty());
        assert_eq!(t.highest_gap(0, MAX, MAX), Some((0, MAX)));
        // Reusable after emptying.
        assert!(t.insert(1, 2, 0).is_ok());
        t.check().unwrap();
    }

    #[test]
    fn many_gaps_search() {
        // Ranges of 1 with gaps of growing size: gap below range k is k+1.
        let mut t = RegionTree::new();
        let mut at = 0u64;
        let mut gaps = Vec::new();
        for k in 0..500u64 {
            at += k + 1;
            gaps.push((at - (k + 1), at));
            assert!(t.insert(at, at + 1, ()).is_ok());
            at += 1;
        }
        t.check().unwrap();
        gaps.push((at, MAX));
        for &(low, high, size) in &[
            (0u64, MAX, 1u64),
            (0, 1000, 10),
            (1000, 5000, 50),
            (30000, 60000, 300),
            (100, 101, 1),
            (0, at, 499),
            (0, at, 501),
        ] {
            let fits: Vec<_> = gaps
                .iter()
                .filter_map(|&(s, e)| clip_fit(s, e, low, high, size))
                .collect();
            assert_eq!(t.highest_gap(low, high, size), fits.last().copied());
            assert_eq!(t.lowest_gap(low, high, size), fits.first().copied());
        }
    }

    #[test]
    fn check_catches_corruption() {
        let mut t = tree(&[(10, 20), (30, 40), (50, 60)]);
        t.cold[0].gap += 1;
        assert!(t.check().is_err());
        let mut t = tree(&[(10, 20), (30, 40), (50, 60)]);
        let r = t.root;
        t.cm(r).max_gap = 0;
        assert!(t.check().is_err());
        let mut t = tree(&[(10, 20), (30, 40), (50, 60)]);
        let r = t.root;
        t.cm(r).height = 5;
        assert!(t.check().is_err());
        let mut t = tree(&[(10, 20), (30, 40), (50, 60)]);
        let r = t.root;
        t.hm(r).end = 55;
        assert!(t.check().is_err());
    }
}
