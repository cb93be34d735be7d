//! `TransformerEncoderLayer`: self-attention and a feed-forward block, each with a
//! residual connection and layer normalisation (after, or before with `norm_first`);
//! and the options shared with the decoder layer.

use std::sync::atomic::AtomicU64;

use tapegrad::{DType, Tensor};

use crate::{
    prefixed, AttnMask, Dropout, LayerNorm, Linear, MhaOptions, Module, MultiheadAttention,
    MultiheadAttentionOptions, Param,
};

/// The feed-forward block's activation in a transformer layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransformerActivation {
    /// `max(x, 0)`, PyTorch's default.
    Relu,
    /// Exact (erf) GELU.
    Gelu,
}

/// Construction options of the transformer layers, PyTorch's defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TransformerLayerOptions {
    /// Width of the feed-forward block. Default 2048.
    pub dim_feedforward: usize,
    /// Dropout after attention, inside and after the feed-forward block, and on the
    /// attention weights. Default 0.1.
    pub dropout: f64,
    /// Default ReLU.
    pub activation: TransformerActivation,
    /// The layer norms' epsilon. Default 1e-5.
    pub layer_norm_eps: f64,
    /// Inputs are `[N, L, E]` rather than `[L, N, E]`. Default false.
    pub batch_first: bool,
    /// Normalise before each block (pre-norm) rather than after the residual sum.
    /// Default false.
    pub norm_first: bool,
    /// Biases in the linear layers, attention and layer norms. Default true.
    pub bias: bool,
    /// Parameter dtype. Default `F32`.
    pub dtype: DType,
}

impl Default for TransformerLayerOptions {
    fn default() -> Self {
        TransformerLayerOptions {
            dim_feedforward: 2048,
            dropout: 0.1,
            activation: TransformerActivation::Relu,
            layer_norm_eps: 1e-5,
            batch_first: false,
            norm_first: false,
            bias: true,
            dtype: DType::F32,
        }
    }
}

impl TransformerLayerOptions {
    pub(crate) fn attention(&self) -> MultiheadAttentionOptions {
        MultiheadAttentionOptions {
            dropout: self.dropout,
            bias: self.bias,
            batch_first: self.batch_first,
            dtype: self.dtype,
        }
    }

    pub(crate) fn layer_norm(&self, d_model: usize) -> LayerNorm {
        let ln = LayerNorm::with_options(&[d_model], self.layer_norm_eps, true, self.dtype);
        if self.bias {
            ln
        } else {
            ln.without_bias()
        }
    }

    pub(crate) fn activate(&self, x: &Tensor) -> Tensor {
        match self.activation {
            TransformerActivation::Relu => x.relu(),
            TransformerActivation::Gelu => x.gelu(),
        }
    }
}

/// The `i`-th seed derived from a layer's seed (SplitMix64 of both).
pub(crate) fn sub_seed(seed: u64, i: u64) -> u64 {
    let mut z = seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The feed-forward block `linear2(dropout(activation(linear1(x))))`.
#[derive(Clone, Debug)]
pub(crate) struct FeedForward {
    pub(crate) linear1: Linear,
    pub(crate) dropout: Dropout,
    pub(crate) linear2: Linear,
    pub(crate) options: TransformerLayerOptions,
}

impl FeedForward {
    pub(crate) fn new(d_model: usize, o: &TransformerLayerOptions, seed: u64) -> FeedForward {
        FeedForward {
            linear1: Linear::with_options(
                d_model,
                o.dim_feedforward,
                o.bias,
                o.dtype,
                sub_seed(seed, 1),
            ),
            dropout: Dropout::new(o.dropout, sub_seed(seed, 2)),
            linear2: Linear::with_options(
                o.dim_feedforward,
                d_model,
                o.bias,
                o.dtype,
                sub_seed(seed, 3),
            ),
            options: *o,
        }
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Tensor {
        let h = self.options.activate(&self.linear1.forward(x));
        self.linear2.forward(&self.dropout.forward(&h))
    }
}

/// A transformer encoder layer, PyTorch's `nn.TransformerEncoderLayer`:
///
/// - post-norm (default): `x = norm1(x + sa(x)); x = norm2(x + ff(x))`;
/// - `norm_first`: `x = x + sa(norm1(x)); x = x + ff(norm2(x))`;
///
/// with `sa(x) = dropout1(self_attn(x, x, x))` and `ff(x) =
/// dropout2(linear2(dropout(activation(linear1(x)))))`. Input `[L, N, E]` (`[N, L, E]`
/// with `batch_first`) or `[L, E]`.
///
/// Parameters (PyTorch's names): `self_attn.in_proj_weight`, `self_attn.in_proj_bias`,
/// `self_attn.out_proj.weight`, `self_attn.out_proj.bias`, `linear1.weight`,
/// `linear1.bias`, `linear2.weight`, `linear2.bias`, `norm1.weight`, `norm1.bias`,
/// `norm2.weight`, `norm2.bias` (no biases with `bias: false`).
///
/// ```
/// use tapegrad::{DType, Tensor};
/// use tapegrad_nn::{Module, TransformerEncoderLayer, TransformerLayerOptions};
/// let opts = TransformerLayerOptions { dim_feedforward: 16, batch_first: true, ..Default::default() };
/// let layer = TransformerEncoderLayer::with_options(8, 2, opts, 0);
/// let x = Tensor::randn(&[2, 5, 8], DType::F32, 1);
/// assert_eq!(layer.forward(&x).shape(), &[2, 5, 8]);
/// assert_eq!(layer.named_params()[0].0, "self_attn.in_proj_weight");
/// ```
#[derive(Clone, Debug)]
pub struct TransformerEncoderLayer {
    /// Self-attention.
    pub self_attn: MultiheadAttention,
    pub(crate) ff: FeedForward,
    /// Normalises the attention block (its input with `norm_first`, else its output).
    pub norm1: LayerNorm,
    /// Normalises the feed-forward block.
    pub norm2: LayerNorm,
    dropout1: Dropout,
    dropout2: Dropout,
    norm_first: bool,
}

impl TransformerEncoderLayer {
    /// An `f32` layer with PyTorch's defaults (`dim_feedforward` 2048, dropout 0.1, ReLU).
    ///
    /// # Panics
    /// If `nhead` does not divide `d_model`.
    #[track_caller]
    pub fn new(d_model: usize, nhead: usize, seed: u64) -> TransformerEncoderLayer {
        TransformerEncoderLayer::with_options(d_model, nhead, Default::default(), seed)
    }

    /// A layer with the given options, initialised as PyTorch's from `seed`.
    ///
    /// # Panics
    /// If `nhead` does not divide `d_model` or the dropout is not in `[0, 1]`.
    #[track_caller]
    pub fn with_options(
        d_model: usize,
        nhead: usize,
        options: TransformerLayerOptions,
        seed: u64,
    ) -> TransformerEncoderLayer {
        TransformerEncoderLayer {
            self_attn: MultiheadAttention::with_options(
                d_model,
                nhead,
                options.attention(),
                sub_seed(seed, 0),
            ),
            ff: FeedForward::new(d_model, &options, seed),
            norm1: options.layer_norm(d_model),
            norm2: options.layer_norm(d_model),
            dropout1: Dropout::new(options.dropout, sub_seed(seed, 4)),
            dropout2: Dropout::new(options.dropout, sub_seed(seed, 5)),
            norm_first: options.norm_first,
        }
    }

    /// New random streams for every dropout of the layer (same weights), derived from
    /// `seed`: copies of one layer in a stack drop differently.
    pub(crate) fn reseed_dropout(&mut self, seed: u64) {
        let p = self.dropout1.p();
        self.self_attn.reseed_dropout(sub_seed(seed, 0));
        self.ff.dropout = Dropout::new(p, sub_seed(seed, 2));
        self.dropout1 = Dropout::new(p, sub_seed(seed, 4));
        self.dropout2 = Dropout::new(p, sub_seed(seed, 5));
    }

    /// The first linear layer of the feed-forward block (`d_model -> dim_feedforward`).
    pub fn linear1(&self) -> &Linear {
        &self.ff.linear1
    }

    /// The second linear layer of the feed-forward block (`dim_feedforward -> d_model`).
    pub fn linear2(&self) -> &Linear {
        &self.ff.linear2
    }

    /// The layer with masks, as PyTorch's `forward(src, src_mask, src_key_padding_mask,
    /// is_causal)` (see [`MhaOptions`] for the masks' shapes and `is_causal`; a `Bool`
    /// mask is `true` where masked out, as PyTorch).
    ///
    /// # Panics
    /// If the shapes do not fit.
    #[track_caller]
    pub fn forward_masked(
        &self,
        src: &Tensor,
        src_mask: Option<&AttnMask>,
        src_key_padding_mask: Option<&AttnMask>,
        is_causal: bool,
    ) -> Tensor {
        let attention = MhaOptions {
            key_padding_mask: src_key_padding_mask.cloned(),
            need_weights: false,
            attn_mask: src_mask.cloned(),
            average_attn_weights: true,
            is_causal,
        };
        let sa = |x: &Tensor| {
            let (out, _) = self.self_attn.forward_qkv(x, x, x, &attention);
            self.dropout1.forward(&out)
        };
        let ff = |x: &Tensor| self.dropout2.forward(&self.ff.forward(x));
        if self.norm_first {
            let x = src.add(&sa(&self.norm1.forward(src)));
            x.add(&ff(&self.norm2.forward(&x)))
        } else {
            let x = self.norm1.forward(&src.add(&sa(src)));
            self.norm2.forward(&x.add(&ff(&x)))
        }
    }
}

impl Module for TransformerEncoderLayer {
    /// The layer without masks.
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        self.forward_masked(x, None, None, false)
    }

    fn named_params(&self) -> Vec<(String, Param)> {
        let mut v = prefixed("self_attn", self.self_attn.named_params());
        v.extend(prefixed("linear1", self.ff.linear1.named_params()));
        v.extend(prefixed("linear2", self.ff.linear2.named_params()));
        v.extend(prefixed("norm1", self.norm1.named_params()));
        v.extend(prefixed("norm2", self.norm2.named_params()));
        v
    }

    fn named_counters(&self) -> Vec<(String, &AtomicU64)> {
        let mut v = prefixed("self_attn", self.self_attn.named_counters());
        v.extend(prefixed("dropout", self.ff.dropout.named_counters()));
        v.extend(prefixed("dropout1", self.dropout1.named_counters()));
        v.extend(prefixed("dropout2", self.dropout2.named_counters()));
        v
    }

    fn set_training(&mut self, training: bool) {
        self.self_attn.set_training(training);
        self.ff.dropout.set_training(training);
        self.dropout1.set_training(training);
        self.dropout2.set_training(training);
    }
}
