//! # tapegrad-gradcheck
//!
//! Finite-difference gradient checking for tapegrad: the tool that tells you whether a
//! backward rule is right, for tapegrad's own ops and for yours.
//!
//! - [`gradcheck`] compares the gradients backward computes with central differences,
//!   entry by entry of the Jacobian, or on random projections `v · J · u` in
//!   [fast mode](Options::fast_mode), with PyTorch's defaults (f64, `eps = 1e-6`,
//!   `atol = 1e-5`, `rtol = 1e-3`).
//! - [`gradgradcheck`] does the same for second derivatives (the gradients
//!   `backward_with_graph` records).
//! - A failed check returns [`GradcheckError::Mismatch`] with a [`Report`] naming, per
//!   input, the worst Jacobian entry, its analytical and numerical values and the errors.
//! - [`strategies`] has proptest strategies for shapes, broadcast pairs, values in a
//!   [`Domain`](tapegrad::Domain) and the inputs of any op-table row; [`ops`] checks
//!   table rows; [`ops_markdown`] generates `docs/ops.md` from the table.
//!
//! ```
//! use tapegrad::{custom_op, no_grad, Tensor};
//! use tapegrad_gradcheck::{gradcheck, gradgradcheck, Options};
//!
//! // My op: softsign(x) = x / (1 + |x|), with a hand-written rule g / (1 + |x|)^2.
//! fn softsign(x: &Tensor) -> Tensor {
//!     let value = no_grad(|| x.div(&x.abs().add_scalar(1.0)));
//!     custom_op("my_softsign", &[x], value, &[x], false, |ctx, g| {
//!         vec![Some(g.div(&ctx.saved(0).abs().add_scalar(1.0).square()))]
//!     })
//! }
//! let x = Tensor::from_vec(vec![-1.5f64, -0.3, 0.4, 2.0], &[2, 2]);
//! let f = |t: &[Tensor]| softsign(&t[0]);
//! let report = gradcheck(f, &[x.clone()], &Options::default()).unwrap();
//! println!("{report}");
//! assert!(report.max_rel_error() < 1e-6);
//! gradgradcheck(f, &[x], &Options::default()).unwrap(); // the rule differentiates again
//! ```
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod check;
mod markdown;
pub mod ops;
mod options;
mod report;
mod second;
pub mod strategies;

pub use check::gradcheck;
pub use markdown::{ops_markdown, REGENERATE};
pub use options::Options;
pub use report::{Entry, GradcheckError, InputReport, Order, Position, Quantity, Report};
pub use second::gradgradcheck;
