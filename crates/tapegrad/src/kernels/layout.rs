//! Layout kernels: triangle masks, diagonal extraction and placement, flips, and the
//! taps of a 1-D resampling along one axis (interpolation) with its transpose.

use ndarray::{ArcArray, ArrayD, ArrayViewD, Axis, IxDyn};

use crate::dtype::Element;

/// A copy of `a` with the elements of each matrix (last two axes) outside the band kept
/// set to zero: `lower` keeps `j - i <= k` (`tril`), otherwise `j - i >= k` (`triu`).
pub(crate) fn triangle<T: Element>(
    a: &ArrayViewD<'_, T>,
    k: isize,
    lower: bool,
) -> ArcArray<T, IxDyn> {
    let r = a.ndim();
    let (rows, cols) = (a.shape()[r - 2], a.shape()[r - 1]);
    let mut out = a.as_standard_layout().into_owned();
    if let Some(s) = out.as_slice_mut() {
        for (idx, v) in s.iter_mut().enumerate() {
            let (i, j) = ((idx / cols.max(1)) % rows.max(1), idx % cols.max(1));
            let d = j as isize - i as isize;
            if (lower && d > k) || (!lower && d < k) {
                *v = T::zero();
            }
        }
    }
    out.into_shared()
}

/// The start `(row, col)` and length of diagonal `offset` of an `n1 x n2` matrix.
pub(crate) fn diagonal_span(n1: usize, n2: usize, offset: isize) -> (usize, usize, usize) {
    let (r0, c0) = if offset >= 0 {
        (0, offset as usize)
    } else {
        ((-offset) as usize, 0)
    };
    let len = n1.saturating_sub(r0).min(n2.saturating_sub(c0));
    (r0, c0, len)
}

/// The axes of `rank` with `d1`, `d2` moved last (in that order), the others first in
/// their order.
pub(crate) fn diagonal_perm(rank: usize, d1: usize, d2: usize) -> Vec<usize> {
    let mut perm: Vec<usize> = (0..rank).filter(|&d| d != d1 && d != d2).collect();
    perm.push(d1);
    perm.push(d2);
    perm
}

/// Diagonal `offset` of the matrices spanned by axes `d1`, `d2`: those axes are removed
/// and the diagonal is appended as the last axis (PyTorch's `diagonal`).
pub(crate) fn diagonal<T: Element>(
    a: &ArrayViewD<'_, T>,
    offset: isize,
    d1: usize,
    d2: usize,
) -> ArcArray<T, IxDyn> {
    let perm = diagonal_perm(a.ndim(), d1, d2);
    let p = a.view().permuted_axes(perm);
    let (n1, n2) = (a.shape()[d1], a.shape()[d2]);
    let (r0, c0, len) = diagonal_span(n1, n2, offset);
    let outer: Vec<usize> = p.shape()[..p.ndim() - 2].to_vec();
    let mut shape = outer.clone();
    shape.push(len);
    let p = p.as_standard_layout();
    let src = p.as_slice().expect("standard layout");
    let count: usize = outer.iter().product();
    let mut out = Vec::with_capacity(count * len);
    for o in 0..count {
        let base = o * n1 * n2;
        out.extend((0..len).map(|l| src[base + (l + r0) * n2 + (l + c0)]));
    }
    ArrayD::from_shape_vec(IxDyn(&shape), out)
        .expect("diagonal shape")
        .into_shared()
}

/// Zeros of `full` with `g` (shaped like `diagonal(zeros(full), offset, d1, d2)`) placed
/// on that diagonal: the transpose of [`diagonal`].
pub(crate) fn diagonal_place<T: Element>(
    g: &ArrayViewD<'_, T>,
    full: &[usize],
    offset: isize,
    d1: usize,
    d2: usize,
) -> ArcArray<T, IxDyn> {
    let perm = diagonal_perm(full.len(), d1, d2);
    let (n1, n2) = (full[d1], full[d2]);
    let (r0, c0, len) = diagonal_span(n1, n2, offset);
    let permuted: Vec<usize> = perm.iter().map(|&d| full[d]).collect();
    let count: usize = permuted[..permuted.len() - 2].iter().product();
    let g = g.as_standard_layout();
    let src = g.as_slice().expect("standard layout");
    let mut out = vec![T::zero(); count * n1 * n2];
    for o in 0..count {
        let base = o * n1 * n2;
        for l in 0..len {
            out[base + (l + r0) * n2 + (l + c0)] = src[o * len + l];
        }
    }
    let mut inverse = vec![0usize; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inverse[p] = i;
    }
    ArrayD::from_shape_vec(IxDyn(&permuted), out)
        .expect("diagonal_place shape")
        .permuted_axes(inverse)
        .as_standard_layout()
        .into_owned()
        .into_shared()
}

/// A row-major copy of `a` reversed along each of `axes`.
pub(crate) fn flip<T: Element>(a: &ArrayViewD<'_, T>, axes: &[usize]) -> ArcArray<T, IxDyn> {
    let mut v = a.view();
    for &ax in axes {
        v.invert_axis(Axis(ax));
    }
    v.as_standard_layout().into_owned().into_shared()
}

/// One output position of a resampling: the input positions it reads and their weights.
pub(crate) type Taps = Vec<(usize, f64)>;

/// `out[.., j, ..] = sum over (i, w) in taps[j] of w * a[.., i, ..]` along `axis`.
pub(crate) fn resample<T: Element>(
    a: &ArrayViewD<'_, T>,
    axis: usize,
    taps: &[Taps],
) -> ArcArray<T, IxDyn> {
    let mut shape = a.shape().to_vec();
    shape[axis] = taps.len();
    let mut out = ArrayD::<T>::zeros(IxDyn(&shape));
    for (j, t) in taps.iter().enumerate() {
        let mut dst = out.index_axis_mut(Axis(axis), j);
        for &(i, w) in t {
            let w = T::of(w);
            dst.zip_mut_with(&a.index_axis(Axis(axis), i), |d, &s| *d += w * s);
        }
    }
    out.into_shared()
}

/// The transpose of [`resample`]: `out[.., i, ..] += w * g[.., j, ..]` for every tap
/// `(i, w)` of output position `j`; `out` has `size` positions along `axis`.
pub(crate) fn resample_transpose<T: Element>(
    g: &ArrayViewD<'_, T>,
    axis: usize,
    taps: &[Taps],
    size: usize,
) -> ArcArray<T, IxDyn> {
    let mut shape = g.shape().to_vec();
    shape[axis] = size;
    let mut out = ArrayD::<T>::zeros(IxDyn(&shape));
    for (j, t) in taps.iter().enumerate() {
        let src = g.index_axis(Axis(axis), j);
        for &(i, w) in t {
            let w = T::of(w);
            out.index_axis_mut(Axis(axis), i)
                .zip_mut_with(&src, |d, &s| *d += w * s);
        }
    }
    out.into_shared()
}
