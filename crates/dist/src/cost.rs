//! A cost model of data-parallel training on a cluster: ring all-reduce time, the part of
//! it that backward does not hide, the scaling efficiency that follows, and the batch
//! size a model needs to keep a target efficiency. Pure arithmetic, no MPI.

/// A network link between nodes: bandwidth and per-message latency.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Link {
    /// Bytes per second one node can send (and receive at the same time).
    pub bytes_per_s: f64,
    /// Seconds per message (software and wire latency).
    pub latency_s: f64,
}

impl Link {
    /// A link of `gbit` Gbit/s with `latency_us` microseconds per message.
    ///
    /// ```
    /// let link = tapegrad_dist::cost::Link::gbit(10.0, 25.0);
    /// assert_eq!(link.bytes_per_s, 1.25e9);
    /// assert_eq!(link.latency_s, 25e-6);
    /// ```
    pub fn gbit(gbit: f64, latency_us: f64) -> Link {
        Link {
            bytes_per_s: gbit * 1e9 / 8.0,
            latency_s: latency_us / 1e6,
        }
    }
}

/// Seconds a ring all-reduce of `bytes` takes over `nodes` nodes:
/// `2 (N - 1) / N x bytes / bandwidth + 2 (N - 1) x latency`. A ring all-reduce is a
/// reduce-scatter and an all-gather, each `N - 1` steps in which every node sends a
/// `1 / N` share of the data to its neighbour, so each node sends `2 (N - 1) / N` of the
/// bytes in `2 (N - 1)` messages. One node needs no communication.
///
/// ```
/// use tapegrad_dist::cost::{ring_all_reduce_seconds, Link};
/// let link = Link { bytes_per_s: 1e9, latency_s: 1e-5 };
/// // 4 nodes: 1.5 x 1 MB / 1 GB/s + 6 x 10 us
/// let t = ring_all_reduce_seconds(1e6, 4, &link);
/// assert!((t - (1.5e-3 + 6e-5)).abs() < 1e-12);
/// assert_eq!(ring_all_reduce_seconds(1e6, 1, &link), 0.0);
/// ```
pub fn ring_all_reduce_seconds(bytes: f64, nodes: usize, link: &Link) -> f64 {
    if nodes <= 1 {
        return 0.0;
    }
    let n = nodes as f64;
    2.0 * (n - 1.0) / n * bytes / link.bytes_per_s + 2.0 * (n - 1.0) * link.latency_s
}

/// One training step of a model on one node, as the cost model sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct StepModel {
    /// A name for tables.
    pub name: String,
    /// Number of parameters (each one gradient to average).
    pub params: usize,
    /// Bytes per gradient element (4 for f32).
    pub bytes_per_param: usize,
    /// Compute seconds per sample (forward, backward, update), measured on one node.
    pub seconds_per_sample: f64,
    /// Compute seconds per step that do not depend on the batch (optimiser update, op
    /// overheads), measured.
    pub seconds_per_step: f64,
    /// Fraction of the compute that is backward: the time buckets can overlap with.
    pub backward_fraction: f64,
    /// Number of gradient buckets (each an all-reduce of its own).
    pub buckets: usize,
}

impl StepModel {
    /// Compute seconds of one step at `local_batch` samples per node.
    pub fn compute_seconds(&self, local_batch: usize) -> f64 {
        self.seconds_per_step + self.seconds_per_sample * local_batch as f64
    }

    /// Seconds of all-reduce per step over `nodes` nodes (every bucket, none hidden).
    pub fn all_reduce_seconds(&self, nodes: usize, link: &Link) -> f64 {
        let bytes = (self.params * self.bytes_per_param) as f64;
        let buckets = self.buckets.max(1) as f64;
        buckets * ring_all_reduce_seconds(bytes / buckets, nodes, link)
    }

    /// Seconds of all-reduce that backward does not hide: buckets overlap with backward,
    /// except the last one, which can only start when backward ends.
    pub fn exposed_seconds(&self, nodes: usize, link: &Link, local_batch: usize) -> f64 {
        let total = self.all_reduce_seconds(nodes, link);
        let last = total / self.buckets.max(1) as f64;
        let hidden_by = self.backward_fraction * self.compute_seconds(local_batch);
        (total - hidden_by).max(last)
    }

    /// Scaling efficiency at `nodes` nodes with `local_batch` samples each (weak scaling):
    /// the step's compute over the whole step, so `N` nodes do `efficiency x N` times the
    /// work of one in the same time.
    ///
    /// ```
    /// use tapegrad_dist::cost::{Link, StepModel};
    /// let mlp = StepModel {
    ///     name: "mlp".into(), params: 1_000_000, bytes_per_param: 4,
    ///     seconds_per_sample: 1e-5, seconds_per_step: 0.0, backward_fraction: 0.0, buckets: 1,
    /// };
    /// let link = Link { bytes_per_s: 1e9, latency_s: 0.0 };
    /// // 2 nodes: 4 MB all-reduced in 4 ms; 400 samples compute 4 ms: efficiency 1/2
    /// assert!((mlp.efficiency(2, &link, 400) - 0.5).abs() < 1e-12);
    /// assert_eq!(mlp.efficiency(1, &link, 400), 1.0);
    /// ```
    pub fn efficiency(&self, nodes: usize, link: &Link, local_batch: usize) -> f64 {
        let compute = self.compute_seconds(local_batch);
        compute / (compute + self.exposed_seconds(nodes, link, local_batch))
    }

    /// The smallest batch per node (up to 2^20) at which the efficiency at `nodes` nodes
    /// reaches `target`, or `None` if no batch does.
    pub fn local_batch_for(&self, nodes: usize, link: &Link, target: f64) -> Option<usize> {
        let reaches = |b: usize| self.efficiency(nodes, link, b) >= target;
        let max = 1usize << 20;
        if !reaches(max) {
            return None;
        }
        // Efficiency grows with the batch: bisect for the first batch that reaches it.
        let (mut lo, mut hi) = (1usize, max);
        if reaches(lo) {
            return Some(lo);
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if reaches(mid) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        Some(hi)
    }
}
