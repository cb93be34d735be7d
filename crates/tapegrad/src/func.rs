//! Function transforms (PyTorch's `torch.func` / `torch.autograd.functional`, JAX's
//! `vjp`, `jvp`, `jacobian`, `hessian`): derivatives of a function of one tensor, built
//! on [`grad`].
//!
//! Each transform differentiates `f` at a fresh leaf holding `x`'s values (`x`'s own
//! graph, if any, is not extended) and returns tensors that are not on a tape. `f` runs
//! once, with recording on even inside [`no_grad`](crate::no_grad). There is no forward
//! mode: `jvp` uses the double-backward trick, and `jacobian` builds one row per output
//! element; the cost of each is given in its documentation, in passes over `f`'s graph.

use crate::autograd::{enable_grad, grad, GradOptions};
use crate::tensor::Tensor;

/// `f` at a fresh leaf with `x`'s values: `(leaf, f(leaf))`.
fn trace(f: impl FnOnce(&Tensor) -> Tensor, x: &Tensor) -> (Tensor, Tensor) {
    let leaf = x.detach().requires_grad();
    let y = enable_grad(|| f(&leaf));
    (leaf, y)
}

/// `sum(seed * d out / d wrt)`, zeros if `out` does not depend on `wrt`.
#[track_caller]
fn pull_back(out: &Tensor, wrt: &Tensor, seed: &Tensor, options: GradOptions) -> Tensor {
    if !out.tracks_grad() {
        return wrt.zeros_like();
    }
    let options = GradOptions {
        allow_unused: true,
        ..options
    };
    match grad(&[out], &[wrt], Some(&[seed]), options) {
        Ok(mut g) => g.remove(0).unwrap_or_else(|| wrt.zeros_like()),
        Err(e) => panic!("{e}"),
    }
}

#[track_caller]
fn check_shape(op: &str, what: &str, t: &Tensor, of: &str, like: &Tensor) {
    assert!(
        t.shape() == like.shape() && t.dtype() == like.dtype(),
        "{op}: {what} is a {} tensor of shape {:?}, but {of} is a {} tensor of shape {:?}; they must match",
        t.dtype(),
        t.shape(),
        like.dtype(),
        like.shape()
    );
}

/// The one-hot tensor of `like`'s shape and dtype with a 1 at flat index `i`.
fn one_hot(like: &Tensor, i: usize) -> Tensor {
    let mut v = vec![0.0f64; like.numel()];
    v[i] = 1.0;
    Tensor::from_vec(v, like.shape()).to_dtype(like.dtype())
}

/// Stacks `rows` (same shape) into one tensor of shape `lead ++ row shape`.
fn stack_rows(rows: &[Tensor], lead: &[usize], row: &Tensor) -> Tensor {
    let values: Vec<f64> = rows.iter().flat_map(|r| r.to_vec::<f64>()).collect();
    let shape: Vec<usize> = lead.iter().chain(row.shape()).copied().collect();
    Tensor::from_vec(values, &shape).to_dtype(row.dtype())
}

/// `(f(x), v^T J)`: the vector-Jacobian product of `f` at `x` with `v` (of `f(x)`'s
/// shape), of `x`'s shape. Cost: one forward and one backward pass.
///
/// # Panics
/// If `v`'s shape or dtype differs from `f(x)`'s.
///
/// ```
/// use tapegrad::{func, Tensor};
/// let x = Tensor::from_vec(vec![1.0f64, 2.0], &[2]);
/// let v = Tensor::from_vec(vec![1.0f64, 10.0], &[2]);
/// let (y, vj) = func::vjp(|x| x.square(), &x, &v); // J = diag(2x)
/// assert_eq!(y.to_vec::<f64>(), vec![1.0, 4.0]);
/// assert_eq!(vj.to_vec::<f64>(), vec![2.0, 40.0]);
/// ```
#[track_caller]
pub fn vjp(f: impl FnOnce(&Tensor) -> Tensor, x: &Tensor, v: &Tensor) -> (Tensor, Tensor) {
    let (leaf, y) = trace(f, x);
    check_shape("vjp", "v", v, "f(x)", &y);
    let g = pull_back(&y, &leaf, v, GradOptions::default());
    (y.detach(), g)
}

/// `(f(x), J u)`: the Jacobian-vector product of `f` at `x` with `u` (of `x`'s shape),
/// of `f(x)`'s shape.
///
/// Computed by the double-backward trick: `g(w) = J^T w` is built as a graph for a dummy
/// `w`, and `J u` is the gradient of `u . g(w)` with respect to `w`. Cost: one forward
/// pass, one backward pass that records its graph, and one backward pass through that
/// graph, about three times a `vjp`.
///
/// # Panics
/// If `u`'s shape or dtype differs from `x`'s.
///
/// ```
/// use tapegrad::{func, Tensor};
/// let x = Tensor::from_vec(vec![1.0f64, 2.0], &[2]);
/// let u = Tensor::from_vec(vec![1.0f64, 10.0], &[2]);
/// let (_, ju) = func::jvp(|x| x.square(), &x, &u); // J = diag(2x)
/// assert_eq!(ju.to_vec::<f64>(), vec![2.0, 40.0]);
/// ```
#[track_caller]
pub fn jvp(f: impl FnOnce(&Tensor) -> Tensor, x: &Tensor, u: &Tensor) -> (Tensor, Tensor) {
    check_shape("jvp", "u", u, "x", x);
    let (leaf, y) = trace(f, x);
    let w = y.zeros_like().requires_grad();
    let record = GradOptions {
        create_graph: true,
        ..GradOptions::default()
    };
    let jt_w = enable_grad(|| pull_back(&y, &leaf, &w, record));
    let ju = pull_back(&jt_w, &w, u, GradOptions::default());
    (y.detach(), ju)
}

/// The Jacobian of `f` at `x`, of shape `f(x).shape ++ x.shape`: element `[i.., j..]` is
/// `d f(x)[i..] / d x[j..]`. Cost: one forward pass and one backward pass per element of
/// `f(x)` (a `vjp` per row), so prefer [`vjp`] / [`jvp`] when a product is enough.
///
/// ```
/// use tapegrad::{func, Tensor};
/// let a = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
/// let x = Tensor::from_vec(vec![1.0f64, 0.0, -1.0], &[3]);
/// let j = func::jacobian(|x| a.matmul(&x.reshape(&[3, 1])).reshape(&[2]), &x);
/// assert_eq!(j.shape(), &[2, 3]);
/// assert_eq!(j.to_vec::<f64>(), a.to_vec::<f64>());
/// ```
#[track_caller]
pub fn jacobian(f: impl FnOnce(&Tensor) -> Tensor, x: &Tensor) -> Tensor {
    let (leaf, y) = trace(f, x);
    let keep = GradOptions {
        retain_graph: true,
        ..GradOptions::default()
    };
    let rows: Vec<Tensor> = (0..y.numel())
        .map(|i| pull_back(&y, &leaf, &one_hot(&y, i), keep))
        .collect();
    stack_rows(&rows, y.shape(), x)
}

/// The Hessian of the scalar function `f` at `x`, of shape `x.shape ++ x.shape`. Cost:
/// one forward pass, one backward pass that records its graph, and one backward pass
/// through that graph per element of `x`; prefer [`hvp`] when a product is enough.
///
/// # Panics
/// If `f(x)` has more than one element.
///
/// ```
/// use tapegrad::{func, Tensor};
/// let x = Tensor::from_vec(vec![1.0f64, 2.0], &[2]);
/// let h = func::hessian(|x| x.powf(3.0).sum(), &x); // diag(6x)
/// assert_eq!(h.to_vec::<f64>(), vec![6.0, 0.0, 0.0, 12.0]);
/// ```
#[track_caller]
pub fn hessian(f: impl FnOnce(&Tensor) -> Tensor, x: &Tensor) -> Tensor {
    let (leaf, y) = trace(f, x);
    check_scalar("hessian", &y);
    let g = gradient_graph(&y, &leaf);
    let keep = GradOptions {
        retain_graph: true,
        ..GradOptions::default()
    };
    let rows: Vec<Tensor> = (0..x.numel())
        .map(|i| pull_back(&g, &leaf, &one_hot(x, i), keep))
        .collect();
    stack_rows(&rows, x.shape(), x)
}

/// `(f(x), H v)`: the Hessian-vector product of the scalar function `f` at `x` with `v`
/// (of `x`'s shape), without forming `H`. Cost: one forward pass, one backward pass that
/// records its graph and one backward pass through that graph.
///
/// # Panics
/// If `f(x)` has more than one element, or `v`'s shape or dtype differs from `x`'s.
///
/// ```
/// use tapegrad::{func, Tensor};
/// let x = Tensor::from_vec(vec![1.0f64, 2.0], &[2]);
/// let v = Tensor::from_vec(vec![1.0f64, -1.0], &[2]);
/// let (_, hv) = func::hvp(|x| x.powf(3.0).sum(), &x, &v); // diag(6x) v
/// assert_eq!(hv.to_vec::<f64>(), vec![6.0, -12.0]);
/// ```
#[track_caller]
pub fn hvp(f: impl FnOnce(&Tensor) -> Tensor, x: &Tensor, v: &Tensor) -> (Tensor, Tensor) {
    check_shape("hvp", "v", v, "x", x);
    let (leaf, y) = trace(f, x);
    check_scalar("hvp", &y);
    let g = gradient_graph(&y, &leaf);
    let hv = pull_back(&g, &leaf, v, GradOptions::default());
    (y.detach(), hv)
}

/// The gradient of the scalar `y` with respect to `leaf`, on a tape.
#[track_caller]
fn gradient_graph(y: &Tensor, leaf: &Tensor) -> Tensor {
    let record = GradOptions {
        create_graph: true,
        ..GradOptions::default()
    };
    enable_grad(|| pull_back(y, leaf, &y.ones_like(), record))
}

#[track_caller]
fn check_scalar(op: &str, y: &Tensor) {
    assert!(
        y.numel() == 1,
        "{op}: f(x) has shape {:?}; {op} needs a scalar function (one element)",
        y.shape()
    );
}
