//! `supervisor secret create|update|delete|list`. Values come in through a
//! file, a hidden prompt or stdin, and never go out again.

use std::io::{IsTerminal, Read, Write};

use anyhow::{Context as _, Result};
use secrecy::{ExposeSecret, SecretString};
use supervisor_config::{Member, SecretName};
use supervisor_store::{MAX_VALUE_LEN, Scope, SecretMeta};
use zeroize::Zeroizing;

use crate::cli::{TargetArgs, WriteArgs};
use crate::context::{Context, os_user};
use crate::fail::Failure;
use crate::redact::MIN_REDACTABLE_LEN;
use crate::when;

/// Who is acting, and on which secret.
struct Target {
    scope: Scope,
    name: SecretName,
    actor: String,
}

/// Works out scope, owner and actor, enforcing who may touch what:
/// team secrets need an admin; personal secrets belong to the acting member,
/// or to `--member` for the operator who holds the master key.
fn target(ctx: &Context, args: &TargetArgs) -> Result<Target> {
    let name = SecretName::new(&args.name)?;
    let me = ctx.me()?;
    let actor = match me {
        Some(m) => m.name.clone(),
        None => format!("unix:{}", os_user()?),
    };
    let scope = if args.team {
        let me = ctx.require_me()?;
        if !me.admin {
            return Err(Failure::new(format!(
                "team secrets are managed by admins, and member `{}` is not one",
                me.name
            ))
            .hint("ask an admin, or store it for yourself with --personal")
            .into());
        }
        Scope::Team
    } else if let Some(owner) = &args.member {
        let member: &Member = ctx.config.member(owner).ok_or_else(|| {
            Failure::new(format!("no member named `{owner}` in the config"))
                .hint("`supervisor config check` lists the members")
        })?;
        Scope::Personal(member.name.clone())
    } else {
        Scope::Personal(ctx.require_me()?.name.clone())
    };
    Ok(Target { scope, name, actor })
}

/// Reads the value: --value-file exactly, else a hidden prompt (twice) on a
/// terminal, else all of stdin exactly.
fn read_value(args: &WriteArgs, name: &SecretName) -> Result<SecretString> {
    let bytes = if let Some(path) = &args.value_file {
        let meta = std::fs::metadata(path)
            .with_context(|| format!("reading the value from {}", path.display()))?;
        if meta.len() > MAX_VALUE_LEN as u64 {
            return Err(Failure::new(format!(
                "{} is {} bytes; a value is at most {MAX_VALUE_LEN} bytes (64 KiB)",
                path.display(),
                meta.len()
            ))
            .into());
        }
        Zeroizing::new(
            std::fs::read(path)
                .with_context(|| format!("reading the value from {}", path.display()))?,
        )
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
        buf
    };
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

fn warn_if_short(name: &SecretName, value: &SecretString) {
    let len = value.expose_secret().len();
    if len < MIN_REDACTABLE_LEN {
        eprintln!(
            "warning: {name} is {len} byte(s) long; values shorter than {MIN_REDACTABLE_LEN} bytes are not redacted from agent output"
        );
    }
}

pub fn create(ctx: &Context, args: &WriteArgs) -> Result<()> {
    write(ctx, args, false)
}

pub fn update(ctx: &Context, args: &WriteArgs) -> Result<()> {
    write(ctx, args, true)
}

fn write(ctx: &Context, args: &WriteArgs, update: bool) -> Result<()> {
    let t = target(ctx, &args.target)?;
    // Open the store first, so a missing key is reported before a prompt.
    let mut store = ctx.store(true)?;
    // Say whether the name exists before anyone types a value for nothing.
    store.expect_secret(&t.scope, &t.name, update)?;
    let value = read_value(args, &t.name)?;
    let description = args.description.as_deref();
    let meta = if update {
        store.update_secret(&t.scope, &t.name, description, &value, &t.actor)?
    } else {
        store.create_secret(&t.scope, &t.name, description, &value, &t.actor)?
    };
    warn_if_short(&t.name, &value);
    println!(
        "{} {} (version {})",
        if update { "updated" } else { "created" },
        describe(&meta),
        meta.version
    );
    Ok(())
}

pub fn delete(ctx: &Context, args: &TargetArgs) -> Result<()> {
    let t = target(ctx, args)?;
    let mut store = ctx.store(false)?;
    let meta = store.delete_secret(&t.scope, &t.name, &t.actor)?;
    println!("deleted {}", describe(&meta));
    Ok(())
}

fn describe(meta: &SecretMeta) -> String {
    match &meta.owner {
        Some(owner) => format!("personal secret {} of {owner}", meta.name),
        None => format!("team secret {}", meta.name),
    }
}

pub fn list(ctx: &Context, json: bool, all: bool) -> Result<()> {
    let me = ctx.me()?;
    if all && !me.is_some_and(|m| m.admin) {
        return Err(
            Failure::new("--all shows every member's personal secrets and needs an admin").into(),
        );
    }
    let store = ctx.store(false)?;
    let mine = me.map(|m| m.name.as_str());
    let secrets: Vec<SecretMeta> = store
        .list_secrets()?
        .into_iter()
        .filter(|s| all || s.owner.is_none() || s.owner.as_deref() == mine)
        .collect();
    if json {
        println!("{}", serde_json::to_string(&secrets)?);
        return Ok(());
    }
    print_table(&secrets, all);
    Ok(())
}

fn print_table(secrets: &[SecretMeta], with_owner: bool) {
    let now = supervisor_store::now();
    let rows: Vec<[String; 6]> = secrets
        .iter()
        .map(|s| {
            [
                s.name.to_string(),
                s.scope.kind().to_owned(),
                s.owner.clone().unwrap_or_default(),
                when::ago(s.updated_at, now),
                leaked(s, now),
                s.description.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let header = [
        "NAME",
        "SCOPE",
        "OWNER",
        "LAST UPDATED",
        "LEAKED",
        "DESCRIPTION",
    ];
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([header[i].len()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..header.len()).map(width).collect();
    // The owner column for `--all`, the leak column when some secret has leaked.
    let any_leak = secrets.iter().any(|s| s.leak.is_some());
    let columns: Vec<usize> = (0..header.len())
        .filter(|&i| (i != 2 || with_owner) && (i != 4 || any_leak))
        .collect();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let columns = &columns[..];
    let mut line = |cells: &[&str]| {
        let mut text = String::new();
        for (k, &i) in columns.iter().enumerate() {
            if k + 1 == columns.len() {
                text.push_str(cells[i]);
            } else {
                text.push_str(&format!("{:<w$}   ", cells[i], w = widths[i]));
            }
        }
        let _ = writeln!(out, "{}", text.trim_end());
    };
    line(&header);
    for r in &rows {
        line(&r.iter().map(String::as_str).collect::<Vec<_>>());
    }
    drop(out);
    if rows.is_empty() {
        println!("(no secrets yet: `supervisor secret create --help` shows how to add one)");
    }
    if any_leak {
        println!(
            "LEAKED: a run's output showed the value (it was redacted there); `supervisor runs show RUN` tells more, and `secret update` rotates it"
        );
    }
}

/// When a secret's value last showed in a run's output, and in which run.
fn leaked(s: &SecretMeta, now: chrono::DateTime<chrono::Utc>) -> String {
    let Some(leak) = &s.leak else {
        return String::new();
    };
    let more = match leak.runs {
        n if n > 1 => format!(", {n} runs"),
        _ => String::new(),
    };
    format!("{} in run {}{more}", when::ago(leak.at, now), leak.run)
}
