//! Activation modules, one per activation op of the core: `Relu`, `LeakyRelu`, `Elu`,
//! `Gelu`, `Silu`, `Softsign`, `Sigmoid`, `Tanh`, `Softplus`, `Softmax`, `LogSoftmax`.
//! None has parameters; each forwards to the tensor op of the same name.

use tapegrad::Tensor;

use crate::{Module, Param};

macro_rules! activation {
    ($(#[$doc:meta])* $name:ident, |$s:ident, $x:ident| $body:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub struct $name;

        impl Module for $name {
            fn forward(&self, $x: &Tensor) -> Tensor {
                let $s = self;
                let _ = $s;
                $body
            }
            fn named_params(&self) -> Vec<(String, Param)> {
                Vec::new()
            }
        }
    };
    ($(#[$doc:meta])* $name:ident { $($field:ident: $ty:ty),* }, |$s:ident, $x:ident| $body:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub struct $name {
            $(
                #[allow(missing_docs)]
                pub $field: $ty,
            )*
        }

        impl Module for $name {
            #[track_caller]
            fn forward(&self, $x: &Tensor) -> Tensor {
                let $s = self;
                $body
            }
            fn named_params(&self) -> Vec<(String, Param)> {
                Vec::new()
            }
        }
    };
}

activation!(
    /// `max(x, 0)`, with `relu'(0) = 0`. PyTorch: `torch.nn.ReLU`.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// use tapegrad_nn::{Module, Relu};
    /// let y = Relu.forward(&Tensor::from_vec(vec![-1.0f32, 2.0], &[2]));
    /// assert_eq!(y.to_vec::<f32>(), vec![0.0, 2.0]);
    /// ```
    Relu,
    |_s, x| x.relu()
);

activation!(
    /// `x` for `x > 0`, `negative_slope * x` otherwise (PyTorch default slope 0.01, see
    /// [`LeakyRelu::default`]). PyTorch: `torch.nn.LeakyReLU`.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// use tapegrad_nn::{LeakyRelu, Module};
    /// let y = LeakyRelu { negative_slope: 0.1 }.forward(&Tensor::from_vec(vec![-1.0f64, 2.0], &[2]));
    /// assert_eq!(y.to_vec::<f64>(), vec![-0.1, 2.0]);
    /// ```
    LeakyRelu { negative_slope: f64 },
    |s, x| x.leaky_relu(s.negative_slope)
);

impl Default for LeakyRelu {
    fn default() -> Self {
        LeakyRelu {
            negative_slope: 0.01,
        }
    }
}

activation!(
    /// `x` for `x > 0`, `alpha (e^x - 1)` otherwise (PyTorch default alpha 1).
    /// PyTorch: `torch.nn.ELU`.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// use tapegrad_nn::{Elu, Module};
    /// let y = Elu { alpha: 1.0 }.forward(&Tensor::from_vec(vec![-1.0f64, 2.0], &[2]));
    /// assert!((y.to_vec::<f64>()[0] - ((-1.0f64).exp() - 1.0)).abs() < 1e-15);
    /// ```
    Elu { alpha: f64 },
    |s, x| x.elu(s.alpha)
);

impl Default for Elu {
    fn default() -> Self {
        Elu { alpha: 1.0 }
    }
}

activation!(
    /// GELU: exact `x Phi(x)`, or the tanh approximation when `tanh_approximation` is
    /// set (PyTorch's `approximate="tanh"`). PyTorch: `torch.nn.GELU`.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// use tapegrad_nn::{Gelu, Module};
    /// let y = Gelu::default().forward(&Tensor::from_vec(vec![1.0f64], &[1]));
    /// assert!((y.item() - 0.8413447460685429).abs() < 1e-12);
    /// ```
    Gelu { tanh_approximation: bool },
    |s, x| if s.tanh_approximation { x.gelu_tanh() } else { x.gelu() }
);

// Spelled out rather than derived: the default is PyTorch's (the exact form).
#[allow(clippy::derivable_impls)]
impl Default for Gelu {
    fn default() -> Self {
        Gelu {
            tanh_approximation: false,
        }
    }
}

activation!(
    /// SiLU / swish, `x * sigmoid(x)`. PyTorch: `torch.nn.SiLU`.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// use tapegrad_nn::{Module, Silu};
    /// assert_eq!(Silu.forward(&Tensor::from_vec(vec![0.0f32], &[1])).item(), 0.0);
    /// ```
    Silu,
    |_s, x| x.silu()
);

activation!(
    /// `x / (1 + |x|)`. PyTorch: `torch.nn.Softsign`.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// use tapegrad_nn::{Module, Softsign};
    /// assert_eq!(Softsign.forward(&Tensor::from_vec(vec![1.0f32], &[1])).item(), 0.5);
    /// ```
    Softsign,
    |_s, x| x.softsign()
);

activation!(
    /// `1 / (1 + e^-x)`. PyTorch: `torch.nn.Sigmoid`.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// use tapegrad_nn::{Module, Sigmoid};
    /// assert_eq!(Sigmoid.forward(&Tensor::from_vec(vec![0.0f32], &[1])).item(), 0.5);
    /// ```
    Sigmoid,
    |_s, x| x.sigmoid()
);

activation!(
    /// Hyperbolic tangent. PyTorch: `torch.nn.Tanh`.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// use tapegrad_nn::{Module, Tanh};
    /// assert_eq!(Tanh.forward(&Tensor::from_vec(vec![0.0f32], &[1])).item(), 0.0);
    /// ```
    Tanh,
    |_s, x| x.tanh()
);

activation!(
    /// `ln(1 + e^x)`, computed stably. PyTorch: `torch.nn.Softplus` (with `beta = 1`).
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// use tapegrad_nn::{Module, Softplus};
    /// assert_eq!(Softplus.forward(&Tensor::from_vec(vec![1000.0f32], &[1])).item(), 1000.0);
    /// ```
    Softplus,
    |_s, x| x.softplus()
);

activation!(
    /// Softmax along `dim` (stable for any finite input). PyTorch: `torch.nn.Softmax(dim)`.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// use tapegrad_nn::{Module, Softmax};
    /// let y = Softmax { dim: -1 }.forward(&Tensor::from_vec(vec![0.0f64, 0.0], &[1, 2]));
    /// assert_eq!(y.to_vec::<f64>(), vec![0.5, 0.5]);
    /// ```
    Softmax { dim: isize },
    |s, x| x.softmax(s.dim)
);

activation!(
    /// Log-softmax along `dim`. PyTorch: `torch.nn.LogSoftmax(dim)`.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// use tapegrad_nn::{LogSoftmax, Module};
    /// let y = LogSoftmax { dim: 1 }.forward(&Tensor::from_vec(vec![0.0f64, 0.0], &[1, 2]));
    /// assert!((y.to_vec::<f64>()[0] + 2f64.ln()).abs() < 1e-15);
    /// ```
    LogSoftmax { dim: isize },
    |s, x| x.log_softmax(s.dim)
);
