//! The audit trail's hash chain and signed checkpoints (see `ketacare_domain::audit_chain`).
//!
//! Sealing links the audit entries not yet linked, in sequence order, inside a transaction
//! that no audit write can interleave with: SQLite's `BEGIN IMMEDIATE` (one writer at a time,
//! so sequence order is commit order), and on PostgreSQL a `SHARE ROW EXCLUSIVE` lock on
//! `audit_log`, which waits for every transaction that inserted an entry to end and holds new
//! ones back until the seal commits. So a position below the sealed head never gains an entry
//! later, and servers sharing one database seal one after another.

use crate::DbResult;
use chrono::{DateTime, Utc};
use ketacare_domain::audit_chain::ChainItem;

/// A signed checkpoint as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditCheckpoint {
    /// Last entry covered.
    pub seq: i64,
    /// The chain's link at `seq`.
    pub head: String,
    /// When it was signed, as stored (part of the signed message).
    pub signed_at: String,
    /// Hex of the Ed25519 public key that signed it.
    pub key_id: String,
    /// Hex of the signature over `checkpoint_message(seq, head, signed_at)`.
    pub signature: String,
}

/// What one seal did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SealOutcome {
    /// Entries linked now.
    pub sealed: u64,
    /// The sealed head afterwards (position and link), if anything is sealed.
    pub head: Option<(i64, String)>,
}

/// Storage of the chain.
#[crate::__async_trait]
pub trait AuditChainStore {
    /// Links up to `limit` unlinked entries in sequence order (see the module docs).
    async fn seal_audit(&self, at: DateTime<Utc>, limit: u32) -> DbResult<SealOutcome>;
    /// The sealed head (position and link), if any.
    async fn audit_chain_head(&self) -> DbResult<Option<(i64, String)>>;
    /// Positions after `after`, in order, at most `limit` of them, each with the entry's columns
    /// and its link where they exist (a deleted entry or a missing link shows as `None`).
    async fn audit_chain_page(&self, after: i64, limit: u32) -> DbResult<Vec<ChainItem>>;
    /// Stores a checkpoint; `Conflict` if one exists at that position.
    async fn append_audit_checkpoint(&self, c: &AuditCheckpoint) -> DbResult<()>;
    /// Every checkpoint, by position.
    async fn list_audit_checkpoints(&self) -> DbResult<Vec<AuditCheckpoint>>;
}

/// An `audit_log` row as text, in canonical column order.
pub type RawAuditRow = (
    i64,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// The columns of a raw row after its sequence number.
pub fn columns(r: RawAuditRow) -> (i64, Vec<Option<String>>) {
    (r.0, vec![Some(r.1), r.2, Some(r.3), r.4, r.5, r.6, Some(r.7), Some(r.8), Some(r.9), r.10, r.11, r.12])
}

/// Merges entries and links (each sorted by position, each at most `limit` long) into the
/// positions both lists cover completely.
pub fn merge(rows: Vec<(i64, Vec<Option<String>>)>, links: Vec<(i64, String)>, limit: usize) -> Vec<ChainItem> {
    let bound = |v: Option<i64>, full: bool| if full { v.unwrap_or(i64::MAX) } else { i64::MAX };
    let upto = bound(rows.last().map(|r| r.0), rows.len() >= limit).min(bound(links.last().map(|l| l.0), links.len() >= limit));
    let mut out: Vec<ChainItem> = Vec::with_capacity(rows.len().max(links.len()));
    let (mut r, mut l) = (rows.into_iter().peekable(), links.into_iter().peekable());
    loop {
        let next = match (r.peek(), l.peek()) {
            (None, None) => break,
            (Some(a), None) => a.0,
            (None, Some(b)) => b.0,
            (Some(a), Some(b)) => a.0.min(b.0),
        };
        if next > upto {
            break;
        }
        let columns = r.next_if(|a| a.0 == next).map(|a| a.1);
        let link = l.next_if(|b| b.0 == next).map(|b| b.1);
        out.push(ChainItem { seq: next, columns, link });
    }
    out
}

/// Implements [`AuditChainStore`]; the backend provides `begin_audit_seal()`.
#[macro_export]
macro_rules! impl_audit_chain_store {
    ($store:ty, $db:ty) => {
        #[$crate::__async_trait]
        impl $crate::chain::AuditChainStore for $store {
            async fn seal_audit(&self, at: ::chrono::DateTime<::chrono::Utc>, limit: u32) -> $crate::DbResult<$crate::chain::SealOutcome> {
                let mut tx = self.begin_audit_seal().await.map_err($crate::DbError::from_sqlx)?;
                let last: Option<(i64, String)> = $crate::__sqlx::query_as("SELECT seq, link FROM audit_chain ORDER BY seq DESC LIMIT 1")
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err($crate::DbError::from_sqlx)?;
                let (after, mut prev) = last.clone().unwrap_or((0, ::ketacare_domain::audit_chain::GENESIS.to_owned()));
                let sql = format!("SELECT {} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2", $crate::sql::AUDIT_COLS);
                let rows: Vec<$crate::chain::RawAuditRow> = $crate::__sqlx::query_as(&sql)
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(&mut *tx)
                    .await
                    .map_err($crate::DbError::from_sqlx)?;
                if rows.is_empty() {
                    tx.rollback().await.map_err($crate::DbError::from_sqlx)?;
                    return Ok($crate::chain::SealOutcome { sealed: 0, head: last });
                }
                let sealed_at = $crate::codec::ts(at);
                let mut links: Vec<(i64, String)> = Vec::with_capacity(rows.len());
                for r in rows {
                    let (seq, cols) = $crate::chain::columns(r);
                    let l = ::ketacare_domain::audit_chain::link(&prev, seq, &cols);
                    prev.clone_from(&l);
                    links.push((seq, l));
                }
                for chunk in links.chunks(500) {
                    let mut qb = $crate::__sqlx::QueryBuilder::<$db>::new("INSERT INTO audit_chain (seq, link, sealed_at) ");
                    qb.push_values(chunk, |mut b, (seq, l)| {
                        b.push_bind(*seq).push_bind(l.clone()).push_bind(sealed_at.clone());
                    });
                    qb.build().execute(&mut *tx).await.map_err($crate::DbError::from_sqlx)?;
                }
                tx.commit().await.map_err($crate::DbError::from_sqlx)?;
                Ok($crate::chain::SealOutcome { sealed: links.len() as u64, head: links.pop() })
            }

            async fn audit_chain_head(&self) -> $crate::DbResult<Option<(i64, String)>> {
                $crate::__sqlx::query_as("SELECT seq, link FROM audit_chain ORDER BY seq DESC LIMIT 1")
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::DbError::from_sqlx)
            }

            async fn audit_chain_page(&self, after: i64, limit: u32) -> $crate::DbResult<Vec<::ketacare_domain::audit_chain::ChainItem>> {
                let sql = format!("SELECT {} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2", $crate::sql::AUDIT_COLS);
                let rows: Vec<$crate::chain::RawAuditRow> = $crate::__sqlx::query_as(&sql)
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::DbError::from_sqlx)?;
                let links: Vec<(i64, String)> =
                    $crate::__sqlx::query_as("SELECT seq, link FROM audit_chain WHERE seq > $1 ORDER BY seq LIMIT $2")
                        .bind(after)
                        .bind(i64::from(limit))
                        .fetch_all(&self.pool)
                        .await
                        .map_err($crate::DbError::from_sqlx)?;
                Ok($crate::chain::merge(rows.into_iter().map($crate::chain::columns).collect(), links, limit as usize))
            }

            async fn append_audit_checkpoint(&self, c: &$crate::chain::AuditCheckpoint) -> $crate::DbResult<()> {
                $crate::__sqlx::query(
                    "INSERT INTO audit_checkpoints (seq, head, signed_at, key_id, signature) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(c.seq)
                .bind(c.head.clone())
                .bind(c.signed_at.clone())
                .bind(c.key_id.clone())
                .bind(c.signature.clone())
                .execute(&self.pool)
                .await
                .map_err($crate::DbError::from_sqlx)?;
                Ok(())
            }

            async fn list_audit_checkpoints(&self) -> $crate::DbResult<Vec<$crate::chain::AuditCheckpoint>> {
                let rows: Vec<(i64, String, String, String, String)> =
                    $crate::__sqlx::query_as("SELECT seq, head, signed_at, key_id, signature FROM audit_checkpoints ORDER BY seq")
                        .fetch_all(&self.pool)
                        .await
                        .map_err($crate::DbError::from_sqlx)?;
                Ok(rows
                    .into_iter()
                    .map(|(seq, head, signed_at, key_id, signature)| $crate::chain::AuditCheckpoint {
                        seq,
                        head,
                        signed_at,
                        key_id,
                        signature,
                    })
                    .collect())
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: i64) -> (i64, Vec<Option<String>>) {
        (seq, vec![Some(format!("e{seq}"))])
    }

    #[test]
    fn merge_pairs_positions_and_stops_where_a_full_page_ends() {
        let rows = vec![row(1), row(2), row(4)];
        let links = vec![(1, "a".to_owned()), (3, "c".to_owned()), (4, "d".to_owned())];
        let m = merge(rows, links, 3);
        // Both pages are full and end at 4: positions 1 to 4.
        assert_eq!(
            m.iter().map(|i| (i.seq, i.columns.is_some(), i.link.is_some())).collect::<Vec<_>>(),
            vec![(1, true, true), (2, true, false), (3, false, true), (4, true, true)]
        );
        // A full page of entries ending at 2 bounds the merge even if links go further.
        let m = merge(vec![row(1), row(2)], vec![(1, "a".into()), (5, "e".into())], 2);
        assert_eq!(m.iter().map(|i| i.seq).collect::<Vec<_>>(), vec![1, 2]);
    }
}
