//! `supervisor audit list|verify` (admins).

use anyhow::Result;
use supervisor_protocol::{Reply, Request};

use super::views::{AuditView, read_all, unexpected};
use crate::backend::Backend;

pub fn list(backend: &mut Backend, json: bool, limit: Option<usize>) -> Result<()> {
    let entries = match backend.call(Request::AuditList { limit })? {
        Reply::Audit { entries } => entries,
        other => return Err(unexpected(other)),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(());
    }
    for e in read_all::<AuditView>(&entries, "audit entry")? {
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

pub fn verify(backend: &mut Backend) -> Result<()> {
    match backend.call(Request::AuditVerify)? {
        Reply::AuditIntact {
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
        other => Err(unexpected(other)),
    }
}
