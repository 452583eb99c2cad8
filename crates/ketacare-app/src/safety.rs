//! Long-term safety of a patient and of the clinic: cumulative exposure, signals, bladder and
//! liver surveillance, benefit-risk reviews, the care plan, and the clinic safety board. The rules
//! are in `ketacare_domain::safety`; this layer gathers the chart's data for them and writes the
//! records (each an audited, append-only record version).

use crate::screening::parse_at;
use crate::{App, AppError, Principal};
use chrono::{DateTime, NaiveDate, Utc};
use ketacare_db::Page;
use ketacare_domain::access::Permission;
use ketacare_domain::assessment::DueStatus;
use ketacare_domain::ids::{PatientId, RecordId};
use ketacare_domain::order::{OrderStatus, TreatmentPlanRecord};
use ketacare_domain::record::{ClinicalRecord, Reason, RecordKind, RecordVersion, VersionAction};
use ketacare_domain::safety::{
    assess, CarePlan, DoseEntry, LabInput, LabResult, Level, ReviewDecision, SafetyAssessment, SafetyEvent, SafetyEventInput, SafetyInput,
    SafetyReview,
};
use ketacare_domain::titration::GivenSession;
use ketacare_domain::validation::FieldErrors;
use rust_decimal::Decimal;

/// Baseline and latest total of one rating scale.
#[derive(Clone, Debug)]
pub struct ScaleTrend {
    /// Instrument key.
    pub instrument: String,
    /// Instrument name.
    pub name: String,
    /// Totals over time, oldest first.
    pub points: Vec<(DateTime<Utc>, Decimal)>,
}

/// Everything the patient's safety page shows.
#[derive(Clone, Debug)]
pub struct SafetyView {
    /// Patient.
    pub patient: PatientId,
    /// The rules' findings.
    pub assessment: SafetyAssessment,
    /// Doses given (checked orders), oldest first.
    pub doses: Vec<DoseEntry>,
    /// Sessions with response, benefit and CADSS (the current plan).
    pub sessions: Vec<GivenSession>,
    /// Lab results, oldest first.
    pub labs: Vec<(RecordVersion, LabResult)>,
    /// Safety observations, newest first.
    pub events: Vec<(RecordVersion, SafetyEvent)>,
    /// Anxiety, functioning and bladder scales over time.
    pub scales: Vec<ScaleTrend>,
    /// Signed reviews, newest first.
    pub reviews: Vec<(RecordVersion, SafetyReview)>,
    /// The care plan (current version).
    pub care_plan: Option<(RecordVersion, CarePlan)>,
    /// The current treatment plan (protocol and planned sessions).
    pub plan: Option<(RecordVersion, TreatmentPlanRecord)>,
    /// Current medications.
    pub medications: Vec<String>,
    /// Whether the patient is on maintenance.
    pub on_maintenance: bool,
    /// Adverse events recorded in treatment sessions: when, and a summary.
    pub adverse_events: Vec<(DateTime<Utc>, String)>,
}

/// One row of the clinic safety board.
#[derive(Clone, Debug)]
pub struct BoardRow {
    /// Patient.
    pub patient: PatientId,
    /// MRN.
    pub mrn: String,
    /// Name for the list.
    pub name: String,
    /// Open signals (code, level, title).
    pub signals: Vec<(String, Level, String)>,
    /// Overdue questionnaires.
    pub overdue_questionnaires: usize,
    /// Unacknowledged safety alerts.
    pub open_alerts: usize,
    /// Next review due.
    pub review_due: Option<NaiveDate>,
    /// Next liver panel due.
    pub labs_due: Option<NaiveDate>,
}

impl BoardRow {
    /// Number of review-level signals.
    pub fn review_count(&self) -> usize {
        self.signals.iter().filter(|s| s.1 == Level::Review).count()
    }
}

/// The evidence a benefit-risk review rests on, one line each: the scales at baseline and now,
/// cumulative totals, the latest liver tests, every open signal and the adverse events. The page
/// shows it before signing and the signed review freezes it.
pub fn review_evidence(v: &SafetyView) -> Vec<String> {
    let a = &v.assessment;
    let mut evidence: Vec<String> = Vec::new();
    for s in &v.scales {
        if let (Some(first), Some(last)) = (s.points.first(), s.points.last()) {
            evidence.push(format!(
                "{}: {} at baseline ({}), {} latest ({})",
                s.name,
                first.1.normalize(),
                first.0.format("%Y-%m-%d"),
                last.1.normalize(),
                last.0.format("%Y-%m-%d")
            ));
        }
    }
    for w in &a.cumulative.windows {
        evidence.push(format!("{}: {} doses, {} mg ({} mg/kg)", w.label, w.doses, w.mg.normalize(), w.mg_per_kg.normalize()));
    }
    for l in &a.liver.latest {
        evidence.push(format!(
            "{} {} {} ({} x ULN) on {}",
            l.test.label(),
            l.value.normalize(),
            l.unit,
            l.multiple().normalize(),
            l.sampled_at.format("%Y-%m-%d")
        ));
    }
    for s in &a.signals {
        evidence.push(format!("signal ({}): {}: {}", s.level.code(), s.title, s.data.join("; ")));
    }
    if v.adverse_events.is_empty() {
        evidence.push("adverse events in treatment sessions: none recorded".into());
    }
    for (at, ae) in &v.adverse_events {
        evidence.push(format!("adverse event {}: {ae}", at.format("%Y-%m-%d")));
    }
    evidence
}

fn is_maintenance(plan: &TreatmentPlanRecord) -> bool {
    plan.protocol.contains("maintenance")
}

impl App {
    /// The patient's long-term safety: exposure, signals, labs, bladder, reviews and the care
    /// plan (an audited read of the chart).
    pub async fn safety(&self, p: &Principal, patient: PatientId) -> Result<SafetyView, AppError> {
        self.authorize(p, Permission::ReadPatients, "Safety").await?;
        self.authorize_patient(p, patient).await?;
        let chart = self.chart(p, patient).await?;
        let now = self.clock.now();
        let mut doses = Vec::new();
        let mut labs = Vec::new();
        let mut events = Vec::new();
        let mut reviews = Vec::new();
        let mut care_plan = None;
        let mut plans: Vec<(RecordVersion, TreatmentPlanRecord)> = Vec::new();
        let mut medications = Vec::new();
        let mut diagnoses = Vec::new();
        let today = now.date_naive();
        let mut scales: Vec<ScaleTrend> = Vec::new();
        for v in &chart.records {
            match &v.record {
                ClinicalRecord::DoseOrder(o) if o.status == OrderStatus::Checked => {
                    if let Some(c) = &o.check {
                        doses.push(DoseEntry { at: c.at, mg: o.dose_mg, weight_kg: o.weight_kg });
                    }
                }
                ClinicalRecord::LabResult(l) => labs.push((v.clone(), l.clone())),
                ClinicalRecord::SafetyEvent(e) => events.push((v.clone(), e.clone())),
                ClinicalRecord::SafetyReview(r) => reviews.push((v.clone(), r.clone())),
                ClinicalRecord::CarePlan(c) => care_plan = Some((v.clone(), c.clone())),
                ClinicalRecord::TreatmentPlan(t) => plans.push((v.clone(), t.clone())),
                ClinicalRecord::Medication(m) if m.stop.is_none_or(|s| s >= today) => {
                    medications.push(format!("{}{}", m.name, m.dose.as_ref().map(|d| format!(" {d}")).unwrap_or_default()))
                }
                ClinicalRecord::Diagnosis(d) => {
                    diagnoses.push((d.condition.code().to_owned(), d.condition.display().to_owned(), v.provenance.recorded_at))
                }
                ClinicalRecord::Condition(c) if c.present => {
                    diagnoses.push((format!("condition:{}", c.condition), c.condition.clone(), v.provenance.recorded_at))
                }
                ClinicalRecord::Assessment(a) if ["icsi", "sds", "qlesq_sf", "hama", "gad7", "lsas"].contains(&a.instrument.as_str()) => {
                    let Some(inst) = self.knowledge.instrument(&a.instrument) else { continue };
                    let Some(total) = inst.score(&a.answers, None).ok().and_then(|s| s.total) else { continue };
                    match scales.iter_mut().find(|s| s.instrument == a.instrument) {
                        Some(s) => s.points.push((a.taken_at, total)),
                        None => scales.push(ScaleTrend {
                            instrument: a.instrument.clone(),
                            name: inst.name.clone(),
                            points: vec![(a.taken_at, total)],
                        }),
                    }
                }
                _ => {}
            }
        }
        doses.sort_by_key(|d| d.at);
        labs.sort_by_key(|(_, l)| l.sampled_at);
        events.sort_by_key(|(_, e)| std::cmp::Reverse(e.at));
        reviews.sort_by_key(|(v, _)| std::cmp::Reverse(v.provenance.recorded_at));
        for s in &mut scales {
            s.points.sort_by_key(|x| x.0);
        }
        plans.sort_by_key(|(v, _)| v.provenance.recorded_at);
        let plan = plans.pop();
        let on_maintenance = plan.as_ref().is_some_and(|(_, t)| is_maintenance(t));
        // The titration review reads the chart again; only a patient with a plan has sessions.
        let sessions = if plan.is_some() {
            match self.titration(p, patient).await {
                Ok(Some(t)) => t.given,
                _ => Vec::new(),
            }
        } else {
            Vec::new()
        };
        let lib = self.drug_library_in_force().await?;
        let route = plan.as_ref().map(|(_, t)| t.route).or_else(|| {
            chart.records.iter().rev().find_map(|v| match &v.record {
                ClinicalRecord::DoseOrder(o) => Some(o.route),
                _ => None,
            })
        });
        let caps = |f: fn(&ketacare_domain::dose::RouteLimits) -> &ketacare_domain::dose::Limits| {
            route.and_then(|r| lib.limits(r)).and_then(|l| {
                let lim = f(l);
                Some((lim.soft.max.as_ref()?.value, lim.hard.max.as_ref()?.value))
            })
        };
        let icsi: Vec<(DateTime<Utc>, Decimal)> =
            scales.iter().find(|s| s.instrument == "icsi").map(|s| s.points.clone()).unwrap_or_default();
        let lab_values: Vec<LabResult> = labs.iter().map(|(_, l)| l.clone()).collect();
        let event_values: Vec<SafetyEvent> = events.iter().map(|(_, e)| e.clone()).collect();
        let input = SafetyInput {
            now,
            on_maintenance,
            maintenance_since: plan.as_ref().filter(|(_, t)| is_maintenance(t)).map(|(_, t)| t.start),
            first_dose: doses.first().map(|d| d.at),
            doses: &doses,
            sessions: &sessions,
            events: &event_values,
            labs: &lab_values,
            icsi: &icsi,
            diagnoses: &diagnoses,
            last_review: reviews.first().map(|(v, r)| (r, v.provenance.recorded_at)),
            caps_7d: caps(|l| &l.cumulative_7d_mg),
            caps_28d: caps(|l| &l.cumulative_28d_mg),
        };
        let assessment = assess(&input, &self.knowledge.safety);
        let mut adverse_events = Vec::new();
        for s in self.store.patient_sessions(&self.ctx(p, "treatment"), patient).await? {
            for e in self.store.session_events(&self.ctx(p, "treatment"), s.id).await? {
                if e.kind == "adverse_event" {
                    let field = |k: &str| e.detail.lines().find_map(|l| l.strip_prefix(&format!("{k}="))).unwrap_or("").to_owned();
                    let serious = if field("serious") == "yes" { ", serious" } else { "" };
                    adverse_events.push((
                        e.at,
                        format!("{} (grade {}{serious}): {}; outcome {}", field("kind"), field("grade"), field("action"), field("outcome")),
                    ));
                }
            }
        }
        adverse_events.sort_by_key(|a| a.0);
        Ok(SafetyView {
            patient,
            assessment,
            doses,
            sessions,
            labs,
            events,
            scales,
            reviews,
            care_plan,
            plan,
            medications,
            on_maintenance,
            adverse_events,
        })
    }

    /// Records a lab result with the laboratory's upper limit of normal.
    pub async fn add_lab_result(
        &self,
        p: &Principal,
        patient: PatientId,
        input: &LabInput,
        sampled_at: &str,
    ) -> Result<RecordVersion, AppError> {
        self.authorize(p, Permission::WriteClinical, "LabResult").await?;
        self.authorize_patient(p, patient).await?;
        let mut e = FieldErrors::new();
        let at = parse_at(sampled_at, self.clock.now(), "sampled_at", &mut e);
        let lab = match input.validate(at) {
            Ok(l) => Some(l),
            Err(x) => {
                e.extend_prefixed("", x);
                None
            }
        };
        e.into_result()?;
        self.patient(p, patient).await?;
        let v = Self::first_version(patient, ClinicalRecord::LabResult(lab.expect("checked")), self.provenance(p));
        self.store.append_record_version(&self.ctx(p, "treatment"), &v).await?;
        Ok(v)
    }

    /// Records a safety observation (request, craving, substance use, toxicology, haematuria).
    pub async fn add_safety_event(
        &self,
        p: &Principal,
        patient: PatientId,
        input: &SafetyEventInput,
        at: &str,
    ) -> Result<RecordVersion, AppError> {
        self.authorize(p, Permission::WriteClinical, "SafetyEvent").await?;
        self.authorize_patient(p, patient).await?;
        let mut e = FieldErrors::new();
        let when = parse_at(at, self.clock.now(), "at", &mut e);
        let ev = match input.validate(when) {
            Ok(x) => Some(x),
            Err(x) => {
                e.extend_prefixed("", x);
                None
            }
        };
        e.into_result()?;
        self.patient(p, patient).await?;
        let v = Self::first_version(patient, ClinicalRecord::SafetyEvent(ev.expect("checked")), self.provenance(p));
        self.store.append_record_version(&self.ctx(p, "treatment"), &v).await?;
        Ok(v)
    }

    /// A prescriber signs a benefit-risk review: the decision with reasons, the evidence seen
    /// (frozen into the record), and the next review date (default: the policy interval).
    pub async fn sign_review(
        &self,
        p: &Principal,
        patient: PatientId,
        decision: &str,
        reasons: &str,
        next_review: &str,
    ) -> Result<RecordVersion, AppError> {
        self.authorize(p, Permission::Prescribe, "SafetyReview").await?;
        self.authorize_patient(p, patient).await?;
        let mut e = FieldErrors::new();
        let decision = ReviewDecision::parse(decision);
        if decision.is_none() {
            e.add("decision", "must be continue, change, taper or stop");
        }
        let reasons = e.check("reasons", Reason::parse(reasons).map(|r| r.as_str().to_owned()));
        let today = self.clock.now().date_naive();
        let interval = self.knowledge.safety.review_interval_days.value.trunc().mantissa() as i64;
        let next = match next_review.trim() {
            "" => Some(today + chrono::Duration::days(interval)),
            t => match NaiveDate::parse_from_str(t, "%Y-%m-%d") {
                Ok(d) if d > today && d <= today + chrono::Duration::days(366) => Some(d),
                Ok(_) => {
                    e.add("next_review", "must be a date after today and within a year");
                    None
                }
                Err(_) => {
                    e.add("next_review", "must be a date such as 2027-03-01, or empty for the clinic's interval");
                    None
                }
            },
        };
        e.into_result()?;
        let view = self.safety(p, patient).await?;
        let a = &view.assessment;
        let evidence = review_evidence(&view);
        let review = SafetyReview {
            decision: decision.expect("checked"),
            reasons: reasons.expect("checked"),
            evidence,
            signals: a.signals.iter().map(|s| s.code.to_owned()).collect(),
            next_review: next.expect("checked"),
        };
        let v = Self::first_version(patient, ClinicalRecord::SafetyReview(review), self.provenance(p));
        self.store.append_record_version(&self.ctx(p, "treatment"), &v).await?;
        Ok(v)
    }

    /// Saves the care plan: the first version, or a new version of the current one (`base_version`
    /// must be the version the editor saw; a reason is required for a change).
    pub async fn save_care_plan(
        &self,
        p: &Principal,
        patient: PatientId,
        plan: CarePlan,
        base: Option<(RecordId, u32)>,
        reason: &str,
    ) -> Result<RecordVersion, AppError> {
        self.authorize(p, Permission::WriteClinical, "CarePlan").await?;
        self.authorize_patient(p, patient).await?;
        plan.check()?;
        let view = self.safety(p, patient).await?;
        let v = match (view.care_plan, base) {
            (None, None) => Self::first_version(patient, ClinicalRecord::CarePlan(plan), self.provenance(p)),
            (Some((cur, _)), Some((id, version))) if cur.record_id == id => {
                if cur.version != version {
                    return Err(AppError::Conflict("the care plan changed since you opened it; reload and try again".into()));
                }
                let reason = Reason::parse(reason).map_err(|m| AppError::Validation(FieldErrors::single("reason", m)))?;
                self.next(p, &cur, VersionAction::Amend, ClinicalRecord::CarePlan(plan), reason)
            }
            (Some(_), _) => return Err(AppError::Conflict("the patient already has a care plan; reload it and change that one".into())),
            (None, Some(_)) => return Err(AppError::NotFound),
        };
        self.store.append_record_version(&self.ctx(p, "treatment"), &v).await?;
        Ok(v)
    }

    /// The clinic safety board: every patient with an open signal, an overdue lab, questionnaire
    /// or review, or an unacknowledged alert (each patient's chart read is audited).
    pub async fn safety_board(&self, p: &Principal) -> Result<Vec<BoardRow>, AppError> {
        self.authorize(p, Permission::ReadPatients, "SafetyBoard").await?;
        let mut rows = Vec::new();
        let mut offset = 0;
        loop {
            let page = self.search_patients(p, "", Page { limit: 500, offset }).await?;
            let n = page.len();
            for pv in page {
                let patient = pv.patient_id;
                let view = self.safety(p, patient).await?;
                let outcomes = self.outcomes(p, patient).await?;
                let overdue = outcomes.due.iter().filter(|d| d.status == DueStatus::Overdue).count();
                let alerts = outcomes.alerts.iter().filter(|a| a.acknowledgement.is_none()).count();
                let signals: Vec<(String, Level, String)> =
                    view.assessment.signals.iter().map(|s| (s.code.to_owned(), s.level, s.title.clone())).collect();
                if signals.is_empty() && overdue == 0 && alerts == 0 {
                    continue;
                }
                let d = &pv.demographics;
                rows.push(BoardRow {
                    patient,
                    mrn: d.mrn.as_str().to_owned(),
                    name: format!("{}, {}", d.name.family(), d.name.given()),
                    signals,
                    overdue_questionnaires: overdue,
                    open_alerts: alerts,
                    review_due: view.assessment.review_due,
                    labs_due: view.assessment.labs_due,
                });
            }
            if n < 500 {
                break;
            }
            offset += 500;
        }
        rows.sort_by_key(|r| {
            (std::cmp::Reverse(r.review_count()), std::cmp::Reverse(r.open_alerts), std::cmp::Reverse(r.signals.len()), r.name.clone())
        });
        Ok(rows)
    }

    /// Current record kinds kept by the safety page (for the generic chart list).
    pub fn safety_kinds() -> [RecordKind; 4] {
        [RecordKind::LabResult, RecordKind::SafetyEvent, RecordKind::SafetyReview, RecordKind::CarePlan]
    }
}
