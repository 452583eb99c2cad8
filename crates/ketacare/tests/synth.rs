//! `ketacare synth`: the synthetic cohort loads into an empty database on both backends, every
//! patient reads back through the application's own use cases, the cohort has the spread it
//! promises (responders, relapses and censored responders, patients aged 90 and over), cohort
//! analytics run over it, and the research scan pages through every patient. A database that
//! already holds patients is refused.
//!
//! The benchmark at scale (`benches/cohort.rs`) runs here too, ignored by default:
//! `cargo test --release -p ketacare --test synth -- --ignored --nocapture`
//! (`KETACARE_BENCH_PATIENTS` sets the cohort size).

#[path = "../benches/cohort.rs"]
mod cohort_bench;

use chrono::{NaiveDate, TimeZone, Utc};
use ketacare::Config;
use ketacare_app::{App, FixedClock, NewUserInput, Principal};
use ketacare_db::{AuditCtx, AuditFilter, Page};
use ketacare_db_tests::{fresh_postgres, fresh_sqlite, TestDb};
use ketacare_domain::audit::Actor;
use ketacare_domain::cohort::CohortFilter;
use ketacare_domain::deid::{age_group, age_on, OLDEST_GROUP};
use ketacare_domain::ids::PatientId;
use ketacare_domain::order::OrderStatus;
use ketacare_domain::record::{ClinicalRecord, RecordKind};
use ketacare_domain::session::Phase;
use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;

const PATIENTS: u32 = 200;
const SEED: &str = "11";
const END: &str = "2026-12-01";
const BATCH: &str = "64";

fn synth(url: &str, patients: u32, seed: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ketacare"))
        .args(["synth", "--patients", &patients.to_string(), "--seed", seed, "--end", END, "--batch", BATCH, "--database-url", url])
        .env_remove("KETACARE_CONFIG")
        // Not a setting of the server: its configuration refuses unknown KETACARE_* variables.
        .env_remove("KETACARE_BENCH_PATIENTS")
        .output()
        .expect("run ketacare synth")
}

async fn staff(app: &App, username: &str, role: &str) -> Principal {
    let input = NewUserInput {
        username: username.into(),
        display_name: format!("Test {role}"),
        role: role.into(),
        password: "violet lantern harbour 2026".into(),
    };
    let user = app.create_user_as_system(&input).await.expect("create test account");
    app.system_principal(user)
}

fn system_ctx() -> AuditCtx {
    AuditCtx {
        actor: Actor { user_id: None, username: "test".into(), role: None, session_ref: None, client_addr: None },
        at: Utc::now(),
        purpose: "operations",
    }
}

async fn loads_and_reads_back(db: TestDb) {
    let out = synth(&db.url, PATIENTS, SEED);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "synth failed on {}: {stderr}", db.backend());
    assert!(stderr.contains(&format!("{PATIENTS} / {PATIENTS} patients")), "progress line on stderr: {stderr}");
    assert!(stdout.contains(&format!("Loaded {PATIENTS} synthetic patients")), "summary: {stdout}");

    let store = db.store();
    assert_eq!(store.count_patients().await.unwrap(), i64::from(PATIENTS));
    // One audit row per batch says what was loaded (the per-record path was bypassed).
    let batches = PATIENTS.div_ceil(BATCH.parse().unwrap());
    let audit = store
        .search_audit(
            &system_ctx(),
            &AuditFilter { entity_type: Some("SyntheticCohort".into()), page: Page { limit: 500, offset: 0 }, ..Default::default() },
        )
        .await
        .unwrap();
    assert_eq!(audit.len(), usize::try_from(batches).unwrap());
    assert!(audit.iter().all(|e| e.event.detail.as_deref().is_some_and(|d| d.contains("synthetic cohort loaded"))));

    // A second run is refused: the database now holds patients.
    let again = synth(&db.url, 5, SEED);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds 200 patients"), "{}", String::from_utf8_lossy(&again.stderr));

    // Read every patient back through the application, a day after the cohort's end.
    let end = NaiveDate::parse_from_str(END, "%Y-%m-%d").unwrap();
    let now = Utc.from_utc_datetime(&end.succ_opt().unwrap().and_hms_opt(12, 0, 0).unwrap());
    let config = Config { database_url: db.url.clone(), ..Config::default() };
    let app = ketacare::build_app(store.clone(), &config, Arc::new(FixedClock::new(now))).unwrap();
    let prescriber = staff(&app, "reader", "prescriber").await;
    let researcher = staff(&app, "analyst", "researcher").await;

    // The research scan pages through everyone, in bounded pages.
    let ctx = AuditCtx {
        actor: Actor { user_id: None, username: "test".into(), role: None, session_ref: None, client_addr: None },
        at: now,
        purpose: "research",
    };
    let mut ids: Vec<PatientId> = Vec::new();
    let mut scanned_sessions = 0usize;
    let mut after = None;
    loop {
        let page = store.cohort_page(&ctx, &RecordKind::ALL, after, 37).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.patient.patient_id);
        scanned_sessions += page.iter().map(|p| p.sessions.len()).sum::<usize>();
        assert!(page.iter().all(|p| !p.records.is_empty() && p.sessions.len() >= 3));
        ids.extend(page.iter().map(|p| p.patient.patient_id));
    }
    assert_eq!(ids.len(), usize::try_from(PATIENTS).unwrap());
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), ids.len(), "every patient once");

    let (mut responders, mut relapsed, mut censored, mut oldest, mut sessions, mut adverse) = (0u64, 0u32, 0u32, 0u32, 0usize, 0usize);
    let mut mrns = BTreeSet::new();
    for id in &ids {
        let chart = app.chart(&prescriber, *id).await.unwrap();
        mrns.insert(chart.patient.demographics.mrn.as_str().to_owned());
        assert!(chart.latest_weight().is_some() && chart.latest_height().is_some());
        assert!(chart.records.iter().any(|r| matches!(&r.record, ClinicalRecord::Diagnosis(_))));
        let given = app.patient_sessions(&prescriber, *id).await.unwrap();
        assert!((3..=8).contains(&given.len()), "3 to 8 sessions, got {}", given.len());
        assert!(given.iter().all(|s| s.phase == Phase::Discharged && s.signed_at.is_some() && s.baseline.0.is_some()));
        sessions += given.len();
        let first_dose = given.iter().filter_map(|s| s.dose_started_at).min().unwrap();
        let age = age_on(chart.patient.demographics.date_of_birth.date(), first_dose.date_naive());
        assert!((18..=95).contains(&age), "age {age}");
        if age_group(age) == OLDEST_GROUP {
            oldest += 1;
        }
        // Each session's order is double-checked, at a dose of its plan.
        let dosing = app.dosing(&prescriber, *id).await.unwrap();
        let checked: Vec<_> = dosing.orders.iter().filter(|(_, o)| o.status == OrderStatus::Checked).collect();
        assert_eq!(checked.len(), given.len());
        for (_, o) in &checked {
            let (_, plan) = dosing.plans.iter().find(|(v, _)| Some(v.record_id) == o.plan).expect("order of a plan");
            assert!(plan.sessions.iter().any(|s| Some(&s.step) == o.step.as_ref() && s.mg_per_kg == o.mg_per_kg));
            assert!(o.check.is_some() && o.breaches.is_empty());
        }
        assert!(app.titration(&prescriber, *id).await.unwrap().is_some());
        let safety = app.safety(&prescriber, *id).await.unwrap();
        assert_eq!(safety.doses.len(), given.len());
        adverse += safety.adverse_events.len();
        // Outcomes: HAM-A from screening on; response and relapse on its own rule.
        let outcomes = app.outcomes(&prescriber, *id).await.unwrap();
        assert!(outcomes.alerts.is_empty(), "the synthetic cohort raises no safety alerts");
        let hama = outcomes.series.iter().find(|s| s.instrument.key == "hama").expect("HAM-A series");
        assert!(hama.points.len() >= 2);
        let after: Vec<bool> = hama
            .points
            .iter()
            .filter(|p| p.assessment.taken_at > first_dose)
            .map(|p| p.outcome.as_ref().and_then(|o| o.response).unwrap_or(false))
            .collect();
        if let Some(first) = after.iter().position(|r| *r) {
            responders += 1;
            if after[first..].iter().any(|r| !r) {
                relapsed += 1;
            } else {
                censored += 1;
            }
        }
        for key in ["gad7", "cadss", "moaas", "sds", "qlesq_sf", "phq9"] {
            assert!(outcomes.series.iter().any(|s| s.instrument.key == key), "{key} series");
        }
    }
    eprintln!(
        "{}: {PATIENTS} patients, {sessions} sessions, {responders} responders ({relapsed} relapsed, {censored} censored), {oldest} aged 90+, {adverse} adverse events",
        db.backend()
    );
    assert_eq!(mrns.len(), ids.len(), "MRNs are unique");
    let share = responders as f64 / f64::from(PATIENTS);
    assert!((0.3..=0.7).contains(&share), "responders {responders} of {PATIENTS}");
    assert!(relapsed > 0 && censored > 0, "relapses {relapsed}, censored responders {censored}");
    assert!(oldest > 0, "patients aged 90 and over");
    assert!(adverse > 0, "some sessions have an adverse event");
    assert_eq!(scanned_sessions, sessions);

    // The cohort analytics run over the whole cohort (de-identified, for the researcher).
    let cohort = app.cohort_outcomes(&researcher, &CohortFilter::default()).await.unwrap();
    assert_eq!(cohort.report.patients, u64::from(PATIENTS));
    assert_eq!(cohort.report.evaluable, u64::from(PATIENTS));
    let r = &cohort.report;
    eprintln!(
        "{}: cohort analytics: {} evaluable, response {:?}, durability n={} events={}",
        db.backend(),
        r.evaluable,
        r.overall.response.map(|p| (p.k, p.n)),
        r.durability.n,
        r.durability.events
    );
    assert!(r.durability.events > 0 && r.durability.events < r.durability.n);
    assert_eq!(r.overall.response.map(|p| p.k), Some(responders), "the analytics count the same responders");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synthetic_cohort_loads_and_reads_back_on_sqlite() {
    loads_and_reads_back(fresh_sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synthetic_cohort_loads_and_reads_back_on_postgres() {
    let Some(db) = fresh_postgres().await else { return };
    loads_and_reads_back(db).await;
}

/// The same seed gives the same cohort: patient ids, MRNs, names and dates of birth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_gives_the_same_cohort() {
    let mut seen = Vec::new();
    for _ in 0..2 {
        let db = fresh_sqlite().await;
        let out = synth(&db.url, 20, "5");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let ctx = system_ctx();
        let page = db.store().cohort_page(&ctx, &[RecordKind::Assessment], None, 100).await.unwrap();
        let rows: Vec<String> = page
            .iter()
            .map(|p| {
                let d = &p.patient.demographics;
                let totals: Vec<String> = p
                    .records
                    .iter()
                    .filter_map(|r| match &r.record {
                        ClinicalRecord::Assessment(a) => Some(format!("{}:{:?}", a.instrument, a.answers)),
                        _ => None,
                    })
                    .collect();
                format!("{} {} {} {} {}", p.patient.patient_id, d.mrn.as_str(), d.name.display(), d.date_of_birth.date(), totals.join(";"))
            })
            .collect();
        assert_eq!(rows.len(), 20);
        seen.push(rows);
        db.store().close().await;
    }
    assert_eq!(seen[0], seen[1]);
}

/// The benchmark at scale, run as a test (release build recommended).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: minutes at 100,000 patients"]
async fn cohort_benchmark() {
    cohort_bench::run(env!("CARGO_BIN_EXE_ketacare")).await;
}
