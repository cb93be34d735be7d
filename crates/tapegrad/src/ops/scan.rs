//! Scans along one dimension: `cumsum`, `cumprod` and `logcumsumexp`. Each computes its
//! value with one pass per lane and records a rule written in tensor ops (a reverse scan
//! is the gradient of a scan), so gradients of gradients come free.

use ndarray::Axis;

use super::table::{Domain, Inputs, OpSpec};
use crate::autograd::node::Op;
use crate::dtype::{DType, Element};
use crate::shape::norm_axis;
use crate::storage::{dispatch, Data};
use crate::tensor::Tensor;

/// What a scan accumulates.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scan {
    Sum,
    Prod,
    LogSumExp,
}

impl Tensor {
    /// Cumulative sum along `dim`: `out[i] = x[0] + ... + x[i]`. Gradient: the reverse
    /// cumulative sum of `g` (`g[i] + ... + g[n-1]`). PyTorch: `torch.cumsum`.
    ///
    /// # Panics
    /// If `dim` is out of range.
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![1.0f64, 2.0, 3.0], &[3]).requires_grad();
    /// let y = x.cumsum(0);
    /// assert_eq!(y.to_vec::<f64>(), vec![1.0, 3.0, 6.0]);
    /// assert_eq!(y.sum().backward()[&x].to_vec::<f64>(), vec![3.0, 2.0, 1.0]);
    /// ```
    #[track_caller]
    pub fn cumsum(&self, dim: isize) -> Tensor {
        self.scan_op(dim, Scan::Sum, false)
    }

    /// Cumulative product along `dim`: `out[i] = x[0] * ... * x[i]`. Gradient:
    /// `d out[i] / d x[k]` is the product of the other factors, computed without dividing
    /// by zero: before the first zero of a lane as `revcumsum(g * out) / x`, at the first
    /// zero as `revcumsum(g * cumprod(x with that zero set to 1))`, and 0 after it (as
    /// PyTorch). PyTorch: `torch.cumprod`.
    ///
    /// # Panics
    /// If `dim` is out of range.
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![2.0f64, 0.0, 3.0, 0.0, 5.0], &[5]).requires_grad();
    /// let y = x.cumprod(0);
    /// assert_eq!(y.to_vec::<f64>(), vec![2.0, 0.0, 0.0, 0.0, 0.0]);
    /// assert_eq!(y.sum().backward()[&x].to_vec::<f64>(), vec![1.0, 8.0, 0.0, 0.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn cumprod(&self, dim: isize) -> Tensor {
        self.scan_op(dim, Scan::Prod, false)
    }

    /// `log(cumsum(exp(x)))` along `dim`, accumulated as a running `logaddexp` so it is
    /// finite for any finite input (`[1000, 1000]` gives `[1000, 1000 + ln 2]`); the
    /// gradient at an input of `-inf` is NaN, as in PyTorch.
    /// Gradient: `g[i] * exp(x[k] - out[i])` summed over `i >= k`, computed in log space
    /// for the positive and negative parts of `g` (PyTorch's formula). PyTorch:
    /// `torch.logcumsumexp`.
    ///
    /// # Panics
    /// If `dim` is out of range.
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![1000.0f64, 1000.0], &[2]);
    /// assert_eq!(x.logcumsumexp(0).to_vec::<f64>(), vec![1000.0, 1000.0 + 2f64.ln()]);
    /// ```
    #[track_caller]
    pub fn logcumsumexp(&self, dim: isize) -> Tensor {
        self.scan_op(dim, Scan::LogSumExp, false)
    }

    /// The scan `kind` along `dim`, from the end of each lane if `reverse`, recorded with
    /// its rule.
    #[track_caller]
    fn scan_op(&self, dim: isize, kind: Scan, reverse: bool) -> Tensor {
        let name = match (kind, reverse) {
            (Scan::Sum, false) => "cumsum",
            (Scan::Sum, true) => "cumsum_reverse",
            (Scan::Prod, _) => "cumprod",
            (Scan::LogSumExp, false) => "logcumsumexp",
            (Scan::LogSumExp, true) => "logcumsumexp_reverse",
        };
        // A 0-d tensor accepts dim 0 or -1, as in PyTorch.
        let axis = norm_axis(
            name,
            if self.rank() == 0 && dim == -1 {
                0
            } else {
                dim
            },
            self.rank(),
        );
        if self.rank() == 0 {
            // One element along the only (implicit) axis, as in PyTorch.
            return self
                .reshape_to(&[1])
                .scan_op(0, kind, reverse)
                .reshape_to(&[]);
        }
        let value = scan_values(self, axis, kind, reverse);
        let op = Op::new(name, &[self], value);
        match kind {
            Scan::Sum => op.rule(move |_, g| g.scan_op(dim, Scan::Sum, !reverse)),
            Scan::Prod => op
                .save(&[self])
                .save_output()
                .rule(move |ctx, g| cumprod_grad(ctx.saved(0), &ctx.output(), g, dim)),
            Scan::LogSumExp => op.save(&[self]).save_output().rule(move |ctx, g| {
                logcumsumexp_grad(ctx.saved(0), &ctx.output(), g, dim, reverse)
            }),
        }
    }
}

/// The scan's values: one pass along each lane of `axis`.
fn scan_values(x: &Tensor, axis: usize, kind: Scan, reverse: bool) -> Data {
    dispatch!(x.data(), |a| {
        let mut out = (*a.force()).to_owned();
        for mut lane in out.lanes_mut(Axis(axis)) {
            let n = lane.len();
            let mut acc: Option<E> = None;
            for k in 0..n {
                let i = if reverse { n - 1 - k } else { k };
                let v = lane[i];
                let next = match acc {
                    None => v,
                    Some(a) => match kind {
                        Scan::Sum => a + v,
                        Scan::Prod => a * v,
                        Scan::LogSumExp => log_add_exp(a, v),
                    },
                };
                lane[i] = next;
                acc = Some(next);
            }
        }
        Data::from(out.into_shared())
    })
}

/// `log(e^a + e^b)` without overflow: the larger plus `log1p(e^-(|a - b|))`; exact for
/// infinities (`-inf` is the identity) and NaN-propagating.
#[inline]
fn log_add_exp<T: Element>(a: T, b: T) -> T {
    if a.is_nan() || b.is_nan() {
        return a + b;
    }
    let (hi, lo) = if a >= b { (a, b) } else { (b, a) };
    if lo == T::neg_infinity() || hi == T::infinity() {
        hi
    } else {
        hi + (lo - hi).exp().ln_1p()
    }
}

/// The gradient of `out = cumprod(x)` along `dim`, safe with zeros (see `cumprod`).
fn cumprod_grad(x: &Tensor, out: &Tensor, g: &Tensor, dim: isize) -> Tensor {
    let zero = Tensor::scalar_of(0.0, x.dtype());
    let one = Tensor::scalar_of(1.0, x.dtype());
    let is_zero = x.eq_scalar(0.0);
    // How many zeros the lane has up to and including each position (a constant).
    let zeros_so_far = Tensor::where_(&is_zero, &one, &zero).cumsum(dim);
    let before_first_zero = zeros_so_far.eq_scalar(0.0);
    let safe_x = Tensor::where_(&before_first_zero, x, &one);
    let before = g.mul(out).scan_op(dim, Scan::Sum, true).div(&safe_x);
    if zeros_so_far.sum().item() == 0.0 {
        return before;
    }
    let first_zero = Tensor::where_(&is_zero, &zeros_so_far, &zero).eq_scalar(1.0);
    let others = Tensor::where_(&first_zero, &one, x).cumprod(dim);
    let at_first_zero = g.mul(&others).scan_op(dim, Scan::Sum, true);
    Tensor::where_(
        &before_first_zero,
        &before,
        &Tensor::where_(&first_zero, &at_first_zero, &zero),
    )
}

/// The gradient of `out = logcumsumexp(x)` along `dim` (from the end if `reverse`):
/// `sum_{i >= k} g[i] e^(x[k] - out[i])`, as a reverse log-cum-sum-exp of `log|g| - out`
/// for the positive and the negative entries of `g` separately (PyTorch's formula, after
/// TensorFlow's), so nothing overflows.
fn logcumsumexp_grad(x: &Tensor, out: &Tensor, g: &Tensor, dim: isize, reverse: bool) -> Tensor {
    let lowest = match g.dtype() {
        DType::F64 => f64::MIN,
        _ => f32::MIN as f64,
    };
    let lowest = Tensor::scalar_of(lowest, g.dtype());
    let log_abs = g.abs().log();
    let part = |mask: &Tensor| {
        Tensor::where_(mask, &log_abs, &lowest)
            .sub(out)
            .scan_op(dim, Scan::LogSumExp, !reverse)
            .add(x)
            .exp()
    };
    part(&g.gt_scalar(0.0)).sub(&part(&g.lt_scalar(0.0)))
}

/// The rows of the op table for this family.
pub(crate) const ROWS: &[OpSpec] = &[
    OpSpec::new(
        "cumsum",
        Inputs::Unary(Domain::Real),
        |x| x[0].cumsum(-1),
        "reverse cumsum of g",
    ),
    OpSpec::new(
        "cumprod",
        Inputs::Unary(Domain::AwayFromZero),
        |x| x[0].cumprod(0),
        "revcumsum(g*out)/x before the first zero; see the conventions for zeros",
    )
    .note("zeros: the first zero of a lane gets revcumsum(g*cumprod(x, that zero set to 1)), later positions 0"),
    OpSpec::new(
        "logcumsumexp",
        Inputs::Unary(Domain::Real),
        |x| x[0].logcumsumexp(-1),
        "sum over i>=k of g[i]*exp(x[k]-out[i])",
    )
    .note("a running logaddexp: finite for any finite input"),
];

#[cfg(test)]
mod tests {
    use crate::Tensor;

    #[test]
    fn scans_along_an_inner_axis() {
        let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
        assert_eq!(
            x.cumsum(1).to_vec::<f64>(),
            vec![1.0, 3.0, 6.0, 4.0, 9.0, 15.0]
        );
        assert_eq!(
            x.cumsum(0).to_vec::<f64>(),
            vec![1.0, 2.0, 3.0, 5.0, 7.0, 9.0]
        );
        assert_eq!(
            x.cumprod(-1).to_vec::<f64>(),
            vec![1.0, 2.0, 6.0, 4.0, 20.0, 120.0]
        );
        let l = x.logcumsumexp(0).to_vec::<f64>();
        let want = [
            1.0,
            2.0,
            3.0,
            (1f64.exp() + 4f64.exp()).ln(),
            (2f64.exp() + 5f64.exp()).ln(),
            (3f64.exp() + 6f64.exp()).ln(),
        ];
        for (a, b) in l.iter().zip(want) {
            assert!((a - b).abs() < 1e-14, "{a} vs {b}");
        }
        let s = Tensor::scalar(2.5f64).requires_grad();
        assert_eq!(s.cumsum(-1).item(), 2.5);
        assert_eq!(s.cumprod(0).backward()[&s].item(), 1.0);
    }

    #[test]
    fn logcumsumexp_is_stable_and_handles_minus_infinity() {
        let x = Tensor::from_vec(vec![f64::NEG_INFINITY, -1000.0, 1000.0], &[3]).requires_grad();
        let y = x.logcumsumexp(0);
        assert_eq!(y.to_vec::<f64>(), vec![f64::NEG_INFINITY, -1000.0, 1000.0]);
        // At -inf the gradient is exp(-inf - (-inf)) = NaN, as in PyTorch.
        let g = y.narrow(0, 2, 1).sum().backward()[&x].to_vec::<f64>();
        assert!(g[0].is_nan() && g[1..] == [0.0, 1.0], "{g:?}");
        // Finite extremes: PyTorch gives [1, 2, 0].
        let x = Tensor::from_vec(vec![-1000.0f64, 1000.0, 0.0], &[3]).requires_grad();
        let y = x.logcumsumexp(0);
        assert_eq!(y.to_vec::<f64>(), vec![-1000.0, 1000.0, 1000.0]);
        let g = y.sum().backward()[&x].to_vec::<f64>();
        // (log and exp at magnitude 1000 round at about 1e-13)
        assert!(
            g.iter()
                .zip([1.0, 2.0, 0.0])
                .all(|(a, b)| (a - b).abs() < 1e-9),
            "{g:?}"
        );
    }

    #[test]
    fn cumprod_gradient_with_one_and_two_zeros() {
        // d/dx_k of sum_i w_i cumprod(x)_i, by hand: only products not containing a zero
        // other than x_k survive.
        let w = Tensor::from_vec(vec![1.0f64, 10.0, 100.0, 1000.0], &[4]);
        let x = Tensor::from_vec(vec![2.0f64, 0.0, 3.0, 4.0], &[4]).requires_grad();
        let g = x.cumprod(0).mul(&w).sum().backward()[&x].to_vec::<f64>();
        // x0: 1 + 10*0 + ... = 1; x1 (the zero): 10*2 + 100*2*3 + 1000*2*3*4 = 24620.
        assert_eq!(g, vec![1.0, 24620.0, 0.0, 0.0]);
        let x = Tensor::from_vec(vec![2.0f64, 0.0, 3.0, 0.0], &[4]).requires_grad();
        let g = x.cumprod(0).mul(&w).sum().backward()[&x].to_vec::<f64>();
        assert_eq!(g, vec![1.0, 620.0, 0.0, 0.0]);
    }
}
