//! Encryption at rest of the SQLite database (SQLCipher, `database_key`): patient data written
//! through the application is nowhere in the database files in the clear (a plain database of
//! the same data is searched the same way, as the negative control); the database does not
//! open without its key or with another one, and says which; the right key reads it back; and
//! `ketacare backup` and `restore` keep it encrypted.

use chrono::{TimeZone, Utc};
use ketacare::{build_app, open_store_keyed, Config, DatabaseKey};
use ketacare_app::{FixedClock, NewUserInput};
use ketacare_db::Page;
use ketacare_domain::patient::DemographicsInput;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

const PASSWORD: &str = "violet lantern harbour 2026";
/// A family name found nowhere else, so a byte search for it finds only patient data.
const FAMILY: &str = "Quillfeatherstone";

/// Writes `n` patients (family names `Quillfeatherstone0…`) through the application.
async fn write_patients(url: &str, key: Option<&DatabaseKey>, n: usize) {
    let store = open_store_keyed(url, key).await.expect("open");
    store.migrate().await.expect("migrate");
    let config = Config { database_url: url.to_owned(), ..Config::default() };
    let clock = Arc::new(FixedClock::new(Utc.with_ymd_and_hms(2026, 11, 26, 9, 0, 0).unwrap()));
    let app = build_app(store, &config, clock).expect("app");
    let input =
        NewUserInput { username: "nils.nurse".into(), display_name: "Nils Nurse".into(), role: "nurse".into(), password: PASSWORD.into() };
    let nurse = app.system_principal(app.create_user_as_system(&input).await.expect("nurse"));
    for i in 0..n {
        let d = DemographicsInput {
            family_name: format!("{FAMILY}{i}"),
            given_name: "Ottoline".into(),
            date_of_birth: "1981-04-02".into(),
            sex: "female".into(),
            phone: "+44 20 7946 0999".into(),
            ..Default::default()
        };
        app.register_patient(&nurse, &d).await.expect("register");
    }
    // Move the log into the database file while the store is open: the checkpoint SQLite makes
    // as the last connection closes runs on the driver's own thread and can still be under way
    // after `close` returns, so a byte search could read the file before it and the log after
    // it was removed, and find nothing (a CI run once found 0 of 20 in the plain database).
    app.store().scrub_freed_space().await.expect("checkpoint");
    app.store().close().await;
}

/// How many times `needle` occurs in the database file and its WAL and shared-memory files.
fn occurrences(db: &Path, needle: &str) -> usize {
    let mut n = 0;
    for suffix in ["", "-wal", "-shm"] {
        let p = db.with_file_name(format!("{}{suffix}", db.file_name().unwrap().to_string_lossy()));
        if let Ok(bytes) = std::fs::read(&p) {
            n += bytes.windows(needle.len()).filter(|w| *w == needle.as_bytes()).count();
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_database_holds_no_patient_data_in_the_clear_and_opens_only_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = DatabaseKey::from_bytes([0x5a; 32]);

    // Negative control: the same writes to a plain database leave the names readable.
    let plain = dir.path().join("plain.db");
    write_patients(&format!("sqlite://{}", plain.display()), None, 20).await;
    // Each of the 20 rows once at least, but a name may straddle a page boundary, and freed
    // copies are zeroed (`secure_delete`): most of them, not every one, is found byte for byte.
    let found = occurrences(&plain, FAMILY);
    assert!(found >= 10, "the plain database holds the names in the clear (found {found} of 20)");
    assert_eq!(&std::fs::read(&plain).unwrap()[..15], b"SQLite format 3");

    let enc = dir.path().join("enc.db");
    let url = format!("sqlite://{}", enc.display());
    write_patients(&url, Some(&key), 20).await;
    assert_eq!(occurrences(&enc, FAMILY), 0, "no patient name in the encrypted files");
    assert_eq!(occurrences(&enc, "Ottoline"), 0);
    assert_eq!(occurrences(&enc, "7946 0999"), 0, "no phone number either");
    assert_ne!(&std::fs::read(&enc).unwrap()[..15], b"SQLite format 3", "not even the SQLite header");

    let without = open_store_keyed(&url, None).await.err().expect("no key, no database");
    assert!(format!("{without:#}").contains("it is encrypted (set database_key or database_key_file)"), "{without:#}");
    let wrong = open_store_keyed(&url, Some(&DatabaseKey::from_bytes([0x5b; 32]))).await.err().expect("wrong key");
    assert!(format!("{wrong:#}").contains("the key is wrong"), "{wrong:#}");
    let on_plain = open_store_keyed(&format!("sqlite://{}", plain.display()), Some(&key)).await.err().expect("a key for a plain file");
    assert!(format!("{on_plain:#}").contains("the file is not encrypted"), "{on_plain:#}");

    let store = open_store_keyed(&url, Some(&key)).await.expect("the right key opens it");
    let ctx = ketacare_db::AuditCtx {
        actor: ketacare_domain::audit::Actor { user_id: None, username: "test".into(), role: None, session_ref: None, client_addr: None },
        at: Utc::now(),
        purpose: "test",
    };
    let found = store.search_patients(&ctx, FAMILY, Page { limit: 100, offset: 0 }).await.expect("search");
    assert_eq!(found.len(), 20, "every patient reads back");
    store.close().await;
}

#[test]
fn backup_and_restore_keep_an_encrypted_database_encrypted() {
    let dir = tempfile::tempdir().unwrap();
    let key = DatabaseKey::from_bytes([0x2c; 32]);
    let db = dir.path().join("clinic.db");
    let url = format!("sqlite://{}", db.display());
    tokio::runtime::Runtime::new().unwrap().block_on(write_patients(&url, Some(&key), 5));
    let run = |url: &str, key: Option<&str>, args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ketacare"));
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("KETACARE_")) {
            c.env_remove(k);
        }
        c.env("KETACARE_DATABASE_URL", url).args(args);
        if let Some(k) = key {
            c.env("KETACARE_DATABASE_KEY", k);
        }
        c.output().expect("run ketacare")
    };
    let backup = dir.path().join("backup.db");
    let out = run(&url, Some(key.hex()), &["backup", "--to", backup.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("5 patients"), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(occurrences(&backup, FAMILY), 0, "the backup is encrypted too");

    let restored = format!("sqlite://{}", dir.path().join("restored.db").display());
    let refused = run(&restored, None, &["restore", "--from", backup.to_str().unwrap()]);
    assert!(!refused.status.success(), "restoring without the key fails");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("encrypted with another key than database_key (or none was set)"));
    let ok = run(&restored, Some(key.hex()), &["restore", "--from", backup.to_str().unwrap()]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("5 patients; audit trail intact"), "{}", String::from_utf8_lossy(&ok.stdout));
    assert_eq!(occurrences(&dir.path().join("restored.db"), FAMILY), 0, "the restored database is encrypted");
    let key_text = run(&url, None, &["database", "new-key"]);
    let k = String::from_utf8_lossy(&key_text.stdout).trim().to_owned();
    assert!(DatabaseKey::parse(&k).is_ok() && k != key.hex(), "new-key prints a fresh 64-hex key: {k}");
}
