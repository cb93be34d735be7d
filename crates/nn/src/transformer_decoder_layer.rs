//! `TransformerDecoderLayer`: self-attention, attention over an encoder's output
//! (memory) and a feed-forward block, each with a residual connection and layer norm.

use std::sync::atomic::AtomicU64;

use tapegrad::Tensor;

use crate::transformer_encoder_layer::{sub_seed, FeedForward};
use crate::{
    prefixed, AttnMask, Dropout, LayerNorm, Linear, MhaOptions, Module, MultiheadAttention, Param,
    TransformerLayerOptions,
};

/// The masks of a decoder layer's forward, PyTorch's keyword arguments (all absent and
/// false by default); shapes and meaning as in [`MhaOptions`] (a `Bool` mask is `true`
/// where masked out, as PyTorch).
#[derive(Clone, Debug, Default)]
pub struct DecoderMasks {
    /// Self-attention mask `[T, T]` (or per head).
    pub tgt_mask: Option<AttnMask>,
    /// Cross-attention mask `[T, S]` (or per head).
    pub memory_mask: Option<AttnMask>,
    /// `[N, T]`: padding in the target.
    pub tgt_key_padding_mask: Option<AttnMask>,
    /// `[N, S]`: padding in the memory.
    pub memory_key_padding_mask: Option<AttnMask>,
    /// Causal self-attention (builds the mask if `tgt_mask` is absent).
    pub tgt_is_causal: bool,
    /// Causal cross-attention (builds the mask if `memory_mask` is absent).
    pub memory_is_causal: bool,
}

/// A transformer decoder layer, PyTorch's `nn.TransformerDecoderLayer`:
///
/// - post-norm (default): `x = norm1(x + sa(x)); x = norm2(x + mha(x, mem));
///   x = norm3(x + ff(x))`;
/// - `norm_first`: `x = x + sa(norm1(x)); x = x + mha(norm2(x), mem); x = x + ff(norm3(x))`;
///
/// with dropout after each block (`dropout1..3`) and inside the feed-forward block.
/// Target `[T, N, E]` and memory `[S, N, E]` (batch first with `batch_first`).
///
/// Parameters (PyTorch's names): `self_attn.*`, `multihead_attn.*` (each
/// `in_proj_weight`, `in_proj_bias`, `out_proj.weight`, `out_proj.bias`), `linear1.*`,
/// `linear2.*`, `norm1.*`, `norm2.*`, `norm3.*`. As a [`Module`] it needs the memory:
/// use [`forward_with_memory`](Self::forward_with_memory).
///
/// ```
/// use tapegrad::{DType, Tensor};
/// use tapegrad_nn::{DecoderMasks, TransformerDecoderLayer, TransformerLayerOptions};
/// let opts = TransformerLayerOptions { dim_feedforward: 16, ..Default::default() };
/// let layer = TransformerDecoderLayer::with_options(8, 2, opts, 0);
/// let tgt = Tensor::randn(&[4, 2, 8], DType::F32, 1);
/// let memory = Tensor::randn(&[6, 2, 8], DType::F32, 2);
/// let masks = DecoderMasks { tgt_is_causal: true, ..Default::default() };
/// assert_eq!(layer.forward_with_memory(&tgt, &memory, &masks).shape(), &[4, 2, 8]);
/// ```
#[derive(Clone, Debug)]
pub struct TransformerDecoderLayer {
    /// Self-attention over the target.
    pub self_attn: MultiheadAttention,
    /// Attention of the target over the memory.
    pub multihead_attn: MultiheadAttention,
    ff: FeedForward,
    /// Normalises the self-attention block.
    pub norm1: LayerNorm,
    /// Normalises the cross-attention block.
    pub norm2: LayerNorm,
    /// Normalises the feed-forward block.
    pub norm3: LayerNorm,
    dropout1: Dropout,
    dropout2: Dropout,
    dropout3: Dropout,
    norm_first: bool,
}

impl TransformerDecoderLayer {
    /// An `f32` layer with PyTorch's defaults (`dim_feedforward` 2048, dropout 0.1, ReLU).
    ///
    /// # Panics
    /// If `nhead` does not divide `d_model`.
    #[track_caller]
    pub fn new(d_model: usize, nhead: usize, seed: u64) -> TransformerDecoderLayer {
        TransformerDecoderLayer::with_options(d_model, nhead, Default::default(), seed)
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
    ) -> TransformerDecoderLayer {
        let attention = options.attention();
        TransformerDecoderLayer {
            self_attn: MultiheadAttention::with_options(
                d_model,
                nhead,
                attention,
                sub_seed(seed, 0),
            ),
            multihead_attn: MultiheadAttention::with_options(
                d_model,
                nhead,
                attention,
                sub_seed(seed, 6),
            ),
            ff: FeedForward::new(d_model, &options, seed),
            norm1: options.layer_norm(d_model),
            norm2: options.layer_norm(d_model),
            norm3: options.layer_norm(d_model),
            dropout1: Dropout::new(options.dropout, sub_seed(seed, 4)),
            dropout2: Dropout::new(options.dropout, sub_seed(seed, 5)),
            dropout3: Dropout::new(options.dropout, sub_seed(seed, 7)),
            norm_first: options.norm_first,
        }
    }

    /// The first linear layer of the feed-forward block (`d_model -> dim_feedforward`).
    pub fn linear1(&self) -> &Linear {
        &self.ff.linear1
    }

    /// The second linear layer of the feed-forward block (`dim_feedforward -> d_model`).
    pub fn linear2(&self) -> &Linear {
        &self.ff.linear2
    }

    /// The layer on target `tgt` attending over `memory`, as PyTorch's `forward(tgt,
    /// memory, tgt_mask, memory_mask, ...)`.
    ///
    /// # Panics
    /// If the shapes do not fit.
    #[track_caller]
    pub fn forward_with_memory(
        &self,
        tgt: &Tensor,
        memory: &Tensor,
        masks: &DecoderMasks,
    ) -> Tensor {
        let self_options = MhaOptions {
            key_padding_mask: masks.tgt_key_padding_mask.clone(),
            need_weights: false,
            attn_mask: masks.tgt_mask.clone(),
            average_attn_weights: true,
            is_causal: masks.tgt_is_causal,
        };
        let cross_options = MhaOptions {
            key_padding_mask: masks.memory_key_padding_mask.clone(),
            need_weights: false,
            attn_mask: masks.memory_mask.clone(),
            average_attn_weights: true,
            is_causal: masks.memory_is_causal,
        };
        let sa = |x: &Tensor| {
            let (out, _) = self.self_attn.forward_qkv(x, x, x, &self_options);
            self.dropout1.forward(&out)
        };
        let mha = |x: &Tensor| {
            let (out, _) = self
                .multihead_attn
                .forward_qkv(x, memory, memory, &cross_options);
            self.dropout2.forward(&out)
        };
        let ff = |x: &Tensor| self.dropout3.forward(&self.ff.forward(x));
        if self.norm_first {
            let x = tgt.add(&sa(&self.norm1.forward(tgt)));
            let x = x.add(&mha(&self.norm2.forward(&x)));
            x.add(&ff(&self.norm3.forward(&x)))
        } else {
            let x = self.norm1.forward(&tgt.add(&sa(tgt)));
            let x = self.norm2.forward(&x.add(&mha(&x)));
            self.norm3.forward(&x.add(&ff(&x)))
        }
    }
}

impl Module for TransformerDecoderLayer {
    /// # Panics
    /// Always: a decoder layer needs the memory; use
    /// [`forward_with_memory`](TransformerDecoderLayer::forward_with_memory).
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        panic!(
            "TransformerDecoderLayer: forward needs the memory as well as the target {:?}; call forward_with_memory(tgt, memory, masks)",
            x.shape()
        )
    }

    fn named_params(&self) -> Vec<(String, Param)> {
        let mut v = prefixed("self_attn", self.self_attn.named_params());
        v.extend(prefixed(
            "multihead_attn",
            self.multihead_attn.named_params(),
        ));
        v.extend(prefixed("linear1", self.ff.linear1.named_params()));
        v.extend(prefixed("linear2", self.ff.linear2.named_params()));
        v.extend(prefixed("norm1", self.norm1.named_params()));
        v.extend(prefixed("norm2", self.norm2.named_params()));
        v.extend(prefixed("norm3", self.norm3.named_params()));
        v
    }

    fn named_counters(&self) -> Vec<(String, &AtomicU64)> {
        let mut v = prefixed("self_attn", self.self_attn.named_counters());
        v.extend(prefixed(
            "multihead_attn",
            self.multihead_attn.named_counters(),
        ));
        v.extend(prefixed("dropout", self.ff.dropout.named_counters()));
        v.extend(prefixed("dropout1", self.dropout1.named_counters()));
        v.extend(prefixed("dropout2", self.dropout2.named_counters()));
        v.extend(prefixed("dropout3", self.dropout3.named_counters()));
        v
    }

    fn set_training(&mut self, training: bool) {
        self.self_attn.set_training(training);
        self.multihead_attn.set_training(training);
        self.ff.dropout.set_training(training);
        self.dropout1.set_training(training);
        self.dropout2.set_training(training);
        self.dropout3.set_training(training);
    }
}
