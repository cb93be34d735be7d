//! Matrix products: 2-D GEMM through ndarray's `general_mat_mul` (matrixmultiply,
//! threaded), and batched products with broadcast batch dimensions.

use ndarray::linalg::general_mat_mul;
use ndarray::{ArcArray, Array2, ArrayD, ArrayView2, ArrayViewD, Axis, Ix2, IxDyn};

use crate::dtype::Element;
use crate::shape::broadcast_shapes;

/// `a @ b` for 2-D views.
pub(crate) fn matmul_2d<T: Element>(a: &ArrayView2<'_, T>, b: &ArrayView2<'_, T>) -> Array2<T> {
    let mut c = Array2::zeros((a.nrows(), b.ncols()));
    general_mat_mul(T::one(), a, b, T::zero(), &mut c);
    c
}

fn as_2d<'a, T: Element>(v: ArrayViewD<'a, T>) -> ArrayView2<'a, T> {
    v.into_dimensionality::<Ix2>().expect("rank 2")
}

/// `a @ b` for operands of rank >= 2 whose leading (batch) dimensions broadcast.
pub(crate) fn matmul_batched<T: Element>(a: &ArrayViewD<'_, T>, b: &ArrayViewD<'_, T>) -> ArcArray<T, IxDyn> {
    let (ra, rb) = (a.ndim(), b.ndim());
    if ra == 2 && rb == 2 {
        return matmul_2d(&as_2d(a.view()), &as_2d(b.view())).into_dyn().into_shared();
    }
    let (m, k) = (a.shape()[ra - 2], a.shape()[ra - 1]);
    let n = b.shape()[rb - 1];
    let batch = broadcast_shapes(&a.shape()[..ra - 2], &b.shape()[..rb - 2]).expect("checked by the op");
    let mut a_shape = batch.to_vec();
    a_shape.extend([m, k]);
    let mut b_shape = batch.to_vec();
    b_shape.extend([k, n]);
    let av = a.broadcast(IxDyn(&a_shape)).expect("broadcastable");
    let bv = b.broadcast(IxDyn(&b_shape)).expect("broadcastable");
    let mut out_shape = batch.to_vec();
    out_shape.extend([m, n]);
    let mut out = ArrayD::<T>::zeros(IxDyn(&out_shape));
    let nb: usize = batch.iter().product();
    let mut idx = vec![0usize; batch.len()];
    for flat in 0..nb {
        let mut rem = flat;
        for d in (0..batch.len()).rev() {
            idx[d] = rem % batch[d];
            rem /= batch[d];
        }
        let mut a2 = av.view();
        let mut b2 = bv.view();
        let mut c2 = out.view_mut();
        for &i in &idx {
            a2 = a2.index_axis_move(Axis(0), i);
            b2 = b2.index_axis_move(Axis(0), i);
            c2 = c2.index_axis_move(Axis(0), i);
        }
        let mut c2 = c2.into_dimensionality::<Ix2>().expect("rank 2");
        general_mat_mul(T::one(), &as_2d(a2), &as_2d(b2), T::zero(), &mut c2);
    }
    out.into_shared()
}
