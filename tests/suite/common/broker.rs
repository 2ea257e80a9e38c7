//! The broker and the schema registry of this test run: one each per
//! `cargo test`, started on loopback by this process.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub(crate) const TIMEOUT: Duration = Duration::from_secs(30);

/// The broker of this test binary: `RECAST_TEST_BROKERS` if set, else a
/// broker this process starts.
pub(crate) fn brokers() -> &'static str {
    static BROKER: OnceLock<(String, Option<Child>)> = OnceLock::new();
    &BROKER
        .get_or_init(|| {
            if let Ok(brokers) = std::env::var("RECAST_TEST_BROKERS") {
                return (brokers, None);
            }
            let broker = start_broker(&[]);
            (broker.address, Some(broker.watchdog))
        })
        .0
}

/// A broker of one test's own, for what the shared one must not go
/// through (being paused, refusing records); stopped when the test process
/// exits. `args` are nisshi's own options beyond the usual ones.
pub(crate) fn own_broker(args: &[&str]) -> &'static OwnBroker {
    Box::leak(Box::new(start_broker(args)))
}

/// A broker this process started.
#[derive(Debug)]
pub(crate) struct OwnBroker {
    pub address: String,
    /// The broker process itself (not its watchdog), for signals.
    pub pid: u32,
    watchdog: Child,
}

/// The schema registry of this test binary: recast's in-memory registry,
/// serving the Confluent REST API on loopback from this process.
pub(crate) fn registry() -> &'static str {
    static REGISTRY: OnceLock<String> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        recast::DevRegistry::start("127.0.0.1:0")
            .expect("start the registry")
            .url()
    })
}

pub(crate) fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Starts nisshi on a free port under a watchdog shell that stops it when
/// this test process exits (the harness has no hook at exit).
fn start_broker(args: &[&str]) -> OwnBroker {
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
    let pid_file = log.with_extension("pid");
    let script = format!(
        "'{bin}' broker --listener-url tcp://{address} --advertised-listener-url tcp://{address} \
         --storage-engine memory://nisshi/ --group-initial-rebalance-delay 0s {args} >'{log}' 2>&1 &
         b=$!
         echo $b >'{pid_file}'
         while kill -0 {parent} 2>/dev/null && kill -0 $b 2>/dev/null; do sleep 0.5; done
         kill $b 2>/dev/null; wait $b",
        log = log.display(),
        pid_file = pid_file.display(),
        args = args.join(" "),
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
    let pid = std::fs::read_to_string(&pid_file)
        .expect("the broker's pid file")
        .trim()
        .parse()
        .expect("a pid");
    OwnBroker {
        address,
        pid,
        watchdog,
    }
}
