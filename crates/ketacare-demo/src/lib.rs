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
//! - a screening visit for everyone, then follow-up reviews or, for 40 patients, a ketamine
//!   course, all in 2025 and 2026 before 1 November 2026. Most courses are three weekly
//!   ascending subcutaneous doses (0.25, 0.5 and 1 mg/kg, as in Glue 2017), a few are six
//!   intravenous infusions (0.5 mg/kg over 40 minutes, twice weekly); about a third of the
//!   responders to the subcutaneous doses go on to 1 mg/kg maintenance, weekly or twice weekly,
//!   for four to twelve weeks (as in Glue 2018); a review follows each course. Every treatment
//!   encounter's reason states the route and dose (e.g. `SC ketamine 0.5 mg/kg (ascending dose
//!   2 of 3)`), which labels the session on the outcome charts;
//! - rating-scale histories (about 1,000 administrations) for every patient on a course,
//!   recorded through the application's own use case, clinician-rated scales by the prescriber
//!   and self-reports as paper forms entered by the nurse, with answers item by item:
//!   - at screening GAD-7, PHQ-9 and HAM-A (above 20 in generalised anxiety), LSAS (above 60)
//!     in social anxiety, and SDS, Q-LES-Q-SF and ICSI for the maintenance patients and those
//!     with schedules;
//!   - at the ascending doses HAM-A an hour after each dose and before the 0.5 and 1 mg/kg
//!     doses (the screening rating stands before the first), CADSS an hour after each dose
//!     (rising with the dose), GAD-7 the day after the 0.5 and 1 mg/kg doses and a week after
//!     the last one, MOAA/S after 1 mg/kg (mostly 5, some 4); at infusions CADSS each time and
//!     HAM-A, GAD-7 and MOAA/S around the first and last;
//!   - during maintenance a pre-dose GAD-7 every week, CADSS at the first sessions and then
//!     monthly (falling from about 20 to about 9), and every four weeks PHQ-9, HAM-A, SDS,
//!     Q-LES-Q-SF and MOAA/S (LSAS in social anxiety), with ICSI every eight weeks;
//!   - at the review after the course GAD-7, and PHQ-9 with comorbid depression or after
//!     maintenance (with ICSI);
//!
//!   About two patients in three respond (half or more off the baseline an hour after the 0.5
//!   and 1 mg/kg doses, some of it gone by the next session, pre-dose scores falling over
//!   maintenance); maintenance holds the benefit, half the other responders keep it and the
//!   rest fade back; a few remit; the others do not respond. One maintenance patient's bladder
//!   symptoms (ICSI) rise over maintenance (1, 4, 7, with a note on the urology referral);
//! - three open safety alerts, raised by `record_assessment` itself and left unacknowledged: a
//!   PHQ-9 with item 9 at 1 on `KC-000001` (followed by a low-risk C-SSRS screener), and on the
//!   non-responder reviewed most recently, whose C-SSRS screener is moderate risk (the second
//!   alert on that patient);
//! - a session-anchored GAD-7 schedule (pre-dose, +1 h, +24 h, +7 days) and a calendar SDS
//!   schedule every 28 days on `KC-000001` and on the two other patients treated most recently
//!   (ascending doses in September and October 2026), whose GAD-7 is given at all four time
//!   points;
//! - a height at screening and two to five weights with small drift, recorded by the nurse;
//! - on patient `KC-000001` (generalised and social anxiety, screened on 22 June 2026, a
//!   responder on weekly maintenance until the end of October) an amended medication and a
//!   voided allergy to show the history, about 150 administrations of every scale above plus
//!   the Fear Questionnaire and the anxiety visual analogue scale, and an SDS questionnaire
//!   link sent when the clinic is seeded (open for 72 hours; its token is not kept).
//!
//! - five new referrals (`KC-000065` to `KC-000069`) with a complete screening intake: one
//!   eligible, one eligible with cautions (lamotrigine, clonazepam, controlled hypertension),
//!   one needing review (bipolar disorder), one not eligible (schizophrenia) and one accepted
//!   by the medical director after review (bladder symptoms); see the `screening` module;
//! - the three patients of the treatment room (`KC-000070` to `KC-000072`), dosed when the clinic
//!   is seeded; see the `room` module;
//! - six patients on SC 1 mg/kg maintenance (`KC-000073` to `KC-000078`), screened, dosed and
//!   rated over the weeks before the clinic is seeded (checked dose orders against each day's
//!   weight, liver panels with the laboratory's upper limits, safety observations), whose
//!   histories show each long-term safety signal on the clinic safety board: `KC-000073` a
//!   rising ALT above 3 x ULN and new bladder symptoms (ICSI 2 to 9), with a care plan;
//!   `KC-000074` dose escalation without a better response, falling dissociation and two
//!   requests for earlier sessions; `KC-000075` craving, a positive urine toxicology and a
//!   substance-use disorder diagnosed during treatment; `KC-000076` a shorter benefit and
//!   sessions closer together; `KC-000077` twice-weekly doses above the drug library's 28-day
//!   soft cap and haematuria; `KC-000078` stable, with a signed benefit-risk review now overdue;
//!   see the `safety` module;
//! - a research cohort of sixteen adults with social anxiety disorder (`KC-000079` to
//!   `KC-000094`), each with one IV infusion of 0.5 mg/kg and the LSAS before and after (Taylor
//!   2018's design), a baseline PHQ-9 and research covariates; see the `research` module.
//!
//! The same seed always gives the same clinic (record ids and timestamps of recording differ).
//! All codes are for synthetic data only: see the `data` module.

mod data;
mod outcomes;
mod plan;
mod research;
pub mod room;
mod safety;
mod screening;

pub use research::RESEARCH_PATIENTS;
pub use safety::SAFETY_PATIENTS;
pub use screening::REFERRALS;

use ketacare_app::{App, AppError, NewUserInput, Principal};
use ketacare_domain::access::Role;
use ketacare_domain::assessment::AssessmentInput;

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
    /// Number of rating-scale administrations of the main clinic (the first [`PATIENTS`]
    /// patients); those of the referrals and the maintenance patients are not counted.
    pub assessments: usize,
    /// The monitored chairs of the simulated treatment room.
    pub room: Vec<room::RoomChair>,
    /// Number of safety alerts the rating scales raised (all left open).
    pub alerts: usize,
}

/// Seeds an empty, migrated store through the application's own use cases.
///
/// The maintenance patients' histories, dated in the weeks before now, are recorded by a second
/// instance of the application over the same store, whose clock is set to each moment in turn.
///
/// Refuses a store that already has users or patients. Any rejection by the application,
/// including a weight or height that would need confirmation, is returned as is: the demo data
/// is meant to pass every check unacknowledged.
pub async fn seed(app: &App) -> Result<DemoSummary, AppError> {
    if app.store().count_patients().await? > 0 || !app.store().list_users().await?.is_empty() {
        return Err(AppError::Conflict("the demo clinic can only be seeded into an empty database".into()));
    }
    let plans = plan::plan_clinic(PATIENTS, &app.knowledge().instruments)?;
    let (mut logins, mut prescriber, mut nurse, mut director) = (Vec::new(), None, None, None);
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
            Role::MedicalDirector => director = Some(app.system_principal(user)),
            _ => {}
        }
        logins.push(DemoLogin { role, username: input.username, password: input.password });
    }
    let (Some(prescriber), Some(nurse), Some(director)) = (prescriber, nurse, director) else {
        return Err(AppError::Internal("demo staff lacks a prescriber, a nurse or a medical director".into()));
    };
    // The demo's accounts sign in with the printed passwords; a real clinic keeps the default
    // (two-step sign-in for administrators, the medical director and prescribers). Anyone can
    // still set it up on their Account page.
    app.set_mfa_policy_as_system(&director.user, "none", "demo clinic: staff sign in with the printed demo passwords").await?;
    let (mut assessments, mut alerts) = (0, 0);
    for p in &plans {
        alerts += seed_patient(app, &prescriber, &nurse, p).await?;
        assessments += p.assessments.len();
    }
    let referrals = screening::seed_referrals(app, &director, &prescriber, &nurse).await?;
    let room = room::seed_room(app, &prescriber, &nurse).await?;
    let (maintained, raised) = safety::seed_safety(app, &director, &prescriber, &nurse).await?;
    alerts += raised;
    let research = research::seed_research(app, &prescriber, &nurse).await?;
    Ok(DemoSummary { logins, patients: plans.len() + referrals + room.len() + maintained + research, assessments, alerts, room })
}

/// Registers one patient and writes their chart: clinical records as the prescriber, weights and
/// heights as the nurse, then rating scales, schedules and a questionnaire link. Returns the
/// number of safety alerts raised.
async fn seed_patient(app: &App, prescriber: &Principal, nurse: &Principal, p: &plan::PatientPlan) -> Result<usize, AppError> {
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
    let mut alerts = 0;
    for a in &p.assessments {
        let session = match a.session {
            Some(i) => saved.get(i).ok_or_else(|| AppError::Internal("demo session missing".into()))?.record_id.to_string(),
            None => String::new(),
        };
        let input = AssessmentInput {
            instrument: a.instrument.into(),
            answers: a.answers.clone(),
            taken_at: a.at.format(plan::DT).to_string(),
            session,
            timepoint: a.timepoint.unwrap_or_default().into(),
            note: a.note.clone(),
        };
        let who = match a.rater {
            outcomes::Rater::Prescriber => prescriber,
            outcomes::Rater::Nurse => nurse,
        };
        alerts += app.record_assessment(who, id, &input).await?.2.len();
    }
    for s in &p.schedules {
        app.create_schedule(prescriber, id, s).await?;
    }
    if let Some(instrument) = p.link {
        app.send_questionnaire(nurse, id, instrument, "", "").await?;
    }
    Ok(alerts)
}
