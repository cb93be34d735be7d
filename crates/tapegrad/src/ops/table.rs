//! The op table: one row per differentiable op, with a generator of valid inputs, the
//! order to check, the gradient formula and the edge convention. The gradcheck property
//! tests, the `tapegrad gradcheck` report and `docs/ops.md` are all driven by it.
//!
//! Each family file (`arith.rs`, `math.rs`, ...) owns its rows next to its ops; adding an
//! op means writing it and adding one row in the same file.

use rand::rngs::StdRng;
use rand::Rng;

use crate::dtype::DType;
use crate::tensor::Tensor;

/// The values an input may take: a domain where the op is smooth, away from its kinks
/// and poles, so that central differences are accurate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domain {
    /// Uniform in `[-2, 2]`.
    Real,
    /// Uniform in `[0.5, 2]`.
    Positive,
    /// `|x|` uniform in `[0.2, 2]`, random sign.
    AwayFromZero,
    /// Uniform in `[-0.9, 0.9]`.
    Unit,
    /// Uniform in `[-0.45, 0.45]`.
    Inner,
    /// `|x|` uniform in `[0.55, 2]`, random sign (never within 0.1 of an `Inner` value).
    Outer,
    /// `Inner` or `Outer` at random: away from `±0.5`.
    AwayFromHalf,
    /// Uniform in `[1.2, 3]` (inside the domain of `acosh`, away from its pole at 1).
    AboveOne,
    /// `|x|` uniform in `[0.1, 2.8]` or `[3.2, 5]`, random sign: away from the kinks of
    /// `hardswish` and `hardsigmoid` at `±3` and from 0.
    AwayFromThree,
}

impl Domain {
    /// Draws one value.
    pub fn sample(self, rng: &mut StdRng) -> f64 {
        let signed = |rng: &mut StdRng, lo: f64, hi: f64| {
            let v = rng.gen_range(lo..hi);
            if rng.gen_bool(0.5) {
                v
            } else {
                -v
            }
        };
        match self {
            Domain::Real => rng.gen_range(-2.0..2.0),
            Domain::Positive => rng.gen_range(0.5..2.0),
            Domain::AwayFromZero => signed(rng, 0.2, 2.0),
            Domain::Unit => rng.gen_range(-0.9..0.9),
            Domain::Inner => rng.gen_range(-0.45..0.45),
            Domain::Outer => signed(rng, 0.55, 2.0),
            Domain::AwayFromHalf => {
                if rng.gen_bool(0.5) {
                    Domain::Inner.sample(rng)
                } else {
                    Domain::Outer.sample(rng)
                }
            }
            Domain::AboveOne => rng.gen_range(1.2..3.0),
            Domain::AwayFromThree => {
                if rng.gen_bool(0.5) {
                    signed(rng, 0.1, 2.8)
                } else {
                    signed(rng, 3.2, 5.0)
                }
            }
        }
    }

    /// A short description for reports and docs.
    pub fn describe(self) -> &'static str {
        match self {
            Domain::Real => "[-2, 2]",
            Domain::Positive => "[0.5, 2]",
            Domain::AwayFromZero => "0.2 <= |x| <= 2",
            Domain::Unit => "[-0.9, 0.9]",
            Domain::Inner => "[-0.45, 0.45]",
            Domain::Outer => "0.55 <= |x| <= 2",
            Domain::AwayFromHalf => "|x| <= 0.45 or 0.55 <= |x| <= 2",
            Domain::AboveOne => "[1.2, 3]",
            Domain::AwayFromThree => "0.1 <= |x| <= 2.8 or 3.2 <= |x| <= 5",
        }
    }
}

/// How to make valid inputs for an op.
#[derive(Clone, Copy)]
pub enum Inputs {
    /// One tensor of any shape (rank 0-4) with values in the domain.
    Unary(Domain),
    /// Two tensors of broadcast-compatible shapes.
    Binary(Domain, Domain),
    /// Inputs built by a function from a seeded generator (for ops whose shapes are
    /// constrained: matmul, cat, gather, ...). The generator decides the shapes.
    Custom(fn(&mut StdRng, DType) -> Vec<Tensor>),
}

/// One row of the op table.
#[derive(Clone, Copy)]
pub struct OpSpec {
    /// The op's name (as recorded on the tape).
    pub name: &'static str,
    /// How to make valid inputs.
    pub inputs: Inputs,
    /// Applies the op (with fixed non-tensor arguments) to the inputs.
    pub apply: fn(&[Tensor]) -> Tensor,
    /// Whether the gradient is itself differentiable in the domain (checked by gradgradcheck).
    pub second_order: bool,
    /// The gradient formula, `g` being the output gradient.
    pub gradient: &'static str,
    /// The convention at kinks, poles and ties ("" if none).
    pub convention: &'static str,
    /// Whether the op's rule has a fused fast path (`fused_grad!`) for backward passes
    /// that build no graph. A test runs every such row both ways and requires identical
    /// gradients, and checks that no row without the mark takes a fast path.
    pub fused: bool,
}

impl OpSpec {
    /// A row checked to second order with no edge convention.
    pub const fn new(
        name: &'static str,
        inputs: Inputs,
        apply: fn(&[Tensor]) -> Tensor,
        gradient: &'static str,
    ) -> Self {
        OpSpec {
            name,
            inputs,
            apply,
            second_order: true,
            gradient,
            convention: "",
            fused: false,
        }
    }

    /// Sets the edge convention text.
    pub const fn note(mut self, convention: &'static str) -> Self {
        self.convention = convention;
        self
    }

    /// Marks the op's rule as having a fused fast path (see [`fused`](Self::fused)).
    pub const fn fused(mut self) -> Self {
        self.fused = true;
        self
    }

    /// Marks the op as checked to first order only (its gradient is piecewise constant
    /// or not differentiable again).
    pub const fn first_order(mut self) -> Self {
        self.second_order = false;
        self
    }

    /// Valid inputs of random shape and value.
    pub fn sample_inputs(&self, rng: &mut StdRng, dtype: DType) -> Vec<Tensor> {
        match self.inputs {
            Inputs::Unary(d) => {
                let s = random_shape(rng, 4, 3);
                vec![random_tensor(rng, &s, d, dtype)]
            }
            Inputs::Binary(da, db) => {
                let (sa, sb) = broadcast_pair(rng);
                vec![
                    random_tensor(rng, &sa, da, dtype),
                    random_tensor(rng, &sb, db, dtype),
                ]
            }
            Inputs::Custom(f) => f(rng, dtype),
        }
    }
}

/// Every row of the op table, family by family.
pub fn all_ops() -> Vec<&'static OpSpec> {
    [
        super::arith::ROWS,
        super::math::ROWS,
        super::activation::ROWS,
        super::reduce::ROWS,
        super::scan::ROWS,
        super::linalg::ROWS,
        super::shape::ROWS,
        super::index::ROWS,
        super::logic::ROWS,
        super::nn::ROWS,
        super::layout::ROWS,
        super::products::ROWS,
        super::functional::ROWS,
        super::recurrent::ROWS,
        super::attention::ROWS,
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The row named `name`.
pub fn find_op(name: &str) -> Option<&'static OpSpec> {
    all_ops().into_iter().find(|s| s.name == name)
}

/// A random shape of rank `0..=max_rank` with sizes `1..=max_dim`.
pub fn random_shape(rng: &mut StdRng, max_rank: usize, max_dim: usize) -> Vec<usize> {
    let rank = rng.gen_range(0..=max_rank);
    (0..rank).map(|_| rng.gen_range(1..=max_dim)).collect()
}

/// Two broadcast-compatible shapes: a random shape, and a copy with some axes set to 1
/// and some leading axes dropped (either may be the smaller one).
pub fn broadcast_pair(rng: &mut StdRng) -> (Vec<usize>, Vec<usize>) {
    let full = random_shape(rng, 4, 3);
    let mut other: Vec<usize> = full
        .iter()
        .map(|&d| if rng.gen_bool(0.3) { 1 } else { d })
        .collect();
    let drop = rng.gen_range(0..=other.len());
    other.drain(..drop);
    if rng.gen_bool(0.5) {
        (full, other)
    } else {
        (other, full)
    }
}

/// A tensor of `shape` with values drawn from `domain`.
pub fn random_tensor(rng: &mut StdRng, shape: &[usize], domain: Domain, dtype: DType) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| domain.sample(rng)).collect();
    Tensor::from_vec(v, shape).to_dtype(dtype)
}

/// A tensor of `shape` whose values are distinct and at least 0.1 apart, in random order:
/// inputs for ops that pick an element (max, pooling, sort) so that the pick never ties
/// or flips under a finite-difference step.
pub fn distinct_tensor(rng: &mut StdRng, shape: &[usize], dtype: DType) -> Tensor {
    use rand::seq::SliceRandom;
    let n: usize = shape.iter().product();
    let mut v: Vec<f64> = (0..n).map(|i| i as f64 * 0.1 - n as f64 * 0.05).collect();
    v.shuffle(rng);
    Tensor::from_vec(v, shape).to_dtype(dtype)
}
