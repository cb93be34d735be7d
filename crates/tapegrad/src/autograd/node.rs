//! Tape nodes: what an op records (its name, edges to its parents, the tensors its rule
//! saved and the rule itself), how a rule sees them (`BackwardCtx`), and the iterative
//! `Drop` that frees a chain of any length without recursion.

use std::panic::Location;
use std::sync::{Arc, Mutex};

use smallvec::SmallVec;

use super::anomaly;
use super::mode::is_grad_enabled;
use crate::dtype::DType;
use crate::shape::Shape;
use crate::storage::Data;
use crate::tensor::{Inner, Tensor, TensorId};

impl From<Data> for Tensor {
    fn from(data: Data) -> Tensor {
        Tensor::from_data(data)
    }
}

/// One optional gradient per input of an op (`None`: no gradient flows to that input).
pub type GradList = SmallVec<[Option<Tensor>; 2]>;

/// A backward rule: given the context and the gradient of the op's output, returns one
/// optional gradient per input, each of that input's shape.
pub(crate) type Rule = dyn Fn(&BackwardCtx<'_>, &Tensor) -> GradList + Send + Sync;

/// Where an input's gradient goes.
pub(crate) enum Edge {
    /// The input was produced by a recorded op.
    Node(Arc<Node>),
    /// The input is a leaf that requires grad: its gradient is a result of backward.
    Leaf { id: TensorId, shape: Shape },
    /// The input needs no gradient.
    Skip,
}

pub(crate) struct SavedState {
    pub(crate) tensors: SmallVec<[(Option<Tensor>, u64); 2]>,
    pub(crate) output: Option<Data>,
    pub(crate) freed: bool,
}

/// One recorded op. The rule is stored inline (a `Node<R>` with a concrete closure,
/// coerced to `Node<Rule>` behind its `Arc`): no separate allocation for what it captures.
pub(crate) struct Node<R: ?Sized = Rule> {
    /// Creation order: the output's id, which is above the ids of its inputs' nodes, so a
    /// node's consumers always have larger numbers.
    pub(crate) seq: u64,
    pub(crate) op: &'static str,
    pub(crate) out_id: TensorId,
    pub(crate) out_shape: Shape,
    pub(crate) out_dtype: DType,
    pub(crate) edges: SmallVec<[Edge; 2]>,
    /// Whether the op saved any tensor or its output: backward locks `saved` only then.
    pub(crate) has_saved: bool,
    pub(crate) saved: Mutex<SavedState>,
    /// Where the op was called, recorded in anomaly mode only (for its error messages).
    pub(crate) site: Option<&'static Location<'static>>,
    pub(crate) rule: R,
}

/// What a backward rule sees: the tensors its op saved, the op's output and which inputs
/// need a gradient.
pub struct BackwardCtx<'a> {
    pub(crate) node: &'a Arc<Node>,
    pub(crate) saved: &'a [Option<Tensor>],
    pub(crate) output: Option<&'a Data>,
    pub(crate) create_graph: bool,
}

impl BackwardCtx<'_> {
    /// The `i`-th saved tensor.
    ///
    /// # Panics
    /// If the op did not save a tensor at position `i` (a bug in the op's rule).
    #[track_caller]
    pub fn saved(&self, i: usize) -> &Tensor {
        match self.saved.get(i) {
            Some(Some(t)) => t,
            _ => panic!(
                "backward of `{}`: the rule read saved tensor {i}, which the op did not save",
                self.node.op
            ),
        }
    }

    /// The op's output, rebuilt from the storage the node kept (a rule never captures its
    /// own output: that would be a reference cycle). When building a graph of the
    /// gradient, the rebuilt output is connected to this node, so rules written in terms
    /// of the output differentiate correctly a second time.
    ///
    /// # Panics
    /// If the op did not ask to save its output.
    #[track_caller]
    pub fn output(&self) -> Tensor {
        let storage = match self.output {
            Some(s) => s.clone(),
            None => panic!(
                "backward of `{}`: the rule read the output, which the op did not save",
                self.node.op
            ),
        };
        if self.create_graph {
            Tensor::from_parts(self.node.out_id, storage, true, Some(self.node.clone()))
        } else {
            Tensor::from_data(storage)
        }
    }

    /// Whether this pass records the backward computation (`create_graph`). When it does
    /// not, a rule may take a fused fast path (one kernel, no intermediate tensors); the
    /// tensor-op form stays for when it does, so the gradient differentiates again. Both
    /// must give the same values.
    pub fn create_graph(&self) -> bool {
        self.create_graph
    }

    /// The data of the op's saved output (maybe deferred), for a rule's fused fast path.
    ///
    /// # Panics
    /// If the op did not ask to save its output.
    #[track_caller]
    pub(crate) fn output_data(&self) -> &Data {
        match self.output {
            Some(s) => s,
            None => panic!(
                "backward of `{}`: the rule read the output, which the op did not save",
                self.node.op
            ),
        }
    }

    /// Whether input `i` needs a gradient (rules skip work for inputs that do not).
    pub fn needs_grad(&self, i: usize) -> bool {
        !matches!(self.node.edges.get(i), Some(Edge::Skip) | None)
    }

    /// The name of the op this rule belongs to.
    pub fn op(&self) -> &'static str {
        self.node.op
    }
}

impl Tensor {
    fn edge(&self) -> Edge {
        if let Some(node) = self.node() {
            Edge::Node(node.clone())
        } else if self.tracks_grad() {
            Edge::Leaf {
                id: self.id(),
                shape: Shape::from_slice(self.shape()),
            }
        } else {
            Edge::Skip
        }
    }
}

/// An op's gradients, one optional tensor per input, in any of the shapes a rule may
/// return: a single `Tensor` (an op of one input), an array or `Vec` of
/// `Option<Tensor>`, or a [`GradList`].
pub trait IntoGrads {
    /// The gradients as a [`GradList`].
    fn into_grads(self) -> GradList;
}

impl IntoGrads for GradList {
    fn into_grads(self) -> GradList {
        self
    }
}

impl IntoGrads for Tensor {
    fn into_grads(self) -> GradList {
        smallvec::smallvec![Some(self)]
    }
}

impl<const N: usize> IntoGrads for [Option<Tensor>; N] {
    fn into_grads(self) -> GradList {
        self.into_iter().collect()
    }
}

impl IntoGrads for Vec<Option<Tensor>> {
    fn into_grads(self) -> GradList {
        self.into_iter().collect()
    }
}

/// How an op puts itself on the tape: its name, inputs and value, what its backward rule
/// will read, and the rule. Every op of the crate records through it, and so can user
/// code (PyTorch's `torch.autograd.Function`):
///
/// ```
/// use tapegrad::{no_grad, Op, Tensor};
/// // cube(x) = x^3, with the rule 3 x^2 g written in tensor ops.
/// fn cube(x: &Tensor) -> Tensor {
///     let value = no_grad(|| x * x * x);
///     Op::new("cube", &[x], value)
///         .save(&[x])
///         .rule(|ctx, g| g * &ctx.saved(0).square() * 3.0)
/// }
/// let x = Tensor::from_vec(vec![2.0f64], &[1]).requires_grad();
/// assert_eq!(cube(&x).sum().backward()[&x].to_vec::<f64>(), vec![12.0]);
/// ```
///
/// Nothing is recorded (and nothing saved) when grad mode is off or no input requires
/// grad: [`rule`](Op::rule) then returns the value as a plain tensor. Saved tensors are
/// read in the rule with [`BackwardCtx::saved`] in the order they were saved; the output
/// with [`BackwardCtx::output`]. A rule never captures a tensor (that could make an
/// `Arc` cycle through its own output): what it reads, it saves.
#[must_use = "an op is recorded by `.rule(..)`"]
pub struct Op {
    name: &'static str,
    value: Tensor,
    /// One per input when recording; empty when not.
    edges: SmallVec<[Edge; 2]>,
    recording: bool,
    saved: SmallVec<[(Option<Tensor>, u64); 2]>,
    save_output: bool,
    site: Option<&'static Location<'static>>,
}

impl Op {
    /// The op `name` over `inputs`, whose output is `value` (computed by the caller,
    /// without recording: under [`no_grad`](crate::no_grad), with raw arrays, or by a
    /// kernel). In [anomaly mode](crate::detect_anomaly) the value is checked for NaN and
    /// infinities, and the caller's location is kept for error messages: put
    /// `#[track_caller]` on the function that calls this, so it is the user's line.
    ///
    /// # Panics
    /// In anomaly mode, if the value holds a NaN or an infinity.
    #[inline]
    #[track_caller]
    pub fn new(name: &'static str, inputs: &[&Tensor], value: impl Into<Tensor>) -> Op {
        let value = value.into();
        let site = if anomaly::recording_sites() {
            Some(anomaly::forward_site(name, inputs, &value))
        } else {
            None
        };
        // An integer or bool output (a conversion, an argmax, ...) is never on the tape.
        let recording =
            is_grad_enabled() && value.dtype().is_float() && inputs.iter().any(|t| t.tracks_grad());
        let edges = if recording {
            inputs.iter().map(|t| t.edge()).collect()
        } else {
            SmallVec::new()
        };
        Op {
            name,
            value,
            edges,
            recording,
            saved: SmallVec::new(),
            save_output: false,
            site,
        }
    }

    /// Whether input `i` will need a gradient (false when nothing is recorded).
    pub fn needs_grad(&self, i: usize) -> bool {
        matches!(self.edges.get(i), Some(Edge::Node(_) | Edge::Leaf { .. }))
    }

    /// Saves `tensors` for the rule, after any saved before (read back with
    /// `ctx.saved(i)` in that order). Each keeps the version it has now: an in-place
    /// change before backward makes backward fail instead of using the new values.
    pub fn save(mut self, tensors: &[&Tensor]) -> Op {
        for t in tensors {
            self.push_saved(Some(t));
        }
        self
    }

    /// Saves `t` in the next slot only if input `input` needs a gradient (its rule reads
    /// `t`); the slot stays empty otherwise. `mul` saves `b` for `a`'s gradient and `a`
    /// for `b`'s: `.save_for(0, b).save_for(1, a)`.
    pub fn save_for(mut self, input: usize, t: &Tensor) -> Op {
        let keep = self.needs_grad(input);
        self.push_saved(keep.then_some(t));
        self
    }

    fn push_saved(&mut self, t: Option<&Tensor>) {
        if !self.recording {
            return;
        }
        let slot = t.map(|t| {
            // A deferred value costly to recompute is computed once now, not in backward.
            t.force_if_costly();
            (t.clone(), t.version())
        });
        match slot {
            Some((t, v)) => self.saved.push((Some(t), v)),
            None => self.saved.push((None, 0)),
        }
    }

    /// Keeps the op's output for the rule (`ctx.output()`), for derivatives cheaper in
    /// the output than in the input (`exp`, `tanh`, `sigmoid`, `sqrt`, ...). The node
    /// keeps the values, not the output tensor, so there is no reference cycle.
    pub fn save_output(mut self) -> Op {
        self.save_output = true;
        self
    }

    /// Records the op with its backward `rule` and returns its output. The rule gets the
    /// context and the gradient of the output, and returns one optional gradient per
    /// input, each of that input's shape (see [`IntoGrads`]); write it with tensor ops
    /// and it differentiates again under
    /// [`backward_with_graph`](Tensor::backward_with_graph).
    #[inline]
    pub fn rule<R, G>(self, rule: R) -> Tensor
    where
        R: Fn(&BackwardCtx<'_>, &Tensor) -> G + Send + Sync + 'static,
        G: IntoGrads,
    {
        let Op {
            name,
            mut value,
            edges,
            recording,
            saved,
            save_output,
            site,
        } = self;
        if !recording {
            // A user's value may be on a tape of its own: the output never is.
            return if value.tracks_grad() {
                value.detach()
            } else {
                value
            };
        }
        // A deferred output saved for backward stays deferred only if it is cheap to
        // recompute; otherwise it is computed now, once, for both the output and the rule.
        // The values are read (a lock and a clone) only when the rule reads the output.
        let saved_output = save_output.then(|| {
            let d = value.data();
            if d.is_pending() && !d.keep_lazy_when_saved() {
                value.force()
            } else {
                d
            }
        });
        let above_inputs = edges
            .iter()
            .filter_map(|e| match e {
                Edge::Node(n) => Some(n.seq),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        let id = TensorId::fresh_above(above_inputs);
        let node: Arc<Node> = Arc::new(Node {
            seq: id.as_u64(),
            op: name,
            out_id: id,
            out_shape: Shape::from_slice(value.shape()),
            out_dtype: value.dtype(),
            edges,
            has_saved: save_output || saved.iter().any(|(t, _)| t.is_some()),
            saved: Mutex::new(SavedState {
                tensors: saved,
                output: saved_output,
                freed: false,
            }),
            site,
            rule: move |ctx: &BackwardCtx<'_>, g: &Tensor| rule(ctx, g).into_grads(),
        });
        // The value tensor is usually fresh from the op's kernel and held only here: it
        // becomes the output in place. A shared one (a user's) is wrapped anew.
        match Arc::get_mut(&mut value.0) {
            Some(inner) if inner.node.is_none() => {
                inner.id = id;
                inner.requires_grad = true;
                inner.node = Some(node);
                value
            }
            _ => Tensor::from_parts(id, value.data(), true, Some(node)),
        }
    }
}

/// Records a user-defined op: [`Op`] in one call. `value` (computed by the caller,
/// e.g. under [`no_grad`]) becomes the output of an op named `name` over `inputs`, with
/// backward `rule`; the rule reads the tensors in `save` with [`BackwardCtx::saved`] and
/// the output with [`BackwardCtx::output`] when `save_output` is set.
///
/// [`no_grad`]: crate::no_grad
///
/// ```
/// use tapegrad::{custom_op, no_grad, Tensor};
/// // cube(x) = x^3, with the rule 3 x^2 written in tensor ops.
/// fn cube(x: &Tensor) -> Tensor {
///     let value = no_grad(|| x * x * x);
///     custom_op("cube", &[x], value, &[x], false, |ctx, g| {
///         let x = ctx.saved(0);
///         vec![Some(g * &(x * x) * 3.0)]
///     })
/// }
/// let x = Tensor::from_vec(vec![2.0f64], &[1]).requires_grad();
/// let grads = cube(&x).sum().backward();
/// assert_eq!(grads[&x].to_vec::<f64>(), vec![12.0]);
/// ```
pub fn custom_op<R>(
    name: &'static str,
    inputs: &[&Tensor],
    value: Tensor,
    save: &[&Tensor],
    save_output: bool,
    rule: R,
) -> Tensor
where
    R: Fn(&BackwardCtx<'_>, &Tensor) -> Vec<Option<Tensor>> + Send + Sync + 'static,
{
    let op = Op::new(name, inputs, value).save(save);
    let op = if save_output { op.save_output() } else { op };
    op.rule(rule)
}

impl<R: ?Sized> Drop for Node<R> {
    /// Unlinks parents iteratively: dropping the last handle on a chain of a million
    /// nodes must not recurse a million frames deep.
    fn drop(&mut self) {
        let mut stack: Vec<Arc<Node>> = Vec::new();
        take_links(self, &mut stack);
        while let Some(mut arc) = stack.pop() {
            // Unlink in place rather than moving the node out of its Arc (a node is a few
            // hundred bytes; the move showed in profiles of long chains).
            if let Some(node) = Arc::get_mut(&mut arc) {
                take_links(node, &mut stack);
            }
            // Dropping `arc` now either frees a node with no links left (its own Drop does
            // nothing deep) or releases one of several handles (whoever drops the last
            // runs this same loop on it).
        }
    }
}

/// Moves every reference this node holds to other nodes (edges, and the nodes of saved
/// tensors it owns alone) onto `stack`.
fn take_links<R: ?Sized>(node: &mut Node<R>, stack: &mut Vec<Arc<Node>>) {
    for edge in node.edges.drain(..) {
        if let Edge::Node(parent) = edge {
            stack.push(parent);
        }
    }
    let saved = node.saved.get_mut().unwrap_or_else(|e| e.into_inner());
    for (tensor, _) in saved.tensors.drain(..) {
        if let Some(t) = tensor {
            if let Some(parent) = detach_node_if_last(t) {
                stack.push(parent);
            }
        }
    }
}

/// If `t` is the last handle on its tensor, takes the tensor's node out of it.
pub(crate) fn detach_node_if_last(t: Tensor) -> Option<Arc<Node>> {
    let mut t = t;
    Arc::get_mut(&mut t.0).and_then(|inner: &mut Inner| inner.node.take())
}
