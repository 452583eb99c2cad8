//! Speed of the pharmacokinetic engine, and the Rust half of the side-by-side peer benchmark.
//!
//! - `cargo bench -p ketacare-domain --bench pk`: time per curve (plasma and effect site on the
//!   case's grid, from the micro constants: hybrid rates, the trajectory and the series) for every
//!   case of `tests/pk/cases.json`, its worst relative error against the 40-digit reference, the
//!   same with the closed-form engine, the exposure summary, and a 500-subject Monte Carlo band.
//! - `cargo bench -p ketacare-domain --bench pk -- --cases tests/pk/cases.json --out FILE`: writes
//!   the curves and times as JSON for `tests/pk/compare_peers.py`, which times PyTCI and scipy on
//!   the same cases in the same run.
//!
//! Times are the median of 15 rounds, each repeated until it lasts at least 20 ms.

#[path = "../tests/pk_cases/mod.rs"]
mod pk_cases;

use ketacare_domain::pk::engine::{Output, System, Trajectory};
use ketacare_domain::pk::model::{Micro, ModelSpec, Parameters, Scaled};
use ketacare_domain::pk::population::band;
use ketacare_domain::pk::regimen::{DoseEvent, PkRoute, Ranged, RouteSpec};
use ketacare_domain::pk::summary::{maximum, minutes_above, Site};
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

fn time_ns<F: FnMut()>(mut f: F) -> f64 {
    // Calibrate the repetitions to about 20 ms per round.
    let mut reps = 1usize;
    loop {
        let t = Instant::now();
        for _ in 0..reps {
            f();
        }
        if t.elapsed().as_millis() >= 20 || reps >= 1 << 24 {
            break;
        }
        reps *= 2;
    }
    let mut rounds: Vec<f64> = (0..15)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..reps {
                f();
            }
            t.elapsed().as_nanos() as f64 / reps as f64
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[rounds.len() / 2]
}

fn curve(m: &Micro, ke0: f64, events: &[DoseEvent], times: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let disp = m.disposition().expect("micro constants");
    let sys = System { disp, ke0, events };
    Trajectory::new(&sys).series(times)
}

fn root(p: &str) -> PathBuf {
    let path = PathBuf::from(p);
    if path.is_absolute() || path.exists() {
        path
    } else {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(p)
    }
}

fn worst(got: &[f64], want: &[f64]) -> f64 {
    let peak = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    got.iter().zip(want).map(|(g, r)| (g * 1000.0 - r).abs() / r.abs().max(1e-6 * peak).max(1e-300)).fold(0.0, f64::max)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let cases = match arg("--cases") {
        Some(p) => {
            let text = std::fs::read_to_string(root(&p)).unwrap_or_else(|e| panic!("reading {p}: {e}"));
            serde_json::from_str::<pk_cases::Cases>(&text).expect("cases file").cases
        }
        None => pk_cases::cases(),
    };
    if let Some(out) = arg("--out") {
        let mut list = Vec::new();
        for c in &cases {
            let (m, ev) = (c.micro(), c.events());
            let (cp, ce) = curve(&m, c.ke0_per_min, &ev, &c.times_min);
            let ns = time_ns(|| {
                black_box(curve(black_box(&m), c.ke0_per_min, &ev, &c.times_min));
            });
            list.push(serde_json::json!({
                "name": c.name,
                "cp_ng_per_ml": cp.iter().map(|v| v * 1000.0).collect::<Vec<_>>(),
                "ce_ng_per_ml": ce.iter().map(|v| v * 1000.0).collect::<Vec<_>>(),
                "ns_per_curve": ns,
            }));
        }
        let doc = serde_json::json!({ "engine": "ketacare-domain pk (recursive exact update)", "cases": list });
        std::fs::write(root(&out), serde_json::to_string(&doc).expect("json")).expect("writing --out");
        eprintln!("wrote {} cases to {out}", cases.len());
        return;
    }
    let refs = pk_cases::references();
    println!("{:<28} {:>7} {:>14} {:>14} {:>12} {:>12}", "case", "points", "recursive ns", "closed ns", "summary us", "max rel err");
    for c in &cases {
        let (m, ev) = (c.micro(), c.events());
        let (cp, ce) = curve(&m, c.ke0_per_min, &ev, &c.times_min);
        let r = refs.cases.iter().find(|r| r.name == c.name).expect("reference");
        let err = worst(&cp, &r.cp_ng_per_ml).max(worst(&ce, &r.ce_ng_per_ml));
        let rec = time_ns(|| {
            black_box(curve(black_box(&m), c.ke0_per_min, &ev, &c.times_min));
        });
        let disp = m.disposition().expect("micro");
        let sys = System { disp, ke0: c.ke0_per_min, events: &ev };
        let closed = time_ns(|| {
            for t in &c.times_min {
                black_box(sys.closed_form(Output::Cp, *t));
                black_box(sys.closed_form(Output::Ce, *t));
            }
        });
        let traj = Trajectory::new(&sys);
        let (from, to) = (c.times_min[0], *c.times_min.last().expect("times"));
        let summary = time_ns(|| {
            black_box(maximum(&traj, Site::Plasma, from, to));
            black_box(minutes_above(&traj, Site::Plasma, from, to, 0.1));
        });
        println!("{:<28} {:>7} {:>14.0} {:>14.0} {:>12.1} {:>12.1e}", c.name, c.times_min.len(), rec, closed, summary / 1000.0, err);
    }
    // Monte Carlo band: 500 subjects, Herd 2007 variability plus the SC route ranges.
    let s = |value: f64, exponent: f64, cv: f64| Scaled { value, exponent, bsv_cv: Some(cv) };
    let spec = ModelSpec {
        id: "herd-2007".into(),
        name: "Herd 2007".into(),
        analyte: ketacare_domain::pk::model::Analyte::Racemic,
        sampling: "venous".into(),
        population: "children".into(),
        adult_population: false,
        weight_range_kg: (10.0, 65.0),
        age_range_years: (1.0, 16.0),
        parameters: Parameters::Physiological {
            reference_kg: 70.0,
            v1: s(38.7, 1.0, 0.64),
            cl: s(1.5, 0.75, 0.38),
            second: Some((s(102.0, 1.0, 0.52), s(215.0 / 60.0, 0.75, 0.19))),
            third: None,
        },
        evidence: ketacare_domain::pk::model::Evidence::Verified,
        citation: "Herd 2007".into(),
        notes: String::new(),
    };
    let route = RouteSpec {
        route: PkRoute::Sc,
        f: Ranged { value: 0.93, low: 0.7, high: 1.0 },
        ka_per_min: Ranged { value: std::f64::consts::LN_2 / 10.0, low: std::f64::consts::LN_2 / 30.0, high: std::f64::consts::LN_2 / 2.5 },
        evidence: ketacare_domain::pk::model::Evidence::Assumed,
        source: String::new(),
        caveat: None,
    };
    let events =
        [DoseEvent::Depot { at_min: 0.0, dose_mg: 70.0, route: PkRoute::Sc, f: 0.93, ka_per_min: route.ka_per_min.value, defaults: true }];
    let times: Vec<f64> = (0..=360).map(f64::from).collect();
    let mc = time_ns(|| {
        black_box(band(&spec, 70.0, 0.652, &events, std::slice::from_ref(&route), &times, 500, 7));
    });
    println!("Monte Carlo band, 500 subjects x 361 points (SC 70 mg, Herd variability + route ranges): {:.2} ms", mc / 1e6);
    // The largest simulation the API accepts: 1000 doses over a year on 200 001 points, with the
    // continuous summary of plasma and effect site (what `simulate` does apart from the band,
    // which is not computed at this size).
    let domino = Micro { v1_l: 4.41, k10: 0.4381, k12: 0.5921, k21: 0.2470, k13: 0.5900, k31: 0.0146 };
    let many: Vec<DoseEvent> = (0..1000)
        .map(|i| DoseEvent::Depot {
            at_min: f64::from(i) * 525.0,
            dose_mg: 70.0,
            route: PkRoute::Sc,
            f: 0.93,
            ka_per_min: 0.0693,
            defaults: true,
        })
        .collect();
    let grid: Vec<f64> = (0..=200_000).map(|i| f64::from(i) * 2.628).collect();
    let disp = domino.disposition().expect("domino");
    let sys = System { disp, ke0: 0.652, events: &many };
    let t = Instant::now();
    let traj = Trajectory::new(&sys);
    black_box(traj.series(&grid));
    let series_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let to = *grid.last().expect("grid");
    let plasma = ketacare_domain::pk::summary::Curve::new(&traj, Site::Plasma, 0.0, to);
    black_box(plasma.maximum());
    for c in [0.1, 0.25, 0.64, 1.0] {
        black_box(plasma.minutes_above(c));
    }
    black_box(ketacare_domain::pk::summary::Curve::new(&traj, Site::Effect, 0.0, to).maximum());
    println!(
        "Largest accepted simulation (1000 SC doses over a year, 200 001 points): series {series_ms:.1} ms, continuous summary {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
}
