//! `secret_list`: the team's secrets and the caller's own; with `all`
//! (admins), everyone's. Metadata only.

use anyhow::Result;
use supervisor_protocol::Reply;

use crate::control::{Caller, authz, document, store};
use crate::run::Engine;

pub fn handle(engine: &Engine, caller: &Caller, all: bool) -> Result<Reply> {
    let visible = authz::secret_list(caller, &engine.config, all)?;
    let secrets = store(engine)
        .list_secrets()?
        .iter()
        .filter(|s| visible.secret(s.owner.as_deref()))
        .map(document)
        .collect::<Result<_>>()?;
    Ok(Reply::Secrets { secrets })
}
