//! Shape ops: reshape, flatten, squeeze, unsqueeze, narrow, slice (with step), cat,
//! stack, split, chunk, pad. Views where ndarray allows them (slices share storage).

use ndarray::{Axis, IxDyn, Slice};
use rand::Rng;
use smallvec::smallvec;

use super::check_same_dtype;
use super::table::{random_shape, random_tensor, Domain, Inputs, OpSpec};
use crate::autograd::node::{GradList, Op};
use crate::dtype::DType;
use crate::kernels::index::unslice;
use crate::shape::{norm_axis, norm_insert_axis, numel, Shape};
use crate::storage::{dispatch, Data};
use crate::tensor::Tensor;

impl Tensor {
    /// A tensor with the same elements in row-major order and a new shape; one size may
    /// be `-1` and is inferred. Shares storage when the input is contiguous. Gradient: `g`
    /// reshaped back.
    ///
    /// # Panics
    /// If the element counts differ, or more than one size is `-1`.
    ///
    /// ```
    /// let x = tapegrad::Tensor::arange(0.0, 6.0, 1.0, tapegrad::DType::F32);
    /// assert_eq!(x.reshape(&[2, -1]).shape(), &[2, 3]);
    /// ```
    #[track_caller]
    pub fn reshape(&self, shape: &[isize]) -> Tensor {
        let inferred = shape.iter().filter(|&&s| s < 0).count();
        if inferred > 1 {
            panic!("reshape: only one size may be -1, got {shape:?}");
        }
        let known: usize = shape
            .iter()
            .filter(|&&s| s >= 0)
            .map(|&s| s as usize)
            .product();
        // Checked here, not in the closure below: a panic there would point at this file.
        if inferred == 1 && (known == 0 || !self.numel().is_multiple_of(known)) {
            panic!(
                "reshape: cannot reshape {:?} ({} elements) into {shape:?}",
                self.shape(),
                self.numel()
            )
        }
        let dims: Vec<usize> = shape
            .iter()
            .map(|&s| {
                if s >= 0 {
                    s as usize
                } else {
                    self.numel() / known
                }
            })
            .collect();
        self.reshape_to(&dims)
    }

    /// [`reshape`](Self::reshape) to an explicit shape.
    ///
    /// # Panics
    /// If the element counts differ.
    #[track_caller]
    pub fn reshape_to(&self, shape: &[usize]) -> Tensor {
        if numel(shape) != self.numel() {
            panic!(
                "reshape: cannot reshape {:?} ({} elements) into {shape:?} ({} elements)",
                self.shape(),
                self.numel(),
                numel(shape)
            );
        }
        if shape == self.shape() {
            return self.clone();
        }
        let in_shape = Shape::from_slice(self.shape());
        let target = IxDyn(shape);
        let value = dispatch!(any self.data(), |a| {
            Data::from({
                if a.is_standard_layout() {
                    a.into_shape_with_order(target.clone())
                        .expect("contiguous reshape")
                } else {
                    a.as_standard_layout()
                        .into_owned()
                        .into_shape_with_order(target.clone())
                        .expect("contiguous reshape")
                        .into_shared()
                }
            })
        });
        Op::new("reshape", &[self], value).rule(move |_, g| g.reshape_to(&in_shape))
    }

    /// Merges axes `start..=end` into one (PyTorch's `flatten(start_dim, end_dim)`).
    ///
    /// # Panics
    /// If an axis is out of range or `start > end`.
    #[track_caller]
    pub fn flatten(&self, start: isize, end: isize) -> Tensor {
        if self.rank() == 0 {
            return self.reshape_to(&[1]);
        }
        let (s, e) = (
            norm_axis("flatten", start, self.rank()),
            norm_axis("flatten", end, self.rank()),
        );
        assert!(
            s <= e,
            "flatten: start axis {start} comes after end axis {end} for shape {:?}",
            self.shape()
        );
        let mut shape: Vec<usize> = self.shape()[..s].to_vec();
        shape.push(self.shape()[s..=e].iter().product());
        shape.extend_from_slice(&self.shape()[e + 1..]);
        self.reshape_to(&shape)
    }

    /// Removes axis `dim` if it has size 1 (otherwise returns the tensor unchanged, as
    /// PyTorch does).
    ///
    /// # Panics
    /// If `dim` is out of range.
    #[track_caller]
    pub fn squeeze(&self, dim: isize) -> Tensor {
        if self.rank() == 0 {
            return self.clone();
        }
        let a = norm_axis("squeeze", dim, self.rank());
        if self.shape()[a] != 1 {
            return self.clone();
        }
        let mut shape = self.shape().to_vec();
        shape.remove(a);
        self.reshape_to(&shape)
    }

    /// Removes every axis of size 1.
    #[track_caller]
    pub fn squeeze_all(&self) -> Tensor {
        let shape: Vec<usize> = self.shape().iter().copied().filter(|&d| d != 1).collect();
        self.reshape_to(&shape)
    }

    /// Inserts an axis of size 1 at `dim` (`-1` appends).
    ///
    /// # Panics
    /// If `dim` is outside `-(rank+1) ..= rank`.
    #[track_caller]
    pub fn unsqueeze(&self, dim: isize) -> Tensor {
        let a = norm_insert_axis("unsqueeze", dim, self.rank());
        let mut shape = self.shape().to_vec();
        shape.insert(a, 1);
        self.reshape_to(&shape)
    }

    /// `length` elements along `dim` starting at `start` (a view).
    ///
    /// # Panics
    /// If `dim` is out of range or `start + length` exceeds the axis.
    #[track_caller]
    pub fn narrow(&self, dim: isize, start: usize, length: usize) -> Tensor {
        let a = norm_axis("narrow", dim, self.rank());
        let size = self.shape()[a];
        if start + length > size {
            panic!("narrow: start {start} + length {length} exceeds size {size} of axis {dim} (shape {:?})", self.shape());
        }
        self.slice(dim, start, start + length, 1)
    }

    /// Elements `start, start + step, ...` below `end` along `dim` (Python's
    /// `x[..., start:end:step]`); `end` is clamped to the axis size. A view. Gradient: `g`
    /// placed back at those positions, zeros elsewhere.
    ///
    /// # Panics
    /// If `dim` is out of range, `step` is 0 or `start > end`.
    ///
    /// ```
    /// let x = tapegrad::Tensor::arange(0.0, 6.0, 1.0, tapegrad::DType::F32);
    /// assert_eq!(x.slice(0, 1, 6, 2).to_vec::<f32>(), vec![1.0, 3.0, 5.0]);
    /// ```
    #[track_caller]
    pub fn slice(&self, dim: isize, start: usize, end: usize, step: usize) -> Tensor {
        let axis = norm_axis("slice", dim, self.rank());
        let size = self.shape()[axis];
        let end = end.min(size);
        if step == 0 || start > end {
            panic!("slice: invalid range {start}..{end} step {step} on axis {dim} of size {size}");
        }
        if start == 0 && end == size && step == 1 {
            return self.clone();
        }
        let full = Shape::from_slice(self.shape());
        let value = dispatch!(any self.data(), |a| {
            Data::from({
                let mut v = a;
                v.slice_axis_inplace(
                    Axis(axis),
                    Slice::new(start as isize, Some(end as isize), step as isize),
                );
                v
            })
        });
        Op::new("slice", &[self], value).rule(move |_, g| g.unslice(&full, axis, start, step))
    }

    /// The gradient of `slice`: zeros of `full`, with `self` at `start, start+step, ...`
    /// along `axis`. Its own gradient is the slice again.
    #[track_caller]
    fn unslice(&self, full: &[usize], axis: usize, start: usize, step: usize) -> Tensor {
        if self.shape()[axis] == 0 {
            // An empty slice took nothing: its gradient is all zeros and nothing flows back.
            return Tensor::zeros(full, self.dtype());
        }
        let value = dispatch!(self.data(), |a| {
            let a = a.force().into_owned();
            Data::from(unslice(&a.view(), full, axis, start, step))
        });
        let len = self.shape()[axis];
        Op::new("slice_backward", &[self], value).rule(move |_, g| {
            smallvec![Some(g.slice(
                axis as isize,
                start,
                start + (len.max(1) - 1) * step + 1,
                step
            ))]
        })
    }

    /// Concatenates tensors along `dim` (all other sizes must match). Gradient: each
    /// input gets its slice of `g`.
    ///
    /// # Panics
    /// If the list is empty, dtypes or ranks differ, or a size other than `dim` differs.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let a = Tensor::ones(&[1, 2], tapegrad::DType::F32);
    /// let b = Tensor::zeros(&[2, 2], tapegrad::DType::F32);
    /// assert_eq!(Tensor::cat(&[a, b], 0).shape(), &[3, 2]);
    /// ```
    #[track_caller]
    pub fn cat(tensors: &[Tensor], dim: isize) -> Tensor {
        let Some(first) = tensors.first() else {
            panic!("cat: needs at least one tensor")
        };
        let axis = norm_axis("cat", dim, first.rank());
        for (i, t) in tensors.iter().enumerate() {
            check_same_dtype("cat", first, t);
            let same = t.rank() == first.rank()
                && t.shape()
                    .iter()
                    .zip(first.shape())
                    .enumerate()
                    .all(|(d, (a, b))| d == axis || a == b);
            if !same {
                panic!(
                    "cat: tensor {i} has shape {:?}, incompatible with {:?} (all sizes but axis {dim} must match)",
                    t.shape(),
                    first.shape()
                );
            }
        }
        let lengths: Vec<usize> = tensors.iter().map(|t| t.shape()[axis]).collect();
        let forced: Vec<Data> = tensors.iter().map(|t| t.force()).collect();
        let value = dispatch!(any first.data(), |_first| {
            let views: Vec<_> = forced
                .iter()
                .map(|d| d.array::<E>().expect("dtypes checked").view())
                .collect();
            Data::from(
                ndarray::concatenate(Axis(axis), &views)
                    .expect("shapes checked")
                    .into_shared(),
            )
        });
        let inputs: Vec<&Tensor> = tensors.iter().collect();
        Op::new("cat", &inputs, value).rule(move |ctx, g| {
            let mut offset = 0;
            lengths
                .iter()
                .enumerate()
                .map(|(i, &len)| {
                    let piece = ctx
                        .needs_grad(i)
                        .then(|| g.narrow(axis as isize, offset, len));
                    offset += len;
                    piece
                })
                .collect::<GradList>()
        })
    }

    /// Stacks same-shape tensors along a new axis `dim`.
    ///
    /// # Panics
    /// If the list is empty or the shapes or dtypes differ.
    #[track_caller]
    pub fn stack(tensors: &[Tensor], dim: isize) -> Tensor {
        let Some(first) = tensors.first() else {
            panic!("stack: needs at least one tensor")
        };
        for (i, t) in tensors.iter().enumerate() {
            if t.shape() != first.shape() {
                panic!(
                    "stack: tensor {i} has shape {:?}, tensor 0 has {:?}; all must match",
                    t.shape(),
                    first.shape()
                );
            }
        }
        let unsqueezed: Vec<Tensor> = tensors.iter().map(|t| t.unsqueeze(dim)).collect();
        Tensor::cat(&unsqueezed, dim)
    }

    /// Splits along `dim` into pieces of `size` (the last may be smaller).
    ///
    /// # Panics
    /// If `size` is 0 or `dim` is out of range.
    #[track_caller]
    pub fn split(&self, size: usize, dim: isize) -> Vec<Tensor> {
        assert!(size > 0, "split: size must be positive");
        let axis = norm_axis("split", dim, self.rank());
        let n = self.shape()[axis];
        (0..n)
            .step_by(size)
            .map(|s| self.narrow(dim, s, size.min(n - s)))
            .collect()
    }

    /// Splits along `dim` into `chunks` pieces of equal size (the last may be smaller;
    /// fewer pieces if the axis is short), as PyTorch's `chunk`.
    ///
    /// # Panics
    /// If `chunks` is 0 or `dim` is out of range.
    #[track_caller]
    pub fn chunk(&self, chunks: usize, dim: isize) -> Vec<Tensor> {
        assert!(chunks > 0, "chunk: the number of chunks must be positive");
        let axis = norm_axis("chunk", dim, self.rank());
        let n = self.shape()[axis];
        self.split(n.div_ceil(chunks).max(1), dim)
    }

    /// Pads with a constant. `pads[i] = (before, after)` applies to axis `rank - 1 - i`,
    /// the last axis first, as PyTorch's `F.pad`. Gradient: the un-padded slice of `g`.
    ///
    /// # Panics
    /// If more pairs are given than the tensor has axes.
    ///
    /// ```
    /// let x = tapegrad::Tensor::ones(&[1, 2], tapegrad::DType::F32);
    /// let p = x.pad(&[(1, 0)], 0.0);
    /// assert_eq!(p.to_vec::<f32>(), vec![0.0, 1.0, 1.0]);
    /// ```
    #[track_caller]
    pub fn pad(&self, pads: &[(usize, usize)], value: f64) -> Tensor {
        if pads.len() > self.rank() {
            panic!(
                "pad: {} (before, after) pairs for a tensor of rank {} (shape {:?})",
                pads.len(),
                self.rank(),
                self.shape()
            );
        }
        let mut out = self.clone();
        for (i, &(before, after)) in pads.iter().enumerate() {
            if before == 0 && after == 0 {
                continue;
            }
            let axis = self.rank() - 1 - i;
            let mut pieces = Vec::with_capacity(3);
            let side = |n: usize| {
                let mut s = out.shape().to_vec();
                s[axis] = n;
                Tensor::full(&s, value, self.dtype())
            };
            if before > 0 {
                pieces.push(side(before));
            }
            let after_piece = (after > 0).then(|| side(after));
            pieces.push(out.clone());
            pieces.extend(after_piece);
            out = Tensor::cat(&pieces, axis as isize);
        }
        out
    }
}

fn rank2plus(rng: &mut rand::rngs::StdRng, dtype: DType) -> Vec<Tensor> {
    let mut s = random_shape(rng, 2, 3);
    s.insert(0, rng.gen_range(3..6));
    vec![random_tensor(rng, &s, Domain::Real, dtype)]
}

fn cat_inputs(rng: &mut rand::rngs::StdRng, dtype: DType) -> Vec<Tensor> {
    let mut s = random_shape(rng, 2, 3);
    s.insert(0, 1);
    let mut s2 = s.clone();
    s2[0] = rng.gen_range(1..4);
    vec![
        random_tensor(rng, &s, Domain::Real, dtype),
        random_tensor(rng, &s2, Domain::Real, dtype),
    ]
}

fn stack_inputs(rng: &mut rand::rngs::StdRng, dtype: DType) -> Vec<Tensor> {
    let s = random_shape(rng, 3, 3);
    vec![
        random_tensor(rng, &s, Domain::Real, dtype),
        random_tensor(rng, &s, Domain::Real, dtype),
    ]
}

/// The rows of the op table for this family.
pub(crate) const ROWS: &[OpSpec] = &[
    OpSpec::new(
        "reshape_to",
        Inputs::Unary(Domain::Real),
        |x| x[0].reshape_to(&[x[0].numel()]),
        "g reshaped back",
    ),
    OpSpec::new(
        "squeeze_all",
        Inputs::Unary(Domain::Real),
        |x| x[0].squeeze_all(),
        "g reshaped back",
    ),
    OpSpec::new(
        "reshape",
        Inputs::Unary(Domain::Real),
        |x| x[0].reshape(&[-1]),
        "g reshaped back",
    ),
    OpSpec::new(
        "flatten",
        Inputs::Custom(rank2plus),
        |x| x[0].flatten(0, -1),
        "g reshaped back",
    ),
    OpSpec::new(
        "unsqueeze",
        Inputs::Unary(Domain::Real),
        |x| x[0].unsqueeze(0),
        "g reshaped back",
    ),
    OpSpec::new(
        "squeeze",
        Inputs::Unary(Domain::Real),
        |x| x[0].unsqueeze(-1).squeeze(-1),
        "g reshaped back",
    ),
    OpSpec::new(
        "narrow",
        Inputs::Custom(rank2plus),
        |x| x[0].narrow(0, 1, 2),
        "g in the window, 0 elsewhere",
    ),
    OpSpec::new(
        "slice",
        Inputs::Custom(rank2plus),
        |x| x[0].slice(0, 0, 5, 2),
        "g at the taken positions, 0 elsewhere",
    ),
    OpSpec::new(
        "cat",
        Inputs::Custom(cat_inputs),
        |x| Tensor::cat(x, 0),
        "each input's slice of g",
    ),
    OpSpec::new(
        "stack",
        Inputs::Custom(stack_inputs),
        |x| Tensor::stack(x, -1),
        "each input's slice of g",
    ),
    OpSpec::new(
        "split",
        Inputs::Custom(rank2plus),
        |x| x[0].split(2, 0)[1].clone(),
        "g in the piece, 0 elsewhere",
    ),
    OpSpec::new(
        "chunk",
        Inputs::Custom(rank2plus),
        |x| x[0].chunk(2, 0)[0].clone(),
        "g in the piece, 0 elsewhere",
    ),
    OpSpec::new(
        "pad",
        Inputs::Custom(rank2plus),
        |x| x[0].pad(&[(1, 2)], 0.5),
        "the un-padded slice of g",
    ),
];

#[cfg(test)]
mod tests {
    use crate::{DType, Tensor};

    #[test]
    fn slice_gradient_is_placed_back() {
        let x = Tensor::arange(0.0, 6.0, 1.0, DType::F64).requires_grad();
        let g = x.slice(0, 1, 6, 2).sum().backward();
        assert_eq!(g[&x].to_vec::<f64>(), vec![0.0, 1.0, 0.0, 1.0, 0.0, 1.0]);
    }

    #[test]
    fn empty_slice_has_zero_gradient() {
        // Found by the op-argument property tests: backward through an empty slice
        // panicked in the scatter-back kernel (a window of one for zero elements).
        let x = Tensor::arange(0.0, 3.0, 1.0, DType::F64).requires_grad();
        for (start, end) in [(1, 1), (3, 3), (0, 0)] {
            let y = x.slice(0, start, end, 2);
            assert_eq!(y.shape(), &[0]);
            assert_eq!(y.sum().backward()[&x].to_vec::<f64>(), vec![0.0; 3]);
        }
        let g = x.narrow(0, 2, 0).sum().backward_with_graph();
        assert_eq!(g[&x].to_vec::<f64>(), vec![0.0; 3]);
    }

    #[test]
    fn split_and_chunk_sizes() {
        let x = Tensor::arange(0.0, 7.0, 1.0, DType::F32);
        let sizes: Vec<usize> = x.split(3, 0).iter().map(|t| t.numel()).collect();
        assert_eq!(sizes, vec![3, 3, 1]);
        let sizes: Vec<usize> = x.chunk(2, 0).iter().map(|t| t.numel()).collect();
        assert_eq!(sizes, vec![4, 3]);
    }

    #[test]
    fn reshape_of_transposed_copies_in_logical_order() {
        let x = Tensor::arange(0.0, 6.0, 1.0, DType::F32).reshape(&[2, 3]);
        assert_eq!(
            x.t().reshape(&[-1]).to_vec::<f32>(),
            vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
        );
    }

    #[test]
    #[should_panic(expected = "reshape: cannot reshape [2, 3] (6 elements) into [4] (4 elements)")]
    fn reshape_bad_size_panics() {
        let _ = Tensor::zeros(&[2, 3], DType::F32).reshape(&[4]);
    }

    #[test]
    #[should_panic(expected = "cat: tensor 1 has shape [2, 3], incompatible with [2, 2]")]
    fn cat_bad_shapes_panics() {
        let _ = Tensor::cat(
            &[
                Tensor::zeros(&[2, 2], DType::F32),
                Tensor::zeros(&[2, 3], DType::F32),
            ],
            0,
        );
    }

    #[test]
    #[should_panic(expected = "narrow: start 2 + length 2 exceeds size 3")]
    fn narrow_out_of_range_panics() {
        let _ = Tensor::zeros(&[3], DType::F32).narrow(0, 2, 2);
    }
}
