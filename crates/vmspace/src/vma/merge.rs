//! When may two regions become one? Linux's rules from `mm/vma.c`
//! (`is_mergeable_vma`, `is_mergeable_anon_vma`, `can_vma_merge_before/after`).
//!
//! Two adjacent regions merge when everything a page-table walk or a reverse
//! map could tell apart is the same: flags (but soft-dirty), file, name, file
//! offsets that continue one another, and anonymous-memory identities that
//! can be unified without losing a page. Special mappings never merge.

use super::{AnonVmaId, VmaAttrs};
use crate::flags::VmFlags;

/// `is_mergeable_anon_vma`: may regions with these `anon_vma`s share one?
/// A region without one can adopt the other's, unless the other was
/// inherited at fork (then only the very same `anon_vma` will do).
pub fn anon_compatible(
    a: Option<AnonVmaId>,
    a_inherited: bool,
    b: Option<AnonVmaId>,
    b_inherited: bool,
) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(_), None) => !a_inherited,
        (None, Some(_)) => !b_inherited,
        (Some(x), Some(y)) => x == y,
    }
}

/// Everything but bounds and offsets matches (`is_mergeable_vma`), and
/// neither side is a special mapping.
pub fn same_kind(a: &VmaAttrs, b: &VmaAttrs) -> bool {
    ((a.flags ^ b.flags) - VmFlags::IGNORE_MERGE).is_empty()
        && !a.flags.intersects(VmFlags::SPECIAL)
        && a.file == b.file
        && a.name == b.name
}

/// May `left` (covering `left_pages` pages) be followed seamlessly by
/// `right` in one region? Offsets must continue and `anon_vma`s unify.
///
/// ```
/// use vmspace::vma::{merge::can_merge, VmaAttrs};
/// use vmspace::VmFlags;
/// let a = VmaAttrs::anon(VmFlags::READ, 0x10);
/// let b = VmaAttrs::anon(VmFlags::READ, 0x12);
/// assert!(can_merge(&a, 2, &b));
/// assert!(!can_merge(&a, 1, &b));
/// ```
pub fn can_merge(left: &VmaAttrs, left_pages: u64, right: &VmaAttrs) -> bool {
    same_kind(left, right)
        && left.pgoff.wrapping_add(left_pages) == right.pgoff
        && anon_compatible(
            left.anon_vma,
            left.anon_inherited,
            right.anon_vma,
            right.anon_inherited,
        )
}

/// The attributes of the union of two mergeable regions: the left one's,
/// with the `anon_vma` of whichever side has one (`dup_anon_vma`).
pub fn merged_attrs(left: &VmaAttrs, right: &VmaAttrs) -> VmaAttrs {
    let mut m = *left;
    if m.anon_vma.is_none() {
        m.anon_vma = right.anon_vma;
        m.anon_inherited = right.anon_inherited;
    }
    m
}
