//! Developer tasks, so that laptops and CI run the same commands.
//!
//! - `cargo xtask test`: the whole test suite (`cargo test --workspace`), then a plain statement
//!   of whether the PostgreSQL half ran. Set `KETACARE_TEST_POSTGRES_URL` to run it.

use std::process::{Command, ExitCode};

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
    let status = Command::new(cargo).args(["test", "--workspace"]).args(extra).status();
    let ok = matches!(status, Ok(s) if s.success());
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
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
