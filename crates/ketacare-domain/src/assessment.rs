//! Administrations of rating instruments and the measurement-based-care workflow around them:
//! the assessment record, time points relative to a treatment session, schedules (anchored to
//! sessions or to the calendar) and what is due, questionnaire requests sent to patients, and
//! safety alerts raised by urgent flags.

use crate::ids::{AlertId, PatientId, RecordId, RequestId, ScheduleId, UserId};
use crate::instrument::{Instrument, Respondent};
use crate::validation::{optional_note, FieldErrors};
use chrono::{DateTime, Duration, NaiveDate, Utc};

/// Who filled in a form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilledBy {
    /// The patient, through a questionnaire link.
    Patient,
    /// A clinician (rating the patient, or entering a paper form).
    Clinician,
}

impl FilledBy {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            FilledBy::Patient => "patient",
            FilledBy::Clinician => "clinician",
        }
    }
    /// Parses a code.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim() {
            "patient" => Ok(Self::Patient),
            "clinician" => Ok(Self::Clinician),
            _ => Err("must be patient or clinician".into()),
        }
    }
}

/// One administration of an instrument: the answers, when, and the session it belongs to.
/// The score is derived from the answers and the instrument definition named here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assessment {
    /// Instrument key, e.g. `gad7`.
    pub instrument: String,
    /// Version of the instrument definition used.
    pub instrument_version: String,
    /// Answers in published item order (`None` = blank or skipped).
    pub answers: Vec<Option<u32>>,
    /// When it was taken (UTC).
    pub taken_at: DateTime<Utc>,
    /// Who filled it in.
    pub filled_by: FilledBy,
    /// The treatment session it belongs to, if any.
    pub session: Option<RecordId>,
    /// The time point relative to that session (key from the schedule knowledge, e.g. `1h`).
    pub timepoint: Option<String>,
    /// The questionnaire request it answers, if sent as a link.
    pub request: Option<RequestId>,
    /// Free-text note.
    pub note: Option<String>,
}

/// A time point relative to a treatment session (pre-dose, +1 h, ... as in the trials).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimePoint {
    /// Key, e.g. `pre`, `1h`, `24h`, `7d`.
    pub key: String,
    /// Label.
    pub label: String,
    /// Minutes from the session start (negative: before).
    pub offset_minutes: i64,
    /// How early it may be taken, in minutes before the due time.
    pub window_before_minutes: i64,
    /// How late it may be taken before it is overdue, in minutes after the due time.
    pub window_after_minutes: i64,
}

/// Raw input for recording an administration (form fields or JSON).
#[derive(Clone, Debug, Default)]
pub struct AssessmentInput {
    /// Instrument key.
    pub instrument: String,
    /// Answers as typed, one per item in published order (`""` or `-` = blank). Forms send
    /// them as fields `item_1`, `item_2`, ... (see [`AssessmentInput::answers_from_fields`]).
    pub answers: Vec<String>,
    /// When it was taken, `YYYY-MM-DDTHH:MM` (UTC); empty = now.
    pub taken_at: String,
    /// Session record id (an encounter), optional.
    pub session: String,
    /// Time point key, optional; requires a session.
    pub timepoint: String,
    /// Note.
    pub note: String,
}

impl AssessmentInput {
    /// Collects answers from form fields named `item_1` … `item_N` (missing numbers are blank).
    pub fn answers_from_fields<'a>(fields: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<String> {
        let mut found: Vec<(usize, String)> = fields
            .filter_map(|(k, v)| {
                k.strip_prefix("item_").and_then(|n| n.parse::<usize>().ok()).filter(|n| (1..=200).contains(n)).map(|n| (n, v.to_owned()))
            })
            .collect();
        found.sort_by_key(|(n, _)| *n);
        let max = found.last().map(|(n, _)| *n).unwrap_or(0);
        let mut out = vec![String::new(); max];
        for (n, v) in found {
            out[n - 1] = v;
        }
        out
    }

    /// Validates against the instrument and the time-point catalogue. `now` is used when
    /// `taken_at` is empty and to refuse times in the future.
    pub fn validate(
        &self,
        instrument: &Instrument,
        timepoints: &[TimePoint],
        filled_by: FilledBy,
        now: DateTime<Utc>,
    ) -> Result<Assessment, FieldErrors> {
        let mut e = FieldErrors::new();
        if filled_by == FilledBy::Patient && instrument.respondent == Respondent::Clinician {
            e.add("instrument", format!("{} is rated by a clinician; it cannot be filled in by the patient", instrument.name));
        }
        let mut answers = Vec::with_capacity(self.answers.len());
        if self.answers.len() > instrument.items.len() {
            e.add("items", format!("{} has {} items; {} answers were given", instrument.name, instrument.items.len(), self.answers.len()));
        }
        for (n, (raw, item)) in self.answers.iter().zip(instrument.items.iter()).enumerate() {
            match crate::instrument::parse_one(item, raw) {
                Ok(v) => answers.push(v),
                Err(m) => {
                    e.add(&item.key, format!("{} item {} ({}) {m}", instrument.name, n + 1, item.label));
                    answers.push(None);
                }
            }
        }
        if e.is_empty() {
            if let Err(errs) = instrument.validate(&answers) {
                for x in errs.iter() {
                    e.add(&x.field, x.message.clone());
                }
            }
        }
        let taken_at =
            if self.taken_at.trim().is_empty() { Some(now) } else { e.check("taken_at", crate::record::date_time(&self.taken_at)) };
        if let Some(t) = taken_at {
            if t > now + Duration::minutes(5) {
                e.add("taken_at", "must not be in the future");
            }
        }
        let session = if self.session.trim().is_empty() { None } else { e.check("session", RecordId::parse(&self.session)) };
        let timepoint = match self.timepoint.trim() {
            "" => None,
            t if timepoints.iter().any(|p| p.key == t) => {
                if session.is_none() && self.session.trim().is_empty() {
                    e.add("timepoint", "a time point needs the treatment session it is relative to");
                }
                Some(t.to_owned())
            }
            _ => {
                let keys: Vec<&str> = timepoints.iter().map(|p| p.key.as_str()).collect();
                e.add("timepoint", format!("must be one of {}", keys.join(", ")));
                None
            }
        };
        let note = e.check("note", optional_note(&self.note, 2000));
        match (taken_at, note) {
            (Some(taken_at), Some(note)) if e.is_empty() => Ok(Assessment {
                instrument: instrument.key.clone(),
                instrument_version: instrument.version.clone(),
                answers,
                taken_at,
                filled_by,
                session,
                timepoint,
                request: None,
                note,
            }),
            _ => Err(e),
        }
    }
}

/// What a schedule is anchored to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Anchor {
    /// Due at these time points of each treatment session; restarts at every session.
    Session {
        /// Time-point keys.
        timepoints: Vec<String>,
    },
    /// Due every `interval_days` from `start`, counted from the last administration.
    Calendar {
        /// Interval.
        interval_days: u32,
        /// First due date.
        start: NaiveDate,
    },
}

/// A standing order to administer an instrument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// Id.
    pub id: ScheduleId,
    /// Patient.
    pub patient_id: PatientId,
    /// Instrument key.
    pub instrument: String,
    /// Anchor.
    pub anchor: Anchor,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// When it was stopped, if it was.
    pub ended_at: Option<DateTime<Utc>>,
}

/// Raw schedule input.
#[derive(Clone, Debug, Default)]
pub struct ScheduleInput {
    /// Instrument key.
    pub instrument: String,
    /// `session` or `calendar`.
    pub anchor: String,
    /// Time-point keys (session anchor).
    pub timepoints: Vec<String>,
    /// Interval in days (calendar anchor).
    pub interval_days: String,
    /// First due date `YYYY-MM-DD` (calendar anchor); empty = today.
    pub start: String,
}

impl ScheduleInput {
    /// Validates against the known instruments and time points.
    pub fn validate(
        &self,
        instruments: &[Instrument],
        timepoints: &[TimePoint],
        today: NaiveDate,
    ) -> Result<(String, Anchor), FieldErrors> {
        let mut e = FieldErrors::new();
        if !instruments.iter().any(|i| i.key == self.instrument) {
            let keys: Vec<&str> = instruments.iter().map(|i| i.key.as_str()).collect();
            e.add("instrument", format!("must be one of {}", keys.join(", ")));
        }
        let anchor = match self.anchor.trim() {
            "session" => {
                let tps: Vec<String> = self.timepoints.iter().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect();
                if tps.is_empty() {
                    e.add("timepoints", "choose at least one time point");
                }
                for t in &tps {
                    if !timepoints.iter().any(|p| &p.key == t) {
                        let keys: Vec<&str> = timepoints.iter().map(|p| p.key.as_str()).collect();
                        e.add("timepoints", format!("{t:?} is not a time point; use {}", keys.join(", ")));
                    }
                }
                Some(Anchor::Session { timepoints: tps })
            }
            "calendar" => {
                let days = e.check(
                    "interval_days",
                    self.interval_days
                        .trim()
                        .parse::<u32>()
                        .ok()
                        .filter(|d| (1..=365).contains(d))
                        .ok_or_else(|| "must be a whole number of days from 1 to 365".to_owned()),
                );
                let start = if self.start.trim().is_empty() {
                    Some(today)
                } else {
                    e.check(
                        "start",
                        NaiveDate::parse_from_str(self.start.trim(), "%Y-%m-%d").map_err(|_| "must be a date YYYY-MM-DD".to_owned()),
                    )
                };
                days.zip(start).map(|(interval_days, start)| Anchor::Calendar { interval_days, start })
            }
            _ => {
                e.add("anchor", "must be session or calendar");
                None
            }
        };
        match anchor {
            Some(a) if e.is_empty() => Ok((self.instrument.clone(), a)),
            _ => Err(e),
        }
    }
}

/// A treatment session as the schedules see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionRef {
    /// The session record.
    pub id: RecordId,
    /// Its start.
    pub start: DateTime<Utc>,
}

/// An administration as the schedules see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Taken {
    /// Instrument key.
    pub instrument: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Session.
    pub session: Option<RecordId>,
    /// Time point.
    pub timepoint: Option<String>,
}

/// Status of a due item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DueStatus {
    /// Overdue: its window has passed without an administration.
    Overdue,
    /// Due now (inside its window).
    Due,
    /// Not yet due.
    Upcoming,
    /// Done.
    Done,
}

impl DueStatus {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            DueStatus::Overdue => "overdue",
            DueStatus::Due => "due",
            DueStatus::Upcoming => "upcoming",
            DueStatus::Done => "done",
        }
    }
}

/// One thing a schedule asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueItem {
    /// The schedule.
    pub schedule: ScheduleId,
    /// Instrument key.
    pub instrument: String,
    /// Session, for session-anchored items.
    pub session: Option<RecordId>,
    /// Time point, for session-anchored items.
    pub timepoint: Option<String>,
    /// When it is due.
    pub due_at: DateTime<Utc>,
    /// When it becomes overdue.
    pub overdue_at: DateTime<Utc>,
    /// Status at `now`.
    pub status: DueStatus,
}

/// What a schedule asks for at `now`. Session-anchored schedules look only at the most recent
/// session that has started and the next one that has not (they restart at every session);
/// calendar schedules give the next administration, counted from the last one taken.
/// `grace_days` is how long a calendar item stays "due" before it is overdue.
pub fn due_items(
    schedule: &Schedule,
    timepoints: &[TimePoint],
    sessions: &[SessionRef],
    taken: &[Taken],
    grace_days: i64,
    now: DateTime<Utc>,
) -> Vec<DueItem> {
    let mine: Vec<&Taken> = taken.iter().filter(|t| t.instrument == schedule.instrument).collect();
    let status = |done: bool, open_at: DateTime<Utc>, overdue_at: DateTime<Utc>| {
        if done {
            DueStatus::Done
        } else if now < open_at {
            DueStatus::Upcoming
        } else if now <= overdue_at {
            DueStatus::Due
        } else {
            DueStatus::Overdue
        }
    };
    match &schedule.anchor {
        Anchor::Session { timepoints: keys } => {
            let mut sorted: Vec<&SessionRef> = sessions.iter().filter(|s| s.start >= schedule.created_at - Duration::days(1)).collect();
            sorted.sort_by_key(|s| s.start);
            let last = sorted.iter().rev().find(|s| s.start <= now);
            let next = sorted.iter().find(|s| s.start > now);
            let mut out = Vec::new();
            for s in [last, next].into_iter().flatten() {
                for key in keys {
                    let Some(tp) = timepoints.iter().find(|p| &p.key == key) else { continue };
                    let due_at = s.start + Duration::minutes(tp.offset_minutes);
                    let open_at = due_at - Duration::minutes(tp.window_before_minutes);
                    let overdue_at = due_at + Duration::minutes(tp.window_after_minutes);
                    let done = mine.iter().any(|t| {
                        (t.session == Some(s.id) && t.timepoint.as_deref() == Some(key.as_str()))
                            || (t.session.is_none() && t.at >= open_at && t.at <= overdue_at)
                    });
                    out.push(DueItem {
                        schedule: schedule.id,
                        instrument: schedule.instrument.clone(),
                        session: Some(s.id),
                        timepoint: Some(key.clone()),
                        due_at,
                        overdue_at,
                        status: status(done, open_at, overdue_at),
                    });
                }
            }
            out
        }
        Anchor::Calendar { interval_days, start } => {
            let start_at = start.and_hms_opt(0, 0, 0).map(|d| d.and_utc()).unwrap_or(schedule.created_at);
            let last = mine.iter().filter(|t| t.at >= start_at).map(|t| t.at).max();
            let due_at = match last {
                Some(l) => l + Duration::days(i64::from(*interval_days)),
                None => start_at,
            };
            let overdue_at = due_at + Duration::days(grace_days);
            vec![DueItem {
                schedule: schedule.id,
                instrument: schedule.instrument.clone(),
                session: None,
                timepoint: None,
                due_at,
                overdue_at,
                status: status(false, due_at, overdue_at),
            }]
        }
    }
}

/// A request sent to a patient to fill in a questionnaire through a single-use link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuestionnaireRequest {
    /// Id.
    pub id: RequestId,
    /// Patient.
    pub patient_id: PatientId,
    /// Instrument key.
    pub instrument: String,
    /// SHA-256 of the link token (the token itself is never stored).
    pub token_hash: String,
    /// Session it belongs to.
    pub session: Option<RecordId>,
    /// Time point.
    pub timepoint: Option<String>,
    /// The clinician who sent it (responsible for alerts raised by the answers).
    pub sent_by: UserId,
    /// Their username.
    pub sent_by_name: String,
    /// When sent.
    pub sent_at: DateTime<Utc>,
    /// When the link stops working.
    pub expires_at: DateTime<Utc>,
    /// When it was answered.
    pub completed_at: Option<DateTime<Utc>>,
    /// The assessment record created by the answer.
    pub response: Option<RecordId>,
    /// When it was withdrawn.
    pub cancelled_at: Option<DateTime<Utc>>,
}

/// State of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestState {
    /// Waiting for the patient.
    Open,
    /// Answered.
    Completed,
    /// Withdrawn by the clinic.
    Cancelled,
    /// Not answered in time.
    Expired,
}

impl RequestState {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            RequestState::Open => "open",
            RequestState::Completed => "completed",
            RequestState::Cancelled => "cancelled",
            RequestState::Expired => "expired",
        }
    }
}

impl QuestionnaireRequest {
    /// The state at `now`.
    pub fn state(&self, now: DateTime<Utc>) -> RequestState {
        if self.completed_at.is_some() {
            RequestState::Completed
        } else if self.cancelled_at.is_some() {
            RequestState::Cancelled
        } else if now >= self.expires_at {
            RequestState::Expired
        } else {
            RequestState::Open
        }
    }
}

/// An urgent safety alert (e.g. PHQ-9 item 9 above 0) that stays open until a clinician
/// acknowledges it with what was done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SafetyAlert {
    /// Id.
    pub id: AlertId,
    /// Patient.
    pub patient_id: PatientId,
    /// Flag code, e.g. `phq9_item9`.
    pub code: String,
    /// What it means.
    pub label: String,
    /// The assessment that raised it.
    pub source_record: RecordId,
    /// When raised.
    pub raised_at: DateTime<Utc>,
    /// The responsible clinician (the one who sent the request or recorded the form).
    pub assigned_to: Option<UserId>,
    /// Acknowledgement, once given.
    pub acknowledgement: Option<Acknowledgement>,
}

/// Who acknowledged an alert, when, and what was done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acknowledgement {
    /// User.
    pub by: UserId,
    /// Username.
    pub by_name: String,
    /// When.
    pub at: DateTime<Utc>,
    /// What was done (required, 3–1000 characters).
    pub action_taken: String,
}

/// Validates the "what was done" text of an acknowledgement.
pub fn action_taken(raw: &str) -> Result<String, String> {
    let hint = "; say what was done, for example \"called the patient, safety plan reviewed, no current intent\"";
    match optional_note(raw, 1000) {
        Ok(Some(t)) if t.chars().count() >= 3 => Ok(t),
        Ok(_) => Err(format!("must be at least 3 characters{hint}")),
        Err(e) => Err(format!("{e}{hint}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn at(h: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000 + h * 3600, 0).unwrap()
    }
    fn tps() -> Vec<TimePoint> {
        vec![
            TimePoint { key: "pre".into(), label: "Pre".into(), offset_minutes: 0, window_before_minutes: 120, window_after_minutes: 0 },
            TimePoint { key: "1h".into(), label: "+1 h".into(), offset_minutes: 60, window_before_minutes: 15, window_after_minutes: 30 },
            TimePoint {
                key: "24h".into(),
                label: "+24 h".into(),
                offset_minutes: 1440,
                window_before_minutes: 240,
                window_after_minutes: 480,
            },
        ]
    }
    fn sched(anchor: Anchor) -> Schedule {
        Schedule {
            id: ScheduleId::from_uuid(Uuid::from_u128(1)),
            patient_id: PatientId::from_uuid(Uuid::from_u128(2)),
            instrument: "gad7".into(),
            anchor,
            created_by: "x".into(),
            created_at: at(-100),
            ended_at: None,
        }
    }

    #[test]
    fn session_anchored_items_restart_at_each_session() {
        let s = sched(Anchor::Session { timepoints: vec!["pre".into(), "1h".into(), "24h".into()] });
        let s1 = SessionRef { id: RecordId::from_uuid(Uuid::from_u128(10)), start: at(0) };
        let s2 = SessionRef { id: RecordId::from_uuid(Uuid::from_u128(11)), start: at(168) };
        let taken = vec![Taken { instrument: "gad7".into(), at: at(0), session: Some(s1.id), timepoint: Some("pre".into()) }];
        let items = due_items(&s, &tps(), &[s1, s2], &taken, 2, at(2));
        let st: Vec<_> = items.iter().map(|i| (i.session.unwrap() == s1.id, i.timepoint.clone().unwrap(), i.status)).collect();
        assert_eq!(
            st,
            vec![
                (true, "pre".into(), DueStatus::Done),
                (true, "1h".into(), DueStatus::Overdue),
                (true, "24h".into(), DueStatus::Upcoming),
                (false, "pre".into(), DueStatus::Upcoming),
                (false, "1h".into(), DueStatus::Upcoming),
                (false, "24h".into(), DueStatus::Upcoming),
            ]
        );
        // After the second session started, the first session's items are gone.
        let items = due_items(&s, &tps(), &[s1, s2], &taken, 2, at(169));
        assert!(items.iter().all(|i| i.session == Some(s2.id)));
        assert_eq!(items[1].status, DueStatus::Due);
    }

    #[test]
    fn calendar_items_count_from_the_last_administration() {
        let start = at(0).date_naive();
        let s = sched(Anchor::Calendar { interval_days: 7, start });
        let items = due_items(&s, &tps(), &[], &[], 2, at(1));
        assert_eq!(items[0].status, DueStatus::Due);
        let taken = vec![Taken { instrument: "gad7".into(), at: at(24), session: None, timepoint: None }];
        let items = due_items(&s, &tps(), &[], &taken, 2, at(48));
        assert_eq!(items[0].status, DueStatus::Upcoming);
        assert_eq!(items[0].due_at, at(24 + 168));
        let items = due_items(&s, &tps(), &[], &taken, 2, at(24 + 168 + 49));
        assert_eq!(items[0].status, DueStatus::Overdue);
    }

    #[test]
    fn request_states() {
        let r = QuestionnaireRequest {
            id: RequestId::from_uuid(Uuid::from_u128(1)),
            patient_id: PatientId::from_uuid(Uuid::from_u128(2)),
            instrument: "gad7".into(),
            token_hash: "h".into(),
            session: None,
            timepoint: None,
            sent_by: UserId::from_uuid(Uuid::from_u128(3)),
            sent_by_name: "n".into(),
            sent_at: at(0),
            expires_at: at(72),
            completed_at: None,
            response: None,
            cancelled_at: None,
        };
        assert_eq!(r.state(at(1)), RequestState::Open);
        assert_eq!(r.state(at(72)), RequestState::Expired);
        assert_eq!(RequestState::Completed, QuestionnaireRequest { completed_at: Some(at(2)), ..r.clone() }.state(at(100)));
        assert_eq!(RequestState::Cancelled, QuestionnaireRequest { cancelled_at: Some(at(2)), ..r }.state(at(3)));
    }
}
