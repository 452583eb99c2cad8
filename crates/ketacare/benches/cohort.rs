//! # Cohort benchmark
//!
//! Loads `KETACARE_BENCH_PATIENTS` synthetic patients (default 100,000) with `ketacare synth`
//! into a fresh SQLite file and, when `KETACARE_TEST_POSTGRES_URL` is set, a fresh PostgreSQL
//! database, then measures on each:
//!
//! - the load: wall time and patients per second (the `ketacare synth` process, multi-row
//!   INSERTs, 1,000 patients per transaction);
//! - a full cohort scan through `ResearchStore::cohort_page` in pages of 500 patients with the
//!   record kinds the cohort analytics read: wall time, patients per second, records and
//!   sessions read, and the peak resident memory of the scan;
//! - `App::cohort_outcomes` (the de-identified cohort analytics over every patient): wall time
//!   and peak resident memory;
//! - the database's size on disk.
//!
//! Peak memory is the process's high-water mark (`VmHWM`), reset before each phase through
//! `/proc/self/clear_refs` (Linux); elsewhere it is not reported.
//!
//! Run with `cargo bench -p ketacare --bench cohort`; see `docs/benchmarks.md`.
#![cfg_attr(test, allow(dead_code, reason = "compiled as a test, the entry point is not the one that runs"))]

use chrono::{TimeZone, Utc};
use ketacare::Config;
use ketacare_app::{FixedClock, NewUserInput};
use ketacare_db::AuditCtx;
use ketacare_db_tests::{fresh_postgres, fresh_sqlite, TestDb};
use ketacare_domain::audit::Actor;
use ketacare_domain::cohort::CohortFilter;
use ketacare_domain::record::RecordKind;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

/// Default cohort size.
const DEFAULT_PATIENTS: u32 = 100_000;
/// Patients per page of the scan (as the cohort analytics read them).
const PAGE: u32 = 500;
/// Last day of the synthetic history, fixed so every run loads the same cohort.
const END: &str = "2026-12-01";
/// Seed of the synthetic cohort.
const SEED: &str = "1";

/// What one backend measured.
struct Row {
    backend: &'static str,
    patients: u32,
    load_s: f64,
    scan_s: f64,
    scanned: usize,
    records: usize,
    sessions: usize,
    scan_rss_mib: Option<f64>,
    analytics_s: f64,
    analytics_rss_mib: Option<f64>,
    evaluable: u64,
    size_mib: Option<f64>,
}

/// Resets the process's peak resident memory (Linux).
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The process's peak resident memory since the last reset, MiB (Linux).
fn peak_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

async fn size_mib(db: &TestDb) -> Option<f64> {
    use sqlx::Connection;
    if db.backend() == "sqlite" {
        let path = db.url.strip_prefix("sqlite://")?;
        let bytes: u64 = ["", "-wal"].iter().filter_map(|s| std::fs::metadata(format!("{path}{s}")).ok()).map(|m| m.len()).sum();
        Some(bytes as f64 / 1_048_576.0)
    } else {
        let mut c = sqlx::PgConnection::connect(&db.url).await.ok()?;
        let bytes: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())").fetch_one(&mut c).await.ok()?;
        Some(bytes as f64 / 1_048_576.0)
    }
}

async fn measure(db: TestDb, patients: u32, binary: &str) -> Row {
    let backend = db.backend();
    eprintln!("{backend}: loading {patients} synthetic patients");
    let t = Instant::now();
    let status = Command::new(binary)
        .args(["synth", "--patients", &patients.to_string(), "--seed", SEED, "--end", END, "--database-url", &db.url])
        .env_remove("KETACARE_CONFIG")
        // Not a setting of the server: its configuration refuses unknown KETACARE_* variables.
        .env_remove("KETACARE_BENCH_PATIENTS")
        .status()
        .expect("run ketacare synth");
    assert!(status.success(), "ketacare synth failed on {backend}");
    let load_s = t.elapsed().as_secs_f64();
    let store = db.store();
    assert_eq!(store.count_patients().await.expect("count"), i64::from(patients));

    // The scan: every patient, page by page, as the cohort analytics read them.
    let ctx = AuditCtx {
        actor: Actor { user_id: None, username: "bench".into(), role: None, session_ref: None, client_addr: None },
        at: Utc::now(),
        purpose: "research",
    };
    let kinds = [
        RecordKind::Diagnosis,
        RecordKind::Observation,
        RecordKind::Assessment,
        RecordKind::TreatmentPlan,
        RecordKind::DoseOrder,
        RecordKind::Encounter,
    ];
    let tracked = reset_peak();
    let t = Instant::now();
    let (mut scanned, mut records, mut sessions, mut after) = (0usize, 0usize, 0usize, None);
    loop {
        let page = store.cohort_page(&ctx, &kinds, after, PAGE).await.expect("cohort page");
        let Some(last) = page.last() else { break };
        after = Some(last.patient.patient_id);
        scanned += page.len();
        records += page.iter().map(|p| p.records.len()).sum::<usize>();
        sessions += page.iter().map(|p| p.sessions.len()).sum::<usize>();
        if page.len() < PAGE as usize {
            break;
        }
    }
    let scan_s = t.elapsed().as_secs_f64();
    let scan_rss_mib = if tracked { peak_mib() } else { None };
    assert_eq!(scanned, patients as usize, "the scan read every patient");

    // The cohort analytics over everyone.
    let end = chrono::NaiveDate::parse_from_str(END, "%Y-%m-%d").expect("end date");
    let now = Utc.from_utc_datetime(&end.and_hms_opt(23, 59, 59).expect("time"));
    let config = Config { database_url: db.url.clone(), ..Config::default() };
    let app = ketacare::build_app(store.clone(), &config, Arc::new(FixedClock::new(now))).expect("app");
    let input = NewUserInput {
        username: "bench-researcher".into(),
        display_name: "Benchmark researcher".into(),
        role: "researcher".into(),
        password: "violet lantern harbour 2026".into(),
    };
    let researcher = app.system_principal(app.create_user_as_system(&input).await.expect("researcher"));
    let tracked = reset_peak();
    let t = Instant::now();
    let outcomes = app.cohort_outcomes(&researcher, &CohortFilter::default()).await.expect("cohort outcomes");
    let analytics_s = t.elapsed().as_secs_f64();
    let analytics_rss_mib = if tracked { peak_mib() } else { None };
    let size_mib = size_mib(&db).await;
    store.close().await;
    Row {
        backend,
        patients,
        load_s,
        scan_s,
        scanned,
        records,
        sessions,
        scan_rss_mib,
        analytics_s,
        analytics_rss_mib,
        evaluable: outcomes.report.evaluable,
        size_mib,
    }
}

fn mib(x: Option<f64>) -> String {
    x.map(|v| format!("{v:.0}")).unwrap_or_else(|| "-".into())
}

/// Runs the benchmark with the `ketacare` binary at `binary`.
pub async fn run(binary: &str) {
    let patients = match std::env::var("KETACARE_BENCH_PATIENTS") {
        Ok(v) => v
            .trim()
            .replace(['_', ','], "")
            .parse::<u32>()
            .unwrap_or_else(|_| panic!("KETACARE_BENCH_PATIENTS must be a whole number, got {v}")),
        Err(_) => DEFAULT_PATIENTS,
    };
    let mut rows = vec![measure(fresh_sqlite().await, patients, binary).await];
    match fresh_postgres().await {
        Some(db) => rows.push(measure(db, patients, binary).await),
        None => eprintln!("PostgreSQL not measured: set KETACARE_TEST_POSTGRES_URL"),
    }
    println!();
    println!(
        "| backend | patients | load s | load patients/s | scan s | scan patients/s | records read | sessions read | scan peak RSS MiB | analytics s | analytics peak RSS MiB | evaluable | database MiB |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {:.1} | {:.0} | {:.1} | {:.0} | {} | {} | {} | {:.1} | {} | {} | {} |",
            r.backend,
            r.patients,
            r.load_s,
            f64::from(r.patients) / r.load_s.max(0.001),
            r.scan_s,
            r.scanned as f64 / r.scan_s.max(0.001),
            r.records,
            r.sessions,
            mib(r.scan_rss_mib),
            r.analytics_s,
            mib(r.analytics_rss_mib),
            r.evaluable,
            mib(r.size_mib)
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then say how to run it.
    if !std::env::args().any(|a| a == "--bench") {
        println!("cohort: a load benchmark; run it with `cargo bench -p ketacare --bench cohort` (see docs/benchmarks.md)");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(run(env!("CARGO_BIN_EXE_ketacare")));
}
