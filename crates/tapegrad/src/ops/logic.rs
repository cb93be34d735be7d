//! Logic and masks: logical and/or/xor/not (and the `&`, `|`, `^`, `!` operators on
//! `Bool` tensors), `any`/`all`, `count_nonzero`, and `masked_fill`. Comparisons and
//! `where_` live in `arith.rs`.

use ndarray::{ArcArray, Axis, IxDyn};

use super::check_broadcast;
use super::table::{Domain, Inputs, OpSpec};
use crate::autograd::node::Op;
use crate::dtype::DType;
use crate::kernels::logic::{select, zip_broadcast};
use crate::shape::{broadcast_shapes, norm_axes};
use crate::storage::{dispatch, Data};
use crate::tensor::Tensor;

impl Tensor {
    /// The values as a `bool` array: the tensor itself if it is `Bool`, else "non-zero".
    fn bools(&self) -> ArcArray<bool, IxDyn> {
        self.force()
            .convert(DType::Bool)
            .array::<bool>()
            .expect("converted to bool")
            .clone()
    }

    #[track_caller]
    fn logical(&self, op: &str, other: &Tensor, f: fn(bool, bool) -> bool) -> Tensor {
        let shape = check_broadcast(op, self, other);
        let (a, b) = (self.bools(), other.bools());
        Tensor::from_data(zip_broadcast(&a.view(), &b.view(), &shape, f))
    }

    /// Elementwise logical and, broadcasting, as a `Bool` tensor; inputs of another dtype
    /// count as true where non-zero (PyTorch's `logical_and`). Not differentiable.
    ///
    /// # Panics
    /// If the shapes do not broadcast.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let a = Tensor::from_vec(vec![true, true, false], &[3]);
    /// let b = Tensor::from_vec(vec![true, false, false], &[3]);
    /// assert_eq!(a.logical_and(&b).to_vec::<bool>(), vec![true, false, false]);
    /// assert_eq!((&a & &b).to_vec::<bool>(), vec![true, false, false]);
    /// ```
    #[track_caller]
    pub fn logical_and(&self, other: &Tensor) -> Tensor {
        self.logical("logical_and", other, |x, y| x && y)
    }

    /// Elementwise logical or (see [`logical_and`](Self::logical_and)).
    ///
    /// # Panics
    /// If the shapes do not broadcast.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let a = Tensor::from_vec(vec![true, false], &[2]);
    /// assert_eq!(a.logical_or(&Tensor::from_vec(vec![false], &[1])).to_vec::<bool>(), vec![true, false]);
    /// ```
    #[track_caller]
    pub fn logical_or(&self, other: &Tensor) -> Tensor {
        self.logical("logical_or", other, |x, y| x || y)
    }

    /// Elementwise logical exclusive or (see [`logical_and`](Self::logical_and)).
    ///
    /// # Panics
    /// If the shapes do not broadcast.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let a = Tensor::from_vec(vec![true, true, false], &[3]);
    /// let b = Tensor::from_vec(vec![true, false, false], &[3]);
    /// assert_eq!((&a ^ &b).to_vec::<bool>(), vec![false, true, false]);
    /// ```
    #[track_caller]
    pub fn logical_xor(&self, other: &Tensor) -> Tensor {
        self.logical("logical_xor", other, |x, y| x != y)
    }

    /// Elementwise logical not, as a `Bool` tensor (a non-bool input is true where
    /// non-zero, so the result is true where it is zero).
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let a = Tensor::from_vec(vec![true, false], &[2]);
    /// assert_eq!((!&a).to_vec::<bool>(), vec![false, true]);
    /// let x = Tensor::from_vec(vec![0.0f32, 2.0], &[2]);
    /// assert_eq!(x.logical_not().to_vec::<bool>(), vec![true, false]);
    /// ```
    #[track_caller]
    pub fn logical_not(&self) -> Tensor {
        Tensor::from_data(self.bools().mapv(|x| !x).into_shared())
    }

    /// Whether any element is true (non-zero), as a rank-0 `Bool` tensor (false when
    /// empty).
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let x = Tensor::from_vec(vec![0i64, 0, 3], &[3]);
    /// assert!(x.any().item_as::<bool>());
    /// assert!(!x.all().item_as::<bool>());
    /// ```
    #[track_caller]
    pub fn any(&self) -> Tensor {
        Tensor::scalar(self.bools().iter().any(|&x| x))
    }

    /// Whether every element is true (non-zero), as a rank-0 `Bool` tensor (true when
    /// empty).
    #[track_caller]
    pub fn all(&self) -> Tensor {
        Tensor::scalar(self.bools().iter().all(|&x| x))
    }

    /// [`any`](Self::any) along `dim`, keeping it as a size-1 axis if `keepdim`.
    ///
    /// # Panics
    /// If `dim` is out of range.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let m = Tensor::from_vec(vec![true, false, false, false], &[2, 2]);
    /// assert_eq!(m.any_dim(1, false).to_vec::<bool>(), vec![true, false]);
    /// assert_eq!(m.all_dim(0, true).shape(), &[1, 2]);
    /// ```
    #[track_caller]
    pub fn any_dim(&self, dim: isize, keepdim: bool) -> Tensor {
        self.bool_reduce("any_dim", dim, keepdim, false, |acc, x| acc || x)
    }

    /// [`all`](Self::all) along `dim`, keeping it as a size-1 axis if `keepdim`.
    ///
    /// # Panics
    /// If `dim` is out of range.
    #[track_caller]
    pub fn all_dim(&self, dim: isize, keepdim: bool) -> Tensor {
        self.bool_reduce("all_dim", dim, keepdim, true, |acc, x| acc && x)
    }

    #[track_caller]
    fn bool_reduce(
        &self,
        op: &str,
        dim: isize,
        keepdim: bool,
        init: bool,
        f: fn(bool, bool) -> bool,
    ) -> Tensor {
        let axis = norm_axes(op, &[dim], self.rank().max(1))[0];
        if self.rank() == 0 {
            return Tensor::scalar(f(init, self.bools().iter().all(|&x| x)));
        }
        let a = self.bools();
        let mut out = a.fold_axis(Axis(axis), init, |&acc, &x| f(acc, x));
        if keepdim {
            out.insert_axis_inplace(Axis(axis));
        }
        Tensor::from_data(out.into_shared())
    }

    /// The number of non-zero (true) elements over `dims` (all when empty), as an `I64`
    /// tensor without the reduced axes (PyTorch's `count_nonzero`).
    ///
    /// # Panics
    /// If an axis is out of range or repeated.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let x = Tensor::from_vec(vec![0.0f32, 1.5, -2.0, 0.0, 0.0, 3.0], &[2, 3]);
    /// assert_eq!(x.count_nonzero(&[]).item_as::<i64>(), 3);
    /// assert_eq!(x.count_nonzero(&[1]).to_vec::<i64>(), vec![2, 1]);
    /// ```
    #[track_caller]
    pub fn count_nonzero(&self, dims: &[isize]) -> Tensor {
        let axes = norm_axes("count_nonzero", dims, self.rank());
        let mut counts = self.bools().mapv(i64::from);
        let mut axes: Vec<usize> = if dims.is_empty() {
            (0..self.rank()).collect()
        } else {
            axes.to_vec()
        };
        axes.sort_unstable();
        for &a in axes.iter().rev() {
            counts = counts.sum_axis(Axis(a));
        }
        Tensor::from_data(counts.into_shared())
    }

    /// `value` where `mask` is true, the input elsewhere (PyTorch's `masked_fill`). The
    /// `Bool` mask broadcasts to the input's shape; `value` may be infinite (a causal
    /// attention mask fills with `-inf` before `softmax`). Gradient: `g` where the mask is
    /// false, 0 where it is true; the mask gets none.
    ///
    /// # Panics
    /// If `mask` is not `Bool` or does not broadcast to the input's shape.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], &[2, 2]).requires_grad();
    /// let mask = Tensor::from_vec(vec![false, true], &[2]); // broadcast over rows
    /// let y = x.masked_fill(&mask, f64::NEG_INFINITY);
    /// assert_eq!(y.to_vec::<f64>(), vec![1.0, f64::NEG_INFINITY, 3.0, f64::NEG_INFINITY]);
    /// let g = x.masked_fill(&mask, 0.0).sum().backward();
    /// assert_eq!(g[&x].to_vec::<f64>(), vec![1.0, 0.0, 1.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn masked_fill(&self, mask: &Tensor, value: f64) -> Tensor {
        if mask.dtype() != DType::Bool {
            panic!(
                "masked_fill: the mask must be a bool tensor, got {} {:?}",
                mask.dtype(),
                mask.shape()
            );
        }
        if broadcast_shapes(mask.shape(), self.shape()).as_deref() != Some(self.shape()) {
            panic!(
                "masked_fill: mask shape {:?} does not broadcast to the input shape {:?}",
                mask.shape(),
                self.shape()
            );
        }
        let fill = Tensor::scalar_of(value, self.dtype());
        let m = mask.bools();
        let shape = self.shape().to_vec();
        let value = dispatch!(any(fill.data(), self.data()), |f, a| Data::from(select(
            &m.view(),
            &f.view(),
            &a.view(),
            &shape
        )));
        Op::new("masked_fill", &[self], value)
            .save(&[&mask.detach()])
            .rule(|ctx, g| {
                let zero = Tensor::scalar_of(0.0, g.dtype());
                Tensor::where_(ctx.saved(0), &zero, g)
            })
    }
}

/// A fixed mask for the table row: every third element, from the second, is masked.
fn row_mask(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec((0..n).map(|i| i % 3 == 1).collect::<Vec<bool>>(), shape)
}

/// The rows of the op table for this family.
pub(crate) const ROWS: &[OpSpec] = &[OpSpec::new(
    "masked_fill",
    Inputs::Unary(Domain::Real),
    |x| x[0].masked_fill(&row_mask(x[0].shape()), -0.75),
    "g where the mask is false, 0 where true",
)
.note("the mask gets no gradient")];

macro_rules! logical_operator {
    ($trait:ident, $method:ident, $op:ident) => {
        impl std::ops::$trait<&Tensor> for &Tensor {
            type Output = Tensor;
            /// The logical op of two `Bool` tensors.
            ///
            /// # Panics
            /// If either tensor is not `Bool`, or the shapes do not broadcast.
            #[track_caller]
            fn $method(self, rhs: &Tensor) -> Tensor {
                check_bool(stringify!($method), self);
                check_bool(stringify!($method), rhs);
                Tensor::$op(self, rhs)
            }
        }
        impl std::ops::$trait<Tensor> for Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: Tensor) -> Tensor {
                std::ops::$trait::$method(&self, &rhs)
            }
        }
        impl std::ops::$trait<&Tensor> for Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: &Tensor) -> Tensor {
                std::ops::$trait::$method(&self, rhs)
            }
        }
        impl std::ops::$trait<Tensor> for &Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: Tensor) -> Tensor {
                std::ops::$trait::$method(self, &rhs)
            }
        }
    };
}

logical_operator!(BitAnd, bitand, logical_and);
logical_operator!(BitOr, bitor, logical_or);
logical_operator!(BitXor, bitxor, logical_xor);

impl std::ops::Not for &Tensor {
    type Output = Tensor;
    /// Logical not of a `Bool` tensor.
    ///
    /// # Panics
    /// If the tensor is not `Bool`.
    #[track_caller]
    fn not(self) -> Tensor {
        check_bool("not", self);
        self.logical_not()
    }
}

impl std::ops::Not for Tensor {
    type Output = Tensor;
    #[track_caller]
    fn not(self) -> Tensor {
        !&self
    }
}

#[track_caller]
fn check_bool(op: &str, t: &Tensor) {
    if t.dtype() != DType::Bool {
        panic!(
            "{op}: the operator needs bool tensors, got {} {:?}; use logical_{op} or compare first",
            t.dtype(),
            t.shape()
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::{DType, Tensor};

    #[test]
    fn masked_fill_broadcasts_and_matches_where() {
        let x = Tensor::randn(&[2, 3, 4], DType::F64, 1);
        let mask = Tensor::from_vec(vec![true, false, false, true], &[4]);
        let a = x.masked_fill(&mask, 7.0);
        let b = Tensor::where_(&mask, &Tensor::scalar(7.0f64), &x);
        assert_eq!(a.shape(), &[2, 3, 4]);
        assert_eq!(a.to_vec::<f64>(), b.to_vec::<f64>());
        let v = a.to_vec::<f64>();
        let xv = x.to_vec::<f64>();
        for i in 0..24 {
            let masked = i % 4 == 0 || i % 4 == 3;
            assert_eq!(v[i], if masked { 7.0 } else { xv[i] });
        }
    }

    #[test]
    fn masked_fill_on_integers() {
        let x = Tensor::from_vec(vec![1i64, 2, 3], &[3]);
        let y = x.masked_fill(&x.gt_scalar(1.5), -1.0);
        assert_eq!(y.to_vec::<i64>(), vec![1, -1, -1]);
    }

    #[test]
    #[should_panic(expected = "masked_fill: the mask must be a bool tensor, got f32 [2]")]
    fn masked_fill_float_mask_panics() {
        let x = Tensor::zeros(&[2], DType::F32);
        let _ = x.masked_fill(&x, 1.0);
    }

    #[test]
    #[should_panic(
        expected = "masked_fill: mask shape [3] does not broadcast to the input shape [2]"
    )]
    fn masked_fill_bad_shape_panics() {
        let x = Tensor::zeros(&[2], DType::F32);
        let _ = x.masked_fill(&Tensor::full(&[3], 1.0, DType::Bool), 1.0);
    }

    #[test]
    fn any_all_count_per_dim() {
        let m = Tensor::from_vec(vec![true, false, true, true, false, false], &[2, 3]);
        assert_eq!(
            m.any_dim(0, false).to_vec::<bool>(),
            vec![true, false, true]
        );
        assert_eq!(m.all_dim(-1, false).to_vec::<bool>(), vec![false, false]);
        assert_eq!(m.all_dim(0, true).shape(), &[1, 3]);
        assert_eq!(m.count_nonzero(&[0]).to_vec::<i64>(), vec![2, 0, 1]);
        assert_eq!(m.count_nonzero(&[0, 1]).shape(), &[] as &[usize]);
        assert_eq!(m.count_nonzero(&[]).item_as::<i64>(), 3);
        let empty = Tensor::zeros(&[0], DType::Bool);
        assert!(!empty.any().item_as::<bool>());
        assert!(empty.all().item_as::<bool>());
    }

    #[test]
    fn logical_ops_broadcast() {
        let a = Tensor::from_vec(vec![true, false], &[2, 1]);
        let b = Tensor::from_vec(vec![true, false, true], &[3]);
        assert_eq!(
            (&a | &b).to_vec::<bool>(),
            vec![true, true, true, true, false, true]
        );
        assert_eq!(
            a.logical_xor(&b).to_vec::<bool>(),
            vec![false, true, false, true, false, true]
        );
        assert_eq!((!(&a & &b)).shape(), &[2, 3]);
    }

    #[test]
    #[should_panic(expected = "bitand: the operator needs bool tensors, got f32 [1]")]
    fn operator_on_floats_panics() {
        let x = Tensor::zeros(&[1], DType::F32);
        let _ = &x & &x;
    }

    #[test]
    fn comparisons_return_bool_for_every_dtype() {
        let f = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3]);
        let i = Tensor::from_vec(vec![1i64, 2, 3], &[3]);
        assert_eq!(f.gt_scalar(1.5).dtype(), DType::Bool);
        assert_eq!(i.ge_scalar(1.5).to_vec::<bool>(), vec![false, true, true]);
        assert_eq!(i.eq(&i).to_vec::<bool>(), vec![true; 3]);
        let b = i.lt_scalar(3.0);
        assert_eq!(b.ne(&b.logical_not()).to_vec::<bool>(), vec![true; 3]);
        assert_eq!(b.eq_scalar(1.0).to_vec::<bool>(), vec![true, true, false]);
    }

    #[test]
    #[should_panic(expected = "lt: dtype mismatch: i64 [3] vs f32 [3]")]
    fn comparing_mixed_dtypes_panics() {
        let _ = Tensor::from_vec(vec![1i64, 2, 3], &[3]).lt(&Tensor::zeros(&[3], DType::F32));
    }

    #[test]
    #[should_panic(expected = "where_: the condition must be a bool tensor, got f32 [2]")]
    fn where_float_condition_panics() {
        let x = Tensor::zeros(&[2], DType::F32);
        let _ = Tensor::where_(&x, &x, &x);
    }
}
