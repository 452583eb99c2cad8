//! The pure, deterministic part: every patient of the demo clinic as raw input, before any of
//! it reaches the application. Same seed, same clinic.

use crate::data::{Drug, ADJUNCT_DRUGS, ALLERGIES, COMORBIDITIES, FAMILY, FEMALE_GIVEN, MALE_GIVEN, NEUTRAL_GIVEN, RELATIONS, TRIAL_DRUGS};
use crate::outcomes::{self, Course, Dosing, PlannedAssessment, Roles, Screen, Session, INFUSIONS};
use chrono::{Months, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta};
use ketacare_app::{AppError, MeasurementInput, RecordInput};
use ketacare_domain::assessment::ScheduleInput;
use ketacare_domain::instrument::Instrument;
use ketacare_domain::patient::DemographicsInput;
use ketacare_domain::record::{AllergyInput, DiagnosisInput, EncounterInput, MedicationInput};
use rand::distributions::{Distribution, WeightedIndex};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::ops::RangeInclusive;

/// Seed of the generator.
const SEED: u64 = 2026;
/// Nothing in the demo happens on or after this day, so all of it is in the past.
const CUTOFF: (i32, u32, u32) = (2026, 11, 1);
/// The clinic's first screening visit.
const OPENING: (i32, u32, u32) = (2025, 1, 6);
/// Screenings stop this many days before the cutoff, so every patient has a later visit.
const LAST_SCREENING_DAYS_BEFORE_CUTOFF: i64 = 60;
/// Age on the cutoff day.
const AGE_YEARS: RangeInclusive<u32> = 19..=75;
/// Patients are screened as adults only.
const ADULT_YEARS: u32 = 18;
/// Earliest age at which anxiety symptoms are dated in the demo.
const EARLIEST_ONSET_YEARS: u32 = 12;
/// Onset of each disorder, years before screening.
const ONSET_YEARS_BEFORE: RangeInclusive<u32> = 2..=15;
/// Administrative sex with weights in percent (anxiety disorders are commoner in women).
const SEXES: &[(&str, u32)] = &[("female", 58), ("male", 38), ("other", 4)];
/// Height in millimetres by sex.
const HEIGHT_MM: &[(&str, RangeInclusive<i64>)] = &[("female", 1520..=1780), ("male", 1630..=1950), ("other", 1550..=1850)];
/// BMI in tenths at the first weighing, and the band later weights stay inside.
const START_BMI_TENTHS: RangeInclusive<i64> = 195..=380;
const BMI_BAND_TENTHS: (i64, i64) = (185, 400);
/// Change between consecutive weights, per mille (kept well inside the app's warning threshold).
const WEIGHT_DRIFT_PER_MILLE: RangeInclusive<i64> = -25..=25;
/// How many weights each patient has (capped by the number of visits).
const WEIGHINGS: RangeInclusive<usize> = 2..=5;
/// Shares of patients with each catalogue diagnosis; everyone has GAD or social anxiety.
const DIAGNOSIS_SHARES: &[(&str, f64)] = &[("gad", 0.65), ("sad", 0.45), ("panic", 0.15), ("specific_phobia", 0.12)];
const COMORBIDITY_SHARE: f64 = 0.3;
/// Failed adequate trials before referral, their length in weeks (at least eight to count).
const FAILED_TRIALS: RangeInclusive<usize> = 2..=3;
const TRIAL_WEEKS: RangeInclusive<i64> = 8..=40;
const CURRENT_MEDICATION_SHARE: f64 = 0.75;
const ADJUNCT_SHARE: f64 = 0.35;
const ALLERGY_SHARE: f64 = 0.2;
const EMAIL_SHARE: f64 = 0.6;
const EMERGENCY_CONTACT_SHARE: f64 = 0.85;
/// Patients old enough that an adult child is a plausible emergency contact.
const PARENT_AGE_YEARS: u32 = 45;
/// Share who start a ketamine course (the rest have follow-up reviews): 40 of 64. A fixed count,
/// because every course adds rating scales and so time to seeding.
const TREATMENT_SHARE: f64 = 0.625;
/// Share of courses given as a series of intravenous infusions (twice weekly) instead of the
/// weekly ascending subcutaneous doses.
const INFUSION_SHARE: f64 = 0.1;
/// Days from screening to the first dose.
const FIRST_DOSE_DAYS: RangeInclusive<i64> = 14..=35;
/// About two patients in three respond; some of them remit.
const RESPONDER_SHARE: f64 = 0.67;
const REMITTER_SHARE: f64 = 0.3;
/// Share of subcutaneous responders who go on to maintenance (Glue 2018), how often and how long.
const MAINTENANCE_SHARE: f64 = 0.35;
const TWICE_WEEKLY_SHARE: f64 = 0.3;
const MAINTENANCE_WEEKS: RangeInclusive<i64> = 6..=12;
const TWICE_WEEKLY_WEEKS: RangeInclusive<i64> = 4..=8;
/// Days from the last session to the review after the course.
const REVIEW_AFTER_DAYS: RangeInclusive<i64> = 14..=35;
const FOLLOW_UPS: RangeInclusive<usize> = 1..=2;
/// Patient KC-000001 (the showcase) is screened on this day and stays on weekly maintenance
/// until the cutoff: over four months of rating scales.
const SHOWCASE_SCREENING: (i32, u32, u32) = (2026, 6, 22);
/// How many other patients treated recently get assessment schedules like the showcase.
const SCHEDULED_OTHERS: usize = 2;
/// Visit lengths in minutes.
const SCREENING_MINUTES: i64 = 60;
const SESSION_MINUTES: i64 = 120;
const FOLLOW_UP_MINUTES: i64 = 30;
/// Date-time format of the application's inputs.
pub(crate) const DT: &str = "%Y-%m-%dT%H:%M";
const D: &str = "%Y-%m-%d";

/// One patient as raw input.
pub(crate) struct PatientPlan {
    pub demographics: DemographicsInput,
    /// Diagnoses, medications, allergies and encounters, in that order.
    pub records: Vec<RecordInput>,
    pub height: MeasurementInput,
    /// Oldest first.
    pub weights: Vec<MeasurementInput>,
    /// Only for the first patient: a record history to show.
    pub showcase: Option<Showcase>,
    /// The ketamine course, if the patient started one.
    pub course: Option<Course>,
    /// Rating scales, oldest first (sessions refer to [`PatientPlan::records`]).
    pub assessments: Vec<PlannedAssessment>,
    /// Standing orders for rating scales.
    pub schedules: Vec<ScheduleInput>,
    /// A questionnaire link sent when the clinic is seeded (instrument key), left open.
    pub link: Option<&'static str>,
}

/// One visit before it becomes an encounter.
struct Visit {
    kind: &'static str,
    start: NaiveDateTime,
    minutes: i64,
    reason: String,
    dosing: Option<Dosing>,
}

/// An amended medication and a voided allergy.
pub(crate) struct Showcase {
    /// Index into [`PatientPlan::records`] of the medication to amend.
    pub medication: usize,
    pub corrected: RecordInput,
    pub wrong_allergy: RecordInput,
}

fn ymd((y, m, d): (i32, u32, u32)) -> Result<NaiveDate, AppError> {
    NaiveDate::from_ymd_opt(y, m, d).ok_or_else(|| AppError::Internal(format!("bad demo date {y}-{m}-{d}")))
}

fn shift_years(d: NaiveDate, years: u32, forward: bool) -> Result<NaiveDate, AppError> {
    let m = Months::new(12 * years);
    if forward { d.checked_add_months(m) } else { d.checked_sub_months(m) }
        .ok_or_else(|| AppError::Internal("demo date out of range".into()))
}

fn days(n: i64) -> TimeDelta {
    TimeDelta::days(n)
}

/// A day in `from..=to` (or `from` if the range is empty).
fn between(rng: &mut ChaCha8Rng, from: NaiveDate, to: NaiveDate) -> NaiveDate {
    from + days(rng.gen_range(0..=(to - from).num_days().max(0)))
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, xs: &'a [T]) -> &'a T {
    &xs[rng.gen_range(0..xs.len())]
}

fn phone(rng: &mut ChaCha8Rng) -> String {
    format!("+44 20 7946 0{:03}", rng.gen_range(0..1000))
}

/// Lower-case ASCII letters and digits of a name, for e-mail addresses.
fn ascii_slug(s: &str) -> String {
    s.to_lowercase()
        .chars()
        .filter_map(|c| match c {
            'á' | 'à' | 'ä' | 'å' => Some('a'),
            'é' | 'è' | 'ë' => Some('e'),
            'í' => Some('i'),
            'ó' | 'ö' | 'ø' => Some('o'),
            'ú' | 'ü' => Some('u'),
            'ñ' => Some('n'),
            'ć' | 'č' => Some('c'),
            c if c.is_ascii_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

/// Weight in tenths of a kilogram for a BMI in tenths and a height in millimetres.
fn weight_tenths(bmi_tenths: i64, height_mm: i64) -> i64 {
    bmi_tenths * height_mm * height_mm / 1_000_000
}

fn tenths(v: i64) -> String {
    format!("{}.{}", v / 10, v % 10)
}

/// The whole demo clinic; `instruments` are the rating-scale definitions in force, so every
/// planned answer fits its item.
pub(crate) fn plan_clinic(patients: usize, instruments: &[Instrument]) -> Result<Vec<PatientPlan>, AppError> {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let (cutoff, opening) = (ymd(CUTOFF)?, ymd(OPENING)?);
    // Who starts a course: the showcase and a fixed number of the others.
    let mut others: Vec<usize> = (2..=patients).collect();
    others.shuffle(&mut rng);
    others.truncate(((patients as f64 * TREATMENT_SHARE).round() as usize).saturating_sub(1));
    let mut plans =
        (1..=patients).map(|n| plan_patient(&mut rng, n, n == 1 || others.contains(&n), cutoff, opening)).collect::<Result<Vec<_>, _>>()?;
    let cutoff_start = cutoff.and_time(NaiveTime::MIN);
    let roles = assign_roles(&plans, cutoff_start);
    for (i, (p, roles)) in plans.iter_mut().zip(roles).enumerate() {
        let Some(course) = &p.course else { continue };
        // Each patient's rating scales come from their own stream of the same seed.
        let mut stream = ChaCha8Rng::seed_from_u64(SEED);
        stream.set_stream(i as u64 + 1);
        p.assessments = outcomes::plan_assessments(&mut stream, course, roles, instruments, cutoff_start)?;
        if roles.full_protocol {
            let first_maintenance = course.sessions.iter().find(|s| matches!(s.dosing, Dosing::Maintenance { .. }));
            p.schedules = vec![
                ScheduleInput {
                    instrument: "gad7".into(),
                    anchor: "session".into(),
                    timepoints: ["pre", "1h", "24h", "7d"].map(String::from).to_vec(),
                    ..Default::default()
                },
                ScheduleInput {
                    instrument: "sds".into(),
                    anchor: "calendar".into(),
                    interval_days: "28".into(),
                    start: first_maintenance.map_or(course.screening, |s| s.start).format(D).to_string(),
                    ..Default::default()
                },
            ];
        }
        if roles.showcase {
            p.link = Some("sds");
        }
    }
    Ok(plans)
}

/// Gives the stories to patients once the clinic is planned: the showcase (the first patient,
/// with a PHQ-9 item 9 followed by a low-risk screen), rising bladder symptoms for the longest
/// maintenance, a moderate-risk screen for the non-responder reviewed most recently, and
/// session and calendar schedules for the other patients treated most recently.
fn assign_roles(plans: &[PatientPlan], cutoff: NaiveDateTime) -> Vec<Roles> {
    let mut roles = vec![Roles::default(); plans.len()];
    let courses: Vec<(usize, &Course)> =
        plans.iter().enumerate().filter_map(|(i, p)| p.course.as_ref().map(|c| (i, c))).filter(|(_, c)| !c.sessions.is_empty()).collect();
    if let Some(r) = roles.first_mut().filter(|_| courses.first().is_some_and(|c| c.0 == 0)) {
        *r = Roles { showcase: true, full_protocol: true, ideation: Some(Screen::Low), icsi_rising: false };
    }
    let others = || courses.iter().filter(|(i, _)| *i != 0);
    // Days from the first to the last maintenance session.
    let maintained = |c: &Course| {
        let mut m = c.sessions.iter().filter(|s| matches!(s.dosing, Dosing::Maintenance { .. })).map(|s| s.start);
        m.next().map_or(0, |first| m.next_back().map_or(0, |last| (last - first).num_days()))
    };
    if let Some((i, _)) = others().filter(|(_, c)| c.maintenance).max_by_key(|(i, c)| (maintained(c), std::cmp::Reverse(*i))) {
        roles[*i].icsi_rising = true;
    }
    let reviewed = others().filter(|(_, c)| !c.responder && !c.reviews.is_empty());
    if let Some((i, _)) = reviewed.max_by_key(|(i, c)| (c.reviews.last().copied(), std::cmp::Reverse(*i))) {
        roles[*i].ideation = Some(Screen::Moderate);
    }
    let last = |c: &Course| c.sessions.last().map(|s| s.start);
    let mut recent: Vec<&(usize, &Course)> = others()
        .filter(|(i, c)| roles[*i].ideation.is_none() && last(c).is_some_and(|l| (cutoff - l).num_days() <= outcomes::SCHEDULED_DAYS))
        .collect();
    recent.sort_by_key(|(i, c)| (std::cmp::Reverse(last(c)), *i));
    for (i, _) in recent.into_iter().take(SCHEDULED_OTHERS) {
        roles[*i].full_protocol = true;
    }
    roles
}

fn plan_patient(rng: &mut ChaCha8Rng, n: usize, on_course: bool, cutoff: NaiveDate, opening: NaiveDate) -> Result<PatientPlan, AppError> {
    // Who.
    let sexes = WeightedIndex::new(SEXES.iter().map(|s| s.1)).map_err(|e| AppError::Internal(e.to_string()))?;
    let sex = SEXES[sexes.sample(rng)].0;
    let given = *pick(
        rng,
        match sex {
            "female" => FEMALE_GIVEN,
            "male" => MALE_GIVEN,
            _ => NEUTRAL_GIVEN,
        },
    );
    let family = *pick(rng, FAMILY);
    let age = rng.gen_range(AGE_YEARS);
    let dob = shift_years(cutoff, age, false)? - days(rng.gen_range(1..365));
    let email = if rng.gen_bool(EMAIL_SHARE) { format!("{}.{}@example.org", ascii_slug(given), ascii_slug(family)) } else { String::new() };
    let phone_no = phone(rng);
    let mut demographics = DemographicsInput {
        mrn: format!("KC-{n:06}"),
        family_name: family.into(),
        given_name: given.into(),
        date_of_birth: dob.format(D).to_string(),
        sex: sex.into(),
        phone: phone_no,
        email,
        ..Default::default()
    };
    if rng.gen_bool(EMERGENCY_CONTACT_SHARE) {
        let fits: Vec<_> = RELATIONS.iter().filter(|r| !r.child || age >= PARENT_AGE_YEARS).collect();
        let r = *pick(rng, &fits);
        let their_family = if r.relative { family } else { *pick(rng, FAMILY) };
        demographics.emergency_name = format!("{} {their_family}", pick(rng, r.given));
        demographics.emergency_relationship = r.name.into();
        demographics.emergency_phone = phone(rng);
    }

    // When: a screening visit, then a ketamine course or follow-up reviews, all before the cutoff.
    let earliest = opening.max(shift_years(dob, ADULT_YEARS, true)? + days(30));
    let mut screening_day = between(rng, earliest, cutoff - days(LAST_SCREENING_DAYS_BEFORE_CUTOFF));
    let showcase_patient = n == 1;
    if showcase_patient {
        screening_day = ymd(SHOWCASE_SCREENING)?.max(earliest);
    }
    let at = |day: NaiveDate, rng: &mut ChaCha8Rng| -> Result<NaiveDateTime, AppError> {
        let t = NaiveTime::from_hms_opt(rng.gen_range(8..=15), *pick(rng, &[0, 30]), 0)
            .ok_or_else(|| AppError::Internal("bad demo time".into()))?;
        Ok(day.and_time(t))
    };
    let visit = |kind, start, minutes, reason: &str| Visit { kind, start, minutes, reason: reason.to_owned(), dosing: None };
    let mut visits = vec![visit("screening", at(screening_day, rng)?, SCREENING_MINUTES, "Screening and eligibility assessment")];
    let mut day = screening_day + days(if showcase_patient { 14 } else { rng.gen_range(FIRST_DOSE_DAYS) });
    let cutoff_start = cutoff.and_time(NaiveTime::MIN);
    // A ketamine course: who responds is decided up front, as the rating scales follow it.
    let mut course = None;
    if on_course {
        let infusions = !showcase_patient && rng.gen_bool(INFUSION_SHARE);
        let responder = showcase_patient || rng.gen_bool(RESPONDER_SHARE);
        let remitter = responder && rng.gen_bool(REMITTER_SHARE);
        let maintenance = showcase_patient || (responder && !infusions && rng.gen_bool(MAINTENANCE_SHARE));
        let twice_weekly = maintenance && !showcase_patient && rng.gen_bool(TWICE_WEEKLY_SHARE);
        // Sessions at the patient's usual time of day.
        let slot = at(day, rng)?.time();
        let mut doses = Vec::new();
        if infusions {
            for k in 0..INFUSIONS {
                doses.push((day, Dosing::Infusion(k)));
                day += days(if k % 2 == 0 { 3 } else { 4 });
            }
        } else {
            for step in 0..3 {
                doses.push((day, Dosing::Ascending(step)));
                day += days(7);
            }
            if maintenance {
                let end = if showcase_patient {
                    cutoff
                } else {
                    day + days(7 * rng.gen_range(if twice_weekly { TWICE_WEEKLY_WEEKS } else { MAINTENANCE_WEEKS }))
                };
                let mut n = 0;
                while day < end {
                    doses.push((day, Dosing::Maintenance { n, twice_weekly }));
                    day += days(if !twice_weekly {
                        7
                    } else if n % 2 == 0 {
                        3
                    } else {
                        4
                    });
                    n += 1;
                }
            }
        }
        for (d, dosing) in &doses {
            visits.push(Visit { dosing: Some(*dosing), ..visit("treatment", d.and_time(slot), SESSION_MINUTES, &dosing.reason()) });
        }
        let last = doses.last().map_or(day, |d| d.0);
        let reason = match (infusions, maintenance) {
            (true, _) => "Review after the intravenous ketamine series",
            (_, true) => "Review after maintenance ketamine",
            _ => "Review after the ascending-dose ketamine course",
        };
        visits.push(visit("follow_up", at(last + days(rng.gen_range(REVIEW_AFTER_DAYS)), rng)?, FOLLOW_UP_MINUTES, reason));
        course = Some((responder, remitter, maintenance));
    } else {
        for _ in 0..rng.gen_range(FOLLOW_UPS) {
            visits.push(visit("follow_up", at(day, rng)?, FOLLOW_UP_MINUTES, "Review of treatment options"));
            day += days(rng.gen_range(21..=42));
        }
    }
    visits.retain(|v| v.start < cutoff_start);

    // Diagnoses.
    let mut records = Vec::new();
    let mut keys: Vec<&str> = DIAGNOSIS_SHARES.iter().filter(|d| rng.gen_bool(d.1)).map(|d| d.0).collect();
    if !keys.iter().any(|k| ["gad", "sad"].contains(k)) {
        keys.insert(0, if rng.gen_bool(0.5) { "gad" } else { "sad" });
    }
    // The showcase has both, so every anxiety scale applies.
    for key in ["sad", "gad"] {
        if showcase_patient && !keys.contains(&key) {
            keys.insert(0, key);
        }
    }
    let failed = rng.gen_range(FAILED_TRIALS);
    let youngest_onset = shift_years(dob, EARLIEST_ONSET_YEARS, true)?;
    let onset = |rng: &mut ChaCha8Rng| -> Result<String, AppError> {
        let d = shift_years(screening_day, rng.gen_range(ONSET_YEARS_BEFORE), false)? - days(rng.gen_range(0..365));
        Ok(d.max(youngest_onset).format(D).to_string())
    };
    for (i, key) in keys.iter().enumerate() {
        let note = if i == 0 {
            format!("Referred for ketamine treatment after {failed} adequate medication trials without remission.")
        } else {
            String::new()
        };
        records.push(RecordInput::Diagnosis(DiagnosisInput {
            choice: (*key).into(),
            onset: onset(rng)?,
            status: "active".into(),
            note,
            ..Default::default()
        }));
    }
    let mut depression = false;
    if rng.gen_bool(COMORBIDITY_SHARE) {
        let (code, display) = *pick(rng, COMORBIDITIES);
        depression = code.starts_with("F33");
        records.push(RecordInput::Diagnosis(DiagnosisInput {
            choice: "other".into(),
            system: "icd10".into(),
            code: code.into(),
            display: display.into(),
            icd10: code.into(),
            onset: onset(rng)?,
            status: "active".into(),
            ..Default::default()
        }));
    }

    // Medications, oldest first: failed adequate trials, then maybe a current one and an add-on.
    let mut meds: Vec<(&Drug, usize, NaiveDate, Option<NaiveDate>)> = Vec::new();
    let trials: Vec<&Drug> = TRIAL_DRUGS.choose_multiple(rng, failed + 1).collect();
    let mut cursor = screening_day - days(rng.gen_range(7..=60));
    if rng.gen_bool(CURRENT_MEDICATION_SHARE) {
        let start = cursor - days(rng.gen_range(90..=540));
        meds.push((trials[failed], rng.gen_range(0..trials[failed].doses.len()), start, None));
        cursor = start - days(rng.gen_range(7..=60));
    }
    for drug in &trials[..failed] {
        let start = cursor - days(7 * rng.gen_range(TRIAL_WEEKS));
        meds.push((drug, rng.gen_range(0..drug.doses.len()), start, Some(cursor)));
        cursor = start - days(rng.gen_range(14..=120));
    }
    meds.reverse();
    if rng.gen_bool(ADJUNCT_SHARE) {
        let drug = pick(rng, ADJUNCT_DRUGS);
        meds.push((drug, rng.gen_range(0..drug.doses.len()), screening_day - days(rng.gen_range(60..=400)), None));
    }
    let medication = |(drug, dose, start, stop): &(&Drug, usize, NaiveDate, Option<NaiveDate>)| MedicationInput {
        name: drug.name.into(),
        rxnorm: drug.rxnorm.into(),
        dose: drug.doses[*dose].into(),
        start: start.format(D).to_string(),
        stop: stop.map(|s| s.format(D).to_string()).unwrap_or_default(),
    };
    let first_medication = records.len();
    records.extend(meds.iter().map(|m| RecordInput::Medication(medication(m))));

    // Allergies.
    if rng.gen_bool(ALLERGY_SHARE) {
        let count = if rng.gen_bool(0.1) { 2 } else { 1 };
        for (substance, reaction, severity) in ALLERGIES.choose_multiple(rng, count) {
            records.push(RecordInput::Allergy(AllergyInput {
                substance: (*substance).into(),
                reaction: (*reaction).into(),
                severity: (*severity).into(),
            }));
        }
    }

    // Encounters.
    let first_encounter = records.len();
    for v in &visits {
        records.push(RecordInput::Encounter(EncounterInput {
            kind: v.kind.into(),
            start: v.start.format(DT).to_string(),
            end: (v.start + TimeDelta::minutes(v.minutes)).format(DT).to_string(),
            reason: v.reason.clone(),
            note: String::new(),
        }));
    }
    let course = course.map(|(responder, remitter, maintenance)| Course {
        screening: visits[0].start,
        sessions: visits
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.dosing.map(|dosing| Session { record: first_encounter + i, start: v.start, dosing }))
            .collect(),
        reviews: visits.iter().skip(1).filter(|v| v.kind == "follow_up").map(|v| v.start).collect(),
        responder,
        remitter,
        maintenance,
        gad: keys.contains(&"gad"),
        sad: keys.contains(&"sad"),
        depression,
        on_medication: meds.iter().any(|m| m.3.is_none()),
    });

    // Height at screening; weights at the first visits with a small drift inside the BMI band.
    let measured = |start: &NaiveDateTime, after: i64| MeasurementInput {
        value: String::new(),
        measured_at: (*start + TimeDelta::minutes(after)).format(DT).to_string(),
        acknowledged: Vec::new(),
    };
    let heights = HEIGHT_MM.iter().find(|h| h.0 == sex).ok_or_else(|| AppError::Internal(format!("no demo heights for {sex}")))?;
    let height_mm = rng.gen_range(heights.1.clone());
    let height = MeasurementInput { value: tenths(height_mm), ..measured(&visits[0].start, 5) };
    let (lo, hi) = (weight_tenths(BMI_BAND_TENTHS.0, height_mm) + 1, weight_tenths(BMI_BAND_TENTHS.1, height_mm) - 1);
    let mut w = weight_tenths(rng.gen_range(START_BMI_TENTHS), height_mm);
    let mut weights = Vec::new();
    for visit in visits.iter().take(rng.gen_range(WEIGHINGS)) {
        weights.push(MeasurementInput { value: tenths(w), ..measured(&visit.start, 10) });
        let drift = rng.gen_range(WEIGHT_DRIFT_PER_MILLE);
        w = (w * (1000 + drift) / 1000).clamp(lo, hi);
    }

    // The first patient's medication list was corrected after a pharmacist review, and an
    // allergy of another patient was entered on the wrong chart.
    let showcase = match (n, meds.last()) {
        (1, Some(last)) => {
            let fixed = (last.0, (last.1 + 1) % last.0.doses.len(), last.2, last.3);
            Some(Showcase {
                medication: first_medication + meds.len() - 1,
                corrected: RecordInput::Medication(medication(&fixed)),
                wrong_allergy: RecordInput::Allergy(AllergyInput {
                    substance: "Amoxicillin".into(),
                    reaction: "Rash".into(),
                    severity: "mild".into(),
                }),
            })
        }
        _ => None,
    };
    Ok(PatientPlan { demographics, records, height, weights, showcase, course, assessments: Vec::new(), schedules: Vec::new(), link: None })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ketacare_domain::assessment::FilledBy;

    fn instruments() -> Vec<Instrument> {
        ketacare_knowledge::Knowledge::load().unwrap().instruments
    }

    #[test]
    fn same_seed_same_clinic() {
        let a = plan_clinic(10, &instruments()).unwrap();
        let b = plan_clinic(10, &instruments()).unwrap();
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(format!("{:?}", x.demographics), format!("{:?}", y.demographics));
            assert_eq!(format!("{:?}", x.records), format!("{:?}", y.records));
            assert_eq!(format!("{:?}{:?}", x.height, x.weights), format!("{:?}{:?}", y.height, y.weights));
            assert_eq!(format!("{:?}{:?}", x.assessments, x.schedules), format!("{:?}{:?}", y.assessments, y.schedules));
        }
        assert!(a[0].showcase.is_some() && a[1..].iter().all(|p| p.showcase.is_none()));
    }

    #[test]
    fn weights_drift_little_and_everything_is_before_the_cutoff() {
        for p in plan_clinic(200, &instruments()).unwrap() {
            assert!((2..=5).contains(&p.weights.len()));
            let kg: Vec<f64> = p.weights.iter().map(|w| w.value.parse().unwrap()).collect();
            for pair in kg.windows(2) {
                assert!((pair[1] - pair[0]).abs() / pair[0] < 0.05, "{pair:?}");
            }
            let m: f64 = p.height.value.parse::<f64>().unwrap() / 100.0;
            assert!((150.0..=195.0).contains(&(m * 100.0)));
            for w in &kg {
                let bmi = w / (m * m);
                assert!((18.0..=42.0).contains(&bmi), "BMI {bmi}");
            }
            for t in p.weights.iter().chain([&p.height]) {
                assert!(t.measured_at.as_str() < "2026-11-01", "{}", t.measured_at);
            }
            for r in &p.records {
                if let RecordInput::Encounter(e) = r {
                    assert!(e.start.as_str() >= "2025" && e.start.as_str() < "2026-11-01");
                }
                if let RecordInput::Medication(m) = r {
                    if !m.stop.is_empty() {
                        let (s, t) = (NaiveDate::parse_from_str(&m.start, D).unwrap(), NaiveDate::parse_from_str(&m.stop, D).unwrap());
                        assert!((t - s).num_weeks() >= 8);
                    }
                }
            }
            for a in &p.assessments {
                assert!(a.at < ymd(CUTOFF).unwrap().and_time(NaiveTime::MIN), "{}", a.at);
            }
        }
    }

    /// Every planned form passes the application's validation and scoring, sessions point at
    /// treatment encounters whose reason states the dose, and only the planned stories raise
    /// urgent flags.
    #[test]
    fn planned_rating_scales_are_valid_and_tell_the_stories() {
        let knowledge = ketacare_knowledge::Knowledge::load().unwrap();
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-26T12:00:00Z").unwrap().to_utc();
        let plans = plan_clinic(crate::PATIENTS, &knowledge.instruments).unwrap();
        let (mut urgent, mut treated, mut total) = (Vec::new(), 0, 0);
        for (i, p) in plans.iter().enumerate() {
            treated += usize::from(p.course.is_some());
            total += p.assessments.len();
            for a in &p.assessments {
                let inst = knowledge.instrument(a.instrument).unwrap();
                let input = ketacare_domain::assessment::AssessmentInput {
                    instrument: a.instrument.into(),
                    answers: a.answers.clone(),
                    taken_at: a.at.format(DT).to_string(),
                    session: a.session.map(|_| uuid_like()).unwrap_or_default(),
                    timepoint: a.timepoint.unwrap_or_default().into(),
                    note: a.note.clone(),
                };
                let v = input
                    .validate(inst, &knowledge.assessment_timing.timepoints, FilledBy::Clinician, now)
                    .unwrap_or_else(|e| panic!("{a:?}: {e:?}"));
                let score = inst.score(&v.answers, None).unwrap();
                for f in score.flags.iter().filter(|f| f.urgent) {
                    urgent.push((i + 1, f.code.clone()));
                }
                if let Some(s) = a.session {
                    let RecordInput::Encounter(e) = &p.records[s] else { panic!("session {s} is not an encounter") };
                    assert_eq!(e.kind, "treatment");
                    assert!(e.reason.contains("mg/kg"), "{}", e.reason);
                }
            }
            let starts: Vec<_> = p.assessments.iter().map(|a| a.at).collect();
            assert!(starts.windows(2).all(|w| w[0] <= w[1]), "oldest first");
        }
        assert!(treated >= 40, "{treated} patients on a course");
        assert_eq!(urgent.iter().filter(|u| u.0 == 1).count(), 1, "{urgent:?}");
        assert_eq!(urgent.len(), 3, "{urgent:?}");
        eprintln!("{total} planned administrations for {treated} patients on a course");
    }

    fn uuid_like() -> String {
        "6f1c1a52-6f0e-4d2a-9a4f-0d8b9c3e2a11".into()
    }
}
