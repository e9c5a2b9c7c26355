//! Errors of the store. Messages name files, secrets and members, never a value.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no master key at {path}")]
    KeyMissing { path: PathBuf },
    #[error(
        "permissions {mode:04o} for {path} are too open: the master key must be readable by its owner only (run `chmod 600 {path}`)"
    )]
    KeyPermissions { path: PathBuf, mode: u32 },
    #[error("{path}{} is not a regular file", via(resolved))]
    KeyNotFile {
        path: PathBuf,
        resolved: Option<PathBuf>,
    },
    #[error(
        "{path}{} belongs to uid {owner}, not to the user running the supervisor (uid {me}): a master key must be that user's own file",
        via(resolved)
    )]
    KeyOwner {
        path: PathBuf,
        resolved: Option<PathBuf>,
        owner: u32,
        me: u32,
    },
    #[error(
        "{dir}, a directory on the way to the master key {path}, may be changed by others (mode {mode:04o}, owner uid {owner}): whoever can write it can replace the key"
    )]
    KeyDirectory {
        path: PathBuf,
        dir: PathBuf,
        mode: u32,
        owner: u32,
    },
    #[error("{path} holds {len} bytes; a master key is exactly 32 bytes")]
    KeyLength { path: PathBuf, len: usize },
    #[error("a master key already exists at {path}; refusing to overwrite it")]
    KeyExists { path: PathBuf },
    #[error("this master key does not open this store")]
    WrongKey,
    #[error("this command needs the master key, and none was given")]
    KeyRequired,
    #[error("no store at {path}")]
    StoreMissing { path: PathBuf },
    #[error(
        "the store at {place} was written by a newer supervisor (schema {found}, this one knows {known})"
    )]
    SchemaTooNew {
        place: String,
        found: i64,
        known: i64,
    },
    #[error("the [store] url is not usable: {0}")]
    BadUrl(String),
    #[error("the database {place} cannot be reached: {reason}")]
    Unreachable { place: String, reason: String },
    #[error("the database {place} refused the connection: {reason}")]
    Refused { place: String, reason: String },
    #[error("the database {place} holds no store yet")]
    NotInitialised { place: String },
    #[error("a {scope} secret named `{name}` already exists")]
    SecretExists { scope: String, name: String },
    #[error("no {scope} secret named `{name}`")]
    SecretNotFound { scope: String, name: String },
    #[error("the stored value of {scope} secret `{name}` does not open: {reason}")]
    Tampered {
        scope: String,
        name: String,
        reason: String,
    },
    #[error("the audit log does not hold: {0}")]
    Evidence(String),
    #[error(
        "the change is on disk, but {left} page(s) of the write-ahead log beside {path} could not be emptied because another process kept reading an older snapshot; older copies of changed rows may remain there"
    )]
    CheckpointBusy { path: PathBuf, left: i64 },
    #[error("{0}")]
    InvalidValue(String),
    #[error("no run with id `{0}`")]
    RunNotFound(String),
    #[error("`{0}` matches several runs; give more of the id")]
    RunAmbiguous(String),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database error: {0}")]
    Postgres(#[from] postgres::Error),
    #[error("the system random generator failed: {0}")]
    Random(String),
    #[error("stored data is malformed: {0}")]
    Corrupt(String),
}

/// ` (which resolves to X)` when a symlink was followed.
fn via(resolved: &Option<PathBuf>) -> String {
    match resolved {
        Some(r) => format!(" (which resolves to {})", r.display()),
        None => String::new(),
    }
}

impl StoreError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
