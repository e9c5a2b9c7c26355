//! The supervisor's own credentials (signing secrets, API tokens), read
//! from where the config's references point: a file, an environment
//! variable, or a systemd credential. Errors name the reference, never
//! the value.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use secrecy::SecretString;
use supervisor_config::SecretRef;
use zeroize::Zeroizing;

/// Reads one credential. A trailing newline (as `echo` and editors leave)
/// is dropped; an empty credential is refused, since an empty signing
/// secret would let anyone sign requests.
pub fn resolve(r: &SecretRef, what: &str) -> Result<SecretString> {
    let raw: Zeroizing<String> = match r {
        SecretRef::File(path) => read_file(path, what)?,
        SecretRef::Env(name) => Zeroizing::new(
            std::env::var(name)
                .with_context(|| format!("{what}: the environment variable {name} is not set"))?,
        ),
        SecretRef::Credential(name) => {
            if name.is_empty() || name.contains('/') || name == ".." || name == "." {
                bail!("{what}: `{name}` is not a credential name");
            }
            let dir = std::env::var_os("CREDENTIALS_DIRECTORY").with_context(|| {
                format!("{what}: {{ credential = \"{name}\" }} needs $CREDENTIALS_DIRECTORY (set by systemd's LoadCredential=)")
            })?;
            read_file(&PathBuf::from(dir).join(name), what)?
        }
    };
    let value = raw
        .strip_suffix('\n')
        .map(|v| v.strip_suffix('\r').unwrap_or(v))
        .unwrap_or(&raw);
    if value.is_empty() {
        bail!("{what} is empty");
    }
    Ok(SecretString::from(value.to_owned()))
}

fn read_file(path: &Path, what: &str) -> Result<Zeroizing<String>> {
    let bytes = Zeroizing::new(
        std::fs::read(path).with_context(|| format!("{what}: reading {}", path.display()))?,
    );
    match std::str::from_utf8(&bytes) {
        Ok(s) => Ok(Zeroizing::new(s.to_owned())),
        Err(_) => bail!("{what}: {} is not UTF-8 text", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn files_lose_one_trailing_newline_and_empty_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        std::fs::write(&p, "value-123\n").unwrap();
        let v = resolve(&SecretRef::File(p.clone()), "test secret").unwrap();
        assert_eq!(v.expose_secret(), "value-123");
        std::fs::write(&p, "\n").unwrap();
        let err = resolve(&SecretRef::File(p), "test secret").unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
    }

    #[test]
    fn credential_names_cannot_leave_the_directory() {
        for name in ["../x", "a/b", "..", ""] {
            let err = resolve(&SecretRef::Credential(name.into()), "t").unwrap_err();
            assert!(err.to_string().contains("not a credential name"), "{err}");
        }
    }

    #[test]
    fn errors_name_the_reference_not_the_value() {
        let err = resolve(
            &SecretRef::Env("SUPERVISOR_TEST_SURELY_UNSET".into()),
            "the Slack token",
        )
        .unwrap_err();
        assert!(err.to_string().contains("SUPERVISOR_TEST_SURELY_UNSET"));
    }
}
