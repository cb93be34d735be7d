//! `grad`: the gradients of some outputs with respect to any tensors, leaves or
//! intermediates (PyTorch's `torch.autograd.grad`).

use super::engine::{run, BackwardError, BackwardOptions, Targets};
use crate::tensor::Tensor;

/// Options of [`grad`]; all off by default.
#[derive(Clone, Copy, Debug, Default)]
pub struct GradOptions {
    /// Record the backward computation, so the gradients returned can be differentiated
    /// again (higher order). Implies `retain_graph`.
    pub create_graph: bool,
    /// Keep the saved tensors of the nodes that ran, so backward can go through the
    /// graph again (otherwise they are freed as in [`Tensor::backward`]).
    pub retain_graph: bool,
    /// Return `None` for an input the outputs do not depend on, instead of
    /// [`BackwardError::Unused`].
    pub allow_unused: bool,
}

/// The gradients of `outputs` with respect to `inputs` (PyTorch's `torch.autograd.grad`):
/// `sum_k grad_outputs[k] . d outputs[k] / d inputs[i]` for each input, in order.
///
/// Inputs may be leaves or intermediate tensors (the result of a recorded op), so the
/// gradient of an activation can be read; only the part of the graph between the outputs
/// and the inputs runs. `grad_outputs` seeds each output (default: ones, which needs a
/// scalar output, as [`Tensor::backward`]). An input the outputs do not depend on is an
/// error unless `allow_unused`, which gives `None` for it. Hooks registered on the
/// inputs ([`Tensor::register_hook`]) run before their gradient is read.
///
/// ```
/// use tapegrad::{grad, GradOptions, Tensor};
/// let x = Tensor::from_vec(vec![1.0f64, -2.0], &[2]).requires_grad();
/// let h = x.tanh(); // an activation
/// let loss = (&h * &h).sum();
/// let g = grad(&[&loss], &[&h, &x], None, GradOptions::default()).unwrap();
/// let h_vals = h.to_vec::<f64>();
/// assert_eq!(g[0].as_ref().unwrap().to_vec::<f64>(), vec![2.0 * h_vals[0], 2.0 * h_vals[1]]);
/// assert!(g[1].is_some());
/// ```
///
/// # Errors
/// [`BackwardError::NoGraph`] if an output does not require grad,
/// [`BackwardError::InputNoGrad`] if an input does not,
/// [`BackwardError::NotScalar`] / [`BackwardError::GradOutput`] for missing or misshapen
/// seeds, [`BackwardError::Unused`] naming the first unused input (without
/// `allow_unused`), and the errors of backward ([`BackwardError::SavedFreed`], ...).
#[track_caller]
pub fn grad(
    outputs: &[&Tensor],
    inputs: &[&Tensor],
    grad_outputs: Option<&[&Tensor]>,
    options: GradOptions,
) -> Result<Vec<Option<Tensor>>, BackwardError> {
    if let Some(seeds) = grad_outputs {
        if seeds.len() != outputs.len() {
            return Err(BackwardError::GradOutputCount {
                outputs: outputs.len(),
                grad_outputs: seeds.len(),
            });
        }
    }
    let mut roots = Vec::with_capacity(outputs.len());
    for (k, output) in outputs.iter().enumerate() {
        if !output.tracks_grad() {
            return Err(BackwardError::NoGraph);
        }
        let seed = match grad_outputs {
            Some(seeds) => {
                let g = seeds[k];
                if g.shape() != output.shape() || g.dtype() != output.dtype() {
                    return Err(BackwardError::GradOutput {
                        index: k,
                        output: output.shape().to_vec(),
                        grad: g.shape().to_vec(),
                    });
                }
                if options.create_graph {
                    g.clone()
                } else {
                    g.detach()
                }
            }
            None if output.numel() == 1 => output.ones_like(),
            None => {
                return Err(BackwardError::NotScalar {
                    shape: output.shape().to_vec(),
                })
            }
        };
        roots.push((*output, seed));
    }
    for (index, input) in inputs.iter().enumerate() {
        if !input.tracks_grad() {
            return Err(BackwardError::InputNoGrad {
                index,
                shape: input.shape().to_vec(),
            });
        }
    }
    let mut targets = Targets::new(outputs, inputs);
    let opts = BackwardOptions {
        create_graph: options.create_graph,
        retain_graph: options.retain_graph,
    };
    let leaf_grads = run(&roots, opts, None, Some(&mut targets))?;
    let mut result = Vec::with_capacity(inputs.len());
    for (index, input) in inputs.iter().enumerate() {
        let g = if input.is_leaf() {
            leaf_grads.get(input).cloned()
        } else {
            targets.captured(input).cloned()
        };
        if g.is_none() && !options.allow_unused {
            return Err(BackwardError::Unused {
                index,
                shape: input.shape().to_vec(),
            });
        }
        result.push(g);
    }
    Ok(result)
}
