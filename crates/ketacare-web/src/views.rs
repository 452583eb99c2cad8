//! HTML building blocks: the page layout, form fields with their errors, and the weight chart.
//! Markup is compiled and auto-escaped by maud; no inline scripts or styles (the CSP forbids them).

use crate::forms::{f, Fields};
use axum::http::StatusCode;
use ketacare_app::{Measurement, Principal};
use ketacare_domain::access::{Permission, Role};
use ketacare_domain::anthropometry::BodyWeight;
use ketacare_domain::validation::FieldErrors;
use maud::{html, Markup, DOCTYPE};

/// The page frame with navigation for the caller's role.
/// A time as the pages show it, to the minute (every time is UTC, as the forms take it).
pub fn minute(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

/// [`minute`] with the zone written out, where a time stands alone in a sentence.
pub fn minute_utc(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// A time to the second (audit entries, session events).
pub fn second(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// [`second`] with the zone written out.
pub fn second_utc(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

pub fn layout(p: Option<&Principal>, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Ketacare" }
                link rel="stylesheet" href="/static/app.css";
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "Ketacare" }
                    @if let Some(p) = p {
                        nav aria-label="Main" {
                            @if p.can(Permission::ReadPatients) { a href="/patients" { "Patients" } a href="/board" { "Live board" } a href="/alerts" { "Safety alerts" } a href="/safety" { "Safety board" } a href="/calculator" { "Dose calculator" } a href="/simulate" { "Simulator" } a href="/protocols" { "Protocols" } }
                            @if p.can(Permission::ReadDeidentified) { @if !p.can(Permission::ReadPatients) { a href="/simulate" { "Simulator" } } a href="/research" { "Research" } }
                            @if p.can(Permission::ReadAudit) { a href="/audit" { "Audit trail" } a href="/dose-quality" { "Dose quality" } }
                            @if p.can(Permission::ReviewEmergencyAccess) { a href="/access" { "Chart access" } }
                            @if p.can(Permission::ManageUsers) { a href="/admin/users" { "Users" } }
                            a href="/knowledge" { "Clinical rules" }
                            a href="/account" { "Account" }
                        }
                        div.who {
                            span { (p.user.display_name) " · " (p.role().label()) }
                            form method="post" action="/logout" {
                                (csrf(p))
                                button.link type="submit" { "Log out" }
                            }
                        }
                    }
                }
                main #main { (body) }
                footer.foot { "Ketacare is clinical decision support. It does not replace clinical judgement." }
            }
        }
    }
}

/// The hidden anti-forgery field.
pub fn csrf(p: &Principal) -> Markup {
    html! { input type="hidden" name="_csrf" value=(p.csrf_token().unwrap_or_default()); }
}

/// A labelled input with its error message.
pub fn input(name: &str, label: &str, values: &Fields, errors: &FieldErrors, kind: &str, hint: Option<&str>) -> Markup {
    let err = errors.for_field(name);
    let id = format!("f-{name}");
    let described: Vec<String> = [hint.map(|_| format!("{id}-hint")), err.map(|_| format!("{id}-err"))].into_iter().flatten().collect();
    let described = (!described.is_empty()).then(|| described.join(" "));
    html! {
        div.field.invalid[err.is_some()] {
            label for=(id) { (label) }
            @if let Some(h) = hint { small.hint id=(format!("{id}-hint")) { (h) } }
            input id=(id) name=(name) type=(if kind == "decimal" { "text" } else { kind }) value=(f(values, name)) aria-invalid=[err.map(|_| "true")] aria-describedby=[described] inputmode=[(kind == "decimal").then_some("decimal")];
            @if let Some(e) = err { p.error id=(format!("{id}-err")) role="alert" { (label) " " (e) } }
        }
    }
}

/// A labelled textarea.
pub fn textarea(name: &str, label: &str, values: &Fields, errors: &FieldErrors) -> Markup {
    let err = errors.for_field(name);
    let id = format!("f-{name}");
    html! {
        div.field.invalid[err.is_some()] {
            label for=(id) { (label) }
            textarea id=(id) name=(name) rows="3" aria-invalid=[err.map(|_| "true")] { (f(values, name)) }
            @if let Some(e) = err { p.error role="alert" { (label) " " (e) } }
        }
    }
}

/// A labelled select.
pub fn select(name: &str, label: &str, options: &[(String, String)], values: &Fields, errors: &FieldErrors) -> Markup {
    let err = errors.for_field(name);
    let id = format!("f-{name}");
    let cur = f(values, name);
    html! {
        div.field.invalid[err.is_some()] {
            label for=(id) { (label) }
            select id=(id) name=(name) aria-invalid=[err.map(|_| "true")] {
                @for (code, text) in options {
                    option value=(code) selected[*code == cur] { (text) }
                }
            }
            @if let Some(e) = err { p.error role="alert" { (label) " " (e) } }
        }
    }
}

/// Errors that belong to no visible field.
pub fn error_summary(errors: &FieldErrors) -> Markup {
    html! {
        @if !errors.is_empty() {
            div.alert.alert-error role="alert" {
                p { strong { "Nothing was saved. Please correct the following:" } }
                ul { @for e in errors.iter() { li { (e.field) ": " (e.message) } } }
            }
        }
    }
}

/// An error page.
pub fn error_page(status: StatusCode, message: &str) -> Markup {
    layout(
        None,
        status.canonical_reason().unwrap_or("Error"),
        html! {
            h1 { (status.canonical_reason().unwrap_or("Error")) }
            p { (message) }
            p { a href="/" { "Back to the start page" } }
        },
    )
}

/// Role options for selects.
pub fn role_options() -> Vec<(String, String)> {
    Role::ALL.iter().map(|r| (r.code().to_owned(), r.label().to_owned())).collect()
}

/// A small line chart of weights over time as inline SVG (no script).
pub fn weight_chart(weights: &[Measurement<BodyWeight>]) -> Markup {
    if weights.len() < 2 {
        return html! {};
    }
    let (w, h, pad) = (560.0_f64, 160.0_f64, 36.0_f64);
    let kg: Vec<f64> = weights.iter().map(|m| f64::from(m.value.grams()) / 1000.0).collect();
    let t: Vec<f64> = weights.iter().map(|m| m.effective.timestamp() as f64).collect();
    let (kmin, kmax) = kg.iter().fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    let (lo, hi) = (kmin - 2.0, kmax + 2.0);
    let (t0, t1) = (t[0], t[t.len() - 1].max(t[0] + 1.0));
    let x = |v: f64| pad + (v - t0) / (t1 - t0) * (w - 2.0 * pad);
    let y = |v: f64| h - pad + (lo - v) / (hi - lo) * (h - 2.0 * pad);
    let points: Vec<String> = t.iter().zip(&kg).map(|(&a, &b)| format!("{:.1},{:.1}", x(a), y(b))).collect();
    let label = format!(
        "Weight from {} to {}, between {:.1} and {:.1} kg",
        weights[0].effective.format("%Y-%m-%d"),
        weights[weights.len() - 1].effective.format("%Y-%m-%d"),
        kmin,
        kmax
    );
    html! {
        figure.chart {
            svg viewBox=(format!("0 0 {w} {h}")) role="img" aria-label=(label) {
                line x1=(pad) y1=(h - pad) x2=(w - pad) y2=(h - pad) stroke="#9aa5b1" {}
                line x1=(pad) y1=(pad) x2=(pad) y2=(h - pad) stroke="#9aa5b1" {}
                text x="4" y=(y(hi) + 10.0) font-size="11" fill="#52606d" { (format!("{hi:.0}")) }
                text x="4" y=(y(lo)) font-size="11" fill="#52606d" { (format!("{lo:.0}")) }
                polyline points=(points.join(" ")) fill="none" stroke="#2f6f8f" stroke-width="2" {}
                @for (a, b) in t.iter().zip(&kg) {
                    circle cx=(format!("{:.1}", x(*a))) cy=(format!("{:.1}", y(*b))) r="3" fill="#2f6f8f" {}
                }
            }
            figcaption { (label) }
        }
    }
}
