//! [`gradgradcheck`]: second derivatives, by checking the backward pass itself with
//! [`gradcheck`](crate::gradcheck)'s machinery, as PyTorch's `gradgradcheck` does.

use std::cell::RefCell;

use tapegrad::{enable_grad, BackwardError, BackwardOptions, DType, Grads, Tensor};

use crate::check::{compare, evaluate, mix, selected_inputs};
use crate::options::Options;
use crate::report::{GradcheckError, Order, Report};

/// Checks second derivatives of `f` at `inputs`.
///
/// With `n` inputs and a seeded random cotangent `u` of the output's shape (uniform in
/// `[-1, 1)`, as PyTorch draws it), this builds
///
/// `F(x_0, ..., x_{n-1}, u) = concat_i flatten(d (u · f(x)) / d x_i)`
///
/// (the vector-Jacobian product of `f`, computed by a backward pass with
/// `create_graph`; an input that backward does not reach contributes zeros), and runs
/// the first-order check on `F` over the selected `x_i` **and** `u`. So the rules'
/// own gradients (what `backward_with_graph` records) are compared against finite
/// differences of the rules. In the [`Report`], input `n` is the cotangent `u`.
///
/// The options mean what they mean for [`gradcheck`](crate::gradcheck) (fast mode
/// checks random projections of `F`'s Jacobian); [`Options::seed`] also picks `u`.
///
/// # Errors
/// As for [`gradcheck`](crate::gradcheck): [`GradcheckError::Mismatch`] when a second
/// derivative is out of tolerance (its report has `order == Order::Second`).
///
/// # Panics
/// Only if `f` or a backward rule panics.
///
/// # Example
/// ```
/// use tapegrad::Tensor;
/// use tapegrad_gradcheck::{gradgradcheck, Options};
///
/// let f = |t: &[Tensor]| t[0].sin().mul(&t[1]).sum_dim(&[0], false);
/// let x = Tensor::randn(&[2, 3], tapegrad::DType::F64, 5);
/// let w = Tensor::randn(&[3], tapegrad::DType::F64, 6);
/// let report = gradgradcheck(f, &[x, w], &Options::default()).expect("second derivatives agree");
/// assert_eq!(report.inputs.len(), 3); // x, w and the cotangent
/// ```
pub fn gradgradcheck<F>(
    f: F,
    inputs: &[Tensor],
    options: &Options,
) -> Result<Report, GradcheckError>
where
    F: Fn(&[Tensor]) -> Tensor,
{
    let report = enable_grad(|| second_order(&f, inputs, options))?;
    if report.passed() {
        Ok(report)
    } else {
        Err(GradcheckError::Mismatch(Box::new(report)))
    }
}

fn second_order(
    f: &dyn Fn(&[Tensor]) -> Tensor,
    inputs: &[Tensor],
    options: &Options,
) -> Result<Report, GradcheckError> {
    let selected = selected_inputs(inputs, options)?;
    let n = inputs.len();
    let constants: Vec<Tensor> = inputs.iter().map(Tensor::detach).collect();
    let y0 = evaluate(f, &constants)?;
    let u = Tensor::rand_uniform(
        y0.shape(),
        -1.0,
        1.0,
        DType::F64,
        mix(options.seed, u64::MAX - 1),
    );

    // A backward error inside F cannot be returned through F's signature: keep it here.
    let failure: RefCell<Option<BackwardError>> = RefCell::new(None);
    let vjp_of_f = |args: &[Tensor]| -> Tensor {
        let (xs, seed) = (&args[..n], &args[n]);
        // Checked inputs must be leaves that require grad for the inner backward to reach
        // them: the outer check passes its own leaves (analytical pass) or constants
        // (numerical pass), which get fresh leaves here.
        let xs: Vec<Tensor> = xs
            .iter()
            .enumerate()
            .map(|(i, x)| {
                if selected.contains(&i) && !x.tracks_grad() {
                    x.clone().requires_grad()
                } else {
                    x.clone()
                }
            })
            .collect();
        let y = f(&xs);
        let grads = if y.tracks_grad() {
            match y.backward_opts(
                Some(seed),
                BackwardOptions {
                    create_graph: true,
                    retain_graph: true,
                },
            ) {
                Ok(g) => g,
                Err(e) => {
                    failure.borrow_mut().get_or_insert(e);
                    Grads::new()
                }
            }
        } else {
            Grads::new()
        };
        let parts: Vec<Tensor> = selected
            .iter()
            .map(|&i| match grads.get(&xs[i]) {
                Some(g) => g.reshape(&[-1]),
                None => Tensor::zeros(&[xs[i].numel()], DType::F64),
            })
            .collect();
        if parts.is_empty() {
            Tensor::zeros(&[0], DType::F64)
        } else {
            Tensor::cat(&parts, 0)
        }
    };

    let mut args = constants;
    args.push(u);
    let mut outer = options.clone();
    outer.inputs = Some(selected.iter().copied().chain([n]).collect());
    let report = compare(&vjp_of_f, &args, &outer, Order::Second);
    if let Some(e) = failure.into_inner() {
        return Err(GradcheckError::Backward(e));
    }
    Ok(Report {
        cotangent: Some(n),
        ..report?
    })
}
