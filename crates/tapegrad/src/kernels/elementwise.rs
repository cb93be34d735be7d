//! Elementwise kernels: unary maps and broadcasting binary zips.

use ndarray::{ArcArray, ArrayViewD, IxDyn, Zip};

use super::PAR_THRESHOLD;
use crate::dtype::Element;
use crate::shape::broadcast_shapes;

/// `f` applied to every element, in parallel for large arrays.
pub(crate) fn map<T: Element>(a: &ArrayViewD<'_, T>, f: impl Fn(T) -> T + Sync + Send) -> ArcArray<T, IxDyn> {
    if a.len() >= PAR_THRESHOLD {
        Zip::from(a).par_map_collect(|&x| f(x)).into_shared()
    } else {
        a.map(|&x| f(x)).into_shared()
    }
}

/// `f(x, c)` for every element `x`, with the scalar `c` converted to the element type.
pub(crate) fn map_c<T: Element>(a: &ArrayViewD<'_, T>, c: f64, f: impl Fn(T, T) -> T + Sync + Send) -> ArcArray<T, IxDyn> {
    let c = T::of(c);
    map(a, move |x| f(x, c))
}

/// `f(x, c1, c2)` for every element `x`, with two scalars converted to the element type.
pub(crate) fn map_c2<T: Element>(
    a: &ArrayViewD<'_, T>,
    c1: f64,
    c2: f64,
    f: impl Fn(T, T, T) -> T + Sync + Send,
) -> ArcArray<T, IxDyn> {
    let (c1, c2) = (T::of(c1), T::of(c2));
    map(a, move |x| f(x, c1, c2))
}

/// `f(a, b)` elementwise over the broadcast of `a` and `b` (shapes checked by the caller).
pub(crate) fn zip<T: Element>(
    a: &ArrayViewD<'_, T>,
    b: &ArrayViewD<'_, T>,
    f: impl Fn(T, T) -> T + Sync + Send,
) -> ArcArray<T, IxDyn> {
    if a.shape() == b.shape() {
        zip_same(a, b, f)
    } else {
        let shape = broadcast_shapes(a.shape(), b.shape()).expect("shapes checked by the op");
        let av = a.broadcast(IxDyn(&shape)).expect("broadcastable");
        let bv = b.broadcast(IxDyn(&shape)).expect("broadcastable");
        zip_same(&av, &bv, f)
    }
}

fn zip_same<T: Element>(
    a: &ArrayViewD<'_, T>,
    b: &ArrayViewD<'_, T>,
    f: impl Fn(T, T) -> T + Sync + Send,
) -> ArcArray<T, IxDyn> {
    if a.len() >= PAR_THRESHOLD {
        Zip::from(a).and(b).par_map_collect(|&x, &y| f(x, y)).into_shared()
    } else {
        Zip::from(a).and(b).map_collect(|&x, &y| f(x, y)).into_shared()
    }
}

/// `f(c, a, b)` over the broadcast of three arrays (for `where_`).
pub(crate) fn zip3<T: Element>(
    c: &ArrayViewD<'_, T>,
    a: &ArrayViewD<'_, T>,
    b: &ArrayViewD<'_, T>,
    f: impl Fn(T, T, T) -> T + Sync + Send,
) -> ArcArray<T, IxDyn> {
    let s1 = broadcast_shapes(c.shape(), a.shape()).expect("shapes checked by the op");
    let shape = broadcast_shapes(&s1, b.shape()).expect("shapes checked by the op");
    let cv = c.broadcast(IxDyn(&shape)).expect("broadcastable");
    let av = a.broadcast(IxDyn(&shape)).expect("broadcastable");
    let bv = b.broadcast(IxDyn(&shape)).expect("broadcastable");
    if cv.len() >= PAR_THRESHOLD {
        Zip::from(&cv).and(&av).and(&bv).par_map_collect(|&c, &x, &y| f(c, x, y)).into_shared()
    } else {
        Zip::from(&cv).and(&av).and(&bv).map_collect(|&c, &x, &y| f(c, x, y)).into_shared()
    }
}
