//! [`gradcheck`]: backward against central differences, entry by entry (full mode) or
//! along one random projection per input (fast mode).

use tapegrad::{enable_grad, BackwardOptions, DType, Grads, Tensor};

use crate::options::Options;
use crate::report::{Entry, GradcheckError, InputReport, Order, Position, Quantity, Report};

/// Checks the gradients of `f` at `inputs` against central finite differences, as
/// PyTorch's `torch.autograd.gradcheck` does.
///
/// `f` maps the inputs to one output tensor of any shape. Each checked input (all of
/// them, unless [`Options::inputs`] selects some) gets a Jacobian `J[k][j] = d out[k] /
/// d in[j]` computed twice:
///
/// - **analytically**: one backward pass per output element, seeded with a one-hot
///   tensor (the graph is retained between passes), reading row `k` from the gradient
///   of each input; an input that backward does not reach gets a zero row, as in PyTorch;
/// - **numerically**: `(f(x + eps e_j) - f(x - eps e_j)) / (2 eps)`, one pair of forward
///   passes per input element.
///
/// An entry passes when `|analytical - numerical| <= atol + rtol * |numerical|`
/// (PyTorch's criterion). In [fast mode](Options::fast_mode) each input is checked on
/// one seeded random projection `v · J · u` instead (one backward pass in all).
///
/// Inputs must be `f64`; the check refuses `f32` inputs ([`GradcheckError::NotF64`])
/// because central differences at `eps = 1e-6` cannot resolve `f32` rounding. The
/// inputs are copied into fresh leaves, so it does not matter whether they require grad,
/// and the check runs with recording on even inside [`no_grad`](tapegrad::no_grad).
///
/// # Errors
/// [`GradcheckError::Mismatch`] with the full [`Report`] if any entry is out of
/// tolerance; other variants if an input is not `f64`, a value is not finite, the output
/// changes shape, or backward fails.
///
/// # Panics
/// Only if `f` (or a backward rule it recorded) panics.
///
/// # Example
/// A user's function, checked in a few lines:
/// ```
/// use tapegrad::Tensor;
/// use tapegrad_gradcheck::{gradcheck, Options};
///
/// // f(x, w) = sum_j tanh(x_ij * w_j)^2, per row
/// let f = |t: &[Tensor]| t[0].mul(&t[1]).tanh().square().sum_dim(&[1], false);
/// let x = Tensor::randn(&[3, 4], tapegrad::DType::F64, 1);
/// let w = Tensor::randn(&[4], tapegrad::DType::F64, 2);
/// let report = gradcheck(f, &[x, w], &Options::default()).expect("gradients agree");
/// assert!(report.passed());
/// assert!(report.max_abs_error() < 1e-8);
/// ```
///
/// A wrong rule is caught, and the error says where:
/// ```
/// use tapegrad::{custom_op, no_grad, Tensor};
/// use tapegrad_gradcheck::{gradcheck, Options};
///
/// // square with a rule that forgets the factor 2
/// let bad_square = |t: &[Tensor]| {
///     let x = &t[0];
///     custom_op("bad_square", &[x], no_grad(|| x * x), &[x], false, |ctx, g| vec![Some(g * ctx.saved(0))])
/// };
/// let x = Tensor::from_vec(vec![1.0f64, 2.0], &[2]);
/// let err = gradcheck(bad_square, &[x], &Options::default()).unwrap_err();
/// let report = err.report().expect("a mismatch");
/// let worst = report.inputs[0].worst.as_ref().unwrap();
/// assert!((worst.analytical - 2.0).abs() < 1e-12 && (worst.numerical - 4.0).abs() < 1e-6);
/// assert!(err.to_string().contains("FAILED"));
/// ```
pub fn gradcheck<F>(f: F, inputs: &[Tensor], options: &Options) -> Result<Report, GradcheckError>
where
    F: Fn(&[Tensor]) -> Tensor,
{
    let report = enable_grad(|| compare(&f, inputs, options, Order::First))?;
    if report.passed() {
        Ok(report)
    } else {
        Err(GradcheckError::Mismatch(Box::new(report)))
    }
}

/// Validates the inputs and the selection; returns the selected indices.
pub(crate) fn selected_inputs(
    inputs: &[Tensor],
    options: &Options,
) -> Result<Vec<usize>, GradcheckError> {
    if let Some(sel) = &options.inputs {
        if let Some(&index) = sel.iter().find(|&&i| i >= inputs.len()) {
            return Err(GradcheckError::NoSuchInput {
                index,
                count: inputs.len(),
            });
        }
    }
    let selected: Vec<usize> = (0..inputs.len()).filter(|&i| options.checks(i)).collect();
    if let Some(&input) = selected.iter().find(|&&i| inputs[i].dtype() != DType::F64) {
        return Err(GradcheckError::NotF64 {
            input,
            dtype: inputs[input].dtype(),
        });
    }
    Ok(selected)
}

/// Evaluates `f` on constant copies of `inputs` (nothing requires grad) and returns the
/// output, checking its dtype.
pub(crate) fn evaluate(
    f: &dyn Fn(&[Tensor]) -> Tensor,
    inputs: &[Tensor],
) -> Result<Tensor, GradcheckError> {
    let y = f(inputs);
    if y.dtype() != DType::F64 {
        return Err(GradcheckError::OutputNotF64 { dtype: y.dtype() });
    }
    Ok(y)
}

/// Computes both Jacobians (or projections) of every selected input and compares them.
pub(crate) fn compare(
    f: &dyn Fn(&[Tensor]) -> Tensor,
    inputs: &[Tensor],
    options: &Options,
    order: Order,
) -> Result<Report, GradcheckError> {
    let selected = selected_inputs(inputs, options)?;
    let constants: Vec<Tensor> = inputs.iter().map(Tensor::detach).collect();
    let y0 = evaluate(f, &constants)?;
    let out_shape = y0.shape().to_vec();
    let y0_values = y0.to_vec::<f64>();
    if let Some(k) = y0_values.iter().position(|v| !v.is_finite()) {
        return Err(GradcheckError::NonFinite {
            quantity: Quantity::Output,
            input: 0,
            position: Position::Element {
                output: unravel(k, &out_shape),
                input: vec![],
            },
            value: y0_values[k],
        });
    }

    // Fresh leaves for the checked inputs, constants for the rest.
    let leaves: Vec<Tensor> = constants
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if selected.contains(&i) {
                t.clone().requires_grad()
            } else {
                t.clone()
            }
        })
        .collect();
    let y = evaluate(f, &leaves)?;
    if y.shape() != out_shape.as_slice() {
        return Err(GradcheckError::ShapeChanged {
            input: 0,
            expected: out_shape,
            got: y.shape().to_vec(),
        });
    }

    let mut reports = Vec::with_capacity(selected.len());
    if options.fast_mode {
        let v = unit_random(&out_shape, mix(options.seed, u64::MAX));
        let grads = vjp(&y, &v)?;
        let v_values = v.to_vec::<f64>();
        for &i in &selected {
            let u = unit_random(inputs[i].shape(), mix(options.seed, i as u64));
            let u_values = u.to_vec::<f64>();
            let analytical = dot(&gradient_of(&grads, &leaves[i]), &u_values);
            let plus = perturbed_output(f, &constants, i, &u_values, options.eps, &out_shape)?;
            let minus = perturbed_output(f, &constants, i, &u_values, -options.eps, &out_shape)?;
            let numerical = (dot(&plus, &v_values) - dot(&minus, &v_values)) / (2.0 * options.eps);
            let entry = checked_entry(i, Position::Projection, analytical, numerical, options)?;
            reports.push(InputReport {
                input: i,
                shape: inputs[i].shape().to_vec(),
                compared: 1,
                max_abs_error: entry.abs_error,
                max_rel_error: entry.rel_error,
                worst: Some(entry),
            });
        }
    } else {
        let m = y0_values.len();
        // analytical[s][k * n_i + j] for the s-th selected input.
        let mut analytical: Vec<Vec<f64>> = selected
            .iter()
            .map(|&i| vec![0.0; m * inputs[i].numel()])
            .collect();
        for k in 0..m {
            let grads = vjp(&y, &one_hot(&out_shape, k))?;
            for (s, &i) in selected.iter().enumerate() {
                let n = inputs[i].numel();
                analytical[s][k * n..(k + 1) * n].copy_from_slice(&gradient_of(&grads, &leaves[i]));
            }
        }
        for (s, &i) in selected.iter().enumerate() {
            let n = inputs[i].numel();
            let in_shape = inputs[i].shape().to_vec();
            let mut report = InputReport {
                input: i,
                shape: in_shape.clone(),
                compared: m * n,
                worst: None,
                max_abs_error: 0.0,
                max_rel_error: 0.0,
            };
            let mut direction = vec![0.0; n];
            for j in 0..n {
                direction[j] = 1.0;
                let plus = perturbed_output(f, &constants, i, &direction, options.eps, &out_shape)?;
                let minus =
                    perturbed_output(f, &constants, i, &direction, -options.eps, &out_shape)?;
                direction[j] = 0.0;
                for k in 0..m {
                    let numerical = (plus[k] - minus[k]) / (2.0 * options.eps);
                    let position = Position::Element {
                        output: unravel(k, &out_shape),
                        input: unravel(j, &in_shape),
                    };
                    let entry =
                        checked_entry(i, position, analytical[s][k * n + j], numerical, options)?;
                    report.max_abs_error = report.max_abs_error.max(entry.abs_error);
                    report.max_rel_error = report.max_rel_error.max(entry.rel_error);
                    if report
                        .worst
                        .as_ref()
                        .is_none_or(|w| entry.violation > w.violation)
                    {
                        report.worst = Some(entry);
                    }
                }
            }
            reports.push(report);
        }
    }
    Ok(Report {
        order,
        fast_mode: options.fast_mode,
        eps: options.eps,
        atol: options.atol,
        rtol: options.rtol,
        output_shape: out_shape,
        inputs: reports,
        cotangent: None,
    })
}

/// An entry, or a `NonFinite` error if either value is NaN or infinite.
fn checked_entry(
    input: usize,
    position: Position,
    analytical: f64,
    numerical: f64,
    options: &Options,
) -> Result<Entry, GradcheckError> {
    for (quantity, value) in [
        (Quantity::Analytical, analytical),
        (Quantity::Numerical, numerical),
    ] {
        if !value.is_finite() {
            return Err(GradcheckError::NonFinite {
                quantity,
                input,
                position,
                value,
            });
        }
    }
    Ok(Entry::new(
        position,
        analytical,
        numerical,
        options.atol,
        options.rtol,
    ))
}

/// The vector-Jacobian product: backward from `y` seeded with `seed`, graph retained.
/// An output that nothing recorded (no checked input reaches it) has zero gradients.
fn vjp(y: &Tensor, seed: &Tensor) -> Result<Grads, GradcheckError> {
    if !y.tracks_grad() {
        return Ok(Grads::new());
    }
    Ok(y.backward_opts(
        Some(seed),
        BackwardOptions {
            create_graph: false,
            retain_graph: true,
        },
    )?)
}

/// The gradient of `leaf` as a flat vector, zeros if backward did not reach it.
fn gradient_of(grads: &Grads, leaf: &Tensor) -> Vec<f64> {
    grads
        .get(leaf)
        .map_or_else(|| vec![0.0; leaf.numel()], |g| g.to_vec::<f64>())
}

/// The flat output of `f` with input `i` moved by `step * direction`.
fn perturbed_output(
    f: &dyn Fn(&[Tensor]) -> Tensor,
    constants: &[Tensor],
    i: usize,
    direction: &[f64],
    step: f64,
    out_shape: &[usize],
) -> Result<Vec<f64>, GradcheckError> {
    let x = &constants[i];
    let moved: Vec<f64> = x
        .to_vec::<f64>()
        .iter()
        .zip(direction)
        .map(|(v, d)| v + step * d)
        .collect();
    let mut args = constants.to_vec();
    args[i] = Tensor::from_vec(moved, x.shape());
    let y = evaluate(f, &args)?;
    if y.shape() != out_shape {
        return Err(GradcheckError::ShapeChanged {
            input: i,
            expected: out_shape.to_vec(),
            got: y.shape().to_vec(),
        });
    }
    Ok(y.to_vec::<f64>())
}

/// A standard normal tensor scaled to unit L2 norm (fast mode's `u` and `v`).
pub(crate) fn unit_random(shape: &[usize], seed: u64) -> Tensor {
    let mut v = Tensor::randn(shape, DType::F64, seed).to_vec::<f64>();
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    Tensor::from_vec(v, shape)
}

fn one_hot(shape: &[usize], k: usize) -> Tensor {
    let mut v = vec![0.0f64; shape.iter().product()];
    v[k] = 1.0;
    Tensor::from_vec(v, shape)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Derives an independent seed for stream `i` from `seed` (SplitMix64 finaliser).
pub(crate) fn mix(seed: u64, i: u64) -> u64 {
    let mut z = seed ^ i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The multi-index of flat (row-major) position `k` in `shape`.
pub(crate) fn unravel(mut k: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (d, &size) in shape.iter().enumerate().rev() {
        index[d] = k % size;
        k /= size;
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unravel_is_row_major() {
        assert_eq!(unravel(5, &[2, 3]), vec![1, 2]);
        assert_eq!(unravel(0, &[]), Vec::<usize>::new());
        assert_eq!(unravel(7, &[2, 2, 2]), vec![1, 1, 1]);
        assert_eq!(unravel(2, &[1, 3]), vec![0, 2]);
    }

    #[test]
    fn unit_random_has_unit_norm_and_depends_on_seed() {
        let a = unit_random(&[3, 2], 1).to_vec::<f64>();
        let b = unit_random(&[3, 2], 2).to_vec::<f64>();
        assert!((a.iter().map(|x| x * x).sum::<f64>() - 1.0).abs() < 1e-12);
        assert_ne!(a, b);
        assert_ne!(mix(0, 0), mix(0, 1));
    }
}
