//! No patient data in logs: the demo clinic runs with every log level on (`KETACARE_LOG=trace`,
//! the database driver's statements included), staff use it through the API (lists, charts,
//! searches by name, a registration, refused input that contains a name, a weight in pounds,
//! the research views, the FHIR API, a PDF report), and then the log is searched for every
//! patient's name, MRN and date of birth. The log must not be empty (the test would prove
//! nothing) and must contain none of them.

#![cfg(unix)]

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "demo-clinic-2026";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Client {
    c: reqwest::Client,
    base: String,
    cookie: String,
}

impl Client {
    async fn login(base: &str, username: &str) -> Client {
        let c = reqwest::Client::new();
        let r = c.post(format!("{base}/api/login")).json(&json!({"username": username, "password": PASSWORD})).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "login {username}");
        let cookie = r.headers().get("set-cookie").unwrap().to_str().unwrap().split(';').next().unwrap().to_owned();
        Client { c, base: base.to_owned(), cookie }
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = self.c.get(format!("{}{path}", self.base)).header("cookie", &self.cookie).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    }

    async fn post(&self, path: &str, body: Value) -> (u16, String) {
        let r = self.c.post(format!("{}{path}", self.base)).header("cookie", &self.cookie).json(&body).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_of_a_busy_clinic_holds_no_patient_data() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("ketacare.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let (port, mllp) = (free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_ketacare"))
        .args(["demo", "--port", &port.to_string(), "--mllp-port", &mllp.to_string(), "--no-monitors", "--data-dir"])
        .arg(dir.path().join("data"))
        .env_remove("KETACARE_CONFIG")
        .env("KETACARE_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("start the demo");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let start = Instant::now();
    let mut line = String::new();
    loop {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "the demo stopped before it was ready");
        if line.contains("Open http://") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(300), "the demo did not start");
    }
    std::thread::spawn(move || for _ in out.lines() {});
    let base = format!("http://127.0.0.1:{port}");

    // Every patient of the clinic, with what identifies them.
    let nurse = Client::login(&base, "nurse").await;
    let (_, list) = nurse.get("/api/patients?limit=500").await;
    let patients: Vec<Value> = serde_json::from_str(&list).unwrap();
    assert!(patients.len() >= 90, "the demo's patients: {}", patients.len());
    let mut secrets: Vec<String> = Vec::new();
    for p in &patients {
        let d = &p["demographics"];
        for k in ["family_name", "given_name", "mrn", "date_of_birth"] {
            if let Some(v) = d[k].as_str().filter(|v| v.len() >= 4) {
                secrets.push(v.to_owned());
            }
        }
    }

    // A morning's work.
    for p in patients.iter().take(25) {
        let id = p["id"].as_str().unwrap();
        assert_eq!(nurse.get(&format!("/api/patients/{id}")).await.0, 200);
        nurse.get(&format!("/patients/{id}")).await;
        nurse.get(&format!("/patients/{id}/outcomes")).await;
        nurse.get(&format!("/fhir/Patient/{id}/$everything")).await;
    }
    for p in patients.iter().take(5) {
        let d = &p["demographics"];
        let family = d["family_name"].as_str().unwrap();
        nurse.get(&format!("/api/patients?q={family}")).await;
        nurse.get(&format!("/patients?q={family}")).await;
        nurse.get(&format!("/fhir/Patient?name={family}")).await;
    }
    let first = patients[0]["id"].as_str().unwrap();
    // Refused input that carries a name, a weight in pounds, a registration.
    let (s, _) = nurse
        .post(
            "/api/patients",
            json!({"mrn": "", "family_name": "Zebedee-Quintanilla", "given_name": "", "date_of_birth": "31/12/1980", "sex": "x"}),
        )
        .await;
    assert_eq!(s, 422);
    let (s, _) = nurse.post(&format!("/api/patients/{first}/weights"), json!({"value": 176.4})).await;
    assert_eq!(s, 422, "pounds are questioned");
    let (s, body) = nurse
        .post("/api/patients", json!({"mrn": "", "family_name": "Zebedee-Quintanilla", "given_name": "Philomena", "date_of_birth": "1979-03-14", "sex": "female"}))
        .await;
    assert_eq!(s, 201, "{body}");
    let created: Value = serde_json::from_str(&body).unwrap();
    secrets.extend(["Zebedee-Quintanilla".to_owned(), "Philomena".to_owned(), "1979-03-14".to_owned()]);
    secrets.push(created["demographics"]["mrn"].as_str().unwrap().to_owned());
    let (s, _) = nurse.post("/api/patients", json!({"mrn": created["demographics"]["mrn"], "family_name": "Zebedee-Quintanilla", "given_name": "Philomena", "date_of_birth": "1979-03-14", "sex": "female"})).await;
    assert_eq!(s, 422, "a taken MRN");
    let prescriber = Client::login(&base, "prescriber").await;
    let (s, _) = prescriber.get(&format!("/patients/{first}/report.pdf")).await;
    assert_eq!(s, 200, "the progress report");
    let researcher = Client::login(&base, "researcher").await;
    researcher.get("/research").await;
    researcher.get("/research/outcomes").await;
    assert_eq!(researcher.get(&format!("/api/patients/{first}")).await.0, 403);

    // Stop cleanly (SIGTERM), so everything is flushed.
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the demo did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = std::fs::read_to_string(&log_path).unwrap();
    let lines = text.lines().count();
    assert!(lines > 1000 && text.contains("/api/patients"), "the log recorded the requests ({lines} lines)");
    let leaks: Vec<&String> = secrets.iter().filter(|s| text.contains(s.as_str())).collect();
    assert!(leaks.is_empty(), "patient data in the log: {leaks:?}");
    eprintln!(
        "log: {lines} lines, {} bytes; searched for {} names, MRNs and dates of birth of {} patients: none found",
        text.len(),
        secrets.len(),
        patients.len() + 1
    );
}
