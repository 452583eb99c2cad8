//! Published studies of ketamine in anxiety disorders (from `knowledge/studies.toml`), described
//! so that a clinic's own cohort can be computed on each study's own response definition.

use rust_decimal::Decimal;

/// How a study defined response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseDefinition {
    /// Instrument key the definition uses (None: the study's anxiety rating of each diagnosis).
    pub instrument: Option<String>,
    /// Percent reduction from baseline.
    pub reduction_percent: Decimal,
    /// Whether the reduction must be strictly above the percent ("above 35 %") or at least it.
    pub strict: bool,
    /// Doses (mg/kg) the definition applies to.
    pub doses_mg_per_kg: Vec<Decimal>,
}

/// A published study.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishedStudy {
    /// Stable key.
    pub key: String,
    /// Short name for tables.
    pub short: String,
    /// Full citation.
    pub citation: String,
    /// Design.
    pub design: String,
    /// Patients.
    pub n: u64,
    /// Who.
    pub population: String,
    /// Diagnosis keys.
    pub diagnoses: Vec<String>,
    /// Route code (iv, sc, ...).
    pub route: String,
    /// Protocol in words.
    pub protocol: String,
    /// Instruments.
    pub instruments: Vec<String>,
    /// Response definition in words.
    pub response_text: String,
    /// Response definition the clinic's cohort can be computed on, where the study gives one.
    pub response: Option<ResponseDefinition>,
    /// Responders as reported.
    pub responders: Option<u64>,
    /// Results in words.
    pub results: String,
    /// Where the numbers come from.
    pub source: String,
}

impl ResponseDefinition {
    /// Whether a reduction (percent) counts as response.
    pub fn responds(&self, reduction_percent: Decimal) -> bool {
        if self.strict {
            reduction_percent > self.reduction_percent
        } else {
            reduction_percent >= self.reduction_percent
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn strict_and_inclusive_definitions_differ_at_the_boundary() {
        let d = |strict| ResponseDefinition { instrument: None, reduction_percent: Decimal::from(35), strict, doses_mg_per_kg: vec![] };
        assert!(!d(true).responds(Decimal::from(35)), "LSAS reduction above 35 %: exactly 35 is not a response");
        assert!(d(true).responds(Decimal::from_str("35.1").unwrap()));
        assert!(d(false).responds(Decimal::from(35)), "at least 50 %-style definitions include the boundary");
    }
}
