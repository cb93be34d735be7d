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
    assert_eq!(x.l2_norm().backward()[&x].to_vec::<f64>(), vec![0.0; 3]);
    // Every p, as PyTorch's linalg.vector_norm: 0, not 0/0 (p < 2) or 0 * inf (p < 1).
    for p in [0.5, 1.0, 1.5, 2.0, 3.0, f64::INFINITY, f64::NEG_INFINITY] {
        let g = x.norm(p, &[], false).backward()[&x].to_vec::<f64>();
        assert_eq!(g, vec![0.0; 3], "p = {p}");
    }
    // A lane of zeros next to a non-zero lane: only the zero lane is masked.
    let x = Tensor::from_vec(vec![0.0f64, 0.0, 3.0, 4.0], &[2, 2]).requires_grad();
    let g = x.norm(2.0, &[1], false).sum().backward()[&x].to_vec::<f64>();
    assert_eq!(g, vec![0.0, 0.0, 0.6, 0.8]);
}

#[test]
fn maximum_and_minimum_with_nan_propagate_it_and_pass_g_to_both() {
    // PyTorch: the value is NaN and both inputs get all of g (neither "loses").
    let (a, b) = (leaf(&[f64::NAN, 1.0, 2.0]), leaf(&[1.0, f64::NAN, 2.0]));
    for largest in [true, false] {
        let y = if largest {
            a.maximum(&b)
        } else {
            a.minimum(&b)
        };
        let v = y.to_vec::<f64>();
        assert!(v[0].is_nan() && v[1].is_nan() && v[2] == 2.0);
        let g = y.sum().backward();
        assert_eq!(g[&a].to_vec::<f64>(), vec![1.0, 1.0, 0.5]);
        assert_eq!(g[&b].to_vec::<f64>(), vec![1.0, 1.0, 0.5]);
    }
}

#[test]
fn std_and_var_have_zero_gradient_where_the_spread_is_zero() {
    let x = leaf(&[2.0, 2.0, 2.0]);
    for unbiased in [true, false] {
        let s = x.std(&[0], unbiased, false);
        assert_eq!(s.item(), 0.0);
        assert_eq!(s.backward()[&x].to_vec::<f64>(), vec![0.0; 3]);
        let v = x.var(&[0], unbiased, false);
        assert_eq!(v.backward()[&x].to_vec::<f64>(), vec![0.0; 3]);
    }
    // Only the constant lane is masked.
    let x = Tensor::from_vec(vec![1.0f64, 1.0, 0.0, 2.0], &[2, 2]).requires_grad();
    let g = x.std(&[1], false, false).sum().backward()[&x].to_vec::<f64>();
    assert_eq!(g, vec![0.0, 0.0, -0.5, 0.5]);
}

#[test]
fn max_min_amax_amin_split_ties_evenly() {
    let x = leaf(&[1.0, 3.0, 3.0, 3.0]);
    let third = 1.0 / 3.0;
    assert_eq!(
        x.max().backward()[&x].to_vec::<f64>(),
        vec![0.0, third, third, third]
    );
    assert_eq!(
        x.amax(&[0], false).backward()[&x].to_vec::<f64>(),
        vec![0.0, third, third, third]
    );
    let x = leaf(&[1.0, 1.0, 3.0, 2.0]);
    assert_eq!(
        x.min().backward()[&x].to_vec::<f64>(),
        vec![0.5, 0.5, 0.0, 0.0]
    );
    assert_eq!(
        x.amin(&[], true).sum().backward()[&x].to_vec::<f64>(),
        vec![0.5, 0.5, 0.0, 0.0]
    );
}

#[test]
fn amax_over_a_lane_with_a_nan_is_nan_with_zero_gradient() {
    // Differs from PyTorch (NaN gradient there); docs/pytorch.md says so.
    let x = Tensor::from_vec(vec![1.0f64, f64::NAN, 2.0, 3.0], &[2, 2]).requires_grad();
    let m = x.amax(&[1], false);
    let v = m.to_vec::<f64>();
    assert!(v[0].is_nan() && v[1] == 3.0);
    let g = m.sum().backward()[&x].to_vec::<f64>();
    assert_eq!(g, vec![0.0, 0.0, 0.0, 1.0]);
    let z = Tensor::from_vec(vec![0.0f64, 2.0], &[2]).requires_grad();
    let count = z.norm(0.0, &[], false);
    assert_eq!((count.item(), count.tracks_grad()), (1.0, false));
}

#[test]
fn prod_with_one_and_with_two_zeros() {
    // One zero: only it gets a gradient, the product of the others.
    let x = leaf(&[2.0, 0.0, 3.0, 4.0]);
    assert_eq!(
        x.prod().backward()[&x].to_vec::<f64>(),
        vec![0.0, 24.0, 0.0, 0.0]
    );
    // Two zeros: every product of the others holds a zero.
    let x = leaf(&[2.0, 0.0, 3.0, 0.0]);
    assert_eq!(x.prod().backward()[&x].to_vec::<f64>(), vec![0.0; 4]);
    // No zero: the product of the others, exactly.
    let x = leaf(&[2.0, 5.0, 3.0]);
    assert_eq!(
        x.prod().backward()[&x].to_vec::<f64>(),
        vec![15.0, 6.0, 10.0]
    );
    let x = Tensor::from_vec(vec![2.0f64, 0.0, 0.0, 0.0, 3.0, 4.0], &[2, 3]).requires_grad();
    let g = x.prod_dim(1, false).sum().backward()[&x].to_vec::<f64>();
    assert_eq!(g, vec![0.0, 0.0, 0.0, 12.0, 0.0, 0.0]);
}

#[test]
fn cumprod_with_zeros() {
    // PyTorch: cumprod([2, 0, 3, 0, 5]).sum() has gradient [1, 8, 0, 0, 0]: x1 gets
    // 2 + 2*3 (the later outputs hold the second zero), everything after it 0.
    let x = leaf(&[2.0, 0.0, 3.0, 0.0, 5.0]);
    assert_eq!(
        x.cumprod(0).sum().backward()[&x].to_vec::<f64>(),
        vec![1.0, 8.0, 0.0, 0.0, 0.0]
    );
    let x = leaf(&[0.0, 2.0, 3.0]);
    assert_eq!(
        x.cumprod(0).sum().backward()[&x].to_vec::<f64>(),
        vec![9.0, 0.0, 0.0]
    );
}

#[test]
fn atan2_at_the_origin_has_zero_gradients() {
    let (y, x) = (leaf(&[0.0, 0.0]), leaf(&[0.0, -0.0]));
    let a = y.atan2(&x);
    assert_eq!(a.to_vec::<f64>(), vec![0.0, std::f64::consts::PI]);
    let g = a.sum().backward();
    assert_eq!(g[&y].to_vec::<f64>(), vec![0.0, 0.0]);
    assert_eq!(g[&x].to_vec::<f64>(), vec![0.0, 0.0]);
}

#[test]
fn hardtanh_family_kinks_follow_pytorch() {
    let x = leaf(&[-1.0, 1.0]);
    assert_eq!(
        x.hardtanh(-1.0, 1.0).sum().backward()[&x].to_vec::<f64>(),
        vec![0.0, 0.0]
    );
    let x = leaf(&[0.0, 6.0]);
    assert_eq!(
        x.relu6().sum().backward()[&x].to_vec::<f64>(),
        vec![0.0, 0.0]
    );
    let x = leaf(&[-3.0, 3.0]);
    assert_eq!(
        x.hardsigmoid().sum().backward()[&x].to_vec::<f64>(),
        vec![0.0, 0.0]
    );
    assert_eq!(
        x.hardswish().sum().backward()[&x].to_vec::<f64>(),
        vec![0.0, 1.0]
    );
}

#[test]
fn rounding_ops_have_zero_gradient_and_frac_one() {
    let x = leaf(&[-1.0, -0.5, 0.0, 0.5, 2.0]);
    for f in [
        Tensor::floor,
        Tensor::ceil,
        Tensor::round,
        Tensor::trunc,
        Tensor::sign,
    ] {
        assert_eq!(f(&x).sum().backward()[&x].to_vec::<f64>(), vec![0.0; 5]);
    }
    assert_eq!(x.frac().sum().backward()[&x].to_vec::<f64>(), vec![1.0; 5]);
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
        "maximum(a, b)` / `minimum(a, b)` with a NaN",
        "std'",
        "max()",
        "prod",
        "cumprod",
        "atan2(0, 0)",
        "hardtanh",
        "floor",
    ] {
        assert!(
            md.contains(claim),
            "docs/ops.md states the convention for {claim}"
        );
    }
}
