//! The database as the admin commands open it, also while the daemon runs
//! (it picks changes up within two seconds). Changes may create the file;
//! reads never do, so a typo in `--db` leaves no empty database behind.
//! With a flash copy (`--persist` of a change, or the build's default) a
//! missing live file is restored from it first, and every change is saved
//! to it at once.

use crate::store::{OpenOptions, Store, db_path, persist, persist_path};
use std::path::PathBuf;

/// The live database after a reboot: restored from the flash copy if one exists.
fn restored(db: &Option<PathBuf>, flash: &Option<PathBuf>) -> Result<PathBuf, String> {
    let path = db_path(db);
    if let Some(flash) = persist_path(flash) {
        persist::restore_if_missing(&path, &flash).map_err(|e| e.to_string())?;
    }
    Ok(path)
}

/// A database opened for a change; [`Change::saved`] copies it to flash.
pub(super) struct Change {
    pub store: Store,
    flash: Option<PathBuf>,
}

impl Change {
    /// Saves the changed database to its flash copy, if it has one.
    pub fn saved(self) -> Result<(), String> {
        match &self.flash {
            Some(flash) => persist::save(&self.store, flash).map(|_| ()).map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }
}

/// Opens (creating if needed) the database for a change.
pub(super) fn open_for_write(db: &Option<PathBuf>, flash: &Option<PathBuf>) -> Result<Change, String> {
    let path = restored(db, flash)?;
    let store = Store::open_with(&path, &OpenOptions::default()).map_err(|e| e.to_string())?;
    Ok(Change { store, flash: persist_path(flash) })
}

/// Opens an existing database for reading; a missing one is an error, not
/// a new file. Restores from the build's flash copy only: a copy elsewhere
/// is restored by the first change (or the daemon's start).
pub(super) fn open_for_read(db: &Option<PathBuf>) -> Result<Store, String> {
    let path = restored(db, &None)?;
    if !path.exists() {
        return Err(format!(
            "database {} does not exist; 'btestd user add' creates it, or give the right --db",
            path.display()
        ));
    }
    Store::open_with(&path, &OpenOptions::default()).map_err(|e| e.to_string())
}
