//! Math functions: exp, log, log1p, expm1, sin, cos, tan, tanh, sigmoid, softplus, erf.

use num_traits::{One, Zero};

use super::table::{Domain, Inputs, OpSpec};
use super::{fused_grad, unary};
use crate::autograd::node::Op;
use crate::dtype::Element;
use crate::kernels::elementwise::{self, Cost};
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
}
