//! `audit_verify`: checks the audit log's hash chain (admins).

use anyhow::Result;
use supervisor_protocol::Reply;
use supervisor_store::AuditVerdict;

use crate::control::{Caller, authz, store};
use crate::fail::Failure;
use crate::run::Engine;

pub fn handle(engine: &Engine, caller: &Caller) -> Result<Reply> {
    authz::audit(caller, &engine.config)?;
    let verdict = store(engine).audit_verify()?;
    match verdict {
        AuditVerdict::Intact { entries } => Ok(Reply::AuditIntact { entries }),
        AuditVerdict::Broken { seq, reason } => Err(Failure::new(format!(
            "the audit log is broken at entry {seq}: {reason}"
        ))
        .hint("entries before it are intact; compare with a backup of the store")
        .into()),
    }
}
