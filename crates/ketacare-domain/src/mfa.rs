//! Two-step sign-in: time-based one-time codes (TOTP, RFC 6238) and one-use recovery codes,
//! and the clinic policy of which roles must use them.
//!
//! Pure: the caller passes the time and the random bytes. A code is accepted in the 30-second
//! step it was made for or one step either side (clock drift between the phone and the server),
//! and only in a step later than the last one accepted for the account, so a code seen over a
//! shoulder or replayed from a log never opens a second session (ASVS 6.5.1). The store keeps
//! the last step with one conditional update, so two servers cannot both accept one code.

use crate::access::Role;
use sha2::{Digest, Sha256};
use totp_rs::{Algorithm, TOTP};

/// Seconds in one TOTP step (RFC 6238's default, ASVS 6.5.5's maximum).
pub const STEP_SECONDS: i64 = 30;
/// Digits in a code (what every authenticator app shows by default).
pub const DIGITS: usize = 6;
/// Steps either side of the current one in which a code is still accepted.
pub const DRIFT_STEPS: i64 = 1;
/// Length of a secret in bytes: 160 bits, RFC 4226's recommended HMAC-SHA1 key length.
pub const SECRET_BYTES: usize = 20;
/// Recovery codes issued at enrolment (each works once).
pub const RECOVERY_CODES: usize = 10;
/// Random bytes behind one recovery code: 80 bits, 16 base32 characters.
pub const RECOVERY_CODE_BYTES: usize = 10;
/// Wrong codes allowed against one pending sign-in before it must start again with the
/// password (each wrong code also counts towards the account lock).
pub const MAX_CODE_ATTEMPTS: u32 = 5;
/// Minutes a pending sign-in (password given, code not yet) stays open.
pub const CHALLENGE_MINUTES: i64 = 5;

/// The clinic policy key listing the roles that must use two-step sign-in.
pub const POLICY_KEY: &str = "security.mfa_required_roles";

/// A TOTP shared secret.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret([u8; SECRET_BYTES]);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(…)")
    }
}

impl TotpSecret {
    /// A secret from random bytes (the caller draws them from the operating system).
    pub fn from_bytes(b: [u8; SECRET_BYTES]) -> Self {
        Self(b)
    }

    /// RFC 4648 base32 without padding: what a person types into an authenticator app, and
    /// what the database stores.
    pub fn to_base32(&self) -> String {
        base32_encode(&self.0)
    }

    /// Reads a stored secret.
    pub fn parse_base32(s: &str) -> Result<Self, String> {
        let bytes = base32_decode(s).ok_or_else(|| "is not base32 (A–Z, 2–7)".to_owned())?;
        let arr: [u8; SECRET_BYTES] =
            bytes.try_into().map_err(|_| format!("must be {SECRET_BYTES} bytes ({} base32 characters)", SECRET_BYTES * 8 / 5))?;
        Ok(Self(arr))
    }

    fn totp(&self) -> TOTP {
        // SHA-1, 6 digits and 30 s are what authenticator apps support everywhere; the skew is
        // ours to apply (see `verify`), so the library checks one step at a time.
        TOTP::new_unchecked(Algorithm::SHA1, DIGITS, 0, STEP_SECONDS as u64, self.0.to_vec())
    }

    /// The code for a Unix time in seconds.
    pub fn code_at(&self, unix_seconds: i64) -> String {
        self.totp().generate(unix_seconds.max(0) as u64)
    }

    /// The `otpauth://` address an authenticator app reads from the QR code.
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> String {
        let label = format!("{}:{}", percent(issuer), percent(account));
        format!(
            "otpauth://totp/{label}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
            self.to_base32(),
            percent(issuer)
        )
    }
}

/// The step a Unix time falls in.
pub fn step_of(unix_seconds: i64) -> i64 {
    unix_seconds.div_euclid(STEP_SECONDS)
}

/// Why a one-time code was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeRefusal {
    /// Not six digits.
    Malformed,
    /// No step in the accepted window gives this code.
    Wrong,
    /// Right, but for a step already used (a replay).
    Reused,
}

/// Checks a typed code at `unix_seconds`; returns the step it matched, which the caller must
/// then claim in the store (only a step later than `last_step` is accepted).
pub fn verify(secret: &TotpSecret, typed: &str, unix_seconds: i64, last_step: Option<i64>) -> Result<i64, CodeRefusal> {
    let code: String = typed.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
    if code.len() != DIGITS || !code.chars().all(|c| c.is_ascii_digit()) {
        return Err(CodeRefusal::Malformed);
    }
    let now = step_of(unix_seconds);
    let totp = secret.totp();
    let mut matched = None;
    // Every step in the window is checked (no early exit), so the time taken does not say
    // which step matched.
    for step in (now - DRIFT_STEPS)..=(now + DRIFT_STEPS) {
        if step >= 0 && totp.check(&code, (step * STEP_SECONDS) as u64) && matched.is_none() {
            matched = Some(step);
        }
    }
    match matched {
        None => Err(CodeRefusal::Wrong),
        Some(step) if last_step.is_some_and(|last| step <= last) => Err(CodeRefusal::Reused),
        Some(step) => Ok(step),
    }
}

/// A recovery code as shown to the person: 16 base32 characters in four groups of four.
pub fn recovery_code_text(bytes: [u8; RECOVERY_CODE_BYTES]) -> String {
    let s = base32_encode(&bytes);
    s.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("-")
}

/// A typed recovery code in its canonical form (upper case, no separators), or `None` when it
/// cannot be one.
pub fn normalize_recovery_code(typed: &str) -> Option<String> {
    let s: String = typed.chars().filter(|c| !c.is_whitespace() && *c != '-').map(|c| c.to_ascii_uppercase()).collect();
    (s.len() == RECOVERY_CODE_BYTES * 8 / 5 && s.chars().all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c))).then_some(s)
}

/// What the database keeps of a recovery code: the SHA-256 of its canonical form. The codes
/// carry 80 random bits, so a fast hash is enough (as for session tokens).
pub fn recovery_code_hash(canonical: &str) -> String {
    Sha256::digest(canonical.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Which roles must sign in with a second step (clinic policy).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MfaPolicy {
    /// The roles that must enrol and use a code at every sign-in.
    pub required: Vec<Role>,
}

impl Default for MfaPolicy {
    /// Administrators, the medical director and prescribers: the roles that manage accounts,
    /// change clinic policy, or order a controlled drug.
    fn default() -> Self {
        Self { required: vec![Role::Admin, Role::MedicalDirector, Role::Prescriber] }
    }
}

impl MfaPolicy {
    /// Reads the policy value: role codes separated by commas, or `none`.
    pub fn parse(value: &str) -> Result<Self, String> {
        let v = value.trim();
        if v.eq_ignore_ascii_case("none") {
            return Ok(Self { required: Vec::new() });
        }
        let mut required = Vec::new();
        for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let r = Role::parse(part)?;
            if !required.contains(&r) {
                required.push(r);
            }
        }
        if required.is_empty() {
            return Err("must list role codes separated by commas (for example admin,medical_director,prescriber) or be none".into());
        }
        Ok(Self { required })
    }

    /// The policy value for these roles.
    pub fn to_value(&self) -> String {
        if self.required.is_empty() {
            "none".into()
        } else {
            Role::ALL.iter().filter(|r| self.required.contains(r)).map(|r| r.code()).collect::<Vec<_>>().join(",")
        }
    }

    /// Whether `role` must use two-step sign-in.
    pub fn requires(&self, role: Role) -> bool {
        self.required.contains(&role)
    }
}

fn base32_encode(bytes: &[u8]) -> String {
    base32::encode(base32::Alphabet::Rfc4648 { padding: false }, bytes)
}

fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let upper = s.trim_end_matches('=').to_ascii_uppercase();
    if upper.is_empty() || !upper.bytes().all(|c| c.is_ascii_uppercase() || (b'2'..=b'7').contains(&c)) {
        return None;
    }
    base32::decode(base32::Alphabet::Rfc4648 { padding: false }, &upper)
}

fn percent(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc_secret() -> TotpSecret {
        // RFC 6238 Appendix B, SHA-1 seed.
        TotpSecret::from_bytes(*b"12345678901234567890")
    }

    #[test]
    fn codes_match_the_rfc_6238_test_vectors() {
        // The RFC's codes have 8 digits; a 6-digit code is the same number mod 10^6.
        for (t, eight) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(rfc_secret().code_at(t), eight[2..], "T = {t}");
        }
    }

    #[test]
    fn a_code_is_accepted_one_step_either_side_and_never_twice() {
        let s = rfc_secret();
        let t = 1_234_567_890;
        let code = s.code_at(t);
        let step = step_of(t);
        assert_eq!(verify(&s, &code, t, None), Ok(step));
        assert_eq!(verify(&s, &code, t + 30, None), Ok(step), "the phone 30 s behind");
        assert_eq!(verify(&s, &code, t - 30, None), Ok(step), "the phone 30 s ahead");
        assert_eq!(verify(&s, &code, t + 60, None), Err(CodeRefusal::Wrong), "two steps late");
        assert_eq!(verify(&s, &code, t, Some(step)), Err(CodeRefusal::Reused), "the same code again");
        assert_eq!(verify(&s, &s.code_at(t + 30), t + 30, Some(step)), Ok(step + 1), "the next code");
        assert_eq!(verify(&s, &s.code_at(t - 30), t, Some(step)), Err(CodeRefusal::Reused), "an older code after a newer one");
        assert_eq!(verify(&s, &format!("{} {}", &code[..3], &code[3..]), t, None), Ok(step), "spaces are ignored");
        for bad in ["", "12345", "1234567", "12345a", "１２３４５６"] {
            assert_eq!(verify(&s, bad, t, None), Err(CodeRefusal::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn secrets_round_trip_through_base32_and_the_otpauth_address() {
        let s = TotpSecret::from_bytes([0xAB; SECRET_BYTES]);
        let b = s.to_base32();
        assert_eq!(b.len(), 32);
        assert_eq!(TotpSecret::parse_base32(&b).unwrap(), s);
        assert_eq!(TotpSecret::parse_base32(&b.to_lowercase()).unwrap(), s);
        assert!(TotpSecret::parse_base32("ABC1").is_err());
        assert!(TotpSecret::parse_base32("ABCD").is_err(), "wrong length");
        assert_eq!(base32_encode(b"foobar"), "MZXW6YTBOI", "RFC 4648 test vector");
        let uri = s.otpauth_uri("Ketacare clinic", "dr.ward");
        assert!(uri.starts_with("otpauth://totp/Ketacare%20clinic:dr%2Eward?secret="), "{uri}");
        assert!(uri.contains("&issuer=Ketacare%20clinic&algorithm=SHA1&digits=6&period=30"), "{uri}");
        assert_eq!(format!("{s:?}"), "TotpSecret(…)", "a secret never reaches a log");
    }

    #[test]
    fn recovery_codes_read_back_however_they_are_typed() {
        let text = recovery_code_text([7; RECOVERY_CODE_BYTES]);
        assert_eq!(text.len(), 19, "{text}");
        assert_eq!(text.matches('-').count(), 3);
        let canon = normalize_recovery_code(&text).unwrap();
        assert_eq!(normalize_recovery_code(&text.to_lowercase().replace('-', " ")).as_deref(), Some(canon.as_str()));
        assert_eq!(normalize_recovery_code("123456"), None);
        assert_eq!(normalize_recovery_code("AAAA-AAAA-AAAA-AAA1"), None);
        assert_eq!(recovery_code_hash(&canon).len(), 64);
    }

    #[test]
    fn the_policy_defaults_to_the_roles_that_manage_accounts_policy_or_orders() {
        let p = MfaPolicy::default();
        assert!(p.requires(Role::Admin) && p.requires(Role::MedicalDirector) && p.requires(Role::Prescriber));
        assert!(!p.requires(Role::Nurse) && !p.requires(Role::Researcher));
        assert_eq!(p.to_value(), "admin,medical_director,prescriber");
        assert_eq!(MfaPolicy::parse(&p.to_value()).unwrap(), p);
        assert_eq!(MfaPolicy::parse("none").unwrap().required, vec![]);
        assert_eq!(MfaPolicy::parse(" nurse , admin,nurse").unwrap().to_value(), "admin,nurse");
        assert!(MfaPolicy::parse("").is_err());
        assert!(MfaPolicy::parse("admin,surgeon").is_err());
    }
}
