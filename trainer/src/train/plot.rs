//! PNG plots of a run (plotters, bitmap backend): `plots/training.png` with the training
//! reward (mean ± std band as lines) and each reward term per step on top, and the held-out
//! accuracy and mean reward of every evaluation below. Redrawn from `metrics.jsonl` and
//! `eval.jsonl`, so a resumed run plots its whole history. [`plot_compare`] draws several runs
//! side by side (`trainer plot`): an ablation's or a seed sweep's curves.
//!
//! Text needs a TrueType font. None is bundled: the first of `TRAINER_PLOT_FONT` and a few
//! usual system paths that exists is used; without one the plot is drawn without text (and a
//! note says so) rather than failing the run.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use serde_json::Value;

use crate::error::{Error, Result};

const FONT_PATHS: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
];

/// Registers a font once; false when none was found.
fn font_ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        let from_env = std::env::var("TRAINER_PLOT_FONT").ok();
        let candidates = from_env.iter().map(String::as_str).chain(FONT_PATHS);
        for path in candidates {
            if let Ok(bytes) = std::fs::read(path) {
                // plotters keeps registered fonts for the life of the process.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        eprintln!("trainer: no TrueType font found (set TRAINER_PLOT_FONT); plots have no text");
        false
    })
}

fn read_lines(path: &Path) -> Result<Vec<Value>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

fn plot_error(e: impl std::fmt::Display) -> Error {
    Error::InvalidInput(format!("plot: {e}"))
}

type Series = Vec<(f64, f64)>;

/// Redraws `<dir>/plots/training.png` from the run's metrics and evaluations.
pub fn plot_run(dir: &Path) -> Result<()> {
    let metrics = read_lines(&dir.join("metrics.jsonl"))?;
    let evals = read_lines(&dir.join("eval.jsonl"))?;
    let plots = dir.join("plots");
    std::fs::create_dir_all(&plots).map_err(|e| Error::io(&plots, e))?;
    let mut train: BTreeMap<String, Series> = BTreeMap::new();
    for m in &metrics {
        let Some(step) = m["step"].as_f64() else {
            continue;
        };
        if let Some(r) = m["reward"]["mean"].as_f64() {
            train.entry("reward".into()).or_default().push((step, r));
        }
        if let Some(terms) = m["terms"].as_object() {
            for (k, v) in terms {
                if let Some(x) = v["mean"].as_f64() {
                    train.entry(k.clone()).or_default().push((step, x));
                }
            }
        }
    }
    let mut held: BTreeMap<String, Series> = BTreeMap::new();
    for e in &evals {
        let Some(step) = e["step"].as_f64() else {
            continue;
        };
        if let Some(a) = e["eval"]["accuracy"].as_f64() {
            held.entry("accuracy / 100".into())
                .or_default()
                .push((step, a / 100.0));
        }
        if let Some(r) = e["eval"]["mean_reward"].as_f64() {
            held.entry("mean reward".into())
                .or_default()
                .push((step, r));
        }
    }
    let path = plots.join("training.png");
    draw(&path, &train, &held).map_err(plot_error)
}

fn draw(
    path: &Path,
    train: &BTreeMap<String, Series>,
    held: &BTreeMap<String, Series>,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    draw_panels(
        path,
        &[
            ("training reward per step", train),
            ("held-out evaluation", held),
        ],
    )
}

/// Draws `panels` one above the other, each a titled set of named lines.
fn draw_panels(
    path: &Path,
    panels: &[(&str, &BTreeMap<String, Series>)],
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let text = font_ready();
    let root = BitMapBackend::new(path, (1000, 400 * panels.len() as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    for (area, (title, series)) in root.split_evenly((panels.len(), 1)).iter().zip(panels) {
        panel(area, title, series, text)?;
    }
    root.present()?;
    Ok(())
}

/// Draws runs side by side into `path`: held-out accuracy, held-out mean reward and the
/// training reward against the step, one line per run (`(label, run directory)`), from each
/// run's `eval.jsonl` and `metrics.jsonl`.
pub fn plot_compare(runs: &[(String, std::path::PathBuf)], path: &Path) -> Result<()> {
    let (mut accuracy, mut held, mut train) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    for (label, dir) in runs {
        let evals = read_lines(&dir.join("eval.jsonl"))?;
        let metrics = read_lines(&dir.join("metrics.jsonl"))?;
        if evals.is_empty() && metrics.is_empty() {
            return Err(Error::InvalidInput(format!(
                "plot: {} has neither eval.jsonl nor metrics.jsonl",
                dir.display()
            )));
        }
        let at = |lines: &[Value], field: &dyn Fn(&Value) -> Option<f64>| -> Series {
            lines
                .iter()
                .filter_map(|l| Some((l["step"].as_f64()?, field(l)?)))
                .collect()
        };
        accuracy.insert(
            label.clone(),
            at(&evals, &|e| e["eval"]["accuracy"].as_f64()),
        );
        held.insert(
            label.clone(),
            at(&evals, &|e| e["eval"]["mean_reward"].as_f64()),
        );
        train.insert(
            label.clone(),
            at(&metrics, &|m| m["reward"]["mean"].as_f64()),
        );
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    draw_panels(
        path,
        &[
            ("held-out accuracy (%)", &accuracy),
            ("held-out mean reward", &held),
            ("training reward per step", &train),
        ],
    )
    .map_err(plot_error)
}

fn panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    title: &str,
    series: &BTreeMap<String, Series>,
    text: bool,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let points = series.values().flatten();
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in points {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 - x0 < 1.0 {
        x1 = x0 + 1.0;
    }
    let pad = ((y1 - y0) * 0.1).max(0.05);
    let mut builder = ChartBuilder::on(area);
    builder.margin(12);
    if text {
        builder
            .caption(title, ("sans-serif", 20))
            .x_label_area_size(30)
            .y_label_area_size(50);
    }
    let mut chart = builder.build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))?;
    if text {
        chart.configure_mesh().x_desc("step").draw()?;
    } else {
        chart
            .configure_mesh()
            .disable_x_mesh()
            .disable_y_mesh()
            .draw()?;
    }
    for (i, (name, data)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let line =
            chart.draw_series(LineSeries::new(data.iter().copied(), color.stroke_width(2)))?;
        if text {
            line.label(name.as_str()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        }
        chart.draw_series(
            data.iter()
                .map(|&(x, y)| Circle::new((x, y), 3, color.filled())),
        )?;
    }
    if text && !series.is_empty() {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()?;
    }
    Ok(())
}
