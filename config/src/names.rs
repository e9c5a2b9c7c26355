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
    ("MANPAGER", "programs run it"),
    ("BROWSER", "programs run it"),
    ("LESSOPEN", "less runs it"),
    ("LESSCLOSE", "less runs it"),
    ("SUDO_ASKPASS", "sudo runs it"),
    // Shells and terminals: options and files they load.
    ("SHELLOPTS", "it turns on bash options"),
    ("BASHOPTS", "it turns on bash options"),
    ("ZDOTDIR", "zsh loads its startup files from it"),
    ("INPUTRC", "readline loads its configuration from it"),
    ("HISTFILE", "shells write their history to it"),
    ("TERMINFO", "programs load terminal descriptions from it"),
    (
        "TERMINFO_DIRS",
        "programs load terminal descriptions from it",
    ),
    ("TERMCAP", "programs load terminal descriptions from it"),
    // The C library and loaders.
    ("GLIBC_TUNABLES", "the C library and the loader read it"),
    ("GETCONF_DIR", "the C library loads programs from it"),
    // TLS and trust.
    ("SSLKEYLOGFILE", "TLS libraries write session keys to it"),
    (
        "OPENSSL_CONF",
        "OpenSSL loads its configuration (and modules) from it",
    ),
    ("OPENSSL_ENGINES", "OpenSSL loads code from it"),
    ("OPENSSL_MODULES", "OpenSSL loads code from it"),
    ("NETRC", "programs read credentials from the file it names"),
    ("CURL_HOME", "curl loads its configuration from it"),
    ("WGETRC", "wget loads its configuration from it"),
    ("GNUPGHOME", "gpg loads keys and configuration from it"),
    (
        "KUBECONFIG",
        "kubectl loads configuration, and the programs it runs, from it",
    ),
    (
        "DOCKER_HOST",
        "it decides which Docker daemon commands go to",
    ),
    ("DOCKER_CONFIG", "docker loads its configuration from it"),
    ("DOCKER_CERT_PATH", "docker loads its certificates from it"),
    (
        "DOCKER_TLS_VERIFY",
        "it changes how docker checks certificates",
    ),
    (
        "DOCKER_CONTEXT",
        "it decides which Docker daemon commands go to",
    ),
    (
        "AWS_CONFIG_FILE",
        "AWS tools load their configuration from it",
    ),
    (
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS tools load credentials from it",
    ),
    ("AWS_CA_BUNDLE", "it changes which certificates are trusted"),
    ("BOTO_CONFIG", "boto loads its configuration from it"),
    ("CLOUDSDK_CONFIG", "gcloud loads its configuration from it"),
    // Compilers and build tools: programs and flags they take.
    ("CC", "build tools run it as the C compiler"),
    ("CXX", "build tools run it as the C++ compiler"),
    ("CPP", "build tools run it as the preprocessor"),
    ("LD", "build tools run it as the linker"),
    ("AR", "build tools run it"),
    ("CFLAGS", "build tools pass it to the compiler"),
    ("CXXFLAGS", "build tools pass it to the compiler"),
    ("CPPFLAGS", "build tools pass it to the compiler"),
    ("LDFLAGS", "build tools pass it to the linker"),
    ("LIBRARY_PATH", "the linker loads libraries from it"),
    ("CPATH", "compilers load headers from it"),
    ("C_INCLUDE_PATH", "compilers load headers from it"),
    ("CPLUS_INCLUDE_PATH", "compilers load headers from it"),
    ("COMPILER_PATH", "compilers run programs from it"),
    ("GCC_EXEC_PREFIX", "gcc runs programs from it"),
    ("MAKEFLAGS", "make takes options from it"),
    ("MFLAGS", "make takes options from it"),
    ("MAKEFILES", "make loads the makefiles it names"),
    ("RUSTC", "cargo runs it as the compiler"),
    ("RUSTDOC", "cargo runs it"),
    ("RUSTFLAGS", "cargo passes it to the compiler"),
    ("RUSTDOCFLAGS", "cargo passes it to rustdoc"),
    ("JAVA_HOME", "Java tools run the JVM from it"),
    ("CLASSPATH", "the JVM loads classes from it"),
    ("JAVA_OPTS", "Java launchers pass it to the JVM"),
    ("MAVEN_OPTS", "Maven passes it to the JVM"),
    ("MAVEN_ARGS", "Maven takes options from it"),
    ("GRADLE_OPTS", "Gradle passes it to the JVM"),
    (
        "GRADLE_USER_HOME",
        "Gradle loads its configuration and init scripts from it",
    ),
    ("PHPRC", "PHP loads its configuration from it"),
    ("PHP_INI_SCAN_DIR", "PHP loads its configuration from it"),
    ("TCLLIBPATH", "Tcl loads code from it"),
    ("R_PROFILE", "R runs the file it names"),
    ("R_PROFILE_USER", "R runs the file it names"),
    ("R_ENVIRON", "R loads the file it names"),
    ("R_ENVIRON_USER", "R loads the file it names"),
    ("R_LIBS", "R loads packages from it"),
    ("R_LIBS_USER", "R loads packages from it"),
    ("R_HOME", "R runs itself from it"),
    ("ERL_FLAGS", "the Erlang VM takes options from it"),
    ("ERL_AFLAGS", "the Erlang VM takes options from it"),
    ("ERL_ZFLAGS", "the Erlang VM takes options from it"),
    ("ERL_LIBS", "the Erlang VM loads code from it"),
    ("ELIXIR_ERL_OPTIONS", "the Erlang VM takes options from it"),
    ("JULIA_DEPOT_PATH", "Julia loads packages from it"),
    ("JULIA_LOAD_PATH", "Julia loads code from it"),
    ("IRBRC", "irb runs the file it names"),
    ("CONDARC", "conda loads its configuration from it"),
    // Go's toolchain.
    ("GOFLAGS", "the Go toolchain takes options from it"),
    ("GOPROXY", "the Go toolchain fetches modules from it"),
    (
        "GONOPROXY",
        "it changes where the Go toolchain fetches modules",
    ),
    (
        "GOPRIVATE",
        "it changes where the Go toolchain fetches modules",
    ),
    (
        "GONOSUMDB",
        "it turns off the Go toolchain's checksum checks",
    ),
    (
        "GONOSUMCHECK",
        "it turns off the Go toolchain's checksum checks",
    ),
    ("GOSUMDB", "it changes how the Go toolchain checks modules"),
    ("GOINSECURE", "it turns off the Go toolchain's TLS checks"),
    (
        "GOVCS",
        "it changes which version control the Go toolchain runs",
    ),
    ("GOPATH", "the Go toolchain loads and installs code there"),
    ("GOROOT", "the Go toolchain runs itself from it"),
    ("GOBIN", "the Go toolchain installs programs there"),
    ("GOENV", "the Go toolchain loads its configuration from it"),
    (
        "GOTOOLCHAIN",
        "the Go toolchain downloads and runs the one it names",
    ),
    ("GOWORK", "the Go toolchain loads its workspace from it"),
    ("GOCACHE", "the Go toolchain reuses builds from it"),
    ("GOMODCACHE", "the Go toolchain loads modules from it"),
    ("GOEXPERIMENT", "it changes how Go programs are built"),
    ("GODEBUG", "it changes how Go programs run"),
    ("GOTMPDIR", "the Go toolchain builds there"),
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
    ("XDG_", "programs load their configuration and data from it"),
    ("SSH_", "ssh runs programs or uses the agent it names"),
    ("NODE_", "it changes how Node.js runs"),
    // Package managers and toolchains: each has a family of variables that
    // decide what it fetches, builds and runs.
    ("NPM_CONFIG_", "it configures npm"),
    ("YARN_", "it configures yarn"),
    ("PNPM_", "it configures pnpm"),
    ("BUN_", "it configures bun"),
    ("DENO_", "it configures Deno"),
    ("PIP_", "it configures pip"),
    ("PIPX_", "it configures pipx"),
    ("POETRY_", "it configures Poetry"),
    ("UV_", "it configures uv"),
    ("CONDA_", "it configures conda"),
    ("BUNDLE_", "it configures Bundler"),
    ("COMPOSER", "it configures Composer"),
    ("CARGO_", "it configures cargo"),
    ("RUSTC_", "it changes how Rust code is compiled"),
    ("RUSTUP_", "it configures rustup"),
    ("PKG_CONFIG", "it changes which libraries builds link"),
    (
        "DOTNET_",
        "it changes how .NET runs (and which code it loads)",
    ),
    ("CORECLR_", "the .NET runtime loads code from it"),
    ("COMPLUS_", "it changes how .NET runs"),
    ("LUA_", "Lua loads code from it"),
];

/// Names under a reserved prefix that carry a credential and steer nothing
/// else, so they may hold a secret (compared case-insensitively).
const CREDENTIAL_EXCEPTIONS: &[&str] = &["CARGO_REGISTRY_TOKEN", "NODE_AUTH_TOKEN"];

/// Suffixes that a secret name may not end with (case-insensitively).
const RESERVED_SUFFIX: &[(&str, &str)] = &[("_PROXY", "it reroutes the agent's network traffic")];

/// Why `name` may not carry a secret, or `None` when it may.
///
/// The principle: a name is reserved when a common program, shell, loader
/// or runtime takes code, configuration, options or trust from it, or writes
/// keys or traffic where it says; and so are the families of variables of
/// package managers and toolchains. A few credential variables under such a
/// family ([`CREDENTIAL_EXCEPTIONS`], and cargo's
/// `CARGO_REGISTRIES_<NAME>_TOKEN`) carry a token and nothing else.
pub fn is_reserved_env_name(name: &str) -> Option<&'static str> {
    let upper = name.to_ascii_uppercase();
    if CREDENTIAL_EXCEPTIONS.contains(&upper.as_str())
        || (upper.starts_with("CARGO_REGISTRIES_") && upper.ends_with("_TOKEN"))
    {
        return None;
    }
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
    fn refuses_what_loads_code_configuration_or_writes_keys_in_any_case() {
        let refused = [
            "GLIBC_TUNABLES",
            "SHELLOPTS",
            "BASHOPTS",
            "TERMINFO",
            "SSLKEYLOGFILE",
            "OPENSSL_CONF",
            "ZDOTDIR",
            "RUSTC_WRAPPER",
            "GOFLAGS",
            "GOPROXY",
            "npm_config_registry",
            "NPM_CONFIG_USERCONFIG",
            "PIP_INDEX_URL",
            "pip_extra_index_url",
            "CARGO_BUILD_RUSTC_WRAPPER",
            "CARGO_HOME",
            "RUSTFLAGS",
            "NODE_TLS_REJECT_UNAUTHORIZED",
            "XDG_CONFIG_HOME",
            "SSH_AUTH_SOCK",
            "SSH_ASKPASS",
            "KUBECONFIG",
            "DOTNET_STARTUP_HOOKS",
            "CORECLR_PROFILER_PATH",
            "MAKEFLAGS",
            "CC",
            "HISTFILE",
            "INPUTRC",
            "UV_INDEX_URL",
            "PYTHONSTARTUP",
        ];
        for name in refused {
            for spelled in [
                name.to_owned(),
                name.to_ascii_lowercase(),
                name.to_ascii_uppercase(),
            ] {
                assert!(
                    is_reserved_env_name(&spelled).is_some(),
                    "{spelled} should be reserved"
                );
                assert!(SecretName::new(&spelled).is_err(), "{spelled}");
            }
        }
        // Credentials whose names only look like configuration, and names
        // that merely start like a reserved one.
        for name in [
            "CARGO_REGISTRY_TOKEN",
            "cargo_registry_token",
            "CARGO_REGISTRIES_INTERNAL_TOKEN",
            "NODE_AUTH_TOKEN",
            "NPM_TOKEN",
            "GOOGLE_API_KEY",
            "GITHUB_TOKEN",
            "PIPELINE_KEY",
            "CCACHE_KEY",
            "UVICORN_SECRET",
            "DOCKER_PASSWORD",
            "AWS_SECRET_ACCESS_KEY",
        ] {
            assert_eq!(is_reserved_env_name(name), None, "{name}");
        }
    }

    #[test]
    fn reserved_messages_name_the_name() {
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
