//! Every op computes the same thing in f32 as in f64, up to f32 rounding: forward values
//! and vector-Jacobian products (gradients for a random cotangent), at random inputs from
//! the op table.
//!
//! The tolerance is `|y32 - y64| <= RTOL * (|y64| + scale)`, `scale` being the largest
//! magnitude in the f64 tensor (so a reduction that cancels is judged against the size
//! of what it summed, not of its small result). Both sides start from the same
//! f32-representable inputs, so only the arithmetic differs. `RTOL = 1e-5` is about 84
//! f32 ulps; the worst op measured (softmax: exp, a sum and a division) is at 2.2e-6.

use tapegrad::{all_ops, DType, OpSpec, Tensor};
use tapegrad_gradcheck::ops::{op_seed, sample_op_inputs};

const CASES: u64 = 12;
const RTOL: f64 = 1e-5;

/// The worst `|a - b| / (|b| + scale)` over the elements, with `b` the f64 reference.
fn worst_ratio(a32: &Tensor, b64: &Tensor) -> f64 {
    assert_eq!(a32.dtype(), DType::F32);
    assert_eq!(b64.dtype(), DType::F64);
    assert_eq!(a32.shape(), b64.shape());
    let (a, b) = (a32.to_vec::<f64>(), b64.to_vec::<f64>());
    let scale = b
        .iter()
        .fold(0.0f64, |m, v| m.max(v.abs()))
        .max(f64::MIN_POSITIVE);
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs() / (y.abs() + scale))
        .fold(0.0, f64::max)
}

/// Checks one op at one case; returns a description of the disagreement, if any.
fn compare(spec: &OpSpec, case: u64) -> Option<String> {
    let x64 = sample_op_inputs(spec, 0, case, DType::F64);
    let x32: Vec<Tensor> = x64.iter().map(|t| t.to_dtype(DType::F32)).collect();
    // The reference runs on the f32-rounded inputs widened back, so both sides see the
    // same numbers and only the arithmetic differs.
    let x64: Vec<Tensor> = x32
        .iter()
        .map(|t| t.to_dtype(DType::F64).requires_grad())
        .collect();
    let x32: Vec<Tensor> = x32.into_iter().map(Tensor::requires_grad).collect();
    let (y64, y32) = ((spec.apply)(&x64), (spec.apply)(&x32));
    if y32.dtype() != DType::F32 {
        return Some(format!("f32 inputs gave a {} output", y32.dtype()));
    }
    let mut problems = Vec::new();
    let r = worst_ratio(&y32, &y64);
    if r.is_nan() || r > RTOL {
        problems.push(format!("forward differs by {r:.2e} (relative to scale)"));
    }
    if y64.tracks_grad() {
        let u64 = Tensor::rand_uniform(
            y64.shape(),
            -1.0,
            1.0,
            DType::F64,
            op_seed(spec.name, 1, case),
        )
        .to_dtype(DType::F32)
        .to_dtype(DType::F64);
        let (g64, g32) = (
            y64.backward_with(&u64),
            y32.backward_with(&u64.to_dtype(DType::F32)),
        );
        for (i, (a, b)) in x32.iter().zip(&x64).enumerate() {
            match (g32.get(a), g64.get(b)) {
                (Some(ga), Some(gb)) => {
                    let r = worst_ratio(ga, gb);
                    if r.is_nan() || r > RTOL {
                        problems.push(format!("gradient of input {i} differs by {r:.2e}"));
                    }
                }
                (None, None) => {}
                (a, b) => problems.push(format!(
                    "input {i}: f32 gradient {}, f64 gradient {}",
                    a.is_some(),
                    b.is_some()
                )),
            }
        }
    }
    (!problems.is_empty()).then(|| {
        let shapes: Vec<_> = x64.iter().map(|t| t.shape().to_vec()).collect();
        format!(
            "op `{}`, case {case}, shapes {shapes:?}: {}",
            spec.name,
            problems.join("; ")
        )
    })
}

#[test]
fn f32_agrees_with_f64_for_every_op() {
    let failures: Vec<String> = all_ops()
        .into_iter()
        .flat_map(|spec| (0..CASES).filter_map(move |case| compare(spec, case)))
        .collect();
    assert!(
        failures.is_empty(),
        "f32 and f64 disagree:\n{}",
        failures.join("\n")
    );
}

#[test]
fn the_comparison_notices_a_real_difference() {
    let b = Tensor::from_vec(vec![1.0f64, 2.0, 3.0], &[3]);
    let close = Tensor::from_vec(vec![1.0f32, 2.0, 3.0 + 3e-7], &[3]);
    let off = Tensor::from_vec(vec![1.0f32, 2.0, 3.001], &[3]);
    assert!(worst_ratio(&close, &b) <= RTOL);
    assert!(worst_ratio(&off, &b) > RTOL);
}
