//! The transaction loop (README, "How it works"): poll a batch,
//! run every record through the pipeline inside one transaction, commit the
//! events, the dead letters and the source offsets together. `recast run`
//! loops over the legacy topic; `recast redrive` runs the same loop over
//! the dead-letter topic (`redrive/`), which differs only in which records
//! it runs and what it checks duplicates against (`State`).
//!
//! The loop never polls while a transaction is open: a batch is polled
//! first, then transacted. Rebalance callbacks run inside `poll`, so a
//! revocation always finds the previous transaction finished, and the
//! buffered records of revoked partitions are simply dropped (their new
//! owner reads them again from the committed offset).

pub(crate) mod decide;
pub(crate) mod explain;
pub(crate) mod kafka;
pub(crate) mod redrive;
pub(crate) mod refusals;
pub(crate) mod reload;
pub(crate) mod restore;
pub(crate) mod sink;
pub(crate) mod source;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::Message;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;

use crate::config::{Config, LedgerOutput};
use crate::pipeline::dead_letter::{self, Protected};
use crate::pipeline::dedupe::DedupeWindow;
use crate::pipeline::event_headers;
use crate::pipeline::record::{LegacyRecord, Position};
use crate::pipeline::{Counts, Encoding, LedgerEvent, Pipeline, RecordOutcome, Rejection};
use crate::registry::Registry;
use crate::telemetry::http::{self, Health};
use crate::telemetry::metrics::Metrics;
use crate::telemetry::rejections::{Note, RejectionLog};
use crate::telemetry::tap::Tap;
use crate::worker::decide::{CHUNK, Chunk, Decided, Decider, Decision, refused_dead_letter};
use crate::worker::kafka::{StartupError, check_cluster};
use crate::worker::redrive::{IndexError, Redrive, RedriveOptions};
use crate::worker::refusals::{Refusals, slots};
use crate::worker::reload::{Prepared, Ready, Reloads};
use crate::worker::restore::{RestoreError, restore};
use crate::worker::sink::{SendError, Sink, TxnError, owned_headers};
use crate::worker::source::{
    Batch, Change, ConsumerFatal, Source, Subscription, first_offsets, legacy_record, next_offsets,
};

/// First wait after a repeated abort; doubles per consecutive abort.
const ABORT_BACKOFF: Duration = Duration::from_millis(50);
const MAX_ABORT_BACKOFF: Duration = Duration::from_secs(30);
/// How often the consumer lag is published (librdkafka measures it every
/// 5 s).
const LAG_INTERVAL: Duration = Duration::from_secs(5);
/// How often an idle loop asks the cluster whether it answers (for
/// `/readyz`), and how long the answer may take.
const IDLE_PROBE_INTERVAL: Duration = Duration::from_secs(1);
const IDLE_PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How often the loop logs a one-line progress summary.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(10);
/// A producer that fails again this many times in a row, each time right
/// after being replaced, has a cause a new one cannot fix: stop, so the
/// orchestrator's restarts and alerts take over.
const MAX_PRODUCER_RENEWALS: u32 = 3;

/// Why the worker stopped with an error: at start-up, or while running.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Startup(#[from] StartupError),
    /// The operations listener could not start (before the group join).
    #[error("http.listen {address}: {error}")]
    Listen {
        address: String,
        error: std::io::Error,
    },
    #[error("consuming the legacy topic")]
    Consumer(#[from] ConsumerFatal),
    #[error(transparent)]
    Transaction(TxnError),
    #[error("the producer failed {renewals} times in a row, each time right after being replaced")]
    ProducerFailing {
        renewals: u32,
        #[source]
        last: TxnError,
    },
    #[error("replacing the failed producer")]
    Renew(#[source] StartupError),
    #[error("aborting after `{reason}`")]
    Abort {
        reason: String,
        #[source]
        source: TxnError,
    },
    #[error("cannot rewind to the committed offsets; restart to resume from them")]
    Rewind(#[source] KafkaError),
    #[error("rebuilding the dedupe window")]
    Restore(#[from] RestoreError),
    #[error("starting the watch of the mapping's files (mapping.watch)")]
    Watch(#[source] std::io::Error),
    #[error("indexing what the ledger holds")]
    Index(#[from] IndexError),
    #[error("dead-letter partition {partition}: its end not reached within {timeout:?}")]
    Stalled { partition: i32, timeout: Duration },
}

/// Options of `recast run` that are not configuration.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Stop (exit 0) once no record has arrived for this long: for backfills
    /// and the quickstart.
    pub stop_when_idle: Option<Duration>,
    /// Raised (by `SIGHUP`) to reload the mapping.
    pub reload: Arc<AtomicBool>,
}

/// What the worker did, summed over its lifetime.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    /// The records of committed transactions, by outcome.
    pub records: Counts,
    pub committed: u64,
    pub aborted: u64,
}

/// Runs the worker until `stop` is raised, the idle limit passes, or a fatal
/// error occurs.
pub fn run(
    config: &Config,
    stop: &Arc<AtomicBool>,
    options: &RunOptions,
) -> Result<Totals, WorkerError> {
    let role = Role {
        name: "worker",
        subscription: Subscription {
            topic: config.raw.topics.legacy.clone(),
            group: config.raw.kafka.group_id.clone(),
        },
        metrics: Metrics::new(&config.raw.topics.legacy),
        stop_when_idle: options.stop_when_idle,
    };
    if config.raw.mapping.watch {
        reload::watch(config, options.reload.clone()).map_err(WorkerError::Watch)?;
    }
    let state = State::Legacy(new_window(config));
    serve(
        config,
        stop,
        role,
        Reloads::new(options.reload.clone()),
        state,
    )
}

/// Re-drives the dead-letter topic (see `redrive.rs`) until `stop` is
/// raised, the idle limit passes, or a fatal error occurs. The mapping
/// is the configuration's: a re-drive does not reload.
pub fn run_redrive(
    config: &Config,
    stop: &Arc<AtomicBool>,
    options: &RedriveOptions,
) -> Result<Totals, WorkerError> {
    let role = Role {
        name: "redrive",
        subscription: Subscription {
            topic: config.raw.topics.dead_letter.clone(),
            group: options.group.clone(),
        },
        metrics: Metrics::for_redrive(&config.raw.topics.legacy),
        stop_when_idle: options.stop_when_idle,
    };
    let state = State::DeadLetters(Box::new(Redrive::new(config, options)?));
    let never = Arc::new(AtomicBool::new(false));
    serve(config, stop, role, Reloads::new(never), state)
}

/// What a loop is: `recast run` or `recast redrive`.
struct Role {
    /// In its log lines.
    name: &'static str,
    /// What it consumes; its producer's `transactional.id` is
    /// `<group>-<instance_id>`.
    subscription: Subscription,
    metrics: Metrics,
    stop_when_idle: Option<Duration>,
}

/// Connects a loop and runs it.
fn serve(
    config: &Config,
    stop: &Arc<AtomicBool>,
    role: Role,
    reloads: Reloads,
    mut state: State,
) -> Result<Totals, WorkerError> {
    let Role {
        name,
        subscription,
        metrics,
        stop_when_idle,
    } = role;
    // A loop that makes no progress for a transaction timeout is stuck.
    let health = Arc::new(Health::new(config.raw.batch.transaction_timeout));
    let tap = (config.raw.http.enabled && config.raw.http.tap)
        .then(|| Arc::new(Tap::new(metrics.clone())));
    if config.raw.http.enabled {
        let address = http::serve(
            &config.raw.http.listen,
            metrics.clone(),
            health.clone(),
            tap.clone(),
        )
        .map_err(|error| WorkerError::Listen {
            address: config.raw.http.listen.clone(),
            error,
        })?;
        tracing::info!(%address, "http listening");
    }
    let partitions = check_cluster(config)?;
    let registry = config.registry();
    let pipeline = pipeline(config)?;
    metrics.mapping_running(pipeline.mapping_version());
    let transactional_id = format!("{}-{}", subscription.group, config.instance_id);
    let sink = Sink::connect(config, &transactional_id)?;
    health.producer_ready();
    let source = Source::connect(config, &subscription)?;
    tracing::info!(
        input = %subscription.topic,
        group = %subscription.group,
        partitions,
        ledger = %config.raw.topics.ledger,
        dead_letter = %config.raw.topics.dead_letter,
        %transactional_id,
        mapping_version = pipeline.mapping_version(),
        "{name} started"
    );
    let mut worker = Worker {
        config,
        registry,
        pipeline,
        source,
        sink,
        transactional_id,
        metrics,
        rejections: Mutex::new(RejectionLog::new(Instant::now())),
        health,
        tap,
        reloads,
        running: config.clone(),
    };
    let totals = worker.run_loop(stop, stop_when_idle, &mut state)?;
    tracing::info!(
        consumed = totals.records.records,
        events = totals.records.events_total(),
        filtered = totals.records.filtered,
        duplicates = totals.records.duplicates,
        rejected = totals.records.rejected_total(),
        skipped = totals.records.skipped_total(),
        transactions = totals.committed,
        aborted = totals.aborted,
        "{name} stopped"
    );
    Ok(totals)
}

/// The core as configured: registering the ledger's schemas first when it
/// writes Avro.
fn pipeline(config: &Config) -> Result<Pipeline, StartupError> {
    let encoding = match &config.ledger {
        LedgerOutput::Avro { schemas, registry } => {
            let ids = registry.register_all(schemas, &config.raw.topics.ledger)?;
            Encoding::Avro(schemas.clone(), ids)
        }
        LedgerOutput::Json { schemas } => Encoding::Json(schemas.clone()),
    };
    Ok(config.pipeline(encoding))
}

struct Worker<'a> {
    config: &'a Config,
    /// Where the writer schemas of Avro legacy values come from.
    registry: Option<Registry>,
    pipeline: Pipeline,
    source: Source,
    sink: Sink,
    transactional_id: String,
    metrics: Metrics,
    /// Which rejections are logged one by one (`write_transaction` has
    /// `&self`: the batch borrows the source).
    rejections: Mutex<RejectionLog>,
    health: Arc<Health>,
    /// The live tap, when `[http] tap` opens it.
    tap: Option<Arc<Tap>>,
    reloads: Reloads,
    /// The configuration whose mapping runs: `config` until a reload.
    running: Config,
}

impl Worker<'_> {
    fn run_loop(
        &mut self,
        stop: &AtomicBool,
        stop_when_idle: Option<Duration>,
        state: &mut State,
    ) -> Result<Totals, WorkerError> {
        let batch_config = &self.config.raw.batch;
        let mut totals = Totals::default();
        let mut transactions = 0u64;
        let mut consecutive_aborts = 0u32;
        let mut consecutive_renewals = 0u32;
        let mut last_record = Instant::now();
        let mut reports = Reports::new();
        let mut refusals = Refusals::default();
        loop {
            self.between_transactions(state, &mut reports, &totals);
            let batch = self.source.poll_batch(
                batch_config.max_records.get(),
                batch_config.linger,
                stop,
            )?;
            let changes = self.source.take_changes();
            if !changes.is_empty() {
                // An assignment restarts the idle clock: new partitions may
                // have records the idle check has not seen yet.
                last_record = Instant::now();
                self.report_changes(&changes);
            }
            self.follow_assignment(state, changes)?;
            if batch.is_empty() {
                if reports.idle_probe_due() && self.source.cluster_answers(IDLE_PROBE_TIMEOUT) {
                    // Idle with nothing to do, and the cluster answers.
                    self.health.progressed();
                }
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                if stop_when_idle.is_some_and(|idle| last_record.elapsed() >= idle)
                    && self.source.assignment_count() > 0
                {
                    tracing::info!("no records for the idle limit; stopping");
                    break;
                }
                continue;
            }
            last_record = Instant::now();
            transactions += 1;
            let failure = match self.transact(&batch, transactions, state, &mut refusals) {
                Ok(batch_totals) => {
                    state.commit();
                    refusals.committed(&next_offsets(&batch));
                    self.settle_traces(true);
                    if let Some(window) = state.window() {
                        self.report_windows(window);
                    }
                    totals.records.add(&batch_totals);
                    totals.committed += 1;
                    reports.last_commit = Some(Instant::now());
                    consecutive_aborts = 0;
                    consecutive_renewals = 0;
                    continue;
                }
                Err(f) if f.error.is_abortable() || f.error.needs_new_producer() => f,
                Err(f) => return Err(WorkerError::Transaction(f.error)),
            };
            // Take the failed batch's keys back: after an abort the window
            // holds exactly the committed ones; after a producer failure it
            // is rebuilt from the committed offsets.
            state.abort();
            let Failed {
                error,
                counts,
                elapsed,
            } = *failure;
            let aborting = error.is_abortable();
            let error = if aborting {
                self.settle_traces(false);
                totals.aborted += 1;
                self.metrics.batch_aborted();
                match self.recover(
                    &batch,
                    &chain(&error),
                    &mut refusals,
                    &mut consecutive_aborts,
                    stop,
                ) {
                    Ok(()) => continue,
                    // The producer failed while aborting.
                    Err(WorkerError::Abort { source, .. }) if source.needs_new_producer() => source,
                    Err(e) => return Err(e),
                }
            } else {
                error
            };
            consecutive_renewals += 1;
            if consecutive_renewals > MAX_PRODUCER_RENEWALS {
                return Err(WorkerError::ProducerFailing {
                    renewals: MAX_PRODUCER_RENEWALS,
                    last: error,
                });
            }
            let (first, next) = (first_offsets(&batch), next_offsets(&batch));
            drop(batch);
            let resumed = self.renew_producer(&error, &first, state)?;
            refusals.committed(&resumed);
            if !aborting {
                self.count_in_doubt(&mut totals, &counts, elapsed, &next, &resumed);
            }
        }
        Ok(totals)
    }

    /// What runs between two transactions, idle or busy: a new mapping
    /// takes over, and the periodic reports are due.
    fn between_transactions(&mut self, state: &mut State, reports: &mut Reports, totals: &Totals) {
        if let Some(reload) = self.reloads.poll(&self.running) {
            self.reloaded(reload, state.window());
        }
        if reports.lag_at.elapsed() >= LAG_INTERVAL {
            reports.lag = self.report_lag().or(reports.lag);
            reports.lag_at = Instant::now();
        }
        reports.progress(totals);
        self.summarize_rejections();
    }

    /// Counts a transaction whose producer failed during it: whether it
    /// committed shows in where the group resumed, past the batch if it did.
    fn count_in_doubt(
        &self,
        totals: &mut Totals,
        counts: &Counts,
        elapsed: Duration,
        next: &BTreeMap<i32, i64>,
        resumed: &BTreeMap<i32, i64>,
    ) {
        if next.iter().all(|(p, n)| resumed.get(p) >= Some(n)) {
            self.settle_traces(true);
            totals.records.add(counts);
            totals.committed += 1;
            self.metrics.batch_committed(counts, elapsed);
        } else {
            self.settle_traces(false);
            totals.aborted += 1;
            self.metrics.batch_aborted();
        }
    }

    /// The transaction's traces go to the live taps, marked with how it
    /// ended.
    fn settle_traces(&self, committed: bool) {
        if let Some(tap) = &self.tap {
            tap.settle(committed);
        }
    }

    /// Acts on a finished reload: swaps a new mapping in, or says why not.
    /// The dedupe windows are rebuilt under it first, into new windows
    /// (a failure refuses the mapping and leaves everything as it was):
    /// keys come from mapped payloads, so a window keeps meaning "these
    /// requests are in the ledger" only if its keys and the next records'
    /// are computed by the same mapping, which is also what a restore after
    /// a crash computes.
    fn reloaded(
        &mut self,
        reload: Result<Prepared, reload::Refusal>,
        window: Option<&mut DedupeWindow>,
    ) {
        let running = self.pipeline.mapping_version().to_owned();
        let refused = |metrics: &Metrics, reason: &dyn std::error::Error| {
            tracing::warn!(reason = %chain(reason), mapping_version = %running, "new mapping refused; the running one stays");
            metrics.reload_refused();
        };
        let ready = match reload {
            Ok(Prepared::Ready(ready)) => ready,
            Ok(Prepared::Unchanged) => {
                tracing::info!(mapping_version = %running, "the mapping is unchanged");
                return;
            }
            Err(refusal) => {
                refused(&self.metrics, &refusal);
                return;
            }
        };
        let Ready { config, pipeline } = *ready;
        if let (Some(window), Some(mut rebuilt)) = (window, new_window(self.config)) {
            let started = Instant::now();
            let assigned = self.source.assigned_partitions();
            let consumer = self.source.consumer();
            if let Err(e) = restore(
                self.config,
                consumer,
                self.registry.as_ref(),
                &pipeline,
                &mut rebuilt,
                &assigned,
            ) {
                refused(&self.metrics, &e);
                return;
            }
            self.metrics.window_restored(started.elapsed());
            *window = rebuilt;
            self.report_windows(window);
        }
        self.pipeline = pipeline;
        self.running = config;
        self.health.progressed();
        let version = self.pipeline.mapping_version();
        self.metrics.mapping_running(version);
        tracing::info!(from = %running, to = %version, "mapping swapped");
    }

    /// Replaces a producer that failed fatally without being fenced (whose
    /// batch the caller already took out of the window). The
    /// new one initialises the same `transactional.id`, which ends the old
    /// one's transaction (aborting it if it was still open). The failure
    /// may have struck after the commit reached the broker, so the batch's
    /// own offsets are no guide: the consumer and the dedupe window resume
    /// from the committed offsets, exactly as after a restart.
    ///
    /// Returns the offsets the partitions resumed from.
    fn renew_producer(
        &mut self,
        failure: &TxnError,
        batch_first: &BTreeMap<i32, i64>,
        state: &mut State,
    ) -> Result<BTreeMap<i32, i64>, WorkerError> {
        tracing::warn!(error = %chain(failure), "the producer failed; replacing it");
        self.sink =
            Sink::connect(self.config, &self.transactional_id).map_err(WorkerError::Renew)?;
        self.metrics.producer_renewed();
        let resumed = self
            .source
            .rewind_to_committed(batch_first, self.config.raw.kafka.connect_timeout)
            .map_err(WorkerError::Rewind)?;
        match state {
            State::Legacy(Some(window)) => {
                self.rebuild_windows(window, &self.source.assigned_partitions())?;
            }
            State::Legacy(None) => {}
            // Whether the failed transaction's events count shows in the
            // ledger and the group's offsets.
            State::DeadLetters(redrive) => self.index_ledger(redrive)?,
        }
        tracing::info!(
            ?resumed,
            "producer replaced; resuming from the committed offsets"
        );
        Ok(resumed)
    }

    /// Aborts the open transaction and rewinds its partitions, so the batch
    /// is polled and transacted again. Backs off when aborts repeat: a cause
    /// that persists (an unwritable ledger, a missing ACL) would spin. But
    /// an attempt that found records the broker refuses (`refusals`) made
    /// progress: its retry goes at once, and counts as a first abort.
    fn recover(
        &self,
        batch: &Batch<'_>,
        reason: &str,
        refusals: &mut Refusals,
        consecutive_aborts: &mut u32,
        stop: &AtomicBool,
    ) -> Result<(), WorkerError> {
        tracing::warn!(%reason, records = batch.len(), "aborting transaction");
        self.sink.abort().map_err(|source| WorkerError::Abort {
            reason: reason.to_owned(),
            source,
        })?;
        self.source
            .rewind(&first_offsets(batch))
            .map_err(WorkerError::Rewind)?;
        refusals.learn(self.sink.take_refused(), None, slots(batch));
        *consecutive_aborts += 1;
        if refusals.take_news() {
            tracing::warn!("the broker refused records of the batch; the retry finds which");
            *consecutive_aborts = 0;
            return Ok(());
        }
        let consecutive_aborts = *consecutive_aborts;
        if consecutive_aborts > 1 {
            let backoff = ABORT_BACKOFF
                .saturating_mul(1 << consecutive_aborts.min(10))
                .min(MAX_ABORT_BACKOFF);
            tracing::warn!(?backoff, consecutive_aborts, "backing off before retrying");
            let until = Instant::now() + backoff;
            while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50).min(backoff));
            }
        }
        Ok(())
    }

    /// Keeps the dedupe windows in step with the assignment: forget revoked
    /// partitions, rebuild assigned ones before any of their records is
    /// processed. A re-drive reads what the ledger gained instead: the
    /// dead letters assigned may have been re-driven by another instance.
    fn follow_assignment(
        &self,
        state: &mut State,
        changes: Vec<Change>,
    ) -> Result<(), WorkerError> {
        let window = match state {
            State::Legacy(Some(window)) => window,
            State::Legacy(None) => return Ok(()),
            State::DeadLetters(redrive) => {
                if changes
                    .iter()
                    .any(|c| matches!(c, Change::Assigned(p) if !p.is_empty()))
                {
                    self.index_ledger(redrive)?;
                }
                return Ok(());
            }
        };
        for change in changes {
            match change {
                Change::Revoked(partitions) => {
                    for partition in partitions {
                        window.drop_partition(partition);
                    }
                }
                Change::Assigned(partitions) if !partitions.is_empty() => {
                    self.rebuild_windows(window, &partitions)?;
                }
                Change::Assigned(_) => {}
            }
        }
        Ok(())
    }

    /// Rebuilds the windows of `partitions` from the legacy log, replacing
    /// what they held.
    fn rebuild_windows(
        &self,
        window: &mut DedupeWindow,
        partitions: &[i32],
    ) -> Result<(), WorkerError> {
        let started = Instant::now();
        restore(
            self.config,
            self.source.consumer(),
            self.registry.as_ref(),
            &self.pipeline,
            window,
            partitions,
        )?;
        self.metrics.window_restored(started.elapsed());
        self.report_windows(window);
        Ok(())
    }

    /// Once per interval, how many rejections were not logged in full.
    fn summarize_rejections(&self) {
        let summary = self
            .rejections
            .lock()
            .expect("rejection log lock")
            .summary(Instant::now());
        for (stage, reason, more) in summary.into_iter().flatten() {
            tracing::info!(
                stage = stage.as_str(),
                %reason,
                more,
                "more like this to the dead-letter topic (not logged one by one; \
                 `recast explain --topic dead-letter` shows any of them)"
            );
        }
    }

    /// Brings a re-drive's index of the ledger up to date.
    fn index_ledger(&self, redrive: &mut Redrive) -> Result<(), WorkerError> {
        let started = Instant::now();
        redrive.catch_up(
            self.source.consumer(),
            self.config.raw.kafka.connect_timeout,
        )?;
        self.metrics.window_restored(started.elapsed());
        Ok(())
    }

    fn report_changes(&self, changes: &[Change]) {
        for change in changes {
            match change {
                Change::Assigned(_) => self.metrics.rebalanced("assigned"),
                Change::Revoked(partitions) => {
                    self.metrics.rebalanced("revoked");
                    for partition in partitions {
                        self.metrics.partition_revoked(*partition);
                    }
                }
            }
        }
        self.health.joined();
        self.metrics
            .partitions_assigned(self.source.assignment_count());
    }

    /// Publishes each assigned partition's lag; returns the total.
    fn report_lag(&self) -> Option<i64> {
        let lag = self.source.lag();
        for (partition, records) in &lag {
            self.metrics.lag(*partition, *records);
        }
        (!lag.is_empty()).then(|| lag.values().sum())
    }

    fn report_windows(&self, window: &DedupeWindow) {
        for partition in window.partitions() {
            self.metrics.window_size(partition, window.len(partition));
        }
    }

    /// Runs one batch as one transaction.
    fn transact(
        &self,
        batch: &Batch<'_>,
        sequence: u64,
        state: &mut State,
        refusals: &mut Refusals,
    ) -> Result<Counts, Box<Failed>> {
        let first = batch.first().map_or(0, Message::offset);
        let span = tracing::debug_span!("transaction", sequence, records = batch.len(), first);
        let _entered = span.enter();
        let started = Instant::now();
        let mut counts = Counts::default();
        match self.write_transaction(batch, sequence, state, refusals, &mut counts) {
            Ok(()) => {
                self.metrics.batch_committed(&counts, started.elapsed());
                self.health.progressed();
                tracing::debug!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    %counts,
                    "committed"
                );
                Ok(counts)
            }
            Err(error) => Err(Box::new(Failed {
                error,
                counts,
                elapsed: started.elapsed(),
            })),
        }
    }

    /// Writes the batch's events and dead letters, sends its offsets and
    /// commits; `counts` sums what its records came to.
    fn write_transaction(
        &self,
        batch: &Batch<'_>,
        sequence: u64,
        state: &mut State,
        refusals: &mut Refusals,
        counts: &mut Counts,
    ) -> Result<(), TxnError> {
        if let (Some(registry), Some(schemas)) = (&self.registry, self.pipeline.writer_schemas()) {
            registry
                .fetch_writer_schemas(schemas, batch.iter().map(Message::payload))
                .map_err(TxnError::Registry)?;
        }
        self.sink.begin()?;
        let records: Vec<LegacyRecord<'_>> = batch.iter().map(legacy_record).collect();
        let known = refusals.clone();
        let decider = Decider {
            pipeline: &self.pipeline,
            tap: self.tap.as_deref(),
            dead_letter_topic: &self.config.raw.topics.dead_letter,
            refusals: &known,
            recorded_at_ms: now_ms(),
        };
        if self.config.raw.batch.threads.get() > 1 {
            decider.decide_aside(&records, state, |chunks| {
                self.write_chunks(chunks, &records, refusals, batch, counts)
            })?;
        } else {
            let mut chunks = records
                .chunks(CHUNK)
                .enumerate()
                .map(|(number, chunk)| decider.decide_chunk(number * CHUNK, chunk, state));
            self.write_chunks(&mut chunks, &records, refusals, batch, counts)?;
        }
        let group = self
            .source
            .consumer()
            .group_metadata()
            .ok_or_else(|| TxnError::Abort("no consumer group metadata yet".into()))?;
        self.sink
            .send_offsets(&self.source.next_offsets(batch), &group)?;
        let chaos = &self.config.raw.chaos;
        if chaos.abort_transactions.contains(&sequence) {
            return Err(TxnError::Abort(format!(
                "chaos.abort_transactions names transaction {sequence}"
            )));
        }
        if chaos.fail_producer_before_commit.contains(&sequence) {
            return Err(self
                .sink
                .drill_failure("fail_producer_before_commit", sequence));
        }
        self.sink.commit()?;
        if chaos.fail_producer_after_commit.contains(&sequence) {
            return Err(self
                .sink
                .drill_failure("fail_producer_after_commit", sequence));
        }
        Ok(())
    }

    /// Writes the batch's decided chunks as they come; `records` are the
    /// batch's, as read.
    fn write_chunks(
        &self,
        chunks: &mut dyn Iterator<Item = Chunk<'_>>,
        records: &[LegacyRecord<'_>],
        refusals: &mut Refusals,
        batch: &Batch<'_>,
        counts: &mut Counts,
    ) -> Result<(), TxnError> {
        for chunk in chunks {
            for decided in chunk? {
                let read = &records[decided.slot];
                self.write_decided(decided, read, refusals, batch, counts)?;
            }
        }
        Ok(())
    }

    /// Writes what a decided record came to, and counts it. A record that
    /// goes alone is sent with nothing else in flight, and settled.
    fn write_decided(
        &self,
        decided: Decided<'_>,
        read: &LegacyRecord<'_>,
        refusals: &mut Refusals,
        batch: &Batch<'_>,
        counts: &mut Counts,
    ) -> Result<(), TxnError> {
        let Decided {
            slot,
            alone,
            decision,
            trace,
        } = decided;
        if alone {
            self.sink.await_in_flight();
        }
        match &decision {
            Decision::Skip(why) => counts.skip(why),
            Decision::Write {
                ran_as,
                outcome,
                redriven_from,
            } => {
                let record = ran_as.as_ref().unwrap_or(read);
                self.write(slot, record, outcome, *redriven_from)?;
                counts.count(outcome);
            }
        }
        if alone {
            let at = (read.position.partition, read.position.offset);
            self.settle_alone(slot, at, refusals, slots(batch))?;
        }
        if let Some(tap) = &self.tap {
            tap.stage(read, self.pipeline.mapping_version(), trace);
        }
        Ok(())
    }

    /// Waits for what the record in `slot`, sent alone, came to. Refused:
    /// the attempt ends here, and the retry dead-letters it; a refused dead
    /// letter stops the worker.
    fn settle_alone(
        &self,
        slot: usize,
        at: (i32, i64),
        refusals: &mut Refusals,
        positions: impl Fn(usize) -> Option<(i32, i64)>,
    ) -> Result<(), TxnError> {
        self.sink.await_in_flight();
        let refused = self.sink.take_refused();
        let this_one = refused.iter().any(|r| r.slot == slot);
        refusals.learn(refused, Some(slot), positions);
        let Some(refusal) = refusals.confirmed(at).filter(|_| this_one) else {
            return Ok(());
        };
        let (partition, offset) = at;
        if refusal.topic == self.config.raw.topics.dead_letter {
            return Err(refused_dead_letter(refusal, partition, offset));
        }
        Err(TxnError::Abort(format!(
            "the broker refused the event of partition {partition} offset {offset} \
             for `{}` ({}); the retry dead-letters that record",
            refusal.topic, refusal.reason
        )))
    }

    /// Writes what a record came to: its events to the ledger, or the
    /// record to the dead-letter topic. `redriven_from` is the dead letter
    /// a re-drive read it from; `slot` is the batch's record it came from.
    fn write(
        &self,
        slot: usize,
        record: &LegacyRecord<'_>,
        outcome: &RecordOutcome,
        redriven_from: Option<Position<'_>>,
    ) -> Result<(), TxnError> {
        match outcome {
            RecordOutcome::Events(events) => {
                self.write_events(slot, record.position, events, redriven_from)
            }
            RecordOutcome::Duplicate { of_offset } => {
                tracing::debug!(position = %record.position, of_offset, "duplicate");
                Ok(())
            }
            RecordOutcome::Filtered => Ok(()),
            RecordOutcome::Rejected(rejection) => self.dead_letter(slot, record, rejection),
        }
    }

    /// Writes a record's events to the ledger, each with the headers that
    /// say where it came from (`event_headers`).
    fn write_events(
        &self,
        slot: usize,
        source: Position<'_>,
        events: &[LedgerEvent],
        redriven_from: Option<Position<'_>>,
    ) -> Result<(), TxnError> {
        for event in events {
            let headers = event_headers::headers(source, event, redriven_from);
            self.sink
                .send(
                    slot,
                    &self.config.raw.topics.ledger,
                    Some(event.key.as_bytes()),
                    Some(&event.value),
                    owned_headers(headers.pairs().map(|(k, v)| (k, Some(v)))),
                )
                .map_err(|e| match e {
                    // Sizes were checked against limits.max_output_bytes,
                    // and the producer is configured above it: only a
                    // lower message.max.bytes override gets here.
                    SendError::TooLarge => TxnError::Refused(format!(
                        "the producer refused an event of {} bytes, within limits.max_output_bytes; \
                         keep kafka.properties \"message.max.bytes\" above that limit",
                        event.key.len() + event.value.len()
                    )),
                    SendError::Txn(e) => e,
                })?;
        }
        Ok(())
    }

    /// Writes a rejected legacy record, unchanged, to the dead-letter topic.
    fn dead_letter(
        &self,
        slot: usize,
        record: &LegacyRecord<'_>,
        rejection: &Rejection,
    ) -> Result<(), TxnError> {
        let span = tracing::info_span!(
            "rejected",
            position = %record.position,
            stage = rejection.stage.as_str(),
            reason = %rejection.reason,
        );
        let _entered = span.enter();
        let note = self
            .rejections
            .lock()
            .expect("rejection log lock")
            .note(rejection);
        let position = record.position;
        // The command that says why, step by step (formatted only when logged).
        let explain = format_args!(
            "recast explain --topic legacy --partition {} --offset {}",
            position.partition, position.offset
        );
        match note {
            Note::Log => tracing::info!(%explain, "to the dead-letter topic"),
            Note::Suppressed => tracing::debug!(%explain, "to the dead-letter topic"),
        }
        let mut ours = dead_letter::headers(
            record.position,
            record.timestamp_ms,
            rejection,
            self.pipeline.mapping_version(),
        );
        let protected = self
            .config
            .protection
            .as_ref()
            .map_or(Protected::AsItCame, |p| {
                dead_letter::protect(record.value, p, self.config.raw.dead_letter.undecodable)
            });
        let (key, value) = match &protected {
            Protected::AsItCame => (record.key, record.value),
            Protected::Rewritten { value, fields } => {
                ours.push(dead_letter::protected(fields));
                (record.key, Some(value.as_slice()))
            }
            Protected::Omitted => {
                ours.push(dead_letter::value_omitted(
                    record.value.map_or(0, <[u8]>::len),
                    record.key.map_or(0, <[u8]>::len),
                    dead_letter::NOT_PROTECTABLE,
                ));
                (None, None)
            }
        };
        let headers = |extra: Option<&(&'static str, String)>| {
            owned_headers(
                record.headers.iter().copied().chain(
                    ours.iter()
                        .chain(extra)
                        .map(|(k, v)| (*k, Some(v.as_bytes()))),
                ),
            )
        };
        let topic = &self.config.raw.topics.dead_letter;
        match self.sink.send(slot, topic, key, value, headers(None)) {
            Ok(()) => return Ok(()),
            Err(SendError::Txn(e)) => return Err(e),
            Err(SendError::TooLarge) => {}
        }
        // Too large to copy: keep the record countable and findable by
        // writing it without key and value, with a header that says so. The
        // source position in the headers leads to the original.
        let omitted = dead_letter::value_omitted(
            value.map_or(0, <[u8]>::len),
            key.map_or(0, <[u8]>::len),
            dead_letter::TOO_LARGE,
        );
        match self
            .sink
            .send(slot, topic, None, None, headers(Some(&omitted)))
        {
            Ok(()) => Ok(()),
            Err(SendError::Txn(e)) => Err(e),
            Err(SendError::TooLarge) => Err(TxnError::Refused(format!(
                "{}: even without key and value, the dead letter's headers exceed \
                 limits.max_output_bytes ({}); raise it",
                record.position,
                self.sink.max_output_bytes()
            ))),
        }
    }
}

/// What the loop keeps between transactions to drop duplicates, by role.
enum State {
    /// `recast run`: windows over the legacy log, when `[dedupe]` asks.
    Legacy(Option<DedupeWindow>),
    /// `recast redrive`: what the ledger holds, and which dead letters to
    /// run.
    DeadLetters(Box<Redrive>),
}

impl State {
    /// The transaction committed: what it remembered stays.
    fn commit(&mut self) {
        match self {
            State::Legacy(Some(window)) => window.commit(),
            State::Legacy(None) => {}
            State::DeadLetters(redrive) => redrive.index.commit(),
        }
    }

    /// The transaction failed: what it remembered never happened.
    fn abort(&mut self) {
        match self {
            State::Legacy(Some(window)) => window.abort(),
            State::Legacy(None) => {}
            State::DeadLetters(redrive) => redrive.index.abort(),
        }
    }

    /// The legacy record `read` stands for when it is not itself: the
    /// record a dead letter holds (an unreadable one stands for itself).
    fn original<'a>(&self, read: &LegacyRecord<'a>) -> Option<LegacyRecord<'a>> {
        match self {
            State::Legacy(_) => None,
            State::DeadLetters(_) => dead_letter::read(read).ok().map(|d| d.record),
        }
    }

    fn window(&mut self) -> Option<&mut DedupeWindow> {
        match self {
            State::Legacy(window) => window.as_mut(),
            State::DeadLetters(_) => None,
        }
    }
}

/// A transaction that failed, with what its records came to (all of them,
/// when it failed at or after the commit) and how long it ran.
struct Failed {
    error: TxnError,
    counts: Counts,
    elapsed: Duration,
}

/// The dedupe window `[dedupe]` asks for, empty.
fn new_window(config: &Config) -> Option<DedupeWindow> {
    config
        .raw
        .dedupe
        .as_ref()
        .map(|d| DedupeWindow::new(d.capacity.get(), d.ttl))
}

/// An error and its sources, `: `-separated, for a log line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// What the loop's periodic reports remember between two of them.
struct Reports {
    /// When the lag was last published, and the total it found.
    lag_at: Instant,
    lag: Option<i64>,
    /// When the last progress line was due, and the totals then.
    since: (Instant, Totals),
    last_commit: Option<Instant>,
    /// When an idle loop last asked the cluster whether it answers.
    probed_at: Option<Instant>,
}

impl Reports {
    fn new() -> Self {
        Self {
            lag_at: Instant::now(),
            lag: None,
            since: (Instant::now(), Totals::default()),
            last_commit: None,
            probed_at: None,
        }
    }

    /// Whether an idle loop should ask the cluster again; if so, from now
    /// on it has.
    fn idle_probe_due(&mut self) -> bool {
        let due = self
            .probed_at
            .is_none_or(|at| at.elapsed() >= IDLE_PROBE_INTERVAL);
        if due {
            self.probed_at = Some(Instant::now());
        }
        due
    }

    /// The one-line summary per interval of activity, for people reading
    /// logs.
    fn progress(&mut self, now: &Totals) {
        if self.since.0.elapsed() < PROGRESS_INTERVAL {
            return;
        }
        let since = &self.since.1;
        if now != since {
            let seconds = self.since.0.elapsed().as_secs_f64().max(0.001);
            let rate = |a: u64, b: u64| (a.saturating_sub(b)) as f64 / seconds;
            tracing::info!(
                in_per_s = format!("{:.0}", rate(now.records.records, since.records.records)),
                out_per_s = format!(
                    "{:.0}",
                    rate(now.records.events_total(), since.records.events_total())
                ),
                lag = self.lag,
                last_commit_ms_ago = self.last_commit.map(|t| t.elapsed().as_millis() as u64),
                committed = now.committed,
                aborted = now.aborted,
                "progress"
            );
        }
        self.since = (Instant::now(), now.clone());
    }
}

/// The wall clock, as `recorded_at` of the events written now.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
