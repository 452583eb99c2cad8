//! The tamper-evident audit trail: every audit entry is linked into a SHA-256 hash chain, and
//! signed checkpoints pin the chain's head from time to time.
//!
//! A link is `SHA-256(previous link ‖ the entry's canonical text)`, starting from [`GENESIS`].
//! The canonical text is the entry's sequence number and its stored columns, each written with
//! its length (a missing value is distinct from an empty one), so no two entries share one.
//! A checkpoint is an Ed25519 signature (made by the application, with a key the database does
//! not hold) over [`checkpoint_message`].
//!
//! [`ChainVerifier`] walks entries and links in sequence order and reports, by position, every
//! entry that was altered, inserted after sealing or deleted, and every checkpoint whose
//! signature fails or whose chain head no longer matches (a chain recomputed after a change).
//! Pure: the caller reads the rows and checks the signatures.

use sha2::{Digest, Sha256};

/// The link before the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The canonical text of an entry: its sequence number and columns, length-prefixed.
pub fn canonical(seq: i64, columns: &[Option<String>]) -> String {
    let mut s = format!("ketacare-audit-v1|{seq}|");
    for c in columns {
        match c {
            Some(v) => {
                s.push_str(&v.len().to_string());
                s.push(':');
                s.push_str(v);
                s.push('|');
            }
            None => s.push_str("-|"),
        }
    }
    s
}

/// The link of an entry after `prev` (hex SHA-256).
pub fn link(prev: &str, seq: i64, columns: &[Option<String>]) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(canonical(seq, columns).as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// What a checkpoint signs.
pub fn checkpoint_message(seq: i64, head: &str, signed_at: &str) -> String {
    format!("ketacare-audit-checkpoint-v1|{seq}|{head}|{signed_at}")
}

/// One position of the walk: the entry (its columns) and its link, either of which may be
/// missing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainItem {
    /// Sequence number.
    pub seq: i64,
    /// The entry's columns in canonical order, if the entry exists.
    pub columns: Option<Vec<Option<String>>>,
    /// The stored link, if the entry was sealed.
    pub link: Option<String>,
}

/// A checkpoint as stored, with the result of checking its signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedCheckpoint {
    /// Last entry it covers.
    pub seq: i64,
    /// The chain head it signed.
    pub head: String,
    /// When it was signed (as stored).
    pub signed_at: String,
    /// Whether the signature verifies with the trusted key (`None`: no key to check with).
    pub signature_ok: Option<bool>,
}

/// A problem found, with its position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// The entry does not match its link: it was altered (or an entry just before it was
    /// deleted or altered together with its link).
    Altered {
        /// Position.
        seq: i64,
    },
    /// A link without its entry: the entry was deleted.
    Deleted {
        /// Position.
        seq: i64,
    },
    /// An entry at or before the sealed head without a link: it was inserted afterwards.
    Inserted {
        /// Position.
        seq: i64,
    },
    /// A checkpoint's signature does not verify with the trusted key.
    BadSignature {
        /// The checkpoint's position.
        seq: i64,
    },
    /// The chain head at a checkpoint differs from the signed one: the chain up to it was
    /// rewritten, or entries up to it were deleted.
    CheckpointMismatch {
        /// The checkpoint's position.
        seq: i64,
    },
    /// A trusted key was given but no checkpoint signed with it covers the trail: a trail
    /// rewritten from the start (checkpoints deleted) would look intact.
    NotSigned {
        /// The sealed head.
        seq: i64,
    },
}

impl Finding {
    /// The position the finding is at.
    pub fn seq(&self) -> i64 {
        match self {
            Finding::Altered { seq }
            | Finding::Deleted { seq }
            | Finding::Inserted { seq }
            | Finding::BadSignature { seq }
            | Finding::CheckpointMismatch { seq }
            | Finding::NotSigned { seq } => *seq,
        }
    }

    /// A short code (for JSON).
    pub fn code(&self) -> &'static str {
        match self {
            Finding::Altered { .. } => "altered",
            Finding::Deleted { .. } => "deleted",
            Finding::Inserted { .. } => "inserted",
            Finding::BadSignature { .. } => "bad_signature",
            Finding::CheckpointMismatch { .. } => "checkpoint_mismatch",
            Finding::NotSigned { .. } => "not_signed",
        }
    }

    /// A sentence for people.
    pub fn describe(&self) -> String {
        match self {
            Finding::Altered { seq } => {
                format!("entry #{seq} does not match the chain: it was altered, or the entry before it was deleted or altered")
            }
            Finding::Deleted { seq } => format!("entry #{seq} was deleted (its link remains)"),
            Finding::Inserted { seq } => format!("entry #{seq} was inserted after the trail was sealed (it has no link)"),
            Finding::BadSignature { seq } => format!("the checkpoint at entry #{seq} is not signed by the trusted key"),
            Finding::CheckpointMismatch { seq } => {
                format!("the chain up to entry #{seq} differs from its signed checkpoint: it was rewritten or entries were deleted")
            }
            Finding::NotSigned { seq } => {
                format!("no checkpoint signed with the trusted key covers the trail up to entry #{seq}: a trail rewritten from the start would look intact")
            }
        }
    }
}

/// What a verification found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainReport {
    /// Entries whose link was checked.
    pub checked: u64,
    /// Entries after the sealed head, not yet linked (sealed within seconds by the server).
    pub unsealed: u64,
    /// Checkpoints checked.
    pub checkpoints: u64,
    /// Of which the signature was verified with a trusted key.
    pub checkpoints_verified: u64,
    /// Every problem, in position order.
    pub findings: Vec<Finding>,
}

impl ChainReport {
    /// Whether nothing was found.
    pub fn intact(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Walks the chain; feed every position in increasing `seq`, then [`ChainVerifier::finish`].
#[derive(Debug)]
pub struct ChainVerifier {
    prev: String,
    sealed_head: i64,
    last_seq: Option<i64>,
    heads: std::collections::BTreeMap<i64, String>,
    report: ChainReport,
}

impl ChainVerifier {
    /// A walk over a trail sealed up to `sealed_head` (the highest linked position, 0 if
    /// none), collecting the link at each of `checkpoint_seqs`.
    pub fn new(sealed_head: i64, checkpoint_seqs: impl IntoIterator<Item = i64>) -> Self {
        Self {
            prev: GENESIS.to_owned(),
            sealed_head,
            last_seq: None,
            heads: checkpoint_seqs.into_iter().map(|s| (s, String::new())).collect(),
            report: ChainReport::default(),
        }
    }

    /// The next position.
    ///
    /// # Panics
    /// Never for positions fed in increasing order; out-of-order positions are a caller bug
    /// and reported as an alteration at that position instead.
    pub fn feed(&mut self, item: &ChainItem) {
        if self.last_seq.is_some_and(|l| item.seq <= l) {
            self.report.findings.push(Finding::Altered { seq: item.seq });
            return;
        }
        self.last_seq = Some(item.seq);
        match (&item.columns, &item.link) {
            (Some(cols), Some(stored)) => {
                self.report.checked += 1;
                if link(&self.prev, item.seq, cols) != *stored {
                    self.report.findings.push(Finding::Altered { seq: item.seq });
                }
                self.prev = stored.clone();
            }
            (Some(_), None) => {
                if item.seq <= self.sealed_head {
                    self.report.findings.push(Finding::Inserted { seq: item.seq });
                } else {
                    self.report.unsealed += 1;
                }
            }
            (None, Some(stored)) => {
                self.report.findings.push(Finding::Deleted { seq: item.seq });
                self.prev = stored.clone();
            }
            (None, None) => {}
        }
        if let (Some(h), Some(stored)) = (self.heads.get_mut(&item.seq), &item.link) {
            h.clone_from(stored);
        }
    }

    /// Checks the checkpoints against the links seen and returns the report.
    pub fn finish(mut self, checkpoints: &[CheckedCheckpoint]) -> ChainReport {
        for c in checkpoints {
            self.report.checkpoints += 1;
            match c.signature_ok {
                Some(true) => self.report.checkpoints_verified += 1,
                Some(false) => self.report.findings.push(Finding::BadSignature { seq: c.seq }),
                None => {}
            }
            let seen = self.heads.get(&c.seq).filter(|h| !h.is_empty());
            if seen != Some(&c.head) {
                self.report.findings.push(Finding::CheckpointMismatch { seq: c.seq });
            }
        }
        self.report.findings.sort_by_key(Finding::seq);
        self.report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(detail: &str) -> Vec<Option<String>> {
        vec![Some("2026-12-01T09:00:00.000000Z".into()), Some("nina.nurse".into()), None, Some(detail.into())]
    }

    /// A sealed trail of `n` entries: items and the heads after each.
    fn trail(n: i64) -> Vec<ChainItem> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|seq| {
                let c = cols(&format!("read {seq}"));
                let l = link(&prev, seq, &c);
                prev.clone_from(&l);
                ChainItem { seq, columns: Some(c), link: Some(l) }
            })
            .collect()
    }

    fn verify(items: &[ChainItem], sealed_head: i64, cps: &[CheckedCheckpoint]) -> ChainReport {
        let mut v = ChainVerifier::new(sealed_head, cps.iter().map(|c| c.seq));
        for i in items {
            v.feed(i);
        }
        v.finish(cps)
    }

    fn cp(items: &[ChainItem], seq: i64) -> CheckedCheckpoint {
        let head = items.iter().find(|i| i.seq == seq).and_then(|i| i.link.clone()).unwrap();
        CheckedCheckpoint { seq, head, signed_at: "2026-12-01T09:10:00.000000Z".into(), signature_ok: Some(true) }
    }

    #[test]
    fn an_intact_trail_verifies_with_its_unsealed_tail_counted() {
        let mut items = trail(10);
        items.push(ChainItem { seq: 11, columns: Some(cols("late")), link: None });
        let r = verify(&items, 10, &[cp(&items, 5), cp(&items, 10)]);
        assert!(r.intact(), "{r:?}");
        assert_eq!((r.checked, r.unsealed, r.checkpoints, r.checkpoints_verified), (10, 1, 2, 2));
    }

    #[test]
    fn canonical_text_tells_a_missing_value_from_an_empty_one_and_resists_shifting() {
        assert_ne!(canonical(1, &[None]), canonical(1, &[Some(String::new())]));
        assert_ne!(canonical(1, &[Some("a|b".into()), Some("c".into())]), canonical(1, &[Some("a".into()), Some("b|c".into())]));
        assert_ne!(canonical(1, &[Some("x".into())]), canonical(2, &[Some("x".into())]));
    }

    #[test]
    fn an_altered_entry_is_reported_at_its_position_only() {
        let mut items = trail(10);
        items[3].columns = Some(cols("read 4 (edited)"));
        let r = verify(&items, 10, &[]);
        assert_eq!(r.findings, vec![Finding::Altered { seq: 4 }]);
    }

    #[test]
    fn a_deleted_entry_with_its_link_breaks_the_next_link() {
        let mut items = trail(10);
        items.remove(6);
        assert_eq!(verify(&items, 10, &[]).findings, vec![Finding::Altered { seq: 8 }]);
        let mut items = trail(10);
        items[6].columns = None;
        assert_eq!(verify(&items, 10, &[]).findings, vec![Finding::Deleted { seq: 7 }]);
    }

    #[test]
    fn an_entry_inserted_below_the_sealed_head_is_reported() {
        let mut items = trail(10);
        items.insert(3, ChainItem { seq: 4, columns: Some(cols("forged")), link: None });
        for (i, it) in items.iter_mut().enumerate().skip(4) {
            it.seq = i as i64 + 1;
        }
        // Renumbering breaks every later link too; the forged entry is named first.
        let r = verify(&items, 11, &[]);
        assert_eq!(r.findings.first(), Some(&Finding::Inserted { seq: 4 }));
    }

    #[test]
    fn a_recomputed_chain_is_caught_by_the_signed_checkpoint() {
        let original = trail(10);
        let cps = [cp(&original, 5), cp(&original, 10)];
        // The attacker edits entry 3 and recomputes every link after it.
        let mut prev = GENESIS.to_owned();
        let forged: Vec<ChainItem> = original
            .iter()
            .map(|i| {
                let c = if i.seq == 3 { cols("read 3 (edited)") } else { i.columns.clone().unwrap() };
                let l = link(&prev, i.seq, &c);
                prev.clone_from(&l);
                ChainItem { seq: i.seq, columns: Some(c), link: Some(l) }
            })
            .collect();
        let r = verify(&forged, 10, &cps);
        assert_eq!(r.findings, vec![Finding::CheckpointMismatch { seq: 5 }, Finding::CheckpointMismatch { seq: 10 }]);
        // Forging the checkpoints too needs the key.
        let mut bad = cps.clone();
        bad[1].head = forged[9].link.clone().unwrap();
        bad[1].signature_ok = Some(false);
        let r = verify(&forged, 10, &bad);
        assert!(r.findings.contains(&Finding::BadSignature { seq: 10 }), "{r:?}");
    }

    #[test]
    fn a_deleted_tail_before_a_checkpoint_is_caught() {
        let items = trail(10);
        let cps = [cp(&items, 10)];
        let r = verify(&items[..8], 8, &cps);
        assert_eq!(r.findings, vec![Finding::CheckpointMismatch { seq: 10 }]);
    }
}
