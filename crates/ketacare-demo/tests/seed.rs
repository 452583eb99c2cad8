//! Seeds fresh SQLite databases with the demo clinic.

use chrono::{DateTime, Utc};
use ketacare_app::{App, Settings, SystemClock};
use ketacare_db::Page;
use ketacare_domain::access::Role;
use ketacare_domain::assessment::Anchor;
use ketacare_domain::record::{RecordKind, VersionAction};
use std::sync::Arc;
use std::time::Instant;

fn app(db: &ketacare_db_tests::TestDb) -> App {
    App::new(db.store(), Arc::new(SystemClock), Arc::new(ketacare_knowledge::Knowledge::load().unwrap()), Settings::default())
}

async fn director(app: &App) -> ketacare_app::Principal {
    let user = app.store().list_users().await.unwrap().into_iter().find(|u| u.role == Role::MedicalDirector).unwrap();
    app.system_principal(user)
}

/// (MRN, family, given) of every patient, by MRN.
async fn roster(app: &App) -> Vec<(String, String, String)> {
    let p = director(app).await;
    let mut v: Vec<_> = app
        .search_patients(&p, "", Page { limit: 500, offset: 0 })
        .await
        .unwrap()
        .into_iter()
        .map(|v| (v.demographics.mrn.as_str().to_owned(), v.demographics.name.family().to_owned(), v.demographics.name.given().to_owned()))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn seeds_a_clinic_with_one_login_per_role() {
    let db = ketacare_db_tests::fresh_sqlite().await;
    let app = app(&db);
    let t = Instant::now();
    let summary = ketacare_demo::seed(&app).await.unwrap();
    eprintln!("seed took {:?} ({} rating scales, {} alerts)", t.elapsed(), summary.assessments, summary.alerts);

    assert!(db.store().count_patients().await.unwrap() >= 60);
    assert_eq!(
        summary.patients,
        ketacare_demo::PATIENTS
            + ketacare_demo::REFERRALS
            + ketacare_demo::room::ROOM
            + ketacare_demo::SAFETY_PATIENTS
            + ketacare_demo::RESEARCH_PATIENTS
    );
    assert_eq!(summary.logins.len(), 5);
    for role in Role::ALL {
        assert_eq!(summary.logins.iter().filter(|l| l.role == role).count(), 1, "{role:?}");
    }
    for l in &summary.logins {
        app.login(&l.username, &l.password, None).await.unwrap();
    }

    let p = director(&app).await;
    let first = app.find_by_mrn(&p, "KC-000001").await.unwrap();
    let chart = app.chart(&p, first.patient_id).await.unwrap();
    assert!(chart.of_kind(RecordKind::Diagnosis).count() >= 1);
    assert!(chart.of_kind(RecordKind::Encounter).count() >= 2);
    assert!((2..=5).contains(&chart.weights.len()) && chart.heights.len() == 1);
    assert!(chart.weights.iter().all(|w| w.version.provenance.username == "nurse"));
    assert!(chart.of_kind(RecordKind::Medication).all(|r| r.provenance.username == "prescriber"));
    let amended: Vec<_> = chart.of_kind(RecordKind::Medication).filter(|r| r.action == VersionAction::Amend).collect();
    assert_eq!(amended.len(), 1);
    assert_eq!(amended[0].reason.as_ref().unwrap().as_str(), "dose corrected after pharmacist review");
    assert_eq!(chart.voided.len(), 1);
    assert_eq!(chart.voided[0].reason.as_ref().unwrap().as_str(), "entered in error: wrong patient");
    let bmi = chart.bmi().unwrap();
    assert!(bmi >= 18.into() && bmi <= 42.into(), "{bmi}");

    let researcher = app.store().list_users().await.unwrap().into_iter().find(|u| u.role == Role::Researcher).unwrap();
    let cohort = app.research_cohort(&director(&app).await).await.unwrap();
    assert_eq!(
        cohort.len(),
        ketacare_demo::PATIENTS
            + ketacare_demo::REFERRALS
            + ketacare_demo::room::ROOM
            + ketacare_demo::SAFETY_PATIENTS
            + ketacare_demo::RESEARCH_PATIENTS
    );
    assert!(cohort.iter().all(|c| !c.diagnoses.is_empty() && c.bmi.is_some()));
    assert!(app.research_cohort(&app.system_principal(researcher)).await.is_ok());

    let again = ketacare_demo::seed(&app).await;
    assert!(matches!(again, Err(ketacare_app::AppError::Conflict(_))), "{again:?}");
}

#[tokio::test]
async fn the_same_clinic_every_time() {
    let (a, b) = (ketacare_db_tests::fresh_sqlite().await, ketacare_db_tests::fresh_sqlite().await);
    let (app_a, app_b) = (app(&a), app(&b));
    ketacare_demo::seed(&app_a).await.unwrap();
    ketacare_demo::seed(&app_b).await.unwrap();
    let (ra, rb) = (roster(&app_a).await, roster(&app_b).await);
    assert_eq!(
        ra.len(),
        ketacare_demo::PATIENTS
            + ketacare_demo::REFERRALS
            + ketacare_demo::room::ROOM
            + ketacare_demo::SAFETY_PATIENTS
            + ketacare_demo::RESEARCH_PATIENTS
    );
    assert_eq!(ra.first().map(|r| r.0.as_str()), Some("KC-000001"));
    assert_eq!(ra, rb);
}

/// Months between two instants, roughly (30.44-day months).
fn months(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    (b - a).num_days() as f64 / 30.44
}

#[tokio::test]
async fn seeds_months_of_rating_scales_with_responders_non_responders_and_alerts() {
    let db = ketacare_db_tests::fresh_sqlite().await;
    let app = app(&db);
    let summary = ketacare_demo::seed(&app).await.unwrap();
    let p = director(&app).await;
    let cutoff: DateTime<Utc> = "2026-11-01T00:00:00Z".parse().unwrap();

    // The showcase: months of GAD-7 around dosed sessions, every instrument, schedules, an open link.
    let first = app.find_by_mrn(&p, "KC-000001").await.unwrap();
    let view = app.outcomes(&p, first.patient_id).await.unwrap();
    let gad7 = view.series.iter().find(|s| s.instrument.key == "gad7").expect("a GAD-7 series");
    assert!(gad7.points.len() >= 10, "{} GAD-7 administrations", gad7.points.len());
    let (from, to) = (gad7.points[0].assessment.taken_at, gad7.points.last().unwrap().assessment.taken_at);
    assert!(months(from, to) >= 3.0, "GAD-7 from {from} to {to}");
    assert!(gad7.points.iter().filter(|pt| pt.assessment.session.is_some()).count() >= 10);
    let keys: Vec<&str> = view.series.iter().map(|s| s.instrument.key.as_str()).collect();
    for key in ["gad7", "phq9", "hama", "lsas", "cadss", "moaas", "sds", "qlesq_sf", "icsi", "cssrs_screener", "fq", "vas_anxiety"] {
        assert!(keys.contains(&key), "KC-000001 has no {key}: {keys:?}");
    }
    assert!(view.sessions.len() >= 10, "{} sessions", view.sessions.len());
    assert!(view.sessions.iter().all(|s| s.label.contains("ketamine") && s.label.contains("mg/kg")), "{:?}", view.sessions);
    assert!(view.sessions.iter().any(|s| s.label.starts_with("SC ketamine 0.25 mg/kg")));
    assert!(view.sessions.iter().any(|s| s.label.starts_with("SC ketamine 1 mg/kg (maintenance")));
    assert_eq!(gad7.points.last().unwrap().outcome.as_ref().and_then(|o| o.response), Some(true), "KC-000001 responds");
    let anchors: Vec<&Anchor> = view.schedules.iter().map(|s| &s.anchor).collect();
    assert!(anchors.iter().any(|a| matches!(a, Anchor::Session { timepoints } if timepoints.len() == 4)), "{anchors:?}");
    assert!(anchors.iter().any(|a| matches!(a, Anchor::Calendar { interval_days: 28, .. })), "{anchors:?}");
    assert_eq!(view.requests.len(), 1, "one open questionnaire link");
    assert_eq!(view.alerts.len(), 1, "KC-000001's PHQ-9 item 9");
    // Dissociation rises with the dose and falls over maintenance.
    let cadss = view.series.iter().find(|s| s.instrument.key == "cadss").unwrap();
    let totals: Vec<i64> = cadss.points.iter().map(|pt| pt.score.total.unwrap().to_string().parse().unwrap()).collect();
    assert!(totals[0] < totals[2], "CADSS by dose {totals:?}");
    assert!(totals.last().unwrap() < &totals[2], "CADSS over maintenance {totals:?}");

    // Safety alerts raised by the rating scales themselves, left open.
    let open = app.alerts(&p, true).await.unwrap();
    assert!(open.len() >= 2, "{} open alerts", open.len());
    assert_eq!(open.len(), summary.alerts);
    assert!(open.iter().any(|a| a.code == "phq9_item9") && open.iter().any(|a| a.code == "cssrs_risk"), "{open:?}");

    // Across the clinic: histories for most patients on a course, responders and non-responders.
    let (mut with_history, mut responders, mut non_responders, mut remitters, mut administrations) = (0, 0, 0, 0, 0);
    let (mut icsi_rises, mut lethargic) = (0, 0);
    let total = |pt: &ketacare_app::ScoredAssessment| -> i64 { pt.score.total.unwrap().to_string().parse().unwrap() };
    for patient in app.search_patients(&p, "", Page { limit: 500, offset: 0 }).await.unwrap() {
        // The screening referrals are rated when the clinic is seeded; their story is below.
        if patient.demographics.mrn.as_str() > "KC-000064" {
            continue;
        }
        let view = app.outcomes(&p, patient.patient_id).await.unwrap();
        for s in &view.series {
            administrations += s.points.len();
            assert!(s.points.iter().all(|pt| pt.assessment.taken_at < cutoff), "{}", s.instrument.key);
            match s.instrument.key.as_str() {
                "icsi" => icsi_rises += usize::from(total(s.points.last().unwrap()) - total(&s.points[0]) >= 6),
                "moaas" => lethargic += s.points.iter().filter(|pt| total(pt) == 4).count(),
                _ => {}
            }
        }
        let Some(gad7) = view.series.iter().find(|s| s.instrument.key == "gad7") else { continue };
        with_history += 1;
        let hama = view.series.iter().find(|s| s.instrument.key == "hama").expect("HAM-A with GAD-7");
        if hama.baseline().is_some() && gad7.points.len() > 1 {
            match gad7.points.last().and_then(|pt| pt.outcome.as_ref()) {
                Some(o) if o.response == Some(true) => responders += 1,
                Some(o) if o.response == Some(false) => non_responders += 1,
                _ => {}
            }
            remitters += usize::from(gad7.points.last().and_then(|pt| pt.outcome.as_ref()).and_then(|o| o.remission) == Some(true));
        }
    }
    eprintln!("{with_history} patients with rating scales, {administrations} administrations; by the last GAD-7: {responders} responders ({remitters} in remission), {non_responders} not responding");
    assert_eq!(administrations, summary.assessments);
    assert!(with_history >= 40, "{with_history} patients with a GAD-7 history");
    assert!(responders >= 5 && non_responders >= 5, "{responders} responders, {non_responders} non-responders");
    assert!(remitters >= 1);
    assert_eq!(icsi_rises, 1, "one patient's bladder symptoms rise");
    assert!(lethargic >= 1, "some MOAA/S ratings are 4");
}

#[tokio::test]
async fn seeds_screening_referrals_with_each_verdict() {
    use ketacare_domain::screening::{Severity, Verdict};
    let db = ketacare_db_tests::fresh_sqlite().await;
    let app = app(&db);
    ketacare_demo::seed(&app).await.unwrap();
    let p = director(&app).await;
    let mut seen = Vec::new();
    for (mrn, verdict, signed) in [
        ("KC-000065", Verdict::Eligible, Some(Verdict::Eligible)),
        ("KC-000066", Verdict::EligibleWithCautions, None),
        ("KC-000067", Verdict::NeedsReview, None),
        ("KC-000068", Verdict::NotEligible, Some(Verdict::NotEligible)),
        ("KC-000069", Verdict::EligibleWithCautions, Some(Verdict::EligibleWithCautions)),
    ] {
        let patient = app.find_by_mrn(&p, mrn).await.unwrap();
        let v = app.screening(&p, patient.patient_id).await.unwrap();
        let codes: Vec<&str> = v.screening.findings.iter().map(|f| f.code.as_str()).collect();
        assert_eq!(v.screening.verdict, verdict, "{mrn}: {codes:?}");
        assert_eq!(v.signed.as_ref().map(|(_, r)| r.verdict), signed, "{mrn} signed");
        assert!(v.new_since_signed.is_empty(), "{mrn}: nothing changed since signing");
        assert!(!codes.iter().any(|c| c.starts_with("missing:") || c.starts_with("unrecognised:")), "{mrn}: complete intake: {codes:?}");
        seen.push(codes.join(","));
    }
    assert!(
        seen[1].contains("interaction:lamotrigine")
            && seen[1].contains("interaction:benzodiazepines")
            && seen[1].contains("condition:hypertension")
    );
    assert!(seen[2].contains("condition:bipolar_disorder"));
    assert!(seen[3].contains("condition:psychosis"));
    let accepted = app.find_by_mrn(&p, "KC-000069").await.unwrap();
    let v = app.screening(&p, accepted.patient_id).await.unwrap();
    let f = v.screening.findings.iter().find(|f| f.code == "condition:bladder_symptoms").unwrap();
    assert!(f.accepted && f.severity == Severity::Review);
    assert!(!app.screening(&p, app.find_by_mrn(&p, "KC-000068").await.unwrap().patient_id).await.unwrap().session_may_start());
    // The eligible referrals have started the SC ascending protocol.
    use ketacare_domain::order::OrderStatus;
    for (mrn, status) in [("KC-000065", OrderStatus::Checked), ("KC-000069", OrderStatus::AwaitingCheck)] {
        let d = app.dosing(&p, app.find_by_mrn(&p, mrn).await.unwrap().patient_id).await.unwrap();
        assert_eq!(d.plans.len(), 1, "{mrn}");
        assert_eq!(d.orders.iter().map(|(_, o)| o.status).collect::<Vec<_>>(), vec![status], "{mrn}");
    }
}

#[tokio::test]
async fn maintenance_patients_show_each_long_term_safety_signal() {
    use ketacare_domain::safety::Level;
    let db = ketacare_db_tests::fresh_sqlite().await;
    let app = app(&db);
    let t = Instant::now();
    ketacare_demo::seed(&app).await.unwrap();
    eprintln!("seed took {:?}", t.elapsed());
    let p = app.system_principal(app.store().list_users().await.unwrap().into_iter().find(|u| u.role == Role::Prescriber).unwrap());
    let today = app.clock().now().date_naive();
    let expected: [(&str, &[&str]); 6] = [
        ("KC-000073", &["liver_tests", "urinary_symptoms"]),
        ("KC-000074", &["escalation_without_benefit", "declining_dissociation_with_escalation", "early_session_requests"]),
        ("KC-000075", &["craving_or_substance_use", "positive_urine_toxicology", "new_substance_use_diagnosis"]),
        ("KC-000076", &["falling_benefit_duration", "shorter_intervals_without_benefit"]),
        ("KC-000077", &["haematuria", "cumulative_above_limit"]),
        ("KC-000078", &["review_due"]),
    ];
    for (mrn, codes) in expected {
        let patient = app.find_by_mrn(&p, mrn).await.unwrap();
        let view = app.safety(&p, patient.patient_id).await.unwrap();
        assert!(view.on_maintenance, "{mrn} is on maintenance");
        let seen: Vec<&str> = view.assessment.signals.iter().map(|s| s.code).collect();
        eprintln!("{mrn} {} {}: {seen:?}", patient.demographics.name.given(), patient.demographics.name.family());
        for c in codes {
            assert!(seen.contains(c), "{mrn} lacks {c}: {:#?}", view.assessment.signals);
        }
        assert!(view.doses.iter().all(|d| d.at.date_naive() < today), "{mrn}: every dose before today");
        match mrn {
            "KC-000073" => {
                let liver = view.assessment.signals.iter().find(|s| s.code == "liver_tests").unwrap();
                assert_eq!(liver.level, Level::Review);
                assert!(liver.data.iter().any(|d| d.contains("ALT rising")), "{liver:?}");
                assert!(view.care_plan.is_some() && view.reviews.is_empty());
            }
            "KC-000078" => {
                assert_eq!(seen, ["review_due"], "stable apart from the overdue review");
                assert!(view.assessment.review_due.is_some_and(|d| d < today));
                assert_eq!(view.reviews.len(), 1);
            }
            _ => {}
        }
    }
}
