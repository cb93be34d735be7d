//! `DistributedDataParallel`: every rank holds the whole model and a shard of each batch;
//! gradients are averaged over the ranks in buckets, each bucket's all-reduce started
//! during backward as soon as all its gradients are final.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tapegrad::{DType, Grads, Tensor, TensorId};
use tapegrad_nn::{Module, Param};

use crate::comm::{Comm, DistError, Pending, Reducible};

/// How [`DistributedDataParallel`] groups and sends gradients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DdpOptions {
    /// Largest bucket, in bytes (PyTorch's `bucket_cap_mb`); a parameter larger than this
    /// gets a bucket of its own. Default 25 MiB.
    pub bucket_bytes: usize,
    /// Start each bucket's all-reduce during backward, as soon as its gradients are final
    /// (default); `false` sends every bucket after backward (for comparison).
    pub overlap: bool,
}

impl Default for DdpOptions {
    fn default() -> Self {
        DdpOptions {
            bucket_bytes: 25 << 20,
            overlap: true,
        }
    }
}

/// Where the time of the last synchronised backward went.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SyncTimes {
    /// From the start of backward to the end of it (local gradients computed).
    pub backward: Duration,
    /// Waiting for the all-reduces after backward ended: the communication backward did
    /// not hide.
    pub exposed: Duration,
}

/// A group of parameters whose gradients travel in one all-reduce.
#[derive(Clone, Debug)]
struct Bucket {
    dtype: DType,
    /// Indices into `params`, in the order they sit in the bucket.
    members: Vec<usize>,
    /// Start of each member in the flat buffer.
    offsets: Vec<usize>,
    len: usize,
}

/// Data-parallel training (PyTorch's `DistributedDataParallel`): wraps a model that every
/// rank builds the same way.
///
/// - [`new`](Self::new) copies rank 0's parameters and buffers (batch-norm statistics)
///   to every rank, so all start from the same weights whatever their seeds.
/// - [`backward`](Self::backward) runs this rank's backward and returns the gradients
///   averaged over the ranks (`backward_scaled` weighs each rank's by its share of the
///   samples, for shards of unequal size). Gradients are grouped, last layer first, into
///   buckets of about [`DdpOptions::bucket_bytes`]; a bucket's all-reduce starts during
///   backward as soon as all its gradients are final, and buckets start in the same order
///   on every rank.
/// - [`no_sync`](Self::no_sync) computes gradients without communication, for gradient
///   accumulation: they are added in at the next synchronised backward.
///
/// Every rank then holds the same averaged gradients and, after the same optimiser step,
/// the same weights. Batch norm computes its statistics per rank (as PyTorch's default);
/// use [`SyncBatchNorm`](crate::SyncBatchNorm) for statistics over the global batch.
///
/// ```no_run
/// use tapegrad::{DType, Tensor};
/// use tapegrad_dist::{Dist, DistributedDataParallel};
/// use tapegrad_nn::loss::{mse_loss, Reduction};
/// use tapegrad_nn::{Linear, Module};
/// use tapegrad_optim::{Optimizer, Sgd, SgdConfig};
///
/// let dist = Dist::init().unwrap();
/// let mut ddp = DistributedDataParallel::new(Linear::new(4, 1, 0), dist.world()).unwrap();
/// let mut opt = Sgd::new(ddp.params(), SgdConfig { lr: 0.1, ..Default::default() });
/// let rank = dist.world().rank() as u64;
/// let (x, y) = (Tensor::randn(&[8, 4], DType::F32, rank), Tensor::randn(&[8, 1], DType::F32, 9 + rank));
/// let loss = mse_loss(&ddp.forward(&x), &y, Reduction::Mean);
/// let grads = ddp.backward(&loss).unwrap(); // averaged over the ranks
/// opt.step(&grads);
/// ```
pub struct DistributedDataParallel<M: Module> {
    module: M,
    comm: Comm,
    options: DdpOptions,
    params: Vec<Param>,
    buckets: Vec<Bucket>,
    /// Parameter id -> (bucket, member index).
    slot_of: HashMap<TensorId, (usize, usize)>,
    /// Gradients computed under `no_sync`, already scaled, waiting for the next sync.
    accumulated: Option<Grads>,
    syncing: bool,
    last_sync: SyncTimes,
}

impl<M: Module> DistributedDataParallel<M> {
    /// Wraps `module` with the default options; a collective call on every rank of `comm`.
    ///
    /// # Errors
    /// If the ranks' models differ in their parameters, or communication fails.
    pub fn new(module: M, comm: &Comm) -> Result<Self, DistError> {
        Self::with_options(module, comm, DdpOptions::default())
    }

    /// Wraps `module`: checks that every rank has the same parameter shapes, copies rank
    /// 0's parameters and buffers to the others, and lays out the buckets.
    ///
    /// # Errors
    /// If the ranks' models differ in their parameters, or communication fails.
    pub fn with_options(module: M, comm: &Comm, options: DdpOptions) -> Result<Self, DistError> {
        // Gradient buckets travel on a communicator of their own, so their order cannot
        // interleave with collectives inside the model (SyncBatchNorm, tensor parallel).
        let comm = comm.duplicate()?;
        let params = module.params();
        check_same_layout(&comm, &params, &module.named_buffers())?;
        for p in &params {
            broadcast_tensor(&comm, p, "broadcast of the initial parameters")?;
        }
        for (_, b) in module.named_buffers() {
            broadcast_tensor(&comm, &b, "broadcast of the initial buffers")?;
        }
        let buckets = layout_buckets(&params, options.bucket_bytes);
        let mut slot_of = HashMap::new();
        for (b, bucket) in buckets.iter().enumerate() {
            for (m, &p) in bucket.members.iter().enumerate() {
                slot_of.insert(params[p].id(), (b, m));
            }
        }
        Ok(DistributedDataParallel {
            module,
            comm,
            options,
            params,
            buckets,
            slot_of,
            accumulated: None,
            syncing: true,
            last_sync: SyncTimes::default(),
        })
    }

    /// The wrapped model.
    pub fn module(&self) -> &M {
        &self.module
    }

    /// The wrapped model, mutably.
    pub fn module_mut(&mut self) -> &mut M {
        &mut self.module
    }

    /// Unwraps the model.
    pub fn into_inner(self) -> M {
        self.module
    }

    /// The communicator the gradients travel on (a duplicate of the one given).
    pub fn comm(&self) -> &Comm {
        &self.comm
    }

    /// Number of gradient buckets.
    pub fn num_buckets(&self) -> usize {
        self.buckets.len()
    }

    /// Where the time of the last synchronised backward went.
    pub fn last_sync(&self) -> SyncTimes {
        self.last_sync
    }

    /// Copies rank 0's buffers (batch-norm running statistics) to every rank again, as
    /// PyTorch's `broadcast_buffers` does before each forward.
    ///
    /// # Errors
    /// If communication fails.
    pub fn broadcast_buffers(&self) -> Result<(), DistError> {
        for (_, b) in self.module.named_buffers() {
            broadcast_tensor(&self.comm, &b, "broadcast of the buffers")?;
        }
        Ok(())
    }

    /// Runs `f` with gradient synchronisation off (PyTorch's `no_sync()`): each
    /// [`backward`](Self::backward) in it returns this rank's own gradients (scaled as
    /// asked) and keeps their sum, which the next synchronised backward adds to its own
    /// before averaging. Accumulating `k` micro-batches this way costs one all-reduce.
    pub fn no_sync<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        let before = std::mem::replace(&mut self.syncing, false);
        let r = f(self);
        self.syncing = before;
        r
    }

    /// Backward of this rank's `loss`, then the gradients averaged over the ranks:
    /// [`backward_scaled`](Self::backward_scaled) with `scale = 1 / size`.
    ///
    /// # Errors
    /// If backward fails or communication fails.
    pub fn backward(&mut self, loss: &Tensor) -> Result<Grads, DistError> {
        let scale = 1.0 / self.comm.size() as f64;
        self.backward_scaled(loss, scale)
    }

    /// Backward of this rank's `loss`; returns, for every parameter (and nothing else),
    /// the sum over ranks of `scale x` each rank's gradient. With each rank's `loss` the mean over its shard of
    /// a global batch and `scale` its share of the samples ([`Shard::weight`]), that is
    /// exactly the gradient of the mean loss over the global batch, even for shards of
    /// unequal size. Under [`no_sync`](Self::no_sync), returns this rank's scaled
    /// gradients without communication.
    ///
    /// [`Shard::weight`]: crate::Shard::weight
    ///
    /// # Errors
    /// If backward fails or communication fails.
    pub fn backward_scaled(&mut self, loss: &Tensor, scale: f64) -> Result<Grads, DistError> {
        if !self.syncing {
            let mut local = loss.try_backward()?;
            local.scale(scale);
            match self.accumulated.as_mut() {
                Some(acc) => acc.add(&local),
                None => self.accumulated = Some(local.clone()),
            }
            return Ok(local);
        }
        self.sync(Some(loss), scale)
    }

    /// For a rank without samples in this step (the last, partial batch of an epoch can
    /// leave one empty): takes part in the all-reduce with zero gradients (plus any
    /// accumulated under `no_sync`) and returns the averaged gradients like the others.
    ///
    /// # Errors
    /// If communication fails.
    pub fn backward_empty(&mut self) -> Result<Grads, DistError> {
        if !self.syncing {
            return Ok(Grads::new());
        }
        self.sync(None, 0.0)
    }

    fn sync(&mut self, loss: Option<&Tensor>, scale: f64) -> Result<Grads, DistError> {
        let accumulated = self.accumulated.take().unwrap_or_default();
        let mut exchange = Exchange::new(&self.buckets, &self.comm);
        let start = Instant::now();
        match loss {
            Some(loss) if self.options.overlap => {
                let slot_of = &self.slot_of;
                let mut on_ready = |id: TensorId, g: &Tensor| {
                    if let Some(&(b, m)) = slot_of.get(&id) {
                        exchange.fill(b, m, Some(g), scale, accumulated.get_id(id));
                    }
                };
                loss.try_backward_with_hook(&mut on_ready)?;
            }
            Some(loss) => {
                let local = loss.try_backward()?;
                for (b, bucket) in self.buckets.iter().enumerate() {
                    for (m, &p) in bucket.members.iter().enumerate() {
                        let param = &self.params[p];
                        if let Some(g) = local.get(param) {
                            exchange.fill(b, m, Some(g), scale, accumulated.get_id(param.id()));
                        }
                    }
                }
            }
            None => {}
        }
        let backward = start.elapsed();
        // Parameters backward did not reach contribute zeros (plus what they accumulated).
        for (b, bucket) in self.buckets.iter().enumerate() {
            for (m, &p) in bucket.members.iter().enumerate() {
                if !exchange.has(b, m) {
                    exchange.fill(b, m, None, scale, accumulated.get_id(self.params[p].id()));
                }
            }
        }
        let reduced = exchange.finish()?;
        self.last_sync = SyncTimes {
            backward,
            exposed: start.elapsed() - backward,
        };
        let mut grads = Grads::new();
        for (bucket, flat) in self.buckets.iter().zip(&reduced) {
            for (&p, &off) in bucket.members.iter().zip(&bucket.offsets) {
                let param = &self.params[p];
                let n = param.numel();
                let g = match flat {
                    Flat::F32(v) => Tensor::from_vec(v[off..off + n].to_vec(), param.shape()),
                    Flat::F64(v) => Tensor::from_vec(v[off..off + n].to_vec(), param.shape()),
                };
                grads.insert(param, g);
            }
        }
        Ok(grads)
    }
}

impl<M: Module> Module for DistributedDataParallel<M> {
    fn forward(&self, x: &Tensor) -> Tensor {
        self.module.forward(x)
    }
    fn named_params(&self) -> Vec<(String, Param)> {
        self.module.named_params()
    }
    fn named_buffers(&self) -> Vec<(String, Tensor)> {
        self.module.named_buffers()
    }
    fn set_training(&mut self, training: bool) {
        self.module.set_training(training)
    }
}

/// Groups parameters, last first (backward produces their gradients first), into buckets
/// of one dtype and at most `bucket_bytes` (a larger parameter gets its own).
fn layout_buckets(params: &[Param], bucket_bytes: usize) -> Vec<Bucket> {
    let mut buckets: Vec<Bucket> = Vec::new();
    for (i, p) in params.iter().enumerate().rev() {
        let bytes = p.numel() * p.dtype().size_in_bytes();
        let fits = buckets.last().is_some_and(|b| {
            b.dtype == p.dtype() && (b.len * b.dtype.size_in_bytes() + bytes) <= bucket_bytes
        });
        if !fits {
            buckets.push(Bucket {
                dtype: p.dtype(),
                members: Vec::new(),
                offsets: Vec::new(),
                len: 0,
            });
        }
        let b = buckets.last_mut().expect("a bucket was just pushed");
        b.members.push(i);
        b.offsets.push(b.len);
        b.len += p.numel();
    }
    buckets
}

/// Rank 0's parameter count, total size and buffer count must match every rank's.
fn check_same_layout(
    comm: &Comm,
    params: &[Param],
    buffers: &[(String, Tensor)],
) -> Result<(), DistError> {
    let numel: usize = params.iter().map(|p| p.numel()).sum();
    let mine = [params.len() as f64, numel as f64, buffers.len() as f64];
    let mut root = mine;
    comm.broadcast(&mut root, 0, "DistributedDataParallel: layout check")?;
    if root != mine {
        return Err(comm.mismatch(format!(
            "DistributedDataParallel: this rank's model has {} parameters ({} values) and {} buffers, rank 0's {} ({}) and {}; every rank must build the same model",
            mine[0], mine[1], mine[2], root[0], root[1], root[2]
        )));
    }
    Ok(())
}

/// Overwrites `t` with rank 0's values.
fn broadcast_tensor(comm: &Comm, t: &Tensor, op: &str) -> Result<(), DistError> {
    fn go<T: Reducible>(comm: &Comm, t: &Tensor, op: &str) -> Result<(), DistError> {
        let mut v = t.to_vec::<T>();
        comm.broadcast(&mut v, 0, op)?;
        t.assign_(&Tensor::from_vec(v, t.shape()));
        Ok(())
    }
    match t.dtype() {
        DType::F32 => go::<f32>(comm, t, op),
        _ => go::<f64>(comm, t, op),
    }
}

/// A bucket's flat gradient buffer.
enum Flat {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

enum InFlight {
    F32(Pending<f32>),
    F64(Pending<f64>),
}

/// The buckets of one synchronised backward: fills them as gradients arrive and starts
/// each bucket's all-reduce, in bucket order, once it is full.
struct Exchange<'a> {
    buckets: &'a [Bucket],
    comm: &'a Comm,
    flats: Vec<Option<Flat>>,
    filled: Vec<Vec<bool>>,
    missing: Vec<usize>,
    in_flight: Vec<Option<InFlight>>,
    next_to_start: usize,
    error: Option<DistError>,
}

impl<'a> Exchange<'a> {
    fn new(buckets: &'a [Bucket], comm: &'a Comm) -> Self {
        Exchange {
            buckets,
            comm,
            flats: buckets
                .iter()
                .map(|b| {
                    Some(match b.dtype {
                        DType::F32 => Flat::F32(vec![0.0; b.len]),
                        _ => Flat::F64(vec![0.0; b.len]),
                    })
                })
                .collect(),
            filled: buckets
                .iter()
                .map(|b| vec![false; b.members.len()])
                .collect(),
            missing: buckets.iter().map(|b| b.members.len()).collect(),
            in_flight: buckets.iter().map(|_| None).collect(),
            next_to_start: 0,
            error: None,
        }
    }

    fn has(&self, b: usize, m: usize) -> bool {
        self.filled[b][m]
    }

    /// Writes `scale x grad + extra` (zeros for a missing gradient) into member `m` of
    /// bucket `b`, then starts every complete bucket whose turn it is and lets the ones
    /// in flight progress.
    fn fill(
        &mut self,
        b: usize,
        m: usize,
        grad: Option<&Tensor>,
        scale: f64,
        extra: Option<&Tensor>,
    ) {
        if self.filled[b][m] {
            return;
        }
        let off = self.buckets[b].offsets[m];
        match self.flats[b]
            .as_mut()
            .expect("a bucket is filled before it starts")
        {
            Flat::F32(v) => write_scaled(v, off, grad, scale, extra),
            Flat::F64(v) => write_scaled(v, off, grad, scale, extra),
        }
        self.filled[b][m] = true;
        self.missing[b] -= 1;
        self.start_ready();
        self.progress();
    }

    fn start_ready(&mut self) {
        while self.error.is_none()
            && self.next_to_start < self.buckets.len()
            && self.missing[self.next_to_start] == 0
        {
            let b = self.next_to_start;
            let what = format!("all-reduce of gradient bucket {b}");
            let started = match self.flats[b].take().expect("not started yet") {
                Flat::F32(v) => self.comm.start_all_reduce_sum(v, &what).map(InFlight::F32),
                Flat::F64(v) => self.comm.start_all_reduce_sum(v, &what).map(InFlight::F64),
            };
            match started {
                Ok(p) => self.in_flight[b] = Some(p),
                Err(e) => self.error = Some(e),
            }
            self.next_to_start += 1;
        }
    }

    /// MPI moves a non-blocking collective forward only inside MPI calls: poke the
    /// buckets in flight each time a gradient arrives.
    fn progress(&mut self) {
        for p in self.in_flight.iter_mut().flatten() {
            let r = match p {
                InFlight::F32(p) => p.poll(),
                InFlight::F64(p) => p.poll(),
            };
            if let Err(e) = r {
                self.error.get_or_insert(e);
            }
        }
    }

    /// Waits for every bucket and returns the reduced buffers.
    fn finish(mut self) -> Result<Vec<Flat>, DistError> {
        self.start_ready();
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let mut out = Vec::with_capacity(self.buckets.len());
        for p in self.in_flight.iter_mut() {
            out.push(match p.take().expect("every bucket started") {
                InFlight::F32(p) => Flat::F32(p.wait()?),
                InFlight::F64(p) => Flat::F64(p.wait()?),
            });
        }
        Ok(out)
    }
}

fn write_scaled<T: Reducible>(
    dst: &mut [T],
    off: usize,
    grad: Option<&Tensor>,
    scale: f64,
    extra: Option<&Tensor>,
) {
    let scale = T::of(scale);
    if let Some(g) = grad {
        g.with_view::<T, _>(|a| {
            for (d, &x) in dst[off..off + a.len()].iter_mut().zip(a.iter()) {
                *d = scale * x;
            }
        });
    }
    if let Some(e) = extra {
        e.with_view::<T, _>(|a| {
            for (d, &x) in dst[off..off + a.len()].iter_mut().zip(a.iter()) {
                *d += x;
            }
        });
    }
}
