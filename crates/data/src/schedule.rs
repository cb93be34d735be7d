//! Batch-size schedules: grow the batch at epoch milestones, optionally scaling the
//! learning rate linearly with it (Goyal et al. 2017; Smith et al. 2018).

/// A batch size that grows at epoch milestones.
///
/// ```
/// use tapegrad_data::BatchSizeSchedule;
/// let s = BatchSizeSchedule::new(32).grow_at(5, 128).grow_at(10, 512).with_linear_lr_scaling();
/// assert_eq!(s.batch_size(0), 32);
/// assert_eq!(s.batch_size(7), 128);
/// assert_eq!(s.batch_size(12), 512);
/// assert_eq!(s.lr_factor(12), 16.0);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct BatchSizeSchedule {
    initial: usize,
    milestones: Vec<(usize, usize)>,
    linear_lr_scaling: bool,
}

impl BatchSizeSchedule {
    /// A constant batch size.
    ///
    /// # Panics
    /// If `batch_size` is 0.
    #[track_caller]
    pub fn new(batch_size: usize) -> Self {
        assert!(
            batch_size > 0,
            "BatchSizeSchedule: the batch size must be positive"
        );
        BatchSizeSchedule {
            initial: batch_size,
            milestones: Vec::new(),
            linear_lr_scaling: false,
        }
    }

    /// From epoch `epoch` on, use `batch_size`.
    ///
    /// # Panics
    /// If `batch_size` is 0 or `epoch` is not after the previous milestone.
    #[track_caller]
    pub fn grow_at(mut self, epoch: usize, batch_size: usize) -> Self {
        assert!(
            batch_size > 0,
            "BatchSizeSchedule: the batch size must be positive"
        );
        if let Some(&(last, _)) = self.milestones.last() {
            assert!(
                epoch > last,
                "BatchSizeSchedule: milestone epoch {epoch} is not after {last}"
            );
        }
        self.milestones.push((epoch, batch_size));
        self
    }

    /// Scale the learning rate by `batch_size(epoch) / initial` (the linear scaling rule).
    pub fn with_linear_lr_scaling(mut self) -> Self {
        self.linear_lr_scaling = true;
        self
    }

    /// The batch size during `epoch` (0-based).
    pub fn batch_size(&self, epoch: usize) -> usize {
        self.milestones
            .iter()
            .rev()
            .find(|(e, _)| epoch >= *e)
            .map_or(self.initial, |&(_, b)| b)
    }

    /// The factor to multiply the base learning rate by during `epoch` (1 without scaling).
    pub fn lr_factor(&self, epoch: usize) -> f64 {
        if self.linear_lr_scaling {
            self.batch_size(epoch) as f64 / self.initial as f64
        } else {
            1.0
        }
    }
}
