//! The `Optimizer` trait every optimiser implements.

use std::path::Path;

use tapegrad::Grads;
use tapegrad_nn::Param;

use crate::error::OptimError;
use crate::state::StateDict;

/// An optimiser: updates its parameters in place from the gradients of one backward pass.
///
/// Learning rates are per parameter group; [`lr`](Self::lr) and [`set_lr`](Self::set_lr)
/// are shorthands for "group 0" and "every group". The state (step counts, moment
/// buffers) saves and loads so that a resumed run continues exactly.
///
/// ```
/// use tapegrad::Tensor;
/// use tapegrad_nn::Param;
/// use tapegrad_optim::{Adam, AdamConfig, Optimizer};
/// let w = Param::new(Tensor::from_vec(vec![1.0f64, -2.0], &[2]));
/// let mut opt: Box<dyn Optimizer> = Box::new(Adam::new([w.clone()], AdamConfig::default()));
/// let grads = (&*w * &*w).sum().backward();
/// opt.step(&grads);
/// // the first Adam step moves every coordinate by lr against the sign of its gradient
/// assert!((w.to_vec::<f64>()[0] - (1.0 - 1e-3)).abs() < 1e-9);
/// assert!((w.to_vec::<f64>()[1] - (-2.0 + 1e-3)).abs() < 1e-9);
/// opt.set_lr(0.5);
/// assert_eq!(opt.lr(), 0.5);
/// ```
pub trait Optimizer {
    /// The optimiser's name (`"Adam"`), recorded in its state.
    fn name(&self) -> &'static str;

    /// One update of every parameter that has a gradient in `grads`; parameters without
    /// one are left alone (as PyTorch skips `grad is None`).
    ///
    /// # Panics
    /// If a gradient's shape or dtype differs from its parameter's.
    fn step(&mut self, grads: &Grads);

    /// Number of parameter groups.
    fn num_groups(&self) -> usize;

    /// The learning rate of group `group`.
    ///
    /// # Panics
    /// If `group` is out of range.
    fn group_lr(&self, group: usize) -> f64;

    /// Sets the learning rate of group `group`.
    ///
    /// # Panics
    /// If `group` is out of range or `lr` is negative.
    fn set_group_lr(&mut self, group: usize, lr: f64);

    /// The weight decay of group `group`.
    ///
    /// # Panics
    /// If `group` is out of range.
    fn group_weight_decay(&self, group: usize) -> f64;

    /// The learning rate of group 0.
    fn lr(&self) -> f64 {
        self.group_lr(0)
    }

    /// Sets the learning rate of every group.
    fn set_lr(&mut self, lr: f64) {
        for g in 0..self.num_groups() {
            self.set_group_lr(g, lr);
        }
    }

    /// Every parameter, group 0 first (the numbering of the state).
    fn params(&self) -> Vec<Param>;

    /// The hyper-parameters of every group and the state of every parameter.
    fn state_dict(&self) -> StateDict;

    /// Restores a state from [`state_dict`](Self::state_dict): hyper-parameters (including
    /// learning rates) and per-parameter state. The groups must have the same sizes, and
    /// every buffer the shape and dtype of its parameter; otherwise nothing is loaded and
    /// the error names the mismatch.
    fn load_state_dict(&mut self, state: &StateDict) -> Result<(), OptimError>;

    /// Saves the state to a safetensors file, atomically (see [`StateDict::save`]).
    fn save(&self, path: &Path) -> Result<(), OptimError> {
        self.state_dict().save(path)
    }

    /// Loads the state from a file written by [`save`](Self::save); errors name the file.
    fn load(&mut self, path: &Path) -> Result<(), OptimError> {
        let state = StateDict::load(path)?;
        self.load_state_dict(&state).map_err(|e| e.in_file(path))
    }
}
