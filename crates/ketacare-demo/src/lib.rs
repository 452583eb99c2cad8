//! A deterministic, entirely synthetic demo clinic for Ketacare.
//!
//! [`seed`] fills an empty, migrated store through the application's own use cases, so every
//! value passes the same validation, permission checks, plausibility checks and audit trail as
//! data typed in by a user. The clinic contains:
//!
//! - five staff accounts, one per role (`admin`, `director`, `prescriber`, `nurse`,
//!   `researcher`), all with the password [`PASSWORD`];
//! - [`PATIENTS`] fictitious adults aged 19 to 75 with MRNs `KC-000001` onwards, names mixed at
//!   random from unrelated lists, telephone numbers in the UK drama range (+44 20 7946 0xxx),
//!   some e-mail addresses at `example.org` and most with an emergency contact;
//! - diagnoses typical of a ketamine clinic for treatment-resistant anxiety (generalised and
//!   social anxiety disorder, some panic disorder and specific phobia, some comorbid recurrent
//!   depression, PTSD or insomnia coded in ICD-10-CM), with onsets years before referral;
//! - medication histories of at least two failed adequate trials (eight weeks or more) of
//!   antidepressants or anxiolytics, often a current one and sometimes an add-on, coded in RxNorm;
//! - allergies for about one patient in five;
//! - a screening visit for everyone, then a ketamine course or follow-up reviews, all in 2025
//!   and 2026 before 1 November 2026;
//! - a height at screening and two to five weights with small drift, recorded by the nurse;
//! - on patient `KC-000001`, an amended medication and a voided allergy, to show the history.
//!
//! The same seed always gives the same clinic (record ids and timestamps of recording differ).
//! All codes are for synthetic data only: see the `data` module.

mod data;
mod plan;

use ketacare_app::{App, AppError, NewUserInput, Principal};
use ketacare_domain::access::Role;

/// Password of every demo account.
pub const PASSWORD: &str = "demo-clinic-2026";
/// Number of demo patients.
pub const PATIENTS: usize = 64;

/// Role, username and display name of the demo staff.
const STAFF: [(Role, &str, &str); 5] = [
    (Role::Admin, "admin", "Sam Whitfield"),
    (Role::MedicalDirector, "director", "Dr Miriam Achebe"),
    (Role::Prescriber, "prescriber", "Dr Tomas Lindgren"),
    (Role::Nurse, "nurse", "Grace Oduya, RN"),
    (Role::Researcher, "researcher", "Dr Lena Hartmann"),
];
const AMEND_REASON: &str = "dose corrected after pharmacist review";
const VOID_REASON: &str = "entered in error: wrong patient";

/// One demo account.
#[derive(Clone, Debug)]
pub struct DemoLogin {
    /// Its role.
    pub role: Role,
    /// Login name.
    pub username: String,
    /// Password (the same for all demo accounts).
    pub password: String,
}

/// What [`seed`] created.
#[derive(Clone, Debug)]
pub struct DemoSummary {
    /// One account per role.
    pub logins: Vec<DemoLogin>,
    /// Number of patients registered.
    pub patients: usize,
}

/// Seeds an empty, migrated store through the application's own use cases.
///
/// Refuses a store that already has users or patients. Any rejection by the application,
/// including a weight or height that would need confirmation, is returned as is: the demo data
/// is meant to pass every check unacknowledged.
pub async fn seed(app: &App) -> Result<DemoSummary, AppError> {
    if app.store().count_patients().await? > 0 || !app.store().list_users().await?.is_empty() {
        return Err(AppError::Conflict("the demo clinic can only be seeded into an empty database".into()));
    }
    let plans = plan::plan_clinic(PATIENTS)?;
    let (mut logins, mut prescriber, mut nurse) = (Vec::new(), None, None);
    for (role, username, display_name) in STAFF {
        let input = NewUserInput {
            username: username.into(),
            display_name: display_name.into(),
            role: role.code().into(),
            password: PASSWORD.into(),
        };
        let user = app.create_user_as_system(&input).await?;
        match role {
            Role::Prescriber => prescriber = Some(app.system_principal(user)),
            Role::Nurse => nurse = Some(app.system_principal(user)),
            _ => {}
        }
        logins.push(DemoLogin { role, username: input.username, password: input.password });
    }
    let (Some(prescriber), Some(nurse)) = (prescriber, nurse) else {
        return Err(AppError::Internal("demo staff lacks a prescriber or a nurse".into()));
    };
    for p in &plans {
        seed_patient(app, &prescriber, &nurse, p).await?;
    }
    Ok(DemoSummary { logins, patients: plans.len() })
}

/// Registers one patient and writes their chart: clinical records as the prescriber, weights and
/// heights as the nurse.
async fn seed_patient(app: &App, prescriber: &Principal, nurse: &Principal, p: &plan::PatientPlan) -> Result<(), AppError> {
    let id = app.register_patient(prescriber, &p.demographics).await?.patient_id;
    let mut saved = Vec::with_capacity(p.records.len());
    for r in &p.records {
        saved.push(app.add_record(prescriber, id, r).await?);
    }
    app.record_height(nurse, id, &p.height).await?;
    for w in &p.weights {
        app.record_weight(nurse, id, w).await?;
    }
    if let Some(s) = &p.showcase {
        let med = saved.get(s.medication).ok_or_else(|| AppError::Internal("demo showcase medication missing".into()))?;
        app.amend_record(prescriber, med.record_id, med.version, &s.corrected, AMEND_REASON).await?;
        let wrong = app.add_record(prescriber, id, &s.wrong_allergy).await?;
        app.void_record(prescriber, wrong.record_id, wrong.version, VOID_REASON).await?;
    }
    Ok(())
}
