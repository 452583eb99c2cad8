//! Authentication (passwords, sessions, API tokens), authorisation and user administration.

use crate::mfa::LoginStep;
use crate::{App, AppError};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use ketacare_db::{ApiToken, AuditCtx, AuditFilter, NewUser, StoredSession, User};
use ketacare_domain::access::{check_new_password, Permission, Role, Username};
use ketacare_domain::audit::{Actor, AuditAction, AuditEntry, AuditEvent, AuditOutcome};
use ketacare_domain::ids::{SessionId, TokenId, UserId};
use ketacare_domain::validation::{bounded_text, FieldErrors};
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// How the caller authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrincipalKind {
    /// Browser or API login session.
    Session {
        /// Session id.
        id: SessionId,
        /// Anti-forgery token for forms of this session.
        csrf_token: String,
    },
    /// Administrator-issued API token.
    Token(TokenId),
    /// The command line (bootstrap, demo seeding).
    System,
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Principal {
    /// The account.
    pub user: User,
    /// How it authenticated.
    pub kind: PrincipalKind,
    /// Client address.
    pub client_addr: Option<String>,
    /// Set when this request opened a chart through an emergency access: what it reads and
    /// writes from then on is audited with `purpose=emergency`.
    pub(crate) emergency: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Principal {
    /// The account's role.
    pub fn role(&self) -> Role {
        self.user.role
    }
    /// Whether the role has `p`.
    pub fn can(&self, p: Permission) -> bool {
        self.user.role.can(p)
    }
    /// The audit actor for this caller.
    pub fn actor(&self) -> Actor {
        Actor {
            user_id: Some(self.user.id),
            username: self.user.username.as_str().to_owned(),
            role: Some(self.user.role),
            session_ref: Some(match &self.kind {
                PrincipalKind::Session { id, .. } => format!("session:{id}"),
                PrincipalKind::Token(t) => format!("token:{t}"),
                PrincipalKind::System => "cli".to_owned(),
            }),
            client_addr: self.client_addr.clone(),
        }
    }
    /// The anti-forgery token, for sessions.
    pub fn csrf_token(&self) -> Option<&str> {
        match &self.kind {
            PrincipalKind::Session { csrf_token, .. } => Some(csrf_token),
            _ => None,
        }
    }
}

pub(crate) fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// SHA-256 hex of a secret token (what the database stores).
pub fn token_hash(token: &str) -> String {
    let d = Sha256::digest(token.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fixed Argon2id hash verified against when the username is unknown, so a failed login
/// takes the same time whether or not the account exists.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0hSg9yQm0p8mS3qK1cY6o0m7vJ9yK1T7y9B7mZ0y9Zc";

/// Raw input for a new account.
#[derive(Clone, Debug, Default)]
pub struct NewUserInput {
    /// Login name.
    pub username: String,
    /// Display name.
    pub display_name: String,
    /// Role code.
    pub role: String,
    /// Password.
    pub password: String,
}

/// How long a room display runs before someone starts it again.
const ROOM_DISPLAY_LIFETIME: chrono::Duration = chrono::Duration::hours(12);

impl App {
    pub(crate) fn ctx(&self, p: &Principal, purpose: &'static str) -> AuditCtx {
        let purpose = if purpose == "treatment" && p.emergency.load(std::sync::atomic::Ordering::Relaxed) { "emergency" } else { purpose };
        AuditCtx { actor: p.actor(), at: self.clock.now(), purpose }
    }

    /// Checks a permission; a denial is audited and returned as [`AppError::Forbidden`].
    pub async fn authorize(&self, p: &Principal, perm: Permission, entity: &str) -> Result<(), AppError> {
        if p.can(perm) {
            return Ok(());
        }
        let e = AuditEvent {
            recorded_at: self.clock.now(),
            actor: p.actor(),
            action: AuditAction::Execute,
            outcome: AuditOutcome::Denied,
            entity_type: entity.to_owned(),
            entity_id: None,
            patient_id: None,
            detail: Some(format!("missing permission {perm:?}")),
        };
        self.store.append_audit(&e).await?;
        Err(AppError::Forbidden)
    }

    async fn hash_password(&self, password: &str) -> Result<String, AppError> {
        let _permit = self.hashing.acquire().await.map_err(|_| AppError::Internal("hash limiter closed".into()))?;
        let pw = password.to_owned();
        tokio::task::spawn_blocking(move || {
            let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
            Argon2::default().hash_password(pw.as_bytes(), &salt).map(|h| h.to_string())
        })
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?
        .map_err(|e| AppError::Internal(e.to_string()))
    }

    pub(crate) async fn verify_password(&self, password: &str, hash: &str) -> bool {
        let Ok(_permit) = self.hashing.acquire().await else { return false };
        let (pw, h) = (password.to_owned(), hash.to_owned());
        tokio::task::spawn_blocking(move || {
            PasswordHash::new(&h).map(|parsed| Argon2::default().verify_password(pw.as_bytes(), &parsed).is_ok()).unwrap_or(false)
        })
        .await
        .unwrap_or(false)
    }

    fn validate_new_user(&self, input: &NewUserInput) -> Result<(Username, String, Role), FieldErrors> {
        let mut e = FieldErrors::new();
        let username = e.check("username", Username::parse(&input.username));
        let display = e.check("display_name", bounded_text(&input.display_name, 1, 100));
        let role = e.check("role", Role::parse(&input.role));
        let uname = username.as_ref().map(|u| u.as_str().to_owned()).unwrap_or_default();
        e.check("password", check_new_password(&input.password, &uname, self.knowledge.common_passwords()));
        match (username, display, role) {
            (Some(u), Some(d), Some(r)) if e.is_empty() => Ok((u, d, r)),
            _ => Err(e),
        }
    }

    async fn insert_user(&self, ctx: &AuditCtx, input: &NewUserInput) -> Result<User, AppError> {
        let (username, display_name, role) = self.validate_new_user(input)?;
        let password_hash = self.hash_password(&input.password).await?;
        let nu =
            NewUser { id: UserId::from_uuid(Uuid::new_v4()), username, display_name, role, password_hash, created_at: self.clock.now() };
        self.store.create_user(ctx, nu).await.map_err(|e| match AppError::from(e) {
            AppError::Conflict(_) => AppError::Validation(FieldErrors::single("username", "is already taken")),
            other => other,
        })
    }

    /// The audit context of a command-line operation.
    pub(crate) fn system_ctx(&self) -> AuditCtx {
        AuditCtx {
            actor: Actor { user_id: None, username: "cli".into(), role: None, session_ref: Some("cli".into()), client_addr: None },
            at: self.clock.now(),
            purpose: "operations",
        }
    }

    /// Creates an account from the command line (bootstrap of the first administrator, demo users).
    pub async fn create_user_as_system(&self, input: &NewUserInput) -> Result<User, AppError> {
        self.insert_user(&self.system_ctx(), input).await
    }

    /// Creates an account (administrators).
    pub async fn create_user(&self, p: &Principal, input: &NewUserInput) -> Result<User, AppError> {
        self.authorize(p, Permission::ManageUsers, "User").await?;
        self.insert_user(&self.ctx(p, "operations"), input).await
    }

    /// All accounts (administrators).
    pub async fn list_users(&self, p: &Principal) -> Result<Vec<User>, AppError> {
        self.authorize(p, Permission::ManageUsers, "User").await?;
        Ok(self.store.list_users().await?)
    }

    /// Activates or deactivates an account; deactivation ends its sessions (administrators).
    pub async fn set_user_active(&self, p: &Principal, id: UserId, active: bool) -> Result<(), AppError> {
        self.authorize(p, Permission::ManageUsers, "User").await?;
        if id == p.user.id && !active {
            return Err(AppError::Validation(FieldErrors::single("active", "you cannot deactivate your own account")));
        }
        Ok(self.store.set_user_active(&self.ctx(p, "operations"), id, active).await?)
    }

    /// Unlocks an account locked by failed logins (administrators); audited.
    pub async fn unlock_user(&self, p: &Principal, id: UserId) -> Result<(), AppError> {
        self.authorize(p, Permission::ManageUsers, "User").await?;
        Ok(self.store.unlock_user(&self.ctx(p, "operations"), id).await?)
    }

    /// A system principal acting as `user` (command line only).
    pub fn system_principal(&self, user: User) -> Principal {
        Principal { user, kind: PrincipalKind::System, client_addr: None, emergency: Default::default() }
    }

    /// Checks username and password and opens a session. Returns the secret cookie token.
    ///
    /// Login protection: an address with too many recent failures is refused before any
    /// password is checked ([`AppError::RateLimited`]); every failure counts against the
    /// account, which locks after `max_failures` in a row; a locked, inactive or unknown
    /// account and a wrong password get the same answer after the same work (a password hash
    /// is always verified).
    pub async fn login(&self, username: &str, password: &str, client_addr: Option<String>) -> Result<LoginStep, AppError> {
        let now = self.clock.now();
        let policy = self.settings.login;
        let actor_for = |found: Option<&User>| Actor {
            user_id: found.map(|u| u.id),
            username: username.chars().filter(|c| !c.is_control()).take(40).collect(),
            role: found.map(|u| u.role),
            session_ref: None,
            client_addr: client_addr.clone(),
        };
        let denied = |actor: Actor, detail: String| AuditEvent {
            recorded_at: now,
            actor,
            action: AuditAction::Execute,
            outcome: AuditOutcome::Denied,
            entity_type: "Session".into(),
            entity_id: None,
            patient_id: None,
            detail: Some(detail),
        };
        self.count_address_attempt(client_addr.as_deref(), || {
            denied(actor_for(None), "login refused: too many failed logins from this address".into())
        })
        .await?;
        let found = self.store.find_user_by_username(username).await?;
        let ok = match &found {
            Some((u, hash)) => self.verify_password(password, hash).await && u.active && !u.lock.is_locked(now),
            None => {
                let _ = self.verify_password(password, DUMMY_HASH).await;
                false
            }
        };
        let found = found.map(|(u, _)| u);
        // With two-step sign-in the failure count is set back only when the code is right too
        // (a right password followed by wrong codes keeps counting towards the lock).
        let second_step = match (&found, ok) {
            (Some(u), true) => self.second_step_for(u).await?,
            _ => None,
        };
        // The right password still fails if failures checked at the same time have locked the
        // account meanwhile: clearing the count is conditional on it not being locked now.
        let refused = match (&found, ok) {
            (Some(_), true) if second_step.is_some() => false,
            (Some(u), true) => !self.store.clear_login_failures(u.id, now).await?,
            _ => true,
        };
        if refused {
            let mut detail = "login failed".to_owned();
            if let Some(u) = &found {
                let after = self.store.record_login_failure(u.id, now, policy.max_failures, now + policy.lock_for).await?;
                if u.lock.is_locked(now) || ok {
                    detail = "login refused: account locked".into();
                } else if after.is_locked(now) {
                    detail = format!("login failed; account locked after {} consecutive failures", after.failed);
                }
            }
            self.store.append_audit(&denied(actor_for(found.as_ref()), detail)).await?;
            return Err(AppError::Unauthenticated);
        }
        let user = found.ok_or_else(|| AppError::Internal("login accepted without an account".into()))?;
        if let Some(purpose) = second_step {
            return self.open_challenge(&user, purpose, client_addr).await;
        }
        let (token, p) = self.open_session(user, client_addr, "login").await?;
        Ok(LoginStep::SignedIn { token, principal: p })
    }

    /// Counts an attempt against the caller's address before any secret is checked, so
    /// attempts sent all at once cannot outrun the limit while they wait for the hasher (a
    /// completed sign-in gives it back); refuses with [`AppError::RateLimited`], audited with
    /// `refusal`, when the address is held back.
    pub(crate) async fn count_address_attempt(
        &self,
        client_addr: Option<&str>,
        refusal: impl FnOnce() -> AuditEvent,
    ) -> Result<(), AppError> {
        let Some(addr) = client_addr else { return Ok(()) };
        let now = self.clock.now();
        let limit = self.settings.login.address_limit();
        let blocked = {
            let mut limiter = self.login_addresses.lock().map_err(|_| AppError::Internal("login limiter poisoned".into()))?;
            match limiter.blocked_until(addr, now, &limit) {
                None => {
                    limiter.record(addr, now, &limit);
                    None
                }
                Some(until) => Some((until, limiter.first_refusal(addr, until))),
            }
        };
        if let Some((until, first)) = blocked {
            // One audit entry per hold: a flood of refused requests cannot flood the trail.
            if first {
                self.store.append_audit(&refusal()).await?;
            }
            return Err(AppError::RateLimited { retry_after_secs: (until - now).num_seconds().max(1) });
        }
        Ok(())
    }

    /// Opens a login session for an account whose every factor has been checked; audited with
    /// `detail`. Returns the secret cookie token.
    pub(crate) async fn open_session(
        &self,
        user: User,
        client_addr: Option<String>,
        detail: &str,
    ) -> Result<(String, Principal), AppError> {
        let now = self.clock.now();
        if let Some(addr) = &client_addr {
            self.login_addresses.lock().map_err(|_| AppError::Internal("login limiter poisoned".into()))?.forgive(addr);
        }
        let token = random_token();
        let session = StoredSession {
            id: SessionId::from_uuid(Uuid::new_v4()),
            token_hash: token_hash(&token),
            user_id: user.id,
            csrf_token: random_token(),
            created_at: now,
            last_seen_at: now,
            expires_at: now + self.settings.session_absolute,
            client_addr: client_addr.clone(),
        };
        self.store.create_session(&session).await?;
        let p = Principal {
            user,
            kind: PrincipalKind::Session { id: session.id, csrf_token: session.csrf_token },
            client_addr,
            emergency: Default::default(),
        };
        let e = AuditEvent {
            recorded_at: now,
            actor: p.actor(),
            action: AuditAction::Execute,
            outcome: AuditOutcome::Success,
            entity_type: "Session".into(),
            entity_id: Some(session.id.to_string()),
            patient_id: None,
            detail: Some(detail.to_owned()),
        };
        self.store.append_audit(&e).await?;
        Ok((token, p))
    }

    /// Resolves a session cookie, enforcing the inactivity timeout and absolute lifetime.
    pub async fn authenticate_session(&self, token: &str, client_addr: Option<String>) -> Result<Principal, AppError> {
        let now = self.clock.now();
        let s = self.store.find_session(&token_hash(token)).await?.ok_or(AppError::Unauthenticated)?;
        if now >= s.expires_at || now - s.last_seen_at >= self.settings.session_idle {
            self.store.delete_session(s.id).await?;
            return Err(AppError::Unauthenticated);
        }
        let user = self.store.get_user(s.user_id).await?.filter(|u| u.active).ok_or(AppError::Unauthenticated)?;
        self.store.touch_session(s.id, now).await?;
        Ok(Principal {
            user,
            kind: PrincipalKind::Session { id: s.id, csrf_token: s.csrf_token },
            client_addr,
            emergency: Default::default(),
        })
    }

    /// Resolves an API bearer token.
    pub async fn authenticate_token(&self, token: &str, client_addr: Option<String>) -> Result<Principal, AppError> {
        let t = self.store.find_api_token(&token_hash(token)).await?.ok_or(AppError::Unauthenticated)?;
        // A room-display token opens the room display only, never the API.
        if t.revoked_at.is_some() || t.label.starts_with(crate::session::ROOM_DISPLAY_LABEL) {
            return Err(AppError::Unauthenticated);
        }
        let user = self.store.get_user(t.user_id).await?.filter(|u| u.active).ok_or(AppError::Unauthenticated)?;
        Ok(Principal { user, kind: PrincipalKind::Token(t.id), client_addr, emergency: Default::default() })
    }

    /// Whether a principal's login is still good, without counting as activity: the session
    /// (its cookie `secret`) exists, has not timed out and its user is active; a token is not
    /// revoked. Long-lived streams (the live board) ask this before every update.
    pub async fn still_valid(&self, p: &Principal, secret: Option<&str>) -> bool {
        let now = self.clock.now();
        let user_ok = matches!(self.store.get_user(p.user.id).await, Ok(Some(u)) if u.active);
        let login_ok = match &p.kind {
            PrincipalKind::Session { .. } => match secret {
                Some(t) => matches!(self.store.find_session(&token_hash(t)).await, Ok(Some(s))
                    if now < s.expires_at && now - s.last_seen_at < self.settings.session_idle),
                None => false,
            },
            PrincipalKind::Token(id) => matches!(self.store.list_api_tokens().await, Ok(list) if list.iter().any(|t| t.id == *id
                && t.revoked_at.is_none()
                && !(t.label.starts_with(crate::session::ROOM_DISPLAY_LABEL) && now - t.created_at >= ROOM_DISPLAY_LIFETIME))),
            PrincipalKind::System => true,
        };
        user_ok && login_ok
    }

    /// Resolves a room-display token (issued by `issue_room_display`); it lasts 12 hours (a
    /// clinic day), like its cookie.
    pub async fn authenticate_room_display(&self, token: &str) -> Result<Principal, AppError> {
        let t = self.store.find_api_token(&token_hash(token)).await?.ok_or(AppError::Unauthenticated)?;
        if t.revoked_at.is_some()
            || !t.label.starts_with(crate::session::ROOM_DISPLAY_LABEL)
            || self.clock.now() - t.created_at >= ROOM_DISPLAY_LIFETIME
        {
            return Err(AppError::Unauthenticated);
        }
        let user = self.store.get_user(t.user_id).await?.filter(|u| u.active).ok_or(AppError::Unauthenticated)?;
        Ok(Principal { user, kind: PrincipalKind::Token(t.id), client_addr: None, emergency: Default::default() })
    }

    /// Issues a room-display token acting as the caller (clinical staff): it opens the room
    /// display (chairs, vitals, alarms, no patient details) and nothing else; administrators
    /// see and revoke it with the API tokens.
    pub async fn issue_room_display(&self, p: &Principal) -> Result<(String, ApiToken), AppError> {
        self.authorize(p, Permission::WriteClinical, "ApiToken").await?;
        let label = format!("{} started by {}", crate::session::ROOM_DISPLAY_LABEL, p.user.username.as_str());
        self.store_token(p, p.user.id, label).await
    }

    /// Ends the caller's session.
    pub async fn logout(&self, p: &Principal) -> Result<(), AppError> {
        if let PrincipalKind::Session { id, .. } = &p.kind {
            self.store.delete_session(*id).await?;
            let e = AuditEvent {
                recorded_at: self.clock.now(),
                actor: p.actor(),
                action: AuditAction::Execute,
                outcome: AuditOutcome::Success,
                entity_type: "Session".into(),
                entity_id: Some(id.to_string()),
                patient_id: None,
                detail: Some("logout".into()),
            };
            self.store.append_audit(&e).await?;
        }
        Ok(())
    }

    /// Issues an API token acting as `user_id`; returns the secret once (administrators).
    pub async fn issue_api_token(&self, p: &Principal, user_id: &str, label: &str) -> Result<(String, ApiToken), AppError> {
        self.authorize(p, Permission::ManageUsers, "ApiToken").await?;
        let mut e = FieldErrors::new();
        let uid = e.check("user_id", UserId::parse(user_id));
        let label = e.check("label", bounded_text(label, 3, 100));
        e.clone().into_result()?;
        let (Some(uid), Some(label)) = (uid, label) else { return Err(AppError::Validation(e)) };
        if self.store.get_user(uid).await?.is_none() {
            return Err(AppError::Validation(FieldErrors::single("user_id", "no such account")));
        }
        self.store_token(p, uid, label).await
    }

    /// Stores a new token acting as `user_id`, issued by `p`; returns the secret (shown once).
    async fn store_token(&self, p: &Principal, user_id: UserId, label: String) -> Result<(String, ApiToken), AppError> {
        let secret = format!("kc_{}", random_token());
        let t = ApiToken {
            id: TokenId::from_uuid(Uuid::new_v4()),
            user_id,
            label,
            token_hash: token_hash(&secret),
            created_at: self.clock.now(),
            created_by: p.user.id,
            revoked_at: None,
        };
        self.store.create_api_token(&self.ctx(p, "operations"), &t).await?;
        Ok((secret, t))
    }

    /// All API tokens (administrators).
    pub async fn list_api_tokens(&self, p: &Principal) -> Result<Vec<ApiToken>, AppError> {
        self.authorize(p, Permission::ManageUsers, "ApiToken").await?;
        Ok(self.store.list_api_tokens().await?)
    }

    /// Revokes an API token (administrators).
    pub async fn revoke_api_token(&self, p: &Principal, id: TokenId) -> Result<(), AppError> {
        self.authorize(p, Permission::ManageUsers, "ApiToken").await?;
        Ok(self.store.revoke_api_token(&self.ctx(p, "operations"), id).await?)
    }

    /// Searches the audit trail (administrators and the medical director).
    pub async fn search_audit(&self, p: &Principal, f: &AuditFilter) -> Result<Vec<AuditEntry>, AppError> {
        self.authorize(p, Permission::ReadAudit, "AuditEvent").await?;
        Ok(self.store.search_audit(&self.ctx(p, "operations"), f).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_hash_is_sha256_hex() {
        assert_eq!(token_hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_ne!(random_token(), random_token());
        assert!(random_token().len() >= 43, "256-bit tokens");
    }
}
