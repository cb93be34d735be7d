//! Finite-difference checks of the core nn ops (`conv2d`, the pools, `dropout`), to first
//! and second order, on the op table's own input generators and on hand-picked
//! configurations; and a check that the checker catches a wrong gradient.

mod common;

use common::{gradcheck, gradgradcheck, leaf};
use rand::SeedableRng;
use tapegrad::{custom_op, find_op, DType, Tensor};

fn check_row(name: &str, samples: u64) {
    let spec = find_op(name).unwrap_or_else(|| panic!("op table has no row `{name}`"));
    for seed in 0..samples {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let inputs: Vec<Tensor> = spec
            .sample_inputs(&mut rng, DType::F64)
            .iter()
            .map(leaf)
            .collect();
        let f = || (spec.apply)(&inputs);
        let names: Vec<String> = (0..inputs.len()).map(|i| format!("input{i}")).collect();
        let wrt: Vec<(&str, &Tensor)> = names
            .iter()
            .map(|s| s.as_str())
            .zip(inputs.iter())
            .collect();
        let label = format!(
            "{name} (seed {seed}, shapes {:?})",
            inputs
                .iter()
                .map(|t| t.shape().to_vec())
                .collect::<Vec<_>>()
        );
        gradcheck(&label, &f, &wrt);
        if spec.second_order {
            gradgradcheck(&label, &f, &wrt);
        }
    }
}

#[test]
fn conv2d_row_first_and_second_order() {
    check_row("conv2d", 12);
}

#[test]
fn pooling_rows_first_and_second_order() {
    check_row("max_pool2d", 8);
    check_row("avg_pool2d", 8);
    check_row("adaptive_avg_pool2d", 8);
}

#[test]
fn dropout_row_first_and_second_order() {
    check_row("dropout", 4);
}

#[test]
fn conv2d_hand_picked_configurations() {
    // (input, weight, stride, padding, dilation, groups): strided, dilated, depthwise,
    // pointwise, padding larger than the kernel reach.
    type Config<'a> = (
        &'a [usize],
        &'a [usize],
        [usize; 2],
        [usize; 2],
        [usize; 2],
        usize,
    );
    let configs: [Config; 5] = [
        (&[2, 2, 5, 4], &[3, 2, 3, 2], [2, 1], [1, 0], [1, 1], 1),
        (&[1, 2, 7, 7], &[2, 2, 3, 3], [1, 2], [2, 2], [2, 2], 1),
        (&[2, 3, 4, 4], &[3, 1, 3, 3], [1, 1], [1, 1], [1, 1], 3),
        (&[2, 4, 3, 3], &[2, 4, 1, 1], [1, 1], [0, 0], [1, 1], 1),
        (&[1, 4, 5, 5], &[4, 2, 2, 2], [3, 3], [1, 1], [1, 1], 2),
    ];
    for (i, (xs, ws, s, p, d, g)) in configs.into_iter().enumerate() {
        let x = leaf(&Tensor::randn(xs, DType::F64, i as u64));
        let w = leaf(&Tensor::randn(ws, DType::F64, 50 + i as u64));
        let b = leaf(&Tensor::randn(&[ws[0]], DType::F64, 90 + i as u64));
        let f = || x.conv2d(&w, Some(&b), s, p, d, g);
        let label = format!("conv2d config {i}");
        gradcheck(&label, &f, &[("x", &x), ("w", &w), ("b", &b)]);
        gradgradcheck(&label, &f, &[("x", &x), ("w", &w), ("b", &b)]);
    }
}

#[test]
fn conv2d_third_order_through_recorded_backward() {
    // f(x) = sum(conv(x, w)^2 ...) differentiated three times: the gradients' own rules
    // are convolutions, so this must be exact (a cubic in x has a constant third derivative).
    let x = leaf(&Tensor::randn(&[1, 1, 4, 4], DType::F64, 3));
    let w = leaf(&Tensor::randn(&[1, 1, 2, 2], DType::F64, 4));
    let y = x
        .conv2d(&w, None, [1, 1], [0, 0], [1, 1], 1)
        .powf(3.0)
        .sum();
    let gx = y.backward_with_graph()[&x].clone();
    let gxx = gx.sum().backward_with_graph()[&x].clone();
    assert!(gxx.tracks_grad(), "second derivative is on the tape");
    let gxxx = gxx.sum().backward()[&x].clone();
    // sum_ij d^3/dx^3 of sum_o (w.x_o)^3 = 6 * sum_o (sum_taps w)^3 over every x in window o.
    let wsum: f64 = w.to_vec::<f64>().iter().sum();
    // Each output o contributes 6 * wsum^3 to every x_k in its window (d/dx_k weights w_k... summed).
    let mut want = vec![0.0; 16];
    let wv = w.to_vec::<f64>();
    for oy in 0..3 {
        for ox in 0..3 {
            for (t, &wt) in wv.iter().enumerate() {
                let (ky, kx) = (t / 2, t % 2);
                want[(oy + ky) * 4 + ox + kx] += 6.0 * wsum * wsum * wt;
            }
        }
    }
    for (a, b) in gxxx.to_vec::<f64>().iter().zip(&want) {
        assert!((a - b).abs() < 1e-9, "{a} vs {b}");
    }
}

#[test]
#[should_panic(expected = "backward")]
fn the_checker_catches_a_wrong_gradient() {
    // A custom op with the value of x^2 but the rule 3x: the checker must fail.
    let x = leaf(&Tensor::randn(&[3], DType::F64, 1));
    let f = || {
        let v = tapegrad::no_grad(|| x.square());
        custom_op("bad_square", &[&x], v, &[&x], false, |ctx, g| {
            vec![Some(g.mul(&ctx.saved(0).mul_scalar(3.0)))]
        })
    };
    gradcheck("bad_square", &f, &[("x", &x)]);
}
