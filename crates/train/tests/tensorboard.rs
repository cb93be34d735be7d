//! TensorBoard event files read back by a decoder written here, independently of the
//! writer: its own CRC-32C (bit by bit), its own TFRecord framing and its own message
//! definitions (plain optional fields where the writer uses oneofs), checking every CRC.

use std::path::{Path, PathBuf};

use tapegrad::Tensor;
use tapegrad_train::tensorboard::{EventWriter, TensorBoardError};

#[derive(Clone, PartialEq, prost::Message)]
struct Event {
    #[prost(double, tag = "1")]
    wall_time: f64,
    #[prost(int64, tag = "2")]
    step: i64,
    #[prost(string, optional, tag = "3")]
    file_version: Option<String>,
    #[prost(message, optional, tag = "5")]
    summary: Option<Summary>,
    #[prost(message, optional, tag = "7")]
    session_log: Option<SessionLog>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Summary {
    #[prost(message, repeated, tag = "1")]
    value: Vec<SummaryValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct SummaryValue {
    #[prost(string, tag = "1")]
    tag: String,
    #[prost(float, optional, tag = "2")]
    simple_value: Option<f32>,
    #[prost(message, optional, tag = "5")]
    histo: Option<Histogram>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Histogram {
    #[prost(double, tag = "1")]
    min: f64,
    #[prost(double, tag = "2")]
    max: f64,
    #[prost(double, tag = "3")]
    num: f64,
    #[prost(double, tag = "4")]
    sum: f64,
    #[prost(double, tag = "5")]
    sum_squares: f64,
    #[prost(double, repeated, tag = "6")]
    bucket_limit: Vec<f64>,
    #[prost(double, repeated, tag = "7")]
    bucket: Vec<f64>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct SessionLog {
    #[prost(int32, tag = "1")]
    status: i32,
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), one bit at a time.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// TFRecord's mask, written as TensorFlow's `crc32c::Mask` (shifts, not the writer's
/// `rotate_right`, to stay independent of it).
#[allow(clippy::manual_rotate)]
fn masked(crc: u32) -> u32 {
    ((crc >> 15) | (crc << 17)).wrapping_add(0xa282_ead8)
}

fn le_u32(bytes: &[u8]) -> u32 {
    u32::from_le_bytes(bytes.try_into().unwrap())
}

/// Every record of an event file, decoded; an error names the record and what failed.
fn decode(bytes: &[u8]) -> Result<Vec<Event>, String> {
    let mut events = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let n = events.len();
        let header = bytes
            .get(at..at + 12)
            .ok_or(format!("record {n}: truncated header"))?;
        if masked(crc32c(&header[..8])) != le_u32(&header[8..]) {
            return Err(format!("record {n}: length CRC mismatch"));
        }
        let length = u64::from_le_bytes(header[..8].try_into().unwrap()) as usize;
        let end = at
            .checked_add(12 + length + 4)
            .ok_or(format!("record {n}: bad length"))?;
        let body = bytes
            .get(at + 12..end)
            .ok_or(format!("record {n}: truncated data"))?;
        let (data, crc) = body.split_at(length);
        if masked(crc32c(data)) != le_u32(crc) {
            return Err(format!("record {n}: data CRC mismatch"));
        }
        let event =
            <Event as prost::Message>::decode(data).map_err(|e| format!("record {n}: {e}"))?;
        events.push(event);
        at = end;
    }
    Ok(events)
}

fn read_events(path: &Path) -> Vec<Event> {
    decode(&std::fs::read(path).unwrap()).unwrap()
}

fn event_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files
}

/// The (step, value) pairs of one scalar tag.
fn scalars(events: &[Event], tag: &str) -> Vec<(i64, f32)> {
    events
        .iter()
        .filter_map(|e| Some((e.step, e.summary.as_ref()?)))
        .flat_map(|(step, s)| s.value.iter().map(move |v| (step, v)))
        .filter(|(_, v)| v.tag == tag)
        .map(|(step, v)| (step, v.simple_value.expect("a scalar")))
        .collect()
}

fn histograms(events: &[Event], tag: &str) -> Vec<(i64, Histogram)> {
    events
        .iter()
        .filter_map(|e| Some((e.step, e.summary.as_ref()?)))
        .flat_map(|(step, s)| s.value.iter().map(move |v| (step, v)))
        .filter(|(_, v)| v.tag == tag)
        .map(|(step, v)| (step, v.histo.clone().expect("a histogram")))
        .collect()
}

/// The histogram's summary fields and buckets describe exactly `values`.
fn assert_describes(h: &Histogram, values: &[f64]) {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    assert_eq!((h.min, h.max, h.num), (min, max, values.len() as f64));
    assert!((h.sum - values.iter().sum::<f64>()).abs() < 1e-9);
    assert!((h.sum_squares - values.iter().map(|v| v * v).sum::<f64>()).abs() < 1e-9);
    assert_eq!(h.bucket.len(), h.bucket_limit.len());
    assert!(
        h.bucket_limit.windows(2).all(|w| w[0] < w[1]),
        "edges increase"
    );
    for (i, &count) in h.bucket.iter().enumerate() {
        let left = if i == 0 {
            f64::NEG_INFINITY
        } else {
            h.bucket_limit[i - 1]
        };
        let inside = values
            .iter()
            .filter(|&&v| left <= v && v < h.bucket_limit[i])
            .count();
        assert_eq!(
            inside as f64, count,
            "bucket {i} up to {}",
            h.bucket_limit[i]
        );
    }
    assert!(
        h.bucket[0] > 0.0 && *h.bucket.last().unwrap() > 0.0,
        "no empty ends"
    );
}

#[test]
fn scalars_and_histograms_read_back_with_every_crc_checked() {
    let run = tempfile::tempdir().unwrap();
    let dir = run.path().join("run/nested");
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let mut events = EventWriter::create(&dir).unwrap();
    for step in 0..5 {
        let loss = 2.0 / (step as f64 + 1.0);
        events
            .add_scalars(step, &[("loss/train", loss), ("lr", 0.1 * step as f64)])
            .unwrap();
    }
    events.add_scalar("accuracy/val", 0.875, 4).unwrap();
    let weights = [-1.5, -0.01, 0.0, 0.0, 2e-7, 0.3, 0.31, 4.0, 1e6];
    events.add_histogram("weights/w", &weights, 4).unwrap();
    let tensor = Tensor::from_vec(vec![0.5f32, -0.25, 0.125, 8.0, 8.0, 8.0], &[2, 3]);
    events.add_tensor_histogram("grads/w", &tensor, 4).unwrap();
    events.flush().unwrap();

    let files = event_files(&dir);
    assert_eq!(files, vec![events.path().to_path_buf()]);
    let name = files[0].file_name().unwrap().to_str().unwrap();
    let parts: Vec<&str> = name.split('.').collect();
    assert_eq!(parts[..3], ["events", "out", "tfevents"]);
    assert_eq!(
        parts.len(),
        7,
        "{name}: events.out.tfevents.<time>.<host>.<pid>.<n>"
    );
    assert!(parts[3].parse::<u64>().unwrap() >= before as u64);
    assert_eq!(parts[5], std::process::id().to_string());

    let decoded = read_events(&files[0]);
    assert_eq!(decoded.len(), 1 + 5 + 1 + 2);
    assert_eq!(decoded[0].file_version.as_deref(), Some("brain.Event:2"));
    assert!(decoded[0].summary.is_none());
    let after = before + 600.0;
    assert!(decoded
        .iter()
        .all(|e| e.wall_time >= before.floor() && e.wall_time < after));
    assert!(decoded.windows(2).all(|w| w[0].wall_time <= w[1].wall_time));

    let expected_loss: Vec<(i64, f32)> = (0..5).map(|s| (s, 2.0 / (s as f32 + 1.0))).collect();
    assert_eq!(scalars(&decoded, "loss/train"), expected_loss);
    let expected_lr: Vec<(i64, f32)> = (0..5).map(|s| (s, (0.1 * s as f64) as f32)).collect();
    assert_eq!(scalars(&decoded, "lr"), expected_lr);
    assert_eq!(scalars(&decoded, "accuracy/val"), vec![(4, 0.875)]);

    let [(step, h)] = &histograms(&decoded, "weights/w")[..] else {
        panic!("one histogram")
    };
    assert_eq!(*step, 4);
    assert_describes(h, &weights);
    // TensorFlow's default edges: 0 is an edge, 1e6 lies in a bucket at most 10% wide.
    assert!(h.bucket_limit.contains(&0.0));
    let top = h.bucket_limit.len() - 1;
    assert!(h.bucket_limit[top] > 1e6 && h.bucket_limit[top] <= 1.1e6 * (1.0 + 1e-9));

    let [(_, g)] = &histograms(&decoded, "grads/w")[..] else {
        panic!("one histogram")
    };
    assert_describes(g, &[0.5, -0.25, 0.125, 8.0, 8.0, 8.0]);
}

#[test]
fn a_corrupted_or_truncated_file_is_detected() {
    let run = tempfile::tempdir().unwrap();
    let mut events = EventWriter::create(run.path()).unwrap();
    events.add_scalar("loss", 0.5, 1).unwrap();
    events.add_histogram("w", &[1.0, 2.0, 3.0], 1).unwrap();
    events.flush().unwrap();
    let good = std::fs::read(events.path()).unwrap();
    assert_eq!(decode(&good).unwrap().len(), 3);

    // Flip one bit in every byte position in turn: length, its CRC, data, data CRC.
    for at in 0..good.len() {
        let mut bad = good.clone();
        bad[at] ^= 0x10;
        assert!(
            decode(&bad).is_err(),
            "flipped byte {at} of {} went unnoticed",
            good.len()
        );
    }
    let err = decode(&good[..good.len() - 1]).unwrap_err();
    assert!(err.contains("record 2: truncated"), "{err}");
}

#[test]
fn drop_flushes_and_each_writer_gets_its_own_file() {
    let run = tempfile::tempdir().unwrap();
    let first = EventWriter::create(run.path()).unwrap();
    let mut second = EventWriter::create(run.path()).unwrap();
    assert_ne!(first.path(), second.path());
    drop(first);
    for step in 0..1000 {
        second.add_scalar("loss", step as f64, step).unwrap();
    }
    let path = second.path().to_path_buf();
    drop(second);

    let files = event_files(run.path());
    assert_eq!(files.len(), 2);
    let decoded = read_events(&path);
    assert_eq!(decoded.len(), 1001);
    let loss = scalars(&decoded, "loss");
    assert_eq!(loss.len(), 1000);
    assert!(loss.iter().all(|&(step, value)| value == step as f32));
}

#[test]
fn restart_marks_a_session_start_at_the_step() {
    let run = tempfile::tempdir().unwrap();
    let mut events = EventWriter::create(run.path()).unwrap();
    events.add_restart(6).unwrap();
    events.add_scalar("loss", 1.0, 6).unwrap();
    events.flush().unwrap();
    let decoded = read_events(events.path());
    assert_eq!(decoded.len(), 3);
    assert_eq!(decoded[1].step, 6);
    assert_eq!(decoded[1].session_log, Some(SessionLog { status: 1 }));
}

#[test]
fn errors_name_the_file_and_what_was_wrong() {
    let run = tempfile::tempdir().unwrap();
    let blocker = run.path().join("not-a-dir");
    std::fs::write(&blocker, b"x").unwrap();
    let err = EventWriter::create(&blocker).unwrap_err();
    assert!(matches!(err, TensorBoardError::Io { .. }));
    let message = err.to_string();
    assert!(
        message.contains("not-a-dir") && message.contains("creating the run directory"),
        "{message}"
    );

    let mut events = EventWriter::create(run.path()).unwrap();
    let err = events
        .add_histogram("weights/w", &[1.0, f64::NAN], 3)
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("weights/w") && message.contains("step 3") && message.contains("NaN"),
        "{message}"
    );
    assert!(
        message.contains(events.path().to_str().unwrap()),
        "{message}"
    );
    let err = events
        .add_histogram("empty", &[], 0)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("'empty'") && err.contains("no values"),
        "{err}"
    );
    events.flush().unwrap();
    // Nothing but the file-version record was written.
    assert_eq!(read_events(events.path()).len(), 1);
}
