//! Speed of the clinical rules the server runs on every page view and order: a screening of a
//! complete intake (conditions, interactions, treatment resistance, limits) and a dose
//! calculation against the shipped drug library.
//!
//! Run: `cargo bench -p ketacare-knowledge --bench clinical` (release build; median of 15
//! rounds, nanoseconds per call).

use ketacare_domain::dose::{calculate, DoseRequest, Route, WeightBasis};
use ketacare_domain::screening::*;
use ketacare_knowledge::Knowledge;
use rust_decimal::Decimal;
use std::hint::black_box;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn time<F: FnMut()>(iters: usize, mut f: F) -> f64 {
    let mut rounds = Vec::with_capacity(15);
    for _ in 0..15 {
        let t = Instant::now();
        for _ in 0..iters {
            f();
        }
        rounds.push(t.elapsed().as_nanos() as f64 / iters as f64);
    }
    median(rounds)
}

fn main() {
    let k = Knowledge::load().expect("knowledge files");
    let d = |s: &str| s.parse::<Decimal>().unwrap();
    let trial = |name: &str, b: &str, f: &str| PriorTreatment {
        kind: Some(TreatmentKind::Pharmacological),
        name: name.into(),
        weeks: Some(d("12")),
        adequate: Some(true),
        instrument: Some("hama".into()),
        baseline: Some(d(b)),
        final_score: Some(d(f)),
        ..Default::default()
    };
    let intake = Intake {
        age_years: Some(45),
        sex: Some("female".into()),
        weight_kg: Some(d("70")),
        height_cm: Some(d("168")),
        diagnoses: vec!["gad".into(), "Social anxiety disorder".into()],
        prior_treatments: vec![trial("sertraline", "27", "22"), trial("venlafaxine", "26", "21"), trial("duloxetine", "25", "20")],
        medications: ["Lamotrigine 100 mg", "Clonazepam 0.5 mg", "Escitalopram 10 mg", "Levothyroxine 50 mcg"]
            .iter()
            .map(|n| MedicineEntry { name: (*n).into(), rxnorm: None })
            .collect(),
        conditions: vec![
            ConditionEntry { name: "hypertension".into(), controlled: Some(true) },
            ConditionEntry { name: "sleep apnoea".into(), controlled: None },
        ],
        bp_systolic: Some(136),
        bp_diastolic: Some(86),
        bp_age_days: Some(1),
        heart_rate: Some(72),
        pregnant: Some(false),
        breastfeeding: Some(false),
        baseline_ratings: vec![
            BaselineRating { instrument: "hama".into(), total: d("24") },
            BaselineRating { instrument: "lsas".into(), total: d("82") },
        ],
        liver: Some(LiverTests { alt: Some(d("30")), ast: Some(d("25")), alp: Some(d("80")), bilirubin: Some(d("10")), age_days: Some(5) }),
        cssrs_triage: Some("none".into()),
        phq9_item9: Some(0),
    };
    let screening_ns = time(2_000, || {
        black_box(screen(black_box(&intake), &k.screening, &[]));
    });
    let lib = &k.drug_library;
    let req = DoseRequest {
        route: Route::Iv,
        weight_kg: d("72"),
        height_cm: Some(d("180")),
        sex: Some("male".into()),
        basis: WeightBasis::Actual,
        mg_per_kg: Some(d("0.5")),
        fixed_mg: None,
        concentration_mg_per_ml: Some(d("10")),
        final_volume_ml: Some(d("100")),
        minutes: Some(d("40")),
        given_7d_mg: d("36"),
        given_28d_mg: d("108"),
    };
    let limits = lib.limits(Route::Iv).expect("iv limits");
    let dose_ns = time(20_000, || {
        black_box(calculate(black_box(&req), limits, &lib.policy).ok());
    });
    println!("{:<34} {:>12}", "call", "ns/call");
    println!("{:<34} {:>12.0}", "screen (complete intake)", screening_ns);
    println!("{:<34} {:>12.0}", "dose calculate (IV, all limits)", dose_ns);
}
