//! Activations (relu, leaky_relu, elu, gelu, gelu_tanh, silu, softsign) and softmax /
//! log_softmax. Only relu has a rule of its own (it is the hot one); the rest are
//! composed from primitives, so their gradients, and gradients of gradients, come free.

use super::table::{Domain, Inputs, OpSpec};
use super::{fused_grad, unary};
use crate::kernels::elementwise::Cost;
use crate::tensor::Tensor;
use num_traits::{One, Zero};

impl Tensor {
    /// Elementwise `max(x, 0)`. Gradient: `g` where `x > 0`, else 0, so `relu'(0) = 0`
    /// (as in PyTorch). The rule reads the saved output (`out > 0` iff `x > 0`).
    #[track_caller]
    pub fn relu(&self) -> Tensor {
        // `x < 0` is false for NaN, so a NaN propagates (as in PyTorch) instead of vanishing.
        unary!(self, "relu", Cost::Cheap, |x| if x < E::zero() {
            E::zero()
        } else {
            x
        })
        .save_output()
        .rule(|ctx, g| {
            fused_grad!(ctx, g, |g, y| g * if y > E::zero() {
                E::one()
            } else {
                E::zero()
            });
            g.mul(&ctx.output().gt_scalar(0.0).to_dtype(g.dtype()))
        })
    }

    /// `x` for `x > 0`, `slope * x` otherwise (PyTorch default slope 0.01). At 0 the
    /// gradient is `slope`.
    #[track_caller]
    pub fn leaky_relu(&self, slope: f64) -> Tensor {
        Tensor::where_(&self.gt_scalar(0.0), self, &self.mul_scalar(slope))
    }

    /// `x` for `x > 0`, `alpha * (e^x - 1)` otherwise (PyTorch default alpha 1).
    #[track_caller]
    pub fn elu(&self, alpha: f64) -> Tensor {
        Tensor::where_(&self.gt_scalar(0.0), self, &self.expm1().mul_scalar(alpha))
    }

    /// GELU, exact form `x * Phi(x) = x/2 * (1 + erf(x / sqrt 2))`.
    #[track_caller]
    pub fn gelu(&self) -> Tensor {
        self.mul(
            &self
                .mul_scalar(std::f64::consts::FRAC_1_SQRT_2)
                .erf()
                .add_scalar(1.0),
        )
        .mul_scalar(0.5)
    }

    /// GELU, tanh approximation `x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))`
    /// (PyTorch's `approximate="tanh"`).
    #[track_caller]
    pub fn gelu_tanh(&self) -> Tensor {
        let c = (2.0 / std::f64::consts::PI).sqrt();
        let inner = self.add(&self.powf(3.0).mul_scalar(0.044715)).mul_scalar(c);
        self.mul(&inner.tanh().add_scalar(1.0)).mul_scalar(0.5)
    }

    /// SiLU / swish: `x * sigmoid(x)`.
    #[track_caller]
    pub fn silu(&self) -> Tensor {
        self.mul(&self.sigmoid())
    }

    /// Softsign: `x / (1 + |x|)`.
    #[track_caller]
    pub fn softsign(&self) -> Tensor {
        self.div(&self.abs().add_scalar(1.0))
    }

    /// Softmax along `dim`: `e^(x - max) / sum(e^(x - max))`. Subtracting the (detached)
    /// maximum keeps it finite for any input, e.g. `[1000, 0, -1000]`; it does not change
    /// the value or the gradient.
    ///
    /// # Panics
    /// If `dim` is out of range.
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![1000.0f32, 0.0, -1000.0], &[3]);
    /// assert_eq!(x.softmax(-1).to_vec::<f32>(), vec![1.0, 0.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn softmax(&self, dim: isize) -> Tensor {
        if self.rank() == 0 {
            check_scalar_dim("softmax", dim);
            return self.unsqueeze(0).softmax(0).squeeze(0);
        }
        let shifted = self.sub(&self.max_shift(dim));
        let e = shifted.exp();
        e.div(&e.sum_dim(&[dim], true))
    }

    /// Log-softmax along `dim`: `x - logsumexp(x)`, finite for any finite input.
    ///
    /// # Panics
    /// If `dim` is out of range.
    #[track_caller]
    pub fn log_softmax(&self, dim: isize) -> Tensor {
        if self.rank() == 0 {
            check_scalar_dim("log_softmax", dim);
            return self.unsqueeze(0).log_softmax(0).squeeze(0);
        }
        self.sub(&self.logsumexp(&[dim], true))
    }
}

/// A 0-d tensor is one element along its only (implicit) axis, as in PyTorch, where
/// `softmax(scalar, dim=-1)` is 1: `dim` may be 0 or -1.
#[track_caller]
fn check_scalar_dim(op: &str, dim: isize) {
    if dim != 0 && dim != -1 {
        panic!("{op}: axis {dim} is out of range for a tensor of rank 0 (valid: -1 ..= 0)");
    }
}

/// The rows of the op table for this family.
pub(crate) const ROWS: &[OpSpec] = &[
    OpSpec::new(
        "relu",
        Inputs::Unary(Domain::AwayFromZero),
        |x| x[0].relu(),
        "g*(x>0)",
    )
    .note("relu'(0) = 0")
    .fused(),
    OpSpec::new(
        "leaky_relu",
        Inputs::Unary(Domain::AwayFromZero),
        |x| x[0].leaky_relu(0.01),
        "g for x>0, g*slope otherwise",
    )
    .note("leaky_relu'(0) = slope"),
    OpSpec::new(
        "elu",
        Inputs::Unary(Domain::AwayFromZero),
        |x| x[0].elu(1.0),
        "g for x>0, g*alpha*e^x otherwise",
    )
    .note("elu'(0) = alpha (the left branch)"),
    OpSpec::new(
        "gelu",
        Inputs::Unary(Domain::Real),
        |x| x[0].gelu(),
        "g*(Phi(x) + x*phi(x))",
    ),
    OpSpec::new(
        "gelu_tanh",
        Inputs::Unary(Domain::Real),
        |x| x[0].gelu_tanh(),
        "derivative of the tanh form",
    ),
    OpSpec::new(
        "silu",
        Inputs::Unary(Domain::Real),
        |x| x[0].silu(),
        "g*s*(1 + x*(1-s)), s = sigmoid(x)",
    ),
    OpSpec::new(
        "softsign",
        Inputs::Unary(Domain::AwayFromZero),
        |x| x[0].softsign(),
        "g/(1+|x|)^2",
    ),
    OpSpec::new(
        "softmax",
        Inputs::Unary(Domain::Real),
        |x| x[0].softmax(-1),
        "s*(g - sum(g*s)), s = softmax(x)",
    )
    .note("computed with the row maximum subtracted: finite for any finite input"),
    OpSpec::new(
        "log_softmax",
        Inputs::Unary(Domain::Real),
        |x| x[0].log_softmax(-1),
        "g - softmax(x)*sum(g)",
    ),
];

#[cfg(test)]
mod tests {
    use crate::Tensor;

    #[test]
    fn relu_at_zero_has_zero_gradient() {
        let x = Tensor::from_vec(vec![-1.0f64, 0.0, 2.0], &[3]).requires_grad();
        let g = x.relu().sum().backward();
        assert_eq!(g[&x].to_vec::<f64>(), vec![0.0, 0.0, 1.0]);
        let g = x.leaky_relu(0.1).sum().backward();
        assert_eq!(g[&x].to_vec::<f64>(), vec![0.1, 0.1, 1.0]);
    }

    #[test]
    fn relu_propagates_nan() {
        let x = Tensor::from_vec(vec![f32::NAN, -1.0, 1.0], &[3]);
        let y = x.relu().to_vec::<f32>();
        assert!(y[0].is_nan());
        assert_eq!(&y[1..], &[0.0, 1.0]);
    }

    #[test]
    fn softmax_is_finite_on_extremes() {
        let x = Tensor::from_vec(vec![1000.0f32, 0.0, -1000.0], &[1, 3]).requires_grad();
        let ls = x.log_softmax(1);
        assert_eq!(ls.to_vec::<f32>(), vec![0.0, -1000.0, -2000.0]);
        let g = ls.narrow(1, 1, 1).sum().backward();
        let gv = g[&x].to_vec::<f32>();
        assert!(gv.iter().all(|v| v.is_finite()), "{gv:?}");
        assert_eq!(gv, vec![-1.0, 1.0, 0.0]);
    }

    #[test]
    fn softmax_of_a_scalar_is_one() {
        // Found by the op-table property test: rank 0 used to panic in the max shift.
        for dim in [0, -1] {
            let x = Tensor::scalar(2.5f64).requires_grad();
            let s = x.softmax(dim);
            assert_eq!((s.shape(), s.item()), (&[] as &[usize], 1.0));
            assert_eq!(s.backward()[&x].item(), 0.0);
            let l = x.log_softmax(dim);
            assert_eq!((l.shape(), l.item()), (&[] as &[usize], 0.0));
            assert_eq!(l.backward()[&x].item(), 0.0);
        }
    }

    #[test]
    #[should_panic(
        expected = "softmax: axis 1 is out of range for a tensor of rank 0 (valid: -1 ..= 0)"
    )]
    fn softmax_of_a_scalar_bad_axis_panics() {
        let _ = Tensor::scalar(1.0f32).softmax(1);
    }

    #[test]
    fn activation_values() {
        let x = Tensor::from_vec(vec![-1.0f64, 0.0, 1.0], &[3]);
        let close = |a: Vec<f64>, b: [f64; 3]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-9);
        assert!(close(
            x.gelu().to_vec(),
            [-0.15865525393145707, 0.0, 0.8413447460685429]
        ));
        assert!(close(
            x.gelu_tanh().to_vec(),
            [-0.15880800939172324, 0.0, 0.8411919906082768]
        ));
        assert!(close(
            x.silu().to_vec(),
            [-0.2689414213699951, 0.0, 0.7310585786300049]
        ));
        assert!(close(x.elu(1.0).to_vec(), [-0.6321205588285577, 0.0, 1.0]));
        assert!(close(x.softsign().to_vec(), [-0.5, 0.0, 0.5]));
    }
}
