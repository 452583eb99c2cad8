//! `ketacare synth`: fills an empty database with a synthetic cohort for benchmarks and load
//! tests: adults with treatment-resistant generalised anxiety, social anxiety or a phobia, each
//! with a screening visit, a ketamine course (three to eight sessions with checked dose orders,
//! session rows, events, vital-sign readings and, in some sessions, an adverse event), rating
//! scales before, during and after the course, and follow-up visits.
//!
//! Every record is a valid domain record, built through the domain's own constructors and
//! calculators (diagnoses from the catalogue, doses by the drug library's calculator, answers
//! scored by each instrument's definition) and encoded by `ketacare_db::codec` exactly as the
//! store encodes it, so the application reads it back like anything typed in.
//!
//! **Audit.** To load 100,000 patients in minutes the rows are written with multi-row INSERTs,
//! 1,000 patients per transaction by default, straight through the backend's pool. This bypasses
//! the store's one-audit-row-per-call path, which is acceptable only because the data is
//! synthetic: each transaction writes one audit row (entity `SyntheticCohort`) saying which
//! synthetic patients it loaded. Never point this command at a clinic's database; it refuses a
//! database that already holds patients. Each batch is all or nothing; when a batch fails, the
//! batches before it stay and the command says so (load again into a new database).
//!
//! The synthetic staff (four prescribers and six nurses, `synth-prescriber-1` …) are created
//! through the application (audited) and deactivated at once: they author the records, nobody
//! logs in with them.
//!
//! **Determinism.** The same seed and end date give the same cohort (patient, record and session
//! ids, names, dates, answers and values); only the ids of the synthetic staff accounts differ
//! between runs. Each patient draws from their own random stream (SplitMix64, written out here
//! so the cohort does not change with a library's version), so batches are generated in parallel
//! with the writes without changing the result.
//!
//! The numbers below that shape the cohort (shares, ranges, severities) are parameters of the
//! synthetic data, not clinical rules; every clinical limit the data must respect (alarm and gate
//! limits, discharge criteria, response rules, dose limits) is read from the knowledge files.

use anyhow::{bail, ensure, Context};
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use ketacare::Config;
use ketacare_app::{App, NewUserInput, SystemClock};
use ketacare_db::__sqlx as sqlx;
use ketacare_db::__uuid::Uuid;
use ketacare_db::codec;
use ketacare_db::{AuditCtx, Store};
use ketacare_domain::access::Role;
use ketacare_domain::assessment::{Assessment, FilledBy};
use ketacare_domain::audit::{Actor, AuditAction, AuditOutcome};
use ketacare_domain::coding::{loinc, CodeSystem, Coding};
use ketacare_domain::dose::{calculate, DoseInput, EvaluationOutcome, Protocol, Route};
use ketacare_domain::ids::{PatientId, RecordId, UserId, VersionId};
use ketacare_domain::instrument::Instrument;
use ketacare_domain::order::{DoseOrderRecord, DoubleCheck, OrderStatus, PlanSession, TreatmentPlanRecord};
use ketacare_domain::patient::{DemographicsInput, Sex};
use ketacare_domain::record::{
    ClinicalRecord, DiagnosisChoice, DiagnosisInput, Encounter, EncounterKind, Medication, Observation, ObservationValue, PatientVersion,
    Provenance, Reason, RecordVersion, UcumUnit, VersionAction,
};
use ketacare_domain::screening::{PriorTreatment, PriorTreatmentRecord, TreatmentKind};
use ketacare_domain::session::{AdverseEventInput, Phase, SessionRules, Step, Vital};
use ketacare_knowledge::dosing::DrugLibrary;
use ketacare_knowledge::Knowledge;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Instant;

/// Options of `ketacare synth`.
#[derive(clap::Args)]
pub struct SynthArgs {
    /// Number of synthetic patients (1 to 1,000,000).
    #[arg(long)]
    pub patients: u32,
    /// Seed of the generator: the same seed and end date give the same cohort.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Last day of the cohort's history, YYYY-MM-DD (default: today, UTC).
    #[arg(long)]
    pub end: Option<String>,
    /// Patients per transaction (10 to 5,000).
    #[arg(long, default_value_t = 1000)]
    pub batch: u32,
}

/// Most patients one run loads.
const MAX_PATIENTS: u32 = 1_000_000;
/// Batch size bounds.
const BATCH_RANGE: std::ops::RangeInclusive<u32> = 10..=5_000;
/// Bind parameters per statement: below SQLite's 32,766 and PostgreSQL's 65,535.
const MAX_PARAMS: usize = 30_000;
/// Display name and username prefix of the synthetic staff.
const STAFF_PREFIX: &str = "synth";

/// Runs `ketacare synth`.
pub async fn run(config: &Config, args: &SynthArgs) -> anyhow::Result<()> {
    ensure!((1..=MAX_PATIENTS).contains(&args.patients), "--patients must be from 1 to {MAX_PATIENTS} (got {})", args.patients);
    ensure!(
        BATCH_RANGE.contains(&args.batch),
        "--batch must be from {} to {} patients per transaction (got {})",
        BATCH_RANGE.start(),
        BATCH_RANGE.end(),
        args.batch
    );
    let end = match args.end.as_deref() {
        None => Utc::now().date_naive(),
        Some(s) => {
            NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| anyhow::anyhow!("--end must be a date such as 2026-12-01"))?
        }
    };
    // The database is the configured one, or the global --database-url.
    let target = Target::open(&config.database_url, config.database_key()?.as_ref()).await?;
    let store = target.store();
    store.migrate().await.context("applying database migrations")?;
    let existing = store.count_patients().await?;
    if existing > 0 {
        bail!(
            "the database already holds {existing} patients; ketacare synth fills an empty database only (synthetic data must never mix with a clinic's records): name a new one with --database-url"
        );
    }
    let app = ketacare::build_app(store.clone(), config, Arc::new(SystemClock))?;
    let staff = Staff::ensure(&app).await?;
    let setup = Arc::new(Setup::new(&app, staff, end, args.seed).await?);
    let started = Instant::now();
    let total = args.patients;
    let batch = args.batch;
    let batches = total.div_ceil(batch);
    let mut counts = Counts::default();
    let generate = |b: u32| {
        let setup = setup.clone();
        tokio::task::spawn_blocking(move || {
            let from = b * batch;
            let to = (from + batch).min(total);
            let mut rows = Batch::default();
            for i in from..to {
                setup.patient(i, &mut rows)?;
            }
            Ok::<_, anyhow::Error>((from, to, rows))
        })
    };
    let mut writer = target.writer().await?;
    let mut next = Some(generate(0));
    for b in 0..batches {
        let Some(job) = next.take() else { break };
        let (from, to, rows) = job.await.context("generating a batch")??;
        if b + 1 < batches {
            next = Some(generate(b + 1));
        }
        let detail = format!(
            "synthetic cohort loaded: patients {}-{} of {total} (seed {}); bulk write without per-record audit rows",
            from + 1,
            to,
            args.seed
        );
        writer.write(&rows, &setup.audit_ctx(), &detail).await.with_context(|| {
            format!(
                "writing synthetic patients {}-{to} (nothing of this batch was written; the {from} patients of the batches before it stay: load again into a new database)",
                from + 1
            )
        })?;
        counts.add(&rows);
        let secs = started.elapsed().as_secs_f64().max(0.001);
        let rate = f64::from(to) / secs;
        let left = f64::from(total - to) / rate.max(0.001);
        eprint!(
            "\rsynth: {to} / {total} patients ({:.1} %), {rate:.0} patients/s, {left:.0} s left   ",
            f64::from(to) * 100.0 / f64::from(total)
        );
        let _ = std::io::stderr().flush();
    }
    eprintln!();
    writer.close().await?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "Loaded {} synthetic patients into {} in {secs:.1} s ({:.0} patients/s): {} record versions, {} treatment sessions, {} session events, {} readings, {} dose evaluations.",
        counts.patients,
        store.backend(),
        f64::from(total) / secs.max(0.001),
        counts.records,
        counts.sessions,
        counts.events,
        counts.readings,
        counts.evaluations
    );
    println!("Records are authored by the synthetic staff accounts {STAFF_PREFIX}-*, which are deactivated: nobody logs in with them.");
    store.close().await;
    Ok(())
}

// ------------------------------------------------------------------ the database

/// The database being filled: the concrete backend (for its pool) and the store over it.
enum Target {
    Sqlite(sqlx::SqlitePool, Arc<dyn Store>),
    Postgres(sqlx::PgPool, Arc<dyn Store>),
}

impl Target {
    async fn open(url: &str, key: Option<&ketacare_db_sqlite::DatabaseKey>) -> anyhow::Result<Self> {
        if url.starts_with("sqlite:") {
            let s =
                ketacare_db_sqlite::SqliteStore::open_keyed(url, key).await.with_context(|| format!("opening SQLite database {url}"))?;
            Ok(Target::Sqlite(s.pool().clone(), Arc::new(s)))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let s = ketacare_db_postgres::PgStore::open(url)
                .await
                .with_context(|| format!("opening PostgreSQL database {}", ketacare::redact_url(url)))?;
            Ok(Target::Postgres(s.pool().clone(), Arc::new(s)))
        } else {
            bail!("--database-url must start with sqlite:// or postgres:// (got {})", ketacare::redact_url(url))
        }
    }

    fn store(&self) -> Arc<dyn Store> {
        match self {
            Target::Sqlite(_, s) | Target::Postgres(_, s) => s.clone(),
        }
    }

    /// One connection for the whole load, opened with the store's own options (so its
    /// durability settings hold) but without statement logging: a multi-row INSERT is long,
    /// and logging it as a slow statement would flood the log. SQLite also gets a large page
    /// cache, so the indexes' pages stay in memory between batches.
    async fn writer(&self) -> anyhow::Result<Writer> {
        use sqlx::ConnectOptions as _;
        Ok(match self {
            Target::Sqlite(pool, _) => {
                let mut c = pool.connect_options().as_ref().clone().disable_statement_logging().connect().await?;
                sqlx::query(SQLITE_CACHE_PRAGMA).execute(&mut c).await?;
                Writer::Sqlite(c)
            }
            Target::Postgres(pool, _) => {
                Writer::Postgres(pool.connect_options().as_ref().clone().disable_statement_logging().connect().await?)
            }
        })
    }
}

/// Page cache of the loading connection: 256 MiB (a negative size is in KiB).
const SQLITE_CACHE_PRAGMA: &str = "PRAGMA cache_size = -262144";

/// The connection that writes the batches.
enum Writer {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Writer {
    /// Closes the connection.
    async fn close(self) -> anyhow::Result<()> {
        use sqlx::Connection as _;
        match self {
            Writer::Sqlite(c) => c.close().await?,
            Writer::Postgres(c) => c.close().await?,
        }
        Ok(())
    }

    /// Writes one batch and its audit row in one transaction.
    async fn write(&mut self, rows: &Batch, ctx: &AuditCtx, detail: &str) -> anyhow::Result<()> {
        use sqlx::Connection as _;
        let audit = ketacare_db::sql::event(
            ctx,
            AuditAction::Create,
            AuditOutcome::Success,
            "SyntheticCohort",
            None,
            None,
            Some(detail.to_owned()),
        );
        match self {
            Writer::Sqlite(c) => {
                let mut tx = c.begin_with("BEGIN IMMEDIATE").await?;
                for t in rows.tables() {
                    insert_sqlite(&mut tx, t).await?;
                }
                audit_sqlite(&mut tx, &audit).await?;
                tx.commit().await?;
            }
            Writer::Postgres(c) => {
                let mut tx = c.begin().await?;
                for t in rows.tables() {
                    insert_postgres(&mut tx, t).await?;
                }
                audit_postgres(&mut tx, &audit).await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }
}

/// One column value.
enum Val {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
}

/// Rows of one table, flattened.
struct Table {
    name: &'static str,
    cols: &'static [&'static str],
    vals: Vec<Val>,
}

impl Table {
    fn new(name: &'static str, cols: &'static [&'static str]) -> Self {
        Self { name, cols, vals: Vec::new() }
    }
    fn push(&mut self, row: Vec<Val>) {
        debug_assert_eq!(row.len(), self.cols.len());
        self.vals.extend(row);
    }
    fn rows(&self) -> usize {
        self.vals.len() / self.cols.len()
    }
}

/// Generates the multi-row insert of a table for one backend, in chunks under the parameter limit.
macro_rules! bulk_insert {
    ($insert:ident, $audit:ident, $db:ty) => {
        async fn $insert(tx: &mut sqlx::Transaction<'_, $db>, t: &Table) -> anyhow::Result<()> {
            let width = t.cols.len();
            let per = (MAX_PARAMS / width).max(1);
            for chunk in t.vals.chunks(per * width) {
                let mut q = sqlx::QueryBuilder::<$db>::new(format!("INSERT INTO {} ({}) ", t.name, t.cols.join(", ")));
                q.push_values(chunk.chunks(width), |mut b, row| {
                    for v in row {
                        match v {
                            Val::Text(s) => b.push_bind(s.clone()),
                            Val::OptText(s) => b.push_bind(s.clone()),
                            Val::Int(i) => b.push_bind(*i),
                            Val::OptInt(i) => b.push_bind(*i),
                        };
                    }
                });
                q.build().execute(&mut **tx).await.with_context(|| format!("inserting into {}", t.name))?;
            }
            Ok(())
        }

        async fn $audit(tx: &mut sqlx::Transaction<'_, $db>, e: &ketacare_domain::audit::AuditEvent) -> anyhow::Result<()> {
            sqlx::query(ketacare_db::sql::INSERT_AUDIT)
                .bind(codec::ts(e.recorded_at))
                .bind(e.actor.user_id.map(|u| u.to_string()))
                .bind(e.actor.username.clone())
                .bind(e.actor.role.map(|r| r.code().to_owned()))
                .bind(e.actor.session_ref.clone())
                .bind(e.actor.client_addr.clone())
                .bind(e.action.code())
                .bind(e.outcome.code())
                .bind(e.entity_type.clone())
                .bind(e.entity_id.clone())
                .bind(e.patient_id.map(|p| p.to_string()))
                .bind(e.detail.clone())
                .execute(&mut **tx)
                .await
                .context("writing the audit row of the batch")?;
            Ok(())
        }
    };
}

bulk_insert!(insert_sqlite, audit_sqlite, sqlx::Sqlite);
bulk_insert!(insert_postgres, audit_postgres, sqlx::Postgres);

/// The rows of one batch, table by table, in an order the foreign keys accept.
struct Batch {
    patients: Table,
    mrns: Table,
    patient_versions: Table,
    records: Table,
    /// Later versions (the double-checked orders), written after the versions they supersede.
    amendments: Table,
    sessions: Table,
    events: Table,
    readings: Table,
    evaluations: Table,
}

const RECORD_COLS: &[&str] = &[
    "version_id",
    "record_id",
    "version",
    "supersedes",
    "patient_id",
    "kind",
    "action",
    "body",
    "reason",
    "recorded_by",
    "recorded_by_name",
    "recorded_at",
];

impl Default for Batch {
    fn default() -> Self {
        Self {
            patients: Table::new("patients", &["id", "created_at", "created_by"]),
            mrns: Table::new("patient_mrns", &["mrn", "patient_id"]),
            patient_versions: Table::new(
                "patient_versions",
                &[
                    "version_id",
                    "patient_id",
                    "version",
                    "action",
                    "mrn",
                    "family_name",
                    "given_name",
                    "date_of_birth",
                    "sex",
                    "contact",
                    "reason",
                    "recorded_by",
                    "recorded_by_name",
                    "recorded_at",
                ],
            ),
            records: Table::new("record_versions", RECORD_COLS),
            amendments: Table::new("record_versions", RECORD_COLS),
            sessions: Table::new(
                "treatment_sessions",
                &[
                    "id",
                    "patient_id",
                    "chair",
                    "device_id",
                    "order_id",
                    "phase",
                    "active",
                    "seq",
                    "created_at",
                    "created_by",
                    "created_by_name",
                    "bound_at",
                    "baseline_sbp",
                    "baseline_dbp",
                    "dose_started_at",
                    "dose_ended_at",
                    "signed_at",
                    "signed_by_name",
                    "scheduled_at",
                ],
            ),
            events: Table::new(
                "session_events",
                &["id", "session_id", "seq", "kind", "at", "user_id", "by_name", "phase", "detail", "reason"],
            ),
            readings: Table::new(
                "session_readings",
                &[
                    "id",
                    "session_id",
                    "patient_id",
                    "vital",
                    "value",
                    "observed_at",
                    "received_at",
                    "source",
                    "device_id",
                    "message_id",
                    "recorded_by_name",
                ],
            ),
            evaluations: Table::new(
                "dose_evaluations",
                &[
                    "id",
                    "at",
                    "user_id",
                    "username",
                    "patient_id",
                    "order_id",
                    "drug",
                    "route",
                    "dose_mg",
                    "mg_per_kg",
                    "outcome",
                    "breaches",
                    "reason",
                    "second_username",
                ],
            ),
        }
    }
}

impl Batch {
    fn tables(&self) -> [&Table; 9] {
        [
            &self.patients,
            &self.mrns,
            &self.patient_versions,
            &self.records,
            &self.amendments,
            &self.sessions,
            &self.events,
            &self.readings,
            &self.evaluations,
        ]
    }

    fn patient(&mut self, v: &PatientVersion) {
        let d = &v.demographics;
        let at = codec::ts(v.provenance.recorded_at);
        self.patients.push(vec![Val::Text(v.patient_id.to_string()), Val::Text(at.clone()), Val::Text(v.provenance.user_id.to_string())]);
        self.mrns.push(vec![Val::Text(d.mrn.as_str().to_owned()), Val::Text(v.patient_id.to_string())]);
        self.patient_versions.push(vec![
            Val::Text(v.version_id.to_string()),
            Val::Text(v.patient_id.to_string()),
            Val::Int(i64::from(v.version)),
            Val::Text(v.action.code().to_owned()),
            Val::Text(d.mrn.as_str().to_owned()),
            Val::Text(d.name.family().to_owned()),
            Val::Text(d.name.given().to_owned()),
            Val::Text(d.date_of_birth.date().format("%Y-%m-%d").to_string()),
            Val::Text(d.sex.code().to_owned()),
            Val::Text(codec::encode_contact(d)),
            Val::OptText(v.reason.as_ref().map(|r| r.as_str().to_owned())),
            Val::Text(v.provenance.user_id.to_string()),
            Val::Text(v.provenance.username.clone()),
            Val::Text(at),
        ]);
    }

    fn record(&mut self, v: &RecordVersion) {
        let row = vec![
            Val::Text(v.version_id.to_string()),
            Val::Text(v.record_id.to_string()),
            Val::Int(i64::from(v.version)),
            Val::OptText(v.supersedes.map(|s| s.to_string())),
            Val::Text(v.patient_id.to_string()),
            Val::Text(v.record.kind().code().to_owned()),
            Val::Text(v.action.code().to_owned()),
            Val::Text(codec::encode_record(&v.record)),
            Val::OptText(v.reason.as_ref().map(|r| r.as_str().to_owned())),
            Val::Text(v.provenance.user_id.to_string()),
            Val::Text(v.provenance.username.clone()),
            Val::Text(codec::ts(v.provenance.recorded_at)),
        ];
        if v.version == 1 {
            self.records.push(row);
        } else {
            self.amendments.push(row);
        }
    }
}

/// What was loaded.
#[derive(Default)]
struct Counts {
    patients: usize,
    records: usize,
    sessions: usize,
    events: usize,
    readings: usize,
    evaluations: usize,
}

impl Counts {
    fn add(&mut self, b: &Batch) {
        self.patients += b.patients.rows();
        self.records += b.records.rows() + b.amendments.rows();
        self.sessions += b.sessions.rows();
        self.events += b.events.rows();
        self.readings += b.readings.rows();
        self.evaluations += b.evaluations.rows();
    }
}

// ------------------------------------------------------------------ randomness

/// SplitMix64 (Steele, Lea and Flood 2014): a small generator whose output never changes with
/// a library's version, so a seed always gives the same cohort.
struct Rng(u64);

impl Rng {
    /// The stream of one patient: independent of every other patient's.
    fn for_patient(seed: u64, index: u32) -> Self {
        let mut r = Rng(seed ^ 0x5851_F42D_4C95_7F2D);
        let a = r.next_u64();
        let mut r = Rng(a ^ u64::from(index).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        r.next_u64();
        r
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform integer in `lo..=hi`.
    fn int(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        let span = u64::try_from(hi - lo).unwrap_or(0).saturating_add(1);
        lo + i64::try_from(self.next_u64() % span).unwrap_or(0)
    }
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    /// Normal by Box–Muller.
    fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        let u1 = self.unit().max(f64::MIN_POSITIVE);
        let u2 = self.unit();
        mean + sd * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        let n = i64::try_from(xs.len()).unwrap_or(1);
        &xs[usize::try_from(self.int(0, n - 1)).unwrap_or(0)]
    }
    /// A random (version 4) UUID from this stream.
    fn uuid(&mut self) -> Uuid {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        b[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        ketacare_db::__uuid::Builder::from_random_bytes(b).into_uuid()
    }
}

// ------------------------------------------------------------------ the synthetic staff

/// One account that authors synthetic records.
#[derive(Clone)]
struct Member {
    id: UserId,
    username: String,
    display: String,
}

/// The synthetic staff: prescribers, nurses and the medical director.
struct Staff {
    prescribers: Vec<Member>,
    nurses: Vec<Member>,
}

const PRESCRIBERS: [&str; 4] = ["Dr Ava Lindqvist", "Dr Jonah Okafor", "Dr Mei Tanaka", "Dr Rafael Duarte"];
const NURSES: [&str; 6] = ["Iris Mbeki, RN", "Tom Keller, RN", "Nadia Haddad, RN", "Owen Price, RN", "Lucía Romero, RN", "Ken Sato, RN"];

impl Staff {
    /// Creates the accounts through the application (audited) unless they exist, then
    /// deactivates them: they author synthetic records, nobody logs in with them.
    async fn ensure(app: &App) -> anyhow::Result<Self> {
        let mut prescribers = Vec::new();
        let mut nurses = Vec::new();
        let wanted = PRESCRIBERS
            .iter()
            .enumerate()
            .map(|(i, n)| (Role::Prescriber, format!("{STAFF_PREFIX}-prescriber-{}", i + 1), *n))
            .chain(NURSES.iter().enumerate().map(|(i, n)| (Role::Nurse, format!("{STAFF_PREFIX}-nurse-{}", i + 1), *n)));
        for (role, username, display) in wanted {
            let user = match app.store().find_user_by_username(&username).await? {
                Some((u, _)) => u,
                None => {
                    let input = NewUserInput {
                        username: username.clone(),
                        display_name: display.to_owned(),
                        role: role.code().to_owned(),
                        password: unusable_password(),
                    };
                    let u = app
                        .create_user_as_system(&input)
                        .await
                        .map_err(|e| anyhow::anyhow!("creating the synthetic account {username}: {e}"))?;
                    let ctx = AuditCtx {
                        actor: Actor {
                            user_id: None,
                            username: "cli".into(),
                            role: None,
                            session_ref: Some("cli".into()),
                            client_addr: None,
                        },
                        at: Utc::now(),
                        purpose: "operations",
                    };
                    app.store().set_user_active(&ctx, u.id, false).await?;
                    u
                }
            };
            let m = Member { id: user.id, username: user.username.as_str().to_owned(), display: user.display_name.clone() };
            match role {
                Role::Prescriber => prescribers.push(m),
                _ => nurses.push(m),
            }
        }
        Ok(Self { prescribers, nurses })
    }
}

/// A password nobody knows (the accounts are deactivated at once; it is never shown): 256 bits
/// from the operating system's randomness behind the standard library's hasher keys.
fn unusable_password() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::new();
    for i in 0..4u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(i);
        h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

// ------------------------------------------------------------------ the cohort's shape

/// Share of patients who respond (a reduction meeting the primary scale's response rule).
const RESPONDER_SHARE: f64 = 0.5;
/// Share of responders who relapse at a later rating.
const RELAPSE_SHARE: f64 = 0.45;
/// Share of courses given as the IV induction series (the rest SC ascending doses).
const IV_SHARE: f64 = 0.2;
/// Share of SC responders who go on to weekly maintenance, and how many sessions.
const MAINTENANCE_SHARE: f64 = 0.6;
const MAINTENANCE_SESSIONS: (i64, i64) = (1, 5);
/// Diagnoses: share with each anxiety disorder (everyone has at least one).
const SAD_SHARE: f64 = 0.4;
const PHOBIA_SHARE: f64 = 0.15;
const GAD_SHARE: f64 = 0.7;
const DEPRESSION_SHARE: f64 = 0.35;
const BENZODIAZEPINE_SHARE: f64 = 0.25;
const BIOMARKER_SHARE: f64 = 0.4;
const ADVERSE_EVENT_SHARE: f64 = 0.1;
/// Share of patients aged 90 to 95 at screening (the rest 18 to 89).
const OLDEST_SHARE: f64 = 0.02;
/// Screening falls between these many days before the end date.
const SCREENING_DAYS_BEFORE_END: (i64, i64) = (75, 1095);
/// Days from screening to the treatment plan, and to the first dose.
const PLAN_AFTER_SCREENING_DAYS: i64 = 7;
const FIRST_DOSE_AFTER_SCREENING_DAYS: (i64, i64) = (14, 35);
/// Follow-up visits after the last dose (days); each happens with this probability.
const FOLLOW_UP_DAYS: [i64; 3] = [14, 42, 84];
const FOLLOW_UP_SHARE: f64 = 0.8;
/// Body size of the synthetic adults.
const HEIGHT_CM: (f64, f64) = (152.0, 196.0);
const BMI: (f64, f64) = (19.5, 32.0);
const WEIGHT_KG: (f64, f64) = (48.0, 95.0);
/// Weight drift allowed for when checking that a course fits the drug library's limits.
const WEIGHT_MARGIN: f64 = 0.05;
/// Blood pressure and heart rate at rest (mean, SD) and the rise at the peak.
const SYSTOLIC: (f64, f64) = (122.0, 9.0);
const DIASTOLIC: (f64, f64) = (77.0, 6.0);
const HEART_RATE: (f64, f64) = (72.0, 8.0);
const SYSTOLIC_FLOOR: f64 = 100.0;
const DIASTOLIC_FLOOR: f64 = 60.0;
const SPO2: (i64, i64) = (95, 99);
/// Minutes of the session day: check-in after the booked time, checks, dose, peak, recovery.
const DOSE_AFTER_START_MIN: i64 = 30;
const PEAK_AFTER_DOSE_MIN: i64 = 35;
const RECOVERY_AFTER_DOSE_END_MIN: i64 = 60;
const DISCHARGE_MARGIN_MIN: i64 = 5;
/// Booked session times (UTC) and chairs.
const SLOTS: [(u32, u32); 4] = [(8, 30), (11, 0), (13, 30), (16, 0)];
const CHAIRS: u32 = 6;
/// Vial concentrations chosen from the shelf: SC undiluted, IV diluted to a final volume.
const SC_CONCENTRATION: &str = "50";
const IV_CONCENTRATION: &str = "10";
const IV_FINAL_VOLUME_ML: &str = "100";
/// Margin (percentage points) kept between responders' and non-responders' reductions and the
/// scale's response threshold, so both readings of the rule agree.
const RESPONSE_MARGIN: f64 = 5.0;
/// Injection sites.
const SITES: [&str; 4] = ["abdomen, left lower quadrant", "abdomen, right lower quadrant", "left upper arm", "right upper arm"];
/// Adverse events a session may have (kinds of the domain's list whose vital signs the
/// synthetic readings do not contradict).
const ADVERSE_EVENTS: [(&str, &str); 7] = [
    ("nausea", "treated"),
    ("dizziness", "none"),
    ("headache", "treated"),
    ("dissociation", "none"),
    ("vomiting", "treated"),
    ("blurred_vision", "none"),
    ("anxiety", "none"),
];
const FEMALE_GIVEN: [&str; 16] = [
    "Amara", "Siobhan", "Mei", "Priya", "Fatima", "Ingrid", "Lucía", "Yuki", "Ngozi", "Olga", "Hannah", "Zainab", "Marta", "Rosa", "Keiko",
    "Freya",
];
const MALE_GIVEN: [&str; 16] = [
    "Kwame", "Mateus", "Arjun", "Tomasz", "Hiroshi", "Oliver", "Diego", "Yusuf", "Emeka", "Lars", "Rafael", "Samir", "Callum", "Tariq",
    "Kofi", "Finn",
];
const NEUTRAL_GIVEN: [&str; 6] = ["Alex", "Robin", "Sasha", "Jordan", "Kai", "Rowan"];
const FAMILY: [&str; 24] = [
    "Okonkwo",
    "Lindqvist",
    "Tanaka",
    "Fernández",
    "Kowalski",
    "Nakamura",
    "Haddad",
    "Brennan",
    "Achterberg",
    "Moreau",
    "Silva",
    "Novak",
    "Hughes",
    "Adeyemi",
    "Petrov",
    "Larsen",
    "Quintero",
    "O'Sullivan",
    "Mensah",
    "Rossi",
    "Bergström",
    "Dubois",
    "Khan",
    "Whitaker",
];
/// Failed adequate trials before referral: medicine, RxNorm ingredient, dose.
const PRIOR_TRIALS: [(&str, &str, &str); 6] = [
    ("Sertraline", "36437", "150 mg once daily"),
    ("Escitalopram", "321988", "20 mg once daily"),
    ("Venlafaxine", "39786", "150 mg once daily (modified release)"),
    ("Duloxetine", "72625", "60 mg once daily"),
    ("Pregabalin", "187832", "150 mg twice daily"),
    ("Paroxetine", "32937", "30 mg once daily"),
];
/// Diazepam itself (RxNorm 3322, as in the screening knowledge), so the dose is its own
/// diazepam equivalent: mg per dose and doses a day.
const DIAZEPAM: (&str, &str) = ("Diazepam", "3322");
const DIAZEPAM_DOSES: [(i64, i64); 4] = [(2, 2), (5, 1), (5, 2), (10, 2)];

/// A session of the course as generated.
struct SessionPlan {
    plan: usize,
    step: String,
    date: NaiveDate,
    mg_per_kg: Decimal,
    minutes: Option<u32>,
    route: Route,
    assessments: Vec<(String, String)>,
}

/// Everything that does not change from patient to patient.
struct Setup {
    seed: u64,
    end: DateTime<Utc>,
    end_date: NaiveDate,
    staff: Staff,
    instruments: Vec<Instrument>,
    diagnoses: Vec<DiagnosisChoice>,
    protocols: Vec<Protocol>,
    library: DrugLibrary,
    weight_range: (Decimal, Decimal),
    age_limits: (u32, u32),
    session: SessionRules,
    /// Offsets of the rating time points from the session start, minutes.
    timepoints: Vec<(String, i64)>,
    /// (system, code, label, unit) of the research covariates.
    depression: (String, String, String),
    benzodiazepine: (String, String, String, String),
    bdnf: (String, String, String, String),
    drug: String,
    run_at: DateTime<Utc>,
}

fn covariate(k: &Knowledge, key: &str) -> anyhow::Result<(String, String, String, Option<String>)> {
    let c = k
        .research
        .covariates
        .iter()
        .find(|c| c.key == key)
        .with_context(|| format!("knowledge/research.toml has no covariate {key}, which the synthetic cohort records"))?;
    Ok((c.system.clone(), c.code.clone(), c.label.clone(), c.unit.clone()))
}

impl Setup {
    async fn new(app: &App, staff: Staff, end: NaiveDate, seed: u64) -> anyhow::Result<Self> {
        let k = app.knowledge();
        for key in ["hama", "gad7", "phq9", "lsas", "fq", "sds", "qlesq_sf", "cadss", "moaas"] {
            ensure!(k.instrument(key).is_some(), "the synthetic cohort needs the instrument {key}");
        }
        let protocols = app.protocols_in_force().await.map_err(|e| anyhow::anyhow!("reading the protocols: {e}"))?;
        for key in ["sc_ascending", "sc_maintenance", "iv_induction"] {
            ensure!(protocols.iter().any(|p| p.key == key), "the synthetic cohort needs the protocol {key}");
        }
        let library = app.drug_library_in_force().await.map_err(|e| anyhow::anyhow!("reading the drug library: {e}"))?;
        let (ds, dc, dl, _) = covariate(k, "comorbid_depression")?;
        let (bs, bc, bl, bu) = covariate(k, "benzodiazepine_mg")?;
        let (ms, mc, ml, mu) = covariate(k, "bdnf")?;
        Ok(Self {
            seed,
            end: Utc.from_utc_datetime(&end.and_time(NaiveTime::from_hms_opt(23, 59, 0).unwrap_or_default())),
            end_date: end,
            staff,
            instruments: k.instruments.clone(),
            diagnoses: k.diagnoses.clone(),
            protocols,
            library,
            weight_range: (k.anthropometry.weight_min_kg, k.anthropometry.weight_max_kg),
            age_limits: (k.age_limits.minimum_years, k.age_limits.maximum_years),
            session: k.session.clone(),
            timepoints: k.assessment_timing.timepoints.iter().map(|t| (t.key.clone(), t.offset_minutes)).collect(),
            depression: (ds, dc, dl),
            benzodiazepine: (bs, bc, bl, bu.unwrap_or_else(|| "mg/d".into())),
            bdnf: (ms, mc, ml, mu.unwrap_or_else(|| "ng/mL".into())),
            drug: k.drug_library.drug.clone(),
            run_at: Utc::now(),
        })
    }

    fn audit_ctx(&self) -> AuditCtx {
        AuditCtx {
            actor: Actor { user_id: None, username: "cli".into(), role: None, session_ref: Some("cli".into()), client_addr: None },
            at: Utc::now().max(self.run_at),
            purpose: "operations",
        }
    }

    fn instrument(&self, key: &str) -> anyhow::Result<&Instrument> {
        self.instruments.iter().find(|i| i.key == key).with_context(|| format!("no instrument {key}"))
    }

    fn protocol(&self, key: &str) -> anyhow::Result<&Protocol> {
        self.protocols.iter().find(|p| p.key == key).with_context(|| format!("no protocol {key}"))
    }

    fn offset(&self, timepoint: &str) -> i64 {
        self.timepoints.iter().find(|(k, _)| k == timepoint).map(|(_, m)| *m).unwrap_or(0)
    }

    /// Generates one patient into `out`.
    fn patient(&self, index: u32, out: &mut Batch) -> anyhow::Result<()> {
        let mut g = PatientGen::new(self, index);
        g.generate(out)
    }
}

fn dec(x: f64, dp: u32) -> Decimal {
    Decimal::from_f64_retain(x).unwrap_or_default().round_dp(dp).normalize()
}

fn at(d: NaiveDate, h: u32, m: u32) -> DateTime<Utc> {
    Utc.from_utc_datetime(&d.and_time(NaiveTime::from_hms_opt(h, m, 0).unwrap_or_default()))
}

fn reason(text: &str) -> anyhow::Result<Reason> {
    Reason::parse(text).map_err(|e| anyhow::anyhow!("reason: {e}"))
}

fn f64_of(d: Decimal) -> f64 {
    d.to_f64().unwrap_or(0.0)
}

/// The primary scale's state at one rating after the first dose.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not (yet) responding.
    NotResponding,
    /// Meeting the response rule.
    Responding,
    /// No longer meeting it after a response.
    Relapsed,
}

/// Events of one session, in time order, before they are numbered.
struct Ev {
    at: DateTime<Utc>,
    kind: &'static str,
    step: Option<Step>,
    detail: String,
}

/// One patient being generated.
struct PatientGen<'a> {
    s: &'a Setup,
    index: u32,
    rng: Rng,
    patient: PatientId,
    prescriber: Member,
    nurse: Member,
    sex: Sex,
    /// Baseline totals by instrument.
    baseline: Vec<(&'static str, i64)>,
    /// Item weights by instrument, so a patient keeps an item profile.
    weights: Vec<(String, Vec<f64>)>,
    /// Index (among the primary-scale ratings after the first dose) of the first response, and
    /// of the relapse.
    respond_at: Option<usize>,
    relapse_at: Option<usize>,
    /// The latest primary-scale total as a fraction of baseline.
    level: f64,
    dissociation: f64,
    height_cm: f64,
    weight_kg: f64,
    /// Double-checked doses so far: (time, mg), for the 7- and 28-day totals.
    given: Vec<(DateTime<Utc>, Decimal)>,
}

impl<'a> PatientGen<'a> {
    fn new(s: &'a Setup, index: u32) -> Self {
        let mut rng = Rng::for_patient(s.seed, index);
        let patient = PatientId::from_uuid(rng.uuid());
        let prescriber = rng.pick(&s.staff.prescribers).clone();
        let nurse = rng.pick(&s.staff.nurses).clone();
        Self {
            s,
            index,
            rng,
            patient,
            prescriber,
            nurse,
            sex: Sex::Female,
            baseline: Vec::new(),
            weights: Vec::new(),
            respond_at: None,
            relapse_at: None,
            level: 1.0,
            dissociation: 1.0,
            height_cm: 170.0,
            weight_kg: 70.0,
            given: Vec::new(),
        }
    }

    fn prov(&self, who: &Member, t: DateTime<Utc>) -> Provenance {
        Provenance { user_id: who.id, username: who.username.clone(), recorded_at: t }
    }

    fn first(&mut self, record: ClinicalRecord, who: &Member, t: DateTime<Utc>) -> RecordVersion {
        RecordVersion {
            record_id: RecordId::from_uuid(self.rng.uuid()),
            version_id: VersionId::from_uuid(self.rng.uuid()),
            version: 1,
            supersedes: None,
            patient_id: self.patient,
            action: VersionAction::Create,
            record,
            reason: None,
            provenance: self.prov(who, t),
        }
    }

    fn quantity(
        system: CodeSystem,
        code: &str,
        display: &str,
        value: Decimal,
        unit: &str,
        t: DateTime<Utc>,
    ) -> anyhow::Result<ClinicalRecord> {
        Ok(ClinicalRecord::Observation(Observation {
            code: Coding::new(system, code, display).map_err(|e| anyhow::anyhow!("{display}: {e}"))?,
            value: ObservationValue::Quantity { value, unit: UcumUnit::parse(unit).map_err(|e| anyhow::anyhow!("{unit}: {e}"))? },
            effective: t,
            acknowledged_warnings: Vec::new(),
        }))
    }

    fn covariate_system(system: &str) -> anyhow::Result<CodeSystem> {
        CodeSystem::parse(system).map_err(|e| anyhow::anyhow!("covariate code system {system}: {e}"))
    }

    /// A weight measured by the nurse (small drift between visits, inside the plausible band
    /// and the dose limits).
    fn weigh(&mut self, t: DateTime<Utc>, out: &mut Batch) -> anyhow::Result<Decimal> {
        self.weight_kg = (self.weight_kg * (1.0 + self.rng.uniform(-0.01, 0.01))).clamp(WEIGHT_KG.0, WEIGHT_KG.1);
        let kg = dec(self.weight_kg, 1);
        let r = Self::quantity(CodeSystem::Loinc, loinc::BODY_WEIGHT, "Body weight", kg, "kg", t)?;
        let nurse = self.nurse.clone();
        let v = self.first(r, &nurse, t);
        out.record(&v);
        Ok(kg)
    }

    /// Resting systolic, diastolic and heart rate, below the pre-dose gate.
    fn resting_vitals(&mut self) -> (i64, i64, i64) {
        let r = &self.s.session;
        let sbp = self.rng.normal(SYSTOLIC.0, SYSTOLIC.1).clamp(SYSTOLIC_FLOOR, f64_of(r.gate_sbp_above.value)).round() as i64;
        let dbp = self.rng.normal(DIASTOLIC.0, DIASTOLIC.1).clamp(DIASTOLIC_FLOOR, f64_of(r.gate_dbp_above.value)).round() as i64;
        let hr = self.rng.normal(HEART_RATE.0, HEART_RATE.1).clamp(f64_of(r.hr_below.value) + 8.0, f64_of(r.hr_above.value) - 30.0).round()
            as i64;
        (sbp, dbp, hr)
    }

    fn base(&self, key: &str) -> i64 {
        self.baseline.iter().find(|(k, _)| *k == key).map(|(_, v)| *v).unwrap_or(0)
    }

    /// A secondary scale's total at the current anxiety level (a fraction of baseline).
    fn follow(&mut self, key: &str, level: f64) -> anyhow::Result<i64> {
        let inst = self.s.instrument(key)?;
        let (lo, hi) = inst.total_range();
        let (lo, hi) = (f64_of(lo), f64_of(hi));
        let base = self.base(key) as f64;
        let noise = self.rng.normal(0.0, (hi - lo) * 0.03);
        let v = match inst.direction {
            ketacare_domain::instrument::Direction::HigherIsWorse => base * (0.25 + 0.75 * level) + noise,
            ketacare_domain::instrument::Direction::HigherIsBetter => base + (hi - base) * 0.8 * (1.0 - level).max(0.0) + noise,
        };
        Ok(v.round().clamp(lo, hi) as i64)
    }

    /// The primary scale (HAM-A) at the `i`-th rating after the first dose, by the patient's
    /// course: inside the response rule while responding, outside it otherwise, with a margin.
    fn primary_total(&mut self, i: usize) -> anyhow::Result<i64> {
        let state = match (self.respond_at, self.relapse_at) {
            (_, Some(l)) if i >= l => State::Relapsed,
            (Some(r), _) if i >= r => State::Responding,
            _ => State::NotResponding,
        };
        let inst = self.s.instrument("hama")?;
        let pct = inst.default_rules.response.as_ref().map(|r| f64_of(r.percent)).context("HAM-A has no response rule")?;
        let max = f64_of(inst.total_range().1);
        let base = self.base("hama") as f64;
        let responding_max = (base * (100.0 - pct - RESPONSE_MARGIN) / 100.0).floor();
        let not_responding_min = (base * (100.0 - pct + RESPONSE_MARGIN) / 100.0).ceil();
        let total = match state {
            State::Responding => (base * self.rng.uniform(0.12, 0.42)).round().min(responding_max).max(0.0),
            State::NotResponding | State::Relapsed => (base * self.rng.uniform(0.6, 0.97)).round().max(not_responding_min).min(max),
        };
        self.level = total / base.max(1.0);
        Ok(total as i64)
    }

    /// Answers of `key` whose scored items add up to `target` (as near as the items allow),
    /// scored by the instrument itself; returns the answers and the total.
    fn answers(&mut self, key: &str, target: i64) -> anyhow::Result<(Vec<Option<u32>>, i64)> {
        let inst = self.s.instrument(key)?;
        if !self.weights.iter().any(|(k, _)| k == key) {
            let w: Vec<f64> = (0..inst.items.len()).map(|_| self.rng.uniform(0.4, 1.4)).collect();
            self.weights.push((key.to_owned(), w));
        }
        let weights = self.weights.iter().find(|(k, _)| k == key).map(|(_, w)| w.clone()).unwrap_or_default();
        let mut out: Vec<Option<u32>> = vec![None; inst.items.len()];
        let mut free = Vec::new();
        let mut sum = 0i64;
        for (i, item) in inst.items.iter().enumerate() {
            // PHQ-9 item 9 (thoughts of self-harm) stays 0: the cohort raises no safety alerts.
            if key == "phq9" && item.key == "q9" {
                out[i] = Some(0);
                continue;
            }
            if item.scored {
                let lowest = item.choices().first().copied().unwrap_or(item.min);
                out[i] = Some(lowest);
                sum += i64::from(lowest);
                free.push(i);
            }
        }
        let mut remaining = target - sum;
        while remaining > 0 && !free.is_empty() {
            let total: f64 = free.iter().map(|&i| weights.get(i).copied().unwrap_or(1.0)).sum();
            let mut r = self.rng.unit() * total;
            let mut pos = free.len() - 1;
            for (p, &i) in free.iter().enumerate() {
                let w = weights.get(i).copied().unwrap_or(1.0);
                if r < w {
                    pos = p;
                    break;
                }
                r -= w;
            }
            let i = free[pos];
            let current = out[i].unwrap_or(0);
            match inst.items[i].choices().into_iter().find(|c| *c > current) {
                Some(next) if i64::from(next - current) <= remaining => {
                    out[i] = Some(next);
                    remaining -= i64::from(next - current);
                }
                _ => {
                    free.swap_remove(pos);
                }
            }
        }
        let (lo, hi) = inst.total_range();
        let (lo, hi) = (f64_of(lo), f64_of(hi));
        let position = if hi > lo { ((target as f64 - lo) / (hi - lo)).clamp(0.0, 1.0) } else { 0.5 };
        for (i, item) in inst.items.iter().enumerate() {
            if !item.scored && out[i].is_none() && !item.optional {
                let x = f64::from(item.min) + position * f64::from(item.max - item.min) + self.rng.normal(0.0, 0.7);
                let v = item
                    .choices()
                    .into_iter()
                    .min_by(|a, b| (f64::from(*a) - x).abs().total_cmp(&(f64::from(*b) - x).abs()))
                    .unwrap_or(item.min);
                out[i] = Some(v);
            }
        }
        let score = inst.score(&out, None).map_err(|e| anyhow::anyhow!("synthetic {key} answers do not score: {e}"))?;
        let total = score.total.map(|t| t.trunc().to_i64().unwrap_or(0)).unwrap_or(0);
        Ok((out, total))
    }

    /// Records an administration (clinician-rated scales by the prescriber, forms by the nurse).
    #[allow(clippy::too_many_arguments)]
    fn assessment(
        &mut self,
        key: &str,
        target: i64,
        t: DateTime<Utc>,
        session: Option<RecordId>,
        timepoint: Option<&str>,
        out: &mut Batch,
    ) -> anyhow::Result<i64> {
        let (answers, total) = self.answers(key, target)?;
        let inst = self.s.instrument(key)?;
        let a = Assessment {
            instrument: key.to_owned(),
            instrument_version: inst.version.clone(),
            answers,
            taken_at: t,
            filled_by: FilledBy::Clinician,
            session,
            timepoint: timepoint.map(str::to_owned),
            request: None,
            note: None,
        };
        let who = if matches!(key, "hama" | "lsas") { self.prescriber.clone() } else { self.nurse.clone() };
        let v = self.first(ClinicalRecord::Assessment(a), &who, t + Duration::minutes(1));
        out.record(&v);
        Ok(total)
    }

    /// Whether every dose of `protocol` stays inside the drug library's soft limits (per dose,
    /// 7 and 28 days) at this patient's weight with a margin for drift: the synthetic cohort
    /// needs no overrides.
    fn fits(&self, protocol: &Protocol, start: NaiveDate) -> bool {
        let Some(limits) = self.s.library.limits(protocol.route) else { return false };
        let Ok(plan) = TreatmentPlanRecord::from_protocol(protocol, start, None) else { return false };
        let kg = self.weight_kg * (1.0 + WEIGHT_MARGIN);
        let mg: Vec<(NaiveDate, f64)> = plan.sessions.iter().map(|x| (x.date, kg * x.mg_per_kg.map(f64_of).unwrap_or(0.0))).collect();
        let cap = |b: &ketacare_domain::dose::Band| b.max.as_ref().map(|m| f64_of(m.value)).unwrap_or(f64::INFINITY);
        mg.iter().all(|(d, dose)| {
            let within = |days: i64| mg.iter().filter(|(e, _)| *e <= *d && (*d - *e).num_days() <= days).map(|(_, x)| x).sum::<f64>();
            *dose <= cap(&limits.total_mg.soft)
                && within(7) <= cap(&limits.cumulative_7d_mg.soft)
                && within(28) <= cap(&limits.cumulative_28d_mg.soft)
        })
    }

    fn session_plan(plan: usize, protocol: &Protocol, ps: &PlanSession) -> anyhow::Result<SessionPlan> {
        let step = protocol
            .steps
            .iter()
            .find(|x| x.key == ps.step)
            .with_context(|| format!("protocol {} has no step {}", protocol.key, ps.step))?;
        Ok(SessionPlan {
            plan,
            step: ps.step.clone(),
            date: ps.date,
            mg_per_kg: ps.mg_per_kg.with_context(|| format!("protocol {} step {} is not weight-based", protocol.key, ps.step))?,
            minutes: ps.minutes,
            route: protocol.route,
            assessments: step.assessments.iter().filter_map(|a| a.split_once('@')).map(|(i, t)| (i.to_owned(), t.to_owned())).collect(),
        })
    }

    fn generate(&mut self, out: &mut Batch) -> anyhow::Result<()> {
        let s = self.s;
        let days_before = self.rng.int(SCREENING_DAYS_BEFORE_END.0, SCREENING_DAYS_BEFORE_END.1);
        let screening_day = s.end_date - Duration::days(days_before);
        let screening = at(screening_day, 9, 0);
        let prescriber = self.prescriber.clone();
        let nurse = self.nurse.clone();

        // Demographics, validated as a form would be.
        let r = self.rng.unit();
        self.sex = if r < 0.6 {
            Sex::Female
        } else if r < 0.97 {
            Sex::Male
        } else {
            Sex::Other
        };
        let given = match self.sex {
            Sex::Female => *self.rng.pick(&FEMALE_GIVEN),
            Sex::Male => *self.rng.pick(&MALE_GIVEN),
            _ => *self.rng.pick(&NEUTRAL_GIVEN),
        };
        let family = *self.rng.pick(&FAMILY);
        let age = if self.rng.chance(OLDEST_SHARE) { self.rng.int(90, 95) } else { self.rng.int(18, 89) };
        let months = u32::try_from(age * 12).unwrap_or(480);
        let dob =
            screening_day.checked_sub_months(chrono::Months::new(months)).context("date of birth")? - Duration::days(self.rng.int(1, 360));
        let input = DemographicsInput {
            mrn: format!("SYN-{:07}", u64::from(self.index) + 1),
            family_name: family.into(),
            given_name: given.into(),
            date_of_birth: dob.format("%Y-%m-%d").to_string(),
            sex: self.sex.code().into(),
            phone: format!("+44 20 7946 0{:03}", self.rng.int(0, 999)),
            email: if self.rng.chance(0.5) { format!("{}.{}@example.org", ascii(given), ascii(family)) } else { String::new() },
            ..Default::default()
        };
        let limits = ketacare_domain::patient::AgeLimits { minimum_years: s.age_limits.0, maximum_years: s.age_limits.1 };
        let demographics = input.validate(screening_day, limits).map_err(|e| anyhow::anyhow!("synthetic demographics: {e}"))?;
        let pv = PatientVersion {
            patient_id: self.patient,
            version_id: VersionId::from_uuid(self.rng.uuid()),
            version: 1,
            action: VersionAction::Create,
            demographics,
            reason: None,
            provenance: self.prov(&prescriber, screening - Duration::minutes(30)),
        };
        out.patient(&pv);

        // Screening visit: diagnoses, failed trials, medicines, covariates, body size, BP.
        let enc = Encounter {
            kind: EncounterKind::Screening,
            start: screening,
            end: Some(screening + Duration::minutes(60)),
            reason: Some("Screening for ketamine treatment of treatment-resistant anxiety".into()),
            note: None,
        };
        let v = self.first(ClinicalRecord::Encounter(enc), &prescriber, screening - Duration::minutes(20));
        out.record(&v);
        let has_sad = self.rng.chance(SAD_SHARE);
        let has_phobia = self.rng.chance(PHOBIA_SHARE);
        let has_gad = self.rng.chance(GAD_SHARE) || !(has_sad || has_phobia);
        let mut t = screening + Duration::minutes(5);
        let earliest_onset = dob.checked_add_months(chrono::Months::new(12 * 12)).context("onset")?;
        for (key, present) in [("gad", has_gad), ("sad", has_sad), ("specific_phobia", has_phobia)] {
            if !present {
                continue;
            }
            let onset = (screening_day - Duration::days(self.rng.int(2 * 365, 15 * 365))).max(earliest_onset);
            let d = DiagnosisInput {
                choice: key.into(),
                onset: onset.format("%Y-%m-%d").to_string(),
                status: "active".into(),
                ..Default::default()
            }
            .validate(&s.diagnoses)
            .map_err(|e| anyhow::anyhow!("synthetic diagnosis {key}: {e}"))?;
            let v = self.first(ClinicalRecord::Diagnosis(d), &prescriber, t);
            out.record(&v);
            t += Duration::minutes(1);
        }
        let depressed = self.rng.chance(DEPRESSION_SHARE);
        if depressed {
            let d = DiagnosisInput {
                choice: "other".into(),
                system: "icd10".into(),
                code: "F33.1".into(),
                display: "Major depressive disorder, recurrent, moderate".into(),
                icd10: "F33.1".into(),
                status: "active".into(),
                ..Default::default()
            }
            .validate(&s.diagnoses)
            .map_err(|e| anyhow::anyhow!("synthetic comorbid diagnosis: {e}"))?;
            let v = self.first(ClinicalRecord::Diagnosis(d), &prescriber, t);
            out.record(&v);
            t += Duration::minutes(1);
        }
        // Two failed adequate trials (treatment resistance), rated on GAD-7.
        let first_trial = usize::try_from(self.rng.int(0, 5)).unwrap_or(0);
        for k in 0..2 {
            let (name, _, dose) = PRIOR_TRIALS[(first_trial + k * 2) % PRIOR_TRIALS.len()];
            let before = self.rng.int(14, 20);
            let after = before - self.rng.int(0, before * 3 / 10);
            let p = PriorTreatment {
                kind: Some(TreatmentKind::Pharmacological),
                name: name.to_lowercase(),
                dose: Some(dose.into()),
                weeks: Some(Decimal::from(self.rng.int(8, 30))),
                adequate: Some(true),
                instrument: Some("gad7".into()),
                baseline: Some(Decimal::from(before)),
                final_score: Some(Decimal::from(after)),
                stop_reason: Some("insufficient response".into()),
            };
            let v = self.first(ClinicalRecord::PriorTreatment(PriorTreatmentRecord { treatment: p }), &prescriber, t);
            out.record(&v);
            t += Duration::minutes(1);
        }
        let (name, rxnorm, dose) = PRIOR_TRIALS[(first_trial + 5) % PRIOR_TRIALS.len()];
        let med = Medication {
            name: name.into(),
            rxnorm: Some(rxnorm.into()),
            dose: Some(dose.into()),
            start: Some(screening_day - Duration::days(self.rng.int(90, 700))),
            stop: None,
        };
        let v = self.first(ClinicalRecord::Medication(med), &prescriber, t);
        out.record(&v);
        t += Duration::minutes(1);
        let diazepam_mg = if self.rng.chance(BENZODIAZEPINE_SHARE) {
            let (mg, times) = *self.rng.pick(&DIAZEPAM_DOSES);
            let med = Medication {
                name: DIAZEPAM.0.into(),
                rxnorm: Some(DIAZEPAM.1.into()),
                dose: Some(if times == 1 { format!("{mg} mg at night") } else { format!("{mg} mg {times} times daily") }),
                start: Some(screening_day - Duration::days(self.rng.int(30, 400))),
                stop: None,
            };
            let v = self.first(ClinicalRecord::Medication(med), &prescriber, t);
            out.record(&v);
            t += Duration::minutes(1);
            mg * times
        } else {
            0
        };
        let (sys, code, label) = &s.depression;
        let obs = ClinicalRecord::Observation(Observation {
            code: Coding::new(Self::covariate_system(sys)?, code, label).map_err(|e| anyhow::anyhow!("{label}: {e}"))?,
            value: ObservationValue::Boolean(depressed),
            effective: t,
            acknowledged_warnings: Vec::new(),
        });
        let v = self.first(obs, &prescriber, t);
        out.record(&v);
        let (sys, code, label, unit) = &s.benzodiazepine;
        let obs = Self::quantity(Self::covariate_system(sys)?, code, label, Decimal::from(diazepam_mg), unit, t)?;
        let v = self.first(obs, &prescriber, t);
        out.record(&v);
        if self.rng.chance(BIOMARKER_SHARE) {
            let (sys, code, label, unit) = &s.bdnf;
            let ng = dec(self.rng.normal(24.0, 6.0).clamp(8.0, 45.0), 1);
            let sampled = screening + Duration::minutes(40);
            let obs = Self::quantity(Self::covariate_system(sys)?, code, label, ng, unit, sampled)?;
            let v = self.first(obs, &nurse, sampled);
            out.record(&v);
        }
        let (lo, hi) = match self.sex {
            Sex::Female => (HEIGHT_CM.0, HEIGHT_CM.1 - 14.0),
            Sex::Male => (HEIGHT_CM.0 + 10.0, HEIGHT_CM.1),
            _ => HEIGHT_CM,
        };
        self.height_cm = f64_of(dec(self.rng.uniform(lo, hi), 1));
        let m = self.height_cm / 100.0;
        self.weight_kg = (self.rng.uniform(BMI.0, BMI.1) * m * m).clamp(WEIGHT_KG.0, WEIGHT_KG.1);
        let ht = screening + Duration::minutes(10);
        let r = Self::quantity(CodeSystem::Loinc, loinc::BODY_HEIGHT, "Body height", dec(self.height_cm, 1), "cm", ht)?;
        let v = self.first(r, &nurse, ht);
        out.record(&v);
        self.weigh(ht + Duration::minutes(1), out)?;
        let (sbp, dbp, _) = self.resting_vitals();
        let bp = ht + Duration::minutes(3);
        for (code, display, value) in
            [(loinc::SYSTOLIC_BP, "Systolic blood pressure", sbp), (loinc::DIASTOLIC_BP, "Diastolic blood pressure", dbp)]
        {
            let r = Self::quantity(CodeSystem::Loinc, code, display, Decimal::from(value), "mm[Hg]", bp)?;
            let v = self.first(r, &nurse, bp);
            out.record(&v);
        }

        // Baseline severities, in each scale's range.
        let severity = self.rng.unit();
        let lerp = |lo: i64, hi: i64| lo + ((hi - lo) as f64 * severity).round() as i64;
        self.baseline = vec![
            ("hama", lerp(20, 36)),
            ("gad7", lerp(12, 20)),
            ("lsas", lerp(62, 112)),
            ("fq", lerp(40, 85)),
            ("sds", lerp(15, 27)),
            ("qlesq_sf", lerp(40, 24)),
            ("phq9", if depressed { lerp(12, 22) } else { lerp(3, 9) }),
            ("cadss", 0),
        ];
        self.dissociation = self.rng.uniform(0.6, 1.4);

        // The course: protocol laid out as a plan, then maintenance for some responders.
        let first_dose = screening_day + Duration::days(self.rng.int(FIRST_DOSE_AFTER_SCREENING_DAYS.0, FIRST_DOSE_AFTER_SCREENING_DAYS.1));
        let iv = self.rng.chance(IV_SHARE) && self.fits(s.protocol("iv_induction")?, first_dose);
        let responder = self.rng.chance(RESPONDER_SHARE);
        let plan_time = at(screening_day + Duration::days(PLAN_AFTER_SCREENING_DAYS), 11, 0);
        let protocol = s.protocol(if iv { "iv_induction" } else { "sc_ascending" })?;
        let plan = TreatmentPlanRecord::from_protocol(protocol, first_dose, None).map_err(|e| anyhow::anyhow!("synthetic plan: {e}"))?;
        let mut sessions: Vec<SessionPlan> =
            plan.sessions.iter().map(|ps| Self::session_plan(0, protocol, ps)).collect::<anyhow::Result<_>>()?;
        let pv = self.first(ClinicalRecord::TreatmentPlan(plan), &prescriber, plan_time);
        out.record(&pv);
        let mut plans: Vec<RecordVersion> = vec![pv];
        if !iv && responder && self.rng.chance(MAINTENANCE_SHARE) {
            let m = s.protocol("sc_maintenance")?;
            let last = sessions.last().map(|x| x.date).unwrap_or(first_dose);
            let mut mp = TreatmentPlanRecord::from_protocol(m, last + Duration::days(7), None)
                .map_err(|e| anyhow::anyhow!("synthetic maintenance plan: {e}"))?;
            mp.note = Some("Responded to the ascending doses: weekly maintenance".into());
            let n = usize::try_from(self.rng.int(MAINTENANCE_SESSIONS.0, MAINTENANCE_SESSIONS.1)).unwrap_or(1);
            for ps in mp.sessions.iter().take(n) {
                sessions.push(Self::session_plan(1, m, ps)?);
            }
            let v = self.first(ClinicalRecord::TreatmentPlan(mp), &prescriber, at(last, 18, 30));
            out.record(&v);
            plans.push(v);
        }
        // Only what happened by the end date.
        sessions.retain(|x| at(x.date, 21, 0) <= s.end);

        // Place the response and the relapse among the primary-scale ratings after the first dose.
        let in_sessions: usize = sessions.iter().map(|x| x.assessments.iter().filter(|(i, _)| i == "hama").count()).sum();
        let before_first = sessions.first().map(|x| x.assessments.iter().filter(|(i, tp)| i == "hama" && tp == "pre").count()).unwrap_or(0);
        let after_first = in_sessions.saturating_sub(before_first) + FOLLOW_UP_DAYS.len();
        if responder {
            let r = usize::try_from(self.rng.int(0, i64::try_from(after_first.min(4)).unwrap_or(1) - 1)).unwrap_or(0);
            self.respond_at = Some(r);
            if self.rng.chance(RELAPSE_SHARE) && r + 1 < after_first {
                let l = self.rng.int(i64::try_from(r + 1).unwrap_or(1), i64::try_from(after_first - 1).unwrap_or(1));
                self.relapse_at = Some(usize::try_from(l).unwrap_or(r + 1));
            }
        }

        // Baseline ratings at screening.
        let mut keys: Vec<&str> = vec!["hama", "gad7", "phq9", "sds", "qlesq_sf"];
        if has_sad {
            keys.push("lsas");
        }
        if has_phobia {
            keys.push("fq");
        }
        let mut rt = screening + Duration::minutes(15);
        for key in &keys {
            let total = self.base(key);
            let got = self.assessment(key, total, rt, None, None, out)?;
            if let Some(b) = self.baseline.iter_mut().find(|(k, _)| k == key) {
                b.1 = got;
            }
            rt += Duration::minutes(4);
        }

        // The sessions.
        let mut seen = 0usize;
        let mut last_discharge: Option<DateTime<Utc>> = None;
        let mut last_plan = usize::MAX;
        for (n, sp) in sessions.iter().enumerate() {
            let slot = SLOTS[usize::try_from(self.rng.int(0, i64::try_from(SLOTS.len()).unwrap_or(1) - 1)).unwrap_or(0)];
            let start = at(sp.date, slot.0, slot.1);
            let plan = plans.get(sp.plan).context("plan of a session")?;
            let booked = match last_discharge {
                Some(d) if sp.plan == last_plan => d + Duration::minutes(10),
                _ => plan.provenance.recorded_at + Duration::minutes(15),
            };
            last_plan = sp.plan;
            let chair = format!("Chair {}", self.rng.int(1, i64::from(CHAIRS)));
            let plan_id = plan.record_id;
            last_discharge = Some(self.session(sp, n == 0, start, booked, &chair, plan_id, &mut seen, out)?);
        }

        // Follow-up reviews after the course.
        let last_day = sessions.last().map(|x| x.date).unwrap_or(first_dose);
        for (k, days) in FOLLOW_UP_DAYS.iter().enumerate() {
            if k > 0 && !self.rng.chance(FOLLOW_UP_SHARE) {
                break;
            }
            let start = at(last_day + Duration::days(*days), 10, 0);
            if start + Duration::hours(1) > s.end {
                break;
            }
            let enc = Encounter {
                kind: EncounterKind::FollowUp,
                start,
                end: Some(start + Duration::minutes(30)),
                reason: Some("Review after the ketamine course".into()),
                note: None,
            };
            let v = self.first(ClinicalRecord::Encounter(enc), &prescriber, start - Duration::days(7));
            out.record(&v);
            let hama = self.primary_total(seen)?;
            seen += 1;
            self.assessment("hama", hama, start + Duration::minutes(5), None, None, out)?;
            let level = self.level;
            let gad = self.follow("gad7", level)?;
            self.assessment("gad7", gad, start + Duration::minutes(10), None, None, out)?;
            if k == 0 {
                let mut keys: Vec<&str> = vec!["sds", "qlesq_sf"];
                if has_sad {
                    keys.push("lsas");
                }
                if has_phobia {
                    keys.push("fq");
                }
                for (j, key) in keys.iter().enumerate() {
                    let total = self.follow(key, level)?;
                    self.assessment(key, total, start + Duration::minutes(12 + 3 * i64::try_from(j).unwrap_or(0)), None, None, out)?;
                }
            }
        }
        Ok(())
    }

    /// One treatment session as the application records it: the booking (a treatment
    /// encounter and the session row), today's weight, the dose order and its independent double
    /// check, the pre-dose checks, readings at baseline, peak and discharge, ratings, an adverse
    /// event in some sessions, recovery and the signed discharge. Returns the discharge time.
    #[allow(clippy::too_many_arguments)]
    fn session(
        &mut self,
        sp: &SessionPlan,
        first_session: bool,
        start: DateTime<Utc>,
        booked: DateTime<Utc>,
        chair: &str,
        plan: RecordId,
        seen: &mut usize,
        out: &mut Batch,
    ) -> anyhow::Result<DateTime<Utc>> {
        let s = self.s;
        let rules = &s.session;
        let nurse = self.nurse.clone();
        let prescriber = self.prescriber.clone();
        let session_id = RecordId::from_uuid(self.rng.uuid());
        let m = |n: i64| Duration::minutes(n);

        // The booking: a treatment encounter whose record id is the session's id.
        let enc = Encounter {
            kind: EncounterKind::Treatment,
            start,
            end: None,
            reason: Some(format!("Treatment session on {chair}")),
            note: None,
        };
        let ev = RecordVersion {
            record_id: session_id,
            version_id: VersionId::from_uuid(self.rng.uuid()),
            version: 1,
            supersedes: None,
            patient_id: self.patient,
            action: VersionAction::Create,
            record: ClinicalRecord::Encounter(enc),
            reason: None,
            provenance: self.prov(&nurse, booked),
        };
        out.record(&ev);

        // Pre-dose ratings, before the session starts.
        for (k, (inst, tp)) in sp.assessments.clone().iter().filter(|(_, tp)| tp == "pre").enumerate() {
            let total = if inst == "hama" {
                if first_session {
                    let base = self.base("hama") as f64;
                    self.level = self.rng.uniform(0.9, 1.05);
                    (base * self.level).round() as i64
                } else {
                    let t = self.primary_total(*seen)?;
                    *seen += 1;
                    t
                }
            } else {
                let level = self.level;
                self.follow(inst, level)?
            };
            self.assessment(inst, total, start - m(20) + m(4 * i64::try_from(k).unwrap_or(0)), Some(session_id), Some(tp), out)?;
        }

        // Check-in, today's weight, the order and its double check, the checks, baseline vitals.
        let checkin = start + m(3);
        let weight = self.weigh(start + m(6), out)?;
        let weighed_at = start + m(6);
        let ordered = start + m(12);
        let checked = start + m(20);
        let route = sp.route;
        let dose = DoseInput {
            route: route.code().to_owned(),
            weight_kg: weight.to_string(),
            mg_per_kg: sp.mg_per_kg.normalize().to_string(),
            concentration_mg_per_ml: if route == Route::Iv { IV_CONCENTRATION } else { SC_CONCENTRATION }.to_owned(),
            final_volume_ml: if route == Route::Iv { IV_FINAL_VOLUME_ML.to_owned() } else { String::new() },
            minutes: if route == Route::Iv { sp.minutes.map(|x| x.to_string()).unwrap_or_default() } else { String::new() },
            height_cm: dec(self.height_cm, 1).to_string(),
            sex: match self.sex {
                Sex::Male => "male".into(),
                Sex::Female => "female".into(),
                _ => String::new(),
            },
            weight_basis: String::new(),
            dose_mg: String::new(),
        };
        let mut req = s.library.parse_dose(&dose, s.weight_range).map_err(|e| anyhow::anyhow!("synthetic dose request: {e}"))?;
        let window = |days: i64| self.given.iter().filter(|(t, _)| *t > ordered - Duration::days(days)).map(|(_, mg)| *mg).sum::<Decimal>();
        (req.given_7d_mg, req.given_28d_mg) = (window(7), window(28));
        let limits = s.library.limits(route).with_context(|| format!("the drug library has no limits for {}", route.code()))?;
        let r = calculate(&req, limits, &s.library.policy).map_err(|e| anyhow::anyhow!("synthetic dose: {e}"))?;
        ensure!(
            !r.refused() && !r.needs_override(),
            "a synthetic dose breached the drug library ({}); the synthetic weights are meant to stay inside its soft limits",
            r.breaches.iter().map(|b| b.message.clone()).collect::<Vec<_>>().join("; ")
        );
        let mut order = DoseOrderRecord {
            plan: Some(plan),
            step: Some(sp.step.clone()),
            route,
            basis: req.basis,
            mg_per_kg: req.mg_per_kg,
            fixed_mg: req.fixed_mg,
            concentration_mg_per_ml: req.concentration_mg_per_ml,
            final_volume_ml: req.final_volume_ml,
            minutes: req.minutes,
            weight_kg: req.weight_kg,
            weight_measured_at: weighed_at,
            weight_measured_by: nurse.username.clone(),
            weight_used_kg: r.weight_used_kg,
            dose_mg: r.dose_mg,
            dose_requested_mg: r.dose_requested_mg,
            drug_volume_ml: r.drug_volume_ml,
            rate_ml_per_h: r.rate_ml_per_h,
            steps: r.steps.clone(),
            breaches: Vec::new(),
            status: OrderStatus::AwaitingCheck,
            override_reason: None,
            override_approved_by: None,
            check: None,
        };
        let v1 = self.first(ClinicalRecord::DoseOrder(Box::new(order.clone())), &prescriber, ordered);
        out.record(&v1);
        out.evaluations.push(vec![
            Val::Text(self.rng.uuid().to_string()),
            Val::Text(codec::ts(ordered)),
            Val::Text(prescriber.id.to_string()),
            Val::Text(prescriber.username.clone()),
            Val::OptText(Some(self.patient.to_string())),
            Val::OptText(Some(v1.record_id.to_string())),
            Val::Text(s.drug.clone()),
            Val::Text(route.code().to_owned()),
            Val::Text(r.dose_mg.normalize().to_string()),
            Val::OptText(req.mg_per_kg.map(|d| d.normalize().to_string())),
            Val::Text(EvaluationOutcome::Accepted.code().to_owned()),
            Val::Text(String::new()),
            Val::OptText(None),
            Val::OptText(None),
        ]);
        order.status = OrderStatus::Checked;
        order.check = Some(DoubleCheck {
            by: nurse.username.clone(),
            weight_kg: order.weight_kg,
            concentration_mg_per_ml: order.concentration_mg_per_ml,
            dose_mg: order.dose_mg,
            at: checked,
        });
        let summary = order.summary();
        let v2 = RecordVersion {
            record_id: v1.record_id,
            version_id: VersionId::from_uuid(self.rng.uuid()),
            version: 2,
            supersedes: Some(v1.version_id),
            patient_id: self.patient,
            action: VersionAction::Amend,
            record: ClinicalRecord::DoseOrder(Box::new(order)),
            reason: Some(reason(&format!("independent double check by {}", nurse.username))?),
            provenance: self.prov(&nurse, checked),
        };
        out.record(&v2);
        self.given.push((checked, r.dose_mg));

        // Vital signs: baseline below the gate; a peak inside every alarm limit; back near
        // baseline at discharge.
        let (sbp, dbp, hr) = self.resting_vitals();
        let spo2 = self.rng.int(SPO2.0.max(f64_of(rules.spo2_below.value) as i64 + 1), SPO2.1);
        let mgkg = f64_of(sp.mg_per_kg);
        let rise_cap = (f64_of(rules.sbp_rise.value) - 1.0).min(f64_of(rules.sbp_above.value) - sbp as f64);
        let d_cap = (f64_of(rules.dbp_rise.value) - 1.0).min(f64_of(rules.dbp_above.value) - dbp as f64);
        let peak_s = sbp + self.rng.normal(6.0 + 14.0 * mgkg, 5.0).clamp(2.0, rise_cap).round() as i64;
        let peak_d = dbp + self.rng.normal(4.0 + 8.0 * mgkg, 3.0).clamp(1.0, d_cap).round() as i64;
        let peak_hr = (hr + self.rng.int(3, 15)).min(f64_of(rules.hr_above.value) as i64 - 1);
        let peak_spo2 = self.rng.int(SPO2.0.max(f64_of(rules.spo2_below.value) as i64 + 1), SPO2.1);
        let within = f64_of(rules.discharge_sbp_within.value) as i64 - 1;
        let end_s = sbp + self.rng.int(-within.min(5), within.min(8));
        let end_d = dbp + self.rng.int(-4, 5);
        let end_hr = hr + self.rng.int(-3, 5);

        let dose_start = start + m(DOSE_AFTER_START_MIN);
        let dose_end = if route.infused() { dose_start + m(i64::from(sp.minutes.unwrap_or(40))) } else { dose_start + m(2) };
        let peak_at = dose_start + m(PEAK_AFTER_DOSE_MIN);
        let one_hour = start + m(s.offset("1h") + 15);
        let recovery = dose_end + m(RECOVERY_AFTER_DOSE_END_MIN);
        let two_hours = start + m(s.offset("2h"));
        let recovery_moaas = recovery.max(two_hours - m(10)) + m(5);
        let discharge_readings = recovery_moaas + m(5);
        let signed = (dose_end + m(f64_of(rules.discharge_minutes.value) as i64 + DISCHARGE_MARGIN_MIN)).max(discharge_readings + m(5));

        let mut readings = vec![
            (start + m(16), sbp, dbp, hr, spo2),
            (peak_at, peak_s, peak_d, peak_hr, peak_spo2),
            (discharge_readings, end_s, end_d, end_hr, spo2),
        ];
        readings.sort_by_key(|x| x.0);
        for (t, a, b, c, d) in readings {
            for (vital, value) in [(Vital::Systolic, a), (Vital::Diastolic, b), (Vital::HeartRate, c), (Vital::Spo2, d)] {
                out.readings.push(vec![
                    Val::Text(self.rng.uuid().to_string()),
                    Val::Text(session_id.to_string()),
                    Val::Text(self.patient.to_string()),
                    Val::Text(vital.code().to_owned()),
                    Val::Text(value.to_string()),
                    Val::Text(codec::ts(t)),
                    Val::Text(codec::ts(t + Duration::seconds(2))),
                    Val::Text("manual".into()),
                    Val::OptText(None),
                    Val::OptText(None),
                    Val::Text(nurse.display.clone()),
                ]);
            }
        }

        // Ratings an hour after the dose (CADSS and MOAA/S also go into the session's record).
        let mut events = vec![
            Ev { at: booked, kind: "created", step: None, detail: format!("Booked on {chair}") },
            Ev { at: checkin, kind: "step", step: Some(Step::CheckIn), detail: "Checked in".into() },
            Ev { at: start + m(8), kind: "step", step: Some(Step::StartChecks), detail: "Pre-dose checks started".into() },
            Ev {
                at: start + m(14),
                kind: "checks",
                step: None,
                detail: format!(
                    "consent=yes\nescort=yes\npregnancy_test={}\ngate_decision_by=",
                    if self.sex == Sex::Female { "negative" } else { "not_applicable" }
                ),
            },
            Ev { at: checked + m(1), kind: "order", step: None, detail: format!("Dose order {} linked", v1.record_id) },
            Ev {
                at: dose_start,
                kind: "dose",
                step: Some(Step::StartDose),
                detail: format!("Dose started at {}: {summary}; baseline {sbp}/{dbp} mmHg", dose_start.format("%H:%M:%S UTC")),
            },
            Ev {
                at: dose_end,
                kind: "dose",
                step: Some(Step::DoseGiven),
                detail: if route.infused() {
                    format!("Infusion complete at {}", dose_end.format("%H:%M:%S UTC"))
                } else {
                    format!("Injection given at {}, site: {}", dose_end.format("%H:%M:%S UTC"), self.rng.pick(&SITES))
                },
            },
        ];
        for (k, (inst, tp)) in sp.assessments.clone().iter().filter(|(_, tp)| tp == "1h").enumerate() {
            let rated = one_hour + m(3 * i64::try_from(k).unwrap_or(0));
            let total = match inst.as_str() {
                "hama" => {
                    let t = self.primary_total(*seen)?;
                    *seen += 1;
                    t
                }
                "cadss" => {
                    let mean = if route.infused() { 13.0 } else { 3.0 + 15.0 * mgkg };
                    let cap = f64_of(rules.cadss_above.value);
                    (mean * self.dissociation + self.rng.normal(0.0, 3.0)).round().clamp(0.0, cap) as i64
                }
                "moaas" => {
                    let floor = f64_of(rules.moaas_at_or_below.value) as i64 + 1;
                    let top = f64_of(self.s.instrument("moaas")?.total_range().1) as i64;
                    if self.rng.chance(0.15) {
                        (top - 1).max(floor)
                    } else {
                        top
                    }
                }
                other => {
                    let level = self.level;
                    self.follow(other, level)?
                }
            };
            let got = self.assessment(inst, total, rated, Some(session_id), Some(tp), out)?;
            if matches!(inst.as_str(), "cadss" | "moaas") {
                events.push(Ev { at: rated + m(1), kind: "rating", step: None, detail: format!("{inst}={got}") });
            }
        }
        if self.rng.chance(ADVERSE_EVENT_SHARE) {
            let (kind, action) = *self.rng.pick(&ADVERSE_EVENTS);
            let ae = AdverseEventInput {
                kind: kind.into(),
                description: String::new(),
                grade: if self.rng.chance(0.85) { "1" } else { "2" }.into(),
                serious: "no".into(),
                action: action.into(),
                outcome: "resolved".into(),
            }
            .parse()
            .map_err(|e| anyhow::anyhow!("synthetic adverse event: {e}"))?;
            events.push(Ev {
                at: dose_end.max(dose_start + m(20)) + m(4),
                kind: "adverse_event",
                step: None,
                detail: format!(
                    "kind={}\ngrade={}\nserious={}\naction={}\noutcome={}\ndescription={}",
                    ae.kind,
                    ae.grade,
                    if ae.serious { "yes" } else { "no" },
                    ae.action,
                    ae.outcome,
                    ae.description.unwrap_or_default()
                ),
            });
        }
        events.push(Ev { at: recovery, kind: "step", step: Some(Step::StartRecovery), detail: "Recovery started".into() });
        // Recovery: MOAA/S back to the discharge criterion, then the signed discharge.
        let moaas = f64_of(rules.discharge_moaas.value) as i64;
        let got = self.assessment("moaas", moaas, recovery_moaas, Some(session_id), Some("2h"), out)?;
        events.push(Ev { at: recovery_moaas + m(1), kind: "rating", step: None, detail: format!("moaas={got}") });
        events.push(Ev {
            at: signed,
            kind: "signed",
            step: Some(Step::Discharge),
            detail: format!("Discharged with escort; note signed by {}", nurse.display),
        });
        events.sort_by_key(|e| e.at);

        let mut phase = Phase::Scheduled;
        for (n, e) in events.iter().enumerate() {
            if let Some(step) = &e.step {
                phase = phase.next(step).map_err(|x| anyhow::anyhow!("synthetic session out of order: {x}"))?;
            }
            out.events.push(vec![
                Val::Text(self.rng.uuid().to_string()),
                Val::Text(session_id.to_string()),
                Val::Int(i64::try_from(n + 1).unwrap_or(0)),
                Val::Text(e.kind.to_owned()),
                Val::Text(codec::ts(e.at)),
                Val::Text(nurse.id.to_string()),
                Val::Text(nurse.display.clone()),
                Val::Text(phase.code().to_owned()),
                Val::Text(e.detail.clone()),
                Val::OptText(None),
            ]);
        }
        ensure!(phase == Phase::Discharged, "a synthetic session did not end discharged");
        out.sessions.push(vec![
            Val::Text(session_id.to_string()),
            Val::Text(self.patient.to_string()),
            Val::Text(chair.to_owned()),
            Val::OptText(None),
            Val::OptText(Some(v1.record_id.to_string())),
            Val::Text(phase.code().to_owned()),
            Val::Int(0),
            Val::Int(i64::try_from(events.len()).unwrap_or(0)),
            Val::Text(codec::ts(booked)),
            Val::Text(nurse.id.to_string()),
            Val::Text(nurse.display.clone()),
            Val::OptText(None),
            Val::OptInt(Some(sbp)),
            Val::OptInt(Some(dbp)),
            Val::OptText(Some(codec::ts(dose_start))),
            Val::OptText(Some(codec::ts(dose_end))),
            Val::OptText(Some(codec::ts(signed))),
            Val::OptText(Some(nurse.display.clone())),
            Val::Text(codec::ts(start)),
        ]);

        // Ratings the day after and a week after, when the protocol asks for them.
        for (inst, tp) in sp.assessments.clone().iter().filter(|(_, tp)| tp == "24h" || tp == "7d") {
            let when = if tp == "24h" { start + m(s.offset("24h") + 60) } else { start + m(s.offset("7d") - 23 * 60) };
            if when > s.end {
                continue;
            }
            let level = if tp == "7d" { (self.level + 0.1).min(1.0) } else { self.level };
            let total = self.follow(inst, level)?;
            self.assessment(inst, total, when, Some(session_id), Some(tp), out)?;
        }
        Ok(signed)
    }
}

/// Letters of a name for an e-mail address (ASCII only).
fn ascii(name: &str) -> String {
    name.chars()
        .filter_map(|c| match c {
            'á' | 'à' | 'ä' => Some('a'),
            'é' | 'è' => Some('e'),
            'í' => Some('i'),
            'ó' | 'ö' => Some('o'),
            'ú' | 'ü' => Some('u'),
            c if c.is_ascii_alphabetic() => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}
