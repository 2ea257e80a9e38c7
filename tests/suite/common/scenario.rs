//! A scenario: uniquely named topics and group, configurations for them,
//! `recast` run as a child process, and what the broker holds for them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::broker::{TIMEOUT, brokers, registry};
use recast::legacy_file::LegacyLine;
use recast::log_reader::{TopicLog, read_committed};

/// A name no other test uses.
pub(crate) fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// One scenario's topics and group.
#[derive(Debug, Clone)]
pub(crate) struct Scenario {
    pub legacy: String,
    pub ledger: String,
    pub dead_letter: String,
    pub group: String,
    pub dir: PathBuf,
    /// The broker the topics are on: the shared one unless
    /// [`Scenario::on`] says otherwise.
    pub brokers: &'static str,
}

impl Scenario {
    /// Creates uniquely named topics with `partitions` partitions each.
    pub(crate) fn new(name: &str, partitions: i32) -> Self {
        Self::on(brokers(), name, partitions)
    }

    /// [`Scenario::new`] on the broker at `brokers`.
    pub(crate) fn on(brokers: &'static str, name: &str, partitions: i32) -> Self {
        let base = unique(name);
        let scenario = Self {
            legacy: format!("{base}-legacy"),
            ledger: format!("{base}-ledger"),
            dead_letter: format!("{base}-dlq"),
            group: format!("{base}-group"),
            dir: Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("scenario-{base}")),
            brokers,
        };
        std::fs::create_dir_all(&scenario.dir).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime
            .block_on(recast::create_topics::create_topics(
                ClientConfig::new().set("bootstrap.servers", brokers),
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
    pub(crate) fn config(&self, overrides: &[(&str, &str)]) -> PathBuf {
        let mut table: toml::Table = recast::EMBEDDED_DEFAULT.parse().unwrap();
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
        set("kafka.brokers", self.brokers.into());
        set("kafka.group_id", self.group.clone().into());
        set("topics.legacy", self.legacy.clone().into());
        set("topics.ledger", self.ledger.clone().into());
        set("topics.dead_letter", self.dead_letter.clone().into());
        // Several workers share the machine: each takes a free port.
        set("http.listen", "127.0.0.1:0".into());
        // The test broker checks and advances an idempotent producer's
        // sequence numbers in two steps, so two produce requests in flight
        // to one partition can race and the later one is refused as out of
        // order, which the client library treats as a fatal desync. One
        // request in flight per connection keeps the tests off that race;
        // the worker's recovery from such a failure is tested on its own
        // (`exactly_once::a_failed_producer_is_replaced_…`).
        set(
            "kafka.properties",
            toml::Value::Table(toml::Table::from_iter([(
                "max.in.flight.requests.per.connection".to_owned(),
                toml::Value::from(1),
            )])),
        );
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
    pub(crate) fn spawn_worker(&self, config: &Path, instance: &str, args: &[&str]) -> Child {
        self.spawn("run", config, instance, args)
    }

    /// Starts `recast redrive` with this configuration as instance
    /// `instance`; its log is `worker_log("redrive-<instance>")`, every
    /// run of the instance in it.
    pub(crate) fn spawn_redrive(&self, config: &Path, instance: &str, args: &[&str]) -> Child {
        self.spawn("redrive", config, instance, args)
    }

    fn spawn(&self, command: &str, config: &Path, instance: &str, args: &[&str]) -> Child {
        let (name, append) = match command {
            "run" => (instance.to_owned(), false),
            _ => (format!("{command}-{instance}"), true),
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(self.dir.join(format!("worker-{name}.log")))
            .unwrap();
        Command::new(env!("CARGO_BIN_EXE_recast"))
            .arg("--config")
            .arg(config)
            .arg(command)
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
    pub(crate) fn run_until_drained(
        &self,
        config: &Path,
        instance: &str,
        partitions: i32,
    ) -> String {
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
    pub(crate) fn kill_mid_run(
        &self,
        config: &Path,
        instance: &str,
        partitions: i32,
        pause: Duration,
    ) {
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
    pub(crate) fn worker_log(&self, instance: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("worker-{instance}.log"))).unwrap_or_default()
    }

    /// Writes `lines` to the legacy topic. Records the broker refused are
    /// sent again: the test broker's idempotent-producer bookkeeping now
    /// and then answers a loader under load with `UnknownProducerId` or
    /// `ProducerFenced`, and the legacy traffic is the test's input, not
    /// what it tests. A refused record was not written, so this duplicates
    /// nothing; any other failure (a timeout, which may have written) fails
    /// the test.
    pub(crate) fn produce(&self, lines: &[LegacyLine]) {
        use rdkafka::error::{KafkaError, RDKafkaErrorCode};
        let mut client = ClientConfig::new();
        client.set("bootstrap.servers", self.brokers);
        let mut pending = lines.to_vec();
        for _ in 0..3 {
            match recast::load::load(&client, &self.legacy, &pending, TIMEOUT) {
                Ok(()) => return,
                Err(recast::load::LoadError::Undelivered { failed, .. })
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

    /// Writes `lines` (keys and values only) in one transaction, as a legacy
    /// producer using transactions does: the log then ends with a commit
    /// marker in every partition written, an offset that holds no record.
    pub(crate) fn produce_in_a_transaction(&self, lines: &[LegacyLine]) {
        use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
        let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", self.brokers)
            .set("transactional.id", unique("legacy-writer"))
            .set("partitioner", "murmur2_random")
            .create()
            .expect("a transactional producer");
        producer
            .init_transactions(TIMEOUT)
            .expect("init transactions");
        producer.begin_transaction().expect("begin");
        for line in lines {
            let mut record = BaseRecord::<str, str>::to(&self.legacy);
            if let Some(key) = &line.key {
                record = record.key(key);
            }
            if let Some(value) = &line.value {
                record = record.payload(value);
            }
            producer.send(record).map_err(|(e, _)| e).expect("queued");
        }
        producer.commit_transaction(TIMEOUT).expect("commit");
    }

    pub(crate) fn ledger(&self) -> TopicLog {
        read_committed(self.brokers, &self.ledger, TIMEOUT).expect("read ledger")
    }

    pub(crate) fn dead_letters(&self) -> TopicLog {
        read_committed(self.brokers, &self.dead_letter, TIMEOUT).expect("read dead-letter topic")
    }

    /// The group's committed offset per legacy partition (-1: none).
    pub(crate) fn committed_offsets(&self, partitions: i32) -> Vec<i64> {
        offsets_on(self.brokers, &self.group, &self.legacy, partitions)
    }

    /// The legacy topic's end offset per partition.
    pub(crate) fn legacy_end_offsets(&self) -> Vec<i64> {
        let log = read_committed(self.brokers, &self.legacy, TIMEOUT).expect("read legacy");
        log.end_offsets.values().copied().collect()
    }

    /// Waits until the group has committed every legacy record.
    pub(crate) fn wait_caught_up(&self, partitions: i32, timeout: Duration) -> bool {
        let end = self.legacy_end_offsets();
        wait_until(timeout, || self.committed_offsets(partitions) == end)
    }
}

/// `group`'s committed offset per partition of `topic` (-1: none).
pub(crate) fn group_offsets(group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    offsets_on(brokers(), group, topic, partitions)
}

fn offsets_on(brokers: &str, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(tpl, TIMEOUT)
        .expect("committed offsets");
    (0..partitions)
        .map(
            |p| match committed.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => -1,
            },
        )
        .collect()
}

/// Polls `condition` every 200 ms until it holds or `timeout` passes.
pub(crate) fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
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
pub(crate) fn terminate(child: &mut Child) -> Option<i32> {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap().code()
}

/// `kill -9`.
pub(crate) fn kill_hard(child: &mut Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}
