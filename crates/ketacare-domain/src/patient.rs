//! Patient demographics as validated value types.
//!
//! A `Demographics` value exists only in valid form; the web and storage layers build it through
//! [`DemographicsInput::validate`], which reports every problem at once.

use crate::validation::{bounded_text, optional_text, FieldErrors};
use chrono::{Datelike, NaiveDate};
use std::fmt;

/// A clinic medical record number: 3–20 characters, letters, digits and hyphens, stored upper-case.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Mrn(String);

impl Mrn {
    /// Parses and normalises an MRN.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let t = raw.trim().to_ascii_uppercase();
        let n = t.chars().count();
        if !(3..=20).contains(&n) || !t.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err("must be 3 to 20 letters, digits or hyphens, such as KC-000123".to_owned());
        }
        Ok(Self(t))
    }
    /// The normalised text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Mrn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Mrn(…)")
    }
}

/// Family and given names.
#[derive(Clone, PartialEq, Eq)]
pub struct PersonName {
    family: String,
    given: String,
}

impl PersonName {
    /// Both parts are required, 1–100 characters each.
    pub fn new(family: &str, given: &str) -> Result<Self, FieldErrors> {
        let mut e = FieldErrors::new();
        let family = e.check("family_name", bounded_text(family, 1, 100));
        let given = e.check("given_name", bounded_text(given, 1, 100));
        e.into_result()?;
        Ok(Self { family: family.unwrap_or_default(), given: given.unwrap_or_default() })
    }
    /// Family name.
    pub fn family(&self) -> &str {
        &self.family
    }
    /// Given name(s).
    pub fn given(&self) -> &str {
        &self.given
    }
    /// "Family, Given" as shown in lists.
    pub fn display(&self) -> String {
        format!("{}, {}", self.family, self.given)
    }
}

impl fmt::Debug for PersonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PersonName(…)")
    }
}

/// A date of birth of an adult patient, checked against "today" supplied by the caller.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DateOfBirth(NaiveDate);

/// Age limits used when checking a date of birth (from the knowledge files).
#[derive(Clone, Copy, Debug)]
pub struct AgeLimits {
    /// Youngest age the service treats, in whole years.
    pub minimum_years: u32,
    /// Oldest plausible age, in whole years; older dates are rejected as typing errors.
    pub maximum_years: u32,
}

impl DateOfBirth {
    /// Parses `YYYY-MM-DD` and checks the age on `today` is within `limits`.
    pub fn parse(raw: &str, today: NaiveDate, limits: AgeLimits) -> Result<Self, String> {
        let d = NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
            .map_err(|_| "must be a date in the form YYYY-MM-DD, such as 1984-03-27".to_owned())?;
        if d > today {
            return Err("must not be in the future".to_owned());
        }
        let age = age_in_years(d, today);
        if age < limits.minimum_years {
            return Err(format!("gives an age of {age}; Ketacare records patients aged {} or older", limits.minimum_years));
        }
        if age > limits.maximum_years {
            return Err(format!("gives an age of {age}, which is not plausible; check the year"));
        }
        Ok(Self(d))
    }
    /// Wraps a date already validated (e.g. read back from storage).
    pub fn from_stored(d: NaiveDate) -> Self {
        Self(d)
    }
    /// The date.
    pub fn date(&self) -> NaiveDate {
        self.0
    }
    /// Age in completed years on `today`.
    pub fn age_on(&self, today: NaiveDate) -> u32 {
        age_in_years(self.0, today)
    }
}

impl fmt::Debug for DateOfBirth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DateOfBirth(…)")
    }
}

/// Completed years between `born` and `on` (0 if `on` is before `born`).
pub fn age_in_years(born: NaiveDate, on: NaiveDate) -> u32 {
    if on < born {
        return 0;
    }
    let mut years = on.year() - born.year();
    if (on.month(), on.day()) < (born.month(), born.day()) {
        years -= 1;
    }
    u32::try_from(years).unwrap_or(0)
}

/// Administrative sex (FHIR `AdministrativeGender`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sex {
    /// Female.
    Female,
    /// Male.
    Male,
    /// Other.
    Other,
    /// Unknown.
    Unknown,
}

impl Sex {
    /// All values in display order.
    pub const ALL: [Sex; 4] = [Sex::Female, Sex::Male, Sex::Other, Sex::Unknown];
    /// Code as used by FHIR and the API.
    pub fn code(self) -> &'static str {
        match self {
            Sex::Female => "female",
            Sex::Male => "male",
            Sex::Other => "other",
            Sex::Unknown => "unknown",
        }
    }
    /// Display label.
    pub fn label(self) -> &'static str {
        match self {
            Sex::Female => "Female",
            Sex::Male => "Male",
            Sex::Other => "Other",
            Sex::Unknown => "Unknown",
        }
    }
    /// Parses a code.
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "female" | "f" => Ok(Sex::Female),
            "male" | "m" => Ok(Sex::Male),
            "other" => Ok(Sex::Other),
            "unknown" => Ok(Sex::Unknown),
            _ => Err("must be one of female, male, other, unknown".to_owned()),
        }
    }
}

/// How to reach the patient.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Contact {
    /// Telephone number.
    pub phone: Option<String>,
    /// E-mail address.
    pub email: Option<String>,
    /// Postal address, one line.
    pub address: Option<String>,
}

/// Whom to call in an emergency.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EmergencyContact {
    /// Name of the contact.
    pub name: Option<String>,
    /// Relationship to the patient.
    pub relationship: Option<String>,
    /// Telephone number.
    pub phone: Option<String>,
}

/// Validated demographics of one patient.
#[derive(Clone, PartialEq, Eq)]
pub struct Demographics {
    /// Clinic MRN.
    pub mrn: Mrn,
    /// Name.
    pub name: PersonName,
    /// Date of birth.
    pub date_of_birth: DateOfBirth,
    /// Administrative sex.
    pub sex: Sex,
    /// Contact details.
    pub contact: Contact,
    /// Emergency contact.
    pub emergency_contact: EmergencyContact,
}

impl fmt::Debug for Demographics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Demographics(…)")
    }
}

/// Raw, untrusted demographics as typed into a form or sent to the API.
#[derive(Clone, Debug, Default)]
pub struct DemographicsInput {
    /// MRN text.
    pub mrn: String,
    /// Family name.
    pub family_name: String,
    /// Given name.
    pub given_name: String,
    /// Date of birth, `YYYY-MM-DD`.
    pub date_of_birth: String,
    /// Sex code.
    pub sex: String,
    /// Phone.
    pub phone: String,
    /// E-mail.
    pub email: String,
    /// Address.
    pub address: String,
    /// Emergency contact name.
    pub emergency_name: String,
    /// Emergency contact relationship.
    pub emergency_relationship: String,
    /// Emergency contact phone.
    pub emergency_phone: String,
}

fn phone(raw: &str) -> Result<Option<String>, String> {
    let t = raw.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let digits = t.chars().filter(char::is_ascii_digit).count();
    if !(6..=20).contains(&digits) || !t.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c)) {
        return Err("must be a telephone number of 6 to 20 digits; spaces, +, -, ( and ) are allowed".to_owned());
    }
    Ok(Some(t.to_owned()))
}

fn email(raw: &str) -> Result<Option<String>, String> {
    let t = raw.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let ok = t.len() <= 254
        && t.split_once('@').is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.'))
        && !t.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(Some(t.to_owned()))
    } else {
        Err("must be an e-mail address such as name@example.org".to_owned())
    }
}

impl DemographicsInput {
    /// Validates every field, reporting all problems at once.
    pub fn validate(&self, today: NaiveDate, limits: AgeLimits) -> Result<Demographics, FieldErrors> {
        let mut e = FieldErrors::new();
        let mrn = e.check("mrn", Mrn::parse(&self.mrn));
        let name = match PersonName::new(&self.family_name, &self.given_name) {
            Ok(n) => Some(n),
            Err(errs) => {
                e.extend_prefixed("", errs);
                None
            }
        };
        let dob = e.check("date_of_birth", DateOfBirth::parse(&self.date_of_birth, today, limits));
        let sex = e.check("sex", Sex::parse(&self.sex));
        let phone_v = e.check("phone", phone(&self.phone));
        let email_v = e.check("email", email(&self.email));
        let address = e.check("address", optional_text(&self.address, 300));
        let en = e.check("emergency_name", optional_text(&self.emergency_name, 200));
        let er = e.check("emergency_relationship", optional_text(&self.emergency_relationship, 100));
        let ep = e.check("emergency_phone", phone(&self.emergency_phone));
        match (mrn, name, dob, sex, phone_v, email_v, address, en, er, ep) {
            (
                Some(mrn),
                Some(name),
                Some(date_of_birth),
                Some(sex),
                Some(phone),
                Some(email),
                Some(address),
                Some(en),
                Some(er),
                Some(ep),
            ) if e.is_empty() => Ok(Demographics {
                mrn,
                name,
                date_of_birth,
                sex,
                contact: Contact { phone, email, address },
                emergency_contact: EmergencyContact { name: en, relationship: er, phone: ep },
            }),
            _ => Err(e),
        }
    }

    /// The input that would reproduce `d` (for pre-filling an amendment form).
    pub fn from_demographics(d: &Demographics) -> Self {
        Self {
            mrn: d.mrn.as_str().to_owned(),
            family_name: d.name.family().to_owned(),
            given_name: d.name.given().to_owned(),
            date_of_birth: d.date_of_birth.date().format("%Y-%m-%d").to_string(),
            sex: d.sex.code().to_owned(),
            phone: d.contact.phone.clone().unwrap_or_default(),
            email: d.contact.email.clone().unwrap_or_default(),
            address: d.contact.address.clone().unwrap_or_default(),
            emergency_name: d.emergency_contact.name.clone().unwrap_or_default(),
            emergency_relationship: d.emergency_contact.relationship.clone().unwrap_or_default(),
            emergency_phone: d.emergency_contact.phone.clone().unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 26).unwrap()
    }
    const LIMITS: AgeLimits = AgeLimits { minimum_years: 18, maximum_years: 120 };

    fn input() -> DemographicsInput {
        DemographicsInput {
            mrn: "kc-000123".into(),
            family_name: "Rivera".into(),
            given_name: "Ana".into(),
            date_of_birth: "1984-03-27".into(),
            sex: "female".into(),
            ..Default::default()
        }
    }

    #[test]
    fn valid_input_normalises_mrn() {
        let d = input().validate(today(), LIMITS).unwrap();
        assert_eq!(d.mrn.as_str(), "KC-000123");
        assert_eq!(d.date_of_birth.age_on(today()), 42);
    }

    #[test]
    fn reports_every_bad_field_at_once() {
        let mut i = input();
        i.mrn = "x".into();
        i.family_name = " ".into();
        i.date_of_birth = "27/03/1984".into();
        i.sex = "f?".into();
        i.email = "nope".into();
        let e = i.validate(today(), LIMITS).unwrap_err();
        for f in ["mrn", "family_name", "date_of_birth", "sex", "email"] {
            assert!(e.for_field(f).is_some(), "missing error for {f}: {e}");
        }
        assert!(e.for_field("date_of_birth").unwrap().contains("YYYY-MM-DD"));
    }

    #[test]
    fn minors_and_future_dates_are_rejected() {
        assert!(DateOfBirth::parse("2010-01-01", today(), LIMITS).unwrap_err().contains("18 or older"));
        assert!(DateOfBirth::parse("2027-01-01", today(), LIMITS).unwrap_err().contains("future"));
        assert!(DateOfBirth::parse("1890-01-01", today(), LIMITS).unwrap_err().contains("not plausible"));
    }

    #[test]
    fn age_counts_completed_years() {
        let born = NaiveDate::from_ymd_opt(2000, 11, 27).unwrap();
        assert_eq!(age_in_years(born, today()), 25);
        let born = NaiveDate::from_ymd_opt(2000, 11, 26).unwrap();
        assert_eq!(age_in_years(born, today()), 26);
    }

    #[test]
    fn debug_never_shows_identifiers() {
        let d = input().validate(today(), LIMITS).unwrap();
        let s = format!("{d:?} {:?} {:?}", d.mrn, d.name);
        assert!(!s.contains("Rivera") && !s.contains("KC-000123"));
    }
}
