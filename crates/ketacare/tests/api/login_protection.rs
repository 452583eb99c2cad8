//! Login protection: an account locks after 10 failed logins in a row (timed unlock and an
//! administrator's unlock), an address that keeps failing is held back, and a locked account,
//! an unknown user and a wrong password get the same answer after the same work.

use crate::helpers::*;
use ketacare_domain::access::Role;
use serde_json::Value;
use std::time::Instant;

http_tests!(
    ten_failed_logins_in_a_row_lock_the_account_until_it_times_out,
    an_administrator_unlocks_a_locked_account_and_nobody_else_can,
    a_success_before_the_tenth_failure_starts_the_count_again,
    locked_unknown_and_wrong_password_get_the_same_answer_in_the_same_time,
    an_address_with_too_many_failures_is_refused_before_any_password_check,
    the_admin_page_shows_a_locked_account_and_unlocks_it,
);

const WRONG: &str = "violet lantern harbour 2025";

async fn fail(app: &TestApp, username: &str, times: usize) {
    for i in 0..times {
        app.try_login(username, WRONG).await.assert_status(401, &format!("wrong password {i}"));
    }
}

async fn account(app: &TestApp, username: &str) -> Value {
    let admin = app.login(Role::Admin).await;
    let users = admin.get("/api/admin/users").await;
    users.assert_status(200, "list users");
    users.json().as_array().expect("users").iter().find(|u| u["username"] == username).cloned().expect("the account is listed")
}

async fn ten_failed_logins_in_a_row_lock_the_account_until_it_times_out(app: &TestApp) {
    let nurse = app.user(Role::Nurse).username.clone();
    fail(app, &nurse, 10).await;
    let r = app.try_login(&nurse, PASSWORD).await;
    r.assert_status(401, "the right password on a locked account");
    assert!(r.set_cookies().is_empty(), "no session for a locked account");
    let a = account(app, &nurse).await;
    assert_eq!(a["failed_logins"], 11, "every failure counts, the refused right password too: {a}");
    assert_eq!(a["locked_until"], "2026-11-26T09:15:00Z", "locked for 15 minutes from the tenth failure: {a}");

    // The audit trail says what happened, without the password.
    let admin = app.login(Role::Admin).await;
    let audit = admin.get(&format!("/api/audit?user={nurse}&outcome=denied")).await;
    audit.assert_status(200, "audit search");
    let details: Vec<String> =
        audit.json().as_array().expect("entries").iter().map(|e| e["detail"].as_str().unwrap_or("").to_owned()).collect();
    assert!(details.iter().any(|d| d.contains("account locked after 10 consecutive failures")), "{details:?}");
    assert!(details.iter().any(|d| d == "login refused: account locked"), "{details:?}");
    assert!(!audit.text.contains(WRONG) && !audit.text.contains(PASSWORD), "no password in the audit trail");

    // Still locked after 14 minutes; free after 15.
    app.advance_minutes(14);
    app.try_login(&nurse, PASSWORD).await.assert_status(401, "still locked at 14 minutes");
    app.advance_minutes(1);
    app.login(Role::Nurse).await;
    let a = account(app, &nurse).await;
    assert_eq!(a["failed_logins"], 0, "a success clears the count: {a}");
    assert_eq!(a["locked_until"], Value::Null, "{a}");
}

async fn an_administrator_unlocks_a_locked_account_and_nobody_else_can(app: &TestApp) {
    let prescriber = app.user(Role::Prescriber).clone();
    fail(app, &prescriber.username, 10).await;
    app.try_login(&prescriber.username, PASSWORD).await.assert_status(401, "locked");

    let path = format!("/api/admin/users/{}/unlock", prescriber.id);
    for role in [Role::Nurse, Role::MedicalDirector] {
        let s = app.login(role).await;
        s.post_empty(&path).await.assert_status(403, &format!("{role:?} cannot unlock"));
    }
    app.try_login(&prescriber.username, PASSWORD).await.assert_status(401, "still locked after the refused unlocks");
    let admin = app.login(Role::Admin).await;
    admin.post_empty(&path).await.assert_status(204, "the administrator unlocks");
    admin.post_empty(&format!("/api/admin/users/{}/unlock", random_uuid())).await.assert_status(404, "unknown account");
    app.login(Role::Prescriber).await;
    let audit = admin.get("/api/audit?user=ada.admin").await;
    assert!(
        audit
            .json()
            .as_array()
            .expect("entries")
            .iter()
            .any(|e| e["detail"] == "purpose=operations; unlocked" && e["entity_id"] == prescriber.id.as_str()),
        "the unlock is audited: {}",
        audit.text
    );
}

async fn a_success_before_the_tenth_failure_starts_the_count_again(app: &TestApp) {
    let nurse = app.user(Role::Nurse).username.clone();
    fail(app, &nurse, 9).await;
    assert_eq!(account(app, &nurse).await["failed_logins"], 9);
    app.login(Role::Nurse).await;
    fail(app, &nurse, 9).await;
    app.login(Role::Nurse).await;
    let a = account(app, &nurse).await;
    assert_eq!(a["failed_logins"], 0, "{a}");
    assert_eq!(a["locked_until"], Value::Null, "never locked: failures were not consecutive");
}

async fn timed_login(app: &TestApp, username: &str, password: &str) -> (Resp, f64) {
    let t = Instant::now();
    let r = app.try_login(username, password).await;
    (r, t.elapsed().as_secs_f64())
}

async fn locked_unknown_and_wrong_password_get_the_same_answer_in_the_same_time(app: &TestApp) {
    let nurse = app.user(Role::Nurse).username.clone();
    let director = app.user(Role::MedicalDirector).username.clone();
    fail(app, &director, 10).await;
    let mut times: Vec<(&str, f64)> = Vec::new();
    let mut bodies: Vec<(&str, String)> = Vec::new();
    // Interleaved, so a slow moment of the machine hits every kind alike.
    for _ in 0..5 {
        for (what, user, pw) in [
            ("wrong password", nurse.as_str(), WRONG),
            ("unknown user", "nobody.here", WRONG),
            ("locked account", director.as_str(), PASSWORD),
        ] {
            let (r, s) = timed_login(app, user, pw).await;
            r.assert_status(401, what);
            bodies.push((what, r.text.clone()));
            times.push((what, s));
        }
        // Keep the nurse below the lockout.
        app.login(Role::Nurse).await;
    }
    let first = &bodies[0].1;
    for (what, b) in &bodies {
        assert_eq!(b, first, "{what}: the same body as a wrong password");
    }
    let median = |what: &str| {
        let mut v: Vec<f64> = times.iter().filter(|(w, _)| *w == what).map(|(_, s)| *s).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (w, u, l) = (median("wrong password"), median("unknown user"), median("locked account"));
    // A password hash is verified in every case (tens of milliseconds); skipping it for one
    // kind would make that kind many times faster.
    for (what, t) in [("unknown user", u), ("locked account", l)] {
        let ratio = t / w;
        assert!((0.33..3.0).contains(&ratio), "{what} took {t:.4} s, a wrong password {w:.4} s (ratio {ratio:.2})");
    }
}

async fn an_address_with_too_many_failures_is_refused_before_any_password_check(app: &TestApp) {
    // 50 failures from 127.0.0.1 (unknown users, so no account locks).
    for i in 0..50 {
        app.try_login(&format!("nobody.{i}"), WRONG).await.assert_status(401, &format!("failure {i}"));
    }
    let nurse = app.user(Role::Nurse).username.clone();
    let r = app.try_login(&nurse, PASSWORD).await;
    r.assert_status(429, "the 51st attempt, even with the right password");
    assert_eq!(r.json()["error"], "rate_limited");
    assert!(r.json()["message"].as_str().unwrap_or("").contains("try again in 15 minutes"), "{}", r.text);
    assert_eq!(r.header("retry-after"), "900", "Retry-After in seconds");
    assert!(r.set_cookies().is_empty());
    // The UI says the same in words.
    let ui = app.anon().post_form_raw("/login", &[("username", &nurse), ("password", PASSWORD)], &[]).await;
    ui.assert_status(429, "UI login");
    assert!(ui.text.contains("Too many failed logins from this computer"), "{}", ui.text);
    // A flood of refused requests leaves one audit entry for the hold, not one each.
    for _ in 0..20 {
        app.try_login(&nurse, PASSWORD).await.assert_status(429, "still held back");
    }
    let director = app.with_bearer(&director_token(app).await);
    let audit = director.get("/api/audit?outcome=denied").await;
    let held: Vec<_> = audit
        .json()
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["detail"].as_str().is_some_and(|d| d.contains("too many failed logins from this address")))
        .cloned()
        .collect();
    assert_eq!(held.len(), 1, "one audit entry for 22 refused attempts: {held:?}");
    // The refused attempts did not count against the account.
    app.advance_minutes(15);
    app.login(Role::Nurse).await;
    assert_eq!(account(app, &nurse).await["failed_logins"], 0);
}

async fn the_admin_page_shows_a_locked_account_and_unlocks_it(app: &TestApp) {
    let nurse = app.user(Role::Nurse).clone();
    fail(app, &nurse.username, 10).await;
    let ui = app.anon().post_form_raw("/login", &[("username", &nurse.username), ("password", PASSWORD)], &[]).await;
    ui.assert_status(401, "UI login on a locked account");
    assert!(ui.text.contains("locked after 10 failed logins in a row"), "the message names the lockout: {}", ui.text);
    let admin = app.login(Role::Admin).await;
    let page = admin.get("/admin/users").await;
    page.assert_status(200, "users page");
    assert!(page.text.contains("locked until 09:15 UTC"), "{}", page.text);
    let r = admin.post_form("/admin/users", &format!("/admin/users/{}/unlock", nurse.id), &[]).await;
    r.assert_status(303, "unlock from the page");
    let page = admin.get("/admin/users").await;
    assert!(!page.text.contains("locked until"), "no longer shown as locked");
    app.login(Role::Nurse).await;
}

/// An API token of the medical director, issued without a login (the test address is held
/// back).
async fn director_token(app: &TestApp) -> String {
    let id = |r: Role| ketacare_domain::ids::UserId::parse(&app.user(r).id).expect("id");
    let admin = app.app.store().get_user(id(Role::Admin)).await.expect("read").expect("admin");
    let (secret, _) = app
        .app
        .issue_api_token(&app.app.system_principal(admin), &app.user(Role::MedicalDirector).id, "audit reader")
        .await
        .expect("token");
    secret
}
