//! The backward engine: pops nodes in descending creation order from a max-heap, so a
//! node runs only after all its consumers have added to its gradient. No recursion.

use std::collections::{BinaryHeap, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use super::anomaly;
use super::grads::Grads;
use super::hooks;
use super::mode::GradModeGuard;
use super::node::{BackwardCtx, Edge, Node};
use crate::tensor::{Tensor, TensorId};

/// Called with each leaf's id and gradient as soon as that gradient is final.
pub(crate) type LeafReady<'h> = &'h mut dyn FnMut(TensorId, &Tensor);

/// Why a backward pass could not run.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum BackwardError {
    /// `backward()` was called on a tensor with more than one element.
    #[error("backward: the output has shape {shape:?}; backward() needs a scalar (one element), use backward_with(grad) otherwise")]
    NotScalar {
        /// Shape of the output.
        shape: Vec<usize>,
    },
    /// The seed gradient's shape or dtype differs from the output's.
    #[error("backward_with: the gradient has shape {grad:?}, the output {output:?}")]
    SeedShape {
        /// Output shape.
        output: Vec<usize>,
        /// Seed gradient shape.
        grad: Vec<usize>,
    },
    /// The output does not require grad: nothing was recorded.
    #[error("backward: the output does not require grad (no input was made with .requires_grad(), or it was computed under no_grad)")]
    NoGraph,
    /// A tensor saved by an op was modified in place between forward and backward.
    #[error("backward of `{op}`: a tensor it saved for its gradient (shape {shape:?}) was modified in place after the forward pass (version {saved} -> {now}); recompute the forward pass after changing it")]
    ModifiedInPlace {
        /// The op whose saved tensor changed.
        op: &'static str,
        /// Shape of that tensor.
        shape: Vec<usize>,
        /// Version when saved.
        saved: u64,
        /// Version at backward.
        now: u64,
    },
    /// `grad`: an input does not require grad, so no gradient can flow to it.
    #[error("grad: input {index} (shape {shape:?}) does not require grad; make it with .requires_grad() or compute it from one that does")]
    InputNoGrad {
        /// Position of the input.
        index: usize,
        /// Its shape.
        shape: Vec<usize>,
    },
    /// `grad`: the outputs do not depend on an input.
    #[error("grad: input {index} (shape {shape:?}) is not used to compute the outputs; pass allow_unused: true to get None for it")]
    Unused {
        /// Position of the input.
        index: usize,
        /// Its shape.
        shape: Vec<usize>,
    },
    /// `grad`: as many `grad_outputs` as outputs are needed.
    #[error("grad: {grad_outputs} grad_outputs for {outputs} outputs; give one per output")]
    GradOutputCount {
        /// Number of outputs.
        outputs: usize,
        /// Number of seeds given.
        grad_outputs: usize,
    },
    /// `grad`: a seed's shape or dtype differs from its output's.
    #[error("grad: grad_outputs[{index}] has shape {grad:?}, its output {output:?} (the dtypes must match too)")]
    GradOutput {
        /// Position of the output.
        index: usize,
        /// Output shape.
        output: Vec<usize>,
        /// Seed shape.
        grad: Vec<usize>,
    },
    /// Anomaly mode: a rule returned a gradient holding NaN or an infinity.
    #[error("anomaly in backward: the rule of `{op}` ({site}) returned a gradient holding {kind} for its input {input}")]
    Anomaly {
        /// The op whose rule returned it.
        op: &'static str,
        /// Where that op was called in the forward pass.
        site: String,
        /// Which input's gradient.
        input: usize,
        /// `"NaN"` or `"inf"`.
        kind: &'static str,
    },
    /// A second backward through a graph whose saved tensors the first one freed.
    #[error("backward of `{op}`: its saved tensors were freed by an earlier backward; use backward_retain_graph() for the first pass to run backward twice")]
    SavedFreed {
        /// The op.
        op: &'static str,
    },
}

/// Options of one backward pass.
#[derive(Clone, Copy, Debug, Default)]
pub struct BackwardOptions {
    /// Record the backward computation, so the gradients can be differentiated again.
    pub create_graph: bool,
    /// Keep saved tensors, so backward can run through the same graph again.
    pub retain_graph: bool,
}

#[derive(Default)]
struct SeqHasher(u64);

impl Hasher for SeqHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type SeqMap<V> = HashMap<u64, V, BuildHasherDefault<SeqHasher>>;

#[track_caller]
pub(crate) fn run_backward(
    root: &Tensor,
    seed: Tensor,
    opts: BackwardOptions,
    on_leaf_ready: Option<LeafReady<'_>>,
) -> Result<Grads, BackwardError> {
    if seed.shape() != root.shape() || seed.dtype() != root.dtype() {
        return Err(BackwardError::SeedShape {
            output: root.shape().to_vec(),
            grad: seed.shape().to_vec(),
        });
    }
    if !root.tracks_grad() {
        return Err(BackwardError::NoGraph);
    }
    run(&[(root, seed)], opts, on_leaf_ready, None)
}

/// What [`crate::grad`] asks of a backward pass: the gradients of some tensors only. Nodes
/// that lead to none of them do not run, and only the wanted leaves' gradients are kept.
pub(crate) struct Targets {
    /// Sequence numbers of the wanted op outputs: their gradient is captured when their
    /// node is popped (complete).
    pub(crate) nodes: HashSet<u64>,
    /// Ids of the wanted leaves.
    pub(crate) leaves: HashSet<TensorId>,
    /// Nodes with a wanted tensor among their ancestors: only their rules run.
    leads: HashSet<u64>,
    /// The gradients of the wanted op outputs, by sequence number.
    captured: SeqMap<Tensor>,
}

impl Targets {
    /// The targets `inputs` (each tracks grad) for a pass from `roots`: one walk over the
    /// nodes reachable from the roots, then one sweep in creation order (parents first)
    /// marking the nodes that lead to a wanted tensor.
    pub(crate) fn new(roots: &[&Tensor], inputs: &[&Tensor]) -> Targets {
        let mut nodes = HashSet::new();
        let mut leaves = HashSet::new();
        for t in inputs {
            match t.node() {
                Some(n) => nodes.insert(n.seq),
                None => leaves.insert(t.id()),
            };
        }
        let mut seen: HashSet<u64> = HashSet::new();
        let mut stack: Vec<&Arc<Node>> = Vec::new();
        for root in roots {
            if let Some(n) = root.node() {
                if seen.insert(n.seq) {
                    stack.push(n);
                }
            }
        }
        let mut reachable: Vec<&Arc<Node>> = Vec::new();
        while let Some(node) = stack.pop() {
            reachable.push(node);
            for edge in node.edges.iter() {
                if let Edge::Node(parent) = edge {
                    if seen.insert(parent.seq) {
                        stack.push(parent);
                    }
                }
            }
        }
        reachable.sort_by_key(|n| n.seq);
        let mut leads = HashSet::new();
        for node in reachable {
            let leads_to_target = node.edges.iter().any(|edge| match edge {
                Edge::Leaf { id, .. } => leaves.contains(id),
                Edge::Node(p) => nodes.contains(&p.seq) || leads.contains(&p.seq),
                Edge::Skip => false,
            });
            if leads_to_target {
                leads.insert(node.seq);
            }
        }
        Targets {
            nodes,
            leaves,
            leads,
            captured: SeqMap::default(),
        }
    }

    /// The captured gradient of the op output `t` (a wanted one), if backward reached it.
    pub(crate) fn captured(&self, t: &Tensor) -> Option<&Tensor> {
        t.node().and_then(|n| self.captured.get(&n.seq))
    }

    fn wants_node(&self, seq: u64) -> bool {
        self.leads.contains(&seq) || self.nodes.contains(&seq)
    }
}

/// The engine: backward from every `(root, seed)` at once (each root tracks grad and
/// its seed has its shape and dtype). With `targets`, only what leads to them runs and
/// their gradients are captured in it; otherwise every leaf's gradient is returned.
#[track_caller]
pub(crate) fn run(
    roots: &[(&Tensor, Tensor)],
    opts: BackwardOptions,
    on_leaf_ready: Option<LeafReady<'_>>,
    mut targets: Option<&mut Targets>,
) -> Result<Grads, BackwardError> {
    // Without create_graph the rules' ops must record nothing; with it they record
    // exactly when their inputs require grad.
    let _mode = GradModeGuard::set(opts.create_graph);
    let retain = opts.retain_graph || opts.create_graph;
    let hooks = hooks::any();
    let anomaly = anomaly::enter_backward();
    let mut grads = Grads::new();
    // Nodes are borrowed from the roots' graphs (the edges of a node never change while
    // anyone can reach it), so the queue holds no reference counts of its own.
    let mut queue = Queue::default();
    for (root, seed) in roots {
        match root.node() {
            Some(node) => {
                if targets.as_ref().is_none_or(|t| t.wants_node(node.seq)) {
                    queue.add(node, seed.clone());
                }
            }
            None => {
                if targets
                    .as_ref()
                    .is_none_or(|t| t.leaves.contains(&root.id()))
                {
                    grads.accumulate(root.id(), seed.clone());
                }
            }
        }
    }
    // With a leaf-ready hook, the leaves' own hooks run as each leaf becomes final.
    let reporting = on_leaf_ready.is_some();
    let mut watch = match (on_leaf_ready, roots) {
        (Some(hook), [(root, _)]) => match root.node() {
            Some(node) => Some(LeafWatch::new(node, hook, hooks)),
            None => {
                if hooks {
                    grads.run_leaf_hooks(root.id());
                }
                if let Some(g) = grads.get_id(root.id()) {
                    hook(root.id(), g);
                }
                None
            }
        },
        (Some(_), _) => unreachable!("the leaf-ready hook is for a pass from one root"),
        (None, _) => None,
    };

    while let Some((node, grad)) = queue.pop() {
        // The node's gradient is complete: the hooks on its output see it first.
        let grad = if hooks {
            hooks::apply(node.out_id, grad)
        } else {
            grad
        };
        if let Some(t) = targets.as_deref_mut() {
            if t.nodes.contains(&node.seq) {
                t.captured.insert(node.seq, grad.clone());
            }
            if !t.leads.contains(&node.seq) {
                continue;
            }
        }
        let (saved, output) = take_saved(node, retain)?;
        let ctx = BackwardCtx {
            node,
            saved: &saved,
            output: output.as_ref(),
            create_graph: opts.create_graph,
        };
        let input_grads = (node.rule)(&ctx, &grad);
        drop(grad);
        drop(saved);
        if let Some(out) = output {
            out.recycle();
        }
        assert_eq!(
            input_grads.len(),
            node.edges.len(),
            "backward of `{}`: the rule returned {} gradients for {} inputs",
            node.op,
            input_grads.len(),
            node.edges.len()
        );
        for (input, (edge, g)) in node.edges.iter().zip(input_grads).enumerate() {
            let Some(g) = g else { continue };
            if anomaly.is_some() && !matches!(edge, Edge::Skip) {
                check_finite(node, input, &g)?;
            }
            match edge {
                Edge::Skip => {}
                Edge::Leaf { id, shape } => {
                    check_grad(node.op, shape, None, &g);
                    if targets.as_ref().is_none_or(|t| t.leaves.contains(id)) {
                        grads.accumulate(*id, g);
                    }
                }
                Edge::Node(parent) => {
                    check_grad(node.op, &parent.out_shape, Some(parent.out_dtype), &g);
                    if targets.as_ref().is_none_or(|t| t.wants_node(parent.seq)) {
                        queue.add(parent, g);
                    }
                }
            }
        }
        if let Some(watch) = watch.as_mut() {
            watch.node_ran(node, &mut grads);
        }
    }
    match watch {
        Some(watch) => watch.finish(&mut grads),
        None if hooks && !reporting => grads.run_all_leaf_hooks(),
        None => {}
    }
    // Gradients come back computed: a deferred one would hold on to the whole graph.
    grads.force_all();
    if let Some(t) = targets {
        for g in t.captured.values() {
            g.force();
        }
    }
    Ok(grads)
}

/// Tells a caller when each leaf's gradient is final: counts the edges into each leaf
/// among the nodes reachable from the root (one walk before backward), and calls the
/// hook when the last of them has run. Leaves whose consumers were never reached (a rule
/// returned no gradient for their only path) are reported at the end, in id order.
struct LeafWatch<'h> {
    waiting: HashMap<TensorId, usize>,
    hook: LeafReady<'h>,
    /// Whether tensor hooks are registered: a leaf's run before it is reported.
    leaf_hooks: bool,
}

impl<'h> LeafWatch<'h> {
    fn new(root: &Arc<Node>, hook: LeafReady<'h>, leaf_hooks: bool) -> Self {
        let mut waiting: HashMap<TensorId, usize> = HashMap::new();
        let mut seen: HashSet<u64> = HashSet::from([root.seq]);
        let mut stack: Vec<&Arc<Node>> = vec![root];
        while let Some(node) = stack.pop() {
            for edge in node.edges.iter() {
                match edge {
                    Edge::Leaf { id, .. } => *waiting.entry(*id).or_default() += 1,
                    Edge::Node(parent) if seen.insert(parent.seq) => stack.push(parent),
                    _ => {}
                }
            }
        }
        LeafWatch {
            waiting,
            hook,
            leaf_hooks,
        }
    }

    #[track_caller]
    fn node_ran(&mut self, node: &Node, grads: &mut Grads) {
        for edge in node.edges.iter() {
            let Edge::Leaf { id, .. } = edge else {
                continue;
            };
            let left = self
                .waiting
                .get_mut(id)
                .expect("every leaf edge was counted");
            *left -= 1;
            if *left == 0 {
                self.waiting.remove(id);
                if self.leaf_hooks {
                    grads.run_leaf_hooks(*id);
                }
                if let Some(g) = grads.get_id(*id) {
                    g.force();
                    (self.hook)(*id, g);
                }
            }
        }
    }

    #[track_caller]
    fn finish(self, grads: &mut Grads) {
        let mut rest: Vec<TensorId> = self.waiting.into_keys().collect();
        rest.sort_by_key(|id| id.as_u64());
        for id in rest {
            if self.leaf_hooks {
                grads.run_leaf_hooks(id);
            }
            if let Some(g) = grads.get_id(id) {
                g.force();
                (self.hook)(id, g);
            }
        }
    }
}

/// The nodes waiting to run, each with its gradient so far, popped in descending
/// sequence number (so a node runs after all its consumers). The entry with the largest
/// number is held aside in `top`, outside the heap and the map: on a chain of ops, where
/// each node feeds the next, every entry passes through `top` alone and the heap and map
/// stay empty. Invariant: `top`, when set, is above every number in `heap`.
#[derive(Default)]
struct Queue<'g> {
    top: Option<(u64, &'g Arc<Node>, Tensor)>,
    heap: BinaryHeap<u64>,
    pending: SeqMap<(&'g Arc<Node>, Tensor)>,
}

impl<'g> Queue<'g> {
    fn pop(&mut self) -> Option<(&'g Arc<Node>, Tensor)> {
        if let Some((_, node, grad)) = self.top.take() {
            return Some((node, grad));
        }
        let seq = self.heap.pop()?;
        Some(
            self.pending
                .remove(&seq)
                .expect("every queued node has a pending gradient"),
        )
    }

    /// Adds `g` to the gradient pending for `node`, queueing the node if it is new.
    fn add(&mut self, node: &'g Arc<Node>, g: Tensor) {
        let seq = node.seq;
        match &mut self.top {
            Some(top) if top.0 == seq => return top.2.accumulate(&g),
            _ => {}
        }
        if !self.pending.is_empty() {
            if let Some(slot) = self.pending.get_mut(&seq) {
                return slot.1.accumulate(&g);
            }
        }
        let above_heap = self.heap.peek().is_none_or(|&h| seq > h);
        match &self.top {
            None if above_heap => self.top = Some((seq, node, g)),
            Some(top) if seq > top.0 => {
                let (old, old_node, old_grad) =
                    self.top.replace((seq, node, g)).expect("top is set");
                self.heap.push(old);
                self.pending.insert(old, (old_node, old_grad));
            }
            _ => {
                self.heap.push(seq);
                self.pending.insert(seq, (node, g));
            }
        }
    }
}

/// Anomaly mode: the gradient `g` a node's rule returned for its input `input` must be
/// finite.
fn check_finite(node: &Node, input: usize, g: &Tensor) -> Result<(), BackwardError> {
    match anomaly::non_finite(g) {
        None => Ok(()),
        Some(kind) => Err(BackwardError::Anomaly {
            op: node.op,
            site: anomaly::describe_site(node.site),
            input,
            kind,
        }),
    }
}

#[track_caller]
fn check_grad(op: &str, shape: &[usize], dtype: Option<crate::DType>, g: &Tensor) {
    assert!(
        g.shape() == shape,
        "backward of `{op}`: the rule returned a gradient of shape {:?} for an input of shape {shape:?}",
        g.shape()
    );
    if let Some(d) = dtype {
        assert!(
            g.dtype() == d,
            "backward of `{op}`: the rule returned a {} gradient for a {d} input",
            g.dtype()
        );
    }
}

type Taken = (
    smallvec::SmallVec<[Option<Tensor>; 2]>,
    Option<crate::storage::Data>,
);

fn take_saved(node: &Node, retain: bool) -> Result<Taken, BackwardError> {
    if !node.has_saved {
        // Nothing to check or take, and such a node is never marked freed.
        return Ok(Default::default());
    }
    let mut state = node.saved.lock().unwrap_or_else(|e| e.into_inner());
    if state.freed {
        return Err(BackwardError::SavedFreed { op: node.op });
    }
    for (t, version) in state.tensors.iter() {
        if let Some(t) = t {
            let now = t.version();
            if now != *version {
                return Err(BackwardError::ModifiedInPlace {
                    op: node.op,
                    shape: t.shape().to_vec(),
                    saved: *version,
                    now,
                });
            }
        }
    }
    if retain {
        Ok((
            state.tensors.iter().map(|(t, _)| t.clone()).collect(),
            state.output.clone(),
        ))
    } else {
        // Only a node that had something to free can be found freed later: ops that saved
        // nothing (add, sum, ...) run again as PyTorch's do.
        state.freed = state.tensors.iter().any(|(t, _)| t.is_some()) || state.output.is_some();
        Ok((
            state.tensors.drain(..).map(|(t, _)| t).collect(),
            state.output.take(),
        ))
    }
}
