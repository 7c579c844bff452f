//! The database layout and its migrations. `PRAGMA user_version` holds the
//! schema version; a fresh file runs every migration in order, an older one
//! the missing ones, a newer one is refused.

use super::error::{Result, StoreError};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::path::Path;

/// The schema this btestd writes.
pub const SCHEMA_VERSION: i64 = 2;

/// `MIGRATIONS[n]` takes a database from version n to n + 1.
pub const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [V1, V2];

/// Version 1: the tables.
const V1: &str = "
CREATE TABLE meta(
    key TEXT PRIMARY KEY,
    value NOT NULL
) WITHOUT ROWID;
-- EC-SRP5 validator always; md5_secret (plaintext-equivalent) only when
-- MD5 logins were asked for.
CREATE TABLE users(
    name TEXT PRIMARY KEY,
    salt BLOB NOT NULL,
    x_gamma BLOB NOT NULL,
    parity INTEGER NOT NULL,
    md5_secret BLOB,
    enabled INTEGER NOT NULL DEFAULT 1,
    created INTEGER NOT NULL
) WITHOUT ROWID;
-- scope: user (subject = name), ip (subject = CIDR or 'default'),
-- anonymous (subject = ''); period: day|week|month; dir: rx|tx|total
-- (server's view); bytes 0 = unlimited.
CREATE TABLE limits(
    scope TEXT NOT NULL,
    subject TEXT NOT NULL,
    period TEXT NOT NULL,
    dir TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    PRIMARY KEY(scope, subject, period, dir)
) WITHOUT ROWID;
-- rx = bytes the server received, tx = bytes it transmitted.
CREATE TABLE usage(
    scope TEXT NOT NULL,
    subject TEXT NOT NULL,
    period TEXT NOT NULL,
    period_key TEXT NOT NULL,
    rx INTEGER NOT NULL DEFAULT 0,
    tx INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY(scope, subject, period, period_key)
) WITHOUT ROWID;
-- Times are unix seconds; direction is the server's view (receive,
-- transmit, both).
CREATE TABLE sessions(
    id INTEGER PRIMARY KEY,
    user TEXT,
    peer_ip TEXT NOT NULL,
    proto TEXT NOT NULL,
    direction TEXT NOT NULL,
    started INTEGER NOT NULL,
    ended INTEGER NOT NULL,
    rx_bytes INTEGER NOT NULL,
    tx_bytes INTEGER NOT NULL,
    lost_packets INTEGER NOT NULL,
    end_reason TEXT NOT NULL
);
CREATE INDEX sessions_ended ON sessions(ended);
CREATE TABLE settings(
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
";

/// Version 2: merged session rows (records folded together while the disk
/// was unavailable), the usage index for pruning, and a generation counter
/// that any change of users, limits or settings bumps, so the daemon
/// reloads only when configuration (not usage) changed.
const V2: &str = "
ALTER TABLE sessions ADD COLUMN merged INTEGER NOT NULL DEFAULT 1;
CREATE INDEX usage_period ON usage(period, period_key);
INSERT OR IGNORE INTO meta(key, value) VALUES('config_generation', 0);
CREATE TRIGGER users_insert AFTER INSERT ON users BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'config_generation'; END;
CREATE TRIGGER users_update AFTER UPDATE ON users BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'config_generation'; END;
CREATE TRIGGER users_delete AFTER DELETE ON users BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'config_generation'; END;
CREATE TRIGGER limits_insert AFTER INSERT ON limits BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'config_generation'; END;
CREATE TRIGGER limits_update AFTER UPDATE ON limits BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'config_generation'; END;
CREATE TRIGGER limits_delete AFTER DELETE ON limits BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'config_generation'; END;
CREATE TRIGGER settings_insert AFTER INSERT ON settings BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'config_generation'; END;
CREATE TRIGGER settings_update AFTER UPDATE ON settings BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'config_generation'; END;
CREATE TRIGGER settings_delete AFTER DELETE ON settings BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'config_generation'; END;
";

fn version(conn: &Connection, path: &Path) -> Result<i64> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(|e| StoreError::from_sql(path, e))
}

/// Brings the schema to [`SCHEMA_VERSION`] and makes sure the server secret
/// exists. Returns the version found.
pub fn migrate(conn: &mut Connection, path: &Path) -> Result<i64> {
    let found = version(conn, path)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew { path: path.to_path_buf(), found, supported: SCHEMA_VERSION });
    }
    if found == SCHEMA_VERSION {
        return Ok(found);
    }
    let sql = |e| StoreError::from_sql(path, e);
    // IMMEDIATE: the CLI and the daemon may both start on a fresh file.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql)?;
    let now = version(&tx, path)?;
    if now == 0 {
        let tables: i64 =
            tx.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table'", [], |r| r.get(0)).map_err(sql)?;
        if tables > 0 {
            return Err(StoreError::Foreign { path: path.to_path_buf() });
        }
    }
    if now > SCHEMA_VERSION {
        return Err(StoreError::TooNew { path: path.to_path_buf(), found: now, supported: SCHEMA_VERSION });
    }
    for step in MIGRATIONS.iter().skip(now as usize) {
        tx.execute_batch(step).map_err(sql)?;
    }
    let secret: Option<Vec<u8>> =
        tx.query_row("SELECT value FROM meta WHERE key = 'server_secret'", [], |r| r.get(0)).optional().map_err(sql)?;
    if secret.is_none_or(|s| s.len() != 32) {
        tx.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES('server_secret', ?1)",
            params![crate::sysrand::bytes::<32>().to_vec()],
        )
        .map_err(sql)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(sql)?;
    tx.commit().map_err(sql)?;
    if now > 0 {
        log::info!("database {}: schema upgraded from version {now} to {SCHEMA_VERSION}", path.display());
    }
    Ok(found)
}
