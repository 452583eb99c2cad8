//! # Care-team patient list benchmark
//!
//! Under the chart scope `care_team` a nurse's patient list holds her care teams' patients
//! only. This measures one page of that list (50 patients, empty query, as the *Patients* page
//! asks) two ways, on a fresh SQLite file and, when `KETACARE_TEST_POSTGRES_URL` is set, a fresh
//! PostgreSQL database holding `KETACARE_BENCH_PATIENTS` patients (default 20,000; loaded with
//! `ketacare synth`), of whom the nurse's care teams hold `KETACARE_BENCH_TEAM` (default 60):
//!
//! - **in the database**: `Store::search_patients_in_scope` (the care-team and emergency-access
//!   conditions as subqueries, paged by the database), what `App::search_patients` does now;
//! - **read whole**: every patient read through `Store::search_patients` in pages of 500 and
//!   the page cut in memory from those in scope, what it did before.
//!
//! Each is run `KETACARE_BENCH_ROUNDS` times (default 20, after one warm-up); the median and the
//! slowest are reported. Both must return the same page, which the benchmark checks.
//!
//! Run with `cargo bench -p ketacare --bench care_team_list`; see `docs/benchmarks.md`.
#![cfg_attr(test, allow(dead_code, reason = "compiled as a test, the entry point is not the one that runs"))]

use chrono::{TimeZone, Utc};
use ketacare_db::{AuditCtx, CareTeamMember, Page, Store};
use ketacare_db_tests::{fresh_postgres, fresh_sqlite, TestDb};
use ketacare_domain::access::{Role, Username};
use ketacare_domain::audit::Actor;
use ketacare_domain::ids::{PatientId, UserId};
use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

fn env_u32(name: &str, default: u32) -> u32 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Median and maximum of the timings.
fn summary(mut t: Vec<Duration>) -> (f64, f64) {
    t.sort();
    (ms(t[t.len() / 2]), ms(*t.last().expect("rounds")))
}

/// The page as the old code cut it: the whole store read in pages of 500, filtered, then paged.
async fn read_whole(store: &dyn Store, ctx: &AuditCtx, scope: &HashSet<PatientId>, page: Page) -> Vec<PatientId> {
    let mut mine = Vec::new();
    let mut offset = 0;
    loop {
        let batch = store.search_patients(ctx, "", Page { limit: 500, offset }).await.expect("search");
        let n = batch.len();
        mine.extend(batch.into_iter().filter(|v| scope.contains(&v.patient_id)).map(|v| v.patient_id));
        if n < 500 {
            break;
        }
        offset += 500;
    }
    mine.into_iter().skip(page.offset as usize).take(page.limit as usize).collect()
}

async fn measure(db: TestDb, patients: u32, team: u32, rounds: u32, binary: &str) -> (String, f64, f64, f64, f64) {
    let backend = db.backend();
    eprintln!("{backend}: loading {patients} synthetic patients");
    let status = Command::new(binary)
        .args(["synth", "--patients", &patients.to_string(), "--seed", "1", "--end", "2026-12-01", "--database-url", &db.url])
        .env_remove("KETACARE_CONFIG")
        .env_remove("KETACARE_BENCH_PATIENTS")
        .env_remove("KETACARE_BENCH_TEAM")
        .env_remove("KETACARE_BENCH_ROUNDS")
        .status()
        .expect("run ketacare synth");
    assert!(status.success(), "ketacare synth failed on {backend}");
    let store = db.store();
    let now = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).single().expect("time");
    let system = AuditCtx {
        actor: Actor { user_id: None, username: "bench".into(), role: None, session_ref: None, client_addr: None },
        at: now,
        purpose: "operations",
    };
    let nurse = store
        .create_user(
            &system,
            ketacare_db::NewUser {
                id: UserId::from_uuid(uuid::Uuid::new_v4()),
                username: Username::parse("bench.nurse").expect("name"),
                display_name: "Bench Nurse".into(),
                role: Role::Nurse,
                password_hash: "$argon2id$bench".into(),
                created_at: now,
            },
        )
        .await
        .expect("nurse");
    // Every (patients / team)-th patient in name order is on her teams.
    let all = store.search_patients(&system, "", Page { limit: 500, offset: 0 }).await.expect("first page");
    let mut ids: Vec<PatientId> = Vec::new();
    let mut offset = 0;
    loop {
        let batch =
            if offset == 0 { all.clone() } else { store.search_patients(&system, "", Page { limit: 500, offset }).await.expect("page") };
        let n = batch.len();
        ids.extend(batch.into_iter().map(|v| v.patient_id));
        if n < 500 {
            break;
        }
        offset += 500;
    }
    let step = (ids.len() / team.max(1) as usize).max(1);
    let scope: HashSet<PatientId> = ids.iter().step_by(step).take(team as usize).copied().collect();
    for p in &scope {
        let m = CareTeamMember {
            id: uuid::Uuid::new_v4(),
            patient_id: *p,
            user_id: nurse.id,
            added_by: nurse.id,
            added_by_name: "bench.nurse".into(),
            added_at: now,
        };
        store.add_care_team_member(&system, &m).await.expect("member");
    }
    let ctx = AuditCtx {
        actor: Actor {
            user_id: Some(nurse.id),
            username: "bench.nurse".into(),
            role: Some(Role::Nurse),
            session_ref: None,
            client_addr: None,
        },
        at: now,
        purpose: "treatment",
    };
    let page = Page { limit: 50, offset: 0 };
    let scoped = || async {
        store
            .search_patients_in_scope(&ctx, "", nurse.id, now, page)
            .await
            .expect("scoped")
            .into_iter()
            .map(|v| v.patient_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(scoped().await, read_whole(store.as_ref(), &ctx, &scope, page).await, "both ways give the same page");
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        std::hint::black_box(scoped().await);
        a.push(t.elapsed());
        let t = Instant::now();
        std::hint::black_box(read_whole(store.as_ref(), &ctx, &scope, page).await);
        b.push(t.elapsed());
    }
    let (a_med, a_max) = summary(a);
    let (b_med, b_max) = summary(b);
    (backend.to_owned(), a_med, a_max, b_med, b_max)
}

async fn run(binary: &str) {
    let patients = env_u32("KETACARE_BENCH_PATIENTS", 20_000);
    let team = env_u32("KETACARE_BENCH_TEAM", 60);
    let rounds = env_u32("KETACARE_BENCH_ROUNDS", 20).max(1);
    let mut rows = vec![measure(fresh_sqlite().await, patients, team, rounds, binary).await];
    if let Some(pg) = fresh_postgres().await {
        rows.push(measure(pg, patients, team, rounds, binary).await);
    }
    println!("care-team list: {patients} patients, {team} on the nurse's teams, one page of 50, {rounds} rounds");
    println!("| backend | in the database: median / max (ms) | read whole: median / max (ms) | speed-up (median) |");
    println!("|---|---|---|---|");
    for (backend, a_med, a_max, b_med, b_max) in rows {
        println!("| {backend} | {a_med:.1} / {a_max:.1} | {b_med:.1} / {b_max:.1} | {:.0}x |", b_med / a_med.max(0.001));
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then say how to run it.
    if !std::env::args().any(|a| a == "--bench") {
        println!("care_team_list: a benchmark; run it with `cargo bench -p ketacare --bench care_team_list` (see docs/benchmarks.md)");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(run(env!("CARGO_BIN_EXE_ketacare")));
}
