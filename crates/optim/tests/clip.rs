//! Gradient clipping on known gradients: the gradient of Σ w·c with respect to w is c.

use tapegrad::{Grads, Tensor};
use tapegrad_nn::Param;
use tapegrad_optim::{clip_grad_norm, clip_grad_value, grad_norm, ClipError};

/// Two parameters whose gradients are exactly `c1` and `c2`.
fn setup(c1: Vec<f64>, c2: Vec<f32>) -> (Param, Param, Grads) {
    let a = Param::new(Tensor::zeros(&[c1.len()], tapegrad::DType::F64));
    let b = Param::new(Tensor::zeros(&[c2.len()], tapegrad::DType::F32));
    let (n1, n2) = (c1.len(), c2.len());
    let mut grads = (&*a * &Tensor::from_vec(c1, &[n1])).sum().backward();
    grads.add(&(&*b * &Tensor::from_vec(c2, &[n2])).sum().backward());
    (a, b, grads)
}

#[test]
fn two_norm_clips_jointly_and_returns_the_norm_before() {
    // joint norm of (3, 4) and (12) is 13
    let (a, b, mut grads) = setup(vec![3.0, 4.0], vec![12.0]);
    let total = clip_grad_norm(&mut grads, [&a, &b], 6.5, 2.0, true).unwrap();
    assert!((total - 13.0).abs() < 1e-12);
    let coef = 6.5 / (13.0 + 1e-6);
    let ga = grads[&a].to_vec::<f64>();
    assert!((ga[0] - 3.0 * coef).abs() < 1e-12 && (ga[1] - 4.0 * coef).abs() < 1e-12);
    assert!((grads[&b].to_vec::<f32>()[0] as f64 - 12.0 * coef).abs() < 1e-5);
    // now within a bound of 7: unchanged, and the norm reported is the clipped one
    let again = clip_grad_norm(&mut grads, [&a, &b], 7.0, 2.0, true).unwrap();
    assert!((again - 6.5).abs() < 1e-5);
    assert!((grads[&a].to_vec::<f64>()[0] - 3.0 * coef).abs() < 1e-12);
}

#[test]
fn below_the_bound_nothing_changes() {
    let (a, b, mut grads) = setup(vec![0.3, -0.4], vec![0.0]);
    let total = clip_grad_norm(&mut grads, [&a, &b], 1.0, 2.0, false).unwrap();
    assert!((total - 0.5).abs() < 1e-12);
    assert_eq!(grads[&a].to_vec::<f64>(), vec![0.3, -0.4]);
}

#[test]
fn inf_and_one_norms() {
    let (a, b, grads) = setup(vec![3.0, -7.0], vec![5.0, -1.0]);
    assert_eq!(grad_norm(&grads, [&a, &b], f64::INFINITY), 7.0);
    assert!((grad_norm(&grads, [&a, &b], 1.0) - 16.0).abs() < 1e-12);
    assert!(
        (grad_norm(&grads, [&a, &b], 3.0) - (27.0f64 + 343.0 + 125.0 + 1.0).cbrt()).abs() < 1e-9
    );
    let mut grads = grads;
    let total = clip_grad_norm(&mut grads, [&a, &b], 3.5, f64::INFINITY, true).unwrap();
    assert_eq!(total, 7.0);
    let coef = 3.5 / (7.0 + 1e-6);
    let ga = grads[&a].to_vec::<f64>();
    assert!((ga[1] + 7.0 * coef).abs() < 1e-12);
}

#[test]
fn only_listed_params_count_and_change() {
    let (a, b, mut grads) = setup(vec![3.0, 4.0], vec![100.0]);
    let total = clip_grad_norm(&mut grads, [&a], 1.0, 2.0, true).unwrap();
    assert!((total - 5.0).abs() < 1e-12);
    assert_eq!(grads[&b].to_vec::<f32>(), vec![100.0]);
}

#[test]
fn non_finite_norm_is_an_error_and_leaves_gradients() {
    let (a, b, mut grads) = setup(vec![f64::INFINITY, 1.0], vec![1.0]);
    let err = clip_grad_norm(&mut grads, [&a, &b], 1.0, 2.0, true).unwrap_err();
    assert!(matches!(err, ClipError::NonFinite { total, .. } if total.is_infinite()));
    assert!(err.to_string().contains("inf"), "{err}");
    assert_eq!(grads[&a].to_vec::<f64>()[1], 1.0);
    // without the error flag: scaled by max_norm / inf = 0 (the inf becomes NaN), as PyTorch
    clip_grad_norm(&mut grads, [&a, &b], 1.0, 2.0, false).unwrap();
    assert_eq!(grads[&a].to_vec::<f64>()[1], 0.0);
    assert!(grads[&a].to_vec::<f64>()[0].is_nan());
    assert_eq!(grads[&b].to_vec::<f32>(), vec![0.0]);

    let (a, _, mut grads) = setup(vec![f64::NAN, 1.0], vec![1.0]);
    assert!(clip_grad_norm(&mut grads, [&a], 1.0, f64::INFINITY, true).is_err());
    assert!(clip_grad_norm(&mut grads, [&a], 1.0, f64::INFINITY, false)
        .unwrap()
        .is_nan());
    assert!(grads[&a].to_vec::<f64>()[1].is_nan());
}

#[test]
fn clip_by_value() {
    let (a, b, mut grads) = setup(vec![-3.0, 0.25, f64::NAN], vec![2.0, -0.5]);
    clip_grad_value(&mut grads, [&a, &b], 0.5);
    let ga = grads[&a].to_vec::<f64>();
    assert_eq!(&ga[..2], &[-0.5, 0.25]);
    assert!(ga[2].is_nan());
    assert_eq!(grads[&b].to_vec::<f32>(), vec![0.5, -0.5]);
}

#[test]
#[should_panic(expected = "norm_type")]
fn bad_norm_type_panics() {
    let (a, _, grads) = setup(vec![1.0], vec![1.0]);
    grad_norm(&grads, [&a], 0.0);
}
