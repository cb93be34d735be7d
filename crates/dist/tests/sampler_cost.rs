//! The parts of tapegrad-dist that need no MPI: the sampler's shards against the
//! single-process loader, and the cost model's arithmetic.

use tapegrad_data::{DataLoader, InMemoryDataset};
use tapegrad_dist::cost::{ring_all_reduce_seconds, Link, StepModel};
use tapegrad_dist::DistributedSampler;

fn toy(n: usize) -> InMemoryDataset {
    // Feature = index, so a batch's features name its samples.
    InMemoryDataset::new(
        "toy",
        (0..n).map(|v| v as f32).collect(),
        (0..n).map(|i| i % 3).collect(),
        &[1],
        3,
    )
}

#[test]
fn shards_of_every_rank_together_are_the_single_process_batch() {
    for n in [10usize, 11, 17] {
        for batch in [1usize, 4, 6] {
            for drop_last in [false, true] {
                let loader = DataLoader::new(toy(n), batch)
                    .shuffle(42)
                    .drop_last(drop_last)
                    .prefetch(0);
                for np in 1..=4usize {
                    let samplers: Vec<_> = (0..np)
                        .map(|r| DistributedSampler::new(&loader, r, np))
                        .collect();
                    for epoch in 0..2 {
                        let single: Vec<_> = loader.epoch(epoch).collect();
                        let shards: Vec<Vec<_>> =
                            samplers.iter().map(|s| s.epoch(epoch).collect()).collect();
                        for s in &samplers {
                            assert_eq!(s.batches_per_epoch(), single.len());
                        }
                        for (i, b) in single.iter().enumerate() {
                            let mut union: Vec<usize> = Vec::new();
                            let mut weights = 0.0;
                            let sizes: Vec<usize> =
                                shards.iter().map(|s| s[i].batch.len()).collect();
                            for (r, s) in shards.iter().enumerate() {
                                let shard = &s[i];
                                assert_eq!(shard.global_len, b.len());
                                // features and labels belong to the indices
                                let xs = shard.batch.x.to_vec::<f32>();
                                let ys = shard.batch.y.to_vec::<i64>();
                                for (k, &idx) in shard.batch.indices.iter().enumerate() {
                                    assert_eq!(xs[k], idx as f32);
                                    assert_eq!(ys[k], (idx % 3) as i64);
                                }
                                assert_eq!(
                                    shard.batch.x.shape(),
                                    &[shard.batch.len(), 1],
                                    "rank {r}"
                                );
                                union.extend(&shard.batch.indices);
                                weights += shard.weight();
                            }
                            let mut expected = b.indices.clone();
                            union.sort_unstable();
                            expected.sort_unstable();
                            assert_eq!(
                                union, expected,
                                "n {n} batch {batch} np {np} epoch {epoch} iteration {i}"
                            );
                            assert!((weights - 1.0).abs() < 1e-12);
                            let (lo, hi) =
                                (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                            assert!(hi - lo <= 1, "unbalanced shards {sizes:?}");
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn resuming_mid_epoch_gives_the_remaining_shards() {
    let loader = DataLoader::new(toy(23), 5).shuffle(7).prefetch(0);
    let s = DistributedSampler::new(&loader, 1, 3);
    let all: Vec<Vec<usize>> = s.epoch(3).map(|b| b.batch.indices).collect();
    let rest: Vec<Vec<usize>> = s.epoch_from(3, 2).map(|b| b.batch.indices).collect();
    assert_eq!(rest, all[2..].to_vec());
    // Epochs differ, as the loader's do.
    let other: Vec<Vec<usize>> = s.epoch(4).map(|b| b.batch.indices).collect();
    assert_ne!(all, other);
}

#[test]
#[should_panic(expected = "DistributedSampler: rank 2 is not below world size 2")]
fn a_rank_outside_the_world_is_refused() {
    let loader = DataLoader::new(toy(4), 2);
    let _ = DistributedSampler::new(&loader, 2, 2);
}

#[test]
fn ring_all_reduce_follows_the_formula() {
    let link = Link::gbit(10.0, 25.0);
    let bytes = 4.0 * 535_818.0;
    for n in [2usize, 4, 16, 64] {
        let nf = n as f64;
        let expected = 2.0 * (nf - 1.0) / nf * bytes / 1.25e9 + 2.0 * (nf - 1.0) * 25e-6;
        assert!((ring_all_reduce_seconds(bytes, n, &link) - expected).abs() < 1e-15);
    }
    // bandwidth term approaches 2 x bytes / bandwidth
    let big = ring_all_reduce_seconds(
        1e9,
        1_000_000,
        &Link {
            bytes_per_s: 1e9,
            latency_s: 0.0,
        },
    );
    assert!((big - 2.0).abs() < 1e-5);
}

#[test]
fn efficiency_grows_with_the_batch_and_the_batch_for_a_target_is_the_smallest() {
    let model = StepModel {
        name: "mlp".into(),
        params: 535_818,
        bytes_per_param: 4,
        seconds_per_sample: 8e-6,
        seconds_per_step: 2e-4,
        backward_fraction: 0.6,
        buckets: 1,
    };
    let link = Link::gbit(10.0, 25.0);
    let mut last = 0.0;
    for b in [1usize, 8, 64, 512, 4096] {
        let e = model.efficiency(8, &link, b);
        assert!(e > last && e <= 1.0);
        last = e;
    }
    assert_eq!(model.efficiency(1, &link, 32), 1.0);
    let b = model.local_batch_for(8, &link, 0.9).expect("reachable");
    assert!(model.efficiency(8, &link, b) >= 0.9);
    assert!(model.efficiency(8, &link, b - 1) < 0.9);
    // A faster link needs a smaller batch.
    let fast = model
        .local_batch_for(8, &Link::gbit(100.0, 2.0), 0.9)
        .unwrap();
    assert!(fast < b);
    // With one bucket nothing overlaps: exposed time is the whole all-reduce.
    let comm = model.all_reduce_seconds(8, &link);
    assert!((model.exposed_seconds(8, &link, 64) - comm).abs() < 1e-15);
}
