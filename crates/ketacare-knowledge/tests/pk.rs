//! The shipped pharmacokinetic models reproduce the published comparison (0.5 mg/kg over 40 min
//! at 70 kg), and a simulation carries its provenance and the warnings a prescriber must see.

use ketacare_domain::pk::model::{Analyte, Evidence};
use ketacare_domain::pk::regimen::{PkRoute, Salt};
use ketacare_domain::pk::{simulate, EventInput, Grid, Request};
use ketacare_knowledge::Knowledge;

fn knowledge() -> Knowledge {
    Knowledge::load().expect("knowledge files")
}

fn infusion_40(mg: f64) -> Vec<EventInput> {
    vec![EventInput::Infusion { start_min: 0.0, duration_min: 40.0, dose_mg: mg }]
}

fn sc(mg: f64) -> Vec<EventInput> {
    vec![EventInput::Bolus { route: PkRoute::Sc, at_min: 0.0, dose_mg: mg, f: None, ka_per_min: None }]
}

fn request(model: &str, events: Vec<EventInput>) -> Request {
    let mut r = Request::new(70.0, events);
    r.model = Some(model.into());
    r.c_at_min = vec![40.0, 120.0];
    r.subject.age_years = Some(40.0);
    r
}

/// C at 40 min, C at 2 h (ng/mL) and AUC 0-inf (ng h/mL) from the reference comparison table,
/// computed there with an independent implementation.
#[test]
fn every_model_reproduces_the_reference_comparison_table() {
    let k = knowledge();
    // (model, dose simulated by the model, C40, C120, AUC)
    let table = [
        ("domino", 240.0, 35.8, 302.0),
        ("herd-2007", 253.0, 68.1, 389.0),
        ("elkomy-2015", 322.0, 60.0, 578.0),
        ("fanta-2015", 79.0, 27.6, 184.0),
        ("simons-2022", 144.0, 19.1, 197.0),
    ];
    for (id, c40, c120, auc) in table {
        let mut r = request(id, infusion_40(35.0));
        // The S-ketamine models simulate the S half of the racemic 35 mg (17.5 mg), as in the table.
        r.drug = Analyte::Racemic;
        let s = simulate(&k.pk, &r).unwrap_or_else(|e| panic!("{id}: {e:?}"));
        let near = |got: f64, want: f64, what: &str| {
            assert!((got - want).abs() / want < 0.01, "{id} {what}: {got:.2}, reference {want}");
        };
        near(s.summary.c_at[0].1, c40, "C at 40 min");
        near(s.summary.c_at[1].1, c120, "C at 2 h");
        near(s.summary.auc_0_inf_ng_h_per_ml, auc, "AUC 0-inf");
    }
}

#[test]
fn domino_infusion_peaks_at_the_end_of_the_infusion() {
    let k = knowledge();
    let s = simulate(&k.pk, &request("domino", infusion_40(35.0))).unwrap();
    assert!((s.summary.tmax_min - 40.0).abs() < 1e-6, "{}", s.summary.tmax_min);
    assert!((s.summary.cmax_ng_per_ml - 240.0).abs() < 1.0);
    // Domino has no published variability and IV has no route parameters: no band, with a reason.
    assert!(s.band.is_none());
    assert!(s.band_absent_reason.as_deref().unwrap().contains("no between-subject variability"));
    assert_eq!(s.model.evidence, Evidence::Code);
    assert!(s.warnings.iter().any(|w| w.code == "effect_site_illustrative"));
}

#[test]
fn one_mg_per_kg_sc_peaks_higher_and_earlier_than_the_infusion_with_an_assumed_route() {
    let k = knowledge();
    let iv = simulate(&k.pk, &request("domino", infusion_40(35.0))).unwrap();
    let s = simulate(&k.pk, &request("domino", sc(70.0))).unwrap();
    // Reference: about 620 ng/mL with the assumed absorption (F 0.93, half-life 10 min).
    assert!((s.summary.cmax_ng_per_ml - 620.0).abs() < 25.0, "{}", s.summary.cmax_ng_per_ml);
    assert!(s.summary.cmax_ng_per_ml > iv.summary.cmax_ng_per_ml);
    assert!(s.summary.tmax_min < iv.summary.tmax_min);
    assert!(s.warnings.iter().any(|w| w.code == "assumed_route_parameters" && w.message.contains("ASSUMED")));
    // The band varies the assumed route values, reproducibly.
    let b = s.band.as_ref().expect("band from the route ranges");
    assert_eq!(b.subjects, k.pk.band_subjects);
    assert!(b.cmax_p05_p95.0 < s.summary.cmax_ng_per_ml && s.summary.cmax_ng_per_ml < b.cmax_p05_p95.1);
    let again = simulate(&k.pk, &request("domino", sc(70.0))).unwrap();
    assert_eq!(again.band, s.band, "a fixed seed gives the same band");
    // AUC 0-inf = F x dose / CL.
    let cl = s.micro.clearance_l_per_min();
    assert!((s.summary.auc_0_inf_ng_h_per_ml - 0.93 * 70.0 / cl * 1000.0 / 60.0).abs() < 1e-9);
}

#[test]
fn warnings_name_what_the_model_cannot_say() {
    let k = knowledge();
    // Paediatric model for an adult.
    let s = simulate(&k.pk, &request("herd-2007", infusion_40(35.0))).unwrap();
    assert!(s.warnings.iter().any(|w| w.code == "paediatric_model"));
    assert!(s.warnings.iter().any(|w| w.code == "outside_population"));
    assert!(s.band.is_some(), "Herd publishes between-subject variability");
    // S-ketamine model for racemic drug.
    let s = simulate(&k.pk, &request("fanta-2015", infusion_40(35.0))).unwrap();
    assert!(s.warnings.iter().any(|w| w.code == "s_ketamine_model" && w.message.contains("S-ketamine only")));
    assert!((s.doses[0].event.dose_mg() - 17.5).abs() < 1e-12);
    // Racemic model for esketamine.
    let mut r = request("domino", infusion_40(35.0));
    r.drug = Analyte::SKetamine;
    assert!(simulate(&k.pk, &r).unwrap().warnings.iter().any(|w| w.code == "racemic_model_for_esketamine"));
    // Interacting medication.
    let mut r = request("domino", sc(70.0));
    r.subject.medications = vec!["Clonazepam 0.5 mg".into(), "Sertraline 100 mg".into()];
    let s = simulate(&k.pk, &r).unwrap();
    let inter: Vec<_> = s.warnings.iter().filter(|w| w.code == "interacting_medication").collect();
    assert_eq!(inter.len(), 1);
    assert!(inter[0].message.contains("benzodiazepine") && inter[0].message.contains("No model here quantifies"));
}

#[test]
fn a_dose_recorded_as_hydrochloride_is_converted_to_base_and_says_so() {
    let k = knowledge();
    let base = simulate(&k.pk, &request("domino", sc(60.0))).unwrap();
    let mut r = request("domino", sc(60.0 / 0.867));
    r.salt = Salt::Hydrochloride;
    let salt = simulate(&k.pk, &r).unwrap();
    assert!((salt.summary.cmax_ng_per_ml - base.summary.cmax_ng_per_ml).abs() < 1e-9);
    assert!(salt.warnings.iter().any(|w| w.code == "hydrochloride_converted" && w.message.contains("0.867")));
}

#[test]
fn bad_input_names_the_field_and_the_accepted_form() {
    let k = knowledge();
    let cases: Vec<(Request, &str)> = vec![
        (
            {
                let mut r = request("domino", sc(70.0));
                r.subject.weight_kg = 700.0;
                r
            },
            "weight_kg",
        ),
        (
            {
                let mut r = request("nope", sc(70.0));
                r.subject.weight_kg = 70.0;
                r
            },
            "model",
        ),
        (
            request("domino", vec![EventInput::Bolus { route: PkRoute::Sc, at_min: 0.0, dose_mg: 70.0, f: Some(93.0), ka_per_min: None }]),
            "events[0].f",
        ),
        (request("domino", vec![EventInput::Infusion { start_min: 0.0, duration_min: 0.0, dose_mg: 35.0 }]), "events[0].duration_min"),
        (
            request("domino", vec![EventInput::Bolus { route: PkRoute::Iv, at_min: -5.0, dose_mg: 10.0, f: None, ka_per_min: None }]),
            "events[0].at_min",
        ),
        (
            request("domino", vec![EventInput::Bolus { route: PkRoute::Iv, at_min: 0.0, dose_mg: f64::NAN, f: None, ka_per_min: None }]),
            "events[0].dose_mg",
        ),
        (request("domino", vec![]), "events"),
        (
            {
                let mut r = request("domino", sc(70.0));
                r.grid = Grid { from_min: 0.0, to_min: 360.0, step_min: 0.0 };
                r
            },
            "step",
        ),
        (
            {
                let mut r = request("domino", sc(70.0));
                r.grid = Grid { from_min: 100.0, to_min: 50.0, step_min: 1.0 };
                r
            },
            "to",
        ),
    ];
    for (r, field) in cases {
        let e = simulate(&k.pk, &r).expect_err(field);
        let msg = e.for_field(field).unwrap_or_else(|| panic!("{field}: {e:?}"));
        assert!(msg.len() > 15, "{field}: {msg}");
    }
}

#[test]
fn the_models_file_is_in_the_knowledge_tables_with_sources() {
    let k = knowledge();
    let t = k.tables.iter().find(|t| t.file == "pk-models.toml").expect("pk table");
    assert!(t.values.contains_key("model_domino_k10"));
    assert!(t.values["route_sc_f"].unverified, "the SC default is assumed and shown as such");
    assert_eq!(k.pk.default_model().id, "domino");
}
