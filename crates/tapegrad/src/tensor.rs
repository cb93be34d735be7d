//! `Tensor`: a cheap-to-clone handle on an n-d array that may be recorded on the tape.
//! Creation, access, dtype conversion, in-place updates for optimisers, and backward.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use ndarray::{ArcArray, ArrayD, ArrayViewD, ArrayViewMutD, Dimension, IxDyn};
use rand::SeedableRng;
use rand_distr::Distribution;

use crate::autograd::engine::{run_backward, BackwardError, BackwardOptions};
use crate::autograd::node::{Node, Op};
use crate::autograd::Grads;
use crate::dtype::{DType, Element, Scalar};
use crate::kernels::buffers;
use crate::kernels::elementwise::add_assign;
use crate::kernels::fused::{add_assign_pending, Values};
use crate::shape::{numel, Shape};
use crate::storage::{dispatch, Data};

/// A unique tensor id; gradients are keyed by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(u64);

/// The global id counter. Each thread takes ids from it in blocks of [`ID_BLOCK`], so
/// making a tensor costs no atomic operation.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
const ID_BLOCK: u64 = 1 << 12;

thread_local! {
    /// This thread's current block of ids: the next one and the end (exclusive).
    static ID_RANGE: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

impl TensorId {
    pub(crate) fn fresh() -> Self {
        Self::fresh_above(0)
    }

    /// A fresh id larger than `floor`. A recorded op asks for one above its inputs'
    /// nodes, so consumers always outnumber their producers (the engine's order), even
    /// when the inputs were made on another thread: a new block starts above every id
    /// handed out so far.
    pub(crate) fn fresh_above(floor: u64) -> Self {
        ID_RANGE.with(|range| {
            let (mut next, mut end) = range.get();
            if next >= end || next <= floor {
                next = NEXT_ID.fetch_add(ID_BLOCK, Ordering::Relaxed);
                end = next + ID_BLOCK;
            }
            range.set((next + 1, end));
            TensorId(next)
        })
    }

    /// The raw number (for display and hashing in user code).
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

/// An n-dimensional array of `f32` or `f64` that records the ops it takes part in when
/// it requires grad.
///
/// Cloning is cheap (a reference count); ops return new tensors (value semantics).
///
/// ```
/// use tapegrad::Tensor;
/// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2]).requires_grad();
/// let y = x.matmul(&x).sum();
/// let grads = y.backward();
/// assert_eq!(grads[&x].to_vec::<f32>(), vec![7.0, 11.0, 9.0, 13.0]);
/// ```
#[derive(Clone)]
pub struct Tensor(pub(crate) Arc<Inner>);

pub(crate) struct Inner {
    pub(crate) id: TensorId,
    pub(crate) shape: Shape,
    pub(crate) dtype: DType,
    pub(crate) data: RwLock<Data>,
    pub(crate) version: AtomicU64,
    pub(crate) requires_grad: bool,
    pub(crate) node: Option<Arc<Node>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Node's own Drop unlinks the chain behind it iteratively.
        drop(self.node.take());
        // A large buffer goes back to the buffer cache (if no other tensor shares it).
        if self.dtype.is_float()
            && numel(&self.shape) * self.dtype.size_in_bytes() >= buffers::MIN_BYTES
        {
            let empty = match self.dtype {
                DType::F32 => {
                    Data::from(ArcArray::<f32, ndarray::Ix1>::from_vec(Vec::new()).into_dyn())
                }
                _ => Data::from(ArcArray::<f64, ndarray::Ix1>::from_vec(Vec::new()).into_dyn()),
            };
            let data = self.data.get_mut().unwrap_or_else(|e| e.into_inner());
            std::mem::replace(data, empty).recycle();
        }
    }
}

impl Tensor {
    pub(crate) fn from_parts(
        id: TensorId,
        data: Data,
        requires_grad: bool,
        node: Option<Arc<Node>>,
    ) -> Tensor {
        Tensor(Arc::new(Inner {
            id,
            shape: data.shape(),
            dtype: data.dtype(),
            data: RwLock::new(data),
            version: AtomicU64::new(0),
            requires_grad,
            node,
        }))
    }

    /// A tensor that requires no grad, holding `data`.
    pub(crate) fn from_data(data: impl Into<Data>) -> Tensor {
        Tensor::from_parts(TensorId::fresh(), data.into(), false, None)
    }

    pub(crate) fn from_arc<T: Scalar>(a: ArcArray<T, IxDyn>) -> Tensor {
        Tensor::from_data(Data::from_array(a))
    }

    /// The values, computed (a reference-counted clone, no copy of the data): a deferred
    /// value is computed now and kept in place of its expression.
    pub(crate) fn force(&self) -> Data {
        let deferred = {
            let data = self.0.data.read().unwrap_or_else(|e| e.into_inner());
            if data.is_ready() {
                return data.clone();
            }
            data.clone()
        };
        let ready = deferred.force();
        let mut data = self.0.data.write().unwrap_or_else(|e| e.into_inner());
        if !data.is_ready() {
            *data = ready.clone();
        }
        ready
    }

    /// The values as they are: computed, or a deferred expression (for the elementwise
    /// kernels, which extend the expression instead of computing it).
    pub(crate) fn data(&self) -> Data {
        self.0
            .data
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// `*self = self + g` for gradient accumulation, done in place in `self`'s buffer
    /// when no one else can see it: neither tensor is on a tape, this handle is the only
    /// one on its tensor and the buffer is not shared with another tensor. Otherwise (or
    /// when building a graph of the backward pass) a recorded `add`.
    pub(crate) fn accumulate(&mut self, g: &Tensor) {
        if !self.tracks_grad()
            && !g.tracks_grad()
            && self.shape() == g.shape()
            && self.dtype() == g.dtype()
        {
            if let Some(inner) = Arc::get_mut(&mut self.0) {
                let data = inner.data.get_mut().unwrap_or_else(|e| e.into_inner());
                match (data, g.data()) {
                    (Data::F32(Values::Ready(a)), Data::F32(b)) if a.is_unique() => {
                        return add_into(a, &b)
                    }
                    (Data::F64(Values::Ready(a)), Data::F64(b)) if a.is_unique() => {
                        return add_into(a, &b)
                    }
                    _ => {}
                }
            }
        }
        *self = self.add(g);
    }

    /// Forces a deferred value that is not cheap to recompute (before saving it for
    /// backward; see `Values::keep_lazy_when_saved`).
    pub(crate) fn force_if_costly(&self) {
        let keep = self
            .0
            .data
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keep_lazy_when_saved();
        if !keep {
            self.force();
        }
    }

    pub(crate) fn node(&self) -> Option<&Arc<Node>> {
        self.0.node.as_ref()
    }

    pub(crate) fn version(&self) -> u64 {
        self.0.version.load(Ordering::Acquire)
    }

    // ---------------------------------------------------------------- creation

    /// A tensor from a flat vector in row-major order; its dtype is the element type's
    /// (`f32`, `f64`, `i64` or `bool`).
    ///
    /// # Panics
    /// If `data.len()` differs from the product of `shape`.
    ///
    /// ```
    /// use tapegrad::{DType, Tensor};
    /// let t = Tensor::from_vec(vec![1.0f64, 2.0, 3.0], &[3]);
    /// assert_eq!(t.shape(), &[3]);
    /// let targets = Tensor::from_vec(vec![2i64, 0, 1], &[3]);
    /// assert_eq!(targets.dtype(), DType::I64);
    /// let mask = Tensor::from_vec(vec![true, false], &[2]);
    /// assert_eq!(mask.to_string(), "tensor([ True, False])");
    /// ```
    #[track_caller]
    pub fn from_vec<T: Scalar>(data: Vec<T>, shape: &[usize]) -> Tensor {
        assert!(
            data.len() == numel(shape),
            "from_vec: {} values cannot fill shape {shape:?} ({} elements)",
            data.len(),
            numel(shape)
        );
        let a = ArrayD::from_shape_vec(IxDyn(shape), data).expect("length checked above");
        Tensor::from_arc(a.into_shared())
    }

    /// A tensor that owns a copy of (or takes) an `ndarray` array.
    ///
    /// ```
    /// let a = ndarray::array![[1.0f32, 2.0], [3.0, 4.0]];
    /// let t = tapegrad::Tensor::from_array(a);
    /// assert_eq!(t.shape(), &[2, 2]);
    /// ```
    pub fn from_array<T: Scalar, D: Dimension>(a: ndarray::Array<T, D>) -> Tensor {
        Tensor::from_arc(a.into_dyn().into_shared())
    }

    /// A rank-0 tensor holding `v`.
    pub fn scalar<T: Scalar>(v: T) -> Tensor {
        Tensor::from_arc(ArrayD::from_elem(IxDyn(&[]), v).into_shared())
    }

    /// A rank-0 tensor of dtype `dtype` holding `v`.
    pub fn scalar_of(v: f64, dtype: DType) -> Tensor {
        Tensor::full(&[], v, dtype)
    }

    /// A tensor of the given shape with every element `value` (converted to `dtype` as
    /// [`to_dtype`](Self::to_dtype) converts: truncated for `I64`, non-zero for `Bool`).
    pub fn full(shape: &[usize], value: f64, dtype: DType) -> Tensor {
        match dtype {
            DType::F32 => {
                Tensor::from_arc(ArrayD::from_elem(IxDyn(shape), value as f32).into_shared())
            }
            DType::F64 => Tensor::from_arc(ArrayD::from_elem(IxDyn(shape), value).into_shared()),
            DType::I64 => {
                Tensor::from_arc(ArrayD::from_elem(IxDyn(shape), value as i64).into_shared())
            }
            DType::Bool => {
                Tensor::from_arc(ArrayD::from_elem(IxDyn(shape), value != 0.0).into_shared())
            }
        }
    }

    /// Zeros of the given shape.
    pub fn zeros(shape: &[usize], dtype: DType) -> Tensor {
        Tensor::full(shape, 0.0, dtype)
    }

    /// Ones of the given shape.
    pub fn ones(shape: &[usize], dtype: DType) -> Tensor {
        Tensor::full(shape, 1.0, dtype)
    }

    /// Zeros with this tensor's shape and dtype.
    pub fn zeros_like(&self) -> Tensor {
        Tensor::zeros(self.shape(), self.dtype())
    }

    /// Ones with this tensor's shape and dtype.
    pub fn ones_like(&self) -> Tensor {
        Tensor::ones(self.shape(), self.dtype())
    }

    /// `value` everywhere, with this tensor's shape and dtype.
    pub fn full_like(&self, value: f64) -> Tensor {
        Tensor::full(self.shape(), value, self.dtype())
    }

    /// `start, start + step, ...` up to but excluding `end` (PyTorch's `arange`), in
    /// any dtype (`I64` for integer positions and indices).
    ///
    /// # Panics
    /// If `step` is zero or has the wrong sign to reach `end`, or `dtype` is `Bool`.
    ///
    /// ```
    /// use tapegrad::{DType, Tensor};
    /// let t = Tensor::arange(0.0, 1.0, 0.25, DType::F64);
    /// assert_eq!(t.to_vec::<f64>(), vec![0.0, 0.25, 0.5, 0.75]);
    /// let i = Tensor::arange(0.0, 4.0, 1.0, DType::I64);
    /// assert_eq!(i.to_vec::<i64>(), vec![0, 1, 2, 3]);
    /// ```
    #[track_caller]
    pub fn arange(start: f64, end: f64, step: f64, dtype: DType) -> Tensor {
        assert!(
            step != 0.0 && ((end - start) * step >= 0.0),
            "arange: step {step} cannot go from {start} to {end}"
        );
        assert!(dtype != DType::Bool, "arange: dtype bool is not supported");
        let n = ((end - start) / step).ceil().max(0.0) as usize;
        let v: Vec<f64> = (0..n).map(|i| start + i as f64 * step).collect();
        Tensor::from_vec(v, &[n]).to_dtype(dtype)
    }

    /// `n` evenly spaced values from `start` to `end` inclusive.
    pub fn linspace(start: f64, end: f64, n: usize, dtype: DType) -> Tensor {
        let v: Vec<f64> = match n {
            0 => vec![],
            1 => vec![start],
            _ => (0..n)
                .map(|i| start + (end - start) * i as f64 / (n - 1) as f64)
                .collect(),
        };
        Tensor::from_vec(v, &[n]).to_dtype(dtype)
    }

    /// The `n x n` identity matrix.
    pub fn eye(n: usize, dtype: DType) -> Tensor {
        let a = ArrayD::from_shape_fn(IxDyn(&[n, n]), |i| if i[0] == i[1] { 1.0 } else { 0.0 });
        Tensor::from_arc(a.into_shared()).to_dtype(dtype)
    }

    /// Standard normal samples from a seeded generator (same seed, same tensor).
    ///
    /// # Panics
    /// If `dtype` is not a float dtype.
    #[track_caller]
    pub fn randn(shape: &[usize], dtype: DType, seed: u64) -> Tensor {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let n = numel(shape);
        match dtype {
            DType::F32 => {
                let v: Vec<f32> = (0..n)
                    .map(|_| rand_distr::StandardNormal.sample(&mut rng))
                    .collect();
                Tensor::from_vec(v, shape)
            }
            DType::F64 => {
                let v: Vec<f64> = (0..n)
                    .map(|_| rand_distr::StandardNormal.sample(&mut rng))
                    .collect();
                Tensor::from_vec(v, shape)
            }
            DType::I64 | DType::Bool => panic!("randn: needs a float dtype, got {dtype}"),
        }
    }

    /// Uniform samples in `[low, high)` from a seeded generator.
    ///
    /// # Panics
    /// If `low >= high`.
    #[track_caller]
    pub fn rand_uniform(shape: &[usize], low: f64, high: f64, dtype: DType, seed: u64) -> Tensor {
        assert!(
            low < high,
            "rand_uniform: low {low} must be below high {high}"
        );
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let dist = rand_distr::Uniform::new(low, high);
        let v: Vec<f64> = (0..numel(shape)).map(|_| dist.sample(&mut rng)).collect();
        Tensor::from_vec(v, shape).to_dtype(dtype)
    }

    // ---------------------------------------------------------------- access

    /// The tensor's id (stable for its lifetime; gradients are keyed by it).
    pub fn id(&self) -> TensorId {
        self.0.id
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.0.shape
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.0.shape.len()
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.0.dtype
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        numel(&self.0.shape)
    }

    /// Whether ops on this tensor are recorded (it is a leaf made with
    /// [`requires_grad`](Self::requires_grad), or the result of a recorded op).
    pub fn tracks_grad(&self) -> bool {
        self.0.requires_grad
    }

    /// Whether this tensor is a leaf (not the output of a recorded op).
    pub fn is_leaf(&self) -> bool {
        self.0.node.is_none()
    }

    /// The name of the op that produced this tensor, if it was recorded.
    pub fn op_name(&self) -> Option<&'static str> {
        self.0.node.as_ref().map(|n| n.op)
    }

    /// A leaf sharing this tensor's data that requires grad: ops on it are recorded and
    /// backward returns its gradient. (The new leaf has a new id.)
    ///
    /// # Panics
    /// If the tensor is `I64` or `Bool`: only float tensors have gradients.
    #[track_caller]
    pub fn requires_grad(self) -> Tensor {
        if !self.dtype().is_float() {
            panic!(
                "requires_grad: a {} tensor cannot require grad (only f32 and f64 tensors are differentiable)",
                self.dtype()
            );
        }
        Tensor::from_parts(TensorId::fresh(), self.data(), true, None)
    }

    /// A tensor sharing this one's data, cut off from the tape: no gradient flows through it.
    pub fn detach(&self) -> Tensor {
        Tensor::from_data(self.data())
    }

    /// The elements in row-major order, converted to `T` as
    /// [`to_dtype`](Self::to_dtype) converts.
    ///
    /// ```
    /// let t = tapegrad::Tensor::from_vec(vec![1.5f32, -2.5, 0.0], &[3]);
    /// assert_eq!(t.to_vec::<i64>(), vec![1, -2, 0]);
    /// assert_eq!(t.to_vec::<bool>(), vec![true, true, false]);
    /// ```
    pub fn to_vec<T: Scalar>(&self) -> Vec<T> {
        self.to_array::<T>().into_iter().collect()
    }

    /// The data as an owned `ndarray` array of element type `T` (converted as
    /// [`to_dtype`](Self::to_dtype) converts).
    pub fn to_array<T: Scalar>(&self) -> ArrayD<T> {
        let data = self.force().convert(T::DTYPE);
        data.array::<T>().expect("converted to T above").to_owned()
    }

    /// The single value of a one-element tensor, as `f64` (a `Bool` gives 0 or 1).
    ///
    /// # Panics
    /// If the tensor has more than one element.
    #[track_caller]
    pub fn item(&self) -> f64 {
        self.item_as::<f64>()
    }

    /// The single value of a one-element tensor, converted to `T` as
    /// [`to_dtype`](Self::to_dtype) converts.
    ///
    /// # Panics
    /// If the tensor has more than one element.
    ///
    /// ```
    /// let t = tapegrad::Tensor::from_vec(vec![7i64], &[1]);
    /// assert_eq!(t.item_as::<i64>(), 7);
    /// ```
    #[track_caller]
    pub fn item_as<T: Scalar>(&self) -> T {
        assert!(
            self.numel() == 1,
            "item: the tensor has shape {:?}; item() needs exactly one element",
            self.shape()
        );
        let data = self.force().convert(T::DTYPE);
        let a = data.array::<T>().expect("converted to T above");
        *a.iter().next().expect("one element")
    }

    /// Runs `f` on a view of the data without copying.
    ///
    /// # Panics
    /// If `T` is not the tensor's dtype.
    #[track_caller]
    pub fn with_view<T: Scalar, R>(&self, f: impl FnOnce(ArrayViewD<'_, T>) -> R) -> R {
        self.force();
        let guard = self.0.data.read().unwrap_or_else(|e| e.into_inner());
        match guard.array::<T>() {
            Some(a) => f(a.view()),
            None => panic!(
                "with_view: the tensor is {}, not {}",
                self.dtype(),
                T::DTYPE
            ),
        }
    }

    /// Modifies the data in place, outside the tape (what optimisers do to parameters).
    /// The shape cannot change. Bumps the tensor's version, so a backward that needs the
    /// old values fails instead of returning a wrong gradient.
    ///
    /// # Panics
    /// If `T` is not the tensor's dtype.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let w = Tensor::from_vec(vec![1.0f32, 2.0], &[2]).requires_grad();
    /// w.update_(|mut a: ndarray::ArrayViewMutD<f32>| a.mapv_inplace(|x| x * 10.0));
    /// assert_eq!(w.to_vec::<f32>(), vec![10.0, 20.0]);
    /// ```
    #[track_caller]
    pub fn update_<T: Scalar, R>(&self, f: impl FnOnce(ArrayViewMutD<'_, T>) -> R) -> R {
        self.force();
        let mut guard = self.0.data.write().unwrap_or_else(|e| e.into_inner());
        let dtype = guard.dtype();
        let r = match guard.array_mut::<T>() {
            Some(a) => f(a.view_mut()),
            None => panic!("update_: the tensor is {dtype}, not {}", T::DTYPE),
        };
        self.0.version.fetch_add(1, Ordering::AcqRel);
        r
    }

    /// Copies `src`'s values into this tensor in place (see [`update_`](Self::update_)).
    ///
    /// # Panics
    /// If shapes or dtypes differ.
    #[track_caller]
    pub fn assign_(&self, src: &Tensor) {
        assert!(
            self.shape() == src.shape() && self.dtype() == src.dtype(),
            "assign_: source {:?} {} does not match destination {:?} {}",
            src.shape(),
            src.dtype(),
            self.shape(),
            self.dtype()
        );
        dispatch!(any src.data(), |a| self
            .update_(|mut d: ArrayViewMutD<E>| d.assign(&a)))
    }

    /// Converts to another dtype, PyTorch's way: `Bool` to a number gives 0/1, a number
    /// to `Bool` is "non-zero", a float to `I64` truncates toward zero. Differentiable
    /// between float dtypes (the gradient is converted back); the result of a conversion
    /// to `I64` or `Bool` is not on the tape.
    ///
    /// ```
    /// use tapegrad::{DType, Tensor};
    /// let x = Tensor::from_vec(vec![-1.7f32, 0.0, 2.9], &[3]);
    /// assert_eq!(x.to_dtype(DType::I64).to_vec::<i64>(), vec![-1, 0, 2]);
    /// let m = x.to_dtype(DType::Bool);
    /// assert_eq!(m.to_vec::<bool>(), vec![true, false, true]);
    /// assert_eq!(m.to_dtype(DType::F64).to_vec::<f64>(), vec![1.0, 0.0, 1.0]);
    /// ```
    #[track_caller]
    pub fn to_dtype(&self, dtype: DType) -> Tensor {
        if dtype == self.dtype() {
            return self.clone();
        }
        let from = self.dtype();
        let value = self.data().convert(dtype);
        Op::new("to_dtype", &[self], value)
            .rule(move |_, g| smallvec::smallvec![Some(g.to_dtype(from))])
    }

    // ---------------------------------------------------------------- backward

    /// Runs the chain rule from this scalar output back to every leaf that requires grad.
    ///
    /// # Panics
    /// If the tensor has more than one element, requires no grad, or the graph cannot be
    /// walked (see [`try_backward`](Self::try_backward) for the error cases).
    #[track_caller]
    pub fn backward(&self) -> Grads {
        or_panic(self.try_backward())
    }

    /// Like [`backward`](Self::backward), returning the error instead of panicking.
    #[track_caller]
    pub fn try_backward(&self) -> Result<Grads, BackwardError> {
        self.backward_opts(None, BackwardOptions::default())
    }

    /// Backward from a non-scalar output, seeded with `grad` (its shape).
    #[track_caller]
    pub fn backward_with(&self, grad: &Tensor) -> Grads {
        or_panic(self.backward_opts(Some(grad), BackwardOptions::default()))
    }

    /// Backward that keeps the saved tensors, so it can run again on the same graph.
    #[track_caller]
    pub fn backward_retain_graph(&self) -> Grads {
        or_panic(self.backward_opts(
            None,
            BackwardOptions {
                create_graph: false,
                retain_graph: true,
            },
        ))
    }

    /// Backward that records itself (PyTorch's `create_graph=True`): the returned
    /// gradients are on the tape, so they can be differentiated again.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let x = Tensor::from_vec(vec![3.0f64], &[1]).requires_grad();
    /// let y = (&x * &x * &x).sum(); // x^3
    /// let dx = y.backward_with_graph()[&x].clone(); // 3x^2 = 27
    /// let d2x = dx.sum().backward()[&x].clone(); // 6x = 18
    /// assert_eq!(dx.item(), 27.0);
    /// assert_eq!(d2x.item(), 18.0);
    /// ```
    #[track_caller]
    pub fn backward_with_graph(&self) -> Grads {
        or_panic(self.backward_opts(
            None,
            BackwardOptions {
                create_graph: true,
                retain_graph: true,
            },
        ))
    }

    /// The general form: optional seed gradient (default: 1 for a scalar) and options.
    #[track_caller]
    pub fn backward_opts(
        &self,
        grad: Option<&Tensor>,
        opts: BackwardOptions,
    ) -> Result<Grads, BackwardError> {
        let seed = match grad {
            Some(g) => g.detach_if(!opts.create_graph),
            None => {
                if self.numel() != 1 {
                    return Err(BackwardError::NotScalar {
                        shape: self.shape().to_vec(),
                    });
                }
                self.ones_like()
            }
        };
        run_backward(self, seed, opts, None)
    }

    /// Backward from this scalar output that calls `on_leaf_ready(id, grad)` as soon as
    /// a leaf's gradient is final (every op that used the leaf has run), while backward
    /// goes on through the rest of the graph; every leaf in the returned [`Grads`] is
    /// reported exactly once. This is what lets data-parallel training start averaging
    /// the last layers' gradients while the first layers' are still being computed.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let w1 = Tensor::from_vec(vec![2.0f64], &[1]).requires_grad();
    /// let w2 = Tensor::from_vec(vec![3.0f64], &[1]).requires_grad();
    /// let y = (&(&w1 * &w1) * &w2).sum(); // w2 is used last, so its gradient is ready first
    /// let mut ready = Vec::new();
    /// let grads = y.try_backward_with_hook(&mut |id, g| ready.push((id, g.item()))).unwrap();
    /// assert_eq!(ready, vec![(w2.id(), 4.0), (w1.id(), 12.0)]);
    /// assert_eq!(grads[&w1].item(), 12.0);
    /// ```
    ///
    /// # Errors
    /// As [`try_backward`](Self::try_backward).
    pub fn try_backward_with_hook(
        &self,
        on_leaf_ready: &mut dyn FnMut(TensorId, &Tensor),
    ) -> Result<Grads, BackwardError> {
        if self.numel() != 1 {
            return Err(BackwardError::NotScalar {
                shape: self.shape().to_vec(),
            });
        }
        run_backward(
            self,
            self.ones_like(),
            BackwardOptions::default(),
            Some(on_leaf_ready),
        )
    }

    fn detach_if(&self, cond: bool) -> Tensor {
        if cond {
            self.detach()
        } else {
            self.clone()
        }
    }
}

/// The gradients, or a panic with the error's message at the caller's line (a closure
/// such as the one `unwrap_or_else` takes would report a line in this file instead).
#[track_caller]
fn or_panic(result: Result<Grads, BackwardError>) -> Grads {
    match result {
        Ok(grads) => grads,
        Err(e) => panic!("{e}"),
    }
}

/// `acc += g` in place (same shape), evaluating a deferred `g` straight into `acc`.
fn add_into<T: Element>(acc: &mut ArcArray<T, IxDyn>, g: &Values<T>) {
    if let Some(slice) = acc.as_slice_mut() {
        if add_assign_pending(slice, g) {
            return;
        }
    }
    add_assign(&mut acc.view_mut(), &g.force().view());
}

impl<T: Element, D: Dimension> From<ndarray::Array<T, D>> for Tensor {
    fn from(a: ndarray::Array<T, D>) -> Self {
        Tensor::from_array(a)
    }
}

impl From<f32> for Tensor {
    fn from(v: f32) -> Self {
        Tensor::scalar(v)
    }
}

impl From<f64> for Tensor {
    fn from(v: f64) -> Self {
        Tensor::scalar(v)
    }
}
