//! The storage conformance suite: every storage behaviour, run on SQLite and PostgreSQL.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use ketacare_db::{ApiToken, AuditCtx, AuditFilter, AuditSort, DbError, NewUser, Page, StoredSession};
use ketacare_db_tests::{both_backends, TestDb};
use ketacare_domain::access::{Role, Username};
use ketacare_domain::audit::{Actor, AuditAction, AuditOutcome};
use ketacare_domain::coding::{CodeSystem, Coding};
use ketacare_domain::ids::*;
use ketacare_domain::patient::{AgeLimits, DemographicsInput};
use ketacare_domain::record::*;
use rust_decimal::Decimal;
use std::str::FromStr;
use uuid::Uuid;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 9, 0, 0).unwrap()
}

fn ctx(user: &ketacare_db::User) -> AuditCtx {
    AuditCtx {
        actor: Actor {
            user_id: Some(user.id),
            username: user.username.as_str().to_owned(),
            role: Some(user.role),
            session_ref: Some("test".into()),
            client_addr: Some("127.0.0.1".into()),
        },
        at: t0(),
        purpose: "treatment",
    }
}

fn system_ctx() -> AuditCtx {
    AuditCtx {
        actor: Actor { user_id: None, username: "system".into(), role: None, session_ref: None, client_addr: None },
        at: t0(),
        purpose: "operations",
    }
}

async fn nurse(db: &TestDb) -> ketacare_db::User {
    db.store()
        .create_user(
            &system_ctx(),
            NewUser {
                id: UserId::from_uuid(Uuid::new_v4()),
                username: Username::parse("nurse.jo").unwrap(),
                display_name: "Jo Nurse".into(),
                role: Role::Nurse,
                password_hash: "$argon2id$test".into(),
                created_at: t0(),
            },
        )
        .await
        .unwrap()
}

fn demographics(mrn: &str, family: &str, given: &str) -> ketacare_domain::patient::Demographics {
    DemographicsInput {
        mrn: mrn.into(),
        family_name: family.into(),
        given_name: given.into(),
        date_of_birth: "1984-03-27".into(),
        sex: "female".into(),
        phone: "+44 20 7946 0000".into(),
        emergency_name: "Sam Rivera".into(),
        ..Default::default()
    }
    .validate(NaiveDate::from_ymd_opt(2026, 11, 26).unwrap(), AgeLimits { minimum_years: 18, maximum_years: 110 })
    .unwrap()
}

fn prov(u: &ketacare_db::User) -> Provenance {
    Provenance { user_id: u.id, username: u.username.as_str().to_owned(), recorded_at: t0() }
}

async fn register(db: &TestDb, u: &ketacare_db::User, mrn: &str, family: &str, given: &str) -> PatientId {
    let id = PatientId::from_uuid(Uuid::new_v4());
    let v = PatientVersion {
        patient_id: id,
        version_id: VersionId::from_uuid(Uuid::new_v4()),
        version: 1,
        action: VersionAction::Create,
        demographics: demographics(mrn, family, given),
        reason: None,
        provenance: prov(u),
    };
    db.store().register_patient(&ctx(u), &v).await.unwrap();
    id
}

fn diagnosis() -> ClinicalRecord {
    ClinicalRecord::Diagnosis(Diagnosis {
        condition: Coding::new(CodeSystem::SnomedCt, "21897009", "Generalized anxiety disorder").unwrap(),
        icd10: Some(Coding::new(CodeSystem::Icd10Cm, "F41.1", "Generalized anxiety disorder").unwrap()),
        onset: NaiveDate::from_ymd_opt(2019, 5, 1),
        status: ClinicalStatus::Active,
        note: Some("failed two SSRIs".into()),
    })
}

fn weight(kg: &str) -> ClinicalRecord {
    ClinicalRecord::Observation(Observation {
        code: Coding::new(CodeSystem::Loinc, "29463-7", "Body weight").unwrap(),
        value: ObservationValue::Quantity { value: Decimal::from_str(kg).unwrap(), unit: UcumUnit::parse("kg").unwrap() },
        effective: t0(),
        acknowledged_warnings: vec!["possible_pounds".into()],
    })
}

fn first_version(u: &ketacare_db::User, patient: PatientId, record: ClinicalRecord) -> RecordVersion {
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

fn next_version(prev: &RecordVersion, action: VersionAction, record: ClinicalRecord, reason: &str) -> RecordVersion {
    RecordVersion {
        record_id: prev.record_id,
        version_id: VersionId::from_uuid(Uuid::new_v4()),
        version: prev.version + 1,
        supersedes: Some(prev.version_id),
        patient_id: prev.patient_id,
        action,
        record,
        reason: Some(Reason::parse(reason).unwrap()),
        provenance: Provenance { recorded_at: prev.provenance.recorded_at + Duration::minutes(5), ..prev.provenance.clone() },
    }
}

async fn audit_of(db: &TestDb, u: &ketacare_db::User, patient: PatientId) -> Vec<ketacare_domain::audit::AuditEntry> {
    let f = AuditFilter { patient_id: Some(patient), ascending: true, page: Page { limit: 500, offset: 0 }, ..Default::default() };
    db.store().search_audit(&ctx(u), &f).await.unwrap()
}

both_backends!(
    migrations_match_shipped_set,
    a_totp_secret_is_resealed_only_while_unchanged,
    users_are_unique_and_deactivation_ends_sessions,
    login_failures_count_and_lock_as_the_domain_rule_says,
    api_tokens_are_found_by_hash_and_revoked,
    registration_and_reads_are_audited,
    mrn_is_unique_across_patients,
    demographics_amendments_keep_every_version,
    concurrent_amendment_of_the_same_version_conflicts,
    records_amend_and_void_keep_history,
    every_record_kind_round_trips,
    search_matches_names_and_mrn_and_escapes_wildcards,
    voided_patients_leave_search_but_keep_history,
    clinical_tables_refuse_update_and_delete,
    a_read_that_cannot_be_audited_fails,
    audit_search_filters_and_sorts,
);

async fn migrations_match_shipped_set(db: &TestDb) {
    let v = db.store().schema_version().await.unwrap();
    assert_eq!(v as usize, ketacare_db_sqlite::SqliteStore::shipped_migrations());
    assert_eq!(ketacare_db_sqlite::SqliteStore::shipped_migrations(), ketacare_db_postgres::PgStore::shipped_migrations());
    // Migrating twice is a no-op.
    db.store().migrate().await.unwrap();
}

async fn login_failures_count_and_lock_as_the_domain_rule_says(db: &TestDb) {
    use ketacare_domain::login::{AccountLock, LoginProtection};
    let s = db.store();
    let u = nurse(db).await;
    let policy = LoginProtection { max_failures: 3, lock_for: Duration::minutes(15), ..LoginProtection::default() };
    let mut expected = AccountLock::default();
    // Failures at minutes 0, 1, 2 (locks), 5 (while locked), 20 (after the lock: a new run),
    // each checked against the domain's rule and read back through the user.
    for m in [0, 1, 2, 5, 20, 21] {
        let now = t0() + Duration::minutes(m);
        expected = expected.after_failure(now, &policy);
        let got = s.record_login_failure(u.id, now, policy.max_failures, now + policy.lock_for).await.unwrap();
        assert_eq!(got, expected, "after the failure at minute {m}");
        assert_eq!(s.get_user(u.id).await.unwrap().unwrap().lock, expected, "stored at minute {m}");
    }
    assert_eq!(expected, AccountLock { failed: 2, locked_until: None });
    assert!(s.clear_login_failures(u.id, t0() + Duration::minutes(22)).await.unwrap(), "not locked: cleared");
    assert_eq!(s.get_user(u.id).await.unwrap().unwrap().lock, AccountLock::default());
    // Lock, then an audited unlock.
    for _ in 0..3 {
        s.record_login_failure(u.id, t0(), 3, t0() + Duration::minutes(15)).await.unwrap();
    }
    assert!(s.get_user(u.id).await.unwrap().unwrap().lock.is_locked(t0()));
    assert!(!s.clear_login_failures(u.id, t0()).await.unwrap(), "a locked account is not cleared by a right password");
    assert!(s.get_user(u.id).await.unwrap().unwrap().lock.is_locked(t0()), "and stays locked");
    s.unlock_user(&system_ctx(), u.id).await.unwrap();
    assert_eq!(s.get_user(u.id).await.unwrap().unwrap().lock, AccountLock::default());
    let f = AuditFilter { entity_type: Some("User".into()), page: Page { limit: 50, offset: 0 }, ..Default::default() };
    let audit = s.search_audit(&system_ctx(), &f).await.unwrap();
    assert!(audit
        .iter()
        .any(|e| e.event.entity_id.as_deref() == Some(&u.id.to_string())
            && e.event.detail.as_deref().is_some_and(|d| d.ends_with("unlocked"))));
    assert!(matches!(s.unlock_user(&system_ctx(), UserId::from_uuid(Uuid::new_v4())).await, Err(DbError::NotFound)));
    assert!(matches!(s.record_login_failure(UserId::from_uuid(Uuid::new_v4()), t0(), 3, t0()).await, Err(DbError::NotFound)));
    // Concurrent failures all count (one atomic statement each).
    assert!(s.clear_login_failures(u.id, t0()).await.unwrap());
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = s.clone();
        let id = u.id;
        tasks.push(tokio::spawn(async move { s.record_login_failure(id, t0(), 100, t0()).await.unwrap() }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(s.get_user(u.id).await.unwrap().unwrap().lock.failed, 8);
}

async fn users_are_unique_and_deactivation_ends_sessions(db: &TestDb) {
    let s = db.store();
    let u = nurse(db).await;
    let (found, hash) = s.find_user_by_username("NURSE.JO").await.unwrap().unwrap();
    assert_eq!(found, u);
    assert_eq!(hash, "$argon2id$test");
    let dup = s
        .create_user(
            &system_ctx(),
            NewUser {
                id: UserId::from_uuid(Uuid::new_v4()),
                username: Username::parse("nurse.jo").unwrap(),
                display_name: "X".into(),
                role: Role::Admin,
                password_hash: "h".into(),
                created_at: t0(),
            },
        )
        .await;
    assert!(matches!(dup, Err(DbError::Conflict(_))), "{dup:?}");

    let sess = StoredSession {
        id: SessionId::from_uuid(Uuid::new_v4()),
        token_hash: "abc123".into(),
        user_id: u.id,
        csrf_token: "csrf".into(),
        created_at: t0(),
        last_seen_at: t0(),
        expires_at: t0() + Duration::hours(12),
        client_addr: Some("10.0.0.5".into()),
    };
    s.create_session(&sess).await.unwrap();
    assert_eq!(s.find_session("abc123").await.unwrap().unwrap(), sess);
    s.touch_session(sess.id, t0() + Duration::minutes(3)).await.unwrap();
    assert_eq!(s.find_session("abc123").await.unwrap().unwrap().last_seen_at, t0() + Duration::minutes(3));
    s.set_user_active(&system_ctx(), u.id, false).await.unwrap();
    assert!(s.find_session("abc123").await.unwrap().is_none());
    assert!(!s.get_user(u.id).await.unwrap().unwrap().active);
    assert_eq!(s.list_users().await.unwrap().len(), 1);
}

async fn api_tokens_are_found_by_hash_and_revoked(db: &TestDb) {
    let s = db.store();
    let u = nurse(db).await;
    let t = ApiToken {
        id: TokenId::from_uuid(Uuid::new_v4()),
        user_id: u.id,
        label: "monitor gateway".into(),
        token_hash: "f00d".into(),
        created_at: t0(),
        created_by: u.id,
        revoked_at: None,
    };
    s.create_api_token(&ctx(&u), &t).await.unwrap();
    assert_eq!(s.find_api_token("f00d").await.unwrap().unwrap(), t);
    s.revoke_api_token(&ctx(&u), t.id).await.unwrap();
    assert!(s.find_api_token("f00d").await.unwrap().unwrap().revoked_at.is_some());
    assert!(matches!(s.revoke_api_token(&ctx(&u), t.id).await, Err(DbError::NotFound)));
}

async fn registration_and_reads_are_audited(db: &TestDb) {
    let s = db.store();
    let u = nurse(db).await;
    let p = register(db, &u, "KC-0001", "Rivera", "Ana").await;
    let got = s.get_patient(&ctx(&u), p).await.unwrap().unwrap();
    assert_eq!(got.demographics.name.family(), "Rivera");
    assert_eq!(got.demographics.contact.phone.as_deref(), Some("+44 20 7946 0000"));
    assert_eq!(got.demographics.emergency_contact.name.as_deref(), Some("Sam Rivera"));
    let _ = s.current_records(&ctx(&u), p).await.unwrap();
    let missing = PatientId::from_uuid(Uuid::new_v4());
    assert!(s.get_patient(&ctx(&u), missing).await.unwrap().is_none());

    let trail = audit_of(db, &u, p).await;
    let actions: Vec<(&str, &str)> = trail.iter().map(|e| (e.event.action.code(), e.event.entity_type.as_str())).collect();
    assert_eq!(actions, vec![("C", "Patient"), ("R", "Patient"), ("R", "Record")]);
    assert!(trail.iter().all(|e| e.event.actor.user_id == Some(u.id) && e.event.actor.role == Some(Role::Nurse)));
    assert!(trail.windows(2).all(|w| w[0].seq < w[1].seq));
    let nf = s.search_audit(&ctx(&u), &AuditFilter { patient_id: Some(missing), ..Default::default() }).await.unwrap();
    assert_eq!(nf[0].event.outcome, AuditOutcome::NotFound);
}

async fn mrn_is_unique_across_patients(db: &TestDb) {
    let u = nurse(db).await;
    register(db, &u, "KC-0001", "Rivera", "Ana").await;
    let v = PatientVersion {
        patient_id: PatientId::from_uuid(Uuid::new_v4()),
        version_id: VersionId::from_uuid(Uuid::new_v4()),
        version: 1,
        action: VersionAction::Create,
        demographics: demographics("kc-0001", "Other", "Person"),
        reason: None,
        provenance: prov(&u),
    };
    let r = db.store().register_patient(&ctx(&u), &v).await;
    assert!(matches!(r, Err(DbError::Conflict(ref c)) if c.contains("mrn")), "{r:?}");
    // Nothing half-written: the failed registration left no patient behind.
    assert_eq!(db.store().count_patients().await.unwrap(), 1);
}

async fn amend(db: &TestDb, u: &ketacare_db::User, p: PatientId, version: u32, family: &str, mrn: &str) -> Result<(), DbError> {
    let v = PatientVersion {
        patient_id: p,
        version_id: VersionId::from_uuid(Uuid::new_v4()),
        version,
        action: VersionAction::Amend,
        demographics: demographics(mrn, family, "Ana"),
        reason: Some(Reason::parse("surname misspelt at registration").unwrap()),
        provenance: prov(u),
    };
    db.store().append_patient_version(&ctx(u), &v).await
}

async fn demographics_amendments_keep_every_version(db: &TestDb) {
    let s = db.store();
    let u = nurse(db).await;
    let p = register(db, &u, "KC-0001", "Rivra", "Ana").await;
    amend(db, &u, p, 2, "Rivera", "KC-0001").await.unwrap();
    amend(db, &u, p, 3, "Rivera", "KC-0002").await.unwrap();
    let cur = s.get_patient(&ctx(&u), p).await.unwrap().unwrap();
    assert_eq!((cur.version, cur.demographics.name.family(), cur.demographics.mrn.as_str()), (3, "Rivera", "KC-0002"));
    let hist = s.patient_history(&ctx(&u), p).await.unwrap();
    let fam: Vec<&str> = hist.iter().map(|v| v.demographics.name.family()).collect();
    assert_eq!(fam, vec!["Rivra", "Rivera", "Rivera"]);
    assert_eq!(hist[1].reason.as_ref().unwrap().as_str(), "surname misspelt at registration");
    // The old MRN stays reserved to this patient: nobody else can take it.
    let q = register_result(db, &u, "KC-0001").await;
    assert!(matches!(q, Err(DbError::Conflict(_))));
    let trail = audit_of(db, &u, p).await;
    assert_eq!(trail.iter().filter(|e| e.event.action == AuditAction::Update).count(), 2);
}

async fn register_result(db: &TestDb, u: &ketacare_db::User, mrn: &str) -> Result<(), DbError> {
    let v = PatientVersion {
        patient_id: PatientId::from_uuid(Uuid::new_v4()),
        version_id: VersionId::from_uuid(Uuid::new_v4()),
        version: 1,
        action: VersionAction::Create,
        demographics: demographics(mrn, "New", "Person"),
        reason: None,
        provenance: prov(u),
    };
    db.store().register_patient(&ctx(u), &v).await
}

async fn concurrent_amendment_of_the_same_version_conflicts(db: &TestDb) {
    let u = nurse(db).await;
    let p = register(db, &u, "KC-0001", "Rivra", "Ana").await;
    let (a, b) = tokio::join!(amend(db, &u, p, 2, "Rivera", "KC-0001"), amend(db, &u, p, 2, "Riviera", "KC-0001"));
    assert!(a.is_ok() ^ b.is_ok(), "exactly one of two concurrent amendments wins: {a:?} {b:?}");
    // A stale amendment (skipping a version) is refused too.
    assert!(matches!(amend(db, &u, p, 4, "X", "KC-0001").await, Err(DbError::Conflict(_))));
    assert_eq!(db.store().patient_history(&ctx(&u), p).await.unwrap().len(), 2);
}

async fn records_amend_and_void_keep_history(db: &TestDb) {
    let s = db.store();
    let u = nurse(db).await;
    let p = register(db, &u, "KC-0001", "Rivera", "Ana").await;
    let v1 = first_version(&u, p, weight("176.4"));
    s.append_record_version(&ctx(&u), &v1).await.unwrap();
    let v2 = next_version(&v1, VersionAction::Amend, weight("80"), "entered in pounds by mistake");
    s.append_record_version(&ctx(&u), &v2).await.unwrap();
    // A second amendment based on v1 (stale) is refused.
    let stale = next_version(&v1, VersionAction::Amend, weight("81"), "stale edit");
    assert!(matches!(s.append_record_version(&ctx(&u), &stale).await, Err(DbError::Conflict(_))));
    // Changing the kind in an amendment is refused.
    let wrong_kind = next_version(&v2, VersionAction::Amend, diagnosis(), "kind change");
    assert!(matches!(s.append_record_version(&ctx(&u), &wrong_kind).await, Err(DbError::Conflict(_))));
    let v3 = next_version(&v2, VersionAction::Void, weight("80"), "wrong patient");
    s.append_record_version(&ctx(&u), &v3).await.unwrap();
    // Nothing after a void.
    let after = next_version(&v3, VersionAction::Amend, weight("80"), "undo");
    assert!(matches!(s.append_record_version(&ctx(&u), &after).await, Err(DbError::Conflict(_))));

    let cur = s.current_records(&ctx(&u), p).await.unwrap();
    assert_eq!(cur.len(), 1);
    assert!(cur[0].is_void());
    let hist = s.record_history(&ctx(&u), v1.record_id).await.unwrap();
    let actions: Vec<VersionAction> = hist.iter().map(|v| v.action).collect();
    assert_eq!(actions, vec![VersionAction::Create, VersionAction::Amend, VersionAction::Void]);
    assert_eq!(hist[1].supersedes, Some(v1.version_id));
    assert_eq!(hist[0].record, weight("176.4"));
    assert_eq!(s.get_record(&ctx(&u), v1.record_id).await.unwrap().unwrap().version, 3);
    let trail = audit_of(db, &u, p).await;
    assert!(trail.iter().any(|e| e.event.action == AuditAction::Delete && e.event.entity_type == "Record/observation"));
}

async fn every_record_kind_round_trips(db: &TestDb) {
    let s = db.store();
    let u = nurse(db).await;
    let p = register(db, &u, "KC-0001", "Rivera", "Ana").await;
    let records = vec![
        diagnosis(),
        ClinicalRecord::Medication(Medication {
            name: "Sertraline".into(),
            rxnorm: Some("36437".into()),
            dose: Some("100 mg once daily".into()),
            start: NaiveDate::from_ymd_opt(2025, 1, 2),
            stop: None,
        }),
        ClinicalRecord::Allergy(Allergy {
            substance: "Penicillin".into(),
            reaction: Some("rash".into()),
            severity: AllergySeverity::Moderate,
        }),
        ClinicalRecord::Encounter(Encounter {
            kind: EncounterKind::Screening,
            start: t0(),
            end: Some(t0() + Duration::hours(1)),
            reason: Some("assessment".into()),
            note: Some("line one\nline two".into()),
        }),
        weight("72.4"),
        ClinicalRecord::Observation(Observation {
            code: Coding::new(CodeSystem::Loinc, "8310-5", "Body temperature").unwrap(),
            value: ObservationValue::Text("afebrile".into()),
            effective: t0(),
            acknowledged_warnings: vec![],
        }),
        ClinicalRecord::Observation(Observation {
            code: Coding::new(CodeSystem::Other("urn:ketacare:local".into()), "nausea", "Nausea").unwrap(),
            value: ObservationValue::Boolean(false),
            effective: t0(),
            acknowledged_warnings: vec![],
        }),
        ClinicalRecord::Observation(Observation {
            code: Coding::new(CodeSystem::Loinc, "93374-7", "Suicide risk level").unwrap(),
            value: ObservationValue::Coded(Coding::new(CodeSystem::Loinc, "LA9194-7", "Low").unwrap()),
            effective: t0(),
            acknowledged_warnings: vec![],
        }),
    ];
    for r in &records {
        s.append_record_version(&ctx(&u), &first_version(&u, p, r.clone())).await.unwrap();
    }
    let cur = s.current_records(&ctx(&u), p).await.unwrap();
    assert_eq!(cur.len(), records.len());
    for r in &records {
        assert!(cur.iter().any(|c| &c.record == r), "missing {r:?}");
    }
}

async fn search_matches_names_and_mrn_and_escapes_wildcards(db: &TestDb) {
    let s = db.store();
    let u = nurse(db).await;
    register(db, &u, "KC-0001", "Rivera", "Ana").await;
    register(db, &u, "KC-0002", "Okafor", "Chidi").await;
    register(db, &u, "KC-0003", "Rivers", "Ben").await;
    let names = |v: Vec<PatientVersion>| v.iter().map(|p| p.demographics.name.family().to_owned()).collect::<Vec<_>>();
    assert_eq!(names(s.search_patients(&ctx(&u), "riv", Page::default()).await.unwrap()), vec!["Rivera", "Rivers"]);
    assert_eq!(names(s.search_patients(&ctx(&u), "ANA RIV", Page::default()).await.unwrap()), vec!["Rivera"]);
    assert_eq!(names(s.search_patients(&ctx(&u), "kc-0002", Page::default()).await.unwrap()), vec!["Okafor"]);
    assert_eq!(s.search_patients(&ctx(&u), "", Page::default()).await.unwrap().len(), 3);
    assert!(s.search_patients(&ctx(&u), "%", Page::default()).await.unwrap().is_empty());
    assert!(s.search_patients(&ctx(&u), "_", Page::default()).await.unwrap().is_empty());
    assert_eq!(names(s.search_patients(&ctx(&u), "", Page { limit: 1, offset: 1 }).await.unwrap()), vec!["Rivera"]);
    let f = AuditFilter { action: Some(AuditAction::Execute), entity_type: Some("Patient".into()), ..Default::default() };
    let searches = s.search_audit(&ctx(&u), &f).await.unwrap();
    assert_eq!(searches.len(), 7);
    assert!(
        searches.iter().all(|e| !e.event.detail.as_deref().unwrap_or("").to_lowercase().contains("riv")),
        "search text must not be logged"
    );
}

async fn voided_patients_leave_search_but_keep_history(db: &TestDb) {
    let s = db.store();
    let u = nurse(db).await;
    let p = register(db, &u, "KC-0001", "Rivera", "Ana").await;
    let v = PatientVersion {
        patient_id: p,
        version_id: VersionId::from_uuid(Uuid::new_v4()),
        version: 2,
        action: VersionAction::Void,
        demographics: demographics("KC-0001", "Rivera", "Ana"),
        reason: Some(Reason::parse("duplicate registration").unwrap()),
        provenance: prov(&u),
    };
    s.append_patient_version(&ctx(&u), &v).await.unwrap();
    assert!(s.search_patients(&ctx(&u), "rivera", Page::default()).await.unwrap().is_empty());
    assert_eq!(s.count_patients().await.unwrap(), 0);
    assert_eq!(s.get_patient(&ctx(&u), p).await.unwrap().unwrap().action, VersionAction::Void);
    assert_eq!(s.patient_history(&ctx(&u), p).await.unwrap().len(), 2);
    assert!(matches!(amend(db, &u, p, 3, "X", "KC-0001").await, Err(DbError::Conflict(_))));
}

async fn clinical_tables_refuse_update_and_delete(db: &TestDb) {
    let u = nurse(db).await;
    let p = register(db, &u, "KC-0001", "Rivera", "Ana").await;
    db.store().append_record_version(&ctx(&u), &first_version(&u, p, diagnosis())).await.unwrap();
    for sql in [
        "UPDATE patient_versions SET family_name = 'X'",
        "DELETE FROM patient_versions",
        "UPDATE record_versions SET body = '{}'",
        "DELETE FROM record_versions",
        "UPDATE audit_log SET username = 'someone else'",
        "DELETE FROM audit_log",
        "DELETE FROM patient_mrns",
        "DELETE FROM patients",
    ] {
        let r = db.exec_raw(sql).await;
        assert!(r.as_ref().is_err_and(|e| e.contains("append-only")), "{sql} must be refused on {}: {r:?}", db.backend());
    }
}

async fn a_read_that_cannot_be_audited_fails(db: &TestDb) {
    let u = nurse(db).await;
    let p = register(db, &u, "KC-0001", "Rivera", "Ana").await;
    db.exec_raw("DROP TABLE audit_log").await.unwrap();
    let r = db.store().get_patient(&ctx(&u), p).await;
    assert!(r.is_err(), "a read without its audit row must fail and return no data");
    assert!(db.store().search_patients(&ctx(&u), "", Page::default()).await.is_err());
}

async fn audit_search_filters_and_sorts(db: &TestDb) {
    let s = db.store();
    let u = nurse(db).await;
    let p1 = register(db, &u, "KC-0001", "Rivera", "Ana").await;
    let p2 = register(db, &u, "KC-0002", "Okafor", "Chidi").await;
    s.get_patient(&ctx(&u), p1).await.unwrap();
    s.get_patient(&ctx(&u), p2).await.unwrap();
    let reads = s.search_audit(&ctx(&u), &AuditFilter { action: Some(AuditAction::Read), ..Default::default() }).await.unwrap();
    assert_eq!(reads.len(), 2);
    assert!(reads[0].seq > reads[1].seq, "newest first by default");
    let by_patient = s.search_audit(&ctx(&u), &AuditFilter { patient_id: Some(p2), ..Default::default() }).await.unwrap();
    assert!(by_patient.iter().all(|e| e.event.patient_id == Some(p2)));
    let later = s.search_audit(&ctx(&u), &AuditFilter { from: Some(t0() + Duration::seconds(1)), ..Default::default() }).await.unwrap();
    assert!(later.is_empty());
    let sorted = s.search_audit(&ctx(&u), &AuditFilter { sort: AuditSort::Action, ascending: true, ..Default::default() }).await.unwrap();
    let codes: Vec<&str> = sorted.iter().map(|e| e.event.action.code()).collect();
    let mut expect = codes.clone();
    expect.sort_unstable();
    assert_eq!(codes, expect);
    let mine = s
        .search_audit(
            &ctx(&u),
            &AuditFilter { username: Some("nurse.jo".into()), entity_type: Some("AuditEvent".into()), ..Default::default() },
        )
        .await
        .unwrap();
    // Four earlier searches; this one is audited after its rows are read.
    assert_eq!(mine.len(), 4, "each audit search is itself audited");
}

async fn a_totp_secret_is_resealed_only_while_unchanged(db: &TestDb) {
    let s = db.store();
    let u = nurse(db).await;
    assert!(!s.reseal_totp(u.id, "PLAIN", "kc1:00").await.unwrap(), "not enrolled: nothing to reseal");
    s.enrol_totp(&ctx(&u), u.id, "PLAIN", 10, &["h1".to_owned()]).await.unwrap();
    assert!(s.reseal_totp(u.id, "PLAIN", "kc1:aa").await.unwrap());
    let e = s.get_totp(u.id).await.unwrap().expect("enrolled");
    assert_eq!((e.secret.as_str(), e.last_step), ("kc1:aa", 10), "the secret is replaced, the last step kept");
    assert!(!s.reseal_totp(u.id, "PLAIN", "kc1:bb").await.unwrap(), "changed meanwhile: left alone");
    assert_eq!(s.get_totp(u.id).await.unwrap().expect("enrolled").secret, "kc1:aa");
    assert!(s.claim_totp_step(u.id, 11).await.unwrap(), "codes go on being claimed");
    assert_eq!(s.unused_recovery_codes(u.id).await.unwrap(), 1, "the recovery codes are untouched");
}
