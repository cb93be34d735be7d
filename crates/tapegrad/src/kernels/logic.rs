//! Kernels of any element type that broadcast: comparisons and logical ops (to `bool`)
//! and selection by a `bool` mask (in parallel on large arrays).

use ndarray::{ArcArray, ArrayViewD, IxDyn, Zip};

/// `f(a, b)` elementwise over `a` and `b` broadcast to `shape`.
pub(crate) fn zip_broadcast<A: Copy, B: Copy, R: Clone>(
    a: &ArrayViewD<'_, A>,
    b: &ArrayViewD<'_, B>,
    shape: &[usize],
    f: impl Fn(A, B) -> R,
) -> ArcArray<R, IxDyn> {
    let dim = IxDyn(shape);
    let a = a.broadcast(dim.clone()).expect("shapes checked by the op");
    let b = b.broadcast(dim).expect("shapes checked by the op");
    Zip::from(&a)
        .and(&b)
        .map_collect(|&x, &y| f(x, y))
        .into_shared()
}

/// `cond ? a : b` elementwise over the three broadcast to `shape`.
pub(crate) fn select<T: Copy + Send + Sync>(
    cond: &ArrayViewD<'_, bool>,
    a: &ArrayViewD<'_, T>,
    b: &ArrayViewD<'_, T>,
    shape: &[usize],
) -> ArcArray<T, IxDyn> {
    let dim = IxDyn(shape);
    let c = cond
        .broadcast(dim.clone())
        .expect("shapes checked by the op");
    let a = a.broadcast(dim.clone()).expect("shapes checked by the op");
    let b = b.broadcast(dim).expect("shapes checked by the op");
    let zip = Zip::from(&c).and(&a).and(&b);
    if c.len() >= super::PAR_THRESHOLD {
        zip.par_map_collect(|&c, &x, &y| if c { x } else { y })
            .into_shared()
    } else {
        zip.map_collect(|&c, &x, &y| if c { x } else { y })
            .into_shared()
    }
}
