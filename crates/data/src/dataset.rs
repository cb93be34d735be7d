//! The `Dataset` trait and `InMemoryDataset`: samples as rows of `f32` features with an
//! integer class label; splitting, subsetting and normalisation.

use rand::seq::SliceRandom;
use rand::SeedableRng;

/// A labelled classification dataset: `len()` samples, each a tensor of `sample_shape()`
/// `f32` features and a class in `0..num_classes()`.
pub trait Dataset: Send + Sync {
    /// Number of samples.
    fn len(&self) -> usize;
    /// Whether the dataset has no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Shape of one sample's features (e.g. `[64]` or `[1, 28, 28]`).
    fn sample_shape(&self) -> &[usize];
    /// Number of classes.
    fn num_classes(&self) -> usize;
    /// The class of sample `i`.
    fn label(&self, i: usize) -> usize;
    /// Writes sample `i`'s features into `out` (of length `prod(sample_shape())`).
    fn copy_features(&self, i: usize, out: &mut [f32]);
}

/// A dataset held in memory: features row-major in one `Vec<f32>`, one label per row.
#[derive(Clone, Debug, PartialEq)]
pub struct InMemoryDataset {
    name: String,
    features: Vec<f32>,
    labels: Vec<usize>,
    sample_shape: Vec<usize>,
    num_classes: usize,
}

impl InMemoryDataset {
    /// Builds a dataset from row-major features and labels.
    ///
    /// # Panics
    /// If `features.len()` is not `labels.len() * prod(sample_shape)` or a label is not
    /// below `num_classes`.
    #[track_caller]
    pub fn new(
        name: impl Into<String>,
        features: Vec<f32>,
        labels: Vec<usize>,
        sample_shape: &[usize],
        num_classes: usize,
    ) -> Self {
        let d: usize = sample_shape.iter().product();
        assert_eq!(
            features.len(),
            labels.len() * d,
            "InMemoryDataset::new: {} features for {} samples of shape {sample_shape:?}",
            features.len(),
            labels.len()
        );
        if let Some(bad) = labels.iter().find(|&&l| l >= num_classes) {
            panic!("InMemoryDataset::new: label {bad} is not below num_classes {num_classes}");
        }
        InMemoryDataset {
            name: name.into(),
            features,
            labels,
            sample_shape: sample_shape.to_vec(),
            num_classes,
        }
    }

    /// The dataset's name (used in reports).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// All features, row-major.
    pub fn features(&self) -> &[f32] {
        &self.features
    }

    /// All labels.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// Number of features per sample.
    pub fn sample_len(&self) -> usize {
        self.sample_shape.iter().product()
    }

    /// The samples at `indices`, in that order.
    ///
    /// # Panics
    /// If an index is out of range.
    pub fn subset(&self, indices: &[usize]) -> InMemoryDataset {
        let d = self.sample_len();
        let mut features = Vec::with_capacity(indices.len() * d);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            features.extend_from_slice(&self.features[i * d..(i + 1) * d]);
            labels.push(self.labels[i]);
        }
        InMemoryDataset {
            name: self.name.clone(),
            features,
            labels,
            sample_shape: self.sample_shape.clone(),
            num_classes: self.num_classes,
        }
    }

    /// Splits into two datasets after a seeded shuffle: the second holds
    /// `round(len * fraction)` samples (e.g. a validation set), the first the rest.
    ///
    /// # Panics
    /// If `fraction` is not in `[0, 1]`.
    ///
    /// ```
    /// let data = tapegrad_data::digits().unwrap();
    /// let (train, val) = data.split(0.2, 0);
    /// assert_eq!((train.len(), val.len()), (1438, 359));
    /// # use tapegrad_data::Dataset;
    /// ```
    #[track_caller]
    pub fn split(&self, fraction: f64, seed: u64) -> (InMemoryDataset, InMemoryDataset) {
        assert!(
            (0.0..=1.0).contains(&fraction),
            "split: fraction {fraction} is not in [0, 1]"
        );
        let mut order: Vec<usize> = (0..self.labels.len()).collect();
        order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
        let n_second = (self.labels.len() as f64 * fraction).round() as usize;
        let (second, first) = order.split_at(n_second);
        (self.subset(first), self.subset(second))
    }

    /// Per-feature mean and standard deviation (population), for [`normalize`](Self::normalize).
    pub fn feature_stats(&self) -> (Vec<f32>, Vec<f32>) {
        let d = self.sample_len();
        let n = self.labels.len().max(1) as f64;
        let mut mean = vec![0f64; d];
        let mut sq = vec![0f64; d];
        for row in self.features.chunks_exact(d) {
            for (j, &v) in row.iter().enumerate() {
                mean[j] += v as f64;
                sq[j] += v as f64 * v as f64;
            }
        }
        let mean: Vec<f64> = mean.iter().map(|m| m / n).collect();
        let std: Vec<f32> = sq
            .iter()
            .zip(&mean)
            .map(|(s, m)| ((s / n - m * m).max(0.0)).sqrt() as f32)
            .collect();
        (mean.iter().map(|&m| m as f32).collect(), std)
    }

    /// Maps every feature `x_j` to `(x_j - mean_j) / std_j` (a feature with zero spread is
    /// only centred). Pass the training set's statistics when normalising a test set.
    ///
    /// # Panics
    /// If the vectors do not have one entry per feature.
    #[track_caller]
    pub fn normalize(&mut self, mean: &[f32], std: &[f32]) {
        let d = self.sample_len();
        assert!(
            mean.len() == d && std.len() == d,
            "normalize: {} means and {} stds for {d} features",
            mean.len(),
            std.len()
        );
        for row in self.features.chunks_exact_mut(d) {
            for j in 0..d {
                let s = if std[j] > 0.0 { std[j] } else { 1.0 };
                row[j] = (row[j] - mean[j]) / s;
            }
        }
    }

    /// Multiplies every feature by `factor` (e.g. `1/255` for pixel bytes).
    pub fn scale(&mut self, factor: f32) {
        self.features.iter_mut().for_each(|v| *v *= factor);
    }
}

impl Dataset for InMemoryDataset {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn sample_shape(&self) -> &[usize] {
        &self.sample_shape
    }

    fn num_classes(&self) -> usize {
        self.num_classes
    }

    fn label(&self, i: usize) -> usize {
        self.labels[i]
    }

    fn copy_features(&self, i: usize, out: &mut [f32]) {
        let d = self.sample_len();
        out.copy_from_slice(&self.features[i * d..(i + 1) * d]);
    }
}
