//! Reloading the mapping without a restart (README, "Changing a mapping
//! without a restart"). A request (`SIGHUP`, or a changed file under
//! `mapping.watch`) starts a preparation on its own thread, off the record
//! path: the configuration is read again, its mapping compiled, its golden
//! cases run and its schemas checked against the registry, as `recast
//! check` and `recast test` do. Only a mapping that passes all of it is
//! handed to the loop, which swaps it in between two transactions; any
//! problem leaves the running mapping in place.

use std::collections::BTreeSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::config::{Config, ConfigError, Origin};
use crate::pipeline::Pipeline;
use crate::tools::{check, golden};
use crate::worker::kafka::StartupError;

/// How often `mapping.watch` looks at the files.
const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// Why a new mapping was refused; the running one stays.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{}", .0.join("; "))]
    Checks(Vec<String>),
    #[error("registering the new schemas")]
    Register(#[source] StartupError),
    #[error("the configuration is the embedded default, which cannot change: run with --config")]
    Embedded,
    #[error("the preparation of the new mapping panicked: {0}")]
    Panicked(String),
}

/// What a finished preparation found.
#[derive(Debug)]
pub(crate) enum Prepared {
    /// The files hold the mapping and schemas that run.
    Unchanged,
    /// A new mapping that passed every check, its schemas registered.
    Ready(Box<Ready>),
}

/// A mapping ready to swap in.
#[derive(Debug)]
pub(crate) struct Ready {
    /// The running configuration with the new mapping.
    pub(crate) config: Config,
    pub(crate) pipeline: Pipeline,
}

/// Reload requests and the preparation they started.
#[derive(Debug)]
pub(crate) struct Reloads {
    requested: Arc<AtomicBool>,
    preparing: Option<JoinHandle<Result<Prepared, Refusal>>>,
}

impl Reloads {
    /// Reloads requested by raising `requested`.
    pub(crate) fn new(requested: Arc<AtomicBool>) -> Self {
        Self {
            requested,
            preparing: None,
        }
    }

    /// Called between transactions: returns what a finished preparation
    /// found, or starts one if a reload was requested and none is running.
    /// A request made during a preparation starts another after it, so the
    /// files are always read after the last request.
    pub(crate) fn poll(&mut self, running: &Config) -> Option<Result<Prepared, Refusal>> {
        if self.preparing.as_ref().is_some_and(JoinHandle::is_finished) {
            let finished = self.preparing.take()?.join();
            return Some(finished.unwrap_or_else(|panic| {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|m| (*m).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Err(Refusal::Panicked(message))
            }));
        }
        if self.preparing.is_none() && self.requested.swap(false, Ordering::Relaxed) {
            tracing::info!("reading the mapping again");
            let running = running.clone();
            self.preparing = Some(std::thread::spawn(move || prepare(&running)));
        }
        None
    }
}

/// Reads the configuration again and checks its mapping against the
/// `running` one.
fn prepare(running: &Config) -> Result<Prepared, Refusal> {
    let Origin::File(path) = &running.origin else {
        return Err(Refusal::Embedded);
    };
    // The environment is the one the process started with: a secret
    // rotated in it (`RECAST_MAPPING__HASH_KEY`) needs a restart.
    let loaded = Config::load(Some(path), std::env::vars())?;
    let unreloaded = running.unreloaded_changes(&loaded);
    if !unreloaded.is_empty() {
        tracing::warn!(
            keys = %unreloaded.join(", "),
            "changed, but only the mapping is reloaded: restart to apply these"
        );
    }
    let candidate = running.with_mapping_of(loaded);
    if !candidate.mapping_differs(running) {
        return Ok(Prepared::Unchanged);
    }
    let registry = candidate.registry();
    let mut problems = check::check(&candidate, &[], registry.as_ref()).problems;
    let cases = golden::default_cases_dir(&candidate);
    if cases.is_dir() {
        match golden::case_files(&[cases]).and_then(|files| golden::run(&candidate, &files)) {
            Ok(report) => {
                problems.extend(
                    report
                        .failures
                        .iter()
                        .map(|c| format!("golden case failed: {c}")),
                );
                problems.extend(report.misfits);
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    if !problems.is_empty() {
        return Err(Refusal::Checks(problems));
    }
    // Registering is idempotent: a mapping refused later (its window
    // could not be rebuilt) leaves versions the next attempt reuses.
    let pipeline = super::pipeline(&candidate).map_err(Refusal::Register)?;
    Ok(Prepared::Ready(Box::new(Ready {
        config: candidate,
        pipeline,
    })))
}

/// Raises `requested` whenever a file in the directories of the mapping
/// at start changes (the configuration file, the transforms, the schemas,
/// the golden cases), once the files have stopped changing for one look:
/// an edit caught halfway would be refused. Files are compared by size and
/// modification time, following symbolic links, so a Kubernetes
/// `ConfigMap` update (a swapped link to a new directory) counts.
pub(crate) fn watch(config: &Config, requested: Arc<AtomicBool>) -> std::io::Result<()> {
    if matches!(config.origin, Origin::Embedded) {
        tracing::warn!("mapping.watch: the embedded configuration cannot change; not watching");
        return Ok(());
    }
    let dirs = watched_dirs(config);
    tracing::info!(?dirs, "watching the mapping's files");
    std::thread::Builder::new()
        .name("mapping-watch".into())
        .spawn(move || {
            let mut seen = fingerprint(&dirs);
            let mut changed = false;
            loop {
                std::thread::sleep(WATCH_INTERVAL);
                let now = fingerprint(&dirs);
                if now != seen {
                    seen = now;
                    changed = true;
                } else if changed {
                    changed = false;
                    tracing::info!("a file of the mapping changed");
                    requested.store(true, Ordering::Relaxed);
                }
            }
        })?;
    Ok(())
}

fn watched_dirs(config: &Config) -> BTreeSet<PathBuf> {
    let parent = |file: &str| Path::new(file).parent().map(Path::to_path_buf);
    let mut dirs = BTreeSet::new();
    if let Origin::File(path) = &config.origin {
        dirs.extend(path.parent().map(Path::to_path_buf));
    }
    dirs.extend(config.transforms.iter().filter_map(|t| parent(&t.path)));
    if let Some(schemas) = config.ledger.schemas() {
        dirs.extend(schemas.iter().filter_map(|s| parent(&s.file)));
    }
    dirs.insert(golden::default_cases_dir(config));
    // `Path::parent` of a bare file name is the empty path: the current
    // directory.
    dirs.into_iter()
        .map(|d| {
            if d.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                d
            }
        })
        .collect()
}

/// A hash of every file's name, size and modification time in `dirs`.
fn fingerprint(dirs: &BTreeSet<PathBuf>) -> u64 {
    let mut hasher = DefaultHasher::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            dir.hash(&mut hasher);
            continue;
        };
        let mut files: Vec<(PathBuf, u64, Option<std::time::SystemTime>)> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let path = entry.path();
                let metadata = std::fs::metadata(&path).ok()?;
                metadata
                    .is_file()
                    .then(|| (path, metadata.len(), metadata.modified().ok()))
            })
            .collect();
        files.sort();
        files.hash(&mut hasher);
    }
    hasher.finish()
}
