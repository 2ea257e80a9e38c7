//! Shared harness of the integration tests: a real Kafka-protocol broker on
//! loopback (started once per test binary, stopped when the binary exits),
//! an in-process schema registry, uniquely named topics and groups, the
//! `recast` binary as a child process, and the ledger read back through the
//! log-level committed reader and decoded through the registry.
#![allow(dead_code)] // each test binary uses its own part of the harness

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;

use recast::tools::legacy_file::LegacyLine;
use recast::tools::log_reader::{TopicLog, read_committed};

pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The broker of this test binary: `RECAST_TEST_BROKERS` if set, else a
/// broker this process starts.
pub fn brokers() -> &'static str {
    static BROKER: OnceLock<(String, Option<Child>)> = OnceLock::new();
    &BROKER
        .get_or_init(|| {
            if let Ok(brokers) = std::env::var("RECAST_TEST_BROKERS") {
                return (brokers, None);
            }
            let (address, watchdog) = start_broker();
            (address, Some(watchdog))
        })
        .0
}

/// The schema registry of this test binary: recast's in-memory registry,
/// serving the Confluent REST API on loopback from this process.
pub fn registry() -> &'static str {
    static REGISTRY: OnceLock<String> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        recast::registry::dev::DevRegistry::start("127.0.0.1:0")
            .expect("start the registry")
            .url()
    })
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Starts nisshi on a free port under a watchdog shell that stops it when
/// this test process exits (the harness has no hook at exit).
fn start_broker() -> (String, Child) {
    let install = repo().join("deploy/local/install-broker.sh");
    let output = Command::new(&install)
        .stderr(Stdio::inherit())
        .output()
        .expect("run install-broker.sh");
    assert!(output.status.success(), "installing the broker failed");
    let bin = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("broker-{port}.log"));
    let script = format!(
        "'{bin}' broker --listener-url tcp://{address} --advertised-listener-url tcp://{address} \
         --storage-engine memory://nisshi/ --group-initial-rebalance-delay 0s >'{log}' 2>&1 &
         b=$!
         while kill -0 {parent} 2>/dev/null && kill -0 $b 2>/dev/null; do sleep 0.5; done
         kill $b 2>/dev/null; wait $b",
        log = log.display(),
        parent = std::process::id(),
    );
    let watchdog = Command::new("bash")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .spawn()
        .expect("start the broker");
    let deadline = Instant::now() + TIMEOUT;
    while std::net::TcpStream::connect(&address).is_err() {
        assert!(
            Instant::now() < deadline,
            "broker did not start; see {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (address, watchdog)
}

/// A name no other test uses.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// One scenario's topics and group.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub legacy: String,
    pub ledger: String,
    pub dead_letter: String,
    pub group: String,
    pub dir: PathBuf,
}

impl Scenario {
    /// Creates uniquely named topics with `partitions` partitions each.
    pub fn new(name: &str, partitions: i32) -> Self {
        let base = unique(name);
        let scenario = Self {
            legacy: format!("{base}-legacy"),
            ledger: format!("{base}-ledger"),
            dead_letter: format!("{base}-dlq"),
            group: format!("{base}-group"),
            dir: Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("scenario-{base}")),
        };
        std::fs::create_dir_all(&scenario.dir).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime
            .block_on(recast::tools::create_topics::create_topics(
                brokers(),
                &[&scenario.legacy, &scenario.ledger, &scenario.dead_letter],
                partitions,
                TIMEOUT,
            ))
            .expect("create topics");
        scenario
    }

    /// Writes a configuration for this scenario: the embedded default with
    /// this scenario's broker, topics and group, and `overrides` as dotted
    /// keys with TOML values (e.g. `("batch.max_records", "100")`).
    pub fn config(&self, overrides: &[(&str, &str)]) -> PathBuf {
        let mut table: toml::Table = recast::config::EMBEDDED_DEFAULT.parse().unwrap();
        let mut set = |path: &str, value: toml::Value| {
            let (parents, last) = path.rsplit_once('.').unwrap();
            let mut node = &mut table;
            for segment in parents.split('.') {
                node = node
                    .entry(segment)
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                    .as_table_mut()
                    .unwrap();
            }
            node.insert(last.to_owned(), value);
        };
        set("kafka.brokers", brokers().into());
        set("kafka.group_id", self.group.clone().into());
        set("topics.legacy", self.legacy.clone().into());
        set("topics.ledger", self.ledger.clone().into());
        set("topics.dead_letter", self.dead_letter.clone().into());
        // Several workers share the machine: each takes a free port.
        set("http.listen", "127.0.0.1:0".into());
        set("registry.url", registry().into());
        set(
            "ledger.schemas",
            toml::Value::Array(vec![
                concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/header.avsc").into(),
                concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/cart").into(),
            ]),
        );
        // The file is written elsewhere: name the shipped transforms by
        // their absolute paths.
        set(
            "mapping.transforms",
            toml::Value::Array(vec![
                concat!(env!("CARGO_MANIFEST_DIR"), "/transforms/cart.toml").into(),
                concat!(env!("CARGO_MANIFEST_DIR"), "/transforms/cart-amounts.rhai").into(),
            ]),
        );
        for (path, value) in overrides {
            let parsed: toml::Table = format!("v = {value}").parse().unwrap();
            set(path, parsed["v"].clone());
        }
        let path = self.dir.join(format!("{}.toml", unique("recast")));
        std::fs::write(&path, toml::to_string(&table).unwrap()).unwrap();
        path
    }

    /// Starts `recast run` with this configuration as instance `instance`.
    pub fn spawn_worker(&self, config: &Path, instance: &str, args: &[&str]) -> Child {
        let log = std::fs::File::create(self.dir.join(format!("worker-{instance}.log"))).unwrap();
        Command::new(env!("CARGO_BIN_EXE_recast"))
            .arg("--config")
            .arg(config)
            .arg("run")
            .args(args)
            .env("RECAST_KAFKA__INSTANCE_ID", instance)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start recast")
    }

    /// Runs one worker until the group has committed every legacy record,
    /// then stops it with SIGTERM, which must end it with exit code 0.
    /// Returns its log.
    pub fn run_until_drained(&self, config: &Path, instance: &str, partitions: i32) -> String {
        let mut worker = self.spawn_worker(config, instance, &[]);
        assert!(
            self.wait_caught_up(partitions, Duration::from_secs(240)),
            "{}",
            self.worker_log(instance)
        );
        assert_eq!(
            terminate(&mut worker),
            Some(0),
            "{}",
            self.worker_log(instance)
        );
        self.worker_log(instance)
    }

    /// Starts a worker, waits until it has committed something, lets it run
    /// `pause` longer and kills it with `kill -9`. A busy worker spends most
    /// of its time inside a transaction, so the kill most likely interrupts
    /// one (start-up, restore and group join would otherwise absorb it).
    pub fn kill_mid_run(&self, config: &Path, instance: &str, partitions: i32, pause: Duration) {
        let before = self.committed_offsets(partitions).iter().sum::<i64>();
        let mut worker = self.spawn_worker(config, instance, &[]);
        assert!(
            wait_until(Duration::from_secs(240), || {
                self.committed_offsets(partitions).iter().sum::<i64>() > before
            }),
            "no progress after a restart: {}",
            self.worker_log(instance)
        );
        std::thread::sleep(pause);
        kill_hard(&mut worker);
    }

    /// The worker log of `instance`, for assertion messages.
    pub fn worker_log(&self, instance: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("worker-{instance}.log"))).unwrap_or_default()
    }

    /// Writes `lines` to the legacy topic. Records the broker refused are
    /// sent again: the test broker's idempotent-producer bookkeeping now
    /// and then answers a loader under load with `UnknownProducerId` or
    /// `ProducerFenced`, and the legacy traffic is the test's input, not
    /// what it tests. A refused record was not written, so this duplicates
    /// nothing; any other failure (a timeout, which may have written) fails
    /// the test.
    pub fn produce(&self, lines: &[LegacyLine]) {
        use rdkafka::error::{KafkaError, RDKafkaErrorCode};
        let mut client = ClientConfig::new();
        client.set("bootstrap.servers", brokers());
        let mut pending = lines.to_vec();
        for _ in 0..3 {
            match recast::tools::load::load(&client, &self.legacy, &pending, TIMEOUT) {
                Ok(()) => return,
                Err(recast::tools::load::LoadError::Undelivered { failed, .. })
                    if failed.iter().all(|(_, e)| {
                        matches!(
                            e,
                            KafkaError::MessageProduction(
                                RDKafkaErrorCode::UnknownProducerId
                                    | RDKafkaErrorCode::ProducerFenced
                                    | RDKafkaErrorCode::Fatal
                            )
                        )
                    }) =>
                {
                    eprintln!(
                        "{} legacy records refused ({}); sending them again",
                        failed.len(),
                        failed[0].1
                    );
                    pending = failed
                        .into_iter()
                        .map(|(i, _)| pending[i].clone())
                        .collect();
                }
                Err(e) => panic!("produce legacy records: {e}"),
            }
        }
        panic!("{} legacy records refused three times", pending.len());
    }

    pub fn ledger(&self) -> TopicLog {
        read_committed(brokers(), &self.ledger, TIMEOUT).expect("read ledger")
    }

    pub fn dead_letters(&self) -> TopicLog {
        read_committed(brokers(), &self.dead_letter, TIMEOUT).expect("read dead-letter topic")
    }

    /// The group's committed offset per legacy partition (-1: none).
    pub fn committed_offsets(&self, partitions: i32) -> Vec<i64> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers())
            .set("group.id", &self.group)
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(&self.legacy, p);
        }
        let committed = consumer
            .committed_offsets(tpl, TIMEOUT)
            .expect("committed offsets");
        (0..partitions)
            .map(|p| {
                match committed
                    .find_partition(&self.legacy, p)
                    .map(|e| e.offset())
                {
                    Some(Offset::Offset(o)) => o,
                    _ => -1,
                }
            })
            .collect()
    }

    /// The legacy topic's end offset per partition.
    pub fn legacy_end_offsets(&self) -> Vec<i64> {
        let log = read_committed(brokers(), &self.legacy, TIMEOUT).expect("read legacy");
        log.end_offsets.values().copied().collect()
    }

    /// Waits until the group has committed every legacy record.
    pub fn wait_caught_up(&self, partitions: i32, timeout: Duration) -> bool {
        let end = self.legacy_end_offsets();
        wait_until(timeout, || self.committed_offsets(partitions) == end)
    }
}

/// Polls `condition` every 200 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Stops a worker with SIGTERM and waits for it; returns its exit code.
pub fn terminate(child: &mut Child) -> Option<i32> {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap().code()
}

/// `kill -9`.
pub fn kill_hard(child: &mut Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The sample legacy traffic with its expected outcomes.
pub fn sample() -> Vec<(LegacyLine, Value)> {
    let text = std::fs::read_to_string(repo().join("tests/data/legacy-cart.jsonl")).unwrap();
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                serde_json::from_value(v.clone()).unwrap(),
                v["expect"].clone(),
            )
        })
        .collect()
}

/// The `header.correlation_id` of every event, in log order.
pub fn correlation_ids(ledger: &TopicLog) -> Vec<String> {
    ledger
        .committed
        .iter()
        .map(|r| {
            event_json(r)["header"]["correlation_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

/// A ledger event as JSON, `{"header": {…}, "payload": {…}}` with times in
/// RFC 3339, whichever format it was written in: a Confluent-framed Avro
/// value is decoded by apache-avro with the schema the registry holds
/// under its id (not with recast's own schema files or encoder).
pub fn event_json(record: &recast::tools::log_reader::CommittedRecord) -> Value {
    let value = record.value.as_deref().expect("event has a value");
    let Some((id, mut datum)) = recast::avro::split_frame(value) else {
        return serde_json::from_slice(value).expect("event is JSON");
    };
    let schema = registered_schema(id);
    let decoded = apache_avro::reader::datum::GenericDatumReader::builder(&schema)
        .build()
        .unwrap()
        .read_value(&mut datum)
        .unwrap_or_else(|e| panic!("event is not a datum of schema {id}: {e}"));
    assert!(datum.is_empty(), "bytes after the datum of schema {id}");
    let Value::Object(mut fields) = Value::try_from(decoded).expect("datum as JSON") else {
        panic!("event is not a record")
    };
    let mut header = fields.remove("header").expect("event has a header");
    for time in ["occurred_at", "recorded_at"] {
        let ms = header[time].as_i64().expect("header times are longs");
        header[time] = recast::pipeline::timestamp::format_millis(ms).into();
    }
    serde_json::json!({ "header": header, "payload": fields })
}

/// The schema registered under `id`, fetched once.
fn registered_schema(id: u32) -> apache_avro::Schema {
    static CACHE: OnceLock<std::sync::Mutex<std::collections::HashMap<u32, apache_avro::Schema>>> =
        OnceLock::new();
    let mut cache = CACHE.get_or_init(Default::default).lock().unwrap();
    cache
        .entry(id)
        .or_insert_with(|| {
            let url = format!("{}/schemas/ids/{id}", registry());
            let text = ureq::get(&url)
                .call()
                .expect("registry answers")
                .body_mut()
                .read_to_string()
                .expect("registry answers");
            let body: Value = serde_json::from_str(&text).expect("registry answers JSON");
            apache_avro::Schema::parse_str(body["schema"].as_str().expect("a schema"))
                .expect("the registered schema parses")
        })
        .clone()
}

/// What a correct worker does with a generated legacy record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// One ledger event of this type, keyed by `key`, correlated by `request_id`.
    Event {
        event_type: &'static str,
        request_id: String,
        key: String,
    },
    /// Noise: neither in the ledger nor in the dead-letter topic.
    Filtered,
    /// A retry of an earlier request: dropped by the dedupe window.
    Duplicate,
    /// One dead letter with this (unique) key and a reason starting so.
    Reject { key: String, reason: &'static str },
}

const COMMANDS: [(&str, &str); 15] = [
    ("ADD_TO_CART", "AddedToCart"),
    ("AddToCart", "AddedToCart"),
    ("add.to.cart", "AddedToCart"),
    ("REMOVE_FROM_CART", "RemovedFromCart"),
    ("remove-from-cart", "RemovedFromCart"),
    ("RemoveFromCart", "RemovedFromCart"),
    ("UPDATE_QUANTITY", "QuantityUpdated"),
    ("update.quantity", "QuantityUpdated"),
    ("UpdateQuantity", "QuantityUpdated"),
    ("APPLY_COUPON", "CouponApplied"),
    ("ApplyCoupon", "CouponApplied"),
    ("apply.coupon", "CouponApplied"),
    ("CHECKOUT", "CheckedOut"),
    ("Checkout", "CheckedOut"),
    ("checkout", "CheckedOut"),
];

/// `n` legacy records shaped like the sample (technical context, three
/// spellings per command, heartbeats, malformed records), each with its
/// expected outcome. Request ids are unique, so each event is findable.
pub fn generate(n: usize, tag: &str) -> Vec<(LegacyLine, Expect)> {
    let line = |key: Option<String>, value: String| LegacyLine {
        key,
        value: Some(value),
        headers: std::collections::BTreeMap::new(),
        timestamp: None,
    };
    (0..n)
        .map(|i| {
            if i % 50 == 7 {
                let v = format!(
                    r#"{{"command": "HEARTBEAT", "_meta": {{"host": "cart-web-{}", "retry": 0}}}}"#,
                    i % 40
                );
                return (line(None, v), Expect::Filtered);
            }
            if i % 97 == 3 {
                let key = format!("bad-{tag}-{i}");
                let (value, reason) = match (i / 97) % 5 {
                    0 => (
                        format!(r#"{{"command": "ADD_TO_CART", "requestId": "{i}", "cartId": "#),
                        "invalid JSON",
                    ),
                    1 => (
                        format!(r#"{{"command": "DELETE_EVERYTHING", "cartId": "cart-{i}"}}"#),
                        "unknown command `DELETE_EVERYTHING`",
                    ),
                    2 => (format!("\u{0}\u{1}binary-{i}"), "invalid JSON"),
                    3 => (String::new(), "empty value"),
                    _ => (
                        format!(r#"{{"command": "checkout", "requestId": "x-{i}"}}"#),
                        "no ledger key at `cartId`",
                    ),
                };
                return (line(Some(key.clone()), value), Expect::Reject { key, reason });
            }
            let (command, event_type) = COMMANDS[(i * 7 + i / 13) % COMMANDS.len()];
            let cart = format!("cart-{}", (i * 31) % 211);
            let request_id = format!("{tag}-{i}");
            // What each command carries besides the common fields.
            let details = match event_type {
                "CouponApplied" => format!(r#""coupon": "WINTER-{}""#, i % 17),
                "CheckedOut" => format!(r#""total": {}.{:02}"#, i % 500, i % 100),
                _ => format!(r#""sku": "SKU-{}", "qty": {}"#, i % 9000, 1 + i % 5),
            };
            let value = format!(
                r#"{{"command": "{command}", "requestId": "{request_id}", "cartId": "{cart}", "customer": {{"id": "c-{i}", "email": "user{i}@example.com"}}, "ts": {ts}, {details}, "_meta": {{"host": "cart-web-{host}", "thread": "http-nio-8080-exec-{i}", "retry": {retry}, "sql": "UPDATE cart SET v=v+1 WHERE id=?"}}, "debug_trace": "{i:032x}"}}"#,
                ts = 1_764_000_000_000_i64 + i as i64,
                host = i % 40,
                retry = i % 4,
            );
            (
                line(Some(cart.clone()), value),
                Expect::Event {
                    event_type,
                    request_id,
                    key: cart,
                },
            )
        })
        .collect()
}

/// `generate`'s traffic with retries mixed in, as legacy producers send
/// them: every fifth request again, up to ~250 records later (across batch
/// boundaries), with new technical context.
pub fn generate_with_retries(n: usize, tag: &str) -> Vec<(LegacyLine, Expect)> {
    let mut records = generate(n, tag);
    let mut retries: Vec<(usize, (LegacyLine, Expect))> = records
        .iter()
        .enumerate()
        .filter(|(i, (_, e))| i % 5 == 0 && matches!(e, Expect::Event { .. }))
        .map(|(i, (line, _))| {
            let mut retry = line.clone();
            retry.value = retry.value.map(|v| {
                v.replace("\"retry\": ", "\"retry\": 1")
                    .replace("cart-web-", "cart-web-retry-")
            });
            (i + 1 + (i % 7) * 40, (retry, Expect::Duplicate))
        })
        .collect();
    // Insert from the highest position down: each insertion then leaves
    // every original where the retries still to insert expect it.
    retries.sort_by_key(|(position, _)| std::cmp::Reverse(*position));
    for (position, retry) in retries {
        let position = position.min(records.len());
        records.insert(position, retry);
    }
    records
}

/// Asserts the exactly-once contract for generated traffic: every expected
/// event is in the committed ledger exactly once, clean and with its
/// header; every reject is in the dead-letter topic exactly once with its
/// reason; nothing else is in either; per-key order follows the legacy log.
pub fn assert_exactly_once(s: &Scenario, expected: &[Expect]) {
    let ledger = s.ledger();
    assert_events_once(s, &ledger, expected);
    assert_key_order(&ledger);
    assert_rejects_once(s, expected);
}

fn assert_events_once(s: &Scenario, ledger: &TopicLog, expected: &[Expect]) {
    use std::collections::HashMap;
    let mut by_request: HashMap<String, Vec<(Value, String)>> = HashMap::new();
    for record in &ledger.committed {
        let event = event_json(record);
        let key = String::from_utf8(record.key.clone().expect("ledger key").to_vec()).unwrap();
        let id = event["header"]["correlation_id"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        by_request.entry(id).or_default().push((event, key));
    }
    let events: Vec<_> = expected
        .iter()
        .filter_map(|e| match e {
            Expect::Event {
                event_type,
                request_id,
                key,
            } => Some((event_type, request_id, key)),
            _ => None,
        })
        .collect();
    let mut missing = Vec::new();
    for (event_type, request_id, key) in &events {
        match by_request.get(*request_id).map(Vec::as_slice) {
            Some([(event, ledger_key)]) => {
                assert_eq!(event["header"]["event_type"], **event_type, "{request_id}");
                assert_eq!(ledger_key, *key, "{request_id}");
                assert_eq!(event["header"]["source"]["topic"], s.legacy.as_str());
                let payload = &event["payload"];
                for noise in ["_meta", "debug_trace", "command"] {
                    assert!(payload.get(noise).is_none(), "{noise} left in {payload}");
                }
                // Protected: a keyed hash, never the address.
                let email = payload["customer"]["email"].as_str().unwrap_or_default();
                assert!(
                    email.len() == 64 && email.chars().all(|c| c.is_ascii_hexdigit()),
                    "e-mail not hashed in {payload}"
                );
            }
            None => missing.push((*request_id).clone()),
            Some(many) => panic!("{request_id} is in the ledger {} times", many.len()),
        }
    }
    assert!(
        missing.is_empty(),
        "{} expected events missing from the ledger, e.g. {:?} (the ledger: {} committed, {} aborted, {} in open transactions)",
        missing.len(),
        &missing[..missing.len().min(5)],
        ledger.committed.len(),
        ledger.aborted,
        ledger.open
    );
    assert_eq!(
        ledger.committed.len(),
        events.len(),
        "unexpected extra ledger events"
    );
}

/// A key's events follow the legacy offsets of its records.
fn assert_key_order(ledger: &TopicLog) {
    let mut last: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    for record in &ledger.committed {
        let event = event_json(record);
        let key = String::from_utf8(record.key.clone().unwrap().to_vec()).unwrap();
        let offset = event["header"]["source"]["offset"].as_i64().unwrap();
        if let Some(previous) = last.insert(key.clone(), offset) {
            assert!(
                previous < offset,
                "key {key}: offset {offset} after {previous}"
            );
        }
    }
}

fn assert_rejects_once(s: &Scenario, expected: &[Expect]) {
    use std::collections::HashMap;
    let dead = s.dead_letters();
    let mut dead_by_key: HashMap<String, Vec<&recast::tools::log_reader::CommittedRecord>> =
        HashMap::new();
    for record in &dead.committed {
        let key = record
            .key
            .as_ref()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_default();
        dead_by_key.entry(key).or_default().push(record);
    }
    let rejects: Vec<_> = expected
        .iter()
        .filter_map(|e| match e {
            Expect::Reject { key, reason } => Some((key, reason)),
            _ => None,
        })
        .collect();
    for (key, reason) in &rejects {
        match dead_by_key.get(*key).map(Vec::as_slice) {
            Some([record]) => {
                let got = record.header("recast.reason").unwrap_or_default();
                assert!(
                    got.starts_with(**reason),
                    "{key}: reason `{got}`, expected `{reason}…`"
                );
                assert_eq!(
                    record.header("recast.source.topic").as_deref(),
                    Some(s.legacy.as_str())
                );
                assert!(record.header("recast.source.offset").is_some());
                assert!(record.header("recast.stage").is_some());
            }
            None => panic!("reject {key} missing from the dead-letter topic"),
            Some(many) => panic!(
                "reject {key} is in the dead-letter topic {} times",
                many.len()
            ),
        }
    }
    assert_eq!(
        dead.committed.len(),
        rejects.len(),
        "unexpected extra dead letters"
    );
}
