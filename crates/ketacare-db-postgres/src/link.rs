//! How the connection between Ketacare and PostgreSQL is protected.
//!
//! The URL carries libpq's TLS parameters: `sslmode` (`disable`, `allow`, `prefer`, `require`,
//! `verify-full`), `sslrootcert` (the CA certificates that may sign the server's certificate)
//! and, for client-certificate login, `sslcert` and `sslkey`. TLS is rustls. `verify-full`
//! trusts the `sslrootcert` file and the operating system's trusted CAs (rustls-native-certs,
//! which reads only `SSL_CERT_FILE` and `SSL_CERT_DIR` when they are set, so a service can trust
//! its own CA alone). The same URL is handed to `pg_dump` and `pg_restore` for backups, so only
//! parameters both understand are accepted ([`ACCEPTED_PARAMETERS`]); `verify-ca` is refused
//! (see [`LinkPolicy::check`]).
//!
//! [`LinkPolicy`] reads what a URL asks for and checks the files it names; it says when patient
//! data could cross a network unencrypted or reach a server whose certificate nobody checked.
//! [`Transport`] is what an open connection actually uses, read back from `pg_stat_ssl`.

use ketacare_db::{DbError, DbResult};
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The query parameters of `database_url` that both the server (sqlx) and libpq's `pg_dump`
/// and `pg_restore` understand. Anything else is refused by name, without echoing its value
/// (sqlx would log an unknown parameter's value, a `sslpassword` say, and ignore it).
pub const ACCEPTED_PARAMETERS: [&str; 12] = [
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
];

/// What a PostgreSQL URL asks of the connection's security.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkPolicy {
    /// The host named by the URL (a socket directory for Unix sockets).
    pub host: String,
    /// The server is on this machine: a Unix socket, `localhost` or a loopback address.
    pub local: bool,
    /// The connection goes through a Unix socket (where, as with libpq, TLS is not used).
    pub socket: bool,
    /// The `sslmode`, as libpq spells it.
    pub ssl_mode: &'static str,
    /// `sslrootcert` (or `PGSSLROOTCERT`).
    pub root_cert: Option<PathBuf>,
    /// `sslcert` (or `PGSSLCERT`).
    pub client_cert: Option<PathBuf>,
    /// `sslkey` (or `PGSSLKEY`).
    pub client_key: Option<PathBuf>,
}

/// The libpq spelling of a mode.
fn mode_name(m: PgSslMode) -> &'static str {
    match m {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
    }
}

fn bad(what: impl std::fmt::Display) -> DbError {
    DbError::UnsafeConfig(format!("database_url: {what}"))
}

/// A file setting from the URL's query, else from the environment variable libpq reads.
fn file_setting(url: &url::Url, key: &str, env: &str) -> Option<PathBuf> {
    url.query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| PathBuf::from(v.into_owned()))
        .or_else(|| std::env::var_os(env).filter(|v| !v.is_empty()).map(PathBuf::from))
}

impl LinkPolicy {
    /// Reads the policy from a `postgres://` URL (and the `PG*` environment variables that
    /// libpq and sqlx also read). A malformed URL, an unknown parameter or `sslmode` is an
    /// error naming it.
    pub fn from_url(url: &str) -> DbResult<Self> {
        Ok(Self::parse(url)?.0)
    }

    /// The policy and the connection options of `url`: an IPv6 address loses its brackets
    /// (the TLS library takes the bare address as the server's name), and a Unix socket gets
    /// no TLS, as with libpq.
    pub fn parse(url: &str) -> DbResult<(Self, PgConnectOptions)> {
        let parsed = url::Url::parse(url).map_err(|e| {
            bad(format!("{e} (the accepted form: postgres://user@host:5432/database?sslmode=verify-full&sslrootcert=/path/ca.pem)"))
        })?;
        for (k, _) in parsed.query_pairs() {
            if !ACCEPTED_PARAMETERS.contains(&k.as_ref()) {
                return Err(bad(format!("the parameter {k:?} is not supported (accepted: {})", ACCEPTED_PARAMETERS.join(", "))));
            }
        }
        let mut opts = PgConnectOptions::from_str(url).map_err(bad)?;
        let (host, local, socket) = match opts.get_socket() {
            Some(dir) => (dir.display().to_string(), true, true),
            None => {
                let h = opts.get_host().to_owned();
                let bare = h.trim_start_matches('[').trim_end_matches(']').to_owned();
                let local = bare.eq_ignore_ascii_case("localhost") || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
                if bare != h {
                    opts = opts.host(&bare);
                }
                (bare, local, false)
            }
        };
        if socket {
            opts = opts.ssl_mode(PgSslMode::Disable);
        }
        let policy = Self {
            host,
            local,
            socket,
            ssl_mode: mode_name(opts.get_ssl_mode()),
            root_cert: file_setting(&parsed, "sslrootcert", "PGSSLROOTCERT"),
            client_cert: file_setting(&parsed, "sslcert", "PGSSLCERT"),
            client_key: file_setting(&parsed, "sslkey", "PGSSLKEY"),
        };
        Ok((policy, opts))
    }

    /// Refuses, before any connection, what would fail later or in a backup:
    /// - `verify-ca` (the certificate chain without the host name): sqlx 0.8 recognises only
    ///   the older form of a name mismatch, so every connection would fail; `verify-full` works;
    /// - `verify-full` without `sslrootcert`: `pg_dump` would look for `~/.postgresql/root.crt`
    ///   and the backup would fail while the server runs;
    /// - a certificate or key file that cannot be read, `sslcert` without `sslkey` (or the
    ///   reverse), and a key that others can read (libpq, so `pg_dump`, refuses it).
    ///
    /// Reads the named files' metadata; each error names its setting.
    pub fn check(&self) -> DbResult<()> {
        if self.socket {
            return Ok(());
        }
        if self.ssl_mode == "verify-ca" {
            return Err(bad(
                "sslmode=verify-ca is not supported; use sslmode=verify-full (it checks the certificate against sslrootcert and the host name in database_url against the certificate)",
            ));
        }
        if self.ssl_mode == "verify-full" && self.root_cert.is_none() {
            return Err(bad(
                "sslmode=verify-full needs sslrootcert=<file of the CA certificates that may sign the server's certificate> (for a publicly signed server, the system bundle, such as /etc/ssl/certs/ca-certificates.crt)",
            ));
        }
        if self.client_cert.is_some() != self.client_key.is_some() {
            return Err(bad("sslcert and sslkey go together (the client certificate and its private key)"));
        }
        for (name, path) in [("sslrootcert", &self.root_cert), ("sslcert", &self.client_cert), ("sslkey", &self.client_key)] {
            if let Some(path) = path {
                readable(name, path)?;
            }
        }
        #[cfg(unix)]
        if let Some(key) = &self.client_key {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(key).map_err(|e| bad(format!("sslkey {}: {e}", key.display())))?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(bad(format!(
                    "sslkey {} can be read by others (mode {:o}); make it readable by its owner only (chmod 600), as pg_dump requires",
                    key.display(),
                    mode & 0o777
                )));
            }
        }
        Ok(())
    }

    /// Whether the server's certificate is checked against a trusted root.
    pub fn verifies_server(&self) -> bool {
        matches!(self.ssl_mode, "verify-ca" | "verify-full")
    }

    /// A warning for the operator when a server on another machine is reached without a
    /// verified certificate; none for a local server or a verified one.
    pub fn warning(&self) -> Option<String> {
        if self.local || self.verifies_server() {
            return None;
        }
        let risk = if self.ssl_mode == "require" {
            "is encrypted, but the server's certificate is not checked (sslmode=require), so another machine could pose as the database"
        } else {
            "may travel unencrypted"
        };
        Some(format!(
            "the connection to PostgreSQL on {} {risk}: add sslmode=verify-full and sslrootcert=<the CA that signed the server's certificate> to database_url",
            self.host
        ))
    }
}

/// What an open connection uses, from `pg_stat_ssl`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transport {
    /// The connection is encrypted with TLS.
    pub encrypted: bool,
    /// The TLS version (`TLSv1.3`), when encrypted.
    pub protocol: Option<String>,
    /// The cipher suite, when encrypted.
    pub cipher: Option<String>,
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.encrypted, &self.protocol, &self.cipher) {
            (true, Some(p), Some(c)) => write!(f, "TLS ({p}, {c})"),
            (true, _, _) => f.write_str("TLS"),
            (false, _, _) => f.write_str("unencrypted"),
        }
    }
}

/// A file named by a setting must open for reading.
fn readable(name: &str, path: &Path) -> DbResult<()> {
    std::fs::File::open(path).map(drop).map_err(|e| bad(format!("{name} {}: {e}", path.display())))
}

/// Whether a connection error is the TLS handshake failing: sqlx reports a bad configuration
/// as `Tls`, and a certificate rustls refuses as invalid data on the socket (the handshake
/// runs inside the stream), which a connection that asked for no TLS never sees.
pub(crate) fn is_tls_failure(policy: &LinkPolicy, e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Tls(_) => true,
        sqlx::Error::Io(io) => policy.ssl_mode != "disable" && io.kind() == std::io::ErrorKind::InvalidData,
        _ => false,
    }
}

/// Explains a failed TLS handshake with the setting to look at.
pub(crate) fn tls_failure(policy: &LinkPolicy, e: &sqlx::Error) -> DbError {
    let hint = if e.to_string().contains("does not support TLS") {
        "the server does not offer TLS: turn ssl on in its postgresql.conf (with ssl_cert_file and ssl_key_file), or lower the sslmode in database_url"
    } else if policy.verifies_server() {
        "check that sslrootcert names the CA that signed the server's certificate (and, for verify-full, that the host in database_url is a name the certificate carries)"
    } else {
        "check the server's TLS settings (ssl = on, ssl_cert_file, ssl_key_file), or the sslmode in database_url"
    };
    DbError::Tls(format!("TLS to PostgreSQL on {} (sslmode={}) failed: {e}; {hint}", policy.host, policy.ssl_mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(url: &str) -> LinkPolicy {
        LinkPolicy::from_url(url).unwrap()
    }

    #[test]
    fn a_local_server_needs_no_warning_whatever_the_mode() {
        for url in [
            "postgres://u@localhost/db",
            "postgres://u@127.0.0.1:5432/db?sslmode=disable",
            "postgres://u@[::1]/db",
            "postgres://u@db.clinic.example/db?host=/var/run/postgresql",
        ] {
            let p = policy(url);
            assert!(p.local, "{url} is local");
            assert_eq!(p.warning(), None, "{url}");
        }
    }

    #[test]
    fn a_remote_server_without_a_verified_certificate_is_warned_about() {
        let p = policy("postgres://u:secret@db.clinic.example/ketacare");
        assert!(!p.local);
        assert_eq!(p.ssl_mode, "prefer", "sqlx's default, as libpq's");
        let w = p.warning().unwrap();
        assert!(w.contains("db.clinic.example") && w.contains("may travel unencrypted") && w.contains("sslmode=verify-full"), "{w}");
        assert!(!w.contains("secret"), "the password never appears: {w}");

        let w = policy("postgres://u@10.0.0.5/k?sslmode=require").warning().unwrap();
        assert!(w.contains("not checked (sslmode=require)"), "{w}");
        assert!(policy("postgres://u@10.0.0.5/k?sslmode=disable").warning().unwrap().contains("unencrypted"));
    }

    #[test]
    fn a_verified_remote_server_is_not_warned_about() {
        for mode in ["verify-ca", "verify-full"] {
            let p = policy(&format!("postgres://u@db.clinic.example/k?sslmode={mode}&sslrootcert=/etc/ketacare/db-ca.pem"));
            assert_eq!(p.ssl_mode, mode);
            assert!(p.verifies_server());
            assert_eq!(p.warning(), None);
        }
    }

    #[test]
    fn verify_ca_is_refused_with_the_mode_that_works() {
        let e = policy("postgres://u@db.clinic.example/k?sslmode=verify-ca").check().unwrap_err().to_string();
        assert!(e.contains("database_url") && e.contains("verify-ca") && e.contains("use sslmode=verify-full"), "{e}");
        assert!(!policy("postgres://u@db.clinic.example/k?sslmode=verify-full").check().unwrap_err().to_string().contains("verify-ca"));
    }

    #[test]
    fn an_unknown_parameter_is_refused_by_name_without_its_value() {
        for url in
            ["postgres://u@db/k?sslpassword=hunter2", "postgres://u@db/k?ssl-mode=require", "postgres://u@db/k?statement-cache-capacity=5"]
        {
            let e = LinkPolicy::from_url(url).unwrap_err().to_string();
            assert!(e.contains("database_url") && e.contains("is not supported") && e.contains("accepted: sslmode"), "{e}");
            assert!(!e.contains("hunter2"), "the value is never repeated: {e}");
        }
    }

    #[test]
    fn an_ipv6_address_loses_its_brackets_and_a_socket_gets_no_tls() {
        let (p, opts) = LinkPolicy::parse("postgres://u@[::1]:5432/k?sslmode=require").unwrap();
        assert_eq!(opts.get_host(), "::1", "the TLS library takes the bare address as the server name");
        assert!(p.local);
        let (p, opts) = LinkPolicy::parse("postgres://u@localhost/k?host=/var/run/postgresql&sslmode=require").unwrap();
        assert!(p.socket && p.local);
        assert_eq!(mode_name(opts.get_ssl_mode()), "disable", "as libpq, no TLS over a Unix socket");
        assert!(p.check().is_ok());
    }

    #[test]
    fn the_files_a_url_names_are_checked_before_connecting() {
        let dir = std::env::temp_dir().join(format!("ketacare-link-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").unwrap();
        let check =
            |q: String| LinkPolicy::from_url(&format!("postgres://u@db.clinic.example/k?{q}")).unwrap().check().map_err(|e| e.to_string());

        let e = check("sslmode=verify-full".into()).unwrap_err();
        assert!(e.contains("verify-full needs sslrootcert"), "{e}");
        assert!(check(format!("sslmode=verify-full&sslrootcert={}", ca.display())).is_ok());
        let e = check("sslmode=verify-full&sslrootcert=/nonexistent/ca.pem".into()).unwrap_err();
        assert!(e.contains("sslrootcert /nonexistent/ca.pem"), "the setting and the file: {e}");
        let e = check(format!("sslmode=require&sslcert={}", ca.display())).unwrap_err();
        assert!(e.contains("sslcert and sslkey go together"), "{e}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let key = dir.join("client.key");
            std::fs::write(&key, "key").unwrap();
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
            let q = format!("sslmode=require&sslcert={}&sslkey={}", ca.display(), key.display());
            let e = check(q.clone()).unwrap_err();
            assert!(e.contains("sslkey") && e.contains("chmod 600"), "{e}");
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
            assert!(check(q).is_ok());
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_misspelt_mode_is_refused_by_name() {
        let e = LinkPolicy::from_url("postgres://u@db.clinic.example/k?sslmode=verify").unwrap_err().to_string();
        assert!(e.contains("database_url"), "{e}");
    }

    #[test]
    fn the_transport_reads_as_an_operator_would_say_it() {
        let t = Transport { encrypted: true, protocol: Some("TLSv1.3".into()), cipher: Some("TLS_AES_256_GCM_SHA384".into()) };
        assert_eq!(t.to_string(), "TLS (TLSv1.3, TLS_AES_256_GCM_SHA384)");
        assert_eq!(Transport { encrypted: false, protocol: None, cipher: None }.to_string(), "unencrypted");
    }
}
