//! Loaders (order, seeding, partial batches, resume) and readers on good and corrupt files.

use std::collections::HashSet;
use std::io::Write;

use tapegrad_data::{
    digits, fashion_mnist, read_csv, read_idx, DataError, DataLoader, Dataset, InMemoryDataset,
};

fn toy(n: usize) -> InMemoryDataset {
    InMemoryDataset::new(
        "toy",
        (0..n * 2).map(|v| v as f32).collect(),
        (0..n).map(|i| i % 3).collect(),
        &[2],
        3,
    )
}

#[test]
fn shuffle_is_a_seeded_permutation_per_epoch() {
    let loader = DataLoader::new(toy(103), 10).shuffle(5);
    for epoch in 0..3 {
        let seen: Vec<usize> = loader.epoch(epoch).flat_map(|b| b.indices).collect();
        assert_eq!(seen.len(), 103, "no sample lost");
        assert_eq!(
            seen.iter().collect::<HashSet<_>>().len(),
            103,
            "no sample repeated"
        );
        assert_ne!(seen, (0..103).collect::<Vec<_>>(), "shuffled");
        assert_eq!(seen, loader.order(epoch));
    }
    assert_ne!(
        loader.order(0),
        loader.order(1),
        "each epoch has its own order"
    );
    let again = DataLoader::new(toy(103), 10).shuffle(5);
    assert_eq!(loader.order(2), again.order(2), "same seed, same order");
    let other = DataLoader::new(toy(103), 10).shuffle(6);
    assert_ne!(loader.order(0), other.order(0));
}

#[test]
fn batches_carry_the_right_samples() {
    let loader = DataLoader::new(toy(7), 3).shuffle(1).prefetch(0);
    for b in loader.epoch(0) {
        let x = b.x.to_vec::<f32>();
        assert_eq!(b.y.dtype(), tapegrad::DType::I64);
        assert_eq!(b.y.shape(), &[b.len()]);
        let y = b.y.to_vec::<i64>();
        for (k, &i) in b.indices.iter().enumerate() {
            assert_eq!(
                &x[2 * k..2 * k + 2],
                &[2.0 * i as f32, 2.0 * i as f32 + 1.0]
            );
            assert_eq!(y[k], (i % 3) as i64);
        }
    }
}

#[test]
fn partial_last_batch_kept_or_dropped() {
    let keep = DataLoader::new(toy(10), 4);
    let sizes: Vec<usize> = keep.epoch(0).map(|b| b.len()).collect();
    assert_eq!(sizes, vec![4, 4, 2]);
    assert_eq!(keep.batches_per_epoch(), 3);
    assert_eq!(keep.epoch(0).len(), 3);
    let drop = DataLoader::new(toy(10), 4).drop_last(true);
    assert_eq!(
        drop.epoch(0).map(|b| b.len()).collect::<Vec<_>>(),
        vec![4, 4]
    );
    assert_eq!(drop.batches_per_epoch(), 2);
    let exact = DataLoader::new(toy(8), 4).drop_last(true);
    assert_eq!(exact.batches_per_epoch(), 2);
}

#[test]
fn resume_mid_epoch_continues_the_same_order() {
    let loader = DataLoader::new(toy(50), 8).shuffle(3);
    let all: Vec<Vec<usize>> = loader.epoch(4).map(|b| b.indices).collect();
    let rest: Vec<Vec<usize>> = loader.epoch_from(4, 3).map(|b| b.indices).collect();
    assert_eq!(&all[3..], &rest[..]);
}

#[test]
fn dropping_a_prefetching_iterator_early_does_not_hang() {
    let loader = DataLoader::new(toy(1000), 1).prefetch(1);
    let mut it = loader.epoch(0);
    assert!(it.next().is_some());
    drop(it);
}

#[test]
fn embedded_digits_are_well_formed() {
    let d = digits().unwrap();
    assert_eq!(d.len(), 1797);
    assert!(d.features().iter().all(|&v| (0.0..=1.0).contains(&v)));
    let mut counts = [0usize; 10];
    d.labels().iter().for_each(|&l| counts[l] += 1);
    assert!(
        counts.iter().all(|&c| (170..=185).contains(&c)),
        "{counts:?}"
    );
}

#[test]
fn normalisation_uses_given_statistics() {
    let mut d = toy(4); // features 0..8, columns [0,2,4,6] and [1,3,5,7]
    let (mean, std) = d.feature_stats();
    assert_eq!(mean, vec![3.0, 4.0]);
    assert!((std[0] - 5f32.sqrt()).abs() < 1e-6);
    d.normalize(&mean, &std);
    let (m2, s2) = d.feature_stats();
    assert!(m2.iter().all(|m| m.abs() < 1e-6) && s2.iter().all(|s| (s - 1.0).abs() < 1e-5));
}

fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn csv_reader_accepts_good_files_and_names_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(&dir, "good.csv", b"a,b,label\n1,2,0\n3,4,2\n");
    let d = read_csv(&good, None, true).unwrap();
    assert_eq!(
        (d.len(), d.num_classes(), d.features()),
        (2, 3, &[1.0f32, 2.0, 3.0, 4.0][..])
    );

    let bad = write(&dir, "bad.csv", b"1,2,0\n3,x,1\n");
    let e = read_csv(&bad, None, false).unwrap_err();
    assert!(matches!(e, DataError::Record { line: 2, .. }), "{e}");
    assert!(
        e.to_string()
            .contains("bad.csv:2: column 2 value \"x\" is not a number"),
        "{e}"
    );

    let ragged = write(&dir, "ragged.csv", b"1,2,0\n3,1\n");
    let e = read_csv(&ragged, None, false).unwrap_err().to_string();
    assert!(e.contains("ragged.csv:2: 2 columns, expected 3"), "{e}");

    let label = write(&dir, "label.csv", b"1,2,0.5\n");
    assert!(read_csv(&label, None, false)
        .unwrap_err()
        .to_string()
        .contains("is not a non-negative integer"));

    let huge = write(&dir, "huge.csv", b"1,2,0\n3,4,1e30\n");
    let e = read_csv(&huge, None, false).unwrap_err().to_string();
    assert!(
        e.contains("huge.csv:2: label \"1e30\" is not below the 1048576 classes"),
        "{e}"
    );
    for (i, bad) in ["NaN", "inf", "-inf", "1e39"].into_iter().enumerate() {
        let text = format!("1,2,0\n3,{bad},1\n");
        let p = write(&dir, &format!("nonfinite{i}.csv"), text.as_bytes());
        let e = read_csv(&p, None, false).unwrap_err().to_string();
        assert!(
            e.contains(&format!(":2: column 2 value \"{bad}\" is not a finite f32")),
            "{e}"
        );
    }
    let nan_label = write(&dir, "nanlabel.csv", b"1,2,NaN\n");
    assert!(read_csv(&nan_label, None, false)
        .unwrap_err()
        .to_string()
        .contains("is not a non-negative integer"));

    let empty = write(&dir, "empty.csv", b"");
    assert!(read_csv(&empty, None, false)
        .unwrap_err()
        .to_string()
        .contains("no data rows"));

    let missing = dir.path().join("missing.csv");
    assert!(matches!(
        read_csv(&missing, None, false),
        Err(DataError::Io { .. })
    ));
}

fn idx_bytes(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn idx_reader_accepts_raw_and_gzip_and_rejects_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let images = idx_bytes(0x803, &[2, 2, 2], &[0, 255, 10, 20, 30, 40, 50, 60]);
    let raw = write(&dir, "img", &images);
    let zipped = write(&dir, "img.gz", &gz(&images));
    let a = read_idx(&raw, 0x803).unwrap();
    assert_eq!(a.dims, vec![2, 2, 2]);
    assert_eq!(a, read_idx(&zipped, 0x803).unwrap());

    let e = read_idx(&raw, 0x801).unwrap_err().to_string();
    assert!(
        e.contains("img: bad magic number 0x00000803 (expected 0x00000801"),
        "{e}"
    );

    let truncated = write(&dir, "short.gz", &gz(&images[..images.len() - 3]));
    let e = read_idx(&truncated, 0x803).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::Truncated {
                expected: 8,
                actual: 5,
                ..
            }
        ),
        "{e}"
    );

    let header_only = write(&dir, "hdr", &images[..6]);
    assert!(matches!(
        read_idx(&header_only, 0x803),
        Err(DataError::Truncated { .. })
    ));

    let zero = write(&dir, "zero", &idx_bytes(0x803, &[3, 0, 28], &[]));
    let e = read_idx(&zero, 0x803).unwrap_err().to_string();
    assert!(
        e.contains("zero: the header's dimension 1 is 0 (dimensions [3, 0, 28])"),
        "{e}"
    );
    // 1024 * 2^31 * 2^23 overflows usize: an error, not a wrapped size or an allocation.
    let overflow = write(
        &dir,
        "overflow",
        &idx_bytes(0x803, &[1024, 1 << 31, 1 << 23], &[1, 2, 3]),
    );
    let e = read_idx(&overflow, 0x803).unwrap_err().to_string();
    assert!(
        e.contains("overflow: the header's dimensions [1024, 2147483648, 8388608] describe more bytes than any file can hold"),
        "{e}"
    );
    // A header announcing 4 GB over a 3-byte body: truncated, nothing allocated for it.
    let big = write(
        &dir,
        "big",
        &idx_bytes(0x803, &[1 << 16, 1 << 8, 1 << 8], &[1, 2, 3]),
    );
    assert!(matches!(
        read_idx(&big, 0x803),
        Err(DataError::Truncated { actual: 3, .. })
    ));

    let mut corrupt_gz = gz(&images);
    let n = corrupt_gz.len();
    corrupt_gz.truncate(n - 10);
    let corrupt = write(&dir, "corrupt.gz", &corrupt_gz);
    assert!(read_idx(&corrupt, 0x803).is_err());
}

#[test]
fn fashion_mnist_layout_and_count_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let img = |n: u32| {
        gz(&idx_bytes(
            0x803,
            &[n, 28, 28],
            &vec![128u8; n as usize * 784],
        ))
    };
    let lbl = |n: u32| gz(&idx_bytes(0x801, &[n], &vec![3u8; n as usize]));
    write(&dir, "train-images-idx3-ubyte.gz", &img(3));
    write(&dir, "train-labels-idx1-ubyte.gz", &lbl(3));
    write(&dir, "t10k-images-idx3-ubyte.gz", &img(2));
    write(&dir, "t10k-labels-idx1-ubyte.gz", &lbl(2));
    let (train, test) = fashion_mnist(Some(dir.path())).unwrap();
    assert_eq!((train.len(), test.len()), (3, 2));
    assert_eq!(train.sample_shape(), &[1, 28, 28]);
    assert!((train.features()[0] - 128.0 / 255.0).abs() < 1e-7);

    write(&dir, "t10k-labels-idx1-ubyte.gz", &lbl(5));
    let e = fashion_mnist(Some(dir.path())).unwrap_err().to_string();
    assert!(
        e.contains("has 2 images but") && e.contains("has 5 labels"),
        "{e}"
    );
}

/// Reads the real Fashion-MNIST files that `apt-get install dataset-fashion-mnist` puts
/// in /usr/share/datasets/fashion-mnist (`.ci/run` installs them). Outside CI a machine
/// without them skips this test with a note; in CI (`CI` set) their absence fails it.
#[test]
fn reads_the_installed_fashion_mnist() {
    let dir = std::path::Path::new(tapegrad_data::FASHION_MNIST_DIR);
    if !dir.join("train-images-idx3-ubyte.gz").exists() && std::env::var_os("CI").is_none() {
        eprintln!(
            "skipped: {} not installed (apt-get install dataset-fashion-mnist)",
            dir.display()
        );
        return;
    }
    let (train, test) = fashion_mnist(None).unwrap();
    assert_eq!((train.len(), test.len()), (60_000, 10_000));
    assert_eq!(train.sample_shape(), &[1, 28, 28]);
    for data in [&train, &test] {
        let mut counts = [0usize; 10];
        data.labels().iter().for_each(|&l| counts[l] += 1);
        let per_class = data.len() / 10;
        assert!(
            counts.iter().all(|&c| c == per_class),
            "balanced classes: {counts:?}"
        );
    }
    let mean =
        train.features().iter().map(|&v| v as f64).sum::<f64>() / train.features().len() as f64;
    assert!(
        (mean - 0.2860).abs() < 1e-3,
        "Fashion-MNIST's known pixel mean is 0.2860, got {mean}"
    );
}

mod fuzz {
    //! The readers on arbitrary and on almost-valid bytes: each returns `Err` or a valid
    //! dataset, never panics, and a header never makes them allocate what the file does
    //! not hold (a header announcing terabytes would abort the test process).

    use super::*;
    use proptest::prelude::*;

    /// A valid IDX images file, then one corruption: truncation, a bit flip, or a
    /// header dimension replaced (zero, huge, overflowing).
    fn almost_valid_idx() -> impl Strategy<Value = Vec<u8>> {
        let valid = (1u32..4, 1u32..5, 1u32..5).prop_flat_map(|(n, r, c)| {
            prop::collection::vec(any::<u8>(), (n * r * c) as usize)
                .prop_map(move |data| idx_bytes(0x803, &[n, r, c], &data))
        });
        (valid, 0usize..4, any::<usize>(), any::<u8>(), any::<u32>()).prop_map(
            |(mut bytes, kind, at, bit, value)| {
                let len = bytes.len();
                match kind {
                    0 => bytes.truncate(at % len),
                    1 => bytes[at % len] ^= 1 << (bit % 8),
                    2 => {
                        let dim = at % 3;
                        let v = [0, u32::MAX, value, 1 << 31][bit as usize % 4];
                        bytes[4 + 4 * dim..8 + 4 * dim].copy_from_slice(&v.to_be_bytes());
                    }
                    _ => bytes.extend_from_slice(&value.to_be_bytes()),
                }
                bytes
            },
        )
    }

    /// Lines of CSV-like text built from numbers, words and hostile tokens.
    fn csv_like() -> impl Strategy<Value = String> {
        let field = prop_oneof![
            (-1e3f64..1e3).prop_map(|v| v.to_string()),
            (0u32..12).prop_map(|v| v.to_string()),
            Just("NaN".to_string()),
            Just("inf".to_string()),
            Just("1e30".to_string()),
            Just("-0".to_string()),
            Just("18446744073709551616".to_string()),
            Just("".to_string()),
            "[a-z\"]{1,3}",
        ];
        prop::collection::vec(prop::collection::vec(field, 1..5), 0..6).prop_map(|rows| {
            rows.iter()
                .map(|r| r.join(","))
                .collect::<Vec<_>>()
                .join("\n")
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn idx_reader_never_panics_on_arbitrary_bytes(
            bytes in prop::collection::vec(any::<u8>(), 0..64),
            magic in prop_oneof![Just(0x801u32), Just(0x803u32)],
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut bytes = bytes;
            if bytes.len() >= 4 && bytes[0] % 2 == 0 {
                bytes[..4].copy_from_slice(&magic.to_be_bytes()); // get past the magic
            }
            let p = write(&dir, "any", &bytes);
            if let Ok(a) = read_idx(&p, magic) {
                prop_assert_eq!(a.data.len(), a.dims.iter().product::<usize>());
                prop_assert!(a.dims.iter().all(|&d| d > 0));
            }
        }

        #[test]
        fn idx_reader_rejects_or_accepts_almost_valid_files(bytes in almost_valid_idx()) {
            let dir = tempfile::tempdir().unwrap();
            for (name, b) in [("f", bytes.clone()), ("f.gz", gz(&bytes))] {
                let p = write(&dir, name, &b);
                match read_idx(&p, 0x803) {
                    Ok(a) => {
                        prop_assert_eq!(a.dims.len(), 3);
                        prop_assert_eq!(a.data.len(), a.dims.iter().product::<usize>());
                    }
                    Err(e) => prop_assert!(e.to_string().contains(name), "{}", e),
                }
            }
        }

        #[test]
        fn csv_reader_never_panics_and_accepts_only_finite_rows(text in csv_like(), header in any::<bool>()) {
            let dir = tempfile::tempdir().unwrap();
            let p = write(&dir, "fuzz.csv", text.as_bytes());
            match read_csv(&p, None, header) {
                Ok(d) => {
                    prop_assert!(d.features().iter().all(|v| v.is_finite()));
                    prop_assert!(d.num_classes() <= tapegrad_data::MAX_CLASSES);
                    prop_assert_eq!(d.features().len(), d.len() * d.sample_shape()[0]);
                }
                Err(e) => prop_assert!(e.to_string().contains("fuzz.csv"), "{}", e),
            }
        }
    }
}
