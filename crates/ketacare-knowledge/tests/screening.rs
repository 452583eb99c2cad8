//! Table tests of the screening knowledge: every contraindication and interaction entry of
//! `knowledge/screening/*.toml` gives the finding its grade says, by every name it lists; the
//! treatment-resistance rule in force counts trials as the Delphi 2024 consensus does, with a
//! reduction of exactly 50 % a response; and the screening never panics on any intake.

use ketacare_domain::screening::*;
use ketacare_knowledge::Knowledge;
use proptest::prelude::*;
use rust_decimal::Decimal;
use std::sync::OnceLock;

fn k() -> &'static Knowledge {
    static K: OnceLock<Knowledge> = OnceLock::new();
    K.get_or_init(|| Knowledge::load().expect("knowledge files load"))
}

fn d(v: i64) -> Decimal {
    Decimal::from(v)
}

fn trial(name: &str, weeks: i64, baseline: i64, last: i64) -> PriorTreatment {
    PriorTreatment {
        kind: Some(TreatmentKind::Pharmacological),
        name: name.into(),
        weeks: Some(d(weeks)),
        adequate: Some(true),
        instrument: Some("hama".into()),
        baseline: Some(d(baseline)),
        final_score: Some(d(last)),
        ..Default::default()
    }
}

/// A complete intake with nothing to report: eligible.
fn clean() -> Intake {
    Intake {
        age_years: Some(41),
        sex: Some("male".into()),
        weight_kg: Some(d(78)),
        height_cm: Some(d(178)),
        diagnoses: vec!["gad".into()],
        prior_treatments: vec![trial("sertraline", 12, 26, 20), trial("venlafaxine", 10, 25, 19)],
        medications: vec![],
        conditions: vec![],
        bp_systolic: Some(124),
        bp_diastolic: Some(78),
        bp_age_days: Some(2),
        heart_rate: Some(70),
        pregnant: None,
        breastfeeding: None,
        baseline_ratings: vec![BaselineRating { instrument: "hama".into(), total: d(25) }],
        liver: Some(LiverTests { alt: Some(d(22)), ast: Some(d(20)), alp: Some(d(70)), bilirubin: Some(d(8)), age_days: Some(14) }),
        cssrs_triage: Some("none".into()),
        phq9_item9: Some(0),
    }
}

fn severity(g: Grade) -> Severity {
    match g {
        Grade::Absolute => Severity::Exclusion,
        Grade::Relative => Severity::Review,
        Grade::Caution => Severity::Caution,
    }
}

fn verdict_of(g: Grade) -> Verdict {
    match g {
        Grade::Absolute => Verdict::NotEligible,
        Grade::Relative => Verdict::NeedsReview,
        Grade::Caution => Verdict::EligibleWithCautions,
    }
}

#[test]
fn the_clean_intake_is_eligible() {
    let s = screen(&clean(), &k().screening, &[]);
    assert_eq!(s.verdict, Verdict::Eligible, "{:#?}", s.findings);
    assert_eq!(s.resistance, ResistanceStatus::Met);
}

#[test]
fn every_condition_gives_its_grade_by_key_label_and_every_synonym() {
    let rules = &k().screening;
    assert!(rules.conditions.len() >= 15, "the list covers the reference");
    for c in &rules.conditions {
        assert!(c.source.len() > 20 && !c.effect.is_empty() && !c.action.is_empty(), "{} needs effect, action and source", c.key);
        let names: Vec<String> = [c.key.replace('_', " "), c.label.clone()].into_iter().chain(c.synonyms.iter().cloned()).collect();
        for name in names {
            // Controlled state explicit for conditions that can be controlled.
            let controlled = c.grade_if_controlled.map(|_| false);
            let mut i = clean();
            i.conditions = vec![ConditionEntry { name: name.clone(), controlled }];
            let s = screen(&i, rules, &[]);
            let f = s
                .findings
                .iter()
                .find(|f| f.code == format!("condition:{}", c.key))
                .unwrap_or_else(|| panic!("{name:?} finds {}: {:#?}", c.key, s.findings));
            assert_eq!(f.severity, severity(c.grade), "{} by {name:?}", c.key);
            assert_eq!(s.verdict, verdict_of(c.grade), "{} by {name:?}", c.key);
            assert_eq!(f.source, c.source);
            assert_eq!(f.unverified, c.unverified);
            assert_eq!(f.conflict, c.conflict);
            if let Some(gc) = c.grade_if_controlled {
                i.conditions = vec![ConditionEntry { name: name.clone(), controlled: Some(true) }];
                let s = screen(&i, rules, &[]);
                let f = s.findings.iter().find(|f| f.code == format!("condition:{}", c.key)).unwrap();
                assert_eq!(f.severity, severity(gc), "{} controlled", c.key);
                if name == c.key.replace('_', " ") {
                    i.conditions = vec![ConditionEntry { name: name.clone(), controlled: None }];
                    let s = screen(&i, rules, &[]);
                    let f = s.findings.iter().find(|f| f.code == format!("condition:{}", c.key)).unwrap();
                    assert!(
                        f.severity <= Severity::Review || f.severity == severity(gc),
                        "{}: unknown control is never a silent pass",
                        c.key
                    );
                    assert!(f.title.contains("control not recorded"), "{}", f.title);
                }
            }
        }
        // Relative findings can be accepted by the medical director; absolute ones cannot.
        let mut i = clean();
        i.conditions = vec![ConditionEntry { name: c.key.clone(), controlled: c.grade_if_controlled.map(|_| false) }];
        let s = screen(&i, rules, &[format!("condition:{}", c.key)]);
        let expected = match c.grade {
            Grade::Absolute => Verdict::NotEligible,
            _ => Verdict::EligibleWithCautions,
        };
        assert_eq!(s.verdict, expected, "{} accepted", c.key);
    }
}

#[test]
fn pregnancy_and_breastfeeding_status_are_screened() {
    let rules = &k().screening;
    let mut i = clean();
    i.sex = Some("female".into());
    assert!(screen(&i, rules, &[]).findings.iter().any(|f| f.code == "missing:pregnancy_status"));
    i.pregnant = Some(true);
    i.breastfeeding = Some(false);
    assert_eq!(screen(&i, rules, &[]).verdict, Verdict::NotEligible);
    i.pregnant = Some(false);
    i.breastfeeding = Some(true);
    assert_eq!(screen(&i, rules, &[]).verdict, Verdict::NeedsReview);
    i.breastfeeding = Some(false);
    assert_eq!(screen(&i, rules, &[]).verdict, Verdict::Eligible);
}

#[test]
fn every_interaction_member_is_found_by_name_brand_synonym_and_rxnorm_code() {
    let rules = &k().screening;
    assert!(rules.interactions.len() >= 12);
    for rule in &rules.interactions {
        assert!(rule.source.len() > 20, "{} needs a source", rule.key);
        assert!(!rule.members.is_empty());
        for m in &rule.members {
            let mut ways: Vec<(String, Option<String>)> =
                vec![(format!("{} 10 mg twice daily", m.name), None), (m.name.to_uppercase(), None)];
            ways.extend(m.brands.iter().map(|b| (format!("{b} (brand)"), None)));
            ways.extend(m.synonyms.iter().map(|s| (s.clone(), None)));
            if let Some(code) = &m.rxnorm {
                assert!(code.chars().all(|c| c.is_ascii_digit()), "{}: RxCUI is digits", m.name);
                ways.push(("unlabelled tablet".into(), Some(code.clone())));
            }
            for (name, rxnorm) in ways {
                let mut i = clean();
                i.medications = vec![MedicineEntry { name: name.clone(), rxnorm }];
                let s = screen(&i, rules, &[]);
                let f = s
                    .findings
                    .iter()
                    .find(|f| f.code == format!("interaction:{}", rule.key))
                    .unwrap_or_else(|| panic!("{name:?} should match {}: {:#?}", rule.key, s.findings));
                assert_eq!(f.severity, severity(rule.grade), "{} via {name:?}", rule.key);
                assert_eq!(f.source, rule.source);
                assert_eq!(f.unverified, rule.unverified);
                assert!(!s.findings.iter().any(|f| f.category == Category::Unrecognised), "{name:?} is recognised");
                assert_eq!(s.medicines[0].ingredient.as_deref(), Some(m.name.as_str()), "{name:?}");
            }
        }
    }
}

#[test]
fn medicines_without_a_listed_interaction_are_recognised_and_unknown_ones_reported() {
    let rules = &k().screening;
    for m in &rules.no_interaction {
        let mut i = clean();
        i.medications = vec![MedicineEntry { name: format!("{} 50 mg", m.name), rxnorm: None }];
        let s = screen(&i, rules, &[]);
        assert_eq!(s.verdict, Verdict::Eligible, "{}: {:#?}", m.name, s.findings);
    }
    let mut i = clean();
    i.medications = vec![MedicineEntry { name: "Quibbelex 5 mg".into(), rxnorm: None }];
    let s = screen(&i, rules, &[]);
    assert_eq!(s.verdict, Verdict::NeedsReview);
    let f = s.findings.iter().find(|f| f.category == Category::Unrecognised).unwrap();
    assert_eq!(f.title, "Medicine not recognised: Quibbelex 5 mg");
    let mut i = clean();
    i.conditions = vec![ConditionEntry { name: "spontaneous levitation".into(), controlled: None }];
    assert!(screen(&i, rules, &[]).findings.iter().any(|f| f.code == "unrecognised:condition:spontaneous_levitation"));
}

#[test]
fn the_example_patient_on_lamotrigine_and_clonazepam_with_controlled_hypertension_has_cautions_with_sources() {
    let rules = &k().screening;
    let mut i = clean();
    i.medications = vec![
        MedicineEntry { name: "Lamotrigine 100 mg twice daily".into(), rxnorm: None },
        MedicineEntry { name: "Clonazepam 0.5 mg at night".into(), rxnorm: None },
    ];
    i.conditions = vec![ConditionEntry { name: "hypertension".into(), controlled: Some(true) }];
    let s = screen(&i, rules, &[]);
    assert_eq!(s.verdict, Verdict::EligibleWithCautions, "{:#?}", s.findings);
    for code in ["interaction:lamotrigine", "interaction:benzodiazepines", "condition:hypertension"] {
        let f = s.findings.iter().find(|f| f.code == code).unwrap_or_else(|| panic!("{code}"));
        assert_eq!(f.severity, Severity::Caution);
        assert!(f.source.contains("http"), "{code} cites its source with an address: {}", f.source);
    }
    i.conditions.push(ConditionEntry { name: "schizophrenia".into(), controlled: None });
    assert_eq!(screen(&i, rules, &[]).verdict, Verdict::NotEligible, "psychosis excludes");
}

#[test]
fn treatment_resistance_follows_the_delphi_2024_rule_with_fifty_percent_a_response() {
    let rules = &k().screening;
    let def = rules.resistance_definition().unwrap();
    assert_eq!(def.key, "delphi2024");
    assert_eq!((def.min_pharmacological_failures, def.min_psychotherapy_failures), (2, 1));
    let cases: [(i64, i64, TrialStatus); 5] = [
        (20, 10, TrialStatus::Responded),       // exactly 50 %: a response
        (20, 11, TrialStatus::AdequateFailure), // 45 %
        (30, 16, TrialStatus::AdequateFailure), // 46.7 %
        (30, 15, TrialStatus::Responded),       // 50 %
        (24, 24, TrialStatus::AdequateFailure), // no change
    ];
    for (b, f, want) in cases {
        assert_eq!(judge_trial(0, &trial("x", 12, b, f), def, &[]).status, want, "HAM-A {b} -> {f}");
    }
    let mut i = clean();
    i.prior_treatments = vec![trial("sertraline", 12, 20, 10), trial("venlafaxine", 12, 26, 20)];
    let s = screen(&i, rules, &[]);
    assert_eq!(s.resistance, ResistanceStatus::NotMet, "a 50 % response does not count as a failure");
    assert!(s.trials[0].explanation.contains("a response, not a failure"), "{}", s.trials[0].explanation);
    i.prior_treatments.push(PriorTreatment {
        kind: Some(TreatmentKind::Psychotherapy),
        name: "CBT, 16 sessions".into(),
        weeks: Some(d(16)),
        adequate: Some(true),
        instrument: Some("hama".into()),
        baseline: Some(d(24)),
        final_score: Some(d(22)),
        ..Default::default()
    });
    assert_eq!(screen(&i, rules, &[]).resistance, ResistanceStatus::Met, "or one adequate CBT course");
}

#[test]
fn blood_pressure_and_liver_limits_come_from_the_knowledge_file() {
    let rules = &k().screening;
    assert_eq!((rules.bp_exclude.0.value, rules.bp_exclude.1.value), (d(180), d(100)));
    assert_eq!((rules.bp_caution.0.value, rules.bp_caution.1.value), (d(140), d(90)));
    assert!(rules.liver_uln.alt.unverified, "placeholder ULN is marked UNVERIFIED");
    let mut i = clean();
    i.bp_systolic = Some(186);
    i.bp_diastolic = Some(96);
    assert_eq!(screen(&i, rules, &[]).verdict, Verdict::NotEligible);
}

fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-zA-Z0-9 ()\\-]{0,30}", Just("clonazepam".to_owned()), Just("hypertension".to_owned())]
}

fn arb_dec() -> impl Strategy<Value = Option<Decimal>> {
    prop_oneof![Just(None), (-1000i64..100_000).prop_map(|v| Some(Decimal::new(v, 1)))]
}

proptest! {
    #[test]
    fn screening_never_panics_and_the_verdict_follows_the_findings(
        age in proptest::option::of(0u32..130),
        dx in proptest::collection::vec(arb_text(), 0..3),
        meds in proptest::collection::vec(arb_text(), 0..4),
        conds in proptest::collection::vec((arb_text(), proptest::option::of(any::<bool>())), 0..4),
        trials in proptest::collection::vec((any::<bool>(), arb_text(), arb_dec(), proptest::option::of(any::<bool>()), prop_oneof![Just(None), Just(Some("hama".to_owned())), Just(Some("cgi_i".to_owned())), arb_text().prop_map(Some)], arb_dec(), arb_dec()), 0..4),
        bp in proptest::option::of((0u32..400, 0u32..300)),
        alt in arb_dec(),
        cssrs in proptest::option::of(prop_oneof![Just("none"), Just("low"), Just("moderate"), Just("high"), Just("??")]),
        item9 in proptest::option::of(0u32..5),
        accept in proptest::collection::vec(arb_text(), 0..3),
    ) {
        let intake = Intake {
            age_years: age,
            diagnoses: dx,
            medications: meds.into_iter().map(|name| MedicineEntry { name, rxnorm: None }).collect(),
            conditions: conds.into_iter().map(|(name, controlled)| ConditionEntry { name, controlled }).collect(),
            prior_treatments: trials.into_iter().map(|(pharm, name, weeks, adequate, instrument, baseline, final_score)| PriorTreatment {
                kind: Some(if pharm { TreatmentKind::Pharmacological } else { TreatmentKind::Psychotherapy }),
                name, weeks, adequate, instrument, baseline, final_score, ..Default::default()
            }).collect(),
            bp_systolic: bp.map(|b| b.0),
            bp_diastolic: bp.map(|b| b.1),
            liver: alt.map(|a| LiverTests { alt: Some(a), ..Default::default() }),
            cssrs_triage: cssrs.map(str::to_owned),
            phq9_item9: item9,
            ..Default::default()
        };
        let s = screen(&intake, &k().screening, &accept);
        prop_assert_eq!(s.verdict, Verdict::of(&s.findings));
        prop_assert!(!s.findings.is_empty(), "an incomplete intake always has findings");
        let mut codes: Vec<&str> = s.findings.iter().map(|f| f.code.as_str()).collect();
        codes.sort_unstable();
        let n = codes.len();
        codes.dedup();
        prop_assert_eq!(codes.len(), n, "finding codes are unique");
        prop_assert!(s.findings.iter().all(|f| !f.accepted || f.severity == Severity::Review));
        prop_assert!(s.findings.windows(2).all(|w| w[0].severity <= w[1].severity), "most serious first");
    }
}
