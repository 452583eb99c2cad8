//! Answers to every rating scale, as typed on a form or a patient's phone: parsing, validation
//! and scoring never panic, validation and scoring agree, and a refusal names its fields.
#![no_main]

use ketacare_domain::assessment::{AssessmentInput, FilledBy};
use ketacare_knowledge::Knowledge;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn knowledge() -> &'static Knowledge {
    static K: OnceLock<Knowledge> = OnceLock::new();
    K.get_or_init(|| Knowledge::load().expect("the shipped knowledge files load"))
}

fuzz_target!(|data: &[u8]| {
    let k = knowledge();
    let Some((&which, rest)) = data.split_first() else { return };
    let inst = &k.instruments[usize::from(which) % k.instruments.len()];
    let text = String::from_utf8_lossy(rest);
    // The CLI and API form: "3,2,2,1" or "y,n,-".
    if let Ok(answers) = inst.parse_answers(&text) {
        let valid = inst.validate(&answers);
        let scored = inst.score(&answers, None);
        assert_eq!(valid.is_ok(), scored.is_ok(), "validation and scoring agree for {}", inst.key);
    }
    // The form and patient-page form: one text per item.
    let input = AssessmentInput {
        instrument: inst.key.clone(),
        answers: text.split(',').map(str::to_owned).collect(),
        ..AssessmentInput::default()
    };
    let now = chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default();
    if let Err(e) = input.validate(inst, &k.assessment_timing.timepoints, FilledBy::Patient, now) {
        assert!(!e.is_empty(), "a refusal names its fields");
    }
});
