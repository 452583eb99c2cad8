//! Storage of the drug-library evaluation log on both backends: exact decimals, every outcome,
//! the time window, the audit row, and append-only triggers.

use chrono::Duration;
use ketacare_db::{AuditCtx, AuditFilter, Page};
use ketacare_db_tests::fixtures::{self, t0};
use ketacare_db_tests::{both_backends, TestDb};
use ketacare_domain::access::Role;
use ketacare_domain::dose::{DoseEvaluation, EvaluationOutcome, Route};
use ketacare_domain::ids::*;
use uuid::Uuid;

both_backends!(
    dose_evaluations_are_logged_exactly_listed_by_time_and_append_only,
    policy_proposals_need_a_second_person_and_an_approval_is_in_force_at_once
);

async fn dose_evaluations_are_logged_exactly_listed_by_time_and_append_only(db: &TestDb) {
    let s = db.store();
    let u = fixtures::user(db, "pia.p", "Pia", Role::Prescriber).await;
    let ctx = fixtures::ctx(&u);
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

async fn policy_proposals_need_a_second_person_and_an_approval_is_in_force_at_once(db: &TestDb) {
    use ketacare_db::{PolicyProposal, ProposalDecision};
    let s = db.store();
    let mut users = Vec::new();
    for (name, role) in [("dr.mira", Role::MedicalDirector), ("dr.pia", Role::Prescriber)] {
        users.push(fixtures::user(db, name, name, role).await);
    }
    let ctx = |u: &ketacare_db::User| AuditCtx { purpose: "operations", ..fixtures::ctx(u) };
    let proposal = |value: &str| PolicyProposal {
        id: Uuid::new_v4(),
        key: "drug_library.iv.soft_max_mg_per_kg".into(),
        value: Some(value.into()),
        reason: "align with the 0.8 mg/kg used in our protocol".into(),
        proposed_by: users[0].id,
        proposed_by_name: "dr.mira".into(),
        proposed_at: t0(),
        decision: None,
    };
    let p1 = proposal("0.8");
    s.create_policy_proposal(&ctx(&users[0]), &p1).await.unwrap();
    assert_eq!(s.list_policy_proposals(true).await.unwrap(), vec![p1.clone()]);
    let decide = |u: &ketacare_db::User, approved: bool| ProposalDecision {
        approved,
        by: u.id,
        by_name: u.username.as_str().into(),
        at: t0() + Duration::minutes(5),
        reason: (!approved).then(|| "no".into()),
    };
    let own = s.decide_policy_proposal(&ctx(&users[0]), p1.id, &decide(&users[0], true)).await;
    assert!(matches!(own, Err(ketacare_db::DbError::Conflict(_))), "the proposer cannot approve: {own:?}");
    assert!(s.current_policies().await.unwrap().is_empty(), "nothing in force yet");
    let done = s.decide_policy_proposal(&ctx(&users[1]), p1.id, &decide(&users[1], true)).await.unwrap();
    assert!(done.decision.as_ref().is_some_and(|d| d.approved && d.by_name == "dr.pia"));
    let cur = s.current_policies().await.unwrap();
    assert_eq!((cur[0].key.as_str(), cur[0].value.as_deref()), ("drug_library.iv.soft_max_mg_per_kg", Some("0.8")));
    assert!(cur[0].reason.contains("approved by dr.pia"));
    assert!(
        matches!(s.decide_policy_proposal(&ctx(&users[1]), p1.id, &decide(&users[1], false)).await, Err(ketacare_db::DbError::Conflict(_))),
        "decided once"
    );
    assert!(matches!(
        s.decide_policy_proposal(&ctx(&users[1]), Uuid::new_v4(), &decide(&users[1], true)).await,
        Err(ketacare_db::DbError::NotFound)
    ));
    let p2 = proposal("5");
    s.create_policy_proposal(&ctx(&users[0]), &p2).await.unwrap();
    s.decide_policy_proposal(&ctx(&users[1]), p2.id, &decide(&users[1], false)).await.unwrap();
    assert_eq!(s.current_policies().await.unwrap()[0].value.as_deref(), Some("0.8"), "a rejection changes nothing");
    assert!(s.list_policy_proposals(true).await.unwrap().is_empty());
    assert_eq!(s.list_policy_proposals(false).await.unwrap().len(), 2);
    for sql in ["DELETE FROM policy_proposals", "UPDATE policy_proposals SET value = '9'"] {
        assert!(db.exec_raw(sql).await.is_err(), "{sql} refused on {}", db.backend());
    }
    let p3 = proposal("0.7");
    s.create_policy_proposal(&ctx(&users[0]), &p3).await.unwrap();
    let own =
        format!("UPDATE policy_proposals SET decided_by = proposed_by, decided_at = 'x', decision = 'approved' WHERE id = '{}'", p3.id);
    assert!(db.exec_raw(&own).await.is_err(), "the schema refuses a self-approval on {}", db.backend());
}
