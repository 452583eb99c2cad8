//! Storage of treatment sessions on both backends: steps guarded by the event number, one
//! active session per chair and per monitor, the signed note locked (addenda only), readings
//! stored once even when a monitor resends, alarms raised, acknowledged and cleared once, and
//! change notification between servers (PostgreSQL).

use chrono::Duration;
use ketacare_db::session::*;
use ketacare_db::{AuditFilter, DbError, Page, User};
use ketacare_db_tests::fixtures::{self, ctx, t0};
use ketacare_db_tests::{both_backends, TestDb};
use ketacare_domain::access::Role;
use ketacare_domain::ids::*;
use ketacare_domain::session::{Level, Phase, Vital};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

both_backends!(
    steps_are_numbered_chairs_and_monitors_are_exclusive_and_a_signed_session_is_locked,
    readings_are_stored_once_and_read_back_in_order,
    alarms_are_raised_once_per_rule_acknowledged_once_and_cleared_once,
    other_servers_hear_session_changes_on_postgres
);

async fn setup(db: &TestDb, mrn: &str) -> (User, PatientId) {
    let u = fixtures::user(db, &format!("nina.{}", mrn.to_lowercase()), "Nina Nurse", Role::Nurse).await;
    let id = fixtures::patient(db, &u, mrn, "Quill", "Ada").await;
    (u, id)
}

fn session(u: &User, patient: PatientId, chair: &str, device: Option<&str>) -> TreatmentSession {
    TreatmentSession {
        id: RecordId::from_uuid(Uuid::new_v4()),
        patient_id: patient,
        chair: chair.into(),
        device_id: device.map(str::to_owned),
        order_id: None,
        phase: Phase::Scheduled,
        seq: 1,
        created_at: t0(),
        scheduled_at: t0(),
        created_by: u.id,
        created_by_name: "Nina Nurse".into(),
        bound_at: device.map(|_| t0()),
        baseline: (None, None),
        dose_started_at: None,
        dose_ended_at: None,
        signed_at: None,
        signed_by_name: None,
    }
}

fn event(u: &User, s: &TreatmentSession, kind: &str, detail: &str) -> SessionEvent {
    SessionEvent {
        id: Uuid::new_v4(),
        session_id: s.id,
        seq: s.seq,
        kind: kind.into(),
        at: t0() + Duration::minutes(s.seq),
        user_id: u.id,
        by_name: "Nina Nurse".into(),
        phase: s.phase,
        detail: detail.into(),
        reason: None,
    }
}

async fn step(db: &TestDb, u: &User, s: &mut TreatmentSession, phase: Phase, kind: &str) -> Result<(), DbError> {
    let mut next = s.clone();
    next.phase = phase;
    next.seq += 1;
    let ev = event(u, &next, kind, phase.code());
    db.store().append_session_event(&ctx(u), &next, &ev).await?;
    *s = next;
    Ok(())
}

async fn steps_are_numbered_chairs_and_monitors_are_exclusive_and_a_signed_session_is_locked(db: &TestDb) {
    let st = db.store();
    let (u, p) = setup(db, "SE-0001").await;
    let mut s = session(&u, p, "ROOM1^CHAIR1", Some("0123456789ABCDEF"));
    st.create_treatment_session(&ctx(&u), &s, &event(&u, &s, "created", "booked")).await.unwrap();
    assert_eq!(st.get_treatment_session(&ctx(&u), s.id).await.unwrap().unwrap(), s, "round trip on {}", db.backend());

    // Another session on the same chair, or with the same monitor, while this one is active.
    let other = session(&u, p, "ROOM1^CHAIR1", None);
    let r = st.create_treatment_session(&ctx(&u), &other, &event(&u, &other, "created", "booked")).await;
    assert!(matches!(r, Err(DbError::Conflict(_))), "chair taken: {r:?}");
    let (u2, p2) = setup(db, "SE-0101").await;
    let other = session(&u2, p2, "ROOM1^CHAIR2", Some("0123456789ABCDEF"));
    let r = st.create_treatment_session(&ctx(&u2), &other, &event(&u2, &other, "created", "booked")).await;
    assert!(matches!(r, Err(DbError::Conflict(_))), "monitor taken: {r:?}");
    let other = session(&u2, p, "ROOM1^CHAIR9", None);
    let r = st.create_treatment_session(&ctx(&u2), &other, &event(&u2, &other, "created", "booked")).await;
    assert!(matches!(r, Err(DbError::Conflict(_))), "one active session per patient: {r:?}");

    step(db, &u, &mut s, Phase::CheckedIn, "step").await.unwrap();
    // A second writer working from the old number loses.
    let mut stale = s.clone();
    stale.seq -= 1;
    let r = step(db, &u, &mut stale, Phase::Cancelled, "step").await;
    assert!(matches!(r, Err(DbError::Conflict(_))), "stale step: {r:?}");

    // Binding: by device id first, else by location.
    let by_dev = st.session_for_monitor(Some("0123456789ABCDEF"), Some("elsewhere")).await.unwrap().unwrap();
    assert_eq!(by_dev.id, s.id);
    let by_loc = st.session_for_monitor(Some("FFFF"), Some("ROOM1^CHAIR1")).await.unwrap().unwrap();
    assert_eq!(by_loc.id, s.id);
    assert!(st.session_for_monitor(Some("FFFF"), Some("ROOM9")).await.unwrap().is_none());
    assert_eq!(st.active_sessions(&ctx(&u)).await.unwrap().len(), 1);

    for ph in [Phase::PreDoseChecks, Phase::Dosing, Phase::Monitoring, Phase::Recovery, Phase::Discharged] {
        step(db, &u, &mut s, ph, "step").await.unwrap();
    }
    // Sign: the note is locked from now on.
    let mut signed = s.clone();
    signed.seq += 1;
    signed.signed_at = Some(t0() + Duration::hours(3));
    signed.signed_by_name = Some("Dr Pia".into());
    st.append_session_event(&ctx(&u), &signed, &event(&u, &signed, "signed", "discharge signed")).await.unwrap();
    s = signed;
    assert!(st.active_sessions(&ctx(&u)).await.unwrap().is_empty(), "a discharged session leaves its chair");
    assert!(st.session_for_monitor(Some("0123456789ABCDEF"), None).await.unwrap().is_none());
    // The chair is free again.
    let next = session(&u, p, "ROOM1^CHAIR1", Some("0123456789ABCDEF"));
    st.create_treatment_session(&ctx(&u), &next, &event(&u, &next, "created", "booked")).await.unwrap();

    let r = step(db, &u, &mut s.clone(), Phase::Recovery, "step").await;
    assert!(matches!(r, Err(DbError::Conflict(_))), "a signed session cannot change phase: {r:?}");
    // An addendum is an event that changes nothing else.
    let mut add = s.clone();
    add.seq += 1;
    st.append_session_event(&ctx(&u), &add, &event(&u, &add, "addendum", "patient phoned: well at home")).await.unwrap();
    let evs = st.session_events(&ctx(&u), s.id).await.unwrap();
    assert_eq!(evs.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=9).collect::<Vec<_>>());
    assert_eq!(evs.last().unwrap().kind, "addendum");
    assert_eq!(st.patient_sessions(&ctx(&u), p).await.unwrap().len(), 2);

    // The lock holds against the database itself: no column but the event number may change,
    // not even by setting the signature back to NULL.
    for sql in [
        "UPDATE treatment_sessions SET seq = seq + 1, signed_at = NULL",
        "UPDATE treatment_sessions SET seq = seq + 1, baseline_sbp = 120",
        "UPDATE treatment_sessions SET seq = seq + 1, signed_by_name = 'someone else'",
        "UPDATE treatment_sessions SET seq = seq + 1, chair = 'X'",
    ] {
        let sql = format!("{sql} WHERE id = '{}'", s.id);
        assert!(db.exec_raw(&sql).await.is_err(), "{sql} must be refused on {}", db.backend());
    }
    for sql in ["UPDATE session_events SET detail = 'x'", "DELETE FROM session_events", "DELETE FROM treatment_sessions"] {
        assert!(db.exec_raw(sql).await.is_err(), "{sql} must be refused on {}", db.backend());
    }
    let audit = st
        .search_audit(
            &ctx(&u),
            &AuditFilter { entity_type: Some("TreatmentSession".into()), page: Page { limit: 100, offset: 0 }, ..Default::default() },
        )
        .await
        .unwrap();
    assert!(audit.len() >= 10, "creates, steps and reads are audited: {}", audit.len());
}

fn reading(s: &TreatmentSession, vital: Vital, value: &str, secs: i64, source: ReadingSource) -> SessionReading {
    SessionReading {
        id: Uuid::new_v4(),
        session_id: s.id,
        patient_id: s.patient_id,
        vital,
        value: value.parse().unwrap(),
        observed_at: t0() + Duration::seconds(secs),
        received_at: t0() + Duration::seconds(secs + 1),
        source,
        device_id: Some("0123456789ABCDEF".into()),
        message_id: Some(format!("MSG{secs}")),
        recorded_by_name: "monitor gateway".into(),
    }
}

async fn readings_are_stored_once_and_read_back_in_order(db: &TestDb) {
    let st = db.store();
    let (u, p) = setup(db, "SE-0002").await;
    let s = session(&u, p, "ROOM1^CHAIR3", None);
    st.create_treatment_session(&ctx(&u), &s, &event(&u, &s, "created", "booked")).await.unwrap();
    let first = SessionWrite {
        readings: vec![
            reading(&s, Vital::Systolic, "128", 0, ReadingSource::Hl7),
            reading(&s, Vital::HeartRate, "72", 0, ReadingSource::Hl7),
        ],
        ..Default::default()
    };
    assert_eq!(st.write_session_input(&ctx(&u), &first).await.unwrap(), 2);
    // The monitor lost our ACK and resends the same message: stored once.
    let resent = SessionWrite {
        readings: vec![
            reading(&s, Vital::Systolic, "128", 0, ReadingSource::Hl7),
            reading(&s, Vital::HeartRate, "72", 0, ReadingSource::Hl7),
        ],
        ..Default::default()
    };
    assert_eq!(st.write_session_input(&ctx(&u), &resent).await.unwrap(), 0);
    let later = SessionWrite {
        readings: vec![
            reading(&s, Vital::Systolic, "171.5", 60, ReadingSource::Manual),
            reading(&s, Vital::Spo2, "97", 30, ReadingSource::Hl7),
        ],
        ..Default::default()
    };
    assert_eq!(st.write_session_input(&ctx(&u), &later).await.unwrap(), 2);
    let all = st.session_readings(&ctx(&u), s.id, None).await.unwrap();
    assert_eq!(all.len(), 4);
    assert!(all.windows(2).all(|w| w[0].observed_at <= w[1].observed_at), "oldest first");
    assert_eq!(all.last().unwrap().value.to_string(), "171.5", "exact decimal");
    let since = st.session_readings(&ctx(&u), s.id, Some(t0() + Duration::seconds(30))).await.unwrap();
    assert_eq!(since.len(), 2);
    let last = st.last_readings(s.id).await.unwrap();
    let sbp = last.iter().find(|r| r.vital == Vital::Systolic).unwrap();
    assert_eq!((sbp.value.to_string(), sbp.source), ("171.5".into(), ReadingSource::Manual));
    assert_eq!(last.len(), 3, "one per vital");
    for sql in ["UPDATE session_readings SET value = '90'", "DELETE FROM session_readings"] {
        assert!(db.exec_raw(sql).await.is_err(), "{sql} must be refused on {}", db.backend());
    }
}

fn alarm(s: &TreatmentSession, rule: &str, secs: i64) -> SessionAlarm {
    SessionAlarm {
        id: Uuid::new_v4(),
        session_id: s.id,
        patient_id: s.patient_id,
        rule: rule.into(),
        level: Level::Critical,
        message: "Systolic 186 mmHg is above 180".into(),
        source: "Del Sant 2020".into(),
        raised_at: t0() + Duration::seconds(secs),
        acknowledged: None,
        cleared_at: None,
    }
}

async fn alarms_are_raised_once_per_rule_acknowledged_once_and_cleared_once(db: &TestDb) {
    let st = db.store();
    let (u, p) = setup(db, "SE-0003").await;
    let s = session(&u, p, "ROOM1^CHAIR4", None);
    st.create_treatment_session(&ctx(&u), &s, &event(&u, &s, "created", "booked")).await.unwrap();
    let a = alarm(&s, "sbp_above", 10);
    st.write_session_input(
        &ctx(&u),
        &SessionWrite {
            readings: vec![reading(&s, Vital::Systolic, "186", 10, ReadingSource::Hl7)],
            raised: vec![a.clone()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // Another server raising the same rule at the same moment loses, and writes nothing.
    let dup = SessionWrite {
        readings: vec![reading(&s, Vital::Systolic, "187", 11, ReadingSource::Hl7)],
        raised: vec![alarm(&s, "sbp_above", 11)],
        ..Default::default()
    };
    assert!(matches!(st.write_session_input(&ctx(&u), &dup).await, Err(DbError::Conflict(_))));
    assert_eq!(st.session_readings(&ctx(&u), s.id, None).await.unwrap().len(), 1, "all or nothing");

    // Clearing an alarm nobody acknowledged does nothing: it stays until acknowledged.
    st.write_session_input(&ctx(&u), &SessionWrite { cleared: vec![a.id], ..Default::default() }).await.unwrap();
    assert!(st.session_alarms(&ctx(&u), s.id, true).await.unwrap()[0].cleared_at.is_none());

    let acked = st.acknowledge_session_alarm(&ctx(&u), a.id, u.id, "Nina Nurse", "cuff repeated, prescriber called", None).await.unwrap();
    let (_, by, name, action) = acked.acknowledged.clone().unwrap();
    assert_eq!((by, name.as_str(), action.as_str()), (u.id, "Nina Nurse", "cuff repeated, prescriber called"));
    assert!(matches!(st.acknowledge_session_alarm(&ctx(&u), a.id, u.id, "Nina Nurse", "again", None).await, Err(DbError::Conflict(_))));
    assert!(matches!(st.acknowledge_session_alarm(&ctx(&u), Uuid::new_v4(), u.id, "Nina Nurse", "x", None).await, Err(DbError::NotFound)));

    // Latched until the value clears; then a new crossing is a new alarm.
    st.write_session_input(&ctx(&u), &SessionWrite { cleared: vec![a.id], ..Default::default() }).await.unwrap();
    assert!(st.session_alarms(&ctx(&u), s.id, true).await.unwrap().is_empty());
    let again = alarm(&s, "sbp_above", 600);
    st.write_session_input(&ctx(&u), &SessionWrite { raised: vec![again.clone()], ..Default::default() }).await.unwrap();
    let all = st.session_alarms(&ctx(&u), s.id, false).await.unwrap();
    assert_eq!(all.len(), 2);
    assert!(all[0].cleared_at.is_some() && all[1].cleared_at.is_none());
    // Signing checks inside its transaction that no alarm waits for an acknowledgement.
    let mut signed = s.clone();
    signed.seq += 1;
    signed.signed_at = Some(t0() + Duration::hours(3));
    signed.signed_by_name = Some("Nina Nurse".into());
    let r = st.append_session_event(&ctx(&u), &signed, &event(&u, &signed, "signed", "discharge signed")).await;
    assert!(matches!(&r, Err(DbError::Conflict(c)) if c.contains("acknowledge it before discharge")), "{r:?}");
    for sql in ["DELETE FROM session_alarms", "UPDATE session_alarms SET message = 'x'"] {
        assert!(db.exec_raw(sql).await.is_err(), "{sql} must be refused on {}", db.backend());
    }
    let sql = format!(
        "UPDATE session_alarms SET acknowledged_by_name = 'someone else', acknowledged_at = '2026-11-30T00:00:00.000000Z' WHERE id = '{}'",
        a.id
    );
    assert!(db.exec_raw(&sql).await.is_err(), "an acknowledgement cannot be rewritten");
}

async fn other_servers_hear_session_changes_on_postgres(db: &TestDb) {
    let st = db.store();
    let heard: Arc<Mutex<Vec<String>>> = Arc::default();
    let h = heard.clone();
    let listening = st.listen_session_changes(Arc::new(move |id| h.lock().unwrap().push(id))).await.unwrap();
    assert_eq!(listening, db.backend() == "postgres", "only PostgreSQL has other servers");
    if !listening {
        return;
    }
    let (u, p) = setup(db, "SE-0004").await;
    let s = session(&u, p, "ROOM2^CHAIR1", None);
    st.create_treatment_session(&ctx(&u), &s, &event(&u, &s, "created", "booked")).await.unwrap();
    st.write_session_input(
        &ctx(&u),
        &SessionWrite { readings: vec![reading(&s, Vital::HeartRate, "80", 5, ReadingSource::Device)], ..Default::default() },
    )
    .await
    .unwrap();
    for _ in 0..100 {
        if heard.lock().unwrap().len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let got = heard.lock().unwrap().clone();
    assert!(got.len() >= 2 && got.iter().all(|x| *x == s.id.to_string()), "heard {got:?}");
}
