//! `tapegrad batch-sweep`: trains the same model at several batch sizes and reports
//! throughput, updates/s, peak memory, final loss and validation accuracy per size; with
//! `--memory-limit`, the largest batch whose training step fits.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use tapegrad_data::{
    counting_enabled, format_bytes, largest_batch_that_fits, measure_peak, parse_bytes,
    BatchSizeSchedule,
};
use tapegrad_nn::Module;
use tapegrad_train::{Event, Samples, TrainConfig, Trainer};

use crate::datasets::{self, Split};
use crate::plot::{self, SweepPoint};
use crate::setup::{positive_f64, positive_usize, CommonArgs};
use crate::train::name;

/// Train at several batch sizes and compare.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Batch sizes to try, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,128,512,1024", value_parser = positive_usize)]
    pub batch_sizes: Vec<usize>,
    /// Data, model, optimiser and schedule (the optimiser defaults to sgd here).
    #[command(flatten)]
    pub common: CommonArgs,
    /// Scale the learning rate linearly with the batch size (lr x batch / base-batch);
    /// otherwise the same rate for every batch size.
    #[arg(long)]
    pub lr_scaling: bool,
    /// The batch size at which --lr applies when scaling.
    #[arg(long, default_value_t = 32, value_parser = positive_usize)]
    pub base_batch: usize,
    /// Epochs per batch size (ignored with --seconds).
    #[arg(long, default_value_t = 2, value_parser = positive_usize)]
    pub epochs: usize,
    /// Train each batch size for this many seconds of wall clock instead of --epochs.
    #[arg(long, value_parser = positive_f64)]
    pub seconds: Option<f64>,
    /// Report the largest batch whose training step fits this much memory (e.g. 512MiB).
    #[arg(long, value_parser = parse_bytes)]
    pub memory_limit: Option<usize>,
    /// Folder for batch_sweep.csv and batch_sweep.svg.
    #[arg(long, default_value = "runs/batch-sweep")]
    pub out: PathBuf,
}

/// One batch size's results.
struct Row {
    batch: usize,
    lr: f64,
    samples_per_s: f64,
    updates_per_s: f64,
    updates: usize,
    peak_bytes: usize,
    train_loss: f64,
    val_accuracy: f64,
    epochs: f64,
}

/// Runs `tapegrad batch-sweep`.
pub fn run(args: &Args) -> ExitCode {
    match sweep(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Peak bytes above the baseline of one training step (forward, backward, update) at
/// batch size `batch`.
pub fn step_peak(common: &CommonArgs, data: &Split, batch: usize) -> usize {
    let model = common
        .build_model(data.sample_shape(), data.num_classes())
        .expect("the model was built for this data before");
    let opt = common.build_optimizer(model.params(), common.lr());
    let mut trainer = Trainer::with_loss(model, opt, TrainConfig::default(), common.loss());
    let n = batch.min(data.len());
    let idx: Vec<usize> = (0..batch).map(|i| i % n).collect();
    let micro_batches = [Samples::batch(data, &idx)];
    // One step first: optimiser state is allocated once, not per step. A non-finite loss
    // still costs the memory of its step: measure it regardless.
    let mut step = || {
        trainer.step(&micro_batches).ok();
    };
    step();
    measure_peak(step).1
}

fn sweep(args: &Args) -> Result<(), String> {
    if args.batch_sizes.is_empty() {
        return Err("--batch-sizes needs at least one size".into());
    }
    let common = &args.common;
    let data = datasets::load(common)?;
    // Checks that the model fits the data once, before anything is trained or written.
    common.build_model(data.train.sample_shape(), data.train.num_classes())?;
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let base_lr = common.lr();
    println!(
        "batch-sweep: {} on {} ({} train samples), {}, lr {base_lr}{}, {}",
        name(common.model),
        name(common.dataset),
        data.train.len(),
        name(common.optimizer),
        if args.lr_scaling {
            format!(" x batch/{}", args.base_batch)
        } else {
            " (fixed)".into()
        },
        match args.seconds {
            Some(s) => format!("{s} s per batch size"),
            None => format!("{} epochs per batch size", args.epochs),
        }
    );
    let mut rows = Vec::new();
    for &batch in &args.batch_sizes {
        let lr = if args.lr_scaling {
            base_lr * batch as f64 / args.base_batch as f64
        } else {
            base_lr
        };
        let peak_bytes = step_peak(common, &data.train, batch);
        let model = common.build_model(data.train.sample_shape(), data.train.num_classes())?;
        let opt = common.build_optimizer(model.params(), lr);
        // A schedule spans the epochs of one batch size (a timed run has no known end:
        // its schedule spans the updates of --epochs).
        let updates = data.train.len().div_ceil(batch) * args.epochs;
        let config = TrainConfig {
            epochs: if args.seconds.is_some() {
                usize::MAX
            } else {
                args.epochs
            },
            batch_size: BatchSizeSchedule::new(batch),
            schedule: common.schedule.build(updates),
            clip_grad_norm: common.clip_grad_norm,
            seed: common.seed,
            time_budget: args.seconds.map(Duration::from_secs_f64),
            ..TrainConfig::default()
        };
        let mut trainer = Trainer::with_loss(model, opt, config, common.loss());
        let (mut samples, mut in_epoch, mut recent) = (0usize, 0usize, Vec::new());
        let started = Instant::now();
        let result = trainer.fit(&data.train, None, None, |e| {
            if let Event::Batch {
                loss,
                samples: so_far,
                ..
            } = e
            {
                // `so_far` counts the current epoch's samples; it restarts each epoch.
                samples += if *so_far > in_epoch {
                    so_far - in_epoch
                } else {
                    *so_far
                };
                in_epoch = *so_far;
                recent.push(*loss);
            }
        });
        let secs = started.elapsed().as_secs_f64();
        if let Err(e) = result {
            println!("batch {batch:>5}: stopped: {e}");
            continue;
        }
        let samples = samples.max(1);
        let tail = recent.len().min((recent.len() / 10).max(1));
        let train_loss = recent[recent.len() - tail..].iter().sum::<f64>() / tail as f64;
        let val_accuracy = trainer
            .evaluate(&data.val)
            .metric("accuracy")
            .unwrap_or(f64::NAN);
        rows.push(Row {
            batch,
            lr,
            samples_per_s: samples as f64 / secs,
            updates_per_s: trainer.state.iteration as f64 / secs,
            updates: trainer.state.iteration,
            peak_bytes,
            train_loss,
            val_accuracy,
            epochs: samples as f64 / data.train.len() as f64,
        });
        let r = rows.last().expect("pushed");
        println!(
            "batch {:>5}: {:>9.0} samples/s {:>8.1} updates/s  peak {:>10}  train_loss {:.4}  val_acc {:.4}",
            r.batch,
            r.samples_per_s,
            r.updates_per_s,
            format_bytes(r.peak_bytes),
            r.train_loss,
            r.val_accuracy
        );
    }
    if rows.is_empty() {
        return Err("every batch size stopped before finishing (see the lines above)".into());
    }
    println!();
    println!(
        "| batch | lr | samples/s | updates/s | peak memory | epochs | train loss | val accuracy |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut csv = String::from(
        "batch_size,lr,samples_per_s,updates_per_s,peak_bytes,epochs,train_loss,val_accuracy,updates\n",
    );
    for r in &rows {
        println!(
            "| {} | {:.4} | {:.0} | {:.1} | {} | {:.2} | {:.4} | {:.4} |",
            r.batch,
            r.lr,
            r.samples_per_s,
            r.updates_per_s,
            format_bytes(r.peak_bytes),
            r.epochs,
            r.train_loss,
            r.val_accuracy
        );
        csv.push_str(&format!(
            "{},{},{:.3},{:.3},{},{:.4},{:.6},{:.6},{}\n",
            r.batch,
            r.lr,
            r.samples_per_s,
            r.updates_per_s,
            r.peak_bytes,
            r.epochs,
            r.train_loss,
            r.val_accuracy,
            r.updates
        ));
    }
    let csv_path = args.out.join("batch_sweep.csv");
    tapegrad_train::write_atomic(&csv_path, csv.as_bytes()).map_err(|e| e.to_string())?;
    let svg_path = args.out.join("batch_sweep.svg");
    let points: Vec<SweepPoint> = rows
        .iter()
        .map(|r| SweepPoint {
            batch_size: r.batch,
            samples_per_s: r.samples_per_s,
            val_accuracy: r.val_accuracy,
        })
        .collect();
    if let Err(e) = plot::sweep(&points, &svg_path) {
        eprintln!("warning: could not draw {}: {e}", svg_path.display());
    }
    println!("wrote {} and {}", csv_path.display(), svg_path.display());
    if let Some(limit) = args.memory_limit {
        if !counting_enabled() {
            return Err("memory measurement needs the counting allocator".into());
        }
        let max = 1 << 16;
        match largest_batch_that_fits(limit, max, |b| step_peak(common, &data.train, b)) {
            Some(b) if b == max => {
                println!("every batch up to {max} fits in {}", format_bytes(limit))
            }
            Some(b) => println!(
                "largest batch that fits in {}: {b} (its step peaks at {})",
                format_bytes(limit),
                format_bytes(step_peak(common, &data.train, b))
            ),
            None => println!("not even a batch of 1 fits in {}", format_bytes(limit)),
        }
    }
    Ok(())
}
