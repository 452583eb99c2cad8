//! The pure clinical core of Ketacare.
//!
//! Everything here is synchronous and deterministic: no IO, no clock, no entropy (the Monte Carlo
//! band of [`pk`] draws from a generator seeded by its caller), no database, HTTP or
//! serialisation crates.
//! Time and identifiers are passed in by the caller (`ketacare-app`).
//!
//! Main parts:
//! - [`ids`]: distinct identifier newtypes.
//! - [`patient`]: validated demographics (`Mrn`, `PersonName`, `DateOfBirth`, ...).
//! - [`record`]: the append-only clinical record (diagnoses, medications, allergies,
//!   encounters, observations) and its versions.
//! - [`anthropometry`]: body weight and height, BMI, and the plausibility rules that guard
//!   every weight-based dose.
//! - [`instrument`]: rating scales: validation, scoring, bands, flags, response, remission
//!   and the reliable change index.
//! - [`assessment`]: administrations, time points, schedules and what is due, questionnaire
//!   requests and safety alerts.
//! - [`screening`]: eligibility for ketamine therapy: treatment resistance, contraindications,
//!   interactions, baseline severity, blood pressure, liver tests and missing data, to a verdict.
//! - [`dose`]: the dose calculator: weight bases, volumes from shelf concentrations, dilution,
//!   rates, soft and hard limits of the drug library, and the safe display of amounts.
//! - [`order`]: treatment plans laid out from protocols, and dose orders with the soft-limit
//!   override and the independent double check.
//! - [`titration`]: the recommendation for the next session from the protocol and the
//!   patient's response and tolerability.
//! - [`pk`]: pharmacokinetic simulation: exact concentrations of any regimen, exposure metrics,
//!   warnings and the uncertainty band.
//! - [`safety`]: long-term safety: cumulative exposure, tolerance and misuse signals, bladder
//!   and liver surveillance, reviews and the care plan.
//! - [`evidence`]: the published studies and their response definitions.
//! - [`stats`]: proportions with Wilson intervals, Kaplan-Meier survival and logistic
//!   regression for the cohort analytics.
//! - [`access`]: roles, permissions and the de-identified view.
//! - [`audit`]: the audit entry model (mirrors FHIR AuditEvent).
//! - [`audit_chain`]: the audit trail's hash chain, signed checkpoints and their verification.
//! - [`login`]: login protection: account lockout and the per-address limit on failed logins.
//! - [`wording`]: a clinic's licensed item wording, checked against its instrument.
//! - [`validation`]: field-level error reports used by every constructor.
#![deny(missing_docs)]

pub mod access;
pub mod anthropometry;
pub mod assessment;
pub mod audit;
pub mod audit_chain;
pub mod coding;
pub mod cohort;
pub mod deid;
pub mod dose;
pub mod evidence;
pub mod ids;
pub mod instrument;
pub mod limiter;
pub mod login;
pub mod mfa;
pub mod order;
pub mod patient;
pub mod pk;
pub mod record;
pub mod safety;
pub mod screening;
pub mod session;
pub mod stats;
pub mod titration;
pub mod validation;
pub mod wording;
