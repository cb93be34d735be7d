//! Activations (relu, leaky_relu, elu, selu, celu, gelu, gelu_tanh, silu, mish, softsign,
//! hardtanh, relu6, hardsigmoid, hardswish, logsigmoid, glu, prelu) and softmax /
//! log_softmax / softmin. Only relu has a rule of its own (it is the hot one); the rest
//! are composed from primitives, so their gradients, and gradients of gradients, come
//! free. The piecewise ones pick their branch with `where_` on a comparison, so the
//! gradient at each kink is the one PyTorch returns.

use super::table::{random_shape, random_tensor, Domain, Inputs, OpSpec};
use super::{fused_grad, unary};
use crate::dtype::DType;
use crate::kernels::elementwise::Cost;
use crate::shape::norm_axis;
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

    /// SELU: `scale * elu(x, alpha)` with PyTorch's constants `alpha = 1.6732632423543772`
    /// and `scale = 1.0507009873554805`. At 0 the gradient is `scale * alpha` (the left
    /// branch, as PyTorch). PyTorch: `torch.nn.functional.selu`.
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![1.0f64, 0.0], &[2]);
    /// assert_eq!(x.selu().to_vec::<f64>(), vec![1.0507009873554805, 0.0]);
    /// ```
    #[track_caller]
    pub fn selu(&self) -> Tensor {
        self.elu(SELU_ALPHA).mul_scalar(SELU_SCALE)
    }

    /// CELU: `x` for `x > 0`, `alpha * (e^(x/alpha) - 1)` otherwise. At 0 the gradient is
    /// 1 (the left branch, as PyTorch). PyTorch: `torch.nn.functional.celu` (default
    /// alpha 1).
    ///
    /// # Panics
    /// If `alpha` is 0.
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![2.0f64, 0.0], &[2]);
    /// assert_eq!(x.celu(2.0).to_vec::<f64>(), vec![2.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn celu(&self, alpha: f64) -> Tensor {
        assert!(alpha != 0.0, "celu: alpha must not be 0 (it divides x)");
        Tensor::where_(
            &self.gt_scalar(0.0),
            self,
            &self.mul_scalar(1.0 / alpha).expm1().mul_scalar(alpha),
        )
    }

    /// Mish: `x * tanh(softplus(x))`. PyTorch: `torch.nn.functional.mish`.
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![0.0f64, 1.0], &[2]);
    /// let y = x.mish().to_vec::<f64>();
    /// assert!(y[0] == 0.0 && (y[1] - 0.8650983882673103).abs() < 1e-15);
    /// ```
    #[track_caller]
    pub fn mish(&self) -> Tensor {
        self.mul(&self.softplus().tanh())
    }

    /// HardTanh: `x` clamped to `[min, max]`. Gradient: `g` where `min < x < max`, 0
    /// elsewhere: unlike [`clamp`](Self::clamp), 0 *at* the bounds, as PyTorch's
    /// `hardtanh` (defaults -1, 1). A NaN stays NaN.
    ///
    /// # Panics
    /// If `min > max`.
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![-2.0f64, 0.5, 1.0], &[3]).requires_grad();
    /// let y = x.hardtanh(-1.0, 1.0);
    /// assert_eq!(y.to_vec::<f64>(), vec![-1.0, 0.5, 1.0]);
    /// assert_eq!(y.sum().backward()[&x].to_vec::<f64>(), vec![0.0, 1.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn hardtanh(&self, min: f64, max: f64) -> Tensor {
        assert!(min <= max, "hardtanh: min {min} is greater than max {max}");
        let (lo, hi) = (
            Tensor::scalar_of(min, self.dtype()),
            Tensor::scalar_of(max, self.dtype()),
        );
        Tensor::where_(
            &self.le_scalar(min),
            &lo,
            &Tensor::where_(&self.ge_scalar(max), &hi, self),
        )
    }

    /// ReLU6: `min(max(x, 0), 6)`, i.e. `hardtanh(x, 0, 6)`: gradient 0 at 0 and at 6.
    /// PyTorch: `torch.nn.functional.relu6`.
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![-1.0f32, 3.0, 7.0], &[3]);
    /// assert_eq!(x.relu6().to_vec::<f32>(), vec![0.0, 3.0, 6.0]);
    /// ```
    #[track_caller]
    pub fn relu6(&self) -> Tensor {
        self.hardtanh(0.0, 6.0)
    }

    /// Hard sigmoid: `relu6(x + 3) / 6`. Gradient: `g / 6` where `-3 < x < 3`, 0
    /// elsewhere (also at `±3`, as PyTorch). PyTorch: `torch.nn.functional.hardsigmoid`.
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![-4.0f64, 0.0, 3.0], &[3]);
    /// assert_eq!(x.hardsigmoid().to_vec::<f64>(), vec![0.0, 0.5, 1.0]);
    /// ```
    #[track_caller]
    pub fn hardsigmoid(&self) -> Tensor {
        self.add_scalar(3.0)
            .hardtanh(0.0, 6.0)
            .mul_scalar(1.0 / 6.0)
    }

    /// Hard swish: `x * relu6(x + 3) / 6`. Gradient: 0 for `x <= -3`, `g * (x/3 + 1/2)`
    /// for `-3 < x < 3`, `g` for `x >= 3` (PyTorch's branches, so `-3` gives 0 and `3`
    /// gives 1). PyTorch: `torch.nn.functional.hardswish`.
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![-4.0f64, 0.0, 1.0, 4.0], &[4]);
    /// assert_eq!(x.hardswish().to_vec::<f64>(), vec![0.0, 0.0, 4.0 / 6.0, 4.0]);
    /// ```
    #[track_caller]
    pub fn hardswish(&self) -> Tensor {
        let zero = Tensor::scalar_of(0.0, self.dtype());
        let middle = self.mul(&self.add_scalar(3.0)).mul_scalar(1.0 / 6.0);
        Tensor::where_(
            &self.le_scalar(-3.0),
            &zero,
            &Tensor::where_(&self.ge_scalar(3.0), self, &middle),
        )
    }

    /// Log-sigmoid `log(1 / (1 + e^-x)) = -softplus(-x)`, finite for any finite input
    /// (`logsigmoid(-1000) = -1000`). Gradient: `g * sigmoid(-x)`. PyTorch:
    /// `torch.nn.functional.logsigmoid`.
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![-1000.0f32, 0.0, 1000.0], &[3]);
    /// assert_eq!(x.logsigmoid().to_vec::<f32>(), vec![-1000.0, -std::f32::consts::LN_2, 0.0]);
    /// ```
    #[track_caller]
    pub fn logsigmoid(&self) -> Tensor {
        self.neg().softplus().neg()
    }

    /// Gated linear unit along `dim`: splits the tensor in halves `a`, `b` along `dim`
    /// and returns `a * sigmoid(b)` (the size of `dim` halves). PyTorch:
    /// `torch.nn.functional.glu` (default `dim = -1`).
    ///
    /// # Panics
    /// If `dim` is out of range or its size is odd.
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![2.0f64, 4.0, 0.0, 1000.0], &[1, 4]);
    /// let y = x.glu(-1);
    /// assert_eq!(y.shape(), &[1, 2]);
    /// assert_eq!(y.to_vec::<f64>(), vec![1.0, 4.0]);
    /// ```
    #[track_caller]
    pub fn glu(&self, dim: isize) -> Tensor {
        assert!(
            self.rank() > 0,
            "glu: a tensor of rank 0 has no dimension to halve"
        );
        let axis = norm_axis("glu", dim, self.rank());
        let n = self.shape()[axis];
        assert!(
            n.is_multiple_of(2),
            "glu: dimension {dim} of shape {:?} has odd size {n}; it must split in halves",
            self.shape()
        );
        let a = self.narrow(dim, 0, n / 2);
        let b = self.narrow(dim, n / 2, n / 2);
        a.mul(&b.sigmoid())
    }

    /// PReLU: `x` for `x > 0`, `weight * x` otherwise, with a learnable `weight` of one
    /// element or one per channel (dimension 1 of the input, as in PyTorch; a 1-d input
    /// takes a one-element weight). Gradients: to `x` as leaky ReLU (`weight` at 0), to
    /// `weight` `g * x` where `x <= 0`, summed over all but the channel axis. PyTorch:
    /// `torch.nn.functional.prelu`.
    ///
    /// # Panics
    /// If dtypes differ, `weight` is not 1-d (or 0-d), or its size is neither 1 nor the
    /// size of dimension 1.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let x = Tensor::from_vec(vec![-1.0f64, 2.0, -3.0, 4.0], &[2, 2]);
    /// let w = Tensor::from_vec(vec![0.5f64, 0.25], &[2]).requires_grad();
    /// let y = x.prelu(&w);
    /// assert_eq!(y.to_vec::<f64>(), vec![-0.5, 2.0, -1.5, 4.0]); // channel 0 slope 0.5
    /// assert_eq!(y.sum().backward()[&w].to_vec::<f64>(), vec![-4.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn prelu(&self, weight: &Tensor) -> Tensor {
        super::check_same_dtype("prelu", self, weight);
        assert!(
            weight.rank() <= 1,
            "prelu: weight must be 0-d or 1-d, got shape {:?}",
            weight.shape()
        );
        let c = weight.numel();
        let w = if c == 1 {
            weight.reshape_to(&[])
        } else {
            let channels = if self.rank() >= 2 { self.shape()[1] } else { 1 };
            assert!(
                c == channels,
                "prelu: weight has {c} elements but input {:?} has {channels} channels (dimension 1); give 1 or {channels}",
                self.shape()
            );
            let mut s = vec![1usize; self.rank() - 1];
            s[0] = c;
            weight.reshape_to(&s)
        };
        Tensor::where_(&self.gt_scalar(0.0), self, &self.mul(&w))
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

    /// Softmin along `dim`: `softmax(-x)`, finite for any finite input. PyTorch:
    /// `torch.nn.functional.softmin`.
    ///
    /// # Panics
    /// If `dim` is out of range.
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![1000.0f32, 0.0, -1000.0], &[3]);
    /// assert_eq!(x.softmin(-1).to_vec::<f32>(), vec![0.0, 0.0, 1.0]);
    /// ```
    #[track_caller]
    pub fn softmin(&self, dim: isize) -> Tensor {
        self.neg().softmax(dim)
    }
}

/// SELU's constants, as in PyTorch (`torch.nn.SELU`).
const SELU_ALPHA: f64 = 1.673_263_242_354_377_3;
const SELU_SCALE: f64 = 1.050_700_987_355_480_5;

/// A 0-d tensor is one element along its only (implicit) axis, as in PyTorch, where
/// `softmax(scalar, dim=-1)` is 1: `dim` may be 0 or -1.
#[track_caller]
fn check_scalar_dim(op: &str, dim: isize) {
    if dim != 0 && dim != -1 {
        panic!("{op}: axis {dim} is out of range for a tensor of rank 0 (valid: -1 ..= 0)");
    }
}

/// `glu`'s input: rank 1 to 4 with an even last axis.
fn even_last_axis(rng: &mut rand::rngs::StdRng, dtype: DType) -> Vec<Tensor> {
    let mut s = random_shape(rng, 3, 3);
    s.push(2 * rand::Rng::gen_range(rng, 1..=2));
    vec![random_tensor(rng, &s, Domain::Real, dtype)]
}

/// `prelu`'s inputs: `x` of rank 2 to 4 (away from the kink at 0) and a weight of one
/// element or one per channel (dimension 1).
fn prelu_inputs(rng: &mut rand::rngs::StdRng, dtype: DType) -> Vec<Tensor> {
    let mut s = random_shape(rng, 2, 3);
    s.insert(0, rand::Rng::gen_range(rng, 1..=2));
    s.insert(1, rand::Rng::gen_range(rng, 1..=3));
    let c = if rand::Rng::gen_bool(rng, 0.3) {
        1
    } else {
        s[1]
    };
    vec![
        random_tensor(rng, &s, Domain::AwayFromZero, dtype),
        random_tensor(rng, &[c], Domain::Real, dtype),
    ]
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
    OpSpec::new(
        "selu",
        Inputs::Unary(Domain::AwayFromZero),
        |x| x[0].selu(),
        "g*scale for x>0, g*scale*alpha*e^x otherwise",
    )
    .note("selu'(0) = scale*alpha (the left branch)"),
    OpSpec::new(
        "celu",
        Inputs::Unary(Domain::AwayFromZero),
        |x| x[0].celu(1.5),
        "g for x>0, g*e^(x/alpha) otherwise",
    )
    .note("celu'(0) = 1 (the left branch)"),
    OpSpec::new(
        "mish",
        Inputs::Unary(Domain::Real),
        |x| x[0].mish(),
        "g*(t + x*sigmoid(x)*(1-t^2)), t = tanh(softplus(x))",
    ),
    OpSpec::new(
        "hardtanh",
        Inputs::Unary(Domain::AwayFromHalf),
        |x| x[0].hardtanh(-0.5, 0.5),
        "g where min<x<max, else 0",
    )
    .note("gradient 0 at x = min and x = max (unlike clamp)"),
    OpSpec::new(
        "relu6",
        Inputs::Unary(Domain::AwayFromThree),
        |x| x[0].add_scalar(3.0).relu6(),
        "g where 0<x<6, else 0",
    )
    .note("gradient 0 at 0 and at 6"),
    OpSpec::new(
        "hardsigmoid",
        Inputs::Unary(Domain::AwayFromThree),
        |x| x[0].hardsigmoid(),
        "g/6 where -3<x<3, else 0",
    )
    .note("gradient 0 at ±3"),
    OpSpec::new(
        "hardswish",
        Inputs::Unary(Domain::AwayFromThree),
        |x| x[0].hardswish(),
        "0 for x<=-3, g*(x/3+1/2) for -3<x<3, g for x>=3",
    )
    .note("gradient 0 at -3 and 1 at 3 (PyTorch's branches)"),
    OpSpec::new(
        "logsigmoid",
        Inputs::Unary(Domain::Real),
        |x| x[0].logsigmoid(),
        "g*sigmoid(-x)",
    )
    .note("computed as -softplus(-x): finite for any finite input"),
    OpSpec::new(
        "glu",
        Inputs::Custom(even_last_axis),
        |x| x[0].glu(-1),
        "a: g*sigmoid(b), b: g*a*s*(1-s) (a, b the halves, s = sigmoid(b))",
    ),
    OpSpec::new(
        "prelu",
        Inputs::Custom(prelu_inputs),
        |x| x[0].prelu(&x[1]),
        "x: g for x>0, g*w otherwise; w: sum of g*x where x<=0",
    )
    .note("prelu'(0) = w (the left branch); the weight broadcasts over dimension 1"),
    OpSpec::new(
        "softmin",
        Inputs::Unary(Domain::Real),
        |x| x[0].softmin(-1),
        "-s*(g - sum(g*s)), s = softmin(x)",
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
    /// Values and gradients of `sum(y * [1..8])` from PyTorch 2.15 (f64), at points that
    /// include every kink, so the branch each op takes there is pinned.
    #[test]
    fn new_activations_match_pytorch() {
        type Case = (&'static str, fn(&Tensor) -> Tensor, [f64; 8], [f64; 8]);
        let cases: [Case; 9] = [
            (
                "selu",
                |x| x.selu(),
                [
                    -1.705009340957283,
                    -1.6705687287671118,
                    -1.1113307378125625,
                    0.0,
                    0.5253504936777402,
                    1.0507009873554805,
                    3.1521029620664414,
                    6.829556417810623,
                ],
                [
                    0.05308999989009366,
                    0.17506122416052974,
                    1.940305809104442,
                    7.0323973633895065,
                    5.253504936777402,
                    6.304205924132883,
                    7.354906911488364,
                    8.405607898843844,
                ],
            ),
            (
                "celu",
                |x| x.celu(1.5),
                [
                    -1.3545420482033923,
                    -1.296997075145081,
                    -0.729874321451112,
                    0.0,
                    0.5,
                    1.0,
                    3.0,
                    6.5,
                ],
                [
                    0.0969719678644051,
                    0.2706705664732254,
                    1.540251357097776,
                    4.0,
                    5.0,
                    6.0,
                    7.0,
                    8.0,
                ],
            ),
            (
                "mish",
                |x| x.mish(),
                [
                    -0.10409575448637122,
                    -0.1456474612756246,
                    -0.30340146137410895,
                    0.0,
                    0.3752452113048951,
                    0.8650983882673103,
                    2.9865350049679575,
                    6.499970703939837,
                ],
                [
                    -0.07276041344326706,
                    -0.18678622906464168,
                    0.17765026763218505,
                    2.4,
                    4.432121876788636,
                    6.2942173205987535,
                    7.1477483765061045,
                    8.000431975558834,
                ],
            ),
            (
                "logsigmoid",
                |x| x.logsigmoid(),
                [
                    -3.5297504182726205,
                    -3.048587351573742,
                    -1.3132616875182228,
                    -std::f64::consts::LN_2,
                    -0.4740769841801067,
                    -0.31326168751822286,
                    -0.04858735157374206,
                    -0.0015023101597542838,
                ],
                [
                    0.9706877692486436,
                    1.9051482536448665,
                    2.193175735890015,
                    2.0,
                    1.8877033439907274,
                    1.6136485282199706,
                    0.3319811122429675,
                    0.012009458053895932,
                ],
            ),
            (
                "hardswish",
                |x| x.hardswish(),
                [
                    0.0,
                    0.0,
                    -0.3333333333333333,
                    0.0,
                    0.2916666666666667,
                    0.6666666666666666,
                    3.0,
                    6.5,
                ],
                [0.0, 0.0, 0.5, 2.0, 3.333333333333333, 5.0, 7.0, 8.0],
            ),
            // PyTorch computes this gradient in f32 internally (0.5000000149...).
            (
                "hardsigmoid",
                |x| x.hardsigmoid(),
                [
                    0.0,
                    0.0,
                    0.3333333333333333,
                    0.5,
                    0.5833333333333334,
                    0.6666666666666666,
                    1.0,
                    1.0,
                ],
                [
                    0.0,
                    0.0,
                    0.5,
                    0.6666666666666666,
                    0.8333333333333334,
                    1.0,
                    0.0,
                    0.0,
                ],
            ),
            (
                "relu6",
                |x| x.relu6(),
                [0.0, 0.0, 0.0, 0.0, 0.5, 1.0, 3.0, 6.0],
                [0.0, 0.0, 0.0, 0.0, 5.0, 6.0, 7.0, 0.0],
            ),
            (
                "hardtanh",
                |x| x.hardtanh(-1.0, 1.0),
                [-1.0, -1.0, -1.0, 0.0, 0.5, 1.0, 1.0, 1.0],
                [0.0, 0.0, 0.0, 4.0, 5.0, 0.0, 0.0, 0.0],
            ),
            (
                "softmin",
                |x| x.softmin(-1),
                [
                    0.5714982888939203,
                    0.34663123418747066,
                    0.04691143625741796,
                    0.017257752954928658,
                    0.010467356284910526,
                    0.006348772512933962,
                    0.000859212926242739,
                    2.5945982175164258e-05,
                ],
                [
                    0.3264269940250028,
                    -0.14864325415347385,
                    -0.06702811315949014,
                    -0.04191601776681809,
                    -0.03589070619354516,
                    -0.028117586218057208,
                    -0.004664514420993389,
                    -0.0001668021126248356,
                ],
            ),
        ];
        let w = Tensor::from_vec((1..=8).map(f64::from).collect(), &[8]);
        for (name, f, value, grad) in cases {
            let x = Tensor::from_vec(vec![-3.5f64, -3.0, -1.0, 0.0, 0.5, 1.0, 3.0, 6.5], &[8])
                .requires_grad();
            let y = f(&x);
            let g = y.mul(&w).sum().backward()[&x].to_vec::<f64>();
            for (i, (a, b)) in y.to_vec::<f64>().iter().zip(value).enumerate() {
                assert!((a - b).abs() < 1e-12, "{name} value {i}: {a} vs {b}");
            }
            for (i, (a, b)) in g.iter().zip(grad).enumerate() {
                assert!((a - b).abs() < 1e-7, "{name} gradient {i}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn logsigmoid_is_stable_and_glu_prelu_check_shapes() {
        let x = Tensor::from_vec(vec![-1000.0f64, 1000.0], &[2]).requires_grad();
        let y = x.logsigmoid();
        assert_eq!(y.to_vec::<f64>(), vec![-1000.0, 0.0]);
        assert_eq!(y.sum().backward()[&x].to_vec::<f64>(), vec![1.0, 0.0]);
        let w = Tensor::from_vec(vec![0.25f64], &[1]).requires_grad();
        let x = Tensor::from_vec(vec![-4.0f64, 0.0, 2.0], &[3]).requires_grad();
        let g = x.prelu(&w).sum().backward();
        assert_eq!(g[&x].to_vec::<f64>(), vec![0.25, 0.25, 1.0]);
        assert_eq!(g[&w].to_vec::<f64>(), vec![-4.0]);
        let r = std::panic::catch_unwind(|| Tensor::zeros(&[2, 3], crate::DType::F32).glu(1));
        assert!(r.is_err());
    }

    #[test]
    #[should_panic(expected = "prelu: weight has 2 elements but input [2, 3] has 3 channels")]
    fn prelu_with_the_wrong_number_of_weights_panics() {
        let _ = Tensor::zeros(&[2, 3], crate::DType::F32)
            .prelu(&Tensor::zeros(&[2], crate::DType::F32));
    }
}
