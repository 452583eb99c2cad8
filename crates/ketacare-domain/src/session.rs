//! The treatment session as a state machine, and the alert engine that watches its vital signs.
//!
//! Phases: scheduled → checked in → pre-dose checks → dosing → monitoring → recovery →
//! discharged; a session may be paused (and resumed where it was), stopped early or cancelled.
//! `Phase::next` refuses out-of-order steps whatever the caller; starting the dose also needs
//! `unmet_checks` to be empty and discharging needs `unmet_discharge` to be empty, which the
//! caller checks with the chart's data before it takes the step. A session stopped early still
//! goes through recovery and discharge: the patient has had drug.
//! The alert engine turns one reading (with the session's baseline and phase) into the alarms
//! it raises, by the rules of `knowledge/session.toml`; a silent monitor is an alarm too.

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;

use crate::titration::Rule;

/// Where a session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Booked.
    Scheduled,
    /// The patient has arrived.
    CheckedIn,
    /// Pre-dose checks under way.
    PreDoseChecks,
    /// The dose is being given.
    Dosing,
    /// Dose given; watched.
    Monitoring,
    /// Recovering before discharge.
    Recovery,
    /// Discharged (final).
    Discharged,
    /// Paused from an active phase; resumes there.
    Paused(ActivePhase),
    /// The dose was stopped before the end; the patient goes on to recovery.
    StoppedEarly,
    /// Cancelled before any dose (final).
    Cancelled,
}

/// The phases a session can be paused in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActivePhase {
    /// Dosing (an infusion paused).
    Dosing,
    /// Monitoring.
    Monitoring,
}

/// What happens to a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// The patient arrives.
    CheckIn,
    /// The nurse starts the pre-dose checks.
    StartChecks,
    /// The checks passed; the dose starts.
    StartDose,
    /// The dose has been given in full (infusion ended, injection given).
    DoseGiven,
    /// Monitoring ends; recovery starts.
    StartRecovery,
    /// The patient leaves, with the criteria met and a clinician's signature.
    Discharge,
    /// Back from recovery to monitoring (the patient got worse).
    BackToMonitoring,
    /// Pause (infusion or monitoring).
    Pause,
    /// Resume after a pause.
    Resume,
    /// Stop the dose before the end, with a reason (then recovery as usual).
    Stop,
    /// Cancel before any dose, with a reason.
    Cancel,
}

impl Phase {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            Phase::Scheduled => "scheduled",
            Phase::CheckedIn => "checked_in",
            Phase::PreDoseChecks => "pre_dose_checks",
            Phase::Dosing => "dosing",
            Phase::Monitoring => "monitoring",
            Phase::Recovery => "recovery",
            Phase::Discharged => "discharged",
            Phase::Paused(ActivePhase::Dosing) => "paused_dosing",
            Phase::Paused(ActivePhase::Monitoring) => "paused_monitoring",
            Phase::StoppedEarly => "stopped_early",
            Phase::Cancelled => "cancelled",
        }
    }

    /// Parses a code.
    pub fn parse(s: &str) -> Result<Self, String> {
        ALL.into_iter().find(|p| p.code() == s).ok_or_else(|| format!("unknown session phase {s}"))
    }

    /// Whether the session is over.
    pub fn is_final(self) -> bool {
        matches!(self, Phase::Discharged | Phase::Cancelled)
    }

    /// Whether drug has been (or is being) given: alarms for the dose apply.
    pub fn dose_started(self) -> bool {
        matches!(self, Phase::Dosing | Phase::Monitoring | Phase::Recovery | Phase::Paused(_) | Phase::StoppedEarly)
    }

    /// The next phase after `step`, or why the step is not allowed now.
    pub fn next(self, step: &Step) -> Result<Phase, String> {
        use Phase as P;
        let next = match (self, step) {
            (P::Scheduled, Step::CheckIn) => P::CheckedIn,
            (P::CheckedIn, Step::StartChecks) => P::PreDoseChecks,
            (P::PreDoseChecks, Step::StartDose) => P::Dosing,
            (P::Dosing, Step::DoseGiven) => P::Monitoring,
            (P::Monitoring | P::StoppedEarly, Step::StartRecovery) => P::Recovery,
            (P::Recovery, Step::Discharge) => P::Discharged,
            (P::Recovery, Step::BackToMonitoring) => P::Monitoring,
            (P::Dosing, Step::Pause) => P::Paused(ActivePhase::Dosing),
            (P::Monitoring, Step::Pause) => P::Paused(ActivePhase::Monitoring),
            (P::Paused(ActivePhase::Dosing), Step::Resume) => P::Dosing,
            (P::Paused(ActivePhase::Monitoring), Step::Resume) => P::Monitoring,
            (P::Scheduled | P::CheckedIn | P::PreDoseChecks, Step::Cancel) => P::Cancelled,
            (P::Dosing | P::Monitoring | P::Paused(_), Step::Stop) => P::StoppedEarly,
            (from, step) => return Err(refusal(from, step)),
        };
        Ok(next)
    }
}

const ALL: [Phase; 11] = [
    Phase::Scheduled,
    Phase::CheckedIn,
    Phase::PreDoseChecks,
    Phase::Dosing,
    Phase::Monitoring,
    Phase::Recovery,
    Phase::Discharged,
    Phase::Paused(ActivePhase::Dosing),
    Phase::Paused(ActivePhase::Monitoring),
    Phase::StoppedEarly,
    Phase::Cancelled,
];

fn refusal(from: Phase, step: &Step) -> String {
    let what = match step {
        Step::CheckIn => "check in",
        Step::StartChecks => "start the pre-dose checks",
        Step::StartDose => "start the dose",
        Step::DoseGiven => "record the dose as given",
        Step::StartRecovery => "start recovery",
        Step::Discharge => "discharge",
        Step::BackToMonitoring => "go back to monitoring (only from recovery)",
        Step::Pause => "pause",
        Step::Resume => "resume",
        Step::Stop => "stop the dose early (use cancel before any dose; in recovery the dose is over)",
        Step::Cancel => "cancel (after the dose has started, stop early instead)",
    };
    if from.is_final() {
        format!("the session is {} and closed: it cannot {what}", from.code().replace('_', " "))
    } else {
        format!("cannot {what} while the session is {}", from.code().replace('_', " "))
    }
}

/// The pre-dose checks. Each is `None` until done.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PreDoseChecks {
    /// The screening re-check allows a session (no absolute contraindication).
    pub screening_allows: Option<bool>,
    /// Consent on file.
    pub consent_on_file: Option<bool>,
    /// Weight measured today.
    pub weight_today: Option<bool>,
    /// Baseline blood pressure (systolic, diastolic).
    pub baseline_bp: Option<(u32, u32)>,
    /// A prescriber's decision to go ahead above the gate, with who decided.
    pub gate_decision_by: Option<String>,
    /// Pregnancy test: `None` when not required, `Some(false)` required and missing or positive.
    pub pregnancy_test_ok: Option<bool>,
    /// Whether the clinic requires a pregnancy test for this patient.
    pub pregnancy_test_required: bool,
    /// Escort home confirmed.
    pub escort_confirmed: Option<bool>,
    /// The dose passed the independent double check.
    pub dose_double_checked: Option<bool>,
}

/// The session rules (from `knowledge/session.toml`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRules {
    /// Version of the file.
    pub version: String,
    /// Pre-dose gate, systolic above.
    pub gate_sbp_above: Rule,
    /// Pre-dose gate, diastolic above.
    pub gate_dbp_above: Rule,
    /// Pre-dose hard ceiling, systolic above: no decision lets the dose start.
    pub gate_hard_sbp_above: Rule,
    /// Pre-dose hard ceiling, diastolic above.
    pub gate_hard_dbp_above: Rule,
    /// Alarm: systolic above.
    pub sbp_above: Rule,
    /// Alarm: diastolic above.
    pub dbp_above: Rule,
    /// Alarm: systolic rise from baseline of at least.
    pub sbp_rise: Rule,
    /// Alarm: diastolic rise from baseline of at least.
    pub dbp_rise: Rule,
    /// Alarm: heart rate above.
    pub hr_above: Rule,
    /// Alarm: heart rate below.
    pub hr_below: Rule,
    /// Alarm: SpO2 below.
    pub spo2_below: Rule,
    /// Alarm: respiratory rate below.
    pub rr_below: Rule,
    /// Alarm: respiratory rate above.
    pub rr_above: Rule,
    /// Alarm: CADSS total above.
    pub cadss_above: Rule,
    /// Alarm: MOAA/S at or below.
    pub moaas_at_or_below: Rule,
    /// Critical when MOAA/S is at or below.
    pub moaas_critical_at_or_below: Rule,
    /// Stale feed after this many seconds (the monitor as a whole, and continuous signals:
    /// heart rate, SpO2, respiratory rate).
    pub stale_seconds: Rule,
    /// A blood-pressure cuff that measured once and then stays silent this long is stale.
    pub stale_bp_seconds: Rule,
    /// Escalate an unacknowledged alarm after this many seconds.
    pub escalate_seconds: Rule,
    /// Plausible range per vital sign.
    pub plausible: Vec<(Vital, Decimal, Decimal)>,
    /// Minimum observation after the dose, minutes.
    pub discharge_minutes: Rule,
    /// Systolic within this of baseline to discharge.
    pub discharge_sbp_within: Rule,
    /// MOAA/S needed to discharge.
    pub discharge_moaas: Rule,
    /// An acknowledged alarm whose value stays outside the limit alarms again after this many
    /// seconds.
    pub realarm_seconds: Rule,
    /// Prompt for vitals this many minutes after the last blood pressure (dose started).
    pub prompt_vitals_minutes: Rule,
    /// Prompt for MOAA/S this many minutes after the last one.
    pub prompt_moaas_minutes: Rule,
    /// Prompt for CADSS this many minutes after the dose starts.
    pub prompt_cadss_minutes: Rule,
}

/// A vital sign.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Vital {
    /// Systolic BP, mm[Hg].
    Systolic,
    /// Diastolic BP, mm[Hg].
    Diastolic,
    /// Heart rate, /min.
    HeartRate,
    /// SpO2, %.
    Spo2,
    /// Respiratory rate, /min.
    RespiratoryRate,
}

impl Vital {
    /// All vital signs.
    pub const ALL: [Vital; 5] = [Vital::Systolic, Vital::Diastolic, Vital::HeartRate, Vital::Spo2, Vital::RespiratoryRate];

    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            Vital::Systolic => "systolic",
            Vital::Diastolic => "diastolic",
            Vital::HeartRate => "heart_rate",
            Vital::Spo2 => "spo2",
            Vital::RespiratoryRate => "respiratory_rate",
        }
    }

    /// Name shown to people.
    pub fn label(self) -> &'static str {
        match self {
            Vital::Systolic => "Systolic BP",
            Vital::Diastolic => "Diastolic BP",
            Vital::HeartRate => "Heart rate",
            Vital::Spo2 => "SpO2",
            Vital::RespiratoryRate => "Respiratory rate",
        }
    }

    /// LOINC code (FHIR R4 vital-signs value set).
    pub fn loinc(self) -> &'static str {
        use crate::coding::loinc;
        match self {
            Vital::Systolic => loinc::SYSTOLIC_BP,
            Vital::Diastolic => loinc::DIASTOLIC_BP,
            Vital::HeartRate => loinc::HEART_RATE,
            Vital::Spo2 => loinc::SPO2,
            Vital::RespiratoryRate => loinc::RESPIRATORY_RATE,
        }
    }

    /// Parses a code.
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|v| v.code() == s)
            .ok_or_else(|| format!("unknown vital sign {s:?}; accepted: {}", Self::ALL.map(Vital::code).join(", ")))
    }

    /// The rule code of this signal's stale alarm.
    pub fn stale_rule(self) -> &'static str {
        match self {
            Vital::Systolic => "stale_systolic",
            Vital::Diastolic => "stale_diastolic",
            Vital::HeartRate => "stale_heart_rate",
            Vital::Spo2 => "stale_spo2",
            Vital::RespiratoryRate => "stale_respiratory_rate",
        }
    }

    /// UCUM unit.
    pub fn unit(self) -> &'static str {
        match self {
            Vital::Systolic | Vital::Diastolic => "mm[Hg]",
            Vital::HeartRate | Vital::RespiratoryRate => "/min",
            Vital::Spo2 => "%",
        }
    }

    /// The unit as people read it (`mmHg`, not the UCUM code `mm[Hg]`).
    pub fn display_unit(self) -> &'static str {
        match self {
            Vital::Systolic | Vital::Diastolic => "mmHg",
            _ => self.unit(),
        }
    }
}

/// How serious an alarm is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Look soon.
    Advisory,
    /// Attend now.
    Warning,
    /// Attend now and call the prescriber.
    Critical,
}

impl Level {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            Level::Advisory => "advisory",
            Level::Warning => "warning",
            Level::Critical => "critical",
        }
    }

    /// Parses a code.
    pub fn parse(s: &str) -> Result<Self, String> {
        [Level::Advisory, Level::Warning, Level::Critical]
            .into_iter()
            .find(|l| l.code() == s)
            .ok_or_else(|| format!("unknown alarm level {s}"))
    }

    /// One level up (critical stays critical).
    pub fn escalated(self) -> Level {
        match self {
            Level::Advisory => Level::Warning,
            _ => Level::Critical,
        }
    }
}

/// An alarm the engine raises.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alarm {
    /// Rule code, e.g. `sbp_above`; one open alarm per rule and session.
    pub rule: &'static str,
    /// Level.
    pub level: Level,
    /// What happened, with the value and the limit.
    pub message: String,
    /// Source of the limit.
    pub source: String,
}

/// Whether a reading is physiologically plausible; the error names the accepted range.
pub fn plausible(rules: &SessionRules, vital: Vital, value: Decimal) -> Result<(), String> {
    match rules.plausible.iter().find(|(v, _, _)| *v == vital) {
        Some((_, lo, hi)) if value < *lo || value > *hi => Err(format!(
            "{} {value} {} is implausible (accepted {lo}-{hi}): rejected as an artefact, not stored as a reading",
            vital.label(),
            vital.display_unit()
        )),
        _ => Ok(()),
    }
}

/// The alarm for a value a monitor sent outside the plausibility limits: never a reading, but
/// either an artefact or an emergency, so the bedside must look now. `why` is `plausible`'s
/// refusal.
pub fn implausible_alarm(vital: Vital, value: Decimal, why: &str) -> Alarm {
    Alarm {
        rule: "extreme_value",
        level: Level::Critical,
        message: format!(
            "The monitor sent {} {value} {}: not stored as a reading; check the patient and the probe now",
            vital.label(),
            vital.unit()
        ),
        source: format!("Plausibility limits of the session rules (clinic policy): {why}"),
    }
}

/// The pre-dose checks still open or failed, each as a sentence; empty when the dose may start.
/// A baseline above the gate needs a prescriber's decision (recorded in `gate_decision_by`).
pub fn unmet_checks(rules: &SessionRules, c: &PreDoseChecks) -> Vec<String> {
    let mut out = Vec::new();
    let mut need = |ok: Option<bool>, missing: &str, failed: &str| match ok {
        None => out.push(missing.to_owned()),
        Some(false) => out.push(failed.to_owned()),
        Some(true) => {}
    };
    need(c.screening_allows, "Screening re-check not done", "Screening: an absolute contraindication stands; no dose");
    need(c.consent_on_file, "Consent not confirmed", "No consent on file");
    need(c.weight_today, "Weight not measured today", "Weight not measured today");
    if c.pregnancy_test_required {
        need(c.pregnancy_test_ok, "Pregnancy test required and not recorded", "Pregnancy test not negative: no dose");
    }
    need(c.escort_confirmed, "Escort home not confirmed", "No escort home");
    need(c.dose_double_checked, "The dose has not passed the independent double check", "The dose did not pass the double check");
    match c.baseline_bp {
        None => out.push("Baseline blood pressure not recorded".to_owned()),
        Some((s, d)) => {
            let implausible = [plausible(rules, Vital::Systolic, Decimal::from(s)), plausible(rules, Vital::Diastolic, Decimal::from(d))];
            let above = Decimal::from(s) > rules.gate_sbp_above.value || Decimal::from(d) > rules.gate_dbp_above.value;
            let decided = c.gate_decision_by.as_deref().is_some_and(|b| !b.trim().is_empty());
            if let Some(Err(e)) = implausible.into_iter().find(Result::is_err) {
                out.push(format!("Baseline: {e}; measure again"));
            } else if Decimal::from(s) > rules.gate_hard_sbp_above.value || Decimal::from(d) > rules.gate_hard_dbp_above.value {
                out.push(format!(
                    "Baseline {s}/{d} mmHg is above {}/{} mmHg: no dose today, for anyone ({})",
                    rules.gate_hard_sbp_above.value, rules.gate_hard_dbp_above.value, rules.gate_hard_sbp_above.source
                ));
            } else if above && !decided {
                out.push(format!(
                    "Baseline {s}/{d} mmHg is above the gate of {}/{} mmHg: a prescriber must decide to go ahead ({})",
                    rules.gate_sbp_above.value, rules.gate_dbp_above.value, rules.gate_sbp_above.source
                ));
            }
        }
    }
    out
}

/// The alarms one reading raises, given the pre-dose baseline (systolic, diastolic) and the
/// phase. Before the dose nothing is raised (the gate is a pre-dose check, not an alarm).
pub fn evaluate_vital(
    rules: &SessionRules,
    phase: Phase,
    vital: Vital,
    value: Decimal,
    baseline: (Option<u32>, Option<u32>),
) -> Vec<Alarm> {
    if !phase.dose_started() {
        return Vec::new();
    }
    let (l, u) = (vital.label(), vital.display_unit());
    let alarm = |rule: &'static str, level: Level, message: String, r: &Rule| Alarm { rule, level, message, source: r.source.clone() };
    let above = |rule: &'static str, level: Level, r: &Rule| {
        (value > r.value).then(|| alarm(rule, level, format!("{l} {value} {u} is above {}", r.value), r))
    };
    let below = |rule: &'static str, level: Level, r: &Rule| {
        (value < r.value).then(|| alarm(rule, level, format!("{l} {value} {u} is below {}", r.value), r))
    };
    let rise = |rule: &'static str, base: Option<u32>, r: &Rule| {
        let b = base?;
        let by = value - Decimal::from(b);
        (by >= r.value)
            .then(|| alarm(rule, Level::Warning, format!("{l} rose {by} {u} from the baseline of {b} (limit: a rise of {})", r.value), r))
    };
    let found = match vital {
        Vital::Systolic => [above("sbp_above", Level::Critical, &rules.sbp_above), rise("sbp_rise", baseline.0, &rules.sbp_rise)],
        Vital::Diastolic => [above("dbp_above", Level::Critical, &rules.dbp_above), rise("dbp_rise", baseline.1, &rules.dbp_rise)],
        Vital::HeartRate => [above("hr_above", Level::Warning, &rules.hr_above), below("hr_below", Level::Warning, &rules.hr_below)],
        Vital::Spo2 => [below("spo2_below", Level::Critical, &rules.spo2_below), None],
        Vital::RespiratoryRate => [below("rr_below", Level::Critical, &rules.rr_below), above("rr_above", Level::Warning, &rules.rr_above)],
    };
    found.into_iter().flatten().collect()
}

/// The alarm a CADSS total or MOAA/S score raises (totals come from the instrument's own
/// scoring, which has already checked their range). Other instruments raise nothing here.
pub fn evaluate_rating(rules: &SessionRules, instrument: &str, total: Decimal) -> Option<Alarm> {
    match instrument {
        "cadss" if total > rules.cadss_above.value => Some(Alarm {
            rule: "cadss_above",
            level: Level::Warning,
            message: format!("CADSS {total} is above {}", rules.cadss_above.value),
            source: rules.cadss_above.source.clone(),
        }),
        "moaas" if total <= rules.moaas_at_or_below.value => Some(Alarm {
            rule: "moaas_low",
            level: if total <= rules.moaas_critical_at_or_below.value { Level::Critical } else { Level::Warning },
            message: format!("MOAA/S {total}: at or below {}", rules.moaas_at_or_below.value),
            source: rules.moaas_at_or_below.source.clone(),
        }),
        _ => None,
    }
}

/// The stale-feed alarm for a monitor bound to the session at `bound_at` (`None`: no monitor,
/// vitals are typed in by hand, so no stale-feed alarm) whose last reading was at `last`, now.
pub fn stale_feed(
    rules: &SessionRules,
    phase: Phase,
    bound_at: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<Alarm> {
    let bound_at = bound_at?;
    if phase.is_final() || matches!(phase, Phase::Scheduled) {
        return None;
    }
    let secs = whole_seconds(&rules.stale_seconds);
    let since = last.map_or(bound_at, |l| l.max(bound_at));
    let silent = now - since;
    (silent >= Duration::try_seconds(secs).unwrap_or(Duration::MAX)).then(|| Alarm {
        rule: "stale_feed",
        level: if phase.dose_started() { Level::Critical } else { Level::Warning },
        message: format!("The monitor has sent nothing for {} s (limit {secs} s)", silent.num_seconds()),
        source: rules.stale_seconds.source.clone(),
    })
}

/// The alarm for one vital sign a bound monitor has sent before and has not sent since `last`
/// (a probe that fell off while the rest of the feed goes on). Blood pressure has its own,
/// longer limit: cuffs measure every few minutes.
pub fn stale_vital(rules: &SessionRules, phase: Phase, vital: Vital, last: DateTime<Utc>, now: DateTime<Utc>) -> Option<Alarm> {
    if phase.is_final() || matches!(phase, Phase::Scheduled) {
        return None;
    }
    let limit = if matches!(vital, Vital::Systolic | Vital::Diastolic) { &rules.stale_bp_seconds } else { &rules.stale_seconds };
    let secs = whole_seconds(limit);
    let silent = now - last;
    (silent >= Duration::try_seconds(secs).unwrap_or(Duration::MAX)).then(|| Alarm {
        rule: vital.stale_rule(),
        level: if phase.dose_started() { Level::Critical } else { Level::Warning },
        message: format!("{} has not been sent for {} s (limit {secs} s): check the probe or cuff", vital.label(), silent.num_seconds()),
        source: limit.source.clone(),
    })
}

/// The level an open alarm raised at `raised` has now: one level up per escalation period
/// without acknowledgement.
pub fn level_now(rules: &SessionRules, alarm: Level, raised: DateTime<Utc>, now: DateTime<Utc>) -> Level {
    let secs = whole_seconds(&rules.escalate_seconds);
    let periods = (now - raised).num_seconds().max(0) / secs;
    (0..periods.min(2)).fold(alarm, |l, _| l.escalated())
}

/// A rule's value in whole seconds, at least 1 (the loader allows 1 to 86400).
fn whole_seconds(r: &Rule) -> i64 {
    i64::try_from(r.value.trunc().mantissa()).unwrap_or(i64::MAX).clamp(1, 86_400)
}

/// What discharge needs now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DischargeState {
    /// Minutes since the dose ended.
    pub minutes_since_dose: i64,
    /// Baseline and latest systolic.
    pub baseline_sbp: Option<u32>,
    /// Latest systolic.
    pub latest_sbp: Option<u32>,
    /// Latest MOAA/S.
    pub latest_moaas: Option<u32>,
    /// Open (unacknowledged) alarms.
    pub open_alarms: usize,
    /// Escort present.
    pub escort_present: bool,
}

/// The discharge criteria still unmet, each as a sentence; empty when a clinician may sign.
pub fn unmet_discharge(rules: &SessionRules, s: &DischargeState) -> Vec<String> {
    let mut out = Vec::new();
    if Decimal::from(s.minutes_since_dose) < rules.discharge_minutes.value {
        out.push(format!(
            "Observed {} min since the dose; at least {} min needed",
            s.minutes_since_dose.max(0),
            rules.discharge_minutes.value
        ));
    }
    match (s.baseline_sbp, s.latest_sbp) {
        (Some(b), Some(l)) if (Decimal::from(l) - Decimal::from(b)).abs() > rules.discharge_sbp_within.value => {
            out.push(format!("Systolic {l} mmHg is not within {} of the baseline of {b}", rules.discharge_sbp_within.value));
        }
        (_, None) | (None, _) => out.push("No baseline and recent systolic to compare".to_owned()),
        _ => {}
    }
    match s.latest_moaas {
        Some(m) if Decimal::from(m) >= rules.discharge_moaas.value => {}
        Some(m) => out.push(format!("MOAA/S {m}; {} needed", rules.discharge_moaas.value)),
        None => out.push("No MOAA/S recorded in recovery".to_owned()),
    }
    if s.open_alarms > 0 {
        out.push(format!("{} alarm(s) not acknowledged", s.open_alarms));
    }
    if !s.escort_present {
        out.push("Escort not present".to_owned());
    }
    out
}

/// How monitors name vital signs (from `knowledge/monitor-codes.toml`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MonitorCodes {
    /// (MDC numeric code, REFID, vital sign).
    pub codes: Vec<(String, String, Vital)>,
    /// Values that mean "no value".
    pub no_value: Vec<String>,
}

impl MonitorCodes {
    /// The vital sign an HL7 OBX-3 observation id (`code^REFID^MDC`) names: by the numeric code
    /// first (trusted over the name), then by the REFID; `None` for codes Ketacare does not use.
    pub fn vital_for(&self, observation_id: &str) -> Option<Vital> {
        let mut parts = observation_id.split('^').map(str::trim);
        let code = parts.next().unwrap_or("");
        let refid = parts.next().unwrap_or("");
        let system = parts.next().unwrap_or("");
        if !system.is_empty() && !system.eq_ignore_ascii_case("MDC") {
            return None;
        }
        self.codes
            .iter()
            .find(|(c, _, _)| c == code)
            .or_else(|| self.codes.iter().find(|(_, r, _)| !refid.is_empty() && r.eq_ignore_ascii_case(refid)))
            .map(|(_, _, v)| *v)
    }

    /// The value of an OBX-5: `Ok(None)` for a "no value" marker, an error naming the accepted
    /// form for anything else that is not a decimal number.
    pub fn value(&self, raw: &str) -> Result<Option<Decimal>, String> {
        let t = raw.trim();
        if self.no_value.iter().any(|m| m == t) {
            return Ok(None);
        }
        t.parse::<Decimal>().map(Some).map_err(|_| format!("value {t:?} is not a number (accepted: a decimal such as 128 or 97.5)"))
    }
}

/// The kinds of adverse event recorded at a session (the effects reported with ketamine at
/// sub-anaesthetic doses); anything else is `other` with a description.
pub const ADVERSE_EVENT_KINDS: [(&str, &str); 12] = [
    ("dissociation", "Dissociation"),
    ("hallucinations", "Hallucinations"),
    ("nausea", "Nausea"),
    ("vomiting", "Vomiting"),
    ("dizziness", "Dizziness"),
    ("headache", "Headache"),
    ("blurred_vision", "Blurred vision"),
    ("hypertension", "Hypertension"),
    ("tachycardia", "Tachycardia"),
    ("raised_temperature", "Raised temperature"),
    ("anxiety", "Anxiety"),
    ("other", "Other (describe)"),
];

/// What was done about an adverse event.
pub const ADVERSE_EVENT_ACTIONS: [&str; 5] = ["none", "dose_paused", "dose_stopped", "treated", "referred"];

/// How an adverse event ended.
pub const ADVERSE_EVENT_OUTCOMES: [&str; 4] = ["resolved", "resolving", "not_resolved", "unknown"];

/// An adverse event at a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdverseEvent {
    /// Kind code (`ADVERSE_EVENT_KINDS`).
    pub kind: String,
    /// Description (required for `other`).
    pub description: Option<String>,
    /// Grade 1 (mild) to 5 (death), as in CTCAE.
    pub grade: u8,
    /// Serious (hospitalisation, life-threatening, disability, death).
    pub serious: bool,
    /// Action taken (`ADVERSE_EVENT_ACTIONS`).
    pub action: String,
    /// Outcome (`ADVERSE_EVENT_OUTCOMES`).
    pub outcome: String,
}

/// The raw form of an adverse event.
#[derive(Clone, Debug, Default)]
pub struct AdverseEventInput {
    /// Kind code.
    pub kind: String,
    /// Description.
    pub description: String,
    /// Grade as typed.
    pub grade: String,
    /// "yes"/"no" (or "true"/"false").
    pub serious: String,
    /// Action code.
    pub action: String,
    /// Outcome code.
    pub outcome: String,
}

impl AdverseEventInput {
    /// Validates every field at once; each error names the field and the accepted values.
    pub fn parse(&self) -> Result<AdverseEvent, crate::validation::FieldErrors> {
        let mut e = crate::validation::FieldErrors::new();
        let kind = self.kind.trim();
        if !ADVERSE_EVENT_KINDS.iter().any(|(k, _)| *k == kind) {
            e.add("kind", format!("choose one of: {}", ADVERSE_EVENT_KINDS.map(|(k, _)| k).join(", ")));
        }
        let description = Some(self.description.trim().to_owned()).filter(|d| !d.is_empty());
        if kind == "other" && description.is_none() {
            e.add("description", "describe the event (required for other)");
        }
        if description.as_ref().is_some_and(|d| d.chars().count() > 500) {
            e.add("description", "at most 500 characters");
        }
        let grade = self.grade.trim().parse::<u8>().ok().filter(|g| (1..=5).contains(g));
        if grade.is_none() {
            e.add("grade", "a whole number from 1 (mild) to 5 (death)");
        }
        let serious = match self.serious.trim() {
            "yes" | "true" => Some(true),
            "no" | "false" | "" => Some(false),
            _ => None,
        };
        if serious.is_none() {
            e.add("serious", "yes or no");
        }
        let action = self.action.trim();
        if !ADVERSE_EVENT_ACTIONS.contains(&action) {
            e.add("action", format!("choose one of: {}", ADVERSE_EVENT_ACTIONS.join(", ")));
        }
        let outcome = self.outcome.trim();
        if !ADVERSE_EVENT_OUTCOMES.contains(&outcome) {
            e.add("outcome", format!("choose one of: {}", ADVERSE_EVENT_OUTCOMES.join(", ")));
        }
        let grade = grade.unwrap_or(1);
        if grade >= 4 && serious == Some(false) {
            e.add("serious", "a grade 4 or 5 event is serious");
        }
        e.into_result()?;
        Ok(AdverseEvent {
            kind: kind.to_owned(),
            description,
            grade,
            serious: serious.unwrap_or(false),
            action: action.to_owned(),
            outcome: outcome.to_owned(),
        })
    }
}

/// One input to a session's alarm engine, in time order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionInput {
    /// A step of the state machine.
    Step(Step),
    /// A vital-sign reading.
    Vital(DateTime<Utc>, Vital, Decimal),
    /// A CADSS or MOAA/S total.
    Rating(DateTime<Utc>, String, Decimal),
    /// The clock ticks (for the stale-feed check) with the time of the monitor's last reading.
    Tick(DateTime<Utc>),
    /// Someone acknowledged the open alarm of a rule, at this time.
    Acknowledge(DateTime<Utc>, &'static str),
}

/// An acknowledged alarm whose value has not come back inside the limit: it stays quiet while
/// the value is no worse (same or lower level) and for at most the re-alarm period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Latch {
    /// Rule.
    pub rule: &'static str,
    /// Level of the acknowledged alarm.
    pub level: Level,
    /// When it was acknowledged.
    pub since: DateTime<Utc>,
}

/// The alarm engine of one session: the phase, the baseline, the monitor's last reading, the
/// open alarms (one per rule; a rule that is still open raises nothing new) and the
/// acknowledged ones, which stay latched until their value is back inside the limit (so a
/// continuous feed does not raise an acknowledged alarm again every few seconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlarmTracker {
    /// Phase now.
    pub phase: Phase,
    /// Pre-dose baseline systolic and diastolic (the last readings before the dose).
    pub baseline: (Option<u32>, Option<u32>),
    /// When a monitor was bound to the session (`None`: vitals by hand only).
    pub bound_at: Option<DateTime<Utc>>,
    /// The monitor's last reading.
    pub last_reading: Option<DateTime<Utc>>,
    /// The last reading of each vital sign.
    pub last_by_vital: Vec<(Vital, DateTime<Utc>)>,
    /// Open alarms with the time raised.
    pub open: Vec<(DateTime<Utc>, Alarm)>,
    /// Acknowledged rules whose condition has not yet cleared.
    pub latched: Vec<Latch>,
}

/// Every alarm rule the engine has, by code.
pub const ALARM_RULES: [&str; 17] = [
    "sbp_above",
    "sbp_rise",
    "dbp_above",
    "dbp_rise",
    "hr_above",
    "hr_below",
    "spo2_below",
    "rr_below",
    "rr_above",
    "cadss_above",
    "moaas_low",
    "stale_feed",
    "stale_systolic",
    "stale_diastolic",
    "stale_heart_rate",
    "stale_spo2",
    "stale_respiratory_rate",
];

/// The rule code for a stored rule name (`None`: not a rule of this engine).
pub fn rule_code(s: &str) -> Option<&'static str> {
    ALARM_RULES.into_iter().find(|r| *r == s)
}

/// The rules a reading of a vital sign (or a rating) decides.
fn rules_of(input: &SessionInput) -> &'static [&'static str] {
    match input {
        SessionInput::Vital(_, Vital::Systolic, _) => &["sbp_above", "sbp_rise", "stale_feed", "stale_systolic"],
        SessionInput::Vital(_, Vital::Diastolic, _) => &["dbp_above", "dbp_rise", "stale_feed", "stale_diastolic"],
        SessionInput::Vital(_, Vital::HeartRate, _) => &["hr_above", "hr_below", "stale_feed", "stale_heart_rate"],
        SessionInput::Vital(_, Vital::Spo2, _) => &["spo2_below", "stale_feed", "stale_spo2"],
        SessionInput::Vital(_, Vital::RespiratoryRate, _) => &["rr_above", "rr_below", "stale_feed", "stale_respiratory_rate"],
        SessionInput::Rating(_, i, _) if i == "cadss" => &["cadss_above"],
        SessionInput::Rating(_, i, _) if i == "moaas" => &["moaas_low"],
        _ => &[],
    }
}

impl AlarmTracker {
    /// A session just booked, with no monitor yet.
    pub fn new() -> Self {
        Self {
            phase: Phase::Scheduled,
            baseline: (None, None),
            bound_at: None,
            last_reading: None,
            last_by_vital: Vec::new(),
            open: Vec::new(),
            latched: Vec::new(),
        }
    }

    /// Binds a monitor at `at`: from then on a silent monitor raises the stale-feed alarm.
    pub fn bind(&mut self, at: DateTime<Utc>) {
        self.bound_at = Some(at);
    }

    /// Feeds one input; returns the alarms newly raised (or an error for a refused step or an
    /// implausible reading, which changes nothing).
    pub fn feed(&mut self, rules: &SessionRules, input: &SessionInput) -> Result<Vec<Alarm>, String> {
        let found = match input {
            SessionInput::Step(s) => {
                self.phase = self.phase.next(s)?;
                return Ok(Vec::new());
            }
            SessionInput::Vital(at, v, x) => {
                plausible(rules, *v, *x)?;
                self.last_reading = Some(*at);
                self.last_by_vital.retain(|(x, _)| x != v);
                self.last_by_vital.push((*v, *at));
                if matches!(self.phase, Phase::CheckedIn | Phase::PreDoseChecks) {
                    let whole = u32::try_from(x.round().mantissa()).ok();
                    match v {
                        Vital::Systolic => self.baseline.0 = whole,
                        Vital::Diastolic => self.baseline.1 = whole,
                        _ => {}
                    }
                }
                evaluate_vital(rules, self.phase, *v, *x, self.baseline)
            }
            SessionInput::Rating(_, inst, total) => evaluate_rating(rules, inst, *total).into_iter().collect(),
            SessionInput::Tick(now) => match stale_feed(rules, self.phase, self.bound_at, self.last_reading, *now) {
                // The whole feed is silent: one alarm, not one per signal.
                Some(a) => vec![a],
                None if self.bound_at.is_some() => {
                    self.last_by_vital.iter().filter_map(|(v, last)| stale_vital(rules, self.phase, *v, *last, *now)).collect()
                }
                None => Vec::new(),
            },
            SessionInput::Acknowledge(at, rule) => {
                let Some(i) = self.open.iter().position(|(_, a)| a.rule == *rule) else {
                    return Err(format!("no open alarm {rule} to acknowledge"));
                };
                let (_, a) = self.open.remove(i);
                self.latched.push(Latch { rule, level: a.level, since: *at });
                return Ok(Vec::new());
            }
        };
        // A reading that no longer meets a latched rule clears the latch.
        let decided = rules_of(input);
        self.latched.retain(|l| !decided.contains(&l.rule) || found.iter().any(|a| a.rule == l.rule));
        let at = match input {
            SessionInput::Vital(at, ..) | SessionInput::Rating(at, ..) | SessionInput::Tick(at) => *at,
            _ => return Ok(Vec::new()),
        };
        // A latch keeps an acknowledged alarm quiet only while the value is no worse and for the
        // re-alarm period: worse (a higher level) or still outside the limit after it, the
        // alarm is raised again.
        let pause = Duration::try_seconds(whole_seconds(&rules.realarm_seconds)).unwrap_or(Duration::MAX);
        let quiet = |a: &Alarm, l: &Latch| l.rule == a.rule && a.level <= l.level && at - l.since < pause;
        let new: Vec<Alarm> = found
            .into_iter()
            .filter(|a| !self.open.iter().any(|(_, o)| o.rule == a.rule) && !self.latched.iter().any(|l| quiet(a, l)))
            .collect();
        self.latched.retain(|l| !new.iter().any(|a| a.rule == l.rule));
        self.open.extend(new.iter().cloned().map(|a| (at, a)));
        Ok(new)
    }
}

impl Default for AlarmTracker {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::TimeZone;

    fn r(v: i64) -> Rule {
        Rule { value: Decimal::from(v), source: "test source".into() }
    }

    pub(crate) fn rules() -> SessionRules {
        SessionRules {
            version: "t".into(),
            gate_sbp_above: r(140),
            gate_dbp_above: r(90),
            gate_hard_sbp_above: r(180),
            gate_hard_dbp_above: r(100),
            sbp_above: r(180),
            dbp_above: r(110),
            sbp_rise: r(40),
            dbp_rise: r(25),
            hr_above: r(120),
            hr_below: r(50),
            spo2_below: r(92),
            rr_below: r(8),
            rr_above: r(24),
            cadss_above: r(40),
            moaas_at_or_below: r(2),
            moaas_critical_at_or_below: r(1),
            stale_seconds: r(60),
            stale_bp_seconds: r(900),
            escalate_seconds: r(120),
            plausible: vec![
                (Vital::Systolic, Decimal::from(40), Decimal::from(300)),
                (Vital::Diastolic, Decimal::from(20), Decimal::from(200)),
                (Vital::Spo2, Decimal::from(50), Decimal::from(100)),
            ],
            discharge_minutes: r(120),
            discharge_sbp_within: r(20),
            discharge_moaas: r(5),
            prompt_vitals_minutes: r(15),
            realarm_seconds: r(300),
            prompt_moaas_minutes: r(15),
            prompt_cadss_minutes: r(40),
        }
    }

    #[test]
    fn the_happy_path_and_out_of_order_steps() {
        let mut p = Phase::Scheduled;
        for s in [
            Step::CheckIn,
            Step::StartChecks,
            Step::StartDose,
            Step::Pause,
            Step::Resume,
            Step::DoseGiven,
            Step::StartRecovery,
            Step::Discharge,
        ] {
            p = p.next(&s).unwrap();
        }
        assert_eq!(p, Phase::Discharged);
        assert!(Phase::Discharged.next(&Step::Stop).unwrap_err().contains("closed"));
        assert!(Phase::Scheduled.next(&Step::StartDose).unwrap_err().contains("cannot start the dose while the session is scheduled"));
        assert!(Phase::CheckedIn.next(&Step::Discharge).is_err());
        assert!(Phase::Dosing.next(&Step::Cancel).unwrap_err().contains("stop early instead"));
        assert_eq!(Phase::PreDoseChecks.next(&Step::Cancel), Ok(Phase::Cancelled));
        assert_eq!(Phase::Paused(ActivePhase::Monitoring).next(&Step::Resume), Ok(Phase::Monitoring));
        assert_eq!(Phase::Paused(ActivePhase::Dosing).next(&Step::Stop), Ok(Phase::StoppedEarly));
        assert!(Phase::Recovery.next(&Step::Pause).is_err());
        assert_eq!(Phase::Recovery.next(&Step::BackToMonitoring), Ok(Phase::Monitoring), "a patient who gets worse");
        assert!(Phase::Monitoring.next(&Step::BackToMonitoring).is_err());
        assert!(Phase::Recovery.next(&Step::Stop).unwrap_err().contains("in recovery the dose is over"));
        // Stopped early still recovers and is discharged: the patient has had drug.
        let mut p = Phase::Dosing.next(&Step::Stop).unwrap();
        assert!(!p.is_final() && p.dose_started());
        p = p.next(&Step::StartRecovery).unwrap().next(&Step::Discharge).unwrap();
        assert_eq!(p, Phase::Discharged);
        for p in ALL {
            assert_eq!(Phase::parse(p.code()), Ok(p));
        }
    }

    #[test]
    fn every_step_from_every_phase_is_either_a_listed_transition_or_refused_with_a_reason() {
        let steps = [
            Step::BackToMonitoring,
            Step::CheckIn,
            Step::StartChecks,
            Step::StartDose,
            Step::DoseGiven,
            Step::StartRecovery,
            Step::Discharge,
            Step::Pause,
            Step::Resume,
            Step::Stop,
            Step::Cancel,
        ];
        let mut allowed = 0;
        for p in ALL {
            for s in &steps {
                match p.next(s) {
                    Ok(n) => {
                        allowed += 1;
                        assert_ne!(n, p, "{p:?} {s:?} changes the phase");
                        assert!(!p.is_final(), "nothing leaves a final phase");
                    }
                    Err(e) => assert!(e.starts_with("cannot") || e.contains("closed"), "{e}"),
                }
            }
        }
        assert_eq!(allowed, 19);
    }

    #[test]
    fn the_pre_dose_gate() {
        let rules = rules();
        let mut c = PreDoseChecks::default();
        assert_eq!(unmet_checks(&rules, &c).len(), 6);
        c = PreDoseChecks {
            screening_allows: Some(true),
            consent_on_file: Some(true),
            weight_today: Some(true),
            baseline_bp: Some((140, 90)),
            gate_decision_by: None,
            pregnancy_test_ok: None,
            pregnancy_test_required: false,
            escort_confirmed: Some(true),
            dose_double_checked: Some(true),
        };
        assert!(unmet_checks(&rules, &c).is_empty(), "140/90 is at the gate, not above it");
        c.baseline_bp = Some((141, 80));
        assert!(unmet_checks(&rules, &c)[0].contains("a prescriber must decide"));
        c.gate_decision_by = Some("prescriber".into());
        assert!(unmet_checks(&rules, &c).is_empty());
        c.baseline_bp = Some((130, 91));
        c.gate_decision_by = None;
        assert_eq!(unmet_checks(&rules, &c).len(), 1);
        // Above the hard ceiling nobody may go ahead; an implausible or unnamed decision does not count.
        c.baseline_bp = Some((181, 80));
        c.gate_decision_by = Some("prescriber".into());
        assert!(unmet_checks(&rules, &c)[0].contains("no dose today, for anyone"));
        c.baseline_bp = Some((150, 101));
        assert!(unmet_checks(&rules, &c)[0].contains("no dose today"));
        c.baseline_bp = Some((0, 0));
        assert!(unmet_checks(&rules, &c)[0].contains("implausible"));
        c.baseline_bp = Some((150, 80));
        c.gate_decision_by = Some("  ".into());
        assert!(unmet_checks(&rules, &c)[0].contains("a prescriber must decide"));
        c.gate_decision_by = None;
        c.baseline_bp = Some((130, 80));
        c.pregnancy_test_required = true;
        assert_eq!(unmet_checks(&rules, &c), vec!["Pregnancy test required and not recorded".to_owned()]);
        c.pregnancy_test_ok = Some(true);
        c.screening_allows = Some(false);
        assert!(unmet_checks(&rules, &c)[0].contains("absolute contraindication"));
    }

    #[test]
    fn alarm_rules_at_their_boundaries() {
        let rules = rules();
        let d = Decimal::from;
        let m = Phase::Monitoring;
        let rules_of =
            |v: Vital, x: i64, b: Option<u32>| evaluate_vital(&rules, m, v, d(x), (b, b)).iter().map(|a| a.rule).collect::<Vec<_>>();
        assert!(rules_of(Vital::Systolic, 180, None).is_empty());
        assert_eq!(rules_of(Vital::Systolic, 181, None), vec!["sbp_above"]);
        assert_eq!(rules_of(Vital::Diastolic, 110, None), Vec::<&str>::new());
        assert!(rules_of(Vital::Diastolic, 104, Some(80)).is_empty());
        assert_eq!(rules_of(Vital::Diastolic, 105, Some(80)), vec!["dbp_rise"]);
        assert_eq!(rules_of(Vital::Diastolic, 111, None), vec!["dbp_above"]);
        assert!(rules_of(Vital::Systolic, 159, Some(120)).is_empty());
        assert_eq!(rules_of(Vital::Systolic, 160, Some(120)), vec!["sbp_rise"]);
        assert_eq!(rules_of(Vital::Systolic, 185, Some(140)), vec!["sbp_above", "sbp_rise"]);
        assert!(rules_of(Vital::HeartRate, 120, None).is_empty());
        assert_eq!(rules_of(Vital::HeartRate, 121, None), vec!["hr_above"]);
        assert!(rules_of(Vital::HeartRate, 50, None).is_empty());
        assert_eq!(rules_of(Vital::HeartRate, 49, None), vec!["hr_below"]);
        assert!(rules_of(Vital::Spo2, 92, None).is_empty());
        assert_eq!(rules_of(Vital::Spo2, 91, None), vec!["spo2_below"]);
        assert_eq!(rules_of(Vital::RespiratoryRate, 7, None), vec!["rr_below"]);
        assert_eq!(rules_of(Vital::RespiratoryRate, 25, None), vec!["rr_above"]);
        assert!(rules_of(Vital::RespiratoryRate, 8, None).is_empty() && rules_of(Vital::RespiratoryRate, 24, None).is_empty());
        // Before the dose a high reading is the gate's business, not an alarm.
        assert!(evaluate_vital(&rules, Phase::PreDoseChecks, Vital::Systolic, d(200), (None, None)).is_empty());
        assert_eq!(evaluate_vital(&rules, Phase::Recovery, Vital::Systolic, d(200), (None, None)).len(), 1);
        assert_eq!(evaluate_rating(&rules, "cadss", d(41)).unwrap().rule, "cadss_above");
        assert!(evaluate_rating(&rules, "cadss", d(40)).is_none());
        assert_eq!(evaluate_rating(&rules, "moaas", d(0)).unwrap().level, Level::Critical);
        assert_eq!(evaluate_rating(&rules, "moaas", d(1)).unwrap().level, Level::Critical);
        assert_eq!(evaluate_rating(&rules, "moaas", d(2)).unwrap().level, Level::Warning);
        assert!(evaluate_rating(&rules, "moaas", d(3)).is_none());
    }

    #[test]
    fn implausible_values_are_not_readings() {
        let rules = rules();
        assert!(plausible(&rules, Vital::Systolic, Decimal::from(300)).is_ok());
        let e = plausible(&rules, Vital::Systolic, Decimal::from(301)).unwrap_err();
        assert!(e.contains("accepted 40-300"), "{e}");
        assert!(plausible(&rules, Vital::Spo2, Decimal::from(101)).is_err());
        assert!(plausible(&rules, Vital::HeartRate, Decimal::from(999)).is_ok(), "no range configured: accepted");
    }

    #[test]
    fn a_silent_monitor_and_escalation() {
        let rules = rules();
        let t0 = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
        let s = |secs| t0 + Duration::seconds(secs);
        let b = Some(t0);
        assert!(stale_feed(&rules, Phase::Monitoring, b, Some(s(10)), s(69)).is_none());
        let a = stale_feed(&rules, Phase::Monitoring, b, Some(s(10)), s(70)).unwrap();
        assert_eq!((a.rule, a.level), ("stale_feed", Level::Critical));
        assert!(
            stale_feed(&rules, Phase::CheckedIn, b, None, s(60)).is_some_and(|a| a.level == Level::Warning),
            "never sent since binding"
        );
        assert!(stale_feed(&rules, Phase::Monitoring, Some(s(100)), Some(s(10)), s(120)).is_none(), "counted from a later binding");
        assert!(stale_feed(&rules, Phase::Monitoring, None, None, s(6000)).is_none(), "no monitor: vitals by hand");
        assert!(stale_feed(&rules, Phase::Discharged, b, None, s(600)).is_none());
        let mut huge = rules.clone();
        huge.stale_seconds.value = Decimal::MAX;
        assert!(stale_feed(&huge, Phase::Monitoring, b, None, s(86_399)).is_none(), "no overflow; capped at a day");
        // One signal stops while the rest goes on; a BP cuff has a longer limit.
        let st = stale_vital(&rules, Phase::Monitoring, Vital::Spo2, s(0), s(60)).unwrap();
        assert_eq!((st.rule, st.level), ("stale_spo2", Level::Critical));
        assert!(stale_vital(&rules, Phase::Monitoring, Vital::Systolic, s(0), s(899)).is_none());
        assert!(stale_vital(&rules, Phase::Monitoring, Vital::Systolic, s(0), s(900)).is_some());
        let mut t = AlarmTracker::new();
        t.bind(t0);
        for step in [Step::CheckIn, Step::StartChecks, Step::StartDose] {
            t.feed(&rules, &SessionInput::Step(step)).unwrap();
        }
        t.feed(&rules, &SessionInput::Vital(s(1), Vital::Spo2, Decimal::from(98))).unwrap();
        t.feed(&rules, &SessionInput::Vital(s(1), Vital::HeartRate, Decimal::from(80))).unwrap();
        t.feed(&rules, &SessionInput::Vital(s(50), Vital::HeartRate, Decimal::from(80))).unwrap();
        let raised = t.feed(&rules, &SessionInput::Tick(s(61))).unwrap();
        assert_eq!(raised.iter().map(|a| a.rule).collect::<Vec<_>>(), vec!["stale_spo2"], "the heart rate still comes; SpO2 stopped");
        assert_eq!(level_now(&rules, Level::Advisory, t0, s(119)), Level::Advisory);
        assert_eq!(level_now(&rules, Level::Advisory, t0, s(120)), Level::Warning);
        assert_eq!(level_now(&rules, Level::Advisory, t0, s(10_000)), Level::Critical);
    }

    #[test]
    fn discharge_criteria() {
        let rules = rules();
        let mut s = DischargeState {
            minutes_since_dose: 120,
            baseline_sbp: Some(120),
            latest_sbp: Some(140),
            latest_moaas: Some(5),
            open_alarms: 0,
            escort_present: true,
        };
        assert!(unmet_discharge(&rules, &s).is_empty());
        s.minutes_since_dose = 119;
        s.latest_sbp = Some(141);
        s.latest_moaas = Some(4);
        s.open_alarms = 1;
        s.escort_present = false;
        assert_eq!(unmet_discharge(&rules, &s).len(), 5, "{:?}", unmet_discharge(&rules, &s));
    }

    #[test]
    fn a_replayed_session_raises_exactly_the_expected_alarms() {
        let rules = rules();
        let t0 = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
        let at = |m: i64| t0 + Duration::minutes(m);
        let d = Decimal::from;
        use SessionInput as I;
        let script = vec![
            I::Step(Step::CheckIn),
            I::Vital(at(1), Vital::Systolic, d(150)),
            I::Vital(at(2), Vital::Systolic, d(128)),
            I::Step(Step::StartChecks),
            I::Step(Step::StartDose),
            I::Vital(at(10), Vital::Systolic, d(150)),
            I::Vital(at(20), Vital::Systolic, d(170)),
            I::Vital(at(21), Vital::Systolic, d(175)),
            I::Vital(at(22), Vital::Systolic, d(400)),
            I::Vital(at(30), Vital::Diastolic, d(112)),
            I::Acknowledge(at(30), "sbp_rise"),
            I::Vital(at(31), Vital::Systolic, d(182)),
            I::Vital(at(31), Vital::Systolic, d(130)),
            I::Vital(at(31), Vital::Systolic, d(175)),
            I::Step(Step::DoseGiven),
            I::Rating(at(45), "moaas".into(), d(3)),
            I::Tick(at(32)),
            I::Tick(at(33)),
        ];
        let mut t = AlarmTracker::new();
        t.bind(t0);
        let mut raised = Vec::new();
        let mut refused = Vec::new();
        for i in &script {
            match t.feed(&rules, i) {
                Ok(a) => raised.extend(a.into_iter().map(|a| a.rule)),
                Err(e) => refused.push(e),
            }
        }
        // 150 before the dose is the gate's business; the baseline is the last pre-dose 128.
        // 170 rises 42: sbp_rise once (175 adds nothing while it is open); 400 is an artefact;
        // 112 diastolic; after the acknowledgement 182 raises the ceiling but not the latched
        // rise; 130 clears the latch, so 175 raises the rise again;
        // the monitor last sent at 31 min, so it is stale at 32 min only after 60 s.
        assert_eq!(raised, vec!["sbp_rise", "dbp_above", "sbp_above", "sbp_rise", "stale_feed"]);
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(refused[0].contains("implausible"));
        assert_eq!(t.baseline, (Some(128), None));
        assert!(t.feed(&rules, &I::Acknowledge(at(33), "hr_above")).unwrap_err().contains("no open alarm"));
        assert!(t.feed(&rules, &I::Step(Step::Discharge)).is_err(), "monitoring cannot jump to discharge");
    }

    #[test]
    fn an_acknowledged_alarm_alarms_again_when_worse_or_after_the_pause() {
        let rules = rules();
        let t0 = Utc.with_ymd_and_hms(2026, 11, 30, 9, 0, 0).unwrap();
        let at = |s: i64| t0 + Duration::seconds(s);
        let mut t = AlarmTracker::new();
        for s in [Step::CheckIn, Step::StartChecks, Step::StartDose] {
            t.feed(&rules, &SessionInput::Step(s)).unwrap();
        }
        let feed =
            |t: &mut AlarmTracker, i: SessionInput| t.feed(&rules, &i).unwrap().into_iter().map(|a| (a.rule, a.level)).collect::<Vec<_>>();
        assert_eq!(feed(&mut t, SessionInput::Rating(at(0), "moaas".into(), Decimal::from(2))), vec![("moaas_low", Level::Warning)]);
        t.feed(&rules, &SessionInput::Acknowledge(at(10), "moaas_low")).unwrap();
        assert!(feed(&mut t, SessionInput::Rating(at(20), "moaas".into(), Decimal::from(2))).is_empty(), "no worse: quiet");
        assert_eq!(
            feed(&mut t, SessionInput::Rating(at(30), "moaas".into(), Decimal::ZERO)),
            vec![("moaas_low", Level::Critical)],
            "MOAA/S 0 after an acknowledged 2 is a new, critical alarm"
        );
        // SpO2 below the limit, acknowledged: quiet for the pause, then again if still low.
        assert_eq!(feed(&mut t, SessionInput::Vital(at(40), Vital::Spo2, Decimal::from(89))), vec![("spo2_below", Level::Critical)]);
        t.feed(&rules, &SessionInput::Acknowledge(at(50), "spo2_below")).unwrap();
        assert!(feed(&mut t, SessionInput::Vital(at(50 + 299), Vital::Spo2, Decimal::from(88))).is_empty());
        assert_eq!(feed(&mut t, SessionInput::Vital(at(50 + 300), Vital::Spo2, Decimal::from(88))), vec![("spo2_below", Level::Critical)]);
        // Back inside the limit clears the latch for good.
        t.feed(&rules, &SessionInput::Acknowledge(at(400), "spo2_below")).unwrap();
        assert!(feed(&mut t, SessionInput::Vital(at(410), Vital::Spo2, Decimal::from(97))).is_empty());
        assert!(t.latched.iter().all(|l| l.rule != "spo2_below"));
    }

    #[test]
    fn monitor_codes_trust_the_number_and_skip_no_value_markers() {
        let m = MonitorCodes {
            codes: vec![
                ("150021".into(), "MDC_PRESS_BLD_NONINV_SYS".into(), Vital::Systolic),
                ("150017".into(), "MDC_PRESS_BLD_SYS".into(), Vital::Systolic),
                ("150456".into(), "MDC_PULS_OXIM_SAT_O2".into(), Vital::Spo2),
            ],
            no_value: vec!["-100".into(), "".into()],
        };
        assert_eq!(m.vital_for("150017^MDC_PRESS_BLD_NONINV_SYS^MDC"), Some(Vital::Systolic));
        assert_eq!(m.vital_for("150456^WRONG_NAME^MDC"), Some(Vital::Spo2), "the number wins over the name");
        assert_eq!(m.vital_for("999^MDC_PULS_OXIM_SAT_O2^MDC"), Some(Vital::Spo2), "a known name with an unknown number");
        assert_eq!(m.vital_for("393216^NIBP_SYS^EHC"), None, "private codes are not guessed");
        assert_eq!(m.vital_for("150456^SAT^EHC"), None, "a private code with an MDC number is not MDC");
        assert_eq!(m.value("-100"), Ok(None));
        assert_eq!(m.value(" 97.5 "), Ok(Some(Decimal::new(975, 1))));
        assert!(m.value("12O").unwrap_err().contains("accepted: a decimal"));
        assert_eq!(Vital::parse("spo2"), Ok(Vital::Spo2));
        assert!(Vital::parse("bp").unwrap_err().contains("systolic, diastolic"));
    }

    #[test]
    fn adverse_events_name_every_bad_field() {
        let ok = AdverseEventInput {
            kind: "nausea".into(),
            description: String::new(),
            grade: "1".into(),
            serious: "no".into(),
            action: "none".into(),
            outcome: "resolved".into(),
        };
        assert_eq!(ok.parse().unwrap().grade, 1);
        let bad = AdverseEventInput {
            kind: "other".into(),
            grade: "7".into(),
            serious: "maybe".into(),
            action: "x".into(),
            ..Default::default()
        };
        let e = bad.parse().unwrap_err();
        for f in ["description", "grade", "serious", "action", "outcome"] {
            assert!(e.for_field(f).is_some(), "{f}");
        }
        assert!(e.for_field("grade").unwrap().contains("1 (mild) to 5"));
        let grave = AdverseEventInput { grade: "4".into(), ..ok };
        assert!(grave.parse().unwrap_err().for_field("serious").unwrap().contains("serious"));
    }
}
