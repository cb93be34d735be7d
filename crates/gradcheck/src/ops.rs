//! Checking the rows of tapegrad's op table: seeded inputs per op and case, and
//! [`check_op`], which runs [`gradcheck`] and, for rows marked `second_order`,
//! [`gradgradcheck`]. The property tests and `tapegrad gradcheck` both use it.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use rand::rngs::StdRng;
use rand::SeedableRng;
use tapegrad::{DType, OpSpec, Tensor};

use crate::check::mix;
use crate::options::Options;
use crate::report::{GradcheckError, Report};
use crate::{gradcheck, gradgradcheck};

/// Why one check of an op failed.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckFailure {
    /// The checker ran and found a problem.
    Gradcheck(GradcheckError),
    /// The op or its backward rule panicked; the panic message.
    Panicked(String),
}

impl fmt::Display for CheckFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckFailure::Gradcheck(e) => write!(f, "{e}"),
            CheckFailure::Panicked(msg) => write!(f, "panicked: {msg}"),
        }
    }
}

impl CheckFailure {
    /// The report, if the check ran to the end and found a mismatch.
    pub fn report(&self) -> Option<&Report> {
        match self {
            CheckFailure::Gradcheck(e) => e.report(),
            CheckFailure::Panicked(_) => None,
        }
    }
}

/// The outcome of checking one op at one set of inputs.
#[derive(Debug, Clone)]
pub struct OpCheck {
    /// The op's name.
    pub op: &'static str,
    /// The shapes of the inputs it was checked at.
    pub shapes: Vec<Vec<usize>>,
    /// First order ([`gradcheck`]).
    pub first: Result<Report, CheckFailure>,
    /// Second order ([`gradgradcheck`]); `None` for rows not marked `second_order`.
    pub second: Option<Result<Report, CheckFailure>>,
}

impl OpCheck {
    /// Whether every check that ran passed.
    pub fn passed(&self) -> bool {
        self.first.is_ok() && self.second.as_ref().is_none_or(Result::is_ok)
    }
}

/// The seed of case `case` of op `name` under a run seed: the same op and case get the
/// same inputs whether the op is checked alone or with the whole table.
pub fn op_seed(name: &str, seed: u64, case: u64) -> u64 {
    // FNV-1a of the name, so the seed does not depend on the op's position in the table.
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    });
    mix(mix(seed, h), case)
}

/// Inputs of op `spec` for case `case` of a run with seed `seed`, in `dtype`.
///
/// ```
/// use tapegrad::{find_op, DType};
/// use tapegrad_gradcheck::ops::sample_op_inputs;
/// let spec = find_op("add").unwrap();
/// let a = sample_op_inputs(spec, 7, 0, DType::F64);
/// let b = sample_op_inputs(spec, 7, 0, DType::F64);
/// assert_eq!(a[0].to_vec::<f64>(), b[0].to_vec::<f64>());
/// ```
pub fn sample_op_inputs(spec: &OpSpec, seed: u64, case: u64, dtype: DType) -> Vec<Tensor> {
    spec.sample_inputs(
        &mut StdRng::seed_from_u64(op_seed(spec.name, seed, case)),
        dtype,
    )
}

/// Checks op `spec` at `inputs` (`f64`): [`gradcheck`], then [`gradgradcheck`] if the
/// row is marked `second_order`. A panic in the op or a rule is caught and reported as
/// [`CheckFailure::Panicked`], so one broken op does not hide the others.
///
/// ```
/// use tapegrad::{find_op, DType};
/// use tapegrad_gradcheck::{ops::{check_op, sample_op_inputs}, Options};
/// let spec = find_op("tanh").unwrap();
/// let check = check_op(spec, &sample_op_inputs(spec, 0, 0, DType::F64), &Options::default());
/// assert!(check.passed());
/// assert!(check.second.is_some());
/// ```
pub fn check_op(spec: &OpSpec, inputs: &[Tensor], options: &Options) -> OpCheck {
    let apply = spec.apply;
    let run = |second: bool| -> Result<Report, CheckFailure> {
        let result = catch_unwind(AssertUnwindSafe(|| {
            if second {
                gradgradcheck(apply, inputs, options)
            } else {
                gradcheck(apply, inputs, options)
            }
        }));
        match result {
            Ok(r) => r.map_err(CheckFailure::Gradcheck),
            Err(payload) => Err(CheckFailure::Panicked(panic_message(payload.as_ref()))),
        }
    };
    OpCheck {
        op: spec.name,
        shapes: inputs.iter().map(|t| t.shape().to_vec()).collect(),
        first: run(false),
        second: spec.second_order.then(|| run(true)),
    }
}

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".to_string()
    }
}
