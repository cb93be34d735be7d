//! # tapegrad-nn
//!
//! Building blocks for models, as `torch.nn`: the [`Module`] trait and [`Param`]; layers
//! ([`Linear`], [`Conv1d`], [`Conv2d`], [`ConvTranspose2d`], pooling, [`Upsample`], [`Flatten`], [`Dropout`],
//! batch, layer, group and RMS normalisation, [`Embedding`] and positional embeddings,
//! activation modules); recurrent cells and networks ([`RnnCell`], [`LstmCell`],
//! [`GruCell`], [`Rnn`], [`Lstm`], [`Gru`]); attention and transformers
//! ([`MultiheadAttention`], [`TransformerEncoderLayer`], [`TransformerDecoderLayer`],
//! [`TransformerEncoder`]); containers ([`Sequential`], [`Residual`]);
//! [`loss`] functions; [`init`]ialisers; safetensors weights ([`io`]); and the layers as
//! functions of their weights ([`functional`]).
//!
//! ```
//! use tapegrad::{DType, Tensor};
//! use tapegrad_nn::loss::{cross_entropy, CrossEntropyOptions};
//! use tapegrad_nn::{Linear, Module, Relu, Sequential};
//!
//! let model = Sequential::new().add(Linear::new(4, 16, 0)).add(Relu).add(Linear::new(16, 3, 1));
//! let x = Tensor::randn(&[8, 4], DType::F32, 2);
//! let y = Tensor::from_vec(vec![0i64, 1, 2, 0, 1, 2, 0, 1], &[8]);
//! let loss = cross_entropy(&model.forward(&x), &y, &CrossEntropyOptions::default());
//! let grads = loss.backward();
//! for (name, p) in model.named_params() {
//!     assert_eq!(grads[&p].shape(), p.shape(), "{name}");
//! }
//! ```
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod activation;
mod adaptive_avg_pool2d;
mod attention;
mod avg_pool2d;
mod batch_norm;
mod conv1d;
mod conv2d;
mod conv_transpose2d;
mod dropout;
mod embedding;
mod flatten;
pub mod functional;
mod group_norm;
mod gru;
mod gru_cell;
pub mod init;
pub mod io;
mod layer_norm;
mod learned_positional;
mod linear;
pub mod loss;
mod lstm;
mod lstm_cell;
mod max_pool2d;
mod module;
mod multihead_attention;
mod param;
mod recurrent;
mod residual;
mod rms_norm;
mod rnn;
mod rnn_cell;
mod sequential;
mod sinusoidal_positional;
mod transformer_decoder_layer;
mod transformer_encoder;
mod transformer_encoder_layer;
mod upsample;

pub use activation::{
    Celu, Elu, Gelu, Glu, Hardsigmoid, Hardswish, Hardtanh, LeakyRelu, LogSigmoid, LogSoftmax,
    Mish, Prelu, Relu, Relu6, Selu, Sigmoid, Silu, Softmax, Softmin, Softplus, Softsign, Tanh,
};
pub use adaptive_avg_pool2d::AdaptiveAvgPool2d;
pub use attention::{AttnDropout, AttnMask};
pub use avg_pool2d::AvgPool2d;
pub use batch_norm::{BatchNorm1d, BatchNorm2d};
pub use conv1d::{Conv1d, Conv1dOptions};
pub use conv2d::{Conv2d, Conv2dOptions};
pub use conv_transpose2d::{ConvTranspose2d, ConvTranspose2dOptions};
pub use dropout::Dropout;
pub use embedding::Embedding;
pub use flatten::Flatten;
pub use group_norm::GroupNorm;
pub use gru::Gru;
pub use gru_cell::GruCell;
pub use layer_norm::LayerNorm;
pub use learned_positional::LearnedPositionalEmbedding;
pub use linear::Linear;
pub use lstm::Lstm;
pub use lstm_cell::LstmCell;
pub use max_pool2d::MaxPool2d;
pub use module::{prefixed, Module};
pub use multihead_attention::{MhaOptions, MultiheadAttention, MultiheadAttentionOptions};
pub use param::Param;
pub use recurrent::{CellParams, CellWeights, RecurrentOptions};
pub use residual::Residual;
pub use rms_norm::RmsNorm;
pub use rnn::Rnn;
pub use rnn_cell::{RnnCell, RnnNonlinearity};
pub use sequential::Sequential;
pub use sinusoidal_positional::SinusoidalPositionalEmbedding;
pub use transformer_decoder_layer::{DecoderMasks, TransformerDecoderLayer};
pub use transformer_encoder::TransformerEncoder;
pub use transformer_encoder_layer::{
    TransformerActivation, TransformerEncoderLayer, TransformerLayerOptions,
};
pub use upsample::{Upsample, UpsampleTarget};
