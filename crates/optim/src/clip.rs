//! Gradient clipping: `clip_grad_norm` (rescale all gradients so their joint norm is at
//! most a bound) and `clip_grad_value` (clamp each element), as
//! `torch.nn.utils.clip_grad_norm_` / `clip_grad_value_`. Both modify the gradient
//! tensors held by a [`Grads`] in place.

use tapegrad::{DType, Element, Grads, Tensor};

/// Anything that names a tensor whose gradient to clip: `Tensor`, `Param`, or a
/// reference to either.
pub trait TensorRef {
    /// The tensor.
    fn tensor_ref(&self) -> &Tensor;
}

impl TensorRef for Tensor {
    fn tensor_ref(&self) -> &Tensor {
        self
    }
}

impl TensorRef for tapegrad_nn::Param {
    fn tensor_ref(&self) -> &Tensor {
        self
    }
}

impl<T: TensorRef + ?Sized> TensorRef for &T {
    fn tensor_ref(&self) -> &Tensor {
        (**self).tensor_ref()
    }
}

/// Clipping found a non-finite total norm and was asked to fail on one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClipError {
    /// The total norm is NaN or infinite (the gradients were left unchanged).
    #[error(
        "clip_grad_norm: the total {norm_type}-norm of the gradients is {total}; \
         pass error_if_nonfinite = false to clip anyway"
    )]
    NonFinite {
        /// The total norm found.
        total: f64,
        /// The norm type asked for.
        norm_type: f64,
    },
}

/// The total `norm_type`-norm of the gradients of `params` (those present in `grads`),
/// computed as the norm of the per-tensor norms, as PyTorch does; `norm_type` may be
/// `f64::INFINITY` (the largest absolute value). Accumulated in `f64`.
///
/// # Panics
/// If `norm_type` is neither positive nor infinite.
#[track_caller]
pub fn grad_norm<P: TensorRef>(
    grads: &Grads,
    params: impl IntoIterator<Item = P>,
    norm_type: f64,
) -> f64 {
    assert!(
        norm_type > 0.0 && !norm_type.is_nan(),
        "grad_norm: norm_type {norm_type} is not supported (use a positive number or f64::INFINITY)"
    );
    let mut acc = 0.0f64;
    for p in params {
        let Some(g) = grads.get(p.tensor_ref()) else {
            continue;
        };
        let n = match g.dtype() {
            DType::F32 => tensor_norm::<f32>(g, norm_type),
            DType::F64 => tensor_norm::<f64>(g, norm_type),
            other => panic!("clip_grad_norm: gradients are f32 or f64, not {other}"),
        };
        if norm_type.is_infinite() {
            // max, propagating NaN as PyTorch does
            acc = if n.is_nan() || acc.is_nan() {
                f64::NAN
            } else {
                acc.max(n)
            };
        } else {
            acc += n.powf(norm_type);
        }
    }
    if norm_type.is_infinite() {
        acc
    } else {
        acc.powf(1.0 / norm_type)
    }
}

fn tensor_norm<T: Element>(g: &Tensor, norm_type: f64) -> f64 {
    g.with_view::<T, _>(|a| {
        if norm_type.is_infinite() {
            a.iter().fold(0.0f64, |m, x| {
                let x = x.as_f64().abs();
                if x.is_nan() || m.is_nan() {
                    f64::NAN
                } else {
                    m.max(x)
                }
            })
        } else if norm_type == 2.0 {
            block_sum(&a, |x| x * x).sqrt()
        } else if norm_type == 1.0 {
            block_sum(&a, |x| x.abs())
        } else {
            a.iter()
                .map(|x| x.as_f64().abs().powf(norm_type))
                .sum::<f64>()
                .powf(1.0 / norm_type)
        }
    })
}

/// `sum f(x)` over the elements of `a`, returned in `f64`: 16 independent partial sums in
/// the element type over blocks of 1024 elements (so the additions vectorise and do not
/// wait on each other), each block's total added in `f64`. A single running `f64` sum
/// is a chain of dependent adds: about 0.5 ms per step for the W1 MLP's 535,818
/// gradients, more than its whole batch-1 step.
fn block_sum<T: Element>(a: &ndarray::ArrayViewD<'_, T>, f: impl Fn(T) -> T) -> f64 {
    const LANES: usize = 16;
    const BLOCK: usize = 1024;
    let Some(slice) = a.as_slice_memory_order() else {
        return a.iter().map(|&x| f(x).as_f64()).sum();
    };
    let mut total = 0.0f64;
    for block in slice.chunks(BLOCK) {
        let mut acc = [T::zero(); LANES];
        let lanes = block.chunks_exact(LANES);
        let tail = lanes.remainder().iter().fold(T::zero(), |s, &x| s + f(x));
        for chunk in lanes {
            for (slot, &x) in acc.iter_mut().zip(chunk) {
                *slot += f(x);
            }
        }
        total += acc.iter().map(|x| x.as_f64()).sum::<f64>() + tail.as_f64();
    }
    total
}

/// Rescales the gradients of `params` in place so that their total `norm_type`-norm is at
/// most `max_norm`, and returns the total norm **before** clipping. As
/// `torch.nn.utils.clip_grad_norm_`:
///
/// ```text
/// total = ‖(‖g_1‖_p, ‖g_2‖_p, ...)‖_p          (p = norm_type, may be ∞)
/// c = min(max_norm / (total + 1e-6), 1)
/// g_i ← c g_i
/// ```
///
/// With `error_if_nonfinite`, a NaN or infinite total is an error and nothing changes;
/// without it the gradients are scaled by `c` anyway (0 for an infinite total, NaN for a
/// NaN one), as PyTorch does. Parameters without a gradient are ignored.
///
/// # Panics
/// If `norm_type` is neither positive nor infinite, or `max_norm` is negative or NaN.
///
/// ```
/// use tapegrad::Tensor;
/// use tapegrad_optim::clip_grad_norm;
/// let w = Tensor::from_vec(vec![0.0f64, 0.0], &[2]).requires_grad();
/// let target = Tensor::from_vec(vec![3.0f64, 4.0], &[2]);
/// let mut grads = (&w * &target).sum().backward(); // gradient (3, 4), norm 5
/// let total = clip_grad_norm(&mut grads, [&w], 1.0, 2.0, true).unwrap();
/// assert_eq!(total, 5.0);
/// let g = grads[&w].to_vec::<f64>();
/// assert!((g[0] - 0.6).abs() < 1e-6 && (g[1] - 0.8).abs() < 1e-6);
/// ```
#[track_caller]
pub fn clip_grad_norm<P: TensorRef>(
    grads: &mut Grads,
    params: impl IntoIterator<Item = P>,
    max_norm: f64,
    norm_type: f64,
    error_if_nonfinite: bool,
) -> Result<f64, ClipError> {
    assert!(
        max_norm >= 0.0,
        "clip_grad_norm: max_norm {max_norm} must be non-negative"
    );
    let params: Vec<P> = params.into_iter().collect();
    let total = grad_norm(grads, params.iter(), norm_type);
    if error_if_nonfinite && !total.is_finite() {
        return Err(ClipError::NonFinite { total, norm_type });
    }
    let coef = max_norm / (total + 1e-6);
    // torch.clamp(coef, max=1) keeps a NaN
    let coef = if coef.is_nan() { coef } else { coef.min(1.0) };
    if coef == 1.0 {
        return Ok(total);
    }
    for p in &params {
        if let Some(g) = grads.get(p.tensor_ref()) {
            match g.dtype() {
                DType::F32 => g.update_::<f32, _>(|mut a| a.mapv_inplace(|x| x * coef as f32)),
                DType::F64 => g.update_::<f64, _>(|mut a| a.mapv_inplace(|x| x * coef)),
                other => panic!("clip_grad_norm: gradients are f32 or f64, not {other}"),
            }
        }
    }
    Ok(total)
}

/// Clamps every gradient element of `params` to `[-clip_value, clip_value]` in place, as
/// `torch.nn.utils.clip_grad_value_` (a NaN stays NaN).
///
/// # Panics
/// If `clip_value` is negative or NaN.
///
/// ```
/// use tapegrad::Tensor;
/// use tapegrad_optim::clip_grad_value;
/// let w = Tensor::from_vec(vec![0.0f32; 3], &[3]).requires_grad();
/// let c = Tensor::from_vec(vec![-5.0f32, 0.5, 2.0], &[3]);
/// let mut grads = (&w * &c).sum().backward();
/// clip_grad_value(&mut grads, [&w], 1.0);
/// assert_eq!(grads[&w].to_vec::<f32>(), vec![-1.0, 0.5, 1.0]);
/// ```
#[track_caller]
pub fn clip_grad_value<P: TensorRef>(
    grads: &mut Grads,
    params: impl IntoIterator<Item = P>,
    clip_value: f64,
) {
    assert!(
        clip_value >= 0.0,
        "clip_grad_value: clip_value {clip_value} must be non-negative"
    );
    for p in params {
        if let Some(g) = grads.get(p.tensor_ref()) {
            match g.dtype() {
                DType::F32 => clamp_in_place::<f32>(g, clip_value),
                DType::F64 => clamp_in_place::<f64>(g, clip_value),
                other => panic!("clip_grad_value: gradients are f32 or f64, not {other}"),
            }
        }
    }
}

fn clamp_in_place<T: Element>(g: &Tensor, c: f64) {
    let (lo, hi) = (T::of(-c), T::of(c));
    g.update_::<T, _>(|mut a| {
        a.mapv_inplace(|x| {
            if x < lo {
                lo
            } else if x > hi {
                hi
            } else {
                x
            }
        })
    });
}
