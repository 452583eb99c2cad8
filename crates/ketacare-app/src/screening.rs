//! Screening and eligibility: the intake assembled from the chart, the live verdict, the signed
//! (versioned) verdict with the medical director's acceptances, the re-check before every
//! treatment session, and quick entry of the baseline vital signs and liver tests.

use crate::{App, AppError, Principal};
use chrono::{DateTime, NaiveDateTime, Utc};
use ketacare_domain::access::Permission;
use ketacare_domain::coding::{loinc, CodeSystem, Coding};
use ketacare_domain::ids::{PatientId, VersionId};
use ketacare_domain::record::{
    ClinicalRecord, EncounterKind, Observation, ObservationValue, Reason, RecordKind, RecordVersion, UcumUnit, VersionAction,
};
use ketacare_domain::screening::{
    new_since, screen, Acceptance, BaselineRating, ConditionEntry, Finding, Intake, LiverTests, MedicineEntry, Screening, ScreeningRecord,
    Severity,
};
use ketacare_domain::validation::FieldErrors;
use rust_decimal::Decimal;
use uuid::Uuid;

/// Everything the screening page shows for one patient.
#[derive(Clone, Debug)]
pub struct ScreeningView {
    /// The intake as assembled from the chart now.
    pub intake: Intake,
    /// Where each part of the intake came from, for the page (e.g. "BP 2026-11-20 by nurse").
    pub provenance: Vec<(String, String)>,
    /// The screening of the chart now, with the signed acceptances applied.
    pub screening: Screening,
    /// The latest signed verdict, if any (the record version and its content).
    pub signed: Option<(RecordVersion, ScreeningRecord)>,
    /// Findings now that were not in the signed verdict or became more serious since.
    pub new_since_signed: Vec<Finding>,
    /// Knowledge version used.
    pub knowledge_version: String,
}

impl ScreeningView {
    /// Whether a treatment session may start (no absolute contraindication stands).
    pub fn session_may_start(&self) -> bool {
        !self.screening.findings.iter().any(|f| f.severity == Severity::Exclusion)
    }
}

/// A request to sign the screening.
#[derive(Clone, Debug, Default)]
pub struct SignInput {
    /// Findings accepted (code, reason); medical director only.
    pub acceptances: Vec<(String, String)>,
    /// Signer's note.
    pub note: String,
    /// The version of the signed screening the signer saw (`None`: none existed).
    pub base_version: Option<u32>,
}

/// Baseline vital signs typed on the screening page.
#[derive(Clone, Debug, Default)]
pub struct VitalsInput {
    /// Systolic, mmHg.
    pub systolic: String,
    /// Diastolic, mmHg.
    pub diastolic: String,
    /// Heart rate, /min.
    pub heart_rate: String,
    /// When measured (`YYYY-MM-DDTHH:MM` UTC; empty: now).
    pub measured_at: String,
}

/// Liver tests typed on the screening page.
#[derive(Clone, Debug, Default)]
pub struct LiverInput {
    /// ALT, U/L.
    pub alt: String,
    /// AST, U/L.
    pub ast: String,
    /// ALP, U/L.
    pub alp: String,
    /// Total bilirubin, µmol/L.
    pub bilirubin: String,
    /// When sampled (`YYYY-MM-DDTHH:MM` UTC; empty: now).
    pub sampled_at: String,
}

/// The latest reading of a LOINC code: by the time measured, then by the time recorded (a
/// repeat reading typed for the same minute wins).
fn latest_quantity<'a>(records: &'a [RecordVersion], code: &str, unit: &str) -> Option<(Decimal, DateTime<Utc>, &'a RecordVersion)> {
    records
        .iter()
        .filter_map(|v| match &v.record {
            ClinicalRecord::Observation(o) => o.quantity_if(code, unit).map(|q| (q, o.effective, v)),
            _ => None,
        })
        .max_by_key(|(_, t, v)| (*t, v.provenance.recorded_at))
}

fn whole(d: Decimal) -> Option<u32> {
    u32::try_from(d.round().mantissa() / 10i128.pow(d.round().scale())).ok()
}

pub(crate) fn parse_at(raw: &str, now: DateTime<Utc>, field: &str, e: &mut FieldErrors) -> DateTime<Utc> {
    let t = raw.trim();
    if t.is_empty() {
        return now;
    }
    match NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M") {
        Ok(d) if d.and_utc() <= now + chrono::Duration::minutes(5) => d.and_utc(),
        Ok(_) => {
            e.add(field, "must not be in the future");
            now
        }
        Err(_) => {
            e.add(field, "must be a date and time such as 2026-11-30T09:15 (UTC), or empty for now");
            now
        }
    }
}

fn quantity(raw: &str, field: &str, lo: i64, hi: i64, unit: &str, e: &mut FieldErrors) -> Option<Decimal> {
    let t = raw.trim();
    if t.is_empty() {
        return None;
    }
    match t.parse::<Decimal>() {
        Ok(d) if d >= Decimal::from(lo) && d <= Decimal::from(hi) => Some(d),
        _ => {
            e.add(field, format!("must be a number from {lo} to {hi} {unit}; got {t:?}"));
            None
        }
    }
}

impl App {
    /// Assembles the screening intake from a patient's chart.
    pub async fn screening_intake(&self, p: &Principal, patient: PatientId) -> Result<(Intake, Vec<(String, String)>), AppError> {
        self.authorize_patient(p, patient).await?;
        let chart = self.chart(p, patient).await?;
        let now = self.clock.now();
        let today = now.date_naive();
        let d = &chart.patient.demographics;
        let mut prov: Vec<(String, String)> = Vec::new();
        let by = |v: &RecordVersion| format!("{} by {}", v.provenance.recorded_at.format("%Y-%m-%d"), v.provenance.username);
        let mut intake = Intake {
            age_years: Some(d.date_of_birth.age_on(today)),
            sex: Some(d.sex.code().to_owned()),
            weight_kg: chart.latest_weight().map(|w| w.value.kg()),
            height_cm: chart.latest_height().map(|h| h.value.cm()),
            ..Intake::default()
        };
        if let Some(w) = chart.latest_weight() {
            prov.push(("Weight".into(), format!("{} measured {}", w.value, w.effective.format("%Y-%m-%d"))));
        }
        let records = &chart.records;
        for v in records {
            match &v.record {
                ClinicalRecord::Diagnosis(dx) if dx.status != ketacare_domain::record::ClinicalStatus::Resolved => {
                    intake.diagnoses.push(dx.condition.code().to_owned());
                }
                ClinicalRecord::Medication(m) if m.stop.is_none_or(|s| s >= today) => {
                    let name = match &m.dose {
                        Some(d) => format!("{} {d}", m.name),
                        None => m.name.clone(),
                    };
                    intake.medications.push(MedicineEntry { name, rxnorm: m.rxnorm.clone() });
                }
                ClinicalRecord::PriorTreatment(t) => intake.prior_treatments.push(t.treatment.clone()),
                _ => {}
            }
        }
        // Conditions: the latest record of each condition wins (pregnancy may be recorded
        // absent, then present).
        let mut conds: Vec<&RecordVersion> = records.iter().filter(|v| v.record.kind() == RecordKind::Condition).collect();
        conds.sort_by_key(|v| v.provenance.recorded_at);
        let mut latest: Vec<(&str, &ketacare_domain::screening::ConditionRecord, &RecordVersion)> = Vec::new();
        for v in conds {
            if let ClinicalRecord::Condition(c) = &v.record {
                latest.retain(|(k, _, _)| *k != c.condition.as_str());
                latest.push((c.condition.as_str(), c, v));
            }
        }
        for (key, c, v) in latest {
            match key {
                "pregnancy" => {
                    intake.pregnant = Some(c.present);
                    prov.push(("Pregnancy status".into(), by(v)));
                }
                "breastfeeding" => {
                    intake.breastfeeding = Some(c.present);
                    prov.push(("Breastfeeding status".into(), by(v)));
                }
                _ if c.present => intake.conditions.push(ConditionEntry { name: c.condition.clone(), controlled: c.controlled }),
                _ => {}
            }
        }
        // Blood pressure and heart rate: the latest systolic, with the diastolic of the same time.
        if let Some((s, at, v)) = latest_quantity(records, loinc::SYSTOLIC_BP, "mm[Hg]") {
            // The diastolic of the same reading: measured at the same time and recorded with it.
            let dia = records.iter().rev().find_map(|r| match &r.record {
                ClinicalRecord::Observation(o) if o.effective == at && r.provenance.recorded_at == v.provenance.recorded_at => {
                    o.quantity_if(loinc::DIASTOLIC_BP, "mm[Hg]")
                }
                _ => None,
            });
            if let Some(dia) = dia {
                intake.bp_systolic = whole(s);
                intake.bp_diastolic = whole(dia);
                intake.bp_age_days = Some((today - at.date_naive()).num_days());
                prov.push((
                    "Blood pressure".into(),
                    format!("{}/{} mmHg measured {} ({})", s, dia, at.format("%Y-%m-%d %H:%M"), v.provenance.username),
                ));
            }
        }
        intake.heart_rate = latest_quantity(records, loinc::HEART_RATE, "/min").and_then(|(hr, _, _)| whole(hr));
        // Liver tests: the latest of each, aged by the oldest ALT or AST used.
        let alt = latest_quantity(records, loinc::ALT, "U/L");
        let ast = latest_quantity(records, loinc::AST, "U/L");
        if alt.is_some() || ast.is_some() {
            let oldest = [alt.map(|x| x.1), ast.map(|x| x.1)].into_iter().flatten().min().unwrap_or(now);
            intake.liver = Some(LiverTests {
                alt: alt.map(|x| x.0),
                ast: ast.map(|x| x.0),
                alp: latest_quantity(records, loinc::ALP, "U/L").map(|x| x.0),
                bilirubin: latest_quantity(records, loinc::BILIRUBIN_TOTAL, "umol/L").map(|x| x.0),
                age_days: Some((today - oldest.date_naive()).num_days()),
            });
            prov.push(("Liver tests".into(), format!("sampled {}", oldest.format("%Y-%m-%d"))));
        }
        // Rating scales: the first administration of each scale is the baseline; the latest
        // C-SSRS and PHQ-9 are the current suicide-risk screens.
        let mut assessments: Vec<(&RecordVersion, &ketacare_domain::assessment::Assessment)> = records
            .iter()
            .filter_map(|v| match &v.record {
                ClinicalRecord::Assessment(a) => Some((v, a)),
                _ => None,
            })
            .collect();
        assessments.sort_by_key(|(_, a)| a.taken_at);
        for inst in &self.knowledge.instruments {
            if let Some((_, a)) = assessments.iter().find(|(_, a)| a.instrument == inst.key) {
                if let Some(total) = inst.score(&a.answers, None).ok().and_then(|s| s.total) {
                    intake.baseline_ratings.push(BaselineRating { instrument: inst.key.clone(), total });
                }
            }
        }
        if let (Some(inst), Some((_, a))) =
            (self.knowledge.instrument("cssrs_screener"), assessments.iter().rev().find(|(_, a)| a.instrument == "cssrs_screener"))
        {
            intake.cssrs_triage = inst.score(&a.answers, None).ok().and_then(|s| s.triage);
            prov.push(("C-SSRS".into(), a.taken_at.format("%Y-%m-%d").to_string()));
        }
        if let (Some(inst), Some((_, a))) =
            (self.knowledge.instrument("phq9"), assessments.iter().rev().find(|(_, a)| a.instrument == "phq9"))
        {
            let idx = inst.items.iter().position(|i| i.key == "q9");
            intake.phq9_item9 = idx.and_then(|i| a.answers.get(i).copied().flatten());
            prov.push(("PHQ-9".into(), a.taken_at.format("%Y-%m-%d").to_string()));
        }
        Ok((intake, prov))
    }

    /// The latest signed screening of a patient (not voided), if any.
    async fn signed_screening(&self, p: &Principal, patient: PatientId) -> Result<Option<(RecordVersion, ScreeningRecord)>, AppError> {
        let records = self.store.current_records(&self.ctx(p, "treatment"), patient).await?;
        Ok(records
            .into_iter()
            .filter(|v| !v.is_void())
            .filter_map(|v| match &v.record {
                ClinicalRecord::Screening(s) => Some((v.clone(), s.clone())),
                _ => None,
            })
            .max_by_key(|(v, _)| v.provenance.recorded_at))
    }

    /// The screening page: the intake from the chart, the verdict now, the signed verdict.
    pub async fn screening(&self, p: &Principal, patient: PatientId) -> Result<ScreeningView, AppError> {
        self.authorize(p, Permission::ReadPatients, "Screening").await?;
        self.authorize_patient(p, patient).await?;
        let (intake, provenance) = self.screening_intake(p, patient).await?;
        let signed = self.signed_screening(p, patient).await?;
        // An acceptance holds only while the finding rests on the same data it had when accepted.
        let bare = screen(&intake, &self.knowledge.screening, &[]);
        let accepted: Vec<String> = signed.as_ref().map(|(_, s)| s.acceptances_in_force(&bare)).unwrap_or_default();
        let screening = screen(&intake, &self.knowledge.screening, &accepted);
        let new_since_signed = match &signed {
            Some((_, s)) => new_since(s, &screening).into_iter().cloned().collect(),
            None => Vec::new(),
        };
        Ok(ScreeningView {
            intake,
            provenance,
            screening,
            signed,
            new_since_signed,
            knowledge_version: self.knowledge.screening.version.clone(),
        })
    }

    /// Signs the screening as it stands now: a new version of the patient's screening record
    /// with the verdict, the findings, the trials and the acceptances. Accepting a finding needs
    /// the medical director and a reason; an absolute contraindication cannot be accepted.
    pub async fn sign_screening(
        &self,
        p: &Principal,
        patient: PatientId,
        input: &SignInput,
    ) -> Result<(RecordVersion, ScreeningRecord), AppError> {
        self.authorize(p, Permission::SignScreening, "Screening").await?;
        self.authorize_patient(p, patient).await?;
        let mut e = FieldErrors::new();
        let mut acceptances: Vec<Acceptance> = Vec::new();
        if !input.acceptances.is_empty() && !p.can(Permission::AcceptScreeningFinding) {
            self.authorize(p, Permission::AcceptScreeningFinding, "Screening").await?;
        }
        let (intake, _) = self.screening_intake(p, patient).await?;
        let bare = screen(&intake, &self.knowledge.screening, &[]);
        for (code, reason) in &input.acceptances {
            let field = format!("accept.{code}");
            match bare.findings.iter().find(|f| &f.code == code) {
                None => e.add(&field, "is not a finding of this screening now; reload the page"),
                Some(f) if f.severity == Severity::Exclusion => {
                    e.add(&field, format!("{} is an absolute contraindication and cannot be accepted by anyone", f.title))
                }
                Some(f) if f.severity != Severity::Review => e.add(&field, format!("{} does not need review; nothing to accept", f.title)),
                Some(f) => {
                    if let Some(r) = e.check(&format!("reason.{code}"), Reason::parse(reason)) {
                        acceptances.push(Acceptance { code: code.clone(), trigger: f.trigger.clone(), reason: r.as_str().to_owned() });
                    }
                }
            }
        }
        let note = e.check("note", ketacare_domain::validation::optional_note(&input.note, 2000));
        let prior = self.signed_screening(p, patient).await?;
        if prior.as_ref().map(|(v, _)| v.version) != input.base_version {
            return Err(AppError::Conflict(
                "the screening was signed by someone else meanwhile; reload the page and check it again".into(),
            ));
        }
        e.into_result()?;
        let codes: Vec<String> = acceptances.iter().map(|a| a.code.clone()).collect();
        let s = screen(&intake, &self.knowledge.screening, &codes);
        let content = ScreeningRecord {
            verdict: s.verdict,
            findings: s.findings,
            trials: s.trials,
            resistance: s.resistance,
            resistance_definition: s.resistance_definition,
            acceptances,
            knowledge_version: self.knowledge.screening.version.clone(),
            note: note.flatten(),
        };
        let provenance = self.provenance(p);
        let v = match prior {
            None => Self::first_version(patient, ClinicalRecord::Screening(content.clone()), provenance),
            Some((prev, _)) => RecordVersion {
                record_id: prev.record_id,
                version_id: VersionId::from_uuid(Uuid::new_v4()),
                version: prev.version + 1,
                supersedes: Some(prev.version_id),
                patient_id: patient,
                action: VersionAction::Amend,
                record: ClinicalRecord::Screening(content.clone()),
                reason: Some(Reason::parse("screening signed again").map_err(AppError::Internal)?),
                provenance,
            },
        };
        self.store.append_record_version(&self.ctx(p, "treatment"), &v).await?;
        Ok((v, content))
    }

    /// The re-check before a treatment session: refuses the session while an absolute
    /// contraindication stands (named, with what to do).
    pub(crate) async fn recheck_before_session(&self, p: &Principal, patient: PatientId) -> Result<(), AppError> {
        let view = self.screening(p, patient).await?;
        let blocking: Vec<&Finding> = view.screening.findings.iter().filter(|f| f.severity == Severity::Exclusion).collect();
        if blocking.is_empty() {
            return Ok(());
        }
        let what: Vec<String> = blocking.iter().map(|f| format!("{} ({})", f.title, f.trigger)).collect();
        Err(AppError::Validation(FieldErrors::single(
            "encounter_kind",
            format!(
                "A treatment session cannot start while an absolute contraindication stands: {}. See the patient's screening.",
                what.join("; ")
            ),
        )))
    }

    /// Records resting blood pressure and heart rate as three observations (LOINC, UCUM).
    pub async fn record_vitals(&self, p: &Principal, patient: PatientId, input: &VitalsInput) -> Result<Vec<RecordVersion>, AppError> {
        self.authorize(p, Permission::WriteClinical, "Record").await?;
        self.authorize_patient(p, patient).await?;
        self.patient(p, patient).await?;
        let mut e = FieldErrors::new();
        let now = self.clock.now();
        let at = parse_at(&input.measured_at, now, "measured_at", &mut e);
        let s = quantity(&input.systolic, "systolic", 50, 300, "mmHg", &mut e);
        let d = quantity(&input.diastolic, "diastolic", 20, 200, "mmHg", &mut e);
        let hr = quantity(&input.heart_rate, "heart_rate", 20, 250, "beats per minute", &mut e);
        if s.is_none() && input.systolic.trim().is_empty() {
            e.add("systolic", "is required (mmHg)");
        }
        if d.is_none() && input.diastolic.trim().is_empty() {
            e.add("diastolic", "is required (mmHg)");
        }
        if let (Some(s), Some(d)) = (s, d) {
            if d >= s {
                e.add("diastolic", format!("must be below the systolic pressure ({s} mmHg): are the two swapped?"));
            }
        }
        e.into_result()?;
        // One provenance for the readings taken together, so they stay paired.
        let provenance = self.provenance(p);
        let mut out = Vec::new();
        let items = [
            (loinc::SYSTOLIC_BP, "Systolic blood pressure", s, "mm[Hg]"),
            (loinc::DIASTOLIC_BP, "Diastolic blood pressure", d, "mm[Hg]"),
            (loinc::HEART_RATE, "Heart rate", hr, "/min"),
        ];
        for (code, display, value, unit) in items {
            let Some(value) = value else { continue };
            out.push(Self::observation(patient, code, display, value, unit, at, &provenance)?);
        }
        self.store.append_record_versions(&self.ctx(p, "treatment"), &out).await?;
        Ok(out)
    }

    /// Records liver tests as observations (LOINC, UCUM).
    pub async fn record_liver_tests(&self, p: &Principal, patient: PatientId, input: &LiverInput) -> Result<Vec<RecordVersion>, AppError> {
        self.authorize(p, Permission::WriteClinical, "Record").await?;
        self.authorize_patient(p, patient).await?;
        self.patient(p, patient).await?;
        let mut e = FieldErrors::new();
        let now = self.clock.now();
        let at = parse_at(&input.sampled_at, now, "sampled_at", &mut e);
        let alt = quantity(&input.alt, "alt", 0, 100_000, "U/L", &mut e);
        let ast = quantity(&input.ast, "ast", 0, 100_000, "U/L", &mut e);
        let alp = quantity(&input.alp, "alp", 0, 100_000, "U/L", &mut e);
        let bili = quantity(&input.bilirubin, "bilirubin", 0, 10_000, "µmol/L", &mut e);
        if alt.is_none() && ast.is_none() && e.is_empty() {
            e.add("alt", "give at least ALT or AST (U/L)");
        }
        e.into_result()?;
        let provenance = self.provenance(p);
        let mut out = Vec::new();
        let items = [
            (loinc::ALT, "Alanine aminotransferase (ALT)", alt, "U/L"),
            (loinc::AST, "Aspartate aminotransferase (AST)", ast, "U/L"),
            (loinc::ALP, "Alkaline phosphatase (ALP)", alp, "U/L"),
            (loinc::BILIRUBIN_TOTAL, "Bilirubin, total", bili, "umol/L"),
        ];
        for (code, display, value, unit) in items {
            let Some(value) = value else { continue };
            out.push(Self::observation(patient, code, display, value, unit, at, &provenance)?);
        }
        self.store.append_record_versions(&self.ctx(p, "treatment"), &out).await?;
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn observation(
        patient: PatientId,
        code: &str,
        display: &str,
        value: Decimal,
        unit: &str,
        at: DateTime<Utc>,
        provenance: &ketacare_domain::record::Provenance,
    ) -> Result<RecordVersion, AppError> {
        let coding = Coding::new(CodeSystem::Loinc, code, display).map_err(AppError::Internal)?;
        let unit = UcumUnit::parse(unit).map_err(AppError::Internal)?;
        let obs =
            Observation { code: coding, value: ObservationValue::Quantity { value, unit }, effective: at, acknowledged_warnings: vec![] };
        Ok(Self::first_version(patient, ClinicalRecord::Observation(obs), provenance.clone()))
    }
}

/// Whether a record input starts a treatment session.
pub(crate) fn is_treatment_session(r: &ClinicalRecord) -> bool {
    matches!(r, ClinicalRecord::Encounter(e) if e.kind == EncounterKind::Treatment)
}
