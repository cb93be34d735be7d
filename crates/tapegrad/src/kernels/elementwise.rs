//! Elementwise kernels: unary maps, broadcasting binary zips, the vectorised `exp`, the
//! materialisation of a broadcast, and in-place accumulation.
//!
//! Contiguous (row-major) operands take a fast path over plain slices: the output is
//! allocated once, uninitialised, and filled in chunks of [`CHUNK`] elements, in
//! parallel with rayon from [`PAR_THRESHOLD`] elements on. The slice loops are simple
//! enough for LLVM to vectorise. Strided or broadcast operands go through `ndarray::Zip`.

use std::mem::MaybeUninit;
use std::sync::Arc;

use ndarray::{ArcArray, ArrayViewD, ArrayViewMutD, Dimension, IxDyn, Zip};
use rayon::prelude::*;

use super::fused::{is_fusion_enabled, MapFn, Values, ZipFn, COSTLY, LAZY_MIN};
use super::PAR_THRESHOLD;
use super::{buffers, simd};
use crate::dtype::Element;
use crate::shape::broadcast_shapes;

/// Elements per parallel task: 256 KiB of `f32`, large enough to amortise a rayon task
/// and small enough to balance two to a few dozen threads (see `docs/benchmarks.md`).
pub(crate) const CHUNK: usize = 1 << 16;

/// A vector of `n` elements filled by `fill(offset, chunk)` over disjoint chunks (in
/// parallel when large). `fill` must write every element of its chunk.
/// Large buffers come from the [`buffers`] cache of recently freed ones.
pub(crate) fn build_vec<T: Send + 'static>(
    n: usize,
    fill: impl Fn(usize, &mut [MaybeUninit<T>]) + Sync,
) -> Vec<T> {
    let mut v = buffers::take(n);
    for_chunks(&mut v.spare_capacity_mut()[..n], &fill);
    // SAFETY: `fill` initialised every element of the `n` spare slots.
    unsafe { v.set_len(n) };
    v
}

fn with_shape<T>(shape: &[usize], v: Vec<T>) -> ArcArray<T, IxDyn> {
    with_dim(IxDyn(shape), v)
}

/// A row-major array of shape `dim` over `v`, which holds exactly one element per position.
fn with_dim<T>(dim: IxDyn, v: Vec<T>) -> ArcArray<T, IxDyn> {
    assert_eq!(
        dim.size(),
        v.len(),
        "kernel produced one element per position"
    );
    // SAFETY: the length matches the shape (checked above) and default strides are valid.
    unsafe { ArcArray::from_shape_vec_unchecked(dim, v) }
}

/// `f` applied to every element, in parallel for large arrays.
pub(crate) fn map_view<T: Element>(
    a: &ArrayViewD<'_, T>,
    f: impl Fn(T) -> T + Sync + Send,
) -> ArcArray<T, IxDyn> {
    if let Some(src) = a.as_slice() {
        let v = build_vec(src.len(), |off, dst| {
            for (d, &x) in dst.iter_mut().zip(&src[off..]) {
                d.write(f(x));
            }
        });
        return with_dim(a.raw_dim(), v);
    }
    if a.len() >= PAR_THRESHOLD {
        Zip::from(a).par_map_collect(|&x| f(x)).into_shared()
    } else {
        a.map(|&x| f(x)).into_shared()
    }
}

/// `f(a, b)` elementwise over the broadcast of `a` and `b` (shapes checked by the caller).
pub(crate) fn zip_view<T: Element>(
    a: &ArrayViewD<'_, T>,
    b: &ArrayViewD<'_, T>,
    f: impl Fn(T, T) -> T + Sync + Send,
) -> ArcArray<T, IxDyn> {
    if a.shape() == b.shape() {
        return zip_same(a, b, f);
    }
    let shape = broadcast_shapes(a.shape(), b.shape()).expect("shapes checked by the op");
    // One operand is a single element: a map with a constant, over the other's slice.
    if b.len() == 1 && a.shape() == shape.as_slice() {
        let c = *b.iter().next().expect("one element");
        return map_view(a, move |x| f(x, c));
    }
    if a.len() == 1 && b.shape() == shape.as_slice() {
        let c = *a.iter().next().expect("one element");
        return map_view(b, move |y| f(c, y));
    }
    let av = a.broadcast(IxDyn(&shape)).expect("broadcastable");
    let bv = b.broadcast(IxDyn(&shape)).expect("broadcastable");
    zip_same(&av, &bv, f)
}

fn zip_same<T: Element>(
    a: &ArrayViewD<'_, T>,
    b: &ArrayViewD<'_, T>,
    f: impl Fn(T, T) -> T + Sync + Send,
) -> ArcArray<T, IxDyn> {
    if let (Some(x), Some(y)) = (a.as_slice(), b.as_slice()) {
        let v = build_vec(x.len(), |off, dst| {
            for ((d, &p), &q) in dst.iter_mut().zip(&x[off..]).zip(&y[off..]) {
                d.write(f(p, q));
            }
        });
        return with_dim(a.raw_dim(), v);
    }
    if a.len() >= PAR_THRESHOLD {
        Zip::from(a)
            .and(b)
            .par_map_collect(|&x, &y| f(x, y))
            .into_shared()
    } else {
        Zip::from(a)
            .and(b)
            .map_collect(|&x, &y| f(x, y))
            .into_shared()
    }
}

// ------------------------------------------------------------------ ops' entry points
//
// Ops call these with their operands' values; large operands defer into a fused
// expression (see `fused`), small ones are computed at once by the `_view` kernels above.

fn map_block<T: Element>(f: impl Fn(T) -> T + Send + Sync + 'static) -> Arc<MapFn<T>> {
    Arc::new(move |src, dst| {
        for (d, &x) in dst.iter_mut().zip(src) {
            d.write(f(x));
        }
    })
}

fn zip_block<T: Element>(f: impl Fn(T, T) -> T + Send + Sync + 'static) -> Arc<ZipFn<T>> {
    Arc::new(move |a, b, dst| {
        for ((d, &x), &y) in dst.iter_mut().zip(a).zip(b) {
            d.write(f(x, y));
        }
    })
}

/// What an elementwise function costs, for fusion: whether a deferred chain holding it
/// is cheaper to recompute in backward than to store (see `fused`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cost {
    /// Arithmetic and the vectorised `exp`: recomputing beats a pass over memory.
    Cheap,
    /// Transcendental functions (`tanh`, `log`, `sin`, `powf`, ...): computed when saved.
    Costly,
}

impl Cost {
    /// The node weight of a function of this cost in a fused tree.
    pub(crate) fn weight(self) -> u32 {
        match self {
            Cost::Cheap => 1,
            Cost::Costly => COSTLY,
        }
    }
}

/// `f` over every element: cheap arithmetic, deferred for large arrays.
pub(crate) fn map<T: Element>(
    a: Values<T>,
    f: impl Fn(T) -> T + Send + Sync + 'static,
) -> Values<T> {
    map_weighted(a, 1, f)
}

/// [`map`] for a function of the given cost class (a [`Costly`](Cost::Costly) one is
/// still fused into a chain, but computed when saved for backward).
pub(crate) fn map_cost<T: Element>(
    a: Values<T>,
    cost: Cost,
    f: impl Fn(T) -> T + Send + Sync + 'static,
) -> Values<T> {
    map_weighted(a, cost.weight(), f)
}

fn map_weighted<T: Element>(
    a: Values<T>,
    weight: u32,
    f: impl Fn(T) -> T + Send + Sync + 'static,
) -> Values<T> {
    if let Some(c) = a.constant() {
        return Values::fill(IxDyn(a.shape()), f(c));
    }
    if a.can_defer() {
        return a.map(weight, map_block(f));
    }
    Values::Ready(map_view(&a.force().view(), f))
}

/// `f(x, c)` for every element `x`, with the scalar `c` converted to the element type.
pub(crate) fn map_c<T: Element>(
    a: Values<T>,
    c: f64,
    f: impl Fn(T, T) -> T + Send + Sync + 'static,
) -> Values<T> {
    let c = T::of(c);
    map(a, move |x| f(x, c))
}

/// [`map_c`] for a function that costs more to recompute than to store (`powf`).
pub(crate) fn map_c_costly<T: Element>(
    a: Values<T>,
    c: f64,
    f: impl Fn(T, T) -> T + Send + Sync + 'static,
) -> Values<T> {
    let c = T::of(c);
    map_cost(a, Cost::Costly, move |x| f(x, c))
}

/// `f(x, c1, c2)` for every element `x`, with two scalars converted to the element type.
pub(crate) fn map_c2<T: Element>(
    a: Values<T>,
    c1: f64,
    c2: f64,
    f: impl Fn(T, T, T) -> T + Send + Sync + 'static,
) -> Values<T> {
    let (c1, c2) = (T::of(c1), T::of(c2));
    map(a, move |x| f(x, c1, c2))
}

/// `f(a, b)` over the broadcast of `a` and `b` (shapes checked by the op): deferred when
/// both are large and of one shape, or one is a single element (a constant of the map).
pub(crate) fn zip<T: Element>(
    a: Values<T>,
    b: Values<T>,
    f: impl Fn(T, T) -> T + Send + Sync + 'static,
) -> Values<T> {
    zip_weighted(a, b, 1, f)
}

/// [`zip`] for a function that costs more to recompute than to store (`powf`).
pub(crate) fn zip_costly<T: Element>(
    a: Values<T>,
    b: Values<T>,
    f: impl Fn(T, T) -> T + Send + Sync + 'static,
) -> Values<T> {
    zip_weighted(a, b, COSTLY, f)
}

fn zip_weighted<T: Element>(
    a: Values<T>,
    b: Values<T>,
    weight: u32,
    f: impl Fn(T, T) -> T + Send + Sync + 'static,
) -> Values<T> {
    if a.shape() == b.shape() {
        match (a.constant(), b.constant()) {
            (Some(x), Some(y)) => return Values::fill(IxDyn(a.shape()), f(x, y)),
            (Some(x), None) => return map_weighted(b, weight, move |y| f(x, y)),
            (None, Some(y)) => return map_weighted(a, weight, move |x| f(x, y)),
            (None, None) => {}
        }
        if a.can_defer() && b.can_defer() {
            return a.zip(b, weight, zip_block(f));
        }
    } else {
        let shape = broadcast_shapes(a.shape(), b.shape()).expect("shapes checked by the op");
        if b.len() == 1 && a.shape() == shape.as_slice() && a.can_defer() {
            let c = first(&b);
            return map_weighted(a, weight, move |x| f(x, c));
        }
        if a.len() == 1 && b.shape() == shape.as_slice() && b.can_defer() {
            let c = first(&a);
            return map_weighted(b, weight, move |y| f(c, y));
        }
    }
    Values::Ready(zip_view(&a.force().view(), &b.force().view(), f))
}

fn first<T: Element>(v: &Values<T>) -> T {
    *v.force().iter().next().expect("one element")
}

/// `e^x` elementwise (see [`exp_view`]), deferred for large arrays.
pub(crate) fn exp<T: VecExp>(a: Values<T>) -> Values<T> {
    if let Some(c) = a.constant() {
        let mut e = [std::mem::MaybeUninit::uninit()];
        T::exp_slice(&[c], &mut e);
        // SAFETY: `exp_slice` wrote the one element.
        return Values::fill(IxDyn(a.shape()), unsafe { e[0].assume_init() });
    }
    if a.can_defer() {
        return a.map(1, Arc::new(|src, dst| T::exp_slice(src, dst)));
    }
    Values::Ready(exp_view(&a.force().view()))
}

/// `a` broadcast to `shape`: a deferred fill when `a` is one element and `shape` is
/// large (the gradient of `sum`), else materialised by [`broadcast_view`].
pub(crate) fn broadcast<T: Element>(a: Values<T>, shape: &[usize]) -> Values<T> {
    if a.len() == 1 && shape.iter().product::<usize>() >= LAZY_MIN && is_fusion_enabled() {
        return Values::fill(IxDyn(shape), first(&a));
    }
    Values::Ready(broadcast_view(&a.force().view(), shape))
}

/// Runs `f(offset, chunk)` over disjoint pieces of `a`, in parallel when `a` is large.
pub(crate) fn for_chunks<T: Send>(a: &mut [T], f: &(dyn Fn(usize, &mut [T]) + Sync)) {
    if a.len() >= PAR_THRESHOLD {
        a.par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(i, c)| f(i * CHUNK, c));
    } else {
        f(0, a);
    }
}

/// Element types with a vectorised `exp`: `f32` uses the SIMD kernel of
/// [`simd`](super::simd); `f64` uses the standard library's.
pub(crate) trait VecExp: Element {
    /// `dst[i] = e^src[i]`.
    fn exp_slice(src: &[Self], dst: &mut [MaybeUninit<Self>]);
}

impl VecExp for f32 {
    fn exp_slice(src: &[f32], dst: &mut [MaybeUninit<f32>]) {
        simd::exp_f32_slice(src, dst)
    }
}

impl VecExp for f64 {
    fn exp_slice(src: &[f64], dst: &mut [MaybeUninit<f64>]) {
        for (d, &x) in dst.iter_mut().zip(src) {
            d.write(x.exp());
        }
    }
}

/// `e^x` elementwise: same values as `x.exp()` for `f64`, within 2 ulps of it for `f32`
/// (identical infinities, zeros and NaNs).
pub(crate) fn exp_view<T: VecExp>(a: &ArrayViewD<'_, T>) -> ArcArray<T, IxDyn> {
    match a.as_slice() {
        Some(src) => {
            let v = build_vec(src.len(), |off, dst| {
                let n = dst.len();
                T::exp_slice(&src[off..off + n], dst)
            });
            with_shape(a.shape(), v)
        }
        None => exp_view(&a.as_standard_layout().view()),
    }
}

/// `a` broadcast to `shape` and materialised in row-major order (a fill when `a` has one
/// element). The caller has checked that the shapes broadcast.
pub(crate) fn broadcast_view<T: Element>(
    a: &ArrayViewD<'_, T>,
    shape: &[usize],
) -> ArcArray<T, IxDyn> {
    let n: usize = shape.iter().product();
    if a.len() == 1 {
        let c = *a.iter().next().expect("one element");
        let v = build_vec(n, |_, dst| {
            for d in dst.iter_mut() {
                d.write(c);
            }
        });
        return with_shape(shape, v);
    }
    let view = a.broadcast(IxDyn(shape)).expect("shapes checked by the op");
    if n >= PAR_THRESHOLD {
        Zip::from(&view).par_map_collect(|&x| x).into_shared()
    } else {
        view.to_owned().into_shared()
    }
}

/// `acc += g` in place (same shape), in parallel for large contiguous arrays.
pub(crate) fn add_assign<T: Element>(acc: &mut ArrayViewMutD<'_, T>, g: &ArrayViewD<'_, T>) {
    debug_assert_eq!(acc.shape(), g.shape());
    if let (Some(a), Some(b)) = (acc.as_slice_mut(), g.as_slice()) {
        if a.len() >= PAR_THRESHOLD {
            a.par_chunks_mut(CHUNK)
                .zip(b.par_chunks(CHUNK))
                .for_each(|(a, b)| {
                    for (x, &y) in a.iter_mut().zip(b) {
                        *x += y;
                    }
                });
        } else {
            for (x, &y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
        return;
    }
    Zip::from(acc).and(g).for_each(|x, &y| *x += y);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{ArrayD, ShapeBuilder};

    fn ramp(n: usize) -> ArrayD<f64> {
        ArrayD::from_shape_fn(IxDyn(&[n]), |i| i[0] as f64 * 0.5 - 3.0)
    }

    #[test]
    fn fast_and_strided_paths_agree() {
        // A transposed (column-major) operand takes the Zip path; values must match.
        let a = ArrayD::from_shape_fn(IxDyn(&[3, 4]), |i| (i[0] * 4 + i[1]) as f64);
        let t = a.t();
        let via_zip = map_view(&t.view(), |x| x * 2.0);
        let contiguous = t.as_standard_layout().into_owned();
        let via_slice = map_view(&contiguous.view(), |x| x * 2.0);
        assert_eq!(via_zip, via_slice);
        let f = ArrayD::from_shape_vec(IxDyn(&[3, 4]).f(), (0..12).map(|i| i as f64).collect())
            .unwrap();
        assert_eq!(
            zip_view(&f.view(), &a.view(), |x, y| x - y),
            (&f - &a).into_shared()
        );
    }

    #[test]
    fn large_arrays_are_filled_completely_in_parallel() {
        let n = PAR_THRESHOLD * 3 + 17; // several chunks and a ragged tail
        let a = ramp(n);
        let m = map_view(&a.view(), |x| x + 1.0);
        assert!(m.iter().zip(a.iter()).all(|(y, x)| *y == x + 1.0));
        let z = zip_view(&a.view(), &m.view(), |x, y| y - x);
        assert!(z.iter().all(|&v| v == 1.0));
        let b = broadcast_view(&ndarray::arr0(2.5).into_dyn().view(), &[n]);
        assert!(b.len() == n && b.iter().all(|&v| v == 2.5));
        let mut acc = a.clone();
        add_assign(&mut acc.view_mut(), &m.view());
        assert!(acc.iter().zip(a.iter()).all(|(s, x)| *s == 2.0 * x + 1.0));
    }

    #[test]
    fn scalar_operands_broadcast_on_either_side() {
        let a = ramp(5);
        let s = ndarray::arr0(10.0).into_dyn();
        assert_eq!(
            zip_view(&a.view(), &s.view(), |x, y| x - y),
            a.mapv(|x| x - 10.0).into_shared()
        );
        assert_eq!(
            zip_view(&s.view(), &a.view(), |x, y| x - y),
            a.mapv(|x| 10.0 - x).into_shared()
        );
        let row = ArrayD::from_shape_vec(IxDyn(&[1, 5]), a.iter().copied().collect()).unwrap();
        let col = ArrayD::from_shape_vec(IxDyn(&[2, 1]), vec![1.0, 2.0]).unwrap();
        let p = zip_view(&row.view(), &col.view(), |x, y| x * y);
        assert_eq!(p.shape(), &[2, 5]);
        assert_eq!(p[[1, 4]], a[[4]] * 2.0);
        let bc = broadcast_view(&col.view(), &[2, 3]);
        assert_eq!(
            bc.iter().copied().collect::<Vec<_>>(),
            vec![1.0, 1.0, 1.0, 2.0, 2.0, 2.0]
        );
    }

    #[test]
    fn exp_kernel_matches_std_for_both_dtypes() {
        let a = ramp(PAR_THRESHOLD + 5);
        let e = exp_view(&a.view());
        assert!(e.iter().zip(a.iter()).all(|(y, x)| *y == x.exp()));
        let a32 = a.mapv(|x| x as f32 * 0.001); // -0.003 ..= 16.4
        let e32 = exp_view(&a32.view());
        assert!(e32
            .iter()
            .zip(a32.iter())
            .all(|(y, x)| ((y - x.exp()) / x.exp()).abs() <= 2.5 * f32::EPSILON));
        let t = exp_view(
            &a32.view()
                .into_shape_with_order(IxDyn(&[PAR_THRESHOLD + 5, 1]))
                .unwrap()
                .t()
                .into_dyn(),
        );
        assert_eq!(t.shape(), &[1, PAR_THRESHOLD + 5]);
    }
}
