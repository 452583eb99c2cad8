//! Storage conformance for measurement-based care: assessments with their safety alerts and
//! questionnaire-request completion (all or nothing), questionnaire requests, safety alerts,
//! assessment schedules, and the triggers that make the workflow tables change state once.
//! Every behaviour runs on SQLite and PostgreSQL.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use ketacare_db::{AuditCtx, AuditFilter, DbError, Page};
use ketacare_db_tests::fixtures::{self, t0};
use ketacare_db_tests::{both_backends, TestDb};
use ketacare_domain::access::Role;
use ketacare_domain::assessment::{
    Acknowledgement, Anchor, Assessment, FilledBy, QuestionnaireRequest, RequestState, SafetyAlert, Schedule,
};
use ketacare_domain::audit::{Actor, AuditAction, AuditOutcome};
use ketacare_domain::coding::{CodeSystem, Coding};
use ketacare_domain::ids::*;
use ketacare_domain::record::*;
use uuid::Uuid;

// ---------------------------------------------------------------- fixtures

fn ctx_at(user: &ketacare_db::User, at: DateTime<Utc>) -> AuditCtx {
    AuditCtx {
        actor: Actor {
            user_id: Some(user.id),
            username: user.username.as_str().to_owned(),
            role: Some(user.role),
            session_ref: Some("test".into()),
            client_addr: Some("127.0.0.1".into()),
        },
        at,
        purpose: "treatment",
    }
}

fn ctx(user: &ketacare_db::User) -> AuditCtx {
    ctx_at(user, t0())
}

async fn user(db: &TestDb, username: &str, role: Role) -> ketacare_db::User {
    fixtures::user(db, username, username, role).await
}

async fn nurse(db: &TestDb) -> ketacare_db::User {
    user(db, "nurse.jo", Role::Nurse).await
}

async fn register(db: &TestDb, u: &ketacare_db::User, mrn: &str, family: &str) -> PatientId {
    fixtures::patient(db, u, mrn, family, "Ana").await
}

fn prov(u: &ketacare_db::User) -> Provenance {
    Provenance { user_id: u.id, username: u.username.as_str().to_owned(), recorded_at: t0() }
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

/// A PHQ-9 filled in by the patient through a questionnaire link (items 3 and 6 skipped).
fn phq9_by_patient(request: Option<RequestId>) -> ClinicalRecord {
    ClinicalRecord::Assessment(Assessment {
        instrument: "phq9".into(),
        instrument_version: "1".into(),
        answers: vec![Some(1), Some(2), None, Some(0), Some(3), None, Some(1), Some(0), Some(2)],
        taken_at: t0() - Duration::minutes(10),
        filled_by: FilledBy::Patient,
        session: None,
        timepoint: None,
        request,
        note: None,
    })
}

/// A clinician-rated administration at a time point of a treatment session.
fn rated_at_session(session: RecordId) -> ClinicalRecord {
    ClinicalRecord::Assessment(Assessment {
        instrument: "cadss".into(),
        instrument_version: "2024-1".into(),
        answers: vec![Some(0), None, Some(4), Some(1), None],
        taken_at: t0() - Duration::minutes(45),
        filled_by: FilledBy::Clinician,
        session: Some(session),
        timepoint: Some("1h".into()),
        request: None,
        note: Some("rated at chairside\nsecond line".into()),
    })
}

fn diagnosis() -> ClinicalRecord {
    ClinicalRecord::Diagnosis(Diagnosis {
        condition: Coding::new(CodeSystem::SnomedCt, "21897009", "Generalized anxiety disorder").unwrap(),
        icd10: None,
        onset: None,
        status: ClinicalStatus::Active,
        note: None,
    })
}

fn alert(v: &RecordVersion, code: &str, assigned_to: Option<UserId>, raised_at: DateTime<Utc>) -> SafetyAlert {
    SafetyAlert {
        id: AlertId::from_uuid(Uuid::new_v4()),
        patient_id: v.patient_id,
        code: code.into(),
        label: format!("{code}: urgent review"),
        source_record: v.record_id,
        raised_at,
        assigned_to,
        acknowledgement: None,
    }
}

fn request(
    u: &ketacare_db::User,
    patient: PatientId,
    token_hash: &str,
    sent_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> QuestionnaireRequest {
    QuestionnaireRequest {
        id: RequestId::from_uuid(Uuid::new_v4()),
        patient_id: patient,
        instrument: "phq9".into(),
        token_hash: token_hash.into(),
        session: None,
        timepoint: None,
        sent_by: u.id,
        sent_by_name: u.username.as_str().to_owned(),
        sent_at,
        expires_at,
        completed_at: None,
        response: None,
        cancelled_at: None,
    }
}

/// An open request (sent an hour ago, expires in three days).
async fn open_request(db: &TestDb, u: &ketacare_db::User, patient: PatientId, token_hash: &str) -> QuestionnaireRequest {
    let r = request(u, patient, token_hash, t0() - Duration::hours(1), t0() + Duration::hours(72));
    db.store().create_request(&ctx(u), &r).await.unwrap();
    r
}

fn schedule(patient: PatientId, instrument: &str, anchor: Anchor, created_at: DateTime<Utc>) -> Schedule {
    Schedule {
        id: ScheduleId::from_uuid(Uuid::new_v4()),
        patient_id: patient,
        instrument: instrument.into(),
        anchor,
        created_by: "nurse.jo".into(),
        created_at,
        ended_at: None,
    }
}

fn ack(by: &ketacare_db::User, at: DateTime<Utc>, action_taken: &str) -> Acknowledgement {
    Acknowledgement { by: by.id, by_name: by.username.as_str().to_owned(), at, action_taken: action_taken.into() }
}

/// Asserts that a stored version is the one written.
fn assert_same_version(got: &RecordVersion, want: &RecordVersion) {
    assert_eq!(
        (got.record_id, got.version_id, got.version, got.supersedes, got.patient_id, got.action),
        (want.record_id, want.version_id, want.version, want.supersedes, want.patient_id, want.action)
    );
    assert_eq!(got.provenance, want.provenance);
    assert_eq!(got.record, want.record);
}

/// The audit trail of one patient, oldest first.
async fn audit_of(db: &TestDb, u: &ketacare_db::User, patient: PatientId) -> Vec<ketacare_domain::audit::AuditEntry> {
    let f = AuditFilter { patient_id: Some(patient), ascending: true, page: Page { limit: 500, offset: 0 }, ..Default::default() };
    db.store().search_audit(&ctx(u), &f).await.unwrap()
}

/// The audited writes concerning one patient (reads and searches left out), as
/// (action, entity type, entity id), oldest first.
async fn writes_of(db: &TestDb, u: &ketacare_db::User, patient: PatientId) -> Vec<(AuditAction, String, Option<String>)> {
    audit_of(db, u, patient)
        .await
        .into_iter()
        .filter(|e| !matches!(e.event.action, AuditAction::Read | AuditAction::Execute))
        .map(|e| (e.event.action, e.event.entity_type, e.event.entity_id))
        .collect()
}

fn is_conflict<T: std::fmt::Debug>(r: &Result<T, DbError>) -> bool {
    matches!(r, Err(DbError::Conflict(_)))
}

// ---------------------------------------------------------------- suite

both_backends!(
    append_assessment_stores_record_alerts_and_audit,
    completing_a_request_is_single_use_and_all_or_nothing,
    expired_cancelled_foreign_and_unknown_requests_cannot_be_completed,
    concurrent_answers_to_one_request_have_one_winner,
    append_assessment_refuses_other_record_kinds,
    requests_are_found_by_token_hash_and_listed_newest_first,
    cancelling_a_request_happens_once,
    acknowledging_an_alert_happens_once,
    schedules_round_trip_and_end_once,
    workflow_tables_refuse_delete_and_second_changes,
    workflow_calls_that_cannot_be_audited_fail,
    policy_versions_are_numbered_and_the_latest_wins_even_at_one_instant,
);

async fn append_assessment_stores_record_alerts_and_audit(db: &TestDb) {
    let s = db.store();
    let u = nurse(db).await;
    let p = register(db, &u, "KC-0001", "Rivera").await;
    let other = register(db, &u, "KC-0002", "Okafor").await;
    let session = first_version(
        &u,
        p,
        ClinicalRecord::Encounter(Encounter {
            kind: EncounterKind::Screening,
            start: t0() - Duration::hours(2),
            end: None,
            reason: None,
            note: None,
        }),
    );
    s.append_record_version(&ctx(&u), &session).await.unwrap();

    // A clinician-rated form with skipped items at a session time point, raising two alerts.
    let v = first_version(&u, p, rated_at_session(session.record_id));
    let a_old = alert(&v, "cadss_severe", None, t0() - Duration::minutes(1));
    let a_new = alert(&v, "phq9_item9", Some(u.id), t0());
    s.append_assessment(&ctx(&u), &v, &[a_old.clone(), a_new.clone()], None).await.unwrap();
    // A patient-filled form naming a request (not completing one), raising nothing.
    let req = RequestId::from_uuid(Uuid::new_v4());
    let w = first_version(&u, p, phq9_by_patient(Some(req)));
    s.append_assessment(&ctx(&u), &w, &[], None).await.unwrap();

    let got = s.get_record(&ctx(&u), v.record_id).await.unwrap().expect("the assessment is stored");
    assert_same_version(&got, &v);
    let ClinicalRecord::Assessment(a) = &got.record else { panic!("not an assessment: {:?}", got.record) };
    assert_eq!(a.answers, vec![Some(0), None, Some(4), Some(1), None], "skipped items stay None, in item order");
    assert_eq!(a.taken_at, t0() - Duration::minutes(45));
    assert_eq!(
        (a.session, a.timepoint.as_deref(), a.request, a.filled_by),
        (Some(session.record_id), Some("1h"), None, FilledBy::Clinician)
    );
    assert_eq!(a.note.as_deref(), Some("rated at chairside\nsecond line"));
    let got = s.get_record(&ctx(&u), w.record_id).await.unwrap().expect("the second assessment is stored");
    assert_same_version(&got, &w);
    let ClinicalRecord::Assessment(b) = &got.record else { panic!("not an assessment: {:?}", got.record) };
    assert_eq!((b.filled_by, b.request, b.session, b.timepoint.as_deref()), (FilledBy::Patient, Some(req), None, None));
    assert_eq!(b.answers[2], None);
    assert_eq!(s.record_history(&ctx(&u), v.record_id).await.unwrap().len(), 1);
    let kinds: Vec<RecordKind> = s.current_records(&ctx(&u), p).await.unwrap().iter().map(|r| r.record.kind()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == RecordKind::Assessment).count(), 2);

    // The alerts: open, newest first, with their responsible clinician; only for this patient.
    assert_eq!(s.list_alerts(&ctx(&u), Some(p), false).await.unwrap(), vec![a_new.clone(), a_old.clone()]);
    assert_eq!(s.list_alerts(&ctx(&u), Some(p), true).await.unwrap(), vec![a_new.clone(), a_old.clone()]);
    assert_eq!(s.list_alerts(&ctx(&u), None, true).await.unwrap(), vec![a_new.clone(), a_old.clone()]);
    assert!(s.list_alerts(&ctx(&u), Some(other), false).await.unwrap().is_empty());
    assert_eq!(s.count_open_alerts().await.unwrap(), 2);
    let listed = s.list_alerts(&ctx(&u), Some(p), true).await.unwrap();
    assert_eq!(listed[0].assigned_to, Some(u.id));
    assert_eq!(listed[1].assigned_to, None);
    assert!(listed.iter().all(|x| x.acknowledgement.is_none() && x.source_record == v.record_id));

    // Audited: the record and each alert, in the same transaction.
    let writes = writes_of(db, &u, p).await;
    let expect = vec![
        (AuditAction::Create, "Patient".to_owned(), Some(p.to_string())),
        (AuditAction::Create, "Record/encounter".to_owned(), Some(session.record_id.to_string())),
        (AuditAction::Create, "Record/assessment".to_owned(), Some(v.record_id.to_string())),
        (AuditAction::Create, "SafetyAlert".to_owned(), Some(a_old.id.to_string())),
        (AuditAction::Create, "SafetyAlert".to_owned(), Some(a_new.id.to_string())),
        (AuditAction::Create, "Record/assessment".to_owned(), Some(w.record_id.to_string())),
    ];
    assert_eq!(writes, expect);
    let trail = audit_of(db, &u, p).await;
    let alert_row = trail.iter().find(|e| e.event.entity_id.as_deref() == Some(&a_new.id.to_string())).unwrap();
    assert_eq!(alert_row.event.actor.user_id, Some(u.id));
    assert!(alert_row.event.detail.as_deref().unwrap_or("").contains("code=phq9_item9"), "{:?}", alert_row.event.detail);
    assert!(trail.iter().any(|e| e.event.action == AuditAction::Read && e.event.entity_type == "SafetyAlert"), "alert lists are audited");
}

async fn completing_a_request_is_single_use_and_all_or_nothing(db: &TestDb) {
    let s = db.store();
    let u = nurse(db).await;
    let p = register(db, &u, "KC-0001", "Rivera").await;
    let r = open_request(db, &u, p, "5f1e0c").await;
    assert_eq!(r.state(t0()), RequestState::Open);

    let v1 = first_version(&u, p, phq9_by_patient(Some(r.id)));
    let a1 = alert(&v1, "phq9_item9", Some(r.sent_by), t0());
    s.append_assessment(&ctx(&u), &v1, std::slice::from_ref(&a1), Some(r.id)).await.unwrap();

    let done = s.find_request_by_token(&ctx(&u), "5f1e0c").await.unwrap().expect("request");
    assert_eq!(done.completed_at, Some(t0()), "completed at ctx.at");
    assert_eq!(done.response, Some(v1.record_id));
    assert_eq!(done.cancelled_at, None);
    assert_eq!(done.state(t0() + Duration::days(30)), RequestState::Completed);
    assert_eq!(done, QuestionnaireRequest { completed_at: Some(t0()), response: Some(v1.record_id), ..r.clone() });
    assert_same_version(&s.get_record(&ctx(&u), v1.record_id).await.unwrap().unwrap(), &v1);
    assert_eq!(s.list_alerts(&ctx(&u), Some(p), false).await.unwrap(), vec![a1.clone()]);
    let writes = writes_of(db, &u, p).await;
    assert!(writes.contains(&(AuditAction::Update, "QuestionnaireRequest".to_owned(), Some(r.id.to_string()))), "{writes:?}");

    // The same link answered a second time: refused, and nothing of it remains.
    let v2 = first_version(&u, p, phq9_by_patient(Some(r.id)));
    let a2 = alert(&v2, "phq9_item9", Some(r.sent_by), t0() + Duration::minutes(1));
    let again = s.append_assessment(&ctx_at(&u, t0() + Duration::minutes(1)), &v2, std::slice::from_ref(&a2), Some(r.id)).await;
    assert!(is_conflict(&again), "{again:?}");
    assert!(s.get_record(&ctx(&u), v2.record_id).await.unwrap().is_none(), "the refused answer's record version must not be stored");
    assert!(s.record_history(&ctx(&u), v2.record_id).await.unwrap().is_empty());
    assert_eq!(s.list_alerts(&ctx(&u), Some(p), false).await.unwrap(), vec![a1], "the refused answer's alert must not be stored");
    assert_eq!(s.count_open_alerts().await.unwrap(), 1);
    assert_eq!(writes_of(db, &u, p).await, writes, "no audit row for a write that did not happen");
    assert_eq!(s.find_request_by_token(&ctx(&u), "5f1e0c").await.unwrap().unwrap(), done, "the completion is unchanged");
}

async fn expired_cancelled_foreign_and_unknown_requests_cannot_be_completed(db: &TestDb) {
    let s = db.store();
    let u = nurse(db).await;
    let p = register(db, &u, "KC-0001", "Rivera").await;
    let other = register(db, &u, "KC-0002", "Okafor").await;

    let expires_now = request(&u, p, "expires-now", t0() - Duration::hours(72), t0());
    let expired = request(&u, p, "expired", t0() - Duration::hours(73), t0() - Duration::seconds(1));
    let cancelled = request(&u, p, "cancelled", t0() - Duration::hours(1), t0() + Duration::hours(72));
    let foreign = request(&u, other, "foreign", t0() - Duration::hours(1), t0() + Duration::hours(72));
    let open = request(&u, p, "open", t0() - Duration::hours(72), t0() + Duration::seconds(1));
    for r in [&expires_now, &expired, &cancelled, &foreign, &open] {
        s.create_request(&ctx(&u), r).await.unwrap();
    }
    s.cancel_request(&ctx_at(&u, t0() - Duration::minutes(30)), cancelled.id, u.id).await.unwrap();

    let unknown = RequestId::from_uuid(Uuid::new_v4());
    let before = writes_of(db, &u, p).await;
    for (what, rid) in [
        ("expires exactly now", expires_now.id),
        ("expired a second ago", expired.id),
        ("cancelled", cancelled.id),
        ("another patient's", foreign.id),
        ("unknown", unknown),
    ] {
        let v = first_version(&u, p, phq9_by_patient(Some(rid)));
        let a = alert(&v, "phq9_item9", Some(u.id), t0());
        let r = s.append_assessment(&ctx(&u), &v, &[a], Some(rid)).await;
        assert!(is_conflict(&r), "{what} request must not be completed: {r:?}");
        assert!(s.get_record(&ctx(&u), v.record_id).await.unwrap().is_none(), "{what}: record version left behind");
        assert_eq!(s.count_open_alerts().await.unwrap(), 0, "{what}: alert left behind");
        assert_eq!(writes_of(db, &u, p).await, before, "{what}: audit rows left behind");
    }
    for (r, cancelled_at) in [(&expires_now, None), (&expired, None), (&cancelled, Some(t0() - Duration::minutes(30))), (&foreign, None)] {
        let stored = s.find_request_by_token(&ctx(&u), &r.token_hash).await.unwrap().unwrap();
        assert_eq!(stored, QuestionnaireRequest { cancelled_at, ..(*r).clone() }, "{} must be unchanged", r.token_hash);
    }
    assert!(s.list_alerts(&ctx(&u), None, false).await.unwrap().is_empty());

    // Control: a request that expires a second after ctx.at can still be completed.
    let v = first_version(&u, p, phq9_by_patient(Some(open.id)));
    s.append_assessment(&ctx(&u), &v, &[], Some(open.id)).await.unwrap();
    let stored = s.find_request_by_token(&ctx(&u), "open").await.unwrap().unwrap();
    assert_eq!((stored.completed_at, stored.response), (Some(t0()), Some(v.record_id)));
}

async fn concurrent_answers_to_one_request_have_one_winner(db: &TestDb) {
    let s = db.store();
    let u = nurse(db).await;
    let p = register(db, &u, "KC-0001", "Rivera").await;
    let r = open_request(db, &u, p, "race").await;
    let v1 = first_version(&u, p, phq9_by_patient(Some(r.id)));
    let v2 = first_version(&u, p, phq9_by_patient(Some(r.id)));
    let a1 = alert(&v1, "phq9_item9", Some(u.id), t0());
    let a2 = alert(&v2, "phq9_item9", Some(u.id), t0());
    let (s1, s2) = (s.clone(), s.clone());
    let c = ctx(&u);
    let (x, y) = tokio::join!(
        s1.append_assessment(&c, &v1, std::slice::from_ref(&a1), Some(r.id)),
        s2.append_assessment(&c, &v2, std::slice::from_ref(&a2), Some(r.id)),
    );
    assert!(x.is_ok() ^ y.is_ok(), "exactly one of two concurrent answers wins: {x:?} {y:?}");
    let loser_result = if x.is_ok() { &y } else { &x };
    assert!(is_conflict(loser_result), "{loser_result:?}");
    let (winner, loser) = if x.is_ok() { (&v1, &v2) } else { (&v2, &v1) };
    assert!(s.get_record(&ctx(&u), winner.record_id).await.unwrap().is_some());
    assert!(s.get_record(&ctx(&u), loser.record_id).await.unwrap().is_none());
    assert_eq!(s.count_open_alerts().await.unwrap(), 1);
    let stored = s.find_request_by_token(&ctx(&u), "race").await.unwrap().unwrap();
    assert_eq!(stored.response, Some(winner.record_id));
}

async fn append_assessment_refuses_other_record_kinds(db: &TestDb) {
    let s = db.store();
    let u = nurse(db).await;
    let p = register(db, &u, "KC-0001", "Rivera").await;
    let r = open_request(db, &u, p, "not-an-assessment").await;
    let before = writes_of(db, &u, p).await;
    let v = first_version(&u, p, diagnosis());
    let a = alert(&v, "phq9_item9", Some(u.id), t0());
    let res = s.append_assessment(&ctx(&u), &v, &[a], Some(r.id)).await;
    assert!(is_conflict(&res), "{res:?}");
    assert!(s.get_record(&ctx(&u), v.record_id).await.unwrap().is_none());
    assert_eq!(s.count_open_alerts().await.unwrap(), 0);
    assert_eq!(s.find_request_by_token(&ctx(&u), "not-an-assessment").await.unwrap().unwrap(), r, "the request stays open");
    assert_eq!(writes_of(db, &u, p).await, before);
    // The same diagnosis is accepted by the ordinary record path.
    s.append_record_version(&ctx(&u), &v).await.unwrap();
}

async fn requests_are_found_by_token_hash_and_listed_newest_first(db: &TestDb) {
    let s = db.store();
    let u = nurse(db).await;
    let p = register(db, &u, "KC-0001", "Rivera").await;
    let other = register(db, &u, "KC-0002", "Okafor").await;
    let session = RecordId::from_uuid(Uuid::new_v4());
    let oldest = request(&u, p, "a1", t0() - Duration::hours(3), t0() + Duration::hours(69));
    let newest = QuestionnaireRequest {
        session: Some(session),
        timepoint: Some("24h".into()),
        instrument: "gad7".into(),
        ..request(&u, p, "b2", t0() - Duration::hours(1), t0() + Duration::hours(71))
    };
    let middle = request(&u, p, "c3", t0() - Duration::hours(2), t0() + Duration::hours(70));
    let elsewhere = request(&u, other, "d4", t0(), t0() + Duration::hours(72));
    for r in [&oldest, &newest, &middle, &elsewhere] {
        s.create_request(&ctx(&u), r).await.unwrap();
    }

    assert_eq!(s.find_request_by_token(&ctx(&u), "b2").await.unwrap(), Some(newest.clone()));
    assert_eq!(s.find_request_by_token(&ctx(&u), "a1").await.unwrap(), Some(oldest.clone()));
    assert_eq!(s.find_request_by_token(&ctx(&u), "no-such-hash").await.unwrap(), None);
    assert_eq!(s.find_request_by_token(&ctx(&u), "B2").await.unwrap(), None, "hashes match exactly");
    assert_eq!(s.list_requests(&ctx(&u), p).await.unwrap(), vec![newest.clone(), middle.clone(), oldest.clone()]);
    assert_eq!(s.list_requests(&ctx(&u), other).await.unwrap(), vec![elsewhere.clone()]);

    // A token hash identifies one request.
    let dup = request(&u, p, "b2", t0(), t0() + Duration::hours(72));
    let r = s.create_request(&ctx(&u), &dup).await;
    assert!(is_conflict(&r), "{r:?}");
    let dup_other = request(&u, other, "a1", t0(), t0() + Duration::hours(72));
    assert!(is_conflict(&s.create_request(&ctx(&u), &dup_other).await));
    assert_eq!(s.list_requests(&ctx(&u), p).await.unwrap().len(), 3);
    assert_eq!(s.list_requests(&ctx(&u), other).await.unwrap().len(), 1);

    // Audited: each creation, and each lookup by link (a miss as not found).
    let writes = writes_of(db, &u, p).await;
    let created: Vec<Option<String>> =
        writes.iter().filter(|w| w.0 == AuditAction::Create && w.1 == "QuestionnaireRequest").map(|w| w.2.clone()).collect();
    assert_eq!(created, vec![Some(oldest.id.to_string()), Some(newest.id.to_string()), Some(middle.id.to_string())]);
    let f = AuditFilter { entity_type: Some("QuestionnaireRequest".into()), outcome: Some(AuditOutcome::NotFound), ..Default::default() };
    assert_eq!(s.search_audit(&ctx(&u), &f).await.unwrap().len(), 2);
}

async fn cancelling_a_request_happens_once(db: &TestDb) {
    let s = db.store();
    let u = nurse(db).await;
    let p = register(db, &u, "KC-0001", "Rivera").await;
    let r = open_request(db, &u, p, "to-cancel").await;
    let at = t0() + Duration::minutes(5);
    s.cancel_request(&ctx_at(&u, at), r.id, u.id).await.unwrap();
    let stored = s.find_request_by_token(&ctx(&u), "to-cancel").await.unwrap().unwrap();
    assert_eq!(stored, QuestionnaireRequest { cancelled_at: Some(at), ..r.clone() });
    assert_eq!(stored.state(at), RequestState::Cancelled);

    let again = s.cancel_request(&ctx_at(&u, at + Duration::minutes(5)), r.id, u.id).await;
    assert!(is_conflict(&again), "{again:?}");
    assert_eq!(s.find_request_by_token(&ctx(&u), "to-cancel").await.unwrap().unwrap().cancelled_at, Some(at), "first cancellation kept");
    let unknown = s.cancel_request(&ctx(&u), RequestId::from_uuid(Uuid::new_v4()), u.id).await;
    assert!(matches!(unknown, Err(DbError::NotFound)), "{unknown:?}");

    // An answered request cannot be withdrawn.
    let answered = open_request(db, &u, p, "answered").await;
    let v = first_version(&u, p, phq9_by_patient(Some(answered.id)));
    s.append_assessment(&ctx(&u), &v, &[], Some(answered.id)).await.unwrap();
    let late = s.cancel_request(&ctx_at(&u, at), answered.id, u.id).await;
    assert!(is_conflict(&late), "{late:?}");
    assert_eq!(s.find_request_by_token(&ctx(&u), "answered").await.unwrap().unwrap().cancelled_at, None);

    let updates: Vec<_> = writes_of(db, &u, p).await.into_iter().filter(|w| w.0 == AuditAction::Update).collect();
    assert_eq!(
        updates,
        vec![
            (AuditAction::Update, "QuestionnaireRequest".to_owned(), Some(r.id.to_string())),
            (AuditAction::Update, "QuestionnaireRequest".to_owned(), Some(answered.id.to_string())),
        ],
        "one audited cancellation and one completion"
    );
}

async fn acknowledging_an_alert_happens_once(db: &TestDb) {
    let s = db.store();
    let u = nurse(db).await;
    let dr = user(db, "dr.lee", Role::Prescriber).await;
    let p = register(db, &u, "KC-0001", "Rivera").await;
    let other = register(db, &u, "KC-0002", "Okafor").await;
    let v = first_version(&u, p, phq9_by_patient(None));
    let a1 = alert(&v, "phq9_item9", Some(dr.id), t0() - Duration::minutes(2));
    let a2 = alert(&v, "phq9_total_severe", Some(dr.id), t0() - Duration::minutes(1));
    s.append_assessment(&ctx(&u), &v, &[a1.clone(), a2.clone()], None).await.unwrap();
    let w = first_version(&u, other, phq9_by_patient(None));
    let a3 = alert(&w, "phq9_item9", None, t0());
    s.append_assessment(&ctx(&u), &w, std::slice::from_ref(&a3), None).await.unwrap();
    assert_eq!(s.count_open_alerts().await.unwrap(), 3);

    let given = ack(&dr, t0() + Duration::minutes(30), "called the patient, safety plan reviewed, no current intent");
    let acked = s.acknowledge_alert(&ctx_at(&dr, t0() + Duration::minutes(30)), a1.id, &given).await.unwrap();
    let a1_acked = SafetyAlert { acknowledgement: Some(given.clone()), ..a1.clone() };
    assert_eq!(acked, a1_acked);
    assert_eq!(s.count_open_alerts().await.unwrap(), 2);
    assert_eq!(s.list_alerts(&ctx(&u), None, true).await.unwrap(), vec![a3.clone(), a2.clone()]);
    assert_eq!(s.list_alerts(&ctx(&u), Some(p), true).await.unwrap(), vec![a2.clone()]);
    assert_eq!(s.list_alerts(&ctx(&u), Some(p), false).await.unwrap(), vec![a2.clone(), a1_acked.clone()]);
    assert_eq!(s.list_alerts(&ctx(&u), None, false).await.unwrap(), vec![a3.clone(), a2.clone(), a1_acked.clone()]);

    let second = ack(&u, t0() + Duration::minutes(40), "something else");
    let again = s.acknowledge_alert(&ctx_at(&u, t0() + Duration::minutes(40)), a1.id, &second).await;
    assert!(is_conflict(&again), "{again:?}");
    assert_eq!(s.list_alerts(&ctx(&u), Some(p), false).await.unwrap()[1], a1_acked, "the first acknowledgement is kept");
    assert_eq!(s.count_open_alerts().await.unwrap(), 2);
    let unknown = s.acknowledge_alert(&ctx(&dr), AlertId::from_uuid(Uuid::new_v4()), &given).await;
    assert!(matches!(unknown, Err(DbError::NotFound)), "{unknown:?}");
    assert_eq!(s.count_open_alerts().await.unwrap(), 2);

    let trail = audit_of(db, &u, p).await;
    let acks: Vec<_> = trail.iter().filter(|e| e.event.action == AuditAction::Update && e.event.entity_type == "SafetyAlert").collect();
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].event.entity_id, Some(a1.id.to_string()));
    assert_eq!(acks[0].event.actor.user_id, Some(dr.id));
    assert!(
        !acks[0].event.detail.as_deref().unwrap_or("").contains("safety plan"),
        "the free-text action is clinical content and stays out of the audit detail"
    );
}

async fn schedules_round_trip_and_end_once(db: &TestDb) {
    let s = db.store();
    let u = nurse(db).await;
    let p = register(db, &u, "KC-0001", "Rivera").await;
    let other = register(db, &u, "KC-0002", "Okafor").await;
    let by_session =
        schedule(p, "cadss", Anchor::Session { timepoints: vec!["pre".into(), "1h".into(), "24h".into()] }, t0() - Duration::days(1));
    let single = schedule(p, "vas_anxiety", Anchor::Session { timepoints: vec!["pre".into()] }, t0() - Duration::hours(1));
    let by_calendar =
        schedule(p, "phq9", Anchor::Calendar { interval_days: 14, start: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap() }, t0());
    let elsewhere =
        schedule(other, "gad7", Anchor::Calendar { interval_days: 7, start: NaiveDate::from_ymd_opt(2026, 11, 26).unwrap() }, t0());
    // Created out of order: the list is by creation time, not by insertion.
    for sc in [&by_calendar, &elsewhere, &by_session, &single] {
        s.create_schedule(&ctx(&u), sc, u.id).await.unwrap();
    }
    assert_eq!(s.list_schedules(&ctx(&u), p).await.unwrap(), vec![by_session.clone(), single.clone(), by_calendar.clone()]);
    assert_eq!(s.list_schedules(&ctx(&u), other).await.unwrap(), vec![elsewhere.clone()]);
    let dup = s.create_schedule(&ctx(&u), &by_session, u.id).await;
    assert!(is_conflict(&dup), "{dup:?}");

    let at = t0() + Duration::hours(1);
    s.end_schedule(&ctx_at(&u, at), by_session.id, u.id).await.unwrap();
    let listed = s.list_schedules(&ctx(&u), p).await.unwrap();
    assert_eq!(listed, vec![Schedule { ended_at: Some(at), ..by_session.clone() }, single.clone(), by_calendar.clone()]);
    let again = s.end_schedule(&ctx_at(&u, at + Duration::hours(1)), by_session.id, u.id).await;
    assert!(is_conflict(&again), "{again:?}");
    assert_eq!(s.list_schedules(&ctx(&u), p).await.unwrap()[0].ended_at, Some(at), "the first end is kept");
    let unknown = s.end_schedule(&ctx(&u), ScheduleId::from_uuid(Uuid::new_v4()), u.id).await;
    assert!(matches!(unknown, Err(DbError::NotFound)), "{unknown:?}");
    s.end_schedule(&ctx_at(&u, at), by_calendar.id, u.id).await.unwrap();
    assert_eq!(s.list_schedules(&ctx(&u), p).await.unwrap()[2].ended_at, Some(at));

    let writes: Vec<_> = writes_of(db, &u, p).await.into_iter().filter(|w| w.1 == "AssessmentSchedule").map(|w| (w.0, w.2)).collect();
    assert_eq!(
        writes,
        vec![
            (AuditAction::Create, Some(by_calendar.id.to_string())),
            (AuditAction::Create, Some(by_session.id.to_string())),
            (AuditAction::Create, Some(single.id.to_string())),
            (AuditAction::Update, Some(by_session.id.to_string())),
            (AuditAction::Update, Some(by_calendar.id.to_string())),
        ]
    );
}

async fn workflow_tables_refuse_delete_and_second_changes(db: &TestDb) {
    let s = db.store();
    let u = nurse(db).await;
    let p = register(db, &u, "KC-0001", "Rivera").await;
    let completed = open_request(db, &u, p, "completed").await;
    let cancelled = open_request(db, &u, p, "cancelled").await;
    let v = first_version(&u, p, phq9_by_patient(Some(completed.id)));
    let a = alert(&v, "phq9_item9", Some(u.id), t0());
    s.append_assessment(&ctx(&u), &v, std::slice::from_ref(&a), Some(completed.id)).await.unwrap();
    s.cancel_request(&ctx(&u), cancelled.id, u.id).await.unwrap();
    s.acknowledge_alert(&ctx(&u), a.id, &ack(&u, t0(), "called the patient")).await.unwrap();
    let sc = schedule(p, "phq9", Anchor::Session { timepoints: vec!["pre".into()] }, t0());
    s.create_schedule(&ctx(&u), &sc, u.id).await.unwrap();
    s.end_schedule(&ctx(&u), sc.id, u.id).await.unwrap();

    for table in ["safety_alerts", "questionnaire_requests", "assessment_schedules"] {
        let sql = format!("DELETE FROM {table}");
        let r = db.exec_raw(&sql).await;
        assert!(r.as_ref().is_err_and(|e| e.contains("append-only")), "{sql} must be refused on {}: {r:?}", db.backend());
    }
    let (alert_id, done_id, cancelled_id, schedule_id) =
        (a.id.to_string(), completed.id.to_string(), cancelled.id.to_string(), sc.id.to_string());
    for (table, set, id) in [
        ("safety_alerts", "action_taken = 'nothing'", &alert_id),
        ("safety_alerts", "acknowledged_at = NULL, acknowledged_by = NULL, acknowledged_by_name = NULL, action_taken = NULL", &alert_id),
        ("questionnaire_requests", "response_record_id = NULL", &done_id),
        ("questionnaire_requests", "completed_at = NULL, response_record_id = NULL", &done_id),
        ("questionnaire_requests", "cancelled_at = NULL", &cancelled_id),
        ("assessment_schedules", "ended_at = NULL", &schedule_id),
        ("assessment_schedules", "instrument = 'gad7'", &schedule_id),
    ] {
        let sql = format!("UPDATE {table} SET {set} WHERE id = '{id}'");
        let r = db.exec_raw(&sql).await;
        assert!(r.as_ref().is_err_and(|e| e.contains("cannot change")), "{sql} must be refused on {}: {r:?}", db.backend());
    }

    // Everything is still there, unchanged.
    let alerts = s.list_alerts(&ctx(&u), Some(p), false).await.unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].acknowledgement.as_ref().map(|k| k.action_taken.as_str()), Some("called the patient"));
    let requests = s.list_requests(&ctx(&u), p).await.unwrap();
    assert_eq!(requests.len(), 2);
    let c = requests.iter().find(|r| r.id == completed.id).unwrap();
    assert_eq!((c.completed_at, c.response), (Some(t0()), Some(v.record_id)));
    assert_eq!(requests.iter().find(|r| r.id == cancelled.id).unwrap().cancelled_at, Some(t0()));
    assert_eq!(s.list_schedules(&ctx(&u), p).await.unwrap(), vec![Schedule { ended_at: Some(t0()), ..sc }]);
}

async fn workflow_calls_that_cannot_be_audited_fail(db: &TestDb) {
    let s = db.store();
    let u = nurse(db).await;
    let p = register(db, &u, "KC-0001", "Rivera").await;
    let r = open_request(db, &u, p, "link").await;
    let v = first_version(&u, p, phq9_by_patient(None));
    s.append_assessment(&ctx(&u), &v, &[alert(&v, "phq9_item9", Some(u.id), t0())], None).await.unwrap();
    db.exec_raw("DROP TABLE audit_log").await.unwrap();

    assert!(s.list_alerts(&ctx(&u), None, true).await.is_err(), "an alert list without its audit row must fail");
    assert!(s.list_requests(&ctx(&u), p).await.is_err());
    assert!(s.find_request_by_token(&ctx(&u), "link").await.is_err());
    assert!(s.list_schedules(&ctx(&u), p).await.is_err());
    // A write that cannot be audited leaves nothing behind.
    let w = first_version(&u, p, phq9_by_patient(Some(r.id)));
    assert!(s.append_assessment(&ctx(&u), &w, &[alert(&w, "phq9_item9", Some(u.id), t0())], Some(r.id)).await.is_err());
    assert_eq!(s.count_open_alerts().await.unwrap(), 1, "count_open_alerts needs no audit row and sees no new alert");
    assert!(s
        .create_schedule(&ctx(&u), &schedule(p, "phq9", Anchor::Session { timepoints: vec!["pre".into()] }, t0()), u.id)
        .await
        .is_err());
}

async fn policy_versions_are_numbered_and_the_latest_wins_even_at_one_instant(db: &TestDb) {
    let s = db.store();
    let u = user(db, "dr.mira", Role::MedicalDirector).await;
    let pv = |key: &str, value: Option<&str>, reason: &str| ketacare_db::PolicyVersion {
        key: key.into(),
        value: value.map(str::to_owned),
        reason: reason.into(),
        set_by: u.id,
        set_by_name: "dr.mira".into(),
        set_at: t0(),
    };
    assert!(s.current_policies().await.unwrap().is_empty());
    // Three changes of one key at the same instant (a fixed clock, or two servers): the last wins.
    s.set_policy(&ctx(&u), &pv("instrument.gad7.wording", Some("v1"), "first")).await.unwrap();
    s.set_policy(&ctx(&u), &pv("instrument.gad7.response_percent", Some("40"), "local")).await.unwrap();
    s.set_policy(&ctx(&u), &pv("instrument.gad7.wording", Some("v2"), "second")).await.unwrap();
    s.set_policy(&ctx(&u), &pv("instrument.gad7.wording", None, "withdrawn")).await.unwrap();
    let cur = s.current_policies().await.unwrap();
    assert_eq!(cur.len(), 2, "one current version per key: {cur:?}");
    let w = cur.iter().find(|p| p.key == "instrument.gad7.wording").unwrap();
    assert_eq!((w.value.as_deref(), w.reason.as_str()), (None, "withdrawn"));
    assert_eq!(cur.iter().find(|p| p.key == "instrument.gad7.response_percent").unwrap().value.as_deref(), Some("40"));
    // A long value is audited by its size, not copied into the audit trail.
    let long = "x".repeat(500);
    s.set_policy(&ctx(&u), &pv("instrument.phq9.wording", Some(&long), "licence 7")).await.unwrap();
    let f = AuditFilter { entity_type: Some("ClinicPolicy".into()), page: Page { limit: 50, offset: 0 }, ..Default::default() };
    let page = s.search_audit(&ctx(&u), &f).await.unwrap();
    let details: Vec<String> = page.iter().filter_map(|e| e.event.detail.clone()).collect();
    assert_eq!(details.len(), 5, "every change audited: {details:?}");
    assert!(details.iter().any(|d| d.ends_with("value=(500 characters)")), "{details:?}");
    // Append-only, and numbered.
    for sql in ["UPDATE policy_versions SET value = 'x'", "DELETE FROM policy_versions"] {
        let r = db.exec_raw(sql).await;
        assert!(r.as_ref().is_err_and(|e| e.contains("append-only")), "{sql} must be refused on {}: {r:?}", db.backend());
    }
    let dup = "INSERT INTO policy_versions (id, key, value, reason, set_by, set_by_name, set_at, version) \
               SELECT 'dup', key, value, reason, set_by, set_by_name, set_at, version FROM policy_versions WHERE key = 'instrument.gad7.response_percent'";
    assert!(db.exec_raw(dup).await.is_err(), "a version number is used once per key on {}", db.backend());
}
