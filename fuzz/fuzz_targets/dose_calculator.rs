//! The dose calculator on arbitrary typed fields (weight, mg/kg, concentration, volume, height,
//! route, basis): never panics; a refusal names its fields; a calculated dose stays within the
//! drug library's hard limit or is refused.
#![no_main]

use ketacare_domain::dose::{calculate, DoseInput};
use ketacare_knowledge::Knowledge;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn knowledge() -> &'static Knowledge {
    static K: OnceLock<Knowledge> = OnceLock::new();
    K.get_or_init(|| Knowledge::load().expect("the shipped knowledge files load"))
}

fuzz_target!(|data: &[u8]| {
    let k = knowledge();
    let text = String::from_utf8_lossy(data);
    // Ten fields separated by '|', as a form would send them.
    let mut f = text.split('|').map(str::to_owned);
    let mut next = || f.next().unwrap_or_default();
    let input = DoseInput {
        route: next(),
        weight_kg: next(),
        mg_per_kg: next(),
        dose_mg: next(),
        concentration_mg_per_ml: next(),
        final_volume_ml: next(),
        minutes: next(),
        height_cm: next(),
        sex: next(),
        weight_basis: next(),
    };
    let a = &k.anthropometry;
    match k.drug_library.parse_dose(&input, (a.weight_min_kg, a.weight_max_kg)) {
        Ok(req) => {
            let Some(limits) = k.drug_library.limits(req.route) else { return };
            match calculate(&req, limits, &k.drug_library.policy) {
                Ok(r) => {
                    // Past a hard limit the result is refused, whatever was typed.
                    for (value, max) in [(r.dose_mg_per_kg, &limits.mg_per_kg.hard.max), (r.dose_mg, &limits.total_mg.hard.max)] {
                        if let Some(max) = max {
                            assert!(value <= max.value || r.refused(), "{value} past the hard limit {} and not refused", max.value);
                        }
                    }
                }
                Err(e) => assert!(!e.is_empty(), "a refusal names its fields"),
            }
        }
        Err(e) => assert!(!e.is_empty(), "a refusal names its fields"),
    }
});
