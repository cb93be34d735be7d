//! [`TrainerComm`]: a communicator as the `Trainer`'s data-parallel hook, so any program
//! that trains with `tapegrad_train::Trainer` becomes data parallel by setting
//! `TrainConfig::data_parallel` (as `tapegrad train --distributed` does).

use std::sync::atomic::{AtomicBool, Ordering};

use tapegrad::{DType, Grads, Tensor};
use tapegrad_nn::Param;
use tapegrad_train::DataParallel;

use crate::comm::{Comm, DistError, Pending, Reducible};
use crate::ddp::DdpOptions;

/// The collectives of `tapegrad_train::DataParallel` over a [`Comm`] (each with its
/// timeout): the `Trainer` then treats its batch size as the global batch, trains each
/// rank on its share of every batch, sums the gradients over the ranks after the local
/// backward (in buckets of [`DdpOptions::bucket_bytes`], all started before the first
/// is waited for), sums losses and evaluation results, and checkpoints on rank 0 only.
///
/// After a failed collective ([`failed`](Self::failed)) the communicator is unusable:
/// stop the job with [`Comm::abort`].
///
/// ```no_run
/// use std::sync::Arc;
/// use tapegrad_data::digits;
/// use tapegrad_dist::{Dist, TrainerComm};
/// use tapegrad_nn::{Linear, Module};
/// use tapegrad_optim::{Adam, AdamConfig};
/// use tapegrad_train::{TrainConfig, Trainer};
///
/// let dist = Dist::init().expect("run under mpirun");
/// let hook = Arc::new(TrainerComm::new(dist.world()));
/// let (train, test) = digits().unwrap().split(0.2, 0);
/// let model = Linear::new(64, 10, 0);
/// let adam = Box::new(Adam::new(model.params(), AdamConfig::default()));
/// let config = TrainConfig { epochs: 2, data_parallel: Some(hook.clone()), ..TrainConfig::default() };
/// let mut trainer = Trainer::new(model, adam, config);
/// if let Err(e) = trainer.fit(&train, None, Some(&test), |_| {}) {
///     if hook.failed() {
///         dist.world().abort(1, &e.to_string());
///     }
/// }
/// ```
pub struct TrainerComm {
    comm: Comm,
    bucket_bytes: usize,
    failed: AtomicBool,
}

impl TrainerComm {
    /// The hook over `comm`, with gradient buckets of the default 25 MiB.
    pub fn new(comm: &Comm) -> TrainerComm {
        TrainerComm {
            comm: comm.clone(),
            bucket_bytes: DdpOptions::default().bucket_bytes,
            failed: AtomicBool::new(false),
        }
    }

    /// The same with buckets of at most `bytes`.
    pub fn with_bucket_bytes(mut self, bytes: usize) -> TrainerComm {
        self.bucket_bytes = bytes.max(1);
        self
    }

    /// The communicator.
    pub fn comm(&self) -> &Comm {
        &self.comm
    }

    /// Whether a collective failed (timed out or was refused by MPI): the job must then
    /// be stopped.
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }

    fn note<T>(&self, r: Result<T, DistError>) -> Result<T, String> {
        r.map_err(|e| {
            self.failed.store(true, Ordering::SeqCst);
            e.to_string()
        })
    }

    /// Sums `flat` over the ranks in buckets, all started before the first is waited for.
    fn reduce_flat<T: Reducible>(&self, flat: Vec<T>) -> Result<Vec<T>, DistError> {
        let per = (self.bucket_bytes / std::mem::size_of::<T>()).max(1);
        let pending: Vec<Pending<T>> = flat
            .chunks(per)
            .enumerate()
            .map(|(i, c)| {
                self.comm
                    .start_all_reduce_sum(c.to_vec(), &format!("all-reduce of gradient bucket {i}"))
            })
            .collect::<Result<_, _>>()?;
        let mut out = Vec::with_capacity(flat.len());
        for p in pending {
            out.extend(p.wait()?);
        }
        Ok(out)
    }

    /// Sums the gradients of `params`, as `T`, over the ranks (zeros where a rank has
    /// none); each result has its parameter's dtype.
    fn reduce_grads<T: Reducible>(
        &self,
        grads: &mut Grads,
        params: &[&Param],
    ) -> Result<(), DistError> {
        if params.is_empty() {
            return Ok(());
        }
        let mut flat: Vec<T> = Vec::new();
        for p in params {
            match grads.get(p) {
                Some(g) => flat.extend(g.to_vec::<T>()),
                None => flat.extend(std::iter::repeat_n(T::default(), p.numel())),
            }
        }
        let flat = self.reduce_flat(flat)?;
        let mut at = 0;
        for p in params {
            let g = Tensor::from_vec(flat[at..at + p.numel()].to_vec(), p.shape());
            grads.insert(p, g.to_dtype(p.dtype()));
            at += p.numel();
        }
        Ok(())
    }
}

impl DataParallel for TrainerComm {
    fn rank(&self) -> usize {
        self.comm.rank()
    }

    fn world_size(&self) -> usize {
        self.comm.size()
    }

    fn all_reduce_sum(&self, values: &mut [f64], what: &str) -> Result<(), String> {
        self.note(self.comm.all_reduce_sum(values, what))
    }

    /// f32 gradients travel as f32, all others as f64.
    fn all_reduce_grads(&self, grads: &mut Grads, params: &[Param]) -> Result<(), String> {
        let (f32s, others): (Vec<&Param>, Vec<&Param>) =
            params.iter().partition(|p| p.dtype() == DType::F32);
        self.note(self.reduce_grads::<f32>(grads, &f32s))?;
        self.note(self.reduce_grads::<f64>(grads, &others))
    }

    fn broadcast(&self, tensors: &[Tensor]) -> Result<(), String> {
        for t in tensors {
            let mut v = t.to_vec::<f64>();
            self.note(
                self.comm
                    .broadcast(&mut v, 0, "broadcast of rank 0's weights"),
            )?;
            t.assign_(&Tensor::from_vec(v, t.shape()).to_dtype(t.dtype()));
        }
        Ok(())
    }
}
