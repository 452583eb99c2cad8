//! Two-step sign-in: the second step of a login, enrolment, recovery codes, the clinic policy
//! of which roles must use it, and an administrator's reset.
//!
//! A right password for an enrolled account opens a *challenge* (a random token, of which the
//! database keeps only the SHA-256), not a session. The challenge lasts a few minutes and
//! allows a few codes; a right code (or an unused recovery code) turns it into a session. An
//! account whose role must use two-step sign-in and has not enrolled gets an enrolment
//! challenge instead: a new secret to scan, confirmed by its first code, which signs in and
//! shows the recovery codes once. Wrong codes count towards the account lock like wrong
//! passwords, and the failure count is set back only when the whole sign-in succeeds.

use crate::auth::{random_token, token_hash, Principal, PrincipalKind};
use crate::{secret_box, App, AppError};
use ketacare_db::{ChallengePurpose, LoginChallenge, PolicyVersion, User};
use ketacare_domain::access::Permission;
use ketacare_domain::audit::{Actor, AuditAction, AuditEvent, AuditOutcome};
use ketacare_domain::ids::UserId;
use ketacare_domain::mfa::{self, CodeRefusal, MfaPolicy, TotpSecret};
use ketacare_domain::validation::FieldErrors;
use rand::RngCore;

/// What a right password leads to.
pub enum LoginStep {
    /// Signed in: the secret cookie token and the caller.
    SignedIn {
        /// The session's secret token.
        token: String,
        /// The signed-in caller.
        principal: Principal,
    },
    /// A code from the authenticator app (or a recovery code) is needed to finish.
    CodeNeeded {
        /// The challenge token to send back with the code.
        challenge: String,
    },
    /// The role must use two-step sign-in and the account has not enrolled: add this secret to
    /// an authenticator app, then send its first code.
    EnrolmentNeeded {
        /// The challenge token to send back with the first code.
        challenge: String,
        /// The secret to add to the app.
        enrolment: Enrolment,
    },
}

/// A secret being enrolled, as a person adds it to an authenticator app.
#[derive(Clone)]
pub struct Enrolment {
    /// The secret in base32 (to type in by hand).
    pub secret: String,
    /// The `otpauth://` address (for the QR code).
    pub otpauth_uri: String,
}

impl std::fmt::Debug for Enrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Enrolment(…)")
    }
}

/// A finished second step.
pub struct SignedIn {
    /// The session's secret token.
    pub token: String,
    /// The signed-in caller.
    pub principal: Principal,
    /// Recovery codes issued by this step (an enrolment), shown once.
    pub recovery_codes: Vec<String>,
    /// Unused recovery codes left, when this sign-in used one.
    pub recovery_codes_left: Option<i64>,
}

// Tokens, secrets and recovery codes never reach a log through `Debug`.
impl std::fmt::Debug for LoginStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LoginStep::SignedIn { .. } => "LoginStep::SignedIn(…)",
            LoginStep::CodeNeeded { .. } => "LoginStep::CodeNeeded(…)",
            LoginStep::EnrolmentNeeded { .. } => "LoginStep::EnrolmentNeeded(…)",
        })
    }
}

impl std::fmt::Debug for SignedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedIn")
            .field("user", &self.principal.user.id)
            .field("recovery_codes_left", &self.recovery_codes_left)
            .finish_non_exhaustive()
    }
}

/// An account's two-step sign-in, as its owner sees it.
#[derive(Clone, Debug)]
pub struct MfaStatus {
    /// When the account enrolled, if it has.
    pub enrolled_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Whether the clinic requires it of the account's role.
    pub required: bool,
    /// Unused recovery codes.
    pub recovery_codes_left: i64,
}

fn draw_secret() -> TotpSecret {
    let mut b = [0u8; mfa::SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut b);
    TotpSecret::from_bytes(b)
}

fn draw_recovery_codes() -> (Vec<String>, Vec<String>) {
    let mut shown = Vec::with_capacity(mfa::RECOVERY_CODES);
    let mut hashes = Vec::with_capacity(mfa::RECOVERY_CODES);
    for _ in 0..mfa::RECOVERY_CODES {
        let mut b = [0u8; mfa::RECOVERY_CODE_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut b);
        let text = mfa::recovery_code_text(b);
        let canon = mfa::normalize_recovery_code(&text).unwrap_or_default();
        hashes.push(mfa::recovery_code_hash(&canon));
        shown.push(text);
    }
    (shown, hashes)
}

impl App {
    /// The secret an enrolment challenge waits to confirm (sealed like an enrolled one).
    fn pending_secret(&self, c: &LoginChallenge) -> Result<TotpSecret, AppError> {
        let stored = c.pending_secret.as_deref().ok_or_else(|| AppError::Internal("enrolment challenge without a secret".into()))?;
        let text = secret_box::open(self.settings.mfa_key.as_ref(), c.user_id, stored)?;
        TotpSecret::parse_base32(&text).map_err(|e| AppError::Internal(format!("pending TOTP secret: {e}")))
    }

    /// An account's enrolled secret, opened.
    fn enrolled_secret(&self, user: UserId, stored: &str) -> Result<TotpSecret, AppError> {
        let text = secret_box::open(self.settings.mfa_key.as_ref(), user, stored)?;
        TotpSecret::parse_base32(&text).map_err(|e| AppError::Internal(format!("stored TOTP secret: {e}")))
    }

    /// A secret as it is stored: sealed when the server has `mfa_secret_key`.
    fn stored_secret(&self, user: UserId, secret: &TotpSecret) -> Result<String, AppError> {
        secret_box::seal(self.settings.mfa_key.as_ref(), user, &secret.to_base32())
    }

    /// At start: with `mfa_secret_key`, seals every TOTP secret still stored plain and checks
    /// that the key opens the sealed ones; without it, refuses when any secret is sealed (codes
    /// could not be checked). Every stored secret is opened first, so a wrong key refuses the
    /// start before anything is written. Returns how many secrets were sealed now; audited
    /// when any were, and the freed space is scrubbed where the store can.
    pub async fn seal_totp_secrets(&self) -> Result<usize, AppError> {
        let key = self.settings.mfa_key.as_ref();
        let mut plain = Vec::new();
        for user in self.store.list_totp_enrolled().await? {
            let Some(e) = self.store.get_totp(user).await? else { continue };
            let opened = match secret_box::open(key, user, &e.secret) {
                Ok(o) => o,
                Err(err) => return Err(self.secret_refusal(user, err).await),
            };
            if !secret_box::is_sealed(&e.secret) {
                plain.push((user, e.secret, opened));
            }
        }
        let Some(key) = key else { return Ok(0) };
        let mut sealed_now = 0;
        for (user, stored, secret) in plain {
            let sealed = secret_box::seal(Some(key), user, &secret)?;
            if self.store.reseal_totp(user, &stored, &sealed).await? {
                sealed_now += 1;
            } else if let Some(e) = self.store.get_totp(user).await? {
                // Changed meanwhile (enrolled anew, or sealed by another server): it must open
                // with this key too, or the servers do not share the key.
                if let Err(err) = secret_box::open(Some(key), user, &e.secret) {
                    return Err(self.secret_refusal(user, err).await);
                }
            }
        }
        if sealed_now > 0 {
            let e = AuditEvent {
                recorded_at: self.clock.now(),
                actor: Actor {
                    user_id: None,
                    username: "server".into(),
                    role: None,
                    session_ref: Some("startup".into()),
                    client_addr: None,
                },
                action: AuditAction::Update,
                outcome: AuditOutcome::Success,
                entity_type: "User".into(),
                entity_id: None,
                patient_id: None,
                detail: Some(format!("purpose=operations; {sealed_now} TOTP secrets sealed with mfa_secret_key")),
            };
            self.store.append_audit(&e).await?;
            self.store.scrub_freed_space().await?;
        }
        Ok(sealed_now)
    }

    /// The start's refusal for an account whose secret does not open, with the way out.
    async fn secret_refusal(&self, user: UserId, err: AppError) -> AppError {
        let why = match err {
            AppError::Internal(m) => m,
            other => other.to_string(),
        };
        let name = match self.store.get_user(user).await {
            Ok(Some(u)) => u.username.as_str().to_owned(),
            _ => user.to_string(),
        };
        AppError::Internal(format!(
            "{why} (account {name}); start with the key the secrets were sealed with, or reset that account's two-step sign-in (ketacare user reset-mfa --username {name}) so that it enrols again"
        ))
    }
}

const CODE_HELP: &str = "must be the 6-digit code your authenticator app shows now, or one of your recovery codes (XXXX-XXXX-XXXX-XXXX)";

impl App {
    /// The clinic's two-step sign-in policy (the default until the medical director changes it).
    pub async fn mfa_policy(&self) -> Result<MfaPolicy, AppError> {
        let value = self.policy_value(mfa::POLICY_KEY).await?;
        Ok(match value {
            // A stored value was checked when it was set; one that no longer reads (a role
            // renamed) falls back to the default, which requires more, not less.
            Some(v) => MfaPolicy::parse(&v).unwrap_or_default(),
            None => MfaPolicy::default(),
        })
    }

    /// Sets which roles must use two-step sign-in (medical director; a reason is required;
    /// versioned and audited like every clinic policy value). The director's password (and,
    /// once enrolled, a current code) is asked again: a stolen session cannot turn it off.
    pub async fn set_mfa_policy(
        &self,
        p: &Principal,
        value: &str,
        reason: &str,
        password: &str,
        code: &str,
    ) -> Result<MfaPolicy, AppError> {
        self.authorize(p, Permission::ManagePolicy, "ClinicPolicy").await?;
        // The value and reason are checked first, so a typo does not cost a password attempt.
        let mut e = FieldErrors::new();
        e.check("value", MfaPolicy::parse(value));
        e.check("reason", ketacare_domain::record::Reason::parse(reason));
        e.into_result()?;
        self.reauthenticate(p, password, code).await?;
        self.store_mfa_policy(p.user.id, p.user.username.as_str(), &self.ctx(p, "operations"), value, reason).await
    }

    /// Sets the policy from the command line (the demo clinic, which signs in with printed
    /// passwords, and test harnesses).
    pub async fn set_mfa_policy_as_system(&self, set_by: &User, value: &str, reason: &str) -> Result<MfaPolicy, AppError> {
        self.store_mfa_policy(set_by.id, set_by.username.as_str(), &self.system_ctx(), value, reason).await
    }

    async fn store_mfa_policy(
        &self,
        by: UserId,
        by_name: &str,
        ctx: &ketacare_db::AuditCtx,
        value: &str,
        reason: &str,
    ) -> Result<MfaPolicy, AppError> {
        let mut e = FieldErrors::new();
        let policy = e.check("value", MfaPolicy::parse(value));
        let reason = e.check("reason", ketacare_domain::record::Reason::parse(reason));
        let (Some(policy), Some(reason)) = (policy, reason) else { return Err(e.into()) };
        let v = PolicyVersion {
            key: mfa::POLICY_KEY.into(),
            value: Some(policy.to_value()),
            reason: reason.as_str().to_owned(),
            set_by: by,
            set_by_name: by_name.to_owned(),
            set_at: self.clock.now(),
        };
        self.store.set_policy(ctx, &v).await?;
        Ok(policy)
    }

    /// The second step a right password for `u` leads to, if any.
    pub(crate) async fn second_step_for(&self, u: &User) -> Result<Option<ChallengePurpose>, AppError> {
        if self.store.get_totp(u.id).await?.is_some() {
            return Ok(Some(ChallengePurpose::Login));
        }
        Ok(self.mfa_policy().await?.requires(u.role).then_some(ChallengePurpose::Enrol))
    }

    async fn new_challenge(&self, user: &User, purpose: ChallengePurpose) -> Result<(String, Option<Enrolment>), AppError> {
        let now = self.clock.now();
        let token = random_token();
        let (pending, enrolment) = match purpose {
            ChallengePurpose::Login => (None, None),
            ChallengePurpose::Enrol | ChallengePurpose::AccountEnrol => {
                let s = draw_secret();
                let e = Enrolment { secret: s.to_base32(), otpauth_uri: s.otpauth_uri(&self.clinic_name().await?, user.username.as_str()) };
                (Some(self.stored_secret(user.id, &s)?), Some(e))
            }
        };
        self.store
            .create_login_challenge(&LoginChallenge {
                token_hash: token_hash(&token),
                user_id: user.id,
                purpose,
                pending_secret: pending,
                created_at: now,
                expires_at: now + chrono::Duration::minutes(mfa::CHALLENGE_MINUTES),
                attempts: 0,
            })
            .await?;
        Ok((token, enrolment))
    }

    /// After a right password: opens the second step (audited).
    pub(crate) async fn open_challenge(
        &self,
        user: &User,
        purpose: ChallengePurpose,
        client_addr: Option<String>,
    ) -> Result<LoginStep, AppError> {
        let (challenge, enrolment) = self.new_challenge(user, purpose).await?;
        let detail = match purpose {
            ChallengePurpose::Login => "password accepted; waiting for the authenticator code",
            ChallengePurpose::Enrol | ChallengePurpose::AccountEnrol => {
                "password accepted; the role requires two-step sign-in, enrolment shown"
            }
        };
        self.audit_sign_in(user, client_addr, AuditOutcome::Success, detail.into()).await?;
        Ok(match enrolment {
            None => LoginStep::CodeNeeded { challenge },
            Some(enrolment) => LoginStep::EnrolmentNeeded { challenge, enrolment },
        })
    }

    async fn audit_sign_in(&self, user: &User, client_addr: Option<String>, outcome: AuditOutcome, detail: String) -> Result<(), AppError> {
        let e = AuditEvent {
            recorded_at: self.clock.now(),
            actor: Actor {
                user_id: Some(user.id),
                username: user.username.as_str().to_owned(),
                role: Some(user.role),
                session_ref: None,
                client_addr,
            },
            action: AuditAction::Execute,
            outcome,
            entity_type: "Session".into(),
            entity_id: None,
            patient_id: None,
            detail: Some(detail),
        };
        Ok(self.store.append_audit(&e).await?)
    }

    /// A wrong second step: counts towards the account lock, audited, and answered with what
    /// the code field accepts.
    async fn refuse_code(&self, user: &User, client_addr: Option<String>, why: &str, attempts: u32) -> AppError {
        let now = self.clock.now();
        let policy = self.settings.login;
        let lock = self.store.record_login_failure(user.id, now, policy.max_failures, now + policy.lock_for).await;
        let mut detail = format!("second step refused: {why}");
        if let Ok(l) = &lock {
            if l.is_locked(now) {
                detail.push_str(&format!("; account locked after {} consecutive failures", l.failed));
            }
        }
        if let Err(e) = self.audit_sign_in(user, client_addr, AuditOutcome::Denied, detail).await {
            return e;
        }
        if let Err(e) = lock {
            return e.into();
        }
        let left = mfa::MAX_CODE_ATTEMPTS.saturating_sub(attempts);
        if left == 0 {
            return AppError::SignInAgain;
        }
        AppError::Validation(FieldErrors::single(
            "code",
            format!("{why}: {CODE_HELP}; {left} attempt{} left before you must sign in again", if left == 1 { "" } else { "s" }),
        ))
    }

    /// The second step of a login: the code from the authenticator app (or a recovery code)
    /// for the `challenge` a right password opened. A right code signs in; an enrolment
    /// challenge also enrols the account and returns its recovery codes (shown once).
    pub async fn complete_login(&self, challenge: &str, code: &str, client_addr: Option<String>) -> Result<SignedIn, AppError> {
        let now = self.clock.now();
        let refusal = || AuditEvent {
            recorded_at: now,
            actor: Actor { user_id: None, username: String::new(), role: None, session_ref: None, client_addr: client_addr.clone() },
            action: AuditAction::Execute,
            outcome: AuditOutcome::Denied,
            entity_type: "Session".into(),
            entity_id: None,
            patient_id: None,
            detail: Some("second step refused: too many failed logins from this address".into()),
        };
        self.count_address_attempt(client_addr.as_deref(), refusal).await?;
        let hash = token_hash(challenge);
        let Some(c) = self.store.attempt_login_challenge(&hash, now, mfa::MAX_CODE_ATTEMPTS).await? else {
            return Err(AppError::SignInAgain);
        };
        let Some(user) = self.store.get_user(c.user_id).await?.filter(|u| u.active) else {
            self.store.end_login_challenge(&hash).await?;
            return Err(AppError::SignInAgain);
        };
        // A locked account goes no further: no enrolment is stored and no recovery code used up
        // (the conditional clear below still catches a lock set meanwhile).
        if user.lock.is_locked(now) {
            self.store.end_login_challenge(&hash).await?;
            self.audit_sign_in(&user, client_addr, AuditOutcome::Denied, "login refused: account locked".into()).await?;
            return Err(AppError::Unauthenticated);
        }
        let unix = now.timestamp();
        let (detail, recovery_codes, left) = match c.purpose {
            ChallengePurpose::Login => {
                let Some(enrolled) = self.store.get_totp(user.id).await? else {
                    // Reset by an administrator meanwhile.
                    self.store.end_login_challenge(&hash).await?;
                    return Err(AppError::SignInAgain);
                };
                let secret = self.enrolled_secret(user.id, &enrolled.secret)?;
                match mfa::verify(&secret, code, unix, Some(enrolled.last_step)) {
                    Ok(step) => {
                        if !self.store.claim_totp_step(user.id, step).await? {
                            return Err(self.refuse_code(&user, client_addr, "that code has already been used", c.attempts).await);
                        }
                        ("login (password and authenticator code)".to_owned(), Vec::new(), None)
                    }
                    Err(CodeRefusal::Malformed) => match mfa::normalize_recovery_code(code) {
                        Some(canon) if self.store.use_recovery_code(user.id, &mfa::recovery_code_hash(&canon), now).await? => {
                            let left = self.store.unused_recovery_codes(user.id).await?;
                            (format!("login (password and recovery code; {left} left)"), Vec::new(), Some(left))
                        }
                        Some(_) => {
                            return Err(self
                                .refuse_code(&user, client_addr, "that recovery code is not one of yours or was used", c.attempts)
                                .await)
                        }
                        None => return Err(self.refuse_code(&user, client_addr, "that is not a code", c.attempts).await),
                    },
                    Err(CodeRefusal::Wrong) => {
                        return Err(self.refuse_code(&user, client_addr, "that code is not right", c.attempts).await)
                    }
                    Err(CodeRefusal::Reused) => {
                        return Err(self.refuse_code(&user, client_addr, "that code has already been used", c.attempts).await)
                    }
                }
            }
            // An Account-page enrolment never signs anyone in.
            ChallengePurpose::AccountEnrol => {
                self.store.end_login_challenge(&hash).await?;
                return Err(AppError::SignInAgain);
            }
            ChallengePurpose::Enrol => {
                // Enrolled meanwhile (another sign-in): this older secret must not replace it.
                if self.store.get_totp(user.id).await?.is_some() {
                    self.store.end_login_challenge(&hash).await?;
                    return Err(AppError::SignInAgain);
                }
                let secret = self.pending_secret(&c)?;
                let step = match mfa::verify(&secret, code, unix, None) {
                    Ok(step) => step,
                    Err(CodeRefusal::Malformed) => {
                        return Err(self.refuse_code(&user, client_addr, "that is not a 6-digit code", c.attempts).await)
                    }
                    Err(_) => return Err(self.refuse_code(&user, client_addr, "that code is not right", c.attempts).await),
                };
                // One use: a second request with the same challenge finds it gone.
                if !self.store.end_login_challenge(&hash).await? {
                    return Err(AppError::SignInAgain);
                }
                let (shown, hashes) = draw_recovery_codes();
                let ctx = ketacare_db::AuditCtx {
                    actor: Actor {
                        user_id: Some(user.id),
                        username: user.username.as_str().to_owned(),
                        role: Some(user.role),
                        session_ref: None,
                        client_addr: client_addr.clone(),
                    },
                    at: now,
                    purpose: "operations",
                };
                self.store.enrol_totp(&ctx, user.id, &self.stored_secret(user.id, &secret)?, step, &hashes).await?;
                ("login (password; two-step sign-in enrolled)".to_owned(), shown, None)
            }
        };
        // The right code still fails if failures counted at the same time have locked the
        // account meanwhile.
        if !self.store.clear_login_failures(user.id, now).await? {
            self.store.end_login_challenge(&hash).await?;
            self.audit_sign_in(&user, client_addr, AuditOutcome::Denied, "login refused: account locked".into()).await?;
            return Err(AppError::Unauthenticated);
        }
        if c.purpose == ChallengePurpose::Login && !self.store.end_login_challenge(&hash).await? {
            return Err(AppError::SignInAgain);
        }
        let (token, principal) = self.open_session(user, client_addr, &detail).await?;
        Ok(SignedIn { token, principal, recovery_codes, recovery_codes_left: left })
    }

    /// What an open sign-in challenge waits for, without counting an attempt: `None` when it
    /// is not open (expired, used, out of attempts); `Some(None)` for a code; `Some(Some(_))`
    /// for the first code of an enrolment, with the secret to show again.
    pub async fn pending_sign_in(&self, challenge: &str) -> Result<Option<Option<Enrolment>>, AppError> {
        let now = self.clock.now();
        let Some(c) = self.store.find_login_challenge(&token_hash(challenge), now, mfa::MAX_CODE_ATTEMPTS).await? else { return Ok(None) };
        let Some(user) = self.store.get_user(c.user_id).await? else { return Ok(None) };
        match c.purpose {
            ChallengePurpose::Login => Ok(Some(None)),
            ChallengePurpose::Enrol | ChallengePurpose::AccountEnrol => {
                let s = self.pending_secret(&c)?;
                Ok(Some(Some(Enrolment {
                    secret: s.to_base32(),
                    otpauth_uri: s.otpauth_uri(&self.clinic_name().await?, user.username.as_str()),
                })))
            }
        }
    }

    /// The caller's two-step sign-in.
    pub async fn mfa_status(&self, p: &Principal) -> Result<MfaStatus, AppError> {
        let enrolled = self.store.get_totp(p.user.id).await?;
        Ok(MfaStatus {
            enrolled_at: enrolled.map(|e| e.enrolled_at),
            required: self.mfa_policy().await?.requires(p.user.role),
            recovery_codes_left: self.store.unused_recovery_codes(p.user.id).await?,
        })
    }

    /// Checks the caller's password again before a change to their sign-in (ASVS 7.5.1), and,
    /// when the account is enrolled, a current code or a recovery code too: a stolen session
    /// plus the password cannot take over the second step. Refused while the account is locked;
    /// counts against the caller's address; wrong answers count towards the account lock.
    async fn reauthenticate(&self, p: &Principal, password: &str, code: &str) -> Result<(), AppError> {
        if !matches!(p.kind, PrincipalKind::Session { .. }) {
            return Err(AppError::Validation(FieldErrors::single(
                "password",
                "changing two-step sign-in needs a signed-in person, not an API token",
            )));
        }
        let now = self.clock.now();
        let user = p.user.clone();
        let refusal = || AuditEvent {
            recorded_at: now,
            actor: p.actor(),
            action: AuditAction::Execute,
            outcome: AuditOutcome::Denied,
            entity_type: "User".into(),
            entity_id: Some(user.id.to_string()),
            patient_id: None,
            detail: Some("two-step sign-in change refused: too many failed logins from this address".into()),
        };
        self.count_address_attempt(p.client_addr.as_deref(), refusal).await?;
        let Some((u, hash)) = self.store.find_user_by_username(p.user.username.as_str()).await? else {
            return Err(AppError::Unauthenticated);
        };
        let refuse = |field: &'static str, message: &'static str, why: &'static str| async move {
            let policy = self.settings.login;
            self.store.record_login_failure(p.user.id, now, policy.max_failures, now + policy.lock_for).await?;
            self.audit_sign_in(&p.user, p.client_addr.clone(), AuditOutcome::Denied, format!("two-step sign-in change refused: {why}"))
                .await?;
            Err::<(), AppError>(AppError::Validation(FieldErrors::single(field, message)))
        };
        if u.lock.is_locked(now) {
            return Err(AppError::Validation(FieldErrors::single(
                "password",
                "cannot be checked: the account is locked after too many failed attempts; wait, or ask an administrator to unlock it",
            )));
        }
        if !self.verify_password(password, &hash).await {
            return refuse("password", "is not your current password", "wrong password").await;
        }
        if let Some(enrolled) = self.store.get_totp(u.id).await? {
            let secret = self.enrolled_secret(u.id, &enrolled.secret)?;
            let ok = match mfa::verify(&secret, code, now.timestamp(), Some(enrolled.last_step)) {
                Ok(step) => self.store.claim_totp_step(u.id, step).await?,
                Err(CodeRefusal::Malformed) => match mfa::normalize_recovery_code(code) {
                    Some(canon) => self.store.use_recovery_code(u.id, &mfa::recovery_code_hash(&canon), now).await?,
                    None => false,
                },
                Err(_) => false,
            };
            if !ok {
                return refuse(
                    "code",
                    "must be the 6-digit code your authenticator app shows now (not one used before), or an unused recovery code",
                    "wrong code",
                )
                .await;
            }
        }
        Ok(())
    }

    /// Starts enrolling (or re-enrolling) the caller: after their password, a new secret to
    /// add to an authenticator app; [`App::confirm_mfa_enrolment`] finishes it with the first
    /// code. The earlier enrolment keeps working until then.
    /// When already enrolled, `code` is a current code or a recovery code.
    pub async fn begin_mfa_enrolment(&self, p: &Principal, password: &str, code: &str) -> Result<(String, Enrolment), AppError> {
        self.reauthenticate(p, password, code).await?;
        let (token, enrolment) = self.new_challenge(&p.user, ChallengePurpose::AccountEnrol).await?;
        let enrolment = enrolment.ok_or_else(|| AppError::Internal("enrolment challenge without a secret".into()))?;
        Ok((token, enrolment))
    }

    /// Finishes the caller's enrolment with the first code; returns the recovery codes (shown
    /// once; earlier codes stop working).
    pub async fn confirm_mfa_enrolment(&self, p: &Principal, challenge: &str, code: &str) -> Result<Vec<String>, AppError> {
        let now = self.clock.now();
        let hash = token_hash(challenge);
        let c = self.store.attempt_login_challenge(&hash, now, mfa::MAX_CODE_ATTEMPTS).await?;
        let Some(c) = c.filter(|c| c.user_id == p.user.id && c.purpose == ChallengePurpose::AccountEnrol) else {
            return Err(AppError::Validation(FieldErrors::single(
                "challenge",
                "this enrolment has expired; start again with your password",
            )));
        };
        let secret = self.pending_secret(&c)?;
        let step = match mfa::verify(&secret, code, now.timestamp(), None) {
            Ok(step) => step,
            Err(_) => {
                let left = mfa::MAX_CODE_ATTEMPTS.saturating_sub(c.attempts);
                self.audit_sign_in(
                    &p.user,
                    p.client_addr.clone(),
                    AuditOutcome::Denied,
                    "new authenticator refused: wrong first code".into(),
                )
                .await?;
                return Err(AppError::Validation(FieldErrors::single(
                    "code",
                    format!("is not the code the app shows for the new secret: must be its 6-digit code; {left} attempts left"),
                )));
            }
        };
        if !self.store.end_login_challenge(&hash).await? {
            return Err(AppError::Validation(FieldErrors::single("challenge", "this enrolment has already been finished")));
        }
        let (shown, hashes) = draw_recovery_codes();
        let moved = self.store.get_totp(p.user.id).await?.is_some();
        self.store.enrol_totp(&self.ctx(p, "operations"), p.user.id, &self.stored_secret(p.user.id, &secret)?, step, &hashes).await?;
        if moved {
            // A new phone: sessions opened with the old one (perhaps on a lost device) end.
            let keep = match &p.kind {
                PrincipalKind::Session { id, .. } => Some(*id),
                _ => None,
            };
            self.store.end_other_sessions(p.user.id, keep).await?;
        }
        Ok(shown)
    }

    /// Issues a fresh set of recovery codes to the caller after their password; earlier codes
    /// stop working.
    /// `code` is a current code or a recovery code.
    pub async fn new_recovery_codes(&self, p: &Principal, password: &str, code: &str) -> Result<Vec<String>, AppError> {
        self.reauthenticate(p, password, code).await?;
        if self.store.get_totp(p.user.id).await?.is_none() {
            return Err(AppError::Validation(FieldErrors::single(
                "password",
                "set up two-step sign-in first; recovery codes come with it",
            )));
        }
        let (shown, hashes) = draw_recovery_codes();
        self.store.replace_recovery_codes(&self.ctx(p, "operations"), p.user.id, &hashes).await?;
        Ok(shown)
    }

    /// Removes an account's two-step sign-in (a lost phone and no recovery codes) and ends its
    /// sessions; the person enrols again at their next sign-in if their role requires it
    /// (administrators; audited).
    pub async fn reset_mfa(&self, p: &Principal, id: UserId) -> Result<(), AppError> {
        self.authorize(p, Permission::ManageUsers, "User").await?;
        self.store.remove_totp(&self.ctx(p, "operations"), id).await.map_err(|e| match AppError::from(e) {
            AppError::NotFound => AppError::Validation(FieldErrors::single("id", "this account has no two-step sign-in to reset")),
            other => other,
        })
    }

    /// Resets an account's two-step sign-in from the command line.
    pub async fn reset_mfa_as_system(&self, id: UserId) -> Result<(), AppError> {
        Ok(self.store.remove_totp(&self.system_ctx(), id).await?)
    }

    /// The accounts enrolled in two-step sign-in (administrators).
    pub async fn mfa_enrolled(&self, p: &Principal) -> Result<Vec<UserId>, AppError> {
        self.authorize(p, Permission::ManageUsers, "User").await?;
        Ok(self.store.list_totp_enrolled().await?)
    }
}
