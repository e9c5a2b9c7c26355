//! `audit_verify`: checks the audit log's keyed chain and its seal (admins).
//! A log that does not hold is an answer, not an error: the command says
//! what is wrong (as text or JSON) and exits 1.

use anyhow::Result;
use supervisor_protocol::Reply;
use supervisor_store::AuditVerdict;

use crate::control::{Caller, authz, store};
use crate::run::Engine;

pub fn handle(engine: &Engine, caller: &Caller) -> Result<Reply> {
    authz::audit(caller, &engine.config)?;
    let verdict = store(engine).audit_verify()?;
    match verdict {
        AuditVerdict::Intact {
            entries,
            sealed,
            keyed_from,
        } => Ok(Reply::AuditIntact {
            entries,
            sealed,
            keyed_from,
        }),
        AuditVerdict::Broken { seq, reason } => Ok(Reply::AuditBroken {
            entry: Some(seq),
            problem: format!("the audit log is broken at entry {seq}: {reason}"),
            hint: "entries before it are intact; compare with a backup of the store".into(),
        }),
        AuditVerdict::SealBroken { reason } => Ok(Reply::AuditBroken {
            entry: None,
            problem: format!("the audit log's entries hold, but {reason}"),
            hint: "someone without the master key wrote to the store; compare with a backup of it"
                .into(),
        }),
        AuditVerdict::SecretRow { reason } => Ok(Reply::AuditBroken {
            entry: None,
            problem: format!("the audit log holds, but a secret row does not: {reason}"),
            hint: "`supervisor secret update` stores a fresh value; runs that would receive it are refused until then".into(),
        }),
    }
}
