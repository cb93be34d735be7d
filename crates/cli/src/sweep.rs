//! `tapegrad batch-sweep`: trains the same model at several batch sizes and reports
//! throughput, updates/s, peak memory, final loss and validation accuracy per size; with
//! `--memory-limit`, the largest batch whose training step fits.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use tapegrad_data::{
    counting_enabled, format_bytes, largest_batch_that_fits, measure_peak, parse_bytes,
    BatchSizeSchedule, Dataset, InMemoryDataset,
};
use tapegrad_nn::loss::{cross_entropy, CrossEntropyOptions};
use tapegrad_nn::Module;
use tapegrad_train::{evaluate, Event, TrainConfig, Trainer, Update};

use crate::datasets::{self, DatasetName};
use crate::models::{self, Arch};
use crate::plot::{self, SweepPoint};
use crate::setup::{positive_f64, positive_usize, OptimizerName};
use crate::train::name;

/// Train at several batch sizes and compare.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Batch sizes to try, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,128,512,1024", value_parser = positive_usize)]
    pub batch_sizes: Vec<usize>,
    /// Dataset.
    #[arg(long, value_enum, default_value = "digits")]
    pub dataset: DatasetName,
    /// Folder with the Fashion-MNIST IDX files.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Model architecture.
    #[arg(long, value_enum, default_value = "mlp")]
    pub model: Arch,
    /// Optimiser.
    #[arg(long, value_enum, default_value = "sgd")]
    pub optimizer: OptimizerName,
    /// Learning rate at --base-batch [default: the optimiser's].
    #[arg(long, value_parser = positive_f64)]
    pub lr: Option<f64>,
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
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
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
fn step_peak(args: &Args, data: &InMemoryDataset, batch: usize) -> usize {
    let model = models::build(
        args.model,
        data.sample_shape(),
        data.num_classes(),
        0.0,
        args.seed,
    )
    .expect("the model was built for this data before");
    let mut opt = args
        .optimizer
        .build(model.params(), args.optimizer.default_lr(), 0.0);
    let n = batch.min(data.len());
    let idx: Vec<usize> = (0..batch).map(|i| i % n).collect();
    let part = data.subset(&idx);
    let x = tapegrad::Tensor::from_vec(
        part.features().to_vec(),
        &[&[batch][..], data.sample_shape()].concat(),
    );
    // One step first: optimiser state is allocated once, not per step.
    let params = model.params();
    let mut step = || {
        let loss = cross_entropy(
            &model.forward(&x),
            part.labels(),
            &CrossEntropyOptions::default(),
        );
        let mut update = Update::new();
        // A non-finite loss still costs the memory of its step: measure it regardless.
        if update.add(&loss, batch).is_ok() {
            update.apply(&params, opt.as_mut(), None).ok();
        }
    };
    step();
    measure_peak(step).1
}

fn sweep(args: &Args) -> Result<(), String> {
    if args.batch_sizes.is_empty() {
        return Err("--batch-sizes needs at least one size".into());
    }
    let data = datasets::load(args.dataset, args.data_dir.as_ref())?;
    // Checks that the model fits the data once, before anything is trained or written.
    models::build(
        args.model,
        data.train.sample_shape(),
        data.train.num_classes(),
        0.0,
        args.seed,
    )?;
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let base_lr = args.lr.unwrap_or_else(|| args.optimizer.default_lr());
    println!(
        "batch-sweep: {} on {} ({} train samples), {}, lr {base_lr}{}, {}",
        name(args.model),
        name(args.dataset),
        data.train.len(),
        name(args.optimizer),
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
        let peak_bytes = step_peak(args, &data.train, batch);
        let model = models::build(
            args.model,
            data.train.sample_shape(),
            data.train.num_classes(),
            0.0,
            args.seed,
        )?;
        let opt = args.optimizer.build(model.params(), lr, 0.0);
        let config = TrainConfig {
            epochs: if args.seconds.is_some() {
                usize::MAX
            } else {
                args.epochs
            },
            batch_size: BatchSizeSchedule::new(batch),
            seed: args.seed,
            time_budget: args.seconds.map(Duration::from_secs_f64),
            ..TrainConfig::default()
        };
        let mut trainer = Trainer::new(model, opt, config);
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
        let (_, val_accuracy) = evaluate(&mut trainer.model, &data.val, 512);
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
        match largest_batch_that_fits(limit, max, |b| step_peak(args, &data.train, b)) {
            Some(b) if b == max => {
                println!("every batch up to {max} fits in {}", format_bytes(limit))
            }
            Some(b) => println!(
                "largest batch that fits in {}: {b} (its step peaks at {})",
                format_bytes(limit),
                format_bytes(step_peak(args, &data.train, b))
            ),
            None => println!("not even a batch of 1 fits in {}", format_bytes(limit)),
        }
    }
    Ok(())
}
