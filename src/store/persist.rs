//! The database's copy on flash, for routers that keep the live file in
//! RAM (nlbwmon's convention): flash sees one whole-file write per persist
//! instead of a commit a second, and a reboot restores the last copy.
//!
//! A copy is made with `VACUUM INTO` a temporary file beside the target,
//! fsynced and renamed over it, so the flash side always holds either the
//! old copy or the new one, never half of one.

use super::error::{Result, StoreError};
use super::{Store, make_parent};
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The flash copy a build uses when `--persist` is not given: set at
/// compile time (`BTESTD_DEFAULT_PERSIST`, the OpenWrt package sets it), so
/// the daemon and every CLI command agree without a configuration file.
pub fn default_persist_path() -> Option<PathBuf> {
    option_env!("BTESTD_DEFAULT_PERSIST").filter(|p| !p.is_empty()).map(PathBuf::from)
}

/// `--persist` as given: a path, `""` for no flash copy, or the build's default.
pub fn persist_path(flag: &Option<PathBuf>) -> Option<PathBuf> {
    match flag {
        Some(p) if p.as_os_str().is_empty() => None,
        Some(p) => Some(p.clone()),
        None => default_persist_path(),
    }
}

/// `dir/.NAME.tmp.PID`: beside `path` (so the rename stays on one file
/// system) and per process (a CLI command and the daemon may persist at once).
fn temp_beside(path: &Path) -> PathBuf {
    let mut name = OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(format!(".tmp.{}", std::process::id()));
    path.with_file_name(name)
}

/// `what` is the step of the save that failed (create, sync, rename).
fn io_err(path: &Path, what: &str, e: &io::Error) -> StoreError {
    StoreError::Io { path: path.to_path_buf(), detail: format!("saving the copy: {what}: {e}") }
}

/// Makes a rename in `path`'s directory durable.
fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    File::open(dir)?.sync_all()
}

/// Writes a consistent copy of `store` to `target` atomically; returns its size.
pub fn save(store: &Store, target: &Path) -> Result<u64> {
    copy(store.conn(), target)
}

/// `VACUUM INTO` a private temporary file beside `target`, fsync, rename.
fn copy(from: &rusqlite::Connection, target: &Path) -> Result<u64> {
    make_parent(target)?;
    let tmp = temp_beside(target);
    // VACUUM INTO takes an empty file: made here so the copy is private
    // (validators, MD5 secrets) from the first byte; a crash's leftover goes.
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| io_err(target, "create", &e))?;
        let name = tmp.to_str().ok_or_else(|| StoreError::Usage(format!("{} is not UTF-8", tmp.display())))?;
        from.execute("VACUUM INTO ?1", [name]).map_err(|e| StoreError::from_sql(target, e))?;
        // SQLite does not sync a VACUUM INTO file; a power cut after the
        // rename must find the data there (fsync through our descriptor
        // covers what SQLite wrote through its own).
        file.sync_all().map_err(|e| io_err(target, "sync", &e))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        fs::rename(&tmp, target).map_err(|e| io_err(target, "rename", &e))?;
        sync_dir(target).map_err(|e| io_err(target, "sync the directory", &e))?;
        Ok(size)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Copies `flash` to `live` when `live` is missing (after a reboot emptied
/// RAM) and `flash` exists; true when it did. The copy is read without
/// writing anything beside it, and made the same atomic way as a save.
/// Stale -wal/-shm files of a lost live database are removed first: they
/// belong to another file.
pub fn restore_if_missing(live: &Path, flash: &Path) -> Result<bool> {
    if live.exists() || !flash.exists() {
        return Ok(false);
    }
    for suffix in ["-wal", "-shm"] {
        let mut side = live.as_os_str().to_owned();
        side.push(suffix);
        let _ = fs::remove_file(PathBuf::from(side));
    }
    let from = super::open_immutable(flash).map_err(|e| StoreError::from_sql(flash, e))?;
    copy(&from, live).map(|_| true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_flag_turns_the_copy_off_and_a_path_wins() {
        assert_eq!(persist_path(&Some(PathBuf::new())), None);
        assert_eq!(persist_path(&Some("/x/y.db".into())), Some(PathBuf::from("/x/y.db")));
        assert_eq!(persist_path(&None), default_persist_path());
    }

    #[test]
    fn a_saved_copy_restores_only_a_missing_file_and_drops_a_stale_wal() {
        let dir = std::env::temp_dir().join(format!("btestd-persist-unit-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let (live, flash) = (dir.join("ram/b.db"), dir.join("flash/b.db"));
        let mut store = Store::open(&live).unwrap();
        store.add_user("alice", "pw", false, true).unwrap();
        let size = save(&store, &flash).unwrap();
        assert_eq!(size, fs::metadata(&flash).unwrap().len());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(&flash).unwrap().permissions().mode() & 0o777, 0o600, "the copy is private");
        assert!(!restore_if_missing(&live, &flash).unwrap(), "an existing live file is kept");
        drop(store);
        fs::remove_file(&live).unwrap();
        fs::write(dir.join("ram/b.db-wal"), b"stale").unwrap();
        assert!(restore_if_missing(&live, &flash).unwrap());
        assert!(!dir.join("ram/b.db-wal").exists());
        let store = Store::open(&live).unwrap();
        assert!(store.load_users().unwrap().get(b"alice").is_some());
        assert!(!restore_if_missing(&dir.join("other.db"), &dir.join("none.db")).unwrap(), "no copy, nothing to do");
        drop(store);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn temporary_files_sit_beside_the_target_and_are_hidden() {
        let t = temp_beside(Path::new("/etc/btestd/btestd.db"));
        assert_eq!(t.parent(), Some(Path::new("/etc/btestd")));
        let name = t.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with(".btestd.db.tmp."), "{name}");
    }
}
