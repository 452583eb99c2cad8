//! Measurement-based care: rating scales recorded by clinicians or sent to patients as
//! single-use links, scores and change from baseline, safety alerts, schedules and outcome
//! series for charts.

use crate::{token_hash, App, AppError, Principal};
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use ketacare_db::{AuditCtx, PolicyVersion};
use ketacare_domain::access::Permission;
use ketacare_domain::assessment::{
    action_taken, due_items, Acknowledgement, Assessment, AssessmentInput, DueItem, FilledBy, QuestionnaireRequest, RequestState,
    SafetyAlert, Schedule, ScheduleInput, SessionRef, Taken,
};
use ketacare_domain::audit::Actor;
use ketacare_domain::ids::{AlertId, PatientId, RecordId, RequestId, ScheduleId};
use ketacare_domain::instrument::{Instrument, Outcome, OutcomeRules, Respondent, Score};
use ketacare_domain::record::{ClinicalRecord, EncounterKind, Provenance, RecordKind, RecordVersion, VersionAction};
use ketacare_domain::validation::FieldErrors;
use ketacare_domain::wording::Wording;
use rand::RngCore;
use rust_decimal::Decimal;
use uuid::Uuid;

/// One scored administration.
#[derive(Clone, Debug)]
pub struct ScoredAssessment {
    /// The record version (current).
    pub version: RecordVersion,
    /// The administration.
    pub assessment: Assessment,
    /// Its score (the answers were validated when recorded).
    pub score: Score,
    /// Change from the patient's baseline of this instrument (`None` for the baseline itself).
    pub outcome: Option<Outcome>,
}

/// All administrations of one instrument for a patient, oldest first.
#[derive(Clone, Debug)]
pub struct Series {
    /// The instrument.
    pub instrument: Instrument,
    /// Rules in force.
    pub rules: OutcomeRules,
    /// Band set in force (the clinic's choice, or the default).
    pub band_set: Option<String>,
    /// Administrations, oldest first; the first is the baseline.
    pub points: Vec<ScoredAssessment>,
}

impl Series {
    /// The baseline (first administration).
    pub fn baseline(&self) -> Option<&ScoredAssessment> {
        self.points.first()
    }
}

/// A treatment session shown on outcome charts.
#[derive(Clone, Debug)]
pub struct SessionMarker {
    /// The session (an encounter of kind treatment).
    pub session: SessionRef,
    /// Its label (the encounter's reason, e.g. the dose given).
    pub label: String,
}

/// Everything the outcome views of one patient need.
#[derive(Clone, Debug)]
pub struct OutcomeView {
    /// One series per instrument with any administration, in catalogue order.
    pub series: Vec<Series>,
    /// Treatment sessions, oldest first.
    pub sessions: Vec<SessionMarker>,
    /// Schedules (active first).
    pub schedules: Vec<Schedule>,
    /// What the active schedules ask for now.
    pub due: Vec<DueItem>,
    /// Questionnaire requests, newest first.
    pub requests: Vec<QuestionnaireRequest>,
    /// Safety alerts, newest first.
    pub alerts: Vec<SafetyAlert>,
}

/// A request just sent: the request and the secret link token (shown once, never stored).
#[derive(Clone, Debug)]
pub struct SentRequest {
    /// The stored request.
    pub request: QuestionnaireRequest,
    /// The token for the link `/q/{token}`.
    pub token: String,
}

/// A questionnaire opened through its link.
#[derive(Clone, Debug)]
pub struct OpenQuestionnaire {
    /// The request.
    pub request: QuestionnaireRequest,
    /// The instrument (with the clinic's wording, when loaded).
    pub instrument: Instrument,
    /// The clinic's wording, when loaded (instructions and rights notice).
    pub wording: Option<Wording>,
}

/// Why a link cannot be used; shown to the patient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkProblem {
    /// No such link.
    Unknown,
    /// Already answered.
    Used,
    /// Withdrawn by the clinic.
    Withdrawn,
    /// Too late.
    Expired,
}

impl LinkProblem {
    /// Message for the patient.
    pub fn message(self) -> &'static str {
        match self {
            LinkProblem::Unknown => "This link is not valid. Please check you opened the whole link, or ask the clinic for a new one.",
            LinkProblem::Used => "This questionnaire has already been answered. Thank you. Each link works once.",
            LinkProblem::Withdrawn => "The clinic has withdrawn this questionnaire. Please ask the clinic if you need a new link.",
            LinkProblem::Expired => "This link has expired. Please ask the clinic for a new one.",
        }
    }
}

/// The clinic's chosen band set of an instrument (key `instrument.<key>.band_set`), if any.
pub fn band_set_policy(inst: &Instrument, policies: &[PolicyVersion]) -> Option<String> {
    let key = format!("instrument.{}.band_set", inst.key);
    policies.iter().find(|p| p.key == key).and_then(|p| p.value.clone()).filter(|v| inst.band_sets.iter().any(|b| &b.key == v))
}

/// Applies the clinic's policy versions to an instrument's default rules.
pub fn apply_policies(inst: &Instrument, policies: &[PolicyVersion]) -> OutcomeRules {
    let mut rules = inst.default_rules.clone();
    let get = |field: &str| {
        let key = format!("instrument.{}.{field}", inst.key);
        policies.iter().find(|p| p.key == key && p.value.is_some())
    };
    let note = |p: &PolicyVersion, default_source: &str| {
        format!("Clinic policy set by {} on {}: {} (default: {default_source})", p.set_by_name, p.set_at.format("%Y-%m-%d"), p.reason)
    };
    if let Some(r) = rules.response.as_mut() {
        if let Some(p) = get("response_percent") {
            if let Some(d) = p.value.as_deref().and_then(|v| v.parse::<Decimal>().ok()) {
                r.percent = d;
                r.source = note(p, &r.source);
                r.policy = true;
            }
        }
        if let Some(p) = get("response_strict") {
            r.strict = p.value.as_deref() == Some("true");
            r.source = note(p, &r.source);
            r.policy = true;
        }
    }
    if let Some(r) = rules.remission.as_mut() {
        if let Some(p) = get("remission_total_at_most") {
            if let Some(d) = p.value.as_deref().and_then(|v| v.parse::<Decimal>().ok()) {
                r.total_at_most = d;
                r.source = note(p, &r.source);
                r.policy = true;
            }
        }
    }
    rules
}

/// A clinic's loaded wording file and whether it still fits the instrument.
#[derive(Clone, Debug)]
pub struct LoadedWording {
    /// The checked wording, or `None` when the file no longer fits the instrument's current
    /// definition (forms then show the short labels).
    pub wording: Option<Wording>,
    /// Why it no longer fits (empty when it does).
    pub problems: Vec<String>,
    /// The file as loaded.
    pub text: String,
    /// Who loaded it, when and why.
    pub policy: PolicyVersion,
}

fn loaded_wording(instrument: &Instrument, policies: &[PolicyVersion]) -> Option<LoadedWording> {
    let key = wording_key(instrument);
    let pv = policies.iter().find(|p| p.key == key)?.clone();
    let text = pv.value.clone()?;
    Some(match ketacare_knowledge::wording::parse_wording(&text, instrument) {
        Ok(w) => LoadedWording { wording: Some(w), problems: Vec::new(), text, policy: pv },
        Err(e) => {
            LoadedWording { wording: None, problems: e.iter().map(|x| format!("{}: {}", x.field, x.message)).collect(), text, policy: pv }
        }
    })
}

fn wording_key(inst: &Instrument) -> String {
    format!("instrument.{}.wording", inst.key)
}

fn link_actor() -> Actor {
    Actor { user_id: None, username: "patient-link".into(), role: None, session_ref: None, client_addr: None }
}

impl App {
    fn instrument_def(&self, key: &str, field: &str) -> Result<&Instrument, AppError> {
        self.knowledge.instrument(key).ok_or_else(|| {
            let keys: Vec<&str> = self.knowledge.instruments.iter().map(|i| i.key.as_str()).collect();
            AppError::Validation(FieldErrors::single(field, format!("must be one of {}", keys.join(", "))))
        })
    }

    /// The knowledge-file default response and remission rules of an instrument.
    pub fn outcome_rules(&self, instrument: &Instrument) -> OutcomeRules {
        instrument.default_rules.clone()
    }

    /// The rules in force: the knowledge defaults with the clinic's policy choices applied
    /// (keys `instrument.<key>.response_percent`, `.response_strict`, `.remission_total_at_most`).
    pub async fn rules_in_force(&self, instrument: &Instrument) -> Result<OutcomeRules, AppError> {
        let policies = self.store.current_policies().await?;
        Ok(apply_policies(instrument, &policies))
    }

    /// The clinic's policy versions for an instrument's rules (current value of each key).
    pub async fn instrument_policies(&self, instrument: &Instrument) -> Result<Vec<PolicyVersion>, AppError> {
        let prefix = format!("instrument.{}.", instrument.key);
        let wording = wording_key(instrument);
        Ok(self.store.current_policies().await?.into_iter().filter(|p| p.key.starts_with(&prefix) && p.key != wording).collect())
    }

    /// The clinic's licensed wording of an instrument, if one is loaded (key
    /// `instrument.<key>.wording`, whose value is the wording file's text).
    pub async fn clinic_wording(&self, instrument: &Instrument) -> Result<Option<LoadedWording>, AppError> {
        let policies = self.store.current_policies().await?;
        Ok(loaded_wording(instrument, &policies))
    }

    /// The clinic's loaded wording of every instrument that has one, by instrument key.
    pub async fn clinic_wordings(&self) -> Result<std::collections::BTreeMap<String, LoadedWording>, AppError> {
        let policies = self.store.current_policies().await?;
        Ok(self.knowledge.instruments.iter().filter_map(|i| loaded_wording(i, &policies).map(|l| (i.key.clone(), l))).collect())
    }

    /// The instrument as forms show it: with the clinic's licensed wording when one is loaded
    /// and still matches the definition, else with Ketacare's short labels.
    pub async fn worded_instrument(&self, key: &str) -> Result<(Instrument, Option<Wording>), AppError> {
        let inst = self.instrument_def(key, "instrument")?;
        match self.clinic_wording(inst).await?.and_then(|l| l.wording) {
            Some(w) => Ok((inst.with_wording(&w), Some(w))),
            None => Ok((inst.clone(), None)),
        }
    }

    /// Loads the clinic's licensed wording of an instrument (medical director only). The file
    /// is checked against the instrument first: a file with any problem is refused whole, with
    /// every problem named. The previous wording stays in the version history.
    pub async fn load_wording(&self, p: &Principal, instrument: &str, text: &str, reason: &str) -> Result<Wording, AppError> {
        self.authorize(p, Permission::ManagePolicy, "ClinicPolicy").await?;
        let inst = self.instrument_def(instrument, "instrument")?;
        let mut e = FieldErrors::new();
        let parsed = match ketacare_knowledge::wording::parse_wording(text, inst) {
            Ok(w) => Some(w),
            Err(errs) => {
                for x in errs.iter() {
                    e.add(&x.field, x.message.clone());
                }
                None
            }
        };
        let reason = e.check("reason", ketacare_domain::record::Reason::parse(reason));
        let (Some(w), Some(reason)) = (parsed, reason) else { return Err(e.into()) };
        let v = PolicyVersion {
            key: wording_key(inst),
            value: Some(text.to_owned()),
            reason: reason.as_str().to_owned(),
            set_by: p.user.id,
            set_by_name: p.user.username.as_str().to_owned(),
            set_at: self.clock.now(),
        };
        self.store.set_policy(&self.ctx(p, "operations"), &v).await?;
        Ok(w)
    }

    /// Withdraws the clinic's wording (forms return to the short labels); kept in the history.
    pub async fn withdraw_wording(&self, p: &Principal, instrument: &str, reason: &str) -> Result<(), AppError> {
        self.authorize(p, Permission::ManagePolicy, "ClinicPolicy").await?;
        let inst = self.instrument_def(instrument, "instrument")?;
        let mut e = FieldErrors::new();
        let reason = e.check("reason", ketacare_domain::record::Reason::parse(reason));
        let Some(reason) = reason else { return Err(e.into()) };
        if self.clinic_wording(inst).await?.is_none() {
            return Err(AppError::Validation(FieldErrors::single(
                "instrument",
                format!("{} has no clinic wording to withdraw", inst.name),
            )));
        }
        let v = PolicyVersion {
            key: wording_key(inst),
            value: None,
            reason: reason.as_str().to_owned(),
            set_by: p.user.id,
            set_by_name: p.user.username.as_str().to_owned(),
            set_at: self.clock.now(),
        };
        self.store.set_policy(&self.ctx(p, "operations"), &v).await?;
        Ok(())
    }

    /// Sets (or, with an empty value, returns to the default) one of an instrument's outcome
    /// rules. Medical director only; a reason is required; the change is audited and versioned.
    pub async fn set_instrument_rule(
        &self,
        p: &Principal,
        instrument: &str,
        field: &str,
        value: &str,
        reason: &str,
    ) -> Result<(), AppError> {
        self.authorize(p, Permission::ManagePolicy, "ClinicPolicy").await?;
        let inst = self.instrument_def(instrument, "instrument")?;
        let mut e = FieldErrors::new();
        let v = value.trim();
        let value = if v.is_empty() {
            None
        } else {
            match field {
                "response_percent" => match v.parse::<Decimal>() {
                    Ok(d) if d > Decimal::ZERO && d < Decimal::ONE_HUNDRED => Some(d.normalize().to_string()),
                    _ => {
                        e.add("value", "must be a percentage above 0 and below 100, for example 50");
                        None
                    }
                },
                "response_strict" => match v {
                    "true" | "false" => Some(v.to_owned()),
                    _ => {
                        e.add("value", "must be true (more than the percentage) or false (at least the percentage)");
                        None
                    }
                },
                "band_set" => {
                    if inst.band_sets.iter().any(|b| b.key == v) {
                        Some(v.to_owned())
                    } else {
                        let keys: Vec<&str> = inst.band_sets.iter().map(|b| b.key.as_str()).collect();
                        e.add("value", format!("must be one of {}", keys.join(", ")));
                        None
                    }
                }
                "remission_total_at_most" => {
                    let (lo, hi) = inst.total_range();
                    match v.parse::<Decimal>() {
                        Ok(d) if d >= lo && d <= hi && d.fract().is_zero() => Some(d.normalize().to_string()),
                        _ => {
                            e.add("value", format!("must be a whole-number {} total from {lo} to {hi}", inst.name));
                            None
                        }
                    }
                }
                _ => {
                    e.add("field", "must be response_percent, response_strict, remission_total_at_most or band_set");
                    None
                }
            }
        };
        if field.starts_with("response") && inst.default_rules.response.is_none() && value.is_some() {
            e.add("field", format!("{} has no response rule to change", inst.name));
        }
        if field.starts_with("remission") && inst.default_rules.remission.is_none() && value.is_some() {
            e.add("field", format!("{} has no remission rule to change", inst.name));
        }
        let reason = e.check("reason", ketacare_domain::record::Reason::parse(reason));
        let Some(reason) = reason else { return Err(e.into()) };
        e.into_result()?;
        let v = PolicyVersion {
            key: format!("instrument.{}.{field}", inst.key),
            value,
            reason: reason.as_str().to_owned(),
            set_by: p.user.id,
            set_by_name: p.user.username.as_str().to_owned(),
            set_at: self.clock.now(),
        };
        self.store.set_policy(&self.ctx(p, "operations"), &v).await?;
        Ok(())
    }

    /// Scores typed answers (`3,2,1` or `y,n,-`) without storing anything (calculator).
    pub fn score_answers(&self, instrument: &str, answers: &str) -> Result<(Instrument, Score), AppError> {
        let inst = self.instrument_def(instrument, "instrument")?;
        let parsed = inst.parse_answers(answers)?;
        Ok((inst.clone(), inst.score(&parsed, None)?))
    }

    /// Change from baseline to current totals under the rules in force (calculator).
    pub fn compare_totals(&self, instrument: &str, baseline: &str, current: &str) -> Result<(Instrument, Outcome), AppError> {
        let inst = self.instrument_def(instrument, "instrument")?;
        let mut e = FieldErrors::new();
        let num = |s: &str| s.trim().parse::<Decimal>().map_err(|_| format!("must be a whole number; got {:?}", s.trim()));
        let b = e.check("baseline", num(baseline));
        let c = e.check("current", num(current));
        let (Some(b), Some(c)) = (b, c) else { return Err(e.into()) };
        Ok((inst.clone(), inst.outcome(&self.outcome_rules(inst), b, c, None)?))
    }

    fn alerts_for(
        &self,
        record: RecordId,
        patient: PatientId,
        score: &Score,
        assigned: Option<ketacare_domain::ids::UserId>,
        already: &[String],
    ) -> Vec<SafetyAlert> {
        score
            .flags
            .iter()
            .filter(|f| f.urgent && !already.contains(&f.code))
            .map(|f| SafetyAlert {
                id: AlertId::from_uuid(Uuid::new_v4()),
                patient_id: patient,
                code: f.code.clone(),
                label: f.label.clone(),
                source_record: record,
                raised_at: self.clock.now(),
                assigned_to: assigned,
                acknowledgement: None,
            })
            .collect()
    }

    async fn check_session(&self, p: &Principal, patient: PatientId, session: Option<RecordId>) -> Result<(), AppError> {
        let Some(sid) = session else { return Ok(()) };
        let bad = || AppError::Validation(FieldErrors::single("session", "must be a treatment session (encounter) of this patient"));
        let v = self.store.get_record(&self.ctx(p, "treatment"), sid).await?.ok_or_else(bad)?;
        match &v.record {
            ClinicalRecord::Encounter(e) if e.kind == EncounterKind::Treatment && v.patient_id == patient && !v.is_void() => Ok(()),
            _ => Err(bad()),
        }
    }

    /// Records a completed form entered by a clinician; urgent flags raise safety alerts
    /// assigned to that clinician, in the same transaction.
    pub async fn record_assessment(
        &self,
        p: &Principal,
        patient: PatientId,
        input: &AssessmentInput,
    ) -> Result<(RecordVersion, Score, Vec<SafetyAlert>), AppError> {
        self.authorize(p, Permission::WriteClinical, "Record").await?;
        self.authorize_patient(p, patient).await?;
        let inst = self.instrument_def(&input.instrument, "instrument")?;
        let a = input.validate(inst, &self.knowledge.assessment_timing.timepoints, FilledBy::Clinician, self.clock.now())?;
        self.patient(p, patient).await?;
        self.check_session(p, patient, a.session).await?;
        let score = inst.score(&a.answers, None)?;
        let v = Self::first_version(patient, ClinicalRecord::Assessment(a), self.provenance(p));
        let alerts = self.alerts_for(v.record_id, patient, &score, Some(p.user.id), &[]);
        self.store.append_assessment(&self.ctx(p, "treatment"), &v, &alerts, None).await?;
        Ok((v, score, alerts))
    }

    /// Amends an assessment's answers (with a reason); a newly raised urgent flag raises an alert.
    pub async fn amend_assessment(
        &self,
        p: &Principal,
        id: RecordId,
        base_version: u32,
        input: &AssessmentInput,
        reason: &str,
    ) -> Result<RecordVersion, AppError> {
        let cur = self.record(p, id).await?;
        let ClinicalRecord::Assessment(old) = &cur.record else {
            return Err(FieldErrors::single("kind", format!("this record is a {}", cur.record.kind().code())).into());
        };
        let inst = self.instrument_def(&old.instrument, "instrument")?;
        if input.instrument != old.instrument {
            return Err(FieldErrors::single("instrument", format!("an amendment keeps the instrument ({})", inst.name)).into());
        }
        let mut errors = FieldErrors::new();
        let reason = errors.check("reason", ketacare_domain::record::Reason::parse(reason));
        let new = match input.validate(inst, &self.knowledge.assessment_timing.timepoints, old.filled_by, self.clock.now()) {
            Ok(a) => Some(a),
            Err(e) => {
                errors.extend_prefixed("", e);
                None
            }
        };
        let (Some(reason), Some(mut new)) = (reason, new) else { return Err(errors.into()) };
        self.authorize(p, Permission::WriteClinical, "Record").await?;
        if cur.is_void() {
            return Err(AppError::Conflict("the record is voided and cannot be changed".into()));
        }
        if cur.version != base_version {
            return Err(AppError::Conflict("the record changed since you opened it; reload and try again".into()));
        }
        self.check_session(p, cur.patient_id, new.session).await?;
        new.request = old.request;
        let before: Vec<String> = inst.score(&old.answers, None).map(|s| s.flags.into_iter().map(|f| f.code).collect()).unwrap_or_default();
        let score = inst.score(&new.answers, None)?;
        let v = self.next(p, &cur, VersionAction::Amend, ClinicalRecord::Assessment(new), reason);
        let alerts = self.alerts_for(v.record_id, v.patient_id, &score, Some(p.user.id), &before);
        self.store.append_assessment(&self.ctx(p, "treatment"), &v, &alerts, None).await?;
        Ok(v)
    }

    /// Sends a questionnaire to a patient: stores the request and returns the single-use link
    /// token (32 random bytes; only its SHA-256 is stored).
    pub async fn send_questionnaire(
        &self,
        p: &Principal,
        patient: PatientId,
        instrument: &str,
        session: &str,
        timepoint: &str,
    ) -> Result<SentRequest, AppError> {
        self.authorize(p, Permission::WriteClinical, "QuestionnaireRequest").await?;
        self.authorize_patient(p, patient).await?;
        let inst = self.instrument_def(instrument, "instrument")?;
        let mut e = FieldErrors::new();
        if inst.respondent == Respondent::Clinician {
            e.add("instrument", format!("{} is rated by a clinician and cannot be sent to the patient", inst.name));
        }
        let session = if session.trim().is_empty() { None } else { e.check("session", RecordId::parse(session)) };
        let timepoint = match timepoint.trim() {
            "" => None,
            t if self.knowledge.assessment_timing.timepoints.iter().any(|x| x.key == t) => Some(t.to_owned()),
            _ => {
                let keys: Vec<&str> = self.knowledge.assessment_timing.timepoints.iter().map(|x| x.key.as_str()).collect();
                e.add("timepoint", format!("must be one of {}", keys.join(", ")));
                None
            }
        };
        if timepoint.is_some() && session.is_none() {
            e.add("timepoint", "a time point needs the treatment session it is relative to");
        }
        e.into_result()?;
        self.patient(p, patient).await?;
        self.check_session(p, patient, session).await?;
        let mut raw = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut raw);
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let now = self.clock.now();
        let request = QuestionnaireRequest {
            id: RequestId::from_uuid(Uuid::new_v4()),
            patient_id: patient,
            instrument: inst.key.clone(),
            token_hash: token_hash(&token),
            session,
            timepoint,
            sent_by: p.user.id,
            sent_by_name: p.user.username.as_str().to_owned(),
            sent_at: now,
            expires_at: now + Duration::hours(self.knowledge.assessment_timing.link_expiry_hours),
            completed_at: None,
            response: None,
            cancelled_at: None,
        };
        self.store.create_request(&self.ctx(p, "treatment"), &request).await?;
        Ok(SentRequest { request, token })
    }

    fn link_ctx(&self) -> AuditCtx {
        AuditCtx { actor: link_actor(), at: self.clock.now(), purpose: "treatment" }
    }

    /// Opens a questionnaire by its link token (no account). Anything but an open request is
    /// refused with a reason the patient can read; nothing else of the patient is returned.
    pub async fn open_questionnaire(&self, token: &str) -> Result<OpenQuestionnaire, LinkProblem> {
        if token.len() < 20 || token.len() > 100 {
            return Err(LinkProblem::Unknown);
        }
        let r = self.store.find_request_by_token(&self.link_ctx(), &token_hash(token)).await.map_err(|_| LinkProblem::Unknown)?;
        let r = r.ok_or(LinkProblem::Unknown)?;
        match r.state(self.clock.now()) {
            RequestState::Open => {}
            RequestState::Completed => return Err(LinkProblem::Used),
            RequestState::Cancelled => return Err(LinkProblem::Withdrawn),
            RequestState::Expired => return Err(LinkProblem::Expired),
        }
        let (instrument, wording) = self.worded_instrument(&r.instrument).await.map_err(|_| LinkProblem::Unknown)?;
        Ok(OpenQuestionnaire { request: r, instrument, wording })
    }

    /// Submits a patient's answers through the link: stores the assessment, completes the
    /// request (once) and raises alerts for the clinician who sent it, all in one transaction.
    pub async fn submit_questionnaire(&self, token: &str, answers: Vec<String>) -> Result<Result<Score, FieldErrors>, LinkProblem> {
        let open = self.open_questionnaire(token).await?;
        let r = &open.request;
        let input = AssessmentInput { instrument: r.instrument.clone(), answers, ..AssessmentInput::default() };
        let mut a =
            match input.validate(&open.instrument, &self.knowledge.assessment_timing.timepoints, FilledBy::Patient, self.clock.now()) {
                Ok(a) => a,
                Err(e) => return Ok(Err(e)),
            };
        a.session = r.session;
        a.timepoint = r.timepoint.clone();
        a.request = Some(r.id);
        let score = match open.instrument.score(&a.answers, None) {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        // The stored author of a self-report is the clinician who sent the link, named as such.
        let author =
            Provenance { user_id: r.sent_by, username: format!("patient (link from {})", r.sent_by_name), recorded_at: self.clock.now() };
        let v = Self::first_version(r.patient_id, ClinicalRecord::Assessment(a), author);
        let alerts = self.alerts_for(v.record_id, r.patient_id, &score, Some(r.sent_by), &[]);
        match self.store.append_assessment(&self.link_ctx(), &v, &alerts, Some(r.id)).await {
            Ok(()) => Ok(Ok(score)),
            Err(ketacare_db::DbError::Conflict(_)) => Err(LinkProblem::Used),
            Err(e) => {
                tracing::error!(error = %e, "storing a questionnaire answer failed");
                Err(LinkProblem::Unknown)
            }
        }
    }

    /// Withdraws an open request.
    pub async fn cancel_questionnaire(&self, p: &Principal, id: RequestId) -> Result<(), AppError> {
        self.authorize(p, Permission::WriteClinical, "QuestionnaireRequest").await?;
        self.authorize_owner(p, ketacare_db::Owned::QuestionnaireRequest, &id.to_string()).await?;
        self.store.cancel_request(&self.ctx(p, "treatment"), id, p.user.id).await?;
        Ok(())
    }

    /// Safety alerts of the clinic (open only, or all), newest first.
    pub async fn alerts(&self, p: &Principal, open_only: bool) -> Result<Vec<SafetyAlert>, AppError> {
        self.authorize(p, Permission::ReadPatients, "SafetyAlert").await?;
        let scope = self.patient_scope(p).await?;
        let mut alerts = self.store.list_alerts(&self.ctx(p, "treatment"), None, open_only).await?;
        alerts.retain(|a| scope.allows(a.patient_id));
        Ok(alerts)
    }

    /// Number of open safety alerts, for the navigation badge (0 for roles that cannot read
    /// patients): of the clinician's care teams under the care-team scope.
    pub async fn open_alert_count(&self, p: &Principal) -> i64 {
        if !p.can(Permission::ReadPatients) {
            return 0;
        }
        match self.patient_scope(p).await {
            Ok(crate::access::PatientScope::All) => self.store.count_open_alerts().await.unwrap_or(0),
            Ok(_) => self.alerts(p, true).await.map_or(0, |a| i64::try_from(a.len()).unwrap_or(i64::MAX)),
            Err(_) => 0,
        }
    }

    /// Acknowledges an alert with what was done.
    pub async fn acknowledge_alert(&self, p: &Principal, id: AlertId, what_was_done: &str) -> Result<SafetyAlert, AppError> {
        self.authorize(p, Permission::WriteClinical, "SafetyAlert").await?;
        self.authorize_owner(p, ketacare_db::Owned::SafetyAlert, &id.to_string()).await?;
        let action = action_taken(what_was_done).map_err(|m| FieldErrors::single("action_taken", m))?;
        let ack =
            Acknowledgement { by: p.user.id, by_name: p.user.username.as_str().to_owned(), at: self.clock.now(), action_taken: action };
        Ok(self.store.acknowledge_alert(&self.ctx(p, "treatment"), id, &ack).await?)
    }

    /// Creates a schedule for a patient.
    pub async fn create_schedule(&self, p: &Principal, patient: PatientId, input: &ScheduleInput) -> Result<Schedule, AppError> {
        self.authorize(p, Permission::WriteClinical, "AssessmentSchedule").await?;
        self.authorize_patient(p, patient).await?;
        let now = self.clock.now();
        let (instrument, anchor) =
            input.validate(&self.knowledge.instruments, &self.knowledge.assessment_timing.timepoints, now.date_naive())?;
        self.patient(p, patient).await?;
        let s = Schedule {
            id: ScheduleId::from_uuid(Uuid::new_v4()),
            patient_id: patient,
            instrument,
            anchor,
            created_by: p.user.username.as_str().to_owned(),
            created_at: now,
            ended_at: None,
        };
        self.store.create_schedule(&self.ctx(p, "treatment"), &s, p.user.id).await?;
        Ok(s)
    }

    /// Stops a schedule.
    pub async fn end_schedule(&self, p: &Principal, id: ScheduleId) -> Result<(), AppError> {
        self.authorize(p, Permission::WriteClinical, "AssessmentSchedule").await?;
        self.authorize_owner(p, ketacare_db::Owned::Schedule, &id.to_string()).await?;
        self.store.end_schedule(&self.ctx(p, "treatment"), id, p.user.id).await?;
        Ok(())
    }

    /// Scores every current administration of a patient, series per instrument with change
    /// from baseline, sessions, schedules with what is due, requests and alerts.
    pub async fn outcomes(&self, p: &Principal, patient: PatientId) -> Result<OutcomeView, AppError> {
        self.authorize(p, Permission::ReadPatients, "Record").await?;
        self.authorize_patient(p, patient).await?;
        self.patient(p, patient).await?;
        let ctx = self.ctx(p, "treatment");
        let records = self.store.current_records(&ctx, patient).await?;
        let now = self.clock.now();
        let mut sessions: Vec<SessionMarker> = records
            .iter()
            .filter(|v| !v.is_void())
            .filter_map(|v| match &v.record {
                ClinicalRecord::Encounter(e) if e.kind == EncounterKind::Treatment => Some(SessionMarker {
                    session: SessionRef { id: v.record_id, start: e.start },
                    label: e.reason.clone().unwrap_or_else(|| "Treatment session".into()),
                }),
                _ => None,
            })
            .collect();
        sessions.sort_by_key(|s| s.session.start);
        let mut assessments: Vec<(RecordVersion, Assessment)> = records
            .into_iter()
            .filter(|v| !v.is_void() && v.record.kind() == RecordKind::Assessment)
            .filter_map(|v| match &v.record {
                ClinicalRecord::Assessment(a) => Some((v.clone(), a.clone())),
                _ => None,
            })
            .collect();
        assessments.sort_by_key(|(_, a)| a.taken_at);
        let mut series = Vec::new();
        let policies = self.store.current_policies().await?;
        for inst in &self.knowledge.instruments {
            let rules = apply_policies(inst, &policies);
            let band_set = band_set_policy(inst, &policies);
            let mut points: Vec<ScoredAssessment> = Vec::new();
            for (v, a) in assessments.iter().filter(|(_, a)| a.instrument == inst.key) {
                let Ok(score) = inst.score(&a.answers, band_set.as_deref()) else {
                    tracing::warn!(record = %v.record_id, "stored assessment no longer scores under the current definition");
                    continue;
                };
                let outcome = match (points.first().and_then(|b| b.score.total), score.total) {
                    (Some(b), Some(c)) if !points.is_empty() => inst.outcome(&rules, b, c, Some(&a.answers)).ok(),
                    _ => None,
                };
                points.push(ScoredAssessment { version: v.clone(), assessment: a.clone(), score, outcome });
            }
            if !points.is_empty() {
                series.push(Series { instrument: inst.clone(), rules, band_set, points });
            }
        }
        let mut schedules = self.store.list_schedules(&ctx, patient).await?;
        schedules.sort_by_key(|s| (s.ended_at.is_some(), s.created_at));
        let taken: Vec<Taken> = assessments
            .iter()
            .map(|(_, a)| Taken { instrument: a.instrument.clone(), at: a.taken_at, session: a.session, timepoint: a.timepoint.clone() })
            .collect();
        let refs: Vec<SessionRef> = sessions.iter().map(|s| s.session).collect();
        let mut due: Vec<DueItem> = schedules
            .iter()
            .filter(|s| s.ended_at.is_none())
            .flat_map(|s| {
                due_items(
                    s,
                    &self.knowledge.assessment_timing.timepoints,
                    &refs,
                    &taken,
                    self.knowledge.assessment_timing.calendar_grace_days,
                    now,
                )
            })
            .collect();
        due.sort_by_key(|d| (d.status, d.due_at));
        let requests = self.store.list_requests(&ctx, patient).await?;
        let alerts = self.store.list_alerts(&ctx, Some(patient), false).await?;
        Ok(OutcomeView { series, sessions, schedules, due, requests, alerts })
    }

    /// The time of now, for views that show request states.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ketacare_domain::ids::UserId;

    fn policy(key: &str, value: Option<&str>) -> PolicyVersion {
        PolicyVersion {
            key: key.into(),
            value: value.map(str::to_owned),
            reason: "clinic choice".into(),
            set_by: UserId::from_uuid(Uuid::from_u128(1)),
            set_by_name: "director".into(),
            set_at: DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default(),
        }
    }

    #[test]
    fn clinic_policy_replaces_rules_and_band_set() {
        let k = ketacare_knowledge::Knowledge::load().unwrap();
        let lsas = k.instrument("lsas").unwrap();
        let hama = k.instrument("hama").unwrap();
        let ps = vec![
            policy("instrument.lsas.response_strict", Some("false")),
            policy("instrument.hama.remission_total_at_most", Some("10")),
            policy("instrument.hama.band_set", Some("training")),
            policy("instrument.gad7.band_set", Some("no-such-set")),
        ];
        let r = apply_policies(lsas, &ps);
        let o = lsas.outcome(&r, Decimal::from(100), Decimal::from(65), None).unwrap();
        assert_eq!(o.response, Some(true), "at least 35 % once the clinic drops strictness");
        assert!(r.response.unwrap().source.starts_with("Clinic policy set by director"));
        let r = apply_policies(hama, &ps);
        assert_eq!(r.remission.unwrap().total_at_most, Decimal::from(10));
        assert_eq!(band_set_policy(hama, &ps).as_deref(), Some("training"));
        assert_eq!(band_set_policy(k.instrument("gad7").unwrap(), &ps), None, "an unknown band set falls back to the default");
        assert_eq!(apply_policies(hama, &[]), hama.default_rules);
    }
}
