//! Charts as SVG (plotters): RL training curves and reliability diagrams.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use ugr_core::metrics::Reliability;

use crate::curves::Curves;

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing: {e}")
}

fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.08).max(1e-4);
    (lo - pad, hi + pad)
}

type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// One labelled series: a line through `pts` with a dot on each point.
fn labelled_line(
    chart: &mut Chart<'_, '_>,
    pts: &[(f64, f64)],
    color: RGBColor,
    label: String,
) -> Result<()> {
    chart
        .draw_series(LineSeries::new(pts.to_vec(), color.stroke_width(2)))
        .map_err(err)?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
    chart
        .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
        .map_err(err)?;
    Ok(())
}

/// The series labels in a framed box at `position`.
fn legend<'a, 'b: 'a>(chart: &mut Chart<'a, 'b>, position: SeriesLabelPosition) -> Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)
}

/// Draws the runs' curves on one chart per figure: validation NDCG@10 and HR@10, the
/// fraction of rollout groups containing the target, the mean learned confidence of
/// correct vs wrong beams, the distinct SIDs per rollout group and the validation top-10
/// catalog coverage, against the optimiser step. One colour per run, labelled.
pub fn curves_svg(path: &Path, runs: &[Curves]) -> Result<()> {
    let root = SVGBackend::new(path, (1200, 1720)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let panels = root.split_evenly((4, 2));
    type Getter = fn(&crate::curves::CurvePoint) -> f64;
    // (title, value, whether the SFT start point is drawn: rollout figures have none)
    let figures: [(&str, Getter, bool); 8] = [
        ("validation HR@1", |p| p.valid_hr1, true),
        ("validation NDCG@10", |p| p.valid_ndcg10, true),
        ("mean reward per rollout", |p| p.reward, false),
        (
            "rollout groups containing the target",
            |p| p.group_hit_rate,
            false,
        ),
        (
            "learned confidence: correct (solid) vs wrong (dashed) beams",
            |p| p.confidence_correct.unwrap_or(f64::NAN),
            false,
        ),
        ("distinct SIDs per rollout group", |p| p.unique_per_group, false),
        ("validation top-10 catalog coverage", |p| p.valid_coverage10, true),
        ("validation HR@10", |p| p.valid_hr10, true),
    ];
    let max_step = runs
        .iter()
        .flat_map(|r| r.points.iter().map(|p| p.step))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    for (panel, (title, get, include_start)) in panels.iter().zip(figures) {
        let is_conf = title.starts_with("learned");
        let values = runs.iter().flat_map(|r| {
            r.points.iter().flat_map(move |p| {
                let extra = if is_conf {
                    p.confidence_wrong.unwrap_or(f64::NAN)
                } else {
                    f64::NAN
                };
                [get(p), extra]
            })
        });
        let (lo, hi) = range(values);
        let mut chart = ChartBuilder::on(panel)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..max_step, lo..hi)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_label_formatter(&|v| format!("{v:.3}"))
            .draw()
            .map_err(err)?;
        for (i, run) in runs.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let pts: Vec<(f64, f64)> = run
                .points
                .iter()
                .filter(|p| include_start || p.step > 0)
                .map(|p| (p.step as f64, get(p)))
                .filter(|(_, v)| v.is_finite())
                .collect();
            labelled_line(&mut chart, &pts, color, run.label.clone())?;
            if is_conf {
                let wrong: Vec<(f64, f64)> = run
                    .points
                    .iter()
                    .filter(|p| p.step > 0)
                    .filter_map(|p| Some((p.step as f64, p.confidence_wrong?)))
                    .collect();
                for seg in wrong.windows(2) {
                    // dashed: every other half-segment
                    let (a, b) = (seg[0], seg[1]);
                    let mid = ((a.0 + b.0) / 2.0, (a.1 + b.1) / 2.0);
                    chart
                        .draw_series(std::iter::once(PathElement::new(
                            vec![a, mid],
                            color.stroke_width(2),
                        )))
                        .map_err(err)?;
                }
            }
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

/// A reliability diagram: accuracy against mean confidence per bin, the diagonal, and
/// each curve's ECE in its label.
pub fn reliability_svg(path: &Path, title: &str, curves: &[(&str, &Reliability)]) -> Result<()> {
    let root = SVGBackend::new(path, (640, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let hi = curves
        .iter()
        .flat_map(|(_, r)| r.bins.iter().flat_map(|b| [b.confidence, b.accuracy]))
        .fold(0.05f64, f64::max)
        .min(1.0)
        * 1.05;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..hi, 0f64..hi)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("mean confidence (bin)")
        .y_desc("fraction of hits (bin)")
        .x_label_formatter(&|v| format!("{v:.2}"))
        .y_label_formatter(&|v| format!("{v:.2}"))
        .draw()
        .map_err(err)?;
    chart
        .draw_series(LineSeries::new(vec![(0.0, 0.0), (hi, hi)], BLACK.mix(0.4)))
        .map_err(err)?
        .label("perfect calibration")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK.mix(0.4)));
    for (i, (name, r)) in curves.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let pts: Vec<(f64, f64)> = r.bins.iter().map(|b| (b.confidence, b.accuracy)).collect();
        labelled_line(&mut chart, &pts, color, format!("{name} (ECE {:.4})", r.ece))?;
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    root.present().map_err(err)?;
    Ok(())
}
