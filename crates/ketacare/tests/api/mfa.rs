//! Two-step sign-in: enrolment at the first sign-in of a role that requires it, one-use codes
//! and recovery codes, attempts that run out and count towards the lock, the clinic policy,
//! moving to a new phone, and an administrator's reset. The harness turns the policy off for
//! the other tests; these put the clinic default back first.

use crate::helpers::*;
use ketacare_domain::access::Role;
use ketacare_domain::mfa::TotpSecret;
use serde_json::{json, Value};

http_tests!(
    a_prescriber_enrols_at_the_first_sign_in_and_then_needs_a_code_each_time,
    a_code_is_accepted_once_even_when_sent_twice_at_once,
    wrong_codes_use_up_the_sign_in_and_count_towards_the_account_lock,
    recovery_codes_work_once_each,
    the_medical_director_decides_which_roles_must_use_it,
    a_person_moves_to_a_new_phone_from_their_account,
    an_administrator_resets_a_lost_phone_and_the_sessions_end,
    the_code_page_takes_a_person_from_password_to_session,
);

/// Puts the clinic default back; returns the medical director's and an administrator's
/// sessions, opened before (they would need two-step sign-in after).
async fn clinic_default(app: &TestApp) -> (Session, Session) {
    let director = app.login(Role::MedicalDirector).await;
    let admin = app.login(Role::Admin).await;
    director
        .post_json(
            "/api/policy/mfa",
            &json!({"required_roles": "admin,medical_director,prescriber", "reason": "clinic default", "password": PASSWORD}),
        )
        .await
        .assert_status(200, "the director puts the default back");
    (director, admin)
}

fn code(app: &TestApp, secret: &str, offset_seconds: i64) -> String {
    use ketacare_app::Clock;
    TotpSecret::parse_base32(secret).expect("base32 secret").code_at(app.clock.now().timestamp() + offset_seconds)
}

/// A caller carrying the session cookie a response set.
fn session_from(app: &TestApp, r: &Resp) -> Session {
    let c = r
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with(&format!("{COOKIE}=")))
        .unwrap_or_else(|| panic!("a session cookie: {:?}", r.headers));
    let token = c.split(';').next().unwrap_or("").trim_start_matches(&format!("{COOKIE}=")).to_owned();
    app.with_cookie(&token)
}

/// Signs a role in through enrolment; returns the secret, the recovery codes and the session.
async fn enrol(app: &TestApp, role: Role) -> (String, Vec<String>, Session) {
    let username = app.user(role).username.clone();
    let r = app.try_login(&username, PASSWORD).await;
    r.assert_status(202, "a right password for a role that requires two-step sign-in");
    let b = r.json();
    assert_eq!(b["second_step"], "enrol", "{b}");
    assert!(r.set_cookies().is_empty(), "no session before the second step");
    let secret = b["secret"].as_str().expect("secret").to_owned();
    assert_eq!(secret.len(), 32, "160-bit secret in base32");
    let uri = b["otpauth_uri"].as_str().expect("uri");
    assert!(uri.starts_with("otpauth://totp/") && uri.contains(&format!("secret={secret}")), "{uri}");
    let done = app.anon().post_json("/api/login/code", &json!({"challenge": b["challenge"], "code": code(app, &secret, 0)})).await;
    done.assert_status(200, "the first code enrols and signs in");
    let d = done.json();
    assert_eq!(d["username"], username.as_str());
    let codes: Vec<String> =
        d["recovery_codes"].as_array().expect("recovery codes").iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    (secret, codes, session_from(app, &done))
}

async fn challenge(app: &TestApp, username: &str) -> String {
    let r = app.try_login(username, PASSWORD).await;
    r.assert_status(202, "the password is right; a code is needed");
    assert_eq!(r.json()["second_step"], "code");
    r.json()["challenge"].as_str().expect("challenge").to_owned()
}

async fn send_code(app: &TestApp, challenge: &str, code: &str) -> Resp {
    app.anon().post_json("/api/login/code", &json!({"challenge": challenge, "code": code})).await
}

async fn a_prescriber_enrols_at_the_first_sign_in_and_then_needs_a_code_each_time(app: &TestApp) {
    let (director, _) = clinic_default(app).await;
    let nurse = app.try_login(&app.user(Role::Nurse).username, PASSWORD).await;
    nurse.assert_status(200, "a nurse is not required to use two-step sign-in by default");

    let (secret, codes, s) = enrol(app, Role::Prescriber).await;
    assert_eq!(codes.len(), 10, "ten recovery codes");
    assert!(codes.iter().all(|c| c.len() == 19 && c.matches('-').count() == 3), "{codes:?}");
    s.get("/api/me").await.assert_status(200, "the session works");
    let status = s.get("/api/account/mfa").await;
    assert_eq!(status.json()["enrolled"], true);
    assert_eq!(status.json()["recovery_codes_left"], 10);

    // Next sign-in: the password alone is not enough.
    let username = app.user(Role::Prescriber).username.clone();
    let ch = challenge(app, &username).await;
    let wrong = send_code(app, &ch, "000000").await;
    wrong.assert_status(422, "a wrong code");
    assert!(wrong.field_message("code").contains("not right"), "{}", wrong.text);
    assert!(wrong.field_message("code").contains("attempts left"), "{}", wrong.text);
    // The enrolment's code, in the same 30-second step: a replay.
    let replay = send_code(app, &ch, &code(app, &secret, 0)).await;
    replay.assert_status(422, "the code used to enrol cannot be used again");
    assert!(replay.field_message("code").contains("already been used"), "{}", replay.text);
    app.advance_minutes(1);
    let ok = send_code(app, &ch, &code(app, &secret, 0)).await;
    ok.assert_status(200, "the next code signs in");
    session_from(app, &ok).get("/api/me").await.assert_status(200, "a working session");
    send_code(app, &ch, &code(app, &secret, 30)).await.assert_status(401, "a challenge is used once");

    // The phone's clock 30 s behind still works; 90 s does not.
    app.advance_minutes(1);
    let ch = challenge(app, &username).await;
    send_code(app, &ch, &code(app, &secret, -90)).await.assert_status(422, "a code three steps old");
    send_code(app, &ch, &code(app, &secret, -30)).await.assert_status(200, "a code one step old");

    // Audited, with the second factor named.
    let audit = director.get(&format!("/api/audit?user={username}")).await;
    audit.assert_status(200, "audit");
    let details: Vec<String> = audit.json().as_array().unwrap().iter().map(|e| e["detail"].as_str().unwrap_or("").to_owned()).collect();
    for expected in [
        "password accepted; the role requires two-step sign-in, enrolment shown",
        "login (password; two-step sign-in enrolled)",
        "password accepted; waiting for the authenticator code",
        "second step refused: that code is not right",
        "second step refused: that code has already been used",
        "login (password and authenticator code)",
    ] {
        assert!(details.iter().any(|d| d == expected), "audit has {expected:?}: {details:?}");
    }
}

async fn a_code_is_accepted_once_even_when_sent_twice_at_once(app: &TestApp) {
    clinic_default(app).await;
    let (secret, _, _) = enrol(app, Role::Prescriber).await;
    app.advance_minutes(1);
    let username = app.user(Role::Prescriber).username.clone();
    let (a, b) = (challenge(app, &username).await, challenge(app, &username).await);
    let c = code(app, &secret, 0);
    let (ra, rb) = tokio::join!(send_code(app, &a, &c), send_code(app, &b, &c));
    let mut statuses = [ra.status.as_u16(), rb.status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 422], "one sign-in per code: {} / {}", ra.text, rb.text);
}

async fn wrong_codes_use_up_the_sign_in_and_count_towards_the_account_lock(app: &TestApp) {
    let (_, admin) = clinic_default(app).await;
    let (secret, _, _) = enrol(app, Role::Prescriber).await;
    let username = app.user(Role::Prescriber).username.clone();
    // Five wrong codes end a sign-in.
    let ch = challenge(app, &username).await;
    for i in 1..=4 {
        let r = send_code(app, &ch, "123456").await;
        r.assert_status(422, &format!("wrong code {i}"));
        assert!(r.field_message("code").contains(&format!("{} attempt", 5 - i)), "{}", r.text);
    }
    let fifth = send_code(app, &ch, "123456").await;
    fifth.assert_status(401, "the fifth wrong code ends the sign-in");
    assert_eq!(fifth.json()["error"], "sign_in_again");
    app.advance_minutes(1);
    send_code(app, &ch, &code(app, &secret, 0)).await.assert_status(401, "even the right code cannot revive it");

    // A right password does not set the count back: five more wrong codes make ten failures.
    let ch = challenge(app, &username).await;
    for _ in 0..5 {
        send_code(app, &ch, "123456").await;
    }
    let r = app.try_login(&username, PASSWORD).await;
    r.assert_status(401, "ten failures in a row lock the account, password and codes alike");
    let users = admin.get("/api/admin/users").await;
    let u = users.json().as_array().unwrap().iter().find(|u| u["username"] == username.as_str()).cloned().unwrap();
    // Ten failures locked it; the right password on the locked account counted as an eleventh.
    assert_eq!(u["failed_logins"], 11, "{u}");
    assert!(u["locked_until"].is_string(), "{u}");
    admin.post_empty(&format!("/api/admin/users/{}/unlock", u["id"].as_str().unwrap())).await.assert_status(204, "unlock");
    app.advance_minutes(1);
    let ch = challenge(app, &username).await;
    send_code(app, &ch, &code(app, &secret, 0)).await.assert_status(200, "after the unlock, password and code sign in");

    // A challenge expires after five minutes.
    app.advance_minutes(1);
    let ch = challenge(app, &username).await;
    app.advance_minutes(6);
    send_code(app, &ch, &code(app, &secret, 0)).await.assert_status(401, "an expired sign-in");
}

async fn recovery_codes_work_once_each(app: &TestApp) {
    clinic_default(app).await;
    let (_, codes, _) = enrol(app, Role::Prescriber).await;
    let username = app.user(Role::Prescriber).username.clone();
    let ch = challenge(app, &username).await;
    // Typed in lower case with spaces instead of dashes.
    let typed = codes[3].to_lowercase().replace('-', " ");
    let r = send_code(app, &ch, &typed).await;
    r.assert_status(200, "a recovery code signs in");
    assert_eq!(r.json()["recovery_codes_left"], 9);
    let ch = challenge(app, &username).await;
    let again = send_code(app, &ch, &codes[3]).await;
    again.assert_status(422, "a used recovery code");
    assert!(again.field_message("code").contains("recovery code"), "{}", again.text);
    send_code(app, &ch, "ABCD-EFGH-JKLM-NPQR").await.assert_status(422, "somebody else's or an invented code");
    send_code(app, &ch, "hello").await.assert_status(422, "not a code at all");
    send_code(app, &ch, &codes[4]).await.assert_status(200, "another recovery code");
}

async fn the_medical_director_decides_which_roles_must_use_it(app: &TestApp) {
    let director = app.login(Role::MedicalDirector).await;
    let current = director.get("/api/policy/mfa").await;
    current.assert_status(200, "read the policy");
    assert_eq!(current.json()["required_roles"], json!([]), "the harness turned it off");
    let admin = app.login(Role::Admin).await;
    admin
        .post_json("/api/policy/mfa", &json!({"required_roles": "none", "reason": "an administrator tries", "password": PASSWORD}))
        .await
        .assert_status(403, "clinic policy is the medical director's");
    let bad =
        director.post_json("/api/policy/mfa", &json!({"required_roles": "nurse,surgeon", "reason": "typo", "password": PASSWORD})).await;
    bad.assert_status(422, "an unknown role");
    assert!(bad.field_message("value").contains("surgeon") || bad.field_message("value").contains("must be"), "{}", bad.text);
    let no_reason = director.post_json("/api/policy/mfa", &json!({"required_roles": "nurse", "reason": "", "password": PASSWORD})).await;
    no_reason.assert_status(422, "a reason is required");
    assert!(no_reason.problem_fields().contains(&"reason".to_owned()));
    let no_password =
        director.post_json("/api/policy/mfa", &json!({"required_roles": "none", "reason": "a stolen session", "password": "guess"})).await;
    no_password.assert_status(422, "the director's password is asked again");
    assert!(no_password.field_message("password").contains("not your current password"), "{}", no_password.text);
    let set = director
        .post_json("/api/policy/mfa", &json!({"required_roles": "nurse", "reason": "nurses use shared workstations", "password": PASSWORD}))
        .await;
    set.assert_status(200, "the director requires it of nurses");
    assert_eq!(set.json()["required_roles"], json!(["nurse"]));
    let r = app.try_login(&app.user(Role::Nurse).username, PASSWORD).await;
    r.assert_status(202, "a nurse now enrols");
    assert_eq!(r.json()["second_step"], "enrol");
    app.try_login(&app.user(Role::Prescriber).username, PASSWORD).await.assert_status(200, "prescribers are no longer required");
}

async fn a_person_moves_to_a_new_phone_from_their_account(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let status = nurse.get("/api/account/mfa").await;
    assert_eq!(status.json(), json!({"enrolled": false, "enrolled_at": null, "required": false, "recovery_codes_left": 0}));
    let wrong = nurse.post_json("/api/account/mfa/enrol", &json!({"password": "not my password at all"})).await;
    wrong.assert_status(422, "the password is asked again");
    assert!(wrong.field_message("password").contains("not your current password"), "{}", wrong.text);
    let e = nurse.post_json("/api/account/mfa/enrol", &json!({"password": PASSWORD})).await;
    e.assert_status(200, "a new secret");
    let e: Value = e.json();
    let secret = e["secret"].as_str().unwrap().to_owned();
    nurse
        .post_json("/api/account/mfa/confirm", &json!({"challenge": e["challenge"], "code": "000000"}))
        .await
        .assert_status(422, "a wrong first code");
    let ok = nurse.post_json("/api/account/mfa/confirm", &json!({"challenge": e["challenge"], "code": code(app, &secret, 0)})).await;
    ok.assert_status(200, "confirmed");
    let first_codes = ok.json()["recovery_codes"].as_array().unwrap().clone();
    assert_eq!(first_codes.len(), 10);
    // Optional for nurses, but once set up it is asked for.
    let username = app.user(Role::Nurse).username.clone();
    app.advance_minutes(1);
    let ch = challenge(app, &username).await;
    send_code(app, &ch, &code(app, &secret, 0)).await.assert_status(200, "the nurse signs in with a code");

    // A new phone: the password alone is not enough once enrolled (a stolen session and the
    // password cannot take over the second step); with a current code, a new secret.
    app.advance_minutes(1);
    let no_code = nurse.post_json("/api/account/mfa/enrol", &json!({"password": PASSWORD})).await;
    no_code.assert_status(422, "a current code is asked for too");
    assert!(no_code.field_message("code").contains("6-digit code"), "{}", no_code.text);
    let e2 = nurse.post_json("/api/account/mfa/enrol", &json!({"password": PASSWORD, "code": code(app, &secret, 0)})).await;
    e2.assert_status(200, "password and a current code");
    let e2 = e2.json();
    // An Account-page enrolment is not a way to sign in.
    send_code(app, e2["challenge"].as_str().unwrap(), &code(app, e2["secret"].as_str().unwrap(), 0))
        .await
        .assert_status(401, "not a login challenge");
    let e2 = nurse.post_json("/api/account/mfa/enrol", &json!({"password": PASSWORD, "code": first_codes[9]})).await;
    e2.assert_status(200, "a recovery code works as the current code");
    let e2 = e2.json();
    let secret2 = e2["secret"].as_str().unwrap().to_owned();
    assert_ne!(secret, secret2);
    app.advance_minutes(1);
    // Another session, signed in with the old phone (say, on a device that was lost).
    app.advance_minutes(1);
    let other_ch = challenge(app, &username).await;
    let other = send_code(app, &other_ch, &code(app, &secret, 0)).await;
    other.assert_status(200, "a second session");
    let other = session_from(app, &other);
    nurse
        .post_json("/api/account/mfa/confirm", &json!({"challenge": e2["challenge"], "code": code(app, &secret2, 0)}))
        .await
        .assert_status(200, "moved");
    nurse.get("/api/me").await.assert_status(200, "the session that moved stays");
    other.get("/api/me").await.assert_status(401, "the other sessions end with the old phone");
    app.advance_minutes(1);
    let ch = challenge(app, &username).await;
    send_code(app, &ch, &code(app, &secret, 0)).await.assert_status(422, "the old phone's code");
    send_code(app, &ch, first_codes[0].as_str().unwrap()).await.assert_status(422, "the old recovery codes");
    send_code(app, &ch, &code(app, &secret2, 0)).await.assert_status(200, "the new phone's code");

    // New recovery codes replace the old ones.
    nurse.post_json("/api/account/mfa/recovery-codes", &json!({"password": PASSWORD})).await.assert_status(422, "a code is needed");
    app.advance_minutes(1);
    let fresh = nurse.post_json("/api/account/mfa/recovery-codes", &json!({"password": PASSWORD, "code": code(app, &secret2, 0)})).await;
    fresh.assert_status(200, "new recovery codes");
    assert_eq!(fresh.json()["recovery_codes"].as_array().unwrap().len(), 10);
    // An API token cannot change sign-in settings.
    let admin = app.login(Role::Admin).await;
    let t = admin.post_json("/api/admin/tokens", &json!({"user_id": app.user(Role::Nurse).id, "label": "ward tablet"})).await;
    let bearer = app.with_bearer(t.json()["secret"].as_str().unwrap());
    bearer.post_json("/api/account/mfa/enrol", &json!({"password": PASSWORD})).await.assert_status(422, "a token is not a person");
}

async fn an_administrator_resets_a_lost_phone_and_the_sessions_end(app: &TestApp) {
    let (director, admin) = clinic_default(app).await;
    let (_, _, s) = enrol(app, Role::Prescriber).await;
    s.get("/api/me").await.assert_status(200, "signed in");
    let id = app.user(Role::Prescriber).id.clone();
    let nurse = app.login(Role::Nurse).await;
    nurse.post_empty(&format!("/api/admin/users/{id}/reset-mfa")).await.assert_status(403, "only administrators reset");
    admin.post_empty(&format!("/api/admin/users/{id}/reset-mfa")).await.assert_status(204, "reset");
    s.get("/api/me").await.assert_status(401, "the prescriber's sessions ended");
    let again = admin.post_empty(&format!("/api/admin/users/{id}/reset-mfa")).await;
    again.assert_status(422, "nothing left to reset");
    let r = app.try_login(&app.user(Role::Prescriber).username, PASSWORD).await;
    r.assert_status(202, "enrols again at the next sign-in");
    assert_eq!(r.json()["second_step"], "enrol");
    let audit = director.get("/api/audit?user=ada.admin").await;
    assert!(
        audit
            .json()
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["detail"].as_str().is_some_and(|d| d.ends_with("two-step sign-in reset; sessions ended"))
                && e["username"] == "ada.admin"),
        "the reset is audited with who did it: {}",
        audit.text
    );
}

async fn the_code_page_takes_a_person_from_password_to_session(app: &TestApp) {
    clinic_default(app).await;
    let c = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let username = app.user(Role::Admin).username.clone();
    let r = c.post(format!("{}/login", app.base)).form(&[("username", username.as_str()), ("password", PASSWORD)]).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 303, "on to the code page");
    assert_eq!(r.headers()["location"], "/login/code");
    let cookies: Vec<String> = r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    assert!(!cookies.iter().any(|c| c.starts_with(&format!("{COOKIE}="))), "no session yet: {cookies:?}");
    let pending = cookies.iter().find(|c| c.starts_with("ketacare_signin=")).expect("the pending sign-in cookie");
    assert!(pending.contains("Path=/login") && pending.contains("HttpOnly") && pending.contains("Max-Age=300"), "{pending}");
    let pair = pending.split(';').next().unwrap().to_owned();
    let page = c.get(format!("{}/login/code", app.base)).header("cookie", &pair).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Set up two-step sign-in") && page.contains("<svg"), "the enrolment page with its QR code");
    let secret = page.split("data-secret=\"").nth(1).and_then(|s| s.split('"').next()).expect("the key on the page").to_owned();
    let bad = c.post(format!("{}/login/code", app.base)).header("cookie", &pair).form(&[("code", "000000")]).send().await.unwrap();
    assert_eq!(bad.status().as_u16(), 422);
    assert!(bad.text().await.unwrap().contains("The code that code is not right"), "the error is shown by the field");
    let ok = c
        .post(format!("{}/login/code", app.base))
        .header("cookie", &pair)
        .form(&[("code", code(app, &secret, 0).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200, "the recovery codes page");
    let cookies: Vec<String> = ok.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    assert!(cookies.iter().any(|c| c.starts_with(&format!("{COOKIE}="))), "the session cookie: {cookies:?}");
    assert!(
        cookies.iter().any(|c| c.starts_with("ketacare_signin=;") && c.contains("Max-Age=0")),
        "the pending cookie is cleared: {cookies:?}"
    );
    let html = ok.text().await.unwrap();
    assert_eq!(html.matches("<li><code>").count(), 10, "ten recovery codes shown");
    let gone = c.get(format!("{}/login/code", app.base)).header("cookie", &pair).send().await.unwrap();
    assert_eq!(gone.headers()["location"], "/login?signin=expired", "the used pending sign-in is gone");
}
