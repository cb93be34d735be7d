//! Fused (deferred) elementwise evaluation gives exactly what op-by-op evaluation gives:
//! values, full sums and gradients, bit for bit, in both dtypes. The tensors here are
//! large enough to be deferred (fusion applies from 32,768 elements).

use tapegrad::{with_fusion, DType, Tensor};

const N: usize = 40_000;

/// Runs `f` fused and op by op and checks the results are bitwise identical.
fn same_both_ways(what: &str, f: impl Fn() -> Vec<Tensor>) {
    let fused = with_fusion(true, &f);
    let eager = with_fusion(false, &f);
    assert_eq!(fused.len(), eager.len());
    for (i, (a, b)) in fused.iter().zip(&eager).enumerate() {
        assert_eq!(a.shape(), b.shape(), "{what}: result {i} shape");
        assert_eq!(a.dtype(), b.dtype(), "{what}: result {i} dtype");
        let (a, b) = (a.to_vec::<f64>(), b.to_vec::<f64>());
        let differ = a
            .iter()
            .zip(&b)
            .position(|(x, y)| x.to_bits() != y.to_bits() && !(x.is_nan() && y.is_nan()));
        assert!(
            differ.is_none(),
            "{what}: result {i} differs at {}: fused {} vs eager {}",
            differ.unwrap(),
            a[differ.unwrap()],
            b[differ.unwrap()]
        );
    }
}

fn inputs(dtype: DType) -> (Tensor, Tensor) {
    (
        Tensor::randn(&[N], dtype, 1).requires_grad(),
        Tensor::rand_uniform(&[200, N / 200], 0.5, 2.0, dtype, 2).requires_grad(),
    )
}

#[test]
fn the_elementwise_big_workload_matches_op_by_op_evaluation() {
    for dtype in [DType::F32, DType::F64] {
        let (x, _) = inputs(dtype);
        same_both_ways("sum(exp(x) * x)", || {
            let y = x.exp().mul(&x).sum();
            let g = y.backward();
            vec![y, g[&x].clone()]
        });
    }
}

#[test]
fn long_chains_mixed_ops_and_costly_functions_match() {
    for dtype in [DType::F32, DType::F64] {
        let (x, w_leaf) = inputs(dtype);
        same_both_ways("mixed chain", || {
            let w = w_leaf.reshape(&[N as isize]);
            let a = x.mul_scalar(0.5).add(&w).tanh().mul(&x.sigmoid());
            let b = a
                .square()
                .sub(&w.log())
                .div(&w)
                .relu()
                .add_scalar(1.0)
                .sqrt();
            let c = b.mul(&a).neg().exp().clamp(-3.0, 3.0).powf(1.5);
            let loss = c.sum().add(&a.mean());
            let g = loss.backward();
            vec![a, b, c, loss, g[&x].clone(), g[&w_leaf].clone()]
        });
        same_both_ways("a chain longer than one expression holds", || {
            let mut y = x.clone();
            for _ in 0..100 {
                y = y.mul_scalar(0.99).add_scalar(0.01).mul(&x);
            }
            let g = y.sum().backward();
            vec![y, g[&x].clone()]
        });
    }
}

#[test]
fn broadcasting_scalars_comparisons_and_reductions_match() {
    let (x, w) = inputs(DType::F32);
    let s = Tensor::scalar(1.5f32).requires_grad();
    same_both_ways("broadcasts", || {
        let y = x.reshape(&[200, (N / 200) as isize]);
        let z = y
            .mul(&s)
            .add(&w)
            .mul(&y.gt_scalar(0.0).to_dtype(DType::F32))
            .maximum(&w.mul_scalar(-1.0));
        let row = z.sum_dim(&[1], true);
        let loss = z.mul(&row).sum().add(&z.mean_dim(&[0], false).sum());
        let g = loss.backward();
        vec![z, row, loss, g[&x].clone(), g[&w].clone(), g[&s].clone()]
    });
}

#[test]
fn second_derivatives_through_fused_chains_match() {
    let (x, _) = inputs(DType::F64);
    same_both_ways("grad of grad", || {
        let y = x.exp().mul(&x).mul(&x.sin()).sum();
        let dx = y.backward_with_graph()[&x].clone();
        let d2 = dx.square().sum().backward()[&x].clone();
        vec![dx, d2]
    });
}

#[test]
fn a_deferred_value_keeps_the_inputs_it_was_made_from() {
    let x = Tensor::from_vec(vec![2.0f32; N], &[N]);
    let y = with_fusion(true, || x.mul_scalar(3.0).add_scalar(1.0));
    // Changing x in place afterwards does not change y (value semantics).
    x.update_(|mut a: ndarray::ArrayViewMutD<f32>| a.fill(-1.0));
    assert!(y.to_vec::<f32>().iter().all(|&v| v == 7.0));
    assert!(x.to_vec::<f32>().iter().all(|&v| v == -1.0));
}

#[test]
fn gradients_accumulate_into_leaves_used_many_times() {
    let (x, _) = inputs(DType::F32);
    same_both_ways("reused leaf", || {
        let parts: Vec<Tensor> = (1..=6)
            .map(|k| x.mul_scalar(k as f64).exp().mul(&x).sum())
            .collect();
        let loss = parts.iter().skip(1).fold(parts[0].clone(), |a, b| a.add(b));
        vec![loss.backward()[&x].clone()]
    });
}
