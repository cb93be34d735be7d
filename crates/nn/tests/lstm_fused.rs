//! The fused LSTM layer (`Tensor::lstm_layer`, which `Lstm` runs on) against the
//! composed form (`lstm_cell` stepped by hand, one recorded op per gate): same outputs
//! and gradients to 1e-12 in f64, by the backward kernel and by the tensor-op rule used
//! under `create_graph`; gradients checked against finite differences through every
//! input; f32 close to f64; long sequences on a small stack.

use tapegrad::{grad, DType, GradOptions, Tensor};
use tapegrad_gradcheck::{gradcheck, gradgradcheck, Options};
use tapegrad_nn::functional::lstm_cell;
use tapegrad_nn::{CellWeights, Lstm, Module, RecurrentOptions};

fn randn(shape: &[usize], seed: u64, dtype: DType) -> Tensor {
    Tensor::randn(shape, dtype, seed)
}

/// `x [S, B, I]`, `h0`, `c0 [B, H]`, `w_ih`, `w_hh`, `b_ih`, `b_hh` (leaves).
fn inputs(s: usize, b: usize, i: usize, h: usize, seed: u64, dtype: DType) -> Vec<Tensor> {
    let scale = 1.0 / (h as f64).sqrt();
    let shapes: [&[usize]; 7] = [
        &[s, b, i],
        &[b, h],
        &[b, h],
        &[4 * h, i],
        &[4 * h, h],
        &[4 * h],
        &[4 * h],
    ];
    shapes
        .iter()
        .enumerate()
        .map(|(k, shape)| {
            let t = randn(shape, seed + k as u64, dtype);
            let t = if k >= 3 { t.mul_scalar(scale) } else { t };
            t.requires_grad()
        })
        .collect()
}

fn bias(t: &[Tensor]) -> Option<(&Tensor, &Tensor)> {
    (t.len() == 7).then(|| (&t[5], &t[6]))
}

/// The fused op's three results, flattened into one vector.
fn fused(t: &[Tensor], reverse: bool) -> Tensor {
    let (out, h, c) = t[0].lstm_layer(&t[1], &t[2], &t[3], &t[4], bias(t), reverse);
    Tensor::cat(&[out.reshape(&[-1]), h.reshape(&[-1]), c.reshape(&[-1])], 0)
}

/// The same with one `lstm_cell` per step (the composed ops).
fn composed(t: &[Tensor], reverse: bool) -> Tensor {
    let steps = t[0].shape()[0];
    let w = CellWeights::from_slice(&t[3..]);
    let (mut h, mut c) = (t[1].clone(), t[2].clone());
    let mut hs = vec![None; steps];
    for s in 0..steps {
        let pos = if reverse { steps - 1 - s } else { s };
        let x_t = t[0].narrow(0, pos, 1).squeeze(0);
        (h, c) = lstm_cell(&x_t, Some((&h, &c)), w);
        hs[pos] = Some(h.clone());
    }
    let hs: Vec<Tensor> = hs.into_iter().map(|h| h.expect("every step")).collect();
    let out = Tensor::stack(&hs, 0);
    Tensor::cat(&[out.reshape(&[-1]), h.reshape(&[-1]), c.reshape(&[-1])], 0)
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.shape(), b.shape());
    a.to_vec::<f64>()
        .iter()
        .zip(b.to_vec::<f64>())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// The gradients of `sum(f(t) * r)` with respect to every input, with or without a graph
/// of the backward pass (the kernel rule, or the tensor-op rule of the fused op).
fn grads_of(f: &dyn Fn(&[Tensor]) -> Tensor, t: &[Tensor], create_graph: bool) -> Vec<Tensor> {
    let y = f(t);
    let r = randn(y.shape(), 99, y.dtype());
    let loss = y.mul(&r).sum();
    let wrt: Vec<&Tensor> = t.iter().collect();
    let options = GradOptions {
        create_graph,
        ..Default::default()
    };
    grad(&[&loss], &wrt, None, options)
        .expect("every input is used")
        .into_iter()
        .map(|g| g.expect("a gradient"))
        .collect()
}

#[test]
fn fused_and_composed_agree_in_f64_forward_and_both_backward_rules() {
    // (steps, batch, input, hidden, biases, reverse)
    let cases = [
        (1, 1, 1, 1, true, false),
        (5, 3, 4, 3, true, false),
        (5, 3, 4, 3, true, true),
        (7, 2, 3, 5, false, false),
        (4, 1, 2, 2, false, true),
    ];
    for (k, &(s, b, i, h, with_bias, reverse)) in cases.iter().enumerate() {
        let mut t = inputs(s, b, i, h, 10 * k as u64, DType::F64);
        if !with_bias {
            t.truncate(5);
        }
        let label = format!("case {k} {:?}", cases[k]);
        let d = max_diff(&fused(&t, reverse), &composed(&t, reverse));
        assert!(d < 1e-12, "{label}: outputs differ by {d}");
        let want = grads_of(&|t| composed(t, reverse), &t, false);
        for create_graph in [false, true] {
            let got = grads_of(&|t| fused(t, reverse), &t, create_graph);
            for (n, (g, w)) in got.iter().zip(&want).enumerate() {
                let d = max_diff(g, w);
                assert!(
                    d < 1e-12,
                    "{label}: gradient of input {n} (create_graph {create_graph}) differs by {d}"
                );
            }
        }
    }
}

#[test]
fn fused_layer_gradchecks_through_inputs_states_weights_and_biases() {
    for reverse in [false, true] {
        let t: Vec<Tensor> = inputs(3, 2, 3, 2, 200, DType::F64)
            .iter()
            .map(Tensor::detach)
            .collect();
        if let Err(e) = gradcheck(|t| fused(t, reverse), &t, &Options::default()) {
            panic!("lstm_layer reverse={reverse}: {e}");
        }
    }
    // Without biases, and second order (the tensor-op rule) on a small case.
    let t: Vec<Tensor> = inputs(2, 2, 2, 2, 300, DType::F64)
        .iter()
        .map(Tensor::detach)
        .collect();
    if let Err(e) = gradcheck(|t| fused(t, false), &t[..5], &Options::default()) {
        panic!("lstm_layer without biases: {e}");
    }
    if let Err(e) = gradgradcheck(|t| fused(t, true), &t, &Options::default()) {
        panic!("lstm_layer second order: {e}");
    }
}

#[test]
fn f32_kernels_are_close_to_f64() {
    let t64 = inputs(16, 4, 8, 32, 400, DType::F64);
    let t32: Vec<Tensor> = t64
        .iter()
        .map(|t| t.detach().to_dtype(DType::F32).requires_grad())
        .collect();
    for reverse in [false, true] {
        let (y64, y32) = (fused(&t64, reverse), fused(&t32, reverse));
        let d = max_diff(&y64, &y32.to_dtype(DType::F64));
        assert!(d < 1e-5, "outputs: f32 and f64 differ by {d}");
        let (g64, g32) = (
            grads_of(&|t| fused(t, reverse), &t64, false),
            grads_of(&|t| fused(t, reverse), &t32, false),
        );
        for (n, (a, b)) in g64.iter().zip(&g32).enumerate() {
            let scale = a.abs().max().item().max(1.0);
            let d = max_diff(a, &b.to_dtype(DType::F64)) / scale;
            assert!(
                d < 1e-4,
                "gradient of input {n}: f32 and f64 differ by {d} (relative)"
            );
        }
    }
}

#[test]
fn lstm_results_have_their_shapes_and_every_parameter_a_gradient() {
    let lstm = Lstm::new(3, 4, 0);
    let x = randn(&[6, 2, 3], 1, DType::F32).requires_grad();
    let (out, (h_n, c_n)) = lstm.forward_with_state(&x, None);
    assert_eq!(out.shape(), &[6, 2, 4]);
    for t in [&h_n, &c_n] {
        assert_eq!(t.shape(), &[1, 2, 4]);
    }
    let grads = out.sum().add(&c_n.sum()).backward();
    for (name, p) in lstm.named_params() {
        assert!(grads.get(&p).is_some(), "{name} has a gradient");
    }
    assert_eq!(grads[&x].shape(), &[6, 2, 3]);
}

#[test]
fn a_thousand_steps_backpropagate_twice_on_a_small_stack() {
    // The tensor-op rule records about twenty ops per step; a backward through it (and
    // the drop of that graph) must not recurse either.
    let handle = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            let options = RecurrentOptions {
                dtype: DType::F64,
                ..Default::default()
            };
            let lstm = Lstm::with_options(2, 3, options, 0);
            let x = randn(&[1000, 1, 2], 1, DType::F64).requires_grad();
            let (_, (h_n, _)) = lstm.forward_with_state(&x, None);
            let g = grad(
                &[&h_n.sum()],
                &[&x],
                None,
                GradOptions {
                    create_graph: true,
                    ..Default::default()
                },
            )
            .expect("x is used")
            .remove(0)
            .expect("a gradient");
            // A gradient penalty: differentiate |dL/dx|^2 once more.
            let penalty = g.square().sum();
            let grads = penalty.backward();
            for (name, p) in lstm.named_params() {
                let v = grads[&p].to_vec::<f64>();
                assert!(v.iter().all(|x| x.is_finite()), "{name}");
            }
        })
        .expect("spawn");
    handle.join().expect("1,000 steps backpropagate twice");
}
