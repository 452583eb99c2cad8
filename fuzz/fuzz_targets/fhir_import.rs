//! The FHIR transaction-Bundle importer on arbitrary JSON: never panics, and every refusal names
//! what is wrong.
#![no_main]

use ketacare_fhir::import::{self, ImportContext};
use ketacare_fhir::Catalog;
use ketacare_knowledge::Knowledge;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn knowledge() -> &'static Knowledge {
    static K: OnceLock<Knowledge> = OnceLock::new();
    K.get_or_init(|| Knowledge::load().expect("the shipped knowledge files load"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(bundle) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let ctx = ImportContext {
        catalog: Catalog::from_knowledge(knowledge()),
        now: chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default(),
        chart_weights: Vec::new(),
        chart_heights: Vec::new(),
        acknowledged: &[],
    };
    if let Err(problems) = import::parse(&bundle, &ctx) {
        assert!(!problems.is_empty(), "a refusal names at least one problem");
        for p in problems {
            assert!(p.message.len() >= 5, "a problem without a message: {p:?}");
        }
    }
});
