//! Layout ops: triangles (`tril`, `triu`), diagonals (`diagonal`, `diag`, `trace`) and
//! copies (`repeat`, `tile`, `repeat_interleave`, `flip`, `roll`). All are linear, so
//! each rule is the op's transpose: a triangle and a flip are their own, a diagonal's
//! is placing `g` back on the diagonal (whose own rule is taking the diagonal again);
//! the copies are compositions of `broadcast_to`, `reshape`, `narrow` and `cat`.

use rand::Rng;

use super::table::{random_shape, random_tensor, Domain, Inputs, OpSpec};
use crate::autograd::node::Op;
use crate::dtype::DType;
use crate::kernels::layout;
use crate::shape::{norm_axes, norm_axis, Shape};
use crate::storage::{dispatch, Data};
use crate::tensor::Tensor;

/// Panics unless `t` has at least two axes (the matrices of a triangle op).
#[track_caller]
fn check_matrix(op: &str, t: &Tensor) {
    if t.rank() < 2 {
        panic!(
            "{op}: expects a matrix or a batch of matrices (rank >= 2), got shape {:?}",
            t.shape()
        );
    }
}

impl Tensor {
    /// The lower triangle of each matrix (last two axes): element `(i, j)` is kept where
    /// `j - i <= diagonal` and set to 0 elsewhere (`diagonal = 0` keeps the main
    /// diagonal, `-1` drops it, `1` keeps one more). Gradient: `g.tril(diagonal)`. Masked
    /// elements are replaced, not multiplied by 0, so infinities above the band never
    /// become NaN. PyTorch: `torch.tril(x, diagonal)`.
    ///
    /// # Panics
    /// If the tensor has rank below 2.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let x = Tensor::ones(&[3, 3], tapegrad::DType::F32);
    /// assert_eq!(x.tril(0).to_vec::<f32>(), vec![1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0]);
    /// assert_eq!(x.tril(-1).sum().item(), 3.0);
    /// ```
    #[track_caller]
    pub fn tril(&self, diagonal: isize) -> Tensor {
        check_matrix("tril", self);
        let value = dispatch!(self.data(), |a| {
            Data::from(layout::triangle(&a.force().view(), diagonal, true))
        });
        Op::new("tril", &[self], value).rule(move |_, g| g.tril(diagonal))
    }

    /// The upper triangle of each matrix (last two axes): element `(i, j)` is kept where
    /// `j - i >= diagonal` and set to 0 elsewhere. Gradient: `g.triu(diagonal)`. A causal
    /// attention mask is `Tensor::full(&[l, l], f64::NEG_INFINITY, dt).triu(1)`.
    /// PyTorch: `torch.triu(x, diagonal)`.
    ///
    /// # Panics
    /// If the tensor has rank below 2.
    ///
    /// ```
    /// use tapegrad::{DType, Tensor};
    /// let m = Tensor::full(&[2, 2], f64::NEG_INFINITY, DType::F64).triu(1);
    /// assert_eq!(m.to_vec::<f64>(), vec![0.0, f64::NEG_INFINITY, 0.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn triu(&self, diagonal: isize) -> Tensor {
        check_matrix("triu", self);
        let value = dispatch!(self.data(), |a| {
            Data::from(layout::triangle(&a.force().view(), diagonal, false))
        });
        Op::new("triu", &[self], value).rule(move |_, g| g.triu(diagonal))
    }

    /// Diagonal `offset` of the matrices spanned by axes `dim1` and `dim2`: those two axes
    /// are removed and the diagonal `x[.., i, .., i + offset, ..]` is appended as the last
    /// axis (offset > 0 is above the main diagonal, < 0 below). Gradient: `g` placed back
    /// on that diagonal, zeros elsewhere. PyTorch: `torch.diagonal(x, offset, dim1, dim2)`
    /// (a copy here, not a view).
    ///
    /// # Panics
    /// If an axis is out of range or `dim1` and `dim2` are the same axis.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let x = Tensor::arange(0.0, 6.0, 1.0, tapegrad::DType::F32).reshape(&[2, 3]);
    /// assert_eq!(x.diagonal(0, 0, 1).to_vec::<f32>(), vec![0.0, 4.0]);
    /// assert_eq!(x.diagonal(1, 0, 1).to_vec::<f32>(), vec![1.0, 5.0]);
    /// assert_eq!(x.diagonal(-1, 0, 1).to_vec::<f32>(), vec![3.0]);
    /// ```
    #[track_caller]
    pub fn diagonal(&self, offset: isize, dim1: isize, dim2: isize) -> Tensor {
        let (d1, d2) = (
            norm_axis("diagonal", dim1, self.rank()),
            norm_axis("diagonal", dim2, self.rank()),
        );
        if d1 == d2 || self.rank() < 2 {
            panic!(
                "diagonal: dim1 = {dim1} and dim2 = {dim2} must be two different axes of the tensor of shape {:?}",
                self.shape()
            );
        }
        let full = Shape::from_slice(self.shape());
        let value = dispatch!(self.data(), |a| {
            Data::from(layout::diagonal(&a.force().view(), offset, d1, d2))
        });
        Op::new("diagonal", &[self], value)
            .rule(move |_, g| g.diagonal_place(&full, offset, d1, d2))
    }

    /// Zeros of `full` with `self` on diagonal `offset` of axes `d1`, `d2`: the gradient
    /// of `diagonal` (and `diag` of a vector), whose own gradient is `diagonal` again.
    #[track_caller]
    fn diagonal_place(&self, full: &[usize], offset: isize, d1: usize, d2: usize) -> Tensor {
        let full = Shape::from_slice(full);
        let value = dispatch!(self.data(), |a| {
            Data::from(layout::diagonal_place(
                &a.force().view(),
                &full,
                offset,
                d1,
                d2,
            ))
        });
        Op::new("diagonal_backward", &[self], value)
            .rule(move |_, g| g.diagonal(offset, d1 as isize, d2 as isize))
    }

    /// PyTorch's `torch.diag(x, diagonal)`: a vector of length `n` becomes the square
    /// matrix of size `n + |diagonal|` with the vector on diagonal `diagonal` and zeros
    /// elsewhere; a matrix gives its diagonal `diagonal` as a vector. Gradient: the
    /// diagonal of `g` (vector input), or `g` placed on the diagonal (matrix input).
    ///
    /// # Panics
    /// If the tensor is not rank 1 or 2.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let v = Tensor::from_vec(vec![1.0f32, 2.0], &[2]);
    /// assert_eq!(v.diag(0).to_vec::<f32>(), vec![1.0, 0.0, 0.0, 2.0]);
    /// assert_eq!(v.diag(1).shape(), &[3, 3]);
    /// assert_eq!(v.diag(0).diag(0).to_vec::<f32>(), vec![1.0, 2.0]);
    /// ```
    #[track_caller]
    pub fn diag(&self, diagonal: isize) -> Tensor {
        match self.rank() {
            1 => {
                let n = self.shape()[0] + diagonal.unsigned_abs();
                self.diagonal_place(&[n, n], diagonal, 0, 1)
            }
            2 => self.diagonal(diagonal, 0, 1),
            r => panic!(
                "diag: expects a vector or a matrix, got rank {r} (shape {:?}); use diagonal for batches",
                self.shape()
            ),
        }
    }

    /// The sum of the main diagonal of a matrix (any `m x n`). Gradient: `g` times the
    /// identity (on the main diagonal, zeros elsewhere). PyTorch: `torch.trace(x)`.
    ///
    /// # Panics
    /// If the tensor is not a matrix.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let x = Tensor::arange(0.0, 9.0, 1.0, tapegrad::DType::F64).reshape(&[3, 3]);
    /// assert_eq!(x.trace().item(), 12.0);
    /// ```
    #[track_caller]
    pub fn trace(&self) -> Tensor {
        if self.rank() != 2 {
            panic!("trace: expects a matrix, got shape {:?}", self.shape());
        }
        self.diagonal(0, 0, 1).sum()
    }

    /// Repeats the whole tensor `repeats[i]` times along axis `i` (PyTorch's
    /// `x.repeat(*sizes)`): the output's size on each axis is `repeats[i]` times the
    /// input's. If `repeats` is longer than the rank, the input is first viewed with
    /// leading axes of size 1. Gradient: `g` summed over the copies.
    ///
    /// # Panics
    /// If `repeats` has fewer entries than the tensor has axes.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0], &[2]);
    /// assert_eq!(x.repeat(&[2]).to_vec::<f32>(), vec![1.0, 2.0, 1.0, 2.0]);
    /// assert_eq!(x.repeat(&[2, 1]).shape(), &[2, 2]);
    /// ```
    #[track_caller]
    pub fn repeat(&self, repeats: &[usize]) -> Tensor {
        if repeats.len() < self.rank() {
            panic!(
                "repeat: {} repeats {repeats:?} for a tensor of rank {} (shape {:?}); give at least one per axis",
                repeats.len(),
                self.rank(),
                self.shape()
            );
        }
        let mut padded = vec![1usize; repeats.len() - self.rank()];
        padded.extend_from_slice(self.shape());
        let (mut interleaved, mut target, mut out) = (Vec::new(), Vec::new(), Vec::new());
        for (&r, &d) in repeats.iter().zip(&padded) {
            interleaved.extend([1, d]);
            target.extend([r, d]);
            out.push(r * d);
        }
        self.reshape_to(&interleaved)
            .broadcast_to(&target)
            .reshape_to(&out)
    }

    /// PyTorch's `torch.tile(x, dims)`: [`repeat`](Self::repeat), except that a `dims`
    /// shorter than the rank is padded with leading 1s (repeating the last axes).
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2]);
    /// assert_eq!(x.tile(&[2]).to_vec::<f32>(), vec![1.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 4.0]);
    /// ```
    #[track_caller]
    pub fn tile(&self, dims: &[usize]) -> Tensor {
        let mut reps = vec![1usize; self.rank().saturating_sub(dims.len())];
        reps.extend_from_slice(dims);
        self.repeat(&reps)
    }

    /// Repeats each element `repeats` times in place along `dim` (`[a, b]` becomes
    /// `[a, a, b, b]`); with `dim = None` the tensor is flattened first, as PyTorch's
    /// `torch.repeat_interleave(x, repeats, dim=None)`. Gradient: `g` summed over each
    /// element's copies.
    ///
    /// # Panics
    /// If `dim` is out of range.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2]);
    /// assert_eq!(x.repeat_interleave(2, Some(0)).to_vec::<f32>(), vec![1.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 4.0]);
    /// assert_eq!(x.repeat_interleave(2, None).to_vec::<f32>(), vec![1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0]);
    /// ```
    #[track_caller]
    pub fn repeat_interleave(&self, repeats: usize, dim: Option<isize>) -> Tensor {
        let Some(dim) = dim else {
            return self
                .reshape_to(&[self.numel()])
                .repeat_interleave(repeats, Some(0));
        };
        let a = norm_axis("repeat_interleave", dim, self.rank());
        if self.rank() == 0 {
            return self.reshape_to(&[1]).repeat_interleave(repeats, Some(0));
        }
        let mut target = self.shape().to_vec();
        target.insert(a + 1, repeats);
        let mut out = self.shape().to_vec();
        out[a] *= repeats;
        self.unsqueeze(a as isize + 1)
            .broadcast_to(&target)
            .reshape_to(&out)
    }

    /// Reverses the order of the elements along each axis in `dims`. Gradient:
    /// `g.flip(dims)`. PyTorch: `torch.flip(x, dims)`.
    ///
    /// # Panics
    /// If an axis is out of range or repeated.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let x = Tensor::arange(0.0, 4.0, 1.0, tapegrad::DType::F32).reshape(&[2, 2]);
    /// assert_eq!(x.flip(&[1]).to_vec::<f32>(), vec![1.0, 0.0, 3.0, 2.0]);
    /// assert_eq!(x.flip(&[0, 1]).to_vec::<f32>(), vec![3.0, 2.0, 1.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn flip(&self, dims: &[isize]) -> Tensor {
        if dims.is_empty() {
            return self.clone();
        }
        let axes = norm_axes("flip", dims, self.rank());
        let rule_dims = dims.to_vec();
        let value = dispatch!(self.data(), |a| {
            Data::from(layout::flip(&a.force().view(), &axes))
        });
        Op::new("flip", &[self], value).rule(move |_, g| g.flip(&rule_dims))
    }

    /// Rolls the elements along each `dims[i]` by `shifts[i]` positions: element `k`
    /// moves to `(k + shift) mod n`, and those pushed past the end come back at the
    /// start. With `dims` empty the tensor is rolled as if flattened (one shift), then
    /// given its shape back. Gradient: `g` rolled back. PyTorch: `torch.roll(x, shifts,
    /// dims)`.
    ///
    /// # Panics
    /// If `shifts` and `dims` differ in length (or `dims` is empty and there is not one
    /// shift), or an axis is out of range.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let x = Tensor::arange(0.0, 5.0, 1.0, tapegrad::DType::F32);
    /// assert_eq!(x.roll(&[2], &[0]).to_vec::<f32>(), vec![3.0, 4.0, 0.0, 1.0, 2.0]);
    /// assert_eq!(x.roll(&[-1], &[]).to_vec::<f32>(), vec![1.0, 2.0, 3.0, 4.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn roll(&self, shifts: &[isize], dims: &[isize]) -> Tensor {
        if dims.is_empty() {
            if shifts.len() != 1 {
                panic!("roll: without dims, give exactly one shift, got {shifts:?}");
            }
            return self
                .reshape_to(&[self.numel()])
                .roll(shifts, &[0])
                .reshape_to(self.shape());
        }
        if shifts.len() != dims.len() {
            panic!(
                "roll: {} shifts {shifts:?} for {} dims {dims:?}; give one shift per dim",
                shifts.len(),
                dims.len()
            );
        }
        let axes: Vec<usize> = dims
            .iter()
            .map(|&d| norm_axis("roll", d, self.rank()))
            .collect();
        if self.rank() == 0 {
            return self.clone();
        }
        let mut out = self.clone();
        for (&shift, &a) in shifts.iter().zip(&axes) {
            let n = self.shape()[a];
            if n == 0 {
                continue;
            }
            let s = shift.rem_euclid(n as isize) as usize;
            if s == 0 {
                continue;
            }
            out = Tensor::cat(
                &[
                    out.narrow(a as isize, n - s, s),
                    out.narrow(a as isize, 0, n - s),
                ],
                a as isize,
            );
        }
        out
    }
}

// ---------------------------------------------------------------- op table rows

/// A batch of matrices: rank 2 or 3, sizes 1..=4.
fn matrices(rng: &mut rand::rngs::StdRng, dtype: DType) -> Vec<Tensor> {
    let mut s = random_shape(rng, 1, 2);
    s.extend([rng.gen_range(1..=4), rng.gen_range(1..=4)]);
    vec![random_tensor(rng, &s, Domain::Real, dtype)]
}

/// A matrix (rank 2, sizes 1..=4).
fn matrix(rng: &mut rand::rngs::StdRng, dtype: DType) -> Vec<Tensor> {
    let s = [rng.gen_range(1..=4), rng.gen_range(1..=4)];
    vec![random_tensor(rng, &s, Domain::Real, dtype)]
}

/// A vector or a matrix.
fn vector_or_matrix(rng: &mut rand::rngs::StdRng, dtype: DType) -> Vec<Tensor> {
    let s = random_shape(rng, 1, 4);
    let s = if s.is_empty() || rng.gen_bool(0.5) {
        vec![rng.gen_range(1..=4), rng.gen_range(1..=4)]
    } else {
        s
    };
    vec![random_tensor(rng, &s, Domain::Real, dtype)]
}

/// Rank 1 to 3, sizes 1..=4.
fn ranked(rng: &mut rand::rngs::StdRng, dtype: DType) -> Vec<Tensor> {
    let mut s = random_shape(rng, 2, 3);
    s.insert(0, rng.gen_range(1..=4));
    vec![random_tensor(rng, &s, Domain::Real, dtype)]
}

/// An offset in `-1..=1` derived from the shape, so random shapes vary it.
fn offset_of(t: &Tensor) -> isize {
    (t.shape()[t.rank() - 1] % 3) as isize - 1
}

/// The rows of the op table for this family.
pub(crate) const ROWS: &[OpSpec] = &[
    OpSpec::new(
        "tril",
        Inputs::Custom(matrices),
        |x| x[0].tril(offset_of(&x[0])),
        "g.tril(diagonal)",
    )
    .note("masked elements are replaced by 0, not multiplied, so -inf above the band stays finite"),
    OpSpec::new(
        "triu",
        Inputs::Custom(matrices),
        |x| x[0].triu(offset_of(&x[0])),
        "g.triu(diagonal)",
    ),
    OpSpec::new(
        "diagonal",
        Inputs::Custom(matrices),
        |x| x[0].diagonal(offset_of(&x[0]), -1, 0),
        "g placed on the diagonal, 0 elsewhere",
    ),
    OpSpec::new(
        "diag",
        Inputs::Custom(vector_or_matrix),
        |x| x[0].diag(offset_of(&x[0])),
        "vector: diagonal of g; matrix: g placed on the diagonal",
    ),
    OpSpec::new(
        "trace",
        Inputs::Custom(matrix),
        |x| x[0].trace(),
        "g * identity",
    ),
    OpSpec::new(
        "repeat",
        Inputs::Unary(Domain::Real),
        |x| {
            let reps: Vec<usize> = (0..=x[0].rank()).map(|i| 1 + i % 2).collect();
            x[0].repeat(&reps)
        },
        "g summed over the copies",
    ),
    OpSpec::new(
        "tile",
        Inputs::Unary(Domain::Real),
        |x| x[0].tile(&[2, 1]),
        "g summed over the copies",
    ),
    OpSpec::new(
        "repeat_interleave",
        Inputs::Unary(Domain::Real),
        |x| {
            let dim = (x[0].rank() > 0).then_some(-1);
            x[0].repeat_interleave(2, dim)
        },
        "g summed over each element's copies",
    ),
    OpSpec::new(
        "flip",
        Inputs::Custom(ranked),
        |x| {
            let dims: Vec<isize> = (0..x[0].rank() as isize).step_by(2).collect();
            x[0].flip(&dims)
        },
        "g.flip(dims)",
    ),
    OpSpec::new(
        "roll",
        Inputs::Custom(ranked),
        |x| {
            if x[0].rank() >= 2 {
                x[0].roll(&[1, -2], &[0, -1])
            } else {
                x[0].roll(&[2], &[])
            }
        },
        "g rolled back",
    ),
];

#[cfg(test)]
mod tests {
    use crate::{DType, Tensor};

    #[test]
    fn triangles_of_a_batch_with_offsets() {
        let x = Tensor::ones(&[2, 2, 3], DType::F64);
        assert_eq!(
            x.tril(0).to_vec::<f64>(),
            [1., 0., 0., 1., 1., 0.].repeat(2)
        );
        assert_eq!(
            x.triu(1).to_vec::<f64>(),
            [0., 1., 1., 0., 0., 1.].repeat(2)
        );
        assert_eq!(x.tril(-2).sum().item(), 0.0);
        assert_eq!(x.triu(-5).sum().item(), 12.0);
        let w = Tensor::ones(&[3, 2], DType::F64).requires_grad();
        let g = w.triu(0).mul_scalar(3.0).sum().backward();
        assert_eq!(g[&w].to_vec::<f64>(), vec![3., 3., 0., 3., 0., 0.]);
    }

    #[test]
    fn diagonal_of_non_adjacent_axes_and_its_gradient() {
        let x = Tensor::arange(0.0, 24.0, 1.0, DType::F64)
            .reshape(&[2, 3, 4])
            .requires_grad();
        // Axes 2 (dim1) and 0 (dim2), offset -1: d[j, l] = x[l, j, l + 1] for l in 0..2.
        let d = x.diagonal(-1, 2, 0);
        assert_eq!(d.shape(), &[3, 2]);
        assert_eq!(d.to_vec::<f64>(), vec![1.0, 14.0, 5.0, 18.0, 9.0, 22.0]);
        let g = d.sum().backward()[&x].to_vec::<f64>();
        let ones: Vec<usize> = (0..24).filter(|&k| g[k] == 1.0).collect();
        assert_eq!(ones, vec![1, 5, 9, 14, 18, 22]);
        assert_eq!(g.iter().sum::<f64>(), 6.0);
    }

    #[test]
    fn diag_offsets_and_trace_gradient() {
        let v = Tensor::from_vec(vec![1.0f64, 2.0], &[2]);
        assert_eq!(
            v.diag(-1).to_vec::<f64>(),
            vec![0., 0., 0., 1., 0., 0., 0., 2., 0.]
        );
        let m = Tensor::ones(&[2, 3], DType::F64).requires_grad();
        assert_eq!(m.trace().item(), 2.0);
        let g = m.trace().backward();
        assert_eq!(g[&m].to_vec::<f64>(), vec![1., 0., 0., 0., 1., 0.]);
    }

    #[test]
    fn copies_sum_their_gradients() {
        let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0], &[3]).requires_grad();
        let w = Tensor::arange(0.0, 12.0, 1.0, DType::F64).reshape(&[2, 6]);
        let y = x.repeat(&[2, 2]);
        assert_eq!(y.shape(), &[2, 6]);
        let g = y.mul(&w).sum().backward();
        // x[k] appears at columns k and k + 3 of both rows.
        assert_eq!(g[&x].to_vec::<f64>(), vec![18.0, 22.0, 26.0]);
        let w = Tensor::arange(0.0, 6.0, 1.0, DType::F64);
        let g = x.repeat_interleave(2, Some(0)).mul(&w).sum().backward();
        assert_eq!(g[&x].to_vec::<f64>(), vec![1.0, 5.0, 9.0]);
    }

    #[test]
    fn roll_matches_pytorch() {
        // torch.roll(torch.arange(6).view(2, 3), shifts=(1, -1), dims=(0, 1))
        let x = Tensor::arange(0.0, 6.0, 1.0, DType::F32).reshape(&[2, 3]);
        assert_eq!(
            x.roll(&[1, -1], &[0, 1]).to_vec::<f32>(),
            vec![4.0, 5.0, 3.0, 1.0, 2.0, 0.0]
        );
        assert_eq!(
            x.roll(&[7], &[]).to_vec::<f32>(),
            vec![5.0, 0.0, 1.0, 2.0, 3.0, 4.0]
        );
    }

    #[test]
    #[should_panic(
        expected = "tril: expects a matrix or a batch of matrices (rank >= 2), got shape [3]"
    )]
    fn tril_of_a_vector_panics() {
        let _ = Tensor::zeros(&[3], DType::F32).tril(0);
    }

    #[test]
    #[should_panic(expected = "repeat: 1 repeats [2] for a tensor of rank 2")]
    fn repeat_needs_one_per_axis() {
        let _ = Tensor::zeros(&[2, 2], DType::F32).repeat(&[2]);
    }

    #[test]
    #[should_panic(expected = "diagonal: dim1 = 0 and dim2 = -2 must be two different axes")]
    fn diagonal_same_axis_panics() {
        let _ = Tensor::zeros(&[2, 2], DType::F32).diagonal(0, 0, -2);
    }
}
