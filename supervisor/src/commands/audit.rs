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

pub fn verify(ctx: &Context) -> Result<()> {
    let store = ctx.store(false)?;
    match store.audit_verify()? {
        AuditVerdict::Intact { entries } => {
            println!("audit log intact: {entries} entries, each linked to the one before");
            Ok(())
        }
        AuditVerdict::Broken { seq, reason } => Err(Failure::new(format!(
            "the audit log is broken at entry {seq}: {reason}"
        ))
        .hint("entries before it are intact; compare with a backup of the store")
        .into()),
    }
}
