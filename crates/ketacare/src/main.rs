//! `ketacare`: the single server binary. See `ketacare --help`.

mod backup;
mod calc;
mod export;
mod simulate;
mod synth;

use anyhow::Context;
use clap::{Parser, Subcommand};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use ketacare::{build_app, redact_url, Config, Server};
use ketacare_app::{NewUserInput, SystemClock};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

/// Ketacare: clinical software for supervised ketamine therapy of treatment-resistant anxiety.
/// Clinical decision support; it does not replace clinical judgement.
#[derive(Parser)]
#[command(name = "ketacare", version, about)]
struct Cli {
    /// TOML configuration file (values from KETACARE_* environment variables override it).
    #[arg(long, global = true, env = "KETACARE_CONFIG")]
    config: Option<PathBuf>,
    /// Database URL: sqlite://path.db or postgres://user@host/db (overrides the configuration).
    #[arg(long, global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a demo clinic with synthetic patients on a fresh SQLite database and serve it.
    Demo {
        /// Port to listen on (127.0.0.1).
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Directory for the demo database; its previous demo database is replaced.
        #[arg(long, default_value = "ketacare-demo-data")]
        data_dir: PathBuf,
        /// Port of the MLLP listener for bedside monitors (127.0.0.1); the simulated treatment
        /// room sends HL7 ORU^R01 to it.
        #[arg(long, default_value_t = 2575)]
        mllp_port: u16,
        /// Do not run the simulated monitors of the treatment room.
        #[arg(long)]
        no_monitors: bool,
    },
    /// Serve the clinic using the configuration.
    Serve {
        /// Listen address (overrides the configuration).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Manage user accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Load and check the configuration and the database, print the result and exit.
    CheckConfig,
    /// Score a rating scale: total, subscales, severity band, triage and flags. No database.
    ///
    /// Example: ketacare score gad7 --items 3,2,2,1,3,2,1 --json
    Score {
        /// Instrument: gad7, phq9, hama, lsas, fq, vas_anxiety, sds, qlesq_sf, cadss, moaas,
        /// cssrs_screener or icsi.
        instrument: String,
        /// Answers in the instrument's published order, separated by commas (y/n/- for the
        /// C-SSRS screener); see --describe.
        #[arg(long, required_unless_present = "describe")]
        items: Option<String>,
        /// Print the item order and accepted answers instead of scoring.
        #[arg(long)]
        describe: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change from baseline: points, percent, response, remission, reliable change. No database.
    ///
    /// Example: ketacare outcome hama --baseline 24 --current 11 --json
    Outcome {
        /// Instrument key (as for `score`).
        instrument: String,
        /// Baseline total.
        #[arg(long)]
        baseline: String,
        /// Current total.
        #[arg(long)]
        current: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Screen a candidate for ketamine therapy: verdict (eligible, eligible_with_cautions,
    /// needs_review, not_eligible) and findings with their sources. No database.
    ///
    /// The intake format is documented in docs/intake.schema.json; an example is
    /// docs/examples/intake.json. Example: ketacare screen --input intake.json --json
    Screen {
        /// The intake file (JSON); `-` reads standard input.
        #[arg(long, required_unless_present = "list")]
        input: Option<PathBuf>,
        /// List the conditions and medicines the screening knows, with their grades.
        #[arg(long)]
        list: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Calculate a ketamine dose against the drug library: weight basis, dose, drug volume from
    /// a shelf concentration, dilution and rate, with the soft and hard limits. No database.
    ///
    /// Example: ketacare dose --weight-kg 72 --mg-per-kg 0.5 --route iv --minutes 40
    /// --concentration-mg-per-ml 10 --final-volume-ml 100 --json
    ///
    /// Exits 2 when a hard limit is breached (the dose cannot be given), 0 otherwise (soft
    /// breaches are listed in warnings and need a reason and a second clinician).
    Dose {
        /// Measured body weight in kilograms (not pounds).
        #[arg(long)]
        weight_kg: String,
        /// Dose in mg/kg (iv, sc, im).
        #[arg(long)]
        mg_per_kg: Option<String>,
        /// Fixed dose in mg (intranasal esketamine, whole 28 mg devices).
        #[arg(long)]
        dose_mg: Option<String>,
        /// iv, sc, im or in.
        #[arg(long)]
        route: String,
        /// Infusion time in minutes (iv only).
        #[arg(long)]
        minutes: Option<String>,
        /// Concentration of the vial on the shelf, mg/mL (10, 50 or 100 by default).
        #[arg(long)]
        concentration_mg_per_ml: Option<String>,
        /// Final volume after dilution, mL (iv only).
        #[arg(long)]
        final_volume_ml: Option<String>,
        /// Height in cm (BMI, ideal and adjusted weight).
        #[arg(long)]
        height_cm: Option<String>,
        /// male or female (ideal weight).
        #[arg(long)]
        sex: Option<String>,
        /// actual, ideal or adjusted (default: the drug library's).
        #[arg(long)]
        weight_basis: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Predicted plasma and effect-site ketamine concentrations of a regimen (exact closed
    /// form), with Cmax, Tmax, AUC, minutes above the context bands, the model's provenance and
    /// the warnings. No database.
    ///
    /// Examples: ketacare simulate --weight-kg 70 --route iv --mg-per-kg 0.5 --minutes 40
    ///           ketacare simulate --weight-kg 70 --regimen regimen.json --csv
    Simulate {
        /// Body weight in kilograms (not pounds).
        #[arg(long)]
        weight_kg: Option<String>,
        /// Regimen file (JSON: {"events": [...]}; "-" reads standard input). Events:
        /// {"kind": "infusion", "start_min": 0, "duration_min": 40, "dose_mg": 35},
        /// {"kind": "bolus", "route": "iv"|"sc"|"im"|"in"|"po", "at_min": 0, "dose_mg": 70}
        /// (optional "f" and "ka_per_min" override the route defaults).
        #[arg(long)]
        regimen: Option<PathBuf>,
        /// One-dose shortcut: iv, sc, im, in or po.
        #[arg(long)]
        route: Option<String>,
        /// One-dose shortcut: dose in mg/kg.
        #[arg(long)]
        mg_per_kg: Option<String>,
        /// One-dose shortcut: dose in mg.
        #[arg(long)]
        dose_mg: Option<String>,
        /// One-dose shortcut: infusion time in minutes (iv).
        #[arg(long)]
        minutes: Option<String>,
        /// base (default; vials are labelled as base) or hydrochloride (converted x 0.867).
        #[arg(long)]
        salt: Option<String>,
        /// Model id (see --list-models); default domino.
        #[arg(long)]
        model: Option<String>,
        /// racemic (default) or esketamine.
        #[arg(long)]
        drug: Option<String>,
        /// Age in years (checked against the model's population).
        #[arg(long)]
        age_years: Option<String>,
        /// A current medication (repeat the option), checked for interactions no model quantifies.
        #[arg(long = "medication")]
        medications: Vec<String>,
        /// Window start, min.
        #[arg(long)]
        from: Option<String>,
        /// Window end, min (default 360).
        #[arg(long)]
        to: Option<String>,
        /// Grid step, min (default 1).
        #[arg(long)]
        step: Option<String>,
        /// Times for concentrations, min, separated by commas.
        #[arg(long)]
        c_at: Option<String>,
        /// Thresholds for minutes above, ng/mL, separated by commas (default: the context bands).
        #[arg(long)]
        thresholds: Option<String>,
        /// Effect-site rate, per min (the default is illustrative).
        #[arg(long)]
        ke0_per_min: Option<String>,
        /// recursive (default) or closed-form.
        #[arg(long)]
        engine: Option<String>,
        /// Skip the Monte Carlo uncertainty band.
        #[arg(long)]
        no_band: bool,
        /// List the models and route defaults instead of simulating.
        #[arg(long)]
        list_models: bool,
        /// Print JSON (summary, series, band, model, warnings).
        #[arg(long)]
        json: bool,
        /// Print CSV: time_min,cp_ng_per_ml,ce_ng_per_ml (warnings go to standard error).
        #[arg(long)]
        csv: bool,
    },
    /// List the protocols and their steps (route, dose rule, timing, assessments, criteria).
    Protocols {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Export the clinic's data for research or for another system (FHIR NDJSON, CSV with a
    /// data dictionary, OMOP CDM v5.4), de-identified unless asked otherwise; audited.
    Export(export::ExportArgs),
    /// Fill a database with a synthetic cohort (patients, sessions, vitals, ratings) for
    /// benchmarks and load tests. Never for a clinic's database.
    Synth(synth::SynthArgs),
    /// Licensed item wording of a rating scale (a clinic's wording file).
    Wording {
        #[command(subcommand)]
        command: WordingCommand,
    },
    /// Write an online, consistent backup of the database while the server runs (SQLite: one
    /// checked database file; PostgreSQL: pg_dump custom format).
    Backup {
        /// The backup file to write (must not exist).
        #[arg(long)]
        to: PathBuf,
    },
    /// Restore a backup into the configured database, which must not exist yet (SQLite) or be
    /// empty (PostgreSQL); then check it as the server would and verify its audit trail.
    Restore {
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
    },
    /// The tamper-evident audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Encryption of the SQLite database.
    Database {
        #[command(subcommand)]
        command: DatabaseCommand,
    },
}

#[derive(Subcommand)]
enum DatabaseCommand {
    /// Print a new random 256-bit key (64 hex digits) for database_key or database_key_file.
    /// A new database opened with it is encrypted (SQLCipher); keep the key apart from the
    /// database and its backups: without it nothing can be read.
    NewKey,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check every entry of the audit trail against its hash chain and every checkpoint
    /// against its signature; report any altered, deleted or inserted entry by position.
    /// Exit status 1 when anything is found.
    Verify {
        /// The Ed25519 public key (64 hex digits) checkpoints must be signed with. Default:
        /// the public half of the configured audit_signing_key.
        #[arg(long)]
        public_key: Option<String>,
        /// Link entries not yet in the chain first (as a running server does every 2 s).
        #[arg(long)]
        seal: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write the whole audit trail as FHIR R4 AuditEvent resources, one JSON object per line
    /// (NDJSON, as a bulk export), oldest first. The export is itself audited.
    Export {
        /// The file to write (must not exist).
        #[arg(long)]
        to: PathBuf,
    },
    /// Print the public key of the configured audit_signing_key (give it to whoever verifies).
    PublicKey,
    /// Print a new random signing key (64 hex digits) for audit_signing_key.
    NewKey,
}

#[derive(Subcommand)]
enum WordingCommand {
    /// Check a wording file against its instrument and print what forms would show. Stores
    /// nothing; load the file in the web UI or with POST /api/instruments/{key}/wording.
    ///
    /// Example: ketacare wording check docs/examples/gad7-wording.toml
    Check {
        /// The wording file (TOML; format in docs/wording-format.md).
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account (for example the first administrator). The password is read from
    /// standard input, or from KETACARE_NEW_USER_PASSWORD.
    Create {
        /// Login name.
        #[arg(long)]
        username: String,
        /// Full name.
        #[arg(long)]
        display_name: String,
        /// admin, medical_director, prescriber, nurse or researcher.
        #[arg(long, default_value = "admin")]
        role: String,
    },
    /// Unlock an account locked by failed logins (for example the last administrator's).
    Unlock {
        /// Login name.
        #[arg(long)]
        username: String,
    },
    /// Remove an account's two-step sign-in (a lost phone and no recovery codes left) and end
    /// its sessions; the person sets it up again at their next sign-in if their role requires it.
    ResetMfa {
        /// Login name.
        #[arg(long)]
        username: String,
    },
}

fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let mut fig = Figment::from(Serialized::defaults(ConfigDefaults::default()));
    if let Some(path) = &cli.config {
        anyhow::ensure!(path.exists(), "configuration file {} does not exist", path.display());
        fig = fig.merge(Toml::file(path));
    }
    fig = fig.merge(Env::prefixed("KETACARE_").ignore(&["config", "test_postgres_url", "require_postgres", "new_user_password", "log"]));
    let mut config: Config = fig.extract().context("reading the configuration (file and KETACARE_* variables)")?;
    if let Some(url) = &cli.database_url {
        config.database_url = url.clone();
    }
    Ok(config)
}

/// Serializable mirror of the defaults (figment needs `Serialize`).
#[derive(serde::Serialize)]
struct ConfigDefaults {
    database_url: String,
    listen: String,
    secure_cookies: bool,
    session_idle_minutes: i64,
    session_absolute_hours: i64,
    pseudonym_key: String,
    audit_checkpoint_minutes: i64,
    login_max_failures: u32,
    login_lock_minutes: i64,
    login_address_max_failures: u32,
    login_address_window_minutes: i64,
}

impl Default for ConfigDefaults {
    fn default() -> Self {
        let c = Config::default();
        Self {
            database_url: c.database_url,
            listen: c.listen,
            secure_cookies: c.secure_cookies,
            session_idle_minutes: c.session_idle_minutes,
            session_absolute_hours: c.session_absolute_hours,
            pseudonym_key: c.pseudonym_key,
            audit_checkpoint_minutes: c.audit_checkpoint_minutes,
            login_max_failures: c.login_max_failures,
            login_lock_minutes: c.login_lock_minutes,
            login_address_max_failures: c.login_address_max_failures,
            login_address_window_minutes: c.login_address_window_minutes,
        }
    }
}

async fn wait_for_shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Opens the configured store (migrated) and finds an account by username.
async fn account(config: &Config, username: &str) -> anyhow::Result<(Arc<dyn ketacare_db::Store>, ketacare_db::User)> {
    let store = config.open_store().await?;
    store.migrate().await?;
    let Some((user, _)) = store.find_user_by_username(username).await? else {
        store.close().await;
        anyhow::bail!("no account with username {username:?}");
    };
    Ok((store, user))
}

fn out(line: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{line}");
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The whole cause chain on one line, without a backtrace: messages are for operators.
            eprintln!("Error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("KETACARE_LOG").unwrap_or_else(|_| "info,sqlx=warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match &cli.command {
        Command::Export(args) => {
            let config = load_config(&cli)?;
            export::run(&config, args).await
        }
        Command::Synth(args) => {
            let config = load_config(&cli)?;
            synth::run(&config, args).await
        }
        Command::Score { instrument, items, describe, json } => {
            let k = ketacare_knowledge::Knowledge::load().context("loading the clinical knowledge files")?;
            let text = if *describe {
                calc::describe(&k, instrument, *json)
            } else {
                calc::score(&k, instrument, items.as_deref().unwrap_or(""), *json)
            };
            out(&text.map_err(|e| anyhow::anyhow!(e))?);
            Ok(())
        }
        Command::Outcome { instrument, baseline, current, json } => {
            let k = ketacare_knowledge::Knowledge::load().context("loading the clinical knowledge files")?;
            out(&calc::outcome(&k, instrument, baseline, current, *json).map_err(|e| anyhow::anyhow!(e))?);
            Ok(())
        }
        Command::Wording { command: WordingCommand::Check { file, json } } => {
            let k = ketacare_knowledge::Knowledge::load().context("loading the clinical knowledge files")?;
            let text = std::fs::read_to_string(file).with_context(|| format!("reading the wording file {}", file.display()))?;
            out(&calc::check_wording(&k, &text, *json).map_err(|e| anyhow::anyhow!(e))?);
            Ok(())
        }
        Command::Screen { input, json, list } => {
            let k = ketacare_knowledge::Knowledge::load().context("loading the clinical knowledge files")?;
            if *list {
                out(&calc::screening_lists(&k, *json));
                return Ok(());
            }
            let input = input.as_ref().context("--input is required")?;
            let text = if input.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading the intake from standard input")?
            } else {
                std::fs::read_to_string(input).with_context(|| format!("reading the intake file {}", input.display()))?
            };
            out(&calc::screen(&k, &text, *json).map_err(|e| anyhow::anyhow!(e))?);
            Ok(())
        }
        Command::Dose {
            weight_kg,
            mg_per_kg,
            dose_mg,
            route,
            minutes,
            concentration_mg_per_ml,
            final_volume_ml,
            height_cm,
            sex,
            weight_basis,
            json,
        } => {
            let k = ketacare_knowledge::Knowledge::load().context("loading the clinical knowledge files")?;
            let args = calc::DoseArgs {
                weight_kg,
                mg_per_kg: mg_per_kg.as_deref(),
                dose_mg: dose_mg.as_deref(),
                route,
                minutes: minutes.as_deref(),
                concentration_mg_per_ml: concentration_mg_per_ml.as_deref(),
                final_volume_ml: final_volume_ml.as_deref(),
                height_cm: height_cm.as_deref(),
                sex: sex.as_deref(),
                weight_basis: weight_basis.as_deref(),
            };
            let (text, refused) = calc::dose(&k, &args, *json).map_err(|e| anyhow::anyhow!(e))?;
            out(&text);
            if refused {
                std::process::exit(2);
            }
            Ok(())
        }
        Command::Simulate {
            weight_kg,
            regimen,
            route,
            mg_per_kg,
            dose_mg,
            minutes,
            salt,
            model,
            drug,
            age_years,
            medications,
            from,
            to,
            step,
            c_at,
            thresholds,
            ke0_per_min,
            engine,
            no_band,
            list_models,
            json,
            csv,
        } => {
            let k = ketacare_knowledge::Knowledge::load().context("loading the clinical knowledge files")?;
            let text = match regimen {
                Some(p) if p.as_os_str() == "-" => {
                    let mut s = String::new();
                    std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).context("reading the regimen from standard input")?;
                    Some(s)
                }
                Some(p) => Some(std::fs::read_to_string(p).with_context(|| format!("reading the regimen file {}", p.display()))?),
                None => None,
            };
            let args = simulate::SimulateArgs {
                weight_kg: weight_kg.clone(),
                route: route.clone(),
                mg_per_kg: mg_per_kg.clone(),
                dose_mg: dose_mg.clone(),
                minutes: minutes.clone(),
                salt: salt.clone(),
                model: model.clone(),
                drug: drug.clone(),
                age_years: age_years.clone(),
                medications: medications.clone(),
                from: from.clone(),
                to: to.clone(),
                step: step.clone(),
                c_at: c_at.clone(),
                thresholds: thresholds.clone(),
                ke0_per_min: ke0_per_min.clone(),
                engine: engine.clone(),
                no_band: *no_band,
                json: *json,
                csv: *csv,
                list_models: *list_models,
            };
            let (stdout, stderr) = simulate::run(&k, &args, text.as_deref()).map_err(|e| anyhow::anyhow!(e))?;
            if !stderr.is_empty() {
                eprint!("{stderr}");
            }
            out(&stdout);
            Ok(())
        }
        Command::Protocols { json } => {
            let k = ketacare_knowledge::Knowledge::load().context("loading the clinical knowledge files")?;
            out(&calc::protocols(&k, *json));
            Ok(())
        }
        Command::Demo { port, data_dir, mllp_port, no_monitors } => demo(*port, data_dir, *mllp_port, *no_monitors).await,
        Command::Serve { listen } => {
            let mut config = load_config(&cli)?;
            if let Some(l) = listen {
                config.listen = l.clone();
            }
            let server = Server::start(&config, None).await?;
            tracing::info!(addr = %server.addr, backend = server.app.store().backend(), "serving");
            out(&format!("Ketacare is serving on http://{}", server.addr));
            wait_for_shutdown().await;
            tracing::info!("shutting down");
            server.stop().await;
            Ok(())
        }
        Command::Migrate => {
            let config = load_config(&cli)?;
            config.validate()?;
            let store = config.open_store().await?;
            store.migrate().await.context("applying migrations")?;
            out(&format!("Migrations applied; schema version {} on {}", store.schema_version().await?, store.backend()));
            store.close().await;
            Ok(())
        }
        Command::User { command: UserCommand::Create { username, display_name, role } } => {
            let config = load_config(&cli)?;
            config.validate()?;
            let password = match std::env::var("KETACARE_NEW_USER_PASSWORD") {
                Ok(p) => p,
                Err(_) => {
                    if std::io::stdin().is_terminal() {
                        eprint!("Password for {username} (input is shown; pipe it in to hide it): ");
                    }
                    let mut line = String::new();
                    std::io::stdin().lock().read_line(&mut line).context("reading the password from standard input")?;
                    line.trim_end_matches(['\n', '\r']).to_owned()
                }
            };
            let store = config.open_store().await?;
            store.migrate().await?;
            let app = build_app(store, &config, Arc::new(SystemClock))?;
            let input = NewUserInput { username: username.clone(), display_name: display_name.clone(), role: role.clone(), password };
            match app.create_user_as_system(&input).await {
                Ok(u) => {
                    out(&format!("Created {} ({}) with id {}", u.username.as_str(), u.role.label(), u.id));
                    if app.mfa_policy().await?.requires(u.role) {
                        out("Clinic policy requires two-step sign-in for this role: the first sign-in shows a QR code for an authenticator app.");
                    }
                }
                Err(ketacare_app::AppError::Validation(e)) => anyhow::bail!("the account was not created: {e}"),
                Err(e) => return Err(e).context("creating the account"),
            }
            app.store().close().await;
            Ok(())
        }
        Command::User { command: UserCommand::Unlock { username } } => {
            let config = load_config(&cli)?;
            config.validate()?;
            let (store, user) = account(&config, username).await?;
            let ctx = cli_ctx("command line: ketacare user unlock");
            store.unlock_user(&ctx, user.id).await.context("unlocking the account")?;
            out(&format!("Unlocked {} ({} failed logins before)", user.username.as_str(), user.lock.failed));
            store.close().await;
            Ok(())
        }
        Command::User { command: UserCommand::ResetMfa { username } } => {
            let config = load_config(&cli)?;
            config.validate()?;
            let (store, user) = account(&config, username).await?;
            let ctx = cli_ctx("command line: ketacare user reset-mfa");
            match store.remove_totp(&ctx, user.id).await {
                Ok(()) => out(&format!("Two-step sign-in of {} removed and its sessions ended", user.username.as_str())),
                Err(ketacare_db::DbError::NotFound) => {
                    store.close().await;
                    anyhow::bail!("{} has no two-step sign-in to reset", user.username.as_str());
                }
                Err(e) => return Err(e).context("resetting two-step sign-in"),
            }
            store.close().await;
            Ok(())
        }
        Command::Backup { to } => {
            let config = load_config(&cli)?;
            config.validate()?;
            out(&backup::backup(&config, to).await?);
            Ok(())
        }
        Command::Restore { from } => {
            let config = load_config(&cli)?;
            config.validate()?;
            out(&backup::restore(&config, from).await?);
            Ok(())
        }
        Command::Database { command: DatabaseCommand::NewKey } => {
            let mut b = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
            out(ketacare::DatabaseKey::from_bytes(b).hex());
            Ok(())
        }
        Command::Audit { command: AuditCommand::NewKey } => {
            out(&ketacare_app::audit_chain::AuditKey::generate_hex());
            Ok(())
        }
        Command::Audit { command: AuditCommand::Export { to } } => {
            let config = load_config(&cli)?;
            config.validate()?;
            anyhow::ensure!(!to.exists(), "--to {} already exists; give a new file name", to.display());
            let store = config.open_store().await?;
            store.migrate().await?;
            let ctx = cli_ctx("command line: ketacare audit export");
            let mut file = std::io::BufWriter::new(std::fs::File::create(to).with_context(|| format!("creating {}", to.display()))?);
            let (mut written, page) = (0i64, 500i64);
            loop {
                let f = ketacare_db::AuditFilter {
                    ascending: true,
                    page: ketacare_db::Page { limit: page, offset: written },
                    ..Default::default()
                };
                let rows = store.search_audit(&ctx, &f).await.context("reading the audit trail")?;
                for e in &rows {
                    serde_json::to_writer(&mut file, &ketacare_fhir::resources::audit_event(e))?;
                    file.write_all(b"\n")?;
                }
                written += rows.len() as i64;
                if (rows.len() as i64) < page {
                    break;
                }
            }
            file.flush()?;
            store.close().await;
            out(&format!("Wrote {written} AuditEvent resources to {}", to.display()));
            Ok(())
        }
        Command::Audit { command: AuditCommand::PublicKey } => {
            let config = load_config(&cli)?;
            config.validate()?;
            let key = config.audit_key()?.ok_or_else(|| anyhow::anyhow!("no audit_signing_key or audit_signing_key_file is configured"))?;
            out(&key.public_hex());
            Ok(())
        }
        Command::Audit { command: AuditCommand::Verify { public_key, seal, json } } => {
            let config = load_config(&cli)?;
            config.validate()?;
            let trusted = match (public_key, config.audit_key()?) {
                (Some(k), _) => Some(ketacare_app::audit_chain::verifying_key(k).map_err(|e| anyhow::anyhow!("--public-key {e}"))?),
                (None, Some(k)) => Some(ketacare_app::audit_chain::verifying_key(&k.public_hex()).map_err(|e| anyhow::anyhow!("{e}"))?),
                (None, None) => None,
            };
            let store = config.open_store().await?;
            store.migrate().await?;
            let app = build_app(store, &config, Arc::new(SystemClock))?;
            if *seal {
                let o = app.seal_audit().await.context("sealing the audit trail")?;
                if !*json {
                    out(&format!("Sealed {} new entries", o.sealed));
                }
            }
            let r = app.verify_audit(trusted.as_ref()).await.context("verifying the audit trail")?;
            app.store().close().await;
            if *json {
                let findings: Vec<serde_json::Value> =
                    r.findings.iter().map(|f| serde_json::json!({"seq": f.seq(), "kind": f.code(), "message": f.describe()})).collect();
                out(&serde_json::to_string_pretty(&serde_json::json!({
                    "intact": r.intact(),
                    "entries_checked": r.checked,
                    "entries_unsealed": r.unsealed,
                    "checkpoints": r.checkpoints,
                    "checkpoints_signature_verified": r.checkpoints_verified,
                    "signatures_checked": trusted.is_some(),
                    "findings": findings,
                }))?);
            } else {
                out(&format!(
                    "Audit trail: {} entries checked against the chain, {} not yet sealed; {} checkpoints, {} with a verified signature{}",
                    r.checked,
                    r.unsealed,
                    r.checkpoints,
                    r.checkpoints_verified,
                    if trusted.is_none() { " (no public key: signatures not checked)" } else { "" }
                ));
                for f in &r.findings {
                    out(&format!("  #{}: {}", f.seq(), f.describe()));
                }
                out(if r.intact() { "Intact: no entry altered, deleted or inserted." } else { "TAMPERED: see the entries above." });
            }
            if !r.intact() {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::CheckConfig => {
            let config = load_config(&cli)?;
            config.validate()?;
            out(&format!("Configuration: {config:?}"));
            let store = config.open_store().await?;
            out(&format!("Database {} reachable ({}); durability settings verified", redact_url(&config.database_url), store.backend()));
            if let Some(link) = ketacare::database_link(&config.database_url).await? {
                out(&format!("Database connection: {}", link.transport));
                if let Some(w) = link.warning {
                    out(&format!("WARNING: {w}"));
                }
            }
            let applied = store.schema_version().await.unwrap_or(0);
            out(&format!("Applied migrations: {applied}"));
            ketacare_knowledge::Knowledge::load().context("knowledge files")?;
            out("Knowledge files: parsed and consistent");
            if config.mfa_key()?.is_none() {
                out("WARNING: mfa_secret_key is not set: the TOTP secrets of two-step sign-in are stored plain in the database");
            }
            if config.pseudonym_key == Config::default().pseudonym_key {
                out("WARNING: pseudonym_key is the default; set KETACARE_PSEUDONYM_KEY to a long random secret");
            }
            store.close().await;
            Ok(())
        }
    }
}

async fn demo(port: u16, data_dir: &std::path::Path, mllp_port: u16, no_monitors: bool) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let db = data_dir.join("ketacare-demo.db");
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", db.display()));
        if p.exists() {
            std::fs::remove_file(&p).with_context(|| format!("removing the previous demo database {}", p.display()))?;
        }
    }
    // The demo signs audit checkpoints with a key of its own, kept beside its database.
    let key_file = data_dir.join("audit-signing.key");
    if !key_file.exists() {
        std::fs::write(&key_file, ketacare_app::audit_chain::AuditKey::generate_hex())
            .with_context(|| format!("writing {}", key_file.display()))?;
    }
    let config = Config {
        database_url: format!("sqlite://{}", db.display()),
        listen: format!("127.0.0.1:{port}"),
        secure_cookies: false,
        pseudonym_key: "demo".into(),
        mllp_listen: format!("127.0.0.1:{mllp_port}"),
        audit_signing_key_file: key_file.display().to_string(),
        audit_checkpoint_minutes: 1,
        ..Config::default()
    };
    config.validate()?;
    let store = config.open_store().await?;
    store.migrate().await?;
    let app = build_app(store, &config, Arc::new(SystemClock))?;
    let summary = ketacare_demo::seed(&app).await.map_err(|e| anyhow::anyhow!("seeding the demo clinic: {e}"))?;
    let server = Server::serve(app, &config).await?;
    let mllp = server.mllp_addr.ok_or_else(|| anyhow::anyhow!("the demo's MLLP listener did not start"))?;
    if !no_monitors {
        ketacare::monitors::simulate_room(mllp, summary.room.clone());
    }
    out(&format!("Ketacare demo clinic: {} synthetic patients, ready in {:.1} s", summary.patients, started.elapsed().as_secs_f64()));
    out(&format!("Open http://{} and log in as one of:", server.addr));
    for l in &summary.logins {
        out(&format!("  {:<18} username {:<12} password {}", l.role.label(), l.username, l.password));
    }
    out(&format!(
        "Treatment room: {} monitored chairs sending HL7 over MLLP to {mllp}{} (live board: http://{}/board)",
        summary.room.len(),
        if no_monitors { " (simulated monitors off)" } else { "" },
        server.addr
    ));
    out("Synthetic data only. Press Ctrl-C to stop.");
    wait_for_shutdown().await;
    out("Stopping…");
    server.stop().await;
    Ok(())
}

/// Who acts when an operator runs a command on the server (audited as such, for operations).
fn cli_ctx(who: &str) -> ketacare_db::AuditCtx {
    ketacare_db::AuditCtx {
        actor: ketacare_domain::audit::Actor { user_id: None, username: who.into(), role: None, session_ref: None, client_addr: None },
        at: ketacare_app::Clock::now(&SystemClock),
        purpose: "operations",
    }
}
