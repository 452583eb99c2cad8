//! The audit trail's hash chain on both backends: sealing links every entry in order, a
//! second server sealing at the same time never forks or skips the chain, and changes made
//! behind the application's back (with the append-only triggers switched off, as someone with
//! the database's owner rights could) are found at their position.

use ketacare_db::Store;
use ketacare_db_tests::fixtures::{read_event, t0};
use ketacare_db_tests::{both_backends, TestDb};
use ketacare_domain::audit_chain::{link, ChainReport, ChainVerifier, Finding, GENESIS};
use std::sync::Arc;

both_backends!(
    sealing_links_every_entry_in_order_and_is_idempotent,
    concurrent_writers_and_two_sealers_keep_one_unbroken_chain,
    altered_deleted_and_inserted_entries_are_found_at_their_position,
    the_chain_tables_are_append_only,
);

async fn write(s: &Arc<dyn Store>, n: usize) {
    for i in 0..n {
        s.append_audit(&read_event(i)).await.unwrap();
    }
}

async fn verify(s: &Arc<dyn Store>) -> ChainReport {
    let head = s.audit_chain_head().await.unwrap().map_or(0, |h| h.0);
    let mut v = ChainVerifier::new(head, []);
    // From the very start: an entry slipped in at position 0 or below must be seen too.
    let mut after = i64::MIN;
    loop {
        // Small pages, so the paging itself is exercised.
        let page = s.audit_chain_page(after, 7).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        for i in &page {
            v.feed(i);
        }
    }
    v.finish(&[])
}

/// Runs raw SQL with the append-only triggers of `audit_log` off.
async fn tamper(db: &TestDb, sqlite: &str, postgres: &str) {
    use sqlx::Connection;
    if db.backend() == "sqlite" {
        let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        for sql in ["DROP TRIGGER IF EXISTS audit_log_no_update", "DROP TRIGGER IF EXISTS audit_log_no_delete", sqlite] {
            sqlx::query(sql).execute(&mut c).await.unwrap();
        }
    } else {
        let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
        for sql in [
            "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only",
            postgres,
            "ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only",
        ] {
            sqlx::query(sql).execute(&mut c).await.unwrap();
        }
    }
}

async fn sealing_links_every_entry_in_order_and_is_idempotent(db: &TestDb) {
    let s = db.store();
    write(&s, 10).await;
    let o = s.seal_audit(t0(), 4).await.unwrap();
    assert_eq!(o.sealed, 4, "a seal links at most its limit");
    let o = s.seal_audit(t0(), 100).await.unwrap();
    assert_eq!(o.sealed, 6);
    assert_eq!(
        s.seal_audit(t0(), 100).await.unwrap(),
        ketacare_db::chain::SealOutcome { sealed: 0, head: o.head.clone() },
        "nothing new: nothing sealed"
    );
    // Each link is the domain's link of the entry's stored columns after the previous one.
    let items = s.audit_chain_page(0, 100).await.unwrap();
    assert_eq!(items.len(), 10);
    let mut prev = GENESIS.to_owned();
    for i in &items {
        let expected = link(&prev, i.seq, i.columns.as_ref().unwrap());
        assert_eq!(i.link.as_ref(), Some(&expected), "link of #{}", i.seq);
        prev = expected;
    }
    assert_eq!(o.head.unwrap().1, prev);
    write(&s, 2).await;
    let r = verify(&s).await;
    assert!(r.intact(), "{r:?}");
    assert_eq!((r.checked, r.unsealed), (10, 2), "new entries wait for the next seal");
}

async fn concurrent_writers_and_two_sealers_keep_one_unbroken_chain(db: &TestDb) {
    let s = db.store();
    // A second store on the same database: another server.
    let other: Arc<dyn Store> = if db.backend() == "sqlite" {
        Arc::new(ketacare_db_sqlite::SqliteStore::open(&db.url).await.unwrap())
    } else {
        Arc::new(ketacare_db_postgres::PgStore::open(&db.url).await.unwrap())
    };
    let mut tasks = Vec::new();
    for w in 0..4u32 {
        let st = if w.is_multiple_of(2) { s.clone() } else { other.clone() };
        tasks.push(tokio::spawn(async move { write(&st, 60).await }));
    }
    for st in [s.clone(), other.clone()] {
        tasks.push(tokio::spawn(async move {
            for _ in 0..30 {
                st.seal_audit(t0(), 17).await.unwrap();
                tokio::task::yield_now().await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    while s.seal_audit(t0(), 1000).await.unwrap().sealed > 0 {}
    let r = verify(&s).await;
    assert!(r.intact(), "{:?}", r.findings);
    assert_eq!((r.checked, r.unsealed), (240, 0));
    other.close().await;
}

async fn altered_deleted_and_inserted_entries_are_found_at_their_position(db: &TestDb) {
    let s = db.store();
    write(&s, 20).await;
    s.seal_audit(t0(), 1000).await.unwrap();
    let seqs: Vec<i64> = s.audit_chain_page(0, 100).await.unwrap().iter().map(|i| i.seq).collect();
    let (a, d, last) = (seqs[4], seqs[11], seqs[19]);

    tamper(
        db,
        &format!("UPDATE audit_log SET username = 'someone.else' WHERE seq = {a}"),
        &format!("UPDATE audit_log SET username = 'someone.else' WHERE seq = {a}"),
    )
    .await;
    tamper(db, &format!("DELETE FROM audit_log WHERE seq = {d}"), &format!("DELETE FROM audit_log WHERE seq = {d}")).await;
    let forged = last - 3;
    let cols =
        "recorded_at, user_id, username, role, session_ref, client_addr, action, outcome, entity_type, entity_id, patient_id, detail";
    let vals = "'2026-11-26T09:00:00.000000Z', NULL, 'ghost', NULL, NULL, NULL, 'R', 'success', 'Patient', 'p-x', NULL, NULL";
    let insert = |seq: i64| {
        (
            format!("INSERT INTO audit_log (seq, {cols}) VALUES ({seq}, {vals})"),
            format!("INSERT INTO audit_log (seq, {cols}) OVERRIDING SYSTEM VALUE VALUES ({seq}, {vals})"),
        )
    };
    // An entry replaced by another at the same position.
    tamper(db, &format!("DELETE FROM audit_log WHERE seq = {forged}"), &format!("DELETE FROM audit_log WHERE seq = {forged}")).await;
    let (a_sql, p_sql) = insert(forged);
    tamper(db, &a_sql, &p_sql).await;
    // An entry slipped in below the sealed head, where there was none.
    let (a_sql, p_sql) = insert(0);
    tamper(db, &a_sql, &p_sql).await;
    let r = verify(&s).await;
    assert_eq!(
        r.findings,
        vec![Finding::Inserted { seq: 0 }, Finding::Altered { seq: a }, Finding::Deleted { seq: d }, Finding::Altered { seq: forged }],
        "each change at its position"
    );
    // A position above the head is merely not sealed yet.
    let (a_sql, p_sql) = insert(last + 1000);
    tamper(db, &a_sql, &p_sql).await;
    assert_eq!(verify(&s).await.unsealed, 1);
}

async fn the_chain_tables_are_append_only(db: &TestDb) {
    use sqlx::Connection;
    let s = db.store();
    write(&s, 3).await;
    s.seal_audit(t0(), 10).await.unwrap();
    for sql in
        ["UPDATE audit_chain SET link = 'x'", "DELETE FROM audit_chain", "UPDATE audit_log SET username = 'x'", "DELETE FROM audit_log"]
    {
        let res = if db.backend() == "sqlite" {
            let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::query(sql).execute(&mut c).await.map(|_| ())
        } else {
            let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query(sql).execute(&mut c).await.map(|_| ())
        };
        assert!(res.is_err(), "{sql} is refused");
    }
    assert!(verify(&s).await.intact());
}
