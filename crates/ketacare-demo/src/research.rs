//! A research cohort for the outcomes page: sixteen adults with social anxiety disorder
//! (`KC-000079` to `KC-000094`) who each had one intravenous infusion of 0.5 mg/kg over 40
//! minutes, as in Taylor 2018, before the clinic ordered doses in Ketacare (so each infusion is
//! a treatment visit whose reason states route and dose). Each has the LSAS before and 1, 7 and
//! 14 days after, the CADSS 40 minutes after, a baseline PHQ-9, and the research covariates
//! serum BDNF and concurrent benzodiazepine dose (knowledge/research.toml). Six of the sixteen
//! improve by more than 35 % on the LSAS. The numbers are illustrative and describe no real
//! patient.

use crate::outcomes::{spread, typed};
use crate::plan::DT;
use chrono::{Duration, NaiveDateTime, NaiveTime};
use ketacare_app::{App, AppError, MeasurementInput, Principal, RecordInput};
use ketacare_domain::assessment::AssessmentInput;
use ketacare_domain::ids::PatientId;
use ketacare_domain::patient::DemographicsInput;
use ketacare_domain::record::{DiagnosisInput, EncounterInput, ObservationInput};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Patients of the research cohort.
pub const RESEARCH_PATIENTS: usize = 16;

/// One patient: name, date of birth, sex, weight (kg), height (cm), LSAS at baseline and 1, 7
/// and 14 days after, CADSS, PHQ-9, serum BDNF (ng/mL; 0 = not measured), benzodiazepine
/// (mg/day diazepam-equivalent), days before the seeding date of the infusion.
struct Row {
    family: &'static str,
    given: &'static str,
    dob: &'static str,
    sex: &'static str,
    weight: &'static str,
    height: &'static str,
    lsas: [i64; 4],
    cadss: i64,
    phq9: i64,
    bdnf: &'static str,
    benzo: &'static str,
    ago: i64,
}

#[rustfmt::skip]
const ROWS: [Row; RESEARCH_PATIENTS] = [
    Row { family: "Larkspur", given: "Imogen", dob: "1991-02-11", sex: "female", weight: "61.4", height: "166", lsas: [92, 48, 55, 70], cadss: 22, phq9: 8, bdnf: "24.1", benzo: "0", ago: 340 },
    Row { family: "Okonkwo", given: "Tobenna", dob: "1986-07-30", sex: "male", weight: "82.0", height: "181", lsas: [78, 70, 74, 76], cadss: 15, phq9: 12, bdnf: "18.9", benzo: "10", ago: 320 },
    Row { family: "Vasquez-Hale", given: "Marisol", dob: "1979-11-02", sex: "female", weight: "70.3", height: "160", lsas: [101, 60, 58, 72], cadss: 19, phq9: 6, bdnf: "26.7", benzo: "0", ago: 300 },
    Row { family: "Brennan", given: "Cathal", dob: "1995-04-17", sex: "male", weight: "77.5", height: "178", lsas: [84, 80, 82, 84], cadss: 11, phq9: 14, bdnf: "0", benzo: "15", ago: 280 },
    Row { family: "Nakagawa", given: "Emi", dob: "1988-09-23", sex: "female", weight: "55.2", height: "158", lsas: [88, 52, 50, 61], cadss: 24, phq9: 9, bdnf: "22.5", benzo: "0", ago: 260 },
    Row { family: "Sørensen", given: "Mads", dob: "1972-01-05", sex: "male", weight: "90.8", height: "185", lsas: [73, 66, 69, 71], cadss: 13, phq9: 11, bdnf: "17.2", benzo: "5", ago: 240 },
    Row { family: "Adeyemi", given: "Folake", dob: "1983-06-14", sex: "female", weight: "68.9", height: "170", lsas: [96, 74, 80, 88], cadss: 17, phq9: 13, bdnf: "20.3", benzo: "0", ago: 220 },
    Row { family: "Kowalczyk", given: "Piotr", dob: "1990-12-08", sex: "male", weight: "85.1", height: "183", lsas: [81, 49, 57, 66], cadss: 21, phq9: 7, bdnf: "25.8", benzo: "0", ago: 200 },
    Row { family: "Ferreira", given: "Beatriz", dob: "1997-03-29", sex: "female", weight: "59.6", height: "163", lsas: [69, 62, 64, 66], cadss: 12, phq9: 16, bdnf: "0", benzo: "20", ago: 180 },
    Row { family: "Lindqvist", given: "Oskar", dob: "1981-08-19", sex: "male", weight: "79.4", height: "176", lsas: [90, 77, 81, 85], cadss: 14, phq9: 10, bdnf: "19.6", benzo: "2", ago: 160 },
    Row { family: "Haddad", given: "Yasmin", dob: "1993-10-03", sex: "female", weight: "63.7", height: "168", lsas: [99, 58, 62, 80], cadss: 23, phq9: 5, bdnf: "27.4", benzo: "0", ago: 140 },
    Row { family: "MacAlister", given: "Euan", dob: "1976-05-21", sex: "male", weight: "94.2", height: "188", lsas: [75, 71, 72, 74], cadss: 10, phq9: 15, bdnf: "16.4", benzo: "12", ago: 120 },
    Row { family: "Petrovic", given: "Jelena", dob: "1989-01-26", sex: "female", weight: "66.0", height: "171", lsas: [86, 66, 70, 79], cadss: 18, phq9: 9, bdnf: "21.0", benzo: "0", ago: 100 },
    Row { family: "Achterberg", given: "Ruben", dob: "1985-09-12", sex: "male", weight: "88.3", height: "190", lsas: [80, 50, 54, 69], cadss: 20, phq9: 8, bdnf: "23.9", benzo: "0", ago: 80 },
    Row { family: "Quispe", given: "Rosa", dob: "1992-07-07", sex: "female", weight: "57.8", height: "155", lsas: [72, 69, 70, 71], cadss: 9, phq9: 17, bdnf: "0", benzo: "8", ago: 60 },
    Row { family: "Delacroix", given: "Jules", dob: "1980-04-15", sex: "male", weight: "75.6", height: "179", lsas: [94, 71, 78, 86], cadss: 16, phq9: 12, bdnf: "18.1", benzo: "4", ago: 40 },
];

/// Code system of the research covariates (as in knowledge/research.toml).
const COVARIATES: &str = "https://ketacare.org/fhir/CodeSystem/research-covariate";

struct Seeder<'a> {
    app: &'a App,
    prescriber: &'a Principal,
    nurse: &'a Principal,
    rng: ChaCha8Rng,
}

impl Seeder<'_> {
    async fn rate(&mut self, patient: PatientId, instrument: &str, total: i64, at: NaiveDateTime) -> Result<(), AppError> {
        let inst =
            self.app.knowledge().instrument(instrument).ok_or_else(|| AppError::Internal(format!("demo: no instrument {instrument}")))?;
        // No thoughts of self-harm in this cohort (PHQ-9 item 9 answered 0), so it raises no alert.
        let fixed: &[(&str, Option<u32>)] = if instrument == "phq9" { &[("q9", Some(0))] } else { &[] };
        let answers = spread(&mut self.rng, inst, total, &[], fixed);
        let input = AssessmentInput {
            instrument: instrument.into(),
            answers: typed(inst, &answers),
            taken_at: at.format(DT).to_string(),
            session: String::new(),
            timepoint: String::new(),
            note: String::new(),
        };
        self.app.record_assessment(self.prescriber, patient, &input).await?;
        Ok(())
    }

    async fn covariate(
        &self,
        patient: PatientId,
        code: &str,
        display: &str,
        value: &str,
        unit: &str,
        at: NaiveDateTime,
    ) -> Result<(), AppError> {
        let input = ObservationInput {
            code: code.into(),
            system: COVARIATES.into(),
            display: display.into(),
            value_type: "quantity".into(),
            value: value.into(),
            unit: unit.into(),
            effective: at.format(DT).to_string(),
        };
        self.app.add_record(self.nurse, patient, &RecordInput::Observation(input)).await?;
        Ok(())
    }

    async fn patient(&mut self, i: usize, r: &Row, today: chrono::NaiveDate) -> Result<(), AppError> {
        let demographics = DemographicsInput {
            mrn: format!("KC-{:06}", 79 + i),
            family_name: r.family.into(),
            given_name: r.given.into(),
            date_of_birth: r.dob.into(),
            sex: r.sex.into(),
            ..Default::default()
        };
        let id = self.app.register_patient(self.nurse, &demographics).await?.patient_id;
        let day = today - Duration::days(r.ago);
        let at = |h: u32, m: u32| day.and_time(NaiveTime::from_hms_opt(h, m, 0).unwrap_or(NaiveTime::MIN));
        let diagnosis = DiagnosisInput { choice: "sad".into(), status: "active".into(), ..Default::default() };
        self.app.add_record(self.prescriber, id, &RecordInput::Diagnosis(diagnosis)).await?;
        self.app
            .record_height(
                self.nurse,
                id,
                &MeasurementInput {
                    value: r.height.into(),
                    measured_at: (at(9, 0) - Duration::days(7)).format(DT).to_string(),
                    ..Default::default()
                },
            )
            .await?;
        self.app
            .record_weight(
                self.nurse,
                id,
                &MeasurementInput { value: r.weight.into(), measured_at: at(9, 10).format(DT).to_string(), ..Default::default() },
            )
            .await?;
        let baseline = at(9, 0) - Duration::days(7);
        self.rate(id, "lsas", r.lsas[0], baseline).await?;
        self.rate(id, "phq9", r.phq9, baseline + Duration::minutes(20)).await?;
        if r.bdnf != "0" {
            self.covariate(id, "serum-bdnf", "Serum BDNF", r.bdnf, "ng/mL", baseline + Duration::minutes(30)).await?;
        }
        self.covariate(
            id,
            "benzodiazepine-diazepam-equivalent",
            "Benzodiazepine, diazepam-equivalent",
            r.benzo,
            "mg/d",
            baseline + Duration::minutes(30),
        )
        .await?;
        let infusion = EncounterInput {
            kind: "treatment".into(),
            start: at(10, 0).format(DT).to_string(),
            end: at(12, 0).format(DT).to_string(),
            reason: "IV ketamine 0.5 mg/kg over 40 min (single infusion)".into(),
            note: String::new(),
        };
        self.app.add_record(self.prescriber, id, &RecordInput::Encounter(infusion)).await?;
        self.rate(id, "cadss", r.cadss, at(10, 40)).await?;
        for (k, days) in [1, 7, 14].iter().enumerate() {
            self.rate(id, "lsas", r.lsas[k + 1], at(10, 30) + Duration::days(*days)).await?;
        }
        Ok(())
    }
}

/// Seeds the research cohort; returns the number of patients.
pub(crate) async fn seed_research(app: &App, prescriber: &Principal, nurse: &Principal) -> Result<usize, AppError> {
    let today = app.clock().now().date_naive();
    let mut s = Seeder { app, prescriber, nurse, rng: ChaCha8Rng::seed_from_u64(2018) };
    for (i, r) in ROWS.iter().enumerate() {
        s.patient(i, r, today).await?;
    }
    Ok(ROWS.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_of_sixteen_improve_by_more_than_35_percent() {
        let responders =
            ROWS.iter().filter(|r| r.lsas[1..].iter().any(|after| (r.lsas[0] - after) as f64 * 100.0 / r.lsas[0] as f64 > 35.0)).count();
        assert_eq!(responders, 6);
        assert!(ROWS.iter().all(|r| r.lsas[0] > 60), "Taylor 2018 enrolled LSAS above 60");
    }
}
