//! SVG plots (plotters): loss and accuracy per epoch for `train`, throughput and accuracy
//! per batch size for `batch-sweep`.

use std::path::Path;

use plotters::prelude::*;
use tapegrad_train::EpochMetrics;

type PlotResult = Result<(), Box<dyn std::error::Error>>;

/// An axis range covering the finite `values` (from 0 if `floor_zero`), 0..1 when there
/// are none: an empty or non-finite range would make plotters loop forever drawing ticks.
fn range(values: impl Iterator<Item = f64>, floor_zero: bool) -> std::ops::Range<f64> {
    let v: Vec<f64> = values.filter(|x| x.is_finite()).collect();
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let lo = if floor_zero {
        0.0
    } else {
        v.iter().copied().fold(f64::INFINITY, f64::min)
    };
    let span = hi - lo;
    if span.is_finite() && span > 0.0 {
        let end = hi + span * 0.05;
        return lo..if end.is_finite() { end } else { hi };
    }
    // No values, one distinct value, or a span too wide for f64 (values near ±f64::MAX).
    let pad = (hi.abs() * 0.1).max(0.5);
    let (a, b) = (hi - pad, hi + pad);
    if a.is_finite() && b.is_finite() && b > a {
        a..b
    } else {
        0.0..1.0
    }
}

/// The points whose coordinates are both finite (plotters cannot place the others).
fn finite_points(points: impl Iterator<Item = (f64, f64)>) -> Vec<(f64, f64)> {
    points
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect()
}

/// Loss (train and validation) and accuracy (validation; the test accuracy as a dot)
/// against the epoch.
pub fn training_curves(history: &[EpochMetrics], path: &Path) -> PlotResult {
    let root = SVGBackend::new(path, (1000, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(500);
    let epochs = 0.0..(history.len().max(1) as f64 + 0.5);

    let losses = history
        .iter()
        .flat_map(|m| [Some(m.train_loss), m.val_loss])
        .flatten();
    let mut chart = ChartBuilder::on(&left)
        .caption("loss", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(50)
        .build_cartesian_2d(epochs.clone(), range(losses, true))?;
    chart.configure_mesh().x_desc("epoch").draw()?;
    chart
        .draw_series(LineSeries::new(
            finite_points(history.iter().map(|m| (m.epoch as f64, m.train_loss))),
            &BLUE,
        ))?
        .label("train")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    chart
        .draw_series(LineSeries::new(
            finite_points(
                history
                    .iter()
                    .filter_map(|m| m.val_loss.map(|v| (m.epoch as f64, v))),
            ),
            &RED,
        ))?
        .label("validation")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE)
        .draw()?;

    let accs = history
        .iter()
        .flat_map(|m| [m.val_accuracy, m.test_accuracy])
        .flatten();
    let mut chart = ChartBuilder::on(&right)
        .caption("accuracy", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(50)
        .build_cartesian_2d(epochs, range(accs, false))?;
    chart.configure_mesh().x_desc("epoch").draw()?;
    chart
        .draw_series(LineSeries::new(
            finite_points(
                history
                    .iter()
                    .filter_map(|m| m.val_accuracy.map(|v| (m.epoch as f64, v))),
            ),
            &RED,
        ))?
        .label("validation")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    chart.draw_series(
        finite_points(
            history
                .iter()
                .filter_map(|m| m.test_accuracy.map(|v| (m.epoch as f64, v))),
        )
        .into_iter()
        .map(|p| Circle::new(p, 4, BLACK.filled())),
    )?;
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE)
        .draw()?;
    root.present()?;
    Ok(())
}

/// One row of a batch-size sweep, for the plot.
pub struct SweepPoint {
    pub batch_size: usize,
    pub samples_per_s: f64,
    pub val_accuracy: f64,
}

/// Samples/s and validation accuracy against the batch size (log scale).
pub fn sweep(points: &[SweepPoint], path: &Path) -> PlotResult {
    let root = SVGBackend::new(path, (1000, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(500);
    let xmax = points.iter().map(|p| p.batch_size).max().unwrap_or(1) as f64 * 1.5;
    let x = (0.7f64..xmax.max(2.0)).log_scale();

    let mut chart = ChartBuilder::on(&left)
        .caption("throughput (samples/s)", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(
            x.clone(),
            range(points.iter().map(|p| p.samples_per_s), true),
        )?;
    chart.configure_mesh().x_desc("batch size").draw()?;
    let throughput = finite_points(
        points
            .iter()
            .map(|p| (p.batch_size as f64, p.samples_per_s)),
    );
    chart.draw_series(LineSeries::new(throughput.iter().copied(), &BLUE))?;
    chart.draw_series(throughput.iter().map(|&p| Circle::new(p, 4, BLUE.filled())))?;

    let mut chart = ChartBuilder::on(&right)
        .caption("validation accuracy", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(x, range(points.iter().map(|p| p.val_accuracy), false))?;
    chart.configure_mesh().x_desc("batch size").draw()?;
    let accuracy = finite_points(points.iter().map(|p| (p.batch_size as f64, p.val_accuracy)));
    chart.draw_series(LineSeries::new(accuracy.iter().copied(), &RED))?;
    chart.draw_series(accuracy.iter().map(|&p| Circle::new(p, 4, RED.filled())))?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_ranges_are_finite_and_non_empty_for_any_values() {
        let cases: [&[f64]; 6] = [
            &[],
            &[f64::NAN, f64::INFINITY],
            &[0.5],
            &[1.0, 2.0],
            &[-f64::MAX, f64::MAX],
            &[f64::MAX, f64::NEG_INFINITY],
        ];
        for values in cases {
            for floor_zero in [false, true] {
                let r = range(values.iter().copied(), floor_zero);
                assert!(
                    r.start.is_finite() && r.end.is_finite() && r.end > r.start,
                    "{values:?} {floor_zero}: {r:?}"
                );
            }
        }
        assert_eq!(range([1.0, 3.0].into_iter(), false), 1.0..3.1);
    }

    #[test]
    fn plots_of_empty_and_non_finite_histories_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.svg");
        training_curves(&[], &path).unwrap();
        let bad = EpochMetrics {
            epoch: 1,
            iteration: 1,
            train_loss: f64::NAN,
            val_loss: Some(f64::INFINITY),
            val_accuracy: Some(f64::NAN),
            val_metrics: Default::default(),
            test_accuracy: None,
            samples_per_s: f64::INFINITY,
            lr: 1e6,
            batch_size: 8,
            seconds: 0.0,
        };
        training_curves(&[bad], &path).unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().starts_with("<svg"));
        sweep(&[], &path).unwrap();
        let point = SweepPoint {
            batch_size: 8,
            samples_per_s: f64::NAN,
            val_accuracy: f64::INFINITY,
        };
        sweep(&[point], &path).unwrap();
    }
}
