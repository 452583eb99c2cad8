//! Authentication at the edge: what an anonymous caller can and cannot reach.

use crate::helpers::*;
use ketacare_domain::access::Role;
use serde_json::{json, Value};

http_tests!(
    every_documented_api_route_refuses_anonymous_callers_with_401_and_no_patient_data,
    forged_session_cookies_and_unknown_bearer_tokens_are_refused,
    openapi_document_is_public_json,
    login_refuses_wrong_passwords_unknown_users_and_malformed_bodies,
    ui_pages_redirect_anonymous_visitors_to_the_login_page,
    health_and_login_page_are_public,
);

fn fill(path: &str, id: &str, rid: &str) -> String {
    path.replace("{id}", id).replace("{rid}", rid)
}

#[track_caller]
fn assert_unauthenticated(r: &Resp, what: &str, secrets: &[&str]) {
    r.assert_status(401, what);
    let body = r.json();
    assert_eq!(body["error"], "unauthenticated", "{what}: {}", r.text);
    let keys: Vec<&String> = body.as_object().expect("problem object").keys().collect();
    assert!(keys.iter().all(|k| ["error", "message"].contains(&k.as_str())), "{what}: only error and message in a 401 body, got {keys:?}");
    for s in secrets {
        assert!(!r.text.contains(s), "{what}: 401 body leaks {s}: {}", r.text);
    }
    assert!(
        r.set_cookies().iter().all(|c| !c.starts_with(&format!("{COOKIE}=")) || c.contains("Max-Age=0")),
        "{what}: no session is handed out"
    );
}

async fn every_documented_api_route_refuses_anonymous_callers_with_401_and_no_patient_data(app: &TestApp) {
    // Real data behind the ids, so a leak would be visible.
    let nurse = app.login(Role::Nurse).await;
    let pid = register(&nurse, "QX-4417", "Quillfeather", "Marisol", "1984-03-27", "female").await;
    let med = nurse
        .post_json(
            &format!("/api/patients/{pid}/records"),
            &json!({"kind": "medication", "fields": {"name": "Sertraline", "dose": "50 mg once daily"}}),
        )
        .await;
    med.assert_status(201, "add medication");
    let rid = med.json()["record_id"].as_str().unwrap().to_owned();
    let secrets = ["Quillfeather", "Marisol", "QX-4417", "1984-03-27", "Sertraline"];

    let routes = ketacare_web::api::documented_routes();
    assert!(routes.len() >= 20, "the OpenAPI document lists the API: {routes:?}");
    for must in [
        ("GET", "/api/patients/{id}"),
        ("POST", "/api/patients/{id}/weights"),
        ("GET", "/api/audit"),
        ("GET", "/api/records/{rid}/history"),
    ] {
        assert!(routes.iter().any(|(m, p)| m == must.0 && p == must.1), "{must:?} is documented");
    }

    let anon = app.anon();
    let mut checked = 0;
    for (method, path) in &routes {
        if path == "/api/login" {
            continue;
        }
        assert_ne!(path, "/api/openapi.json");
        for (id, rid) in [(random_uuid(), random_uuid()), (pid.clone(), rid.clone())] {
            let url = fill(path, &id, &rid);
            let what = format!("{method} {url} without a session");
            let r = match method.as_str() {
                "GET" => anon.get(&url).await,
                "POST" => {
                    // With a plausible JSON body and with no body at all: authentication comes first.
                    let body: Value = json!({"value": 80, "base_version": 1, "reason": "test", "active": false, "user_id": id, "label": "gateway", "kind": "diagnosis", "fields": {"choice": "gad"}});
                    let with_body = anon.post_json(&url, &body).await;
                    assert_unauthenticated(&with_body, &format!("{what} (JSON body)"), &secrets);
                    anon.post_empty(&url).await
                }
                m => panic!("unexpected method {m} in documented routes"),
            };
            assert_unauthenticated(&r, &what, &secrets);
            checked += 1;
        }
    }
    assert!(checked >= 40, "checked {checked} calls");

    // Nothing was changed by all those anonymous writes.
    assert_eq!(app.patient_count().await, 1);
    let c = chart(&nurse, &pid).await;
    assert_eq!(c["records"].as_array().unwrap().len(), 1, "no record added: {c}");
    assert!(c["weights"].as_array().unwrap().is_empty(), "no weight added: {c}");
    assert_eq!(c["patient"]["version"], 1, "demographics unchanged");
}

async fn forged_session_cookies_and_unknown_bearer_tokens_are_refused(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let pid = register(&nurse, "", "Oyelaran", "Bisi", "1990-01-02", "male").await;
    let real = nurse.cookie.clone().unwrap();
    let real_token = real.split_once('=').unwrap().1.to_owned();
    let forged = [
        app.with_cookie("not-a-session"),
        app.with_cookie(""),
        app.with_cookie(&format!("{real_token}x")),
        app.with_bearer("kc_not-a-real-token"),
        app.with_bearer(&real_token), // a session token is not an API token
    ];
    for (i, s) in forged.iter().enumerate() {
        for path in ["/api/patients".to_owned(), format!("/api/patients/{pid}"), "/api/me".to_owned()] {
            let r = s.get(&path).await;
            assert_unauthenticated(&r, &format!("forged credential #{i} on {path}"), &["Oyelaran", "Bisi"]);
        }
    }
    // The real session still works afterwards.
    nurse.get("/api/me").await.assert_status(200, "real session");
}

async fn openapi_document_is_public_json(app: &TestApp) {
    let r = app.anon().get("/api/openapi.json").await;
    r.assert_status(200, "GET /api/openapi.json");
    assert!(r.header("content-type").starts_with("application/json"), "{:?}", r.headers);
    let doc = r.json();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with('3')), "openapi version: {}", doc["openapi"]);
    let paths = doc["paths"].as_object().expect("paths");
    for (_, path) in ketacare_web::api::documented_routes() {
        assert!(paths.contains_key(&path), "{path} in the served document");
    }
    assert!(doc["components"]["schemas"]["Problem"].is_object(), "error body is documented");
}

async fn login_refuses_wrong_passwords_unknown_users_and_malformed_bodies(app: &TestApp) {
    let nurse = app.user(Role::Nurse).username.clone();
    for (user, pw, what) in [
        (nurse.as_str(), "violet lantern harbour 2025", "wrong password"),
        ("nobody.here", PASSWORD, "unknown user"),
        (nurse.as_str(), "", "empty password"),
    ] {
        let r = app.try_login(user, pw).await;
        r.assert_status(401, what);
        assert_eq!(r.json()["error"], "unauthenticated", "{what}");
        assert!(r.set_cookies().is_empty(), "{what}: no cookie on a failed login: {:?}", r.set_cookies());
    }
    let anon = app.anon();
    for (body, what) in [
        (json!({"username": nurse}), "missing password"),
        (json!(["x"]), "not an object"),
        (json!({"user": nurse, "pass": PASSWORD}), "wrong keys"),
    ] {
        let r = anon.post_json("/api/login", &body).await;
        r.assert_status(422, what);
        assert_eq!(r.json()["error"], "validation", "{what}");
        assert_eq!(r.problem_fields(), vec!["body".to_owned()], "{what}");
    }
    // A form-encoded body (what a cross-site form could send) is not accepted by the JSON API.
    let r = anon.post_form_raw("/api/login", &[("username", &nurse), ("password", PASSWORD)], &[]).await;
    r.assert_status(422, "form body to the JSON login");
    assert!(r.set_cookies().is_empty());
    let r = anon.post_empty("/api/login").await;
    r.assert_status(422, "empty body");
    // The right password still works: failed attempts did not lock the account.
    app.login(Role::Nurse).await;
}

async fn ui_pages_redirect_anonymous_visitors_to_the_login_page(app: &TestApp) {
    let anon = app.anon();
    let (id, rid) = (random_uuid(), random_uuid());
    let pages = [
        "/".to_owned(),
        "/patients".to_owned(),
        "/patients/new".to_owned(),
        format!("/patients/{id}"),
        format!("/patients/{id}/edit"),
        format!("/patients/{id}/history"),
        format!("/patients/{id}/measurements"),
        format!("/patients/{id}/records?kind=medication"),
        format!("/records/{rid}"),
        format!("/records/{rid}/amend"),
        "/audit".to_owned(),
        "/admin/users".to_owned(),
        "/research".to_owned(),
        "/knowledge".to_owned(),
    ];
    for p in &pages {
        let r = anon.get(p).await;
        r.assert_status(303, &format!("GET {p} without a session"));
        assert_eq!(r.location(), "/login?expired=1", "GET {p}");
    }
    for p in ["/patients".to_owned(), format!("/patients/{id}/measurements"), "/admin/users".to_owned(), "/logout".to_owned()] {
        let r = anon.post_form_raw(&p, &[("_csrf", "x"), ("family_name", "Nobody")], &[]).await;
        r.assert_status(303, &format!("POST {p} without a session"));
        assert_eq!(r.location(), "/login?expired=1", "POST {p}");
    }
    assert_eq!(app.patient_count().await, 0);
    let login = anon.get("/login?expired=1").await;
    login.assert_status(200, "login page");
    assert!(login.text.contains("Your session has ended or you are not logged in"), "{}", login.text);
}

async fn health_and_login_page_are_public(app: &TestApp) {
    let r = app.anon().get("/health").await;
    r.assert_status(200, "GET /health");
    let h = r.json();
    assert_eq!(h["status"], "ok");
    let backend = match app.backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(h["backend"], backend);
    assert!(h["schema_version"].as_i64().is_some_and(|v| v >= 1), "{h}");
    app.anon().get("/login").await.assert_status(200, "GET /login");
    let css = app.anon().get("/static/app.css").await;
    css.assert_status(200, "GET /static/app.css");
    assert!(css.header("content-type").starts_with("text/css"));
}
