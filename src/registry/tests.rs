//! The client against the in-memory registry (Confluent's API and Avro
//! compatibility rules), and against a scripted HTTP peer for what the
//! registry cannot show: credentials sent, transient failures retried.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use super::dev::DevRegistry;
use super::*;

#[test]
fn basic_credentials_are_as_rfc_7617_shows() {
    assert_eq!(
        basic_credentials("Aladdin", "open sesame"),
        "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
    );
}

#[test]
fn subjects_are_encoded_for_paths() {
    assert_eq!(
        encode_path("ledger-cart-shop.cart.AddedToCart"),
        "ledger-cart-shop.cart.AddedToCart"
    );
    assert_eq!(encode_path("a b/c"), "a%20b%2Fc");
    assert_eq!(encode_path("é~"), "%C3%A9~");
}

const V1: &str =
    r#"{"type":"record","name":"Thing","namespace":"t","fields":[{"name":"a","type":"string"}]}"#;
/// V1 plus an optional field: readable both ways.
const V2: &str = r#"{"type":"record","name":"Thing","namespace":"t","fields":[{"name":"a","type":"string"},{"name":"b","type":["null","long"],"default":null}]}"#;
/// V1 plus a required field: the new schema cannot read old data.
const BREAKING: &str = r#"{"type":"record","name":"Thing","namespace":"t","fields":[{"name":"a","type":"string"},{"name":"c","type":"long"}]}"#;

fn config(url: &str) -> RegistryConfig {
    RegistryConfig {
        timeout: Duration::from_secs(5),
        retry_for: Duration::from_secs(5),
        ..RegistryConfig::at(url)
    }
}

fn dev() -> (DevRegistry, Registry) {
    let dev = DevRegistry::start("127.0.0.1:0").unwrap();
    let client = Registry::new(&config(&dev.url()));
    (dev, client)
}

#[test]
fn registering_is_idempotent_and_ids_are_global() {
    let (_dev, registry) = dev();
    let id = registry.register("ledger-t.Thing", V1).unwrap();
    assert_eq!(registry.register("ledger-t.Thing", V1).unwrap(), id);
    // The same schema under another subject keeps its id.
    assert_eq!(registry.register("other-t.Thing", V1).unwrap(), id);
    assert_eq!(registry.schema_by_id(id).unwrap().as_deref(), Some(V1));
    assert_eq!(registry.schema_by_id(999).unwrap(), None);
}

#[test]
fn compatibility_follows_avro_resolution_rules() {
    let (_dev, registry) = dev();
    let subject = "ledger-t.Thing";
    assert_eq!(
        registry.check_compatibility(subject, V1).unwrap(),
        Compatibility::NewSubject
    );
    let v1 = registry.register(subject, V1).unwrap();
    assert_eq!(
        registry.check_compatibility(subject, V2).unwrap(),
        Compatibility::Compatible
    );
    let Compatibility::Incompatible(reasons) =
        registry.check_compatibility(subject, BREAKING).unwrap()
    else {
        panic!("a new required field passed")
    };
    assert!(
        reasons[0].contains("Field 'c' in reader schema must have a default value"),
        "{reasons:?}"
    );
    // Registering it anyway is refused with Confluent's 409.
    match registry.register(subject, BREAKING) {
        Err(RegistryError::Refused { status, code, .. }) => assert_eq!((status, code), (409, 409)),
        other => panic!("{other:?}"),
    }
    let v2 = registry.register(subject, V2).unwrap();
    assert_ne!(v1, v2);
}

/// One scripted HTTP exchange per answer: returns each request's head.
fn scripted_peer(
    answers: &[(u16, &'static str)],
) -> (String, std::thread::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let answers = answers.to_vec();
    let handle = std::thread::spawn(move || {
        answers
            .into_iter()
            .map(|(status, body)| answer(listener.accept().unwrap().0, status, body).unwrap())
            .collect()
    });
    (url, handle)
}

/// Reads one request from `stream` and answers it; returns its head.
fn answer(stream: impl Read + Write, status: u16, body: &str) -> std::io::Result<String> {
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap();
        }
        if line == "\r\n" || line.is_empty() {
            break;
        }
        head.push_str(&line);
    }
    let mut body_in = vec![0; length];
    reader.read_exact(&mut body_in)?;
    let mut stream = reader.into_inner();
    write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()?;
    Ok(head)
}

#[test]
fn credentials_are_sent_as_configured() {
    let (url, peer) = scripted_peer(&[(200, r#"{"id": 7}"#), (200, r#"{"id": 7}"#)]);
    let basic = RegistryConfig {
        username: Some("Aladdin".into()),
        password: Some("open sesame".into()),
        ..config(&url)
    };
    assert_eq!(Registry::new(&basic).register("s", V1).unwrap(), 7);
    let bearer = RegistryConfig {
        token: Some("t0ken".into()),
        ..config(&url)
    };
    assert_eq!(Registry::new(&bearer).register("s", V1).unwrap(), 7);
    let heads = peer.join().unwrap();
    assert!(
        heads[0].starts_with("POST /subjects/s/versions"),
        "{}",
        heads[0]
    );
    assert!(
        heads[0].contains("authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")
            || heads[0].contains("Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
        "{}",
        heads[0]
    );
    assert!(
        heads[1]
            .to_ascii_lowercase()
            .contains("authorization: bearer t0ken"),
        "{}",
        heads[1]
    );
}

#[test]
fn transient_failures_are_retried_and_refusals_are_not() {
    let (url, peer) = scripted_peer(&[
        (
            503,
            r#"{"error_code": 50003, "message": "forwarding failed"}"#,
        ),
        (429, "slow down"),
        (200, r#"{"id": 3}"#),
        (401, r#"{"error_code": 401, "message": "Unauthorized"}"#),
    ]);
    let registry = Registry::new(&config(&url));
    assert_eq!(registry.register("s", V1).unwrap(), 3);
    match registry.register("s", V1) {
        Err(RegistryError::Refused {
            status, message, ..
        }) => assert_eq!((status, message.as_str()), (401, "Unauthorized")),
        other => panic!("{other:?}"),
    }
    assert_eq!(peer.join().unwrap().len(), 4);
}

#[test]
fn an_unreachable_registry_is_given_up_after_retry_for() {
    // A port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let registry = Registry::new(&RegistryConfig {
        retry_for: Duration::from_millis(800),
        ..config(&format!("http://127.0.0.1:{port}"))
    });
    let started = std::time::Instant::now();
    let error = registry.schema_by_id(1).unwrap_err();
    assert!(
        matches!(error, RegistryError::Unavailable { .. }),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A private CA, and the registry's certificate for 127.0.0.1 from it.
struct Pki {
    dir: tempfile::TempDir,
    ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    server: rcgen::Certificate,
    server_key: rcgen::KeyPair,
}

impl Pki {
    fn new() -> Self {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca =
            rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
                .unwrap();
        let server_key = rcgen::KeyPair::generate().unwrap();
        let server = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&server_key, &ca)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        Self {
            dir,
            ca,
            server,
            server_key,
        }
    }

    /// A client certificate from the CA, written as client.pem/client.key.
    fn client(&self) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["recast-cart".to_owned()])
            .unwrap()
            .signed_by(&key, &self.ca)
            .unwrap();
        std::fs::write(self.dir.path().join("client.pem"), cert.pem()).unwrap();
        std::fs::write(self.dir.path().join("client.key"), key.serialize_pem()).unwrap();
    }

    /// A registry over TLS answering `{"id": 7}` to `connections`
    /// connections (demanding a client certificate from the CA when
    /// `mutual`); returns its URL and, per connection, whether it was served.
    fn serve(
        &self,
        connections: usize,
        mutual: bool,
    ) -> (String, std::thread::JoinHandle<Vec<bool>>) {
        use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if mutual {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(self.ca.der().clone()).unwrap();
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key.serialize_der()));
        let config = std::sync::Arc::new(
            builder
                .with_single_cert(vec![self.server.der().clone()], key)
                .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            (0..connections)
                .map(|_| {
                    let (tcp, _) = listener.accept().unwrap();
                    let tls = rustls::ServerConnection::new(config.clone()).unwrap();
                    answer(rustls::StreamOwned::new(tls, tcp), 200, r#"{"id":7}"#).is_ok()
                })
                .collect()
        });
        (url, handle)
    }

    /// `[registry]` at `url` with the given keys, read as recast reads it.
    fn config(&self, url: &str, keys: &str) -> Result<RegistryConfig, crate::ConfigError> {
        let text = crate::EMBEDDED_DEFAULT
            .replace(
                "url = \"http://127.0.0.1:8081\"",
                &format!("url = \"{url}\"\n{keys}"),
            )
            .replace("retry_for = \"60s\"", "retry_for = \"300ms\"");
        let path = self.dir.path().join("recast.toml");
        std::fs::write(&path, text).unwrap();
        // The shipped files, wherever this file is.
        let repo = env!("CARGO_MANIFEST_DIR");
        let env = [
            (
                "RECAST_MAPPING__TRANSFORMS",
                format!(
                    r#"["{repo}/transforms/cart.toml", "{repo}/transforms/cart-amounts.rhai"]"#
                ),
            ),
            (
                "RECAST_LEDGER__SCHEMAS",
                format!(r#"["{repo}/schemas/header.avsc", "{repo}/schemas/cart"]"#),
            ),
        ]
        .map(|(k, v)| (k.to_owned(), v));
        crate::Config::load(Some(&path), env).map(|c| c.raw.registry.unwrap())
    }
}

#[test]
fn a_registry_under_a_private_ca_is_verified_by_ca_file() {
    let pki = Pki::new();
    let (url, served) = pki.serve(2, false);
    let trusting = pki.config(&url, "ca_file = \"ca.pem\"").unwrap();
    assert_eq!(Registry::new(&trusting).register("s", V1).unwrap(), 7);
    // Without it, the platform's roots do not know the CA.
    let platform = pki.config(&url, "").unwrap();
    let refused = Registry::new(&platform).register("s", V1).unwrap_err();
    assert!(
        matches!(&refused, RegistryError::Tls { message, .. } if message.contains("UnknownIssuer")),
        "{refused}"
    );
    assert_eq!(served.join().unwrap(), [true, false]);
}

#[test]
fn a_registry_demanding_a_client_certificate_gets_certificate_file() {
    let pki = Pki::new();
    pki.client();
    let (url, served) = pki.serve(2, true);
    let with_cert = pki
        .config(
            &url,
            "ca_file = \"ca.pem\"\ncertificate_file = \"client.pem\"\nkey_file = \"client.key\"",
        )
        .unwrap();
    assert_eq!(Registry::new(&with_cert).register("s", V1).unwrap(), 7);
    let without = pki.config(&url, "ca_file = \"ca.pem\"").unwrap();
    // Under TLS 1.3 the server refuses the missing certificate after the
    // client's half of the handshake: the client sees a closed connection,
    // which it retries like any other.
    assert!(Registry::new(&without).register("s", V1).is_err());
    assert_eq!(served.join().unwrap(), [true, false]);
}

#[test]
fn bad_tls_files_are_configuration_errors_naming_the_key() {
    let pki = Pki::new();
    pki.client();
    std::fs::write(pki.dir.path().join("empty.pem"), "no PEM here").unwrap();
    for (keys, key, says) in [
        (
            "ca_file = \"missing.pem\"",
            "registry.ca_file",
            "missing.pem",
        ),
        (
            "ca_file = \"empty.pem\"",
            "registry.ca_file",
            "no PEM certificate",
        ),
        (
            "certificate_file = \"client.pem\"",
            "registry.key_file",
            "needs its key_file",
        ),
        (
            "certificate_file = \"client.pem\"\nkey_file = \"client.pem\"",
            "registry.key_file",
            "no PEM private key",
        ),
    ] {
        let error = pki
            .config("https://127.0.0.1:1", keys)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(key) && error.contains(says),
            "{keys}: {error}"
        );
    }
}
