//! A write abandoned half-way (a browser closed on a live board, a client that hangs up, a
//! timeout) leaves no transaction open behind it, on both backends. An abandoned `BEGIN` that
//! the database carried out but the store never saw would keep its connection inside a
//! transaction: on SQLite it holds the write lock, so every later write waits and fails; on
//! PostgreSQL the next statements on that connection run inside it, uncommitted until some
//! later transaction's `COMMIT` takes them along.

use ketacare_db_tests::fixtures::read_event;
use ketacare_db_tests::{both_backends, TestDb};
use sqlx::Connection;
use std::time::Duration;

both_backends!(a_write_abandoned_at_any_moment_leaves_no_transaction_open);

/// Abandoned writes, cut off after 0 to 600 µs.
const ABANDONED: usize = 1500;

async fn a_write_abandoned_at_any_moment_leaves_no_transaction_open(db: &TestDb) {
    let s = db.store();
    // On PostgreSQL, a second look from outside the pool after each abandoned write (the
    // next write would otherwise take over, and hide, a transaction left open).
    let mut watch = match db.backend() {
        "postgres" => Some(sqlx::PgConnection::connect(&db.url).await.unwrap()),
        _ => None,
    };
    let mut finished = 0;
    for i in 0..ABANDONED {
        // Dropping the future at its next await after the deadline, as a dropped request does.
        let cut = Duration::from_micros((i as u64 * 7919) % 600);
        if tokio::time::timeout(cut, s.append_audit(&read_event(i))).await.is_ok() {
            finished += 1;
        }
        if let Some(c) = watch.as_mut() {
            let open = left_in_transaction(c).await;
            assert_eq!(open, 0, "after abandoned write {i}: connections left inside a transaction nobody will end");
        }
    }
    assert!(finished < ABANDONED, "some writes must be cut off for the test to mean anything ({finished} of {ABANDONED} finished)");

    // Later writes go through at once, on every pooled connection: none waits on a lock left
    // behind, none finds itself inside a transaction it did not begin.
    let writes: Vec<_> = (0..32)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { tokio::time::timeout(Duration::from_secs(5), s.append_audit(&read_event(ABANDONED + i))).await })
        })
        .collect();
    for w in writes {
        let r = w.await.expect("the write task");
        let r = r.expect("a write after abandoned ones waited more than 5 s: a transaction was left open holding the lock");
        r.expect("a write after abandoned ones failed");
    }
}

/// Connections of the pool inside a transaction (the state PostgreSQL shows as "idle in
/// transaction"), once a dropped transaction's rollback has had a moment to be sent.
async fn left_in_transaction(c: &mut sqlx::PgConnection) -> i64 {
    let mut open = -1;
    for _ in 0..100 {
        open = sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'",
        )
        .fetch_one(&mut *c)
        .await
        .unwrap();
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    open
}
