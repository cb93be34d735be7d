//! # tapegrad-nn
//!
//! Building blocks for models: the [`Module`] trait, [`Param`], layers, losses and
//! initialisers.
#![warn(missing_docs)]

mod module;
mod param;

pub use module::Module;
pub use param::Param;
