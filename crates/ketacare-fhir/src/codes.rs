//! The code systems, codes and profiles of the FHIR resources, each with its source.
//!
//! Clinical codes the domain reasons about (vital signs, weight, height, lab tests, instrument
//! items and totals, the drug's RxNorm code) come from the domain and the knowledge files; this
//! module holds the FHIR terminology around them.

/// UCUM, the unit system of every quantity.
pub const UCUM: &str = "http://unitsofmeasure.org";
/// LOINC.
pub const LOINC: &str = "http://loinc.org";
/// SNOMED CT.
pub const SNOMED: &str = "http://snomed.info/sct";
/// RxNorm.
pub const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";

/// Observation categories (`vital-signs`, `laboratory`, `survey`).
/// Source: FHIR R4 <https://hl7.org/fhir/R4/codesystem-observation-category.html>.
pub const OBSERVATION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";

/// LOINC code of the blood-pressure panel whose components are systolic 8480-6 and diastolic
/// 8462-4. Source: FHIR R4 vital-signs profiles, <https://hl7.org/fhir/R4/bp.html>.
pub const BP_PANEL: &str = "85354-9";
/// LOINC code of oxygen saturation in arterial blood, which the R4 `oxygensat` profile fixes;
/// sent beside the pulse-oximetry code 59408-5 the monitors report.
/// Source: FHIR R4 <https://hl7.org/fhir/R4/oxygensat.html>.
pub const SPO2_ARTERIAL: &str = "2708-6";

/// Canonical URLs of the R4 vital-signs profiles. Source: <https://hl7.org/fhir/R4/observation-vitalsigns.html>.
pub mod profile {
    /// The base vital-signs profile.
    pub const VITAL_SIGNS: &str = "http://hl7.org/fhir/StructureDefinition/vitalsigns";
    /// Blood pressure panel.
    pub const BP: &str = "http://hl7.org/fhir/StructureDefinition/bp";
    /// Heart rate.
    pub const HEART_RATE: &str = "http://hl7.org/fhir/StructureDefinition/heartrate";
    /// Oxygen saturation.
    pub const OXYGEN_SAT: &str = "http://hl7.org/fhir/StructureDefinition/oxygensat";
    /// Respiratory rate.
    pub const RESP_RATE: &str = "http://hl7.org/fhir/StructureDefinition/resprate";
    /// Body weight.
    pub const BODY_WEIGHT: &str = "http://hl7.org/fhir/StructureDefinition/bodyweight";
    /// Body height.
    pub const BODY_HEIGHT: &str = "http://hl7.org/fhir/StructureDefinition/bodyheight";
}

/// Condition clinical status. Source: <https://hl7.org/fhir/R4/codesystem-condition-clinical.html>.
pub const CONDITION_CLINICAL: &str = "http://terminology.hl7.org/CodeSystem/condition-clinical";
/// Condition verification status. Source: <https://hl7.org/fhir/R4/codesystem-condition-ver-status.html>.
pub const CONDITION_VERIFICATION: &str = "http://terminology.hl7.org/CodeSystem/condition-ver-status";
/// Condition category (`problem-list-item`). Source: <https://hl7.org/fhir/R4/codesystem-condition-category.html>.
pub const CONDITION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/condition-category";
/// AllergyIntolerance clinical status. Source: <https://hl7.org/fhir/R4/codesystem-allergyintolerance-clinical.html>.
pub const ALLERGY_CLINICAL: &str = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical";
/// AllergyIntolerance verification status. Source: <https://hl7.org/fhir/R4/codesystem-allergyintolerance-verification.html>.
pub const ALLERGY_VERIFICATION: &str = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification";
/// HL7 v3 ActCode (`AMB`, ambulatory encounter class). Source: <https://hl7.org/fhir/R4/v3/ActEncounterCode/vs.html>.
pub const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
/// HL7 v2 table 0203 identifier types (`MR`, medical record number). Source: <https://hl7.org/fhir/R4/v2/0203/index.html>.
pub const IDENTIFIER_TYPE: &str = "http://terminology.hl7.org/CodeSystem/v2-0203";
/// AdverseEvent seriousness. Source: <https://hl7.org/fhir/R4/codesystem-adverse-event-seriousness.html>.
pub const AE_SERIOUSNESS: &str = "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness";
/// AdverseEvent severity. Source: <https://hl7.org/fhir/R4/codesystem-adverse-event-severity.html>.
pub const AE_SEVERITY: &str = "http://terminology.hl7.org/CodeSystem/adverse-event-severity";
/// AdverseEvent outcome. Source: <https://hl7.org/fhir/R4/codesystem-adverse-event-outcome.html>.
pub const AE_OUTCOME: &str = "http://terminology.hl7.org/CodeSystem/adverse-event-outcome";
/// AuditEvent type (`rest`). Source: <https://hl7.org/fhir/R4/codesystem-audit-event-type.html>.
pub const AUDIT_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-event-type";
/// AuditEvent entity type (`1` person, `2` system object). Source: <https://hl7.org/fhir/R4/codesystem-audit-entity-type.html>.
pub const AUDIT_ENTITY_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-entity-type";
/// HL7 v3 ActReason, purpose of use (`TREAT`, `HRESCH`, `HOPERAT`). Source: <https://hl7.org/fhir/R4/v3/PurposeOfUse/vs.html>.
pub const PURPOSE_OF_USE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
/// HL7 v3 DataOperation (`CREATE`, `UPDATE`, `DELETE`). Source: <https://hl7.org/fhir/R4/v3/DataOperation/cs.html>.
pub const DATA_OPERATION: &str = "http://terminology.hl7.org/CodeSystem/v3-DataOperation";
/// Provenance participant type (`author`). Source: <https://hl7.org/fhir/R4/codesystem-provenance-participant-type.html>.
pub const PROVENANCE_PARTICIPANT: &str = "http://terminology.hl7.org/CodeSystem/provenance-participant-type";
/// Data absent reason. Source: <https://hl7.org/fhir/R4/codesystem-data-absent-reason.html>.
pub const DATA_ABSENT: &str = "http://terminology.hl7.org/CodeSystem/data-absent-reason";
/// The SDC extension giving an answer option its score. Source: <https://hl7.org/fhir/R4/extension-ordinalvalue.html>.
pub const ORDINAL_VALUE: &str = "http://hl7.org/fhir/StructureDefinition/ordinalValue";

/// SNOMED CT route of administration of a dose (FHIR example value set `route-codes`,
/// <https://hl7.org/fhir/R4/valueset-route-codes.html>): (code, display).
pub fn route(r: ketacare_domain::dose::Route) -> (&'static str, &'static str) {
    use ketacare_domain::dose::Route;
    match r {
        Route::Iv => ("47625008", "Intravenous route"),
        Route::Sc => ("34206005", "Subcutaneous route"),
        Route::Im => ("78421000", "Intramuscular route"),
        Route::In => ("46713006", "Nasal route"),
    }
}

/// Identifier system of the clinic's medical record numbers.
pub const MRN: &str = "urn:ketacare:mrn";
/// Identifier system of research ids.
pub const RESEARCH_ID: &str = "urn:ketacare:research-id";
/// Base of the Questionnaires' canonical URLs (`urn:ketacare:questionnaire:gad7`).
pub const QUESTIONNAIRE_BASE: &str = "urn:ketacare:questionnaire:";
/// Local code system of comorbid conditions (keys of the screening rules).
pub const COMORBIDITY: &str = "urn:ketacare:comorbidity";
/// Local code system of encounter kinds (`screening`, `treatment`, `follow_up`, `other`).
pub const ENCOUNTER_KIND: &str = "urn:ketacare:encounter-kind";
/// Local code system of session adverse events (`dissociation`, `nausea`, ...).
pub const ADVERSE_EVENT_KIND: &str = "urn:ketacare:adverse-event";
/// Local code system of safety observations (`craving`, `haematuria`, ...).
pub const SAFETY_EVENT_KIND: &str = "urn:ketacare:safety-event";
/// Local code system of instrument items and scores that have no LOINC code.
pub const INSTRUMENT_CODE: &str = "urn:ketacare:instrument";
/// Extension: a comorbid condition is controlled or treated (`valueBoolean`).
pub const EXT_CONTROLLED: &str = "urn:ketacare:extension:controlled";
/// Extension: the CTCAE grade (1-5) of an adverse event (`valueInteger`).
pub const EXT_GRADE: &str = "urn:ketacare:extension:ctcae-grade";
/// Extension: the plausibility warnings the person recording a measurement confirmed
/// (`valueCode`, repeated).
pub const EXT_ACKNOWLEDGED: &str = "urn:ketacare:extension:acknowledged-warning";
/// The Device-less source of audit events.
pub const AUDIT_SOURCE: &str = "Ketacare";
