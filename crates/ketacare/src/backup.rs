//! `ketacare backup` and `ketacare restore`: an online, consistent copy of the whole database,
//! taken while the server runs, and its restoration into an empty database.
//!
//! - SQLite: `VACUUM INTO` writes a transactionally consistent snapshot as one compact database
//!   file while writers carry on (WAL readers never block them). The copy is checked with
//!   `PRAGMA integrity_check` before it is reported done. Restoring copies it to the configured
//!   path, which must not exist yet, and opens it as the server would (durability settings,
//!   pending migrations).
//! - PostgreSQL: `pg_dump --format=custom` (one repeatable-read snapshot) and `pg_restore
//!   --exit-on-error --single-transaction` into a database with no Ketacare tables, so a failed
//!   restore leaves nothing behind. The PostgreSQL client programs must be installed.
//!
//! A backup file holds patient data: it is created readable by its owner only. Restoring
//! finishes by verifying the audit trail of the copy (its hash chain), so a restored tampered
//! trail says so.

use anyhow::{bail, ensure, Context};
use ketacare::{build_app, redact_url, Config};
use ketacare_app::SystemClock;
use ketacare_db::__sqlx as sqlx;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

/// Writes an online, consistent backup of the configured database to `to`.
pub async fn backup(config: &Config, to: &Path) -> anyhow::Result<String> {
    ensure!(!to.exists(), "--to {} already exists; give a new file name (a backup never overwrites)", to.display());
    // Empty and readable by its owner only; both VACUUM INTO and pg_dump write into it.
    private_file(to).with_context(|| format!("creating {}", to.display()))?;
    if let Some(path) = sqlite_path(&config.database_url) {
        ensure!(Path::new(path).exists(), "the database {path} does not exist");
        use sqlx::Connection;
        let key = config.database_key()?;
        let mut c = sqlx::SqliteConnection::connect_with(&ketacare_db_sqlite::connect_options(&config.database_url, key.as_ref())?)
            .await
            .with_context(|| format!("opening {path}"))?;
        let target = to.to_str().context("--to must be a UTF-8 path")?;
        sqlx::query("VACUUM INTO ?")
            .bind(target)
            .execute(&mut c)
            .await
            .with_context(|| format!("writing the backup to {}", to.display()))?;
        c.close().await.ok();
        let url = format!("sqlite://{target}");
        // An encrypted database's VACUUM INTO copy is encrypted with the same key.
        let mut b = sqlx::SqliteConnection::connect_with(&ketacare_db_sqlite::connect_options(&url, key.as_ref())?).await?;
        let ok: String = sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&mut b).await?;
        b.close().await.ok();
        if ok != "ok" {
            let _ = std::fs::remove_file(to);
            bail!("the backup failed its integrity check ({ok}); it was removed");
        }
        let summary = summarise_sqlite(&url, key.as_ref()).await?;
        Ok(format!("Backup of {path} written to {} ({} bytes): {summary}", to.display(), std::fs::metadata(to)?.len()))
    } else {
        let (url, password) = split_password(&config.database_url);
        let mut cmd = Command::new("pg_dump");
        cmd.args(["--format=custom", "--no-owner", "--no-privileges", "--file"]).arg(to).arg(&url);
        if let Some(p) = password {
            // Never on the command line, where other local users could read it.
            cmd.env("PGPASSWORD", p);
        }
        let status = cmd.status().context("running pg_dump (install the PostgreSQL client programs)")?;
        if !status.success() {
            let _ = std::fs::remove_file(to);
            bail!("pg_dump failed for {} ({status})", redact_url(&config.database_url));
        }
        Ok(format!(
            "Backup of {} written to {} ({} bytes, pg_dump custom format)",
            redact_url(&config.database_url),
            to.display(),
            std::fs::metadata(to)?.len()
        ))
    }
}

/// Restores the backup `from` into the configured database, which must be empty.
pub async fn restore(config: &Config, from: &Path) -> anyhow::Result<String> {
    ensure!(from.is_file(), "--from {} is not a file", from.display());
    if let Some(path) = sqlite_path(&config.database_url) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let f = format!("{path}{suffix}");
            ensure!(
                !Path::new(&f).exists(),
                "{f} already exists; restore into a new path (set --database-url to a file that does not exist, with no -wal or -shm beside it)"
            );
        }
        let from_url = format!("sqlite://{}", from.to_str().context("--from must be a UTF-8 path")?);
        {
            use sqlx::Connection;
            let key = config.database_key()?;
            let mut b = sqlx::SqliteConnection::connect_with(&ketacare_db_sqlite::connect_options(&from_url, key.as_ref())?)
                .await
                .context("opening the backup")?;
            let ok: String = sqlx::query_scalar("PRAGMA integrity_check")
                .fetch_one(&mut b)
                .await
                .context("the backup is not a SQLite database, or it is encrypted with another key than database_key (or none was set)")?;
            ensure!(ok == "ok", "the backup fails its integrity check ({ok}); nothing was restored");
            b.close().await.ok();
        }
        if let Some(dir) = Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        // Copied beside the target, flushed to disk, then moved into place: a failed copy
        // never leaves a truncated database where the server would open it.
        let partial = format!("{path}.restoring");
        let copied = (|| -> std::io::Result<()> {
            private_file(Path::new(&partial))?;
            let mut src = std::fs::File::open(from)?;
            let mut dst = std::fs::OpenOptions::new().write(true).open(&partial)?;
            std::io::copy(&mut src, &mut dst)?;
            dst.sync_all()?;
            ensure_absent_then_rename(&partial, path)
        })();
        if let Err(e) = copied {
            let _ = std::fs::remove_file(&partial);
            return Err(e).with_context(|| format!("copying the backup to {path}; nothing was restored"));
        }
    } else {
        {
            // Opened as the server opens it: the same TLS settings and their checks.
            let target = ketacare_db_postgres::PgStore::open(&config.database_url)
                .await
                .with_context(|| format!("connecting to the target database {}", redact_url(&config.database_url)))?;
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'")
                .fetch_one(target.pool())
                .await?;
            ketacare_db::Store::close(&target).await;
            ensure!(n == 0, "the target database already has {n} tables; restore into an empty database");
        }
        let (url, password) = split_password(&config.database_url);
        let mut cmd = Command::new("pg_restore");
        cmd.args(["--exit-on-error", "--single-transaction", "--no-owner", "--no-privileges", "--dbname"]).arg(&url).arg(from);
        if let Some(p) = password {
            cmd.env("PGPASSWORD", p);
        }
        let status = cmd.status().context("running pg_restore (install the PostgreSQL client programs)")?;
        ensure!(status.success(), "pg_restore failed ({status}); the single transaction left the target database empty");
    }
    // Open it as the server would: durability settings, pending migrations, the audit chain.
    let store = config.open_store().await?;
    store.migrate().await.context("applying pending migrations to the restored database")?;
    let patients = store.count_patients().await?;
    let app = build_app(store, config, Arc::new(SystemClock))?;
    let report = app.verify_audit(None).await?;
    app.store().close().await;
    ensure!(
        report.intact(),
        "restored, but the audit trail of the backup does not verify: {}",
        report.findings.iter().map(|f| f.describe()).collect::<Vec<_>>().join("; ")
    );
    Ok(format!(
        "Restored {} into {}: {patients} patients; audit trail intact ({} entries chained, {} not yet sealed)",
        from.display(),
        redact_url(&config.database_url),
        report.checked,
        report.unsealed
    ))
}

fn sqlite_path(url: &str) -> Option<&str> {
    url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).map(|p| p.split('?').next().unwrap_or(p))
}

async fn summarise_sqlite(url: &str, key: Option<&ketacare::DatabaseKey>) -> anyhow::Result<String> {
    use sqlx::Connection;
    let mut c = sqlx::SqliteConnection::connect_with(&ketacare_db_sqlite::connect_options(url, key)?).await?;
    let mut parts = Vec::new();
    for t in ["patients", "record_versions", "audit_log"] {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {t}")).fetch_one(&mut c).await?;
        parts.push(format!("{n} {}", t.replace('_', " ")));
    }
    c.close().await.ok();
    Ok(parts.join(", "))
}

/// Creates `path` empty, readable and writable by its owner only; fails if it exists.
fn private_file(path: &Path) -> std::io::Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path).map(|_| ())
}

/// Moves `from` to `to` unless `to` has appeared meanwhile (a hard link never overwrites).
fn ensure_absent_then_rename(from: &str, to: &str) -> std::io::Result<()> {
    std::fs::hard_link(from, to)?;
    std::fs::remove_file(from)
}

/// The URL without its password, and the password as the server knows it: a URL carries
/// reserved characters percent-encoded (`p%40ss` for `p@ss`), which sqlx decodes, so the
/// password given to `pg_dump` and `pg_restore` is decoded the same way.
fn split_password(url: &str) -> (String, Option<String>) {
    if let (Some(s), Some(at)) = (url.find("://"), url.rfind('@')) {
        if at > s {
            let creds = &url[s + 3..at];
            if let Some((user, pass)) = creds.split_once(':') {
                let pass = percent_encoding::percent_decode_str(pass).decode_utf8_lossy().into_owned();
                return (format!("{}{}{}", &url[..s + 3], user, &url[at..]), Some(pass));
            }
        }
    }
    (url.to_owned(), None)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_password_leaves_the_url() {
        assert_eq!(
            super::split_password("postgres://kc:s3cr:et@db.local:5432/ketacare"),
            ("postgres://kc@db.local:5432/ketacare".to_owned(), Some("s3cr:et".to_owned()))
        );
        assert_eq!(super::split_password("postgres://kc@db/k"), ("postgres://kc@db/k".to_owned(), None));
        assert_eq!(
            super::split_password("postgres://kc:p%40ss%2Fw%3Ard@db/k"),
            ("postgres://kc@db/k".to_owned(), Some("p@ss/w:rd".to_owned())),
            "a percent-encoded password is decoded, as sqlx decodes it"
        );
    }
}
