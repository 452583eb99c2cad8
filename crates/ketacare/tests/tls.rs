//! HTTPS served by Ketacare itself (`tls_cert_file`, `tls_key_file`): a client that trusts the
//! certificate gets the pages with HSTS; plain HTTP and clients that do not trust it get
//! nothing; files that are not a certificate and key stop the server from starting, naming
//! the setting. The test certificate is for `localhost`, issued by a test CA (tests/fixtures/tls;
//! the CA's key was thrown away).

#![allow(deprecated, reason = "rustls' ring provider, as the server uses")]

use ketacare::{Config, Server};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/tls/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn client(trust: bool) -> tokio_rustls::TlsConnector {
    let mut roots = RootCertStore::empty();
    if trust {
        for c in CertificateDer::pem_file_iter(fixture("ca.pem")).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
    }
    let config = ClientConfig::builder_with_provider(Arc::new(tokio_rustls::rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

const REQUEST: &[u8] = b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

async fn https_get(addr: std::net::SocketAddr, trust: bool) -> Result<String, String> {
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let mut tls = client(trust).connect(ServerName::try_from("localhost").unwrap(), tcp).await.map_err(|e| e.to_string())?;
    tls.write_all(REQUEST).await.map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_configured_certificate_files() {
    let db = ketacare_db_tests::fresh_sqlite().await;
    let config = Config {
        database_url: db.url.clone(),
        listen: "127.0.0.1:0".into(),
        tls_cert_file: fixture("cert.pem"),
        tls_key_file: fixture("key.pem"),
        ..Config::default()
    };
    config.validate().expect("valid");
    let server = Server::start(&config, None).await.expect("starts with TLS");

    let page = https_get(server.addr, true).await.expect("a trusting client connects");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.to_ascii_lowercase().contains("strict-transport-security: max-age=31536000"), "HSTS under TLS: {page}");

    let refused = https_get(server.addr, false).await;
    assert!(refused.is_err(), "a client that does not trust the certificate gets no connection: {refused:?}");

    // Plain HTTP to the HTTPS port: no page.
    let mut plain = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    plain.write_all(REQUEST).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), plain.read_to_end(&mut out)).await;
    assert!(!String::from_utf8_lossy(&out).contains("200 OK"), "no page over plain HTTP");

    // The server keeps serving after those failed handshakes.
    assert!(https_get(server.addr, true).await.unwrap().starts_with("HTTP/1.1 200"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_certificate_settings_are_named() {
    let db = ketacare_db_tests::fresh_sqlite().await;
    let base = Config { database_url: db.url.clone(), listen: "127.0.0.1:0".into(), ..Config::default() };
    let only_cert = Config { tls_cert_file: fixture("cert.pem"), ..base.clone() };
    assert!(only_cert.validate().unwrap_err().to_string().contains("set both tls_cert_file and tls_key_file"));
    let swapped = Config { tls_cert_file: fixture("cert.pem"), tls_key_file: fixture("cert.pem"), ..base.clone() };
    let e = format!("{:#}", Server::start(&swapped, None).await.err().expect("refused"));
    assert!(e.contains("tls_key_file"), "{e}");
    let missing = Config { tls_cert_file: fixture("nope.pem"), tls_key_file: fixture("key.pem"), ..base };
    let e = format!("{:#}", Server::start(&missing, None).await.err().expect("refused"));
    assert!(e.contains("tls_cert_file") && e.contains("nope.pem"), "{e}");
}
