//! The treatment session: booking a chair, the steps of the state machine with their checks,
//! vital signs from the nurse, device gateways and monitors, the alarm engine, ratings,
//! adverse events, discharge with a signature, addenda, the live board and the session note.
//!
//! The rules are the domain's (`ketacare_domain::session`); this module gathers the data they
//! need from the chart and the store, and writes what they decide in one transaction each.
//! The alarm engine keeps no state in memory: each input rebuilds the session's tracker from
//! the stored session, its live alarms and last readings, so any server (several behind one
//! PostgreSQL) can take any input, and a unique index keeps one live alarm per rule.

use chrono::{DateTime, Duration, Utc};
use ketacare_db::session::*;
use ketacare_db::{AuditCtx, DbError};
use ketacare_domain::access::Permission;
use ketacare_domain::assessment::AssessmentInput;
use ketacare_domain::audit::Actor;
use ketacare_domain::ids::{PatientId, RecordId};
use ketacare_domain::order::OrderStatus;
use ketacare_domain::patient::Sex;
use ketacare_domain::record::{ClinicalRecord, EncounterInput, RecordVersion};
use ketacare_domain::session::*;
use ketacare_domain::validation::FieldErrors;
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::{App, AppError, Principal, RecordInput};

/// Label prefix of room-display tokens.
pub const ROOM_DISPLAY_LABEL: &str = "room display";

/// Raw input to book a session on a chair.
#[derive(Clone, Debug, Default)]
pub struct BookingInput {
    /// Chair (treatment place) as the monitors name it in PV1-3, e.g. `ROOM1^CHAIR2`.
    pub chair: String,
    /// Monitor device id (EUI-64 or gateway id), optional.
    pub device_id: String,
    /// The dose order to give, optional at booking (needed before the dose).
    pub order_id: String,
    /// When the session is booked for, `YYYY-MM-DDTHH:MM` UTC or RFC 3339; blank: now. Up to
    /// 12 hours back (a session entered after the fact) and 90 days ahead.
    pub scheduled_at: String,
}

/// Raw input of the pre-dose checks the nurse confirms (the rest come from the chart).
#[derive(Clone, Debug, Default)]
pub struct ChecksInput {
    /// Consent on file: `yes` or `no`.
    pub consent: String,
    /// Escort home confirmed: `yes` or `no`.
    pub escort: String,
    /// Pregnancy test: `negative`, `positive`, `not_done` or `not_applicable`.
    pub pregnancy_test: String,
    /// A prescriber's decision to go ahead with a baseline above the gate (the reason).
    pub gate_decision: String,
}

/// One step of a session, as asked for.
#[derive(Clone, Debug)]
pub enum SessionAction {
    /// The patient arrived.
    CheckIn,
    /// Start the pre-dose checks.
    StartChecks,
    /// Record the nurse's checks.
    Checks(ChecksInput),
    /// Link the dose order (before the dose).
    LinkOrder(String),
    /// Bind a monitor (device id) now.
    BindMonitor(String),
    /// Start the dose (every check met), at `at` (blank: now; charted later: the time it
    /// started, up to 12 hours back).
    StartDose {
        /// When the dose started.
        at: String,
    },
    /// The dose is in: infusion finished, or injection given at `site`, at `at` (blank: now).
    DoseGiven {
        /// Injection site (needed for SC and IM), or blank for an infusion.
        site: String,
        /// When the dose ended (not before it started).
        at: String,
    },
    /// Pause (infusion or monitoring), with a reason.
    Pause(String),
    /// Resume.
    Resume,
    /// Stop the dose early, with a reason.
    Stop(String),
    /// Monitoring over; recovery.
    StartRecovery,
    /// Back from recovery to monitoring, with a reason.
    BackToMonitoring(String),
    /// Discharge with the escort present (`yes`), signed by the clinician.
    Discharge {
        /// Escort present: `yes` or `no`.
        escort_present: String,
        /// Note for the record.
        note: String,
    },
    /// Cancel before any dose, with a reason.
    Cancel(String),
    /// Adverse event.
    AdverseEvent(AdverseEventInput),
    /// A later note on a signed session.
    Addendum(String),
}

impl SessionAction {
    fn step(&self) -> Option<Step> {
        Some(match self {
            SessionAction::CheckIn => Step::CheckIn,
            SessionAction::StartChecks => Step::StartChecks,
            SessionAction::StartDose { .. } => Step::StartDose,
            SessionAction::DoseGiven { .. } => Step::DoseGiven,
            SessionAction::Pause(_) => Step::Pause,
            SessionAction::Resume => Step::Resume,
            SessionAction::Stop(_) => Step::Stop,
            SessionAction::StartRecovery => Step::StartRecovery,
            SessionAction::BackToMonitoring(_) => Step::BackToMonitoring,
            SessionAction::Discharge { .. } => Step::Discharge,
            SessionAction::Cancel(_) => Step::Cancel,
            _ => return None,
        })
    }

    fn kind(&self) -> &'static str {
        match self {
            SessionAction::Checks(_) => "checks",
            SessionAction::LinkOrder(_) => "order",
            SessionAction::BindMonitor(_) => "monitor",
            SessionAction::AdverseEvent(_) => "adverse_event",
            SessionAction::Addendum(_) => "addendum",
            SessionAction::Discharge { .. } => "signed",
            SessionAction::StartDose { .. } | SessionAction::DoseGiven { .. } | SessionAction::Stop(_) => "dose",
            _ => "step",
        }
    }
}

/// A vital sign as typed or sent (raw).
#[derive(Clone, Debug, Default)]
pub struct ReadingInput {
    /// Vital code (`systolic`, `diastolic`, `heart_rate`, `spo2`, `respiratory_rate`).
    pub vital: String,
    /// Value as typed.
    pub value: String,
    /// When measured, RFC 3339 or `YYYY-MM-DDTHH:MM` (UTC); blank = now.
    pub observed_at: String,
}

/// What the pre-dose gate sees now.
#[derive(Clone, Debug)]
pub struct GateView {
    /// The checks as they stand.
    pub checks: PreDoseChecks,
    /// What is still missing or failed (empty: the dose may start).
    pub unmet: Vec<String>,
}

/// A live alarm with its level now.
#[derive(Clone, Debug)]
pub struct LiveAlarm {
    /// The stored alarm.
    pub alarm: SessionAlarm,
    /// Level now (escalated when nobody acknowledged it in time).
    pub level_now: Level,
}

/// A timed prompt: something due at the protocol's time points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prompt {
    /// What (`vitals`, `cadss`, `moaas`).
    pub what: String,
    /// In words.
    pub label: String,
    /// Due at.
    pub due_at: DateTime<Utc>,
    /// Overdue now.
    pub overdue: bool,
}

/// One session as the session page and the note show it.
#[derive(Clone, Debug)]
pub struct SessionView {
    /// The session.
    pub session: TreatmentSession,
    /// Patient display name (staff only).
    pub patient_name: String,
    /// Patient MRN.
    pub mrn: String,
    /// Its events, oldest first.
    pub events: Vec<SessionEvent>,
    /// Readings, oldest first.
    pub readings: Vec<SessionReading>,
    /// Every alarm, oldest first.
    pub alarms: Vec<SessionAlarm>,
    /// Live alarms with their level now.
    pub live: Vec<LiveAlarm>,
    /// The pre-dose gate.
    pub gate: GateView,
    /// Discharge criteria not met now.
    pub discharge_unmet: Vec<String>,
    /// The linked dose order.
    pub order: Option<RecordVersion>,
    /// Prompts due.
    pub prompts: Vec<Prompt>,
    /// Server time of the view.
    pub now: DateTime<Utc>,
}

/// One chair on the live board.
#[derive(Clone, Debug)]
pub struct BoardChair {
    /// Session id.
    pub session_id: RecordId,
    /// Chair.
    pub chair: String,
    /// Patient initials (None on the room display).
    pub initials: Option<String>,
    /// Phase.
    pub phase: Phase,
    /// Minutes since check-in (or booking).
    pub elapsed_min: i64,
    /// Minutes since the dose started.
    pub since_dose_min: Option<i64>,
    /// Latest value of each vital with its age in seconds and when it was measured.
    pub latest: Vec<(Vital, Decimal, i64, DateTime<Utc>)>,
    /// Trend: the last 30 minutes of readings.
    pub trend: Vec<(Vital, DateTime<Utc>, Decimal)>,
    /// Live alarms.
    pub alarms: Vec<LiveAlarm>,
    /// Whether a monitor is bound.
    pub monitored: bool,
    /// Prompts due.
    pub prompts: Vec<Prompt>,
}

/// One message from a monitor (HL7) or a device gateway (JSON).
#[derive(Clone, Copy, Debug)]
pub struct MonitorBatch<'a> {
    /// HL7 or device gateway.
    pub source: ReadingSource,
    /// The sender's device id (EUI-64), if any.
    pub device_id: Option<&'a str>,
    /// The sender's location (PV1-3, the chair), if any.
    pub location: Option<&'a str>,
    /// The message's id (HL7 control id or the gateway's).
    pub message_id: Option<&'a str>,
    /// `(observation id or vital code, raw value, time)`.
    pub values: &'a [(String, String, Option<DateTime<Utc>>)],
    /// Recorded by (the monitor or gateway).
    pub by: &'a str,
}

/// Result of one input from a monitor or a gateway.
#[derive(Clone, Debug, Default)]
pub struct IngestOutcome {
    /// Readings newly stored (a resent one is stored once).
    pub stored: usize,
    /// Values that were not readings: implausible, "no value" markers, unknown codes.
    pub rejected: Vec<String>,
    /// Alarms raised.
    pub raised: Vec<SessionAlarm>,
}

fn yes_no(e: &mut FieldErrors, field: &str, raw: &str) -> Option<bool> {
    match raw.trim() {
        "yes" | "true" | "on" => Some(true),
        "no" | "false" => Some(false),
        _ => {
            e.add(field, "answer yes or no");
            None
        }
    }
}

fn reason(field: &str, raw: &str) -> Result<String, AppError> {
    let r = raw.trim();
    if r.chars().count() < 3 || r.chars().count() > 2000 {
        return Err(FieldErrors::single(field, "give a reason of 3 to 2000 characters").into());
    }
    Ok(r.to_owned())
}

fn valid_chair(raw: &str) -> Result<String, String> {
    let c = raw.trim();
    if c.is_empty() || c.len() > 60 || !c.chars().all(|ch| ch.is_ascii_alphanumeric() || "^ _-.".contains(ch)) {
        return Err("name the chair as the monitors send it in PV1-3 (letters, digits, ^ _ - . up to 60), e.g. ROOM1^CHAIR2".into());
    }
    Ok(c.trim_end_matches('^').to_owned())
}

fn valid_device(raw: &str) -> Result<Option<String>, String> {
    let d = raw.trim();
    if d.is_empty() {
        return Ok(None);
    }
    if d.len() > 64 || !d.chars().all(|ch| ch.is_ascii_alphanumeric() || "-_:.".contains(ch)) {
        return Err("a device id is the monitor's EUI-64 or gateway id (letters, digits, - _ : . up to 64)".into());
    }
    // EUI-64 is hexadecimal: one monitor, whatever the case it is written in.
    Ok(Some(d.to_ascii_uppercase()))
}

/// Parses a reading's time: RFC 3339, or `YYYY-MM-DDTHH:MM[:SS]` in UTC; blank is `now`.
fn reading_time(raw: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let t = raw.trim();
    if t.is_empty() {
        return Ok(now);
    }
    if let Ok(x) = DateTime::parse_from_rfc3339(t) {
        return Ok(x.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"] {
        if let Ok(x) = chrono::NaiveDateTime::parse_from_str(t, f) {
            return Ok(x.and_utc());
        }
    }
    Err("a time as 2026-11-30T09:15:00Z (RFC 3339) or 2026-11-30T09:15 (UTC)".into())
}

/// A time charted for a step: blank is now; otherwise not in the future, not before
/// `earliest` (the time the session was booked for, or the step before it) and not more than
/// 12 hours back.
fn charted_time(field: &str, raw: &str, now: DateTime<Utc>, earliest: DateTime<Utc>) -> Result<DateTime<Utc>, AppError> {
    let t = reading_time(raw, now).map_err(|m| FieldErrors::single(field, m))?;
    if t > now + Duration::minutes(2) {
        return Err(FieldErrors::single(field, "must not be in the future").into());
    }
    if t < earliest || t < now - Duration::hours(12) {
        return Err(FieldErrors::single(
            field,
            format!("must be after {} and within the last 12 hours", earliest.format("%Y-%m-%d %H:%M UTC")),
        )
        .into());
    }
    Ok(t)
}

/// Seconds per point of the board's trend.
const TREND_SLOT_SECONDS: i64 = 30;

/// The board's trend: at most one point per vital per slot (the last of each), from points in
/// time order, so a chair sending every second does not send thousands of points to every
/// screen.
fn downsample(points: &[(Vital, DateTime<Utc>, Decimal)]) -> Vec<(Vital, DateTime<Utc>, Decimal)> {
    let mut out: Vec<(Vital, DateTime<Utc>, Decimal)> = Vec::new();
    for &(vital, at, value) in points {
        let slot = at.timestamp().div_euclid(TREND_SLOT_SECONDS);
        match out.iter_mut().rev().find(|(v, ..)| *v == vital) {
            Some(last) if last.1.timestamp().div_euclid(TREND_SLOT_SECONDS) == slot => *last = (vital, at, value),
            _ => out.push((vital, at, value)),
        }
    }
    out
}

/// A session's trend as this server last saw it.
#[derive(Debug)]
pub(crate) struct Trend {
    /// The latest `received_at` seen.
    cursor: DateTime<Utc>,
    /// Downsampled points within the window, in time order.
    points: Vec<(Vital, DateTime<Utc>, Decimal)>,
}

/// Initials of a name, for the board ("A. Q.").
fn initials(given: &str, family: &str) -> String {
    let f = |s: &str| s.chars().next().map(|c| format!("{}.", c.to_uppercase())).unwrap_or_default();
    format!("{} {}", f(given), f(family)).trim().to_owned()
}

impl App {
    fn session_actor(&self, name: &str) -> AuditCtx {
        AuditCtx {
            actor: Actor { user_id: None, username: name.to_owned(), role: None, session_ref: Some("monitor".into()), client_addr: None },
            at: self.clock.now(),
            purpose: "treatment",
        }
    }

    /// Books a treatment session on a chair: a treatment encounter (the screening re-check
    /// runs first) and the session row, scheduled.
    pub async fn book_session(&self, p: &Principal, patient: PatientId, input: &BookingInput) -> Result<TreatmentSession, AppError> {
        self.authorize(p, Permission::WriteClinical, "TreatmentSession").await?;
        self.authorize_patient(p, patient).await?;
        let mut e = FieldErrors::default();
        let chair = e.check("chair", valid_chair(&input.chair));
        let device = e.check("device_id", valid_device(&input.device_id));
        let order = if input.order_id.trim().is_empty() { None } else { e.check("order_id", RecordId::parse(&input.order_id)) };
        let now = self.clock.now();
        let scheduled = e.check("scheduled_at", reading_time(&input.scheduled_at, now)).and_then(|t| {
            if t < now - Duration::hours(12) || t > now + Duration::days(90) {
                e.add("scheduled_at", "from 12 hours ago to 90 days ahead");
                None
            } else {
                Some(t)
            }
        });
        e.into_result()?;
        let (Some(chair), Some(device), Some(scheduled)) = (chair, device, scheduled) else {
            return Err(AppError::Internal("validated".into()));
        };
        if let Some(o) = order {
            self.session_order(p, patient, o).await?;
        }
        // Refuse before anything is written (the unique indexes still decide a race).
        let mut e = FieldErrors::default();
        if self.store.session_for_monitor(None, Some(&chair)).await?.is_some() {
            e.add("chair", "the chair has an active session; discharge or cancel it first");
        }
        if let Some(d) = device.as_deref() {
            if self.store.session_for_monitor(Some(d), None).await?.is_some_and(|s| s.device_id.as_deref() == Some(d)) {
                e.add("device_id", "the monitor is bound to another active session; discharge or cancel it first");
            }
        }
        if self.patient_sessions(p, patient).await?.iter().any(TreatmentSession::is_active) {
            e.add("patient", "the patient already has an active session; discharge or cancel it first");
        }
        e.into_result()?;
        let enc = EncounterInput {
            kind: "treatment".into(),
            start: scheduled.format("%Y-%m-%dT%H:%M").to_string(),
            reason: format!("Treatment session on {chair}"),
            ..Default::default()
        };
        let v = self.add_record(p, patient, &RecordInput::Encounter(enc)).await?;
        let s = TreatmentSession {
            id: v.record_id,
            patient_id: patient,
            chair: chair.clone(),
            device_id: device.clone(),
            order_id: order,
            phase: Phase::Scheduled,
            seq: 1,
            created_at: now,
            scheduled_at: scheduled,
            created_by: p.user.id,
            created_by_name: p.user.display_name.clone(),
            bound_at: device.as_ref().map(|_| now),
            baseline: (None, None),
            dose_started_at: None,
            dose_ended_at: None,
            signed_at: None,
            signed_by_name: None,
        };
        let detail = format!("Booked on {chair}{}", device.as_deref().map(|d| format!("; monitor {d}")).unwrap_or_default());
        let ev = self.event(p, &s, "created", detail, None);
        match self.store.create_treatment_session(&self.ctx(p, "treatment"), &s, &ev).await {
            Err(DbError::Conflict(c)) => {
                let field = if c.contains("device") {
                    "device_id"
                } else if c.contains("patient") {
                    "patient"
                } else {
                    "chair"
                };
                Err(FieldErrors::single(field, format!("{field} is in use by another active session; discharge or cancel it first")).into())
            }
            r => r.map_err(AppError::from),
        }?;
        self.announce(s.id);
        Ok(s)
    }

    fn event(&self, p: &Principal, s: &TreatmentSession, kind: &str, detail: String, reason: Option<String>) -> SessionEvent {
        SessionEvent {
            id: Uuid::new_v4(),
            session_id: s.id,
            seq: s.seq,
            kind: kind.into(),
            at: self.clock.now(),
            user_id: p.user.id,
            by_name: p.user.display_name.clone(),
            phase: s.phase,
            detail,
            reason,
        }
    }

    async fn session_order(&self, p: &Principal, patient: PatientId, id: RecordId) -> Result<RecordVersion, AppError> {
        let v = self.record(p, id).await.map_err(|_| FieldErrors::single("order_id", "no such dose order"))?;
        if v.patient_id != patient || !matches!(v.record, ClinicalRecord::DoseOrder(_)) || v.is_void() {
            return Err(FieldErrors::single("order_id", "not a dose order of this patient").into());
        }
        Ok(v)
    }

    /// A session, checked to exist (the read is audited).
    pub async fn treatment_session(&self, p: &Principal, id: RecordId) -> Result<TreatmentSession, AppError> {
        self.authorize(p, Permission::ReadPatients, "TreatmentSession").await?;
        self.authorize_owner(p, ketacare_db::Owned::TreatmentSession, &id.to_string()).await?;
        self.store.get_treatment_session(&self.ctx(p, "treatment"), id).await?.ok_or(AppError::NotFound)
    }

    /// A patient's sessions, newest first.
    pub async fn patient_sessions(&self, p: &Principal, patient: PatientId) -> Result<Vec<TreatmentSession>, AppError> {
        self.authorize(p, Permission::ReadPatients, "TreatmentSession").await?;
        self.authorize_patient(p, patient).await?;
        self.patient(p, patient).await?;
        Ok(self.store.patient_sessions(&self.ctx(p, "treatment"), patient).await?)
    }

    async fn pregnancy_test_required(&self, p: &Principal, patient: PatientId) -> Result<bool, AppError> {
        // Clinic policy `session.pregnancy_test`: `female` (default: every patient recorded as
        // female) or `off`.
        let policy = self.policy_value("session.pregnancy_test").await?;
        if policy.as_deref() == Some("off") {
            return Ok(false);
        }
        Ok(self.patient(p, patient).await?.demographics.sex == Sex::Female)
    }

    /// The pre-dose gate now: the nurse's checks from the last `checks` event, the screening
    /// re-check, today's weight, the double-checked order and the last pre-dose blood pressure.
    pub async fn gate(&self, p: &Principal, s: &TreatmentSession, events: &[SessionEvent]) -> Result<GateView, AppError> {
        let mut c = PreDoseChecks { pregnancy_test_required: self.pregnancy_test_required(p, s.patient_id).await?, ..Default::default() };
        c.screening_allows = Some(self.recheck_before_session(p, s.patient_id).await.is_ok());
        let chart = self.chart(p, s.patient_id).await?;
        let today = self.clock.now().date_naive();
        c.weight_today = Some(chart.latest_weight().is_some_and(|w| w.effective.date_naive() == today));
        c.dose_double_checked = match s.order_id {
            None => None,
            Some(o) => {
                Some(matches!(self.record(p, o).await?.record, ClinicalRecord::DoseOrder(ref d) if d.status == OrderStatus::Checked))
            }
        };
        if let Some(ev) = events.iter().rev().find(|e| e.kind == "checks") {
            let get = |k: &str| ev.detail.lines().find_map(|l| l.strip_prefix(&format!("{k}=")).map(str::to_owned));
            c.consent_on_file = get("consent").map(|v| v == "yes");
            c.escort_confirmed = get("escort").map(|v| v == "yes");
            c.pregnancy_test_ok = get("pregnancy_test").and_then(|v| match v.as_str() {
                "negative" => Some(true),
                "positive" => Some(false),
                _ => None,
            });
            c.gate_decision_by = get("gate_decision_by").filter(|v| !v.is_empty());
        }
        let last = self.store.last_readings(s.id).await?;
        let whole = |v: Vital| last.iter().find(|r| r.vital == v).and_then(|r| u32::try_from(r.value.round().mantissa()).ok());
        c.baseline_bp =
            if s.phase.dose_started() { s.baseline.0.zip(s.baseline.1) } else { whole(Vital::Systolic).zip(whole(Vital::Diastolic)) };
        let unmet = unmet_checks(&self.knowledge.session, &c);
        Ok(GateView { checks: c, unmet })
    }

    async fn discharge_state(
        &self,
        p: &Principal,
        s: &TreatmentSession,
        events: &[SessionEvent],
        escort: bool,
    ) -> Result<Vec<String>, AppError> {
        let now = self.clock.now();
        let last = self.store.last_readings(s.id).await?;
        // Back near baseline means a blood pressure taken after the dose ended, never the
        // baseline itself.
        let latest_sbp = last
            .iter()
            .find(|r| r.vital == Vital::Systolic && s.dose_ended_at.is_some_and(|d| r.observed_at >= d))
            .and_then(|r| u32::try_from(r.value.round().mantissa()).ok());
        let recovery_from = events.iter().rev().find(|e| e.phase == Phase::Recovery && e.kind == "step").map(|e| e.at);
        let latest_moaas = events
            .iter()
            .rev()
            .filter(|e| e.kind == "rating" && recovery_from.is_some_and(|r| e.at >= r))
            .find_map(|e| e.detail.lines().find_map(|l| l.strip_prefix("moaas=")).and_then(|v| v.parse::<u32>().ok()));
        let open =
            self.store.session_alarms(&self.ctx(p, "treatment"), s.id, true).await?.iter().filter(|a| a.acknowledged.is_none()).count();
        let st = DischargeState {
            minutes_since_dose: s.dose_ended_at.map_or(0, |d| (now - d).num_minutes()),
            baseline_sbp: s.baseline.0,
            latest_sbp,
            latest_moaas,
            open_alarms: open,
            escort_present: escort,
        };
        Ok(unmet_discharge(&self.knowledge.session, &st))
    }

    /// Takes one step of a session (or records checks, an adverse event, an addendum).
    /// `seq` is the event number the caller saw: a step taken by someone else since is a
    /// conflict, never applied twice.
    pub async fn session_action(
        &self,
        p: &Principal,
        id: RecordId,
        seq: Option<i64>,
        action: SessionAction,
    ) -> Result<TreatmentSession, AppError> {
        self.authorize(p, Permission::WriteClinical, "TreatmentSession").await?;
        let s = self.treatment_session(p, id).await?;
        if seq.is_some_and(|q| q != s.seq) {
            return Err(AppError::Conflict("the session changed since you opened it; reload and try again".into()));
        }
        let events = self.store.session_events(&self.ctx(p, "treatment"), id).await?;
        if s.signed_at.is_some() && !matches!(action, SessionAction::Addendum(_)) {
            return Err(FieldErrors::single("action", "the session note is signed and locked; add an addendum instead").into());
        }
        let mut next = s.clone();
        next.seq += 1;
        let now = self.clock.now();
        let mut reason_given = None;
        let detail: String;
        if let Some(step) = action.step() {
            next.phase = s.phase.next(&step).map_err(|m| FieldErrors::single("step", m))?;
        }
        match &action {
            SessionAction::CheckIn => detail = "Checked in".into(),
            SessionAction::StartChecks => detail = "Pre-dose checks started".into(),
            SessionAction::Checks(c) => {
                if !matches!(s.phase, Phase::CheckedIn | Phase::PreDoseChecks) {
                    return Err(FieldErrors::single("step", "pre-dose checks are recorded after check-in and before the dose").into());
                }
                let mut e = FieldErrors::default();
                let consent = yes_no(&mut e, "consent", &c.consent);
                let escort = yes_no(&mut e, "escort", &c.escort);
                let preg = c.pregnancy_test.trim();
                if !["negative", "positive", "not_done", "not_applicable"].contains(&preg) {
                    e.add("pregnancy_test", "one of negative, positive, not_done, not_applicable");
                }
                let decision = c.gate_decision.trim();
                if !decision.is_empty() && !p.can(Permission::Prescribe) {
                    e.add("gate_decision", "only a prescriber decides to go ahead above the blood-pressure gate");
                }
                e.into_result()?;
                let yn = |b: Option<bool>| if b == Some(true) { "yes" } else { "no" };
                detail = format!(
                    "consent={}\nescort={}\npregnancy_test={preg}\ngate_decision_by={}",
                    yn(consent),
                    yn(escort),
                    if decision.is_empty() { String::new() } else { p.user.display_name.clone() }
                );
                if !decision.is_empty() {
                    reason_given = Some(reason("gate_decision", decision)?);
                }
            }
            SessionAction::LinkOrder(o) => {
                if s.phase.dose_started() {
                    return Err(FieldErrors::single("order_id", "the dose has started; the order cannot change").into());
                }
                let oid = RecordId::parse(o).map_err(|m| FieldErrors::single("order_id", m))?;
                self.session_order(p, s.patient_id, oid).await?;
                next.order_id = Some(oid);
                detail = format!("Dose order {oid} linked");
            }
            SessionAction::BindMonitor(d) => {
                let dev = valid_device(d).map_err(|m| FieldErrors::single("device_id", m))?;
                if let Some(d) = dev.as_deref() {
                    if self
                        .store
                        .session_for_monitor(Some(d), None)
                        .await?
                        .is_some_and(|o| o.id != s.id && o.device_id.as_deref() == Some(d))
                    {
                        return Err(FieldErrors::single(
                            "device_id",
                            "the monitor is bound to another active session; unbind it there first",
                        )
                        .into());
                    }
                }
                next.bound_at = dev.as_ref().map(|_| now);
                next.device_id = dev.clone();
                detail = match dev {
                    Some(d) => format!("Monitor {d} bound"),
                    None => "Monitor unbound: vitals by hand".into(),
                };
            }
            SessionAction::StartDose { at } => {
                let started = charted_time("at", at, now, s.scheduled_at.min(s.created_at))?;
                let gate = self.gate(p, &s, &events).await?;
                if !gate.unmet.is_empty() {
                    return Err(FieldErrors::single("checks", format!("The dose cannot start: {}", gate.unmet.join("; "))).into());
                }
                // A dose order is given once: an order already given in another session cannot
                // pass the gate again (a unique index holds this against races too).
                if let Some(o) = s.order_id {
                    let given = self.store.patient_sessions(&self.ctx(p, "treatment"), s.patient_id).await?;
                    if let Some(other) = given.iter().find(|x| x.id != s.id && x.order_id == Some(o) && x.dose_started_at.is_some()) {
                        return Err(FieldErrors::single(
                            "order_id",
                            format!(
                                "this dose order was given in the session of {}; the prescriber orders the next dose",
                                other.scheduled_at.format("%Y-%m-%d")
                            ),
                        )
                        .into());
                    }
                }
                next.baseline = gate.checks.baseline_bp.map_or((None, None), |(a, b)| (Some(a), Some(b)));
                next.dose_started_at = Some(started);
                let order = match s.order_id {
                    Some(o) => self.record(p, o).await?.record.summary(),
                    None => String::new(),
                };
                detail = format!(
                    "Dose started at {}: {order}; baseline {}/{} mmHg",
                    started.format("%H:%M:%S UTC"),
                    next.baseline.0.unwrap_or(0),
                    next.baseline.1.unwrap_or(0)
                );
            }
            SessionAction::DoseGiven { site, at } => {
                let ended = charted_time("at", at, now, s.dose_started_at.unwrap_or(s.created_at))?;
                let route = match s.order_id {
                    Some(o) => match self.record(p, o).await?.record {
                        ClinicalRecord::DoseOrder(d) => Some(d.route),
                        _ => None,
                    },
                    None => None,
                };
                let injection = route.is_some_and(|r| !matches!(r, ketacare_domain::dose::Route::Iv));
                let site = site.trim();
                if injection && (site.is_empty() || site.len() > 80) {
                    return Err(FieldErrors::single("site", "name the injection site (e.g. abdomen, left lower quadrant)").into());
                }
                next.dose_ended_at = Some(ended);
                let t = ended.format("%H:%M:%S UTC");
                detail = if injection { format!("Injection given at {t}, site: {site}") } else { format!("Infusion complete at {t}") };
            }
            SessionAction::Pause(r) => {
                reason_given = Some(reason("reason", r)?);
                detail = if s.phase == Phase::Dosing { "Infusion paused".into() } else { "Monitoring paused".into() };
            }
            SessionAction::Resume => detail = "Resumed".into(),
            SessionAction::Stop(r) => {
                reason_given = Some(reason("reason", r)?);
                if next.dose_ended_at.is_none() {
                    next.dose_ended_at = Some(now);
                }
                detail = "Dose stopped early".into();
            }
            SessionAction::StartRecovery => detail = "Recovery started".into(),
            SessionAction::BackToMonitoring(r) => {
                reason_given = Some(reason("reason", r)?);
                detail = "Back to monitoring".into();
            }
            SessionAction::Cancel(r) => {
                reason_given = Some(reason("reason", r)?);
                detail = "Cancelled before any dose".into();
            }
            SessionAction::Discharge { escort_present, note } => {
                let mut e = FieldErrors::default();
                let escort = yes_no(&mut e, "escort_present", escort_present);
                e.into_result()?;
                let unmet = self.discharge_state(p, &s, &events, escort == Some(true)).await?;
                if !unmet.is_empty() {
                    return Err(FieldErrors::single("discharge", format!("Discharge criteria not met: {}", unmet.join("; "))).into());
                }
                next.signed_at = Some(now);
                next.signed_by_name = Some(p.user.display_name.clone());
                detail = format!(
                    "Discharged with escort; note signed by {}{}",
                    p.user.display_name,
                    if note.trim().is_empty() { String::new() } else { format!(". {}", note.trim()) }
                );
            }
            SessionAction::AdverseEvent(input) => {
                let ae = input.parse()?;
                detail = format!(
                    "kind={}\ngrade={}\nserious={}\naction={}\noutcome={}\ndescription={}",
                    ae.kind,
                    ae.grade,
                    if ae.serious { "yes" } else { "no" },
                    ae.action,
                    ae.outcome,
                    ae.description.unwrap_or_default()
                );
            }
            SessionAction::Addendum(text) => {
                if s.signed_at.is_none() {
                    return Err(
                        FieldErrors::single("addendum", "addenda follow a signed note; before signing, record the event itself").into()
                    );
                }
                detail = reason("addendum", text)?;
            }
        }
        let ev = self.event(p, &next, action.kind(), detail, reason_given);
        self.store.append_session_event(&self.ctx(p, "treatment"), &next, &ev).await?;
        // A step can raise or clear nothing by itself, but the engine must see the new phase
        // (e.g. a stale monitor matters more once the dose has started).
        self.announce(next.id);
        Ok(next)
    }

    /// Records a rating (CADSS, MOAA/S or any instrument) in the session: the assessment goes
    /// into the chart tied to the session, and CADSS and MOAA/S feed the alarm engine.
    pub async fn session_rating(
        &self,
        p: &Principal,
        id: RecordId,
        instrument: &str,
        answers: Vec<String>,
        timepoint: &str,
    ) -> Result<Vec<SessionAlarm>, AppError> {
        let s = self.treatment_session(p, id).await?;
        if s.signed_at.is_some() {
            return Err(FieldErrors::single("instrument", "the session note is signed and locked; add an addendum instead").into());
        }
        let input = AssessmentInput {
            instrument: instrument.to_owned(),
            answers,
            session: id.to_string(),
            timepoint: timepoint.to_owned(),
            ..Default::default()
        };
        let (_, score, _) = self.record_assessment(p, s.patient_id, &input).await?;
        let total = score.total.unwrap_or_default();
        // The session's entry and the alarm it raises are written together (the assessment
        // itself is already in the chart, tied to the session).
        let mut next = s.clone();
        next.seq += 1;
        let ev = self.event(p, &next, "rating", format!("{instrument}={}", total.normalize()), None);
        let ctx = self.ctx(p, "treatment");
        let input = SessionInput::Rating(self.clock.now(), instrument.to_owned(), total);
        let out = self.feed_session(&ctx, &s, vec![input], Vec::new(), Vec::new(), Some((next, ev))).await?;
        self.announce(id);
        Ok(out.raised)
    }

    /// A nurse types vital signs in (several at once: a blood pressure with heart rate).
    pub async fn manual_readings(&self, p: &Principal, id: RecordId, inputs: &[ReadingInput]) -> Result<IngestOutcome, AppError> {
        self.authorize(p, Permission::WriteClinical, "SessionReading").await?;
        let s = self.treatment_session(p, id).await?;
        if s.phase.is_final() {
            return Err(FieldErrors::single("vital", "the session is closed; add an addendum to a signed note instead").into());
        }
        let now = self.clock.now();
        let mut e = FieldErrors::default();
        let mut readings = Vec::new();
        for (i, r) in inputs.iter().enumerate() {
            if r.value.trim().is_empty() {
                continue;
            }
            let field = if r.vital.is_empty() { format!("reading_{i}") } else { r.vital.clone() };
            let Some(vital) = e.check(
                &field,
                Vital::parse(r.vital.trim()).map_err(|_| "one of systolic, diastolic, heart_rate, spo2, respiratory_rate".to_string()),
            ) else {
                continue;
            };
            let value = r.value.trim().parse::<Decimal>().map_err(|_| format!("a number in {}", vital.display_unit()));
            let Some(value) = e.check(vital.code(), value) else { continue };
            if let Err(m) = plausible(&self.knowledge.session, vital, value) {
                e.add(vital.code(), format!("{m}: check the patient and measure again (a reading outside these limits is never stored)"));
                continue;
            }
            let Some(at) = e.check("observed_at", reading_time(&r.observed_at, now)) else { continue };
            if at > now + Duration::minutes(2) {
                e.add("observed_at", "must not be in the future");
                continue;
            }
            let earliest = s.scheduled_at.min(s.created_at) - Duration::minutes(1);
            if at < earliest {
                e.add("observed_at", format!("must not be before the session was booked for ({})", earliest.format("%Y-%m-%d %H:%M UTC")));
                continue;
            }
            readings.push(self.reading(&s, vital, value, at, ReadingSource::Manual, None, None, &p.user.display_name));
        }
        e.into_result()?;
        if readings.is_empty() {
            return Err(FieldErrors::single("vital", "enter at least one value").into());
        }
        let ctx = self.ctx(p, "treatment");
        let inputs: Vec<SessionInput> = readings.iter().map(|r| SessionInput::Vital(r.observed_at, r.vital, r.value)).collect();
        let out = self.feed_session(&ctx, &s, inputs, readings, Vec::new(), None).await?;
        self.announce(id);
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn reading(
        &self,
        s: &TreatmentSession,
        vital: Vital,
        value: Decimal,
        at: DateTime<Utc>,
        source: ReadingSource,
        device: Option<String>,
        message: Option<String>,
        by: &str,
    ) -> SessionReading {
        SessionReading {
            id: Uuid::new_v4(),
            session_id: s.id,
            patient_id: s.patient_id,
            vital,
            value,
            observed_at: at,
            received_at: self.clock.now(),
            source,
            device_id: device,
            message_id: message,
            recorded_by_name: by.to_owned(),
        }
    }

    /// Readings from a monitor (HL7) or a device gateway (JSON): `(observation id or vital
    /// code, raw value, time)`. The session is found by device id, else by location. Values
    /// that are not readings (no-value markers, implausible, unknown codes) are listed in
    /// `rejected` and never stored; readings and the alarms they raise are stored before this
    /// returns (the caller acknowledges after).
    pub async fn ingest_monitor(&self, batch: MonitorBatch<'_>, actor: Option<&Principal>) -> Result<IngestOutcome, AppError> {
        let MonitorBatch { source, device_id, location, message_id, values, by } = batch;
        let device_upper = device_id.map(str::to_ascii_uppercase);
        let device_id = device_upper.as_deref();
        let Some(s) = self.store.session_for_monitor(device_id, location).await? else {
            return Err(AppError::NotFound);
        };
        // A person posting readings by hand opens the patient's session: the chart scope
        // applies. A device gateway (an API token) and the monitors never are held back, so
        // that no scope can silence a chair's alarms.
        if let Some(p) = actor.filter(|p| matches!(p.kind, crate::PrincipalKind::Session { .. })) {
            self.authorize_patient(p, s.patient_id).await?;
        }
        // Found by location, but the chair's session is bound to another monitor: this device
        // is not the patient's (moved, or misconfigured). Never file it there.
        if let (Some(bound), Some(sender)) = (s.device_id.as_deref(), device_id) {
            if bound != sender {
                return Err(AppError::Conflict(
                    "this monitor is not the one bound to the chair's session; bind it on the session page first".into(),
                ));
            }
        }
        let now = self.clock.now();
        let earliest = s.scheduled_at.min(s.created_at) - Duration::minutes(1);
        let mut out = IngestOutcome::default();
        let mut readings = Vec::new();
        let mut extreme = Vec::new();
        for (code, raw, at) in values {
            let vital = match source {
                ReadingSource::Hl7 => self.knowledge.monitor_codes.vital_for(code),
                _ => Vital::parse(code).ok(),
            };
            let Some(vital) = vital else {
                out.rejected.push(format!("{code}: not a vital sign this session watches"));
                continue;
            };
            let value = match self.knowledge.monitor_codes.value(raw) {
                Ok(Some(v)) => v,
                Ok(None) => {
                    out.rejected.push(format!("{code}: no value"));
                    continue;
                }
                Err(m) => {
                    out.rejected.push(format!("{code}: {m}"));
                    continue;
                }
            };
            if let Err(m) = plausible(&self.knowledge.session, vital, value) {
                // Not a reading; but nobody is typing it in to be told: the bedside must look now.
                out.rejected.push(format!("{}: {m} (implausible: not stored)", vital.label()));
                if s.phase.dose_started() || matches!(s.phase, Phase::CheckedIn | Phase::PreDoseChecks) {
                    extreme.push(implausible_alarm(vital, value, &m));
                }
                continue;
            }
            let at = at.unwrap_or(now);
            if at > now + Duration::minutes(5) {
                out.rejected.push(format!("{}: observation time is in the future", vital.label()));
                continue;
            }
            if at < earliest {
                out.rejected.push(format!("{}: measured before this session began", vital.label()));
                continue;
            }
            readings.push(self.reading(&s, vital, value, at, source, device_id.map(str::to_owned), message_id.map(str::to_owned), by));
        }
        if readings.is_empty() && extreme.is_empty() {
            return Ok(out);
        }
        let ctx = match actor {
            Some(p) => self.ctx(p, "treatment"),
            None => self.session_actor(by),
        };
        // The engine sees a monitor's reading at the time the server received it: a device
        // clock that runs ahead cannot hold off the stale-monitor alarm.
        let inputs: Vec<SessionInput> = readings.iter().map(|r| SessionInput::Vital(r.received_at, r.vital, r.value)).collect();
        let fed = self.feed_session(&ctx, &s, inputs, readings, extreme, None).await?;
        out.stored = fed.stored;
        out.raised = fed.raised;
        self.announce(s.id);
        Ok(out)
    }

    /// The alarm engine for one session: rebuilds the tracker from the store, feeds `inputs`,
    /// and writes the readings with the alarms raised (plus `extra`, e.g. an extreme value a
    /// monitor sent) and the latches cleared or replaced, and `event` when given, in one
    /// transaction. When another server raised the same alarm (or moved the session) first,
    /// the write is retried once with everything rebuilt, so the reading is never lost.
    async fn feed_session(
        &self,
        ctx: &AuditCtx,
        s: &TreatmentSession,
        inputs: Vec<SessionInput>,
        readings: Vec<SessionReading>,
        extra: Vec<Alarm>,
        event: Option<(TreatmentSession, SessionEvent)>,
    ) -> Result<IngestOutcome, AppError> {
        let mut attempt = 0;
        let mut s = s.clone();
        let mut event = event;
        loop {
            let live = self.store.live_session_alarms(s.id).await?;
            let last = self.store.last_readings(s.id).await?;
            // Staleness counts by when the server received a monitor's reading, not by the
            // device's clock. A session bound by location only counts from its first reading.
            let monitored: Vec<&SessionReading> = last.iter().filter(|r| r.source != ReadingSource::Manual).collect();
            let mut t = AlarmTracker {
                phase: s.phase,
                baseline: s.baseline,
                bound_at: s.bound_at.or_else(|| monitored.iter().map(|r| r.received_at).min()),
                last_reading: monitored.iter().map(|r| r.received_at).max(),
                last_by_vital: monitored.iter().map(|r| (r.vital, r.received_at)).collect(),
                open: live
                    .iter()
                    .filter(|a| a.acknowledged.is_none())
                    .filter_map(|a| {
                        rule_code(&a.rule)
                            .map(|rule| (a.raised_at, Alarm { rule, level: a.level, message: a.message.clone(), source: a.source.clone() }))
                    })
                    .collect(),
                latched: live
                    .iter()
                    .filter_map(|a| match (&a.acknowledged, rule_code(&a.rule)) {
                        (Some((at, ..)), Some(rule)) => Some(Latch { rule, level: a.level, since: *at }),
                        _ => None,
                    })
                    .collect(),
            };
            let mut raised = Vec::new();
            let alarm = |a: Alarm, at: DateTime<Utc>| SessionAlarm {
                id: Uuid::new_v4(),
                session_id: s.id,
                patient_id: s.patient_id,
                rule: a.rule.to_owned(),
                level: a.level,
                message: a.message,
                source: a.source,
                raised_at: at.max(s.created_at),
                acknowledged: None,
                cleared_at: None,
            };
            for input in &inputs {
                let at = match input {
                    SessionInput::Vital(at, ..) | SessionInput::Rating(at, ..) | SessionInput::Tick(at) => *at,
                    _ => self.clock.now(),
                };
                // An input the engine refuses (an implausible value) was filtered before.
                if let Ok(new) = t.feed(&self.knowledge.session, input) {
                    raised.extend(new.into_iter().map(|a| alarm(a, at)));
                }
            }
            // Alarms outside the tracker's rules: one live at a time; once acknowledged, the
            // next input clears them.
            let now = self.clock.now();
            for a in extra.iter().filter(|a| !live.iter().any(|l| l.rule == a.rule && l.acknowledged.is_none())) {
                raised.push(alarm(a.clone(), now));
            }
            let cleared: Vec<Uuid> = live
                .iter()
                .filter(|a| a.acknowledged.is_some() && !t.latched.iter().any(|l| l.rule == a.rule.as_str()))
                .map(|a| a.id)
                .collect();
            if readings.is_empty() && raised.is_empty() && cleared.is_empty() && event.is_none() {
                return Ok(IngestOutcome::default());
            }
            let w = SessionWrite { readings: readings.clone(), raised: raised.clone(), cleared, event: event.clone() };
            match self.store.write_session_input(ctx, &w).await {
                Ok(stored) => return Ok(IngestOutcome { stored, rejected: Vec::new(), raised }),
                Err(DbError::Conflict(_)) if attempt == 0 => {
                    attempt += 1;
                    // The session may have moved: take its latest state (and renumber the event).
                    if let Some(fresh) = self.store.get_treatment_session(ctx, s.id).await? {
                        if let Some((next, ev)) = event.as_mut() {
                            if fresh.signed_at.is_some() {
                                return Err(FieldErrors::single(
                                    "session",
                                    "the session note was signed meanwhile; add an addendum instead",
                                )
                                .into());
                            }
                            let mut moved = fresh.clone();
                            moved.seq = fresh.seq + 1;
                            ev.seq = moved.seq;
                            ev.phase = moved.phase;
                            *next = moved;
                        }
                        s = fresh;
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Acknowledges a live alarm: who, when, and what was done; the acknowledgement and its
    /// entry in the session record are written together.
    pub async fn acknowledge_session_alarm(
        &self,
        p: &Principal,
        session: RecordId,
        alarm: &str,
        action: &str,
    ) -> Result<SessionAlarm, AppError> {
        self.authorize(p, Permission::WriteClinical, "SessionAlarm").await?;
        let id = Uuid::parse_str(alarm.trim()).map_err(|_| FieldErrors::single("alarm", "an alarm id"))?;
        let action = reason("action", action).map_err(|_| FieldErrors::single("action", "say what was done (3 to 2000 characters)"))?;
        let ctx = self.ctx(p, "treatment");
        for attempt in 0..2 {
            let s = self.treatment_session(p, session).await?;
            let all = self.store.session_alarms(&ctx, s.id, false).await?;
            let Some(target) = all.iter().find(|a| a.id == id) else { return Err(AppError::NotFound) };
            let mut next = s.clone();
            next.seq += 1;
            let ev = self.event(
                p,
                &next,
                "alarm_ack",
                format!("Alarm acknowledged: {} ({}); action: {action}", target.message, target.rule),
                None,
            );
            let with_event = if s.signed_at.is_none() { Some((&next, &ev)) } else { None };
            match self.store.acknowledge_session_alarm(&ctx, id, p.user.id, &p.user.display_name, &action, with_event).await {
                Ok(a) => {
                    self.announce(s.id);
                    return Ok(a);
                }
                // Another step landed first (the session moved): renumber and try once more.
                Err(DbError::Conflict(c)) if attempt == 0 && !c.contains("already acknowledged") => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AppError::Conflict("the session is changing quickly; try again".into()))
    }

    /// The clock's check of every active session with a monitor: a silent monitor (or one
    /// silent signal) raises its alarm. Run every second by each server; a unique index keeps
    /// one alarm when several servers see it at once.
    pub async fn tick_sessions(&self) -> Result<usize, AppError> {
        let ctx = self.session_actor("alarm engine");
        let now = self.clock.now();
        let mut raised = 0;
        let mut failed = None;
        for s in self.store.active_sessions_for_engine().await? {
            match self.feed_session(&ctx, &s, vec![SessionInput::Tick(now)], Vec::new(), Vec::new(), None).await {
                Ok(o) if !o.raised.is_empty() => {
                    raised += o.raised.len();
                    self.announce(s.id);
                }
                Ok(_) | Err(AppError::Conflict(_)) => {}
                // One chair's failure must not starve the others' checks.
                Err(e) => failed = Some(e),
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(raised),
        }
    }

    fn live_alarms(&self, alarms: &[SessionAlarm]) -> Vec<LiveAlarm> {
        let now = self.clock.now();
        alarms
            .iter()
            .filter(|a| a.cleared_at.is_none() && a.acknowledged.is_none())
            .map(|a| LiveAlarm { alarm: a.clone(), level_now: level_now(&self.knowledge.session, a.level, a.raised_at, now) })
            .collect()
    }

    /// Prompts due now, from the session rules' time points.
    fn prompts(&self, s: &TreatmentSession, readings: &[SessionReading], events: &[SessionEvent]) -> Vec<Prompt> {
        let now = self.clock.now();
        let Some(start) = s.dose_started_at else { return Vec::new() };
        if s.phase.is_final() {
            return Vec::new();
        }
        let r = &self.knowledge.session;
        let every = |rule: &ketacare_domain::titration::Rule| {
            Duration::minutes(i64::try_from(rule.value.trunc().mantissa()).unwrap_or(15).clamp(1, 240))
        };
        let mut out = Vec::new();
        // Vitals: every interval from the dose start; due at the first slot after the last one.
        let last_bp = readings.iter().filter(|x| x.vital == Vital::Systolic).map(|x| x.observed_at).max().unwrap_or(start);
        let due = last_bp.max(start) + every(&r.prompt_vitals_minutes);
        out.push(Prompt { what: "vitals".into(), label: "Blood pressure, heart rate, SpO2".into(), due_at: due, overdue: now > due });
        let last_rating =
            |inst: &str| events.iter().filter(|e| e.kind == "rating" && e.detail.starts_with(&format!("{inst}="))).map(|e| e.at).max();
        let m = last_rating("moaas").unwrap_or(start).max(start) + every(&r.prompt_moaas_minutes);
        out.push(Prompt { what: "moaas".into(), label: "MOAA/S (sedation)".into(), due_at: m, overdue: now > m });
        let c_due = start + every(&r.prompt_cadss_minutes);
        if last_rating("cadss").is_none_or(|t| t < start) {
            out.push(Prompt { what: "cadss".into(), label: "CADSS (dissociation)".into(), due_at: c_due, overdue: now > c_due });
        }
        out.sort_by_key(|p| p.due_at);
        out
    }

    /// Everything about one session: for its page, the API and the printable note.
    pub async fn session_view(&self, p: &Principal, id: RecordId) -> Result<SessionView, AppError> {
        let s = self.treatment_session(p, id).await?;
        let ctx = self.ctx(p, "treatment");
        let patient = self.patient(p, s.patient_id).await?;
        let events = self.store.session_events(&ctx, id).await?;
        let readings = self.store.session_readings(&ctx, id, None).await?;
        let alarms = self.store.session_alarms(&ctx, id, false).await?;
        let gate = self.gate(p, &s, &events).await?;
        let discharge_unmet = if s.phase == Phase::Recovery { self.discharge_state(p, &s, &events, true).await? } else { Vec::new() };
        let order = match s.order_id {
            Some(o) => Some(self.record(p, o).await?),
            None => None,
        };
        let d = &patient.demographics;
        Ok(SessionView {
            live: self.live_alarms(&alarms),
            prompts: self.prompts(&s, &readings, &events),
            patient_name: format!("{} {}", d.name.given(), d.name.family()),
            mrn: d.mrn.as_str().to_owned(),
            session: s,
            events,
            readings,
            alarms,
            gate,
            discharge_unmet,
            order,
            now: self.clock.now(),
        })
    }

    /// The live board: every active session. `identified` shows initials (staff); the room
    /// display passes `false` and sees chairs, vitals and alarms only.
    pub async fn board(&self, p: &Principal, identified: bool) -> Result<Vec<BoardChair>, AppError> {
        self.authorize(p, if identified { Permission::ReadPatients } else { Permission::WriteClinical }, "Board").await?;
        let ctx = self.ctx(p, "treatment");
        let now = self.clock.now();
        let sessions = self.store.active_sessions(&ctx).await?;
        // Every chair stays on the board (its alarms must be seen); a patient outside the
        // viewer's care teams shows without initials, as on the room display.
        let scope = if identified { self.patient_scope(p).await? } else { crate::access::PatientScope::Only(Default::default()) };
        let mut out = Vec::new();
        for s in &sessions {
            let trend = self.trend(&ctx, s.id, now).await?;
            let last = self.store.last_readings(s.id).await?;
            let alarms = self.store.session_alarms(&ctx, s.id, true).await?;
            let events = if s.dose_started_at.is_some() { self.store.session_events(&ctx, s.id).await? } else { Vec::new() };
            let initials = if identified && scope.allows(s.patient_id) {
                let d = self.patient(p, s.patient_id).await?.demographics;
                Some(initials(d.name.given(), d.name.family()))
            } else {
                None
            };
            out.push(BoardChair {
                session_id: s.id,
                chair: s.chair.clone(),
                initials,
                phase: s.phase,
                elapsed_min: (now - s.created_at).num_minutes(),
                since_dose_min: s.dose_started_at.map(|d| (now - d).num_minutes()),
                latest: last.iter().map(|r| (r.vital, r.value, (now - r.observed_at).num_seconds().max(0), r.observed_at)).collect(),
                trend,
                alarms: self.live_alarms(&alarms),
                monitored: s.bound_at.is_some(),
                prompts: self.prompts(s, &last, &events),
            });
        }
        // Chairs that left the board leave the trend cache.
        if let Ok(mut cache) = self.trends.lock() {
            cache.retain(|id, _| sessions.iter().any(|s| s.id == *id));
        }
        Ok(out)
    }

    /// The board's 30-minute trend of a session, one point per vital per slot: kept per server
    /// and brought up to date with only the readings received since the last look, so a board
    /// refresh does not read every reading of every chair again.
    async fn trend(&self, ctx: &AuditCtx, id: RecordId, now: DateTime<Utc>) -> Result<Vec<(Vital, DateTime<Utc>, Decimal)>, AppError> {
        let window = now - Duration::minutes(30);
        let cursor = self.trends.lock().ok().and_then(|c| c.get(&id).map(|t| t.cursor));
        // Look a little behind the cursor: a write stamped earlier may commit after a later one.
        // Points seen twice fall into the same slot and are kept once.
        let since = cursor.map_or(window, |c| c - Duration::seconds(10));
        let new = self.store.readings_received_since(ctx, id, since).await?;
        let mut cache = self.trends.lock().map_err(|_| AppError::Internal("trend cache poisoned".into()))?;
        let t = cache.entry(id).or_insert_with(|| Trend { cursor: window, points: Vec::new() });
        if let Some(last) = new.iter().map(|r| r.received_at).max() {
            t.cursor = t.cursor.max(last);
        }
        t.points.extend(new.iter().map(|r| (r.vital, r.observed_at, r.value)));
        t.points.retain(|p| p.1 >= window);
        t.points.sort_by_key(|p| p.1);
        t.points = downsample(&t.points);
        Ok(t.points.clone())
    }

    /// The server is stopping: live boards end their streams (so the server can stop).
    pub fn close_streams(&self) {
        self.closing.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = self.changes.send(String::new());
    }

    /// Whether the server is stopping.
    pub fn is_closing(&self) -> bool {
        self.closing.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Tells this server's live boards that a session changed (other servers hear it from
    /// PostgreSQL).
    pub fn announce(&self, id: RecordId) {
        let _ = self.changes.send(id.to_string());
    }

    /// Live board changes: a session id per change, from this server and (PostgreSQL) others.
    pub fn subscribe_changes(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.changes.subscribe()
    }

    /// Starts hearing other servers' changes (PostgreSQL); `false` on SQLite.
    pub async fn listen_for_other_servers(&self) -> Result<bool, AppError> {
        let tx = self.changes.clone();
        Ok(self
            .store
            .listen_session_changes(std::sync::Arc::new(move |id| {
                let _ = tx.send(id);
            }))
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chair_and_device_ids_are_checked_and_named() {
        assert_eq!(valid_chair(" ROOM1^CHAIR2^ ").unwrap(), "ROOM1^CHAIR2");
        assert!(valid_chair("").is_err());
        assert!(valid_chair("<script>").is_err());
        assert_eq!(valid_device("").unwrap(), None);
        assert_eq!(valid_device("0123456789ABCDEF").unwrap().as_deref(), Some("0123456789ABCDEF"));
        assert_eq!(valid_device("00a0b1c2d3e4f5aa").unwrap().as_deref(), Some("00A0B1C2D3E4F5AA"), "one monitor whatever the case");
        assert!(valid_device("a b").is_err());
    }

    #[test]
    fn reading_times_are_rfc3339_or_utc_minutes() {
        let now = DateTime::parse_from_rfc3339("2026-11-30T09:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(reading_time("", now).unwrap(), now);
        assert_eq!(reading_time("2026-11-30T10:15:00+01:00", now).unwrap().to_rfc3339(), "2026-11-30T09:15:00+00:00");
        assert_eq!(reading_time("2026-11-30T09:15", now).unwrap().to_rfc3339(), "2026-11-30T09:15:00+00:00");
        assert!(reading_time("30/11/2026", now).unwrap_err().contains("RFC 3339"));
    }

    #[test]
    fn the_trend_keeps_the_last_point_of_each_slot_per_vital() {
        let t0 = DateTime::parse_from_rfc3339("2026-11-30T09:00:00Z").unwrap().with_timezone(&Utc);
        let at = |s: i64| t0 + Duration::seconds(s);
        let d = Decimal::from;
        let points: Vec<(Vital, DateTime<Utc>, Decimal)> =
            (0..90).flat_map(|s| [(Vital::HeartRate, at(s), d(70 + s)), (Vital::Spo2, at(s), d(97))]).collect();
        let out = downsample(&points);
        let hr: Vec<(DateTime<Utc>, Decimal)> = out.iter().filter(|p| p.0 == Vital::HeartRate).map(|p| (p.1, p.2)).collect();
        assert_eq!(hr, vec![(at(29), d(99)), (at(59), d(129)), (at(89), d(159))], "one point per 30 s, the last of each");
        assert_eq!(out.iter().filter(|p| p.0 == Vital::Spo2).count(), 3);
        assert_eq!(downsample(&out), out, "downsampling again changes nothing");
    }

    #[test]
    fn initials_are_short() {
        assert_eq!(initials("ada", "Quill"), "A. Q.");
    }
}
