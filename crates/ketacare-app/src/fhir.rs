//! FHIR R4 use cases.
