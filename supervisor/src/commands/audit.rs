//! `supervisor audit list|verify` (admins).

use anyhow::Result;
use serde_json::json;
use supervisor_protocol::{Reply, Request};

use super::print::{self, Table};
use super::views::{AuditView, read_all, unexpected};
use crate::backend::Backend;
use crate::fail::Failure;
use crate::when;

pub fn list(backend: &mut Backend, json: bool, limit: Option<usize>) -> Result<()> {
    let entries = match backend.call(Request::AuditList { limit })? {
        Reply::Audit { entries } => entries,
        other => return Err(unexpected(other)),
    };
    if json {
        return print::json(&entries);
    }
    if entries.is_empty() {
        println!("(the audit log is empty)");
        return Ok(());
    }
    let mut table = Table::new(&["SEQ", "TIME", "ACTION", "ACTOR", "DETAIL"]);
    for e in read_all::<AuditView>(&entries, "audit entry")? {
        table.row(vec![
            e.seq.to_string(),
            when::local(e.at),
            e.action,
            e.actor.unwrap_or_else(|| "-".into()),
            e.detail.to_string(),
        ]);
    }
    table.print();
    Ok(())
}

/// Exits 1 when the log does not hold, saying what is wrong (as text, or
/// as a JSON document on stdout).
pub fn verify(backend: &mut Backend, json: bool) -> Result<u8> {
    match backend.call(Request::AuditVerify)? {
        Reply::AuditIntact {
            entries,
            sealed,
            keyed_from,
        } => {
            if json {
                print::json(&json!({
                    "intact": true, "entries": entries, "sealed": sealed,
                    "keyed_from": keyed_from, "entry": null, "problem": null, "hint": null,
                }))?;
                return Ok(0);
            }
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
            Ok(0)
        }
        Reply::AuditBroken {
            entry,
            problem,
            hint,
        } => {
            if json {
                print::json(&json!({
                    "intact": false, "entries": null, "sealed": null, "keyed_from": null,
                    "entry": entry, "problem": problem, "hint": hint,
                }))?;
                return Ok(1);
            }
            Err(Failure::new(problem).hint(hint).into())
        }
        other => Err(unexpected(other)),
    }
}
