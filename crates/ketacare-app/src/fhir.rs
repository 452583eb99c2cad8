//! FHIR R4 use cases: reading a patient's resources, searching, the bulk export and the import
//! of a transaction Bundle, each authorised and audited like the rest of the application.
//!
//! Who sees what: clinical staff (permission `ReadPatients`) read identified resources;
//! researchers (`ReadDeidentified` only) are refused the identified reads and searches (403,
//! audited) and get the bulk export de-identified: the patient is their research id, dates are
//! shifted by the patient's offset, names, identifiers, contact details, device ids and free
//! text are left out, and resource ids are keyed pseudonyms.

use crate::{App, AppError, Principal};
use chrono::{DateTime, Utc};
use ketacare_db::session::{SessionEvent, TreatmentSession};
use ketacare_db::{AuditCtx, AuditFilter, Page};
use ketacare_domain::access::Permission;
use ketacare_domain::audit::{AuditAction, AuditEvent, AuditOutcome};
use ketacare_domain::deid::{age_on, OLDEST_EXACT_AGE};
use ketacare_domain::ids::{PatientId, RecordId, VersionId};
use ketacare_domain::patient::Mrn;
use ketacare_domain::record::{ClinicalRecord, PatientVersion, Reason, RecordKind, RecordVersion, VersionAction};
use ketacare_domain::session::AdverseEvent;
use ketacare_fhir::bundle::EntryResponse;
use ketacare_fhir::import::{ImportContext, Outcome};
use ketacare_fhir::resources::{self, PatientData, Reading, SessionAdverseEvent, SessionData};
use ketacare_fhir::search::Search;
use ketacare_fhir::{Catalog, Problem, Value, View};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use uuid::Uuid;

/// The resource types of the bulk export (all patient data, and the Questionnaires).
pub const EXPORT_TYPES: [&str; 13] = [
    "Patient",
    "Condition",
    "Encounter",
    "Observation",
    "QuestionnaireResponse",
    "MedicationRequest",
    "MedicationAdministration",
    "MedicationStatement",
    "AllergyIntolerance",
    "AdverseEvent",
    "CarePlan",
    "Provenance",
    "Questionnaire",
];

/// One NDJSON file of a bulk export.
#[derive(Clone, Debug)]
pub struct ExportFile {
    /// Resource type.
    pub resource_type: String,
    /// One resource per line.
    pub ndjson: String,
    /// Number of resources.
    pub count: usize,
}

/// A finished bulk export.
#[derive(Clone, Debug)]
pub struct BulkExport {
    /// When the export read the data.
    pub transaction_time: DateTime<Utc>,
    /// Whether the resources are de-identified.
    pub deidentified: bool,
    /// One file per resource type that has resources.
    pub files: Vec<ExportFile>,
    /// Patients exported.
    pub patients: usize,
}

/// What an import wrote.
#[derive(Clone, Debug)]
pub struct ImportResult {
    /// The patient.
    pub patient_id: PatientId,
    /// Whether the patient was registered by the import (else the chart was found by MRN).
    pub created: bool,
    /// One response per Bundle entry, in order.
    pub entries: Vec<EntryResponse>,
}

fn fhir_type_of(r: &ClinicalRecord) -> &'static str {
    match r {
        ClinicalRecord::Diagnosis(_) | ClinicalRecord::Condition(_) => "Condition",
        ClinicalRecord::Medication(_) => "MedicationStatement",
        ClinicalRecord::Allergy(_) => "AllergyIntolerance",
        ClinicalRecord::Assessment(_) => "QuestionnaireResponse",
        ClinicalRecord::Encounter(_) => "Encounter",
        ClinicalRecord::DoseOrder(_) => "MedicationRequest",
        ClinicalRecord::TreatmentPlan(_) | ClinicalRecord::CarePlan(_) => "CarePlan",
        ClinicalRecord::SafetyEvent(_) => "AdverseEvent",
        ClinicalRecord::Observation(_) | ClinicalRecord::LabResult(_) => "Observation",
        ClinicalRecord::PriorTreatment(_) | ClinicalRecord::Screening(_) | ClinicalRecord::SafetyReview(_) => "Basic",
    }
}

/// The fields of an `adverse_event` session event (`key=value` lines).
fn adverse_event(e: &SessionEvent) -> AdverseEvent {
    let field = |k: &str| e.detail.lines().find_map(|l| l.strip_prefix(&format!("{k}="))).unwrap_or("").trim().to_owned();
    AdverseEvent {
        kind: field("kind"),
        description: Some(field("description")).filter(|d| !d.is_empty()),
        grade: field("grade").parse().unwrap_or(1),
        serious: field("serious") == "yes",
        action: field("action"),
        outcome: field("outcome"),
    }
}

/// What the FHIR mapping needs of the knowledge `k`.
pub fn catalog(k: &ketacare_knowledge::Knowledge) -> Catalog<'_> {
    Catalog::from_knowledge(k)
}

impl App {
    /// What the FHIR mapping needs of the knowledge in force.
    pub fn fhir_catalog(&self) -> Catalog<'_> {
        catalog(&self.knowledge)
    }

    fn research_view(&self, v: &PatientVersion) -> View {
        let deid = self.deidentifier();
        let key = self.settings.pseudonym_key.clone();
        let today = self.clock.now().date_naive();
        View::Deidentified {
            research_id: deid.research_id(v.patient_id),
            shift: deid.shift(v.patient_id),
            over_89: age_on(v.demographics.date_of_birth.date(), today) > OLDEST_EXACT_AGE,
            pseudonym: Arc::new(move |real: &str| {
                let d = Sha256::digest(format!("{key}:fhir-id:{real}").as_bytes());
                d.iter().take(16).map(|b| format!("{b:02x}")).collect()
            }),
        }
    }

    /// Everything of one patient the resources are made from (each read audited with `ctx`).
    async fn fhir_data(&self, ctx: &AuditCtx, patient: PatientVersion) -> Result<PatientData, AppError> {
        let id = patient.patient_id;
        let records: Vec<RecordVersion> = self.store.current_records(ctx, id).await?.into_iter().filter(|r| !r.is_void()).collect();
        let mut sessions = Vec::new();
        for s in self.store.patient_sessions(ctx, id).await? {
            sessions.push(self.fhir_session(ctx, s).await?);
        }
        sessions.sort_by_key(|s| s.scheduled_at);
        Ok(PatientData { patient, records, sessions, now: self.clock.now() })
    }

    async fn fhir_session(&self, ctx: &AuditCtx, s: TreatmentSession) -> Result<SessionData, AppError> {
        let events = self.store.session_events(ctx, s.id).await?;
        let readings = self.store.session_readings(ctx, s.id, None).await?;
        Ok(SessionData {
            id: s.id,
            phase: s.phase,
            scheduled_at: s.scheduled_at,
            dose_started_at: s.dose_started_at,
            dose_ended_at: s.dose_ended_at,
            signed_at: s.signed_at,
            order_id: s.order_id,
            stopped_early: events.iter().any(|e| e.kind == "dose" && e.detail.starts_with("Dose stopped early")),
            chair: s.chair,
            readings: readings
                .into_iter()
                .map(|r| Reading { id: r.id, vital: r.vital, value: r.value, observed_at: r.observed_at, device_id: r.device_id })
                .collect(),
            adverse_events: events
                .iter()
                .filter(|e| e.kind == "adverse_event")
                .map(|e| SessionAdverseEvent { id: e.id, at: e.at, event: adverse_event(e), recorded_by: e.by_name.clone() })
                .collect(),
        })
    }

    /// Every resource of one patient, identified (clinical staff only; researchers get 403).
    pub async fn fhir_everything(&self, p: &Principal, id: PatientId) -> Result<Vec<Value>, AppError> {
        self.authorize_patient(p, id).await?;
        let patient = self.patient(p, id).await?;
        let data = self.fhir_data(&self.ctx(p, "treatment"), patient).await?;
        Ok(resources::patient_resources(&data, &self.fhir_catalog(), &View::Identified))
    }

    /// The Questionnaires of the instruments in force.
    pub fn fhir_questionnaires(&self) -> Vec<Value> {
        self.knowledge.instruments.iter().map(resources::questionnaire).collect()
    }

    /// One resource by type and id (clinical staff only). The record behind the id is found
    /// first (audited), then the patient's resources are made and the one asked for returned.
    pub async fn fhir_read(&self, p: &Principal, resource_type: &str, id: &str) -> Result<Value, AppError> {
        if resource_type == "Questionnaire" {
            return self.fhir_questionnaires().into_iter().find(|q| resources::resource_id(q) == id).ok_or(AppError::NotFound);
        }
        self.authorize(p, Permission::ReadPatients, resource_type).await?;
        if resource_type == "Patient" {
            let pid = PatientId::parse(id).map_err(|_| AppError::NotFound)?;
            let v = self.patient(p, pid).await?;
            return Ok(resources::patient(&v, &View::Identified));
        }
        let base = match ketacare_fhir::split_pair(id) {
            Some((a, _)) => a.to_string(),
            None => id.split_once("-total").map(|(a, _)| a).or_else(|| id.rsplit_once("-sub").map(|(a, _)| a)).unwrap_or(id).to_owned(),
        };
        let rid = RecordId::parse(&base).map_err(|_| AppError::NotFound)?;
        // A record (or a treatment session, whose id is its encounter's); the Provenance of a
        // demographics version starts with the patient's id instead.
        let patient_id = match self.record(p, rid).await {
            Ok(record) => record.patient_id,
            Err(AppError::NotFound) if resource_type == "Provenance" => {
                self.patient(p, PatientId::from_uuid(rid.as_uuid())).await?.patient_id
            }
            Err(e) => return Err(e),
        };
        let all = self.fhir_everything(p, patient_id).await?;
        all.into_iter().find(|r| resources::resource_type(r) == resource_type && resources::resource_id(r) == id).ok_or(AppError::NotFound)
    }

    /// A search (clinical staff; the audit trail for those who may read it).
    pub async fn fhir_search(&self, p: &Principal, resource_type: &str, s: &Search) -> Result<Vec<Value>, AppError> {
        match resource_type {
            "Questionnaire" => return Ok(self.fhir_questionnaires().into_iter().filter(|q| s.matches(q)).collect()),
            "AuditEvent" => return self.fhir_audit_search(p, s).await,
            _ => {}
        }
        self.authorize(p, Permission::ReadPatients, resource_type).await?;
        if resource_type == "Patient" {
            let found: Vec<PatientVersion> = if let Some(id) = &s.id {
                match PatientId::parse(id) {
                    Ok(pid) => match self.patient(p, pid).await {
                        Ok(v) => vec![v],
                        Err(AppError::NotFound | AppError::OutsideCareTeam(_)) => vec![],
                        Err(e) => return Err(e),
                    },
                    Err(_) => vec![],
                }
            } else if let Some(t) = &s.identifier {
                if t.system.as_deref().is_some_and(|sys| sys != ketacare_fhir::codes::MRN) {
                    vec![]
                } else {
                    match Mrn::parse(&t.code) {
                        Ok(_) => match self.find_by_mrn(p, &t.code).await {
                            Ok(v) => vec![v],
                            Err(AppError::NotFound) => vec![],
                            Err(e) => return Err(e),
                        },
                        Err(_) => vec![],
                    }
                }
            } else {
                self.search_patients(p, s.name.as_deref().unwrap_or(""), Page { limit: 500, offset: 0 }).await?
            };
            return Ok(found.iter().map(|v| resources::patient(v, &View::Identified)).filter(|r| s.matches(r)).collect());
        }
        let Some(pid) = s.patient.as_deref().and_then(|x| PatientId::parse(x).ok()) else { return Err(AppError::NotFound) };
        let all = self.fhir_everything(p, pid).await?;
        Ok(all.into_iter().filter(|r| resources::resource_type(r) == resource_type && s.matches(r)).collect())
    }

    async fn fhir_audit_search(&self, p: &Principal, s: &Search) -> Result<Vec<Value>, AppError> {
        self.authorize(p, Permission::ReadAudit, "AuditEvent").await?;
        let mut f = AuditFilter { page: Page { limit: 500, offset: 0 }, ..Default::default() };
        if let Some(pid) = &s.patient {
            match PatientId::parse(pid) {
                Ok(id) => f.patient_id = Some(id),
                Err(_) => return Ok(Vec::new()),
            }
        }
        f.action = s.action.as_deref().and_then(|a| ketacare_domain::audit::AuditAction::parse(a).ok());
        for d in &s.dates {
            use ketacare_fhir::search::Prefix;
            let (from, to) = match d.prefix {
                Prefix::Eq => (Some(d.lo), Some(d.hi)),
                Prefix::Gt => (Some(d.hi), None),
                Prefix::Ge => (Some(d.lo), None),
                Prefix::Lt => (None, Some(d.lo)),
                Prefix::Le => (None, Some(d.hi)),
            };
            if let Some(x) = from {
                f.from = Some(f.from.map_or(x, |y| y.max(x)));
            }
            if let Some(x) = to {
                let x = x + chrono::Duration::milliseconds(1);
                f.to = Some(f.to.map_or(x, |y| y.min(x)));
            }
        }
        let rows = self.search_audit(p, &f).await?;
        Ok(rows.iter().map(resources::audit_event).filter(|r| s.matches(r)).collect())
    }

    /// The bulk export of every current patient: identified for clinical staff, de-identified
    /// for researchers. `types` limits the resource types (empty: all of [`EXPORT_TYPES`]);
    /// `since` keeps what was recorded at or after it. Every patient read is audited, and the
    /// export itself once more with its counts.
    pub async fn fhir_export(&self, p: &Principal, types: &[String], since: Option<DateTime<Utc>>) -> Result<BulkExport, AppError> {
        let identified = p.can(Permission::ReadPatients);
        if !identified {
            self.authorize(p, Permission::ReadDeidentified, "BulkExport").await?;
        }
        let ctx = self.ctx(p, if identified { "treatment" } else { "research" });
        let transaction_time = self.clock.now();
        let wanted = |t: &str| types.is_empty() || types.iter().any(|x| x == t);
        let cat = self.fhir_catalog();
        let mut by_type: Vec<(String, Vec<String>)> =
            EXPORT_TYPES.iter().filter(|t| wanted(t)).map(|t| ((*t).to_owned(), Vec::new())).collect();
        let mut push = |r: &Value| {
            if let Some((_, lines)) = by_type.iter_mut().find(|(t, _)| t == resources::resource_type(r)) {
                lines.push(r.to_string());
            }
        };
        // Clinical staff export the patients of their care teams (not those opened in an
        // emergency); researchers all, de-identified.
        let scope = if identified { self.usual_patient_scope(p).await? } else { crate::access::PatientScope::All };
        let mut patients = 0;
        let mut offset = 0;
        loop {
            let page = self.store.search_patients(&ctx, "", Page { limit: 500, offset }).await?;
            let n = page.len();
            for v in page {
                if !scope.allows(v.patient_id) {
                    continue;
                }
                let view = if identified { View::Identified } else { self.research_view(&v) };
                let mut data = self.fhir_data(&ctx, v).await?;
                if let Some(t) = since {
                    keep_since(&mut data, t);
                }
                let patient_changed = since.is_none_or(|t| data.patient.provenance.recorded_at >= t);
                for r in resources::patient_resources(&data, &cat, &view) {
                    if resources::resource_type(&r) == "Patient" && !patient_changed {
                        continue;
                    }
                    push(&r);
                }
                patients += 1;
            }
            if n < 500 {
                break;
            }
            offset += 500;
        }
        if wanted("Questionnaire") && since.is_none() {
            for q in self.fhir_questionnaires() {
                push(&q);
            }
        }
        let files: Vec<ExportFile> = by_type
            .into_iter()
            .filter(|(_, l)| !l.is_empty())
            .map(|(t, lines)| ExportFile { resource_type: t, count: lines.len(), ndjson: lines.join("\n") + "\n" })
            .collect();
        let total: usize = files.iter().map(|f| f.count).sum();
        let e = AuditEvent {
            recorded_at: self.clock.now(),
            actor: p.actor(),
            action: AuditAction::Execute,
            outcome: AuditOutcome::Success,
            entity_type: "BulkExport".into(),
            entity_id: None,
            patient_id: None,
            detail: Some(format!(
                "purpose={}; FHIR bulk export, {patients} patients, {total} resources, {}",
                ctx.purpose,
                if identified { "identified" } else { "de-identified" }
            )),
        };
        self.store.append_audit(&e).await?;
        Ok(BulkExport { transaction_time, deidentified: !identified, files, patients })
    }

    /// Audits the download of one file of a finished export (by its owner).
    pub async fn fhir_export_downloaded(&self, p: &Principal, job: &str, resource_type: &str, count: usize) -> Result<(), AppError> {
        let e = AuditEvent {
            recorded_at: self.clock.now(),
            actor: p.actor(),
            action: AuditAction::Read,
            outcome: AuditOutcome::Success,
            entity_type: "BulkExport".into(),
            entity_id: Some(job.to_owned()),
            patient_id: None,
            detail: Some(format!("file {resource_type}, {count} resources")),
        };
        Ok(self.store.append_audit(&e).await?)
    }

    /// Imports a transaction Bundle: one patient (found by MRN, else registered) with their
    /// records, all in one transaction. The outer error is the caller's (not permitted,
    /// storage); the inner one lists every bad resource, and then nothing was written.
    /// Records identical to a current record of the chart are not written twice.
    pub async fn fhir_import(
        &self,
        p: &Principal,
        bundle: &Value,
        acknowledged: &[String],
    ) -> Result<Result<ImportResult, Vec<Problem>>, AppError> {
        self.authorize(p, Permission::WriteDemographics, "Bundle").await?;
        self.authorize(p, Permission::WriteClinical, "Bundle").await?;
        let mrn = match ketacare_fhir::import::bundle_mrn(bundle) {
            Ok(m) => m,
            Err(problems) => return Ok(Err(problems)),
        };
        let ctx = self.ctx(p, "treatment");
        let existing = self
            .store
            .search_patients(&ctx, mrn.as_str(), Page { limit: 5, offset: 0 })
            .await?
            .into_iter()
            .find(|v| v.demographics.mrn == mrn);
        let chart = match &existing {
            Some(v) => Some(self.chart(p, v.patient_id).await?),
            None => None,
        };
        let ictx = ImportContext {
            catalog: self.fhir_catalog(),
            now: self.clock.now(),
            chart_weights: chart.as_ref().map(|c| c.weights.iter().map(|m| (m.effective, m.value)).collect()).unwrap_or_default(),
            chart_heights: chart.as_ref().map(|c| c.heights.iter().map(|m| (m.effective, m.value)).collect()).unwrap_or_default(),
            acknowledged,
        };
        let parsed = match ketacare_fhir::import::parse(bundle, &ictx) {
            Ok(x) => x,
            Err(problems) => return Ok(Err(problems)),
        };
        let diagnoses =
            parsed.entries.iter().any(|o| matches!(o, Outcome::Records(r) if r.iter().any(|x| x.kind() == RecordKind::Diagnosis)));
        if diagnoses {
            self.authorize(p, Permission::WriteDiagnoses, "Bundle").await?;
        }
        let provenance = self.provenance(p);
        let (patient_id, patient_version, created) = match &existing {
            None => {
                let v = PatientVersion {
                    patient_id: PatientId::from_uuid(Uuid::new_v4()),
                    version_id: VersionId::from_uuid(Uuid::new_v4()),
                    version: 1,
                    action: VersionAction::Create,
                    demographics: parsed.demographics.clone(),
                    reason: None,
                    provenance: provenance.clone(),
                };
                (v.patient_id, Some(v), true)
            }
            Some(cur) if cur.demographics != parsed.demographics => {
                let v = PatientVersion {
                    patient_id: cur.patient_id,
                    version_id: VersionId::from_uuid(Uuid::new_v4()),
                    version: cur.version + 1,
                    action: VersionAction::Amend,
                    demographics: parsed.demographics.clone(),
                    reason: Some(Reason::parse("imported from a FHIR transaction Bundle").map_err(AppError::Internal)?),
                    provenance: provenance.clone(),
                };
                (cur.patient_id, Some(v), false)
            }
            Some(cur) => (cur.patient_id, None, false),
        };
        let current: Vec<&RecordVersion> = chart.as_ref().map(|c| c.records.iter().collect()).unwrap_or_default();
        let mut writes: Vec<RecordVersion> = Vec::new();
        let mut entries = Vec::new();
        // A resource this server exported from the same chart names its record by its id: it is
        // on the chart already, whatever the import leaves out (session links, the order a
        // medication came from).
        let same_record = |i: usize| -> Option<&RecordVersion> {
            let id = bundle.pointer(&format!("/entry/{i}/resource/id")).and_then(Value::as_str)?;
            let base = match ketacare_fhir::split_pair(id) {
                Some((a, _)) => a.to_string(),
                None => id.split_once("-total").map(|(a, _)| a).or_else(|| id.rsplit_once("-sub").map(|(a, _)| a)).unwrap_or(id).to_owned(),
            };
            let rid = RecordId::parse(&base).ok()?;
            current.iter().find(|c| c.record_id == rid).copied()
        };
        for (i, o) in parsed.entries.iter().enumerate() {
            if let (Outcome::Records(recs), Some(same)) = (o, same_record(i)) {
                entries.push(EntryResponse {
                    status: "200 OK".into(),
                    location: Some(format!("{}/{}/_history/{}", fhir_type_of(&same.record), same.record_id, same.version)),
                    notes: vec![format!("already on the chart (the same record): {} not written again", recs.len())],
                });
                continue;
            }
            entries.push(match o {
                Outcome::Patient => {
                    let (status, version) = match (&patient_version, &existing) {
                        (Some(v), _) => (if created { "201 Created" } else { "200 OK" }, v.version),
                        (None, Some(cur)) => ("200 OK", cur.version),
                        (None, None) => ("200 OK", 1),
                    };
                    EntryResponse {
                        status: status.into(),
                        location: Some(format!("Patient/{patient_id}/_history/{version}")),
                        notes: vec![],
                    }
                }
                Outcome::Skipped(why) => EntryResponse { status: "200 OK".into(), location: None, notes: vec![why.clone()] },
                Outcome::Records(recs) => {
                    let mut location = None;
                    let mut notes = Vec::new();
                    let mut written = false;
                    for rec in recs {
                        if let Some(same) = current.iter().find(|c| c.record == *rec) {
                            notes.push("already on the chart: not written again".to_owned());
                            location.get_or_insert(format!("{}/{}/_history/{}", fhir_type_of(rec), same.record_id, same.version));
                            continue;
                        }
                        let v = App::first_version(patient_id, rec.clone(), provenance.clone());
                        location.get_or_insert(format!("{}/{}/_history/1", fhir_type_of(rec), v.record_id));
                        writes.push(v);
                        written = true;
                    }
                    if recs.len() > 1 {
                        notes.push(format!("stored as {} records", recs.len()));
                    }
                    EntryResponse { status: if written { "201 Created" } else { "200 OK" }.into(), location, notes }
                }
            });
        }
        self.store.import_patient(&ctx, patient_version.as_ref(), &writes).await.map_err(|e| match AppError::from(e) {
            AppError::Conflict(c) if c.contains("mrn") => {
                AppError::Conflict("the MRN is held by another registration (perhaps a voided one); nothing was imported".into())
            }
            other => other,
        })?;
        if created {
            self.add_registrant_to_team(p, patient_id).await?;
        }
        Ok(Ok(ImportResult { patient_id, created, entries }))
    }
}

/// Keeps what was recorded at or after `since` (records by their version's time; session
/// readings and adverse events by when they were taken).
fn keep_since(data: &mut PatientData, since: DateTime<Utc>) {
    data.records.retain(|r| r.provenance.recorded_at >= since);
    for s in &mut data.sessions {
        s.readings.retain(|r| r.observed_at >= since);
        s.adverse_events.retain(|a| a.at >= since);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use ketacare_domain::ids::UserId;
    use ketacare_domain::session::Phase;

    #[test]
    fn adverse_events_are_read_back_from_the_session_record() {
        let e = SessionEvent {
            id: Uuid::new_v4(),
            session_id: RecordId::from_uuid(Uuid::new_v4()),
            seq: 4,
            kind: "adverse_event".into(),
            at: Utc.with_ymd_and_hms(2026, 11, 26, 10, 0, 0).unwrap(),
            user_id: UserId::from_uuid(Uuid::new_v4()),
            by_name: "Nina".into(),
            phase: Phase::Monitoring,
            detail: "kind=nausea\ngrade=2\nserious=no\naction=treated\noutcome=resolved\ndescription=".into(),
            reason: None,
        };
        let ae = adverse_event(&e);
        assert_eq!((ae.kind.as_str(), ae.grade, ae.serious, ae.outcome.as_str()), ("nausea", 2, false, "resolved"));
        assert_eq!(ae.description, None);
    }
}
