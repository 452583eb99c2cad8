//! HTTP-level tests of the Ketacare server: a real server on port 0 over a fresh database per
//! test, driven through its JSON API and staff UI exactly as clients use them. Every test runs
//! on SQLite and, when `KETACARE_TEST_POSTGRES_URL` is set, on PostgreSQL.

mod helpers;

mod access;
mod admin;
mod amendments;
mod audit;
mod auth;
mod bad_inputs;
mod concurrency;
mod dosing;
mod export;
mod fhir;
mod login_protection;
mod mfa;
mod outcomes;
mod patients;
mod pk;
mod reports;
mod research;
mod roles;
mod safety;
mod screening;
mod sessions;
mod tokens;
mod treatment;
mod ui;
mod weights;
