//! `--plot FILE.svg`: small line charts written as SVG by hand (a chart is
//! a few polylines, axes and labels; no plotting library needed).
//!
//! - [`latency_chart`]: a latency distribution per concurrency level, the
//!   way HdrHistogram plots them: latency against percentile, the x axis
//!   stretched towards the tail (50%, 90%, 99%, 99.9%, ...).
//! - [`fairness_chart`]: every instance's progress, sorted, against the
//!   mean: a flat line is perfect fairness.

use hdrhistogram::Histogram;
use std::fmt::Write as _;

const WIDTH: f64 = 800.0;
const HEIGHT: f64 = 480.0;
const LEFT: f64 = 90.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;
const COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];
/// Most points drawn per series (longer series are thinned evenly).
const MAX_POINTS: usize = 2000;

/// An axis: its title, range and labelled ticks (in axis units).
#[derive(Clone, Debug)]
pub struct Axis {
    /// The title.
    pub title: String,
    /// Lowest value shown.
    pub min: f64,
    /// Highest value shown.
    pub max: f64,
    /// Ticks: (value, label).
    pub ticks: Vec<(f64, String)>,
}

/// One line of a chart.
#[derive(Clone, Debug)]
pub struct Series {
    /// Its name in the legend.
    pub name: String,
    /// Its points, in axis units.
    pub points: Vec<(f64, f64)>,
}

/// A line chart.
#[derive(Clone, Debug)]
pub struct Chart {
    /// The title.
    pub title: String,
    /// The x axis.
    pub x: Axis,
    /// The y axis.
    pub y: Axis,
    /// The lines.
    pub series: Vec<Series>,
    /// Dashed horizontal reference lines: (y, label).
    pub references: Vec<(f64, String)>,
}

impl Chart {
    /// The chart as an SVG document.
    pub fn to_svg(&self) -> String {
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let span = |a: &Axis| {
            if a.max > a.min {
                a.max - a.min
            } else {
                1.0
            }
        };
        let sx = |x: f64| LEFT + (x - self.x.min) / span(&self.x) * plot_w;
        let sy = |y: f64| TOP + plot_h - (y - self.y.min) / span(&self.y) * plot_h;
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="25" text-anchor="middle" font-size="15">{}</text>"#,
            LEFT + plot_w / 2.0,
            escape(&self.title)
        );
        for (x, label) in &self.x.ticks {
            let px = sx(*x);
            let _ = writeln!(
                s,
                r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{:.1}" stroke="#ddd"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                TOP + plot_h,
                TOP + plot_h + 18.0,
                escape(label)
            );
        }
        for (y, label) in &self.y.ticks {
            let py = sy(*y);
            let _ = writeln!(
                s,
                r##"<line x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                LEFT + plot_w,
                LEFT - 6.0,
                py + 4.0,
                escape(label)
            );
        }
        let _ = writeln!(
            s,
            r#"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="black"/>"#
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            LEFT + plot_w / 2.0,
            HEIGHT - 15.0,
            escape(&self.x.title)
        );
        let _ = writeln!(
            s,
            r#"<text transform="translate(20,{:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            TOP + plot_h / 2.0,
            escape(&self.y.title)
        );
        for (y, label) in &self.references {
            let py = sy(*y);
            let _ = writeln!(
                s,
                r##"<line x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#555" stroke-dasharray="6,4"/><text x="{:.1}" y="{:.1}">{}</text>"##,
                LEFT + plot_w,
                LEFT + plot_w + 6.0,
                py + 4.0,
                escape(label)
            );
        }
        for (i, series) in self.series.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let step = series.points.len().div_ceil(MAX_POINTS).max(1);
            let mut points = String::new();
            let last = series.points.len().saturating_sub(1);
            for (j, (x, y)) in series.points.iter().enumerate() {
                if j % step == 0 || j == last {
                    let _ = write!(points, "{:.1},{:.1} ", sx(*x), sy(y.min(self.y.max)));
                }
            }
            let _ = writeln!(
                s,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{}"/>"#,
                points.trim_end()
            );
            let ly = TOP + 10.0 + 18.0 * i as f64;
            let lx = LEFT + plot_w + 10.0;
            let _ = writeln!(
                s,
                r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{colour}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
                lx + 20.0,
                lx + 26.0,
                ly + 4.0,
                escape(&series.name)
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// About five round ticks from 0 to `max`, labelled with `unit`.
fn linear_ticks(max: f64, unit: &str) -> (f64, Vec<(f64, String)>) {
    let max = if max > 0.0 { max } else { 1.0 };
    let raw = max / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(raw);
    let top = (max / step).ceil() * step;
    let ticks = (0..=((top / step).round() as usize))
        .map(|i| {
            let v = i as f64 * step;
            let label = if step >= 1.0 {
                format!("{v:.0}{unit}")
            } else {
                format!("{v}{unit}")
            };
            (v, label)
        })
        .collect();
    (top, ticks)
}

/// Latency against percentile, one line per `(name, histogram of ns)`.
pub fn latency_chart(title: &str, levels: &[(String, &Histogram<u64>)]) -> Chart {
    // x = log10(1 / (1 - q)): 0 at the median's left end, 1 at 90%, 2 at 99%...
    let nines = 5.0;
    let x_of = |q: f64| -(1.0 - q).max(1e-9).log10();
    let mut series = Vec::new();
    let mut y_max: f64 = 0.0;
    for (name, h) in levels {
        let mut points = Vec::new();
        let steps = 400;
        for i in 0..=steps {
            let x = nines * i as f64 / steps as f64;
            let q = 1.0 - 10f64.powf(-x);
            let v = h.value_at_quantile(q) as f64 / 1e3;
            y_max = y_max.max(v);
            points.push((x, v));
        }
        series.push(Series {
            name: name.clone(),
            points,
        });
    }
    let (top, y_ticks) = linear_ticks(y_max, "");
    let x_ticks = [
        (0.0, "0%"),
        (0.9, "90%"),
        (0.99, "99%"),
        (0.999, "99.9%"),
        (0.9999, "99.99%"),
        (0.99999, "99.999%"),
    ]
    .iter()
    .map(|(q, label)| (x_of(*q), label.to_string()))
    .collect();
    Chart {
        title: title.to_string(),
        x: Axis {
            title: "percentile".into(),
            min: 0.0,
            max: nines,
            ticks: x_ticks,
        },
        y: Axis {
            title: "latency (µs)".into(),
            min: 0.0,
            max: top,
            ticks: y_ticks,
        },
        series,
        references: Vec::new(),
    }
}

/// Every instance's counter, sorted ascending, against their mean.
pub fn fairness_chart(title: &str, sorted: &[i64]) -> Chart {
    let n = sorted.len().max(1);
    let mean = sorted.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    let max = sorted.last().copied().unwrap_or(0) as f64;
    let (scale, unit) = if max >= 1e9 {
        (1e9, "G")
    } else if max >= 1e6 {
        (1e6, "M")
    } else if max >= 1e3 {
        (1e3, "k")
    } else {
        (1.0, "")
    };
    let points = sorted
        .iter()
        .enumerate()
        .map(|(i, &v)| (i as f64, v as f64 / scale))
        .collect();
    let (top, y_ticks) = linear_ticks(max / scale * 1.05, unit);
    let (x_top, x_ticks) = linear_ticks(n as f64, "");
    Chart {
        title: title.to_string(),
        x: Axis {
            title: "instances, sorted by progress".into(),
            min: 0.0,
            max: x_top,
            ticks: x_ticks,
        },
        y: Axis {
            title: "increments".into(),
            min: 0.0,
            max: top,
            ticks: y_ticks,
        },
        series: vec![Series {
            name: "per instance".into(),
            points,
        }],
        references: vec![(mean / scale, "mean".into())],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_svg() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 1 << 40, 3).unwrap();
        for v in 1..10_000u64 {
            h.record(v * 100).unwrap();
        }
        let svg = latency_chart("spawn", &[("C=1".into(), &h)]).to_svg();
        assert!(svg.starts_with("<svg") && svg.contains("polyline") && svg.contains("99.9%"));
        let svg = fairness_chart("preempt", &[1, 2, 3, 4]).to_svg();
        assert!(svg.contains("mean") && svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn ticks_are_round() {
        let (top, ticks) = linear_ticks(47.0, "");
        assert_eq!(top, 50.0);
        assert_eq!(ticks.len(), 6);
    }
}
