//! Fixed lists the demo clinic is drawn from.
//!
//! Every code here is for synthetic demo data only. The RxNorm ingredient ids, the catalogue keys
//! of `knowledge/diagnoses.toml` and the ICD-10-CM codes are real so that the demo looks like a
//! working clinic, but no list is a prescribing reference and no combination describes a real
//! person. Names are mixed at random from unrelated lists; telephone numbers lie in the UK
//! range reserved for drama (+44 20 7946 0000–0999) and e-mail addresses at `example.org`.

/// A medication with plausible dose texts.
pub(crate) struct Drug {
    pub name: &'static str,
    /// RxNorm ingredient concept id.
    pub rxnorm: &'static str,
    /// At least two dose texts, so a dose can be "corrected" to another one.
    pub doses: &'static [&'static str],
}

/// Antidepressants and anxiolytics given as adequate trials before referral.
pub(crate) const TRIAL_DRUGS: &[Drug] = &[
    Drug { name: "Sertraline", rxnorm: "36437", doses: &["50 mg once daily", "100 mg once daily", "150 mg once daily"] },
    Drug { name: "Escitalopram", rxnorm: "321988", doses: &["10 mg once daily", "20 mg once daily"] },
    Drug { name: "Venlafaxine", rxnorm: "39786", doses: &["75 mg once daily (modified release)", "150 mg once daily (modified release)"] },
    Drug { name: "Pregabalin", rxnorm: "187832", doses: &["75 mg twice daily", "150 mg twice daily"] },
    Drug { name: "Buspirone", rxnorm: "1827", doses: &["10 mg twice daily", "15 mg twice daily"] },
    Drug { name: "Duloxetine", rxnorm: "72625", doses: &["60 mg once daily", "90 mg once daily"] },
    Drug { name: "Paroxetine", rxnorm: "32937", doses: &["20 mg once daily", "30 mg once daily"] },
    Drug { name: "Fluoxetine", rxnorm: "4493", doses: &["20 mg once daily", "40 mg once daily"] },
];

/// Short-term or as-needed add-ons.
pub(crate) const ADJUNCT_DRUGS: &[Drug] = &[
    Drug { name: "Clonazepam", rxnorm: "2598", doses: &["0.5 mg twice daily", "0.5 mg at night"] },
    Drug { name: "Lorazepam", rxnorm: "6470", doses: &["0.5 mg as needed, at most twice daily", "1 mg as needed, at most twice daily"] },
    Drug {
        name: "Propranolol",
        rxnorm: "8787",
        doses: &["10 mg up to three times daily as needed", "40 mg before performance situations"],
    },
];

/// Substance, reaction and severity code.
pub(crate) const ALLERGIES: &[(&str, &str, &str)] = &[
    ("Penicillin", "Urticaria", "moderate"),
    ("Penicillin", "Anaphylaxis", "severe"),
    ("Sulfonamide antibiotics", "Maculopapular rash", "mild"),
    ("Latex", "Contact dermatitis", "mild"),
    ("Codeine", "Nausea and vomiting", "mild"),
    ("Ibuprofen", "Bronchospasm", "moderate"),
    ("Peanut", "Angioedema", "severe"),
    ("Adhesive dressings", "Skin blistering", "mild"),
];

/// Comorbid diagnoses entered as "other" with their ICD-10-CM code and display.
pub(crate) const COMORBIDITIES: &[(&str, &str)] = &[
    ("F33.1", "Major depressive disorder, recurrent, moderate"),
    ("F33.1", "Major depressive disorder, recurrent, moderate"),
    ("F43.10", "Post-traumatic stress disorder, unspecified"),
    ("F51.01", "Primary insomnia"),
];

pub(crate) const FEMALE_GIVEN: &[&str] = &[
    "Amara", "Siobhan", "Mei", "Priya", "Fatima", "Ingrid", "Lucía", "Yuki", "Ngozi", "Olga", "Aisha", "Chloé", "Hannah", "Leilani",
    "Zainab", "Marta", "Anika", "Rosa", "Thandiwe", "Saoirse", "Keiko", "Beatriz", "Noor", "Freya",
];

pub(crate) const MALE_GIVEN: &[&str] = &[
    "Kwame", "Mateus", "Arjun", "Tomasz", "Hiroshi", "Oliver", "Diego", "Yusuf", "Emeka", "Lars", "Rafael", "Dmitri", "Samir", "Callum",
    "Jin-ho", "Tariq", "Matteo", "Kofi", "Andrés", "Finn", "Ravi", "Bogdan", "Malik", "Eoin",
];

pub(crate) const NEUTRAL_GIVEN: &[&str] = &["Alex", "Robin", "Sasha", "Jordan", "Kai", "Noa", "Rowan", "Ash"];

pub(crate) const FAMILY: &[&str] = &[
    "Okonkwo",
    "Lindqvist",
    "Tanaka",
    "Fernández",
    "Kowalski",
    "Nakamura",
    "Haddad",
    "O'Brien",
    "Mensah",
    "Papadopoulos",
    "Novak",
    "Singh",
    "Moreau",
    "Nguyen",
    "Kim",
    "Castillo",
    "Byrne",
    "Müller",
    "Rossi",
    "Horvath",
    "Chowdhury",
    "Larsen",
    "Silva",
    "Yilmaz",
    "Mwangi",
    "Dubois",
    "Hughes",
    "Bianchi",
    "Ferreira",
    "Sato",
    "Kaplan",
    "Jovanović",
    "Nieminen",
    "Quispe",
    "Tembo",
    "Walsh",
    "Zhou",
    "Rahman",
    "Eriksen",
    "Abara",
];

/// An emergency contact's relationship to the patient.
pub(crate) struct Relation {
    pub name: &'static str,
    /// Given names that fit the relationship.
    pub given: &'static [&'static str],
    /// Relatives share the patient's family name; partners and friends get their own.
    pub relative: bool,
    /// An adult child: only for patients old enough.
    pub child: bool,
}

pub(crate) const RELATIONS: &[Relation] = &[
    Relation { name: "Partner", given: NEUTRAL_GIVEN, relative: false, child: false },
    Relation { name: "Spouse", given: FEMALE_GIVEN, relative: true, child: false },
    Relation { name: "Spouse", given: MALE_GIVEN, relative: true, child: false },
    Relation { name: "Mother", given: FEMALE_GIVEN, relative: true, child: false },
    Relation { name: "Father", given: MALE_GIVEN, relative: true, child: false },
    Relation { name: "Sister", given: FEMALE_GIVEN, relative: true, child: false },
    Relation { name: "Brother", given: MALE_GIVEN, relative: true, child: false },
    Relation { name: "Friend", given: FEMALE_GIVEN, relative: false, child: false },
    Relation { name: "Friend", given: MALE_GIVEN, relative: false, child: false },
    Relation { name: "Daughter", given: FEMALE_GIVEN, relative: true, child: true },
    Relation { name: "Son", given: MALE_GIVEN, relative: true, child: true },
];
