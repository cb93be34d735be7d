//! W1 `mlp_train` and W5 `conv_train`: one training step (forward, cross-entropy,
//! backward, SGD update) of the models defined in `docs/benchmarks.md`.

use rand::{Rng, SeedableRng};
use tapegrad::{DType, Tensor};
use tapegrad_nn::{Conv2d, Conv2dOptions, Flatten, Linear, MaxPool2d, Module, Relu, Sequential};
use tapegrad_optim::{Sgd, SgdConfig};
use tapegrad_train::{Batch, Field, TrainConfig, Trainer};

/// A model, its SGD optimiser (lr 0.01) and one fixed batch, trained by the trainer's
/// [`Trainer::step`] with cross-entropy.
pub struct TrainStep {
    trainer: Trainer<Sequential>,
    batch: [Batch; 1],
}

impl TrainStep {
    fn new(model: Sequential, x_shape: &[usize], seed: u64) -> Self {
        let optimizer = Sgd::new(
            model.params(),
            SgdConfig {
                lr: 0.01,
                ..SgdConfig::default()
            },
        );
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let y = (0..x_shape[0]).map(|_| rng.gen_range(0..10)).collect();
        let batch = Batch {
            fields: vec![
                Field::Tensor(Tensor::randn(x_shape, DType::F32, seed)),
                Field::Classes(y),
            ],
            indices: (0..x_shape[0]).collect(),
        };
        TrainStep {
            trainer: Trainer::new(model, Box::new(optimizer), TrainConfig::default()),
            batch: [batch],
        }
    }

    /// W1: MLP 784 -> 512 -> 256 -> 10 with ReLU, on a batch of `batch` N(0, 1) inputs.
    pub fn mlp(batch: usize) -> Self {
        let model = Sequential::new()
            .add(Linear::new(784, 512, 1))
            .add(Relu)
            .add(Linear::new(512, 256, 2))
            .add(Relu)
            .add(Linear::new(256, 10, 3));
        TrainStep::new(model, &[batch, 784], 0)
    }

    /// W5: Conv2d(1 -> 16, 3x3, padding 1) + ReLU + MaxPool 2 + Linear(16*14*14 -> 10), on
    /// a batch of `batch` 1x28x28 N(0, 1) images.
    pub fn conv(batch: usize) -> Self {
        let pad = Conv2dOptions {
            padding: [1, 1],
            ..Conv2dOptions::default()
        };
        let model = Sequential::new()
            .add(Conv2d::with_options(1, 16, [3, 3], pad, 1))
            .add(Relu)
            .add(MaxPool2d::new(2))
            .add(Flatten::new())
            .add(Linear::new(16 * 14 * 14, 10, 2));
        TrainStep::new(model, &[batch, 1, 28, 28], 0)
    }

    /// Samples per step.
    pub fn batch(&self) -> usize {
        self.batch[0].len()
    }

    /// One step ([`Trainer::step`] on the fixed batch); returns the loss before the
    /// update.
    pub fn run(&mut self) -> f32 {
        let stepped = self
            .trainer
            .step(&self.batch)
            .expect("the workload's loss and gradients are finite");
        stepped.loss as f32
    }
}

#[cfg(test)]
mod tests {
    use super::TrainStep;

    #[test]
    fn steps_reduce_the_loss_on_a_fixed_batch() {
        for mut w in [TrainStep::mlp(8), TrainStep::conv(4)] {
            let first = w.run();
            // 10 classes at random initialisation: the loss starts near ln 10.
            assert!((first - 10f32.ln()).abs() < 1.0, "{first}");
            let mut last = first;
            for _ in 0..30 {
                last = w.run();
            }
            assert!(
                last < first,
                "SGD on one fixed batch must lower its loss: {first} -> {last}"
            );
        }
    }
}
