//! W6 `transformer_train` and W7 `lstm_train`: one training step of the sequence models
//! defined in `docs/benchmarks.md`, written as the peer scripts write them (forward, mean
//! cross-entropy, backward, optimiser update).

use rand::{Rng, SeedableRng};
use tapegrad::{DType, Tensor};
use tapegrad_nn::loss::{cross_entropy, CrossEntropyOptions};
use tapegrad_nn::{
    AttnMask, Embedding, LayerNorm, Linear, Lstm, Module, Param, RecurrentOptions,
    TransformerActivation, TransformerEncoderLayer, TransformerLayerOptions,
};
use tapegrad_optim::{AdamW, AdamWConfig, Optimizer, Sgd, SgdConfig};

/// Random class labels in `0..classes` from `seed`.
fn labels(n: usize, classes: i64, seed: u64) -> Vec<i64> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.gen_range(0..classes)).collect()
}

/// W6: a byte-level language model. Embedding(256 -> 256) plus learned positions
/// `[seq, 256]` (N(0, 0.02²)), two pre-norm causal encoder layers (4 heads, feed-forward
/// 1024, exact GELU, no dropout), a final LayerNorm and a Linear(256 -> 256) head; AdamW
/// (lr 3e-4, PyTorch's other defaults) on 16 rows of 129 random bytes, each row's first
/// 128 bytes predicting the next.
pub struct TransformerTrain {
    embed: Embedding,
    positions: Param,
    layers: Vec<TransformerEncoderLayer>,
    norm: LayerNorm,
    head: Linear,
    causal: AttnMask,
    inputs: Tensor,
    targets: Tensor,
    batch: usize,
    seq: usize,
    optimizer: AdamW,
}

impl TransformerTrain {
    /// The workload at W6's sizes: batch 16, sequence 128, width 256, 2 layers.
    pub fn new() -> Self {
        TransformerTrain::with_sizes(16, 128, 256, 2)
    }

    /// The same model at other sizes (`d_model` divisible by 4 heads; feed-forward
    /// `4 d_model`), for quick checks.
    pub fn with_sizes(batch: usize, seq: usize, d_model: usize, layers: usize) -> Self {
        let options = TransformerLayerOptions {
            dim_feedforward: 4 * d_model,
            dropout: 0.0,
            activation: TransformerActivation::Gelu,
            batch_first: true,
            norm_first: true,
            ..TransformerLayerOptions::default()
        };
        let embed = Embedding::new(256, d_model, 1);
        let positions = Param::new(Tensor::randn(&[seq, d_model], DType::F32, 2).mul_scalar(0.02));
        let layers: Vec<TransformerEncoderLayer> = (0..layers)
            .map(|i| TransformerEncoderLayer::with_options(d_model, 4, options, 10 + i as u64))
            .collect();
        let norm = LayerNorm::new(&[d_model]);
        let head = Linear::new(d_model, 256, 3);
        let rows = labels(batch * (seq + 1), 256, 4);
        let (mut inputs, mut targets) = (Vec::new(), Vec::new());
        for row in rows.chunks(seq + 1) {
            inputs.extend_from_slice(&row[..seq]);
            targets.extend_from_slice(&row[1..]);
        }
        let mut params = embed.params();
        params.push(positions.clone());
        for layer in &layers {
            params.extend(layer.params());
        }
        params.extend(norm.params());
        params.extend(head.params());
        let optimizer = AdamW::new(
            params,
            AdamWConfig {
                lr: 3e-4,
                ..AdamWConfig::default()
            },
        );
        TransformerTrain {
            embed,
            positions,
            layers,
            norm,
            head,
            causal: AttnMask::causal(seq, seq, DType::F32),
            inputs: Tensor::from_vec(inputs, &[batch, seq]),
            targets: Tensor::from_vec(targets, &[batch * seq]),
            batch,
            seq,
            optimizer,
        }
    }

    /// Tokens per step (`batch * seq`).
    pub fn tokens(&self) -> usize {
        self.batch * self.seq
    }

    /// The mean cross-entropy of the next byte at every position.
    fn loss(&self) -> Tensor {
        let mut h = self.embed.forward(&self.inputs).add(&self.positions);
        for layer in &self.layers {
            h = layer.forward_masked(&h, Some(&self.causal), None, true);
        }
        let logits = self.head.forward(&self.norm.forward(&h));
        cross_entropy(
            &logits.reshape(&[-1, 256]),
            &self.targets,
            &CrossEntropyOptions::default(),
        )
    }

    /// One step: forward, backward, AdamW update. Returns the loss before the update.
    pub fn run(&mut self) -> f32 {
        let loss = self.loss();
        let grads = loss.backward();
        self.optimizer.step(&grads);
        loss.item() as f32
    }
}

impl Default for TransformerTrain {
    fn default() -> Self {
        TransformerTrain::new()
    }
}

/// W7: a one-layer LSTM (64 -> 256, batch first, zero initial state) over 32 sequences of
/// 64 steps of N(0, 1) features, Linear(256 -> 10) on the last hidden state,
/// cross-entropy against random labels, plain SGD at lr 0.01.
pub struct LstmTrain {
    lstm: Lstm,
    head: Linear,
    x: Tensor,
    y: Tensor,
    optimizer: Sgd,
}

impl LstmTrain {
    /// The workload at W7's sizes: batch 32, sequence 64, 64 features, hidden 256.
    pub fn new() -> Self {
        LstmTrain::with_sizes(32, 64, 64, 256)
    }

    /// The same model at other sizes, for quick checks.
    pub fn with_sizes(batch: usize, seq: usize, features: usize, hidden: usize) -> Self {
        let options = RecurrentOptions {
            batch_first: true,
            ..RecurrentOptions::default()
        };
        let lstm = Lstm::with_options(features, hidden, options, 1);
        let head = Linear::new(hidden, 10, 2);
        let mut params = lstm.params();
        params.extend(head.params());
        let optimizer = Sgd::new(
            params,
            SgdConfig {
                lr: 0.01,
                ..SgdConfig::default()
            },
        );
        LstmTrain {
            lstm,
            head,
            x: Tensor::randn(&[batch, seq, features], DType::F32, 3),
            y: Tensor::from_vec(labels(batch, 10, 4), &[batch]),
            optimizer,
        }
    }

    /// Samples per step.
    pub fn batch(&self) -> usize {
        self.y.numel()
    }

    /// One step: forward through every time step, backward, SGD update. Returns the loss
    /// before the update.
    pub fn run(&mut self) -> f32 {
        let (_, (h_n, _)) = self.lstm.forward_with_state(&self.x, None);
        let logits = self.head.forward(&h_n.squeeze(0));
        let loss = cross_entropy(&logits, &self.y, &CrossEntropyOptions::default());
        let grads = loss.backward();
        self.optimizer.step(&grads);
        loss.item() as f32
    }
}

impl Default for LstmTrain {
    fn default() -> Self {
        LstmTrain::new()
    }
}

#[cfg(test)]
mod tests {
    use super::{LstmTrain, TransformerTrain};

    #[test]
    fn transformer_steps_reduce_the_loss_on_a_fixed_batch() {
        let mut w = TransformerTrain::with_sizes(2, 8, 16, 1);
        let first = w.run();
        // 256 classes at initialisation: the loss starts near ln 256 = 5.5.
        assert!((first - 256f32.ln()).abs() < 1.5, "{first}");
        let mut last = first;
        for _ in 0..20 {
            last = w.run();
        }
        assert!(last < first - 0.1, "AdamW on one batch: {first} -> {last}");
    }

    #[test]
    fn lstm_steps_reduce_the_loss_on_a_fixed_batch() {
        let mut w = LstmTrain::with_sizes(4, 5, 3, 8);
        let first = w.run();
        assert!((first - 10f32.ln()).abs() < 1.0, "{first}");
        let mut last = first;
        for _ in 0..50 {
            last = w.run();
        }
        assert!(last < first, "SGD on one batch: {first} -> {last}");
    }
}
