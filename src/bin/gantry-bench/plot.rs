//! The PNG: runs finished over time for each chain phase, and the distribution
//! (CDF) of the completion → next Job latency. Text is drawn with DejaVu Sans
//! read from the system's fonts (Debian's `fonts-dejavu-core`); no fontconfig.

use std::path::Path;

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::report::{Phase, Report};

const FONT_PATHS: [&str; 2] =
    ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/dejavu/DejaVuSans.ttf"];

/// Draws `report` into `path`.
pub fn draw(report: &Report, path: &Path) -> anyhow::Result<()> {
    let font = FONT_PATHS
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .ok_or_else(|| anyhow::anyhow!("no DejaVuSans.ttf in {FONT_PATHS:?} (apt-get install fonts-dejavu-core)"))?;
    plotters::style::register_font("sans-serif", FontStyle::Normal, Box::leak(font.into_boxed_slice()))
        .map_err(|_| anyhow::anyhow!("DejaVuSans.ttf is not a usable font"))?;
    draw_charts(report, path).map_err(|e| anyhow::anyhow!("drawing {}: {e}", path.display()))
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn phases(report: &Report) -> Vec<(&Phase, RGBColor)> {
    let colors = [RGBColor(31, 119, 180), RGBColor(214, 39, 40), RGBColor(44, 160, 44)];
    [&report.baseline, &report.gantry, &report.writes]
        .into_iter()
        .zip(colors)
        .filter_map(|(p, c)| Some((p.as_ref()?, c)))
        .collect()
}

fn draw_charts(report: &Report, path: &Path) -> DrawResult {
    let root = BitMapBackend::new(path, (1400, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(700);
    let phases = phases(report);
    finished_over_time(&left, &phases)?;
    latency_cdf(&right, &phases)?;
    root.present()?;
    Ok(())
}

fn label(phase: &Phase) -> String {
    format!("{} ({:.1} transitions/s)", phase.name, phase.transitions_per_sec)
}

fn finished_over_time<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    phases: &[(&Phase, RGBColor)],
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let runs = phases.iter().map(|(p, _)| p.runs).max().unwrap_or(1).max(1) as f64;
    let x_max = phases.iter().map(|(p, _)| p.wall_secs).fold(1.0, f64::max) * 1.02;
    let (r, s) = phases.first().map(|(p, _)| (p.runs, p.stages)).unwrap_or_default();
    let mut chart = ChartBuilder::on(area)
        .caption(format!("Runs finished over time ({r} runs x {s} stages)"), ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..x_max, 0f64..runs * 1.02)?;
    chart
        .configure_mesh()
        .x_desc("seconds since start")
        .y_desc("runs finished")
        .label_style(("sans-serif", 14))
        .draw()?;
    let lines = phases.iter().map(|(phase, color)| {
        let mut points = vec![(0.0, 0.0)];
        for (i, t) in phase.finished_at.iter().enumerate() {
            points.extend([(*t, i as f64), (*t, (i + 1) as f64)]);
        }
        (points, label(phase), *color)
    });
    draw_lines(&mut chart, lines)
}

fn latency_cdf<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    phases: &[(&Phase, RGBColor)],
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let x_max = phases.iter().flat_map(|(p, _)| p.latencies_ms.iter().copied()).fold(10.0, f64::max) * 1.5;
    let mut chart = ChartBuilder::on(area)
        .caption("Job completion -> next stage's Job (CDF)", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d((1f64..x_max).log_scale(), 0f64..1.0)?;
    chart
        .configure_mesh()
        .x_desc("latency, ms (log scale)")
        .y_desc("fraction of hand-offs")
        .label_style(("sans-serif", 14))
        .draw()?;
    let lines = phases.iter().map(|(phase, color)| {
        let mut sorted = phase.latencies_ms.clone();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len().max(1) as f64;
        let points = sorted.iter().enumerate().map(|(i, v)| (v.max(1.0), (i + 1) as f64 / n)).collect();
        let p = &phase.handoff_latency;
        let (p50, p99) = (p.p50_ms.unwrap_or_default(), p.p99_ms.unwrap_or_default());
        (points, format!("{}: p50 {p50:.0} ms, p99 {p99:.0} ms", phase.name), *color)
    });
    draw_lines(&mut chart, lines)
}

/// Draws each `(points, label, color)` as a line with its legend entry, then the legend.
fn draw_lines<'a, DB, X>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, RangedCoordf64>>,
    lines: impl Iterator<Item = (Vec<(f64, f64)>, String, RGBColor)>,
) -> DrawResult
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    X: Ranged<ValueType = f64>,
{
    for (points, label, color) in lines {
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Counts;
    use crate::tracker::JobSeen;
    use crate::workload::{Outcome, Workload};

    #[test]
    fn draws_a_png() {
        let workload = Workload {
            runs: 2,
            stages: 2,
            image: "i".into(),
            timeout: std::time::Duration::from_secs(1),
            create_concurrency: 1,
        };
        let phase = |name: &str, slow: f64| {
            let job = |run: &str, stage: &str, first: f64, done: f64| JobSeen {
                run: run.into(),
                stage: stage.into(),
                attempt: "1".into(),
                first_seen: first * slow,
                completed: Some(done * slow),
            };
            let outcome = Outcome {
                wall_secs: 2.0 * slow,
                finished: vec![1.5 * slow, 2.0 * slow],
                succeeded: 2,
                jobs: vec![
                    job("a", "s1", 0.0, 1.0),
                    job("a", "s2", 1.02, 1.5),
                    job("b", "s1", 0.0, 1.2),
                    job("b", "s2", 1.3, 2.0),
                ],
                ..Default::default()
            };
            Phase::new(name, &workload, outcome, &Counts::new(), &Counts::new())
        };
        let report =
            Report::new(Some(phase("baseline", 1.0)), Some(phase("gantry", 3.0)), Some(phase("writes", 2.0)), None);
        let path = std::env::temp_dir().join(format!("gantry-bench-test-{}.png", std::process::id()));
        draw(&report, &path).unwrap();
        let png = std::fs::read(&path).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG file");
        let _ = std::fs::remove_file(&path);
    }
}
