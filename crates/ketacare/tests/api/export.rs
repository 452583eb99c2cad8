//! HTTP tests: export.
