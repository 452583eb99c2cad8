//! Exposure metrics on the continuous curve: maximum and its time (not only on the grid), time
//! above thresholds (from the exact crossings), concentrations at given times, AUC.

use super::engine::{State, Trajectory};

/// Which concentration a metric is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Site {
    /// Plasma.
    Plasma,
    /// Effect site.
    Effect,
}

fn value(s: &State, site: Site) -> f64 {
    match site {
        Site::Plasma => s.cp(),
        Site::Effect => s.ce(),
    }
}

fn slope(t: &Trajectory, s: &State, site: Site) -> f64 {
    let (dp, de) = t.derivatives(s);
    match site {
        Site::Plasma => dp,
        Site::Effect => de,
    }
}

/// A stretch of time with no change of input, and its monotone pieces.
struct Piece {
    /// Start and end, min.
    a: f64,
    b: f64,
    /// Value at the start (right limit) and at the end (left limit), mg/L.
    fa: f64,
    fb: f64,
}

/// Sample points within a segment: dense near its start (fast dynamics after a dose) and
/// spread over the rest.
fn samples(a: f64, b: f64) -> Vec<f64> {
    const N: usize = 64;
    let w = b - a;
    let mut u: Vec<f64> = (0..=N).map(|j| (j as f64 / N as f64).powi(2)).collect();
    u.extend((1..=24).map(|k| 0.5f64.powi(k)));
    u.sort_by(f64::total_cmp);
    u.dedup();
    u.into_iter().map(|x| a + w * x).collect()
}

/// Monotone pieces of the curve over [from, to]: the segments between input changes, split at
/// every turning point (found from the sign of the exact derivative and refined by bisection).
fn pieces(traj: &Trajectory, site: Site, from: f64, to: f64) -> Vec<Piece> {
    let mut cuts: Vec<f64> = vec![from];
    cuts.extend(traj.breakpoints().filter(|b| *b > from && *b < to));
    cuts.push(to);
    let mut out = Vec::new();
    for w in cuts.windows(2) {
        let (a, b) = (w[0], w[1]);
        if b <= a {
            continue;
        }
        let base = traj.state_at(a);
        let at = |t: f64| traj.advance(&base, t - a);
        let pts = samples(a, b);
        let mut turns = Vec::new();
        let mut prev = (pts[0], slope(traj, &base, site));
        for &t in &pts[1..] {
            let d = slope(traj, &at(t), site);
            if (prev.1 > 0.0 && d <= 0.0) || (prev.1 < 0.0 && d >= 0.0) {
                // Bisection on the sign of the derivative.
                let (mut lo, mut hi) = (prev.0, t);
                let rising = prev.1 > 0.0;
                for _ in 0..200 {
                    let mid = 0.5 * (lo + hi);
                    if mid <= lo || mid >= hi || hi - lo <= 1e-12 * hi.abs().max(1.0) {
                        break;
                    }
                    let dm = slope(traj, &at(mid), site);
                    if (dm > 0.0) == rising && dm != 0.0 {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                turns.push(0.5 * (lo + hi));
            }
            prev = (t, d);
        }
        let mut bounds = vec![a];
        bounds.extend(turns.into_iter().filter(|t| *t > a && *t < b));
        bounds.push(b);
        for p in bounds.windows(2) {
            out.push(Piece { a: p[0], b: p[1], fa: value(&at(p[0]), site), fb: value(&at(p[1]), site) });
        }
    }
    out
}

/// The curve over a window split into monotone pieces, computed once and used for every metric.
pub struct Curve<'a> {
    traj: &'a Trajectory,
    site: Site,
    from: f64,
    pieces: Vec<Piece>,
}

impl<'a> Curve<'a> {
    /// Splits the curve over [from, to] into monotone pieces.
    pub fn new(traj: &'a Trajectory, site: Site, from: f64, to: f64) -> Curve<'a> {
        Curve { traj, site, from, pieces: pieces(traj, site, from, to) }
    }

    /// The highest concentration and when (mg/L, min). At a bolus the curve is right-continuous,
    /// so the value at the bolus time counts. Of equal peaks (repeated identical doses) the
    /// first is reported: a later one must be higher by more than rounding.
    pub fn maximum(&self) -> (f64, f64) {
        let mut best = (value(&self.traj.state_at(self.from), self.site), self.from);
        for p in &self.pieces {
            for (v, t) in [(p.fa, p.a), (p.fb, p.b)] {
                if v > best.0 * (1.0 + 1e-12) {
                    best = (v, t);
                }
            }
        }
        best
    }

    /// Minutes during which the concentration is above `threshold` (mg/L).
    pub fn minutes_above(&self, threshold: f64) -> f64 {
        let mut total = 0.0;
        for p in &self.pieces {
            let (above_a, above_b) = (p.fa > threshold, p.fb > threshold);
            if above_a && above_b {
                total += p.b - p.a;
            } else if above_a != above_b {
                // One crossing in a monotone piece: bisection on the value.
                let base = self.traj.state_at(p.a);
                let (mut lo, mut hi) = (p.a, p.b);
                for _ in 0..200 {
                    let mid = 0.5 * (lo + hi);
                    if mid <= lo || mid >= hi || hi - lo <= 1e-12 * hi.abs().max(1.0) {
                        break;
                    }
                    if (value(&self.traj.advance(&base, mid - p.a), self.site) > threshold) == above_a {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                let x = 0.5 * (lo + hi);
                total += if above_a { x - p.a } else { p.b - x };
            }
        }
        total
    }
}

/// The highest concentration over [from, to] and when (mg/L, min); see [`Curve::maximum`].
pub fn maximum(traj: &Trajectory, site: Site, from: f64, to: f64) -> (f64, f64) {
    Curve::new(traj, site, from, to).maximum()
}

/// Minutes over [from, to] during which the concentration is above `threshold` (mg/L).
pub fn minutes_above(traj: &Trajectory, site: Site, from: f64, to: f64, threshold: f64) -> f64 {
    Curve::new(traj, site, from, to).minutes_above(threshold)
}
