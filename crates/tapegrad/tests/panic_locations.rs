//! Misuse panics point at the caller's line: for each message of the core's public
//! entry points (ops, creation, access, in-place updates, `Grads` and every form of
//! backward), the panic is caught and its location must be this file, on the line of
//! the call, not a line inside tapegrad.

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

use tapegrad::{custom_op, BackwardOptions, DType, Grads, Tensor};

thread_local! {
    /// Whether this thread is inside `panic_site` (its panics are expected).
    static CAPTURING: Cell<bool> = const { Cell::new(false) };
    /// Where the last expected panic on this thread happened: (file, line).
    static LAST: RefCell<Option<(String, u32)>> = const { RefCell::new(None) };
}

/// Installs (once for this test binary) a panic hook that records the location of the
/// expected panics, silently, and reports any other panic (a failed assertion) as usual.
fn install_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CAPTURING.with(|c| c.get()) {
                let at = info.location().map(|l| (l.file().to_string(), l.line()));
                LAST.with(|last| *last.borrow_mut() = at);
            } else {
                default(info);
            }
        }))
    });
}

/// Runs `f`, which must panic (`what` names it); returns the panic's message, file
/// and line.
fn panic_site(what: &str, f: impl FnOnce()) -> (String, String, u32) {
    install_hook();
    LAST.with(|last| *last.borrow_mut() = None);
    CAPTURING.with(|c| c.set(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    CAPTURING.with(|c| c.set(false));
    let payload = match result {
        Err(payload) => payload,
        Ok(()) => panic!("`{what}` did not panic"),
    };
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    let (file, line) = LAST
        .with(|last| last.borrow_mut().take())
        .expect("the hook saw the panic");
    (message, file, line)
}

/// `at_caller!("message start", expression)`: the expression panics with a message
/// containing the text, located in this file within the lines of the invocation (the
/// caller's line; rustfmt may spread an invocation over a few lines).
macro_rules! at_caller {
    ($expected:expr, $call:expr) => {{
        let first = line!();
        let (message, file, at) = panic_site(stringify!($call), || {
            let _ = $call;
        });
        assert!(
            message.contains($expected),
            "expected a panic containing {:?}, got {message:?}",
            $expected
        );
        assert!(
            file == file!() && (first..first + 12).contains(&at),
            "`{}` panicked with {message:?} at {file}:{at}, not at the caller's line ({}:{first})",
            stringify!($call),
            file!()
        );
    }};
}

fn t(shape: &[usize]) -> Tensor {
    Tensor::zeros(shape, DType::F64)
}

fn leaf(shape: &[usize]) -> Tensor {
    Tensor::ones(shape, DType::F64).requires_grad()
}

#[test]
fn creation_and_access() {
    at_caller!(
        "from_vec: 3 values cannot fill shape [2, 2]",
        Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[2, 2])
    );
    at_caller!("arange: step", Tensor::arange(0.0, 1.0, -0.5, DType::F32));
    at_caller!(
        "rand_uniform: low",
        Tensor::rand_uniform(&[2], 1.0, 0.0, DType::F32, 0)
    );
    at_caller!("item: the tensor has shape [2]", t(&[2]).item());
    at_caller!(
        "with_view: the tensor is f64, not f32",
        t(&[2]).with_view(|_: ndarray::ArrayViewD<f32>| ())
    );
    at_caller!(
        "update_: the tensor is f64, not f32",
        t(&[2]).update_(|_: ndarray::ArrayViewMutD<f32>| ())
    );
    at_caller!(
        "assign_: source [3] f64 does not match",
        t(&[2]).assign_(&t(&[3]))
    );
}

#[test]
fn elementwise_and_reductions() {
    at_caller!(
        "add: shapes [2, 3] and [4] cannot be broadcast",
        t(&[2, 3]).add(&t(&[4]))
    );
    at_caller!("sub: shapes", &t(&[2]) - &t(&[3]));
    at_caller!(
        "mul: dtype mismatch: f64 [2] vs f32 [2]",
        t(&[2]).mul(&Tensor::zeros(&[2], DType::F32))
    );
    at_caller!(
        "div: dtype mismatch",
        &t(&[2]) / &Tensor::zeros(&[2], DType::F32)
    );
    at_caller!("pow: shapes", t(&[2]).pow(&t(&[3])));
    at_caller!("maximum: shapes", t(&[2]).maximum(&t(&[3])));
    at_caller!("minimum: shapes", t(&[2]).minimum(&t(&[3])));
    at_caller!(
        "clamp: min 1 is greater than max 0",
        t(&[2]).clamp(1.0, 0.0)
    );
    at_caller!(
        "where_: shapes",
        Tensor::where_(&t(&[2]).gt_scalar(0.0), &t(&[3]), &t(&[2]))
    );
    at_caller!("gt: shapes", t(&[2]).gt(&t(&[3])));
    at_caller!(
        "sum_dim: axis 2 is out of range for a tensor of rank 2",
        t(&[2, 3]).sum_dim(&[2], false)
    );
    at_caller!(
        "sum_dim: axis -1 appears more than once in [1, -1]",
        t(&[2, 3]).sum_dim(&[1, -1], false)
    );
    at_caller!("mean_dim: axis 5", t(&[2, 3]).mean_dim(&[5], false));
    at_caller!(
        "sum_to: shape [5] does not broadcast to [2, 3]",
        t(&[2, 3]).sum_to(&[5])
    );
    at_caller!(
        "broadcast_to: shape [3] cannot be broadcast to [2, 4]",
        t(&[3]).broadcast_to(&[2, 4])
    );
    at_caller!(
        "broadcast_to: shape [3] cannot be broadcast to [2, 4]",
        t(&[3]).expand(&[2, 4])
    );
    at_caller!(
        "max_dim: axis 0 of shape [0, 2] is empty",
        t(&[0, 2]).max_dim(0, false)
    );
    at_caller!("argmax: axis 3", t(&[2]).argmax(3, false));
    at_caller!("logsumexp: axis 4", t(&[2]).logsumexp(&[4], false));
    at_caller!("var: axis 4", t(&[2]).var(&[4], true, false));
    at_caller!(
        "var: axis 4 is out of range",
        t(&[2]).std(&[4], true, false)
    );
    at_caller!(
        "softmax: axis 1 is out of range for a tensor of rank 0",
        Tensor::scalar(1.0f32).softmax(1)
    );
    at_caller!("logsumexp: axis 3 is out of range", t(&[2]).log_softmax(3));
}

#[test]
fn shapes_and_indexing() {
    at_caller!(
        "reshape: only one size may be -1",
        t(&[6]).reshape(&[-1, -1])
    );
    at_caller!(
        "reshape: cannot reshape [6] (6 elements) into [4, -1]",
        t(&[6]).reshape(&[4, -1])
    );
    at_caller!(
        "reshape: cannot reshape [6] (6 elements) into [4] (4 elements)",
        t(&[6]).reshape(&[4])
    );
    at_caller!(
        "flatten: start axis 1 comes after end axis 0",
        t(&[2, 3]).flatten(1, 0)
    );
    at_caller!(
        "narrow: start 2 + length 2 exceeds size 3",
        t(&[3]).narrow(0, 2, 2)
    );
    at_caller!("slice: invalid range 2..1", t(&[3]).slice(0, 2, 1, 1));
    at_caller!("cat: needs at least one tensor", Tensor::cat(&[], 0));
    at_caller!(
        "cat: tensor 1 has shape [3, 3]",
        Tensor::cat(&[t(&[2, 2]), t(&[3, 3])], 0)
    );
    at_caller!("stack: needs at least one tensor", Tensor::stack(&[], 0));
    at_caller!(
        "stack: tensor 1 has shape [3]",
        Tensor::stack(&[t(&[2]), t(&[3])], 0)
    );
    at_caller!("split: size must be positive", t(&[3]).split(0, 0));
    at_caller!(
        "chunk: the number of chunks must be positive",
        t(&[3]).chunk(0, 0)
    );
    at_caller!(
        "pad: 2 (before, after) pairs for a tensor of rank 1",
        t(&[3]).pad(&[(1, 1), (1, 1)], 0.0)
    );
    at_caller!(
        "unsqueeze: axis 3 is out of range for inserting",
        t(&[3]).unsqueeze(3)
    );
    at_caller!("squeeze: axis 2", t(&[3]).squeeze(2));
    at_caller!("transpose: axis 2", t(&[3]).transpose(0, 2));
    at_caller!(
        "permute: [0, 0] is not a permutation",
        t(&[2, 3]).permute(&[0, 0])
    );
    at_caller!("t: expects a tensor of rank <= 2", t(&[2, 2, 2]).t());
    at_caller!(
        "matmul: both operands need at least one dimension",
        Tensor::scalar(1.0f64).matmul(&t(&[2]))
    );
    at_caller!(
        "matmul: inner dimensions differ",
        t(&[2, 3]).matmul(&t(&[2, 3]))
    );
    at_caller!("matmul: inner dimensions differ", t(&[3]).matmul(&t(&[2])));
    at_caller!(
        "matmul: batch dimensions",
        t(&[2, 2, 3]).matmul(&t(&[3, 3, 2]))
    );
    at_caller!(
        "index_select: index 5 is out of range",
        t(&[3]).index_select(0, &Tensor::from_vec(vec![5i64], &[1]))
    );
    let idx = Tensor::zeros(&[2], DType::I64);
    at_caller!(
        "gather: index has rank 1 but the input has rank 2",
        t(&[2, 2]).gather(0, &idx)
    );
    let big = Tensor::zeros(&[3, 1], DType::I64);
    at_caller!(
        "gather: index shape [3, 1] exceeds the input shape [2, 3] on axis 0",
        t(&[2, 3]).gather(1, &big)
    );
    let out = Tensor::full(&[1], 7.0, DType::I64);
    at_caller!("gather: index 7 is out of range", t(&[3]).gather(0, &out));
    at_caller!(
        "scatter_add: index shape [2] differs from src shape [3]",
        t(&[3]).scatter_add(0, &idx, &t(&[3]))
    );
}

#[test]
fn nn_ops() {
    let x = t(&[1, 2, 4, 4]);
    at_caller!(
        "conv2d: expects an input [N, C, H, W]",
        t(&[2, 4, 4]).conv2d(&t(&[1, 2, 3, 3]), None, [1, 1], [0, 0], [1, 1], 1)
    );
    at_caller!(
        "conv2d: groups = 3 must be positive and divide",
        x.conv2d(&t(&[3, 1, 3, 3]), None, [1, 1], [0, 0], [1, 1], 3)
    );
    at_caller!(
        "conv2d: the weight [1, 3, 3, 3] expects 3 input channels",
        x.conv2d(&t(&[1, 3, 3, 3]), None, [1, 1], [0, 0], [1, 1], 1)
    );
    at_caller!(
        "conv2d: kernel 3x3, stride [0, 1]",
        x.conv2d(&t(&[1, 2, 3, 3]), None, [0, 1], [0, 0], [1, 1], 1)
    );
    at_caller!(
        "conv2d: the kernel 5x5",
        x.conv2d(&t(&[1, 2, 5, 5]), None, [1, 1], [0, 0], [1, 1], 1)
    );
    at_caller!(
        "conv2d: the bias must have shape [1]",
        x.conv2d(&t(&[1, 2, 3, 3]), Some(&t(&[2])), [1, 1], [0, 0], [1, 1], 1)
    );
    at_caller!(
        "conv2d: dtype mismatch",
        x.conv2d(
            &Tensor::zeros(&[1, 2, 3, 3], DType::F32),
            None,
            [1, 1],
            [0, 0],
            [1, 1],
            1
        )
    );
    at_caller!(
        "max_pool2d: the input must be [N, C, H, W]",
        t(&[4, 4]).max_pool2d([2, 2], [2, 2], [0, 0], [1, 1])
    );
    at_caller!(
        "max_pool2d: kernel [0, 2]",
        x.max_pool2d([0, 2], [2, 2], [0, 0], [1, 1])
    );
    at_caller!(
        "max_pool2d: padding [2, 2] must be at most half the kernel",
        x.max_pool2d([2, 2], [2, 2], [2, 2], [1, 1])
    );
    at_caller!(
        "max_pool2d: the window [5, 5]",
        x.max_pool2d([5, 5], [1, 1], [0, 0], [1, 1])
    );
    at_caller!(
        "avg_pool2d: the input must be [N, C, H, W]",
        t(&[4, 4]).avg_pool2d([2, 2], [2, 2], [0, 0], true)
    );
    at_caller!(
        "adaptive_avg_pool2d: the input must be [N, C, H, W]",
        t(&[4, 4]).adaptive_avg_pool2d([1, 1])
    );
    at_caller!(
        "adaptive_avg_pool2d: output size [0, 1] must be positive",
        x.adaptive_avg_pool2d([0, 1])
    );
    at_caller!(
        "adaptive_avg_pool2d: the input's spatial size 0x4 is empty",
        t(&[1, 1, 0, 4]).adaptive_avg_pool2d([1, 1])
    );
    at_caller!(
        "dropout: probability p = 2 must be in [0, 1]",
        x.dropout(2.0, 0)
    );
}

#[test]
fn backward_misuse() {
    at_caller!(
        "backward() needs a scalar",
        leaf(&[2]).mul_scalar(2.0).backward()
    );
    at_caller!(
        "backward: the output does not require grad",
        t(&[1]).sum().backward()
    );
    at_caller!(
        "backward_with: the gradient has shape [3]",
        leaf(&[2]).mul_scalar(2.0).backward_with(&t(&[3]))
    );
    at_caller!(
        "backward() needs a scalar",
        leaf(&[2]).square().backward_retain_graph()
    );
    at_caller!(
        "backward() needs a scalar",
        leaf(&[2]).square().backward_with_graph()
    );

    let x = leaf(&[2]);
    let y = x.square().sum();
    let _ = y.backward();
    at_caller!(
        "its saved tensors were freed by an earlier backward",
        y.backward()
    );

    let w = leaf(&[2]);
    let loss = w.mul(&w).sum();
    w.assign_(&t(&[2]));
    at_caller!(
        "backward of `mul`: a tensor it saved for its gradient (shape [2]) was modified in place",
        loss.backward()
    );

    let opts = BackwardOptions {
        create_graph: false,
        retain_graph: false,
    };
    let z = leaf(&[2]).square();
    match z.backward_opts(None, opts) {
        Err(e) => assert!(e.to_string().contains("needs a scalar")),
        Ok(_) => panic!("backward_opts of a non-scalar must fail"),
    }
}

#[test]
fn rules_that_break_the_contract_are_named_at_the_backward_call() {
    let x = leaf(&[2]);
    let two_grads = custom_op("two_grads", &[&x], x.detach(), &[], false, |_, g| {
        vec![Some(g.clone()), Some(g.clone())]
    });
    at_caller!(
        "backward of `two_grads`: the rule returned 2 gradients for 1 inputs",
        two_grads.sum().backward()
    );
    let bad_shape = custom_op("bad_shape", &[&x], x.detach(), &[], false, |_, g| {
        vec![Some(g.sum())]
    });
    at_caller!(
        "backward of `bad_shape`: the rule returned a gradient of shape []",
        bad_shape.sum().backward()
    );
    let bad_dtype = custom_op(
        "bad_dtype",
        &[&x.mul_scalar(1.0)],
        x.detach(),
        &[],
        false,
        |_, g| vec![Some(g.to_dtype(DType::F32))],
    );
    at_caller!(
        "backward of `bad_dtype`: the rule returned a f32 gradient",
        bad_dtype.sum().backward()
    );
}

#[test]
fn grads_misuse() {
    let x = leaf(&[2]);
    let mut grads = Grads::new();
    at_caller!(
        "Grads::insert: gradient shape [3] differs",
        grads.insert(&x, t(&[3]))
    );
    at_caller!("Grads: no gradient for tensor", grads[&x].clone());
}
