//! Coded concepts: a code from a named code system (SNOMED CT, ICD-10-CM, LOINC, RxNorm, UCUM,
//! or a local system), with its display text.

use crate::validation::bounded_text;
use std::fmt;

/// A code system a clinical code can come from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CodeSystem {
    /// SNOMED CT, `http://snomed.info/sct`.
    SnomedCt,
    /// ICD-10-CM, `http://hl7.org/fhir/sid/icd-10-cm`.
    Icd10Cm,
    /// LOINC, `http://loinc.org`.
    Loinc,
    /// RxNorm, `http://www.nlm.nih.gov/research/umls/rxnorm`.
    RxNorm,
    /// Any other system, named by its canonical URI.
    Other(String),
}

impl CodeSystem {
    /// The canonical FHIR system URI.
    pub fn uri(&self) -> &str {
        match self {
            CodeSystem::SnomedCt => "http://snomed.info/sct",
            CodeSystem::Icd10Cm => "http://hl7.org/fhir/sid/icd-10-cm",
            CodeSystem::Loinc => "http://loinc.org",
            CodeSystem::RxNorm => "http://www.nlm.nih.gov/research/umls/rxnorm",
            CodeSystem::Other(u) => u,
        }
    }

    /// Short label for display.
    pub fn label(&self) -> &str {
        match self {
            CodeSystem::SnomedCt => "SNOMED CT",
            CodeSystem::Icd10Cm => "ICD-10-CM",
            CodeSystem::Loinc => "LOINC",
            CodeSystem::RxNorm => "RxNorm",
            CodeSystem::Other(u) => u,
        }
    }

    /// Parses a URI or one of the short names `snomed`, `icd10`, `loinc`, `rxnorm`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let t = raw.trim();
        match t.to_ascii_lowercase().as_str() {
            "snomed" | "snomed ct" | "sct" | "http://snomed.info/sct" => Ok(Self::SnomedCt),
            "icd10" | "icd-10" | "icd-10-cm" | "icd10cm" | "http://hl7.org/fhir/sid/icd-10-cm" => Ok(Self::Icd10Cm),
            "loinc" | "http://loinc.org" => Ok(Self::Loinc),
            "rxnorm" | "http://www.nlm.nih.gov/research/umls/rxnorm" => Ok(Self::RxNorm),
            _ if t.starts_with("http://") || t.starts_with("https://") || t.starts_with("urn:") => bounded_text(t, 8, 200).map(Self::Other),
            _ => Err("must be snomed, icd10, loinc, rxnorm or a code system URI (http://…, https://… or urn:…)".to_owned()),
        }
    }
}

impl fmt::Display for CodeSystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A code with its system and human-readable display.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Coding {
    system: CodeSystem,
    code: String,
    display: String,
}

impl Coding {
    /// Validates the code (1–64 visible characters, no spaces) and display (1–200 characters).
    pub fn new(system: CodeSystem, code: &str, display: &str) -> Result<Self, String> {
        let code = bounded_text(code, 1, 64).map_err(|e| format!("code {e}"))?;
        if code.chars().any(char::is_whitespace) {
            return Err("code must not contain spaces".to_owned());
        }
        if system == CodeSystem::SnomedCt && !code.chars().all(|c| c.is_ascii_digit()) {
            return Err("a SNOMED CT code is digits only, such as 21897009".to_owned());
        }
        let display = bounded_text(display, 1, 200).map_err(|e| format!("display {e}"))?;
        Ok(Self { system, code, display })
    }

    /// The code system.
    pub fn system(&self) -> &CodeSystem {
        &self.system
    }
    /// The code.
    pub fn code(&self) -> &str {
        &self.code
    }
    /// Display text.
    pub fn display(&self) -> &str {
        &self.display
    }
}

/// LOINC codes for the observations the core itself reasons about.
///
/// Source: HL7 FHIR R4 vital-signs value set,
/// <https://hl7.org/fhir/R4/valueset-observation-vitalsignresult.html>.
pub mod loinc {
    /// Body weight.
    pub const BODY_WEIGHT: &str = "29463-7";
    /// Body height.
    pub const BODY_HEIGHT: &str = "8302-2";
    /// Body mass index.
    pub const BMI: &str = "39156-5";
    /// Systolic blood pressure (mm[Hg]).
    pub const SYSTOLIC_BP: &str = "8480-6";
    /// Diastolic blood pressure (mm[Hg]).
    pub const DIASTOLIC_BP: &str = "8462-4";
    /// Heart rate (/min).
    pub const HEART_RATE: &str = "8867-4";
    /// Oxygen saturation in arterial blood by pulse oximetry (%).
    pub const SPO2: &str = "59408-5";
    /// Respiratory rate (/min).
    pub const RESPIRATORY_RATE: &str = "9279-1";
    /// Alanine aminotransferase, enzymatic activity in serum or plasma (U/L). LOINC 1742-6 as
    /// published at loinc.org (laboratory codes are not in the product's clinical reference; verify
    /// against the laboratory's own coding).
    pub const ALT: &str = "1742-6";
    /// Aspartate aminotransferase, serum or plasma (U/L); verify as for [`ALT`].
    pub const AST: &str = "1920-8";
    /// Alkaline phosphatase, serum or plasma (U/L); verify as for [`ALT`].
    pub const ALP: &str = "6768-6";
    /// Total bilirubin, moles per volume in serum or plasma (umol/L); verify as for [`ALT`].
    pub const BILIRUBIN_TOTAL: &str = "14631-6";
}
