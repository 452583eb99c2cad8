//! Login sessions: idle timeout, absolute lifetime, logout and deactivated accounts.

use crate::helpers::*;
use ketacare_domain::access::Role;
use serde_json::json;

http_tests!(
    session_ends_after_fifteen_idle_minutes,
    activity_keeps_a_session_alive_until_its_absolute_lifetime,
    api_logout_ends_the_session,
    ui_logout_needs_the_form_token_and_ends_the_session,
    deactivating_a_user_ends_their_sessions_and_blocks_login,
    each_login_is_a_separate_session,
);

async fn session_ends_after_fifteen_idle_minutes(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    nurse.get("/api/me").await.assert_status(200, "fresh session");
    app.advance_minutes(16);
    let r = nurse.get("/api/me").await;
    r.assert_status(401, "after 16 idle minutes");
    assert_eq!(r.json()["error"], "unauthenticated");
    let page = nurse.get("/patients").await;
    page.assert_status(303, "UI after expiry");
    assert_eq!(page.location(), "/login?expired=1");
    // The expired session stays dead even if the clock could not go back.
    nurse.get("/api/patients").await.assert_status(401, "still expired");
    // Logging in again works.
    let again = app.login(Role::Nurse).await;
    again.get("/api/me").await.assert_status(200, "new session");
}

async fn activity_keeps_a_session_alive_until_its_absolute_lifetime(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    // Exactly 15 idle minutes already ends a session.
    let short = app.login(Role::Prescriber).await;
    app.advance_minutes(14);
    nurse.get("/api/me").await.assert_status(200, "after 14 minutes");
    app.advance_minutes(1);
    short.get("/api/me").await.assert_status(401, "prescriber idle for exactly 15 minutes");
    nurse.get("/api/me").await.assert_status(200, "nurse was active a minute ago");
    // Stay active every 14 minutes: the session lasts 12 hours and no longer.
    let mut elapsed = 15;
    while elapsed + 14 < 12 * 60 {
        app.advance_minutes(14);
        elapsed += 14;
        nurse.get("/api/me").await.assert_status(200, &format!("active at {elapsed} minutes"));
    }
    app.advance_minutes(12 * 60 - elapsed);
    nurse.get("/api/me").await.assert_status(401, "after 12 hours despite activity");
}

async fn api_logout_ends_the_session(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let other = app.login(Role::Nurse).await;
    let r = nurse.post_empty("/api/logout").await;
    r.assert_status(204, "logout");
    let cleared = r.set_cookies();
    assert!(cleared.iter().any(|c| c.starts_with(&format!("{COOKIE}=;")) && c.contains("Max-Age=0")), "cookie cleared: {cleared:?}");
    nurse.get("/api/me").await.assert_status(401, "after logout");
    nurse.post_empty("/api/logout").await.assert_status(401, "logout twice");
    other.get("/api/me").await.assert_status(200, "the nurse's other session is unaffected");
}

async fn ui_logout_needs_the_form_token_and_ends_the_session(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let r = nurse.post_form_raw("/logout", &[("_csrf", "forged")], &[]).await;
    r.assert_status(403, "logout with a forged token");
    nurse.get("/api/me").await.assert_status(200, "still logged in");
    let r = nurse.post_form("/patients", "/logout", &[]).await;
    r.assert_status(303, "logout form");
    assert_eq!(r.location(), "/login");
    assert!(r.set_cookies().iter().any(|c| c.contains("Max-Age=0")), "cookie cleared");
    nurse.get("/api/me").await.assert_status(401, "after UI logout");
}

async fn deactivating_a_user_ends_their_sessions_and_blocks_login(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    nurse.get("/api/patients").await.assert_status(200, "before");
    let admin = app.login(Role::Admin).await;
    let nurse_id = app.user(Role::Nurse).id.clone();
    let r = admin.post_json(&format!("/api/admin/users/{nurse_id}/active"), &json!({"active": false})).await;
    r.assert_status(204, "deactivate");
    let r = nurse.get("/api/patients").await;
    r.assert_status(401, "deactivated user's session");
    assert_eq!(r.json()["error"], "unauthenticated");
    app.try_login("nina.nurse", PASSWORD).await.assert_status(401, "deactivated user logs in");
    let users = admin.get("/api/admin/users").await.json();
    let row = users.as_array().unwrap().iter().find(|u| u["id"] == nurse_id.as_str()).cloned().unwrap();
    assert_eq!(row["active"], false);

    // The admin cannot lock themselves out; only admins may change accounts.
    let admin_id = app.user(Role::Admin).id.clone();
    let r = admin.post_json(&format!("/api/admin/users/{admin_id}/active"), &json!({"active": false})).await;
    r.assert_status(422, "deactivate self");
    assert_eq!(r.problem_fields(), vec!["active"]);
    let director = app.login(Role::MedicalDirector).await;
    director
        .post_json(&format!("/api/admin/users/{nurse_id}/active"), &json!({"active": true}))
        .await
        .assert_status(403, "director reactivates");
    app.try_login("nina.nurse", PASSWORD).await.assert_status(401, "still inactive");

    admin.post_json(&format!("/api/admin/users/{nurse_id}/active"), &json!({"active": true})).await.assert_status(204, "reactivate");
    nurse.get("/api/patients").await.assert_status(401, "the old session stays ended after reactivation");
    let back = app.login(Role::Nurse).await;
    back.get("/api/patients").await.assert_status(200, "reactivated user");
    admin
        .post_json(&format!("/api/admin/users/{}/active", random_uuid()), &json!({"active": false}))
        .await
        .assert_status(404, "unknown user");
}

async fn each_login_is_a_separate_session(app: &TestApp) {
    let a = app.login(Role::Nurse).await;
    let b = app.login(Role::Nurse).await;
    assert_ne!(a.cookie, b.cookie, "a new secret per login");
    app.advance_minutes(10);
    a.get("/api/me").await.assert_status(200, "a active");
    app.advance_minutes(10);
    a.get("/api/me").await.assert_status(200, "a was active 10 minutes ago");
    b.get("/api/me").await.assert_status(401, "b idle for 20 minutes");
}
