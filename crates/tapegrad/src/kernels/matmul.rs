//! Matrix products: 2-D GEMM and batched products with broadcast batch dimensions.
//!
//! Back-end, chosen by measurement (`docs/benchmarks.md`): the pure-Rust `gemm` crate
//! (runtime-dispatched AVX2/FMA kernels, threaded with rayon) by default; with the
//! `openblas` cargo feature, the system OpenBLAS (through ndarray's `blas` support) for
//! products of at least [`BLAS_MIN_FLOPS`], where it is faster, and `gemm` below that,
//! where its lower call overhead wins. Both read strided operands directly, so the
//! transposed views of a backward pass are never copied. A stack of small matrices is
//! split over threads by matrix instead of inside each product.

use ndarray::{ArcArray, Array2, ArrayD, ArrayView2, ArrayViewD, ArrayViewMut2, Axis, Ix2, IxDyn};
use rayon::prelude::*;

use super::elementwise::build_vec;
#[cfg(target_arch = "x86_64")]
use super::sgemm;
use crate::dtype::Element;
use crate::shape::broadcast_shapes;

#[cfg(feature = "openblas")]
use blas_src as _;

/// With the `openblas` feature, products of at least this many flops (`2 m k n`) go to
/// OpenBLAS; smaller ones stay with `gemm`, whose call overhead is lower.
#[cfg(feature = "openblas")]
pub(crate) const BLAS_MIN_FLOPS: usize = 2 * 128 * 128 * 128;

/// A batched product whose matrices each take fewer flops than this runs its matrices
/// in parallel (one thread per matrix) rather than threading each product.
const BATCH_PAR_MAX_FLOPS: usize = 2 * 64 * 64 * 64;

/// Whether an `m x k @ k x n` product of `T` goes to the AVX-512 kernel of
/// [`sgemm`]: `f32`, an AVX-512 CPU, and a product big enough for its 12 x 32 tiles
/// (thin products, such as a batch of one, are faster in `gemm`).
#[cfg(target_arch = "x86_64")]
fn use_avx512_sgemm<T: Element>(m: usize, k: usize, n: usize) -> bool {
    std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
        && m >= SGEMM_MIN_ROWS
        && n >= 16
        && k >= 16
        && super::simd::isa() == super::simd::Isa::Avx512
}

/// Fewest rows of the left operand for which the AVX-512 kernel beats `gemm`.
#[cfg(target_arch = "x86_64")]
const SGEMM_MIN_ROWS: usize = 32;

/// How a single product may use threads.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Threads {
    /// Use the rayon pool (the back-end decides whether the product is big enough).
    Pool,
    /// Stay on the calling thread (the caller already parallelises).
    One,
}

/// `c = a @ b`, overwriting `c` (shapes checked by the caller).
pub(crate) fn gemm_into<T: Element>(
    a: &ArrayView2<'_, T>,
    b: &ArrayView2<'_, T>,
    c: &mut ArrayViewMut2<'_, T>,
    threads: Threads,
) {
    let (m, k) = a.dim();
    let n = b.ncols();
    debug_assert_eq!((b.nrows(), c.dim()), (k, (m, n)));
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c.fill(T::zero());
        return;
    }
    let strides_ok = a
        .strides()
        .iter()
        .chain(b.strides())
        .chain(c.strides())
        .all(|&s| s >= 0);
    #[cfg(target_arch = "x86_64")]
    if strides_ok && use_avx512_sgemm::<T>(m, k, n) {
        let mat = |v: &ArrayView2<'_, T>| sgemm::Mat {
            ptr: v.as_ptr().cast(),
            rs: v.strides()[0],
            cs: v.strides()[1],
        };
        let out = sgemm::MatMut {
            ptr: c.as_mut_ptr().cast(),
            rs: c.strides()[0],
            cs: c.strides()[1],
        };
        let n_threads = if threads == Threads::Pool {
            rayon::current_num_threads()
        } else {
            1
        };
        // SAFETY: `T` is f32 (checked), so the casts are identities; the views describe
        // valid memory with non-negative strides; `c` is a distinct mutable borrow whose
        // positions are distinct (a view from ndarray never aliases itself); AVX-512F
        // was detected by `use_avx512_sgemm`.
        unsafe { sgemm::sgemm(m, n, k, mat(a), mat(b), out, n_threads) };
        return;
    }
    #[cfg(feature = "openblas")]
    if 2 * m * k * n >= BLAS_MIN_FLOPS && threads == Threads::Pool {
        // ndarray hands BLAS-compatible layouts (either stride 1, transposed or not) to
        // cblas_?gemm and anything else to matrixmultiply.
        ndarray::linalg::general_mat_mul(T::one(), a, b, T::zero(), c);
        return;
    }
    if !strides_ok {
        // Reversed views (negative strides): matrixmultiply handles any stride.
        ndarray::linalg::general_mat_mul(T::one(), a, b, T::zero(), c);
        return;
    }
    let parallelism = match threads {
        Threads::Pool if rayon::current_num_threads() > 1 => {
            gemm::Parallelism::Rayon(rayon::current_num_threads())
        }
        _ => gemm::Parallelism::None,
    };
    let (cs, ast, bst) = (c.strides().to_owned(), a.strides(), b.strides());
    // SAFETY: the pointers and strides describe the three views exactly (non-negative
    // strides, checked above; shapes checked by the caller), `c` is borrowed mutably and
    // so aliases neither operand, and `T` is f32 or f64, which gemm supports.
    // gemm computes dst = alpha * dst + beta * lhs @ rhs; with read_dst false, dst is
    // only written.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            cs[1],
            cs[0],
            false,
            a.as_ptr(),
            ast[1],
            ast[0],
            b.as_ptr(),
            bst[1],
            bst[0],
            T::zero(),
            T::one(),
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// A zeroed output array whose buffer comes from the [`pool`](super::pool) when large
/// (a fresh multi-megabyte allocation page-faults on every call: it showed as 0.4 ms per
/// step on W1's batch-1 products).
fn zeros<T: Element>(shape: &[usize]) -> ArrayD<T> {
    let v = build_vec(shape.iter().product(), |_, dst| {
        for d in dst.iter_mut() {
            d.write(T::zero());
        }
    });
    ArrayD::from_shape_vec(IxDyn(shape), v).expect("one element per position")
}

/// `a @ b` for 2-D views.
pub(crate) fn matmul_2d<T: Element>(a: &ArrayView2<'_, T>, b: &ArrayView2<'_, T>) -> Array2<T> {
    let mut c = zeros(&[a.nrows(), b.ncols()])
        .into_dimensionality::<Ix2>()
        .expect("rank 2");
    gemm_into(a, b, &mut c.view_mut(), Threads::Pool);
    c
}

fn as_2d<'a, T: Element>(v: ArrayViewD<'a, T>) -> ArrayView2<'a, T> {
    v.into_dimensionality::<Ix2>().expect("rank 2")
}

/// The 2-D matrix at flat batch index `flat` of a view whose leading axes have sizes `batch`.
fn matrix_at<'a, T: Element>(
    v: &ArrayViewD<'a, T>,
    batch: &[usize],
    flat: usize,
) -> ArrayView2<'a, T> {
    let mut sub = v.clone();
    let mut rem = flat;
    let mut stride: usize = batch.iter().product();
    for &size in batch {
        stride /= size;
        sub = sub.index_axis_move(Axis(0), rem / stride);
        rem %= stride;
    }
    as_2d(sub)
}

/// `a @ b` for operands of rank >= 2 whose leading (batch) dimensions broadcast.
pub(crate) fn matmul_batched<T: Element>(
    a: &ArrayViewD<'_, T>,
    b: &ArrayViewD<'_, T>,
) -> ArcArray<T, IxDyn> {
    let (ra, rb) = (a.ndim(), b.ndim());
    if ra == 2 && rb == 2 {
        return matmul_2d(&as_2d(a.view()), &as_2d(b.view()))
            .into_dyn()
            .into_shared();
    }
    let (m, k) = (a.shape()[ra - 2], a.shape()[ra - 1]);
    let n = b.shape()[rb - 1];
    let batch =
        broadcast_shapes(&a.shape()[..ra - 2], &b.shape()[..rb - 2]).expect("checked by the op");
    let mut a_shape = batch.to_vec();
    a_shape.extend([m, k]);
    let mut b_shape = batch.to_vec();
    b_shape.extend([k, n]);
    let av = a.broadcast(IxDyn(&a_shape)).expect("broadcastable");
    let bv = b.broadcast(IxDyn(&b_shape)).expect("broadcastable");
    let mut out_shape = batch.to_vec();
    out_shape.extend([m, n]);
    let mut out = zeros::<T>(&out_shape);
    let nb: usize = batch.iter().product();
    if m * n == 0 || nb == 0 {
        return out.into_shared();
    }
    let blocks = out.as_slice_mut().expect("fresh array is contiguous");
    let run = |flat: usize, block: &mut [T], threads| {
        let mut c = ArrayViewMut2::from_shape((m, n), block).expect("block of m * n");
        gemm_into(
            &matrix_at(&av, &batch, flat),
            &matrix_at(&bv, &batch, flat),
            &mut c,
            threads,
        );
    };
    if nb > 1 && 2 * m * k * n < BATCH_PAR_MAX_FLOPS && rayon::current_num_threads() > 1 {
        blocks
            .par_chunks_mut(m * n)
            .enumerate()
            .for_each(|(flat, block)| run(flat, block, Threads::One));
    } else {
        blocks
            .chunks_mut(m * n)
            .enumerate()
            .for_each(|(flat, block)| run(flat, block, Threads::Pool));
    }
    out.into_shared()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{s, Array3};

    fn naive(a: &ArrayView2<f64>, b: &ArrayView2<f64>) -> Array2<f64> {
        Array2::from_shape_fn((a.nrows(), b.ncols()), |(i, j)| {
            (0..a.ncols()).map(|p| a[[i, p]] * b[[p, j]]).sum()
        })
    }

    fn filled(r: usize, c: usize, seed: usize) -> Array2<f64> {
        Array2::from_shape_fn((r, c), |(i, j)| {
            ((i * 31 + j * 17 + seed * 7) % 23) as f64 - 11.0
        })
    }

    #[test]
    fn strided_transposed_and_reversed_operands_match_the_naive_product() {
        for &(m, k, n) in &[
            (1, 1, 1),
            (1, 784, 10),
            (7, 5, 3),
            (33, 65, 17),
            (130, 70, 129),
            (200, 150, 160), // above BLAS_MIN_FLOPS: OpenBLAS with the `openblas` feature
        ] {
            let a = filled(m, k, 1);
            let b = filled(k, n, 2);
            let want = naive(&a.view(), &b.view());
            assert_eq!(matmul_2d(&a.view(), &b.view()), want);
            // Transposed views (column-major), as the backward pass passes them.
            let at = a.t().as_standard_layout().into_owned();
            let bt = b.t().as_standard_layout().into_owned();
            assert_eq!(matmul_2d(&at.t(), &bt.t()), want);
            // Every other column of a wider matrix (a non-unit stride on both axes).
            let wide = Array2::from_shape_fn((k, 2 * n), |(i, j)| {
                if j % 2 == 0 {
                    b[[i, j / 2]]
                } else {
                    f64::NAN
                }
            });
            assert_eq!(matmul_2d(&a.view(), &wide.slice(s![.., ..;2])), want);
            // Reversed rows (negative stride).
            let rev = a.slice(s![..;-1, ..]);
            assert_eq!(matmul_2d(&rev, &b.view()), naive(&rev, &b.view()));
        }
    }

    #[test]
    fn empty_inner_dimension_gives_zeros() {
        let a = Array2::<f64>::zeros((3, 0));
        let b = Array2::<f64>::zeros((0, 4));
        assert_eq!(matmul_2d(&a.view(), &b.view()), Array2::zeros((3, 4)));
    }

    #[test]
    fn batched_products_small_and_large_match_per_matrix_products() {
        for &(nb, m, k, n) in &[(9, 4, 3, 5), (3, 70, 80, 90)] {
            let a = Array3::from_shape_fn((nb, m, k), |(p, i, j)| {
                ((p * 13 + i * 7 + j * 3) % 11) as f64 - 5.0
            });
            let b = Array3::from_shape_fn((nb, k, n), |(p, i, j)| {
                ((p * 5 + i * 3 + j * 11) % 13) as f64 - 6.0
            });
            // A transposed right operand (strided) in the batch too.
            let bt = b
                .clone()
                .permuted_axes([0, 2, 1])
                .as_standard_layout()
                .into_owned()
                .permuted_axes([0, 2, 1]);
            for rhs in [b.view().into_dyn(), bt.view().into_dyn()] {
                let c = matmul_batched(&a.view().into_dyn(), &rhs);
                assert_eq!(c.shape(), &[nb, m, n]);
                for p in 0..nb {
                    let want = naive(&a.index_axis(Axis(0), p), &b.index_axis(Axis(0), p));
                    assert_eq!(c.index_axis(Axis(0), p), want.into_dyn());
                }
            }
        }
    }
}
