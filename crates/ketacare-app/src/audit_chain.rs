//! The tamper-evident audit trail: sealing new entries into the hash chain, signing
//! checkpoints of its head, and verifying the whole trail (see
//! `ketacare_domain::audit_chain`).

use crate::{App, AppError};
use chrono::{DateTime, Duration, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use ketacare_db::chain::{AuditCheckpoint, SealOutcome};
use ketacare_domain::audit_chain::{checkpoint_message, ChainReport, ChainVerifier, CheckedCheckpoint};

/// Entries linked per seal (per transaction).
const SEAL_BATCH: u32 = 5_000;
/// Positions read per page when verifying.
const VERIFY_PAGE: u32 = 5_000;

/// The key that signs checkpoints (an Ed25519 secret key; its public half verifies them).
#[derive(Clone)]
pub struct AuditKey(SigningKey);

impl std::fmt::Debug for AuditKey {
    /// Shows the public key only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditKey(public {})", hex(self.0.verifying_key().as_bytes()))
    }
}

impl AuditKey {
    /// From 64 hex digits (the 32-byte secret key).
    pub fn from_hex(s: &str) -> Result<Self, String> {
        let bytes = unhex(s.trim()).filter(|b| b.len() == 32).ok_or("must be 64 hexadecimal digits (a 32-byte Ed25519 secret key)")?;
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&bytes);
        Ok(Self(SigningKey::from_bytes(&seed)))
    }

    /// A new random key, as 64 hex digits.
    pub fn generate_hex() -> String {
        let mut seed = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
        hex(&seed)
    }

    /// The public key, as 64 hex digits.
    pub fn public_hex(&self) -> String {
        hex(self.0.verifying_key().as_bytes())
    }
}

/// A public key to verify checkpoints with, from 64 hex digits.
pub fn verifying_key(s: &str) -> Result<VerifyingKey, String> {
    let bytes = unhex(s.trim()).filter(|b| b.len() == 32).ok_or("must be 64 hexadecimal digits (a 32-byte Ed25519 public key)")?;
    let mut a = [0u8; 32];
    a.copy_from_slice(&bytes);
    VerifyingKey::from_bytes(&a).map_err(|_| "is not a valid Ed25519 public key".to_owned())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
}

fn check_signature(c: &AuditCheckpoint, key: &VerifyingKey) -> bool {
    let Some(sig) = unhex(&c.signature).and_then(|b| <[u8; 64]>::try_from(b).ok()) else { return false };
    key.verify(checkpoint_message(c.seq, &c.head, &c.signed_at).as_bytes(), &Signature::from_bytes(&sig)).is_ok()
}

impl App {
    /// Links every audit entry not yet in the chain and, when a signing key is configured and
    /// the last checkpoint is older than the checkpoint interval, signs a checkpoint of the
    /// head. The server calls it every few seconds; servers sharing a database take turns.
    pub async fn seal_audit(&self) -> Result<SealOutcome, AppError> {
        let now = self.clock.now();
        let mut total = SealOutcome::default();
        loop {
            let o = self.store.seal_audit(now, SEAL_BATCH).await?;
            total.sealed += o.sealed;
            total.head = o.head;
            if o.sealed < u64::from(SEAL_BATCH) {
                break;
            }
        }
        if let (Some(key), Some((seq, head))) = (&self.settings.audit_key, &total.head) {
            self.checkpoint_if_due(key, *seq, head, now).await?;
        }
        Ok(total)
    }

    async fn checkpoint_if_due(&self, key: &AuditKey, seq: i64, head: &str, now: DateTime<Utc>) -> Result<(), AppError> {
        let last = {
            let guard = self.audit_checkpoint.lock().map_err(|_| AppError::Internal("checkpoint state poisoned".into()))?;
            *guard
        };
        let last = match last {
            Some(l) => l,
            None => {
                // First time on this server: the newest stored checkpoint, if any.
                let l = self.store.list_audit_checkpoints().await?.last().map(|c| {
                    let at = ketacare_db::codec::parse_ts(&c.signed_at).unwrap_or(DateTime::<Utc>::MIN_UTC);
                    (at, c.seq)
                });
                l.unwrap_or((DateTime::<Utc>::MIN_UTC, 0))
            }
        };
        let due = seq > last.1 && now - last.0 >= self.settings.audit_checkpoint_every;
        if !due {
            *self.audit_checkpoint.lock().map_err(|_| AppError::Internal("checkpoint state poisoned".into()))? = Some(last);
            return Ok(());
        }
        let signed_at = ketacare_db::codec::ts(now);
        let signature = key.0.sign(checkpoint_message(seq, head, &signed_at).as_bytes());
        let c = AuditCheckpoint { seq, head: head.to_owned(), signed_at, key_id: key.public_hex(), signature: hex(&signature.to_bytes()) };
        match self.store.append_audit_checkpoint(&c).await {
            // Another server signed the same head a moment ago.
            Ok(()) | Err(ketacare_db::DbError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
        *self.audit_checkpoint.lock().map_err(|_| AppError::Internal("checkpoint state poisoned".into()))? = Some((now, seq));
        Ok(())
    }

    /// Verifies the whole audit trail: every link, and every checkpoint against `trusted` (the
    /// public key checkpoints must be signed with; without one, signatures are not checked but
    /// the chain heads still are). Reads the trail page by page.
    pub async fn verify_audit(&self, trusted: Option<&VerifyingKey>) -> Result<ChainReport, AppError> {
        let checkpoints = self.store.list_audit_checkpoints().await?;
        let sealed_head = self.store.audit_chain_head().await?.map_or(0, |h| h.0);
        let mut v = ChainVerifier::new(sealed_head, checkpoints.iter().map(|c| c.seq));
        // From the very start: an entry slipped in at position 0 or below must be seen too.
        let mut after = i64::MIN;
        loop {
            let page = self.store.audit_chain_page(after, VERIFY_PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for item in page {
                // Links sealed after the walk began (the server seals every 2 s) are not part
                // of what is verified: positions above the head read first count as unsealed.
                // Below it, no entry can appear or change legitimately any more.
                if item.seq > sealed_head {
                    if item.columns.is_some() {
                        v.feed(&ketacare_domain::audit_chain::ChainItem { link: None, ..item });
                    }
                    continue;
                }
                v.feed(&item);
            }
        }
        let checked: Vec<CheckedCheckpoint> = checkpoints
            .iter()
            .map(|c| CheckedCheckpoint {
                seq: c.seq,
                head: c.head.clone(),
                signed_at: c.signed_at.clone(),
                signature_ok: trusted.map(|k| check_signature(c, k)),
            })
            .collect();
        let mut report = v.finish(&checked);
        if trusted.is_some() && sealed_head > 0 && report.checkpoints_verified == 0 {
            report.findings.push(ketacare_domain::audit_chain::Finding::NotSigned { seq: sealed_head });
        }
        Ok(report)
    }
}

/// How often a checkpoint is signed by default.
pub fn default_checkpoint_every() -> Duration {
    Duration::minutes(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_hex_and_bad_keys_are_named() {
        let k = AuditKey::from_hex(&AuditKey::generate_hex()).unwrap();
        assert_eq!(verifying_key(&k.public_hex()).unwrap().as_bytes(), k.0.verifying_key().as_bytes());
        assert!(AuditKey::from_hex("abc").unwrap_err().contains("64 hexadecimal digits"));
        assert!(AuditKey::from_hex(&"zz".repeat(32)).is_err());
        assert!(!format!("{k:?}").contains(&hex(k.0.as_bytes())), "Debug never shows the secret");
    }

    #[test]
    fn a_checkpoint_verifies_only_with_its_key_and_its_exact_message() {
        let k = AuditKey::from_hex(&AuditKey::generate_hex()).unwrap();
        let other = AuditKey::from_hex(&AuditKey::generate_hex()).unwrap();
        let signed_at = "2026-12-01T09:00:00.000000Z".to_owned();
        let sig = k.0.sign(checkpoint_message(7, "ab", &signed_at).as_bytes());
        let c = AuditCheckpoint { seq: 7, head: "ab".into(), signed_at, key_id: k.public_hex(), signature: hex(&sig.to_bytes()) };
        assert!(check_signature(&c, &k.0.verifying_key()));
        assert!(!check_signature(&c, &other.0.verifying_key()));
        assert!(!check_signature(&AuditCheckpoint { head: "ac".into(), ..c.clone() }, &k.0.verifying_key()));
        assert!(!check_signature(&AuditCheckpoint { signature: "00".into(), ..c }, &k.0.verifying_key()));
    }
}
