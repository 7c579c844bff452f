//! Limits and settings: the quota configuration as stored, and its loading
//! into a [`QuotaConfig`].

use super::error::{Result, StoreError};
use super::{Store, get_u64};
use crate::quota::{Cidr, DEFAULT_IPV6_PREFIX, Dir, PartialLimits, Period, QuotaConfig};
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use std::collections::HashMap;
use std::fmt;

/// Whose limits a `limits` row holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitScope {
    User(String),
    /// The one budget shared by all tests without a user.
    Anonymous,
    /// Per-address budget for addresses no block override covers.
    IpDefault,
    /// Per-address budget for the addresses inside a block.
    Ip(Cidr),
}

impl LimitScope {
    /// The (scope, subject) columns.
    pub fn columns(&self) -> (&'static str, String) {
        match self {
            LimitScope::User(n) => ("user", n.clone()),
            LimitScope::Anonymous => ("anonymous", String::new()),
            LimitScope::IpDefault => ("ip", "default".to_string()),
            LimitScope::Ip(c) => ("ip", c.to_string()),
        }
    }

    fn from_columns(scope: &str, subject: &str) -> Option<LimitScope> {
        match (scope, subject) {
            ("user", n) => Some(LimitScope::User(n.to_string())),
            ("anonymous", _) => Some(LimitScope::Anonymous),
            ("ip", "default") => Some(LimitScope::IpDefault),
            ("ip", c) => c.parse().ok().map(LimitScope::Ip),
            _ => None,
        }
    }
}

impl fmt::Display for LimitScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitScope::User(n) => write!(f, "user '{n}'"),
            LimitScope::Anonymous => f.write_str("anonymous tests"),
            LimitScope::IpDefault => f.write_str("each client address (default)"),
            LimitScope::Ip(c) => write!(f, "each client address in {c}"),
        }
    }
}

/// One stored limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitRow {
    pub scope: LimitScope,
    pub period: Period,
    pub dir: Dir,
    /// 0 = unlimited (for a block override: explicitly unlimited).
    pub bytes: u64,
}

/// Setting keys and their meaning.
pub const SETTING_TIMEZONE: &str = "timezone";
pub const SETTING_IPV6_PREFIX: &str = "ipv6_prefix";
pub const SETTING_RETENTION_DAYS: &str = "retention_days";
/// Session records and daily usage older than this many days are deleted.
pub const DEFAULT_RETENTION_DAYS: u32 = 90;

/// Checks a setting's value before it is stored, so the daemon never
/// loads one it cannot use.
pub fn validate_setting(key: &str, value: &str) -> std::result::Result<(), String> {
    match key {
        SETTING_TIMEZONE if value == "local" || value == "utc" => Ok(()),
        SETTING_TIMEZONE => Err(format!("invalid time zone '{value}': use local or utc")),
        SETTING_IPV6_PREFIX => match value.parse::<u8>() {
            Ok(1..=128) => Ok(()),
            _ => Err(format!("invalid IPv6 prefix '{value}': use 1 to 128 (64 = one budget per /64)")),
        },
        SETTING_RETENTION_DAYS => match value.parse::<u32>() {
            Ok(1..=36_500) => Ok(()),
            _ => Err(format!("invalid retention '{value}': use a number of days from 1 to 36500")),
        },
        _ => Err(format!("unknown setting '{key}'")),
    }
}

impl Store {
    /// All settings as stored.
    pub fn settings(&self) -> Result<HashMap<String, String>> {
        self.query_all("SELECT key, value FROM settings", [], |r| Ok((r.get(0)?, r.get(1)?)))
    }

    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        self.conn()
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| self.sql_err(e))
    }

    /// Stores validated settings in one transaction.
    pub fn set_settings(&mut self, pairs: &[(&str, String)]) -> Result<()> {
        for (k, v) in pairs {
            validate_setting(k, v).map_err(StoreError::Usage)?;
        }
        let path = self.path().to_path_buf();
        let sql = |e| StoreError::from_sql(&path, e);
        let tx = self.conn_mut().transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql)?;
        for (k, v) in pairs {
            tx.execute(
                "INSERT INTO settings(key, value) VALUES(?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![k, v],
            )
            .map_err(sql)?;
        }
        tx.commit().map_err(sql)
    }

    /// Days of session records and daily usage kept.
    pub fn retention_days(&self) -> Result<u32> {
        Ok(self.setting(SETTING_RETENTION_DAYS)?.and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_RETENTION_DAYS))
    }

    /// Every stored limit; rows this version cannot read are skipped with a warning.
    pub fn list_limits(&self) -> Result<Vec<LimitRow>> {
        let rows: Vec<(String, String, String, String, u64)> = self.query_all(
            "SELECT scope, subject, period, dir, bytes FROM limits ORDER BY scope, subject, period, dir",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, get_u64(r, 4)?)),
        )?;
        let mut out = Vec::new();
        for (scope, subject, period, dir, bytes) in rows {
            match (LimitScope::from_columns(&scope, &subject), period.parse::<Period>(), dir.parse::<Dir>()) {
                (Some(scope), Ok(period), Ok(dir)) => out.push(LimitRow { scope, period, dir, bytes }),
                _ => log::warn!(
                    "database {}: ignoring unreadable limit row ({scope}, {subject}, {period}, {dir})",
                    self.path().display()
                ),
            }
        }
        Ok(out)
    }

    /// Sets the given cells of `scope`'s limits (others unchanged), in one
    /// transaction. A user must exist.
    pub fn set_limits(&mut self, scope: &LimitScope, cells: &PartialLimits) -> Result<()> {
        let path = self.path().to_path_buf();
        let sql = |e| StoreError::from_sql(&path, e);
        let (scope_col, subject) = scope.columns();
        let tx = self.conn_mut().transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql)?;
        if let LimitScope::User(name) = scope {
            let exists: Option<i64> =
                tx.query_row("SELECT 1 FROM users WHERE name = ?1", [name], |r| r.get(0)).optional().map_err(sql)?;
            if exists.is_none() {
                return Err(StoreError::NoSuchUser { name: name.clone() });
            }
        }
        set_limit_cells(&tx, scope_col, &subject, cells).map_err(sql)?;
        tx.commit().map_err(sql)
    }

    /// Removes every limit of `scope`; false when it had none.
    pub fn del_limits(&mut self, scope: &LimitScope) -> Result<bool> {
        let (scope_col, subject) = scope.columns();
        let n = self
            .conn()
            .execute("DELETE FROM limits WHERE scope = ?1 AND subject = ?2", params![scope_col, subject])
            .map_err(|e| self.sql_err(e))?;
        Ok(n > 0)
    }

    /// The quota configuration the daemon enforces.
    pub fn load_quota_config(&self) -> Result<QuotaConfig> {
        let mut cfg = QuotaConfig::default();
        let mut overrides: Vec<(Cidr, PartialLimits)> = Vec::new();
        for row in self.list_limits()? {
            match row.scope {
                LimitScope::User(name) => cfg.users.entry(name).or_default().set(row.period, row.dir, row.bytes),
                LimitScope::Anonymous => cfg.anonymous.set(row.period, row.dir, row.bytes),
                LimitScope::IpDefault => cfg.ip_default.set(row.period, row.dir, row.bytes),
                LimitScope::Ip(c) => match overrides.iter_mut().find(|(oc, _)| *oc == c) {
                    Some((_, l)) => l.set(row.period, row.dir, Some(row.bytes)),
                    None => {
                        let mut l = PartialLimits::default();
                        l.set(row.period, row.dir, Some(row.bytes));
                        overrides.push((c, l));
                    }
                },
            }
        }
        cfg.ip_overrides = overrides;
        let settings = self.settings()?;
        let path = self.path();
        if let Some(tz) = settings.get(SETTING_TIMEZONE) {
            match tz.as_str() {
                "utc" => cfg.utc = true,
                "local" => cfg.utc = false,
                other => log::warn!("database {}: ignoring unknown timezone setting '{other}'", path.display()),
            }
        }
        if let Some(p) = settings.get(SETTING_IPV6_PREFIX) {
            match p.parse::<u8>() {
                Ok(n @ 1..=128) => cfg.ipv6_prefix = n,
                _ => log::warn!(
                    "database {}: ignoring invalid ipv6_prefix '{p}', using /{DEFAULT_IPV6_PREFIX}",
                    path.display()
                ),
            }
        }
        Ok(cfg)
    }
}

/// Writes the set cells of `cells` for (scope, subject) inside `tx`.
pub(crate) fn set_limit_cells(
    tx: &rusqlite::Transaction<'_>,
    scope: &str,
    subject: &str,
    cells: &PartialLimits,
) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO limits(scope, subject, period, dir, bytes) VALUES(?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(scope, subject, period, dir) DO UPDATE SET bytes = excluded.bytes",
    )?;
    for (p, d, b) in cells.iter() {
        stmt.execute(params![scope, subject, p.as_str(), d.as_str(), clamp_i64(b)])?;
    }
    Ok(())
}

/// SQLite integers are signed.
pub(crate) fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
