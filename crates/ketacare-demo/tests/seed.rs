//! Seeds fresh SQLite databases with the demo clinic.

use ketacare_app::{App, Settings, SystemClock};
use ketacare_db::Page;
use ketacare_domain::access::Role;
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
    eprintln!("seed took {:?}", t.elapsed());

    assert!(db.store().count_patients().await.unwrap() >= 60);
    assert_eq!(summary.patients, ketacare_demo::PATIENTS);
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
    assert_eq!(cohort.len(), ketacare_demo::PATIENTS);
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
    assert_eq!(ra.len(), ketacare_demo::PATIENTS);
    assert_eq!(ra.first().map(|r| r.0.as_str()), Some("KC-000001"));
    assert_eq!(ra, rb);
}
