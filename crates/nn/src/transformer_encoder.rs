//! `TransformerEncoder`: a stack of identical encoder layers and an optional final norm.

use std::sync::atomic::AtomicU64;

use tapegrad::Tensor;

use crate::{
    prefixed, AttnMask, LayerNorm, Module, Param, TransformerEncoderLayer, TransformerLayerOptions,
};

/// A stack of `num_layers` [`TransformerEncoderLayer`]s and an optional final
/// [`LayerNorm`], PyTorch's `nn.TransformerEncoder`. As in PyTorch (which deep-copies
/// one layer), every layer starts with the same weights; each has its own parameters
/// and dropout streams.
///
/// Parameters (PyTorch's names): `layers.0.self_attn.in_proj_weight`, ...,
/// `layers.{num_layers-1}.norm2.bias`, then `norm.weight`, `norm.bias` if there is a
/// final norm.
///
/// ```
/// use tapegrad::{DType, Tensor};
/// use tapegrad_nn::{LayerNorm, Module, TransformerEncoder, TransformerLayerOptions};
/// let opts = TransformerLayerOptions { dim_feedforward: 16, dropout: 0.0, ..Default::default() };
/// let enc = TransformerEncoder::new(8, 2, opts, 2, Some(LayerNorm::new(&[8])), 0);
/// let x = Tensor::randn(&[5, 3, 8], DType::F32, 1);
/// assert_eq!(enc.forward(&x).shape(), &[5, 3, 8]);
/// let names: Vec<String> = enc.named_params().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names[0], "layers.0.self_attn.in_proj_weight");
/// assert_eq!(names.last().unwrap(), "norm.bias");
/// ```
#[derive(Clone, Debug)]
pub struct TransformerEncoder {
    /// The layers, applied in order.
    pub layers: Vec<TransformerEncoderLayer>,
    /// Applied after the last layer, if present.
    pub norm: Option<LayerNorm>,
}

impl TransformerEncoder {
    /// `num_layers` layers `TransformerEncoderLayer::with_options(d_model, nhead,
    /// options, seed)` (equal initial weights, separate dropout streams) and the final
    /// `norm`.
    ///
    /// # Panics
    /// If `nhead` does not divide `d_model` or the dropout is not in `[0, 1]`.
    #[track_caller]
    pub fn new(
        d_model: usize,
        nhead: usize,
        options: TransformerLayerOptions,
        num_layers: usize,
        norm: Option<LayerNorm>,
        seed: u64,
    ) -> TransformerEncoder {
        let layers = (0..num_layers)
            .map(|i| {
                let mut layer =
                    TransformerEncoderLayer::with_options(d_model, nhead, options, seed);
                layer.reseed_dropout(seed.wrapping_add(i as u64 + 1));
                layer
            })
            .collect();
        TransformerEncoder { layers, norm }
    }

    /// The stack with masks, as PyTorch's `forward(src, mask, src_key_padding_mask,
    /// is_causal)`: every layer gets the same masks (a `Bool` mask is `true` where
    /// masked out, as PyTorch's; see [`MhaOptions`](crate::MhaOptions)).
    ///
    /// # Panics
    /// If the shapes do not fit.
    #[track_caller]
    pub fn forward_masked(
        &self,
        src: &Tensor,
        mask: Option<&AttnMask>,
        src_key_padding_mask: Option<&AttnMask>,
        is_causal: bool,
    ) -> Tensor {
        let mut x = src.clone();
        for layer in &self.layers {
            x = layer.forward_masked(&x, mask, src_key_padding_mask, is_causal);
        }
        match &self.norm {
            Some(n) => n.forward(&x),
            None => x,
        }
    }
}

impl Module for TransformerEncoder {
    /// The stack without masks.
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        self.forward_masked(x, None, None, false)
    }

    fn named_params(&self) -> Vec<(String, Param)> {
        let mut v = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            v.extend(prefixed(&format!("layers.{i}"), layer.named_params()));
        }
        if let Some(n) = &self.norm {
            v.extend(prefixed("norm", n.named_params()));
        }
        v
    }

    fn named_counters(&self) -> Vec<(String, &AtomicU64)> {
        let mut v = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            v.extend(prefixed(&format!("layers.{i}"), layer.named_counters()));
        }
        v
    }

    fn set_training(&mut self, training: bool) {
        for layer in &mut self.layers {
            layer.set_training(training);
        }
    }
}
