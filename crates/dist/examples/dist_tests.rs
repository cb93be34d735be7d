//! The MPI tests of tapegrad-dist. Built only with the `mpi` feature and run by `.ci/run`
//! under mpirun:
//!
//! ```text
//! cargo build -p tapegrad-dist --features mpi --example dist_tests
//! mpirun --allow-run-as-root --oversubscribe -np 2 target/debug/examples/dist_tests
//! mpirun --allow-run-as-root --oversubscribe -np 3 target/debug/examples/dist_tests
//! ```
//!
//! Every rank runs every test; rank 0 prints one line per test and `N passed, M failed`,
//! and the program exits non-zero if any rank failed any test. The equivalence tests
//! compute the single-process reference on every rank (no communication) and compare.
//!
//! `dist_tests stall` and `dist_tests die` are the failure drills: a rank stops taking
//! part in training (stall) or dies (die); the others must stop with an error, not hang.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use tapegrad::{no_grad, DType, Grads, Tensor};
use tapegrad_data::{digits, BatchSizeSchedule, DataLoader, Dataset, InMemoryDataset};
use tapegrad_dist::collective::{all_reduce_sum, copy_to_parallel, reduce_from_parallel};
use tapegrad_dist::{
    train_step, ColumnParallelLinear, Comm, DdpOptions, Dist, DistributedDataParallel,
    DistributedSampler, RowParallelLinear, SyncBatchNorm,
};
use tapegrad_gradcheck::{gradcheck, Options};
use tapegrad_nn::loss::{cross_entropy, CrossEntropyOptions};
use tapegrad_nn::{BatchNorm1d, Linear, Module, Sequential, Tanh};
use tapegrad_optim::{clip_grad_norm, Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
use tapegrad_train::{TrainConfig, Trainer};

type TestResult = Result<(), String>;
type Test = (&'static str, fn(&Comm) -> TestResult);

fn main() {
    let dist = Dist::init().unwrap_or_else(|e| panic!("dist_tests: {e} (run it under mpirun)"));
    let world = dist.world().clone().with_timeout(Duration::from_secs(120));
    if let Some(drill) = std::env::args().nth(1) {
        failure_drill(&drill, &world);
        return;
    }
    let tests: &[Test] = &[
        ("collectives", collectives),
        ("ddp_broadcasts_rank0_weights", ddp_broadcasts_rank0_weights),
        (
            "ddp_buckets_average_gradients",
            ddp_buckets_average_gradients,
        ),
        ("equivalence_sgd_momentum", equivalence_sgd_momentum),
        ("equivalence_adam_clipped", equivalence_adam_clipped),
        ("no_sync_accumulation", no_sync_accumulation),
        ("trainer_sgd_accumulated", trainer_sgd_accumulated),
        ("trainer_adam_clipped", trainer_adam_clipped),
        (
            "sync_batch_norm_is_global_batch_norm",
            sync_batch_norm_is_global_batch_norm,
        ),
        ("sync_batch_norm_gradcheck", sync_batch_norm_gradcheck),
        (
            "gradcheck_catches_unreduced_statistics",
            gradcheck_catches_unreduced_statistics,
        ),
        (
            "tensor_parallel_mlp_matches_unsplit",
            tensor_parallel_mlp_matches_unsplit,
        ),
    ];
    let (mut passed, mut failed) = (0, 0);
    for (name, test) in tests {
        let start = Instant::now();
        let outcome = match catch_unwind(AssertUnwindSafe(|| test(&world))) {
            Ok(r) => r,
            Err(p) => Err(panic_message(p)),
        };
        if let Err(msg) = &outcome {
            eprintln!("rank {}: {name}: {msg}", world.rank());
        }
        let mut failing = [f64::from(u8::from(outcome.is_err()))];
        world
            .all_reduce_sum(&mut failing, "test outcome")
            .unwrap_or_else(|e| world.abort(2, &e.to_string()));
        if failing[0] == 0.0 {
            passed += 1;
        } else {
            failed += 1;
        }
        if world.rank() == 0 {
            let verdict = if failing[0] == 0.0 {
                "ok".to_string()
            } else {
                format!("FAILED on {} rank(s)", failing[0])
            };
            println!(
                "test {name} (np={}) ... {verdict} ({:.2} s)",
                world.size(),
                start.elapsed().as_secs_f64()
            );
        }
    }
    if world.rank() == 0 {
        println!("{passed} passed, {failed} failed");
    }
    drop(dist);
    if failed > 0 {
        std::process::exit(1);
    }
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into())
}

fn ensure(cond: bool, msg: impl FnOnce() -> String) -> TestResult {
    if cond {
        Ok(())
    } else {
        Err(msg())
    }
}

/// `|a - b| <= tol x max(|b|, 1e-3 x scale)` elementwise, where `scale` is the largest |b|
/// (a relative test that does not explode on entries that are zero up to rounding).
fn close(what: &str, a: &[f64], b: &[f64], tol: f64) -> TestResult {
    ensure(a.len() == b.len(), || {
        format!("{what}: {} values vs {}", a.len(), b.len())
    })?;
    let scale = b.iter().fold(0f64, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let bound = tol * y.abs().max(1e-3 * scale).max(1e-300);
        ensure((x - y).abs() <= bound, || {
            format!(
                "{what}[{i}]: {x:e} vs {y:e} (relative {:e})",
                (x - y).abs() / y.abs().max(1e-300)
            )
        })?;
    }
    Ok(())
}

fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).to_vec::<f64>()
}

fn dist_err(e: tapegrad_dist::DistError) -> String {
    e.to_string()
}

// ------------------------------------------------------------------ collectives, DDP set-up

fn collectives(comm: &Comm) -> TestResult {
    let (r, n) = (comm.rank() as f64, comm.size() as f64);
    let mut v = vec![r, 1.0, -2.0 * r];
    comm.all_reduce_sum(&mut v, "test sum").map_err(dist_err)?;
    let ranks = n * (n - 1.0) / 2.0;
    close("all_reduce_sum", &v, &[ranks, n, -2.0 * ranks], 0.0)?;
    let mut b = vec![r + 10.0; 4];
    let root = comm.size() - 1;
    comm.broadcast(&mut b, root, "test broadcast")
        .map_err(dist_err)?;
    close("broadcast", &b, &[root as f64 + 10.0; 4], 0.0)?;
    comm.barrier("test barrier").map_err(dist_err)?;
    // Differentiable sum: every rank's gradient is the sum of every rank's seed.
    let x = Tensor::from_vec(vec![r + 1.0, 2.0], &[2]).requires_grad();
    let y = all_reduce_sum(&x, comm);
    close("all_reduce_sum op", &values(&y), &[ranks + n, 2.0 * n], 0.0)?;
    let g = y.mul_scalar(r + 1.0).sum().backward();
    close(
        "all_reduce_sum grad",
        &values(&g[&x]),
        &[n * (n + 1.0) / 2.0; 2],
        0.0,
    )
}

fn mlp(seed: u64) -> Sequential {
    Sequential::new()
        .add(Linear::with_options(64, 24, true, DType::F64, seed))
        .add(Tanh)
        .add(Linear::with_options(24, 10, true, DType::F64, seed + 1))
}

fn ddp_broadcasts_rank0_weights(comm: &Comm) -> TestResult {
    // Every rank starts from different weights; after wrapping all hold rank 0's.
    let model = mlp(100 + comm.rank() as u64);
    let ddp = DistributedDataParallel::new(model, comm).map_err(dist_err)?;
    let expected = mlp(100);
    for ((name, p), (_, e)) in ddp.named_params().into_iter().zip(expected.named_params()) {
        close(&name, &values(&p), &values(&e), 0.0)?;
    }
    // Buffers too.
    let bn = BatchNorm1d::with_dtype(3, DType::F64);
    bn.running_mean()
        .assign_(&Tensor::full(&[3], comm.rank() as f64, DType::F64));
    let ddp = DistributedDataParallel::new(bn, comm).map_err(dist_err)?;
    close(
        "running_mean",
        &values(&ddp.named_buffers()[0].1),
        &[0.0; 3],
        0.0,
    )
}

/// The averaged gradients equal the mean of every rank's own, whatever the bucket size
/// and with or without overlap.
fn ddp_buckets_average_gradients(comm: &Comm) -> TestResult {
    let x = Tensor::randn(&[5, 64], DType::F64, 7 + comm.rank() as u64);
    let labels: Vec<i64> = (0..5).map(|i| ((i + comm.rank()) % 10) as i64).collect();
    let labels = Tensor::from_vec(labels, &[5]);
    let ce = CrossEntropyOptions::default();
    for (bucket_bytes, overlap, buckets) in [
        (25 << 20, true, 1),
        (1, true, 4),
        (2000, false, 3),
        (2000, true, 3),
    ] {
        let options = DdpOptions {
            bucket_bytes,
            overlap,
        };
        let mut ddp =
            DistributedDataParallel::with_options(mlp(3), comm, options).map_err(dist_err)?;
        ensure(ddp.num_buckets() == buckets, || {
            format!(
                "{} buckets for {bucket_bytes} bytes, expected {buckets}",
                ddp.num_buckets()
            )
        })?;
        let loss = cross_entropy(&ddp.forward(&x), &labels, &ce);
        let local = loss.backward_retain_graph();
        let grads = ddp.backward(&loss).map_err(dist_err)?;
        for (name, p) in ddp.named_params() {
            let mean = comm
                .all_reduce_tensor(&local[&p], "reference sum")
                .map_err(dist_err)?
                .div_scalar(comm.size() as f64);
            close(
                &format!("{name} (bucket {bucket_bytes} B, overlap {overlap})"),
                &values(&grads[&p]),
                &values(&mean),
                1e-12,
            )?;
        }
    }
    Ok(())
}

// ------------------------------------------------------------------ equivalence

/// 97 digits, features scaled to [0, 1]. With a global batch of 10, batches split
/// unevenly over 3 ranks (4, 3, 3) and the last one (7) over 2 and 3; with 12, the last
/// batch of an epoch has one sample, so some ranks have an empty shard.
fn small_digits() -> InMemoryDataset {
    let mut d = digits()
        .expect("embedded digits")
        .subset(&(0..97).collect::<Vec<_>>());
    d.scale(1.0 / 16.0);
    d
}

const GLOBAL_BATCH: usize = 12;
const UNEVEN_BATCH: usize = 10;
const SEED: u64 = 5;

fn ce_mean(out: &Tensor, y: &Tensor) -> Tensor {
    cross_entropy(out, y, &CrossEntropyOptions::default())
}

/// The single-process step the data-parallel one must reproduce: mean loss over the
/// batch, backward, optional global-norm clipping, optimiser step.
fn single_step(
    model: &Sequential,
    opt: &mut dyn Optimizer,
    x: &Tensor,
    y: &Tensor,
    clip: Option<f64>,
) {
    let mut grads = ce_mean(&model.forward(&x.to_dtype(DType::F64)), y).backward();
    if let Some(c) = clip {
        clip_grad_norm(&mut grads, model.params().iter(), c, 2.0, false).expect("no error");
    }
    opt.step(&grads);
}

/// Trains `epochs` epochs one way and the other and compares the weights.
fn equivalence(
    comm: &Comm,
    make_opt: fn(Vec<tapegrad_nn::Param>) -> Box<dyn Optimizer>,
    clip: Option<f64>,
    global_batch: usize,
) -> TestResult {
    let data = small_digits();
    let loader = DataLoader::new(data, global_batch)
        .shuffle(SEED)
        .prefetch(0);
    let epochs = 2;

    let single = mlp(11);
    let mut single_opt = make_opt(single.params());
    for e in 0..epochs {
        for b in loader.epoch(e) {
            single_step(&single, single_opt.as_mut(), &b.x, &b.y, clip);
        }
    }

    let mut ddp = DistributedDataParallel::with_options(
        mlp(11),
        comm,
        DdpOptions {
            bucket_bytes: 4096,
            overlap: true,
        },
    )
    .map_err(dist_err)?;
    let mut opt = make_opt(ddp.params());
    let sampler = DistributedSampler::new(&loader, comm.rank(), comm.size());
    let (mut steps, mut empty, mut expected_empty, mut clipped) = (0, 0, 0, 0);
    for e in 0..epochs {
        for shard in sampler.epoch(e) {
            empty += usize::from(shard.batch.is_empty());
            expected_empty += usize::from(shard.global_len <= comm.rank());
            let out =
                train_step(&mut ddp, opt.as_mut(), &shard, ce_mean, clip).map_err(dist_err)?;
            clipped += usize::from(out.grad_norm.zip(clip).is_some_and(|(n, c)| n > c));
            steps += 1;
        }
    }
    ensure(steps == epochs * 97usize.div_ceil(global_batch), || {
        format!("{steps} steps")
    })?;
    ensure(empty == expected_empty, || {
        format!("{empty} empty shards, expected {expected_empty}")
    })?;
    ensure(
        clip.is_none() || (clipped >= 3 && clipped + 3 <= steps),
        || format!("{clipped} of {steps} steps clipped: the bound does not test clipping"),
    )?;
    for ((name, p), (_, q)) in ddp.named_params().into_iter().zip(single.named_params()) {
        close(&name, &values(&p), &values(&q), 1e-10)?;
    }
    Ok(())
}

fn equivalence_sgd_momentum(comm: &Comm) -> TestResult {
    equivalence(
        comm,
        |p| {
            Box::new(Sgd::new(
                p,
                SgdConfig {
                    lr: 0.3,
                    momentum: 0.9,
                    weight_decay: 1e-3,
                    ..Default::default()
                },
            ))
        },
        None,
        UNEVEN_BATCH,
    )
}

fn equivalence_adam_clipped(comm: &Comm) -> TestResult {
    // A bound the gradient norm crosses (checked), so clipping changes the result.
    equivalence(
        comm,
        |p| {
            Box::new(Adam::new(
                p,
                AdamConfig {
                    lr: 1e-2,
                    ..Default::default()
                },
            ))
        },
        Some(0.3),
        GLOBAL_BATCH,
    )
}

/// The `Trainer` with [`TrainerComm`](tapegrad_dist::TrainerComm) as its data-parallel
/// hook (what `tapegrad train --distributed` runs) against the `Trainer` of one process
/// at the same global batch: 2 epochs, `accumulate` micro-batches per update, evaluation
/// on a held-out set; same weights to 1e-10 and the same metrics. Each rank starts from
/// its own initialisation (the trainer broadcasts rank 0's); small buckets split the
/// gradients into several all-reduces.
fn trainer_equivalence(
    comm: &Comm,
    make_opt: fn(Vec<tapegrad_nn::Param>) -> Box<dyn Optimizer>,
    clip: Option<f64>,
    batch: usize,
    accumulate: usize,
) -> TestResult {
    let (train, val) = small_digits().split(0.2, 3);
    ensure(train.len() == 78, || {
        format!("{} training samples", train.len())
    })?;
    let config = || TrainConfig {
        epochs: 2,
        batch_size: BatchSizeSchedule::new(batch),
        accumulate,
        clip_grad_norm: clip,
        seed: SEED,
        ..TrainConfig::default()
    };
    let single = mlp(21);
    let opt = make_opt(single.params());
    let mut single = Trainer::new(single, opt, config());
    single
        .fit(&train, Some(&val), None, |_| {})
        .map_err(|e| e.to_string())?;

    let model = mlp(21 + 5 * comm.rank() as u64);
    let opt = make_opt(model.params());
    let hook = std::sync::Arc::new(tapegrad_dist::TrainerComm::new(comm).with_bucket_bytes(4096));
    let mut dist = Trainer::new(
        model,
        opt,
        TrainConfig {
            data_parallel: Some(hook.clone()),
            ..config()
        },
    );
    dist.fit(&train, Some(&val), None, |_| {})
        .map_err(|e| e.to_string())?;
    ensure(!hook.failed(), || "a collective failed".into())?;
    ensure(dist.state.iteration == single.state.iteration, || {
        format!(
            "{} updates, one process {}",
            dist.state.iteration, single.state.iteration
        )
    })?;
    for ((name, p), (_, q)) in dist
        .model
        .named_params()
        .into_iter()
        .zip(single.model.named_params())
    {
        close(&name, &values(&p), &values(&q), 1e-10)?;
    }
    for (a, b) in dist.state.history.iter().zip(&single.state.history) {
        let metrics = |m: &tapegrad_train::EpochMetrics| {
            vec![
                m.train_loss,
                m.val_loss.unwrap_or(f64::NAN),
                m.val_accuracy.unwrap_or(f64::NAN),
            ]
        };
        close(
            &format!("epoch {} metrics", a.epoch),
            &metrics(a),
            &metrics(b),
            1e-10,
        )?;
    }
    Ok(())
}

fn trainer_sgd_accumulated(comm: &Comm) -> TestResult {
    // 78 training samples in micro-batches of 10 (shards of 4, 3 and 3 at np = 3, a last
    // one of 8), 2 per update.
    trainer_equivalence(
        comm,
        |p| {
            Box::new(Sgd::new(
                p,
                SgdConfig {
                    lr: 0.3,
                    momentum: 0.9,
                    weight_decay: 1e-3,
                    ..Default::default()
                },
            ))
        },
        None,
        UNEVEN_BATCH,
        2,
    )
}

fn trainer_adam_clipped(comm: &Comm) -> TestResult {
    // 78 training samples in batches of 19: the last has two, so at np = 3 a rank has none.
    trainer_equivalence(
        comm,
        |p| {
            Box::new(Adam::new(
                p,
                AdamConfig {
                    lr: 1e-2,
                    ..Default::default()
                },
            ))
        },
        Some(0.3),
        19,
        1,
    )
}

/// Two micro-batches under `no_sync` and a third synchronised equal one process's update
/// on the three global batches together (each weighted by its share of the samples).
fn no_sync_accumulation(comm: &Comm) -> TestResult {
    let data = small_digits();
    let loader = DataLoader::new(data, GLOBAL_BATCH)
        .shuffle(SEED)
        .prefetch(0);
    let global: Vec<_> = loader.epoch(0).take(3).collect();
    let total: usize = global.iter().map(|b| b.len()).sum();

    let single = mlp(21);
    let mut single_opt = Sgd::new(
        single.params(),
        SgdConfig {
            lr: 0.5,
            ..Default::default()
        },
    );
    let mut acc = Grads::new();
    for b in &global {
        let mut g = ce_mean(&single.forward(&b.x.to_dtype(DType::F64)), &b.y).backward();
        g.scale(b.len() as f64 / total as f64);
        acc.add(&g);
    }
    single_opt.step(&acc);

    let mut ddp = DistributedDataParallel::new(mlp(21), comm).map_err(dist_err)?;
    let mut opt = Sgd::new(
        ddp.params(),
        SgdConfig {
            lr: 0.5,
            ..Default::default()
        },
    );
    let sampler = DistributedSampler::new(&loader, comm.rank(), comm.size());
    let shards: Vec<_> = sampler.epoch(0).take(3).collect();
    let micro = |ddp: &mut DistributedDataParallel<Sequential>, s: &tapegrad_dist::Shard| {
        let loss = ce_mean(&ddp.forward(&s.batch.x.to_dtype(DType::F64)), &s.batch.y);
        ddp.backward_scaled(&loss, s.batch.len() as f64 / total as f64)
    };
    ddp.no_sync(|ddp| -> Result<(), tapegrad_dist::DistError> {
        micro(ddp, &shards[0])?;
        micro(ddp, &shards[1])?;
        Ok(())
    })
    .map_err(dist_err)?;
    let grads = micro(&mut ddp, &shards[2]).map_err(dist_err)?;
    opt.step(&grads);
    for ((name, p), (_, q)) in ddp.named_params().into_iter().zip(single.named_params()) {
        close(&name, &values(&p), &values(&q), 1e-10)?;
    }
    Ok(())
}

// ------------------------------------------------------------------ SyncBatchNorm

/// Rows of `x` this rank holds: `r, r + np, ...` (as the sampler deals them).
fn my_rows(x: &Tensor, comm: &Comm) -> Tensor {
    let rows: Vec<i64> = (comm.rank()..x.shape()[0])
        .step_by(comm.size())
        .map(|r| r as i64)
        .collect();
    x.index_select(0, &Tensor::from_vec(rows.clone(), &[rows.len()]))
}

fn sync_batch_norm_is_global_batch_norm(comm: &Comm) -> TestResult {
    // The global batch, the same on every rank; 7 rows split unevenly for np = 2 and 3.
    let x = Tensor::randn(&[7, 3, 2], DType::F64, 3)
        .mul_scalar(2.0)
        .add_scalar(0.5);
    let c = Tensor::randn(&[7, 3, 2], DType::F64, 4);
    let reference = BatchNorm1d::with_dtype(3, DType::F64);
    let xr = x.clone().requires_grad();
    let y = reference.forward(&xr);
    let g = y.mul(&c).sum().backward();

    let bn = SyncBatchNorm::new(3, DType::F64, comm);
    let xl = my_rows(&x, comm).requires_grad();
    let yl = bn.forward(&xl);
    close(
        "output rows",
        &values(&yl),
        &values(&my_rows(&y, comm)),
        1e-12,
    )?;
    close(
        "running_mean",
        &values(bn.running_mean()),
        &values(reference.running_mean()),
        1e-12,
    )?;
    close(
        "running_var",
        &values(bn.running_var()),
        &values(reference.running_var()),
        1e-12,
    )?;
    let gl = yl.mul(&my_rows(&c, comm)).sum().backward();
    close(
        "input gradient rows",
        &values(&gl[&xl]),
        &values(&my_rows(&g[&xr], comm)),
        1e-10,
    )?;
    // Parameter gradients are per-rank shares; their sum is the single process's.
    for (mine, theirs) in [
        (bn.weight(), reference.weight().unwrap()),
        (bn.bias(), reference.bias().unwrap()),
    ] {
        let total = comm
            .all_reduce_tensor(&gl[mine], "sum of shares")
            .map_err(dist_err)?;
        close(
            "parameter gradient",
            &values(&total),
            &values(&g[theirs]),
            1e-10,
        )?;
    }
    Ok(())
}

/// The global input `x` is replicated; each rank normalises its rows with SyncBatchNorm
/// and the ranks' losses are summed. `copy_to_parallel` sums the input's gradient over the
/// ranks and `reduce_from_parallel` the losses, so every rank's function and gradient are
/// the global ones, and gradcheck can perturb `x` in lockstep on every rank.
fn sync_bn_objective(comm: &Comm, bn: &dyn Module, t: &[Tensor], reduced_stats: bool) -> Tensor {
    let x = my_rows(&copy_to_parallel(&t[0], comm), comm);
    let c = my_rows(&Tensor::randn(t[0].shape(), DType::F64, 9), comm);
    let y = if reduced_stats {
        bn.forward(&x)
    } else {
        // Statistics summed over ranks outside the tape: their gradient is lost.
        let n = no_grad(|| {
            comm.all_reduce_tensor(&Tensor::scalar(x.shape()[0] as f64), "count")
                .unwrap()
        })
        .item();
        let sum = no_grad(|| {
            comm.all_reduce_tensor(&x.sum_dim(&[0], true), "sum")
                .unwrap()
        });
        let mean = x
            .sum_dim(&[0], true)
            .sub(&x.sum_dim(&[0], true).detach())
            .add(&sum)
            .div_scalar(n);
        let centred = x.sub(&mean);
        let sq = no_grad(|| {
            comm.all_reduce_tensor(&centred.square().sum_dim(&[0], true), "sq")
                .unwrap()
        });
        centred.mul(&sq.div_scalar(n).add_scalar(1e-5).rsqrt())
    };
    reduce_from_parallel(&y.mul(&c).sum(), comm)
}

fn sync_batch_norm_gradcheck(comm: &Comm) -> TestResult {
    let bn = SyncBatchNorm::new(3, DType::F64, comm);
    let x = Tensor::randn(&[6, 3], DType::F64, 12);
    let report = gradcheck(
        |t| sync_bn_objective(comm, &bn, t, true),
        &[x],
        &Options::default(),
    )
    .map_err(|e| e.to_string())?;
    ensure(report.max_rel_error() < 1e-6, || {
        format!("max relative error {}", report.max_rel_error())
    })
}

/// The cross-rank gradcheck can fail: statistics all-reduced off the tape lose the other
/// ranks' share of the gradient, and the check must say so.
fn gradcheck_catches_unreduced_statistics(comm: &Comm) -> TestResult {
    let bn = SyncBatchNorm::new(3, DType::F64, comm);
    let x = Tensor::randn(&[6, 3], DType::F64, 12);
    match gradcheck(
        |t| sync_bn_objective(comm, &bn, t, false),
        &[x],
        &Options::default(),
    ) {
        Err(e) if e.report().is_some() => Ok(()),
        Err(e) => Err(format!("failed for another reason: {e}")),
        Ok(_) => Err("gradcheck passed a gradient that ignores the other ranks".into()),
    }
}

// ------------------------------------------------------------------ tensor parallel

fn tensor_parallel_mlp_matches_unsplit(comm: &Comm) -> TestResult {
    // 12 hidden features split over 2 or 3 ranks.
    let first = Linear::with_options(5, 12, true, DType::F64, 31);
    let second = Linear::with_options(12, 4, true, DType::F64, 32);
    let x = Tensor::randn(&[3, 5], DType::F64, 33);
    let target = Tensor::randn(&[3, 4], DType::F64, 34);

    let xf = x.clone().requires_grad();
    let yf = second.forward(&first.forward(&xf).tanh());
    let gf = yf.sub(&target).square().sum().backward();

    let col = ColumnParallelLinear::from_linear(&first, comm);
    let row = RowParallelLinear::from_linear(&second, comm);
    let xp = x.clone().requires_grad();
    let yp = row.forward(&col.forward(&xp).tanh());
    close("output", &values(&yp), &values(&yf), 1e-12)?;
    // Every rank holds the whole output and computes the same loss: one objective,
    // computed redundantly (Megatron). Each shard's gradient is its slice of the full
    // one, and the input's (summed over the ranks' paths by copy_to_parallel) is whole.
    let gp = yp.sub(&target).square().sum().backward();
    let part = 12 / comm.size();
    let r = comm.rank();
    let slice = |t: &Tensor, dim: isize| values(&t.narrow(dim, r * part, part));
    close(
        "input gradient",
        &values(&gp[&xp]),
        &values(&gf[&xf]),
        1e-12,
    )?;
    close(
        "column weight gradient",
        &values(&gp[&col.weight]),
        &slice(&gf[&first.weight], 0),
        1e-12,
    )?;
    let (cb, fb) = (col.bias.as_ref().unwrap(), first.bias.as_ref().unwrap());
    close(
        "column bias gradient",
        &values(&gp[cb]),
        &slice(&gf[fb], 0),
        1e-12,
    )?;
    close(
        "row weight gradient",
        &values(&gp[&row.weight]),
        &slice(&gf[&second.weight], 1),
        1e-12,
    )?;
    let (rb, sb) = (row.bias.as_ref().unwrap(), second.bias.as_ref().unwrap());
    close(
        "row bias gradient",
        &values(&gp[rb]),
        &values(&gf[sb]),
        1e-12,
    )
}

// ------------------------------------------------------------------ failure drills

/// `stall`: from the third step on, the last rank stops taking part (it sleeps); the
/// others' next gradient all-reduce times out after 3 s and they stop the job with the
/// error. `die`: the last rank aborts at the third step; mpirun stops the rest.
fn failure_drill(drill: &str, world: &Comm) {
    let comm = world.clone().with_timeout(Duration::from_secs(3));
    let last = comm.size() - 1;
    let loader = DataLoader::new(small_digits(), GLOBAL_BATCH)
        .shuffle(SEED)
        .prefetch(0);
    let sampler = DistributedSampler::new(&loader, comm.rank(), comm.size());
    let mut ddp = DistributedDataParallel::new(mlp(1), &comm)
        .unwrap_or_else(|e| comm.abort(2, &e.to_string()));
    let mut opt = Sgd::new(
        ddp.params(),
        SgdConfig {
            lr: 0.1,
            ..Default::default()
        },
    );
    for (step, shard) in sampler.epoch(0).enumerate() {
        if step == 2 && comm.rank() == last {
            match drill {
                "stall" => std::thread::sleep(Duration::from_secs(600)),
                "die" => std::process::abort(),
                other => panic!("dist_tests: unknown drill {other:?} (stall or die)"),
            }
        }
        if let Err(e) = train_step(&mut ddp, &mut opt, &shard, ce_mean, None) {
            comm.abort(2, &format!("training stopped at step {step}: {e}"));
        }
    }
    eprintln!(
        "rank {}: the drill finished training: nothing failed",
        comm.rank()
    );
    std::process::exit(1);
}
