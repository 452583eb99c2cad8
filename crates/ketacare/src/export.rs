//! `ketacare export`: the whole clinic, de-identified, as CSV with a data dictionary or as OMOP
//! CDM v5.4 tables, written into a new or empty directory, run as a named account (researcher or
//! medical director) and audited. A progress bar (patients done of the total, with the time
//! left) is drawn on standard error when it is a terminal.

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use ketacare::{build_app, Config};
use ketacare_app::export::{DirSink, ExportFormat};
use ketacare_app::{AppError, SystemClock};
use ketacare_domain::access::{Permission, Role, Username};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

/// Options of `ketacare export`.
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// csv (one CSV per table with data_dictionary.csv) or omop (OMOP CDM v5.4 tables).
    #[arg(long, value_parser = parse_format)]
    pub format: ExportFormat,
    /// Directory to write into; it is created, or must be empty.
    #[arg(long)]
    pub out: PathBuf,
    /// Account the export runs as (a researcher or the medical director); the audit trail
    /// records it. May be left out when exactly one active account may export.
    #[arg(long)]
    pub user: Option<String>,
}

fn parse_format(s: &str) -> Result<ExportFormat, String> {
    ExportFormat::parse(s)
}

/// The account to export as: the named one, or the only active account allowed to export.
async fn exporter(app: &ketacare_app::App, user: Option<&str>) -> anyhow::Result<ketacare_db::User> {
    let store = app.store();
    match user {
        Some(name) => {
            let name = Username::parse(name).map_err(|m| anyhow::anyhow!("--user {m}"))?;
            let (u, _) = store
                .find_user_by_username(name.as_str())
                .await
                .context("looking the account up")?
                .ok_or_else(|| anyhow::anyhow!("--user: there is no account {}", name.as_str()))?;
            anyhow::ensure!(u.active, "--user: the account {} is deactivated", u.username.as_str());
            Ok(u)
        }
        None => {
            let mut can: Vec<ketacare_db::User> = store
                .list_users()
                .await
                .context("listing accounts")?
                .into_iter()
                .filter(|u| u.active && u.role.can(Permission::ReadDeidentified))
                .collect();
            match can.len() {
                1 => Ok(can.remove(0)),
                0 => anyhow::bail!(
                    "--user is needed: no active {} or {} account exists; create one with `ketacare user create --role researcher`",
                    Role::Researcher.label().to_lowercase(),
                    Role::MedicalDirector.label().to_lowercase()
                ),
                _ => {
                    let names: Vec<&str> = can.iter().map(|u| u.username.as_str()).collect();
                    anyhow::bail!("--user is needed: several accounts may export ({}); name the one running it", names.join(", "))
                }
            }
        }
    }
}

fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    let style = ProgressStyle::with_template("{spinner} {bar:40} {pos}/{len} patients  {elapsed} elapsed, ETA {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar
}

/// Runs `ketacare export`.
pub async fn run(config: &Config, args: &ExportArgs) -> anyhow::Result<()> {
    config.validate()?;
    let store = config.open_store().await?;
    let schema = store.schema_version().await.unwrap_or(0);
    anyhow::ensure!(schema > 0, "the database has no tables yet; run `ketacare migrate` first");
    let app = build_app(store, config, Arc::new(SystemClock))?;
    let result = export(&app, args).await;
    app.store().close().await;
    result
}

async fn export(app: &ketacare_app::App, args: &ExportArgs) -> anyhow::Result<()> {
    let user = exporter(app, args.user.as_deref()).await?;
    let p = app.system_principal(user);
    if !p.can(Permission::ReadDeidentified) {
        // Still asked, so the refusal is audited.
        let _ = app.authorize(&p, Permission::ReadDeidentified, ketacare_app::export::AUDIT_ENTITY).await;
        anyhow::bail!(
            "--user: {} is a {}; exports are for researchers and the medical director",
            p.user.username.as_str(),
            p.role().label().to_lowercase()
        );
    }
    let mut sink = DirSink::new(&args.out, "--out").map_err(problem)?;
    let bar = progress_bar();
    let mut progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let summary = app.export(&p, args.format, &mut sink, &mut progress).await;
    bar.finish_and_clear();
    let summary = summary.map_err(problem)?;
    let mut lines = vec![format!(
        "Exported {} patients, de-identified, as {} into {} (as {}; audited):",
        summary.patients,
        summary.format.label(),
        args.out.display(),
        p.user.username.as_str()
    )];
    for (file, rows) in &summary.files {
        lines.push(format!("  {file}: {rows} rows"));
    }
    println!("{}", lines.join("\n"));
    Ok(())
}

/// An application error as the operator should read it.
fn problem(e: AppError) -> anyhow::Error {
    match e {
        AppError::Validation(f) => {
            anyhow::anyhow!("{}", f.iter().map(|x| format!("{} {}", x.field, x.message)).collect::<Vec<_>>().join("; "))
        }
        AppError::Forbidden => anyhow::anyhow!("--user: this account may not export"),
        other => anyhow::Error::new(other).context("the export failed; nothing was written"),
    }
}
