//! Storage of screening records (prior treatments, comorbid conditions, signed screening
//! verdicts) on both backends, and the upgrade from schema 4, which rebuilds SQLite's record
//! table to admit the new kinds: every earlier record, version chain and trigger survives.

use ketacare_db_tests::fixtures::{self, ctx, t0};
use ketacare_db_tests::{both_backends, fresh_postgres_at, fresh_sqlite_at, TestDb};
use ketacare_domain::access::Role;
use ketacare_domain::ids::*;
use ketacare_domain::record::*;
use ketacare_domain::screening::*;
use rust_decimal::Decimal;
use uuid::Uuid;

async fn director(db: &TestDb) -> ketacare_db::User {
    fixtures::user(db, "dr.mira", "Dr Mira", Role::MedicalDirector).await
}

async fn register(db: &TestDb, u: &ketacare_db::User) -> PatientId {
    fixtures::patient(db, u, "SC-0001", "Penrose", "Ada").await
}

fn version(u: &ketacare_db::User, patient: PatientId, record: ClinicalRecord, prev: Option<&RecordVersion>) -> RecordVersion {
    RecordVersion {
        record_id: prev.map(|p| p.record_id).unwrap_or_else(|| RecordId::from_uuid(Uuid::new_v4())),
        version_id: VersionId::from_uuid(Uuid::new_v4()),
        version: prev.map(|p| p.version + 1).unwrap_or(1),
        supersedes: prev.map(|p| p.version_id),
        patient_id: patient,
        action: if prev.is_some() { VersionAction::Amend } else { VersionAction::Create },
        record,
        reason: prev.map(|_| Reason::parse("corrected after review").unwrap()),
        provenance: Provenance { user_id: u.id, username: "dr.mira".into(), recorded_at: t0() },
    }
}

fn prior_treatment() -> ClinicalRecord {
    ClinicalRecord::PriorTreatment(PriorTreatmentRecord {
        treatment: PriorTreatment {
            kind: Some(TreatmentKind::Pharmacological),
            name: "sertraline".into(),
            dose: Some("150 mg daily".into()),
            weeks: Some(Decimal::from(12)),
            adequate: Some(true),
            instrument: Some("hama".into()),
            baseline: Some(Decimal::from(26)),
            final_score: Some(Decimal::new(205, 1)),
            stop_reason: Some("no response".into()),
        },
    })
}

fn signed() -> ClinicalRecord {
    ClinicalRecord::Screening(ScreeningRecord {
        verdict: Verdict::EligibleWithCautions,
        findings: vec![Finding {
            code: "condition:bipolar_disorder".into(),
            severity: Severity::Review,
            category: Category::Condition,
            title: "Bipolar disorder".into(),
            trigger: "condition on record: bipolar disorder".into(),
            effect: "Manic symptoms were seen.".into(),
            action: "Treat only on a mood stabiliser.".into(),
            source: "NIMH bipolar RCT, PMC3000408".into(),
            unverified: false,
            conflict: None,
            accepted: true,
        }],
        trials: vec![TrialJudgement {
            index: 0,
            name: "sertraline".into(),
            kind: Some(TreatmentKind::Pharmacological),
            status: TrialStatus::AdequateFailure,
            reduction_percent: Some(Decimal::new(212, 1)),
            explanation: "adequate; 21.2 % reduction".into(),
        }],
        resistance: ResistanceStatus::Met,
        resistance_definition: "Delphi 2024".into(),
        acceptances: vec![Acceptance {
            code: "condition:bipolar_disorder".into(),
            trigger: "condition on record: bipolar disorder".into(),
            reason: "on lithium, euthymic for 2 years".into(),
        }],
        knowledge_version: "conditions 2026.11.1".into(),
        note: Some("signed after the team meeting".into()),
    })
}

both_backends!(screening_records_round_trip_with_their_history);

async fn screening_records_round_trip_with_their_history(db: &TestDb) {
    let s = db.store();
    let u = director(db).await;
    let p = register(db, &u).await;
    let t = version(&u, p, prior_treatment(), None);
    let c = version(
        &u,
        p,
        ClinicalRecord::Condition(ConditionRecord { condition: "hypertension".into(), present: true, controlled: Some(true), note: None }),
        None,
    );
    let preg = version(
        &u,
        p,
        ClinicalRecord::Condition(ConditionRecord {
            condition: "pregnancy".into(),
            present: false,
            controlled: None,
            note: Some("test negative".into()),
        }),
        None,
    );
    let v1 = version(&u, p, signed(), None);
    for v in [&t, &c, &preg, &v1] {
        s.append_record_version(&ctx(&u), v).await.unwrap();
    }
    // A re-signed screening is the next version of the same record.
    let mut resigned = signed();
    if let ClinicalRecord::Screening(x) = &mut resigned {
        x.verdict = Verdict::NotEligible;
        x.acceptances.clear();
    }
    let v2 = version(&u, p, resigned.clone(), Some(&v1));
    s.append_record_version(&ctx(&u), &v2).await.unwrap();
    let back = s.get_record(&ctx(&u), t.record_id).await.unwrap().unwrap();
    assert_eq!(back.record, prior_treatment(), "decimals such as 20.5 survive exactly on {}", db.backend());
    assert_eq!(s.get_record(&ctx(&u), c.record_id).await.unwrap().unwrap().record, c.record);
    assert_eq!(s.get_record(&ctx(&u), preg.record_id).await.unwrap().unwrap().record, preg.record);
    let cur = s.get_record(&ctx(&u), v1.record_id).await.unwrap().unwrap();
    assert_eq!((cur.version, &cur.record), (2, &resigned));
    let hist = s.record_history(&ctx(&u), v1.record_id).await.unwrap();
    assert_eq!(hist.len(), 2);
    assert_eq!(hist[0].record, signed(), "the first signature is kept as it was");
    let chart = s.current_records(&ctx(&u), p).await.unwrap();
    let kinds: Vec<RecordKind> = chart.iter().map(|r| r.record.kind()).collect();
    for k in [RecordKind::PriorTreatment, RecordKind::Condition, RecordKind::Screening] {
        assert!(kinds.contains(&k), "{k:?} in the chart on {}", db.backend());
    }
    // Append-only, as every clinical record.
    let sql = format!("UPDATE record_versions SET body = '{{}}' WHERE version_id = '{}'", v1.version_id);
    assert!(db.exec_raw(&sql).await.is_err_and(|e| e.contains("append-only")), "{sql} refused on {}", db.backend());
    // An unknown kind is refused by the schema itself.
    let bad = format!(
        "INSERT INTO record_versions (version_id, record_id, version, patient_id, kind, action, body, recorded_by, recorded_by_name, recorded_at) \
         VALUES ('{}', '{}', 1, '{p}', 'horoscope', 'create', '{{}}', '{}', 'x', '2026-11-26T09:00:00.000000Z')",
        Uuid::new_v4(),
        Uuid::new_v4(),
        u.id
    );
    assert!(db.exec_raw(&bad).await.is_err(), "kind CHECK on {}", db.backend());
}

/// Records written at schema 4 (before the screening kinds) survive the upgrade unchanged.
async fn upgrade_from_schema_4(db: TestDb) {
    let s = db.store();
    assert_eq!(s.schema_version().await.unwrap(), 4);
    let u = director(&db).await;
    let p = register(&db, &u).await;
    let med = ClinicalRecord::Medication(Medication {
        name: "Clonazepam".into(),
        rxnorm: Some("2598".into()),
        dose: Some("0.5 mg".into()),
        start: None,
        stop: None,
    });
    let v1 = version(&u, p, med.clone(), None);
    s.append_record_version(&ctx(&u), &v1).await.unwrap();
    let mut med2 = med.clone();
    if let ClinicalRecord::Medication(m) = &mut med2 {
        m.dose = Some("0.25 mg".into());
    }
    let v2 = version(&u, p, med2.clone(), Some(&v1));
    s.append_record_version(&ctx(&u), &v2).await.unwrap();
    // Schema 4 refuses the new kinds.
    assert!(s.append_record_version(&ctx(&u), &version(&u, p, prior_treatment(), None)).await.is_err());

    s.migrate().await.expect("upgrade to the latest schema");
    assert!(s.schema_version().await.unwrap() >= 5);
    let hist = s.record_history(&ctx(&u), v1.record_id).await.unwrap();
    assert_eq!(hist.iter().map(|h| (h.version, h.record.clone())).collect::<Vec<_>>(), vec![(1, med), (2, med2)], "on {}", db.backend());
    assert_eq!(hist[1].supersedes, Some(v1.version_id));
    s.append_record_version(&ctx(&u), &version(&u, p, prior_treatment(), None)).await.expect("the new kinds are accepted");
    // A second amendment of version 2 by someone else still conflicts: the unique constraint survived.
    let dup = version(&u, p, hist[1].record.clone(), Some(&v1));
    assert!(s.append_record_version(&ctx(&u), &dup).await.is_err(), "(record_id, version) is still unique on {}", db.backend());
    for sql in ["DELETE FROM record_versions", "UPDATE record_versions SET reason = 'x'"] {
        assert!(db.exec_raw(sql).await.is_err_and(|e| e.contains("append-only")), "{sql} refused after the upgrade on {}", db.backend());
    }
    let orphan = format!(
        "INSERT INTO record_versions (version_id, record_id, version, supersedes, patient_id, kind, action, body, recorded_by, recorded_by_name, recorded_at) \
         VALUES ('{}', '{}', 2, 'no-such-version', '{p}', 'condition', 'amend', '{{}}', '{}', 'x', '2026-11-26T09:00:00.000000Z')",
        Uuid::new_v4(),
        Uuid::new_v4(),
        u.id
    );
    assert!(db.exec_raw(&orphan).await.is_err(), "the supersedes foreign key survived on {}", db.backend());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_upgrade_from_schema_4_keeps_every_record() {
    upgrade_from_schema_4(fresh_sqlite_at(Some(4)).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_upgrade_from_schema_4_keeps_every_record() {
    let Some(db) = fresh_postgres_at(Some(4)).await else { return };
    upgrade_from_schema_4(db).await;
}
