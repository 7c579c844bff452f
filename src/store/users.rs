//! Users: EC-SRP5 validators always, the plaintext-equivalent MD5 secret
//! only on request. Passwords go in, nothing secret comes out except to
//! the daemon's in-memory user table.

use super::config::set_limit_cells;
use super::error::{Result, StoreError};
use super::{Store, get_u64};
use crate::auth::ecsrp5::{MAX_USERNAME_LEN, Validator};
use crate::auth::{User, Users};
use crate::quota::{Limits, PartialLimits, period::unix_secs};
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use std::time::SystemTime;

/// A user as `user list` shows it: no secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub enabled: bool,
    /// An MD5 secret is stored (legacy clients can log in).
    pub md5: bool,
    /// Unix seconds.
    pub created: i64,
    pub limits: Limits,
}

/// What `user set` changes; `None` leaves a field as it is.
#[derive(Default)]
pub struct UserChange {
    /// New password: new salt and validator (and MD5 secret if kept).
    pub password: Option<String>,
    /// Store (true) or remove (false) the MD5 secret.
    pub md5: Option<bool>,
    pub enabled: Option<bool>,
}

/// A complete users row, secrets included: what the writer needs to
/// recreate a deleted database. Never printed.
#[derive(Clone)]
pub(crate) struct UserRecord {
    pub name: String,
    pub validator: Validator,
    pub md5_secret: Option<Vec<u8>>,
    pub enabled: bool,
    pub created: i64,
}

/// Refuses names the protocol cannot carry or a terminal would mangle.
pub fn check_user_name(name: &str) -> Result<()> {
    let bad = |why| Err(StoreError::BadUserName { name: name.to_string(), why });
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_USERNAME_LEN {
        return bad("it is longer than the EC-SRP5 handshake can carry");
    }
    if name.chars().any(char::is_control) {
        return bad("it contains control characters");
    }
    Ok(())
}

fn new_secrets(name: &str, password: &str, md5: bool) -> (Validator, Option<Vec<u8>>) {
    let salt = crate::sysrand::bytes::<16>();
    (Validator::derive(name.as_bytes(), password.as_bytes(), salt), md5.then(|| password.as_bytes().to_vec()))
}

impl Store {
    /// Adds a user; the MD5 secret is stored only when `md5` is true.
    pub fn add_user(&mut self, name: &str, password: &str, md5: bool, enabled: bool) -> Result<()> {
        check_user_name(name)?;
        let (v, md5_secret) = new_secrets(name, password, md5);
        let path = self.path().to_path_buf();
        let sql = |e| StoreError::from_sql(&path, e);
        let tx = self.conn_mut().transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql)?;
        let n = tx
            .execute(
                "INSERT INTO users(name, salt, x_gamma, parity, md5_secret, enabled, created)
                 VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(name) DO NOTHING",
                params![
                    name,
                    v.salt.as_slice(),
                    v.x_gamma.as_slice(),
                    v.parity,
                    md5_secret,
                    enabled,
                    unix_secs(SystemTime::now())
                ],
            )
            .map_err(sql)?;
        if n == 0 {
            return Err(StoreError::UserExists { name: name.to_string() });
        }
        tx.commit().map_err(sql)
    }

    /// Applies `change` and the given limit cells to an existing user in
    /// one transaction.
    pub fn change_user(&mut self, name: &str, change: &UserChange, limits: &PartialLimits) -> Result<()> {
        let path = self.path().to_path_buf();
        let sql = |e| StoreError::from_sql(&path, e);
        let tx = self.conn_mut().transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql)?;
        let has_md5: Option<bool> = tx
            .query_row("SELECT md5_secret IS NOT NULL FROM users WHERE name = ?1", [name], |r| r.get(0))
            .optional()
            .map_err(sql)?;
        let Some(has_md5) = has_md5 else {
            return Err(StoreError::NoSuchUser { name: name.to_string() });
        };
        let keep_md5 = change.md5.unwrap_or(has_md5);
        match &change.password {
            Some(pw) => {
                let (v, md5_secret) = new_secrets(name, pw, keep_md5);
                tx.execute(
                    "UPDATE users SET salt = ?2, x_gamma = ?3, parity = ?4, md5_secret = ?5 WHERE name = ?1",
                    params![name, v.salt.as_slice(), v.x_gamma.as_slice(), v.parity, md5_secret],
                )
                .map_err(sql)?;
            }
            None if change.md5 == Some(true) && !has_md5 => {
                return Err(StoreError::Usage(format!(
                    "MD5 logins need the password itself: give --password or --password-file together with --md5 \
                     to store it for '{name}'"
                )));
            }
            None if change.md5 == Some(false) && has_md5 => {
                tx.execute("UPDATE users SET md5_secret = NULL WHERE name = ?1", [name]).map_err(sql)?;
            }
            None => {}
        }
        if let Some(enabled) = change.enabled {
            tx.execute("UPDATE users SET enabled = ?2 WHERE name = ?1", params![name, enabled]).map_err(sql)?;
        }
        set_limit_cells(&tx, "user", name, limits).map_err(sql)?;
        tx.commit().map_err(sql)
    }

    /// Deletes a user and its limits; its usage history stays.
    pub fn del_user(&mut self, name: &str) -> Result<()> {
        let path = self.path().to_path_buf();
        let sql = |e| StoreError::from_sql(&path, e);
        let tx = self.conn_mut().transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql)?;
        let n = tx.execute("DELETE FROM users WHERE name = ?1", [name]).map_err(sql)?;
        if n == 0 {
            return Err(StoreError::NoSuchUser { name: name.to_string() });
        }
        tx.execute("DELETE FROM limits WHERE scope = 'user' AND subject = ?1", [name]).map_err(sql)?;
        tx.commit().map_err(sql)
    }

    /// Users for display, with their limits, by name.
    pub fn list_users(&self) -> Result<Vec<UserInfo>> {
        let quota = self.load_quota_config()?;
        self.query_all("SELECT name, enabled, md5_secret IS NOT NULL, created FROM users ORDER BY name", [], |r| {
            let name: String = r.get(0)?;
            Ok(UserInfo {
                limits: quota.user_limits(&name),
                name,
                enabled: r.get(1)?,
                md5: r.get(2)?,
                created: r.get(3)?,
            })
        })
    }

    /// Every user with its secrets; malformed rows are skipped with a warning
    /// (that user cannot log in) rather than stopping the daemon.
    pub(crate) fn user_records(&self) -> Result<Vec<UserRecord>> {
        let mut stmt = self
            .conn()
            .prepare("SELECT name, salt, x_gamma, parity, md5_secret, enabled, created FROM users")
            .map_err(|e| self.sql_err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    get_u64(r, 3)?,
                    r.get::<_, Option<Vec<u8>>>(4)?,
                    r.get::<_, bool>(5)?,
                    r.get::<_, i64>(6)?,
                ))
            })
            .map_err(|e| self.sql_err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let row = match row {
                Ok(r) => r,
                Err(e) => {
                    log::warn!("database {}: skipping an unreadable users row: {e}", self.path().display());
                    continue;
                }
            };
            let (name, salt, x_gamma, parity, md5_secret, enabled, created) = row;
            match (<[u8; 16]>::try_from(salt.as_slice()), <[u8; 32]>::try_from(x_gamma.as_slice()), parity) {
                (Ok(salt), Ok(x_gamma), 0 | 1) => out.push(UserRecord {
                    name,
                    validator: Validator { salt, x_gamma, parity: parity as u8 },
                    md5_secret,
                    enabled,
                    created,
                }),
                _ => log::warn!(
                    "database {}: user '{}' has a malformed validator and cannot log in; set a new password \
                     with 'btestd user set {} --password-file -'",
                    self.path().display(),
                    name.escape_debug(),
                    name.escape_debug()
                ),
            }
        }
        Ok(out)
    }

    /// The daemon's user table.
    pub fn load_users(&self) -> Result<Users> {
        Ok(users_from(&self.user_records()?))
    }
}

pub(crate) fn users_from(records: &[UserRecord]) -> Users {
    let mut users = Users::default();
    for r in records {
        users.insert(User {
            name: r.name.clone(),
            md5_password: r.md5_secret.clone(),
            validator: r.validator.clone(),
            enabled: r.enabled,
        });
    }
    users
}
