//! A checker that cannot fail is worthless: deliberately wrong custom ops must be caught,
//! in full and in fast mode, and the report must point at the wrong entry.

use tapegrad::{custom_op, no_grad, Tensor};
use tapegrad_gradcheck::{
    gradcheck, gradgradcheck, GradcheckError, Options, Order, Position, Report,
};

fn modes() -> [(&'static str, Options); 2] {
    [
        ("full", Options::default()),
        ("fast", Options::default().fast().with_seed(11)),
    ]
}

fn x() -> Tensor {
    Tensor::from_vec(vec![0.7f64, -1.3, 0.4, 1.9, -0.6, 1.1], &[2, 3])
}

fn y() -> Tensor {
    Tensor::from_vec(vec![1.4f64, -0.8, 0.9], &[3])
}

/// The mismatch report, or a panic saying what the checker returned instead.
fn mismatch(result: Result<Report, GradcheckError>, what: &str) -> Report {
    match result {
        Err(GradcheckError::Mismatch(report)) => *report,
        Ok(report) => panic!("{what}: the checker passed a wrong rule:\n{report}"),
        Err(e) => panic!("{what}: expected a mismatch, got: {e}"),
    }
}

/// `sin` whose rule is off by a factor of 1.5.
fn sin_scaled_rule(t: &[Tensor]) -> Tensor {
    let x = &t[0];
    custom_op(
        "sin_off_by_factor",
        &[x],
        no_grad(|| x.sin()),
        &[x],
        false,
        |ctx, g| vec![Some(g.mul(&ctx.saved(0).cos()).mul_scalar(1.5))],
    )
}

/// `exp` whose rule has the wrong sign.
fn exp_wrong_sign(t: &[Tensor]) -> Tensor {
    let x = &t[0];
    custom_op(
        "exp_wrong_sign",
        &[x],
        no_grad(|| x.exp()),
        &[],
        true,
        |ctx, g| vec![Some(g.mul(&ctx.output()).neg())],
    )
}

/// `a * b` (broadcast) whose rule forgets `b`'s gradient.
fn mul_forgets_b(t: &[Tensor]) -> Tensor {
    let (a, b) = (&t[0], &t[1]);
    let sa = a.shape().to_vec();
    custom_op(
        "mul_forgets_b",
        &[a, b],
        no_grad(|| a.mul(b)),
        &[b],
        false,
        move |ctx, g| vec![Some(g.mul(ctx.saved(0)).sum_to(&sa)), None],
    )
}

/// `a * b` (broadcast) whose rule does not sum `b`'s gradient over the broadcast axis
/// but takes the first row only.
fn mul_bad_reduction(t: &[Tensor]) -> Tensor {
    let (a, b) = (&t[0], &t[1]);
    custom_op(
        "mul_bad_reduction",
        &[a, b],
        no_grad(|| a.mul(b)),
        &[a, b],
        false,
        |ctx, g| {
            let (a, b) = (ctx.saved(0), ctx.saved(1));
            vec![
                Some(g.mul(b)),
                Some(g.mul(a).narrow(0, 0, 1).reshape(&[-1])),
            ]
        },
    )
}

/// `x^3` whose rule `3 x^2` is computed from a detached `x`: right to first order, but
/// its own derivative is 0 instead of `6 x`.
fn cube_detached_rule(t: &[Tensor]) -> Tensor {
    let x = &t[0];
    custom_op(
        "cube_detached_rule",
        &[x],
        no_grad(|| x.powf(3.0)),
        &[x],
        false,
        |ctx, g| {
            let x = ctx.saved(0).detach();
            vec![Some(g.mul(&x.square()).mul_scalar(3.0))]
        },
    )
}

/// `sin x` with the rule `g * (cos x0 + (x - x0) / 2)`, `x0` being the forward point:
/// its value at `x0` is right, its slope in `x` is `1/2` instead of `-sin x0`.
fn sin_wrong_second_derivative(t: &[Tensor]) -> Tensor {
    let x = &t[0];
    let x0 = x.detach();
    custom_op(
        "sin_wrong_second_derivative",
        &[x],
        no_grad(|| x.sin()),
        &[x],
        false,
        move |ctx, g| {
            let x = ctx.saved(0);
            vec![Some(g.mul(&x0.cos().add(&x.sub(&x0).mul_scalar(0.5))))]
        },
    )
}

#[test]
fn catches_a_rule_off_by_a_factor() {
    for (mode, options) in modes() {
        let report = mismatch(gradcheck(sin_scaled_rule, &[x()], &options), mode);
        let worst = report.inputs[0].worst.as_ref().unwrap();
        assert!(
            (worst.analytical / worst.numerical - 1.5).abs() < 1e-6,
            "{mode}: {report}"
        );
        if mode == "full" {
            // sin is elementwise: the worst entry is on the diagonal, where cos is largest.
            let Position::Element { output, input } = &worst.position else {
                panic!("{mode}: {report}")
            };
            assert_eq!(output, input);
            // The violation 0.5|cos x| / (atol + rtol |cos x|) grows with |cos x|: largest
            // at x = 0.4, flat index 2.
            assert_eq!(output, &vec![0, 2], "{report}");
        }
    }
}

#[test]
fn catches_a_rule_with_the_wrong_sign() {
    for (mode, options) in modes() {
        let report = mismatch(gradcheck(exp_wrong_sign, &[x()], &options), mode);
        let worst = report.inputs[0].worst.as_ref().unwrap();
        assert!(
            (worst.analytical + worst.numerical).abs() < 1e-6,
            "{mode}: {report}"
        );
    }
}

#[test]
fn catches_a_rule_that_forgets_an_input() {
    for (mode, options) in modes() {
        let report = mismatch(gradcheck(mul_forgets_b, &[x(), y()], &options), mode);
        assert!(
            report.inputs[0].passed(),
            "{mode}: a's gradient is right: {report}"
        );
        assert!(
            !report.inputs[1].passed(),
            "{mode}: b's is missing: {report}"
        );
        assert_eq!(report.inputs[1].worst.as_ref().unwrap().analytical, 0.0);
        // Checking only `a` passes: the selection works.
        gradcheck(mul_forgets_b, &[x(), y()], &options.clone().only(&[0])).unwrap();
    }
}

#[test]
fn catches_a_broadcast_gradient_that_is_not_summed() {
    for (mode, options) in modes() {
        let report = mismatch(gradcheck(mul_bad_reduction, &[x(), y()], &options), mode);
        assert!(
            report.inputs[0].passed() && !report.inputs[1].passed(),
            "{mode}: {report}"
        );
    }
}

#[test]
fn a_wrong_second_derivative_passes_gradcheck_and_fails_gradgradcheck() {
    for f in [
        cube_detached_rule as fn(&[Tensor]) -> Tensor,
        sin_wrong_second_derivative,
    ] {
        for (mode, options) in modes() {
            gradcheck(f, &[x()], &options)
                .unwrap_or_else(|e| panic!("{mode}: first order is right: {e}"));
            let report = mismatch(gradgradcheck(f, &[x()], &options), mode);
            assert_eq!(report.order, Order::Second);
            assert!(
                !report.inputs[0].passed(),
                "{mode}: d/dx of the rule is wrong: {report}"
            );
        }
    }
}

#[test]
fn the_same_ops_written_correctly_pass() {
    // The control group: the checker is not just failing everything.
    let sin = |t: &[Tensor]| {
        let x = &t[0];
        custom_op(
            "sin_ok",
            &[x],
            no_grad(|| x.sin()),
            &[x],
            false,
            |ctx, g| vec![Some(g.mul(&ctx.saved(0).cos()))],
        )
    };
    let mul = |t: &[Tensor]| t[0].mul(&t[1]);
    for (_, options) in modes() {
        gradcheck(sin, &[x()], &options).unwrap();
        gradgradcheck(sin, &[x()], &options).unwrap();
        gradcheck(mul, &[x(), y()], &options).unwrap();
        gradgradcheck(mul, &[x(), y()], &options).unwrap();
    }
}

#[test]
fn a_small_error_above_tolerance_is_caught_and_one_below_is_not() {
    // sin with the rule scaled by (1 + r): fails exactly when r exceeds ~rtol.
    fn scaled(r: f64) -> impl Fn(&[Tensor]) -> Tensor {
        move |t: &[Tensor]| {
            let x = &t[0];
            custom_op(
                "sin_scaled",
                &[x],
                no_grad(|| x.sin()),
                &[x],
                false,
                move |ctx, g| vec![Some(g.mul(&ctx.saved(0).cos()).mul_scalar(1.0 + r))],
            )
        }
    }
    let x = Tensor::from_vec(vec![0.1f64, 0.2, 0.3], &[3]); // cos(x) ~ 1: atol is negligible
    gradcheck(scaled(5e-4), std::slice::from_ref(&x), &Options::default()).unwrap();
    mismatch(
        gradcheck(scaled(5e-3), &[x], &Options::default()),
        "0.5% error",
    );
}
