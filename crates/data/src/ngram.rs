//! `NgramModel`: a token n-gram model with add-one smoothing, the baseline a language
//! model's held-out bits per character is compared with.

use std::collections::HashMap;

/// An order-`n` n-gram model with add-one (Laplace) smoothing: the probability of token
/// `c` after the `n - 1` tokens `ctx` is
///
/// `P(c | ctx) = (count(ctx, c) + 1) / (count(ctx) + V)`
///
/// with counts from the training tokens and `V` the vocabulary size (an unseen context
/// gives the uniform `1 / V`). With [`ByteTokenizer`](crate::ByteTokenizer) tokens and
/// `n = 3` it is the order-3 character model of the usual baseline (characters are
/// bytes: the same for ASCII text).
///
/// ```
/// use tapegrad_data::{embedded_text, split_held_out, ByteTokenizer, NgramModel};
/// let tokens = ByteTokenizer.encode(&embedded_text()[..20_000]);
/// let (train, held_out) = split_held_out(&tokens, 0.1);
/// let model = NgramModel::fit(train, 3, ByteTokenizer::VOCAB_SIZE);
/// let bits = model.bits_per_token(held_out);
/// assert!(bits > 2.0 && bits < 8.0); // well below the uniform 8 bits per byte
/// ```
#[derive(Clone, Debug)]
pub struct NgramModel {
    order: usize,
    vocab_size: usize,
    /// Per context: how often it was seen, and how often each token followed it.
    counts: HashMap<Vec<usize>, (u64, HashMap<usize, u64>)>,
}

impl NgramModel {
    /// Counts every `order`-gram of `tokens` (all tokens below `vocab_size`).
    ///
    /// # Panics
    /// If `order` or `vocab_size` is 0 or a token is not below `vocab_size`.
    #[track_caller]
    pub fn fit(tokens: &[usize], order: usize, vocab_size: usize) -> NgramModel {
        assert!(
            order > 0 && vocab_size > 0,
            "NgramModel::fit: order ({order}) and vocab_size ({vocab_size}) must be positive"
        );
        if let Some(t) = tokens.iter().find(|&&t| t >= vocab_size) {
            panic!("NgramModel::fit: token {t} is not below vocab_size {vocab_size}");
        }
        let mut counts: HashMap<Vec<usize>, (u64, HashMap<usize, u64>)> = HashMap::new();
        for gram in tokens.windows(order) {
            let (context, next) = gram.split_at(order - 1);
            let entry = counts.entry(context.to_vec()).or_default();
            entry.0 += 1;
            *entry.1.entry(next[0]).or_default() += 1;
        }
        NgramModel {
            order,
            vocab_size,
            counts,
        }
    }

    /// The order `n` (contexts of `n - 1` tokens).
    pub fn order(&self) -> usize {
        self.order
    }

    /// The smoothed probability of `token` after `context` (`n - 1` tokens).
    ///
    /// # Panics
    /// If `context` does not have `n - 1` tokens.
    #[track_caller]
    pub fn probability(&self, context: &[usize], token: usize) -> f64 {
        assert_eq!(
            context.len(),
            self.order - 1,
            "NgramModel::probability: an order-{} model takes {} context tokens",
            self.order,
            self.order - 1
        );
        let (total, next) = self
            .counts
            .get(context)
            .map(|(total, next)| (*total, next.get(&token).copied().unwrap_or(0)))
            .unwrap_or((0, 0));
        (next as f64 + 1.0) / (total as f64 + self.vocab_size as f64)
    }

    /// The average negative log2-probability of `tokens`, scoring each token that has a
    /// full context within `tokens` (all but the first `n - 1`): held-out bits per
    /// token (per character for byte tokens of ASCII text).
    ///
    /// # Panics
    /// If `tokens` has no more than `n - 1` tokens.
    #[track_caller]
    pub fn bits_per_token(&self, tokens: &[usize]) -> f64 {
        assert!(
            tokens.len() >= self.order,
            "NgramModel::bits_per_token: {} tokens leave nothing to score for an order-{} model",
            tokens.len(),
            self.order
        );
        let grams = tokens.windows(self.order);
        let n = grams.len();
        let total: f64 = grams
            .map(|g| {
                -self
                    .probability(&g[..self.order - 1], g[self.order - 1])
                    .log2()
            })
            .sum();
        total / n as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_one_smoothing_matches_a_hand_computed_value() {
        // Trigrams of [0, 0, 1, 0, 0, 1]: (0,0)->1 twice, (0,1)->0, (1,0)->0.
        let model = NgramModel::fit(&[0, 0, 1, 0, 0, 1], 3, 3);
        // P(1 | 0 0) = (2 + 1) / (2 + 3); P(2 | 0 1) = (0 + 1) / (1 + 3).
        assert_eq!(model.probability(&[0, 0], 1), 0.6);
        assert_eq!(model.probability(&[0, 1], 2), 0.25);
        // An unseen context is uniform.
        assert_eq!(model.probability(&[2, 2], 0), 1.0 / 3.0);
        let bits = model.bits_per_token(&[0, 0, 1, 2]);
        let expected = -(0.6f64.log2() + 0.25f64.log2()) / 2.0;
        assert!((bits - expected).abs() < 1e-15, "{bits} vs {expected}");
        assert!((expected - 1.368_482_797_083_103).abs() < 1e-12);
    }

    #[test]
    fn probabilities_over_the_vocabulary_sum_to_one() {
        let model = NgramModel::fit(&[3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5], 3, 10);
        for context in [[1, 5], [5, 3], [7, 7]] {
            let sum: f64 = (0..10).map(|c| model.probability(&context, c)).sum();
            assert!((sum - 1.0).abs() < 1e-12, "{context:?}: {sum}");
        }
    }

    #[test]
    #[should_panic(expected = "token 7 is not below vocab_size 5")]
    fn tokens_outside_the_vocabulary_are_refused() {
        NgramModel::fit(&[1, 7], 2, 5);
    }
}
