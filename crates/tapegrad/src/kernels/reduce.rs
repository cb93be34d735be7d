//! Reductions along axes.

use ndarray::{ArcArray, ArrayViewD, Axis, IxDyn};

use crate::dtype::Element;

/// Sum over `axes` (sorted, distinct); keeps them as size-1 axes when `keepdim`.
pub(crate) fn sum_axes<T: Element>(a: &ArrayViewD<'_, T>, axes: &[usize], keepdim: bool) -> ArcArray<T, IxDyn> {
    if axes.len() == a.ndim() && !keepdim {
        let s: T = match a.as_slice_memory_order() {
            Some(sl) => pairwise_sum(sl),
            None => a.iter().copied().sum(),
        };
        return ndarray::arr0(s).into_dyn().into_shared();
    }
    let mut out = a.to_owned();
    for &ax in axes.iter().rev() {
        out = out.sum_axis(Axis(ax));
        if keepdim {
            out.insert_axis_inplace(Axis(ax));
        }
    }
    out.into_shared()
}

/// Sum of a slice in blocks, which keeps f32 rounding error small on long inputs.
fn pairwise_sum<T: Element>(s: &[T]) -> T {
    const BLOCK: usize = 4096;
    if s.len() <= BLOCK {
        let mut acc = [T::zero(); 8];
        let chunks = s.chunks_exact(8);
        let rest = chunks.remainder();
        for c in chunks {
            for i in 0..8 {
                acc[i] += c[i];
            }
        }
        let mut total = acc.iter().copied().sum::<T>();
        for &x in rest {
            total += x;
        }
        total
    } else {
        let mid = s.len() / 2;
        pairwise_sum(&s[..mid]) + pairwise_sum(&s[mid..])
    }
}

/// Index of the largest (or smallest, if `!largest`) element of each lane along `axis`;
/// the first such index on ties, and the index of the first NaN if the lane has one.
pub(crate) fn arg_extreme<T: Element>(a: &ArrayViewD<'_, T>, axis: usize, largest: bool) -> ndarray::ArrayD<usize> {
    a.map_axis(Axis(axis), |lane| {
        let mut best = 0usize;
        let mut best_v = T::nan();
        for (i, &v) in lane.iter().enumerate() {
            if v.is_nan() {
                return i;
            }
            if i == 0 || (largest && v > best_v) || (!largest && v < best_v) {
                best = i;
                best_v = v;
            }
        }
        best
    })
}
