//! What can go wrong with the database file, phrased for the operator who
//! has to fix it: what happened, which file, what to do.

use rusqlite::ffi::ErrorCode;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub enum StoreError {
    /// The database's directory does not exist and cannot be made.
    CreateDir { dir: PathBuf, source: io::Error },
    /// The database file cannot be created or opened.
    CannotOpen { path: PathBuf, detail: String },
    /// The file or its file system refuses writes.
    ReadOnly { path: PathBuf, detail: String },
    /// Another process holds a lock longer than the busy timeout.
    Locked { path: PathBuf },
    /// SQLite found damage, or the file is not a SQLite database at all.
    Corrupt { path: PathBuf, detail: String },
    /// A SQLite database, but not one of ours.
    Foreign { path: PathBuf },
    /// Made by a newer btestd.
    TooNew { path: PathBuf, found: i64, supported: i64 },
    /// The file system holding the database is full.
    DiskFull { path: PathBuf },
    /// The kernel reported an I/O error (failing disk or flash, lost NFS mount).
    Io { path: PathBuf, detail: String },
    /// The database file disappeared while the daemon was using it.
    Deleted { path: PathBuf },
    /// A row that this version cannot have written (edited by hand?).
    Invalid { path: PathBuf, detail: String },
    /// Any other SQLite failure.
    Sql { path: PathBuf, detail: String },
    /// `user add` of a name that exists.
    UserExists { name: String },
    /// A user name that is not in the database.
    NoSuchUser { name: String },
    /// A user name the protocol cannot carry.
    BadUserName { name: String, why: &'static str },
    /// A request that makes no sense (e.g. an MD5 secret without a password).
    Usage(String),
}

impl StoreError {
    /// Classifies a SQLite error on `path` by its result code.
    pub fn from_sql(path: &Path, e: rusqlite::Error) -> StoreError {
        let path = path.to_path_buf();
        let detail = e.to_string();
        let code = match &e {
            rusqlite::Error::SqliteFailure(f, _) => Some(f.code),
            _ => None,
        };
        match code {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Locked { path },
            Some(ErrorCode::ReadOnly) => StoreError::ReadOnly { path, detail },
            Some(ErrorCode::DiskFull) => StoreError::DiskFull { path },
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StoreError::Corrupt { path, detail },
            Some(ErrorCode::SystemIoFailure) => StoreError::Io { path, detail },
            Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => StoreError::CannotOpen { path, detail },
            _ => StoreError::Sql { path, detail },
        }
    }

    /// A short category for "is this the same failure as before" checks.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::CreateDir { .. } => "create-dir",
            StoreError::CannotOpen { .. } => "cannot-open",
            StoreError::ReadOnly { .. } => "read-only",
            StoreError::Locked { .. } => "locked",
            StoreError::Corrupt { .. } => "corrupt",
            StoreError::Foreign { .. } => "foreign",
            StoreError::TooNew { .. } => "too-new",
            StoreError::DiskFull { .. } => "disk-full",
            StoreError::Io { .. } => "io",
            StoreError::Deleted { .. } => "deleted",
            StoreError::Invalid { .. } => "invalid",
            StoreError::Sql { .. } => "sql",
            StoreError::UserExists { .. } => "user-exists",
            StoreError::NoSuchUser { .. } => "no-such-user",
            StoreError::BadUserName { .. } => "bad-user-name",
            StoreError::Usage(_) => "usage",
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::CreateDir { dir, source } => write!(
                f,
                "cannot create the database directory {}: {source}; create it (mode 0700) or give another --db",
                dir.display()
            ),
            StoreError::CannotOpen { path, detail } => write!(
                f,
                "cannot open database {}: {detail}; check that the path is a file this user may read and write, \
                 or give another --db",
                path.display()
            ),
            StoreError::ReadOnly { path, detail } => write!(
                f,
                "database {} is read-only ({detail}); make the file and its directory writable and the file \
                 system read-write, or give another --db",
                path.display()
            ),
            StoreError::Locked { path } => write!(
                f,
                "database {} is locked by another process; is a sqlite3 shell or another program holding it? \
                 Close it, or give another --db",
                path.display()
            ),
            StoreError::Corrupt { path, detail } => write!(
                f,
                "database {} is corrupt: {detail}; move it away to start fresh (its users and usage are lost) \
                 or restore a backup",
                path.display()
            ),
            StoreError::Foreign { path } => {
                write!(f, "{} is a SQLite database of another program, not btestd's; give another --db", path.display())
            }
            StoreError::TooNew { path, found, supported } => write!(
                f,
                "database schema version {found} is newer than this btestd supports ({supported}); upgrade \
                 btestd or use another --db (file {})",
                path.display()
            ),
            StoreError::DiskFull { path } => {
                write!(f, "the file system holding {} is full; free some space on it", path.display())
            }
            StoreError::Io { path, detail } => write!(
                f,
                "I/O error on database {}: {detail}; check the disk or flash and the kernel log",
                path.display()
            ),
            StoreError::Deleted { path } => write!(f, "database {} was deleted while in use", path.display()),
            StoreError::Invalid { path, detail } => write!(
                f,
                "database {} holds data this btestd cannot use: {detail}; fix or delete that row with the \
                 btestd user/quota commands",
                path.display()
            ),
            StoreError::Sql { path, detail } => write!(f, "database {}: {detail}", path.display()),
            StoreError::UserExists { name } => {
                write!(f, "user '{name}' already exists; use 'btestd user set {name}' to change it")
            }
            StoreError::NoSuchUser { name } => {
                write!(f, "no user '{name}'; 'btestd user list' shows the users, 'btestd user add' adds one")
            }
            StoreError::BadUserName { name, why } => write!(f, "invalid user name '{}': {why}", name.escape_debug()),
            StoreError::Usage(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for StoreError {}

/// `Result` with a [`StoreError`].
pub type Result<T> = std::result::Result<T, StoreError>;
