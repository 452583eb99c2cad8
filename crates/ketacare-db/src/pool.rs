//! Transactions that an abandoned caller cannot leave open.
//!
//! A store call runs inside somebody's future: a request handler, a live board's event stream,
//! a timeout. When that future is dropped half-way (the browser closed, the client hung up),
//! sqlx rolls back a transaction it has handed out, but not one whose `BEGIN` the database
//! carried out while the caller was still waiting for it: sqlx 0.8's SQLite `begin_with` and
//! PostgreSQL `begin` both have such a moment. The connection would go back to the pool inside
//! a transaction nobody ends: on SQLite it holds the write lock (every later write waits out
//! the busy timeout and fails); on PostgreSQL the next borrower's statements run inside it,
//! a plain statement left uncommitted until some later transaction's `COMMIT` takes it along.
//! So both backends start every store transaction with [`begin_detached`]. SQLite also checks
//! each connection as it returns to the pool with [`released_outside_transaction`]; on
//! PostgreSQL that check could not see this case (sqlx counts the transaction only once the
//! `BEGIN` is answered, and does not expose the server's own state), so `begin_detached` is
//! the protection there.

use std::future::Future;

/// Runs `begin` (a pool's `begin` or `begin_with`) in a task of its own, so it completes even
/// when the caller is dropped while waiting; the caller then gets the transaction, or, gone,
/// drops it, which rolls it back as any dropped transaction is.
pub async fn begin_detached<T, F>(begin: F) -> Result<T, sqlx::Error>
where
    T: Send + 'static,
    F: Future<Output = Result<T, sqlx::Error>> + Send + 'static,
{
    match tokio::spawn(begin).await {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // The runtime is shutting down: so is the pool's use.
        Err(_) => Err(sqlx::Error::PoolClosed),
    }
}

/// Whether a connection returning to the pool may be reused: not while it is still inside a
/// transaction (its owner was dropped at a moment sqlx did not cover). It first completes what
/// the connection has queued (SQLite's worker ends a dropped transaction only when it reaches
/// its rollback), then asks sqlx's transaction count, which SQLite's worker raises as soon as
/// `BEGIN` has run. The pool closes a connection refused here, which ends its transaction.
pub async fn released_outside_transaction<C: sqlx::Connection>(conn: &mut C) -> Result<bool, sqlx::Error> {
    conn.ping().await?;
    if conn.is_in_transaction() {
        tracing::warn!("a database connection came back to the pool inside a transaction; it is closed, which rolls the transaction back");
        return Ok(false);
    }
    Ok(true)
}
