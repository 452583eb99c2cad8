//! TOTP secrets at rest. A server must keep each account's TOTP secret to check its codes, so a
//! copy of the database (a dump, a stolen backup, a plain PostgreSQL volume) would hold every
//! second factor. With the clinic's `mfa_secret_key` (256 bits, kept outside the database like
//! the audit signing key) each secret is sealed with XChaCha20-Poly1305 under a fresh random
//! nonce, bound to its account (the account id is the associated data, so a sealed secret
//! copied onto another account does not open). A sealed secret reads `kc1:<hex>`; a secret
//! without the prefix is plain (stored before the key was set, or on a server without one)
//! and is sealed at the next start with a key ([`crate::App::seal_totp_secrets`]).

use crate::AppError;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ketacare_domain::ids::UserId;
use rand::RngCore;

/// The prefix of a sealed secret.
const SEALED: &str = "kc1:";
/// XChaCha20's nonce: 192 bits, safe to draw at random for every seal.
const NONCE_BYTES: usize = 24;

/// The key that seals TOTP secrets (never printed).
#[derive(Clone)]
pub struct MfaKey([u8; 32]);

impl std::fmt::Debug for MfaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MfaKey(***)")
    }
}

impl MfaKey {
    /// Reads a key written as 64 hexadecimal digits (surrounding whitespace ignored), as
    /// `ketacare database new-key` prints one.
    pub fn from_hex(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if t.len() != 64 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "must be 64 hexadecimal digits (256 bits; `ketacare database new-key` makes one), got {} characters",
                t.len()
            ));
        }
        let mut k = [0u8; 32];
        for (i, b) in k.iter_mut().enumerate() {
            *b = u8::from_str_radix(&t[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
        }
        Ok(Self(k))
    }

    /// A key from its bytes.
    pub fn from_bytes(b: [u8; 32]) -> Self {
        Self(b)
    }
}

fn aad(user: UserId) -> String {
    format!("ketacare totp secret of {user}")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(t: &str) -> Option<Vec<u8>> {
    if !t.len().is_multiple_of(2) {
        return None;
    }
    (0..t.len()).step_by(2).map(|i| u8::from_str_radix(t.get(i..i + 2)?, 16).ok()).collect()
}

/// Whether a stored secret is sealed.
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(SEALED)
}

/// Seals `secret` (base32) for `user` with `key`; without a key the secret is stored as it is.
pub fn seal(key: Option<&MfaKey>, user: UserId, secret: &str) -> Result<String, AppError> {
    let Some(key) = key else { return Ok(secret.to_owned()) };
    let mut nonce = [0u8; NONCE_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let cipher = XChaCha20Poly1305::new((&key.0).into());
    let a = aad(user);
    let ct = cipher
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: secret.as_bytes(), aad: a.as_bytes() })
        .map_err(|_| AppError::Internal("sealing a TOTP secret failed".into()))?;
    Ok(format!("{SEALED}{}{}", hex(&nonce), hex(&ct)))
}

/// Opens a stored secret of `user`: a sealed one with `key`, a plain one as it is. A sealed
/// secret without a key, or one the key does not open (another key, another account, altered),
/// is an error saying which setting to look at.
pub fn open(key: Option<&MfaKey>, user: UserId, stored: &str) -> Result<String, AppError> {
    let Some(body) = stored.strip_prefix(SEALED) else { return Ok(stored.to_owned()) };
    let Some(key) = key else {
        return Err(AppError::Internal("the stored TOTP secrets are sealed, and mfa_secret_key is not set: set it (or mfa_secret_key_file) to the key they were sealed with".into()));
    };
    let bytes =
        unhex(body).filter(|b| b.len() > NONCE_BYTES).ok_or_else(|| AppError::Internal("a sealed TOTP secret is malformed".into()))?;
    let (nonce, ct) = bytes.split_at(NONCE_BYTES);
    let cipher = XChaCha20Poly1305::new((&key.0).into());
    let a = aad(user);
    let plain = cipher.decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: a.as_bytes() }).map_err(|_| {
        AppError::Internal("mfa_secret_key does not open the stored TOTP secret (another key, or the secret was altered)".into())
    })?;
    String::from_utf8(plain).map_err(|_| AppError::Internal("a sealed TOTP secret is not text".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> UserId {
        UserId::from_uuid(uuid::Uuid::from_u128(7))
    }

    #[test]
    fn a_sealed_secret_opens_with_its_key_and_account_only() {
        let key = MfaKey::from_bytes([7; 32]);
        let secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
        let sealed = seal(Some(&key), user(), secret).unwrap();
        assert!(is_sealed(&sealed) && !sealed.contains(secret), "{sealed}");
        assert_ne!(sealed, seal(Some(&key), user(), secret).unwrap(), "a fresh nonce each time");
        assert_eq!(open(Some(&key), user(), &sealed).unwrap(), secret);
        let other_account = UserId::from_uuid(uuid::Uuid::from_u128(8));
        assert!(open(Some(&key), other_account, &sealed).is_err(), "bound to its account");
        assert!(open(Some(&MfaKey::from_bytes([8; 32])), user(), &sealed).unwrap_err().to_string().contains("mfa_secret_key"));
        assert!(open(None, user(), &sealed).unwrap_err().to_string().contains("mfa_secret_key is not set"));
        let mut altered = sealed.clone();
        altered.pop();
        altered.push(if sealed.ends_with('0') { '1' } else { '0' });
        assert!(open(Some(&key), user(), &altered).is_err(), "an altered secret does not open");
    }

    #[test]
    fn without_a_key_secrets_stay_plain_and_plain_secrets_open_as_they_are() {
        assert_eq!(seal(None, user(), "ABC").unwrap(), "ABC");
        assert_eq!(open(Some(&MfaKey::from_bytes([1; 32])), user(), "ABC").unwrap(), "ABC");
    }

    #[test]
    fn a_key_is_64_hex_digits() {
        assert!(MfaKey::from_hex(&"ab".repeat(32)).is_ok());
        assert!(MfaKey::from_hex(&format!("  {}\n", "AB".repeat(32))).is_ok());
        assert!(MfaKey::from_hex("abc").unwrap_err().contains("64 hexadecimal digits"));
        assert!(MfaKey::from_hex(&"zz".repeat(32)).is_err());
        assert_eq!(format!("{:?}", MfaKey::from_bytes([9; 32])), "MfaKey(***)");
    }
}
