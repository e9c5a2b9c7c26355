//! The control socket: where members' CLI commands arrive.
//!
//! The socket is bound in a fresh 0700 directory beside its final path,
//! given its mode there (0666: anyone may connect, and the daemon decides
//! per peer), and only then renamed into place, so that nobody can connect
//! before its permissions are set. The directory it lives in must be
//! writable by no one but its owner: whoever could write there could put
//! their own socket in its place and collect the values members store.
//! A socket left by a daemon that died is replaced; one a live daemon
//! answers on is not.

use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use supervisor_protocol::{ErrorKind, WireError};
use tokio::net::UnixListener;
use tokio::sync::Semaphore;

use super::Daemon;
use crate::fail::Failure;

/// Connections handled at once; beyond, new ones are told to retry.
const MAX_CONNECTIONS: usize = 64;

/// The socket's mode: every local user may connect; the daemon then
/// refuses everyone who is not a member.
const SOCKET_MODE: u32 = 0o666;

/// A bound control socket; dropping it removes the socket file (if it is
/// still the one this daemon bound).
pub struct ControlSocket {
    path: PathBuf,
    inode: u64,
    listener: Option<UnixListener>,
}

/// Where the daemon listens: `[server] control_socket`, else
/// `$RUNTIME_DIRECTORY/control.sock` when systemd gave it one, else nowhere.
pub fn socket_path(configured: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = configured {
        return Some(p.to_owned());
    }
    let runtime = std::env::var_os("RUNTIME_DIRECTORY")?;
    // systemd lists several directories separated by colons; the first is ours.
    let first = runtime.to_string_lossy().split(':').next()?.to_owned();
    (!first.is_empty()).then(|| Path::new(&first).join("control.sock"))
}

impl ControlSocket {
    /// Binds `path`, race-free as described above. Needs a runtime.
    pub fn bind(path: &Path) -> Result<ControlSocket> {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        check_dir(dir, path)?;
        check_existing(path)?;

        let private = dir.join(format!(
            ".control-{}-{}",
            std::process::id(),
            uuid::Uuid::now_v7().simple()
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&private)
            .with_context(|| format!("creating {}", private.display()))?;
        let result = (|| -> Result<(std::os::unix::net::UnixListener, u64)> {
            let staged = private.join("s");
            let listener = std::os::unix::net::UnixListener::bind(&staged)
                .with_context(|| format!("binding the control socket in {}", private.display()))?;
            std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(SOCKET_MODE))
                .with_context(|| format!("setting the mode of {}", staged.display()))?;
            let inode = std::fs::metadata(&staged)?.ino();
            std::fs::rename(&staged, path)
                .with_context(|| format!("moving the control socket to {}", path.display()))?;
            Ok((listener, inode))
        })();
        let _ = std::fs::remove_dir_all(&private);
        let (listener, inode) = result?;
        listener.set_nonblocking(true)?;
        Ok(ControlSocket {
            path: path.to_owned(),
            inode,
            listener: Some(UnixListener::from_std(listener)?),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts connections until `stop` resolves; each is served on a task
    /// of its own. Then waits for the connections in flight: a client
    /// following a run gets its end, also when a shutdown ended the run.
    pub async fn serve(&mut self, daemon: Arc<Daemon>, stop: impl Future<Output = ()>) {
        let Some(listener) = self.listener.take() else {
            return;
        };
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let mut sessions = tokio::task::JoinSet::new();
        tokio::pin!(stop);
        loop {
            let stream = tokio::select! {
                Some(_) = sessions.join_next(), if !sessions.is_empty() => continue,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "control socket: accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut stop => break,
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                tokio::spawn(super::session::refuse(
                    stream,
                    WireError::new(
                        ErrorKind::Busy,
                        format!("the daemon is serving {MAX_CONNECTIONS} connections already"),
                    )
                    .hint("try again in a moment"),
                ));
                continue;
            };
            let daemon = daemon.clone();
            sessions.spawn(async move {
                super::session::serve(daemon, stream).await;
                drop(slot);
            });
        }
        // Nobody new can connect; the socket file goes once they are done.
        drop(listener);
        while sessions.join_next().await.is_some() {}
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        // Only our own: a newer daemon may have replaced it.
        if std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.ino() == self.inode) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The socket's directory must exist and be writable by its owner only.
fn check_dir(dir: &Path, path: &Path) -> Result<()> {
    let meta = std::fs::metadata(dir).map_err(|e| {
        Failure::new(format!(
            "the directory of the control socket {} is not there: {e}",
            path.display()
        ))
        .hint("create it (systemd's RuntimeDirectory= does), or set [server] control_socket")
    })?;
    if meta.permissions().mode() & 0o022 != 0 {
        return Err(Failure::new(format!(
            "the directory of the control socket, {}, is writable by others (mode {:04o}): anyone who can write there could put their own socket in its place",
            dir.display(),
            meta.permissions().mode() & 0o7777
        ))
        .hint("use a directory only the daemon's account may write, such as /run/supervisor (RuntimeDirectory=supervisor)")
        .into());
    }
    Ok(())
}

/// A socket file already at `path` is replaced only when nothing answers
/// on it; anything else there is left alone.
fn check_existing(path: &Path) -> Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("looking at {}", path.display())),
    };
    if !meta.file_type().is_socket() {
        return Err(Failure::new(format!(
            "{} exists and is not a socket; the daemon will not replace it",
            path.display()
        ))
        .hint("remove it, or set [server] control_socket to another path")
        .into());
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(Failure::new(format!(
            "another daemon is listening on the control socket {}",
            path.display()
        ))
        .hint("stop it first, or give this one another [server] control_socket")
        .into());
    }
    Ok(())
}
