//! Account administration through the API and the admin page.

use crate::helpers::*;
use ketacare_domain::access::Role;
use serde_json::json;

http_tests!(
    admin_creates_accounts_with_checked_passwords,
    invalid_username_is_not_blamed_on_a_good_password,
    admin_page_creates_users_and_shows_a_new_token_once,
);

async fn admin_creates_accounts_with_checked_passwords(app: &TestApp) {
    let admin = app.login(Role::Admin).await;
    let r = admin
        .post_json(
            "/api/admin/users",
            &json!({"username": "Omar.Nurse", "display_name": "Omar Nurse, RN", "role": "nurse", "password": "quiet meadow lighthouse"}),
        )
        .await;
    r.assert_status(201, "create user");
    let u = r.json();
    assert_eq!(u["username"], "omar.nurse", "usernames are lower-cased");
    assert_eq!(u["role"], "nurse");
    assert_eq!(u["active"], true);
    assert!(u.get("password").is_none() && u.get("password_hash").is_none(), "{u}");
    let r = app.try_login("omar.nurse", "quiet meadow lighthouse").await;
    r.assert_status(200, "new account logs in");

    let r =
        admin.post_json("/api/admin/users", &json!({"username": "x", "display_name": "", "role": "janitor", "password": "short"})).await;
    r.assert_status(422, "everything wrong");
    let mut f = r.problem_fields();
    f.sort();
    assert_eq!(f, vec!["display_name", "password", "role", "username"], "{}", r.text);
    assert!(r.field_message("password").contains("at least 12"), "{}", r.text);
    for (pw, needle) in [("omar.nurse.2-is-great", "username"), ("password1234", "commonly used")] {
        let r = admin
            .post_json(
                "/api/admin/users",
                &json!({"username": "omar.nurse.2", "display_name": "Omar Two", "role": "nurse", "password": pw}),
            )
            .await;
        r.assert_status(422, &format!("password {pw}"));
        assert_eq!(r.problem_fields(), vec!["password"], "{}", r.text);
        assert!(r.field_message("password").contains(needle), "{}", r.text);
    }
    let r = admin
        .post_json(
            "/api/admin/users",
            &json!({"username": "NINA.NURSE", "display_name": "Impostor", "role": "admin", "password": "quiet meadow lighthouse"}),
        )
        .await;
    r.assert_status(422, "duplicate username");
    assert_eq!(r.problem_fields(), vec!["username"]);
    assert!(r.field_message("username").contains("already taken"));

    let director = app.login(Role::MedicalDirector).await;
    let r = director
        .post_json(
            "/api/admin/users",
            &json!({"username": "sneaky.admin", "display_name": "Sneaky", "role": "admin", "password": "quiet meadow lighthouse"}),
        )
        .await;
    r.assert_status(403, "director creates an admin");
    app.try_login("sneaky.admin", "quiet meadow lighthouse").await.assert_status(401, "was not created");

    let users = admin.get("/api/admin/users").await.json();
    assert_eq!(users.as_array().unwrap().len(), 6, "five test accounts and omar.nurse: {users}");
    let audit = admin.get("/api/audit?user=ada.admin&action=C").await.json();
    assert!(audit.as_array().unwrap().iter().any(|e| e["entity_type"] == "User"), "account creation audited: {audit}");
}

/// Product bug: with an invalid username, `validate_new_user` checks the password against an
/// empty username, and every password "contains" the empty string.
async fn invalid_username_is_not_blamed_on_a_good_password(app: &TestApp) {
    let admin = app.login(Role::Admin).await;
    for username in ["x", "bad user!", ""] {
        let r = admin
            .post_json(
                "/api/admin/users",
                &json!({"username": username, "display_name": "Some Name", "role": "nurse", "password": "quiet meadow lighthouse"}),
            )
            .await;
        r.assert_status(422, &format!("bad username {username:?}, good password"));
        assert_eq!(r.problem_fields(), vec!["username"], "only the username is wrong: {}", r.text);
    }
    // The same password with a valid username is accepted.
    admin
        .post_json(
            "/api/admin/users",
            &json!({"username": "valid.name", "display_name": "Some Name", "role": "nurse", "password": "quiet meadow lighthouse"}),
        )
        .await
        .assert_status(201, "valid username, same password");
}

async fn admin_page_creates_users_and_shows_a_new_token_once(app: &TestApp) {
    let admin = app.login(Role::Admin).await;
    let r = admin
        .post_form(
            "/admin/users",
            "/admin/users",
            &[
                ("username", "paula.prescriber"),
                ("display_name", "Dr Paula"),
                ("role", "prescriber"),
                ("password", "quiet meadow lighthouse"),
            ],
        )
        .await;
    r.assert_status(303, "create user by form");
    assert_eq!(r.location(), "/admin/users");
    let page = admin.get("/admin/users").await;
    assert!(page.text.contains("paula.prescriber"), "listed");
    assert!(!page.text.contains("quiet meadow lighthouse"), "the password is never shown");

    let r = admin
        .post_form(
            "/admin/users",
            "/admin/users",
            &[("username", "bad user!"), ("display_name", "X"), ("role", "nurse"), ("password", "short")],
        )
        .await;
    r.assert_status(422, "bad user form");
    assert!(r.text.contains("Nothing was saved"));

    let nurse_id = app.user(Role::Nurse).id.clone();
    let r = admin.post_form("/admin/users", "/admin/tokens", &[("user_id", nurse_id.as_str()), ("label", "lab interface")]).await;
    r.assert_status(200, "issue token by form");
    let start = r.text.find("id=\"new-token\"").expect("new token shown");
    let code = &r.text[start..];
    let secret = code[code.find("<code>").unwrap() + 6..code.find("</code>").unwrap()].to_owned();
    assert!(secret.starts_with("kc_"), "{secret}");
    app.with_bearer(&secret).get("/api/patients").await.assert_status(200, "token from the page works");
    let again = admin.get("/admin/users").await;
    assert!(!again.text.contains(&secret), "shown once only");
    assert!(again.text.contains("lab interface"));
}
