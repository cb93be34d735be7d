//! Parity with PyTorch: each layer loads a PyTorch `state_dict` (saved as safetensors
//! under PyTorch's names) with `io::load` unchanged, and must reproduce PyTorch's
//! outputs and the gradients of a scalar loss with respect to its inputs and parameters.
//!
//! The fixtures in `tests/fixtures/` were written by `tests/fixtures/make_fixtures.py`
//! with torch 2.15.0 (CPU), in float64; the loss is `sum_k sum(output_k * cot.output_k)`
//! with the cotangents stored beside the outputs. CI reads the committed files only.

use std::collections::HashMap;
use std::path::PathBuf;

use safetensors::tensor::{Dtype, SafeTensors};
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

/// Every tensor of `NAME.data.safetensors`, as f64 tensors.
fn read_data(case: &str) -> HashMap<String, Tensor> {
    let path = fixture(&format!("{case}.data.safetensors"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = SafeTensors::deserialize(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            assert_eq!(view.dtype(), Dtype::F64, "{case}: {name} is not f64");
            let values: Vec<f64> = view
                .data()
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
                .collect();
            (name, Tensor::from_vec(values, view.shape()))
        })
        .collect()
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
    let inputs: HashMap<String, Tensor> = ["input", "h0", "c0"]
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
