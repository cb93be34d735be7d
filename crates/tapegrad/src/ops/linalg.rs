//! Linear algebra: matmul (1-D, 2-D and batched with broadcast batch dims, PyTorch
//! semantics), permute, transpose, t.

use rand::Rng;
use smallvec::smallvec;

use super::check_same_dtype;
use super::table::{random_shape, random_tensor, Domain, Inputs, OpSpec};
use crate::autograd::node::Op;
use crate::dtype::DType;
use crate::kernels::matmul::matmul_batched;
use crate::shape::{broadcast_shapes, norm_axis, Shape};
use crate::storage::{dispatch, Data};
use crate::tensor::Tensor;

/// Whether the last two axes of an array are stored column-major (a transposed view of a
/// row-major matrix, or stack of them).
fn swapped_last_axes(d: &Data) -> bool {
    dispatch!(d, |a| {
        let a = a.force();
        let (shape, strides) = (a.shape(), a.strides());
        let r = shape.len();
        r >= 2 && shape[r - 1] > 1 && shape[r - 2] > 1 && strides[r - 2] == 1 && strides[r - 1] != 1
    })
}

impl Tensor {
    /// Matrix product with PyTorch's `torch.matmul` semantics: 1-D x 1-D is a dot
    /// product; a 1-D left (right) operand is treated as a row (column) vector and that
    /// axis removed from the result; rank >= 2 operands are stacks of matrices whose batch
    /// dimensions broadcast. Gradient: `g @ b^T` and `a^T @ g`, summed over broadcast
    /// batch dimensions.
    ///
    /// # Panics
    /// If either operand is rank 0, dtypes differ, inner dimensions differ, or batch
    /// dimensions do not broadcast.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    /// let v = Tensor::from_vec(vec![1.0f32, 0.0, -1.0], &[3]);
    /// assert_eq!(a.matmul(&v).to_vec::<f32>(), vec![-2.0, -2.0]);
    /// ```
    #[track_caller]
    pub fn matmul(&self, other: &Tensor) -> Tensor {
        check_same_dtype("matmul", self, other);
        if self.rank() == 0 || other.rank() == 0 {
            panic!(
                "matmul: both operands need at least one dimension, got shapes {:?} and {:?}; use mul for scalars",
                self.shape(),
                other.shape()
            );
        }
        let k1 = self.shape()[self.rank() - 1];
        let k2 = other.shape()[other.rank().saturating_sub(2)];
        if k1 != k2 {
            panic!(
                "matmul: inner dimensions differ: {:?} @ {:?} ({k1} != {k2})",
                self.shape(),
                other.shape()
            );
        }
        match (self.rank(), other.rank()) {
            // A stack of matrices times one matrix (or vector), as in a linear layer on
            // [batch, seq, features]: fold the stack into the rows of one product, as
            // PyTorch does. Backward is then two plain products; the batched form would
            // compute one weight gradient per matrix of the stack and sum them.
            (r, 1 | 2) if r > 2 => {
                let mut out_shape = self.shape()[..r - 1].to_vec();
                if other.rank() == 2 {
                    out_shape.push(other.shape()[1]);
                }
                self.reshape(&[-1, k1 as isize])
                    .matmul(other)
                    .reshape_to(&out_shape)
            }
            (1, 1) => self
                .unsqueeze(0)
                .matmul_nd(&other.unsqueeze(1))
                .reshape_to(&[]),
            (1, _) => self.unsqueeze(0).matmul_nd(other).squeeze(-2),
            (_, 1) => self.matmul_nd(&other.unsqueeze(1)).squeeze(-1),
            _ => self.matmul_nd(other),
        }
    }

    #[track_caller]
    fn matmul_nd(&self, other: &Tensor) -> Tensor {
        let (sa, sb) = (
            Shape::from_slice(self.shape()),
            Shape::from_slice(other.shape()),
        );
        let (k1, k2) = (sa[sa.len() - 1], sb[sb.len() - 2]);
        if k1 != k2 {
            panic!(
                "matmul: inner dimensions differ: {:?} @ {:?} ({k1} != {k2})",
                self.shape(),
                other.shape()
            );
        }
        if broadcast_shapes(&sa[..sa.len() - 2], &sb[..sb.len() - 2]).is_none() {
            panic!(
                "matmul: batch dimensions of {:?} and {:?} cannot be broadcast together",
                self.shape(),
                other.shape()
            );
        }
        let (sa_store, sb_store) = (self.force(), other.force());
        // Gradients take their input's layout (PyTorch's gradient layout contract): the
        // gradient of a transposed view, like `w.t()` in a linear layer, is computed as
        // the transpose of a row-major product, so the gradient `t` hands back to `w` is
        // row-major like `w` and the optimiser's loop over both runs contiguously.
        let (a_swapped, b_swapped) = (swapped_last_axes(&sa_store), swapped_last_axes(&sb_store));
        let value = dispatch!((sa_store, sb_store), |a, b| {
            let (a, b) = (a.force(), b.force());
            Data::from(matmul_batched(&a.view(), &b.view()))
        });
        Op::new("matmul", &[self, other], value)
            .save_for(1, self)
            .save_for(0, other)
            .rule(move |ctx, g| {
                let grad_a = || {
                    let b = ctx.saved(1);
                    if a_swapped {
                        b.matmul_nd(&g.transpose(-1, -2)).transpose(-1, -2)
                    } else {
                        g.matmul_nd(&b.transpose(-1, -2))
                    }
                };
                let grad_b = || {
                    let a = ctx.saved(0);
                    if b_swapped {
                        g.transpose(-1, -2).matmul_nd(a).transpose(-1, -2)
                    } else {
                        a.transpose(-1, -2).matmul_nd(g)
                    }
                };
                smallvec![
                    ctx.needs_grad(0).then(|| grad_a().sum_to(&sa)),
                    ctx.needs_grad(1).then(|| grad_b().sum_to(&sb))
                ]
            })
    }

    /// Reorders the axes: axis `i` of the result is axis `perm[i]` of the input. No copy
    /// (a strided view). Gradient: `g` permuted back.
    ///
    /// # Panics
    /// If `perm` is not a permutation of `0..rank`.
    #[track_caller]
    pub fn permute(&self, perm: &[usize]) -> Tensor {
        let mut seen = vec![false; self.rank()];
        let valid = perm.len() == self.rank()
            && perm
                .iter()
                .all(|&p| p < seen.len() && !std::mem::replace(&mut seen[p], true));
        if !valid {
            panic!(
                "permute: {perm:?} is not a permutation of the {} axes of a tensor of shape {:?}",
                self.rank(),
                self.shape()
            );
        }
        let mut inverse = vec![0usize; perm.len()];
        for (i, &p) in perm.iter().enumerate() {
            inverse[p] = i;
        }
        let axes = perm.to_vec();
        let value = dispatch!(any self.data(), |a| {
            Data::from(a.permuted_axes(axes.clone()))
        });
        Op::new("permute", &[self], value).rule(move |_, g| g.permute(&inverse))
    }

    /// Swaps axes `dim0` and `dim1` (negative counts from the end).
    ///
    /// # Panics
    /// If an axis is out of range.
    #[track_caller]
    pub fn transpose(&self, dim0: isize, dim1: isize) -> Tensor {
        let (a, b) = (
            norm_axis("transpose", dim0, self.rank()),
            norm_axis("transpose", dim1, self.rank()),
        );
        if a == b {
            return self.clone();
        }
        let mut perm: Vec<usize> = (0..self.rank()).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// Transpose of a matrix (rank 0 and 1 are returned unchanged, as in PyTorch).
    ///
    /// # Panics
    /// If the rank is above 2.
    #[track_caller]
    pub fn t(&self) -> Tensor {
        match self.rank() {
            0 | 1 => self.clone(),
            2 => self.transpose(0, 1),
            r => panic!(
                "t: expects a tensor of rank <= 2, got rank {r} (shape {:?}); use transpose",
                self.shape()
            ),
        }
    }
}

fn matmul_inputs(rng: &mut rand::rngs::StdRng, dtype: DType) -> Vec<Tensor> {
    let (m, k, n) = (
        rng.gen_range(1..4),
        rng.gen_range(1..4),
        rng.gen_range(1..4),
    );
    let (sa, sb): (Vec<usize>, Vec<usize>) = match rng.gen_range(0..7) {
        0 => (vec![k], vec![k]),
        1 => (vec![k], vec![k, n]),
        2 => (vec![m, k], vec![k]),
        3 => (vec![m, k], vec![k, n]),
        4 => (vec![2, m, k], vec![k, n]),
        5 => (vec![2, 3, m, k], vec![k]),
        _ => (vec![2, 1, m, k], vec![3, k, n]),
    };
    vec![
        random_tensor(rng, &sa, Domain::Real, dtype),
        random_tensor(rng, &sb, Domain::Real, dtype),
    ]
}

fn rank3_input(rng: &mut rand::rngs::StdRng, dtype: DType) -> Vec<Tensor> {
    let s = [
        rng.gen_range(1..4),
        rng.gen_range(1..4),
        rng.gen_range(1..4),
    ];
    vec![random_tensor(rng, &s, Domain::Real, dtype)]
}

/// The rows of the op table for this family.
pub(crate) const ROWS: &[OpSpec] = &[
    OpSpec::new(
        "t",
        Inputs::Custom(|rng, dtype| {
            let shape = random_shape(rng, 2, 3);
            vec![random_tensor(rng, &shape, Domain::Real, dtype)]
        }),
        |x| x[0].t(),
        "g^T",
    ),
    OpSpec::new(
        "matmul",
        Inputs::Custom(matmul_inputs),
        |x| x[0].matmul(&x[1]),
        "g@b^T, a^T@g (batch dims summed)",
    ),
    OpSpec::new(
        "permute",
        Inputs::Custom(rank3_input),
        |x| x[0].permute(&[2, 0, 1]),
        "g permuted back",
    ),
    OpSpec::new(
        "transpose",
        Inputs::Custom(rank3_input),
        |x| x[0].transpose(0, -1),
        "g transposed back",
    ),
];

#[cfg(test)]
mod tests {
    use crate::{DType, Tensor};

    #[test]
    fn batched_matmul_broadcasts_batch_dims() {
        let a = Tensor::ones(&[2, 1, 2, 3], DType::F64);
        let b = Tensor::ones(&[4, 3, 5], DType::F64);
        let c = a.matmul(&b);
        assert_eq!(c.shape(), &[2, 4, 2, 5]);
        assert!(c.to_vec::<f64>().iter().all(|&v| v == 3.0));
    }

    #[test]
    fn dot_product_of_vectors() {
        let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3]);
        let c = a.matmul(&a);
        assert_eq!(c.shape(), &[] as &[usize]);
        assert_eq!(c.item(), 14.0);
    }

    #[test]
    #[should_panic(expected = "matmul: inner dimensions differ: [2, 3] @ [4, 5] (3 != 4)")]
    fn matmul_shape_mismatch_panics() {
        let _ = Tensor::zeros(&[2, 3], DType::F32).matmul(&Tensor::zeros(&[4, 5], DType::F32));
    }

    #[test]
    #[should_panic(expected = "matmul: inner dimensions differ: [3] @ [4, 4] (3 != 4)")]
    fn matmul_vector_mismatch_names_original_shapes() {
        let _ = Tensor::zeros(&[3], DType::F32).matmul(&Tensor::zeros(&[4, 4], DType::F32));
    }

    #[test]
    #[should_panic(expected = "permute: [0, 0] is not a permutation")]
    fn bad_permutation_panics() {
        let _ = Tensor::zeros(&[2, 3], DType::F32).permute(&[0, 0]);
    }
}
