//! Care teams and emergency accesses in storage, on both backends: a membership is added once
//! and removed once with its reason; an emergency access is in force only in its window and
//! is reviewed once; neither can be deleted or rewritten; every change is audited.

use chrono::Duration;
use ketacare_db::{AccessReview, AuditFilter, CareTeamMember, DbError, EmergencyAccess, Owned, Page};
use ketacare_db_tests::fixtures::{ctx, patient, patient_version, t0, user};
use ketacare_db_tests::{both_backends, TestDb};
use ketacare_domain::access::Role;
use uuid::Uuid;

both_backends!(
    a_care_team_membership_is_added_once_and_removed_once_with_its_reason,
    an_emergency_access_is_in_force_in_its_window_and_reviewed_once,
    care_teams_and_emergency_accesses_cannot_be_deleted_or_rewritten,
    things_with_their_own_id_name_their_patient,
    a_registration_and_its_registrant_on_the_team_are_stored_together,
    a_scoped_search_holds_the_care_teams_and_emergency_accesses_in_force,
);

async fn a_scoped_search_holds_the_care_teams_and_emergency_accesses_in_force(db: &TestDb) {
    let s = db.store();
    let pia = user(db, "pia", "Pia", Role::Prescriber).await;
    let nina = user(db, "nina", "Nina", Role::Nurse).await;
    let own = patient(db, &pia, "KC-000001", "Rivera", "Ana").await;
    let others = patient(db, &pia, "KC-000002", "Lind", "Ebba").await;
    let left = patient(db, &pia, "KC-000003", "Okafor", "Chidi").await;
    let emergency = patient(db, &pia, "KC-000004", "Berg", "Saga").await;
    let also_own = patient(db, &pia, "KC-000005", "Rivers", "Ben").await;
    s.add_care_team_member(&ctx(&pia), &member(own, &nina, &pia)).await.unwrap();
    s.add_care_team_member(&ctx(&pia), &member(also_own, &nina, &pia)).await.unwrap();
    s.add_care_team_member(&ctx(&pia), &member(others, &pia, &pia)).await.unwrap();
    s.add_care_team_member(&ctx(&pia), &member(left, &nina, &pia)).await.unwrap();
    s.remove_care_team_member(&ctx(&pia), left, nina.id, "moved to the other site").await.unwrap();
    s.create_emergency_access(&ctx(&nina), &access(emergency, &nina)).await.unwrap();
    s.create_emergency_access(&ctx(&pia), &access(others, &pia)).await.unwrap();

    let mrns =
        |v: Vec<ketacare_domain::record::PatientVersion>| v.into_iter().map(|p| p.demographics.mrn.as_str().to_owned()).collect::<Vec<_>>();
    let all = Page { limit: 500, offset: 0 };
    let during = t0() + Duration::hours(1);
    let found = mrns(s.search_patients_in_scope(&ctx(&nina), "", nina.id, during, all).await.unwrap());
    assert_eq!(found, vec!["KC-000004", "KC-000001", "KC-000005"], "her teams and her emergency access, in name order");
    // The same as the unscoped search narrowed by what the store lists for her.
    let mut scope: Vec<_> = s.care_team_patients(nina.id).await.unwrap();
    scope.extend(s.active_emergency_access(nina.id, during).await.unwrap().into_iter().map(|g| g.patient_id));
    let narrowed: Vec<_> =
        s.search_patients(&ctx(&nina), "", all).await.unwrap().into_iter().filter(|v| scope.contains(&v.patient_id)).collect();
    assert_eq!(found, mrns(narrowed));
    // The query, the page and the access window apply.
    assert_eq!(mrns(s.search_patients_in_scope(&ctx(&nina), "riv", nina.id, during, all).await.unwrap()), vec!["KC-000001", "KC-000005"]);
    assert_eq!(
        mrns(s.search_patients_in_scope(&ctx(&nina), "", nina.id, during, Page { limit: 1, offset: 1 }).await.unwrap()),
        vec!["KC-000001"]
    );
    assert!(s.search_patients_in_scope(&ctx(&nina), "lind", nina.id, during, all).await.unwrap().is_empty(), "another's team");
    let after = t0() + Duration::hours(12);
    assert_eq!(
        mrns(s.search_patients_in_scope(&ctx(&nina), "", nina.id, after, all).await.unwrap()),
        vec!["KC-000001", "KC-000005"],
        "the access has ended"
    );
    assert_eq!(
        mrns(s.search_patients_in_scope(&ctx(&pia), "", pia.id, during, all).await.unwrap()),
        vec!["KC-000002"],
        "hers, once, though on the team and with an access"
    );
    // One audit entry per search, counting what the clinician got.
    let f = AuditFilter {
        action: Some(ketacare_domain::audit::AuditAction::Execute),
        entity_type: Some("Patient".into()),
        ..Default::default()
    };
    let searches = s.search_audit(&ctx(&pia), &f).await.unwrap();
    let details: Vec<String> = searches.into_iter().filter_map(|e| e.event.detail).collect();
    assert!(details.iter().any(|d| d.ends_with("patient search in the care-team scope, 3 results, query length 0")), "{details:?}");
}

async fn a_registration_and_its_registrant_on_the_team_are_stored_together(db: &TestDb) {
    let s = db.store();
    let nina = user(db, "nina", "Nina", Role::Nurse).await;
    let v = patient_version(&nina, "KC-000001", "Rivera", "Ana");
    s.register_patient_with_member(&ctx(&nina), &v, Some(&member(v.patient_id, &nina, &nina))).await.unwrap();
    assert_eq!(s.care_team_patients(nina.id).await.unwrap(), vec![v.patient_id]);
    // A membership that cannot be stored (an unknown clinician) takes the registration with it.
    let w = patient_version(&nina, "KC-000002", "Lind", "Ebba");
    let mut ghost = member(w.patient_id, &nina, &nina);
    ghost.user_id = ketacare_domain::ids::UserId::from_uuid(Uuid::new_v4());
    assert!(s.register_patient_with_member(&ctx(&nina), &w, Some(&ghost)).await.is_err());
    assert!(s.get_patient(&ctx(&nina), w.patient_id).await.unwrap().is_none(), "both or neither");
    assert_eq!(s.count_patients().await.unwrap(), 1);
}

fn member(p: ketacare_domain::ids::PatientId, u: &ketacare_db::User, by: &ketacare_db::User) -> CareTeamMember {
    CareTeamMember {
        id: Uuid::new_v4(),
        patient_id: p,
        user_id: u.id,
        added_by: by.id,
        added_by_name: by.username.as_str().to_owned(),
        added_at: t0(),
    }
}

fn access(p: ketacare_domain::ids::PatientId, u: &ketacare_db::User) -> EmergencyAccess {
    EmergencyAccess {
        id: Uuid::new_v4(),
        patient_id: p,
        user_id: u.id,
        username: u.username.as_str().to_owned(),
        reason: "covering the infusion room".into(),
        granted_at: t0(),
        expires_at: t0() + Duration::hours(12),
        review: None,
    }
}

/// The details of the audit entries of one kind on patient `p`, read as `by`.
async fn audit_details(db: &TestDb, by: &ketacare_db::User, p: ketacare_domain::ids::PatientId, entity: &str) -> Vec<String> {
    let f =
        AuditFilter { patient_id: Some(p), entity_type: Some(entity.into()), page: Page { limit: 100, offset: 0 }, ..Default::default() };
    db.store().search_audit(&ctx(by), &f).await.unwrap().into_iter().filter_map(|e| e.event.detail).collect()
}

async fn a_care_team_membership_is_added_once_and_removed_once_with_its_reason(db: &TestDb) {
    let s = db.store();
    let pia = user(db, "pia", "Pia", Role::Prescriber).await;
    let nina = user(db, "nina", "Nina", Role::Nurse).await;
    let p = patient(db, &pia, "KC-000001", "Rivera", "Ana").await;
    let q = patient(db, &pia, "KC-000002", "Lind", "Ebba").await;
    s.add_care_team_member(&ctx(&pia), &member(p, &pia, &pia)).await.unwrap();
    s.add_care_team_member(&ctx(&pia), &member(p, &nina, &pia)).await.unwrap();
    s.add_care_team_member(&ctx(&pia), &member(q, &pia, &pia)).await.unwrap();
    let again = s.add_care_team_member(&ctx(&pia), &member(p, &nina, &pia)).await;
    assert!(matches!(again, Err(DbError::Conflict(_))), "one current membership per clinician: {again:?}");
    let mut team: Vec<String> = s.care_team(&ctx(&pia), p).await.unwrap().iter().map(|m| m.user_id.to_string()).collect();
    team.sort();
    let mut expected = vec![pia.id.to_string(), nina.id.to_string()];
    expected.sort();
    assert_eq!(team, expected);
    let mut mine = s.care_team_patients(pia.id).await.unwrap();
    mine.sort_by_key(|x| x.to_string());
    let mut both = vec![p, q];
    both.sort_by_key(|x| x.to_string());
    assert_eq!(mine, both);

    s.remove_care_team_member(&ctx(&pia), p, nina.id, "moved to the other site").await.unwrap();
    assert!(matches!(s.remove_care_team_member(&ctx(&pia), p, nina.id, "again").await, Err(DbError::NotFound)));
    assert!(s.care_team_patients(nina.id).await.unwrap().is_empty());
    assert_eq!(s.care_team(&ctx(&pia), p).await.unwrap().len(), 1);
    // Added again later: a new membership beside the ended one.
    s.add_care_team_member(&ctx(&pia), &member(p, &nina, &pia)).await.unwrap();
    assert_eq!(s.care_team_patients(nina.id).await.unwrap(), vec![p]);

    let details = audit_details(db, &pia, p, "CareTeam").await;
    assert!(details.iter().any(|d| d.contains("member removed: moved to the other site")), "{details:?}");
    assert_eq!(details.iter().filter(|d| d.contains("member added")).count(), 3, "{details:?}");
}

async fn an_emergency_access_is_in_force_in_its_window_and_reviewed_once(db: &TestDb) {
    let s = db.store();
    let pia = user(db, "pia", "Pia", Role::Prescriber).await;
    let nina = user(db, "nina", "Nina", Role::Nurse).await;
    let mira = user(db, "mira", "Mira", Role::MedicalDirector).await;
    let p = patient(db, &pia, "KC-000001", "Rivera", "Ana").await;
    let g = access(p, &nina);
    s.create_emergency_access(&ctx(&nina), &g).await.unwrap();
    assert_eq!(s.active_emergency_access(nina.id, t0()).await.unwrap(), vec![g.clone()], "from the moment it is granted");
    assert_eq!(s.active_emergency_access(nina.id, t0() + Duration::hours(11)).await.unwrap().len(), 1);
    assert!(s.active_emergency_access(nina.id, t0() + Duration::hours(12)).await.unwrap().is_empty(), "ended at expires_at");
    assert!(s.active_emergency_access(nina.id, t0() - Duration::seconds(1)).await.unwrap().is_empty(), "not before");
    assert!(s.active_emergency_access(pia.id, t0()).await.unwrap().is_empty(), "the clinician's own");

    assert_eq!(s.list_emergency_access(true, 10).await.unwrap(), vec![g.clone()]);
    let review = AccessReview { by: mira.id, by_name: "mira".into(), at: t0() + Duration::hours(1), note: "appropriate".into() };
    let reviewed = s.review_emergency_access(&ctx(&mira), g.id, &review).await.unwrap();
    assert_eq!(reviewed.review, Some(review.clone()));
    assert!(matches!(s.review_emergency_access(&ctx(&mira), g.id, &review).await, Err(DbError::Conflict(_))), "once");
    assert!(matches!(s.review_emergency_access(&ctx(&mira), Uuid::new_v4(), &review).await, Err(DbError::NotFound)));
    assert!(s.list_emergency_access(true, 10).await.unwrap().is_empty(), "nothing waits");
    assert_eq!(s.list_emergency_access(false, 10).await.unwrap()[0].review, Some(review));

    let details = audit_details(db, &mira, p, "EmergencyAccess").await;
    assert!(details.iter().any(|d| d.contains("purpose=emergency") && d.contains("covering the infusion room")), "flagged: {details:?}");
    assert!(details.iter().any(|d| d.contains("reviewed: appropriate")), "{details:?}");
}

async fn care_teams_and_emergency_accesses_cannot_be_deleted_or_rewritten(db: &TestDb) {
    let s = db.store();
    let pia = user(db, "pia", "Pia", Role::Prescriber).await;
    let nina = user(db, "nina", "Nina", Role::Nurse).await;
    let p = patient(db, &pia, "KC-000001", "Rivera", "Ana").await;
    s.add_care_team_member(&ctx(&pia), &member(p, &pia, &pia)).await.unwrap();
    s.add_care_team_member(&ctx(&pia), &member(p, &nina, &pia)).await.unwrap();
    s.remove_care_team_member(&ctx(&pia), p, nina.id, "left the clinic").await.unwrap();
    let g = access(p, &nina);
    s.create_emergency_access(&ctx(&nina), &g).await.unwrap();
    let review = AccessReview { by: pia.id, by_name: "pia".into(), at: t0(), note: "fine".into() };
    s.review_emergency_access(&ctx(&pia), g.id, &review).await.unwrap();
    // One waiting for review: its trail is found by its username and window, which stay put.
    s.create_emergency_access(&ctx(&nina), &access(p, &nina)).await.unwrap();
    for sql in [
        "DELETE FROM care_team_members",
        "UPDATE care_team_members SET removal_reason = 'rewritten' WHERE removed_at IS NOT NULL",
        "UPDATE care_team_members SET user_id = 'someone else'",
        "DELETE FROM emergency_access",
        "UPDATE emergency_access SET reason = 'rewritten'",
        "UPDATE emergency_access SET review_note = 'rewritten'",
        "UPDATE care_team_members SET added_by_name = 'someone else' WHERE removed_at IS NULL",
        "UPDATE emergency_access SET username = 'someone else' WHERE reviewed_at IS NULL",
    ] {
        let r = db.exec_raw(sql).await;
        assert!(r.is_err(), "{sql} must be refused on {}", db.backend());
    }
}

async fn things_with_their_own_id_name_their_patient(db: &TestDb) {
    let s = db.store();
    for thing in [Owned::QuestionnaireRequest, Owned::SafetyAlert, Owned::Schedule] {
        assert_eq!(s.patient_of(thing, &Uuid::new_v4().to_string()).await.unwrap(), None, "{thing:?}: unknown id");
        assert_eq!(s.patient_of(thing, "not-an-id' OR 1=1 --").await.unwrap(), None, "{thing:?}: bound, not spliced");
    }
}
