//! Scaled dot-product attention as one recorded op, `softmax(q k^T * scale + mask) v`,
//! computed by the fused kernel (`kernels/attention.rs`): it keeps for backward the
//! output and one log-sum-exp per query, never an `[L, S]` matrix of scores or weights.
//!
//! Why an op of the core rather than a composition: composed, attention records five
//! nodes and keeps `[.., L, S]` tensors for backward; fused, the scores exist one block
//! of queries at a time, in the forward pass and again in backward. Its rule has two
//! forms: the kernel, when no graph of the gradient is built, and otherwise the same
//! gradient written in tensor ops (the composed path's), so gradients of gradients stay
//! exact. `tapegrad-nn`'s `scaled_dot_product_attention` calls it; attention with
//! dropout or returned weights stays composed there.

use rand::Rng;
use smallvec::smallvec;

use super::check_float;
use super::table::{random_tensor, Domain, Inputs, OpSpec};
use crate::autograd::node::{BackwardCtx, GradList, Op};
use ndarray::ArrayViewD;

use crate::dtype::{DType, Element};
use crate::kernels::attention::{attention_backward, attention_forward, AttnInputs};
use crate::shape::{broadcast_shapes, Shape};
use crate::storage::{dispatch, Data};
use crate::tensor::Tensor;

/// The batch dimensions of `t` (all but the last two).
fn batch_dims(t: &Tensor) -> &[usize] {
    &t.shape()[..t.rank().saturating_sub(2)]
}

/// Panics unless `q [.., L, E]`, `k [.., S, E]`, `v [.., S, Ev]` and the mask fit (see
/// [`Tensor::scaled_dot_product_attention`]); returns the broadcast batch shape.
#[track_caller]
fn check_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    causal: bool,
) -> Shape {
    let why = if q.rank() < 2 || k.rank() < 2 || v.rank() < 2 {
        "q, k and v need rank >= 2 ([.., L, E], [.., S, E], [.., S, Ev])"
    } else if q.dtype() != k.dtype() || q.dtype() != v.dtype() {
        "q, k and v must have one dtype"
    } else if q.shape()[q.rank() - 1] != k.shape()[k.rank() - 1] {
        "q and k must have the same last dimension E"
    } else if k.shape()[k.rank() - 2] != v.shape()[v.rank() - 2] {
        "k and v must have the same number of keys S"
    } else if broadcast_shapes(batch_dims(q), batch_dims(k))
        .and_then(|b| broadcast_shapes(&b, batch_dims(v)))
        .is_none()
    {
        "the batch dimensions of q, k and v must broadcast"
    } else if mask.is_some() && causal {
        "give either attn_mask or is_causal, not both"
    } else {
        ""
    };
    if !why.is_empty() {
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
    check_float("scaled_dot_product_attention", q);
    let b = broadcast_shapes(batch_dims(q), batch_dims(k)).expect("checked");
    let b = broadcast_shapes(&b, batch_dims(v)).expect("checked");
    if let Some(m) = mask {
        let mut scores = b.to_vec();
        scores.extend([q.shape()[q.rank() - 2], k.shape()[k.rank() - 2]]);
        if m.dtype() != q.dtype()
            || broadcast_shapes(m.shape(), &scores).as_deref() != Some(&scores[..])
        {
            panic!(
                "scaled_dot_product_attention: the additive mask ({:?} {}) must broadcast to the scores {scores:?} {}",
                m.shape(),
                m.dtype(),
                q.dtype()
            );
        }
    }
    b
}

/// `[l, s]`: `0` where key `j <= i` (query `i` sees it), `-inf` above the diagonal.
fn causal_mask(l: usize, s: usize, dtype: DType) -> Tensor {
    let values: Vec<f64> = (0..l)
        .flat_map(|i| (0..s).map(move |j| if j <= i { 0.0 } else { f64::NEG_INFINITY }))
        .collect();
    Tensor::from_vec(values, &[l, s]).to_dtype(dtype)
}

/// The attention weights `softmax(q k^T * scale + mask)` in tensor ops (recorded, so
/// differentiable to any order). A query whose every key is masked gets zeros: its row
/// is shifted by 0 instead of its maximum `-inf`, and divided by 1 instead of its sum 0.
fn attention_weights(
    q: &Tensor,
    k: &Tensor,
    mask: Option<&Tensor>,
    causal: bool,
    scale: f64,
) -> Tensor {
    let mut scores = q.mul_scalar(scale).matmul(&k.transpose(-1, -2));
    if let Some(m) = mask {
        scores = scores.add(m);
    }
    if causal {
        let (l, s) = (
            scores.shape()[scores.rank() - 2],
            scores.shape()[scores.rank() - 1],
        );
        scores = scores.add(&causal_mask(l, s, scores.dtype()));
    }
    // The softmax does not depend on the shift: the maximum is a constant.
    let (max, _) = scores.detach().max_dim(-1, true);
    let dead = max.eq_scalar(f64::NEG_INFINITY);
    let max = Tensor::where_(&dead, &max.zeros_like(), &max);
    let e = scores.sub(&max).exp();
    let z = e.sum_dim(&[-1], true);
    let z = Tensor::where_(&dead, &z.ones_like(), &z);
    e.div(&z)
}

/// The values of `d`, of element type `T`.
fn view<T: Element>(d: &Data) -> ArrayViewD<'_, T> {
    d.array::<T>().expect("one dtype (checked)").view()
}

/// The fused kernel's forward pass: the output and the log-sum-exps, as tensors.
fn fused_forward(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    causal: bool,
    scale: f64,
    batch: &[usize],
) -> (Tensor, Tensor) {
    let (kd, vd, md) = (k.force(), v.force(), mask.map(|m| m.force()));
    let (out, lse) = dispatch!(q.force(), |qd| {
        let qa = qd.force();
        let x = AttnInputs::new(
            qa.view(),
            view::<E>(&kd),
            view::<E>(&vd),
            md.as_ref().map(view::<E>),
            causal,
            scale,
            batch,
        );
        let (out, lse) = attention_forward(&x);
        (
            Data::from_array(out.into_shared()),
            Data::from_array(lse.into_shared()),
        )
    });
    (Tensor::from_data(out), Tensor::from_data(lse))
}

/// The fused kernel's backward pass: the gradients of `q`, `k`, `v` in the broadcast
/// batch shape.
#[allow(clippy::too_many_arguments)]
fn fused_backward(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    causal: bool,
    scale: f64,
    batch: &[usize],
    out: &Tensor,
    lse: &Tensor,
    g: &Tensor,
) -> [Tensor; 3] {
    let (kd, vd, md) = (k.force(), v.force(), mask.map(|m| m.force()));
    let (od, ld, gd) = (out.force(), lse.force(), g.force());
    let grads = dispatch!(q.force(), |qd| {
        let qa = qd.force();
        let x = AttnInputs::new(
            qa.view(),
            view::<E>(&kd),
            view::<E>(&vd),
            md.as_ref().map(view::<E>),
            causal,
            scale,
            batch,
        );
        let (dq, dk, dv) =
            attention_backward(&x, &view::<E>(&od), &view::<E>(&ld), &view::<E>(&gd));
        [dq, dk, dv].map(|a| Data::from_array(a.into_shared()))
    });
    grads.map(Tensor::from_data)
}

impl Tensor {
    /// Scaled dot-product attention, PyTorch's `F.scaled_dot_product_attention` without
    /// dropout: `softmax(q k^T * scale + attn_mask) v` with `self = q: [.., L, E]`,
    /// `key: [.., S, E]`, `value: [.., S, Ev]` (batch dimensions broadcast), output
    /// `[.., L, Ev]`. `attn_mask` is additive (`-inf` removes a key) and broadcasts to the
    /// scores `[.., L, S]`; `is_causal` lets query `i` see keys `0..=i` (top-left
    /// aligned). `scale` defaults to `1 / sqrt(E)`. A query whose every key is masked
    /// gets a zero output and zero gradients (PyTorch 2.5's math path).
    ///
    /// One fused op (flash-attention style, see `kernels/attention.rs`): it keeps for
    /// backward the inputs, the output and one log-sum-exp per query (`[.., L]`), and
    /// computes scores a block of 64 queries at a time, in the forward pass and again in
    /// backward, skipping key blocks masked for the whole block. Gradient: with `P` the
    /// weights, `dV = P^T g`, `dS = P * (g V^T - rowsum(g V^T * P))`,
    /// `dQ = dS K * scale`, `dK = dS^T Q * scale`, `dmask = dS`; when the gradient is
    /// itself recorded (`backward_with_graph`) or the mask needs a gradient, the rule
    /// computes it in tensor ops from recomputed weights instead, so it differentiates
    /// again. `tapegrad_nn::functional::scaled_dot_product_attention` adds dropout and
    /// boolean masks on top of it.
    ///
    /// # Panics
    /// If a rank is below 2, the dtypes differ or are not float, `E` of `q` and `k` or
    /// `S` of `k` and `v` differ, the batch dimensions do not broadcast, the mask does not
    /// broadcast to the scores or has another dtype, or both a mask and `is_causal` are
    /// given.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let q = Tensor::from_vec(vec![1.0f64, 0.0], &[1, 2]);
    /// let k = Tensor::from_vec(vec![1.0f64, 0.0, 0.0, 1.0], &[2, 2]);
    /// let v = Tensor::from_vec(vec![10.0f64, 20.0], &[2, 1]);
    /// let out = q.scaled_dot_product_attention(&k, &v, None, false, Some(1.0));
    /// let w = 1.0f64.exp() / (1.0f64.exp() + 1.0);
    /// assert!((out.to_vec::<f64>()[0] - (10.0 * w + 20.0 * (1.0 - w))).abs() < 1e-12);
    /// // Causal: the first query sees only the first key.
    /// let q2 = Tensor::from_vec(vec![1.0f64, 0.0, 0.0, 1.0], &[2, 2]);
    /// let out = q2.scaled_dot_product_attention(&k, &v, None, true, None);
    /// assert_eq!(out.to_vec::<f64>()[0], 10.0);
    /// ```
    #[track_caller]
    pub fn scaled_dot_product_attention(
        &self,
        key: &Tensor,
        value: &Tensor,
        attn_mask: Option<&Tensor>,
        is_causal: bool,
        scale: Option<f64>,
    ) -> Tensor {
        let batch = check_attention(self, key, value, attn_mask, is_causal);
        let (q, k, v) = (self, key, value);
        let (l, e) = (q.shape()[q.rank() - 2], q.shape()[q.rank() - 1]);
        let (s, ev) = (v.shape()[v.rank() - 2], v.shape()[v.rank() - 1]);
        let scale = scale.unwrap_or(1.0 / (e as f64).sqrt());
        if batch.iter().product::<usize>() * l * s * e * ev == 0 {
            // Empty operands: the composed form (no kernel for what has no work).
            return attention_weights(q, k, attn_mask, is_causal, scale).matmul(v);
        }
        let (out, lse) = fused_forward(q, k, v, attn_mask, is_causal, scale, &batch);
        let mut inputs = vec![q, k, v];
        inputs.extend(attn_mask);
        let shapes: Vec<Shape> = inputs
            .iter()
            .map(|t| Shape::from_slice(t.shape()))
            .collect();
        let has_mask = attn_mask.is_some();
        Op::new("scaled_dot_product_attention", &inputs, out)
            .save(&inputs)
            .save(&[&lse])
            .save_output()
            .rule(move |ctx, g| {
                let (q, k, v) = (ctx.saved(0), ctx.saved(1), ctx.saved(2));
                let mask = has_mask.then(|| ctx.saved(3));
                let mask_grad = has_mask && ctx.needs_grad(3);
                if ctx.create_graph() || mask_grad {
                    return composed_grads(ctx, g, mask, is_causal, scale, &shapes);
                }
                let lse = ctx.saved(3 + has_mask as usize);
                let [dq, dk, dv] = fused_backward(
                    q,
                    k,
                    v,
                    mask,
                    is_causal,
                    scale,
                    &batch,
                    &ctx.output(),
                    lse,
                    g,
                );
                let mut grads: GradList = smallvec![
                    ctx.needs_grad(0).then(|| dq.sum_to(&shapes[0])),
                    ctx.needs_grad(1).then(|| dk.sum_to(&shapes[1])),
                    ctx.needs_grad(2).then(|| dv.sum_to(&shapes[2])),
                ];
                if has_mask {
                    grads.push(None);
                }
                grads
            })
    }
}

/// The gradients of attention in tensor ops from recomputed weights `P` (the composed
/// path's gradient), recorded when a graph of the gradient is built:
/// `dS = P * (dP - rowsum(dP * P))` with `dP = g V^T`.
fn composed_grads(
    ctx: &BackwardCtx<'_>,
    g: &Tensor,
    mask: Option<&Tensor>,
    causal: bool,
    scale: f64,
    shapes: &[Shape],
) -> GradList {
    let (q, k, v) = (ctx.saved(0), ctx.saved(1), ctx.saved(2));
    let p = attention_weights(q, k, mask, causal, scale);
    let dp = g.matmul(&v.transpose(-1, -2));
    let ds = p.mul(&dp.sub(&dp.mul(&p).sum_dim(&[-1], true)));
    let mut grads: GradList = smallvec![
        ctx.needs_grad(0)
            .then(|| ds.matmul(k).mul_scalar(scale).sum_to(&shapes[0])),
        ctx.needs_grad(1).then(|| {
            ds.transpose(-1, -2)
                .matmul(q)
                .mul_scalar(scale)
                .sum_to(&shapes[1])
        }),
        ctx.needs_grad(2)
            .then(|| p.transpose(-1, -2).matmul(g).sum_to(&shapes[2])),
    ];
    if mask.is_some() {
        grads.push(ctx.needs_grad(3).then(|| ds.sum_to(&shapes[3])));
    }
    grads
}

/// `q [.., L, E]`, `k [.., S, E]`, `v [.., S, Ev]` of random small sizes, batch
/// dimensions that broadcast, and an additive mask (a fourth input) or none (the row
/// then applies the causal mask).
fn attention_inputs(rng: &mut rand::rngs::StdRng, dtype: DType) -> Vec<Tensor> {
    let (l, s, e, ev) = (
        rng.gen_range(1..5),
        rng.gen_range(1..5),
        rng.gen_range(1..4),
        rng.gen_range(1..4),
    );
    let (bq, bk, bv): (Vec<usize>, Vec<usize>, Vec<usize>) = match rng.gen_range(0..3) {
        0 => (vec![], vec![], vec![]),
        1 => (vec![2], vec![2], vec![2]),
        _ => (vec![2, 1], vec![3], vec![1]),
    };
    let with = |b: &[usize], r: usize, c: usize| {
        let mut s = b.to_vec();
        s.extend([r, c]);
        s
    };
    let mut inputs = vec![
        random_tensor(rng, &with(&bq, l, e), Domain::Real, dtype),
        random_tensor(rng, &with(&bk, s, e), Domain::Real, dtype),
        random_tensor(rng, &with(&bv, s, ev), Domain::Real, dtype),
    ];
    if rng.gen_bool(0.5) {
        let shape = if rng.gen_bool(0.5) {
            vec![l, s]
        } else {
            vec![1, s]
        };
        inputs.push(random_tensor(rng, &shape, Domain::Real, dtype));
    }
    inputs
}

/// The op table's rows of this family.
pub(crate) const ROWS: &[OpSpec] = &[OpSpec::new(
    "scaled_dot_product_attention",
    Inputs::Custom(attention_inputs),
    |t| match t {
        [q, k, v] => q.scaled_dot_product_attention(k, v, None, true, None),
        [q, k, v, m] => q.scaled_dot_product_attention(k, v, Some(m), false, Some(0.7)),
        _ => unreachable!("three or four inputs"),
    },
    "dV = P^T g, dS = P * (g V^T - rowsum(g V^T * P)), dQ = dS K scale, dK = dS^T Q scale, dmask = dS (P = softmax(Q K^T scale + mask))",
)
.note("a query whose every key is masked (-inf) has zero output and zero gradients; the row applies the causal mask with three inputs, the additive fourth input otherwise")];
