//! Users, quotas and usage in one SQLite file (WAL mode).
//!
//! The CLI opens a [`Store`] per command and writes in short `BEGIN
//! IMMEDIATE` transactions. The daemon opens one at start, loads users,
//! limits and current usage synchronously before its event loop runs, then
//! hands the connection to the [`writer::Writer`] thread; from then on the
//! loop only talks to the writer's non-blocking handle.

pub mod config;
pub mod error;
pub mod persist;
pub mod schema;
mod snapshot;
pub mod startup;
pub mod usage;
pub mod users;
pub mod writer;

pub use config::LimitScope;
pub use error::{Result, StoreError};
pub use persist::persist_path;
pub use startup::Startup;
pub use usage::{Batch, SessionInfo, SessionRecord};
pub use users::{UserChange, UserInfo};
pub use writer::{Health, Reload, Writer, WriterConfig};

use rusqlite::{Connection, MAIN_DB, OpenFlags, OptionalExtension};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The database file: `--db` when given, else the platform's default.
pub fn db_path(given: &Option<PathBuf>) -> PathBuf {
    match given {
        Some(path) => path.clone(),
        None if cfg!(target_os = "freebsd") => PathBuf::from("/var/db/btestd/btestd.db"),
        None => PathBuf::from("/var/lib/btestd/btestd.db"),
    }
}

/// How long a connection waits for another's lock before giving up. Long
/// enough that a CLI command and the writer never see each other's locks.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How to open a database.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Wait this long for locks held by other processes.
    pub busy_timeout: Duration,
    /// Run `PRAGMA quick_check` (reads every page: for the daemon's start,
    /// not for every CLI command).
    pub quick_check: bool,
    /// `PRAGMA synchronous=FULL` (fsync every commit) instead of NORMAL
    /// (fsync at checkpoints only; a power cut may lose the last commits
    /// but never corrupts the file, and flash lasts longer).
    pub synchronous_full: bool,
}

impl Default for OpenOptions {
    fn default() -> OpenOptions {
        OpenOptions { busy_timeout: BUSY_TIMEOUT, quick_check: false, synchronous_full: false }
    }
}

/// (device, inode) of a file: tells "deleted or replaced" from "same file".
pub type FileId = (u64, u64);

pub fn file_id(path: &Path) -> Option<FileId> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// An open btestd database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// Identity of the file when it was opened.
    id: Option<FileId>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

fn is_read_only_fs(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EROFS)
}

/// Creates the missing directory of a database file (or its copy), 0700.
pub(crate) fn make_parent(path: &Path) -> Result<()> {
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) else { return Ok(()) };
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|source| {
        if is_read_only_fs(&source) {
            StoreError::ReadOnly { path: path.to_path_buf(), detail: format!("cannot create {}", dir.display()) }
        } else {
            StoreError::CreateDir { dir: dir.to_path_buf(), source }
        }
    })
}

impl Store {
    /// Opens (creating if needed) the daemon's database, with an integrity check.
    pub fn open(path: &Path) -> Result<Store> {
        Store::open_with(path, &OpenOptions { quick_check: true, ..OpenOptions::default() })
    }

    /// Opens (creating if needed) a database: directory 0700, file 0600,
    /// WAL mode, busy timeout, schema migrated.
    pub fn open_with(path: &Path, opts: &OpenOptions) -> Result<Store> {
        let path = path.to_path_buf();
        make_parent(&path)?;
        // Create the file ourselves so it is private from the first byte;
        // SQLite gives its -wal and -shm files the same mode.
        match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) if is_read_only_fs(&e) => {
                return Err(StoreError::ReadOnly { path, detail: "read-only file system".into() });
            }
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return Err(StoreError::ReadOnly { path, detail: format!("cannot create the file: {e}") });
            }
            Err(e) => return Err(StoreError::CannotOpen { path, detail: e.to_string() }),
        }
        let sql = |e| StoreError::from_sql(&path, e);
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(&path, flags).map_err(sql)?;
        conn.busy_timeout(opts.busy_timeout).map_err(sql)?;
        if conn.is_readonly(MAIN_DB).map_err(sql)? {
            return Err(StoreError::ReadOnly { path, detail: "the file or its file system is not writable".into() });
        }
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)).map_err(sql)?;
        if !mode.eq_ignore_ascii_case("wal") {
            log::warn!(
                "database {}: cannot use WAL mode (journal mode is {mode}); the CLI may wait for the daemon",
                path.display()
            );
        }
        conn.pragma_update(None, "synchronous", if opts.synchronous_full { "FULL" } else { "NORMAL" }).map_err(sql)?;
        // Keep the WAL small on flash: checkpoint every 256 pages (1 MiB)
        // and truncate it back to 1 MiB afterwards.
        conn.pragma_update(None, "wal_autocheckpoint", 256).map_err(sql)?;
        // A router has little memory and the working set is tiny: 256 KiB of cache.
        conn.pragma_update(None, "cache_size", -256).map_err(sql)?;
        conn.query_row("PRAGMA journal_size_limit = 1048576", [], |_| Ok(())).map_err(sql)?;
        if opts.quick_check {
            let verdict: String = conn.query_row("PRAGMA quick_check(1)", [], |r| r.get(0)).map_err(sql)?;
            if verdict != "ok" {
                return Err(StoreError::Corrupt { path, detail: verdict });
            }
        }
        schema::migrate(&mut conn, &path)?;
        let id = file_id(&path);
        Ok(Store { conn, path, id })
    }

    /// Opens an existing database read-only, for a daemon whose file
    /// system or file refuses writes: enough to load users and limits for
    /// [`Writer::start_degraded`]. `immutable` lets SQLite read a WAL-mode
    /// file without creating its -shm file (impossible on read-only media).
    pub fn open_read_only(path: &Path) -> Result<Store> {
        let path = path.to_path_buf();
        let sql = |e| StoreError::from_sql(&path, e);
        if !path.exists() {
            return Err(StoreError::CannotOpen { path, detail: "no such file".into() });
        }
        let conn = open_immutable(&path).map_err(sql)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(sql)?;
        if version > schema::SCHEMA_VERSION {
            return Err(StoreError::TooNew { path, found: version, supported: schema::SCHEMA_VERSION });
        }
        if version < schema::SCHEMA_VERSION {
            return Err(StoreError::ReadOnly {
                path,
                detail: format!("schema version {version} needs an upgrade, which needs write access"),
            });
        }
        let id = file_id(&path);
        Ok(Store { conn, path, id })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Identity of the file as opened; compare with [`file_id`] of the path.
    pub fn file_id(&self) -> Option<FileId> {
        self.id
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    pub(crate) fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    pub(crate) fn sql_err(&self, e: rusqlite::Error) -> StoreError {
        StoreError::from_sql(&self.path, e)
    }

    /// Every row of a query, each turned into a `T` by `row`; any error names this database.
    pub(crate) fn query_all<T, C: FromIterator<T>>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<C> {
        let mut stmt = self.conn.prepare(sql).map_err(|e| self.sql_err(e))?;
        let rows = stmt.query_map(params, row).map_err(|e| self.sql_err(e))?;
        rows.collect::<rusqlite::Result<C>>().map_err(|e| self.sql_err(e))
    }

    /// The schema version in the file.
    pub fn schema_version(&self) -> Result<i64> {
        self.conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(|e| self.sql_err(e))
    }

    /// 32 random bytes made when the database was created; the server
    /// derives stable EC-SRP5 decoys for unknown users from it.
    pub fn server_secret(&self) -> Result<[u8; 32]> {
        let v: Option<Vec<u8>> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'server_secret'", [], |r| r.get(0))
            .optional()
            .map_err(|e| self.sql_err(e))?;
        v.and_then(|v| <[u8; 32]>::try_from(v.as_slice()).ok()).ok_or_else(|| StoreError::Invalid {
            path: self.path.clone(),
            detail: "meta.server_secret is missing or not 32 bytes".into(),
        })
    }

    /// Bumped by every change of users, limits or settings.
    pub fn config_generation(&self) -> Result<i64> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = 'config_generation'", [], |r| r.get(0))
            .optional()
            .map(|v| v.unwrap_or(0))
            .map_err(|e| self.sql_err(e))
    }

    /// Changes when another connection commits (`PRAGMA data_version`).
    pub fn data_version(&self) -> Result<i64> {
        self.conn.query_row("PRAGMA data_version", [], |r| r.get(0)).map_err(|e| self.sql_err(e))
    }
}

/// A read-only connection that never writes beside the file: `immutable`
/// lets SQLite read a WAL-mode file without creating its -shm file
/// (impossible on read-only media, and a write to flash otherwise).
pub(crate) fn open_immutable(path: &Path) -> rusqlite::Result<Connection> {
    let mut uri = String::from("file:");
    for b in path.as_os_str().as_encoded_bytes() {
        match b {
            b'%' | b'?' | b'#' => uri.push_str(&format!("%{b:02X}")),
            _ => uri.push(char::from(*b)),
        }
    }
    uri.push_str("?immutable=1");
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    Connection::open_with_flags(&uri, flags)
}

/// Reads a byte count that SQLite may hold as a negative or float value
/// after hand edits: negatives become 0, floats are truncated.
pub(crate) fn get_u64(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    use rusqlite::types::ValueRef;
    Ok(match row.get_ref(idx)? {
        ValueRef::Integer(i) => u64::try_from(i).unwrap_or(0),
        ValueRef::Real(f) if f > 0.0 => f as u64,
        _ => 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quota::{Date, IpKey, Ledger, PeriodKey, QuotaConfig, Subject, Zone};
    use std::time::{SystemTime, UNIX_EPOCH};

    /// The whole path on this platform (under qemu, big-endian 32-bit MIPS
    /// too): schema, a user, 64-bit counters through the writer, reading back.
    #[test]
    fn users_and_usage_round_trip_through_the_writer() {
        let dir = std::env::temp_dir().join(format!("btestd-store-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("t.db");
        let mut store = Store::open(&path).expect("open");
        // .cargo/config.toml's size flags reached the bundled SQLite.
        let opts: Vec<String> = {
            let mut q = store.conn.prepare("PRAGMA compile_options").unwrap();
            q.query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect()
        };
        for want in ["OMIT_LOAD_EXTENSION", "OMIT_JSON", "OMIT_DEPRECATED", "OMIT_COMPOUND_SELECT", "OMIT_CHECK"] {
            assert!(opts.iter().any(|o| o == want), "SQLite built without {want}: {opts:?}");
        }
        store.add_user("alice", "pw", true, true).expect("add");
        let users = store.load_users().expect("users");
        let alice = users.get(b"alice").expect("alice");
        assert_eq!(alice.md5_password.as_deref(), Some(&b"pw"[..]));
        let derived = crate::auth::ecsrp5::Validator::derive(b"alice", b"pw", alice.validator.salt);
        assert_eq!(alice.validator, derived);
        let quota = store.load_quota_config().expect("quota");
        let config = WriterConfig { flush_interval: Duration::from_millis(50), ..WriterConfig::default() };
        let writer = Writer::start(store, &quota, config).expect("writer");
        let now = SystemTime::now();
        let mut ledger = Ledger::new(quota.clone(), &[], now);
        writer.record(&ledger.charge(Some("alice"), "192.0.2.1".parse().unwrap(), 5_000_000_000, 7, now));
        writer.shutdown();
        let store = Store::open(&path).expect("reopen");
        let rows = store.load_current_usage(&quota, now).expect("usage");
        let mine: Vec<_> = rows.iter().filter(|r| r.subject == Subject::User("alice".into())).collect();
        assert_eq!(mine.len(), 3, "day, week and month rows");
        assert!(mine.iter().all(|r| r.rx == 5_000_000_000 && r.tx == 7));
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The writer saves the ledger's classification as it is: an IPv6
    /// client under a /56, on the local date — which differs from the UTC
    /// date at the chosen instant whenever the local zone is not UTC.
    #[test]
    fn the_writer_saves_exactly_what_the_ledger_charged() {
        let dir = std::env::temp_dir().join(format!("btestd-store-charge-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("t.db");
        let store = Store::open(&path).expect("open");
        // The writer thread runs with the defaults (UTC off, /64): it must not regroup.
        let writer = Writer::start(store, &QuotaConfig::default(), WriterConfig::default()).expect("writer");

        let midnight = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() / 86_400 * 86_400;
        let offset = Zone::Local.offset_at(midnight as i64);
        // Just before a UTC midnight is already tomorrow east of UTC; just after it, still yesterday west.
        let at = UNIX_EPOCH + Duration::from_secs(if offset > 0 { midnight - 1 } else { midnight });
        let cfg = QuotaConfig { utc: false, ipv6_prefix: 56, ..QuotaConfig::default() };
        let mut ledger = Ledger::new(cfg, &[], at);
        let charge = ledger.charge(Some("alice"), "2001:db8:0:1ff::a".parse().unwrap(), 1_000, 7, at);
        assert_eq!(charge.ip, IpKey::new("2001:db8:0:100::".parse().unwrap(), 56));
        assert_eq!(charge.date, Date::in_zone(at, Zone::Local));
        if offset != 0 {
            assert_ne!(charge.date, Date::in_zone(at, Zone::Utc), "the local date is not the UTC one");
        }
        writer.record(&charge);
        writer.record(&ledger.charge(None, "2001:db8:0:1ee::b".parse().unwrap(), 2, 3, at));
        writer.shutdown();

        let store = Store::open(&path).expect("reopen");
        let all: i64 = store.conn.query_row("SELECT count(*) FROM usage", [], |r| r.get(0)).unwrap();
        assert_eq!(all, 9, "three period rows each for alice, anonymous and one /56, nothing else");
        let mut rows: Vec<(Subject, PeriodKey, u64, u64)> = store
            .usage_rows(&usage::UsageFilter::default(), &charge.date.keys())
            .expect("rows")
            .into_iter()
            .map(|r| (r.subject, r.key, r.rx, r.tx))
            .collect();
        rows.sort();
        let mut want = Vec::new();
        for key in charge.date.keys() {
            want.push((Subject::User("alice".into()), key, 1_000, 7));
            want.push((Subject::Anonymous, key, 2, 3));
            want.push((Subject::Ip(charge.ip), key, 1_002, 10));
        }
        want.sort();
        assert_eq!(rows, want);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
