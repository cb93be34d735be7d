//! The autograd tools: `grad` for any tensors (leaves or intermediates), tensor hooks,
//! anomaly mode and the `func` transforms, against known values and central differences.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tapegrad::{
    custom_op, detect_anomaly, func, grad, is_anomaly_enabled, no_grad, BackwardError, DType,
    GradOptions, Tensor,
};

fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= tol * (1.0 + y.abs()))
}

#[track_caller]
fn assert_close(got: &[f64], want: &[f64], tol: f64) {
    assert!(close(got, want, tol), "got {got:?}\nwant {want:?}");
}

fn leaf(v: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape).requires_grad()
}

/// Central differences of a scalar function of a flat f64 vector, step 1e-6.
fn central_diff(f: impl Fn(&[f64]) -> f64, x: &[f64]) -> Vec<f64> {
    let h = 1e-6;
    (0..x.len())
        .map(|i| {
            let mut p = x.to_vec();
            let mut m = x.to_vec();
            p[i] += h;
            m[i] -= h;
            (f(&p) - f(&m)) / (2.0 * h)
        })
        .collect()
}

fn opts() -> GradOptions {
    GradOptions::default()
}

fn some(g: &Option<Tensor>) -> Vec<f64> {
    g.as_ref().expect("a gradient").to_vec::<f64>()
}

// ------------------------------------------------------------------------ grad

/// The head of a small network: `sum(sin(h) * w)` of an activation `h`.
fn head(h: &Tensor, w: &Tensor) -> Tensor {
    h.sin().mul(w).sum()
}

#[test]
fn grad_of_an_intermediate_matches_central_differences() {
    let x = leaf(&[0.3, -1.2, 0.8, 2.0, -0.4, 1.1], &[2, 3]);
    let w = Tensor::from_vec(vec![0.5f64, -1.5, 2.0, 1.0, 0.25, -0.75], &[2, 3]);
    let h = x.exp().mul_scalar(0.5); // the activation
    let loss = head(&h, &w);
    let g = grad(&[&loss], &[&h], None, opts()).unwrap();
    let at_h = |hv: &[f64]| head(&Tensor::from_vec(hv.to_vec(), &[2, 3]), &w).item();
    assert_close(&some(&g[0]), &central_diff(at_h, &h.to_vec::<f64>()), 1e-7);
}

#[test]
fn grad_of_leaves_and_intermediates_together_is_what_backward_gives() {
    let x = leaf(&[0.3, -1.2, 0.8], &[3]);
    let w = leaf(&[1.0, 2.0, -0.5], &[3]);
    let h = x.tanh();
    let loss = h.mul(&w).square().sum();
    let g = grad(
        &[&loss],
        &[&w, &h, &x],
        None,
        GradOptions {
            retain_graph: true,
            ..opts()
        },
    )
    .unwrap();
    let full = loss.backward();
    assert_close(&some(&g[0]), &full[&w].to_vec::<f64>(), 1e-15);
    assert_close(&some(&g[2]), &full[&x].to_vec::<f64>(), 1e-15);
    // d loss / d h = 2 (h w) w
    let (hv, wv) = (h.to_vec::<f64>(), w.to_vec::<f64>());
    let want: Vec<f64> = hv.iter().zip(&wv).map(|(h, w)| 2.0 * h * w * w).collect();
    assert_close(&some(&g[1]), &want, 1e-15);
}

#[test]
fn grad_sums_over_outputs_weighted_by_grad_outputs() {
    let x = leaf(&[0.5, -0.25, 1.5], &[3]);
    let a = x.exp(); // [3]
    let b = x.square().sum(); // scalar
    let va = Tensor::from_vec(vec![1.0f64, -2.0, 0.5], &[3]);
    let vb = Tensor::scalar(3.0f64);
    let g = grad(&[&a, &b], &[&x], Some(&[&va, &vb]), opts()).unwrap();
    let f = |xv: &[f64]| {
        let a: f64 = xv
            .iter()
            .zip([1.0, -2.0, 0.5])
            .map(|(x, v)| x.exp() * v)
            .sum();
        let b: f64 = xv.iter().map(|x| x * x).sum();
        a + 3.0 * b
    };
    assert_close(&some(&g[0]), &central_diff(f, &x.to_vec::<f64>()), 1e-7);
}

#[test]
fn grad_needs_scalar_outputs_or_seeds_of_their_shape() {
    let x = leaf(&[1.0, 2.0], &[2]);
    let y = x.mul_scalar(3.0);
    assert!(matches!(
        grad(&[&y], &[&x], None, opts()),
        Err(BackwardError::NotScalar { .. })
    ));
    let bad = Tensor::ones(&[3], DType::F64);
    let err = grad(&[&y], &[&x], Some(&[&bad]), opts()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "grad: grad_outputs[0] has shape [3], its output [2] (the dtypes must match too)"
    );
    assert!(matches!(
        grad(&[&y], &[&x], Some(&[]), opts()),
        Err(BackwardError::GradOutputCount {
            outputs: 1,
            grad_outputs: 0
        })
    ));
}

#[test]
fn unused_inputs_are_errors_naming_them_unless_allowed() {
    let x = leaf(&[1.0, 2.0], &[2]);
    let unused = leaf(&[3.0], &[1]);
    let y = x.square().sum();
    let err = grad(&[&y], &[&x, &unused], None, opts()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "grad: input 1 (shape [1]) is not used to compute the outputs; pass allow_unused: true to get None for it"
    );
    let y = x.square().sum();
    let g = grad(
        &[&y],
        &[&x, &unused],
        None,
        GradOptions {
            allow_unused: true,
            ..opts()
        },
    )
    .unwrap();
    assert_eq!(some(&g[0]), vec![2.0, 4.0]);
    assert!(g[1].is_none());
    let constant = Tensor::ones(&[2], DType::F64);
    assert!(matches!(
        grad(&[&y], &[&constant], None, opts()),
        Err(BackwardError::InputNoGrad { index: 0, .. })
    ));
    let no_graph = constant.sum();
    assert!(matches!(
        grad(&[&no_graph], &[&x], None, opts()),
        Err(BackwardError::NoGraph)
    ));
}

#[test]
fn grad_frees_the_graph_unless_retained() {
    let x = leaf(&[0.5, 1.5], &[2]);
    let y = x.exp().sum();
    let first = grad(&[&y], &[&x], None, opts()).unwrap();
    assert_close(&some(&first[0]), &[0.5f64.exp(), 1.5f64.exp()], 1e-15);
    assert!(matches!(
        grad(&[&y], &[&x], None, opts()),
        Err(BackwardError::SavedFreed { op: "exp" })
    ));
    let y = x.exp().sum();
    let keep = GradOptions {
        retain_graph: true,
        ..opts()
    };
    let a = grad(&[&y], &[&x], None, keep).unwrap();
    let b = grad(&[&y], &[&x], None, keep).unwrap();
    assert_eq!(some(&a[0]), some(&b[0]));
}

#[test]
fn grad_runs_only_the_part_of_the_graph_below_the_outputs_and_above_the_inputs() {
    // A custom op below the activation counts its rule's runs: asking for the
    // activation's gradient must not run it.
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let x = leaf(&[1.0, 2.0], &[2]);
    let below = custom_op(
        "counted",
        &[&x],
        no_grad(|| x.mul_scalar(2.0)),
        &[],
        false,
        move |_, g| {
            counter.fetch_add(1, Ordering::SeqCst);
            vec![Some(g.mul_scalar(2.0))]
        },
    );
    let h = below.tanh();
    let loss = h.sum();
    let g = grad(&[&loss], &[&h], None, opts()).unwrap();
    assert_eq!(some(&g[0]), vec![1.0, 1.0]);
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    loss.backward();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[test]
fn grad_with_create_graph_differentiates_again() {
    // y = sum(x^3 * z): dy/dx = 3 x^2 z, d/dx sum(dy/dx) = 6 x z, d/dz sum(dy/dx) = 3 x^2.
    let x = leaf(&[0.5, -1.0, 2.0], &[3]);
    let z = leaf(&[1.5, 2.0, -0.5], &[3]);
    let y = x.powf(3.0).mul(&z).sum();
    let dx = grad(
        &[&y],
        &[&x],
        None,
        GradOptions {
            create_graph: true,
            ..opts()
        },
    )
    .unwrap()
    .remove(0)
    .unwrap();
    assert!(dx.tracks_grad());
    let second = grad(&[&dx.sum()], &[&x, &z], None, opts()).unwrap();
    let (xv, zv) = (x.to_vec::<f64>(), z.to_vec::<f64>());
    let want_x: Vec<f64> = xv.iter().zip(&zv).map(|(x, z)| 6.0 * x * z).collect();
    let want_z: Vec<f64> = xv.iter().map(|x| 3.0 * x * x).collect();
    assert_close(&some(&second[0]), &want_x, 1e-14);
    assert_close(&some(&second[1]), &want_z, 1e-14);
    // And against central differences of the first derivative.
    let first = |xv: &[f64]| -> f64 {
        xv.iter()
            .zip([1.5, 2.0, -0.5])
            .map(|(x, z)| 3.0 * x * x * z)
            .sum()
    };
    assert_close(&some(&second[0]), &central_diff(first, &xv), 1e-7);
}

#[test]
fn grad_of_an_output_with_respect_to_itself_is_its_seed() {
    let x = leaf(&[1.0, 2.0], &[2]);
    let y = x.exp();
    let seed = Tensor::from_vec(vec![3.0f64, -1.0], &[2]);
    let g = grad(&[&y], &[&y], Some(&[&seed]), opts()).unwrap();
    assert_eq!(some(&g[0]), vec![3.0, -1.0]);
    let g = grad(&[&x], &[&x], Some(&[&seed]), opts()).unwrap();
    assert_eq!(some(&g[0]), vec![3.0, -1.0]);
}

// ------------------------------------------------------------------------ hooks

#[test]
fn a_hook_on_a_leaf_changes_its_gradient() {
    let x = leaf(&[1.0, -2.0], &[2]);
    let _handle = x.register_hook(|g| g.mul_scalar(2.0));
    let g = x.square().sum().backward();
    assert_eq!(g[&x].to_vec::<f64>(), vec![4.0, -8.0]);
}

#[test]
fn a_hook_on_an_intermediate_sees_its_complete_gradient_once_and_changes_what_flows_on() {
    let x = leaf(&[0.5, 1.5], &[2]);
    let h = x.square();
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (c, s) = (calls.clone(), seen.clone());
    let _handle = h.register_hook(move |g| {
        c.fetch_add(1, Ordering::SeqCst);
        *s.lock().unwrap() = g.to_vec::<f64>();
        g.mul_scalar(-1.0)
    });
    // h is used twice: d/dh (3 sum(h) + sum(h^2)) = 3 + 2h.
    let y = h.mul_scalar(3.0).sum().add(&h.square().sum());
    let g = y.backward();
    let hv = h.to_vec::<f64>();
    let want_h: Vec<f64> = hv.iter().map(|h| 3.0 + 2.0 * h).collect();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_close(&seen.lock().unwrap(), &want_h, 1e-15);
    // The negated gradient flows on to x through dh/dx = 2x.
    let want_x: Vec<f64> = [0.5f64, 1.5]
        .iter()
        .zip(&want_h)
        .map(|(x, gh)| -gh * 2.0 * x)
        .collect();
    assert_close(&g[&x].to_vec::<f64>(), &want_x, 1e-15);
}

#[test]
fn removing_a_hook_restores_the_plain_gradient_and_dropping_the_handle_does_not() {
    let x = leaf(&[1.0, 2.0], &[2]);
    let doubled = x.register_hook(|g| g.mul_scalar(2.0));
    let _ = x.register_hook(|g| g.add_scalar(1.0)); // kept: dropping the handle keeps it
    let y = x.mul_scalar(3.0).sum();
    // Hooks run in registration order: (3 * 2) + 1.
    assert_eq!(
        y.backward_retain_graph()[&x].to_vec::<f64>(),
        vec![7.0, 7.0]
    );
    assert!(doubled.remove());
    assert_eq!(y.backward()[&x].to_vec::<f64>(), vec![4.0, 4.0]);
    // A hook whose tensor is gone is removed with it.
    let gone = leaf(&[1.0], &[1]);
    let handle = gone.register_hook(|g| g.clone());
    drop(gone);
    let other = leaf(&[1.0], &[1]);
    let _keep = other.register_hook(|_g: &Tensor| ()); // registering sweeps dead hooks
    assert!(!handle.remove());
}

#[test]
fn a_hook_that_only_looks_or_returns_none_keeps_the_gradient() {
    let x = leaf(&[1.0, 2.0], &[2]);
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    let _a = x.register_hook(move |g: &Tensor| s.lock().unwrap().push(g.to_vec::<f64>()));
    let _b = x.register_hook(|_g: &Tensor| -> Option<Tensor> { None });
    let g = x.square().sum().backward();
    assert_eq!(g[&x].to_vec::<f64>(), vec![2.0, 4.0]);
    assert_eq!(*seen.lock().unwrap(), vec![vec![2.0, 4.0]]);
}

#[test]
fn hooks_are_recorded_and_differentiated_in_higher_order_graphs() {
    // h = x^3 with a hook g -> g * h: the first derivative of sum(h) becomes
    // h * 3x^2 = 3x^5, whose derivative is 15 x^4.
    let x = leaf(&[0.5, -1.5, 2.0], &[3]);
    let h = x.powf(3.0);
    let hh = h.clone();
    let handle = h.register_hook(move |g| g.mul(&hh));
    let y = h.sum();
    let dx = y.backward_with_graph()[&x].clone();
    let xv = x.to_vec::<f64>();
    assert_close(
        &dx.to_vec::<f64>(),
        &xv.iter().map(|x| 3.0 * x.powi(5)).collect::<Vec<_>>(),
        1e-14,
    );
    // Differentiating dx = 3x^2 * h again sends a gradient 3x^2 through h, where the
    // hook (still registered, as in PyTorch) multiplies it by h once more:
    // 6x * h + 3x^2 * h * 3x^2 = 6x^4 + 9x^7.
    let total = dx.sum();
    let d2 = total.backward_retain_graph()[&x].to_vec::<f64>();
    let want: Vec<f64> = xv
        .iter()
        .map(|x| 6.0 * x.powi(4) + 9.0 * x.powi(7))
        .collect();
    assert_close(&d2, &want, 1e-13);
    // Without the hook in the second pass: 6x^4 + 9x^4.
    assert!(handle.remove());
    let d2 = total.backward()[&x].to_vec::<f64>();
    assert_close(
        &d2,
        &xv.iter().map(|x| 15.0 * x.powi(4)).collect::<Vec<_>>(),
        1e-13,
    );
}

#[test]
fn grad_reads_an_intermediate_gradient_after_its_hooks() {
    let x = leaf(&[1.0, 2.0], &[2]);
    let h = x.exp();
    let _handle = h.register_hook(|g| g.mul_scalar(5.0));
    let y = h.sum();
    let g = grad(&[&y], &[&h, &x], None, opts()).unwrap();
    assert_eq!(some(&g[0]), vec![5.0, 5.0]);
    let want: Vec<f64> = [1.0f64, 2.0].iter().map(|x| 5.0 * x.exp()).collect();
    assert_close(&some(&g[1]), &want, 1e-15);
}

#[test]
fn the_leaf_ready_callback_reports_gradients_after_the_leaf_hooks() {
    let w1 = leaf(&[2.0], &[1]);
    let w2 = leaf(&[3.0], &[1]);
    let _handle = w1.register_hook(|g| g.mul_scalar(10.0));
    let y = w1.square().mul(&w2).sum();
    let mut ready = Vec::new();
    let grads = y
        .try_backward_with_hook(&mut |id, g| ready.push((id, g.item())))
        .unwrap();
    assert_eq!(ready, vec![(w2.id(), 4.0), (w1.id(), 120.0)]);
    assert_eq!(grads[&w1].item(), 120.0);
}

#[test]
#[should_panic(expected = "returned a f64 gradient of shape [1] for a f64 gradient of shape [2]")]
fn a_hook_returning_the_wrong_shape_is_named() {
    let x = leaf(&[1.0, 2.0], &[2]);
    let _handle = x.register_hook(|g| g.sum().reshape(&[1]));
    x.square().sum().backward();
}

#[test]
#[should_panic(expected = "register_hook: the tensor (shape [2]) does not require grad")]
fn hooks_need_a_tensor_that_tracks_grad() {
    let _ = Tensor::ones(&[2], DType::F64).register_hook(|g| g.clone());
}

// ------------------------------------------------------------------------ anomaly mode

/// Runs `f`, which must panic, and returns the panic message.
fn panic_message(f: impl FnOnce()) -> String {
    let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .expect_err("the call should have panicked");
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn anomaly_mode_names_the_forward_op_and_the_callers_line() {
    let x = leaf(&[1.0, -1.0], &[2]);
    let line = line!() + 1;
    let message = panic_message(|| drop(detect_anomaly(|| x.mul_scalar(2.0).log())));
    assert!(
        message.starts_with(&format!(
            "anomaly in forward: `log` called at {}:{line}:",
            file!()
        )),
        "{message}"
    );
    assert!(
        message.ends_with("produced NaN (output shape [2]); its inputs were finite"),
        "{message}"
    );
    // Operators, composed ops and ops that record nothing point at the caller too.
    let big = Tensor::from_vec(vec![1e300f64, 1.0], &[2]);
    let line = line!() + 1;
    let message = panic_message(|| drop(detect_anomaly(|| &big * &big)));
    assert!(
        message.starts_with(&format!(
            "anomaly in forward: `mul` called at {}:{line}:",
            file!()
        )),
        "{message}"
    );
    assert!(message.contains("produced inf"), "{message}");
    let nan = Tensor::from_vec(vec![f64::NAN, 1.0], &[2]);
    let line = line!() + 1;
    let message = panic_message(|| drop(detect_anomaly(|| nan.softmax(0))));
    assert!(
        message.contains(&format!("called at {}:{line}:", file!())),
        "{message}"
    );
    assert!(
        message.ends_with("its input 0 already held NaN"),
        "{message}"
    );
}

#[test]
fn outside_anomaly_mode_nothing_is_checked() {
    assert!(!is_anomaly_enabled());
    let y = Tensor::from_vec(vec![-1.0f64], &[1]).log();
    assert!(y.item().is_nan());
    assert!(detect_anomaly(is_anomaly_enabled));
    assert!(!is_anomaly_enabled());
}

#[test]
fn anomaly_mode_names_the_op_whose_rule_returned_an_infinite_or_nan_gradient() {
    // sqrt at 0: the value is 0, the gradient 1 / (2 sqrt 0) = inf.
    let x = leaf(&[4.0, 0.0], &[2]);
    let line = line!() + 1;
    let y = detect_anomaly(|| x.sqrt().mul_scalar(3.0).sum());
    let err = detect_anomaly(|| y.try_backward()).unwrap_err().to_string();
    let at = format!("(called at {}:{line}:", file!());
    assert!(
        err.starts_with(&format!("anomaly in backward: the rule of `sqrt` {at}"))
            && err.ends_with(") returned a gradient holding inf for its input 0"),
        "{err}"
    );
    // 0 * sqrt(0): the gradient reaching sqrt is 0, and 0 / (2 sqrt 0) is NaN.
    let line = line!() + 1;
    let y = detect_anomaly(|| x.sqrt().mul_scalar(0.0).sum());
    let message = panic_message(|| drop(detect_anomaly(|| y.backward())));
    assert!(
        message.starts_with(&format!(
            "anomaly in backward: the rule of `sqrt` (called at {}:{line}:",
            file!()
        )) && message.ends_with("returned a gradient holding NaN for its input 0"),
        "{message}"
    );
    // grad returns the same error; a graph recorded outside anomaly mode has no site.
    let y = x.sqrt().sum();
    let err = detect_anomaly(|| grad(&[&y], &[&x], None, opts())).unwrap_err();
    assert!(matches!(
        &err,
        BackwardError::Anomaly {
            op: "sqrt",
            input: 0,
            kind: "inf",
            ..
        }
    ));
    assert!(
        err.to_string().contains("recorded outside anomaly mode"),
        "{err}"
    );
    // Finite gradients pass, with the same values as without anomaly mode.
    let x = leaf(&[4.0, 1.0], &[2]);
    let g = detect_anomaly(|| x.sqrt().sum().backward());
    assert_eq!(g[&x].to_vec::<f64>(), vec![0.25, 0.5]);
}

/// Anomaly mode names the user's line only if every public op is `#[track_caller]`
/// (a location is passed down through such calls): each `pub fn` of an `impl Tensor`
/// block in `src/ops/` must carry the attribute.
#[test]
fn every_public_op_is_track_caller() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ops");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let src = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = src.lines().collect();
        let mut in_impl = false;
        for (i, line) in lines.iter().enumerate() {
            if line.starts_with("impl Tensor {") {
                in_impl = true;
            } else if in_impl && line.starts_with('}') {
                in_impl = false;
            } else if in_impl && line.trim_start().starts_with("pub fn ") {
                let attributes = lines[..i].iter().rev().take_while(|l| {
                    l.trim_start().starts_with("#[") || l.trim_start().starts_with("///")
                });
                if !attributes
                    .into_iter()
                    .any(|l| l.contains("#[track_caller]"))
                {
                    let file = path.file_name().unwrap().to_string_lossy();
                    missing.push(format!("{file}:{}: {}", i + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "public ops without #[track_caller] (anomaly mode would name a line inside tapegrad):\n  {}",
        missing.join("\n  ")
    );
}

// ------------------------------------------------------------------------ func

fn matrix_a() -> Tensor {
    Tensor::from_vec(vec![1.0f64, -2.0, 0.5, 3.0, 0.0, 4.0], &[2, 3])
}

fn times_a(x: &Tensor) -> Tensor {
    matrix_a().matmul(&x.reshape(&[3, 1])).reshape(&[2])
}

#[test]
fn the_jacobian_of_a_linear_map_is_its_matrix_and_vjp_jvp_are_products_with_it() {
    let x = Tensor::from_vec(vec![0.3f64, -1.0, 2.0], &[3]);
    let j = func::jacobian(times_a, &x);
    assert_eq!(j.shape(), &[2, 3]);
    assert_eq!(j.to_vec::<f64>(), matrix_a().to_vec::<f64>());
    // v^T A and A u.
    let v = Tensor::from_vec(vec![2.0f64, -1.0], &[2]);
    let (y, vj) = func::vjp(times_a, &x, &v);
    assert_close(&y.to_vec::<f64>(), &times_a(&x).to_vec::<f64>(), 1e-15);
    assert_close(&vj.to_vec::<f64>(), &[2.0 - 3.0, -4.0, 1.0 - 4.0], 1e-15);
    let u = Tensor::from_vec(vec![1.0f64, 1.0, -1.0], &[3]);
    let (_, ju) = func::jvp(times_a, &x, &u);
    assert_close(&ju.to_vec::<f64>(), &[1.0 - 2.0 - 0.5, 3.0 - 4.0], 1e-15);
    assert!(!vj.tracks_grad() && !ju.tracks_grad() && !j.tracks_grad());
}

#[test]
fn the_hessian_of_a_sum_of_cubes_is_diagonal() {
    let xv = [0.5, -1.5, 2.0];
    let x = Tensor::from_vec(xv.to_vec(), &[3]);
    let cubes = |x: &Tensor| x.powf(3.0).sum();
    let h = func::hessian(cubes, &x);
    assert_eq!(h.shape(), &[3, 3]);
    let mut want = vec![0.0; 9];
    for i in 0..3 {
        want[i * 4] = 6.0 * xv[i];
    }
    assert_close(&h.to_vec::<f64>(), &want, 1e-14);
    let v = Tensor::from_vec(vec![1.0f64, 2.0, -1.0], &[3]);
    let (y, hv) = func::hvp(cubes, &x, &v);
    assert_close(&[y.item()], &[0.125 - 3.375 + 8.0], 1e-15);
    assert_close(&hv.to_vec::<f64>(), &[3.0, -18.0, -12.0], 1e-14);
    // The gradient, as a vjp with seed 1.
    let (_, g) = func::vjp(cubes, &x, &Tensor::scalar(1.0f64));
    assert_close(&g.to_vec::<f64>(), &[0.75, 6.75, 12.0], 1e-14);
}

#[test]
fn the_jacobian_of_softmax_is_diag_s_minus_s_s_transposed() {
    let x = Tensor::from_vec(vec![0.2f64, -1.0, 1.5, 0.3], &[4]);
    let s = x.softmax(0).to_vec::<f64>();
    let j = func::jacobian(|x| x.softmax(0), &x);
    let want: Vec<f64> = (0..16)
        .map(|k| {
            let (i, j) = (k / 4, k % 4);
            (if i == j { s[i] } else { 0.0 }) - s[i] * s[j]
        })
        .collect();
    assert_close(&j.to_vec::<f64>(), &want, 1e-15);
}

#[test]
fn the_hessian_of_rosenbrock_is_known() {
    // f(a, b) = (1 - a)^2 + 100 (b - a^2)^2
    let rosenbrock = |x: &Tensor| {
        let (a, b) = (x.narrow(0, 0, 1), x.narrow(0, 1, 1));
        let first = a.rsub_scalar(1.0).square();
        let second = b.sub(&a.square()).square().mul_scalar(100.0);
        first.add(&second).sum()
    };
    let (a, b) = (-0.7f64, 1.3f64);
    let x = Tensor::from_vec(vec![a, b], &[2]);
    let h = func::hessian(rosenbrock, &x);
    let want = [
        2.0 - 400.0 * (b - a * a) + 800.0 * a * a,
        -400.0 * a,
        -400.0 * a,
        200.0,
    ];
    assert_close(&h.to_vec::<f64>(), &want, 1e-12);
}

#[test]
fn jvp_matches_central_differences_of_a_nonlinear_map() {
    let f = |x: &Tensor| times_a(x).tanh();
    let xv = [0.3, -0.2, 0.4];
    let uv = [1.0, -0.5, 2.0];
    let x = Tensor::from_vec(xv.to_vec(), &[3]);
    let (_, ju) = func::jvp(f, &x, &Tensor::from_vec(uv.to_vec(), &[3]));
    let h = 1e-6;
    let at = |s: f64| {
        let p: Vec<f64> = xv.iter().zip(uv).map(|(x, u)| x + s * u).collect();
        f(&Tensor::from_vec(p, &[3])).to_vec::<f64>()
    };
    let (plus, minus) = (at(h), at(-h));
    let want: Vec<f64> = plus
        .iter()
        .zip(&minus)
        .map(|(p, m)| (p - m) / (2.0 * h))
        .collect();
    assert_close(&ju.to_vec::<f64>(), &want, 1e-8);
    // And the Jacobian's columns are the jvps with the unit vectors.
    let j = func::jacobian(f, &x).to_vec::<f64>();
    let col0 = func::jvp(f, &x, &Tensor::from_vec(vec![1.0f64, 0.0, 0.0], &[3])).1;
    assert_close(&col0.to_vec::<f64>(), &[j[0], j[3]], 1e-14);
}

#[test]
fn transforms_of_functions_that_ignore_x_are_zero_and_misuse_is_named() {
    let x = Tensor::from_vec(vec![1.0f64, 2.0], &[2]);
    let constant = |_: &Tensor| Tensor::from_vec(vec![5.0f64], &[1]);
    assert_eq!(func::jacobian(constant, &x).to_vec::<f64>(), vec![0.0, 0.0]);
    assert_eq!(func::hessian(|x| x.sum(), &x).to_vec::<f64>(), vec![0.0; 4]);
    let message = panic_message(|| drop(func::hessian(|x| x.square(), &x)));
    assert_eq!(
        message,
        "hessian: f(x) has shape [2]; hessian needs a scalar function (one element)"
    );
    let message = panic_message(|| drop(func::jvp(|x| x.square(), &x, &Tensor::scalar(1.0f64))));
    assert_eq!(
        message,
        "jvp: u is a f64 tensor of shape [], but x is a f64 tensor of shape [2]; they must match"
    );
    // Inside no_grad the transforms still differentiate.
    let (_, g) = no_grad(|| func::vjp(|x| x.square(), &x, &x));
    assert_eq!(g.to_vec::<f64>(), vec![2.0, 8.0]);
}

// ------------------------------------------------------------------------ the guide

/// The code of the "Looking inside backward" section of docs/guide.md.
#[test]
fn guide_looking_inside_backward() -> Result<(), BackwardError> {
    let x = Tensor::randn(&[4, 3], DType::F64, 0).requires_grad();
    let w = Tensor::randn(&[3, 2], DType::F64, 1).requires_grad();
    let h = x.matmul(&w).tanh(); // an activation
    let loss = h.square().mean();
    let g = grad(&[&loss], &[&h, &w], None, GradOptions::default())?;
    let dloss_dh = g[0].as_ref().unwrap(); // [4, 2]: how the loss sees each activation
    assert_eq!(dloss_dh.shape(), &[4, 2]);
    let want: Vec<f64> = h.to_vec::<f64>().iter().map(|h| 2.0 * h / 8.0).collect();
    assert_close(&dloss_dh.to_vec::<f64>(), &want, 1e-15);

    let h = x.matmul(&w).tanh();
    let handle = h.register_hook(|g| g.clamp(-0.1, 0.1)); // what flows on to x and w
    let grads = h.square().mean().backward();
    handle.remove(); // hooks stay until removed
                     // The clipped gradient 2h/8 reaches w through tanh and matmul: x^T (g (1 - h^2)).
    let clipped = no_grad(|| h.mul_scalar(0.25).clamp(-0.1, 0.1));
    let want = no_grad(|| x.t().matmul(&clipped.mul(&h.square().rsub_scalar(1.0))));
    assert_close(&grads[&w].to_vec::<f64>(), &want.to_vec::<f64>(), 1e-14);

    let x = Tensor::from_vec(vec![4.0f64, 0.0], &[2]).requires_grad();
    let err = detect_anomaly(|| x.sqrt().sum().try_backward()).unwrap_err();
    assert!(err
        .to_string()
        .starts_with("anomaly in backward: the rule of `sqrt` (called at"));
    assert!(err
        .to_string()
        .ends_with("returned a gradient holding inf for its input 0"));
    Ok(())
}
