//! The store writer: one thread owning the daemon's only database
//! connection, and the event loop's non-blocking handle to it.
//!
//! The loop calls [`Writer::record`] and [`Writer::session`]; they coalesce
//! into a loop-local batch and hand it over with `try_lock`, so the loop
//! never waits for the writer, let alone the disk. Each flush interval the
//! thread swaps the shared batch out (a pointer swap under the lock) and
//! commits it as one transaction. Failed commits keep the batch, merge
//! newer data into it and retry; nothing is dropped. The thread also
//! notices configuration changes (`PRAGMA data_version` plus a generation
//! counter the CLI's triggers bump) and a deleted database file.

use super::error::{Result, StoreError};
use super::snapshot::Snapshot;
use super::usage::Batch;
use super::users::users_from;
use super::{OpenOptions, SessionRecord, Store, file_id};
use crate::auth::Users;
use crate::quota::{Charge, Date, QuotaConfig};
use rusqlite::TransactionBehavior;
use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// Writer tuning; the defaults suit a router.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Commit pending usage this often (at most one interval is lost in a crash).
    pub flush_interval: Duration,
    /// How often to look for configuration changes and a deleted file.
    pub reload_check: Duration,
    /// Session records held individually before folding (see [`Batch`]);
    /// about 150 bytes each.
    pub session_cap: usize,
    /// How long shutdown keeps retrying a failing commit before giving up.
    pub drain_timeout: Duration,
    /// A copy of the database kept elsewhere (flash, while the live file is
    /// in RAM): written after a configuration change, at shutdown, and
    /// every `persist_interval` when usage was committed since the last one.
    pub persist: Option<PathBuf>,
    pub persist_interval: Duration,
}

impl Default for WriterConfig {
    fn default() -> WriterConfig {
        WriterConfig {
            flush_interval: Duration::from_secs(1),
            reload_check: Duration::from_millis(500),
            session_cap: 10_000,
            drain_timeout: Duration::from_secs(10),
            persist: None,
            persist_interval: Duration::from_secs(3600),
        }
    }
}

/// Configuration the writer loaded after a change, for the loop to apply.
pub struct Reload {
    pub users: Users,
    pub quota: QuotaConfig,
}

/// How saving is going, for status reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// The current failure; None while commits succeed.
    pub error: Option<String>,
    pub failing_since: Option<SystemTime>,
    /// Usage entries and session records held in memory, not yet committed.
    pub pending_deltas: usize,
    pub pending_sessions: u64,
    pub last_commit: Option<SystemTime>,
    /// Totals since start.
    pub commits: u64,
    pub committed_deltas: u64,
    pub committed_sessions: u64,
    /// How long the last and the slowest commit took (writer thread only;
    /// the loop never waits for them).
    pub last_commit_time: Duration,
    pub max_commit_time: Duration,
}

enum Control {
    Reload,
    /// Flush now and answer whether nothing is left pending.
    Flush(mpsc::Sender<bool>),
    Shutdown,
}

struct Shared {
    /// Published by the loop, taken by the writer each flush.
    batch: Mutex<Batch>,
    health: Mutex<Health>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not stop accounting; the data is still whole.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The event loop's side of the store writer. Not `Sync`: it belongs to
/// the loop thread (it may be moved there).
pub struct Writer {
    shared: Arc<Shared>,
    ctl: mpsc::Sender<Control>,
    reloads: mpsc::Receiver<Reload>,
    thread: Option<JoinHandle<()>>,
    /// Data the shared batch was busy for; handed over on the next call.
    local: RefCell<Batch>,
}

impl Writer {
    /// Starts the writer thread on `store`'s connection. `quota` is the
    /// configuration the loop starts with (the thread needs its zone to
    /// prune old rows).
    pub fn start(store: Store, quota: &QuotaConfig, config: WriterConfig) -> Result<Writer> {
        let snapshot = Snapshot::take(&store)?;
        let data_version = store.data_version()?;
        let generation = store.config_generation()?;
        let path = store.path().to_path_buf();
        Writer::spawn(path, Some(store), snapshot, (data_version, generation), quota, config)
    }

    /// Starts the writer for a database that could only be opened with
    /// [`Store::open_read_only`] (read-only file system, unwritable file):
    /// the daemon serves with what it loaded, keeps usage in memory and
    /// retries opening the file for writing every flush interval.
    pub fn start_degraded(read_only: Store, quota: &QuotaConfig, config: WriterConfig) -> Result<Writer> {
        let snapshot = Snapshot::take(&read_only)?;
        let path = read_only.path().to_path_buf();
        drop(read_only);
        Writer::spawn(path, None, snapshot, (i64::MIN, i64::MIN), quota, config)
    }

    fn spawn(
        path: PathBuf,
        store: Option<Store>,
        snapshot: Snapshot,
        (data_version, generation): (i64, i64),
        quota: &QuotaConfig,
        config: WriterConfig,
    ) -> Result<Writer> {
        let shared = Arc::new(Shared {
            batch: Mutex::new(Batch::new(config.session_cap)),
            health: Mutex::new(Health::default()),
        });
        let (ctl, ctl_rx) = mpsc::channel();
        let (reload_tx, reloads) = mpsc::channel();
        let worker = Worker {
            path: path.clone(),
            store,
            shared: shared.clone(),
            reloads: reload_tx,
            pending: Batch::new(config.session_cap),
            config: config.clone(),
            snapshot,
            quota: quota.clone(),
            data_version,
            generation,
            episode: None,
            reload_failing: false,
            pruned_on: None,
            unsaved: false,
        };
        let thread = std::thread::Builder::new()
            .name("btestd-store".into())
            .spawn(move || worker.run(ctl_rx))
            .map_err(|e| StoreError::Io { path, detail: format!("cannot start the writer thread: {e}") })?;
        Ok(Writer { shared, ctl, reloads, thread: Some(thread), local: RefCell::new(Batch::new(config.session_cap)) })
    }

    /// Queues what the ledger charged for the usage rows of its subjects
    /// and day, exactly as the ledger classified them. Never blocks.
    pub fn record(&self, charge: &Charge) {
        if charge.rx == 0 && charge.tx == 0 {
            return;
        }
        let mut local = self.local.borrow_mut();
        local.add_charge(charge);
        self.publish(&mut local, false);
    }

    /// Queues a finished test's record. Never blocks.
    pub fn session(&self, record: SessionRecord) {
        let mut local = self.local.borrow_mut();
        local.add_session(record);
        self.publish(&mut local, false);
    }

    /// Moves the local batch into the shared one if the lock is free (or
    /// always, when `wait`).
    fn publish(&self, local: &mut Batch, wait: bool) {
        if local.is_empty() {
            return;
        }
        let mut guard = match self.shared.batch.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) if wait => lock(&self.shared.batch),
            Err(TryLockError::WouldBlock) => return,
        };
        local.drain_into(&mut guard);
    }

    /// Configuration changed since the last call, if it did. Call it once
    /// a second from the loop's tick; apply `quota` to the ledger and
    /// `users` to authentication.
    pub fn poll_reload(&self) -> Option<Reload> {
        // Also hands over data a busy lock left behind, so it cannot sit in
        // the loop while no new deltas arrive.
        self.publish(&mut self.local.borrow_mut(), false);
        let mut last = None;
        while let Ok(r) = self.reloads.try_recv() {
            last = Some(r);
        }
        last
    }

    /// Asks for an immediate reload (SIGHUP); it arrives via [`Writer::poll_reload`].
    pub fn request_reload(&self) {
        let _ = self.ctl.send(Control::Reload);
    }

    /// The writer's state, or None if it is being updated this instant.
    pub fn health(&self) -> Option<Health> {
        let mut h = match self.shared.health.try_lock() {
            Ok(h) => h.clone(),
            Err(TryLockError::Poisoned(p)) => p.into_inner().clone(),
            Err(TryLockError::WouldBlock) => return None,
        };
        if self.thread.as_ref().is_none_or(JoinHandle::is_finished) {
            h.error = Some("the database writer thread has stopped; usage is no longer saved".into());
        }
        Some(h)
    }

    /// Commits everything queued so far, waiting up to `timeout`; true
    /// when all of it is in the database. For tests and tools: the event
    /// loop must not call this.
    pub fn sync(&self, timeout: Duration) -> bool {
        self.publish(&mut self.local.borrow_mut(), true);
        let (tx, rx) = mpsc::channel();
        if self.ctl.send(Control::Flush(tx)).is_err() {
            return false;
        }
        rx.recv_timeout(timeout).unwrap_or(false)
    }

    /// Commits everything queued (retrying a failing disk for up to the
    /// drain timeout) and stops the thread. For SIGTERM.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(thread) = self.thread.take() else { return };
        self.publish(&mut self.local.borrow_mut(), true);
        let _ = self.ctl.send(Control::Shutdown);
        if thread.join().is_err() {
            log::error!("the database writer thread failed; the last usage may not be saved");
        }
    }
}

// The loop may create the writer before moving into its own thread.
const _: fn() = || {
    fn is_send<T: Send>() {}
    is_send::<Writer>();
};

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A run of failed commits, logged once at its start and once at its end.
struct Episode {
    kind: &'static str,
    since: Instant,
    last_log: Instant,
}

/// Repeat a still-failing episode in the log this often.
const REMIND_EVERY: Duration = Duration::from_secs(600);

struct Worker {
    path: PathBuf,
    /// None while the file cannot be (re)opened.
    store: Option<Store>,
    shared: Arc<Shared>,
    reloads: mpsc::Sender<Reload>,
    /// Taken from the loop, not yet committed.
    pending: Batch,
    config: WriterConfig,
    snapshot: Snapshot,
    /// The thread's own copy of the configuration, for the zone old rows
    /// are pruned in; kept in step by [`Worker::reload`]. A copy because the
    /// loop's ledger (the one that classifies usage) lives on another
    /// thread; it only ever differs while a reload is on its way to the loop.
    quota: QuotaConfig,
    data_version: i64,
    generation: i64,
    episode: Option<Episode>,
    reload_failing: bool,
    /// Day the old rows were last pruned.
    pruned_on: Option<Date>,
    /// Commits since the last persisted copy.
    unsaved: bool,
}

impl Worker {
    fn run(mut self, ctl: mpsc::Receiver<Control>) {
        let start = Instant::now();
        let mut next_flush = start + self.config.flush_interval;
        let mut next_check = start + self.config.reload_check;
        let mut next_persist = start + self.config.persist_interval;
        self.prune_daily();
        loop {
            let mut wake = next_flush.min(next_check);
            if self.config.persist.is_some() {
                wake = wake.min(next_persist);
            }
            match ctl.recv_timeout(wake.saturating_duration_since(Instant::now())) {
                Ok(Control::Reload) => {
                    if self.ensure_file().is_ok() {
                        self.reload(true);
                    }
                }
                Ok(Control::Flush(ack)) => {
                    self.flush();
                    let _ = ack.send(self.pending.is_empty());
                }
                Ok(Control::Shutdown) | Err(RecvTimeoutError::Disconnected) => {
                    self.drain();
                    self.persist("at stop", false);
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            let now = Instant::now();
            if now >= next_flush {
                self.flush();
                self.prune_daily();
                next_flush = now + self.config.flush_interval;
            }
            if now >= next_check {
                if self.ensure_file().is_ok() {
                    self.reload(false);
                }
                next_check = now + self.config.reload_check;
            }
            if now >= next_persist {
                self.persist("on interval", false);
                next_persist = now + self.config.persist_interval;
            }
        }
    }

    /// Writes the flash copy, if there is one and it is behind (or always,
    /// when `force`); a failure is logged and the next interval, change or
    /// stop tries again.
    fn persist(&mut self, why: &str, force: bool) {
        let (Some(target), Some(store)) = (self.config.persist.as_ref(), self.store.as_ref()) else { return };
        if !force && !self.unsaved && target.exists() {
            return;
        }
        match super::persist::save(store, target) {
            Ok(bytes) => {
                self.unsaved = false;
                log::info!("database saved to {} ({why}, {bytes} bytes)", target.display());
            }
            Err(e) => log::error!(
                "cannot save the database copy ({why}): {e}; usage since the last copy is only in {}",
                self.path.display()
            ),
        }
    }

    /// Commits the pending batch plus whatever the loop published.
    fn flush(&mut self) {
        let fresh = lock(&self.shared.batch).take();
        self.pending.merge(fresh);
        if self.pending.is_empty() {
            return;
        }
        let (deltas, sessions) = (self.pending.pending_deltas(), self.pending.pending_sessions());
        let started = Instant::now();
        match self.ensure_file().and_then(|()| self.commit()) {
            Ok(()) => {
                let took = started.elapsed();
                self.pending = Batch::new(self.config.session_cap);
                self.unsaved = true;
                if let Some(ep) = self.episode.take() {
                    log::info!(
                        "usage is being saved to {} again after {} s of failures; {deltas} usage entries and \
                         {sessions} session records held in memory meanwhile are now written",
                        self.path.display(),
                        ep.since.elapsed().as_secs()
                    );
                }
                let mut h = lock(&self.shared.health);
                h.error = None;
                h.failing_since = None;
                h.pending_deltas = 0;
                h.pending_sessions = 0;
                h.last_commit = Some(SystemTime::now());
                h.commits += 1;
                h.committed_deltas += deltas as u64;
                h.committed_sessions += sessions;
                h.last_commit_time = took;
                h.max_commit_time = h.max_commit_time.max(took);
            }
            Err(e) => self.failed(&e),
        }
    }

    fn commit(&mut self) -> Result<()> {
        let Some(store) = self.store.as_mut() else {
            return Err(StoreError::Deleted { path: self.path.clone() });
        };
        let path = store.path().to_path_buf();
        let sql = |e| StoreError::from_sql(&path, e);
        let tx = store.conn_mut().transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql)?;
        self.pending.write(&tx).map_err(sql)?;
        tx.commit().map_err(sql)
    }

    fn failed(&mut self, e: &StoreError) {
        let (deltas, sessions) = (self.pending.pending_deltas(), self.pending.pending_sessions());
        let now = Instant::now();
        match &mut self.episode {
            None => {
                log::error!(
                    "cannot save usage: {e}; keeping {deltas} usage entries and {sessions} session records in \
                     memory (accounting and quotas go on) and retrying every {} ms",
                    self.config.flush_interval.as_millis()
                );
                self.episode = Some(Episode { kind: e.kind(), since: now, last_log: now });
            }
            Some(ep) if ep.kind != e.kind() => {
                log::error!("still cannot save usage, now because: {e}");
                ep.kind = e.kind();
                ep.last_log = now;
            }
            Some(ep) if now.duration_since(ep.last_log) >= REMIND_EVERY => {
                log::warn!(
                    "still cannot save usage after {} s: {e}; {deltas} usage entries and {sessions} session \
                     records held in memory",
                    ep.since.elapsed().as_secs()
                );
                ep.last_log = now;
            }
            Some(_) => {}
        }
        let mut h = lock(&self.shared.health);
        if h.failing_since.is_none() {
            h.failing_since = Some(SystemTime::now());
        }
        h.error = Some(e.to_string());
        h.pending_deltas = deltas;
        h.pending_sessions = sessions;
    }

    /// Makes sure the connection is on the file at `path`: recreates a
    /// deleted database from the last loaded users and limits, follows a
    /// replaced one, reopens after an earlier failure.
    fn ensure_file(&mut self) -> Result<()> {
        let current = file_id(&self.path);
        let open = self.store.as_ref().and_then(Store::file_id);
        if current.is_some() && current == open {
            return Ok(());
        }
        let had_store = self.store.take().is_some();
        let opts = OpenOptions::default();
        match current {
            None => {
                if had_store {
                    log::error!(
                        "database {} was deleted while btestd was running; recreating it with the {} users and \
                         the limits last loaded",
                        self.path.display(),
                        self.snapshot.users.len()
                    );
                }
                // The flash copy holds the usage history the snapshot lacks:
                // start from it, or the next save would overwrite it.
                if let Some(flash) = self.config.persist.as_deref() {
                    match super::persist::restore_if_missing(&self.path, flash) {
                        Ok(true) => log::info!("database {} restored from {}", self.path.display(), flash.display()),
                        Ok(false) => {}
                        Err(e) => log::warn!("cannot restore {} from {}: {e}", self.path.display(), flash.display()),
                    }
                }
                let mut store = Store::open_with(&self.path, &opts)?;
                self.snapshot.restore(&mut store)?;
                self.data_version = store.data_version()?;
                self.generation = store.config_generation()?;
                if had_store {
                    log::info!("database {} recreated; usage is saved there from now on", self.path.display());
                }
                self.store = Some(store);
            }
            Some(_) => {
                if had_store {
                    log::warn!("database {} was replaced by another file; using the new file", self.path.display());
                }
                let mut store = Store::open_with(&self.path, &opts)?;
                let users: i64 = store
                    .conn()
                    .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
                    .map_err(|e| store.sql_err(e))?;
                if users == 0 && !self.snapshot.users.is_empty() {
                    // A fresh file would lock every user out: carry ours over.
                    log::warn!(
                        "database {} has no users; restoring the {} users and the limits last loaded",
                        self.path.display(),
                        self.snapshot.users.len()
                    );
                    self.snapshot.restore(&mut store)?;
                }
                self.store = Some(store);
                // Force a reload from the new file at the next check.
                self.data_version = i64::MIN;
                self.generation = i64::MIN;
            }
        }
        Ok(())
    }

    /// Loads users and limits when another process changed them (or
    /// always, when `force`) and hands them to the loop.
    fn reload(&mut self, force: bool) {
        let Some(store) = self.store.as_ref() else { return };
        let result = (|| -> Result<Option<(Reload, Snapshot, bool)>> {
            let dv = store.data_version()?;
            if !force && dv == self.data_version {
                return Ok(None);
            }
            self.data_version = dv;
            let generation = store.config_generation()?;
            let changed = generation != self.generation;
            if !force && !changed {
                return Ok(None);
            }
            self.generation = generation;
            let snapshot = Snapshot::take(store)?;
            let quota = store.load_quota_config()?;
            Ok(Some((Reload { users: users_from(&snapshot.users), quota }, snapshot, changed)))
        })();
        match result {
            Ok(Some((reload, snapshot, changed))) => {
                if self.reload_failing {
                    log::info!("users and limits can be read from {} again", self.path.display());
                    self.reload_failing = false;
                }
                log::info!(
                    "database {} changed: reloaded {} users and the limits",
                    self.path.display(),
                    snapshot.users.len()
                );
                self.quota = reload.quota.clone();
                self.snapshot = snapshot;
                let _ = self.reloads.send(reload);
                // A reload (SIGHUP) that finds nothing new writes nothing to flash.
                if changed {
                    self.persist("users or limits changed", true);
                }
            }
            Ok(None) => {}
            Err(e) => {
                if !self.reload_failing {
                    log::warn!("cannot reload users and limits: {e}; keeping the ones in use");
                    self.reload_failing = true;
                }
                // Try again at the next check.
                self.data_version = i64::MIN;
            }
        }
    }

    /// Deletes rows past the retention period, once a day.
    fn prune_daily(&mut self) {
        let now = SystemTime::now();
        let today = Date::in_zone(now, self.quota.zone());
        if self.pruned_on == Some(today) || self.episode.is_some() {
            return;
        }
        let Some(store) = self.store.as_ref() else { return };
        let days = store.retention_days().unwrap_or(super::config::DEFAULT_RETENTION_DAYS);
        match store.prune(now, &self.quota, days) {
            Ok(n) => {
                self.pruned_on = Some(today);
                if n > 0 {
                    log::info!("database {}: deleted {n} rows older than {days} days", self.path.display());
                }
            }
            Err(e) => log::debug!("pruning old rows failed (will retry): {e}"),
        }
    }

    /// Final flushes at shutdown, retrying a failing disk for a while.
    fn drain(&mut self) {
        let deadline = Instant::now() + self.config.drain_timeout;
        loop {
            self.flush();
            if self.pending.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                log::error!(
                    "exiting without saving {} usage entries and {} session records to {}: the database \
                     stayed unwritable for {} s",
                    self.pending.pending_deltas(),
                    self.pending.pending_sessions(),
                    self.path.display(),
                    self.config.drain_timeout.as_secs()
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
