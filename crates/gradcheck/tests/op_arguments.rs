//! Property tests over op *arguments*: the op table fixes each op's non-tensor arguments
//! (axes, keepdim, steps, pads, indices); these vary them, with shapes, and gradcheck and
//! gradgradcheck the result in f64. (Found so far: backward through an empty slice
//! panicked.)

use ndarray::Dimension;
use proptest::prelude::*;
use tapegrad::{DType, Domain, Tensor};
use tapegrad_gradcheck::strategies::{shape_with, tensor};
use tapegrad_gradcheck::{gradcheck, gradgradcheck, Options};

/// 24 cases per test unless `PROPTEST_CASES` says otherwise.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    ProptestConfig {
        cases,
        failure_persistence: None,
        max_shrink_iters: 64,
        ..ProptestConfig::default()
    }
}

/// A tensor of rank `1..=max_rank` with values in `domain`.
fn nonscalar(max_rank: usize, domain: Domain) -> impl Strategy<Value = Tensor> {
    shape_with(max_rank, 3)
        .prop_filter("rank >= 1", |s| !s.is_empty())
        .prop_flat_map(move |s| tensor(s, domain, DType::F64))
}

/// A distinct, non-empty set of axes of a rank-`rank` tensor, some written negative.
fn axes(rank: usize) -> impl Strategy<Value = Vec<isize>> {
    (
        prop::sample::subsequence((0..rank).collect::<Vec<_>>(), 1..=rank),
        prop::collection::vec(any::<bool>(), rank),
    )
        .prop_map(move |(axes, neg)| {
            axes.iter()
                .map(|&a| {
                    if neg[a] {
                        a as isize - rank as isize
                    } else {
                        a as isize
                    }
                })
                .collect()
        })
}

/// Values spaced 0.1 apart in random order (no ties, so max/min do not flip).
fn distinct(max_rank: usize) -> impl Strategy<Value = Tensor> {
    shape_with(max_rank, 3)
        .prop_filter("rank >= 1", |s| !s.is_empty())
        .prop_flat_map(|s| {
            let n: usize = s.iter().product();
            Just(
                (0..n)
                    .map(|i| i as f64 * 0.1 - 0.05 * n as f64)
                    .collect::<Vec<_>>(),
            )
            .prop_shuffle()
            .prop_map(move |v| Tensor::from_vec(v, &s))
        })
}

fn both_orders(f: impl Fn(&[Tensor]) -> Tensor, inputs: &[Tensor]) -> Result<(), TestCaseError> {
    let o = Options::default();
    gradcheck(&f, inputs, &o).map_err(|e| TestCaseError::fail(format!("first order: {e}")))?;
    gradgradcheck(&f, inputs, &o).map_err(|e| TestCaseError::fail(format!("second order: {e}")))?;
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn sum_and_mean_over_any_axes((x, dims) in nonscalar(4, Domain::Real).prop_flat_map(|x| { let r = x.rank(); (Just(x), axes(r)) }), keepdim: bool) {
        both_orders(|t| t[0].sum_dim(&dims, keepdim), std::slice::from_ref(&x))?;
        both_orders(|t| t[0].mean_dim(&dims, keepdim), &[x])?;
    }

    #[test]
    fn var_std_and_logsumexp_over_any_axes((x, dims) in nonscalar(4, Domain::Real).prop_flat_map(|x| { let r = x.rank(); (Just(x), axes(r)) }), keepdim: bool, unbiased: bool) {
        let n: usize = dims.iter().map(|&d| x.shape()[d.rem_euclid(x.rank() as isize) as usize]).product();
        both_orders(|t| t[0].logsumexp(&dims, keepdim), std::slice::from_ref(&x))?;
        // Over one element the unbiased variance is 0/0 and std sits at sqrt's pole.
        if n > 1 {
            both_orders(|t| t[0].var(&dims, unbiased, keepdim), std::slice::from_ref(&x))?;
            both_orders(|t| t[0].std(&dims, unbiased, keepdim), &[x])?;
        }
    }

    #[test]
    fn amax_amin_max_min_over_any_axes((x, dims) in distinct(4).prop_flat_map(|x| { let r = x.rank(); (Just(x), axes(r)) }), keepdim: bool) {
        both_orders(|t| t[0].amax(&dims, keepdim), std::slice::from_ref(&x))?;
        both_orders(|t| t[0].amin(&dims, keepdim), std::slice::from_ref(&x))?;
        both_orders(|t| t[0].max(), std::slice::from_ref(&x))?;
        both_orders(|t| t[0].min(), &[x])?;
    }

    #[test]
    fn norm_of_any_order_over_any_axes(
        (x, dims) in nonscalar(3, Domain::AwayFromZero).prop_flat_map(|x| { let r = x.rank(); (Just(x), axes(r)) }),
        keepdim: bool,
        p in prop::sample::select(vec![0.5, 1.0, 1.5, 2.0, 3.0, 4.5]),
    ) {
        both_orders(|t| t[0].norm(p, &dims, keepdim), &[x])?;
    }

    #[test]
    fn inf_norms_over_any_axes((x, dims) in distinct(3).prop_flat_map(|x| { let r = x.rank(); (Just(x), axes(r)) }), keepdim: bool) {
        // Steps of 1 shifted by 0.25: distinct magnitudes, at least 0.25 from the kink of |x|.
        let x = x.add_scalar(0.025).mul_scalar(10.0);
        both_orders(|t| t[0].norm(f64::INFINITY, &dims, keepdim), std::slice::from_ref(&x))?;
        both_orders(|t| t[0].norm(f64::NEG_INFINITY, &dims, keepdim), &[x])?;
    }

    #[test]
    fn scans_and_prod_along_any_axis((x, dim) in nonscalar(4, Domain::AwayFromZero).prop_flat_map(|x| { let r = x.rank() as isize; (Just(x), -r..r) }), keepdim: bool) {
        both_orders(|t| t[0].cumsum(dim), std::slice::from_ref(&x))?;
        both_orders(|t| t[0].cumprod(dim), std::slice::from_ref(&x))?;
        both_orders(|t| t[0].logcumsumexp(dim), std::slice::from_ref(&x))?;
        both_orders(|t| t[0].prod_dim(dim, keepdim), &[x])?;
    }

    #[test]
    fn max_and_min_along_any_axis((x, dim) in distinct(4).prop_flat_map(|x| { let r = x.rank() as isize; (Just(x), -r..r) }), keepdim: bool) {
        both_orders(|t| t[0].max_dim(dim, keepdim).0, std::slice::from_ref(&x))?;
        both_orders(|t| t[0].min_dim(dim, keepdim).0, &[x])?;
    }

    #[test]
    fn softmax_along_any_axis((x, dim) in nonscalar(4, Domain::Real).prop_flat_map(|x| { let r = x.rank() as isize; (Just(x), -r..r) })) {
        both_orders(|t| t[0].softmax(dim), std::slice::from_ref(&x))?;
        both_orders(|t| t[0].log_softmax(dim), &[x])?;
    }

    #[test]
    fn slice_with_any_range_and_step(
        (x, axis, start, len, step) in nonscalar(3, Domain::Real).prop_flat_map(|x| {
            let r = x.rank();
            (Just(x), 0..r).prop_flat_map(|(x, a)| { let n = x.shape()[a]; (Just(x), Just(a), 0..n, 0..=n + 1, 1..4usize) })
        })
    ) {
        both_orders(|t| t[0].slice(axis as isize, start, start + len, step), &[x])?;
    }

    #[test]
    fn pad_any_axes(x in nonscalar(3, Domain::Real), pads in prop::collection::vec((0..3usize, 0..3usize), 0..=3), value in -1.0..1.0f64) {
        let pads: Vec<(usize, usize)> = pads.into_iter().take(x.rank()).collect();
        both_orders(|t| t[0].pad(&pads, value), &[x])?;
    }

    #[test]
    fn cat_and_stack_along_any_axis(
        (shape, axis, extra) in shape_with(3, 3).prop_filter("rank >= 1", |s| !s.is_empty())
            .prop_flat_map(|s| { let r = s.len(); (Just(s), 0..r, 1..4usize) }),
        seed in any::<u64>(),
    ) {
        let a = Tensor::rand_uniform(&shape, -2.0, 2.0, DType::F64, seed);
        let mut other = shape.clone();
        other[axis] = extra;
        let b = Tensor::rand_uniform(&other, -2.0, 2.0, DType::F64, seed ^ 1);
        let c = Tensor::rand_uniform(&shape, -2.0, 2.0, DType::F64, seed ^ 2);
        both_orders(|t| Tensor::cat(t, axis as isize - shape.len() as isize), &[a.clone(), b, c.clone()])?;
        both_orders(|t| Tensor::stack(t, axis as isize), &[a, c])?;
    }

    #[test]
    fn permute_transpose_and_flatten((x, perm) in nonscalar(4, Domain::Real).prop_flat_map(|x| {
        let r = x.rank();
        (Just(x), Just((0..r).collect::<Vec<usize>>()).prop_shuffle())
    })) {
        both_orders(|t| t[0].permute(&perm), std::slice::from_ref(&x))?;
        let r = x.rank() as isize;
        both_orders(|t| t[0].transpose(0, -1).flatten(0, r - 1), std::slice::from_ref(&x))?;
        both_orders(|t| t[0].squeeze_all().unsqueeze(0), &[x])?;
    }

    #[test]
    fn index_select_gather_and_scatter_add_along_any_axis(
        (x, axis, picks) in nonscalar(3, Domain::Real).prop_flat_map(|x| {
            let r = x.rank();
            (Just(x), 0..r).prop_flat_map(|(x, a)| { let n = x.shape()[a]; (Just(x), Just(a), prop::collection::vec(0..n, 1..5)) })
        })
    ) {
        let pick_tensor = Tensor::from_vec(picks.iter().map(|&p| p as i64).collect::<Vec<i64>>(), &[picks.len()]);
        both_orders(|t| t[0].index_select(axis as isize, &pick_tensor), std::slice::from_ref(&x))?;
        // An index of x's shape except along `axis`, where it has picks.len() entries.
        let mut ishape = x.shape().to_vec();
        ishape[axis] = picks.len();
        let index = Tensor::from_array(ndarray::ArrayD::from_shape_fn(ndarray::IxDyn(&ishape), |i| picks[(i[axis] + i.as_array_view().sum()) % picks.len()] as i64));
        both_orders(|t| t[0].gather(axis as isize, &index), std::slice::from_ref(&x))?;
        let src = Tensor::rand_uniform(&ishape, -1.0, 1.0, DType::F64, picks.len() as u64);
        both_orders(|t| t[0].scatter_add(axis as isize, &index, &t[1]), &[x, src])?;
    }

    #[test]
    fn matmul_of_any_compatible_shapes(
        (m, k, n) in (1..4usize, 1..4usize, 1..4usize),
        batch_a in shape_with(2, 3),
        drop in 0..3usize,
        ones in prop::collection::vec(any::<bool>(), 2),
        vec_a: bool, vec_b: bool, seed in any::<u64>(),
    ) {
        let mut batch_b: Vec<usize> = batch_a.iter().zip(&ones).map(|(&d, &one)| if one { 1 } else { d }).collect();
        batch_b.drain(..drop.min(batch_b.len()));
        let sa: Vec<usize> = if vec_a { vec![k] } else { batch_a.iter().copied().chain([m, k]).collect() };
        let sb: Vec<usize> = if vec_b { vec![k] } else { batch_b.iter().copied().chain([k, n]).collect() };
        let a = Tensor::rand_uniform(&sa, -2.0, 2.0, DType::F64, seed);
        let b = Tensor::rand_uniform(&sb, -2.0, 2.0, DType::F64, seed ^ 7);
        both_orders(|t| t[0].matmul(&t[1]), &[a, b])?;
    }

    #[test]
    fn clamp_one_sided_and_where_with_a_broadcast_condition(
        x in nonscalar(3, Domain::AwayFromHalf),
        seed in any::<u64>(),
    ) {
        both_orders(|t| t[0].clamp_min(0.5), std::slice::from_ref(&x))?;
        both_orders(|t| t[0].clamp_max(-0.5), std::slice::from_ref(&x))?;
        let last = *x.shape().last().unwrap();
        let cond = Tensor::rand_uniform(&[last], 0.0, 1.0, DType::F64, seed).gt_scalar(0.5);
        let y = Tensor::rand_uniform(&[1], -1.0, 1.0, DType::F64, seed ^ 3);
        let f = |t: &[Tensor]| Tensor::where_(&cond, &t[0], &t[1]);
        gradcheck(f, &[x.clone(), y.clone()], &Options::default()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        gradgradcheck(f, &[x, y], &Options::default()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    }

    #[test]
    fn expand_and_sum_to_any_broadcast_shape((small, big) in tapegrad_gradcheck::strategies::broadcast_pair().prop_map(|(a, b)| {
        let out = tapegrad::shape::broadcast_shapes(&a, &b).unwrap().to_vec();
        (if out == a { b } else { a }, out)
    }), seed in any::<u64>()) {
        let x = Tensor::rand_uniform(&small, -2.0, 2.0, DType::F64, seed);
        both_orders(|t| t[0].broadcast_to(&big), &[x])?;
        let y = Tensor::rand_uniform(&big, -2.0, 2.0, DType::F64, seed ^ 5);
        both_orders(|t| t[0].sum_to(&small), &[y])?;
    }

    /// Operands that are transposed views (as `w.t()` in a linear layer) take the
    /// gradient-layout path of matmul's rule; stacks of them too.
    #[test]
    fn matmul_of_transposed_views(
        (a, b) in (1..5usize, 1..5usize, 1..5usize, prop::bool::ANY).prop_flat_map(|(m, k, n, stacked)| {
            let lead: Vec<usize> = if stacked { vec![2] } else { vec![] };
            let sa: Vec<usize> = lead.iter().copied().chain([k, m]).collect();
            let sb: Vec<usize> = lead.iter().copied().chain([n, k]).collect();
            (tensor(sa, Domain::Real, DType::F64), tensor(sb, Domain::Real, DType::F64))
        })
    ) {
        // a^T: [.., m, k] viewed from [.., k, m]; b^T: [.., k, n] viewed from [.., n, k].
        both_orders(|t| t[0].transpose(-1, -2).matmul(&t[1].transpose(-1, -2)), &[a.clone(), b.clone()])?;
        // One plain and one transposed operand, the same tensor (b b^T). Scaled before
        // exp: unscaled, b b^T reaches 16 and exp's second derivative (~1e7) made the
        // central differences miss the tolerance on some random draws.
        both_orders(|t| t[0].matmul(&t[0].transpose(-1, -2)).mul_scalar(0.25).exp(), &[b])?;
    }
}
