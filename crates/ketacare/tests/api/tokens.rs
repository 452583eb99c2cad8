//! Administrator-issued API tokens for scripts and device gateways.

use crate::helpers::*;
use ketacare_domain::access::Role;
use serde_json::json;

http_tests!(api_token_acts_with_its_accounts_role_until_revoked, only_admins_issue_tokens_and_tokens_of_inactive_accounts_stop_working,);

async fn api_token_acts_with_its_accounts_role_until_revoked(app: &TestApp) {
    let admin = app.login(Role::Admin).await;
    let nurse_id = app.user(Role::Nurse).id.clone();
    let r = admin.post_json("/api/admin/tokens", &json!({"user_id": nurse_id, "label": "ward scale gateway"})).await;
    r.assert_status(201, "issue token");
    let issued = r.json();
    let secret = issued["secret"].as_str().expect("secret shown once").to_owned();
    assert!(secret.starts_with("kc_") && secret.len() >= 40, "a long random secret: {secret}");
    let token_id = issued["token"]["id"].as_str().unwrap().to_owned();
    assert_eq!(issued["token"]["user_id"], nurse_id.as_str());
    assert_eq!(issued["token"]["label"], "ward scale gateway");
    assert_eq!(issued["token"]["revoked"], false);

    // The listing never shows the secret.
    let list = admin.get("/api/admin/tokens").await;
    list.assert_status(200, "list tokens");
    assert!(!list.text.contains(&secret), "the secret is not listed");
    assert!(list.json().as_array().unwrap().iter().any(|t| t["id"] == token_id.as_str()));

    let gateway = app.with_bearer(&secret);
    let me = gateway.get("/api/me").await;
    me.assert_status(200, "token /api/me");
    assert_eq!(me.json()["username"], "nina.nurse");
    gateway.get("/api/patients").await.assert_status(200, "token lists patients");
    // It acts as a nurse: writes are attributed to the nurse, nurse limits apply.
    let pid = register(&gateway, "TK-0001", "Gateway", "Gita", "1980-08-08", "female").await;
    let w = gateway.post_json(&format!("/api/patients/{pid}/weights"), &json!({"value": 64.2})).await;
    w.assert_status(201, "token records a weight");
    assert_eq!(w.json()["recorded_by"], "nina.nurse");
    gateway.get("/api/audit").await.assert_status(403, "token cannot read the audit trail");
    gateway
        .post_json(&format!("/api/patients/{pid}/records"), &json!({"kind": "diagnosis", "fields": {"choice": "gad"}}))
        .await
        .assert_status(403, "token cannot diagnose");
    // Token use is audited under the token.
    let director = app.login(Role::MedicalDirector).await;
    let audit = director.get(&format!("/api/audit?patient={pid}")).await.json();
    assert!(
        audit.as_array().unwrap().iter().any(|e| e["session"] == format!("token:{token_id}").as_str() && e["username"] == "nina.nurse"),
        "token use audited: {audit}"
    );

    let r = admin.post_empty(&format!("/api/admin/tokens/{token_id}/revoke")).await;
    r.assert_status(204, "revoke");
    let r = gateway.get("/api/patients").await;
    r.assert_status(401, "revoked token");
    assert_eq!(r.json()["error"], "unauthenticated");
    gateway.post_json(&format!("/api/patients/{pid}/weights"), &json!({"value": 64.5})).await.assert_status(401, "revoked token writes");
    assert_eq!(chart(&director, &pid).await["weights"].as_array().unwrap().len(), 1, "nothing written after revocation");
    let list = admin.get("/api/admin/tokens").await.json();
    let t = list.as_array().unwrap().iter().find(|t| t["id"] == token_id.as_str()).cloned().unwrap();
    assert_eq!(t["revoked"], true);
}

async fn only_admins_issue_tokens_and_tokens_of_inactive_accounts_stop_working(app: &TestApp) {
    let nurse_id = app.user(Role::Nurse).id.clone();
    let director = app.login(Role::MedicalDirector).await;
    let r = director.post_json("/api/admin/tokens", &json!({"user_id": nurse_id, "label": "sneaky"})).await;
    r.assert_status(403, "director issues token");
    assert!(!r.text.contains("kc_"));
    let admin = app.login(Role::Admin).await;
    for (body, field) in [
        (json!({"user_id": "nope", "label": "gateway"}), "user_id"),
        (json!({"user_id": random_uuid(), "label": "gateway"}), "user_id"),
        (json!({"user_id": nurse_id, "label": "x"}), "label"),
    ] {
        let r = admin.post_json("/api/admin/tokens", &body).await;
        r.assert_status(422, &format!("bad token request {body}"));
        assert_eq!(r.problem_fields(), vec![field], "{}", r.text);
    }
    let secret = admin.post_json("/api/admin/tokens", &json!({"user_id": nurse_id, "label": "infusion pump"})).await.json()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let gateway = app.with_bearer(&secret);
    gateway.get("/api/patients").await.assert_status(200, "token works");
    admin.post_json(&format!("/api/admin/users/{nurse_id}/active"), &json!({"active": false})).await.assert_status(204, "deactivate nurse");
    gateway.get("/api/patients").await.assert_status(401, "token of an inactive account");
    // A token is not a session: it cannot be used as a cookie.
    app.with_cookie(&secret).get("/api/me").await.assert_status(401, "token as cookie");
}
