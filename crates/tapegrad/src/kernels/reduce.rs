//! Reductions along axes.

use ndarray::{ArcArray, ArrayD, ArrayViewD, Axis, IxDyn};

use super::fused::{self, Values};
use super::PAR_THRESHOLD;

use crate::dtype::Element;

/// [`sum_axes`] of values that may be deferred: the full sum of a deferred elementwise
/// chain is reduced without storing the chain (`fused::sum`).
pub(crate) fn sum_values<T: Element>(
    v: &Values<T>,
    axes: &[usize],
    keepdim: bool,
) -> ArcArray<T, IxDyn> {
    let rank = v.shape().len();
    if axes.len() == rank {
        return total_as_array(fused::sum(v), rank, keepdim);
    }
    sum_axes(&v.force().view(), axes, keepdim)
}

/// Sum of all elements: pairwise over contiguous memory.
pub(crate) fn sum_all<T: Element>(a: &ArrayViewD<'_, T>) -> T {
    match a.as_slice_memory_order() {
        Some(sl) => pairwise_sum(sl),
        None => a.iter().copied().sum(),
    }
}

/// A full sum as the result of a reduction over all `rank` axes.
fn total_as_array<T: Element>(s: T, rank: usize, keepdim: bool) -> ArcArray<T, IxDyn> {
    let out = ndarray::arr0(s).into_dyn();
    if keepdim {
        out.into_shape_with_order(IxDyn(&vec![1; rank]))
            .expect("one element")
    } else {
        out
    }
    .into_shared()
}

/// Sum over `axes` (sorted, distinct); keeps them as size-1 axes when `keepdim`.
pub(crate) fn sum_axes<T: Element>(
    a: &ArrayViewD<'_, T>,
    axes: &[usize],
    keepdim: bool,
) -> ArcArray<T, IxDyn> {
    if axes.len() == a.ndim() {
        return total_as_array(sum_all(a), a.ndim(), keepdim);
    }
    // Reduce the last listed axis straight from the view (no copy), then the others.
    let mut out: Option<ArrayD<T>> = None;
    for &ax in axes.iter().rev() {
        let mut next = match &out {
            None => a.sum_axis(Axis(ax)),
            Some(o) => o.sum_axis(Axis(ax)),
        };
        if keepdim {
            next.insert_axis_inplace(Axis(ax));
        }
        out = Some(next);
    }
    out.unwrap_or_else(|| a.to_owned()).into_shared()
}

/// Sum of a slice: blocks of [`SUM_BLOCK`] summed with 32 independent accumulators
/// (which vectorise and hide the add latency), blocks combined pairwise (which keeps the
/// f32 rounding error growing with the log of the length), halves in parallel when large.
pub(crate) fn pairwise_sum<T: Element>(s: &[T]) -> T {
    pairwise_by(s.len(), &|off, n| block_sum(&s[off..off + n]))
}

/// The pairwise combination of [`pairwise_sum`] over `0..len`, with `leaf(off, n)` giving
/// the sum of the `n <= SUM_BLOCK` elements from `off` (the fused sum evaluates them there).
pub(crate) fn pairwise_by<T: Element>(len: usize, leaf: &(dyn Fn(usize, usize) -> T + Sync)) -> T {
    fn go<T: Element>(off: usize, len: usize, leaf: &(dyn Fn(usize, usize) -> T + Sync)) -> T {
        if len <= SUM_BLOCK {
            return leaf(off, len);
        }
        let mid = (len / 2).next_multiple_of(SUM_BLOCK).min(len);
        if len >= PAR_THRESHOLD {
            let (a, b) = rayon::join(|| go(off, mid, leaf), || go(off + mid, len - mid, leaf));
            a + b
        } else {
            go(off, mid, leaf) + go(off + mid, len - mid, leaf)
        }
    }
    go(0, len, leaf)
}

/// Elements summed by one leaf of [`pairwise_sum`].
pub(crate) const SUM_BLOCK: usize = 4096;
const LANES: usize = 32;

/// Sum of at most [`SUM_BLOCK`] elements with [`LANES`] accumulators, combined pairwise.
pub(crate) fn block_sum<T: Element>(s: &[T]) -> T {
    let mut acc = [T::zero(); LANES];
    let chunks = s.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            acc[i] += c[i];
        }
    }
    // Combine the lanes pairwise too.
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            acc[i] += acc[i + width];
        }
    }
    let mut total = acc[0];
    for &x in rest {
        total += x;
    }
    total
}

/// Index of the largest (or smallest, if `!largest`) element of each lane along `axis`;
/// the first such index on ties, and the index of the first NaN if the lane has one.
pub(crate) fn arg_extreme<T: Element>(
    a: &ArrayViewD<'_, T>,
    axis: usize,
    largest: bool,
) -> ndarray::ArrayD<usize> {
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

/// [`arg_extreme`] for integers (no NaN): the index of the first largest (or smallest)
/// element of each lane along `axis`.
pub(crate) fn arg_extreme_int(
    a: &ArrayViewD<'_, i64>,
    axis: usize,
    largest: bool,
) -> ndarray::ArrayD<usize> {
    a.map_axis(Axis(axis), |lane| {
        let mut best = 0usize;
        for (i, &v) in lane.iter().enumerate() {
            if (largest && v > lane[best]) || (!largest && v < lane[best]) {
                best = i;
            }
        }
        best
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_sum_is_exact_on_integers_and_accurate_on_long_f32() {
        // Integers below 2^24 add exactly in f32, whatever the order.
        for n in [
            0usize,
            1,
            31,
            32,
            33,
            4095,
            4096,
            4097,
            100_003,
            PAR_THRESHOLD * 4 + 7,
        ] {
            let v: Vec<f32> = (0..n).map(|i| (i % 7) as f32).collect();
            let want: u64 = (0..n as u64).map(|i| i % 7).sum();
            assert_eq!(pairwise_sum(&v) as u64, want, "n = {n}");
        }
        // 4M values of 0.1: a naive running f32 sum is off by about 10%; pairwise is close.
        let v = vec![0.1f32; 4_000_000];
        let s = pairwise_sum(&v) as f64;
        assert!((s - 400_000.0).abs() / 400_000.0 < 1e-5, "{s}");
    }

    #[test]
    fn sum_over_some_axes_with_and_without_keepdim() {
        let a = ArrayD::from_shape_fn(IxDyn(&[2, 3, 4]), |i| {
            (i[0] * 100 + i[1] * 10 + i[2]) as f64
        });
        let s = sum_axes(&a.view(), &[0, 2], false);
        assert_eq!(s.shape(), &[3]);
        assert_eq!(
            s.iter().copied().collect::<Vec<_>>(),
            vec![412.0, 492.0, 572.0]
        );
        let k = sum_axes(&a.view(), &[1], true);
        assert_eq!(k.shape(), &[2, 1, 4]);
        assert_eq!(k[[1, 0, 3]], 3.0 * 103.0 + 30.0);
        let all = sum_axes(&a.view(), &[0, 1, 2], true);
        assert_eq!(all.shape(), &[1, 1, 1]);
        assert_eq!(all[[0, 0, 0]], a.sum());
        let t = a.t();
        assert_eq!(sum_axes(&t.view(), &[0, 1, 2], false)[[]], a.sum());
    }
}
