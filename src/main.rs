//! The `recast` command line: parses arguments, loads the configuration,
//! runs a subcommand, and turns its outcome into an exit code (0 success,
//! 1 runtime failure, 2 bad configuration or usage).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use recast::{
    Config, ConfigError, Filters, RedriveOptions, RunOptions, Totals, WorkerError, create_topics,
    explain, golden, infer, inspect, legacy_file, load, replay, tap,
};

/// mimalloc instead of the system allocator: the record path allocates per
/// field (docs/performance.md for the figures).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc asks the kernel for transparent huge pages on its arenas, and
/// a kernel that grants them on request (`madvise`, a common default)
/// backs them 2 MiB at a time: ~18 MB more resident memory at the peak of a
/// run, for no CPU measured back (docs/performance.md). Declined for the
/// whole process, before the worker allocates in earnest.
fn decline_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        // A kernel without the setting: memory use, not correctness.
        tracing::debug!(error = %e, "transparent huge pages left to the kernel's default");
    }
}

#[derive(Debug, Parser)]
#[command(
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("RECAST_REVISION"), ")"),
    about = "Turns a legacy Kafka command topic into a clean event ledger, exactly once"
)]
struct Cli {
    /// Configuration file. Without one, the embedded default (the local
    /// quickstart's) is used. Keys can be overridden with RECAST_<SECTION>__<KEY>.
    #[arg(short, long, global = true, env = "RECAST_CONFIG")]
    config: Option<PathBuf>,
    /// Log format on stderr: `text`, or `json` (one object per line, for
    /// log collectors).
    #[arg(long, global = true, env = "RECAST_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("from").required(true).args(["input", "topic"])))]
struct ExplainArgs {
    /// The legacy records (JSON lines); `-` for standard input.
    #[arg(long)]
    input: Option<PathBuf>,
    /// With --input: only the record on this line (the lines before
    /// still fill the dedupe window). Default: every record.
    #[arg(long, requires = "input")]
    line: Option<usize>,
    /// A record on the broker: of `legacy` or `dead-letter`.
    #[arg(long, value_parser = ["legacy", "dead-letter"], requires_all = ["partition", "offset"])]
    topic: Option<String>,
    /// With --topic: the record's partition.
    #[arg(long, requires = "topic")]
    partition: Option<i32>,
    /// With --topic: the record's offset (a dead letter's own, on the
    /// dead-letter topic).
    #[arg(long, requires = "topic")]
    offset: Option<i64>,
    /// With --topic dead-letter: how far back the ledger is read to
    /// learn what it holds, as `recast redrive --lookback`.
    #[arg(long, default_value = "7d", value_parser = humantime::parse_duration)]
    lookback: Duration,
    /// `text` (coloured on a terminal) or `json` (one object per record).
    #[arg(long, value_enum, default_value_t = TraceFormat::Text)]
    format: TraceFormat,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("from").required(true).args(["input", "topic"])))]
struct InferArgs {
    /// The sample (JSON lines, as `replay` reads them); `-` for
    /// standard input.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Take the sample from this topic's committed records instead:
    /// `legacy` (the configured one) or any topic name.
    #[arg(long)]
    topic: Option<String>,
    /// With --topic: the last N records of each partition.
    #[arg(long, requires = "topic", default_value_t = 10_000)]
    last: usize,
    /// With --topic: every record from this offset on, per partition,
    /// instead of the last N.
    #[arg(long, requires = "topic")]
    from_offset: Option<i64>,
    /// The field the command is in. Default: guessed.
    #[arg(long)]
    command_field: Option<String>,
    /// Write a draft here: `recast.toml`, `transforms/`, `schemas/`;
    /// then replay the sample through it and print what it does.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The drafted schemas' namespace (e.g. `shop.cart`).
    #[arg(long, default_value = "ledger")]
    name_prefix: String,
}

#[derive(Debug, clap::Args)]
struct TapArgs {
    /// The worker's operations listener. Default: `http.listen`.
    #[arg(long)]
    url: Option<String>,
    /// How many traces to take.
    #[arg(long, default_value_t = 10)]
    limit: usize,
    /// Only records of this outcome: event, duplicate, filtered, rejected.
    #[arg(long, value_parser = ["event", "duplicate", "filtered", "rejected"])]
    outcome: Option<String>,
    /// Only records with an event of this type.
    #[arg(long)]
    event_type: Option<String>,
    /// Stop when no trace arrived for this long.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    idle: Duration,
    #[arg(long, value_enum, default_value_t = TraceFormat::Text)]
    format: TraceFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum TraceFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the worker: legacy topic → ledger, exactly once.
    Run {
        /// Stop once no record has arrived for this long (e.g. "5s"): for
        /// backfills and the quickstart. Default: run until SIGTERM/SIGINT.
        #[arg(long, value_parser = humantime::parse_duration)]
        stop_when_idle: Option<Duration>,
    },
    /// Re-drive dead letters after a mapping fix: each runs again as the
    /// legacy record it was (same position, so the same event ids), in
    /// transactions with the dead-letter offsets, exactly once. Dead
    /// letters the configured mapping rejected, and requests the ledger
    /// already holds, are passed over. Run it beside the worker, once the
    /// worker runs the fix.
    Redrive {
        /// Only dead letters this stage rejected (repeatable): decode,
        /// mapping, schema, encode, sink.
        #[arg(long = "stage", value_parser = ["decode", "mapping", "schema", "encode", "sink"])]
        stages: Vec<String>,
        /// Only dead letters whose reason this regular expression matches.
        #[arg(long)]
        reason_matches: Option<regex::Regex>,
        /// Only dead letters this mapping version rejected (repeatable; the
        /// `recast.mapping.version` header).
        #[arg(long = "rejected-by")]
        rejected_by: Vec<String>,
        /// The re-drive's consumer group. Default: `<kafka.group_id>-redrive`.
        /// A new group reads the dead-letter topic from its start.
        #[arg(long)]
        group: Option<String>,
        /// How far back, by record time, the ledger is read to learn what
        /// it holds.
        #[arg(long, default_value = "7d", value_parser = humantime::parse_duration)]
        lookback: Duration,
        /// Decide everything and print what would happen; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Stop once no dead letter has arrived for this long (e.g. "10s").
        /// Default: run until SIGTERM/SIGINT.
        #[arg(long, value_parser = humantime::parse_duration)]
        stop_when_idle: Option<Duration>,
    },
    /// Validate everything before running: configuration, transforms,
    /// schemas, that every golden case's events fit their schemas, and,
    /// with a registry configured, that every schema is compatible with
    /// its subject's latest version. One line per problem; exit 1 on any.
    Check {
        /// Skip the schema registry (validate only what needs no network).
        #[arg(long)]
        offline: bool,
    },
    /// Print the configuration as it would run: every value with where it
    /// came from (the file, an environment variable, the default), secrets
    /// redacted.
    Config {
        #[command(subcommand)]
        schema: Option<SchemaOnly>,
    },
    /// About transform files.
    Transforms {
        #[command(subcommand)]
        schema: SchemaOnly,
    },
    /// Run the golden cases of the transforms: legacy records and what
    /// must become of them.
    Test {
        /// Case files, or directories of them. Default: `tests/` next to
        /// the first transform file.
        paths: Vec<PathBuf>,
        /// Print the JSON Schema of a case file instead.
        #[arg(long, conflicts_with = "paths")]
        schema: bool,
    },
    /// Run the whole mapping offline over legacy records — a file (JSON
    /// lines: key, value, headers) or a topic's committed records — and sum
    /// up what it does. Nothing is written to the broker.
    #[command(group(clap::ArgGroup::new("from").required(true).args(["input", "topic"])))]
    Replay {
        /// The legacy records; `-` for standard input.
        #[arg(long)]
        input: Option<PathBuf>,
        /// Read the committed records of this topic instead: `legacy` (the
        /// configured one) or any topic name.
        #[arg(long)]
        topic: Option<String>,
        /// With --topic: only offsets from this one on, per partition.
        #[arg(long, requires = "topic", conflicts_with_all = ["input", "from_time", "last"])]
        from_offset: Option<i64>,
        /// With --topic: only records written at or after this time
        /// (RFC 3339, e.g. 2026-12-01T08:00:00Z).
        #[arg(long, requires = "topic", conflicts_with_all = ["input", "last"], value_parser = humantime::parse_rfc3339)]
        from_time: Option<std::time::SystemTime>,
        /// With --topic: only the last N records of each partition.
        #[arg(long, requires = "topic", conflicts_with = "input")]
        last: Option<usize>,
        /// Where the events go, as JSON lines. Default: standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Explain why a legacy record went where it went: every decision of
    /// the record path, in order, from decode to the outcome. For a record
    /// of a file (as `replay` reads it), or a committed record on the
    /// broker: of the legacy topic (its dedupe window rebuilt first, so the
    /// verdict is the worker's), or of the dead-letter topic (what a
    /// re-drive would do with it now). Nothing is written.
    Explain(ExplainArgs),
    /// Watch a running worker's decisions live: the next traces its tap
    /// (`http.tap = true`) sends, as `recast explain` shows them. The worker
    /// samples them and never waits for this client.
    Tap(TapArgs),
    /// Read a sample of a legacy topic and report what a mapping for it
    /// needs: the command field, every spelling of every command and the
    /// event type proposed for it, and per event type its fields (types,
    /// presence, examples) with the technical noise and the personal data
    /// (found by the values' shape) that must not reach a ledger. Personal
    /// values are shown by their shape only.
    Infer(InferArgs),
    /// Print the committed records of a topic (read at log level, applying
    /// transaction markers) and a summary.
    Inspect {
        /// `ledger`, `dead-letter`, `legacy`, or any topic name.
        #[arg(long, default_value = "ledger")]
        topic: String,
        /// Print at most this many records (the summary counts them all).
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Write legacy records from a JSON-lines file to the legacy topic.
    Load {
        #[arg(long)]
        input: PathBuf,
    },
    /// Serve an in-memory schema registry (the subset of Confluent's REST
    /// API recast uses) until stopped: for local runs. It forgets every
    /// schema when it stops: not for production.
    DevRegistry {
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: String,
    },
    /// Create the legacy, ledger and dead-letter topics when missing.
    CreateTopics {
        #[arg(long, default_value_t = 4)]
        partitions: i32,
    },
}

/// `schema`, the one subcommand of `config` and `transforms`.
#[derive(Debug, Subcommand)]
enum SchemaOnly {
    /// Print the JSON Schema of the file (draft 2020-12), for editors: in a
    /// TOML file, a first line `#:schema recast.schema.json` points to it.
    Schema,
}

impl Command {
    /// The JSON Schema this command prints, if it prints one: schemas need
    /// no configuration, so they are answered before it is read.
    fn schema(&self) -> Option<serde_json::Value> {
        match self {
            Command::Config {
                schema: Some(SchemaOnly::Schema),
            } => Some(Config::json_schema()),
            Command::Transforms { .. } => Some(recast::TransformFile::json_schema()),
            Command::Test { schema: true, .. } => Some(golden::case_file_schema()),
            _ => None,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    decline_transparent_huge_pages();
    if let Some(schema) = cli.command.schema() {
        // A closed pipe (`| head`) is the reader's choice, not an error.
        let _ = writeln!(std::io::stdout().lock(), "{schema:#}");
        return ExitCode::SUCCESS;
    }
    let config = match Config::load(cli.config.as_deref(), std::env::vars()) {
        Ok(config) => config,
        Err(e) => {
            bad_configuration(&e);
            return ExitCode::from(2);
        }
    };
    if cli.config.is_none() {
        tracing::info!("no --config given: using the embedded default configuration");
    }
    match run(cli.command, &config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if e.downcast_ref::<ConfigError>().is_some() {
                bad_configuration(&e);
                return ExitCode::from(2);
            }
            eprintln!("recast: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// One line per problem: validation reports every problem it found.
fn bad_configuration(error: &dyn std::fmt::Display) {
    for line in error.to_string().lines() {
        eprintln!("recast: bad configuration: {line}");
    }
}

/// Logs go to stderr, filtered by `RUST_LOG` (default `info`).
fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().with_current_span(true).init(),
        // Colour codes only for people: log files and collectors get text.
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}

fn run(command: Command, config: &Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    match command {
        Command::Run { stop_when_idle } => runtime.block_on(run_worker(config, stop_when_idle)),
        Command::Redrive {
            stages,
            reason_matches,
            rejected_by,
            group,
            lookback,
            dry_run,
            stop_when_idle,
        } => {
            let options = RedriveOptions {
                group: group.unwrap_or_else(|| RedriveOptions::default_group(config)),
                filters: Filters {
                    stages,
                    reason: reason_matches,
                    rejected_by,
                },
                lookback,
                stop_when_idle,
            };
            if dry_run {
                print!("{}", recast::dry_run(config, &options)?);
                return Ok(());
            }
            runtime.block_on(redrive(config, options))
        }
        Command::Check { offline } => check(config, offline),
        Command::Transforms { .. } => {
            unreachable!("schemas are printed before the configuration is read")
        }
        Command::Config { .. } => {
            print!("{}", config.effective());
            Ok(())
        }
        Command::DevRegistry { listen } => {
            let registry = recast::DevRegistry::start(&listen)
                .with_context(|| format!("listening on {listen}"))?;
            println!(
                "dev schema registry at {} (in memory; Ctrl-C stops it)",
                registry.url()
            );
            runtime.block_on(async {
                let mut sigterm =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = sigterm.recv() => {}
                }
                anyhow::Ok(())
            })
        }
        Command::Test { paths, .. } => golden_test(config, paths),
        Command::Replay {
            input,
            topic,
            from_offset,
            from_time,
            last,
            output,
        } => match (input, topic) {
            (Some(input), _) => replay(config, &input, output.as_deref()),
            (None, Some(topic)) => {
                let range = match (from_offset, from_time, last) {
                    (Some(offset), _, _) => replay::Range::FromOffset(offset),
                    (_, Some(time), _) => replay::Range::FromTime(epoch_ms(time)),
                    (_, _, Some(n)) => replay::Range::Last(n),
                    _ => replay::Range::All,
                };
                replay_topic(config, &topic, range, output.as_deref())
            }
            (None, None) => bail!("--input or --topic"),
        },
        Command::Explain(args) => explain(config, &args),
        Command::Infer(args) => infer(config, args),
        Command::Tap(args) => tap_live(config, args),
        Command::Inspect { topic, limit } => Ok(inspect::inspect(
            config,
            &topic,
            limit,
            &mut std::io::stdout().lock(),
        )?),
        Command::Load { input } => load(config, &input),
        Command::CreateTopics { partitions } => {
            runtime.block_on(create_missing_topics(config, partitions))
        }
    }
}

/// `recast create-topics`: the three topics, when missing.
async fn create_missing_topics(config: &Config, partitions: i32) -> anyhow::Result<()> {
    let t = &config.raw.topics;
    create_topics::create_topics(
        &recast::client_config(config),
        &[&t.legacy, &t.ledger, &t.dead_letter],
        partitions,
        config.raw.kafka.connect_timeout,
    )
    .await
    .context("creating topics")?;
    println!(
        "topics ready: {}, {}, {}",
        t.legacy, t.ledger, t.dead_letter
    );
    Ok(())
}

fn check(config: &Config, offline: bool) -> anyhow::Result<()> {
    let cases_dir = golden::default_cases_dir(config);
    let cases = if cases_dir.is_dir() {
        golden::case_files(&[cases_dir])?
    } else {
        Vec::new()
    };
    let registry = if offline { None } else { config.registry() };
    let report = recast::check::check(config, &cases, registry.as_ref());
    print!("{}", report.text);
    for problem in &report.problems {
        println!("problem: {problem}");
    }
    if !report.problems.is_empty() {
        bail!("{} problem(s) found", report.problems.len());
    }
    Ok(())
}

fn golden_test(config: &Config, mut paths: Vec<PathBuf>) -> anyhow::Result<()> {
    if paths.is_empty() {
        paths.push(golden::default_cases_dir(config));
    }
    let files = golden::case_files(&paths)?;
    if files.is_empty() {
        bail!("no case files (*.toml) in {}", display_paths(&paths));
    }
    let report = golden::run(config, &files)?;
    print!("{}", report.text);
    println!("outcomes: {}", report.counts);
    println!(
        "{} cases: {} passed, {} failed",
        report.passed + report.failed,
        report.passed,
        report.failed
    );
    if report.failed > 0 {
        bail!("{} golden case(s) failed", report.failed);
    }
    Ok(())
}

/// `tests/` next to the first transform file: in the working directory's
/// `transforms/` for the embedded default.
fn display_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn explain(config: &Config, args: &ExplainArgs) -> anyhow::Result<()> {
    let traces = match (&args.input, &args.topic) {
        (Some(input), _) => explain_file(config, input, args.line)?,
        (None, Some(topic)) => {
            let on = if topic == "legacy" {
                recast::OnTopic::Legacy
            } else {
                recast::OnTopic::DeadLetter {
                    lookback: args.lookback,
                }
            };
            let (partition, offset) = args
                .partition
                .zip(args.offset)
                .context("--partition and --offset")?;
            vec![recast::explain_on_broker(config, on, partition, offset)?]
        }
        (None, None) => bail!("--input or --topic"),
    };
    let mut out = std::io::stdout().lock();
    for trace in traces {
        print_trace(&mut out, &serde_json::Value::Object(trace), args.format)?;
    }
    Ok(())
}

fn tap_live(config: &Config, args: TapArgs) -> anyhow::Result<()> {
    let url = args
        .url
        .unwrap_or_else(|| listener_url(&config.raw.http.listen));
    let query = tap::TapQuery {
        limit: args.limit,
        outcome: args.outcome,
        event_type: args.event_type,
        idle: Some(args.idle),
    };
    let mut out = std::io::stdout().lock();
    let mut written = Ok(());
    let received = tap::tap(&url, &query, |trace| {
        if written.is_ok() {
            written = print_trace(&mut out, &trace, args.format);
        }
    })?;
    written?;
    eprintln!("{received} traces from {url}");
    Ok(())
}

/// `recast infer`: the report, and with `--out` the draft and what it
/// makes of the sample.
fn infer(config: &Config, args: InferArgs) -> anyhow::Result<()> {
    let InferArgs {
        input,
        topic,
        last,
        from_offset,
        command_field,
        out,
        name_prefix,
    } = args;
    let (lines, source) = match (input, topic) {
        (Some(input), _) => {
            let mut lines = Vec::new();
            for line in legacy_file::read(open_input(&input)?) {
                lines.push(line.with_context(|| input.display().to_string())?);
            }
            (lines, input.display().to_string())
        }
        (None, Some(topic)) => {
            let name = match topic.as_str() {
                "legacy" => config.raw.topics.legacy.clone(),
                other => other.to_owned(),
            };
            let log = recast::log_reader::read_committed(
                &config.raw.kafka.brokers,
                &name,
                config.raw.kafka.connect_timeout,
            )
            .with_context(|| format!("reading {name}"))?;
            let (range, taken) = match from_offset {
                Some(offset) => (
                    replay::Range::FromOffset(offset),
                    format!("from offset {offset}"),
                ),
                None => (replay::Range::Last(last), format!("the last {last}")),
            };
            let lines = replay::selected(&log.committed, range)
                .into_iter()
                .map(legacy_file::LegacyLine::from_committed)
                .collect();
            (
                lines,
                format!("the committed records of {name}, {taken} per partition"),
            )
        }
        (None, None) => bail!("--input or --topic"),
    };
    let inference = infer::infer(
        config,
        lines.clone(),
        &infer::InferOptions { command_field },
    );
    print!("{inference}");
    let Some(dir) = out.as_deref() else {
        return Ok(());
    };
    let written = infer::write_draft(&inference, config, dir, &source, &name_prefix)?;
    println!("\ndraft written to {}:", dir.display());
    for file in &written.files {
        println!("  {}", file.display());
    }
    let drafted = Config::load(Some(&dir.join("recast.toml")), Vec::new())
        .map_err(|e| anyhow::anyhow!("the drafted configuration does not load: {e}"))?;
    let text: String = lines
        .iter()
        .map(|l| serde_json::to_string(l).expect("a legacy line serialises") + "\n")
        .collect();
    let summary = replay::replay(
        &drafted,
        text.as_bytes(),
        &mut std::io::sink(),
        epoch_ms(std::time::SystemTime::now()),
        |_| {},
    )?;
    println!("\nthe draft over the sample:\n{summary}");
    Ok(())
}

/// A file of legacy records, or standard input for `-`.
fn open_input(input: &Path) -> anyhow::Result<Box<dyn std::io::BufRead>> {
    if input == Path::new("-") {
        return Ok(Box::new(std::io::stdin().lock()));
    }
    let file =
        std::fs::File::open(input).with_context(|| format!("cannot read {}", input.display()))?;
    Ok(Box::new(std::io::BufReader::new(file)))
}

/// The traces of a file's records: one line's, or every record's.
fn explain_file(
    config: &Config,
    input: &Path,
    line: Option<usize>,
) -> anyhow::Result<Vec<serde_json::Map<String, serde_json::Value>>> {
    let reader = open_input(input)?;
    let lines = line.map_or(explain::Lines::All, explain::Lines::One);
    explain::explain_file(
        config,
        reader,
        lines,
        epoch_ms(std::time::SystemTime::now()),
    )
    .with_context(|| format!("explaining {}", input.display()))
}

/// One trace on standard output: text (coloured on a terminal) or a JSON
/// line.
fn print_trace(
    out: &mut impl std::io::Write,
    trace: &serde_json::Value,
    format: TraceFormat,
) -> anyhow::Result<()> {
    match format {
        TraceFormat::Json => writeln!(out, "{trace}")?,
        TraceFormat::Text => {
            let colour = std::io::IsTerminal::is_terminal(&std::io::stdout());
            writeln!(out, "{}", explain::render(trace, colour))?;
        }
    }
    out.flush()?;
    Ok(())
}

/// The URL of the operations listener at `listen`; a wildcard address is
/// reached on loopback.
fn listener_url(listen: &str) -> String {
    let local = listen
        .strip_prefix("0.0.0.0:")
        .or_else(|| listen.strip_prefix("[::]:"))
        .map_or_else(|| listen.to_owned(), |port| format!("127.0.0.1:{port}"));
    format!("http://{local}")
}

/// Where replayed events go: the file, or standard output.
fn events_output(output: Option<&Path>) -> anyhow::Result<Box<dyn std::io::Write>> {
    Ok(match output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot write {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    })
}

fn epoch_ms(time: std::time::SystemTime) -> i64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `recast replay --topic`: the committed records of a topic, read at log
/// level as `recast inspect` reads them.
fn replay_topic(
    config: &Config,
    topic: &str,
    range: replay::Range,
    output: Option<&Path>,
) -> anyhow::Result<()> {
    let name = match topic {
        "legacy" => config.raw.topics.legacy.as_str(),
        other => other,
    };
    let log = recast::log_reader::read_committed(
        &config.raw.kafka.brokers,
        name,
        config.raw.kafka.connect_timeout,
    )
    .with_context(|| format!("reading {name}"))?;
    let mut writer = events_output(output)?;
    let summary = replay::replay_topic(
        config,
        &log.committed,
        range,
        &mut writer,
        epoch_ms(std::time::SystemTime::now()),
    )
    .with_context(|| format!("replaying {name}"))?;
    eprint!("{summary}");
    Ok(())
}

fn replay(config: &Config, input: &Path, output: Option<&Path>) -> anyhow::Result<()> {
    let reader = open_input(input)?;
    let mut writer = events_output(output)?;
    let started = std::time::Instant::now();
    let show_progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut last_shown = started;
    let progress = |records: u64| {
        if show_progress && last_shown.elapsed() >= Duration::from_secs(1) {
            last_shown = std::time::Instant::now();
            let rate = records as f64 / started.elapsed().as_secs_f64();
            eprint!("\rreplayed {records} records ({rate:.0}/s)");
        }
    };
    let now_ms = epoch_ms(std::time::SystemTime::now());
    let summary = replay::replay(config, reader, &mut writer, now_ms, progress)
        .with_context(|| format!("replaying {}", input.display()))?;
    if show_progress {
        eprint!("\r{:60}\r", "");
    }
    eprint!("{summary}");
    Ok(())
}

async fn run_worker(config: &Config, stop_when_idle: Option<Duration>) -> anyhow::Result<()> {
    let reload = Arc::new(AtomicBool::new(false));
    let options = RunOptions {
        stop_when_idle,
        reload: reload.clone(),
    };
    let config = config.clone();
    supervise(Some(reload), move |stop| {
        recast::run(&config, stop, &options)
    })
    .await?;
    Ok(())
}

async fn redrive(config: &Config, options: RedriveOptions) -> anyhow::Result<()> {
    let config = config.clone();
    let totals = supervise(None, move |stop| {
        recast::run_redrive(&config, stop, &options)
    })
    .await?;
    print_redrive(&totals);
    Ok(())
}

/// What this re-drive did, on standard output.
fn print_redrive(totals: &Totals) {
    let counts = &totals.records;
    println!("re-drive: {counts}");
    for (event_type, count) in &counts.events {
        println!("  {count:>8}  {event_type}");
    }
    println!(
        "{} transactions committed, {} aborted",
        totals.committed, totals.aborted
    );
}

/// Runs a loop on its own thread and turns signals into its stop (SIGTERM,
/// SIGINT) and reload (SIGHUP, when `reload` is given) flags.
async fn supervise(
    reload: Option<Arc<AtomicBool>>,
    work: impl FnOnce(&Arc<AtomicBool>) -> Result<Totals, WorkerError> + Send + 'static,
) -> anyhow::Result<Totals> {
    let stop = Arc::new(AtomicBool::new(false));
    // Handlers first: a signal's default action would end the process.
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut sighup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let worker = {
        let stop = stop.clone();
        tokio::task::spawn_blocking(move || work(&stop))
    };
    tokio::pin!(worker);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let result = loop {
        tokio::select! {
            result = &mut worker => break result,
            _ = sighup.recv() => {
                if let Some(reload) = &reload {
                    tracing::info!("SIGHUP: reloading the mapping");
                    reload.store(true, Ordering::Relaxed);
                } else {
                    tracing::warn!("SIGHUP: a re-drive keeps its mapping; restart it to change it");
                }
            }
            _ = &mut ctrl_c => {
                tracing::info!("SIGINT: finishing the open batch, then stopping");
                stop.store(true, Ordering::Relaxed);
                break worker.await;
            }
            _ = sigterm.recv() => {
                tracing::info!("SIGTERM: finishing the open batch, then stopping");
                stop.store(true, Ordering::Relaxed);
                break worker.await;
            }
        }
    };
    match result.context("worker thread panicked")? {
        Ok(totals) => Ok(totals),
        Err(e @ (WorkerError::Startup(_) | WorkerError::Listen { .. })) => {
            bail!("cannot start: {e}")
        }
        Err(e) => Err(anyhow::Error::new(e).context("stopped on a fatal error")),
    }
}

fn load(config: &Config, input: &Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(input).with_context(|| format!("reading {}", input.display()))?;
    let lines = legacy_file::parse(&text).with_context(|| input.display().to_string())?;
    let topic = &config.raw.topics.legacy;
    load::load(
        &recast::client_config(config),
        topic,
        &lines,
        config.raw.kafka.connect_timeout,
    )
    .with_context(|| format!("loading into {topic}"))?;
    println!("loaded {} legacy records into {topic}", lines.len());
    Ok(())
}
