//! The checker's contract beyond pass/fail: input validation, input selection, inputs
//! that do not reach the output, non-finite values, shape changes, backward errors,
//! grad mode, and what the report says.

use tapegrad::{no_grad, DType, Tensor};
use tapegrad_gradcheck::{
    gradcheck, gradgradcheck, GradcheckError, Options, Order, Position, Quantity,
};

fn v(values: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(values.to_vec(), shape)
}

#[test]
fn f32_inputs_are_rejected_with_a_hint() {
    let x = Tensor::ones(&[2], DType::F32);
    let err = gradcheck(|t: &[Tensor]| t[0].exp(), &[x], &Options::default()).unwrap_err();
    assert_eq!(
        err,
        GradcheckError::NotF64 {
            input: 0,
            dtype: DType::F32
        }
    );
    assert!(err.to_string().contains(".to_dtype(DType::F64)"), "{err}");
}

#[test]
fn an_f32_input_that_is_not_checked_is_allowed() {
    let x = v(&[0.3, 0.4], &[2]);
    let mask = Tensor::ones(&[2], DType::F32);
    let f = |t: &[Tensor]| t[0].mul(&t[1].to_dtype(DType::F64));
    gradcheck(f, &[x, mask], &Options::default().only(&[0])).unwrap();
}

#[test]
fn a_non_f64_output_is_rejected() {
    let err = gradcheck(
        |t: &[Tensor]| t[0].to_dtype(DType::F32),
        &[v(&[1.0], &[1])],
        &Options::default(),
    )
    .unwrap_err();
    assert_eq!(err, GradcheckError::OutputNotF64 { dtype: DType::F32 });
}

#[test]
fn selecting_a_missing_input_is_an_error() {
    let err = gradcheck(
        |t: &[Tensor]| t[0].exp(),
        &[v(&[1.0], &[1])],
        &Options::default().only(&[0, 3]),
    )
    .unwrap_err();
    assert_eq!(err, GradcheckError::NoSuchInput { index: 3, count: 1 });
}

#[test]
fn only_selected_inputs_are_reported() {
    let f = |t: &[Tensor]| t[0].mul(&t[1]);
    let r = gradcheck(
        f,
        &[v(&[1.0, 2.0], &[2]), v(&[3.0], &[1])],
        &Options::default().only(&[1]),
    )
    .unwrap();
    assert_eq!(r.inputs.len(), 1);
    assert_eq!(
        (
            r.inputs[0].input,
            r.inputs[0].shape.as_slice(),
            r.inputs[0].compared
        ),
        (1, &[1usize][..], 2)
    );
}

#[test]
fn an_input_that_does_not_reach_the_output_has_zero_gradient_and_passes() {
    let f = |t: &[Tensor]| t[0].sin();
    let r = gradcheck(
        f,
        &[v(&[0.1, 0.2], &[2]), v(&[5.0], &[])],
        &Options::default(),
    )
    .unwrap();
    let unused = &r.inputs[1];
    assert_eq!(unused.max_abs_error, 0.0);
    assert_eq!(unused.worst.as_ref().unwrap().analytical, 0.0);
    assert_eq!(unused.worst.as_ref().unwrap().numerical, 0.0);
    // Same when nothing reaches the output at all (nothing is recorded).
    let constant = |t: &[Tensor]| Tensor::ones(t[0].shape(), DType::F64);
    gradcheck(constant, &[v(&[0.1, 0.2], &[2])], &Options::default()).unwrap();
    gradgradcheck(constant, &[v(&[0.1, 0.2], &[2])], &Options::default()).unwrap();
    gradgradcheck(
        f,
        &[v(&[0.1, 0.2], &[2]), v(&[5.0], &[])],
        &Options::default().fast(),
    )
    .unwrap();
}

#[test]
fn the_identity_and_a_scalar_output_work() {
    let r = gradcheck(
        |t: &[Tensor]| t[0].clone(),
        &[v(&[1.0, 2.0], &[2])],
        &Options::default(),
    )
    .unwrap();
    assert_eq!(r.inputs[0].compared, 4);
    let r = gradcheck(
        |t: &[Tensor]| t[0].square().sum(),
        &[v(&[1.0, 2.0], &[2])],
        &Options::default(),
    )
    .unwrap();
    assert!(r.output_shape.is_empty());
}

#[test]
fn a_non_finite_output_is_reported_with_its_position() {
    let err = gradcheck(
        |t: &[Tensor]| t[0].log(),
        &[v(&[1.0, 0.0], &[2])],
        &Options::default(),
    )
    .unwrap_err();
    match err {
        GradcheckError::NonFinite {
            quantity: Quantity::Output,
            position: Position::Element { output, .. },
            value,
            ..
        } => {
            assert_eq!((output, value), (vec![1], f64::NEG_INFINITY));
        }
        e => panic!("expected a non-finite output, got {e}"),
    }
}

#[test]
fn a_non_finite_gradient_is_reported() {
    // sqrt(|x|) at 0: the value is finite, the gradient is inf * sign(0) = NaN.
    let err = gradcheck(
        |t: &[Tensor]| t[0].abs().sqrt(),
        &[v(&[1.0, 0.0], &[2])],
        &Options::default(),
    )
    .unwrap_err();
    match &err {
        GradcheckError::NonFinite {
            quantity: Quantity::Analytical,
            input: 0,
            position,
            value,
        } => {
            assert!(value.is_nan());
            // Input element 1 (x = 0); the first row already has 0 * inf there.
            let Position::Element { input, .. } = position else {
                panic!("{position}")
            };
            assert_eq!(input, &vec![1]);
        }
        e => panic!("expected a non-finite analytical gradient, got {e}"),
    }
    assert!(err.to_string().contains("not finite"), "{err}");
}

#[test]
fn an_output_whose_shape_depends_on_the_values_is_reported() {
    let f = |t: &[Tensor]| {
        if t[0].to_vec::<f64>()[0] > 0.0 {
            t[0].clone()
        } else {
            t[0].narrow(0, 0, 1)
        }
    };
    let err = gradcheck(f, &[v(&[0.0, 1.0], &[2])], &Options::default()).unwrap_err();
    assert_eq!(
        err,
        GradcheckError::ShapeChanged {
            input: 0,
            expected: vec![1],
            got: vec![2]
        }
    );
}

#[test]
fn a_backward_error_is_returned() {
    // The function changes a tensor that `mul` saved, after the forward pass.
    let f = |t: &[Tensor]| {
        let c = Tensor::from_vec(vec![2.0f64, 3.0], &[2]);
        let y = t[0].mul(&c);
        c.update_(|mut a: ndarray::ArrayViewMutD<f64>| a.fill(0.0));
        y
    };
    let err = gradcheck(f, &[v(&[1.0, 1.0], &[2])], &Options::default()).unwrap_err();
    assert!(
        matches!(
            err,
            GradcheckError::Backward(tapegrad::BackwardError::ModifiedInPlace { op: "mul", .. })
        ),
        "{err}"
    );
}

#[test]
fn the_check_records_even_inside_no_grad() {
    let r = no_grad(|| {
        gradcheck(
            |t: &[Tensor]| t[0].exp(),
            &[v(&[0.5], &[1])],
            &Options::default(),
        )
    });
    assert!(r.unwrap().max_abs_error() < 1e-8);
}

#[test]
fn the_user_inputs_are_left_alone() {
    let x = v(&[0.5, 0.25], &[2]);
    gradcheck(
        |t: &[Tensor]| t[0].exp(),
        std::slice::from_ref(&x),
        &Options::default(),
    )
    .unwrap();
    assert_eq!(x.to_vec::<f64>(), vec![0.5, 0.25]);
    assert!(!x.tracks_grad());
}

#[test]
fn the_report_names_the_worst_entry() {
    let f = |t: &[Tensor]| t[0].matmul(&t[1]);
    let (a, b) = (
        v(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]),
        v(&[0.5, -1.0, 2.0], &[3]),
    );
    let r = gradcheck(f, &[a, b], &Options::default()).unwrap();
    assert_eq!(r.order, Order::First);
    assert_eq!(r.output_shape, vec![2]);
    assert_eq!(r.cotangent, None);
    assert_eq!(r.inputs[0].compared, 2 * 6);
    assert_eq!(r.inputs[1].compared, 2 * 3);
    let text = r.to_string();
    for needle in [
        "gradcheck (full Jacobian",
        "passed",
        "input 0 (shape [2, 3])",
        "input 1 (shape [3])",
        "worst at d out[",
        "analytical",
        "numerical",
    ] {
        assert!(text.contains(needle), "{needle:?} in\n{text}");
    }
    // The entries are right: d(a@b)[i]/d b[j] = a[i][j].
    let w = r.inputs[1].worst.as_ref().unwrap();
    let Position::Element { output, input } = &w.position else {
        panic!()
    };
    assert_eq!(
        w.analytical,
        [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]][output[0]][input[0]]
    );
    assert!(w.abs_error < 1e-8 && w.rel_error < 1e-8);
}

#[test]
fn fast_mode_reports_one_projection_per_input_and_depends_on_the_seed() {
    let f = |t: &[Tensor]| t[0].mul(&t[1]).tanh();
    let inputs = [v(&[0.3, -0.2, 0.9], &[3]), v(&[1.5], &[1])];
    let a = gradcheck(f, &inputs, &Options::default().fast()).unwrap();
    let b = gradcheck(f, &inputs, &Options::default().fast().with_seed(1)).unwrap();
    assert!(a.fast_mode);
    assert_eq!(
        a.inputs.iter().map(|r| r.compared).collect::<Vec<_>>(),
        vec![1, 1]
    );
    assert_eq!(
        a.inputs[0].worst.as_ref().unwrap().position,
        Position::Projection
    );
    assert_ne!(
        a.inputs[0].worst.as_ref().unwrap().analytical,
        b.inputs[0].worst.as_ref().unwrap().analytical
    );
    assert_eq!(
        a,
        gradcheck(f, &inputs, &Options::default().fast()).unwrap(),
        "same seed, same check"
    );
    assert!(a.to_string().contains("v·J·u"));
}

#[test]
fn gradgradcheck_checks_the_inputs_and_the_cotangent() {
    let f = |t: &[Tensor]| t[0].square().mul(&t[1]);
    let r = gradgradcheck(
        f,
        &[v(&[0.3, -0.2], &[2]), v(&[1.5, 0.5], &[2])],
        &Options::default(),
    )
    .unwrap();
    assert_eq!(r.order, Order::Second);
    assert_eq!(
        r.inputs.iter().map(|i| i.input).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert_eq!(
        r.output_shape,
        vec![4],
        "the flattened gradients of both inputs"
    );
    let r = gradgradcheck(
        f,
        &[v(&[0.3, -0.2], &[2]), v(&[1.5, 0.5], &[2])],
        &Options::default().only(&[1]),
    )
    .unwrap();
    assert_eq!(
        r.inputs.iter().map(|i| i.input).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(r.output_shape, vec![2]);
    assert_eq!(r.cotangent, Some(2));
    let text = r.to_string();
    assert!(
        text.starts_with("gradgradcheck")
            && text.contains("input 2 = the cotangent u (shape [2]): 4 entries"),
        "{text}"
    );
}
