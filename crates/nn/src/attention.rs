//! `scaled_dot_product_attention`: `softmax(q k^T * scale + mask) v`, with causal,
//! additive and boolean masks, attention dropout, and a softmax that saves only its output.

use ndarray::{ArrayD, Axis};
use tapegrad::shape::broadcast_shapes;
use tapegrad::{no_grad, DType, Element, Op, Tensor};

/// A mask over the attention scores `[.., L, S]` (it broadcasts to that shape), of
/// either kind PyTorch takes:
///
/// - [`Additive`](Self::Additive): a float mask added to the scaled scores before the
///   softmax, so `0` keeps a position and `-inf` removes it (any other value biases it).
/// - [`Bool`](Self::Bool): a `Bool` tensor whose meaning follows PyTorch, and so depends
///   on the function it is given to. In
///   [`scaled_dot_product_attention`](crate::functional::scaled_dot_product_attention)
///   `true` means "takes part" (may be attended to). In
///   [`MultiheadAttention`](crate::MultiheadAttention) and the `Transformer*` layers
///   (`attn_mask`, `key_padding_mask` and the decoder's masks) `true` means "masked out".
///
/// A Bool mask gives the same result as the additive mask with `0` where a position takes
/// part and `-inf` where it does not ([`to_additive`](Self::to_additive)).
///
/// ```
/// use tapegrad::{DType, Tensor};
/// use tapegrad_nn::AttnMask;
/// let keep = Tensor::from_vec(vec![true, false], &[2]);
/// let m = AttnMask::Bool(keep).to_additive(DType::F32);
/// assert_eq!(m.to_vec::<f32>(), vec![0.0, f32::NEG_INFINITY]);
/// ```
#[derive(Clone, Debug)]
pub enum AttnMask {
    /// Added to the scaled scores; of the scores' dtype. It may require grad.
    Additive(Tensor),
    /// A `Bool` tensor: `true` = takes part for scaled dot-product attention, `true` =
    /// masked out for multi-head attention and the Transformer layers (as PyTorch).
    Bool(Tensor),
}

impl AttnMask {
    /// The causal mask of `L` queries over `S` keys, aligned top-left as PyTorch's
    /// `is_causal` (query `i` sees keys `0..=i`): `[L, S]`, `0` on and below the
    /// diagonal, `-inf` above. The same in every function that takes a mask.
    ///
    /// ```
    /// use tapegrad::DType;
    /// use tapegrad_nn::AttnMask;
    /// let AttnMask::Additive(m) = AttnMask::causal(2, 3, DType::F64) else { unreachable!() };
    /// let inf = f64::INFINITY;
    /// assert_eq!(m.to_vec::<f64>(), vec![0.0, -inf, -inf, 0.0, 0.0, -inf]);
    /// ```
    pub fn causal(l: usize, s: usize, dtype: DType) -> AttnMask {
        AttnMask::Additive(AttnMask::causal_bool(l, s).to_additive(dtype))
    }

    /// The causal mask as a `Bool` mask in scaled dot-product attention's convention:
    /// `[L, S]`, `true` (takes part) on and below the diagonal, as PyTorch's
    /// `torch.ones(L, S, dtype=torch.bool).tril()`. For
    /// [`MultiheadAttention`](crate::MultiheadAttention), where `true` means masked out,
    /// use `is_causal`, [`causal`](Self::causal), or this mask's `logical_not()`.
    ///
    /// ```
    /// use tapegrad_nn::AttnMask;
    /// let AttnMask::Bool(m) = AttnMask::causal_bool(2, 3) else { unreachable!() };
    /// assert_eq!(m.to_vec::<bool>(), vec![true, false, false, true, true, false]);
    /// ```
    pub fn causal_bool(l: usize, s: usize) -> AttnMask {
        let keep: Vec<bool> = (0..l).flat_map(|i| (0..s).map(move |j| j <= i)).collect();
        AttnMask::Bool(Tensor::from_vec(keep, &[l, s]))
    }

    /// The mask's tensor (float for `Additive`, `Bool` for `Bool`).
    pub fn tensor(&self) -> &Tensor {
        match self {
            AttnMask::Additive(t) | AttnMask::Bool(t) => t,
        }
    }

    /// The mask as an additive float mask of `dtype`, reading a `Bool` mask in scaled
    /// dot-product attention's convention: `0` where `true` (takes part), `-inf` where
    /// `false`. An additive mask is returned as it is (whatever its dtype: the function
    /// given it checks that against the scores).
    ///
    /// # Panics
    /// If a `Bool` mask's tensor is not of dtype `Bool`.
    #[track_caller]
    pub fn to_additive(&self, dtype: DType) -> Tensor {
        match self {
            AttnMask::Additive(t) => t.clone(),
            AttnMask::Bool(keep) => {
                check_bool(keep);
                let zero = Tensor::zeros(&[], dtype);
                let minus_inf = Tensor::full(&[], f64::NEG_INFINITY, dtype);
                Tensor::where_(keep, &zero, &minus_inf).broadcast_to(keep.shape())
            }
        }
    }

    /// Both masks applied (in scaled dot-product attention's convention): the `and` of
    /// two `Bool` masks, else the sum of the additive forms (of the additive mask's
    /// dtype), broadcast.
    ///
    /// # Panics
    /// If the shapes do not broadcast, or a `Bool` mask's tensor is not `Bool`.
    #[track_caller]
    pub fn merge(&self, other: &AttnMask) -> AttnMask {
        match (self, other) {
            (AttnMask::Bool(a), AttnMask::Bool(b)) => {
                check_bool(a);
                check_bool(b);
                AttnMask::Bool(a.logical_and(b))
            }
            (AttnMask::Additive(a), m) | (m, AttnMask::Additive(a)) => {
                AttnMask::Additive(a.add(&m.to_additive(a.dtype())))
            }
        }
    }
}

#[track_caller]
fn check_bool(t: &Tensor) {
    if t.dtype() != DType::Bool {
        panic!(
            "AttnMask::Bool: the mask must be a bool tensor, got {} {:?}; use AttnMask::Additive for a float mask",
            t.dtype(),
            t.shape()
        );
    }
}

/// Dropout on the attention weights: probability `p`, mask drawn from a generator seeded
/// with `seed` (see [`Tensor::dropout`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttnDropout {
    /// Probability of zeroing each weight, in `[0, 1]`.
    pub p: f64,
    /// Seed of the mask.
    pub seed: u64,
}

/// Scaled dot-product attention, as PyTorch's `F.scaled_dot_product_attention`:
///
/// `softmax(q k^T * scale + mask) v`
///
/// with `q: [.., L, E]`, `k: [.., S, E]`, `v: [.., S, Ev]` (leading dimensions
/// broadcast), output `[.., L, Ev]`. `scale` defaults to `1 / sqrt(E)`. `attn_mask`
/// broadcasts to the scores `[.., L, S]` (a [`AttnMask::Bool`] is `true` where a key
/// takes part, as PyTorch's); `is_causal` masks key `j > i` for query `i`
/// (and excludes `attn_mask`, as in PyTorch). `dropout`, if given, drops attention
/// weights after the softmax (the caller passes it only in training).
///
/// A query whose every key is masked (`-inf`) gets all-zero weights, hence a zero output
/// and zero gradients, as PyTorch's SDPA math path since 2.5 (older PyTorch and
/// `nn.MultiheadAttention` with `need_weights` give NaN there).
///
/// Memory: without dropout this is one fused op,
/// [`Tensor::scaled_dot_product_attention`]: it computes the scores a block of queries at
/// a time and keeps for backward only `q`, `k`, `v`, the output and one log-sum-exp per
/// query, no `[L, S]` matrix; backward recomputes each block's weights from them. With
/// dropout it is composed (as [`attention_with_weights`]): it keeps `q * scale`, `k`,
/// `v`, the softmax output and the dropped weights (the mask is drawn again from its
/// seed in backward, not kept).
///
/// # Panics
/// If a rank is below 2, the dtypes differ, `E` of `q` and `k` or `S` of `k` and `v`
/// differ, the mask does not broadcast to the scores, or both a mask and `is_causal` are
/// given.
///
/// ```
/// use tapegrad::Tensor;
/// use tapegrad_nn::functional::scaled_dot_product_attention;
/// let q = Tensor::from_vec(vec![1.0f64, 0.0], &[1, 2]);
/// let k = Tensor::from_vec(vec![1.0f64, 0.0, 0.0, 1.0], &[2, 2]);
/// let v = Tensor::from_vec(vec![10.0f64, 20.0], &[2, 1]);
/// let out = scaled_dot_product_attention(&q, &k, &v, None, false, None, Some(1.0));
/// let w = 1.0f64.exp() / (1.0f64.exp() + 1.0);
/// assert!((out.to_vec::<f64>()[0] - (10.0 * w + 20.0 * (1.0 - w))).abs() < 1e-12);
/// ```
#[track_caller]
pub fn scaled_dot_product_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    attn_mask: Option<&AttnMask>,
    is_causal: bool,
    dropout: Option<AttnDropout>,
    scale: Option<f64>,
) -> Tensor {
    if matches!(dropout, Some(d) if d.p > 0.0) {
        return attention_with_weights(q, k, v, attn_mask, is_causal, dropout, scale).0;
    }
    check_qkv(q, k, v);
    let mask = checked_mask(q, k, attn_mask, is_causal);
    // One fused op: scores a block of queries at a time, nothing [L, S] kept.
    q.scaled_dot_product_attention(k, v, mask.as_ref(), is_causal, scale)
}

/// [`scaled_dot_product_attention`] returning also the attention weights `[.., L, S]`
/// (after dropout, as `nn.MultiheadAttention` returns them). Composed of tensor ops,
/// since the weights are wanted: it keeps for backward `q * scale`, `k`, `v` and the
/// softmax output (one `[L, S]` matrix per head, shared with the weights' product with
/// `v`), not the scores or their exponentials; with dropout, the dropped weights too.
///
/// # Panics
/// As [`scaled_dot_product_attention`].
#[track_caller]
pub fn attention_with_weights(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    attn_mask: Option<&AttnMask>,
    is_causal: bool,
    dropout: Option<AttnDropout>,
    scale: Option<f64>,
) -> (Tensor, Tensor) {
    check_qkv(q, k, v);
    let (l, e) = (q.shape()[q.rank() - 2], q.shape()[q.rank() - 1]);
    let s = k.shape()[k.rank() - 2];
    let scale = scale.unwrap_or(1.0 / (e as f64).sqrt());
    // Scaling q ([L, E]) costs less than scaling the scores ([L, S]).
    let scores = q.mul_scalar(scale).matmul(&k.transpose(-1, -2));
    let mask = match checked_mask(q, k, attn_mask, is_causal) {
        Some(m) => Some(m),
        None if is_causal => Some(AttnMask::causal(l, s, q.dtype()).to_additive(q.dtype())),
        None => None,
    };
    let scores = match mask {
        Some(m) => scores.add(&m),
        None => scores,
    };
    let weights = attention_softmax(&scores);
    let weights = match dropout {
        Some(d) if d.p > 0.0 => dropout_recomputing_mask(&weights, d),
        _ => weights,
    };
    (weights.matmul(v), weights)
}

/// The additive mask of `attn_mask`, checked against the scores of `q` and `k`.
///
/// # Panics
/// If both a mask and `is_causal` are given, or the mask does not broadcast to the
/// scores `[.., L, S]` or has another dtype.
#[track_caller]
fn checked_mask(
    q: &Tensor,
    k: &Tensor,
    attn_mask: Option<&AttnMask>,
    is_causal: bool,
) -> Option<Tensor> {
    let m = match (attn_mask, is_causal) {
        (Some(_), true) => {
            panic!("scaled_dot_product_attention: give either attn_mask or is_causal, not both")
        }
        (Some(m), false) => m.to_additive(q.dtype()),
        (None, _) => return None,
    };
    let (qb, kb) = (&q.shape()[..q.rank() - 2], &k.shape()[..k.rank() - 2]);
    let mut scores = broadcast_shapes(qb, kb)
        .map(|b| b.to_vec())
        .unwrap_or_default();
    scores.extend([q.shape()[q.rank() - 2], k.shape()[k.rank() - 2]]);
    if m.dtype() != q.dtype()
        || broadcast_shapes(m.shape(), &scores).as_deref() != Some(&scores[..])
    {
        panic!(
            "scaled_dot_product_attention: the mask ({:?} {}) must broadcast to the scores {:?} {}",
            m.shape(),
            m.dtype(),
            scores,
            q.dtype()
        );
    }
    Some(m)
}

#[track_caller]
fn check_qkv(q: &Tensor, k: &Tensor, v: &Tensor) {
    let why = if q.rank() < 2 || k.rank() < 2 || v.rank() < 2 {
        "q, k and v need rank >= 2 ([.., L, E], [.., S, E], [.., S, Ev])"
    } else if q.dtype() != k.dtype() || q.dtype() != v.dtype() {
        "q, k and v must have one dtype"
    } else if q.shape()[q.rank() - 1] != k.shape()[k.rank() - 1] {
        "q and k must have the same last dimension E"
    } else if k.shape()[k.rank() - 2] != v.shape()[v.rank() - 2] {
        "k and v must have the same number of keys S"
    } else {
        return;
    };
    panic!(
        "scaled_dot_product_attention: {why}; got q {:?} {}, k {:?} {}, v {:?} {}",
        q.shape(),
        q.dtype(),
        k.shape(),
        k.dtype(),
        v.shape(),
        v.dtype()
    );
}

/// `x.dropout(p, seed)` that saves nothing: its rule draws the same mask again from the
/// seed (`ones.dropout(p, seed)` is the mask, scaled), trading a second draw for an
/// `[L, S]` matrix per head kept until backward.
fn dropout_recomputing_mask(x: &Tensor, d: AttnDropout) -> Tensor {
    let value = no_grad(|| x.dropout(d.p, d.seed));
    Op::new("attention_dropout", &[x], value)
        .rule(move |_, g| g.mul(&g.ones_like().dropout(d.p, d.seed)))
}

/// Softmax over the last axis that saves only its output `y` (the rule is
/// `y * (g - sum(g * y))`, in tensor ops so it differentiates again, with a one-pass
/// fast path when no graph of the gradient is built). A row that is all
/// `-inf` gives zeros instead of NaN.
fn attention_softmax(scores: &Tensor) -> Tensor {
    let value = no_grad(|| {
        let (max, _) = scores.max_dim(-1, true);
        // An all -inf row would shift by -inf (NaN): shift it by 0 instead, its
        // exponentials are then all 0.
        let max = Tensor::where_(&max.eq_scalar(f64::NEG_INFINITY), &max.zeros_like(), &max);
        let e = scores.sub(&max).exp();
        // Each row's sum is at least 1 (its maximum contributes exp(0) = 1) except for an
        // all -inf row, whose sum 0 becomes 1: its weights are 0 / 1 = 0.
        e.div(&e.sum_dim(&[-1], true).clamp_min(1.0))
    });
    Op::new("attention_softmax", &[scores], value)
        .save_output()
        .rule(|ctx, g| {
            let y = ctx.output();
            if !ctx.create_graph() {
                // Fast path: one pass, one new [.., L, S] buffer (the gradient).
                if g.dtype() == DType::F32 {
                    return softmax_grad_one_pass::<f32>(g, &y);
                }
                if g.dtype() == DType::F64 {
                    return softmax_grad_one_pass::<f64>(g, &y);
                }
            }
            let gy = g.mul(&y);
            gy.sub(&y.mul(&gy.sum_dim(&[-1], true)))
        })
}

/// `y * (g - sum(g * y))` along the last axis, computed row by row into one new array
/// (the tensor-op form allocates `g * y` and `y * sum` besides).
fn softmax_grad_one_pass<T: Element>(g: &Tensor, y: &Tensor) -> Tensor {
    let grad = g.with_view::<T, _>(|g| {
        y.with_view::<T, _>(|y| {
            let mut out = ArrayD::<T>::zeros(g.raw_dim());
            let axis = Axis(g.ndim() - 1);
            for ((mut o, g), y) in out
                .lanes_mut(axis)
                .into_iter()
                .zip(g.lanes(axis))
                .zip(y.lanes(axis))
            {
                let dot: T = g.iter().zip(y.iter()).map(|(&a, &b)| a * b).sum();
                for ((o, &a), &b) in o.iter_mut().zip(g.iter()).zip(y.iter()) {
                    *o = b * (a - dot);
                }
            }
            out
        })
    });
    Tensor::from_array(grad)
}
