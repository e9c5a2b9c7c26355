//! `supervisor audit list|verify`.

use anyhow::Result;
use supervisor_store::AuditVerdict;

use crate::context::Context;
use crate::fail::Failure;

pub fn list(ctx: &Context, json: bool, limit: Option<usize>) -> Result<()> {
    let store = ctx.store(false)?;
    let entries = store.audit_list(limit)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(());
    }
    for e in entries {
        println!(
            "{:>6}  {}  {:<14} {:<10} {}",
            e.seq,
            supervisor_store::format_time(e.at),
            e.action,
            e.actor.as_deref().unwrap_or("-"),
            e.detail
        );
    }
    Ok(())
}

/// Checks every entry and the seal; needs the master key, since entries are
/// authenticated with a key derived from it.
pub fn verify(ctx: &Context) -> Result<()> {
    let store = ctx.store(true)?;
    match store.audit_verify()? {
        AuditVerdict::Intact {
            entries,
            sealed,
            keyed_from,
        } => {
            let unkeyed = if keyed_from > 1 {
                format!(
                    "; entries 1 to {} predate keyed entries and are held by entry {keyed_from}",
                    keyed_from - 1
                )
            } else {
                String::new()
            };
            println!(
                "audit log intact: {entries} entries, each linked to the one before and authenticated with the store's key; the seal names entry {sealed} as the last{unkeyed}"
            );
            Ok(())
        }
        AuditVerdict::Broken { seq, reason } => Err(Failure::new(format!(
            "the audit log is broken at entry {seq}: {reason}"
        ))
        .hint("entries before it are intact; compare with a backup of the store")
        .into()),
        AuditVerdict::SealBroken { reason } => Err(Failure::new(format!(
            "the audit log's entries hold, but {reason}"
        ))
        .hint("someone without the master key wrote to the store; compare with a backup of it")
        .into()),
        AuditVerdict::SecretRow { reason } => Err(Failure::new(format!(
            "the audit log holds, but a secret row does not: {reason}"
        ))
        .hint("`supervisor secret update` stores a fresh value; runs that would receive it are refused until then")
        .into()),
    }
}
