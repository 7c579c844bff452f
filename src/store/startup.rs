//! Everything `btestd serve` takes from the database before its event loop
//! starts, with the start-up fault policy in one place.

use super::error::{Result, StoreError};
use super::{Store, Writer, WriterConfig};
use crate::auth::Users;
use crate::quota::Ledger;
use std::path::Path;
use std::time::SystemTime;

/// What the daemon starts with.
pub struct Startup {
    pub users: Users,
    /// Counters of the current periods, seeded from the stored usage.
    pub ledger: Ledger,
    /// For stable EC-SRP5 decoys across restarts.
    pub server_secret: [u8; 32],
    /// The loop's handle to the writer thread.
    pub writer: Writer,
    /// The file could only be read: usage is kept in memory and the writer
    /// keeps trying to open it for writing.
    pub degraded: bool,
}

impl Startup {
    /// Opens the database at `path` (creating it if needed), loads users,
    /// limits, current usage and the server secret, and starts the writer.
    ///
    /// A read-only file or file system starts degraded (served from what
    /// could be read, usage kept in memory, saving retried). Everything
    /// else — corrupt, locked, newer schema, another program's file, an
    /// unusable path — is an error for the operator to fix first: serving
    /// without the user table would either lock every user out or let
    /// anyone in.
    pub fn open(path: &Path, config: WriterConfig) -> Result<Startup> {
        let now = SystemTime::now();
        let (store, degraded) = match Store::open(path) {
            Ok(s) => (s, false),
            Err(e @ StoreError::ReadOnly { .. }) => match Store::open_read_only(path) {
                Ok(s) => {
                    log::warn!("{e}; serving with the users and limits it holds, usage kept in memory until saved");
                    (s, true)
                }
                Err(_) => return Err(e),
            },
            Err(e) => return Err(e),
        };
        let users = store.load_users()?;
        let quota = store.load_quota_config()?;
        let usage = store.load_current_usage(&quota, now)?;
        let server_secret = store.server_secret()?;
        log::info!(
            "database {}: {} users, {} users with budgets, {} per-address blocks, periods in {} time",
            path.display(),
            users.len(),
            quota.users.len(),
            quota.ip_overrides.len(),
            if quota.utc { "UTC" } else { "local" }
        );
        let ledger = Ledger::new(quota.clone(), &usage, now);
        let writer = if degraded {
            Writer::start_degraded(store, &quota, config)?
        } else {
            Writer::start(store, &quota, config)?
        };
        Ok(Startup { users, ledger, server_secret, writer, degraded })
    }
}
