//! `tapegrad sample`: generates text with a language model trained by `tapegrad train
//! --dataset text`, from the run's `args.json` and latest checkpoint.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rand::{Rng, SeedableRng};
use tapegrad::{no_grad, Tensor};
use tapegrad_data::ByteTokenizer;
use tapegrad_nn::{Module, Sequential};

use crate::datasets::DatasetName;
use crate::lm::VOCAB;
use crate::setup::{non_negative_f64, positive_usize};
use crate::train::{self, name};

/// Generate text with a trained language model.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The run folder of `tapegrad train --dataset text --model transformer|lstm` (its
    /// args.json and checkpoint are read).
    #[arg(long)]
    pub run: PathBuf,
    /// The text to continue (at least one character).
    #[arg(long, default_value = "The ")]
    pub prompt: String,
    /// Softmax temperature: below 1 sharper, above 1 flatter; 0 always picks the most
    /// likely character (greedy).
    #[arg(long, default_value_t = 1.0, value_parser = non_negative_f64)]
    pub temperature: f64,
    /// Sample only among the K most likely characters.
    #[arg(long, value_parser = positive_usize)]
    pub top_k: Option<usize>,
    /// Characters (byte tokens) to generate after the prompt.
    #[arg(long, default_value_t = 200)]
    pub length: usize,
    /// Seed of the sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Runs `tapegrad sample`.
pub fn run(args: &Args) -> ExitCode {
    match sample(args) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The prompt followed by `--length` generated characters.
fn sample(args: &Args) -> Result<String, String> {
    if args.prompt.is_empty() {
        return Err("--prompt: give at least one character to continue".into());
    }
    let (mut model, seq_len) = load_model(&args.run)?;
    model.set_training(false);
    let mut tokens = ByteTokenizer.encode(&args.prompt);
    let prompt_len = tokens.len();
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    no_grad(|| {
        for _ in 0..args.length {
            // The model was trained on windows of seq_len: it sees the last seq_len tokens.
            let context = &tokens[tokens.len().saturating_sub(seq_len)..];
            let x: Vec<i64> = context.iter().map(|&t| t as i64).collect();
            let n = x.len();
            let logits = model.forward(&Tensor::from_vec(x, &[1, n]));
            let last: Vec<f64> = logits.narrow(1, n - 1, 1).to_vec::<f64>();
            tokens.push(pick(&last, args.temperature, args.top_k, rng.gen::<f64>()));
        }
    });
    Ok(format!(
        "{}{}",
        args.prompt,
        ByteTokenizer.decode(&tokens[prompt_len..])
    ))
}

/// The language model of the run in `dir` with its latest checkpoint's weights, and its
/// window length.
fn load_model(dir: &Path) -> Result<(Sequential, usize), String> {
    if !dir.is_dir() {
        return Err(format!(
            "--run {}: no such folder (give the --out folder of tapegrad train --dataset text)",
            dir.display()
        ));
    }
    let args_path = dir.join("args.json");
    let text = std::fs::read_to_string(&args_path).map_err(|e| {
        format!(
            "{}: {e} (is this a tapegrad train run?)",
            args_path.display()
        )
    })?;
    let run: train::Args = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not the settings of a run: {e}", args_path.display()))?;
    let common = &run.common;
    if common.dataset != DatasetName::Text || common.model.language_model().is_none() {
        return Err(format!(
            "--run {}: a {} model trained on {}; tapegrad sample needs a language model (--dataset text --model transformer or lstm)",
            dir.display(),
            name(common.model),
            name(common.dataset)
        ));
    }
    let seq_len = common.lm.seq_len;
    let model = common
        .build_model(&[seq_len], VOCAB)
        .map_err(|e| format!("{}: {e}", args_path.display()))?;

    let index_path = dir.join("checkpoint.json");
    let index = std::fs::read_to_string(&index_path).map_err(|e| {
        format!(
            "{}: {e} (the run has no checkpoint yet: it is written after each epoch)",
            index_path.display()
        )
    })?;
    let index: serde_json::Value = serde_json::from_str(&index)
        .map_err(|e| format!("{}: not a checkpoint index: {e}", index_path.display()))?;
    let weights = index
        .get("weights")
        .and_then(|w| w.as_str())
        .filter(|w| Path::new(w).file_name().is_some_and(|f| f == *w))
        .ok_or_else(|| {
            format!(
                "{}: no \"weights\" file name in the checkpoint index",
                index_path.display()
            )
        })?;
    let weights = dir.join(weights);
    tapegrad_nn::io::load(&model, &weights).map_err(|e| format!("{}: {e}", weights.display()))?;
    Ok((model, seq_len))
}

/// The next token from `logits`: the most likely with `temperature` 0, else a draw from
/// `softmax(logits / temperature)` over the `top_k` most likely tokens (all if `None`),
/// `u` being a uniform number in `[0, 1)`.
fn pick(logits: &[f64], temperature: f64, top_k: Option<usize>, u: f64) -> usize {
    let mut order: Vec<usize> = (0..logits.len()).collect();
    // Most likely first; ties keep the lower token first.
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    if temperature == 0.0 {
        return order[0];
    }
    order.truncate(top_k.unwrap_or(order.len()).clamp(1, order.len()));
    let top = logits[order[0]];
    let weights: Vec<f64> = order
        .iter()
        .map(|&t| ((logits[t] - top) / temperature).exp())
        .collect();
    let mut target = u * weights.iter().sum::<f64>();
    for (&t, w) in order.iter().zip(&weights) {
        if target < *w {
            return t;
        }
        target -= w;
    }
    order[order.len() - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_and_top_1_pick_the_largest_logit() {
        let logits = [0.5, 2.0, -1.0, 1.9];
        assert_eq!(pick(&logits, 0.0, None, 0.99), 1);
        assert_eq!(pick(&logits, 5.0, Some(1), 0.99), 1);
    }

    #[test]
    fn draws_follow_the_tempered_softmax_over_the_top_k() {
        // logits ln 1, ln 3, ln 6: probabilities 0.1, 0.3, 0.6 at temperature 1.
        let logits = [1f64.ln(), 3f64.ln(), 6f64.ln()];
        let draw = |u| pick(&logits, 1.0, None, u);
        assert_eq!(
            [draw(0.0), draw(0.59), draw(0.61), draw(0.89), draw(0.91)],
            [2, 2, 1, 1, 0]
        );
        // Top 2: 0.6 / 0.9 and 0.3 / 0.9.
        assert_eq!(pick(&logits, 1.0, Some(2), 0.66), 2);
        assert_eq!(pick(&logits, 1.0, Some(2), 0.67), 1);
        assert_eq!(pick(&logits, 1.0, Some(2), 0.999), 1);
        // Temperature 2: weights 1, sqrt 3, sqrt 6 (sum 5.1815); sqrt 6 / 5.1815 = 0.4727.
        assert_eq!(pick(&logits, 2.0, None, 0.47), 2);
        assert_eq!(pick(&logits, 2.0, None, 0.48), 1);
    }
}
