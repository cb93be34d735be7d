//! Layers as functions of their inputs and weights, as `torch.nn.functional`: the same
//! code the layers run, with any tensors as the weights (gradient checks, weight sharing,
//! meta-learning). Each function is documented where its layer lives.

pub use crate::attention::{attention_with_weights, scaled_dot_product_attention};
pub use crate::conv1d::conv1d;
pub use crate::embedding::embedding;
pub use crate::group_norm::group_norm;
pub use crate::gru_cell::gru_cell;
pub use crate::lstm_cell::lstm_cell;
pub use crate::multihead_attention::{multi_head_attention, MhaWeights};
pub use crate::rms_norm::rms_norm;
pub use crate::rnn_cell::rnn_cell;
