//! Research: de-identification keys and cohort analytics.

use crate::App;
use ketacare_domain::deid::DateShift;
use ketacare_domain::ids::PatientId;
use sha2::{Digest, Sha256};

/// De-identification of one clinic: a patient's research id and date shift come from a keyed
/// digest of their id (the key is the clinic's pseudonym key, never shown).
#[derive(Clone)]
pub struct Deidentifier {
    key: String,
}

impl Deidentifier {
    fn digest(&self, purpose: &str, id: PatientId) -> [u8; 32] {
        Sha256::digest(format!("{}:{purpose}:{id}", self.key).as_bytes()).into()
    }
    /// The research id shown instead of the patient's name and MRN (`R-` and ten hex digits).
    pub fn research_id(&self, id: PatientId) -> String {
        let d = Sha256::digest(format!("{}:{id}", self.key).as_bytes());
        format!("R-{}", d.iter().take(5).map(|b| format!("{b:02X}")).collect::<String>())
    }
    /// The patient's date shift.
    pub fn shift(&self, id: PatientId) -> DateShift {
        DateShift::from_digest(&self.digest("date-shift", id))
    }
}

impl App {
    /// The clinic's de-identifier (for exports and research views).
    pub fn deidentifier(&self) -> Deidentifier {
        Deidentifier { key: self.settings.pseudonym_key.clone() }
    }
}

/// The cohort analysis with what the page needs to offer filters.
#[derive(Clone, Debug)]
pub struct CohortOutcomes {
    /// The analysis.
    pub report: ketacare_domain::cohort::CohortReport,
    /// The definitions it used.
    pub rules: ketacare_domain::cohort::CohortRules,
    /// The filter applied.
    pub filter: ketacare_domain::cohort::CohortFilter,
    /// Clinicians (usernames) with treated patients, for the filter.
    pub clinicians: Vec<String>,
    /// Protocol keys in use, for the filter.
    pub protocols: Vec<String>,
    /// Diagnosis keys in use, for the filter.
    pub diagnoses: Vec<String>,
    /// The published studies.
    pub studies: Vec<ketacare_domain::evidence::PublishedStudy>,
    /// Version of the studies file.
    pub studies_version: String,
}

/// Patients read per page of the cohort scan.
const PAGE: u32 = 500;

impl App {
    /// The definitions in force: the knowledge file's choices, each scale's response and
    /// remission rule as the clinic has set it, and the titration review's blood-pressure limits.
    pub async fn cohort_rules(&self) -> Result<ketacare_domain::cohort::CohortRules, crate::AppError> {
        use ketacare_domain::cohort::{CohortRules, ScaleRule};
        let policies = self.store.current_policies().await?;
        let r = &self.knowledge.research;
        let mut scales = Vec::new();
        for key in &r.primary_scales {
            let Some(inst) = self.knowledge.instrument(key) else { continue };
            let rules = crate::outcomes::apply_policies(inst, &policies);
            let Some(resp) = rules.response else { continue };
            scales.push(ScaleRule {
                key: key.clone(),
                name: inst.name.clone(),
                response_percent: resp.percent,
                strict: resp.strict,
                remission_max: rules.remission.filter(|m| m.no_item_above.is_none()).map(|m| m.total_at_most),
            });
        }
        Ok(CohortRules {
            scales,
            response_timepoint: self.knowledge.titration.response_timepoint.clone(),
            dissociation: r.dissociation_scale.clone(),
            functioning: r.functioning_scales.clone(),
            hypertension_systolic_above: self.knowledge.titration.sbp_above.value,
            hypertension_diastolic_above: self.knowledge.titration.dbp_above.value,
            small_numbers_below: r.small_numbers_below,
            z: r.z,
            covariates: r.covariates.clone(),
        })
    }

    /// Reads the whole clinic a page at a time and turns each patient into de-identified
    /// facts. `each_page` hears the patients read so far (for progress).
    pub async fn cohort_facts(
        &self,
        p: &crate::Principal,
        mut each_page: impl FnMut(u64),
    ) -> Result<Vec<ketacare_domain::cohort::PatientFacts>, crate::AppError> {
        use ketacare_domain::record::RecordKind;
        self.authorize(p, ketacare_domain::access::Permission::ReadDeidentified, "Cohort").await?;
        let ctx = self.ctx(p, "research");
        let deid = self.deidentifier();
        let today = self.clock.now().date_naive();
        let kinds = [
            RecordKind::Diagnosis,
            RecordKind::Observation,
            RecordKind::Assessment,
            RecordKind::TreatmentPlan,
            RecordKind::DoseOrder,
            RecordKind::Encounter,
        ];
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = self.store.cohort_page(&ctx, &kinds, after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.patient.patient_id);
            let n = page.len();
            for cp in page {
                out.push(self.patient_facts(&deid, cp, today));
            }
            each_page(out.len() as u64);
            if n < PAGE as usize {
                break;
            }
        }
        Ok(out)
    }

    fn patient_facts(
        &self,
        deid: &Deidentifier,
        cp: ketacare_db::research::CohortPatient,
        today: chrono::NaiveDate,
    ) -> ketacare_domain::cohort::PatientFacts {
        use ketacare_domain::cohort::{DoseGiven, PatientFacts, Rating, SessionFacts};
        use ketacare_domain::order::OrderStatus;
        use ketacare_domain::record::{ClinicalRecord, ObservationValue};
        use rust_decimal::prelude::ToPrimitive;
        let pid = cp.patient.patient_id;
        let research = &self.knowledge.research;
        let mut plans = std::collections::HashMap::new();
        let mut clinicians: Vec<String> = Vec::new();
        let mut orders = std::collections::HashMap::new();
        let mut diagnoses = Vec::new();
        let mut ratings = Vec::new();
        let mut doses = Vec::new();
        let mut covariates = std::collections::BTreeMap::new();
        for v in &cp.records {
            match &v.record {
                ClinicalRecord::TreatmentPlan(plan) => {
                    plans.insert(v.record_id, plan.protocol.clone());
                    // The prescriber who planned (or last re-planned) the course.
                    if !clinicians.contains(&v.provenance.username) {
                        clinicians.push(v.provenance.username.clone());
                    }
                }
                ClinicalRecord::DoseOrder(o) => {
                    orders.insert(v.record_id.to_string(), o.mg_per_kg);
                }
                _ => {}
            }
        }
        for v in &cp.records {
            match &v.record {
                ClinicalRecord::Diagnosis(d) => {
                    if let Some(c) = self.knowledge.diagnoses.iter().find(|c| c.snomed.code() == d.condition.code()) {
                        if !diagnoses.contains(&c.key) {
                            diagnoses.push(c.key.clone());
                        }
                    }
                }
                ClinicalRecord::Assessment(a) => {
                    let total = self.knowledge.instrument(&a.instrument).and_then(|i| i.score(&a.answers, None).ok()).and_then(|s| s.total);
                    if let Some(total) = total {
                        ratings.push(Rating { instrument: a.instrument.clone(), at: a.taken_at, total, timepoint: a.timepoint.clone() });
                    }
                }
                ClinicalRecord::DoseOrder(o) if o.status == OrderStatus::Checked => {
                    let Some(check) = &o.check else { continue };
                    doses.push(DoseGiven {
                        at: check.at,
                        mg_per_kg: o.mg_per_kg,
                        route: o.route.code().to_owned(),
                        protocol: o.plan.and_then(|id| plans.get(&id).cloned()),
                        step: o.step.clone(),
                    });
                }
                ClinicalRecord::Observation(obs) => {
                    if let Some(c) = research.covariates.iter().find(|c| c.system == obs.code.system().uri() && c.code == obs.code.code()) {
                        let value = match &obs.value {
                            ObservationValue::Quantity { value, .. } => value.to_f64(),
                            ObservationValue::Boolean(b) => Some(if *b { 1.0 } else { 0.0 }),
                            _ => None,
                        };
                        if let Some(x) = value {
                            // The first value recorded is the baseline.
                            covariates.entry(c.key.clone()).or_insert(x);
                        }
                    }
                }
                _ => {}
            }
        }
        // Doses given before the clinic ordered them in Ketacare: treatment visits whose reason
        // states route and dose, unless an order was given that day.
        for v in &cp.records {
            if let ClinicalRecord::Encounter(e) = &v.record {
                if e.kind != ketacare_domain::record::EncounterKind::Treatment {
                    continue;
                }
                let day = e.start.date_naive();
                if doses.iter().any(|d: &DoseGiven| d.at.date_naive() == day) {
                    continue;
                }
                if let Some((route, mg)) = e.reason.as_deref().and_then(ketacare_domain::cohort::dose_from_text) {
                    doses.push(DoseGiven { at: e.start, mg_per_kg: Some(mg), route, protocol: None, step: None });
                }
            }
        }
        ratings.sort_by_key(|r| r.at);
        doses.sort_by_key(|d| d.at);
        let first = doses.first().map(|d| d.at.date_naive()).unwrap_or(today);
        let age = ketacare_domain::deid::age_on(cp.patient.demographics.date_of_birth.date(), first);
        let female = cp.patient.demographics.sex.code() == "female";
        let (w, h) = crate::patients::measurements(&cp.records);
        for c in &research.covariates {
            if c.system != "derived" {
                continue;
            }
            let v = match c.code.as_str() {
                "age" => Some(f64::from(age)),
                "sex" => Some(if female { 1.0 } else { 0.0 }),
                "bmi" => w.last().zip(h.last()).and_then(|(w, h)| ketacare_domain::anthropometry::bmi(w.value, h.value).to_f64()),
                _ => None,
            };
            if let Some(v) = v {
                covariates.insert(c.key.clone(), v);
            }
        }
        if !covariates.contains_key("comorbid_depression") {
            let first_at = doses.first().map(|d| d.at);
            let phq9 = ratings.iter().filter(|r| r.instrument == "phq9" && first_at.is_none_or(|f| r.at <= f)).min_by_key(|r| r.at);
            if let Some(r) = phq9 {
                covariates.insert("comorbid_depression".into(), if r.total >= research.phq9_depression_at_least { 1.0 } else { 0.0 });
            }
        }
        let sessions = cp
            .sessions
            .iter()
            .map(|s| SessionFacts {
                at: s.dose_started_at.unwrap_or(s.scheduled_at),
                dosed: s.dose_started_at.is_some(),
                mg_per_kg: s.order_id.as_ref().and_then(|o| orders.get(o).copied().flatten()),
                baseline_bp: s.baseline_bp.map(|(a, b)| (a as f64, b as f64)),
                peak_systolic: s.peak_systolic,
                peak_diastolic: s.peak_diastolic,
                adverse_events: s.adverse_events.len() as u64,
            })
            .collect();
        PatientFacts {
            research_id: deid.research_id(pid),
            sex: cp.patient.demographics.sex.code().to_owned(),
            age,
            diagnoses,
            clinicians,
            doses,
            ratings,
            sessions,
            covariates,
        }
    }

    /// Cohort outcomes of the patients matching `filter` (researchers and the medical director;
    /// de-identified; every page read is audited).
    pub async fn cohort_outcomes(
        &self,
        p: &crate::Principal,
        filter: &ketacare_domain::cohort::CohortFilter,
    ) -> Result<CohortOutcomes, crate::AppError> {
        let rules = self.cohort_rules().await?;
        let facts = self.cohort_facts(p, |_| {}).await?;
        let studies = self.knowledge.research.studies.clone();
        let report = ketacare_domain::cohort::analyse(&facts, filter, &rules, &studies);
        let mut clinicians: Vec<String> = facts.iter().flat_map(|f| f.clinicians.iter().cloned()).collect();
        clinicians.sort();
        clinicians.dedup();
        let mut protocols: Vec<String> = facts.iter().filter_map(|f| f.protocol().map(str::to_owned)).collect();
        protocols.sort();
        protocols.dedup();
        let mut diagnoses: Vec<String> = facts.iter().flat_map(|f| f.diagnoses.iter().cloned()).collect();
        diagnoses.sort();
        diagnoses.dedup();
        Ok(CohortOutcomes {
            report,
            rules,
            filter: filter.clone(),
            clinicians,
            protocols,
            diagnoses,
            studies,
            studies_version: self.knowledge.research.studies_version.clone(),
        })
    }
}
