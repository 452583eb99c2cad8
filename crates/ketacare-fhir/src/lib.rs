//! FHIR R4 resources of Ketacare records.
