//! The text exposition format 0.0.4 written out: families declared with their HELP and
//! TYPE, samples gathered under their family, the page written at the end.

use std::fmt::Write as _;

use crate::histogram::LatencyHistogram;

/// Families in declaration order, each with its samples; written out at the end, so that a
/// family's samples are contiguous (the format requires it) whatever order they come in.
#[derive(Default)]
pub(super) struct Metrics {
    families: Vec<Family>,
}

struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    lines: Vec<String>,
}

impl Metrics {
    pub(super) fn family(&mut self, name: &'static str, kind: &'static str, help: &'static str) {
        self.families.push(Family {
            name,
            kind,
            help,
            lines: Vec::new(),
        });
    }

    fn lines(&mut self, name: &str) -> &mut Vec<String> {
        let at = match self.families.iter().position(|f| f.name == name) {
            Some(at) => at,
            None => {
                // A family used before it was declared: a bug here, not a reason to fail the
                // page; it is shown untyped (tests check that none is).
                debug_assert!(false, "metric family {name} used before it was declared");
                self.families.push(Family {
                    name: "xgate_undeclared",
                    kind: "untyped",
                    help: "Samples of a family the code forgot to declare.",
                    lines: Vec::new(),
                });
                self.families.len() - 1
            }
        };
        &mut self.families[at].lines
    }

    pub(super) fn sample(&mut self, name: &str, labels: &str, v: u64) {
        let line = if labels.is_empty() {
            format!("{name} {v}")
        } else {
            format!("{name}{{{labels}}} {v}")
        };
        self.lines(name).push(line);
    }

    pub(super) fn sample_f64(&mut self, name: &str, labels: &str, v: f64) {
        let line = if labels.is_empty() {
            format!("{name} {v}")
        } else {
            format!("{name}{{{labels}}} {v}")
        };
        self.lines(name).push(line);
    }

    pub(super) fn histogram(&mut self, name: &str, labels: &str, h: &LatencyHistogram) {
        let mut lines = Vec::with_capacity(h.buckets.len() + 2);
        for (le, n) in h.cumulative() {
            let le = match le {
                Some(us) => format!("{}", us as f64 / 1e6),
                None => "+Inf".to_string(),
            };
            lines.push(format!("{name}_bucket{{{labels},le=\"{le}\"}} {n}"));
        }
        lines.push(format!("{name}_sum{{{labels}}} {}", h.sum_us as f64 / 1e6));
        lines.push(format!("{name}_count{{{labels}}} {}", h.count()));
        self.lines(name).extend(lines);
    }

    pub(super) fn finish(self) -> String {
        let mut out = String::new();
        for f in self.families {
            let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
            let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
            for line in f.lines {
                out.push_str(&line);
                out.push('\n');
            }
        }
        out
    }
}
