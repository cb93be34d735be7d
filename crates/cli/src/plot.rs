//! SVG plots (plotters): loss and accuracy per epoch for `train`, throughput and accuracy
//! per batch size for `batch-sweep`.

use std::path::Path;

use plotters::prelude::*;
use tapegrad_data::train::EpochMetrics;

type PlotResult = Result<(), Box<dyn std::error::Error>>;

fn range(values: impl Iterator<Item = f64>, floor_zero: bool) -> std::ops::Range<f64> {
    let v: Vec<f64> = values.filter(|x| x.is_finite()).collect();
    let lo = if floor_zero {
        0.0
    } else {
        v.iter().copied().fold(f64::INFINITY, f64::min)
    };
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() || !hi.is_finite() || hi <= lo {
        return lo.min(0.0)..lo.max(0.0) + 1.0;
    }
    lo..hi + (hi - lo) * 0.05
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
            history.iter().map(|m| (m.epoch as f64, m.train_loss)),
            &BLUE,
        ))?
        .label("train")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    chart
        .draw_series(LineSeries::new(
            history
                .iter()
                .filter_map(|m| m.val_loss.map(|v| (m.epoch as f64, v))),
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
            history
                .iter()
                .filter_map(|m| m.val_accuracy.map(|v| (m.epoch as f64, v))),
            &RED,
        ))?
        .label("validation")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    chart.draw_series(history.iter().filter_map(|m| {
        m.test_accuracy
            .map(|v| Circle::new((m.epoch as f64, v), 4, BLACK.filled()))
    }))?;
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
    chart.draw_series(LineSeries::new(
        points
            .iter()
            .map(|p| (p.batch_size as f64, p.samples_per_s)),
        &BLUE,
    ))?;
    chart.draw_series(
        points
            .iter()
            .map(|p| Circle::new((p.batch_size as f64, p.samples_per_s), 4, BLUE.filled())),
    )?;

    let mut chart = ChartBuilder::on(&right)
        .caption("validation accuracy", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(x, range(points.iter().map(|p| p.val_accuracy), false))?;
    chart.configure_mesh().x_desc("batch size").draw()?;
    chart.draw_series(LineSeries::new(
        points.iter().map(|p| (p.batch_size as f64, p.val_accuracy)),
        &RED,
    ))?;
    chart.draw_series(
        points
            .iter()
            .map(|p| Circle::new((p.batch_size as f64, p.val_accuracy), 4, RED.filled())),
    )?;
    root.present()?;
    Ok(())
}
