//! Indexing kernels: gather / scatter-add along an axis, index-add, and the strided
//! placement that is the gradient of a slice.

use ndarray::{ArcArray, ArrayD, ArrayViewD, Axis, IxDyn, Slice, Zip};

use crate::dtype::Element;

/// `out[p] = a[p with axis replaced by index[p]]`; `out` has `index`'s shape.
pub(crate) fn gather<T: Clone>(
    a: &ArrayViewD<'_, T>,
    axis: usize,
    index: &ArrayViewD<'_, usize>,
) -> ArcArray<T, IxDyn> {
    let mut pos = vec![0usize; a.ndim()];
    ArrayD::from_shape_fn(IxDyn(index.shape()), |p| {
        for (d, slot) in pos.iter_mut().enumerate() {
            *slot = p[d];
        }
        pos[axis] = index[&p];
        a[IxDyn(&pos)].clone()
    })
    .into_shared()
}

/// `out = base; out[p with axis replaced by index[p]] += src[p]` for every `p` of `index`.
pub(crate) fn scatter_add<T: Element>(
    base: &ArrayViewD<'_, T>,
    axis: usize,
    index: &ArrayViewD<'_, usize>,
    src: &ArrayViewD<'_, T>,
) -> ArcArray<T, IxDyn> {
    scatter_with(base, axis, index, src, |out, s| *out += *s)
}

/// Zeros of `shape`, then `out.index_axis(axis, index[k]) += src.index_axis(axis, k)`.
pub(crate) fn index_add_zeros<T: Element>(
    shape: &[usize],
    axis: usize,
    index: &[usize],
    src: &ArrayViewD<'_, T>,
) -> ArcArray<T, IxDyn> {
    let mut out = ArrayD::<T>::zeros(IxDyn(shape));
    for (k, &i) in index.iter().enumerate() {
        let mut dst = out.index_axis_mut(Axis(axis), i);
        dst += &src.index_axis(Axis(axis), k);
    }
    out.into_shared()
}

/// Zeros of `shape`, with `src` written at positions `start, start+step, ...` along `axis`.
pub(crate) fn unslice<T: Element>(
    src: &ArrayViewD<'_, T>,
    shape: &[usize],
    axis: usize,
    start: usize,
    step: usize,
) -> ArcArray<T, IxDyn> {
    let mut out = ArrayD::<T>::zeros(IxDyn(shape));
    let end = start + (src.shape()[axis].saturating_sub(1)) * step + 1;
    out.slice_axis_mut(
        Axis(axis),
        Slice::new(start as isize, Some(end as isize), step as isize),
    )
    .assign(src);
    out.into_shared()
}

/// `out = base; out[p with axis replaced by index[p]] = src[p]` for every `p` of `index`
/// (in row-major order of `index`: a repeated index keeps the last write).
pub(crate) fn scatter<T: Clone>(
    base: &ArrayViewD<'_, T>,
    axis: usize,
    index: &ArrayViewD<'_, usize>,
    src: &ArrayViewD<'_, T>,
) -> ArcArray<T, IxDyn> {
    scatter_with(base, axis, index, src, |out, s| *out = s.clone())
}

/// `out = base`, then `write(out[p with axis replaced by index[p]], src[p])` for every `p`
/// of `index`, in row-major order: the walk `scatter` and `scatter_add` share.
fn scatter_with<T: Clone>(
    base: &ArrayViewD<'_, T>,
    axis: usize,
    index: &ArrayViewD<'_, usize>,
    src: &ArrayViewD<'_, T>,
    write: impl Fn(&mut T, &T),
) -> ArcArray<T, IxDyn> {
    let mut out = base.to_owned();
    let mut pos = vec![0usize; base.ndim()];
    for (p, &i) in index.indexed_iter() {
        for (d, slot) in pos.iter_mut().enumerate() {
            *slot = p[d];
        }
        pos[axis] = i;
        write(&mut out[IxDyn(&pos)], &src[&p]);
    }
    out.into_shared()
}

/// `out = base`, then `out.index_axis(axis, index[k]) += src.index_axis(axis, k)`.
pub(crate) fn index_add<T: Element>(
    base: &ArrayViewD<'_, T>,
    axis: usize,
    index: &[usize],
    src: &ArrayViewD<'_, T>,
) -> ArcArray<T, IxDyn> {
    let mut out = base.to_owned();
    for (k, &i) in index.iter().enumerate() {
        let mut dst = out.index_axis_mut(Axis(axis), i);
        dst += &src.index_axis(Axis(axis), k);
    }
    out.into_shared()
}

/// For each lane along `axis`, the positions that sort it (a stable sort; NaN, the one
/// value not equal to itself, above every number).
pub(crate) fn argsort<T: PartialOrd + Copy>(
    a: &ArrayViewD<'_, T>,
    axis: usize,
    descending: bool,
) -> ArrayD<usize> {
    let order = |x: T, y: T| match x.partial_cmp(&y) {
        Some(o) => o,
        #[allow(clippy::eq_op)]
        None => (x != x).cmp(&(y != y)),
    };
    let mut out = ArrayD::<usize>::zeros(a.raw_dim());
    let mut perm: Vec<usize> = Vec::with_capacity(a.shape()[axis]);
    Zip::from(out.lanes_mut(Axis(axis)))
        .and(a.lanes(Axis(axis)))
        .for_each(|mut dst, lane| {
            perm.clear();
            perm.extend(0..lane.len());
            if descending {
                perm.sort_by(|&i, &j| order(lane[j], lane[i]));
            } else {
                perm.sort_by(|&i, &j| order(lane[i], lane[j]));
            }
            for (d, &p) in dst.iter_mut().zip(&perm) {
                *d = p;
            }
        });
    out
}
