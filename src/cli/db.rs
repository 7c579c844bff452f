//! The database as the admin commands open it, also while the daemon runs
//! (it picks changes up within two seconds). Changes may create the file;
//! reads never do, so a typo in `--db` leaves no empty database behind.

use crate::store::{OpenOptions, Store, default_db_path};
use std::path::PathBuf;

fn db_path(db: &Option<PathBuf>) -> PathBuf {
    db.clone().unwrap_or_else(default_db_path)
}

/// Opens (creating if needed) the database for a change.
pub(super) fn open_for_write(db: &Option<PathBuf>) -> Result<Store, String> {
    Store::open_with(&db_path(db), &OpenOptions::default()).map_err(|e| e.to_string())
}

/// Opens an existing database for reading; a missing one is an error, not a new file.
pub(super) fn open_for_read(db: &Option<PathBuf>) -> Result<Store, String> {
    let path = db_path(db);
    if !path.exists() {
        return Err(format!(
            "database {} does not exist; 'btestd user add' creates it, or give the right --db",
            path.display()
        ));
    }
    Store::open_with(&path, &OpenOptions::default()).map_err(|e| e.to_string())
}
