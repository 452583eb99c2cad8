//! Chart scope: care teams and emergency ("break-glass") access. Under the clinic policy
//! `access.chart_scope = care_team` a nurse or prescriber opens only their care teams' charts;
//! every per-patient route refuses anyone else (checked route by route from the OpenAPI
//! document), lists leave the patient out, and an emergency access with a reason opens the chart
//! for twelve hours, flagged in the audit trail and reviewed by the medical director.

use crate::helpers::*;
use ketacare_domain::access::Role;
use serde_json::{json, Value};

http_tests!(
    every_per_patient_route_refuses_a_clinician_outside_the_care_team,
    lists_hold_only_the_care_teams_patients,
    an_emergency_access_opens_the_chart_for_twelve_hours_and_the_director_reviews_it,
    care_team_members_are_added_and_removed_with_a_reason,
    under_the_default_scope_every_clinician_opens_every_chart,
);

/// Registers a patient as the prescriber (who joins its care team), records a weight, and sets
/// the clinic's chart scope to care teams. Returns the patient id and the weight's record id.
async fn care_team_clinic(app: &TestApp) -> (String, String) {
    let (id, record, _) = care_team_clinic_with_session(app, false).await;
    (id, record)
}

/// As [`care_team_clinic`], with a booked treatment session when `book` (its id is returned).
async fn care_team_clinic_with_session(app: &TestApp, book: bool) -> (String, String, String) {
    let pia = app.login(Role::Prescriber).await;
    let id = register(&pia, "KC-700001", "Quist", "Olea", "1985-02-03", "female").await;
    let w = pia.post_json(&format!("/api/patients/{id}/weights"), &json!({"value": "70", "unit": "kg"})).await;
    w.assert_status(201, "the prescriber records a weight");
    let record = w.json()["record_id"].as_str().expect("record id").to_owned();
    let mut session = String::new();
    if book {
        let o = pia
            .post_json(&format!("/api/patients/{id}/orders"), &json!({"route": "sc", "mg_per_kg": "0.5", "concentration_mg_per_ml": 50}))
            .await;
        o.assert_status(201, "order");
        let o = o.json();
        let oid = o["record_id"].as_str().expect("order id").to_owned();
        app.login(Role::MedicalDirector)
            .await
            .post_json(
                &format!("/api/orders/{oid}/double-check"),
                &json!({"base_version": 1, "weight_kg": "70", "concentration_mg_per_ml": "50", "dose_mg": o["dose_mg"]}),
            )
            .await
            .assert_status(200, "double check");
        let b = pia.post_json(&format!("/api/patients/{id}/sessions"), &json!({"chair": "ROOM1^CHAIR2", "order_id": oid})).await;
        b.assert_status(201, "book");
        session = b.json()["id"].as_str().expect("session id").to_owned();
        let s = &session;
        pia.post_json(&format!("/api/sessions/{s}/actions"), &json!({"action": "check_in"})).await.assert_status(200, "check in");
    }
    let director = app.login(Role::MedicalDirector).await;
    director
        .post_json("/api/policy/chart-scope", &json!({"value": "care_team", "reason": "psychiatric records: care teams only"}))
        .await
        .assert_status(200, "the director narrows the chart scope");
    (id, record, session)
}

fn assert_outside(r: &Resp, what: &str) {
    r.assert_status(403, what);
    let b = r.json();
    let message = if b["resourceType"] == "OperationOutcome" {
        b["issue"][0]["diagnostics"].as_str().unwrap_or("").to_owned()
    } else {
        assert_eq!(b["error"], "outside_care_team", "{what}: {b}");
        b["message"].as_str().unwrap_or("").to_owned()
    };
    assert!(message.contains("emergency-access"), "{what}: the answer says how to get in: {b}");
}

async fn every_per_patient_route_refuses_a_clinician_outside_the_care_team(app: &TestApp) {
    let (id, record, session) = care_team_clinic_with_session(app, true).await;
    let nina = app.login(Role::Nurse).await;
    let doc = app.anon().get("/api/openapi.json").await.json();
    let paths = doc["paths"].as_object().expect("paths");
    let mut checked = Vec::new();
    for (path, ops) in paths {
        let Some(get) = ops.get("get") else { continue };
        let _ = get;
        let url = if let Some(rest) = path.strip_prefix("/api/patients/{id}") {
            format!("/api/patients/{id}{rest}")
        } else if let Some(rest) = path.strip_prefix("/api/records/{rid}") {
            format!("/api/records/{record}{rest}")
        } else if let Some(rest) = path.strip_prefix("/api/sessions/{id}") {
            format!("/api/sessions/{session}{rest}")
        } else if let Some(rest) = path.strip_prefix("/fhir/Patient/{id}") {
            format!("/fhir/Patient/{id}{rest}")
        } else if path == "/fhir/{type}/{id}" {
            format!("/fhir/Observation/{record}")
        } else {
            continue;
        };
        if url.contains('{') {
            continue;
        }
        let r = nina.get(&url).await;
        assert_outside(&r, &format!("GET {url}"));
        checked.push(url);
    }
    assert!(checked.len() >= 16, "the sweep covers the per-patient routes: {checked:?}");
    assert!(checked.iter().any(|u| u.starts_with("/api/records/")) && checked.iter().any(|u| u.starts_with("/api/sessions/")));
    for url in [format!("/fhir/Patient/{id}"), format!("/fhir/Observation?patient={id}")] {
        assert_outside(&nina.get(&url).await, &url);
    }
    assert_outside(
        &nina.post_json(&format!("/api/sessions/{session}/actions"), &json!({"action": "start_checks"})).await,
        "a session step",
    );
    // Readings typed by a person into the chair's session are a write to the chart; a device
    // gateway's token is never held back (the chair's alarms must not depend on the scope).
    let by_hand = json!({"location": "ROOM1^CHAIR2", "readings": [{"vital": "systolic", "value": 120}]});
    assert_outside(&nina.post_json("/api/device/readings", &by_hand).await, "readings by hand");
    let admin = app.login(Role::Admin).await;
    let nurse_id = app.user(Role::Nurse).id.clone();
    let t = admin.post_json("/api/admin/tokens", &json!({"user_id": nurse_id, "label": "monitor gateway room 1"})).await;
    t.assert_status(201, "gateway token");
    let gateway = app.with_bearer(t.json()["secret"].as_str().expect("secret"));
    let g = gateway.post_json("/api/device/readings", &by_hand).await;
    g.assert_status(200, "the gateway");
    assert_eq!(g.json()["stored"], 1, "{}", g.text);
    // The treatment room's board keeps every chair (its alarms must be seen), without the
    // initials of a patient outside the viewer's care teams.
    let board = nina.get("/api/board").await;
    board.assert_status(200, "the board");
    let text = board.text.clone();
    assert!(text.contains("ROOM1^CHAIR2"), "the chair is on the board: {text}");
    assert!(!text.contains("O. Q."), "without the patient's initials: {text}");
    let director_board = app.login(Role::MedicalDirector).await.get("/api/board").await.text;
    assert!(director_board.contains("O. Q."), "the director sees them: {director_board}");
    // Writes are refused too, and nothing is written.
    let before = chart(&app.login(Role::Prescriber).await, &id).await;
    assert_outside(&nina.post_json(&format!("/api/patients/{id}/weights"), &json!({"value": "71", "unit": "kg"})).await, "a weight");
    assert_outside(
        &nina.post_json(&format!("/api/patients/{id}/vitals"), &json!({"systolic": "120", "diastolic": "80", "heart_rate": "70"})).await,
        "vital signs",
    );
    let after = chart(&app.login(Role::Prescriber).await, &id).await;
    assert_eq!(before["records"], after["records"], "nothing was written");
    // The chart page offers the emergency access instead of the chart.
    let page = nina.get(&format!("/patients/{id}")).await;
    page.assert_status(403, "the chart page");
    assert!(page.text.contains(&format!("/patients/{id}/emergency-access")), "the page links to the emergency access");
    assert!(!page.text.contains("Quist"), "and shows nothing of the chart");
    // The refusals are audited, and nothing of the patient was read for the nurse first.
    let director = app.login(Role::MedicalDirector).await;
    let audit = director.get(&format!("/api/audit?patient={id}&user=nina.nurse&outcome=success")).await.json();
    let by_her_session: Vec<&Value> =
        audit.as_array().expect("audit").iter().filter(|e| !e["session"].as_str().unwrap_or("").starts_with("token:")).collect();
    assert!(by_her_session.is_empty(), "nothing read or written for the nurse's session (the gateway's write aside): {by_her_session:?}");
    let audit = director.get(&format!("/api/audit?patient={id}&outcome=denied")).await.json();
    let denied = audit.as_array().map(|a| a.len()).unwrap_or(0);
    assert!(denied >= checked.len(), "each refusal is audited ({denied} of {})", checked.len());
    // The prescriber on the team and the director open it.
    app.login(Role::Prescriber).await.get(&format!("/api/patients/{id}")).await.assert_status(200, "the team's prescriber");
    director.get(&format!("/api/patients/{id}")).await.assert_status(200, "the medical director");
}

async fn lists_hold_only_the_care_teams_patients(app: &TestApp) {
    let (id, _) = care_team_clinic(app).await;
    let nina = app.login(Role::Nurse).await;
    let own = register(&nina, "KC-700002", "Rask", "Tove", "1990-06-07", "male").await;
    let list = nina.get("/api/patients?q=").await.json();
    let ids: Vec<&str> = list.as_array().expect("list").iter().filter_map(|v| v["id"].as_str()).collect();
    assert_eq!(ids, vec![own.as_str()], "the nurse's list holds the patient she registered only");
    let fhir = nina.get("/fhir/Patient?name=Quist").await.json();
    assert_eq!(fhir["total"].as_u64().unwrap_or(fhir["entry"].as_array().map_or(0, |e| e.len() as u64)), 0, "FHIR search: {fhir}");
    let by_id = nina.get(&format!("/fhir/Patient?_id={id}")).await;
    by_id.assert_status(200, "a FHIR search by id is a search");
    assert!(by_id.json()["entry"].as_array().is_none_or(|e| e.is_empty()), "and finds nothing outside the team");
    // An exact MRN names the patient and offers the emergency access, on the page only.
    let page = nina.get("/patients?q=KC-700001").await;
    page.assert_status(200, "search page");
    assert!(page.text.contains("outside-scope") && page.text.contains(&format!("/patients/{id}/emergency-access")), "{}", page.text);
    assert!(page.text.contains("?mrn=KC-700001"), "the link carries the MRN the nurse typed");
    let form = nina.get(&format!("/patients/{id}/emergency-access?mrn=KC-700001")).await;
    assert!(form.text.contains("KC-700001 · Quist, Olea"), "{}", form.text);
    let bare = nina.get(&format!("/patients/{id}/emergency-access")).await;
    assert!(!bare.text.contains("Quist"), "a bare patient id does not reveal the name");
    let director = app.login(Role::MedicalDirector).await;
    let audit = director.get(&format!("/api/audit?patient={id}&user=nina.nurse")).await.json();
    assert!(
        audit.as_array().expect("audit").iter().any(|e| e["detail"].as_str().unwrap_or("").contains("found by exact MRN")),
        "the name shown outside the team is audited with the patient: {audit}"
    );
    let partial = nina.get("/patients?q=KC-7000").await;
    assert!(!partial.text.contains("outside-scope"), "a partial MRN finds nobody outside the team");
    // Names outside the team are not there to be collected: after 20 in an hour, lookups wait.
    let mut shown = 1;
    let held = loop {
        let r = nina.get("/patients?q=KC-700001").await;
        r.assert_status(200, "search page");
        if r.text.contains("outside-held") {
            break r;
        }
        assert!(r.text.contains("outside-scope"));
        shown += 1;
        assert!(shown <= 20, "the 21st lookup within the hour must wait");
    };
    assert_eq!(shown, 20, "twenty names in an hour");
    assert!(!held.text.contains("Quist") && held.text.contains("within an hour"), "{}", held.text);
    let denied = app.login(Role::MedicalDirector).await.get("/api/audit?user=nina.nurse&outcome=denied").await.json();
    let holds =
        denied.as_array().expect("audit").iter().filter(|e| e["detail"].as_str().unwrap_or("").contains("exact-MRN lookups")).count();
    assert_eq!(holds, 1, "the hold is audited once: {denied}");
    app.advance_minutes(61);
    let nina = app.login(Role::Nurse).await;
    assert!(nina.get("/patients?q=KC-700001").await.text.contains("outside-scope"), "an hour later the lookup works again");
    // The director's list holds both.
    let all = app.login(Role::MedicalDirector).await.get("/api/patients?q=").await.json();
    assert_eq!(all.as_array().map(|a| a.len()), Some(2), "the director sees every patient");
}

async fn an_emergency_access_opens_the_chart_for_twelve_hours_and_the_director_reviews_it(app: &TestApp) {
    let (id, _) = care_team_clinic(app).await;
    let nina = app.login(Role::Nurse).await;
    let url = format!("/api/patients/{id}/emergency-access");
    let short = nina.post_json(&url, &json!({"reason": "need"})).await;
    short.assert_status(422, "a reason that says nothing");
    assert!(short.field_message("reason").contains("at least 10"), "{}", short.json());
    nina.get(&format!("/api/patients/{id}")).await.assert_status(403, "still outside");

    let granted = nina.post_json(&url, &json!({"reason": "covering room 2: patient unwell after dose"})).await;
    granted.assert_status(201, "an emergency access");
    let g = granted.json();
    let again = nina.post_json(&url, &json!({"reason": "second click of the same emergency"})).await;
    again.assert_status(200, "the access in force is returned");
    assert_eq!(again.json()["id"], g["id"], "one access, not two");
    let c = nina.get(&format!("/api/patients/{id}")).await;
    c.assert_status(200, "the chart opens");
    nina.post_json(&format!("/api/patients/{id}/weights"), &json!({"value": "70.5", "unit": "kg"}))
        .await
        .assert_status(201, "and can be written to");
    let page = nina.get(&format!("/patients/{id}")).await;
    assert!(page.text.contains("emergency-banner"), "the chart page says it is an emergency access");
    // An emergency opens one chart; it is not a way to take the patient's data away in bulk.
    let own = register(&nina, "KC-700009", "Rask", "Tove", "1990-06-07", "male").await;
    let manifest = crate::fhir::run_export(&nina, "?_type=Patient").await;
    let mut exported = Vec::new();
    for f in manifest["output"].as_array().expect("output") {
        exported.extend(crate::fhir::download(&nina, f["url"].as_str().expect("url")).await);
    }
    let ids: Vec<&str> = exported.iter().filter_map(|r| r["id"].as_str()).collect();
    assert_eq!(ids, vec![own.as_str()], "the bulk export holds her own patient, not the one opened in an emergency ({id})");

    // Flagged in the audit trail.
    let director = app.login(Role::MedicalDirector).await;
    let audit = director.get(&format!("/api/audit?patient={id}")).await.json();
    let entry = audit.as_array().and_then(|a| a.iter().find(|e| e["entity_type"] == "EmergencyAccess")).cloned().unwrap_or(Value::Null);
    let detail = entry["detail"].as_str().unwrap_or("");
    assert!(detail.contains("purpose=emergency") && detail.contains("patient unwell"), "{entry}");
    let by_nina: Vec<&Value> = audit.as_array().expect("audit").iter().filter(|e| e["username"] == "nina.nurse").collect();
    let flagged = by_nina.iter().filter(|e| e["detail"].as_str().unwrap_or("").contains("purpose=emergency")).count();
    let treatment = by_nina.iter().filter(|e| e["detail"].as_str().unwrap_or("").contains("purpose=treatment")).count();
    assert!(flagged >= 4 && treatment == 0, "what the nurse did under the access is flagged ({flagged}), none as treatment ({treatment})");

    // The director's review list shows it with what was done under it.
    nina.get("/api/emergency-access").await.assert_status(403, "a nurse does not review");
    let list = director.get("/api/emergency-access").await;
    list.assert_status(200, "the director's list");
    let items = list.json();
    assert_eq!(items.as_array().map(|a| a.len()), Some(1), "{items}");
    assert!(items[0]["audit_entries"].as_u64().unwrap_or(0) >= 3, "the chart read and the weight are in the trail: {items}");
    assert!(items[0]["patient"].as_str().unwrap_or("").contains("KC-700001"));
    let review = format!("/api/emergency-access/{}/review", g["id"].as_str().expect("id"));
    director.post_json(&review, &json!({"note": ""})).await.assert_status(422, "a review needs a note");
    director.post_json(&review, &json!({"note": "appropriate: covering nurse"})).await.assert_status(200, "reviewed");
    director.post_json(&review, &json!({"note": "again"})).await.assert_status(409, "once");
    assert_eq!(director.get("/api/emergency-access").await.json().as_array().map(|a| a.len()), Some(0), "nothing waits");
    let all = director.get("/api/emergency-access?all=true").await.json();
    assert_eq!(all[0]["access"]["review"]["note"], "appropriate: covering nurse", "{all}");

    // Twelve hours later the chart is closed again.
    app.advance_minutes(12 * 60 + 1);
    let nina = app.login(Role::Nurse).await;
    assert_outside(&nina.get(&format!("/api/patients/{id}")).await, "after twelve hours");
}

async fn care_team_members_are_added_and_removed_with_a_reason(app: &TestApp) {
    let (id, _) = care_team_clinic(app).await;
    let pia = app.login(Role::Prescriber).await;
    let nina = app.login(Role::Nurse).await;
    let team_url = format!("/api/patients/{id}/care-team");
    let team = pia.get(&team_url).await.json();
    assert_eq!(team.as_array().map(|a| a.len()), Some(1), "the registering prescriber is on the team: {team}");
    assert_eq!(team[0]["username"], "pia.prescriber");

    // A nurse with an emergency access cannot make it lasting.
    nina.post_json(&format!("/api/patients/{id}/emergency-access"), &json!({"reason": "covering the infusion room today"}))
        .await
        .assert_status(201, "emergency");
    nina.post_json(&team_url, &json!({"username": "nina.nurse"})).await.assert_status(403, "no self-admission through an emergency");

    let unknown = pia.post_json(&team_url, &json!({"username": "rex.researcher"})).await;
    unknown.assert_status(422, "a researcher is not a clinician");
    assert!(unknown.field_message("username").contains("prescriber, nurse or medical director"));
    pia.post_json(&team_url, &json!({"username": "nina.nurse"})).await.assert_status(201, "the prescriber adds the nurse");
    pia.post_json(&team_url, &json!({"username": "nina.nurse"})).await.assert_status(422, "once");
    let emergency =
        nina.post_json(&format!("/api/patients/{id}/emergency-access"), &json!({"reason": "another emergency access here"})).await;
    emergency.assert_status(409, "on the team, no emergency access is needed");

    let nurse_id = app.user(Role::Nurse).id.clone();
    let remove = format!("/api/patients/{id}/care-team/{nurse_id}/remove");
    pia.post_json(&remove, &json!({"reason": ""})).await.assert_status(422, "a removal needs a reason");
    pia.post_json(&remove, &json!({"reason": "moved to the other site"})).await.assert_status(204, "removed");
    pia.post_json(&remove, &json!({"reason": "moved to the other site"})).await.assert_status(404, "not on the team any more");
    assert_eq!(pia.get(&team_url).await.json().as_array().map(|a| a.len()), Some(1));
    let audit = app.login(Role::MedicalDirector).await.get(&format!("/api/audit?patient={id}")).await.json();
    let details: Vec<&str> =
        audit.as_array().expect("audit").iter().filter(|e| e["entity_type"] == "CareTeam").filter_map(|e| e["detail"].as_str()).collect();
    assert!(details.iter().any(|d| d.contains("member removed: moved to the other site")), "{details:?}");
    assert!(details.iter().filter(|d| d.contains("member added")).count() >= 2, "{details:?}");
}

async fn under_the_default_scope_every_clinician_opens_every_chart(app: &TestApp) {
    let pia = app.login(Role::Prescriber).await;
    let id = register(&pia, "KC-700003", "Lind", "Ebba", "1979-09-10", "female").await;
    let nina = app.login(Role::Nurse).await;
    assert_eq!(nina.get("/api/policy/chart-scope").await.json()["scope"], "all");
    nina.get(&format!("/api/patients/{id}")).await.assert_status(200, "every clinician opens every chart");
    let team = format!("/api/patients/{id}/care-team");
    nina.post_json(&team, &json!({"username": "nina.nurse"})).await.assert_status(403, "only the team or the director changes a team");
    pia.post_json(&team, &json!({"username": "nina.nurse"})).await.assert_status(201, "the prescriber on the team adds her");
    nina.post_json("/api/policy/chart-scope", &json!({"value": "care_team", "reason": "nurse tries"}))
        .await
        .assert_status(403, "only the director sets it");
    let director = app.login(Role::MedicalDirector).await;
    let bad = director.post_json("/api/policy/chart-scope", &json!({"value": "team", "reason": "typo"})).await;
    bad.assert_status(422, "an unknown scope");
    assert!(bad.field_message("value").contains("care_team"), "{}", bad.json());
    let no_reason = director.post_json("/api/policy/chart-scope", &json!({"value": "care_team", "reason": ""})).await;
    no_reason.assert_status(422, "no reason");
    assert_eq!(nina.get("/api/policy/chart-scope").await.json()["scope"], "all", "nothing changed");
}
