//! The models the CLI trains: an MLP and a small CNN (2 conv + pooling), built for a
//! dataset's sample shape and class count; and the language models of `lm.rs`.

use tapegrad::Tensor;

use crate::lm::LmKind;
use tapegrad_nn::{
    Conv2d, Conv2dOptions, Dropout, Flatten, Linear, MaxPool2d, Module, Param, Relu, Sequential,
};

/// Which model to train.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    /// Multi-layer perceptron: flatten, 256 and 128 hidden ReLU units.
    Mlp,
    /// Conv(32, 3x3) + ReLU + MaxPool 2, Conv(64, 3x3) + ReLU + MaxPool 2, Linear 128, Linear.
    Cnn,
    /// Text: a decoder-only transformer (causal self-attention), --d-model, --layers,
    /// --heads, --positions, --tied.
    Transformer,
    /// Text: embedding, LSTM (--d-model hidden units, --layers), linear head.
    Lstm,
}

impl Arch {
    /// Which language model this is, if it is one.
    pub fn language_model(self) -> Option<LmKind> {
        match self {
            Arch::Mlp | Arch::Cnn => None,
            Arch::Transformer => Some(LmKind::Transformer),
            Arch::Lstm => Some(LmKind::Lstm),
        }
    }
}

/// Reshapes each sample to a fixed shape (e.g. 64 digit pixels to a 1x8x8 image).
struct Reshape(Vec<isize>);

impl Module for Reshape {
    fn forward(&self, x: &Tensor) -> Tensor {
        let mut shape = vec![x.shape()[0] as isize];
        shape.extend_from_slice(&self.0);
        x.reshape(&shape)
    }

    fn named_params(&self) -> Vec<(String, Param)> {
        Vec::new()
    }
}

/// Builds `arch` for samples of `sample_shape` and `classes` outputs, seeded.
///
/// # Errors
/// If the CNN cannot take these samples: they must be square single-channel images (or
/// flat vectors of a square length) at least 4 pixels on a side, for its two poolings;
/// or `arch` is a language model (built by `LmArgs::build`).
pub fn build(
    arch: Arch,
    sample_shape: &[usize],
    classes: usize,
    dropout: f64,
    seed: u64,
) -> Result<Sequential, String> {
    let d: usize = sample_shape.iter().product();
    // Dropout after each hidden layer's activation (none at p = 0).
    let hidden = |s: Sequential, i: u64| {
        if dropout > 0.0 {
            s.add(Dropout::new(dropout, seed + 100 + i))
        } else {
            s
        }
    };
    match arch {
        Arch::Transformer | Arch::Lstm => Err(format!(
            "--model {}: a language model trains on --dataset text",
            crate::train::name(arch)
        )),
        Arch::Mlp => {
            let s = Sequential::new()
                .add(Flatten::new())
                .add(Linear::new(d, 256, seed))
                .add(Relu);
            let s = hidden(s, 0).add(Linear::new(256, 128, seed + 1)).add(Relu);
            Ok(hidden(s, 1).add(Linear::new(128, classes, seed + 2)))
        }
        Arch::Cnn => {
            // Square single-channel images; flat vectors of a square size are reshaped.
            let side = match sample_shape {
                [1, h, w] if h == w => *h,
                _ => (d as f64).sqrt().round() as usize,
            };
            if side * side != d {
                return Err(format!(
                    "--model cnn: samples of shape {sample_shape:?} are not square single-channel images"
                ));
            }
            if side < 4 {
                return Err(format!(
                    "--model cnn: {side}x{side} images are too small for its two 2x2 poolings (at least 4x4)"
                ));
            }
            let pad = Conv2dOptions {
                padding: [1, 1],
                ..Conv2dOptions::default()
            };
            let pooled = side / 4;
            let s = Sequential::new()
                .add(Reshape(vec![1, side as isize, side as isize]))
                .add(Conv2d::with_options(1, 32, [3, 3], pad, seed))
                .add(Relu)
                .add(MaxPool2d::new(2))
                .add(Conv2d::with_options(32, 64, [3, 3], pad, seed + 1))
                .add(Relu)
                .add(MaxPool2d::new(2))
                .add(Flatten::new())
                .add(Linear::new(64 * pooled * pooled, 128, seed + 2))
                .add(Relu);
            Ok(hidden(s, 0).add(Linear::new(128, classes, seed + 3)))
        }
    }
}
