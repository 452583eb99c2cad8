//! `ketacare export` run as the built binary against a temporary SQLite database: the files it
//! writes (de-identified, with the data dictionary), its audit entry, its errors for bad flags,
//! and that nothing is written when it refuses.

use chrono::{TimeZone, Utc};
use ketacare::{build_app, open_store, Config};
use ketacare_app::{App, FixedClock, NewUserInput, Principal, RecordInput};
use ketacare_db::AuditFilter;
use ketacare_domain::ids::PatientId;
use ketacare_domain::patient::DemographicsInput;
use ketacare_domain::record::DiagnosisInput;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

const KEY: &str = "export-cli-test-pseudonym-key";
const PASSWORD: &str = "violet lantern harbour 2026";

/// Patients of the clinic: MRN, family name, given name, date of birth.
const PATIENTS: [(&str, &str, &str, &str); 3] = [
    ("CLI-0001", "Abernethy", "Clementine", "1930-02-11"),
    ("CLI-0002", "Bexley", "Ptolemy", "1975-08-30"),
    ("CLI-0003", "Carrow", "Wilhelmina", "2001-12-01"),
];

fn config(url: &str) -> Config {
    Config { database_url: url.to_owned(), pseudonym_key: KEY.into(), ..Config::default() }
}

async fn app_on(url: &str) -> Arc<App> {
    let store = open_store(url).await.expect("open the database");
    store.migrate().await.expect("migrate");
    let clock = Arc::new(FixedClock::new(Utc.with_ymd_and_hms(2026, 11, 26, 9, 0, 0).unwrap()));
    build_app(store, &config(url), clock).expect("build the application")
}

async fn user(app: &App, username: &str, role: &str) -> Principal {
    let input = NewUserInput { username: username.into(), display_name: username.into(), role: role.into(), password: PASSWORD.into() };
    app.system_principal(app.create_user_as_system(&input).await.expect("create the account"))
}

/// A clinic of three patients with a diagnosis each, and the ids of the patients.
async fn seed(url: &str) -> Vec<PatientId> {
    let app = app_on(url).await;
    let nurse = user(&app, "nils.nurse", "nurse").await;
    let director = user(&app, "dora.director", "medical_director").await;
    user(&app, "rita.researcher", "researcher").await;
    let mut ids = Vec::new();
    for (mrn, family, given, dob) in PATIENTS {
        let input = DemographicsInput {
            mrn: mrn.into(),
            family_name: family.into(),
            given_name: given.into(),
            date_of_birth: dob.into(),
            sex: "female".into(),
            ..Default::default()
        };
        let v = app.register_patient(&nurse, &input).await.expect("register");
        let dx = DiagnosisInput {
            choice: "gad".into(),
            onset: "2019-03-01".into(),
            note: format!("lives next to {family}"),
            ..Default::default()
        };
        app.add_record(&director, v.patient_id, &RecordInput::Diagnosis(dx)).await.expect("diagnosis");
        ids.push(v.patient_id);
    }
    app.store().close().await;
    ids
}

fn ketacare(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ketacare"))
        .args(args)
        .env("KETACARE_DATABASE_URL", url)
        .env("KETACARE_PSEUDONYM_KEY", KEY)
        .output()
        .expect("the binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn rows(path: &Path) -> (Vec<String>, Vec<HashMap<String, String>>) {
    let mut r = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_owned).collect();
    let rows = r.records().map(|x| header.iter().cloned().zip(x.unwrap().iter().map(str::to_owned)).collect()).collect();
    (header, rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_exports_a_deidentified_clinic_and_refuses_bad_flags() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("clinic.db").display());
    let ids = seed(&url).await;

    // Bad flags: each error names the flag and what is accepted; nothing is written.
    let out = dir.path().join("export");
    let out_s = out.to_str().unwrap();
    let r = ketacare(&url, &["export", "--format", "xlsx", "--out", out_s, "--user", "rita.researcher"]);
    assert!(!r.status.success());
    let err = text(&r.stderr);
    assert!(err.contains("--format") && err.contains("csv") && err.contains("omop"), "{err}");
    let r = ketacare(&url, &["export", "--format", "csv", "--out", out_s]);
    assert!(!r.status.success());
    let err = text(&r.stderr);
    assert!(err.contains("--user is needed") && err.contains("dora.director") && err.contains("rita.researcher"), "{err}");
    let r = ketacare(&url, &["export", "--format", "csv", "--out", out_s, "--user", "nils.nurse"]);
    assert!(!r.status.success());
    let err = text(&r.stderr);
    assert!(err.contains("--user") && err.contains("researchers and the medical director"), "{err}");
    let r = ketacare(&url, &["export", "--format", "csv", "--out", out_s, "--user", "nobody.here"]);
    assert!(text(&r.stderr).contains("--user: there is no account nobody.here"), "{}", text(&r.stderr));
    assert!(!out.exists(), "a refused export writes nothing");
    let busy = dir.path().join("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("notes.txt"), "keep").unwrap();
    let r = ketacare(&url, &["export", "--format", "csv", "--out", busy.to_str().unwrap(), "--user", "rita.researcher"]);
    assert!(!r.status.success());
    assert!(text(&r.stderr).contains("--out") && text(&r.stderr).contains("not empty"), "{}", text(&r.stderr));
    assert_eq!(std::fs::read_dir(&busy).unwrap().count(), 1, "the directory is left as it was");

    // The export.
    let r = ketacare(&url, &["export", "--format", "csv", "--out", out_s, "--user", "rita.researcher"]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    let stdout = text(&r.stdout);
    assert!(
        stdout.contains("Exported 3 patients") && stdout.contains("patients.csv: 3 rows") && stdout.contains("as rita.researcher"),
        "{stdout}"
    );
    assert!(!text(&r.stderr).contains("ETA"), "no progress bar when standard error is not a terminal");
    let mut files: Vec<String> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    files.sort();
    assert_eq!(files.len(), 13, "{files:?}");
    for f in &files {
        let body = std::fs::read_to_string(out.join(f)).unwrap();
        for (mrn, family, given, dob) in PATIENTS {
            for secret in [mrn, family, given, dob] {
                assert!(!body.contains(secret), "{f} contains {secret}");
            }
        }
    }
    let (_, patients) = rows(&out.join("patients.csv"));
    let deid = app_on(&url).await.deidentifier();
    let expected: Vec<String> = ids.iter().map(|id| deid.research_id(*id)).collect();
    for p in &patients {
        assert!(expected.contains(&p["research_id"]), "{p:?}");
    }
    let oldest = patients.iter().find(|p| p["research_id"] == expected[0]).unwrap();
    assert_eq!(oldest["age_at_export"], "90+", "born in 1930");
    let (_, diagnoses) = rows(&out.join("diagnoses.csv"));
    assert_eq!(diagnoses.len(), 3);
    let (_, dict) = rows(&out.join("data_dictionary.csv"));
    for f in &files {
        let (header, _) = rows(&out.join(f));
        for c in header {
            assert!(dict.iter().any(|d| &d["table"] == f && d["column"] == c), "{f}.{c} is in the dictionary");
        }
    }

    // OMOP into another directory; the default account is refused while two may export.
    let omop = dir.path().join("omop");
    let r = ketacare(&url, &["export", "--format", "OMOP", "--out", omop.to_str().unwrap(), "--user", "dora.director"]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    let (header, persons) = rows(&omop.join("person.csv"));
    assert_eq!(header[..3], ["person_id", "gender_concept_id", "year_of_birth"]);
    assert_eq!(persons.len(), 3);
    assert!(persons.iter().all(|p| p["gender_concept_id"] == "8532" && expected.contains(&p["person_source_value"])));

    // Each export is in the audit trail: who, the format and the number of patients.
    let app = app_on(&url).await;
    let (director, _) = app.store().find_user_by_username("dora.director").await.unwrap().unwrap();
    let director = app.system_principal(director);
    let f = AuditFilter { entity_type: Some("ResearchExport".into()), ..Default::default() };
    let entries = app.search_audit(&director, &f).await.unwrap();
    let mut seen: Vec<(String, String)> = entries
        .iter()
        .filter(|e| e.event.outcome == ketacare_domain::audit::AuditOutcome::Success)
        .map(|e| (e.event.actor.username.clone(), e.event.detail.clone().unwrap_or_default()))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("dora.director".to_owned(), "format=omop; patients=3; files=8; de-identified".to_owned()),
            ("rita.researcher".to_owned(), "format=csv; patients=3; files=13; de-identified".to_owned()),
        ]
    );
    assert!(
        entries.iter().any(|e| e.event.outcome == ketacare_domain::audit::AuditOutcome::Denied && e.event.actor.username == "nils.nurse"),
        "the nurse's attempt is audited as denied"
    );
    app.store().close().await;
}
