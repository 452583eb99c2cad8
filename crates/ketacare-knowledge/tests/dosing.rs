//! The drug library and protocols as shipped: the protocols reproduce the published schedules,
//! every standard protocol dose sits inside the library's soft limits (no alert for a
//! by-the-book dose), worked examples come out exactly, and the classic errors are caught.

use ketacare_domain::dose::*;
use ketacare_knowledge::Knowledge;
use rust_decimal::Decimal;

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn request(route: Route, weight: &str, mgkg: &str, conc: &str) -> DoseRequest {
    DoseRequest {
        route,
        weight_kg: d(weight),
        height_cm: None,
        sex: None,
        basis: WeightBasis::Actual,
        mg_per_kg: Some(d(mgkg)),
        fixed_mg: None,
        concentration_mg_per_ml: Some(d(conc)),
        final_volume_ml: if route == Route::Iv { Some(d("100")) } else { None },
        minutes: if route == Route::Iv { Some(d("40")) } else { None },
        given_7d_mg: Decimal::ZERO,
        given_28d_mg: Decimal::ZERO,
    }
}

#[test]
fn protocols_reproduce_the_published_schedules() {
    let k = Knowledge::load().unwrap();
    let asc = k.protocols.iter().find(|p| p.key == "sc_ascending").unwrap();
    let doses: Vec<(u32, String)> = asc.steps.iter().map(|s| (s.day, s.dose_rule())).collect();
    assert_eq!(doses, vec![(0, "0.25 mg/kg".into()), (7, "0.5 mg/kg".into()), (14, "1 mg/kg".into())]);
    assert!(asc.source.contains("Glue"));
    let iv = k.protocols.iter().find(|p| p.key == "iv_single").unwrap();
    assert_eq!(iv.steps[0].dose_rule(), "0.5 mg/kg over 40 min");
    let induction = k.protocols.iter().find(|p| p.key == "iv_induction").unwrap();
    assert_eq!(induction.steps.len(), 6);
    assert!(induction.steps.last().unwrap().day <= 21, "six infusions within three weeks");
    let maintenance = k.protocols.iter().find(|p| p.key == "sc_maintenance").unwrap();
    assert!(maintenance.steps.iter().all(|s| s.mg_per_kg == Some(d("1")) && s.repeat_until_day == Some(84)), "1 mg/kg for up to 3 months");
    let es = k.protocols.iter().find(|p| p.key == "esketamine_in").unwrap();
    assert!(es.steps.iter().all(|s| s.fixed_mg.is_some_and(|m| (m / d("28")).fract().is_zero())), "whole 28 mg devices");
}

#[test]
fn every_standard_protocol_dose_is_within_the_soft_limits_for_a_typical_adult() {
    let k = Knowledge::load().unwrap();
    let lib = &k.drug_library;
    for p in &k.protocols {
        let limits = lib.limits(p.route).unwrap_or_else(|| panic!("{} route {:?} in the library", p.key, p.route));
        for s in &p.steps {
            let mut r = request(p.route, "72", "1", "10");
            r.mg_per_kg = s.mg_per_kg;
            r.fixed_mg = s.fixed_mg;
            if p.route == Route::In {
                r.concentration_mg_per_ml = None;
            }
            r.minutes = s.minutes.map(Decimal::from);
            r.final_volume_ml = if p.route.infused() { Some(d("100")) } else { None };
            let out = calculate(&r, limits, &lib.policy).unwrap_or_else(|e| panic!("{}/{}: {e:?}", p.key, s.key));
            assert!(out.breaches.is_empty(), "{}/{} should need no override: {:?}", p.key, s.key, out.breaches);
        }
    }
}

#[test]
fn worked_examples_with_the_shipped_library() {
    let k = Knowledge::load().unwrap();
    let lib = &k.drug_library;
    let out = calculate(&request(Route::Iv, "72", "0.5", "10"), lib.limits(Route::Iv).unwrap(), &lib.policy).unwrap();
    assert_eq!(
        (out.dose_mg, out.drug_volume_ml, out.diluent_ml, out.final_concentration_mg_per_ml, out.rate_ml_per_h, out.rate_mg_per_h),
        (d("36"), Some(d("3.6")), Some(d("96.4")), Some(d("0.36")), Some(d("150")), Some(d("54")))
    );
    let out = calculate(&request(Route::Sc, "80", "0.5", "50"), lib.limits(Route::Sc).unwrap(), &lib.policy).unwrap();
    assert_eq!((out.dose_mg, out.drug_volume_ml, out.rate_ml_per_h), (d("40"), Some(d("0.8")), None));
}

#[test]
fn the_classic_errors_are_caught() {
    let k = Knowledge::load().unwrap();
    let lib = &k.drug_library;
    let iv = lib.limits(Route::Iv).unwrap();
    // A ten-fold dose.
    let out = calculate(&request(Route::Iv, "72", "5", "10"), iv, &lib.policy).unwrap();
    assert!(out.refused());
    // A weight typed in pounds (72 kg = 158.7 lb) at a high-normal dose: over the total cap.
    let out = calculate(&request(Route::Iv, "158.7", "0.75", "10"), iv, &lib.policy).unwrap();
    assert!(out.breaches.iter().any(|b| b.quantity == "total_mg"), "{:?}", out.breaches);
    // A concentration the clinic does not stock cannot be typed.
    assert!(calculate(&request(Route::Iv, "72", "0.5", "25"), iv, &lib.policy).is_err());
    // Above 1 mg/kg SC is refused for everyone.
    assert!(calculate(&request(Route::Sc, "72", "1.5", "50"), lib.limits(Route::Sc).unwrap(), &lib.policy).unwrap().refused());
    // A soft breach needs an override, not a refusal.
    let out = calculate(&request(Route::Iv, "72", "0.8", "10"), iv, &lib.policy).unwrap();
    assert!(out.needs_override(), "{:?}", out.breaches);
}

#[test]
fn the_basis_at_high_bmi_is_clinic_policy_with_the_trials_default() {
    let k = Knowledge::load().unwrap();
    let lib = &k.drug_library;
    assert_eq!(lib.obese_basis, WeightBasis::Actual, "default: actual, as the trials dosed");
    let t = lib.policy.bmi_ideal_caution;
    assert_eq!(basis_for(d("100"), Some(d("175")), WeightBasis::Actual, WeightBasis::Ideal, t), WeightBasis::Ideal, "BMI 32.7");
    assert_eq!(basis_for(d("70"), Some(d("175")), WeightBasis::Actual, WeightBasis::Ideal, t), WeightBasis::Actual, "BMI 22.9");
    assert_eq!(basis_for(d("100"), None, WeightBasis::Actual, WeightBasis::Ideal, t), WeightBasis::Actual, "no height: the default");
}
