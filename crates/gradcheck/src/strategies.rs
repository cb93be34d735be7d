//! proptest strategies for property tests of ops and user functions: shapes of rank 0-4
//! with size-1 axes, broadcast-compatible shape pairs, values in a [`Domain`], and the
//! inputs of any row of the op table.
//!
//! ```
//! use proptest::prelude::*;
//! use tapegrad::{DType, Domain, Tensor};
//! use tapegrad_gradcheck::{gradcheck, strategies, Options};
//!
//! proptest!(ProptestConfig::with_cases(8), |(x in strategies::tensor_in(strategies::shape(), Domain::Positive, DType::F64))| {
//!     let report = gradcheck(|t: &[Tensor]| t[0].sqrt().log(), &[x], &Options::default());
//!     prop_assert!(report.is_ok(), "{}", report.unwrap_err());
//! });
//! ```

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tapegrad::{DType, Domain, Inputs, OpSpec, Tensor};

/// Largest size of an axis the shape strategies produce.
pub const MAX_DIM: usize = 3;
/// Largest rank the shape strategies produce.
pub const MAX_RANK: usize = 4;

/// Shapes of rank `0..=4` with sizes `1..=3`; size 1 is drawn as often as the other
/// sizes together, so broadcasting and squeezing edge cases come up. Shrinks towards
/// lower rank and smaller sizes.
pub fn shape() -> impl Strategy<Value = Vec<usize>> + Clone {
    shape_with(MAX_RANK, MAX_DIM)
}

/// Shapes of rank `0..=max_rank` with sizes `1..=max_dim`.
///
/// # Panics
/// If `max_dim` is 0.
pub fn shape_with(max_rank: usize, max_dim: usize) -> impl Strategy<Value = Vec<usize>> + Clone {
    assert!(max_dim > 0, "shape_with: max_dim must be at least 1");
    prop::collection::vec(prop_oneof![Just(1usize), 1..=max_dim], 0..=max_rank)
}

/// Two broadcast-compatible shapes: a random shape and a copy of it with some axes set to
/// 1 and some leading axes dropped, in either order.
///
/// ```
/// use proptest::strategy::{Strategy, ValueTree};
/// use proptest::test_runner::TestRunner;
/// use tapegrad_gradcheck::strategies::broadcast_pair;
///
/// let mut runner = TestRunner::deterministic();
/// for _ in 0..32 {
///     let (a, b) = broadcast_pair().new_tree(&mut runner).unwrap().current();
///     assert!(tapegrad::shape::broadcast_shapes(&a, &b).is_some(), "{a:?} {b:?}");
/// }
/// ```
pub fn broadcast_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> + Clone {
    shape()
        .prop_flat_map(|full| {
            let rank = full.len();
            (
                Just(full),
                prop::collection::vec(prop::bool::weighted(0.3), rank),
                0..=rank,
                any::<bool>(),
            )
        })
        .prop_map(|(full, ones, drop, swap)| {
            let other: Vec<usize> = full
                .iter()
                .zip(&ones)
                .skip(drop)
                .map(|(&d, &one)| if one { 1 } else { d })
                .collect();
            if swap {
                (other, full)
            } else {
                (full, other)
            }
        })
}

/// Values in `domain`, over the same ranges as [`Domain::sample`].
pub fn domain_value(domain: Domain) -> BoxedStrategy<f64> {
    fn signed(lo: f64, hi: f64) -> BoxedStrategy<f64> {
        (lo..hi, any::<bool>())
            .prop_map(|(v, neg)| if neg { -v } else { v })
            .boxed()
    }
    match domain {
        Domain::Real => (-2.0..2.0).boxed(),
        Domain::Positive => (0.5..2.0).boxed(),
        Domain::AwayFromZero => signed(0.2, 2.0),
        Domain::Unit => (-0.9..0.9).boxed(),
        Domain::Inner => (-0.45..0.45).boxed(),
        Domain::Outer => signed(0.55, 2.0),
        Domain::AwayFromHalf => {
            prop_oneof![domain_value(Domain::Inner), domain_value(Domain::Outer)].boxed()
        }
        Domain::AboveOne => (1.2..3.0).boxed(),
        Domain::AwayFromThree => prop_oneof![signed(0.1, 2.8), signed(3.2, 5.0)].boxed(),
    }
}

/// Whether `v` lies in `domain` (closed bounds).
///
/// ```
/// use tapegrad::Domain;
/// use tapegrad_gradcheck::strategies::in_domain;
/// assert!(in_domain(Domain::AwayFromZero, -0.3));
/// assert!(!in_domain(Domain::AwayFromZero, 0.1));
/// ```
pub fn in_domain(domain: Domain, v: f64) -> bool {
    let a = v.abs();
    match domain {
        Domain::Real => (-2.0..=2.0).contains(&v),
        Domain::Positive => (0.5..=2.0).contains(&v),
        Domain::AwayFromZero => (0.2..=2.0).contains(&a),
        Domain::Unit => (-0.9..=0.9).contains(&v),
        Domain::Inner => (-0.45..=0.45).contains(&v),
        Domain::Outer => (0.55..=2.0).contains(&a),
        Domain::AwayFromHalf => in_domain(Domain::Inner, v) || in_domain(Domain::Outer, v),
        Domain::AboveOne => (1.2..=3.0).contains(&v),
        Domain::AwayFromThree => (0.1..=2.8).contains(&a) || (3.2..=5.0).contains(&a),
    }
}

/// Tensors of a given shape with values in `domain`.
pub fn tensor(
    shape: Vec<usize>,
    domain: Domain,
    dtype: DType,
) -> impl Strategy<Value = Tensor> + Clone {
    let n: usize = shape.iter().product();
    prop::collection::vec(domain_value(domain), n)
        .prop_map(move |v| Tensor::from_vec(v, &shape).to_dtype(dtype))
}

/// Tensors whose shape comes from `shapes` and values from `domain`.
pub fn tensor_in(
    shapes: impl Strategy<Value = Vec<usize>>,
    domain: Domain,
    dtype: DType,
) -> impl Strategy<Value = Tensor> {
    shapes.prop_flat_map(move |s| tensor(s, domain, dtype))
}

/// Valid inputs for the op `spec`: one tensor of a random shape for a unary row, two of
/// broadcast-compatible shapes for a binary row, each with values in the row's domain;
/// for a row with a custom generator, the generator's output for a random seed (the seed
/// shrinks, the inputs only follow it).
///
/// ```
/// use proptest::strategy::{Strategy, ValueTree};
/// use proptest::test_runner::TestRunner;
/// use tapegrad::{find_op, DType};
/// use tapegrad_gradcheck::strategies::op_inputs;
///
/// let mut runner = TestRunner::deterministic();
/// let inputs = op_inputs(find_op("matmul").unwrap(), DType::F64).new_tree(&mut runner).unwrap().current();
/// assert_eq!(inputs.len(), 2);
/// assert_eq!(inputs[0].shape().last(), inputs[1].shape().get(inputs[1].rank().saturating_sub(2)));
/// ```
pub fn op_inputs(spec: &OpSpec, dtype: DType) -> BoxedStrategy<Vec<Tensor>> {
    match spec.inputs {
        Inputs::Unary(d) => tensor_in(shape(), d, dtype).prop_map(|t| vec![t]).boxed(),
        Inputs::Binary(da, db) => broadcast_pair()
            .prop_flat_map(move |(sa, sb)| (tensor(sa, da, dtype), tensor(sb, db, dtype)))
            .prop_map(|(a, b)| vec![a, b])
            .boxed(),
        Inputs::Custom(generate) => any::<u64>()
            .prop_map(move |seed| generate(&mut StdRng::seed_from_u64(seed), dtype))
            .boxed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    const DOMAINS: [Domain; 9] = [
        Domain::Real,
        Domain::Positive,
        Domain::AwayFromZero,
        Domain::Unit,
        Domain::Inner,
        Domain::Outer,
        Domain::AwayFromHalf,
        Domain::AboveOne,
        Domain::AwayFromThree,
    ];

    #[test]
    fn strategy_values_and_table_samples_agree_on_each_domain() {
        let mut runner = TestRunner::deterministic();
        let mut rng = StdRng::seed_from_u64(3);
        for d in DOMAINS {
            let strategy = domain_value(d);
            let (mut neg, mut pos) = (false, false);
            for _ in 0..500 {
                let v = strategy.new_tree(&mut runner).unwrap().current();
                assert!(in_domain(d, v), "strategy gave {v} outside {d:?}");
                let s = d.sample(&mut rng);
                assert!(in_domain(d, s), "Domain::sample gave {s} outside {d:?}");
                neg |= v < 0.0;
                pos |= v > 0.0;
            }
            // Both signs show up wherever the domain has both.
            let one_signed = matches!(d, Domain::Positive | Domain::AboveOne);
            assert_eq!((neg, pos), (!one_signed, true), "{d:?}");
        }
    }

    #[test]
    fn shapes_cover_ranks_and_size_one_axes() {
        let mut runner = TestRunner::deterministic();
        let mut ranks = [0usize; MAX_RANK + 1];
        let mut ones = 0;
        for _ in 0..400 {
            let s = shape().new_tree(&mut runner).unwrap().current();
            assert!(
                s.len() <= MAX_RANK && s.iter().all(|&d| (1..=MAX_DIM).contains(&d)),
                "{s:?}"
            );
            ranks[s.len()] += 1;
            ones += s.iter().filter(|&&d| d == 1).count();
        }
        assert!(
            ranks.iter().all(|&c| c > 0),
            "every rank 0-4 appears: {ranks:?}"
        );
        assert!(ones > 100, "size-1 axes are common: {ones}");
    }

    #[test]
    fn broadcast_pairs_broadcast_and_differ() {
        let mut runner = TestRunner::deterministic();
        let mut differ = 0;
        for _ in 0..200 {
            let (a, b) = broadcast_pair().new_tree(&mut runner).unwrap().current();
            let out = tapegrad::shape::broadcast_shapes(&a, &b)
                .unwrap_or_else(|| panic!("{a:?} vs {b:?}"));
            assert!(out.as_slice() == a.as_slice() || out.as_slice() == b.as_slice());
            differ += usize::from(a != b);
        }
        assert!(differ > 50, "real broadcasting is exercised: {differ}");
    }
}
