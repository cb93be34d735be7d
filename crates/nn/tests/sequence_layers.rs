//! The sequence-model layers (recurrent cells and networks, normalisations, embeddings,
//! `Conv1d`, `ConvTranspose2d`, `Upsample`): gradients checked in f64 with the gradcheck crate through
//! every input and weight (second order for the cells), long sequences, modes and the
//! messages of misuse. Parity with PyTorch is in `torch_parity.rs`.

use tapegrad::{DType, Tensor};
use tapegrad_gradcheck::{gradcheck, gradgradcheck, Options};
use tapegrad_nn::functional::{gru_cell, lstm_cell, rnn_cell};
use tapegrad_nn::*;

fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape, DType::F64, seed)
}

/// The values of a module's parameters, in order (the weights a functional form takes).
fn param_values(m: &dyn Module) -> Vec<Tensor> {
    m.params().iter().map(|p| p.tensor().detach()).collect()
}

/// All outputs flattened into one vector, so one check covers them all.
fn joined(outputs: &[&Tensor]) -> Tensor {
    let flat: Vec<Tensor> = outputs.iter().map(|t| t.reshape(&[-1])).collect();
    Tensor::cat(&flat, 0)
}

#[track_caller]
fn check_first(label: &str, f: impl Fn(&[Tensor]) -> Tensor, inputs: &[Tensor], options: &Options) {
    if let Err(e) = gradcheck(f, inputs, options) {
        panic!("{label}: {e}");
    }
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

#[test]
fn rnn_cells_first_and_second_order() {
    for (nl, bias) in [
        (RnnNonlinearity::Tanh, true),
        (RnnNonlinearity::Relu, true),
        (RnnNonlinearity::Tanh, false),
    ] {
        let cell = RnnCell::with_options(3, 2, bias, nl, DType::F64, 1);
        let mut inputs = vec![randn(&[2, 3], 2), randn(&[2, 2], 3)];
        inputs.extend(param_values(&cell));
        check_both(
            &format!("RnnCell {nl:?} bias={bias}"),
            |t| rnn_cell(&t[0], Some(&t[1]), CellWeights::from_slice(&t[2..]), nl),
            &inputs,
        );
    }
}

#[test]
fn lstm_cell_first_and_second_order() {
    let cell = LstmCell::with_options(3, 2, true, DType::F64, 4);
    let mut inputs = vec![randn(&[2, 3], 5), randn(&[2, 2], 6), randn(&[2, 2], 7)];
    inputs.extend(param_values(&cell));
    check_both(
        "LstmCell",
        |t| {
            let (h, c) = lstm_cell(
                &t[0],
                Some((&t[1], &t[2])),
                CellWeights::from_slice(&t[3..]),
            );
            joined(&[&h, &c])
        },
        &inputs,
    );
}

#[test]
fn gru_cell_first_and_second_order() {
    for bias in [true, false] {
        let cell = GruCell::with_options(3, 2, bias, DType::F64, 8);
        let mut inputs = vec![randn(&[2, 3], 9), randn(&[2, 2], 10)];
        inputs.extend(param_values(&cell));
        check_both(
            &format!("GruCell bias={bias}"),
            |t| gru_cell(&t[0], Some(&t[1]), CellWeights::from_slice(&t[2..])),
            &inputs,
        );
    }
}

#[test]
fn cells_without_state_and_unbatched() {
    let cell = LstmCell::with_options(3, 2, true, DType::F64, 11);
    let x = randn(&[3], 12);
    let (h, c) = cell.forward_with_state(&x, None);
    assert_eq!((h.shape(), c.shape()), (&[2][..], &[2][..]));
    let zeros = Tensor::zeros(&[2], DType::F64);
    let (h2, _) = cell.forward_with_state(&x, Some((&zeros, &zeros)));
    assert_eq!(h.to_vec::<f64>(), h2.to_vec::<f64>());
    let mut inputs = vec![x];
    inputs.extend(param_values(&cell));
    check_first(
        "LstmCell unbatched, zero state",
        |t| lstm_cell(&t[0], None, CellWeights::from_slice(&t[1..])).1,
        &inputs,
        &Options::default(),
    );
}

/// Options for a small f64 sequence layer.
fn seq_options(
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

/// A sequence of 3 steps, batch 2, input 2, in the layer's layout.
fn input_shape(batch_first: bool) -> [usize; 3] {
    if batch_first {
        [2, 3, 2]
    } else {
        [3, 2, 2]
    }
}

/// The configurations each sequence layer is checked in: (layers, bidirectional,
/// batch_first, bias).
const CONFIGS: [(usize, bool, bool, bool); 3] = [
    (2, true, false, true),
    (1, false, true, false),
    (2, false, false, true),
];

#[test]
fn rnn_gradcheck_through_inputs_states_and_weights() {
    for (i, &(layers, bidir, bf, bias)) in CONFIGS.iter().enumerate() {
        for nl in [RnnNonlinearity::Tanh, RnnNonlinearity::Relu] {
            let rnn = Rnn::with_options(2, 3, nl, seq_options(layers, bidir, bf, bias), i as u64);
            let d = if bidir { 2 } else { 1 };
            let mut inputs = vec![
                randn(&input_shape(bf), 20 + i as u64),
                randn(&[d * layers, 2, 3], 30),
            ];
            inputs.extend(param_values(&rnn));
            check_first(
                &format!("Rnn {nl:?} {:?}", CONFIGS[i]),
                |t| {
                    let (out, h) = rnn.forward_with_weights(&t[0], Some(&t[1]), &t[2..]);
                    joined(&[&out, &h])
                },
                &inputs,
                &Options::default(),
            );
        }
    }
}

#[test]
fn lstm_gradcheck_through_inputs_states_and_weights() {
    for (i, &(layers, bidir, bf, bias)) in CONFIGS.iter().enumerate() {
        let lstm = Lstm::with_options(2, 3, seq_options(layers, bidir, bf, bias), i as u64);
        let d = if bidir { 2 } else { 1 };
        let mut inputs = vec![
            randn(&input_shape(bf), 40 + i as u64),
            randn(&[d * layers, 2, 3], 50),
            randn(&[d * layers, 2, 3], 51),
        ];
        inputs.extend(param_values(&lstm));
        check_first(
            &format!("Lstm {:?}", CONFIGS[i]),
            |t| {
                let (out, (h, c)) = lstm.forward_with_weights(&t[0], Some((&t[1], &t[2])), &t[3..]);
                joined(&[&out, &h, &c])
            },
            &inputs,
            &Options::default(),
        );
    }
}

#[test]
fn gru_gradcheck_through_inputs_states_and_weights() {
    for (i, &(layers, bidir, bf, bias)) in CONFIGS.iter().enumerate() {
        let gru = Gru::with_options(2, 3, seq_options(layers, bidir, bf, bias), i as u64);
        let d = if bidir { 2 } else { 1 };
        let mut inputs = vec![
            randn(&input_shape(bf), 60 + i as u64),
            randn(&[d * layers, 2, 3], 70),
        ];
        inputs.extend(param_values(&gru));
        check_first(
            &format!("Gru {:?}", CONFIGS[i]),
            |t| {
                let (out, h) = gru.forward_with_weights(&t[0], Some(&t[1]), &t[2..]);
                joined(&[&out, &h])
            },
            &inputs,
            &Options::default(),
        );
    }
}

#[test]
fn sequence_layers_match_their_cells_step_by_step() {
    // Unbatched input, one layer: the outputs are the states of the cell, stepped by hand.
    let x = randn(&[4, 3], 80);
    let lstm = Lstm::with_options(3, 2, seq_options(1, false, false, true), 81);
    let (out, (h_n, c_n)) = lstm.forward_with_state(&x, None);
    let cell = LstmCell {
        weights: lstm.weights[0].clone(),
    };
    let mut state = cell.forward_with_state(&x.narrow(0, 0, 1).reshape_to(&[3]), None);
    let mut hs = vec![state.0.clone()];
    for t in 1..4 {
        state = cell.forward_with_state(
            &x.narrow(0, t, 1).reshape_to(&[3]),
            Some((&state.0, &state.1)),
        );
        hs.push(state.0.clone());
    }
    let close = |a: &Tensor, b: &Tensor| {
        assert_eq!(a.shape(), b.shape());
        for (u, v) in a.to_vec::<f64>().iter().zip(b.to_vec::<f64>()) {
            assert!((u - v).abs() < 1e-12, "{u} vs {v}");
        }
    };
    close(&out, &Tensor::stack(&hs, 0));
    close(&h_n, &state.0.reshape_to(&[1, 2]));
    close(&c_n, &state.1.reshape_to(&[1, 2]));

    // The reverse direction of a bidirectional RNN reads the sequence backwards.
    let bi = Rnn::with_options(
        3,
        2,
        RnnNonlinearity::Tanh,
        seq_options(1, true, false, true),
        82,
    );
    let (out, h_n) = bi.forward_with_state(&x, None);
    let back = RnnCell {
        weights: bi.weights[1].clone(),
        nonlinearity: RnnNonlinearity::Tanh,
    };
    let mut h = back.forward(&x.narrow(0, 3, 1).reshape_to(&[3]));
    close(&out.narrow(0, 3, 1).narrow(1, 2, 2).reshape_to(&[2]), &h);
    for t in (0..3).rev() {
        h = back.forward_with_state(&x.narrow(0, t, 1).reshape_to(&[3]), Some(&h));
    }
    close(&out.narrow(0, 0, 1).narrow(1, 2, 2).reshape_to(&[2]), &h);
    close(&h_n.narrow(0, 1, 1).reshape_to(&[2]), &h);
}

#[test]
fn a_thousand_steps_backpropagate_on_a_small_stack() {
    // 1,000 LSTM steps on a thread with a 256 KiB stack. The layer is one recorded op
    // whose kernels loop over the steps; the step-by-step form (thousands of recorded
    // ops, used for double backward) is run over 1,000 steps in lstm_fused.rs.
    let handle = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            let lstm = Lstm::new(2, 3, 0);
            let x = Tensor::randn(&[1000, 1, 2], DType::F32, 1).requires_grad();
            let (out, (h_n, _)) = lstm.forward_with_state(&x, None);
            let loss = out.sum().add(&h_n.sum());
            let grads = loss.backward();
            let gx = grads[&x].to_vec::<f32>();
            assert!(gx.iter().all(|g| g.is_finite()));
            // The first step influences the loss through the whole chain.
            assert!(gx[..2].iter().any(|g| *g != 0.0));
            for (name, p) in lstm.named_params() {
                let g = grads[&p].to_vec::<f32>();
                assert!(g.iter().all(|v| v.is_finite()), "{name}");
            }
        })
        .expect("spawn");
    handle.join().expect("1,000 steps backpropagate");
}

#[test]
fn dropout_between_layers_only_in_training() {
    let options = RecurrentOptions {
        num_layers: 2,
        dropout: 0.5,
        dtype: DType::F64,
        ..Default::default()
    };
    let mut gru = Gru::with_options(3, 8, options, 0);
    // Same seed, so the same weights.
    let plain = Gru::with_options(
        3,
        8,
        RecurrentOptions {
            dropout: 0.0,
            ..options
        },
        0,
    );
    let x = randn(&[4, 2, 3], 1);
    let (train, reference) = (
        gru.forward(&x).to_vec::<f64>(),
        plain.forward(&x).to_vec::<f64>(),
    );
    assert_ne!(
        train, reference,
        "training mode drops units between the layers"
    );
    gru.eval();
    assert_eq!(gru.forward(&x).to_vec::<f64>(), reference);
}

#[test]
#[should_panic(expected = "Lstm: h0 must be [2, 4, 3]")]
fn wrong_state_shape_names_the_layer_and_shapes() {
    let lstm = Lstm::with_options(2, 3, seq_options(1, true, false, true), 0);
    let x = randn(&[5, 4, 2], 1);
    let h = randn(&[1, 4, 3], 2);
    lstm.forward_with_state(&x, Some((&h, &h)));
}

#[test]
#[should_panic(
    expected = "Gru: the input must be [batch, seq, input] or [seq, input] with input = 2"
)]
fn wrong_input_size_names_the_layout() {
    Gru::with_options(2, 3, seq_options(1, false, true, true), 0).forward(&randn(&[4, 5, 3], 1));
}

#[test]
#[should_panic(expected = "lstm_cell: weight_ih must be [4 * hidden, input]")]
fn cell_weights_of_the_wrong_kind_are_refused() {
    let gru = GruCell::with_options(2, 3, true, DType::F64, 0);
    lstm_cell(&randn(&[1, 2], 1), None, gru.weights.weights());
}

#[test]
fn group_norm_gradcheck() {
    let x = randn(&[2, 4, 3], 90);
    let (w, b) = (randn(&[4], 91), randn(&[4], 92));
    check_first(
        "group_norm affine",
        |t| functional::group_norm(&t[0], 2, Some(&t[1]), Some(&t[2]), 1e-5),
        &[x.clone(), w, b],
        &Options::default(),
    );
    check_first(
        "group_norm, one group, rank 4",
        |t| functional::group_norm(&t[0], 1, None, None, 1e-5),
        &[randn(&[2, 2, 2, 3], 93)],
        &Options::default(),
    );
    // The module runs the same function with its parameters.
    let gn = GroupNorm::with_options(4, 4, 1e-5, true, DType::F64);
    let want = functional::group_norm(&x, 4, None, None, 1e-5).to_vec::<f64>();
    assert_eq!(gn.forward(&x).to_vec::<f64>(), want);
}

#[test]
fn rms_norm_gradcheck() {
    let x = randn(&[2, 3, 4], 94);
    check_first(
        "rms_norm with weight, over [3, 4]",
        |t| functional::rms_norm(&t[0], &[3, 4], Some(&t[1]), None),
        &[x.clone(), randn(&[3, 4], 95)],
        &Options::default(),
    );
    check_first(
        "rms_norm without weight",
        |t| functional::rms_norm(&t[0], &[4], None, Some(1e-3)),
        &[x],
        &Options::default(),
    );
}

#[test]
fn rms_norm_default_eps_is_the_dtype_epsilon() {
    // A zero row is 0 / sqrt(eps): zero either way, but a tiny row shows the epsilon.
    let tiny = 1e-4f64;
    for (dtype, eps) in [
        (DType::F64, f64::EPSILON),
        (DType::F32, f64::from(f32::EPSILON)),
    ] {
        let x = Tensor::full(&[1, 2], tiny, dtype);
        let y = RmsNorm::with_options(&[2], None, false, dtype)
            .forward(&x)
            .to_vec::<f64>();
        let want = tiny / (tiny * tiny + eps).sqrt();
        assert!(
            (y[0] - want).abs() < 1e-5 * want,
            "{dtype}: {} vs {want}",
            y[0]
        );
    }
}

#[test]
fn embedding_gradcheck_and_padding() {
    let indices = Tensor::from_vec(vec![0i64, 3, 1, 3, 2, 1], &[2, 3]);
    // (With a padding row the function still reads its value but, by design, passes
    // no gradient to it; that is checked exactly below, not against differences.)
    check_first(
        "embedding",
        |t| functional::embedding(&indices, &t[0], None),
        &[randn(&[4, 2], 96)],
        &Options::default(),
    );
    // The padding row reads its (loaded) value but gets no gradient.
    let mut emb = Embedding::from_weight(randn(&[4, 2], 97));
    emb.padding_idx = Some(3);
    let y = emb.forward(&indices);
    assert_eq!(y.shape(), &[2, 3, 2]);
    assert_eq!(&y.to_vec::<f64>()[2..4], &emb.weight.to_vec::<f64>()[6..8]);
    let g = y.sum().backward()[&emb.weight].to_vec::<f64>();
    assert_eq!(g, vec![1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 0.0, 0.0]);
    // with_padding_idx zeros the row, as PyTorch's constructor.
    let padded = Embedding::with_dtype(4, 2, DType::F64, 0).with_padding_idx(2);
    assert_eq!(&padded.weight.to_vec::<f64>()[4..6], &[0.0, 0.0]);
}

#[test]
#[should_panic(expected = "Embedding(4, 2): the indices must be an i64 tensor, got f32 [2]")]
fn embedding_refuses_float_indices() {
    let emb = Embedding::new(4, 2, 0);
    emb.forward(&Tensor::from_vec(vec![1.0f32, 2.0], &[2]));
}

#[test]
#[should_panic(expected = "Embedding(4, 2): index -1 is out of range (the table has 4 rows)")]
fn embedding_refuses_negative_indices() {
    let emb = Embedding::new(4, 2, 0);
    emb.forward(&Tensor::from_vec(vec![1i64, -1], &[2]));
}

#[test]
#[should_panic(expected = "Embedding(4, 2): index 4 is out of range (the table has 4 rows)")]
fn embedding_refuses_indices_past_the_table() {
    let emb = Embedding::new(4, 2, 0);
    emb.forward(&Tensor::from_vec(vec![4i64], &[1]));
}

#[test]
fn conv1d_gradcheck() {
    check_first(
        "conv1d strided, padded, grouped",
        |t| functional::conv1d(&t[0], &t[1], Some(&t[2]), 2, 1, 1, 2),
        &[
            randn(&[2, 4, 5], 98),
            randn(&[4, 2, 3], 99),
            randn(&[4], 100),
        ],
        &Options::default(),
    );
    check_first(
        "conv1d dilated, unbatched",
        |t| functional::conv1d(&t[0], &t[1], None, 1, 0, 2, 1),
        &[randn(&[2, 6], 101), randn(&[3, 2, 2], 102)],
        &Options::default(),
    );
}

#[test]
fn conv_transpose2d_gradcheck() {
    // The decoder configuration (stride 2, padding 1, output padding 1: doubles the size),
    // grouped, through input, weight and bias, first and second order.
    let f =
        |t: &[Tensor]| t[0].conv_transpose2d(&t[1], Some(&t[2]), [2, 2], [1, 1], [1, 1], 2, [1, 1]);
    let inputs = [
        randn(&[2, 4, 3, 2], 110),
        randn(&[4, 3, 3, 3], 111),
        randn(&[6], 112),
    ];
    assert_eq!(f(&inputs).shape(), &[2, 6, 6, 4]);
    check_first(
        "conv_transpose2d x2 grouped",
        f,
        &inputs,
        &Options::default(),
    );
    if let Err(e) = gradgradcheck(f, &inputs, &Options::default()) {
        panic!("conv_transpose2d second order: {e}");
    }
    // The layer runs the same op on its parameters.
    let options = ConvTranspose2dOptions {
        stride: [2, 2],
        padding: [1, 1],
        output_padding: [1, 1],
        groups: 2,
        dtype: DType::F64,
        ..Default::default()
    };
    let layer = ConvTranspose2d::with_options(4, 6, [3, 3], options, 7);
    let x = randn(&[2, 4, 3, 2], 113);
    let bias = layer.bias.as_deref().expect("bias");
    let direct = f(&[x.clone(), layer.weight.detach(), bias.detach()]);
    assert_eq!(layer.forward(&x).to_vec::<f64>(), direct.to_vec::<f64>());
    let names: Vec<String> = layer.named_params().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["weight", "bias"]);
}

#[test]
fn upsample_linear_modes_gradcheck() {
    use tapegrad::InterpolateMode::{Bilinear, Linear};
    for (label, up, shape) in [
        (
            "bilinear x1.5 aligned",
            Upsample::scale_factor(1.5).with_mode(Bilinear, true),
            vec![1, 2, 3, 2],
        ),
        (
            "bilinear to [2, 5]",
            Upsample::size(&[2, 5]).with_mode(Bilinear, false),
            vec![2, 1, 3, 3],
        ),
        (
            "linear x2.5",
            Upsample::scale_factor(2.5).with_mode(Linear, false),
            vec![1, 2, 4],
        ),
    ] {
        let x = [randn(&shape, 114)];
        check_first(label, |t| up.forward(&t[0]), &x, &Options::default());
        if let Err(e) = gradgradcheck(
            |t: &[Tensor]| up.forward(&t[0]).square(),
            &x,
            &Options::default(),
        ) {
            panic!("{label} second order: {e}");
        }
    }
}

#[test]
fn upsample_gradcheck() {
    for (label, up, shape) in [
        (
            "Upsample x2, 2-D",
            Upsample::scale_factor(2.0),
            vec![1, 2, 2, 3],
        ),
        (
            "Upsample x1.5, 1-D",
            Upsample::scale_factor(1.5),
            vec![2, 1, 3],
        ),
        (
            "Upsample to [4, 2], 2-D",
            Upsample::size(&[4, 2]),
            vec![1, 1, 3, 3],
        ),
        (
            "Upsample x[1, 2, 3], 3-D",
            Upsample {
                target: UpsampleTarget::ScaleFactor(vec![1.0, 2.0, 3.0]),
                ..Upsample::scale_factor(1.0)
            },
            vec![1, 1, 2, 2, 2],
        ),
    ] {
        check_first(
            label,
            |t| up.forward(&t[0]),
            &[randn(&shape, 103)],
            &Options::default(),
        );
    }
}

#[test]
fn positional_embeddings_gradcheck() {
    check_first(
        "learned positions",
        |t| LearnedPositionalEmbedding::add_positions(&t[0], &t[1]),
        &[randn(&[2, 3, 4], 104), randn(&[5, 4], 105)],
        &Options::default(),
    );
    let pe = SinusoidalPositionalEmbedding::new(6, 5, DType::F64);
    check_first(
        "sinusoidal positions",
        |t| pe.forward(&t[0]),
        &[randn(&[3, 5], 106)],
        &Options::default(),
    );
    // Odd width: the last column is a sine.
    let angle = 1.0 / 10000f64.powf(4.0 / 5.0);
    assert!((pe.table().to_vec::<f64>()[5 + 4] - angle.sin()).abs() < 1e-15);
}

#[test]
fn sequence_layers_second_order() {
    // Not only the cells: the whole recurrence differentiates twice (gradient penalties
    // on recurrent nets), checked on a tiny bidirectional GRU and a batch-first LSTM.
    let gru = Gru::with_options(2, 2, seq_options(1, true, false, true), 110);
    let mut inputs = vec![randn(&[2, 1, 2], 111)];
    inputs.extend(param_values(&gru));
    let f = |t: &[Tensor]| gru.forward_with_weights(&t[0], None, &t[1..]).0;
    if let Err(e) = gradgradcheck(f, &inputs, &Options::default()) {
        panic!("Gru second order: {e}");
    }
    let lstm = Lstm::with_options(2, 2, seq_options(1, false, true, true), 112);
    let mut inputs = vec![randn(&[1, 3, 2], 113)];
    inputs.extend(param_values(&lstm));
    let f = |t: &[Tensor]| {
        let (out, (_, c)) = lstm.forward_with_weights(&t[0], None, &t[1..]);
        joined(&[&out, &c])
    };
    if let Err(e) = gradgradcheck(f, &inputs, &Options::default()) {
        panic!("Lstm second order: {e}");
    }
}
