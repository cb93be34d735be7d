//! Deferred elementwise evaluation: chains of elementwise ops on large tensors fuse into
//! one pass over memory.
//!
//! An elementwise op on a large tensor (at least [`LAZY_MIN`] elements) does not compute
//! its output at once: it returns [`Values::Lazy`], an expression over its operands (a
//! tree of `Map`, `Zip` and `Fill` nodes whose leaves are ready arrays). The value is
//! computed when something needs the numbers: a non-elementwise op, reading the data, the
//! end of backward. Then the tree is flattened into a program, one instruction per
//! distinct node, run block by block: each instruction works on [`BLOCK`] elements at a
//! time in a register that stays in L1, so memory is read once per leaf and written once
//! for the result, however many ops the chain has. A full `sum` reduces the tree the same
//! way without writing it at all.
//!
//! What stays the same: every node runs the very closure the eager kernel runs, element by
//! element, so fused results are bitwise identical to eager ones (sums too: the fused
//! reduction splits the range exactly as [`pairwise_sum`] does). What bounds the cost:
//! a tree of more than [`MAX_COST`] nodes is cut (its operands are computed first), and an
//! expression is evaluated at most once: its value then replaces the tree in the node
//! (which lets go of its operands), so a tensor read twice is not computed twice. A lazy
//! tensor saved for backward stays lazy only if it is cheap to compute again (see [`Values::keep_lazy_when_saved`]): recomputing `exp(x)` in
//! backward costs less than writing and reading it back, recomputing `tanh` does not.
//!
//! [`with_fusion`] turns it off on a thread (ops then compute at once, as before), and so
//! does `TAPEGRAD_FUSION=0`.

use std::borrow::Cow;
use std::cell::Cell;
use std::mem::MaybeUninit;
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard};

use ndarray::{ArcArray, Dimension, IxDyn};

use super::elementwise::build_vec;
use super::reduce::{block_sum, pairwise_by, SUM_BLOCK};
use crate::dtype::Element;

/// Tensors with fewer elements are computed at once: below this a pass over memory costs
/// less than building and walking an expression.
pub(crate) const LAZY_MIN: usize = 1 << 15;
/// Most nodes in one expression tree (nodes reached twice count twice). A tree that
/// would grow past it has its operands computed first.
pub(crate) const MAX_COST: u32 = 16;
/// A saved lazy tensor is kept lazy (recomputed in backward) only up to this many nodes.
pub(crate) const SAVE_MAX_COST: u32 = 2;
/// The weight of a node that is cheaper to store than to recompute: it alone exceeds
/// [`SAVE_MAX_COST`], so a saved tensor with such a node is always computed at save time.
pub(crate) const COSTLY: u32 = SAVE_MAX_COST + 1;
/// Elements each node processes at a time.
const BLOCK: usize = 1024;

thread_local! {
    static FUSION: Cell<Option<bool>> = const { Cell::new(None) };
}

fn fusion_default() -> bool {
    static DEFAULT: OnceLock<bool> = OnceLock::new();
    *DEFAULT.get_or_init(|| {
        std::env::var("TAPEGRAD_FUSION")
            .map_or(true, |v| !matches!(v.trim(), "0" | "off" | "false"))
    })
}

/// Whether elementwise ops on this thread defer and fuse (see [`with_fusion`]).
pub fn is_fusion_enabled() -> bool {
    FUSION.with(|f| f.get()).unwrap_or_else(fusion_default)
}

/// Runs `f` with fusion of large elementwise chains switched on or off on this thread.
/// Results are the same either way, bit for bit; only speed and memory traffic change.
/// On by default; the environment variable `TAPEGRAD_FUSION=0` switches it off.
///
/// ```
/// use tapegrad::{with_fusion, DType, Tensor};
/// let x = Tensor::randn(&[100_000], DType::F32, 0);
/// let fused = x.exp().mul(&x).sum().item();
/// let eager = with_fusion(false, || x.exp().mul(&x).sum().item());
/// assert_eq!(fused, eager);
/// ```
pub fn with_fusion<R>(enabled: bool, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<bool>);
    impl Drop for Restore {
        fn drop(&mut self) {
            FUSION.with(|f| f.set(self.0));
        }
    }
    let _restore = Restore(FUSION.with(|c| c.replace(Some(enabled))));
    f()
}

/// A block function of one operand: `dst[i] = f(src[i])` for every `i`.
pub(crate) type MapFn<T> = dyn Fn(&[T], &mut [MaybeUninit<T>]) + Send + Sync;
/// A block function of two operands: `dst[i] = f(a[i], b[i])` for every `i`.
pub(crate) type ZipFn<T> = dyn Fn(&[T], &[T], &mut [MaybeUninit<T>]) + Send + Sync;

/// An array's values: computed, or an expression to compute them from.
pub(crate) enum Values<T> {
    /// Computed.
    Ready(ArcArray<T, IxDyn>),
    /// Deferred.
    Lazy(Arc<Expr<T>>),
}

impl<T> Clone for Values<T> {
    fn clone(&self) -> Self {
        match self {
            Values::Ready(a) => Values::Ready(a.clone()),
            Values::Lazy(e) => Values::Lazy(e.clone()),
        }
    }
}

/// A deferred elementwise computation of a row-major array of shape `dim`.
pub(crate) struct Expr<T> {
    dim: IxDyn,
    len: usize,
    /// Nodes in the tree below and including this one, not counting computed ones.
    cost: u32,
    state: RwLock<State<T>>,
}

enum State<T> {
    /// Not computed yet: the op and its operands.
    Pending(Op<T>),
    /// Computed: the operands are let go, later readers use the array.
    Done(ArcArray<T, IxDyn>),
}

enum Op<T> {
    Fill(T),
    Map(Arc<MapFn<T>>, Values<T>),
    Zip(Arc<ZipFn<T>>, Values<T>, Values<T>),
}

impl<T: Element> Values<T> {
    /// The shape.
    pub(crate) fn shape(&self) -> &[usize] {
        match self {
            Values::Ready(a) => a.shape(),
            Values::Lazy(e) => e.dim.slice(),
        }
    }

    /// Number of elements.
    pub(crate) fn len(&self) -> usize {
        match self {
            Values::Ready(a) => a.len(),
            Values::Lazy(e) => e.len,
        }
    }

    /// The computed array (computing it now if it is deferred; kept for later readers),
    /// borrowed when it is computed already. "Force" is the one word for computing a
    /// deferred value, at every level (`Expr`, `Values`, `Data`, `Tensor`).
    pub(crate) fn force(&self) -> Cow<'_, ArcArray<T, IxDyn>> {
        match self {
            Values::Ready(a) => Cow::Borrowed(a),
            Values::Lazy(e) => Cow::Owned(e.force()),
        }
    }

    /// The computed array, if there is one and nothing else holds the expression it came
    /// from (so its buffer can go back to the buffer cache).
    pub(crate) fn into_array(self) -> Option<ArcArray<T, IxDyn>> {
        match self {
            Values::Ready(a) => Some(a),
            Values::Lazy(e) => match Arc::try_unwrap(e).ok()?.state.into_inner() {
                Ok(State::Done(a)) => Some(a),
                _ => None,
            },
        }
    }

    /// Whether this is an expression not yet computed.
    pub(crate) fn is_pending(&self) -> bool {
        matches!(self, Values::Lazy(e) if e.pending())
    }

    /// Whether a tensor with these values, saved for backward, may stay deferred (and be
    /// recomputed when backward reads it): only small trees of cheap nodes.
    pub(crate) fn keep_lazy_when_saved(&self) -> bool {
        self.cost() <= SAVE_MAX_COST
    }

    /// Nodes still to evaluate.
    fn cost(&self) -> u32 {
        match self {
            Values::Lazy(e) if e.pending() => e.cost,
            _ => 0,
        }
    }

    /// The constant of a deferred fill.
    pub(crate) fn constant(&self) -> Option<T> {
        match self {
            Values::Lazy(e) => match &*e.state() {
                State::Pending(Op::Fill(c)) => Some(*c),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether an op on these values (of `len` elements) should defer: fusion is on, the
    /// array is large, and it is either deferred already or a contiguous row-major array.
    pub(crate) fn can_defer(&self) -> bool {
        self.len() >= LAZY_MIN
            && is_fusion_enabled()
            && match self {
                Values::Ready(a) => a.is_standard_layout(),
                Values::Lazy(_) => true,
            }
    }

    /// Computes the values now if another node on top would make the tree too big.
    /// Also replaces a computed expression by its array, so a new tree does not hold on
    /// to a finished one.
    fn bounded(self, extra: u32) -> Values<T> {
        if self.cost() + extra > MAX_COST || matches!(&self, Values::Lazy(_) if !self.is_pending())
        {
            Values::Ready(self.force().into_owned())
        } else {
            self
        }
    }

    /// A deferred array of shape `dim` with every element `c`.
    pub(crate) fn fill(dim: IxDyn, c: T) -> Values<T> {
        Values::Lazy(Arc::new(Expr::new(dim, 1, Op::Fill(c))))
    }

    /// Deferred `f` over every element (`f` fills a block; see [`MapFn`]). `weight` is
    /// the node's cost: 1 for arithmetic and the vectorised `exp`, [`COSTLY`] for
    /// functions that cost more to recompute than to store (`tanh`, `log`, ...).
    pub(crate) fn map(self, weight: u32, f: Arc<MapFn<T>>) -> Values<T> {
        let a = self.bounded(weight);
        let dim = IxDyn(a.shape());
        let cost = a.cost() + weight;
        Values::Lazy(Arc::new(Expr::new(dim, cost, Op::Map(f, a))))
    }

    /// Deferred `f` over pairs of elements of two arrays of the same shape (`weight` as
    /// for [`map`](Self::map)).
    pub(crate) fn zip(self, other: Values<T>, weight: u32, f: Arc<ZipFn<T>>) -> Values<T> {
        debug_assert_eq!(self.shape(), other.shape());
        let a = self.bounded(other.cost().min(MAX_COST / 2) + weight);
        let b = other.bounded(a.cost() + weight);
        let dim = IxDyn(a.shape());
        let cost = a.cost() + b.cost() + weight;
        Values::Lazy(Arc::new(Expr::new(dim, cost, Op::Zip(f, a, b))))
    }
}

impl<T: Element> Expr<T> {
    fn new(dim: IxDyn, cost: u32, op: Op<T>) -> Expr<T> {
        Expr {
            len: dim.size(),
            dim,
            cost,
            state: RwLock::new(State::Pending(op)),
        }
    }

    fn state(&self) -> RwLockReadGuard<'_, State<T>> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn pending(&self) -> bool {
        matches!(&*self.state(), State::Pending(_))
    }

    /// Computes the whole array (in parallel when large) and keeps it in place of the tree.
    fn force(self: &Arc<Self>) -> ArcArray<T, IxDyn> {
        if let State::Done(v) = &*self.state() {
            return v.clone();
        }
        let program = Program::compile(self);
        let data = build_vec(self.len, |off, dst| {
            let mut regs = program.registers();
            for (i, block) in dst.chunks_mut(BLOCK).enumerate() {
                program.run(off + i * BLOCK, block, &mut regs);
            }
        });
        // SAFETY: `data` holds one element per position of `dim`, in row-major order.
        let a = unsafe { ArcArray::from_shape_vec_unchecked(self.dim.clone(), data) };
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        match &*state {
            // Another thread computed it meanwhile: both results are the same.
            State::Done(v) => v.clone(),
            State::Pending(_) => {
                *state = State::Done(a.clone());
                a
            }
        }
    }
}

/// Where an instruction reads an operand: a leaf array or an earlier instruction's result.
#[derive(Clone, Copy)]
enum Src {
    Leaf(usize),
    Reg(usize),
}

enum Instr<T> {
    Fill(T),
    Map(Arc<MapFn<T>>, Src),
    Zip(Arc<ZipFn<T>>, Src, Src),
}

/// An expression tree flattened into instructions in dependency order, one per distinct
/// node (a node reached by two paths, like `exp(x)` in `c*exp(x) + c*x*exp(x)`, is
/// computed once per block). Compiling takes what it needs from the nodes (closures and
/// arrays are reference-counted), so no lock is held while it runs.
struct Program<T> {
    leaves: Vec<ArcArray<T, IxDyn>>,
    instrs: Vec<Instr<T>>,
}

impl<T: Element> Program<T> {
    fn compile(root: &Arc<Expr<T>>) -> Program<T> {
        let mut p = Program {
            leaves: Vec::new(),
            instrs: Vec::new(),
        };
        let mut seen: Vec<(*const Expr<T>, Src)> = Vec::new();
        let root = p.add(&Values::Lazy(root.clone()), &mut seen);
        if let Src::Leaf(i) = root {
            // Computed meanwhile: the program copies it.
            let copy: Arc<MapFn<T>> = Arc::new(|src: &[T], dst: &mut [MaybeUninit<T>]| {
                for (d, &x) in dst.iter_mut().zip(src) {
                    d.write(x);
                }
            });
            p.instrs.push(Instr::Map(copy, Src::Leaf(i)));
        }
        p
    }

    /// Adds the instructions computing `v` (after those of its operands) and says where
    /// its values will be.
    fn add(&mut self, v: &Values<T>, seen: &mut Vec<(*const Expr<T>, Src)>) -> Src {
        let e = match v {
            Values::Ready(a) => return self.leaf(a.clone()),
            Values::Lazy(e) => e,
        };
        let key = Arc::as_ptr(e);
        if let Some(&(_, src)) = seen.iter().find(|(k, _)| *k == key) {
            return src;
        }
        let instr = match &*e.state() {
            State::Done(a) => {
                let src = self.leaf(a.clone());
                seen.push((key, src));
                return src;
            }
            State::Pending(Op::Fill(c)) => Instr::Fill(*c),
            State::Pending(Op::Map(f, a)) => Instr::Map(f.clone(), self.add(a, seen)),
            State::Pending(Op::Zip(f, a, b)) => {
                let x = self.add(a, seen);
                Instr::Zip(f.clone(), x, self.add(b, seen))
            }
        };
        self.instrs.push(instr);
        let src = Src::Reg(self.instrs.len() - 1);
        seen.push((key, src));
        src
    }

    fn leaf(&mut self, a: ArcArray<T, IxDyn>) -> Src {
        debug_assert!(a.is_standard_layout(), "fused leaves are row-major");
        self.leaves.push(a);
        Src::Leaf(self.leaves.len() - 1)
    }

    /// Working space for [`run`](Self::run): one block per instruction but the last.
    fn registers(&self) -> Vec<MaybeUninit<T>> {
        let n = BLOCK * self.instrs.len().saturating_sub(1);
        let mut v = Vec::with_capacity(n);
        // SAFETY: MaybeUninit needs no initialisation.
        unsafe { v.set_len(n) };
        v
    }

    /// Writes the values at `off .. off + dst.len()` (at most [`BLOCK`]) into `dst`.
    fn run(&self, off: usize, dst: &mut [MaybeUninit<T>], regs: &mut [MaybeUninit<T>]) {
        let n = dst.len();
        let last = self.instrs.len() - 1;
        let mut dst = Some(dst);
        for (i, instr) in self.instrs.iter().enumerate() {
            let (done, rest) = regs.split_at_mut(BLOCK * i.min(last));
            let out: &mut [MaybeUninit<T>] = if i == last {
                dst.take().expect("the last instruction writes the output")
            } else {
                &mut rest[..n]
            };
            let read = |s: Src| -> &[T] {
                match s {
                    Src::Leaf(j) => &self.leaves[j]
                        .as_slice()
                        .expect("fused leaves are row-major")[off..off + n],
                    Src::Reg(j) => {
                        let r = &done[BLOCK * j..BLOCK * j + n];
                        // SAFETY: instruction `j < i` wrote the first `n` elements of its block.
                        unsafe { &*(r as *const [MaybeUninit<T>] as *const [T]) }
                    }
                }
            };
            match instr {
                Instr::Fill(c) => {
                    for d in out.iter_mut() {
                        d.write(*c);
                    }
                }
                Instr::Map(f, a) => f(read(*a), out),
                Instr::Zip(f, a, b) => f(read(*a), read(*b), out),
            }
        }
    }
}

/// Sum of all the values, without computing a deferred array: the same split into
/// [`SUM_BLOCK`]-element leaves as the eager sum, so the result is identical to summing the
/// computed array.
pub(crate) fn sum<T: Element>(v: &Values<T>) -> T {
    let e = match v {
        Values::Lazy(e) if e.pending() => e,
        _ => return super::reduce::sum_all(&v.force().view()),
    };
    let program = Program::compile(e);
    pairwise_by(e.len, &|off, n| {
        let mut leaf = [MaybeUninit::<T>::uninit(); SUM_BLOCK];
        let mut regs = program.registers();
        let leaf = &mut leaf[..n];
        for (i, block) in leaf.chunks_mut(BLOCK).enumerate() {
            program.run(off + i * BLOCK, block, &mut regs);
        }
        // SAFETY: every block of `leaf` was written by `run`.
        block_sum(unsafe { &*(leaf as *const [MaybeUninit<T>] as *const [T]) })
    })
}

/// `acc += g` in place for a deferred `g` (see [`Values::is_pending`]), evaluating it
/// block by block: no array is allocated for `g`. Returns `false`, doing nothing, if `g`
/// is computed already or its shape differs.
pub(crate) fn add_assign_pending<T: Element>(acc: &mut [T], g: &Values<T>) -> bool {
    let e = match g {
        Values::Lazy(e) if e.pending() && e.len == acc.len() => e,
        _ => return false,
    };
    let program = Program::compile(e);
    super::elementwise::for_chunks(acc, &|off, chunk: &mut [T]| {
        let mut regs = program.registers();
        let mut buf = [MaybeUninit::<T>::uninit(); BLOCK];
        for (i, a) in chunk.chunks_mut(BLOCK).enumerate() {
            let n = a.len();
            program.run(off + i * BLOCK, &mut buf[..n], &mut regs);
            for (x, y) in a.iter_mut().zip(&buf[..n]) {
                // SAFETY: `run` wrote the first `n` elements of `buf`.
                *x += unsafe { y.assume_init() };
            }
        }
    });
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(n: usize) -> ArcArray<f64, IxDyn> {
        ArcArray::from_shape_fn(IxDyn(&[n]), |i| (i[0] as f64 * 0.37).sin())
    }

    fn map_fn(f: fn(f64) -> f64) -> Arc<MapFn<f64>> {
        Arc::new(move |src, dst| {
            for (d, &x) in dst.iter_mut().zip(src) {
                d.write(f(x));
            }
        })
    }

    fn zip_fn(f: fn(f64, f64) -> f64) -> Arc<ZipFn<f64>> {
        Arc::new(move |a, b, dst| {
            for ((d, &x), &y) in dst.iter_mut().zip(a).zip(b) {
                d.write(f(x, y));
            }
        })
    }

    #[test]
    fn a_fused_tree_computes_what_its_nodes_compute_one_by_one() {
        let n = LAZY_MIN * 2 + 77; // several chunks and a ragged last block
        let x = ramp(n);
        let lazy_exp = Values::Ready(x.clone()).map(1, map_fn(f64::exp));
        let prod = lazy_exp
            .clone()
            .zip(Values::Ready(x.clone()), 1, zip_fn(|a, b| a * b));
        let sum_tree = prod
            .clone()
            .zip(Values::fill(IxDyn(&[n]), 0.5), 1, zip_fn(|a, b| a + b));
        let want: Vec<f64> = x.iter().map(|&v| v.exp() * v + 0.5).collect();
        assert!(sum_tree.is_pending());
        assert_eq!(sum_tree.force().as_slice().unwrap(), &want[..]);
        // The value is kept: the tree is not pending any more.
        assert!(!sum_tree.is_pending());
        let eager: Vec<f64> = x.iter().map(|&v| v.exp() * v).collect();
        assert_eq!(
            sum(&prod),
            super::super::reduce::pairwise_sum(&eager),
            "a fused sum splits the range as the eager one does"
        );
    }

    #[test]
    fn a_node_reached_twice_is_computed_once_per_block() {
        let n = LAZY_MIN;
        let x = ramp(n);
        let e = Values::Ready(x.clone()).map(1, map_fn(f64::exp));
        let left = e.clone().map(1, map_fn(|a| 2.0 * a));
        let right = Values::Ready(x.clone()).zip(e, 1, zip_fn(|a, b| a * b));
        let both = left.zip(right, 1, zip_fn(|a, b| a + b));
        let Values::Lazy(root) = &both else {
            panic!("deferred")
        };
        let program = Program::compile(root);
        assert_eq!(program.instrs.len(), 4, "exp, 2*e, x*e, sum: exp once");
        assert_eq!(program.leaves.len(), 2, "x as a leaf of exp and of x*e");
        let want: Vec<f64> = x.iter().map(|&v| 2.0 * v.exp() + v * v.exp()).collect();
        assert_eq!(both.force().as_slice().unwrap(), &want[..]);
    }

    #[test]
    fn trees_are_cut_at_the_cost_limit() {
        let n = LAZY_MIN;
        let x = ramp(n);
        let mut v = Values::Ready(x.clone());
        for _ in 0..100 {
            v = v.map(1, map_fn(|a| a * 1.001 + 0.25));
            assert!(v.cost() <= MAX_COST);
        }
        let mut want: Vec<f64> = x.iter().copied().collect();
        for _ in 0..100 {
            for w in want.iter_mut() {
                *w = *w * 1.001 + 0.25;
            }
        }
        assert_eq!(v.force().as_slice().unwrap(), &want[..]);
        // A tree that uses one operand in both branches stays under the limit too.
        let mut w = Values::Ready(x);
        for _ in 0..10 {
            w = w.clone().zip(w, 1, zip_fn(|a, b| a + b));
            assert!(w.cost() <= MAX_COST);
        }
        let got = w.force();
        assert!((got[[1]] - (0.37f64).sin() * 1024.0).abs() < 1e-9);
    }

    #[test]
    fn large_elementwise_ops_defer_and_backward_returns_computed_gradients() {
        use crate::{DType, Tensor};
        let x = Tensor::randn(&[LAZY_MIN], DType::F32, 0).requires_grad();
        let y = with_fusion(true, || x.exp().mul(&x));
        assert!(
            y.data().is_pending(),
            "a large elementwise chain is deferred"
        );
        let small = Tensor::randn(&[LAZY_MIN - 1], DType::F32, 0);
        assert!(!with_fusion(true, || small.exp()).data().is_pending());
        assert!(!with_fusion(false, || x.exp()).data().is_pending());
        let g = with_fusion(true, || y.sum().backward());
        assert!(!g[&x].data().is_pending(), "gradients come back computed");
        // Reading the values computes them once and keeps them.
        y.force();
        assert!(y.data().is_ready());
    }

    #[test]
    fn a_finished_expression_hands_its_array_back_when_nothing_else_holds_it() {
        let x = ramp(LAZY_MIN);
        let pending = Values::Ready(x.clone()).map(1, map_fn(|a| a + 1.0));
        assert!(pending.clone().into_array().is_none(), "shared");
        let other = pending.clone();
        other.force();
        assert!(other.into_array().is_none(), "still held by `pending`");
        let a = pending.into_array().expect("computed and unique");
        assert_eq!(a[[3]], x[[3]] + 1.0);
        let fresh = Values::Ready(x).map(1, map_fn(|a| a * 2.0));
        assert!(fresh.into_array().is_none(), "never computed");
    }

    #[test]
    fn accumulation_evaluates_a_deferred_gradient_in_place() {
        let n = LAZY_MIN + 3;
        let x = ramp(n);
        let mut acc = vec![1.0; n];
        let g = Values::Ready(x.clone()).map(1, map_fn(|a| 2.0 * a));
        assert!(add_assign_pending(&mut acc, &g));
        assert!(acc.iter().zip(x.iter()).all(|(s, v)| *s == 1.0 + 2.0 * v));
        assert!(
            g.is_pending(),
            "accumulating does not keep a copy of the gradient"
        );
    }
}
