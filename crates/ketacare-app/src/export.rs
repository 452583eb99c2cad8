//! Research exports of the whole clinic: CSV (one file per table, with a data dictionary) and
//! OMOP CDM v5.4, always de-identified.
//!
//! The clinic is read a page of patients at a time through
//! [`ResearchStore::cohort_page`](ketacare_db::research::ResearchStore::cohort_page) (each page
//! audited by the store) and every row is written to its file at once, so memory stays bounded
//! whatever the size of the clinic. One audit event records each finished export: who, when, the
//! format and the number of patients.
//!
//! De-identification is applied to every row and cannot be turned off: the person is the
//! research id of [`App::deidentifier`]; every date and time is shifted by the patient's
//! [`DateShift`]; ages are whole years with ages above 89 grouped as `90+`; names, MRNs, dates of
//! birth, contact details and every free-text field are never read into a row (see
//! `docs/exports.md` for the list). There is no identified export.
//!
//! The column definitions ([`Table`]) are the single source of the header of each file and of
//! `data_dictionary.csv`, so the dictionary cannot drift from the files.

use crate::{App, AppError, Principal};
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use ketacare_db::research::{CohortPatient, SessionSummary};
use ketacare_domain::access::Permission;
use ketacare_domain::audit::{AuditAction, AuditEvent, AuditOutcome};
use ketacare_domain::coding::CodeSystem;
use ketacare_domain::deid::{age_group, age_on, DateShift, OLDEST_EXACT_AGE};
use ketacare_domain::dose::Route;
use ketacare_domain::ids::PatientId;
use ketacare_domain::order::DoseOrderRecord;
use ketacare_domain::patient::Sex;
use ketacare_domain::record::{ClinicalRecord, ObservationValue, RecordKind, RecordVersion};
use ketacare_domain::validation::FieldErrors;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::Deserialize;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Patients read per page: bounded memory, few queries.
const PAGE_SIZE: u32 = 200;

/// The audit entity of an export.
pub const AUDIT_ENTITY: &str = "ResearchExport";

/// The record kinds an export reads.
const KINDS: [RecordKind; 8] = [
    RecordKind::Diagnosis,
    RecordKind::Encounter,
    RecordKind::Medication,
    RecordKind::Observation,
    RecordKind::Assessment,
    RecordKind::DoseOrder,
    RecordKind::LabResult,
    RecordKind::SafetyEvent,
];

// ------------------------------------------------------------------------------------------
// Formats

/// What an export produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExportFormat {
    /// One CSV per table plus `data_dictionary.csv`.
    Csv,
    /// OMOP CDM v5.4 tables as CSV files with a header row, plus `data_dictionary.csv`.
    Omop,
}

impl ExportFormat {
    /// Every format.
    pub const ALL: [ExportFormat; 2] = [ExportFormat::Csv, ExportFormat::Omop];

    /// Stable code (`csv`, `omop`).
    pub fn code(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Omop => "omop",
        }
    }

    /// Label for people.
    pub fn label(self) -> &'static str {
        match self {
            ExportFormat::Csv => "CSV with a data dictionary",
            ExportFormat::Omop => "OMOP CDM v5.4",
        }
    }

    /// Parses a code; the message names the accepted values.
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|f| f.code() == t)
            .ok_or_else(|| "must be csv (one CSV per table with a data dictionary) or omop (OMOP CDM v5.4 tables)".to_owned())
    }

    /// The tables written, in file order (the data dictionary last).
    pub fn tables(self) -> &'static [Table] {
        match self {
            ExportFormat::Csv => CSV_TABLES,
            ExportFormat::Omop => OMOP_TABLES,
        }
    }
}

// ------------------------------------------------------------------------------------------
// Column definitions

/// The type of a column's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    /// Text (codes and labels; never free text).
    Text,
    /// Whole number.
    Integer,
    /// Exact decimal number, point as separator.
    Decimal,
    /// `YYYY-MM-DD` (shifted).
    Date,
    /// CSV: `YYYY-MM-DDTHH:MM:SSZ`; OMOP: `YYYY-MM-DD HH:MM:SS`, UTC (shifted).
    DateTime,
}

impl ColumnType {
    /// Name in the data dictionary.
    pub fn code(self) -> &'static str {
        match self {
            ColumnType::Text => "text",
            ColumnType::Integer => "integer",
            ColumnType::Decimal => "decimal",
            ColumnType::Date => "date",
            ColumnType::DateTime => "datetime",
        }
    }
}

/// One column of an exported table.
#[derive(Clone, Copy, Debug)]
pub struct Column {
    /// Column name (the header).
    pub name: &'static str,
    /// Value type.
    pub kind: ColumnType,
    /// UCUM unit of the values, if fixed.
    pub unit: &'static str,
    /// What the column holds.
    pub description: &'static str,
    /// Code system of the values, if coded.
    pub code_system: &'static str,
}

/// One exported file.
#[derive(Clone, Copy, Debug)]
pub struct Table {
    /// File name.
    pub file: &'static str,
    /// What one row is.
    pub description: &'static str,
    /// Columns in file order.
    pub columns: &'static [Column],
}

impl Table {
    fn index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

const fn col(name: &'static str, kind: ColumnType, unit: &'static str, description: &'static str, code_system: &'static str) -> Column {
    Column { name, kind, unit, description, code_system }
}

use ColumnType::{Date, DateTime as Dt, Decimal as Dec, Integer as Int, Text};

const RESEARCH_ID: Column = col(
    "research_id",
    Text,
    "",
    "Pseudonym of the patient: a keyed digest of the internal id, the same in every export of this clinic",
    "",
);
const SESSION_NUMBER: Column =
    col("session_number", Int, "", "Treatment session of the patient, numbered 1, 2, ... in the order booked (all phases)", "");
const ASSESSMENT_NUMBER: Column =
    col("assessment_number", Int, "", "Rating-scale administration of the patient, numbered 1, 2, ... in the order taken", "");

/// The data dictionary itself (listed in itself, so every column of every file is described).
pub const DICTIONARY: Table = Table {
    file: "data_dictionary.csv",
    description: "One row per column of every file of the export",
    columns: &[
        col("table", Text, "", "File the column belongs to", ""),
        col("column", Text, "", "Column name as in the file's header", ""),
        col("type", Text, "", "text, integer, decimal, date or datetime", ""),
        col("unit", Text, "", "UCUM unit of the values, if fixed", "UCUM"),
        col("description", Text, "", "What the column holds", ""),
        col("code_system", Text, "", "Code system of the values, if coded", ""),
    ],
};

/// The tables of the CSV export.
pub const CSV_TABLES: &[Table] = &[
    Table {
        file: "patients.csv",
        description: "One row per patient",
        columns: &[
            RESEARCH_ID,
            col("sex", Text, "", "Administrative sex: female, male, other or unknown", "FHIR administrative-gender"),
            col("age_at_export", Text, "a", "Age in whole years on the day of the export; ages above 89 are 90+", ""),
            col(
                "age_at_first_session",
                Text,
                "a",
                "Age in whole years on the day of the first treatment session that was not cancelled; ages above 89 are 90+; empty without one",
                "",
            ),
            col("sessions", Int, "", "Number of treatment sessions booked (all phases)", ""),
        ],
    },
    Table {
        file: "diagnoses.csv",
        description: "One row per current diagnosis (notes are not exported)",
        columns: &[
            RESEARCH_ID,
            col("code_system", Text, "", "Code system of the diagnosis code", "SNOMED CT, ICD-10-CM or a URI"),
            col("code", Text, "", "Diagnosis code", "see code_system"),
            col("display", Text, "", "Display text of the code (from the code system or the clinic's catalogue)", ""),
            col("icd10_cm", Text, "", "ICD-10-CM code, if known", "ICD-10-CM"),
            col("status", Text, "", "Clinical status: active, remission or resolved", "FHIR condition-clinical"),
            col("onset_date", Date, "", "Onset date, shifted; empty if not known", ""),
            col("recorded_date", Date, "", "Date the current version was recorded, shifted", ""),
        ],
    },
    Table {
        file: "medications.csv",
        description: "One row per current medication with an RxNorm code (names and dose text are free text and not exported)",
        columns: &[
            RESEARCH_ID,
            col("rxnorm", Text, "", "RxNorm concept id", "RxNorm"),
            col("start_date", Date, "", "Start date, shifted; empty if not known", ""),
            col("stop_date", Date, "", "Stop date, shifted; empty if ongoing or not known", ""),
            col("recorded_date", Date, "", "Date the current version was recorded, shifted", ""),
        ],
    },
    Table {
        file: "encounters.csv",
        description: "One row per current visit: screening, treatment, follow-up or other (reasons and notes are free text and not exported)",
        columns: &[
            RESEARCH_ID,
            col("kind", Text, "", "screening, treatment, follow_up or other", "Ketacare encounter kind"),
            col("start_at", Dt, "", "Start, shifted", ""),
            col("end_at", Dt, "", "End, shifted; empty if not recorded", ""),
            col(
                "session_number",
                Int,
                "",
                "The treatment session this visit is (see treatment_sessions.csv); empty for visits recorded without a session",
                "",
            ),
        ],
    },
    Table {
        file: "treatment_sessions.csv",
        description: "One row per treatment session, with the ketamine dose when it was given",
        columns: &[
            RESEARCH_ID,
            SESSION_NUMBER,
            col(
                "phase",
                Text,
                "",
                "Where the session ended or is: scheduled, checked_in, pre_dose_checks, dosing, monitoring, recovery, discharged, paused_dosing, paused_monitoring, stopped_early or cancelled",
                "Ketacare session phase",
            ),
            col("scheduled_at", Dt, "", "When the session was booked for, shifted", ""),
            col("dose_started_at", Dt, "", "When the dose started, shifted; empty if no dose was started", ""),
            col("route", Text, "", "Route of the ordered dose: iv, sc, im or in (intranasal)", "Ketacare route"),
            col("dose_mg", Dec, "mg", "Ketamine base ordered and double-checked for the session", ""),
            col("mg_per_kg", Dec, "mg/kg", "Dose rule of the order, if weight-based", ""),
            col("weight_used_kg", Dec, "kg", "Weight the dose was calculated on (basis applied)", ""),
            col("weight_basis", Text, "", "actual, ideal or adjusted body weight", "Ketacare weight basis"),
            col("infusion_minutes", Dec, "min", "Infusion time, for infusions", ""),
            col("pump_rate_ml_per_h", Dec, "mL/h", "Pump rate, for infusions", ""),
            col(
                "order_status",
                Text,
                "",
                "Status of the linked dose order: awaiting_override, awaiting_check, checked or blocked",
                "Ketacare order status",
            ),
        ],
    },
    Table {
        file: "session_vitals.csv",
        description: "One row per treatment session: the baseline blood pressure and the highest readings of the session",
        columns: &[
            RESEARCH_ID,
            SESSION_NUMBER,
            col("baseline_systolic", Int, "mm[Hg]", "Baseline systolic blood pressure frozen at the dose start", "LOINC 8480-6"),
            col("baseline_diastolic", Int, "mm[Hg]", "Baseline diastolic blood pressure frozen at the dose start", "LOINC 8462-4"),
            col("peak_systolic", Dec, "mm[Hg]", "Highest systolic reading stored in the session", "LOINC 8480-6"),
            col("peak_diastolic", Dec, "mm[Hg]", "Highest diastolic reading stored in the session", "LOINC 8462-4"),
        ],
    },
    Table {
        file: "assessments.csv",
        description: "One row per current rating-scale administration, with its score (notes are not exported)",
        columns: &[
            RESEARCH_ID,
            ASSESSMENT_NUMBER,
            col("instrument", Text, "", "Instrument key, e.g. gad7", "Ketacare instrument"),
            col("instrument_version", Text, "", "Version of the instrument definition the answers were given on", ""),
            col("taken_at", Dt, "", "When it was taken, shifted", ""),
            col("filled_by", Text, "", "patient or clinician", ""),
            col("session_number", Int, "", "Treatment session it belongs to (see treatment_sessions.csv), if any", ""),
            col("timepoint", Text, "", "Time point relative to that session, e.g. pre, 1h, 24h, 7d", "Ketacare time point"),
            col("total", Dec, "{score}", "Total score derived from the answers by the instrument's published rules; empty if none", ""),
            col("total_loinc", Text, "", "LOINC code of the total, where known", "LOINC"),
            col("percent_of_max", Dec, "%", "Total as percent of the range, for instruments that report it", ""),
            col("band", Text, "", "Severity band code of the total under the instrument's default band set", "Ketacare instrument band"),
            col("triage", Text, "", "Triage level, for instruments with triage (C-SSRS screener)", "Ketacare instrument triage"),
        ],
    },
    Table {
        file: "assessment_items.csv",
        description: "One row per answered item of each administration",
        columns: &[
            RESEARCH_ID,
            ASSESSMENT_NUMBER,
            col("instrument", Text, "", "Instrument key", "Ketacare instrument"),
            col("item_number", Int, "", "Position of the item in the published order, from 1", ""),
            col("item_key", Text, "", "Item key, e.g. q1", "Ketacare instrument item"),
            col("item_loinc", Text, "", "LOINC code of the item, where known", "LOINC"),
            col("answer", Int, "{score}", "The answer's value", ""),
            col("answer_loinc", Text, "", "LOINC answer code, where known", "LOINC answer list"),
        ],
    },
    Table {
        file: "adverse_events.csv",
        description: "One row per adverse event recorded in a treatment session (descriptions are free text and not exported)",
        columns: &[
            RESEARCH_ID,
            SESSION_NUMBER,
            col("session_date", Date, "", "Date of the session (dose start, else booking), shifted", ""),
            col("kind", Text, "", "dissociation, hallucinations, nausea, vomiting, dizziness, headache, blurred_vision, hypertension, tachycardia, raised_temperature, anxiety or other", "Ketacare adverse event kind"),
            col("grade", Int, "", "Grade 1 (mild) to 5 (death), as in CTCAE", "CTCAE grade"),
            col("serious", Text, "", "yes or no", ""),
            col("action", Text, "", "none, dose_paused, dose_stopped, treated or referred", "Ketacare adverse event action"),
            col("outcome", Text, "", "resolved, resolving, not_resolved or unknown", "Ketacare adverse event outcome"),
        ],
    },
    Table {
        file: "lab_results.csv",
        description: "One row per current lab result with the laboratory's upper limit of normal (laboratory names are not exported)",
        columns: &[
            RESEARCH_ID,
            col("test", Text, "", "alt, ast, alp, ggt or bilirubin", "Ketacare lab test"),
            col("loinc", Text, "", "LOINC code of the test", "LOINC"),
            col("value", Dec, "", "Result, in the unit of the unit column", ""),
            col("unit", Text, "", "UCUM unit of value and uln", "UCUM"),
            col("uln", Dec, "", "The reporting laboratory's upper limit of normal, same unit", ""),
            col("multiple_of_uln", Dec, "", "value / uln, two decimals", ""),
            col("sampled_at", Dt, "", "When the sample was taken, shifted", ""),
        ],
    },
    Table {
        file: "observations.csv",
        description: "One row per current observation: vital signs, weight, height and other coded findings (free-text values are not exported)",
        columns: &[
            RESEARCH_ID,
            col("code_system", Text, "", "Code system of the observation code", "LOINC, SNOMED CT or a URI"),
            col("code", Text, "", "What was observed", "see code_system"),
            col("display", Text, "", "Display text of the code", ""),
            col("value_type", Text, "", "quantity, coded, boolean or text (text values are not exported)", ""),
            col("value", Dec, "", "Numeric value (quantity), or 1 (yes) / 0 (no) for boolean", ""),
            col("unit", Text, "", "UCUM unit of a quantity", "UCUM"),
            col("value_code_system", Text, "", "Code system of a coded value", ""),
            col("value_code", Text, "", "Code of a coded value", "see value_code_system"),
            col("effective_at", Dt, "", "When it was measured, shifted", ""),
        ],
    },
    Table {
        file: "safety_events.csv",
        description: "One row per current safety observation (substances and notes are free text and not exported)",
        columns: &[
            RESEARCH_ID,
            col(
                "kind",
                Text,
                "",
                "early_session_request, dose_increase_request, craving, substance_use, urine_toxicology or haematuria",
                "Ketacare safety event kind",
            ),
            col("at", Dt, "", "When, shifted", ""),
            col("craving_score", Int, "{score}", "Craving rated 0 to 10 (craving only)", ""),
            col("result", Text, "", "positive or negative (urine toxicology, haematuria)", ""),
        ],
    },
    DICTIONARY,
];

const CONCEPT: &str = "OMOP concept";
const NULL_COL: &str = "Not recorded by Ketacare: always empty (NULL)";

macro_rules! empty {
    ($name:literal, $kind:expr) => {
        col($name, $kind, "", NULL_COL, "")
    };
}

/// The tables of the OMOP export: CDM v5.4 column lists, in DDL order.
pub const OMOP_TABLES: &[Table] = &[
    Table {
        file: "person.csv",
        description: "OMOP PERSON: one row per patient",
        columns: &[
            col("person_id", Int, "", "Sequential id within this export (1, 2, ...); link across exports through person_source_value", ""),
            col("gender_concept_id", Int, "", "8532 FEMALE, 8507 MALE; 0 for other and unknown", CONCEPT),
            col(
                "year_of_birth",
                Int,
                "",
                "Year of the shifted date of birth; for patients above 89 on the export day, the year that makes them 90 on the shifted export day",
                "",
            ),
            empty!("month_of_birth", Int),
            empty!("day_of_birth", Int),
            empty!("birth_datetime", Dt),
            col("race_concept_id", Int, "", "0: not collected", CONCEPT),
            col("ethnicity_concept_id", Int, "", "0: not collected", CONCEPT),
            empty!("location_id", Int),
            empty!("provider_id", Int),
            empty!("care_site_id", Int),
            col("person_source_value", Text, "", "Research id (the CSV export's research_id)", ""),
            col("gender_source_value", Text, "", "Administrative sex as recorded: female, male, other or unknown", "FHIR administrative-gender"),
            col("gender_source_concept_id", Int, "", "0", CONCEPT),
            empty!("race_source_value", Text),
            empty!("race_source_concept_id", Int),
            empty!("ethnicity_source_value", Text),
            empty!("ethnicity_source_concept_id", Int),
        ],
    },
    Table {
        file: "observation_period.csv",
        description: "OMOP OBSERVATION_PERIOD: one row per patient, from the first to the last exported event",
        columns: &[
            col("observation_period_id", Int, "", "Sequential id within this export", ""),
            col("person_id", Int, "", "PERSON of the period", ""),
            col("observation_period_start_date", Date, "", "Earliest shifted date of the patient's exported rows (registration if none)", ""),
            col("observation_period_end_date", Date, "", "Latest shifted date of the patient's exported rows", ""),
            col("period_type_concept_id", Int, "", "32817 EHR", CONCEPT),
        ],
    },
    Table {
        file: "visit_occurrence.csv",
        description: "OMOP VISIT_OCCURRENCE: one row per treatment session that took place (not scheduled or cancelled), and per other recorded visit",
        columns: &[
            col("visit_occurrence_id", Int, "", "Sequential id within this export", ""),
            col("person_id", Int, "", "PERSON of the visit", ""),
            col("visit_concept_id", Int, "", "9202 Outpatient Visit", CONCEPT),
            col("visit_start_date", Date, "", "Sessions: dose start (else booking); other visits: start; shifted", ""),
            col("visit_start_datetime", Dt, "", "Sessions: dose start (else booking); other visits: start; shifted", ""),
            col("visit_end_date", Date, "", "Sessions: the start day (their end time is not exported); other visits: end, else start; shifted", ""),
            col("visit_end_datetime", Dt, "", "Other visits: end, shifted, if recorded; empty for sessions", ""),
            col("visit_type_concept_id", Int, "", "32817 EHR", CONCEPT),
            empty!("provider_id", Int),
            empty!("care_site_id", Int),
            col(
                "visit_source_value",
                Text,
                "",
                "treatment_session/<phase> for sessions; encounter/<kind> for other visits",
                "Ketacare session phase or encounter kind",
            ),
            col("visit_source_concept_id", Int, "", "0", CONCEPT),
            empty!("admitted_from_concept_id", Int),
            empty!("admitted_from_source_value", Text),
            empty!("discharged_to_concept_id", Int),
            empty!("discharged_to_source_value", Text),
            empty!("preceding_visit_occurrence_id", Int),
        ],
    },
    Table {
        file: "condition_occurrence.csv",
        description: "OMOP CONDITION_OCCURRENCE: one row per current diagnosis",
        columns: &[
            col("condition_occurrence_id", Int, "", "Sequential id within this export", ""),
            col("person_id", Int, "", "PERSON of the condition", ""),
            col(
                "condition_concept_id",
                Int,
                "",
                "Standard concept of the SNOMED CT code from knowledge/omop-concepts.toml; 0 when not listed there (map condition_source_value with the vocabulary)",
                CONCEPT,
            ),
            col("condition_start_date", Date, "", "Onset date, else the date recorded; shifted", ""),
            empty!("condition_start_datetime", Dt),
            empty!("condition_end_date", Date),
            empty!("condition_end_datetime", Dt),
            col("condition_type_concept_id", Int, "", "32817 EHR", CONCEPT),
            empty!("condition_status_concept_id", Int),
            empty!("stop_reason", Text),
            empty!("provider_id", Int),
            empty!("visit_occurrence_id", Int),
            empty!("visit_detail_id", Int),
            col("condition_source_value", Text, "", "ICD-10-CM code if recorded, else the diagnosis code", "ICD-10-CM or SNOMED CT"),
            col("condition_source_concept_id", Int, "", "0", CONCEPT),
            col("condition_status_source_value", Text, "", "Clinical status: active, remission or resolved", "FHIR condition-clinical"),
        ],
    },
    Table {
        file: "drug_exposure.csv",
        description: "OMOP DRUG_EXPOSURE: one row per ketamine dose started in a session",
        columns: &[
            col("drug_exposure_id", Int, "", "Sequential id within this export", ""),
            col("person_id", Int, "", "PERSON of the exposure", ""),
            col("drug_concept_id", Int, "", "Ketamine (RxNorm ingredient) from knowledge/omop-concepts.toml", CONCEPT),
            col("drug_exposure_start_date", Date, "", "Dose start, shifted", ""),
            col("drug_exposure_start_datetime", Dt, "", "Dose start, shifted", ""),
            col("drug_exposure_end_date", Date, "", "Dose start plus the infusion time, shifted", ""),
            col("drug_exposure_end_datetime", Dt, "", "Dose start plus the infusion time, shifted", ""),
            empty!("verbatim_end_date", Date),
            col("drug_type_concept_id", Int, "", "32817 EHR", CONCEPT),
            empty!("stop_reason", Text),
            empty!("refills", Int),
            col("quantity", Dec, "mg", "Ketamine base given, mg", ""),
            empty!("days_supply", Int),
            col("sig", Text, "", "Dose rule and infusion: e.g. 0.5 mg/kg on 70 kg; 40 min at 12 mL/h", ""),
            col("route_concept_id", Int, "", "Route concept from knowledge/omop-concepts.toml; 0 if not listed", CONCEPT),
            empty!("lot_number", Text),
            empty!("provider_id", Int),
            col("visit_occurrence_id", Int, "", "VISIT_OCCURRENCE of the session", ""),
            empty!("visit_detail_id", Int),
            col("drug_source_value", Text, "", "RxNorm code of the ingredient (6130, ketamine)", "RxNorm"),
            col("drug_source_concept_id", Int, "", "0", CONCEPT),
            col("route_source_value", Text, "", "iv, sc, im or in (intranasal)", "Ketacare route"),
            col("dose_unit_source_value", Text, "", "mg", "UCUM"),
        ],
    },
    Table {
        file: "measurement.csv",
        description: "OMOP MEASUREMENT: vital signs, weight and height (quantity observations), lab results and each session's baseline blood pressure",
        columns: &[
            col("measurement_id", Int, "", "Sequential id within this export", ""),
            col("person_id", Int, "", "PERSON of the measurement", ""),
            col("measurement_concept_id", Int, "", "LOINC concept from knowledge/omop-concepts.toml; 0 if not listed", CONCEPT),
            col("measurement_date", Date, "", "When measured, shifted", ""),
            col("measurement_datetime", Dt, "", "When measured, shifted", ""),
            empty!("measurement_time", Text),
            col("measurement_type_concept_id", Int, "", "32817 EHR", CONCEPT),
            empty!("operator_concept_id", Int),
            col("value_as_number", Dec, "", "Value, in the unit of unit_source_value", ""),
            empty!("value_as_concept_id", Int),
            col("unit_concept_id", Int, "", "UCUM concept from knowledge/omop-concepts.toml; 0 if not listed", CONCEPT),
            empty!("range_low", Dec),
            col("range_high", Dec, "", "The laboratory's upper limit of normal (lab results)", ""),
            empty!("provider_id", Int),
            col("visit_occurrence_id", Int, "", "VISIT_OCCURRENCE of the session (baseline blood pressure)", ""),
            empty!("visit_detail_id", Int),
            col("measurement_source_value", Text, "", "LOINC code", "LOINC"),
            col("measurement_source_concept_id", Int, "", "0", CONCEPT),
            col("unit_source_value", Text, "", "UCUM unit", "UCUM"),
            empty!("unit_source_concept_id", Int),
            col("value_source_value", Text, "", "Value as recorded", ""),
            empty!("measurement_event_id", Int),
            empty!("meas_event_field_concept_id", Int),
        ],
    },
    Table {
        file: "observation.csv",
        description: "OMOP OBSERVATION: rating-scale totals and item answers, adverse events, safety observations and coded or yes/no findings",
        columns: &[
            col("observation_id", Int, "", "Sequential id within this export", ""),
            col("person_id", Int, "", "PERSON of the observation", ""),
            col(
                "observation_concept_id",
                Int,
                "",
                "LOINC concept from knowledge/omop-concepts.toml where listed; 0 otherwise (the code is in observation_source_value)",
                CONCEPT,
            ),
            col("observation_date", Date, "", "When, shifted", ""),
            col("observation_datetime", Dt, "", "When, shifted", ""),
            col("observation_type_concept_id", Int, "", "32817 EHR", CONCEPT),
            col("value_as_number", Dec, "", "Total score, item answer, adverse event grade, craving score, or 1/0 for yes/no", ""),
            col("value_as_string", Text, "", "Severity band code of a total; positive/negative; a coded value's code (never free text)", ""),
            empty!("value_as_concept_id", Int),
            empty!("qualifier_concept_id", Int),
            empty!("unit_concept_id", Int),
            empty!("provider_id", Int),
            col("visit_occurrence_id", Int, "", "VISIT_OCCURRENCE of the session, for session ratings and adverse events", ""),
            empty!("visit_detail_id", Int),
            col(
                "observation_source_value",
                Text,
                "",
                "LOINC code of the item or total where known, else instrument.item or instrument.total; adverse_event.<kind>; safety_event.<kind>; the finding's code",
                "LOINC or Ketacare",
            ),
            col("observation_source_concept_id", Int, "", "0", CONCEPT),
            col("unit_source_value", Text, "", "UCUM unit of a quantity", "UCUM"),
            col("qualifier_source_value", Text, "", "Adverse events: serious or non-serious", ""),
            col("value_source_value", Text, "", "LOINC answer code of an item answer; adverse events: action/outcome", "LOINC answer list or Ketacare"),
            empty!("observation_event_id", Int),
            empty!("obs_event_field_concept_id", Int),
        ],
    },
    DICTIONARY,
];

// ------------------------------------------------------------------------------------------
// OMOP concepts (knowledge/omop-concepts.toml)

const OMOP_CONCEPTS_FILE: &str = include_str!("../../../knowledge/omop-concepts.toml");

/// One concept of the knowledge file, as shown under the clinical rules.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConceptEntry {
    /// The source code it maps (route or sex code, UCUM unit, LOINC or SNOMED code), if any.
    #[serde(alias = "code", alias = "ucum", alias = "loinc", alias = "rxnorm", alias = "snomed", default)]
    pub key: String,
    /// OMOP concept id.
    pub concept_id: i64,
    /// Concept name.
    pub name: String,
    /// Checked against public OHDSI material (else: verify against the vocabulary loaded).
    pub verified: bool,
    /// Where the value comes from.
    pub source: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConceptFile {
    version: String,
    title: String,
    cdm_version: String,
    source: String,
    type_concept: ConceptEntry,
    visit: ConceptEntry,
    drug: ConceptEntry,
    gender: Vec<ConceptEntry>,
    route: Vec<ConceptEntry>,
    unit: Vec<ConceptEntry>,
    measurement: Vec<ConceptEntry>,
    #[serde(default)]
    condition: Vec<ConceptEntry>,
}

/// The OMOP concepts the export maps to, with their sources.
#[derive(Debug)]
pub struct OmopConcepts {
    /// File version.
    pub version: String,
    /// Title.
    pub title: String,
    /// CDM version the concepts are for.
    pub cdm_version: String,
    /// Source of the file as a whole.
    pub source: String,
    /// The type concept of every record (EHR).
    pub type_concept: ConceptEntry,
    /// The visit concept of a treatment session.
    pub visit: ConceptEntry,
    /// Ketamine.
    pub drug: ConceptEntry,
    gender: HashMap<String, ConceptEntry>,
    route: HashMap<String, ConceptEntry>,
    unit: HashMap<String, ConceptEntry>,
    measurement: HashMap<String, ConceptEntry>,
    condition: HashMap<String, ConceptEntry>,
}

impl OmopConcepts {
    /// Parses and checks a concept file: every entry has a positive concept id, a name and a
    /// source; no key is listed twice.
    pub fn parse(text: &str) -> Result<Self, String> {
        let f: ConceptFile = toml::from_str(text).map_err(|e| format!("omop-concepts.toml: {e}"))?;
        if f.cdm_version != "5.4" {
            return Err(format!("omop-concepts.toml: cdm_version must be 5.4 (got {})", f.cdm_version));
        }
        if f.version.trim().is_empty() || f.source.trim().is_empty() {
            return Err("omop-concepts.toml: version and source are required".into());
        }
        let check = |table: &str, e: &ConceptEntry| -> Result<(), String> {
            if e.concept_id <= 0 {
                return Err(format!("omop-concepts.toml: {table} {}: concept_id must be a positive OMOP concept id", e.key));
            }
            if e.name.trim().is_empty() || e.source.trim().is_empty() {
                return Err(format!("omop-concepts.toml: {table} {}: name and source are required", e.key));
            }
            Ok(())
        };
        for (t, e) in [("type_concept", &f.type_concept), ("visit", &f.visit), ("drug", &f.drug)] {
            check(t, e)?;
        }
        let index = |table: &str, list: Vec<ConceptEntry>| -> Result<HashMap<String, ConceptEntry>, String> {
            let mut m = HashMap::new();
            for e in list {
                check(table, &e)?;
                if e.key.trim().is_empty() {
                    return Err(format!("omop-concepts.toml: every {table} entry needs its source code"));
                }
                if m.insert(e.key.clone(), e.clone()).is_some() {
                    return Err(format!("omop-concepts.toml: {table} {} is listed twice", e.key));
                }
            }
            Ok(m)
        };
        Ok(Self {
            version: f.version,
            title: f.title,
            cdm_version: f.cdm_version,
            source: f.source,
            gender: index("gender", f.gender)?,
            route: index("route", f.route)?,
            unit: index("unit", f.unit)?,
            measurement: index("measurement", f.measurement)?,
            condition: index("condition", f.condition)?,
            type_concept: f.type_concept,
            visit: f.visit,
            drug: f.drug,
        })
    }

    /// The concepts in force (the file shipped with this build), parsed once.
    pub fn get() -> Result<&'static OmopConcepts, AppError> {
        static CONCEPTS: OnceLock<Result<OmopConcepts, String>> = OnceLock::new();
        CONCEPTS.get_or_init(|| OmopConcepts::parse(OMOP_CONCEPTS_FILE)).as_ref().map_err(|e| AppError::Internal(e.clone()))
    }

    /// Every entry, grouped by table name, for display.
    pub fn entries(&self) -> Vec<(&'static str, Vec<&ConceptEntry>)> {
        fn sorted(m: &HashMap<String, ConceptEntry>) -> Vec<&ConceptEntry> {
            let mut v: Vec<&ConceptEntry> = m.values().collect();
            v.sort_by(|a, b| a.key.cmp(&b.key));
            v
        }
        vec![
            ("type", vec![&self.type_concept]),
            ("visit", vec![&self.visit]),
            ("drug", vec![&self.drug]),
            ("gender", sorted(&self.gender)),
            ("route", sorted(&self.route)),
            ("unit", sorted(&self.unit)),
            ("measurement", sorted(&self.measurement)),
            ("condition", sorted(&self.condition)),
        ]
    }

    fn id(m: &HashMap<String, ConceptEntry>, key: &str) -> i64 {
        m.get(key).map(|e| e.concept_id).unwrap_or(0)
    }
    /// Gender concept of a sex (0 when there is none).
    pub fn gender(&self, sex: Sex) -> i64 {
        Self::id(&self.gender, sex.code())
    }
    /// Route concept (0 when not listed).
    pub fn route(&self, route: Route) -> i64 {
        Self::id(&self.route, route.code())
    }
    /// Unit concept of a UCUM code (0 when not listed).
    pub fn unit(&self, ucum: &str) -> i64 {
        Self::id(&self.unit, ucum)
    }
    /// Measurement concept of a LOINC code (0 when not listed).
    pub fn measurement(&self, loinc: &str) -> i64 {
        Self::id(&self.measurement, loinc)
    }
    /// Condition concept of a SNOMED CT code (0 when not listed).
    pub fn condition(&self, snomed: &str) -> i64 {
        Self::id(&self.condition, snomed)
    }
}

// ------------------------------------------------------------------------------------------
// Where the files go

/// Where an export writes its files. Files are created one per table before the first row and
/// written to as the pages come in.
pub trait ExportSink: Send {
    /// Creates the file `name` (never replacing an existing one).
    fn create(&mut self, name: &str) -> Result<Box<dyn Write + Send>, AppError>;
    /// Called once every file is complete and flushed: make the files durable.
    fn finish(&mut self) -> Result<(), AppError>;
    /// Called when the export fails: remove whatever was written, so nothing half-written stays.
    fn abort(&mut self);
}

/// Writes the files into a directory that is new or empty.
#[derive(Debug)]
pub struct DirSink {
    dir: PathBuf,
    created_dir: bool,
    files: Vec<PathBuf>,
}

impl DirSink {
    /// Uses `dir`, creating it if missing. Refuses (naming `field`) a path that is a file or a
    /// directory that is not empty, so no earlier export is mixed in or overwritten.
    pub fn new(dir: &Path, field: &str) -> Result<Self, AppError> {
        let shown = dir.display();
        let mut created_dir = false;
        match std::fs::metadata(dir) {
            Ok(m) if !m.is_dir() => {
                return Err(FieldErrors::single(field, format!("{shown} is a file; name a new or empty directory")).into());
            }
            Ok(_) => {
                let mut entries = std::fs::read_dir(dir).map_err(|e| io_problem(field, dir, &e))?;
                if entries.next().is_some() {
                    return Err(FieldErrors::single(
                        field,
                        format!("{shown} is not empty; name a new or empty directory so no earlier export is mixed in"),
                    )
                    .into());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir).map_err(|e| io_problem(field, dir, &e))?;
                created_dir = true;
            }
            Err(e) => return Err(io_problem(field, dir, &e)),
        }
        Ok(Self { dir: dir.to_owned(), created_dir, files: Vec::new() })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The files written, in the order created.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
}

fn io_problem(field: &str, path: &Path, e: &std::io::Error) -> AppError {
    FieldErrors::single(field, format!("{} cannot be used: {e}", path.display())).into()
}

impl ExportSink for DirSink {
    fn create(&mut self, name: &str) -> Result<Box<dyn Write + Send>, AppError> {
        let path = self.dir.join(name);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| AppError::Internal(format!("creating {}: {e}", path.display())))?;
        self.files.push(path);
        Ok(Box::new(std::io::BufWriter::new(f)))
    }

    fn finish(&mut self) -> Result<(), AppError> {
        for p in &self.files {
            std::fs::File::open(p).and_then(|f| f.sync_all()).map_err(|e| AppError::Internal(format!("syncing {}: {e}", p.display())))?;
        }
        Ok(())
    }

    fn abort(&mut self) {
        for p in self.files.drain(..) {
            let _ = std::fs::remove_file(p);
        }
        if self.created_dir {
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

// ------------------------------------------------------------------------------------------
// Rows and writers

/// One row under construction: cells set by column name, so a writer cannot put a value under
/// the wrong header; an unknown name fails the export instead of shifting columns.
struct Row {
    table: &'static Table,
    cells: Vec<String>,
    unknown: Option<String>,
}

impl Row {
    fn new(table: &'static Table) -> Self {
        Self { table, cells: vec![String::new(); table.columns.len()], unknown: None }
    }
    fn set(mut self, name: &str, value: impl ToString) -> Self {
        match self.table.index(name) {
            Some(i) => self.cells[i] = value.to_string(),
            None => self.unknown = Some(name.to_owned()),
        }
        self
    }
    fn opt<T: ToString>(self, name: &str, value: Option<T>) -> Self {
        match value {
            Some(v) => self.set(name, v),
            None => match self.table.index(name) {
                Some(_) => self,
                None => Self { unknown: Some(name.to_owned()), ..self },
            },
        }
    }
}

struct TableWriter {
    table: &'static Table,
    out: csv::Writer<Box<dyn Write + Send>>,
    rows: u64,
}

fn write_problem(file: &str, e: impl std::fmt::Display) -> AppError {
    AppError::Internal(format!("writing {file}: {e}"))
}

impl TableWriter {
    fn open(sink: &mut dyn ExportSink, table: &'static Table) -> Result<Self, AppError> {
        let w = sink.create(table.file)?;
        let mut out = csv::WriterBuilder::new().has_headers(false).from_writer(w);
        out.write_record(table.columns.iter().map(|c| c.name)).map_err(|e| write_problem(table.file, e))?;
        Ok(Self { table, out, rows: 0 })
    }

    fn write(&mut self, row: Row) -> Result<(), AppError> {
        if row.table.file != self.table.file {
            return Err(AppError::Internal(format!("a row of {} was written to {}", row.table.file, self.table.file)));
        }
        if let Some(name) = row.unknown {
            return Err(AppError::Internal(format!("{} has no column {name}", self.table.file)));
        }
        self.out.write_record(&row.cells).map_err(|e| write_problem(self.table.file, e))?;
        self.rows += 1;
        Ok(())
    }

    fn finish(mut self) -> Result<(String, u64), AppError> {
        self.out.flush().map_err(|e| write_problem(self.table.file, e))?;
        let mut inner = self.out.into_inner().map_err(|e| write_problem(self.table.file, e.error()))?;
        inner.flush().map_err(|e| write_problem(self.table.file, e))?;
        Ok((self.table.file.to_owned(), self.rows))
    }
}

fn dictionary_rows(tables: &'static [Table]) -> Vec<Row> {
    tables
        .iter()
        .flat_map(|t| {
            t.columns.iter().map(move |c| {
                Row::new(&DICTIONARY)
                    .set("table", t.file)
                    .set("column", c.name)
                    .set("type", c.kind.code())
                    .set("unit", c.unit)
                    .set("description", c.description)
                    .set("code_system", c.code_system)
            })
        })
        .collect()
}

// ------------------------------------------------------------------------------------------
// Formatting

fn date(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

fn csv_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn omop_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn dec(d: Decimal) -> String {
    d.normalize().to_string()
}

/// OMOP source values are `varchar(50)`.
fn v50(s: &str) -> String {
    s.chars().take(50).collect()
}

fn system_label(s: &CodeSystem) -> String {
    s.label().to_owned()
}

// ------------------------------------------------------------------------------------------
// One patient, de-identified

/// What every row of one patient shares: the pseudonym, the date shift and the session numbers.
struct Person<'a> {
    research_id: String,
    shift: DateShift,
    c: &'a CohortPatient,
    /// Session id → number (1, 2, ... in booking order).
    session_numbers: HashMap<&'a str, usize>,
    /// Dose orders by record id.
    orders: HashMap<String, &'a DoseOrderRecord>,
    /// Current records in time order (rating scales by when taken, so they number in that
    /// order; the rest by when recorded).
    records: Vec<&'a RecordVersion>,
}

impl<'a> Person<'a> {
    fn new(app: &App, c: &'a CohortPatient) -> Self {
        let d = app.deidentifier();
        let session_numbers = c.sessions.iter().enumerate().map(|(i, s)| (s.id.as_str(), i + 1)).collect();
        let orders = c
            .records
            .iter()
            .filter_map(|r| match &r.record {
                ClinicalRecord::DoseOrder(o) => Some((r.record_id.to_string(), o.as_ref())),
                _ => None,
            })
            .collect();
        let mut records: Vec<&RecordVersion> = c.records.iter().filter(|r| !r.is_void()).collect();
        records.sort_by_key(|r| {
            let at = match &r.record {
                ClinicalRecord::Assessment(a) => a.taken_at,
                _ => r.provenance.recorded_at,
            };
            (at, r.record_id)
        });
        Self { research_id: d.research_id(c.patient.patient_id), shift: d.shift(c.patient.patient_id), c, session_numbers, orders, records }
    }
    fn date(&self, d: NaiveDate) -> NaiveDate {
        self.shift.date(d)
    }
    fn instant(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        self.shift.instant(t)
    }
    fn records(&self) -> impl Iterator<Item = &'a RecordVersion> + '_ {
        self.records.iter().copied()
    }
    fn session_number(&self, id: &str) -> Option<usize> {
        self.session_numbers.get(id).copied()
    }
    /// The dose order of a session whose dose started.
    fn dose(&self, s: &SessionSummary) -> Option<&'a DoseOrderRecord> {
        s.dose_started_at?;
        self.orders.get(s.order_id.as_deref()?).copied()
    }
    /// When a session took place: the dose start, else the booking.
    fn session_time(s: &SessionSummary) -> DateTime<Utc> {
        s.dose_started_at.unwrap_or(s.scheduled_at)
    }
    fn dob(&self) -> NaiveDate {
        self.c.patient.demographics.date_of_birth.date()
    }
}

/// A session that took place (neither only booked nor cancelled).
fn took_place(s: &SessionSummary) -> bool {
    !matches!(s.phase.as_str(), "scheduled" | "cancelled")
}

/// Key/value pairs of an adverse event's stored detail (`key=value` lines); the free-text
/// description is never read.
fn adverse_event_fields(detail: &str) -> HashMap<&str, &str> {
    detail.lines().filter_map(|l| l.split_once('=')).filter(|(k, _)| *k != "description").collect()
}

/// Score of an assessment under the instrument in force (None if the answers no longer fit it).
fn scored(app: &App, a: &ketacare_domain::assessment::Assessment) -> Option<(ketacare_domain::instrument::Score, Option<String>)> {
    let inst = app.knowledge.instrument(&a.instrument)?;
    let s = inst.score(&a.answers, None).ok()?;
    Some((s, inst.total_loinc.clone()))
}

// ------------------------------------------------------------------------------------------
// The export

/// What an export wrote.
#[derive(Clone, Debug)]
pub struct ExportSummary {
    /// Format.
    pub format: ExportFormat,
    /// Patients exported.
    pub patients: u64,
    /// Files written with their number of data rows, in file order.
    pub files: Vec<(String, u64)>,
}

/// Writers of one export, by format.
enum Writers {
    Csv(CsvWriters),
    Omop(OmopWriters),
}

struct CsvWriters {
    w: Vec<TableWriter>,
}

impl CsvWriters {
    fn table(&mut self, file: &str) -> Result<&mut TableWriter, AppError> {
        self.w.iter_mut().find(|w| w.table.file == file).ok_or_else(|| AppError::Internal(format!("no table {file}")))
    }
    fn put(&mut self, row: Row) -> Result<(), AppError> {
        self.table(row.table.file)?.write(row)
    }
}

/// The table `file` of `tables`; an unknown file gives a row that fails when written.
fn table_of(tables: &'static [Table], file: &str) -> Row {
    match tables.iter().find(|t| t.file == file) {
        Some(t) => Row::new(t),
        None => Row { table: &DICTIONARY, cells: Vec::new(), unknown: Some(format!("table {file}")) },
    }
}

fn csv_table(file: &str) -> Row {
    table_of(CSV_TABLES, file)
}

fn omop_table(file: &str) -> Row {
    table_of(OMOP_TABLES, file)
}

impl CsvWriters {
    fn patient(&mut self, app: &App, p: &Person<'_>, today: NaiveDate) -> Result<(), AppError> {
        let c = p.c;
        let rid = p.research_id.as_str();
        let dob = p.dob();
        let first = c.sessions.iter().filter(|s| s.phase != "cancelled").map(|s| Person::session_time(s).date_naive()).min();
        self.put(
            csv_table("patients.csv")
                .set("research_id", rid)
                .set("sex", c.patient.demographics.sex.code())
                .set("age_at_export", age_group(age_on(dob, today)))
                .opt("age_at_first_session", first.map(|d| age_group(age_on(dob, d))))
                .set("sessions", c.sessions.len()),
        )?;
        for s in &c.sessions {
            let n = p.session_number(&s.id).unwrap_or(0);
            let order = s.order_id.as_deref().and_then(|o| p.orders.get(o).copied());
            let given = p.dose(s);
            self.put(
                csv_table("treatment_sessions.csv")
                    .set("research_id", rid)
                    .set("session_number", n)
                    .set("phase", &s.phase)
                    .set("scheduled_at", csv_time(p.instant(s.scheduled_at)))
                    .opt("dose_started_at", s.dose_started_at.map(|t| csv_time(p.instant(t))))
                    .opt("route", order.map(|o| o.route.code()))
                    .opt("dose_mg", given.map(|o| dec(o.dose_mg)))
                    .opt("mg_per_kg", given.and_then(|o| o.mg_per_kg).map(dec))
                    .opt("weight_used_kg", given.map(|o| dec(o.weight_used_kg)))
                    .opt("weight_basis", given.map(|o| o.basis.code()))
                    .opt("infusion_minutes", given.and_then(|o| o.minutes).map(dec))
                    .opt("pump_rate_ml_per_h", given.and_then(|o| o.rate_ml_per_h).map(dec))
                    .opt("order_status", order.map(|o| o.status.code())),
            )?;
            self.put(
                csv_table("session_vitals.csv")
                    .set("research_id", rid)
                    .set("session_number", n)
                    .opt("baseline_systolic", s.baseline_bp.map(|b| b.0))
                    .opt("baseline_diastolic", s.baseline_bp.map(|b| b.1))
                    .opt("peak_systolic", s.peak_systolic)
                    .opt("peak_diastolic", s.peak_diastolic),
            )?;
            for detail in &s.adverse_events {
                let f = adverse_event_fields(detail);
                let get = |k: &str| f.get(k).map(|v| v.to_string());
                self.put(
                    csv_table("adverse_events.csv")
                        .set("research_id", rid)
                        .set("session_number", n)
                        .set("session_date", date(p.date(Person::session_time(s).date_naive())))
                        .opt("kind", get("kind"))
                        .opt("grade", get("grade"))
                        .opt("serious", get("serious"))
                        .opt("action", get("action"))
                        .opt("outcome", get("outcome")),
                )?;
            }
        }
        let mut assessment_number = 0;
        for r in p.records() {
            let recorded = date(p.date(r.provenance.recorded_at.date_naive()));
            match &r.record {
                ClinicalRecord::Diagnosis(d) => self.put(
                    csv_table("diagnoses.csv")
                        .set("research_id", rid)
                        .set("code_system", system_label(d.condition.system()))
                        .set("code", d.condition.code())
                        .set("display", d.condition.display())
                        .opt("icd10_cm", d.icd10.as_ref().map(|c| c.code().to_owned()))
                        .set("status", d.status.code())
                        .opt("onset_date", d.onset.map(|o| date(p.date(o))))
                        .set("recorded_date", &recorded),
                )?,
                ClinicalRecord::Encounter(e) => self.put(
                    csv_table("encounters.csv")
                        .set("research_id", rid)
                        .set("kind", e.kind.code())
                        .set("start_at", csv_time(p.instant(e.start)))
                        .opt("end_at", e.end.map(|t| csv_time(p.instant(t))))
                        .opt("session_number", p.session_number(&r.record_id.to_string())),
                )?,
                ClinicalRecord::Medication(m) => {
                    if let Some(rx) = &m.rxnorm {
                        self.put(
                            csv_table("medications.csv")
                                .set("research_id", rid)
                                .set("rxnorm", rx)
                                .opt("start_date", m.start.map(|d| date(p.date(d))))
                                .opt("stop_date", m.stop.map(|d| date(p.date(d))))
                                .set("recorded_date", &recorded),
                        )?;
                    }
                }
                ClinicalRecord::Observation(o) => {
                    let row = csv_table("observations.csv")
                        .set("research_id", rid)
                        .set("code_system", system_label(o.code.system()))
                        .set("code", o.code.code())
                        .set("display", o.code.display())
                        .set("effective_at", csv_time(p.instant(o.effective)));
                    let row = match &o.value {
                        ObservationValue::Quantity { value, unit } => {
                            row.set("value_type", "quantity").set("value", dec(*value)).set("unit", unit.as_str())
                        }
                        ObservationValue::Coded(v) => {
                            row.set("value_type", "coded").set("value_code_system", system_label(v.system())).set("value_code", v.code())
                        }
                        ObservationValue::Boolean(b) => row.set("value_type", "boolean").set("value", u8::from(*b)),
                        ObservationValue::Text(_) => row.set("value_type", "text"),
                    };
                    self.put(row)?
                }
                ClinicalRecord::Assessment(a) => {
                    assessment_number += 1;
                    let score = scored(app, a);
                    let session = a.session.map(|s| s.to_string()).and_then(|s| p.session_number(&s));
                    self.put(
                        csv_table("assessments.csv")
                            .set("research_id", rid)
                            .set("assessment_number", assessment_number)
                            .set("instrument", &a.instrument)
                            .set("instrument_version", &a.instrument_version)
                            .set("taken_at", csv_time(p.instant(a.taken_at)))
                            .set("filled_by", a.filled_by.code())
                            .opt("session_number", session)
                            .opt("timepoint", a.timepoint.clone())
                            .opt("total", score.as_ref().and_then(|(s, _)| s.total).map(dec))
                            .opt("total_loinc", score.as_ref().and_then(|(_, l)| l.clone()))
                            .opt("percent_of_max", score.as_ref().and_then(|(s, _)| s.percent_max).map(dec))
                            .opt("band", score.as_ref().and_then(|(s, _)| s.band.as_ref().map(|b| b.code.clone())))
                            .opt("triage", score.as_ref().and_then(|(s, _)| s.triage.clone())),
                    )?;
                    let items = app.knowledge.instrument(&a.instrument).map(|i| i.items.as_slice()).unwrap_or(&[]);
                    for (i, answer) in a.answers.iter().enumerate() {
                        let Some(v) = answer else { continue };
                        let item = items.get(i);
                        let answer_loinc =
                            item.and_then(|it| it.choices().iter().position(|c| c == v).and_then(|k| it.choice_loinc.get(k).cloned()));
                        self.put(
                            csv_table("assessment_items.csv")
                                .set("research_id", rid)
                                .set("assessment_number", assessment_number)
                                .set("instrument", &a.instrument)
                                .set("item_number", i + 1)
                                .opt("item_key", item.map(|it| it.key.clone()))
                                .opt("item_loinc", item.and_then(|it| it.loinc.clone()))
                                .set("answer", v)
                                .opt("answer_loinc", answer_loinc.filter(|l| !l.is_empty())),
                        )?;
                    }
                }
                ClinicalRecord::LabResult(l) => self.put(
                    csv_table("lab_results.csv")
                        .set("research_id", rid)
                        .set("test", l.test.code())
                        .set("loinc", l.test.loinc())
                        .set("value", dec(l.value))
                        .set("unit", &l.unit)
                        .set("uln", dec(l.uln))
                        .set("multiple_of_uln", dec(l.multiple()))
                        .set("sampled_at", csv_time(p.instant(l.sampled_at))),
                )?,
                ClinicalRecord::SafetyEvent(e) => self.put(
                    csv_table("safety_events.csv")
                        .set("research_id", rid)
                        .set("kind", e.kind.code())
                        .set("at", csv_time(p.instant(e.at)))
                        .opt("craving_score", e.score)
                        .opt("result", e.positive.map(|x| if x { "positive" } else { "negative" })),
                )?,
                _ => {}
            }
        }
        Ok(())
    }
}

/// OMOP writers with the running ids of each table.
struct OmopWriters {
    w: Vec<TableWriter>,
    next: HashMap<&'static str, u64>,
}

/// A patient's first and last exported dates (the observation period).
#[derive(Default)]
struct Span(Option<(NaiveDate, NaiveDate)>);

impl Span {
    fn see(&mut self, d: NaiveDate) {
        self.0 = Some(match self.0 {
            Some((a, b)) => (a.min(d), b.max(d)),
            None => (d, d),
        });
    }
}

impl OmopWriters {
    fn id(&mut self, file: &'static str) -> u64 {
        let n = self.next.entry(file).or_insert(0);
        *n += 1;
        *n
    }
    fn put(&mut self, row: Row) -> Result<(), AppError> {
        let file = row.table.file;
        self.w.iter_mut().find(|w| w.table.file == file).ok_or_else(|| AppError::Internal(format!("no table {file}")))?.write(row)
    }

    /// A new row of `file` with its id column set to the next id.
    fn row(&mut self, file: &'static str, id_column: &str, person_id: u64) -> Row {
        let id = self.id(file);
        omop_table(file).set(id_column, id).set("person_id", person_id)
    }

    fn patient(&mut self, app: &App, k: &OmopConcepts, p: &Person<'_>, today: NaiveDate) -> Result<(), AppError> {
        let c = p.c;
        let ehr = k.type_concept.concept_id;
        let person_id = self.id("person.csv");
        let mut span = Span::default();
        // Year of birth: the shifted date of birth keeps ages at shifted dates exact; above 89
        // on the export day, the year that makes the patient 90 on the shifted export day.
        let dob = p.dob();
        let year_of_birth = if age_on(dob, today) > OLDEST_EXACT_AGE { p.date(today).year() - 90 } else { p.date(dob).year() };
        let sex = c.patient.demographics.sex;
        self.put(
            omop_table("person.csv")
                .set("person_id", person_id)
                .set("gender_concept_id", k.gender(sex))
                .set("year_of_birth", year_of_birth)
                .set("race_concept_id", 0)
                .set("ethnicity_concept_id", 0)
                .set("person_source_value", &p.research_id)
                .set("gender_source_value", sex.code())
                .set("gender_source_concept_id", 0),
        )?;

        // Sessions: visits, doses, baseline blood pressure, adverse events.
        let mut visits: HashMap<&str, u64> = HashMap::new();
        for s in c.sessions.iter().filter(|s| took_place(s)) {
            let at = p.instant(Person::session_time(s));
            span.see(at.date_naive());
            let visit_id = self.id("visit_occurrence.csv");
            visits.insert(s.id.as_str(), visit_id);
            self.put(
                omop_table("visit_occurrence.csv")
                    .set("visit_occurrence_id", visit_id)
                    .set("person_id", person_id)
                    .set("visit_concept_id", k.visit.concept_id)
                    .set("visit_start_date", date(at.date_naive()))
                    .set("visit_start_datetime", omop_time(at))
                    .set("visit_end_date", date(at.date_naive()))
                    .set("visit_type_concept_id", ehr)
                    .set("visit_source_value", v50(&format!("treatment_session/{}", s.phase)))
                    .set("visit_source_concept_id", 0),
            )?;
            if let (Some(o), Some(start)) = (p.dose(s), s.dose_started_at) {
                let start = p.instant(start);
                let minutes = o.minutes.and_then(|m| m.round().to_i64());
                let end = start + Duration::minutes(minutes.unwrap_or(0));
                span.see(end.date_naive());
                let mut sig = Vec::new();
                if let Some(r) = o.mg_per_kg {
                    sig.push(format!("{} mg/kg on {} kg", dec(r), dec(o.weight_used_kg)));
                }
                match (o.minutes, o.rate_ml_per_h) {
                    (Some(m), Some(r)) => sig.push(format!("{} min at {} mL/h", dec(m), dec(r))),
                    (Some(m), None) => sig.push(format!("{} min", dec(m))),
                    _ => {}
                }
                let row = self
                    .row("drug_exposure.csv", "drug_exposure_id", person_id)
                    .set("drug_concept_id", k.drug.concept_id)
                    .set("drug_exposure_start_date", date(start.date_naive()))
                    .set("drug_exposure_start_datetime", omop_time(start))
                    .set("drug_exposure_end_date", date(end.date_naive()))
                    .set("drug_exposure_end_datetime", omop_time(end))
                    .set("drug_type_concept_id", ehr)
                    .set("quantity", dec(o.dose_mg))
                    .set("sig", sig.join("; "))
                    .set("route_concept_id", k.route(o.route))
                    .set("visit_occurrence_id", visit_id)
                    .set("drug_source_value", &k.drug.key)
                    .set("drug_source_concept_id", 0)
                    .set("route_source_value", o.route.code())
                    .set("dose_unit_source_value", "mg");
                self.put(row)?;
            }
            if let Some((sys, dia)) = s.baseline_bp {
                for (loinc, v) in [("8480-6", sys), ("8462-4", dia)] {
                    let row = self
                        .row("measurement.csv", "measurement_id", person_id)
                        .set("measurement_concept_id", k.measurement(loinc))
                        .set("measurement_date", date(at.date_naive()))
                        .set("measurement_datetime", omop_time(at))
                        .set("measurement_type_concept_id", ehr)
                        .set("value_as_number", v)
                        .set("unit_concept_id", k.unit("mm[Hg]"))
                        .set("visit_occurrence_id", visit_id)
                        .set("measurement_source_value", loinc)
                        .set("measurement_source_concept_id", 0)
                        .set("unit_source_value", "mm[Hg]")
                        .set("value_source_value", v);
                    self.put(row)?;
                }
            }
            for detail in &s.adverse_events {
                let f = adverse_event_fields(detail);
                let kind = f.get("kind").copied().unwrap_or("other");
                let serious = if f.get("serious").copied() == Some("yes") { "serious" } else { "non-serious" };
                let row = self
                    .row("observation.csv", "observation_id", person_id)
                    .set("observation_concept_id", 0)
                    .set("observation_date", date(at.date_naive()))
                    .set("observation_datetime", omop_time(at))
                    .set("observation_type_concept_id", ehr)
                    .opt("value_as_number", f.get("grade"))
                    .set("visit_occurrence_id", visit_id)
                    .set("observation_source_value", v50(&format!("adverse_event.{kind}")))
                    .set("observation_source_concept_id", 0)
                    .set("qualifier_source_value", serious)
                    .set(
                        "value_source_value",
                        v50(&format!("{}/{}", f.get("action").copied().unwrap_or(""), f.get("outcome").copied().unwrap_or(""))),
                    );
                self.put(row)?;
            }
        }

        for r in p.records() {
            match &r.record {
                ClinicalRecord::Encounter(e) if p.session_number(&r.record_id.to_string()).is_none() => {
                    let start = p.instant(e.start);
                    let end = e.end.map(|t| p.instant(t));
                    span.see(start.date_naive());
                    if let Some(t) = end {
                        span.see(t.date_naive());
                    }
                    let row = self
                        .row("visit_occurrence.csv", "visit_occurrence_id", person_id)
                        .set("visit_concept_id", k.visit.concept_id)
                        .set("visit_start_date", date(start.date_naive()))
                        .set("visit_start_datetime", omop_time(start))
                        .set("visit_end_date", date(end.unwrap_or(start).date_naive()))
                        .opt("visit_end_datetime", end.map(omop_time))
                        .set("visit_type_concept_id", ehr)
                        .set("visit_source_value", v50(&format!("encounter/{}", e.kind.code())))
                        .set("visit_source_concept_id", 0);
                    self.put(row)?;
                }
                ClinicalRecord::Diagnosis(d) => {
                    let start = p.date(d.onset.unwrap_or_else(|| r.provenance.recorded_at.date_naive()));
                    span.see(start);
                    let concept = if d.condition.system() == &CodeSystem::SnomedCt { k.condition(d.condition.code()) } else { 0 };
                    let source = d.icd10.as_ref().unwrap_or(&d.condition).code().to_owned();
                    let row = self
                        .row("condition_occurrence.csv", "condition_occurrence_id", person_id)
                        .set("condition_concept_id", concept)
                        .set("condition_start_date", date(start))
                        .set("condition_type_concept_id", ehr)
                        .set("condition_source_value", v50(&source))
                        .set("condition_source_concept_id", 0)
                        .set("condition_status_source_value", d.status.code());
                    self.put(row)?;
                }
                ClinicalRecord::Observation(o) => {
                    let at = p.instant(o.effective);
                    span.see(at.date_naive());
                    let loinc = o.code.system() == &CodeSystem::Loinc;
                    match &o.value {
                        ObservationValue::Quantity { value, unit } if loinc => {
                            let row = self
                                .row("measurement.csv", "measurement_id", person_id)
                                .set("measurement_concept_id", k.measurement(o.code.code()))
                                .set("measurement_date", date(at.date_naive()))
                                .set("measurement_datetime", omop_time(at))
                                .set("measurement_type_concept_id", ehr)
                                .set("value_as_number", dec(*value))
                                .set("unit_concept_id", k.unit(unit.as_str()))
                                .set("measurement_source_value", v50(o.code.code()))
                                .set("measurement_source_concept_id", 0)
                                .set("unit_source_value", v50(unit.as_str()))
                                .set("value_source_value", v50(&dec(*value)));
                            self.put(row)?;
                        }
                        ObservationValue::Text(_) => {}
                        v => {
                            let row = self
                                .row("observation.csv", "observation_id", person_id)
                                .set("observation_concept_id", if loinc { k.measurement(o.code.code()) } else { 0 })
                                .set("observation_date", date(at.date_naive()))
                                .set("observation_datetime", omop_time(at))
                                .set("observation_type_concept_id", ehr)
                                .set("observation_source_value", v50(o.code.code()))
                                .set("observation_source_concept_id", 0);
                            let row = match v {
                                ObservationValue::Quantity { value, unit } => {
                                    row.set("value_as_number", dec(*value)).set("unit_source_value", v50(unit.as_str()))
                                }
                                ObservationValue::Coded(c) => row.set("value_as_string", v50(c.code())),
                                ObservationValue::Boolean(b) => row.set("value_as_number", u8::from(*b)),
                                ObservationValue::Text(_) => row,
                            };
                            self.put(row)?;
                        }
                    }
                }
                ClinicalRecord::Assessment(a) => {
                    let at = p.instant(a.taken_at);
                    span.see(at.date_naive());
                    let visit = a.session.map(|s| s.to_string()).and_then(|s| visits.get(s.as_str()).copied());
                    if let Some((score, total_loinc)) = scored(app, a) {
                        if let Some(total) = score.total {
                            let source = total_loinc.clone().unwrap_or_else(|| format!("{}.total", a.instrument));
                            let row = self
                                .row("observation.csv", "observation_id", person_id)
                                .set("observation_concept_id", total_loinc.as_deref().map(|l| k.measurement(l)).unwrap_or(0))
                                .set("observation_date", date(at.date_naive()))
                                .set("observation_datetime", omop_time(at))
                                .set("observation_type_concept_id", ehr)
                                .set("value_as_number", dec(total))
                                .opt("value_as_string", score.band.as_ref().map(|b| v50(&b.code)))
                                .opt("visit_occurrence_id", visit)
                                .set("observation_source_value", v50(&source))
                                .set("observation_source_concept_id", 0);
                            self.put(row)?;
                        }
                    }
                    let items = app.knowledge.instrument(&a.instrument).map(|i| i.items.as_slice()).unwrap_or(&[]);
                    for (i, answer) in a.answers.iter().enumerate() {
                        let Some(v) = answer else { continue };
                        let item = items.get(i);
                        let source = item.and_then(|it| it.loinc.clone()).unwrap_or_else(|| {
                            format!("{}.{}", a.instrument, item.map(|it| it.key.clone()).unwrap_or_else(|| (i + 1).to_string()))
                        });
                        let answer_loinc = item
                            .and_then(|it| it.choices().iter().position(|c| c == v).and_then(|k| it.choice_loinc.get(k).cloned()))
                            .filter(|l| !l.is_empty());
                        let row = self
                            .row("observation.csv", "observation_id", person_id)
                            .set("observation_concept_id", item.and_then(|it| it.loinc.as_deref()).map(|l| k.measurement(l)).unwrap_or(0))
                            .set("observation_date", date(at.date_naive()))
                            .set("observation_datetime", omop_time(at))
                            .set("observation_type_concept_id", ehr)
                            .set("value_as_number", v)
                            .opt("visit_occurrence_id", visit)
                            .set("observation_source_value", v50(&source))
                            .set("observation_source_concept_id", 0)
                            .opt("value_source_value", answer_loinc.map(|l| v50(&l)));
                        self.put(row)?;
                    }
                }
                ClinicalRecord::LabResult(l) => {
                    let at = p.instant(l.sampled_at);
                    span.see(at.date_naive());
                    let row = self
                        .row("measurement.csv", "measurement_id", person_id)
                        .set("measurement_concept_id", k.measurement(l.test.loinc()))
                        .set("measurement_date", date(at.date_naive()))
                        .set("measurement_datetime", omop_time(at))
                        .set("measurement_type_concept_id", ehr)
                        .set("value_as_number", dec(l.value))
                        .set("unit_concept_id", k.unit(&l.unit))
                        .set("range_high", dec(l.uln))
                        .set("measurement_source_value", l.test.loinc())
                        .set("measurement_source_concept_id", 0)
                        .set("unit_source_value", v50(&l.unit))
                        .set("value_source_value", v50(&dec(l.value)));
                    self.put(row)?;
                }
                ClinicalRecord::SafetyEvent(e) => {
                    let at = p.instant(e.at);
                    span.see(at.date_naive());
                    let row = self
                        .row("observation.csv", "observation_id", person_id)
                        .set("observation_concept_id", 0)
                        .set("observation_date", date(at.date_naive()))
                        .set("observation_datetime", omop_time(at))
                        .set("observation_type_concept_id", ehr)
                        .opt("value_as_number", e.score)
                        .opt("value_as_string", e.positive.map(|x| if x { "positive" } else { "negative" }))
                        .set("observation_source_value", v50(&format!("safety_event.{}", e.kind.code())))
                        .set("observation_source_concept_id", 0);
                    self.put(row)?;
                }
                _ => {}
            }
        }

        let (start, end) = span.0.unwrap_or_else(|| {
            let d = p.date(c.patient.provenance.recorded_at.date_naive());
            (d, d)
        });
        let row = self
            .row("observation_period.csv", "observation_period_id", person_id)
            .set("observation_period_start_date", date(start))
            .set("observation_period_end_date", date(end))
            .set("period_type_concept_id", ehr);
        self.put(row)
    }
}

impl Writers {
    fn open(format: ExportFormat, sink: &mut dyn ExportSink) -> Result<Self, AppError> {
        let mut w = Vec::new();
        for t in format.tables().iter().filter(|t| t.file != DICTIONARY.file) {
            w.push(TableWriter::open(sink, t)?);
        }
        Ok(match format {
            ExportFormat::Csv => Writers::Csv(CsvWriters { w }),
            ExportFormat::Omop => Writers::Omop(OmopWriters { w, next: HashMap::new() }),
        })
    }

    fn finish(self, format: ExportFormat, sink: &mut dyn ExportSink) -> Result<Vec<(String, u64)>, AppError> {
        let w = match self {
            Writers::Csv(c) => c.w,
            Writers::Omop(o) => o.w,
        };
        let mut files = Vec::new();
        for t in w {
            files.push(t.finish()?);
        }
        let mut dict = TableWriter::open(sink, &DICTIONARY)?;
        for row in dictionary_rows(format.tables()) {
            dict.write(row)?;
        }
        files.push(dict.finish()?);
        Ok(files)
    }
}

impl App {
    /// Exports the whole clinic, de-identified, in `format`, into `sink` (researchers and the
    /// medical director). `progress(done, total)` is called after each patient. On any failure
    /// the sink is told to remove what was written. One audit event records the finished
    /// export (who, when, format, patient count); the store audits each page it reads.
    pub async fn export(
        &self,
        p: &Principal,
        format: ExportFormat,
        sink: &mut dyn ExportSink,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<ExportSummary, AppError> {
        self.authorize(p, Permission::ReadDeidentified, AUDIT_ENTITY).await?;
        let concepts = match format {
            ExportFormat::Omop => Some(OmopConcepts::get()?),
            ExportFormat::Csv => None,
        };
        let result = self.export_into(p, format, concepts, sink, progress).await;
        match result {
            Ok(summary) => {
                let e = AuditEvent {
                    recorded_at: self.clock.now(),
                    actor: p.actor(),
                    action: AuditAction::Execute,
                    outcome: AuditOutcome::Success,
                    entity_type: AUDIT_ENTITY.to_owned(),
                    entity_id: None,
                    patient_id: None,
                    detail: Some(format!(
                        "format={}; patients={}; files={}; de-identified",
                        format.code(),
                        summary.patients,
                        summary.files.len()
                    )),
                };
                if let Err(err) = self.store.append_audit(&e).await {
                    sink.abort();
                    return Err(err.into());
                }
                Ok(summary)
            }
            Err(e) => {
                sink.abort();
                Err(e)
            }
        }
    }

    async fn export_into(
        &self,
        p: &Principal,
        format: ExportFormat,
        concepts: Option<&OmopConcepts>,
        sink: &mut dyn ExportSink,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<ExportSummary, AppError> {
        let total = u64::try_from(self.store.count_patients().await?).unwrap_or(0);
        let today = self.clock.now().date_naive();
        let mut writers = Writers::open(format, sink)?;
        progress(0, total);
        let ctx = self.ctx(p, "research");
        let mut after: Option<PatientId> = None;
        let mut done: u64 = 0;
        loop {
            let page = self.store.cohort_page(&ctx, &KINDS, after, PAGE_SIZE).await?;
            let Some(last) = page.last().map(|c| c.patient.patient_id) else { break };
            for c in &page {
                let person = Person::new(self, c);
                match (&mut writers, concepts) {
                    (Writers::Csv(w), _) => w.patient(self, &person, today)?,
                    (Writers::Omop(w), Some(k)) => w.patient(self, k, &person, today)?,
                    (Writers::Omop(_), None) => return Err(AppError::Internal("OMOP concepts not loaded".into())),
                }
                done += 1;
                progress(done, total.max(done));
            }
            after = Some(last);
        }
        // A page of voided patients only reads as the end of the clinic: never hand out a
        // partial clinic as if it were whole.
        if done < total {
            return Err(AppError::Conflict(format!(
                "the clinic changed during the export ({done} of {total} patients read); nothing was exported; try again"
            )));
        }
        let files = writers.finish(format, sink)?;
        sink.finish()?;
        Ok(ExportSummary { format, patients: done, files })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::HashSet;

    #[test]
    fn formats_parse_and_name_the_accepted_values() {
        assert_eq!(ExportFormat::parse(" CSV "), Ok(ExportFormat::Csv));
        assert_eq!(ExportFormat::parse("omop"), Ok(ExportFormat::Omop));
        let e = ExportFormat::parse("xlsx").unwrap_err();
        assert!(e.contains("csv") && e.contains("omop"), "{e}");
    }

    #[test]
    fn every_table_has_unique_described_columns_and_ends_with_the_dictionary() {
        for f in ExportFormat::ALL {
            let tables = f.tables();
            assert_eq!(tables.last().map(|t| t.file), Some(DICTIONARY.file));
            let mut files = HashSet::new();
            for t in tables {
                assert!(files.insert(t.file), "{} listed twice", t.file);
                assert!(t.file.ends_with(".csv") && !t.description.is_empty());
                let mut names = HashSet::new();
                for c in t.columns {
                    assert!(names.insert(c.name), "{}: column {} twice", t.file, c.name);
                    assert!(!c.description.is_empty(), "{}: {} has no description", t.file, c.name);
                }
            }
        }
    }

    #[test]
    fn the_omop_tables_have_the_cdm_v5_4_columns_in_ddl_order() {
        let cols = |file: &str| omop_table(file).table.columns.iter().map(|c| c.name).collect::<Vec<_>>().join(",");
        assert_eq!(
            cols("person.csv"),
            "person_id,gender_concept_id,year_of_birth,month_of_birth,day_of_birth,birth_datetime,race_concept_id,ethnicity_concept_id,location_id,provider_id,care_site_id,person_source_value,gender_source_value,gender_source_concept_id,race_source_value,race_source_concept_id,ethnicity_source_value,ethnicity_source_concept_id"
        );
        assert_eq!(
            cols("observation_period.csv"),
            "observation_period_id,person_id,observation_period_start_date,observation_period_end_date,period_type_concept_id"
        );
        assert_eq!(
            cols("visit_occurrence.csv"),
            "visit_occurrence_id,person_id,visit_concept_id,visit_start_date,visit_start_datetime,visit_end_date,visit_end_datetime,visit_type_concept_id,provider_id,care_site_id,visit_source_value,visit_source_concept_id,admitted_from_concept_id,admitted_from_source_value,discharged_to_concept_id,discharged_to_source_value,preceding_visit_occurrence_id"
        );
        assert_eq!(
            cols("condition_occurrence.csv"),
            "condition_occurrence_id,person_id,condition_concept_id,condition_start_date,condition_start_datetime,condition_end_date,condition_end_datetime,condition_type_concept_id,condition_status_concept_id,stop_reason,provider_id,visit_occurrence_id,visit_detail_id,condition_source_value,condition_source_concept_id,condition_status_source_value"
        );
        assert_eq!(
            cols("drug_exposure.csv"),
            "drug_exposure_id,person_id,drug_concept_id,drug_exposure_start_date,drug_exposure_start_datetime,drug_exposure_end_date,drug_exposure_end_datetime,verbatim_end_date,drug_type_concept_id,stop_reason,refills,quantity,days_supply,sig,route_concept_id,lot_number,provider_id,visit_occurrence_id,visit_detail_id,drug_source_value,drug_source_concept_id,route_source_value,dose_unit_source_value"
        );
        assert_eq!(
            cols("measurement.csv"),
            "measurement_id,person_id,measurement_concept_id,measurement_date,measurement_datetime,measurement_time,measurement_type_concept_id,operator_concept_id,value_as_number,value_as_concept_id,unit_concept_id,range_low,range_high,provider_id,visit_occurrence_id,visit_detail_id,measurement_source_value,measurement_source_concept_id,unit_source_value,unit_source_concept_id,value_source_value,measurement_event_id,meas_event_field_concept_id"
        );
        assert_eq!(
            cols("observation.csv"),
            "observation_id,person_id,observation_concept_id,observation_date,observation_datetime,observation_type_concept_id,value_as_number,value_as_string,value_as_concept_id,qualifier_concept_id,unit_concept_id,provider_id,visit_occurrence_id,visit_detail_id,observation_source_value,observation_source_concept_id,unit_source_value,qualifier_source_value,value_source_value,observation_event_id,obs_event_field_concept_id"
        );
    }

    #[test]
    fn the_concept_file_parses_and_every_entry_has_a_source() {
        let k = OmopConcepts::get().unwrap();
        assert_eq!(k.cdm_version, "5.4");
        let mut n = 0;
        for (_, entries) in k.entries() {
            for e in entries {
                assert!(e.concept_id > 0 && !e.source.trim().is_empty() && !e.name.trim().is_empty(), "{e:?}");
                n += 1;
            }
        }
        assert!(n >= 20, "{n} concepts");
        assert_eq!(k.gender(Sex::Female), 8532);
        assert_eq!(k.gender(Sex::Male), 8507);
        assert_eq!(k.gender(Sex::Unknown), 0);
        assert_eq!(k.route(Route::Iv), 4171047);
        assert_eq!(k.measurement("8480-6"), 3004249);
        assert_eq!(k.unit("mm[Hg]"), 8876);
        assert_eq!(k.unit("furlong"), 0);
        assert_eq!(k.type_concept.concept_id, 32817);
        assert_eq!(k.visit.concept_id, 9202);
        assert_eq!(k.drug.key, "6130");
        for route in Route::ALL {
            assert!(k.route(route) > 0, "route {} is mapped", route.code());
        }
    }

    #[test]
    fn a_concept_file_without_sources_or_with_duplicates_is_refused() {
        let good = OMOP_CONCEPTS_FILE;
        let no_source =
            good.replacen("source = \"DataQualityDashboard OMOP_CDMv5.4_Concept_Level.csv: MEASUREMENT 3004249", "source = \"\" #", 1);
        assert!(OmopConcepts::parse(&no_source).unwrap_err().contains("source"), "missing source");
        let twice =
            format!("{good}\n[[unit]]\nucum = \"kg\"\nconcept_id = 9529\nname = \"kilogram\"\nverified = true\nsource = \"again\"\n");
        assert!(OmopConcepts::parse(&twice).unwrap_err().contains("twice"));
        let zero = good.replacen("concept_id = 8876", "concept_id = 0", 1);
        assert!(OmopConcepts::parse(&zero).unwrap_err().contains("positive"));
    }

    #[test]
    fn rows_are_checked_against_their_table() {
        let r = csv_table("patients.csv").set("research_id", "R-1").set("no_such_column", "x");
        assert_eq!(r.unknown.as_deref(), Some("no_such_column"));
        let r = csv_table("patients.csv").opt::<String>("missing_too", None);
        assert_eq!(r.unknown.as_deref(), Some("missing_too"));
        assert!(csv_table("no_such_file.csv").unknown.is_some());
        let r = csv_table("patients.csv").set("sex", "female").opt("age_at_export", Some("90+"));
        assert!(r.unknown.is_none());
        assert_eq!(r.cells[1..3], ["female".to_owned(), "90+".to_owned()]);
    }

    #[test]
    fn the_dictionary_lists_every_column_of_every_table() {
        for f in ExportFormat::ALL {
            let rows = dictionary_rows(f.tables());
            let expected: usize = f.tables().iter().map(|t| t.columns.len()).sum();
            assert_eq!(rows.len(), expected);
            assert!(rows.iter().all(|r| r.unknown.is_none()));
            assert!(rows.iter().any(|r| r.cells[0] == "data_dictionary.csv" && r.cells[1] == "code_system"));
        }
    }

    #[test]
    fn adverse_event_descriptions_are_never_read() {
        let f = adverse_event_fields(
            "kind=other\ngrade=2\nserious=no\naction=treated\noutcome=resolved\ndescription=fell at home on Elm Street",
        );
        assert_eq!(f.get("kind"), Some(&"other"));
        assert_eq!(f.get("grade"), Some(&"2"));
        assert!(!f.contains_key("description"));
        assert!(f.values().all(|v| !v.contains("Elm")));
    }

    #[test]
    fn source_values_fit_varchar_50() {
        assert_eq!(v50(&"x".repeat(80)).len(), 50);
        assert_eq!(v50("8480-6"), "8480-6");
    }

    #[test]
    fn a_dir_sink_refuses_a_file_or_a_non_empty_directory_and_cleans_up_on_abort() {
        let base = std::env::temp_dir().join(format!("ketacare-export-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&base).unwrap();
        let file = base.join("a-file");
        std::fs::write(&file, "x").unwrap();
        let e = DirSink::new(&file, "--out").unwrap_err();
        assert!(matches!(&e, AppError::Validation(f) if f.for_field("--out").is_some_and(|m| m.contains("is a file"))), "{e:?}");
        let e = DirSink::new(&base, "--out").unwrap_err();
        assert!(matches!(&e, AppError::Validation(f) if f.for_field("--out").is_some_and(|m| m.contains("not empty"))), "{e:?}");
        let fresh = base.join("new");
        let mut sink = DirSink::new(&fresh, "--out").unwrap();
        let mut w = sink.create("patients.csv").unwrap();
        w.write_all(b"research_id\n").unwrap();
        drop(w);
        assert!(sink.create("patients.csv").is_err(), "a file is never replaced");
        assert!(fresh.join("patients.csv").exists());
        sink.abort();
        assert!(!fresh.exists(), "nothing half-written stays");
        std::fs::remove_dir_all(&base).unwrap();
    }
}
