//! The pure, deterministic part: every patient of the demo clinic as raw input, before any of
//! it reaches the application. Same seed, same clinic.

use crate::data::{Drug, ADJUNCT_DRUGS, ALLERGIES, COMORBIDITIES, FAMILY, FEMALE_GIVEN, MALE_GIVEN, NEUTRAL_GIVEN, RELATIONS, TRIAL_DRUGS};
use chrono::{Months, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta};
use ketacare_app::{AppError, MeasurementInput, RecordInput};
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
/// Share who start a ketamine course (the rest have follow-up reviews), and its length.
const TREATMENT_SHARE: f64 = 0.7;
const SESSIONS: RangeInclusive<usize> = 2..=6;
const FOLLOW_UPS: RangeInclusive<usize> = 1..=2;
/// Visit lengths in minutes.
const SCREENING_MINUTES: i64 = 60;
const SESSION_MINUTES: i64 = 120;
const FOLLOW_UP_MINUTES: i64 = 30;
const DT: &str = "%Y-%m-%dT%H:%M";
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

/// The whole demo clinic.
pub(crate) fn plan_clinic(patients: usize) -> Result<Vec<PatientPlan>, AppError> {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let (cutoff, opening) = (ymd(CUTOFF)?, ymd(OPENING)?);
    (1..=patients).map(|n| plan_patient(&mut rng, n, cutoff, opening)).collect()
}

fn plan_patient(rng: &mut ChaCha8Rng, n: usize, cutoff: NaiveDate, opening: NaiveDate) -> Result<PatientPlan, AppError> {
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
    let screening_day = between(rng, earliest, cutoff - days(LAST_SCREENING_DAYS_BEFORE_CUTOFF));
    let at = |day: NaiveDate, rng: &mut ChaCha8Rng| -> Result<NaiveDateTime, AppError> {
        let t = NaiveTime::from_hms_opt(rng.gen_range(8..=15), *pick(rng, &[0, 30]), 0)
            .ok_or_else(|| AppError::Internal("bad demo time".into()))?;
        Ok(day.and_time(t))
    };
    let mut visits = vec![("screening", at(screening_day, rng)?, SCREENING_MINUTES, "Screening and eligibility assessment".to_owned())];
    let mut day = screening_day + days(rng.gen_range(14..=35));
    if rng.gen_bool(TREATMENT_SHARE) {
        let total = rng.gen_range(SESSIONS);
        for k in 1..=total {
            visits.push(("treatment", at(day, rng)?, SESSION_MINUTES, format!("Ketamine treatment session {k} of {total}")));
            day += days(rng.gen_range(3..=7));
        }
    } else {
        for _ in 0..rng.gen_range(FOLLOW_UPS) {
            visits.push(("follow_up", at(day, rng)?, FOLLOW_UP_MINUTES, "Review of treatment options".to_owned()));
            day += days(rng.gen_range(21..=42));
        }
    }
    let cutoff_start = cutoff.and_time(NaiveTime::MIN);
    visits.retain(|v| v.1 < cutoff_start);

    // Diagnoses.
    let mut records = Vec::new();
    let mut keys: Vec<&str> = DIAGNOSIS_SHARES.iter().filter(|d| rng.gen_bool(d.1)).map(|d| d.0).collect();
    if !keys.iter().any(|k| ["gad", "sad"].contains(k)) {
        keys.insert(0, if rng.gen_bool(0.5) { "gad" } else { "sad" });
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
    if rng.gen_bool(COMORBIDITY_SHARE) {
        let (code, display) = *pick(rng, COMORBIDITIES);
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
    for (kind, start, minutes, reason) in &visits {
        records.push(RecordInput::Encounter(EncounterInput {
            kind: (*kind).into(),
            start: start.format(DT).to_string(),
            end: (*start + TimeDelta::minutes(*minutes)).format(DT).to_string(),
            reason: reason.clone(),
            note: String::new(),
        }));
    }

    // Height at screening; weights at the first visits with a small drift inside the BMI band.
    let measured = |start: &NaiveDateTime, after: i64| MeasurementInput {
        value: String::new(),
        measured_at: (*start + TimeDelta::minutes(after)).format(DT).to_string(),
        acknowledged: Vec::new(),
    };
    let heights = HEIGHT_MM.iter().find(|h| h.0 == sex).ok_or_else(|| AppError::Internal(format!("no demo heights for {sex}")))?;
    let height_mm = rng.gen_range(heights.1.clone());
    let height = MeasurementInput { value: tenths(height_mm), ..measured(&visits[0].1, 5) };
    let (lo, hi) = (weight_tenths(BMI_BAND_TENTHS.0, height_mm) + 1, weight_tenths(BMI_BAND_TENTHS.1, height_mm) - 1);
    let mut w = weight_tenths(rng.gen_range(START_BMI_TENTHS), height_mm);
    let mut weights = Vec::new();
    for visit in visits.iter().take(rng.gen_range(WEIGHINGS)) {
        weights.push(MeasurementInput { value: tenths(w), ..measured(&visit.1, 10) });
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
    Ok(PatientPlan { demographics, records, height, weights, showcase })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_clinic() {
        let a = plan_clinic(10).unwrap();
        let b = plan_clinic(10).unwrap();
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(format!("{:?}", x.demographics), format!("{:?}", y.demographics));
            assert_eq!(format!("{:?}", x.records), format!("{:?}", y.records));
            assert_eq!(format!("{:?}{:?}", x.height, x.weights), format!("{:?}{:?}", y.height, y.weights));
        }
        assert!(a[0].showcase.is_some() && a[1..].iter().all(|p| p.showcase.is_none()));
    }

    #[test]
    fn weights_drift_little_and_everything_is_before_the_cutoff() {
        for p in plan_clinic(200).unwrap() {
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
        }
    }
}
