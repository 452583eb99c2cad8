//! HTTP tests: fhir.
