//! Data-parallel training through `TrainConfig::data_parallel`, with the ranks as threads
//! of this process (the collectives a plain sum over shared memory): np ranks at a global
//! batch train to the weights one process gets at that batch (f64, to 1e-10), including
//! accumulation, global-norm clipping and a last micro-batch smaller than np (a rank
//! with nothing to do); only rank 0 writes checkpoints; a run resumes at another np; a
//! failed collective stops training with `TrainError::Distributed`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};

use tapegrad::{DType, Grads, Tensor};
use tapegrad_data::{digits, BatchSizeSchedule, InMemoryDataset};
use tapegrad_nn::{Linear, Module, Param, Sequential, Tanh};
use tapegrad_optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
use tapegrad_train::{DataParallel, EpochMetrics, Kept, Stop, TrainConfig, TrainError, Trainer};

/// One rank of a group of threads: a collective writes this rank's values to its slot,
/// waits for every rank, and sums the slots in rank order (the same sum on every rank).
struct ThreadRank {
    rank: usize,
    size: usize,
    slots: Arc<Mutex<Vec<Vec<f64>>>>,
    barrier: Arc<Barrier>,
}

fn group(size: usize) -> Vec<ThreadRank> {
    let slots = Arc::new(Mutex::new(vec![Vec::new(); size]));
    let barrier = Arc::new(Barrier::new(size));
    (0..size)
        .map(|rank| ThreadRank {
            rank,
            size,
            slots: slots.clone(),
            barrier: barrier.clone(),
        })
        .collect()
}

impl ThreadRank {
    fn sum(&self, values: &mut [f64]) {
        self.slots.lock().unwrap()[self.rank] = values.to_vec();
        self.barrier.wait();
        {
            let slots = self.slots.lock().unwrap();
            for (i, v) in values.iter_mut().enumerate() {
                *v = slots.iter().map(|s| s[i]).sum();
            }
        }
        self.barrier.wait();
    }
}

fn as_f64(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).to_vec::<f64>()
}

impl DataParallel for ThreadRank {
    fn rank(&self) -> usize {
        self.rank
    }
    fn world_size(&self) -> usize {
        self.size
    }
    fn all_reduce_sum(&self, values: &mut [f64], _what: &str) -> Result<(), String> {
        self.sum(values);
        Ok(())
    }
    fn all_reduce_grads(&self, grads: &mut Grads, params: &[Param]) -> Result<(), String> {
        let mut flat: Vec<f64> = params
            .iter()
            .flat_map(|p| grads.get(p).map_or(vec![0.0; p.numel()], as_f64))
            .collect();
        self.sum(&mut flat);
        let mut at = 0;
        for p in params {
            let g = Tensor::from_vec(flat[at..at + p.numel()].to_vec(), p.shape());
            grads.insert(p, g.to_dtype(p.dtype()));
            at += p.numel();
        }
        Ok(())
    }
    fn broadcast(&self, tensors: &[Tensor]) -> Result<(), String> {
        for t in tensors {
            let mut v = if self.rank == 0 {
                as_f64(t)
            } else {
                vec![0.0; t.numel()]
            };
            self.sum(&mut v);
            t.assign_(&Tensor::from_vec(v, t.shape()).to_dtype(t.dtype()));
        }
        Ok(())
    }
}

/// 22 training samples (micro-batches of 5 leave a last one of 2: at np = 3 a rank gets
/// nothing) and 7 validation samples.
fn data() -> (InMemoryDataset, InMemoryDataset) {
    let d = digits().unwrap();
    let (rest, val) = d.split(0.1, 1);
    (
        rest.subset(&(0..22).collect::<Vec<_>>()),
        val.subset(&(0..7).collect::<Vec<_>>()),
    )
}

/// Each rank builds its model from its own seed: the trainer must copy rank 0's weights.
fn model(seed: u64) -> Sequential {
    Sequential::new()
        .add(Linear::with_options(64, 16, true, DType::F64, seed))
        .add(Tanh)
        .add(Linear::with_options(16, 10, true, DType::F64, seed + 1))
}

#[derive(Clone, Copy, Debug)]
enum Opt {
    Sgd,
    AdamClipped,
}

fn optimizer(m: &Sequential, opt: Opt) -> Box<dyn Optimizer> {
    match opt {
        Opt::Sgd => Box::new(Sgd::new(
            m.params(),
            SgdConfig {
                lr: 0.05,
                momentum: 0.9,
                weight_decay: 1e-3,
                ..SgdConfig::default()
            },
        )),
        Opt::AdamClipped => Box::new(Adam::new(
            m.params(),
            AdamConfig {
                lr: 0.01,
                ..AdamConfig::default()
            },
        )),
    }
}

fn config(opt: Opt, epochs: usize, dir: Option<PathBuf>) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: BatchSizeSchedule::new(5),
        accumulate: 2,
        // A bound the gradient norm crosses: clipping by the global norm matters.
        clip_grad_norm: matches!(opt, Opt::AdamClipped).then_some(0.5),
        seed: 4,
        checkpoint_dir: dir,
        ..TrainConfig::default()
    }
}

struct Run {
    weights: Vec<f64>,
    history: Vec<EpochMetrics>,
    stop: Stop,
}

/// One process (no data_parallel) or `np` thread ranks; rank `r` checkpoints to
/// `dirs[r]` and resumes from `resume` if given. Returns rank 0's run after checking
/// every rank ended with the same weights and metrics.
fn train(
    np: Option<usize>,
    opt: Opt,
    epochs: usize,
    dirs: &[Option<PathBuf>],
    resume: Option<&Path>,
) -> Run {
    let one = |dp: Option<Arc<dyn DataParallel>>, dir: Option<PathBuf>| {
        let seed = 10 + 7 * dp.as_ref().map_or(0, |d| d.rank() as u64);
        let (train, val) = data();
        let m = model(seed);
        let o = optimizer(&m, opt);
        let mut config = config(opt, epochs, dir);
        config.data_parallel = dp;
        let mut t = Trainer::new(m, o, config);
        if let Some(from) = resume {
            t.resume(from).unwrap();
        }
        let stop = t.fit(&train, Some(&val), Some(&val), |_| {}).unwrap();
        Run {
            weights: t
                .model
                .params()
                .iter()
                .flat_map(|p| p.to_vec::<f64>())
                .collect(),
            history: t.state.history.clone(),
            stop,
        }
    };
    let Some(np) = np else {
        return one(None, dirs[0].clone());
    };
    let runs: Vec<Run> = std::thread::scope(|s| {
        let handles: Vec<_> = group(np)
            .into_iter()
            .zip(dirs)
            .map(|(rank, dir)| {
                let dp: Arc<dyn DataParallel> = Arc::new(rank);
                s.spawn(move || one(Some(dp), dir.clone()))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (r, run) in runs.iter().enumerate().skip(1) {
        assert_eq!(run.weights, runs[0].weights, "rank {r} has other weights");
        // Every metric but the timings.
        let untimed = |h: &[EpochMetrics]| -> Vec<EpochMetrics> {
            h.iter()
                .map(|m| EpochMetrics {
                    samples_per_s: 0.0,
                    seconds: 0.0,
                    ..m.clone()
                })
                .collect()
        };
        assert_eq!(
            untimed(&run.history),
            untimed(&runs[0].history),
            "rank {r} has other metrics"
        );
    }
    runs.into_iter().next().unwrap()
}

fn max_rel_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / x.abs().max(y.abs()).max(1e-3))
        .fold(0.0, f64::max)
}

fn assert_same_run(single: &Run, dist: &Run, what: &str) {
    let w = max_rel_diff(&single.weights, &dist.weights);
    assert!(w < 1e-10, "{what}: weights differ by {w:e} (relative)");
    assert_eq!(single.stop, dist.stop, "{what}");
    assert_eq!(single.history.len(), dist.history.len(), "{what}");
    for (a, b) in single.history.iter().zip(&dist.history) {
        let (x, y) = (
            [
                a.train_loss,
                a.val_loss.unwrap(),
                a.val_accuracy.unwrap(),
                a.lr,
            ],
            [
                b.train_loss,
                b.val_loss.unwrap(),
                b.val_accuracy.unwrap(),
                b.lr,
            ],
        );
        let d = max_rel_diff(&x, &y);
        assert!(
            d < 1e-10,
            "{what}: epoch {} metrics {x:?} vs {y:?}",
            a.epoch
        );
        assert_eq!(a.iteration, b.iteration, "{what}");
    }
    let test = |r: &Run| r.history.last().unwrap().test_accuracy.unwrap();
    assert!(
        (test(single) - test(dist)).abs() < 1e-10,
        "{what}: test accuracy"
    );
}

#[test]
fn ranks_train_to_the_weights_of_one_process_at_the_global_batch() {
    for opt in [Opt::Sgd, Opt::AdamClipped] {
        let single = train(None, opt, 2, &[None], None);
        assert_eq!(single.history[1].iteration, 6);
        for np in [1, 2, 3] {
            let dist = train(Some(np), opt, 2, &vec![None; np], None);
            assert_same_run(&single, &dist, &format!("{opt:?} at np = {np}"));
        }
        // The comparison can fail: another global batch trains to other weights.
        let (train_set, val) = data();
        let m = model(10);
        let o = optimizer(&m, opt);
        let mut c = config(opt, 2, None);
        c.batch_size = BatchSizeSchedule::new(4);
        let mut t = Trainer::new(m, o, c);
        t.fit(&train_set, Some(&val), None, |_| {}).unwrap();
        let other: Vec<f64> = t
            .model
            .params()
            .iter()
            .flat_map(|p| p.to_vec::<f64>())
            .collect();
        assert!(max_rel_diff(&single.weights, &other) > 1e-6);
    }
}

#[test]
fn only_rank_0_checkpoints_and_a_run_resumes_at_another_np() {
    let tmp = tempfile::tempdir().unwrap();
    let dirs: Vec<Option<PathBuf>> = (0..2)
        .map(|r| Some(tmp.path().join(format!("rank{r}"))))
        .collect();
    let first = train(Some(2), Opt::AdamClipped, 1, &dirs, None);
    assert_eq!(first.history.len(), 1);
    let rank0 = dirs[0].as_ref().unwrap();
    assert!(rank0.join("checkpoint.json").is_file());
    assert!(!dirs[1].as_ref().unwrap().exists(), "rank 1 wrote files");
    // Resumed at np = 3 for the second epoch: the run of one process for two epochs.
    let dirs3: Vec<Option<PathBuf>> = (0..3)
        .map(|r| Some(tmp.path().join(format!("again{r}"))))
        .collect();
    let resumed = train(Some(3), Opt::AdamClipped, 2, &dirs3, Some(rank0));
    let single = train(None, Opt::AdamClipped, 2, &[None], None);
    assert_same_run(&single, &resumed, "resumed at np = 3");
}

/// A rank whose peer vanishes after `ok` collectives.
struct Vanishing {
    ok: usize,
    calls: AtomicUsize,
}

impl DataParallel for Vanishing {
    fn rank(&self) -> usize {
        0
    }
    fn world_size(&self) -> usize {
        2
    }
    fn all_reduce_sum(&self, values: &mut [f64], what: &str) -> Result<(), String> {
        if self.calls.fetch_add(1, Ordering::SeqCst) >= self.ok {
            return Err(format!("{what}: the peer is gone"));
        }
        // As if the peer held the same values.
        values.iter_mut().for_each(|v| *v *= 2.0);
        Ok(())
    }
    fn all_reduce_grads(&self, grads: &mut Grads, params: &[Param]) -> Result<(), String> {
        self.all_reduce_sum(&mut [0.0], "the gradients")?;
        for p in params {
            let g = grads
                .get(p)
                .cloned()
                .unwrap_or_else(|| Tensor::zeros(p.shape(), p.dtype()));
            grads.insert(p, g.mul_scalar(2.0));
        }
        Ok(())
    }
    fn broadcast(&self, _tensors: &[Tensor]) -> Result<(), String> {
        Ok(())
    }
}

#[test]
fn a_failed_collective_stops_training_and_keeps_the_last_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let (train_set, val) = data();
    let m = model(1);
    let o = optimizer(&m, Opt::Sgd);
    let mut c = config(Opt::Sgd, 3, Some(tmp.path().to_path_buf()));
    // Epoch 1: the state check, updates of 2, 2 and 1 micro-batches (a loss sum each)
    // and a gradient sum each, the evaluation and the checkpoint: 1 + 8 + 1 + 1 = 11
    // collectives; the peer vanishes in the second update of epoch 2.
    c.data_parallel = Some(Arc::new(Vanishing {
        ok: 14,
        calls: AtomicUsize::new(0),
    }));
    let mut t = Trainer::new(m, o, c);
    let err = t.fit(&train_set, Some(&val), None, |_| {}).unwrap_err();
    let TrainError::Distributed {
        epoch,
        message,
        kept,
        ..
    } = &err
    else {
        panic!("expected a Distributed error, got {err}");
    };
    assert_eq!(*epoch, 2);
    assert!(message.contains("the peer is gone"), "{message}");
    assert_eq!(
        *kept,
        Kept::Checkpoint {
            dir: tmp.path().to_path_buf(),
            at: "the end of epoch 1 (iteration 3)".into()
        }
    );
    assert!(
        err.to_string().contains("the last good checkpoint"),
        "{err}"
    );
    // The checkpoint loads.
    let m = model(1);
    let o = optimizer(&m, Opt::Sgd);
    let mut again = Trainer::new(m, o, config(Opt::Sgd, 3, None));
    again.resume(tmp.path()).unwrap();
    assert_eq!(again.state.epoch, 1);
}
