//! Character-level language models for `tapegrad train --dataset text`: the text splits
//! ([`Windows`] of byte tokens with next-token targets), the two models (a decoder-only
//! [`TransformerLm`] and an [`LstmLm`]), their loss ([`lm_loss`]: cross-entropy per
//! position, reported as bits per character) and the order-3 n-gram baseline.
//!
//! Tokens are bytes ([`ByteTokenizer`]), so "bits per character" is bits per byte: the
//! same thing for ASCII text such as the embedded one.

use std::collections::BTreeMap;
use std::f64::consts::LN_2;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;

use serde::{Deserialize, Serialize};
use tapegrad::{DType, Tensor};
use tapegrad_data::{
    embedded_text, read_text_dir, split_held_out, ByteTokenizer, Dataset, NgramModel, TextDataset,
};
use tapegrad_nn::loss::{cross_entropy, CrossEntropyOptions};
use tapegrad_nn::{
    prefixed, Dropout, Embedding, LayerNorm, LearnedPositionalEmbedding, Linear, Lstm, Module,
    Param, RecurrentOptions, Sequential, SinusoidalPositionalEmbedding, TransformerActivation,
    TransformerEncoderLayer, TransformerLayerOptions,
};
use tapegrad_train::{accuracy_count, Batch, EpochMetrics, Field, Loss, Samples, Trainer};

use crate::datasets::{Split, Splits};

use crate::setup::positive_usize;

/// The vocabulary: the 256 byte values.
pub const VOCAB: usize = ByteTokenizer::VOCAB_SIZE;

/// Fraction of the text held out (its last 10%): the first half of it validates after
/// every epoch, the second half is the test set.
const HELD_OUT: f64 = 0.1;

/// The language-model options of `tapegrad train` (used with `--dataset text`).
#[derive(clap::Args, Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LmArgs {
    /// Text: characters (byte tokens) per training window, the longest context the model
    /// sees.
    #[arg(long, default_value_t = 64, value_parser = positive_usize)]
    #[serde(default = "default_seq_len")]
    pub seq_len: usize,
    /// Text: model width, the transformer's d_model [default: 128] or the LSTM's hidden
    /// size [default: 256] (the embedding has the same size).
    #[arg(long, value_parser = positive_usize)]
    #[serde(default)]
    pub d_model: Option<usize>,
    /// Text: number of transformer or LSTM layers [default: 2 for the transformer, 1 for
    /// the LSTM].
    #[arg(long, value_parser = positive_usize)]
    #[serde(default)]
    pub layers: Option<usize>,
    /// Text: attention heads of the transformer (they must divide --d-model).
    #[arg(long, default_value_t = 4, value_parser = positive_usize)]
    #[serde(default = "default_heads")]
    pub heads: usize,
    /// Text: the transformer's position encoding.
    #[arg(long, value_enum, default_value = "learned")]
    #[serde(default)]
    pub positions: Positions,
    /// Text: tie the output layer's weight to the token embedding (no separate head).
    #[arg(long)]
    #[serde(default)]
    pub tied: bool,
}

fn default_seq_len() -> usize {
    64
}

fn default_heads() -> usize {
    4
}

/// How the transformer knows where a token is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Positions {
    /// A learned vector per position (GPT-2's `wpe`).
    #[default]
    Learned,
    /// Fixed sine and cosine waves (Vaswani et al. 2017).
    Sinusoidal,
}

/// Which language model to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LmKind {
    /// [`TransformerLm`].
    Transformer,
    /// [`LstmLm`].
    Lstm,
}

impl LmArgs {
    /// The width: --d-model or the model's default.
    pub fn d_model(&self, kind: LmKind) -> usize {
        self.d_model.unwrap_or(match kind {
            LmKind::Transformer => 128,
            LmKind::Lstm => 256,
        })
    }

    /// The depth: --layers or the model's default.
    pub fn layers(&self, kind: LmKind) -> usize {
        self.layers.unwrap_or(match kind {
            LmKind::Transformer => 2,
            LmKind::Lstm => 1,
        })
    }

    /// The model, in a [`Sequential`] (so the CLI trains it as any other), seeded.
    ///
    /// # Errors
    /// If --heads does not divide --d-model.
    pub fn build(&self, kind: LmKind, dropout: f64, seed: u64) -> Result<Sequential, String> {
        let d = self.d_model(kind);
        let layers = self.layers(kind);
        Ok(match kind {
            LmKind::Transformer => {
                if !d.is_multiple_of(self.heads) {
                    return Err(format!(
                        "--model transformer: --heads {} does not divide --d-model {d}",
                        self.heads
                    ));
                }
                let config = TransformerConfig {
                    vocab: VOCAB,
                    max_len: self.seq_len,
                    d_model: d,
                    heads: self.heads,
                    layers,
                    dropout,
                    positions: self.positions,
                    tied: self.tied,
                };
                Sequential::new().add(TransformerLm::new(&config, seed))
            }
            LmKind::Lstm => {
                Sequential::new().add(LstmLm::new(VOCAB, d, layers, dropout, self.tied, seed))
            }
        })
    }
}

/// Sizes of a [`TransformerLm`].
#[derive(Clone, Copy, Debug)]
pub struct TransformerConfig {
    /// Tokens.
    pub vocab: usize,
    /// Longest sequence (the learned position table's size).
    pub max_len: usize,
    /// Width of the residual stream.
    pub d_model: usize,
    /// Attention heads.
    pub heads: usize,
    /// Encoder layers.
    pub layers: usize,
    /// Dropout on the embeddings and in every layer.
    pub dropout: f64,
    /// Position encoding.
    pub positions: Positions,
    /// Head tied to the token embedding.
    pub tied: bool,
}

/// The position encoding of a [`TransformerLm`].
#[derive(Clone, Debug)]
enum PositionLayer {
    Learned(LearnedPositionalEmbedding),
    Sinusoidal(SinusoidalPositionalEmbedding),
}

/// A decoder-only transformer over tokens (GPT-style): token embedding plus positions,
/// `layers` pre-norm encoder layers (GELU, feed-forward 4 x d_model) under a causal
/// mask, a final layer norm and a linear head (or the embedding's transpose, tied).
///
/// `forward` takes token ids `[B, L]` (whole numbers as floats, `L <= max_len`) and
/// returns next-token logits `[B, L, vocab]`: position `t` sees tokens `0..=t` only.
/// Embeddings are initialised `N(0, 0.02)` as GPT-2; the layers as PyTorch's.
#[derive(Clone, Debug)]
pub struct TransformerLm {
    tok_emb: Embedding,
    pos: PositionLayer,
    drop: Dropout,
    layers: Vec<TransformerEncoderLayer>,
    norm: LayerNorm,
    head: Option<Linear>,
}

impl TransformerLm {
    /// A model of `config`'s sizes, seeded.
    ///
    /// # Panics
    /// If `heads` does not divide `d_model`.
    pub fn new(c: &TransformerConfig, seed: u64) -> TransformerLm {
        let d = c.d_model;
        let tok_emb = Embedding::new(c.vocab, d, seed);
        scale_param(&tok_emb.weight, 0.02);
        let pos =
            match c.positions {
                Positions::Learned => {
                    let p = LearnedPositionalEmbedding::new(c.max_len, d, seed + 1);
                    scale_param(&p.weight, 0.02);
                    PositionLayer::Learned(p)
                }
                Positions::Sinusoidal => PositionLayer::Sinusoidal(
                    SinusoidalPositionalEmbedding::new(c.max_len, d, DType::F32),
                ),
            };
        let options = TransformerLayerOptions {
            dim_feedforward: 4 * d,
            dropout: c.dropout,
            activation: TransformerActivation::Gelu,
            batch_first: true,
            norm_first: true,
            ..TransformerLayerOptions::default()
        };
        let layers = (0..c.layers)
            .map(|i| {
                TransformerEncoderLayer::with_options(d, c.heads, options, seed + 10 + i as u64)
            })
            .collect();
        TransformerLm {
            tok_emb,
            pos,
            drop: Dropout::new(c.dropout, seed + 2),
            layers,
            norm: LayerNorm::new(&[d]),
            head: (!c.tied).then(|| Linear::new(d, c.vocab, seed + 3)),
        }
    }
}

/// Multiplies a parameter's values by `factor` (re-scales an initialisation).
fn scale_param(p: &Param, factor: f64) {
    p.set(&p.detach().mul_scalar(factor));
}

/// `x @ weight^T`: the tied output layer.
fn tied_logits(x: &Tensor, weight: &Tensor) -> Tensor {
    x.matmul(&weight.t())
}

impl Module for TransformerLm {
    /// # Panics
    /// If `x` is not `[B, L]` token ids with `L <= max_len`.
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        let h = self.tok_emb.forward(x);
        let h = match &self.pos {
            PositionLayer::Learned(p) => p.forward(&h),
            PositionLayer::Sinusoidal(p) => p.forward(&h),
        };
        let mut h = self.drop.forward(&h);
        for layer in &self.layers {
            h = layer.forward_masked(&h, None, None, true);
        }
        let h = self.norm.forward(&h);
        match &self.head {
            Some(head) => head.forward(&h),
            None => tied_logits(&h, &self.tok_emb.weight),
        }
    }

    fn named_params(&self) -> Vec<(String, Param)> {
        let mut v = prefixed("tok_emb", self.tok_emb.named_params());
        if let PositionLayer::Learned(p) = &self.pos {
            v.extend(prefixed("pos_emb", p.named_params()));
        }
        for (i, layer) in self.layers.iter().enumerate() {
            v.extend(prefixed(&format!("layers.{i}"), layer.named_params()));
        }
        v.extend(prefixed("norm", self.norm.named_params()));
        if let Some(head) = &self.head {
            v.extend(prefixed("head", head.named_params()));
        }
        v
    }

    fn named_counters(&self) -> Vec<(String, &AtomicU64)> {
        let mut v = prefixed("drop", self.drop.named_counters());
        for (i, layer) in self.layers.iter().enumerate() {
            v.extend(prefixed(&format!("layers.{i}"), layer.named_counters()));
        }
        v
    }

    fn set_training(&mut self, training: bool) {
        self.drop.set_training(training);
        for layer in &mut self.layers {
            layer.set_training(training);
        }
    }
}

/// An LSTM language model: token embedding (size = hidden), a `layers`-layer LSTM
/// (dropout between layers), dropout, and a linear head (or the embedding's transpose,
/// tied).
///
/// `forward` takes token ids `[B, L]` and returns next-token logits `[B, L, vocab]`,
/// starting from a zero state.
#[derive(Clone, Debug)]
pub struct LstmLm {
    emb: Embedding,
    lstm: Lstm,
    drop: Dropout,
    head: Option<Linear>,
}

impl LstmLm {
    /// A model with `hidden` units per layer, seeded.
    pub fn new(
        vocab: usize,
        hidden: usize,
        layers: usize,
        dropout: f64,
        tied: bool,
        seed: u64,
    ) -> LstmLm {
        let emb = Embedding::new(vocab, hidden, seed);
        if tied {
            // The head reads the embedding: keep its logits near the LSTM's scale.
            scale_param(&emb.weight, 1.0 / (hidden as f64).sqrt());
        }
        let options = RecurrentOptions {
            num_layers: layers,
            batch_first: true,
            dropout,
            ..RecurrentOptions::default()
        };
        LstmLm {
            emb,
            lstm: Lstm::with_options(hidden, hidden, options, seed + 1),
            drop: Dropout::new(dropout, seed + 2),
            head: (!tied).then(|| Linear::new(hidden, vocab, seed + 3)),
        }
    }
}

impl Module for LstmLm {
    /// # Panics
    /// If `x` is not `[B, L]` token ids.
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        let h = self.lstm.forward(&self.emb.forward(x));
        let h = self.drop.forward(&h);
        match &self.head {
            Some(head) => head.forward(&h),
            None => tied_logits(&h, &self.emb.weight),
        }
    }

    fn named_params(&self) -> Vec<(String, Param)> {
        let mut v = prefixed("emb", self.emb.named_params());
        v.extend(prefixed("lstm", self.lstm.named_params()));
        if let Some(head) = &self.head {
            v.extend(prefixed("head", head.named_params()));
        }
        v
    }

    fn named_counters(&self) -> Vec<(String, &AtomicU64)> {
        let mut v = prefixed("lstm", self.lstm.named_counters());
        v.extend(prefixed("drop", self.drop.named_counters()));
        v
    }

    fn set_training(&mut self, training: bool) {
        self.lstm.set_training(training);
        self.drop.set_training(training);
    }
}

/// The loss of a language model on a batch of [`Windows`]: cross-entropy of the logits
/// `[B, L, V]` against every position's next token, with metrics `bits_per_char` (the
/// loss over ln 2) and `accuracy` (next-character accuracy).
pub fn lm_loss<M: Module>(model: &M, batch: &Batch) -> Loss {
    let logits = model.forward(batch.tensor(0));
    let vocab = *logits.shape().last().expect("logits [B, L, V]");
    let logits = logits.reshape(&[-1, vocab as isize]);
    let targets = batch.classes(1).reshape(&[-1]);
    let loss = cross_entropy(&logits, &targets, &CrossEntropyOptions::default());
    let bits = loss.item() / LN_2;
    let correct = accuracy_count(&logits, &targets);
    Loss::from(loss)
        .with_metric("bits_per_char", bits)
        .with_metric("accuracy", correct as f64 / targets.numel().max(1) as f64)
}

/// Windows of `seq_len` byte tokens of a text with every position's next token: field 0
/// the inputs `[B, seq_len]`, field 1 the targets `[B, seq_len]` (both `I64`).
pub struct Windows {
    data: TextDataset,
}

impl Windows {
    /// Non-overlapping windows of `tokens`.
    pub fn new(tokens: &[usize], seq_len: usize) -> Windows {
        Windows {
            data: TextDataset::new(tokens.to_vec(), VOCAB, seq_len),
        }
    }

    /// Number of windows.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// `[seq_len]`.
    pub fn sample_shape(&self) -> &[usize] {
        self.data.sample_shape()
    }

    /// The token stream the windows are cut from.
    pub fn tokens(&self) -> &[usize] {
        self.data.tokens()
    }
}

impl Samples for Windows {
    fn num_samples(&self) -> usize {
        self.data.len()
    }

    fn batch(&self, indices: &[usize]) -> Batch {
        let (x, y) = self.data.batch(indices);
        Batch {
            fields: vec![Field::Tensor(x), Field::Tensor(y)],
            indices: indices.to_vec(),
        }
    }
}

/// The text of `--data-dir` (every file of the folder) or the embedded text, byte
/// tokens, split into training (the first 90%), validation and test windows (5% each,
/// the end of the text), and a description of the split.
///
/// # Errors
/// If the folder cannot be read, or a part is too short for one window of `seq_len + 1`
/// characters.
pub fn load(
    data_dir: Option<&PathBuf>,
    seq_len: usize,
) -> Result<(Windows, Windows, Windows), String> {
    let (text, source) = match data_dir {
        Some(dir) => (
            read_text_dir(dir).map_err(|e| e.to_string())?,
            dir.display().to_string(),
        ),
        None => (embedded_text().to_string(), "the embedded text".to_string()),
    };
    let tokens = ByteTokenizer.encode(&text);
    let (train, held) = split_held_out(&tokens, HELD_OUT);
    let (val, test) = split_held_out(held, 0.5);
    let parts = [("training", train), ("validation", val), ("test", test)];
    if let Some((part, t)) = parts.iter().find(|(_, t)| t.len() <= seq_len) {
        return Err(format!(
            "--dataset text: {source} has {} characters; its {part} part ({} characters) is too short for one window of --seq-len {seq_len} plus its next character",
            tokens.len(),
            t.len()
        ));
    }
    Ok((
        Windows::new(train, seq_len),
        Windows::new(val, seq_len),
        Windows::new(test, seq_len),
    ))
}

/// The held-out bits per character of the order-3 character n-gram with add-one
/// smoothing fitted on `train`'s text, on `held_out`'s text.
pub fn ngram_bits(train: &Windows, held_out: &Windows) -> f64 {
    NgramModel::fit(train.tokens(), 3, VOCAB).bits_per_token(held_out.tokens())
}

/// The order-3 n-gram baseline on the held-out text, measured before training.
pub struct Baseline {
    /// Bits per character on the validation text.
    pub val_bits: f64,
    /// Bits per character on the test text.
    pub test_bits: f64,
}

/// For text: prints the split's sizes and the order-3 character n-gram baseline (add-one
/// smoothing, fitted on the training text) on the validation and test text, and returns
/// it; `None` for other data.
pub fn baseline(data: &Splits) -> Option<Baseline> {
    let (Split::Text(train), Split::Text(val), Split::Text(test)) =
        (&data.train, &data.val, &data.test)
    else {
        return None;
    };
    let b = Baseline {
        val_bits: ngram_bits(train, val),
        test_bits: ngram_bits(train, test),
    };
    println!(
        "text: {} training / {} validation / {} test characters (byte tokens: bits per character are bits per byte); order-3 character n-gram baseline (add-one smoothing): {:.4} bits/char validation, {:.4} test",
        train.tokens().len(),
        val.tokens().len(),
        test.tokens().len(),
        b.val_bits,
        b.test_bits
    );
    Some(b)
}

impl Baseline {
    /// Prints the trained model's held-out bits per character on `test` next to the
    /// baseline's.
    pub fn report_end(&self, trainer: &mut Trainer<Sequential>, test: &Split) {
        let bits = trainer
            .evaluate(test)
            .metric("bits_per_char")
            .unwrap_or(f64::NAN);
        println!(
            "held-out test bits per character: {bits:.4} (order-3 n-gram baseline {:.4}: {:+.4})",
            self.test_bits,
            bits - self.test_bits
        );
    }
}

/// The validation metrics besides accuracy (e.g. bits per character), as `  val_NAME
/// VALUE` for the epoch line.
pub fn other_val_metrics(metrics: &BTreeMap<String, f64>) -> String {
    metrics
        .iter()
        .filter(|(name, _)| name.as_str() != "accuracy")
        .map(|(name, v)| format!("  val_{name} {v:.4}"))
        .collect()
}

/// An epoch's line of `metrics.jsonl`: its fields, and each validation metric at the top
/// level as `val_NAME` (e.g. `val_bits_per_char`).
pub fn metrics_line(m: &EpochMetrics) -> String {
    let mut value = serde_json::to_value(m).expect("serialisable");
    if let Some(fields) = value.as_object_mut() {
        for (name, v) in &m.val_metrics {
            fields
                .entry(format!("val_{name}"))
                .or_insert_with(|| serde_json::json!(v));
        }
    }
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapegrad::no_grad;

    fn tiny(kind: LmKind, tied: bool) -> Sequential {
        let args = LmArgs {
            seq_len: 6,
            d_model: Some(8),
            layers: Some(2),
            heads: 2,
            positions: Positions::Learned,
            tied,
        };
        args.build(kind, 0.0, 3).unwrap()
    }

    #[test]
    fn logits_at_a_position_do_not_depend_on_later_tokens() {
        for kind in [LmKind::Transformer, LmKind::Lstm] {
            for tied in [false, true] {
                let model = tiny(kind, tied);
                let a = Tensor::from_vec(vec![1i64, 2, 3, 4, 5, 6], &[1, 6]);
                let b = Tensor::from_vec(vec![1i64, 2, 3, 9, 0, 7], &[1, 6]);
                let (ya, yb) = no_grad(|| (model.forward(&a), model.forward(&b)));
                assert_eq!(ya.shape(), &[1, 6, VOCAB]);
                let (ya, yb) = (ya.to_vec::<f32>(), yb.to_vec::<f32>());
                let cut = 3 * VOCAB;
                assert_eq!(ya[..cut], yb[..cut], "{kind:?}: the past changed");
                assert_ne!(ya[cut..], yb[cut..], "{kind:?}: the future is ignored");
            }
        }
    }

    #[test]
    fn tied_models_have_no_head_and_untied_ones_do() {
        let names = |m: &Sequential| -> Vec<String> {
            m.named_params().into_iter().map(|(n, _)| n).collect()
        };
        for kind in [LmKind::Transformer, LmKind::Lstm] {
            assert!(names(&tiny(kind, false)).iter().any(|n| n.contains("head")));
            assert!(!names(&tiny(kind, true)).iter().any(|n| n.contains("head")));
        }
    }

    #[test]
    fn the_loss_is_cross_entropy_over_every_position_in_nats_and_bits() {
        // A model whose logits are all 0 predicts uniformly: ln 256 nats, 8 bits.
        struct Uniform;
        impl Module for Uniform {
            fn forward(&self, x: &Tensor) -> Tensor {
                let s = x.shape();
                Tensor::zeros(&[s[0], s[1], VOCAB], DType::F32)
            }
            fn named_params(&self) -> Vec<(String, Param)> {
                Vec::new()
            }
        }
        let data = Windows::new(&ByteTokenizer.encode("abcdefghij"), 4);
        let batch = data.batch(&[1, 0]);
        assert_eq!(
            batch.tensor(0).to_vec::<i64>(),
            vec![101, 102, 103, 104, 97, 98, 99, 100]
        );
        assert_eq!(
            batch.classes(1).to_vec::<i64>(),
            vec![102, 103, 104, 105, 98, 99, 100, 101]
        );
        let loss = lm_loss(&Uniform, &batch);
        assert!((loss.value.item() - (256f64).ln()).abs() < 1e-5);
        let bits = loss.metrics.iter().find(|(n, _)| *n == "bits_per_char");
        assert!((bits.unwrap().1 - 8.0).abs() < 1e-5);
    }

    #[test]
    fn the_text_splits_are_consecutive_and_too_short_text_is_refused() {
        let (train, val, test) = load(None, 64).unwrap();
        let n = embedded_text().len();
        assert_eq!(
            train.tokens().len() + val.tokens().len() + test.tokens().len(),
            n
        );
        assert!(train.len() > 2500 && val.len() > 100 && test.len() > 100);
        assert_eq!(
            val.tokens()[0],
            ByteTokenizer.encode(&embedded_text()[train.tokens().len()..])[0]
        );
        let bits = ngram_bits(&train, &val);
        assert!(bits > 2.0 && bits < 4.0, "{bits}");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "short text").unwrap();
        let err = load(Some(&dir.path().to_path_buf()), 64).err().unwrap();
        assert!(
            err.contains("too short") && err.contains("--seq-len 64"),
            "{err}"
        );
    }
}
