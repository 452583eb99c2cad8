//! Research exports over HTTP: the page `/research/exports` (researchers and the medical
//! director) with a download button per format, and `GET /api/research/export/{format}`, the
//! whole clinic de-identified as a zip of CSV files with their data dictionary (CSV or OMOP CDM
//! v5.4). The export is written into a private temporary directory, zipped there and streamed
//! from disk, so memory stays bounded; the directory is removed when the download ends.

use crate::api::bad;
use crate::error::{Problem, WebError};
use crate::extract::Auth;
use crate::views::layout;
use crate::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use ketacare_app::export::{DirSink, ExportFormat, OmopConcepts, AUDIT_ENTITY};
use ketacare_app::{AppError, Principal};
use ketacare_domain::access::Permission;
use maud::html;
use std::io::Read;
use utoipa::OpenApi;

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(download), tags((name = "research", description = "De-identified research views and exports")))]
pub struct ExportsDoc;

/// Routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/research/exports", get(page)).route("/api/research/export/{format}", get(download))
}

fn internal(what: &str, e: impl std::fmt::Display) -> WebError {
    WebError::api(AppError::Internal(format!("{what}: {e}")))
}

/// The export page: what each format holds, the de-identification rules, and the buttons.
async fn page(State(state): State<AppState>, Auth(p): Auth) -> Result<Response, WebError> {
    state.app.authorize(&p, Permission::ReadDeidentified, AUDIT_ENTITY).await.map_err(WebError::ui)?;
    let concepts = OmopConcepts::get().map_err(WebError::ui)?;
    Ok(layout(Some(&p), "Research exports", body(&p, concepts)).into_response())
}

fn body(p: &Principal, concepts: &OmopConcepts) -> maud::Markup {
    html! {
        h1 { "Research exports" }
        p.muted { "Signed in as " (p.user.display_name) ". Every export is recorded in the audit trail with your name, the time, the format and the number of patients." }
        section.card #deidentification {
            h2 { "De-identified, always" }
            ul {
                li { "Patients appear only by their research id (the same in every export of this clinic); names, MRNs, dates of birth and contact details are never exported." }
                li { "Every date and time is shifted by a per-patient offset of up to a year either way: intervals within a patient are exact, calendar dates are not real." }
                li { "Ages are whole years; ages above 89 are reported as 90+." }
                li { "Free text (notes, descriptions, medication names, laboratory names, reasons) is never exported; only coded values are." }
            }
        }
        div.actions #downloads {
            @for f in ExportFormat::ALL {
                a.button.primary href=(format!("/api/research/export/{}", f.code())) download data-format=(f.code()) {
                    "Download " (f.label()) " (zip)"
                }
            }
        }
        @for f in ExportFormat::ALL {
            section.card data-format=(f.code()) {
                h2 { (f.label()) }
                @if f == ExportFormat::Omop {
                    details.card #omop-concepts {
                        summary { "OMOP concepts used, with their sources" }
                        table.list {
                            thead { tr { th { "Kind" } th { "Source code" } th { "Concept" } th { "Name" } th { "Source" } } }
                            tbody {
                                @for (kind, entries) in concepts.entries() {
                                    @for e in entries {
                                        tr {
                                            td { (kind) } td { (e.key) } td { (e.concept_id) }
                                            td { (e.name) @if !e.verified { " " span.badge.unverified { "VERIFY" } } }
                                            td { (e.source) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    p { "CDM v5.4 tables as CSV files with a header row (empty cells are NULL). Concepts from "
                        code { "knowledge/omop-concepts.toml" } " (version " (concepts.version) "); codes without a listed concept are exported with concept id 0 and their source value." }
                }
                table.list {
                    thead { tr { th { "File" } th { "One row per" } th { "Columns" } } }
                    tbody {
                        @for t in f.tables() {
                            tr data-file=(t.file) {
                                td { code { (t.file) } }
                                td { (t.description) }
                                td { (t.columns.iter().map(|c| c.name).collect::<Vec<_>>().join(", ")) }
                            }
                        }
                    }
                }
            }
        }
        p { a href="/research" { "Back to the de-identified cohort" } }
    }
}

/// Zips the files into `zip_path` (deflate), each under its own name.
fn zip_files(files: &[std::path::PathBuf], zip_path: &std::path::Path) -> Result<(), String> {
    let out = std::fs::File::create(zip_path).map_err(|e| e.to_string())?;
    let mut z = zip::ZipWriter::new(std::io::BufWriter::new(out));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for f in files {
        let name = f.file_name().and_then(|n| n.to_str()).ok_or("file name")?;
        z.start_file(name, options).map_err(|e| e.to_string())?;
        let mut input = std::fs::File::open(f).map_err(|e| e.to_string())?;
        std::io::copy(&mut input, &mut z).map_err(|e| e.to_string())?;
    }
    let w = z.finish().map_err(|e| e.to_string())?;
    w.into_inner().map_err(|e| e.to_string())?.sync_all().map_err(|e| e.to_string())
}

/// The whole clinic, de-identified, as a zip (researchers and the medical director). Audited:
/// one entry per export (who, when, format, number of patients) and one per page of patients read.
#[utoipa::path(get, path = "/api/research/export/{format}", tag = "research",
    params(("format" = String, Path, description = "csv (one CSV per table with data_dictionary.csv) or omop (OMOP CDM v5.4 tables with data_dictionary.csv)")),
    responses(
        (status = 200, content_type = "application/zip", description = "A zip of the export's CSV files, de-identified (research ids, shifted dates, ages above 89 as 90+, no free text)"),
        (status = 401, body = Problem, description = "Not logged in"),
        (status = 403, body = Problem, description = "Only researchers and the medical director export"),
        (status = 422, body = Problem, description = "Unknown format: the message names the accepted values")))]
async fn download(State(state): State<AppState>, Auth(p): Auth, Path(format): Path<String>) -> Result<Response, WebError> {
    let format = ExportFormat::parse(&format).map_err(|m| bad("format", &m))?;
    // Refuse (and audit) before anything touches the disk.
    state.app.authorize(&p, Permission::ReadDeidentified, AUDIT_ENTITY).await?;
    let tmp = tempfile::Builder::new().prefix("ketacare-export-").tempdir().map_err(|e| internal("temporary directory", e))?;
    let mut sink = DirSink::new(&tmp.path().join("files"), "format")?;
    let summary = state.app.export(&p, format, &mut sink, &mut |_, _| {}).await?;
    let files = sink.files().to_vec();
    let zip_path = tmp.path().join("export.zip");
    let target = zip_path.clone();
    tokio::task::spawn_blocking(move || zip_files(&files, &target))
        .await
        .map_err(|e| internal("zipping", e))?
        .map_err(|e| internal("zipping", e))?;
    let file = std::fs::File::open(&zip_path).map_err(|e| internal("opening the zip", e))?;
    let size = file.metadata().map_err(|e| internal("opening the zip", e))?.len();
    // Stream the file in chunks read off the async threads; the temporary directory lives in
    // the stream's state and is removed when the body is dropped.
    let stream = futures_util::stream::unfold(Some((file, tmp)), |state| async move {
        let (mut file, tmp) = state?;
        let read = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; 64 * 1024];
            let n = file.read(&mut buf);
            (file, buf, n)
        })
        .await;
        match read {
            Ok((_, _, Ok(0))) => None,
            Ok((file, mut buf, Ok(n))) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(buf), Some((file, tmp))))
            }
            Ok((_, _, Err(e))) => Some((Err(e), None)),
            Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
        }
    });
    let name = format!("ketacare-{}-export-{}.zip", format.code(), state.app.clock().now().format("%Y-%m-%d"));
    tracing::info!(format = format.code(), patients = summary.patients, "research export downloaded");
    Ok((
        [
            (header::CONTENT_TYPE, "application/zip".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
            (header::CONTENT_LENGTH, size.to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_export_path_is_documented_with_its_formats() {
        let doc = ExportsDoc::openapi();
        let item = doc.paths.paths.get("/api/research/export/{format}").expect("documented");
        let op = item.get.as_ref().expect("GET");
        let text = serde_json::to_string(op).unwrap();
        assert!(text.contains("application/zip") && text.contains("omop") && text.contains("csv"), "{text}");
    }

    #[test]
    fn files_are_zipped_under_their_names() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("patients.csv");
        std::fs::write(&a, "research_id\nR-0000000001\n").unwrap();
        let b = dir.path().join("data_dictionary.csv");
        std::fs::write(&b, "table,column\n").unwrap();
        let z = dir.path().join("out.zip");
        zip_files(&[a, b], &z).unwrap();
        let mut archive = zip::ZipArchive::new(std::fs::File::open(&z).unwrap()).unwrap();
        let names: Vec<String> = archive.file_names().map(str::to_owned).collect();
        assert_eq!(names.len(), 2);
        assert!(names.contains(&"patients.csv".to_owned()) && names.contains(&"data_dictionary.csv".to_owned()));
        let mut s = String::new();
        archive.by_name("patients.csv").unwrap().read_to_string(&mut s).unwrap();
        assert_eq!(s, "research_id\nR-0000000001\n");
    }
}
