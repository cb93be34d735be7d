//! What a check found: [`Report`] (per input: the worst entry, its analytical and
//! numerical values and the errors) and [`GradcheckError`] (why a check failed).

use std::fmt;

use tapegrad::{BackwardError, DType};

/// Where the worst entry of an input's check sits.
#[derive(Clone, Debug, PartialEq)]
pub enum Position {
    /// Entry `d output[output] / d input[input]` of the Jacobian (full mode); both are
    /// multi-indices into the output's and the input's shape.
    Element {
        /// Index into the output.
        output: Vec<usize>,
        /// Index into the input.
        input: Vec<usize>,
    },
    /// The random projection `v · J · u` (fast mode).
    Projection,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Element { output, input } => write!(f, "d out{output:?} / d in{input:?}"),
            Position::Projection => f.write_str("v·J·u"),
        }
    }
}

/// One compared entry: analytical (backward) and numerical (finite-difference) values.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Which entry.
    pub position: Position,
    /// The value backward computed.
    pub analytical: f64,
    /// The central-difference estimate.
    pub numerical: f64,
    /// `|analytical - numerical|`.
    pub abs_error: f64,
    /// `|analytical - numerical| / max(|numerical|, atol)`: relative to the numerical
    /// value, floored at `atol` so entries that are zero up to rounding do not blow it up.
    pub rel_error: f64,
    /// `|analytical - numerical| / (atol + rtol |numerical|)`: the entry fails PyTorch's
    /// criterion when this exceeds 1.
    pub violation: f64,
}

impl Entry {
    pub(crate) fn new(
        position: Position,
        analytical: f64,
        numerical: f64,
        atol: f64,
        rtol: f64,
    ) -> Self {
        let abs_error = (analytical - numerical).abs();
        Entry {
            position,
            analytical,
            numerical,
            abs_error,
            rel_error: abs_error / numerical.abs().max(atol),
            violation: abs_error / (atol + rtol * numerical.abs()),
        }
    }

    /// Whether the entry is within tolerance.
    pub fn passed(&self) -> bool {
        self.violation <= 1.0
    }
}

/// The check of one input.
#[derive(Clone, Debug, PartialEq)]
pub struct InputReport {
    /// Position of the input in the argument list.
    pub input: usize,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Number of entries compared (Jacobian entries, or 1 in fast mode).
    pub compared: usize,
    /// The entry that violates the tolerance most (`None` if nothing was compared:
    /// an empty input or output).
    pub worst: Option<Entry>,
    /// Largest absolute error over all entries.
    pub max_abs_error: f64,
    /// Largest relative error over all entries (see [`Entry::rel_error`]).
    pub max_rel_error: f64,
}

impl InputReport {
    /// Whether every entry is within tolerance.
    pub fn passed(&self) -> bool {
        self.worst.as_ref().is_none_or(Entry::passed)
    }
}

/// Which derivative a check compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// `gradcheck`: backward against finite differences of the function.
    First,
    /// `gradgradcheck`: double backward against finite differences of the backward.
    Second,
}

/// The result of a gradient check: the options used and one [`InputReport`] per
/// checked input. [`gradcheck`](crate::gradcheck) returns it when every entry passes,
/// and inside [`GradcheckError::Mismatch`] when one does not. `Display` prints it as a
/// short table, one line per input and one for its worst entry.
///
/// ```
/// use tapegrad::Tensor;
/// use tapegrad_gradcheck::{gradcheck, Options, Position};
///
/// let x = Tensor::from_vec(vec![0.0f64, 1.0], &[2]);
/// let report = gradcheck(|t: &[Tensor]| t[0].exp(), &[x], &Options::default()).unwrap();
/// let input = &report.inputs[0];
/// assert_eq!(input.compared, 4); // the 2 x 2 Jacobian
/// let worst = input.worst.as_ref().unwrap();
/// assert!(matches!(worst.position, Position::Element { .. }));
/// assert!(worst.abs_error <= report.max_abs_error() && report.max_abs_error() < 1e-8);
/// assert!(report.to_string().contains("input 0 (shape [2]): 4 entries"));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// First or second order.
    pub order: Order,
    /// Whether fast mode (random projections) was used.
    pub fast_mode: bool,
    /// Finite-difference step.
    pub eps: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Relative tolerance.
    pub rtol: f64,
    /// Shape of the checked function's output.
    pub output_shape: Vec<usize>,
    /// One report per checked input, in input order.
    pub inputs: Vec<InputReport>,
    /// In a second-order report, the index of the random cotangent `u` among the
    /// checked function's inputs (the last one); `None` in a first-order report.
    pub cotangent: Option<usize>,
}

impl Report {
    /// Whether every checked entry of every input is within tolerance.
    pub fn passed(&self) -> bool {
        self.inputs.iter().all(InputReport::passed)
    }

    /// Largest absolute error over all inputs (0 if nothing was compared).
    pub fn max_abs_error(&self) -> f64 {
        self.inputs
            .iter()
            .map(|r| r.max_abs_error)
            .fold(0.0, f64::max)
    }

    /// Largest relative error over all inputs (0 if nothing was compared).
    pub fn max_rel_error(&self) -> f64 {
        self.inputs
            .iter()
            .map(|r| r.max_rel_error)
            .fold(0.0, f64::max)
    }

    /// The input whose worst entry violates the tolerance most.
    pub fn worst_input(&self) -> Option<&InputReport> {
        self.inputs
            .iter()
            .filter(|r| r.worst.is_some())
            .max_by(|a, b| violation(a).total_cmp(&violation(b)))
    }
}

fn violation(r: &InputReport) -> f64 {
    r.worst.as_ref().map_or(0.0, |e| e.violation)
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.order {
            Order::First => "gradcheck",
            Order::Second => "gradgradcheck",
        };
        let mode = if self.fast_mode {
            "fast mode, v·J·u"
        } else {
            "full Jacobian"
        };
        writeln!(
            f,
            "{what} ({mode}; eps {:e}, atol {:e}, rtol {:e}; output shape {:?}): {}",
            self.eps,
            self.atol,
            self.rtol,
            self.output_shape,
            if self.passed() { "passed" } else { "FAILED" }
        )?;
        for r in &self.inputs {
            let name = if self.cotangent == Some(r.input) {
                format!("input {} = the cotangent u", r.input)
            } else {
                format!("input {}", r.input)
            };
            write!(
                f,
                "  {name} (shape {:?}): {} {}, max abs error {:.3e}, max rel error {:.3e}: {}",
                r.shape,
                r.compared,
                if r.compared == 1 { "entry" } else { "entries" },
                r.max_abs_error,
                r.max_rel_error,
                if r.passed() { "ok" } else { "FAILED" }
            )?;
            if let Some(e) = &r.worst {
                write!(
                    f,
                    "\n    worst at {}: analytical {:.9e}, numerical {:.9e}, abs error {:.3e}, rel error {:.3e}",
                    e.position, e.analytical, e.numerical, e.abs_error, e.rel_error
                )?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// Which computed quantity was not finite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quantity {
    /// The function's output at the given inputs.
    Output,
    /// A gradient computed by backward.
    Analytical,
    /// A finite-difference estimate.
    Numerical,
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Quantity::Output => "the output",
            Quantity::Analytical => "the analytical (backward) gradient",
            Quantity::Numerical => "the numerical (finite-difference) gradient",
        })
    }
}

/// Why a gradient check failed.
///
/// ```
/// use tapegrad::{DType, Tensor};
/// use tapegrad_gradcheck::{gradcheck, GradcheckError, Options};
///
/// let x = Tensor::ones(&[2], DType::F32);
/// let err = gradcheck(|t: &[Tensor]| t[0].exp(), &[x], &Options::default()).unwrap_err();
/// assert_eq!(err, GradcheckError::NotF64 { input: 0, dtype: DType::F32 });
/// assert!(err.report().is_none());
/// ```
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum GradcheckError {
    /// Some entry is out of tolerance; the report names the worst one per input.
    #[error("{0}")]
    Mismatch(Box<Report>),
    /// An input is not `f64`. Central differences with `eps = 1e-6` in `f32` measure
    /// rounding noise (`f32` resolves about 1e-7 relative), so the check refuses rather
    /// than convert behind the function's back (it may build `f32` constants inside).
    #[error("gradcheck: input {input} is {dtype}; gradient checks run in f64 (convert the inputs with .to_dtype(DType::F64) and make the function compute in f64)")]
    NotF64 {
        /// Position of the input.
        input: usize,
        /// Its dtype.
        dtype: DType,
    },
    /// The function returned a non-`f64` output from `f64` inputs.
    #[error(
        "gradcheck: the function returned a {dtype} output from f64 inputs; it must compute in f64"
    )]
    OutputNotF64 {
        /// The output's dtype.
        dtype: DType,
    },
    /// `Options::inputs` names an input that does not exist.
    #[error(
        "gradcheck: Options::inputs selects input {index}, but the function takes {count} inputs"
    )]
    NoSuchInput {
        /// The selected index.
        index: usize,
        /// How many inputs there are.
        count: usize,
    },
    /// The function changed its output shape when an input was perturbed.
    #[error("gradcheck: the output shape changed from {expected:?} to {got:?} when input {input} was perturbed; the function must be deterministic in shape")]
    ShapeChanged {
        /// The input being perturbed.
        input: usize,
        /// Shape at the unperturbed point.
        expected: Vec<usize>,
        /// Shape at the perturbed point.
        got: Vec<usize>,
    },
    /// A value needed for the comparison is NaN or infinite: the inputs are at a pole or
    /// outside the function's domain, or the function or its rule is broken.
    #[error("gradcheck: {quantity} is not finite ({value}) at {position} for input {input}; check the inputs lie inside the function's domain")]
    NonFinite {
        /// What was not finite.
        quantity: Quantity,
        /// The input being checked (for [`Quantity::Output`], the input whose
        /// perturbation or value produced it, or 0).
        input: usize,
        /// Where: the Jacobian entry, the projection, or for the output, its index
        /// (`Position::Element` with an empty input index).
        position: Position,
        /// The offending value.
        value: f64,
    },
    /// The backward pass itself failed (e.g. a saved tensor was modified in place).
    #[error("gradcheck: backward failed: {0}")]
    Backward(#[from] BackwardError),
}

impl GradcheckError {
    /// The report, if the check ran to the end and found a mismatch.
    pub fn report(&self) -> Option<&Report> {
        match self {
            GradcheckError::Mismatch(r) => Some(r),
            _ => None,
        }
    }
}
