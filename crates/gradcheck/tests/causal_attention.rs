//! A causal self-attention written by a user from core ops only: scores from
//! `q.matmul(&k.transpose(-2, -1))`, a `Bool` causal mask built with `arange` and a
//! comparison, `masked_fill` with `-inf`, then `softmax` and the product with `v`. It
//! gradchecks (f64) to first and second order in all three inputs.

use tapegrad::{DType, Tensor};
use tapegrad_gradcheck::{gradcheck, gradgradcheck, Options};

/// `[l, l]`, true above the diagonal: key `j` is in query `i`'s future when `j > i`.
fn future(l: usize) -> Tensor {
    let i = Tensor::arange(0.0, l as f64, 1.0, DType::I64).reshape(&[-1, 1]);
    let j = Tensor::arange(0.0, l as f64, 1.0, DType::I64).reshape(&[1, -1]);
    j.gt(&i)
}

/// `softmax(q k^T / sqrt(d) with the future masked out) v` for `q, k, v: [b, l, d]`.
fn causal_attention(q: &Tensor, k: &Tensor, v: &Tensor) -> Tensor {
    let (l, d) = (q.shape()[1], q.shape()[2]);
    let scores = q
        .matmul(&k.transpose(-2, -1))
        .mul_scalar(1.0 / (d as f64).sqrt());
    let weights = scores
        .masked_fill(&future(l), f64::NEG_INFINITY)
        .softmax(-1);
    weights.matmul(v)
}

fn inputs() -> Vec<Tensor> {
    (0..3)
        .map(|s| Tensor::randn(&[2, 4, 3], DType::F64, 10 + s).requires_grad())
        .collect()
}

#[test]
fn the_mask_is_bool_and_marks_the_future() {
    let m = future(3);
    assert_eq!(m.dtype(), DType::Bool);
    assert_eq!(
        m.to_vec::<bool>(),
        vec![false, true, true, false, false, true, false, false, false]
    );
}

#[test]
fn masked_keys_get_no_weight_and_no_gradient() {
    let x = inputs();
    let out = causal_attention(&x[0], &x[1], &x[2]);
    // The first query sees only the first key: its output is the first value row.
    let first: Vec<f64> = out.narrow(1, 0, 1).to_vec();
    let v0: Vec<f64> = x[2].narrow(1, 0, 1).to_vec();
    for (a, b) in first.iter().zip(&v0) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }
    // The last key is only seen by the last query: a loss on the other queries gives it
    // no gradient.
    let loss = out.narrow(1, 0, 3).sum();
    let g = loss.backward();
    assert!(g[&x[1]]
        .narrow(1, 3, 1)
        .to_vec::<f64>()
        .iter()
        .all(|&v| v == 0.0));
    assert!(g[&x[2]]
        .narrow(1, 3, 1)
        .to_vec::<f64>()
        .iter()
        .all(|&v| v == 0.0));
}

#[test]
fn causal_self_attention_gradchecks_first_and_second_order() {
    let f = |t: &[Tensor]| causal_attention(&t[0], &t[1], &t[2]);
    let x = inputs();
    gradcheck(f, &x, &Options::default()).unwrap_or_else(|e| panic!("{e}"));
    gradgradcheck(f, &x, &Options::default()).unwrap_or_else(|e| panic!("{e}"));
}
