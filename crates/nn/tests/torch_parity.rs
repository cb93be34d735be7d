//! Parity with PyTorch: each layer loads a PyTorch `state_dict` (saved as safetensors
//! under PyTorch's names) with `io::load` unchanged, and must reproduce PyTorch's
//! outputs and the gradients of a scalar loss with respect to its inputs and parameters.
//!
//! The fixtures in `tests/fixtures/` were written by `tests/fixtures/make_fixtures.py`
//! with torch 2.15.0 (CPU), in float64; the loss is `sum_k sum(output_k * cot.output_k)`
//! with the cotangents stored beside the outputs. CI reads the committed files only.

use std::collections::HashMap;
use std::path::PathBuf;

use tapegrad::{DType, Tensor};
use tapegrad_nn::*;

/// Agreement required of every value and gradient: `|a - b| <= TOL (1 + |b|)`. Both
/// sides compute in f64; what is left is the order of floating-point sums.
const TOL: f64 = 1e-10;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Every tensor of `NAME.data.safetensors`: f64 values, and I64 indices.
fn read_data(case: &str) -> HashMap<String, Tensor> {
    let path = fixture(&format!("{case}.data.safetensors"));
    let tensors = io::load_tensors(&path).unwrap_or_else(|e| panic!("{case}: {e}"));
    for (name, t) in &tensors {
        assert!(
            matches!(t.dtype(), DType::F64 | DType::I64),
            "{case}: {name} is {}, not f64 or i64",
            t.dtype()
        );
    }
    tensors.into_iter().collect()
}

#[track_caller]
fn assert_close(case: &str, what: &str, got: &Tensor, want: &Tensor) {
    assert_eq!(got.shape(), want.shape(), "{case}: {what}: shape");
    for (k, (a, b)) in got
        .to_vec::<f64>()
        .iter()
        .zip(want.to_vec::<f64>())
        .enumerate()
    {
        assert!(
            (a - b).abs() <= TOL * (1.0 + b.abs()),
            "{case}: {what}[{k}]: tapegrad {a} vs PyTorch {b}"
        );
    }
}

/// The names under which the fixtures store inputs (the rest are outputs, cotangents and
/// gradients); an input with a stored gradient is made a leaf that requires grad.
const INPUT_NAMES: [&str; 11] = [
    "input",
    "h0",
    "c0",
    "query",
    "key",
    "value",
    "memory",
    "attn_mask",
    "key_padding_mask",
    "tgt_mask",
    "memory_key_padding_mask",
];

/// Loads the case's weights into `module` (if the case has any), runs `run` on the
/// stored inputs (as leaves), and compares every output and every gradient.
fn check(
    case: &str,
    module: &dyn Module,
    run: impl Fn(&HashMap<String, Tensor>) -> Vec<(&'static str, Tensor)>,
) {
    let weights = fixture(&format!("{case}.weights.safetensors"));
    if weights.exists() {
        io::load(module, &weights).unwrap_or_else(|e| panic!("{case}: {e}"));
    } else {
        assert!(module.named_params().is_empty(), "{case}: no weights file");
    }
    let data = read_data(case);
    let inputs: HashMap<String, Tensor> = INPUT_NAMES
        .into_iter()
        .filter_map(|n| {
            let t = data.get(n)?.clone();
            let t = if data.contains_key(&format!("grad.{n}")) {
                t.requires_grad()
            } else {
                t
            };
            Some((n.to_string(), t))
        })
        .collect();
    let outputs = run(&inputs);
    assert!(!outputs.is_empty());
    let mut loss = Tensor::zeros(&[], DType::F64);
    for (name, out) in &outputs {
        assert_close(case, name, out, &data[*name]);
        loss = loss.add(&out.mul(&data[&format!("cot.{name}")]).sum());
    }
    let grads = loss.backward();
    let mut checked = 0;
    for (name, t) in &inputs {
        if let Some(want) = data.get(&format!("grad.{name}")) {
            assert_close(case, &format!("grad {name}"), &grads[t], want);
            checked += 1;
        }
    }
    for (name, p) in module.named_params() {
        let want = &data[&format!("grad.{name}")];
        assert_close(case, &format!("grad {name}"), &grads[&p], want);
        checked += 1;
    }
    let expected = data.keys().filter(|k| k.starts_with("grad.")).count();
    assert_eq!(
        checked, expected,
        "{case}: every stored gradient is compared"
    );
}

fn f64_seq(
    num_layers: usize,
    bidirectional: bool,
    batch_first: bool,
    bias: bool,
) -> RecurrentOptions {
    RecurrentOptions {
        num_layers,
        bidirectional,
        batch_first,
        bias,
        dtype: DType::F64,
        ..Default::default()
    }
}

#[test]
fn rnn_cells() {
    for (case, nl) in [
        ("rnn_cell_tanh", RnnNonlinearity::Tanh),
        ("rnn_cell_relu", RnnNonlinearity::Relu),
    ] {
        let cell = RnnCell::with_options(3, 4, true, nl, DType::F64, 0);
        check(case, &cell, |i| {
            vec![("h_n", cell.forward_with_state(&i["input"], Some(&i["h0"])))]
        });
    }
}

#[test]
fn lstm_cell() {
    let cell = LstmCell::with_options(3, 4, true, DType::F64, 0);
    check("lstm_cell", &cell, |i| {
        let (h, c) = cell.forward_with_state(&i["input"], Some((&i["h0"], &i["c0"])));
        vec![("h_n", h), ("c_n", c)]
    });
}

#[test]
fn gru_cell() {
    let cell = GruCell::with_options(3, 4, true, DType::F64, 0);
    check("gru_cell", &cell, |i| {
        vec![("h_n", cell.forward_with_state(&i["input"], Some(&i["h0"])))]
    });
}

#[test]
fn rnn() {
    let rnn = Rnn::with_options(
        3,
        4,
        RnnNonlinearity::Tanh,
        f64_seq(2, true, false, true),
        0,
    );
    check("rnn", &rnn, |i| {
        let (out, h) = rnn.forward_with_state(&i["input"], Some(&i["h0"]));
        vec![("output", out), ("h_n", h)]
    });
    let relu = Rnn::with_options(
        3,
        4,
        RnnNonlinearity::Relu,
        f64_seq(1, false, true, false),
        0,
    );
    check("rnn_relu_batch_first", &relu, |i| {
        let (out, h) = relu.forward_with_state(&i["input"], None);
        vec![("output", out), ("h_n", h)]
    });
}

#[test]
fn lstm() {
    let lstm = Lstm::with_options(3, 4, f64_seq(2, true, false, true), 0);
    check("lstm", &lstm, |i| {
        let (out, (h, c)) = lstm.forward_with_state(&i["input"], Some((&i["h0"], &i["c0"])));
        vec![("output", out), ("h_n", h), ("c_n", c)]
    });
    let bf = Lstm::with_options(3, 4, f64_seq(1, false, true, true), 0);
    check("lstm_batch_first", &bf, |i| {
        let (out, (h, c)) = bf.forward_with_state(&i["input"], None);
        vec![("output", out), ("h_n", h), ("c_n", c)]
    });
}

#[test]
fn gru() {
    let gru = Gru::with_options(3, 4, f64_seq(2, true, false, true), 0);
    check("gru", &gru, |i| {
        let (out, h) = gru.forward_with_state(&i["input"], Some(&i["h0"]));
        vec![("output", out), ("h_n", h)]
    });
    let bf = Gru::with_options(3, 4, f64_seq(1, false, true, false), 0);
    check("gru_batch_first", &bf, |i| {
        let (out, h) = bf.forward_with_state(&i["input"], None);
        vec![("output", out), ("h_n", h)]
    });
}

#[test]
fn group_norm() {
    let gn = GroupNorm::with_options(2, 4, 1e-5, true, DType::F64);
    check("group_norm", &gn, |i| {
        vec![("output", gn.forward(&i["input"]))]
    });
}

#[test]
fn rms_norm() {
    let rms = RmsNorm::with_options(&[3, 4], None, true, DType::F64);
    check("rms_norm", &rms, |i| {
        vec![("output", rms.forward(&i["input"]))]
    });
    let plain = RmsNorm::with_options(&[4], Some(1e-3), false, DType::F64);
    check("rms_norm_eps", &plain, |i| {
        vec![("output", plain.forward(&i["input"]))]
    });
}

#[test]
fn embedding_with_padding_idx() {
    let emb = Embedding::with_dtype(6, 3, DType::F64, 0).with_padding_idx(1);
    check("embedding_padding", &emb, |i| {
        vec![("output", emb.forward(&i["input"]))]
    });
}

#[test]
fn conv1d() {
    let options = Conv1dOptions {
        stride: 2,
        padding: 1,
        groups: 2,
        dtype: DType::F64,
        ..Default::default()
    };
    let conv = Conv1d::with_options(4, 6, 3, options, 0);
    check("conv1d", &conv, |i| {
        vec![("output", conv.forward(&i["input"]))]
    });
    let dilated = Conv1dOptions {
        dilation: 2,
        bias: false,
        dtype: DType::F64,
        ..Default::default()
    };
    let conv = Conv1d::with_options(2, 3, 2, dilated, 0);
    check("conv1d_dilated", &conv, |i| {
        vec![("output", conv.forward(&i["input"]))]
    });
}

#[test]
fn upsample_nearest() {
    for (case, up) in [
        ("upsample_2d_scale2", Upsample::scale_factor(2.0)),
        ("upsample_2d_scale1_5", Upsample::scale_factor(1.5)),
        ("upsample_2d_size", Upsample::size(&[5, 3])),
        ("upsample_1d_scale3", Upsample::scale_factor(3.0)),
    ] {
        check(case, &up, |i| vec![("output", up.forward(&i["input"]))]);
    }
}

#[test]
fn positional_embeddings() {
    let learned = LearnedPositionalEmbedding::with_dtype(8, 4, DType::F64, 0);
    check("learned_positional", &learned, |i| {
        vec![("output", learned.forward(&i["input"]))]
    });
    let sinusoidal = SinusoidalPositionalEmbedding::new(16, 6, DType::F64);
    check("sinusoidal_positional", &sinusoidal, |i| {
        vec![("output", sinusoidal.forward(&i["input"]))]
    });
}

/// An additive mask from the stored inputs, if the case has one under `name`.
fn mask(i: &HashMap<String, Tensor>, name: &str) -> Option<AttnMask> {
    i.get(name).map(|t| AttnMask::Additive(t.clone()))
}

#[test]
fn scaled_dot_product_attention() {
    use tapegrad_nn::functional::scaled_dot_product_attention as sdpa;
    let none = Sequential::new();
    check("sdpa", &none, |i| {
        vec![(
            "output",
            sdpa(&i["query"], &i["key"], &i["value"], None, false, None, None),
        )]
    });
    check("sdpa_causal", &none, |i| {
        vec![(
            "output",
            sdpa(&i["query"], &i["key"], &i["value"], None, true, None, None),
        )]
    });
    check("sdpa_mask", &none, |i| {
        let m = mask(i, "attn_mask");
        let out = sdpa(
            &i["query"],
            &i["key"],
            &i["value"],
            m.as_ref(),
            false,
            None,
            Some(0.7),
        );
        vec![("output", out)]
    });
}

fn f64_attention(bias: bool, batch_first: bool) -> MultiheadAttentionOptions {
    MultiheadAttentionOptions {
        bias,
        batch_first,
        dtype: DType::F64,
        ..Default::default()
    }
}

#[test]
fn multihead_attention() {
    let mha = MultiheadAttention::with_options(6, 2, f64_attention(true, false), 0);
    check("mha", &mha, |i| {
        let options = MhaOptions {
            key_padding_mask: mask(i, "key_padding_mask"),
            attn_mask: mask(i, "attn_mask"),
            ..Default::default()
        };
        let (out, weights) = mha.forward_qkv(&i["query"], &i["key"], &i["value"], &options);
        vec![("output", out), ("weights", weights.expect("need_weights"))]
    });
    let bf = MultiheadAttention::with_options(6, 3, f64_attention(false, true), 0);
    check("mha_batch_first", &bf, |i| {
        let options = MhaOptions {
            attn_mask: mask(i, "attn_mask"),
            average_attn_weights: false,
            ..Default::default()
        };
        let x = &i["input"];
        let (out, weights) = bf.forward_qkv(x, x, x, &options);
        vec![("output", out), ("weights", weights.expect("need_weights"))]
    });
}

fn f64_layer(dim_feedforward: usize) -> TransformerLayerOptions {
    TransformerLayerOptions {
        dim_feedforward,
        dropout: 0.0,
        dtype: DType::F64,
        ..Default::default()
    }
}

#[test]
fn transformer_encoder_layers() {
    let post = TransformerEncoderLayer::with_options(6, 2, f64_layer(8), 0);
    check("encoder_layer", &post, |i| {
        let padding = mask(i, "key_padding_mask");
        vec![(
            "output",
            post.forward_masked(&i["input"], None, padding.as_ref(), false),
        )]
    });
    let options = TransformerLayerOptions {
        activation: TransformerActivation::Gelu,
        layer_norm_eps: 1e-6,
        batch_first: true,
        norm_first: true,
        ..f64_layer(10)
    };
    let pre = TransformerEncoderLayer::with_options(6, 3, options, 0);
    check("encoder_layer_norm_first_gelu", &pre, |i| {
        let causal = mask(i, "attn_mask");
        vec![(
            "output",
            pre.forward_masked(&i["input"], causal.as_ref(), None, true),
        )]
    });
}

#[test]
fn transformer_decoder_layers() {
    let post = TransformerDecoderLayer::with_options(6, 2, f64_layer(8), 0);
    check("decoder_layer", &post, |i| {
        let masks = DecoderMasks {
            tgt_mask: mask(i, "tgt_mask"),
            memory_key_padding_mask: mask(i, "memory_key_padding_mask"),
            ..Default::default()
        };
        vec![(
            "output",
            post.forward_with_memory(&i["input"], &i["memory"], &masks),
        )]
    });
    let options = TransformerLayerOptions {
        activation: TransformerActivation::Gelu,
        batch_first: true,
        norm_first: true,
        bias: false,
        ..f64_layer(8)
    };
    let pre = TransformerDecoderLayer::with_options(6, 2, options, 0);
    check("decoder_layer_norm_first_gelu", &pre, |i| {
        let out = pre.forward_with_memory(&i["input"], &i["memory"], &DecoderMasks::default());
        vec![("output", out)]
    });
}

#[test]
fn transformer_encoder_stack() {
    let norm = LayerNorm::with_options(&[6], 1e-5, true, DType::F64);
    let stack = TransformerEncoder::new(6, 2, f64_layer(8), 2, Some(norm), 0);
    check("transformer_encoder", &stack, |i| {
        vec![("output", stack.forward(&i["input"]))]
    });
}

#[test]
fn conv_transpose2d() {
    let options = ConvTranspose2dOptions {
        stride: [2, 1],
        padding: [1, 0],
        output_padding: [1, 0],
        groups: 2,
        dilation: [1, 2],
        dtype: DType::F64,
        ..Default::default()
    };
    let ct = ConvTranspose2d::with_options(4, 6, [3, 2], options, 0);
    check("conv_transpose2d", &ct, |i| {
        vec![("output", ct.forward(&i["input"]))]
    });
    let plain = ConvTranspose2dOptions {
        bias: false,
        dtype: DType::F64,
        ..Default::default()
    };
    let ct = ConvTranspose2d::with_options(3, 2, [3, 3], plain, 0);
    check("conv_transpose2d_plain", &ct, |i| {
        vec![("output", ct.forward(&i["input"]))]
    });
    let dilated = ConvTranspose2dOptions {
        stride: [1, 2],
        padding: [1, 0],
        output_padding: [2, 1],
        dilation: [3, 3],
        dtype: DType::F64,
        ..Default::default()
    };
    let ct = ConvTranspose2d::with_options(2, 3, [2, 2], dilated, 0);
    check("conv_transpose2d_dilated", &ct, |i| {
        vec![("output", ct.forward(&i["input"]))]
    });
}

#[test]
fn upsample_linear_modes() {
    use tapegrad::InterpolateMode::{Bilinear, Linear};
    for (case, up) in [
        (
            "upsample_bilinear_size",
            Upsample::size(&[5, 3]).with_mode(Bilinear, false),
        ),
        (
            "upsample_bilinear_align",
            Upsample::scale_factor(1.5).with_mode(Bilinear, true),
        ),
        (
            "upsample_bilinear_scale",
            Upsample {
                target: UpsampleTarget::ScaleFactor(vec![2.5, 0.6]),
                ..Upsample::scale_factor(1.0).with_mode(Bilinear, false)
            },
        ),
        (
            "upsample_linear",
            Upsample::scale_factor(2.5).with_mode(Linear, false),
        ),
        (
            "upsample_linear_align",
            Upsample::size(&[7]).with_mode(Linear, true),
        ),
    ] {
        check(case, &up, |i| vec![("output", up.forward(&i["input"]))]);
    }
}

#[test]
fn im2col_and_normalisation_functions() {
    // Functions without parameters: any parameter-free module stands in for the layer.
    let none = Upsample::scale_factor(1.0);
    check("unfold", &none, |i| {
        let y = functional::unfold(&i["input"], [2, 3], [1, 2], [1, 1], [2, 1]);
        vec![("output", y)]
    });
    check("fold", &none, |i| {
        let y = functional::fold(&i["input"], [4, 5], [2, 2], [2, 1], [1, 0], [1, 1]);
        vec![("output", y)]
    });
    check("normalize", &none, |i| {
        vec![("output", i["input"].normalize(3.0, 1, 1e-12))]
    });
    check("cosine_similarity", &none, |i| {
        vec![("output", i["input"].cosine_similarity(&i["key"], 1, 1e-8))]
    });
}
