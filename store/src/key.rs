//! The master key: 32 random bytes from a 0600 file or a systemd credential.
//!
//! A key file is checked as ssh checks a private key: symlinks are resolved,
//! and the file must be a regular file owned by the user running the
//! supervisor and readable by its owner only, in directories that only
//! their owner (root or that user) may change (sticky ones excepted). The
//! file read is the file checked.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::{Result, StoreError};

/// The length of a master key in bytes.
pub const KEY_LEN: usize = 32;

/// The name of the key when it comes as a systemd credential.
pub const CREDENTIAL_NAME: &str = "master.key";

/// The key that seals every secret value. Zeroized on drop; never printed.
pub struct MasterKey {
    bytes: Zeroizing<[u8; KEY_LEN]>,
    source: PathBuf,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey(<redacted>, from {})", self.source.display())
    }
}

impl MasterKey {
    /// Finds the key: `$CREDENTIALS_DIRECTORY/master.key` when that variable
    /// is set and the file exists (systemd manages its permissions), else
    /// `key_file`, which must be readable by its owner only.
    pub fn load(key_file: &Path, credentials_dir: Option<&Path>) -> Result<MasterKey> {
        if let Some(dir) = credentials_dir {
            let path = dir.join(CREDENTIAL_NAME);
            if path.exists() {
                return read_key(&path, false);
            }
        }
        read_key(key_file, true)
    }

    /// Writes a fresh random key to `path` (0600, never over an existing file).
    pub fn generate(path: &Path) -> Result<MasterKey> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        getrandom::fill(bytes.as_mut()).map_err(|e| StoreError::Random(e.to_string()))?;
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => StoreError::KeyExists {
                    path: path.to_owned(),
                },
                _ => StoreError::io("create key file", path, e),
            })?;
        file.write_all(bytes.as_ref())
            .and_then(|()| file.sync_all())
            .map_err(|e| StoreError::io("write key file", path, e))?;
        Ok(MasterKey {
            bytes,
            source: path.to_owned(),
        })
    }

    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    /// Where the key was read from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    #[cfg(test)]
    pub(crate) fn from_bytes(bytes: [u8; KEY_LEN]) -> MasterKey {
        MasterKey {
            bytes: Zeroizing::new(bytes),
            source: PathBuf::from("<test>"),
        }
    }
}

/// Resolves `path` and checks the directories on the way to it; returns
/// the resolved path.
fn check_key_path(path: &Path, me: u32) -> Result<PathBuf> {
    let real = match std::fs::canonicalize(path) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StoreError::KeyMissing {
                path: path.to_owned(),
            });
        }
        Err(e) => return Err(StoreError::io("resolve key file", path, e)),
    };
    for dir in real.ancestors().skip(1) {
        let meta =
            std::fs::metadata(dir).map_err(|e| StoreError::io("inspect directory", dir, e))?;
        let mode = meta.permissions().mode();
        let owner_ok = meta.uid() == 0 || meta.uid() == me;
        let sticky = mode & 0o1000 != 0;
        if !owner_ok || (mode & 0o022 != 0 && !sticky) {
            return Err(StoreError::KeyDirectory {
                path: path.to_owned(),
                dir: dir.to_owned(),
                mode: mode & 0o7777,
                owner: meta.uid(),
            });
        }
    }
    Ok(real)
}

fn read_key(path: &Path, check_file: bool) -> Result<MasterKey> {
    let me = nix::unistd::geteuid().as_raw();
    let open_path = if check_file {
        check_key_path(path, me)?
    } else {
        path.to_owned()
    };
    let mut options = OpenOptions::new();
    options.read(true);
    if check_file {
        // The resolved path has no symlink left: one appearing now is refused.
        options.custom_flags(nix::libc::O_NOFOLLOW);
    }
    let mut file = match options.open(&open_path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StoreError::KeyMissing {
                path: path.to_owned(),
            });
        }
        Err(e) => return Err(StoreError::io("open key file", path, e)),
    };
    let meta = file
        .metadata()
        .map_err(|e| StoreError::io("inspect key file", path, e))?;
    if check_file {
        let resolved = (open_path != path).then(|| open_path.clone());
        if !meta.file_type().is_file() {
            return Err(StoreError::KeyNotFile {
                path: path.to_owned(),
                resolved,
            });
        }
        if meta.uid() != me {
            return Err(StoreError::KeyOwner {
                path: path.to_owned(),
                resolved,
                owner: meta.uid(),
                me,
            });
        }
    }
    if check_file && meta.mode() & 0o077 != 0 {
        return Err(StoreError::KeyPermissions {
            path: path.to_owned(),
            mode: meta.mode() & 0o7777,
        });
    }
    // Read at most one byte more than a key, so that a wrong file is named
    // by its length without being read whole.
    let mut buf = Zeroizing::new(Vec::with_capacity(KEY_LEN + 1));
    (&mut file)
        .take(KEY_LEN as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| StoreError::io("read key file", path, e))?;
    if buf.len() != KEY_LEN {
        let len = if buf.len() > KEY_LEN {
            meta.len() as usize
        } else {
            buf.len()
        };
        return Err(StoreError::KeyLength {
            path: path.to_owned(),
            len,
        });
    }
    let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
    bytes.copy_from_slice(&buf);
    Ok(MasterKey {
        bytes,
        source: path.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generate_then_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let k = MasterKey::generate(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = MasterKey::load(&path, None).unwrap();
        assert_eq!(k.bytes(), again.bytes());
        assert!(matches!(
            MasterKey::generate(&path),
            Err(StoreError::KeyExists { .. })
        ));
        assert!(!format!("{k:?}").contains(&hex::encode(k.bytes())));
    }

    #[test]
    fn refuses_a_key_readable_by_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        MasterKey::generate(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = MasterKey::load(&path, None).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("0644") && msg.contains("chmod 600"), "{msg}");
    }

    #[test]
    fn credentials_directory_wins_when_it_holds_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("creds");
        std::fs::create_dir(&creds).unwrap();
        let from_creds = MasterKey::generate(&creds.join(CREDENTIAL_NAME)).unwrap();
        // systemd may present credentials 0400 or 0440; the file check does not apply.
        std::fs::set_permissions(
            creds.join(CREDENTIAL_NAME),
            std::fs::Permissions::from_mode(0o440),
        )
        .unwrap();
        let loaded = MasterKey::load(&dir.path().join("absent.key"), Some(&creds)).unwrap();
        assert_eq!(loaded.bytes(), from_creds.bytes());
        // An empty credentials directory falls back to the key file.
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        assert!(matches!(
            MasterKey::load(&dir.path().join("absent.key"), Some(&empty)),
            Err(StoreError::KeyMissing { .. })
        ));
    }

    #[test]
    fn a_symlink_is_followed_and_its_target_checked() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.key");
        let k = MasterKey::generate(&real).unwrap();
        let link = dir.path().join("master.key");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert_eq!(MasterKey::load(&link, None).unwrap().bytes(), k.bytes());
        // A target readable by others is refused, named by the path given.
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o644)).unwrap();
        let msg = MasterKey::load(&link, None).unwrap_err().to_string();
        assert!(
            msg.contains("master.key") && msg.contains("too open"),
            "{msg}"
        );
        // A directory that others may write is refused.
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let msg = MasterKey::load(&link, None).unwrap_err().to_string();
        assert!(msg.contains("may be changed by others"), "{msg}");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        // Not a regular file.
        let msg = MasterKey::load(dir.path(), None).unwrap_err().to_string();
        assert!(msg.contains("not a regular file"), "{msg}");
    }

    #[test]
    fn wrong_length_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, b"short").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let msg = MasterKey::load(&path, None).unwrap_err().to_string();
        assert!(msg.contains("5 bytes"), "{msg}");
    }
}
