//! Writes a small TensorBoard run into DIR, as a training run with one resume would:
//! per-step scalars, per-epoch validation scalars and weight histograms.
//!
//! The first writer logs steps 0..12 and stops; the "resumed" writer goes back to the
//! checkpoint at step 8 (a restart marker, so TensorBoard drops steps 8..12 of the first
//! file) and logs steps 8..20. TensorBoard then shows 20 steps of `loss/train`, and
//! `tools/check_tensorboard.py` checks exactly that:
//!
//! ```text
//! cargo run -p tapegrad-train --example write_events -- DIR
//! python3 tools/check_tensorboard.py DIR --expect loss/train:20 --expect loss/val:4 \
//!     --expect-histogram weights/w:4
//! ```

use tapegrad::Tensor;
use tapegrad_train::{EventWriter, TensorBoardError};

const STEPS_PER_EPOCH: usize = 5;

fn log_steps(
    events: &mut EventWriter,
    steps: std::ops::Range<usize>,
) -> Result<(), TensorBoardError> {
    for step in steps {
        let loss = 2.0 / (1.0 + step as f64);
        events.add_scalars(
            step,
            &[("loss/train", loss), ("lr", 0.1), ("batch_size", 32.0)],
        )?;
        if (step + 1) % STEPS_PER_EPOCH == 0 {
            let epoch = (step + 1) / STEPS_PER_EPOCH;
            events.add_scalars(
                step,
                &[
                    ("loss/val", 2.5 / epoch as f64),
                    ("accuracy/val", 0.2 * epoch as f64),
                ],
            )?;
            let spread = 1.0 / epoch as f64;
            let weights: Vec<f64> = (0..64).map(|i| spread * (i as f64 / 32.0 - 1.0)).collect();
            events.add_tensor_histogram("weights/w", &Tensor::from_vec(weights, &[8, 8]), step)?;
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: write_events DIR")?;
    let mut first = EventWriter::create(&dir)?;
    log_steps(&mut first, 0..12)?;
    first.flush()?;
    drop(first);

    let mut resumed = EventWriter::create(&dir)?;
    resumed.add_restart(8)?;
    log_steps(&mut resumed, 8..20)?;
    resumed.flush()?;
    println!("wrote {}", resumed.path().display());
    Ok(())
}
