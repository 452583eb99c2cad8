//! Uncertainty band by Monte Carlo with a fixed seed: between-subject variability where the
//! model publishes it (log-normal random effects), and the ranges of the route parameters
//! (bioavailability uniform, absorption rate log-uniform) for doses on default route values.

use super::engine::{System, Trajectory};
use super::model::ModelSpec;
use super::regimen::{DoseEvent, PkRoute, RouteSpec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

/// 5th, 50th and 95th percentiles of plasma concentration across simulated subjects.
#[derive(Clone, Debug, PartialEq)]
pub struct PopulationBand {
    /// What was varied, in words.
    pub varied: Vec<String>,
    /// Number of simulated subjects.
    pub subjects: usize,
    /// Seed of the random generator (the band is reproducible).
    pub seed: u64,
    /// 5th percentile, mg/L, on the simulation's time grid.
    pub p05: Vec<f64>,
    /// Median, mg/L.
    pub p50: Vec<f64>,
    /// 95th percentile, mg/L.
    pub p95: Vec<f64>,
    /// 5th and 95th percentiles of the maximum on the grid, mg/L.
    pub cmax_p05_p95: (f64, f64),
}

/// Draws `subjects` virtual patients and returns the band, or `None` when the model publishes no
/// variability and no dose uses default route values (nothing to vary).
#[allow(clippy::too_many_arguments)]
pub fn band(
    spec: &ModelSpec,
    weight_kg: f64,
    ke0: f64,
    events: &[DoseEvent],
    routes: &[RouteSpec],
    times: &[f64],
    subjects: usize,
    seed: u64,
) -> Option<PopulationBand> {
    let omegas = spec.omegas();
    let varied_routes: Vec<&RouteSpec> = routes
        .iter()
        .filter(|r| events.iter().any(|e| matches!(e, DoseEvent::Depot { route, defaults: true, .. } if *route == r.route)))
        .collect();
    if (omegas.is_none() && varied_routes.is_empty()) || subjects < 20 || times.is_empty() {
        return None;
    }
    let mut varied = Vec::new();
    if omegas.is_some() {
        varied.push(format!("between-subject variability of {} (log-normal)", spec.name));
    }
    for r in &varied_routes {
        varied.push(format!(
            "{} bioavailability {}-{} (uniform) and absorption rate {:.4}-{:.4} per min (log-uniform)",
            r.route.label(),
            r.f.low,
            r.f.high,
            r.ka_per_min.low,
            r.ka_per_min.high
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut curves: Vec<Vec<f64>> = Vec::with_capacity(subjects);
    let mut cmaxes = Vec::with_capacity(subjects);
    let mut drawn: Vec<DoseEvent> = events.to_vec();
    for _ in 0..subjects {
        let etas = omegas.map(|om| {
            let mut e = [0.0; 6];
            for (k, o) in om.iter().enumerate() {
                let z: f64 = rng.sample(StandardNormal);
                e[k] = o * z;
            }
            e
        });
        let mut per_route: Vec<(PkRoute, f64, f64)> = Vec::new();
        for r in &varied_routes {
            let f = rng.gen_range(r.f.low..=r.f.high);
            let (lo, hi) = (r.ka_per_min.low.ln(), r.ka_per_min.high.ln());
            let ka = rng.gen_range(lo..=hi).exp();
            per_route.push((r.route, f, ka));
        }
        for (d, e) in drawn.iter_mut().zip(events) {
            if let DoseEvent::Depot { route, defaults: true, at_min, dose_mg, .. } = *e {
                if let Some((_, f, ka)) = per_route.iter().find(|p| p.0 == route) {
                    *d = DoseEvent::Depot { at_min, dose_mg, route, f: *f, ka_per_min: *ka, defaults: true };
                }
            }
        }
        let Ok(disp) = spec.micro(weight_kg, etas.as_ref()).disposition() else {
            continue;
        };
        let sys = System { disp, ke0, events: &drawn };
        let (cp, _) = Trajectory::new(&sys).series(times);
        cmaxes.push(cp.iter().copied().fold(0.0, f64::max));
        curves.push(cp);
    }
    if curves.len() < 20 {
        return None;
    }
    let n = curves.len();
    let pick = |sorted: &[f64], p: f64| sorted[((p * (n - 1) as f64).round() as usize).min(n - 1)];
    let mut p05 = Vec::with_capacity(times.len());
    let mut p50 = Vec::with_capacity(times.len());
    let mut p95 = Vec::with_capacity(times.len());
    let mut col = vec![0.0; n];
    for k in 0..times.len() {
        for (j, c) in curves.iter().enumerate() {
            col[j] = c[k];
        }
        col.sort_by(f64::total_cmp);
        p05.push(pick(&col, 0.05));
        p50.push(pick(&col, 0.5));
        p95.push(pick(&col, 0.95));
    }
    cmaxes.sort_by(f64::total_cmp);
    Some(PopulationBand { varied, subjects: n, seed, p05, p50, p95, cmax_p05_p95: (pick(&cmaxes, 0.05), pick(&cmaxes, 0.95)) })
}
