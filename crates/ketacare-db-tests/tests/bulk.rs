//! Importing a patient with their records in one transaction, on both backends: everything is
//! written and audited together, or nothing is.

use ketacare_db::{AuditFilter, DbError, Page};
use ketacare_db_tests::fixtures::{self, t0};
use ketacare_db_tests::{both_backends, TestDb};
use ketacare_domain::access::Role;
use ketacare_domain::coding::{CodeSystem, Coding};
use ketacare_domain::ids::*;
use ketacare_domain::patient::{AgeLimits, Demographics, DemographicsInput};
use ketacare_domain::record::*;
use rust_decimal::Decimal;
use std::str::FromStr;
use uuid::Uuid;

both_backends!(
    an_import_writes_the_patient_and_its_records_and_audits_each,
    a_failing_import_of_a_new_patient_leaves_nothing_behind,
    a_failing_import_onto_a_chart_leaves_the_chart_as_it_was,
    records_of_another_patient_are_refused
);

fn demographics(mrn: &str, family: &str) -> Demographics {
    DemographicsInput {
        mrn: mrn.into(),
        family_name: family.into(),
        given_name: "Ana".into(),
        date_of_birth: "1984-03-27".into(),
        sex: "female".into(),
        ..Default::default()
    }
    .validate(t0().date_naive(), AgeLimits { minimum_years: 18, maximum_years: 110 })
    .unwrap()
}

fn prov(u: &ketacare_db::User) -> Provenance {
    Provenance { user_id: u.id, username: u.username.as_str().to_owned(), recorded_at: t0() }
}

fn registration(u: &ketacare_db::User, mrn: &str) -> PatientVersion {
    PatientVersion {
        patient_id: PatientId::from_uuid(Uuid::new_v4()),
        version_id: VersionId::from_uuid(Uuid::new_v4()),
        version: 1,
        action: VersionAction::Create,
        demographics: demographics(mrn, "Rivera"),
        reason: None,
        provenance: prov(u),
    }
}

fn weight(kg: &str) -> ClinicalRecord {
    ClinicalRecord::Observation(Observation {
        code: Coding::new(CodeSystem::Loinc, "29463-7", "Body weight").unwrap(),
        value: ObservationValue::Quantity { value: Decimal::from_str(kg).unwrap(), unit: UcumUnit::parse("kg").unwrap() },
        effective: t0(),
        acknowledged_warnings: vec![],
    })
}

fn diagnosis() -> ClinicalRecord {
    ClinicalRecord::Diagnosis(Diagnosis {
        condition: Coding::new(CodeSystem::SnomedCt, "21897009", "Generalized anxiety disorder").unwrap(),
        icd10: Some(Coding::new(CodeSystem::Icd10Cm, "F41.1", "Generalized anxiety disorder").unwrap()),
        onset: None,
        status: ClinicalStatus::Active,
        note: None,
    })
}

fn first(u: &ketacare_db::User, patient: PatientId, record: ClinicalRecord) -> RecordVersion {
    RecordVersion {
        record_id: RecordId::from_uuid(Uuid::new_v4()),
        version_id: VersionId::from_uuid(Uuid::new_v4()),
        version: 1,
        supersedes: None,
        patient_id: patient,
        action: VersionAction::Create,
        record,
        reason: None,
        provenance: prov(u),
    }
}

/// An amendment of a record that does not exist: the store refuses it, after the rows before it.
fn dangling_amendment(u: &ketacare_db::User, patient: PatientId) -> RecordVersion {
    RecordVersion {
        version: 2,
        supersedes: Some(VersionId::from_uuid(Uuid::new_v4())),
        action: VersionAction::Amend,
        reason: Some(Reason::parse("imported correction").unwrap()),
        ..first(u, patient, weight("71"))
    }
}

async fn bundle_audits(db: &TestDb, u: &ketacare_db::User) -> usize {
    let f = AuditFilter { entity_type: Some("Bundle".into()), page: Page { limit: 500, offset: 0 }, ..Default::default() };
    db.store().search_audit(&fixtures::ctx(u), &f).await.unwrap().len()
}

async fn an_import_writes_the_patient_and_its_records_and_audits_each(db: &TestDb) {
    let s = db.store();
    let u = fixtures::user(db, "pia.p", "Pia", Role::Prescriber).await;
    let ctx = fixtures::ctx(&u);
    let p = registration(&u, "IMP-0001");
    let recs = vec![first(&u, p.patient_id, weight("72.4")), first(&u, p.patient_id, diagnosis())];
    s.import_patient(&ctx, Some(&p), &recs).await.unwrap();
    let got = s.get_patient(&ctx, p.patient_id).await.unwrap().expect("registered");
    assert_eq!(got.demographics.mrn.as_str(), "IMP-0001");
    let records = s.current_records(&ctx, p.patient_id).await.unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(bundle_audits(db, &u).await, 1, "one summary row");
    let f = AuditFilter { patient_id: Some(p.patient_id), page: Page { limit: 500, offset: 0 }, ..Default::default() };
    let rows = s.search_audit(&ctx, &f).await.unwrap();
    let creates = rows.iter().filter(|r| r.event.action.code() == "C").count();
    assert_eq!(creates, 3, "the patient and each record are audited as created");

    // An amendment of the demographics with more records, onto the same chart.
    let mut amended = p.clone();
    amended.version = 2;
    amended.version_id = VersionId::from_uuid(Uuid::new_v4());
    amended.action = VersionAction::Amend;
    amended.reason = Some(Reason::parse("imported from the referring clinic").unwrap());
    amended.demographics = demographics("IMP-0001", "Rivera-Lopez");
    s.import_patient(&ctx, Some(&amended), &[first(&u, p.patient_id, weight("72.9"))]).await.unwrap();
    let got = s.get_patient(&ctx, p.patient_id).await.unwrap().unwrap();
    assert_eq!((got.version, got.demographics.name.family()), (2, "Rivera-Lopez"));
    assert_eq!(s.current_records(&ctx, p.patient_id).await.unwrap().len(), 3);
}

async fn a_failing_import_of_a_new_patient_leaves_nothing_behind(db: &TestDb) {
    let s = db.store();
    let u = fixtures::user(db, "pia.p", "Pia", Role::Prescriber).await;
    let ctx = fixtures::ctx(&u);
    let before = s.count_patients().await.unwrap();
    let p = registration(&u, "IMP-0002");
    let recs = vec![first(&u, p.patient_id, weight("72.4")), first(&u, p.patient_id, diagnosis()), dangling_amendment(&u, p.patient_id)];
    let e = s.import_patient(&ctx, Some(&p), &recs).await.unwrap_err();
    assert!(matches!(e, DbError::Conflict(_)), "{e:?}");
    assert_eq!(s.count_patients().await.unwrap(), before);
    assert!(s.get_patient(&ctx, p.patient_id).await.unwrap().is_none(), "no patient row");
    assert!(s.current_records(&ctx, p.patient_id).await.unwrap().is_empty(), "no record rows");
    for r in &recs[..2] {
        assert!(s.get_record(&ctx, r.record_id).await.unwrap().is_none());
    }
    assert_eq!(bundle_audits(db, &u).await, 0, "no audit row of a write that did not happen");
    // The MRN was not claimed: a registration may take it.
    s.register_patient(&ctx, &registration(&u, "IMP-0002")).await.unwrap();
}

async fn a_failing_import_onto_a_chart_leaves_the_chart_as_it_was(db: &TestDb) {
    let s = db.store();
    let u = fixtures::user(db, "pia.p", "Pia", Role::Prescriber).await;
    let ctx = fixtures::ctx(&u);
    let id = fixtures::patient(db, &u, "IMP-0003", "Hale", "Ruth").await;
    fixtures::patient(db, &u, "IMP-0004", "Other", "Owner").await;
    let cur = s.get_patient(&ctx, id).await.unwrap().unwrap();
    // The amended demographics take an MRN another patient holds: refused with the records.
    let mut amended = cur.clone();
    amended.version = 2;
    amended.version_id = VersionId::from_uuid(Uuid::new_v4());
    amended.action = VersionAction::Amend;
    amended.reason = Some(Reason::parse("imported from the referring clinic").unwrap());
    amended.demographics = demographics("IMP-0004", "Hale");
    let recs = vec![first(&u, id, weight("80"))];
    assert!(matches!(s.import_patient(&ctx, Some(&amended), &recs).await, Err(DbError::Conflict(_))));
    let after = s.get_patient(&ctx, id).await.unwrap().unwrap();
    assert_eq!((after.version, after.demographics.mrn.as_str()), (1, "IMP-0003"));
    assert!(s.current_records(&ctx, id).await.unwrap().is_empty());
    // Records alone, one of them bad: none is written.
    let recs = vec![first(&u, id, weight("80")), dangling_amendment(&u, id)];
    assert!(s.import_patient(&ctx, None, &recs).await.is_err());
    assert!(s.current_records(&ctx, id).await.unwrap().is_empty());
    assert_eq!(bundle_audits(db, &u).await, 0);
}

async fn records_of_another_patient_are_refused(db: &TestDb) {
    let s = db.store();
    let u = fixtures::user(db, "pia.p", "Pia", Role::Prescriber).await;
    let ctx = fixtures::ctx(&u);
    let other = fixtures::patient(db, &u, "IMP-0005", "Other", "One").await;
    let p = registration(&u, "IMP-0006");
    let recs = vec![first(&u, p.patient_id, weight("70")), first(&u, other, diagnosis())];
    assert!(matches!(s.import_patient(&ctx, Some(&p), &recs).await, Err(DbError::Conflict(_))));
    assert!(s.get_patient(&ctx, p.patient_id).await.unwrap().is_none());
    assert!(s.current_records(&ctx, other).await.unwrap().is_empty());
}
