//! `DataLoader`: mini-batches in a seeded per-epoch order, with the last partial batch
//! kept or dropped, and the next batches built on a background thread.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use tapegrad::Tensor;

use crate::Dataset;

/// One mini-batch: features `[B, ...sample_shape]` (f32), class labels `[B]` (I64, as
/// `cross_entropy` takes them), and the dataset indices of its samples.
///
/// ```
/// use tapegrad_data::{Batch, InMemoryDataset};
/// let ds = InMemoryDataset::new("toy", vec![0.5, 1.5, 2.5], vec![2, 0, 1], &[1], 3);
/// let b = Batch::of(&ds, vec![2, 0]);
/// assert_eq!(b.x.to_vec::<f32>(), vec![2.5, 0.5]);
/// assert_eq!(b.y.to_vec::<i64>(), vec![1, 2]);
/// assert_eq!(b.len(), 2);
/// ```
#[derive(Clone, Debug)]
pub struct Batch {
    /// Features, shape `[B, ...sample_shape]`.
    pub x: Tensor,
    /// Class labels `[B]`, an `I64` tensor.
    pub y: Tensor,
    /// Which samples of the dataset these are.
    pub indices: Vec<usize>,
}

impl Batch {
    /// The samples `indices` of `dataset`, in that order.
    ///
    /// # Panics
    /// If an index is out of range.
    pub fn of<D: Dataset + ?Sized>(dataset: &D, indices: Vec<usize>) -> Batch {
        let d: usize = dataset.sample_shape().iter().product();
        let mut features = vec![0f32; indices.len() * d];
        for (row, &i) in features.chunks_exact_mut(d.max(1)).zip(&indices) {
            dataset.copy_features(i, &mut row[..d]);
        }
        let mut shape = vec![indices.len()];
        shape.extend_from_slice(dataset.sample_shape());
        let y: Vec<i64> = indices.iter().map(|&i| dataset.label(i) as i64).collect();
        Batch {
            x: Tensor::from_vec(features, &shape),
            y: Tensor::from_vec(y, &[indices.len()]),
            indices,
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }
}

/// Iterates over a dataset in mini-batches.
///
/// An *epoch* is one full pass over the dataset; each batch yields one *iteration*
/// (one parameter update) to a training loop. With a shuffle seed, epoch `e` visits the
/// samples in a permutation that depends only on the seed and `e`, so a run can be
/// resumed exactly; without one, in dataset order.
///
/// ```
/// use tapegrad_data::{DataLoader, InMemoryDataset};
/// let ds = InMemoryDataset::new("toy", (0..10).map(|v| v as f32).collect(), vec![0; 10], &[1], 1);
/// let loader = DataLoader::new(ds, 4).shuffle(1).drop_last(true);
/// let sizes: Vec<usize> = loader.epoch(0).map(|b| b.len()).collect();
/// assert_eq!(sizes, vec![4, 4]);
/// ```
pub struct DataLoader<D> {
    dataset: Arc<D>,
    batch_size: usize,
    seed: Option<u64>,
    drop_last: bool,
    prefetch: usize,
}

impl<D: Dataset + 'static> DataLoader<D> {
    /// A loader over `dataset` with `batch_size` samples per batch, in order, keeping the
    /// last partial batch, prefetching two batches ahead.
    ///
    /// # Panics
    /// If `batch_size` is 0.
    #[track_caller]
    pub fn new(dataset: D, batch_size: usize) -> Self {
        Self::from_arc(Arc::new(dataset), batch_size)
    }

    /// Like [`new`](Self::new) for a shared dataset.
    ///
    /// # Panics
    /// If `batch_size` is 0.
    #[track_caller]
    pub fn from_arc(dataset: Arc<D>, batch_size: usize) -> Self {
        assert!(batch_size > 0, "DataLoader: batch_size must be positive");
        DataLoader {
            dataset,
            batch_size,
            seed: None,
            drop_last: false,
            prefetch: 2,
        }
    }

    /// Shuffle every epoch with a permutation seeded by `seed` and the epoch number.
    pub fn shuffle(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Drop the last batch of an epoch if it is smaller than the batch size.
    pub fn drop_last(mut self, drop_last: bool) -> Self {
        self.drop_last = drop_last;
        self
    }

    /// Build up to `depth` batches ahead on a background thread (0: build on demand).
    pub fn prefetch(mut self, depth: usize) -> Self {
        self.prefetch = depth;
        self
    }

    /// The batch size.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Changes the batch size (for batch-size schedules; takes effect at the next epoch).
    ///
    /// # Panics
    /// If `batch_size` is 0.
    #[track_caller]
    pub fn set_batch_size(&mut self, batch_size: usize) {
        assert!(batch_size > 0, "DataLoader: batch_size must be positive");
        self.batch_size = batch_size;
    }

    /// The dataset.
    pub fn dataset(&self) -> &D {
        &self.dataset
    }

    /// Number of batches (iterations) in one epoch.
    pub fn batches_per_epoch(&self) -> usize {
        let n = self.dataset.len();
        if self.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }

    /// The order in which epoch `epoch` visits the samples ([`epoch_order`]).
    pub fn order(&self, epoch: usize) -> Vec<usize> {
        epoch_order(self.dataset.len(), self.seed, epoch)
    }

    /// The batches of epoch `epoch`.
    pub fn epoch(&self, epoch: usize) -> EpochIter {
        self.epoch_from(epoch, 0)
    }

    /// The batches of epoch `epoch` from batch `start` on (to resume a run mid-epoch).
    pub fn epoch_from(&self, epoch: usize, start: usize) -> EpochIter {
        let order = self.order(epoch);
        let n_batches = self.batches_per_epoch();
        let bs = self.batch_size;
        let chunks: Vec<Vec<usize>> = order
            .chunks(bs)
            .take(n_batches)
            .skip(start)
            .map(|c| c.to_vec())
            .collect();
        let remaining = chunks.len();
        let dataset = self.dataset.clone();
        if self.prefetch == 0 {
            let mut it = chunks.into_iter();
            return EpochIter {
                remaining,
                source: Source::OnDemand(Box::new(move || {
                    it.next().map(|idx| Batch::of(&*dataset, idx))
                })),
            };
        }
        let (tx, rx) = sync_channel(self.prefetch);
        let handle = std::thread::Builder::new()
            .name("tapegrad-prefetch".into())
            .spawn(move || {
                for idx in chunks {
                    if tx.send(Batch::of(&*dataset, idx)).is_err() {
                        break; // the iterator was dropped
                    }
                }
            })
            .expect("spawn the prefetch thread");
        EpochIter {
            remaining,
            source: Source::Prefetch(rx, Some(handle)),
        }
    }
}

/// The order in which epoch `epoch` visits `len` samples: with a seed, a permutation that
/// depends only on the seed and the epoch (so a resumed run draws the same batches);
/// without one, `0..len`. Shared by [`DataLoader`] and the trainer's loader.
///
/// ```
/// let order = tapegrad_data::epoch_order(5, Some(3), 0);
/// assert_eq!(order, tapegrad_data::epoch_order(5, Some(3), 0));
/// assert_ne!(order, tapegrad_data::epoch_order(5, Some(3), 1));
/// assert_eq!(tapegrad_data::epoch_order(3, None, 7), vec![0, 1, 2]);
/// ```
pub fn epoch_order(len: usize, seed: Option<u64>, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    if let Some(seed) = seed {
        let mixed = seed
            ^ (epoch as u64)
                .wrapping_add(1)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(mixed));
    }
    order
}

type NextFn = Box<dyn FnMut() -> Option<Batch> + Send>;

enum Source {
    OnDemand(NextFn),
    Prefetch(Receiver<Batch>, Option<JoinHandle<()>>),
}

/// The batches of one epoch (see [`DataLoader::epoch`]).
pub struct EpochIter {
    remaining: usize,
    source: Source,
}

impl Iterator for EpochIter {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let b = match &mut self.source {
            Source::OnDemand(f) => f(),
            Source::Prefetch(rx, _) => rx.recv().ok(),
        };
        if b.is_some() {
            self.remaining -= 1;
        }
        b
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for EpochIter {}

impl Drop for EpochIter {
    fn drop(&mut self) {
        if let Source::Prefetch(rx, handle) = &mut self.source {
            // Unblock the producer (its next send fails), then wait for it.
            let (_, dead) = sync_channel(0);
            drop(std::mem::replace(rx, dead));
            if let Some(h) = handle.take() {
                let _ = h.join();
            }
        }
    }
}
