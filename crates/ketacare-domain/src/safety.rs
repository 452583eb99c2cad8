//! Long-term safety of repeated ketamine: cumulative exposure against the drug library's caps,
//! tolerance and misuse signals, bladder (lower urinary tract) and liver surveillance, due dates
//! of labs, questionnaires and the periodic benefit-risk review, and the records they rest on
//! (lab results with the laboratory's upper limit of normal, safety observations, signed reviews,
//! the care plan).
//!
//! Every threshold is a [`Rule`] from `knowledge/safety.toml` with its source; most are clinic
//! policy. The rules say what they saw ("data") so the prescriber can check the evidence.
//!
//! Window convention (tested at the boundary): a rolling window of N days at time `now` holds
//! the doses given in `(now - N days, now]`; a dose given exactly N days before `now` is out.

use crate::titration::{GivenSession, Rule};
use crate::validation::{bounded_text, optional_text, FieldErrors};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use rust_decimal::Decimal;
use std::str::FromStr;

// ------------------------------------------------------------------ records

/// A liver test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LabTest {
    /// Alanine aminotransferase.
    Alt,
    /// Aspartate aminotransferase.
    Ast,
    /// Alkaline phosphatase.
    Alp,
    /// Gamma-glutamyl transferase.
    Ggt,
    /// Total bilirubin.
    Bilirubin,
}

impl LabTest {
    /// All tests, in display order.
    pub const ALL: [LabTest; 5] = [LabTest::Alt, LabTest::Ast, LabTest::Alp, LabTest::Ggt, LabTest::Bilirubin];
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            LabTest::Alt => "alt",
            LabTest::Ast => "ast",
            LabTest::Alp => "alp",
            LabTest::Ggt => "ggt",
            LabTest::Bilirubin => "bilirubin",
        }
    }
    /// Parses a code.
    pub fn parse(s: &str) -> Option<LabTest> {
        LabTest::ALL.into_iter().find(|t| t.code() == s.trim().to_ascii_lowercase())
    }
    /// Short name.
    pub fn label(self) -> &'static str {
        match self {
            LabTest::Alt => "ALT",
            LabTest::Ast => "AST",
            LabTest::Alp => "ALP",
            LabTest::Ggt => "GGT",
            LabTest::Bilirubin => "Bilirubin",
        }
    }
    /// LOINC code (serum or plasma, mass or catalytic concentration).
    pub fn loinc(self) -> &'static str {
        match self {
            LabTest::Alt => "1742-6",
            LabTest::Ast => "1920-8",
            LabTest::Alp => "6768-6",
            LabTest::Ggt => "2324-2",
            LabTest::Bilirubin => "1975-2",
        }
    }
    /// UCUM units accepted.
    pub fn units(self) -> &'static [&'static str] {
        match self {
            LabTest::Bilirubin => &["umol/L", "mg/dL"],
            _ => &["U/L"],
        }
    }
}

/// A lab result with the laboratory's own upper limit of normal (ULN).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabResult {
    /// Test.
    pub test: LabTest,
    /// Value.
    pub value: Decimal,
    /// UCUM unit (the ULN is in the same unit).
    pub unit: String,
    /// Upper limit of normal of the reporting laboratory.
    pub uln: Decimal,
    /// When sampled (UTC).
    pub sampled_at: DateTime<Utc>,
    /// Reporting laboratory, if given.
    pub lab: Option<String>,
}

impl LabResult {
    /// The value as a multiple of the ULN.
    pub fn multiple(&self) -> Decimal {
        if self.uln > Decimal::ZERO {
            (self.value / self.uln).round_dp(2)
        } else {
            Decimal::ZERO
        }
    }
}

/// A lab result as typed.
#[derive(Clone, Debug, Default)]
pub struct LabInput {
    /// alt, ast, alp, ggt or bilirubin.
    pub test: String,
    /// Value.
    pub value: String,
    /// UCUM unit (U/L; bilirubin umol/L or mg/dL).
    pub unit: String,
    /// The laboratory's upper limit of normal, same unit.
    pub uln: String,
    /// Laboratory name (optional).
    pub lab: String,
}

fn decimal(errors: &mut FieldErrors, field: &str, raw: &str, what: &str, max: Decimal) -> Option<Decimal> {
    match Decimal::from_str(raw.trim()) {
        Ok(d) if d >= Decimal::ZERO && d <= max => Some(d),
        Ok(_) => {
            errors.add(field, format!("must be {what} from 0 to {max}"));
            None
        }
        Err(_) => {
            errors.add(field, format!("{:?} is not a number; give {what}", raw.trim()));
            None
        }
    }
}

impl LabInput {
    /// Checks the input; `sampled_at` is given by the caller (parsed from the form, never in the future).
    pub fn validate(&self, sampled_at: DateTime<Utc>) -> Result<LabResult, FieldErrors> {
        let mut e = FieldErrors::new();
        let test = LabTest::parse(&self.test);
        if test.is_none() {
            e.add("test", "must be one of alt, ast, alp, ggt, bilirubin");
        }
        let unit = self.unit.trim().to_owned();
        if let Some(t) = test {
            if !t.units().contains(&unit.as_str()) {
                e.add("unit", format!("must be {} for {}", t.units().join(" or "), t.label()));
            }
        }
        let cap = Decimal::from(100_000);
        let value = decimal(&mut e, "value", &self.value, "the result as a number", cap);
        let uln = decimal(&mut e, "uln", &self.uln, "the laboratory's upper limit of normal", cap);
        if uln == Some(Decimal::ZERO) {
            e.add("uln", "must be above 0 (the laboratory's upper limit of normal, from the report)");
        }
        let lab = e.check("lab", optional_text(&self.lab, 120));
        e.into_result()?;
        Ok(LabResult {
            test: test.expect("checked"),
            value: value.expect("checked"),
            unit,
            uln: uln.expect("checked"),
            sampled_at,
            lab: lab.flatten(),
        })
    }
}

/// What a safety observation records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SafetyEventKind {
    /// The patient asked for a session earlier than planned.
    EarlySessionRequest,
    /// The patient asked for a higher dose.
    DoseIncreaseRequest,
    /// Craving for ketamine, rated 0-10.
    Craving,
    /// Non-prescribed substance use reported.
    SubstanceUse,
    /// Urine toxicology result.
    UrineToxicology,
    /// Blood in the urine (seen or on dipstick).
    Haematuria,
}

impl SafetyEventKind {
    /// All kinds.
    pub const ALL: [SafetyEventKind; 6] = [
        SafetyEventKind::EarlySessionRequest,
        SafetyEventKind::DoseIncreaseRequest,
        SafetyEventKind::Craving,
        SafetyEventKind::SubstanceUse,
        SafetyEventKind::UrineToxicology,
        SafetyEventKind::Haematuria,
    ];
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            SafetyEventKind::EarlySessionRequest => "early_session_request",
            SafetyEventKind::DoseIncreaseRequest => "dose_increase_request",
            SafetyEventKind::Craving => "craving",
            SafetyEventKind::SubstanceUse => "substance_use",
            SafetyEventKind::UrineToxicology => "urine_toxicology",
            SafetyEventKind::Haematuria => "haematuria",
        }
    }
    /// Parses a code.
    pub fn parse(s: &str) -> Option<SafetyEventKind> {
        SafetyEventKind::ALL.into_iter().find(|k| k.code() == s.trim())
    }
    /// Words for people.
    pub fn label(self) -> &'static str {
        match self {
            SafetyEventKind::EarlySessionRequest => "Asked for an earlier session",
            SafetyEventKind::DoseIncreaseRequest => "Asked for a higher dose",
            SafetyEventKind::Craving => "Craving (0-10)",
            SafetyEventKind::SubstanceUse => "Substance use reported",
            SafetyEventKind::UrineToxicology => "Urine toxicology",
            SafetyEventKind::Haematuria => "Haematuria",
        }
    }
}

/// A safety observation: requests, craving, substance use, toxicology, haematuria.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SafetyEvent {
    /// What.
    pub kind: SafetyEventKind,
    /// When (UTC).
    pub at: DateTime<Utc>,
    /// Craving rating 0-10.
    pub score: Option<u8>,
    /// Toxicology or haematuria: positive?
    pub positive: Option<bool>,
    /// Substances (toxicology, substance use).
    pub substances: Option<String>,
    /// Note.
    pub note: Option<String>,
}

/// A safety observation as typed.
#[derive(Clone, Debug, Default)]
pub struct SafetyEventInput {
    /// Kind code.
    pub kind: String,
    /// Craving 0-10.
    pub score: String,
    /// "positive" / "negative" (toxicology, haematuria).
    pub result: String,
    /// Substances.
    pub substances: String,
    /// Note.
    pub note: String,
}

impl SafetyEventInput {
    /// Checks the input.
    pub fn validate(&self, at: DateTime<Utc>) -> Result<SafetyEvent, FieldErrors> {
        let mut e = FieldErrors::new();
        let kind = SafetyEventKind::parse(&self.kind);
        if kind.is_none() {
            e.add("kind", format!("must be one of {}", SafetyEventKind::ALL.map(|k| k.code()).join(", ")));
        }
        let score = match (kind, self.score.trim()) {
            (Some(SafetyEventKind::Craving), s) => match s.parse::<u8>() {
                Ok(v) if v <= 10 => Some(v),
                _ => {
                    e.add("score", "must be the craving rating, a whole number from 0 (none) to 10 (worst)");
                    None
                }
            },
            (_, "") => None,
            _ => {
                e.add("score", "is only for a craving rating");
                None
            }
        };
        let positive = match (kind, self.result.trim().to_ascii_lowercase().as_str()) {
            (Some(SafetyEventKind::UrineToxicology | SafetyEventKind::Haematuria), "positive") => Some(true),
            (Some(SafetyEventKind::UrineToxicology | SafetyEventKind::Haematuria), "negative") => Some(false),
            (Some(SafetyEventKind::UrineToxicology | SafetyEventKind::Haematuria), _) => {
                e.add("result", "must be positive or negative");
                None
            }
            (_, "") => None,
            _ => {
                e.add("result", "is only for urine toxicology and haematuria");
                None
            }
        };
        let substances = e.check("substances", optional_text(&self.substances, 200)).flatten();
        if kind == Some(SafetyEventKind::UrineToxicology) && positive == Some(true) && substances.is_none() {
            e.add("substances", "name what was found (a positive toxicology needs the substances)");
        }
        let note = e.check("note", optional_text(&self.note, 1000)).flatten();
        e.into_result()?;
        Ok(SafetyEvent { kind: kind.expect("checked"), at, score, positive, substances, note })
    }
}

/// The prescriber's decision at a periodic benefit-risk review.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReviewDecision {
    /// Continue as planned.
    Continue,
    /// Change the dose, interval or route.
    Change,
    /// Taper off.
    Taper,
    /// Stop ketamine.
    Stop,
}

impl ReviewDecision {
    /// All decisions.
    pub const ALL: [ReviewDecision; 4] = [ReviewDecision::Continue, ReviewDecision::Change, ReviewDecision::Taper, ReviewDecision::Stop];
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            ReviewDecision::Continue => "continue",
            ReviewDecision::Change => "change",
            ReviewDecision::Taper => "taper",
            ReviewDecision::Stop => "stop",
        }
    }
    /// Parses a code.
    pub fn parse(s: &str) -> Option<ReviewDecision> {
        ReviewDecision::ALL.into_iter().find(|d| d.code() == s.trim())
    }
    /// Words for people.
    pub fn label(self) -> &'static str {
        match self {
            ReviewDecision::Continue => "Continue",
            ReviewDecision::Change => "Change dose, interval or route",
            ReviewDecision::Taper => "Taper",
            ReviewDecision::Stop => "Stop ketamine",
        }
    }
}

/// A signed periodic benefit-risk review: the decision, the reasons and the evidence seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SafetyReview {
    /// Decision.
    pub decision: ReviewDecision,
    /// Reasons (required).
    pub reasons: String,
    /// The evidence the reviewer saw (one line each), frozen at signing.
    pub evidence: Vec<String>,
    /// Codes of the signals open at signing.
    pub signals: Vec<String>,
    /// Date of the next review.
    pub next_review: NaiveDate,
}

/// Kind of a care-plan goal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GoalKind {
    /// A target score on a rating scale.
    Score,
    /// A functional goal in the patient's words.
    Functional,
}

/// A goal of the care plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Goal {
    /// Kind.
    pub kind: GoalKind,
    /// The goal in words (the patient's own for a functional goal).
    pub text: String,
    /// Instrument key (score goals).
    pub instrument: Option<String>,
    /// Target total at or below (score goals).
    pub target: Option<Decimal>,
}

/// Psychotherapy and other support in the care plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Therapy {
    /// integration, cbt or other.
    pub kind: String,
    /// What, in words.
    pub description: String,
    /// Who provides it.
    pub who: String,
    /// How often.
    pub frequency: String,
    /// Sessions: date and whether attended.
    pub attendance: Vec<(NaiveDate, bool)>,
}

/// The care plan: goals, psychotherapy beside ketamine, responsible clinicians, next review.
/// The ketamine protocol, planned sessions, medicines and review decisions come from their own
/// records and are shown with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CarePlan {
    /// Goals.
    pub goals: Vec<Goal>,
    /// Psychotherapy and other support.
    pub therapies: Vec<Therapy>,
    /// Responsible clinicians (names and roles).
    pub responsible: Vec<String>,
    /// Next review date.
    pub next_review: Option<NaiveDate>,
    /// Notes for the team.
    pub notes: Option<String>,
}

impl CarePlan {
    /// Checks a care plan: at least one goal, texts bounded, score goals with an instrument and target.
    pub fn check(&self) -> Result<(), FieldErrors> {
        let mut e = FieldErrors::new();
        if self.goals.is_empty() {
            e.add("goals", "give at least one goal (a target score or a goal in the patient's words)");
        }
        for (i, g) in self.goals.iter().enumerate() {
            if let Err(m) = bounded_text(&g.text, 1, 500) {
                e.add(&format!("goals[{i}].text"), m);
            }
            if g.kind == GoalKind::Score && (g.instrument.is_none() || g.target.is_none()) {
                e.add(&format!("goals[{i}].target"), "a score goal needs its instrument and a target total");
            }
        }
        for (i, t) in self.therapies.iter().enumerate() {
            if !["integration", "cbt", "other"].contains(&t.kind.as_str()) {
                e.add(&format!("therapies[{i}].kind"), "must be integration, cbt or other");
            }
            for (f, v, max) in [("description", &t.description, 300), ("who", &t.who, 120), ("frequency", &t.frequency, 120)] {
                if let Err(m) = bounded_text(v, 1, max) {
                    e.add(&format!("therapies[{i}].{f}"), m);
                }
            }
        }
        if self.responsible.is_empty() || self.responsible.iter().any(|r| r.trim().is_empty()) {
            e.add("responsible", "name the responsible clinicians");
        }
        e.into_result()
    }
}

// ------------------------------------------------------------------ rules

/// The surveillance rules (from `knowledge/safety.toml`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SafetyRules {
    /// Knowledge file version.
    pub version: String,
    /// Doses compared in each half when looking for escalation (last N vs the N before).
    pub escalation_window_doses: Rule,
    /// Rise of the mean mg/kg that counts as escalation, percent.
    pub escalation_percent: Rule,
    /// Improvement of the mean response that justifies it, percentage points.
    pub benefit_improvement_points: Rule,
    /// Shortening of the median interval that counts, percent.
    pub interval_shortening_percent: Rule,
    /// Fall of the benefit duration that counts, days.
    pub benefit_days_drop: Rule,
    /// Early-session requests within 28 days that raise a signal.
    pub early_requests_28d: Rule,
    /// Fall of CADSS with a rising dose that counts, points.
    pub cadss_decline_points: Rule,
    /// Craving rating at or above which a signal is raised.
    pub craving_at_or_above: Rule,
    /// Days a substance-use report, craving or positive toxicology stays a signal.
    pub substance_lookback_days: Rule,
    /// SNOMED CT codes of substance-use diagnoses.
    pub substance_use_snomed: Vec<String>,
    /// Rise of the ICSI total from baseline that counts as worsening.
    pub icsi_rise_points: Rule,
    /// ICSI total at or above which symptoms count as new when the baseline was below it.
    pub icsi_at_or_above: Rule,
    /// Days between ICSI questionnaires on maintenance.
    pub icsi_interval_days: Rule,
    /// Days between liver panels on maintenance.
    pub liver_interval_days: Rule,
    /// Days to the repeat panel after an abnormal value.
    pub liver_repeat_days: Rule,
    /// ALT multiple of ULN that needs a review (local policy).
    pub alt_review_multiple: Rule,
    /// ALP multiple of ULN that needs a review.
    pub alp_review_multiple: Rule,
    /// GGT multiple of ULN that needs a review.
    pub ggt_review_multiple: Rule,
    /// Bilirubin multiple of ULN that, with ALT above its review multiple, is a severe pattern.
    pub bilirubin_review_multiple: Rule,
    /// R ratio at or above which the pattern is hepatocellular.
    pub r_hepatocellular: Rule,
    /// R ratio at or below which it is cholestatic.
    pub r_cholestatic: Rule,
    /// Days between benefit-risk reviews on maintenance.
    pub review_interval_days: Rule,
}

/// How urgent a signal is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Needs the prescriber's review before the next dose.
    Review,
    /// Keep watching; no action before the next dose.
    Watch,
}

impl Level {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            Level::Review => "review",
            Level::Watch => "watch",
        }
    }
}

/// A safety signal with the data it rests on and its source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signal {
    /// Stable code.
    pub code: &'static str,
    /// Level.
    pub level: Level,
    /// One sentence.
    pub title: String,
    /// The data seen.
    pub data: Vec<String>,
    /// What to do (a referral prompt where it applies).
    pub action: String,
    /// Source of the rule.
    pub source: String,
}

/// One dose given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DoseEntry {
    /// When given.
    pub at: DateTime<Utc>,
    /// mg.
    pub mg: Decimal,
    /// Body weight used, kg.
    pub weight_kg: Decimal,
}

/// Totals over one window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowTotal {
    /// "7 days", "28 days", "365 days", "lifetime".
    pub label: &'static str,
    /// Length, days (None: lifetime).
    pub days: Option<i64>,
    /// Doses in the window.
    pub doses: usize,
    /// Total mg.
    pub mg: Decimal,
    /// Total mg/kg (each dose over its own weight).
    pub mg_per_kg: Decimal,
    /// The drug library's soft and hard caps for this window, mg, where it has them.
    pub caps: Option<(Decimal, Decimal)>,
}

/// Cumulative exposure and how often sessions happen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cumulative {
    /// 7 days, 28 days, 365 days, lifetime.
    pub windows: Vec<WindowTotal>,
    /// Sessions in the last 28 days and in the 28 days before.
    pub sessions_28d: (usize, usize),
    /// Median days between the last three doses and between the three before (None: too few).
    pub median_interval_days: (Option<Decimal>, Option<Decimal>),
}

/// Whether `at` is inside the rolling window of `days` ending at `now`: `(now - days, now]`.
pub fn in_window(at: DateTime<Utc>, now: DateTime<Utc>, days: i64) -> bool {
    at <= now && at > now - Duration::days(days)
}

fn median(mut v: Vec<Decimal>) -> Option<Decimal> {
    if v.is_empty() {
        return None;
    }
    v.sort();
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / Decimal::TWO })
}

fn intervals_days(doses: &[DoseEntry]) -> Vec<Decimal> {
    let mut at: Vec<DateTime<Utc>> = doses.iter().map(|d| d.at).collect();
    at.sort();
    at.windows(2).map(|w| (Decimal::from((w[1] - w[0]).num_minutes()) / Decimal::from(1440)).round_dp(1)).collect()
}

/// Cumulative totals at `now`. `caps_7d` and `caps_28d` are the drug library's (soft, hard) mg.
pub fn cumulative(
    doses: &[DoseEntry],
    now: DateTime<Utc>,
    caps_7d: Option<(Decimal, Decimal)>,
    caps_28d: Option<(Decimal, Decimal)>,
) -> Cumulative {
    let total = |days: Option<i64>| {
        let sel: Vec<&DoseEntry> = doses.iter().filter(|d| d.at <= now && days.is_none_or(|n| in_window(d.at, now, n))).collect();
        let mg: Decimal = sel.iter().map(|d| d.mg).sum();
        let mgkg: Decimal = sel.iter().filter(|d| d.weight_kg > Decimal::ZERO).map(|d| d.mg / d.weight_kg).sum();
        (sel.len(), mg, mgkg.round_dp(3))
    };
    let mut windows = Vec::new();
    for (label, days, caps) in
        [("7 days", Some(7), caps_7d), ("28 days", Some(28), caps_28d), ("365 days", Some(365), None), ("lifetime", None, None)]
    {
        let (n, mg, mgkg) = total(days);
        windows.push(WindowTotal { label, days, doses: n, mg, mg_per_kg: mgkg, caps });
    }
    let recent = doses.iter().filter(|d| in_window(d.at, now, 28)).count();
    let before = doses.iter().filter(|d| in_window(d.at, now - Duration::days(28), 28)).count();
    let iv = intervals_days(&doses.iter().filter(|d| d.at <= now).cloned().collect::<Vec<_>>());
    let n = iv.len();
    let last = (n >= 3).then(|| median(iv[n - 3..].to_vec())).flatten();
    let prev = (n >= 6).then(|| median(iv[n - 6..n - 3].to_vec())).flatten();
    Cumulative { windows, sessions_28d: (recent, before), median_interval_days: (last, prev) }
}

/// Everything the surveillance looks at, for one patient.
#[derive(Clone, Debug)]
pub struct SafetyInput<'a> {
    /// Now.
    pub now: DateTime<Utc>,
    /// Whether the patient is on maintenance (reviews and periodic tests are due).
    pub on_maintenance: bool,
    /// When maintenance started.
    pub maintenance_since: Option<NaiveDate>,
    /// First dose ever (substance-use diagnoses after it are new).
    pub first_dose: Option<DateTime<Utc>>,
    /// Doses given.
    pub doses: &'a [DoseEntry],
    /// Sessions with their response, benefit duration and CADSS, oldest first.
    pub sessions: &'a [GivenSession],
    /// Safety observations.
    pub events: &'a [SafetyEvent],
    /// Lab results.
    pub labs: &'a [LabResult],
    /// ICSI totals with their time, oldest first.
    pub icsi: &'a [(DateTime<Utc>, Decimal)],
    /// Diagnoses: SNOMED code, display, when recorded.
    pub diagnoses: &'a [(String, String, DateTime<Utc>)],
    /// The latest signed review.
    pub last_review: Option<(&'a SafetyReview, DateTime<Utc>)>,
    /// Drug library caps (soft, hard) for 7 and 28 days, mg.
    pub caps_7d: Option<(Decimal, Decimal)>,
    /// See `caps_7d`.
    pub caps_28d: Option<(Decimal, Decimal)>,
}

/// Liver results: latest value of each test with its multiple of ULN, the R ratio and pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiverStatus {
    /// Latest result of each test.
    pub latest: Vec<LabResult>,
    /// R = (ALT/ULN) / (ALP/ULN) from the latest same-day pair, with its pattern.
    pub r_ratio: Option<(Decimal, &'static str)>,
}

/// The assessment of one patient's long-term safety.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SafetyAssessment {
    /// Exposure.
    pub cumulative: Cumulative,
    /// Open signals, review level first.
    pub signals: Vec<Signal>,
    /// Liver.
    pub liver: LiverStatus,
    /// Next liver panel due.
    pub labs_due: Option<NaiveDate>,
    /// Next ICSI due.
    pub icsi_due: Option<NaiveDate>,
    /// Next benefit-risk review due.
    pub review_due: Option<NaiveDate>,
}

fn mean(v: &[Decimal]) -> Option<Decimal> {
    (!v.is_empty()).then(|| v.iter().sum::<Decimal>() / Decimal::from(v.len()))
}

fn pct(d: Decimal) -> String {
    format!("{} %", d.round_dp(1).normalize())
}

/// Runs every rule.
pub fn assess(i: &SafetyInput<'_>, r: &SafetyRules) -> SafetyAssessment {
    let today = i.now.date_naive();
    let cumulative = cumulative(i.doses, i.now, i.caps_7d, i.caps_28d);
    let mut signals = Vec::new();
    let hundred = Decimal::ONE_HUNDRED;

    // Cumulative totals against the drug library's caps.
    for w in &cumulative.windows {
        if let Some((soft, hard)) = w.caps {
            if w.mg > soft {
                signals.push(Signal {
                    code: "cumulative_above_limit",
                    level: Level::Review,
                    title: format!("{} mg in {} is above the drug library's {} limit", w.mg.normalize(), w.label, if w.mg > hard { "hard" } else { "soft" }),
                    data: vec![format!("{} doses, {} mg ({} mg/kg) in {}; soft {} mg, hard {} mg", w.doses, w.mg.normalize(), w.mg_per_kg.normalize(), w.label, soft.normalize(), hard.normalize())],
                    action: "Review the frequency and dose before the next session.".into(),
                    source: "Drug library (knowledge/drug-library.toml); harm signals are dose- and frequency-related (Cottrell 2012, BJU Int 110:1762)".into(),
                });
            }
        }
    }

    // Escalation and shorter intervals without better outcomes.
    let n = r.escalation_window_doses.value.trunc().mantissa().clamp(1, 10) as usize;
    let with_dose: Vec<&GivenSession> = i.sessions.iter().filter(|s| s.mg_per_kg.is_some()).collect();
    let response_means = |ss: &[&GivenSession]| mean(&ss.iter().filter_map(|s| s.response.as_ref().map(|x| x.0)).collect::<Vec<_>>());
    if with_dose.len() >= 2 * n {
        let (prev, last) = (&with_dose[with_dose.len() - 2 * n..with_dose.len() - n], &with_dose[with_dose.len() - n..]);
        let dose = |ss: &[&GivenSession]| mean(&ss.iter().filter_map(|s| s.mg_per_kg).collect::<Vec<_>>()).unwrap_or_default();
        let (d0, d1) = (dose(prev), dose(last));
        let (r0, r1) = (response_means(prev), response_means(last));
        let escalated = d0 > Decimal::ZERO && d1 >= d0 * (hundred + r.escalation_percent.value) / hundred;
        let better = matches!((r0, r1), (Some(a), Some(b)) if b >= a + r.benefit_improvement_points.value);
        if escalated && !better {
            signals.push(Signal {
                code: "escalation_without_benefit",
                level: Level::Review,
                title: "Dose escalated without a better response".into(),
                data: vec![
                    format!(
                        "mean dose of the last {n} sessions {} mg/kg vs {} mg/kg before (+{})",
                        d1.round_dp(3).normalize(),
                        d0.round_dp(3).normalize(),
                        pct((d1 - d0) * hundred / d0)
                    ),
                    format!(
                        "mean response {} vs {} before",
                        r1.map(pct).unwrap_or_else(|| "not rated".into()),
                        r0.map(pct).unwrap_or_else(|| "not rated".into())
                    ),
                ],
                action: "Review for tolerance or misuse before escalating further; consider holding the dose.".into(),
                source: r.escalation_percent.source.clone(),
            });
        }
    }
    if let (Some(last), Some(prev)) = cumulative.median_interval_days {
        if prev > Decimal::ZERO && last <= prev * (hundred - r.interval_shortening_percent.value) / hundred {
            let k = with_dose.len();
            let better = k >= 6
                && matches!((response_means(&with_dose[k - 6..k - 3]), response_means(&with_dose[k - 3..])), (Some(a), Some(b)) if b >= a + r.benefit_improvement_points.value);
            if !better {
                signals.push(Signal {
                    code: "shorter_intervals_without_benefit",
                    level: Level::Review,
                    title: "Sessions are closer together without a better response".into(),
                    data: vec![format!(
                        "median interval of the last three doses {} days vs {} days before",
                        last.normalize(),
                        prev.normalize()
                    )],
                    action: "Ask why sessions are wanted sooner; review for tolerance or misuse.".into(),
                    source: r.interval_shortening_percent.source.clone(),
                });
            }
        }
    }
    // Falling benefit duration.
    let durations: Vec<(NaiveDate, u32)> = i.sessions.iter().filter_map(|s| s.benefit_days.map(|d| (s.date, d))).collect();
    if durations.len() >= 3 {
        let (first, last) = (durations[0], durations[durations.len() - 1]);
        if Decimal::from(last.1) <= Decimal::from(first.1) - r.benefit_days_drop.value {
            signals.push(Signal {
                code: "falling_benefit_duration",
                level: Level::Watch,
                title: "The benefit lasts less long after each dose".into(),
                data: vec![format!(
                    "benefit {} days after the dose of {} vs {} days after the dose of {}",
                    last.1, last.0, first.1, first.0
                )],
                action: "Watch for tolerance; discuss the interval and psychotherapy support.".into(),
                source: r.benefit_days_drop.source.clone(),
            });
        }
    }
    // Requests for earlier sessions.
    let early: Vec<&SafetyEvent> =
        i.events.iter().filter(|e| e.kind == SafetyEventKind::EarlySessionRequest && in_window(e.at, i.now, 28)).collect();
    if Decimal::from(early.len()) >= r.early_requests_28d.value && !early.is_empty() {
        signals.push(Signal {
            code: "early_session_requests",
            level: Level::Review,
            title: format!("{} requests for an earlier session in 28 days", early.len()),
            data: early.iter().map(|e| format!("requested {}", e.at.format("%Y-%m-%d"))).collect(),
            action: "Discuss the requests with the patient; review for misuse.".into(),
            source: r.early_requests_28d.source.clone(),
        });
    }
    // Declining dissociation with escalating dose (or dose requests).
    let cadss: Vec<(&GivenSession, Decimal)> = i.sessions.iter().filter_map(|s| s.cadss.map(|c| (s, c))).collect();
    if cadss.len() >= 2 {
        let ((s0, c0), (s1, c1)) = (cadss[0], cadss[cadss.len() - 1]);
        let dose_up = matches!((s0.mg_per_kg, s1.mg_per_kg), (Some(a), Some(b)) if b > a);
        let asked = i.events.iter().any(|e| e.kind == SafetyEventKind::DoseIncreaseRequest && in_window(e.at, i.now, 28));
        if c1 <= c0 - r.cadss_decline_points.value && (dose_up || asked) {
            signals.push(Signal {
                code: "declining_dissociation_with_escalation",
                level: Level::Review,
                title: "Dissociation is falling while the dose goes up".into(),
                data: vec![
                    format!("CADSS {} on {} vs {} on {}", c1.normalize(), s1.date, c0.normalize(), s0.date),
                    if dose_up {
                        format!(
                            "dose {} vs {} mg/kg",
                            s1.mg_per_kg.unwrap_or_default().normalize(),
                            s0.mg_per_kg.unwrap_or_default().normalize()
                        )
                    } else {
                        "asked for a higher dose in the last 28 days".into()
                    },
                ],
                action: "Consider tolerance; do not escalate for dissociation alone.".into(),
                source: r.cadss_decline_points.source.clone(),
            });
        }
    }
    // Craving, substance use, toxicology.
    let lookback = r.substance_lookback_days.value.trunc().mantissa().clamp(1, 3650) as i64;
    let recent = |e: &&SafetyEvent| in_window(e.at, i.now, lookback);
    let craving: Vec<&SafetyEvent> = i
        .events
        .iter()
        .filter(recent)
        .filter(|e| e.kind == SafetyEventKind::Craving && e.score.is_some_and(|s| Decimal::from(s) >= r.craving_at_or_above.value))
        .collect();
    let used: Vec<&SafetyEvent> = i.events.iter().filter(recent).filter(|e| e.kind == SafetyEventKind::SubstanceUse).collect();
    if !craving.is_empty() || !used.is_empty() {
        let mut data: Vec<String> =
            craving.iter().map(|e| format!("craving {}/10 on {}", e.score.unwrap_or(0), e.at.format("%Y-%m-%d"))).collect();
        data.extend(used.iter().map(|e| {
            format!("substance use on {}: {}", e.at.format("%Y-%m-%d"), e.substances.clone().unwrap_or_else(|| "not named".into()))
        }));
        signals.push(Signal {
            code: "craving_or_substance_use",
            level: Level::Review,
            title: "Craving or substance use reported".into(),
            data,
            action: "Assess for ketamine use disorder; consider addiction-medicine input.".into(),
            source: r.craving_at_or_above.source.clone(),
        });
    }
    let tox: Vec<&SafetyEvent> =
        i.events.iter().filter(recent).filter(|e| e.kind == SafetyEventKind::UrineToxicology && e.positive == Some(true)).collect();
    if !tox.is_empty() {
        signals.push(Signal {
            code: "positive_urine_toxicology",
            level: Level::Review,
            title: "Positive urine toxicology".into(),
            data: tox.iter().map(|e| format!("{}: {}", e.at.format("%Y-%m-%d"), e.substances.clone().unwrap_or_default())).collect(),
            action: "Review before the next dose; discuss with the patient.".into(),
            source: r.substance_lookback_days.source.clone(),
        });
    }
    if let Some(first) = i.first_dose {
        let new_dx: Vec<&(String, String, DateTime<Utc>)> =
            i.diagnoses.iter().filter(|d| d.2 > first && r.substance_use_snomed.contains(&d.0)).collect();
        if !new_dx.is_empty() {
            signals.push(Signal {
                code: "new_substance_use_diagnosis",
                level: Level::Review,
                title: "A substance-use disorder was diagnosed during treatment".into(),
                data: new_dx.iter().map(|d| format!("{} (SNOMED {}), recorded {}", d.1, d.0, d.2.format("%Y-%m-%d"))).collect(),
                action: "Review whether ketamine should continue.".into(),
                source: "Esketamine label: assess misuse risk before and during treatment; Swainson et al. 2022, CNS Drugs (PMC8853036)"
                    .into(),
            });
        }
    }

    // Bladder.
    if let (Some(base), Some(last)) = (i.icsi.first(), i.icsi.last()) {
        if i.icsi.len() >= 2 {
            let rise = last.1 - base.1;
            let new_symptoms = base.1 < r.icsi_at_or_above.value && last.1 >= r.icsi_at_or_above.value;
            if rise >= r.icsi_rise_points.value || new_symptoms {
                signals.push(Signal {
                    code: "urinary_symptoms",
                    level: Level::Review,
                    title: "New or worsening lower urinary tract symptoms".into(),
                    data: vec![format!("ICSI {} on {} vs baseline {} on {}", last.1.normalize(), last.0.format("%Y-%m-%d"), base.1.normalize(), base.0.format("%Y-%m-%d"))],
                    action: "Ask about frequency, urgency, pain and blood in the urine; test the urine; refer to urology if symptoms persist; consider pausing ketamine (cessation is the main treatment of ketamine cystitis).".into(),
                    source: r.icsi_rise_points.source.clone(),
                });
            }
        }
    }
    let blood: Vec<&SafetyEvent> =
        i.events.iter().filter(recent).filter(|e| e.kind == SafetyEventKind::Haematuria && e.positive == Some(true)).collect();
    if !blood.is_empty() {
        signals.push(Signal {
            code: "haematuria",
            level: Level::Review,
            title: "Blood in the urine".into(),
            data: blood
                .iter()
                .map(|e| {
                    format!("haematuria on {}{}", e.at.format("%Y-%m-%d"), e.note.as_ref().map(|n| format!(": {n}")).unwrap_or_default())
                })
                .collect(),
            action: "Refer to urology (haematuria needs investigation); hold ketamine until reviewed.".into(),
            source: "Ketamine label: cystitis with haematuria in chronic use; Chan 2022, Hong Kong Med J 28:466".into(),
        });
    }
    let icsi_interval = Duration::days(r.icsi_interval_days.value.trunc().mantissa().clamp(1, 3650) as i64);
    let icsi_due = match i.icsi.last() {
        None if !i.doses.is_empty() || i.on_maintenance => Some(today),
        None => None,
        Some(_) if !i.on_maintenance => None,
        Some((at, _)) => Some((*at + icsi_interval).date_naive()),
    };

    // Liver.
    let mut latest: Vec<LabResult> = Vec::new();
    for t in LabTest::ALL {
        if let Some(l) = i.labs.iter().filter(|l| l.test == t).max_by_key(|l| l.sampled_at) {
            latest.push(l.clone());
        }
    }
    let find = |t: LabTest| latest.iter().find(|l| l.test == t);
    let r_ratio = match (find(LabTest::Alt), find(LabTest::Alp)) {
        (Some(a), Some(p)) if a.sampled_at.date_naive() == p.sampled_at.date_naive() && p.multiple() > Decimal::ZERO => {
            let rr = (a.value / a.uln / (p.value / p.uln)).round_dp(1);
            let pattern = if rr >= r.r_hepatocellular.value {
                "hepatocellular"
            } else if rr <= r.r_cholestatic.value {
                "cholestatic"
            } else {
                "mixed"
            };
            Some((rr, pattern))
        }
        _ => None,
    };
    let mut abnormal = false;
    let mut liver_data = Vec::new();
    let mut liver_level = None;
    for (t, rule) in
        [(LabTest::Alt, &r.alt_review_multiple), (LabTest::Alp, &r.alp_review_multiple), (LabTest::Ggt, &r.ggt_review_multiple)]
    {
        if let Some(l) = find(t) {
            if l.value > l.uln {
                abnormal = true;
                liver_level = liver_level.or(Some(Level::Watch));
            }
            if l.multiple() > rule.value {
                liver_level = Some(Level::Review);
                liver_data.push(format!(
                    "{} {} {} = {} x ULN (review above {} x) on {}",
                    t.label(),
                    l.value.normalize(),
                    l.unit,
                    l.multiple().normalize(),
                    rule.value.normalize(),
                    l.sampled_at.format("%Y-%m-%d")
                ));
            } else if l.value > l.uln {
                liver_data.push(format!(
                    "{} {} {} = {} x ULN on {}",
                    t.label(),
                    l.value.normalize(),
                    l.unit,
                    l.multiple().normalize(),
                    l.sampled_at.format("%Y-%m-%d")
                ));
            }
        }
    }
    // A rising ALT above ULN: the previous value too.
    let alts: Vec<&LabResult> = {
        let mut v: Vec<&LabResult> = i.labs.iter().filter(|l| l.test == LabTest::Alt).collect();
        v.sort_by_key(|l| l.sampled_at);
        v
    };
    if alts.len() >= 2 {
        let (p, l) = (alts[alts.len() - 2], alts[alts.len() - 1]);
        if l.multiple() > p.multiple() && l.value > l.uln {
            liver_data.push(format!(
                "ALT rising: {} x ULN on {} after {} x ULN on {}",
                l.multiple().normalize(),
                l.sampled_at.format("%Y-%m-%d"),
                p.multiple().normalize(),
                p.sampled_at.format("%Y-%m-%d")
            ));
        }
    }
    if let (Some(b), Some(a)) = (find(LabTest::Bilirubin), find(LabTest::Alt)) {
        if b.multiple() > r.bilirubin_review_multiple.value && a.multiple() > r.alt_review_multiple.value {
            liver_level = Some(Level::Review);
            liver_data.push(format!(
                "bilirubin {} x ULN with ALT {} x ULN: a severe pattern (UNVERIFIED threshold)",
                b.multiple().normalize(),
                a.multiple().normalize()
            ));
        }
        if b.value > b.uln {
            abnormal = true;
        }
    }
    if let Some((rr, pattern)) = r_ratio {
        if abnormal {
            liver_data.push(format!("R ratio {} ({pattern})", rr.normalize()));
        }
    }
    if let Some(level) = liver_level {
        signals.push(Signal {
            code: "liver_tests",
            level,
            title: if level == Level::Review { "Liver tests above the review threshold".into() } else { "Liver tests above the upper limit of normal".into() },
            data: liver_data,
            action: if level == Level::Review {
                "Hold ketamine and review; repeat the liver panel; consider imaging of the bile ducts (cholestatic injury resembling sclerosing cholangitis is described with repeated use).".into()
            } else {
                "Repeat the liver panel sooner; watch the trend.".into()
            },
            source: r.alt_review_multiple.source.clone(),
        });
    }
    let liver_every = Duration::days(r.liver_interval_days.value.trunc().mantissa().clamp(1, 3650) as i64);
    let liver_repeat = Duration::days(r.liver_repeat_days.value.trunc().mantissa().clamp(1, 3650) as i64);
    let last_panel = i.labs.iter().map(|l| l.sampled_at).max();
    let labs_due = match last_panel {
        None if !i.doses.is_empty() || i.on_maintenance => Some(today),
        None => None,
        Some(at) if abnormal => Some((at + liver_repeat).date_naive()),
        Some(_) if !i.on_maintenance => None,
        Some(at) => Some((at + liver_every).date_naive()),
    };

    // Periodic review.
    let review_every = Duration::days(r.review_interval_days.value.trunc().mantissa().clamp(1, 3650) as i64);
    let review_due = if i.on_maintenance {
        match i.last_review {
            Some((rv, _)) => Some(rv.next_review),
            None => Some(i.maintenance_since.map(|d| d + review_every).unwrap_or(today)),
        }
    } else {
        None
    };
    for (code, due, what) in [
        ("review_due", review_due, "benefit-risk review"),
        ("labs_due", labs_due, "liver panel"),
        ("icsi_due", icsi_due, "bladder questionnaire (ICSI)"),
    ] {
        if let Some(d) = due.filter(|d| *d <= today) {
            signals.push(Signal {
                code,
                level: Level::Watch,
                title: format!("{} {}", capitalise(what), if d < today { "overdue" } else { "due" }),
                data: vec![format!("due {d}")],
                action: format!("Arrange the {what}."),
                source: match code {
                    "review_due" => r.review_interval_days.source.clone(),
                    "labs_due" => r.liver_interval_days.source.clone(),
                    _ => r.icsi_interval_days.source.clone(),
                },
            });
        }
    }
    signals.sort_by_key(|s| s.level);
    SafetyAssessment { cumulative, signals, liver: LiverStatus { latest, r_ratio }, labs_due, icsi_due, review_due }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn rule(v: &str) -> Rule {
        Rule { value: Decimal::from_str(v).unwrap(), source: "test".into() }
    }

    pub(crate) fn rules() -> SafetyRules {
        SafetyRules {
            version: "t".into(),
            escalation_window_doses: rule("2"),
            escalation_percent: rule("25"),
            benefit_improvement_points: rule("10"),
            interval_shortening_percent: rule("25"),
            benefit_days_drop: rule("2"),
            early_requests_28d: rule("2"),
            cadss_decline_points: rule("5"),
            craving_at_or_above: rule("4"),
            substance_lookback_days: rule("90"),
            substance_use_snomed: vec!["66214007".into()],
            icsi_rise_points: rule("4"),
            icsi_at_or_above: rule("8"),
            icsi_interval_days: rule("28"),
            liver_interval_days: rule("90"),
            liver_repeat_days: rule("14"),
            alt_review_multiple: rule("3"),
            alp_review_multiple: rule("2"),
            ggt_review_multiple: rule("3"),
            bilirubin_review_multiple: rule("2"),
            r_hepatocellular: rule("5"),
            r_cholestatic: rule("2"),
            review_interval_days: rule("90"),
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap()
    }

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn dose(days_ago: i64, mg: &str) -> DoseEntry {
        DoseEntry { at: now() - Duration::days(days_ago), mg: d(mg), weight_kg: d("70") }
    }

    fn input<'a>() -> SafetyInput<'a> {
        SafetyInput {
            now: now(),
            on_maintenance: false,
            maintenance_since: None,
            first_dose: None,
            doses: &[],
            sessions: &[],
            events: &[],
            labs: &[],
            icsi: &[],
            diagnoses: &[],
            last_review: None,
            caps_7d: None,
            caps_28d: None,
        }
    }

    fn codes(a: &SafetyAssessment) -> Vec<&'static str> {
        a.signals.iter().map(|s| s.code).collect()
    }

    #[test]
    fn a_dose_exactly_seven_days_old_is_out_of_the_seven_day_window() {
        let doses = [dose(7, "70"), dose(6, "35")];
        let c = cumulative(&doses, now(), None, None);
        assert_eq!((c.windows[0].doses, c.windows[0].mg), (1, d("35")), "7 days: only the dose 6 days ago");
        assert_eq!((c.windows[1].doses, c.windows[1].mg), (2, d("105")));
        // One second less than 7 days old is in.
        let inside = [DoseEntry { at: now() - Duration::days(7) + Duration::seconds(1), mg: d("70"), weight_kg: d("70") }];
        assert_eq!(cumulative(&inside, now(), None, None).windows[0].doses, 1);
        // 28 days likewise; a dose in the future (a pending order) is not given yet.
        let c = cumulative(&[dose(28, "70"), dose(27, "70"), dose(-1, "70")], now(), None, None);
        assert_eq!(c.windows[1].doses, 1);
        assert_eq!(c.windows[3].doses, 2, "lifetime counts every dose given so far");
        assert_eq!(c.windows[3].mg_per_kg, d("2"));
    }

    #[test]
    fn cumulative_caps_raise_a_signal_above_the_soft_limit() {
        let doses = [dose(1, "70"), dose(4, "70")];
        let mut i = input();
        i.doses = &doses;
        i.caps_7d = Some((d("140"), d("200")));
        assert!(!codes(&assess(&i, &rules())).contains(&"cumulative_above_limit"), "at the soft limit is not above it");
        let doses = [dose(1, "70"), dose(4, "71")];
        i.doses = &doses;
        let a = assess(&i, &rules());
        assert!(codes(&a).contains(&"cumulative_above_limit"));
        assert!(a.signals[0].title.contains("soft"));
    }

    fn session(days_ago: i64, mgkg: &str, response: Option<&str>, cadss: Option<&str>, benefit: Option<u32>) -> GivenSession {
        GivenSession {
            date: (now() - Duration::days(days_ago)).date_naive(),
            mg_per_kg: Some(d(mgkg)),
            response: response.map(|r| (d(r), "HAM-A".into())),
            cadss: cadss.map(d),
            benefit_days: benefit,
            ..GivenSession::default()
        }
    }

    #[test]
    fn escalation_counts_at_25_percent_unless_the_response_improved_by_10_points() {
        // (previous doses, last doses, previous responses, last responses, signal?)
        let table = [
            (["0.8", "0.8"], ["1.0", "1.0"], ["40", "40"], ["45", "45"], true), // +25 % exactly, +5 points
            (["0.8", "0.8"], ["0.99", "0.99"], ["40", "40"], ["40", "40"], false), // +23.75 %
            (["0.8", "0.8"], ["1.0", "1.0"], ["40", "40"], ["50", "50"], false), // +10 points exactly justifies it
            (["0.8", "0.8"], ["1.0", "1.0"], ["40", "40"], ["49.9", "49.9"], true),
        ];
        for (k, (p, l, rp, rl, want)) in table.iter().enumerate() {
            let s = [
                session(28, p[0], Some(rp[0]), None, None),
                session(21, p[1], Some(rp[1]), None, None),
                session(14, l[0], Some(rl[0]), None, None),
                session(7, l[1], Some(rl[1]), None, None),
            ];
            let mut i = input();
            i.sessions = &s;
            assert_eq!(codes(&assess(&i, &rules())).contains(&"escalation_without_benefit"), *want, "row {k}");
        }
    }

    #[test]
    fn shorter_intervals_count_at_25_percent() {
        // Weekly, then every 5.25 days (25 % shorter) -> signal; every 5.5 days -> none.
        for (step_hours, want) in [(126, true), (132, false)] {
            let mut doses: Vec<DoseEntry> = (0..4)
                .map(|k| DoseEntry { at: now() - Duration::days(60) + Duration::days(7 * k), mg: d("70"), weight_kg: d("70") })
                .collect();
            let last = doses.last().unwrap().at;
            doses.extend((1..=3).map(|k| DoseEntry { at: last + Duration::hours(step_hours * k), mg: d("70"), weight_kg: d("70") }));
            let mut i = input();
            i.now = doses.last().unwrap().at + Duration::hours(1);
            i.doses = &doses;
            assert_eq!(codes(&assess(&i, &rules())).contains(&"shorter_intervals_without_benefit"), want, "{step_hours} h");
        }
    }

    #[test]
    fn falling_benefit_duration_at_two_days() {
        for (last, want) in [(5, true), (6, false)] {
            let s = [session(21, "1", None, None, Some(7)), session(14, "1", None, None, Some(6)), session(7, "1", None, None, Some(last))];
            let mut i = input();
            i.sessions = &s;
            assert_eq!(codes(&assess(&i, &rules())).contains(&"falling_benefit_duration"), want, "{last}");
        }
    }

    fn event(kind: SafetyEventKind, days_ago: i64) -> SafetyEvent {
        SafetyEvent { kind, at: now() - Duration::days(days_ago), score: None, positive: None, substances: None, note: None }
    }

    #[test]
    fn early_requests_two_within_28_days() {
        for (ages, want) in [(vec![3, 27], true), (vec![3, 28], false), (vec![3], false)] {
            let ev: Vec<SafetyEvent> = ages.iter().map(|a| event(SafetyEventKind::EarlySessionRequest, *a)).collect();
            let mut i = input();
            i.events = &ev;
            assert_eq!(codes(&assess(&i, &rules())).contains(&"early_session_requests"), want, "{ages:?}");
        }
    }

    #[test]
    fn declining_dissociation_needs_a_rising_dose_or_a_request() {
        let rising = [session(21, "0.5", None, Some("20"), None), session(7, "1", None, Some("15"), None)];
        let flat = [session(21, "1", None, Some("20"), None), session(7, "1", None, Some("15"), None)];
        let small = [session(21, "0.5", None, Some("20"), None), session(7, "1", None, Some("15.5"), None)];
        let ask = [event(SafetyEventKind::DoseIncreaseRequest, 2)];
        for (s, ev, want) in
            [(&rising[..], &[][..], true), (&flat[..], &[][..], false), (&flat[..], &ask[..], true), (&small[..], &[][..], false)]
        {
            let mut i = input();
            i.sessions = s;
            i.events = ev;
            assert_eq!(codes(&assess(&i, &rules())).contains(&"declining_dissociation_with_escalation"), want);
        }
    }

    #[test]
    fn craving_at_four_substance_use_toxicology_and_new_diagnoses() {
        let craving = |score| SafetyEvent { score: Some(score), ..event(SafetyEventKind::Craving, 3) };
        for (score, want) in [(4, true), (3, false)] {
            let ev = [craving(score)];
            let mut i = input();
            i.events = &ev;
            assert_eq!(codes(&assess(&i, &rules())).contains(&"craving_or_substance_use"), want);
        }
        let old = [SafetyEvent { score: Some(9), ..event(SafetyEventKind::Craving, 90) }];
        let mut i = input();
        i.events = &old;
        assert!(!codes(&assess(&i, &rules())).contains(&"craving_or_substance_use"), "90 days ago is out of the 90-day lookback");
        let tox = [SafetyEvent { positive: Some(true), substances: Some("cocaine".into()), ..event(SafetyEventKind::UrineToxicology, 10) }];
        i.events = &tox;
        assert!(codes(&assess(&i, &rules())).contains(&"positive_urine_toxicology"));
        let neg = [SafetyEvent { positive: Some(false), ..event(SafetyEventKind::UrineToxicology, 10) }];
        i.events = &neg;
        assert!(!codes(&assess(&i, &rules())).contains(&"positive_urine_toxicology"));
        let dx = [("66214007".to_owned(), "Substance abuse".to_owned(), now() - Duration::days(5))];
        let mut i = input();
        i.diagnoses = &dx;
        i.first_dose = Some(now() - Duration::days(60));
        assert!(codes(&assess(&i, &rules())).contains(&"new_substance_use_diagnosis"));
        i.first_dose = Some(now() - Duration::days(1));
        assert!(!codes(&assess(&i, &rules())).contains(&"new_substance_use_diagnosis"), "diagnosed before treatment");
    }

    #[test]
    fn urinary_symptoms_rise_of_four_or_crossing_eight_and_haematuria() {
        for (base, last, want) in [("2", "6", true), ("2", "5", false), ("6", "8", true), ("8", "11", false), ("8", "12", true)] {
            let icsi = [(now() - Duration::days(60), d(base)), (now() - Duration::days(1), d(last))];
            let mut i = input();
            i.icsi = &icsi;
            let a = assess(&i, &rules());
            assert_eq!(codes(&a).contains(&"urinary_symptoms"), want, "{base} -> {last}");
            if want {
                assert!(a.signals.iter().find(|s| s.code == "urinary_symptoms").unwrap().action.contains("refer to urology"));
            }
        }
        let blood = [SafetyEvent { positive: Some(true), ..event(SafetyEventKind::Haematuria, 2) }];
        let mut i = input();
        i.events = &blood;
        assert!(assess(&i, &rules()).signals.iter().any(|s| s.code == "haematuria" && s.action.contains("Refer to urology")));
    }

    fn lab(test: LabTest, value: &str, uln: &str, days_ago: i64) -> LabResult {
        LabResult { test, value: d(value), unit: "U/L".into(), uln: d(uln), sampled_at: now() - Duration::days(days_ago), lab: None }
    }

    #[test]
    fn liver_rules_at_their_multiples_with_the_r_ratio() {
        // ALT exactly 3 x ULN is not above it; 3.01 x is.
        for (alt, level) in [("120", Some(Level::Watch)), ("121", Some(Level::Review)), ("40", None)] {
            let labs = [lab(LabTest::Alt, alt, "40", 1)];
            let mut i = input();
            i.labs = &labs;
            let a = assess(&i, &rules());
            assert_eq!(a.signals.iter().find(|s| s.code == "liver_tests").map(|s| s.level), level, "ALT {alt}");
        }
        // ALP above 2 x ULN; cholestatic pattern (R = (60/40)/(300/120) = 0.6).
        let labs = [lab(LabTest::Alt, "60", "40", 1), lab(LabTest::Alp, "300", "120", 1)];
        let mut i = input();
        i.labs = &labs;
        let a = assess(&i, &rules());
        assert_eq!(a.liver.r_ratio, Some((d("0.6"), "cholestatic")));
        let s = a.signals.iter().find(|s| s.code == "liver_tests").unwrap();
        assert_eq!(s.level, Level::Review);
        assert!(s.data.iter().any(|x| x.contains("R ratio 0.6 (cholestatic)")));
        // Hepatocellular: R = (250/40)/(100/120) = 7.5.
        let labs = [lab(LabTest::Alt, "250", "40", 1), lab(LabTest::Alp, "100", "120", 1)];
        i.labs = &labs;
        assert_eq!(assess(&i, &rules()).liver.r_ratio.map(|r| r.1), Some("hepatocellular"));
        // A rising ALT is shown with both values, and the repeat panel falls due in 14 days.
        let labs = [lab(LabTest::Alt, "50", "40", 40), lab(LabTest::Alt, "90", "40", 2)];
        i.labs = &labs;
        i.on_maintenance = true;
        let a = assess(&i, &rules());
        assert!(a.signals.iter().any(|s| s.code == "liver_tests" && s.data.iter().any(|x| x.contains("ALT rising"))));
        assert_eq!(a.labs_due, Some((now() - Duration::days(2) + Duration::days(14)).date_naive()));
    }

    #[test]
    fn due_dates_of_labs_questionnaires_and_reviews() {
        // No labs and no ICSI after a dose: due today.
        let doses = [dose(3, "70")];
        let mut i = input();
        i.doses = &doses;
        let a = assess(&i, &rules());
        assert_eq!((a.labs_due, a.icsi_due), (Some(now().date_naive()), Some(now().date_naive())));
        // On maintenance since 100 days ago with no review: due 10 days ago -> overdue.
        i.on_maintenance = true;
        i.maintenance_since = Some((now() - Duration::days(100)).date_naive());
        let a = assess(&i, &rules());
        assert_eq!(a.review_due, Some((now() - Duration::days(10)).date_naive()));
        assert!(a.signals.iter().any(|s| s.code == "review_due" && s.title.contains("overdue")));
        // A signed review sets the next date.
        let rv = SafetyReview {
            decision: ReviewDecision::Continue,
            reasons: "stable".into(),
            evidence: vec![],
            signals: vec![],
            next_review: (now() + Duration::days(80)).date_naive(),
        };
        i.last_review = Some((&rv, now() - Duration::days(10)));
        let a = assess(&i, &rules());
        assert_eq!(a.review_due, Some((now() + Duration::days(80)).date_naive()));
        assert!(!a.signals.iter().any(|s| s.code == "review_due"));
    }

    #[test]
    fn inputs_are_checked_field_by_field() {
        let e = LabInput { test: "alt".into(), value: "ninety".into(), unit: "mg".into(), uln: "0".into(), lab: String::new() }
            .validate(now())
            .unwrap_err();
        assert!(e.for_field("value").is_some() && e.for_field("unit").unwrap().contains("U/L") && e.for_field("uln").is_some());
        let ok = LabInput { test: "bilirubin".into(), value: "25".into(), unit: "umol/L".into(), uln: "21".into(), lab: "City lab".into() }
            .validate(now())
            .unwrap();
        assert_eq!(ok.multiple(), d("1.19"));
        let e = SafetyEventInput { kind: "craving".into(), score: "11".into(), ..Default::default() }.validate(now()).unwrap_err();
        assert!(e.for_field("score").unwrap().contains("0 (none) to 10"));
        let e = SafetyEventInput { kind: "urine_toxicology".into(), result: "positive".into(), ..Default::default() }
            .validate(now())
            .unwrap_err();
        assert!(e.for_field("substances").is_some());
        let plan = CarePlan { goals: vec![], therapies: vec![], responsible: vec![], next_review: None, notes: None };
        let e = plan.check().unwrap_err();
        assert!(e.for_field("goals").is_some() && e.for_field("responsible").is_some());
    }
}
