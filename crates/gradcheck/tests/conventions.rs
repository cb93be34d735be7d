//! Known-value tests for the conventions `docs/ops.md` states at kinks, poles and ties
//! (the header of the generated file): if an op changes its convention, this fails and
//! the doc must change with it.

use tapegrad::{DType, Tensor};

fn leaf(v: &[f64]) -> Tensor {
    Tensor::from_vec(v.to_vec(), &[v.len()]).requires_grad()
}

#[test]
fn relu_has_zero_gradient_at_zero() {
    let x = leaf(&[-1.0, 0.0, 2.0]);
    assert_eq!(
        x.relu().sum().backward()[&x].to_vec::<f64>(),
        vec![0.0, 0.0, 1.0]
    );
}

#[test]
fn abs_has_zero_gradient_at_zero() {
    let x = leaf(&[-2.0, 0.0, 3.0]);
    assert_eq!(
        x.abs().sum().backward()[&x].to_vec::<f64>(),
        vec![-1.0, 0.0, 1.0]
    );
}

#[test]
fn maximum_and_minimum_split_ties_evenly() {
    let (a, b) = (leaf(&[1.0, 2.0, 5.0]), leaf(&[1.0, 3.0, 4.0]));
    let g = a.maximum(&b).sum().backward();
    assert_eq!(g[&a].to_vec::<f64>(), vec![0.5, 0.0, 1.0]);
    assert_eq!(g[&b].to_vec::<f64>(), vec![0.5, 1.0, 0.0]);
    let g = a.minimum(&b).sum().backward();
    assert_eq!(g[&a].to_vec::<f64>(), vec![0.5, 1.0, 0.0]);
    assert_eq!(g[&b].to_vec::<f64>(), vec![0.5, 0.0, 1.0]);
}

#[test]
fn max_dim_and_min_dim_send_ties_to_the_first_index() {
    let x = leaf(&[3.0, 1.0, 3.0]);
    let (v, idx) = x.max_dim(0, false);
    assert_eq!(idx.item_as::<i64>(), 0);
    assert_eq!(v.backward()[&x].to_vec::<f64>(), vec![1.0, 0.0, 0.0]);
    let x = leaf(&[2.0, 1.0, 1.0]);
    let (v, idx) = x.min_dim(0, false);
    assert_eq!(idx.item_as::<i64>(), 1);
    assert_eq!(v.backward()[&x].to_vec::<f64>(), vec![0.0, 1.0, 0.0]);
}

#[test]
fn clamp_passes_the_gradient_at_its_boundaries() {
    let x = leaf(&[-1.0, -0.5, 0.0, 0.5, 1.0]);
    assert_eq!(
        x.clamp(-0.5, 0.5).sum().backward()[&x].to_vec::<f64>(),
        vec![0.0, 1.0, 1.0, 1.0, 0.0]
    );
}

#[test]
fn sqrt_has_infinite_gradient_at_zero_and_nan_below() {
    let x = leaf(&[0.0, -1.0]);
    let y = x.sqrt();
    let v = y.to_vec::<f64>();
    assert_eq!(v[0], 0.0);
    assert!(v[1].is_nan());
    assert_eq!(
        y.narrow(0, 0, 1).sum().backward()[&x].to_vec::<f64>()[0],
        f64::INFINITY
    );
}

#[test]
fn log_of_zero_is_minus_infinity_with_infinite_gradient() {
    let x = leaf(&[0.0, -1.0]);
    let y = x.log();
    let v = y.to_vec::<f64>();
    assert_eq!(v[0], f64::NEG_INFINITY);
    assert!(v[1].is_nan());
    assert_eq!(
        y.narrow(0, 0, 1).sum().backward()[&x].to_vec::<f64>()[0],
        f64::INFINITY
    );
}

#[test]
fn division_by_zero_follows_ieee_in_value_and_gradient() {
    let (a, b) = (leaf(&[0.0, 1.0, -1.0]), leaf(&[0.0, 0.0, 0.0]));
    let y = a.div(&b);
    let v = y.to_vec::<f64>();
    assert!(v[0].is_nan());
    assert_eq!((v[1], v[2]), (f64::INFINITY, f64::NEG_INFINITY));
    let g = y.backward_with(&Tensor::ones(&[3], DType::F64));
    // d/da = 1/b = inf; d/db = -a/b^2: -0/0 = NaN, -1/0 = -inf, 1/0 = inf.
    assert_eq!(g[&a].to_vec::<f64>(), vec![f64::INFINITY; 3]);
    let gb = g[&b].to_vec::<f64>();
    assert!(gb[0].is_nan());
    assert_eq!((gb[1], gb[2]), (f64::NEG_INFINITY, f64::INFINITY));
}

#[test]
fn norm_has_zero_gradient_at_the_zero_vector() {
    let x = leaf(&[0.0, 0.0, 0.0]);
    assert_eq!(x.norm().backward()[&x].to_vec::<f64>(), vec![0.0; 3]);
}

#[test]
fn pow_at_zero_has_the_masked_gradients() {
    let (x, e) = (leaf(&[0.0, 0.0, 0.0]), leaf(&[0.0, 1.0, 3.0]));
    let g = x.pow(&e).sum().backward();
    assert_eq!(g[&x].to_vec::<f64>(), vec![0.0, 1.0, 0.0]);
    assert_eq!(g[&e].to_vec::<f64>(), vec![0.0, 0.0, 0.0]);
    let x = leaf(&[0.0]);
    assert_eq!(x.powf(0.0).sum().backward()[&x].to_vec::<f64>(), vec![0.0]);
}

#[test]
fn the_documented_conventions_are_the_ones_tested_here() {
    let md = tapegrad_gradcheck::ops_markdown();
    for claim in [
        "relu'(0)",
        "abs'(0)",
        "maximum(a, b)",
        "max_dim",
        "clamp(x, lo, hi)",
        "sqrt'(0)",
        "log(0)",
        "0/0",
        "norm",
        "pow(x, e)",
    ] {
        assert!(
            md.contains(claim),
            "docs/ops.md states the convention for {claim}"
        );
    }
}
