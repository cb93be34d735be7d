//! Attention and transformers: scaled dot-product attention, `MultiheadAttention`, the
//! encoder and decoder layers and the encoder stack, gradient-checked in f64 through
//! every input, mask and weight (second order for attention), their masks, dropout,
//! initialisation and the messages of misuse. Parity with PyTorch is in
//! `torch_parity.rs`.

mod common;

use tapegrad::{DType, Tensor};
use tapegrad_gradcheck::{gradcheck, gradgradcheck, Options};
use tapegrad_nn::functional::{
    attention_with_weights, multi_head_attention, scaled_dot_product_attention as sdpa, MhaWeights,
};
use tapegrad_nn::*;

fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape, DType::F64, seed)
}

#[track_caller]
fn check_both(label: &str, f: impl Fn(&[Tensor]) -> Tensor, inputs: &[Tensor]) {
    if let Err(e) = gradcheck(&f, inputs, &Options::default()) {
        panic!("{label}: {e}");
    }
    if let Err(e) = gradgradcheck(&f, inputs, &Options::default()) {
        panic!("{label} (second order): {e}");
    }
}

/// An additive mask `[rows, cols]` with finite random entries and `-inf` at `masked`.
fn mask_with(rows: usize, cols: usize, masked: &[(usize, usize)], seed: u64) -> Tensor {
    let mut values = randn(&[rows, cols], seed).mul_scalar(0.5).to_vec::<f64>();
    for &(r, c) in masked {
        values[r * cols + c] = f64::NEG_INFINITY;
    }
    Tensor::from_vec(values, &[rows, cols])
}

#[test]
fn sdpa_first_and_second_order() {
    let inputs = vec![
        randn(&[2, 3, 4], 1),
        randn(&[2, 5, 4], 2),
        randn(&[2, 5, 3], 3),
    ];
    check_both(
        "sdpa",
        |t| sdpa(&t[0], &t[1], &t[2], None, false, None, None),
        &inputs,
    );
    check_both(
        "sdpa causal, scale 0.6",
        |t| sdpa(&t[0], &t[1], &t[2], None, true, None, Some(0.6)),
        &inputs,
    );
    // The additive mask is an input too (finite entries: -inf has no finite differences).
    let mut with_mask = inputs.clone();
    with_mask.push(mask_with(3, 5, &[], 4));
    check_both(
        "sdpa with an additive mask",
        |t| {
            let m = AttnMask::Additive(t[3].clone());
            sdpa(&t[0], &t[1], &t[2], Some(&m), false, None, None)
        },
        &with_mask,
    );
    // -inf entries: fixed, the rest differentiated.
    let fixed = AttnMask::Additive(mask_with(3, 5, &[(0, 0), (1, 4), (2, 2)], 5));
    check_both(
        "sdpa with -inf mask entries",
        |t| sdpa(&t[0], &t[1], &t[2], Some(&fixed), false, None, None),
        &inputs,
    );
}

#[test]
fn sdpa_with_dropout_is_a_fixed_function_of_its_seed() {
    let inputs = vec![
        randn(&[2, 3, 4], 6),
        randn(&[2, 4, 4], 7),
        randn(&[2, 4, 2], 8),
    ];
    let drop = Some(AttnDropout { p: 0.4, seed: 9 });
    check_both(
        "sdpa with dropout",
        |t| sdpa(&t[0], &t[1], &t[2], None, false, drop, None),
        &inputs,
    );
    let (_, plain) =
        attention_with_weights(&inputs[0], &inputs[1], &inputs[2], None, false, None, None);
    let (_, dropped) =
        attention_with_weights(&inputs[0], &inputs[1], &inputs[2], None, false, drop, None);
    let (p, d) = (plain.to_vec::<f64>(), dropped.to_vec::<f64>());
    let kept = d.iter().filter(|&&v| v != 0.0).count();
    assert!(
        kept > 0 && kept < d.len(),
        "some weights dropped, some kept"
    );
    for (a, b) in p.iter().zip(&d) {
        assert!(
            *b == 0.0 || (b - a / 0.6).abs() < 1e-12,
            "{b} is neither 0 nor {a} / 0.6"
        );
    }
}

#[test]
fn a_fully_masked_query_gets_zero_weights_and_zero_gradients() {
    let q = randn(&[3, 4], 10).requires_grad();
    let k = randn(&[5, 4], 11).requires_grad();
    let v = randn(&[5, 2], 12).requires_grad();
    let mask = AttnMask::Additive(mask_with(
        3,
        5,
        &[(1, 0), (1, 1), (1, 2), (1, 3), (1, 4)],
        13,
    ));
    let (out, weights) = attention_with_weights(&q, &k, &v, Some(&mask), false, None, None);
    let w = weights.to_vec::<f64>();
    assert!(w[5..10].iter().all(|&x| x == 0.0), "row 1: {:?}", &w[5..10]);
    for row in [0, 2] {
        let sum: f64 = w[row * 5..row * 5 + 5].iter().sum();
        assert!((sum - 1.0).abs() < 1e-12, "row {row} sums to {sum}");
    }
    assert_eq!(&out.to_vec::<f64>()[2..4], &[0.0, 0.0]);
    let grads = out.sum().backward();
    let gq = grads[&q].to_vec::<f64>();
    assert!(gq.iter().all(|g| g.is_finite()));
    assert_eq!(&gq[4..8], &[0.0; 4]);
    assert!(grads[&k].to_vec::<f64>().iter().all(|g| g.is_finite()));
}

#[test]
fn sdpa_saves_the_softmax_output_not_the_scores() {
    // The weights come out of the one attention softmax op, whose rule reads only its
    // output: no separate exponentials or scores are kept for backward.
    let q = randn(&[2, 3, 4], 14).requires_grad();
    let (k, v) = (randn(&[2, 5, 4], 15), randn(&[2, 5, 4], 16));
    let (_, weights) = attention_with_weights(&q, &k, &v, None, true, None, None);
    assert_eq!(weights.op_name(), Some("attention_softmax"));
    // Its gradient agrees with the plain softmax composed of exp, sum and div.
    let (out, _) = attention_with_weights(&q, &k, &v, None, false, None, None);
    let reference = q
        .mul_scalar(0.5)
        .matmul(&k.transpose(-1, -2))
        .softmax(-1)
        .matmul(&v);
    let r = randn(out.shape(), 17);
    let (g1, g2) = (
        out.mul(&r).sum().backward(),
        reference.mul(&r).sum().backward(),
    );
    for (a, b) in g1[&q].to_vec::<f64>().iter().zip(g2[&q].to_vec::<f64>()) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }
}

/// The message of the panic `f` raises.
fn panic_message(f: impl FnOnce()) -> String {
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).expect_err("should panic");
    match err.downcast_ref::<&str>() {
        Some(s) => s.to_string(),
        None => err.downcast_ref::<String>().cloned().unwrap_or_default(),
    }
}

#[test]
fn sdpa_misuse_names_the_problem() {
    let (q, k, v) = (randn(&[3, 4], 0), randn(&[5, 4], 1), randn(&[5, 2], 2));
    let m = panic_message(|| {
        sdpa(&q, &randn(&[5, 3], 3), &v, None, false, None, None);
    });
    assert!(
        m.contains("same last dimension E") && m.contains("[5, 3]"),
        "{m}"
    );
    let m = panic_message(|| {
        let mask = AttnMask::Additive(randn(&[4, 5], 4));
        sdpa(&q, &k, &v, Some(&mask), false, None, None);
    });
    assert!(m.contains("must broadcast to the scores [3, 5]"), "{m}");
    let m = panic_message(|| {
        let mask = AttnMask::causal(3, 5, DType::F64);
        sdpa(&q, &k, &v, Some(&mask), true, None, None);
    });
    assert!(m.contains("either attn_mask or is_causal"), "{m}");
}

/// Elementwise agreement to `tol` (infinite or NaN values must match exactly).
#[track_caller]
fn assert_close(label: &str, a: &Tensor, b: &Tensor, tol: f64) {
    assert_eq!(a.shape(), b.shape(), "{label}: shapes");
    for (i, (x, y)) in a.to_vec::<f64>().iter().zip(b.to_vec::<f64>()).enumerate() {
        let same = x == &y || (x - y).abs() <= tol;
        assert!(same, "{label}[{i}]: {x} vs {y}");
    }
}

/// A `Bool` tensor `[rows, cols]`, `true` at `at`.
fn flags(rows: usize, cols: usize, at: &[(usize, usize)]) -> Tensor {
    let mut v = vec![false; rows * cols];
    for &(r, c) in at {
        v[r * cols + c] = true;
    }
    Tensor::from_vec(v, &[rows, cols])
}

/// The additive mask equal to a `Bool` mask in SDPA's convention (`true` takes part),
/// written out: `0` where true, `-inf` where false.
fn additive_keep(keep: &Tensor) -> Tensor {
    let v: Vec<f64> = keep
        .to_vec::<bool>()
        .into_iter()
        .map(|k| if k { 0.0 } else { f64::NEG_INFINITY })
        .collect();
    Tensor::from_vec(v, keep.shape())
}

#[test]
fn bool_masks_read_as_pytorch_in_sdpa() {
    let inf = f64::INFINITY;
    let keep = Tensor::from_vec(vec![true, false, true], &[3]);
    assert_eq!(
        AttnMask::Bool(keep).to_additive(DType::F64).to_vec::<f64>(),
        vec![0.0, -inf, 0.0]
    );
    let AttnMask::Bool(c) = AttnMask::causal_bool(3, 4) else {
        panic!("causal_bool is a Bool mask")
    };
    assert_eq!(c.dtype(), DType::Bool);
    assert_eq!(
        c.to_vec::<bool>(),
        vec![true, false, false, false, true, true, false, false, true, true, true, false]
    );

    // SDPA: a Bool mask (true = takes part) gives what the equivalent additive mask gives,
    // broadcast over a batch, with one query whose every key is masked (zeros).
    let (q, k, v) = (
        randn(&[2, 3, 4], 60),
        randn(&[2, 5, 4], 61),
        randn(&[2, 5, 3], 62),
    );
    let keep = flags(3, 5, &[(0, 0), (0, 3), (1, 1), (1, 2), (1, 4)]);
    let by_bool = attention_with_weights(
        &q,
        &k,
        &v,
        Some(&AttnMask::Bool(keep.clone())),
        false,
        None,
        None,
    );
    let additive = AttnMask::Additive(additive_keep(&keep));
    let by_add = attention_with_weights(&q, &k, &v, Some(&additive), false, None, None);
    assert_close("sdpa bool output", &by_bool.0, &by_add.0, 1e-12);
    assert_close("sdpa bool weights", &by_bool.1, &by_add.1, 1e-12);
    assert_eq!(
        &by_bool.0.to_vec::<f64>()[6..9],
        &[0.0; 3],
        "all masked row"
    );
    let w = by_bool.1.to_vec::<f64>();
    assert_eq!(
        (w[1], w[2], w[4]),
        (0.0, 0.0, 0.0),
        "masked keys get no weight"
    );
    // causal_bool is is_causal.
    let causal = sdpa(
        &q,
        &k,
        &v,
        Some(&AttnMask::causal_bool(3, 5)),
        false,
        None,
        None,
    );
    assert_close(
        "causal_bool",
        &causal,
        &sdpa(&q, &k, &v, None, true, None, None),
        1e-12,
    );
    // The gradients agree too.
    let (ql, kl, vl) = (common::leaf(&q), common::leaf(&k), common::leaf(&v));
    let grads = |m: &AttnMask| {
        let g = sdpa(&ql, &kl, &vl, Some(m), false, None, None)
            .square()
            .sum()
            .backward();
        [g[&ql].clone(), g[&kl].clone(), g[&vl].clone()]
    };
    for (a, b) in grads(&AttnMask::Bool(keep.clone()))
        .iter()
        .zip(grads(&additive).iter())
    {
        assert_close("sdpa bool gradient", a, b, 1e-12);
    }
    // Merging: Bool and Bool is their `and`; Bool and additive the sum of additive forms.
    let other = flags(3, 5, &[(0, 0), (1, 1), (1, 4), (2, 2)]);
    let AttnMask::Bool(both) = AttnMask::Bool(keep.clone()).merge(&AttnMask::Bool(other.clone()))
    else {
        panic!("Bool and Bool merge to a Bool mask")
    };
    assert_eq!(
        both.to_vec::<bool>(),
        keep.logical_and(&other).to_vec::<bool>()
    );
    let bias = randn(&[3, 5], 63);
    let mixed = AttnMask::Bool(keep.clone()).merge(&AttnMask::Additive(bias.clone()));
    assert_close(
        "merge bool + additive",
        mixed.tensor(),
        &bias.add(&additive_keep(&keep)),
        0.0,
    );
}

#[test]
#[should_panic(expected = "AttnMask::Bool: the mask must be a bool tensor, got f64 [3]")]
fn a_float_tensor_in_a_bool_mask_panics() {
    let _ = AttnMask::Bool(randn(&[3], 0)).to_additive(DType::F64);
}

#[test]
fn bool_masks_read_as_pytorch_in_multihead_attention() {
    // MultiheadAttention: true = masked out, for attn_mask ([L, S] and per head) and
    // key_padding_mask; the same outputs and weights as the additive masks.
    let options = MultiheadAttentionOptions {
        dtype: DType::F64,
        ..Default::default()
    };
    let mha = MultiheadAttention::with_options(4, 2, options, 64);
    let (query, memory) = (randn(&[3, 2, 4], 65), randn(&[5, 2, 4], 66));
    let masked = flags(3, 5, &[(0, 1), (1, 0), (1, 3), (2, 4)]);
    let padded = flags(2, 5, &[(0, 4), (1, 0), (1, 2)]);
    let per_head = Tensor::cat(
        &[
            masked.unsqueeze(0),
            flags(3, 5, &[(0, 0)]).unsqueeze(0),
            flags(3, 5, &[]).unsqueeze(0),
            flags(3, 5, &[(2, 1), (2, 3)]).unsqueeze(0),
        ],
        0,
    );
    // Additive forms: -inf where masked out.
    let add = |t: &Tensor| AttnMask::Additive(additive_keep(&t.logical_not()));
    let cases = [
        ("attn_mask", Some(masked.clone()), None),
        ("key_padding_mask", None, Some(padded.clone())),
        ("both", Some(masked.clone()), Some(padded.clone())),
        (
            "per head and padding",
            Some(per_head.clone()),
            Some(padded.clone()),
        ),
    ];
    for (label, attn, padding) in cases {
        let with = |f: &dyn Fn(&Tensor) -> AttnMask| MhaOptions {
            attn_mask: attn.as_ref().map(f),
            key_padding_mask: padding.as_ref().map(f),
            ..Default::default()
        };
        let (a, wa) = mha.forward_qkv(
            &query,
            &memory,
            &memory,
            &with(&|t| AttnMask::Bool(t.clone())),
        );
        let (b, wb) = mha.forward_qkv(&query, &memory, &memory, &with(&add));
        assert_close(label, &a, &b, 1e-12);
        assert_close(label, &wa.expect("weights"), &wb.expect("weights"), 1e-12);
        // A Bool mask mixed with an additive one.
        let mixed = MhaOptions {
            attn_mask: attn.as_ref().map(add),
            key_padding_mask: padding.as_ref().map(|t| AttnMask::Bool(t.clone())),
            ..Default::default()
        };
        assert_close(
            label,
            &mha.forward_qkv(&query, &memory, &memory, &mixed).0,
            &b,
            1e-12,
        );
    }
    // Batch 0, head average: key 4 is padding, so it gets no weight from any query.
    let padding_only = MhaOptions {
        key_padding_mask: Some(AttnMask::Bool(padded.clone())),
        ..Default::default()
    };
    let w = mha
        .forward_qkv(&query, &memory, &memory, &padding_only)
        .1
        .expect("weights");
    let w = w.to_vec::<f64>();
    assert_eq!((w[4], w[9], w[14]), (0.0, 0.0, 0.0));
}

#[test]
fn bool_masks_in_transformer_layers_equal_additive_masks() {
    let layer = TransformerEncoderLayer::with_options(
        4,
        2,
        f64_layer(true, TransformerActivation::Relu, false),
        67,
    );
    let x = randn(&[3, 2, 4], 68);
    let causal_out = flags(3, 3, &[(0, 1), (0, 2), (1, 2)]);
    let padded = flags(2, 3, &[(1, 2)]);
    let by_bool = layer.forward_masked(
        &x,
        Some(&AttnMask::Bool(causal_out.clone())),
        Some(&AttnMask::Bool(padded.clone())),
        false,
    );
    let by_add = layer.forward_masked(
        &x,
        Some(&AttnMask::causal(3, 3, DType::F64)),
        Some(&AttnMask::Additive(additive_keep(&padded.logical_not()))),
        false,
    );
    assert_close("encoder layer", &by_bool, &by_add, 1e-12);
    let encoder = TransformerEncoder::new(
        4,
        2,
        f64_layer(false, TransformerActivation::Relu, false),
        2,
        None,
        71,
    );
    assert_close(
        "encoder",
        &encoder.forward_masked(&x, Some(&AttnMask::Bool(causal_out.clone())), None, false),
        &encoder.forward_masked(&x, None, None, true),
        1e-12,
    );

    let decoder = TransformerDecoderLayer::with_options(
        4,
        2,
        f64_layer(false, TransformerActivation::Gelu, false),
        69,
    );
    let memory = randn(&[5, 2, 4], 70);
    let memory_padded = flags(2, 5, &[(0, 0), (1, 3), (1, 4)]);
    let bool_masks = DecoderMasks {
        tgt_mask: Some(AttnMask::Bool(causal_out.clone())),
        memory_key_padding_mask: Some(AttnMask::Bool(memory_padded.clone())),
        tgt_key_padding_mask: Some(AttnMask::Bool(padded.clone())),
        ..Default::default()
    };
    let additive_masks = DecoderMasks {
        tgt_mask: Some(AttnMask::causal(3, 3, DType::F64)),
        memory_key_padding_mask: Some(AttnMask::Additive(additive_keep(
            &memory_padded.logical_not(),
        ))),
        tgt_key_padding_mask: Some(AttnMask::Additive(additive_keep(&padded.logical_not()))),
        ..Default::default()
    };
    assert_close(
        "decoder layer",
        &decoder.forward_with_memory(&x, &memory, &bool_masks),
        &decoder.forward_with_memory(&x, &memory, &additive_masks),
        1e-12,
    );
}

fn mha_weights(e: usize, bias: bool, seed: u64) -> Vec<Tensor> {
    let mut w = vec![randn(&[3 * e, e], seed).mul_scalar(0.5)];
    if bias {
        w.push(randn(&[3 * e], seed + 1).mul_scalar(0.1));
    }
    w.push(randn(&[e, e], seed + 2).mul_scalar(0.5));
    if bias {
        w.push(randn(&[e], seed + 3).mul_scalar(0.1));
    }
    w
}

fn weights_of(t: &[Tensor], bias: bool) -> MhaWeights<'_> {
    if bias {
        MhaWeights {
            in_proj_weight: &t[0],
            in_proj_bias: Some(&t[1]),
            out_proj_weight: &t[2],
            out_proj_bias: Some(&t[3]),
        }
    } else {
        MhaWeights {
            in_proj_weight: &t[0],
            in_proj_bias: None,
            out_proj_weight: &t[1],
            out_proj_bias: None,
        }
    }
}

#[test]
fn multi_head_attention_first_and_second_order() {
    // Cross-attention with a key padding mask and an [L, S] mask; output and averaged
    // weights checked together.
    let mut inputs = vec![
        randn(&[3, 2, 4], 20),
        randn(&[4, 2, 4], 21),
        randn(&[4, 2, 4], 22),
    ];
    inputs.extend(mha_weights(4, true, 23));
    let mut padding = vec![0.0f64; 8];
    padding[3] = f64::NEG_INFINITY;
    let options = MhaOptions {
        key_padding_mask: Some(AttnMask::Additive(Tensor::from_vec(padding, &[2, 4]))),
        attn_mask: Some(AttnMask::Additive(mask_with(3, 4, &[(0, 1)], 24))),
        ..Default::default()
    };
    check_both(
        "multi_head_attention",
        |t| {
            let (out, w) = multi_head_attention(
                &t[0],
                &t[1],
                &t[2],
                2,
                weights_of(&t[3..], true),
                &options,
                None,
            );
            Tensor::cat(&[out.reshape(&[-1]), w.expect("weights").reshape(&[-1])], 0)
        },
        &inputs,
    );
    // Unbatched self-attention without biases, causal, per-head weights.
    let mut inputs = vec![randn(&[3, 4], 25)];
    inputs.extend(mha_weights(4, false, 26));
    let options = MhaOptions {
        is_causal: true,
        average_attn_weights: false,
        ..Default::default()
    };
    check_both(
        "multi_head_attention unbatched, causal",
        |t| {
            let (out, w) = multi_head_attention(
                &t[0],
                &t[0],
                &t[0],
                2,
                weights_of(&t[1..], false),
                &options,
                None,
            );
            let w = w.expect("weights");
            assert_eq!(w.shape(), &[2, 3, 3]);
            Tensor::cat(&[out.reshape(&[-1]), w.reshape(&[-1])], 0)
        },
        &inputs,
    );
}

#[test]
fn is_causal_without_a_mask_combines_with_key_padding() {
    let options = MultiheadAttentionOptions {
        dtype: DType::F64,
        ..Default::default()
    };
    let mha = MultiheadAttention::with_options(4, 2, options, 80);
    let x = randn(&[3, 2, 4], 81);
    let ignore = Tensor::from_vec(vec![false, false, true, false, false, false], &[2, 3]);
    let padding = AttnMask::Bool(ignore);
    let hinted = MhaOptions {
        key_padding_mask: Some(padding.clone()),
        is_causal: true,
        ..Default::default()
    };
    let explicit = MhaOptions {
        key_padding_mask: Some(padding),
        attn_mask: Some(AttnMask::causal(3, 3, DType::F64)),
        ..Default::default()
    };
    let (a, wa) = mha.forward_qkv(&x, &x, &x, &hinted);
    let (b, wb) = mha.forward_qkv(&x, &x, &x, &explicit);
    assert_eq!(a.to_vec::<f64>(), b.to_vec::<f64>());
    let wa = wa.expect("weights").to_vec::<f64>();
    assert_eq!(wa, wb.expect("weights").to_vec::<f64>());
    // Batch 0: query 0 sees key 0 only; query 2 sees keys 0 and 1 (key 2 is padding).
    assert_eq!(wa[0], 1.0);
    assert_eq!(&wa[1..3], &[0.0, 0.0]);
    assert_eq!(wa[8], 0.0);
}

fn f64_layer(
    norm_first: bool,
    activation: TransformerActivation,
    batch_first: bool,
) -> TransformerLayerOptions {
    TransformerLayerOptions {
        dim_feedforward: 6,
        dropout: 0.0,
        activation,
        batch_first,
        norm_first,
        dtype: DType::F64,
        ..Default::default()
    }
}

/// Checks `f` through `inputs` and every parameter of `module`.
#[track_caller]
fn check_module(
    label: &str,
    module: &dyn Module,
    inputs: &[(&str, &Tensor)],
    f: &dyn Fn() -> Tensor,
) {
    let params = module.named_params();
    let mut wrt: Vec<(&str, &Tensor)> = params
        .iter()
        .map(|(n, p)| (n.as_str(), p.tensor()))
        .collect();
    wrt.extend_from_slice(inputs);
    common::gradcheck(label, f, &wrt);
}

/// Moves every parameter off its initial value (norms start at 1 and 0, biases at 0).
fn perturb(module: &dyn Module, seed: u64) {
    for (i, (_, p)) in module.named_params().iter().enumerate() {
        p.set(
            &p.tensor()
                .add(&randn(p.shape(), seed + i as u64).mul_scalar(0.1))
                .detach(),
        );
    }
}

#[test]
fn multihead_attention_module_gradcheck() {
    let options = MultiheadAttentionOptions {
        batch_first: true,
        dtype: DType::F64,
        ..Default::default()
    };
    let mha = MultiheadAttention::with_options(4, 2, options, 30);
    perturb(&mha, 31);
    let x = common::leaf(&randn(&[2, 3, 4], 32));
    check_module("MultiheadAttention", &mha, &[("input", &x)], &|| {
        mha.forward(&x)
    });
    common::gradgradcheck(
        "MultiheadAttention",
        &|| mha.forward(&x),
        &[
            ("input", &x),
            ("in_proj_weight", mha.in_proj_weight.tensor()),
        ],
    );
}

#[test]
fn encoder_layers_gradcheck() {
    for (norm_first, activation, batch_first) in [
        (false, TransformerActivation::Relu, false),
        (true, TransformerActivation::Gelu, true),
    ] {
        let layer = TransformerEncoderLayer::with_options(
            4,
            2,
            f64_layer(norm_first, activation, batch_first),
            40,
        );
        perturb(&layer, 41);
        // [L, N, E] or [N, L, E], with N = 2 and L = 3 either way.
        let shape = if batch_first { [2, 3, 4] } else { [3, 2, 4] };
        let x = common::leaf(&randn(&shape, 42));
        let padding = AttnMask::Bool(Tensor::from_vec(
            vec![false, false, true, false, false, false],
            &[2, 3],
        ));
        let label = format!("TransformerEncoderLayer norm_first={norm_first} {activation:?}");
        check_module(&label, &layer, &[("input", &x)], &|| {
            layer.forward_masked(&x, None, Some(&padding), false)
        });
    }
}

#[test]
fn decoder_layers_gradcheck() {
    for (norm_first, activation) in [
        (false, TransformerActivation::Relu),
        (true, TransformerActivation::Gelu),
    ] {
        let layer = TransformerDecoderLayer::with_options(
            4,
            2,
            f64_layer(norm_first, activation, false),
            50,
        );
        perturb(&layer, 51);
        let tgt = common::leaf(&randn(&[3, 2, 4], 52));
        let memory = common::leaf(&randn(&[4, 2, 4], 53));
        let masks = DecoderMasks {
            tgt_is_causal: true,
            ..Default::default()
        };
        let label = format!("TransformerDecoderLayer norm_first={norm_first} {activation:?}");
        check_module(
            &label,
            &layer,
            &[("tgt", &tgt), ("memory", &memory)],
            &|| layer.forward_with_memory(&tgt, &memory, &masks),
        );
    }
}

#[test]
fn encoder_stack_gradcheck_and_independent_layers() {
    let norm = LayerNorm::with_options(&[4], 1e-5, true, DType::F64);
    let stack = TransformerEncoder::new(
        4,
        2,
        f64_layer(false, TransformerActivation::Relu, false),
        2,
        Some(norm),
        60,
    );
    // Equal initial weights (PyTorch copies one layer), separate parameters.
    let p0 = stack.layers[0].self_attn.in_proj_weight.clone();
    let p1 = stack.layers[1].self_attn.in_proj_weight.clone();
    assert_eq!(p0.to_vec::<f64>(), p1.to_vec::<f64>());
    assert_ne!(p0.id(), p1.id());
    p0.set(&p0.tensor().zeros_like());
    assert_ne!(
        p1.to_vec::<f64>(),
        p0.to_vec::<f64>(),
        "setting one layer leaves the other"
    );
    perturb(&stack, 61);
    let x = common::leaf(&randn(&[3, 2, 4], 62));
    check_module("TransformerEncoder", &stack, &[("input", &x)], &|| {
        stack.forward(&x)
    });
    assert_eq!(stack.named_params().len(), 2 * 12 + 2);
}

#[test]
fn initialisation_as_pytorch() {
    let mha = MultiheadAttention::new(8, 2, 0);
    let bound = (6.0f64 / (8.0 + 24.0)).sqrt();
    let w = mha.in_proj_weight.to_vec::<f32>();
    assert!(w.iter().all(|&x| (x as f64).abs() <= bound));
    assert!(
        w.iter().any(|&x| (x as f64).abs() > 0.8 * bound),
        "uses the whole range"
    );
    assert!(mha
        .in_proj_bias
        .as_ref()
        .unwrap()
        .to_vec::<f32>()
        .iter()
        .all(|&b| b == 0.0));
    let out_bias = mha.out_proj.bias.as_ref().unwrap();
    assert!(out_bias.to_vec::<f32>().iter().all(|&b| b == 0.0));
    let layer = TransformerEncoderLayer::new(8, 2, 0);
    assert_eq!(layer.linear1().weight.shape(), &[2048, 8]);
    let names: Vec<String> = layer.named_params().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "self_attn.in_proj_weight",
            "self_attn.in_proj_bias",
            "self_attn.out_proj.weight",
            "self_attn.out_proj.bias",
            "linear1.weight",
            "linear1.bias",
            "linear2.weight",
            "linear2.bias",
            "norm1.weight",
            "norm1.bias",
            "norm2.weight",
            "norm2.bias",
        ]
    );
    let no_bias = TransformerLayerOptions {
        bias: false,
        dim_feedforward: 4,
        ..Default::default()
    };
    let dec = TransformerDecoderLayer::with_options(4, 2, no_bias, 0);
    assert!(dec
        .named_params()
        .iter()
        .all(|(n, _)| n.ends_with("weight")));
    assert_eq!(dec.named_params().len(), 9);
}

#[test]
fn dropout_only_in_training_with_its_own_stream() {
    let options = TransformerLayerOptions {
        dim_feedforward: 8,
        dropout: 0.5,
        ..Default::default()
    };
    let mut layer = TransformerEncoderLayer::with_options(4, 2, options, 70);
    let x = Tensor::randn(&[3, 2, 4], DType::F32, 71);
    let (a, b) = (
        layer.forward(&x).to_vec::<f32>(),
        layer.forward(&x).to_vec::<f32>(),
    );
    assert_ne!(a, b, "successive training calls draw new masks");
    let calls: Vec<u64> = layer
        .named_counters()
        .iter()
        .map(|(_, c)| c.load(std::sync::atomic::Ordering::Relaxed))
        .collect();
    assert_eq!(calls, vec![2, 2, 2, 2], "{:?}", layer.named_counters());
    layer.eval();
    let (c, d) = (
        layer.forward(&x).to_vec::<f32>(),
        layer.forward(&x).to_vec::<f32>(),
    );
    assert_eq!(c, d);
    let mut twin = TransformerEncoderLayer::with_options(4, 2, options, 70);
    twin.eval();
    assert_eq!(
        twin.forward(&x).to_vec::<f32>(),
        c,
        "same seed, same weights"
    );
}

#[test]
#[should_panic(expected = "num_heads = 3 must divide embed_dim = 8")]
fn heads_must_divide_the_width() {
    MultiheadAttention::new(8, 3, 0);
}

#[test]
#[should_panic(expected = "TransformerDecoderLayer: forward needs the memory")]
fn decoder_forward_without_memory_is_refused() {
    let options = TransformerLayerOptions {
        dim_feedforward: 4,
        ..Default::default()
    };
    TransformerDecoderLayer::with_options(4, 2, options, 0)
        .forward(&Tensor::zeros(&[1, 1, 4], DType::F32));
}

#[test]
fn a_causal_transformer_learns_the_embedded_text() {
    // The pieces together, tiny: byte tokens of the embedded text, an embedding with
    // learned positions, one causal encoder layer and a linear head, trained by plain SGD
    // for a few steps; the held-out loss must fall well below the uniform ln 256.
    use tapegrad_data::{embedded_text, split_held_out, ByteTokenizer, Dataset, TextDataset};
    use tapegrad_nn::loss::{cross_entropy, CrossEntropyOptions};

    let tokens = ByteTokenizer.encode(&embedded_text()[..40_000]);
    let (train, held_out) = split_held_out(&tokens, 0.1);
    let (seq, width, vocab) = (32, 32, ByteTokenizer::VOCAB_SIZE);
    let train = TextDataset::new(train.to_vec(), vocab, seq);
    let held_out = TextDataset::new(held_out.to_vec(), vocab, seq);

    let embed = Embedding::new(vocab, width, 1);
    let positions = LearnedPositionalEmbedding::new(seq, width, 2);
    let options = TransformerLayerOptions {
        dim_feedforward: 64,
        dropout: 0.0,
        batch_first: true,
        norm_first: true,
        ..Default::default()
    };
    let layer = TransformerEncoderLayer::with_options(width, 4, options, 3);
    let head = Linear::new(width, vocab, 4);
    let modules: [&dyn Module; 4] = [&embed, &positions, &layer, &head];
    let loss_of = |x: &Tensor, y: &Tensor| {
        let h = positions.forward(&embed.forward(x));
        let h = layer.forward_masked(&h, None, None, true);
        let logits = head.forward(&h).reshape(&[-1, vocab as isize]);
        cross_entropy(&logits, &y.reshape(&[-1]), &CrossEntropyOptions::default())
    };
    let held_out_loss = || {
        let (x, y) = held_out.batch(&(0..held_out.len()).collect::<Vec<_>>());
        tapegrad::no_grad(|| loss_of(&x, &y).item())
    };
    let before = held_out_loss();
    assert!(
        (before - 256f64.ln()).abs() < 0.5,
        "starts near uniform: {before}"
    );
    for step in 0..60 {
        let indices: Vec<usize> = (0..16).map(|i| (step * 16 + i) * 7 % train.len()).collect();
        let (x, y) = train.batch(&indices);
        let grads = loss_of(&x, &y).backward();
        for m in modules {
            for p in m.params() {
                if let Some(g) = grads.get(&p) {
                    p.set(&p.tensor().sub(&g.mul_scalar(0.5)).detach());
                }
            }
        }
    }
    let after = held_out_loss();
    eprintln!("held-out loss {before:.3} -> {after:.3} nats per byte");
    assert!(after < before - 1.5, "held-out loss {before} -> {after}");
}
