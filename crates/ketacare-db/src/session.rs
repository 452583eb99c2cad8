//! Storage of treatment sessions: the session row (where it is now), its append-only events,
//! readings and alarms. The rules that decide phases and alarms are in
//! `ketacare_domain::session`; these types are what is kept.

use chrono::{DateTime, Utc};
use ketacare_domain::ids::{PatientId, RecordId, UserId};
use ketacare_domain::session::{Level, Phase, Vital};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::{AuditCtx, DbResult};

/// A treatment session as it stands. Its id is the treatment encounter's record id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreatmentSession {
    /// The treatment encounter's record id.
    pub id: RecordId,
    /// Patient.
    pub patient_id: PatientId,
    /// Chair (treatment place), matched against a monitor's PV1-3 location.
    pub chair: String,
    /// Monitor device id bound to the session (EUI-64 or gateway id), if any.
    pub device_id: Option<String>,
    /// The dose order given in this session, if any.
    pub order_id: Option<RecordId>,
    /// Phase now.
    pub phase: Phase,
    /// Number of events so far (the next event is `seq + 1`).
    pub seq: i64,
    /// When the booking was entered.
    pub created_at: DateTime<Utc>,
    /// When the session is (or was) booked for; steps cannot be charted before it.
    pub scheduled_at: DateTime<Utc>,
    /// Booked by.
    pub created_by: UserId,
    /// Booked by (name).
    pub created_by_name: String,
    /// When a monitor was bound (a silent monitor raises the stale-feed alarm from then).
    pub bound_at: Option<DateTime<Utc>>,
    /// Pre-dose baseline systolic and diastolic.
    pub baseline: (Option<u32>, Option<u32>),
    /// Dose started.
    pub dose_started_at: Option<DateTime<Utc>>,
    /// Dose ended (infusion finished or stopped, injection given).
    pub dose_ended_at: Option<DateTime<Utc>>,
    /// Discharge signed (the note is locked from then on).
    pub signed_at: Option<DateTime<Utc>>,
    /// Signed by.
    pub signed_by_name: Option<String>,
}

impl TreatmentSession {
    /// Whether the session is on a chair now (not discharged or cancelled).
    pub fn is_active(&self) -> bool {
        !self.phase.is_final()
    }
}

/// One entry of a session's record: a step, the checks, the dose, an adverse event, a
/// rating, the signature or an addendum. Append-only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionEvent {
    /// Id.
    pub id: Uuid,
    /// Session.
    pub session_id: RecordId,
    /// Number within the session, from 1.
    pub seq: i64,
    /// `created`, `step`, `checks`, `dose`, `adverse_event`, `rating`, `alarm_ack`, `signed`, `addendum`.
    pub kind: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub user_id: UserId,
    /// Who (name).
    pub by_name: String,
    /// Phase after the event.
    pub phase: Phase,
    /// What, in words (and `key=value` lines where the application reads it back).
    pub detail: String,
    /// Reason given, if any.
    pub reason: Option<String>,
}

/// Where a reading came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadingSource {
    /// Typed in by a nurse.
    Manual,
    /// JSON from a device gateway.
    Device,
    /// HL7 v2 ORU^R01 over MLLP.
    Hl7,
}

impl ReadingSource {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            ReadingSource::Manual => "manual",
            ReadingSource::Device => "device",
            ReadingSource::Hl7 => "hl7",
        }
    }

    /// Parses a code.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "manual" => Ok(ReadingSource::Manual),
            "device" => Ok(ReadingSource::Device),
            "hl7" => Ok(ReadingSource::Hl7),
            _ => Err(format!("unknown reading source {s}")),
        }
    }
}

/// One vital-sign reading of a session. Append-only; a repeat of the same vital at the same
/// time with the same value from the same source (a monitor resending a message whose ACK it
/// lost) is stored once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionReading {
    /// Id.
    pub id: Uuid,
    /// Session.
    pub session_id: RecordId,
    /// Patient.
    pub patient_id: PatientId,
    /// Vital sign.
    pub vital: Vital,
    /// Value in the vital's unit.
    pub value: Decimal,
    /// When measured.
    pub observed_at: DateTime<Utc>,
    /// When stored.
    pub received_at: DateTime<Utc>,
    /// Source.
    pub source: ReadingSource,
    /// Device id, for device and HL7 readings.
    pub device_id: Option<String>,
    /// HL7 control id, for HL7 readings.
    pub message_id: Option<String>,
    /// Recorded by (nurse name, or the gateway/monitor account).
    pub recorded_by_name: String,
}

/// An alarm of a session, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionAlarm {
    /// Id.
    pub id: Uuid,
    /// Session.
    pub session_id: RecordId,
    /// Patient.
    pub patient_id: PatientId,
    /// Rule code (`sbp_above`, `stale_feed`, ...).
    pub rule: String,
    /// Level when raised (the level now follows from escalation).
    pub level: Level,
    /// What was seen.
    pub message: String,
    /// Source of the rule.
    pub source: String,
    /// Raised.
    pub raised_at: DateTime<Utc>,
    /// Acknowledgement: when, who, name, action taken.
    pub acknowledged: Option<(DateTime<Utc>, UserId, String, String)>,
    /// Cleared (the value came back inside the limit after acknowledgement).
    pub cleared_at: Option<DateTime<Utc>>,
}

/// What one input to a session writes, all in one transaction.
#[derive(Clone, Debug, Default)]
pub struct SessionWrite {
    /// Readings to store.
    pub readings: Vec<SessionReading>,
    /// Alarms newly raised.
    pub raised: Vec<SessionAlarm>,
    /// Latched alarms whose value came back inside the limit, or that a new alarm of the
    /// same rule replaces (the value got worse, or the re-alarm period ran out).
    pub cleared: Vec<Uuid>,
    /// An event of the session to append in the same transaction (e.g. a rating), with the
    /// session as it is after it (its `seq` one more than the stored one).
    pub event: Option<(TreatmentSession, SessionEvent)>,
}

/// Called with a session id whenever any server changes a session (the live board listens).
pub type ChangeListener = std::sync::Arc<dyn Fn(String) + Send + Sync>;

/// Storage of treatment sessions. Every call that touches patient data is audited in the
/// same transaction.
#[async_trait::async_trait]
pub trait SessionStore {
    /// Stores a new session with its first event.
    /// `Conflict` when the chair or the monitor is taken by another active session.
    async fn create_treatment_session(&self, ctx: &AuditCtx, s: &TreatmentSession, first: &SessionEvent) -> DbResult<()>;
    /// Appends an event and moves the session to `next` (whose `seq` must be the stored one
    /// plus one): `Conflict` when someone else moved it first, or when a signed session would
    /// change other than by an addendum.
    async fn append_session_event(&self, ctx: &AuditCtx, next: &TreatmentSession, ev: &SessionEvent) -> DbResult<()>;
    /// A session, audited.
    async fn get_treatment_session(&self, ctx: &AuditCtx, id: RecordId) -> DbResult<Option<TreatmentSession>>;
    /// A patient's sessions, newest first, audited.
    async fn patient_sessions(&self, ctx: &AuditCtx, patient: PatientId) -> DbResult<Vec<TreatmentSession>>;
    /// Sessions on a chair now, by chair, audited.
    async fn active_sessions(&self, ctx: &AuditCtx) -> DbResult<Vec<TreatmentSession>>;
    /// Sessions on a chair now, without an audit row: for the alarm engine's clock, which reads
    /// them every second and writes (audited) only what it raises.
    async fn active_sessions_for_engine(&self) -> DbResult<Vec<TreatmentSession>>;
    /// The active session a monitor belongs to: by its device id, else by its location (chair).
    async fn session_for_monitor(&self, device_id: Option<&str>, location: Option<&str>) -> DbResult<Option<TreatmentSession>>;
    /// A session's events, oldest first, audited.
    async fn session_events(&self, ctx: &AuditCtx, id: RecordId) -> DbResult<Vec<SessionEvent>>;
    /// Stores readings, raised and cleared alarms in one transaction; returns how many readings
    /// were new (a resent reading is stored once). `Conflict` when an alarm of the same rule
    /// is already live (another server raised it first).
    async fn write_session_input(&self, ctx: &AuditCtx, w: &SessionWrite) -> DbResult<usize>;
    /// A session's readings observed at or after `since`, oldest first, audited.
    async fn session_readings(&self, ctx: &AuditCtx, id: RecordId, since: Option<DateTime<Utc>>) -> DbResult<Vec<SessionReading>>;
    /// A session's readings received after `after`, in the order received, audited (the live
    /// board fetches only what is new since its last look).
    async fn readings_received_since(&self, ctx: &AuditCtx, id: RecordId, after: DateTime<Utc>) -> DbResult<Vec<SessionReading>>;
    /// The last reading of each vital of a session (no audit: used inside the alarm engine,
    /// whose write is audited).
    async fn last_readings(&self, id: RecordId) -> DbResult<Vec<SessionReading>>;
    /// A session's alarms, oldest first (live only, or all); audited.
    async fn session_alarms(&self, ctx: &AuditCtx, id: RecordId, live_only: bool) -> DbResult<Vec<SessionAlarm>>;
    /// The live alarms of a session (no audit: used inside the alarm engine, whose write is
    /// audited).
    async fn live_session_alarms(&self, id: RecordId) -> DbResult<Vec<SessionAlarm>>;
    /// Acknowledges an open alarm once, with the session event that records it when given, in
    /// one transaction; audited. `Conflict` when already acknowledged or the session moved.
    async fn acknowledge_session_alarm(
        &self,
        ctx: &AuditCtx,
        id: Uuid,
        by: UserId,
        by_name: &str,
        action: &str,
        event: Option<(&TreatmentSession, &SessionEvent)>,
    ) -> DbResult<SessionAlarm>;
    /// Starts forwarding other servers' session changes to `listener` (PostgreSQL); `false`
    /// when the backend has no other servers to hear from (SQLite).
    async fn listen_session_changes(&self, listener: ChangeListener) -> DbResult<bool>;
}

fn corrupt(what: impl std::fmt::Display) -> crate::DbError {
    crate::DbError::Corrupt(format!("session {what}"))
}

fn rid(s: &str) -> DbResult<RecordId> {
    RecordId::parse(s).map_err(|_| corrupt("identifier"))
}

fn opt_ts(s: Option<String>) -> DbResult<Option<DateTime<Utc>>> {
    s.as_deref().map(crate::codec::parse_ts).transpose()
}

fn whole(v: Option<i64>) -> DbResult<Option<u32>> {
    v.map(|x| u32::try_from(x).map_err(|_| corrupt("baseline"))).transpose()
}

/// Columns of `treatment_sessions`, in [`SessionRow`] order.
pub const SESSION_ROW_COLS: &str = "id, patient_id, chair, device_id, order_id, phase, seq, created_at, scheduled_at, created_by, created_by_name, bound_at, baseline_sbp, baseline_dbp, dose_started_at, dose_ended_at, signed_at, signed_by_name";

/// A `treatment_sessions` row.
#[derive(sqlx::FromRow)]
#[allow(missing_docs)]
pub struct SessionRow {
    pub id: String,
    pub patient_id: String,
    pub chair: String,
    pub device_id: Option<String>,
    pub order_id: Option<String>,
    pub phase: String,
    pub seq: i64,
    pub created_at: String,
    pub scheduled_at: String,
    pub created_by: String,
    pub created_by_name: String,
    pub bound_at: Option<String>,
    pub baseline_sbp: Option<i64>,
    pub baseline_dbp: Option<i64>,
    pub dose_started_at: Option<String>,
    pub dose_ended_at: Option<String>,
    pub signed_at: Option<String>,
    pub signed_by_name: Option<String>,
}

impl SessionRow {
    /// Into the model type.
    pub fn into_model(self) -> DbResult<TreatmentSession> {
        Ok(TreatmentSession {
            id: rid(&self.id)?,
            patient_id: PatientId::parse(&self.patient_id).map_err(|_| corrupt("patient"))?,
            chair: self.chair,
            device_id: self.device_id,
            order_id: self.order_id.as_deref().map(rid).transpose()?,
            phase: Phase::parse(&self.phase).map_err(corrupt)?,
            seq: self.seq,
            created_at: crate::codec::parse_ts(&self.created_at)?,
            scheduled_at: crate::codec::parse_ts(&self.scheduled_at)?,
            created_by: UserId::parse(&self.created_by).map_err(|_| corrupt("user"))?,
            created_by_name: self.created_by_name,
            bound_at: opt_ts(self.bound_at)?,
            baseline: (whole(self.baseline_sbp)?, whole(self.baseline_dbp)?),
            dose_started_at: opt_ts(self.dose_started_at)?,
            dose_ended_at: opt_ts(self.dose_ended_at)?,
            signed_at: opt_ts(self.signed_at)?,
            signed_by_name: self.signed_by_name,
        })
    }
}

/// Columns of `session_events`, in [`EventRow`] order.
pub const EVENT_COLS: &str = "id, session_id, seq, kind, at, user_id, by_name, phase, detail, reason";

/// A `session_events` row.
#[derive(sqlx::FromRow)]
#[allow(missing_docs)]
pub struct EventRow {
    pub id: String,
    pub session_id: String,
    pub seq: i64,
    pub kind: String,
    pub at: String,
    pub user_id: String,
    pub by_name: String,
    pub phase: String,
    pub detail: String,
    pub reason: Option<String>,
}

impl EventRow {
    /// Into the model type.
    pub fn into_model(self) -> DbResult<SessionEvent> {
        Ok(SessionEvent {
            id: Uuid::parse_str(&self.id).map_err(|_| corrupt("event id"))?,
            session_id: rid(&self.session_id)?,
            seq: self.seq,
            kind: self.kind,
            at: crate::codec::parse_ts(&self.at)?,
            user_id: UserId::parse(&self.user_id).map_err(|_| corrupt("user"))?,
            by_name: self.by_name,
            phase: Phase::parse(&self.phase).map_err(corrupt)?,
            detail: self.detail,
            reason: self.reason,
        })
    }
}

/// Columns of `session_readings`, in [`ReadingRow`] order.
pub const READING_COLS: &str =
    "id, session_id, patient_id, vital, value, observed_at, received_at, source, device_id, message_id, recorded_by_name";

/// A `session_readings` row.
#[derive(sqlx::FromRow)]
#[allow(missing_docs)]
pub struct ReadingRow {
    pub id: String,
    pub session_id: String,
    pub patient_id: String,
    pub vital: String,
    pub value: String,
    pub observed_at: String,
    pub received_at: String,
    pub source: String,
    pub device_id: Option<String>,
    pub message_id: Option<String>,
    pub recorded_by_name: String,
}

impl ReadingRow {
    /// Into the model type.
    pub fn into_model(self) -> DbResult<SessionReading> {
        Ok(SessionReading {
            id: Uuid::parse_str(&self.id).map_err(|_| corrupt("reading id"))?,
            session_id: rid(&self.session_id)?,
            patient_id: PatientId::parse(&self.patient_id).map_err(|_| corrupt("patient"))?,
            vital: Vital::parse(&self.vital).map_err(corrupt)?,
            value: self.value.parse().map_err(|_| corrupt("reading value"))?,
            observed_at: crate::codec::parse_ts(&self.observed_at)?,
            received_at: crate::codec::parse_ts(&self.received_at)?,
            source: ReadingSource::parse(&self.source).map_err(corrupt)?,
            device_id: self.device_id,
            message_id: self.message_id,
            recorded_by_name: self.recorded_by_name,
        })
    }
}

/// Columns of `session_alarms`, in [`AlarmRow`] order.
pub const ALARM_COLS: &str = "id, session_id, patient_id, rule, level, message, source, raised_at, acknowledged_at, acknowledged_by, acknowledged_by_name, action_taken, cleared_at";

/// A `session_alarms` row.
#[derive(sqlx::FromRow)]
#[allow(missing_docs)]
pub struct AlarmRow {
    pub id: String,
    pub session_id: String,
    pub patient_id: String,
    pub rule: String,
    pub level: String,
    pub message: String,
    pub source: String,
    pub raised_at: String,
    pub acknowledged_at: Option<String>,
    pub acknowledged_by: Option<String>,
    pub acknowledged_by_name: Option<String>,
    pub action_taken: Option<String>,
    pub cleared_at: Option<String>,
}

impl AlarmRow {
    /// Into the model type.
    pub fn into_model(self) -> DbResult<SessionAlarm> {
        let acknowledged = match (self.acknowledged_at, self.acknowledged_by, self.acknowledged_by_name, self.action_taken) {
            (Some(at), Some(by), Some(name), Some(action)) => {
                Some((crate::codec::parse_ts(&at)?, UserId::parse(&by).map_err(|_| corrupt("user"))?, name, action))
            }
            (None, None, None, None) => None,
            _ => return Err(corrupt("partial acknowledgement")),
        };
        Ok(SessionAlarm {
            id: Uuid::parse_str(&self.id).map_err(|_| corrupt("alarm id"))?,
            session_id: rid(&self.session_id)?,
            patient_id: PatientId::parse(&self.patient_id).map_err(|_| corrupt("patient"))?,
            rule: self.rule,
            level: Level::parse(&self.level).map_err(corrupt)?,
            message: self.message,
            source: self.source,
            raised_at: crate::codec::parse_ts(&self.raised_at)?,
            acknowledged,
            cleared_at: opt_ts(self.cleared_at)?,
        })
    }
}

/// Implements [`SessionStore`] for a backend type that also uses [`crate::impl_sql_store!`]
/// (it reuses that macro's audit helper). PostgreSQL also notifies other servers of each
/// change (`pg_notify` inside the transaction, so only committed changes are heard).
#[macro_export]
macro_rules! impl_session_store {
    ($store:ty, $db:ty) => {
        impl $store {
            async fn __notify_session(conn: &mut <$db as $crate::__sqlx::Database>::Connection, id: &str) -> $crate::DbResult<()> {
                if Self::BACKEND == "postgres" {
                    $crate::__sqlx::query("SELECT pg_notify('ketacare_sessions', $1)").bind(id.to_owned()).execute(&mut *conn).await.map_err($crate::DbError::from_sqlx)?;
                }
                Ok(())
            }

            async fn __insert_session_event(conn: &mut <$db as $crate::__sqlx::Database>::Connection, ev: &$crate::session::SessionEvent) -> $crate::DbResult<()> {
                $crate::__sqlx::query("INSERT INTO session_events (id, session_id, seq, kind, at, user_id, by_name, phase, detail, reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
                    .bind(ev.id.to_string())
                    .bind(ev.session_id.to_string())
                    .bind(ev.seq)
                    .bind(ev.kind.clone())
                    .bind($crate::codec::ts(ev.at))
                    .bind(ev.user_id.to_string())
                    .bind(ev.by_name.clone())
                    .bind(ev.phase.code())
                    .bind(ev.detail.clone())
                    .bind(ev.reason.clone())
                    .execute(&mut *conn)
                    .await
                    .map_err($crate::DbError::from_sqlx)?;
                Ok(())
            }

            /// Moves the session to `s` (conditional on the stored `seq` being `s.seq - 1`) and
            /// appends its event, audited and announced, inside the caller's transaction.
            async fn __move_session(conn: &mut <$db as $crate::__sqlx::Database>::Connection, ctx: &$crate::AuditCtx, s: &$crate::session::TreatmentSession, ev: &$crate::session::SessionEvent) -> $crate::DbResult<()> {
                // Signing checks again, inside the transaction, that no alarm is waiting for an
                // acknowledgement: one raised after the criteria were read stops the discharge.
                if ev.kind == "signed" {
                    let open: i64 = $crate::__sqlx::query_scalar("SELECT COUNT(*) FROM session_alarms WHERE session_id = $1 AND acknowledged_at IS NULL")
                        .bind(s.id.to_string())
                        .fetch_one(&mut *conn)
                        .await
                        .map_err($crate::DbError::from_sqlx)?;
                    if open > 0 {
                        return Err($crate::DbError::Conflict("an alarm was raised meanwhile: acknowledge it before discharge".into()));
                    }
                }
                let done = $crate::__sqlx::query("UPDATE treatment_sessions SET chair = $1, device_id = $2, order_id = $3, phase = $4, active = $5, seq = $6, bound_at = $7, baseline_sbp = $8, baseline_dbp = $9, dose_started_at = $10, dose_ended_at = $11, signed_at = $12, signed_by_name = $13 WHERE id = $14 AND seq = $15")
                    .bind(s.chair.clone())
                    .bind(s.device_id.clone())
                    .bind(s.order_id.map(|o| o.to_string()))
                    .bind(s.phase.code())
                    .bind(i64::from(s.is_active()))
                    .bind(s.seq)
                    .bind(s.bound_at.map($crate::codec::ts))
                    .bind(s.baseline.0.map(i64::from))
                    .bind(s.baseline.1.map(i64::from))
                    .bind(s.dose_started_at.map($crate::codec::ts))
                    .bind(s.dose_ended_at.map($crate::codec::ts))
                    .bind(s.signed_at.map($crate::codec::ts))
                    .bind(s.signed_by_name.clone())
                    .bind(s.id.to_string())
                    .bind(s.seq - 1)
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| match $crate::DbError::from_sqlx(e) {
                        $crate::DbError::Driver(d) => $crate::DbError::Conflict(format!("the session cannot change that way: {d}")),
                        other => other,
                    })?;
                if done.rows_affected() != 1 {
                    return Err($crate::DbError::Conflict("the session was changed by someone else; reload it".into()));
                }
                Self::__insert_session_event(&mut *conn, ev).await?;
                let e = $crate::sql::event(ctx, ::ketacare_domain::audit::AuditAction::Update, ::ketacare_domain::audit::AuditOutcome::Success, "TreatmentSession", Some(s.id.to_string()), Some(s.patient_id), Some(format!("event={} phase={}", ev.kind, s.phase.code())));
                Self::__audit(&mut *conn, &e).await?;
                Self::__notify_session(&mut *conn, &s.id.to_string()).await
            }

            async fn __read_sessions(&self, ctx: &$crate::AuditCtx, filter: &str, arg: Option<String>, patient: Option<::ketacare_domain::ids::PatientId>, what: &str) -> $crate::DbResult<Vec<$crate::session::TreatmentSession>> {
                let sql = format!("SELECT {} FROM treatment_sessions WHERE {filter}", $crate::session::SESSION_ROW_COLS);
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                let mut q = $crate::__sqlx::query_as::<_, $crate::session::SessionRow>(&sql);
                if let Some(a) = arg {
                    q = q.bind(a);
                }
                let rows = q.fetch_all(&mut *tx).await.map_err($crate::DbError::from_sqlx)?;
                let e = $crate::sql::event(ctx, ::ketacare_domain::audit::AuditAction::Read, ::ketacare_domain::audit::AuditOutcome::Success, "TreatmentSession", None, patient, Some(format!("{what}: {} sessions", rows.len())));
                Self::__audit(&mut *tx, &e).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)?;
                rows.into_iter().map(|r| r.into_model()).collect()
            }
        }

        #[$crate::__async_trait]
        impl $crate::session::SessionStore for $store {
            async fn create_treatment_session(&self, ctx: &$crate::AuditCtx, s: &$crate::session::TreatmentSession, first: &$crate::session::SessionEvent) -> $crate::DbResult<()> {
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                $crate::__sqlx::query("INSERT INTO treatment_sessions (id, patient_id, chair, device_id, order_id, phase, active, seq, created_at, created_by, created_by_name, bound_at, baseline_sbp, baseline_dbp, dose_started_at, dose_ended_at, signed_at, signed_by_name, scheduled_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)")
                    .bind(s.id.to_string())
                    .bind(s.patient_id.to_string())
                    .bind(s.chair.clone())
                    .bind(s.device_id.clone())
                    .bind(s.order_id.map(|o| o.to_string()))
                    .bind(s.phase.code())
                    .bind(i64::from(s.is_active()))
                    .bind(s.seq)
                    .bind($crate::codec::ts(s.created_at))
                    .bind(s.created_by.to_string())
                    .bind(s.created_by_name.clone())
                    .bind(s.bound_at.map($crate::codec::ts))
                    .bind(s.baseline.0.map(i64::from))
                    .bind(s.baseline.1.map(i64::from))
                    .bind(s.dose_started_at.map($crate::codec::ts))
                    .bind(s.dose_ended_at.map($crate::codec::ts))
                    .bind(s.signed_at.map($crate::codec::ts))
                    .bind(s.signed_by_name.clone())
                    .bind($crate::codec::ts(s.scheduled_at))
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::DbError::from_sqlx)?;
                Self::__insert_session_event(&mut *tx, first).await?;
                let e = $crate::sql::event(ctx, ::ketacare_domain::audit::AuditAction::Create, ::ketacare_domain::audit::AuditOutcome::Success, "TreatmentSession", Some(s.id.to_string()), Some(s.patient_id), Some(format!("phase={}", s.phase.code())));
                Self::__audit(&mut *tx, &e).await?;
                Self::__notify_session(&mut *tx, &s.id.to_string()).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)
            }

            async fn append_session_event(&self, ctx: &$crate::AuditCtx, s: &$crate::session::TreatmentSession, ev: &$crate::session::SessionEvent) -> $crate::DbResult<()> {
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                Self::__move_session(&mut *tx, ctx, s, ev).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)
            }

            async fn get_treatment_session(&self, ctx: &$crate::AuditCtx, id: ::ketacare_domain::ids::RecordId) -> $crate::DbResult<Option<$crate::session::TreatmentSession>> {
                let sql = format!("SELECT {} FROM treatment_sessions WHERE id = $1", $crate::session::SESSION_ROW_COLS);
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                let row: Option<$crate::session::SessionRow> = $crate::__sqlx::query_as(&sql).bind(id.to_string()).fetch_optional(&mut *tx).await.map_err($crate::DbError::from_sqlx)?;
                let s = row.map(|r| r.into_model()).transpose()?;
                let e = $crate::sql::event(ctx, ::ketacare_domain::audit::AuditAction::Read, if s.is_some() { ::ketacare_domain::audit::AuditOutcome::Success } else { ::ketacare_domain::audit::AuditOutcome::NotFound }, "TreatmentSession", Some(id.to_string()), s.as_ref().map(|s| s.patient_id), None);
                Self::__audit(&mut *tx, &e).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)?;
                Ok(s)
            }

            async fn patient_sessions(&self, ctx: &$crate::AuditCtx, patient: ::ketacare_domain::ids::PatientId) -> $crate::DbResult<Vec<$crate::session::TreatmentSession>> {
                self.__read_sessions(ctx, "patient_id = $1 ORDER BY created_at DESC, id", Some(patient.to_string()), Some(patient), "patient").await
            }

            async fn active_sessions(&self, ctx: &$crate::AuditCtx) -> $crate::DbResult<Vec<$crate::session::TreatmentSession>> {
                self.__read_sessions(ctx, "active = 1 ORDER BY chair, id", None, None, "active").await
            }

            async fn active_sessions_for_engine(&self) -> $crate::DbResult<Vec<$crate::session::TreatmentSession>> {
                let sql = format!("SELECT {} FROM treatment_sessions WHERE active = 1 ORDER BY chair, id", $crate::session::SESSION_ROW_COLS);
                let rows: Vec<$crate::session::SessionRow> = $crate::__sqlx::query_as(&sql).fetch_all(&self.pool).await.map_err($crate::DbError::from_sqlx)?;
                rows.into_iter().map(|r| r.into_model()).collect()
            }

            async fn session_for_monitor(&self, device_id: Option<&str>, location: Option<&str>) -> $crate::DbResult<Option<$crate::session::TreatmentSession>> {
                let sql = format!("SELECT {} FROM treatment_sessions WHERE active = 1 AND device_id = $1", $crate::session::SESSION_ROW_COLS);
                if let Some(d) = device_id.filter(|d| !d.is_empty()) {
                    let row: Option<$crate::session::SessionRow> = $crate::__sqlx::query_as(&sql).bind(d.to_owned()).fetch_optional(&self.pool).await.map_err($crate::DbError::from_sqlx)?;
                    if let Some(r) = row {
                        return r.into_model().map(Some);
                    }
                }
                let sql = format!("SELECT {} FROM treatment_sessions WHERE active = 1 AND chair = $1", $crate::session::SESSION_ROW_COLS);
                if let Some(l) = location.filter(|l| !l.is_empty()) {
                    let row: Option<$crate::session::SessionRow> = $crate::__sqlx::query_as(&sql).bind(l.to_owned()).fetch_optional(&self.pool).await.map_err($crate::DbError::from_sqlx)?;
                    return row.map(|r| r.into_model()).transpose();
                }
                Ok(None)
            }

            async fn session_events(&self, ctx: &$crate::AuditCtx, id: ::ketacare_domain::ids::RecordId) -> $crate::DbResult<Vec<$crate::session::SessionEvent>> {
                let sql = format!("SELECT {} FROM session_events WHERE session_id = $1 ORDER BY seq", $crate::session::EVENT_COLS);
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                let rows: Vec<$crate::session::EventRow> = $crate::__sqlx::query_as(&sql).bind(id.to_string()).fetch_all(&mut *tx).await.map_err($crate::DbError::from_sqlx)?;
                let e = $crate::sql::event(ctx, ::ketacare_domain::audit::AuditAction::Read, ::ketacare_domain::audit::AuditOutcome::Success, "SessionEvent", Some(id.to_string()), None, Some(format!("{} events", rows.len())));
                Self::__audit(&mut *tx, &e).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)?;
                rows.into_iter().map(|r| r.into_model()).collect()
            }

            async fn write_session_input(&self, ctx: &$crate::AuditCtx, w: &$crate::session::SessionWrite) -> $crate::DbResult<usize> {
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                if let Some((next, ev)) = &w.event {
                    Self::__move_session(&mut *tx, ctx, next, ev).await?;
                }
                // Replaced or cleared latches first: the new alarm of the same rule needs the slot.
                for id in &w.cleared {
                    $crate::__sqlx::query("UPDATE session_alarms SET cleared_at = $1 WHERE id = $2 AND cleared_at IS NULL AND acknowledged_at IS NOT NULL")
                        .bind($crate::codec::ts(ctx.at))
                        .bind(id.to_string())
                        .execute(&mut *tx)
                        .await
                        .map_err($crate::DbError::from_sqlx)?;
                }
                let mut stored = 0usize;
                let mut touched: Vec<(String, ::ketacare_domain::ids::PatientId)> = Vec::new();
                for r in &w.readings {
                    let done = $crate::__sqlx::query("INSERT INTO session_readings (id, session_id, patient_id, vital, value, observed_at, received_at, source, device_id, message_id, recorded_by_name) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING")
                        .bind(r.id.to_string())
                        .bind(r.session_id.to_string())
                        .bind(r.patient_id.to_string())
                        .bind(r.vital.code())
                        .bind(r.value.normalize().to_string())
                        .bind($crate::codec::ts(r.observed_at))
                        .bind($crate::codec::ts(r.received_at))
                        .bind(r.source.code())
                        .bind(r.device_id.clone())
                        .bind(r.message_id.clone())
                        .bind(r.recorded_by_name.clone())
                        .execute(&mut *tx)
                        .await
                        .map_err($crate::DbError::from_sqlx)?;
                    stored += usize::try_from(done.rows_affected()).unwrap_or(0);
                    if !touched.iter().any(|(s, _)| *s == r.session_id.to_string()) {
                        touched.push((r.session_id.to_string(), r.patient_id));
                    }
                }
                for a in &w.raised {
                    $crate::__sqlx::query("INSERT INTO session_alarms (id, session_id, patient_id, rule, level, message, source, raised_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                        .bind(a.id.to_string())
                        .bind(a.session_id.to_string())
                        .bind(a.patient_id.to_string())
                        .bind(a.rule.clone())
                        .bind(a.level.code())
                        .bind(a.message.clone())
                        .bind(a.source.clone())
                        .bind($crate::codec::ts(a.raised_at))
                        .execute(&mut *tx)
                        .await
                        .map_err($crate::DbError::from_sqlx)?;
                    if !touched.iter().any(|(s, _)| *s == a.session_id.to_string()) {
                        touched.push((a.session_id.to_string(), a.patient_id));
                    }
                }
                for (sid, pid) in &touched {
                    let e = $crate::sql::event(ctx, ::ketacare_domain::audit::AuditAction::Create, ::ketacare_domain::audit::AuditOutcome::Success, "SessionReading", Some(sid.clone()), Some(*pid), Some(format!("{} readings, {} alarms", w.readings.len(), w.raised.len())));
                    Self::__audit(&mut *tx, &e).await?;
                    Self::__notify_session(&mut *tx, sid).await?;
                }
                tx.commit().await.map_err($crate::DbError::from_sqlx)?;
                Ok(stored)
            }

            async fn session_readings(&self, ctx: &$crate::AuditCtx, id: ::ketacare_domain::ids::RecordId, since: Option<::chrono::DateTime<::chrono::Utc>>) -> $crate::DbResult<Vec<$crate::session::SessionReading>> {
                let sql = format!("SELECT {} FROM session_readings WHERE session_id = $1 AND observed_at >= $2 ORDER BY observed_at, vital", $crate::session::READING_COLS);
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                let rows: Vec<$crate::session::ReadingRow> = $crate::__sqlx::query_as(&sql)
                    .bind(id.to_string())
                    .bind(since.map($crate::codec::ts).unwrap_or_default())
                    .fetch_all(&mut *tx)
                    .await
                    .map_err($crate::DbError::from_sqlx)?;
                let e = $crate::sql::event(ctx, ::ketacare_domain::audit::AuditAction::Read, ::ketacare_domain::audit::AuditOutcome::Success, "SessionReading", Some(id.to_string()), None, Some(format!("{} readings", rows.len())));
                Self::__audit(&mut *tx, &e).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)?;
                rows.into_iter().map(|r| r.into_model()).collect()
            }

            async fn readings_received_since(&self, ctx: &$crate::AuditCtx, id: ::ketacare_domain::ids::RecordId, after: ::chrono::DateTime<::chrono::Utc>) -> $crate::DbResult<Vec<$crate::session::SessionReading>> {
                let sql = format!("SELECT {} FROM session_readings WHERE session_id = $1 AND received_at > $2 ORDER BY received_at, id", $crate::session::READING_COLS);
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                let rows: Vec<$crate::session::ReadingRow> = $crate::__sqlx::query_as(&sql).bind(id.to_string()).bind($crate::codec::ts(after)).fetch_all(&mut *tx).await.map_err($crate::DbError::from_sqlx)?;
                let e = $crate::sql::event(ctx, ::ketacare_domain::audit::AuditAction::Read, ::ketacare_domain::audit::AuditOutcome::Success, "SessionReading", Some(id.to_string()), None, Some(format!("{} new readings", rows.len())));
                Self::__audit(&mut *tx, &e).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)?;
                rows.into_iter().map(|r| r.into_model()).collect()
            }

            async fn last_readings(&self, id: ::ketacare_domain::ids::RecordId) -> $crate::DbResult<Vec<$crate::session::SessionReading>> {
                // One indexed look-up per vital (session, vital, observed_at): constant time
                // however long the session has run.
                let sql = format!(
                    "SELECT {} FROM session_readings WHERE session_id = $1 AND vital = $2 ORDER BY observed_at DESC, received_at DESC LIMIT 1",
                    $crate::session::READING_COLS
                );
                let mut out: Vec<$crate::session::SessionReading> = Vec::new();
                for v in ::ketacare_domain::session::Vital::ALL {
                    let row: Option<$crate::session::ReadingRow> = $crate::__sqlx::query_as(&sql).bind(id.to_string()).bind(v.code()).fetch_optional(&self.pool).await.map_err($crate::DbError::from_sqlx)?;
                    if let Some(r) = row {
                        out.push(r.into_model()?);
                    }
                }
                Ok(out)
            }

            async fn live_session_alarms(&self, id: ::ketacare_domain::ids::RecordId) -> $crate::DbResult<Vec<$crate::session::SessionAlarm>> {
                let sql = format!("SELECT {} FROM session_alarms WHERE session_id = $1 AND cleared_at IS NULL ORDER BY raised_at, id", $crate::session::ALARM_COLS);
                let rows: Vec<$crate::session::AlarmRow> = $crate::__sqlx::query_as(&sql).bind(id.to_string()).fetch_all(&self.pool).await.map_err($crate::DbError::from_sqlx)?;
                rows.into_iter().map(|r| r.into_model()).collect()
            }

            async fn session_alarms(&self, ctx: &$crate::AuditCtx, id: ::ketacare_domain::ids::RecordId, live_only: bool) -> $crate::DbResult<Vec<$crate::session::SessionAlarm>> {
                let sql = format!("SELECT {} FROM session_alarms WHERE session_id = $1 AND ($2 = 0 OR cleared_at IS NULL) ORDER BY raised_at, id", $crate::session::ALARM_COLS);
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                let rows: Vec<$crate::session::AlarmRow> = $crate::__sqlx::query_as(&sql).bind(id.to_string()).bind(i64::from(live_only)).fetch_all(&mut *tx).await.map_err($crate::DbError::from_sqlx)?;
                let e = $crate::sql::event(ctx, ::ketacare_domain::audit::AuditAction::Read, ::ketacare_domain::audit::AuditOutcome::Success, "SessionAlarm", Some(id.to_string()), None, Some(format!("{} alarms", rows.len())));
                Self::__audit(&mut *tx, &e).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)?;
                rows.into_iter().map(|r| r.into_model()).collect()
            }

            async fn acknowledge_session_alarm(&self, ctx: &$crate::AuditCtx, id: $crate::__uuid::Uuid, by: ::ketacare_domain::ids::UserId, by_name: &str, action: &str, event: Option<(&$crate::session::TreatmentSession, &$crate::session::SessionEvent)>) -> $crate::DbResult<$crate::session::SessionAlarm> {
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                let done = $crate::__sqlx::query("UPDATE session_alarms SET acknowledged_at = $1, acknowledged_by = $2, acknowledged_by_name = $3, action_taken = $4 WHERE id = $5 AND acknowledged_at IS NULL")
                    .bind($crate::codec::ts(ctx.at))
                    .bind(by.to_string())
                    .bind(by_name.to_owned())
                    .bind(action.to_owned())
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::DbError::from_sqlx)?;
                let sql = format!("SELECT {} FROM session_alarms WHERE id = $1", $crate::session::ALARM_COLS);
                let row: Option<$crate::session::AlarmRow> = $crate::__sqlx::query_as(&sql).bind(id.to_string()).fetch_optional(&mut *tx).await.map_err($crate::DbError::from_sqlx)?;
                let Some(alarm) = row.map(|r| r.into_model()).transpose()? else { return Err($crate::DbError::NotFound) };
                if done.rows_affected() != 1 {
                    return Err($crate::DbError::Conflict("the alarm was already acknowledged".into()));
                }
                if let Some((next, ev)) = event {
                    Self::__move_session(&mut *tx, ctx, next, ev).await?;
                }
                let e = $crate::sql::event(ctx, ::ketacare_domain::audit::AuditAction::Update, ::ketacare_domain::audit::AuditOutcome::Success, "SessionAlarm", Some(id.to_string()), Some(alarm.patient_id), Some(format!("acknowledged rule={}", alarm.rule)));
                Self::__audit(&mut *tx, &e).await?;
                Self::__notify_session(&mut *tx, &alarm.session_id.to_string()).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)?;
                Ok(alarm)
            }

            async fn listen_session_changes(&self, listener: $crate::session::ChangeListener) -> $crate::DbResult<bool> {
                self.__listen_session_changes(listener).await
            }
        }
    };
}
