//! Rating-scale histories of the demo clinic: which instrument is given when during a ketamine
//! course, what total it should have, and answers item by item that add up to that total.
//!
//! Everything is pure and deterministic. A course follows the published trials in outline:
//! weekly ascending subcutaneous doses of 0.25, 0.5 and 1 mg/kg (Glue 2017), for some
//! responders then 1 mg/kg weekly or twice weekly as maintenance (Glue 2018), or a short series
//! of intravenous infusions. About two patients in three respond: anxiety falls by half or more
//! an hour after the 0.5 and 1 mg/kg doses, part of the benefit fades before the next session,
//! and pre-dose scores fall over maintenance; a few remit. Dissociation (CADSS) an hour after
//! dosing rises with the dose and falls over maintenance (about 20 to about 9, as in Glue 2018).
//! The numbers are illustrative and describe no real patient.

use chrono::{NaiveDateTime, NaiveTime, TimeDelta};
use ketacare_app::AppError;
use ketacare_domain::instrument::{AnswerKind, Instrument, ItemDef};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::ops::RangeInclusive;

/// Subcutaneous doses of the ascending phase, mg/kg as shown to the clinician.
const ASCENDING_MG_PER_KG: [&str; 3] = ["0.25", "0.5", "1"];
/// Infusions in an intravenous series.
pub(crate) const INFUSIONS: usize = 6;
/// Baseline totals at screening.
const GAD7_BASELINE_GAD: RangeInclusive<i64> = 13..=19;
const GAD7_BASELINE_OTHER: RangeInclusive<i64> = 10..=16;
/// HAM-A above 20 for generalised anxiety (the trials' entry threshold is of that order).
const HAMA_BASELINE_GAD: RangeInclusive<i64> = 21..=32;
const HAMA_BASELINE_OTHER: RangeInclusive<i64> = 15..=24;
const PHQ9_BASELINE_DEPRESSED: RangeInclusive<i64> = 15..=21;
const PHQ9_BASELINE_OTHER: RangeInclusive<i64> = 7..=14;
/// LSAS above 60 (the generalised subtype, Mennin 2002).
const LSAS_BASELINE: RangeInclusive<i64> = 62..=105;
const SDS_BASELINE: RangeInclusive<i64> = 16..=26;
const QLESQ_BASELINE: RangeInclusive<i64> = 24..=38;
const FQ_BASELINE: RangeInclusive<i64> = 35..=70;
const VAS_BASELINE: RangeInclusive<i64> = 55..=85;
/// Days between the four-weekly reviews (function, quality of life, depression, bladder).
const REVIEW_EVERY_DAYS: i64 = 28;
/// Bladder symptoms are asked at every second four-weekly review (every 8 weeks).
const ICSI_EVERY_REVIEWS: usize = 2;
/// Patients with a session-anchored schedule (other than the showcase) give the GAD-7 at every
/// time point for sessions in this many days before the cutoff, since the schedule was set up.
pub(crate) const SCHEDULED_DAYS: i64 = 56;

/// Who enters a form: clinician-rated scales by the prescriber, observations during dosing and
/// patients' paper forms by the nurse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rater {
    Prescriber,
    Nurse,
}

/// One administration to record.
#[derive(Clone, Debug)]
pub(crate) struct PlannedAssessment {
    pub instrument: &'static str,
    pub at: NaiveDateTime,
    /// Index into the patient's records of the treatment session it belongs to.
    pub session: Option<usize>,
    pub timepoint: Option<&'static str>,
    pub rater: Rater,
    /// One answer per item in published order (`""` or `-` = blank).
    pub answers: Vec<String>,
    pub note: String,
}

/// What is given at a treatment session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dosing {
    /// Weekly ascending subcutaneous dose, step 0, 1, 2 = 0.25, 0.5, 1 mg/kg (Glue 2017).
    Ascending(usize),
    /// Subcutaneous 1 mg/kg maintenance, numbered from 0 (Glue 2018).
    Maintenance { n: usize, twice_weekly: bool },
    /// Intravenous 0.5 mg/kg over 40 minutes, numbered from 0.
    Infusion(usize),
}

impl Dosing {
    /// The encounter's reason: the charts label sessions with it, so it states the dose.
    pub(crate) fn reason(self) -> String {
        match self {
            Dosing::Ascending(step) => {
                format!("SC ketamine {} mg/kg (ascending dose {} of 3)", ASCENDING_MG_PER_KG[step.min(2)], step + 1)
            }
            Dosing::Maintenance { twice_weekly, .. } => {
                format!("SC ketamine 1 mg/kg (maintenance, {})", if twice_weekly { "twice weekly" } else { "weekly" })
            }
            Dosing::Infusion(k) => format!("IV ketamine 0.5 mg/kg over 40 min (infusion {} of {INFUSIONS})", k + 1),
        }
    }
    fn is_maintenance(self) -> bool {
        matches!(self, Dosing::Maintenance { .. })
    }
}

/// A treatment session.
#[derive(Clone, Debug)]
pub(crate) struct Session {
    /// Index of its encounter in the patient's records.
    pub record: usize,
    pub start: NaiveDateTime,
    pub dosing: Dosing,
}

/// A patient's ketamine course as the rating scales see it.
#[derive(Clone, Debug)]
pub(crate) struct Course {
    /// Start of the screening visit (baseline ratings).
    pub screening: NaiveDateTime,
    /// Sessions before the cutoff, oldest first.
    pub sessions: Vec<Session>,
    /// Starts of review visits after the course, before the cutoff.
    pub reviews: Vec<NaiveDateTime>,
    pub responder: bool,
    pub remitter: bool,
    /// Goes on to maintenance after the ascending doses.
    pub maintenance: bool,
    pub gad: bool,
    pub sad: bool,
    /// Comorbid recurrent depression.
    pub depression: bool,
    /// Takes a regular medication (Q-LES-Q-SF item 15 is answered).
    pub on_medication: bool,
}

/// What a suicide-risk screen after a positive PHQ-9 item 9 finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Screen {
    /// Wish to be dead only: low triage, no alert from the screener.
    Low,
    /// Active thoughts with a method, no intent: moderate triage, an urgent alert.
    Moderate,
}

/// Stories given to a few patients once the whole clinic is planned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Roles {
    /// KC-000001: every instrument, the full protocol.
    pub showcase: bool,
    /// Has assessment schedules: GAD-7 at every time point of the sessions since the schedule
    /// (all sessions for the showcase, the last [`SCHEDULED_DAYS`] for others), and the
    /// four-weekly function and quality-of-life reviews.
    pub full_protocol: bool,
    /// The latest PHQ-9 has item 9 = 1 (an open alert), followed by a C-SSRS screener.
    pub ideation: Option<Screen>,
    /// Bladder symptoms (ICSI) rise over maintenance.
    pub icsi_rising: bool,
}

/// Symptom level relative to baseline (1 = as at screening) around one session.
#[derive(Clone, Copy, Debug)]
struct Levels {
    pre: f64,
    one_hour: f64,
    day: f64,
    week: f64,
}

/// Per-patient parameters of the trajectory and the baseline totals.
struct Patient {
    gad7: i64,
    hama: i64,
    phq9: i64,
    lsas: i64,
    sds: i64,
    qlesq: i64,
    fq: i64,
    vas: i64,
    /// How strongly this patient dissociates (multiplies the CADSS means).
    dissociation: f64,
}

/// Triangular noise in `-a..a`.
fn noise(rng: &mut ChaCha8Rng, a: f64) -> f64 {
    (rng.gen::<f64>() + rng.gen::<f64>() - 1.0) * a
}

fn minutes(n: i64) -> TimeDelta {
    TimeDelta::minutes(n)
}

/// Symptom levels around every session, and the level at reviews after the course. Pre-dose
/// levels approach the patient's floor (fast for responders, barely for non-responders); an hour
/// after dosing the level drops by a dose-dependent share; a day later a little has come back
/// (much for non-responders); a week later it is near the next pre-dose level, or on its way to
/// the level after the course.
fn trajectory(rng: &mut ChaCha8Rng, course: &Course) -> (Vec<Levels>, f64) {
    let floor = if course.remitter {
        rng.gen_range(0.12..0.22)
    } else if course.responder {
        rng.gen_range(0.30..0.42)
    } else {
        rng.gen_range(0.80..0.95)
    };
    let sensitivity: f64 = rng.gen_range(0.85..1.15);
    let acute = |d: Dosing| -> f64 {
        let a: f64 = match (course.responder, d) {
            (true, Dosing::Ascending(0)) => 0.30,
            (true, Dosing::Ascending(1)) => 0.50,
            (true, Dosing::Ascending(_)) => 0.62,
            (true, Dosing::Maintenance { .. }) => 0.50,
            (true, Dosing::Infusion(_)) => 0.52,
            (false, Dosing::Ascending(0)) => 0.06,
            (false, Dosing::Ascending(1)) => 0.14,
            (false, Dosing::Ascending(_)) => 0.24,
            (false, Dosing::Maintenance { .. }) => 0.20,
            (false, Dosing::Infusion(_)) => 0.18,
        };
        (a * sensitivity).min(0.9)
    };
    let carry = |d: Dosing| -> f64 {
        let c = match d {
            Dosing::Ascending(0) => 0.15,
            Dosing::Ascending(1) => 0.30,
            Dosing::Ascending(_) => 0.40,
            Dosing::Maintenance { twice_weekly: true, .. } => 0.30,
            Dosing::Maintenance { .. } => 0.22,
            Dosing::Infusion(_) => 0.28,
        };
        if course.responder {
            c
        } else {
            c * 0.5
        }
    };
    let rebound = if course.responder { 0.25 } else { 0.6 };
    let mut pres = vec![rng.gen_range(0.95..1.05)];
    for (s, session) in course.sessions.iter().enumerate() {
        let t = pres[s];
        pres.push(t - (t - floor) * carry(session.dosing));
    }
    // After the course: maintenance and remission hold, half the other responders keep their
    // benefit, the rest fade back towards baseline.
    let end = pres.last().copied().unwrap_or(1.0);
    let sustained = course.remitter || (course.responder && rng.gen_bool(0.5));
    let after = if course.maintenance {
        end + (1.0 - end) * 0.15
    } else if sustained {
        floor + (1.0 - floor) * 0.15
    } else if course.responder {
        end + (1.0 - end) * 0.5
    } else {
        end + (1.0 - end) * 0.7
    };
    let mut levels = Vec::with_capacity(course.sessions.len());
    for (s, session) in course.sessions.iter().enumerate() {
        let pre = pres[s];
        let one_hour = pre * (1.0 - acute(session.dosing));
        let day = one_hour + (pre - one_hour) * rebound;
        let week = match pres.get(s + 1) {
            Some(next) if s + 1 < course.sessions.len() => next * 1.03,
            _ => day + (after - day) * 0.6,
        };
        levels.push(Levels { pre, one_hour, day, week });
    }
    (levels, after)
}

/// Answers for `inst` whose scored items add up to `target` (clamped to what the items allow).
///
/// Free scored items start at their lowest answer and are raised one allowed step at a time,
/// each step going to an item drawn by the patient's item `weights` and its remaining headroom,
/// so the same patient keeps a recognisable item profile. `fixed` answers are kept as given
/// (`None` = blank). Unscored items follow the total: each lies about as far along its own
/// range as the target lies along the instrument's total range.
pub(crate) fn spread(
    rng: &mut ChaCha8Rng,
    inst: &Instrument,
    target: i64,
    weights: &[f64],
    fixed: &[(&str, Option<u32>)],
) -> Vec<Option<u32>> {
    let mut out: Vec<Option<u32>> = vec![None; inst.items.len()];
    let mut free = Vec::new();
    let mut sum = 0_i64;
    for (i, item) in inst.items.iter().enumerate() {
        if let Some((_, v)) = fixed.iter().find(|(k, _)| *k == item.key) {
            out[i] = *v;
            if item.scored {
                sum += i64::from(v.unwrap_or(0));
            }
        } else if item.scored {
            let lowest = item.choices().first().copied().unwrap_or(item.min);
            out[i] = Some(lowest);
            sum += i64::from(lowest);
            free.push(i);
        }
    }
    let mut remaining = target - sum;
    while remaining > 0 {
        let steps: Vec<(usize, u32, f64)> = free
            .iter()
            .filter_map(|&i| {
                let item = &inst.items[i];
                let current = out[i]?;
                let next = item.choices().into_iter().find(|c| *c > current)?;
                let span = f64::from((item.max - item.min).max(1));
                let headroom = f64::from(item.max - current) / span;
                (i64::from(next - current) <= remaining).then_some((i, next, weights.get(i).copied().unwrap_or(1.0) * (0.2 + headroom)))
            })
            .collect();
        let total: f64 = steps.iter().map(|s| s.2).sum();
        if steps.is_empty() || total <= 0.0 {
            break;
        }
        let mut r = rng.gen::<f64>() * total;
        let mut chosen = steps[steps.len() - 1];
        for s in &steps {
            if r < s.2 {
                chosen = *s;
                break;
            }
            r -= s.2;
        }
        let (i, next, _) = chosen;
        remaining -= i64::from(next - out[i].unwrap_or(0));
        out[i] = Some(next);
    }
    let (lo, hi) = inst.total_range();
    let (lo, hi) = (lo.to_string().parse::<f64>().unwrap_or(0.0), hi.to_string().parse::<f64>().unwrap_or(1.0));
    let position = if hi > lo { ((target as f64 - lo) / (hi - lo)).clamp(0.0, 1.0) } else { 0.5 };
    for (i, item) in inst.items.iter().enumerate() {
        if !item.scored && !fixed.iter().any(|(k, _)| *k == item.key) {
            out[i] = Some(nearest(item, f64::from(item.min) + position * f64::from(item.max - item.min) + noise(rng, 1.0)));
        }
    }
    out
}

/// The allowed answer of `item` nearest to `x`.
fn nearest(item: &ItemDef, x: f64) -> u32 {
    item.choices().into_iter().min_by(|a, b| (f64::from(*a) - x).abs().total_cmp(&(f64::from(*b) - x).abs())).unwrap_or(item.min)
}

/// Answers as typed: numbers, `y`/`n`, and `-` (yes/no) or nothing (numbers) for a blank.
pub(crate) fn typed(inst: &Instrument, answers: &[Option<u32>]) -> Vec<String> {
    inst.items
        .iter()
        .zip(answers)
        .map(|(item, a)| match (item.kind, a) {
            (AnswerKind::YesNo, Some(0)) => "n".to_owned(),
            (AnswerKind::YesNo, Some(_)) => "y".to_owned(),
            (AnswerKind::YesNo, None) => "-".to_owned(),
            (AnswerKind::Number, Some(v)) => v.to_string(),
            (AnswerKind::Number, None) => String::new(),
        })
        .collect()
}

/// Builds one patient's administrations.
struct Generator<'a> {
    rng: &'a mut ChaCha8Rng,
    instruments: &'a [Instrument],
    course: &'a Course,
    roles: Roles,
    patient: Patient,
    /// Item weights per instrument, drawn at first use.
    weights: Vec<(&'static str, Vec<f64>)>,
    /// Bladder-symptom indices given so far.
    icsi_given: usize,
    out: Vec<PlannedAssessment>,
}

impl Generator<'_> {
    fn instrument(&self, key: &str) -> Result<&Instrument, AppError> {
        self.instruments.iter().find(|i| i.key == key).ok_or_else(|| AppError::Internal(format!("the demo needs the instrument {key}")))
    }

    fn weights(&mut self, key: &'static str, items: usize) -> Vec<f64> {
        if let Some((_, w)) = self.weights.iter().find(|(k, _)| *k == key) {
            return w.clone();
        }
        let w: Vec<f64> = (0..items).map(|_| self.rng.gen_range(0.4..1.4)).collect();
        self.weights.push((key, w.clone()));
        w
    }

    /// Adds an administration whose scored items add up to `total`, at a time point of a session
    /// or (`None`) outside any session.
    fn give(
        &mut self,
        key: &'static str,
        at: NaiveDateTime,
        time_point: Option<(&Session, &'static str)>,
        rater: Rater,
        total: i64,
        fixed: &[(&str, Option<u32>)],
    ) -> Result<(), AppError> {
        let inst = self.instrument(key)?.clone();
        let weights = self.weights(key, inst.items.len());
        let answers = spread(self.rng, &inst, total, &weights, fixed);
        self.out.push(PlannedAssessment {
            instrument: key,
            at,
            session: time_point.map(|(s, _)| s.record),
            timepoint: time_point.map(|(_, tp)| tp),
            rater,
            answers: typed(&inst, &answers),
            note: String::new(),
        });
        Ok(())
    }

    fn scaled(&mut self, base: i64, level: f64, a: f64) -> i64 {
        (base as f64 * level + noise(self.rng, a)).round() as i64
    }

    fn gad7(&mut self, at: NaiveDateTime, session: Option<&Session>, tp: &'static str, level: f64) -> Result<(), AppError> {
        let total = self.scaled(self.patient.gad7, level, 2.0);
        self.give("gad7", at, session.map(|s| (s, tp)), Rater::Nurse, total, &[])
    }

    fn hama(&mut self, at: NaiveDateTime, session: Option<&Session>, tp: &'static str, level: f64) -> Result<(), AppError> {
        let total = self.scaled(self.patient.hama, level, 3.0);
        self.give("hama", at, session.map(|s| (s, tp)), Rater::Prescriber, total, &[])
    }

    fn vas(&mut self, at: NaiveDateTime, session: &Session, tp: &'static str, level: f64) -> Result<(), AppError> {
        let total = self.scaled(self.patient.vas, level, 8.0);
        self.give("vas_anxiety", at, Some((session, tp)), Rater::Nurse, total, &[])
    }

    /// PHQ-9 with item 9 at 0 (the suicide-risk item is set only by [`Generator::ideation`]).
    fn phq9(&mut self, at: NaiveDateTime, level: f64) -> Result<(), AppError> {
        let total = self.scaled(self.patient.phq9, 0.35 + 0.65 * level, 2.0);
        self.give("phq9", at, None, Rater::Nurse, total, &[("q9", Some(0))])
    }

    fn lsas(&mut self, at: NaiveDateTime, level: f64) -> Result<(), AppError> {
        let total = self.scaled(self.patient.lsas, 0.3 + 0.7 * level, 6.0);
        self.give("lsas", at, None, Rater::Prescriber, total, &[])
    }

    /// Function, quality of life and (for the showcase) phobic avoidance.
    fn function(&mut self, at: NaiveDateTime, level: f64) -> Result<(), AppError> {
        let sds = self.scaled(self.patient.sds, 0.15 + 0.85 * level, 2.5).clamp(0, 30);
        let share = sds as f64 / 30.0;
        let lost = (share * share * 5.0 + noise(self.rng, 0.8)).round().clamp(0.0, 7.0) as u32;
        let unproductive = (share * 6.0 + noise(self.rng, 1.0)).round().clamp(f64::from(lost), 7.0) as u32;
        self.give("sds", at, None, Rater::Nurse, sds, &[("days_lost", Some(lost)), ("days_unproductive", Some(unproductive))])?;
        let base = self.patient.qlesq as f64;
        let q = (base + (62.0 - base) * (1.0 - level).max(0.0) * 0.85 + noise(self.rng, 3.0)).round() as i64;
        let blank: &[(&str, Option<u32>)] = if self.course.on_medication { &[] } else { &[("q15", None)] };
        self.give("qlesq_sf", at + minutes(4), None, Rater::Nurse, q, blank)?;
        if self.roles.showcase {
            let fq = self.scaled(self.patient.fq, level, 5.0);
            self.give("fq", at + minutes(8), None, Rater::Nurse, fq, &[])?;
        }
        Ok(())
    }

    /// Bladder symptoms: mostly low; one patient's rise over maintenance.
    fn icsi(&mut self, at: NaiveDateTime) -> Result<(), AppError> {
        let total =
            if self.roles.icsi_rising { (1 + 3 * self.icsi_given as i64).min(14) } else { [0, 0, 1, 1, 2, 3][self.rng.gen_range(0..6)] };
        self.icsi_given += 1;
        self.give("icsi", at, None, Rater::Nurse, total, &[])?;
        if self.roles.icsi_rising && total >= 7 {
            if let Some(last) = self.out.last_mut() {
                last.note = "Bladder symptoms rising on maintenance: urine dipstick and culture sent, urology referral discussed.".into();
            }
        }
        Ok(())
    }

    fn observations(&mut self, session: &Session, at: NaiveDateTime, with_cadss: bool, with_moaas: bool) -> Result<(), AppError> {
        let mean = match session.dosing {
            Dosing::Ascending(0) => 5.0,
            Dosing::Ascending(1) => 10.0,
            Dosing::Ascending(_) => 20.0,
            Dosing::Maintenance { n, .. } => 9.0 + 11.0 * (-(n as f64) / 5.0).exp(),
            Dosing::Infusion(k) => 7.0 + 9.0 * (-(k as f64) / 3.0).exp(),
        };
        if with_cadss {
            let cadss = (mean * self.patient.dissociation + noise(self.rng, 4.0)).round().max(0.0) as i64;
            self.give("cadss", at + minutes(2), Some((session, "1h")), Rater::Nurse, cadss, &[])?;
        }
        if with_moaas {
            let lethargic = match session.dosing {
                Dosing::Ascending(0) => 0.03,
                Dosing::Ascending(1) => 0.08,
                Dosing::Ascending(_) => 0.25,
                Dosing::Maintenance { .. } => 0.1,
                Dosing::Infusion(_) => 0.12,
            };
            let moaas = if self.rng.gen_bool(lethargic) { 4 } else { 5 };
            self.give("moaas", at, Some((session, "1h")), Rater::Nurse, moaas, &[])?;
        }
        Ok(())
    }

    /// Baseline ratings during the screening visit.
    fn screening(&mut self) -> Result<(), AppError> {
        let t = self.course.screening;
        let p = &self.patient;
        let (gad7, phq9, hama, lsas, sds) = (p.gad7, p.phq9, p.hama, p.lsas, p.sds);
        self.give("gad7", t + minutes(10), None, Rater::Nurse, gad7, &[])?;
        self.give("phq9", t + minutes(13), None, Rater::Nurse, phq9, &[("q9", Some(0))])?;
        self.give("hama", t + minutes(25), None, Rater::Prescriber, hama, &[])?;
        if self.course.sad {
            self.give("lsas", t + minutes(40), None, Rater::Prescriber, lsas, &[])?;
        }
        if self.course.maintenance || self.roles.full_protocol {
            // Exact baselines for function and quality of life, then bladder symptoms before
            // repeated dosing.
            self.give("sds", t + minutes(16), None, Rater::Nurse, sds, &[])?;
            let (q, fq) = (self.patient.qlesq, self.patient.fq);
            let blank: &[(&str, Option<u32>)] = if self.course.on_medication { &[] } else { &[("q15", None)] };
            self.give("qlesq_sf", t + minutes(19), None, Rater::Nurse, q, blank)?;
            if self.roles.showcase {
                self.give("fq", t + minutes(22), None, Rater::Nurse, fq, &[])?;
            }
            self.icsi(t + minutes(50))?;
        }
        Ok(())
    }

    fn sessions(&mut self, levels: &[Levels], cutoff: NaiveDateTime) -> Result<(), AppError> {
        let course = self.course;
        let first = course.sessions.first().map(|s| s.start);
        let (mut reviews, mut since_icsi) = (0_i64, 0_usize);
        for (s, session) in course.sessions.iter().enumerate() {
            let l = levels[s];
            let start = session.start;
            let full = self.roles.showcase || (self.roles.full_protocol && (cutoff - start).num_days() <= SCHEDULED_DAYS);
            let pre = start - minutes(self.rng.gen_range(15..=40));
            let one_hour = start + minutes(60 + self.rng.gen_range(0..=12));
            let day = start + minutes(24 * 60 + self.rng.gen_range(-90..=150));
            let next = course.sessions.get(s + 1).map(|n| n.start);
            let induction = !session.dosing.is_maintenance();
            // Four-weekly review of function, quality of life, depression and bladder symptoms.
            let review = (course.maintenance || self.roles.full_protocol)
                && first.is_some_and(|f| (start - f).num_days() >= REVIEW_EVERY_DAYS * (reviews + 1));
            if review {
                reviews += 1;
                let at = pre - minutes(30);
                self.phq9(at, l.pre)?;
                self.function(at + minutes(3), l.pre)?;
                if course.sad {
                    self.lsas(at + minutes(15), l.pre)?;
                }
                if !induction {
                    self.hama(pre - minutes(5), Some(session), "pre", l.pre)?;
                }
                since_icsi += 1;
                if since_icsi == ICSI_EVERY_REVIEWS {
                    since_icsi = 0;
                    self.icsi(at + minutes(12))?;
                }
            }
            // Pre-dose.
            let infusion_edge = matches!(session.dosing, Dosing::Infusion(k) if k == 0 || k + 1 == INFUSIONS);
            let ascending = matches!(session.dosing, Dosing::Ascending(_));
            // Twice-weekly maintenance rates anxiety before the first session of the week.
            let weekly = !matches!(session.dosing, Dosing::Maintenance { n, twice_weekly: true } if n % 2 == 1);
            // Before the first dose the screening rating stands as the pre-dose value.
            if (ascending && (full || session.dosing != Dosing::Ascending(0))) || infusion_edge {
                self.hama(pre, Some(session), "pre", l.pre)?;
            }
            if (!induction && weekly) || full {
                self.gad7(pre + minutes(3), Some(session), "pre", l.pre)?;
            }
            if self.roles.showcase && induction {
                self.vas(pre + minutes(5), session, "pre", l.pre)?;
            }
            // An hour after dosing: anxiety, dissociation and sedation.
            if ascending || infusion_edge {
                self.hama(one_hour + minutes(5), Some(session), "1h", l.one_hour)?;
            }
            if full {
                self.gad7(one_hour + minutes(8), Some(session), "1h", l.one_hour)?;
            }
            if self.roles.showcase && induction {
                self.vas(one_hour + minutes(10), session, "1h", l.one_hour)?;
            }
            // Dissociation at every dose of the course and the first maintenance sessions, then
            // monthly; sedation at the highest dose, the first infusion and monthly.
            let early_maintenance = matches!(session.dosing, Dosing::Maintenance { n, .. } if n < 2);
            let cadss = full || review || induction || early_maintenance;
            let moaas =
                full || review || matches!(session.dosing, Dosing::Ascending(2) | Dosing::Infusion(0) | Dosing::Maintenance { n: 0, .. });
            self.observations(session, one_hour, cadss, moaas)?;
            // The next day after the 0.5 and 1 mg/kg doses and the first and last infusions, and a
            // week after the last session if no maintenance follows.
            if matches!(session.dosing, Dosing::Ascending(1 | 2)) || infusion_edge || full {
                self.gad7(day, Some(session), "24h", l.day)?;
            }
            let week_gap = next.is_none_or(|n| (n - start).num_days() >= 6);
            let last_of_course = next.is_none() && !course.maintenance;
            if (full && week_gap) || last_of_course {
                // The evening before the day a week after the session.
                let evening = NaiveTime::from_hms_opt(self.rng.gen_range(18..=21), self.rng.gen_range(0..60), 0).unwrap_or_default();
                let at = (start.date() + TimeDelta::days(6)).and_time(evening);
                self.gad7(at, Some(session), "7d", l.week)?;
            }
        }
        Ok(())
    }

    /// Reviews after the course: anxiety, depression (with comorbid depression, after
    /// maintenance, and where the PHQ-9 item 9 story needs it) and bladder symptoms after
    /// maintenance.
    fn reviews(&mut self, level: f64) -> Result<(), AppError> {
        let course = self.course;
        for &at in &course.reviews {
            self.gad7(at + minutes(5), None, "", level)?;
            if course.depression || course.maintenance || self.roles.ideation.is_some() {
                self.phq9(at + minutes(8), level)?;
            }
            if course.maintenance {
                self.icsi(at + minutes(11))?;
            }
        }
        Ok(())
    }

    /// Sets item 9 of the latest PHQ-9 to 1 (raising an alert when recorded) and adds the
    /// C-SSRS screener the clinician gave straight after.
    fn ideation(&mut self, screen: Screen, cutoff: NaiveDateTime) -> Result<(), AppError> {
        let inst = self.instrument("phq9")?;
        let Some(q9) = inst.items.iter().position(|i| i.key == "q9") else {
            return Err(AppError::Internal("PHQ-9 has no item q9".into()));
        };
        let Some(last) = self.out.iter_mut().filter(|a| a.instrument == "phq9").max_by_key(|a| a.at) else { return Ok(()) };
        last.answers[q9] = "1".into();
        last.note = "Item 9 positive on the paper form; suicide risk screen done straight after.".into();
        let at = last.at + minutes(20);
        if at >= cutoff {
            return Ok(());
        }
        let (answers, note) = match screen {
            Screen::Low => (["y", "n", "-", "-", "-", "n", "-"], "Passive wish to be dead, no active thoughts; safety plan reviewed."),
            Screen::Moderate => (["y", "y", "y", "n", "n", "n", "-"], "Active thoughts with a method, no intent or plan."),
        };
        self.out.push(PlannedAssessment {
            instrument: "cssrs_screener",
            at,
            session: None,
            timepoint: None,
            rater: Rater::Prescriber,
            answers: answers.iter().map(|s| (*s).to_owned()).collect(),
            note: note.into(),
        });
        Ok(())
    }
}

/// Every administration of one patient's course, oldest first, all before `cutoff`.
pub(crate) fn plan_assessments(
    rng: &mut ChaCha8Rng,
    course: &Course,
    roles: Roles,
    instruments: &[Instrument],
    cutoff: NaiveDateTime,
) -> Result<Vec<PlannedAssessment>, AppError> {
    let patient = Patient {
        gad7: rng.gen_range(if course.gad { GAD7_BASELINE_GAD } else { GAD7_BASELINE_OTHER }),
        hama: rng.gen_range(if course.gad { HAMA_BASELINE_GAD } else { HAMA_BASELINE_OTHER }),
        phq9: rng.gen_range(if course.depression { PHQ9_BASELINE_DEPRESSED } else { PHQ9_BASELINE_OTHER }),
        lsas: rng.gen_range(LSAS_BASELINE),
        sds: rng.gen_range(SDS_BASELINE),
        qlesq: rng.gen_range(QLESQ_BASELINE),
        fq: rng.gen_range(FQ_BASELINE),
        vas: rng.gen_range(VAS_BASELINE),
        dissociation: rng.gen_range(0.7..1.3),
    };
    let (levels, after) = trajectory(rng, course);
    let mut g = Generator { rng, instruments, course, roles, patient, weights: Vec::new(), icsi_given: 0, out: Vec::new() };
    g.screening()?;
    g.sessions(&levels, cutoff)?;
    g.reviews(after)?;
    g.out.retain(|a| a.at < cutoff);
    if let Some(screen) = roles.ideation {
        g.ideation(screen, cutoff)?;
    }
    let mut out = g.out;
    out.sort_by_key(|a| a.at);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn instruments() -> Vec<Instrument> {
        ketacare_knowledge::Knowledge::load().unwrap().instruments
    }

    #[test]
    fn spread_hits_the_target_within_the_item_ranges() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for inst in instruments().iter().filter(|i| i.has_total) {
            let (lo, hi) = inst.total_range();
            let (lo, hi): (i64, i64) = (lo.to_string().parse().unwrap(), hi.to_string().parse().unwrap());
            let weights = vec![1.0; inst.items.len()];
            for target in [lo, (lo + hi) / 3, (lo + hi) / 2, hi - 1, hi] {
                let answers = spread(&mut rng, inst, target, &weights, &[]);
                let score = inst.score(&answers, None).unwrap_or_else(|e| panic!("{}: {e:?}", inst.key));
                let total: i64 = score.total.unwrap().to_string().parse().unwrap();
                // ICSI's pain item has no answer 1, so an odd remainder may be one short.
                assert!((total - target).abs() <= 1, "{} target {target} got {total}", inst.key);
                for (item, a) in inst.items.iter().zip(&answers) {
                    if let Some(v) = a {
                        assert!(item.choices().contains(v), "{} {} = {v}", inst.key, item.key);
                    }
                }
            }
        }
    }
}
