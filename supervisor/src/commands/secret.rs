//! `supervisor secret create|update|delete|list`. Values come in through a
//! file, a hidden prompt or stdin, and never go out again.

use std::io::{IsTerminal, Read};

use anyhow::{Context as _, Result};
use secrecy::{ExposeSecret, SecretString};
use supervisor_protocol::{Change, Reply, Request, SecretValue, Target, TargetScope};
use supervisor_store::MAX_VALUE_LEN;
use zeroize::Zeroizing;

use super::print::{self, Table};
use super::views::{SecretView, read, read_all, unexpected};
use crate::backend::Backend;
use crate::cli::{TargetArgs, WriteArgs};
use crate::fail::Failure;
use crate::redact::MIN_REDACTABLE_LEN;
use crate::when;

/// The secret the flags name. Who may touch it is for the handler to say.
fn target(args: &TargetArgs) -> Target {
    Target {
        scope: if args.team {
            TargetScope::Team
        } else {
            TargetScope::Personal {
                member: args.member.clone(),
            }
        },
        name: args.name.clone(),
    }
}

/// Reads the value: --value-file exactly, else a hidden prompt (twice) on a
/// terminal, else all of stdin exactly. Line breaks at the end of a file or
/// of stdin are kept (and said) unless --strip-newline removes them (and
/// says so): bytes are never changed silently.
fn read_value(args: &WriteArgs, name: &str) -> Result<SecretString> {
    let (mut bytes, source) = if let Some(path) = &args.value_file {
        let file = std::fs::File::open(path)
            .with_context(|| format!("reading the value from {}", path.display()))?;
        let meta = file
            .metadata()
            .with_context(|| format!("reading the value from {}", path.display()))?;
        if meta.len() > MAX_VALUE_LEN as u64 {
            return Err(Failure::new(format!(
                "{} is {} bytes; a value is at most {MAX_VALUE_LEN} bytes (64 KiB)",
                path.display(),
                meta.len()
            ))
            .into());
        }
        // A device or a FIFO has no length to check first: read one byte
        // past the limit at most, whatever it is.
        let mut buf = Zeroizing::new(Vec::new());
        file.take(MAX_VALUE_LEN as u64 + 1)
            .read_to_end(&mut buf)
            .with_context(|| format!("reading the value from {}", path.display()))?;
        if buf.len() > MAX_VALUE_LEN {
            return Err(Failure::new(format!(
                "{} gave more than {MAX_VALUE_LEN} bytes (64 KiB), the most a value may hold; reading stopped there",
                path.display()
            ))
            .hint("a value file must hold the value alone; a device or pipe is read up to the limit")
            .into());
        }
        (buf, path.display().to_string())
    } else if std::io::stdin().is_terminal() {
        let first = SecretString::from(rpassword::prompt_password(format!("value for {name}: "))?);
        let again = SecretString::from(rpassword::prompt_password("again, to confirm: ")?);
        if first.expose_secret() != again.expose_secret() {
            return Err(Failure::new("the two values differ; nothing was stored").into());
        }
        return Ok(first);
    } else {
        let mut buf = Zeroizing::new(Vec::new());
        std::io::stdin()
            .take(MAX_VALUE_LEN as u64 + 1)
            .read_to_end(&mut buf)
            .context("reading the value from standard input")?;
        (buf, "standard input".to_owned())
    };
    let ending = line_break_at_end(&bytes);
    if ending > 0 {
        let what = describe_line_break(&bytes[bytes.len() - ending..]);
        if args.strip_newline {
            let kept = bytes.len() - ending;
            bytes.truncate(kept);
            eprintln!(
                "note: removed the line break at the end of the value from {source} ({what}), as --strip-newline asks"
            );
        } else {
            eprintln!(
                "warning: the value from {source} ends with a line break ({what}); it is stored as is, and agents receive it"
            );
            eprintln!(
                "hint: `printf %s \"$VALUE\"` writes a value without one (`echo` adds it), or pass --strip-newline to remove it; `secret update` replaces this one"
            );
        }
    }
    match std::str::from_utf8(&bytes) {
        Ok(text) => Ok(SecretString::from(text.to_owned())),
        Err(e) => Err(Failure::new(format!(
            "the value is not UTF-8 text (invalid byte at offset {})",
            e.valid_up_to()
        ))
        .hint("store binary data base64-encoded")
        .into()),
    }
}

/// How many bytes at the end of `bytes` are line breaks (LF or CR).
fn line_break_at_end(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .rev()
        .take_while(|&&b| b == b'\n' || b == b'\r')
        .count()
}

/// "1 byte: LF", "2 bytes: CR LF".
fn describe_line_break(ending: &[u8]) -> String {
    let names: Vec<&str> = ending
        .iter()
        .map(|&b| if b == b'\n' { "LF" } else { "CR" })
        .collect();
    let unit = if ending.len() == 1 { "byte" } else { "bytes" };
    format!("{} {unit}: {}", ending.len(), names.join(" "))
}

fn warn_if_short(name: &str, len: usize) {
    if len < MIN_REDACTABLE_LEN {
        eprintln!(
            "warning: {name} is {len} byte(s) long; values shorter than {MIN_REDACTABLE_LEN} bytes are not redacted from agent output"
        );
    }
}

pub fn create(backend: &mut Backend, args: &WriteArgs) -> Result<()> {
    write(backend, args, false)
}

pub fn update(backend: &mut Backend, args: &WriteArgs) -> Result<()> {
    write(backend, args, true)
}

fn write(backend: &mut Backend, args: &WriteArgs, update: bool) -> Result<()> {
    let target = target(&args.target);
    // May we, and is the name there (or not)? Asked before anyone types a
    // value for nothing; in local mode this also opens the key.
    backend.call(Request::SecretCheck {
        target: target.clone(),
        exists: update,
    })?;
    let value = read_value(args, &target.name)?;
    let len = value.expose_secret().len();
    let reply = backend.call(Request::SecretWrite {
        target,
        update,
        description: args.description.clone(),
        value: SecretValue::new(value),
    })?;
    let (change, secret) = changed(reply)?;
    warn_if_short(&secret.name, len);
    println!(
        "{} {} (version {})",
        if change == Change::Updated {
            "updated"
        } else {
            "created"
        },
        secret.describe(),
        secret.version
    );
    Ok(())
}

pub fn delete(backend: &mut Backend, args: &TargetArgs) -> Result<()> {
    let (_, secret) = changed(backend.call(Request::SecretDelete {
        target: target(args),
    })?)?;
    println!("deleted {}", secret.describe());
    Ok(())
}

fn changed(reply: Reply) -> Result<(Change, SecretView)> {
    match reply {
        Reply::SecretChanged { change, secret } => Ok((change, read(&secret, "secret")?)),
        other => Err(unexpected(other)),
    }
}

pub fn list(backend: &mut Backend, json: bool, all: bool) -> Result<()> {
    let secrets = match backend.call(Request::SecretList { all })? {
        Reply::Secrets { secrets } => secrets,
        other => return Err(unexpected(other)),
    };
    if json {
        return print::json(&secrets);
    }
    print_table(&read_all(&secrets, "secret")?, all);
    Ok(())
}

fn print_table(secrets: &[SecretView], with_owner: bool) {
    let now = supervisor_store::now();
    let mut table = Table::new(&[
        "NAME",
        "SCOPE",
        "OWNER",
        "LAST UPDATED",
        "LEAKED",
        "DESCRIPTION",
    ]);
    for s in secrets {
        table.row(vec![
            s.name.clone(),
            s.scope.clone(),
            s.owner.clone().unwrap_or_default(),
            when::ago(s.updated_at, now),
            leaked(s, now),
            s.description.clone().unwrap_or_default(),
        ]);
    }
    // The owner column for `--all`, the leak column when some secret has leaked.
    let any_leak = secrets.iter().any(|s| s.leak.is_some());
    let mut table = if with_owner {
        table
    } else {
        table.without("OWNER")
    };
    if !any_leak {
        table = table.without("LEAKED");
    }
    table.print();
    if table.is_empty() {
        println!("(no secrets yet: `supervisor secret create --help` shows how to add one)");
    }
    if any_leak {
        println!(
            "LEAKED: a run's output showed the value (it was redacted there); `supervisor runs show RUN` tells more, and `secret update` rotates it"
        );
    }
}

/// When a secret's value last showed in a run's output, and in which run.
fn leaked(s: &SecretView, now: chrono::DateTime<chrono::Utc>) -> String {
    let Some(leak) = &s.leak else {
        return String::new();
    };
    let more = match leak.runs {
        n if n > 1 => format!(", {n} runs"),
        _ => String::new(),
    };
    format!("{} in run {}{more}", when::ago(leak.at, now), leak.run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_at_the_end_are_counted_and_named() {
        assert_eq!(line_break_at_end(b"token"), 0);
        assert_eq!(line_break_at_end(b"token\n"), 1);
        assert_eq!(line_break_at_end(b"token\r\n"), 2);
        assert_eq!(line_break_at_end(b"to\nken"), 0);
        assert_eq!(line_break_at_end(b"\n\n"), 2);
        assert_eq!(describe_line_break(b"\n"), "1 byte: LF");
        assert_eq!(describe_line_break(b"\r\n"), "2 bytes: CR LF");
    }
}
