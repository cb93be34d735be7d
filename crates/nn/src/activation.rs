//! Activation modules, one per activation op of the core: `Relu`, `LeakyRelu`, `Elu`,
//! `Selu`, `Celu`, `Gelu`, `Silu`, `Mish`, `Softsign`, `Sigmoid`, `Tanh`, `Softplus`,
//! `Hardtanh`, `Relu6`, `Hardsigmoid`, `Hardswish`, `LogSigmoid`, `Glu`, `Softmax`,
//! `LogSoftmax`, `Softmin`, and `Prelu`. Each forwards to the tensor op of the same name;
//! only `Prelu` has a parameter (its learnable slope).

use tapegrad::{DType, Tensor};

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

activation!(
    /// SELU, `scale * elu(x, alpha)` with PyTorch's fixed constants. PyTorch:
    /// `torch.nn.SELU`.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// use tapegrad_nn::{Module, Selu};
    /// assert_eq!(Selu.forward(&Tensor::from_vec(vec![1.0f64], &[1])).item(), 1.0507009873554805);
    /// ```
    Selu,
    |_s, x| x.selu()
);

activation!(
    /// CELU, `x` for `x > 0`, `alpha (e^(x/alpha) - 1)` otherwise (PyTorch default alpha
    /// 1, see [`Celu::default`]). PyTorch: `torch.nn.CELU`.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// use tapegrad_nn::{Celu, Module};
    /// let y = Celu { alpha: 2.0 }.forward(&Tensor::from_vec(vec![-2.0f64, 3.0], &[2]));
    /// assert_eq!(y.to_vec::<f64>(), vec![2.0 * ((-1.0f64).exp() - 1.0), 3.0]);
    /// ```
    Celu { alpha: f64 },
    |s, x| x.celu(s.alpha)
);

impl Default for Celu {
    fn default() -> Self {
        Celu { alpha: 1.0 }
    }
}

activation!(
    /// Mish, `x * tanh(softplus(x))`. PyTorch: `torch.nn.Mish`.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// use tapegrad_nn::{Mish, Module};
    /// assert_eq!(Mish.forward(&Tensor::from_vec(vec![0.0f32], &[1])).item(), 0.0);
    /// ```
    Mish,
    |_s, x| x.mish()
);

activation!(
    /// HardTanh, `x` clamped to `[min_val, max_val]` with gradient 0 at the bounds
    /// (PyTorch default `[-1, 1]`, see [`Hardtanh::default`]). PyTorch: `torch.nn.Hardtanh`.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// use tapegrad_nn::{Hardtanh, Module};
    /// let y = Hardtanh::default().forward(&Tensor::from_vec(vec![-2.0f32, 0.5, 3.0], &[3]));
    /// assert_eq!(y.to_vec::<f32>(), vec![-1.0, 0.5, 1.0]);
    /// ```
    Hardtanh { min_val: f64, max_val: f64 },
    |s, x| x.hardtanh(s.min_val, s.max_val)
);

impl Default for Hardtanh {
    fn default() -> Self {
        Hardtanh {
            min_val: -1.0,
            max_val: 1.0,
        }
    }
}

activation!(
    /// ReLU6, `min(max(x, 0), 6)`. PyTorch: `torch.nn.ReLU6`.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// use tapegrad_nn::{Module, Relu6};
    /// let y = Relu6.forward(&Tensor::from_vec(vec![-1.0f32, 3.0, 7.0], &[3]));
    /// assert_eq!(y.to_vec::<f32>(), vec![0.0, 3.0, 6.0]);
    /// ```
    Relu6,
    |_s, x| x.relu6()
);

activation!(
    /// Hard sigmoid, `relu6(x + 3) / 6`. PyTorch: `torch.nn.Hardsigmoid`.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// use tapegrad_nn::{Hardsigmoid, Module};
    /// let y = Hardsigmoid.forward(&Tensor::from_vec(vec![-4.0f32, 0.0, 4.0], &[3]));
    /// assert_eq!(y.to_vec::<f32>(), vec![0.0, 0.5, 1.0]);
    /// ```
    Hardsigmoid,
    |_s, x| x.hardsigmoid()
);

activation!(
    /// Hard swish, `x * relu6(x + 3) / 6`. PyTorch: `torch.nn.Hardswish`.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// use tapegrad_nn::{Hardswish, Module};
    /// let y = Hardswish.forward(&Tensor::from_vec(vec![-4.0f32, 0.0, 4.0], &[3]));
    /// assert_eq!(y.to_vec::<f32>(), vec![0.0, 0.0, 4.0]);
    /// ```
    Hardswish,
    |_s, x| x.hardswish()
);

activation!(
    /// `log(sigmoid(x))`, computed stably. PyTorch: `torch.nn.LogSigmoid`.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// use tapegrad_nn::{LogSigmoid, Module};
    /// assert_eq!(LogSigmoid.forward(&Tensor::from_vec(vec![-1000.0f32], &[1])).item(), -1000.0);
    /// ```
    LogSigmoid,
    |_s, x| x.logsigmoid()
);

activation!(
    /// Gated linear unit: the halves `a`, `b` of `dim` give `a * sigmoid(b)` (PyTorch
    /// default `dim = -1`, see [`Glu::default`]). PyTorch: `torch.nn.GLU`.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// use tapegrad_nn::{Glu, Module};
    /// let y = Glu::default().forward(&Tensor::from_vec(vec![2.0f64, 0.0], &[1, 2]));
    /// assert_eq!(y.to_vec::<f64>(), vec![1.0]);
    /// ```
    Glu { dim: isize },
    |s, x| x.glu(s.dim)
);

impl Default for Glu {
    fn default() -> Self {
        Glu { dim: -1 }
    }
}

activation!(
    /// Softmin along `dim`, `softmax(-x)`. PyTorch: `torch.nn.Softmin(dim)`.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// use tapegrad_nn::{Module, Softmin};
    /// let y = Softmin { dim: -1 }.forward(&Tensor::from_vec(vec![0.0f64, 0.0], &[1, 2]));
    /// assert_eq!(y.to_vec::<f64>(), vec![0.5, 0.5]);
    /// ```
    Softmin { dim: isize },
    |s, x| x.softmin(s.dim)
);

/// PReLU, `x` for `x > 0`, `weight * x` otherwise, with a learnable slope: one shared by
/// all channels (`num_parameters = 1`) or one per channel (dimension 1 of the input).
/// The parameter is named `weight` and starts at 0.25, as in PyTorch. PyTorch:
/// `torch.nn.PReLU(num_parameters, init)`.
///
/// ```
/// use tapegrad::{DType, Tensor};
/// use tapegrad_nn::{Module, Prelu};
/// let prelu = Prelu::new(2, DType::F64);
/// let x = Tensor::from_vec(vec![-4.0f64, -8.0, 1.0, 2.0], &[2, 2]);
/// let y = prelu.forward(&x);
/// assert_eq!(y.to_vec::<f64>(), vec![-1.0, -2.0, 1.0, 2.0]);
/// let grads = y.sum().backward();
/// assert_eq!(grads[&prelu.weight].to_vec::<f64>(), vec![-4.0, -8.0]);
/// assert_eq!(prelu.named_params()[0].0, "weight");
/// ```
#[derive(Clone, Debug)]
pub struct Prelu {
    /// `[num_parameters]`.
    pub weight: Param,
}

impl Prelu {
    /// `num_parameters` slopes (1, or the number of channels), each 0.25.
    ///
    /// # Panics
    /// If `num_parameters` is 0.
    #[track_caller]
    pub fn new(num_parameters: usize, dtype: DType) -> Prelu {
        Prelu::with_init(num_parameters, 0.25, dtype)
    }

    /// `num_parameters` slopes, each `init`.
    ///
    /// # Panics
    /// If `num_parameters` is 0.
    #[track_caller]
    pub fn with_init(num_parameters: usize, init: f64, dtype: DType) -> Prelu {
        assert!(
            num_parameters > 0,
            "Prelu: num_parameters must be at least 1"
        );
        Prelu {
            weight: Param::new(Tensor::full(&[num_parameters], init, dtype)),
        }
    }
}

impl Module for Prelu {
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        x.prelu(&self.weight)
    }
    fn named_params(&self) -> Vec<(String, Param)> {
        vec![("weight".to_string(), self.weight.clone())]
    }
}
