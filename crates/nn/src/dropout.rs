//! `Dropout`: seeded inverted dropout, identity in evaluation mode.

use std::sync::atomic::{AtomicU64, Ordering};

use tapegrad::Tensor;

use crate::{Module, Param};

/// Inverted dropout: in training mode each element is zeroed with probability `p` and the
/// rest scaled by `1 / (1 - p)`; in evaluation mode it is the identity. See
/// [`Tensor::dropout`]. No parameters.
///
/// Each forward call draws a fresh mask from a stream seeded by the layer's `seed` and
/// the number of calls so far, so two layers built with the same seed drop the same
/// elements call after call (reproducible runs), while successive calls differ.
/// PyTorch: `torch.nn.Dropout(p)` (which draws from the global generator instead).
///
/// ```
/// use tapegrad::{DType, Tensor};
/// use tapegrad_nn::{Dropout, Module};
/// let x = Tensor::ones(&[4, 100], DType::F32);
/// let mut drop = Dropout::new(0.5, 42);
/// let y = drop.forward(&x);
/// assert!(y.to_vec::<f32>().iter().all(|&v| v == 0.0 || v == 2.0));
/// drop.eval();
/// assert_eq!(drop.forward(&x).to_vec::<f32>(), x.to_vec::<f32>());
/// ```
#[derive(Debug)]
pub struct Dropout {
    p: f64,
    seed: u64,
    calls: AtomicU64,
    training: bool,
}

impl Dropout {
    /// Dropout with probability `p`, in training mode.
    ///
    /// # Panics
    /// If `p` is not in `[0, 1]`.
    #[track_caller]
    pub fn new(p: f64, seed: u64) -> Dropout {
        if !(0.0..=1.0).contains(&p) {
            panic!("Dropout: probability p = {p} must be in [0, 1]");
        }
        Dropout {
            p,
            seed,
            calls: AtomicU64::new(0),
            training: true,
        }
    }

    /// The drop probability.
    pub fn p(&self) -> f64 {
        self.p
    }

    /// Whether the layer is in training mode.
    pub fn is_training(&self) -> bool {
        self.training
    }

    /// The seed of the next mask, advancing the layer's stream, or `None` when the layer
    /// drops nothing (evaluation mode or `p = 0`): for layers that drop inside another
    /// op (attention weights) with this layer's stream.
    pub fn next_seed(&self) -> Option<u64> {
        if !self.training || self.p == 0.0 {
            return None;
        }
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        Some(mix(self.seed ^ mix(call)))
    }
}

impl Clone for Dropout {
    fn clone(&self) -> Self {
        Dropout {
            p: self.p,
            seed: self.seed,
            calls: AtomicU64::new(self.calls.load(Ordering::Relaxed)),
            training: self.training,
        }
    }
}

/// SplitMix64: decorrelates the per-call seeds derived from `(seed, call)`.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Module for Dropout {
    fn forward(&self, x: &Tensor) -> Tensor {
        match self.next_seed() {
            Some(seed) => x.dropout(self.p, seed),
            None => x.clone(),
        }
    }

    fn named_params(&self) -> Vec<(String, Param)> {
        Vec::new()
    }

    /// `"calls"`: how many masks the layer has drawn, its position in its random stream.
    fn named_counters(&self) -> Vec<(String, &AtomicU64)> {
        vec![("calls".into(), &self.calls)]
    }

    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}
