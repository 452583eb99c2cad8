//! Storage of the drug-library evaluation log on both backends: exact decimals, every outcome,
//! the time window, the audit row, and append-only triggers.

use chrono::{DateTime, Duration, TimeZone, Utc};
use ketacare_db::{AuditCtx, AuditFilter, NewUser, Page};
use ketacare_db_tests::{both_backends, TestDb};
use ketacare_domain::access::{Role, Username};
use ketacare_domain::audit::Actor;
use ketacare_domain::dose::{DoseEvaluation, EvaluationOutcome, Route};
use ketacare_domain::ids::*;
use uuid::Uuid;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 9, 0, 0).unwrap()
}

both_backends!(dose_evaluations_are_logged_exactly_listed_by_time_and_append_only);

async fn dose_evaluations_are_logged_exactly_listed_by_time_and_append_only(db: &TestDb) {
    let s = db.store();
    let system = AuditCtx {
        actor: Actor { user_id: None, username: "system".into(), role: None, session_ref: None, client_addr: None },
        at: t0(),
        purpose: "operations",
    };
    let u = s
        .create_user(
            &system,
            NewUser {
                id: UserId::from_uuid(Uuid::new_v4()),
                username: Username::parse("pia.p").unwrap(),
                display_name: "Pia".into(),
                role: Role::Prescriber,
                password_hash: "x".into(),
                created_at: t0(),
            },
        )
        .await
        .unwrap();
    let ctx = AuditCtx {
        actor: Actor { user_id: Some(u.id), username: "pia.p".into(), role: Some(Role::Prescriber), session_ref: None, client_addr: None },
        at: t0(),
        purpose: "treatment",
    };
    let mut evs = Vec::new();
    for (n, o) in EvaluationOutcome::ALL.into_iter().enumerate() {
        let e = DoseEvaluation {
            id: RecordId::from_uuid(Uuid::new_v4()),
            at: t0() + Duration::minutes(n as i64),
            username: "pia.p".into(),
            user_id: u.id,
            patient_id: None,
            order_id: None,
            drug: "ketamine".into(),
            route: if n % 2 == 0 { Route::Iv } else { Route::Sc },
            dose_mg: "57.6".parse().unwrap(),
            mg_per_kg: Some("0.8".parse().unwrap()),
            outcome: o,
            breaches: if o == EvaluationOutcome::Accepted {
                vec![]
            } else {
                vec!["soft limit: Dose 0.8 mg/kg is above the soft maximum of 0.75 mg/kg".into(), "second line".into()]
            },
            reason: (o == EvaluationOutcome::Overridden).then(|| "higher dose agreed at the team meeting".into()),
            second_username: (o == EvaluationOutcome::Overridden).then(|| "mira.d".into()),
        };
        s.append_dose_evaluation(&ctx, &e).await.unwrap();
        evs.push(e);
    }
    let all = s.list_dose_evaluations(t0(), t0() + Duration::days(1)).await.unwrap();
    assert_eq!(all, evs, "round trip, oldest first, on {}", db.backend());
    let window = s.list_dose_evaluations(t0() + Duration::minutes(1), t0() + Duration::minutes(3)).await.unwrap();
    assert_eq!(window.len(), 2, "from inclusive, to exclusive");
    let audit = s
        .search_audit(
            &ctx,
            &AuditFilter { entity_type: Some("DoseEvaluation".into()), page: Page { limit: 50, offset: 0 }, ..Default::default() },
        )
        .await
        .unwrap();
    assert_eq!(audit.len(), 5);
    for sql in ["UPDATE dose_evaluations SET outcome = 'accepted'", "DELETE FROM dose_evaluations"] {
        let r = db.exec_raw(sql).await;
        assert!(r.as_ref().is_err_and(|e| e.contains("append-only")), "{sql} must be refused on {}: {r:?}", db.backend());
    }
}
