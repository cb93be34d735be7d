//! Reductions and their duals: sum, mean, sum_dim, mean_dim, sum_to, broadcast_to,
//! max_dim / min_dim (and argmax / argmin), max / min / amax / amin, prod / prod_dim,
//! var, std, logsumexp, norm (any p) and l2_norm.

use ndarray::{ArrayD, Axis, IxDyn};
use smallvec::smallvec;

use super::table::{distinct_tensor, random_shape, random_tensor, Domain, Inputs, OpSpec};
use crate::autograd::node::Op;
use crate::dtype::{DType, Element, Scalar};
use crate::kernels::fused::Values;
use crate::kernels::reduce::{arg_extreme, arg_extreme_int, sum_values};
use crate::shape::{broadcast_shapes, norm_axes, norm_axis, Shape};
use crate::storage::{dispatch, Data};
use crate::tensor::Tensor;

impl Tensor {
    /// Sum of all elements, as a rank-0 tensor. Gradient: `g` broadcast to the input.
    #[track_caller]
    pub fn sum(&self) -> Tensor {
        self.sum_dim(&[], false)
    }

    /// Mean of all elements (NaN for an empty tensor).
    #[track_caller]
    pub fn mean(&self) -> Tensor {
        self.sum().mul_scalar(1.0 / self.numel() as f64)
    }

    /// Sum over the axes `dims` (negative counts from the end; empty means all), keeping
    /// them as size-1 axes if `keepdim`. Gradient: `g` broadcast back to the input shape.
    ///
    /// # Panics
    /// If an axis is out of range or repeated.
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    /// assert_eq!(x.sum_dim(&[1], false).to_vec::<f32>(), vec![6.0, 15.0]);
    /// assert_eq!(x.sum_dim(&[0], true).shape(), &[1, 3]);
    /// ```
    #[track_caller]
    pub fn sum_dim(&self, dims: &[isize], keepdim: bool) -> Tensor {
        let axes = norm_axes("sum_dim", dims, self.rank());
        let in_shape = Shape::from_slice(self.shape());
        let mut kept = in_shape.clone();
        for &a in &axes {
            kept[a] = 1;
        }
        let value = dispatch!(self.data(), |a| Data::from(Values::Ready(sum_values(
            &a, &axes, keepdim
        ))));
        Op::new("sum_dim", &[self], value)
            .rule(move |_, g| g.reshape_to(&kept).broadcast_to(&in_shape))
    }

    /// Mean over the axes `dims` (see [`sum_dim`](Self::sum_dim)).
    ///
    /// # Panics
    /// If an axis is out of range or repeated.
    #[track_caller]
    pub fn mean_dim(&self, dims: &[isize], keepdim: bool) -> Tensor {
        let axes = norm_axes("mean_dim", dims, self.rank());
        let n: usize = axes.iter().map(|&a| self.shape()[a]).product();
        self.sum_dim(dims, keepdim).mul_scalar(1.0 / n as f64)
    }

    /// Sums this tensor down to `shape`, the inverse of broadcasting: leading axes are
    /// summed away and axes where `shape` has 1 are summed with keepdim. The backward of
    /// every broadcasting op uses it.
    ///
    /// # Panics
    /// If `shape` does not broadcast to this tensor's shape.
    #[track_caller]
    pub fn sum_to(&self, shape: &[usize]) -> Tensor {
        if self.shape() == shape {
            return self.clone();
        }
        if broadcast_shapes(shape, self.shape()).as_deref() != Some(self.shape()) {
            panic!(
                "sum_to: shape {shape:?} does not broadcast to {:?}",
                self.shape()
            );
        }
        let lead = self.rank() - shape.len();
        let axes: Vec<isize> = (0..self.rank())
            .filter(|&i| i < lead || (shape[i - lead] == 1 && self.shape()[i] != 1))
            .map(|i| i as isize)
            .collect();
        if axes.is_empty() {
            return self.reshape_to(shape);
        }
        self.sum_dim(&axes, true).reshape_to(shape)
    }

    /// Broadcasts to `shape` (materialised). Gradient: `g` summed back to the input shape.
    ///
    /// # Panics
    /// If the tensor does not broadcast to `shape`.
    #[track_caller]
    pub fn broadcast_to(&self, shape: &[usize]) -> Tensor {
        if self.shape() == shape {
            return self.clone();
        }
        if broadcast_shapes(self.shape(), shape).as_deref() != Some(shape) {
            panic!(
                "broadcast_to: shape {:?} cannot be broadcast to {shape:?}",
                self.shape()
            );
        }
        let in_shape = Shape::from_slice(self.shape());
        let value = if self.dtype().is_float() {
            dispatch!(self.data(), |a| Data::from(
                crate::kernels::elementwise::broadcast(a, shape)
            ))
        } else {
            dispatch!(any self.data(), |a| Data::from(
                a.broadcast(IxDyn(shape))
                    .expect("shapes checked above")
                    .to_owned()
                    .into_shared()
            ))
        };
        Op::new("broadcast_to", &[self], value).rule(move |_, g| g.sum_to(&in_shape))
    }

    /// PyTorch's `expand`: [`broadcast_to`](Self::broadcast_to) where `-1` keeps a size.
    ///
    /// # Panics
    /// If the sizes do not broadcast.
    #[track_caller]
    pub fn expand(&self, sizes: &[isize]) -> Tensor {
        let lead = sizes.len().saturating_sub(self.rank());
        let shape: Vec<usize> = sizes
            .iter()
            .enumerate()
            .map(|(i, &s)| {
                if s < 0 && i >= lead {
                    self.shape()[i - lead]
                } else {
                    s.max(0) as usize
                }
            })
            .collect();
        self.broadcast_to(&shape)
    }

    /// Maximum along `dim` and the index where it occurs (the first one on ties; a NaN
    /// wins). Gradient: `g` to that one index (PyTorch's `max(dim)` convention).
    ///
    /// # Panics
    /// If `dim` is out of range or the axis is empty.
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![1.0f32, 5.0, 3.0, 7.0, 2.0, 7.0], &[2, 3]);
    /// let (values, indices) = x.max_dim(1, false);
    /// assert_eq!(values.to_vec::<f32>(), vec![5.0, 7.0]);
    /// assert_eq!(indices.to_vec::<i64>(), vec![1, 0]);
    /// ```
    #[track_caller]
    pub fn max_dim(&self, dim: isize, keepdim: bool) -> (Tensor, Tensor) {
        self.extreme_dim("max_dim", dim, keepdim, true)
    }

    /// Minimum along `dim` and its index (see [`max_dim`](Self::max_dim)).
    ///
    /// # Panics
    /// If `dim` is out of range or the axis is empty.
    #[track_caller]
    pub fn min_dim(&self, dim: isize, keepdim: bool) -> (Tensor, Tensor) {
        self.extreme_dim("min_dim", dim, keepdim, false)
    }

    /// Index of the maximum along `dim`, as an `I64` tensor (the first on ties; a NaN
    /// wins). Of a float or `I64` tensor. Not differentiable.
    ///
    /// # Panics
    /// If the tensor is neither a float nor an `I64` tensor, `dim` is out of range or the
    /// axis is empty.
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![1.0f32, 5.0, 3.0, 7.0, 2.0, 7.0], &[2, 3]);
    /// assert_eq!(x.argmax(1, false).to_vec::<i64>(), vec![1, 0]);
    /// assert_eq!(x.argmin(-1, true).shape(), &[2, 1]);
    /// let n = tapegrad::Tensor::from_vec(vec![3i64, -9, 3, 8], &[4]);
    /// assert_eq!((n.argmax(0, false).item(), n.argmin(0, false).item()), (3.0, 1.0));
    /// ```
    #[track_caller]
    pub fn argmax(&self, dim: isize, keepdim: bool) -> Tensor {
        Tensor::from_indices(self.arg_extreme("argmax", dim, keepdim, true))
    }

    /// Index of the minimum along `dim`, as an `I64` tensor (see
    /// [`argmax`](Self::argmax)).
    ///
    /// # Panics
    /// If the tensor is neither a float nor an `I64` tensor, `dim` is out of range or the
    /// axis is empty.
    #[track_caller]
    pub fn argmin(&self, dim: isize, keepdim: bool) -> Tensor {
        Tensor::from_indices(self.arg_extreme("argmin", dim, keepdim, false))
    }

    #[track_caller]
    fn arg_extreme(&self, op: &str, dim: isize, keepdim: bool, largest: bool) -> ArrayD<usize> {
        if self.dtype() != DType::I64 {
            super::check_float(op, self);
        }
        let axis = norm_axis(op, dim, self.rank());
        if self.rank() == 0 {
            return ArrayD::from_elem(IxDyn(&[]), 0);
        }
        assert!(
            self.shape()[axis] > 0,
            "{op}: axis {dim} of shape {:?} is empty",
            self.shape()
        );
        let idx = if self.dtype() == DType::I64 {
            arg_extreme_int(&self.to_array::<i64>().view(), axis, largest)
        } else {
            dispatch!(self.data(), |a| {
                let a = a.force().into_owned();
                arg_extreme(&a.view(), axis, largest)
            })
        };
        if keepdim {
            idx.insert_axis(Axis(axis))
        } else {
            idx
        }
    }

    #[track_caller]
    fn extreme_dim(&self, op: &str, dim: isize, keepdim: bool, largest: bool) -> (Tensor, Tensor) {
        if self.rank() == 0 {
            return (self.clone(), Tensor::scalar(0i64));
        }
        let idx = self.arg_extreme(op, dim, true, largest);
        let axis = norm_axis(op, dim, self.rank());
        let values = self.gather_idx(axis, std::sync::Arc::new(idx.clone()));
        if keepdim {
            (values, Tensor::from_indices(idx))
        } else {
            (
                values.squeeze(dim),
                Tensor::from_indices(idx.index_axis_move(Axis(axis), 0)),
            )
        }
    }

    /// The largest element, as a rank-0 tensor (a NaN wins). Gradient: `g` split evenly
    /// among the elements equal to the maximum (PyTorch's `max()` convention; `max_dim`
    /// sends it to one index instead).
    ///
    /// # Panics
    /// If the tensor is empty.
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![1.0f64, 3.0, 3.0, 2.0], &[2, 2]).requires_grad();
    /// let m = x.max();
    /// assert_eq!(m.item(), 3.0);
    /// assert_eq!(m.backward()[&x].to_vec::<f64>(), vec![0.0, 0.5, 0.5, 0.0]);
    /// ```
    #[track_caller]
    pub fn max(&self) -> Tensor {
        self.extreme_axes("max", &[], false, true)
    }

    /// The smallest element, as a rank-0 tensor; ties split the gradient evenly (see
    /// [`max`](Self::max)).
    ///
    /// # Panics
    /// If the tensor is empty.
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![1.0f64, 3.0], &[2]);
    /// assert_eq!(x.min().item(), 1.0);
    /// ```
    #[track_caller]
    pub fn min(&self) -> Tensor {
        self.extreme_axes("min", &[], false, false)
    }

    /// Maximum over the axes `dims` (empty means all), keeping them as size-1 axes if
    /// `keepdim`. Gradient: `g` split evenly among the elements equal to their lane's
    /// maximum, as PyTorch's `amax`. A NaN in a lane makes its maximum NaN.
    ///
    /// # Panics
    /// If an axis is out of range, repeated or empty.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f64, 3.0, 3.0, 2.0, 2.0, 0.0], &[2, 3]).requires_grad();
    /// let m = x.amax(&[1], false);
    /// assert_eq!(m.to_vec::<f64>(), vec![3.0, 2.0]);
    /// let g = m.sum().backward();
    /// assert_eq!(g[&x].to_vec::<f64>(), vec![0.0, 0.5, 0.5, 0.5, 0.5, 0.0]);
    /// ```
    #[track_caller]
    pub fn amax(&self, dims: &[isize], keepdim: bool) -> Tensor {
        self.extreme_axes("amax", dims, keepdim, true)
    }

    /// Minimum over the axes `dims`; ties split the gradient evenly (see
    /// [`amax`](Self::amax)).
    ///
    /// # Panics
    /// If an axis is out of range, repeated or empty.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f64, 3.0, 0.0, 2.0], &[2, 2]);
    /// assert_eq!(x.amin(&[0], true).to_vec::<f64>(), vec![0.0, 2.0]);
    /// ```
    #[track_caller]
    pub fn amin(&self, dims: &[isize], keepdim: bool) -> Tensor {
        self.extreme_axes("amin", dims, keepdim, false)
    }

    #[track_caller]
    fn extreme_axes(
        &self,
        op: &'static str,
        dims: &[isize],
        keepdim: bool,
        largest: bool,
    ) -> Tensor {
        let axes = norm_axes(op, dims, self.rank());
        if self.numel() == 0 {
            panic!(
                "{op}: cannot reduce the empty tensor of shape {:?} (there is no identity for {})",
                self.shape(),
                if largest { "max" } else { "min" }
            );
        }
        let mut kept = self.detach();
        for &a in &axes {
            kept = kept.extreme_dim(op, a as isize, true, largest).0;
        }
        let kept_shape = Shape::from_slice(kept.shape());
        let value = if keepdim {
            kept
        } else {
            let out: Vec<usize> = self
                .shape()
                .iter()
                .enumerate()
                .filter(|(i, _)| !axes.contains(i))
                .map(|(_, &d)| d)
                .collect();
            kept.reshape_to(&out)
        };
        let axes: Vec<isize> = axes.iter().map(|&a| a as isize).collect();
        Op::new(op, &[self], value)
            .save(&[self])
            .save_output()
            .rule(move |ctx, g| {
                let x = ctx.saved(0);
                let hit = x.eq(&ctx.output().reshape_to(&kept_shape));
                let zero = Tensor::scalar_of(0.0, x.dtype());
                let one = Tensor::scalar_of(1.0, x.dtype());
                let count = Tensor::where_(&hit, &one, &zero).sum_dim(&axes, true);
                let share = g.reshape_to(&kept_shape).div(&count);
                Tensor::where_(&hit, &share, &zero)
            })
    }

    /// The product of all elements, as a rank-0 tensor (1 for an empty tensor). Gradient:
    /// the product of the other elements, exact with zeros: with one zero only that
    /// element gets a gradient, with two or more none does (no division by zero; see
    /// [`cumprod`](Self::cumprod)). PyTorch: `torch.prod`.
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![2.0f64, 0.0, 3.0, 4.0], &[4]).requires_grad();
    /// let p = x.prod();
    /// assert_eq!(p.item(), 0.0);
    /// assert_eq!(p.backward()[&x].to_vec::<f64>(), vec![0.0, 24.0, 0.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn prod(&self) -> Tensor {
        self.reshape_to(&[self.numel()]).prod_dim(0, false)
    }

    /// The product along `dim`, keeping it as a size-1 axis if `keepdim` (1 over an empty
    /// axis). Gradient: as [`prod`](Self::prod), lane by lane; it is the last element of
    /// [`cumprod`](Self::cumprod), whose rule it uses. PyTorch: `torch.prod(x, dim, keepdim)`.
    ///
    /// # Panics
    /// If `dim` is out of range.
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    /// assert_eq!(x.prod_dim(1, false).to_vec::<f64>(), vec![6.0, 120.0]);
    /// assert_eq!(x.prod_dim(0, true).shape(), &[1, 3]);
    /// ```
    #[track_caller]
    pub fn prod_dim(&self, dim: isize, keepdim: bool) -> Tensor {
        if self.rank() == 0 {
            // A 0-d tensor accepts dim 0 or -1, as in PyTorch.
            return self.cumprod(dim);
        }
        let axis = norm_axis("prod_dim", dim, self.rank());
        let n = self.shape()[axis];
        let kept = if n == 0 {
            self.sum_dim(&[dim], true).add_scalar(1.0)
        } else {
            self.cumprod(dim).narrow(dim, n - 1, 1)
        };
        if keepdim {
            kept
        } else {
            kept.squeeze(dim)
        }
    }

    /// The vector `p`-norm over `dims` (empty means all), PyTorch's
    /// `torch.linalg.vector_norm(x, p, dims, keepdim)`: `(sum |x|^p)^(1/p)` for any real
    /// `p` other than 0 and the infinities, `sum |x|` for `p = 1`, `max |x|` for
    /// `p = inf`, `min |x|` for `p = -inf` and the count of non-zeros for `p = 0`.
    /// Gradient: `g * sign(x) |x|^(p-1) / norm^(p-1)`; 0 where the norm is 0 (the
    /// subgradient PyTorch picks, instead of `0/0`); for `±inf` `g * sign(x)` split evenly
    /// among the extremal elements; 0 for `p = 0`.
    ///
    /// # Panics
    /// If `p` is NaN, or an axis is out of range or repeated.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let x = Tensor::from_vec(vec![3.0f64, -4.0, 0.0, 0.0], &[2, 2]).requires_grad();
    /// let n = x.norm(2.0, &[1], false);
    /// assert_eq!(n.to_vec::<f64>(), vec![5.0, 0.0]);
    /// let g = n.sum().backward();
    /// assert_eq!(g[&x].to_vec::<f64>(), vec![0.6, -0.8, 0.0, 0.0]);
    /// assert_eq!(x.norm(1.0, &[], false).item(), 7.0);
    /// assert_eq!(x.norm(f64::INFINITY, &[], false).item(), 4.0);
    /// ```
    #[track_caller]
    pub fn norm(&self, p: f64, dims: &[isize], keepdim: bool) -> Tensor {
        assert!(!p.is_nan(), "norm: p is NaN");
        let axes = norm_axes("norm", dims, self.rank());
        if p == f64::INFINITY {
            return self.abs().amax(dims, keepdim);
        }
        if p == f64::NEG_INFINITY {
            return self.abs().amin(dims, keepdim);
        }
        if p == 0.0 {
            let zero = Tensor::scalar_of(0.0, self.dtype());
            let one = Tensor::scalar_of(1.0, self.dtype());
            let nonzero = Tensor::where_(&self.detach().eq_scalar(0.0), &zero, &one);
            return nonzero.broadcast_to(self.shape()).sum_dim(dims, keepdim);
        }
        if p == 1.0 {
            return self.abs().sum_dim(dims, keepdim);
        }
        let value = crate::no_grad(|| {
            if p == 2.0 {
                self.square().sum_dim(dims, keepdim).sqrt()
            } else {
                self.abs().powf(p).sum_dim(dims, keepdim).powf(1.0 / p)
            }
        });
        let mut kept = Shape::from_slice(self.shape());
        for &a in &axes {
            kept[a] = 1;
        }
        Op::new("norm", &[self], value)
            .save(&[self])
            .save_output()
            .rule(move |ctx, g| {
                let x = ctx.saved(0);
                let norm = ctx.output().reshape_to(&kept);
                let zero = Tensor::scalar_of(0.0, x.dtype());
                let at_zero = norm.eq_scalar(0.0);
                let safe = Tensor::where_(&at_zero, &norm.ones_like(), &norm);
                // g / norm^(p-1), 0 where the norm is 0 (for p = 2, x / norm times g,
                // which rounds 3/5 to 0.6 exactly).
                let scale = if p == 2.0 {
                    g.reshape_to(&kept)
                } else {
                    g.reshape_to(&kept).div(&safe.powf(p - 1.0))
                };
                let scale = Tensor::where_(&at_zero, &zero, &scale);
                // sign(x) |x|^(p-1), finite at x = 0 for every p (0 there when p < 1).
                let scaled_x = if p == 2.0 {
                    x.div(&safe)
                } else if p > 1.0 {
                    x.sign().mul(&x.abs().powf(p - 1.0))
                } else {
                    let safe_x = Tensor::where_(&x.eq_scalar(0.0), &x.ones_like(), x);
                    Tensor::where_(
                        &x.eq_scalar(0.0),
                        &zero,
                        &safe_x.sign().mul(&safe_x.abs().powf(p - 1.0)),
                    )
                };
                scaled_x.mul(&scale)
            })
    }

    /// The detached maximum over `dims` (keepdim), with non-finite values replaced by 0:
    /// the shift that makes softmax and logsumexp stable without changing them.
    #[track_caller]
    pub(crate) fn max_shift_axes(&self, dims: &[isize]) -> Tensor {
        let axes = norm_axes("logsumexp", dims, self.rank());
        let value = dispatch!(self.data(), |a| {
            let a = a.force().into_owned();
            Data::from({
                let mut m = a.to_owned();
                for &ax in &axes {
                    m = m.map_axis(Axis(ax), |lane| {
                        lane.iter()
                            .copied()
                            .fold(
                                Element::of(f64::NEG_INFINITY),
                                |x, y| if y > x { y } else { x },
                            )
                    });
                    m.insert_axis_inplace(Axis(ax));
                }
                m.mapv_inplace(|v| {
                    if v.is_finite() {
                        v
                    } else {
                        num_traits::Zero::zero()
                    }
                });
                m.into_shared()
            })
        });
        Tensor::from_data(value)
    }

    #[track_caller]
    pub(crate) fn max_shift(&self, dim: isize) -> Tensor {
        self.max_shift_axes(&[dim])
    }

    /// `log(sum(exp(x)))` over `dims`, computed as `m + log(sum(exp(x - m)))` with `m` the
    /// (detached) maximum: finite for any finite input. Gradient: `g * softmax(x)`.
    ///
    /// # Panics
    /// If an axis is out of range or repeated.
    #[track_caller]
    pub fn logsumexp(&self, dims: &[isize], keepdim: bool) -> Tensor {
        let m = self.max_shift_axes(dims);
        let lse = self.sub(&m).exp().sum_dim(dims, true).log().add(&m);
        if keepdim {
            lse
        } else {
            let axes = norm_axes("logsumexp", dims, self.rank());
            let shape: Vec<usize> = self
                .shape()
                .iter()
                .enumerate()
                .filter(|(i, _)| !axes.contains(i))
                .map(|(_, &d)| d)
                .collect();
            lse.reshape_to(&shape)
        }
    }

    /// Variance over `dims`: `sum((x - mean)^2) / (n - 1)` if `unbiased` (PyTorch's
    /// default, Bessel's correction), else `/ n`.
    ///
    /// # Panics
    /// If an axis is out of range or repeated.
    #[track_caller]
    pub fn var(&self, dims: &[isize], unbiased: bool, keepdim: bool) -> Tensor {
        let axes = norm_axes("var", dims, self.rank());
        let n: usize = axes.iter().map(|&a| self.shape()[a]).product();
        let centred = self.sub(&self.mean_dim(dims, true));
        let denom = n as f64 - if unbiased { 1.0 } else { 0.0 };
        centred
            .square()
            .sum_dim(dims, keepdim)
            .mul_scalar(1.0 / denom)
    }

    /// Standard deviation over `dims`: `sqrt(var)`.
    ///
    /// # Panics
    /// If an axis is out of range or repeated.
    ///
    /// Gradient: `g / (2 std)` into [`var`](Self::var), and 0 where the spread is 0
    /// (PyTorch masks that `0/0` instead of returning NaN).
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![2.0f64, 2.0], &[2]).requires_grad();
    /// let s = x.std(&[0], true, false);
    /// assert_eq!(s.item(), 0.0);
    /// assert_eq!(s.backward()[&x].to_vec::<f64>(), vec![0.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn std(&self, dims: &[isize], unbiased: bool, keepdim: bool) -> Tensor {
        let var = self.var(dims, unbiased, keepdim);
        let value = crate::no_grad(|| var.sqrt());
        Op::new("std", &[&var], value).save_output().rule(|ctx, g| {
            let out = ctx.output();
            let at_zero = out.eq_scalar(0.0);
            let safe = Tensor::where_(&at_zero, &out.ones_like(), &out);
            let zero = Tensor::scalar_of(0.0, g.dtype());
            Tensor::where_(&at_zero, &zero, &g.div(&safe.mul_scalar(2.0)))
        })
    }

    /// The L2 norm of all elements, `sqrt(sum(x^2))` (the same as
    /// [`norm(2.0, &[], false)`](Self::norm), for gradient clipping and the like).
    /// Gradient: `g * x / norm`, and 0 at the zero vector (PyTorch's subgradient choice)
    /// instead of `0/0`.
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![3.0f64, 4.0], &[2]);
    /// assert_eq!(x.l2_norm().item(), 5.0);
    /// ```
    #[track_caller]
    pub fn l2_norm(&self) -> Tensor {
        let value = dispatch!(self.data(), |a| {
            let a = a.force().into_owned();
            Data::from({
                let s: f64 = a
                    .iter()
                    .map(|&v| {
                        let v = v.as_f64();
                        v * v
                    })
                    .sum();
                ndarray::arr0(E::of(s.sqrt())).into_dyn().into_shared()
            })
        });
        Op::new("l2_norm", &[self], value)
            .save(&[self])
            .save_output()
            .rule(|ctx, g| {
                let out = ctx.output();
                let safe = Tensor::where_(&out.eq_scalar(0.0), &out.ones_like(), &out);
                smallvec![Some(ctx.saved(0).mul(&g.div(&safe)))]
            })
    }
}

/// Rank 2 to 4: the rows reduce over the first and the last axis, which must differ.
fn matrix_input(rng: &mut rand::rngs::StdRng, dtype: DType) -> Vec<Tensor> {
    let mut s = random_shape(rng, 2, 3);
    s.insert(0, 2);
    s.push(rand::Rng::gen_range(rng, 1..=3));
    vec![random_tensor(rng, &s, Domain::Real, dtype)]
}

/// As `matrix_input`, with `0.2 <= |x| <= 2`.
fn matrix_away_from_zero(rng: &mut rand::rngs::StdRng, dtype: DType) -> Vec<Tensor> {
    let mut s = random_shape(rng, 2, 3);
    s.insert(0, 2);
    s.push(rand::Rng::gen_range(rng, 1..=3));
    vec![random_tensor(rng, &s, Domain::AwayFromZero, dtype)]
}

fn distinct_input(rng: &mut rand::rngs::StdRng, dtype: DType) -> Vec<Tensor> {
    // Values spaced at least 0.1 apart so the arg-max never flips under perturbation.
    let mut s = random_shape(rng, 3, 3);
    s.insert(0, 3);
    vec![distinct_tensor(rng, &s, dtype)]
}

/// The rows of the op table for this family.
pub(crate) const ROWS: &[OpSpec] = &[
    OpSpec::new(
        "expand",
        Inputs::Unary(Domain::Real),
        |x| {
            // A new leading axis of 2, every other size kept with -1.
            let sizes: Vec<isize> = std::iter::once(2)
                .chain(x[0].shape().iter().map(|_| -1))
                .collect();
            x[0].expand(&sizes)
        },
        "g summed over the expanded axes",
    ),
    OpSpec::new(
        "sum",
        Inputs::Unary(Domain::Real),
        |x| x[0].sum(),
        "g broadcast to x",
    ),
    OpSpec::new(
        "mean",
        Inputs::Unary(Domain::Real),
        |x| x[0].mean(),
        "g/n broadcast to x",
    ),
    OpSpec::new(
        "sum_dim",
        Inputs::Custom(matrix_input),
        |x| x[0].sum_dim(&[0, -1], false),
        "g broadcast over the summed axes",
    ),
    OpSpec::new(
        "mean_dim",
        Inputs::Custom(matrix_input),
        |x| x[0].mean_dim(&[0], true),
        "g/n broadcast over the axes",
    ),
    OpSpec::new(
        "sum_to",
        Inputs::Custom(matrix_input),
        |x| x[0].sum_to(&[1]),
        "g broadcast back",
    ),
    OpSpec::new(
        "broadcast_to",
        Inputs::Unary(Domain::Real),
        |x| {
            let mut s = vec![2usize];
            s.extend_from_slice(x[0].shape());
            x[0].broadcast_to(&s)
        },
        "g summed over the broadcast axes",
    ),
    OpSpec::new(
        "max_dim",
        Inputs::Custom(distinct_input),
        |x| x[0].max_dim(0, false).0,
        "g at the argmax, 0 elsewhere",
    )
    .note("ties: the first maximal index gets all of g"),
    OpSpec::new(
        "min_dim",
        Inputs::Custom(distinct_input),
        |x| x[0].min_dim(-1, true).0,
        "g at the argmin, 0 elsewhere",
    )
    .note("ties: the first minimal index gets all of g"),
    OpSpec::new(
        "var",
        Inputs::Custom(matrix_input),
        |x| x[0].var(&[0], true, false),
        "g*2*(x-mean)/(n-1)",
    ),
    OpSpec::new(
        "std",
        Inputs::Custom(matrix_input),
        |x| x[0].std(&[-1, 0], false, true),
        "g*(x-mean)/(n*std)",
    )
    .note("where the spread is 0 the gradient is 0 (PyTorch masks the 0/0)"),
    OpSpec::new(
        "logsumexp",
        Inputs::Custom(matrix_input),
        |x| x[0].logsumexp(&[0], false),
        "g*softmax(x)",
    )
    .note("computed with the maximum subtracted: finite for any finite input"),
    OpSpec::new(
        "l2_norm",
        Inputs::Unary(Domain::AwayFromZero),
        |x| x[0].l2_norm(),
        "g*x/norm",
    )
    .note("the gradient at the zero vector is 0"),
    OpSpec::new(
        "norm",
        Inputs::Custom(matrix_away_from_zero),
        |x| x[0].norm(3.0, &[-1], false),
        "g*sign(x)*|x|^(p-1)/norm^(p-1) (p = 3 here)",
    )
    .note("the gradient where the norm is 0 is 0, for every p; p = ±inf split g among ties"),
    OpSpec::new(
        "max",
        Inputs::Custom(distinct_input),
        |x| x[0].max(),
        "g at the maximum, 0 elsewhere",
    )
    .note("ties: g split evenly among the maximal elements"),
    OpSpec::new(
        "min",
        Inputs::Custom(distinct_input),
        |x| x[0].min(),
        "g at the minimum, 0 elsewhere",
    )
    .note("ties: g split evenly among the minimal elements"),
    OpSpec::new(
        "amax",
        Inputs::Custom(distinct_input),
        |x| x[0].amax(&[-1], false),
        "g at each lane's maximum, 0 elsewhere",
    )
    .note("ties: g split evenly among the maximal elements of the lane"),
    OpSpec::new(
        "amin",
        Inputs::Custom(distinct_input),
        |x| x[0].amin(&[0], true),
        "g at each lane's minimum, 0 elsewhere",
    )
    .note("ties: g split evenly among the minimal elements of the lane"),
    OpSpec::new(
        "prod",
        Inputs::Unary(Domain::Real),
        |x| x[0].prod(),
        "g * product of the other elements",
    )
    .note("with zeros: no division; one zero gets the product of the others, two or more give 0"),
    OpSpec::new(
        "prod_dim",
        Inputs::Custom(matrix_input),
        |x| x[0].prod_dim(0, false),
        "g * product of the other elements of the lane",
    )
    .note("with zeros: as prod, lane by lane"),
];

#[cfg(test)]
mod tests {
    use crate::{DType, Tensor};

    #[test]
    fn max_with_ties_sends_gradient_to_first_index() {
        let x = Tensor::from_vec(vec![3.0f64, 1.0, 3.0], &[3]).requires_grad();
        let (v, idx) = x.max_dim(0, false);
        assert_eq!(v.item(), 3.0);
        assert_eq!(idx.item_as::<i64>(), 0);
        assert_eq!(v.backward()[&x].to_vec::<f64>(), vec![1.0, 0.0, 0.0]);
    }

    #[test]
    fn broadcast_gradients_are_summed_back() {
        let a = Tensor::from_vec(vec![1.0f64, 2.0, 3.0], &[3, 1]).requires_grad();
        let b = Tensor::from_vec(vec![10.0f64, 20.0], &[2]).requires_grad();
        let grads = a.mul(&b).sum().backward();
        assert_eq!(grads[&a].shape(), &[3, 1]);
        assert_eq!(grads[&a].to_vec::<f64>(), vec![30.0, 30.0, 30.0]);
        assert_eq!(grads[&b].to_vec::<f64>(), vec![6.0, 6.0]);
    }

    #[test]
    fn var_std_and_norm_values() {
        let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], &[4]);
        assert!((x.var(&[0], true, false).item() - 5.0 / 3.0).abs() < 1e-12);
        assert!((x.var(&[0], false, false).item() - 1.25).abs() < 1e-12);
        assert!((x.std(&[0], true, false).item() - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((x.l2_norm().item() - 30f64.sqrt()).abs() < 1e-12);
        let z = Tensor::zeros(&[3], DType::F64).requires_grad();
        assert_eq!(z.l2_norm().backward()[&z].to_vec::<f64>(), vec![0.0; 3]);
    }

    #[test]
    fn logsumexp_is_stable() {
        let x = Tensor::from_vec(vec![1000.0f32, 1000.0], &[2]);
        assert!((x.logsumexp(&[0], false).item() - (1000.0 + 2f64.ln())).abs() < 1e-3);
        let x = Tensor::from_vec(vec![f32::NEG_INFINITY, f32::NEG_INFINITY], &[2]);
        assert_eq!(x.logsumexp(&[0], false).item(), f64::NEG_INFINITY);
    }

    #[test]
    fn reductions_of_a_scalar_accept_axis_minus_one() {
        let x = Tensor::scalar(3.0f64).requires_grad();
        assert_eq!(x.sum_dim(&[-1], false).item(), 3.0);
        assert_eq!(x.logsumexp(&[-1], false).item(), 3.0);
        assert_eq!(x.sum_dim(&[0], true).backward()[&x].item(), 1.0);
    }

    #[test]
    #[should_panic(expected = "sum_dim: axis 2 is out of range for a tensor of rank 2")]
    fn sum_dim_bad_axis_panics() {
        let _ = Tensor::zeros(&[2, 3], DType::F32).sum_dim(&[2], false);
    }
}
