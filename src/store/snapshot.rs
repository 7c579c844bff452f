//! The users, limits and settings the writer last loaded, kept to
//! recreate the database if it is deleted or replaced under the daemon.

use super::Store;
use super::config::{LimitRow, clamp_i64};
use super::error::{Result, StoreError};
use super::users::UserRecord;
use rusqlite::{TransactionBehavior, params};

/// What was last loaded from the database, kept to recreate it if it is
/// deleted under the daemon.
pub(super) struct Snapshot {
    pub(super) users: Vec<UserRecord>,
    limits: Vec<LimitRow>,
    settings: Vec<(String, String)>,
    secret: [u8; 32],
}

impl Snapshot {
    pub(super) fn take(store: &Store) -> Result<Snapshot> {
        Ok(Snapshot {
            users: store.user_records()?,
            limits: store.list_limits()?,
            settings: store.settings()?.into_iter().collect(),
            secret: store.server_secret()?,
        })
    }

    /// Writes what is missing from `store` back (existing rows win).
    pub(super) fn restore(&self, store: &mut Store) -> Result<()> {
        let path = store.path().to_path_buf();
        let sql = |e| StoreError::from_sql(&path, e);
        let tx = store.conn_mut().transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql)?;
        tx.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES('server_secret', ?1)",
            params![self.secret.as_slice()],
        )
        .map_err(sql)?;
        for u in &self.users {
            let v = &u.validator;
            tx.execute(
                "INSERT OR IGNORE INTO users(name, salt, x_gamma, parity, md5_secret, enabled, created)
                 VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![u.name, v.salt.as_slice(), v.x_gamma.as_slice(), v.parity, u.md5_secret, u.enabled, u.created],
            )
            .map_err(sql)?;
        }
        for l in &self.limits {
            let (scope, subject) = l.scope.columns();
            tx.execute(
                "INSERT OR IGNORE INTO limits(scope, subject, period, dir, bytes) VALUES(?1, ?2, ?3, ?4, ?5)",
                params![scope, subject, l.period.as_str(), l.dir.as_str(), clamp_i64(l.bytes)],
            )
            .map_err(sql)?;
        }
        for (k, v) in &self.settings {
            tx.execute("INSERT OR IGNORE INTO settings(key, value) VALUES(?1, ?2)", params![k, v]).map_err(sql)?;
        }
        tx.commit().map_err(sql)
    }
}
