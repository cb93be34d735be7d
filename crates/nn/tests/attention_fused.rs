//! The fused attention op (`Tensor::scaled_dot_product_attention`, which
//! `functional::scaled_dot_product_attention` runs without dropout): gradient-checked in
//! f64 through `q`, `k` and `v` with no mask, the causal mask and additive masks (with
//! `-inf` entries, whole masked key blocks and fully masked queries), `L != S`, sizes
//! that are not multiples of the kernel's blocks (64 queries, 32 keys) and broadcast
//! batch dimensions; and equal to the composed path (`attention_with_weights`) to 1e-12
//! in value and gradients, its own backward (the kernel) equal to the tensor-op form of
//! its rule that `backward_with_graph` records.

use tapegrad::{DType, Tensor};
use tapegrad_gradcheck::{gradcheck, gradgradcheck, Options};
use tapegrad_nn::functional::{attention_with_weights, scaled_dot_product_attention as sdpa};
use tapegrad_nn::AttnMask;

fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape, DType::F64, seed)
}

/// An additive mask `[rows, cols]`: random finite entries, `-inf` where `masked(i, j)`.
fn mask_where(
    rows: usize,
    cols: usize,
    seed: u64,
    masked: impl Fn(usize, usize) -> bool,
) -> Tensor {
    let mut values = randn(&[rows, cols], seed).mul_scalar(0.5).to_vec::<f64>();
    for i in 0..rows {
        for j in 0..cols {
            if masked(i, j) {
                values[i * cols + j] = f64::NEG_INFINITY;
            }
        }
    }
    Tensor::from_vec(values, &[rows, cols])
}

/// One configuration of attention: shapes, mask, causal flag, scale.
struct Case {
    label: &'static str,
    q: Vec<usize>,
    k: Vec<usize>,
    v: Vec<usize>,
    mask: Option<Tensor>,
    causal: bool,
    scale: Option<f64>,
}

fn cases() -> Vec<Case> {
    let case = |label, q: &[usize], k: &[usize], v: &[usize], mask, causal, scale| Case {
        label,
        q: q.to_vec(),
        k: k.to_vec(),
        v: v.to_vec(),
        mask,
        causal,
        scale,
    };
    vec![
        case(
            "no mask, L != S",
            &[2, 5, 3],
            &[2, 7, 3],
            &[2, 7, 2],
            None,
            false,
            None,
        ),
        case(
            "causal, L < S",
            &[2, 3, 4],
            &[2, 5, 4],
            &[2, 5, 3],
            None,
            true,
            Some(0.6),
        ),
        case("causal, L > S", &[6, 3], &[4, 3], &[4, 2], None, true, None),
        // Two query blocks (64 + 6 rows), three key blocks (32 + 32 + 11 keys).
        case(
            "causal, odd sizes over blocks",
            &[70, 3],
            &[75, 3],
            &[75, 2],
            None,
            true,
            None,
        ),
        case(
            "no mask, odd sizes over blocks",
            &[70, 2],
            &[37, 2],
            &[37, 3],
            None,
            false,
            Some(0.9),
        ),
        // -inf scattered, a fully masked query (row 4), and the last 40 keys masked for
        // every query: the kernel skips the last key block.
        case(
            "additive mask with -inf, a dead query, masked key blocks",
            &[2, 67, 3],
            &[2, 75, 3],
            &[2, 75, 2],
            Some(mask_where(67, 75, 4, |i, j| {
                i == 4 || j >= 35 || (i + 2 * j) % 7 == 0
            })),
            false,
            None,
        ),
        // Broadcast batch dimensions: q [2, 1, L, E], k [3, S, E], v [S, Ev], a
        // key-padding mask [2, 1, 1, S] (masks the last keys of batch element 1).
        case(
            "broadcast batch and a padding mask",
            &[2, 1, 5, 3],
            &[3, 4, 3],
            &[4, 2],
            Some(Tensor::from_vec(
                vec![
                    0.0,
                    0.0,
                    0.0,
                    0.0,
                    0.0,
                    0.0,
                    f64::NEG_INFINITY,
                    f64::NEG_INFINITY,
                ],
                &[2, 1, 1, 4],
            )),
            false,
            None,
        ),
    ]
}

impl Case {
    fn inputs(&self, seed: u64) -> Vec<Tensor> {
        vec![
            randn(&self.q, seed),
            randn(&self.k, seed + 1),
            randn(&self.v, seed + 2),
        ]
    }

    fn mask(&self) -> Option<AttnMask> {
        self.mask.clone().map(AttnMask::Additive)
    }

    fn fused(&self, t: &[Tensor]) -> Tensor {
        sdpa(
            &t[0],
            &t[1],
            &t[2],
            self.mask().as_ref(),
            self.causal,
            None,
            self.scale,
        )
    }

    fn composed(&self, t: &[Tensor]) -> Tensor {
        attention_with_weights(
            &t[0],
            &t[1],
            &t[2],
            self.mask().as_ref(),
            self.causal,
            None,
            self.scale,
        )
        .0
    }
}

#[test]
fn fused_attention_is_the_one_recorded_op() {
    let q = randn(&[2, 3, 4], 1).requires_grad();
    let (k, v) = (randn(&[2, 5, 4], 2), randn(&[2, 5, 4], 3));
    let out = sdpa(&q, &k, &v, None, true, None, None);
    assert_eq!(out.op_name(), Some("scaled_dot_product_attention"));
}

#[test]
fn fused_attention_gradchecks_through_q_k_v() {
    for (n, case) in cases().iter().enumerate() {
        let inputs = case.inputs(10 * n as u64);
        if let Err(e) = gradcheck(|t: &[Tensor]| case.fused(t), &inputs, &Options::default()) {
            panic!("{}: {e}", case.label);
        }
    }
}

#[test]
fn fused_attention_gradgradchecks_on_small_cases() {
    // Second order goes through the rule's tensor-op form (a graph of the gradient).
    for (n, case) in cases().iter().enumerate() {
        if case.q.iter().product::<usize>() > 64 {
            continue;
        }
        let inputs = case.inputs(100 + 10 * n as u64);
        if let Err(e) = gradgradcheck(|t: &[Tensor]| case.fused(t), &inputs, &Options::default()) {
            panic!("{} (second order): {e}", case.label);
        }
    }
}

#[track_caller]
fn assert_close(label: &str, what: &str, a: &Tensor, b: &Tensor) {
    assert_eq!(a.shape(), b.shape(), "{label}: {what} shapes");
    let (a, b) = (a.to_vec::<f64>(), b.to_vec::<f64>());
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f64, f64::max);
    assert!(
        worst <= 1e-12 && a.iter().all(|x| x.is_finite()),
        "{label}: {what} differs by {worst:e}"
    );
}

#[test]
fn fused_attention_equals_the_composed_path_in_values_and_gradients() {
    for (n, case) in cases().iter().enumerate() {
        let inputs: Vec<Tensor> = case
            .inputs(1000 + 10 * n as u64)
            .into_iter()
            .map(|t| t.requires_grad())
            .collect();
        let fused = case.fused(&inputs);
        let cotangent = randn(fused.shape(), 7);
        let composed = case.composed(&inputs);
        assert_close(case.label, "output", &fused, &composed);
        let gf = fused.mul(&cotangent).sum().backward();
        let gc = composed.mul(&cotangent).sum().backward();
        // The fused op's rule in tensor ops (taken when a graph of the gradient is built).
        let gg = case
            .fused(&inputs)
            .mul(&cotangent)
            .sum()
            .backward_with_graph();
        for (t, name) in inputs.iter().zip(["q", "k", "v"]) {
            assert_close(
                case.label,
                &format!("d{name} (kernel vs composed)"),
                &gf[t],
                &gc[t],
            );
            assert_close(
                case.label,
                &format!("d{name} (kernel vs its graph form)"),
                &gf[t],
                &gg[t],
            );
        }
    }
}

#[test]
fn a_mask_that_requires_grad_gets_its_gradient() {
    // The kernel does not compute the mask's gradient: the rule's tensor-op form does.
    let inputs = vec![
        randn(&[2, 3, 4], 20),
        randn(&[2, 5, 4], 21),
        randn(&[2, 5, 3], 22),
        randn(&[3, 5], 23),
    ];
    let f = |t: &[Tensor]| {
        let m = AttnMask::Additive(t[3].clone());
        sdpa(&t[0], &t[1], &t[2], Some(&m), false, None, None)
    };
    if let Err(e) = gradcheck(f, &inputs, &Options::default()) {
        panic!("mask gradient: {e}");
    }
}

#[test]
fn f32_fused_attention_matches_f64() {
    let case = &cases()[5];
    let inputs = case.inputs(30);
    let want = case.fused(&inputs).to_vec::<f64>();
    let inputs32: Vec<Tensor> = inputs.iter().map(|t| t.to_dtype(DType::F32)).collect();
    let mask32 = case
        .mask
        .as_ref()
        .map(|m| AttnMask::Additive(m.to_dtype(DType::F32)));
    let got = sdpa(
        &inputs32[0],
        &inputs32[1],
        &inputs32[2],
        mask32.as_ref(),
        false,
        None,
        None,
    )
    .to_vec::<f32>();
    for (g, w) in got.iter().zip(&want) {
        assert!((*g as f64 - w).abs() < 1e-5, "{g} vs {w}");
    }
}
