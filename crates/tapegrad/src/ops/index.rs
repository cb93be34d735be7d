//! Indexing: index_select, gather, scatter_add (and index_add, the gradient of
//! index_select). Indices are `usize` arrays, checked against the axis they index.

use std::sync::Arc;

use ndarray::{ArrayD, Axis, IxDyn};
use rand::Rng;
use smallvec::smallvec;

use super::check_same_dtype;
use super::table::{random_tensor, Domain, Inputs, OpSpec};
use crate::autograd::node::Op;
use crate::dtype::DType;
use crate::kernels::index::{gather, index_add_zeros, scatter_add};
use crate::shape::{norm_axis, Shape};
use crate::storage::{dispatch, Data};
use crate::tensor::Tensor;

impl Tensor {
    /// Picks the slices `indices` along `dim` (repeats allowed). Gradient: `g` added back
    /// at those indices (repeated indices accumulate).
    ///
    /// # Panics
    /// If `dim` is out of range or an index is not below the axis size.
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3]);
    /// assert_eq!(x.index_select(0, &[2, 0, 2]).to_vec::<f32>(), vec![3.0, 1.0, 3.0]);
    /// ```
    #[track_caller]
    pub fn index_select(&self, dim: isize, indices: &[usize]) -> Tensor {
        let axis = norm_axis("index_select", dim, self.rank());
        let size = self.shape()[axis];
        if let Some(&bad) = indices.iter().find(|&&i| i >= size) {
            panic!("index_select: index {bad} is out of range for axis {dim} of size {size} (shape {:?})", self.shape());
        }
        let idx: Arc<[usize]> = indices.into();
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
            .rule(move |_, g| g.index_select(axis as isize, &idx))
    }

    /// `out[i][j][k] = self[i][index[i][j][k]][k]` for `dim = 1` (and likewise for any
    /// axis): the output has `index`'s shape. Gradient: `g` scatter-added back.
    ///
    /// # Panics
    /// If `index` has another rank, exceeds the input on an axis other than `dim`, or
    /// holds a value not below the size of `dim`.
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2]);
    /// let idx = ndarray::array![[1usize], [0]].into_dyn();
    /// assert_eq!(x.gather(1, &idx).to_vec::<f32>(), vec![2.0, 3.0]);
    /// ```
    #[track_caller]
    pub fn gather(&self, dim: isize, index: &ArrayD<usize>) -> Tensor {
        let axis = norm_axis("gather", dim, self.rank().max(1));
        check_index("gather", self.shape(), axis, index, self.shape());
        let idx = Arc::new(index.clone());
        let full = Shape::from_slice(self.shape());
        let value = dispatch!(any self.data(), |a| {
            Data::from(gather(&a.view(), axis, &idx.view()))
        });
        Op::new("gather", &[self], value).rule(move |_, g| {
            let zeros = Tensor::zeros(&full, g.dtype());
            smallvec![Some(zeros.scatter_add(axis as isize, &idx, g))]
        })
    }

    /// `out = self; out[i][index[i][j]] += src[i][j]` for `dim = 1` (and likewise for any
    /// axis). Gradient: `g` for `self`, `g.gather(dim, index)` for `src`.
    ///
    /// # Panics
    /// If dtypes differ, `src` does not have `index`'s shape, or an index is out of range.
    #[track_caller]
    pub fn scatter_add(&self, dim: isize, index: &ArrayD<usize>, src: &Tensor) -> Tensor {
        check_same_dtype("scatter_add", self, src);
        let axis = norm_axis("scatter_add", dim, self.rank().max(1));
        if index.shape() != src.shape() {
            panic!(
                "scatter_add: index shape {:?} differs from src shape {:?}",
                index.shape(),
                src.shape()
            );
        }
        check_index("scatter_add", self.shape(), axis, index, self.shape());
        let idx = Arc::new(index.clone());
        let value = dispatch!((self.data(), src.data()), |a, s| {
            let (a, s) = (a.force(), s.force());
            Data::from(scatter_add(&a.view(), axis, &idx.view(), &s.view()))
        });
        Op::new("scatter_add", &[self, src], value).rule(move |ctx, g| {
            smallvec![
                Some(g.clone()),
                ctx.needs_grad(1).then(|| g.gather(axis as isize, &idx))
            ]
        })
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

fn gather_index(shape: &[usize]) -> ArrayD<usize> {
    // Deterministic given the shape, with repeats, so gradients accumulate.
    ArrayD::from_shape_fn(IxDyn(&[shape[0], shape[1] + 1]), |i| {
        (i[0] * 7 + i[1] * 3) % shape[1]
    })
}

fn scatter_inputs(rng: &mut rand::rngs::StdRng, dtype: DType) -> Vec<Tensor> {
    let s = [rng.gen_range(1..4), rng.gen_range(2..5)];
    let src = [s[0], s[1] + 1];
    vec![
        random_tensor(rng, &s, Domain::Real, dtype),
        random_tensor(rng, &src, Domain::Real, dtype),
    ]
}

/// The rows of the op table for this family.
pub(crate) const ROWS: &[OpSpec] = &[
    OpSpec::new(
        "index_select",
        Inputs::Custom(index_inputs),
        |x| x[0].index_select(0, &[1, 0, 1]),
        "g added back at the indices",
    )
    .note("repeated indices accumulate their gradients"),
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
];

#[cfg(test)]
mod tests {
    use crate::{DType, Tensor};

    #[test]
    fn repeated_indices_accumulate() {
        let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0], &[3]).requires_grad();
        let g = x.index_select(0, &[2, 0, 2]).sum().backward();
        assert_eq!(g[&x].to_vec::<f64>(), vec![1.0, 0.0, 2.0]);
    }

    #[test]
    #[should_panic(expected = "index_select: index 3 is out of range for axis 0 of size 3")]
    fn index_out_of_range_panics() {
        let _ = Tensor::zeros(&[3], DType::F32).index_select(0, &[3]);
    }

    #[test]
    #[should_panic(expected = "gather: index 5 is out of range for axis 1 of size 2")]
    fn gather_out_of_range_panics() {
        let idx = ndarray::array![[5usize]].into_dyn();
        let _ = Tensor::zeros(&[2, 2], DType::F32).gather(1, &idx);
    }
}
