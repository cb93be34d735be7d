//! Initialisers (PyTorch's `torch.nn.init`): constant, uniform, normal, Xavier/Glorot,
//! He/Kaiming and orthogonal, each a seeded function returning a new tensor. Set a
//! parameter with `param.set(&init::xavier_uniform(param.shape(), 1.0, param.dtype(), seed))`.
//!
//! Fans follow PyTorch: for a weight of shape `[out, in, k1, k2, ...]`,
//! `fan_in = in * k1 * k2 * ...` and `fan_out = out * k1 * k2 * ...`.

use tapegrad::{DType, Tensor};

/// Which fan Kaiming initialisation preserves the variance of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FanMode {
    /// Preserve the variance of the activations in the forward pass (PyTorch's default).
    FanIn,
    /// Preserve the variance of the gradients in the backward pass.
    FanOut,
}

/// The nonlinearity an initialiser's gain is computed for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Nonlinearity {
    /// Identity / linear / convolution: gain 1.
    Linear,
    /// Logistic sigmoid: gain 1.
    Sigmoid,
    /// Hyperbolic tangent: gain 5/3.
    Tanh,
    /// ReLU: gain `sqrt(2)`.
    Relu,
    /// Leaky ReLU with the given negative slope: gain `sqrt(2 / (1 + slope^2))`.
    LeakyRelu(f64),
    /// SELU: gain 3/4.
    Selu,
}

/// The recommended gain for `nonlinearity` (PyTorch's `calculate_gain`).
///
/// ```
/// use tapegrad_nn::init::{calculate_gain, Nonlinearity};
/// assert_eq!(calculate_gain(Nonlinearity::Relu), 2f64.sqrt());
/// assert!((calculate_gain(Nonlinearity::LeakyRelu(5f64.sqrt())) - (1.0f64 / 3.0).sqrt()).abs() < 1e-15);
/// ```
pub fn calculate_gain(nonlinearity: Nonlinearity) -> f64 {
    match nonlinearity {
        Nonlinearity::Linear | Nonlinearity::Sigmoid => 1.0,
        Nonlinearity::Tanh => 5.0 / 3.0,
        Nonlinearity::Relu => 2f64.sqrt(),
        Nonlinearity::LeakyRelu(slope) => (2.0 / (1.0 + slope * slope)).sqrt(),
        Nonlinearity::Selu => 0.75,
    }
}

/// `(fan_in, fan_out)` of a weight shape `[out, in, k...]`.
///
/// # Panics
/// If the shape has fewer than two dimensions (as PyTorch).
///
/// ```
/// assert_eq!(tapegrad_nn::init::fans(&[16, 3, 5, 5]), (75, 400));
/// ```
#[track_caller]
pub fn fans(shape: &[usize]) -> (usize, usize) {
    if shape.len() < 2 {
        panic!("init: fan in and fan out need a shape of at least 2 dimensions, got {shape:?}");
    }
    let receptive: usize = shape[2..].iter().product();
    (shape[1] * receptive, shape[0] * receptive)
}

/// Zeros.
pub fn zeros(shape: &[usize], dtype: DType) -> Tensor {
    Tensor::zeros(shape, dtype)
}

/// Ones.
pub fn ones(shape: &[usize], dtype: DType) -> Tensor {
    Tensor::ones(shape, dtype)
}

/// Every element `value`.
pub fn constant(shape: &[usize], value: f64, dtype: DType) -> Tensor {
    Tensor::full(shape, value, dtype)
}

/// Uniform in `[low, high)`, seeded.
///
/// # Panics
/// If `low >= high`.
#[track_caller]
pub fn uniform(shape: &[usize], low: f64, high: f64, dtype: DType, seed: u64) -> Tensor {
    Tensor::rand_uniform(shape, low, high, dtype, seed)
}

/// Normal with mean `mean` and standard deviation `std`, seeded.
pub fn normal(shape: &[usize], mean: f64, std: f64, dtype: DType, seed: u64) -> Tensor {
    Tensor::randn(shape, DType::F64, seed)
        .mul_scalar(std)
        .add_scalar(mean)
        .to_dtype(dtype)
}

/// Uniform in `[-b, b)` with `b = bound`, or zeros when `bound` is 0.
fn symmetric_uniform(shape: &[usize], bound: f64, dtype: DType, seed: u64) -> Tensor {
    if bound > 0.0 {
        uniform(shape, -bound, bound, dtype, seed)
    } else {
        zeros(shape, dtype)
    }
}

/// Xavier/Glorot uniform: `U(-b, b)` with `b = gain * sqrt(6 / (fan_in + fan_out))`.
///
/// # Panics
/// If the shape has fewer than two dimensions.
///
/// ```
/// use tapegrad::DType;
/// let w = tapegrad_nn::init::xavier_uniform(&[30, 20], 1.0, DType::F64, 0);
/// let b = (6.0f64 / 50.0).sqrt();
/// assert!(w.to_vec::<f64>().iter().all(|v| v.abs() <= b));
/// ```
#[track_caller]
pub fn xavier_uniform(shape: &[usize], gain: f64, dtype: DType, seed: u64) -> Tensor {
    let (fi, fo) = fans(shape);
    symmetric_uniform(shape, gain * (6.0 / (fi + fo) as f64).sqrt(), dtype, seed)
}

/// Xavier/Glorot normal: `N(0, std^2)` with `std = gain * sqrt(2 / (fan_in + fan_out))`.
///
/// # Panics
/// If the shape has fewer than two dimensions.
#[track_caller]
pub fn xavier_normal(shape: &[usize], gain: f64, dtype: DType, seed: u64) -> Tensor {
    let (fi, fo) = fans(shape);
    normal(
        shape,
        0.0,
        gain * (2.0 / (fi + fo) as f64).sqrt(),
        dtype,
        seed,
    )
}

#[track_caller]
fn kaiming_std(shape: &[usize], mode: FanMode, nonlinearity: Nonlinearity) -> f64 {
    let (fi, fo) = fans(shape);
    let fan = match mode {
        FanMode::FanIn => fi,
        FanMode::FanOut => fo,
    };
    calculate_gain(nonlinearity) / (fan as f64).sqrt()
}

/// He/Kaiming uniform: `U(-b, b)` with `b = gain * sqrt(3 / fan)`. PyTorch's
/// `kaiming_uniform_(w, a, mode, nonlinearity)`; its `a` is the slope in
/// [`Nonlinearity::LeakyRelu`]. `Linear` and `Conv2d` use `LeakyRelu(sqrt(5))` with
/// `FanIn`, which gives `b = 1 / sqrt(fan_in)`.
///
/// # Panics
/// If the shape has fewer than two dimensions.
///
/// ```
/// use tapegrad::DType;
/// use tapegrad_nn::init::{kaiming_uniform, FanMode, Nonlinearity};
/// let w = kaiming_uniform(&[10, 25], FanMode::FanIn, Nonlinearity::LeakyRelu(5f64.sqrt()), DType::F64, 1);
/// assert!(w.to_vec::<f64>().iter().all(|v| v.abs() <= 0.2));
/// ```
#[track_caller]
pub fn kaiming_uniform(
    shape: &[usize],
    mode: FanMode,
    nonlinearity: Nonlinearity,
    dtype: DType,
    seed: u64,
) -> Tensor {
    symmetric_uniform(
        shape,
        3f64.sqrt() * kaiming_std(shape, mode, nonlinearity),
        dtype,
        seed,
    )
}

/// He/Kaiming normal: `N(0, std^2)` with `std = gain / sqrt(fan)`.
///
/// # Panics
/// If the shape has fewer than two dimensions.
#[track_caller]
pub fn kaiming_normal(
    shape: &[usize],
    mode: FanMode,
    nonlinearity: Nonlinearity,
    dtype: DType,
    seed: u64,
) -> Tensor {
    normal(
        shape,
        0.0,
        kaiming_std(shape, mode, nonlinearity),
        dtype,
        seed,
    )
}

/// A (semi-)orthogonal matrix times `gain`, as PyTorch's `orthogonal_`: the weight is
/// viewed as `rows = shape[0]` by `cols = product(shape[1..])`; a Gaussian matrix is
/// factored `Q R` (on its transpose if `rows < cols`) with the signs fixed so `R` has a
/// positive diagonal. Then the rows (or columns, whichever are fewer) are orthonormal.
///
/// # Panics
/// If the shape has fewer than two dimensions.
///
/// ```
/// use tapegrad::DType;
/// let q = tapegrad_nn::init::orthogonal(&[3, 5], 1.0, DType::F64, 4);
/// let qqt = q.matmul(&q.t()).to_vec::<f64>();
/// for i in 0..3 {
///     for j in 0..3 {
///         assert!((qqt[i * 3 + j] - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12);
///     }
/// }
/// ```
#[track_caller]
pub fn orthogonal(shape: &[usize], gain: f64, dtype: DType, seed: u64) -> Tensor {
    if shape.len() < 2 {
        panic!("orthogonal: needs a shape of at least 2 dimensions, got {shape:?}");
    }
    let rows = shape[0];
    let cols: usize = shape[1..].iter().product();
    let (m, n) = (rows.max(cols), rows.min(cols));
    // a is m x n (tall), column-major in `cols_of` for Gram-Schmidt.
    let g = Tensor::randn(&[rows, cols], DType::F64, seed).to_vec::<f64>();
    let mut q: Vec<Vec<f64>> = (0..n)
        .map(|j| {
            (0..m)
                .map(|i| {
                    if rows >= cols {
                        g[i * cols + j]
                    } else {
                        g[j * cols + i]
                    }
                })
                .collect()
        })
        .collect();
    // Modified Gram-Schmidt twice ("twice is enough") for orthogonality to rounding;
    // the resulting R has a positive diagonal, which is PyTorch's sign convention.
    for _ in 0..2 {
        for j in 0..n {
            for k in 0..j {
                let dot: f64 = q[j].iter().zip(&q[k]).map(|(a, b)| a * b).sum();
                let (head, tail) = q.split_at_mut(j);
                for (a, b) in tail[0].iter_mut().zip(&head[k]) {
                    *a -= dot * b;
                }
            }
            let norm = q[j].iter().map(|a| a * a).sum::<f64>().sqrt();
            q[j].iter_mut().for_each(|a| *a /= norm);
        }
    }
    let v: Vec<f64> = (0..rows)
        .flat_map(|i| (0..cols).map(move |j| (i, j)))
        .map(|(i, j)| gain * if rows >= cols { q[j][i] } else { q[i][j] })
        .collect();
    Tensor::from_vec(v, shape).to_dtype(dtype)
}
