//! HTTP tests: reports.
