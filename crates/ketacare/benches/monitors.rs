//! # Bedside-monitor load benchmark
//!
//! Starts a real Ketacare server (HTTP, the MLLP listener and the 1 Hz alarm tick, exactly as
//! `ketacare serve` wires them) on a fresh database, seeds one treatment session per simulated
//! device, each taken through the workflow to Monitoring as `ketacare_demo::room::seed_room`
//! does, gives each `BENCH_HISTORY_MINUTES` (default 30) of 1 Hz monitoring history (the board
//! reads the last 30 minutes of every chair), and drives at a fixed offered load:
//!
//! - `BENCH_MONITORS` bedside monitors, each on its own TCP connection, sending one HL7 v2
//!   ORU^R01 (IHE PCD-01) with 5 readings (SBP, DBP, HR, SpO2, RR) once a second over MLLP and
//!   waiting for the ACK;
//! - `BENCH_GATEWAYS` device gateways, each posting 5 readings once a second as JSON to
//!   `POST /api/device/readings` with a bearer token;
//! - `BENCH_BOARDS` live boards (`GET /board/events`, server-sent events, a nurse's login
//!   cookie) and `BENCH_ALARM_SAMPLES` threshold crossings (a systolic of 186 mmHg, above the
//!   180 limit) sent on their own MLLP connections, timed from the send until the first
//!   board's event that shows the chair's `sbp_above` alarm; each alarm is then acknowledged
//!   over the API.
//!
//! It reports, per backend: offered and stored readings per second (the readings acknowledged
//! are compared with the rows in `session_readings`: nothing may be lost), ACK latency of the
//! HL7 messages and response time of the JSON posts (p50, p99, max), the alarm-to-board time
//! (p50, p99, max), the board's refresh interval, payload and cost by store call, the audit
//! rows written by writer, and every error (a non-AA ACK, a non-200 answer, an alarm that never
//! showed). The process fails when a reading is refused or lost.
//!
//! `BENCH_SATURATION=100,200,400` adds a saturation run per backend: the monitor count is
//! raised step by step on the same server until the p99 ACK latency passes
//! `BENCH_P99_LIMIT_MS` (default 1000) or a reading is refused or lost.
//!
//! Run with `cargo bench -p ketacare --bench monitors`; see `docs/benchmarks.md`.

use chrono::{SecondsFormat, Utc};
use ketacare::{Config, Server};
use ketacare_app::{App, AppError, NewUserInput, Principal};
use ketacare_db::AuditCtx;
use ketacare_db_tests::TestDb;
use ketacare_domain::access::Role;
use ketacare_domain::audit::Actor;
use ketacare_hl7::Reading;
use serde::Deserialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Password of the bench accounts (12+ characters, no username in it, not a common one).
const PASSWORD: &str = "violet lantern harbour 2026";
/// The session cookie's name with `secure_cookies` off.
const COOKIE: &str = "ketacare_session";
/// How long a monitor or gateway waits for its answer before counting an error.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an alarm sample waits for the board to show its alarm.
const ALARM_TIMEOUT: Duration = Duration::from_secs(30);
/// The threshold-crossing systolic (the alarm limit is 180 mmHg, `knowledge/session.toml`).
const ALARM_SYSTOLIC: i64 = 186;

use ketacare::monitors::mdc::{BPM, DIA, HR, MMHG, PCT, RPM, RR, SPO2, SYS};

// ------------------------------------------------------------------------------ parameters

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

#[derive(Clone, Debug)]
struct Params {
    monitors: usize,
    gateways: usize,
    seconds: u64,
    alarm_samples: usize,
    boards: usize,
    history_minutes: u64,
    backends: Vec<Backend>,
    saturation: Vec<usize>,
    saturation_seconds: u64,
    saturation_samples: usize,
    saturation_history: u64,
    p99_limit_ms: f64,
}

fn env_or<T: FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => {
            v.trim().parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a valid value (expected a number such as the default)"))
        }
        _ => default,
    }
}

impl Params {
    fn from_env() -> Self {
        let backends = std::env::var("BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
        let backends = backends
            .split(',')
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .map(|b| match b {
                "sqlite" => Backend::Sqlite,
                "postgres" | "postgresql" | "pg" => Backend::Postgres,
                other => panic!("BENCH_BACKENDS: unknown backend {other:?} (use sqlite, postgres)"),
            })
            .collect();
        let saturation = std::env::var("BENCH_SATURATION")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap_or_else(|_| panic!("BENCH_SATURATION: {s:?} is not a number of monitors")))
            .collect();
        Self {
            monitors: env_or("BENCH_MONITORS", 50),
            gateways: env_or("BENCH_GATEWAYS", 10),
            seconds: env_or::<u64>("BENCH_SECONDS", 20).max(3),
            alarm_samples: env_or("BENCH_ALARM_SAMPLES", 30),
            boards: env_or::<usize>("BENCH_BOARDS", 1).max(1),
            history_minutes: env_or::<u64>("BENCH_HISTORY_MINUTES", 30).min(600),
            backends,
            saturation,
            saturation_seconds: env_or::<u64>("BENCH_SATURATION_SECONDS", 10).max(3),
            saturation_samples: env_or("BENCH_SATURATION_ALARM_SAMPLES", 10),
            saturation_history: env_or::<u64>("BENCH_SATURATION_HISTORY_MINUTES", 0).min(600),
            p99_limit_ms: env_or("BENCH_P99_LIMIT_MS", 1000.0),
        }
    }
}

// ------------------------------------------------------------------------------ statistics

/// Counts and latencies of one kind of sender (HL7 monitors, JSON gateways, alarm spikes...).
#[derive(Default)]
struct LoadStats {
    /// Messages or requests sent.
    sent: u64,
    /// Answered AA / 200 with every reading accepted.
    ok: u64,
    /// Anything else: non-AA ACK, non-200, rejected readings, I/O error or timeout.
    errors: u64,
    /// Readings the server said it stored (MSA-3 `stored N`, JSON `stored`).
    stored: u64,
    /// Send to answer, per message.
    latency: Vec<Duration>,
    /// Sends that started more than 100 ms after their scheduled second.
    late: u64,
    /// Largest delay between the scheduled second and the send.
    max_lag: Duration,
    /// The first few errors, for the report.
    error_samples: Vec<String>,
}

impl LoadStats {
    fn error(&mut self, what: String) {
        self.errors += 1;
        if self.error_samples.len() < 5 {
            self.error_samples.push(what);
        }
    }

    fn merge(&mut self, o: LoadStats) {
        self.sent += o.sent;
        self.ok += o.ok;
        self.errors += o.errors;
        self.stored += o.stored;
        self.latency.extend(o.latency);
        self.late += o.late;
        self.max_lag = self.max_lag.max(o.max_lag);
        for e in o.error_samples {
            if self.error_samples.len() < 5 {
                self.error_samples.push(e);
            }
        }
    }

    fn lag(&mut self, scheduled: Instant) {
        let lag = Instant::now().saturating_duration_since(scheduled);
        self.max_lag = self.max_lag.max(lag);
        if lag > Duration::from_millis(100) {
            self.late += 1;
        }
    }
}

/// p50, p99 and max of a sample, in milliseconds (nearest rank).
#[derive(Clone, Copy)]
struct Summary {
    n: usize,
    p50: f64,
    p99: f64,
    max: f64,
}

impl Summary {
    fn of(sample: &[Duration]) -> Self {
        let mut v: Vec<Duration> = sample.to_vec();
        v.sort_unstable();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let rank = |p: f64| {
            let i = ((p / 100.0) * v.len() as f64).ceil() as usize;
            ms(v[i.clamp(1, v.len()) - 1])
        };
        if v.is_empty() {
            return Self { n: 0, p50: f64::NAN, p99: f64::NAN, max: f64::NAN };
        }
        Self { n: v.len(), p50: rank(50.0), p99: rank(99.0), max: ms(v[v.len() - 1]) }
    }

    fn show(&self) -> String {
        if self.n == 0 {
            return "-".into();
        }
        format!("{} / {} / {}", ms_text(self.p50), ms_text(self.p99), ms_text(self.max))
    }
}

fn ms_text(ms: f64) -> String {
    if ms < 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    }
}

/// Everything one run measured.
struct RunResult {
    backend: &'static str,
    monitors: usize,
    gateways: usize,
    seconds: u64,
    /// From the first scheduled second to the last answer (at least `seconds`).
    elapsed: Duration,
    hl7: LoadStats,
    json: LoadStats,
    /// The threshold-crossing messages of the alarm samples.
    spikes: LoadStats,
    /// The acknowledgements of the alarms raised.
    acks: LoadStats,
    alarm: Vec<Duration>,
    alarm_missed: u64,
    db_hl7: i64,
    db_device: i64,
    audit_rows: i64,
    board_events: u64,
    board_bytes: u64,
    board_gaps: Vec<Duration>,
    board_last_bytes: u64,
    /// `App::board` for every chair with the load stopped (median of 3).
    board_idle: Duration,
    /// One board refresh's store calls (mirroring `App::board`): call, time, calls, rows.
    board_profile: Vec<(&'static str, Duration, usize, usize)>,
    /// A server's first refresh also reads every chair's last 30 minutes: time, rows.
    board_cold: (Duration, usize),
    board_errors: Vec<String>,
    /// Audit rows written during the run, by writer, action and entity.
    audit_by: Vec<(String, String, String, i64)>,
}

impl RunResult {
    fn offered(&self) -> f64 {
        ((self.monitors + self.gateways) * 5) as f64
    }

    /// Readings stored per second: over the run's seconds, stretched by the largest delay of a
    /// send behind its schedule (senders that fall behind the offered rate lower it).
    fn stored_rate(&self) -> f64 {
        let lag = self.hl7.max_lag.max(self.json.max_lag).as_secs_f64();
        (self.hl7.stored + self.json.stored) as f64 / (self.seconds as f64 + lag)
    }

    /// Readings acknowledged minus rows found: must be 0.
    fn unaccounted(&self) -> i64 {
        (self.hl7.stored + self.json.stored + self.spikes.stored) as i64 - (self.db_hl7 + self.db_device)
    }

    fn errors(&self) -> u64 {
        self.hl7.errors + self.json.errors + self.spikes.errors + self.acks.errors + self.board_errors.len() as u64
    }

    fn clean(&self) -> bool {
        self.errors() == 0 && self.unaccounted() == 0 && self.hl7.stored + self.json.stored == self.expected_readings()
    }

    fn expected_readings(&self) -> u64 {
        (self.monitors + self.gateways) as u64 * self.seconds * 5
    }
}

// ------------------------------------------------------------------------------ main

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then say how to run it.
    if !std::env::args().any(|a| a == "--bench") {
        println!("monitors: a load benchmark; run it with `cargo bench -p ketacare --bench monitors` (see docs/benchmarks.md)");
        return;
    }
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::new(filter)).with_writer(std::io::stderr).try_init();
    let params = Params::from_env();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let ok = rt.block_on(run(params));
    if !ok {
        std::process::exit(1);
    }
}

async fn run(params: Params) -> bool {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!(
        "Ketacare monitor benchmark: {} HL7 monitors + {} JSON gateways at 1 Hz (5 readings each), {} s, {} alarm samples, {} live board(s), backends {:?}, saturation steps {:?} of {} s, {cpus} CPUs",
        params.monitors,
        params.gateways,
        params.seconds,
        params.alarm_samples,
        params.boards,
        params.backends.iter().map(|b| b.name()).collect::<Vec<_>>(),
        params.saturation,
        params.saturation_seconds
    );
    let mut main_results = Vec::new();
    let mut saturation = Vec::new();
    for &backend in &params.backends {
        match run_backend(backend, &params).await {
            Ok(Some((main, sat))) => {
                main_results.push(main);
                saturation.push((backend, sat));
            }
            Ok(None) => println!(
                "\n[{}] SKIPPED: set {}=postgres://postgres@127.0.0.1:5432/postgres (an admin URL; the bench creates and drops its own database)",
                backend.name(),
                ketacare_db_tests::PG_URL_VAR
            ),
            Err(e) => {
                println!("\n[{}] FAILED: {e:#}", backend.name());
                return false;
            }
        }
    }
    println!("\n==================================================== results");
    print_table(&main_results);
    print_details(&main_results);
    for (backend, steps) in &saturation {
        if steps.is_empty() {
            continue;
        }
        println!(
            "\n==================================================== saturation on {} (p99 ACK limit {} ms)",
            backend.name(),
            params.p99_limit_ms
        );
        print_table(steps);
        for r in steps {
            println!(
                "  {:>4} monitors: {}; sends late by >100 ms: {} (max lag {:.0} ms); board interval p50 {} ms, one refresh with the load stopped {:.0} ms, {:.0} audit rows/s",
                r.monitors,
                verdict(r, params.p99_limit_ms).map_or_else(|| "within the limit".to_owned(), |v| format!("OVER: {v}")),
                r.hl7.late + r.json.late,
                r.hl7.max_lag.max(r.json.max_lag).as_secs_f64() * 1000.0,
                ms_text(Summary::of(&r.board_gaps).p50),
                r.board_idle.as_secs_f64() * 1000.0,
                r.audit_rows as f64 / r.elapsed.as_secs_f64()
            );
        }
        let sustained = steps.iter().take_while(|r| within_limit(r, params.p99_limit_ms)).last();
        match sustained {
            Some(r) => println!(
                "{}: sustained {} monitors ({} readings/s with the gateways) within the limit{}",
                backend.name(),
                r.monitors,
                r.offered(),
                if steps.iter().all(|r| within_limit(r, params.p99_limit_ms)) { " (every step passed; try more)" } else { "" }
            ),
            None => println!("{}: even the first step exceeded the limit", backend.name()),
        }
    }
    let clean = main_results.iter().all(RunResult::clean);
    if !clean {
        println!("\nFAIL: errors, lost readings or readings not stored (see above)");
    }
    clean
}

fn within_limit(r: &RunResult, limit_ms: f64) -> bool {
    verdict(r, limit_ms).is_none()
}

/// Why a run is over the limit (`None`: within it).
fn verdict(r: &RunResult, limit_ms: f64) -> Option<String> {
    let p99 = Summary::of(&r.hl7.latency).p99;
    if r.errors() > 0 {
        Some(format!("{} errors", r.errors()))
    } else if r.unaccounted() != 0 {
        Some(format!("{} readings acknowledged but not found", r.unaccounted()))
    } else if r.hl7.stored + r.json.stored != r.expected_readings() {
        Some(format!("{} of {} readings stored", r.hl7.stored + r.json.stored, r.expected_readings()))
    } else if p99.is_nan() || p99 > limit_ms {
        Some(format!("HL7 ACK p99 {} ms over the limit", ms_text(p99)))
    } else {
        None
    }
}

fn print_table(rows: &[RunResult]) {
    println!(
        "{:<9} {:>5} {:>4} {:>5} {:>9} {:>9} {:>6} {:>24} {:>24} {:>24} {:>7}",
        "backend",
        "mon",
        "gw",
        "secs",
        "offered/s",
        "stored/s",
        "lost",
        "HL7 ACK p50/p99/max ms",
        "JSON p50/p99/max ms",
        "alarm p50/p99/max ms",
        "errors"
    );
    for r in rows {
        println!(
            "{:<9} {:>5} {:>4} {:>5} {:>9.0} {:>9.1} {:>6} {:>24} {:>24} {:>24} {:>7}",
            r.backend,
            r.monitors,
            r.gateways,
            r.seconds,
            r.offered(),
            r.stored_rate(),
            r.unaccounted(),
            Summary::of(&r.hl7.latency).show(),
            Summary::of(&r.json.latency).show(),
            format!("{} (n={})", Summary::of(&r.alarm).show(), r.alarm.len()),
            r.errors()
        );
    }
}

fn print_details(rows: &[RunResult]) {
    for r in rows {
        let gaps = Summary::of(&r.board_gaps);
        println!(
            "\n[{}] readings: {} offered, {} stored by the load + {} by the alarm samples = {} acknowledged; rows in session_readings: {} hl7 + {} device = {} ({})",
            r.backend,
            r.expected_readings(),
            r.hl7.stored + r.json.stored,
            r.spikes.stored,
            r.hl7.stored + r.json.stored + r.spikes.stored,
            r.db_hl7,
            r.db_device,
            r.db_hl7 + r.db_device,
            if r.unaccounted() == 0 { "all accounted for" } else { "MISMATCH" }
        );
        println!(
            "[{}] messages: HL7 {} sent / {} AA, JSON {} sent / {} OK; sends late by >100 ms: {} (max lag {:.0} ms); load window {:.1} s",
            r.backend,
            r.hl7.sent,
            r.hl7.ok,
            r.json.sent,
            r.json.ok,
            r.hl7.late + r.json.late,
            r.hl7.max_lag.max(r.json.max_lag).as_secs_f64() * 1000.0,
            r.elapsed.as_secs_f64()
        );
        println!(
            "[{}] alarms: {} shown on the board, {} missed; acknowledgements {} OK, {} failed (p50/p99/max {} ms)",
            r.backend,
            r.alarm.len(),
            r.alarm_missed,
            r.acks.ok,
            r.acks.errors,
            Summary::of(&r.acks.latency).show()
        );
        println!(
            "[{}] live board: {} events, payload {:.0} KB average / {:.0} KB last, interval between events p50/p99/max {} ms; one refresh with the load stopped: {:.0} ms",
            r.backend,
            r.board_events,
            if r.board_events > 0 { r.board_bytes as f64 / r.board_events as f64 / 1024.0 } else { 0.0 },
            r.board_last_bytes as f64 / 1024.0,
            gaps.show(),
            r.board_idle.as_secs_f64() * 1000.0
        );
        let calls: Duration = r.board_profile.iter().map(|(_, d, ..)| *d).sum();
        println!(
            "[{}] where a refresh's time goes: its store calls, made one by one as App::board makes them, take {:.0} ms (App::board: {:.0} ms):",
            r.backend,
            calls.as_secs_f64() * 1000.0,
            r.board_idle.as_secs_f64() * 1000.0
        );
        for (call, d, n, rows) in &r.board_profile {
            println!("[{}]   {call:<22} {:>7.0} ms in {n:>4} calls, {rows:>7} rows", r.backend, d.as_secs_f64() * 1000.0);
        }
        println!(
            "[{}]   (a server's first refresh also reads the last 30 minutes of every chair: {:.0} ms, {} rows)",
            r.backend,
            r.board_cold.0.as_secs_f64() * 1000.0,
            r.board_cold.1
        );
        let secs = r.elapsed.as_secs_f64();
        println!("[{}] audit rows written: {} ({:.0}/s), by writer:", r.backend, r.audit_rows, r.audit_rows as f64 / secs);
        for (who, action, entity, n) in &r.audit_by {
            println!("[{}]   {who:<13} {action} {entity:<18} {n:>7} ({:.0}/s)", r.backend, *n as f64 / secs);
        }
        for (what, s) in [("HL7", &r.hl7), ("JSON", &r.json), ("alarm spike", &r.spikes), ("acknowledge", &r.acks)] {
            for e in &s.error_samples {
                println!("[{}] {what} error: {e}", r.backend);
            }
        }
        for e in &r.board_errors {
            println!("[{}] board error: {e}", r.backend);
        }
    }
}

// ------------------------------------------------------------------------------ one backend

/// Counts rows in the bench's database from outside the server.
enum Counter {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Counter {
    async fn open(backend: Backend, url: &str) -> anyhow::Result<Self> {
        let t = Duration::from_secs(15);
        Ok(match backend {
            Backend::Sqlite => Counter::Sqlite(sqlx::pool::PoolOptions::new().max_connections(1).acquire_timeout(t).connect(url).await?),
            Backend::Postgres => {
                Counter::Postgres(sqlx::pool::PoolOptions::new().max_connections(1).acquire_timeout(t).connect(url).await?)
            }
        })
    }

    async fn count(&self, sql: &str) -> anyhow::Result<i64> {
        Ok(match self {
            Counter::Sqlite(p) => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await?,
            Counter::Postgres(p) => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await?,
        })
    }

    /// (HL7 readings, device readings, audit rows).
    async fn snapshot(&self) -> anyhow::Result<(i64, i64, i64)> {
        Ok((
            self.count("SELECT COUNT(*) FROM session_readings WHERE source = 'hl7'").await?,
            self.count("SELECT COUNT(*) FROM session_readings WHERE source = 'device'").await?,
            self.count("SELECT COUNT(*) FROM audit_log").await?,
        ))
    }

    /// The last audit row's sequence number.
    async fn audit_seq(&self) -> anyhow::Result<i64> {
        self.count("SELECT COALESCE(MAX(seq), 0) FROM audit_log").await
    }

    /// Audit rows after `seq`, by writer, action and entity, most first.
    async fn audit_breakdown(&self, seq: i64) -> anyhow::Result<Vec<(String, String, String, i64)>> {
        let sql = format!(
            "SELECT CASE WHEN username LIKE 'monitor %' THEN 'HL7 intake' WHEN username LIKE 'gateway %' OR username = 'bench.gateway' THEN 'JSON intake' \
             WHEN username = 'alarm engine' THEN 'alarm tick' WHEN username = 'bench.nurse' THEN 'board + acks' ELSE username END, \
             action, entity_type, COUNT(*) FROM audit_log WHERE seq > {seq} GROUP BY 1, 2, 3 ORDER BY 4 DESC"
        );
        Ok(match self {
            Counter::Sqlite(p) => sqlx::query_as(&sql).fetch_all(p).await?,
            Counter::Postgres(p) => sqlx::query_as(&sql).fetch_all(p).await?,
        })
    }

    /// PostgreSQL: refreshes the planner's statistics, as autovacuum does after a table grows
    /// (the history grows `session_readings` from nothing to half a million rows in seconds,
    /// faster than autovacuum looks). SQLite: nothing (Ketacare never runs ANALYZE there).
    async fn analyze(&self) -> anyhow::Result<()> {
        if let Counter::Postgres(p) = self {
            sqlx::query("ANALYZE session_readings").execute(p).await?;
        }
        Ok(())
    }

    async fn close(self) {
        match self {
            Counter::Sqlite(p) => p.close().await,
            Counter::Postgres(p) => p.close().await,
        }
    }
}

/// The accounts and credentials of a bench server.
struct Staff {
    prescriber: Principal,
    nurse: Principal,
    /// Bearer secret of the device gateways (a nurse account).
    gateway_token: String,
    /// Bearer secret the board nurse acknowledges alarms with.
    ack_token: String,
    /// Login name of the nurse watching the board.
    board_user: String,
}

/// A seeded, monitored chair.
#[derive(Clone, Debug)]
struct Chair {
    chair: String,
    device: String,
}

fn hl7_chair(i: usize) -> Chair {
    Chair { chair: format!("BENCH^CHAIR{i}"), device: format!("BE00{i:012X}") }
}

fn gateway_chair(j: usize) -> Chair {
    Chair { chair: format!("BENCH^GW{j}"), device: format!("BE01{j:012X}") }
}

/// A running bench server on a fresh database.
struct Bench {
    backend: Backend,
    server: Server,
    base: String,
    mllp: SocketAddr,
    staff: Arc<Staff>,
    counter: Counter,
    http: reqwest::Client,
    hl7_seeded: usize,
    gateways_seeded: usize,
}

type Outcome = (RunResult, Vec<RunResult>);

async fn run_backend(backend: Backend, params: &Params) -> anyhow::Result<Option<Outcome>> {
    let db: TestDb = match backend {
        Backend::Sqlite => ketacare_db_tests::fresh_sqlite().await,
        Backend::Postgres => match ketacare_db_tests::fresh_postgres().await {
            Some(db) => db,
            None => return Ok(None),
        },
    };
    println!("\n[{}] fresh database; starting the server", backend.name());
    let config = Config {
        database_url: db.url.clone(),
        listen: "127.0.0.1:0".into(),
        mllp_listen: "127.0.0.1:0".into(),
        secure_cookies: false,
        ..Config::default()
    };
    let server = Server::start(&config, None).await?;
    let result = async {
        let mut bench = Bench::new(backend, server, &db).await?;
        let main = bench
            .run(params.monitors, params.gateways, params.history_minutes, params.seconds, params.alarm_samples, params.boards)
            .await?;
        let mut steps = Vec::new();
        for &n in &params.saturation {
            let r = bench
                .run(n, params.gateways, params.saturation_history, params.saturation_seconds, params.saturation_samples, params.boards)
                .await?;
            let over = !within_limit(&r, params.p99_limit_ms);
            steps.push(r);
            if over {
                break;
            }
        }
        bench.stop().await;
        anyhow::Ok((main, steps))
    }
    .await;
    drop(db);
    result.map(Some)
}

impl Bench {
    async fn new(backend: Backend, server: Server, db: &TestDb) -> anyhow::Result<Self> {
        let app = server.app.clone();
        let create = |role: Role, username: &'static str, display: &'static str| {
            let app = app.clone();
            async move {
                let input = NewUserInput {
                    username: username.into(),
                    display_name: display.into(),
                    role: role.code().into(),
                    password: PASSWORD.into(),
                };
                app.create_user_as_system(&input).await.map_err(|e| anyhow::anyhow!("creating {username}: {e}"))
            }
        };
        let (admin, prescriber, nurse, gateway) = tokio::join!(
            create(Role::Admin, "bench.admin", "Bench Admin"),
            create(Role::Prescriber, "bench.prescriber", "Dr Bench Prescriber"),
            create(Role::Nurse, "bench.nurse", "Bench Nurse, RN"),
            create(Role::Nurse, "bench.gateway", "Bench device gateway"),
        );
        let (admin, prescriber, nurse, gateway) = (admin?, prescriber?, nurse?, gateway?);
        let admin = app.system_principal(admin);
        let (gateway_token, _) = app
            .issue_api_token(&admin, &gateway.id.to_string(), "bench gateway")
            .await
            .map_err(|e| anyhow::anyhow!("issuing the gateway token: {e}"))?;
        let (ack_token, _) = app
            .issue_api_token(&admin, &nurse.id.to_string(), "bench board nurse")
            .await
            .map_err(|e| anyhow::anyhow!("issuing the nurse's token: {e}"))?;
        let staff = Staff {
            board_user: nurse.username.as_str().to_owned(),
            prescriber: app.system_principal(prescriber),
            nurse: app.system_principal(nurse),
            gateway_token,
            ack_token,
        };
        let mllp = server.mllp_addr.ok_or_else(|| anyhow::anyhow!("the MLLP listener did not start"))?;
        let base = format!("http://{}", server.addr);
        let counter = Counter::open(backend, &db.url).await?;
        let http = reqwest::Client::builder().no_proxy().timeout(ANSWER_TIMEOUT).build()?;
        Ok(Self { backend, server, base, mllp, staff: Arc::new(staff), counter, http, hl7_seeded: 0, gateways_seeded: 0 })
    }

    async fn stop(self) {
        self.counter.close().await;
        self.server.stop().await;
    }

    /// Seeds sessions so that `monitors` HL7 chairs and `gateways` JSON chairs exist.
    /// Newly seeded sessions are booked `history` minutes (and two more) in the past, so that
    /// [`Bench::backfill`] can give them that much monitoring history. Returns the new chairs.
    async fn seed(&mut self, monitors: usize, gateways: usize, history: u64) -> anyhow::Result<Vec<Chair>> {
        let mut todo: Vec<(Chair, String)> = Vec::new();
        for i in self.hl7_seeded..monitors {
            todo.push((hl7_chair(i), format!("BM-{i:06}")));
        }
        for j in self.gateways_seeded..gateways {
            todo.push((gateway_chair(j), format!("BG-{j:06}")));
        }
        if todo.is_empty() {
            return Ok(Vec::new());
        }
        let scheduled_at = if history > 0 {
            (Utc::now() - chrono::Duration::minutes(history as i64 + 2)).to_rfc3339_opts(SecondsFormat::Secs, true)
        } else {
            String::new()
        };
        let chairs: Vec<Chair> = todo.iter().map(|(c, _)| c.clone()).collect();
        let t0 = Instant::now();
        let n = todo.len();
        let gate = Arc::new(tokio::sync::Semaphore::new(4));
        let mut set = JoinSet::new();
        for (chair, mrn) in todo {
            let (app, staff, gate, scheduled_at) = (self.server.app.clone(), self.staff.clone(), gate.clone(), scheduled_at.clone());
            set.spawn(async move {
                let _permit = gate.acquire_owned().await;
                seed_chair(&app, &staff.prescriber, &staff.nurse, &chair, &mrn, &scheduled_at)
                    .await
                    .map_err(|e| anyhow::anyhow!("seeding {}: {e}", chair.chair))
            });
        }
        while let Some(done) = set.join_next().await {
            done??;
        }
        self.hl7_seeded = self.hl7_seeded.max(monitors);
        self.gateways_seeded = self.gateways_seeded.max(gateways);
        println!(
            "[{}] seeded {n} sessions in Monitoring in {:.1} s ({} HL7 chairs, {} gateway chairs in all)",
            self.backend.name(),
            t0.elapsed().as_secs_f64(),
            self.hl7_seeded,
            self.gateways_seeded
        );
        Ok(chairs)
    }

    /// Gives each chair `minutes` of monitoring history at 1 Hz (5 vitals a second, as the
    /// load sends), through the gateway endpoint in batches of 500 readings: a session that
    /// has been monitored for a while, whose last 30 minutes the board reads on every refresh.
    async fn backfill(&self, chairs: &[Chair], minutes: u64) -> anyhow::Result<()> {
        let t0 = Instant::now();
        let end = Utc::now();
        let seconds = minutes * 60;
        let url = format!("{}/api/device/readings", self.base);
        let gate = Arc::new(tokio::sync::Semaphore::new(4));
        let mut set = JoinSet::new();
        for (i, c) in chairs.iter().enumerate() {
            for from in (0..seconds).step_by(100) {
                let (gate, http, url, bearer, device) =
                    (gate.clone(), self.http.clone(), url.clone(), self.staff.gateway_token.clone(), c.device.clone());
                set.spawn(async move {
                    let _permit = gate.acquire_owned().await;
                    let mut readings = Vec::new();
                    for k in from..(from + 100).min(seconds) {
                        let at = (end - chrono::Duration::seconds((seconds - k) as i64)).to_rfc3339_opts(SecondsFormat::Millis, true);
                        for (vital, v) in calm(i, k) {
                            readings.push(serde_json::json!({"vital": vital, "value": v, "observed_at": at}));
                        }
                    }
                    let n = readings.len() as u64;
                    let body = serde_json::json!({"device_id": device, "message_id": format!("H-{device}-{from}"), "readings": readings});
                    let r = http.post(&url).bearer_auth(&bearer).json(&body).send().await?;
                    let status = r.status();
                    let v: serde_json::Value = r.json().await.unwrap_or_default();
                    anyhow::ensure!(
                        status == reqwest::StatusCode::OK && v["stored"].as_u64() == Some(n),
                        "backfilling {device}: {status}: {v}"
                    );
                    anyhow::Ok(n)
                });
            }
        }
        let mut stored = 0;
        while let Some(done) = set.join_next().await {
            stored += done??;
        }
        self.counter.analyze().await?;
        println!(
            "[{}] history: {stored} readings ({minutes} min at 1 Hz for each of {} chairs) stored in {:.1} s",
            self.backend.name(),
            chairs.len(),
            t0.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// The store calls of one board refresh, as `App::board` makes them (an audited read
    /// per session for new readings, alarms, events and the patient), timed by kind; and the
    /// 30-minute trend read of a server's first refresh (time, rows).
    async fn board_profile(&self) -> anyhow::Result<(Vec<(&'static str, Duration, usize, usize)>, (Duration, usize))> {
        let store = self.server.app.store().clone();
        let user = &self.staff.nurse.user;
        let ctx = AuditCtx {
            actor: Actor {
                user_id: Some(user.id),
                username: user.username.as_str().to_owned(),
                role: Some(user.role),
                session_ref: Some("bench".into()),
                client_addr: None,
            },
            at: Utc::now(),
            purpose: "treatment",
        };
        let mut out: Vec<(&'static str, Duration, usize, usize)> = Vec::new();
        let mut add = |call: &'static str, t: Instant, rows: usize| match out.iter_mut().find(|(c, ..)| *c == call) {
            Some(e) => {
                e.1 += t.elapsed();
                e.2 += 1;
                e.3 += rows;
            }
            None => out.push((call, t.elapsed(), 1, rows)),
        };
        let t = Instant::now();
        let sessions = store.active_sessions(&ctx).await?;
        add("active_sessions", t, sessions.len());
        // The trend: a refresh reads only what each chair received since the previous one
        // (here: the last second); a server's first refresh reads the whole 30 minutes.
        let recent = Utc::now() - chrono::Duration::seconds(1);
        let window = Utc::now() - chrono::Duration::minutes(30);
        for s in &sessions {
            let t = Instant::now();
            let n = store.readings_received_since(&ctx, s.id, recent).await?.len();
            add("trend: new readings", t, n);
            let t = Instant::now();
            let n = store.last_readings(s.id).await?.len();
            add("last_readings", t, n);
            let t = Instant::now();
            let n = store.session_alarms(&ctx, s.id, true).await?.len();
            add("session_alarms", t, n);
            if s.dose_started_at.is_some() {
                let t = Instant::now();
                let n = store.session_events(&ctx, s.id).await?.len();
                add("session_events", t, n);
            }
            let t = Instant::now();
            let n = usize::from(store.get_patient(&ctx, s.patient_id).await?.is_some());
            add("get_patient", t, n);
        }
        let mut cold = (Duration::ZERO, 0);
        for s in &sessions {
            let t = Instant::now();
            cold.1 += store.readings_received_since(&ctx, s.id, window).await?.len();
            cold.0 += t.elapsed();
        }
        Ok((out, cold))
    }

    /// Logs the board nurse in and returns the `Cookie` header value.
    async fn login(&self) -> anyhow::Result<String> {
        let r = self
            .http
            .post(format!("{}/api/login", self.base))
            .json(&serde_json::json!({"username": self.staff.board_user, "password": PASSWORD}))
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "login answered {}", r.status());
        let cookie = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with(&format!("{COOKIE}=")))
            .and_then(|c| c.split(';').next())
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("login set no {COOKIE} cookie"))?;
        Ok(cookie)
    }

    #[allow(clippy::too_many_arguments)]
    async fn run(
        &mut self,
        monitors: usize,
        gateways: usize,
        history: u64,
        seconds: u64,
        samples: usize,
        boards: usize,
    ) -> anyhow::Result<RunResult> {
        let new = self.seed(monitors, gateways, history).await?;
        if history > 0 {
            self.backfill(&new, history).await?;
        }
        let name = self.backend.name();
        println!(
            "[{name}] load: {monitors} HL7 monitors + {gateways} JSON gateways at 1 Hz for {seconds} s, {samples} alarm samples, {boards} live board(s) open"
        );
        // Every open board refreshes on its own; the first one is measured.
        let board = Arc::new(BoardWatch::default());
        let mut watchers = Vec::new();
        for b in 0..boards {
            let watch = if b == 0 { board.clone() } else { Arc::new(BoardWatch::default()) };
            let cookie = self.login().await?;
            watchers.push(tokio::spawn(watch_board(format!("{}/board/events", self.base), cookie, watch.clone())));
            // The first board event says the stream is up.
            watch.wait_for_events(1, Duration::from_secs(30)).await?;
        }
        let (hl7_before, device_before, audit_before) = self.counter.snapshot().await?;
        let audit_seq = self.counter.audit_seq().await?;

        // Everything starts on the next whole second after connecting.
        let start = Instant::now() + Duration::from_secs(1);
        let mut monitors_set = JoinSet::new();
        for i in 0..monitors {
            let offset = Duration::from_micros(1_000_000 * i as u64 / monitors.max(1) as u64);
            monitors_set.spawn(run_monitor(i, hl7_chair(i), self.mllp, start + offset, seconds));
        }
        let mut gateways_set = JoinSet::new();
        for j in 0..gateways {
            let offset = Duration::from_micros(1_000_000 * j as u64 / gateways.max(1) as u64 + 500_000 / gateways.max(1) as u64);
            let client = reqwest::Client::builder().no_proxy().timeout(ANSWER_TIMEOUT).build()?;
            gateways_set.spawn(run_gateway(
                j,
                gateway_chair(j),
                client,
                format!("{}/api/device/readings", self.base),
                self.staff.gateway_token.clone(),
                start + offset,
                seconds,
            ));
        }
        // Alarm samples, spread over the load window, one chair each (reused when there are
        // more samples than monitors, after the previous alarm there was acknowledged).
        let mut samples_set = JoinSet::new();
        if monitors > 0 && samples > 0 {
            let locks: Vec<Arc<tokio::sync::Mutex<Option<Instant>>>> =
                (0..monitors.min(samples)).map(|_| Arc::new(tokio::sync::Mutex::new(None))).collect();
            let span = Duration::from_secs(seconds.saturating_sub(2).max(1));
            for k in 0..samples {
                let at = start + Duration::from_secs(1) + span.mul_f64(k as f64 / samples as f64);
                let chair_index = k % monitors.min(samples);
                let sample = AlarmSample {
                    k,
                    chair: hl7_chair(chair_index),
                    mllp: self.mllp,
                    board: board.clone(),
                    http: self.http.clone(),
                    base: self.base.clone(),
                    bearer: self.staff.ack_token.clone(),
                    lock: locks[chair_index].clone(),
                };
                samples_set.spawn(async move {
                    tokio::time::sleep_until(at).await;
                    sample.run().await
                });
            }
        }

        let mut hl7 = LoadStats::default();
        while let Some(done) = monitors_set.join_next().await {
            hl7.merge(done?);
        }
        let mut json = LoadStats::default();
        while let Some(done) = gateways_set.join_next().await {
            json.merge(done?);
        }
        let elapsed = Instant::now().saturating_duration_since(start).max(Duration::from_secs(seconds));
        let (mut spikes, mut acks, mut alarm, mut alarm_missed) = (LoadStats::default(), LoadStats::default(), Vec::new(), 0);
        let mut board_errors = Vec::new();
        while let Some(done) = samples_set.join_next().await {
            let s = done?;
            spikes.merge(s.spike);
            acks.merge(s.acks);
            if let Some(l) = s.latency {
                alarm.push(l);
            }
            if let Some(why) = s.missed {
                alarm_missed += 1;
                board_errors.push(why);
            }
        }
        let (hl7_after, device_after, audit_after) = self.counter.snapshot().await?;
        let audit_by = self.counter.audit_breakdown(audit_seq).await?;
        for w in &watchers {
            w.abort();
        }
        // The board's own cost, with the load stopped: what one refresh costs per change.
        let mut idle = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            self.server.app.board(&self.staff.nurse, true).await.map_err(|e| anyhow::anyhow!("board: {e}"))?;
            idle.push(t.elapsed());
        }
        idle.sort_unstable();
        let (board_profile, board_cold) = self.board_profile().await?;
        let b = board.state.lock().expect("board state");
        let result = RunResult {
            backend: name,
            monitors,
            gateways,
            seconds,
            elapsed,
            hl7,
            json,
            spikes,
            acks,
            alarm,
            alarm_missed,
            db_hl7: hl7_after - hl7_before,
            db_device: device_after - device_before,
            audit_rows: audit_after - audit_before,
            board_events: b.events,
            board_bytes: b.bytes,
            board_gaps: b.gaps.clone(),
            board_last_bytes: b.last_bytes,
            board_idle: idle[1],
            board_profile,
            board_cold,
            audit_by,
            board_errors: b.errors.iter().cloned().chain(board_errors).collect(),
        };
        drop(b);
        println!(
            "[{name}] done: stored {:.1} readings/s of {:.0} offered, HL7 ACK p50/p99/max {} ms, alarm to board p50/p99/max {} ms, {} errors",
            result.stored_rate(),
            result.offered(),
            Summary::of(&result.hl7.latency).show(),
            Summary::of(&result.alarm).show(),
            result.errors()
        );
        Ok(result)
    }
}

/// Takes one chair's patient through the workflow to Monitoring with the monitor bound, as the
/// demo room does (`ketacare_demo::room::seat`).
async fn seed_chair(
    app: &App,
    prescriber: &Principal,
    nurse: &Principal,
    c: &Chair,
    mrn: &str,
    scheduled_at: &str,
) -> Result<(), AppError> {
    let spec = ketacare_demo::room::SeatSpec {
        chair: &c.chair,
        device: &c.device,
        mrn,
        given: "Bench",
        family: "Monitor",
        dob: "1980-05-17",
        sex: "male",
        weight_kg: "80",
        height_cm: "178",
        baseline: ("118", "76"),
        scheduled_at,
    };
    ketacare_demo::room::seat(app, prescriber, nurse, &spec).await?;
    Ok(())
}

// ------------------------------------------------------------------------------ senders

/// Calm vitals, varying a little with the chair and the second (no alarm rule is crossed:
/// the baseline is 118/76).
fn calm(i: usize, k: u64) -> [(&'static str, i64); 5] {
    let w = |n: u64| ((i as u64).wrapping_mul(31).wrapping_add(k.wrapping_mul(7)).wrapping_add(n) % 7) as i64;
    [
        ("systolic", 119 + w(1)),
        ("diastolic", 74 + w(2) / 2),
        ("heart_rate", 70 + w(3)),
        ("spo2", 96 + w(4) / 2),
        ("respiratory_rate", 13 + w(5) / 3),
    ]
}

fn hl7_readings(values: &[(&'static str, i64)]) -> Vec<Reading> {
    values
        .iter()
        .map(|(vital, v)| {
            let (mdc, unit) = match *vital {
                "systolic" => (SYS, MMHG),
                "diastolic" => (DIA, MMHG),
                "heart_rate" => (HR, BPM),
                "spo2" => (SPO2, PCT),
                _ => (RR, RPM),
            };
            Reading { mdc, value: v.to_string(), unit }
        })
        .collect()
}

/// `(MSA-1, MSA-2, stored N from MSA-3)` of an ACK.
fn read_ack(ack: &str) -> (String, String, Option<u64>) {
    let (code, control) = ketacare_hl7::ack_code_of(ack).unwrap_or_default();
    let stored = ack
        .split(['\r', '\n'])
        .find(|s| s.starts_with("MSA|"))
        .and_then(|msa| msa.split('|').nth(3))
        .and_then(|text| text.strip_prefix("stored "))
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok());
    (code, control, stored)
}

/// Sends one ORU^R01 on `stream` (connecting first when needed) and checks the ACK; the
/// latency is send to ACK.
async fn send_oru(
    stats: &mut LoadStats,
    stream: &mut Option<TcpStream>,
    addr: SocketAddr,
    c: &Chair,
    control: &str,
    readings: &[Reading],
) -> bool {
    if stream.is_none() {
        match tokio::time::timeout(ANSWER_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                *stream = Some(s);
            }
            other => {
                stats.sent += 1;
                stats.error(format!("{control}: cannot connect: {other:?}"));
                return false;
            }
        }
    }
    let Some(s) = stream.as_mut() else { return false };
    let msg = ketacare_hl7::build_oru(control, &c.device, &c.chair, Utc::now(), readings);
    let t0 = Instant::now();
    stats.sent += 1;
    match tokio::time::timeout(ANSWER_TIMEOUT, ketacare_hl7::send(s, &msg)).await {
        Ok(Ok(ack)) => {
            stats.latency.push(t0.elapsed());
            let (code, echoed, stored) = read_ack(&ack);
            match stored {
                Some(n) if code == "AA" && echoed == control && !ack.contains("were not readings") => {
                    stats.ok += 1;
                    stats.stored += n;
                    if n != readings.len() as u64 {
                        stats.error(format!("{control}: stored {n} of {} readings", readings.len()));
                    }
                    true
                }
                _ => {
                    stats.stored += stored.unwrap_or(0);
                    stats.error(format!("{control}: ACK {code} for {echoed}: {}", ack.replace('\r', " | ")));
                    false
                }
            }
        }
        Ok(Err(e)) => {
            *stream = None;
            stats.error(format!("{control}: {e}"));
            false
        }
        Err(_) => {
            *stream = None;
            stats.error(format!("{control}: no ACK within {} s", ANSWER_TIMEOUT.as_secs()));
            false
        }
    }
}

/// One bedside monitor: its own connection, one ORU^R01 with 5 readings a second.
async fn run_monitor(i: usize, c: Chair, addr: SocketAddr, first: Instant, seconds: u64) -> LoadStats {
    let mut stats = LoadStats::default();
    let mut stream = match TcpStream::connect(addr).await {
        Ok(s) => {
            let _ = s.set_nodelay(true);
            Some(s)
        }
        Err(_) => None,
    };
    let mut every = tokio::time::interval_at(first, Duration::from_secs(1));
    for k in 0..seconds {
        let scheduled = every.tick().await;
        stats.lag(scheduled);
        let readings = hl7_readings(&calm(i, k));
        send_oru(&mut stats, &mut stream, addr, &c, &format!("M{i}-{k}"), &readings).await;
    }
    stats
}

/// One device gateway: one `POST /api/device/readings` with 5 readings a second.
async fn run_gateway(j: usize, c: Chair, client: reqwest::Client, url: String, bearer: String, first: Instant, seconds: u64) -> LoadStats {
    let mut stats = LoadStats::default();
    let mut every = tokio::time::interval_at(first, Duration::from_secs(1));
    for k in 0..seconds {
        let scheduled = every.tick().await;
        stats.lag(scheduled);
        let at = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        let readings: Vec<serde_json::Value> =
            calm(j + 10_000, k).iter().map(|(vital, v)| serde_json::json!({"vital": vital, "value": v, "observed_at": at})).collect();
        let body = serde_json::json!({"device_id": c.device, "message_id": format!("G{j}-{k}"), "readings": readings});
        let t0 = Instant::now();
        stats.sent += 1;
        let answer = client.post(&url).bearer_auth(&bearer).json(&body).send().await;
        match answer {
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                stats.latency.push(t0.elapsed());
                let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                let stored = v["stored"].as_u64();
                let rejected = v["rejected"].as_array().map_or(0, Vec::len);
                match stored {
                    Some(n) if status == reqwest::StatusCode::OK && rejected == 0 => {
                        stats.ok += 1;
                        stats.stored += n;
                        if n != 5 {
                            stats.error(format!("G{j}-{k}: stored {n} of 5 readings"));
                        }
                    }
                    _ => {
                        stats.stored += stored.unwrap_or(0);
                        stats.error(format!("G{j}-{k}: {status}: {text}"));
                    }
                }
            }
            Err(e) => stats.error(format!("G{j}-{k}: {e}")),
        }
    }
    stats
}

// ------------------------------------------------------------------------------ the live board

#[derive(Deserialize)]
struct BoardDto {
    chairs: Vec<ChairDto>,
}

#[derive(Deserialize)]
struct ChairDto {
    chair: String,
    session_id: String,
    alarms: Vec<AlarmRef>,
}

#[derive(Deserialize)]
struct AlarmRef {
    id: String,
    rule: String,
}

#[derive(Default)]
struct BoardState {
    /// Board events received.
    events: u64,
    /// Their payload bytes.
    bytes: u64,
    /// The last one's.
    last_bytes: u64,
    /// Time between consecutive events.
    gaps: Vec<Duration>,
    last: Option<Instant>,
    /// Per chair: every `sbp_above` alarm id seen, with when it was first seen.
    sbp_above: HashMap<String, Vec<(String, Instant)>>,
    /// Per chair: its session id and live alarm ids (from the latest event).
    live: HashMap<String, (String, Vec<String>)>,
    errors: Vec<String>,
}

/// What the board watcher has seen, and a signal per event.
struct BoardWatch {
    state: Mutex<BoardState>,
    events: tokio::sync::watch::Sender<u64>,
}

impl Default for BoardWatch {
    fn default() -> Self {
        Self { state: Mutex::new(BoardState::default()), events: tokio::sync::watch::channel(0).0 }
    }
}

impl BoardWatch {
    async fn wait_for_events(&self, n: u64, within: Duration) -> anyhow::Result<()> {
        let mut rx = self.events.subscribe();
        tokio::time::timeout(within, rx.wait_for(|seen| *seen >= n))
            .await
            .map_err(|_| anyhow::anyhow!("no live-board event within {} s", within.as_secs()))?
            .map_err(|_| anyhow::anyhow!("the live-board watcher stopped"))?;
        Ok(())
    }

    fn record(&self, data: &str, at: Instant) {
        let parsed: Result<BoardDto, _> = serde_json::from_str(data);
        let mut s = self.state.lock().expect("board state");
        s.events += 1;
        s.bytes += data.len() as u64;
        s.last_bytes = data.len() as u64;
        if let Some(last) = s.last {
            s.gaps.push(at - last);
        }
        s.last = Some(at);
        match parsed {
            Ok(b) => {
                for c in b.chairs {
                    for a in c.alarms.iter().filter(|a| a.rule == "sbp_above") {
                        let seen = s.sbp_above.entry(c.chair.clone()).or_default();
                        if !seen.iter().any(|(id, _)| *id == a.id) {
                            seen.push((a.id.clone(), at));
                        }
                    }
                    s.live.insert(c.chair, (c.session_id, c.alarms.into_iter().map(|a| a.id).collect()));
                }
            }
            Err(e) => s.errors.push(format!("board event is not the expected JSON: {e}")),
        }
        let n = s.events;
        drop(s);
        self.events.send_replace(n);
    }
}

/// Reads the board's server-sent events until aborted.
async fn watch_board(url: String, cookie: String, board: Arc<BoardWatch>) {
    let fail = |e: String| board.state.lock().expect("board state").errors.push(e);
    // The stream lives as long as the run: no overall timeout on this request.
    let client = match reqwest::Client::builder().no_proxy().build() {
        Ok(c) => c,
        Err(e) => return fail(format!("board client: {e}")),
    };
    let mut resp = match client.get(&url).header("cookie", cookie).header("accept", "text/event-stream").send().await {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => return fail(format!("GET /board/events answered {}", r.status())),
        Err(e) => return fail(format!("GET /board/events: {e}")),
    };
    let mut buf: Vec<u8> = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(bytes)) => {
                buf.extend_from_slice(&bytes);
                let at = Instant::now();
                while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
                    let block: Vec<u8> = buf.drain(..end + 2).collect();
                    let text = String::from_utf8_lossy(&block);
                    let mut event = "";
                    let mut data = String::new();
                    for line in text.lines() {
                        if let Some(v) = line.strip_prefix("event:") {
                            event = v.trim();
                        } else if let Some(v) = line.strip_prefix("data:") {
                            data.push_str(v.strip_prefix(' ').unwrap_or(v));
                        }
                    }
                    match event {
                        "board" => board.record(&data, at),
                        "" => {}
                        other => fail(format!("board sent a {other:?} event: {data}")),
                    }
                }
            }
            Ok(None) => return fail("the board's event stream ended".into()),
            Err(e) => return fail(format!("reading the board's event stream: {e}")),
        }
    }
}

// ------------------------------------------------------------------------------ alarm samples

struct AlarmSample {
    k: usize,
    chair: Chair,
    mllp: SocketAddr,
    board: Arc<BoardWatch>,
    http: reqwest::Client,
    base: String,
    bearer: String,
    /// When this chair's previous alarm was acknowledged.
    lock: Arc<tokio::sync::Mutex<Option<Instant>>>,
}

struct SampleResult {
    spike: LoadStats,
    acks: LoadStats,
    /// Send to board; `None`: never shown.
    latency: Option<Duration>,
    /// Why it was never shown.
    missed: Option<String>,
}

impl AlarmSample {
    async fn run(self) -> SampleResult {
        let mut out = SampleResult { spike: LoadStats::default(), acks: LoadStats::default(), latency: None, missed: None };
        let mut previous = self.lock.lock().await;
        // A reused chair: the calm readings after the acknowledgement clear the latch.
        if let Some(acked) = *previous {
            tokio::time::sleep_until(acked + Duration::from_secs(3)).await;
        }
        let known: Vec<String> = {
            let s = self.board.state.lock().expect("board state");
            s.sbp_above.get(&self.chair.chair).map(|v| v.iter().map(|(id, _)| id.clone()).collect()).unwrap_or_default()
        };
        let mut rx = self.board.events.subscribe();
        let mut stream = match TcpStream::connect(self.mllp).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                Some(s)
            }
            Err(_) => None,
        };
        let readings = hl7_readings(&[("systolic", ALARM_SYSTOLIC), ("diastolic", 80)]);
        let t0 = Instant::now();
        send_oru(&mut out.spike, &mut stream, self.mllp, &self.chair, &format!("ALARM-{}", self.k), &readings).await;
        let deadline = t0 + ALARM_TIMEOUT;
        let seen = loop {
            let found = {
                let s = self.board.state.lock().expect("board state");
                s.sbp_above.get(&self.chair.chair).and_then(|v| v.iter().find(|(id, _)| !known.contains(id)).map(|(_, at)| *at))
            };
            if let Some(at) = found {
                break Some(at);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => break None,
            }
        };
        out.latency = seen.map(|at| at.saturating_duration_since(t0));
        if seen.is_none() {
            out.missed = Some(format!(
                "ALARM-{}: the board did not show sbp_above on {} within {} s",
                self.k,
                self.chair.chair,
                ALARM_TIMEOUT.as_secs()
            ));
        }
        // Acknowledge every live alarm of the chair (sbp_above and the sbp_rise it brings).
        let live = { self.board.state.lock().expect("board state").live.get(&self.chair.chair).cloned() };
        if let Some((session, alarms)) = live {
            for a in alarms {
                let url = format!("{}/api/sessions/{session}/alarms/{a}/acknowledge", self.base);
                let t = Instant::now();
                out.acks.sent += 1;
                match self.http.post(&url).bearer_auth(&self.bearer).json(&serde_json::json!({"action": "bench ack"})).send().await {
                    Ok(r) if r.status() == reqwest::StatusCode::OK => {
                        out.acks.ok += 1;
                        out.acks.latency.push(t.elapsed());
                    }
                    Ok(r) => {
                        let status = r.status();
                        let text = r.text().await.unwrap_or_default();
                        out.acks.error(format!("acknowledge {a} on {}: {status}: {text}", self.chair.chair));
                    }
                    Err(e) => out.acks.error(format!("acknowledge {a} on {}: {e}", self.chair.chair)),
                }
            }
        }
        *previous = Some(Instant::now());
        out
    }
}
