//! Developer tasks, so that laptops and CI run the same commands.
//!
//! - `cargo xtask test`: the whole test suite (`cargo test --workspace`), then the HL7 v2
//!   interoperability test (`tests/interop`: messages built by the independent Python libraries
//!   hl7apy and python-hl7, sent over MLLP to the debug binary), then a plain statement of
//!   whether the PostgreSQL half and the interop test ran. Set `KETACARE_TEST_POSTGRES_URL` to
//!   run the PostgreSQL half. The interop test runs when `python3` can import its pinned
//!   libraries (`tests/interop/requirements.txt`); without them it is skipped with a note, except
//!   under `CI=true`, where that is a failure.
//! - Then the pharmacokinetic reference check (`tests/pk/reference.py --check`): the reference
//!   curves the engine is tested against are recomputed from their independent 40-digit solver
//!   and compared with the committed file (needs mpmath, `tests/pk/requirements-reference.txt`;
//!   skipped with a note without it, except under `CI=true`).
//! - Then the FHIR R4 validation (`tests/fhir/validate.py`): the debug binary's demo clinic is
//!   read through the FHIR API (metadata, reads, searches, `$everything`, a bulk export) and every
//!   resource validated by the R4 models of fhir.resources and FHIRPath checks of the vital-signs
//!   profile (`tests/fhir/requirements.txt`; skipped with a note without them, except under
//!   `CI=true`).
//! - Then the API fuzzing (`tests/apifuzz/run.py`): schemathesis generates requests from the
//!   demo clinic's own OpenAPI document, as three roles, and checks that no answer is a server
//!   error and every status, content type and body is as documented
//!   (`tests/apifuzz/requirements.txt`; skipped with a note without it, except under `CI=true`).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The interop test and what it needs, relative to the workspace root.
const INTEROP_TEST: &str = "tests/interop/test_mllp_interop.py";
const INTEROP_REQUIREMENTS: &str = "tests/interop/requirements.txt";
/// The PK reference check and what it needs.
const PK_REFERENCE: &str = "tests/pk/reference.py";
const PK_REQUIREMENTS: &str = "tests/pk/requirements-reference.txt";
/// The FHIR validation (fhir.resources R4 models and FHIRPath checks against the demo) and what it needs.
const FHIR_VALIDATION: &str = "tests/fhir/validate.py";
const FHIR_REQUIREMENTS: &str = "tests/fhir/requirements.txt";
/// The API fuzzing (schemathesis against the served OpenAPI document) and what it needs.
const API_FUZZ: &str = "tests/apifuzz/run.py";
const API_FUZZ_REQUIREMENTS: &str = "tests/apifuzz/requirements.txt";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        _ => {
            eprintln!("usage: cargo xtask test [extra cargo test arguments]");
            ExitCode::from(2)
        }
    }
}

fn test(extra: &[String]) -> ExitCode {
    let pg = std::env::var("KETACARE_TEST_POSTGRES_URL").ok().filter(|v| !v.trim().is_empty());
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo).args(["test", "--workspace"]).args(extra).status();
    let ok = matches!(status, Ok(s) if s.success());
    let interop = if ok { interop(&cargo) } else { Interop::NotRun("the Rust suites failed first".into()) };
    let pk = pk_reference();
    let fhir = if ok {
        demo_check(
            &cargo,
            FHIR_VALIDATION,
            FHIR_REQUIREMENTS,
            "import fhirpathpy, fhir.resources as f; assert f.__fhir_version__ == '4.0.1'",
        )
    } else {
        Interop::NotRun("the Rust suites failed first".into())
    };
    let fuzz = if ok {
        demo_check(&cargo, API_FUZZ, API_FUZZ_REQUIREMENTS, "import schemathesis")
    } else {
        Interop::NotRun("the Rust suites failed first".into())
    };
    eprintln!();
    eprintln!("== Ketacare test summary ==");
    eprintln!("SQLite suites: {}", if ok { "passed" } else { "FAILED" });
    match pg {
        Some(_) => {
            eprintln!("PostgreSQL suites: ran against KETACARE_TEST_POSTGRES_URL ({})", if ok { "passed" } else { "see failures above" })
        }
        None => {
            eprintln!("PostgreSQL suites: DID NOT RUN. The storage conformance and HTTP tests ran on SQLite only.");
            eprintln!(
                "  To run them on PostgreSQL too: KETACARE_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres cargo xtask test"
            );
        }
    }
    let interop_ok = match &interop {
        Interop::Passed => {
            eprintln!("HL7 interop test (hl7apy + python-hl7 over MLLP): ran and passed");
            true
        }
        Interop::Failed(why) => {
            eprintln!("HL7 interop test (hl7apy + python-hl7 over MLLP): FAILED ({why})");
            false
        }
        Interop::NotRun(why) => {
            eprintln!("HL7 interop test (hl7apy + python-hl7 over MLLP): DID NOT RUN ({why})");
            true
        }
        Interop::NotInstalled(why) => {
            eprintln!("HL7 interop test (hl7apy + python-hl7 over MLLP): DID NOT RUN ({why})");
            eprintln!("  To run it: python3 -m pip install -r {INTEROP_REQUIREMENTS} && cargo xtask test");
            true
        }
    };
    let pk_ok = report("PK reference check (tests/pk/reference.py --check, mpmath)", &pk, PK_REQUIREMENTS);
    let fhir_ok = report("FHIR R4 validation (tests/fhir/validate.py, fhir.resources + fhirpathpy)", &fhir, FHIR_REQUIREMENTS);
    let fuzz_ok = report("API fuzzing (tests/apifuzz/run.py, schemathesis)", &fuzz, API_FUZZ_REQUIREMENTS);
    if ok && interop_ok && pk_ok && fhir_ok && fuzz_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Prints what became of a Python check; `false` only when it failed.
fn report(label: &str, result: &Interop, requirements: &str) -> bool {
    match result {
        Interop::Passed => {
            eprintln!("{label}: ran and passed");
            true
        }
        Interop::Failed(why) => {
            eprintln!("{label}: FAILED ({why})");
            false
        }
        Interop::NotRun(why) | Interop::NotInstalled(why) => {
            eprintln!("{label}: DID NOT RUN ({why})");
            eprintln!("  To run it: python3 -m pip install -r {requirements} && cargo xtask test");
            true
        }
    }
}

/// What became of the interop test.
enum Interop {
    Passed,
    /// Counts as a failure of `cargo xtask test`.
    Failed(String),
    /// Not run because the Rust suites failed (which already fails the run).
    NotRun(String),
    /// Skipped outside CI because its Python libraries are missing; not a failure.
    NotInstalled(String),
}

/// Builds the debug binary and runs the Python interop test against it, when `python3` can
/// import the test's libraries (under `CI=true` their absence is a failure).
fn interop(cargo: &str) -> Interop {
    let root = workspace_root();
    let ci = std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    let importable = Command::new("python3").args(["-c", "import hl7apy, hl7"]).env("PYTHONDONTWRITEBYTECODE", "1").output();
    let missing = match importable {
        Ok(o) if o.status.success() => None,
        Ok(_) => Some(format!("python3 cannot import hl7apy and hl7 from {INTEROP_REQUIREMENTS}")),
        Err(e) => Some(format!("python3 could not be started: {e}")),
    };
    if let Some(why) = missing {
        if ci {
            eprintln!("error: CI=true but the HL7 interop test cannot run: {why}.");
            eprintln!("  .ci/run installs them with: python3 -m pip install -r {INTEROP_REQUIREMENTS}");
            return Interop::Failed(why);
        }
        return Interop::NotInstalled(why);
    }

    eprintln!();
    eprintln!("== HL7 interop test: cargo build -p ketacare ==");
    match Command::new(cargo).args(["build", "-p", "ketacare"]).status() {
        Ok(s) if s.success() => {}
        _ => return Interop::Failed("cargo build -p ketacare failed".into()),
    }
    let binary = target_dir(&root).join("debug").join(if cfg!(windows) { "ketacare.exe" } else { "ketacare" });
    if !binary.is_file() {
        return Interop::Failed(format!("{} was not built", binary.display()));
    }

    eprintln!("== HL7 interop test: python3 {INTEROP_TEST} (KETACARE_BIN={}) ==", binary.display());
    let status = Command::new("python3")
        .arg(root.join(INTEROP_TEST))
        .current_dir(&root)
        .env("KETACARE_BIN", &binary)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .status();
    match status {
        Ok(s) if s.success() => Interop::Passed,
        Ok(s) => Interop::Failed(format!("python3 {INTEROP_TEST} exited with {s}")),
        Err(e) => Interop::Failed(format!("python3 could not be started: {e}")),
    }
}

/// Recomputes the PK reference curves with their independent solver and compares them with the
/// committed file (under `CI=true` a missing mpmath is a failure).
fn pk_reference() -> Interop {
    let root = workspace_root();
    let ci = std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    let importable = Command::new("python3").args(["-c", "import mpmath"]).env("PYTHONDONTWRITEBYTECODE", "1").output();
    if !matches!(importable, Ok(ref o) if o.status.success()) {
        let why = format!("python3 cannot import mpmath from {PK_REQUIREMENTS}");
        return if ci { Interop::Failed(why) } else { Interop::NotInstalled(why) };
    }
    eprintln!();
    eprintln!("== PK reference check: python3 {PK_REFERENCE} --check ==");
    let status =
        Command::new("python3").arg(root.join(PK_REFERENCE)).arg("--check").current_dir(&root).env("PYTHONDONTWRITEBYTECODE", "1").status();
    match status {
        Ok(s) if s.success() => Interop::Passed,
        Ok(s) => Interop::Failed(format!("python3 {PK_REFERENCE} --check exited with {s}")),
        Err(e) => Interop::Failed(format!("python3 could not be started: {e}")),
    }
}

/// Runs a Python check against the debug binary's demo clinic (`script`, with `KETACARE_BIN`),
/// when `python3` can run `import_check` (the pinned libraries of `requirements`); without them
/// it is skipped with a note, except under `CI=true`, where that is a failure.
fn demo_check(cargo: &str, script: &str, requirements: &str, import_check: &str) -> Interop {
    let root = workspace_root();
    let ci = std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    let importable = Command::new("python3").args(["-c", import_check]).env("PYTHONDONTWRITEBYTECODE", "1").output();
    if !matches!(importable, Ok(ref o) if o.status.success()) {
        let why = format!("python3 cannot import the libraries of {requirements}");
        return if ci { Interop::Failed(why) } else { Interop::NotInstalled(why) };
    }
    match Command::new(cargo).args(["build", "-p", "ketacare"]).status() {
        Ok(s) if s.success() => {}
        Ok(s) => return Interop::Failed(format!("cargo build -p ketacare exited with {s}")),
        Err(e) => return Interop::Failed(format!("cargo could not be started: {e}")),
    }
    let bin = target_dir(&root).join("debug").join("ketacare");
    eprintln!();
    eprintln!("== python3 {script} ==");
    let status = Command::new("python3")
        .arg(root.join(script))
        .current_dir(&root)
        .env("KETACARE_BIN", &bin)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .status();
    match status {
        Ok(s) if s.success() => Interop::Passed,
        Ok(s) => Interop::Failed(format!("python3 {script} exited with {s}")),
        Err(e) => Interop::Failed(format!("python3 could not be started: {e}")),
    }
}

/// The workspace root: the parent of this crate's directory.
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Cargo's target directory: `CARGO_TARGET_DIR` (relative to the current directory, as cargo
/// reads it) when set, else `target` in the workspace root.
fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                std::env::current_dir().map(|cwd| cwd.join(&dir)).unwrap_or(dir)
            }
        }
        None => root.join("target"),
    }
}
