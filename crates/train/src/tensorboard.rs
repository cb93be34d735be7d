//! TensorBoard event files: [`EventWriter`] writes scalars and histograms to
//! `events.out.tfevents.*` in a run directory, which `tensorboard --logdir` opens.
//!
//! The format: a file is a sequence of TFRecords (`u64` length, masked CRC-32C of the
//! length, the bytes, masked CRC-32C of the bytes; all little-endian), each holding one
//! protobuf `Event`. The first event names the format (`file_version: "brain.Event:2"`);
//! each later one carries a wall time, a step and a `Summary` of tagged values. The
//! messages below are TensorFlow's `event.proto`, `summary.proto` and `histogram.proto`,
//! reduced to the fields written here, with TensorFlow's field numbers.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use tapegrad::{Grads, Tensor};
use tapegrad_nn::Param;

use crate::Event;

/// Why writing a TensorBoard event file failed.
#[derive(Debug, thiserror::Error)]
pub enum TensorBoardError {
    /// Creating, writing or flushing the file failed.
    #[error("TensorBoard event file {path}: {action}: {source}")]
    Io {
        /// The event file (or the run directory, when creating it failed).
        path: PathBuf,
        /// What was being done (`creating the run directory`, `writing`, ...).
        action: &'static str,
        /// The I/O error.
        source: io::Error,
    },
    /// A histogram's values cannot be bucketed (none, or one is NaN or infinite).
    /// Nothing was written for it.
    #[error("TensorBoard event file {path}: histogram '{tag}' at step {step}: {reason}")]
    Histogram {
        /// The event file.
        path: PathBuf,
        /// The histogram's tag.
        tag: String,
        /// The step it was for.
        step: usize,
        /// What was wrong with the values.
        reason: String,
    },
}

/// Writes one TensorBoard event file in a run directory.
///
/// [`create`](Self::create) makes
/// `events.out.tfevents.<unix time>.<hostname>.<pid>.<counter>` (the counter keeps two
/// writers of one process apart) and writes the file-version record. Records are
/// buffered: [`flush`](Self::flush) writes them out and reports errors; dropping the
/// writer flushes too, silently. Scalars are stored as `f32`, as TensorBoard keeps them.
///
/// ```
/// use tapegrad_train::tensorboard::EventWriter;
///
/// let run = tempfile::tempdir().unwrap();
/// let mut events = EventWriter::create(run.path()).unwrap();
/// for step in 0..3 {
///     events.add_scalars(step, &[("loss/train", 1.0 / (step + 1) as f64), ("lr", 0.1)]).unwrap();
/// }
/// events.add_histogram("weights/0.weight", &[-0.5, 0.0, 0.25, 0.5], 3).unwrap();
/// events.flush().unwrap();
///
/// let name = events.path().file_name().unwrap().to_str().unwrap();
/// assert!(name.starts_with("events.out.tfevents."));
/// // 8 + 4 + 4 bytes of framing around each of the 5 events.
/// assert!(std::fs::metadata(events.path()).unwrap().len() > 5 * 16);
/// ```
#[derive(Debug)]
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl EventWriter {
    /// Creates the run directory if needed and a new event file in it, and writes the
    /// file-version record.
    pub fn create(dir: impl AsRef<Path>) -> Result<Self, TensorBoardError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| TensorBoardError::Io {
            path: dir.to_path_buf(),
            action: "creating the run directory",
            source,
        })?;
        let seconds = wall_time() as u64;
        let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!(
            "events.out.tfevents.{seconds:010}.{}.{}.{counter}",
            hostname(),
            std::process::id()
        );
        let path = dir.join(name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|source| TensorBoardError::Io {
                path: path.clone(),
                action: "creating",
                source,
            })?;
        let mut writer = EventWriter {
            path,
            out: BufWriter::new(file),
        };
        writer.write_event(0, proto::What::FileVersion("brain.Event:2".to_string()))?;
        Ok(writer)
    }

    /// The event file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records `value` under `tag` at `step` (shown as a line chart).
    pub fn add_scalar(
        &mut self,
        tag: &str,
        value: f64,
        step: usize,
    ) -> Result<(), TensorBoardError> {
        self.add_scalars(step, &[(tag, value)])
    }

    /// Records several scalars at one `step` in one event (one record on disk).
    pub fn add_scalars(
        &mut self,
        step: usize,
        scalars: &[(&str, f64)],
    ) -> Result<(), TensorBoardError> {
        let value = scalars
            .iter()
            .map(|&(tag, value)| proto::Value {
                tag: tag.to_string(),
                value: Some(proto::value::Value::SimpleValue(value as f32)),
            })
            .collect();
        self.write_event(step, proto::What::Summary(proto::Summary { value }))
    }

    /// Records the distribution of `values` under `tag` at `step` (shown in the
    /// Histograms and Distributions tabs).
    ///
    /// The buckets are TensorFlow's default edges: 0 and ±1e-12 · 1.1^k up to 1e20, so
    /// relative resolution is 10% at every scale. Only the range from the smallest to
    /// the largest value is written, with runs of empty buckets merged, as TensorFlow does.
    ///
    /// Returns [`TensorBoardError::Histogram`] (and writes nothing) if `values` is empty
    /// or holds a NaN or infinity.
    pub fn add_histogram(
        &mut self,
        tag: &str,
        values: &[f64],
        step: usize,
    ) -> Result<(), TensorBoardError> {
        let histo = histogram(values).map_err(|reason| TensorBoardError::Histogram {
            path: self.path.clone(),
            tag: tag.to_string(),
            step,
            reason,
        })?;
        let value = vec![proto::Value {
            tag: tag.to_string(),
            value: Some(proto::value::Value::Histo(histo)),
        }];
        self.write_event(step, proto::What::Summary(proto::Summary { value }))
    }

    /// [`add_histogram`](Self::add_histogram) of a tensor's elements (any shape and dtype).
    pub fn add_tensor_histogram(
        &mut self,
        tag: &str,
        tensor: &Tensor,
        step: usize,
    ) -> Result<(), TensorBoardError> {
        self.add_histogram(tag, &tensor.to_vec::<f64>(), step)
    }

    /// Marks a resumed run: TensorBoard discards the events of earlier files in this
    /// directory at `step` and later (a `SessionLog` START event), so the steps a
    /// checkpoint rolled back are not shown twice. Write it before the resumed run's
    /// first event.
    pub fn add_restart(&mut self, step: usize) -> Result<(), TensorBoardError> {
        let start = proto::SessionLog {
            status: proto::session_log::SessionStatus::Start as i32,
        };
        self.write_event(step, proto::What::SessionLog(start))
    }

    /// Writes the buffered records to the file.
    pub fn flush(&mut self) -> Result<(), TensorBoardError> {
        self.out.flush().map_err(|source| TensorBoardError::Io {
            path: self.path.clone(),
            action: "flushing",
            source,
        })
    }

    fn write_event(&mut self, step: usize, what: proto::What) -> Result<(), TensorBoardError> {
        let event = proto::Event {
            wall_time: wall_time(),
            step: i64::try_from(step).unwrap_or(i64::MAX),
            what: Some(what),
        };
        let data = prost::Message::encode_to_vec(&event);
        write_record(&mut self.out, &data).map_err(|source| TensorBoardError::Io {
            path: self.path.clone(),
            action: "writing",
            source,
        })
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        // Errors cannot be returned from drop; `flush` is there to see them.
        let _ = self.out.flush();
    }
}

/// Logs a training run's [`Event`]s to an [`EventWriter`]: at every update (step = updates
/// done) the scalars `loss/train`, `lr`, `grad_norm`, `batch_size` and `samples_per_s`; at
/// every epoch end `loss/train_epoch` and, when a validation set is evaluated, `loss/val`,
/// `accuracy/val` and `NAME/val` for every other metric the loss reports (e.g.
/// `bits_per_char/val`); with histograms on, `weights/<name>` and `grads/<name>` (the
/// epoch's last update) of each parameter once per epoch.
///
/// ```
/// use tapegrad::DType;
/// use tapegrad_data::{digits, BatchSizeSchedule};
/// use tapegrad_nn::{Linear, Module};
/// use tapegrad_optim::{Sgd, SgdConfig};
/// use tapegrad_train::tensorboard::{EventWriter, TrainingLog};
/// use tapegrad_train::{TrainConfig, Trainer};
///
/// let data = digits().unwrap().subset(&(0..100).collect::<Vec<_>>());
/// let model = Linear::with_options(64, 10, true, DType::F32, 0);
/// let sgd = Sgd::new(model.params(), SgdConfig { lr: 0.1, ..SgdConfig::default() });
/// let config = TrainConfig { epochs: 1, batch_size: BatchSizeSchedule::new(25), ..TrainConfig::default() };
/// let run = tempfile::tempdir().unwrap();
/// let mut log = TrainingLog::new(EventWriter::create(run.path()).unwrap(), model.named_params(), true);
/// let mut trainer = Trainer::new(model, Box::new(sgd), config);
/// trainer.fit(&data, None, None, |event| log.record(event).unwrap()).unwrap();
/// log.flush().unwrap();
/// ```
pub struct TrainingLog {
    writer: EventWriter,
    params: Vec<(String, Param)>,
    histograms: bool,
    last_grads: Option<Grads>,
}

impl TrainingLog {
    /// Logs to `writer`; `params` (the model's named parameters) are shown as histograms
    /// once per epoch if `histograms` is set.
    pub fn new(writer: EventWriter, params: Vec<(String, Param)>, histograms: bool) -> Self {
        TrainingLog {
            writer,
            params,
            histograms,
            last_grads: None,
        }
    }

    /// The event writer (for a restart marker or other records).
    pub fn writer(&mut self) -> &mut EventWriter {
        &mut self.writer
    }

    /// Records one training event.
    pub fn record(&mut self, event: &Event<'_>) -> Result<(), TensorBoardError> {
        match event {
            Event::Batch { .. } => Ok(()),
            Event::Update { metrics: m, grads } => {
                if self.histograms {
                    // Handles to the gradient tensors: no copy of their values.
                    self.last_grads = Some(grads.0.clone());
                }
                self.writer.add_scalars(
                    m.iteration,
                    &[
                        ("loss/train", m.loss),
                        ("lr", m.lr),
                        ("grad_norm", m.grad_norm),
                        ("batch_size", m.batch_size as f64),
                        ("samples_per_s", m.samples_per_s),
                    ],
                )
            }
            Event::Epoch(m) => {
                let mut scalars = vec![("loss/train_epoch", m.train_loss)];
                scalars.extend(m.val_loss.map(|v| ("loss/val", v)));
                scalars.extend(m.val_accuracy.map(|v| ("accuracy/val", v)));
                // Every other metric the loss reports, as `NAME/val`.
                let others: Vec<(String, f64)> = m
                    .val_metrics
                    .iter()
                    .filter(|(name, _)| name.as_str() != "accuracy")
                    .map(|(name, &v)| (format!("{name}/val"), v))
                    .collect();
                scalars.extend(others.iter().map(|(name, v)| (name.as_str(), *v)));
                self.writer.add_scalars(m.iteration, &scalars)?;
                if self.histograms {
                    let grads = self.last_grads.take();
                    for (name, p) in &self.params {
                        let step = m.iteration;
                        self.writer.add_tensor_histogram(
                            &format!("weights/{name}"),
                            p.tensor(),
                            step,
                        )?;
                        if let Some(g) = grads.as_ref().and_then(|g| g.get(p.tensor())) {
                            self.writer
                                .add_tensor_histogram(&format!("grads/{name}"), g, step)?;
                        }
                    }
                }
                self.writer.flush()
            }
        }
    }

    /// Writes the buffered records to the file.
    pub fn flush(&mut self) -> Result<(), TensorBoardError> {
        self.writer.flush()
    }
}

/// One TFRecord: length, masked CRC of the length, data, masked CRC of the data.
fn write_record(out: &mut impl Write, data: &[u8]) -> io::Result<()> {
    let length = (data.len() as u64).to_le_bytes();
    out.write_all(&length)?;
    out.write_all(&masked_crc32c(&length).to_le_bytes())?;
    out.write_all(data)?;
    out.write_all(&masked_crc32c(data).to_le_bytes())
}

/// TFRecord's checksum: CRC-32C rotated right by 15 bits plus a constant.
fn masked_crc32c(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
        .rotate_right(15)
        .wrapping_add(0xa282_ead8)
}

/// Seconds since the Unix epoch.
fn wall_time() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The machine's name for the file name (dots and path separators would confuse
/// readers that split the name, so they become `_`).
fn hostname() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_default();
    let name: String = name
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        "localhost".to_string()
    } else {
        name
    }
}

/// TensorFlow's default bucket upper edges: -1e20..-1e-12, 0, 1e-12..1e20 (factor 1.1),
/// then `f64::MAX`. A value `v` falls in the first bucket whose edge is `> v`.
fn bucket_limits() -> &'static [f64] {
    static LIMITS: OnceLock<Vec<f64>> = OnceLock::new();
    LIMITS.get_or_init(|| {
        let mut positive = Vec::new();
        let mut edge = 1e-12;
        while edge < 1e20 {
            positive.push(edge);
            edge *= 1.1;
        }
        let mut limits: Vec<f64> = positive.iter().rev().map(|e| -e).collect();
        limits.push(0.0);
        limits.extend(&positive);
        limits.push(f64::MAX);
        limits
    })
}

/// The histogram of `values` with [`bucket_limits`], or why it cannot be made.
fn histogram(values: &[f64]) -> Result<proto::HistogramProto, String> {
    if values.is_empty() {
        return Err("no values".to_string());
    }
    if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
        return Err(format!("value {bad} is not finite"));
    }
    let limits = bucket_limits();
    let mut counts = vec![0.0; limits.len()];
    let (mut min, mut max, mut sum, mut sum_squares) = (f64::INFINITY, f64::NEG_INFINITY, 0.0, 0.0);
    for &v in values {
        let bucket = limits
            .partition_point(|&limit| limit <= v)
            .min(limits.len() - 1);
        counts[bucket] += 1.0;
        min = min.min(v);
        max = max.max(v);
        sum += v;
        sum_squares += v * v;
    }
    let first = counts.iter().position(|&c| c > 0.0).unwrap_or(0);
    let last = counts.iter().rposition(|&c| c > 0.0).unwrap_or(0);
    let (mut bucket_limit, mut bucket) = (Vec::new(), Vec::new());
    let mut i = first;
    while i <= last {
        if counts[i] == 0.0 {
            // A run of empty buckets becomes one, ending at the run's last edge.
            while counts[i + 1] == 0.0 {
                i += 1;
            }
        }
        bucket_limit.push(limits[i]);
        bucket.push(counts[i]);
        i += 1;
    }
    Ok(proto::HistogramProto {
        min,
        max,
        num: values.len() as f64,
        sum,
        sum_squares,
        bucket_limit,
        bucket,
    })
}

/// TensorFlow's event protocol messages, reduced to what [`EventWriter`] writes.
mod proto {
    /// `tensorflow.Event`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Event {
        #[prost(double, tag = "1")]
        pub wall_time: f64,
        #[prost(int64, tag = "2")]
        pub step: i64,
        #[prost(oneof = "What", tags = "3, 5, 7")]
        pub what: Option<What>,
    }

    /// `Event.what`.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum What {
        #[prost(string, tag = "3")]
        FileVersion(String),
        #[prost(message, tag = "5")]
        Summary(Summary),
        // Tag 6 is the deprecated `log_message`.
        #[prost(message, tag = "7")]
        SessionLog(SessionLog),
    }

    /// `tensorflow.Summary`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Summary {
        #[prost(message, repeated, tag = "1")]
        pub value: Vec<Value>,
    }

    /// `tensorflow.Summary.Value`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Value {
        #[prost(string, tag = "1")]
        pub tag: String,
        #[prost(oneof = "value::Value", tags = "2, 5")]
        pub value: Option<value::Value>,
    }

    pub mod value {
        /// `Summary.Value.value`.
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Value {
            #[prost(float, tag = "2")]
            SimpleValue(f32),
            #[prost(message, tag = "5")]
            Histo(super::HistogramProto),
        }
    }

    /// `tensorflow.HistogramProto`: bucket `i` counts values in
    /// `[bucket_limit[i - 1], bucket_limit[i])` (from `min` for the first).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct HistogramProto {
        #[prost(double, tag = "1")]
        pub min: f64,
        #[prost(double, tag = "2")]
        pub max: f64,
        #[prost(double, tag = "3")]
        pub num: f64,
        #[prost(double, tag = "4")]
        pub sum: f64,
        #[prost(double, tag = "5")]
        pub sum_squares: f64,
        #[prost(double, repeated, tag = "6")]
        pub bucket_limit: Vec<f64>,
        #[prost(double, repeated, tag = "7")]
        pub bucket: Vec<f64>,
    }

    /// `tensorflow.SessionLog`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SessionLog {
        #[prost(enumeration = "session_log::SessionStatus", tag = "1")]
        pub status: i32,
    }

    pub mod session_log {
        /// `SessionLog.SessionStatus`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
        #[repr(i32)]
        pub enum SessionStatus {
            StatusUnspecified = 0,
            Start = 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_limits_are_tensorflows_and_increasing() {
        let limits = bucket_limits();
        // 774 positive edges, as many negative ones, zero and f64::MAX.
        assert_eq!(limits.len(), 2 * 774 + 2);
        assert!(limits.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(limits[774], 0.0);
        assert_eq!(limits[775], 1e-12);
    }

    #[test]
    fn histogram_counts_every_value_once_and_merges_empty_runs() {
        let values = [-2.0, -2.0, 0.0, 0.5, 0.5, 0.5, 3.0];
        let h = histogram(&values).unwrap();
        assert_eq!((h.min, h.max, h.num), (-2.0, 3.0, 7.0));
        assert_eq!(h.sum, values.iter().sum::<f64>());
        assert_eq!(h.sum_squares, values.iter().map(|v| v * v).sum::<f64>());
        assert_eq!(h.bucket.iter().sum::<f64>(), 7.0);
        // Four occupied buckets with one merged empty run between each pair.
        assert_eq!(h.bucket, vec![2.0, 0.0, 1.0, 0.0, 3.0, 0.0, 1.0]);
        assert!(h.bucket_limit.windows(2).all(|w| w[0] < w[1]));
        // Bucket i holds exactly the values in [edge i - 1, edge i).
        for (i, &count) in h.bucket.iter().enumerate() {
            let left = if i == 0 {
                f64::NEG_INFINITY
            } else {
                h.bucket_limit[i - 1]
            };
            let inside = values
                .iter()
                .filter(|&&v| left <= v && v < h.bucket_limit[i]);
            assert_eq!(inside.count() as f64, count, "bucket {i}");
        }
        // Occupied buckets are at most 10% wide: 0.5 lies in [0.5 / 1.1, 0.5 * 1.1).
        assert!(h.bucket_limit[3] >= 0.5 / 1.1 && h.bucket_limit[4] <= 0.5 * 1.1);
    }

    #[test]
    fn histogram_rejects_empty_and_non_finite_values() {
        assert_eq!(histogram(&[]).unwrap_err(), "no values");
        assert!(histogram(&[1.0, f64::NAN]).unwrap_err().contains("NaN"));
        assert!(histogram(&[f64::INFINITY]).unwrap_err().contains("inf"));
    }

    #[test]
    fn masked_crc_matches_tensorflow() {
        // TensorFlow's crc32c::Mask of the CRC of "" (0): (0 >> 15 | 0 << 17) + 0xa282ead8.
        assert_eq!(masked_crc32c(b""), 0xa282_ead8);
        // CRC-32C("123456789") = 0xE3069283 (the standard check value).
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    }
}
