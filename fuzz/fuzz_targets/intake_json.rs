//! The screening intake document (`docs/intake.schema.json`) on arbitrary text: never panics,
//! and a refusal names its fields; an accepted intake can be screened.
#![no_main]

use ketacare_knowledge::Knowledge;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn knowledge() -> &'static Knowledge {
    static K: OnceLock<Knowledge> = OnceLock::new();
    K.get_or_init(|| Knowledge::load().expect("the shipped knowledge files load"))
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let k = knowledge();
    match ketacare_intake::screening_doc::parse_intake_json(&text, k) {
        // An accepted intake always gets a verdict, with its reasons.
        Ok(intake) => {
            let s = ketacare_domain::screening::screen(&intake, &k.screening, &[]);
            let _ = format!("{s:?}");
        }
        Err(e) => assert!(!e.is_empty(), "a refusal names its fields"),
    }
});
