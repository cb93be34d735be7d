//! Shapes, axis normalisation and the NumPy/PyTorch broadcasting rule.

use smallvec::SmallVec;

/// A tensor shape: inline for up to four dimensions, as almost every shape is.
pub type Shape = SmallVec<[usize; 4]>;

/// Builds a [`Shape`] from a slice.
pub fn shape_of(dims: &[usize]) -> Shape {
    Shape::from_slice(dims)
}

/// Number of elements of a shape (1 for a scalar).
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// The shape two shapes broadcast to, or `None` if they are incompatible.
///
/// Shapes are aligned at their last axis; a pair of sizes is compatible when they are
/// equal or one of them is 1.
///
/// ```
/// use tapegrad::shape::broadcast_shapes;
/// assert_eq!(broadcast_shapes(&[3, 1], &[4]).unwrap().as_slice(), &[3, 4]);
/// assert!(broadcast_shapes(&[3], &[4]).is_none());
/// ```
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Option<Shape> {
    let rank = a.len().max(b.len());
    let mut out = Shape::with_capacity(rank);
    for i in 0..rank {
        let da = if i + a.len() >= rank {
            a[i + a.len() - rank]
        } else {
            1
        };
        let db = if i + b.len() >= rank {
            b[i + b.len() - rank]
        } else {
            1
        };
        out.push(match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        });
    }
    Some(out)
}

/// Resolves a possibly negative axis against a rank, or panics naming the op.
#[track_caller]
pub(crate) fn norm_axis(op: &str, axis: isize, rank: usize) -> usize {
    let r = rank as isize;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r.max(1) || (rank == 0 && a != 0) {
        panic!(
            "{op}: axis {axis} is out of range for a tensor of rank {rank} (valid: {} ..= {})",
            -r.max(1),
            r.max(1) - 1
        );
    }
    a as usize
}

/// Resolves an axis for inserting a new dimension (`unsqueeze`, `stack`): valid range is
/// `-(rank+1) ..= rank`.
#[track_caller]
pub(crate) fn norm_insert_axis(op: &str, axis: isize, rank: usize) -> usize {
    let r = rank as isize + 1;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r {
        panic!("{op}: axis {axis} is out of range for inserting into a tensor of rank {rank} (valid: {} ..= {})", -r, r - 1);
    }
    a as usize
}

/// Resolves a list of axes (an empty list means all axes), sorted and without duplicates.
#[track_caller]
pub(crate) fn norm_axes(op: &str, axes: &[isize], rank: usize) -> SmallVec<[usize; 4]> {
    if axes.is_empty() {
        return (0..rank).collect();
    }
    if rank == 0 {
        // A 0-d tensor accepts axis 0 or -1 (as PyTorch does) and has nothing to reduce.
        if let Some(bad) = axes.iter().find(|&&a| a != 0 && a != -1) {
            panic!("{op}: axis {bad} is out of range for a tensor of rank 0 (valid: -1 ..= 0)");
        }
        return SmallVec::new();
    }
    let mut out: SmallVec<[usize; 4]> = SmallVec::new();
    for &a in axes {
        let n = norm_axis(op, a, rank);
        if out.contains(&n) {
            panic!("{op}: axis {a} appears more than once in {axes:?}");
        }
        out.push(n);
    }
    out.sort_unstable();
    out
}
