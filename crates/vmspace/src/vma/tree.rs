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
//! A B+tree stored in two arenas indexed by `u32` (`NIL` = `u32::MAX` is
//! "no node"), with the free-gap augmentation of Linux's maple tree:
//!
//! - leaves (`Leaf`) hold up to `LB` = 8 ranges as parallel arrays `end`,
//!   `start` and `vals`, in address order, plus their parent, their slot in
//!   it, and the previous and next leaf (stepping to a neighbour is O(1));
//! - internal nodes (`Node`) hold up to `B` = 64 children, and for each
//!   child its *pivot* (the highest `end` in its subtree) and its *max
//!   gap* (the longest free gap below a range of its subtree), plus that
//!   gap's bit length in one byte (`bkt`), so that the children that may
//!   hold a gap of a given size are found among 64 with a few word
//!   operations.
//!
//! Why a B-tree rather than the binary (AVL) tree this used to be? A lookup
//! is a chain of dependent memory accesses, one per level: a balanced
//! binary tree of 10,000 ranges has about 14 levels, and each costs at
//! least a cache access (most of them outside L1), which bounded `find_vma`
//! at about 55 ns whatever the code did. Here a level is two rounds of
//! branch-free comparisons (independent loads from the cache lines of the
//! keys, with the lines of the child links fetched at the same time), and
//! 10,000 ranges need 3 levels (a root, about 20 nodes, 1,250 leaves);
//! wide nodes cost little, since a node changes rarely and its children's
//! records are found without a scan. Updates gain more: the augmented max
//! gaps that change when a free gap shrinks or grows (the big gap below the
//! lowest mapping moves with every `mmap`) are re-derived on 3 nodes rather
//! than 14, a range's neighbours are nearly always in its leaf, and most
//! updates are one shift inside a leaf. The engine's hot
//! paths use positions (`At`, a leaf and a slot) returned by one descent to
//! read neighbours and change the tree without looking ranges up again
//! (`split_at`, `absorb_next`, `move_boundary`, `insert_before`,
//! `delete_at`, and the gap searches, which hand back the range above the
//! gap found).
//!
//! Ranges are ordered by `end` as well as by `start` (they are disjoint),
//! so "the first range with `end > addr`" (`find_vma`) is one descent that
//! reads only pivots and ends; unused slots hold `u64::MAX` so that the
//! count needs no bound. Values sit in the leaf (`Option<V>`: `unsafe` is
//! forbidden here, and `VmaAttrs` has a niche, so the `Option` is free).
//! Leaves hold 8 ranges, not 64: their ends fill one cache line, and the
//! per-leaf work of every update (shifts, the leaf's max gap, a gap scan)
//! stays small.
//!
//! Memory: a leaf is 8 x (8 + 8 + `size_of::<Option<V>>()`) + 20 bytes,
//! rounded up to whole cache lines: 512 bytes for the engine's 40-byte
//! payload. An overflowing leaf splits in halves, except when the new range
//! goes into its upper half: then the left leaf keeps everything up to the
//! new range, and a range that continues the last range of the previous
//! leaf is added there if it has room. Ranges added in ascending order (as
//! a process's mappings are, top-down placement aside) then pack leaves
//! 7 or 8 to 8 rather than half full: about 68 bytes per range for the
//! engine (81 with the arenas' growth slack), where the AVL tree took 88
//! (98). Random updates leave leaves about 60% full. Internal nodes (1408
//! bytes each, one per 40 to 63 leaves) add about 2%. The arenas grow by a third when full rather than
//! doubling. A removal that leaves a leaf with fewer than `MIN_LEAF`
//! ranges (a node: `MIN` children) refills it from a sibling, or merges
//! the two if that leaves room for two more entries (so that an insert and
//! a remove at the same place never split and merge over and over). Freed
//! nodes are taken out of their arena with `swap_remove` and the node
//! moved into the hole is re-linked, so the arenas stay dense.
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
//!   `height == 0`. Every leaf has 1 to 8 ranges and every node 2 to 64
//!   children. Slots past `len` hold `end`/pivot `u64::MAX`, gap and `bkt`
//!   0, child `NIL` and value `None`; slots below `len` hold `Some` value.
//! - Links: each child's `parent` is the node that lists it, at slot
//!   `pslot` (`NIL` for the root); `prev`/`next` link the leaves in address
//!   order, `NIL` at the ends; `leafy` is true exactly for nodes whose
//!   children are leaves. Every arena slot is in use.
//! - Gaps: the free space is split into gaps, one *below* each range plus
//!   one *above* the last range. The gap below range `r` is
//!   `[pred(r).end, r.start)`, or `[0, r.start)` for the first range; the gap
//!   above the last range is `[last.end, u64::MAX)` (the whole space when
//!   the tree is empty). Gaps below ranges are not stored: a leaf's are
//!   computed from its ends and starts and the previous leaf's last end.
//! - Augmentation: `pivot[j]` of a node is the `end` of the last range in
//!   child `j`'s subtree, `gap[j]` the longest gap below a range of that
//!   subtree, and `bkt[j]` the bit length of `gap[j]`. Because the gap
//!   below a range depends on its predecessor, changing a leaf's last range
//!   also changes the next leaf's first gap.
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
//! (clipping only shrinks gaps; the `bkt` bytes rule out most such children
//! at once) or when its bounds clipped to `[low, high)` are shorter than
//! `size`. A child whose bounds lie wholly inside
//! `[low, high)` is not clipped at all, so a max gap `>= size` proves it holds
//! an answer and one greedy descent finds it. Only children whose bounds
//! straddle `low` or `high` are explored and may fail, at most two per
//! level, so a search costs O(log n).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// "No node".
const NIL: u32 = u32::MAX;
/// Children per internal node.
const B: usize = 64;
/// Ranges per leaf.
const LB: usize = 8;
/// A non-root leaf or node left with fewer entries than this by a removal
/// is refilled from, or merged with, a sibling.
const MIN: usize = 16;
/// Two siblings merge only if the result has at most this many entries.
const MERGE_MAX: usize = B - 2;
/// [`MIN`] for leaves.
const MIN_LEAF: usize = 2;
/// [`MERGE_MAX`] for leaves.
const MERGE_MAX_LEAF: usize = LB - 2;
/// The rightmost (highest) side.
const R: usize = 1;
/// The leftmost (lowest) side.
const L: usize = 0;

/// A leaf: up to [`LB`] ranges in address order. Cache-line aligned, so
/// that a lookup's `end` array is exactly one line.
#[derive(Clone)]
#[repr(C, align(64))]
struct Leaf<V> {
    /// Ends; `u64::MAX` past `len`.
    end: [u64; LB],
    /// Starts; meaningless past `len`.
    start: [u64; LB],
    /// Number of ranges.
    len: u32,
    /// Parent node, `NIL` for the root.
    parent: u32,
    /// This leaf's slot in its parent.
    pslot: u32,
    /// Previous leaf in address order, `NIL` for the first.
    prev: u32,
    /// Next leaf in address order, `NIL` for the last.
    next: u32,
    /// Payloads; `None` past `len`.
    vals: [Option<V>; LB],
}

impl<V> Leaf<V> {
    fn empty() -> Self {
        Leaf {
            end: [u64::MAX; LB],
            start: [0; LB],
            len: 0,
            parent: NIL,
            pslot: 0,
            prev: NIL,
            next: NIL,
            vals: core::array::from_fn(|_| None),
        }
    }
}

/// An internal node: up to [`B`] children in address order. Cache-line
/// aligned: a lookup reads the eight lines of `pivot` and the four of
/// `child` all at once.
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
    /// `bkt[j]`: the bit length of `gap[j]` (0 for none). A gap of `size`
    /// bytes can only be under children whose `bkt` is at least that of
    /// `size`: [`Node::candidates`] finds them among 16 at once.
    bkt: [u8; B],
    /// Number of children.
    len: u32,
    /// Parent node, `NIL` for the root.
    parent: u32,
    /// This node's slot in its parent.
    pslot: u32,
    /// Whether the children are leaves.
    leafy: bool,
}

impl Node {
    fn empty(leafy: bool) -> Self {
        Node {
            pivot: [u64::MAX; B],
            gap: [0; B],
            bkt: [0; B],
            child: [NIL; B],
            len: 0,
            parent: NIL,
            pslot: 0,
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

    /// The longest gap recorded in this node, given that one slot records
    /// `floor`: only the slots whose `bkt` allows a gap of `floor` or more
    /// are read (few, usually), not all 64.
    #[inline]
    fn max_gap_from(&self, floor: u64) -> u64 {
        let mut m = self.candidates(spread(floor.max(1)));
        let mut best = floor;
        while m != 0 {
            let j = m.trailing_zeros() as usize % B;
            m &= m - 1;
            best = best.max(self.gap[j]);
        }
        best
    }

    /// Recomputes every `bkt` from `gap`.
    fn rebucket(&mut self) {
        for j in 0..B {
            self.bkt[j] = bucket(self.gap[j]);
        }
    }

    /// The slots whose child may hold a gap of at least `size` bytes (a
    /// superset of those with `gap >= size`), as a bit mask, given `sb`:
    /// [`bucket`]`(size)` in every byte ([`spread`]). Branch-free and
    /// within 64-bit words: bytes are below 128, so `bkt + 128 - sb` has its
    /// high bit set exactly when `bkt >= sb`, with no carry between bytes;
    /// a multiply then gathers the eight high bits of each half.
    #[inline]
    fn candidates(&self, sb: u128) -> u64 {
        const HIGH: u128 = 0x8080_8080_8080_8080_8080_8080_8080_8080;
        let gather = |v: u64| ((v >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56;
        let mut m = 0u64;
        for w in 0..B / 16 {
            let mut b = [0u8; 16];
            b.copy_from_slice(&self.bkt[16 * w..16 * w + 16]);
            let h = u128::from_le_bytes(b).wrapping_add(HIGH - sb) & HIGH;
            m |= (gather(h as u64) | (gather((h >> 64) as u64) << 8)) << (16 * w);
        }
        m
    }
}

/// [`bucket`]`(size)` in every byte, for [`Node::candidates`].
#[inline]
fn spread(size: u64) -> u128 {
    bucket(size) as u128 * 0x0101_0101_0101_0101_0101_0101_0101_0101
}

/// The bit length of `g`: `g >= size` implies `bucket(g) >= bucket(size)`.
#[inline]
fn bucket(g: u64) -> u8 {
    (64 - g.leading_zeros()) as u8
}

/// The number of the eight keys `<= addr`. Each comparison is a 128-bit
/// subtraction's borrow, which compiles to a compare and a
/// subtract-with-borrow into its own register, and the eight are summed as
/// a tree: a short dependency chain (counting with `+= (k <= addr)`
/// compiles to one long chain of `sbb`, and there is no unsigned 64-bit
/// vector compare before SSE4.2).
#[inline(always)]
fn count8(k: [u64; 8], addr: u64) -> usize {
    // All ones when `x > addr`.
    let m = |x: u64| ((addr as u128).wrapping_sub(x as u128) >> 64) as u64;
    let s = (m(k[0]).wrapping_add(m(k[1])))
        .wrapping_add(m(k[2]).wrapping_add(m(k[3])))
        .wrapping_add((m(k[4]).wrapping_add(m(k[5]))).wrapping_add(m(k[6]).wrapping_add(m(k[7]))));
    8u64.wrapping_add(s) as usize
}

/// The number of keys `<= addr`: the index of the first key `> addr` in a
/// sorted array padded with `u64::MAX`. Two rounds of eight independent
/// comparisons: the last key of each cache line (so that all eight lines
/// of the array are fetched at once), then the eight keys of the line
/// found.
#[inline(always)]
fn count_le(keys: &[u64; B], addr: u64) -> usize {
    const _: () = assert!(B == 64);
    let last = core::array::from_fn(|g| keys[8 * g + 7]);
    let b = 8 * count8(last, addr).min(7);
    let mut line = [0u64; 8];
    line.copy_from_slice(&keys[b..b + 8]);
    b + count8(line, addr)
}

/// [`count_le`] for a leaf's eight ends (one cache line).
#[inline(always)]
fn count_le_leaf(keys: &[u64; LB], addr: u64) -> usize {
    count8(*keys, addr)
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

/// Moves `a[pos..N - 1]` one slot up (dropping `a[N - 1]`): a fixed-size,
/// branch-free loop rather than a `memmove` call for a few words.
#[inline(always)]
fn shift_up<const N: usize>(a: &mut [u64; N], pos: usize) {
    for k in (1..N).rev() {
        a[k] = if k > pos { a[k - 1] } else { a[k] };
    }
}

/// Moves the payloads of slots `pos..len` one slot up (slot `len` is
/// free): one move each, no `memmove` call and no temporary.
#[inline(always)]
fn vals_up<V>(v: &mut [Option<V>], pos: usize, len: usize) {
    for k in (pos..len).rev() {
        v[k + 1] = v[k].take();
    }
}

/// Moves the payloads of slots `pos + k..len` down `k` slots (slots
/// `pos..pos + k` are free).
#[inline(always)]
fn vals_down<V>(v: &mut [Option<V>], pos: usize, k: usize, len: usize) {
    for j in pos + k..len {
        v[j - k] = v[j].take();
    }
}

/// Moves `a[pos + k..]` down `k` slots, filling the top with `fill`.
#[inline(always)]
fn shift_down<const N: usize>(a: &mut [u64; N], pos: usize, k: usize, fill: u64) {
    for j in 0..N {
        let from = j + k;
        let v = if from < N { a[from] } else { fill };
        a[j] = if j >= pos { v } else { a[j] };
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
    /// `spread(size)`.
    sb: u128,
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

    /// Start of the range at `a`, or `None` if `a` is no place in the
    /// tree (as a position kept across a change may be).
    #[inline]
    pub(crate) fn start_at_checked(&self, a: At) -> Option<u64> {
        let l = self.leaves.get(a.leaf as usize)?;
        if a.pos < l.len {
            Some(l.start[a.pos as usize])
        } else {
            None
        }
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
            // Read before the pivots are counted, so that the lines of
            // `child` are on their way before `j` is known (a node has a
            // first child, and `NIL` has every bit set).
            let first = n.child[0] & n.child[16] & n.child[32] & n.child[48];
            if first == NIL {
                return None;
            }
            let j = count_le(&n.pivot, addr);
            // Past the last child only at the root, when every range ends
            // at or below `addr`; below the root, the parent's pivot
            // promises a range ending above `addr`.
            let c = match n.child.get(j) {
                Some(&c) => c,
                None => NIL,
            };
            if c == NIL {
                return None;
            }
            i = c;
        }
        let l = self.lf(i);
        let p = count_le_leaf(&l.end, addr);
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

    /// The slot of a leaf or node in its parent.
    #[inline]
    fn pslot_of(&self, i: u32, is_leaf: bool) -> usize {
        let j = if is_leaf {
            self.lf(i).pslot
        } else {
            self.nd(i).pslot
        };
        j as usize % B
    }

    #[inline]
    fn set_parent(&mut self, i: u32, is_leaf: bool, p: u32) {
        if is_leaf {
            self.lfm(i).parent = p;
        } else {
            self.ndm(i).parent = p;
        }
    }

    /// Points the children of node `p` from slot `from` on back at `p` and
    /// their slots, after they moved.
    fn relink(&mut self, p: u32, from: usize) {
        self.ndm(p).rebucket();
        let (leafy, len) = (self.nd(p).leafy, self.nd(p).len as usize);
        for j in from..len {
            let c = self.nd(p).child[j];
            if leafy {
                let l = self.lfm(c);
                l.parent = p;
                l.pslot = j as u32;
            } else {
                let n = self.ndm(c);
                n.parent = p;
                n.pslot = j as u32;
            }
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
        let j = self.pslot_of(child, is_leaf);
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
            n.bkt[j] = bucket(gap);
            let gp = n.parent;
            if gp == NIL {
                return;
            }
            let new_piv = n.pivot[n.len as usize - 1];
            let jg = n.pslot as usize % B;
            let cur = self.nd(gp).gap[jg];
            let new_gap = if gap >= cur {
                gap
            } else if old_gap < cur {
                cur
            } else {
                // The slot that held the maximum shrank.
                self.nd(p).max_gap_from(gap)
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
                    let j = self.pslot_of(dead, true);
                    debug_assert_eq!(self.nd(par).child[j], last);
                    self.ndm(par).child[j] = dead;
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
                    let j = self.pslot_of(dead, false);
                    debug_assert_eq!(self.nd(par).child[j], last);
                    self.ndm(par).child[j] = dead;
                }
                self.relink(dead, 0);
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
        if len < LB {
            let lf = self.lfm(l);
            shift_up(&mut lf.end, pos);
            shift_up(&mut lf.start, pos);
            vals_up(&mut lf.vals, pos, len);
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
        // Split: the left leaf keeps `lc` of the LB + 1 ranges: half, or
        // when the new range goes into the upper half, all the ranges up
        // to it (ranges added in ascending order, as a process maps them,
        // even below a few fixed ones such as the stack's, then pack leaves
        // full rather than half full).
        let lc = if pos >= LB / 2 {
            (pos + 1).min(LB)
        } else {
            LB.div_ceil(2)
        };
        let from = if pos < lc { lc - 1 } else { lc };
        let r = self.alloc_leaf();
        let (lf, rf) = two_mut(&mut self.leaves, l, r);
        let n = LB - from;
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
        vals_up(&mut tgt.vals, tpos, tl);
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
            self.relink(nr, 0);
            self.root = nr;
            self.height += 1;
            return;
        }
        let j = self.pslot_of(left, is_leaf);
        let n = self.ndm(p);
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
            self.relink(p, j);
            self.refresh_up(p, false);
            return;
        }
        // (A node keeps two children at least: B - 1 stay left.)
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
        if owner == p {
            self.relink(p, tj);
        } else {
            self.ndm(p).rebucket();
        }
        self.relink(q, 0);
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
        // Before the first range of a leaf, the new range may as well end
        // the previous leaf: it does if it continues that leaf's last range
        // and the leaf has room (ranges added in ascending order, as a
        // process maps them, then fill leaves one after the other). The
        // successor's gap, then in the next leaf, is re-derived there.
        if pos == 0 {
            let p = self.lf(l).prev;
            if p != NIL && (self.lf(p).len as usize) < LB && self.leaf_lo(l) == start {
                let plen = self.lf(p).len as usize;
                let at = self.leaf_insert(p, plen, start, end, value);
                self.refresh_up(l, true);
                return Ok(at);
            }
        }
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
        self.remove_at_next(a).0
    }

    /// Removes the range at `a` and returns it, with the place of the
    /// range that followed it (`None` if it was the last).
    pub(crate) fn remove_at_next(&mut self, a: At) -> ((u64, u64, V), Option<At>) {
        let l = self.lfm(a.leaf);
        let p = a.pos as usize;
        let (s, e) = (l.start[p], l.end[p]);
        let v = match l.vals[p].take() {
            Some(v) => v,
            None => unreachable!("a live slot holds a value"),
        };
        let next = self.unlink_slot(a);
        ((s, e, v), next)
    }

    /// Removes the range at `a`, dropping its payload; returns the place of
    /// the range that followed it (`None` if it was the last). For callers
    /// that hold a copy of the range already: nothing large is moved out.
    pub(crate) fn delete_at(&mut self, a: At) -> Option<At> {
        self.lfm(a.leaf).vals[a.pos as usize] = None;
        self.unlink_slot(a)
    }

    /// Takes slot `a`, whose payload is already out, out of its leaf and
    /// re-derives what depends on it; returns the place of the range that
    /// followed it.
    fn unlink_slot(&mut self, a: At) -> Option<At> {
        let (s, pos, newlen, parent, nx) = {
            let lf = self.lfm(a.leaf);
            let pos = a.pos as usize;
            let len = lf.len as usize;
            let s = lf.start[pos];
            shift_down(&mut lf.end, pos, 1, u64::MAX);
            shift_down(&mut lf.start, pos, 1, 0);
            vals_down(&mut lf.vals, pos, 1, len);
            lf.len -= 1;
            (s, pos, len - 1, lf.parent, lf.next)
        };
        self.count -= 1;
        let was_last = pos == newlen;
        // Where the successor is if the leaf keeps its shape.
        let next = if !was_last {
            Some(At {
                leaf: a.leaf,
                pos: pos as u32,
            })
        } else if nx != NIL {
            Some(At { leaf: nx, pos: 0 })
        } else {
            None
        };
        if parent == NIL {
            if newlen == 0 {
                self.leaves.clear();
                self.nodes.clear();
                self.root = NIL;
                self.height = 0;
            }
            return next;
        }
        if newlen >= MIN_LEAF {
            self.refresh_up(a.leaf, true);
            if was_last && nx != NIL {
                // The next leaf's first gap now starts lower.
                self.refresh_up(nx, true);
            }
            return next;
        }
        let mut dead = Dead::new();
        self.rebalance_leaf(a.leaf, &mut dead);
        self.free_dead(&mut dead);
        // The successor is the first range ending above `s`.
        let next = self.find_at(s);
        if was_last {
            if let Some(f) = next {
                // Its gap now starts lower.
                self.refresh_up(f.leaf, true);
            }
        }
        next
    }

    /// Refills leaf `l` (not the root, short of [`MIN_LEAF`] ranges) from a
    /// sibling, or merges the two.
    fn rebalance_leaf(&mut self, l: u32, dead: &mut Dead) {
        let p = self.lf(l).parent;
        let (left, right, jl) = {
            let j = self.pslot_of(l, true);
            let pn = self.nd(p);
            if j + 1 < pn.len as usize {
                (l, pn.child[j + 1], j)
            } else {
                (pn.child[j - 1], l, j - 1)
            }
        };
        let (lf, rf) = two_mut(&mut self.leaves, left, right);
        let (ll, rl) = (lf.len as usize, rf.len as usize);
        if ll + rl <= MERGE_MAX_LEAF {
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
            self.relink(p, jl + 1);
            self.node_lost_child(p, dead);
            return;
        }
        // Refill the short one to [`MIN_LEAF`] from its sibling (which
        // keeps more than that): no more moves than needed, and a leaf
        // packed by ascending inserts stays packed.
        let want = if l == left {
            MIN_LEAF
        } else {
            ll + rl - MIN_LEAF
        };
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
        pn.rebucket();
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
                if leafy {
                    self.lfm(c).pslot = 0;
                } else {
                    self.ndm(c).pslot = 0;
                }
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
            let j = self.pslot_of(p, false);
            let g = self.nd(parent);
            if j + 1 < g.len as usize {
                (p, g.child[j + 1], j)
            } else {
                (g.child[j - 1], p, j - 1)
            }
        };
        let (ln, rn) = two_mut(&mut self.nodes, left, right);
        let (ll, rl) = (ln.len as usize, rn.len as usize);
        if ll + rl <= MERGE_MAX {
            ln.pivot[ll..ll + rl].copy_from_slice(&rn.pivot[..rl]);
            ln.gap[ll..ll + rl].copy_from_slice(&rn.gap[..rl]);
            ln.child[ll..ll + rl].copy_from_slice(&rn.child[..rl]);
            ln.len = (ll + rl) as u32;
            rn.len = 0;
            self.relink(left, ll);
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
            self.relink(parent, jl + 1);
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
            self.relink(left, ll);
            self.relink(right, 0);
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
            self.ndm(left).rebucket();
            self.relink(right, 0);
        }
        let (lp, lg) = self.nd(left).summary();
        let (rp, rg) = self.nd(right).summary();
        let g = self.ndm(parent);
        g.pivot[jl] = lp;
        g.gap[jl] = lg;
        g.pivot[jl + 1] = rp;
        g.gap[jl + 1] = rg;
        g.rebucket();
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
            shift_down(&mut lf.end, pos + 1, k, u64::MAX);
            shift_down(&mut lf.start, pos + 1, k, 0);
            vals_down(&mut lf.vals, pos + 1, k, len);
            lf.len -= k as u32;
            let parent = lf.parent;
            self.count -= k;
            if parent == NIL || len - k >= MIN_LEAF {
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
        let w = Window {
            low,
            high,
            size,
            sb: spread(size),
        };
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
            let w = Window {
                low,
                high,
                size,
                sb: spread(size),
            };
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
    /// A node is entered only through children that may hold a long
    /// enough gap ([`Node::candidates`]), in search order; a child whose
    /// bounds lie inside the window is finished by
    /// [`greedy`](Self::greedy), one that straddles `low` or `high` is
    /// searched recursively (at most two per level). Recursion depth is at
    /// most the tree height.
    fn search<const UP: bool>(
        &self,
        i: u32,
        h: u32,
        lo: u64,
        w: &Window,
    ) -> Option<(u64, u64, At)> {
        if h == 0 {
            return self.search_leaf::<UP>(i, lo, w);
        }
        let nd = self.nd(i);
        let mut m = nd.candidates(w.sb);
        while m != 0 {
            let j = if UP {
                63 - m.leading_zeros() as usize
            } else {
                m.trailing_zeros() as usize
            };
            m &= !(1u64 << j);
            let j = j % B;
            if nd.gap[j] < w.size {
                continue;
            }
            let clo = if j == 0 { lo } else { nd.pivot[j - 1] };
            let chi = nd.pivot[j];
            if (UP && chi <= w.low) || (!UP && clo >= w.high) {
                // This child and the rest lie wholly outside the window.
                break;
            }
            if clip_fit(clo, chi, w.low, w.high, w.size).is_none() {
                continue;
            }
            if w.low <= clo && chi <= w.high {
                // Nothing in there is clipped: the max gap is an answer.
                return self.greedy::<UP>(nd.child[j], h - 1, clo, w);
            }
            if let Some(g) = self.search::<UP>(nd.child[j], h - 1, clo, w) {
                return Some(g);
            }
        }
        None
    }

    /// [`search`](Self::search) in leaf `i`.
    #[inline]
    fn search_leaf<const UP: bool>(&self, i: u32, lo: u64, w: &Window) -> Option<(u64, u64, At)> {
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
        w: &Window,
    ) -> Option<(u64, u64, At)> {
        let size = w.size;
        while h > 0 {
            let nd = self.nd(i);
            let mut m = nd.candidates(w.sb);
            let mut found = None;
            while m != 0 {
                let j = if UP {
                    63 - m.leading_zeros() as usize
                } else {
                    m.trailing_zeros() as usize
                };
                m &= !(1u64 << j);
                if nd.gap[j % B] >= size {
                    found = Some(j % B);
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
                if parent != NIL && self.nd(parent).child[l.pslot as usize % B] != i {
                    return Err(format!("leaf {i}: slot {} in {parent}", l.pslot));
                }
                let n = l.len as usize;
                if n == 0 || n > LB {
                    return Err(format!("leaf {i}: {n} ranges"));
                }
                for k in 0..LB {
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
                if parent != NIL && self.nd(parent).child[nd.pslot as usize % B] != i {
                    return Err(format!("node {i}: slot {} in {parent}", nd.pslot));
                }
                if nd.leafy != (h == 1) {
                    return Err(format!("node {i}: leafy {} at level {h}", nd.leafy));
                }
                let n = nd.len as usize;
                if !(2..=B).contains(&n) {
                    return Err(format!("node {i}: {n} children"));
                }
                for k in n..B {
                    if nd.pivot[k] != u64::MAX
                        || nd.gap[k] != 0
                        || nd.bkt[k] != 0
                        || nd.child[k] != NIL
                    {
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
                    if nd.bkt[k] != bucket(g) {
                        return Err(format!("node {i} slot {k}: bucket {}", nd.bkt[k]));
                    }
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
        // A leaf: 8 x (end + start + value) plus five counts and links,
        // rounded up to whole cache lines.
        assert_eq!(size_of::<Leaf<VmaAttrs>>(), 512);
        assert_eq!(size_of::<Leaf<u64>>(), 320);
        // A node: 64 x (pivot + child + gap + bkt) plus count, parent, slot
        // and kind, rounded up to whole cache lines.
        assert_eq!(size_of::<Node>(), 1408);
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
#[cfg(test)]
mod fill {
    use super::*;

    /// Ranges per leaf.
    fn fill(t: &RegionTree<u64>) -> f64 {
        t.len() as f64 / t.leaves.len() as f64
    }

    #[test]
    fn ascending_splits_pack_leaves() {
        // A reservation carved page by page from the bottom, as the
        // benchmark builds its arena: split, split, remove, insert.
        fn carve(t: &mut RegionTree<u64>, n: u64) {
            for i in (1..n).step_by(2) {
                let s = t.prev(i + 1).unwrap().0;
                if s < i {
                    t.split(s, i, 1).unwrap();
                }
                if i + 1 < n {
                    t.split(i, i + 1, 2).unwrap();
                }
                t.remove(i).unwrap();
                t.insert(i, i + 1, 3).unwrap();
            }
        }
        let mut t: RegionTree<u64> = RegionTree::new();
        let n = 10_000u64;
        t.insert(0, n, 0).unwrap();
        carve(&mut t, n);
        t.check().unwrap();
        assert!(fill(&t) >= 6.9, "{} ranges per leaf", fill(&t));
        // The same with a few ranges above (a process's stack and vDSO).
        let mut t: RegionTree<u64> = RegionTree::new();
        t.insert(0, n, 0).unwrap();
        for k in 0..3 {
            t.insert(n + 10 + 2 * k, n + 11 + 2 * k, 9).unwrap();
        }
        carve(&mut t, n);
        t.check().unwrap();
        assert!(fill(&t) >= 6.9, "{} ranges per leaf", fill(&t));
        // Holes punched in ascending order.
        let mut t: RegionTree<u64> = RegionTree::new();
        t.insert(0, 100_000, 0).unwrap();
        for i in 0..10_000u64 {
            let h = 10 * i + 3;
            let s = t.prev(h + 1).unwrap().0;
            let e = t.get(s).unwrap().1;
            t.split(s, h, 1).unwrap();
            if h + 2 < e {
                t.split(h, h + 2, 2).unwrap();
            }
            t.remove(h).unwrap();
        }
        t.check().unwrap();
        assert!(fill(&t) >= 6.9, "{} ranges per leaf", fill(&t));
    }

    #[test]
    fn random_updates_keep_leaves_half_full() {
        let mut t: RegionTree<u64> = RegionTree::new();
        let mut x = 12345u64;
        for step in 0..60_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let s = (x >> 20) % 1_000_000 * 16;
            if step < 30_000 || x & 1 == 0 {
                let _ = t.insert(s, s + 8, 0);
            } else if let Some((a, _, _)) = t.next(s) {
                t.remove(a);
            }
        }
        t.check().unwrap();
        assert!(fill(&t) >= 4.0, "{} ranges per leaf", fill(&t));
    }

    /// The position-based operations the engine uses, against a map.
    #[test]
    fn positions_against_a_map() {
        use alloc::collections::BTreeMap;
        let mut x = 99u64;
        let mut rnd = move || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            x >> 33
        };
        let mut t: RegionTree<u64> = RegionTree::new();
        let mut m: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
        for step in 0..30_000u64 {
            let a = rnd() % 3000;
            match rnd() % 8 {
                // insert_before / around_free, adjacent ranges often.
                0..=2 => {
                    let e = a + 1 + rnd() % 3;
                    let free = m
                        .range(..e)
                        .next_back()
                        .map_or(true, |(_, &(pe, _))| pe <= a);
                    let around = t.around_free(a, e);
                    assert_eq!(around.is_some(), free);
                    if let Some((below, above)) = around {
                        let want_below = m.range(..a).next_back().map(|(&s, _)| s);
                        let want_above = m.range(e..).next().map(|(&s, _)| s);
                        assert_eq!(below.map(|b| t.start_at(b)), want_below);
                        assert_eq!(above.map(|b| t.start_at(b)), want_above);
                        let at = t.insert_before(above, a, e, step).unwrap();
                        assert_eq!(t.entry_at(at), Some((a, e, &step)));
                        m.insert(a, (e, step));
                    }
                }
                // delete_at, with the successor's place.
                3 => {
                    if let Some((&s, _)) = m.range(a..).next() {
                        let at = t.find_at(s).unwrap();
                        let next = t.delete_at(at);
                        m.remove(&s);
                        let want = m.range(s..).next().map(|(&s, _)| s);
                        assert_eq!(next.map(|n| t.start_at(n)), want);
                    }
                }
                // absorb_next over 1 to 3 ranges.
                4 => {
                    let k = 1 + (rnd() % 3) as usize;
                    let run: Vec<_> = m.range(a..).take(k + 1).map(|(&s, &v)| (s, v)).collect();
                    if run.len() == k + 1 {
                        let (s, (_, v)) = run[0];
                        let e = run[k].1 .0;
                        let at = t.absorb_next(t.find_at(s).unwrap(), k);
                        assert_eq!(t.entry_at(at), Some((s, e, &v)));
                        for &(q, _) in &run[1..] {
                            m.remove(&q);
                        }
                        m.insert(s, (e, v));
                    }
                }
                // move_boundary between adjacent ranges.
                5 => {
                    let run: Vec<_> = m.range(a..).take(2).map(|(&s, &v)| (s, v)).collect();
                    if run.len() == 2 && run[0].1 .0 == run[1].0 {
                        let (s0, (_, v0)) = run[0];
                        let (_, (e1, v1)) = run[1];
                        if e1 - s0 >= 2 {
                            let b = s0 + 1 + rnd() % (e1 - s0 - 1);
                            t.move_boundary(t.find_at(s0).unwrap(), b);
                            m.remove(&run[1].0);
                            m.insert(s0, (b, v0));
                            m.insert(b, (e1, v1));
                        }
                    }
                }
                // split_at.
                6 => {
                    if let Some((&s, &(e, v))) = m.range(a..).next() {
                        if e - s >= 2 {
                            let at = s + 1 + rnd() % (e - s - 1);
                            let (lo, up) = t.split_at(t.find_at(s).unwrap(), at, step).unwrap();
                            assert_eq!(t.entry_at(lo), Some((s, at, &v)));
                            assert_eq!(t.entry_at(up), Some((at, e, &step)));
                            m.insert(s, (at, v));
                            m.insert(at, (e, step));
                        }
                    }
                }
                // set_bounds_at within the neighbours.
                _ => {
                    if let Some((&s, &(e, v))) = m.range(a..).next() {
                        let lo = m.range(..s).next_back().map_or(0, |(_, &(pe, _))| pe);
                        let hi = m.range(e..).next().map_or(u64::MAX, |(&ns, _)| ns);
                        let ns = lo + rnd() % (s - lo + 1);
                        let ne = (e + rnd() % 3).min(hi).max(ns + 1);
                        if ne <= hi {
                            t.set_bounds_at(t.find_at(s).unwrap(), ns, ne);
                            m.remove(&s);
                            m.insert(ns, (ne, v));
                        }
                    }
                }
            }
            if step % 97 == 0 {
                t.check().unwrap();
                let all: Vec<_> = t.iter().map(|(s, e, v)| (s, e, *v)).collect();
                let want: Vec<_> = m.iter().map(|(&s, &(e, v))| (s, e, v)).collect();
                assert_eq!(all, want);
                // Gap searches name the range above the gap found.
                let (low, high, size) = (rnd() % 3000, 1500 + rnd() % 3000, 1 + rnd() % 4);
                for (g, up) in [
                    (t.highest_gap_at(low, high, size), true),
                    (t.lowest_gap_at(low, high, size), false),
                ] {
                    let plain = if up {
                        t.highest_gap(low, high, size)
                    } else {
                        t.lowest_gap(low, high, size)
                    };
                    assert_eq!(g.map(|(s, e, _)| (s, e)), plain);
                    if let Some((gs, ge, above)) = g {
                        let want = t.find_at(if up { ge } else { gs });
                        assert_eq!(above, want);
                    }
                }
            }
        }
    }
}
