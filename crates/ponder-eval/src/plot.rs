//! Small SVG charts for the report: scatter points, lines and step traces on linear axes with
//! ticks, axis labels and a legend. Plain text output, no dependencies; the same data gives the
//! same bytes.

use std::fmt::Write;

/// Colours of successive series.
const PALETTE: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
];

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Dots.
    Points,
    /// A polyline through the points in order.
    Line,
    /// A polyline with dots on the points.
    LinePoints,
    /// A filled area (an interval band): the points go along its upper edge and back along
    /// its lower edge. Drawn translucent in the colour of the series before it, with no legend
    /// entry of its own.
    Band,
}

/// One named series.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// The points.
    pub points: Vec<(f64, f64)>,
    /// How to draw it.
    pub mark: Mark,
}

/// A chart: title, axis labels and series.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Title above the plot.
    pub title: String,
    /// Label of the x axis.
    pub x_label: String,
    /// Label of the y axis.
    pub y_label: String,
    /// The series, drawn in order.
    pub series: Vec<Series>,
}

const W: f64 = 640.0;
const H: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 55.0;

/// About five round tick values covering `[lo, hi]`.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = hi - lo;
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| span / s <= 6.0)
        .unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + step * 1e-9 {
        out.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    out
}

/// `[lo, hi]` of `values` with 5% margins; a unit range around a constant.
fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        return (lo - 0.5, hi + 0.5);
    }
    let m = 0.05 * (hi - lo);
    (lo - m, hi + m)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn fmt_tick(v: f64) -> String {
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

impl Chart {
    /// The chart as an SVG document. Non-finite points are left out.
    pub fn to_svg(&self) -> String {
        let pts = || self.series.iter().flat_map(|s| s.points.iter());
        let (x0, x1) = range(pts().map(|p| p.0));
        let (y0, y1) = range(pts().map(|p| p.1));
        let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
        let sx = |x: f64| LEFT + (x - x0) / (x1 - x0) * pw;
        let sy = |y: f64| TOP + ph - (y - y0) / (y1 - y0) * ph;
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
            W / 2.0,
            esc(&self.title)
        );
        for t in ticks(x0, x1) {
            let x = sx(t);
            let _ = writeln!(
                s,
                r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#eee"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                TOP + ph,
                TOP + ph + 16.0,
                fmt_tick(t)
            );
        }
        for t in ticks(y0, y1) {
            let y = sy(t);
            let _ = writeln!(
                s,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                LEFT + pw,
                LEFT - 6.0,
                y + 4.0,
                fmt_tick(t)
            );
        }
        let _ = writeln!(
            s,
            r#"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="black"/>"#
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            LEFT + pw / 2.0,
            H - 12.0,
            esc(&self.x_label)
        );
        let _ = writeln!(
            s,
            r#"<text x="16" y="{:.1}" text-anchor="middle" transform="rotate(-90 16 {:.1})">{}</text>"#,
            TOP + ph / 2.0,
            TOP + ph / 2.0,
            esc(&self.y_label)
        );
        // Colours and legend rows count the series that are not bands.
        let mut shown = 0usize;
        for series in &self.series {
            let band = series.mark == Mark::Band;
            let i = if band { shown.saturating_sub(1) } else { shown };
            let colour = PALETTE[i % PALETTE.len()];
            let finite: Vec<(f64, f64)> = series
                .points
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect();
            if band {
                if finite.len() > 2 {
                    let path: Vec<String> = finite
                        .iter()
                        .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
                        .collect();
                    let _ = writeln!(
                        s,
                        r#"<polygon points="{}" fill="{colour}" fill-opacity="0.18" stroke="none"/>"#,
                        path.join(" ")
                    );
                }
                continue;
            }
            shown += 1;
            if matches!(series.mark, Mark::Line | Mark::LinePoints) && finite.len() > 1 {
                let path: Vec<String> = finite
                    .iter()
                    .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
                    .collect();
                let _ = writeln!(
                    s,
                    r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="1.5"/>"#,
                    path.join(" ")
                );
            }
            if matches!(series.mark, Mark::Points | Mark::LinePoints) {
                for &(x, y) in &finite {
                    let _ = writeln!(
                        s,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{colour}" fill-opacity="0.6"/>"#,
                        sx(x),
                        sy(y)
                    );
                }
            }
            let ly = TOP + 14.0 + 16.0 * i as f64;
            let _ = writeln!(
                s,
                r#"<rect x="{:.1}" y="{:.1}" width="10" height="10" fill="{colour}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
                LEFT + 10.0,
                ly - 9.0,
                LEFT + 25.0,
                ly,
                esc(&series.label)
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(
            ticks(0.0, 1.0),
            vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
        );
        let t = ticks(2.13, 2.91);
        assert!(t.len() >= 3 && t.len() <= 7, "{t:?}");
        assert!(t[0] >= 2.13 && *t.last().unwrap() <= 2.91);
    }

    #[test]
    fn a_band_takes_the_colour_of_its_line_and_no_legend_row() {
        let series = |label: &str, points: Vec<(f64, f64)>, mark| Series {
            label: label.into(),
            points,
            mark,
        };
        let chart = Chart {
            title: "t".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            series: vec![
                series("a", vec![(0.0, 1.0), (1.0, 2.0)], Mark::Line),
                series(
                    "a band",
                    vec![(0.0, 1.5), (1.0, 2.5), (1.0, 1.5), (0.0, 0.5)],
                    Mark::Band,
                ),
                series("b", vec![(0.0, 0.0), (1.0, 0.5)], Mark::Line),
            ],
        };
        let svg = chart.to_svg();
        assert_eq!(svg.matches("<polygon").count(), 1);
        assert!(svg.contains(&format!(r#"fill="{}" fill-opacity="0.18""#, PALETTE[0])));
        assert!(!svg.contains("a band"), "no legend row");
        assert!(
            svg.contains(&format!(r#"stroke="{}""#, PALETTE[1])),
            "b keeps the second colour"
        );
    }

    #[test]
    fn svg_maps_points_into_the_plot_and_skips_non_finite() {
        let chart = Chart {
            title: "a < b".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            series: vec![Series {
                label: "s".into(),
                points: vec![(0.0, 0.0), (1.0, 1.0), (f64::NAN, 2.0)],
                mark: Mark::LinePoints,
            }],
        };
        let svg = chart.to_svg();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("a &lt; b"));
        assert_eq!(svg.matches("<circle").count(), 2);
        // (0, 0) is 5% inside the bottom-left corner of the plot area.
        let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
        let cx = LEFT + pw * 0.05 / 1.1;
        let cy = TOP + ph - ph * 0.05 / 1.1;
        assert!(
            svg.contains(&format!(r#"cx="{cx:.1}" cy="{cy:.1}""#)),
            "{svg}"
        );
        assert_eq!(chart.to_svg(), svg, "deterministic");
    }
}
