//! The autograd engine end to end: known gradients, shared subgraphs, higher order,
//! no_grad / detach, in-place modification errors, long chains and freeing the graph.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tapegrad::{custom_op, no_grad, BackwardError, DType, Tensor};

fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= tol * (1.0 + y.abs()))
}

fn t64(v: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape).requires_grad()
}

#[test]
fn diamond_graph_sums_both_paths() {
    // y = a*b + a*c with b = 2a, c = a^2: dy/da = 2a*... computed by hand below.
    let a = t64(&[1.5, -2.0], &[2]);
    let b = a.mul_scalar(2.0);
    let c = a.square();
    let y = a.mul(&b).add(&a.mul(&c)).sum(); // 2a^2 + a^3
    let g = y.backward();
    let expected: Vec<f64> = [1.5f64, -2.0]
        .iter()
        .map(|a| 4.0 * a + 3.0 * a * a)
        .collect();
    assert!(close(&g[&a].to_vec::<f64>(), &expected, 1e-12));
}

#[test]
fn tensor_used_many_times_accumulates() {
    let x = t64(&[0.5], &[1]);
    let mut y = x.clone();
    for _ in 0..9 {
        y = y.mul(&x); // x^10
    }
    let g = y.sum().backward();
    assert!(close(
        &g[&x].to_vec::<f64>(),
        &[10.0 * 0.5f64.powi(9)],
        1e-12
    ));
    // The same leaf passed to both sides of one op.
    let g = x.mul(&x).add(&x).sum().backward();
    assert!(close(&g[&x].to_vec::<f64>(), &[2.0], 1e-12));
}

/// A tensor function and its first and second derivatives as scalar functions.
type UnaryOp = fn(&Tensor) -> Tensor;
type Scalar = fn(f64) -> f64;

#[test]
fn second_derivatives_of_known_functions() {
    let xs = [0.3f64, -1.2, 2.0];
    let cases: Vec<(&str, UnaryOp, Scalar, Scalar)> = vec![
        ("x^3", |x| x.mul(x).mul(x), |x| 3.0 * x * x, |x| 6.0 * x),
        ("sin", |x| x.sin(), |x| x.cos(), |x| -x.sin()),
        ("exp", |x| x.exp(), |x| x.exp(), |x| x.exp()),
        (
            "tanh",
            |x| x.tanh(),
            |x| 1.0 - x.tanh().powi(2),
            |x| -2.0 * x.tanh() * (1.0 - x.tanh().powi(2)),
        ),
        (
            "sigmoid",
            |x| x.sigmoid(),
            |x| {
                let s = 1.0 / (1.0 + (-x).exp());
                s * (1.0 - s)
            },
            |x| {
                let s = 1.0 / (1.0 + (-x).exp());
                s * (1.0 - s) * (1.0 - 2.0 * s)
            },
        ),
        (
            "log_softmax-free softplus",
            |x| x.softplus(),
            |x| 1.0 / (1.0 + (-x).exp()),
            |x| {
                let s = 1.0 / (1.0 + (-x).exp());
                s * (1.0 - s)
            },
        ),
    ];
    for (name, f, d1, d2) in cases {
        let x = t64(&xs, &[3]);
        let dx = f(&x).sum().backward_with_graph()[&x].clone();
        let want1: Vec<f64> = xs.iter().map(|&v| d1(v)).collect();
        assert!(
            close(&dx.to_vec::<f64>(), &want1, 1e-10),
            "{name}: first derivative {:?} vs {want1:?}",
            dx.to_vec::<f64>()
        );
        assert!(
            dx.tracks_grad(),
            "{name}: gradient built with create_graph must be on the tape"
        );
        let d2x = dx.sum().backward()[&x].clone();
        let want2: Vec<f64> = xs.iter().map(|&v| d2(v)).collect();
        assert!(
            close(&d2x.to_vec::<f64>(), &want2, 1e-10),
            "{name}: second derivative {:?} vs {want2:?}",
            d2x.to_vec::<f64>()
        );
    }
}

#[test]
fn hessian_vector_product_of_quadratic_form() {
    // f(x) = 0.5 x^T A x with symmetric A: Hv = A v.
    let a = Tensor::from_vec(
        vec![2.0f64, 1.0, 0.0, 1.0, 3.0, -1.0, 0.0, -1.0, 4.0],
        &[3, 3],
    );
    let x = t64(&[0.1, -0.2, 0.3], &[3]);
    let v = Tensor::from_vec(vec![1.0f64, 2.0, -1.0], &[3]);
    let f = x.matmul(&a.matmul(&x)).mul_scalar(0.5);
    let gx = f.backward_with_graph()[&x].clone();
    let hv = gx.mul(&v).sum().backward()[&x].clone();
    assert!(close(
        &hv.to_vec::<f64>(),
        &a.matmul(&v).to_vec::<f64>(),
        1e-12
    ));
}

#[test]
fn gradient_penalty_trains_through_the_gradient() {
    // L(w) = ||d/dx (w * x^2)||^2 = sum((2 w x)^2) -> dL/dw = 8 w sum(x^2).
    let w = t64(&[0.7], &[1]);
    let x = t64(&[1.0, 2.0], &[2]);
    let y = w.mul(&x.square()).sum();
    let gx = y.backward_with_graph()[&x].clone();
    let penalty = gx.square().sum();
    let gw = penalty.backward()[&w].item();
    assert!((gw - 8.0 * 0.7 * 5.0).abs() < 1e-12);
}

#[test]
fn third_derivative() {
    let x = t64(&[0.5], &[1]);
    let y = x.powf(4.0).sum();
    let d1 = y.backward_with_graph()[&x].clone();
    let d2 = d1.sum().backward_with_graph()[&x].clone();
    let d3 = d2.sum().backward()[&x].item();
    assert!((d3 - 24.0 * 0.5).abs() < 1e-12);
}

#[test]
fn no_grad_records_nothing_and_detach_cuts() {
    let x = t64(&[1.0, 2.0], &[2]);
    let y = no_grad(|| x.mul_scalar(3.0).exp());
    assert!(!y.tracks_grad() && y.op_name().is_none());
    assert!(tapegrad::is_grad_enabled());
    // detach: gradient flows only through the attached path.
    let z = x.mul(&x.detach()).sum(); // d/dx = x (not 2x)
    assert_eq!(z.backward()[&x].to_vec::<f64>(), vec![1.0, 2.0]);
    // Inference costs no tape.
    let c = Tensor::ones(&[2], DType::F64);
    assert!(c.exp().add(&c).op_name().is_none());
}

#[test]
fn no_grad_restores_mode_after_panic() {
    let r = std::panic::catch_unwind(|| no_grad(|| panic!("boom")));
    assert!(r.is_err());
    assert!(tapegrad::is_grad_enabled());
}

#[test]
fn in_place_change_of_saved_tensor_fails_backward() {
    let w = t64(&[1.0, 2.0], &[2]);
    let x = Tensor::from_vec(vec![3.0f64, 4.0], &[2]);
    let loss = w.mul(&x).mul(&w).sum();
    w.update_(|mut a: ndarray::ArrayViewMutD<f64>| a.mapv_inplace(|v| v - 0.1));
    match loss.try_backward() {
        Err(BackwardError::ModifiedInPlace {
            op,
            saved: 0,
            now: 1,
            ..
        }) => assert_eq!(op, "mul"),
        other => panic!("expected ModifiedInPlace, got {:?}", other.map(|g| g.len())),
    }
}

#[test]
#[should_panic(
    expected = "backward of `mul`: a tensor it saved for its gradient (shape [2]) was modified in place"
)]
fn in_place_change_panics_with_op_name() {
    let w = t64(&[1.0, 2.0], &[2]);
    let loss = w.mul(&w).sum();
    w.assign_(&Tensor::zeros(&[2], DType::F64));
    let _ = loss.backward();
}

#[test]
fn in_place_change_of_unsaved_tensor_is_fine() {
    // add saves nothing, so changing its input afterwards cannot corrupt its gradient.
    let w = t64(&[1.0, 2.0], &[2]);
    let loss = w.add_scalar(1.0).sum();
    w.assign_(&Tensor::zeros(&[2], DType::F64));
    assert_eq!(loss.backward()[&w].to_vec::<f64>(), vec![1.0, 1.0]);
}

#[test]
fn second_backward_needs_retained_graph() {
    let x = t64(&[2.0], &[1]);
    let y = x.mul(&x).sum();
    let g1 = y.backward_retain_graph();
    let g2 = y.backward();
    assert_eq!(g1[&x].item(), 4.0);
    assert_eq!(g2[&x].item(), 4.0);
    assert!(matches!(
        y.try_backward(),
        Err(BackwardError::SavedFreed { op: "mul" })
    ));
}

#[test]
fn graphs_that_saved_nothing_run_backward_twice() {
    let x = t64(&[2.0, 3.0], &[2]);
    let y = x.add_scalar(1.0).mul_scalar(3.0).sum();
    assert_eq!(y.backward()[&x].to_vec::<f64>(), vec![3.0, 3.0]);
    assert_eq!(y.backward()[&x].to_vec::<f64>(), vec![3.0, 3.0]);
}

#[test]
fn backward_errors_are_reported() {
    let x = t64(&[1.0, 2.0], &[2]);
    assert!(matches!(
        x.mul_scalar(2.0).try_backward(),
        Err(BackwardError::NotScalar { .. })
    ));
    let c = Tensor::ones(&[1], DType::F64);
    assert!(matches!(
        c.sum().try_backward(),
        Err(BackwardError::NoGraph)
    ));
    // Seeded backward from a non-scalar.
    let g = x
        .mul_scalar(2.0)
        .backward_with(&Tensor::from_vec(vec![1.0f64, 10.0], &[2]));
    assert_eq!(g[&x].to_vec::<f64>(), vec![2.0, 20.0]);
}

#[test]
fn backward_of_a_leaf_is_the_seed() {
    let x = t64(&[3.0], &[]);
    assert_eq!(x.backward()[&x].item(), 1.0);
}

#[test]
fn million_op_chain_runs_backward_and_drops_without_overflow() {
    // Run on a thread with a small stack: recursion anywhere would overflow it.
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            let x = Tensor::from_vec(vec![0.0f32], &[1]).requires_grad();
            let mut y = x.clone();
            for _ in 0..1_000_000 {
                y = y.add_scalar(1e-6);
            }
            let g = y.sum().backward();
            assert_eq!(g[&x].item(), 1.0);
            drop(y); // frees a million nodes iteratively
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn long_chain_with_saved_tensors_drops_without_overflow() {
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            let x = Tensor::from_vec(vec![1.0f32], &[1]).requires_grad();
            let mut y = x.clone();
            for _ in 0..200_000 {
                y = y.mul(&y.detach().add_scalar(0.0)).tanh(); // mul saves its inputs
            }
            drop(y);
        })
        .unwrap()
        .join()
        .unwrap();
}

struct DropCounter(Arc<AtomicUsize>);

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counted_identity(x: &Tensor, counter: &Arc<AtomicUsize>) -> Tensor {
    let guard = DropCounter(counter.clone());
    custom_op(
        "counted_identity",
        &[x],
        x.detach(),
        &[],
        false,
        move |_, g| {
            let _keep = &guard;
            vec![Some(g.clone())]
        },
    )
}

#[test]
fn dropping_the_output_frees_its_nodes() {
    let counter = Arc::new(AtomicUsize::new(0));
    let x = t64(&[1.0, 2.0], &[2]);
    let y = counted_identity(&x, &counter).exp().sum();
    assert_eq!(counter.load(Ordering::SeqCst), 0);
    let g = y.backward();
    assert_eq!(g[&x].to_vec::<f64>(), vec![1f64.exp(), 2f64.exp()]);
    drop(g);
    assert_eq!(
        counter.load(Ordering::SeqCst),
        0,
        "the graph lives as long as its output"
    );
    drop(y);
    assert_eq!(
        counter.load(Ordering::SeqCst),
        1,
        "dropping the output must free the node"
    );
}

#[test]
fn gradients_of_gradients_free_their_graph_too() {
    let counter = Arc::new(AtomicUsize::new(0));
    let x = t64(&[1.0], &[1]);
    {
        let y = counted_identity(&x, &counter).square().sum();
        let gx = y.backward_with_graph()[&x].clone();
        let _ = gx.sum().backward();
    }
    assert_eq!(counter.load(Ordering::SeqCst), 1);
}

#[test]
fn tensors_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Tensor>();
    assert_send_sync::<tapegrad::Grads>();
    let x = t64(&[1.0, 2.0], &[2]);
    let y = std::thread::spawn(move || x.square().sum().backward().len())
        .join()
        .unwrap();
    assert_eq!(y, 1);
}

#[test]
fn grads_add_and_scale() {
    let x = t64(&[1.0, 2.0], &[2]);
    let mut g = x.square().sum().backward(); // 2x
    let g2 = x.mul_scalar(3.0).sum().backward(); // 3
    g.add(&g2);
    g.scale(0.5);
    assert_eq!(g[&x].to_vec::<f64>(), vec![2.5, 3.5]);
    assert_eq!(g.iter().count(), 1);
}

#[test]
fn to_dtype_is_differentiable() {
    let x = t64(&[1.5], &[1]);
    let y = x.to_dtype(DType::F32).square().to_dtype(DType::F64).sum();
    let g = y.backward();
    assert_eq!(g[&x].dtype(), DType::F64);
    assert_eq!(g[&x].item(), 3.0);
}

#[test]
fn graph_built_across_threads_runs_in_order() {
    // Ids come from per-thread blocks; a consumer made on this thread after its input was
    // made on another (whose block is newer) must still run first in backward, or `y`
    // would run twice and find its saved output freed.
    let x = t64(&[0.3, -0.8], &[2]);
    let a = x.mul_scalar(1.5);
    let y = {
        let a = a.clone();
        std::thread::spawn(move || a.tanh()).join().unwrap()
    };
    let w = y.mul_scalar(3.0);
    let g = w.add(&y).sum().try_backward().unwrap();
    let expected: Vec<f64> = [0.3f64, -0.8]
        .iter()
        .map(|x| 4.0 * (1.0 - (1.5 * x).tanh().powi(2)) * 1.5)
        .collect();
    assert!(close(&g[&x].to_vec::<f64>(), &expected, 1e-12));
}

#[test]
fn the_gradient_of_a_weight_used_transposed_is_row_major_like_the_weight() {
    // y = x w^T, as in a linear layer: the optimiser's loop over w and its gradient is
    // contiguous only if the gradient has w's layout (PyTorch's gradient layout contract).
    let x = Tensor::randn(&[3, 5], DType::F64, 1);
    let w = Tensor::randn(&[4, 5], DType::F64, 2).requires_grad();
    let grads = x.matmul(&w.t()).sum().backward();
    let g = &grads[&w];
    assert!(g.with_view(|v: ndarray::ArrayViewD<f64>| v.is_standard_layout()));
    // d/dw sum(x w^T) = column sums of x, repeated for each row of w.
    let col: Vec<f64> = (0..5)
        .map(|j| (0..3).map(|i| x.to_vec::<f64>()[i * 5 + j]).sum())
        .collect();
    let want: Vec<f64> = (0..4).flat_map(|_| col.clone()).collect();
    for (a, b) in g.to_vec::<f64>().iter().zip(&want) {
        assert!((a - b).abs() < 1e-12);
    }
}

#[test]
fn leaf_ready_hook_reports_each_final_gradient_once_in_backward_order() {
    // w1 feeds the first op and the last, so its gradient is final only at the end;
    // w2 and w3 are used once each, later layers first.
    let x = t64(&[0.3, -0.7], &[2]);
    let (w1, w2, w3) = (
        t64(&[1.1, 0.4], &[2]),
        t64(&[-0.5, 2.0], &[2]),
        t64(&[0.9], &[1]),
    );
    // `cut` gives no gradient to its input, so `w4` is reached only through a dead path.
    let w4 = t64(&[2.0], &[1]);
    let cut = custom_op("cut", &[&w4], no_grad(|| w4.clone()), &[], false, |_, _| {
        vec![None]
    });
    let h = x.mul(&w1).tanh().mul(&w2);
    let y = h
        .sum()
        .mul(&w3)
        .add(&h.mul(&w1).sum())
        .add(&cut.mul(&w4).sum());
    let plain = y.backward_retain_graph();
    let mut seen: Vec<(u64, Vec<f64>)> = Vec::new();
    let grads = y
        .try_backward_with_hook(&mut |id, g| seen.push((id.as_u64(), g.to_vec::<f64>())))
        .unwrap();
    let order: Vec<u64> = seen.iter().map(|(id, _)| *id).collect();
    let mut unique = order.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), order.len(), "a leaf was reported twice");
    assert_eq!(order.len(), grads.len());
    for (id, g) in &seen {
        let leaf = [&x, &w1, &w2, &w3, &w4]
            .into_iter()
            .find(|t| t.id().as_u64() == *id)
            .unwrap();
        assert_eq!(
            g,
            &grads[leaf].to_vec::<f64>(),
            "the hook saw a partial gradient"
        );
    }
    let pos = |t: &Tensor| order.iter().position(|&i| i == t.id().as_u64()).unwrap();
    assert!(pos(&w3) < pos(&w1) && pos(&w2) < pos(&w1));
    // w4 got a gradient from `cut.mul(&w4)` and is reported although `cut`'s path died.
    assert_eq!(grads[&w4].to_vec::<f64>(), vec![2.0]);
    // The hooked backward gives the plain backward's gradients.
    for t in [&x, &w1, &w2, &w3, &w4] {
        assert_eq!(plain[t].to_vec::<f64>(), grads[t].to_vec::<f64>());
    }
}
