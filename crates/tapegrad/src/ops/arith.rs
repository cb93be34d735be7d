//! Arithmetic: add, sub, mul, div, neg, scalar forms and operator overloads, pow, powf,
//! square, sqrt, rsqrt, recip, abs, sign, maximum, minimum, clamp, where_, comparisons.

use smallvec::smallvec;

use super::table::{Domain, Inputs, OpSpec};
use super::{check_binary, check_broadcast, check_same_dtype, unary};
use crate::autograd::node::Op;
use crate::dtype::{DType, Element};
use crate::kernels::elementwise::{map_c, map_c2, map_c_costly, zip, zip_costly, Cost};
use crate::kernels::logic::{select, zip_broadcast};
use crate::shape::{broadcast_shapes, Shape};
use crate::storage::{dispatch, Data};
use crate::tensor::Tensor;

impl Tensor {
    /// Elementwise `self + other`, broadcasting. Gradient: `g` to both (summed over
    /// broadcast axes). PyTorch: `torch.add`.
    ///
    /// # Panics
    /// If dtypes differ or shapes do not broadcast.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let a = Tensor::from_vec(vec![1.0f32, 2.0], &[2, 1]);
    /// let b = Tensor::from_vec(vec![10.0f32, 20.0, 30.0], &[3]);
    /// assert_eq!(a.add(&b).to_vec::<f32>(), vec![11.0, 21.0, 31.0, 12.0, 22.0, 32.0]);
    /// ```
    #[track_caller]
    pub fn add(&self, other: &Tensor) -> Tensor {
        check_binary("add", self, other);
        let (sa, sb) = (
            Shape::from_slice(self.shape()),
            Shape::from_slice(other.shape()),
        );
        let value = dispatch!((self.data(), other.data()), |a, b| Data::from(zip(
            a,
            b,
            |x, y| x + y
        )));
        Op::new("add", &[self, other], value).rule(move |ctx, g| {
            smallvec![
                ctx.needs_grad(0).then(|| g.sum_to(&sa)),
                ctx.needs_grad(1).then(|| g.sum_to(&sb))
            ]
        })
    }

    /// Elementwise `self - other`, broadcasting. Gradient: `g`, `-g`.
    ///
    /// # Panics
    /// If dtypes differ or shapes do not broadcast.
    #[track_caller]
    pub fn sub(&self, other: &Tensor) -> Tensor {
        check_binary("sub", self, other);
        let (sa, sb) = (
            Shape::from_slice(self.shape()),
            Shape::from_slice(other.shape()),
        );
        let value = dispatch!((self.data(), other.data()), |a, b| Data::from(zip(
            a,
            b,
            |x, y| x - y
        )));
        Op::new("sub", &[self, other], value).rule(move |ctx, g| {
            smallvec![
                ctx.needs_grad(0).then(|| g.sum_to(&sa)),
                ctx.needs_grad(1).then(|| g.neg().sum_to(&sb))
            ]
        })
    }

    /// Elementwise `self * other`, broadcasting. Gradient: `g * other`, `g * self`; each
    /// input is saved only if the other one needs a gradient.
    ///
    /// # Panics
    /// If dtypes differ or shapes do not broadcast.
    #[track_caller]
    pub fn mul(&self, other: &Tensor) -> Tensor {
        check_binary("mul", self, other);
        let (sa, sb) = (
            Shape::from_slice(self.shape()),
            Shape::from_slice(other.shape()),
        );
        let value = dispatch!((self.data(), other.data()), |a, b| Data::from(zip(
            a,
            b,
            |x, y| x * y
        )));
        Op::new("mul", &[self, other], value)
            .save_for(1, self)
            .save_for(0, other)
            .rule(move |ctx, g| {
                smallvec![
                    ctx.needs_grad(0).then(|| g.mul(ctx.saved(1)).sum_to(&sa)),
                    ctx.needs_grad(1).then(|| g.mul(ctx.saved(0)).sum_to(&sb))
                ]
            })
    }

    /// Elementwise `self / other`, broadcasting. Gradient: `g / other`,
    /// `-g * self / other^2`. IEEE semantics: `1/0 = inf`, `0/0 = NaN`.
    ///
    /// # Panics
    /// If dtypes differ or shapes do not broadcast.
    #[track_caller]
    pub fn div(&self, other: &Tensor) -> Tensor {
        check_binary("div", self, other);
        let (sa, sb) = (
            Shape::from_slice(self.shape()),
            Shape::from_slice(other.shape()),
        );
        let value = dispatch!((self.data(), other.data()), |a, b| Data::from(zip(
            a,
            b,
            |x, y| x / y
        )));
        Op::new("div", &[self, other], value)
            .save_for(1, self)
            .save(&[other])
            .rule(move |ctx, g| {
                let b = ctx.saved(1);
                let ga = g.div(b);
                let gb = ctx
                    .needs_grad(1)
                    .then(|| ga.mul(ctx.saved(0)).div(b).neg().sum_to(&sb));
                smallvec![ctx.needs_grad(0).then(|| ga.sum_to(&sa)), gb]
            })
    }

    /// Elementwise `-self`. Gradient: `-g`.
    #[track_caller]
    pub fn neg(&self) -> Tensor {
        unary!(self, "neg", Cost::Cheap, |x| -x).rule(|_, g| g.neg())
    }

    /// `self + c` for a scalar `c`. Gradient: `g`.
    #[track_caller]
    pub fn add_scalar(&self, c: f64) -> Tensor {
        let value = dispatch!(self.data(), |a| Data::from(map_c(a, c, |x, c| x + c)));
        Op::new("add_scalar", &[self], value).rule(|_, g| g.clone())
    }

    /// `self - c` for a scalar `c`.
    #[track_caller]
    pub fn sub_scalar(&self, c: f64) -> Tensor {
        self.add_scalar(-c)
    }

    /// `c - self` for a scalar `c`.
    ///
    /// One op (not `neg` then `add_scalar`): rules such as `tanh`'s use it on every
    /// backward pass. Gradient: `-g`.
    #[track_caller]
    pub fn rsub_scalar(&self, c: f64) -> Tensor {
        let value = dispatch!(self.data(), |a| Data::from(map_c(a, c, |x, c| c - x)));
        Op::new("rsub_scalar", &[self], value).rule(|_, g| g.neg())
    }

    /// `self * c` for a scalar `c`. Gradient: `g * c`.
    #[track_caller]
    pub fn mul_scalar(&self, c: f64) -> Tensor {
        let value = dispatch!(self.data(), |a| Data::from(map_c(a, c, |x, c| x * c)));
        Op::new("mul_scalar", &[self], value).rule(move |_, g| g.mul_scalar(c))
    }

    /// `self / c` for a scalar `c`.
    #[track_caller]
    pub fn div_scalar(&self, c: f64) -> Tensor {
        self.mul_scalar(1.0 / c)
    }

    /// `c / self` for a scalar `c`.
    #[track_caller]
    pub fn rdiv_scalar(&self, c: f64) -> Tensor {
        self.recip().mul_scalar(c)
    }

    /// Elementwise `self ^ exponent` with a tensor exponent, broadcasting. Gradient:
    /// `g * e * x^(e-1)` and `g * x^e * ln x` (NaN for `x < 0`, as in PyTorch). As in
    /// PyTorch, the base's gradient is 0 where `e = 0` and the exponent's is 0 where
    /// `x = 0` and `e >= 0`, instead of the `0 * inf = NaN` the formulas give there.
    ///
    /// # Panics
    /// If dtypes differ or shapes do not broadcast.
    #[track_caller]
    pub fn pow(&self, exponent: &Tensor) -> Tensor {
        check_binary("pow", self, exponent);
        let (sa, sb) = (
            Shape::from_slice(self.shape()),
            Shape::from_slice(exponent.shape()),
        );
        let value = dispatch!((self.data(), exponent.data()), |a, b| Data::from(
            zip_costly(a, b, |x, y| x.powf(y))
        ));
        Op::new("pow", &[self, exponent], value)
            .save(&[self, exponent])
            .save_output()
            .rule(move |ctx, g| {
                let (x, e) = (ctx.saved(0), ctx.saved(1));
                let zero = Tensor::scalar_of(0.0, g.dtype());
                smallvec![
                    ctx.needs_grad(0).then(|| {
                        let dx = g.mul(e).mul(&x.pow(&e.sub_scalar(1.0)));
                        Tensor::where_(&e.eq_scalar(0.0), &zero, &dx).sum_to(&sa)
                    }),
                    ctx.needs_grad(1).then(|| {
                        let de = g.mul(&ctx.output()).mul(&x.log());
                        Tensor::where_(&x.eq_scalar(0.0).logical_and(&e.ge_scalar(0.0)), &zero, &de)
                            .sum_to(&sb)
                    })
                ]
            })
    }

    /// Elementwise `self ^ p` for a scalar `p`. Gradient: `g * p * x^(p-1)`, and 0 for
    /// `p = 0` (as in PyTorch; the formula would give `0 * inf = NaN` at `x = 0`).
    #[track_caller]
    pub fn powf(&self, p: f64) -> Tensor {
        let value = dispatch!(self.data(), |a| Data::from(
            map_c_costly(a, p, |x, p| x.powf(p))
        ));
        Op::new("powf", &[self], value)
            .save(&[self])
            .rule(move |ctx, g| {
                if p == 0.0 {
                    return g.zeros_like();
                }
                g.mul(&ctx.saved(0).powf(p - 1.0)).mul_scalar(p)
            })
    }

    /// Elementwise `self^2`. Gradient: `2 x g`.
    #[track_caller]
    pub fn square(&self) -> Tensor {
        unary!(self, "square", Cost::Cheap, |x| x * x)
            .save(&[self])
            .rule(|ctx, g| g.mul(ctx.saved(0)).mul_scalar(2.0))
    }

    /// Elementwise square root. Gradient: `g / (2 sqrt x)`; at `x = 0` that is `inf`
    /// (as in PyTorch); for `x < 0` the value is NaN.
    #[track_caller]
    pub fn sqrt(&self) -> Tensor {
        unary!(self, "sqrt", Cost::Cheap, |x| x.sqrt())
            .save_output()
            .rule(|ctx, g| g.div(&ctx.output()).mul_scalar(0.5))
    }

    /// Elementwise `1 / sqrt(x)`. Gradient: `-g * out^3 / 2`.
    #[track_caller]
    pub fn rsqrt(&self) -> Tensor {
        unary!(self, "rsqrt", Cost::Cheap, |x| x.sqrt().recip())
            .save_output()
            .rule(|ctx, g| {
                let out = ctx.output();
                g.mul(&out.square().mul(&out)).mul_scalar(-0.5)
            })
    }

    /// Elementwise `1 / x`. Gradient: `-g * out^2`. `1/0 = inf`.
    #[track_caller]
    pub fn recip(&self) -> Tensor {
        unary!(self, "recip", Cost::Cheap, |x| x.recip())
            .save_output()
            .rule(|ctx, g| g.mul(&ctx.output().square()).neg())
    }

    /// Elementwise `|x|`. Gradient: `g * sign(x)`, so `abs'(0) = 0` (as in PyTorch).
    #[track_caller]
    pub fn abs(&self) -> Tensor {
        unary!(self, "abs", Cost::Cheap, |x| x.abs())
            .save(&[self])
            .rule(|ctx, g| g.mul(&ctx.saved(0).sign()))
    }

    /// Elementwise sign: -1, 0 or 1 (NaN stays NaN). Piecewise constant: recorded with
    /// gradient 0, as in PyTorch (so a graph through it stays connected). PyTorch:
    /// `torch.sign`.
    ///
    /// ```
    /// let x = tapegrad::Tensor::from_vec(vec![-2.0f64, 0.0, 3.0], &[3]).requires_grad();
    /// assert_eq!(x.sign().to_vec::<f64>(), vec![-1.0, 0.0, 1.0]);
    /// assert_eq!(x.sign().sum().backward()[&x].to_vec::<f64>(), vec![0.0; 3]);
    /// ```
    #[track_caller]
    pub fn sign(&self) -> Tensor {
        unary!(self, "sign", Cost::Cheap, |x| sign_scalar(x)).rule(|_, g| g.zeros_like())
    }

    /// Elementwise maximum, broadcasting; a NaN in either input gives NaN. Gradient goes
    /// to the larger input; on ties it is split evenly (`g/2` to each), and where a NaN
    /// makes neither input lose both get `g`, as PyTorch does.
    ///
    /// # Panics
    /// If dtypes differ or shapes do not broadcast.
    #[track_caller]
    pub fn maximum(&self, other: &Tensor) -> Tensor {
        self.extremum("maximum", other, true)
    }

    /// Elementwise minimum, broadcasting; ties split the gradient evenly and a NaN passes
    /// `g` to both inputs (see [`maximum`](Self::maximum)).
    ///
    /// # Panics
    /// If dtypes differ or shapes do not broadcast.
    #[track_caller]
    pub fn minimum(&self, other: &Tensor) -> Tensor {
        self.extremum("minimum", other, false)
    }

    #[track_caller]
    fn extremum(&self, op: &'static str, other: &Tensor, largest: bool) -> Tensor {
        check_binary(op, self, other);
        let (sa, sb) = (
            Shape::from_slice(self.shape()),
            Shape::from_slice(other.shape()),
        );
        let value = dispatch!((self.data(), other.data()), |a, b| Data::from(zip(
            a,
            b,
            move |x, y| {
                if x.is_nan() || y.is_nan() {
                    x + y
                } else if (x > y) == largest {
                    x
                } else {
                    y
                }
            }
        )));
        Op::new(op, &[self, other], value)
            .save(&[self, other])
            .rule(move |ctx, g| {
                let (a, b) = (ctx.saved(0), ctx.saved(1));
                // As PyTorch: `g/2` to each on ties, 0 to the input that loses, and `g` to
                // both where a NaN makes neither lose.
                let zero = Tensor::scalar_of(0.0, g.dtype());
                let half = g.mul_scalar(0.5);
                let tie = a.eq(b);
                let (a_loses, b_loses) = if largest {
                    (a.lt(b), a.gt(b))
                } else {
                    (a.gt(b), a.lt(b))
                };
                let share =
                    |loses: &Tensor| Tensor::where_(&tie, &half, &Tensor::where_(loses, &zero, g));
                smallvec![
                    ctx.needs_grad(0).then(|| share(&a_loses).sum_to(&sa)),
                    ctx.needs_grad(1).then(|| share(&b_loses).sum_to(&sb))
                ]
            })
    }

    /// Clamps every element into `[min, max]` (use `f64::NEG_INFINITY` / `f64::INFINITY`
    /// for one-sided). Gradient: `g` where `min <= x <= max` (boundaries included, as in
    /// PyTorch), else 0.
    ///
    /// # Panics
    /// If `min > max`.
    #[track_caller]
    pub fn clamp(&self, min: f64, max: f64) -> Tensor {
        assert!(min <= max, "clamp: min {min} is greater than max {max}");
        let value = dispatch!(self.data(), |a| Data::from(map_c2(
            a,
            min,
            max,
            |x, lo, hi| {
                if x < lo {
                    lo
                } else if x > hi {
                    hi
                } else {
                    x
                }
            }
        )));
        Op::new("clamp", &[self], value)
            .save(&[self])
            .rule(move |ctx, g| {
                let x = ctx.saved(0);
                let inside = x.ge_scalar(min).logical_and(&x.le_scalar(max));
                smallvec![Some(g.mul(&inside.to_dtype(g.dtype())))]
            })
    }

    /// `clamp(min, +inf)`.
    #[track_caller]
    pub fn clamp_min(&self, min: f64) -> Tensor {
        self.clamp(min, f64::INFINITY)
    }

    /// `clamp(-inf, max)`.
    #[track_caller]
    pub fn clamp_max(&self, max: f64) -> Tensor {
        self.clamp(f64::NEG_INFINITY, max)
    }

    /// Picks `on_true` where `cond` is true and `on_false` elsewhere, broadcasting all
    /// three (PyTorch's `torch.where`). `cond` is a `Bool` tensor such as a comparison
    /// returns; it gets no gradient. Gradient: `g` masked to each branch.
    ///
    /// # Panics
    /// If `cond` is not `Bool`, the branches' dtypes differ or the shapes do not broadcast.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let x = Tensor::from_vec(vec![-1.0f32, 2.0], &[2]);
    /// let y = Tensor::where_(&x.gt_scalar(0.0), &x, &x.zeros_like());
    /// assert_eq!(y.to_vec::<f32>(), vec![0.0, 2.0]);
    /// ```
    #[track_caller]
    pub fn where_(cond: &Tensor, on_true: &Tensor, on_false: &Tensor) -> Tensor {
        check_same_dtype("where_", on_true, on_false);
        if cond.dtype() != DType::Bool {
            panic!(
                "where_: the condition must be a bool tensor, got {} {:?} (compare, or convert with to_dtype(DType::Bool))",
                cond.dtype(),
                cond.shape()
            );
        }
        let shape = check_broadcast("where_", on_true, on_false);
        let shape = match broadcast_shapes(cond.shape(), &shape) {
            Some(s) => s,
            None => panic!(
                "where_: condition shape {:?} does not broadcast with the branches' shape {shape:?}",
                cond.shape()
            ),
        };
        let (sa, sb) = (
            Shape::from_slice(on_true.shape()),
            Shape::from_slice(on_false.shape()),
        );
        let c = cond.force();
        let c = c.array::<bool>().expect("checked bool");
        let value = dispatch!(any(on_true.data(), on_false.data()), |a, b| {
            Data::from(select(&c.view(), &a.view(), &b.view(), &shape))
        });
        Op::new("where_", &[on_true, on_false], value)
            .save(&[&cond.detach()])
            .rule(move |ctx, g| {
                let c = ctx.saved(0);
                let zero = Tensor::scalar_of(0.0, g.dtype());
                smallvec![
                    ctx.needs_grad(0)
                        .then(|| Tensor::where_(c, g, &zero).sum_to(&sa)),
                    ctx.needs_grad(1)
                        .then(|| Tensor::where_(c, &zero, g).sum_to(&sb))
                ]
            })
    }
}

macro_rules! comparisons {
    ($( $name:ident, $sname:ident, $op:tt, $doc:literal; )*) => {
        impl Tensor {
            $(
                #[doc = concat!("Elementwise `self ", $doc, " other` as a `Bool` tensor, broadcasting (any dtype, both the same). Not differentiable (nothing is recorded).")]
                ///
                /// # Panics
                /// If dtypes differ or shapes do not broadcast.
                ///
                /// ```
                /// use tapegrad::Tensor;
                /// let a = Tensor::from_vec(vec![1i64, 5, 3], &[3]);
                /// let b = Tensor::from_vec(vec![3i64], &[1]);
                #[doc = concat!("let m = a.", stringify!($name), "(&b);")]
                /// assert_eq!(m.dtype(), tapegrad::DType::Bool);
                #[doc = concat!("assert_eq!(m.to_vec::<bool>(), vec![1 ", $doc, " 3, 5 ", $doc, " 3, 3 ", $doc, " 3]);")]
                /// ```
                #[track_caller]
                pub fn $name(&self, other: &Tensor) -> Tensor {
                    check_same_dtype(stringify!($name), self, other);
                    let shape = check_broadcast(stringify!($name), self, other);
                    Tensor::from_data(dispatch!(any (self.data(), other.data()), |a, b| {
                        Data::from(zip_broadcast(&a.view(), &b.view(), &shape, |x: E, y: E| x $op y))
                    }))
                }

                #[doc = concat!("Elementwise `self ", $doc, " c` for a scalar `c`, as a `Bool` tensor. A float tensor compares in its own precision (`c` rounded to it); an `I64` or `Bool` one (as 0/1) compares in `f64`. Not differentiable.")]
                #[track_caller]
                pub fn $sname(&self, c: f64) -> Tensor {
                    if self.dtype().is_float() {
                        self.$name(&Tensor::scalar_of(c, self.dtype()))
                    } else {
                        self.to_dtype(DType::F64).$name(&Tensor::scalar(c))
                    }
                }
            )*
        }
    };
}

comparisons! {
    eq, eq_scalar, ==, "==";
    ne, ne_scalar, !=, "!=";
    gt, gt_scalar, >, ">";
    ge, ge_scalar, >=, ">=";
    lt, lt_scalar, <, "<";
    le, le_scalar, <=, "<=";
}

// ------------------------------------------------------------- operator overloads

macro_rules! binary_operator {
    ($trait:ident, $method:ident, $op:ident, $scalar:ident) => {
        impl std::ops::$trait<&Tensor> for &Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: &Tensor) -> Tensor {
                Tensor::$op(self, rhs)
            }
        }
        impl std::ops::$trait<Tensor> for Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: Tensor) -> Tensor {
                Tensor::$op(&self, &rhs)
            }
        }
        impl std::ops::$trait<&Tensor> for Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: &Tensor) -> Tensor {
                Tensor::$op(&self, rhs)
            }
        }
        impl std::ops::$trait<Tensor> for &Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: Tensor) -> Tensor {
                Tensor::$op(self, &rhs)
            }
        }
        impl std::ops::$trait<f64> for &Tensor {
            type Output = Tensor;
            fn $method(self, rhs: f64) -> Tensor {
                Tensor::$scalar(self, rhs)
            }
        }
        impl std::ops::$trait<f64> for Tensor {
            type Output = Tensor;
            fn $method(self, rhs: f64) -> Tensor {
                Tensor::$scalar(&self, rhs)
            }
        }
    };
}

binary_operator!(Add, add, add, add_scalar);
binary_operator!(Sub, sub, sub, sub_scalar);
binary_operator!(Mul, mul, mul, mul_scalar);
binary_operator!(Div, div, div, div_scalar);

impl std::ops::Neg for &Tensor {
    type Output = Tensor;
    #[track_caller]
    fn neg(self) -> Tensor {
        Tensor::neg(self)
    }
}

impl std::ops::Neg for Tensor {
    type Output = Tensor;
    #[track_caller]
    fn neg(self) -> Tensor {
        Tensor::neg(&self)
    }
}

macro_rules! scalar_lhs_operator {
    ($trait:ident, $method:ident, |$t:ident, $c:ident| $body:expr) => {
        impl std::ops::$trait<&Tensor> for f64 {
            type Output = Tensor;
            fn $method(self, $t: &Tensor) -> Tensor {
                let $c = self;
                $body
            }
        }
        impl std::ops::$trait<Tensor> for f64 {
            type Output = Tensor;
            fn $method(self, $t: Tensor) -> Tensor {
                let $c = self;
                let $t = &$t;
                $body
            }
        }
    };
}

scalar_lhs_operator!(Add, add, |t, c| t.add_scalar(c));
scalar_lhs_operator!(Sub, sub, |t, c| t.rsub_scalar(c));
scalar_lhs_operator!(Mul, mul, |t, c| t.mul_scalar(c));
scalar_lhs_operator!(Div, div, |t, c| t.rdiv_scalar(c));

/// The rows of the op table for this family.
pub(crate) const ROWS: &[OpSpec] = &[
    OpSpec::new("add", Inputs::Binary(Domain::Real, Domain::Real), |x| x[0].add(&x[1]), "g, g (summed over broadcast axes)"),
    OpSpec::new("sub", Inputs::Binary(Domain::Real, Domain::Real), |x| x[0].sub(&x[1]), "g, -g"),
    OpSpec::new("mul", Inputs::Binary(Domain::Real, Domain::Real), |x| x[0].mul(&x[1]), "g*b, g*a"),
    OpSpec::new("div", Inputs::Binary(Domain::Real, Domain::AwayFromZero), |x| x[0].div(&x[1]), "g/b, -g*a/b^2")
        .note("x/0 = ±inf, 0/0 = NaN (IEEE), and so are the gradients"),
    OpSpec::new("neg", Inputs::Unary(Domain::Real), |x| x[0].neg(), "-g"),
    OpSpec::new("rsub_scalar", Inputs::Unary(Domain::Real), |x| x[0].rsub_scalar(0.5), "-g"),
    OpSpec::new("add_scalar", Inputs::Unary(Domain::Real), |x| x[0].add_scalar(1.5), "g"),
    OpSpec::new("mul_scalar", Inputs::Unary(Domain::Real), |x| x[0].mul_scalar(-2.5), "g*c"),
    OpSpec::new("sub_scalar", Inputs::Unary(Domain::Real), |x| x[0].sub_scalar(0.75), "g"),
    OpSpec::new("div_scalar", Inputs::Unary(Domain::Real), |x| x[0].div_scalar(-2.5), "g/c"),
    OpSpec::new("rdiv_scalar", Inputs::Unary(Domain::AwayFromZero), |x| x[0].rdiv_scalar(1.5), "-g*c/x^2").note("c/0 = ±inf"),
    OpSpec::new("pow", Inputs::Binary(Domain::Positive, Domain::Real), |x| x[0].pow(&x[1]), "g*e*x^(e-1), g*x^e*ln(x)")
        .note("x = 0: the exponent's gradient is 0 for e >= 0; e = 0: the base's gradient is 0; x < 0: the exponent's is NaN"),
    OpSpec::new("powf", Inputs::Unary(Domain::Positive), |x| x[0].powf(2.5), "g*p*x^(p-1)").note("p = 0: the gradient is 0"),
    OpSpec::new("square", Inputs::Unary(Domain::Real), |x| x[0].square(), "2*x*g"),
    OpSpec::new("sqrt", Inputs::Unary(Domain::Positive), |x| x[0].sqrt(), "g/(2*sqrt(x))")
        .note("sqrt'(0) = inf; sqrt(x < 0) = NaN"),
    OpSpec::new("rsqrt", Inputs::Unary(Domain::Positive), |x| x[0].rsqrt(), "-g*x^(-3/2)/2"),
    OpSpec::new("recip", Inputs::Unary(Domain::AwayFromZero), |x| x[0].recip(), "-g/x^2").note("1/0 = inf"),
    OpSpec::new("abs", Inputs::Unary(Domain::AwayFromZero), |x| x[0].abs(), "g*sign(x)").note("abs'(0) = 0"),
    OpSpec::new("sign", Inputs::Unary(Domain::AwayFromZero), |x| x[0].sign(), "0")
        .note("piecewise constant: gradient 0 everywhere, also at 0")
        .first_order(),
    OpSpec::new("maximum", Inputs::Binary(Domain::Outer, Domain::Inner), |x| x[0].maximum(&x[1]), "g where a>b, g/2 on ties")
        .note("ties split the gradient evenly between the inputs; with a NaN both get g"),
    OpSpec::new("minimum", Inputs::Binary(Domain::Inner, Domain::Outer), |x| x[0].minimum(&x[1]), "g where a<b, g/2 on ties")
        .note("ties split the gradient evenly between the inputs; with a NaN both get g"),
    OpSpec::new("clamp", Inputs::Unary(Domain::AwayFromHalf), |x| x[0].clamp(-0.5, 0.5), "g where min<=x<=max, else 0")
        .note("at x = min or x = max the gradient passes (boundaries included)"),
    OpSpec::new("clamp_min", Inputs::Unary(Domain::AwayFromHalf), |x| x[0].clamp_min(-0.5), "g where x>=min, else 0")
        .note("at x = min the gradient passes"),
    OpSpec::new("clamp_max", Inputs::Unary(Domain::AwayFromHalf), |x| x[0].clamp_max(0.5), "g where x<=max, else 0")
        .note("at x = max the gradient passes"),
    OpSpec::new(
        "where_",
        Inputs::Binary(Domain::Real, Domain::Real),
        |x| Tensor::where_(&x[0].gt(&x[1].mul_scalar(0.5).detach()), &x[0], &x[1]),
        "g masked to the chosen branch",
    )
    .note("the condition gets no gradient"),
];

#[inline(always)]
fn sign_scalar<T: Element>(x: T) -> T {
    if x > T::zero() {
        T::one()
    } else if x < T::zero() {
        -T::one()
    } else {
        x
    }
}

#[cfg(test)]
mod tests {
    use crate::{DType, Tensor};

    #[test]
    fn conventions_at_kinks() {
        let x = Tensor::from_vec(vec![0.0f64, 2.0, -3.0], &[3]).requires_grad();
        let g = x.abs().sum().backward();
        assert_eq!(g[&x].to_vec::<f64>(), vec![0.0, 1.0, -1.0]);

        let a = Tensor::from_vec(vec![1.0f64, 2.0], &[2]).requires_grad();
        let b = Tensor::from_vec(vec![1.0f64, 1.0], &[2]).requires_grad();
        let g = a.maximum(&b).sum().backward();
        assert_eq!(g[&a].to_vec::<f64>(), vec![0.5, 1.0]);
        assert_eq!(g[&b].to_vec::<f64>(), vec![0.5, 0.0]);

        let x = Tensor::from_vec(vec![-1.0f64, -0.5, 0.0, 0.5, 1.0], &[5]).requires_grad();
        let g = x.clamp(-0.5, 0.5).sum().backward();
        assert_eq!(g[&x].to_vec::<f64>(), vec![0.0, 1.0, 1.0, 1.0, 0.0]);

        let x = Tensor::from_vec(vec![0.0f64, 4.0], &[2]).requires_grad();
        let g = x.sqrt().sum().backward();
        assert_eq!(g[&x].to_vec::<f64>(), vec![f64::INFINITY, 0.25]);
    }

    #[test]
    fn pow_at_zero_follows_pytorch() {
        // Found by exploring edge cases for the gradcheck crate: 0^0 gave NaN and -inf
        // gradients where PyTorch masks them to 0.
        let x = Tensor::from_vec(vec![0.0f64, 0.0, 0.0, 2.0], &[4]).requires_grad();
        let e = Tensor::from_vec(vec![0.0f64, 2.0, 0.5, 0.0], &[4]).requires_grad();
        let g = x.pow(&e).sum().backward();
        // d/dx: e x^(e-1) -> 0 at e = 0, 2*0 = 0, 0.5 * 0^-0.5 = inf, 0 at e = 0.
        assert_eq!(g[&x].to_vec::<f64>(), vec![0.0, 0.0, f64::INFINITY, 0.0]);
        // d/de: x^e ln x -> 0 wherever x = 0 and e >= 0; 1 * ln 2 at x = 2, e = 0.
        assert_eq!(g[&e].to_vec::<f64>(), vec![0.0, 0.0, 0.0, 2f64.ln()]);
        let x = Tensor::from_vec(vec![0.0f64, 3.0], &[2]).requires_grad();
        assert_eq!(
            x.powf(0.0).sum().backward()[&x].to_vec::<f64>(),
            vec![0.0, 0.0]
        );
    }

    #[test]
    fn division_by_zero_is_ieee() {
        let a = Tensor::from_vec(vec![0.0f32, 1.0, -1.0], &[3]);
        let z = Tensor::zeros(&[3], DType::F32);
        let v = a.div(&z).to_vec::<f32>();
        assert!(v[0].is_nan());
        assert_eq!(v[1], f32::INFINITY);
        assert_eq!(v[2], f32::NEG_INFINITY);
    }

    #[test]
    fn operators_match_methods() {
        let a = Tensor::from_vec(vec![1.0f32, 2.0], &[2]);
        let b = Tensor::from_vec(vec![3.0f32, 5.0], &[2]);
        assert_eq!((&a + &b).to_vec::<f32>(), vec![4.0, 7.0]);
        assert_eq!((&a - &b).to_vec::<f32>(), vec![-2.0, -3.0]);
        assert_eq!((&a * &b).to_vec::<f32>(), vec![3.0, 10.0]);
        assert_eq!((&b / &a).to_vec::<f32>(), vec![3.0, 2.5]);
        assert_eq!((&a * 2.0).to_vec::<f32>(), vec![2.0, 4.0]);
        assert_eq!((1.0 - &a).to_vec::<f32>(), vec![0.0, -1.0]);
        assert_eq!((2.0 / &a).to_vec::<f32>(), vec![2.0, 1.0]);
        assert_eq!((-&a).to_vec::<f32>(), vec![-1.0, -2.0]);
    }

    #[test]
    #[should_panic(expected = "add: shapes [2, 3] and [4] cannot be broadcast together")]
    fn add_shape_mismatch_panics() {
        let _ = Tensor::zeros(&[2, 3], DType::F32).add(&Tensor::zeros(&[4], DType::F32));
    }

    #[test]
    #[should_panic(expected = "mul: dtype mismatch: f32 [2] vs f64 [2]")]
    fn mul_dtype_mismatch_panics() {
        let _ = Tensor::zeros(&[2], DType::F32).mul(&Tensor::zeros(&[2], DType::F64));
    }

    #[test]
    #[should_panic(expected = "clamp: min 1 is greater than max 0")]
    fn clamp_bad_bounds_panics() {
        let _ = Tensor::zeros(&[2], DType::F32).clamp(1.0, 0.0);
    }
}
