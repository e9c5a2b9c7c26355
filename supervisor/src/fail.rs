//! User-facing failures: `error: ...`, an optional `hint: ...`, an exit code.

use std::fmt;

use supervisor_config::ConfigError;
use supervisor_protocol::{ErrorKind, WireError};
use supervisor_store::StoreError;

use crate::control::authz::Denied;

/// A failure meant for the person at the terminal.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub hint: Option<String>,
    pub code: u8,
}

impl Failure {
    pub fn new(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            hint: None,
            code: 1,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Failure {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// An error of a command that went through a backend, with the mode that
/// answered (local, or the daemon on which socket).
#[derive(Debug)]
pub struct Routed {
    pub mode: String,
    pub error: anyhow::Error,
}

impl fmt::Display for Routed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

impl std::error::Error for Routed {}

/// Prints an error chain with hints to stderr and returns the exit code.
pub fn report(err: &anyhow::Error) -> u8 {
    if let Some(r) = err.downcast_ref::<Routed>() {
        let code = report(&r.error);
        eprintln!("note: {}", r.mode);
        return code;
    }
    if let Some(ConfigError::Invalid { problems, .. }) = err.downcast_ref::<ConfigError>() {
        // Located problems already carry their own hints.
        eprintln!("error: the config has {} problem(s):", problems.len());
        eprintln!("{err}");
        return 1;
    }
    let (message, hint, code) = describe(err);
    eprintln!("error: {message}");
    if let Some(h) = hint {
        eprintln!("hint: {h}");
    }
    code
}

/// The error as the daemon sends it to a client of the control socket.
pub fn to_wire(err: &anyhow::Error) -> WireError {
    let kind = if err.downcast_ref::<Denied>().is_some() {
        ErrorKind::Denied
    } else {
        ErrorKind::Failed
    };
    let (message, hint, _) = describe(err);
    WireError {
        kind,
        message,
        hint,
    }
}

/// Message, hint and exit code of an error.
fn describe(err: &anyhow::Error) -> (String, Option<String>, u8) {
    if let Some(f) = err.downcast_ref::<Failure>() {
        return (f.message.clone(), f.hint.clone(), f.code);
    }
    if let Some(d) = err.downcast_ref::<Denied>() {
        return (d.message.clone(), d.hint.clone(), 1);
    }
    let hint = err.downcast_ref::<StoreError>().and_then(store_hint);
    (format!("{err:#}"), hint, 1)
}

fn store_hint(e: &StoreError) -> Option<String> {
    Some(match e {
        StoreError::KeyMissing { .. } | StoreError::StoreMissing { .. } => {
            "run `supervisor init` to create the state directory, key and store; where a daemon serves the team, talk to it instead (--socket PATH, or `control_socket` in the config's [server])".into()
        }
        StoreError::WrongKey => "check `key_file` in the config, or $CREDENTIALS_DIRECTORY/master.key: a store opens only with the key it was created with".into(),
        StoreError::SecretExists { .. } => "use `supervisor secret update` to replace its value".into(),
        StoreError::SecretNotFound { .. } => "`supervisor secret list` shows what exists".into(),
        StoreError::KeyOwner { .. } => "the key must be a file of the user that runs the supervisor: copy it to a file of your own (mode 0600) and point `key_file` at it".into(),
        StoreError::KeyDirectory { dir, .. } => format!("run `chmod go-w {}`, or keep the key in a directory of your own", dir.display()),
        StoreError::KeyNotFile { .. } => "`key_file` must name the 32-byte key file itself".into(),
        StoreError::KeyLength { .. } => "a master key is 32 random bytes; `supervisor init` creates one".into(),
        StoreError::Tampered { .. } => "the store was modified outside the supervisor; `supervisor audit verify` checks the log, and `supervisor secret update` stores a fresh value".into(),
        StoreError::Evidence(_) => "someone without the master key wrote to the store; `supervisor audit verify` names what is wrong".into(),
        StoreError::CheckpointBusy { .. } => "run the command again once the other readers of the store (a long `runs list`, a backup) have finished".into(),
        StoreError::Unreachable { .. } => "check that the database server runs and that this host may reach it (host, port, firewall); commands and runs wait for nothing: try again once it answers".into(),
        StoreError::Refused { .. } => "check the user, password and database name in the URL that [store] url points to".into(),
        StoreError::NotInitialised { .. } => "run `supervisor init` once (from any node, with the team's master key) to create the store in it".into(),
        StoreError::BadUrl(_) => "[store] url must point to a file, variable or credential holding postgres://USER:PASSWORD@HOST:PORT/DATABASE".into(),
        StoreError::KeyRequired => "this command writes to the audit log, which needs the master key: run it where `key_file` (or $CREDENTIALS_DIRECTORY/master.key) is readable".into(),
        _ => return None,
    })
}
