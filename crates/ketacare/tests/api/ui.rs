//! The staff UI: anti-forgery tokens, same-origin checks, the weight form, headers and cookies.

use crate::helpers::*;
use ketacare_domain::access::Role;

http_tests!(
    registration_form_without_a_valid_csrf_token_is_refused_and_saves_nothing,
    registration_form_with_its_csrf_token_registers_and_redirects_to_the_chart,
    cross_origin_posts_are_refused,
    weight_form_asks_did_you_enter_pounds_and_saves_only_when_confirmed,
    pages_carry_security_headers_and_the_session_cookie_is_http_only_and_strict,
    ui_login_form_sets_the_session_cookie,
    patient_data_is_html_escaped_on_pages,
);

const FORM: [(&str, &str); 5] =
    [("mrn", "UI-0001"), ("family_name", "Formby"), ("given_name", "Ursula"), ("date_of_birth", "1981-07-19"), ("sex", "female")];

fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut v = FORM.to_vec();
    v.extend_from_slice(extra);
    v
}

async fn registration_form_without_a_valid_csrf_token_is_refused_and_saves_nothing(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let prescriber = app.login(Role::Prescriber).await;
    let page = nurse.get("/patients/new").await;
    page.assert_status(200, "register form");
    let real = extract_csrf(&page.text).expect("the form carries a token");
    assert!(real.len() >= 32, "a long random token");
    let other_sessions = prescriber.csrf("/patients/new").await;
    assert_ne!(real, other_sessions, "tokens are per session");

    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("no token", FORM.to_vec()),
        ("empty token", with(&[("_csrf", "")])),
        ("wrong token", with(&[("_csrf", "0123456789abcdef0123456789abcdef0123456789a")])),
    ];
    for (what, fields) in cases {
        let r = nurse.post_form_raw("/patients", &fields, &[]).await;
        r.assert_status(403, what);
        assert!(r.header("content-type").starts_with("text/html"), "{what}: an error page");
    }
    let mut fields = FORM.to_vec();
    fields.push(("_csrf", other_sessions.as_str()));
    nurse.post_form_raw("/patients", &fields, &[]).await.assert_status(403, "another session's token");
    assert_eq!(app.patient_count().await, 0, "nothing saved");
    // The same form with its own token works.
    let mut fields = FORM.to_vec();
    fields.push(("_csrf", real.as_str()));
    nurse.post_form_raw("/patients", &fields, &[]).await.assert_status(303, "own token");
    assert_eq!(app.patient_count().await, 1);
}

async fn registration_form_with_its_csrf_token_registers_and_redirects_to_the_chart(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let r = nurse.post_form("/patients/new", "/patients", &FORM).await;
    r.assert_status(303, "register by form");
    let loc = r.location();
    let id = loc.strip_prefix("/patients/").unwrap_or_else(|| panic!("redirect to the chart, got {loc}"));
    assert!(uuid::Uuid::parse_str(id).is_ok(), "chart URL has the patient id: {loc}");
    let page = nurse.get(&loc).await;
    page.assert_status(200, "chart page");
    assert!(page.text.contains("Formby, Ursula"), "the chart shows the patient");
    assert!(page.text.contains("UI-0001"));
    assert_eq!(chart(&nurse, id).await["patient"]["demographics"]["date_of_birth"], "1981-07-19");

    // A bad form is re-rendered with the errors and the typed values, and nothing is saved.
    let bad = [("mrn", "UI-0002"), ("family_name", "Keepme"), ("given_name", "Typed"), ("date_of_birth", "19/07/1981"), ("sex", "f?")];
    let r = nurse.post_form("/patients/new", "/patients", &bad).await;
    r.assert_status(422, "bad form");
    assert!(r.text.contains("Nothing was saved"), "error summary");
    assert!(r.text.contains("YYYY-MM-DD"), "date hint in the error");
    assert!(r.text.contains("value=\"Keepme\""), "typed values are kept");
    assert!(r.text.contains("aria-invalid=\"true\""), "invalid fields are marked");
    assert_eq!(app.patient_count().await, 1);
}

async fn cross_origin_posts_are_refused(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let token = nurse.csrf("/patients/new").await;
    let mut fields = FORM.to_vec();
    fields.push(("_csrf", token.as_str()));
    for (h, v) in [("origin", "http://evil.example"), ("origin", "https://127.0.0.1.evil.example"), ("sec-fetch-site", "cross-site")] {
        let r = nurse.post_form_raw("/patients", &fields, &[(h, v)]).await;
        r.assert_status(403, &format!("form post with {h}: {v}"));
    }
    // The JSON API is protected the same way.
    let body = patient_body("UI-0009", "Cross", "Site", "1980-01-01", "male");
    let r = nurse.send(nurse.request(reqwest::Method::POST, "/api/patients").header("origin", "http://evil.example").json(&body)).await;
    r.assert_status(403, "cross-origin API post");
    assert_eq!(app.patient_count().await, 0, "nothing saved");
    // A same-origin browser post goes through.
    let own = app.base.clone();
    let r = nurse.post_form_raw("/patients", &fields, &[("origin", own.as_str()), ("sec-fetch-site", "same-origin")]).await;
    r.assert_status(303, "same-origin post");
    assert_eq!(app.patient_count().await, 1);
}

async fn weight_form_asks_did_you_enter_pounds_and_saves_only_when_confirmed(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let pid = register(&nurse, "UI-0003", "Pound", "Paula", "1977-02-02", "female").await;
    let page = format!("/patients/{pid}/measurements?type=weight");
    let action = format!("/patients/{pid}/measurements");

    let r = nurse.post_form(&page, &action, &[("type", "weight"), ("value", "80")]).await;
    r.assert_status(303, "first weight");
    assert_eq!(r.location(), format!("/patients/{pid}#anthropometry"));
    app.advance_minutes(1);

    let r = nurse.post_form(&page, &action, &[("type", "weight"), ("value", "176.4")]).await;
    r.assert_status(422, "176.4 after 80");
    assert!(r.text.contains("Did you enter pounds?"), "the warning is shown: {}", r.text);
    assert!(r.text.contains("name=\"acknowledge\" value=\"possible_pounds\""), "a box to confirm it");
    assert!(r.text.contains("value=\"176.4\""), "the typed value is kept");
    assert_eq!(chart(&nurse, &pid).await["weights"].as_array().unwrap().len(), 1, "nothing saved");

    let r = nurse.post_form(&page, &action, &[("type", "weight"), ("value", "160 lb")]).await;
    r.assert_status(422, "pounds as text");
    assert!(r.text.contains("must be in kg"), "field error shown: {}", r.text);
    assert_eq!(chart(&nurse, &pid).await["weights"].as_array().unwrap().len(), 1, "nothing saved");

    let r = nurse.post_form(&page, &action, &[("type", "weight"), ("value", "176.4"), ("acknowledge", "possible_pounds")]).await;
    r.assert_status(303, "confirmed");
    let c = chart(&nurse, &pid).await;
    let w: Vec<&str> = c["weights"].as_array().unwrap().iter().map(|w| w["value"].as_str().unwrap()).collect();
    assert_eq!(w, vec!["80", "176.4"]);
    let chart_page = nurse.get(&format!("/patients/{pid}")).await;
    assert!(chart_page.text.contains("176.4 kg"), "latest weight on the chart page");
}

async fn pages_carry_security_headers_and_the_session_cookie_is_http_only_and_strict(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let attrs: Vec<String> = nurse.set_cookie.split(';').map(|a| a.trim().to_ascii_lowercase()).collect();
    assert!(attrs.contains(&"httponly".to_owned()), "HttpOnly: {}", nurse.set_cookie);
    assert!(attrs.contains(&"samesite=strict".to_owned()), "SameSite=Strict: {}", nurse.set_cookie);
    assert!(attrs.contains(&"path=/".to_owned()), "Path=/: {}", nurse.set_cookie);
    assert!(attrs.contains(&"max-age=43200".to_owned()), "lives at most 12 hours: {}", nurse.set_cookie);
    assert!(!attrs.contains(&"secure".to_owned()), "plain HTTP test server: no Secure flag");

    let pid = register(&nurse, "UI-0004", "Header", "Hana", "1980-01-01", "female").await;
    for path in [
        "/patients".to_owned(),
        format!("/patients/{pid}"),
        format!("/api/patients/{pid}"),
        "/api/patients".to_owned(),
        "/login".to_owned(),
    ] {
        let r = if path == "/login" { app.anon().get(&path).await } else { nurse.get(&path).await };
        r.assert_status(200, &path);
        let csp = r.header("content-security-policy");
        assert!(csp.contains("default-src 'self'"), "{path}: CSP {csp}");
        assert!(
            csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'") && csp.contains("object-src 'none'"),
            "{path}: CSP {csp}"
        );
        assert!(!csp.contains("unsafe-inline"), "{path}: no inline scripts allowed");
        assert_eq!(r.header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(r.header("cache-control"), "no-store", "{path}: patient data is never cached");
        assert_eq!(r.header("x-frame-options"), "DENY", "{path}");
        assert_eq!(r.header("referrer-policy"), "same-origin", "{path}");
        assert_eq!(r.header("strict-transport-security"), "", "{path}: no HSTS when not served over HTTPS");
    }
    // Error responses too.
    let r = app.anon().get("/api/patients").await;
    assert_eq!(r.header("cache-control"), "no-store");
    assert_eq!(r.header("x-content-type-options"), "nosniff");
    let page = nurse.get("/patients").await;
    assert!(page.header("content-type").starts_with("text/html"));
    assert!(!page.text.contains("<script"), "no scripts on pages");
}

async fn ui_login_form_sets_the_session_cookie(app: &TestApp) {
    let anon = app.anon();
    let r = anon.post_form_raw("/login", &[("username", "nina.nurse"), ("password", "wrong password here")], &[]).await;
    r.assert_status(401, "wrong password on the form");
    assert!(r.text.contains("The username or password is not correct"));
    assert!(r.text.contains("value=\"nina.nurse\""), "username kept");
    assert!(!r.text.contains("wrong password here"), "password not echoed");
    assert!(r.set_cookies().is_empty());

    let r = anon.post_form_raw("/login", &[("username", "nina.nurse"), ("password", PASSWORD)], &[]).await;
    r.assert_status(303, "login form");
    assert_eq!(r.location(), "/");
    let cookie = r.set_cookies().into_iter().find(|c| c.starts_with(&format!("{COOKIE}="))).expect("session cookie");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let token = cookie.split(';').next().unwrap().split_once('=').unwrap().1.to_owned();
    let s = app.with_cookie(&token);
    let home = s.get("/").await;
    home.assert_status(303, "home");
    assert_eq!(home.location(), "/patients", "a nurse starts at the patient list");
    s.get("/patients").await.assert_status(200, "logged in by form");
}

async fn patient_data_is_html_escaped_on_pages(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let pid = register(&nurse, "UI-0005", "<script>alert(1)</script>", "\"onmouseover=x", "1980-01-01", "female").await;
    for path in [format!("/patients/{pid}"), "/patients".to_owned(), format!("/patients/{pid}/history")] {
        let r = nurse.get(&path).await;
        r.assert_status(200, &path);
        assert!(!r.text.contains("<script>alert(1)</script>"), "{path}: markup in data is escaped");
        assert!(r.text.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{path}: shown as text");
        assert!(!r.text.contains("\"onmouseover=x"), "{path}: quotes escaped");
    }
}

/// Served over HTTPS (`secure_cookies` on, behind a TLS proxy): HSTS on every response, and the
/// session cookie is `Secure` with the `__Host-` prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_https_every_response_carries_hsts_and_secure_cookies() {
    let db = ketacare_db_tests::fresh_sqlite().await;
    let config = ketacare::Config {
        database_url: db.url.clone(),
        listen: "127.0.0.1:0".into(),
        secure_cookies: true,
        ..ketacare::Config::default()
    };
    let server = ketacare::Server::start(&config, None).await.expect("server starts");
    let base = format!("http://{}", server.addr);
    let input = ketacare_app::NewUserInput {
        username: "hana.nurse".into(),
        display_name: "Hana Nurse".into(),
        role: "nurse".into(),
        password: PASSWORD.into(),
    };
    server.app.create_user_as_system(&input).await.expect("user");
    let c = reqwest::Client::new();
    for path in ["/health", "/login", "/api/openapi.json", "/api/patients"] {
        let r = c.get(format!("{base}{path}")).send().await.expect("request");
        assert_eq!(
            r.headers().get("strict-transport-security").and_then(|v| v.to_str().ok()),
            Some("max-age=31536000; includeSubDomains"),
            "{path}"
        );
    }
    let r = c
        .post(format!("{base}/api/login"))
        .json(&serde_json::json!({"username": "hana.nurse", "password": PASSWORD}))
        .send()
        .await
        .expect("login");
    let cookie = r.headers().get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert!(cookie.starts_with("__Host-ketacare_session=") && cookie.contains("; Secure") && cookie.contains("HttpOnly"), "{cookie}");
    server.stop().await;
}
