//! Indexing with `I64` index tensors: index_select, index_add, gather, scatter,
//! scatter_add, masked_select, nonzero, one_hot, and ordering: sort, argsort, topk.
//! Indices are checked against the axis they index (negative ones are out of range).

use std::sync::Arc;

use ndarray::{ArrayD, Axis, IxDyn};
use rand::Rng;
use smallvec::smallvec;

use super::check_same_dtype;
use super::table::{random_tensor, Domain, Inputs, OpSpec};
use crate::autograd::node::Op;
use crate::dtype::DType;
use crate::kernels::index::{argsort, gather, index_add, index_add_zeros, scatter, scatter_add};
use crate::shape::{broadcast_shapes, norm_axis, Shape};
use crate::storage::{dispatch, Data};
use crate::tensor::Tensor;

/// The values of an `I64` index tensor as `usize`, panicking (naming `op`) on another
/// dtype or a negative index.
#[track_caller]
pub(crate) fn index_values(op: &str, index: &Tensor) -> ArrayD<usize> {
    if index.dtype() != DType::I64 {
        panic!(
            "{op}: indices must be an i64 tensor, got {} {:?}; convert with to_dtype(DType::I64)",
            index.dtype(),
            index.shape()
        );
    }
    let a = index.to_array::<i64>();
    if let Some(&bad) = a.iter().find(|&&i| i < 0) {
        panic!("{op}: index {bad} is negative (shape {:?})", index.shape());
    }
    a.mapv(|i| i as usize)
}

impl Tensor {
    /// An `I64` tensor of indices.
    pub(crate) fn from_indices(a: ArrayD<usize>) -> Tensor {
        Tensor::from_array(a.mapv(|i| i as i64))
    }

    /// Picks the slices `index` (a 1-d `I64` tensor) along `dim`, repeats allowed.
    /// Gradient: `g` added back at those indices (repeated indices accumulate).
    ///
    /// # Panics
    /// If `index` is not a 1-d `I64` tensor, `dim` is out of range or an index is not
    /// below the axis size.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3]);
    /// let idx = Tensor::from_vec(vec![2i64, 0, 2], &[3]);
    /// assert_eq!(x.index_select(0, &idx).to_vec::<f32>(), vec![3.0, 1.0, 3.0]);
    /// ```
    #[track_caller]
    pub fn index_select(&self, dim: isize, index: &Tensor) -> Tensor {
        let idx = vector_index("index_select", index);
        let axis = norm_axis("index_select", dim, self.rank());
        check_vector_index("index_select", &idx, self.shape(), axis, dim);
        self.select_idx(axis, idx.into())
    }

    /// [`index_select`](Self::index_select) with checked `usize` indices.
    #[track_caller]
    pub(crate) fn select_idx(&self, axis: usize, idx: Arc<[usize]>) -> Tensor {
        let full = Shape::from_slice(self.shape());
        let value = dispatch!(any self.data(), |a| {
            Data::from(a.select(Axis(axis), &idx).into_shared())
        });
        Op::new("index_select", &[self], value)
            .rule(move |_, g| g.index_add_zeros(&full, axis, idx.clone()))
    }

    /// Zeros of `full` with `self`'s slices added at `idx` along `axis`: the gradient of
    /// `index_select`, whose own gradient is `index_select` again.
    #[track_caller]
    fn index_add_zeros(&self, full: &[usize], axis: usize, idx: Arc<[usize]>) -> Tensor {
        let value = dispatch!(self.data(), |a| {
            let a = a.force().into_owned();
            Data::from(index_add_zeros(full, axis, &idx, &a.view()))
        });
        Op::new("index_select_backward", &[self], value)
            .rule(move |_, g| g.select_idx(axis, idx.clone()))
    }

    /// `out = self; out.select(dim, index[k]) += source.select(dim, k)` (PyTorch's
    /// `index_add`): `index` is a 1-d `I64` tensor as long as `source`'s axis `dim`;
    /// repeated indices accumulate. Gradient: `g` for `self`, `g.index_select(dim, index)`
    /// for `source`.
    ///
    /// # Panics
    /// If dtypes differ, `index` is not a 1-d `I64` tensor of `source`'s length along
    /// `dim`, the other sizes differ, or an index is out of range.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let x = Tensor::zeros(&[3], tapegrad::DType::F32);
    /// let idx = Tensor::from_vec(vec![0i64, 2, 0], &[3]);
    /// let src = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3]);
    /// assert_eq!(x.index_add(0, &idx, &src).to_vec::<f32>(), vec![4.0, 0.0, 2.0]);
    /// ```
    #[track_caller]
    pub fn index_add(&self, dim: isize, index: &Tensor, source: &Tensor) -> Tensor {
        check_same_dtype("index_add", self, source);
        let idx = vector_index("index_add", index);
        let axis = norm_axis("index_add", dim, self.rank());
        check_vector_index("index_add", &idx, self.shape(), axis, dim);
        let mut expected = self.shape().to_vec();
        expected[axis] = idx.len();
        if source.shape() != expected.as_slice() {
            panic!(
                "index_add: source shape {:?} should be {expected:?} (the input {:?} with axis {dim} of the index's length {})",
                source.shape(),
                self.shape(),
                idx.len()
            );
        }
        let idx: Arc<[usize]> = idx.into();
        let value = dispatch!((self.data(), source.data()), |a, s| {
            let (a, s) = (a.force(), s.force());
            Data::from(index_add(&a.view(), axis, &idx, &s.view()))
        });
        Op::new("index_add", &[self, source], value).rule(move |ctx, g| {
            smallvec![
                Some(g.clone()),
                ctx.needs_grad(1).then(|| g.select_idx(axis, idx.clone()))
            ]
        })
    }

    /// `out[i][j][k] = self[i][index[i][j][k]][k]` for `dim = 1` (and likewise for any
    /// axis): the output has `index`'s shape. Gradient: `g` scatter-added back.
    ///
    /// # Panics
    /// If `index` is not `I64`, has another rank, exceeds the input on an axis other than
    /// `dim`, or holds a value not below the size of `dim`.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2]);
    /// let idx = Tensor::from_vec(vec![1i64, 0], &[2, 1]);
    /// assert_eq!(x.gather(1, &idx).to_vec::<f32>(), vec![2.0, 3.0]);
    /// ```
    #[track_caller]
    pub fn gather(&self, dim: isize, index: &Tensor) -> Tensor {
        let idx = index_values("gather", index);
        let axis = norm_axis("gather", dim, self.rank().max(1));
        check_index("gather", self.shape(), axis, &idx, self.shape());
        self.gather_idx(axis, Arc::new(idx))
    }

    /// [`gather`](Self::gather) with checked `usize` indices.
    #[track_caller]
    pub(crate) fn gather_idx(&self, axis: usize, idx: Arc<ArrayD<usize>>) -> Tensor {
        let full = Shape::from_slice(self.shape());
        let value = dispatch!(any self.data(), |a| {
            Data::from(gather(&a.view(), axis, &idx.view()))
        });
        Op::new("gather", &[self], value).rule(move |_, g| {
            let zeros = Tensor::zeros(&full, g.dtype());
            smallvec![Some(zeros.scatter_add_idx(axis, idx.clone(), g))]
        })
    }

    /// `out = self; out[i][index[i][j]] += src[i][j]` for `dim = 1` (and likewise for any
    /// axis); repeated indices accumulate. Gradient: `g` for `self`, `g.gather(dim,
    /// index)` for `src`.
    ///
    /// # Panics
    /// If dtypes differ, `index` is not `I64`, `src` does not have `index`'s shape, or an
    /// index is out of range.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let x = Tensor::zeros(&[1, 3], tapegrad::DType::F64);
    /// let idx = Tensor::from_vec(vec![2i64, 2], &[1, 2]);
    /// let src = Tensor::from_vec(vec![1.0f64, 5.0], &[1, 2]);
    /// assert_eq!(x.scatter_add(1, &idx, &src).to_vec::<f64>(), vec![0.0, 0.0, 6.0]);
    /// ```
    #[track_caller]
    pub fn scatter_add(&self, dim: isize, index: &Tensor, src: &Tensor) -> Tensor {
        let idx = self.check_scatter("scatter_add", dim, index, src);
        self.scatter_add_idx(norm_axis("scatter_add", dim, self.rank().max(1)), idx, src)
    }

    #[track_caller]
    fn check_scatter(
        &self,
        op: &str,
        dim: isize,
        index: &Tensor,
        src: &Tensor,
    ) -> Arc<ArrayD<usize>> {
        check_same_dtype(op, self, src);
        let idx = index_values(op, index);
        let axis = norm_axis(op, dim, self.rank().max(1));
        if idx.shape() != src.shape() {
            panic!(
                "{op}: index shape {:?} differs from src shape {:?}",
                idx.shape(),
                src.shape()
            );
        }
        check_index(op, self.shape(), axis, &idx, self.shape());
        Arc::new(idx)
    }

    #[track_caller]
    fn scatter_add_idx(&self, axis: usize, idx: Arc<ArrayD<usize>>, src: &Tensor) -> Tensor {
        let value = dispatch!((self.data(), src.data()), |a, s| {
            let (a, s) = (a.force(), s.force());
            Data::from(scatter_add(&a.view(), axis, &idx.view(), &s.view()))
        });
        Op::new("scatter_add", &[self, src], value).rule(move |ctx, g| {
            smallvec![
                Some(g.clone()),
                ctx.needs_grad(1).then(|| g.gather_idx(axis, idx.clone()))
            ]
        })
    }

    /// `out = self; out[i][index[i][j]] = src[i][j]` for `dim = 1` (and likewise for any
    /// axis), PyTorch's non-accumulating `scatter`: with repeated indices the last write
    /// wins (PyTorch leaves it unspecified). Gradient: `g` with the written positions
    /// zeroed for `self`, `g.gather(dim, index)` for `src`.
    ///
    /// # Panics
    /// If dtypes differ, `index` is not `I64`, `src` does not have `index`'s shape, or an
    /// index is out of range.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let x = Tensor::zeros(&[2, 3], tapegrad::DType::F32);
    /// let idx = Tensor::from_vec(vec![2i64, 0], &[2, 1]);
    /// let src = Tensor::from_vec(vec![1.0f32, 2.0], &[2, 1]);
    /// assert_eq!(x.scatter(1, &idx, &src).to_vec::<f32>(), vec![0.0, 0.0, 1.0, 2.0, 0.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn scatter(&self, dim: isize, index: &Tensor, src: &Tensor) -> Tensor {
        let idx = self.check_scatter("scatter", dim, index, src);
        self.scatter_idx(norm_axis("scatter", dim, self.rank().max(1)), idx, src)
    }

    #[track_caller]
    fn scatter_idx(&self, axis: usize, idx: Arc<ArrayD<usize>>, src: &Tensor) -> Tensor {
        let value = dispatch!(any(self.data(), src.data()), |a, s| {
            Data::from(scatter(&a.view(), axis, &idx.view(), &s.view()))
        });
        Op::new("scatter", &[self, src], value).rule(move |ctx, g| {
            smallvec![
                ctx.needs_grad(0).then(|| {
                    let zeros = Tensor::zeros(idx.shape(), g.dtype());
                    g.scatter_idx(axis, idx.clone(), &zeros)
                }),
                ctx.needs_grad(1).then(|| g.gather_idx(axis, idx.clone()))
            ]
        })
    }

    /// The elements where `mask` (a `Bool` tensor broadcasting with the input) is true,
    /// in row-major order, as a 1-d tensor. Gradient: `g` back at the selected positions
    /// (summed over broadcast axes); the mask gets none.
    ///
    /// # Panics
    /// If `mask` is not `Bool` or the shapes do not broadcast.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f32, -2.0, 3.0, -4.0], &[2, 2]);
    /// assert_eq!(x.masked_select(&x.gt_scalar(0.0)).to_vec::<f32>(), vec![1.0, 3.0]);
    /// ```
    #[track_caller]
    pub fn masked_select(&self, mask: &Tensor) -> Tensor {
        if mask.dtype() != DType::Bool {
            panic!(
                "masked_select: the mask must be a bool tensor, got {} {:?}",
                mask.dtype(),
                mask.shape()
            );
        }
        let shape = match broadcast_shapes(self.shape(), mask.shape()) {
            Some(s) => s,
            None => panic!(
                "masked_select: mask shape {:?} does not broadcast with the input shape {:?}",
                mask.shape(),
                self.shape()
            ),
        };
        let m = mask.broadcast_to(&shape).to_vec::<bool>();
        let picks: Vec<usize> = (0..m.len()).filter(|&i| m[i]).collect();
        self.broadcast_to(&shape)
            .reshape_to(&[m.len()])
            .select_idx(0, picks.into())
    }

    /// The indices of the non-zero (true) elements, as an `I64` tensor of shape
    /// `[n, rank]`, one row per element in row-major order (PyTorch's `nonzero`). Not
    /// differentiable.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let x = Tensor::from_vec(vec![0.0f32, 1.0, 2.0, 0.0], &[2, 2]);
    /// let nz = x.nonzero();
    /// assert_eq!(nz.shape(), &[2, 2]);
    /// assert_eq!(nz.to_vec::<i64>(), vec![0, 1, 1, 0]);
    /// ```
    #[track_caller]
    pub fn nonzero(&self) -> Tensor {
        let m = self.to_array::<bool>();
        let rank = m.ndim();
        let mut v = Vec::new();
        let mut n = 0;
        for (p, &b) in m.indexed_iter() {
            if b {
                v.extend(ndarray::Dimension::slice(&p).iter().map(|&i| i as i64));
                n += 1;
            }
        }
        Tensor::from_vec(v, &[n, rank])
    }

    /// One-hot encoding of an `I64` tensor of class indices: shape `[..., num_classes]`,
    /// `I64`, 1 at each index (PyTorch's `one_hot`). `num_classes = -1` takes the largest
    /// index plus one. Not differentiable; convert with `to_dtype` for float targets.
    ///
    /// # Panics
    /// If the tensor is not `I64`, or an index is negative or not below `num_classes`.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let y = Tensor::from_vec(vec![2i64, 0], &[2]);
    /// assert_eq!(y.one_hot(3).to_vec::<i64>(), vec![0, 0, 1, 1, 0, 0]);
    /// assert_eq!(y.one_hot(-1).shape(), &[2, 3]);
    /// ```
    #[track_caller]
    pub fn one_hot(&self, num_classes: isize) -> Tensor {
        let idx = index_values("one_hot", self);
        let n = if num_classes < 0 {
            idx.iter().max().map_or(0, |&m| m + 1)
        } else {
            num_classes as usize
        };
        if let Some(&bad) = idx.iter().find(|&&i| i >= n) {
            panic!("one_hot: class index {bad} is not below num_classes {n}");
        }
        let mut shape = idx.shape().to_vec();
        shape.push(n);
        let mut v = vec![0i64; idx.len() * n];
        for (k, &i) in idx.iter().enumerate() {
            v[k * n + i] = 1;
        }
        Tensor::from_vec(v, &shape)
    }

    /// Sorts along `dim` (ascending, or descending if `descending`), returning the sorted
    /// values and the `I64` indices they came from (PyTorch's `sort`). The sort is
    /// stable (equal values keep their order) and NaN sorts above every number.
    /// Gradient: `g` back to the positions the values came from.
    ///
    /// # Panics
    /// If `dim` is out of range.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let x = Tensor::from_vec(vec![3.0f32, 1.0, 2.0], &[3]);
    /// let (v, i) = x.sort(0, false);
    /// assert_eq!(v.to_vec::<f32>(), vec![1.0, 2.0, 3.0]);
    /// assert_eq!(i.to_vec::<i64>(), vec![1, 2, 0]);
    /// ```
    #[track_caller]
    pub fn sort(&self, dim: isize, descending: bool) -> (Tensor, Tensor) {
        let (axis, idx) = self.argsort_idx("sort", dim, descending);
        let values = self.gather_idx(axis, Arc::new(idx.clone()));
        (values, Tensor::from_indices(idx))
    }

    /// The `I64` indices that sort the tensor along `dim` (see [`sort`](Self::sort)).
    ///
    /// # Panics
    /// If `dim` is out of range.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let x = Tensor::from_vec(vec![3i64, 1, 2], &[3]);
    /// assert_eq!(x.argsort(0, true).to_vec::<i64>(), vec![0, 2, 1]);
    /// ```
    #[track_caller]
    pub fn argsort(&self, dim: isize, descending: bool) -> Tensor {
        Tensor::from_indices(self.argsort_idx("argsort", dim, descending).1)
    }

    #[track_caller]
    fn argsort_idx(&self, op: &str, dim: isize, descending: bool) -> (usize, ArrayD<usize>) {
        if self.rank() == 0 {
            norm_axis(op, dim, 1);
            return (0, ArrayD::from_elem(IxDyn(&[]), 0));
        }
        let axis = norm_axis(op, dim, self.rank());
        let idx = dispatch!(any self.data(), |a| argsort(&a.view(), axis, descending));
        (axis, idx)
    }

    /// The `k` largest (or smallest, if `!largest`) elements along `dim` and their `I64`
    /// indices (PyTorch's `topk`). The values come in order (largest first, or smallest
    /// first) whether or not `sorted` is asked for; ties keep their input order. Gradient:
    /// `g` back to the positions the values came from.
    ///
    /// # Panics
    /// If `dim` is out of range or `k` exceeds the size of `dim`.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f32, 5.0, 3.0, 4.0], &[4]);
    /// let (v, i) = x.topk(2, 0, true, true);
    /// assert_eq!(v.to_vec::<f32>(), vec![5.0, 4.0]);
    /// assert_eq!(i.to_vec::<i64>(), vec![1, 3]);
    /// ```
    #[track_caller]
    pub fn topk(&self, k: usize, dim: isize, largest: bool, sorted: bool) -> (Tensor, Tensor) {
        let _ = sorted;
        let size = if self.rank() == 0 {
            1
        } else {
            self.shape()[norm_axis("topk", dim, self.rank())]
        };
        if k > size {
            panic!(
                "topk: k = {k} is larger than the size {size} of axis {dim} (shape {:?})",
                self.shape()
            );
        }
        let (axis, idx) = self.argsort_idx("topk", dim, largest);
        let idx = if self.rank() == 0 {
            idx
        } else {
            idx.slice_axis(Axis(axis), ndarray::Slice::from(0..k))
                .to_owned()
        };
        let values = self.gather_idx(axis, Arc::new(idx.clone()));
        (values, Tensor::from_indices(idx))
    }
}

/// A 1-d (or 0-d) `I64` index tensor as a vector.
#[track_caller]
fn vector_index(op: &str, index: &Tensor) -> Vec<usize> {
    if index.rank() > 1 {
        panic!("{op}: the index must be 1-d, got shape {:?}", index.shape());
    }
    index_values(op, index).into_iter().collect()
}

#[track_caller]
fn check_vector_index(op: &str, idx: &[usize], shape: &[usize], axis: usize, dim: isize) {
    let size = shape[axis];
    if let Some(&bad) = idx.iter().find(|&&i| i >= size) {
        panic!("{op}: index {bad} is out of range for axis {dim} of size {size} (shape {shape:?})");
    }
}

#[track_caller]
fn check_index(op: &str, shape: &[usize], axis: usize, index: &ArrayD<usize>, limit: &[usize]) {
    if index.ndim() != shape.len() {
        panic!(
            "{op}: index has rank {} but the input has rank {} (shape {shape:?})",
            index.ndim(),
            shape.len()
        );
    }
    for (d, (&i, &s)) in index.shape().iter().zip(limit).enumerate() {
        if d != axis && i > s {
            panic!(
                "{op}: index shape {:?} exceeds the input shape {shape:?} on axis {d}",
                index.shape()
            );
        }
    }
    if let Some(&bad) = index.iter().find(|&&i| i >= shape[axis]) {
        panic!(
            "{op}: index {bad} is out of range for axis {axis} of size {}",
            shape[axis]
        );
    }
}

fn index_inputs(rng: &mut rand::rngs::StdRng, dtype: DType) -> Vec<Tensor> {
    let s = [rng.gen_range(2..5), rng.gen_range(1..4)];
    vec![random_tensor(rng, &s, Domain::Real, dtype)]
}

fn gather_index(shape: &[usize]) -> Tensor {
    // Deterministic given the shape, with repeats, so gradients accumulate.
    Tensor::from_indices(ArrayD::from_shape_fn(
        IxDyn(&[shape[0], shape[1] + 1]),
        |i| (i[0] * 7 + i[1] * 3) % shape[1],
    ))
}

/// For `scatter`: in each row a different column per position (no repeats, so the
/// result does not depend on the write order), `cols` of the row's `shape[1]`.
fn scatter_index(shape: &[usize], cols: usize) -> Tensor {
    Tensor::from_indices(ArrayD::from_shape_fn(IxDyn(&[shape[0], cols]), |i| {
        (i[0] + i[1] * 2 + 1) % shape[1]
    }))
}

fn scatter_inputs(rng: &mut rand::rngs::StdRng, dtype: DType) -> Vec<Tensor> {
    let s = [rng.gen_range(1..4), rng.gen_range(2..5)];
    let src = [s[0], s[1] + 1];
    vec![
        random_tensor(rng, &s, Domain::Real, dtype),
        random_tensor(rng, &src, Domain::Real, dtype),
    ]
}

/// `scatter` inputs: a `[r, 5]` base and a `[r, 2]` source (indices `i+1`, `i+3` mod 5,
/// distinct in each row).
fn scatter_unique_inputs(rng: &mut rand::rngs::StdRng, dtype: DType) -> Vec<Tensor> {
    let r = rng.gen_range(1..4);
    vec![
        random_tensor(rng, &[r, 5], Domain::Real, dtype),
        random_tensor(rng, &[r, 2], Domain::Real, dtype),
    ]
}

fn index_add_inputs(rng: &mut rand::rngs::StdRng, dtype: DType) -> Vec<Tensor> {
    let c = rng.gen_range(1..4);
    vec![
        random_tensor(rng, &[3, c], Domain::Real, dtype),
        random_tensor(rng, &[4, c], Domain::Real, dtype),
    ]
}

/// Distinct values (at least 0.1 apart) in a random shape of rank 1 to 3, so that a
/// finite-difference step never reorders them.
fn distinct_inputs(rng: &mut rand::rngs::StdRng, dtype: DType) -> Vec<Tensor> {
    let rank = rng.gen_range(1..=3);
    let shape: Vec<usize> = (0..rank).map(|_| rng.gen_range(1..5)).collect();
    let n: usize = shape.iter().product();
    let mut v: Vec<f64> = (0..n).map(|i| -2.0 + 0.15 * i as f64).collect();
    for i in (1..n).rev() {
        v.swap(i, rng.gen_range(0..=i));
    }
    vec![Tensor::from_vec(v, &shape).to_dtype(dtype)]
}

fn row_mask(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec((0..n).map(|i| i % 3 != 1).collect::<Vec<bool>>(), shape)
}

/// The rows of the op table for this family.
pub(crate) const ROWS: &[OpSpec] = &[
    OpSpec::new(
        "index_select",
        Inputs::Custom(index_inputs),
        |x| x[0].index_select(0, &Tensor::from_vec(vec![1i64, 0, 1], &[3])),
        "g added back at the indices",
    )
    .note("repeated indices accumulate their gradients"),
    OpSpec::new(
        "index_add",
        Inputs::Custom(index_add_inputs),
        |x| x[0].index_add(0, &Tensor::from_vec(vec![2i64, 0, 2, 1], &[4]), &x[1]),
        "g for self, index_select(g) for source",
    )
    .note("repeated indices accumulate"),
    OpSpec::new(
        "gather",
        Inputs::Custom(index_inputs),
        |x| {
            let t = x[0].t();
            t.gather(1, &gather_index(t.shape()))
        },
        "g scatter-added back",
    ),
    OpSpec::new(
        "scatter_add",
        Inputs::Custom(scatter_inputs),
        |x| x[0].scatter_add(1, &gather_index(x[0].shape()), &x[1]),
        "g for self, gather(g) for src",
    ),
    OpSpec::new(
        "scatter",
        Inputs::Custom(scatter_unique_inputs),
        |x| x[0].scatter(1, &scatter_index(x[0].shape(), 2), &x[1]),
        "g zeroed where written for self, gather(g) for src",
    )
    .note("repeated indices: the last write wins (PyTorch: unspecified)"),
    OpSpec::new(
        "masked_select",
        Inputs::Unary(Domain::Real),
        |x| x[0].masked_select(&row_mask(x[0].shape())),
        "g back at the selected positions",
    )
    .note("the mask gets no gradient"),
    OpSpec::new(
        "sort",
        Inputs::Custom(distinct_inputs),
        |x| x[0].sort(-1, true).0,
        "g back to where each value came from",
    )
    .note("stable: ties keep their order (and their gradient positions); NaN sorts last"),
    OpSpec::new(
        "topk",
        Inputs::Custom(distinct_inputs),
        |x| {
            let k = x[0].shape()[0].min(2);
            x[0].topk(k, 0, false, true).0
        },
        "g back to where each value came from, 0 elsewhere",
    )
    .note("ties keep their input order"),
];

#[cfg(test)]
mod tests {
    use crate::{DType, Tensor};

    fn idx(v: &[i64]) -> Tensor {
        Tensor::from_vec(v.to_vec(), &[v.len()])
    }

    #[test]
    fn repeated_indices_accumulate() {
        let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0], &[3]).requires_grad();
        let g = x.index_select(0, &idx(&[2, 0, 2])).sum().backward();
        assert_eq!(g[&x].to_vec::<f64>(), vec![1.0, 0.0, 2.0]);
    }

    #[test]
    #[should_panic(expected = "index_select: index 3 is out of range for axis 0 of size 3")]
    fn index_out_of_range_panics() {
        let _ = Tensor::zeros(&[3], DType::F32).index_select(0, &idx(&[3]));
    }

    #[test]
    #[should_panic(expected = "index_select: indices must be an i64 tensor, got f32 [1]")]
    fn float_indices_panic() {
        let _ = Tensor::zeros(&[3], DType::F32).index_select(0, &Tensor::zeros(&[1], DType::F32));
    }

    #[test]
    #[should_panic(expected = "gather: index -1 is negative")]
    fn negative_index_panics() {
        let _ =
            Tensor::zeros(&[2, 2], DType::F32).gather(1, &Tensor::from_vec(vec![-1i64], &[1, 1]));
    }

    #[test]
    #[should_panic(expected = "gather: index 5 is out of range for axis 1 of size 2")]
    fn gather_out_of_range_panics() {
        let i = Tensor::from_vec(vec![5i64], &[1, 1]);
        let _ = Tensor::zeros(&[2, 2], DType::F32).gather(1, &i);
    }

    #[test]
    fn layout_ops_work_on_integers_and_bools() {
        let x = Tensor::from_vec(vec![10i64, 20, 30, 40], &[2, 2]);
        assert_eq!(x.t().to_vec::<i64>(), vec![10, 30, 20, 40]);
        assert_eq!(x.index_select(1, &idx(&[1])).to_vec::<i64>(), vec![20, 40]);
        assert_eq!(
            x.reshape(&[-1]).narrow(0, 1, 2).to_vec::<i64>(),
            vec![20, 30]
        );
        let b = x.gt_scalar(15.0);
        assert_eq!(b.unsqueeze(0).broadcast_to(&[2, 2, 2]).shape(), &[2, 2, 2]);
        assert_eq!(Tensor::cat(&[b.clone(), b], 0).shape(), &[4, 2]);
    }

    #[test]
    fn scatter_overwrites_and_its_gradient_skips_written_positions() {
        let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0], &[3]).requires_grad();
        let src = Tensor::from_vec(vec![10.0f64, 20.0], &[2]).requires_grad();
        let y = x.scatter(0, &idx(&[2, 0]), &src);
        assert_eq!(y.to_vec::<f64>(), vec![20.0, 2.0, 10.0]);
        let w = Tensor::from_vec(vec![1.0f64, 2.0, 3.0], &[3]);
        let g = y.mul(&w).sum().backward();
        assert_eq!(g[&x].to_vec::<f64>(), vec![0.0, 2.0, 0.0]);
        assert_eq!(g[&src].to_vec::<f64>(), vec![3.0, 1.0]);
    }

    #[test]
    fn sort_is_stable_and_puts_nan_last() {
        let x = Tensor::from_vec(vec![2.0f64, f64::NAN, 1.0, 2.0, -1.0], &[5]);
        let (v, i) = x.sort(0, false);
        assert_eq!(i.to_vec::<i64>(), vec![4, 2, 0, 3, 1]);
        assert!(v.to_vec::<f64>()[4].is_nan());
        let (_, i) = x.sort(0, true);
        assert_eq!(i.to_vec::<i64>(), vec![1, 0, 3, 2, 4]);
        let m = Tensor::from_vec(vec![3i64, 1, 2, 9, 8, 7], &[2, 3]);
        let (v, i) = m.sort(1, false);
        assert_eq!(v.to_vec::<i64>(), vec![1, 2, 3, 7, 8, 9]);
        assert_eq!(i.to_vec::<i64>(), vec![1, 2, 0, 2, 1, 0]);
    }

    #[test]
    fn topk_smallest_along_rows_and_its_gradient() {
        let x = Tensor::from_vec(vec![4.0f64, 1.0, 3.0, 0.5, 5.0, 2.0], &[2, 3]).requires_grad();
        let (v, i) = x.topk(2, 1, false, true);
        assert_eq!(v.to_vec::<f64>(), vec![1.0, 3.0, 0.5, 2.0]);
        assert_eq!(i.to_vec::<i64>(), vec![1, 2, 0, 2]);
        let g = v.sum().backward();
        assert_eq!(g[&x].to_vec::<f64>(), vec![0.0, 1.0, 1.0, 1.0, 0.0, 1.0]);
    }

    #[test]
    #[should_panic(expected = "topk: k = 4 is larger than the size 3 of axis 0")]
    fn topk_too_large_panics() {
        let _ = Tensor::zeros(&[3], DType::F32).topk(4, 0, true, true);
    }

    #[test]
    fn nonzero_masked_select_and_one_hot() {
        let x = Tensor::from_vec(vec![0i64, 3, 0, 0, 5, 6], &[2, 3]);
        assert_eq!(x.nonzero().to_vec::<i64>(), vec![0, 1, 1, 1, 1, 2]);
        assert_eq!(Tensor::zeros(&[2], DType::F32).nonzero().shape(), &[0, 1]);
        let f = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).requires_grad();
        let row = Tensor::from_vec(vec![true, false, true], &[3]);
        let s = f.masked_select(&row);
        assert_eq!(s.to_vec::<f64>(), vec![1.0, 3.0, 4.0, 6.0]);
        let g = s.sum().backward();
        assert_eq!(g[&f].to_vec::<f64>(), vec![1.0, 0.0, 1.0, 1.0, 0.0, 1.0]);
        let oh = idx(&[1, 0]).one_hot(2);
        assert_eq!(oh.dtype(), DType::I64);
        assert_eq!(oh.to_vec::<i64>(), vec![0, 1, 1, 0]);
    }

    #[test]
    #[should_panic(expected = "one_hot: class index 3 is not below num_classes 3")]
    fn one_hot_out_of_range_panics() {
        let _ = idx(&[3]).one_hot(3);
    }

    #[test]
    fn index_add_accumulates() {
        let x = Tensor::ones(&[3, 2], DType::F64).requires_grad();
        let src = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], &[2, 2]).requires_grad();
        let y = x.index_add(0, &idx(&[2, 2]), &src);
        assert_eq!(y.to_vec::<f64>(), vec![1.0, 1.0, 1.0, 1.0, 5.0, 7.0]);
        let w = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0], &[3, 2]);
        let g = y.mul(&w).sum().backward();
        assert_eq!(g[&src].to_vec::<f64>(), vec![5.0, 6.0, 5.0, 6.0]);
        assert_eq!(g[&x].to_vec::<f64>(), w.to_vec::<f64>());
    }
}
