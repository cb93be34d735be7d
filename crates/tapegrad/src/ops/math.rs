//! Math functions: exp, exp2, log, log2, log10, log1p, expm1, trigonometric and hyperbolic
//! functions and their inverses, atan2, tanh, sigmoid, softplus, erf, lerp, and the
//! rounding family (floor, ceil, round, trunc, frac), recorded with PyTorch's gradients.

use num_traits::{One, Zero};
use rand::rngs::StdRng;
use smallvec::smallvec;

use super::table::{broadcast_pair, random_tensor, Domain, Inputs, OpSpec};
use super::{check_binary, fused_grad, unary};
use crate::autograd::node::Op;
use crate::dtype::DType;
use crate::dtype::Element;
use crate::kernels::elementwise::{self, zip_costly, Cost};
use crate::shape::Shape;
use crate::storage::{dispatch, Data};
use crate::tensor::Tensor;

impl Tensor {
    /// Elementwise `e^x`. Gradient: `g * out` (the rule reads the saved output).
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![0.0f64, 1.0], &[2]);
    /// assert_eq!(x.exp().to_vec::<f64>(), vec![1.0, std::f64::consts::E]);
    /// ```
    #[track_caller]
    pub fn exp(&self) -> Tensor {
        // The vectorised kernel, not `unary!`'s per-element map.
        let value = dispatch!(self.data(), |a| Data::from(elementwise::exp(a)));
        Op::new("exp", &[self], value).save_output().rule(|ctx, g| {
            fused_grad!(ctx, g, |g, y| g * y);
            g.mul(&ctx.output())
        })
    }

    /// Elementwise natural log. Gradient: `g / x`. `log(0) = -inf`, `log(x < 0) = NaN`.
    #[track_caller]
    pub fn log(&self) -> Tensor {
        unary!(self, "log", Cost::Costly, |x| x.ln())
            .save(&[self])
            .rule(|ctx, g| g.div(ctx.saved(0)))
    }

    /// Elementwise `ln(1 + x)`, accurate for small `x`. Gradient: `g / (1 + x)`.
    #[track_caller]
    pub fn log1p(&self) -> Tensor {
        unary!(self, "log1p", Cost::Costly, |x| x.ln_1p())
            .save(&[self])
            .rule(|ctx, g| g.div(&ctx.saved(0).add_scalar(1.0)))
    }

    /// Elementwise `e^x - 1`, accurate for small `x`. Gradient: `g * (out + 1)`.
    #[track_caller]
    pub fn expm1(&self) -> Tensor {
        unary!(self, "expm1", Cost::Costly, |x| x.exp_m1())
            .save_output()
            .rule(|ctx, g| g.mul(&ctx.output().add_scalar(1.0)))
    }

    /// Elementwise `2^x`. Gradient: `g * out * ln 2`. PyTorch: `torch.exp2`.
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![3.0f64, -1.0], &[2]);
    /// assert_eq!(x.exp2().to_vec::<f64>(), vec![8.0, 0.5]);
    /// ```
    #[track_caller]
    pub fn exp2(&self) -> Tensor {
        unary!(self, "exp2", Cost::Costly, |x| x.exp2())
            .save_output()
            .rule(|ctx, g| g.mul(&ctx.output()).mul_scalar(std::f64::consts::LN_2))
    }

    /// Elementwise base-2 logarithm. Gradient: `g / (x ln 2)`. `log2(0) = -inf`,
    /// `log2(x < 0) = NaN`. PyTorch: `torch.log2`.
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![8.0f64, 0.5], &[2]);
    /// assert_eq!(x.log2().to_vec::<f64>(), vec![3.0, -1.0]);
    /// ```
    #[track_caller]
    pub fn log2(&self) -> Tensor {
        unary!(self, "log2", Cost::Costly, |x| x.log2())
            .save(&[self])
            .rule(|ctx, g| g.div(&ctx.saved(0).mul_scalar(std::f64::consts::LN_2)))
    }

    /// Elementwise base-10 logarithm. Gradient: `g / (x ln 10)`. `log10(0) = -inf`,
    /// `log10(x < 0) = NaN`. PyTorch: `torch.log10`.
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![100.0f64, 0.1], &[2]);
    /// assert_eq!(x.log10().to_vec::<f64>(), vec![2.0, -1.0]);
    /// ```
    #[track_caller]
    pub fn log10(&self) -> Tensor {
        unary!(self, "log10", Cost::Costly, |x| x.log10())
            .save(&[self])
            .rule(|ctx, g| g.div(&ctx.saved(0).mul_scalar(std::f64::consts::LN_10)))
    }

    /// Elementwise arcsine, in `[-pi/2, pi/2]`; NaN outside `[-1, 1]`. Gradient:
    /// `g / sqrt(1 - x^2)`, infinite at `±1`. PyTorch: `torch.asin`.
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![1.0f64], &[1]);
    /// assert_eq!(x.asin().item(), std::f64::consts::FRAC_PI_2);
    /// ```
    #[track_caller]
    pub fn asin(&self) -> Tensor {
        unary!(self, "asin", Cost::Costly, |x| x.asin())
            .save(&[self])
            .rule(|ctx, g| g.div(&ctx.saved(0).square().rsub_scalar(1.0).sqrt()))
    }

    /// Elementwise arccosine, in `[0, pi]`; NaN outside `[-1, 1]`. Gradient:
    /// `-g / sqrt(1 - x^2)`, infinite at `±1`. PyTorch: `torch.acos`.
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![-1.0f64], &[1]);
    /// assert_eq!(x.acos().item(), std::f64::consts::PI);
    /// ```
    #[track_caller]
    pub fn acos(&self) -> Tensor {
        unary!(self, "acos", Cost::Costly, |x| x.acos())
            .save(&[self])
            .rule(|ctx, g| g.div(&ctx.saved(0).square().rsub_scalar(1.0).sqrt()).neg())
    }

    /// Elementwise arctangent, in `(-pi/2, pi/2)`. Gradient: `g / (1 + x^2)`.
    /// PyTorch: `torch.atan`.
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![1.0f64], &[1]).requires_grad();
    /// assert_eq!(x.atan().item(), std::f64::consts::FRAC_PI_4);
    /// assert_eq!(x.atan().sum().backward()[&x].item(), 0.5);
    /// ```
    #[track_caller]
    pub fn atan(&self) -> Tensor {
        unary!(self, "atan", Cost::Costly, |x| x.atan())
            .save(&[self])
            .rule(|ctx, g| g.div(&ctx.saved(0).square().add_scalar(1.0)))
    }

    /// Elementwise `atan2(self, other)`: the angle of the point `(other, self)`, in
    /// `[-pi, pi]`, broadcasting (`self` is `y`, `other` is `x`, as in `torch.atan2`).
    /// Gradients: `g * x / (x^2 + y^2)` to `self` and `-g * y / (x^2 + y^2)` to `other`;
    /// at `x = y = 0` both are 0, as in PyTorch (the value there is `±0` or `±pi`, by the
    /// signs of the zeros).
    ///
    /// # Panics
    /// If dtypes differ or shapes do not broadcast.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let y = Tensor::from_vec(vec![1.0f64, 0.0], &[2]).requires_grad();
    /// let x = Tensor::from_vec(vec![1.0f64, 0.0], &[2]).requires_grad();
    /// let a = y.atan2(&x);
    /// assert_eq!(a.to_vec::<f64>(), vec![std::f64::consts::FRAC_PI_4, 0.0]);
    /// let g = a.sum().backward();
    /// assert_eq!(g[&y].to_vec::<f64>(), vec![0.5, 0.0]);
    /// assert_eq!(g[&x].to_vec::<f64>(), vec![-0.5, 0.0]);
    /// ```
    #[track_caller]
    pub fn atan2(&self, other: &Tensor) -> Tensor {
        check_binary("atan2", self, other);
        let (sy, sx) = (
            Shape::from_slice(self.shape()),
            Shape::from_slice(other.shape()),
        );
        let value = dispatch!((self.data(), other.data()), |a, b| Data::from(zip_costly(
            a,
            b,
            |y, x| y.atan2(x)
        )));
        Op::new("atan2", &[self, other], value)
            .save(&[self, other])
            .rule(move |ctx, g| {
                let (y, x) = (ctx.saved(0), ctx.saved(1));
                let r2 = x.square().add(&y.square());
                // Where x = y = 0 the formulas are 0/0: PyTorch's gradient there is 0.
                let origin = r2.eq_scalar(0.0);
                let safe = Tensor::where_(&origin, &r2.ones_like(), &r2);
                let zero = Tensor::scalar_of(0.0, g.dtype());
                let scale = g.div(&safe);
                smallvec![
                    ctx.needs_grad(0)
                        .then(|| Tensor::where_(&origin, &zero, &scale.mul(x)).sum_to(&sy)),
                    ctx.needs_grad(1).then(|| {
                        Tensor::where_(&origin, &zero, &scale.mul(y).neg()).sum_to(&sx)
                    })
                ]
            })
    }

    /// Elementwise hyperbolic sine. Gradient: `g * cosh x`. PyTorch: `torch.sinh`.
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![0.0f64], &[1]).requires_grad();
    /// assert_eq!(x.sinh().sum().backward()[&x].item(), 1.0);
    /// ```
    #[track_caller]
    pub fn sinh(&self) -> Tensor {
        unary!(self, "sinh", Cost::Costly, |x| x.sinh())
            .save(&[self])
            .rule(|ctx, g| g.mul(&ctx.saved(0).cosh()))
    }

    /// Elementwise hyperbolic cosine. Gradient: `g * sinh x`. PyTorch: `torch.cosh`.
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![0.0f64], &[1]);
    /// assert_eq!(x.cosh().item(), 1.0);
    /// ```
    #[track_caller]
    pub fn cosh(&self) -> Tensor {
        unary!(self, "cosh", Cost::Costly, |x| x.cosh())
            .save(&[self])
            .rule(|ctx, g| g.mul(&ctx.saved(0).sinh()))
    }

    /// Elementwise inverse hyperbolic sine. Gradient: `g / sqrt(x^2 + 1)`.
    /// PyTorch: `torch.asinh`.
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![0.0f64], &[1]).requires_grad();
    /// assert_eq!(x.asinh().sum().backward()[&x].item(), 1.0);
    /// ```
    #[track_caller]
    pub fn asinh(&self) -> Tensor {
        unary!(self, "asinh", Cost::Costly, |x| x.asinh())
            .save(&[self])
            .rule(|ctx, g| g.div(&ctx.saved(0).square().add_scalar(1.0).sqrt()))
    }

    /// Elementwise inverse hyperbolic cosine, NaN below 1. Gradient: `g / sqrt(x^2 - 1)`,
    /// infinite at 1. PyTorch: `torch.acosh`.
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![1.0f64], &[1]);
    /// assert_eq!(x.acosh().item(), 0.0);
    /// ```
    #[track_caller]
    pub fn acosh(&self) -> Tensor {
        unary!(self, "acosh", Cost::Costly, |x| x.acosh())
            .save(&[self])
            .rule(|ctx, g| g.div(&ctx.saved(0).square().sub_scalar(1.0).sqrt()))
    }

    /// Elementwise inverse hyperbolic tangent: `±inf` at `±1`, NaN outside `[-1, 1]`.
    /// Gradient: `g / (1 - x^2)`. PyTorch: `torch.atanh`.
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![0.0f64], &[1]).requires_grad();
    /// assert_eq!(x.atanh().sum().backward()[&x].item(), 1.0);
    /// ```
    #[track_caller]
    pub fn atanh(&self) -> Tensor {
        unary!(self, "atanh", Cost::Costly, |x| x.atanh())
            .save(&[self])
            .rule(|ctx, g| g.div(&ctx.saved(0).square().rsub_scalar(1.0)))
    }

    /// Linear interpolation `self + weight * (end - self)`, broadcasting all three.
    /// Gradients: `g * (1 - weight)` to `self`, `g * weight` to `end`,
    /// `g * (end - self)` to `weight`. PyTorch: `torch.lerp(start, end, weight)`; see
    /// [`lerp_scalar`](Self::lerp_scalar) for a number as the weight.
    ///
    /// # Panics
    /// If dtypes differ or shapes do not broadcast.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let start = Tensor::from_vec(vec![0.0f64, 10.0], &[2]);
    /// let end = Tensor::from_vec(vec![4.0f64, 20.0], &[2]);
    /// let w = Tensor::from_vec(vec![0.25f64, 0.5], &[2]);
    /// assert_eq!(start.lerp(&end, &w).to_vec::<f64>(), vec![1.0, 15.0]);
    /// ```
    #[track_caller]
    pub fn lerp(&self, end: &Tensor, weight: &Tensor) -> Tensor {
        check_binary("lerp", self, end);
        check_binary("lerp", self, weight);
        check_binary("lerp", end, weight);
        self.add(&weight.mul(&end.sub(self)))
    }

    /// Linear interpolation `self + weight * (end - self)` with a number as the weight.
    /// Gradients: `g * (1 - weight)` to `self`, `g * weight` to `end`. PyTorch:
    /// `torch.lerp(start, end, weight)` with a float `weight`.
    ///
    /// # Panics
    /// If dtypes differ or shapes do not broadcast.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let start = Tensor::from_vec(vec![0.0f64, 10.0], &[2]);
    /// let end = Tensor::from_vec(vec![4.0f64, 20.0], &[2]);
    /// assert_eq!(start.lerp_scalar(&end, 0.25).to_vec::<f64>(), vec![1.0, 12.5]);
    /// ```
    #[track_caller]
    pub fn lerp_scalar(&self, end: &Tensor, weight: f64) -> Tensor {
        check_binary("lerp_scalar", self, end);
        self.add(&end.sub(self).mul_scalar(weight))
    }

    /// Elementwise largest integer `<= x`. Piecewise constant: recorded with gradient 0,
    /// as in PyTorch (so a graph through it stays connected). PyTorch: `torch.floor`.
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![-1.5f64, 1.5], &[2]).requires_grad();
    /// assert_eq!(x.floor().to_vec::<f64>(), vec![-2.0, 1.0]);
    /// assert_eq!(x.floor().sum().backward()[&x].to_vec::<f64>(), vec![0.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn floor(&self) -> Tensor {
        unary!(self, "floor", Cost::Cheap, |x| x.floor()).rule(|_, g| g.zeros_like())
    }

    /// Elementwise smallest integer `>= x`, with gradient 0 (see [`floor`](Self::floor)).
    /// PyTorch: `torch.ceil`.
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![-1.5f64, 1.5], &[2]);
    /// assert_eq!(x.ceil().to_vec::<f64>(), vec![-1.0, 2.0]);
    /// ```
    #[track_caller]
    pub fn ceil(&self) -> Tensor {
        unary!(self, "ceil", Cost::Cheap, |x| x.ceil()).rule(|_, g| g.zeros_like())
    }

    /// Elementwise nearest integer, halves to the even one (`0.5 -> 0`, `1.5 -> 2`,
    /// `2.5 -> 2`), as `torch.round`; gradient 0 (see [`floor`](Self::floor)).
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![0.5f64, 1.5, 2.5, -0.5, 2.7], &[5]);
    /// assert_eq!(x.round().to_vec::<f64>(), vec![0.0, 2.0, 2.0, -0.0, 3.0]);
    /// ```
    #[track_caller]
    pub fn round(&self) -> Tensor {
        unary!(self, "round", Cost::Cheap, |x| round_half_even(x)).rule(|_, g| g.zeros_like())
    }

    /// Elementwise integer part, rounding toward zero; gradient 0 (see
    /// [`floor`](Self::floor)). PyTorch: `torch.trunc`.
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![-1.5f64, 1.5], &[2]);
    /// assert_eq!(x.trunc().to_vec::<f64>(), vec![-1.0, 1.0]);
    /// ```
    #[track_caller]
    pub fn trunc(&self) -> Tensor {
        unary!(self, "trunc", Cost::Cheap, |x| x.trunc()).rule(|_, g| g.zeros_like())
    }

    /// Elementwise fractional part `x - trunc(x)` (the sign of `x`: `frac(-1.5) = -0.5`).
    /// Gradient: `g` (PyTorch's convention, also at the jumps). PyTorch: `torch.frac`.
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![-1.5f64, 2.25], &[2]).requires_grad();
    /// assert_eq!(x.frac().to_vec::<f64>(), vec![-0.5, 0.25]);
    /// assert_eq!(x.frac().sum().backward()[&x].to_vec::<f64>(), vec![1.0, 1.0]);
    /// ```
    #[track_caller]
    pub fn frac(&self) -> Tensor {
        unary!(self, "frac", Cost::Cheap, |x| x - x.trunc()).rule(|_, g| g.clone())
    }

    /// Elementwise sine. Gradient: `g * cos x`.
    #[track_caller]
    pub fn sin(&self) -> Tensor {
        unary!(self, "sin", Cost::Costly, |x| x.sin())
            .save(&[self])
            .rule(|ctx, g| g.mul(&ctx.saved(0).cos()))
    }

    /// Elementwise cosine. Gradient: `-g * sin x`.
    #[track_caller]
    pub fn cos(&self) -> Tensor {
        unary!(self, "cos", Cost::Costly, |x| x.cos())
            .save(&[self])
            .rule(|ctx, g| g.mul(&ctx.saved(0).sin()).neg())
    }

    /// Elementwise tangent. Gradient: `g * (1 + out^2)` (the rule reads the saved output).
    /// Near the poles `pi/2 + k pi` the value and the gradient grow without bound, as in
    /// PyTorch. PyTorch: `torch.tan`.
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![0.0f64, std::f64::consts::FRAC_PI_4], &[2]).requires_grad();
    /// let y = x.tan();
    /// assert!((y.to_vec::<f64>()[1] - 1.0).abs() < 1e-15);
    /// let g = y.sum().backward();
    /// assert!((g[&x].to_vec::<f64>()[1] - 2.0).abs() < 1e-14); // 1 + tan(pi/4)^2
    /// ```
    #[track_caller]
    pub fn tan(&self) -> Tensor {
        unary!(self, "tan", Cost::Costly, |x| x.tan())
            .save_output()
            .rule(|ctx, g| g.mul(&ctx.output().square().add_scalar(1.0)))
    }

    /// Elementwise hyperbolic tangent. Gradient: `g * (1 - out^2)`.
    #[track_caller]
    pub fn tanh(&self) -> Tensor {
        unary!(self, "tanh", Cost::Costly, |x| x.tanh())
            .save_output()
            .rule(|ctx, g| {
                fused_grad!(ctx, g, |g, y| g * (E::one() - y * y));
                g.mul(&ctx.output().square().rsub_scalar(1.0))
            })
    }

    /// Elementwise logistic `1 / (1 + e^-x)`, computed without overflow for large `|x|`.
    /// Gradient: `g * out * (1 - out)`.
    #[track_caller]
    pub fn sigmoid(&self) -> Tensor {
        unary!(self, "sigmoid", Cost::Costly, |x| sigmoid_scalar(x))
            .save_output()
            .rule(|ctx, g| {
                fused_grad!(ctx, g, |g, y| g * (y * (E::one() - y)));
                let out = ctx.output();
                g.mul(&out.mul(&out.rsub_scalar(1.0)))
            })
    }

    /// Elementwise `ln(1 + e^x)`, computed as `max(x, 0) + ln(1 + e^-|x|)` so it neither
    /// overflows nor loses the small tail. Gradient: `g * sigmoid(x)`.
    #[track_caller]
    pub fn softplus(&self) -> Tensor {
        unary!(self, "softplus", Cost::Costly, |x| x.max(E::zero())
            + (-x.abs()).exp().ln_1p())
        .save(&[self])
        .rule(|ctx, g| g.mul(&ctx.saved(0).sigmoid()))
    }

    /// Elementwise error function. Gradient: `g * 2/sqrt(pi) * e^(-x^2)`.
    #[track_caller]
    pub fn erf(&self) -> Tensor {
        unary!(self, "erf", Cost::Costly, |x| Element::erf(x))
            .save(&[self])
            .rule(|ctx, g| {
                let x = ctx.saved(0);
                g.mul(&x.square().neg().exp())
                    .mul_scalar(std::f64::consts::FRAC_2_SQRT_PI)
            })
    }
}

/// Rounds half to even, as `torch.round` (Rust's `round` rounds half away from zero).
#[inline(always)]
fn round_half_even<T: Element>(x: T) -> T {
    let r = x.round();
    if (x - x.trunc()).abs() == T::of(0.5) {
        (x / T::of(2.0)).round() * T::of(2.0)
    } else {
        r
    }
}

/// `lerp`'s inputs: `start` and `end` of broadcast-compatible shapes, and a weight of
/// the last axis' size (or a scalar), in `[-2, 2]`.
fn lerp_inputs(rng: &mut StdRng, dtype: DType) -> Vec<Tensor> {
    let (sa, sb) = broadcast_pair(rng);
    let w_shape: Vec<usize> = if rand::Rng::gen_bool(rng, 0.5) {
        sa.last().map(|&d| vec![d]).unwrap_or_default()
    } else {
        Vec::new()
    };
    vec![
        random_tensor(rng, &sa, Domain::Real, dtype),
        random_tensor(rng, &sb, Domain::Real, dtype),
        random_tensor(rng, &w_shape, Domain::Real, dtype),
    ]
}

#[inline(always)]
fn sigmoid_scalar<T: Element>(x: T) -> T {
    // Branch on the sign so exp never overflows.
    if x >= T::zero() {
        T::one() / (T::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::one() + e)
    }
}

/// The rows of the op table for this family.
pub(crate) const ROWS: &[OpSpec] = &[
    OpSpec::new(
        "exp",
        Inputs::Unary(Domain::Real),
        |x| x[0].exp(),
        "g*exp(x)",
    )
    .fused(),
    OpSpec::new(
        "log",
        Inputs::Unary(Domain::Positive),
        |x| x[0].log(),
        "g/x",
    )
    .note("log(0) = -inf, log(x<0) = NaN"),
    OpSpec::new(
        "log1p",
        Inputs::Unary(Domain::Unit),
        |x| x[0].log1p(),
        "g/(1+x)",
    ),
    OpSpec::new(
        "expm1",
        Inputs::Unary(Domain::Real),
        |x| x[0].expm1(),
        "g*exp(x)",
    ),
    OpSpec::new(
        "sin",
        Inputs::Unary(Domain::Real),
        |x| x[0].sin(),
        "g*cos(x)",
    ),
    OpSpec::new(
        "cos",
        Inputs::Unary(Domain::Real),
        |x| x[0].cos(),
        "-g*sin(x)",
    ),
    OpSpec::new(
        "tan",
        Inputs::Unary(Domain::Unit),
        |x| x[0].tan(),
        "g*(1+tan(x)^2)",
    )
    .note("poles at pi/2 + k*pi: the value and gradient are unbounded there"),
    OpSpec::new(
        "tanh",
        Inputs::Unary(Domain::Real),
        |x| x[0].tanh(),
        "g*(1-tanh(x)^2)",
    )
    .fused(),
    OpSpec::new(
        "sigmoid",
        Inputs::Unary(Domain::Real),
        |x| x[0].sigmoid(),
        "g*s*(1-s), s = sigmoid(x)",
    )
    .fused(),
    OpSpec::new(
        "softplus",
        Inputs::Unary(Domain::Real),
        |x| x[0].softplus(),
        "g*sigmoid(x)",
    ),
    OpSpec::new(
        "erf",
        Inputs::Unary(Domain::Real),
        |x| x[0].erf(),
        "g*2/sqrt(pi)*exp(-x^2)",
    ),
    OpSpec::new(
        "exp2",
        Inputs::Unary(Domain::Real),
        |x| x[0].exp2(),
        "g*2^x*ln(2)",
    ),
    OpSpec::new(
        "log2",
        Inputs::Unary(Domain::Positive),
        |x| x[0].log2(),
        "g/(x*ln(2))",
    )
    .note("log2(0) = -inf, log2(x<0) = NaN"),
    OpSpec::new(
        "log10",
        Inputs::Unary(Domain::Positive),
        |x| x[0].log10(),
        "g/(x*ln(10))",
    )
    .note("log10(0) = -inf, log10(x<0) = NaN"),
    OpSpec::new(
        "asin",
        Inputs::Unary(Domain::Unit),
        |x| x[0].asin(),
        "g/sqrt(1-x^2)",
    )
    .note("NaN outside [-1, 1]; infinite gradient at ±1"),
    OpSpec::new(
        "acos",
        Inputs::Unary(Domain::Unit),
        |x| x[0].acos(),
        "-g/sqrt(1-x^2)",
    )
    .note("NaN outside [-1, 1]; infinite gradient at ±1"),
    OpSpec::new(
        "atan",
        Inputs::Unary(Domain::Real),
        |x| x[0].atan(),
        "g/(1+x^2)",
    ),
    OpSpec::new(
        "atan2",
        Inputs::Binary(Domain::AwayFromZero, Domain::AwayFromZero),
        |x| x[0].atan2(&x[1]),
        "a: g*b/(a^2+b^2), b: -g*a/(a^2+b^2)",
    )
    .note("atan2(0, 0): both gradients 0; the jump across the negative b axis is avoided by the checks"),
    OpSpec::new(
        "sinh",
        Inputs::Unary(Domain::Real),
        |x| x[0].sinh(),
        "g*cosh(x)",
    ),
    OpSpec::new(
        "cosh",
        Inputs::Unary(Domain::Real),
        |x| x[0].cosh(),
        "g*sinh(x)",
    ),
    OpSpec::new(
        "asinh",
        Inputs::Unary(Domain::Real),
        |x| x[0].asinh(),
        "g/sqrt(x^2+1)",
    ),
    OpSpec::new(
        "acosh",
        Inputs::Unary(Domain::AboveOne),
        |x| x[0].acosh(),
        "g/sqrt(x^2-1)",
    )
    .note("NaN below 1; infinite gradient at 1"),
    OpSpec::new(
        "atanh",
        Inputs::Unary(Domain::Unit),
        |x| x[0].atanh(),
        "g/(1-x^2)",
    )
    .note("±inf at ±1, NaN outside [-1, 1]"),
    OpSpec::new(
        "lerp",
        Inputs::Custom(lerp_inputs),
        |x| x[0].lerp(&x[1], &x[2]),
        "start: g*(1-w), end: g*w, weight: g*(end-start)",
    ),
    OpSpec::new(
        "lerp_scalar",
        Inputs::Binary(Domain::Real, Domain::Real),
        |x| x[0].lerp_scalar(&x[1], 0.3),
        "start: g*(1-w), end: g*w",
    ),
    OpSpec::new(
        "floor",
        Inputs::Unary(Domain::Real),
        |x| x[0].floor(),
        "0",
    )
    .note("piecewise constant: gradient 0 everywhere, also at the jumps")
    .first_order(),
    OpSpec::new(
        "ceil",
        Inputs::Unary(Domain::Real),
        |x| x[0].ceil(),
        "0",
    )
    .note("piecewise constant: gradient 0 everywhere, also at the jumps")
    .first_order(),
    OpSpec::new(
        "round",
        Inputs::Unary(Domain::Real),
        |x| x[0].round(),
        "0",
    )
    .note("halves round to even; gradient 0 everywhere, also at the jumps")
    .first_order(),
    OpSpec::new(
        "trunc",
        Inputs::Unary(Domain::Real),
        |x| x[0].trunc(),
        "0",
    )
    .note("piecewise constant: gradient 0 everywhere, also at the jumps")
    .first_order(),
    OpSpec::new(
        "frac",
        Inputs::Unary(Domain::Real),
        |x| x[0].frac(),
        "g",
    )
    .note("gradient 1 everywhere, also at the jumps (PyTorch's choice)")
    .first_order(),
];

#[cfg(test)]
mod tests {
    use crate::Tensor;

    #[test]
    fn stable_at_extremes() {
        let x = Tensor::from_vec(vec![-1000.0f32, 0.0, 1000.0], &[3]);
        assert_eq!(x.sigmoid().to_vec::<f32>(), vec![0.0, 0.5, 1.0]);
        assert_eq!(
            x.softplus().to_vec::<f32>(),
            vec![0.0, std::f32::consts::LN_2, 1000.0]
        );
        let tiny = Tensor::from_vec(vec![1e-10f64], &[1]);
        assert!((tiny.log1p().item() - 1e-10).abs() < 1e-20);
        assert!((tiny.expm1().item() - 1e-10).abs() < 1e-20);
    }

    #[test]
    fn log_of_zero_is_minus_infinity() {
        let x = Tensor::from_vec(vec![0.0f64], &[1]).requires_grad();
        let y = x.log();
        assert_eq!(y.item(), f64::NEG_INFINITY);
        assert_eq!(y.sum().backward()[&x].item(), f64::INFINITY);
    }
    /// Values and gradients of `sum(y)` from PyTorch 2.15 (f64).
    #[test]
    fn new_math_functions_match_pytorch() {
        let x = Tensor::from_vec(vec![-0.5f64, 0.25, 0.75], &[3]);
        type Case = (&'static str, fn(&Tensor) -> Tensor, f64);
        // (name, op, offset added to x before the op so it is in the domain)
        let cases: [Case; 10] = [
            ("asin", |x| x.asin(), 0.0),
            ("acos", |x| x.acos(), 0.0),
            ("atan", |x| x.atan(), 0.0),
            ("sinh", |x| x.sinh(), 0.0),
            ("cosh", |x| x.cosh(), 0.0),
            ("asinh", |x| x.asinh(), 0.0),
            ("acosh", |x| x.acosh(), 2.0),
            ("atanh", |x| x.atanh(), 0.0),
            ("log2", |x| x.log2(), 1.0),
            ("log10", |x| x.log10(), 1.0),
        ];
        let exact: [(f64, f64); 10] = [
            // (f(x0), f'(x0)) at x0 = -0.5 + offset, by closed forms
            ((-0.5f64).asin(), 1.0 / (1.0 - 0.25f64).sqrt()),
            ((-0.5f64).acos(), -1.0 / (1.0 - 0.25f64).sqrt()),
            ((-0.5f64).atan(), 1.0 / 1.25),
            ((-0.5f64).sinh(), (-0.5f64).cosh()),
            ((-0.5f64).cosh(), (-0.5f64).sinh()),
            ((-0.5f64).asinh(), 1.0 / 1.25f64.sqrt()),
            (1.5f64.acosh(), 1.0 / 1.25f64.sqrt()),
            ((-0.5f64).atanh(), 1.0 / 0.75),
            (0.5f64.log2(), 1.0 / (0.5 * std::f64::consts::LN_2)),
            (0.5f64.log10(), 1.0 / (0.5 * std::f64::consts::LN_10)),
        ];
        for ((name, f, off), (v, d)) in cases.into_iter().zip(exact) {
            let x = x.add_scalar(off).requires_grad();
            let y = f(&x);
            let g = y.sum().backward()[&x].to_vec::<f64>();
            assert!((y.to_vec::<f64>()[0] - v).abs() < 1e-15, "{name} value");
            assert!((g[0] - d).abs() < 1e-14, "{name} gradient {} vs {d}", g[0]);
        }
        let e = Tensor::from_vec(vec![0.5f64], &[1]).requires_grad();
        let y = e.exp2();
        assert_eq!(y.item(), 2f64.sqrt());
        assert!(
            (y.backward_with(&e.ones_like())[&e].item() - 2f64.sqrt() * 2f64.ln()).abs() < 1e-15
        );
    }

    #[test]
    fn rounding_ops_have_zero_gradient_and_frac_one() {
        let x = Tensor::from_vec(vec![-2.5f64, -1.5, -0.5, 0.5, 1.5, 2.5, 3.7, -3.7], &[8])
            .requires_grad();
        assert_eq!(
            x.round().to_vec::<f64>(),
            vec![-2.0, -2.0, -0.0, 0.0, 2.0, 2.0, 4.0, -4.0]
        );
        assert_eq!(
            x.floor().to_vec::<f64>(),
            vec![-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, -4.0]
        );
        assert_eq!(
            x.ceil().to_vec::<f64>(),
            vec![-2.0, -1.0, -0.0, 1.0, 2.0, 3.0, 4.0, -3.0]
        );
        assert_eq!(
            x.trunc().to_vec::<f64>(),
            vec![-2.0, -1.0, -0.0, 0.0, 1.0, 2.0, 3.0, -3.0]
        );
        let f = x.frac().to_vec::<f64>();
        assert!((f[6] - 0.7).abs() < 1e-15 && (f[7] + 0.7).abs() < 1e-15);
        for op in [
            Tensor::floor,
            Tensor::ceil,
            Tensor::round,
            Tensor::trunc,
            Tensor::sign,
        ] {
            let y = op(&x);
            assert!(y.tracks_grad(), "recorded, so the graph stays connected");
            assert_eq!(y.sum().backward()[&x].to_vec::<f64>(), vec![0.0; 8]);
        }
        assert_eq!(x.frac().sum().backward()[&x].to_vec::<f64>(), vec![1.0; 8]);
    }

    #[test]
    fn atan2_quadrants_and_origin() {
        let y = Tensor::from_vec(vec![1.0f64, 1.0, -1.0, 0.0, 0.0], &[5]).requires_grad();
        let x = Tensor::from_vec(vec![1.0f64, -1.0, -1.0, 0.0, -0.0], &[5]).requires_grad();
        let a = y.atan2(&x);
        let pi = std::f64::consts::PI;
        assert_eq!(
            a.to_vec::<f64>(),
            vec![pi / 4.0, 3.0 * pi / 4.0, -3.0 * pi / 4.0, 0.0, pi]
        );
        let g = a.sum().backward();
        assert_eq!(g[&y].to_vec::<f64>(), vec![0.5, -0.5, -0.5, 0.0, 0.0]);
        assert_eq!(g[&x].to_vec::<f64>(), vec![-0.5, -0.5, 0.5, 0.0, 0.0]);
    }

    #[test]
    fn lerp_gradients() {
        let s = Tensor::from_vec(vec![1.0f64, 2.0], &[2]).requires_grad();
        let e = Tensor::from_vec(vec![5.0f64, 10.0], &[2]).requires_grad();
        let w = Tensor::from_vec(vec![0.25f64], &[1]).requires_grad();
        let g = s.lerp(&e, &w).sum().backward();
        assert_eq!(g[&s].to_vec::<f64>(), vec![0.75, 0.75]);
        assert_eq!(g[&e].to_vec::<f64>(), vec![0.25, 0.25]);
        assert_eq!(g[&w].to_vec::<f64>(), vec![12.0]);
        assert_eq!(s.lerp_scalar(&e, 0.5).to_vec::<f64>(), vec![3.0, 6.0]);
    }
}
