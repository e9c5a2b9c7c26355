//! Validated names. A secret's name is also the environment variable that
//! carries it, so names that change how programs, shells and loaders behave
//! are refused: whoever creates a secret must not be able to steer the agent.

use std::fmt;

/// The longest secret name accepted.
pub const MAX_SECRET_NAME_LEN: usize = 128;

/// A secret's name: `[A-Za-z_][A-Za-z0-9_]*`, at most 128 characters, and
/// not a variable that changes how a process runs.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct SecretName(String);

/// Why a name was refused. Messages name the name, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("a secret name cannot be empty")]
    Empty,
    #[error("the name `{0}` is longer than {MAX_SECRET_NAME_LEN} characters")]
    TooLong(String),
    #[error(
        "the name `{0}` is not a valid environment variable name: use letters, digits and `_`, not starting with a digit"
    )]
    Syntax(String),
    #[error(
        "the name `{name}` is reserved: {why}; choose another name, such as `APP_{upper}`",
        upper = name.to_ascii_uppercase()
    )]
    Reserved { name: String, why: &'static str },
    #[error(
        "the member name `{0}` is not valid: use letters, digits, `.`, `_` and `-` (at most 64)"
    )]
    Member(String),
}

impl SecretName {
    pub fn new(name: &str) -> Result<SecretName, NameError> {
        validate_env_syntax(name)?;
        if name.len() > MAX_SECRET_NAME_LEN {
            return Err(NameError::TooLong(name.to_owned()));
        }
        if let Some(why) = is_reserved_env_name(name) {
            return Err(NameError::Reserved {
                name: name.to_owned(),
                why,
            });
        }
        Ok(SecretName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl fmt::Debug for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretName({})", self.0)
    }
}

impl std::str::FromStr for SecretName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SecretName::new(s)
    }
}

impl AsRef<str> for SecretName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Checks `[A-Za-z_][A-Za-z0-9_]*`: the shape of a portable variable name.
pub(crate) fn validate_env_syntax(name: &str) -> Result<(), NameError> {
    let mut chars = name.chars();
    match chars.next() {
        None => return Err(NameError::Empty),
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        Some(_) => return Err(NameError::Syntax(name.to_owned())),
    }
    if chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(())
    } else {
        Err(NameError::Syntax(name.to_owned()))
    }
}

/// Exact names that a secret may not take (compared case-insensitively).
const RESERVED_EXACT: &[(&str, &str)] = &[
    ("PATH", "it decides which programs run"),
    ("HOME", "programs read their configuration from it"),
    ("USER", "it names the user the agent runs as"),
    ("LOGNAME", "it names the user the agent runs as"),
    ("SHELL", "it decides which shell programs start"),
    ("PWD", "it names the working directory"),
    ("OLDPWD", "it names a working directory"),
    ("TMPDIR", "it decides where temporary files go"),
    ("TMP", "it decides where temporary files go"),
    ("TEMP", "it decides where temporary files go"),
    ("LANG", "it changes how programs read and print text"),
    ("LANGUAGE", "it changes how programs read and print text"),
    ("TERM", "it changes how programs drive the terminal"),
    ("TZ", "it changes how programs read time"),
    ("IFS", "it changes how shells split words"),
    ("ENV", "shells run the file it names"),
    ("BASH_ENV", "bash runs the file it names"),
    ("CDPATH", "it changes how shells resolve directories"),
    ("GLOBIGNORE", "it changes how shells expand patterns"),
    ("PS4", "shells evaluate it"),
    ("PROMPT_COMMAND", "shells run it"),
    ("NODE_OPTIONS", "it changes how Node.js runs"),
    ("NODE_PATH", "it changes which modules Node.js loads"),
    (
        "NODE_EXTRA_CA_CERTS",
        "it changes which certificates are trusted",
    ),
    ("JAVA_TOOL_OPTIONS", "it changes how the JVM runs"),
    ("_JAVA_OPTIONS", "it changes how the JVM runs"),
    ("JDK_JAVA_OPTIONS", "it changes how the JVM runs"),
    (
        "CURL_CA_BUNDLE",
        "it changes which certificates are trusted",
    ),
    (
        "REQUESTS_CA_BUNDLE",
        "it changes which certificates are trusted",
    ),
    ("GCONV_PATH", "the C library loads code from it"),
    ("LOCPATH", "the C library loads data from it"),
    ("NLSPATH", "the C library loads data from it"),
    ("HOSTALIASES", "it changes how host names resolve"),
    ("LOCALDOMAIN", "it changes how host names resolve"),
    ("EDITOR", "programs run it"),
    ("VISUAL", "programs run it"),
    ("PAGER", "programs run it"),
];

/// Prefixes that a secret name may not start with (case-insensitively).
const RESERVED_PREFIX: &[(&str, &str)] = &[
    ("LD_", "the dynamic loader reads it"),
    ("DYLD_", "the dynamic loader reads it"),
    ("LC_", "it changes how programs read and print text"),
    ("BASH_FUNC_", "bash imports functions from it"),
    ("PYTHON", "it changes how Python runs"),
    ("PERL", "it changes how Perl runs"),
    ("RUBY", "it changes how Ruby runs"),
    ("GEM_", "it changes which Ruby code loads"),
    ("GIT_", "it changes how git runs"),
    ("SSL_CERT_", "it changes which certificates are trusted"),
    ("MALLOC_", "it changes how the C library allocates memory"),
    ("RES_", "it changes how host names resolve"),
    ("SUPERVISOR_", "the supervisor sets these variables itself"),
];

/// Suffixes that a secret name may not end with (case-insensitively).
const RESERVED_SUFFIX: &[(&str, &str)] = &[("_PROXY", "it reroutes the agent's network traffic")];

/// Why `name` may not carry a secret, or `None` when it may.
pub fn is_reserved_env_name(name: &str) -> Option<&'static str> {
    let upper = name.to_ascii_uppercase();
    RESERVED_EXACT
        .iter()
        .find(|(n, _)| upper == *n)
        .or_else(|| RESERVED_PREFIX.iter().find(|(p, _)| upper.starts_with(p)))
        .or_else(|| RESERVED_SUFFIX.iter().find(|(s, _)| upper.ends_with(s)))
        .map(|(_, why)| *why)
}

/// Member and agent names: `[A-Za-z0-9][A-Za-z0-9._-]*`, at most 64.
pub fn validate_member_name(name: &str) -> Result<(), NameError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(NameError::Member(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for name in ["METABASE_API_KEY", "_x", "a1", "GITHUB_TOKEN", "MY_PATH"] {
            assert!(SecretName::new(name).is_ok(), "{name}");
        }
        assert!(SecretName::new(&"A".repeat(128)).is_ok());
    }

    #[test]
    fn refuses_bad_syntax() {
        assert_eq!(SecretName::new(""), Err(NameError::Empty));
        for name in ["1ABC", "A-B", "A B", "Ä", "A=B", "A\0"] {
            assert!(
                matches!(SecretName::new(name), Err(NameError::Syntax(_))),
                "{name}"
            );
        }
        assert!(matches!(
            SecretName::new(&"A".repeat(129)),
            Err(NameError::TooLong(_))
        ));
    }

    #[test]
    fn refuses_names_that_steer_programs() {
        for name in [
            "PATH",
            "path",
            "Home",
            "USER",
            "SHELL",
            "PWD",
            "TMPDIR",
            "LANG",
            "TERM",
            "IFS",
            "ENV",
            "BASH_ENV",
            "BASH_FUNC_foo%%",
            "LD_PRELOAD",
            "ld_library_path",
            "DYLD_INSERT_LIBRARIES",
            "NODE_OPTIONS",
            "PYTHONPATH",
            "PERL5LIB",
            "RUBYOPT",
            "JAVA_TOOL_OPTIONS",
            "_JAVA_OPTIONS",
            "GIT_SSH_COMMAND",
            "HTTPS_PROXY",
            "http_proxy",
            "SSL_CERT_FILE",
            "SUPERVISOR_RUN_ID",
            "LC_ALL",
        ] {
            assert!(SecretName::new(name).is_err(), "{name} should be refused");
        }
        let err = SecretName::new("LD_PRELOAD").unwrap_err().to_string();
        assert!(
            err.contains("LD_PRELOAD") && err.contains("dynamic loader"),
            "{err}"
        );
    }

    #[test]
    fn member_names() {
        assert!(validate_member_name("alice").is_ok());
        assert!(validate_member_name("ops-bot.2").is_ok());
        assert!(validate_member_name("").is_err());
        assert!(validate_member_name("-x").is_err());
        assert!(validate_member_name("a b").is_err());
    }
}
