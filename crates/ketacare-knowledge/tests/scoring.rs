//! Scoring rules of every embedded instrument, reproduced from the knowledge files: totals,
//! subscales, every band boundary, flags, triage, skip logic, outcome rules and the property
//! that no answer vector panics or scores outside the instrument's range.

use ketacare_domain::instrument::{Instrument, ReliableChange, Score};
use ketacare_knowledge::Knowledge;
use proptest::prelude::*;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use std::sync::OnceLock;

const KEYS: [&str; 12] =
    ["gad7", "phq9", "hama", "lsas", "fq", "vas_anxiety", "sds", "qlesq_sf", "cadss", "moaas", "cssrs_screener", "icsi"];

fn knowledge() -> &'static Knowledge {
    static K: OnceLock<Knowledge> = OnceLock::new();
    K.get_or_init(|| Knowledge::load().expect("knowledge files load"))
}

fn inst(key: &str) -> &'static Instrument {
    knowledge().instrument(key).unwrap_or_else(|| panic!("instrument {key} is missing"))
}

fn d(n: i64) -> Decimal {
    Decimal::from(n)
}

fn all(xs: &[u32]) -> Vec<Option<u32>> {
    xs.iter().copied().map(Some).collect()
}

fn score(key: &str, answers: &[Option<u32>]) -> Score {
    inst(key).score(answers, None).unwrap_or_else(|e| panic!("{key} {answers:?} should score: {e}"))
}

fn typed(key: &str, text: &str) -> Score {
    let i = inst(key);
    let a = i.parse_answers(text).unwrap_or_else(|e| panic!("{key} {text:?} should parse: {e}"));
    i.score(&a, None).unwrap_or_else(|e| panic!("{key} {text:?} should score: {e}"))
}

fn sub(s: &Score, key: &str) -> Decimal {
    s.subscales.iter().find(|x| x.key == key).unwrap_or_else(|| panic!("subscale {key} missing")).value
}

fn flags(s: &Score) -> Vec<(&str, bool)> {
    s.flags.iter().map(|f| (f.code.as_str(), f.urgent)).collect()
}

/// A complete form whose total is `total`: scored items filled greedily from the first,
/// unscored required items at their minimum, optional unscored items blank.
fn answers_with_total(i: &Instrument, total: u32) -> Vec<Option<u32>> {
    let lo = i.total_range().0.to_u32().unwrap();
    let mut rest = total.checked_sub(lo).expect("total below the minimum");
    let mut out = Vec::new();
    for item in &i.items {
        if item.skip.is_some() || (item.optional && !item.scored) {
            out.push(None);
        } else if item.scored {
            let c = item.choices().into_iter().filter(|c| c - item.min <= rest).max().unwrap();
            rest -= c - item.min;
            out.push(Some(c));
        } else {
            out.push(Some(item.min));
        }
    }
    assert_eq!(rest, 0, "{}: total {total} not reachable", i.key);
    out
}

#[test]
fn catalogue_order_and_versions() {
    let keys: Vec<&str> = knowledge().instruments.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, KEYS);
    for i in &knowledge().instruments {
        assert_eq!(i.version, "2026.11.1", "{}", i.key);
    }
}

#[test]
fn every_instrument_and_rule_has_a_source() {
    for i in &knowledge().instruments {
        let k = &i.key;
        assert!(!i.version.is_empty(), "{k}: version");
        assert!(i.licence.len() > 20, "{k}: licence");
        assert!(i.source.len() > 20, "{k}: source");
        assert!(!i.name.is_empty() && !i.title.is_empty(), "{k}: name and title");
        for s in &i.band_sets {
            assert!(s.source.len() > 20, "{k}: band set {} needs a real source", s.key);
        }
        if let Some(r) = &i.default_rules.response {
            assert!(r.source.len() > 20, "{k}: response needs a real source");
        }
        if let Some(r) = &i.default_rules.remission {
            assert!(r.source.len() > 20, "{k}: remission needs a real source");
        }
        if let Some(r) = &i.reliability {
            assert!(r.source.len() > 20, "{k}: reliability needs a real source");
            assert!(r.source.contains("Jacobson"), "{k}: reliability names the method");
        }
        for f in &i.flags {
            assert!(f.source.len() > 20, "{k}: flag {} needs a real source", f.code);
        }
        for c in &i.caveats {
            assert!(c.len() > 20, "{k}: caveat too short: {c}");
        }
        for item in &i.items {
            assert!(!item.label.is_empty() && item.label.len() <= 90, "{k}: item {} needs a short label", item.key);
        }
    }
}

#[test]
fn unverified_conventions_are_shown_as_caveats() {
    for key in ["lsas", "vas_anxiety", "sds", "cadss", "icsi"] {
        assert!(inst(key).caveats.iter().any(|c| c.contains("UNVERIFIED")), "{key} needs an UNVERIFIED caveat");
    }
    assert!(inst("qlesq_sf").caveats.iter().any(|c| c.contains("not confirmed")));
    assert!(inst("hama").caveats.iter().any(|c| c.contains("Reliable change index not shown: no published reliability and SD confirmed")));
    assert!(inst("phq9").caveats.iter().any(|c| c.contains("prorating")));
    assert!(inst("cssrs_screener").caveats.iter().any(|c| c.contains("licensing")));
}

#[test]
fn total_ranges() {
    let table: [(&str, i64, i64); 11] = [
        ("gad7", 0, 21),
        ("phq9", 0, 27),
        ("hama", 0, 56),
        ("lsas", 0, 144),
        ("fq", 0, 120),
        ("vas_anxiety", 0, 100),
        ("sds", 0, 30),
        ("qlesq_sf", 14, 70),
        ("cadss", 0, 92),
        ("moaas", 0, 5),
        ("icsi", 0, 20),
    ];
    for (key, lo, hi) in table {
        let i = inst(key);
        assert!(i.has_total, "{key}");
        assert_eq!(i.total_range(), (d(lo), d(hi)), "{key}");
    }
    assert!(!inst("cssrs_screener").has_total);
    assert_eq!(typed("cssrs_screener", "n,n,-,-,-,n,-").total, None);
}

#[test]
fn subscale_ranges() {
    let table: [(&str, &str, i64, i64); 12] = [
        ("hama", "psychic", 0, 28),
        ("hama", "somatic", 0, 28),
        ("lsas", "fear", 0, 72),
        ("lsas", "avoidance", 0, 72),
        ("lsas", "performance", 0, 78),
        ("lsas", "social", 0, 66),
        ("fq", "agoraphobia", 0, 40),
        ("fq", "blood_injury", 0, 40),
        ("fq", "social", 0, 40),
        ("fq", "anxiety_depression", 0, 40),
        ("cadss", "subject", 0, 76),
        ("cadss", "observer", 0, 16),
    ];
    for (key, subscale, lo, hi) in table {
        let i = inst(key);
        let s = score(key, &answers_with_total(i, 0));
        let x = s.subscales.iter().find(|x| x.key == subscale).unwrap_or_else(|| panic!("{key}.{subscale}"));
        assert_eq!((x.min, x.max), (d(lo), d(hi)), "{key}.{subscale}");
    }
}

#[test]
fn gad7_typed_form() {
    let i = inst("gad7");
    let a = i.parse_answers("3,2,2,1,3,2,1").unwrap();
    assert_eq!(a, all(&[3, 2, 2, 1, 3, 2, 1]));
    let s = i.score(&a, None).unwrap();
    assert_eq!(s.total, Some(d(14)));
    assert_eq!(s.band.unwrap().code, "moderate");
    assert!(s.flags.is_empty());
}

#[test]
fn phq9_total_item9_flag_and_optional_item10() {
    // Item 10 is not scored.
    let s = score("phq9", &all(&[3, 3, 3, 3, 3, 3, 3, 3, 3, 3]));
    assert_eq!(s.total, Some(d(27)));
    assert_eq!(s.band.as_ref().unwrap().code, "severe");
    // Item 10 may be omitted or left blank.
    let s = score("phq9", &all(&[1, 1, 1, 1, 1, 1, 1, 1, 0]));
    assert_eq!(s.total, Some(d(8)));
    assert!(s.flags.is_empty(), "item 9 = 0 raises no flag");
    let s = typed("phq9", "1,1,1,1,1,1,1,1,0,-");
    assert_eq!(s.total, Some(d(8)));
    // Any non-zero item 9 raises the urgent flag.
    for v in 1..=3 {
        let s = score("phq9", &all(&[0, 0, 0, 0, 0, 0, 0, 0, v]));
        assert_eq!(flags(&s), [("phq9_item9", true)], "item 9 = {v}");
        assert!(s.has_urgent_flag());
    }
    // Item 9 itself may not be blank.
    let e = inst("phq9").validate(&all(&[0, 0, 0, 0, 0, 0, 0, 0])).unwrap_err();
    let m = e.for_field("q9").unwrap();
    assert!(m.contains("item 9") && m.contains("missing") && m.contains("from 0 to 3"), "{m}");
    // q10 out of range is named.
    let e = inst("phq9").validate(&all(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 4])).unwrap_err();
    assert!(e.for_field("q10").unwrap().contains("item 10"));
    assert_eq!(inst("phq9").item("q9").unwrap().loinc.as_deref(), Some("44260-8"));
    assert_eq!(inst("phq9").total_loinc.as_deref(), Some("44261-6"));
}

#[test]
fn error_messages_name_the_item_and_the_accepted_answers() {
    let cases = [
        ("gad7", all(&[0, 0, 4, 0, 0, 0, 0]), "q3", "item 3", "from 0 to 3"),
        ("hama", all(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5]), "q14", "item 14", "from 0 to 4"),
        ("icsi", all(&[0, 0, 0, 1]), "pain", "item 4", "one of 0, 2, 3, 4, 5"),
        ("qlesq_sf", all(&[0, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3]), "q1", "item 1", "from 1 to 5"),
        ("moaas", all(&[6]), "moaas", "item 1", "from 0 to 5"),
        ("vas_anxiety", all(&[101]), "vas", "item 1", "from 0 to 100"),
    ];
    for (key, answers, field, item, accepted) in cases {
        let e = inst(key).validate(&answers).unwrap_err();
        let m = e.for_field(field).unwrap_or_else(|| panic!("{key}: no error for {field}: {e}"));
        assert!(m.contains(item) && m.contains(accepted), "{key}: {m}");
    }
    let e = inst("gad7").parse_answers("1,2,3,4,5,6,7,8").unwrap_err();
    assert!(e.for_field("items").unwrap().contains("has 7 items"));
    let e = inst("gad7").parse_answers("1,x,1,1,1,1,1").unwrap_err();
    assert!(e.for_field("q2").unwrap().contains("item 2"));
}

#[test]
fn hama_totals_and_subscales() {
    // Psychic items 1-6 and 14; somatic items 7-13.
    let s = score("hama", &all(&[1, 1, 1, 1, 1, 1, 4, 4, 4, 4, 4, 4, 4, 2]));
    assert_eq!(s.total, Some(d(36)));
    assert_eq!(sub(&s, "psychic"), d(8));
    assert_eq!(sub(&s, "somatic"), d(28));
    assert_eq!(s.band.unwrap().code, "severe");
}

#[test]
fn lsas_totals_and_subscales() {
    let perf = [1, 2, 3, 4, 6, 8, 9, 13, 14, 16, 17, 20, 21];
    let social = [5, 7, 10, 11, 12, 15, 18, 19, 22, 23, 24];
    // Fear 3 in the performance situations, avoidance 2 in the social situations.
    let mut a = vec![Some(0); 48];
    for n in perf {
        a[n - 1] = Some(3);
    }
    for n in social {
        a[24 + n - 1] = Some(2);
    }
    let s = score("lsas", &a);
    assert_eq!(s.total, Some(d(39 + 22)));
    assert_eq!(sub(&s, "fear"), d(39));
    assert_eq!(sub(&s, "avoidance"), d(22));
    assert_eq!(sub(&s, "performance"), d(39));
    assert_eq!(sub(&s, "social"), d(22));
    // Everything at the maximum.
    let s = score("lsas", &[Some(3); 48]);
    assert_eq!(s.total, Some(d(144)));
    assert_eq!((sub(&s, "performance"), sub(&s, "social")), (d(78), d(66)));
    let i = inst("lsas");
    assert_eq!(i.items[0].key, "fear_1");
    assert_eq!(i.items[24].key, "avoid_1");
    assert_eq!(i.items[24].choice_label(3), Some("Usually (67-100 %)"));
    assert_eq!(i.items[0].choice_label(3), Some("Severe"));
}

#[test]
fn fq_total_phobia_and_subscales() {
    let mut a = vec![Some(8)]; // main target phobia (not in the total)
    for n in 2..=16u32 {
        a.push(Some(match n {
            5 | 6 | 8 | 12 | 15 => 8,
            2 | 4 | 10 | 13 | 16 => 1,
            _ => 2,
        }));
    }
    a.extend([Some(3); 5]); // items 18-22
    a.push(Some(8)); // global rating (not in the total)
    assert_eq!(a.len(), 22);
    let s = score("fq", &a);
    assert_eq!(s.total, Some(d(55)));
    assert_eq!(sub(&s, "agoraphobia"), d(40));
    assert_eq!(sub(&s, "blood_injury"), d(5));
    assert_eq!(sub(&s, "social"), d(10));
    assert_eq!(sub(&s, "anxiety_depression"), d(15));
    assert_eq!(s.band, None);
    let i = inst("fq");
    assert_eq!(i.items.len(), 22);
    assert_eq!(i.item("q2").unwrap().choice_label(4), Some("Definitely avoid it"));
    assert_eq!(i.item("q2").unwrap().choice_label(3), None);
    assert_eq!(i.item("global").unwrap().choice_label(0), Some("No phobias present"));
}

#[test]
fn vas_sds_cadss_icsi_totals() {
    assert_eq!(score("vas_anxiety", &all(&[73])).total, Some(d(73)));

    let s = score("sds", &all(&[3, 4, 5, 2, 6]));
    assert_eq!(s.total, Some(d(12)));

    let mut a = vec![Some(1); 19];
    a.extend([Some(4); 4]);
    let s = score("cadss", &a);
    assert_eq!(s.total, Some(d(35)));
    assert_eq!(sub(&s, "subject"), d(19));
    assert_eq!(sub(&s, "observer"), d(16));

    assert_eq!(score("icsi", &all(&[5, 5, 5, 5])).total, Some(d(20)));
    assert_eq!(score("icsi", &all(&[1, 2, 3, 2])).total, Some(d(8)));
    for pain in [0, 2, 3, 4, 5] {
        assert!(inst("icsi").validate(&all(&[0, 0, 0, pain])).is_ok(), "pain {pain}");
    }
    assert!(inst("icsi").validate(&all(&[0, 0, 0, 1])).is_err());
}

#[test]
fn sds_impairment_flag_at_5_not_4() {
    for (answers, flagged) in
        [([4, 4, 4, 0, 0], false), ([5, 0, 0, 0, 0], true), ([0, 5, 0, 0, 0], true), ([0, 0, 5, 0, 0], true), ([4, 4, 4, 7, 7], false)]
    {
        let s = score("sds", &all(&answers));
        let expect: Vec<(&str, bool)> = if flagged { vec![("sds_impairment", false)] } else { vec![] };
        assert_eq!(flags(&s), expect, "{answers:?}");
        assert!(!s.has_urgent_flag());
    }
}

#[test]
fn qlesq_percent_of_max_and_blank_item15() {
    for (v, total, pct) in [(1, 14, 0), (5, 70, 100), (3, 42, 50)] {
        let s = score("qlesq_sf", &[Some(v); 16]);
        assert_eq!(s.total, Some(d(total)));
        assert_eq!(s.percent_max, Some(d(pct)), "raw {total}");
    }
    // Item 15 (medication satisfaction) may be blank; item 16 may not; neither is in the total.
    let mut a = vec![Some(3); 14];
    a.extend([None, Some(5)]);
    let s = score("qlesq_sf", &a);
    assert_eq!(s.total, Some(d(42)));
    let mut a = vec![Some(3); 14];
    a.extend([Some(5), None]);
    let e = inst("qlesq_sf").validate(&a).unwrap_err();
    assert!(e.for_field("q16").unwrap().contains("item 16"));
    assert!(e.for_field("q15").is_none());
}

#[test]
fn moaas_bands_and_unresponsive_flag() {
    let codes = ["unresponsive", "painful_stimulus", "prodding", "loud_name", "lethargic", "alert"];
    for (v, code) in codes.iter().enumerate() {
        let s = score("moaas", &all(&[v as u32]));
        assert_eq!(s.total, Some(d(v as i64)));
        assert_eq!(s.band.as_ref().unwrap().code, *code);
        if v == 0 {
            assert_eq!(flags(&s), [("moaas_unresponsive", true)]);
        } else {
            assert!(s.flags.is_empty(), "MOAA/S {v}");
        }
    }
}

/// (instrument, band set or None for the default, [(total, band code)]), both sides of every boundary.
type BandTable = (&'static str, Option<&'static str>, &'static [(u32, &'static str)]);

const BANDS: &[BandTable] = &[
    (
        "gad7",
        None,
        &[(0, "minimal"), (4, "minimal"), (5, "mild"), (9, "mild"), (10, "moderate"), (14, "moderate"), (15, "severe"), (21, "severe")],
    ),
    (
        "phq9",
        None,
        &[
            (0, "minimal"),
            (4, "minimal"),
            (5, "mild"),
            (9, "mild"),
            (10, "moderate"),
            (14, "moderate"),
            (15, "moderately_severe"),
            (19, "moderately_severe"),
            (20, "severe"),
            (27, "severe"),
        ],
    ),
    (
        "hama",
        None,
        &[(0, "minimal"), (7, "minimal"), (8, "mild"), (14, "mild"), (15, "moderate"), (23, "moderate"), (24, "severe"), (56, "severe")],
    ),
    ("hama", Some("matza2010"), &[(7, "minimal"), (8, "mild"), (14, "mild"), (15, "moderate"), (23, "moderate"), (24, "severe")]),
    ("hama", Some("training"), &[(0, "mild"), (13, "mild"), (14, "moderate"), (24, "moderate"), (25, "severe"), (56, "severe")]),
    (
        "hama",
        Some("alt_8_14_18"),
        &[
            (0, "below_threshold"),
            (7, "below_threshold"),
            (8, "mild"),
            (13, "mild"),
            (14, "moderate"),
            (17, "moderate"),
            (18, "severe"),
            (56, "severe"),
        ],
    ),
    (
        "lsas",
        None,
        &[
            (0, "below"),
            (29, "below"),
            (30, "mild"),
            (49, "mild"),
            (50, "moderate"),
            (64, "moderate"),
            (65, "marked"),
            (79, "marked"),
            (80, "severe"),
            (94, "severe"),
            (95, "very_severe"),
            (144, "very_severe"),
        ],
    ),
    ("lsas", Some("moderate_from_55"), &[(29, "below"), (30, "mild"), (54, "mild"), (55, "moderate"), (64, "moderate"), (65, "marked")]),
    ("moaas", None, &[(0, "unresponsive"), (1, "painful_stimulus"), (2, "prodding"), (3, "loud_name"), (4, "lethargic"), (5, "alert")]),
];

#[test]
fn every_band_boundary() {
    for (key, set, table) in BANDS {
        let i = inst(key);
        if let Some(s) = set {
            assert!(i.band_sets.iter().any(|b| b.key == *s), "{key}: band set {s} missing");
        }
        for (total, code) in *table {
            let a = answers_with_total(i, *total);
            let s = i.score(&a, *set).unwrap();
            assert_eq!(s.total, Some(d(i64::from(*total))), "{key}");
            assert_eq!(s.band.as_ref().map(|b| b.code.as_str()), Some(*code), "{key} {set:?} total {total}");
        }
    }
    assert_eq!(inst("hama").default_band_set().unwrap().key, "matza2010");
    assert_eq!(inst("lsas").default_band_set().unwrap().key, "mennin2002");
    for key in ["fq", "vas_anxiety", "sds", "qlesq_sf", "cadss", "icsi", "cssrs_screener"] {
        assert!(inst(key).band_sets.is_empty(), "{key} has no bands");
    }
}

#[test]
fn every_band_set_is_covered_at_both_ends_of_every_band() {
    for i in &knowledge().instruments {
        for set in &i.band_sets {
            for b in &set.bands {
                for t in [b.min, b.max] {
                    let s = i.score(&answers_with_total(i, t.to_u32().unwrap()), Some(&set.key)).unwrap();
                    assert_eq!(s.band.as_ref().map(|x| &x.code), Some(&b.code), "{} {} at {t}", i.key, set.key);
                }
            }
        }
    }
}

#[test]
fn cssrs_typed_form_and_skip_logic() {
    let i = inst("cssrs_screener");
    let a = i.parse_answers("y,n,-,-,-,n,-").unwrap();
    assert_eq!(a, [Some(1), Some(0), None, None, None, Some(0), None]);
    // Item 2 = no: items 3-5 must be blank; answering one is an error naming it.
    for (text, field, n) in [("y,n,y,-,-,n,-", "q3", "item 3"), ("y,n,-,n,-,n,-", "q4", "item 4"), ("y,n,-,-,n,n,-", "q5", "item 5")] {
        let e = i.score(&i.parse_answers(text).unwrap(), None).unwrap_err();
        let m = e.for_field(field).unwrap_or_else(|| panic!("{text}: {e}"));
        assert!(m.contains(n) && m.contains("item 2") && m.contains("blank"), "{m}");
    }
    // Item 6 = no: the past-3-months question must be blank.
    let e = i.score(&i.parse_answers("n,n,-,-,-,n,y").unwrap(), None).unwrap_err();
    let m = e.for_field("q6b").unwrap();
    assert!(m.contains("item 7") && m.contains("item 6") && m.contains("blank"), "{m}");
    // Item 2 = yes: items 3-5 are required. Item 6 = yes: the past-3-months question is required.
    let e = i.score(&i.parse_answers("y,y,-,-,-,n,-").unwrap(), None).unwrap_err();
    for f in ["q3", "q4", "q5"] {
        assert!(e.for_field(f).unwrap().contains("missing"), "{f}");
    }
    let e = i.score(&i.parse_answers("n,n,-,-,-,y,-").unwrap(), None).unwrap_err();
    assert!(e.for_field("q6b").unwrap().contains("missing"));
    // Items 1, 2 and 6 are always required.
    let e = i.score(&i.parse_answers("-,-,-,-,-,-,-").unwrap(), None).unwrap_err();
    let fields: Vec<&str> = e.iter().map(|x| x.field.as_str()).collect();
    assert_eq!(fields, ["q1", "q2", "q6"]);
    let e = i.parse_answers("y,maybe").unwrap_err();
    assert!(e.for_field("q2").unwrap().contains("y (yes) or n (no)"));
}

#[test]
fn cssrs_every_triage_level_and_the_urgent_flag() {
    let cases = [
        ("n,n,-,-,-,n,-", "none"),
        ("y,n,-,-,-,n,-", "low"),
        ("n,y,n,n,n,n,-", "low"),
        ("y,y,y,n,n,n,-", "moderate"),
        ("n,n,-,-,-,y,n", "moderate"),
        ("y,y,n,y,n,n,-", "high"),
        ("y,y,n,n,y,n,-", "high"),
        ("n,n,-,-,-,y,y", "high"),
        ("y,y,y,y,y,y,y", "high"),
    ];
    for (text, level) in cases {
        let s = typed("cssrs_screener", text);
        assert_eq!(s.triage.as_deref(), Some(level), "{text}");
        let expect: Vec<(&str, bool)> = if matches!(level, "moderate" | "high") { vec![("cssrs_risk", true)] } else { vec![] };
        assert_eq!(flags(&s), expect, "{text}");
        assert_eq!(s.has_urgent_flag(), !expect.is_empty());
    }
    let i = inst("cssrs_screener");
    assert_eq!(i.triage_loinc.as_deref(), Some("93374-7"));
    let loinc: Vec<(&str, Option<&str>)> = i.triage.iter().map(|t| (t.level.as_str(), t.loinc_answer.as_deref())).collect();
    assert_eq!(loinc, [("high", Some("LA9193-9")), ("moderate", Some("LA6751-7")), ("low", Some("LA9194-7"))]);
    assert_eq!(i.item("q6b").unwrap().loinc.as_deref(), Some("93269-9"));
}

#[test]
fn response_rules() {
    // (instrument, baseline, current, response)
    let cases = [
        ("lsas", 100, 65, false), // exactly 35 % is not "more than 35 %"
        ("lsas", 100, 64, true),
        ("hama", 20, 10, true), // exactly 50 %
        ("hama", 20, 11, false),
        ("phq9", 20, 10, true),
        ("phq9", 20, 11, false),
        ("fq", 60, 30, true),
        ("fq", 60, 31, false),
        ("vas_anxiety", 80, 40, true),
        ("vas_anxiety", 80, 41, false),
    ];
    for (key, b, c, expect) in cases {
        let i = inst(key);
        let o = i.outcome(&i.default_rules, d(b), d(c), None).unwrap();
        assert_eq!(o.response, Some(expect), "{key} {b} -> {c}");
    }
    for key in ["sds", "qlesq_sf", "cadss", "moaas", "icsi"] {
        assert!(inst(key).default_rules.response.is_none(), "{key} has no response rule");
    }
    let r = inst("lsas").default_rules.response.as_ref().unwrap();
    assert!(r.strict);
}

#[test]
fn remission_rules() {
    let cases = [("hama", 7, true), ("hama", 8, false), ("phq9", 4, true), ("phq9", 5, false)];
    for (key, c, expect) in cases {
        let i = inst(key);
        let o = i.outcome(&i.default_rules, d(20), d(c), None).unwrap();
        assert_eq!(o.remission, Some(expect), "{key} {c}");
    }
    // SDS: total 6 or below and no domain above 2.
    let sds = inst("sds");
    let r = &sds.default_rules;
    let rem = |total: i64, items: &[u32]| sds.outcome(r, d(20), d(total), Some(&all(items))).unwrap().remission;
    assert_eq!(rem(6, &[2, 2, 2, 7, 7]), Some(true));
    assert_eq!(rem(6, &[3, 2, 1, 0, 0]), Some(false));
    assert_eq!(rem(7, &[3, 2, 2, 0, 0]), Some(false));
    assert_eq!(sds.outcome(r, d(20), d(6), None).unwrap().remission, None, "needs the items");
    for key in ["lsas", "fq", "vas_anxiety", "qlesq_sf", "cadss", "moaas", "icsi"] {
        assert!(inst(key).default_rules.remission.is_none(), "{key} has no remission rule");
    }
}

#[test]
fn reliable_change() {
    // PHQ-9: S_diff = √2 · 3.5 · √0.11 = 1.64; threshold 1.96 · 1.64 = 3.2 points.
    let phq = inst("phq9");
    let t = phq.reliability.as_ref().unwrap().threshold_points().unwrap();
    assert!(t > Decimal::new(321, 2) && t < Decimal::new(322, 2), "{t}");
    assert_eq!(phq.outcome(&phq.default_rules, d(15), d(11), None).unwrap().reliable_change, Some(ReliableChange::Improved));
    assert_eq!(phq.outcome(&phq.default_rules, d(15), d(12), None).unwrap().reliable_change, Some(ReliableChange::NoReliableChange));
    // FQ: S_diff = √2 · 19.3 · √0.18 = 11.58; threshold 22.7 points.
    let fq = inst("fq");
    assert_eq!(fq.outcome(&fq.default_rules, d(60), d(37), None).unwrap().reliable_change, Some(ReliableChange::Improved));
    assert_eq!(fq.outcome(&fq.default_rules, d(60), d(38), None).unwrap().reliable_change, Some(ReliableChange::NoReliableChange));
    assert_eq!(fq.outcome(&fq.default_rules, d(37), d(60), None).unwrap().reliable_change, Some(ReliableChange::Deteriorated));
    for key in ["hama", "lsas", "vas_anxiety", "sds", "qlesq_sf", "cadss", "moaas", "icsi"] {
        assert!(inst(key).reliability.is_none(), "{key}: no confirmed reliability");
    }
    let c = inst("cssrs_screener");
    assert!(c.outcome(&c.default_rules, d(0), d(0), None).is_err(), "C-SSRS has no total to compare");
}

fn check_score(i: &Instrument, s: &Score) -> Result<(), TestCaseError> {
    prop_assert_eq!(s.total.is_some(), i.has_total);
    if let Some(t) = s.total {
        prop_assert!(t >= s.total_min && t <= s.total_max, "{}: total {} outside {}..{}", i.key, t, s.total_min, s.total_max);
        if !i.band_sets.is_empty() {
            prop_assert!(s.band.is_some(), "{}: total {} has no band", i.key, t);
        }
    }
    if let Some(p) = s.percent_max {
        prop_assert!(p >= Decimal::ZERO && p <= Decimal::ONE_HUNDRED);
    }
    for x in &s.subscales {
        prop_assert!(x.value >= x.min && x.value <= x.max, "{}.{}: {} outside {}..{}", i.key, x.key, x.value, x.min, x.max);
    }
    prop_assert_eq!(s.triage.is_some(), !i.triage.is_empty());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any answer vector is rejected or scores inside the instrument's ranges; nothing panics.
    #[test]
    fn any_answers_are_rejected_or_in_range(
        n in 0..KEYS.len(),
        answers in proptest::collection::vec(proptest::option::of(0u32..=120), 0..=50),
    ) {
        let i = inst(KEYS[n]);
        if let Ok(s) = i.score(&answers, None) {
            check_score(i, &s)?;
        }
    }

    /// Complete forms of in-range answers always score (except skip-logic conflicts), and the
    /// total is the sum of the scored items.
    #[test]
    fn in_range_forms_score_to_the_sum_of_scored_items(
        n in 0..KEYS.len(),
        raw in proptest::collection::vec(0u32..1000, 50),
    ) {
        let i = inst(KEYS[n]);
        let answers: Vec<Option<u32>> = i.items.iter().zip(&raw).map(|(item, r)| {
            let c = item.choices();
            Some(c[*r as usize % c.len()])
        }).collect();
        let has_skip = i.items.iter().any(|x| x.skip.is_some());
        match i.score(&answers, None) {
            Ok(s) => {
                check_score(i, &s)?;
                if i.has_total {
                    let sum: u32 = i.items.iter().zip(&answers).filter(|(d, _)| d.scored).map(|(_, a)| a.unwrap()).sum();
                    prop_assert_eq!(s.total, Some(Decimal::from(sum)));
                }
            }
            Err(e) => prop_assert!(has_skip, "{}: {:?} rejected: {}", i.key, answers, e),
        }
    }

    /// Typed text never panics.
    #[test]
    fn typed_text_never_panics(n in 0..KEYS.len(), text in "[-0-9yn, x]{0,80}") {
        let i = inst(KEYS[n]);
        if let Ok(a) = i.parse_answers(&text) {
            let _ = i.score(&a, None);
        }
    }
}
