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
        url: url.to_owned(),
        username: None,
        password: None,
        token: None,
        timeout: Duration::from_secs(5),
        retry_for: Duration::from_secs(5),
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
        let mut heads = Vec::new();
        for (status, body) in answers {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            let mut head = String::new();
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            let mut body_in = vec![0; length];
            reader.read_exact(&mut body_in).unwrap();
            let mut stream = reader.into_inner();
            write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            heads.push(head);
        }
        heads
    });
    (url, handle)
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
