-- Two-step sign-in (TOTP, RFC 6238).
-- The shared secret of an enrolled account, and the last 30-second step whose code was
-- accepted: a code is accepted only for a later step, claimed with one conditional UPDATE,
-- so a code is never accepted twice, even by two servers at once.
CREATE TABLE user_totp (
    user_id TEXT PRIMARY KEY REFERENCES users(id),
    secret TEXT NOT NULL,
    enrolled_at TEXT NOT NULL,
    last_step BIGINT NOT NULL
);

-- One-use recovery codes; only the SHA-256 of each is kept.
CREATE TABLE mfa_recovery_codes (
    user_id TEXT NOT NULL REFERENCES users(id),
    code_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    used_at TEXT,
    PRIMARY KEY (user_id, code_hash)
);

-- A sign-in between the password and the code (purpose 'login'), or an enrolment waiting for
-- its first code, with the secret being enrolled: at sign-in ('enrol', which then signs in)
-- or from the Account page of a signed-in person ('account_enrol', which never does). Only the SHA-256 of the
-- challenge token is kept; it lasts minutes and allows a few attempts.
CREATE TABLE login_challenges (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    purpose TEXT NOT NULL CHECK (purpose IN ('login', 'enrol', 'account_enrol')),
    pending_secret TEXT,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX login_challenges_expiry ON login_challenges(expires_at);
