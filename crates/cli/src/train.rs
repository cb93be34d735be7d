//! `tapegrad train`: trains an MLP or a CNN on the embedded digits or on Fashion-MNIST,
//! with progress bars, `metrics.jsonl`, an SVG plot, TensorBoard event files and
//! resumable checkpoints.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use tapegrad_data::{
    counting_enabled, format_bytes, largest_batch_that_fits, parse_bytes, stop_counting,
    BatchSizeSchedule,
};
use tapegrad_nn::Module;
use tapegrad_train::adaptive::{AdaptiveBatch, LrRule};
use tapegrad_train::tensorboard::{EventWriter, TrainingLog};
use tapegrad_train::{write_atomic, Event, Stop, TrainConfig, Trainer};

use crate::datasets;
use crate::distributed::{self, Distributed};
use crate::lm;
use crate::plot;
use crate::setup::{positive_usize, CommonArgs, OptimizerName};
use crate::sweep::step_peak;

/// Train a model and write metrics, a plot, TensorBoard events and checkpoints.
#[derive(clap::Args, Debug, Clone, Serialize, Deserialize)]
pub struct Args {
    /// Data, model, optimiser and schedule.
    #[command(flatten)]
    #[serde(flatten)]
    pub common: CommonArgs,
    /// Micro-batch size (samples per forward/backward pass).
    #[arg(long, default_value_t = 32, value_parser = positive_usize)]
    pub batch_size: usize,
    /// Number of epochs (full passes over the training set) to reach [default: 10]; 0
    /// trains nothing.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Micro-batches per parameter update (effective batch = batch-size x accumulate).
    #[arg(long, default_value_t = 1, value_parser = positive_usize)]
    pub accumulate: usize,
    /// Grow the batch from an epoch on: EPOCH:SIZE, epochs counted from 1 as the progress
    /// lines count them, repeatable (e.g. --grow-batch 5:128); or `adaptive`: double the
    /// batch (samples per update) whenever the measured gradient noise scale exceeds it or
    /// the training loss plateaus, up to --max-batch, accumulating micro-batches above
    /// the largest that fits --memory-limit, the learning rate following --lr-rule.
    #[arg(long, value_parser = parse_growth)]
    pub grow_batch: Vec<Growth>,
    /// Scale the learning rate with the batch size (linear scaling rule) when it grows at
    /// EPOCH:SIZE milestones.
    #[arg(long)]
    pub lr_scaling: bool,
    /// With --grow-batch adaptive: how the learning rate follows the batch from
    /// --batch-size on [default: linear for sgd and lars, sqrt otherwise].
    #[arg(long, value_enum)]
    #[serde(default)]
    pub lr_rule: Option<LrRuleName>,
    /// With --grow-batch adaptive: the largest batch it may grow to.
    #[arg(long, default_value_t = 4096, value_parser = positive_usize)]
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// With --grow-batch adaptive: the memory one training step may use (e.g. 256MiB); the
    /// largest micro-batch that fits is measured once, and larger batches accumulate.
    #[arg(long, value_parser = parse_bytes)]
    #[serde(default)]
    pub memory_limit: Option<usize>,
    /// The largest micro-batch measured for --memory-limit (saved, so a resumed run
    /// accumulates as the original did).
    #[arg(skip)]
    #[serde(default)]
    pub max_micro_batch: Option<usize>,
    /// Stop when the validation loss has not improved for this many epochs.
    #[arg(long, value_parser = positive_usize)]
    pub patience: Option<usize>,
    /// Output folder [default: runs/<dataset>-<model>-<seed>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run saved in this folder with its saved settings. Only --epochs (to
    /// extend it), --quiet, --data-dir (if the files moved) and --distributed (with any
    /// number of ranks) may be given with it; any other flag that differs from the run is
    /// refused.
    #[arg(long)]
    #[serde(skip)]
    pub resume: Option<PathBuf>,
    /// Also log a histogram of every parameter and of its gradient once per epoch to the
    /// TensorBoard event file (scalars are always logged).
    #[arg(long)]
    #[serde(default)]
    pub histograms: bool,
    /// No progress bars, one line per epoch.
    #[arg(long)]
    #[serde(default)]
    pub quiet: bool,
    /// Data-parallel training over MPI, under `mpirun -np N`: --batch-size is the global
    /// batch (each rank trains on its share of every batch), rank 0 alone prints and
    /// writes files. Needs a build with `--features mpi` (see docs/distributed.md).
    #[arg(long)]
    #[serde(skip)]
    pub distributed: bool,
}

/// A `--grow-batch` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Growth {
    /// From this epoch (counted from 1) on, this micro-batch size.
    At(usize, usize),
    /// Grow adaptively.
    Adaptive(AdaptiveWord),
}

/// The word `adaptive` (how [`Growth::Adaptive`] is saved in `args.json`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AdaptiveWord {
    /// `adaptive`.
    Adaptive,
}

/// The learning-rate rule of `--lr-rule`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LrRuleName {
    /// lr x batch / first batch (Goyal et al. 2017, for SGD).
    Linear,
    /// lr x sqrt(batch / first batch) (the square-root rule for Adam-like optimisers).
    Sqrt,
}

fn default_max_batch() -> usize {
    4096
}

fn parse_growth(s: &str) -> Result<Growth, String> {
    if s.trim() == "adaptive" {
        return Ok(Growth::Adaptive(AdaptiveWord::Adaptive));
    }
    let (e, b) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?}: expected EPOCH:SIZE, e.g. 5:128, or adaptive"))?;
    let e: usize = e
        .trim()
        .parse()
        .map_err(|_| format!("{s:?}: {e:?} is not an epoch number"))?;
    if e == 0 {
        return Err(format!("{s:?}: epochs count from 1"));
    }
    let b: usize = b
        .trim()
        .parse()
        .map_err(|_| format!("{s:?}: {b:?} is not a batch size"))?;
    if b == 0 {
        return Err(format!("{s:?}: the batch size must be positive"));
    }
    Ok(Growth::At(e, b))
}

impl Args {
    fn epochs(&self) -> usize {
        self.epochs.unwrap_or(10)
    }

    pub(crate) fn adaptive(&self) -> bool {
        self.grow_batch
            .contains(&Growth::Adaptive(AdaptiveWord::Adaptive))
    }

    fn lr_rule(&self) -> LrRule {
        let name = self.lr_rule.unwrap_or(match self.common.optimizer {
            OptimizerName::Sgd | OptimizerName::Lars => LrRuleName::Linear,
            _ => LrRuleName::Sqrt,
        });
        match name {
            LrRuleName::Linear => LrRule::Linear,
            LrRuleName::Sqrt => LrRule::Sqrt,
        }
    }

    fn batch_schedule(&self) -> BatchSizeSchedule {
        let mut s = BatchSizeSchedule::new(self.batch_size);
        let mut ms: Vec<(usize, usize)> = self
            .grow_batch
            .iter()
            .filter_map(|g| match g {
                Growth::At(e, b) => Some((*e, *b)),
                Growth::Adaptive(_) => None,
            })
            .collect();
        ms.sort_unstable();
        for (e, b) in ms {
            // The flag counts epochs from 1, the schedule from 0.
            s = s.grow_at(e - 1, b);
        }
        if self.lr_scaling {
            s = s.with_linear_lr_scaling();
        }
        s
    }
}

/// Flags that may be given with `--resume` (everything else comes from the run).
const RESUMABLE: [&str; 4] = ["resume", "epochs", "quiet", "data_dir"];

/// Runs `tapegrad train`; `explicit` names the arguments given on the command line (clap
/// ids, i.e. field names), so `--resume` can refuse those that contradict the run.
pub fn run(args: &Args, explicit: &[String]) -> ExitCode {
    let ranks = match distributed::check(args).and_then(|()| Distributed::start(args.distributed)) {
        Ok(ranks) => ranks,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = train(args, explicit, &ranks);
    ranks.finish(result)
}

/// The saved settings of the run in `dir`, with the command line's --epochs, --quiet and
/// --data-dir; an error naming every other given flag whose value differs from the run.
fn resumed_args(cli: &Args, dir: &Path, explicit: &[String]) -> Result<Args, String> {
    let path = dir.join("args.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let saved: Args =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let given = serde_json::to_value(cli).expect("serialisable");
    let run = serde_json::to_value(&saved).expect("serialisable");
    let contradictions: Vec<String> = explicit
        .iter()
        .filter(|id| !RESUMABLE.contains(&id.as_str()))
        .filter(|id| id.as_str() != "out" || cli.out.as_deref() != Some(dir))
        .filter(|id| given.get(id.as_str()) != run.get(id.as_str()))
        .map(|id| {
            let show = |v: Option<&serde_json::Value>| match v {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
                None => "unset".into(),
            };
            format!(
                "--{} {} (the run has {})",
                id.replace('_', "-"),
                show(given.get(id.as_str())),
                show(run.get(id.as_str()))
            )
        })
        .collect();
    if !contradictions.is_empty() {
        return Err(format!(
            "--resume {}: {} contradict{} the run; only --epochs, --quiet and --data-dir may change when resuming",
            dir.display(),
            contradictions.join(", "),
            if contradictions.len() == 1 { "s" } else { "" }
        ));
    }
    let mut args = saved;
    args.epochs = Some(cli.epochs.unwrap_or(args.epochs()));
    args.out = Some(dir.to_path_buf());
    args.quiet = cli.quiet;
    if cli.common.data_dir.is_some() {
        args.common.data_dir = cli.common.data_dir.clone();
    }
    Ok(args)
}

fn train(cli: &Args, explicit: &[String], ranks: &Distributed) -> Result<(), String> {
    let mut args = match &cli.resume {
        Some(dir) => resumed_args(cli, dir, explicit)?,
        None => cli.clone(),
    };
    args.distributed = cli.distributed;
    args.common.fill_model_defaults();
    // A resumed run's saved settings are checked too.
    distributed::check(&args)?;
    if args.epochs() == 0 {
        println!("--epochs 0: nothing to train");
        return Ok(());
    }
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from(format!(
            "runs/{}-{}-{}",
            name(args.common.dataset),
            name(args.common.model),
            args.common.seed
        ))
    });

    // Everything that can fail on the user's input is checked before the run folder is
    // touched: the data, the model for its shape, and a checkpoint being resumed.
    let started = Instant::now();
    let data = datasets::load(&args.common)?;
    let common = &args.common.clone();
    let model = common.build_model(data.train.sample_shape(), data.train.num_classes())?;
    let optimizer = common.build_optimizer(model.params(), common.lr());
    let schedule = args.batch_schedule();
    let total_updates: usize = (0..args.epochs())
        .map(|e| {
            data.train
                .len()
                .div_ceil(schedule.batch_size(e))
                .div_ceil(args.accumulate)
        })
        .sum();
    let adaptive = if args.adaptive() {
        if args.grow_batch.len() > 1 || args.accumulate > 1 {
            return Err("--grow-batch adaptive sets the batch and the accumulation itself: give it without EPOCH:SIZE milestones or --accumulate".into());
        }
        let max_micro = match (args.max_micro_batch, args.memory_limit) {
            (Some(m), _) => m,
            (None, None) => args.max_batch,
            (None, Some(limit)) => {
                if !counting_enabled() {
                    return Err(
                        "--memory-limit: memory measurement needs the counting allocator".into(),
                    );
                }
                let fits = largest_batch_that_fits(limit, args.max_batch, |b| {
                    step_peak(common, &data.train, b)
                });
                stop_counting();
                let fits = fits.ok_or_else(|| {
                    format!(
                        "--memory-limit {}: not even a batch of 1 fits",
                        format_bytes(limit)
                    )
                })?;
                println!(
                    "largest micro-batch that fits in {}: {fits}",
                    format_bytes(limit)
                );
                fits
            }
        };
        args.max_micro_batch = Some(max_micro);
        Some(AdaptiveBatch::new(
            args.batch_size,
            args.max_batch,
            max_micro,
            args.lr_rule(),
        ))
    } else {
        None
    };
    let config = TrainConfig {
        adaptive_batch: adaptive,
        epochs: args.epochs(),
        batch_size: schedule,
        accumulate: args.accumulate,
        schedule: args.common.schedule.build(total_updates),
        clip_grad_norm: args.common.clip_grad_norm,
        seed: args.common.seed,
        early_stopping_patience: args.patience,
        checkpoint_dir: Some(out.clone()),
        data_parallel: ranks.data_parallel(),
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::with_loss(model, optimizer, config, common.loss());
    if cli.resume.is_some() {
        trainer.resume(&out).map_err(|e| e.to_string())?;
        if trainer.state.epoch >= args.epochs() && trainer.state.batch_in_epoch == 0 {
            println!(
                "the run in {} has done {} epochs: nothing to train (give --epochs above {} to continue it)",
                out.display(),
                trainer.state.epoch,
                trainer.state.epoch
            );
            return Ok(());
        }
    }
    // Only rank 0 of a --distributed run writes files.
    let main = ranks.is_main();
    if main {
        std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
        let settings = serde_json::to_string_pretty(&args).expect("serialisable");
        write_atomic(&out.join("args.json"), settings.as_bytes()).map_err(|e| e.to_string())?;
    }

    println!(
        "training {} on {} ({} train / {} val / {} test samples), {} parameters, {} for {} epochs, batch {}{}",
        name(args.common.model),
        name(args.common.dataset),
        data.train.len(),
        data.val.len(),
        data.test.len(),
        trainer.model.num_params(),
        name(args.common.optimizer),
        args.epochs(),
        args.batch_size,
        if args.accumulate > 1 { format!(" x {} accumulated", args.accumulate) } else { String::new() },
    );
    if cli.resume.is_some() {
        println!(
            "resumed at epoch {}, iteration {}",
            trainer.state.epoch, trainer.state.iteration
        );
    }
    let baseline = lm::baseline(&data);

    let mut log = match main {
        true => Some(TrainingLog::new(
            EventWriter::create(&out).map_err(|e| e.to_string())?,
            trainer.model.named_params(),
            args.histograms,
        )),
        false => None,
    };
    if let (Some(log), Some(_)) = (log.as_mut(), &cli.resume) {
        // TensorBoard hides what an earlier process logged after the checkpoint.
        log.writer()
            .add_restart(trainer.state.iteration + 1)
            .map_err(|e| e.to_string())?;
    }
    let mut log_failed = false;
    let epochs = args.epochs();
    let quiet = args.quiet;
    let mut bar: Option<ProgressBar> = None;
    let metrics_path = out.join("metrics.jsonl");
    let mut history = trainer.state.history.clone();
    let result = trainer.fit(&data.train, Some(&data.val), Some(&data.test), |event| {
        if let Err(e) = log.as_mut().map_or(Ok(()), |l| l.record(event)) {
            if !log_failed {
                eprintln!("warning: {e}");
            }
            log_failed = true;
        }
        match event {
        Event::Update { .. } => {}
        Event::Batch { epoch, batch, batches, loss, samples_per_s, .. } => {
            if quiet {
                return;
            }
            let b = bar.get_or_insert_with(|| new_bar(*epoch, epochs, *batches));
            b.set_position(*batch as u64 + 1);
            b.set_message(format!("loss {loss:.4}  {samples_per_s:>8.0} samples/s"));
        }
        Event::Epoch(m) => {
            if let Some(b) = bar.take() {
                b.finish_and_clear();
            }
            println!(
                "epoch {:>3}/{epochs}  train_loss {:.4}  val_loss {:.4}  val_acc {:.4}{}{}  {:.0} samples/s  lr {:.2e}  batch {}",
                m.epoch,
                m.train_loss,
                m.val_loss.unwrap_or(f64::NAN),
                m.val_accuracy.unwrap_or(f64::NAN),
                lm::other_val_metrics(&m.val_metrics),
                m.test_accuracy.map(|a| format!("  test_acc {a:.4}")).unwrap_or_default(),
                m.samples_per_s,
                m.lr,
                m.batch_size,
            );
            history.push(m.clone());
            let lines: String = history.iter().map(|h| lm::metrics_line(h) + "\n").collect();
            let written = if main { write_atomic(&metrics_path, lines.as_bytes()) } else { Ok(()) };
            if let Err(e) = written {
                eprintln!("warning: {e}");
            }
        }
        }
    });
    if let Err(e) = log.as_mut().map_or(Ok(()), |l| l.flush()) {
        eprintln!("warning: {e}");
    }
    if let Some(b) = bar.take() {
        b.finish_and_clear();
    }
    let plot_path = out.join("metrics.svg");
    let drawn = match main {
        true => plot::training_curves(&trainer.state.history, &plot_path),
        false => Ok(()),
    };
    if let Err(e) = drawn {
        eprintln!("warning: could not draw {}: {e}", plot_path.display());
    }
    let stop = result.map_err(|e| e.to_string())?;
    let secs = started.elapsed().as_secs_f64();
    let last = trainer.state.history.last();
    match (stop, last.and_then(|m| m.test_accuracy)) {
        (_, Some(acc)) => println!(
            "test accuracy {acc:.4} after {} epochs ({secs:.1} s)",
            trainer.state.epoch
        ),
        (Stop::EarlyStopped, None) => {
            let acc = trainer
                .evaluate(&data.test)
                .metric("accuracy")
                .unwrap_or(f64::NAN);
            println!(
                "early stop at epoch {}: test accuracy {acc:.4} ({secs:.1} s)",
                trainer.state.epoch
            );
        }
        _ => println!("stopped at epoch {} ({secs:.1} s)", trainer.state.epoch),
    }
    if let Some(b) = &baseline {
        b.report_end(&mut trainer, &data.test);
    }
    if let Some(a) = &trainer.state.adaptive {
        let growths: Vec<String> = a
            .growths
            .iter()
            .map(|(update, batch, why)| format!("{batch} at update {update} ({why})"))
            .collect();
        println!(
            "adaptive batch: {} after {} updates; grew to {}; gradient noise scale {}",
            a.batch,
            trainer.state.iteration,
            if growths.is_empty() {
                "nothing".to_string()
            } else {
                growths.join(", ")
            },
            a.noise_scale()
                .map_or("not measured".to_string(), |b| format!("{b:.0}")),
        );
    }
    println!(
        "wrote {}, {}, TensorBoard events (tensorboard --logdir {}) and a checkpoint in {}",
        metrics_path.display(),
        plot_path.display(),
        out.display(),
        out.display()
    );
    Ok(())
}

fn new_bar(epoch: usize, epochs: usize, batches: usize) -> ProgressBar {
    let bar = ProgressBar::new(batches as u64);
    bar.set_style(
        ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("{:>3}/{epochs}", epoch + 1));
    bar
}

/// The command-line spelling of a value enum.
pub fn name(v: impl clap::ValueEnum) -> String {
    v.to_possible_value()
        .map(|p| p.get_name().to_string())
        .unwrap_or_default()
}
