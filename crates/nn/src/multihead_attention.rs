//! `MultiheadAttention`: PyTorch's `nn.MultiheadAttention` (packed input projection,
//! output projection, key padding and attention masks, optional returned weights).

use std::sync::atomic::AtomicU64;

use tapegrad::{DType, Tensor};

use crate::attention::{
    attention_with_weights, scaled_dot_product_attention, AttnDropout, AttnMask,
};
use crate::init::xavier_uniform;
use crate::{prefixed, Dropout, Linear, Module, Param};

/// Construction options of [`MultiheadAttention`], PyTorch's defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MultiheadAttentionOptions {
    /// Dropout on the attention weights (training mode only). Default 0.
    pub dropout: f64,
    /// Biases in the input and output projections. Default true.
    pub bias: bool,
    /// Inputs and outputs are `[N, L, E]` rather than `[L, N, E]`. Default false.
    pub batch_first: bool,
    /// Parameter dtype. Default `F32`.
    pub dtype: DType,
}

impl Default for MultiheadAttentionOptions {
    fn default() -> Self {
        MultiheadAttentionOptions {
            dropout: 0.0,
            bias: true,
            batch_first: false,
            dtype: DType::F32,
        }
    }
}

/// Per-call arguments of [`MultiheadAttention::forward_qkv`], PyTorch's keyword
/// arguments with their defaults (`need_weights` and `average_attn_weights` true).
#[derive(Clone, Debug)]
pub struct MhaOptions {
    /// `[N, S]` (or `[S]` unbatched), applied to every query's scores of that batch
    /// element: a `Bool` mask is `true` at padding keys (ignored), as PyTorch; an
    /// additive one is `-inf` there and `0` elsewhere.
    pub key_padding_mask: Option<AttnMask>,
    /// Return the attention weights.
    pub need_weights: bool,
    /// `[L, S]` or `[N * num_heads, L, S]` (`[num_heads, L, S]` unbatched). A `Bool`
    /// mask is `true` where a query may *not* attend (PyTorch's convention here, the
    /// opposite of [`scaled_dot_product_attention`](crate::functional::scaled_dot_product_attention)'s);
    /// an additive one is added to the scores.
    pub attn_mask: Option<AttnMask>,
    /// Average the returned weights over heads (`[N, L, S]`) rather than per head
    /// (`[N, num_heads, L, S]`).
    pub average_attn_weights: bool,
    /// Causal attention. As in PyTorch, with an `attn_mask` this is a hint (the mask is
    /// used as given); without one, the causal `[L, S]` mask is built and combined with
    /// any `key_padding_mask` (PyTorch raises there).
    pub is_causal: bool,
}

impl Default for MhaOptions {
    fn default() -> Self {
        MhaOptions {
            key_padding_mask: None,
            need_weights: true,
            attn_mask: None,
            average_attn_weights: true,
            is_causal: false,
        }
    }
}

/// The weights of a multi-head attention, for [`multi_head_attention`].
#[derive(Clone, Copy, Debug)]
pub struct MhaWeights<'a> {
    /// `[3E, E]`: the query, key and value projections stacked.
    pub in_proj_weight: &'a Tensor,
    /// `[3E]`.
    pub in_proj_bias: Option<&'a Tensor>,
    /// `[E, E]`.
    pub out_proj_weight: &'a Tensor,
    /// `[E]`.
    pub out_proj_bias: Option<&'a Tensor>,
}

/// Multi-head attention as PyTorch's `F.multi_head_attention_forward`, sequence first:
/// `query [L, N, E]`, `key` and `value` `[S, N, E]` (or unbatched `[L, E]`, `[S, E]`).
/// Projects with `in_proj_weight` (rows `0..E` for queries, `E..2E` keys, `2E..3E`
/// values), attends per head (`E / num_heads` features each, see
/// [`scaled_dot_product_attention`](crate::functional::scaled_dot_product_attention)),
/// and projects the concatenated heads with `out_proj`. Returns the output `[L, N, E]`
/// and, if `options.need_weights`, the weights `[N, L, S]` (averaged over heads) or
/// `[N, num_heads, L, S]`.
///
/// # Panics
/// If the shapes do not fit (naming them), `num_heads` does not divide `E`, or a mask
/// has the wrong shape.
///
/// ```
/// use tapegrad::{DType, Tensor};
/// use tapegrad_nn::functional::{multi_head_attention, MhaWeights};
/// use tapegrad_nn::MhaOptions;
/// let (e, h) = (4, 2);
/// let w = Tensor::randn(&[3 * e, e], DType::F64, 0);
/// let ow = Tensor::eye(e, DType::F64);
/// let weights = MhaWeights { in_proj_weight: &w, in_proj_bias: None, out_proj_weight: &ow, out_proj_bias: None };
/// let x = Tensor::randn(&[5, 2, e], DType::F64, 1);
/// let (out, attn) = multi_head_attention(&x, &x, &x, h, weights, &MhaOptions::default(), None);
/// assert_eq!(out.shape(), &[5, 2, 4]);
/// assert_eq!(attn.unwrap().shape(), &[2, 5, 5]);
/// ```
#[track_caller]
pub fn multi_head_attention(
    query: &Tensor,
    key: &Tensor,
    value: &Tensor,
    num_heads: usize,
    weights: MhaWeights<'_>,
    options: &MhaOptions,
    dropout: Option<AttnDropout>,
) -> (Tensor, Option<Tensor>) {
    let unbatched = query.rank() == 2;
    // Self-attention (one tensor as query, key and value) projects with one product.
    let self_attention = query.id() == key.id() && key.id() == value.id();
    let (query, key, value) = if unbatched {
        (query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1))
    } else {
        (query.clone(), key.clone(), value.clone())
    };
    let e = weights.in_proj_weight.shape().get(1).copied().unwrap_or(0);
    let shapes_fit = query.rank() == 3
        && key.rank() == 3
        && key.shape() == value.shape()
        && query.shape()[2] == e
        && key.shape()[2] == e
        && query.shape()[1] == key.shape()[1]
        && weights.in_proj_weight.shape() == [3 * e, e];
    if !shapes_fit {
        panic!(
            "multi_head_attention: expected query [L, N, E], key and value [S, N, E] (or [L, E], [S, E]) with E = {e} and in_proj_weight [3E, E]; got query {:?}, key {:?}, value {:?}, in_proj_weight {:?}",
            query.shape(),
            key.shape(),
            value.shape(),
            weights.in_proj_weight.shape()
        );
    }
    if num_heads == 0 || !e.is_multiple_of(num_heads) {
        panic!("multi_head_attention: num_heads = {num_heads} must divide embed_dim = {e}");
    }
    let (l, n, s, hd) = (
        query.shape()[0],
        query.shape()[1],
        key.shape()[0],
        e / num_heads,
    );
    let project = |x: &Tensor, part: usize, len: usize| {
        let w = weights.in_proj_weight.narrow(0, part * e, e);
        let y = x.matmul(&w.t());
        let y = match weights.in_proj_bias {
            Some(b) => y.add(&b.narrow(0, part * e, e)),
            None => y,
        };
        // [len, N, E] -> [N, heads, len, head_dim]
        y.reshape_to(&[len, n, num_heads, hd])
            .permute(&[1, 2, 0, 3])
    };
    let (q, k, v) = if self_attention {
        let y = query.matmul(&weights.in_proj_weight.t());
        let y = match weights.in_proj_bias {
            Some(b) => y.add(b),
            None => y,
        };
        // [L, N, 3E] -> [3, N, heads, L, head_dim]
        let y = y
            .reshape_to(&[l, n, 3, num_heads, hd])
            .permute(&[2, 1, 3, 0, 4]);
        let part = |i: usize| y.narrow(0, i, 1).squeeze(0);
        (part(0), part(1), part(2))
    } else {
        (
            project(&query, 0, l),
            project(&key, 1, s),
            project(&value, 2, s),
        )
    };
    let attn_mask = options.attn_mask.as_ref().map(|m| {
        let shape = m.tensor().shape();
        let ok2 = shape == [l, s];
        let ok3 = shape == [n * num_heads, l, s];
        if !ok2 && !ok3 {
            panic!(
                "multi_head_attention: attn_mask must be [L, S] = [{l}, {s}] or [N * num_heads, L, S] = [{}, {l}, {s}], got {shape:?}",
                n * num_heads,
            );
        }
        let shape: &[usize] = if ok3 { &[n, num_heads, l, s] } else { &[l, s] };
        for_sdpa("attn_mask", m, shape)
    });
    // `is_causal` without a mask: build it (it then combines with any padding mask).
    let attn_mask = attn_mask.or_else(|| {
        options
            .is_causal
            .then(|| AttnMask::causal(l, s, query.dtype()))
    });
    let padding_mask = options.key_padding_mask.as_ref().map(|m| {
        let shape = m.tensor().shape();
        let want: &[usize] = if unbatched { &[s] } else { &[n, s] };
        if shape != want {
            panic!(
                "multi_head_attention: key_padding_mask must be {want:?} ([N, S], [S] unbatched), got {shape:?}"
            );
        }
        for_sdpa("key_padding_mask", m, &[n, 1, 1, s])
    });
    let mask = match (attn_mask, padding_mask) {
        (Some(a), Some(p)) => Some(a.merge(&p)),
        (a, p) => a.or(p),
    };
    // Without weights to return, attention is the fused op (nothing [L, S] kept).
    let (out, attn) = if options.need_weights {
        let (out, attn) = attention_with_weights(&q, &k, &v, mask.as_ref(), false, dropout, None);
        (out, Some(attn))
    } else {
        let out = scaled_dot_product_attention(&q, &k, &v, mask.as_ref(), false, dropout, None);
        (out, None)
    };
    // [N, heads, L, head_dim] -> [L, N, E]
    let out = out.permute(&[2, 0, 1, 3]).reshape_to(&[l, n, e]);
    let out = out.matmul(&weights.out_proj_weight.t());
    let out = match weights.out_proj_bias {
        Some(b) => out.add(b),
        None => out,
    };
    let attn = attn.map(|attn| {
        let a = if options.average_attn_weights {
            attn.mean_dim(&[1], false)
        } else {
            attn
        };
        if unbatched {
            a.squeeze(0)
        } else {
            a
        }
    });
    let out = if unbatched { out.squeeze(1) } else { out };
    (out, attn)
}

/// A multi-head attention mask reshaped to `shape` and turned into scaled dot-product
/// attention's convention: a `Bool` mask here means "masked out" where `true` (PyTorch's
/// convention for `nn.MultiheadAttention`), there "takes part", so it is negated.
#[track_caller]
fn for_sdpa(what: &str, m: &AttnMask, shape: &[usize]) -> AttnMask {
    match m {
        AttnMask::Additive(t) => AttnMask::Additive(t.reshape_to(shape)),
        AttnMask::Bool(t) => {
            if t.dtype() != DType::Bool {
                panic!(
                    "multi_head_attention: {what} AttnMask::Bool must be a bool tensor, got {} {:?}",
                    t.dtype(),
                    t.shape()
                );
            }
            AttnMask::Bool(t.logical_not().reshape_to(shape))
        }
    }
}

/// Multi-head attention, PyTorch's `nn.MultiheadAttention` (with `kdim = vdim =
/// embed_dim`, no `add_bias_kv`, no `add_zero_attn`): see [`multi_head_attention`] for
/// the computation. Inputs `[L, N, E]` (`[N, L, E]` with `batch_first`) or unbatched
/// `[L, E]`.
///
/// Parameters (PyTorch's names and initialisation): `in_proj_weight [3E, E]` (Xavier
/// uniform), `in_proj_bias [3E]` (zeros), `out_proj.weight [E, E]` (as `Linear`),
/// `out_proj.bias [E]` (zeros). As a [`Module`], `forward(x)` is self-attention without
/// masks; [`forward_qkv`](Self::forward_qkv) takes everything PyTorch's forward takes.
///
/// ```
/// use tapegrad::{DType, Tensor};
/// use tapegrad_nn::{MhaOptions, Module, MultiheadAttention, MultiheadAttentionOptions};
/// let opts = MultiheadAttentionOptions { batch_first: true, ..Default::default() };
/// let mha = MultiheadAttention::with_options(8, 2, opts, 0);
/// let names: Vec<String> = mha.named_params().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"]);
/// let x = Tensor::randn(&[3, 5, 8], DType::F32, 1);
/// let (out, weights) = mha.forward_qkv(&x, &x, &x, &MhaOptions::default());
/// assert_eq!(out.shape(), &[3, 5, 8]);
/// assert_eq!(weights.unwrap().shape(), &[3, 5, 5]);
/// ```
#[derive(Clone, Debug)]
pub struct MultiheadAttention {
    /// `E`.
    pub embed_dim: usize,
    /// Number of heads; divides `E`.
    pub num_heads: usize,
    /// Inputs and outputs are `[N, L, E]`.
    pub batch_first: bool,
    /// `[3E, E]`.
    pub in_proj_weight: Param,
    /// `[3E]`, if the layer has biases.
    pub in_proj_bias: Option<Param>,
    /// `E -> E`.
    pub out_proj: Linear,
    dropout: Dropout,
}

impl MultiheadAttention {
    /// An `f32` layer with PyTorch's defaults, initialised from `seed`.
    ///
    /// # Panics
    /// If `num_heads` does not divide `embed_dim`.
    #[track_caller]
    pub fn new(embed_dim: usize, num_heads: usize, seed: u64) -> MultiheadAttention {
        MultiheadAttention::with_options(embed_dim, num_heads, Default::default(), seed)
    }

    /// A layer with the given options, initialised as PyTorch's from `seed`.
    ///
    /// # Panics
    /// If `num_heads` does not divide `embed_dim` or the dropout is not in `[0, 1]`.
    #[track_caller]
    pub fn with_options(
        embed_dim: usize,
        num_heads: usize,
        options: MultiheadAttentionOptions,
        seed: u64,
    ) -> MultiheadAttention {
        if num_heads == 0 || !embed_dim.is_multiple_of(num_heads) {
            panic!(
                "MultiheadAttention: num_heads = {num_heads} must divide embed_dim = {embed_dim}"
            );
        }
        let e = embed_dim;
        let dtype = options.dtype;
        let in_proj_weight = Param::new(xavier_uniform(&[3 * e, e], 1.0, dtype, seed));
        let in_proj_bias = options
            .bias
            .then(|| Param::new(Tensor::zeros(&[3 * e], dtype)));
        let mut out_proj =
            Linear::with_options(e, e, options.bias, dtype, seed.wrapping_add(0x5851_F42D));
        if options.bias {
            out_proj.bias = Some(Param::new(Tensor::zeros(&[e], dtype)));
        }
        MultiheadAttention {
            embed_dim,
            num_heads,
            batch_first: options.batch_first,
            in_proj_weight,
            in_proj_bias,
            out_proj,
            dropout: Dropout::new(options.dropout, seed.wrapping_add(0x2545_F491)),
        }
    }

    /// A new random stream for the attention dropout, from `seed`.
    pub(crate) fn reseed_dropout(&mut self, seed: u64) {
        let mut dropout = Dropout::new(self.dropout.p(), seed);
        dropout.set_training(self.dropout.is_training());
        self.dropout = dropout;
    }

    /// Attention of `query` over `key`/`value`, as PyTorch's forward: returns the output
    /// (the layout of the inputs) and, if `options.need_weights`, the attention weights.
    ///
    /// # Panics
    /// As [`multi_head_attention`].
    #[track_caller]
    pub fn forward_qkv(
        &self,
        query: &Tensor,
        key: &Tensor,
        value: &Tensor,
        options: &MhaOptions,
    ) -> (Tensor, Option<Tensor>) {
        let seq_first = |t: &Tensor| {
            if self.batch_first && t.rank() == 3 {
                t.transpose(0, 1)
            } else {
                t.clone()
            }
        };
        let weights = MhaWeights {
            in_proj_weight: &self.in_proj_weight,
            in_proj_bias: self.in_proj_bias.as_deref(),
            out_proj_weight: &self.out_proj.weight,
            out_proj_bias: self.out_proj.bias.as_deref(),
        };
        let dropout = self.dropout.next_seed().map(|seed| AttnDropout {
            p: self.dropout.p(),
            seed,
        });
        // The same tensor as query, key and value stays one tensor: the functional form
        // then projects it with one product.
        let same = query.id() == key.id() && key.id() == value.id();
        let query = seq_first(query);
        let (key, value) = if same {
            (query.clone(), query.clone())
        } else {
            (seq_first(key), seq_first(value))
        };
        let (out, attn) = multi_head_attention(
            &query,
            &key,
            &value,
            self.num_heads,
            weights,
            options,
            dropout,
        );
        (seq_first(&out), attn)
    }
}

impl Module for MultiheadAttention {
    /// Self-attention of `x` without masks (weights not computed for return).
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        let options = MhaOptions {
            need_weights: false,
            ..Default::default()
        };
        self.forward_qkv(x, x, x, &options).0
    }

    fn named_params(&self) -> Vec<(String, Param)> {
        let mut v = vec![("in_proj_weight".to_string(), self.in_proj_weight.clone())];
        v.extend(
            self.in_proj_bias
                .iter()
                .map(|b| ("in_proj_bias".to_string(), b.clone())),
        );
        v.extend(prefixed("out_proj", self.out_proj.named_params()));
        v
    }

    /// `"dropout.calls"`: the attention dropout's position in its random stream.
    fn named_counters(&self) -> Vec<(String, &AtomicU64)> {
        prefixed("dropout", self.dropout.named_counters())
    }

    fn set_training(&mut self, training: bool) {
        self.dropout.set_training(training);
    }
}
