//! Scoring speed of every rating instrument: validation, total, subscales, band, triage,
//! flags, and change from baseline with response, remission and the reliable change index.
//!
//! Run: `cargo bench -p ketacare-knowledge --bench scoring` (release build; prints the median
//! of 15 rounds per instrument, in nanoseconds per scored form). No external harness: the
//! numbers come from `std::time::Instant` over many iterations with `black_box`ed inputs.

use ketacare_knowledge::Knowledge;
use rust_decimal::Decimal;
use std::hint::black_box;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let k = Knowledge::load().expect("knowledge files");
    const ROUNDS: usize = 15;
    const ITERS: usize = 20_000;
    println!("{:<16} {:>6} {:>14} {:>16}", "instrument", "items", "score ns/form", "outcome ns/pair");
    for inst in &k.instruments {
        // A valid form: every item at its middle accepted answer, items with skip logic blank.
        let answers: Vec<Option<u32>> =
            inst.items.iter().map(|i| if i.skip.is_some() { None } else { Some(i.choices()[i.choices().len() / 2]) }).collect();
        let answers = match inst.score(&answers, None) {
            Ok(_) => answers,
            // Skip logic (C-SSRS): answer every item yes, so that no item is skipped.
            Err(_) => inst.items.iter().map(|i| Some(i.max)).collect(),
        };
        inst.score(&answers, None).expect("the benchmark form is valid");
        let mut score_ns = Vec::with_capacity(ROUNDS);
        for _ in 0..ROUNDS {
            let t = Instant::now();
            for _ in 0..ITERS {
                black_box(inst.score(black_box(&answers), None).ok());
            }
            score_ns.push(t.elapsed().as_nanos() as f64 / ITERS as f64);
        }
        let (lo, hi) = inst.total_range();
        let (b, c) = (hi, lo + (hi - lo) / Decimal::TWO);
        let rules = inst.default_rules.clone();
        let mut outcome_ns = Vec::with_capacity(ROUNDS);
        if inst.has_total && b > Decimal::ZERO {
            for _ in 0..ROUNDS {
                let t = Instant::now();
                for _ in 0..ITERS {
                    black_box(inst.outcome(black_box(&rules), black_box(b), black_box(c), None).ok());
                }
                outcome_ns.push(t.elapsed().as_nanos() as f64 / ITERS as f64);
            }
        }
        let outcome = if outcome_ns.is_empty() { "-".to_owned() } else { format!("{:.0}", median(outcome_ns)) };
        println!("{:<16} {:>6} {:>14.0} {:>16}", inst.key, inst.items.len(), median(score_ns), outcome);
    }
}
