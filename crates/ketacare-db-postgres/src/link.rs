//! How the connection between Ketacare and PostgreSQL is protected.
//!
//! The URL carries libpq's TLS parameters: `sslmode` (`disable`, `allow`, `prefer`, `require`,
//! `verify-full`), `sslrootcert` (the CA that signed the server's certificate) and, for
//! client-certificate login, `sslcert` and `sslkey`. TLS is rustls; with `verify-full` and no
//! `sslrootcert`, the operating system's trusted roots are used. `verify-ca` is refused (see
//! [`LinkPolicy::check`]).
//!
//! [`LinkPolicy`] reads what a URL asks for (no IO), and says when patient data could cross a
//! network unencrypted or reach a server whose certificate nobody checked; [`Transport`] is what
//! an open connection actually uses, read back from `pg_stat_ssl`.

use ketacare_db::{DbError, DbResult};
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use std::net::IpAddr;
use std::str::FromStr;

/// What a PostgreSQL URL asks of the connection's security.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkPolicy {
    /// The host named by the URL (a socket directory for Unix sockets).
    pub host: String,
    /// The server is on this machine: a Unix socket, `localhost` or a loopback address.
    pub local: bool,
    /// The `sslmode`, as libpq spells it.
    pub ssl_mode: &'static str,
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

impl LinkPolicy {
    /// Reads the policy from a `postgres://` URL (and the `PG*` environment variables that
    /// libpq and sqlx also read). A malformed URL or `sslmode` is an error naming it.
    pub fn from_url(url: &str) -> DbResult<Self> {
        let opts = PgConnectOptions::from_str(url).map_err(|e| DbError::UnsafeConfig(format!("database_url: {e}")))?;
        Ok(Self::from_options(&opts))
    }

    /// The policy of parsed options.
    pub fn from_options(opts: &PgConnectOptions) -> Self {
        let (host, local) = match opts.get_socket() {
            Some(dir) => (dir.display().to_string(), true),
            None => {
                let h = opts.get_host().to_owned();
                let bare = h.trim_start_matches('[').trim_end_matches(']');
                let local =
                    h.starts_with('/') || bare.eq_ignore_ascii_case("localhost") || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
                (h, local)
            }
        };
        Self { host, local, ssl_mode: mode_name(opts.get_ssl_mode()) }
    }

    /// Refuses what this build cannot honour: `verify-ca` (the certificate chain without the
    /// host name) fails every connection under the TLS library's current error reporting
    /// (sqlx 0.8 recognises only the older form of a name mismatch), so it is refused at once
    /// with the mode that works, rather than at the first connection with a name mismatch.
    pub fn check(&self) -> DbResult<()> {
        if self.ssl_mode == "verify-ca" {
            return Err(DbError::UnsafeConfig(
                "database_url: sslmode=verify-ca is not supported; use sslmode=verify-full (it checks the certificate against sslrootcert and the host name in database_url against the certificate)".into(),
            ));
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
    let hint = if policy.verifies_server() {
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
        assert!(policy("postgres://u@db.clinic.example/k?sslmode=verify-full").check().is_ok());
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
