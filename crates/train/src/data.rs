//! What the trainer trains on: [`Samples`] (a set of examples, each a tuple of fields)
//! drawn into [`Batch`]es of stacked fields, in a seeded order per epoch.
//!
//! A field is a tensor whose first axis is the sample (features of any shape, float
//! targets, a second input, `I64` class targets), or class indices held as `usize`s
//! ([`Field::Classes`], what a [`Dataset`] labels with). Either kind of class field
//! reaches a loss as an `I64` tensor through one place, [`Batch::classes`].

use tapegrad::Tensor;
use tapegrad_data::Dataset;

/// One field of a batch (or of a whole [`TensorDataset`]): samples along the first axis.
#[derive(Clone, Debug)]
pub enum Field {
    /// A tensor `[N, ...]`: features, a second input, float targets.
    Tensor(Tensor),
    /// One class index per sample (classification targets).
    Classes(Vec<usize>),
}

impl Field {
    /// Number of samples.
    pub fn len(&self) -> usize {
        match self {
            Field::Tensor(t) => t.shape().first().copied().unwrap_or(0),
            Field::Classes(c) => c.len(),
        }
    }

    /// Whether the field holds no sample.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The samples at `indices`, in that order.
    fn select(&self, indices: &[usize]) -> Field {
        match self {
            Field::Tensor(t) => {
                let index: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
                Field::Tensor(t.index_select(0, &Tensor::from_vec(index, &[indices.len()])))
            }
            Field::Classes(c) => Field::Classes(indices.iter().map(|&i| c[i]).collect()),
        }
    }
}

/// A mini-batch: its fields (in the order the [`Samples`] defines) and the indices of its
/// samples in the set.
#[derive(Clone, Debug)]
pub struct Batch {
    /// The fields, each with one row per sample.
    pub fields: Vec<Field>,
    /// Which samples of the set these are.
    pub indices: Vec<usize>,
}

impl Batch {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// Field `i`, which must be a tensor.
    ///
    /// # Panics
    /// If there is no field `i` or it holds class indices.
    #[track_caller]
    pub fn tensor(&self, i: usize) -> &Tensor {
        match self.fields.get(i) {
            Some(Field::Tensor(t)) => t,
            Some(Field::Classes(_)) => {
                panic!("Batch::tensor: field {i} holds class indices, not a tensor")
            }
            None => panic!(
                "Batch::tensor: no field {i} (the batch has {})",
                self.fields.len()
            ),
        }
    }

    /// Field `i` as class targets: an `I64` tensor (`[B]` for a [`Field::Classes`],
    /// the field itself for an `I64` [`Field::Tensor`]), as `cross_entropy` takes them.
    ///
    /// # Panics
    /// If there is no field `i` or it is a tensor of another dtype.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// use tapegrad_train::{Field, Samples, TensorDataset};
    /// let x = Tensor::from_vec(vec![0.5f32, 1.5, 2.5], &[3, 1]);
    /// let data = TensorDataset::new(vec![Field::Tensor(x), Field::Classes(vec![4, 0, 7])]);
    /// assert_eq!(data.batch(&[2, 0]).classes(1).to_vec::<i64>(), vec![7, 4]);
    /// ```
    #[track_caller]
    pub fn classes(&self, i: usize) -> Tensor {
        match self.fields.get(i) {
            Some(Field::Classes(c)) => {
                Tensor::from_vec(c.iter().map(|&k| k as i64).collect(), &[c.len()])
            }
            Some(Field::Tensor(t)) if t.dtype() == tapegrad::DType::I64 => t.clone(),
            Some(Field::Tensor(t)) => panic!(
                "Batch::classes: field {i} is a {} tensor of shape {:?}, not class indices (an i64 tensor or Field::Classes)",
                t.dtype(),
                t.shape()
            ),
            None => panic!(
                "Batch::classes: no field {i} (the batch has {})",
                self.fields.len()
            ),
        }
    }
}

/// A set of training examples the [`Trainer`](crate::Trainer) can draw batches from.
///
/// Every classification [`Dataset`] of `tapegrad-data` is one, with two fields: the
/// features (an `f32` tensor `[B, ...sample_shape]`) and the classes. [`TensorDataset`]
/// holds any fields.
pub trait Samples: Send + Sync {
    /// Number of examples. (Not `len`, which would clash with [`Dataset::len`] for the
    /// datasets that are both.)
    fn num_samples(&self) -> usize;
    /// The examples at `indices`, stacked into one batch.
    fn batch(&self, indices: &[usize]) -> Batch;
}

impl<D: Dataset> Samples for D {
    fn num_samples(&self) -> usize {
        self.len()
    }

    fn batch(&self, indices: &[usize]) -> Batch {
        let d: usize = self.sample_shape().iter().product();
        let mut features = vec![0f32; indices.len() * d];
        for (row, &i) in features.chunks_exact_mut(d.max(1)).zip(indices) {
            self.copy_features(i, &mut row[..d]);
        }
        let shape = [&[indices.len()][..], self.sample_shape()].concat();
        Batch {
            fields: vec![
                Field::Tensor(Tensor::from_vec(features, &shape)),
                Field::Classes(indices.iter().map(|&i| self.label(i)).collect()),
            ],
            indices: indices.to_vec(),
        }
    }
}

/// Examples held as whole fields, samples along the first axis of each (PyTorch's
/// `TensorDataset`): inputs of any shape and dtype, float targets, several inputs.
///
/// ```
/// use tapegrad::{DType, Tensor};
/// use tapegrad_train::{Field, Samples, TensorDataset};
///
/// let x = Tensor::arange(0.0, 6.0, 1.0, DType::F32).reshape(&[3, 2]);
/// let y = Tensor::from_vec(vec![10.0f32, 20.0, 30.0], &[3, 1]);
/// let data = TensorDataset::new(vec![Field::Tensor(x), Field::Tensor(y)]);
/// let batch = data.batch(&[2, 0]);
/// assert_eq!(batch.tensor(0).to_vec::<f32>(), vec![4.0, 5.0, 0.0, 1.0]);
/// assert_eq!(batch.tensor(1).to_vec::<f32>(), vec![30.0, 10.0]);
/// ```
#[derive(Clone, Debug)]
pub struct TensorDataset {
    fields: Vec<Field>,
    len: usize,
}

impl TensorDataset {
    /// Examples whose field `j` for sample `i` is row `i` of `fields[j]`.
    ///
    /// # Panics
    /// If there is no field, or the fields do not all hold the same number of samples.
    #[track_caller]
    pub fn new(fields: Vec<Field>) -> Self {
        let lens: Vec<usize> = fields.iter().map(Field::len).collect();
        assert!(!fields.is_empty(), "TensorDataset::new: no field");
        assert!(
            lens.iter().all(|&n| n == lens[0]),
            "TensorDataset::new: the fields hold different numbers of samples {lens:?}"
        );
        TensorDataset {
            len: lens[0],
            fields,
        }
    }

    /// The fields.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }
}

impl Samples for TensorDataset {
    fn num_samples(&self) -> usize {
        self.len
    }

    fn batch(&self, indices: &[usize]) -> Batch {
        Batch {
            fields: self.fields.iter().map(|f| f.select(indices)).collect(),
            indices: indices.to_vec(),
        }
    }
}
