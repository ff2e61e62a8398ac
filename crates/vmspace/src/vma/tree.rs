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
//! A B+tree with nodes of [`B`] = 16 slots, like the maple tree's 16-slot
//! range nodes, stored in two arenas indexed by `u32` (`NIL` = `u32::MAX` is
//! "no node"):
//!
//! - leaves (`Leaf`) hold up to 16 ranges as parallel arrays `end`, `start`
//!   and `vals`, in address order, plus links to the parent and to the
//!   previous and next leaf (so stepping to a neighbour is O(1));
//! - internal nodes (`Node`) hold up to 16 children, and for each child its
//!   *pivot* (the highest `end` in its subtree) and its *max gap* (the
//!   longest free gap below a range of its subtree).
//!
//! Why a B-tree rather than a binary tree? A lookup is a chain of dependent
//! memory accesses, one per level: a balanced binary tree of 10,000 ranges
//! has about 14 levels, and each costs at least a cache access (most of
//! them outside L1), which bounded `find_vma` at about 55 ns whatever the
//! code did. Here a level is a branch-free count of the pivots `<= addr`
//! (16 independent loads from two cache lines), and 10,000 ranges need
//! 4 levels. Updates gain too: the augmented max gaps that change when a
//! free gap shrinks or grows (the big gap below the lowest mapping moves
//! with every mmap) are re-derived on 4 nodes rather than 14, neighbours of
//! a range are usually in the same leaf, and the one structural change most
//! updates need is a shift inside a leaf.
//!
//! Ranges are ordered by `end` as well as by `start` (they are disjoint),
//! so "the first range with `end > addr`" (`find_vma`) is one descent that
//! reads only pivots and ends; unused slots hold `u64::MAX` so that the
//! count needs no bound. Values sit in the leaf (`Option<V>`: `unsafe` is
//! forbidden here, and `VmaAttrs` has a niche, so the `Option` is free).
//!
//! Memory: a leaf is 16 x (8 + 8 + `size_of::<Option<V>>()`) + 16 bytes,
//! 912 for the engine's 40-byte payload. A leaf that overflows is split in
//! two halves, except when the new range goes into one of its last two
//! slots: then the left leaf keeps 15 ranges, so that ranges added in
//! ascending order (as a process's mappings usually are) pack leaves 15/16
//! full rather than half full. Internal nodes (328 bytes) add about 2% on
//! top. The arenas grow by a third when full rather than doubling. Removal
//! refills a leaf or node left with fewer than [`MIN`] entries from a
//! sibling, or merges the two if that leaves room for two more entries
//! (so that an insert and a remove at the same place never split and merge
//! over and over); freed nodes are taken out of their arena with
//! `swap_remove` and the node moved into the hole is re-linked, so the
//! arenas stay dense.
//!
//! # Invariants
//!
//! The address space is `[0, u64::MAX)`. Ranges are half-open and non-empty:
//! `start < end`.
//!
//! - Ordering: the ranges, read leaf by leaf along the `next` links (which
//!   is also the in-order walk of the tree), have strictly increasing
//!   starts, and each range's `start` is `>=` its predecessor's `end`.
//! - Shape: all leaves are at depth `height`; the root is a leaf when
//!   `height == 0`. Every leaf has 1 to 16 ranges and every node 2 to 16
//!   children. Slots past `len` hold `end`/pivot `u64::MAX`, gap 0, child
//!   `NIL` and value `None`; slots below `len` hold `Some` value.
//! - Links: each child's `parent` is the node that lists it (`NIL` for the
//!   root); `prev`/`next` link the leaves in address order, `NIL` at the
//!   ends; `leafy` is true exactly for nodes whose children are leaves.
//!   Every arena slot is in use.
//! - Gaps: the free space is split into gaps, one *below* each range plus
//!   one *above* the last range. The gap below range `r` is
//!   `[pred(r).end, r.start)`, or `[0, r.start)` for the first range; the gap
//!   above the last range is `[last.end, u64::MAX)` (the whole space when
//!   the tree is empty). Gaps below ranges are not stored: a leaf's are
//!   computed from its ends and starts and the previous leaf's last end.
//! - Augmentation: `pivot[j]` of a node is the `end` of the last range in
//!   child `j`'s subtree, and `gap[j]` the longest gap below a range of that
//!   subtree. Because the gap below a range depends on its predecessor,
//!   changing a leaf's last range also changes the next leaf's first gap.
//!
//! The gaps of child `j` all lie in `[lo_j, pivot[j])` where `lo_j` is
//! `pivot[j - 1]`, or for `j == 0` the node's own `lo` (0 at the root): a
//! gap search learns exact lower bounds on the way down.
//!
//! # Gap search
//!
//! `highest_gap(low, high, size)` and `lowest_gap` clip every gap to
//! `[low, high)` and return the highest (lowest) clipped gap of length
//! `>= size`. The descent skips a child when its max gap is `< size`
//! (clipping only shrinks gaps) or when its bounds clipped to `[low, high)`
//! are shorter than `size`. A child whose bounds lie wholly inside
//! `[low, high)` is not clipped at all, so a max gap `>= size` proves it holds
//! an answer and one greedy descent finds it. Only children whose bounds
//! straddle `low` or `high` are explored and may fail, at most two per
//! level, so a search costs O(log n).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// "No node".
const NIL: u32 = u32::MAX;
/// Slots per leaf and per internal node.
const B: usize = 16;
/// A non-root leaf or node left with fewer entries than this by a removal
/// is refilled from, or merged with, a sibling.
const MIN: usize = 7;
/// Two siblings merge only if the result has at most this many entries.
const MERGE_MAX: usize = B - 2;
/// The rightmost (highest) side.
const R: usize = 1;
/// The leftmost (lowest) side.
const L: usize = 0;

/// A leaf: up to [`B`] ranges in address order. Cache-line aligned, so
/// that a lookup's `end` array is exactly two lines.
#[derive(Clone)]
#[repr(C, align(64))]
struct Leaf<V> {
    /// Ends; `u64::MAX` past `len`.
    end: [u64; B],
    /// Starts; meaningless past `len`.
    start: [u64; B],
    /// Number of ranges.
    len: u32,
    /// Parent node, `NIL` for the root.
    parent: u32,
    /// Previous leaf in address order, `NIL` for the first.
    prev: u32,
    /// Next leaf in address order, `NIL` for the last.
    next: u32,
    /// Payloads; `None` past `len`.
    vals: [Option<V>; B],
}

impl<V> Leaf<V> {
    fn empty() -> Self {
        Leaf {
            end: [u64::MAX; B],
            start: [0; B],
            len: 0,
            parent: NIL,
            prev: NIL,
            next: NIL,
            vals: core::array::from_fn(|_| None),
        }
    }
}

/// An internal node: up to [`B`] children in address order. Cache-line
/// aligned: a lookup reads the two lines of `pivot` and the line of
/// `child`, all three at once.
#[derive(Clone)]
#[repr(C, align(64))]
struct Node {
    /// `pivot[j]`: the end of the last range under child `j`; `u64::MAX`
    /// past `len`.
    pivot: [u64; B],
    /// Children (leaves if `leafy`), `NIL` past `len`.
    child: [u32; B],
    /// `gap[j]`: the longest gap below a range under child `j`; 0 past
    /// `len`.
    gap: [u64; B],
    /// Number of children.
    len: u32,
    /// Parent node, `NIL` for the root.
    parent: u32,
    /// Whether the children are leaves.
    leafy: bool,
}

impl Node {
    fn empty(leafy: bool) -> Self {
        Node {
            pivot: [u64::MAX; B],
            gap: [0; B],
            child: [NIL; B],
            len: 0,
            parent: NIL,
            leafy,
        }
    }

    /// `(pivot, max gap)` of the whole node, as its parent records it.
    #[inline]
    fn summary(&self) -> (u64, u64) {
        let n = self.len as usize;
        let mut m = 0;
        for &g in &self.gap {
            m = m.max(g);
        }
        (self.pivot[n - 1], m)
    }

    /// The slot holding child `c`.
    #[inline]
    fn slot_of(&self, c: u32) -> usize {
        let mut j = 0;
        for (k, &x) in self.child.iter().enumerate() {
            if x == c {
                j = k;
            }
        }
        debug_assert_eq!(self.child[j], c);
        j
    }
}

/// The number of keys `<= addr`: the index of the first key `> addr` in a
/// sorted array padded with `u64::MAX`. Two rounds of independent
/// comparisons: one key per quarter (touching both cache lines of the
/// array at once), then the four keys of the quarter found.
#[inline(always)]
fn count_le(keys: &[u64; B], addr: u64) -> usize {
    let q = (keys[3] <= addr) as usize + (keys[7] <= addr) as usize + (keys[11] <= addr) as usize;
    let b = 4 * q;
    let k = &keys[b..b + 4];
    b + (k[0] <= addr) as usize
        + (k[1] <= addr) as usize
        + (k[2] <= addr) as usize
        + (k[3] <= addr) as usize
}

/// A range's place in the tree: leaf and slot. Valid until the next
/// change to the tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct At {
    leaf: u32,
    pos: u32,
}

/// Nodes freed by one removal, taken out of the arenas at its end (so that
/// indices stay valid while the tree is reshaped).
struct Dead {
    leaves: [u32; 2],
    nl: usize,
    nodes: [u32; 48],
    nn: usize,
}

impl Dead {
    fn new() -> Self {
        Dead {
            leaves: [NIL; 2],
            nl: 0,
            nodes: [NIL; 48],
            nn: 0,
        }
    }
}

/// Two distinct elements of a slice, mutably.
#[inline]
fn two_mut<T>(v: &mut [T], a: u32, b: u32) -> (&mut T, &mut T) {
    let (a, b) = (a as usize, b as usize);
    debug_assert_ne!(a, b);
    if a < b {
        let (x, y) = v.split_at_mut(b);
        (&mut x[a], &mut y[0])
    } else {
        let (x, y) = v.split_at_mut(a);
        (&mut y[0], &mut x[b])
    }
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
    leaves: Vec<Leaf<V>>,
    nodes: Vec<Node>,
    /// The root: a leaf if `height == 0`, `NIL` if the tree is empty.
    root: u32,
    /// Number of internal levels.
    height: u32,
    /// Number of ranges.
    count: usize,
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

/// The clipping window and size of a gap search.
struct Window {
    low: u64,
    high: u64,
    size: u64,
}

/// The most ranges a tree holds (the index space of the old arena layout,
/// kept so that the limit does not depend on the layout).
const MAX_RANGES: usize = u32::MAX as usize - 1;

impl<V> RegionTree<V> {
    /// An empty tree.
    pub const fn new() -> Self {
        RegionTree {
            leaves: Vec::new(),
            nodes: Vec::new(),
            root: NIL,
            height: 0,
            count: 0,
        }
    }

    /// Number of ranges.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are no ranges.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    // ----- positions ------------------------------------------------------

    #[inline]
    fn lf(&self, i: u32) -> &Leaf<V> {
        &self.leaves[i as usize]
    }

    #[inline]
    fn lfm(&mut self, i: u32) -> &mut Leaf<V> {
        &mut self.leaves[i as usize]
    }

    #[inline]
    fn nd(&self, i: u32) -> &Node {
        &self.nodes[i as usize]
    }

    #[inline]
    fn ndm(&mut self, i: u32) -> &mut Node {
        &mut self.nodes[i as usize]
    }

    /// Start of the range at `a`.
    #[inline]
    pub(crate) fn start_at(&self, a: At) -> u64 {
        self.lf(a.leaf).start[a.pos as usize]
    }

    /// End of the range at `a`.
    #[inline]
    pub(crate) fn end_at(&self, a: At) -> u64 {
        self.lf(a.leaf).end[a.pos as usize]
    }

    /// The range at `a`.
    #[inline]
    pub(crate) fn entry_at(&self, a: At) -> Option<(u64, u64, &V)> {
        let l = self.lf(a.leaf);
        let p = a.pos as usize;
        l.vals[p].as_ref().map(|v| (l.start[p], l.end[p], v))
    }

    /// The payload at `a`.
    #[inline]
    pub(crate) fn value_at_mut(&mut self, a: At) -> Option<&mut V> {
        self.lfm(a.leaf).vals[a.pos as usize].as_mut()
    }

    #[inline]
    fn entry(&self, a: Option<At>) -> Option<(u64, u64, &V)> {
        match a {
            Some(a) => self.entry_at(a),
            None => None,
        }
    }

    /// The range after the one at `a`.
    #[inline]
    pub(crate) fn succ_at(&self, a: At) -> Option<At> {
        let l = self.lf(a.leaf);
        if a.pos + 1 < l.len {
            Some(At {
                leaf: a.leaf,
                pos: a.pos + 1,
            })
        } else if l.next != NIL {
            Some(At {
                leaf: l.next,
                pos: 0,
            })
        } else {
            None
        }
    }

    /// The range before the one at `a`.
    #[inline]
    pub(crate) fn pred_at(&self, a: At) -> Option<At> {
        if a.pos > 0 {
            return Some(At {
                leaf: a.leaf,
                pos: a.pos - 1,
            });
        }
        let p = self.lf(a.leaf).prev;
        if p == NIL {
            None
        } else {
            Some(At {
                leaf: p,
                pos: self.lf(p).len - 1,
            })
        }
    }

    /// The leftmost (`dir == L`) or rightmost leaf.
    fn edge_leaf(&self, dir: usize) -> u32 {
        let mut i = self.root;
        if i == NIL {
            return NIL;
        }
        for _ in 0..self.height {
            let n = self.nd(i);
            i = if dir == L {
                n.child[0]
            } else {
                n.child[n.len as usize - 1]
            };
        }
        i
    }

    /// The last range.
    #[inline]
    pub(crate) fn last_at(&self) -> Option<At> {
        let l = self.edge_leaf(R);
        if l == NIL {
            None
        } else {
            Some(At {
                leaf: l,
                pos: self.lf(l).len - 1,
            })
        }
    }

    // ----- lookups --------------------------------------------------------

    /// The first range with `end > addr`: the only descent.
    #[inline]
    pub(crate) fn find_at(&self, addr: u64) -> Option<At> {
        let mut i = self.root;
        if i == NIL {
            return None;
        }
        for _ in 0..self.height {
            let n = self.nd(i);
            // Loaded with the pivots, so that the line of `child` is on
            // its way before `j` is known (a node has a first child).
            let first = n.child[0];
            let j = count_le(&n.pivot, addr);
            // Past the last child only at the root, when every range ends
            // at or below `addr`; below the root, the parent's pivot
            // promises a range ending above `addr`.
            let c = match n.child.get(j) {
                Some(&c) => c,
                None => NIL,
            };
            if c == NIL || first == NIL {
                return None;
            }
            i = c;
        }
        let l = self.lf(i);
        let p = count_le(&l.end, addr);
        // Past the last range only in a root leaf (as above).
        if self.height == 0 && p >= l.len as usize {
            None
        } else {
            Some(At {
                leaf: i,
                pos: p as u32,
            })
        }
    }

    /// The range that starts exactly at `start`.
    #[inline]
    fn at_of(&self, start: u64) -> Option<At> {
        self.find_at(start).filter(|&a| self.start_at(a) == start)
    }

    /// The last range with `start < addr`.
    fn prev_at(&self, addr: u64) -> Option<At> {
        match self.find_at(addr) {
            None => self.last_at(),
            Some(f) if self.start_at(f) < addr => Some(f),
            // Everything before `f` ends at or below `addr`.
            Some(f) => self.pred_at(f),
        }
    }

    /// The first range with `start >= addr`.
    fn next_at(&self, addr: u64) -> Option<At> {
        match self.find_at(addr) {
            Some(f) if self.start_at(f) < addr => self.succ_at(f),
            f => f,
        }
    }

    // ----- queries --------------------------------------------------------

    /// The range that starts exactly at `start`.
    pub fn get(&self, start: u64) -> Option<(u64, u64, &V)> {
        self.entry(self.at_of(start))
    }

    /// The payload of the range that starts exactly at `start`.
    pub fn get_mut(&mut self, start: u64) -> Option<&mut V> {
        match self.at_of(start) {
            Some(a) => self.value_at_mut(a),
            None => None,
        }
    }

    /// Linux's `find_vma`: the first range with `end > addr`. It contains
    /// `addr` or lies wholly above it.
    #[inline]
    pub fn find(&self, addr: u64) -> Option<(u64, u64, &V)> {
        self.entry(self.find_at(addr))
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
        self.entry(self.prev_at(addr))
    }

    /// The first range with `start >= addr`.
    pub fn next(&self, addr: u64) -> Option<(u64, u64, &V)> {
        self.entry(self.next_at(addr))
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

    /// The ranges just around the free range `[lo, hi)`: the last one
    /// ending at or below `lo` and the first one starting at or above `hi`,
    /// with their places, from one descent. `None` if a range intersects
    /// `[lo, hi)` (or `lo >= hi`).
    #[allow(clippy::type_complexity)]
    pub(crate) fn around_free(&self, lo: u64, hi: u64) -> Option<(Option<At>, Option<At>)> {
        if lo >= hi {
            return None;
        }
        match self.find_at(lo) {
            Some(f) if self.start_at(f) < hi => None,
            Some(f) => Some((self.pred_at(f), Some(f))),
            None => Some((self.last_at(), None)),
        }
    }

    /// All ranges, in ascending address order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64, &V)> + '_ {
        let leaf = self.edge_leaf(L);
        Iter {
            tree: self,
            leaf,
            pos: 0,
            hi: u64::MAX,
        }
    }

    /// The ranges intersecting `[lo, hi)`, in ascending address order.
    pub fn range(&self, lo: u64, hi: u64) -> impl Iterator<Item = (u64, u64, &V)> + '_ {
        let f = if lo < hi { self.find_at(lo) } else { None };
        Iter {
            tree: self,
            leaf: f.map_or(NIL, |a| a.leaf),
            pos: f.map_or(0, |a| a.pos),
            hi,
        }
    }

    /// The lowest range.
    pub fn first(&self) -> Option<(u64, u64, &V)> {
        let l = self.edge_leaf(L);
        if l == NIL {
            None
        } else {
            self.entry_at(At { leaf: l, pos: 0 })
        }
    }

    /// The highest range.
    pub fn last(&self) -> Option<(u64, u64, &V)> {
        self.entry(self.last_at())
    }

    // ----- augmentation ---------------------------------------------------

    /// The end of the range before leaf `l`'s first, 0 if there is none.
    #[inline]
    fn leaf_lo(&self, l: u32) -> u64 {
        let p = self.lf(l).prev;
        if p == NIL {
            0
        } else {
            let pl = self.lf(p);
            pl.end[pl.len as usize - 1]
        }
    }

    /// `(pivot, max gap)` of leaf `l` (which has ranges), as its parent
    /// records them.
    #[inline]
    fn leaf_summary(&self, l: u32) -> (u64, u64) {
        let lo = self.leaf_lo(l);
        let lf = self.lf(l);
        let n = lf.len as usize;
        let mut m = lf.start[0] - lo;
        for k in 1..n {
            m = m.max(lf.start[k] - lf.end[k - 1]);
        }
        (lf.end[n - 1], m)
    }

    /// Parent of a leaf or node.
    #[inline]
    fn parent_of(&self, i: u32, is_leaf: bool) -> u32 {
        if is_leaf {
            self.lf(i).parent
        } else {
            self.nd(i).parent
        }
    }

    #[inline]
    fn set_parent(&mut self, i: u32, is_leaf: bool, p: u32) {
        if is_leaf {
            self.lfm(i).parent = p;
        } else {
            self.ndm(i).parent = p;
        }
    }

    /// Records the summary of `child` (a leaf if `is_leaf`) in its parent,
    /// and so on upwards until a parent's record comes out unchanged (an
    /// ancestor's record depends only on its children's). The tree must be
    /// right but for `child`'s record.
    #[inline]
    fn refresh_up(&mut self, child: u32, is_leaf: bool) {
        let parent = self.parent_of(child, is_leaf);
        if parent == NIL {
            return;
        }
        let (piv, gap) = if is_leaf {
            self.leaf_summary(child)
        } else {
            self.nd(child).summary()
        };
        let j = self.nd(parent).slot_of(child);
        self.record_up(parent, j, piv, gap);
    }

    /// Sets the record in slot `j` of node `p` to `(piv, gap)` and carries
    /// the change up. A node's max gap is updated from the old one (kept in
    /// its own parent's record) without a scan of its slots unless the
    /// slot that held the maximum shrank.
    fn record_up(&mut self, mut p: u32, mut j: usize, mut piv: u64, mut gap: u64) {
        loop {
            let n = self.ndm(p);
            let old_gap = n.gap[j];
            if n.pivot[j] == piv && old_gap == gap {
                return;
            }
            n.pivot[j] = piv;
            n.gap[j] = gap;
            let gp = n.parent;
            if gp == NIL {
                return;
            }
            let new_piv = n.pivot[n.len as usize - 1];
            let g = self.nd(gp);
            let jg = g.slot_of(p);
            let cur = g.gap[jg];
            let new_gap = if gap >= cur {
                gap
            } else if old_gap < cur {
                cur
            } else {
                self.nd(p).summary().1
            };
            p = gp;
            j = jg;
            piv = new_piv;
            gap = new_gap;
        }
    }

    // ----- arenas -----------------------------------------------------------

    /// Grows an arena by a third when full rather than doubling, so that
    /// spare capacity adds at most a third to the memory per range.
    #[inline]
    fn reserve<T>(v: &mut Vec<T>) {
        if v.len() == v.capacity() {
            v.reserve_exact((v.len() / 3).max(4));
        }
    }

    fn alloc_leaf(&mut self) -> u32 {
        Self::reserve(&mut self.leaves);
        self.leaves.push(Leaf::empty());
        (self.leaves.len() - 1) as u32
    }

    fn alloc_node(&mut self, leafy: bool) -> u32 {
        Self::reserve(&mut self.nodes);
        self.nodes.push(Node::empty(leafy));
        (self.nodes.len() - 1) as u32
    }

    /// Takes the dead (unlinked) leaves and nodes out of their arenas,
    /// re-linking the nodes moved into their slots.
    fn free_dead(&mut self, d: &mut Dead) {
        // Highest index first: the node moved into a hole is always live.
        let ls = &mut d.leaves[..d.nl];
        ls.sort_unstable_by(|a, b| b.cmp(a));
        for k in 0..d.nl {
            let dead = d.leaves[k];
            let last = (self.leaves.len() - 1) as u32;
            self.leaves.swap_remove(dead as usize);
            if dead != last {
                let (p, n, par) = {
                    let l = self.lf(dead);
                    (l.prev, l.next, l.parent)
                };
                if p != NIL {
                    self.lfm(p).next = dead;
                }
                if n != NIL {
                    self.lfm(n).prev = dead;
                }
                if par == NIL {
                    self.root = dead;
                } else {
                    let pn = self.ndm(par);
                    let j = pn.slot_of(last);
                    pn.child[j] = dead;
                }
            }
        }
        let ns = &mut d.nodes[..d.nn];
        ns.sort_unstable_by(|a, b| b.cmp(a));
        for k in 0..d.nn {
            let dead = d.nodes[k];
            let last = (self.nodes.len() - 1) as u32;
            self.nodes.swap_remove(dead as usize);
            if dead != last {
                let par = self.nd(dead).parent;
                if par == NIL {
                    self.root = dead;
                } else {
                    let pn = self.ndm(par);
                    let j = pn.slot_of(last);
                    pn.child[j] = dead;
                }
                let leafy = self.nd(dead).leafy;
                for j in 0..self.nd(dead).len as usize {
                    let c = self.nd(dead).child[j];
                    self.set_parent(c, leafy, dead);
                }
            }
        }
        d.nl = 0;
        d.nn = 0;
    }

    // ----- insertion ------------------------------------------------------

    /// Puts `[s, e)` into slot `pos` of leaf `l`, splitting the leaf if it
    /// is full, and re-derives the records above. Returns the new range's
    /// place. The caller has checked the order; if the new range is the
    /// last of its leaf and the next leaf's first gap changes, refreshing
    /// that leaf is the caller's job.
    fn leaf_insert(&mut self, l: u32, pos: usize, s: u64, e: u64, v: V) -> At {
        self.count += 1;
        let len = self.lf(l).len as usize;
        if len < B {
            let lf = self.lfm(l);
            lf.end.copy_within(pos..len, pos + 1);
            lf.start.copy_within(pos..len, pos + 1);
            lf.vals[pos..=len].rotate_right(1);
            lf.end[pos] = e;
            lf.start[pos] = s;
            lf.vals[pos] = Some(v);
            lf.len += 1;
            self.refresh_up(l, true);
            return At {
                leaf: l,
                pos: pos as u32,
            };
        }
        // Split: the left leaf keeps `lc` of the B + 1 ranges.
        let lc = if pos >= B - 1 { B - 1 } else { B.div_ceil(2) };
        let from = if pos < lc { lc - 1 } else { lc };
        let r = self.alloc_leaf();
        let (lf, rf) = two_mut(&mut self.leaves, l, r);
        let n = B - from;
        rf.end[..n].copy_from_slice(&lf.end[from..]);
        rf.start[..n].copy_from_slice(&lf.start[from..]);
        for k in 0..n {
            rf.vals[k] = lf.vals[from + k].take();
        }
        lf.end[from..].fill(u64::MAX);
        lf.len = from as u32;
        rf.len = n as u32;
        rf.prev = l;
        rf.next = lf.next;
        rf.parent = lf.parent;
        lf.next = r;
        let (tgt, tpos) = if pos < lc {
            (lf, pos)
        } else {
            (rf, pos - from)
        };
        let tl = tgt.len as usize;
        tgt.end.copy_within(tpos..tl, tpos + 1);
        tgt.start.copy_within(tpos..tl, tpos + 1);
        tgt.vals[tpos..=tl].rotate_right(1);
        tgt.end[tpos] = e;
        tgt.start[tpos] = s;
        tgt.vals[tpos] = Some(v);
        tgt.len += 1;
        let at = At {
            leaf: if pos < lc { l } else { r },
            pos: tpos as u32,
        };
        let nx = self.lf(r).next;
        if nx != NIL {
            self.lfm(nx).prev = r;
        }
        self.attach_sibling(l, r, true);
        at
    }

    /// After `left` (a leaf if `is_leaf`) was split, records it and its new
    /// right sibling `right` in their parent, splitting upwards as needed,
    /// and re-derives the records above.
    fn attach_sibling(&mut self, left: u32, right: u32, is_leaf: bool) {
        let (lp, lg) = if is_leaf {
            self.leaf_summary(left)
        } else {
            self.nd(left).summary()
        };
        let (rp, rg) = if is_leaf {
            self.leaf_summary(right)
        } else {
            self.nd(right).summary()
        };
        let p = self.parent_of(left, is_leaf);
        if p == NIL {
            let nr = self.alloc_node(is_leaf);
            let n = self.ndm(nr);
            n.pivot[0] = lp;
            n.pivot[1] = rp;
            n.gap[0] = lg;
            n.gap[1] = rg;
            n.child[0] = left;
            n.child[1] = right;
            n.len = 2;
            self.set_parent(left, is_leaf, nr);
            self.set_parent(right, is_leaf, nr);
            self.root = nr;
            self.height += 1;
            return;
        }
        let n = self.ndm(p);
        let j = n.slot_of(left);
        n.pivot[j] = lp;
        n.gap[j] = lg;
        self.node_insert(p, j + 1, right, rp, rg);
    }

    /// Puts child `c` with record `(piv, gap)` into slot `j` of node `p`,
    /// splitting `p` if it is full, and re-derives the records above.
    fn node_insert(&mut self, p: u32, j: usize, c: u32, piv: u64, gap: u64) {
        let leafy = self.nd(p).leafy;
        let len = self.nd(p).len as usize;
        if len < B {
            let n = self.ndm(p);
            n.pivot.copy_within(j..len, j + 1);
            n.gap.copy_within(j..len, j + 1);
            n.child.copy_within(j..len, j + 1);
            n.pivot[j] = piv;
            n.gap[j] = gap;
            n.child[j] = c;
            n.len += 1;
            self.set_parent(c, leafy, p);
            self.refresh_up(p, false);
            return;
        }
        let lc = if j >= B - 1 { B - 1 } else { B.div_ceil(2) };
        let from = if j < lc { lc - 1 } else { lc };
        let q = self.alloc_node(leafy);
        let (pn, qn) = two_mut(&mut self.nodes, p, q);
        let m = B - from;
        qn.pivot[..m].copy_from_slice(&pn.pivot[from..]);
        qn.gap[..m].copy_from_slice(&pn.gap[from..]);
        qn.child[..m].copy_from_slice(&pn.child[from..]);
        pn.pivot[from..].fill(u64::MAX);
        pn.gap[from..].fill(0);
        pn.child[from..].fill(NIL);
        pn.len = from as u32;
        qn.len = m as u32;
        qn.parent = pn.parent;
        let (tgt, tj, owner) = if j < lc {
            (pn, j, p)
        } else {
            (qn, j - from, q)
        };
        let tl = tgt.len as usize;
        tgt.pivot.copy_within(tj..tl, tj + 1);
        tgt.gap.copy_within(tj..tl, tj + 1);
        tgt.child.copy_within(tj..tl, tj + 1);
        tgt.pivot[tj] = piv;
        tgt.gap[tj] = gap;
        tgt.child[tj] = c;
        tgt.len += 1;
        self.set_parent(c, leafy, owner);
        for k in 0..self.nd(q).len as usize {
            let ch = self.nd(q).child[k];
            self.set_parent(ch, leafy, q);
        }
        self.attach_sibling(p, q, false);
    }

    /// Inserts `[start, end)` mapped to `value`.
    ///
    /// Hands `value` back as `Err` if `start >= end`, if the range overlaps
    /// an existing one, or if the tree already holds `u32::MAX - 1` ranges.
    pub fn insert(&mut self, start: u64, end: u64, value: V) -> Result<(), V> {
        if start >= end {
            return Err(value);
        }
        let f = self.find_at(start);
        if let Some(f) = f {
            if self.start_at(f) < end {
                return Err(value);
            }
        }
        self.insert_before(f, start, end, value).map(|_| ())
    }

    /// Inserts `[start, end)` just before the range at `f` (at the very end
    /// if `None`): the caller has checked that it lies between that range's
    /// predecessor and the range itself.
    pub(crate) fn insert_before(
        &mut self,
        f: Option<At>,
        start: u64,
        end: u64,
        value: V,
    ) -> Result<At, V> {
        debug_assert!(start < end);
        if self.count >= MAX_RANGES {
            return Err(value);
        }
        if self.root == NIL {
            let l = self.alloc_leaf();
            let lf = self.lfm(l);
            lf.end[0] = end;
            lf.start[0] = start;
            lf.vals[0] = Some(value);
            lf.len = 1;
            self.root = l;
            self.height = 0;
            self.count = 1;
            return Ok(At { leaf: l, pos: 0 });
        }
        let (l, pos) = match f {
            Some(f) => (f.leaf, f.pos as usize),
            None => {
                let l = self.edge_leaf(R);
                (l, self.lf(l).len as usize)
            }
        };
        // The successor (if any) is in the same leaf, right after: its gap
        // is re-derived with the leaf's.
        Ok(self.leaf_insert(l, pos, start, end, value))
    }

    /// Splits the range that starts at `start` at `at`, strictly inside it:
    /// the range becomes `[start, at)`, keeping its payload, and
    /// `[at, end)` is inserted with `upper`. Returns the lower range's
    /// payload; hands `upper` back, changing nothing, if no range starts at
    /// `start`, if `at` is not inside it, or if the tree is full.
    ///
    /// The result is exactly that of `set_bounds(start, start, at)` then
    /// `insert(at, end, upper)`, in one step.
    pub fn split(&mut self, start: u64, at: u64, upper: V) -> Result<&mut V, V> {
        let Some(x) = self.at_of(start) else {
            return Err(upper);
        };
        match self.split_at(x, at, upper) {
            Ok((lower, _)) => Ok(self.value_at_mut(lower).expect("a live range")),
            Err(v) => Err(v),
        }
    }

    /// [`split`](Self::split) of the range at `x`; returns the places of
    /// the lower and upper pieces.
    pub(crate) fn split_at(&mut self, x: At, at: u64, upper: V) -> Result<(At, At), V> {
        let start = self.start_at(x);
        let end = self.end_at(x);
        if at <= start || at >= end || self.count >= MAX_RANGES {
            return Err(upper);
        }
        // The upper piece goes right after `x`, in its leaf: the gaps do
        // not change (the new one is empty, the successor's keeps its
        // bounds), only the leaf's shape.
        self.lfm(x.leaf).end[x.pos as usize] = at;
        let u = self.leaf_insert(x.leaf, x.pos as usize + 1, at, end, upper);
        let lower = self.pred_at(u).expect("the lower piece precedes");
        Ok((lower, u))
    }

    // ----- removal ----------------------------------------------------------

    /// Removes the range that starts exactly at `start` and returns it.
    pub fn remove(&mut self, start: u64) -> Option<(u64, u64, V)> {
        let a = self.at_of(start)?;
        Some(self.remove_at(a))
    }

    /// Removes the range at `a` and returns it.
    pub(crate) fn remove_at(&mut self, a: At) -> (u64, u64, V) {
        let (s, e, v, was_last, newlen, parent, nx) = {
            let lf = self.lfm(a.leaf);
            let pos = a.pos as usize;
            let len = lf.len as usize;
            let s = lf.start[pos];
            let e = lf.end[pos];
            let v = lf.vals[pos].take();
            lf.end.copy_within(pos + 1..len, pos);
            lf.start.copy_within(pos + 1..len, pos);
            lf.vals[pos..len].rotate_left(1);
            lf.end[len - 1] = u64::MAX;
            lf.len -= 1;
            (s, e, v, pos == len - 1, len - 1, lf.parent, lf.next)
        };
        self.count -= 1;
        let v = match v {
            Some(v) => v,
            None => unreachable!("a live slot holds a value"),
        };
        if parent == NIL {
            if newlen == 0 {
                self.leaves.clear();
                self.nodes.clear();
                self.root = NIL;
                self.height = 0;
            }
            return (s, e, v);
        }
        if newlen >= MIN {
            self.refresh_up(a.leaf, true);
            if was_last && nx != NIL {
                // The next leaf's first gap now starts lower.
                self.refresh_up(nx, true);
            }
            return (s, e, v);
        }
        let mut dead = Dead::new();
        self.rebalance_leaf(a.leaf, &mut dead);
        self.free_dead(&mut dead);
        if was_last {
            if let Some(f) = self.find_at(s) {
                self.refresh_up(f.leaf, true);
            }
        }
        (s, e, v)
    }

    /// Refills leaf `l` (not the root, short of [`MIN`] ranges) from a
    /// sibling, or merges the two.
    fn rebalance_leaf(&mut self, l: u32, dead: &mut Dead) {
        let p = self.lf(l).parent;
        let (left, right, jl) = {
            let pn = self.nd(p);
            let j = pn.slot_of(l);
            if j + 1 < pn.len as usize {
                (l, pn.child[j + 1], j)
            } else {
                (pn.child[j - 1], l, j - 1)
            }
        };
        let (lf, rf) = two_mut(&mut self.leaves, left, right);
        let (ll, rl) = (lf.len as usize, rf.len as usize);
        if ll + rl <= MERGE_MAX {
            lf.end[ll..ll + rl].copy_from_slice(&rf.end[..rl]);
            lf.start[ll..ll + rl].copy_from_slice(&rf.start[..rl]);
            for k in 0..rl {
                lf.vals[ll + k] = rf.vals[k].take();
            }
            lf.len = (ll + rl) as u32;
            rf.len = 0;
            lf.next = rf.next;
            let nx = rf.next;
            if nx != NIL {
                self.lfm(nx).prev = left;
            }
            dead.leaves[dead.nl] = right;
            dead.nl += 1;
            let (lp, lg) = self.leaf_summary(left);
            let pn = self.ndm(p);
            let len = pn.len as usize;
            pn.pivot.copy_within(jl + 2..len, jl + 1);
            pn.gap.copy_within(jl + 2..len, jl + 1);
            pn.child.copy_within(jl + 2..len, jl + 1);
            pn.pivot[len - 1] = u64::MAX;
            pn.gap[len - 1] = 0;
            pn.child[len - 1] = NIL;
            pn.len -= 1;
            pn.pivot[jl] = lp;
            pn.gap[jl] = lg;
            self.node_lost_child(p, dead);
            return;
        }
        // Even the two out.
        let want = (ll + rl) / 2;
        if ll < want {
            let k = want - ll;
            lf.end[ll..want].copy_from_slice(&rf.end[..k]);
            lf.start[ll..want].copy_from_slice(&rf.start[..k]);
            for x in 0..k {
                lf.vals[ll + x] = rf.vals[x].take();
            }
            rf.end.copy_within(k..rl, 0);
            rf.start.copy_within(k..rl, 0);
            rf.vals[..rl].rotate_left(k);
            rf.end[rl - k..].fill(u64::MAX);
        } else {
            let k = ll - want;
            rf.end.copy_within(0..rl, k);
            rf.start.copy_within(0..rl, k);
            rf.vals[..rl + k].rotate_right(k);
            rf.end[..k].copy_from_slice(&lf.end[want..ll]);
            rf.start[..k].copy_from_slice(&lf.start[want..ll]);
            for x in 0..k {
                rf.vals[x] = lf.vals[want + x].take();
            }
            lf.end[want..].fill(u64::MAX);
        }
        lf.len = want as u32;
        rf.len = (ll + rl - want) as u32;
        let (lp, lg) = self.leaf_summary(left);
        let (rp, rg) = self.leaf_summary(right);
        let pn = self.ndm(p);
        pn.pivot[jl] = lp;
        pn.gap[jl] = lg;
        pn.pivot[jl + 1] = rp;
        pn.gap[jl + 1] = rg;
        self.refresh_up(p, false);
    }

    /// Node `p`, whose records are right, lost a child: collapse the root,
    /// refill or merge `p`, or just re-derive the records above.
    fn node_lost_child(&mut self, p: u32, dead: &mut Dead) {
        let (len, parent) = (self.nd(p).len as usize, self.nd(p).parent);
        if parent == NIL {
            if len == 1 {
                let c = self.nd(p).child[0];
                let leafy = self.nd(p).leafy;
                self.set_parent(c, leafy, NIL);
                self.root = c;
                self.height -= 1;
                dead.nodes[dead.nn] = p;
                dead.nn += 1;
            }
            return;
        }
        if len >= MIN {
            self.refresh_up(p, false);
            return;
        }
        // Refill from a sibling or merge.
        let (left, right, jl) = {
            let g = self.nd(parent);
            let j = g.slot_of(p);
            if j + 1 < g.len as usize {
                (p, g.child[j + 1], j)
            } else {
                (g.child[j - 1], p, j - 1)
            }
        };
        let leafy = self.nd(p).leafy;
        let (ln, rn) = two_mut(&mut self.nodes, left, right);
        let (ll, rl) = (ln.len as usize, rn.len as usize);
        if ll + rl <= MERGE_MAX {
            ln.pivot[ll..ll + rl].copy_from_slice(&rn.pivot[..rl]);
            ln.gap[ll..ll + rl].copy_from_slice(&rn.gap[..rl]);
            ln.child[ll..ll + rl].copy_from_slice(&rn.child[..rl]);
            ln.len = (ll + rl) as u32;
            rn.len = 0;
            for k in ll..ll + rl {
                let c = self.nd(left).child[k];
                self.set_parent(c, leafy, left);
            }
            dead.nodes[dead.nn] = right;
            dead.nn += 1;
            let (lp, lg) = self.nd(left).summary();
            let g = self.ndm(parent);
            let len = g.len as usize;
            g.pivot.copy_within(jl + 2..len, jl + 1);
            g.gap.copy_within(jl + 2..len, jl + 1);
            g.child.copy_within(jl + 2..len, jl + 1);
            g.pivot[len - 1] = u64::MAX;
            g.gap[len - 1] = 0;
            g.child[len - 1] = NIL;
            g.len -= 1;
            g.pivot[jl] = lp;
            g.gap[jl] = lg;
            self.node_lost_child(parent, dead);
            return;
        }
        let want = (ll + rl) / 2;
        if ll < want {
            let k = want - ll;
            ln.pivot[ll..want].copy_from_slice(&rn.pivot[..k]);
            ln.gap[ll..want].copy_from_slice(&rn.gap[..k]);
            ln.child[ll..want].copy_from_slice(&rn.child[..k]);
            rn.pivot.copy_within(k..rl, 0);
            rn.gap.copy_within(k..rl, 0);
            rn.child.copy_within(k..rl, 0);
            rn.pivot[rl - k..].fill(u64::MAX);
            rn.gap[rl - k..].fill(0);
            rn.child[rl - k..].fill(NIL);
            ln.len = want as u32;
            rn.len = (rl - k) as u32;
            for x in ll..want {
                let c = self.nd(left).child[x];
                self.set_parent(c, leafy, left);
            }
        } else {
            let k = ll - want;
            rn.pivot.copy_within(0..rl, k);
            rn.gap.copy_within(0..rl, k);
            rn.child.copy_within(0..rl, k);
            rn.pivot[..k].copy_from_slice(&ln.pivot[want..ll]);
            rn.gap[..k].copy_from_slice(&ln.gap[want..ll]);
            rn.child[..k].copy_from_slice(&ln.child[want..ll]);
            ln.pivot[want..].fill(u64::MAX);
            ln.gap[want..].fill(0);
            ln.child[want..].fill(NIL);
            ln.len = want as u32;
            rn.len = (rl + k) as u32;
            for x in 0..k {
                let c = self.nd(right).child[x];
                self.set_parent(c, leafy, right);
            }
        }
        let (lp, lg) = self.nd(left).summary();
        let (rp, rg) = self.nd(right).summary();
        let g = self.ndm(parent);
        g.pivot[jl] = lp;
        g.gap[jl] = lg;
        g.pivot[jl + 1] = rp;
        g.gap[jl + 1] = rg;
        self.refresh_up(parent, false);
    }

    // ----- bounds ---------------------------------------------------------

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
        let Some(x) = self.at_of(start) else {
            return false;
        };
        let pred_end = self.pred_at(x).map_or(0, |p| self.end_at(p));
        let s = self.succ_at(x);
        if pred_end <= new_start && s.map_or(true, |s| new_end <= self.start_at(s)) {
            self.set_bounds_at(x, new_start, new_end);
            return true;
        }
        // Moving past a neighbour: check against every range but `x`.
        let mut c = self.find_at(new_start);
        if c == Some(x) {
            c = s;
        }
        if c.is_some_and(|c| self.start_at(c) < new_end) {
            return false;
        }
        let (_, _, v) = self.remove_at(x);
        let r = self.insert(new_start, new_end, v);
        debug_assert!(r.is_ok());
        r.is_ok()
    }

    /// Gives the range at `x` the bounds `[new_start, new_end)`, which the
    /// caller has checked lie between its neighbours.
    pub(crate) fn set_bounds_at(&mut self, x: At, new_start: u64, new_end: u64) {
        debug_assert!(new_start < new_end);
        let lf = self.lfm(x.leaf);
        let p = x.pos as usize;
        lf.start[p] = new_start;
        lf.end[p] = new_end;
        let (last, nx) = (p + 1 == lf.len as usize, lf.next);
        self.refresh_up(x.leaf, true);
        if last && nx != NIL {
            // The next leaf's first gap starts at this range's end.
            self.refresh_up(nx, true);
        }
    }

    /// Extends the range at `x` over the `k >= 1` ranges after it, which
    /// are dropped: `x` ends where the last of them ended. Returns the new
    /// place of `x`.
    pub(crate) fn absorb_next(&mut self, x: At, k: usize) -> At {
        let start = self.start_at(x);
        let pos = x.pos as usize;
        let len = self.lf(x.leaf).len as usize;
        if pos + k < len {
            // All in one leaf: one shift. The gaps left are unchanged (the
            // absorbed ranges' are gone, the next range's pred ends where
            // it did), only the leaf's max may drop.
            let lf = self.lfm(x.leaf);
            lf.end[pos] = lf.end[pos + k];
            for v in &mut lf.vals[pos + 1..=pos + k] {
                *v = None;
            }
            lf.end.copy_within(pos + k + 1..len, pos + 1);
            lf.start.copy_within(pos + k + 1..len, pos + 1);
            lf.vals[pos + 1..len].rotate_left(k);
            lf.end[len - k..len].fill(u64::MAX);
            lf.len -= k as u32;
            let parent = lf.parent;
            self.count -= k;
            if parent == NIL || len - k >= MIN {
                self.refresh_up(x.leaf, true);
                return x;
            }
            let mut dead = Dead::new();
            self.rebalance_leaf(x.leaf, &mut dead);
            self.free_dead(&mut dead);
            return self.at_of(start).expect("the range stays");
        }
        // Across leaves: one range at a time.
        let mut x = x;
        let mut new_end = self.end_at(x);
        for _ in 0..k {
            let s = self.succ_at(x).expect("k ranges follow");
            new_end = self.end_at(s);
            self.remove_at(s);
            x = self.at_of(start).expect("the range stays");
        }
        self.set_bounds_at(x, start, new_end);
        x
    }

    /// Moves the boundary between the range at `x` and the next one, which
    /// starts where `x` ends, to `b`, strictly inside the two.
    pub(crate) fn move_boundary(&mut self, x: At, b: u64) {
        let s = self.succ_at(x).expect("a next range");
        debug_assert_eq!(self.end_at(x), self.start_at(s));
        debug_assert!(self.start_at(x) < b && b < self.end_at(s));
        self.lfm(x.leaf).end[x.pos as usize] = b;
        self.lfm(s.leaf).start[s.pos as usize] = b;
        // The gap between the two stays empty; only the pivot of `x`'s
        // leaf moves, when `x` is its last range.
        if s.leaf != x.leaf {
            self.refresh_up(x.leaf, true);
        }
    }

    // ----- gap search -----------------------------------------------------

    /// The gap above the last range: `[last.end, u64::MAX)`, or the whole
    /// space if the tree is empty.
    fn top_gap(&self) -> (u64, u64) {
        let r = self.root;
        let s = if r == NIL {
            0
        } else if self.height == 0 {
            let l = self.lf(r);
            l.end[l.len as usize - 1]
        } else {
            let n = self.nd(r);
            n.pivot[n.len as usize - 1]
        };
        (s, u64::MAX)
    }

    /// Top-down free-area search: of the free gaps (the parts of
    /// `[0, u64::MAX)` not covered by a range — including the gap below the
    /// first range and the gap above the last), each clipped to
    /// `[low, high)`, the highest one at least `size` bytes long, as its
    /// clipped `(start, end)`. A `size` of 0 is treated as 1.
    pub fn highest_gap(&self, low: u64, high: u64, size: u64) -> Option<(u64, u64)> {
        self.highest_gap_at(low, high, size).map(|(s, e, _)| (s, e))
    }

    /// [`highest_gap`](Self::highest_gap), with the place of the range
    /// just above the gap (`None` for the gap above the last range): the
    /// first range ending above any address of the gap.
    pub(crate) fn highest_gap_at(
        &self,
        low: u64,
        high: u64,
        size: u64,
    ) -> Option<(u64, u64, Option<At>)> {
        let size = size.max(1);
        if low >= high || high - low < size {
            return None;
        }
        let (ts, te) = self.top_gap();
        if let Some((s, e)) = clip_fit(ts, te, low, high, size) {
            return Some((s, e, None));
        }
        if self.root == NIL {
            return None;
        }
        let w = Window { low, high, size };
        self.search::<true>(self.root, self.height, 0, &w)
            .map(|(s, e, a)| (s, e, Some(a)))
    }

    /// Bottom-up free-area search: like [`highest_gap`](Self::highest_gap)
    /// but returns the lowest fitting clipped gap.
    pub fn lowest_gap(&self, low: u64, high: u64, size: u64) -> Option<(u64, u64)> {
        self.lowest_gap_at(low, high, size).map(|(s, e, _)| (s, e))
    }

    /// [`lowest_gap`](Self::lowest_gap), with the place of the range just
    /// above the gap as for [`highest_gap_at`](Self::highest_gap_at).
    pub(crate) fn lowest_gap_at(
        &self,
        low: u64,
        high: u64,
        size: u64,
    ) -> Option<(u64, u64, Option<At>)> {
        let size = size.max(1);
        if low >= high || high - low < size {
            return None;
        }
        if self.root != NIL {
            let w = Window { low, high, size };
            if let Some((s, e, a)) = self.search::<false>(self.root, self.height, 0, &w) {
                return Some((s, e, Some(a)));
            }
        }
        let (ts, te) = self.top_gap();
        clip_fit(ts, te, low, high, size).map(|(s, e)| (s, e, None))
    }

    /// The highest (`UP`) or lowest fitting clipped gap below a range of
    /// the subtree at `i` (`h` levels above the leaves), whose first
    /// range's predecessor ends at `lo`, with the place of that range.
    /// Recursion depth is at most the tree height.
    fn search<const UP: bool>(
        &self,
        i: u32,
        h: u32,
        lo: u64,
        w: &Window,
    ) -> Option<(u64, u64, At)> {
        if h == 0 {
            let l = self.lf(i);
            let n = l.len as usize;
            for t in 0..n {
                let k = if UP { n - 1 - t } else { t };
                let gs = if k == 0 { lo } else { l.end[k - 1] };
                let ge = l.start[k];
                // The gaps further on lie wholly outside the window.
                if (UP && ge <= w.low) || (!UP && gs >= w.high) {
                    break;
                }
                if ge - gs < w.size {
                    continue;
                }
                if let Some((s, e)) = clip_fit(gs, ge, w.low, w.high, w.size) {
                    let at = At {
                        leaf: i,
                        pos: k as u32,
                    };
                    return Some((s, e, at));
                }
            }
            return None;
        }
        let nd = self.nd(i);
        let n = nd.len as usize;
        for t in 0..n {
            let j = if UP { n - 1 - t } else { t };
            if nd.gap[j] < w.size {
                continue;
            }
            let clo = if j == 0 { lo } else { nd.pivot[j - 1] };
            let chi = nd.pivot[j];
            if (UP && chi <= w.low) || (!UP && clo >= w.high) {
                break;
            }
            if clip_fit(clo, chi, w.low, w.high, w.size).is_none() {
                continue;
            }
            if w.low <= clo && chi <= w.high {
                // Nothing in there is clipped: the max gap is an answer.
                return self.greedy::<UP>(nd.child[j], h - 1, clo, w.size);
            }
            if let Some(g) = self.search::<UP>(nd.child[j], h - 1, clo, w) {
                return Some(g);
            }
        }
        None
    }

    /// The highest (`UP`) or lowest gap of at least `size` below a range of
    /// the subtree at `i` (`h` levels above the leaves, first predecessor's
    /// end `lo`), which its parent records with a max gap `>= size`.
    fn greedy<const UP: bool>(
        &self,
        mut i: u32,
        mut h: u32,
        mut lo: u64,
        size: u64,
    ) -> Option<(u64, u64, At)> {
        while h > 0 {
            let nd = self.nd(i);
            let n = nd.len as usize;
            let mut found = None;
            for t in 0..n {
                let j = if UP { n - 1 - t } else { t };
                if nd.gap[j] >= size {
                    found = Some(j);
                    break;
                }
            }
            let j = found?;
            if j > 0 {
                lo = nd.pivot[j - 1];
            }
            i = nd.child[j];
            h -= 1;
        }
        let l = self.lf(i);
        let n = l.len as usize;
        for t in 0..n {
            let k = if UP { n - 1 - t } else { t };
            let gs = if k == 0 { lo } else { l.end[k - 1] };
            if l.start[k] - gs >= size {
                let at = At {
                    leaf: i,
                    pos: k as u32,
                };
                return Some((gs, l.start[k], at));
            }
        }
        debug_assert!(false, "a max gap promised a missing gap");
        None
    }

    // ----- checker --------------------------------------------------------

    /// Debug checker: verifies links, shape, ordering, disjointness and
    /// every augmented record (recomputed from scratch). Returns a
    /// description of the first violation found.
    pub fn check(&self) -> Result<(), String> {
        use alloc::format;
        use alloc::vec;
        if self.root == NIL {
            if self.count != 0 || !self.leaves.is_empty() || !self.nodes.is_empty() {
                return Err(format!(
                    "empty root with {} ranges, {} leaves, {} nodes",
                    self.count,
                    self.leaves.len(),
                    self.nodes.len()
                ));
            }
            return Ok(());
        }
        // Structure: depth-first from the root, each node seen once; the
        // leaves in the order met.
        let mut seen_l = vec![false; self.leaves.len()];
        let mut seen_n = vec![false; self.nodes.len()];
        let mut order: Vec<u32> = Vec::new();
        // (index, level above the leaves, expected parent)
        let mut stack: Vec<(u32, u32, u32)> = vec![(self.root, self.height, NIL)];
        while let Some((i, h, parent)) = stack.pop() {
            if h == 0 {
                let Some(l) = self.leaves.get(i as usize) else {
                    return Err(format!("leaf {i} out of bounds"));
                };
                if seen_l[i as usize] {
                    return Err(format!("leaf {i} reached twice"));
                }
                seen_l[i as usize] = true;
                if l.parent != parent {
                    return Err(format!("leaf {i}: parent {} != {parent}", l.parent));
                }
                let n = l.len as usize;
                if n == 0 || n > B {
                    return Err(format!("leaf {i}: {n} ranges"));
                }
                for k in 0..B {
                    if (k < n) != l.vals[k].is_some() {
                        return Err(format!("leaf {i}: slot {k} value presence"));
                    }
                    if k >= n && l.end[k] != u64::MAX {
                        return Err(format!("leaf {i}: unused slot {k} end"));
                    }
                }
                order.push(i);
            } else {
                let Some(nd) = self.nodes.get(i as usize) else {
                    return Err(format!("node {i} out of bounds"));
                };
                if seen_n[i as usize] {
                    return Err(format!("node {i} reached twice"));
                }
                seen_n[i as usize] = true;
                if nd.parent != parent {
                    return Err(format!("node {i}: parent {} != {parent}", nd.parent));
                }
                if nd.leafy != (h == 1) {
                    return Err(format!("node {i}: leafy {} at level {h}", nd.leafy));
                }
                let n = nd.len as usize;
                if !(2..=B).contains(&n) {
                    return Err(format!("node {i}: {n} children"));
                }
                for k in n..B {
                    if nd.pivot[k] != u64::MAX || nd.gap[k] != 0 || nd.child[k] != NIL {
                        return Err(format!("node {i}: unused slot {k} not cleared"));
                    }
                }
                for k in (0..n).rev() {
                    stack.push((nd.child[k], h - 1, i));
                }
            }
        }
        if order.len() != self.leaves.len() {
            return Err(format!(
                "{} of {} leaves reachable",
                order.len(),
                self.leaves.len()
            ));
        }
        if seen_n.iter().any(|s| !s) {
            return Err("unreachable node".into());
        }
        // Leaf links follow the in-order walk.
        for (k, &i) in order.iter().enumerate() {
            let l = self.lf(i);
            let want_prev = if k == 0 { NIL } else { order[k - 1] };
            let want_next = order.get(k + 1).copied().unwrap_or(NIL);
            if l.prev != want_prev || l.next != want_next {
                return Err(format!("leaf {i}: links {}/{}", l.prev, l.next));
            }
        }
        // Ordering, and every leaf's record.
        let mut prev_end = 0u64;
        let mut prev_start = None;
        let mut count = 0usize;
        // (pivot, max gap) per leaf.
        let mut leaf_rec = vec![(0u64, 0u64); self.leaves.len()];
        for &i in &order {
            let l = self.lf(i);
            let mut m = 0;
            for k in 0..l.len as usize {
                let (s, e) = (l.start[k], l.end[k]);
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
                m = m.max(s - prev_end);
                prev_end = e;
                prev_start = Some(s);
                count += 1;
            }
            leaf_rec[i as usize] = (prev_end, m);
        }
        if count != self.count {
            return Err(format!(
                "{count} ranges in leaves, count says {}",
                self.count
            ));
        }
        // Node records, bottom-up.
        let rec = |i: u32, h: u32, node_rec: &[(u64, u64)]| -> (u64, u64) {
            if h == 0 {
                leaf_rec[i as usize]
            } else {
                node_rec[i as usize]
            }
        };
        let mut node_rec = vec![(0u64, 0u64); self.nodes.len()];
        // Levels from the bottom: collect nodes per level.
        let mut levels: Vec<Vec<u32>> = vec![Vec::new(); self.height as usize + 1];
        let mut st: Vec<(u32, u32)> = vec![(self.root, self.height)];
        while let Some((i, h)) = st.pop() {
            levels[h as usize].push(i);
            if h > 0 {
                let nd = self.nd(i);
                for k in 0..nd.len as usize {
                    st.push((nd.child[k], h - 1));
                }
            }
        }
        for h in 1..=self.height {
            for &i in &levels[h as usize] {
                let nd = self.nd(i);
                let mut m = 0;
                for k in 0..nd.len as usize {
                    let (p, g) = rec(nd.child[k], h - 1, &node_rec);
                    if nd.pivot[k] != p || nd.gap[k] != g {
                        return Err(format!(
                            "node {i} slot {k}: record ({:#x}, {:#x}), expected ({p:#x}, {g:#x})",
                            nd.pivot[k], nd.gap[k]
                        ));
                    }
                    m = m.max(g);
                }
                node_rec[i as usize] = (nd.pivot[nd.len as usize - 1], m);
            }
        }
        Ok(())
    }
}

/// Ascending walk along the leaves, stopping at the first range with
/// `start >= hi`.
struct Iter<'a, V> {
    tree: &'a RegionTree<V>,
    leaf: u32,
    pos: u32,
    hi: u64,
}

impl<'a, V> Iterator for Iter<'a, V> {
    type Item = (u64, u64, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        if self.leaf == NIL {
            return None;
        }
        let tree = self.tree;
        let l = tree.lf(self.leaf);
        let p = self.pos as usize;
        let s = l.start[p];
        if s >= self.hi {
            self.leaf = NIL;
            return None;
        }
        let item = (s, l.end[p], l.vals[p].as_ref()?);
        self.pos += 1;
        if self.pos >= l.len {
            self.leaf = l.next;
            self.pos = 0;
        }
        Some(item)
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
    fn node_sizes() {
        use crate::vma::VmaAttrs;
        use core::mem::size_of;
        // The engine's payload has a niche: `Option` costs nothing.
        assert_eq!(size_of::<Option<VmaAttrs>>(), size_of::<VmaAttrs>());
        // A leaf: 16 x (end + start + value) plus four counts and links,
        // rounded up to whole cache lines.
        assert_eq!(size_of::<Leaf<VmaAttrs>>(), 960);
        assert_eq!(size_of::<Leaf<u64>>(), 576);
        // A node: 16 x (pivot + gap + child) plus count, parent and kind.
        assert_eq!(size_of::<Node>(), 384);
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
        // turn and compare with the two-step version.
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
                let x: Vec<_> = a.iter().map(|(s, e, v)| (s, e, *v)).collect();
                let y: Vec<_> = b.iter().map(|(s, e, v)| (s, e, *v)).collect();
                assert_eq!(x, y);
                for &(lo, hi, sz) in &[(0, MAX, 1), (0, MAX, 16), (0, 1200, 3), (500, 2000, 10)] {
                    assert_eq!(a.highest_gap(lo, hi, sz), b.highest_gap(lo, hi, sz));
                    assert_eq!(a.lowest_gap(lo, hi, sz), b.lowest_gap(lo, hi, sz));
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
        let big: Vec<(u64, u64)> = (0..200u64).map(|k| (k * 10, k * 10 + 5)).collect();
        let t = tree(&big);
        assert!(t.height >= 1);
        let mut c = t.clone();
        c.leaves[0].start[1] = 4; // overlaps
        assert!(c.check().is_err());
        let mut c = t.clone();
        c.leaves[0].start[1] += 3; // a longer gap than recorded
        assert!(c.check().is_err());
        let mut c = t.clone();
        let r = c.root as usize;
        c.nodes[r].gap[0] += 1;
        assert!(c.check().is_err());
        let mut c = t.clone();
        c.nodes[r].pivot[0] -= 1;
        assert!(c.check().is_err());
        let mut c = t.clone();
        c.leaves[1].next = NIL;
        assert!(c.check().is_err());
        let mut c = t.clone();
        c.leaves[2].parent = NIL;
        assert!(c.check().is_err());
        let mut c = t.clone();
        c.count += 1;
        assert!(c.check().is_err());
        let mut c = tree(&[(10, 20), (30, 40), (50, 60)]);
        let r = c.root as usize;
        c.leaves[r].end[1] = 55;
        assert!(c.check().is_err());
        let mut c = tree(&[(10, 20), (30, 40), (50, 60)]);
        c.leaves[r].end[3] = 70;
        assert!(c.check().is_err());
    }

    /// A deterministic pseudo-random sequence.
    fn lcg(x: &mut u64) -> u64 {
        *x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *x >> 33
    }

    /// Checks the tree against a sorted list of its ranges.
    fn same(t: &RegionTree<u32>, m: &alloc::collections::BTreeMap<u64, (u64, u32)>) {
        t.check().unwrap();
        let a: Vec<_> = t.iter().map(|(s, e, v)| (s, e, *v)).collect();
        let b: Vec<_> = m.iter().map(|(&s, &(e, v))| (s, e, v)).collect();
        assert_eq!(a, b);
        assert_eq!(t.len(), m.len());
    }

    #[test]
    fn grow_and_shrink_in_every_order() {
        use alloc::collections::BTreeMap;
        for order in 0..4 {
            let n = 3000u64;
            let mut t = RegionTree::new();
            let mut m = BTreeMap::new();
            let key = |k: u64| match order {
                0 => k,
                1 => n - 1 - k,
                2 => (k * 7919) % n,
                _ => (k % 2) * (n / 2) + k / 2,
            };
            for k in 0..n {
                let s = key(k) * 16;
                assert!(t.insert(s, s + 8, k as u32).is_ok());
                m.insert(s, (s + 8, k as u32));
                if k % 97 == 0 {
                    same(&t, &m);
                }
            }
            same(&t, &m);
            assert!(t.height >= 2);
            for k in 0..n {
                let s = key((k * 31) % n) * 16;
                assert_eq!(t.remove(s).map(|r| r.0), Some(s));
                m.remove(&s);
                if k % 89 == 0 {
                    same(&t, &m);
                }
            }
            same(&t, &m);
            assert!(t.is_empty());
            assert!(t.leaves.is_empty() && t.nodes.is_empty());
        }
    }

    #[test]
    fn random_updates_against_a_map() {
        use alloc::collections::BTreeMap;
        let mut x = 7u64;
        let mut t = RegionTree::new();
        let mut m: BTreeMap<u64, (u64, u32)> = BTreeMap::new();
        for step in 0..20_000u32 {
            let op = lcg(&mut x) % 10;
            let a = lcg(&mut x) % 4000;
            match op {
                0..=4 => {
                    let e = a + 1 + lcg(&mut x) % 6;
                    let free = m
                        .range(..e)
                        .next_back()
                        .map_or(true, |(_, &(pe, _))| pe <= a);
                    assert_eq!(t.insert(a, e, step).is_ok(), free);
                    if free {
                        m.insert(a, (e, step));
                    }
                }
                5..=7 => {
                    let s = m.range(a..).next().map(|(&s, _)| s).unwrap_or(a);
                    let want = m.remove(&s).map(|(e, v)| (s, e, v));
                    assert_eq!(t.remove(s), want);
                }
                8 => {
                    if let Some((&s, &(e, v))) = m.range(a..).next() {
                        if e - s >= 2 {
                            let at = s + 1;
                            assert_eq!(t.split(s, at, step).map(|v| *v), Ok(v));
                            m.insert(s, (at, v));
                            m.insert(at, (e, step));
                        }
                    }
                }
                _ => {
                    if let Some((&s, &(e, v))) = m.range(a..).next() {
                        let ns = s.saturating_sub(lcg(&mut x) % 3);
                        let ne = e + lcg(&mut x) % 3;
                        let ok = m
                            .iter()
                            .all(|(&s2, &(e2, _))| s2 == s || e2 <= ns || ne <= s2);
                        assert_eq!(t.set_bounds(s, ns, ne), ok);
                        if ok {
                            m.remove(&s);
                            m.insert(ns, (ne, v));
                        }
                    }
                }
            }
            if step % 50 == 0 {
                same(&t, &m);
                // Gap searches against a scan.
                let mut gaps = Vec::new();
                let mut pe = 0;
                for (&s, &(e, _)) in &m {
                    gaps.push((pe, s));
                    pe = e;
                }
                gaps.push((pe, MAX));
                let (low, high) = (lcg(&mut x) % 4000, 2000 + lcg(&mut x) % 4000);
                let size = 1 + lcg(&mut x) % 8;
                let fits: Vec<_> = gaps
                    .iter()
                    .filter_map(|&(s, e)| clip_fit(s, e, low, high, size))
                    .collect();
                assert_eq!(t.highest_gap(low, high, size), fits.last().copied());
                assert_eq!(t.lowest_gap(low, high, size), fits.first().copied());
            }
        }
        same(&t, &m);
    }
}
