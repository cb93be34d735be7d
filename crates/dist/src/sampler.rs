//! `DistributedSampler`: each rank's share of every global batch of a [`DataLoader`]
//! epoch, so `np` ranks together see exactly the samples one process sees.

use tapegrad_data::{Batch, DataLoader, Dataset};

/// This rank's share of one global batch.
#[derive(Clone, Debug)]
pub struct Shard {
    /// This rank's samples (possibly none in the last, partial batch of an epoch).
    pub batch: Batch,
    /// Samples in the whole global batch, over all ranks.
    pub global_len: usize,
}

impl Shard {
    /// This rank's fraction of the global batch, `batch.len() / global_len`: the weight of
    /// its mean loss in the global mean (see
    /// [`DistributedDataParallel::backward_scaled`](crate::DistributedDataParallel::backward_scaled)).
    pub fn weight(&self) -> f64 {
        self.batch.len() as f64 / self.global_len.max(1) as f64
    }
}

/// Shards a [`DataLoader`]'s epochs over `world_size` ranks.
///
/// The loader is the one a single process would use, with the *global* batch size `B`,
/// its shuffle seed and `drop_last`. Epoch `e` visits the loader's own permutation
/// ([`DataLoader::order`]) in the loader's global batches; rank `r` takes the samples at
/// positions `r, r + np, r + 2 np, ...` of each global batch. So at every iteration the
/// ranks' shards (about `B / np` samples each) together are exactly the batch one
/// process sees at batch size `B`, and a shard's size differs from another's by at most
/// one (only in a last, partial batch). Like PyTorch's `DistributedSampler` with the
/// loader's batching applied first, without padding: nothing is seen twice.
///
/// ```
/// use tapegrad_data::{DataLoader, InMemoryDataset};
/// use tapegrad_dist::DistributedSampler;
/// let ds = InMemoryDataset::new("toy", (0..10).map(|v| v as f32).collect(), vec![0; 10], &[1], 1);
/// let loader = DataLoader::new(ds, 4).shuffle(3);
/// let single: Vec<Vec<usize>> = loader.epoch(0).map(|b| b.indices).collect();
/// let ranks: Vec<Vec<_>> = (0..2)
///     .map(|r| DistributedSampler::new(&loader, r, 2).epoch(0).collect())
///     .collect();
/// for (i, batch) in single.iter().enumerate() {
///     let mut union: Vec<usize> = ranks.iter().flat_map(|s| s[i].batch.indices.clone()).collect();
///     let mut expected = batch.clone();
///     union.sort();
///     expected.sort();
///     assert_eq!(union, expected);
///     assert_eq!(ranks[0][i].global_len, batch.len());
/// }
/// ```
pub struct DistributedSampler<'a, D> {
    loader: &'a DataLoader<D>,
    rank: usize,
    world_size: usize,
}

impl<'a, D: Dataset + 'static> DistributedSampler<'a, D> {
    /// The share of rank `rank` of `world_size` of `loader`'s epochs (the loader's batch
    /// size is the global batch).
    ///
    /// # Panics
    /// If `rank >= world_size` or `world_size` is 0.
    #[track_caller]
    pub fn new(loader: &'a DataLoader<D>, rank: usize, world_size: usize) -> Self {
        assert!(
            rank < world_size,
            "DistributedSampler: rank {rank} is not below world size {world_size}"
        );
        DistributedSampler {
            loader,
            rank,
            world_size,
        }
    }

    /// This rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Number of ranks.
    pub fn world_size(&self) -> usize {
        self.world_size
    }

    /// Iterations (global batches) in one epoch, the same on every rank.
    pub fn batches_per_epoch(&self) -> usize {
        self.loader.batches_per_epoch()
    }

    /// The dataset indices of this rank's share of each global batch of epoch `epoch`.
    pub fn shard_indices(&self, epoch: usize) -> Vec<(Vec<usize>, usize)> {
        let order = self.loader.order(epoch);
        order
            .chunks(self.loader.batch_size())
            .take(self.loader.batches_per_epoch())
            .map(|global| {
                let mine = global
                    .iter()
                    .skip(self.rank)
                    .step_by(self.world_size)
                    .copied()
                    .collect();
                (mine, global.len())
            })
            .collect()
    }

    /// This rank's shards of epoch `epoch`, built on demand.
    pub fn epoch(&self, epoch: usize) -> impl Iterator<Item = Shard> + '_ {
        self.epoch_from(epoch, 0)
    }

    /// Like [`epoch`](Self::epoch) from global batch `start` on (to resume mid-epoch).
    pub fn epoch_from(&self, epoch: usize, start: usize) -> impl Iterator<Item = Shard> + '_ {
        let dataset = self.loader.dataset();
        self.shard_indices(epoch)
            .into_iter()
            .skip(start)
            .map(move |(indices, global_len)| Shard {
                batch: Batch::of(dataset, indices),
                global_len,
            })
    }
}
