//! Two small SVG charts, written by hand: grouped throughput bars (one panel per scenario,
//! each with its own scale) and latency-percentile curves (wrk2/HdrHistogram style: the x
//! axis is 1/(1-p) on a log scale, so p50, p90, p99, p99.9 are evenly spaced).
//!
//! Written by hand rather than with `plotters`: its default `ttf` feature brings font-kit
//! (freetype, fontconfig); without it (`svg_backend` + `line_series` only) it is light, but
//! it then sizes text with a fixed estimate, as this code does, and these two charts (a
//! panel per scenario, each with its own scale and min..max whiskers; a 1/(1-p) log axis
//! labelled in percentiles) would take about as many lines of its configuration as they take
//! here, and change the charts already in bench-results/. SVG text is rendered by the viewer.

use std::fmt::Write as _;

/// Colours of the targets, in the order of the series given.
const COLOURS: [&str; 4] = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a"];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The document's opening: size, white background, title, and a legend square per series.
fn start(w: f64, h: f64, title: &str, series: &[&str]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="20" y="24" font-size="16" font-weight="bold">{}</text>"#,
        esc(title)
    );
    for (i, name) in series.iter().enumerate() {
        let x = 20.0 + i as f64 * 170.0;
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="34" width="12" height="12" fill="{}"/><text x="{}" y="45">{}</text>"#,
            COLOURS[i % COLOURS.len()],
            x + 16.0,
            esc(name)
        );
    }
    s
}

/// A "nice" axis maximum at or above `v`.
fn nice_max(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * mag >= v {
            return m * mag;
        }
    }
    10.0 * mag
}

fn fmt_num(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if v >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// One panel of bars: a scenario, its unit and one value (with a min..max whisker) per series.
pub struct BarPanel {
    pub title: String,
    pub unit: String,
    /// (median, min, max) per series, `None` when not measured.
    pub values: Vec<Option<(f64, f64, f64)>>,
}

/// Grouped bars, one panel per scenario side by side.
pub fn bars(title: &str, series: &[&str], panels: &[BarPanel]) -> String {
    let pw = 220.0;
    let ph = 260.0;
    let top = 60.0;
    let w = pw * panels.len().max(1) as f64 + 40.0;
    let h = top + ph + 70.0;
    let mut s = start(w, h, title, series);
    for (pi, panel) in panels.iter().enumerate() {
        let x0 = 40.0 + pi as f64 * pw;
        let plot_h = ph - 40.0;
        let y_base = top + 20.0 + plot_h;
        let vmax = panel
            .values
            .iter()
            .flatten()
            .map(|v| v.2.max(v.0))
            .fold(0.0, f64::max);
        let axis = nice_max(vmax);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle" font-weight="bold">{}</text>"#,
            x0 + (pw - 40.0) / 2.0,
            top + 10.0,
            esc(&panel.title)
        );
        // Axis and grid.
        for k in 0..=4 {
            let v = axis * k as f64 / 4.0;
            let y = y_base - plot_h * k as f64 / 4.0;
            let _ = writeln!(
                s,
                r##"<line x1="{x0}" y1="{y}" x2="{}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end" font-size="10">{}</text>"##,
                x0 + pw - 40.0,
                x0 - 3.0,
                y + 3.0,
                fmt_num(v)
            );
        }
        let n = panel.values.len().max(1) as f64;
        let bw = (pw - 60.0) / n;
        for (i, v) in panel.values.iter().enumerate() {
            let Some((median, lo, hi)) = *v else {
                continue;
            };
            let x = x0 + 10.0 + i as f64 * bw;
            let bh = plot_h * median / axis;
            let _ = writeln!(
                s,
                r#"<rect x="{x}" y="{}" width="{}" height="{bh}" fill="{}"/>"#,
                y_base - bh,
                bw - 6.0,
                COLOURS[i % COLOURS.len()]
            );
            let cx = x + (bw - 6.0) / 2.0;
            let (ylo, yhi) = (y_base - plot_h * lo / axis, y_base - plot_h * hi / axis);
            let _ = writeln!(
                s,
                r#"<line x1="{cx}" y1="{ylo}" x2="{cx}" y2="{yhi}" stroke="black"/><text x="{cx}" y="{}" text-anchor="middle" font-size="10">{}</text>"#,
                yhi - 4.0,
                fmt_num(median)
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle" font-size="11">{}</text>"#,
            x0 + (pw - 40.0) / 2.0,
            y_base + 18.0,
            esc(&panel.unit)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Latency-percentile curves: per series, (percentile 0..100, latency in µs) points.
pub fn percentile_curves(title: &str, series: &[(&str, Vec<(f64, f64)>)]) -> String {
    let (w, h) = (760.0, 440.0);
    let (left, right, top, bottom) = (70.0, 20.0, 60.0, 50.0);
    let pw = w - left - right;
    let ph = h - top - bottom;
    // x: log10(1/(1-p)), from p=0 to p=99.999.
    let xmax = 5.0;
    let xof = |p: f64| {
        let q = (1.0 - p / 100.0).max(1e-5);
        (-q.log10()).clamp(0.0, xmax)
    };
    let vmax = series
        .iter()
        .flat_map(|(_, pts)| pts.iter().map(|p| p.1))
        .fold(1.0, f64::max);
    let vmin = series
        .iter()
        .flat_map(|(_, pts)| pts.iter().map(|p| p.1))
        .filter(|v| *v > 0.0)
        .fold(f64::INFINITY, f64::min)
        .min(vmax);
    let (lmin, lmax) = (
        vmin.max(1.0).log10().floor(),
        nice_max(vmax)
            .log10()
            .ceil()
            .max(vmin.max(1.0).log10().floor() + 1.0),
    );
    let px = |x: f64| left + pw * x / xmax;
    let py = |v: f64| {
        let l = v.max(1.0).log10();
        top + ph - ph * (l - lmin) / (lmax - lmin)
    };
    let names: Vec<&str> = series.iter().map(|(n, _)| *n).collect();
    let mut s = start(w, h, title, &names);
    for (x, label) in [
        (0.0, "0%"),
        (1.0, "90%"),
        (2.0, "99%"),
        (3.0, "99.9%"),
        (4.0, "99.99%"),
        (5.0, "99.999%"),
    ] {
        let _ = writeln!(
            s,
            r##"<line x1="{0}" y1="{top}" x2="{0}" y2="{1}" stroke="#ddd"/><text x="{0}" y="{2}" text-anchor="middle" font-size="10">{label}</text>"##,
            px(x),
            top + ph,
            top + ph + 14.0
        );
    }
    let mut l = lmin;
    while l <= lmax + 1e-9 {
        let v = 10f64.powf(l);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{0}" x2="{1}" y2="{0}" stroke="#ddd"/><text x="{2}" y="{3}" text-anchor="end" font-size="10">{4}</text>"##,
            py(v),
            left + pw,
            left - 4.0,
            py(v) + 3.0,
            fmt_us(v)
        );
        l += 1.0;
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">percentile</text><text x="16" y="{}" transform="rotate(-90 16 {})" text-anchor="middle">latency (log scale)</text>"#,
        left + pw / 2.0,
        h - 12.0,
        top + ph / 2.0,
        top + ph / 2.0
    );
    for (i, (_, pts)) in series.iter().enumerate() {
        let path: Vec<String> = pts
            .iter()
            .map(|&(p, v)| format!("{:.1},{:.1}", px(xof(p)), py(v)))
            .collect();
        if path.is_empty() {
            continue;
        }
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
            COLOURS[i % COLOURS.len()],
            path.join(" ")
        );
    }
    s.push_str("</svg>\n");
    s
}

fn fmt_us(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.0} s", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.0} ms", v / 1e3)
    } else {
        format!("{v:.0} µs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_draw_one_rect_per_measured_value() {
        let svg = bars(
            "t",
            &["a", "b"],
            &[BarPanel {
                title: "keep-alive".into(),
                unit: "req/s".into(),
                values: vec![Some((100.0, 90.0, 110.0)), None],
            }],
        );
        // Background, one legend square per series, one bar.
        assert_eq!(svg.matches("<rect").count(), 1 + 2 + 1);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains(">100<"), "the median is labelled");
    }

    #[test]
    fn curves_have_one_polyline_per_series_and_escape_names() {
        let svg = percentile_curves(
            "lat <1>",
            &[
                ("x&y", vec![(50.0, 100.0), (99.0, 1000.0), (99.9, 5000.0)]),
                ("z", vec![(50.0, 80.0)]),
            ],
        );
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("lat &lt;1&gt;") && svg.contains("x&amp;y"));
    }

    #[test]
    fn nice_axis_maxima() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(42_000.0), 50_000.0);
        assert_eq!(nice_max(100.0), 100.0);
        assert_eq!(nice_max(101.0), 200.0);
    }
}
