//! [`Options`]: step size, tolerances, full or fast mode, and which inputs to check.

/// How a gradient check runs. The defaults are PyTorch's `torch.autograd.gradcheck`
/// defaults: central differences with `eps = 1e-6`, `atol = 1e-5`, `rtol = 1e-3`, the
/// full Jacobian, and every input checked.
///
/// ```
/// use tapegrad_gradcheck::Options;
/// let o = Options::default();
/// assert_eq!((o.eps, o.atol, o.rtol, o.fast_mode), (1e-6, 1e-5, 1e-3, false));
/// let fast = Options::default().fast().only(&[1]).with_seed(7);
/// assert!(fast.fast_mode);
/// assert_eq!(fast.inputs.as_deref(), Some(&[1usize][..]));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// Step of the central difference `(f(x + eps) - f(x - eps)) / (2 eps)`.
    pub eps: f64,
    /// Absolute tolerance: an entry passes when `|analytical - numerical| <= atol + rtol * |numerical|`.
    pub atol: f64,
    /// Relative tolerance (see [`atol`](Self::atol)).
    pub rtol: f64,
    /// Check one random projection `v · J · u` per input instead of every entry of the
    /// Jacobian (PyTorch's `fast_mode`): one backward pass and two forward passes per
    /// input instead of one backward per output element and two forwards per input element.
    pub fast_mode: bool,
    /// Seed of the random vectors of fast mode and of the cotangent of
    /// [`gradgradcheck`](crate::gradgradcheck). The same seed gives the same check.
    pub seed: u64,
    /// Indices of the inputs to check (`None`: all). Inputs not listed are held constant.
    pub inputs: Option<Vec<usize>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            eps: 1e-6,
            atol: 1e-5,
            rtol: 1e-3,
            fast_mode: false,
            seed: 0,
            inputs: None,
        }
    }
}

impl Options {
    /// These options in fast mode (see [`fast_mode`](Self::fast_mode)).
    pub fn fast(mut self) -> Self {
        self.fast_mode = true;
        self
    }

    /// These options checking only the inputs at `indices`.
    pub fn only(mut self, indices: &[usize]) -> Self {
        self.inputs = Some(indices.to_vec());
        self
    }

    /// These options with another seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// These options with another finite-difference step.
    pub fn with_eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }

    /// These options with other tolerances.
    pub fn with_tolerances(mut self, atol: f64, rtol: f64) -> Self {
        self.atol = atol;
        self.rtol = rtol;
        self
    }

    /// Whether input `i` is checked.
    pub(crate) fn checks(&self, i: usize) -> bool {
        self.inputs.as_ref().is_none_or(|s| s.contains(&i))
    }
}
