//! Losses, as PyTorch defines them: `mse_loss`, `l1_loss`, `huber_loss`,
//! `smooth_l1_loss`, `cross_entropy`, `nll_loss`, `binary_cross_entropy`,
//! `binary_cross_entropy_with_logits` and `kl_div`, each with a [`Reduction`].
//!
//! All are composed from tensor ops (so they differentiate to any order), and each is
//! written in the form that stays finite for extreme inputs: `cross_entropy` goes
//! through `log_softmax`, `binary_cross_entropy_with_logits` through `softplus`.

use tapegrad::{DType, Tensor};

/// How a loss reduces its elementwise values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reduction {
    /// The mean over elements (PyTorch's default `'mean'`; for `cross_entropy` and
    /// `nll_loss` with class weights, the weighted mean).
    #[default]
    Mean,
    /// The sum (`'sum'`).
    Sum,
    /// No reduction: one value per element (or per sample for the classification losses).
    None,
    /// The sum divided by the size of the first axis (`'batchmean'`, what `kl_div`
    /// should use to get the true KL divergence per sample).
    BatchMean,
}

fn reduce(loss: Tensor, reduction: Reduction) -> Tensor {
    match reduction {
        Reduction::Mean => loss.mean(),
        Reduction::Sum => loss.sum(),
        Reduction::None => loss,
        Reduction::BatchMean => {
            let n = if loss.rank() == 0 { 1 } else { loss.shape()[0] };
            loss.sum().mul_scalar(1.0 / n as f64)
        }
    }
}

#[track_caller]
fn check_pair(op: &str, input: &Tensor, target: &Tensor) {
    if input.shape() != target.shape() || input.dtype() != target.dtype() {
        panic!(
            "{op}: input {:?} {} and target {:?} {} must have the same shape and dtype",
            input.shape(),
            input.dtype(),
            target.shape(),
            target.dtype()
        );
    }
}

/// Mean squared error: `(x - y)^2`, reduced. PyTorch: `F.mse_loss`.
///
/// # Panics
/// If shapes or dtypes differ.
///
/// ```
/// use tapegrad::Tensor;
/// use tapegrad_nn::loss::{mse_loss, Reduction};
/// let x = Tensor::from_vec(vec![1.0f64, 2.0], &[2]);
/// let y = Tensor::from_vec(vec![0.0f64, 4.0], &[2]);
/// assert_eq!(mse_loss(&x, &y, Reduction::Mean).item(), 2.5);
/// ```
#[track_caller]
pub fn mse_loss(input: &Tensor, target: &Tensor, reduction: Reduction) -> Tensor {
    check_pair("mse_loss", input, target);
    reduce(input.sub(target).square(), reduction)
}

/// Mean absolute error: `|x - y|`, reduced. PyTorch: `F.l1_loss`.
///
/// # Panics
/// If shapes or dtypes differ.
///
/// ```
/// use tapegrad::Tensor;
/// use tapegrad_nn::loss::{l1_loss, Reduction};
/// let x = Tensor::from_vec(vec![1.0f64, 2.0], &[2]);
/// let y = Tensor::from_vec(vec![0.0f64, 4.0], &[2]);
/// assert_eq!(l1_loss(&x, &y, Reduction::Sum).item(), 3.0);
/// ```
#[track_caller]
pub fn l1_loss(input: &Tensor, target: &Tensor, reduction: Reduction) -> Tensor {
    check_pair("l1_loss", input, target);
    reduce(input.sub(target).abs(), reduction)
}

/// Huber loss: with `d = x - y`, `0.5 d^2` where `|d| < delta`, else
/// `delta (|d| - 0.5 delta)` (PyTorch's default `delta = 1`). PyTorch: `F.huber_loss`.
///
/// # Panics
/// If shapes or dtypes differ, or `delta <= 0`.
///
/// ```
/// use tapegrad::Tensor;
/// use tapegrad_nn::loss::{huber_loss, Reduction};
/// let x = Tensor::from_vec(vec![0.5f64, 3.0], &[2]);
/// let y = Tensor::zeros(&[2], tapegrad::DType::F64);
/// assert_eq!(huber_loss(&x, &y, 1.0, Reduction::None).to_vec::<f64>(), vec![0.125, 2.5]);
/// ```
#[track_caller]
pub fn huber_loss(input: &Tensor, target: &Tensor, delta: f64, reduction: Reduction) -> Tensor {
    check_pair("huber_loss", input, target);
    assert!(delta > 0.0, "huber_loss: delta = {delta} must be positive");
    let d = input.sub(target);
    let a = d.abs();
    let quadratic = d.square().mul_scalar(0.5);
    let linear = a.sub_scalar(0.5 * delta).mul_scalar(delta);
    reduce(
        Tensor::where_(&a.lt_scalar(delta), &quadratic, &linear),
        reduction,
    )
}

/// Smooth L1 loss: with `d = x - y`, `0.5 d^2 / beta` where `|d| < beta`, else
/// `|d| - 0.5 beta` (PyTorch's default `beta = 1`; `beta = 0` is the L1 loss). Equal to
/// `huber_loss / beta`. PyTorch: `F.smooth_l1_loss`.
///
/// # Panics
/// If shapes or dtypes differ, or `beta < 0`.
///
/// ```
/// use tapegrad::Tensor;
/// use tapegrad_nn::loss::{smooth_l1_loss, Reduction};
/// let x = Tensor::from_vec(vec![0.5f64, 3.0], &[2]);
/// let y = Tensor::zeros(&[2], tapegrad::DType::F64);
/// assert_eq!(smooth_l1_loss(&x, &y, 2.0, Reduction::None).to_vec::<f64>(), vec![0.0625, 2.0]);
/// ```
#[track_caller]
pub fn smooth_l1_loss(input: &Tensor, target: &Tensor, beta: f64, reduction: Reduction) -> Tensor {
    check_pair("smooth_l1_loss", input, target);
    assert!(
        beta >= 0.0,
        "smooth_l1_loss: beta = {beta} must not be negative"
    );
    if beta == 0.0 {
        return l1_loss(input, target, reduction);
    }
    let d = input.sub(target);
    let a = d.abs();
    let quadratic = d.square().mul_scalar(0.5 / beta);
    let linear = a.sub_scalar(0.5 * beta);
    reduce(
        Tensor::where_(&a.lt_scalar(beta), &quadratic, &linear),
        reduction,
    )
}

/// Options of [`cross_entropy`] (PyTorch's defaults with `Default`).
#[derive(Clone, Debug, Default)]
pub struct CrossEntropyOptions {
    /// A weight per class `[C]` (a constant: it gets no gradient).
    pub weight: Option<Tensor>,
    /// Targets equal to this value are ignored: they add nothing to the loss or to the
    /// mean's denominator (PyTorch's `ignore_index`; `None` ignores nothing, as
    /// PyTorch's default -100 does for targets in range). It may lie outside `0..C`.
    pub ignore_index: Option<i64>,
    /// Label smoothing `eps` in `[0, 1]`: the target distribution is `(1 - eps)` on the
    /// class plus `eps / C` on every class.
    pub label_smoothing: f64,
    /// How to reduce the per-sample losses.
    pub reduction: Reduction,
}

/// Cross-entropy of raw scores (logits) against integer class targets:
///
/// `loss_i = -w[y_i] log softmax(x_i)[y_i]` (times `1 - eps`, plus
/// `eps / C * -sum_c w[c] log softmax(x_i)[c]` with label smoothing `eps`).
///
/// `Mean` divides the sum by `sum_i w[y_i]` over non-ignored samples (the number of them
/// without weights), exactly as PyTorch. Shapes as PyTorch: logits `[N, C]` with targets
/// `[N]`, `[C]` (one sample) with a scalar target, or `[N, C, d1, ...]` with targets
/// `[N, d1, ...]`; targets are an `I64` tensor of class indices. Computed with
/// `log_softmax`, so logits of ±1000 give finite values and gradients. PyTorch:
/// `F.cross_entropy`.
///
/// # Panics
/// If the targets are not an `I64` tensor, their shape is not the logits' without the
/// class axis, a (non-ignored) target is not in `0..C`, the weight is not `[C]`, or
/// label smoothing is outside `[0, 1]`.
///
/// ```
/// use tapegrad::Tensor;
/// use tapegrad_nn::loss::{cross_entropy, CrossEntropyOptions};
/// let logits = Tensor::from_vec(vec![1000.0f32, 0.0, -1000.0, 0.0, 0.0, 0.0], &[2, 3]);
/// let targets = Tensor::from_vec(vec![0i64, 1], &[2]);
/// let loss = cross_entropy(&logits, &targets, &CrossEntropyOptions::default());
/// // Sample 0 is certain and right (loss 0); sample 1 is uniform (loss ln 3).
/// assert!((loss.item() - 3f64.ln() / 2.0).abs() < 1e-6);
/// ```
#[track_caller]
pub fn cross_entropy(logits: &Tensor, targets: &Tensor, options: &CrossEntropyOptions) -> Tensor {
    if !(0.0..=1.0).contains(&options.label_smoothing) {
        panic!(
            "cross_entropy: label_smoothing = {} must be in [0, 1]",
            options.label_smoothing
        );
    }
    let targets = class_targets("cross_entropy", logits, targets);
    let (flat, out_shape) = classes_last("cross_entropy", logits);
    let logp = flat.log_softmax(1);
    class_loss("cross_entropy", &logp, &targets, options, &out_shape)
}

/// Negative log-likelihood of log-probabilities `[N, C]` (or `[C]`, `[N, C, d...]`)
/// against `I64` class targets `[N]` (or `[]`, `[N, d...]`): `loss_i = -w[y_i] *
/// input[i, y_i]`, reduced as [`cross_entropy`] (which is `nll_loss(log_softmax(x))`).
/// PyTorch: `F.nll_loss(input, target, weight, ignore_index=..., reduction=...)`.
///
/// # Panics
/// As [`cross_entropy`].
///
/// ```
/// use tapegrad::Tensor;
/// use tapegrad_nn::loss::{nll_loss, Reduction};
/// let logp = Tensor::from_vec(vec![-0.5f64, -1.0, -2.0, -0.1], &[2, 2]);
/// let targets = Tensor::from_vec(vec![1i64, 0], &[2]);
/// assert_eq!(nll_loss(&logp, &targets, None, None, Reduction::Sum).item(), 3.0);
/// // An ignored sample adds nothing.
/// assert_eq!(nll_loss(&logp, &targets, None, Some(0), Reduction::Sum).item(), 1.0);
/// ```
#[track_caller]
pub fn nll_loss(
    log_probs: &Tensor,
    targets: &Tensor,
    weight: Option<&Tensor>,
    ignore_index: Option<i64>,
    reduction: Reduction,
) -> Tensor {
    let options = CrossEntropyOptions {
        weight: weight.cloned(),
        ignore_index,
        label_smoothing: 0.0,
        reduction,
    };
    let targets = class_targets("nll_loss", log_probs, targets);
    let (flat, out_shape) = classes_last("nll_loss", log_probs);
    class_loss("nll_loss", &flat, &targets, &options, &out_shape)
}

/// The class targets as `i64`s, row-major over `N, d1, ...`, after checking that they
/// are an `I64` tensor of the input's shape without the class axis (PyTorch's rule).
#[track_caller]
fn class_targets(op: &str, input: &Tensor, targets: &Tensor) -> Vec<i64> {
    if targets.dtype() != DType::I64 {
        panic!(
            "{op}: the targets must be an i64 tensor of class indices, got {} {:?}; convert with to_dtype(DType::I64)",
            targets.dtype(),
            targets.shape()
        );
    }
    let mut want = input.shape().to_vec();
    if !want.is_empty() {
        want.remove(if want.len() == 1 { 0 } else { 1 });
    }
    if input.rank() > 0 && targets.shape() != want.as_slice() {
        panic!(
            "{op}: the targets {:?} must have the input's shape {:?} without the class axis 1, i.e. {want:?}",
            targets.shape(),
            input.shape()
        );
    }
    targets.to_vec::<i64>()
}

/// `[M, C]` with the class axis last, and the per-sample shape for `Reduction::None`.
#[track_caller]
fn classes_last(op: &str, x: &Tensor) -> (Tensor, Vec<usize>) {
    match x.rank() {
        0 => panic!("{op}: the input needs a class axis, got a scalar"),
        1 => (x.unsqueeze(0), vec![]),
        2 => (x.clone(), vec![x.shape()[0]]),
        r => {
            let mut perm: Vec<usize> = vec![0];
            perm.extend(2..r);
            perm.push(1);
            let c = x.shape()[1];
            let samples: Vec<usize> = perm[..r - 1].iter().map(|&a| x.shape()[a]).collect();
            (x.permute(&perm).reshape(&[-1, c as isize]), samples)
        }
    }
}

#[track_caller]
fn class_loss(
    op: &str,
    logp: &Tensor,
    targets: &[i64],
    o: &CrossEntropyOptions,
    out_shape: &[usize],
) -> Tensor {
    let (m, c) = (logp.shape()[0], logp.shape()[1]);
    debug_assert_eq!(targets.len(), m, "{op}: checked by class_targets");
    let class_w: Vec<f64> = match &o.weight {
        Some(w) => {
            if w.shape() != [c] {
                panic!(
                    "{op}: the class weight must have shape [{c}], got {:?}",
                    w.shape()
                );
            }
            w.to_vec::<f64>()
        }
        None => vec![1.0; c],
    };
    let mut keep = vec![1.0; m];
    let mut sample_w = vec![0.0; m];
    let mut idx = vec![0i64; m];
    for (i, &t) in targets.iter().enumerate() {
        if Some(t) == o.ignore_index {
            keep[i] = 0.0;
            continue;
        }
        if t < 0 || t as usize >= c {
            panic!("{op}: target {t} (sample {i}) is out of range for {c} classes");
        }
        idx[i] = t;
        sample_w[i] = class_w[t as usize];
    }
    let dtype = logp.dtype();
    let constant = |v: Vec<f64>, shape: &[usize]| Tensor::from_vec(v, shape).to_dtype(dtype);
    let denom: f64 = sample_w.iter().sum();
    let picked = logp
        .gather(1, &Tensor::from_vec(idx, &[m, 1]))
        .reshape_to(&[m]);
    let nll = picked.mul(&constant(sample_w, &[m])).neg();
    let reduce_cls = |l: Tensor| match o.reduction {
        Reduction::Mean => l.sum().mul_scalar(1.0 / denom),
        Reduction::None => l.reshape_to(out_shape),
        r => reduce(l, r),
    };
    let eps = o.label_smoothing;
    if eps == 0.0 {
        return reduce_cls(nll);
    }
    let smooth = logp
        .mul(&constant(class_w, &[1, c]))
        .sum_dim(&[1], false)
        .neg()
        .mul(&constant(keep, &[m]));
    reduce_cls(nll)
        .mul_scalar(1.0 - eps)
        .add(&reduce_cls(smooth).mul_scalar(eps / c as f64))
}

/// Binary cross-entropy of probabilities `p` against targets `y` in `[0, 1]`:
/// `-w (y ln p + (1 - y) ln(1 - p))`, with each log clamped to `>= -100` as PyTorch does
/// (so `p = 0` or `1` gives a finite loss). Prefer
/// [`binary_cross_entropy_with_logits`], which is stable for any logit. PyTorch:
/// `F.binary_cross_entropy`.
///
/// # Panics
/// If shapes or dtypes differ, or `weight` does not broadcast.
///
/// ```
/// use tapegrad::Tensor;
/// use tapegrad_nn::loss::{binary_cross_entropy, Reduction};
/// let p = Tensor::from_vec(vec![0.5f64, 0.0], &[2]);
/// let y = Tensor::from_vec(vec![1.0f64, 1.0], &[2]);
/// assert_eq!(binary_cross_entropy(&p, &y, None, Reduction::None).to_vec::<f64>(), vec![2f64.ln(), 100.0]);
/// ```
#[track_caller]
pub fn binary_cross_entropy(
    input: &Tensor,
    target: &Tensor,
    weight: Option<&Tensor>,
    reduction: Reduction,
) -> Tensor {
    check_pair("binary_cross_entropy", input, target);
    let log_p = input.log().clamp_min(-100.0);
    let log_q = input.rsub_scalar(1.0).log().clamp_min(-100.0);
    let loss = target
        .mul(&log_p)
        .add(&target.rsub_scalar(1.0).mul(&log_q))
        .neg();
    let loss = match weight {
        Some(w) => loss.mul(w),
        None => loss,
    };
    reduce(loss, reduction)
}

/// Binary cross-entropy of logits `x` against targets `y`, stable for any `x`:
///
/// `loss = (1 - y) x + l softplus(-x)`, `l = 1 + (pos_weight - 1) y`
///
/// which without `pos_weight` is `max(x, 0) - x y + ln(1 + e^-|x|)` (softplus is
/// computed in that form), times the optional `weight`. `pos_weight` (one per class,
/// broadcast along the last axis) multiplies the positive term, as PyTorch. PyTorch:
/// `F.binary_cross_entropy_with_logits`.
///
/// # Panics
/// If shapes or dtypes differ, or a weight does not broadcast.
///
/// ```
/// use tapegrad::Tensor;
/// use tapegrad_nn::loss::{binary_cross_entropy_with_logits, Reduction};
/// let x = Tensor::from_vec(vec![1000.0f32, -1000.0, 0.0], &[3]);
/// let y = Tensor::from_vec(vec![0.0f32, 0.0, 1.0], &[3]);
/// let l = binary_cross_entropy_with_logits(&x, &y, None, None, Reduction::None).to_vec::<f32>();
/// assert_eq!(l[0], 1000.0);
/// assert_eq!(l[1], 0.0);
/// assert!((l[2] - std::f32::consts::LN_2).abs() < 1e-7);
/// ```
#[track_caller]
pub fn binary_cross_entropy_with_logits(
    input: &Tensor,
    target: &Tensor,
    weight: Option<&Tensor>,
    pos_weight: Option<&Tensor>,
    reduction: Reduction,
) -> Tensor {
    check_pair("binary_cross_entropy_with_logits", input, target);
    let sp = input.neg().softplus();
    let positive = match pos_weight {
        Some(pw) => target.mul(&pw.sub_scalar(1.0)).add_scalar(1.0).mul(&sp),
        None => sp,
    };
    let loss = target.rsub_scalar(1.0).mul(input).add(&positive);
    let loss = match weight {
        Some(w) => loss.mul(w),
        None => loss,
    };
    reduce(loss, reduction)
}

/// Kullback-Leibler divergence with `input` holding log-probabilities (as PyTorch):
/// pointwise `y (ln y - x)` (0 where `y = 0`), or `e^y (y - x)` with `log_target` (the
/// target given as log-probabilities too). Use `Reduction::BatchMean` for the KL
/// divergence per sample; `Mean` averages over every element, as PyTorch's `'mean'`.
/// PyTorch: `F.kl_div(input, target, reduction, log_target)`.
///
/// # Panics
/// If shapes or dtypes differ.
///
/// ```
/// use tapegrad::Tensor;
/// use tapegrad_nn::loss::{kl_div, Reduction};
/// let p = Tensor::from_vec(vec![0.5f64, 0.5], &[1, 2]);
/// let q = Tensor::from_vec(vec![0.25f64, 0.75], &[1, 2]);
/// let kl = kl_div(&q.log(), &p, false, Reduction::BatchMean).item();
/// let want = 0.5 * (0.5f64 / 0.25).ln() + 0.5 * (0.5f64 / 0.75).ln();
/// assert!((kl - want).abs() < 1e-15);
/// ```
#[track_caller]
pub fn kl_div(input: &Tensor, target: &Tensor, log_target: bool, reduction: Reduction) -> Tensor {
    check_pair("kl_div", input, target);
    let loss = if log_target {
        target.exp().mul(&target.sub(input))
    } else {
        // y ln y with 0 ln 0 = 0: take the log of 1 where y = 0, so neither the value nor
        // the gradient sees ln 0.
        let positive = target.gt_scalar(0.0);
        let safe = Tensor::where_(&positive, target, &Tensor::ones(&[], target.dtype()));
        target.mul(&safe.log().sub(input))
    };
    reduce(loss, reduction)
}
