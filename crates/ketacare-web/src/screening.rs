//! The screening workspace in the chart: the verdict of the chart now with its findings,
//! reasons and sources, the prior trials and how they counted, the data used, quick entry of
//! vital signs and liver tests, signing (with the medical director's acceptances), and a
//! printable summary of the signed verdict.

use crate::error::WebError;
use crate::extract::Auth;
use crate::forms::{f, Fields};
use crate::pages::{check_csrf, pid, ui, PageResult};
use crate::views::*;
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::{Form, Router};
use ketacare_app::{AppError, LiverInput, Principal, ScreeningView, SignInput, VitalsInput};
use ketacare_domain::access::Permission;
use ketacare_domain::screening::{Finding, ScreeningRecord, Severity, TrialJudgement, Verdict};
use ketacare_domain::validation::FieldErrors;
use maud::{html, Markup};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/patients/{id}/screening", get(screening_page))
        .route("/patients/{id}/screening/sign", post(sign))
        .route("/patients/{id}/screening/vitals", post(vitals))
        .route("/patients/{id}/screening/liver", post(liver))
        .route("/patients/{id}/screening/summary", get(summary))
}

fn verdict_class(v: Verdict) -> &'static str {
    match v {
        Verdict::Eligible => "verdict eligible",
        Verdict::EligibleWithCautions => "verdict cautions",
        Verdict::NeedsReview => "verdict review",
        Verdict::NotEligible => "verdict excluded",
    }
}

fn dec(d: rust_decimal::Decimal) -> String {
    d.normalize().to_string()
}

/// One finding with its reasons and source.
pub fn finding_markup(f: &Finding, accepted_reason: Option<&str>) -> Markup {
    let class = match f.severity {
        Severity::Exclusion => "finding exclusion",
        Severity::Review => "finding review",
        Severity::Caution => "finding caution",
        Severity::Info => "finding info",
    };
    html! {
        li class=(class) data-code=(f.code) {
            p.finding-title {
                span.badge { (f.severity.label()) }
                " " strong { (f.title) }
                @if f.unverified { " " span.badge.unverified { "UNVERIFIED" } }
                @if f.accepted { " " span.badge.accepted { "Accepted" } }
            }
            dl.finding {
                dt { "Because" } dd { (f.trigger) }
                @if !f.effect.is_empty() { dt { "Why it matters" } dd { (f.effect) } }
                @if f.action != "None." { dt { "What to do" } dd { (f.action) } }
                @if let Some(c) = &f.conflict { dt { "Sources conflict" } dd { (c) } }
                @if let Some(r) = accepted_reason { dt { "Accepted because" } dd { (r) } }
                dt { "Source" } dd.source { (f.source) }
            }
        }
    }
}

fn trials_table(trials: &[TrialJudgement], definition: &str) -> Markup {
    html! {
        @if trials.is_empty() { p.muted { "No prior treatments recorded." } }
        @else {
            table.list #trials {
                caption { "Judged by " (definition) }
                thead { tr { th { "Treatment" } th { "Kind" } th { "Counts as" } th { "Why" } } }
                tbody {
                    @for t in trials {
                        tr {
                            td { (t.name) }
                            td { (t.kind.map(|k| k.code()).unwrap_or("not recorded")) }
                            td.status { (match t.status.code() { "adequate_failure" => "adequate failure", "responded" => "responded", "not_adequate" => "not adequate", "unconfirmed" => "unconfirmed", _ => "not counted" }) }
                            td { (t.explanation) }
                        }
                    }
                }
            }
        }
    }
}

fn findings_by_severity(findings: &[Finding], signed: Option<&ScreeningRecord>) -> Markup {
    html! {
        @for sev in [Severity::Exclusion, Severity::Review, Severity::Caution, Severity::Info] {
            @let fs: Vec<&Finding> = findings.iter().filter(|f| f.severity == sev).collect();
            @if !fs.is_empty() {
                h3 { (sev.label()) " (" (fs.len()) ")" }
                ul.findings {
                    @for f in fs {
                        (finding_markup(f, signed.and_then(|s| s.acceptances.iter().find(|a| a.code == f.code)).map(|a| a.reason.as_str())))
                    }
                }
            }
        }
    }
}

fn intake_summary(v: &ScreeningView, k: &ketacare_knowledge::Knowledge) -> Markup {
    let i = &v.intake;
    let opt = |x: Option<String>| x.unwrap_or_else(|| "not recorded".into());
    let yn = |b: Option<bool>| match b {
        Some(true) => "yes".to_owned(),
        Some(false) => "no".to_owned(),
        None => "not recorded".to_owned(),
    };
    html! {
        dl.intake {
            dt { "Age, sex" } dd { (opt(i.age_years.map(|a| format!("{a} years")))) ", " (opt(i.sex.clone())) }
            dt { "Weight, height" } dd { (opt(i.weight_kg.map(|w| format!("{} kg", dec(w))))) ", " (opt(i.height_cm.map(|h| format!("{} cm", dec(h))))) }
            dt { "Diagnoses" } dd { @if i.diagnoses.is_empty() { "none" } @else { (i.diagnoses.iter().map(|d| k.diagnoses.iter().find(|c| c.snomed.code() == d).map(|c| c.snomed.display().to_owned()).unwrap_or_else(|| d.clone())).collect::<Vec<_>>().join(", ")) } }
            dt { "Current medicines" } dd { @if i.medications.is_empty() { "none" } @else { (i.medications.iter().map(|m| m.name.clone()).collect::<Vec<_>>().join("; ")) } }
            dt { "Conditions" } dd { @if i.conditions.is_empty() { "none recorded" } @else { (i.conditions.iter().map(|c| format!("{}{}", c.name.replace('_', " "), match c.controlled { Some(true) => " (controlled)", Some(false) => " (not controlled)", None => "" })).collect::<Vec<_>>().join("; ")) } }
            dt { "Pregnant, breastfeeding" } dd { (yn(i.pregnant)) ", " (yn(i.breastfeeding)) }
            dt { "Resting BP, heart rate" } dd { (opt(i.bp_systolic.zip(i.bp_diastolic).map(|(s, d)| format!("{s}/{d} mmHg")))) ", " (opt(i.heart_rate.map(|h| format!("{h}/min")))) }
            dt { "Liver tests" } dd { @match &i.liver { None => "not recorded", Some(l) => { (["ALT", "AST", "ALP", "bilirubin"].iter().zip([l.alt, l.ast, l.alp, l.bilirubin]).filter_map(|(n, v)| v.map(|v| format!("{n} {}", dec(v)))).collect::<Vec<_>>().join(", ")) } } }
            dt { "Baseline ratings" } dd { @if i.baseline_ratings.is_empty() { "none" } @else { (i.baseline_ratings.iter().map(|r| format!("{} {}", k.instrument(&r.instrument).map(|x| x.name.as_str()).unwrap_or(&r.instrument), dec(r.total))).collect::<Vec<_>>().join(", ")) } }
            dt { "C-SSRS screen, PHQ-9 item 9" } dd { (opt(i.cssrs_triage.clone())) ", " (opt(i.phq9_item9.map(|x| x.to_string()))) }
            @for (what, from) in &v.provenance { dt { (what) } dd.muted { (from) } }
        }
    }
}

async fn body(state: &AppState, p: &Principal, id: &str, values: &Fields, errors: &FieldErrors) -> Result<Markup, WebError> {
    let patient = pid(id)?;
    let pv = state.app.patient(p, patient).await.map_err(ui)?;
    let v = state.app.screening(p, patient).await.map_err(ui)?;
    let k = state.app.knowledge();
    let s = &v.screening;
    let signed = v.signed.as_ref().map(|(_, r)| r);
    let base = format!("/patients/{id}");
    let open_reviews: Vec<&Finding> = s.findings.iter().filter(|f| f.severity == Severity::Review).collect();
    let can_accept = p.can(Permission::AcceptScreeningFinding);
    Ok(html! {
        p { a href=(base) { "← Chart" } }
        h1 { "Screening" }
        p.muted { (pv.demographics.name.display()) " · MRN " (pv.demographics.mrn.as_str()) }
        section #verdict class=(verdict_class(s.verdict)) role="status" {
            p.verdict-label { "Verdict now: " strong { (s.verdict.label()) } }
            p.small { "From the chart as it stands, by the screening rules " (v.knowledge_version) ". Treatment resistance: " (s.resistance.code().replace('_', " ")) " (" (s.resistance_definition) ")." }
            @match &v.signed {
                None => p.small { strong { "Not signed yet." } " A prescriber or the medical director signs the verdict below." },
                Some((rv, r)) => p.small {
                    "Signed verdict (version " (rv.version) "): " strong { (r.verdict.label()) } " by " (rv.provenance.username) " on " (crate::views::minute(rv.provenance.recorded_at)) " UTC. "
                    a href=(format!("{base}/screening/summary")) { "Printable summary" }
                },
            }
            @if !v.session_may_start() { p.block { strong { "A treatment session cannot start while an absolute contraindication stands." } } }
        }
        @if !v.new_since_signed.is_empty() {
            section.alert.alert-warning #new-since role="alert" {
                h2 { "New since the last signature (" (v.new_since_signed.len()) ")" }
                p { "The chart changed after the verdict was signed. Review these and sign again." }
                ul.findings { @for f in &v.new_since_signed { (finding_markup(f, None)) } }
            }
        }
        section.card #findings {
            h2 { "Findings" }
            (findings_by_severity(&s.findings, signed))
        }
        section.card #prior-trials {
            div.row-between {
                h2 { "Prior treatments and treatment resistance" }
                @if p.can(Permission::WriteClinical) { a.button href=(format!("{base}/records?kind=prior_treatment")) { "Add prior treatment" } }
            }
            (trials_table(&s.trials, &s.resistance_definition))
        }
        section.card #intake {
            div.row-between {
                h2 { "Data used" }
                @if p.can(Permission::WriteClinical) {
                    div.actions {
                        a.button href=(format!("{base}/records?kind=condition")) { "Add condition or status" }
                        a.button href=(format!("{base}/records?kind=medication")) { "Add medication" }
                        a.button href=(format!("{base}/assessments/new?instrument=cssrs_screener")) { "Record C-SSRS" }
                        a.button href=(format!("{base}/assessments/new?instrument=phq9")) { "Record PHQ-9" }
                    }
                }
            }
            (intake_summary(&v, k))
        }
        @if p.can(Permission::WriteClinical) {
            div.grid {
                form.card #vitals-form method="post" action=(format!("{base}/screening/vitals")) novalidate {
                    h2 { "Record resting blood pressure" }
                    (csrf(p))
                    (input("systolic", "Systolic (mmHg)", values, errors, "text", None))
                    (input("diastolic", "Diastolic (mmHg)", values, errors, "text", None))
                    (input("heart_rate", "Heart rate (/min)", values, errors, "text", None))
                    (input("measured_at", "Measured at (UTC; empty = now)", values, errors, "datetime-local", None))
                    button type="submit" { "Save blood pressure" }
                }
                form.card #liver-form method="post" action=(format!("{base}/screening/liver")) novalidate {
                    h2 { "Record liver tests" }
                    (csrf(p))
                    (input("alt", "ALT (U/L)", values, errors, "text", None))
                    (input("ast", "AST (U/L)", values, errors, "text", None))
                    (input("alp", "ALP (U/L)", values, errors, "text", None))
                    (input("bilirubin", "Bilirubin, total (µmol/L)", values, errors, "text", None))
                    (input("sampled_at", "Sampled at (UTC; empty = now)", values, errors, "datetime-local", None))
                    button type="submit" { "Save liver tests" }
                }
            }
        }
        @if p.can(Permission::SignScreening) {
            form.card #sign-form method="post" action=(format!("{base}/screening/sign")) novalidate {
                h2 { "Sign the verdict" }
                (csrf(p))
                @if let Some((rv, _)) = &v.signed { input type="hidden" name="base_version" value=(rv.version); }
                (error_summary(errors))
                @if !open_reviews.is_empty() {
                    @if can_accept {
                        p { "As medical director you may accept a finding that needs review, with a written reason. Absolute contraindications cannot be accepted." }
                        @for (n, fi) in open_reviews.iter().enumerate() {
                            fieldset.accept {
                                legend { (fi.title) }
                                input type="hidden" name=(format!("code_{n}")) value=(fi.code);
                                div.field.check {
                                    input type="checkbox" id=(format!("f-accept_{n}")) name=(format!("accept_{n}")) value="yes" checked[fi.accepted || f(values, &format!("accept_{n}")) == "yes"];
                                    label for=(format!("f-accept_{n}")) { "Accept: " (fi.title) }
                                }
                                (textarea(&format!("reason_{n}"), &format!("Why accept {}", fi.title), values, errors))
                            }
                        }
                    } @else {
                        p.muted { (open_reviews.len()) " finding(s) need the medical director's review; your signature records the verdict as it stands." }
                    }
                }
                (textarea("note", "Note with the signature", values, errors))
                button.primary type="submit" { "Sign screening" }
            }
        }
    })
}

/// The re-check shown when a visit is recorded (check-in): the verdict of the chart now, what
/// is new since the signed verdict, and whether a treatment session may start.
pub async fn recheck_panel(state: &AppState, p: &Principal, id: &str) -> Result<Markup, WebError> {
    let v = state.app.screening(p, pid(id)?).await.map_err(ui)?;
    let s = &v.screening;
    let blocking: Vec<&Finding> = s.findings.iter().filter(|f| f.severity == Severity::Exclusion).collect();
    let cautions: Vec<&Finding> = s.findings.iter().filter(|f| matches!(f.severity, Severity::Caution | Severity::Review)).collect();
    Ok(html! {
        section #recheck class=(verdict_class(s.verdict)) aria-labelledby="recheck-h" {
            h2 #recheck-h { "Screening re-check before a treatment session" }
            p { "Verdict now: " strong { (s.verdict.label()) } " · "
                @match &v.signed {
                    Some((rv, r)) => { "signed " (r.verdict.label()) " by " (rv.provenance.username) " on " (rv.provenance.recorded_at.format("%Y-%m-%d")) }
                    None => strong { "no signed screening" },
                }
                " · " a href=(format!("/patients/{id}/screening")) { "Open the screening" } }
            @if !blocking.is_empty() {
                p.block { strong { "A treatment session cannot start: " } (blocking.iter().map(|f| f.title.clone()).collect::<Vec<_>>().join("; ")) }
            }
            @if !v.new_since_signed.is_empty() {
                p { strong { "New since the last signature:" } }
                ul.findings { @for f in &v.new_since_signed { (finding_markup(f, None)) } }
            } @else if !cautions.is_empty() {
                p { "Cautions and reviews in force: " (cautions.iter().map(|f| f.title.clone()).collect::<Vec<_>>().join("; ")) }
            }
        }
    })
}

async fn screening_page(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> PageResult {
    let b = body(&state, &p, &id, &Fields::new(), &FieldErrors::new()).await?;
    Ok(layout(Some(&p), "Screening", b).into_response())
}

/// The acceptances of the sign form: `code_N` with `accept_N = yes` and `reason_N`.
fn acceptances(form: &Fields) -> Vec<(String, String)> {
    (0..200)
        .map_while(|n| form.get(&format!("code_{n}")).map(|c| (n, c.clone())))
        .filter(|(n, _)| f(form, &format!("accept_{n}")) == "yes")
        .map(|(n, c)| (c, f(form, &format!("reason_{n}"))))
        .collect()
}

async fn sign(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    let accepted = acceptances(&form);
    let input = SignInput { acceptances: accepted.clone(), note: f(&form, "note"), base_version: f(&form, "base_version").parse().ok() };
    match state.app.sign_screening(&p, pid(&id)?, &input).await {
        Ok(_) => Ok(Redirect::to(&format!("/patients/{id}/screening#verdict")).into_response()),
        Err(AppError::Validation(e)) => {
            // Reasons are named by finding code in the application; the form names them by row.
            let mut shown = FieldErrors::new();
            for x in e.iter() {
                let field = x
                    .field
                    .strip_prefix("reason.")
                    .and_then(|code| (0..200).find(|n| form.get(&format!("code_{n}")).is_some_and(|c| c == code)))
                    .map(|n| format!("reason_{n}"))
                    .unwrap_or_else(|| x.field.clone());
                shown.add(&field, x.message.clone());
            }
            let b = body(&state, &p, &id, &form, &shown).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, layout(Some(&p), "Screening", b)).into_response())
        }
        Err(e) => Err(ui(e)),
    }
}

async fn vitals(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    let input = VitalsInput {
        systolic: f(&form, "systolic"),
        diastolic: f(&form, "diastolic"),
        heart_rate: f(&form, "heart_rate"),
        measured_at: f(&form, "measured_at"),
    };
    match state.app.record_vitals(&p, pid(&id)?, &input).await {
        Ok(_) => Ok(Redirect::to(&format!("/patients/{id}/screening#verdict")).into_response()),
        Err(AppError::Validation(e)) => {
            let b = body(&state, &p, &id, &form, &e).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, layout(Some(&p), "Screening", b)).into_response())
        }
        Err(e) => Err(ui(e)),
    }
}

async fn liver(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    let input = LiverInput {
        alt: f(&form, "alt"),
        ast: f(&form, "ast"),
        alp: f(&form, "alp"),
        bilirubin: f(&form, "bilirubin"),
        sampled_at: f(&form, "sampled_at"),
    };
    match state.app.record_liver_tests(&p, pid(&id)?, &input).await {
        Ok(_) => Ok(Redirect::to(&format!("/patients/{id}/screening#verdict")).into_response()),
        Err(AppError::Validation(e)) => {
            let b = body(&state, &p, &id, &form, &e).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, layout(Some(&p), "Screening", b)).into_response())
        }
        Err(e) => Err(ui(e)),
    }
}

/// The signed verdict for print: what was signed, by whom, with acceptances and sources.
async fn summary(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> PageResult {
    let patient = pid(&id)?;
    let pv = state.app.patient(&p, patient).await.map_err(ui)?;
    let v = state.app.screening(&p, patient).await.map_err(ui)?;
    let d = &pv.demographics;
    let b = html! {
        p.actions { a href=(format!("/patients/{id}/screening")) { "← Screening" } }
        h1 { "Screening summary" }
        dl {
            dt { "Patient" } dd { (d.name.display()) }
            dt { "MRN" } dd { (d.mrn.as_str()) }
            dt { "Date of birth" } dd { (d.date_of_birth.date().format("%Y-%m-%d")) }
        }
        @match &v.signed {
            None => {
                div.alert.alert-warning { "No screening has been signed for this patient. The verdict below is the chart as it stands now, unsigned." }
                (summary_body(v.screening.verdict, &v.screening.findings, &v.screening.trials, &v.screening.resistance_definition, None))
            },
            Some((rv, r)) => {
                p { "Signed by " strong { (rv.provenance.username) } " on " (crate::views::minute(rv.provenance.recorded_at)) " UTC (version " (rv.version) ")." }
                @if let Some(n) = &r.note { p { "Note: " (n) } }
                p.small { "Screening rules: " (r.knowledge_version) }
                (summary_body(r.verdict, &r.findings, &r.trials, &r.resistance_definition, Some(r)))
                @if !v.new_since_signed.is_empty() {
                    div.alert.alert-warning { strong { "The chart changed after signing: " } (v.new_since_signed.iter().map(|f| f.title.clone()).collect::<Vec<_>>().join("; ")) }
                }
            }
        }
    };
    Ok(layout(Some(&p), "Screening summary", b).into_response())
}

fn summary_body(
    verdict: Verdict,
    findings: &[Finding],
    trials: &[TrialJudgement],
    definition: &str,
    signed: Option<&ScreeningRecord>,
) -> Markup {
    html! {
        section #verdict class=(verdict_class(verdict)) { p.verdict-label { "Verdict: " strong { (verdict.label()) } } }
        (findings_by_severity(findings, signed))
        h2 { "Prior treatments" }
        (trials_table(trials, definition))
        p.small.muted { "Clinical decision support: the verdict and findings support, and do not replace, the clinician's judgement." }
    }
}
