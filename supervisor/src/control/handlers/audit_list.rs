//! `audit_list`: the audit log, oldest first (admins).

use anyhow::Result;
use supervisor_protocol::Reply;

use crate::control::{Caller, authz, document, store};
use crate::run::Engine;

pub fn handle(engine: &Engine, caller: &Caller, limit: Option<usize>) -> Result<Reply> {
    authz::audit(caller, &engine.config)?;
    let entries = store(engine).audit_list(limit)?;
    Ok(Reply::Audit {
        entries: entries.iter().map(document).collect::<Result<_>>()?,
    })
}
