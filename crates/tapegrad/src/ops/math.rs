//! Math functions: exp, log, log1p, expm1, sin, cos, tanh, sigmoid, softplus, erf.

use smallvec::smallvec;

use super::fused_grad;
use super::table::{Domain, Inputs, OpSpec};
use crate::autograd::node::record;
use crate::dtype::Element;
use crate::kernels;
use crate::kernels::elementwise::map_costly;
use crate::storage::{dispatch, Data};
use crate::tensor::Tensor;
use num_traits::One;

impl Tensor {
    /// Elementwise `e^x`. Gradient: `g * out` (the rule reads the saved output).
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![0.0f64, 1.0], &[2]);
    /// assert_eq!(x.exp().to_vec::<f64>(), vec![1.0, std::f64::consts::E]);
    /// ```
    pub fn exp(&self) -> Tensor {
        let value = dispatch!(self.data(), |a| Data::from(kernels::elementwise::exp(a)));
        record(
            "exp",
            &[self],
            value,
            |_| smallvec![],
            true,
            |ctx, g| {
                if !ctx.create_graph() {
                    return smallvec![Some(fused_grad!(g, ctx.output_data(), |g, y| g * y))];
                }
                smallvec![Some(g.mul(&ctx.output()))]
            },
        )
    }

    /// Elementwise natural log. Gradient: `g / x`. `log(0) = -inf`, `log(x < 0) = NaN`.
    pub fn log(&self) -> Tensor {
        let value = dispatch!(self.data(), |a| Data::from(map_costly(a, |x| x.ln())));
        let x = self.clone();
        record(
            "log",
            &[self],
            value,
            move |_| smallvec![Some(x)],
            false,
            |ctx, g| smallvec![Some(g.div(ctx.saved(0)))],
        )
    }

    /// Elementwise `ln(1 + x)`, accurate for small `x`. Gradient: `g / (1 + x)`.
    pub fn log1p(&self) -> Tensor {
        let value = dispatch!(self.data(), |a| Data::from(map_costly(a, |x| x.ln_1p())));
        let x = self.clone();
        record(
            "log1p",
            &[self],
            value,
            move |_| smallvec![Some(x)],
            false,
            |ctx, g| smallvec![Some(g.div(&ctx.saved(0).add_scalar(1.0)))],
        )
    }

    /// Elementwise `e^x - 1`, accurate for small `x`. Gradient: `g * (out + 1)`.
    pub fn expm1(&self) -> Tensor {
        let value = dispatch!(self.data(), |a| Data::from(map_costly(a, |x| x.exp_m1())));
        record(
            "expm1",
            &[self],
            value,
            |_| smallvec![],
            true,
            |ctx, g| smallvec![Some(g.mul(&ctx.output().add_scalar(1.0)))],
        )
    }

    /// Elementwise sine. Gradient: `g * cos x`.
    pub fn sin(&self) -> Tensor {
        let value = dispatch!(self.data(), |a| Data::from(map_costly(a, |x| x.sin())));
        let x = self.clone();
        record(
            "sin",
            &[self],
            value,
            move |_| smallvec![Some(x)],
            false,
            |ctx, g| smallvec![Some(g.mul(&ctx.saved(0).cos()))],
        )
    }

    /// Elementwise cosine. Gradient: `-g * sin x`.
    pub fn cos(&self) -> Tensor {
        let value = dispatch!(self.data(), |a| Data::from(map_costly(a, |x| x.cos())));
        let x = self.clone();
        record(
            "cos",
            &[self],
            value,
            move |_| smallvec![Some(x)],
            false,
            |ctx, g| smallvec![Some(g.mul(&ctx.saved(0).sin()).neg())],
        )
    }

    /// Elementwise hyperbolic tangent. Gradient: `g * (1 - out^2)`.
    pub fn tanh(&self) -> Tensor {
        let value = dispatch!(self.data(), |a| Data::from(map_costly(a, |x| x.tanh())));
        record(
            "tanh",
            &[self],
            value,
            |_| smallvec![],
            true,
            |ctx, g| {
                if !ctx.create_graph() {
                    let y = ctx.output_data();
                    return smallvec![Some(fused_grad!(g, y, |g, y| g * (E::one() - y * y)))];
                }
                smallvec![Some(g.mul(&ctx.output().square().rsub_scalar(1.0)))]
            },
        )
    }

    /// Elementwise logistic `1 / (1 + e^-x)`, computed without overflow for large `|x|`.
    /// Gradient: `g * out * (1 - out)`.
    pub fn sigmoid(&self) -> Tensor {
        let value = dispatch!(self.data(), |a| Data::from(map_costly(a, sigmoid_scalar)));
        record(
            "sigmoid",
            &[self],
            value,
            |_| smallvec![],
            true,
            |ctx, g| {
                if !ctx.create_graph() {
                    let y = ctx.output_data();
                    return smallvec![Some(fused_grad!(g, y, |g, y| g * (y * (E::one() - y))))];
                }
                let out = ctx.output();
                smallvec![Some(g.mul(&out.mul(&out.rsub_scalar(1.0))))]
            },
        )
    }

    /// Elementwise `ln(1 + e^x)`, computed as `max(x, 0) + ln(1 + e^-|x|)` so it neither
    /// overflows nor loses the small tail. Gradient: `g * sigmoid(x)`.
    pub fn softplus(&self) -> Tensor {
        let value = dispatch!(self.data(), |a| Data::from(map_costly(a, |x| x
            .max(num_traits::Zero::zero())
            + (-x.abs()).exp().ln_1p())));
        let x = self.clone();
        record(
            "softplus",
            &[self],
            value,
            move |_| smallvec![Some(x)],
            false,
            |ctx, g| smallvec![Some(g.mul(&ctx.saved(0).sigmoid()))],
        )
    }

    /// Elementwise error function. Gradient: `g * 2/sqrt(pi) * e^(-x^2)`.
    pub fn erf(&self) -> Tensor {
        let value = dispatch!(self.data(), |a| Data::from(map_costly(a, Element::erf)));
        let x = self.clone();
        record(
            "erf",
            &[self],
            value,
            move |_| smallvec![Some(x)],
            false,
            |ctx, g| {
                let x = ctx.saved(0);
                smallvec![Some(
                    g.mul(&x.square().neg().exp())
                        .mul_scalar(std::f64::consts::FRAC_2_SQRT_PI)
                )]
            },
        )
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
    ),
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
        "tanh",
        Inputs::Unary(Domain::Real),
        |x| x[0].tanh(),
        "g*(1-tanh(x)^2)",
    ),
    OpSpec::new(
        "sigmoid",
        Inputs::Unary(Domain::Real),
        |x| x[0].sigmoid(),
        "g*s*(1-s), s = sigmoid(x)",
    ),
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
